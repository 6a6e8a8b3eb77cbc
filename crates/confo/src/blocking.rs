//! A blocking facade over the async [`crate::session::Confo`], for sync callers (the CLI, the Python
//! bindings, scripts), in the manner of `reqwest::blocking`.
//!
//! Only what does I/O is wrapped; the synchronous calls (reads of the cache, staging,
//! discarding) are the async manager's own, through `Deref`. A test keeps every async method
//! wrapped.
//!
//! It owns a small Tokio runtime (one worker thread, which also runs the background tasks of
//! network backends) and blocks the calling thread on each call. Do not call it from inside an
//! async runtime: use [`crate::session::Confo`] there.
//!
//! ```
//! use confo::blocking::Confo;
//! let confo = Confo::new()?;
//! confo.load_backend("mem", &"memory:".parse()?)?;
//! confo.activate_backend("mem")?;
//! confo.create_namespace("sales")?;
//! confo.use_namespace("sales")?;
//! confo.set("database", "host", "127.0.0.1")?;
//! confo.persist()?;
//! # Ok::<(), confo::Error>(())
//! ```

use crate::fork::Local;
use std::sync::Arc;

use crate::backend::Backend;
use crate::draft::Scope;
use crate::model::error::{ConfigRef, Error, Result};
use crate::model::version::Configuration;
use crate::spec::BackendSpec;
use crate::store::Removal;
use crate::watch::{Event, WatchOptions, Watcher};

/// The blocking manager. Cheap to clone; clones share one state and one runtime.
///
/// **Fork-safe**: in a child made by `fork()` (gunicorn `--preload`, multiprocessing's fork
/// start method), the first call notices the new process id, starts a runtime of the child's
/// own (the parent's threads do not exist there) and opens each backend again
/// ([`crate::session::Confo::reopen_after_fork`]); cached data and staged edits are kept. Watchers made
/// before the fork do not follow: watch again in the child. A manager the child drops without
/// using it is leaked there, not dropped (dropping waits for its runtime's threads, which the
/// child does not have). A program that forks while other threads are inside a call registers
/// [`crate::fork::prepare`] and [`crate::fork::after`] with `pthread_atfork` (the Python module
/// does).
#[derive(Debug, Clone)]
pub struct Confo {
    inner: crate::session::Confo,
    runtime: Arc<crate::fork::Mutex<ProcessRuntime>>,
}

/// A runtime and the process it belongs to.
#[derive(Debug)]
struct ProcessRuntime {
    pid: u32,
    runtime: Local<Arc<tokio::runtime::Runtime>>,
    /// The session, as the process that runs it holds it: a session made before a fork and
    /// dropped in the child before any call there is leaked, not dropped (its connections'
    /// tasks ran on the parent's runtime, whose threads the child does not have).
    session: Local<crate::session::Confo>,
}

impl Confo {
    /// A manager with no backends, and its runtime.
    pub fn new() -> Result<Self> {
        let inner = crate::session::Confo::new();
        let runtime = ProcessRuntime {
            pid: std::process::id(),
            runtime: Local::new(Arc::new(new_runtime()?)),
            session: Local::new(inner.clone()),
        };
        Ok(Confo { inner, runtime: Arc::new(crate::fork::Mutex::new(runtime)) })
    }

    /// See [`crate::session::Confo::unset_secret`].
    pub fn unset_secret(
        &self,
        config: &str,
        field: &str,
        keyring: &crate::secrets::Keyring,
    ) -> Result<crate::model::version::Version> {
        self.block(self.inner.unset_secret(config, field, keyring))
    }

    /// See [`crate::session::Confo::set_keyring`].
    pub fn set_keyring(&self, keyring: Option<Arc<crate::secrets::Keyring>>) {
        self.inner.set_keyring(keyring);
    }

    /// The async manager this facade drives (shares its state).
    pub fn as_async(&self) -> &crate::session::Confo {
        &self.inner
    }

