//! The [`Backend`] trait every store implements, and the types it speaks.
//!
//! The trait is a small core: list, create and delete namespaces, read a whole namespace in one
//! bulk call, and apply a batch of changes to one namespace. Each stored configuration carries
//! a [`Version`]; each change carries a [`Precondition`] on it, so a writer can say "only if
//! nobody changed it since I read it" (optimistic concurrency, as in `object_store`'s
//! `PutMode`). Conveniences built from the core live on [`BackendExt`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::codec::json_size;
use crate::error::{ConfigId, Error, Result};
use crate::name::{ConfigName, NameKind, NamespaceName};

pub mod cache;
#[cfg(feature = "etcd")]
pub mod etcd;
pub mod file;
pub(crate) mod kit;
pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;
pub mod registry;
#[cfg(feature = "zookeeper")]
pub mod zookeeper;

#[cfg(feature = "etcd")]
pub use etcd::{EtcdBackend, EtcdOptions};
pub use file::FileBackend;
pub use memory::MemoryBackend;
#[cfg(feature = "redis")]
pub use redis::{RedisBackend, RedisOptions};
#[cfg(feature = "zookeeper")]
pub use zookeeper::{ZkBackend, ZkOptions};

/// Picks rustls' ring provider once per process: TLS in redis and etcd needs a process-wide
/// default, and two providers compiled in would make the automatic choice fail.
#[cfg(any(feature = "redis", feature = "etcd"))]
pub(crate) fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A configuration: a JSON object whose field order round-trips.
pub type Configuration = serde_json::Map<String, serde_json::Value>;

/// A version token of one stored configuration.
///
/// Opaque and only comparable for equality: a file backend uses a hash of the file's bytes, the
/// memory backend a counter, ZooKeeper its stat version, etcd a `mod_revision`. Tokens are valid
/// for the life of the process that read them; they are not meant to be persisted.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Version(VersionRepr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum VersionRepr {
    Number(i64),
    Text(Arc<str>),
}

impl Version {
    /// A version that is a number (a counter, a stat version, a revision).
    pub fn number(n: i64) -> Self {
        Version(VersionRepr::Number(n))
    }

    /// A version that is a string (a content hash).
    pub fn text(s: impl Into<Arc<str>>) -> Self {
        Version(VersionRepr::Text(s.into()))
    }

    /// The number, for a version that is one (an engine reads back its own tokens this way,
    /// never by parsing the text).
    pub fn as_number(&self) -> Option<i64> {
        match &self.0 {
            VersionRepr::Number(n) => Some(*n),
            VersionRepr::Text(_) => None,
        }
    }

    /// The text, for a version that is a string.
    pub fn as_text(&self) -> Option<&str> {
        match &self.0 {
            VersionRepr::Number(_) => None,
            VersionRepr::Text(s) => Some(s),
        }
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({self})")
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            VersionRepr::Number(n) => write!(f, "{n}"),
            VersionRepr::Text(s) => f.write_str(s),
        }
    }
}

/// One configuration as stored: its content and its version.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// The configuration's JSON object.
    pub value: Arc<Configuration>,
    /// Its version in the store.
    pub version: Version,
}

/// A whole namespace as read in one bulk call: configuration name → stored configuration (it
/// dereferences to that map), and the entries that could not be read as configurations.
///
/// A corrupt entry (a hand-broken file, a Redis index entry whose key is gone, a value that is
/// not a JSON object) blocks only itself: the others read and write normally, and it can be
/// replaced or removed under a precondition on its [`CorruptEntry::version`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NamespaceData {
    entries: BTreeMap<String, Stored>,
    /// Entries that are not readable configurations, by name.
    pub corrupt: BTreeMap<String, CorruptEntry>,
    /// Set when the store was unavailable and this was served from its last-known-good
    /// snapshot ([`cache`]): when it was taken, and why.
    pub from_snapshot: Option<cache::SnapshotInfo>,
}

/// A stored entry that is not a readable configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct CorruptEntry {
    /// Where it is and what is wrong.
    pub corruption: crate::error::Corruption,
    /// Its version in the store, to replace or remove it only as it is; `None` when nothing is
    /// stored under its name (an index entry without its data).
    pub version: Option<Version>,
}

impl NamespaceData {
    /// No entries.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an entry that could not be read.
    pub fn insert_corrupt(
        &mut self,
        name: impl Into<String>,
        corruption: crate::error::Corruption,
        version: Option<Version>,
    ) {
        self.corrupt.insert(name.into(), CorruptEntry { corruption, version });
    }

