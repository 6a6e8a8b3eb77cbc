//! Auto-refresh: a session's cached namespaces kept current from the store's notifications
//! ([`Confo::set_auto_refresh`](super::Confo::set_auto_refresh)).

use std::sync::{Arc, Weak};

use crate::fork::Mutex;

use super::{AbortOnDrop, Snapshot, State, WatchOptions};
use crate::model::error::{Error, Missing, Result};
use crate::store::Store;
use crate::watch::HintSource;

/// Starts the task that re-reads the cached namespaces of backend `backend_name` each time the
/// store says they changed. It stops when the returned guard is dropped or the session is gone.
/// Staged edits stay on top; one whose stored configuration changed is logged (and reported by
/// `stale_edits`).
pub(super) async fn start(
    state: Weak<Mutex<State>>,
    backend_name: String,
    store: Store,
    options: WatchOptions,
) -> Result<AbortOnDrop> {
    let mut source = HintSource::new(store.backend().clone(), options).await?;
    let task = tokio::spawn(async move {
        loop {
            let touched = source.next().await;
            // Which cached namespaces to re-read; stop once the session is gone.
            let wanted: Vec<String> = {
                let Some(state) = state.upgrade() else { return };
                let state = state.lock();
                let Some(slot) = state.backends.get(&backend_name) else { return };
                slot.snapshots.keys().filter(|ns| touched.concerns(ns)).cloned().collect()
            };
            let namespaces = store.namespaces().await.ok();
            for namespace in wanted {
                // Made compact before the lock is taken: readers do not wait for it.
                let fresh = store.load_compact(&namespace).await.map(Snapshot::from);
                let Some(state) = state.upgrade() else { return };
                let mut state = state.lock();
                let Some(slot) = state.backends.get_mut(&backend_name) else { return };
                match fresh {
                    Ok(snapshot) => {
                        let stale = slot
                            .draft
                            .namespace(&namespace)
                            .filter(|(cfg, staged)| staged.base() != snapshot.get(*cfg).map(|s| &s.version));
                        for (cfg, _) in stale {
                            tracing::warn!(namespace = %namespace, configuration = %cfg, "the stored configuration changed under a staged edit");
                        }
                        slot.snapshots.insert(namespace, Arc::new(snapshot));
                    }
                    Err(Error::NotFound { what: Missing::Namespace, .. }) => {
                        slot.snapshots.insert(namespace, Arc::new(Snapshot::default()));
                    }
                    Err(e) => {
                        tracing::debug!(namespace = %namespace, error = %e, "auto-refresh failed; will retry")
                    }
                }
            }
            if let (Some(namespaces), Some(state)) = (namespaces, state.upgrade()) {
                let mut state = state.lock();
                if let Some(slot) = state.backends.get_mut(&backend_name) {
                    slot.namespaces = namespaces;
                }
            }
        }
    });
    Ok(AbortOnDrop(task))
}
