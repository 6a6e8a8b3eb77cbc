//! Last-known-good snapshots: a backend that keeps serving reads when its store is down.
//!
//! Opt in per backend: `cache+<spec>` (`cache+redis://127.0.0.1:6379`), or
//! `snapshots=on` in any spec's query (`zk://h:2181?snapshots=on`) or credentials
//! (`"snapshots": "on"`); `snapshot_max_age=1h` refuses older snapshots. `CONFO_SNAPSHOTS=off`
//! turns it all off (the inner backend is opened as if it were not asked for).
//!
//! - After every successful read of a namespace (a load, and so every watched change, which
//!   reloads), and after every write, the namespace is written atomically (a private temporary
//!   file, fsync, rename) to `$XDG_CACHE_HOME/confo/snapshots/<backend-id>/<ns>.json`, else
//!   `~/.cache/…`: mode 0600 in 0700 folders. The backend id is the spec without credentials or
//!   options (`redis_127.0.0.1_6379_0-1a2b3c4d`). Values are stored as they are (secrets stay
//!   sealed). The format is versioned and holds the time and each configuration's version.
//! - When the store is **unavailable** ([`Error::Unavailable`], also when it cannot even be
//!   opened: the backend opens lazily and tries again at each call), reads are served from the
//!   snapshot: [`NamespaceData::from_snapshot`](crate::model::version::NamespaceData) says so with its time,
//!   and a warning is logged with its age. A store that refuses credentials, or anything else
//!   that is not unavailability, never falls back. A snapshot older than `snapshot_max_age` is
//!   refused (the error says how old it is).
//! - Writes always go to the store: while it is down they fail with `Unavailable` (nothing is
//!   queued). When it comes back, the watch (which reconnects by itself) sends a re-read of
//!   everything, which refreshes the snapshots. Deleting a namespace deletes its snapshot.

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde_json::Value;

use super::layer::Layered;
use super::{Backend, Capabilities, ChangeSet, Hint, Hints};
use crate::model::change::{Change, ChangeKind, WriteReport};
use crate::model::decode::{One, Sink};
use crate::model::error::{Error, Result};
use crate::model::name::{ConfigName, NamespaceName};
use crate::model::version::{NamespaceData, SnapshotInfo, Stored, Version};
use crate::spec::{BackendKind, BackendSpec};
use crate::spec::{Engine, EngineSpec, Registry};

/// The snapshot file format this build writes and reads.
pub const FORMAT: u64 = 1;

/// The options of `cache+<spec>` / `snapshots=on`.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheSpec {
    inner: BackendSpec,
    max_age: Option<Duration>,
}

impl CacheSpec {
    /// Snapshots over `inner`, refusing those older than `max_age`.
    pub fn new(inner: BackendSpec, max_age: Option<Duration>) -> Self {
        CacheSpec { inner, max_age }
    }

    /// The spec of the store itself.
    pub fn inner(&self) -> &BackendSpec {
        &self.inner
    }
}

impl fmt::Display for CacheSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cache+{}", self.inner)?;
        if let Some(age) = self.max_age {
            let sep = if self.inner.to_string().contains('?') { '&' } else { '?' };
            write!(f, "{sep}snapshot_max_age={}s", age.as_secs())?;
        }
        Ok(())
    }
}

#[async_trait]
impl EngineSpec for CacheSpec {
    fn kind(&self) -> BackendKind {
        self.inner.kind()
    }

    async fn open(&self) -> Result<Arc<dyn Backend>> {
        if std::env::var("CONFO_SNAPSHOTS").is_ok_and(|v| v.eq_ignore_ascii_case("off")) {
            return self.inner.open().await;
        }
        let backend = CachedBackend::new(self.inner.clone(), self.max_age)?;
        // Open now if the store is there (errors other than unavailability surface at once);
        // a store that is down is tried again at each call.
        match backend.backend().await {
            Ok(_) => {}
            Err(e) if e.is_unavailable() => {}
            Err(e) => return Err(e),
        }
        Ok(Arc::new(backend))
    }
}

/// The `cache+` scheme.
pub(crate) struct CacheEngine;

impl Engine for CacheEngine {
    fn kind(&self) -> BackendKind {
        BackendKind::new("cache")
    }

