//! Named backends, like kubectl contexts: a TOML file at `$CONFO_CONFIG`, else
//! `$XDG_CONFIG_HOME/confo/config.toml`, else `~/.config/confo/config.toml`:
//!
//! ```toml
//! default = "prod"
//!
//! [backends]
//! prod = "redis://app:${REDIS_PASSWORD}@10.0.0.5:6379"
//! local = "file:./Configurations"
//! vault = "etcd://root:${file:/run/secrets/etcd}@10.0.0.9:2379"
//! ```
//!
//! History records an actor: `$CONFO_ACTOR`, else the profile's entry in `[actors]`, else a
//! top-level `actor = "alice"`, else `user@host`.
//!
//! `${NAME}` is replaced by the environment variable NAME and `${file:PATH}` by the file's
//! content (trimmed) when the profile is used, so passwords need not be in the file.
//!
//! The file is written with mode 0600 (in a folder created 0700) on every save. A file that
//! others may read and that holds a literal password (not a `${...}` reference) is refused when
//! a profile is used; `confo backend …` warns about it and the next save makes it private.
//! Listings show passwords as `***`, and a syntax error names the line, never its text.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::exit::{Exit, Failure};

/// The profiles file.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Profiles {
    /// The profile used when no `--backend` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Profile name → backend spec (possibly with `${...}` references).
    #[serde(default)]
    pub backends: BTreeMap<String, String>,
    /// Profile name → the keyring its secrets use (instead of `$CONFO_KEYS` or the default).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub keys: BTreeMap<String, String>,
    /// The actor recorded in history for changes made through any profile (unless
    /// `$CONFO_ACTOR` says otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Profile name → the actor recorded for changes made through it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub actors: BTreeMap<String, String>,
}

/// The actor a profile names for history (its own, else the file's), if any. `given` is
/// `--backend`; a profiles file that cannot be read names none.
pub fn profile_actor(given: Option<&str>) -> Option<String> {
    let (profiles, _) = Profiles::read().ok()?;
    let name = match given.map(str::to_owned).or_else(|| std::env::var("CONFO_BACKEND").ok()) {
        Some(name) if !name.contains(':') => Some(name),
        Some(_) => None,
        None => profiles.default.clone(),
    };
    name.and_then(|n| profiles.actors.get(&n).cloned()).or(profiles.actor)
}

/// When a profile is in use (named by `--backend`, else `$CONFO_BACKEND`, else the default
/// profile) and it names a keyring, that keyring is the one used, unless `$CONFO_KEYS` says
/// otherwise. A profiles file that cannot be read is left for the command to report.
pub fn use_profile_keyring(given: Option<&str>) {
    if std::env::var_os("CONFO_KEYS").is_some() {
        return;
    }
    let Ok((profiles, _)) = Profiles::read() else { return };
    let name = match given.map(str::to_owned).or_else(|| std::env::var("CONFO_BACKEND").ok()) {
        Some(name) if !name.contains(':') => Some(name),
        Some(_) => None,
        None => profiles.default.clone(),
    };
    if let Some(path) = name.and_then(|name| profiles.keys.get(&name).cloned()) {
        // Set before any thread is started (the runtime starts when a store is opened).
        std::env::set_var("CONFO_KEYS", path);
    }
}

