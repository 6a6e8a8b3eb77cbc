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

use crate::args::Format;
use crate::exit::{Exit, Failure};

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
    /// Asked of the OS once per stream: `ls` of a large namespace escapes every line.
    fn is_terminal(self) -> bool {
        static STDOUT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        static STDERR: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        match self {
            Stream::Out => *STDOUT.get_or_init(|| std::io::stdout().is_terminal()),
            Stream::Err => *STDERR.get_or_init(|| std::io::stderr().is_terminal()),
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

/// `value` as pretty JSON and a newline, written as it is encoded (no copy of the whole text in
/// memory): to the file, or to stdout, which once closed by its reader takes nothing more.
pub fn stream_json(value: &impl serde::Serialize, file: Option<&std::path::Path>) -> Result<(), Failure> {
    let encode = |out: &mut dyn Write| -> std::io::Result<()> {
        let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
        serde_json::to_writer_pretty(&mut out, value)?;
        out.write_all(b"\n")?;
        out.flush()
    };
    match file {
        Some(path) => std::fs::File::create(path)
            .and_then(|mut f| encode(&mut f).and_then(|()| f.sync_all()))
            .map_err(|e| Failure::new(Exit::Error, format!("{}: {e}", path.display()))),
        None => {
            if !stdout_closed() && encode(&mut std::io::stdout().lock()).is_err() {
                STDOUT_CLOSED.store(true, Ordering::Relaxed);
            }
            Ok(())
        }
    }
}

/// A value in a format, ending with a newline. YAML and TOML get every number exactly or not
/// at all: a number they cannot hold (an integer beyond their range, a decimal no double
/// represents, `1e400`) and, for TOML, a null are errors naming the format's limit, never a
/// silently different value.
pub fn render(value: &Value, format: Format) -> Result<String, Failure> {
    let failed = |e: String| {
        Failure::new(
            Exit::Error,
            format!("cannot write this as {}: {e}; --output json writes any value", format.name()),
        )
    };
    let mut text = match format {
        Format::Json => serde_json::to_string_pretty(value).map_err(|e| failed(e.to_string()))?,
        Format::Yaml => serde_yaml::to_string(&Exact(value, Format::Yaml)).map_err(|e| failed(e.to_string()))?,
        Format::Toml => match value {
            Value::Object(_) => {
                toml::to_string_pretty(&Exact(value, Format::Toml)).map_err(|e| failed(e.to_string()))?
            }
            // TOML documents are tables: wrap anything else.
            other => {
                let wrapped = serde_json::json!({ "value": other });
                toml::to_string_pretty(&Exact(&wrapped, Format::Toml)).map_err(|e| failed(e.to_string()))?
            }
        },
        Format::Table => table(value),
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// A JSON value serialized for YAML or TOML with numbers as the formats' own integers and
/// floats. (serde_json's exact numbers would otherwise reach them as a private map.)
struct Exact<'a>(&'a Value, Format);

impl serde::Serialize for Exact<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeMap, SerializeSeq};
        let format = self.1;
        match self.0 {
            Value::Null if format == Format::Toml => Err(S::Error::custom("TOML has no null")),
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Number(n) => {
                let text = n.to_string();
                if let Some(i) = n.as_i64() {
                    return serializer.serialize_i64(i);
                }
                if let Some(u) = n.as_u64().filter(|_| format == Format::Yaml) {
                    return serializer.serialize_u64(u);
                }
                let is_integer = !text.contains(['.', 'e', 'E']);
                if is_integer {
                    if let (Format::Yaml, Ok(i)) = (format, text.parse::<i128>()) {
                        return serializer.serialize_i128(i);
                    }
                    let range = if format == Format::Toml { "64-bit" } else { "128-bit" };
                    return Err(S::Error::custom(format!(
                        "{} has no integers beyond {range}, like {text}",
                        format.name()
                    )));
                }
                match text.parse::<f64>() {
                    Ok(f) if f.is_finite() && same_decimal(&f.to_string(), &text) => serializer.serialize_f64(f),
                    _ => Err(S::Error::custom(format!(
                        "{} cannot hold the number {text} exactly (its floats are 64-bit doubles)",
                        format.name()
                    ))),
                }
            }
            Value::String(s) => serializer.serialize_str(s),
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&Exact(item, format))?;
                }
                seq.end()
            }
            Value::Object(fields) => {
                let mut map = serializer.serialize_map(Some(fields.len()))?;
                for (key, item) in fields {
                    map.serialize_entry(key, &Exact(item, format))?;
                }
                map.end()
            }
        }
    }
}

/// True when two decimal numerals denote the same number (`2.50` and `2.5`, `1e-7` and
/// `0.0000001`), sign included (`-0` is not `0`).
fn same_decimal(a: &str, b: &str) -> bool {
    fn canonical(text: &str) -> Option<(bool, String, i64)> {
        let (negative, text) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (mantissa, exponent) = match text.find(['e', 'E']) {
            Some(at) => (&text[..at], text[at + 1..].parse::<i64>().ok()?),
            None => (text, 0),
        };
        let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let digits = format!("{whole}{fraction}");
        let leading = digits.len() - digits.trim_start_matches('0').len();
        let digits = digits.trim_matches('0');
        // value = 0.DIGITS × 10^point
        let point = exponent + whole.len() as i64 - leading as i64;
        Some(if digits.is_empty() { (negative, String::new(), 0) } else { (negative, digits.to_owned(), point) })
    }
    canonical(a).is_some() && canonical(a) == canonical(b)
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
    fn yaml_and_toml_hold_numbers_exactly_or_refuse() {
        let value: Value = serde_json::from_str(
            r#"{"i": -5, "u": 18446744073709551615, "d": 1.602176634e-19, "h": 0.30000000000000004, "z": -0.0, "f": 2.50}"#,
        )
        .expect("json");
        let yaml = render(&value, Format::Yaml).expect("yaml");
        assert_eq!(
            yaml,
            "i: -5\nu: 18446744073709551615\nd: 1.602176634e-19\nh: 0.30000000000000004\nz: -0.0\nf: 2.5\n"
        );
        let toml = render(&serde_json::json!({"i": -5, "d": 0.30000000000000004}), Format::Toml).expect("toml");
        assert_eq!(toml, "i = -5\nd = 0.30000000000000004\n");
        for (json, format, says) in [
            ("123456789012345678901234567890123456789012", Format::Yaml, "beyond 128-bit"),
            ("18446744073709551615", Format::Toml, "beyond 64-bit"),
            ("1e400", Format::Yaml, "exactly"),
            ("0.1000000000000000000000000001", Format::Toml, "exactly"),
            ("null", Format::Toml, "TOML has no null"),
        ] {
            let value: Value = serde_json::from_str(&format!("{{\"x\": {json}}}")).expect("json");
            let err = render(&value, format).expect_err(json).message;
            assert!(err.contains(says) && err.contains("--output json"), "{json}: {err}");
        }
        assert!(same_decimal("1e-7", "0.0000001") && same_decimal("100", "1e2") && !same_decimal("-0", "0"));
    }

    #[test]
    fn tables_escape_keys_and_values() {
        let shown = table(&serde_json::json!({"k\x1b]0;x\x07": "v\x1b[31m", "n": 1}));
        assert!(!shown.contains('\x1b') && !shown.contains('\x07'), "{shown:?}");
        assert!(shown.contains("v\\u{1b}[31m"), "{shown:?}");
    }
}
