//! `confo._native`: the Python package's bridge to the Rust library. Thin: every method calls
//! the blocking facade (releasing the GIL while it waits on I/O) and passes values as JSON
//! text, which the Python layer (`python/confo`) turns into dicts and lists. Errors are raised
//! as `NativeError(kind, message)`; the Python layer maps each kind to an exception class.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use confo::blocking::{BlockingWatcher, Confo};
use confo::{BackendKind, Error, Removal, Scope};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyDict;

mod convert;
mod pybackend;

create_exception!(_native, NativeError, PyException, "An error of the Rust core: args are (kind, message).");

/// The error's kind, as the Python layer names it.
fn kind(error: &Error) -> String {
    match error {
        Error::NotFound { what, .. } => format!("not_found:{what}"),
        // A key that is missing is told apart: confo raised KeyError for it.
        Error::InvalidSpec { key, message } if message.starts_with("missing") => {
            format!("invalid_spec_missing:{}", key.as_deref().unwrap_or(""))
        }
        Error::InvalidSpec { key, .. } => format!("invalid_spec:{}", key.as_deref().unwrap_or("")),
        // A persist stopped by a conflict is a conflict to confo's callers.
        e if e.is_conflict() => "conflict".into(),
        e => e.kind().as_str().into(),
    }
}

/// `NativeError(kind, message)`, and for a schema violation a third argument: the violations
/// as a JSON list of {namespace, configuration, pointer, message}.
fn raise(error: Error) -> PyErr {
    if let Error::SchemaViolation { violations } = error.cause() {
        let details = serde_json::to_string(violations).unwrap_or_default();
        return NativeError::new_err(("schema_violation".to_owned(), error.to_string(), details));
    }
    NativeError::new_err((kind(&error), error.to_string()))
}

fn from_json(text: &str) -> PyResult<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| NativeError::new_err(("invalid_value".to_owned(), e.to_string())))
}

/// Configuration ids as Python sees them: `namespace/configuration` strings.
fn ids(ids: Vec<confo::error::ConfigId>) -> Vec<String> {
    ids.iter().map(ToString::to_string).collect()
}

fn backend_kind(kind: &str) -> PyResult<BackendKind> {
    kind.parse().map_err(raise)
}

/// Returns the memory a load has just freed to the system (called by the core once the maps a
/// large namespace was read into are freed: `confo::manager::set_after_load_freed`). A namespace is
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

/// A configuration converted for `get`: the content it was made from, and the `dict`.
type Converted = (confo::Content, Py<PyDict>);

/// Most configurations kept converted for `get` (then the memo starts again): about 1 KB each.
const CONVERTED_MAX: usize = 4096;

/// One manager (the singleton `Confo`, or a standalone backend class).
#[pyclass(module = "confo._native")]
struct Manager {
    inner: Confo,
    /// Configurations already converted for `get`, by name: the content they were made from
    /// (compared by identity, [`confo::Content::same`]: a new version is a new one) and the
    /// `dict`, never handed out itself, only copied (see [`convert::fresh_copy`]). Bounded by
    /// [`CONVERTED_MAX`].
    converted: std::sync::Mutex<std::collections::HashMap<String, Converted>>,
    /// The keyring, read the first time a secret is met ($CONFO_KEYS, else
    /// ~/.config/confo/keys.toml); `None` inside when there is none.
    keyring: std::sync::OnceLock<Option<confo::secrets::Keyring>>,
}

impl Manager {
    fn keyring(&self) -> PyResult<Option<&confo::secrets::Keyring>> {
        if let Some(found) = self.keyring.get() {
            return Ok(found.as_ref());
        }
        let found = confo::secrets::Keyring::find().map_err(raise)?;
        Ok(self.keyring.get_or_init(|| found).as_ref())
    }

    /// A configuration as Python sees it: its secrets opened when the keyring is at hand, else
    /// left sealed (`{"$confo_secret": …}`).
    fn shown(&self, config: &str, value: &confo::Configuration) -> PyResult<Option<confo::Configuration>> {
        if !confo::secrets::has_sealed(value) {
            return Ok(None);
        }
        let Some(keyring) = self.keyring()? else { return Ok(None) };
        let namespace = self.inner.current_namespace().map_err(raise)?;
        confo::secrets::reveal(value, &namespace, config, keyring).map(Some).map_err(raise)
    }
}