    /// [`Error::Corrupt`] listing every corrupt entry, if there is one.
    pub fn corruption_error(&self) -> Option<Error> {
        if self.corrupt.is_empty() {
            return None;
        }
        Some(Error::Corrupt { corruptions: self.corrupt.values().map(|c| c.corruption.clone()).collect() })
    }

    /// The readable configurations, and the corrupt entries apart.
    pub fn into_parts(self) -> (BTreeMap<String, Stored>, BTreeMap<String, CorruptEntry>) {
        (self.entries, self.corrupt)
    }
}

impl std::ops::Deref for NamespaceData {
    type Target = BTreeMap<String, Stored>;

    fn deref(&self) -> &Self::Target {
        &self.entries
    }
}

impl std::ops::DerefMut for NamespaceData {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.entries
    }
}

impl IntoIterator for NamespaceData {
    type Item = (String, Stored);
    type IntoIter = std::collections::btree_map::IntoIter<String, Stored>;

    /// The readable configurations (corrupt entries are dropped).
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl FromIterator<(String, Stored)> for NamespaceData {
    fn from_iter<I: IntoIterator<Item = (String, Stored)>>(iter: I) -> Self {
        NamespaceData { entries: iter.into_iter().collect(), corrupt: BTreeMap::new(), from_snapshot: None }
    }
}

/// What must hold in the store for a change to be applied.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Precondition {
    /// Apply whatever is stored (last writer wins).
    #[default]
    Any,
    /// Apply only if the configuration does not exist (create).
    Absent,
    /// Apply only if the configuration exists at exactly this version.
    Version(Version),
}

/// One change of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeKind {
    /// Store this content (create or replace).
    Put(Arc<Configuration>),
    /// Delete the configuration. Deleting one that does not exist is not an error unless the
    /// precondition says it must exist.
    Delete,
}

/// A change to one configuration of a namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The configuration's name.
    pub name: String,
    /// What to do.
    pub kind: ChangeKind,
    /// What must hold first.
    pub precondition: Precondition,
    /// For a rollback, the history revision whose value this put restores (recorded as a
    /// `rollback` entry naming it).
    pub restores: Option<u64>,
}

impl Change {
    /// Store `value` under `name`, whatever is there.
    pub fn put(name: impl Into<String>, value: impl Into<Arc<Configuration>>) -> Self {
        Change {
            name: name.into(),
            kind: ChangeKind::Put(value.into()),
            precondition: Precondition::Any,
            restores: None,
        }
    }

    /// Delete `name`, whatever is there.
    pub fn delete(name: impl Into<String>) -> Self {
        Change { name: name.into(), kind: ChangeKind::Delete, precondition: Precondition::Any, restores: None }
    }

    /// The same change, applied only if `precondition` holds.
    pub fn when(mut self, precondition: Precondition) -> Self {
        self.precondition = precondition;
        self
    }

    /// The same change, recorded in history as restoring revision `number`.
    pub fn restoring(mut self, number: u64) -> Self {
        self.restores = Some(number);
        self
    }
}

/// A change that a batch applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The configuration's name.
    pub name: String,
    /// Its new version; `None` for a delete.
    pub version: Option<Version>,
}

/// What [`Backend::write`] did: the changes applied, in order, and the error that stopped it.
///
/// Every change of the batch that is not in `applied` was not applied. A backend that writes a
/// batch atomically reports all or nothing; one that writes change by change (files) reports
/// the prefix it wrote.
#[derive(Debug, Default)]
#[must_use]
pub struct WriteReport {
    /// The changes that were applied.
    pub applied: Vec<Applied>,
    /// Why the rest were not, if they were not.
    pub error: Option<Error>,
    /// Changes (by configuration name) whose outcome is unknown: the connection failed after
    /// they were sent, and the store could not be read back to tell (see
    /// [`BackendExt::write_settled`]). The others that are not applied were not written.
    pub in_doubt: Vec<String>,
    /// Schema violations of a namespace in mode `warn`: written anyway, and reported here (and
    /// in the log). See [`crate::schema`].
    pub warnings: Vec<crate::schema::Violation>,
}

impl WriteReport {
    /// A report of a batch that failed before anything was written.
    pub fn failed(error: Error) -> Self {
        WriteReport { error: Some(error), ..Default::default() }
    }

    /// The applied changes, or the error if there is one.
    pub fn into_result(self) -> Result<Vec<Applied>> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.applied),
        }
    }
}

/// What may have changed in a store, as precisely as a backend can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    /// Something in this namespace (or the namespace itself) may have changed.
    Namespace(String),
    /// Anything may have changed (after a reconnect, a new session or a lost notification):
    /// re-read everything of interest.
    All,
}

