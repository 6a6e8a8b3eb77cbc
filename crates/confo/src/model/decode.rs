//! What engines read, decoded once: the stored bytes of a namespace's configurations become a
//! namespace as read ([`Maps`]) or in the compact form the session caches ([`Compacts`]).
//!
//! An engine reads a namespace and hands each configuration's stored bytes and version to a
//! [`Sink`] ([`Backend::scan`](crate::backend::Backend::scan)), on the thread that read it and
//! as soon as it is read: the sink parses and keeps what it makes, so a namespace is never held
//! twice (as bytes and values, or as maps and compact values), and a large one is decoded on as
//! many threads as the engine reads it on. The engine knows nothing of JSON, maps or compact
//! forms; it words a refusal ([`Refused`]) in its own terms (where the value is stored).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::model::codec::parse_config;
use crate::model::compact::{Compact, CompactNamespace, Keys};
use crate::model::error::{Corruption, Error};
use crate::model::version::{CorruptEntry, NamespaceData, SnapshotInfo, Stored, Version};

/// What a namespace's configurations are decoded into, as an engine reads them.
///
/// An engine calls [`Sink::entry`] with each configuration's stored bytes (from any of its
/// reading threads: a sink is shared), [`Sink::corrupt`] for what cannot be a configuration
/// (an index entry without data, bytes [`Sink::entry`] refused), and a backend that holds
/// values already decoded (the memory engine, a custom backend) gives them all at once with
/// [`Sink::loaded`].
pub trait Sink: Send + Sync {
    /// Says how many entries are coming (an engine that knows calls it first), so that what
    /// keeps them is allocated once. The default ignores it.
    fn expect(&self, count: usize) {
        let _ = count;
    }

    /// Decodes one configuration's stored bytes (a JSON object) and keeps it with its version;
    /// returns why not, for the engine to record with [`Sink::corrupt`] where it was stored.
    fn entry(&self, name: String, bytes: &[u8], version: Version) -> Result<(), Refused>;

    /// Records an entry that is not a readable configuration; `version` is `None` when nothing
    /// is stored under its name.
    fn corrupt(&self, name: String, corruption: Corruption, version: Option<Version>);

    /// Keeps a whole namespace that was read already decoded.
    fn loaded(&self, data: NamespaceData);
}

/// Stored bytes that are not a configuration, as [`Sink::entry`] refused them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The configuration's name.
    pub name: String,
    /// Its version in the store (the bytes are stored: they can be replaced or removed as they are).
    pub version: Version,
    /// The line and column of the problem in the bytes, when it has one.
    pub position: Option<(usize, usize)>,
    /// What is wrong (`top level is an array, not a JSON object`, serde's words for bad JSON).
    pub problem: String,
}

impl Refused {
    /// The problem and where in the value it is (`… at line L column C`), for a message about
    /// a value in a store that is not a file.
    pub fn described(&self) -> String {
        crate::model::codec::describe_problem((self.position, self.problem.clone()))
    }
}

/// Parses stored bytes as a configuration.
fn parse(
    name: String,
    bytes: &[u8],
    version: Version,
) -> Result<(String, crate::model::version::Configuration, Version), Refused> {
    match parse_config(bytes) {
        Ok(map) => Ok((name, map, version)),
        Err((position, problem)) => Err(Refused { name, version, position, problem }),
    }
}

/// What a point read found: nothing yet, the configuration, or why it is not one.
type Found = Option<Result<Stored, CorruptEntry>>;

/// Decodes one configuration, for a point read
/// ([`Backend::read_one`](crate::backend::Backend::read_one)): the engine hands it what it
/// stores under the name as a bulk read hands a [`Sink`] each entry, so both say the same of
/// it. Entries under other names are ignored (unparsed), so a namespace read whole can be
/// handed to it too.
#[derive(Debug)]
pub struct One {
    name: String,
    found: Mutex<Found>,
}

impl One {
    /// A sink for the configuration `name`.
    pub fn new(name: impl Into<String>) -> Arc<Self> {
        Arc::new(One { name: name.into(), found: Mutex::new(None) })
    }

    /// The configuration's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What was read: `None` if nothing is stored under the name, [`Error::Corrupt`] if what
    /// is stored is not a configuration (where it is, as the engine said).
    pub fn read(&self) -> crate::model::error::Result<Option<Stored>> {
        match &*lock(&self.found) {
            None => Ok(None),
            Some(Ok(stored)) => Ok(Some(stored.clone())),
            Some(Err(entry)) => Err(Error::Corrupt { corruptions: vec![entry.corruption.clone()] }),
        }
    }

    /// What was read, as it was handed: the configuration, or the entry that is not one.
    pub fn found(&self) -> Found {
        lock(&self.found).clone()
    }

