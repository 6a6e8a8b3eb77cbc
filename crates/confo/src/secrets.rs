//! Secrets encrypted at rest, field by field, in a form every old reader still loads as JSON.
//!
//! An encrypted field's value is the JSON object `{"$confo_secret": "v1:<key-id>:<nonce>:<ciphertext>"}`
//! (nonce and ciphertext in unpadded base64url). The cipher is XChaCha20-Poly1305 with a random
//! 24-byte nonce; the plaintext is the field's JSON value, so numbers, booleans and objects
//! keep their type. The additional authenticated data binds the ciphertext to its place —
//! namespace, configuration, the field's JSON pointer, the key id — so a ciphertext copied to
//! another field or configuration fails to open.
//!
//! Keys live in a [`Keyring`]: a TOML file of named 32-byte keys (base64url) and which one is
//! `primary` (new secrets are sealed with it; the others still open what they sealed). It is
//! found at `$CONFO_KEYS`, else `~/.config/confo/keys.toml`, and refused when others may read
//! it. Key material and opened plaintext are wiped from memory when dropped.
//!
//! Every failure is [`Error::Secret`], naming the configuration and the field, never a value.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde_json::Value;
use zeroize::{Zeroize, Zeroizing};

use crate::model::error::{Error, Result};
use crate::model::version::Configuration;

pub use crate::model::sealed::{has_sealed, is_sealed, key_id};
/// The member that marks a sealed value.
use crate::model::sealed::{sealed_text, MARKER};
const FORMAT: &str = "v1";

/// Where a secret lives: what its ciphertext is bound to.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    /// The namespace.
    pub namespace: &'a str,
    /// The configuration.
    pub configuration: &'a str,
    /// The field's JSON pointer in the configuration (`/password`, `/db/password`).
    pub pointer: &'a str,
}

impl Place<'_> {
    fn location(&self) -> String {
        format!("{}/{} field {}", self.namespace, self.configuration, self.pointer)
    }

    fn aad(&self, key_id: &str) -> Vec<u8> {
        let mut aad = Vec::new();
        for part in ["confo-secret-v1", self.namespace, self.configuration, self.pointer, key_id] {
            aad.extend_from_slice(part.as_bytes());
            aad.push(0);
        }
        aad
    }

    fn error(&self, problem: impl Into<String>) -> Error {
        Error::Secret { location: self.location(), message: problem.into() }
    }
}

/// One named key.
struct Key {
    bytes: Zeroizing<[u8; 32]>,
}

/// Named keys, one of them primary. Its `Debug` shows the key ids, never the keys.
pub struct Keyring {
    keys: BTreeMap<String, Key>,
    primary: Option<String>,
    path: Option<PathBuf>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .field("primary", &self.primary)
            .field("path", &self.path)
            .finish()
    }
}

