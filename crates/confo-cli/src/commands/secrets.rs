//! `keys new`, `secret set`, `secrets ls|rotate`: secrets encrypted at rest (see
//! `confo::secrets`).

use std::io::{IsTerminal, Read};

use confo::secrets::Keyring;
use confo::BackendSpec;
use serde_json::Value;
use zeroize::Zeroizing;

use super::{parse_assignment, split_target};
use crate::args::{Format, KeysCommand, SecretCommand, SecretsCommand};
use crate::exit::{Exit, Failure};
use crate::output;

/// The keyring in use, or a failure saying how to make one.
/// What no purge of confo's history reaches.
pub(crate) const UNREACHABLE: &str = "confo: no purge reaches the engines' own copies: etcd's revisions until \
     compaction, Redis AOF and RDB files, ZooKeeper transaction logs and snapshots, nor backups";

pub(crate) fn keyring() -> Result<Keyring, Failure> {
    match Keyring::find()? {
        Some(keyring) => Ok(keyring),
        None => Err(Failure::new(
            Exit::Error,
            "no keyring: make a key with `confo keys new` (in $CONFO_KEYS, else ~/.config/confo/keys.toml)",
        )),
    }
}

/// `keys new [ID]`, `keys ls`, `keys primary ID`, `keys rm ID`.
pub(crate) fn keys(command: KeysCommand) -> Result<(), Failure> {
    let path = Keyring::default_path()
        .ok_or_else(|| Failure::new(Exit::Error, "no keyring path: set CONFO_KEYS (or HOME)"))?;
    let shown = output::safe(&path.display().to_string(), output::Stream::Err).into_owned();
    if let KeysCommand::New { id } = command {
        let mut keyring = if path.exists() { Keyring::load(&path)? } else { Keyring::new() };
        let id = keyring.generate(id.as_deref())?;
        keyring.save(&path)?;
        let primary = keyring.ids().1 == Some(id.as_str());
        errln!("confo: key {id} added to {shown}{}", if primary { " (primary)" } else { "" });
        outln!("{id}");
        return Ok(());
    }
    let mut keyring = keyring()?;
    match command {
        KeysCommand::Ls => {
            let (ids, primary) = keyring.ids();
            for id in ids {
                outln!("{} {id}", if Some(id) == primary { "*" } else { " " });
            }
            return Ok(());
        }
        KeysCommand::Primary { id } => keyring.set_primary(&id)?,
        KeysCommand::Rm { id } => keyring.remove(&id)?,
        KeysCommand::New { .. } => {}
    }
    keyring.save(&path)?;
    Ok(())
}

/// Reads the secret: stdin, with echo off when it is a terminal. Never from argv.
fn read_secret(prompt: &str) -> Result<Zeroizing<String>, Failure> {
    let stdin = std::io::stdin();
    let mut text = Zeroizing::new(String::new());
    if stdin.is_terminal() {
        errln!("{prompt}");
        let quiet = std::process::Command::new("stty").arg("-echo").status().is_ok_and(|s| s.success());
        let read = stdin.read_line(&mut text);
        if quiet {
            let _ = std::process::Command::new("stty").arg("echo").status();
            errln!("");
        }
        read.map_err(|e| Failure::new(Exit::Error, format!("stdin: {e}")))?;
    } else {
        stdin.lock().read_to_string(&mut text).map_err(|e| Failure::new(Exit::Error, format!("stdin: {e}")))?;
    }
    let trimmed = Zeroizing::new(text.trim_end_matches(['\n', '\r']).to_owned());
    Ok(trimmed)
}