    fn schemes(&self) -> &'static [&'static str] {
        &["cache+"]
    }

    fn example(&self) -> &'static str {
        "cache+SPEC"
    }

    fn parse_url(&self, registry: &Registry, spec: &str) -> Result<BackendSpec> {
        let inner = &spec["cache+".len()..];
        let (inner, options) = split_query(inner)?;
        Ok(BackendSpec::new(CacheSpec::new(registry.parse(&inner)?, options.max_age)))
    }

    fn parse_credentials(&self, _: &Registry, _: &Value) -> Result<BackendSpec> {
        Err(Error::spec(
            Some("backend_type"),
            "\"cache\" is not a backend type: add \"snapshots\": \"on\" to the store's own credentials",
        ))
    }
}

/// What a spec's query or credentials say about snapshots.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct SnapshotOptions {
    pub on: bool,
    pub max_age: Option<Duration>,
}

impl SnapshotOptions {
    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            "snapshots" => {
                self.on = match value {
                    "on" | "true" | "1" => true,
                    "off" | "false" | "0" => false,
                    _ => return Err(Error::spec(Some("snapshots"), "expected on or off")),
                }
            }
            _ => {
                let age = crate::model::history::parse_duration(value).ok_or_else(|| {
                    Error::spec(Some("snapshot_max_age"), "expected a duration such as 90s, 10m, 1h, 7d")
                })?;
                self.max_age = Some(age);
                self.on = true;
            }
        }
        Ok(())
    }
}

const KEYS: [&str; 2] = ["snapshots", "snapshot_max_age"];

/// `spec` without its snapshot options (`snapshots=on`, `snapshot_max_age=…` in the query),
/// and those options.
pub(crate) fn split_query(spec: &str) -> Result<(String, SnapshotOptions)> {
    let mut options = SnapshotOptions::default();
    let Some((base, query)) = spec.split_once('?') else { return Ok((spec.to_owned(), options)) };
    let mut kept = Vec::new();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if KEYS.contains(&key) {
            options.set(key, value)?;
        } else {
            kept.push(pair);
        }
    }
    let spec = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
    Ok((spec, options))
}

/// Credentials without their snapshot keys, and those options.
pub(crate) fn split_credentials(credentials: &Value) -> Result<(Value, SnapshotOptions)> {
    let mut options = SnapshotOptions::default();
    let Some(map) = credentials.as_object() else { return Ok((credentials.clone(), options)) };
    if !KEYS.iter().any(|k| map.contains_key(*k)) {
        return Ok((credentials.clone(), options));
    }
    let mut rest = map.clone();
    for key in KEYS {
        match rest.remove(key) {
            None | Some(Value::Null) => {}
            Some(Value::Bool(b)) if key == "snapshots" => options.on = b,
            Some(Value::String(s)) => options.set(key, &s)?,
            Some(Value::Number(n)) if key == "snapshot_max_age" => options.set(key, &format!("{n}s"))?,
            Some(_) => return Err(Error::spec(Some(key), "expected a string")),
        }
    }
    Ok((Value::Object(rest), options))
}

/// Wraps `spec` when `options` ask for snapshots.
pub(crate) fn wrap(spec: BackendSpec, options: SnapshotOptions) -> BackendSpec {
    if options.on {
        BackendSpec::new(CacheSpec::new(spec, options.max_age))
    } else {
        spec
    }
}

/// A backend serving reads from last-known-good snapshots while its store is unavailable.
pub struct CachedBackend {
    spec: BackendSpec,
    max_age: Option<Duration>,
    /// The snapshot files (used off the async threads).
    files: Arc<Files>,
    /// The store, once opened.
    inner: RwLock<Option<Arc<dyn Backend>>>,
    /// One opening at a time.
    opening: tokio::sync::Mutex<()>,
}

/// One backend's snapshot folder.
#[derive(Debug)]
struct Files {
    /// `<cache>/confo/snapshots/<backend-id>`.
    dir: PathBuf,
    /// The backend id, written in each snapshot.
    id: String,
    /// Per namespace, a digest of the names and versions last written to its snapshot: a
    /// reload that changed nothing does not rewrite it.
    written: Mutex<HashMap<String, u64>>,
    /// Per (namespace, configuration), the version a point read last put in its snapshot
    /// (`None`: absent): a point read of what the snapshot holds writes nothing.
    points: Mutex<HashMap<(String, String), Option<Version>>>,
}

/// A snapshot file as read.
struct Snapshot {
    taken: SystemTime,
    data: NamespaceData,
    /// It holds the whole namespace (else only what point reads put in it).
    complete: bool,
}

