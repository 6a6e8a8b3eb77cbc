//! Live updates: typed [`Event`]s for a namespace, delivered by a [`Watcher`] built from any
//! backend ([`Watcher::new`], [`crate::store::Store::watch`], [`crate::session::Confo::watch`]). A watcher is a
//! [`futures_core::Stream`] of `Result<Event>`.
//!
//! Every backend's notifications are only hints ("namespace X may have changed"); a watcher
//! answers each by re-reading the namespace in one bulk call and comparing versions with what
//! it knew, so it never reports a change that did not happen and never misses one: after a
//! reconnect, a new session or an overflow the backend says "re-read everything", and a
//! periodic re-read ([`WatchOptions::resync_every`]) covers writers that do not notify at all.
//!
//! A failure it cannot recover from ends the stream with that error as its last item: the
//! store refusing access ([`Error::Unauthorized`], [`Error::Insecure`]), or re-reads failing
//! for longer than [`WatchOptions::give_up_after`]. Shorter outages are retried quietly, and
//! the first re-read after one reports everything that changed meanwhile.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::backend::{Backend, Hint, Hints};
use crate::model::error::{Error, ErrorKind, Missing, Result};
use crate::model::version::{Configuration, NamespaceData};
use crate::store::ext::BackendExt;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventKind {
    /// A configuration appeared.
    Created,
    /// A configuration's content changed.
    Changed,
    /// A configuration was deleted.
    Deleted,
    /// The watched namespace appeared (again).
    NamespaceCreated,
    /// The watched namespace was deleted.
    NamespaceDeleted,
    /// An entry became unreadable (or its problem changed): it is not a configuration now.
    /// [`Event::problem`] says what is wrong; the other configurations keep being reported.
    Corrupt,
}

impl EventKind {
    /// `created`, `changed`, `deleted`, `namespace_created`, `namespace_deleted`, `corrupt`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Changed => "changed",
            EventKind::Deleted => "deleted",
            EventKind::NamespaceCreated => "namespace_created",
            EventKind::NamespaceDeleted => "namespace_deleted",
            EventKind::Corrupt => "corrupt",
        }
    }
}

/// A change seen in the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The namespace.
    pub namespace: String,
    /// The configuration, for configuration events.
    pub configuration: Option<String>,
    /// The new content, for `Created` and `Changed`.
    pub value: Option<Arc<Configuration>>,
    /// What is wrong, for `Corrupt` (with the entry's location).
    pub problem: Option<String>,
}

impl Event {
    /// The event as one JSON object: `{"event": "changed", "namespace": …, "configuration": …,
    /// "value": {…}}` (absent members are left out).
    pub fn to_json(&self) -> Value {
        let mut object = json!({"event": self.kind.as_str(), "namespace": self.namespace});
        if let Some(configuration) = &self.configuration {
            object["configuration"] = json!(configuration);
        }
        if let Some(value) = &self.value {
            object["value"] = Value::Object((**value).clone());
        }
        if let Some(problem) = &self.problem {
            object["problem"] = json!(problem);
        }
        object
    }
}

/// How a watcher (or auto-refresh) learns about changes.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct WatchOptions {
    /// Re-read even without a notification this often, to see writers that do not notify
    /// (a raw `SET` in Redis). Default 30 s. Not used on a backend that announces every change
    /// ([`Capabilities::notifies_every_change`](crate::backend::Capabilities)): there an idle watcher
    /// reads nothing.
    pub resync_every: Duration,
    /// For backends that cannot notify: how often to re-read. Default 1 s.
    pub poll_every: Duration,
    /// A watcher whose re-reads keep failing for this long reports the last failure and ends;
    /// `None` retries for ever. Default 60 s. (Auto-refresh always retries.)
    pub give_up_after: Option<Duration>,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            resync_every: Duration::from_secs(30),
            poll_every: Duration::from_secs(1),
            give_up_after: Some(Duration::from_secs(60)),
        }
    }
}