/// Whether a key id is usable: 1 to 64 of `[A-Za-z0-9._-]`.
fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl Keyring {
    /// An empty keyring in memory (for tests and callers that manage keys themselves).
    pub fn new() -> Self {
        Keyring { keys: BTreeMap::new(), primary: None, path: None }
    }

    /// Where the keyring is looked for: `$CONFO_KEYS`, else `~/.config/confo/keys.toml`.
    pub fn default_path() -> Option<PathBuf> {
        match std::env::var_os("CONFO_KEYS") {
            Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
            _ => std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config/confo/keys.toml")),
        }
    }

    /// The keyring at [`Keyring::default_path`], or `None` if there is no file there.
    pub fn find() -> Result<Option<Keyring>> {
        match Self::default_path() {
            Some(path) if path.exists() => Self::load(&path).map(Some),
            _ => Ok(None),
        }
    }

    /// Reads a keyring file: `primary = "ID"` and a `[keys]` table of `ID = "base64url key"`.
    /// Refused ([`Error::Insecure`]) if its mode lets others read it; a syntax error names the
    /// line, never the text.
    pub fn load(path: &Path) -> Result<Keyring> {
        let location = format!("keyring {}", path.display());
        check_private(path, &location)?;
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| Error::io(location.clone(), e))?);
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e.span().map(|s| text[..s.start].lines().count().max(1));
            Error::Secret {
                location: location.clone(),
                message: match line {
                    Some(line) => format!("not valid TOML at line {line}: {}", e.message()),
                    None => format!("not valid TOML: {}", e.message()),
                },
            }
        })?;
        let bad = |message: String| Error::Secret { location: location.clone(), message };
        let mut keyring = Keyring { keys: BTreeMap::new(), primary: None, path: Some(path.to_owned()) };
        for (name, value) in &table {
            match (name.as_str(), value) {
                ("primary", toml::Value::String(id)) => keyring.primary = Some(id.clone()),
                ("keys", toml::Value::Table(keys)) => {
                    for (id, key) in keys {
                        if !valid_id(id) {
                            return Err(bad(format!("key id {id:?} must be 1 to 64 of A-Z a-z 0-9 . _ -")));
                        }
                        let toml::Value::String(encoded) = key else {
                            return Err(bad(format!("key {id:?} must be a base64url string")));
                        };
                        let mut bytes = Zeroizing::new([0u8; 32]);
                        let decoded = Zeroizing::new(B64.decode(encoded.as_bytes()).unwrap_or_default());
                        if decoded.len() != 32 {
                            return Err(bad(format!("key {id:?} is not 32 bytes of base64url")));
                        }
                        bytes.copy_from_slice(&decoded);
                        keyring.keys.insert(id.clone(), Key { bytes });
                    }
                }
                (other, _) => return Err(bad(format!("unknown entry {other:?} (expected primary and [keys])"))),
            }
        }
        if let Some(primary) = &keyring.primary {
            if !keyring.keys.contains_key(primary) {
                return Err(bad(format!("primary key {primary:?} is not in [keys]")));
            }
        }
        Ok(keyring)
    }

    /// Adds a new random key (from the OS) under `id` (a fresh id when `None`); the first key
    /// becomes primary. Returns the id.
    pub fn generate(&mut self, id: Option<&str>) -> Result<String> {
        let id = match id {
            Some(id) => id.to_owned(),
            None => format!("k{}", self.keys.len() + 1),
        };
        if !valid_id(&id) {
            return Err(Error::Secret {
                location: "keyring".into(),
                message: format!("key id {id:?} must be 1 to 64 of A-Z a-z 0-9 . _ -"),
            });
        }
        if self.keys.contains_key(&id) {
            return Err(Error::AlreadyExists {
                what: crate::model::error::Missing::Key,
                name: id,
                location: "keyring".into(),
            });
        }
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(&XChaCha20Poly1305::generate_key(&mut OsRng));
        self.keys.insert(id.clone(), Key { bytes });
        if self.primary.is_none() {
            self.primary = Some(id.clone());
        }
        Ok(id)
    }

    /// Makes a key the primary one.
    pub fn set_primary(&mut self, id: &str) -> Result<()> {
        if !self.keys.contains_key(id) {
            return Err(Error::not_found(crate::model::error::Missing::Key, id, "keyring"));
        }
        self.primary = Some(id.to_owned());
        Ok(())
    }

    /// Removes a key; the primary key cannot be removed (make another primary first).
    pub fn remove(&mut self, id: &str) -> Result<()> {
        if self.primary.as_deref() == Some(id) {
            return Err(Error::Secret {
                location: "keyring".into(),
                message: format!("key {id:?} is the primary key: make another one primary first"),
            });
        }
        match self.keys.remove(id) {
            Some(_) => Ok(()),
            None => Err(Error::not_found(crate::model::error::Missing::Key, id, "keyring")),
        }
    }

    /// The key ids, sorted, and the primary one.
    pub fn ids(&self) -> (Vec<&str>, Option<&str>) {
        (self.keys.keys().map(String::as_str).collect(), self.primary.as_deref())
    }

    /// Writes the keyring to `path` (mode 0600, through a private temporary file and a rename;
    /// the folder is made 0700 if missing).
    pub fn save(&self, path: &Path) -> Result<()> {
        let location = format!("keyring {}", path.display());
        let io = |e| Error::io(location.clone(), e);
        let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if !folder.exists() {
            std::fs::create_dir_all(folder).map_err(io)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
            }
        }
        let mut text = Zeroizing::new(String::new());
        if let Some(primary) = &self.primary {
            text.push_str(&format!("primary = \"{primary}\"\n"));
        }
        text.push_str("\n[keys]\n");
        for (id, key) in &self.keys {
            let mut encoded = B64.encode(key.bytes.as_slice());
            text.push_str(&format!("\"{id}\" = \"{encoded}\"\n"));
            encoded.zeroize();
        }
        let mut file = tempfile::Builder::new().prefix(".keys-").tempfile_in(folder).map_err(io)?;
        std::io::Write::write_all(&mut file, text.as_bytes()).map_err(io)?;
        file.as_file().sync_all().map_err(io)?;
        file.persist(path).map_err(|e| io(e.error))?;
        Ok(())
    }

    /// Seals a value for a place with the primary key.
    pub fn seal(&self, place: &Place<'_>, value: &Value) -> Result<Value> {
        let id = self
            .primary
            .as_deref()
            .ok_or_else(|| place.error("the keyring has no key: make one with `confo keys new`"))?;
        self.seal_with(place, value, id)
    }

    fn seal_with(&self, place: &Place<'_>, value: &Value, id: &str) -> Result<Value> {
        let key = self.keys.get(id).ok_or_else(|| place.error(format!("no key {id:?} in the keyring")))?;
        let cipher = XChaCha20Poly1305::new((&*key.bytes).into());
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let plaintext = Zeroizing::new(serde_json::to_vec(value).map_err(|e| place.error(e.to_string()))?);
        let aad = place.aad(id);
        let ciphertext = cipher
            .encrypt(&nonce, Payload { msg: &plaintext, aad: &aad })
            .map_err(|_| place.error("encryption failed"))?;
        let sealed = format!("{FORMAT}:{id}:{}:{}", B64.encode(nonce), B64.encode(ciphertext));
        let mut object = serde_json::Map::new();
        object.insert(MARKER.to_owned(), Value::String(sealed));
        Ok(Value::Object(object))
    }

    /// Opens a sealed value of a place: its plaintext JSON value.
    pub fn open(&self, place: &Place<'_>, sealed: &Value) -> Result<Value> {
        let text = sealed_text(sealed).ok_or_else(|| place.error("not a sealed value"))?;
        let mut parts = text.splitn(4, ':');
        let (format, id, nonce, ciphertext) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(f), Some(i), Some(n), Some(c)) => (f, i, n, c),
            _ => return Err(place.error("malformed secret (expected v1:KEY:NONCE:CIPHERTEXT)")),
        };
        if format != FORMAT {
            return Err(place.error(format!("unknown secret format {format:?}")));
        }
        let key = self
            .keys
            .get(id)
            .ok_or_else(|| place.error(format!("sealed with key {id:?}, which is not in the keyring")))?;
        let nonce = B64.decode(nonce).ok().filter(|n| n.len() == 24);
        let ciphertext = B64.decode(ciphertext).ok();
        let (Some(nonce), Some(ciphertext)) = (nonce, ciphertext) else {
            return Err(place.error("malformed secret (bad base64url or nonce length)"));
        };
        let cipher = XChaCha20Poly1305::new((&*key.bytes).into());
        let aad = place.aad(id);
        let plaintext = Zeroizing::new(
            cipher.decrypt(XNonce::from_slice(&nonce), Payload { msg: &ciphertext, aad: &aad }).map_err(|_| {
                place.error(format!(
                    "cannot be opened with key {id:?}: it was changed, truncated, or sealed for another place"
                ))
            })?,
        );
        serde_json::from_slice(&plaintext).map_err(|_| place.error("opened to something that is not JSON"))
    }

    /// Whether this keyring has the key a sealed value names.
    pub fn can_open(&self, sealed: &Value) -> bool {
        sealed_text(sealed).and_then(|t| t.split(':').nth(1)).is_some_and(|id| self.keys.contains_key(id))
    }

    /// Seals again with the primary key if a sealed value was sealed with another one
    /// (rotation); `None` when it already uses the primary key.
    pub fn reseal(&self, place: &Place<'_>, sealed: &Value) -> Result<Option<Value>> {
        let primary = self.primary.as_deref().ok_or_else(|| place.error("the keyring has no primary key"))?;
        if key_id(sealed) == Some(primary) {
            return Ok(None);
        }
        let value = Zeroizing::new(self.open(place, sealed)?.to_string());
        let value: Value = serde_json::from_str(&value).map_err(|e| place.error(e.to_string()))?;
        self.seal_with(place, &value, primary).map(Some)
    }
}

