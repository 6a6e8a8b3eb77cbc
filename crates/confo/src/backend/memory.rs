//! The in-memory backend (spec `memory:`): the reference implementation of [`Backend`].
//!
//! # Backend details
//!
//! - Layout: a map of namespaces, each a map of configurations; nothing leaves the process.
//! - Versions: one counter per backend, bumped on every put, so a version is never reused.
//! - Atomic: a whole batch is checked and applied under one lock.
//! - Notifications: every change is sent to every subscriber at once.
//! - Limits: memory.

use crate::fork::Mutex;
use std::collections::BTreeMap;

use async_trait::async_trait;

use super::{check_precondition, Backend, Capabilities, ChangeSet, Hint, Hints};
use crate::model::change::{Applied, Change, ChangeKind, WriteReport};
use crate::model::decode::Sink;
use crate::model::error::{Error, Missing, Result};
use crate::model::history::{operation_of, HistoryOptions, Operation, Revision};
use crate::model::name::{ConfigName, NamespaceName};
use crate::model::version::{NamespaceData, Stored, Version};

/// A backend that keeps everything in memory. Cheap to create; useful in tests and as the
/// reference every other backend is compared with.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    // A std Mutex, not an async one: it is never held across an await.
    state: Mutex<State>,
    history: HistoryOptions,
}

#[derive(Debug, Default)]
struct State {
    namespaces: BTreeMap<String, NamespaceData>,
    counter: i64,
    subscribers: Vec<tokio::sync::mpsc::UnboundedSender<Hint>>,
    /// (namespace, configuration) → revisions, oldest first; kept when either is deleted.
    history: BTreeMap<(String, String), Vec<Revision>>,
    /// Namespace → its schema document and version.
    schemas: BTreeMap<String, (Vec<u8>, i64)>,
}

impl State {
    fn notify(&mut self, namespace: &str) {
        self.subscribers.retain(|s| s.send(Hint::Namespace(namespace.to_owned())).is_ok());
    }
}

impl MemoryBackend {
    /// An empty store (recording history with the default retention).
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store with these history options.
    pub fn with_history(history: HistoryOptions) -> Self {
        MemoryBackend { history, ..Default::default() }
    }

    fn state(&self) -> crate::fork::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave State half-changed (every change is
        // computed first, then applied), so a poisoned lock is safe to use.
        self.state.lock()
    }

    fn missing_namespace(&self, namespace: &str) -> Error {
        Error::not_found(Missing::Namespace, namespace, self.describe())
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    fn describe(&self) -> String {
        "memory".to_owned()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            notifies: true,
            notifies_every_change: true,
            max_value_bytes: None,
            history: self.history.enabled,
        }
    }

    async fn list_namespaces(&self) -> Result<Vec<String>> {
        Ok(self.state().namespaces.keys().cloned().collect())
    }

    async fn create(&self, namespace: &NamespaceName) -> Result<bool> {
        let namespace = namespace.as_str();
        let mut state = self.state();
        if state.namespaces.contains_key(namespace) {
            return Ok(false);
        }
        state.namespaces.insert(namespace.to_owned(), NamespaceData::new());
        state.notify(namespace);
        Ok(true)
    }

    async fn delete(&self, namespace: &NamespaceName) -> Result<()> {
        let namespace = namespace.as_str();
        let mut state = self.state();
        match state.namespaces.remove(namespace) {
            Some(_) => {
                state.notify(namespace);
                Ok(())
            }
            None => Err(self.missing_namespace(namespace)),
        }
    }

    /// Values are held decoded: the namespace is handed over whole.
    async fn scan(&self, namespace: &NamespaceName, sink: std::sync::Arc<dyn Sink>) -> Result<()> {
        sink.loaded(self.load(namespace).await?);
        Ok(())
    }

    async fn load(&self, namespace: &NamespaceName) -> Result<NamespaceData> {
        let namespace = namespace.as_str();
        self.state().namespaces.get(namespace).cloned().ok_or_else(|| self.missing_namespace(namespace))
    }

