//! `confo._native`: the Python package's bridge to the Rust library. Thin: every method calls
//! the blocking facade (releasing the GIL while it waits on I/O); values go between JSON and
//! Python objects directly ([`convert`]), and `get` hands out the session's own dicts
//! ([`handed`]). Errors are raised as `NativeError(kind, message, details, errno)`; the Python
//! layer maps each kind to an exception class.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use confo::blocking::{BlockingWatcher, Confo};
use confo::model::error::SpecProblem;
use confo::{BackendKind, Error, Removal, Scope};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyDict;

mod convert;
mod handed;
mod pybackend;

create_exception!(_native, NativeError, PyException, "An error of the Rust core: args are (kind, message).");

/// The error's kind, as the Python layer names it.
fn kind(error: &Error) -> String {
    match error {
        Error::NotFound { what, .. } => format!("not_found:{what}"),
        // A key that is missing is told apart: confo raised KeyError for it.
        Error::InvalidSpec { key, problem: SpecProblem::Missing, .. } => {
            format!("invalid_spec_missing:{}", key.as_deref().unwrap_or(""))
        }
        // A config_path that is a file: confo raised NotADirectoryError.
        Error::InvalidSpec { key, problem: SpecProblem::NotAFolder, .. } => {
            format!("invalid_spec_not_a_folder:{}", key.as_deref().unwrap_or(""))
        }
        Error::InvalidSpec { key, .. } => format!("invalid_spec:{}", key.as_deref().unwrap_or("")),
        // A persist stopped by a conflict is a conflict to confo's callers.
        e if e.is_conflict() => "conflict".into(),
        e => e.kind().as_str().into(),
    }
}

/// `NativeError(kind, message)`, and for a schema violation a third argument: the violations
/// as a JSON list of {namespace, configuration, pointer, message}.
///
/// A fourth argument is the operating system's errno when it refused something (a file the
/// process may not write): the Python layer makes the exception an `OSError` too, as confo's
/// own file writes raised.
fn raise(error: Error) -> PyErr {
    let errno = match error.cause() {
        Error::Io { source, .. } => source.raw_os_error(),
        _ => None,
    };
    if let Error::SchemaViolation { violations } = error.cause() {
        let details = serde_json::to_string(violations).unwrap_or_default();
        return NativeError::new_err(("schema_violation".to_owned(), error.to_string(), Some(details), errno));
    }
    NativeError::new_err((kind(&error), error.to_string(), None::<String>, errno))
}

fn from_json(text: &str) -> PyResult<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| NativeError::new_err(("invalid_value".to_owned(), e.to_string())))
}

/// Configuration ids as Python sees them: `namespace/configuration` strings.
fn ids(ids: Vec<confo::model::error::ConfigId>) -> Vec<String> {
    ids.iter().map(ToString::to_string).collect()
}

fn backend_kind(kind: &str) -> PyResult<BackendKind> {
    kind.parse().map_err(raise)
}

/// Returns the memory a load has just freed to the system (called by the core once the maps a
/// large namespace was read into are freed: `confo::session::set_after_load_freed`). A namespace is
/// read as `serde_json` maps and kept compact (about a third of their size): glibc keeps the
/// freed maps' pages, where Python's own objects, allocated next, do not reuse them, so the
/// process's peak would be both forms plus what Python builds after. Costs a walk of the free
/// lists (well under a millisecond here).
fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the system; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// One manager (the singleton `Confo`, or a standalone backend class).
#[pyclass(module = "confo._native")]
struct Manager {
    inner: Confo,
    /// The dicts `get` handed out, the session's own (see [`handed`]).
    /// (A lock a `fork()` waits for, as the core's are: see `confo::fork`.)
    handed: confo::fork::Mutex<handed::HandedOut>,
    /// The keyring, read the first time a secret is met ($CONFO_KEYS, else
    /// ~/.config/confo/keys.toml); `None` inside when there is none.
    keyring: std::sync::OnceLock<Option<Arc<confo::secrets::Keyring>>>,
}

impl Manager {
    fn keyring(&self) -> PyResult<Option<&confo::secrets::Keyring>> {
        if let Some(found) = self.keyring.get() {
            return Ok(found.as_deref());
        }
        let found = confo::secrets::Keyring::find().map_err(raise)?.map(Arc::new);
        // The session's writes seal plain values written over secrets again with it.
        self.inner.set_keyring(found.clone());
        Ok(self.keyring.get_or_init(|| found).as_deref())
    }
}

