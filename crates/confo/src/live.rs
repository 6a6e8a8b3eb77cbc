//! [`Live<T>`]: one configuration as a typed value that follows the store.
//!
//! ```no_run
//! # async fn demo() -> confo::Result<()> {
//! #[derive(serde::Deserialize)]
//! struct Database { host: String, port: u16 }
//! let store = confo::Store::open(&"redis://127.0.0.1:6379".parse()?).await?;
//! let db = confo::live::Live::<Database>::new(&store, "sales", "database").await?;
//! let now = db.get(); // an Arc<Database>: cheap, and never torn
//! println!("{}:{}", now.host, now.port);
//! # Ok(()) }
//! ```

use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::model::error::{Error, Missing, Result};
use crate::store::Store;
use crate::watch::{EventKind, WatchOptions};

/// A configuration deserialised into a `T`, deserialised again on every change.
///
/// A change that does not deserialise (a field of the wrong type, a deletion) keeps the last
/// good value, logs a warning and is reported by [`Live::last_error`] until a good value comes.
/// The value is handed out as an `Arc<T>` ([`Live::get`], a lock-free read of a
/// `tokio::sync::watch`); [`Live::changed`] waits for the next one. The watch stops when the
/// `Live` is dropped.
#[derive(Debug)]
pub struct Live<T> {
    current: watch::Receiver<Arc<T>>,
    error: Arc<Mutex<Option<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl<T> Drop for Live<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn decode<T: DeserializeOwned>(value: &crate::model::version::Configuration, location: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::Object(value.clone()))
        .map_err(|e| Error::InvalidValue { location: location.to_owned(), message: e.to_string() })
}

impl<T: DeserializeOwned + Send + Sync + 'static> Live<T> {
    /// Follows configuration `config` of `namespace`: [`Error::NotFound`] if it does not
    /// exist, [`Error::InvalidValue`] if it does not deserialise now.
    pub async fn new(store: &Store, namespace: &str, config: &str) -> Result<Self> {
        Self::with_options(store, namespace, config, WatchOptions::default()).await
    }

    /// [`Live::new`] with watch options (resync and poll intervals).
    pub async fn with_options(store: &Store, namespace: &str, config: &str, options: WatchOptions) -> Result<Self> {
        let location = format!("{} configuration {namespace}/{config}", store.backend().describe());
        // Watch first, then read: a change in between is seen twice, never missed.
        let mut watcher = store.watch(namespace, Some(config), options).await?;
        let stored = store
            .get(namespace, config)
            .await?
            .ok_or_else(|| Error::not_found(Missing::Configuration, config, format!("namespace {namespace:?}")))?;
        let (tx, current) = watch::channel(Arc::new(decode::<T>(&stored.value, &location)?));
        let error = Arc::new(Mutex::new(None));
        let report = error.clone();
        let task = tokio::spawn(async move {
            let set_error = |problem: Option<String>| *report.lock().unwrap_or_else(|p| p.into_inner()) = problem;
            while let Some(event) = watcher.next().await {
                let problem = match event {
                    Ok(event) => match (event.kind, event.value) {
                        (EventKind::Created | EventKind::Changed, Some(value)) => {
                            match decode::<T>(&value, &location) {
                                Ok(fresh) => {
                                    set_error(None);
                                    if tx.send(Arc::new(fresh)).is_err() {
                                        return;
                                    }
                                    continue;
                                }
                                Err(e) => e.to_string(),
                            }
                        }
                        (EventKind::Deleted | EventKind::NamespaceDeleted, _) => {
                            format!("{location} was deleted; keeping its last value")
                        }
                        (EventKind::Corrupt, _) => {
                            format!(
                                "{location} cannot be read ({}); keeping its last value",
                                event.problem.unwrap_or_default()
                            )
                        }
                        _ => continue,
                    },
                    Err(e) => e.to_string(),
                };
                tracing::warn!("{problem}");
                set_error(Some(problem));
            }
        });
        Ok(Live { current, error, task })
    }

    /// The current value.
    pub fn get(&self) -> Arc<T> {
        self.current.borrow().clone()
    }

    /// Why the newest change was not taken (it did not deserialise, the configuration was
    /// deleted, the store is unreachable); `None` once a good value came.
    pub fn last_error(&self) -> Option<String> {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits for the next good value and returns it; `None` if the watch ended.
    pub async fn changed(&mut self) -> Option<Arc<T>> {
        self.current.changed().await.ok()?;
        Some(self.current.borrow_and_update().clone())
    }

    /// A receiver of every good value, for `tokio::select!` or to hand to other tasks.
    pub fn subscribe(&self) -> watch::Receiver<Arc<T>> {
        self.current.clone()
    }
}
