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

use crate::error::{Error, Result};

/// How deeply JSON may nest: arrays and objects within each other, a configuration's own object
/// counting as the first level. serde_json reads no deeper, so confo writes no deeper either.
pub const MAX_DEPTH: usize = 127;

/// Parses JSON text strictly; `what` names the input in the error (`--json`, `backup.json`).
///
/// ```
/// let err = confo::json::parse(r#"{"port": 1, "port": 2}"#, "--json").unwrap_err();
/// assert!(err.to_string().contains("duplicate key \"port\""));
/// let value = confo::json::parse(r#"{"id": 123456789012345678901234567890}"#, "--json")?;
/// assert_eq!(value["id"].to_string(), "123456789012345678901234567890");
/// # Ok::<(), confo::Error>(())
/// ```
pub fn parse(text: &str, what: &str) -> Result<Value> {
    let invalid = |e: serde_json::Error| {
        let message = e.to_string();
        let message = if message.starts_with("recursion limit exceeded") {
            message.replacen(
                "recursion limit exceeded",
                &format!("nested more than {MAX_DEPTH} levels deep (the most confo accepts)"),
                1,
            )
        } else {
            message
        };
        Error::InvalidValue { location: what.to_owned(), message: format!("not valid JSON: {message}") }
    };
    let value: Value = serde_json::from_str(text).map_err(invalid)?;
    // A second, allocation-light pass over valid JSON: every object's keys must be distinct.
    serde_json::from_str::<UniqueKeys>(text).map_err(invalid)?;
    Ok(value)
}

/// How deeply a value nests (a scalar is 0, `{}` and `[]` are 1). Iterative, so any value can
/// be measured.
pub fn depth(value: &Value) -> usize {
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
    crate::codec::json_kind(value)
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
