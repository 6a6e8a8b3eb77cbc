//! Whole stores as documents: `export`, `import`, `copy`, `diff`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use confo::blocking::Store;
use confo::transfer::{Action, Difference, Document};
use confo::BackendSpec;
use serde_json::Value;

use super::{format_of, read_document};
use crate::args::Format;
use crate::exit::{Exit, Failure};
use crate::{open_store, output, resolve_spec};

/// `export [NS…] [--file F] [--skip-corrupt] [--reveal]`: secrets stay encrypted unless
/// `--reveal`.
pub(crate) fn export(
    spec: &BackendSpec,
    namespaces: &[String],
    file: Option<PathBuf>,
    skip_corrupt: bool,
    reveal: bool,
    output: Option<Format>,
) -> Result<(), Failure> {
    let store = &open_store(spec)?;
    let format = output.or_else(|| file.as_deref().and_then(format_of)).unwrap_or(Format::Json);
    let skipped = if format == Format::Json && !reveal {
        // Read in compact form (a third of the memory of maps) and streamed as it is encoded:
        // the only copy of the data in memory.
        let (document, skipped) = store.export_readable_compact(namespaces)?;
        output::stream_json(&document, file.as_deref())?;
        // Not freed: the process ends in a moment and the system takes it back whole.
        std::mem::forget(document);
        skipped
    } else {
        export_maps(store, namespaces, file, reveal, format)?
    };
    for corruption in &skipped {
        errln!("confo: skipped corrupt entry {}", output::safe(&corruption.to_string(), output::Stream::Err));
    }
    if !skipped.is_empty() && !skip_corrupt {
        return Err(Failure::new(
            Exit::Error,
            format!(
                "{} corrupt entr(y/ies) skipped; the rest is exported (--skip-corrupt accepts that)",
                skipped.len()
            ),
        ));
    }
    Ok(())
}

/// The export with `--reveal` or in another format than JSON: a document of maps (secrets
/// opened in it; YAML and TOML are rendered from a value). Returns the corrupt entries skipped.
fn export_maps(
    store: &Store,
    namespaces: &[String],
    file: Option<PathBuf>,
    reveal: bool,
    format: Format,
) -> Result<Vec<confo::model::error::Corruption>, Failure> {
    let (mut document, skipped) = store.export_readable(namespaces)?;
    if reveal {
        let keyring = super::secrets::keyring()?;
        for (namespace, configurations) in document.iter_mut() {
            for (name, value) in configurations.iter_mut() {
                *value = confo::secrets::reveal(value, namespace, name, &keyring)?;
            }
        }
    }
    if let Some(limit) = readable_depth(format) {
        // A copy that cannot be read back is not written: YAML and TOML readers (confo's import
        // among them) stop short of the depth a write accepts.
        for (namespace, configurations) in document.iter() {
            for (name, value) in configurations.iter() {
                let depth = confo::model::json::object_depth(value);
                if depth > limit {
                    return Err(Failure::usage(format!(
                        "{namespace}/{name} nests {depth} levels deep: {} is read back only to {limit} (its readers, \
                         confo import among them, stop there); export it as JSON",
                        format.name()
                    )));
                }
            }
        }
    }
    if format == Format::Json {
        // Streamed as it is encoded: the document is the only copy of the data in memory.
        output::stream_json(&document, file.as_deref())?;
        // Not freed: the process ends in a moment and the system takes it back whole, where
        // freeing 10,000 configurations value by value costs about a quarter of the export.
        std::mem::forget(document);
    } else {
        let value = serde_json::to_value(&document).map_err(|e| Failure::new(Exit::Error, e.to_string()))?;
        drop(document);
        let text = output::render(&value, format)?;
        match file {
            Some(path) => output::write_private(&path, |f| f.write_all(text.as_bytes()))?,
            None => output::stdout(format_args!("{text}")),
        }
    }
    Ok(skipped)
}

/// `import FILE [--dry-run] [--prune]`.
pub(crate) fn import(spec: &BackendSpec, file: &Path, dry_run: bool, prune: bool) -> Result<(), Failure> {
    let store = &open_store(spec)?;
    let document = store.parse_document(read_document(file)?)?;
    check_secrets(&document)?;
    let plan = store.plan(&document, prune)?;
    for namespace in &plan.new_namespaces {
        outln!("create namespace {}", output::safe(namespace, output::Stream::Out));
    }
    for step in &plan.steps {
        let target = format!("{}/{}", step.namespace, step.configuration);
        outln!("{} {}", step.action, output::safe(&target, output::Stream::Out));
    }
    let summary = format!(
        "{} to create, {} to change, {} to delete, {} unchanged",
        plan.count(Action::Create),
        plan.count(Action::Change),
        plan.count(Action::Delete),
        plan.unchanged
    );
    if dry_run {
        errln!("confo: dry run: {summary}; nothing written");
    } else {
        store.apply_owned(&plan, document, |_, _| {})?;
        errln!("confo: imported: {summary}");
    }
    Ok(())
}