impl fmt::Debug for CachedBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedBackend").field("spec", &self.spec).field("dir", &self.files.dir).finish()
    }
}

/// `$XDG_CACHE_HOME/confo/snapshots`, else `~/.cache/confo/snapshots`.
pub fn snapshots_dir() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".cache"),
            None => return Err(Error::spec(Some("snapshots"), "no cache folder: set XDG_CACHE_HOME or HOME")),
        },
    };
    Ok(base.join("confo").join("snapshots"))
}

/// The folder name of a backend: its spec without credentials, options or scheme separators,
/// and a digest of that text (so two specs never share a folder).
pub fn backend_id(spec: &BackendSpec) -> String {
    let text = spec.to_string();
    let text = text.split_once('?').map_or(text.as_str(), |(base, _)| base).to_owned();
    let text = match text.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}", rest.rsplit_once('@').map_or(rest, |(_, host)| host)),
        None => text,
    };
    let mut readable: String =
        text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect();
    while readable.contains("__") {
        readable = readable.replace("__", "_");
    }
    readable.truncate(100);
    let mut hasher = std::hash::DefaultHasher::new();
    text.hash(&mut hasher);
    format!("{}-{:08x}", readable.trim_matches('_'), hasher.finish() as u32)
}

impl CachedBackend {
    /// Snapshots of `spec`'s store in the default folder ([`snapshots_dir`]).
    pub fn new(spec: BackendSpec, max_age: Option<Duration>) -> Result<Self> {
        let id = backend_id(&spec);
        let files = Arc::new(Files {
            dir: snapshots_dir()?.join(&id),
            id,
            written: Mutex::new(HashMap::new()),
            points: Mutex::new(HashMap::new()),
        });
        Ok(CachedBackend { spec, max_age, files, inner: RwLock::new(None), opening: tokio::sync::Mutex::new(()) })
    }

    /// The folder of this backend's snapshots.
    pub fn dir(&self) -> &Path {
        &self.files.dir
    }

    /// Runs snapshot file work off the async threads.
    async fn on_files<T: Send + 'static>(&self, work: impl FnOnce(&Files) -> T + Send + 'static) -> T {
        let files = self.files.clone();
        super::kit::joined(tokio::task::spawn_blocking(move || work(&files))).await
    }

    /// A namespace's snapshot, served because the store is unavailable (`unavailable` is its
    /// error, returned when there is no snapshot), checked against the maximum age.
    async fn serve(&self, namespace: &str, unavailable: Error) -> Result<NamespaceData> {
        let (namespace, describe, max_age) = (namespace.to_owned(), Layered::describe(self), self.max_age);
        self.on_files(move |files| files.read(&namespace, unavailable, &describe, max_age)).await
    }

    fn opened(&self) -> Option<Arc<dyn Backend>> {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The store, opened now if it was not.
    async fn backend(&self) -> Result<Arc<dyn Backend>> {
        if let Some(b) = self.opened() {
            return Ok(b);
        }
        let _one = self.opening.lock().await;
        if let Some(b) = self.opened() {
            return Ok(b);
        }
        let backend = self.spec.open().await?;
        *self.inner.write().unwrap_or_else(|p| p.into_inner()) = Some(backend.clone());
        Ok(backend)
    }
}

impl Files {
    fn path(&self, namespace: &str) -> PathBuf {
        if namespace.len() <= 200 {
            self.dir.join(format!("{namespace}.json"))
        } else {
            let mut hasher = std::hash::DefaultHasher::new();
            namespace.hash(&mut hasher);
            let mut cut = 150;
            while !namespace.is_char_boundary(cut) {
                cut -= 1;
            }
            self.dir.join(format!("{}-{:016x}.json", &namespace[..cut], hasher.finish()))
        }
    }

    /// A digest of a namespace's names and versions: equal digests, equal snapshots.
    fn digest(entries: &std::collections::BTreeMap<String, Stored>) -> u64 {
        let mut hasher = std::hash::DefaultHasher::new();
        for (name, stored) in entries {
            name.hash(&mut hasher);
            stored.version.hash(&mut hasher);
        }
        hasher.finish()
    }

    /// Whether the snapshot written last holds these names and versions already.
    fn unchanged(&self, namespace: &str, digest: u64) -> bool {
        self.written.lock().unwrap_or_else(|p| p.into_inner()).get(namespace) == Some(&digest)
    }

