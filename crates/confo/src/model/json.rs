//! Strict parsing of JSON that people and programs hand to confo (CLI arguments, files,
//! documents to import).
//!
//! Two things plain `serde_json::from_str` lets through or words badly:
//!
//! - **Duplicate keys.** `{"port": 1, "port": 2}` is valid JSON to most parsers, which keep one
//!   value silently. A configuration with a key given twice is almost always a mistake (a merge
//!   gone wrong, a copied line), so it is refused, naming the key and where it is.
//! - **Depth.** Values nest at most [`MAX_DEPTH`] levels (serde_json's limit, which keeps the
//!   parser's recursion far from the stack's end on every thread); deeper input is refused with
//!   that limit named, never a stack overflow.
//!
//! Numbers keep their exact text (see the crate's numbers section).

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::model::error::{Error, Result};

/// How deeply JSON may nest: arrays and objects within each other, a configuration's own object
/// counting as the first level. serde_json reads no deeper by default, so confo writes no
/// deeper either.
pub const MAX_DEPTH: usize = 127;

/// How deeply an exported document may nest: `{"<ns>": {"<config>": …}}` around values as
/// deep as a write accepts. Every stored copy is read with the write limit plus its own
/// wrapper's levels, so whatever a write accepts reads back (history records one more, export
/// documents two, snapshots three).
pub const DOCUMENT_DEPTH: usize = MAX_DEPTH + 2;

/// Parses JSON text strictly; `what` names the input in the error (`--json`, `backup.json`).
///
/// ```
/// let err = confo::model::json::parse(r#"{"port": 1, "port": 2}"#, "--json").unwrap_err();
/// assert!(err.to_string().contains("duplicate key \"port\""));
/// let value = confo::model::json::parse(r#"{"id": 123456789012345678901234567890}"#, "--json")?;
/// assert_eq!(value["id"].to_string(), "123456789012345678901234567890");
/// # Ok::<(), confo::Error>(())
/// ```
pub fn parse(text: &str, what: &str) -> Result<Value> {
    parse_within(text, what, MAX_DEPTH)
}

/// [`parse`] of a text that may nest `limit` levels (an export document: [`DOCUMENT_DEPTH`]).
/// The depth is measured before parsing, so deeper input is refused by name.
pub fn parse_within(text: &str, what: &str, limit: usize) -> Result<Value> {
    let invalid = |message: String| Error::InvalidValue {
        location: what.to_owned(),
        message: format!("not valid JSON: {message}"),
    };
    if text_depth(text.as_bytes()) > limit {
        return Err(invalid(format!("nested more than {limit} levels deep (the most confo accepts)")));
    }
    let value: Value = from_slice_unbounded(text.as_bytes()).map_err(|e| invalid(e.to_string()))?;
    // A second, allocation-light pass over valid JSON: every object's keys must be distinct.
    from_slice_unbounded::<UniqueKeys>(text.as_bytes()).map_err(|e| invalid(e.to_string()))?;
    Ok(value)
}

/// How deeply JSON text nests (arrays and objects within each other), measured without parsing
/// (brackets inside strings do not count): what [`parse_within`] checks first. Text that is not
/// JSON gets a number too; the parser then says what is wrong with it.
pub fn text_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &byte in bytes {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Parses text whose depth was measured ([`text_depth`]) without serde_json's own recursion
/// limit (128), which would refuse a stored copy around a value at the write limit.
fn from_slice_unbounded<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> serde_json::Result<T> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    deserializer.disable_recursion_limit();
    let value = T::deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// Parses a stored copy of values (a history record, a snapshot) that wraps them in `extra`
/// levels of its own: what the write limit allows inside them reads back; anything deeper is
/// refused before parsing.
pub(crate) fn from_slice_nested<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    extra: usize,
) -> std::result::Result<T, String> {
    let limit = MAX_DEPTH + extra;
    if text_depth(bytes) > limit {
        return Err(format!("nested more than {limit} levels deep"));
    }
    from_slice_unbounded(bytes).map_err(|e| e.to_string())
}

/// How deeply a value nests (a scalar is 0, `{}` and `[]` are 1). Iterative, so any value can
/// be measured.
pub(crate) fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((value, level)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(fields) => Box::new(fields.values()),
            _ => continue,
        };
        deepest = deepest.max(level + 1);
        stack.extend(children.map(|child| (child, level + 1)));
    }
    deepest
}

/// How deeply a configuration nests, its own object the first level (`{}` is 1).
pub fn object_depth(object: &serde_json::Map<String, Value>) -> usize {
    object.values().map(depth).max().unwrap_or(0) + 1
}

/// Walks a JSON document and fails on the first object that repeats a key.
struct UniqueKeys;

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueKeysVisitor)
    }
}

struct UniqueKeysVisitor;

impl<'de> Visitor<'de> for UniqueKeysVisitor {
    type Value = UniqueKeys;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> std::result::Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_i64<E>(self, _: i64) -> std::result::Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_u64<E>(self, _: u64) -> std::result::Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_f64<E>(self, _: f64) -> std::result::Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_str<E>(self, _: &str) -> std::result::Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_unit<E>(self) -> std::result::Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<UniqueKeys, A::Error> {
        while seq.next_element::<UniqueKeys>()?.is_some() {}
        Ok(UniqueKeys)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<UniqueKeys, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            map.next_value::<UniqueKeys>()?;
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
        }
        Ok(UniqueKeys)
    }
}

/// `an array`, `a string`, …: what kind of JSON value this is, for messages.
pub fn kind(value: &Value) -> &'static str {
    crate::model::codec::json_kind(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        for text in [r#"{"a": 1, "a": 1}"#, r#"{"x": [{"b": {"c": 1, "c": 2}}]}"#] {
            let err = parse(text, "input").unwrap_err().to_string();
            assert!(err.contains("duplicate key") && err.contains("line 1"), "{err}");
        }
        parse(r#"{"a": {"a": 1}, "b": [{"a": 1}, {"a": 2}]}"#, "input").expect("same key in different objects");
    }

    #[test]
    fn text_depth_skips_strings_and_escapes() {
        assert_eq!(text_depth(br#"{"a": "[[[{{", "b": [1, {"c": "\\"]"}]}"#), 3);
        assert_eq!(text_depth(b"5"), 0);
        assert_eq!(text_depth(b"[]"), 1);
        let deep = format!("{{\"v\": {}{}}}", "[".repeat(126), "]".repeat(126));
        assert_eq!(text_depth(deep.as_bytes()), MAX_DEPTH);
        // Wrapped once more, as a history record wraps it: refused by the default parser,
        // read with the wrapper's level allowed.
        let record = format!("{{\"value\": {deep}}}");
        assert!(serde_json::from_str::<Value>(&record).is_err());
        assert!(from_slice_nested::<Value>(record.as_bytes(), 1).is_ok());
        assert!(from_slice_nested::<Value>(record.as_bytes(), 0).is_err());
        assert!(parse_within(&record, "doc", DOCUMENT_DEPTH).is_ok());
    }

    #[test]
    fn depth_limit_is_named() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        parse(&ok, "input").expect("at the limit");
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let err = parse(&deep, "input").unwrap_err().to_string();
        assert!(err.contains("nested more than 127 levels"), "{err}");
        assert_eq!(depth(&parse(&ok, "input").expect("ok")), MAX_DEPTH);
        assert_eq!(depth(&serde_json::json!({"a": [1, {"b": []}], "c": 1})), 4);
        assert_eq!(depth(&serde_json::json!(5)), 0);
    }
}