/// `secret set NS/CONFIG FIELD`, `secret unset NS/CONFIG FIELD|POINTER`.
pub(crate) fn secret(command: SecretCommand, spec: &BackendSpec) -> Result<(), Failure> {
    let (target, field) = match command {
        SecretCommand::Set { target, field } => (target, field),
        SecretCommand::Unset { target, field } => {
            let (namespace, config) = split_target(&target)?;
            let keyring = keyring()?;
            let pointer = if field.starts_with('/') { field.clone() } else { confo::secrets::pointer(&field) };
            crate::open_store(spec)?.unset_secret(namespace, config, &pointer, &keyring)?;
            errln!("confo: {target} {pointer} is a plain value now (stored in the clear)");
            return Ok(());
        }
    };
    let (namespace, config) = split_target(&target)?;
    let keyring = keyring()?;
    let store = crate::open_store(spec)?;
    let text = read_secret(&format!("value of {target} {field} (not shown):"))?;
    if text.is_empty() {
        return Err(Failure::usage("no value on stdin; nothing written"));
    }
    // Parsed as `set` parses VALUE: JSON when it parses, else a string.
    let assignment = Zeroizing::new(format!("{field}={}", &*text));
    let (_, value) = parse_assignment(&assignment).map_err(|_| Failure::usage("the secret is not a valid value"))?;
    store.set_secret(namespace, config, &field, value, &keyring)?;
    // The field in the clear in earlier revisions stays there: say so, and the way out.
    let pointer = confo::secrets::pointer(&field);
    if let Ok(history) = store.history(namespace, config, confo::store::Page { before: None, limit: usize::MAX }) {
        let clear: Vec<u64> = history
            .revisions
            .iter()
            .filter(|r| {
                r.value
                    .as_ref()
                    .and_then(|v| Value::Object((**v).clone()).pointer(&pointer).cloned())
                    .is_some_and(|v| !confo::model::sealed::is_sealed(&v) && !confo::secrets::is_purged(&v))
            })
            .map(|r| r.number)
            .collect();
        let mut clear = clear;
        clear.sort_unstable();
        if !clear.is_empty() {
            let list = clear.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
            errln!(
                "confo: warning: revision(s) {list} of {target} hold {field} in the clear; \
                 `confo history {target} --purge-field {field}` replaces it there by a marker"
            );
            errln!("{}", UNREACHABLE);
        }
    }
    Ok(())
}

/// `secrets ls [NS]`, `secrets rotate [NS…]`.
pub(crate) fn secrets(command: SecretsCommand, spec: &BackendSpec, output: Option<Format>) -> Result<(), Failure> {
    let store = crate::open_store(spec)?;
    match command {
        SecretsCommand::Ls { namespace } => {
            let namespaces = match namespace {
                Some(ns) => vec![ns],
                None => store.namespaces()?,
            };
            let mut rows = Vec::new();
            for ns in &namespaces {
                let data = store.load(ns)?;
                for (config, stored) in data.iter() {
                    for pointer in confo::secrets::sealed_fields(&stored.value) {
                        let key = field_at(&stored.value, &pointer)
                            .and_then(confo::model::sealed::key_id)
                            .unwrap_or("?")
                            .to_owned();
                        rows.push((format!("{ns}/{config}"), pointer, key));
                    }
                }
            }
            match output.filter(|f| *f != Format::Table) {
                Some(format) => {
                    let items: Vec<Value> = rows
                        .iter()
                        .map(|(c, p, k)| serde_json::json!({"configuration": c, "field": p, "key": k}))
                        .collect();
                    output::value(&Value::Array(items), format)?;
                }
                None => {
                    for (config, pointer, key) in &rows {
                        outln!(
                            "{}\t{}\t{}",
                            output::safe(config, output::Stream::Out),
                            output::safe(pointer, output::Stream::Out),
                            output::safe(key, output::Stream::Out)
                        );
                    }
                }
            }
        }
        SecretsCommand::Rotate { namespaces } => {
            let keyring = keyring()?;
            // Everything that opens is rotated; what does not (a key removed, a value planted
            // by a writer without the keys) is listed, and the command fails at the end.
            let rotation = store.rotate_secrets_report(&namespaces, &keyring)?;
            errln!("confo: {} secret(s) re-encrypted under the primary key", rotation.resealed);
            for (namespace, config, pointer, why) in &rotation.unopened {
                errln!(
                    "confo: not rotated: {}/{} {}: {}",
                    output::safe(namespace, output::Stream::Err),
                    output::safe(config, output::Stream::Err),
                    output::safe(pointer, output::Stream::Err),
                    output::safe(why, output::Stream::Err)
                );
            }
            if !rotation.unopened.is_empty() {
                return Err(Failure::new(
                    Exit::Error,
                    format!(
                        "{} secret(s) could not be opened with this keyring and were left as they were (listed above);                          everything else was rotated",
                        rotation.unopened.len()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The value at a JSON pointer of a configuration (through objects and arrays).
fn field_at<'a>(config: &'a confo::Configuration, pointer: &str) -> Option<&'a Value> {
    let mut parts = pointer.strip_prefix('/')?.split('/').map(|p| p.replace("~1", "/").replace("~0", "~"));
    let mut value = config.get(&parts.next()?)?;
    for part in parts {
        value = match value {
            Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            other => other.as_object()?.get(&part)?,
        };
    }
    Some(value)
}
