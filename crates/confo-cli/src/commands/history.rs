//! `history`, `show`, `diff NS/CONFIG@N`, `rollback` and `log`: a configuration's recorded
//! revisions, through a `Store`.

use std::time::SystemTime;

use confo::blocking::Store;
use confo::model::history::{format_time, History, Revision};
use confo::store::{LogFilter, Page};
use confo::BackendSpec;
use serde_json::{json, Map, Value};

use super::split_target;
use crate::args::Format;
use crate::exit::{Exit, Failure};
use crate::output;

/// `NS/CONFIG@N` → (NS, CONFIG, N), if `text` is one: a target with one `/`, no `:`, and digits
/// after its last `@` (a spec, a profile or a document file never is).
pub(crate) fn revision_target(text: &str) -> Option<(&str, &str, u64)> {
    let (target, number) = text.rsplit_once('@')?;
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) || target.contains(':') {
        return None;
    }
    let (namespace, config) = target.split_once('/')?;
    if namespace.is_empty() || config.is_empty() || config.contains('/') {
        return None;
    }
    Some((namespace, config, number.parse().ok()?))
}

fn revision_arg(text: &str) -> Result<(&str, &str, u64), Failure> {
    revision_target(text).ok_or_else(|| Failure::usage(format!("expected NS/CONFIG@N, got {text:?}")))
}

fn open(spec: &BackendSpec) -> Result<Store, Failure> {
    crate::open_store(spec)
}

/// Names unreadable records on stderr; an error (exit 1) if there were any, after the rest was
/// printed.
fn report_corrupt(corrupt: &[confo::model::error::Corruption]) -> Result<(), Failure> {
    for corruption in corrupt {
        errln!("confo: unreadable history record {}", output::safe(&corruption.to_string(), output::Stream::Err));
    }
    if corrupt.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(
            Exit::Error,
            format!("{} history record(s) could not be read; the rest is listed", corrupt.len()),
        ))
    }
}

fn revision_json(revision: &Revision, config: Option<&str>) -> Value {
    let mut object = Map::new();
    if let Some(config) = config {
        object.insert("configuration".into(), json!(config));
    }
    object.insert("number".into(), json!(revision.number));
    object.insert("time".into(), json!(format_time(revision.time)));
    object.insert("actor".into(), json!(revision.actor));
    object.insert("host".into(), json!(revision.host));
    object.insert("tool".into(), json!(revision.tool));
    object.insert("operation".into(), json!(revision.operation.as_str()));
    object.insert("message".into(), json!(revision.message));
    object.insert("restores".into(), json!(revision.restores));
    object.insert("version_before".into(), json!(revision.version_before));
    object.insert("version_after".into(), json!(revision.version_after));
    // Secrets stay masked: a history listing is not the place to reveal them.
    object.insert(
        "value".into(),
        revision.value.as_ref().map_or(Value::Null, |v| Value::Object(confo::secrets::mask(v))),
    );
    Value::Object(object)
}

/// Left-aligned columns, the last one free.
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let columns = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(columns - 1) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == columns {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:width$}  ", width = widths[i]));
            }
        }
        outln!("{}", output::safe(text.trim_end(), output::Stream::Out));
    };
    line(header.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        line(row.clone());
    }
}

fn operation_text(revision: &Revision) -> String {
    match revision.restores {
        Some(n) => format!("{} of {n}", revision.operation),
        None => revision.operation.to_string(),
    }
}

/// Revisions, newest first: a table (NUMBER, TIME, ACTOR, OPERATION, MESSAGE) or, with
/// `--output`, a list of objects; then the records that could not be read (exit 1 if any).
pub(crate) fn print_history(history: &History, output: Option<Format>) -> Result<(), Failure> {
    match output {
        None | Some(Format::Table) => print_revisions(&history.revisions),
        Some(format) => {
            let items: Vec<Value> = history.revisions.iter().map(|r| revision_json(r, None)).collect();
            output::value(&Value::Array(items), format)?;
        }
    }
    report_corrupt(&history.corrupt)
}