impl Default for Keyring {
    fn default() -> Self {
        Keyring::new()
    }
}

/// The JSON pointer of a top-level field (`pass/word` → `/pass~1word`).
pub fn pointer(field: &str) -> String {
    format!("/{}", field.replace('~', "~0").replace('/', "~1"))
}

/// A field's value as read without opening it: the value itself, or a sealed secret (never
/// its ciphertext passed off as the value).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Field<'a> {
    /// A value in the clear.
    Plain(&'a Value),
    /// A secret, sealed with this key.
    Sealed {
        /// The key it was sealed with.
        key_id: &'a str,
    },
}

/// What a stored value is: plain, or a sealed secret.
pub fn field(value: &Value) -> Field<'_> {
    match key_id(value) {
        Some(key_id) => Field::Sealed { key_id },
        None => Field::Plain(value),
    }
}

/// Calls `f` with the JSON pointer and the value of every sealed value of a configuration
/// (in nested objects and in arrays: `/items/0/password`); `f` may replace the value. The one
/// walk behind [`sealed_fields`], [`mask`], [`reveal`] and [`reseal_what_opens`].
fn each_sealed(map: &mut Configuration, prefix: &str, f: &mut dyn FnMut(&str, &mut Value) -> Result<()>) -> Result<()> {
    fn within(value: &mut Value, at: &str, f: &mut dyn FnMut(&str, &mut Value) -> Result<()>) -> Result<()> {
        if is_sealed(value) {
            return f(at, value);
        }
        match value {
            Value::Object(inner) => each_sealed(inner, at, f),
            Value::Array(items) => {
                for (index, item) in items.iter_mut().enumerate() {
                    within(item, &format!("{at}/{index}"), f)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
    for (key, value) in map.iter_mut() {
        within(value, &format!("{prefix}{}", pointer(key)), f)?;
    }
    Ok(())
}

/// The JSON pointers of every sealed value in a configuration (nested objects included), sorted.
pub fn sealed_fields(config: &Configuration) -> Vec<String> {
    let mut out = Vec::new();
    if has_sealed(config) {
        let _ = each_sealed(&mut config.clone(), "", &mut |pointer, _| {
            out.push(pointer.to_owned());
            Ok(())
        });
    }
    out.sort();
    out
}

/// The key of the marker a history purge leaves where a field was in the clear:
/// `{"$confo_purged": "<time of the purge>"}`.
pub(crate) const PURGED: &str = "$confo_purged";

/// Whether a configuration holds a purge marker anywhere.
pub(crate) fn has_purged(config: &Configuration) -> bool {
    fn within(value: &Value) -> bool {
        is_purged(value)
            || match value {
                Value::Object(map) => map.values().any(within),
                Value::Array(items) => items.iter().any(within),
                _ => false,
            }
    }
    config.values().any(within)
}

/// Whether `value` is a purge marker (`{"$confo_purged": …}`).
pub fn is_purged(value: &Value) -> bool {
    value.as_object().is_some_and(|map| map.len() == 1 && map.contains_key(PURGED))
}

/// A value from history about to be written again (a rollback), with each purge marker
/// settled: the place of a field purged from history gets what is sealed there now (the secret
/// stays as it is), or, with nothing sealed there now, the field is left out (its value is
/// gone for good). Returns the JSON pointers settled.
pub(crate) fn settle_purged(value: &mut Configuration, current: Option<&Configuration>) -> Vec<String> {
    fn find(value: &Value, at: &str, out: &mut Vec<String>) {
        if is_purged(value) {
            out.push(at.to_owned());
            return;
        }
        match value {
            Value::Object(map) => map.iter().for_each(|(k, v)| find(v, &format!("{at}{}", pointer(k)), out)),
            Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| find(v, &format!("{at}/{i}"), out)),
            _ => {}
        }
    }
    let mut whole = Value::Object(std::mem::take(value));
    let mut found = Vec::new();
    find(&whole, "", &mut found);
    let current = current.map(|c| Value::Object(c.clone()));
    for at in &found {
        let sealed_now = current.as_ref().and_then(|c| c.pointer(at)).filter(|v| is_sealed(v)).cloned();
        match sealed_now {
            Some(sealed) => {
                if let Some(slot) = whole.pointer_mut(at) {
                    *slot = sealed;
                }
            }
            None => {
                let (parent, last) = at.rsplit_once('/').unwrap_or(("", at));
                let key = last.replace("~1", "/").replace("~0", "~");
                match whole.pointer_mut(parent) {
                    Some(Value::Object(map)) => {
                        map.remove(&key);
                    }
                    // In a list the place is kept (indexes must not move): null.
                    Some(Value::Array(items)) => {
                        if let Some(slot) = key.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                            *slot = Value::Null;
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    if let Value::Object(map) = whole {
        *value = map;
    }
    found
}

/// What a sealed value is shown as without the keys.
pub const MASK: &str = "<secret>";

/// A configuration with every sealed value shown as [`MASK`] (for display without keys).
pub fn mask(config: &Configuration) -> Configuration {
    let mut shown = config.clone();
    let _ = each_sealed(&mut shown, "", &mut |_, value| {
        *value = Value::String(MASK.into());
        Ok(())
    });
    shown
}

/// A configuration with every sealed value opened (nested objects included).
pub fn reveal(
    config: &Configuration,
    namespace: &str,
    configuration: &str,
    keyring: &Keyring,
) -> Result<Configuration> {
    let mut shown = config.clone();
    each_sealed(&mut shown, "", &mut |pointer, value| {
        *value = keyring.open(&Place { namespace, configuration, pointer }, value)?;
        Ok(())
    })?;
    Ok(shown)
}

/// `new`, to be written where `stored` is, with the rule for plain values where a secret is
/// sealed: a value that is a secret opened (the same plaintext as the sealed one stored at
/// its JSON pointer) is put back sealed as it was (so a configuration read with its secrets
/// opened, changed elsewhere and written back, keeps them sealed, unchanged); another plain
/// value there is sealed again under the primary key. Without a keyring both are refused
/// ([`Error::InvalidValue`] naming the pointer): a secret is never written in the clear by
/// mistake. Sealed values in `new` are kept as they are; a field removed stays removed.
pub fn keep_sealed(
    new: &Configuration,
    stored: &Configuration,
    namespace: &str,
    configuration: &str,
    keyring: Option<&Keyring>,
) -> Result<Configuration> {
    if !has_sealed(stored) {
        return Ok(new.clone());
    }
    let mut out = Value::Object(new.clone());
    let mut places = Vec::new();
    let _ = each_sealed(&mut stored.clone(), "", &mut |pointer, sealed| {
        places.push((pointer.to_owned(), sealed.clone()));
        Ok(())
    });
    for (pointer, sealed) in places {
        let Some(value) = out.pointer_mut(&pointer) else { continue };
        if is_sealed(value) {
            continue;
        }
        let place = Place { namespace, configuration, pointer: &pointer };
        let Some(keyring) = keyring else {
            return Err(Error::InvalidValue {
                location: format!("{namespace}/{configuration} field {pointer}"),
                message: "a plain value where a secret is sealed, and no keyring to seal it again: write it with \
                          `confo secret set`, or turn the secret back into a plain value on purpose with `confo secret \
                          unset`"
                    .into(),
            });
        };
        *value = match keyring.open(&place, &sealed) {
            Ok(opened) if opened == *value => sealed,
            _ => keyring.seal(&place, value)?,
        };
    }
    match out {
        Value::Object(map) => Ok(map),
        _ => Ok(new.clone()),
    }
}

/// Reseals, in place, every secret of a configuration not sealed with the primary key
/// ([`Keyring::reseal`]), going on past secrets that do not open (planted by a writer without
/// the keys, or sealed with a key removed since): returns how many were resealed, and each one
/// left as it was with the JSON pointer and why.
pub(crate) fn reseal_what_opens(
    config: &mut Configuration,
    namespace: &str,
    configuration: &str,
    keyring: &Keyring,
) -> (usize, Vec<(String, Error)>) {
    let mut count = 0;
    let mut unopened = Vec::new();
    let _ = each_sealed(config, "", &mut |pointer, value| {
        match keyring.reseal(&Place { namespace, configuration, pointer }, value) {
            Ok(Some(new)) => {
                *value = new;
                count += 1;
            }
            Ok(None) => {}
            Err(e) => unopened.push((pointer.to_owned(), e)),
        }
        Ok(())
    });
    (count, unopened)
}

/// Checks that every sealed value of a document opens where the document puts it (its place is
/// in the ciphertext): a document whose namespaces or configurations were renamed, or whose
/// sealed values were moved, would store secrets nobody can open. [`Error::Secret`] names the
/// first such field.
///
/// `document` is an export's document ([`Document`](crate::transfer::Document)): namespace →
/// configuration → value.
pub fn check_document(
    document: &std::collections::BTreeMap<String, std::collections::BTreeMap<String, Configuration>>,
    keyring: &Keyring,
) -> Result<()> {
    for (namespace, configurations) in document {
        for (name, value) in configurations {
            reveal(value, namespace, name, keyring).map_err(|e| match e {
                Error::Secret { location, message } => Error::Secret {
                    location,
                    message: format!(
                        "{message}; a secret cannot move to another namespace, configuration or field: \
                         export with --reveal and set it again with `confo secret set`"
                    ),
                },
                other => other,
            })?;
        }
    }
    Ok(())
}

/// Checks that a keyring file is not readable by group or others (Unix).
fn check_private(path: &Path, location: &str) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map_err(|e| Error::io(location.to_owned(), e))?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(Error::Insecure {
                location: location.to_owned(),
                message: format!("its mode {:o} lets others read the keys; run chmod 600 on it", mode & 0o777),
            });
        }
        // A folder others may write lets them replace the file with keys of their own (what
        // is then sealed, they can open): refused, unless the folder is sticky (/tmp: only an
        // entry's owner may rename or remove it) and the file is this user's.
        let folder = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let folder_meta = std::fs::metadata(folder).map_err(|e| Error::io(location.to_owned(), e))?;
        let folder_mode = folder_meta.permissions().mode();
        if folder_mode & 0o022 != 0 {
            use std::os::unix::fs::MetadataExt;
            let me = rustix::process::geteuid().as_raw();
            let sticky = folder_mode & 0o1000 != 0;
            let file_owner = std::fs::metadata(path).map_err(|e| Error::io(location.to_owned(), e))?.uid();
            if !(sticky && file_owner == me && (folder_meta.uid() == me || folder_meta.uid() == 0)) {
                return Err(Error::Insecure {
                    location: location.to_owned(),
                    message: format!(
                        "its folder {} (mode {:o}) lets others replace it with keys of their own; keep it in a folder only you can write",
                        folder.display(),
                        folder_mode & 0o7777
                    ),
                });
            }
        }
    }
    let _ = (path, location);
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn place<'a>(pointer: &'a str) -> Place<'a> {
        Place { namespace: "sales", configuration: "db", pointer }
    }

    fn keyring() -> Keyring {
        let mut keyring = Keyring::new();
        keyring.generate(Some("k1")).unwrap();
        keyring
    }

    #[test]
    fn a_sealed_value_opens_to_the_value_with_its_type() {
        let keyring = keyring();
        for value in [json!("hunter2"), json!(5432), json!(true), json!({"user": "u", "n": 1.5}), json!(null)] {
            let sealed = keyring.seal(&place("/password"), &value).unwrap();
            assert!(is_sealed(&sealed) && key_id(&sealed) == Some("k1"));
            assert_eq!(field(&sealed), Field::Sealed { key_id: "k1" });
            assert_eq!(field(&value), Field::Plain(&value));
            assert!(!sealed.to_string().contains("hunter2"));
            assert_eq!(keyring.open(&place("/password"), &sealed).unwrap(), value);
        }
    }

    #[test]
    fn keep_sealed_puts_opened_secrets_back_as_they_were_and_seals_new_plain_values() {
        let keyring = keyring();
        let sealed = keyring.seal(&place("/password"), &json!("hunter2")).unwrap();
        let stored: Configuration = json!({"host": "h", "password": sealed.clone()}).as_object().unwrap().clone();
        // Read with the secret opened, another field changed: the secret goes back unchanged.
        let edited = json!({"host": "h2", "password": "hunter2"}).as_object().unwrap().clone();
        let kept = keep_sealed(&edited, &stored, "sales", "db", Some(&keyring)).unwrap();
        assert_eq!(kept["password"], sealed);
        assert_eq!(kept["host"], json!("h2"));
        // A new plain value there is sealed again, never kept in the clear.
        let changed = json!({"host": "h", "password": "correct horse"}).as_object().unwrap().clone();
        let kept = keep_sealed(&changed, &stored, "sales", "db", Some(&keyring)).unwrap();
        assert!(is_sealed(&kept["password"]) && kept["password"] != sealed);
        assert!(!serde_json::to_string(&kept).unwrap().contains("correct horse"));
        assert_eq!(keyring.open(&place("/password"), &kept["password"]).unwrap(), json!("correct horse"));
        // Sealed values and removed fields are left as they are.
        let as_stored = keep_sealed(&stored, &stored, "sales", "db", Some(&keyring)).unwrap();
        assert_eq!(as_stored, stored);
        let removed = json!({"host": "h"}).as_object().unwrap().clone();
        assert_eq!(keep_sealed(&removed, &stored, "sales", "db", Some(&keyring)).unwrap(), removed);
        // Without a keyring, a plain value where a secret is is refused, naming the field only.
        let err = keep_sealed(&changed, &stored, "sales", "db", None).unwrap_err();
        assert_eq!(err.kind(), crate::model::error::ErrorKind::InvalidValue);
        assert!(err.to_string().contains("/password") && !err.to_string().contains("correct horse"), "{err}");
        // Nothing sealed stored: the new value as it is.
        let plain: Configuration = json!({"password": "x"}).as_object().unwrap().clone();
        assert_eq!(keep_sealed(&changed, &plain, "sales", "db", None).unwrap(), changed);
    }

    #[test]
    fn a_ciphertext_elsewhere_or_changed_does_not_open() {
        let keyring = keyring();
        let sealed = keyring.seal(&place("/password"), &json!("hunter2")).unwrap();
        let moved = keyring.open(&place("/token"), &sealed).unwrap_err();
        assert_eq!(moved.kind(), crate::model::error::ErrorKind::Secret);
        assert!(moved.to_string().contains("sales/db field /token"), "{moved}");
        let other_config = Place { namespace: "sales", configuration: "cache", pointer: "/password" };
        assert!(keyring.open(&other_config, &sealed).is_err());
        // Tampered and truncated ciphertexts, a malformed object, an unknown key.
        let text = sealed[MARKER].as_str().unwrap().to_owned();
        let flipped = format!("{}{}", &text[..text.len() - 1], if text.ends_with('A') { 'B' } else { 'A' });
        for bad in [
            json!({MARKER: flipped}),
            json!({MARKER: &text[..text.len() - 10]}),
            json!({MARKER: "v1:k1"}),
            json!({MARKER: "v2:k1:AAAA:AAAA"}),
            json!({MARKER: text.replacen("k1", "k9", 1)}),
        ] {
            let err = keyring.open(&place("/password"), &bad).unwrap_err();
            assert!(!format!("{err} {err:?}").contains("hunter2"), "{err}");
        }
        // Another keyring's key does not open it either.
        assert!(Keyring::new().open(&place("/password"), &sealed).is_err());
        let mut other = Keyring::new();
        other.generate(Some("k1")).unwrap();
        assert!(other.open(&place("/password"), &sealed).is_err());
    }

    #[test]
    fn rotation_reseals_under_the_primary_and_old_keys_keep_opening() {
        let mut keyring = keyring();
        let old = keyring.seal(&place("/p"), &json!("s")).unwrap();
        keyring.generate(Some("k2")).unwrap();
        assert_eq!(keyring.ids().1, Some("k1"), "the first key stays primary");
        keyring.set_primary("k2").unwrap();
        let new = keyring.reseal(&place("/p"), &old).unwrap().expect("resealed");
        assert_eq!(key_id(&new), Some("k2"));
        assert_eq!(keyring.open(&place("/p"), &old).unwrap(), json!("s"));
        assert!(keyring.reseal(&place("/p"), &new).unwrap().is_none());
    }

    #[test]
    fn keyring_files_are_private_and_round_trip() {
        let dir = confo_testkit::store_dir().unwrap();
        let path = dir.path().join("conf/keys.toml");
        let mut keyring = keyring();
        keyring.generate(Some("k.2_x-y")).unwrap();
        keyring.save(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let loaded = Keyring::load(&path).unwrap();
        assert_eq!(loaded.ids(), (vec!["k.2_x-y", "k1"], Some("k1")));
        let sealed = keyring.seal(&place("/p"), &json!(1)).unwrap();
        assert_eq!(loaded.open(&place("/p"), &sealed).unwrap(), json!(1));
        assert!(!format!("{loaded:?}").contains(&B64.encode(keyring.keys["k1"].bytes.as_slice())));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert_eq!(Keyring::load(&path).unwrap_err().kind(), crate::model::error::ErrorKind::Insecure);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            // A folder others may write: refused, unless sticky (as /tmp) with the file ours.
            let folder = path.parent().unwrap();
            std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o777)).unwrap();
            let err = Keyring::load(&path).unwrap_err();
            assert_eq!(err.kind(), crate::model::error::ErrorKind::Insecure);
            assert!(err.to_string().contains("lets others replace it"), "{err}");
            std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o1777)).unwrap();
            Keyring::load(&path).expect("a sticky folder, the file ours");
            std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        std::fs::write(&path, "primary = \"k1\"\n[keys]\nk1 = \"c2VjcmV0LWtleS1ub3QtMzItYnl0ZXM\"\n").unwrap();
        let err = Keyring::load(&path).unwrap_err().to_string();
        assert!(err.contains("not 32 bytes") && !err.contains("c2VjcmV0"), "{err}");
        std::fs::write(&path, "primary = \n").unwrap();
        let err = Keyring::load(&path).unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
        assert!(keyring.generate(Some("bad id")).is_err());
        let err = keyring.set_primary("k9").unwrap_err();
        assert_eq!(err.to_string(), "key \"k9\" not found in keyring");
        assert_eq!(keyring.generate(Some("k1")).unwrap_err().kind(), crate::model::error::ErrorKind::AlreadyExists);
    }

    #[test]
    fn sealed_values_in_arrays_are_found_masked_revealed_and_rotated() {
        let keyring = keyring();
        let sealed = keyring.seal(&place("/pool/1/password"), &json!("p")).unwrap();
        let config: Configuration =
            json!({"pool": [{"password": "plain"}, {"password": sealed}, [1, 2]]}).as_object().unwrap().clone();
        assert!(has_sealed(&config));
        assert_eq!(sealed_fields(&config), vec!["/pool/1/password"]);
        assert_eq!(mask(&config)["pool"][1]["password"], json!(MASK));
        assert_eq!(mask(&config)["pool"][0]["password"], json!("plain"));
        assert_eq!(reveal(&config, "sales", "db", &keyring).unwrap()["pool"][1]["password"], json!("p"));
        // Moved to another index, it does not open there: reported, not a stop.
        let mut moved: Configuration = json!({"pool": [config["pool"][1].clone()]}).as_object().unwrap().clone();
        let mut rotated = keyring;
        rotated.generate(Some("k2")).unwrap();
        rotated.set_primary("k2").unwrap();
        let (count, unopened) = reseal_what_opens(&mut moved, "sales", "db", &rotated);
        assert_eq!((count, unopened.len()), (0, 1));
        assert_eq!(unopened[0].0, "/pool/0/password");
        let mut whole = config.clone();
        assert_eq!(reseal_what_opens(&mut whole, "sales", "db", &rotated).0, 1);
        assert_eq!(reveal(&whole, "sales", "db", &rotated).unwrap()["pool"][1]["password"], json!("p"));
    }

    #[test]
    fn fields_are_found_masked_and_revealed_at_any_depth() {
        let keyring = keyring();
        let mut config: Configuration = json!({"host": "h", "db": {"user": "u"}}).as_object().unwrap().clone();
        let top = keyring.seal(&place("/password"), &json!("p")).unwrap();
        let nested = keyring.seal(&place("/db/pass~1word"), &json!(7)).unwrap();
        config.insert("password".into(), top);
        config["db"].as_object_mut().unwrap().insert("pass/word".into(), nested);
        assert_eq!(sealed_fields(&config), ["/db/pass~1word", "/password"]);
        assert!(has_sealed(&config) && !has_sealed(&mask(&config)));
        assert_eq!(
            Value::Object(mask(&config)),
            json!({"host": "h", "db": {"user": "u", "pass/word": "<secret>"}, "password": "<secret>"})
        );
        let shown = reveal(&config, "sales", "db", &keyring).unwrap();
        assert_eq!(Value::Object(shown), json!({"host": "h", "db": {"user": "u", "pass/word": 7}, "password": "p"}));
    }
}