    /// This process's runtime: after a fork, a new one, with the backends opened again.
    fn runtime(&self) -> Result<Arc<tokio::runtime::Runtime>> {
        let mut current = self.runtime.lock();
        let pid = std::process::id();
        if current.pid == pid {
            return Ok(current.runtime.clone());
        }
        // The parent's runtime has no threads here; dropping it would wait for them for ever
        // (`Local` leaks it).
        let runtime = Arc::new(new_runtime()?);
        current.runtime = Local::new(runtime.clone());
        current.session = Local::new(self.inner.clone());
        current.pid = pid;
        runtime.block_on(self.inner.reopen_after_fork())?;
        Ok(runtime)
    }

    /// See [`crate::session::Confo::reopen_after_fork`]: what the first call in a forked child does by
    /// itself (calling it is never needed; it does nothing in the process that loaded).
    pub fn reopen_after_fork(&self) -> Result<()> {
        self.runtime().map(drop)
    }

    fn block<T>(&self, future: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        self.runtime()?.block_on(future)
    }

    /// The active backend as a [`Store`] on this facade's runtime (see [`crate::session::Confo::store`]):
    /// point reads and writes, schemas, validation.
    pub fn store(&self) -> Result<Store> {
        // The runtime first: in a forked child it reopens the backends the store then uses.
        let runtime = self.runtime()?;
        Ok(Store { inner: self.inner.store()?, runtime })
    }

    /// See [`crate::session::Confo::reload_namespace`].
    pub fn reload_namespace(&self, namespace: &str) -> Result<()> {
        self.block(self.inner.reload_namespace(namespace))
    }

    /// See [`crate::session::Confo::history`].
    pub fn history(&self, config: &str, page: crate::store::Page) -> Result<crate::model::history::History> {
        self.block(self.inner.history(config, page))
    }

    /// See [`crate::session::Confo::revision`].
    pub fn revision(&self, config: &str, number: u64) -> Result<crate::model::history::Revision> {
        self.block(self.inner.revision(config, number))
    }

    /// See [`crate::session::Confo::rollback`].
    pub fn rollback(&self, config: &str, number: u64) -> Result<crate::model::version::Version> {
        self.block(self.inner.rollback(config, number))
    }

    /// See [`crate::session::Confo::log`].
    #[allow(clippy::type_complexity)]
    pub fn log(
        &self,
        filter: &crate::store::LogFilter,
    ) -> Result<(Vec<(String, crate::model::history::Revision)>, Vec<crate::model::error::Corruption>)> {
        self.block(self.inner.log(filter))
    }

    /// See [`crate::session::Confo::watch_with`].
    pub fn watch_with(
        &self,
        namespace: &str,
        configuration: Option<&str>,
        options: WatchOptions,
    ) -> Result<BlockingWatcher> {
        let runtime = self.runtime()?;
        let watcher = runtime.block_on(self.inner.watch_with(namespace, configuration, options))?;
        Ok(BlockingWatcher { watcher: Local::new(watcher), runtime: Local::new(runtime) })
    }

    /// See [`crate::session::Confo::replace_backend`].
    pub fn replace_backend(&self, name: &str, spec: &BackendSpec) -> Result<()> {
        self.block(self.inner.replace_backend(name, spec))
    }

    /// See [`crate::session::Confo::replace_backend_with`].
    pub fn replace_backend_with(&self, name: &str, backend: Arc<dyn Backend>) -> Result<()> {
        self.block(self.inner.replace_backend_with(name, backend))
    }

    /// See [`crate::session::Confo::reload_backend`].
    pub fn reload_backend(&self, name: &str, spec: &BackendSpec) -> Result<()> {
        self.block(self.inner.reload_backend(name, spec))
    }

    /// See [`crate::session::Confo::reload_backend_with`].
    pub fn reload_backend_with(&self, name: &str, backend: Arc<dyn Backend>) -> Result<()> {
        self.block(self.inner.reload_backend_with(name, backend))
    }

    /// See [`crate::session::Confo::load_backend`].
    pub fn load_backend(&self, name: &str, spec: &BackendSpec) -> Result<()> {
        self.block(self.inner.load_backend(name, spec))
    }

    /// See [`crate::session::Confo::load_backend_from`].
    pub fn load_backend_from(
        &self,
        name: &str,
        kind: crate::spec::BackendKind,
        source: &str,
        namespace: &str,
        config: &str,
    ) -> Result<()> {
        self.block(self.inner.load_backend_from(name, kind, source, namespace, config))
    }

