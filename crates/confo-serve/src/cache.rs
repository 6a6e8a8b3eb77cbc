//! The watched cache of one backend, and its change events.
//!
//! Each namespace read through the server gets a [`confo::Watcher`]. While the watcher runs,
//! point reads are kept (configuration → what the store returned, absence included), and every
//! event the watcher reports drops what it touches, so a cached read is never older than the
//! backend's own notification. A read that raced with an event is not kept (a generation
//! number per namespace), and the server's own writes drop their entry at once, so a client
//! reads its own writes. When the watcher cannot start or ends (the namespace is missing, the
//! store is down for longer than the watcher waits), nothing of that namespace is cached and
//! reads go to the store until a later read starts a new watcher.
//!
//! The same watcher feeds the namespace's server-sent events: each event gets an id
//! `<epoch>-<n>` (its SSE `id`: the epoch is new in each server process, so an id is never
//! reused across a restart), and the last [`REPLAYED`] are kept, so a client that reconnects
//! with `Last-Event-ID` receives what it missed, or a `resync` event if that is no longer kept
//! or the id is not one this process gave.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use confo::model::version::Stored;
use confo::{Result, Store, WatchOptions};
use tokio::sync::broadcast;

/// Namespaces kept track of before those not watched are forgotten.
const MAX_SPACES: usize = 10_000;

/// How many events per namespace are kept for clients that reconnect.
pub const REPLAYED: usize = 1024;

/// The ids of one server process's events: `<epoch>-<n>`, `n` counting from 1 across every
/// namespace, the epoch random per process.
#[derive(Debug)]
pub struct EventIds {
    epoch: String,
    next: AtomicU64,
}

impl EventIds {
    /// A new epoch.
    pub fn new() -> EventIds {
        let epoch = match crate::auth::random::<8>() {
            Ok(bytes) => bytes.iter().map(|b| format!("{b:02x}")).collect(),
            // (No random source: the start time, to the nanosecond, is as good here.)
            Err(_) => format!(
                "{:x}",
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
            ),
        };
        EventIds { epoch, next: AtomicU64::new(1) }
    }

    fn take(&self) -> u64 {
        self.next.fetch_add(1, Ordering::SeqCst)
    }

    fn peek(&self) -> u64 {
        self.next.load(Ordering::SeqCst)
    }

    /// The SSE id of event `n`.
    pub fn format(&self, n: u64) -> String {
        format!("{}-{n}", self.epoch)
    }

    /// The number of an id this process gave (`None`: another process's, or not an id).
    pub fn parse(&self, id: &str) -> Option<u64> {
        let (epoch, n) = id.trim().rsplit_once('-')?;
        (epoch == self.epoch).then(|| n.parse().ok()).flatten()
    }
}

impl Default for EventIds {
    fn default() -> Self {
        EventIds::new()
    }
}

/// One event as sent: its number and its JSON (secrets masked).
#[derive(Debug)]
pub struct Sent {
    /// Its number (its SSE id is `<epoch>-<number>`).
    pub id: u64,
    /// The event's kind (`changed`, …), the SSE `event` field.
    pub kind: &'static str,
    /// The event as JSON text.
    pub json: String,
}

/// What a subscriber resuming from a `Last-Event-ID` gets first.
#[derive(Debug)]
pub enum Replay {
    /// The events it missed (none for a new subscriber).
    Events(Vec<Arc<Sent>>),
    /// Some it missed are no longer kept: it should read the namespace again.
    Resync,
}

/// The cache and events of one backend.
#[derive(Debug)]
pub struct Cache {
    store: Store,
    options: WatchOptions,
    spaces: Mutex<HashMap<String, Arc<Space>>>,
    ids: Arc<EventIds>,
}

