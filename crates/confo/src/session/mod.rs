//! The manager, [`Confo`]: named backends, a cached snapshot per namespace, staged edits, and
//! `persist` at three scopes.
//!
//! # How state is kept
//!
//! - Each loaded namespace is an immutable snapshot replaced whole on reload, so reads never
//!   wait on I/O: they take a short lock, look up, and build what they return. Its
//!   configurations are kept in [`Compact`] form (field names shared, exact-size values, short
//!   strings and numbers inline): about 2.6× their JSON bytes instead of 8.3× as `serde_json`
//!   maps.
//! - The session is a thin layer: each backend is a [`Store`], and its staged edits are a
//!   [`Draft`] (`configuration → new content or deletion`, with the version each was made on)
//!   over the snapshots. Edits survive switching namespaces and reloading (Python confo's
//!   "session-only configurations"), until persisted or discarded. Persist is the draft's
//!   commit, with the snapshots updated from what was written.
//! - Namespace creation and removal act on the store at once, as in Python confo.
//! - Persist writes only staged configurations whose content differs from the store, one
//!   batch per namespace. A failure keeps every unwritten edit staged and says which
//!   configurations were and were not written ([`Error::PersistIncomplete`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::fork::{Mutex, MutexGuard};

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::backend::Backend;
use crate::draft::{write_batches, Batch, Draft, Edit, Known, Scope};
use crate::model::compact::{Compact, CompactNamespace, Keys};
use crate::model::error::{ConfigRef, Corruption, Error, Missing, Result};
use crate::model::name;
use crate::model::name::NameKind;
use crate::model::version::{Configuration, CorruptEntry, Version};
use crate::spec::BackendSpec;
use crate::store::ext::BackendExt;
use crate::store::{FieldEdit, Removal, Store};

/// The names of the loaded backends and the active one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendsInfo {
    /// Every loaded backend's name, sorted.
    pub all: Vec<String>,
    /// The active backend, if one was activated.
    pub active: Option<String>,
}

/// The namespaces of the active backend and the current one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespacesInfo {
    /// Every namespace, sorted, as of the last load or reload.
    pub all: Vec<String>,
    /// The namespace selected with [`Confo::use_namespace`]; `None` until one is.
    pub current: Option<String>,
}

/// What a session holds for one configuration: its content as last read from the store
/// (compact), or the edit staged over it. Cheap to clone; [`Content::same`] tells whether two
/// are the very same content (to keep something made from it, such as a converted copy).
#[derive(Debug, Clone)]
pub enum Content {
    /// As stored, unedited.
    Stored(Arc<Compact>),
    /// A staged edit (not persisted yet).
    Staged(Arc<Configuration>),
}

impl Content {
    /// The whole configuration.
    pub fn to_configuration(&self) -> Arc<Configuration> {
        match self {
            Content::Stored(compact) => Arc::new(compact.to_configuration()),
            Content::Staged(value) => value.clone(),
        }
    }

    /// One field, or `None`.
    pub fn field(&self, name: &str) -> Option<Value> {
        match self {
            Content::Stored(compact) => compact.field(name),
            Content::Staged(value) => value.get(name).cloned(),
        }
    }

