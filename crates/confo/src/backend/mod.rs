//! The [`Backend`] trait every store implements, and the types it speaks.
//!
//! The trait is a small core: list, create and delete namespaces, read a whole namespace in one
//! bulk call, and apply a batch of changes to one namespace. Each stored configuration carries
//! a [`Version`]; each change carries a [`Precondition`] on it, so a writer can say "only if
//! nobody changed it since I read it" (optimistic concurrency, as in `object_store`'s
//! `PutMode`). Conveniences built from the core live on [`BackendExt`](crate::store::ext::BackendExt).

use std::fmt;

use std::sync::Arc;

use async_trait::async_trait;

use crate::model::change::{Change, Precondition, WriteReport};
use crate::model::decode::{Compacts, Maps, One, Sink};
use crate::model::error::{ConfigId, Error, Result};
use crate::model::name::{ConfigName, NameKind, NamespaceName};
use crate::model::version::{NamespaceData, Stored, Version};

pub mod cache;
#[cfg(feature = "etcd")]
pub mod etcd;
pub mod file;
pub(crate) mod kit;
pub mod layer;
pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;
pub mod registry;
pub mod shared;
#[cfg(feature = "zookeeper")]
pub mod zookeeper;

/// Picks rustls' ring provider once per process: TLS in redis and etcd needs a process-wide
/// default, and two providers compiled in would make the automatic choice fail.
#[cfg(feature = "tls")]
pub(crate) fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
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
#[cfg(feature = "net")]
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
    /// Data no index lists that confo wrote (its name follows confo's rules, it is a JSON
    /// object, and where history is kept its newest revision records this value): invisible to
    /// readers, removed with `fix`.
    pub unindexed: Vec<(String, String)>,
    /// Index entries whose data is missing (read as corrupt entries).
    pub dangling: Vec<(String, String)>,
    /// Keys in confo's key space that confo cannot have written (another program's, in a shared
    /// store): reported and never touched, unless named with [`RepairOptions::keys`].
    pub foreign: Vec<ForeignKey>,
    /// Whether they were repaired (asked with `fix`).
    pub fixed: bool,
}

/// A key that looks like confo's (`<ns>-…` of a listed namespace) but that confo cannot have
/// written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    /// The whole key.
    pub key: String,
    /// Why it is not confo's (`not a JSON object`, `a Redis hash`, …).
    pub reason: String,
}

impl Repair {
    /// Nothing found.
    pub fn is_clean(&self) -> bool {
        self.unindexed.is_empty() && self.dangling.is_empty() && self.foreign.is_empty()
    }
}

/// What [`Backend::repair`] is asked to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepairOptions {
    /// Repair what is found (else only report).
    pub fix: bool,
    /// Keys the operator names as confo's to remove, though repair would call them foreign
    /// (`repair --fix --key K`): removed with `fix` if they are among those found.
    pub keys: Vec<String>,
}

impl RepairOptions {
    /// Report only.
    pub fn report() -> Self {
        RepairOptions::default()
    }

    /// Repair what is found.
    pub fn fix() -> Self {
        RepairOptions { fix: true, keys: Vec::new() }
    }

    /// The same, also removing these keys if they are found foreign.
    pub fn with_keys(mut self, keys: Vec<String>) -> Self {
        self.keys = keys;
        self
    }
}

/// A node of a store whose ACL lets identities other than this backend's change it (found by
/// [`Backend::check_acls`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFinding {
    /// Where it is (`/confo/sales/db`).
    pub path: String,
    /// Its ACL as found (`world:anyone=ALL`), without digest hashes.
    pub acl: String,
    /// With `fix`: `Ok` once it has this backend's ACL (a metadata node: once it is removed),
    /// or why not.
    pub fixed: Option<std::result::Result<(), String>>,
    /// A node of confo's metadata (history, schemas): with `fix` it is removed with what is
    /// below it, never adopted (its content is whoever made it's: forged revisions, a schema).
    pub metadata: bool,
}