    /// Writes a namespace's whole snapshot (unless it holds the same names and versions already).
    fn save(&self, namespace: &str, entries: &std::collections::BTreeMap<String, Stored>) {
        let digest = Self::digest(entries);
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        if written.get(namespace) == Some(&digest) {
            return;
        }
        match self.write_file(namespace, entries, true) {
            Ok(()) => {
                written.insert(namespace.to_owned(), digest);
            }
            Err(e) => tracing::warn!(namespace, error = %e, "could not write the last-known-good snapshot"),
        }
    }

    fn write_file(
        &self,
        namespace: &str,
        entries: &std::collections::BTreeMap<String, Stored>,
        complete: bool,
    ) -> Result<()> {
        // Written as it goes (the values are not copied into a document first).
        let json = |e: serde_json::Error| Error::InvalidValue { location: "snapshot".into(), message: e.to_string() };
        let mut bytes = Vec::with_capacity(entries.len() * 320 + 256);
        bytes.extend_from_slice(format!("{{\"format\":{FORMAT},\"backend\":").as_bytes());
        serde_json::to_writer(&mut bytes, &self.id).map_err(json)?;
        bytes.extend_from_slice(b",\"namespace\":");
        serde_json::to_writer(&mut bytes, namespace).map_err(json)?;
        bytes.extend_from_slice(b",\"time\":");
        serde_json::to_writer(&mut bytes, &crate::model::history::format_time(SystemTime::now())).map_err(json)?;
        bytes.extend_from_slice(format!(",\"complete\":{complete}").as_bytes());
        bytes.extend_from_slice(b",\"configurations\":{");
        for (i, (name, stored)) in entries.iter().enumerate() {
            if i > 0 {
                bytes.push(b',');
            }
            serde_json::to_writer(&mut bytes, name).map_err(json)?;
            bytes.extend_from_slice(b":{\"version\":");
            match (stored.version.as_number(), stored.version.as_text()) {
                (Some(n), _) => bytes.extend_from_slice(n.to_string().as_bytes()),
                (None, Some(t)) => serde_json::to_writer(&mut bytes, t).map_err(json)?,
                _ => bytes.extend_from_slice(b"null"),
            }
            bytes.extend_from_slice(b",\"value\":");
            serde_json::to_writer(&mut bytes, &*stored.value).map_err(json)?;
            bytes.push(b'}');
        }
        bytes.extend_from_slice(b"}}");
        let path = self.path(namespace);
        let io = |e: std::io::Error| Error::io(format!("snapshot {}", path.display()), e);
        private_dirs(&self.dir).map_err(io)?;
        let mut tmp = tempfile::Builder::new().prefix(".snapshot-").tempfile_in(&self.dir).map_err(io)?;
        // tempfile creates it 0600.
        tmp.write_all(&bytes).map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(&path).map_err(|e| io(e.error))?;
        std::fs::File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io)?;
        Ok(())
    }

    /// A namespace's snapshot file, checked: private to this user (another user could have
    /// planted it), of this backend and this namespace (a snapshot copied from elsewhere is
    /// not served), in this build's format, with a readable time; `None` if there is none.
    fn parse(&self, namespace: &str) -> Result<Option<Snapshot>> {
        let path = self.path(namespace);
        let corrupt = |problem: String| Error::Corrupt {
            corruptions: vec![crate::model::error::Corruption {
                location: format!("snapshot {}", path.display()),
                problem,
            }],
        };
        let bytes = match read_private(&self.dir, &path) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(None),
            Err(Refused::Io(e)) => return Err(Error::io(format!("snapshot {}", path.display()), e)),
            Err(Refused::NotPrivate(why)) => return Err(corrupt(why)),
        };
        // A snapshot holds values at the depth a write accepts, inside its own two levels.
        let document: Value = parse_deep(&bytes).map_err(corrupt)?;
        if document["format"].as_u64() != Some(FORMAT) {
            return Err(corrupt(format!("format {} (this build reads {FORMAT})", document["format"])));
        }
        let (backend, of) = (document["backend"].as_str(), document["namespace"].as_str());
        if backend != Some(self.id.as_str()) || of != Some(namespace) {
            return Err(corrupt(format!(
                "it is a snapshot of backend {} namespace {}, not of {} namespace {namespace:?}: not served",
                backend.map_or("(none)".to_owned(), |b| format!("{b:?}")),
                of.map_or("(none)".to_owned(), |n| format!("{n:?}")),
                self.id
            )));
        }
        let taken = document["time"]
            .as_str()
            .and_then(crate::model::history::parse_time)
            .ok_or_else(|| corrupt("no readable time".into()))?;
        let complete = document["complete"].as_bool().unwrap_or(true);
        Ok(Some(Snapshot { taken, data: entries_of(&document), complete }))
    }

    /// A namespace's snapshot, checked against `max_age`; `unavailable` is the store's error
    /// (`describe` names the store), returned when there is no snapshot to serve (or one that
    /// may not be served: its error is said with it).
    fn read(
        &self,
        namespace: &str,
        unavailable: Error,
        describe: &str,
        max_age: Option<Duration>,
    ) -> Result<NamespaceData> {
        let reason = match &unavailable {
            Error::Unavailable { message, .. } => message.clone(),
            other => other.to_string(),
        };
        let snapshot = match self.parse(namespace) {
            Ok(Some(snapshot)) => snapshot,
            Ok(None) => return Err(unavailable),
            Err(refused) => {
                return Err(Error::unavailable(
                    describe.to_owned(),
                    format!("{reason}; its last-known-good snapshot is not served: {refused}"),
                ))
            }
        };
        let Snapshot { taken, mut data, complete } = snapshot;
        let info = SnapshotInfo { taken, path: self.path(namespace), reason, partial: !complete };
        let age = info.age();
        if let Some(max) = max_age {
            if age > max {
                return Err(Error::unavailable(
                    describe.to_owned(),
                    format!(
                        "{}; its last-known-good snapshot of {namespace} is {} old, older than snapshot_max_age \
                         ({})",
                        info.reason,
                        human(age),
                        human(max)
                    ),
                ));
            }
        }
        let partial = if complete { "" } else { " (it holds only the configurations read one by one)" };
        tracing::warn!(
            "{describe} is unavailable ({}); serving namespace {namespace} from its last-known-good snapshot of {} ({} old){partial}",
            info.reason,
            crate::model::history::format_time(taken),
            human(age)
        );
        let info = Arc::new(info);
        for stored in data.values_mut() {
            stored.from_snapshot = Some(info.clone());
        }
        data.from_snapshot = Some((*info).clone());
        Ok(data)
    }

    fn remove(&self, namespace: &str) {
        self.written.lock().unwrap_or_else(|p| p.into_inner()).remove(namespace);
        self.points.lock().unwrap_or_else(|p| p.into_inner()).retain(|(ns, _), _| ns != namespace);
        let _ = std::fs::remove_file(self.path(namespace));
    }

    /// After a write: the snapshot (if there is one) takes what was applied: `(name, value and
    /// version)` for a put, `(name, None)` for a delete. A snapshot that cannot be read is
    /// removed (the next load writes a good one).
    fn patch(&self, namespace: &str, applied: Vec<(String, Option<Stored>)>) {
        let mut snapshot = match self.parse(namespace) {
            Ok(Some(snapshot)) => snapshot,
            Ok(None) => return,
            Err(_) => return self.remove(namespace),
        };
        for (name, stored) in applied {
            self.points.lock().unwrap_or_else(|p| p.into_inner()).remove(&(namespace.to_owned(), name.clone()));
            match stored {
                Some(stored) => {
                    snapshot.data.insert(name, stored);
                }
                None => {
                    snapshot.data.remove(&name);
                }
            }
        }
        self.keep(namespace, &snapshot);
    }

    /// After a point read: the snapshot takes what was read (`None`: absent), made if there is
    /// none yet (then it holds only what point reads put in it, and says so); nothing is
    /// written when it holds that already.
    fn patch_one(&self, namespace: &str, name: &str, read: Option<Stored>) {
        let key = (namespace.to_owned(), name.to_owned());
        let version = read.as_ref().map(|s| s.version.clone());
        if self.points.lock().unwrap_or_else(|p| p.into_inner()).get(&key) == Some(&version) {
            return;
        }
        let mut snapshot = match self.parse(namespace) {
            Ok(Some(snapshot)) => snapshot,
            Ok(None) if read.is_none() => return,
            Ok(None) => Snapshot { taken: SystemTime::now(), data: NamespaceData::new(), complete: false },
            Err(_) => {
                self.remove(namespace);
                Snapshot { taken: SystemTime::now(), data: NamespaceData::new(), complete: false }
            }
        };
        let holds = snapshot.data.get(name).map(|s| &s.version) == version.as_ref();
        if !holds {
            match read {
                Some(stored) => {
                    snapshot.data.insert(name.to_owned(), Stored::new(stored.value, stored.version));
                }
                None => {
                    snapshot.data.remove(name);
                }
            }
            if !self.keep(namespace, &snapshot) {
                return;
            }
        }
        self.points.lock().unwrap_or_else(|p| p.into_inner()).insert(key, version);
    }

    /// Writes a patched snapshot as complete as it was; whether it was written.
    fn keep(&self, namespace: &str, snapshot: &Snapshot) -> bool {
        let entries: &std::collections::BTreeMap<String, Stored> = &snapshot.data;
        if snapshot.complete {
            let digest = Self::digest(entries);
            let written = self.written.lock().unwrap_or_else(|p| p.into_inner()).get(namespace) == Some(&digest);
            if written {
                return true;
            }
        }
        match self.write_file(namespace, entries, snapshot.complete) {
            Ok(()) => {
                let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
                match snapshot.complete {
                    true => written.insert(namespace.to_owned(), Self::digest(entries)),
                    false => written.remove(namespace),
                };
                true
            }
            Err(e) => {
                tracing::warn!(namespace, error = %e, "could not write the last-known-good snapshot");
                false
            }
        }
    }

    /// The namespaces that have a snapshot.
    fn snapshot_namespaces(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                if name.starts_with('.') {
                    return None;
                }
                let bytes = read_private(&self.dir, &e.path()).ok()??;
                let document: Value = parse_deep(&bytes).ok()?;
                (document["backend"].as_str() == Some(self.id.as_str()))
                    .then(|| document["namespace"].as_str().map(str::to_owned))
                    .flatten()
            })
            .collect();
        names.sort();
        names
    }
}

