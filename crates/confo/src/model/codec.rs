//! The JSON codec every engine shares: a stored value parsed as a configuration, the words for
//! what is wrong with one, and a configuration's encoded size.

use crate::model::version::Configuration;

/// Parses a stored configuration: a JSON object. On failure: (line, column) when known, and
/// what is wrong.
pub(crate) fn parse_config(bytes: &[u8]) -> std::result::Result<Configuration, (Option<(usize, usize)>, String)> {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(other) => Err((None, format!("top level is {}, not a JSON object", json_kind(&other)))),
        Err(e) => {
            let message = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let problem = message.strip_suffix(&suffix).unwrap_or(&message).to_owned();
            Err((Some((e.line(), e.column())), problem))
        }
    }
}

/// A [`parse_config`] failure as one phrase for a message about a stored value in a store
/// that is not a file: the problem, and where in the value when known (" at line L column C").
#[cfg_attr(not(feature = "net"), allow(dead_code))]
pub(crate) fn describe_problem((position, problem): (Option<(usize, usize)>, String)) -> String {
    match position {
        Some((line, column)) => format!("{problem} at line {line} column {column}"),
        None => problem,
    }
}

/// "an array", "a string", … for messages.
pub(crate) fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// The length of a configuration as compact JSON, without building the text.
pub(crate) fn json_size(value: &Configuration) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a JSON map to an infallible sink cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}