#[pymethods]
impl Manager {
    #[new]
    fn new() -> PyResult<Self> {
        let inner = Confo::new().map_err(raise)?;
        inner.set_author(confo::model::history::Author::current("python"));
        Ok(Manager { inner, handed: Default::default(), keyring: std::sync::OnceLock::new() })
    }

    /// Loads a backend from a credentials dictionary (as JSON) for a kind ("file", "redis", …).
    /// One loaded under that name already takes the new credentials and keeps its selected
    /// namespace and staged edits, as confo kept them. Keys the backend does not know are left
    /// out, as confo ignored them: returns them, for the caller to log.
    fn load_backend(&self, py: Python<'_>, name: &str, kind: &str, credentials_json: &str) -> PyResult<Vec<String>> {
        let credentials = from_json(credentials_json)?;
        let (spec, ignored) =
            confo::BackendSpec::from_credentials_lenient(backend_kind(kind)?, &credentials).map_err(raise)?;
        self.stage_changed(py)?;
        py.detach(|| self.inner.reload_backend(name, &spec)).map_err(raise)?;
        Ok(ignored)
    }

    /// Puts a backend written in Python (an object with confo's backend methods, credentials
    /// already loaded) under `name` (one loaded there keeps its namespace and staged edits).
    fn load_backend_object(&self, py: Python<'_>, name: &str, object: Py<PyAny>, describe: String) -> PyResult<()> {
        let backend = std::sync::Arc::new(pybackend::PyBackend::new(object, describe));
        self.stage_changed(py)?;
        py.detach(|| self.inner.reload_backend_with(name, backend)).map_err(raise)?;
        Ok(())
    }

