//! Whole stores as documents: export, compare, and bring a store to a document (import, copy).
//!
//! A [`Document`] is `{"<namespace>": {"<configuration>": {...fields...}}}` and nothing else.
//! [`plan`] compares a document with a store and says what would be created, changed or
//! deleted; [`apply`] carries a plan out, one batch per namespace, each change conditional on
//! the version the plan saw (so a concurrent writer makes it a [`Error::Conflict`], not a
//! silent overwrite).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::backend::Backend;
use crate::model::change::{Change, Precondition};
use crate::model::error::{ConfigId, Corruption, Error, Missing, Result};
use crate::model::name::NameKind;
use crate::model::version::Configuration;
use crate::store::ext::BackendExt;

/// Namespaces → configurations → content.
pub type Document = BTreeMap<String, BTreeMap<String, Configuration>>;

/// Reads `namespaces` (all of them when empty) into a document. A named namespace that does
/// not exist is [`Error::NotFound`]; a corrupt entry is [`Error::Corrupt`] (with every corrupt
/// entry listed): a document must be the whole store. See [`export_readable`] to skip them.
pub async fn export(backend: &dyn Backend, namespaces: &[String]) -> Result<Document> {
    let (document, skipped) = export_readable(backend, namespaces).await?;
    match skipped.is_empty() {
        true => Ok(document),
        false => Err(Error::Corrupt { corruptions: skipped }),
    }
}

/// Reads `namespaces` (all of them when empty) into a document of every readable
/// configuration, and the corrupt entries it skipped.
pub async fn export_readable(backend: &dyn Backend, namespaces: &[String]) -> Result<(Document, Vec<Corruption>)> {
    let names = if namespaces.is_empty() { backend.list_namespaces().await? } else { namespaces.to_vec() };
    let mut document = Document::new();
    let mut skipped = Vec::new();
    for namespace in names {
        let (entries, corrupt) = backend.load_namespace(&namespace).await?.into_parts();
        skipped.extend(corrupt.into_values().map(|c| c.corruption));
        // Just loaded, each value has one owner: moved out, not copied.
        let configurations =
            entries.into_iter().map(|(name, stored)| (name, Arc::unwrap_or_clone(stored.value))).collect();
        document.insert(namespace, configurations);
    }
    Ok((document, skipped))
}

/// Namespaces as read in compact form, by name, each configuration by name: written as the
/// [`Document`] of the same data is (see [`export_readable_compact`]), without the maps.
#[derive(Debug, Default)]
pub struct CompactDocument(pub BTreeMap<String, Vec<(String, Arc<crate::model::compact::Compact>)>>);

impl serde::Serialize for CompactDocument {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        struct Namespace<'a>(&'a [(String, Arc<crate::model::compact::Compact>)]);
        impl serde::Serialize for Namespace<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
                serializer.collect_map(self.0.iter().map(|(name, value)| (name, &**value)))
            }
        }
        serializer.collect_map(self.0.iter().map(|(namespace, entries)| (namespace, Namespace(entries))))
    }
}

/// [`export_readable`] in compact form (each engine reads straight into it where it can; see
/// [`Backend::load_compact`]): a namespace is held once, about a
/// third of its size as maps. Configurations are sorted by name, as in a [`Document`].
pub async fn export_readable_compact(
    backend: &dyn Backend,
    namespaces: &[String],
) -> Result<(CompactDocument, Vec<Corruption>)> {
    let names = if namespaces.is_empty() { backend.list_namespaces().await? } else { namespaces.to_vec() };
    let mut document = CompactDocument::default();
    let mut skipped = Vec::new();
    for namespace in names {
        let read = backend.load_namespace_compact(&namespace).await?;
        skipped.extend(read.corrupt.into_values().map(|c| c.corruption));
        let mut entries: Vec<(String, Arc<crate::model::compact::Compact>)> =
            read.entries.into_iter().map(|(name, value, _)| (name, value)).collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        document.0.insert(namespace, entries);
    }
    Ok((document, skipped))
}

/// Parses a document from JSON, checking its shape and every name.
pub fn document_from_value(value: serde_json::Value, backend: &dyn Backend) -> Result<Document> {
    let bad = |message: String| Error::InvalidValue { location: "document".into(), message };
    let serde_json::Value::Object(namespaces) = value else {
        return Err(bad("expected {\"<namespace>\": {\"<configuration>\": {...}}}".into()));
    };
    let mut document = Document::new();
    for (namespace, configurations) in namespaces {
        let serde_json::Value::Object(configurations) = configurations else {
            return Err(bad(format!("namespace {namespace:?} must be an object of configurations")));
        };
        let mut entries = BTreeMap::new();
        for (name, content) in configurations {
            let serde_json::Value::Object(content) = content else {
                return Err(bad(format!("{namespace}/{name} must be a JSON object")));
            };
            entries.insert(name, content);
        }
        document.insert(namespace, entries);
    }
    check_names(backend, &document)?;
    Ok(document)
}