/// What a change of one configuration makes of it as stored: the change to write (`None`:
/// nothing), its name the one read, with the version of the schema document it was checked
/// against ([`ChangeSet::schema`]).
type Decide = dyn Fn(Option<&Stored>, SchemaRead) -> Result<Option<(Change, Option<Precondition>)>> + Send + Sync;

/// A read-modify-write of one configuration, as [`Backend::load_and_apply`] is given it: the
/// engine hands what it stores under the name to [`Edit::sink`] (as a point read does), then
/// asks [`Edit::decide`] for the change to write. What was read and what was decided stay
/// here for the caller.
pub struct Edit {
    read: Arc<One>,
    decide: Box<Decide>,
    decided: std::sync::Mutex<Option<Change>>,
}

impl fmt::Debug for Edit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Edit").field("name", &self.read.name()).finish_non_exhaustive()
    }
}

impl Edit {
    /// An edit of the configuration `name`.
    pub fn new(
        name: &ConfigName,
        decide: impl Fn(Option<&Stored>, SchemaRead) -> Result<Option<(Change, Option<Precondition>)>>
            + Send
            + Sync
            + 'static,
    ) -> Arc<Self> {
        Arc::new(Edit { read: One::new(name.as_str()), decide: Box::new(decide), decided: Default::default() })
    }

    /// Where the engine hands what it stores under the name.
    pub fn sink(&self) -> Arc<dyn Sink> {
        self.read.clone()
    }

    /// The change to write, given what the engine says of the namespace's schema document:
    /// [`Error::Corrupt`] if what was handed is not a configuration; else what the edit
    /// decides, its error as it is. A change that names another configuration is refused
    /// ([`Error::InvalidValue`], at `location`).
    pub fn decide(
        &self,
        schema: SchemaRead,
        location: impl FnOnce() -> String,
    ) -> Result<Option<(Change, Option<Precondition>)>> {
        let stored = self.read.read()?;
        let decided = (self.decide)(stored.as_ref(), schema)?;
        if let Some((change, _)) = &decided {
            if change.name != self.read.name() {
                return Err(Error::InvalidValue {
                    location: location(),
                    message: format!("an edit of {} may not write {}", self.read.name(), change.name),
                });
            }
        }
        *self.decided.lock().unwrap_or_else(|e| e.into_inner()) = decided.as_ref().map(|(c, _)| c.clone());
        Ok(decided)
    }

    /// What the engine handed ([`One::read`]).
    pub fn read(&self) -> Result<Option<Stored>> {
        self.read.read()
    }

    /// The change last decided, if any.
    pub fn decided(&self) -> Option<Change> {
        self.decided.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// What [`Backend::read_one_with_schema`] says of a namespace's schema document.
#[derive(Debug)]
pub enum SchemaRead {
    /// It is still the version the caller named.
    Same,
    /// It as it is now, with its version (`None`: the namespace has none), or why it could
    /// not be read.
    Now(Result<Option<(Vec<u8>, Version)>>),
}

impl SchemaRead {
    /// A document as read ([`Backend::schema_document`]), next to the version the caller
    /// holds: [`SchemaRead::Same`] when it is that version.
    pub fn of(document: Result<Option<(Vec<u8>, Version)>>, known: Option<&Version>) -> SchemaRead {
        match document {
            Ok(Some((_, version))) if Some(&version) == known => SchemaRead::Same,
            other => SchemaRead::Now(other),
        }
    }
}

/// What a backend can do ([`Backend::capabilities`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Changes are announced ([`Backend::subscribe`] returns hints); otherwise watchers
    /// poll, without asking for a subscription (the watcher reads this).
    pub notifies: bool,
    /// Every change, by any writer, is announced (the file system's notifications on a local
    /// file system, ZooKeeper's and etcd's watches), so a watcher never needs to re-read
    /// without a hint and an idle one does no work. False where some writers go unannounced
    /// (a raw Redis `SET`, another host's write on a network file system): watchers then also
    /// re-read every [`WatchOptions::resync_every`](crate::watch::WatchOptions::resync_every).
    pub notifies_every_change: bool,
    /// The largest configuration stored, in bytes of compact JSON, if there is a limit.
    /// Checked for a whole batch before anything is written ([`BackendExt::check_batch`](crate::store::ext::BackendExt::check_batch)).
    pub max_value_bytes: Option<usize>,
    /// Whether earlier versions of a configuration are kept and can be read back.
    pub history: bool,
}

impl Default for Capabilities {
    /// What any backend can promise: no notifications (watchers poll), no size limit, no
    /// history.
    fn default() -> Self {
        Capabilities { notifies: false, notifies_every_change: false, max_value_bytes: None, history: false }
    }
}

/// A store of namespaces of configurations: what an engine implements.
///
/// Every name an engine receives has passed the shared rules and its own
/// ([`Backend::check_name`]): the typed names ([`NamespaceName`], [`ConfigName`], and a
/// [`ChangeSet`] for a batch) are made by [`BackendExt`](crate::store::ext::BackendExt), whose string-taking methods
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