    /// See [`crate::session::Confo::add_backend`].
    pub fn add_backend(&self, name: &str, backend: Arc<dyn Backend>) -> Result<()> {
        self.block(self.inner.add_backend(name, backend))
    }

    /// See [`crate::session::Confo::create_namespace`].
    pub fn create_namespace(&self, namespace: &str) -> Result<bool> {
        self.block(self.inner.create_namespace(namespace))
    }

    /// See [`crate::session::Confo::remove_namespace`].
    pub fn remove_namespace(&self, namespace: &str, removal: Removal) -> Result<()> {
        self.block(self.inner.remove_namespace(namespace, removal))
    }

    /// See [`crate::session::Confo::use_namespace`].
    pub fn use_namespace(&self, namespace: &str) -> Result<()> {
        self.block(self.inner.use_namespace(namespace))
    }

    /// See [`crate::session::Confo::reload`].
    pub fn reload(&self) -> Result<()> {
        self.block(self.inner.reload())
    }

    /// See [`crate::session::Confo::persist`].
    pub fn persist(&self) -> Result<Vec<ConfigRef>> {
        self.block(self.inner.persist())
    }

    /// See [`crate::session::Confo::persist_namespace`].
    pub fn persist_namespace(&self, namespace: &str) -> Result<Vec<ConfigRef>> {
        self.block(self.inner.persist_namespace(namespace))
    }

    /// See [`crate::session::Confo::export`].
    pub fn export(&self, namespaces: &[String]) -> Result<crate::transfer::Document> {
        self.block(self.inner.export(namespaces))
    }

    /// See [`crate::session::Confo::export_readable`].
    pub fn export_readable(
        &self,
        namespaces: &[String],
    ) -> Result<(crate::transfer::Document, Vec<crate::model::error::Corruption>)> {
        self.block(self.inner.export_readable(namespaces))
    }

    /// See [`crate::session::Confo::export_readable_compact`].
    pub fn export_readable_compact(
        &self,
        namespaces: &[String],
    ) -> Result<(crate::transfer::CompactDocument, Vec<crate::model::error::Corruption>)> {
        self.block(self.inner.export_readable_compact(namespaces))
    }

    /// See [`crate::session::Confo::plan`].
    pub fn plan(&self, document: &crate::transfer::Document, prune: bool) -> Result<crate::transfer::Plan> {
        self.block(self.inner.plan(document, prune))
    }

    /// See [`crate::session::Confo::apply`].
    pub fn apply(
        &self,
        plan: &crate::transfer::Plan,
        document: &crate::transfer::Document,
        progress: impl FnMut(usize, usize),
    ) -> Result<()> {
        self.block(self.inner.apply(plan, document, progress))
    }

    /// See [`crate::session::Confo::apply_owned`].
    pub fn apply_owned(
        &self,
        plan: &crate::transfer::Plan,
        document: crate::transfer::Document,
        progress: impl FnMut(usize, usize),
    ) -> Result<()> {
        self.block(self.inner.apply_owned(plan, document, progress))
    }

    /// See [`crate::session::Confo::persist_with`].
    pub fn persist_with(&self, scope: Scope<'_>, force: bool) -> Result<Vec<ConfigRef>> {
        self.block(self.inner.persist_with(scope, force))
    }

    /// See [`crate::session::Confo::set_auto_refresh`].
    pub fn set_auto_refresh(&self, enabled: bool, options: WatchOptions) -> Result<()> {
        self.block(self.inner.set_auto_refresh(enabled, options))
    }

    /// Watches a namespace (or one configuration); iterate the result for events.
    /// See [`crate::session::Confo::watch`].
    pub fn watch(&self, namespace: &str, configuration: Option<&str>) -> Result<BlockingWatcher> {
        let runtime = self.runtime()?;
        let watcher = runtime.block_on(self.inner.watch(namespace, configuration))?;
        Ok(BlockingWatcher { watcher: Local::new(watcher), runtime: Local::new(runtime) })
    }