    async fn read_one(
        &self,
        namespace: &NamespaceName,
        name: &ConfigName,
        sink: std::sync::Arc<dyn Sink>,
    ) -> Result<()> {
        let (namespace, name) = (namespace.as_str(), name.as_str());
        let stored = {
            let state = self.state();
            let configs = state.namespaces.get(namespace).ok_or_else(|| self.missing_namespace(namespace))?;
            configs.get(name).cloned()
        };
        if let Some(stored) = stored {
            sink.loaded([(name.to_owned(), stored)].into_iter().collect());
        }
        Ok(())
    }

    async fn apply(&self, namespace: &NamespaceName, changes: &ChangeSet<'_>) -> WriteReport {
        let namespace = namespace.as_str();
        let author = changes.author();
        let changes: &[Change] = changes;
        let mut guard = self.state();
        let state = &mut *guard;
        let Some(configs) = state.namespaces.get_mut(namespace) else {
            drop(guard);
            return WriteReport::failed(self.missing_namespace(namespace));
        };
        for change in changes {
            let current = configs.get(&change.name).map(|s| &s.version);
            let checked = check_precondition(&change.precondition, current, (namespace, &change.name), || {
                format!("memory {namespace}/{}", change.name)
            });
            if let Err(e) = checked {
                return WriteReport::failed(e);
            }
        }
        let mut applied = Vec::with_capacity(changes.len());
        let time = crate::model::history::now();
        for change in changes {
            let before = configs.get(&change.name).map(|s| s.version.clone());
            let (version, operation, value) = match &change.kind {
                ChangeKind::Put(value) => {
                    state.counter += 1;
                    let version = Version::number(state.counter);
                    configs.insert(change.name.clone(), Stored::new(value.clone(), version.clone()));
                    (Some(version), Some(operation_of(change, before.is_some())), Some(value.clone()))
                }
                ChangeKind::Delete => {
                    let existed = configs.remove(&change.name).is_some();
                    (None, existed.then_some(Operation::Delete), None)
                }
            };
            if let (true, Some(operation)) = (self.history.enabled, operation) {
                let revisions = state.history.entry((namespace.to_owned(), change.name.clone())).or_default();
                revisions.push(Revision {
                    number: revisions.last().map_or(1, |r| r.number + 1),
                    operation,
                    value,
                    version_before: before.map(|v| v.to_string()),
                    version_after: version.as_ref().map(|v| v.to_string()),
                    time,
                    actor: author.actor.clone(),
                    host: author.host.clone(),
                    tool: author.tool.clone(),
                    message: author.message.clone(),
                    restores: change.restores,
                });
                let ages: Vec<(u64, std::time::SystemTime)> = revisions.iter().map(|r| (r.number, r.time)).collect();
                let drop = self.history.to_drop(&ages, time);
                revisions.retain(|r| !drop.contains(&r.number));
            }
            applied.push(Applied { name: change.name.clone(), version });
        }
        if !applied.is_empty() {
            state.notify(namespace);
        }
        WriteReport { applied, ..Default::default() }
    }