/// Hints from a backend, sent as changes happen. The backend stops sending (and releases what
/// it holds for this) when the receiver is dropped.
pub type Hints = tokio::sync::mpsc::UnboundedReceiver<Hint>;

/// Sends a store's notifications as hints for as long as the receiver lives.
///
/// `session` connects, sends [`Hint::All`] once it listens (so whatever happened before, or
/// while a previous session was down, is re-read), then forwards hints until its source ends;
/// it is run again 250 ms after each end. As soon as the receiver is dropped the running
/// session is dropped too, which closes its connection or watch.
#[cfg(any(feature = "redis", feature = "zookeeper", feature = "etcd"))]
pub(crate) fn spawn_subscription<F, Fut>(mut session: F) -> Hints
where
    F: FnMut(tokio::sync::mpsc::UnboundedSender<Hint>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tx.closed() => return,
                () = session(tx.clone()) => {}
            }
            tokio::select! {
                _ = tx.closed() => return,
                _ = tokio::time::sleep(std::time::Duration::from_millis(250)) => {}
            }
        }
    });
    rx
}

/// What [`Backend::repair`] found, as `(namespace, configuration)` pairs, sorted by namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Repair {
    /// Data no index lists: invisible to readers.
    pub unindexed: Vec<(String, String)>,
    /// Index entries whose data is missing (read as corrupt entries).
    pub dangling: Vec<(String, String)>,
    /// Whether they were repaired (asked with `fix`).
    pub fixed: bool,
}

impl Repair {
    /// Nothing found.
    pub fn is_clean(&self) -> bool {
        self.unindexed.is_empty() && self.dangling.is_empty()
    }
}

/// What a backend can do ([`Backend::capabilities`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Changes by anyone are announced ([`Backend::subscribe`] returns hints); otherwise
    /// watchers can only poll.
    pub notifies: bool,
    /// A batch of at most this many changes (and at most [`Capabilities::atomic_batch_bytes`]
    /// of values) is applied all or nothing, even if the store fails in the middle; a larger
    /// one is written in atomic parts, and a failure reports the parts written. 1: change by
    /// change.
    pub atomic_batch: usize,
    /// The byte limit of an atomic batch's values, if any.
    pub atomic_batch_bytes: Option<usize>,
    /// The largest configuration stored, in bytes of compact JSON, if there is a limit.
    /// Checked for a whole batch before anything is written ([`BackendExt::check_batch`]).
    pub max_value_bytes: Option<usize>,
    /// Whether earlier versions of a configuration are kept and can be read back.
    pub history: bool,
}

impl Default for Capabilities {
    /// What any backend can promise: no notifications (watchers poll), change-by-change
    /// batches, no size limit, no history.
    fn default() -> Self {
        Capabilities {
            notifies: false,
            atomic_batch: 1,
            atomic_batch_bytes: None,
            max_value_bytes: None,
            history: false,
        }
    }
}