    /// Whether both are the same content, not merely equal ones: the same cached value or
    /// the same staged edit.
    pub fn same(&self, other: &Content) -> bool {
        match (self, other) {
            (Content::Stored(a), Content::Stored(b)) => Arc::ptr_eq(a, b),
            (Content::Staged(a), Content::Staged(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// A cached configuration: compact content and its version in the store.
#[derive(Debug, Clone)]
struct Cached {
    value: Arc<Compact>,
    version: Version,
}

/// A cached namespace: hashed by configuration name, since reads look up one name at a time
/// (listing sorts when asked), and the entries that could not be read, which block only
/// themselves.
#[derive(Debug, Clone, Default)]
struct Snapshot {
    entries: HashMap<String, Cached>,
    corrupt: BTreeMap<String, CorruptEntry>,
    /// Served from a last-known-good snapshot file (the store was unavailable).
    from_snapshot: Option<crate::model::version::SnapshotInfo>,
    /// The field names of its configurations, shared.
    keys: Keys,
}

/// Called each time the maps a large load was read into have been freed; see
/// [`set_after_load_freed`].
static AFTER_LOAD_FREED: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// Sets a function called each time a large namespace (2,048 configurations or more) has been
/// read and made compact, once what it was read into is freed. The Python package gives the
/// freed memory back to the system there. Only the first call sets it.
pub fn set_after_load_freed(f: fn()) {
    let _ = AFTER_LOAD_FREED.set(f);
}

impl From<CompactNamespace> for Snapshot {
    fn from(namespace: CompactNamespace) -> Self {
        let large = namespace.entries.len() >= crate::model::compact::LARGE;
        let entries =
            namespace.entries.into_iter().map(|(name, value, version)| (name, Cached { value, version })).collect();
        // (Only after a large load: a small one frees too little to be worth the walk.)
        if let Some(after) = AFTER_LOAD_FREED.get().filter(|_| large) {
            after();
        }
        Snapshot { entries, corrupt: namespace.corrupt, from_snapshot: namespace.from_snapshot, keys: namespace.keys }
    }
}

impl Snapshot {
    /// Caches a configuration just written.
    fn put(&mut self, name: String, value: &Configuration, version: Version) {
        let value = Arc::new(Compact::new(value, &mut self.keys));
        self.entries.insert(name, Cached { value, version });
    }
}

impl std::ops::Deref for Snapshot {
    type Target = HashMap<String, Cached>;

    fn deref(&self) -> &Self::Target {
        &self.entries
    }
}

impl std::ops::DerefMut for Snapshot {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.entries
    }
}

/// A configuration's effective content and the stored version it stands on (a staged edit's
/// base, else the stored version; `None`: absent from the store).
#[derive(Debug, Clone)]
pub struct Based {
    /// The content (staged edits included).
    pub content: Content,
    /// The version it stands on.
    pub base: Option<Version>,
}

/// A loaded backend as confo's backend objects show it ([`Confo::backend_view`]).
#[derive(Debug, Clone)]
pub struct BackendView {
    /// Its namespaces.
    pub namespaces: Vec<String>,
    /// The selected one.
    pub current: Option<String>,
    /// Every configuration of the selected one, staged edits included (empty without one).
    pub configurations: BTreeMap<String, Content>,
}

/// Where a configuration is: the backend's name and the namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Place {
    /// The loaded backend's name.
    pub backend: String,
    /// The namespace.
    pub namespace: String,
}

/// One named backend and what the manager holds for it.
#[derive(Debug)]
struct Slot {
    store: Store,
    /// What the backend was opened from, to open it again in a forked child.
    spec: Option<BackendSpec>,
    namespaces: Vec<String>,
    current: Option<String>,
    snapshots: HashMap<String, Arc<Snapshot>>,
    /// The staged edits, over the snapshots.
    draft: Draft,
    /// The auto-refresh task, stopped when dropped.
    refresher: Option<AbortOnDrop>,
}

/// Aborts a background task when dropped.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Slot {
    /// A freshly loaded backend: nothing cached, nothing staged.
    fn new(backend: Arc<dyn Backend>, spec: Option<BackendSpec>, namespaces: Vec<String>) -> Self {
        Slot {
            store: Store::new(backend),
            spec,
            namespaces,
            current: None,
            snapshots: HashMap::new(),
            draft: Draft::new(),
            refresher: None,
        }
    }

    /// Every configuration of `ns`, staged edits included, by name.
    fn all_content(&self, ns: &str) -> BTreeMap<String, Content> {
        let mut all: BTreeMap<String, Content> = self
            .snapshots
            .get(ns)
            .map(|data| data.iter().map(|(k, s)| (k.clone(), Content::Stored(s.value.clone()))).collect())
            .unwrap_or_default();
        for (config, staged) in self.draft.namespace(ns) {
            match staged.edit() {
                Edit::Put(value) => all.insert(config.to_owned(), Content::Staged(value.clone())),
                Edit::Delete => all.remove(config),
            };
        }
        all
    }

    /// The version a configuration's effective content stands on: the staged edit's base, else
    /// the stored version (`None`: absent from the store).
    fn base_of(&self, namespace: &str, config: &str) -> Option<Version> {
        match self.draft.get(namespace, config) {
            Some(staged) => staged.base().cloned(),
            None => self.snapshots.get(namespace)?.get(config).map(|s| s.version.clone()),
        }
    }

    /// The effective content of a configuration: the staged edit, else the stored one.
    fn effective(&self, namespace: &str, config: &str) -> Option<Content> {
        match self.draft.get(namespace, config).map(|s| s.edit()) {
            Some(Edit::Put(value)) => Some(Content::Staged(value.clone())),
            Some(Edit::Delete) => None,
            None => self.snapshots.get(namespace)?.get(config).map(|s| Content::Stored(s.value.clone())),
        }
    }

    /// The corrupt entry of that name, unless a staged edit replaced or removed it.
    fn corrupt(&self, namespace: &str, config: &str) -> Option<&CorruptEntry> {
        if self.draft.get(namespace, config).is_some() {
            return None;
        }
        self.snapshots.get(namespace)?.corrupt.get(config)
    }

    /// The effective content, or [`Error::Corrupt`] for an entry that cannot be read.
    fn readable(&self, namespace: &str, config: &str) -> Result<Option<Content>> {
        match self.corrupt(namespace, config) {
            Some(entry) => Err(corrupt_error(entry)),
            None => Ok(self.effective(namespace, config)),
        }
    }

    /// Stages an edit made on the stored version (a corrupt entry's version is a base too, so
    /// it can be replaced or removed only as it is).
    fn stage(&mut self, namespace: &str, config: &str, edit: Edit) {
        let snapshot = self.snapshots.get(namespace);
        let stored = snapshot
            .and_then(|d| d.get(config))
            .map(|s| s.version.clone())
            .or_else(|| snapshot.and_then(|d| d.corrupt.get(config)).and_then(|c| c.version.clone()));
        self.draft.stage(namespace, config, edit, stored);
    }

    fn current(&self, backend: &str) -> Result<&str> {
        self.current.as_deref().ok_or_else(|| Error::NoNamespaceSelected { backend: backend.to_owned() })
    }
}

#[derive(Debug, Default)]
struct State {
    backends: BTreeMap<String, Slot>,
    active: Option<String>,
}

impl State {
    fn active(&self) -> Result<(&str, &Slot)> {
        let name = self.active.as_deref().ok_or(Error::NoActiveBackend)?;
        let slot = self.backends.get(name).ok_or(Error::NoActiveBackend)?;
        Ok((name, slot))
    }

    fn active_mut(&mut self) -> Result<(&str, &mut Slot)> {
        let name = self.active.as_deref().ok_or(Error::NoActiveBackend)?;
        let slot = self.backends.get_mut(name).ok_or(Error::NoActiveBackend)?;
        Ok((name, slot))
    }
}

/// The configuration manager: named backends, namespaces, configurations and staged edits.
///
/// A `Confo` is a cheap handle: clones share one state, so one manager can serve every task of
/// a service. There is no global state; create as many independent managers as you need.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> confo::Result<()> {
/// use confo::Confo;
/// let confo = Confo::new();
/// confo.load_backend("mem", &"memory:".parse()?).await?;
/// confo.activate_backend("mem")?;
/// confo.create_namespace("sales").await?;
/// confo.use_namespace("sales").await?;
/// confo.set("database", "port", 5432)?;             // staged in memory
/// assert_eq!(confo.get_field("database", "port")?, Some(5432.into()));
/// confo.persist().await?;                           // written to the store
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Confo {
    state: Arc<Mutex<State>>,
    /// Who this session's writes are recorded as made by (history); `None`: the library's.
    author: Arc<Mutex<Option<Arc<crate::model::history::Author>>>>,
    /// Serialises persists of this manager so two never write the same staged edit at once:
    /// the lock of this process. A child made by `fork()` gets one of its own: a thread of the
    /// parent that held the parent's across the fork (a persist waiting on a server) does not
    /// exist in the child, and would hold it there for ever.
    persisting: Arc<Mutex<(u32, Arc<tokio::sync::Mutex<()>>)>>,
    /// The keyring this session's writes seal secrets again with (see
    /// [`Confo::set_keyring`]).
    keyring: Arc<Mutex<Option<Arc<crate::secrets::Keyring>>>>,
}

impl Confo {
    /// A manager with no backends.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every mutation below is computed before it is applied, so a panic elsewhere cannot
        // leave State half-changed (the lock does not poison).
        self.state.lock()
    }

    /// The active backend's store, for I/O without holding the state lock.
    fn active_store(&self) -> Result<(String, Store)> {
        let author = self.author();
        let state = self.state();
        let (name, slot) = state.active()?;
        Ok((name.to_owned(), slot.store.with_author(author).with_keyring(self.keyring.lock().clone())))
    }

    /// The keyring this session's writes use: a plain value written where the store holds a
    /// sealed secret is sealed again with its primary key (a secret read opened and left as it
    /// was is put back as stored); without one (the default), such a write is refused
    /// ([`Error::InvalidValue`] naming the field). See
    /// [`BackendExt::write_sealed_as`].
    pub fn set_keyring(&self, keyring: Option<Arc<crate::secrets::Keyring>>) {
        *self.keyring.lock() = keyring;
    }

    /// Records this session's writes (persist, rollback, imports) in history as made by
    /// `author`: an actor, the tool, a message.
    pub fn set_author(&self, author: crate::model::history::Author) {
        *self.author.lock() = Some(Arc::new(author));
    }

    /// Who this session's writes are recorded as made by.
    pub fn author(&self) -> Arc<crate::model::history::Author> {
        self.author.lock().clone().unwrap_or_else(crate::model::history::Author::library)
    }

    // ----- backends -----

    /// Opens the store a spec describes and registers it under `name`. The name must be new.
    /// The backend does not become active until [`Confo::activate_backend`].
    pub async fn load_backend(&self, name: &str, spec: &BackendSpec) -> Result<()> {
        name::validate(NameKind::Backend, name)?;
        if self.state().backends.contains_key(name) {
            return Err(Error::AlreadyExists {
                what: Missing::Backend,
                name: name.to_owned(),
                location: String::new(),
            });
        }
        let backend = spec.open().await?;
        self.add_backend_from(name, backend, Some(spec.clone())).await
    }

    /// Loads a backend whose credentials dictionary is kept as a configuration of another
    /// loaded backend (the seed's note: Redis credentials stored in the file backend).
    ///
    /// ```no_run
    /// # async fn demo(confo: confo::Confo) -> confo::Result<()> {
    /// // Configurations/infra/redis.json holds {"redis_host": "localhost", "redis_port": "6379"}
    /// confo.load_backend_from("redis_backend", "redis".parse()?, "files", "infra", "redis").await?;
    /// # Ok(()) }
    /// ```
    pub async fn load_backend_from(
        &self,
        name: &str,
        kind: crate::spec::BackendKind,
        source: &str,
        namespace: &str,
        config: &str,
    ) -> Result<()> {
        let store = self
            .state()
            .backends
            .get(source)
            .map(|s| s.store.clone())
            .ok_or_else(|| Error::not_found(Missing::Backend, source, ""))?;
        let stored = store.get(namespace, config).await?.ok_or_else(|| {
            let location = format!("{} namespace {namespace:?}", store.backend().describe());
            Error::not_found(Missing::Configuration, config, location)
        })?;
        // A configuration holding credentials naturally has other fields too: they are left out.
        let (spec, ignored) = BackendSpec::from_credentials_lenient(kind, &Value::Object((*stored.value).clone()))?;
        if !ignored.is_empty() {
            tracing::debug!(?ignored, "fields of the credentials configuration that are not credentials");
        }
        self.load_backend(name, &spec).await
    }

    /// Opens the store a spec describes and puts it under `name`, replacing the backend loaded
    /// under that name if there is one (as Python confo's `load_backend` did): its cache and
    /// staged edits are dropped, and it stays the active one if it was. If the new store
    /// cannot be opened, the old backend stays.
    pub async fn replace_backend(&self, name: &str, spec: &BackendSpec) -> Result<()> {
        name::validate(NameKind::Backend, name)?;
        let backend = spec.open().await?;
        self.put_backend(name, backend, Some(spec.clone())).await
    }

    /// [`Confo::replace_backend`] with a backend already open (one built by hand).
    pub async fn replace_backend_with(&self, name: &str, backend: Arc<dyn Backend>) -> Result<()> {
        name::validate(NameKind::Backend, name)?;
        self.put_backend(name, backend, None).await
    }

    /// Loads `spec` under `name`; a backend loaded there already is replaced by the new one (its
    /// new credentials) but keeps its selected namespace, read again from the new store, and
    /// its staged edits (made on the versions read before: one the new store does not hold
    /// at that version is a conflict when persisted). What confo kept when the active
    /// backend's name was loaded again (a helper that loads and activates on every call).
    pub async fn reload_backend(&self, name: &str, spec: &BackendSpec) -> Result<()> {
        name::validate(NameKind::Backend, name)?;
        let backend = spec.open().await?;
        self.swap_backend(name, backend, Some(spec.clone())).await
    }

    /// [`Confo::reload_backend`] with a backend already open (one built by hand).
    pub async fn reload_backend_with(&self, name: &str, backend: Arc<dyn Backend>) -> Result<()> {
        name::validate(NameKind::Backend, name)?;
        self.swap_backend(name, backend, None).await
    }

    async fn swap_backend(&self, name: &str, backend: Arc<dyn Backend>, spec: Option<BackendSpec>) -> Result<()> {
        let namespaces = backend.list_namespaces().await?;
        let store = Store::new(backend.clone());
        let current = self.state().backends.get(name).and_then(|slot| slot.current.clone());
        let snapshot = match &current {
            Some(namespace) => match store.load_compact(namespace).await {
                Ok(read) => Some(Arc::new(Snapshot::from(read))),
                // Not in the new store: empty there (its staged edits create it when persisted).
                Err(Error::NotFound { what: Missing::Namespace, .. }) => Some(Arc::new(Snapshot::default())),
                Err(e) => return Err(e),
            },
            None => None,
        };
        let mut state = self.state();
        match state.backends.get_mut(name) {
            Some(slot) => {
                slot.store = store;
                slot.spec = spec;
                slot.namespaces = namespaces;
                slot.snapshots.clear();
                // The old store's auto-refresh stops; start it again if wanted.
                slot.refresher = None;
                if let (Some(namespace), Some(snapshot)) = (current, snapshot) {
                    slot.snapshots.insert(namespace, snapshot);
                }
            }
            None => {
                state.backends.insert(name.to_owned(), Slot::new(backend, spec, namespaces));
            }
        }
        Ok(())
    }

    /// A loaded backend's namespaces, its selected one, and (if one is selected) every
    /// configuration of it, staged edits included: what confo's backend objects show as
    /// `namespaces`, `namespace_name` and `configurations`, for any loaded backend.
    pub fn backend_view(&self, name: &str) -> Result<BackendView> {
        let state = self.state();
        let slot = state.backends.get(name).ok_or_else(|| Error::not_found(Missing::Backend, name, ""))?;
        let configurations = match &slot.current {
            Some(ns) => slot.all_content(ns),
            None => BTreeMap::new(),
        };
        Ok(BackendView { namespaces: slot.namespaces.clone(), current: slot.current.clone(), configurations })
    }

    async fn put_backend(&self, name: &str, backend: Arc<dyn Backend>, spec: Option<BackendSpec>) -> Result<()> {
        let namespaces = backend.list_namespaces().await?;
        let slot = Slot::new(backend, spec, namespaces);
        self.state().backends.insert(name.to_owned(), slot);
        Ok(())
    }

    /// Registers an already opened backend under `name` (for backends built by hand).
    pub async fn add_backend(&self, name: &str, backend: Arc<dyn Backend>) -> Result<()> {
        self.add_backend_from(name, backend, None).await
    }

    async fn add_backend_from(&self, name: &str, backend: Arc<dyn Backend>, spec: Option<BackendSpec>) -> Result<()> {
        name::validate(NameKind::Backend, name)?;
        let namespaces = backend.list_namespaces().await?;
        let mut state = self.state();
        if state.backends.contains_key(name) {
            return Err(Error::AlreadyExists {
                what: Missing::Backend,
                name: name.to_owned(),
                location: String::new(),
            });
        }
        let slot = Slot::new(backend, spec, namespaces);
        state.backends.insert(name.to_owned(), slot);
        Ok(())
    }

    /// In a child process made by `fork()` after backends were loaded: opens each backend again
    /// from its spec (the parent's connections and the tasks serving them do not exist in the
    /// child), keeping the snapshots, the current namespaces and the staged edits. The old
    /// connections are leaked, never dropped: dropping them would reach for a runtime that is
    /// gone. Backends added by hand ([`Confo::add_backend`]) and in-memory ones are kept as
    /// they are; auto-refresh stops (start it again if wanted). Called by the blocking facade
    /// when it notices a new process id. Forking while another thread of the parent is inside
    /// a call of this manager is not supported (as with any lock held across `fork()`).
    pub async fn reopen_after_fork(&self) -> Result<()> {
        let specs: Vec<(String, BackendSpec)> = {
            let mut state = self.state();
            for slot in state.backends.values_mut() {
                if let Some(refresher) = slot.refresher.take() {
                    std::mem::forget(refresher);
                }
            }
            state
                .backends
                .iter()
                .filter_map(|(name, slot)| slot.spec.clone().map(|spec| (name.clone(), spec)))
                .filter(|(_, spec)| spec.kind() != crate::spec::BackendKind::MEMORY)
                .collect()
        };
        for (name, spec) in specs {
            // One backend that cannot be opened again must not take the others down: it stays
            // loaded and answers every call with the reason.
            let backend: Arc<dyn Backend> = match spec.open().await {
                Ok(backend) => backend,
                Err(error) => Arc::new(Unusable { describe: spec.to_string(), error: error.to_string() }),
            };
            let mut state = self.state();
            if let Some(slot) = state.backends.get_mut(&name) {
                let old = std::mem::replace(&mut slot.store, Store::new(backend));
                std::mem::forget(old);
            }
        }
        Ok(())
    }

    /// The loaded backends and the active one.
    pub fn backends(&self) -> BackendsInfo {
        let state = self.state();
        BackendsInfo { all: state.backends.keys().cloned().collect(), active: state.active.clone() }
    }

    /// Makes a loaded backend the one every call below works on.
    pub fn activate_backend(&self, name: &str) -> Result<()> {
        let mut state = self.state();
        if !state.backends.contains_key(name) {
            return Err(Error::not_found(Missing::Backend, name, ""));
        }
        state.active = Some(name.to_owned());
        Ok(())
    }

    /// The active backend's store, for calls the manager does not wrap.
    pub fn backend(&self) -> Result<Arc<dyn Backend>> {
        Ok(self.active_store()?.1.backend().clone())
    }

    /// The active backend as a [`Store`]: point reads and writes that bypass this session's
    /// cache and staged edits.
    pub fn store(&self) -> Result<Store> {
        Ok(self.active_store()?.1)
    }

    // ----- namespaces -----

    /// The active backend's namespaces and the current one.
    pub fn namespaces(&self) -> Result<NamespacesInfo> {
        let state = self.state();
        let (_, slot) = state.active()?;
        Ok(NamespacesInfo { all: slot.namespaces.clone(), current: slot.current.clone() })
    }

    /// The current namespace of the active backend ([`Error::NoNamespaceSelected`] if none).
    pub fn current_namespace(&self) -> Result<String> {
        self.with_current(|_, ns| Ok(ns.to_owned()))
    }

    /// When the current namespace was last read from a last-known-good snapshot because its
    /// store was unavailable (`cache+` / `snapshots=on`): when the snapshot was taken, and why;
    /// `None` when it came from the store.
    pub fn from_snapshot(&self) -> Result<Option<crate::model::version::SnapshotInfo>> {
        self.with_current(|slot, ns| Ok(slot.snapshots.get(ns).and_then(|s| s.from_snapshot.clone())))
    }

    /// Creates a namespace in the store at once. Returns `false` if it already existed.
    pub async fn create_namespace(&self, namespace: &str) -> Result<bool> {
        let (name, store) = self.active_store()?;
        let created = store.create_namespace(namespace).await?;
        let mut state = self.state();
        if let Some(slot) = state.backends.get_mut(&name) {
            if let Err(at) = slot.namespaces.binary_search_by(|n| n.as_str().cmp(namespace)) {
                slot.namespaces.insert(at, namespace.to_owned());
            }
        }
        Ok(created)
    }

    /// Removes a namespace from the store at once, with its staged edits.
    pub async fn remove_namespace(&self, namespace: &str, removal: Removal) -> Result<()> {
        let (name, store) = self.active_store()?;
        store.remove_namespace(namespace, removal).await?;
        let mut state = self.state();
        if let Some(slot) = state.backends.get_mut(&name) {
            slot.namespaces.retain(|n| n != namespace);
            slot.snapshots.remove(namespace);
            slot.draft.discard(Scope::Namespace(namespace));
            if slot.current.as_deref() == Some(namespace) {
                slot.current = None;
            }
        }
        Ok(())
    }

    /// Selects a namespace and (re)loads it from the store. Staged edits are kept.
    pub async fn use_namespace(&self, namespace: &str) -> Result<()> {
        let (name, _) = self.active_store()?;
        self.load_into(&name, namespace).await?;
        if let Some(slot) = self.state().backends.get_mut(&name) {
            slot.current = Some(namespace.to_owned());
        }
        Ok(())
    }

    /// Re-reads the namespace list and the current namespace from the store. Staged edits are
    /// kept on top.
    pub async fn reload(&self) -> Result<()> {
        let (name, store) = self.active_store()?;
        let namespaces = store.namespaces().await?;
        let current = {
            let mut state = self.state();
            let (_, slot) = state.active_mut()?;
            slot.namespaces = namespaces;
            slot.current.clone()
        };
        if let Some(namespace) = current {
            self.load_into(&name, &namespace).await?;
        }
        Ok(())
    }

    /// Re-reads one namespace from the store.
    pub async fn reload_namespace(&self, namespace: &str) -> Result<()> {
        let (name, _) = self.active_store()?;
        self.load_into(&name, namespace).await
    }

    /// Turns a sealed field of a configuration of the current namespace (a field name, or a
    /// JSON pointer starting with `/`) back into its plain value, now (not staged); the
    /// namespace is read again afterwards. See [`Store::unset_secret`].
    pub async fn unset_secret(
        &self,
        config: &str,
        field: &str,
        keyring: &crate::secrets::Keyring,
    ) -> Result<crate::model::version::Version> {
        let namespace = self.current_namespace()?;
        let pointer = if field.starts_with('/') { field.to_owned() } else { crate::secrets::pointer(field) };
        let version = self.active_store()?.1.unset_secret(&namespace, config, &pointer, keyring).await?;
        self.reload_namespace(&namespace).await?;
        Ok(version)
    }

    // ----- history -----

    /// A configuration of the current namespace: its recorded history, newest first, a page at
    /// a time. See [`Store::history`].
    pub async fn history(&self, config: &str, page: crate::store::Page) -> Result<crate::model::history::History> {
        let namespace = self.current_namespace()?;
        self.active_store()?.1.history(&namespace, config, page).await
    }

    /// Revision `number` of a configuration of the current namespace. See [`Store::revision`].
    pub async fn revision(&self, config: &str, number: u64) -> Result<crate::model::history::Revision> {
        let namespace = self.current_namespace()?;
        self.active_store()?.1.revision(&namespace, config, number).await
    }

    /// Writes revision `number`'s value of a configuration of the current namespace again, now
    /// (not staged), recorded as a rollback. The precondition is the version this session
    /// loaded: if someone changed the configuration since, it is [`Error::Conflict`] and
    /// nothing is written. The namespace is read again afterwards. See [`Store::rollback`].
    pub async fn rollback(&self, config: &str, number: u64) -> Result<crate::model::version::Version> {
        let namespace = self.current_namespace()?;
        let (_, store) = self.active_store()?;
        let precondition = {
            let state = self.state();
            let (_, slot) = state.active()?;
            match known(&slot.snapshots, &namespace, config) {
                // (A namespace this session has not read: what is stored now.)
                _ if !slot.snapshots.contains_key(&namespace) => None,
                Known::Stored(version, _) => Some(crate::model::change::Precondition::Version(version.clone())),
                Known::Absent => Some(crate::model::change::Precondition::Absent),
                _ => None,
            }
        };
        let version = store.rollback(&namespace, config, number, precondition).await?;
        self.reload_namespace(&namespace).await?;
        Ok(version)
    }

    /// Every recorded change of the current namespace, newest first. See [`Store::log`].
    pub async fn log(
        &self,
        filter: &crate::store::LogFilter,
    ) -> Result<(Vec<(String, crate::model::history::Revision)>, Vec<Corruption>)> {
        let namespace = self.current_namespace()?;
        self.active_store()?.1.log(&namespace, filter).await
    }

    async fn load_into(&self, backend_name: &str, namespace: &str) -> Result<()> {
        let store = self.state().backends.get(backend_name).map(|s| s.store.clone()).ok_or(Error::NoActiveBackend)?;
        // Made compact before the lock is taken: readers do not wait for it.
        let snapshot = Arc::new(Snapshot::from(store.load_compact(namespace).await?));
        let mut state = self.state();
        if let Some(slot) = state.backends.get_mut(backend_name) {
            slot.snapshots.insert(namespace.to_owned(), snapshot);
            if let Err(at) = slot.namespaces.binary_search_by(|n| n.as_str().cmp(namespace)) {
                slot.namespaces.insert(at, namespace.to_owned());
            }
        }
        Ok(())
    }

    // ----- whole stores -----

    /// The active backend's namespaces (all when `namespaces` is empty) as one document.
    pub async fn export(&self, namespaces: &[String]) -> Result<crate::transfer::Document> {
        crate::transfer::export(&*self.backend()?, namespaces).await
    }

    /// Exports every readable configuration and says which corrupt entries it skipped. See
    /// [`crate::transfer::export_readable`].
    pub async fn export_readable(&self, namespaces: &[String]) -> Result<(crate::transfer::Document, Vec<Corruption>)> {
        crate::transfer::export_readable(&*self.backend()?, namespaces).await
    }

    /// [`Confo::export_readable`] in compact form, to write out without holding maps (see
    /// [`crate::transfer::export_readable_compact`]).
    pub async fn export_readable_compact(
        &self,
        namespaces: &[String],
    ) -> Result<(crate::transfer::CompactDocument, Vec<Corruption>)> {
        crate::transfer::export_readable_compact(&*self.backend()?, namespaces).await
    }

    /// Checks a JSON document's shape and names against the active backend's rules.
    pub fn parse_document(&self, value: Value) -> Result<crate::transfer::Document> {
        crate::transfer::document_from_value(value, &*self.backend()?)
    }

    /// Checks a document's names against the active backend's rules.
    pub fn check_names(&self, document: &crate::transfer::Document) -> Result<()> {
        crate::transfer::check_names(&*self.backend()?, document)
    }

    /// What bringing the active backend to `document` would do. See [`crate::transfer::plan`].
    pub async fn plan(&self, document: &crate::transfer::Document, prune: bool) -> Result<crate::transfer::Plan> {
        crate::transfer::plan(&*self.backend()?, document, prune).await
    }

    /// Carries out a plan on the active backend. See [`crate::transfer::apply`].
    pub async fn apply(
        &self,
        plan: &crate::transfer::Plan,
        document: &crate::transfer::Document,
        progress: impl FnMut(usize, usize),
    ) -> Result<()> {
        let keyring = self.keyring.lock().clone();
        crate::transfer::apply_sealed_as(
            &*self.backend()?,
            plan,
            document,
            &self.author(),
            keyring.as_deref(),
            progress,
        )
        .await
    }

    /// [`Confo::apply`] taking the document (moved into the writes, not copied). See
    /// [`crate::transfer::apply_owned_as`].
    pub async fn apply_owned(
        &self,
        plan: &crate::transfer::Plan,
        document: crate::transfer::Document,
        progress: impl FnMut(usize, usize),
    ) -> Result<()> {
        let keyring = self.keyring.lock().clone();
        crate::transfer::apply_owned_sealed_as(
            &*self.backend()?,
            plan,
            document,
            &self.author(),
            keyring.as_deref(),
            progress,
        )
        .await
    }

    // ----- live updates -----

    /// Watches a namespace of the active backend (or one configuration of it) and reports each
    /// change made by anyone as an [`Event`](crate::watch::Event). See [`Watcher`].
    pub async fn watch(&self, namespace: &str, configuration: Option<&str>) -> Result<Watcher> {
        self.watch_with(namespace, configuration, WatchOptions::default()).await
    }

    /// [`Confo::watch`] with options.
    pub async fn watch_with(
        &self,
        namespace: &str,
        configuration: Option<&str>,
        options: WatchOptions,
    ) -> Result<Watcher> {
        self.active_store()?.1.watch(namespace, configuration, options).await
    }

    /// Keeps the active backend's cached namespaces current from the store's notifications, so
    /// readers see other writers' changes without calling [`Confo::reload`]. Staged edits stay
    /// on top and are never overwritten; [`Confo::stale_edits`] tells which of them now sit on
    /// a changed stored configuration. `false` stops it.
    pub async fn set_auto_refresh(&self, enabled: bool, options: WatchOptions) -> Result<()> {
        let (name, store) = self.active_store()?;
        let task = match enabled {
            true => Some(refresh::start(Arc::downgrade(&self.state), name.clone(), store, options).await?),
            false => None,
        };
        if let Some(slot) = self.state().backends.get_mut(&name) {
            slot.refresher = task;
        }
        Ok(())
    }

    /// Staged edits (`namespace/configuration`) whose stored configuration is no longer at the
    /// version the edit was made on, as far as the cache knows (after a reload or an
    /// auto-refresh): persisting them would be a [`Error::Conflict`].
    pub fn stale_edits(&self) -> Result<Vec<ConfigRef>> {
        let state = self.state();
        let (_, slot) = state.active()?;
        Ok(slot
            .draft
            .iter()
            .filter(|(ns, cfg, staged)| {
                staged.base() != slot.snapshots.get(*ns).and_then(|d| d.get(*cfg)).map(|s| &s.version)
            })
            .map(|(ns, cfg, _)| crate::model::error::ConfigId::new(ns, cfg))
            .collect())
    }

    /// A configuration of the current namespace as last read from the store, without staged
    /// edits (to compare with one's own edit after a conflict).
    pub fn stored(&self, config: &str) -> Result<Option<Arc<Configuration>>> {
        let cached = self.with_current(|slot, ns| Ok(slot.snapshots.get(ns).and_then(|d| d.get(config)).cloned()))?;
        Ok(cached.map(|c| Arc::new(c.value.to_configuration())))
    }

    // ----- reading the current namespace -----

    /// Runs `f` on the active slot and the current namespace.
    fn with_current<T>(&self, f: impl FnOnce(&Slot, &str) -> Result<T>) -> Result<T> {
        let state = self.state();
        let (name, slot) = state.active()?;
        let namespace = slot.current(name)?;
        f(slot, namespace)
    }

    /// Every configuration of the current namespace, staged edits included, by name.
    pub fn get_all(&self) -> Result<BTreeMap<String, Arc<Configuration>>> {
        // Built outside the lock: readers of other configurations do not wait for it.
        let all = self.get_all_content()?;
        Ok(all.into_iter().map(|(name, content)| (name, content.to_configuration())).collect())
    }

    /// Every configuration of the current namespace, staged edits included, by name, as
    /// [`Content`]: nothing is built (see [`Content::to_configuration`]).
    pub fn get_all_content(&self) -> Result<BTreeMap<String, Content>> {
        self.with_current(|slot, ns| Ok(slot.all_content(ns)))
    }

    /// One configuration of the current namespace as [`Content`] with where it is and the
    /// version it stands on (a staged edit's base, else the stored version): what a wrapper
    /// that hands out its own objects, changed in place by its callers, needs to stage their
    /// changes later with [`Confo::replace_on`] on the version they were made from.
    pub fn get_placed(&self, config: &str) -> Result<(Place, Option<Based>)> {
        self.with_placed(config, |backend, namespace, found| {
            (Place { backend: backend.to_owned(), namespace: namespace.to_owned() }, found)
        })
    }

    /// [`Confo::get_placed`] without allocating: runs `f` with the active backend's name, the
    /// current namespace and what `get_placed` finds, under the manager's lock (so `f` must be
    /// short, and must not call the manager).
    pub fn with_placed<T>(&self, config: &str, f: impl FnOnce(&str, &str, Option<Based>) -> T) -> Result<T> {
        let state = self.state();
        let (name, slot) = state.active()?;
        let namespace = slot.current(name)?;
        let found =
            slot.readable(namespace, config)?.map(|content| Based { content, base: slot.base_of(namespace, config) });
        Ok(f(name, namespace, found))
    }

    /// Every configuration of the current namespace as in [`Confo::get_placed`].
    pub fn get_all_placed(&self) -> Result<(Place, BTreeMap<String, Based>)> {
        let state = self.state();
        let (name, slot) = state.active()?;
        let namespace = slot.current(name)?;
        let all = slot
            .all_content(namespace)
            .into_iter()
            .map(|(config, content)| {
                let base = slot.base_of(namespace, &config);
                (config, Based { content, base })
            })
            .collect();
        Ok((Place { backend: name.to_owned(), namespace: namespace.to_owned() }, all))
    }

    /// Stages a whole configuration of `place` made on the stored version `base` (from
    /// [`Confo::get_placed`]): persisting it is a [`Error::Conflict`] if the store moved on
    /// since. A configuration already staged keeps the base of its first edit. Refused
    /// ([`Error::NoActiveBackend`]) if `place.backend` is not the active backend any more.
    pub fn replace_on(&self, place: &Place, config: &str, value: Configuration, base: Option<Version>) -> Result<()> {
        let mut state = self.state();
        let (name, slot) = state.active_mut()?;
        if name != place.backend {
            return Err(Error::NoActiveBackend);
        }
        slot.store.backend().validate_name(NameKind::Configuration, config)?;
        slot.draft.stage(&place.namespace, config, Edit::Put(Arc::new(value)), base);
        Ok(())
    }

    /// The names of the current namespace's configurations, sorted, corrupt entries included
    /// (see [`Confo::corrupt`]).
    pub fn list(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self.get_all_content()?.into_keys().collect();
        names.extend(self.corrupt()?.into_iter().map(|(name, _)| name));
        names.sort();
        Ok(names)
    }

    /// The entries of the current namespace that could not be read as configurations (and are
    /// not replaced or removed by a staged edit), with what is wrong with each. They block only
    /// themselves: [`Confo::get`] of one is [`Error::Corrupt`]; [`Confo::replace`] or
    /// [`Confo::remove`] and a persist fix it.
    pub fn corrupt(&self) -> Result<Vec<(String, Corruption)>> {
        self.with_current(|slot, ns| {
            Ok(slot
                .snapshots
                .get(ns)
                .map(|d| d.corrupt.iter())
                .into_iter()
                .flatten()
                .filter(|(name, _)| slot.corrupt(ns, name).is_some())
                .map(|(name, entry)| (name.clone(), entry.corruption.clone()))
                .collect())
        })
    }

    /// One configuration; `None` if it does not exist, [`Error::Corrupt`] if it cannot be read.
    pub fn get(&self, config: &str) -> Result<Option<Arc<Configuration>>> {
        Ok(self.get_content(config)?.map(|content| content.to_configuration()))
    }

    /// One configuration as [`Content`] (nothing built); `None` if it does not exist,
    /// [`Error::Corrupt`] if it cannot be read.
    pub fn get_content(&self, config: &str) -> Result<Option<Content>> {
        self.with_current(|slot, ns| slot.readable(ns, config))
    }

    /// One field of a configuration; `None` if the configuration or the field does not exist.
    pub fn get_field(&self, config: &str, field: &str) -> Result<Option<Value>> {
        self.with_current(|slot, ns| Ok(slot.readable(ns, config)?.and_then(|c| c.field(field))))
    }

    /// One configuration deserialized into `T`. [`Error::NotFound`] if it does not exist,
    /// [`Error::InvalidValue`] if it does not fit `T`.
    pub fn get_as<T: DeserializeOwned>(&self, config: &str) -> Result<T> {
        let (value, location) = self.with_current(|slot, ns| {
            let value = slot
                .readable(ns, config)?
                .ok_or_else(|| Error::not_found(Missing::Configuration, config, format!("namespace {ns:?}")))?;
            Ok((value, format!("{ns}/{config}")))
        })?;
        T::deserialize(&*value.to_configuration()).map_err(|e| Error::InvalidValue { location, message: e.to_string() })
    }

    /// The number of configurations in the current namespace, staged edits included.
    pub fn count(&self) -> Result<usize> {
        // The snapshot's size, corrected by the staged edits of this namespace: no map is built.
        self.with_current(|slot, ns| {
            let snapshot = slot.snapshots.get(ns);
            let stored = |cfg: &str| snapshot.is_some_and(|d| d.contains_key(cfg));
            let mut count = snapshot.map_or(0, |d| d.len());
            for (cfg, staged) in slot.draft.namespace(ns) {
                match staged.edit() {
                    Edit::Put(_) if !stored(cfg) => count += 1,
                    Edit::Delete if stored(cfg) => count -= 1,
                    _ => {}
                }
            }
            Ok(count)
        })
    }

    // ----- staging edits in the current namespace -----

    /// Sets one field of a configuration (in memory until persisted). Creates the
    /// configuration if it does not exist.
    pub fn set(&self, config: &str, field: &str, value: impl Into<Value>) -> Result<()> {
        let value = value.into();
        {
            // Setting a field of a configuration already staged (and shared with no reader)
            // changes it in place: no copy of the whole configuration per call.
            let mut state = self.state();
            let (name, slot) = state.active_mut()?;
            let namespace = slot.current(name)?.to_owned();
            if let Some(staged) = slot.draft.staged_value_mut(&namespace, config) {
                match staged.get_mut(field) {
                    Some(slot) => *slot = value,
                    None => {
                        staged.insert(field.to_owned(), value);
                    }
                }
                return Ok(());
            }
        }
        self.edit(config, |current| {
            let mut map = current?.map(|c| owned(&c)).unwrap_or_default();
            map.insert(field.to_owned(), value);
            Ok(Edit::Put(Arc::new(map)))
        })
    }

    /// Sets a field to a secret (in memory until persisted): sealed now with the keyring's
    /// primary key, bound to the current namespace, the configuration and the field, so the
    /// plaintext is never staged nor written.
    pub fn set_secret(
        &self,
        config: &str,
        field: &str,
        value: impl Into<Value>,
        keyring: &crate::secrets::Keyring,
    ) -> Result<()> {
        let namespace = self.current_namespace()?;
        let pointer = crate::secrets::pointer(field);
        let place = crate::secrets::Place { namespace: &namespace, configuration: config, pointer: &pointer };
        let sealed = keyring.seal(&place, &value.into())?;
        self.set(config, field, sealed)
    }

    /// One configuration with every secret opened (staged edits included); `None` if it does
    /// not exist. [`Confo::get`] returns secrets sealed.
    pub fn get_revealed(&self, config: &str, keyring: &crate::secrets::Keyring) -> Result<Option<Configuration>> {
        let namespace = self.current_namespace()?;
        match self.get(config)? {
            Some(value) => crate::secrets::reveal(&value, &namespace, config, keyring).map(Some),
            None => Ok(None),
        }
    }

    /// Replaces a whole configuration (in memory until persisted).
    pub fn replace(&self, config: &str, value: Configuration) -> Result<()> {
        self.edit(config, |_| Ok(Edit::Put(Arc::new(value))))
    }

    /// Removes one field (in memory until persisted). [`Error::NotFound`] if the configuration
    /// or the field does not exist.
    pub fn remove_field(&self, config: &str, field: &str) -> Result<()> {
        self.edit(config, |current| {
            let mut map =
                current?.map(|c| owned(&c)).ok_or_else(|| Error::not_found(Missing::Configuration, config, ""))?;
            if map.shift_remove(field).is_none() {
                return Err(Error::not_found(Missing::Field, format!("{config}.{field}"), ""));
            }
            Ok(Edit::Put(Arc::new(map)))
        })
    }

    /// Sets and removes fields of one configuration of the active backend and writes it at once
    /// ([`crate::store::Store::update_fields`]: on what is stored, re-read and re-applied on a conflict,
    /// so concurrent writers of different fields all succeed), then makes `namespace` the
    /// current one, read afresh. A staged edit of this configuration is dropped: the store's
    /// content wins. Whole-configuration writes ([`Confo::replace`] + persist) keep failing with
    /// a conflict instead: they were made from what their writer saw.
    pub async fn update_fields(&self, namespace: &str, config: &str, edits: &[FieldEdit]) -> Result<()> {
        let (_, store) = self.active_store()?;
        store.update_fields(namespace, config, edits).await?;
        self.discard_configuration_in(namespace, config)?;
        self.use_namespace(namespace).await
    }

    fn discard_configuration_in(&self, namespace: &str, config: &str) -> Result<()> {
        self.discard_scope(Some(namespace), Some(config))
    }

    /// Removes a configuration (from the store when persisted). [`Error::NotFound`] if it does
    /// not exist.
    pub fn remove(&self, config: &str) -> Result<()> {
        self.edit(config, |current| match current {
            // A corrupt entry can be removed: that is how it is repaired.
            Ok(Some(_)) | Err(_) => Ok(Edit::Delete),
            Ok(None) => Err(Error::not_found(Missing::Configuration, config, "")),
        })
    }

    /// Validates the name, computes the new staged edit from the effective content, stages it.
    fn edit(&self, config: &str, f: impl FnOnce(Result<Option<Content>>) -> Result<Edit>) -> Result<()> {
        let mut state = self.state();
        let (name, slot) = state.active_mut()?;
        let namespace = slot.current(name)?.to_owned();
        slot.store.backend().validate_name(NameKind::Configuration, config)?;
        let edit = f(slot.readable(&namespace, config)).map_err(|e| locate(e, &namespace))?;
        slot.stage(&namespace, config, edit);
        Ok(())
    }

    /// The staged (unpersisted) edits of the active backend, as `namespace/configuration`.
    pub fn staged(&self) -> Result<Vec<ConfigRef>> {
        let state = self.state();
        let (_, slot) = state.active()?;
        Ok(slot.draft.refs())
    }

    /// Drops every staged edit of the active backend.
    pub fn discard(&self) -> Result<()> {
        self.discard_scope(None, None)
    }

    /// Drops the staged edits of one namespace.
    pub fn discard_namespace(&self, namespace: &str) -> Result<()> {
        self.discard_scope(Some(namespace), None)
    }

    /// Drops the staged edit of one configuration.
    pub fn discard_configuration(&self, namespace: &str, config: &str) -> Result<()> {
        self.discard_scope(Some(namespace), Some(config))
    }

    fn discard_scope(&self, namespace: Option<&str>, config: Option<&str>) -> Result<()> {
        let mut state = self.state();
        let (_, slot) = state.active_mut()?;
        slot.draft.discard(match (namespace, config) {
            (None, _) => Scope::All,
            (Some(ns), None) => Scope::Namespace(ns),
            (Some(ns), Some(cfg)) => Scope::Configuration(ns, cfg),
        });
        Ok(())
    }

    // ----- persist -----

    /// Writes every staged edit of the active backend to the store. Returns what was written,
    /// as `namespace/configuration`.
    ///
    /// Each configuration is written only if it is still at the version this manager loaded
    /// (or still absent, for a new one): if another writer changed, created or deleted it
    /// meanwhile, persist fails with [`Error::Conflict`], writes nothing of that namespace's
    /// batch, and keeps the edits staged. See the stored value with [`Confo::reload`] and
    /// [`Confo::stored`]; overwrite with [`Confo::persist_with`] and `force`.
    pub async fn persist(&self) -> Result<Vec<ConfigRef>> {
        self.persist_with(Scope::All, false).await
    }

    /// Writes the staged edits of one namespace.
    pub async fn persist_namespace(&self, namespace: &str) -> Result<Vec<ConfigRef>> {
        self.persist_with(Scope::Namespace(namespace), false).await
    }

    /// Writes the staged edit of one configuration.
    pub async fn persist_configuration(&self, namespace: &str, config: &str) -> Result<Vec<ConfigRef>> {
        self.persist_with(Scope::Configuration(namespace, config), false).await
    }

    /// Writes the staged edits in `scope`; with `force`, whatever the store holds now is
    /// overwritten (no conflict check).
    pub async fn persist_with(&self, scope: Scope<'_>, force: bool) -> Result<Vec<ConfigRef>> {
        let lock = {
            let mut persisting = self.persisting.lock();
            let pid = std::process::id();
            if persisting.0 != pid {
                *persisting = (pid, Arc::new(tokio::sync::Mutex::new(())));
            }
            persisting.1.clone()
        };
        let _one_at_a_time = lock.lock().await;
        let (name, store) = self.active_store()?;
        self.check_scope(&store, scope).await?;
        // What to write: per namespace, the staged edits in scope that differ from the store.
        let batches = {
            let mut state = self.state();
            let (_, slot) = state.active_mut()?;
            let Slot { draft, snapshots, .. } = slot;
            draft.prepare(scope, force, |ns, cfg| known(snapshots, ns, cfg))
        };
        let written = write_batches(&store, &batches, |batch, applied| self.settle(&name, batch, applied)).await?;
        tracing::debug!(backend = %name, written = written.len(), "persisted");
        Ok(written)
    }

    /// A persist of a namespace or a configuration that has nothing staged and does not exist
    /// (a typo) is [`Error::NotFound`], as `use_namespace` of it would be, not a silent no-op.
    async fn check_scope(&self, store: &Store, scope: Scope<'_>) -> Result<()> {
        let (namespace, config) = match scope {
            Scope::All => return Ok(()),
            Scope::Namespace(ns) => (ns, None),
            Scope::Configuration(ns, cfg) => (ns, Some(cfg)),
        };
        let (staged, known_namespace, known_config) = {
            let state = self.state();
            let (_, slot) = state.active()?;
            let staged = match config {
                Some(cfg) => slot.draft.get(namespace, cfg).is_some(),
                None => slot.draft.namespace(namespace).next().is_some(),
            };
            let known_config = config.is_some_and(|cfg| {
                slot.snapshots.get(namespace).is_some_and(|d| d.contains_key(cfg) || d.corrupt.contains_key(cfg))
            });
            (staged, slot.namespaces.iter().any(|n| n == namespace), known_config)
        };
        if staged || known_config {
            return Ok(());
        }
        if !known_namespace && !store.namespaces().await?.iter().any(|n| n == namespace) {
            return Err(Error::not_found(Missing::Namespace, namespace, store.backend().describe()));
        }
        match config {
            Some(cfg) if store.get(namespace, cfg).await?.is_none() => {
                Err(Error::not_found(Missing::Configuration, cfg, format!("namespace {namespace:?}")))
            }
            _ => Ok(()),
        }
    }

    /// Records applied changes: the snapshot takes the new content and version, and the draft
    /// drops what was written (see [`Draft::settle`]).
    fn settle(&self, backend_name: &str, batch: &Batch, applied: &[crate::model::change::Applied]) {
        let mut state = self.state();
        let Some(slot) = state.backends.get_mut(backend_name) else { return };
        let snapshot = slot.snapshots.entry(batch.namespace().to_owned()).or_default();
        let data = Arc::make_mut(snapshot);
        for done in applied {
            let Some(value) = batch.written_value(&done.name) else { continue };
            data.corrupt.remove(&done.name);
            match (value, &done.version) {
                (Some(value), Some(version)) => data.put(done.name.clone(), &value, version.clone()),
                _ => {
                    data.remove(&done.name);
                }
            }
        }
        slot.draft.settle(batch, applied);
    }
}

/// A backend that could not be opened again in a forked child: every call fails with why.
#[derive(Debug)]
struct Unusable {
    describe: String,
    error: String,
}

impl Unusable {
    fn error(&self) -> Error {
        Error::unavailable(self.describe.clone(), format!("not open in this forked process: {}", self.error))
    }
}

#[async_trait::async_trait]
impl Backend for Unusable {
    fn describe(&self) -> String {
        self.describe.clone()
    }
    fn capabilities(&self) -> crate::backend::Capabilities {
        crate::backend::Capabilities::default()
    }
    async fn list_namespaces(&self) -> Result<Vec<String>> {
        Err(self.error())
    }
    async fn create(&self, _: &crate::model::name::NamespaceName) -> Result<bool> {
        Err(self.error())
    }
    async fn delete(&self, _: &crate::model::name::NamespaceName) -> Result<()> {
        Err(self.error())
    }
    async fn scan(&self, _: &crate::model::name::NamespaceName, _: Arc<dyn crate::model::decode::Sink>) -> Result<()> {
        Err(self.error())
    }
    async fn apply(
        &self,
        _: &crate::model::name::NamespaceName,
        _: &crate::backend::ChangeSet<'_>,
    ) -> crate::model::change::WriteReport {
        crate::model::change::WriteReport::failed(self.error())
    }
}

/// What the snapshots know of a configuration, for a persist to skip edits that change
/// nothing.
fn known<'a>(snapshots: &'a HashMap<String, Arc<Snapshot>>, namespace: &str, config: &str) -> Known<'a> {
    match snapshots.get(namespace) {
        Some(data) if data.corrupt.contains_key(config) => Known::Corrupt,
        Some(data) => data.get(config).map_or(Known::Absent, |c| Known::Stored(&c.version, &c.value)),
        None => Known::Absent,
    }
}

/// A configuration to edit, as a map of its own.
fn owned(content: &Content) -> Configuration {
    match content {
        Content::Stored(compact) => compact.to_configuration(),
        Content::Staged(value) => (**value).clone(),
    }
}

/// The error for reading or editing a corrupt entry, saying how to repair it.
fn corrupt_error(entry: &CorruptEntry) -> Error {
    let mut corruption = entry.corruption.clone();
    corruption.problem.push_str(" (replace the whole configuration, or remove it)");
    Error::Corrupt { corruptions: vec![corruption] }
}

/// Fills in the namespace of a not-found error raised while editing.
fn locate(error: Error, namespace: &str) -> Error {
    match error {
        Error::NotFound { what, name, location } if location.is_empty() => {
            Error::NotFound { what, name, location: format!("namespace {namespace:?}") }
        }
        other => other,
    }
}

mod refresh;

use crate::watch::{WatchOptions, Watcher};

#[cfg(test)]
mod tests;