fn print_revisions(revisions: &[Revision]) {
    let rows: Vec<Vec<String>> = revisions
        .iter()
        .map(|r| {
            vec![
                r.number.to_string(),
                format_time(r.time),
                r.actor.clone(),
                operation_text(r),
                r.message.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print_table(&["NUMBER", "TIME", "ACTOR", "OPERATION", "MESSAGE"], &rows);
}

/// `history NS/CONFIG [--limit N] [--before N]`.
/// `history NS/CONFIG --purge-field FIELD`: the field replaced by a marker in every revision
/// holding it in the clear.
pub(crate) fn purge(spec: &BackendSpec, target: &str, field: &str) -> Result<(), Failure> {
    let (namespace, config) = split_target(target)?;
    let pointer = if field.starts_with('/') { field.to_owned() } else { confo::secrets::pointer(field) };
    let rewritten = open(spec)?.purge_history_field(namespace, config, &pointer)?;
    if rewritten.is_empty() {
        errln!("confo: no revision of {target} holds {pointer} in the clear");
    } else {
        let list = rewritten.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
        errln!("confo: {pointer} replaced by a marker in revision(s) {list} of {target}; the purge is recorded as a revision");
    }
    let now = open(spec)?.get(namespace, config).ok().flatten();
    let clear = now.as_ref().and_then(|stored| Value::Object((*stored.value).clone()).pointer(&pointer).cloned());
    if clear.is_some_and(|v| !confo::model::sealed::is_sealed(&v)) {
        errln!(
            "confo: warning: the stored value of {target} holds {pointer} in the clear, and so does the revision \
             recording this purge: `confo secret set {target} {field}` first, then purge again"
        );
    }
    errln!("{}", super::secrets::UNREACHABLE);
    Ok(())
}

pub(crate) fn history(
    spec: &BackendSpec,
    target: &str,
    limit: Option<usize>,
    before: Option<u64>,
    output: Option<Format>,
) -> Result<(), Failure> {
    let (namespace, config) = split_target(target)?;
    let store = open(spec)?;
    let history = store.history(namespace, config, Page { before, limit: limit.unwrap_or(Page::default().limit) })?;
    print_history(&history, output)
}

/// The value of revision N (an error for a deletion: there is none).
fn value_at(store: &Store, namespace: &str, config: &str, number: u64) -> Result<confo::Configuration, Failure> {
    let revision = store.revision(namespace, config, number)?;
    match revision.value {
        Some(value) => Ok((*value).clone()),
        None => Err(Failure::new(
            Exit::NotFound,
            format!("{namespace}/{config}@{number} is a deletion: the configuration had no value then"),
        )),
    }
}

/// `show NS/CONFIG@N [FIELD] [--reveal]`.
pub(crate) fn show(
    spec: &BackendSpec,
    target: &str,
    field: Option<&str>,
    reveal: bool,
    output: Option<Format>,
) -> Result<(), Failure> {
    let (namespace, config, number) = revision_arg(target)?;
    let store = open(spec)?;
    let value = value_at(&store, namespace, config, number)?;
    let shown = if reveal {
        let keyring = super::secrets::keyring()?;
        confo::secrets::reveal(&value, namespace, config, &keyring)?
    } else {
        confo::secrets::mask(&value)
    };
    let value = match field {
        None => Value::Object(shown),
        Some(field) => shown.get(field).cloned().ok_or_else(|| {
            Failure::new(Exit::NotFound, format!("field {field:?} not found in {namespace}/{config}@{number}"))
        })?,
    };
    output::value(&value, output.unwrap_or(Format::Json))
}

/// `diff NS/CONFIG@N [NS/CONFIG@M]`: field by field, the older on the left; without the right
/// side, against the current value.
pub(crate) fn diff(spec: &BackendSpec, left: &str, right: Option<&str>, output: Option<Format>) -> Result<(), Failure> {
    let (namespace, config, number) = revision_arg(left)?;
    let store = open(spec)?;
    let old = value_at(&store, namespace, config, number)?;
    let new = match right {
        Some(right) => {
            let (ns2, cfg2, m) = revision_arg(right)?;
            value_at(&store, ns2, cfg2, m)?
        }
        None => match store.get(namespace, config)? {
            Some(stored) => (*stored.value).clone(),
            None => confo::Configuration::new(),
        },
    };
    let (old, new) = (confo::secrets::mask(&old), confo::secrets::mask(&new));
    let mut removed = Map::new();
    let mut added = Map::new();
    let mut changed = Map::new();
    for (key, value) in &old {
        match new.get(key) {
            None => drop(removed.insert(key.clone(), value.clone())),
            Some(other) if other != value => {
                changed.insert(key.clone(), json!({"old": value, "new": other}));
            }
            Some(_) => {}
        }
    }
    for (key, value) in &new {
        if !old.contains_key(key) {
            added.insert(key.clone(), value.clone());
        }
    }
    if let Some(format @ (Format::Json | Format::Yaml | Format::Toml)) = output {
        let document = json!({"removed": removed, "added": added, "changed": changed});
        return output::value(&document, format);
    }
    let mut keys: Vec<&String> = removed.keys().chain(added.keys()).chain(changed.keys()).collect();
    keys.sort();
    for key in keys {
        let line = if let Some(v) = removed.get(key) {
            format!("- {key}: {v}")
        } else if let Some(v) = added.get(key) {
            format!("+ {key}: {v}")
        } else {
            let pair = &changed[key];
            format!("~ {key}: {} -> {}", pair["old"], pair["new"])
        };
        outln!("{}", output::safe(&line, output::Stream::Out));
    }
    Ok(())
}

/// `rollback NS/CONFIG --to N [--message M]`.
pub(crate) fn rollback(spec: &BackendSpec, target: &str, to: u64) -> Result<(), Failure> {
    let (namespace, config) = split_target(target)?;
    let store = open(spec)?;
    store.rollback(namespace, config, to, None)?;
    let head = store.history(namespace, config, Page::newest(1))?.head();
    errln!(
        "confo: {} rolled back to revision {to} (now revision {head})",
        output::safe(&format!("{namespace}/{config}"), output::Stream::Err)
    );
    Ok(())
}

/// `2026-11-28`, `2026-11-28T09:30:00Z`, or an age (`2h`, `7d`: that long ago).
fn parse_since(text: &str) -> Result<SystemTime, Failure> {
    if let Some(time) = confo::model::history::parse_time(text) {
        return Ok(time);
    }
    if let Some(age) =
        confo::model::history::parse_duration(text).filter(|_| text.trim().ends_with(char::is_alphabetic))
    {
        return Ok(SystemTime::now().checked_sub(age).unwrap_or(SystemTime::UNIX_EPOCH));
    }
    Err(Failure::usage(format!(
        "--since {text:?}: expected a date (2026-11-28), a time (2026-11-28T09:30:00Z) or an age (2h, 7d)"
    )))
}

/// `log NS [--since TIME] [--actor NAME] [--limit N]`.
pub(crate) fn log(
    spec: &BackendSpec,
    namespace: &str,
    since: Option<&str>,
    actor: Option<String>,
    limit: Option<usize>,
    output: Option<Format>,
) -> Result<(), Failure> {
    let filter = LogFilter { since: since.map(parse_since).transpose()?, actor, limit };
    let store = open(spec)?;
    let (entries, corrupt) = store.log(namespace, &filter)?;
    match output {
        None | Some(Format::Table) => {
            let rows: Vec<Vec<String>> = entries
                .iter()
                .map(|(config, r)| {
                    vec![
                        format_time(r.time),
                        format!("{config}@{}", r.number),
                        r.actor.clone(),
                        operation_text(r),
                        r.message.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            print_table(&["TIME", "CONFIGURATION", "ACTOR", "OPERATION", "MESSAGE"], &rows);
        }
        Some(format) => {
            let items: Vec<Value> = entries.iter().map(|(c, r)| revision_json(r, Some(c))).collect();
            output::value(&Value::Array(items), format)?;
        }
    }
    report_corrupt(&corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_targets_are_told_from_specs_and_files() {
        assert_eq!(revision_target("sales/database@3"), Some(("sales", "database", 3)));
        for other in ["redis://u:p@h:6379", "backup@2.json", "prod", "sales/database", "sales/db@", "a/b/c@1", "@1"] {
            assert_eq!(revision_target(other), None, "{other}");
        }
    }
}
