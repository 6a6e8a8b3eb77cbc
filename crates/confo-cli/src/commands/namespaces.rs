//! `ns ls|create|rm` and `ls NS`: namespaces and the configurations in one.

use confo::{BackendSpec, Removal};
use serde_json::Value;

use crate::args::{Format, NsCommand};
use crate::exit::Failure;
use crate::output;

/// `ns ls`, `ns create NS`, `ns rm NS [--force]`.
pub(crate) fn namespaces(spec: &BackendSpec, command: NsCommand, output: Option<Format>) -> Result<(), Failure> {
    let store = crate::open_store(spec)?;
    match command {
        NsCommand::Ls => output::list(&store.namespaces()?, output)?,
        NsCommand::Create { namespace } => {
            if !store.create_namespace(&namespace)? {
                errln!("confo: namespace {namespace:?} already exists");
            }
        }
        NsCommand::Rm { namespace, force } => {
            store.remove_namespace(&namespace, if force { Removal::Recursive } else { Removal::IfEmpty }).map_err(
                // The namespace is gone either way: no hint to create it.
                |e| if e.is_not_found() { Failure { hint: None, ..Failure::from(e) } } else { Failure::from(e) },
            )?;
        }
    }
    Ok(())
}

/// `ls NS`: the configurations of a namespace, corrupt entries said on stderr and marked in
/// structured output.
pub(crate) fn list(spec: &BackendSpec, namespace: &str, output: Option<Format>) -> Result<(), Failure> {
    let data = crate::open_store(spec)?.load(namespace)?;
    let corrupt: Vec<(String, confo::model::error::Corruption)> =
        data.corrupt.iter().map(|(name, entry)| (name.clone(), entry.corruption.clone())).collect();
    let mut names: Vec<String> = data.keys().cloned().chain(corrupt.iter().map(|(name, _)| name.clone())).collect();
    names.sort();
    for (name, corruption) in &corrupt {
        errln!(
            "confo: warning: {} is corrupt: {}",
            output::safe(name, output::Stream::Err),
            output::safe(&corruption.to_string(), output::Stream::Err)
        );
    }
    match output.filter(|f| *f != Format::Table) {
        // Readable configurations as names; a corrupt entry as an object saying so.
        Some(format) if !corrupt.is_empty() => {
            let items: Vec<Value> = names
                .iter()
                .map(|name| match corrupt.iter().find(|(n, _)| n == name) {
                    Some((_, c)) => serde_json::json!({"name": name, "corrupt": c.to_string()}),
                    None => Value::String(name.clone()),
                })
                .collect();
            output::value(&Value::Array(items), format)?;
        }
        _ => output::list(&names, output)?,
    }
    Ok(())
}
