//! A backend written in Python (a subclass of confo's `AbstractBackend`), driven by the Rust
//! core through confo's own methods: `get_namespaces`, `create_namespace`, `use_namespace`,
//! `get_all`, `set`, `persist`, and `delete_namespace` / `delete` when the class has them.
//!
//! What such a backend cannot give, the adapter says plainly: versions are a hash of each
//! configuration's JSON (so conflicts are still detected, by reading before writing, but not
//! atomically), there are no change notifications (watchers poll), and a batch is written
//! change by change.

use std::hash::{Hash, Hasher};

use async_trait::async_trait;
use confo::backend::{ChangeSet, Hints};
use confo::model::change::{Applied, ChangeKind, Precondition, WriteReport};
use confo::model::error::Missing;
use confo::model::name::NamespaceName;
use confo::model::version::{NamespaceData, Stored, Version};
use confo::{Backend, Capabilities, Error, Result};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert;

/// A Python backend object.
pub(crate) struct PyBackend {
    object: Py<PyAny>,
    describe: String,
}

impl std::fmt::Debug for PyBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PyBackend({})", self.describe)
    }
}

impl PyBackend {
    pub(crate) fn new(object: Py<PyAny>, describe: String) -> Self {
        PyBackend { object, describe }
    }

    /// Calls a method of the object with the GIL, off the async runtime's threads; a Python
    /// exception becomes an error naming the backend and the method.
    async fn call<T: Send + 'static>(
        &self,
        method: &'static str,
        f: impl for<'py> FnOnce(&Bound<'py, PyAny>) -> PyResult<T> + Send + 'static,
    ) -> Result<T> {
        let object = Python::attach(|py| self.object.clone_ref(py));
        let describe = self.describe.clone();
        let joined = tokio::task::spawn_blocking(move || Python::attach(|py| f(object.bind(py))))
            .await
            .map_err(|e| Error::Io { location: describe.clone(), source: std::io::Error::other(e.to_string()) });
        match joined {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(Error::InvalidValue {
                location: format!("{} ({method})", self.describe),
                message: Python::attach(|py| e.value(py).to_string()),
            }),
            Err(e) => Err(e),
        }
    }

    async fn namespaces(&self) -> Result<Vec<String>> {
        self.call("get_namespaces", |o| {
            let all = o.call_method0("get_namespaces")?.get_item("all_namespaces")?;
            let mut names: Vec<String> = all.extract()?;
            names.sort();
            Ok(names)
        })
        .await
    }

    async fn read(&self, namespace: &str) -> Result<NamespaceData> {
        if !self.namespaces().await?.iter().any(|n| n == namespace) {
            return Err(Error::NotFound {
                what: Missing::Namespace,
                name: namespace.to_owned(),
                location: self.describe.clone(),
            });
        }
        let ns = namespace.to_owned();
        let all: Vec<(String, serde_json::Value)> = self
            .call("get_all", move |o| {
                o.call_method1("use_namespace", (ns,))?;
                let all = o.call_method0("get_all")?;
                let dict = all.cast::<PyDict>()?;
                let mut out = Vec::with_capacity(dict.len());
                for (name, value) in dict.iter() {
                    out.push((name.extract::<String>()?, convert::from_py(&value)?));
                }
                Ok(out)
            })
            .await?;
        let mut data = NamespaceData::new();
        for (name, value) in all {
            match value {
                serde_json::Value::Object(map) => {
                    let version = version_of(&map);
                    data.insert(name, Stored::new(map, version));
                }
                other => {
                    let corruption = confo::model::error::Corruption {
                        location: format!("{} configuration {namespace}/{name}", self.describe),
                        problem: format!("{} is not a JSON object", other),
                    };
                    data.insert_corrupt(&name, corruption, None);
                }
            }
        }
        Ok(data)
    }
}

/// A configuration's version: a hash of its JSON.
fn version_of(map: &confo::Configuration) -> Version {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(map).unwrap_or_default().hash(&mut hasher);
    Version::number(hasher.finish() as i64)
}

#[async_trait]
impl Backend for PyBackend {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    async fn list_namespaces(&self) -> Result<Vec<String>> {
        self.namespaces().await
    }

    async fn create(&self, namespace: &NamespaceName) -> Result<bool> {
        if self.namespaces().await?.iter().any(|n| n == namespace.as_str()) {
            return Ok(false);
        }
        let ns = namespace.to_string();
        self.call("create_namespace", move |o| o.call_method1("create_namespace", (ns,)).map(drop)).await?;
        Ok(true)
    }

    async fn delete(&self, namespace: &NamespaceName) -> Result<()> {
        self.read(namespace).await?;
        let ns = namespace.to_string();
        self.call("delete_namespace", move |o| o.call_method1("delete_namespace", (ns,)).map(drop)).await
    }

    /// The object's values are Python objects, converted: the namespace is handed over whole.
    async fn scan(
        &self,
        namespace: &NamespaceName,
        sink: std::sync::Arc<dyn confo::model::decode::Sink>,
    ) -> Result<()> {
        sink.loaded(self.read(namespace).await?);
        Ok(())
    }

    async fn load(&self, namespace: &NamespaceName) -> Result<NamespaceData> {
        self.read(namespace).await
    }

    async fn apply(&self, namespace: &NamespaceName, changes: &ChangeSet<'_>) -> WriteReport {
        // Preconditions are checked against what the object holds now, before any write.
        let current = match self.read(namespace).await {
            Ok(data) => data,
            Err(e) => return WriteReport::failed(e),
        };
        for change in changes {
            let have = current.get(&change.name).map(|s| &s.version);
            let holds = match &change.precondition {
                Precondition::Any => true,
                Precondition::Absent => have.is_none(),
                Precondition::Version(want) => have == Some(want),
            };
            if !holds {
                let location = format!("{} configuration {namespace}/{}", self.describe, change.name);
                let id = confo::model::error::ConfigId::new(namespace.as_str(), &change.name);
                return WriteReport::failed(Error::Conflict { location, config: Some(id) });
            }
        }
        let mut report = WriteReport::default();
        for change in changes {
            let (ns, name) = (namespace.to_string(), change.name.clone());
            let result = match &change.kind {
                ChangeKind::Put(value) => {
                    let value = value.clone();
                    self.call("set/persist", move |o| {
                        let py = o.py();
                        o.call_method1("use_namespace", (ns.as_str(),))?;
                        o.call_method1("set", (name.as_str(), convert::configuration(py, &value)?, py.None()))?;
                        o.call_method1("persist", (ns.as_str(), name.as_str()))?;
                        Ok(Some(version_of(&value)))
                    })
                    .await
                }
                ChangeKind::Delete => {
                    self.call("delete/persist", move |o| {
                        o.call_method1("use_namespace", (ns.as_str(),))?;
                        o.call_method1("delete", (name.as_str(),))?;
                        o.call_method1("persist", (ns.as_str(), name.as_str()))?;
                        Ok(None)
                    })
                    .await
                }
            };
            match result {
                Ok(version) => report.applied.push(Applied { name: change.name.clone(), version }),
                Err(e) => {
                    report.error = Some(e);
                    return report;
                }
            }
        }
        report
    }

    async fn subscribe(&self) -> Result<Option<Hints>> {
        Ok(None)
    }
}
