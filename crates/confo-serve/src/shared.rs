//! One change subscription per backend, shared by every namespace the server watches.
//!
//! A [`confo::Watcher`] subscribes to its backend's notifications when it starts. The server
//! runs one watcher per namespace it serves, and a subscription is not free: the file engine's
//! is an inotify instance over the whole store (Linux allows 128 per user by default), Redis's
//! a pub/sub connection, etcd's a watch stream. [`SharedHints`] wraps a backend so that the
//! first subscription is made once and fanned out to every watcher; everything else is passed
//! through unchanged.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use confo::backend::{Backend, Capabilities, ChangeSet, Edit, Hint, Hints, Repair, SchemaRead};
use confo::model::change::WriteReport;
use confo::model::history::Author;
use confo::model::name::{ConfigName, NameKind, NamespaceName};
use confo::model::version::{NamespaceData, Stored, Version};
use confo::Result;
use tokio::sync::{broadcast, mpsc, Mutex};

/// How many hints a slow watcher may fall behind before it is told to re-read everything.
const BACKLOG: usize = 4096;

/// A backend whose change subscription is made once and shared.
#[derive(Debug)]
pub struct SharedHints {
    inner: Arc<dyn Backend>,
    hub: Mutex<Option<(broadcast::Sender<Hint>, Arc<AtomicBool>)>>,
}

impl SharedHints {
    /// `inner`, its subscription shared.
    pub fn wrap(inner: Arc<dyn Backend>) -> Arc<dyn Backend> {
        Arc::new(SharedHints { inner, hub: Mutex::new(None) })
    }
}

#[async_trait]
impl Backend for SharedHints {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn check_name(&self, kind: NameKind, name: &str) -> Result<()> {
        self.inner.check_name(kind, name)
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn list_namespaces(&self) -> Result<Vec<String>> {
        self.inner.list_namespaces().await
    }

    async fn create(&self, namespace: &NamespaceName) -> Result<bool> {
        self.inner.create(namespace).await
    }

    async fn delete(&self, namespace: &NamespaceName) -> Result<()> {
        self.inner.delete(namespace).await
    }

    async fn load(&self, namespace: &NamespaceName) -> Result<NamespaceData> {
        self.inner.load(namespace).await
    }

    async fn load_compact(&self, namespace: &NamespaceName) -> Result<confo::model::compact::CompactNamespace> {
        self.inner.load_compact(namespace).await
    }

    async fn load_one(&self, namespace: &NamespaceName, name: &ConfigName) -> Result<Option<Stored>> {
        self.inner.load_one(namespace, name).await
    }

    async fn apply(&self, namespace: &NamespaceName, changes: &ChangeSet<'_>) -> WriteReport {
        self.inner.apply(namespace, changes).await
    }

    async fn load_one_with_schema(
        &self,
        namespace: &NamespaceName,
        name: &ConfigName,
        known: Option<&Version>,
    ) -> Result<(Option<Stored>, SchemaRead)> {
        self.inner.load_one_with_schema(namespace, name, known).await
    }

    async fn load_and_apply(
        &self,
        namespace: &NamespaceName,
        name: &ConfigName,
        known_schema: Option<&Version>,
        author: &Author,
        edit: Arc<Edit>,
    ) -> Result<(Option<Stored>, Option<WriteReport>)> {
        self.inner.load_and_apply(namespace, name, known_schema, author, edit).await
    }

    async fn subscribe(&self) -> Result<Option<Hints>> {
        let mut hub = self.hub.lock().await;
        let running = hub.as_ref().filter(|(_, alive)| alive.load(Ordering::SeqCst)).map(|(tx, _)| tx.clone());
        let sender = match running {
            Some(sender) => sender,
            None => {
                let Some(mut upstream) = self.inner.subscribe().await? else { return Ok(None) };
                let (sender, _) = broadcast::channel(BACKLOG);
                let alive = Arc::new(AtomicBool::new(true));
                let (forward, flag) = (sender.clone(), alive.clone());
                tokio::spawn(async move {
                    while let Some(hint) = upstream.recv().await {
                        let _ = forward.send(hint);
                    }
                    flag.store(false, Ordering::SeqCst);
                });
                *hub = Some((sender.clone(), alive));
                sender
            }
        };
        let mut from = sender.subscribe();
        drop(hub);
        let (out, hints) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let hint = tokio::select! {
                    received = from.recv() => match received {
                        Ok(hint) => hint,
                        // Fell behind: some hints were lost, so everything may have changed.
                        Err(broadcast::error::RecvError::Lagged(_)) => Hint::All,
                        Err(broadcast::error::RecvError::Closed) => break,
                    },
                    () = out.closed() => break,
                };
                if out.send(hint).is_err() {
                    break;
                }
            }
        });
        Ok(Some(hints))
    }

    async fn history(&self, namespace: &NamespaceName, name: &ConfigName) -> Result<confo::model::history::History> {
        self.inner.history(namespace, name).await
    }

    async fn history_names(&self, namespace: &NamespaceName) -> Result<Vec<String>> {
        self.inner.history_names(namespace).await
    }

    async fn rewrite_history(
        &self,
        namespace: &NamespaceName,
        name: &ConfigName,
        rewrite: &confo::model::history::Rewrite,
    ) -> Result<Vec<u64>> {
        self.inner.rewrite_history(namespace, name, rewrite).await
    }

    async fn repair(&self, options: &confo::backend::RepairOptions) -> Result<Repair> {
        self.inner.repair(options).await
    }

    async fn check_acls(&self, fix: bool) -> Result<Vec<confo::backend::AclFinding>> {
        self.inner.check_acls(fix).await
    }

    async fn schema_document(&self, namespace: &NamespaceName) -> Result<Option<(Vec<u8>, Version)>> {
        self.inner.schema_document(namespace).await
    }

    async fn put_schema_document(
        &self,
        namespace: &NamespaceName,
        document: Option<Vec<u8>>,
        precondition: &confo::model::change::Precondition,
    ) -> Result<Option<Version>> {
        self.inner.put_schema_document(namespace, document, precondition).await
    }
}
