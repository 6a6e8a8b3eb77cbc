//! What `get` hands out: the session's own objects, as confo 0.1.6.2 handed out its own.
//!
//! Each configuration read through `get`, `get_all` or `get(name, field)` is converted to a
//! `dict` once per stored version and kept; every later read returns that same `dict`. A change
//! made in place (`d = get("db"); d["port"] = 1`) is therefore seen by later reads and written
//! by the next `persist`, exactly as in confo: before anything that reads, writes or leaves the
//! staged edits (`persist`, `reload`, `use_namespace`, `staged`, switching or reloading a
//! backend), the dicts changed in place are staged ([`Manager::stage_changed`]).
//!
//! A kept dict whose configuration changed underneath (the store was re-read, another edit was
//! staged) is brought up to date in place, so references held elsewhere keep seeing the
//! session's value. If it was also changed in place meanwhile, the caller's change wins in the
//! session and is staged on the version it was made from: persisting it is a conflict, not a
//! silent overwrite of the other writer's change.
//!
//! Secrets: a dict shows them opened when the keyring is at hand. A change staged from a dict
//! goes through [`confo::secrets::keep_sealed`]: an opened secret left as it was is written
//! back sealed as it was, a new plain value where a secret is is sealed again, and without a
//! keyring that is refused; plaintext is never staged.
//!
//! No lock is held while Python code runs (a dict's comparison or a value's `__del__` can run
//! any Python and let another thread take the GIL).

use std::collections::HashMap;
use std::sync::Arc;

use confo::model::version::Configuration;
use confo::{Based, Content, Place, Version};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::{convert, raise, Manager};

/// One configuration handed out: the content its dict shows, the version that content stands
/// on, and the dict.
pub(crate) struct Handed {
    base: Content,
    version: Option<Version>,
    dict: Py<PyDict>,
}

/// The dicts handed out, by backend, namespace and configuration (looked up by `&str`: the
/// common read allocates nothing).
#[derive(Default)]
pub(crate) struct HandedOut {
    by_backend: HashMap<String, HashMap<String, HashMap<String, Handed>>>,
}

impl HandedOut {
    fn get(&self, backend: &str, namespace: &str, config: &str) -> Option<&Handed> {
        self.by_backend.get(backend)?.get(namespace)?.get(config)
    }

    fn get_mut(&mut self, backend: &str, namespace: &str, config: &str) -> Option<&mut Handed> {
        self.by_backend.get_mut(backend)?.get_mut(namespace)?.get_mut(config)
    }

    fn insert(&mut self, place: &Place, config: &str, handed: Handed) -> Option<Handed> {
        if let Some(kept) = self.get_mut(&place.backend, &place.namespace, config) {
            return Some(std::mem::replace(kept, handed));
        }
        let namespaces = self.by_backend.entry(place.backend.clone()).or_default();
        namespaces.entry(place.namespace.clone()).or_default().insert(config.to_owned(), handed)
    }

    fn remove(&mut self, place: &Place, config: &str) -> Option<Handed> {
        self.by_backend.get_mut(&place.backend)?.get_mut(&place.namespace)?.remove(config)
    }
}

/// What a read found, looked at under the core's lock.
pub(crate) enum Found {
    /// No such configuration.
    Missing,
    /// The dict handed out shows it still.
    Same(Py<PyDict>),
    /// Never handed out, or changed since.
    Other(Place, Based),
}

/// A content standing for none, while a kept entry's own is let go of (see
/// [`Manager::edit_handed`]): the same as no real content.
fn placeholder() -> Content {
    static EMPTY: std::sync::LazyLock<Arc<Configuration>> = std::sync::LazyLock::new(Default::default);
    Content::Staged(EMPTY.clone())
}

