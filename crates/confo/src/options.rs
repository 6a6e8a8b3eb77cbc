//! Pieces every engine's options share: reading a credentials dictionary (unknown keys named,
//! values never echoed), host and port parsing, percent-decoding, shortened hosts for
//! messages, and [`Secret`], the wrapper that keeps passwords out of every `Debug` and
//! `Display`.

// Some helpers serve only the network engines, which a build may leave out.
#![cfg_attr(not(feature = "net"), allow(dead_code))]

use std::fmt;

use serde_json::Value;

use crate::model::error::{Error, Result, SpecProblem};
use crate::model::history::{parse_duration, HistoryOptions};
use crate::spec::BackendKind;

/// A credentials dictionary being read: tracks which keys were used so that unknown keys are
/// reported, and never puts a value into an error.
pub(crate) struct Credentials<'a> {
    kind: BackendKind,
    map: &'a serde_json::Map<String, Value>,
    used: Vec<&'static str>,
}

impl<'a> Credentials<'a> {
    pub(crate) fn new(kind: BackendKind, credentials: &'a Value) -> Result<Self> {
        match credentials {
            Value::Object(map) => Ok(Credentials { kind, map, used: Vec::new() }),
            other => Err(Error::spec(
                None,
                format!("credentials must be a JSON object, not {}", crate::model::codec::json_kind(other)),
            )),
        }
    }

    pub(crate) fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.used.push(key);
        self.map.get(key)
    }

    pub(crate) fn required_str(&mut self, key: &'static str) -> Result<&'a str> {
        match self.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s),
            Some(Value::String(_)) => Err(Error::spec(Some(key), "must not be empty")),
            Some(other) => {
                Err(Error::spec(Some(key), format!("must be a string, not {}", crate::model::codec::json_kind(other))))
            }
            None => Err(Error::spec_problem(
                SpecProblem::Missing,
                Some(key),
                format!("missing: the {} backend needs it", self.kind),
            )),
        }
    }

    /// An optional non-empty string.
    pub(crate) fn optional_str(&mut self, key: &'static str) -> Result<Option<&'a str>> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s)),
            Some(_) => Err(Error::spec(Some(key), "must be a non-empty string")),
        }
    }

    /// An optional boolean, given as `true`/`false` or the strings "true"/"false"/"1"/"0".
    #[cfg_attr(not(feature = "tls"), allow(dead_code))] // the engines that speak TLS
    pub(crate) fn optional_bool(&mut self, key: &'static str) -> Result<Option<bool>> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => {
                parse_bool(s).map(Some).ok_or_else(|| Error::spec(Some(key), "must be true or false"))
            }
            Some(_) => Err(Error::spec(Some(key), "must be true or false")),
        }
    }

    /// An optional non-negative integer, given as a number or a numeric string.
    pub(crate) fn optional_u32(&mut self, key: &'static str) -> Result<Option<u32>> {
        let bad = || Error::spec(Some(key), "must be a non-negative whole number, as a number or a numeric string");
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()).map(Some).ok_or_else(bad),
            Some(Value::String(s)) => s.trim().parse::<u32>().map(Some).map_err(|_| bad()),
            Some(_) => Err(bad()),
        }
    }

    /// A TCP port given as a number or a numeric string (`6379` or `"6379"`).
    pub(crate) fn port(&mut self, key: &'static str) -> Result<Option<u16>> {
        let bad = || Error::spec(Some(key), "must be a port number from 1 to 65535, as a number or a numeric string");
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => {
                n.as_u64().and_then(|n| u16::try_from(n).ok()).filter(|&p| p > 0).map(Some).ok_or_else(bad)
            }
            Some(Value::String(s)) => s.trim().parse::<u16>().ok().filter(|&p| p > 0).map(Some).ok_or_else(bad),
            Some(_) => Err(bad()),
        }
    }

    /// Fails on the first key that was never read.
    pub(crate) fn finish(self) -> Result<()> {
        let mut unknown: Vec<&String> = self.map.keys().filter(|k| !self.used.contains(&k.as_str())).collect();
        unknown.sort();
        match unknown.first() {
            None => Ok(()),
            Some(key) => Err(Error::spec_problem(
                SpecProblem::Unknown,
                Some(key),
                format!("unknown key for the {} backend (known: {})", self.kind, self.used.join(", ")),
            )),
        }
    }
}

/// `host[:port]` or `[v6]:port` → (host, port), with `default_port` when none is given.
pub(crate) fn parse_host_port(text: &str, default_port: u16) -> Result<(String, u16)> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        // [::1]:6379
        let (host, after) =
            rest.split_once(']').ok_or_else(|| Error::spec(Some("host"), "unclosed [ in an IPv6 address"))?;
        (host, after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(Error::spec_problem(SpecProblem::Missing, Some("host"), "missing host"));
    }
    let port = match port {
        None => default_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| Error::spec(Some("port"), "must be a port number from 1 to 65535"))?,
    };
    Ok((host.to_owned(), port))
}