/// A store of namespaces of configurations: what an engine implements.
///
/// Every name an engine receives has passed the shared rules and its own
/// ([`Backend::check_name`]): the typed names ([`NamespaceName`], [`ConfigName`], and a
/// [`ChangeSet`] for a batch) are made by [`BackendExt`], whose string-taking methods
/// (`load_namespace`, `write`, …) are what callers use. Engines map their own failures into
/// [`Error`] variants a caller can act on.
#[async_trait]
pub trait Backend: fmt::Debug + Send + Sync + 'static {
    /// Where this backend stores, for messages: `file Configurations`, `redis 127.0.0.1:6379`.
    /// Never contains credentials.
    fn describe(&self) -> String;

    /// Rules of this backend's layout on top of the shared name rules. The default accepts
    /// every name the shared rules accept.
    fn check_name(&self, kind: NameKind, name: &str) -> Result<()> {
        let _ = (kind, name);
        Ok(())
    }

    /// What this backend can do: change notifications, how much of a batch is atomic, its
    /// largest value. Layers adapt to it and the conformance suite checks it.
    fn capabilities(&self) -> Capabilities;

    /// The names of all namespaces, sorted.
    async fn list_namespaces(&self) -> Result<Vec<String>>;

    /// Creates a namespace (a new name: [`crate::name::validate_new`]). Returns `false` if it
    /// already existed (and leaves it untouched). Called as [`BackendExt::create_namespace`].
    async fn create(&self, namespace: &NamespaceName) -> Result<bool>;

    /// Deletes a namespace and every configuration in it. [`Error::NotFound`] if it does not
    /// exist. Called as [`BackendExt::delete_namespace`].
    async fn delete(&self, namespace: &NamespaceName) -> Result<()>;

    /// Reads every configuration of a namespace in one bulk call.
    /// [`Error::NotFound`] if the namespace does not exist. Called as
    /// [`BackendExt::load_namespace`].
    async fn load(&self, namespace: &NamespaceName) -> Result<NamespaceData>;

    /// Reads every configuration of a namespace in one bulk call, in the compact form the
    /// session caches ([`crate::compact`]). The default reads [`Backend::load`] and converts
    /// (on several threads for a large namespace); every engine of this crate makes each
    /// configuration compact as soon as it is parsed, so that the namespace is never held
    /// twice (as read and compact). Called as [`BackendExt::load_namespace_compact`].
    async fn load_compact(&self, namespace: &NamespaceName) -> Result<crate::compact::CompactNamespace> {
        Ok(self.load(namespace).await?.into())
    }

    /// Reads one configuration, and only it: `None` if it does not exist, [`Error::Corrupt`] if
    /// it cannot be read, [`Error::NotFound`] if the namespace does not exist. Its cost must not
    /// depend on the namespace's size: the default reads the whole namespace, and every engine
    /// of this crate reads just the one (a file, one script, one `getData`, one transaction).
    /// Called as [`BackendExt::load_configuration`].
    async fn load_one(&self, namespace: &NamespaceName, name: &ConfigName) -> Result<Option<Stored>> {
        let mut data = self.load(namespace).await?;
        if let Some(entry) = data.corrupt.remove(name.as_str()) {
            return Err(Error::Corrupt { corruptions: vec![entry.corruption] });
        }
        Ok(data.remove(name.as_str()))
    }

    /// Applies a batch of changes to one namespace, which must exist. Preconditions are checked
    /// before anything is written: a broken one fails the batch with [`Error::Conflict`] and
    /// writes nothing. Called as [`BackendExt::write`].
    async fn apply(&self, namespace: &NamespaceName, changes: &ChangeSet<'_>) -> WriteReport;

    /// Starts sending [`Hint`]s about changes made by anyone, if the store can notify.
    /// `Ok(None)` (the default) means it cannot, and watchers poll instead. A backend sends
    /// [`Hint::All`] whenever it may have missed something (a reconnect, a new session, an
    /// overflow). The hints may be coalesced; watchers re-read and compare, so a spurious hint
    /// costs a read, never a wrong event.
    async fn subscribe(&self) -> Result<Option<Hints>> {
        Ok(None)
    }

    /// Every recorded revision of one configuration (readable ones newest first, and the
    /// records that are not readable), whether or not it exists now. An empty history if
    /// nothing was recorded. Called as [`BackendExt::configuration_history`], which answers
    /// [`Error::NotFound`] ([`Missing::History`](crate::error::Missing)) without calling it when
    /// [`Capabilities::history`] is false (the default, and `history=off`).
    async fn history(&self, namespace: &NamespaceName, name: &ConfigName) -> Result<crate::history::History> {
        let _ = name;
        Err(history_off(&self.describe(), namespace.as_str()))
    }

    /// The configurations of a namespace that have a recorded history (deleted ones too),
    /// sorted; for the namespace-wide log. Same errors as [`Backend::history`].
    async fn history_names(&self, namespace: &NamespaceName) -> Result<Vec<String>> {
        Err(history_off(&self.describe(), namespace.as_str()))
    }

    /// Finds what breaks the layout's own consistency (for Redis: data keys the namespace's
    /// index does not list, index entries without data) and, with `fix`, repairs it (deletes the
    /// unlisted data, drops the entries without data), each fix checked again atomically. The
    /// default finds nothing: a layout whose listing is its data (files, ZooKeeper, etcd) has
    /// nothing to disagree.
    async fn repair(&self, fix: bool) -> Result<Repair> {
        Ok(Repair { fixed: fix, ..Repair::default() })
    }

    /// The namespace's schema document ([`crate::schema`]), stored outside confo's layout,
    /// and its version; `None` if it has none (the default: a backend that stores no schemas
    /// checks nothing).
    async fn schema_document(&self, namespace: &NamespaceName) -> Result<Option<(Vec<u8>, Version)>> {
        let _ = namespace;
        Ok(None)
    }

    /// Writes (`Some`) or removes (`None`) the namespace's schema document if `precondition`
    /// holds (else [`Error::Conflict`]), in one atomic step; [`Error::NotFound`] if the
    /// namespace does not exist for a write (removing a document that is not there succeeds).
    /// Returns the new version (`None` after a removal). The default stores none: removing
    /// succeeds, writing is refused.
    async fn put_schema_document(
        &self,
        namespace: &NamespaceName,
        document: Option<Vec<u8>>,
        precondition: &Precondition,
    ) -> Result<Option<Version>> {
        let _ = precondition;
        match document {
            None => Ok(None),
            Some(_) => Err(Error::InvalidValue {
                location: format!("{} namespace {namespace}", self.describe()),
                message: "this backend cannot store schemas".into(),
            }),
        }
    }
}