impl WatchOptions {
    /// Sets [`WatchOptions::resync_every`].
    pub fn resync_every(mut self, every: Duration) -> Self {
        self.resync_every = every;
        self
    }

    /// Sets [`WatchOptions::poll_every`].
    pub fn poll_every(mut self, every: Duration) -> Self {
        self.poll_every = every;
        self
    }

    /// Sets [`WatchOptions::give_up_after`].
    pub fn give_up_after(mut self, after: Option<Duration>) -> Self {
        self.give_up_after = after;
        self
    }
}

/// Which namespaces a batch of hints concerns.
pub(crate) enum Touched {
    All,
    Some(HashSet<String>),
}

impl Touched {
    pub(crate) fn concerns(&self, namespace: &str) -> bool {
        match self {
            Touched::All => true,
            Touched::Some(set) => set.contains(namespace),
        }
    }
}

/// A backend's hints, with re-subscription, polling for backends that cannot notify, and
/// periodic re-reads.
pub(crate) struct HintSource {
    backend: Arc<dyn Backend>,
    hints: Option<Hints>,
    can_notify: bool,
    /// Every change is announced: no periodic re-read.
    complete: bool,
    options: WatchOptions,
}

impl HintSource {
    /// Subscribes now, so that nothing after this call is missed.
    pub(crate) async fn new(backend: Arc<dyn Backend>, options: WatchOptions) -> Result<Self> {
        let capabilities = backend.capabilities();
        // A backend that says it cannot notify is polled without asking.
        let hints = if capabilities.notifies { backend.subscribe().await? } else { None };
        let complete = capabilities.notifies_every_change;
        Ok(HintSource { can_notify: hints.is_some(), hints, complete, backend, options })
    }

    /// Waits for the next hints and coalesces whatever else is already waiting.
    pub(crate) async fn next(&mut self) -> Touched {
        let Some(hints) = self.hints.as_mut() else {
            let wait = if self.can_notify { Duration::from_millis(250) } else { self.options.poll_every };
            tokio::time::sleep(wait).await;
            if self.can_notify {
                // The subscription ended: subscribe again; re-read everything either way.
                self.hints = self.backend.subscribe().await.ok().flatten();
            }
            return Touched::All;
        };
        let first = if self.complete {
            hints.recv().await
        } else {
            tokio::select! {
                hint = hints.recv() => hint,
                _ = tokio::time::sleep(self.options.resync_every) => return Touched::All,
            }
        };
        let Some(first) = first else {
            self.hints = None;
            return Touched::All;
        };
        let mut touched = HashSet::new();
        let mut hint = Some(first);
        while let Some(h) = hint {
            match h {
                Hint::All => return Touched::All,
                Hint::Namespace(ns) => touched.insert(ns),
            };
            hint = hints.try_recv().ok();
        }
        Touched::Some(touched)
    }
}

/// The events that turn `old` into `new`, for one configuration or all.
pub(crate) fn diff(namespace: &str, old: &NamespaceData, new: &NamespaceData, only: Option<&str>) -> Vec<Event> {
    let wanted = |name: &str| only.is_none_or(|o| o == name);
    let event = |kind, name: &str, value: Option<&Arc<Configuration>>| Event {
        kind,
        namespace: namespace.to_owned(),
        configuration: Some(name.to_owned()),
        value: value.cloned(),
        problem: None,
    };
    let mut events = Vec::new();
    for (name, stored) in new.iter().filter(|(n, _)| wanted(n)) {
        match old.get(name) {
            // Repaired: it was there, unreadable.
            None if old.corrupt.contains_key(name) => events.push(event(EventKind::Changed, name, Some(&stored.value))),
            None => events.push(event(EventKind::Created, name, Some(&stored.value))),
            Some(before) if before.version != stored.version => {
                events.push(event(EventKind::Changed, name, Some(&stored.value)))
            }
            Some(_) => {}
        }
    }
    for (name, entry) in new.corrupt.iter().filter(|(n, _)| wanted(n)) {
        if old.corrupt.get(name) != Some(entry) {
            events.push(Event { problem: Some(entry.corruption.to_string()), ..event(EventKind::Corrupt, name, None) });
        }
    }
    let gone = |n: &String| !new.contains_key(n) && !new.corrupt.contains_key(n);
    for name in old.keys().chain(old.corrupt.keys()).filter(|n| wanted(n) && gone(n)) {
        events.push(event(EventKind::Deleted, name, None));
    }
    events
}

