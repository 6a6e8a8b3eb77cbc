//! `get`, `set`, `rm` and `edit`: one configuration, through a `Store`.

use std::io::Read;

use confo::blocking::Store;
use confo::model::error::Missing;
use confo::{BackendSpec, Error, FieldEdit, Precondition};
use serde_json::Value;

use super::{parse_assignment, parse_object, read_file, split_target};
use crate::args::{Command, Format};
use crate::exit::{Exit, Failure};
use crate::output;

/// `get`, `set`, `rm` and `edit`: one configuration, read and written on its own, so they cost
/// the same whatever the namespace's size.
pub(crate) fn point_command(command: Command, spec: &BackendSpec, output: Option<Format>) -> Result<(), Failure> {
    let store = crate::open_store(spec)?;
    match command {
        Command::Get { target, field, reveal } => {
            let (namespace, config) = split_target(&target)?;
            let not_found =
                |what, name: String| Error::NotFound { what, name, location: format!("namespace {namespace:?}") };
            let stored =
                store.get(namespace, config)?.ok_or_else(|| not_found(Missing::Configuration, config.into()))?;
            // Secrets print as "<secret>" unless --reveal (which needs the keyring).
            let shown = if reveal {
                let keyring = super::secrets::keyring()?;
                confo::secrets::reveal(&stored.value, namespace, config, &keyring)?
            } else {
                confo::secrets::mask(&stored.value)
            };
            let value = match field {
                None => Value::Object(shown),
                Some(field) => {
                    shown.get(&field).cloned().ok_or_else(|| not_found(Missing::Field, format!("{config}.{field}")))?
                }
            };
            output::value(&value, output.unwrap_or(Format::Json))?;
        }
        Command::Set { target, assignments, json, file } => {
            let (namespace, config) = split_target(&target)?;
            let (replacement, fields) = if assignments.len() == 1 && assignments[0] == "-" {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .map_err(|e| Failure::new(Exit::Error, format!("stdin: {e}")))?;
                (Some(parse_object(&text, "stdin")?), Vec::new())
            } else {
                let replacement = match (json, file) {
                    (Some(text), _) => Some(parse_object(&text, "--json")?),
                    (None, Some(path)) => Some(parse_object(&read_file(&path)?, &path.display().to_string())?),
                    (None, None) => None,
                };
                let fields = assignments.iter().map(|a| parse_assignment(a)).collect::<Result<Vec<_>, _>>()?;
                (replacement, fields)
            };
            match replacement {
                // A whole document: written only if the configuration is unchanged since read.
                Some(object) => drop(store.replace(namespace, config, object)?),
                // Field edits apply to whatever is stored: retried on conflict.
                None => {
                    let edits: Vec<FieldEdit> =
                        fields.into_iter().map(|(field, value)| FieldEdit::Set(field.to_owned(), value)).collect();
                    store.update_fields(namespace, config, &edits)?;
                }
            }
        }
        Command::Rm { target, field } => {
            let (namespace, config) = split_target(&target)?;
            match field {
                Some(field) => drop(store.update_fields(namespace, config, &[FieldEdit::Remove(field)])?),
                None => store.remove(namespace, config)?,
            }
        }
        Command::Edit { target } => edit(&store, &target)?,
        _ => {}
    }
    Ok(())
}

fn edit(store: &Store, target: &str) -> Result<(), Failure> {
    let (namespace, config) = split_target(target)?;
    let current = store.get(namespace, config)?;
    let before = current.as_ref().map(|c| (*c.value).clone()).unwrap_or_default();
    let text = serde_json::to_string_pretty(&before).map_err(|e| Failure::new(Exit::Error, e.to_string()))?;
    let file = crate::edit::EditFile::create(config, &format!("{text}\n"))?;
    let editor = std::env::var("VISUAL").or_else(|_| std::env::var("EDITOR")).unwrap_or_else(|_| "vi".into());
    let status = file
        .run_editor(
            std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("{editor} \"$1\""))
                .arg("confo-edit")
                .arg(file.path()),
        )
        .map_err(|e| Failure::new(Exit::Error, format!("cannot run the editor {editor:?}: {e}")));
    let edited = std::fs::read_to_string(file.path());
    drop(file);
    if !status?.success() {
        return Err(Failure::new(Exit::Error, format!("the editor {editor:?} failed; nothing written")));
    }
    let edited = edited.map_err(|e| Failure::new(Exit::Error, e.to_string()))?;
    let after = parse_object(&edited, "the edited configuration").map_err(|mut f| {
        f.message.push_str("; nothing written");
        f
    })?;
    if after == before {
        errln!("confo: no changes");
        return Ok(());
    }
    // Written only if nobody changed it while the editor was open.
    store.put(namespace, config, after, current.map_or(Precondition::Absent, |c| Precondition::Version(c.version)))?;
    Ok(())
}