/// The configurations of a snapshot document, with their versions.
fn entries_of(document: &Value) -> NamespaceData {
    let mut data = NamespaceData::new();
    if let Some(Value::Object(configs)) = document.get("configurations") {
        for (name, entry) in configs {
            let Some(Value::Object(value)) = entry.get("value") else { continue };
            let version = match &entry["version"] {
                Value::Number(n) => Version::number(n.as_i64().unwrap_or_default()),
                Value::String(s) => Version::text(s.as_str()),
                _ => continue,
            };
            data.insert(name.clone(), Stored::new(value.clone(), version));
        }
    }
    data
}

/// Makes `dir` and its missing parents, private (0700); an existing one of this user's that
/// others may read or write (made 0777 by hand) is made private again, and one of another
/// user's is refused: snapshots hold configurations, secrets sealed but names and values in
/// the clear.
fn private_dirs(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if !dir.is_dir() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir)?;
    }
    // The backend's folder and `snapshots` above it (confo's own).
    for folder in [Some(dir), dir.parent()].into_iter().flatten() {
        let meta = std::fs::metadata(folder)?;
        if meta.uid() != rustix::process::getuid().as_raw() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("{} belongs to another user: snapshots are not written there", folder.display()),
            ));
        }
        if meta.mode() & 0o077 != 0 {
            std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    Ok(())
}

