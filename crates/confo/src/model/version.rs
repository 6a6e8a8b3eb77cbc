//! What is stored: a configuration, its version token, a namespace as read, and where an
//! answer came from when the store was not used.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::model::error::{Corruption, Error};

/// A configuration: a JSON object whose field order round-trips.
pub type Configuration = serde_json::Map<String, serde_json::Value>;

/// A version token of one stored configuration.
///
/// Opaque and only comparable for equality: a file backend uses a hash of the file's bytes, the
/// memory backend a counter, ZooKeeper its stat version, etcd a `mod_revision`. Tokens are valid
/// for the life of the process that read them; they are not meant to be persisted.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Version(VersionRepr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum VersionRepr {
    Number(i64),
    Text(Arc<str>),
}

impl Version {
    /// A version that is a number (a counter, a stat version, a revision).
    pub fn number(n: i64) -> Self {
        Version(VersionRepr::Number(n))
    }

    /// A version that is a string (a content hash).
    pub fn text(s: impl Into<Arc<str>>) -> Self {
        Version(VersionRepr::Text(s.into()))
    }

    /// The number, for a version that is one (an engine reads back its own tokens this way,
    /// never by parsing the text).
    pub fn as_number(&self) -> Option<i64> {
        match &self.0 {
            VersionRepr::Number(n) => Some(*n),
            VersionRepr::Text(_) => None,
        }
    }

    /// The text, for a version that is a string.
    pub fn as_text(&self) -> Option<&str> {
        match &self.0 {
            VersionRepr::Number(_) => None,
            VersionRepr::Text(s) => Some(s),
        }
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({self})")
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            VersionRepr::Number(n) => write!(f, "{n}"),
            VersionRepr::Text(s) => f.write_str(s),
        }
    }
}

/// One configuration as stored: its content and its version.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// The configuration's JSON object.
    pub value: Arc<Configuration>,
    /// Its version in the store.
    pub version: Version,
    /// Set when the store was unavailable and this was read from its last-known-good snapshot
    /// ([`crate::backend::cache`]): when it was taken, and why.
    pub from_snapshot: Option<Arc<SnapshotInfo>>,
}

impl Stored {
    /// A configuration as read from its store.
    pub fn new(value: impl Into<Arc<Configuration>>, version: Version) -> Self {
        Stored { value: value.into(), version, from_snapshot: None }
    }
}

/// A whole namespace as read in one bulk call: configuration name → stored configuration (it
/// dereferences to that map), and the entries that could not be read as configurations.
///
/// A corrupt entry (a hand-broken file, a Redis index entry whose key is gone, a value that is
/// not a JSON object) blocks only itself: the others read and write normally, and it can be
/// replaced or removed under a precondition on its [`CorruptEntry::version`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NamespaceData {
    entries: BTreeMap<String, Stored>,
    /// Entries that are not readable configurations, by name.
    pub corrupt: BTreeMap<String, CorruptEntry>,
    /// Set when the store was unavailable and this was served from its last-known-good
    /// snapshot ([`crate::backend::cache`]): when it was taken, and why.
    pub from_snapshot: Option<SnapshotInfo>,
}

/// A stored entry that is not a readable configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct CorruptEntry {
    /// Where it is and what is wrong.
    pub corruption: Corruption,
    /// Its version in the store, to replace or remove it only as it is; `None` when nothing is
    /// stored under its name (an index entry without its data).
    pub version: Option<Version>,
}

impl NamespaceData {
    /// No entries.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an entry that could not be read.
    pub fn insert_corrupt(&mut self, name: impl Into<String>, corruption: Corruption, version: Option<Version>) {
        self.corrupt.insert(name.into(), CorruptEntry { corruption, version });
    }

    /// [`Error::Corrupt`] listing every corrupt entry, if there is one.
    pub fn corruption_error(&self) -> Option<Error> {
        if self.corrupt.is_empty() {
            return None;
        }
        Some(Error::Corrupt { corruptions: self.corrupt.values().map(|c| c.corruption.clone()).collect() })
    }

    /// The readable configurations, and the corrupt entries apart.
    pub fn into_parts(self) -> (BTreeMap<String, Stored>, BTreeMap<String, CorruptEntry>) {
        (self.entries, self.corrupt)
    }
}

impl std::ops::Deref for NamespaceData {
    type Target = BTreeMap<String, Stored>;

    fn deref(&self) -> &Self::Target {
        &self.entries
    }
}

impl std::ops::DerefMut for NamespaceData {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.entries
    }
}

impl IntoIterator for NamespaceData {
    type Item = (String, Stored);
    type IntoIter = std::collections::btree_map::IntoIter<String, Stored>;

    /// The readable configurations (corrupt entries are dropped).
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl FromIterator<(String, Stored)> for NamespaceData {
    fn from_iter<I: IntoIterator<Item = (String, Stored)>>(iter: I) -> Self {
        NamespaceData { entries: iter.into_iter().collect(), corrupt: BTreeMap::new(), from_snapshot: None }
    }
}

/// Where a namespace's data came from when it was served from a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// When the snapshot was taken (the last successful read or write).
    pub taken: SystemTime,
    /// The snapshot file.
    pub path: PathBuf,
    /// Why the store was not used (its unavailability, in words).
    pub reason: String,
    /// It holds only some of the namespace's configurations: those read one by one (the
    /// namespace was never read whole through this backend).
    pub partial: bool,
}

impl SnapshotInfo {
    /// How old the snapshot is.
    pub fn age(&self) -> Duration {
        SystemTime::now().duration_since(self.taken).unwrap_or_default()
    }
}
