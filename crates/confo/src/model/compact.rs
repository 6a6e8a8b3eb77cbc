//! The compact form the session keeps its cached namespaces in.
//!
//! A configuration read from a store is a `serde_json::Map` (an `IndexMap` of `String` keys
//! and 80-byte `Value`s, with spare capacity, each number's exact text in its own allocation):
//! about 8× its JSON bytes. A cached namespace is read far more often than it is changed, so
//! the session keeps each configuration as a [`Compact`] instead:
//!
//! - field names **interned**: one `Arc<str>` per distinct name in a namespace (configurations
//!   of one namespace tend to share their field names), 16 bytes per field;
//! - each value a 24-byte node, exact-size slices instead of growable vectors and maps;
//!   strings and numbers of up to 22 bytes **inline** (no allocation), longer ones a `Box<str>`;
//! - numbers kept as their exact text, as the rest of confo does (`1e400`, `-0`, 30-digit
//!   integers unchanged).
//!
//! Reading one field finds it by name (a configuration has few fields: a scan beats a hash)
//! and builds only that field's `Value`; the whole configuration is built when asked for.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde_json::{Map, Number, Value};

use crate::model::error::Corruption;
use crate::model::threads::map_on_threads;
use crate::model::version::{Configuration, CorruptEntry, NamespaceData, SnapshotInfo, Version};

/// Longest text kept inside a node instead of in an allocation of its own.
const INLINE: usize = 22;

/// One configuration in compact form. Built with [`Compact::new`], read back with
/// [`Compact::field`] and [`Compact::to_configuration`]; compared with a configuration by
/// [`Compact::same_as`] (no `PartialEq`: a field-by-field one would see order as a difference).
#[derive(Clone)]
pub struct Compact {
    fields: Box<[(Arc<str>, Node)]>,
    /// Whether it holds a sealed secret anywhere ([`crate::model::sealed::has_sealed`], asked once).
    sealed: bool,
}

/// One JSON value: 24 bytes, whatever it holds.
#[derive(Clone)]
pub struct Node(Repr);

#[derive(Clone)]
enum Repr {
    Null,
    Bool(bool),
    /// A number's exact text, inline.
    SmallNumber(Inline),
    Number(Box<str>),
    SmallString(Inline),
    String(Box<str>),
    Array(Box<[Node]>),
    Object(Box<[(Arc<str>, Node)]>),
}

/// Up to [`INLINE`] bytes of UTF-8 text, in place.
#[derive(Clone, Copy)]
struct Inline {
    len: u8,
    bytes: [u8; INLINE],
}

impl Inline {
    fn new(text: &str) -> Option<Inline> {
        let mut bytes = [0; INLINE];
        bytes.get_mut(..text.len())?.copy_from_slice(text.as_bytes());
        Some(Inline { len: text.len() as u8, bytes })
    }

    fn as_str(&self) -> &str {
        // Always a copy of a whole `&str` (see `new`).
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

/// Field names already seen, shared by the configurations made with the same `Keys`.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    seen: HashSet<Arc<str>>,
    /// The top-level field names of the last configuration, by position: configurations of a
    /// namespace tend to have the same fields in the same order, so most names are found here
    /// with one comparison instead of a hash.
    last: Vec<Arc<str>>,
}

/// How many top-level positions [`Keys`] remembers.
const POSITIONS: usize = 64;

impl Keys {
    /// The shared name for a top-level field at `position`.
    fn at(&mut self, position: usize, name: &str) -> Arc<str> {
        if let Some(key) = self.last.get(position).filter(|key| ***key == *name) {
            return key.clone();
        }
        let key = self.get(name);
        match position {
            p if p < self.last.len() => self.last[p] = key.clone(),
            p if p == self.last.len() && p < POSITIONS => self.last.push(key.clone()),
            _ => {}
        }
        key
    }

    fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(key) = self.seen.get(name) {
            return key.clone();
        }
        let key: Arc<str> = Arc::from(name);
        // Bounded: a namespace whose configurations all have different fields keeps no more.
        if self.seen.len() < 65_536 {
            self.seen.insert(key.clone());
        }
        key
    }
}