/// Where the profiles file is.
pub fn path() -> PathBuf {
    if let Some(path) = std::env::var_os("CONFO_CONFIG") {
        return PathBuf::from(path);
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("confo").join("config.toml")
}

impl Profiles {
    /// Reads the file to use a profile from it; a missing file is an empty set of profiles. A
    /// file that others may read and that holds a literal password is refused (exit 5).
    pub fn load() -> Result<Self, Failure> {
        let (profiles, exposed) = Self::read()?;
        match exposed {
            Some(problem) => Err(Failure::new(Exit::Unavailable, problem)),
            None => Ok(profiles),
        }
    }

    /// Reads the file to manage it (`confo backend …`): an exposed password is a warning, since
    /// the next save makes the file private.
    pub fn load_for_editing() -> Result<Self, Failure> {
        let (profiles, exposed) = Self::read()?;
        if let Some(problem) = exposed {
            crate::output::stderr(format_args!("confo: warning: {problem}\n"));
        }
        Ok(profiles)
    }

    /// The profiles, and a description of the problem when the file is readable by others and
    /// holds a literal password.
    fn read() -> Result<(Self, Option<String>), Failure> {
        let path = path();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Profiles::default(), None)),
            Err(e) => return Err(Failure::new(Exit::Error, format!("profiles file {}: {e}", path.display()))),
        };
        let profiles: Profiles = toml::from_str(&text).map_err(|e| {
            // The error's own Display quotes the line, which may hold a password: name the line.
            let line = e.span().map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
            let at = line.map(|l| format!(" line {l}")).unwrap_or_default();
            Failure::new(Exit::Error, format!("profiles file {}{at}: {}", path.display(), e.message()))
        })?;
        let mode = std::fs::metadata(&path).map(|m| m.permissions().mode()).unwrap_or(0);
        let exposed = if mode & 0o077 != 0 {
            profiles.backends.iter().find(|(_, spec)| has_literal_password(spec)).map(|(name, _)| {
                format!(
                    "profiles file {} is readable by others (mode {:03o}) and profile {name:?} holds a literal \
                     password: run chmod 600 {0}, or use ${{VAR}} / ${{file:PATH}} for the password",
                    path.display(),
                    mode & 0o777
                )
            })
        } else {
            None
        };
        Ok((profiles, exposed))
    }

    /// Writes the file atomically with mode 0600, creating its folder with mode 0700.
    pub fn save(&self) -> Result<(), Failure> {
        let path = path();
        let io = |e: std::io::Error| Failure::new(Exit::Error, format!("profiles file {}: {e}", path.display()));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io)?;
        }
        let text = toml::to_string_pretty(self).map_err(|e| Failure::new(Exit::Error, e.to_string()))?;
        // Atomic, like the configurations: a private temp file beside it, then a rename. The
        // temp file is created exclusively (never through a link planted at its name).
        let tmp = temp_path(&path);
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut file| {
                // The mode given to open is filtered by the umask; 0600 is what we want.
                file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
                file.write_all(text.as_bytes())?;
                file.sync_all()
            })
            .and_then(|()| std::fs::rename(&tmp, &path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.map_err(io)
    }

    /// Every profile with its password shown as `***` (references like `${VAR}` are shown).
    pub fn redacted(&self) -> BTreeMap<String, String> {
        self.backends.iter().map(|(name, spec)| (name.clone(), redact(spec))).collect()
    }

    /// The spec a profile names, with its `${...}` references filled in.
    pub fn resolve(&self, name: &str) -> Result<String, Failure> {
        let spec = self.backends.get(name).ok_or_else(|| {
            Failure::usage(format!(
                "unknown backend profile {name:?} (see `confo backend ls`, or give a spec like file:PATH)"
            ))
        })?;
        expand(spec)
    }
}