/// Opens a side of `diff` or `copy`: a document file, or a backend spec or profile.
enum Side {
    Document(Document),
    Backend(Store),
}

fn side(text: &str) -> Result<Side, Failure> {
    let path = Path::new(text);
    let looks_like_a_file = text.contains('/') || format_of(path).is_some();
    if !text.contains(':') && looks_like_a_file && !path.exists() {
        return Err(Failure::new(
            Exit::NotFound,
            format!("{text}: no such document file (nor a backend spec, which has a ':')"),
        ));
    }
    if !text.contains(':') && path.is_file() {
        let scratch = open_store(&BackendSpec::memory())?;
        return Ok(Side::Document(scratch.parse_document(read_document(path)?)?));
    }
    Ok(Side::Backend(open_store(&resolve_spec(Some(text))?)?))
}

pub(crate) fn copy(from: &str, to: &str, namespaces: &[String]) -> Result<(), Failure> {
    let source = open_store(&resolve_spec(Some(from))?)?;
    let target = open_store(&resolve_spec(Some(to))?)?;
    let document = source.export(namespaces)?;
    target.check_names(&document)?; // the target's name rules, before anything is written
    check_secrets(&document)?;
    let plan = target.plan(&document, false)?;
    let show_progress = std::io::stderr().is_terminal();
    let configurations: usize = document.values().map(|c| c.len()).sum();
    let namespaces = document.len();
    target.apply_owned(&plan, document, |done, total| {
        if show_progress {
            let width = 30;
            let filled = (done * width).checked_div(total).unwrap_or(width);
            output::stderr(format_args!("\r[{}{}] {done}/{total}", "#".repeat(filled), " ".repeat(width - filled)));
            if done == total {
                errln!("");
            }
        }
    })?;
    errln!(
        "confo: copied {configurations} configuration(s) in {} namespace(s): {} created, {} changed, {} unchanged; {} namespace(s) created",
        namespaces,
        plan.count(Action::Create),
        plan.count(Action::Change),
        plan.unchanged,
        plan.new_namespaces.len()
    );
    Ok(())
}

pub(crate) fn diff(left: &str, right: &str, namespaces: &[String], output: Option<Format>) -> Result<(), Failure> {
    let read = |side: Side| -> Result<Document, Failure> {
        Ok(match side {
            Side::Document(mut document) => {
                if !namespaces.is_empty() {
                    document.retain(|ns, _| namespaces.contains(ns));
                }
                document
            }
            Side::Backend(store) => store.export(namespaces)?,
        })
    };
    let (left, right) = (read(side(left)?)?, read(side(right)?)?);
    let differences = confo::transfer::diff(&left, &right);
    if output == Some(Format::Json) {
        let items: Vec<Value> = differences
            .iter()
            .map(|(ns, cfg, kind)| {
                let kind = match kind {
                    Difference::OnlyLeft => "only_left",
                    Difference::OnlyRight => "only_right",
                    Difference::Different => "different",
                };
                serde_json::json!({"namespace": ns, "configuration": cfg, "difference": kind})
            })
            .collect();
        return output::value(&Value::Array(items), Format::Json);
    }
    for (ns, cfg, kind) in differences {
        let mark = match kind {
            Difference::OnlyLeft => '-',
            Difference::OnlyRight => '+',
            Difference::Different => '~',
        };
        outln!("{mark} {}", output::safe(&format!("{ns}/{cfg}"), output::Stream::Out));
    }
    Ok(())
}

/// With the keyring at hand, every sealed value of a document must open where it is going;
/// without it, sealed values are copied as they are (their places do not change).
fn check_secrets(document: &Document) -> Result<(), Failure> {
    let has_secrets = document.values().flat_map(|c| c.values()).any(confo::model::sealed::has_sealed);
    if has_secrets {
        if let Some(keyring) = confo::secrets::Keyring::find()? {
            confo::secrets::check_document(document, &keyring)?;
        }
    }
    Ok(())
}

/// How deeply a configuration (its own object the first level) may nest for an export in
/// `format` to be read back: serde_yaml reads 128 levels (the document's two among them), the
/// toml crate 80 levels of inline arrays and tables below a configuration's table. JSON: no
/// limit beyond the write's.
fn readable_depth(format: Format) -> Option<usize> {
    match format {
        Format::Yaml => Some(126),
        Format::Toml => Some(81),
        Format::Json | Format::Table => None,
    }
}