/// The error of a history read on a backend that keeps none.
pub(crate) fn history_off(describe: &str, namespace: &str) -> Error {
    Error::not_found(
        crate::error::Missing::History,
        namespace,
        format!("{describe} (history is switched off for this backend: remove history=off from its spec to record it)"),
    )
}

/// What callers use, for every backend: the string-taking operations (each checks its names
/// once and calls the engine with typed ones) and conveniences built on them.
#[async_trait]
pub trait BackendExt: Backend {
    /// An existing namespace's name, checked.
    fn namespace(&self, name: &str) -> Result<NamespaceName> {
        self.validate_name(NameKind::Namespace, name)?;
        Ok(NamespaceName::checked(name))
    }

    /// A configuration's name, checked.
    fn config_name(&self, name: &str) -> Result<ConfigName> {
        self.validate_name(NameKind::Configuration, name)?;
        Ok(ConfigName::checked(name))
    }

    /// Creates a namespace; `false` if it existed.
    async fn create_namespace(&self, namespace: &str) -> Result<bool> {
        self.validate_new_name(NameKind::Namespace, namespace)?;
        self.create(&NamespaceName::checked(namespace)).await
    }

    /// Deletes a namespace and everything in it, then its schemas (a namespace created again
    /// under the same name starts without them; their revisions go too).
    async fn delete_namespace(&self, namespace: &str) -> Result<()> {
        let namespace = self.namespace(namespace)?;
        self.delete(&namespace).await?;
        // Removing a document that is not there is not an error: one request, no read first.
        if let Err(e) = self.put_schema_document(&namespace, None, &Precondition::Any).await {
            tracing::warn!(backend = %self.describe(), %namespace, error = %e, "the deleted namespace's schemas could not be removed");
        }
        Ok(())
    }

    /// Reads a whole namespace in one bulk call.
    async fn load_namespace(&self, namespace: &str) -> Result<NamespaceData> {
        self.load(&self.namespace(namespace)?).await
    }

    /// Reads a whole namespace in one bulk call, in compact form (see [`Backend::load_compact`]).
    async fn load_namespace_compact(&self, namespace: &str) -> Result<crate::compact::CompactNamespace> {
        self.load_compact(&self.namespace(namespace)?).await
    }

    /// Reads one configuration, and only it.
    async fn load_configuration(&self, namespace: &str, name: &str) -> Result<Option<Stored>> {
        let (namespace, name) = (self.namespace(namespace)?, self.config_name(name)?);
        self.load_one(&namespace, &name).await
    }

    /// Applies a batch of changes to one namespace (see [`Backend::apply`]); a batch with a bad
    /// name, or naming one configuration twice, is refused whole. History records the library's
    /// author ([`Author::library`](crate::history::Author::library)); see [`BackendExt::write_as`].
    async fn write(&self, namespace: &str, changes: &[Change]) -> WriteReport {
        self.write_as(namespace, changes, &crate::history::Author::library()).await
    }

    /// [`BackendExt::write`], recorded in history as made by `author`.
    ///
    /// The puts are checked against the namespace's schemas first ([`crate::schema`]): under
    /// `enforce` a violation refuses the whole batch ([`Error::SchemaViolation`]); under `warn`
    /// the batch is written and the violations are in [`WriteReport::warnings`].
    async fn write_as(&self, namespace: &str, changes: &[Change], author: &crate::history::Author) -> WriteReport {
        let set = match validate_batch(self, namespace, changes) {
            Ok(set) => set,
            Err(e) => return WriteReport::failed(e),
        };
        let name = NamespaceName::checked(namespace);
        let warnings = match crate::schema::check_batch(self, &name, changes).await {
            Ok(warnings) => warnings,
            Err(e) => return WriteReport::failed(e),
        };
        let mut report = self.apply(&name, &set.by(author)).await;
        report.warnings = warnings;
        report
    }