/// Live events of one namespace (optionally one configuration). Dropping it stops watching.
/// It is a [`futures_core::Stream`]; [`Watcher::next`] is the same without a stream library.
///
/// ```no_run
/// # async fn demo(store: confo::Store) -> confo::Result<()> {
/// let mut watcher = store.watch("sales", None, Default::default()).await?;
/// while let Some(event) = watcher.next().await {
///     println!("{}", event?.to_json());
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Watcher {
    events: tokio::sync::mpsc::Receiver<Result<Event>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Watcher {
    /// Starts watching a backend: subscribes, reads the namespace once, then reports every
    /// change.
    pub async fn new(
        backend: Arc<dyn Backend>,
        namespace: &str,
        configuration: Option<&str>,
        options: WatchOptions,
    ) -> Result<Watcher> {
        let mut source = HintSource::new(backend.clone(), options).await?;
        let mut known = Some(backend.load_namespace(namespace).await?);
        let (tx, events) = tokio::sync::mpsc::channel(1024);
        let namespace = namespace.to_owned();
        let only = configuration.map(str::to_owned);
        // Entries already unreadable are said first: a watcher never hides a problem.
        let mut corrupt_at_start = NamespaceData::new();
        corrupt_at_start.corrupt = known.as_ref().map(|k| k.corrupt.clone()).unwrap_or_default();
        for event in diff(&namespace, &NamespaceData::new(), &corrupt_at_start, only.as_deref()) {
            let _ = tx.try_send(Ok(event));
        }
        let task = tokio::spawn(async move {
            let mut retry = false;
            let mut failing_since: Option<std::time::Instant> = None;
            loop {
                if !retry && !source.next().await.concerns(&namespace) {
                    continue;
                }
                retry = false;
                let mut read = backend.load_namespace(&namespace).await;
                // A writer that does not replace files atomically (an editor saving in place)
                // can be caught half-way: new corruption is believed only if it is still there
                // a moment later.
                let newly_corrupt = |data: &NamespaceData| {
                    data.corrupt
                        .iter()
                        .any(|(name, entry)| known.as_ref().and_then(|k| k.corrupt.get(name)) != Some(entry))
                };
                if read.as_ref().is_ok_and(newly_corrupt) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    read = backend.load_namespace(&namespace).await;
                }
                let events = match read {
                    Ok(data) => {
                        let mut events = Vec::new();
                        if known.is_none() {
                            events.push(Event {
                                kind: EventKind::NamespaceCreated,
                                namespace: namespace.clone(),
                                configuration: None,
                                value: None,
                                problem: None,
                            });
                        }
                        events.extend(diff(
                            &namespace,
                            known.as_ref().unwrap_or(&NamespaceData::new()),
                            &data,
                            only.as_deref(),
                        ));
                        known = Some(data);
                        events
                    }
                    Err(Error::NotFound { what: Missing::Namespace, .. }) => match known.take() {
                        Some(old) => {
                            let mut events = diff(&namespace, &old, &NamespaceData::new(), only.as_deref());
                            events.push(Event {
                                kind: EventKind::NamespaceDeleted,
                                namespace: namespace.clone(),
                                configuration: None,
                                value: None,
                                problem: None,
                            });
                            events
                        }
                        None => Vec::new(),
                    },
                    Err(e) => {
                        let since = *failing_since.get_or_insert_with(std::time::Instant::now);
                        let refused = matches!(e.kind(), ErrorKind::Unauthorized | ErrorKind::Insecure);
                        if refused || options.give_up_after.is_some_and(|after| since.elapsed() >= after) {
                            // Cannot recover: say why, and end.
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                        // Unreachable for now: keep watching, and read again shortly.
                        tracing::debug!(namespace = %namespace, error = %e, "watch re-read failed");
                        tokio::time::sleep(Duration::from_millis(250)).await;
                        retry = true;
                        continue;
                    }
                };
                failing_since = None;
                for event in events {
                    if tx.send(Ok(event)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Watcher { events, task })
    }

    /// The next event; `None` once the watcher has stopped.
    pub async fn next(&mut self) -> Option<Result<Event>> {
        self.events.recv().await
    }

    /// The next event, blocking the thread (for sync callers outside any async runtime).
    pub fn blocking_next(&mut self) -> Option<Result<Event>> {
        self.events.blocking_recv()
    }

    /// The next event if one arrives within `timeout`.
    pub async fn next_timeout(&mut self, timeout: Duration) -> Option<Result<Event>> {
        tokio::time::timeout(timeout, self.events.recv()).await.ok().flatten()
    }
}

impl futures_core::Stream for Watcher {
    type Item = Result<Event>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.events.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU8, Ordering};

    use async_trait::async_trait;

    use super::*;
    use crate::backend::memory::MemoryBackend;
    use crate::backend::{Capabilities, ChangeSet};
    use crate::model::change::WriteReport;
    use crate::model::name::NameKind;
    use crate::model::name::{ConfigName, NamespaceName};
    use crate::store::ext::BackendExt;

    /// A memory store whose reads fail on demand: 0 reads, 1 is unavailable, 2 refuses access.
    #[derive(Debug, Default)]
    struct Flaky {
        inner: MemoryBackend,
        mode: AtomicU8,
    }

    #[async_trait]
    impl Backend for Flaky {
        fn describe(&self) -> String {
            "flaky".into()
        }
        fn capabilities(&self) -> Capabilities {
            self.inner.capabilities()
        }
        fn check_name(&self, kind: NameKind, name: &str) -> Result<()> {
            self.inner.check_name(kind, name)
        }
        async fn list_namespaces(&self) -> Result<Vec<String>> {
            self.inner.list_namespaces().await
        }
        async fn create(&self, namespace: &NamespaceName) -> Result<bool> {
            self.inner.create(namespace).await
        }
        async fn delete(&self, namespace: &NamespaceName) -> Result<()> {
            self.inner.delete(namespace).await
        }
        async fn scan(&self, namespace: &NamespaceName, sink: Arc<dyn crate::model::decode::Sink>) -> Result<()> {
            match self.mode.load(Ordering::SeqCst) {
                0 => self.inner.scan(namespace, sink).await,
                1 => Err(Error::unavailable("flaky", "connection refused")),
                _ => Err(Error::unauthorized("flaky", "access denied")),
            }
        }
        async fn read_one(
            &self,
            namespace: &NamespaceName,
            name: &ConfigName,
            sink: Arc<dyn crate::model::decode::Sink>,
        ) -> Result<()> {
            self.inner.read_one(namespace, name, sink).await
        }
        async fn apply(&self, namespace: &NamespaceName, changes: &ChangeSet<'_>) -> WriteReport {
            self.inner.write(namespace, changes).await
        }
        async fn subscribe(&self) -> Result<Option<Hints>> {
            self.inner.subscribe().await
        }
    }

    /// A memory store that says it cannot notify, and counts the subscriptions asked of it.
    #[derive(Debug, Default)]
    struct Silent {
        inner: Arc<MemoryBackend>,
        asked: std::sync::atomic::AtomicUsize,
    }

    #[async_trait]
    impl crate::backend::layer::Layered for Silent {
        fn inner_now(&self) -> Option<Arc<dyn Backend>> {
            Some(self.inner.clone())
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities { notifies: false, ..self.inner.capabilities() }
        }
        async fn subscribe(&self) -> Result<Option<Hints>> {
            self.asked.fetch_add(1, Ordering::SeqCst);
            self.inner.subscribe().await
        }
    }

    /// The watcher reads `Capabilities::notifies`: a backend that says it cannot notify is
    /// polled (a change is still seen) and never asked to subscribe.
    #[tokio::test]
    async fn a_backend_that_cannot_notify_is_polled_not_subscribed() {
        let silent = Arc::new(Silent::default());
        silent.create_namespace("ns").await.unwrap();
        let options = WatchOptions::default().poll_every(Duration::from_millis(50));
        let mut watcher = Watcher::new(silent.clone(), "ns", None, options).await.unwrap();
        silent.put_configuration("ns", "a", config()).await.unwrap();
        let event = next(&mut watcher).await.unwrap().unwrap();
        assert_eq!((event.kind, event.configuration.as_deref()), (EventKind::Created, Some("a")));
        assert_eq!(silent.asked.load(Ordering::SeqCst), 0, "never asked to subscribe");
    }

    fn config() -> Configuration {
        let mut map = Configuration::new();
        map.insert("v".into(), 1.into());
        map
    }

    async fn next(watcher: &mut Watcher) -> Option<Result<Event>> {
        use futures_core::Stream;
        let wait = std::future::poll_fn(|cx| std::pin::Pin::new(&mut *watcher).poll_next(cx));
        tokio::time::timeout(Duration::from_secs(10), wait).await.expect("an item within 10 s")
    }

    #[tokio::test]
    async fn a_watcher_from_a_backend_is_a_stream_and_outlives_a_short_outage() {
        let flaky = Arc::new(Flaky::default());
        flaky.create_namespace("ns").await.unwrap();
        let options = WatchOptions::default().give_up_after(Some(Duration::from_secs(30)));
        let mut watcher = Watcher::new(flaky.clone(), "ns", None, options).await.unwrap();
        flaky.put_configuration("ns", "a", config()).await.unwrap();
        let event = next(&mut watcher).await.unwrap().unwrap();
        assert_eq!((event.kind, event.configuration.as_deref()), (EventKind::Created, Some("a")));
        // Down for a moment: the change made meanwhile is reported once reads work again.
        flaky.mode.store(1, Ordering::SeqCst);
        flaky.put_configuration("ns", "b", config()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
        flaky.mode.store(0, Ordering::SeqCst);
        let event = next(&mut watcher).await.unwrap().unwrap();
        assert_eq!((event.kind, event.configuration.as_deref()), (EventKind::Created, Some("b")));
    }

    #[tokio::test]
    async fn reads_failing_for_too_long_end_the_stream_with_the_error() {
        let flaky = Arc::new(Flaky::default());
        flaky.create_namespace("ns").await.unwrap();
        let options = WatchOptions::default().give_up_after(Some(Duration::from_millis(500)));
        let mut watcher = Watcher::new(flaky.clone(), "ns", None, options).await.unwrap();
        flaky.mode.store(1, Ordering::SeqCst);
        flaky.put_configuration("ns", "a", config()).await.unwrap();
        let err = next(&mut watcher).await.unwrap().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        assert!(next(&mut watcher).await.is_none(), "the stream ended");
    }

    #[tokio::test]
    async fn a_refusal_ends_the_stream_at_once() {
        let flaky = Arc::new(Flaky::default());
        flaky.create_namespace("ns").await.unwrap();
        // Never gives up on outages, but a refusal is not an outage.
        let options = WatchOptions::default().give_up_after(None);
        let mut watcher = Watcher::new(flaky.clone(), "ns", None, options).await.unwrap();
        flaky.mode.store(2, Ordering::SeqCst);
        flaky.put_configuration("ns", "a", config()).await.unwrap();
        let err = next(&mut watcher).await.unwrap().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
        assert!(next(&mut watcher).await.is_none());
    }
}