    /// Creates a namespace (a new name: [`crate::model::name::validate_new`]). Returns `false` if it
    /// already existed (and leaves it untouched). Called as [`BackendExt::create_namespace`](crate::store::ext::BackendExt::create_namespace).
    async fn create(&self, namespace: &NamespaceName) -> Result<bool>;

    /// Deletes a namespace and every configuration in it. [`Error::NotFound`] if it does not
    /// exist. Called as [`BackendExt::delete_namespace`](crate::store::ext::BackendExt::delete_namespace).
    async fn delete(&self, namespace: &NamespaceName) -> Result<()>;

    /// Reads every configuration of a namespace in one bulk call and hands each to `sink` as it
    /// is read, on the thread that read it: its stored bytes and version
    /// ([`Sink::entry`], which decodes them), or why it is
    /// not a configuration ([`Sink::corrupt`], worded
    /// with where it is stored). [`Error::NotFound`] if the namespace does not exist. What an
    /// engine implements to be read whole: it knows nothing of what the bytes become. A backend
    /// that holds values already decoded gives them with
    /// [`Sink::loaded`].
    async fn scan(&self, namespace: &NamespaceName, sink: Arc<dyn Sink>) -> Result<()>;

    /// Reads every configuration of a namespace in one bulk call: [`Backend::scan`] decoded
    /// into maps. [`Error::NotFound`] if the namespace does not exist. Called as
    /// [`BackendExt::load_namespace`](crate::store::ext::BackendExt::load_namespace).
    async fn load(&self, namespace: &NamespaceName) -> Result<NamespaceData> {
        let maps = Maps::new();
        self.scan(namespace, maps.clone()).await?;
        Ok(maps.take())
    }

    /// Reads every configuration of a namespace in one bulk call, in the compact form the
    /// session caches ([`crate::model::compact`]): [`Backend::scan`] decoded straight into it,
    /// each configuration made compact on its reading thread as soon as it is parsed, so that
    /// the namespace is never held twice (as read and compact). Called as
    /// [`BackendExt::load_namespace_compact`](crate::store::ext::BackendExt::load_namespace_compact).
    async fn load_compact(&self, namespace: &NamespaceName) -> Result<crate::model::compact::CompactNamespace> {
        let compacts = Compacts::new();
        self.scan(namespace, compacts.clone()).await?;
        Ok(compacts.take())
    }

    /// Reads one configuration, and only it, and hands it to `sink` as [`Backend::scan`] hands
    /// each entry (nothing when it does not exist; [`Sink::corrupt`] worded with where it is
    /// stored when it is not a configuration). [`Error::NotFound`] if the namespace does not
    /// exist. Its cost must not depend on the namespace's size: the default scans the whole
    /// namespace, and every engine of this crate reads just the one (a file, one script, one
    /// `getData`, one transaction). Called as [`BackendExt::load_configuration`](crate::store::ext::BackendExt::load_configuration) (decoded with
    /// [`One`]).
    async fn read_one(&self, namespace: &NamespaceName, name: &ConfigName, sink: Arc<dyn Sink>) -> Result<()> {
        let one = One::new(name.as_str());
        self.scan(namespace, one.clone()).await?;
        one.forward(&*sink);
        Ok(())
    }