impl Compact {
    /// The compact form of `configuration`, its field names shared through `keys`.
    pub fn new(configuration: &Configuration, keys: &mut Keys) -> Compact {
        let fields = configuration
            .iter()
            .enumerate()
            .map(|(position, (key, value))| (keys.at(position, key), Node::new(value, keys)))
            .collect();
        Compact { fields, sealed: crate::model::sealed::has_sealed(configuration) }
    }

    /// Its fields in order, to read without building `serde_json` values (a converter to
    /// another language's objects, say).
    pub fn fields(&self) -> impl ExactSizeIterator<Item = (&str, View<'_>)> {
        self.fields.iter().map(|(key, node)| (&**key, node.view()))
    }

    /// Whether it holds a sealed secret anywhere (see [`crate::secrets`]).
    pub fn has_sealed(&self) -> bool {
        self.sealed
    }

    /// One field's value, or `None` if there is no such field.
    pub fn field(&self, name: &str) -> Option<Value> {
        self.fields.iter().find(|(key, _)| &**key == name).map(|(_, node)| node.to_value())
    }

    /// The whole configuration, fields in their order.
    pub fn to_configuration(&self) -> Configuration {
        to_map(&self.fields)
    }

    /// Whether this equals `configuration` as JSON (fields in any order, as `serde_json`'s
    /// own comparison: a persist skips an edit that changes nothing but the order).
    pub fn same_as(&self, configuration: &Configuration) -> bool {
        same_object(&self.fields, configuration)
    }

    /// How many fields it has.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether it has no field.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

/// A namespace as read, each configuration in compact form: what
/// [`Backend::load_compact`](crate::backend::Backend::load_compact) returns, and what the session caches.
#[derive(Debug, Default)]
pub struct CompactNamespace {
    /// The readable configurations: name, content, version in the store (in no set order).
    pub entries: Vec<(String, Arc<Compact>, Version)>,
    /// Entries that are not readable configurations, by name.
    pub corrupt: BTreeMap<String, CorruptEntry>,
    /// Set when it was served from a last-known-good snapshot (see [`NamespaceData`]).
    pub from_snapshot: Option<SnapshotInfo>,
    /// The field names its configurations share, for those made compact later.
    pub keys: Keys,
}

/// A namespace of at least this many configurations is large: made compact on several threads
/// (half as many each), and the session's after-load hook runs once it is loaded.
pub(crate) const LARGE: usize = 2048;

impl CompactNamespace {
    /// Adds a readable configuration.
    pub fn insert(&mut self, name: String, value: Arc<Compact>, version: Version) {
        self.entries.push((name, value, version));
    }

    /// Records an entry that could not be read (as [`NamespaceData::insert_corrupt`]).
    pub fn insert_corrupt(&mut self, name: impl Into<String>, corruption: Corruption, version: Option<Version>) {
        self.corrupt.insert(name.into(), CorruptEntry { corruption, version });
    }
}

impl From<NamespaceData> for CompactNamespace {
    /// Makes a namespace as read compact: on several threads, at least 1,024 configurations
    /// each; the maps as read are freed together, after (freed one by one during the
    /// conversion, their memory would be refilled with compact values scattered over every
    /// page, which the allocator could then never give back to the system).
    fn from(mut data: NamespaceData) -> Self {
        let from_snapshot = data.from_snapshot.take();
        let (entries, corrupt) = data.into_parts();
        let (compact, keys) = map_on_threads(entries.iter().collect(), LARGE / 2, |keys, (name, stored)| {
            let (value, version) = compact_stored(stored, keys);
            (name.clone(), value, version)
        });
        drop(entries);
        CompactNamespace { entries: compact, corrupt, from_snapshot, keys }
    }
}

/// A configuration as read, made compact (its field names shared through `keys`), and its
/// version.
pub(crate) fn compact_stored(stored: &crate::model::version::Stored, keys: &mut Keys) -> (Arc<Compact>, Version) {
    (Arc::new(Compact::new(&stored.value, keys)), stored.version.clone())
}

/// Written as the JSON object it is (numbers with their exact text), without building a
/// `serde_json` value.
impl serde::Serialize for Compact {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_fields(&self.fields, serializer)
    }
}