    /// The schema violations of a batch, as [`BackendExt::write`] would find them (`Err` under
    /// `enforce`, the list under `warn`), without writing: for callers that write several
    /// batches and must refuse all of them before the first.
    async fn check_schemas(&self, namespace: &str, changes: &[Change]) -> Result<Vec<crate::schema::Violation>> {
        crate::schema::check_batch(self, &self.namespace(namespace)?, changes).await
    }

    /// One configuration's recorded history (see [`Backend::history`]); [`Error::NotFound`]
    /// at once when the backend keeps none ([`Capabilities::history`]).
    async fn configuration_history(&self, namespace: &str, name: &str) -> Result<crate::history::History> {
        let (namespace, name) = (self.namespace(namespace)?, self.config_name(name)?);
        if !self.capabilities().history {
            return Err(history_off(&self.describe(), namespace.as_str()));
        }
        self.history(&namespace, &name).await.map(crate::history::History::sorted)
    }

    /// The configurations of a namespace that have a recorded history (see
    /// [`Backend::history_names`]); [`Error::NotFound`] when the backend keeps none.
    async fn history_configurations(&self, namespace: &str) -> Result<Vec<String>> {
        let namespace = self.namespace(namespace)?;
        if !self.capabilities().history {
            return Err(history_off(&self.describe(), namespace.as_str()));
        }
        self.history_names(&namespace).await
    }

    /// Checks a name against the shared rules and this backend's own.
    fn validate_name(&self, kind: NameKind, name: &str) -> Result<()> {
        crate::name::validate(kind, name)?;
        self.check_name(kind, name)
    }

    /// Checks a name that is about to be created or written ([`crate::name::validate_new`]
    /// and this backend's own rules).
    fn validate_new_name(&self, kind: NameKind, name: &str) -> Result<()> {
        crate::name::validate_new(kind, name)?;
        self.check_name(kind, name)
    }

    /// Checks a batch as a backend's `write` would before writing anything (names, the rules
    /// for new names, depth, the value size limit), so that callers writing several batches
    /// (an import, a persist of several namespaces) can refuse all of them before the first.
    fn check_batch(&self, namespace: &str, changes: &[Change]) -> Result<()> {
        validate_batch(self, namespace, changes)?;
        let Some(limit) = self.capabilities().max_value_bytes else { return Ok(()) };
        for change in changes {
            if let ChangeKind::Put(value) = &change.kind {
                let size = json_size(value);
                if size > limit {
                    return Err(Error::TooLarge {
                        location: format!("{} configuration {namespace}/{}", self.describe(), change.name),
                        size,
                        limit,
                    });
                }
            }
        }
        Ok(())
    }

    /// Writes a batch like [`Backend::write`]; when it fails in a way that leaves the outcome of
    /// sent changes unknown (the connection broke: [`Error::Unavailable`] or [`Error::Io`]),
    /// what it touched is read back (the one configuration of a point write, else the
    /// namespace; a few tries over about two seconds, while the store comes back), and each
    /// change not reported applied is settled by what the store holds: a put whose
    /// value is stored, or a delete whose configuration is gone, landed. If every change
    /// landed, the report has no error (a warning is logged). If the store cannot be read, the
    /// unsettled changes are listed in [`WriteReport::in_doubt`].
    async fn write_settled(&self, namespace: &str, changes: &[Change]) -> WriteReport {
        self.write_settled_as(namespace, changes, &crate::history::Author::library()).await
    }

    /// [`BackendExt::write_settled`], recorded in history as made by `author`.
    async fn write_settled_as(
        &self,
        namespace: &str,
        changes: &[Change],
        author: &crate::history::Author,
    ) -> WriteReport {
        let mut report = self.write_as(namespace, changes, author).await;
        let unsure =
            |e: &Error| matches!(e, Error::Unavailable { .. } | Error::Io { .. }) && !e.never_reached_the_store();
        if !report.error.as_ref().is_some_and(unsure) {
            return report;
        }
        let done: std::collections::HashSet<String> = report.applied.iter().map(|a| a.name.clone()).collect();
        let pending: Vec<&Change> = changes.iter().filter(|c| !done.contains(&c.name)).collect();
        if pending.is_empty() {
            return report;
        }
        for attempt in 1..=READ_BACK_ATTEMPTS {
            // What the write touched: the one configuration of a point write, else the namespace.
            let stored: Result<BTreeMap<String, Stored>> = match pending.as_slice() {
                [one] => self
                    .load_configuration(namespace, &one.name)
                    .await
                    .map(|found| found.map(|s| (one.name.clone(), s)).into_iter().collect()),
                _ => self.load_namespace(namespace).await.map(|data| data.into_parts().0),
            };
            match stored {
                Ok(data) => {
                    for change in pending {
                        let landed = match (&change.kind, data.get(&change.name)) {
                            (ChangeKind::Put(value), Some(stored)) if *stored.value == **value => {
                                Some(Some(stored.version.clone()))
                            }
                            (ChangeKind::Delete, None) => Some(None),
                            _ => None,
                        };
                        if let Some(version) = landed {
                            report.applied.push(Applied { name: change.name.clone(), version });
                        }
                    }
                    if report.applied.len() == changes.len() {
                        if let Some(error) = report.error.take() {
                            tracing::warn!(
                                backend = %self.describe(), namespace, %error,
                                "the write's answer was lost, but reading back shows every change landed"
                            );
                        }
                    }
                    return report;
                }
                Err(Error::Unavailable { .. } | Error::Io { .. }) if attempt < READ_BACK_ATTEMPTS => {
                    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
                }
                Err(_) => break,
            }
        }
        report.in_doubt = pending.into_iter().map(|c| c.name.clone()).collect();
        report
    }