    /// [`Backend::read_one`], and the namespace's schema document unless it is still the
    /// version `known` names: what a read-modify-write of one configuration needs, so that its
    /// write is checked without fetching the document again. The default makes the two reads;
    /// an engine that can answers both in one request (Redis: one script). A schema document
    /// that cannot be read fails only the schema part ([`SchemaRead::Now`] holds the error):
    /// the write refuses it, the read of the configuration stands.
    async fn read_one_with_schema(
        &self,
        namespace: &NamespaceName,
        name: &ConfigName,
        known: Option<&Version>,
        sink: Arc<dyn Sink>,
    ) -> Result<SchemaRead> {
        self.read_one(namespace, name, sink).await?;
        Ok(SchemaRead::of(self.schema_document(namespace).await, known))
    }

    /// Reads one configuration and writes what `edit` makes of it: a read-modify-write of one
    /// configuration as one step where the engine can. The engine hands what is stored to
    /// [`Edit::sink`], then asks [`Edit::decide`] with what it says of the namespace's schema
    /// document next to `known_schema` (as [`Backend::read_one_with_schema`]) for the change
    /// to write; the edit's error is returned as it is. Returns the write's report (`None` when
    /// nothing was written); what was read stays in `edit`.
    ///
    /// The default reads with [`Backend::read_one_with_schema`] and writes with
    /// [`Backend::apply`]: a writer in between breaks the change's precondition (a conflict,
    /// for the caller to try again). The file engine does both under its folder's lock,
    /// reading the file once.
    async fn load_and_apply(
        &self,
        namespace: &NamespaceName,
        name: &ConfigName,
        known_schema: Option<&Version>,
        author: &crate::model::history::Author,
        edit: Arc<Edit>,
    ) -> Result<Option<WriteReport>> {
        let schema = self.read_one_with_schema(namespace, name, known_schema, edit.sink()).await?;
        let location = || format!("{} configuration {namespace}/{name}", self.describe());
        let Some((change, schema)) = edit.decide(schema, location)? else { return Ok(None) };
        let changes = [change];
        Ok(Some(self.apply(namespace, &ChangeSet::new(&changes, author).under_schema(schema)).await))
    }

    /// Applies a batch of changes to one namespace, which must exist. Preconditions are checked
    /// before anything is written: a broken one fails the batch with [`Error::Conflict`] and
    /// writes nothing. Called as [`BackendExt::write`](crate::store::ext::BackendExt::write).
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
    /// nothing was recorded. Called as [`BackendExt::configuration_history`](crate::store::ext::BackendExt::configuration_history), which answers
    /// [`Error::NotFound`] ([`Missing::History`](crate::model::error::Missing)) without calling it when
    /// [`Capabilities::history`] is false (the default, and `history=off`).
    async fn history(&self, namespace: &NamespaceName, name: &ConfigName) -> Result<crate::model::history::History> {
        let _ = name;
        Err(history_off(&self.describe(), namespace.as_str()))
    }

    /// The configurations of a namespace that have a recorded history (deleted ones too),
    /// sorted; for the namespace-wide log. Same errors as [`Backend::history`].
    async fn history_names(&self, namespace: &NamespaceName) -> Result<Vec<String>> {
        Err(history_off(&self.describe(), namespace.as_str()))
    }

    /// Rewrites the values of one configuration's recorded revisions in place (numbers, times
    /// and authors unchanged): `rewrite` changes a revision's value and says whether it did.
    /// Returns the numbers of the revisions rewritten. For `confo history NS/CFG --purge-field`
    /// ([`Store::purge_history_field`](crate::store::Store::purge_history_field)). The default (an
    /// engine that cannot rewrite its revisions) is [`Error::Unavailable`] saying so.
    async fn rewrite_history(
        &self,
        namespace: &NamespaceName,
        name: &ConfigName,
        rewrite: &crate::model::history::Rewrite,
    ) -> Result<Vec<u64>> {
        let _ = (name, rewrite);
        Err(Error::unavailable(
            self.describe(),
            format!("this engine cannot rewrite the recorded revisions of namespace {namespace}"),
        ))
    }