    /// Calls `callback` on a thread of its own for every event until the returned handle is
    /// dropped or `callback` returns `false`.
    pub fn watch_callback<F>(
        &self,
        namespace: &str,
        configuration: Option<&str>,
        mut callback: F,
    ) -> Result<WatchHandle>
    where
        F: FnMut(Result<Event>) -> bool + Send + 'static,
    {
        let mut watcher = self.watch(namespace, configuration)?;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("confo-watch".into())
            .spawn(move || {
                while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Some(event) = watcher.next_timeout(std::time::Duration::from_millis(200)) {
                        if !callback(event) {
                            return;
                        }
                    }
                }
            })
            .map_err(|e| Error::io("confo watch thread", e))?;
        Ok(WatchHandle { stop, thread: Some(thread) })
    }

    /// See [`crate::session::Confo::update_fields`].
    pub fn update_fields(&self, namespace: &str, config: &str, edits: &[crate::store::FieldEdit]) -> Result<()> {
        self.block(self.inner.update_fields(namespace, config, edits))
    }

    /// See [`crate::session::Confo::persist_configuration`].
    pub fn persist_configuration(&self, namespace: &str, config: &str) -> Result<Vec<ConfigRef>> {
        self.block(self.inner.persist_configuration(namespace, config))
    }
}

/// The runtime a blocking handle drives: one worker thread, which also runs the background
/// tasks of network backends.
/// The synchronous calls (reads of the cache, staging, discarding) are the async manager's
/// own: only what does I/O is wrapped above.
impl std::ops::Deref for Confo {
    type Target = crate::session::Confo;

    fn deref(&self) -> &crate::session::Confo {
        &self.inner
    }
}

fn new_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("confo-runtime")
        .enable_all()
        .build()
        .map_err(|e| Error::io("confo runtime", e))
}

/// A blocking [`crate::store::Store`]: the same calls without `.await`. Cheap to clone.
///
/// ```
/// use confo::blocking::Store;
/// use confo::{FieldEdit, Precondition};
/// let store = Store::open(&"memory:".parse()?)?;
/// store.create_namespace("sales")?;
/// store.update_fields("sales", "db", &[FieldEdit::Set("port".into(), 5432.into())])?;
/// assert_eq!(store.get("sales", "db")?.expect("written").value["port"], 5432);
/// # Ok::<(), confo::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Store {
    inner: crate::store::Store,
    runtime: Arc<tokio::runtime::Runtime>,
}

impl Store {
    /// Opens (connects to) the store a spec names.
    pub fn open(spec: &BackendSpec) -> Result<Self> {
        let runtime = new_runtime()?;
        let inner = runtime.block_on(crate::store::Store::open(spec))?;
        Ok(Store { inner, runtime: Arc::new(runtime) })
    }

    /// The async store this facade drives.
    pub fn as_async(&self) -> &crate::store::Store {
        &self.inner
    }

    fn block<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// See [`crate::store::Store::namespaces`].
    pub fn namespaces(&self) -> Result<Vec<String>> {
        self.block(self.inner.namespaces())
    }

    /// The same store, its writes recorded as made by `author`. See [`crate::store::Store::with_author`].
    pub fn with_author(&self, author: Arc<crate::model::history::Author>) -> Self {
        Store { inner: self.inner.with_author(author), runtime: self.runtime.clone() }
    }

    /// The same store, sealing again with `keyring`. See [`crate::store::Store::with_keyring`].
    pub fn with_keyring(&self, keyring: Option<Arc<crate::secrets::Keyring>>) -> Self {
        Store { inner: self.inner.with_keyring(keyring), runtime: self.runtime.clone() }
    }

    /// See [`crate::store::Store::history`].
    pub fn history(
        &self,
        namespace: &str,
        config: &str,
        page: crate::store::Page,
    ) -> Result<crate::model::history::History> {
        self.block(self.inner.history(namespace, config, page))
    }

    /// See [`crate::store::Store::revision`].
    pub fn revision(&self, namespace: &str, config: &str, number: u64) -> Result<crate::model::history::Revision> {
        self.block(self.inner.revision(namespace, config, number))
    }

    /// See [`crate::store::Store::rollback`].
    pub fn rollback(
        &self,
        namespace: &str,
        config: &str,
        number: u64,
        precondition: Option<crate::model::change::Precondition>,
    ) -> Result<crate::model::version::Version> {
        self.block(self.inner.rollback(namespace, config, number, precondition))
    }