    /// Stores one configuration, whatever is there, and returns its new version.
    async fn put_configuration(&self, namespace: &str, name: &str, value: Configuration) -> Result<Version> {
        let applied = self.write(namespace, &[Change::put(name, value)]).await.into_result()?;
        applied
            .into_iter()
            .next()
            .and_then(|a| a.version)
            .ok_or_else(|| Error::unavailable(self.describe(), "write returned no version"))
    }

    /// Deletes one configuration if it exists.
    async fn delete_configuration(&self, namespace: &str, name: &str) -> Result<()> {
        self.write(namespace, &[Change::delete(name)]).await.into_result().map(drop)
    }
}

impl<B: Backend + ?Sized> BackendExt for B {}

/// A batch whose names passed the rules, whose values can be read back, and which changes no
/// configuration twice: what an engine's [`Backend::apply`] receives. Made by
/// [`BackendExt::write`]. It carries who makes it, for history.
#[derive(Debug)]
pub struct ChangeSet<'a> {
    changes: &'a [Change],
    author: &'a crate::history::Author,
}

impl<'a> ChangeSet<'a> {
    /// The same batch, made by `author`.
    fn by(self, author: &'a crate::history::Author) -> Self {
        ChangeSet { author, ..self }
    }

    /// Who makes this batch (recorded in history).
    pub fn author(&self) -> &crate::history::Author {
        self.author
    }
}

impl std::ops::Deref for ChangeSet<'_> {
    type Target = [Change];

    fn deref(&self) -> &[Change] {
        self.changes
    }
}

impl<'a> IntoIterator for &ChangeSet<'a> {
    type Item = &'a Change;
    type IntoIter = std::slice::Iter<'a, Change>;

    fn into_iter(self) -> Self::IntoIter {
        self.changes.iter()
    }
}

/// Validates the namespace and every change's name of a batch, and rejects a batch that names
/// one configuration twice.
pub(crate) fn validate_batch<'a, B: Backend + ?Sized>(
    backend: &B,
    namespace: &str,
    changes: &'a [Change],
) -> Result<ChangeSet<'a>> {
    backend.validate_name(NameKind::Namespace, namespace)?;
    let mut seen = std::collections::HashSet::with_capacity(changes.len());
    for change in changes {
        match &change.kind {
            ChangeKind::Put(value) => {
                backend.validate_new_name(NameKind::Configuration, &change.name)?;
                let depth = value.values().map(crate::json::depth).max().unwrap_or(0) + 1;
                if depth > crate::json::MAX_DEPTH {
                    return Err(Error::InvalidValue {
                        location: format!("{} configuration {namespace}/{}", backend.describe(), change.name),
                        message: format!(
                            "it nests {depth} levels deep, more than the {} that can be read back",
                            crate::json::MAX_DEPTH
                        ),
                    });
                }
            }
            ChangeKind::Delete => backend.validate_name(NameKind::Configuration, &change.name)?,
        }
        if !seen.insert(change.name.as_str()) {
            return Err(Error::InvalidValue {
                location: format!("{} namespace {namespace:?}", backend.describe()),
                message: format!("batch changes configuration {:?} twice", change.name),
            });
        }
    }
    static LIBRARY: std::sync::OnceLock<crate::history::Author> = std::sync::OnceLock::new();
    let author = LIBRARY.get_or_init(|| crate::history::Author::current("library"));
    Ok(ChangeSet { changes, author })
}

