//! The commands, by concern, and the input helpers they share (targets, assignments, JSON,
//! document files).

pub(crate) mod backends;
pub(crate) mod configurations;
pub(crate) mod history;
pub(crate) mod namespaces;
pub(crate) mod schema;
pub(crate) mod secrets;
pub(crate) mod serve;
pub(crate) mod transfer;
pub(crate) mod watch;

use std::io::Read;
use std::path::Path;

use confo::Error;
use serde_json::Value;

use crate::args::Format;
use crate::exit::{Exit, Failure};

pub(crate) fn format_of(path: &Path) -> Option<Format> {
    match path.extension()?.to_str()? {
        "json" => Some(Format::Json),
        "yaml" | "yml" => Some(Format::Yaml),
        "toml" => Some(Format::Toml),
        _ => None,
    }
}

pub(crate) fn read_file(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| {
        let code = if e.kind() == std::io::ErrorKind::NotFound { Exit::NotFound } else { Exit::Error };
        Failure::new(code, format!("{}: {e}", path.display()))
    })
}

/// A document file as JSON, whatever its format (by extension; `-` is JSON on stdin).
pub(crate) fn read_document(path: &Path) -> Result<Value, Failure> {
    let (text, name) = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|e| Failure::new(Exit::Error, format!("stdin: {e}")))?;
        (text, "stdin".to_owned())
    } else {
        (read_file(path)?, path.display().to_string())
    };
    let bad = |e: String| Failure::usage(format!("{name} is not a valid document: {e}"));
    match format_of(path) {
        Some(Format::Yaml) => serde_yaml::from_str(&text).map_err(|e| bad(e.to_string())),
        Some(Format::Toml) => toml::from_str(&text).map_err(|e| bad(e.to_string())),
        // A document nests its values two levels down ({"<ns>": {"<config>": …}}): whatever a
        // write accepts and export wrote imports back.
        _ => Ok(parse_json_within(&text, &name, confo::model::json::DOCUMENT_DEPTH)?),
    }
}

/// `NS/CONFIG` → (NS, CONFIG). Names cannot contain `/`, so the first one splits.
pub(crate) fn split_target(target: &str) -> Result<(&str, &str), Failure> {
    target
        .split_once('/')
        .filter(|(ns, cfg)| !ns.is_empty() && !cfg.is_empty())
        .ok_or_else(|| Failure::usage(format!("expected NS/CONFIG, got {target:?}")))
}

/// `FIELD=VALUE` → (FIELD, VALUE as JSON if it parses, else as a string). JSON that parses but
/// repeats a key, or nests too deeply, is an error rather than a string.
pub(crate) fn parse_assignment(assignment: &str) -> Result<(&str, Value), Failure> {
    let (field, raw) = assignment
        .split_once('=')
        .filter(|(field, _)| !field.is_empty())
        .ok_or_else(|| Failure::usage(format!("expected FIELD=VALUE, got {assignment:?}")))?;
    // Deeper than confo accepts is measured first (the parser's own limit would only say so in
    // its message): such a value is an error, never taken for a string.
    let too_deep = confo::model::json::text_depth(raw.as_bytes()) > confo::model::json::MAX_DEPTH;
    let value = match too_deep || serde_json::from_str::<Value>(raw).is_ok() {
        true => parse_json(raw, &format!("the value of {field}"))?,
        false => Value::String(raw.to_owned()),
    };
    Ok((field, value))
}

/// Strict JSON (see `confo::model::json`), with the CLI's wording: "--json is not valid JSON: …".
pub(crate) fn parse_json(text: &str, what: &str) -> Result<Value, Failure> {
    parse_json_within(text, what, confo::model::json::MAX_DEPTH)
}

/// [`parse_json`] of a text that may nest `limit` levels.
pub(crate) fn parse_json_within(text: &str, what: &str, limit: usize) -> Result<Value, Failure> {
    confo::model::json::parse_within(text, what, limit).map_err(|e| match e {
        Error::InvalidValue { location, message } => Failure::usage(format!("{location} is {message}")),
        other => Failure::from(other),
    })
}

pub(crate) fn parse_object(text: &str, what: &str) -> Result<confo::Configuration, Failure> {
    match parse_json(text, what)? {
        Value::Object(map) => Ok(map),
        _ => Err(Failure::usage(format!("{what} needs a JSON object, like '{{\"host\": \"db\"}}'"))),
    }
}