/// Checks every namespace and configuration name of a document against the rules for new names
/// and the backend's own (before a copy or an import writes anything).
pub fn check_names(backend: &dyn Backend, document: &Document) -> Result<()> {
    use crate::store::ext::BackendExt;
    for (namespace, configurations) in document {
        backend.validate_new_name(NameKind::Namespace, namespace)?;
        for name in configurations.keys() {
            backend.validate_new_name(NameKind::Configuration, name)?;
        }
    }
    Ok(())
}

/// What a plan does to one configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// It does not exist yet.
    Create,
    /// It exists with other content.
    Change,
    /// It exists and is not in the document (only with `prune`).
    Delete,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Create => "create",
            Action::Change => "change",
            Action::Delete => "delete",
        })
    }
}

/// One step of a plan.
#[derive(Debug, Clone)]
pub struct Step {
    /// The namespace.
    pub namespace: String,
    /// The configuration.
    pub configuration: String,
    /// What happens to it.
    pub action: Action,
    precondition: Precondition,
}

/// What bringing a store to a document would do.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Namespaces to create first.
    pub new_namespaces: Vec<String>,
    /// Configuration steps, sorted by namespace then name.
    pub steps: Vec<Step>,
    /// Configurations already as the document has them.
    pub unchanged: usize,
}

impl Plan {
    /// True when applying would change nothing.
    pub fn is_empty(&self) -> bool {
        self.new_namespaces.is_empty() && self.steps.is_empty()
    }

    /// How many steps of an action the plan has.
    pub fn count(&self, action: Action) -> usize {
        self.steps.iter().filter(|s| s.action == action).count()
    }
}

/// Compares `document` with the store. With `prune`, configurations of the document's
/// namespaces that the document lacks are deleted; other namespaces are never touched.
pub async fn plan(backend: &dyn Backend, document: &Document, prune: bool) -> Result<Plan> {
    let existing = backend.list_namespaces().await?;
    let mut plan = Plan::default();
    for (namespace, wanted) in document {
        // Read in compact form: with the document in memory too, a namespace as maps would
        // double what an import holds.
        let current = if existing.contains(namespace) {
            backend.load_namespace_compact(namespace).await?
        } else {
            plan.new_namespaces.push(namespace.clone());
            Default::default()
        };
        let stored: std::collections::HashMap<
            &str,
            (&crate::model::compact::Compact, &crate::model::version::Version),
        > = current.entries.iter().map(|(name, value, version)| (name.as_str(), (&**value, version))).collect();
        let step = |configuration: &str, action, precondition| Step {
            namespace: namespace.clone(),
            configuration: configuration.to_owned(),
            action,
            precondition,
        };
        for (name, content) in wanted {
            match stored.get(name.as_str()) {
                // A corrupt entry the document has is replaced, as it is.
                None if current.corrupt.contains_key(name) => {
                    let version = current.corrupt[name].version.clone();
                    plan.steps.push(step(
                        name,
                        Action::Change,
                        version.map_or(Precondition::Absent, Precondition::Version),
                    ))
                }
                None => plan.steps.push(step(name, Action::Create, Precondition::Absent)),
                Some((value, version)) if !value.same_as(content) => {
                    plan.steps.push(step(name, Action::Change, Precondition::Version((*version).clone())))
                }
                Some(_) => plan.unchanged += 1,
            }
        }
        if prune {
            for (name, _, version) in current.entries.iter().filter(|(name, ..)| !wanted.contains_key(name)) {
                plan.steps.push(step(name, Action::Delete, Precondition::Version(version.clone())));
            }
            for (name, entry) in current.corrupt.iter().filter(|(name, _)| !wanted.contains_key(*name)) {
                let precondition = entry.version.clone().map_or(Precondition::Absent, Precondition::Version);
                plan.steps.push(step(name, Action::Delete, precondition));
            }
        }
    }
    // By namespace, then name: what a reader expects, and each namespace stays one batch.
    plan.steps.sort_by(|a, b| (&a.namespace, &a.configuration).cmp(&(&b.namespace, &b.configuration)));
    Ok(plan)
}