    /// A loaded backend as confo's backend objects show it: (namespaces, the selected one,
    /// its configurations as a dict; an empty one when none is selected).
    fn backend_view<'py>(
        &self,
        py: Python<'py>,
        name: &str,
    ) -> PyResult<(Vec<String>, Option<String>, Bound<'py, PyDict>)> {
        let confo::BackendView { namespaces, current, configurations } =
            self.inner.backend_view(name).map_err(raise)?;
        if current.is_some() && self.inner.backends().active.as_deref() == Some(name) {
            // The active backend's configurations are the session's own dicts, as `get` gives.
            return Ok((namespaces, current, self.get_all(py)?));
        }
        let dict = PyDict::new(py);
        for (config, content) in &configurations {
            dict.set_item(config, convert::configuration(py, &content.to_configuration())?)?;
        }
        Ok((namespaces, current, dict))
    }

    /// Loads a backend from a spec string (`redis://…`, `file:…`).
    fn load_backend_spec(&self, py: Python<'_>, name: &str, spec: &str) -> PyResult<()> {
        let spec: confo::BackendSpec = spec.parse().map_err(raise)?;
        py.detach(|| self.inner.load_backend(name, &spec)).map_err(raise)?;
        self.forget_backend(Some(name));
        Ok(())
    }

    /// Loads a backend whose credentials are a configuration of another loaded backend.
    fn load_backend_from(
        &self,
        py: Python<'_>,
        name: &str,
        kind: &str,
        source: &str,
        namespace: &str,
        config: &str,
    ) -> PyResult<()> {
        let kind = backend_kind(kind)?;
        py.detach(|| self.inner.load_backend_from(name, kind, source, namespace, config)).map_err(raise)?;
        self.forget_backend(Some(name));
        Ok(())
    }

    /// (all backend names, the active one).
    fn backends(&self) -> (Vec<String>, Option<String>) {
        let info = self.inner.backends();
        (info.all, info.active)
    }

    fn activate_backend(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        self.stage_changed(py)?;
        self.inner.activate_backend(name).map_err(raise)
    }

    /// (all namespaces, the current one).
    fn namespaces(&self) -> PyResult<(Vec<String>, Option<String>)> {
        let info = self.inner.namespaces().map_err(raise)?;
        Ok((info.all, info.current))
    }

    fn create_namespace(&self, py: Python<'_>, namespace: &str) -> PyResult<bool> {
        py.detach(|| self.inner.create_namespace(namespace)).map_err(raise)
    }

    fn remove_namespace(&self, py: Python<'_>, namespace: &str, force: bool) -> PyResult<()> {
        let removal = if force { Removal::Recursive } else { Removal::IfEmpty };
        py.detach(|| self.inner.remove_namespace(namespace, removal)).map_err(raise)
    }

    /// Selects a namespace, read afresh from the store. As in confo, the dicts handed out before
    /// are not the session's any more (their changes in place are staged first).
    fn use_namespace(&self, py: Python<'_>, namespace: &str) -> PyResult<()> {
        self.stage_changed(py)?;
        py.detach(|| self.inner.use_namespace(namespace)).map_err(raise)?;
        self.forget_backend(self.inner.backends().active.as_deref());
        Ok(())
    }

    /// Reads the current namespace afresh; as `use_namespace`, new dicts from now on.
    fn reload(&self, py: Python<'_>) -> PyResult<()> {
        self.stage_changed(py)?;
        py.detach(|| self.inner.reload()).map_err(raise)?;
        self.forget_backend(self.inner.backends().active.as_deref());
        Ok(())
    }

    /// Every configuration of the current namespace: a new dict of the session's own dicts
    /// (those `get` hands out).
    fn get_all<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (place, all) = self.inner.get_all_placed().map_err(raise)?;
        let dict = PyDict::new(py);
        let mut keys = convert::Keys::default();
        for (name, found) in all {
            let handed = self.hand_out(py, &mut keys, &place, &name, found.content, found.base)?;
            dict.set_item(name, handed)?;
        }
        Ok(dict)
    }

    /// One configuration: the session's own dict (converted once per stored version; a
    /// change made to it in place is staged by the next persist), or None.
    fn get<'py>(&self, py: Python<'py>, config: &str) -> PyResult<Option<Bound<'py, PyDict>>> {
        match self.find(py, config)? {
            handed::Found::Missing => Ok(None),
            handed::Found::Same(dict) => Ok(Some(dict.into_bound(py))),
            handed::Found::Other(place, found) => {
                self.hand_out(py, &mut convert::Keys::single(), &place, config, found.content, found.base).map(Some)
            }
        }
    }

    /// Sets a field to a secret, sealed with the keyring's primary key (SecretException
    /// without a keyring).
    fn set_secret(&self, py: Python<'_>, config: &str, field: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let value = convert::from_py(value)?;
        let keyring = self.keyring()?.ok_or_else(|| {
            NativeError::new_err((
                "secret".to_owned(),
                "no keyring: make a key with `confo keys new` (in $CONFO_KEYS, else ~/.config/confo/keys.toml)"
                    .to_owned(),
            ))
        })?;
        let shown = value.clone();
        self.edit_handed(
            py,
            config,
            || self.inner.set_secret(config, field, value, keyring).map_err(raise),
            |dict| dict.set_item(field, convert::to_py(py, &shown)?),
        )
    }

    /// Turns a sealed field (a name, or a JSON pointer) of a configuration of the current
    /// namespace back into a plain value, now: written in the clear on purpose. The dict
    /// handed out for it is let go of (`get` returns a new one).
    fn unset_secret(&self, py: Python<'_>, config: &str, field: &str) -> PyResult<()> {
        let keyring = self.keyring()?.ok_or_else(|| {
            NativeError::new_err((
                "secret".to_owned(),
                "no keyring: the secret cannot be opened (make one with `confo keys new`)".to_owned(),
            ))
        })?;
        self.stage_changed(py)?;
        let (place, _) = self.inner.get_placed(config).map_err(raise)?;
        py.detach(|| self.inner.unset_secret(config, field, keyring)).map_err(raise)?;
        self.forget(&place, config);
        Ok(())
    }

    /// One field: the object in the session's own dict (see `get`), or None.
    fn get_field<'py>(&self, py: Python<'py>, config: &str, field: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        match self.get(py, config)? {
            Some(dict) => dict.get_item(field),
            None => Ok(None),
        }
    }

    /// The stored (unedited) configuration, or None.
    fn stored<'py>(&self, py: Python<'py>, config: &str) -> PyResult<Option<Bound<'py, PyDict>>> {
        self.inner.stored(config).map_err(raise)?.map(|c| convert::configuration(py, &c)).transpose()
    }

    fn count(&self) -> PyResult<usize> {
        self.inner.count().map_err(raise)
    }

    /// Sets a field to a Python value (ValueError for NaN, TypeError for what JSON cannot hold):
    /// the object itself goes in the session's dict, as in confo.
    fn set(&self, py: Python<'_>, config: &str, field: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let json = convert::from_py(value)?;
        self.edit_handed(
            py,
            config,
            || self.inner.set(config, field, json).map_err(raise),
            |dict| dict.set_item(field, value),
        )
    }

    /// Replaces a configuration with a dict (which becomes the session's object for it).
    fn replace(&self, config: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        match convert::from_py(value)? {
            serde_json::Value::Object(map) => {
                self.inner.replace(config, map).map_err(raise)?;
                self.adopt(config, value)
            }
            _ => Err(NativeError::new_err(("invalid_value".to_owned(), "a configuration must be a dict".to_owned()))),
        }
    }

    fn remove_field(&self, py: Python<'_>, config: &str, field: &str) -> PyResult<()> {
        self.edit_handed(
            py,
            config,
            || self.inner.remove_field(config, field).map_err(raise),
            |dict| {
                if dict.contains(field)? {
                    dict.del_item(field)?;
                }
                Ok(())
            },
        )
    }

    fn remove(&self, config: &str) -> PyResult<()> {
        self.inner.remove(config).map_err(raise)?;
        self.removed(config)
    }

    /// Persists everything, one namespace, or one configuration; returns what was written.
    #[pyo3(signature = (namespace=None, config=None, force=false))]
    fn persist(
        &self,
        py: Python<'_>,
        namespace: Option<&str>,
        config: Option<&str>,
        force: bool,
    ) -> PyResult<Vec<String>> {
        let scope = match (namespace, config) {
            (None, _) => Scope::All,
            (Some(ns), None) => Scope::Namespace(ns),
            (Some(ns), Some(cfg)) => Scope::Configuration(ns, cfg),
        };
        // The keyring, if one is there, seals again a plain value written over a secret (the
        // store's write path refuses it without one); one that cannot be read is reported by
        // the calls that need it.
        let _ = self.keyring();
        self.stage_changed(py)?;
        py.detach(|| self.inner.persist_with(scope, force)).map(ids).map_err(raise)
    }

    /// Drops the staged edits, and the changes made in place to the dicts handed out (those
    /// dicts are the caller's from now on: `get` reads the stored values afresh).
    fn discard(&self) -> PyResult<()> {
        self.inner.discard().map_err(raise)?;
        self.forget_backend(self.inner.backends().active.as_deref());
        Ok(())
    }

    fn staged(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        self.stage_changed(py)?;
        self.inner.staged().map(ids).map_err(raise)
    }

    fn stale_edits(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        self.stage_changed(py)?;
        self.inner.stale_edits().map(ids).map_err(raise)
    }

    /// A configuration's recorded history, newest first: a list of dicts.
    #[pyo3(signature = (config, limit=None))]
    fn history<'py>(&self, py: Python<'py>, config: &str, limit: Option<usize>) -> PyResult<Bound<'py, PyAny>> {
        let page = confo::store::Page { before: None, limit: limit.unwrap_or(usize::MAX) };
        let history = py.detach(|| self.inner.history(config, page)).map_err(raise)?;
        let items: Vec<serde_json::Value> = history
            .revisions
            .iter()
            .map(|r| {
                serde_json::json!({
                    "number": r.number,
                    "operation": r.operation.as_str(),
                    "time": confo::model::history::format_time(r.time),
                    "actor": r.actor,
                    "host": r.host,
                    "tool": r.tool,
                    "message": r.message,
                    "restores": r.restores,
                    "version_before": r.version_before,
                    "version_after": r.version_after,
                    "value": r.value.as_deref().map(|v| serde_json::Value::Object(v.clone())),
                })
            })
            .collect();
        convert::to_py(py, &serde_json::Value::Array(items))
    }

    /// Writes revision `number`'s value again (now, not staged), as a new revision; returns
    /// the new revision's number.
    fn rollback(&self, py: Python<'_>, config: &str, number: u64) -> PyResult<u64> {
        py.detach(|| {
            self.inner.rollback(config, number)?;
            Ok(self.inner.history(config, confo::store::Page::newest(1))?.head())
        })
        .map_err(raise)
    }

    /// Sets the current namespace's default schema (or `config`'s own), and/or its mode.
    #[pyo3(signature = (schema, config=None, mode=None))]
    fn set_schema(
        &self,
        py: Python<'_>,
        schema: &Bound<'_, PyAny>,
        config: Option<&str>,
        mode: Option<&str>,
    ) -> PyResult<()> {
        let schema = if schema.is_none() { None } else { Some(convert::from_py(schema)?) };
        let mode = mode.map(str::parse::<confo::schema::Mode>).transpose().map_err(raise)?;
        py.detach(|| {
            let namespace = self.inner.current_namespace()?;
            self.inner.store()?.set_schema(&namespace, config, schema, mode).map(drop)
        })
        .map_err(raise)
    }

    /// The current namespace's schemas ({"mode", "default", "configurations"}), or None.
    fn get_schema<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let schemas = py
            .detach(|| {
                let namespace = self.inner.current_namespace()?;
                self.inner.store()?.schemas(&namespace)
            })
            .map_err(raise)?;
        match schemas {
            Some(s) => convert::to_py(py, &serde_json::Value::Object(s.to_json())),
            None => Ok(py.None().into_bound(py)),
        }
    }

    /// Every violation of what is stored in `namespace` (the current one by default).
    #[pyo3(signature = (namespace=None))]
    fn validate<'py>(&self, py: Python<'py>, namespace: Option<String>) -> PyResult<Bound<'py, PyAny>> {
        let violations = py
            .detach(|| {
                let namespace = match namespace {
                    Some(n) => n,
                    None => self.inner.current_namespace()?,
                };
                self.inner.store()?.validate(&[namespace])
            })
            .map_err(raise)?;
        let violations = serde_json::to_value(&violations)
            .map_err(|e| NativeError::new_err(("invalid_value".to_owned(), e.to_string())))?;
        convert::to_py(py, &violations)
    }

    /// When the current namespace was served from a last-known-good snapshot (its store was
    /// unavailable): {"taken": ISO time, "age": seconds, "reason": text, "path": file}; else None.
    fn snapshot_info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self.inner.from_snapshot().map_err(raise)? {
            None => Ok(py.None().into_bound(py)),
            Some(info) => convert::to_py(
                py,
                &serde_json::json!({
                    "taken": confo::model::history::format_time(info.taken),
                    "age": info.age().as_secs_f64(),
                    "reason": info.reason,
                    "path": info.path.display().to_string(),
                }),
            ),
        }
    }

    /// Starts watching a namespace (or one configuration).
    #[pyo3(signature = (namespace, config=None))]
    fn watch(&self, py: Python<'_>, namespace: &str, config: Option<&str>) -> PyResult<Watch> {
        let watcher = py.detach(|| self.inner.watch(namespace, config)).map_err(raise)?;
        Ok(Watch { inner: Arc::new(Mutex::new(watcher)) })
    }
}