/// Why a snapshot file is not read.
enum Refused {
    Io(std::io::Error),
    /// It or its folder is another user's, or others may write it.
    NotPrivate(String),
}

/// A snapshot file's bytes, if it exists and it and its folder are this user's and not
/// writable by others (a file another user could have planted or changed is not served).
fn read_private(dir: &Path, path: &Path) -> std::result::Result<Option<Vec<u8>>, Refused> {
    use std::os::unix::fs::MetadataExt;
    let uid = rustix::process::getuid().as_raw();
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Refused::Io(e)),
    };
    for (what, meta) in [("the file", file.metadata()), ("its folder", std::fs::metadata(dir))] {
        let meta = meta.map_err(Refused::Io)?;
        if meta.uid() != uid || meta.mode() & 0o022 != 0 {
            return Err(Refused::NotPrivate(format!(
                "{what} belongs to another user or others may write it (uid {}, mode {:o})",
                meta.uid(),
                meta.mode() & 0o7777
            )));
        }
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut &file, &mut bytes).map_err(Refused::Io)?;
    Ok(Some(bytes))
}

/// A snapshot document: its own two levels (the document, `configurations`, each entry) above
/// values as deep as a write accepts.
fn parse_deep(bytes: &[u8]) -> std::result::Result<Value, String> {
    crate::model::json::from_slice_nested(bytes, 3)
}

