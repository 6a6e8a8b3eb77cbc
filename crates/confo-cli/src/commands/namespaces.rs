//! `ns ls|create|rm` and `ls NS`: namespaces and the configurations in one.

use confo::blocking::Confo;
use confo::Removal;
use serde_json::Value;

use crate::args::{Format, NsCommand};
use crate::exit::Failure;
use crate::output;

/// `ns ls`, `ns create NS`, `ns rm NS [--force]`.
pub(crate) fn namespaces(confo: &Confo, command: NsCommand, output: Option<Format>) -> Result<(), Failure> {
    match command {
        NsCommand::Ls => output::list(&confo.namespaces()?.all, output)?,
        NsCommand::Create { namespace } => {
            if !confo.create_namespace(&namespace)? {
                errln!("confo: namespace {namespace:?} already exists");
            }
        }
        NsCommand::Rm { namespace, force } => {
            confo.remove_namespace(&namespace, if force { Removal::Recursive } else { Removal::IfEmpty }).map_err(
                // The namespace is gone either way: no hint to create it.
                |e| if e.is_not_found() { Failure { hint: None, ..Failure::from(e) } } else { Failure::from(e) },
            )?;
        }
    }
    Ok(())
}

/// `ls NS`: the configurations of a namespace, corrupt entries said on stderr and marked in
/// structured output.
pub(crate) fn list(confo: &Confo, namespace: &str, output: Option<Format>) -> Result<(), Failure> {
    confo.use_namespace(namespace)?;
    let names = confo.list()?;
    let corrupt = confo.corrupt()?;
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