/// Carries out a plan made from `document`: every batch is checked first (names, sizes, depth:
/// one bad change refuses the whole plan, and no namespace is created), then namespaces are
/// created, then one batch per namespace is written. `progress` is told (steps done, steps in
/// all) after each batch.
///
/// A failure part-way is [`Error::PersistIncomplete`] listing exactly which configurations were
/// written, which were not, and which are in doubt (the connection broke and the store could
/// not be read back); see [`crate::store::ext::BackendExt::write_settled`].
pub async fn apply(
    backend: &dyn Backend,
    plan: &Plan,
    document: &Document,
    progress: impl FnMut(usize, usize),
) -> Result<()> {
    apply_as(backend, plan, document, &crate::model::history::Author::library(), progress).await
}

/// [`apply`], its writes recorded in history as made by `author`.
pub async fn apply_as(
    backend: &dyn Backend,
    plan: &Plan,
    document: &Document,
    author: &crate::model::history::Author,
    progress: impl FnMut(usize, usize),
) -> Result<()> {
    apply_sealed_as(backend, plan, document, author, None, progress).await
}

/// [`apply_as`] with the keyring at hand: a plain value the document has where the store
/// holds a sealed secret is sealed again with it (refused without one): see
/// [`BackendExt::write_sealed_as`].
pub async fn apply_sealed_as(
    backend: &dyn Backend,
    plan: &Plan,
    document: &Document,
    author: &crate::model::history::Author,
    keyring: Option<&crate::secrets::Keyring>,
    progress: impl FnMut(usize, usize),
) -> Result<()> {
    let content = |namespace: &str, name: &str| document.get(namespace).and_then(|n| n.get(name)).cloned();
    apply_with(backend, plan, content, author, keyring, progress).await
}

/// [`apply_as`] taking the document: its configurations are moved into the writes instead of
/// copied (an import or a copy holds one copy of the data, not two).
pub async fn apply_owned_as(
    backend: &dyn Backend,
    plan: &Plan,
    document: Document,
    author: &crate::model::history::Author,
    progress: impl FnMut(usize, usize),
) -> Result<()> {
    apply_owned_sealed_as(backend, plan, document, author, None, progress).await
}

/// [`apply_owned_as`] with the keyring at hand (see [`apply_sealed_as`]).
pub async fn apply_owned_sealed_as(
    backend: &dyn Backend,
    plan: &Plan,
    mut document: Document,
    author: &crate::model::history::Author,
    keyring: Option<&crate::secrets::Keyring>,
    progress: impl FnMut(usize, usize),
) -> Result<()> {
    let content = |namespace: &str, name: &str| document.get_mut(namespace).and_then(|n| n.remove(name));
    apply_with(backend, plan, content, author, keyring, progress).await
}

async fn apply_with(
    backend: &dyn Backend,
    plan: &Plan,
    mut content: impl FnMut(&str, &str) -> Option<Configuration>,
    author: &crate::model::history::Author,
    keyring: Option<&crate::secrets::Keyring>,
    mut progress: impl FnMut(usize, usize),
) -> Result<()> {
    use crate::store::ext::BackendExt;
    let mut batches: Vec<(&str, Vec<Change>)> = Vec::new();
    let mut start = 0;
    while start < plan.steps.len() {
        let namespace = &plan.steps[start].namespace;
        let end = start + plan.steps[start..].iter().take_while(|s| &s.namespace == namespace).count();
        let changes: Vec<Change> = plan.steps[start..end]
            .iter()
            .map(|step| {
                let change = match step.action {
                    Action::Delete => Change::delete(step.configuration.clone()),
                    _ => {
                        let content = content(namespace, &step.configuration).ok_or_else(|| {
                            Error::not_found(Missing::Configuration, step.configuration.clone(), "document")
                        })?;
                        Change::put(step.configuration.clone(), content)
                    }
                };
                Ok(change.when(step.precondition.clone()))
            })
            .collect::<Result<_>>()?;
        backend.check_batch(namespace, &changes)?;
        batches.push((namespace, changes));
        start = end;
    }
    for namespace in &plan.new_namespaces {
        backend.validate_new_name(crate::model::name::NameKind::Namespace, namespace)?;
    }
    crate::schema::check_batches(backend, batches.iter().map(|(ns, c)| (*ns, c.as_slice()))).await?;
    for namespace in &plan.new_namespaces {
        backend.create_namespace(namespace).await?;
    }
    let total = plan.steps.len();
    let mut written = Vec::new();
    for (index, (namespace, changes)) in batches.iter().enumerate() {
        let report = backend.write_settled_sealed_as(namespace, changes, author, keyring).await;
        if report.error.is_some() {
            let later = batches[index + 1..]
                .iter()
                .flat_map(|(ns, batch)| batch.iter().map(move |c| ConfigId::new(*ns, &c.name)));
            return Err(report.into_incomplete(written, namespace, changes.iter().map(|c| c.name.as_str()), later));
        }
        written.extend(report.applied.iter().map(|a| ConfigId::new(*namespace, &a.name)));
        progress(written.len(), total);
    }
    Ok(())
}