/// Reads a `tls_ca` file: a missing one is [`Error::NotFound`] (CLI exit 3), not a connection
/// failure.
#[cfg(any(feature = "redis", feature = "etcd"))]
pub(crate) fn read_tls_ca(backend: &str, path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::not_found(crate::error::Missing::File, path.display().to_string(), format!("{backend} (tls_ca)"))
        }
        _ => Error::io(format!("{backend} tls_ca {}", path.display()), e),
    })
}

/// Connects with `attempt`, all within `timeout`, for the network engines.
///
/// - A refused connection (nothing listens at any of `hosts`) fails at once.
/// - A server that accepts connections but is not serving yet (ZooKeeper while it starts,
///   Redis loading its data: the connection is closed or refused at the protocol level) is
///   tried again every 100 ms until the deadline.
/// - A server that accepts and never answers fails at the deadline, with a message saying so
///   (and that it may be another service, or want or not want TLS).
///
/// Errors other than [`Error::Unavailable`] (a wrong password, a bad spec) are returned at once.
#[cfg(any(feature = "redis", feature = "zookeeper", feature = "etcd"))]
pub(crate) async fn connect_within<T, F, Fut>(
    engine: &str,
    describe: &str,
    hosts: &[(String, u16)],
    timeout: std::time::Duration,
    mut attempt: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = None;
    loop {
        match tokio::time::timeout_at(deadline, attempt()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e @ Error::Unavailable { .. })) if !is_mismatch(&e) => {
                if !anything_listens(hosts).await {
                    let list: Vec<String> =
                        hosts.iter().map(|(h, p)| format!("{}:{p}", crate::options::shorten(h))).collect();
                    return Err(Error::unavailable(
                        describe.to_owned(),
                        format!("nothing listens at {} (connection refused)", list.join(", ")),
                    ));
                }
                last = Some(e);
                if tokio::time::Instant::now() + std::time::Duration::from_millis(100) >= deadline {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Ok(Err(other)) => return Err(other),
            Err(_) => break,
        }
    }
    let last = match last {
        Some(Error::Unavailable { message, .. }) => format!(" (last: {message})"),
        _ => String::new(),
    };
    let article = if engine.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
    Err(Error::unavailable(
        describe.to_owned(),
        format!(
            "no {engine} answer within {} s: the port accepts connections but does not answer as {article} {engine} \
             server (still starting? another service? a TLS port, or not one?){last}",
            timeout.as_secs_f32()
        ),
    ))
}

/// The engines' shared wording for a server that answered, but not as one of them (another
/// protocol, TLS on one side only): trying again cannot help.
#[cfg(any(feature = "redis", feature = "zookeeper", feature = "etcd"))]
pub(crate) const OTHER_PROTOCOL: &str = "it answered something other than";
/// See [`OTHER_PROTOCOL`].
#[cfg(any(feature = "redis", feature = "zookeeper", feature = "etcd"))]
pub(crate) const TLS_FAILED: &str = "the TLS handshake failed";

#[cfg(any(feature = "redis", feature = "zookeeper", feature = "etcd"))]
fn is_mismatch(error: &Error) -> bool {
    matches!(error, Error::Unavailable { message, .. } if message.starts_with(OTHER_PROTOCOL) || message.starts_with(TLS_FAILED))
}

/// False when every host refuses a TCP connection (nothing listens there).
#[cfg(any(feature = "redis", feature = "zookeeper", feature = "etcd"))]
async fn anything_listens(hosts: &[(String, u16)]) -> bool {
    for (host, port) in hosts {
        let connect = tokio::net::TcpStream::connect((host.as_str(), *port));
        match tokio::time::timeout(std::time::Duration::from_millis(500), connect).await {
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            // Connected, or no answer (a filtered port): something may be there.
            Ok(Ok(_)) | Err(_) => return true,
            // A name that does not resolve, an unreachable network: nothing to wait for.
            Ok(Err(_)) => {}
        }
    }
    false
}

/// How often [`BackendExt::write_settled`] tries to read a namespace back.
const READ_BACK_ATTEMPTS: usize = 5;

/// Checks one precondition against what is stored. `location` names the configuration.
pub(crate) fn check_precondition(
    precondition: &Precondition,
    current: Option<&Version>,
    config: (&str, &str),
    location: impl FnOnce() -> String,
) -> Result<()> {
    let holds = match (precondition, current) {
        (Precondition::Any, _) => true,
        (Precondition::Absent, current) => current.is_none(),
        (Precondition::Version(want), Some(have)) => want == have,
        (Precondition::Version(_), None) => false,
    };
    if holds {
        Ok(())
    } else {
        Err(Error::conflict(location(), Some(ConfigId::new(config.0, config.1))))
    }
}
