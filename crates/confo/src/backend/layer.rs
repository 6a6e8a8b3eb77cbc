//! Backends over backends that write only what they change.
//!
//! A wrapper (the last-known-good snapshots of `cache+`, a [`SharedSubscription`]) changes
//! a few of [`Backend`]'s methods and passes the rest to the backend it wraps. It implements
//! [`Layered`] instead of [`Backend`]: every method of [`Layered`] forwards to
//! [`Layered::inner`] unless the wrapper writes its own, and every [`Layered`] is a
//! [`Backend`]. So a method added to [`Backend`] is added here once, forwarding, and no
//! wrapper silently falls back to a default that reads around it (as OpenDAL's
//! `LayeredAccess`).
//!
//! What a wrapper must still think about is which methods it *composes*: where a wrapper
//! keeps something of its own (the snapshot of a namespace), a bulk or combined read that the
//! engine answers in one step (`load_compact`, `read_one_with_schema`) bypasses it when
//! forwarded. Such a wrapper writes those methods from its own (as the snapshot cache does);
//! the conformance suite runs on each wrapper and checks the results agree.
//!
//! [`SharedSubscription`]: super::shared::SharedSubscription

use std::sync::Arc;

use async_trait::async_trait;

use super::{AclFinding, Backend, Capabilities, ChangeSet, Edit, Hints, Repair, RepairOptions, SchemaRead};
use crate::model::change::{Precondition, WriteReport};
use crate::model::compact::CompactNamespace;
use crate::model::decode::Sink;
use crate::model::error::{Error, Result};
use crate::model::history::{Author, History, Rewrite};
use crate::model::name::{ConfigName, NameKind, NamespaceName};
use crate::model::version::{NamespaceData, Version};