    /// Hands what was read to another sink, as an engine would.
    pub fn forward(&self, sink: &dyn Sink) {
        match self.found() {
            None => {}
            Some(Ok(stored)) => sink.loaded([(self.name.clone(), stored)].into_iter().collect()),
            Some(Err(entry)) => sink.corrupt(self.name.clone(), entry.corruption, entry.version),
        }
    }
}

impl Sink for One {
    fn entry(&self, name: String, bytes: &[u8], version: Version) -> Result<(), Refused> {
        if name != self.name {
            return Ok(());
        }
        let (_, map, version) = parse(name, bytes, version)?;
        *lock(&self.found) = Some(Ok(Stored::new(map, version)));
        Ok(())
    }

    fn corrupt(&self, name: String, corruption: Corruption, version: Option<Version>) {
        if name == self.name {
            *lock(&self.found) = Some(Err(CorruptEntry { corruption, version }));
        }
    }

    fn loaded(&self, mut data: NamespaceData) {
        if let Some(stored) = data.remove(&self.name) {
            *lock(&self.found) = Some(Ok(stored));
        } else if let Some(entry) = data.corrupt.remove(&self.name) {
            *lock(&self.found) = Some(Err(entry));
        }
    }
}

/// A lock that a panic elsewhere did not make unusable (what it guards is only ever added to).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Decodes into a namespace as read ([`NamespaceData`]): what
/// [`Backend::load`](crate::backend::Backend::load) returns.
#[derive(Debug, Default)]
pub struct Maps {
    data: Mutex<NamespaceData>,
}

impl Maps {
    /// A sink to hand to an engine.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// What was decoded (and leaves this sink empty).
    pub fn take(&self) -> NamespaceData {
        std::mem::take(&mut *lock(&self.data))
    }
}

impl Sink for Maps {
    fn entry(&self, name: String, bytes: &[u8], version: Version) -> Result<(), Refused> {
        let (name, map, version) = parse(name, bytes, version)?;
        lock(&self.data).insert(name, Stored::new(map, version));
        Ok(())
    }

    fn corrupt(&self, name: String, corruption: Corruption, version: Option<Version>) {
        lock(&self.data).insert_corrupt(name, corruption, version);
    }

    fn loaded(&self, data: NamespaceData) {
        let mut held = lock(&self.data);
        if held.is_empty() && held.corrupt.is_empty() {
            *held = data;
            return;
        }
        let from_snapshot = data.from_snapshot.clone();
        let (entries, corrupt) = data.into_parts();
        held.extend(entries);
        held.corrupt.extend(corrupt);
        if from_snapshot.is_some() {
            held.from_snapshot = from_snapshot;
        }
    }
}

/// What [`Compacts`] has decoded so far.
#[derive(Debug, Default)]
struct Decoded {
    entries: Vec<(String, Arc<Compact>, Version)>,
    corrupt: BTreeMap<String, CorruptEntry>,
    from_snapshot: Option<SnapshotInfo>,
}

/// Decodes into the compact form ([`CompactNamespace`]): what
/// [`Backend::load_compact`](crate::backend::Backend::load_compact) returns. Each configuration
/// is made compact on the thread that parsed it, its map freed at once; the field names are
/// shared through a few [`Keys`] (one per thread decoding at a time).
#[derive(Debug, Default)]
pub struct Compacts {
    decoded: Mutex<Decoded>,
    /// The field-name tables not in use by a decoding thread now.
    keys: Mutex<Vec<Keys>>,
}

impl Compacts {
    /// A sink to hand to an engine.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// What was decoded (and leaves this sink empty).
    pub fn take(&self) -> CompactNamespace {
        let decoded = std::mem::take(&mut *lock(&self.decoded));
        let keys = lock(&self.keys).drain(..).next().unwrap_or_default();
        CompactNamespace {
            entries: decoded.entries,
            corrupt: decoded.corrupt,
            from_snapshot: decoded.from_snapshot,
            keys,
        }
    }
}

impl Sink for Compacts {
    fn expect(&self, count: usize) {
        lock(&self.decoded).entries.reserve(count);
    }

    fn entry(&self, name: String, bytes: &[u8], version: Version) -> Result<(), Refused> {
        let (name, map, version) = parse(name, bytes, version)?;
        let mut keys = lock(&self.keys).pop().unwrap_or_default();
        let value = Arc::new(Compact::new(&map, &mut keys));
        lock(&self.keys).push(keys);
        drop(map);
        lock(&self.decoded).entries.push((name, value, version));
        Ok(())
    }

    fn corrupt(&self, name: String, corruption: Corruption, version: Option<Version>) {
        lock(&self.decoded).corrupt.insert(name, CorruptEntry { corruption, version });
    }