impl Manager {
    fn handed(&self) -> confo::fork::MutexGuard<'_, HandedOut> {
        self.handed.lock()
    }

    /// A configuration of the current namespace as [`Found`]: the handed-out dict when it is
    /// current (the common read: one look under each lock, nothing allocated).
    pub(crate) fn find(&self, py: Python<'_>, config: &str) -> PyResult<Found> {
        self.inner
            .with_placed(config, |backend, namespace, found| match found {
                None => Found::Missing,
                Some(found) => match self.handed().get(backend, namespace, config) {
                    Some(kept) if kept.base.same(&found.content) => Found::Same(kept.dict.clone_ref(py)),
                    _ => Found::Other(Place { backend: backend.to_owned(), namespace: namespace.to_owned() }, found),
                },
            })
            .map_err(raise)
    }

    /// The dict kept for a configuration, with what it was made from.
    fn kept(&self, py: Python<'_>, place: &Place, config: &str) -> Option<(Content, Option<Version>, Py<PyDict>)> {
        let handed = self.handed();
        let kept = handed.get(&place.backend, &place.namespace, config)?;
        Some((kept.base.clone(), kept.version.clone(), kept.dict.clone_ref(py)))
    }

    /// Keeps `dict` as the one handed out for a configuration.
    fn keep(&self, place: &Place, config: &str, base: Content, version: Option<Version>, dict: Py<PyDict>) {
        let replaced = self.handed().insert(place, config, Handed { base, version, dict });
        // (Dropped with the lock released: the old dict's values may run Python code.)
        drop(replaced);
    }

    /// Forgets the dict of one configuration (it was replaced by another object or removed).
    pub(crate) fn forget(&self, place: &Place, config: &str) {
        let removed = self.handed().remove(place, config);
        drop(removed);
    }

    /// Forgets every dict handed out from one backend (`None`: from every backend).
    pub(crate) fn forget_backend(&self, backend: Option<&str>) {
        let removed: Vec<_> = {
            let mut handed = self.handed();
            match backend {
                Some(backend) => handed.by_backend.remove(backend).into_iter().collect(),
                None => handed.by_backend.drain().map(|(_, namespaces)| namespaces).collect(),
            }
        };
        drop(removed);
    }

    /// A configuration as Python shows it: secrets opened when the keyring is at hand.
    fn shown_value(&self, place: &Place, config: &str, content: &Content) -> PyResult<Arc<Configuration>> {
        let value = content.to_configuration();
        if !confo::model::sealed::has_sealed(&value) {
            return Ok(value);
        }
        match self.keyring()? {
            Some(keyring) => {
                confo::secrets::reveal(&value, &place.namespace, config, keyring).map(Arc::new).map_err(raise)
            }
            None => Ok(value),
        }
    }

    /// A new dict showing `content`.
    fn make<'py>(
        &self,
        py: Python<'py>,
        keys: &mut convert::Keys<'py>,
        place: &Place,
        config: &str,
        content: &Content,
    ) -> PyResult<Bound<'py, PyDict>> {
        match content {
            // Cached and without secrets (the common case): read in place.
            Content::Stored(compact) if !compact.has_sealed() => keys.compact(py, compact),
            _ => keys.configuration(py, &*self.shown_value(place, config, content)?),
        }
    }

    /// The dict for a configuration of `place` whose effective content is `content` (on
    /// `version`): the one handed out before, brought up to date if the content changed, else a
    /// new one, kept.
    pub(crate) fn hand_out<'py>(
        &self,
        py: Python<'py>,
        keys: &mut convert::Keys<'py>,
        place: &Place,
        config: &str,
        content: Content,
        version: Option<Version>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let Some((base, made_on, dict)) = self.kept(py, place, config) else {
            let dict = self.make(py, keys, place, config, &content)?;
            self.keep(place, config, content, version, dict.clone().unbind());
            return Ok(dict);
        };
        let dict = dict.into_bound(py);
        if !base.same(&content) {
            self.reconcile(py, keys, place, config, (base, made_on), (content, version), &dict, false)?;
        }
        Ok(dict)
    }

    /// Brings a kept dict (made from `kept`, a content and its version) in line with the
    /// configuration's effective content now (`current`), and stages its changes in place:
    ///
    /// - the same value under a new identity (this session's own write landed, or a re-read
    ///   found nothing new): the dict now stands on `current`;
    /// - another value (a change underneath): a dict not changed in place shows it, in place; one
    ///   changed in place keeps the caller's change, staged on the version it was made from
    ///   (persisting it is a conflict);
    /// - with `check`, a dict changed in place over an unchanged content is staged too.
    #[allow(clippy::too_many_arguments)]
    fn reconcile<'py>(
        &self,
        py: Python<'py>,
        keys: &mut convert::Keys<'py>,
        place: &Place,
        config: &str,
        kept: (Content, Option<Version>),
        current: (Content, Option<Version>),
        dict: &Bound<'py, PyDict>,
        check: bool,
    ) -> PyResult<()> {
        let (mut base, mut made_on) = kept;
        let (content, version) = current;
        let mut was = self.shown_value(place, config, &base)?;
        if !base.same(&content) {
            let shown = self.shown_value(place, config, &content)?;
            if unchanged(&shown, &was) {
                (base, made_on, was) = (content, version, shown);
            } else {
                let now = as_configuration(dict)?;
                if unchanged(&now, &was) {
                    // Not changed in place: it shows the new content, and stays the same object.
                    if !unchanged(&now, &shown) {
                        let fresh = self.make(py, keys, place, config, &content)?;
                        dict.clear();
                        dict.update(fresh.as_mapping())?;
                    }
                    self.keep(place, config, content, version, dict.clone().unbind());
                } else {
                    let staged = self.stage(place, config, &now, &base, made_on.clone())?;
                    self.keep(place, config, staged, made_on, dict.clone().unbind());
                }
                return Ok(());
            }
        }
        if check {
            let now = as_configuration(dict)?;
            if !unchanged(&now, &was) {
                base = self.stage(place, config, &now, &base, made_on.clone())?;
            }
        }
        self.keep(place, config, base, made_on, dict.clone().unbind());
        Ok(())
    }

    /// Stages `now` (a dict's value) over `base` (what the dict was made from, on `version`),
    /// secrets kept sealed; returns the staged content.
    fn stage(
        &self,
        place: &Place,
        config: &str,
        now: &Configuration,
        base: &Content,
        version: Option<Version>,
    ) -> PyResult<Content> {
        let stored = base.to_configuration();
        let keyring = if confo::model::sealed::has_sealed(&stored) { self.keyring()? } else { None };
        let value = confo::secrets::keep_sealed(now, &stored, &place.namespace, config, keyring).map_err(raise)?;
        let value = Arc::new(value);
        self.inner.replace_on(place, config, (*value).clone(), version).map_err(raise)?;
        Ok(Content::Staged(value))
    }

    /// Stages every dict of the active backend changed in place since it was handed out (or
    /// last staged): what `persist`, `reload`, `use_namespace`, `staged` and switching backends
    /// see first.
    pub(crate) fn stage_changed(&self, py: Python<'_>) -> PyResult<()> {
        let Some(active) = self.inner.backends().active else { return Ok(()) };
        /// A kept dict, taken out of the lock.
        struct Kept {
            place: Place,
            config: String,
            base: Content,
            version: Option<Version>,
            dict: Py<PyDict>,
        }
        let kept: Vec<Kept> = {
            let handed = self.handed();
            let Some(namespaces) = handed.by_backend.get(&active) else { return Ok(()) };
            namespaces
                .iter()
                .flat_map(|(namespace, configs)| {
                    let place = Place { backend: active.clone(), namespace: namespace.clone() };
                    configs.iter().map(move |(config, h)| Kept {
                        place: place.clone(),
                        config: config.clone(),
                        base: h.base.clone(),
                        version: h.version.clone(),
                        dict: h.dict.clone_ref(py),
                    })
                })
                .collect()
        };
        let mut keys = convert::Keys::single();
        for Kept { place, config, base, version, dict } in kept {
            // What the configuration is now, when it is of the current namespace (a kept dict
            // of another one is compared with what it was made from).
            let current = match self.inner.get_placed(&config) {
                Ok((now, Some(found))) if now == place => (found.content, found.base),
                Ok((now, None)) if now == place => {
                    // Removed underneath: a dict changed in place since is staged on the version
                    // it was made from (a conflict to persist); else it is not the session's.
                    let now = as_configuration(dict.bind(py))?;
                    if unchanged(&now, &*self.shown_value(&place, &config, &base)?) {
                        self.forget(&place, &config);
                    } else {
                        let staged = self.stage(&place, &config, &now, &base, version.clone())?;
                        self.keep(&place, &config, staged, version, dict);
                    }
                    continue;
                }
                _ => (base.clone(), version.clone()),
            };
            self.reconcile(py, &mut keys, &place, &config, (base, version), current, dict.bind(py), true)?;
        }
        Ok(())
    }

    /// After an edit through the API (`set`, `remove_field`, …) of a configuration whose dict
    /// was handed out: applies `change` to that dict (brought up to date first) and records the
    /// new content it shows. Nothing happens for a configuration never handed out.
    pub(crate) fn edit_handed(
        &self,
        py: Python<'_>,
        config: &str,
        edit: impl FnOnce() -> PyResult<()>,
        change: impl FnOnce(&Bound<'_, PyDict>) -> PyResult<()>,
    ) -> PyResult<()> {
        /// What the edit is made over.
        enum Before {
            Missing,
            NotHandedOut,
            /// Current: its content, let go of by the kept entry (dropped before the edit).
            Released(Content),
            Stale(Place, Based),
        }
        // The kept entry lets go of its content while the edit is made: a staged configuration
        // nothing else holds is then changed in place by the core (no copy of it per `set`).
        let before = self
            .inner
            .with_placed(config, |backend, namespace, found| {
                let mut handed = self.handed();
                match (found, handed.get_mut(backend, namespace, config)) {
                    (None, _) => Before::Missing,
                    (Some(_), None) => Before::NotHandedOut,
                    (Some(found), Some(kept)) if kept.base.same(&found.content) => {
                        Before::Released(std::mem::replace(&mut kept.base, placeholder()))
                    }
                    (Some(found), Some(_)) => {
                        Before::Stale(Place { backend: backend.to_owned(), namespace: namespace.to_owned() }, found)
                    }
                }
            })
            .map_err(raise)?;
        match before {
            // Handed out once and removed since, or never: nothing to follow.
            Before::Missing | Before::NotHandedOut => return edit(),
            Before::Released(content) => drop(content),
            Before::Stale(place, found) => {
                self.hand_out(py, &mut convert::Keys::single(), &place, config, found.content, found.base)?;
                let released = self
                    .handed()
                    .get_mut(&place.backend, &place.namespace, config)
                    .map(|kept| std::mem::replace(&mut kept.base, placeholder()));
                drop(released);
            }
        }
        let edited = edit();
        let after = self
            .inner
            .with_placed(config, |backend, namespace, found| {
                let mut handed = self.handed();
                match found {
                    Some(found) => {
                        let kept = handed.get_mut(backend, namespace, config)?;
                        kept.base = found.content;
                        Some(Ok(kept.dict.clone_ref(py)))
                    }
                    // Gone: the entry is taken out, and dropped once the locks are let go.
                    None => {
                        let place = Place { backend: backend.to_owned(), namespace: namespace.to_owned() };
                        handed.remove(&place, config).map(Err)
                    }
                }
            })
            .map_err(raise)?;
        match after {
            Some(Ok(dict)) if edited.is_ok() => change(dict.bind(py))?,
            Some(Ok(_)) | None => {}
            Some(Err(removed)) => drop(removed),
        }
        edited
    }

    /// After `replace(config, value)`: the caller's `dict` itself becomes the configuration's
    /// object, as in confo (`set(name, a_dict)`); another mapping is converted at the next read.
    pub(crate) fn adopt(&self, config: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let (place, found) = self.inner.get_placed(config).map_err(raise)?;
        match (value.cast::<PyDict>(), found) {
            (Ok(dict), Some(found)) => {
                self.keep(&place, config, found.content, found.base, dict.clone().unbind());
            }
            _ => self.forget(&place, config),
        }
        Ok(())
    }

    /// After `remove(config)`.
    pub(crate) fn removed(&self, config: &str) -> PyResult<()> {
        let (place, _) = self.inner.get_placed(config).map_err(raise)?;
        self.forget(&place, config);
        Ok(())
    }
}

/// A dict's value as a configuration (`TypeError`/`ValueError` for what JSON cannot hold, as
/// confo's `json.dump` raised them at `persist`).
fn as_configuration(dict: &Bound<'_, PyDict>) -> PyResult<Configuration> {
    match convert::from_py(dict.as_any())? {
        serde_json::Value::Object(map) => Ok(map),
        _ => Err(PyTypeError::new_err("a configuration must be a dict")),
    }
}

/// Whether a dict's value is still what it was made from (see [`convert::unchanged`]).
fn unchanged(now: &Configuration, was: &Configuration) -> bool {
    now.len() == was.len()
        && now.iter().all(|(key, value)| was.get(key).is_some_and(|old| convert::unchanged(value, old)))
}
