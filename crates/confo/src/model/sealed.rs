//! How a sealed secret looks in a stored configuration (`{"$confo_secret": "v1:<key id>:…"}`),
//! recognised without opening it. Sealing and opening are in [`crate::secrets`].

use serde_json::Value;

use crate::model::version::Configuration;

/// The one key of a sealed value's object.
pub(crate) const MARKER: &str = "$confo_secret";

/// The text of a sealed value (`v1:<key id>:<nonce>:<ciphertext>`), for one.
pub(crate) fn sealed_text(value: &Value) -> Option<&str> {
    match value {
        Value::Object(map) if map.len() == 1 => map.get(MARKER)?.as_str(),
        _ => None,
    }
}

/// Whether a value is a sealed secret (`{"$confo_secret": "…"}`).
pub fn is_sealed(value: &Value) -> bool {
    sealed_text(value).is_some()
}

/// The key id a sealed value names.
pub fn key_id(value: &Value) -> Option<&str> {
    sealed_text(value)?.split(':').nth(1)
}

/// Whether a configuration holds a sealed value anywhere (nothing allocated: reads call it on
/// every configuration they return).
pub fn has_sealed(config: &Configuration) -> bool {
    fn within(value: &Value) -> bool {
        match value {
            Value::Object(inner) => is_sealed(value) || inner.values().any(within),
            Value::Array(items) => items.iter().any(within),
            _ => false,
        }
    }
    config.values().any(within)
}
