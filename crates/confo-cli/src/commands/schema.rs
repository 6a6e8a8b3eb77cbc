//! `schema set|get|rm|mode|history|rollback` and `validate`: a namespace's JSON Schemas (see
//! `confo::schema`), through a `Store`; and `repair`, the other check of what is stored.

use std::path::Path;

use confo::backend::RepairOptions;
use confo::blocking::Store;
use confo::schema::Mode;
use confo::BackendSpec;
use serde_json::Value;

use super::read_document;
use crate::args::{Format, SchemaCommand, SchemaMode};
use crate::exit::{Exit, Failure};
use crate::output;

fn open(spec: &BackendSpec) -> Result<Store, Failure> {
    crate::open_store(spec)
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
/// `repair --acls` / `--fix-acls`: the nodes others may change, and with `fix` each given this
/// identity's ACL, or, for confo's metadata (history, schemas), removed: their content is not
/// this identity's. Exit 6 if one is left that others may change.
pub(crate) fn repair_acls(spec: &BackendSpec, fix: bool) -> Result<(), Failure> {
    let found = open(spec)?.check_acls(fix)?;
    fn safe(text: &str) -> std::borrow::Cow<'_, str> {
        output::safe(text, output::Stream::Out)
    }
    let mut left = 0;
    for finding in &found {
        match &finding.fixed {
            None => {
                left += 1;
                // Metadata (history, schemas) made by another identity: removed by a fix.
                let kind = if finding.metadata { "foreign" } else { "open" };
                outln!("{kind} {} {}", safe(&finding.path), safe(&finding.acl));
            }
            Some(Ok(())) if finding.metadata => outln!(
                "removed {} (was {}: confo's metadata made by another identity is never adopted)",
                safe(&finding.path),
                safe(&finding.acl)
            ),
            Some(Ok(())) => outln!("fixed {} (was {})", safe(&finding.path), safe(&finding.acl)),
            Some(Err(why)) => {
                left += 1;
                outln!("not-fixed {}: {}", safe(&finding.path), safe(why));
            }
        }
    }
    match (found.len(), left) {
        (0, _) => {
            errln!("confo: every node of confo's tree is this identity's alone");
            Ok(())
        }
        (n, 0) => {
            errln!("confo: {n} node(s) given this identity's ACL or, metadata, removed");
            Ok(())
        }
        (_, left) if fix => Err(Failure::new(Exit::Invalid, format!("{left} node(s) others may still change"))),
        (_, left) => Err(Failure::new(
            Exit::Invalid,
            format!("{left} node(s) others may change; `confo repair --fix-acls` gives them this identity's ACL"),
        )),
    }
}

pub(crate) fn repair(spec: &BackendSpec, fix: bool, keys: Vec<String>) -> Result<(), Failure> {
    let options = if fix { RepairOptions::fix().with_keys(keys) } else { RepairOptions::report() };
    let found = open(spec)?.repair(&options)?;
    for (kind, list) in [("unindexed", &found.unindexed), ("dangling", &found.dangling)] {
        for (namespace, config) in list {
            outln!("{kind} {}", output::safe(&format!("{namespace}/{config}"), output::Stream::Out));
        }
    }
    for foreign in &found.foreign {
        outln!("foreign {}: {}", output::safe(&foreign.key, output::Stream::Out), foreign.reason);
    }
    let count = found.unindexed.len() + found.dangling.len();
    let foreign = found.foreign.len();
    if count + foreign == 0 {
        errln!("confo: nothing to repair");
        return Ok(());
    }
    if fix && count > 0 {
        errln!("confo: {count} problem(s) repaired");
    }
    match (fix, foreign) {
        (true, 0) => Ok(()),
        (_, 0) => {
            Err(Failure::new(Exit::Invalid, format!("{count} problem(s) found; `confo repair --fix` repairs them")))
        }
        (_, foreign) => Err(Failure::new(
            Exit::Invalid,
            format!(
                "{foreign} key(s) in confo's key space that confo cannot have written were left alone (another \
                 program's?); `confo repair --fix --key KEY` deletes one you know to be confo's"
            ),
        )),
    }
}