/// How a configuration differs between two documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Difference {
    /// Only the left side has it.
    OnlyLeft,
    /// Only the right side has it.
    OnlyRight,
    /// Both have it, with other content.
    Different,
}

/// Every configuration that differs between two documents, by namespace then name.
pub fn diff(left: &Document, right: &Document) -> Vec<(String, String, Difference)> {
    let empty = BTreeMap::new();
    let namespaces: std::collections::BTreeSet<&String> = left.keys().chain(right.keys()).collect();
    let mut out = Vec::new();
    for namespace in namespaces {
        let l = left.get(namespace).unwrap_or(&empty);
        let r = right.get(namespace).unwrap_or(&empty);
        let names: std::collections::BTreeSet<&String> = l.keys().chain(r.keys()).collect();
        for name in names {
            let kind = match (l.get(name), r.get(name)) {
                (Some(_), None) => Difference::OnlyLeft,
                (None, Some(_)) => Difference::OnlyRight,
                (Some(a), Some(b)) if a != b => Difference::Different,
                _ => continue,
            };
            out.push((namespace.clone(), name.clone(), kind));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::memory::MemoryBackend;
    use crate::store::ext::BackendExt;
    use serde_json::json;

    fn doc(v: serde_json::Value) -> Document {
        document_from_value(v, &MemoryBackend::new()).unwrap()
    }

    #[tokio::test]
    async fn plan_apply_and_prune() {
        let store = MemoryBackend::new();
        store.create_namespace("a").await.unwrap();
        store.put_configuration("a", "same", json!({"x": 1}).as_object().unwrap().clone()).await.unwrap();
        store.put_configuration("a", "old", json!({"x": 1}).as_object().unwrap().clone()).await.unwrap();
        store.put_configuration("a", "extra", json!({}).as_object().unwrap().clone()).await.unwrap();
        let wanted = doc(json!({"a": {"same": {"x": 1}, "old": {"x": 2}, "new": {}}, "b": {"c": {"y": true}}}));
        let plan = plan(&store, &wanted, false).await.unwrap();
        assert_eq!(plan.new_namespaces, ["b"]);
        assert_eq!(
            (plan.count(Action::Create), plan.count(Action::Change), plan.count(Action::Delete), plan.unchanged),
            (2, 1, 0, 1)
        );
        let pruning = super::plan(&store, &wanted, true).await.unwrap();
        assert_eq!(pruning.count(Action::Delete), 1);
        let mut seen = Vec::new();
        apply(&store, &pruning, &wanted, |done, total| seen.push((done, total))).await.unwrap();
        assert_eq!(seen.last(), Some(&(4, 4)));
        assert_eq!(export(&store, &[]).await.unwrap(), wanted, "the store now is the document");
        assert!(super::plan(&store, &wanted, true).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_concurrent_change_is_a_conflict() {
        let store = MemoryBackend::new();
        store.create_namespace("a").await.unwrap();
        store.put_configuration("a", "c", json!({"v": 1}).as_object().unwrap().clone()).await.unwrap();
        let wanted = doc(json!({"a": {"c": {"v": 2}}}));
        let plan = plan(&store, &wanted, false).await.unwrap();
        store.put_configuration("a", "c", json!({"v": 3}).as_object().unwrap().clone()).await.unwrap();
        assert!(apply(&store, &plan, &wanted, |_, _| {}).await.unwrap_err().is_conflict());
    }

    #[test]
    fn documents_are_checked() {
        let store = MemoryBackend::new();
        assert!(document_from_value(json!([1]), &store).is_err());
        assert!(document_from_value(json!({"a": [1]}), &store).is_err());
        assert!(document_from_value(json!({"a": {"c": 1}}), &store).is_err());
        assert!(matches!(document_from_value(json!({"a/b": {}}), &store), Err(Error::InvalidName { .. })));
        let left = doc(json!({"a": {"x": {}, "y": {"v": 1}}}));
        let right = doc(json!({"a": {"y": {"v": 2}, "z": {}}, "b": {"w": {}}}));
        let d = diff(&left, &right);
        assert_eq!(d.len(), 4);
        assert_eq!(d[0], ("a".into(), "x".into(), Difference::OnlyLeft));
        assert_eq!(d[1], ("a".into(), "y".into(), Difference::Different));
    }
}