/// Percent-decodes a URL part (user names and passwords may hold `@`, `:` or `/` encoded).
pub(crate) fn decode(part: &str) -> Result<String> {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = part.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
            out.push(hex.ok_or_else(|| Error::spec(None, "bad percent-encoding in the URL"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| Error::spec(None, "the URL decodes to invalid UTF-8"))
}

/// A host name as shown in messages: one of more than 64 characters is shortened (a
/// 100,000-character host must not flood a terminal or a log).
pub(crate) fn shorten(host: &str) -> std::borrow::Cow<'_, str> {
    const MAX: usize = 64;
    if host.chars().count() <= MAX {
        return std::borrow::Cow::Borrowed(host);
    }
    let head: String = host.chars().take(40).collect();
    let tail: String = host.chars().rev().take(12).collect::<Vec<_>>().into_iter().rev().collect();
    std::borrow::Cow::Owned(format!("{head}…{tail} ({} characters)", host.chars().count()))
}

/// `true`/`false`/`1`/`0`/`yes`/`no`, as in a URL query or a credentials string.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// A password or token: its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Reads `history`, `history_keep` and `history_max_age` from a credentials dictionary.
pub(crate) fn history_from_credentials(creds: &mut Credentials<'_>) -> Result<HistoryOptions> {
    let mut options = HistoryOptions::default();
    match creds.get("history") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(enabled)) => options.enabled = *enabled,
        Some(Value::String(text)) => {
            set_history_option(&mut options, "history", text)?;
        }
        Some(_) => return Err(Error::spec(Some("history"), "must be on or off (or true or false)")),
    }
    if let Some(keep) = creds.optional_u32("history_keep")? {
        set_history_option(&mut options, "history_keep", &keep.to_string())?;
    }
    if let Some(age) = creds.optional_str("history_max_age")? {
        set_history_option(&mut options, "history_max_age", age)?;
    }
    Ok(options)
}

/// Applies one URL query option; `Ok(false)` if `key` is not a history option.
pub(crate) fn set_history_option(history: &mut HistoryOptions, key: &str, value: &str) -> Result<bool> {
    match key {
        "history" => {
            history.enabled = match value {
                "on" => true,
                "off" => false,
                other => parse_bool(other).ok_or_else(|| Error::spec(Some("history"), "must be on or off"))?,
            }
        }
        "history_keep" => {
            history.keep = value
                .parse::<usize>()
                .ok()
                .filter(|&n| n >= 1)
                .ok_or_else(|| Error::spec(Some("history_keep"), "must be a whole number of at least 1"))?;
        }
        "history_max_age" => {
            history.max_age = Some(parse_duration(value).ok_or_else(|| {
                Error::spec(Some("history_max_age"), "must be a duration such as 90d, 12h, 30m or 45s")
            })?);
        }
        _ => return Ok(false),
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::model::error::tests::spec_key as key_of;

    #[test]
    fn ports_are_numbers_or_numeric_strings() {
        let creds = json!({"p1": 6379, "p2": "2181", "p3": "abc", "p4": 70000, "p5": true, "p6": 0});
        let mut c = Credentials::new(BackendKind::MEMORY, &creds).unwrap();
        assert_eq!(c.port("p1").unwrap(), Some(6379));
        assert_eq!(c.port("p2").unwrap(), Some(2181));
        for key in ["p3", "p4", "p5", "p6"] {
            assert_eq!(key_of(c.port(key).unwrap_err()), Some(key.to_owned()));
        }
        assert_eq!(c.port("absent").unwrap(), None);
    }

    #[test]
    fn a_spec_error_says_what_is_wrong_as_data() {
        let problem = |e: Error| match e {
            Error::InvalidSpec { key, problem, .. } => (key, problem),
            other => panic!("{other:?}"),
        };
        let creds = json!({"known": 1, "typo": 2});
        let mut c = Credentials::new(BackendKind::MEMORY, &creds).unwrap();
        assert_eq!(problem(c.required_str("needed").unwrap_err()), (Some("needed".into()), SpecProblem::Missing));
        assert_eq!(c.port("known").unwrap(), Some(1));
        assert_eq!(problem(c.finish().unwrap_err()), (Some("typo".into()), SpecProblem::Unknown));
        let bad = json!({"p": "abc"});
        let mut c = Credentials::new(BackendKind::MEMORY, &bad).unwrap();
        assert_eq!(problem(c.port("p").unwrap_err()), (Some("p".into()), SpecProblem::Invalid));
    }
}
