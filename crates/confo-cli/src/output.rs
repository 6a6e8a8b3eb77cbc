//! Everything the CLI prints: data on stdout, messages on stderr, in the formats of `--output`.
//!
//! Two rules hold for every byte written here:
//!
//! - **A closed stream never stops a command.** `confo ls big | head -1` closes stdout early; the
//!   write fails with `EPIPE` (Rust ignores `SIGPIPE`), and `println!` would panic. Here the
//!   stream is marked closed and later output to it is dropped, so a command that changes the
//!   store finishes by the store's result, whatever happened to its output.
//! - **Text from the store cannot drive the terminal.** Names and values come from stores that
//!   others write (a Redis index entry can hold `ESC [2J`). Line-oriented output escapes control
//!   characters always (a name holding a newline would otherwise read as two names; such names
//!   can never be created or addressed by confo), and bidirectional controls (U+202A-202E,
//!   U+2066-2069, which make `invoice\u{202E}gpj.exe` display as `invoiceexe.jpg`) when the
//!   stream is a terminal: piped, they stay as stored, since existing names may hold them.
//!   JSON output escapes control characters by itself.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;

use crate::{Failure, Format};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static STDERR_CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes to stdout; once a write fails (a closed pipe), nothing more is written.
pub fn stdout(args: std::fmt::Arguments<'_>) {
    write_to(&mut std::io::stdout().lock(), &STDOUT_CLOSED, args);
}

/// Writes to stderr; once a write fails, nothing more is written.
pub fn stderr(args: std::fmt::Arguments<'_>) {
    write_to(&mut std::io::stderr().lock(), &STDERR_CLOSED, args);
}

/// True once stdout has been closed by its reader.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

fn write_to(stream: &mut dyn Write, closed: &AtomicBool, args: std::fmt::Arguments<'_>) {
    if closed.load(Ordering::Relaxed) {
        return;
    }
    if stream.write_fmt(args).and_then(|()| stream.flush()).is_err() {
        closed.store(true, Ordering::Relaxed);
    }
}

/// Which stream text is for, to decide how much to escape.
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    /// Standard output.
    Out,
    /// Standard error.
    Err,
}

impl Stream {
    fn is_terminal(self) -> bool {
        match self {
            Stream::Out => std::io::stdout().is_terminal(),
            Stream::Err => std::io::stderr().is_terminal(),
        }
    }
}

/// `text` safe to print on `stream`: control characters always, and bidirectional controls on a
/// terminal, written as `\u{1b}`.
pub fn safe(text: &str, stream: Stream) -> Cow<'_, str> {
    let bidi = stream.is_terminal();
    let unsafe_char = |c: char| c.is_control() || (bidi && confo::name::is_bidi_control(c));
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Names one per line (the default and `table`), or a list in another format.
pub fn list(names: &[String], output: Option<Format>) -> Result<(), Failure> {
    match output {
        None | Some(Format::Table) => {
            for name in names {
                stdout(format_args!("{}\n", safe(name, Stream::Out)));
            }
            Ok(())
        }
        Some(format) => value(&Value::from(names.to_vec()), format),
    }
}

/// A value in a format on stdout.
pub fn value(value: &Value, format: Format) -> Result<(), Failure> {
    stdout(format_args!("{}", render(value, format)?));
    Ok(())
}

/// A value in a format, ending with a newline.
pub fn render(value: &Value, format: Format) -> Result<String, Failure> {
    let failed = |e: String| Failure::new(1, format!("cannot write this as {format:?}: {e}"));
    let mut text = match format {
        Format::Json => serde_json::to_string_pretty(value).map_err(|e| failed(e.to_string()))?,
        Format::Yaml => serde_yaml::to_string(value).map_err(|e| failed(e.to_string()))?,
        Format::Toml => match value {
            Value::Object(_) => toml::to_string_pretty(value).map_err(|e| failed(e.to_string()))?,
            // TOML documents are tables: wrap anything else.
            other => {
                toml::to_string_pretty(&serde_json::json!({ "value": other })).map_err(|e| failed(e.to_string()))?
            }
        },
        Format::Table => table(value),
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// Two aligned columns (key, value) for an object; one row per item for a list. Keys and values
/// are escaped: a table is for people.
fn table(value: &Value) -> String {
    let cell = |v: &Value| -> String {
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        safe(&text, Stream::Out).into_owned()
    };
    match value {
        Value::Object(map) => {
            let keys: Vec<Cow<'_, str>> = map.keys().map(|k| safe(k, Stream::Out)).collect();
            let width = keys.iter().map(|k| k.chars().count()).max().unwrap_or(0);
            keys.iter().zip(map.values()).map(|(k, v)| format!("{k:width$}  {}\n", cell(v))).collect()
        }
        Value::Array(items) => items.iter().map(|v| format!("{}\n", cell(v))).collect(),
        other => cell(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_whatever_the_stream() {
        assert_eq!(safe("plain name", Stream::Out), "plain name");
        assert_eq!(safe("a\x1b[2Jb\n\u{9b}", Stream::Out), "a\\u{1b}[2Jb\\u{a}\\u{9b}");
        // Not a terminal under cargo test: bidirectional controls stay as stored.
        assert_eq!(safe("invoice\u{202E}gpj.exe", Stream::Out), "invoice\u{202E}gpj.exe");
    }

    #[test]
    fn tables_escape_keys_and_values() {
        let shown = table(&serde_json::json!({"k\x1b]0;x\x07": "v\x1b[31m", "n": 1}));
        assert!(!shown.contains('\x1b') && !shown.contains('\x07'), "{shown:?}");
        assert!(shown.contains("v\\u{1b}[31m"), "{shown:?}");
    }
}
