//! `schema set|get|rm|mode|history|rollback` and `validate`: a namespace's JSON Schemas (see
//! `confo::schema`), through a `Store`; and `repair`, the other check of what is stored.

use std::path::Path;

use confo::blocking::Store;
use confo::schema::Mode;
use confo::BackendSpec;
use serde_json::Value;

use super::read_document;
use crate::args::{Format, SchemaCommand, SchemaMode};
use crate::exit::{Exit, Failure};
use crate::output;

fn open(spec: &BackendSpec) -> Result<Store, Failure> {
    Ok(Store::open(spec)?.with_author(crate::author()))
}

fn mode_of(mode: SchemaMode) -> Mode {
    match mode {
        SchemaMode::Enforce => Mode::Enforce,
        SchemaMode::Warn => Mode::Warn,
        SchemaMode::Off => Mode::Off,
    }
}

fn print(value: Value, output: Option<Format>) -> Result<(), Failure> {
    output::value(&value, output.unwrap_or(Format::Json))
}

fn no_schema(namespace: &str) -> Failure {
    Failure::new(
        Exit::NotFound,
        format!("namespace {namespace:?} has no schema (set one with: confo schema set {namespace} FILE)"),
    )
}

/// `schema set|mode|get|rm|history|rollback`.
pub(crate) fn schema(command: SchemaCommand, spec: &BackendSpec, output: Option<Format>) -> Result<(), Failure> {
    match command {
        SchemaCommand::Set { namespace, file, config, mode } => {
            let schema = read_document(Path::new(&file))?;
            let store = open(spec)?;
            let set = store.set_schema(&namespace, config.as_deref(), Some(schema), mode.map(mode_of))?;
            let whose = match &config {
                Some(c) => format!("{namespace}/{c}"),
                None => format!("namespace {namespace}"),
            };
            errln!("confo: schema of {} set (mode {})", output::safe(&whose, output::Stream::Err), set.mode);
            // What is stored already is not rewritten: say if some of it breaks the schema now.
            let invalid = store.validate(std::slice::from_ref(&namespace))?;
            if !invalid.is_empty() {
                errln!(
                    "confo: warning: {} violation(s) in what is stored already (see: confo validate {})",
                    invalid.len(),
                    output::safe(&namespace, output::Stream::Err)
                );
            }
            Ok(())
        }
        SchemaCommand::Mode { namespace, mode } => {
            let store = open(spec)?;
            if store.schemas(&namespace)?.is_none() {
                return Err(no_schema(&namespace));
            }
            let set = store.set_schema(&namespace, None, None, Some(mode_of(mode)))?;
            errln!("confo: schemas of {} now in mode {}", output::safe(&namespace, output::Stream::Err), set.mode);
            Ok(())
        }
        SchemaCommand::Get { namespace } => {
            let store = open(spec)?;
            match store.schemas(&namespace)? {
                Some(schemas) => print(Value::Object(schemas.to_json()), output),
                None => Err(no_schema(&namespace)),
            }
        }
        SchemaCommand::Rm { namespace, config } => {
            open(spec)?.remove_schema(&namespace, config.as_deref())?;
            Ok(())
        }
        SchemaCommand::History { namespace } => {
            super::history::print_history(&open(spec)?.schema_history(&namespace)?, output)
        }
        SchemaCommand::Rollback { namespace, to } => {
            let store = open(spec)?;
            store.rollback_schema(&namespace, to)?;
            let head = store.schema_history(&namespace)?.head();
            errln!(
                "confo: schemas of {} rolled back to revision {to} (now revision {head})",
                output::safe(&namespace, output::Stream::Err)
            );
            Ok(())
        }
    }
}

/// `validate [NS…]`: every violation on stdout (one per line, or a list with --output), exit 6
/// if there is one.
pub(crate) fn validate(spec: &BackendSpec, namespaces: &[String], output: Option<Format>) -> Result<(), Failure> {
    let violations = open(spec)?.validate(namespaces)?;
    match output {
        None | Some(Format::Table) => {
            for v in &violations {
                outln!("{}", output::safe(&v.to_string(), output::Stream::Out));
            }
        }
        Some(format) => {
            let items = serde_json::to_value(&violations).map_err(|e| Failure::new(Exit::Error, e.to_string()))?;
            output::value(&items, format)?;
        }
    }
    if violations.is_empty() {
        return Ok(());
    }
    let configs: std::collections::BTreeSet<(&str, &str)> =
        violations.iter().map(|v| (v.namespace.as_str(), v.configuration.as_str())).collect();
    Err(Failure::new(
        Exit::Invalid,
        format!("{} configuration(s) break their schema ({} violations)", configs.len(), violations.len()),
    ))
}

/// `repair [--fix]`: one line per problem on stdout; exit 6 if something was found and not
/// fixed.
pub(crate) fn repair(spec: &BackendSpec, fix: bool) -> Result<(), Failure> {
    let found = open(spec)?.repair(fix)?;
    for (kind, list) in [("unindexed", &found.unindexed), ("dangling", &found.dangling)] {
        for (namespace, config) in list {
            outln!("{kind} {}", output::safe(&format!("{namespace}/{config}"), output::Stream::Out));
        }
    }
    let count = found.unindexed.len() + found.dangling.len();
    if count == 0 {
        errln!("confo: nothing to repair");
        return Ok(());
    }
    if fix {
        errln!("confo: {count} problem(s) repaired");
        return Ok(());
    }
    Err(Failure::new(Exit::Invalid, format!("{count} problem(s) found; `confo repair --fix` repairs them")))
}