    /// See [`crate::store::Store::schemas`].
    pub fn schemas(&self, namespace: &str) -> Result<Option<crate::schema::Schemas>> {
        self.block(self.inner.schemas(namespace))
    }

    /// See [`crate::store::Store::set_schema`].
    pub fn set_schema(
        &self,
        namespace: &str,
        config: Option<&str>,
        schema: Option<serde_json::Value>,
        mode: Option<crate::schema::Mode>,
    ) -> Result<crate::schema::Schemas> {
        self.block(self.inner.set_schema(namespace, config, schema, mode))
    }

    /// See [`crate::store::Store::remove_schema`].
    pub fn remove_schema(&self, namespace: &str, config: Option<&str>) -> Result<Option<crate::schema::Schemas>> {
        self.block(self.inner.remove_schema(namespace, config))
    }

    /// See [`crate::store::Store::schema_history`].
    pub fn schema_history(&self, namespace: &str) -> Result<crate::model::history::History> {
        self.block(self.inner.schema_history(namespace))
    }

    /// See [`crate::store::Store::rollback_schema`].
    pub fn rollback_schema(&self, namespace: &str, number: u64) -> Result<Option<crate::schema::Schemas>> {
        self.block(self.inner.rollback_schema(namespace, number))
    }

    /// See [`crate::store::Store::repair`].
    pub fn repair(&self, options: &crate::backend::RepairOptions) -> Result<crate::backend::Repair> {
        self.block(self.inner.repair(options))
    }

    /// See [`crate::store::Store::check_acls`].
    pub fn check_acls(&self, fix: bool) -> Result<Vec<crate::backend::AclFinding>> {
        self.block(self.inner.check_acls(fix))
    }

    /// See [`crate::store::Store::validate`].
    pub fn validate(&self, namespaces: &[String]) -> Result<Vec<crate::model::error::Violation>> {
        self.block(self.inner.validate(namespaces))
    }

    /// See [`crate::store::Store::log`].
    #[allow(clippy::type_complexity)]
    pub fn log(
        &self,
        namespace: &str,
        filter: &crate::store::LogFilter,
    ) -> Result<(Vec<(String, crate::model::history::Revision)>, Vec<crate::model::error::Corruption>)> {
        self.block(self.inner.log(namespace, filter))
    }

    /// See [`crate::store::Store::create_namespace`].
    pub fn create_namespace(&self, namespace: &str) -> Result<bool> {
        self.block(self.inner.create_namespace(namespace))
    }

    /// See [`crate::store::Store::remove_namespace`].
    pub fn remove_namespace(&self, namespace: &str, removal: Removal) -> Result<()> {
        self.block(self.inner.remove_namespace(namespace, removal))
    }

    /// See [`crate::store::Store::get`].
    pub fn get(&self, namespace: &str, config: &str) -> Result<Option<crate::model::version::Stored>> {
        self.block(self.inner.get(namespace, config))
    }

    /// See [`crate::store::Store::put`].
    pub fn put(
        &self,
        namespace: &str,
        config: &str,
        value: Configuration,
        precondition: crate::model::change::Precondition,
    ) -> Result<crate::model::version::Version> {
        self.block(self.inner.put(namespace, config, value, precondition))
    }

    /// See [`crate::store::Store::delete`].
    pub fn delete(
        &self,
        namespace: &str,
        config: &str,
        precondition: crate::model::change::Precondition,
    ) -> Result<()> {
        self.block(self.inner.delete(namespace, config, precondition))
    }

    /// See [`crate::store::Store::replace`].
    pub fn replace(
        &self,
        namespace: &str,
        config: &str,
        value: Configuration,
    ) -> Result<crate::model::version::Version> {
        self.block(self.inner.replace(namespace, config, value))
    }

    /// See [`crate::store::Store::remove`].
    pub fn remove(&self, namespace: &str, config: &str) -> Result<()> {
        self.block(self.inner.remove(namespace, config))
    }

    /// See [`crate::store::Store::modify`].
    pub fn modify<E, F>(&self, namespace: &str, config: &str, edit: F) -> std::result::Result<crate::store::Modified, E>
    where
        E: From<crate::model::error::Error> + Send + 'static,
        F: Fn(
                Option<&crate::model::version::Stored>,
            ) -> std::result::Result<Option<crate::model::version::Configuration>, E>
            + Send
            + Sync
            + 'static,
    {
        self.block(self.inner.modify(namespace, config, edit))
    }