/// One namespace's cached reads and events.
#[derive(Debug)]
pub struct Space {
    entries: Mutex<HashMap<String, Option<Stored>>>,
    generation: AtomicU64,
    /// Whether its watcher runs (only then are reads kept).
    live: AtomicBool,
    /// When a watcher was last started (not more than once a second).
    started: Mutex<Option<Instant>>,
    /// Held while a watcher starts: requests that come meanwhile wait for it.
    starting: tokio::sync::Mutex<()>,
    /// The first id this watcher gave (resuming from before it means a resync).
    first_id: AtomicU64,
    recent: Mutex<VecDeque<Arc<Sent>>>,
    /// The current watcher's events; replaced when it ends, which ends every stream of it (a
    /// stream is never left open and silent: its client reconnects, and is told whether the
    /// namespace can be followed again).
    events: Mutex<broadcast::Sender<Arc<Sent>>>,
}

impl Space {
    fn new() -> Space {
        Space {
            entries: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            live: AtomicBool::new(false),
            started: Mutex::new(None),
            starting: tokio::sync::Mutex::new(()),
            first_id: AtomicU64::new(u64::MAX),
            recent: Mutex::new(VecDeque::new()),
            events: Mutex::new(broadcast::channel(REPLAYED).0),
        }
    }

    /// Whether its watcher runs (its events are being reported).
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::SeqCst)
    }

    fn forget(&self, configuration: Option<&str>) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match configuration {
            Some(name) => {
                entries.remove(name);
            }
            None => entries.clear(),
        }
    }

    /// Subscribes to new events, with the kept ones after `last` (a `Last-Event-ID`: `None`
    /// for none, `Some(None)` for one this process did not give), or [`Replay::Resync`] if some
    /// of those are no longer kept or cannot be known.
    pub fn subscribe(&self, last: Option<Option<u64>>) -> (broadcast::Receiver<Arc<Sent>>, Replay) {
        // Under the lock that `publish` holds while sending: nothing falls between the replay
        // and the subscription.
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let receiver = self.events.lock().unwrap_or_else(|e| e.into_inner()).subscribe();
        let replay = match last {
            None => Replay::Events(Vec::new()),
            Some(None) => Replay::Resync,
            Some(Some(last)) => {
                // Everything after `last` is kept if this watcher gave it and none was dropped
                // (an id this process never gave, from its future, cannot be vouched for).
                let next = last.saturating_add(1);
                let since_start = next >= self.first_id.load(Ordering::SeqCst);
                let given = recent.back().is_none_or(|s| last <= s.id);
                let none_dropped = recent.len() < REPLAYED || recent.front().is_some_and(|s| s.id <= next);
                if since_start && given && none_dropped {
                    Replay::Events(recent.iter().filter(|s| s.id > last).cloned().collect())
                } else {
                    Replay::Resync
                }
            }
        };
        (receiver, replay)
    }

    fn publish(&self, sent: Sent) {
        let sent = Arc::new(sent);
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() == REPLAYED {
            recent.pop_front();
        }
        recent.push_back(sent.clone());
        let _ = self.events.lock().unwrap_or_else(|e| e.into_inner()).send(sent);
    }
}

impl Cache {
    /// A cache over `store`, its watchers made with `options`.
    pub fn new(store: Store, options: WatchOptions, ids: Arc<EventIds>) -> Cache {
        Cache { store, options, spaces: Mutex::new(HashMap::new()), ids }
    }

    /// The ids of this process's events.
    pub fn ids(&self) -> &EventIds {
        &self.ids
    }

    /// The same, to keep (a stream outlives the request).
    pub fn ids_handle(&self) -> Arc<EventIds> {
        self.ids.clone()
    }

    /// The namespace's cache and events, starting its watcher if none runs. Waits for the
    /// watcher to start (one bulk read) only the first time; requests that come while it
    /// starts wait for it too.
    pub async fn space(&self, namespace: &str) -> Arc<Space> {
        let space = {
            let mut spaces = self.spaces.lock().unwrap_or_else(|e| e.into_inner());
            if spaces.len() >= MAX_SPACES && !spaces.contains_key(namespace) {
                // Names asked for that are not watched (a namespace that does not exist, or
                // a client trying many names) are forgotten rather than kept without bound.
                spaces.retain(|_, s| {
                    s.live.load(Ordering::SeqCst)
                        || s.events.lock().unwrap_or_else(|e| e.into_inner()).receiver_count() > 0
                });
            }
            spaces.entry(namespace.to_owned()).or_insert_with(|| Arc::new(Space::new())).clone()
        };
        if !space.live.load(Ordering::SeqCst) {
            self.start(namespace, &space).await;
        }
        space
    }

