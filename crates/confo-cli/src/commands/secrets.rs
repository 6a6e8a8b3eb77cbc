//! `keys new`, `secret set`, `secrets ls|rotate`: secrets encrypted at rest (see
//! `confo::secrets`).

use std::io::{IsTerminal, Read};

use confo::blocking::Store;
use confo::secrets::Keyring;
use confo::BackendSpec;
use serde_json::Value;
use zeroize::Zeroizing;

use super::{parse_assignment, split_target};
use crate::args::{Format, KeysCommand, SecretCommand, SecretsCommand};
use crate::exit::{Exit, Failure};
use crate::output;

/// The keyring in use, or a failure saying how to make one.
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

/// `secret set NS/CONFIG FIELD`.
pub(crate) fn secret(command: SecretCommand, spec: &BackendSpec) -> Result<(), Failure> {
    let SecretCommand::Set { target, field } = command;
    let (namespace, config) = split_target(&target)?;
    let keyring = keyring()?;
    let store = Store::open(spec)?.with_author(crate::author());
    let text = read_secret(&format!("value of {target} {field} (not shown):"))?;
    if text.is_empty() {
        return Err(Failure::usage("no value on stdin; nothing written"));
    }
    // Parsed as `set` parses VALUE: JSON when it parses, else a string.
    let assignment = Zeroizing::new(format!("{field}={}", &*text));
    let (_, value) = parse_assignment(&assignment).map_err(|_| Failure::usage("the secret is not a valid value"))?;
    store.set_secret(namespace, config, &field, value, &keyring)?;
    Ok(())
}

/// `secrets ls [NS]`, `secrets rotate [NS…]`.
pub(crate) fn secrets(command: SecretsCommand, spec: &BackendSpec, output: Option<Format>) -> Result<(), Failure> {
    let store = Store::open(spec)?.with_author(crate::author());
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
                            .and_then(confo::secrets::key_id)
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
            let count = store.rotate_secrets(&namespaces, &keyring)?;
            errln!("confo: {count} secret(s) re-encrypted under the primary key");
        }
    }
    Ok(())
}

/// The value at a JSON pointer of a configuration.
fn field_at<'a>(config: &'a confo::Configuration, pointer: &str) -> Option<&'a Value> {
    let mut parts = pointer.strip_prefix('/')?.split('/').map(|p| p.replace("~1", "/").replace("~0", "~"));
    let mut value = config.get(&parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(&part)?;
    }
    Some(value)
}