/// Events of one namespace; `next_json` returns one as JSON, or None after the timeout.
#[pyclass(module = "confo._native")]
struct Watch {
    inner: Arc<Mutex<BlockingWatcher>>,
}

#[pymethods]
impl Watch {
    #[pyo3(signature = (timeout=None))]
    fn next_json(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<String>> {
        let inner = self.inner.clone();
        let event = py.detach(move || {
            let mut watcher = inner.lock().unwrap_or_else(|p| p.into_inner());
            match timeout {
                Some(secs) => watcher.next_timeout(Duration::from_secs_f64(secs.max(0.0))),
                None => watcher.next(),
            }
        });
        match event {
            Some(Ok(event)) => Ok(Some(event.to_json().to_string())),
            Some(Err(e)) => Err(raise(e)),
            None => Ok(None),
        }
    }
}

/// Registers confo's fork handlers (see `confo::fork`) once per process, so that a child
/// forked while another thread is inside a call (a persist on a worker thread, an auto-refresh)
/// never finds one of confo's locks held by a thread it does not have. Safe to wait in: no
/// thread holding one of these locks ever waits for the GIL the forking thread holds (the
/// binding takes them with the GIL held, or after letting it go, and runs no Python code under
/// them).
fn install_fork_handlers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: the handlers are plain `extern "C"` functions that live as long as the process,
        // do not panic and do not fork.
        let status = unsafe {
            libc::pthread_atfork(Some(confo::fork::prepare), Some(confo::fork::after), Some(confo::fork::after))
        };
        if status != 0 {
            eprintln!("confo: pthread_atfork failed ({status}): a child forked during a call may wait for ever");
        }
    });
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    confo::session::set_after_load_freed(give_back_freed_memory);
    install_fork_handlers();
    m.add_class::<Manager>()?;
    m.add_class::<Watch>()?;
    m.add("NativeError", m.py().get_type::<NativeError>())?;
    Ok(())
}