    /// Finds what breaks the layout's own consistency (for Redis: data keys the namespace's
    /// index does not list, index entries without data) and, with `fix`, repairs it (deletes the
    /// unlisted data confo wrote, drops the entries without data), each fix checked again
    /// atomically. What confo cannot have written is reported as [`Repair::foreign`] and kept.
    /// The default finds nothing: a layout whose listing is its data (files, ZooKeeper, etcd)
    /// has nothing to disagree.
    async fn repair(&self, options: &RepairOptions) -> Result<Repair> {
        Ok(Repair { fixed: options.fix, ..Repair::default() })
    }

    /// The nodes of confo's tree (the root, namespaces, configurations) whose ACL lets identities
    /// other than this backend's change them, sorted; with `fix`, each is given the spec's ACL
    /// (one that cannot be, for want of the right to change its ACL, says why). For ZooKeeper
    /// with credentials: a store that confo 0.1.6.2 made world-open is moved to credentials
    /// this way. The default: a store without per-node ACLs has nothing to check, and says so
    /// ([`Error::InvalidSpec`]).
    async fn check_acls(&self, fix: bool) -> Result<Vec<AclFinding>> {
        let _ = fix;
        Err(Error::spec(None, format!("{} keeps no ACL per node: repair --acls is for ZooKeeper", self.describe())))
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
        crate::model::error::Missing::History,
        namespace,
        format!("{describe} (history is switched off for this backend: remove history=off from its spec to record it)"),
    )
}

/// A batch whose names passed the rules, whose values can be read back, and which changes no
/// configuration twice: what an engine's [`Backend::apply`] receives. Made by
/// [`BackendExt::write`](crate::store::ext::BackendExt::write). It carries who makes it, for history.
#[derive(Debug)]
pub struct ChangeSet<'a> {
    changes: &'a [Change],
    author: &'a crate::model::history::Author,
    schema: Option<Precondition>,
}

impl<'a> ChangeSet<'a> {
    /// A batch checked by the store's write path ([`crate::store::ext::BackendExt::write`]).
    pub(crate) fn new(changes: &'a [Change], author: &'a crate::model::history::Author) -> Self {
        ChangeSet { changes, author, schema: None }
    }

    /// The same batch, checked against the namespace's schema document as it was at this
    /// version (or when it had none: [`Precondition::Absent`]).
    pub(crate) fn under_schema(self, schema: Option<Precondition>) -> Self {
        ChangeSet { schema, ..self }
    }

    /// The same batch, made by `author`.
    pub(crate) fn by(self, author: &'a crate::model::history::Author) -> Self {
        ChangeSet { author, ..self }
    }

    /// Who makes this batch (recorded in history).
    pub fn author(&self) -> &crate::model::history::Author {
        self.author
    }

    /// The version of the namespace's schema document this batch was checked against, when
    /// the store checked it against a document read with the configuration
    /// ([`Backend::read_one_with_schema`]) rather than just before the write. An engine that
    /// can check it in the write's own atomic step does, and fails the batch with
    /// [`Error::Conflict`] if the document changed (the store's read-modify-write loop then
    /// reads both again); one that cannot leaves it, and the window is the one between the
    /// read and the write.
    pub fn schema(&self) -> Option<&Precondition> {
        self.schema.as_ref()
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

/// Reads a `tls_ca` file: a missing one is [`Error::NotFound`] (CLI exit 3), not a connection
/// failure.
#[cfg(feature = "tls")]
pub(crate) fn read_tls_ca(backend: &str, path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::not_found(
            crate::model::error::Missing::File,
            path.display().to_string(),
            format!("{backend} (tls_ca)"),
        ),
        _ => Error::io(format!("{backend} tls_ca {}", path.display()), e),
    })
}

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