    async fn subscribe(&self) -> Result<Option<Hints>> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.state().subscribers.push(tx);
        Ok(Some(rx))
    }

    async fn history(&self, namespace: &NamespaceName, name: &ConfigName) -> Result<crate::model::history::History> {
        let key = (namespace.as_str().to_owned(), name.as_str().to_owned());
        let revisions = self.state().history.get(&key).cloned().unwrap_or_default();
        Ok(crate::model::history::History { revisions, corrupt: Vec::new() }.sorted())
    }

    async fn rewrite_history(
        &self,
        namespace: &NamespaceName,
        name: &ConfigName,
        rewrite: &crate::model::history::Rewrite,
    ) -> Result<Vec<u64>> {
        let key = (namespace.as_str().to_owned(), name.as_str().to_owned());
        let mut state = self.state();
        let mut rewritten = Vec::new();
        for revision in state.history.get_mut(&key).into_iter().flatten() {
            if let Some(value) = &revision.value {
                let mut value = (**value).clone();
                if rewrite(&mut value) {
                    revision.value = Some(std::sync::Arc::new(value));
                    rewritten.push(revision.number);
                }
            }
        }
        rewritten.sort_unstable();
        Ok(rewritten)
    }

    async fn history_names(&self, namespace: &NamespaceName) -> Result<Vec<String>> {
        let state = self.state();
        Ok(state.history.keys().filter(|(ns, _)| ns == namespace.as_str()).map(|(_, c)| c.clone()).collect())
    }

    async fn schema_document(&self, namespace: &NamespaceName) -> Result<Option<(Vec<u8>, Version)>> {
        let state = self.state();
        Ok(state.schemas.get(namespace.as_str()).map(|(bytes, v)| (bytes.clone(), Version::number(*v))))
    }

    async fn put_schema_document(
        &self,
        namespace: &NamespaceName,
        document: Option<Vec<u8>>,
        precondition: &crate::model::change::Precondition,
    ) -> Result<Option<Version>> {
        let mut state = self.state();
        let ns = namespace.as_str();
        if !state.namespaces.contains_key(ns) && document.is_some() {
            return Err(self.missing_namespace(ns));
        }
        let current = state.schemas.get(ns).map(|(_, v)| Version::number(*v));
        check_precondition(precondition, current.as_ref(), (ns, "(schema)"), || format!("memory schema of {ns}"))?;
        match document {
            Some(bytes) => {
                state.counter += 1;
                let version = state.counter;
                state.schemas.insert(ns.to_owned(), (bytes, version));
                Ok(Some(Version::number(version)))
            }
            None => {
                state.schemas.remove(ns);
                Ok(None)
            }
        }
    }
}

impl crate::spec::BackendKind {
    /// In memory, in this process.
    pub const MEMORY: crate::spec::BackendKind = crate::spec::BackendKind::new("memory");
}

impl crate::spec::BackendSpec {
    /// The spec of an in-memory backend (`memory:`): each open makes a new, empty store.
    pub fn memory() -> Self {
        crate::spec::BackendSpec::new(MemorySpec)
    }
}

/// The spec of an in-memory backend (`memory:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemorySpec;

impl std::fmt::Display for MemorySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("memory:")
    }
}

#[async_trait]
impl crate::spec::EngineSpec for MemorySpec {
    fn kind(&self) -> crate::spec::BackendKind {
        crate::spec::BackendKind::MEMORY
    }

    async fn open(&self) -> Result<std::sync::Arc<dyn Backend>> {
        Ok(std::sync::Arc::new(MemoryBackend::new()))
    }
}

/// The memory engine: `memory:` and `{}`.
pub(crate) struct MemoryEngine;

impl crate::spec::Engine for MemoryEngine {
    fn kind(&self) -> crate::spec::BackendKind {
        crate::spec::BackendKind::MEMORY
    }

    fn schemes(&self) -> &'static [&'static str] {
        &["memory"]
    }

    fn example(&self) -> &'static str {
        "memory:"
    }

    fn parse_url(&self, _: &crate::spec::Registry, spec: &str) -> Result<crate::spec::BackendSpec> {
        match spec.split_once(':').map(|(_, rest)| rest) {
            Some("" | "//") => Ok(crate::spec::BackendSpec::memory()),
            _ => Err(Error::spec(None, "memory: takes nothing after the colon")),
        }
    }

    fn parse_credentials(
        &self,
        _: &crate::spec::Registry,
        credentials: &serde_json::Value,
    ) -> Result<crate::spec::BackendSpec> {
        crate::options::Credentials::new(crate::spec::BackendKind::MEMORY, credentials)?.finish()?;
        Ok(crate::spec::BackendSpec::memory())
    }
}