    /// See [`crate::store::Store::update_fields`].
    pub fn update_fields(
        &self,
        namespace: &str,
        config: &str,
        edits: &[crate::store::FieldEdit],
    ) -> Result<crate::model::version::Version> {
        self.block(self.inner.update_fields(namespace, config, edits))
    }

    /// See [`crate::store::Store::load`].
    pub fn load(&self, namespace: &str) -> Result<crate::model::version::NamespaceData> {
        self.block(self.inner.load(namespace))
    }

    /// See [`crate::store::Store::load_compact`].
    pub fn load_compact(&self, namespace: &str) -> Result<crate::model::compact::CompactNamespace> {
        self.block(self.inner.load_compact(namespace))
    }

    /// See [`crate::store::Store::write`].
    pub fn write(
        &self,
        namespace: &str,
        changes: &[crate::model::change::Change],
    ) -> Result<Vec<crate::model::change::Applied>> {
        self.block(self.inner.write(namespace, changes))
    }

    /// See [`crate::store::Store::diff`].
    pub fn diff(
        &self,
        other: &Store,
        namespaces: &[String],
    ) -> Result<Vec<(String, String, crate::transfer::Difference)>> {
        self.block(self.inner.diff(&other.inner, namespaces))
    }

    /// See [`crate::store::Store::set_secret`].
    pub fn set_secret(
        &self,
        namespace: &str,
        config: &str,
        field: &str,
        value: serde_json::Value,
        keyring: &crate::secrets::Keyring,
    ) -> Result<crate::model::version::Version> {
        self.block(self.inner.set_secret(namespace, config, field, value, keyring))
    }

    /// See [`crate::store::Store::get_revealed`].
    pub fn get_revealed(
        &self,
        namespace: &str,
        config: &str,
        keyring: &crate::secrets::Keyring,
    ) -> Result<Option<Configuration>> {
        self.block(self.inner.get_revealed(namespace, config, keyring))
    }

    /// See [`crate::store::Store::purge_history_field`].
    pub fn purge_history_field(&self, namespace: &str, config: &str, pointer: &str) -> Result<Vec<u64>> {
        self.block(self.inner.purge_history_field(namespace, config, pointer))
    }

    /// See [`crate::store::Store::unset_secret`].
    pub fn unset_secret(
        &self,
        namespace: &str,
        config: &str,
        pointer: &str,
        keyring: &crate::secrets::Keyring,
    ) -> Result<crate::model::version::Version> {
        self.block(self.inner.unset_secret(namespace, config, pointer, keyring))
    }

    /// See [`crate::store::Store::rotate_secrets`].
    pub fn rotate_secrets(&self, namespaces: &[String], keyring: &crate::secrets::Keyring) -> Result<usize> {
        self.block(self.inner.rotate_secrets(namespaces, keyring))
    }

    /// See [`crate::store::Store::rotate_secrets_report`].
    pub fn rotate_secrets_report(
        &self,
        namespaces: &[String],
        keyring: &crate::secrets::Keyring,
    ) -> Result<crate::store::Rotation> {
        self.block(self.inner.rotate_secrets_report(namespaces, keyring))
    }

    /// See [`crate::store::Store::export`].
    pub fn export(&self, namespaces: &[String]) -> Result<crate::transfer::Document> {
        self.block(self.inner.export(namespaces))
    }

    /// See [`crate::store::Store::export_readable`].
    pub fn export_readable(
        &self,
        namespaces: &[String],
    ) -> Result<(crate::transfer::Document, Vec<crate::model::error::Corruption>)> {
        self.block(self.inner.export_readable(namespaces))
    }

    /// See [`crate::store::Store::export_readable_compact`].
    pub fn export_readable_compact(
        &self,
        namespaces: &[String],
    ) -> Result<(crate::transfer::CompactDocument, Vec<crate::model::error::Corruption>)> {
        self.block(self.inner.export_readable_compact(namespaces))
    }

    /// See [`crate::store::Store::parse_document`].
    pub fn parse_document(&self, value: serde_json::Value) -> Result<crate::transfer::Document> {
        self.inner.parse_document(value)
    }

