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
//!   JSON output escapes control characters by itself, except the C1 controls (U+0080-U+009F,
//!   `\u{9b}` is a CSI that starts a terminal sequence): they are written `\u009b`, always (the
//!   same JSON value); TOML writes them raw, so on a terminal they are written `\u009b` too
//!   (in a basic string the same value; piped, TOML is left exact). YAML escapes them itself.

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

/// `text` safe to print on `stream`: control characters always, and bidirectional controls and
/// characters that are not displayed (zero-width, U+2028…) on a terminal, written as `\u{1b}`.
pub fn safe(text: &str, stream: Stream) -> Cow<'_, str> {
    let bidi = stream.is_terminal();
    let unsafe_char = |c: char| {
        c.is_control() || (bidi && (confo::model::name::is_bidi_control(c) || confo::model::name::is_invisible(c)))
    };
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
    let text = render(value, format)?;
    let text = if format == Format::Toml && Stream::Out.is_terminal() { escape_c1(text) } else { text };
    stdout(format_args!("{text}"));
    Ok(())
}

/// Whether a C1 control character (U+0080-U+009F: UTF-8 `C2 80` to `C2 9F`) starts at byte `i`.
fn c1_at(bytes: &[u8], i: usize) -> bool {
    bytes[i] == 0xC2 && bytes.get(i + 1).is_some_and(|b| (0x80..=0x9F).contains(b))
}

/// `text` with each C1 control character written as a JSON (and TOML basic string) escape,
/// `\u009b`.
pub fn escape_c1(text: String) -> String {
    let bytes = text.as_bytes();
    if !(0..bytes.len()).any(|i| c1_at(bytes, i)) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if ('\u{80}'..='\u{9f}').contains(&c) {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// Writes JSON to `inner` with each C1 control character escaped (`\u009b`): the same JSON
/// value, and nothing a terminal takes for the start of a sequence. A character split across
/// two writes is held until the next.
struct EscapeC1<W: Write> {
    inner: W,
    /// A `C2` byte that ended the previous write.
    pending: bool,
}

impl<W: Write> Write for EscapeC1<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut start = 0;
        let mut i = 0;
        if self.pending && !buf.is_empty() {
            self.pending = false;
            if (0x80..=0x9F).contains(&buf[0]) {
                write!(self.inner, "\\u{:04x}", buf[0])?;
                start = 1;
                i = 1;
            } else {
                self.inner.write_all(&[0xC2])?;
            }
        }
        while i < buf.len() {
            if buf[i] == 0xC2 && i + 1 == buf.len() {
                self.inner.write_all(&buf[start..i])?;
                self.pending = true;
                return Ok(buf.len());
            }
            if c1_at(buf, i) {
                self.inner.write_all(&buf[start..i])?;
                write!(self.inner, "\\u{:04x}", buf[i + 1])?;
                i += 2;
                start = i;
            } else {
                i += 1;
            }
        }
        self.inner.write_all(&buf[start..])?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if std::mem::take(&mut self.pending) {
            self.inner.write_all(&[0xC2])?;
        }
        self.inner.flush()
    }
}

/// Writes a file that may hold secrets (`export -o FILE`, with `--reveal` too): a regular path
/// (or none yet) is replaced whole and atomically by a temporary file beside it, created
/// exclusively with mode 0600 (never through a link planted at its name), synced, then renamed
/// over it, so a repeated export keeps working and a reader never sees half a file. A
/// symbolic link at the path is refused (exit 5): writing through it would put the secrets
/// wherever whoever planted it chose, with that file's mode. Devices and FIFOs (`-o
/// /dev/stdout`, a link to one included) are written directly.
pub fn write_private(
    path: &std::path::Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), Failure> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::fs::PermissionsExt;
    let failed = |e: std::io::Error| Failure::new(Exit::Error, format!("{}: {e}", path.display()));
    let special = std::fs::metadata(path).ok().filter(|meta| !meta.is_file() && !meta.is_dir());
    if let Some(_device) = special {
        let mut file = std::fs::OpenOptions::new().write(true).open(path).map_err(failed)?;
        return write(&mut file).map_err(failed);
    }
    if std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_symlink()) {
        return Err(Failure::new(
            Exit::Unavailable,
            format!(
                "{} is a symbolic link: not written through (it may hold secrets); remove the link or choose another name",
                path.display()
            ),
        ));
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => std::path::PathBuf::from("."),
    };
    let tmp = folder.join(format!(".{name}.confo-{}.tmp", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut file| {
            // The mode given to open is filtered by the umask; 0600 is what is meant.
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            write(&mut file)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(failed)
}

/// `value` as pretty JSON and a newline, written as it is encoded (no copy of the whole text in
/// memory): to the file, or to stdout, which once closed by its reader takes nothing more.
pub fn stream_json(value: &impl serde::Serialize, file: Option<&std::path::Path>) -> Result<(), Failure> {
    let encode = |out: &mut dyn Write| -> std::io::Result<()> {
        let mut out = std::io::BufWriter::with_capacity(1 << 16, EscapeC1 { inner: out, pending: false });
        serde_json::to_writer_pretty(&mut out, value)?;
        out.write_all(b"\n")?;
        out.flush()
    };
    match file {
        Some(path) => write_private(path, |f| encode(f)),
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
        Format::Json => escape_c1(serde_json::to_string_pretty(value).map_err(|e| failed(e.to_string()))?),
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
    fn c1_controls_are_escaped_in_json_and_the_value_is_unchanged() {
        let value = serde_json::json!({"k\u{9b}": "a\u{9b}[2Jb\u{85}c\u{a0}é"});
        let text = render(&value, Format::Json).expect("json");
        assert!(!text.chars().any(|c| ('\u{80}'..='\u{9f}').contains(&c)), "{text:?}");
        assert!(text.contains("\\u009b[2Jb\\u0085c\u{a0}é"), "{text:?}");
        assert_eq!(serde_json::from_str::<Value>(&text).expect("parses"), value);
        // Streamed, whatever the writes' boundaries (a character split between two writes).
        let raw = serde_json::to_vec(&value).expect("json");
        for split in 0..raw.len() {
            let mut out = EscapeC1 { inner: Vec::new(), pending: false };
            out.write_all(&raw[..split]).unwrap();
            out.write_all(&raw[split..]).unwrap();
            out.flush().unwrap();
            let text = String::from_utf8(out.inner).expect("utf-8");
            assert!(!text.chars().any(|c| ('\u{80}'..='\u{9f}').contains(&c)), "split at {split}: {text:?}");
            assert_eq!(serde_json::from_str::<Value>(&text).expect("parses"), value, "split at {split}");
        }
        // TOML (on a terminal): the same escape; YAML escapes them itself.
        let toml = escape_c1(render(&value, Format::Toml).expect("toml"));
        assert!(!toml.chars().any(|c| ('\u{80}'..='\u{9f}').contains(&c)), "{toml:?}");
        let yaml = render(&value, Format::Yaml).expect("yaml");
        assert!(!yaml.chars().any(|c| ('\u{80}'..='\u{9f}').contains(&c)), "{yaml:?}");
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