#[pymethods]
impl Manager {
    #[new]
    fn new() -> PyResult<Self> {
        let inner = Confo::new().map_err(raise)?;
        inner.set_author(confo::history::Author::current("python"));
        Ok(Manager { inner, converted: Default::default(), keyring: std::sync::OnceLock::new() })
    }

    /// Loads a backend from a credentials dictionary (as JSON) for a kind ("file", "redis", …),
    /// replacing one loaded under that name, as confo did. Keys the backend does not know are
    /// left out, as confo ignored them: returns them, for the caller to log.
    fn load_backend(&self, py: Python<'_>, name: &str, kind: &str, credentials_json: &str) -> PyResult<Vec<String>> {
        let credentials = from_json(credentials_json)?;
        let (spec, ignored) =
            confo::BackendSpec::from_credentials_lenient(backend_kind(kind)?, &credentials).map_err(raise)?;
        py.detach(|| self.inner.replace_backend(name, &spec)).map_err(raise)?;
        Ok(ignored)
    }

    /// Puts a backend written in Python (an object with confo's backend methods, credentials
    /// already loaded) under `name`, replacing one loaded there.
    fn load_backend_object(&self, py: Python<'_>, name: &str, object: Py<PyAny>, describe: String) -> PyResult<()> {
        let backend = std::sync::Arc::new(pybackend::PyBackend::new(object, describe));
        py.detach(|| self.inner.replace_backend_with(name, backend)).map_err(raise)
    }

    /// Loads a backend from a spec string (`redis://…`, `file:…`).
    fn load_backend_spec(&self, py: Python<'_>, name: &str, spec: &str) -> PyResult<()> {
        let spec: confo::BackendSpec = spec.parse().map_err(raise)?;
        py.detach(|| self.inner.load_backend(name, &spec)).map_err(raise)
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
        py.detach(|| self.inner.load_backend_from(name, kind, source, namespace, config)).map_err(raise)
    }

    /// (all backend names, the active one).
    fn backends(&self) -> (Vec<String>, Option<String>) {
        let info = self.inner.backends();
        (info.all, info.active)
    }

    fn activate_backend(&self, name: &str) -> PyResult<()> {
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

    fn use_namespace(&self, py: Python<'_>, namespace: &str) -> PyResult<()> {
        py.detach(|| self.inner.use_namespace(namespace)).map_err(raise)
    }

    fn reload(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.inner.reload()).map_err(raise)
    }