/// A backend that wraps another and forwards, by default, every method to it.
///
/// Implement [`Layered::inner_now`] (and [`Layered::inner`] for a wrapper that opens its
/// backend late), then only the methods the wrapper changes. The methods have the meaning
/// [`Backend`]'s of the same name have; the blanket `impl<L: Layered> Backend for L` calls
/// them.
#[async_trait]
pub trait Layered: std::fmt::Debug + Send + Sync + 'static {
    /// The wrapped backend if it is open now: what the methods that cannot wait
    /// (`describe`, `check_name`, `capabilities`) forward to. A wrapper over an open backend
    /// always has it.
    fn inner_now(&self) -> Option<Arc<dyn Backend>>;

    /// The wrapped backend, opened now if need be: what the other methods forward to. The
    /// default is [`Layered::inner_now`], and [`Error::Unavailable`] without one.
    async fn inner(&self) -> Result<Arc<dyn Backend>> {
        self.inner_now().ok_or_else(|| Error::unavailable(Layered::describe(self), "the wrapped backend is not open"))
    }

    /// As [`Backend::describe`]; without an open backend, `a wrapped backend`.
    fn describe(&self) -> String {
        self.inner_now().map_or_else(|| "a wrapped backend".to_owned(), |b| b.describe())
    }

    /// As [`Backend::check_name`]; without an open backend, the shared rules alone.
    fn check_name(&self, kind: NameKind, name: &str) -> Result<()> {
        self.inner_now().map_or(Ok(()), |b| b.check_name(kind, name))
    }

    /// As [`Backend::capabilities`]; without an open backend, the least ones.
    fn capabilities(&self) -> Capabilities {
        self.inner_now().map(|b| b.capabilities()).unwrap_or_default()
    }

    /// As [`Backend::list_namespaces`].
    async fn list_namespaces(&self) -> Result<Vec<String>> {
        self.inner().await?.list_namespaces().await
    }

    /// As [`Backend::create`].
    async fn create(&self, namespace: &NamespaceName) -> Result<bool> {
        self.inner().await?.create(namespace).await
    }

    /// As [`Backend::delete`].
    async fn delete(&self, namespace: &NamespaceName) -> Result<()> {
        self.inner().await?.delete(namespace).await
    }

    /// As [`Backend::scan`].
    async fn scan(&self, namespace: &NamespaceName, sink: Arc<dyn Sink>) -> Result<()> {
        self.inner().await?.scan(namespace, sink).await
    }

    /// As [`Backend::load`].
    async fn load(&self, namespace: &NamespaceName) -> Result<NamespaceData> {
        self.inner().await?.load(namespace).await
    }

    /// As [`Backend::load_compact`].
    async fn load_compact(&self, namespace: &NamespaceName) -> Result<CompactNamespace> {
        self.inner().await?.load_compact(namespace).await
    }

    /// As [`Backend::read_one`].
    async fn read_one(&self, namespace: &NamespaceName, name: &ConfigName, sink: Arc<dyn Sink>) -> Result<()> {
        self.inner().await?.read_one(namespace, name, sink).await
    }

    /// As [`Backend::read_one_with_schema`].
    async fn read_one_with_schema(
        &self,
        namespace: &NamespaceName,
        name: &ConfigName,
        known: Option<&Version>,
        sink: Arc<dyn Sink>,
    ) -> Result<SchemaRead> {
        self.inner().await?.read_one_with_schema(namespace, name, known, sink).await
    }

    /// As [`Backend::load_and_apply`].
    async fn load_and_apply(
        &self,
        namespace: &NamespaceName,
        name: &ConfigName,
        known_schema: Option<&Version>,
        author: &Author,
        edit: Arc<Edit>,
    ) -> Result<Option<WriteReport>> {
        self.inner().await?.load_and_apply(namespace, name, known_schema, author, edit).await
    }

    /// As [`Backend::apply`].
    async fn apply(&self, namespace: &NamespaceName, changes: &ChangeSet<'_>) -> WriteReport {
        match self.inner().await {
            Ok(backend) => backend.apply(namespace, changes).await,
            Err(e) => WriteReport::failed(e),
        }
    }

    /// As [`Backend::subscribe`].
    async fn subscribe(&self) -> Result<Option<Hints>> {
        self.inner().await?.subscribe().await
    }

    /// As [`Backend::history`].
    async fn history(&self, namespace: &NamespaceName, name: &ConfigName) -> Result<History> {
        self.inner().await?.history(namespace, name).await
    }

    /// As [`Backend::history_names`].
    async fn history_names(&self, namespace: &NamespaceName) -> Result<Vec<String>> {
        self.inner().await?.history_names(namespace).await
    }

    /// As [`Backend::rewrite_history`].
    async fn rewrite_history(
        &self,
        namespace: &NamespaceName,
        name: &ConfigName,
        rewrite: &Rewrite,
    ) -> Result<Vec<u64>> {
        self.inner().await?.rewrite_history(namespace, name, rewrite).await
    }

    /// As [`Backend::repair`].
    async fn repair(&self, options: &RepairOptions) -> Result<Repair> {
        self.inner().await?.repair(options).await
    }

    /// As [`Backend::check_acls`].
    async fn check_acls(&self, fix: bool) -> Result<Vec<AclFinding>> {
        self.inner().await?.check_acls(fix).await
    }

    /// As [`Backend::schema_document`].
    async fn schema_document(&self, namespace: &NamespaceName) -> Result<Option<(Vec<u8>, Version)>> {
        self.inner().await?.schema_document(namespace).await
    }

    /// As [`Backend::put_schema_document`].
    async fn put_schema_document(
        &self,
        namespace: &NamespaceName,
        document: Option<Vec<u8>>,
        precondition: &Precondition,
    ) -> Result<Option<Version>> {
        self.inner().await?.put_schema_document(namespace, document, precondition).await
    }
}

#[async_trait]
impl<L: Layered> Backend for L {
    fn describe(&self) -> String {
        Layered::describe(self)
    }

    fn check_name(&self, kind: NameKind, name: &str) -> Result<()> {
        Layered::check_name(self, kind, name)
    }

    fn capabilities(&self) -> Capabilities {
        Layered::capabilities(self)
    }

    async fn list_namespaces(&self) -> Result<Vec<String>> {
        Layered::list_namespaces(self).await
    }

    async fn create(&self, namespace: &NamespaceName) -> Result<bool> {
        Layered::create(self, namespace).await
    }

    async fn delete(&self, namespace: &NamespaceName) -> Result<()> {
        Layered::delete(self, namespace).await
    }