fn serialize_fields<S: serde::Serializer>(fields: &[(Arc<str>, Node)], serializer: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = serializer.serialize_map(Some(fields.len()))?;
    for (key, node) in fields {
        map.serialize_entry(&**key, node)?;
    }
    map.end()
}

impl serde::Serialize for Node {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.view() {
            View::Null => serializer.serialize_unit(),
            View::Bool(b) => serializer.serialize_bool(b),
            View::Number(text) => number(text).serialize(serializer),
            View::String(text) => serializer.serialize_str(text),
            View::Array(items) => serializer.collect_seq(items),
            View::Object(fields) => serialize_fields(fields, serializer),
        }
    }
}

impl std::fmt::Debug for Compact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // As the configuration it stands for (field values may be sealed secrets, never plain).
        std::fmt::Debug::fmt(&self.to_configuration(), f)
    }
}

/// A borrowed look at one value of a [`Compact`].
#[derive(Debug, Clone, Copy)]
pub enum View<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as its exact JSON text.
    Number(&'a str),
    /// A string.
    String(&'a str),
    /// An array's items.
    Array(&'a [Node]),
    /// An object's fields, in order.
    Object(&'a [(Arc<str>, Node)]),
}

impl Node {
    /// A borrowed look at this value.
    pub fn view(&self) -> View<'_> {
        match &self.0 {
            Repr::Null => View::Null,
            Repr::Bool(b) => View::Bool(*b),
            Repr::SmallNumber(text) => View::Number(text.as_str()),
            Repr::Number(text) => View::Number(text),
            Repr::SmallString(text) => View::String(text.as_str()),
            Repr::String(text) => View::String(text),
            Repr::Array(items) => View::Array(items),
            Repr::Object(fields) => View::Object(fields),
        }
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.to_value(), f)
    }
}

fn object(map: &Map<String, Value>, keys: &mut Keys) -> Box<[(Arc<str>, Node)]> {
    map.iter().map(|(key, value)| (keys.get(key), Node::new(value, keys))).collect()
}

fn to_map(fields: &[(Arc<str>, Node)]) -> Map<String, Value> {
    let mut map = Map::with_capacity(fields.len());
    for (key, node) in fields {
        map.insert(key.to_string(), node.to_value());
    }
    map
}

/// Equal as JSON objects, as `serde_json` compares them: the same fields with equal values,
/// in any order (the fields in the same order, as usual, are compared in one pass).
fn same_object(fields: &[(Arc<str>, Node)], map: &Map<String, Value>) -> bool {
    if fields.len() != map.len() {
        return false;
    }
    let in_order = fields.iter().zip(map).all(|((key, _), (name, _))| **key == **name);
    match in_order {
        true => fields.iter().zip(map.values()).all(|((_, node), value)| node.same_as(value)),
        false => fields.iter().all(|(key, node)| map.get(&**key).is_some_and(|value| node.same_as(value))),
    }
}

impl Node {
    fn new(value: &Value, keys: &mut Keys) -> Node {
        Node(match value {
            Value::Null => Repr::Null,
            Value::Bool(b) => Repr::Bool(*b),
            Value::Number(n) => {
                let text = n.as_str();
                Inline::new(text).map_or_else(|| Repr::Number(text.into()), Repr::SmallNumber)
            }
            Value::String(s) => Inline::new(s).map_or_else(|| Repr::String(s.as_str().into()), Repr::SmallString),
            Value::Array(items) => Repr::Array(items.iter().map(|item| Node::new(item, keys)).collect()),
            Value::Object(map) => Repr::Object(object(map, keys)),
        })
    }

    /// This value as a `serde_json` value.
    pub fn to_value(&self) -> Value {
        match self.view() {
            View::Null => Value::Null,
            View::Bool(b) => Value::Bool(b),
            View::Number(text) => Value::Number(number(text)),
            View::String(text) => Value::String(text.to_owned()),
            View::Array(items) => Value::Array(items.iter().map(Node::to_value).collect()),
            View::Object(fields) => Value::Object(to_map(fields)),
        }
    }

    fn same_as(&self, value: &Value) -> bool {
        match (self.view(), value) {
            (View::Null, Value::Null) => true,
            (View::Bool(a), Value::Bool(b)) => a == *b,
            (View::Number(a), Value::Number(b)) => a == b.as_str(),
            (View::String(a), Value::String(b)) => a == b,
            (View::Array(a), Value::Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a.same_as(b)),
            (View::Object(a), Value::Object(b)) => same_object(a, b),
            _ => false,
        }
    }
}

/// A number from the exact text serde_json kept for it (deserialized, not `Number::from_str`,
/// which would turn `-0` into `0`).
fn number(text: &str) -> Number {
    serde_json::from_str(text).unwrap_or_else(|_| Number::from(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Configuration {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn every_kind_of_value_comes_back_exactly_and_in_order() {
        let text = r#"{"z": 1, "a": null, "big": 123456789012345678901234567890, "neg0": -0, "d": 0.30000000000000004,
            "huge": 1e400, "t": true, "f": false, "short": "abc", "exactly22": "0123456789012345678901",
            "longer": "01234567890123456789012", "unicode": "é\u0000\"\\", "list": [1, "x", [], {}, {"b": 2, "a": 1}],
            "nested": {"k": {"k": [null]}}, "": "empty key"}"#;
        let original = map(crate::model::json::parse(text, "test").unwrap());
        let compact = Compact::new(&original, &mut Keys::default());
        let back = compact.to_configuration();
        assert_eq!(serde_json::to_string(&back).unwrap(), serde_json::to_string(&original).unwrap());
        assert!(compact.same_as(&original));
        assert_eq!(compact.len(), original.len());
        for (name, value) in &original {
            assert_eq!(compact.field(name).as_ref(), Some(value), "{name}");
        }
        assert_eq!(compact.field("big").unwrap().to_string(), "123456789012345678901234567890");
        assert_eq!(compact.field("neg0").unwrap().to_string(), "-0");
        assert_eq!(compact.field("missing"), None);
        // Written out directly, it is the same JSON text, compact and pretty.
        assert_eq!(serde_json::to_string(&compact).unwrap(), serde_json::to_string(&original).unwrap());
        assert_eq!(serde_json::to_string_pretty(&compact).unwrap(), serde_json::to_string_pretty(&original).unwrap());
        assert!(serde_json::to_string(&compact)
            .unwrap()
            .contains(r#""big":123456789012345678901234567890,"neg0":-0,"#));
    }

    #[test]
    fn any_difference_is_seen() {
        let base = map(json!({"a": 1, "b": "x", "c": [1, 2], "d": {"e": null}}));
        let compact = Compact::new(&base, &mut Keys::default());
        for other in [
            json!({"a": 1, "b": "x", "c": [1, 2]}),
            json!({"a": 1.0, "b": "x", "c": [1, 2], "d": {"e": null}}),
            json!({"a": 1, "b": "y", "c": [1, 2], "d": {"e": null}}),
            json!({"a": 1, "b": "x", "c": [1, 2, 3], "d": {"e": null}}),
            json!({"a": 1, "b": "x", "c": [1, 2], "d": {"e": false}}),
        ] {
            assert!(!compact.same_as(&map(other.clone())), "{other}");
        }
        // The order of fields is not a difference, at any depth (as serde_json compares).
        let reordered = map(json!({"d": {"e": null}, "c": [1, 2], "b": "x", "a": 1}));
        assert!(compact.same_as(&reordered) && reordered == base);
        let nested = Compact::new(&map(json!({"o": {"x": 1, "y": [2]}})), &mut Keys::default());
        assert!(nested.same_as(&map(json!({"o": {"y": [2], "x": 1}}))));
        assert!(!nested.same_as(&map(json!({"o": {"y": [2], "z": 1}}))));
    }

    #[test]
    fn field_names_are_shared_between_configurations() {
        let mut keys = Keys::default();
        let one = Compact::new(&map(json!({"host": "a", "port": 1})), &mut keys);
        let two = Compact::new(&map(json!({"port": 2, "host": "b"})), &mut keys);
        assert!(Arc::ptr_eq(&one.fields[0].0, &two.fields[1].0));
        assert!(!one.has_sealed());
        let names: Vec<&str> = two.fields().map(|(name, _)| name).collect();
        assert_eq!(names, ["port", "host"]);
        assert!(matches!(two.fields().next(), Some((_, View::Number("2")))));
        assert_eq!(std::mem::size_of::<Node>(), 24);
    }
}