    /// See [`crate::store::Store::check_names`].
    pub fn check_names(&self, document: &crate::transfer::Document) -> Result<()> {
        self.inner.check_names(document)
    }

    /// See [`crate::store::Store::plan`].
    pub fn plan(&self, document: &crate::transfer::Document, prune: bool) -> Result<crate::transfer::Plan> {
        self.block(self.inner.plan(document, prune))
    }

    /// See [`crate::store::Store::apply`].
    pub fn apply(
        &self,
        plan: &crate::transfer::Plan,
        document: &crate::transfer::Document,
        progress: impl FnMut(usize, usize),
    ) -> Result<()> {
        self.block(self.inner.apply(plan, document, progress))
    }

    /// See [`crate::store::Store::apply_owned`].
    pub fn apply_owned(
        &self,
        plan: &crate::transfer::Plan,
        document: crate::transfer::Document,
        progress: impl FnMut(usize, usize),
    ) -> Result<()> {
        self.block(self.inner.apply_owned(plan, document, progress))
    }

    /// See [`crate::store::Store::watch`].
    pub fn watch(&self, namespace: &str, config: Option<&str>, options: WatchOptions) -> Result<BlockingWatcher> {
        let watcher = self.block(self.inner.watch(namespace, config, options))?;
        Ok(BlockingWatcher { watcher: Local::new(watcher), runtime: Local::new(self.runtime.clone()) })
    }

    /// See [`crate::draft::Draft::commit`]: commits a draft to this store.
    pub fn commit(&self, draft: &mut crate::draft::Draft, scope: Scope<'_>, force: bool) -> Result<Vec<ConfigRef>> {
        self.block(draft.commit(&self.inner, scope, force))
    }
}

/// A [`Watcher`] for sync callers: an iterator of events.
#[derive(Debug)]
pub struct BlockingWatcher {
    // Both leaked, not dropped, in a forked child (see `crate::fork`); the watcher first.
    watcher: Local<Watcher>,
    // The runtime that runs the watcher's task lives as long as the watcher.
    runtime: Local<Arc<tokio::runtime::Runtime>>,
}

impl BlockingWatcher {
    /// The next event if one arrives within `timeout`.
    pub fn next_timeout(&mut self, timeout: std::time::Duration) -> Option<Result<Event>> {
        let deadline = std::time::Instant::now() + timeout;
        self.runtime.block_on(self.watcher.next_timeout(deadline.saturating_duration_since(std::time::Instant::now())))
    }
}

impl Iterator for BlockingWatcher {
    type Item = Result<Event>;

    fn next(&mut self) -> Option<Result<Event>> {
        self.watcher.blocking_next()
    }
}

/// Stops a [`Confo::watch_callback`] thread when dropped (after at most 200 ms).
#[derive(Debug)]
pub struct WatchHandle {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    /// The public `async fn`s of a source file's first `impl <ty> {` block.
    fn async_methods(source: &str, ty: &str) -> Vec<String> {
        let start = source.find(&format!("impl {ty} {{")).expect("the impl block");
        let block = &source[start..];
        let end = block.find("\n}\n").unwrap_or(block.len());
        block[..end]
            .lines()
            .filter_map(|l| l.trim().strip_prefix("pub async fn "))
            .map(|rest| rest.split(['(', '<']).next().unwrap_or_default().to_owned())
            .collect()
    }

    /// Every async method of the manager and the store has a blocking twin, so a sync caller
    /// never meets a future through `Deref`.
    #[test]
    fn the_blocking_facade_has_every_async_method() {
        let blocking = include_str!("blocking.rs");
        let (confo_part, store_part) = blocking.split_at(blocking.find("impl Store {").expect("impl Store"));
        for (source, ty, facade) in
            [(include_str!("session/mod.rs"), "Confo", confo_part), (include_str!("store/mod.rs"), "Store", store_part)]
        {
            let methods = async_methods(source, ty);
            assert!(methods.len() > 8, "{ty}: {methods:?}");
            for method in methods {
                assert!(
                    facade.contains(&format!("pub fn {method}(")) || facade.contains(&format!("pub fn {method}<")),
                    "blocking::{ty} lacks {method}"
                );
            }
        }
    }
}
