//! One change subscription per backend, shared by every watcher of it.
//!
//! A [`Watcher`](crate::watch::Watcher) subscribes to its backend's notifications when it
//! starts, and a subscription is not free: the file engine's is an inotify instance over the
//! whole store (Linux allows 128 per user by default), Redis's a pub/sub connection, etcd's a
//! watch stream. A process that watches many namespaces of one store (`confo serve` runs one
//! watcher per namespace it serves) wraps the backend in a [`SharedSubscription`]: the first
//! subscription is made once and fanned out to every subscriber; everything else is forwarded
//! unchanged ([`Layered`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{broadcast, mpsc, Mutex};

use super::layer::Layered;
use super::{Backend, Hint, Hints};
use crate::model::error::Result;

/// How many hints a slow subscriber may fall behind before it is told to re-read everything.
const BACKLOG: usize = 4096;

/// A backend whose change subscription is made once and shared by its subscribers.
#[derive(Debug)]
pub struct SharedSubscription {
    inner: Arc<dyn Backend>,
    hub: Mutex<Option<(broadcast::Sender<Hint>, Arc<AtomicBool>)>>,
}

impl SharedSubscription {
    /// `inner`, its subscription shared.
    pub fn wrap(inner: Arc<dyn Backend>) -> Arc<dyn Backend> {
        Arc::new(SharedSubscription { inner, hub: Mutex::new(None) })
    }
}

#[async_trait]
impl Layered for SharedSubscription {
    fn inner_now(&self) -> Option<Arc<dyn Backend>> {
        Some(self.inner.clone())
    }

    async fn subscribe(&self) -> Result<Option<Hints>> {
        let mut hub = self.hub.lock().await;
        let running = hub.as_ref().filter(|(_, alive)| alive.load(Ordering::SeqCst)).map(|(tx, _)| tx.clone());
        let sender = match running {
            Some(sender) => sender,
            None => {
                let Some(mut upstream) = self.inner.subscribe().await? else { return Ok(None) };
                let (sender, _) = broadcast::channel(BACKLOG);
                let alive = Arc::new(AtomicBool::new(true));
                let (forward, flag) = (sender.clone(), alive.clone());
                tokio::spawn(async move {
                    while let Some(hint) = upstream.recv().await {
                        let _ = forward.send(hint);
                    }
                    flag.store(false, Ordering::SeqCst);
                });
                *hub = Some((sender.clone(), alive));
                sender
            }
        };
        let mut from = sender.subscribe();
        drop(hub);
        let (out, hints) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let hint = tokio::select! {
                    received = from.recv() => match received {
                        Ok(hint) => hint,
                        // Fell behind: some hints were lost, so everything may have changed.
                        Err(broadcast::error::RecvError::Lagged(_)) => Hint::All,
                        Err(broadcast::error::RecvError::Closed) => break,
                    },
                    () = out.closed() => break,
                };
                if out.send(hint).is_err() {
                    break;
                }
            }
        });
        Ok(Some(hints))
    }
}