    fn loaded(&self, data: NamespaceData) {
        // Made compact on several threads for a large namespace (see `CompactNamespace::from`).
        let compact = CompactNamespace::from(data);
        lock(&self.keys).insert(0, compact.keys);
        let mut decoded = lock(&self.decoded);
        if decoded.entries.is_empty() {
            decoded.entries = compact.entries;
        } else {
            decoded.entries.extend(compact.entries);
        }
        decoded.corrupt.extend(compact.corrupt);
        if compact.from_snapshot.is_some() {
            decoded.from_snapshot = compact.from_snapshot;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sinks_decode_what_they_are_given_and_refuse_what_is_not_a_configuration() {
        let (maps, compacts) = (Maps::new(), Compacts::new());
        for sink in [&*maps as &dyn Sink, &*compacts] {
            sink.entry("a".into(), br#"{"port": 5432, "big": 12345678901234567890123}"#, Version::number(1)).unwrap();
            let refused = sink.entry("b".into(), b"[1, 2]", Version::number(2)).unwrap_err();
            assert_eq!((refused.name.as_str(), refused.position), ("b", None));
            assert!(refused.problem.contains("not a JSON object"), "{}", refused.problem);
            let refused = sink.entry("c".into(), b"{\n  \"x\": ", Version::number(3)).unwrap_err();
            assert_eq!(refused.position.map(|(line, _)| line), Some(2), "{refused:?}");
            assert!(refused.described().contains("at line 2"), "{}", refused.described());
            let corruption = Corruption { location: "somewhere".into(), problem: refused.problem };
            sink.corrupt("c".into(), corruption, Some(Version::number(3)));
        }
        let data = maps.take();
        assert_eq!(data.len(), 1);
        assert_eq!(data["a"].value["big"].to_string(), "12345678901234567890123", "exact numbers");
        assert_eq!(data.corrupt.keys().collect::<Vec<_>>(), ["c"]);
        let compact = compacts.take();
        assert_eq!(compact.entries.len(), 1);
        let (name, value, version) = &compact.entries[0];
        assert_eq!((name.as_str(), version), ("a", &Version::number(1)));
        assert_eq!(value.to_configuration(), data["a"].value.as_ref().clone());
        assert!(compact.corrupt.contains_key("c"));
        assert!(maps.take().is_empty(), "taken: the sink is empty again");
    }

    #[test]
    fn a_namespace_given_decoded_is_kept_as_it_is() {
        let mut data = NamespaceData::new();
        let mut map = crate::model::version::Configuration::new();
        map.insert("k".into(), 1.into());
        data.insert("x".into(), Stored::new(map, Version::number(7)));
        let compacts = Compacts::new();
        compacts.loaded(data.clone());
        compacts.entry("y".into(), b"{}", Version::number(8)).unwrap();
        let compact = compacts.take();
        let mut names: Vec<&str> = compact.entries.iter().map(|(n, _, _)| n.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["x", "y"]);
        let maps = Maps::new();
        maps.loaded(data);
        assert_eq!(maps.take()["x"].version, Version::number(7));
    }

    #[test]
    fn a_point_read_keeps_only_its_name_and_says_the_same_as_a_bulk_read() {
        let one = One::new("b");
        assert_eq!(one.read().unwrap(), None, "nothing handed: nothing stored");
        one.entry("a".into(), b"not even json", Version::number(1)).unwrap();
        assert_eq!(one.read().unwrap(), None, "another name is not parsed");
        let refused = one.entry("b".into(), b"[1]", Version::number(2)).unwrap_err();
        let corruption = Corruption { location: "key b".into(), problem: refused.described() };
        one.corrupt("b".into(), corruption.clone(), Some(refused.version));
        match one.read() {
            Err(Error::Corrupt { corruptions }) => assert_eq!(corruptions, vec![corruption]),
            other => panic!("{other:?}"),
        }
        let maps = Maps::new();
        one.forward(&*maps);
        assert_eq!(maps.take().corrupt["b"].version, Some(Version::number(2)));
        one.entry("b".into(), br#"{"n": 12345678901234567890123}"#, Version::number(3)).unwrap();
        let stored = one.read().unwrap().unwrap();
        assert_eq!(
            (stored.value["n"].to_string().as_str(), &stored.version),
            ("12345678901234567890123", &Version::number(3))
        );
        let again = One::new("b");
        one.forward(&*again);
        assert_eq!(again.read().unwrap(), Some(stored));
    }

    /// Several threads decode into one sink at once (as an engine's reading threads do).
    #[test]
    fn a_sink_is_shared_by_threads() {
        let compacts = Compacts::new();
        std::thread::scope(|scope| {
            for t in 0..4 {
                let sink = compacts.clone();
                scope.spawn(move || {
                    for i in 0..250 {
                        let bytes = format!(r#"{{"host": "h{t}", "n": {i}}}"#);
                        sink.entry(format!("c{t}-{i}"), bytes.as_bytes(), Version::number(i)).unwrap();
                    }
                });
            }
        });
        assert_eq!(compacts.take().entries.len(), 1000);
    }
}