/// Replaces `${NAME}` by an environment variable and `${file:PATH}` by a file's content. In a
/// URL's user-info part (before its `@`) the value is percent-encoded, so any password works.
pub fn expand(spec: &str) -> Result<String, Failure> {
    let mut out = String::with_capacity(spec.len());
    let mut offset = 0;
    while let Some(found) = spec[offset..].find("${") {
        let start = offset + found;
        out.push_str(&spec[offset..start]);
        let end = spec[start..]
            .find('}')
            .map(|e| start + e)
            .ok_or_else(|| Failure::usage("unclosed ${ in a backend profile"))?;
        let reference = &spec[start + 2..end];
        let value = match reference.strip_prefix("file:") {
            Some(file) => std::fs::read_to_string(file)
                .map(|s| s.trim().to_owned())
                .map_err(|e| Failure::usage(format!("secret file {file}: {e}")))?,
            None => std::env::var(reference).map_err(|_| {
                Failure::usage(format!("environment variable {reference} is not set (used by a backend profile)"))
            })?,
        };
        let in_user_info = spec[..start].contains("://") && spec[end..].contains('@');
        for ch in value.chars() {
            match ch {
                '@' | '/' | '?' | '#' | '%' | ':' if in_user_info => out.push_str(&format!("%{:02X}", ch as u32)),
                _ => out.push(ch),
            }
        }
        offset = end + 1;
    }
    out.push_str(&spec[offset..]);
    Ok(out)
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Where a URL spec keeps its password: the byte range of the password in `user:password@`.
fn password_range(spec: &str) -> Option<std::ops::Range<usize>> {
    let start = spec.find("://")? + 3;
    let end = spec[start..].find(['?', '#']).map_or(spec.len(), |e| start + e);
    let at = start + spec[start..end].rfind('@')?;
    let colon = start + spec[start..at].find(':')?;
    Some(colon + 1..at)
}

/// True when a spec holds a password written out, not a `${...}` reference.
fn has_literal_password(spec: &str) -> bool {
    password_range(spec).is_some_and(|range| {
        let password = &spec[range];
        let one_reference =
            password.starts_with("${") && password.ends_with('}') && password.matches("${").count() == 1;
        !password.is_empty() && !one_reference
    })
}

/// The spec with a literal password replaced by `***`.
pub fn redact(spec: &str) -> String {
    match password_range(spec) {
        Some(range) if has_literal_password(spec) => format!("{}***{}", &spec[..range.start], &spec[range.end..]),
        _ => spec.to_owned(),
    }
}

/// The spec with every `${...}` replaced by a placeholder, to check its syntax when the
/// referenced variables or files are not there yet.
pub fn with_placeholders(spec: &str) -> String {
    let mut out = String::with_capacity(spec.len());
    let mut rest = spec;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        match rest[start..].find('}') {
            Some(end) => {
                out.push('x');
                rest = &rest[start + end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_passwords_are_found_and_redacted() {
        for (spec, shown) in [
            ("redis://:hunter2@10.0.0.5:6379", "redis://:***@10.0.0.5:6379"),
            ("redis://app:p@ss@h:1/0?tls=true", "redis://app:***@h:1/0?tls=true"),
            ("zk://alice:pw@h1:2181,h2:2181/chroot", "zk://alice:***@h1:2181,h2:2181/chroot"),
            ("redis+sentinel://:pw@s1:26379,s2:26379/mymaster", "redis+sentinel://:***@s1:26379,s2:26379/mymaster"),
            ("rediss+cluster://app:pw@n1:7000,n2:7001", "rediss+cluster://app:***@n1:7000,n2:7001"),
        ] {
            assert!(has_literal_password(spec), "{spec}");
            assert_eq!(redact(spec), shown);
        }
        for spec in [
            "redis://app:${REDIS_PASSWORD}@h:1",
            "etcd://root:${file:/run/secrets/etcd}@h:2379",
            "redis://h:6379",
            "redis://user@h:6379",
            "file:./Configurations",
            "file:/odd/pa:th@x",
        ] {
            assert!(!has_literal_password(spec), "{spec}");
            assert_eq!(redact(spec), spec);
        }
        assert!(has_literal_password("redis://a:x${Y}@h"), "a literal part around a reference");
    }

    #[test]
    fn secrets_from_files_are_encoded_only_in_user_info() {
        let dir = tempfile::tempdir().expect("temp dir");
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "p@ss/w:rd\n").expect("write");
        let spec = format!("redis://app:${{file:{}}}@127.0.0.1:6379", secret.display());
        let expanded = expand(&spec).expect("expand");
        assert_eq!(expanded, "redis://app:p%40ss%2Fw%3Ard@127.0.0.1:6379");
        let parsed: confo::BackendSpec = expanded.parse().expect("parses");
        assert!(!format!("{parsed} {parsed:?}").contains("p@ss"), "never shown");
        let path_spec = format!("file:${{file:{}}}", secret.display());
        assert_eq!(expand(&path_spec).expect("expand"), "file:p@ss/w:rd", "a path is left as it is");
        assert!(expand("redis://${NO_SUCH_VARIABLE_HOPEFULLY}@h").is_err());
        assert_eq!(with_placeholders("redis://a:${X}@h:1"), "redis://a:x@h:1");
    }
}