    async fn scan(&self, namespace: &NamespaceName, sink: Arc<dyn Sink>) -> Result<()> {
        Layered::scan(self, namespace, sink).await
    }

    async fn load(&self, namespace: &NamespaceName) -> Result<NamespaceData> {
        Layered::load(self, namespace).await
    }

    async fn load_compact(&self, namespace: &NamespaceName) -> Result<CompactNamespace> {
        Layered::load_compact(self, namespace).await
    }

    async fn read_one(&self, namespace: &NamespaceName, name: &ConfigName, sink: Arc<dyn Sink>) -> Result<()> {
        Layered::read_one(self, namespace, name, sink).await
    }

    async fn read_one_with_schema(
        &self,
        namespace: &NamespaceName,
        name: &ConfigName,
        known: Option<&Version>,
        sink: Arc<dyn Sink>,
    ) -> Result<SchemaRead> {
        Layered::read_one_with_schema(self, namespace, name, known, sink).await
    }

    async fn load_and_apply(
        &self,
        namespace: &NamespaceName,
        name: &ConfigName,
        known_schema: Option<&Version>,
        author: &Author,
        edit: Arc<Edit>,
    ) -> Result<Option<WriteReport>> {
        Layered::load_and_apply(self, namespace, name, known_schema, author, edit).await
    }

    async fn apply(&self, namespace: &NamespaceName, changes: &ChangeSet<'_>) -> WriteReport {
        Layered::apply(self, namespace, changes).await
    }

    async fn subscribe(&self) -> Result<Option<Hints>> {
        Layered::subscribe(self).await
    }

    async fn history(&self, namespace: &NamespaceName, name: &ConfigName) -> Result<History> {
        Layered::history(self, namespace, name).await
    }

    async fn history_names(&self, namespace: &NamespaceName) -> Result<Vec<String>> {
        Layered::history_names(self, namespace).await
    }

    async fn rewrite_history(
        &self,
        namespace: &NamespaceName,
        name: &ConfigName,
        rewrite: &Rewrite,
    ) -> Result<Vec<u64>> {
        Layered::rewrite_history(self, namespace, name, rewrite).await
    }

    async fn repair(&self, options: &RepairOptions) -> Result<Repair> {
        Layered::repair(self, options).await
    }

    async fn check_acls(&self, fix: bool) -> Result<Vec<AclFinding>> {
        Layered::check_acls(self, fix).await
    }

    async fn schema_document(&self, namespace: &NamespaceName) -> Result<Option<(Vec<u8>, Version)>> {
        Layered::schema_document(self, namespace).await
    }

    async fn put_schema_document(
        &self,
        namespace: &NamespaceName,
        document: Option<Vec<u8>>,
        precondition: &Precondition,
    ) -> Result<Option<Version>> {
        Layered::put_schema_document(self, namespace, document, precondition).await
    }
}

#[cfg(test)]
mod tests {
    /// The names of the `fn`s between `start` and the first line that is exactly `}`.
    fn functions(source: &str, start: &str) -> Vec<String> {
        let from = source.find(start).expect("the block is there");
        let block = &source[from..];
        let block = &block[..block.find("\n}\n").expect("the block ends")];
        let mut names: Vec<String> = block
            .split("fn ")
            .skip(1)
            .filter_map(|rest| rest.split(['(', '<']).next())
            .filter(|name| name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .map(str::to_owned)
            .collect();
        names.sort();
        names
    }

    /// A method added to `Backend` with a default would otherwise be answered by that default
    /// for every wrapper, around the wrapped backend: the layer must forward each one.
    #[test]
    fn every_backend_method_is_forwarded_by_the_layer() {
        let backend = functions(include_str!("mod.rs"), "pub trait Backend:");
        let layered = functions(include_str!("layer.rs"), "pub trait Layered:");
        let blanket = functions(include_str!("layer.rs"), "\nimpl<L: Layered> Backend for L {");
        assert!(backend.len() >= 20, "{backend:?}");
        let layered: Vec<String> = layered.into_iter().filter(|n| n != "inner" && n != "inner_now").collect();
        assert_eq!(layered, backend, "Layered's methods are Backend's");
        assert_eq!(blanket, backend, "the blanket impl forwards every method");
    }
}
