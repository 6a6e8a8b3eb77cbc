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
//! `${NAME}` is replaced by the environment variable NAME and `${file:PATH}` by the file's
//! content (trimmed) when the profile is used, so passwords need not be in the file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::Failure;

/// The profiles file.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Profiles {
    /// The profile used when no `--backend` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Profile name → backend spec (possibly with `${...}` references).
    #[serde(default)]
    pub backends: BTreeMap<String, String>,
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
    /// Reads the file; a missing file is an empty set of profiles.
    pub fn load() -> Result<Self, Failure> {
        let path = path();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                toml::from_str(&text).map_err(|e| Failure::new(1, format!("profiles file {}: {e}", path.display())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Profiles::default()),
            Err(e) => Err(Failure::new(1, format!("profiles file {}: {e}", path.display()))),
        }
    }

    /// Writes the file (creating its folder).
    pub fn save(&self) -> Result<(), Failure> {
        let path = path();
        let io = |e: std::io::Error| Failure::new(1, format!("profiles file {}: {e}", path.display()));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let text = toml::to_string_pretty(self).map_err(|e| Failure::new(1, e.to_string()))?;
        // Atomic, like the configurations: a temp file beside it, then a rename.
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
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