/// `3 s`, `4 min`, `2 h`, `3 d`.
fn human(age: Duration) -> String {
    let s = age.as_secs();
    match s {
        0..120 => format!("{s} s"),
        120..7200 => format!("{} min", s / 60),
        7200..172_800 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}

#[async_trait]
impl Layered for CachedBackend {
    fn inner_now(&self) -> Option<Arc<dyn Backend>> {
        self.opened()
    }

    async fn inner(&self) -> Result<Arc<dyn Backend>> {
        self.backend().await
    }

    fn describe(&self) -> String {
        match self.opened() {
            Some(b) => b.describe(),
            None => {
                let text = self.spec.to_string();
                text.split_once('?').map_or(text.as_str(), |(base, _)| base).to_owned()
            }
        }
    }

    fn capabilities(&self) -> Capabilities {
        match self.opened() {
            Some(b) => b.capabilities(),
            // Not open yet: hints are forwarded once it is (see subscribe).
            None => Capabilities { notifies: true, ..Capabilities::default() },
        }
    }

    async fn list_namespaces(&self) -> Result<Vec<String>> {
        let result = match self.backend().await {
            Ok(b) => b.list_namespaces().await,
            Err(e) => Err(e),
        };
        match result {
            Err(e) if e.is_unavailable() => {
                let names = self.on_files(|files| files.snapshot_namespaces()).await;
                if names.is_empty() {
                    return Err(e);
                }
                tracing::warn!(
                    "{} is unavailable; listing the namespaces that have a snapshot",
                    Layered::describe(self)
                );
                Ok(names)
            }
            other => other,
        }
    }

    async fn delete(&self, namespace: &NamespaceName) -> Result<()> {
        self.backend().await?.delete(namespace).await?;
        let namespace = namespace.to_string();
        self.on_files(move |files| files.remove(&namespace)).await;
        Ok(())
    }

    async fn load(&self, namespace: &NamespaceName) -> Result<NamespaceData> {
        let result = match self.backend().await {
            Ok(b) => b.load(namespace).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(data) => {
                // A reload that changed nothing costs a digest: no copy, no file work.
                if !self.files.unchanged(namespace.as_str(), Files::digest(&data)) {
                    let (name, entries) = (namespace.to_string(), (*data).clone());
                    self.on_files(move |files| files.save(&name, &entries)).await;
                }
                Ok(data)
            }
            Err(e) if e.is_unavailable() => self.serve(namespace.as_str(), e).await,
            Err(e @ Error::NotFound { .. }) => {
                let name = namespace.to_string();
                self.on_files(move |files| files.remove(&name)).await;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Composed from this layer's own `load`, so that the snapshot is kept and served (the
    /// engine's one-step compact read would go around it).
    async fn load_compact(&self, namespace: &NamespaceName) -> Result<crate::model::compact::CompactNamespace> {
        Ok(Layered::load(self, namespace).await?.into())
    }

    /// Composed from this layer's own `read_one` (which keeps and serves the snapshot) and the
    /// store's schema document.
    async fn read_one_with_schema(
        &self,
        namespace: &NamespaceName,
        name: &ConfigName,
        known: Option<&Version>,
        sink: Arc<dyn Sink>,
    ) -> Result<super::SchemaRead> {
        Layered::read_one(self, namespace, name, sink).await?;
        Ok(super::SchemaRead::of(Layered::schema_document(self, namespace).await, known))
    }

    /// Read through a point-read sink of its own, so that what was read is kept in the
    /// snapshot, then handed on.
    async fn read_one(&self, namespace: &NamespaceName, name: &ConfigName, sink: Arc<dyn Sink>) -> Result<()> {
        let one = One::new(name.as_str());
        let result = match self.backend().await {
            Ok(b) => match b.read_one(namespace, name, one.clone()).await {
                // What is stored is not a configuration: handed on as the engine worded it
                // (not kept). An error of the read itself (a corrupt index) is returned below.
                Ok(()) if matches!(one.found(), Some(Err(_))) => {
                    one.forward(&*sink);
                    return Ok(());
                }
                Ok(()) => one.read(),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match result {
            Ok(read) => {
                let (ns, cfg) = (namespace.to_string(), name.to_string());
                self.on_files(move |files| files.patch_one(&ns, &cfg, read)).await;
                one.forward(&*sink);
                Ok(())
            }
            Err(e) if e.is_unavailable() => {
                let keep = match &e {
                    Error::Unavailable { message, .. } => message.clone(),
                    other => other.to_string(),
                };
                let mut data = self.serve(namespace.as_str(), e).await?;
                match data.remove(name.as_str()) {
                    Some(stored) => {
                        sink.loaded([(name.to_string(), stored)].into_iter().collect());
                        Ok(())
                    }
                    // A snapshot of only some configurations cannot say this one is absent.
                    None if data.from_snapshot.as_ref().is_some_and(|info| info.partial) => Err(Error::unavailable(
                        Layered::describe(self),
                        format!(
                            "{keep}; its last-known-good snapshot of {namespace} holds only the configurations read \
                             one by one, not {name}"
                        ),
                    )),
                    None => Ok(()),
                }
            }
            Err(e @ Error::NotFound { .. }) => {
                let ns = namespace.to_string();
                self.on_files(move |files| files.remove(&ns)).await;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    async fn apply(&self, namespace: &NamespaceName, changes: &ChangeSet<'_>) -> WriteReport {
        let backend = match self.backend().await {
            Ok(b) => b,
            Err(e) => return WriteReport::failed(e),
        };
        let report = backend.apply(namespace, changes).await;
        if !report.applied.is_empty() {
            let by_name: HashMap<&str, &crate::model::change::Change> =
                changes.iter().map(|c| (c.name.as_str(), c)).collect();
            let applied: Vec<(String, Option<Stored>)> = report
                .applied
                .iter()
                .map(|a| {
                    let stored = match (by_name.get(a.name.as_str()).map(|c| &c.kind), &a.version) {
                        (Some(ChangeKind::Put(value)), Some(version)) => {
                            Some(Stored::new(value.clone(), version.clone()))
                        }
                        _ => None,
                    };
                    (a.name.clone(), stored)
                })
                .collect();
            let name = namespace.to_string();
            self.on_files(move |files| files.patch(&name, applied)).await;
        }
        report
    }

    async fn load_and_apply(
        &self,
        namespace: &NamespaceName,
        name: &ConfigName,
        known_schema: Option<&Version>,
        author: &crate::model::history::Author,
        edit: Arc<super::Edit>,
    ) -> Result<Option<WriteReport>> {
        // The engine's own one-step read-modify-write (one read of a file under its lock), what
        // it read or wrote kept to patch the snapshot as `read_one` and `apply` do. (A store
        // that cannot be reached cannot be written: no snapshot is served here.)
        let backend = self.backend().await?;
        let report = backend.load_and_apply(namespace, name, known_schema, author, edit.clone()).await?;
        let kept = match &report {
            // Nothing written: what was read, as a point read keeps it.
            None => edit.read().ok(),
            Some(report) => match (report.applied.first().and_then(|a| a.version.clone()), edit.decided()) {
                (Some(version), Some(Change { kind: ChangeKind::Put(value), .. })) => {
                    Some(Some(Stored::new(value, version)))
                }
                _ => None,
            },
        };
        if let Some(kept) = kept {
            let (ns, cfg) = (namespace.to_string(), name.to_string());
            self.on_files(move |files| files.patch_one(&ns, &cfg, kept)).await;
        }
        Ok(report)
    }

    async fn subscribe(&self) -> Result<Option<Hints>> {
        if let Some(b) = self.opened() {
            return b.subscribe().await;
        }
        // Not open: keep trying, then forward the store's hints (its first is "re-read all").
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let spec = self.spec.clone();
        tokio::spawn(async move {
            let backend = loop {
                tokio::select! {
                    _ = tx.closed() => return,
                    opened = spec.open() => match opened {
                        Ok(b) => break b,
                        Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
                    },
                }
            };
            let Ok(Some(mut hints)) = backend.subscribe().await else {
                let _ = tx.send(Hint::All);
                return;
            };
            loop {
                tokio::select! {
                    _ = tx.closed() => return,
                    hint = hints.recv() => match hint {
                        Some(h) => if tx.send(h).is_err() { return },
                        None => return,
                    },
                }
            }
        });
        Ok(Some(rx))
    }
}