    /// Every configuration of the current namespace, as a new dict of new dicts.
    fn get_all<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let all = self.inner.get_all_content().map_err(raise)?;
        let dict = PyDict::new(py);
        let mut keys = convert::Keys::default();
        for (name, content) in &all {
            let converted = match content {
                // Cached and without secrets (the common case): read in place.
                confo::Content::Stored(compact) if !compact.has_sealed() => keys.compact(py, compact)?,
                _ => {
                    let value = content.to_configuration();
                    match self.shown(name, &value)? {
                        Some(revealed) => keys.configuration(py, &revealed)?,
                        None => keys.configuration(py, &value)?,
                    }
                }
            };
            dict.set_item(name, converted)?;
        }
        Ok(dict)
    }

    /// One configuration as a new dict, or None.
    fn get<'py>(&self, py: Python<'py>, config: &str) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(content) = self.inner.get_content(config).map_err(raise)? else { return Ok(None) };
        // (The lock is never held while Python code runs: another thread could take the GIL
        // and wait for it.) A memo is only ever made of content without secrets to open (the
        // keyring is read once), so it is looked at first.
        let memo = {
            let converted = self.converted.lock().unwrap_or_else(|p| p.into_inner());
            converted.get(config).filter(|(made_from, _)| made_from.same(&content)).map(|(_, dict)| dict.clone_ref(py))
        };
        if let Some(dict) = memo {
            return convert::fresh_copy(dict.bind(py)).map(Some);
        }
        let dict = match &content {
            confo::Content::Stored(compact) if !compact.has_sealed() => convert::Keys::single().compact(py, compact)?,
            _ => {
                let value = content.to_configuration();
                if let Some(revealed) = self.shown(config, &value)? {
                    // (Opened secrets are never kept.)
                    return convert::configuration(py, &revealed).map(Some);
                }
                convert::configuration(py, &value)?
            }
        };
        let copy = convert::fresh_copy(&dict)?;
        let mut converted = self.converted.lock().unwrap_or_else(|p| p.into_inner());
        if converted.len() >= CONVERTED_MAX {
            converted.clear();
        }
        converted.insert(config.to_owned(), (content, dict.unbind()));
        Ok(Some(copy))
    }

    /// Sets a field to a secret, sealed with the keyring's primary key (SecretException
    /// without a keyring).
    fn set_secret(&self, config: &str, field: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let value = convert::from_py(value)?;
        let keyring = self.keyring()?.ok_or_else(|| {
            NativeError::new_err((
                "secret".to_owned(),
                "no keyring: make a key with `confo keys new` (in $CONFO_KEYS, else ~/.config/confo/keys.toml)"
                    .to_owned(),
            ))
        })?;
        self.inner.set_secret(config, field, value, keyring).map_err(raise)
    }

    /// One field as a new Python value, or None.
    fn get_field<'py>(&self, py: Python<'py>, config: &str, field: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(value) = self.inner.get_field(config, field).map_err(raise)? else { return Ok(None) };
        if confo::secrets::is_sealed(&value) {
            if let Some(keyring) = self.keyring()? {
                let namespace = self.inner.current_namespace().map_err(raise)?;
                let pointer = confo::secrets::pointer(field);
                let place = confo::secrets::Place { namespace: &namespace, configuration: config, pointer: &pointer };
                return convert::to_py(py, &keyring.open(&place, &value).map_err(raise)?).map(Some);
            }
        }
        convert::to_py(py, &value).map(Some)
    }

    /// The stored (unedited) configuration, or None.
    fn stored<'py>(&self, py: Python<'py>, config: &str) -> PyResult<Option<Bound<'py, PyDict>>> {
        self.inner.stored(config).map_err(raise)?.map(|c| convert::configuration(py, &c)).transpose()
    }

    fn count(&self) -> PyResult<usize> {
        self.inner.count().map_err(raise)
    }

    /// Sets a field to a Python value (ValueError for NaN, TypeError for what JSON cannot hold).
    fn set(&self, config: &str, field: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.set(config, field, convert::from_py(value)?).map_err(raise)
    }

    /// Replaces a configuration with a dict.
    fn replace(&self, config: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        match convert::from_py(value)? {
            serde_json::Value::Object(map) => self.inner.replace(config, map).map_err(raise),
            _ => Err(NativeError::new_err(("invalid_value".to_owned(), "a configuration must be a dict".to_owned()))),
        }
    }

    fn remove_field(&self, config: &str, field: &str) -> PyResult<()> {
        self.inner.remove_field(config, field).map_err(raise)
    }

    fn remove(&self, config: &str) -> PyResult<()> {
        self.inner.remove(config).map_err(raise)
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
        py.detach(|| self.inner.persist_with(scope, force)).map(ids).map_err(raise)
    }

    fn discard(&self) -> PyResult<()> {
        self.inner.discard().map_err(raise)
    }

    fn staged(&self) -> PyResult<Vec<String>> {
        self.inner.staged().map(ids).map_err(raise)
    }

    fn stale_edits(&self) -> PyResult<Vec<String>> {
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
                    "time": confo::history::format_time(r.time),
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
                    "taken": confo::history::format_time(info.taken),
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

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    confo::manager::set_after_load_freed(give_back_freed_memory);
    m.add_class::<Manager>()?;
    m.add_class::<Watch>()?;
    m.add("NativeError", m.py().get_type::<NativeError>())?;
    Ok(())
}