    async fn start(&self, namespace: &str, space: &Arc<Space>) {
        let _one = space.starting.lock().await;
        if space.live.load(Ordering::SeqCst) {
            // Started by the request this one waited for.
            return;
        }
        {
            let mut started = space.started.lock().unwrap_or_else(|e| e.into_inner());
            if started.is_some_and(|at| at.elapsed() < Duration::from_secs(1)) {
                return;
            }
            *started = Some(Instant::now());
        }
        let mut watcher = match self.store.watch(namespace, None, self.options).await {
            Ok(watcher) => watcher,
            Err(e) => {
                tracing::debug!(namespace, error = %e, "no watcher: reads go to the store");
                return;
            }
        };
        space.first_id.store(self.ids.peek(), Ordering::SeqCst);
        space.forget(None);
        space.live.store(true, Ordering::SeqCst);
        let (space, ids) = (space.clone(), self.ids.clone());
        tokio::spawn(async move {
            while let Some(event) = watcher.next().await {
                match event {
                    Ok(event) => {
                        let scope = match event.kind {
                            confo::EventKind::NamespaceCreated | confo::EventKind::NamespaceDeleted => None,
                            _ => event.configuration.as_deref(),
                        };
                        space.forget(scope);
                        let mut json = event.to_json();
                        if let Some(serde_json::Value::Object(value)) = json.get("value") {
                            json["value"] = serde_json::Value::Object(confo::secrets::mask(value));
                        }
                        let id = ids.take();
                        json["id"] = serde_json::Value::from(ids.format(id));
                        space.publish(Sent { id, kind: event.kind.as_str(), json: json.to_string() });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "a namespace's watcher ended; its reads go to the store");
                        break;
                    }
                }
            }
            space.live.store(false, Ordering::SeqCst);
            space.forget(None);
            // The streams of this watcher end: their clients reconnect.
            *space.events.lock().unwrap_or_else(|e| e.into_inner()) = broadcast::channel(REPLAYED).0;
            *space.started.lock().unwrap_or_else(|e| e.into_inner()) = None;
        });
    }

    /// One configuration, from the cache when the namespace is watched.
    pub async fn get(&self, namespace: &str, configuration: &str) -> Result<Option<Stored>> {
        let space = self.space(namespace).await;
        let live = space.live.load(Ordering::SeqCst);
        if live {
            let entries = space.entries.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(found) = entries.get(configuration) {
                return Ok(found.clone());
            }
        }
        let generation = space.generation.load(Ordering::SeqCst);
        let read = self.store.get(namespace, configuration).await?;
        // What a snapshot served (the store is down) is not kept: the next read asks again.
        let from_snapshot = read.as_ref().is_some_and(|s| s.from_snapshot.is_some());
        if live && !from_snapshot && space.live.load(Ordering::SeqCst) {
            let mut entries = space.entries.lock().unwrap_or_else(|e| e.into_inner());
            if space.generation.load(Ordering::SeqCst) == generation {
                entries.insert(configuration.to_owned(), read.clone());
            }
        }
        Ok(read)
    }

    /// Drops what the server's own write touched (`None`: the whole namespace).
    pub fn written(&self, namespace: &str, configuration: Option<&str>) {
        let space = self.spaces.lock().unwrap_or_else(|e| e.into_inner()).get(namespace).cloned();
        if let Some(space) = space {
            space.forget(configuration);
            if configuration.is_none() {
                // A namespace created (or deleted) here: its watcher may start at once.
                *space.started.lock().unwrap_or_else(|e| e.into_inner()) = None;
            }
        }
    }
}
