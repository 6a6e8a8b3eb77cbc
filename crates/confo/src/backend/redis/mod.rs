//! Redis (specs `redis://`, `rediss://`, `redis+sentinel://`, `redis+cluster://`): the seed's
//! layout, exactly.
//!
//! # Backend details
//!
//! | what | key | value |
//! | --- | --- | --- |
//! | root | `confo` | `{"namespaces":["HR_dept", ...]}` |
//! | namespace `HR_dept` | `HR_dept` | `{"configurations":["database", ...]}` |
//! | configuration `database` in `HR_dept` | `HR_dept-database` | the configuration's JSON object |
//!
//! - **Least privilege.** Connecting sends nothing but the driver's handshake (no write, no
//!   `INFO`, no `SCRIPT LOAD`): the root `confo` = `{"namespaces":[]}` is made by the first
//!   write that needs it. Reads are scripts flagged `no-writes`, sent as `EVALSHA_RO` (and as
//!   `EVAL_RO` when the server does not know the script yet), so a user with the ACL
//!   `+@read +@connection +evalsha_ro +eval_ro +subscribe +psubscribe` (and `~*`, `&*`, or
//!   `~* &confo:events`) reads and watches, and a read-only replica serves reads. A server
//!   before Redis 7 gets the same reads as plain scripts (`EVALSHA`).
//! - A key of another type where the layout keeps a string or a stream is another program's
//!   data: [`Error::Corrupt`] naming the key, never overwritten.
//! - Index documents written by other programs load whatever their spacing and order
//!   (Python's `json.dumps` writes `{"namespaces": ["a"]}`); we write them compact, entries in
//!   insertion order, and configurations compact.
//! - A namespace listed in `confo` whose own key is missing reads as empty (it is recreated by
//!   the next write into it). An index entry whose data key is missing, a value that is not JSON
//!   or not an object, and an index document that is not of the shape above are
//!   [`Error::Corrupt`] naming the key.
//! - **Name rules.** `<ns>-<cfg>` is ambiguous (`a-b` + `c` and `a` + `b-c` are the same key)
//!   and a namespace called `confo` would be the root key, so namespace names may not contain
//!   `-` and may not be `confo`. Configuration names may contain `-`: with no `-` in the
//!   namespace, the first `-` of a key splits it, and no namespace key contains one.
//! - **Atomic.** Every operation that touches an index and data keys is one Lua script
//!   (`EVALSHA`, sent whole with `EVAL` on `NOSCRIPT`): creating or deleting a namespace, and writing a batch
//!   (preconditions checked first, then values, the namespace index and one `PUBLISH` per
//!   change on `confo:events`, e.g. `{"namespace":"ns","configuration":"db","operation":"put"}`).
//!   The scripts derive data keys from the index: on a Redis Cluster of several masters the
//!   writes go change by change instead (see `cluster.rs`); a cluster of one master runs these
//!   same scripts.
//! - **Round trips.** Reading a namespace is one script (index + `MGET` in slices): one round
//!   trip whatever its size. A batch is written in chunks of at most 5,000 changes
//!   and 1 MiB (a few milliseconds of server time each), one script each, so a huge namespace never blocks the server for
//!   long; each chunk is atomic, and a failure reports the chunks already written.
//! - **History**: each write's script appends the change to a stream
//!   `confo-history:{<ns>-<cfg>}` (ids `0-1`, `0-2`, …: the revision numbers; `XADD … MAXLEN`
//!   keeps the newest `history_keep`), in the same atomic step, and first records an `external`
//!   revision when the value is not the one last recorded (another program wrote it). The
//!   `confo-` prefix cannot collide with the seed's keys; the hash tag keeps each stream in its
//!   configuration's cluster slot. Deleting a namespace keeps them.
//! - **Versions** are the SHA-1 of the stored value, compared inside the write script with
//!   `redis.sha1hex`, so any writer's change is noticed.
//! - **Connecting.** Connect and response timeouts (default 3 s and 10 s), so a dead server is
//!   [`Error::Unavailable`] quickly; the connection is re-made by itself when the server comes
//!   back. `AUTH` with a password or an ACL user; wrong credentials are
//!   [`Error::Unauthorized`]. TLS with `rediss://` (system roots, or `tls_ca=PATH`).
//! - **Sentinel.** `redis+sentinel://h1:p1,h2:p2/master` asks the sentinels for the current
//!   master and asks again after a connection error or a `READONLY` reply (a failover).
//!   `wait_replicas=N` makes each write wait for `N` replicas (`WAIT`), so an acknowledged write
//!   survives a failover.
//! - **Notifications** subscribe to `confo:events`, which every confo write publishes from the
//!   same script. After a reconnect the subscriber asks for a full re-read, so nothing published
//!   while it was away is missed. A raw `SET` by a program that does not publish is not
//!   notified: a watcher sees it at its next periodic re-read (see
//!   [`WatchOptions::resync_every`](crate::watch::WatchOptions::resync_every)).

mod cluster;
mod engine;
mod options;
mod repair;

use std::sync::{Arc, LazyLock, Mutex};

use async_trait::async_trait;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{AsyncConnectionConfig, Cmd, ConnectionAddr, ErrorKind, IntoConnectionInfo, RedisError, RedisFuture};

pub use options::{RedisEndpoint, RedisOptions};

use super::kit::{chunk_ranges, decode_all};
use super::{Backend, Capabilities, ChangeSet, Hint, Hints, SchemaRead};
use crate::model::change::{Applied, Change, ChangeKind, Precondition, WriteReport};
use crate::model::decode::Sink;
use crate::model::error::{ConfigId, Corruption, Error, Missing, Outage, Result};
use crate::model::name::{ConfigName, NameKind, NameRule, NamespaceName};
use crate::model::version::Version;

/// The root key.
pub const ROOT_KEY: &str = "confo";
/// The channel every write publishes on.
pub const EVENTS_CHANNEL: &str = "confo:events";
/// Most changes written by one script call. Each call re-encodes the namespace's index, so
/// chunks are large; `CHUNK_BYTES` keeps each call short.
pub(crate) const CHUNK_CHANGES: usize = 5000;
/// Most value bytes written by one script call.
pub(crate) const CHUNK_BYTES: usize = 1 << 20;

/// A script as confo sends it: `EVALSHA` with its digest, and the script itself (`EVAL`, which
/// also makes the server keep it) only when the server says it does not know it. Never `SCRIPT
/// LOAD`: a user allowed to read may not run it, and nothing is sent at connection time.
pub(crate) struct Lua {
    source: String,
    /// The SHA-1 of `source`, as the server names the script.
    sha: String,
    /// A read: flagged `no-writes` and sent as `EVALSHA_RO` / `EVAL_RO`, so that a user allowed
    /// only to read may run it, and a read-only replica serves it.
    read_only: bool,
    /// For a read, the same script without flags, sent as `EVALSHA` / `EVAL` to a server older
    /// than Redis 7 (which has neither `EVAL_RO` nor script flags).
    legacy: Option<Box<Lua>>,
}

impl Lua {
    fn new(source: String, read_only: bool, legacy: Option<Lua>) -> Lua {
        let sha = sha1_smol::Sha1::from(source.as_bytes()).digest().to_string();
        Lua { source, sha, read_only, legacy: legacy.map(Box::new) }
    }

    /// The command that runs this script (by digest, or its source), with `keys` declared (or,
    /// `in_argv`, given in ARGV after their count: see `ONE_SHARD_SCRIPTS`) and `args` after.
    fn call(&self, by_digest: bool, in_argv: bool, keys: &[&str], args: &[&[u8]]) -> Cmd {
        let name = match (self.read_only, by_digest) {
            (true, true) => "EVALSHA_RO",
            (true, false) => "EVAL_RO",
            (false, true) => "EVALSHA",
            (false, false) => "EVAL",
        };
        let mut cmd = redis::cmd(name);
        cmd.arg(if by_digest { &self.sha } else { &self.source });
        if in_argv {
            cmd.arg(0).arg(keys.len());
        } else {
            cmd.arg(keys.len());
        }
        cmd.arg(keys);
        for arg in args {
            cmd.arg(*arg);
        }
        cmd
    }
}

/// Runs `script` through `send`: by digest, then by source if the server does not know it.
/// A read on a server that has no `EVALSHA_RO` (before Redis 7: asked with `COMMAND INFO`
/// only after an error, never by reading the error's words) is sent, now and from then on
/// (`legacy`), as its plain twin.
async fn invoke<F, Fut>(
    script: &Lua,
    legacy: &std::sync::atomic::AtomicBool,
    in_argv: bool,
    keys: &[&str],
    args: &[&[u8]],
    mut send: F,
) -> redis::RedisResult<redis::Value>
where
    F: FnMut(Cmd) -> Fut,
    Fut: std::future::Future<Output = redis::RedisResult<redis::Value>>,
{
    use std::sync::atomic::Ordering;
    let no_script = |e: &RedisError| e.kind() == ErrorKind::Server(redis::ServerErrorKind::NoScript);
    let mut script = script;
    if let Some(plain) = script.legacy.as_deref().filter(|_| legacy.load(Ordering::Relaxed)) {
        script = plain;
    }
    let first = send(script.call(true, in_argv, keys, args)).await;
    match first {
        Err(e) if no_script(&e) => send(script.call(false, in_argv, keys, args)).await,
        Err(e) if script.read_only && e.kind() == ErrorKind::Server(redis::ServerErrorKind::ResponseError) => {
            let Some(plain) = script.legacy.as_deref() else { return Err(e) };
            let known = send(redis::cmd("COMMAND").arg("INFO").arg("EVALSHA_RO").clone()).await;
            if !matches!(known.as_ref().map(|v| v.as_sequence()), Ok(Some([redis::Value::Nil]))) {
                return Err(e);
            }
            legacy.store(true, Ordering::Relaxed);
            match send(plain.call(true, in_argv, keys, args)).await {
                Err(e) if no_script(&e) => send(plain.call(false, in_argv, keys, args)).await,
                other => other,
            }
        }
        other => other,
    }
}

struct Scripts {
    create_namespace: Lua,
    delete_namespace: Lua,
    load_namespace: Lua,
    read_one: Lua,
    write: Lua,
    schema: Lua,
    repair: Lua,
    cluster_data: Lua,
    cluster_index: Lua,
    cluster_root: Lua,
    cluster_drop: Lua,
}

impl Scripts {
    /// Every script with the shared parts in front, after a shebang line naming `flags` (none:
    /// no shebang) and `prelude`. Reads get the flag `no-writes` too.
    fn new(flags: &[&str], prelude: &str) -> Scripts {
        let source = |flags: &[&str], body: &str| {
            let shebang = if flags.is_empty() { String::new() } else { format!("#!lua flags={}\n", flags.join(",")) };
            format!("{shebang}{prelude}{}\n{}\n{body}", include_str!("common.lua"), include_str!("history.lua"))
        };
        let write = |body: &str| Lua::new(source(flags, body), false, None);
        let read = |body: &str| {
            let flagged: Vec<&str> = ["no-writes"].into_iter().chain(flags.iter().copied()).collect();
            let legacy = flags.is_empty().then(|| Lua::new(source(&[], body), false, None));
            Lua::new(source(&flagged, body), true, legacy)
        };
        Scripts {
            create_namespace: write(include_str!("create_namespace.lua")),
            delete_namespace: write(include_str!("delete_namespace.lua")),
            load_namespace: read(include_str!("load_namespace.lua")),
            read_one: read(include_str!("read_one.lua")),
            write: write(include_str!("write.lua")),
            schema: write(include_str!("schema.lua")),
            repair: write(include_str!("repair.lua")),
            cluster_data: write(include_str!("cluster_data.lua")),
            cluster_index: write(include_str!("cluster_index.lua")),
            cluster_root: write(include_str!("cluster_root.lua")),
            cluster_drop: write(include_str!("cluster_drop.lua")),
        }
    }
}

/// The scripts for one server or a Sentinel group.
static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts::new(&[], "local PER_KEY = false\n"));

/// The same scripts for a cluster of one shard: every slot is on the one master, so the layout's
/// scripts may touch keys of several slots once they say so. A cluster refuses a call whose
/// declared keys span slots, so they are declared none and take their keys from ARGV (the
/// count, the keys, then the arguments), as the same local `KEYS` and `ARGV`. One command may
/// not span slots even so: `PER_KEY` makes them read key by key instead of `MGET`.
static ONE_SHARD_SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| {
    Scripts::new(
        &["allow-cross-slot-keys"],
        "local KEYS, ARGV = (function(given)\n\
           local n, keys, args = tonumber(given[1]), {}, {}\n\
           for i = 2, n + 1 do keys[#keys + 1] = given[i] end\n\
           for i = n + 2, #given do args[#args + 1] = given[i] end\n\
           return keys, args\n\
         end)(ARGV)\n\
         local PER_KEY = true\n",
    )
});

/// How the keys are spread over servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Topology {
    /// One server, or a Sentinel group's master: every script is atomic.
    Single,
    /// A Redis Cluster with one master: the same atomic scripts, allowed to span slots.
    OneShard,
    /// A Redis Cluster with several masters: see [`cluster`].
    Sharded,
}

/// The seed's Redis layout over one server or a Sentinel group.
#[derive(Debug, Clone)]
pub struct RedisBackend {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    describe: String,
    topology: Topology,
    wait_replicas: u32,
    history: crate::model::history::HistoryOptions,
    link: Link,
    /// The server predates Redis 7: reads are sent as plain scripts (see [`invoke`]).
    legacy_scripts: std::sync::atomic::AtomicBool,
}

impl RedisBackend {
    /// A namespace's (configuration name, stored value) pairs, read in one consistent step
    /// (one script; in a cluster, the index then the values).
    async fn read_pairs(&self, namespace: &str) -> Result<Vec<(String, Option<Vec<u8>>)>> {
        if self.inner.topology == Topology::Sharded {
            return self.cluster_load(namespace).await;
        }
        let flat: Vec<Option<Vec<u8>>> = self.script(&self.scripts().load_namespace, namespace, &[]).await?;
        let mut pairs = Vec::with_capacity(flat.len() / 2);
        let mut flat = flat.into_iter();
        while let (Some(Some(name)), Some(value)) = (flat.next(), flat.next()) {
            pairs.push((String::from_utf8_lossy(&name).into_owned(), value));
        }
        Ok(pairs)
    }
    /// Connects, and creates the root key if it is absent.
    ///
    /// ```no_run
    /// # async fn demo() -> confo::Result<()> {
    /// use confo::backend::redis::{RedisBackend, RedisOptions};
    /// let backend = RedisBackend::connect(RedisOptions::from_url("redis://127.0.0.1:6379")?).await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(options: RedisOptions) -> Result<Self> {
        super::install_crypto_provider();
        let describe = options.describe();
        let ca = options.tls_ca.as_deref().map(|path| super::read_tls_ca(&describe, path)).transpose()?;
        let hosts = match &options.endpoint {
            RedisEndpoint::Server { host, port } => vec![(host.clone(), *port)],
            RedisEndpoint::Sentinel { sentinels, .. } => sentinels.clone(),
            RedisEndpoint::Cluster { nodes } => nodes.clone(),
        };
        let engine = match &options.endpoint {
            RedisEndpoint::Cluster { .. } => "Redis Cluster",
            _ => "Redis",
        };
        super::kit::connect_within(engine, &describe, &hosts, options.connect_timeout, || {
            Self::connect_once(&options, ca.as_ref(), describe.clone())
        })
        .await
    }

    async fn connect_once(options: &RedisOptions, ca: Option<&Vec<u8>>, describe: String) -> Result<Self> {
        let link = Link::connect(options, ca).await.map_err(|e| map_error(&describe, e))?;
        let topology = match &link {
            Link::Cluster(..) => {
                let map = cluster::SlotMap::read(&link).await.map_err(|e| map_error(&describe, e))?;
                if map.masters().is_empty() {
                    return Err(Error::unavailable(describe, "the cluster serves no slots yet (still forming?)"));
                }
                if map.masters().len() > 1 {
                    Topology::Sharded
                } else {
                    Topology::OneShard
                }
            }
            _ => Topology::Single,
        };
        // Nothing is sent beyond the driver's handshake (authentication, the database): no
        // write (the root is made by the first write), no `INFO`, no `SCRIPT LOAD`, so that a
        // user allowed only to read, or a read-only replica, can read. A single-server spec
        // that reaches a Redis Cluster node is told so at its first command (`MOVED`,
        // `CROSSSLOT`: see `cluster_refusal`).
        Ok(RedisBackend {
            inner: Arc::new(Inner {
                describe,
                topology,
                wait_replicas: options.wait_replicas,
                history: options.history,
                link,
                legacy_scripts: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &Cmd) -> Result<T> {
        let mut conn = self.inner.link.connection().await.map_err(|e| self.map_error(e))?;
        let result = cmd.query_async(&mut conn).await;
        result.map_err(|e| self.failed(e))
    }

    /// [`Self::query`] of a command on one key of confo's: a key of another type there
    /// (`WRONGTYPE`) is another program's data, named ([`Error::Corrupt`]), not an outage.
    async fn query_key<T: redis::FromRedisValue>(&self, cmd: &Cmd, key: &str) -> Result<T> {
        let mut conn = self.inner.link.connection().await.map_err(|e| self.map_error(e))?;
        let result = cmd.query_async(&mut conn).await;
        result.map_err(|e| match e.code() {
            Some("WRONGTYPE") => self.corrupt(key, foreign_problem("value of another type")),
            _ => self.failed(e),
        })
    }

    /// Runs a script on KEYS = [root, namespace key] and ARGV = [namespace, extra...].
    async fn script<T: redis::FromRedisValue>(&self, script: &Lua, namespace: &str, extra: &[&[u8]]) -> Result<T> {
        self.script_on(script, namespace, namespace, extra).await
    }

    /// Runs a script on KEYS = [root, `key`] and ARGV = [namespace, extra...].
    async fn script_on<T: redis::FromRedisValue>(
        &self,
        script: &Lua,
        key: &str,
        namespace: &str,
        extra: &[&[u8]],
    ) -> Result<T> {
        self.eval(script, &[ROOT_KEY, key], namespace, extra).await
    }

    /// A configuration's name as the JSON token `read_one.lua` searches the index for.
    fn name_token(&self, namespace: &str, name: &str) -> Result<String> {
        serde_json::to_string(name).map_err(|e| Error::InvalidValue {
            location: self.key_location(&format!("{namespace}-{name}")),
            message: e.to_string(),
        })
    }

    /// What `read_one.lua` answered for a listed configuration, read as a bulk load reads
    /// each entry (so both say the same of every entry): its value, or why it is corrupt.
    fn read_one_value(&self, namespace: &str, name: &str, value: Vec<u8>, sink: &dyn Sink) {
        let bytes = if value == b"\0missing" { None } else { Some(value) };
        self.hand(sink, namespace, (name.to_owned(), bytes));
    }

    /// Hands a (configuration name, stored value) pair read from a namespace to `sink`, or
    /// what is wrong with it and where ([`decode_value`]).
    fn hand(&self, sink: &dyn Sink, namespace: &str, pair: (String, Option<Vec<u8>>)) {
        if let Some((name, problem, version)) = decode_value(sink, pair) {
            let location = self.key_location(&format!("{namespace}-{name}"));
            sink.corrupt(name, Corruption { location, problem }, version);
        }
    }

    /// The scripts this topology runs.
    fn scripts(&self) -> &'static Scripts {
        match self.inner.topology {
            Topology::OneShard => &ONE_SHARD_SCRIPTS,
            Topology::Single | Topology::Sharded => &SCRIPTS,
        }
    }

    /// Runs a script on `keys` and ARGV = [namespace, extra...]; errors name `namespace`.
    async fn eval<T: redis::FromRedisValue>(
        &self,
        script: &Lua,
        keys: &[&str],
        namespace: &str,
        extra: &[&[u8]],
    ) -> Result<T> {
        let args: Vec<&[u8]> = std::iter::once(namespace.as_bytes()).chain(extra.iter().copied()).collect();
        let legacy = &self.inner.legacy_scripts;
        let result = match (&self.inner.link, self.inner.topology) {
            // The client refuses keys of several slots in one call: sent to the one master.
            (Link::Cluster(link), Topology::OneShard) => match link.connection().await {
                Ok(connection) => {
                    invoke(script, legacy, true, keys, &args, |cmd| cluster::on_master(connection.clone(), cmd)).await
                }
                Err(e) => Err(e),
            },
            _ => {
                let conn = self.inner.link.connection().await.map_err(|e| self.map_error(e))?;
                invoke(script, legacy, false, keys, &args, |cmd| {
                    let mut conn = conn.clone();
                    async move { cmd.query_async::<redis::Value>(&mut conn).await }
                })
                .await
            }
        };
        let result = result.and_then(|value| redis::from_redis_value::<T>(value).map_err(RedisError::from));
        match result {
            // During a Sentinel failover the connection may reach a server that has become an
            // empty, resyncing replica: its answer is not about our data.
            Err(e) if e.code() == Some("NOTFOUND") && matches!(self.inner.link, Link::Sentinel(_)) => {
                let mut conn = self.inner.link.connection().await.map_err(|e| self.map_error(e))?;
                let role: redis::RedisResult<Vec<redis::Value>> = redis::cmd("ROLE").query_async(&mut conn).await;
                let on_master = matches!(role.as_deref(), Ok([redis::Value::BulkString(r), ..]) if r == b"master");
                if on_master {
                    Err(self.script_error(namespace, e))
                } else {
                    self.inner.link.forget();
                    Err(Error::unavailable(
                        self.inner.describe.clone(),
                        "reached a server that is no longer the master (failover in progress)",
                    ))
                }
            }
            other => other.map_err(|e| self.script_error(namespace, e)),
        }
    }

    /// A cluster's answer to a single-server spec: the server is a Redis Cluster node.
    fn cluster_refusal(&self, e: &RedisError) -> Option<Error> {
        let cluster = matches!(e.code(), Some("MOVED" | "ASK" | "CROSSSLOT" | "CLUSTERDOWN"));
        (cluster && self.inner.topology == Topology::Single).then(|| {
            Error::spec(
                Some("scheme"),
                format!(
                    "{} is a Redis Cluster node: connect with redis+cluster://HOST:PORT[,HOST:PORT...] (confo's \
                     one-server scripts touch the root, namespace and data keys together)",
                    self.inner.describe
                ),
            )
        })
    }

    fn map_error(&self, e: RedisError) -> Error {
        map_error(&self.inner.describe, e)
    }

    /// Maps an error of a request, and drops a connection that a failover made stale.
    fn failed(&self, e: RedisError) -> Error {
        if let Some(refusal) = self.cluster_refusal(&e) {
            return refusal;
        }
        self.inner.link.failed(&e);
        self.map_error(e)
    }

    fn script_error(&self, namespace: &str, e: RedisError) -> Error {
        let detail = e.detail().unwrap_or_default().to_owned();
        match e.code() {
            Some("CONFLICT") => {
                let location = self.key_location(&format!("{namespace}-{detail}"));
                Error::conflict(location, Some(ConfigId::new(namespace, detail)))
            }
            Some("SCHEMA_CONFLICT") => Error::conflict(self.key_location(&detail), None),
            Some("NOTFOUND") => Error::not_found(Missing::Namespace, namespace, self.inner.describe.clone()),
            Some("CORRUPT") => Error::Corrupt {
                corruptions: vec![Corruption {
                    location: self.key_location(&detail),
                    problem: "not an index document of confo's layout".into(),
                }],
            },
            Some("FOREIGN") => {
                let (kind, key) = detail.split_once(' ').unwrap_or(("value", detail.as_str()));
                let problem = match kind {
                    "unlisted" => "foreign data: the key holds a value that confo's index does not list (written by \
                                   another program); confo does not overwrite it"
                        .to_owned(),
                    kind => foreign_problem(kind),
                };
                Error::Corrupt { corruptions: vec![Corruption { location: self.key_location(key), problem }] }
            }
            _ => self.failed(e),
        }
    }

    /// Every key matching a `SCAN` pattern: on the server, or on every master of a cluster.
    pub(super) async fn scan_keys(&self, pattern: &str) -> Result<Vec<String>> {
        let nodes = match &self.inner.link {
            Link::Cluster(..) => {
                let map = cluster::SlotMap::read(&self.inner.link).await.map_err(|e| self.failed(e))?;
                map.masters().into_iter().map(Some).collect()
            }
            _ => vec![None],
        };
        let mut keys = Vec::new();
        for node in nodes {
            let mut cursor: u64 = 0;
            // SCAN ends when the server hands back cursor 0.
            loop {
                let mut scan = redis::cmd("SCAN");
                scan.arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(1000);
                let (next, found): (u64, Vec<String>) = match &node {
                    Some((host, port)) => self.on_node(scan, host, *port).await?,
                    None => self.query(&scan).await?,
                };
                keys.extend(found);
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(keys)
    }

    /// The names an index document lists (`{"<field>": [...]}` under `key`); none if the key
    /// is missing.
    pub(super) async fn read_index(&self, key: &str, field: &str) -> Result<Vec<String>> {
        let raw: Option<Vec<u8>> = self.query_key(redis::cmd("GET").arg(key), key).await?;
        let Some(raw) = raw else { return Ok(Vec::new()) };
        let doc: serde_json::Value =
            serde_json::from_slice(&raw).map_err(|e| self.corrupt(key, format!("not JSON: {e}")))?;
        let list = doc
            .get(field)
            .and_then(|l| l.as_array())
            .ok_or_else(|| self.corrupt(key, format!("expected {{\"{field}\": [...]}}")))?;
        list.iter()
            .map(|n| n.as_str().map(str::to_owned).ok_or_else(|| self.corrupt(key, "a name is not a string")))
            .collect()
    }

    fn key_location(&self, key: &str) -> String {
        format!("{} key {key:?}", self.inner.describe)
    }

    fn corrupt(&self, key: &str, problem: impl Into<String>) -> Error {
        Error::Corrupt { corruptions: vec![Corruption { location: self.key_location(key), problem: problem.into() }] }
    }

    /// Waits until the configured number of replicas acknowledged the writes made so far.
    async fn wait_for_replicas(&self) -> Result<()> {
        self.wait_for_replicas_of(&[]).await
    }

    /// The same, in a sharded cluster on the masters of `keys` only (the others may have lost
    /// their replica without this write depending on it; no keys: every master).
    async fn wait_for_replicas_of(&self, keys: &[&str]) -> Result<()> {
        if self.inner.wait_replicas == 0 {
            return Ok(());
        }
        let mut wait = redis::cmd("WAIT");
        wait.arg(self.inner.wait_replicas).arg(2000);
        let acked: u32 = if self.inner.topology == Topology::Sharded && !keys.is_empty() {
            self.cluster_wait(&wait, keys).await?
        } else {
            self.query(&wait).await?
        };
        if acked < self.inner.wait_replicas {
            return Err(Error::unavailable(
                self.inner.describe.clone(),
                format!("the write reached {acked} replica(s), {} required", self.inner.wait_replicas),
            ));
        }
        Ok(())
    }
}

/// Who, when and why of a history record, as the start of a JSON object (`{"time":…,…`
/// without its closing brace): what the write script completes.
fn meta_prefix(record: &crate::model::history::Record<'_>) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(&serde_json::Value::Object(record.meta())).unwrap_or_else(|_| b"{}".to_vec());
    bytes.pop();
    bytes
}

/// What a Redis client error means, as a sentence about the server (never the driver's own
/// words for a protocol it could not parse).
///
/// The driver gives some of these only in its message: it is read here, once, at the edge, and
/// what it means goes on as an [`Outage`] that callers branch on.
fn plain_message(e: &RedisError) -> (Outage, String) {
    let text = e.to_string();
    let lower = text.to_ascii_lowercase();
    if lower.contains("parse error") || lower.contains("unexpected") {
        (
            Outage::Mismatch,
            "it answered something other than the Redis protocol (an HTTP server? a TLS port? use rediss:// for TLS)"
                .into(),
        )
    } else if lower.contains("invalidcontenttype") || lower.contains("corrupt message") || lower.contains("certificate")
    {
        (
            Outage::Mismatch,
            format!("the TLS handshake failed ({text}): check rediss:// against the server's TLS setting, and tls_ca"),
        )
    } else if lower.contains("broken pipe") || lower.contains("connection reset") || lower.contains("connection closed")
    {
        (Outage::Other, "the server closed the connection".into())
    } else if lower.contains("clusterconnectionnotfound") || lower.contains("no connections found") {
        (
            Outage::Other,
            "no cluster node answered with its slots (is the cluster formed? `redis-cli --cluster check`)".into(),
        )
    } else if lower.contains("refused") {
        (Outage::NotReached, "the connection was refused".into())
    } else if lower.contains("timed out") {
        (Outage::Other, "no answer in time".into())
    } else {
        (Outage::Other, text)
    }
}

fn map_error(describe: &str, e: RedisError) -> Error {
    classify(describe, &e).caused_by(e)
}

/// The error a driver's error means, worded about the store.
fn classify(describe: &str, e: &RedisError) -> Error {
    let auth = matches!(e.kind(), ErrorKind::AuthenticationFailed)
        || matches!(e.code(), Some("WRONGPASS" | "NOAUTH" | "NOPERM"))
        || e.to_string().contains("WRONGPASS")
        || e.to_string().contains("NOAUTH")
        // (A cluster client wraps a refused AUTH in its "initial connections" error.)
        || e.to_string().contains("AuthenticationFailed");
    if auth {
        return Error::unauthorized(describe.to_owned(), e.to_string());
    }
    if e.to_string().contains("cluster support disabled") {
        return Error::spec(
            Some("scheme"),
            format!("{describe}: this server is not a Redis Cluster node: connect with redis://HOST:PORT (or redis+sentinel://…)"),
        );
    }
    if e.to_string().contains("DB index is out of range") {
        return Error::spec(
            Some("db"),
            format!(
                "{describe} has no such database (the server's `databases` setting bounds the index, 16 by default)"
            ),
        );
    }
    let (outage, message) = plain_message(e);
    Error::outage(outage, describe, message)
}

/// A value read from a namespace as the bytes to decode and their version; else what is wrong
/// with it before decoding: its key is missing (`None`), or holds another type than a string.
fn stored_bytes(value: Option<Vec<u8>>) -> std::result::Result<(Vec<u8>, Version), String> {
    match value {
        None => Err("listed in its namespace's index but the key does not exist".to_owned()),
        Some(bytes) => match bytes.strip_prefix(b"\0foreign ") {
            Some(kind) => Err(foreign_problem(&String::from_utf8_lossy(kind))),
            None => {
                let version = sha1_version(&bytes);
                Ok((bytes, version))
            }
        },
    }
}

/// Hands a (configuration name, stored value) pair read from a namespace to `sink`, with its
/// version; returns what is wrong with one that is not a configuration, and its version if
/// something is stored under it.
fn decode_value(
    sink: &dyn Sink,
    (name, value): (String, Option<Vec<u8>>),
) -> Option<(String, String, Option<Version>)> {
    match stored_bytes(value) {
        Err(problem) => Some((name, problem, None)),
        Ok((bytes, version)) => sink.entry(name, &bytes, version).err().map(|refused| {
            let problem = refused.described();
            (refused.name, problem, Some(refused.version))
        }),
    }
}

/// What is wrong with a key of another type where confo keeps a string.
fn foreign_problem(kind: &str) -> String {
    format!("foreign data: a Redis {kind} where confo's layout keeps a JSON string (another program's key; confo leaves it alone)")
}

/// The history stream of a configuration: `confo-history:{<ns>-<cfg>}` (the hash tag keeps it in
/// the data key's Redis Cluster slot).
pub(crate) fn history_key(namespace: &str, config: &str) -> String {
    format!("confo-history:{{{namespace}-{config}}}")
}

/// A namespace's schema document: `confo-schema:<ns>` (the `confo-` prefix cannot collide with
/// the seed's keys: a namespace may not be named `confo` nor contain `-`).
pub(crate) fn schema_key(namespace: &str) -> String {
    format!("confo-schema:{namespace}")
}

/// A precondition as the scripts take it: `A` (any), `N` (absent) or `V` and the expected
/// SHA-1 of the stored value.
fn precondition_args(precondition: &Precondition) -> (&'static str, String) {
    match precondition {
        Precondition::Any => ("A", String::new()),
        Precondition::Absent => ("N", String::new()),
        // Our Redis versions are SHA-1 digests; any other token never matches one.
        Precondition::Version(v) => ("V", v.as_text().unwrap_or("not-a-digest").to_owned()),
    }
}

/// `text` as a literal in a SCAN/KEYS glob.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn sha1_version(bytes: &[u8]) -> Version {
    Version::text(sha1_smol::Sha1::from(bytes).digest().to_string())
}

#[async_trait]
impl Backend for RedisBackend {
    fn describe(&self) -> String {
        self.inner.describe.clone()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            notifies: true,
            // A raw `SET` by another program publishes nothing.
            notifies_every_change: false,
            max_value_bytes: None,
            history: self.inner.history.enabled,
        }
    }

    fn check_name(&self, kind: NameKind, name: &str) -> Result<()> {
        let rule = match kind {
            NameKind::Namespace if name.contains('-') => {
                "a namespace must not contain '-': the key <namespace>-<configuration> would be ambiguous"
            }
            NameKind::Namespace if name == ROOT_KEY => "a namespace must not be named 'confo': that is the root key",
            _ if self.inner.topology != Topology::Single && name.contains(['{', '}']) => {
                "in a Redis Cluster a name must not contain '{' or '}': they would move the key's hash tag, and a \
                 configuration's history to another slot than its value"
            }
            _ => return Ok(()),
        };
        Err(Error::InvalidName {
            name: name.to_owned(),
            kind,
            rule: NameRule::Backend { backend: "redis", rule: rule.to_owned() },
        })
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = %self.inner.describe))]
    async fn list_namespaces(&self) -> Result<Vec<String>> {
        let mut names = self.read_index(ROOT_KEY, "namespaces").await?;
        names.sort();
        names.dedup();
        Ok(names)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(backend = %self.inner.describe))]
    async fn create(&self, namespace: &NamespaceName) -> Result<bool> {
        let namespace = namespace.as_str();
        if self.inner.topology == Topology::Sharded {
            return self.cluster_create(namespace).await;
        }
        let created: i64 = self.script(&self.scripts().create_namespace, namespace, &[]).await?;
        self.wait_for_replicas().await?;
        Ok(created == 1)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(backend = %self.inner.describe))]
    async fn delete(&self, namespace: &NamespaceName) -> Result<()> {
        let namespace = namespace.as_str();
        if self.inner.topology == Topology::Sharded {
            return self.cluster_delete(namespace).await;
        }
        let _: i64 = self.script(&self.scripts().delete_namespace, namespace, &[]).await?;
        self.wait_for_replicas().await
    }

    #[tracing::instrument(level = "debug", skip(self, sink), fields(backend = %self.inner.describe))]
    async fn read_one(&self, namespace: &NamespaceName, name: &ConfigName, sink: Arc<dyn Sink>) -> Result<()> {
        let (namespace, name) = (namespace.as_str(), name.as_str());
        if self.inner.topology == Topology::Sharded {
            return self.cluster_read_one(namespace, name, &*sink).await;
        }
        let token = self.name_token(namespace, name)?;
        let value: Option<Vec<u8>> =
            self.script(&self.scripts().read_one, namespace, &[name.as_bytes(), token.as_bytes()]).await?;
        if let Some(value) = value {
            self.read_one_value(namespace, name, value, &*sink);
        }
        Ok(())
    }

    async fn read_one_with_schema(
        &self,
        namespace: &NamespaceName,
        name: &ConfigName,
        known: Option<&Version>,
        sink: Arc<dyn Sink>,
    ) -> Result<SchemaRead> {
        if self.inner.topology == Topology::Sharded {
            // The schema key is in another slot: two requests.
            self.read_one(namespace, name, sink).await?;
            return Ok(SchemaRead::of(self.schema_document(namespace).await, known));
        }
        let (ns, config) = (namespace.as_str(), name.as_str());
        let token = self.name_token(ns, config)?;
        let key = schema_key(ns);
        let held = known.and_then(Version::as_text).unwrap_or_default();
        let args: [&[u8]; 3] = [config.as_bytes(), token.as_bytes(), held.as_bytes()];
        let (value, listed, schema): (Vec<u8>, i64, Vec<u8>) =
            self.eval(&self.scripts().read_one, &[ROOT_KEY, ns, &key], ns, &args).await?;
        let read = if schema == b"=" {
            SchemaRead::Same
        } else if schema.is_empty() {
            SchemaRead::Now(Ok(None))
        } else if let Some(kind) = schema.strip_prefix(b"\0foreign ") {
            let kind = String::from_utf8_lossy(kind);
            SchemaRead::Now(Err(self.corrupt(&key, foreign_problem(&kind))))
        } else {
            let version = sha1_version(&schema);
            SchemaRead::Now(Ok(Some((schema, version))))
        };
        if listed != 0 {
            self.read_one_value(ns, config, value, &*sink);
        }
        Ok(read)
    }

    #[tracing::instrument(level = "debug", skip(self, sink), fields(backend = %self.inner.describe))]
    async fn scan(&self, namespace: &NamespaceName, sink: Arc<dyn Sink>) -> Result<()> {
        let namespace = namespace.as_str();
        let pairs = self.read_pairs(namespace).await?;
        sink.expect(pairs.len());
        // Decoding and hashing cost more than the read: large namespaces use every core.
        for (name, problem, version) in decode_all(pairs, sink.clone(), decode_value).await {
            let location = self.key_location(&format!("{namespace}-{name}"));
            sink.corrupt(name, Corruption { location, problem }, version);
        }
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip(self, changes), fields(backend = %self.inner.describe, changes = changes.len()))]
    async fn apply(&self, namespace: &NamespaceName, changes: &ChangeSet<'_>) -> WriteReport {
        let namespace = namespace.as_str();
        let changes_set = changes;
        let changes: &[Change] = changes;
        // Encode every value first: a value that cannot be encoded fails the batch before
        // anything is written.
        let mut encoded: Vec<(Vec<u8>, Option<Version>)> = Vec::with_capacity(changes.len());
        for change in changes {
            match &change.kind {
                ChangeKind::Put(value) => match serde_json::to_vec(&**value) {
                    Ok(bytes) => {
                        let version = sha1_version(&bytes);
                        encoded.push((bytes, Some(version)));
                    }
                    Err(e) => {
                        return WriteReport::failed(Error::InvalidValue {
                            location: self.key_location(&format!("{namespace}-{}", change.name)),
                            message: e.to_string(),
                        })
                    }
                },
                ChangeKind::Delete => encoded.push((Vec::new(), None)),
            }
        }
        let history = &self.inner.history;
        let time = crate::model::history::now();
        let (history_arg, meta) = if history.enabled {
            let max_age = history.max_age.map_or(0, |a| a.as_millis().max(1));
            let now = time.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
            let record = crate::model::history::Record {
                number: 0,
                operation: crate::model::history::Operation::Change,
                time,
                author: changes_set.author(),
                restores: None,
                before: None,
                after: None,
                value: None,
            };
            (format!("{} {max_age} {now}", history.keep.max(1)).into_bytes(), meta_prefix(&record))
        } else {
            (Vec::new(), Vec::new())
        };
        let time_text = crate::model::history::format_time(time).into_bytes();
        if self.inner.topology == Topology::Sharded {
            let history = cluster::HistoryArgs { settings: &history_arg, meta: &meta, time: &time_text };
            return self.cluster_apply(namespace, changes, &encoded, history).await;
        }
        // The schema document the batch was checked against, checked again in the script.
        let schema_key = schema_key(namespace);
        let schema_arg = match changes_set.schema() {
            None | Some(Precondition::Any) => Vec::new(),
            Some(Precondition::Absent) => b"N".to_vec(),
            Some(Precondition::Version(v)) => format!("V{}", v.as_text().unwrap_or("not-a-digest")).into_bytes(),
        };
        let mut report = WriteReport::default();
        for range in chunk_ranges(changes.len(), CHUNK_CHANGES, CHUNK_BYTES, |i| encoded[i].0.len()) {
            let (start, end) = (range.start, range.end);
            let mut args: Vec<Vec<u8>> = Vec::with_capacity(4 + (end - start) * 7);
            args.push(history_arg.clone());
            args.push(meta.clone());
            args.push(time_text.clone());
            args.push(schema_arg.clone());
            for (change, (value, version)) in changes[start..end].iter().zip(&encoded[start..end]) {
                let op = match change.kind {
                    ChangeKind::Put(_) => "P",
                    ChangeKind::Delete => "D",
                };
                let (pre, expected) = precondition_args(&change.precondition);
                args.push(op.into());
                args.push(change.name.clone().into_bytes());
                args.push(pre.into());
                args.push(expected.into_bytes());
                args.push(value.clone());
                args.push(change.restores.map(|n| n.to_string()).unwrap_or_default().into_bytes());
                args.push(version.as_ref().and_then(|v| v.as_text()).unwrap_or_default().as_bytes().to_vec());
            }
            let arg_refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            let keys = [ROOT_KEY, namespace, schema_key.as_str()];
            let written: Result<i64> = self.eval(&self.scripts().write, &keys, namespace, &arg_refs).await;
            if let Err(e) = written {
                report.error = Some(e);
                return report;
            }
            for (change, (_, version)) in changes[start..end].iter().zip(&encoded[start..end]) {
                report.applied.push(Applied { name: change.name.clone(), version: version.clone() });
            }
        }
        if let Err(e) = self.wait_for_replicas().await {
            report.error = Some(e);
        }
        report
    }

    #[tracing::instrument(level = "debug", skip(self), fields(backend = %self.inner.describe))]
    async fn history(&self, namespace: &NamespaceName, name: &ConfigName) -> Result<crate::model::history::History> {
        let key = history_key(namespace.as_str(), name.as_str());
        // Another type under the key is another program's data, not ours to read.
        let entries: Vec<(String, Vec<Vec<u8>>)> =
            self.query_key(redis::cmd("XRANGE").arg(&key).arg("-").arg("+"), &key).await?;
        let mut history = crate::model::history::History::default();
        for (id, fields) in entries {
            let number = id.split_once('-').and_then(|(_, seq)| seq.parse::<u64>().ok());
            let record = fields.chunks(2).find(|pair| pair[0] == b"r").and_then(|pair| pair.get(1));
            let location = || format!("{}@{}", self.key_location(&key), number.map_or(id.clone(), |n| n.to_string()));
            match record {
                Some(bytes) => match crate::model::history::decode_record(bytes, number, location) {
                    Ok(revision) => history.revisions.push(revision),
                    Err(corruption) => history.corrupt.push(corruption),
                },
                None => history
                    .corrupt
                    .push(Corruption { location: location(), problem: "an entry without its record (r)".into() }),
            }
        }
        Ok(history.sorted())
    }

    async fn rewrite_history(
        &self,
        namespace: &NamespaceName,
        name: &ConfigName,
        rewrite: &crate::model::history::Rewrite,
    ) -> Result<Vec<u64>> {
        let key = history_key(namespace.as_str(), name.as_str());
        let entries: Vec<(String, Vec<Vec<u8>>)> =
            self.query_key(redis::cmd("XRANGE").arg(&key).arg("-").arg("+"), &key).await?;
        let Some(newest) = entries.last().map(|(id, _)| id.clone()) else { return Ok(Vec::new()) };
        let mut numbers = Vec::new();
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(include_str!("purge.lua")).arg(2).arg(&key).arg(format!("{key}:rewrite")).arg(&newest);
        for (id, fields) in &entries {
            let Some(bytes) = fields.chunks(2).find(|pair| pair[0] == b"r").and_then(|pair| pair.get(1)) else {
                continue;
            };
            let Some(record) = crate::model::history::rewritten_record(bytes, rewrite) else { continue };
            let bytes = serde_json::to_vec(&record)
                .map_err(|e| Error::InvalidValue { location: self.key_location(&key), message: e.to_string() })?;
            cmd.arg(id).arg(bytes);
            numbers.extend(id.split_once('-').and_then(|(_, seq)| seq.parse::<u64>().ok()));
        }
        if numbers.is_empty() {
            return Ok(numbers);
        }
        let replaced: i64 = self.query_key(&cmd, &key).await?;
        match replaced {
            -2 => Err(Error::conflict(self.key_location(&key), None)),
            n if n < 0 => Err(self.corrupt(&key, foreign_problem("value of another type"))),
            _ => {
                numbers.sort_unstable();
                Ok(numbers)
            }
        }
    }

    async fn history_names(&self, namespace: &NamespaceName) -> Result<Vec<String>> {
        let prefix = format!("confo-history:{{{}-", namespace.as_str());
        let pattern = format!("{}*}}", glob_escape(&prefix));
        let keys = self.scan_keys(&pattern).await?;
        let mut names: Vec<String> =
            keys.iter().filter_map(|k| k.strip_prefix(&prefix)?.strip_suffix('}').map(str::to_owned)).collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    async fn schema_document(&self, namespace: &NamespaceName) -> Result<Option<(Vec<u8>, Version)>> {
        let key = schema_key(namespace.as_str());
        let found: Option<Vec<u8>> = self.query_key(redis::cmd("GET").arg(&key), &key).await?;
        Ok(found.map(|bytes| {
            let version = sha1_version(&bytes);
            (bytes, version)
        }))
    }

    async fn put_schema_document(
        &self,
        namespace: &NamespaceName,
        document: Option<Vec<u8>>,
        precondition: &Precondition,
    ) -> Result<Option<Version>> {
        let key = schema_key(namespace.as_str());
        let (pre, expected) = precondition_args(precondition);
        let body = document.as_deref().unwrap_or_default();
        let args: [&[u8]; 3] = [pre.as_bytes(), expected.as_bytes(), body];
        let sha: String = if self.inner.topology == Topology::Sharded {
            // The root is in another slot: the namespace is checked first (a removal needs no
            // namespace).
            if document.is_some() {
                self.require_namespace(namespace.as_str()).await?;
            }
            self.eval(&self.scripts().schema, &[&key], namespace.as_str(), &args).await?
        } else {
            self.eval(&self.scripts().schema, &[&key, ROOT_KEY], namespace.as_str(), &args).await?
        };
        self.wait_for_replicas_of(&[&key]).await?;
        Ok((!sha.is_empty()).then(|| Version::text(sha)))
    }

    async fn repair(&self, options: &super::RepairOptions) -> Result<super::Repair> {
        self.find_and_repair(options).await
    }

    async fn subscribe(&self) -> Result<Option<Hints>> {
        use futures_util::StreamExt;
        let this = self.clone();
        Ok(Some(super::spawn_subscription(move |tx| {
            let this = this.clone();
            async move {
                let mut pubsub = match this.inner.link.pubsub().await {
                    Ok(pubsub) => pubsub,
                    Err(e) => {
                        tracing::debug!(backend = %this.inner.describe, error = %e, "event subscription failed; retrying");
                        return;
                    }
                };
                let _ = tx.send(Hint::All);
                let mut messages = pubsub.on_message();
                // Ends when the connection drops.
                while let Some(message) = messages.next().await {
                    let namespace = serde_json::from_slice::<serde_json::Value>(message.get_payload_bytes())
                        .ok()
                        .and_then(|v| v.get("namespace").and_then(|n| n.as_str()).map(str::to_owned));
                    let _ = tx.send(namespace.map_or(Hint::All, Hint::Namespace));
                }
            }
        })))
    }
}

// ----- connections -----

/// One server through a self-reconnecting [`ConnectionManager`], or the current master of a
/// Sentinel group.
enum Link {
    Direct(ConnectionManager, Box<(redis::Client, std::time::Duration)>),
    Sentinel(Box<SentinelLink>),
    Cluster(Box<ClusterLink>),
}

/// A Redis Cluster: its client, the connection in use, and where to subscribe.
struct ClusterLink {
    client: redis::cluster::ClusterClient,
    /// `None` after a request timed out: the next request connects again (a cluster connection
    /// has been seen to stop answering for good after slots moved under load, while a new one
    /// works at once).
    current: Mutex<Option<ClusterConnection>>,
    /// A client per seed node (the subscription tries them in turn, then the nodes the cluster
    /// announces).
    clients: Vec<redis::Client>,
    /// How to make a client for an announced node.
    options: RedisOptions,
    ca: Option<Vec<u8>>,
}

struct SentinelLink {
    client: tokio::sync::Mutex<SentinelClient>,
    config: AsyncConnectionConfig,
    // A std Mutex: held only to clone or replace the handle, never across an await.
    current: Mutex<Option<MultiplexedConnection>>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Link::Direct(..) => "Link::Direct",
            Link::Sentinel(_) => "Link::Sentinel",
            Link::Cluster(..) => "Link::Cluster",
        })
    }
}

fn redis_settings(options: &RedisOptions) -> redis::RedisConnectionInfo {
    let mut settings = redis::RedisConnectionInfo::default().set_db(options.db);
    if let Some(user) = &options.username {
        settings = settings.set_username(user);
    }
    if let Some(password) = &options.password {
        settings = settings.set_password(password.expose());
    }
    settings
}

fn tls_certificates(ca: Option<&Vec<u8>>) -> Option<redis::TlsCertificates> {
    ca.map(|pem| redis::TlsCertificates { client_tls: None, root_cert: Some(pem.clone()) })
}

/// A client for one node (a server, or a cluster node to subscribe on).
fn node_client(
    options: &RedisOptions,
    ca: Option<&Vec<u8>>,
    host: &str,
    port: u16,
) -> redis::RedisResult<redis::Client> {
    let info = addr(options, host, port).into_connection_info()?.set_redis_settings(redis_settings(options));
    match tls_certificates(ca) {
        Some(certs) => redis::Client::build_with_tls(info, certs),
        None => redis::Client::open(info),
    }
}

fn addr(options: &RedisOptions, host: &str, port: u16) -> ConnectionAddr {
    if options.tls {
        ConnectionAddr::TcpTls { host: host.to_owned(), port, insecure: false, tls_params: None }
    } else {
        ConnectionAddr::Tcp(host.to_owned(), port)
    }
}

impl Link {
    /// Connects; `ca` is the content of `tls_ca`, read beforehand (a missing file is not a
    /// connection error).
    async fn connect(options: &RedisOptions, ca: Option<&Vec<u8>>) -> redis::RedisResult<Link> {
        match &options.endpoint {
            RedisEndpoint::Server { host, port } => {
                let client = node_client(options, ca, host, *port)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(options.connect_timeout))
                    .set_response_timeout(Some(options.response_timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(std::time::Duration::from_millis(500));
                let manager = client.get_connection_manager_with_config(config).await?;
                Ok(Link::Direct(manager, Box::new((client, options.connect_timeout))))
            }
            RedisEndpoint::Sentinel { sentinels, master } => {
                let addrs = sentinels.iter().map(|(h, p)| ConnectionAddr::Tcp(h.clone(), *p));
                let mut builder = SentinelClientBuilder::new(addrs, master, SentinelServerType::Master)?
                    .set_client_to_redis_db(options.db);
                if let Some(user) = &options.username {
                    builder = builder.set_client_to_redis_username(user);
                }
                if let Some(password) = &options.password {
                    builder = builder.set_client_to_redis_password(password.expose());
                }
                if options.tls {
                    builder = builder.set_client_to_redis_tls_mode(redis::TlsMode::Secure);
                    if let Some(certs) = tls_certificates(ca) {
                        builder = builder.set_client_to_redis_certificates(certs);
                    }
                }
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(options.connect_timeout))
                    .set_response_timeout(Some(options.response_timeout));
                let link = Link::Sentinel(Box::new(SentinelLink {
                    client: tokio::sync::Mutex::new(builder.build()?),
                    config,
                    current: Mutex::new(None),
                }));
                link.connection().await?;
                Ok(link)
            }
            RedisEndpoint::Cluster { nodes } => {
                let seeds = nodes
                    .iter()
                    .map(|(host, port)| addr(options, host, *port).into_connection_info())
                    .collect::<redis::RedisResult<Vec<_>>>()?;
                let mut builder = ClusterClientBuilder::new(seeds)
                    .connection_timeout(options.connect_timeout)
                    .response_timeout(options.response_timeout);
                if let Some(user) = &options.username {
                    builder = builder.username(user);
                }
                if let Some(password) = &options.password {
                    builder = builder.password(password.expose());
                }
                if options.tls {
                    builder = builder.tls(redis::TlsMode::Secure);
                    if let Some(certs) = tls_certificates(ca) {
                        builder = builder.certs(certs);
                    }
                }
                let client = builder.build()?;
                let connection = client.get_async_connection().await?;
                let clients = nodes
                    .iter()
                    .map(|(host, port)| node_client(options, ca, host, *port))
                    .collect::<redis::RedisResult<Vec<_>>>()?;
                Ok(Link::Cluster(Box::new(ClusterLink {
                    client,
                    current: Mutex::new(Some(connection)),
                    clients,
                    options: options.clone(),
                    ca: ca.cloned(),
                })))
            }
        }
    }

    async fn connection(&self) -> redis::RedisResult<Conn> {
        match self {
            Link::Direct(manager, ..) => Ok(Conn::Manager(manager.clone())),
            Link::Cluster(link) => Ok(Conn::Cluster(link.connection().await?)),
            Link::Sentinel(link) => {
                let SentinelLink { client, config, current } = &**link;
                if let Some(conn) = current.lock().unwrap_or_else(|p| p.into_inner()).clone() {
                    return Ok(Conn::Multiplexed(conn));
                }
                let conn = client.lock().await.get_async_connection_with_config(config).await?;
                *current.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn.clone());
                Ok(Conn::Multiplexed(conn))
            }
        }
    }

    /// A connection subscribed to [`EVENTS_CHANNEL`], on the server (or current master; in a
    /// cluster, the first node that answers: `PUBLISH` reaches every node).
    async fn pubsub(&self) -> redis::RedisResult<redis::aio::PubSub> {
        let (client, timeout) = match self {
            Link::Cluster(link) => return link.pubsub(self).await,
            Link::Direct(_, pubsub) => (pubsub.0.clone(), pubsub.1),
            Link::Sentinel(link) => {
                let timeout = std::time::Duration::from_secs(3);
                let client = tokio::time::timeout(timeout, async { link.client.lock().await.async_get_client().await })
                    .await
                    .map_err(|_| RedisError::from((ErrorKind::Io, "timed out asking the sentinels")))??;
                (client, timeout)
            }
        };
        let connect = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(EVENTS_CHANNEL).await?;
            Ok(pubsub)
        };
        tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| RedisError::from((ErrorKind::Io, "timed out subscribing")))?
    }

    /// After an error: a Sentinel link forgets its master if the error says it may have moved.
    fn failed(&self, e: &RedisError) {
        let moved = e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_timeout()
            || matches!(e.code(), Some("READONLY" | "MASTERDOWN" | "LOADING"));
        if moved {
            self.forget();
        }
    }

    /// A Sentinel link asks the sentinels for the master again on its next call; a cluster link
    /// connects again.
    fn forget(&self) {
        match self {
            Link::Sentinel(link) => *link.current.lock().unwrap_or_else(|p| p.into_inner()) = None,
            Link::Cluster(link) => *link.current.lock().unwrap_or_else(|p| p.into_inner()) = None,
            Link::Direct(..) => {}
        }
    }
}

/// Any kind of connection, as one [`ConnectionLike`].
#[derive(Clone)]
enum Conn {
    Manager(ConnectionManager),
    Multiplexed(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, redis::Value> {
        match self {
            Conn::Manager(c) => c.req_packed_command(cmd),
            Conn::Multiplexed(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Conn::Manager(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Multiplexed(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Manager(c) => c.get_db(),
            Conn::Multiplexed(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    use super::*;

    /// What a server before Redis 7 answers: no `EVALSHA_RO` (a general error; `COMMAND INFO`
    /// knows no such command), and a script it has not seen yet.
    fn old_server(cmd: &Cmd, sent: &Mutex<Vec<String>>) -> redis::RedisResult<redis::Value> {
        let words: Vec<String> = cmd
            .args_iter()
            .filter_map(|a| match a {
                redis::Arg::Simple(b) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            })
            .collect();
        sent.lock().unwrap_or_else(|p| p.into_inner()).push(words[0].clone());
        match words[0].as_str() {
            "EVALSHA_RO" | "EVAL_RO" => {
                Err(RedisError::from((ErrorKind::Server(redis::ServerErrorKind::ResponseError), "unknown command")))
            }
            "COMMAND" => Ok(redis::Value::Array(vec![redis::Value::Nil])),
            "EVALSHA" => Err(RedisError::from((ErrorKind::Server(redis::ServerErrorKind::NoScript), "no script"))),
            "EVAL" if words[1].starts_with("#!") => {
                Err(RedisError::from((ErrorKind::Server(redis::ServerErrorKind::ResponseError), "no shebang before 7")))
            }
            "EVAL" => Ok(redis::Value::Int(7)),
            _ => unreachable!("{words:?}"),
        }
    }

    #[tokio::test]
    async fn a_read_on_a_server_before_redis_7_is_sent_as_a_plain_script_from_then_on() {
        let (legacy, sent) = (AtomicBool::new(false), Mutex::new(Vec::new()));
        let script = &SCRIPTS.read_one;
        assert!(script.source.starts_with("#!lua flags=no-writes\n"));
        let send = |cmd: Cmd| std::future::ready(old_server(&cmd, &sent));
        let value = invoke(script, &legacy, false, &["confo", "ns"], &[b"ns"], send).await.expect("answered");
        assert_eq!(value, redis::Value::Int(7));
        assert!(legacy.load(Ordering::Relaxed));
        assert_eq!(*sent.lock().expect("lock"), ["EVALSHA_RO", "COMMAND", "EVALSHA", "EVAL"]);
        sent.lock().expect("lock").clear();
        invoke(script, &legacy, false, &["confo", "ns"], &[b"ns"], send).await.expect("answered");
        assert_eq!(*sent.lock().expect("lock"), ["EVALSHA", "EVAL"], "straight to the plain script");
    }

    #[tokio::test]
    async fn an_error_of_a_server_that_knows_evalsha_ro_is_the_error() {
        let legacy = AtomicBool::new(false);
        let send = |cmd: Cmd| {
            let first = cmd.args_iter().next().map(|a| matches!(a, redis::Arg::Simple(b) if b == b"COMMAND"));
            std::future::ready(if first == Some(true) {
                Ok(redis::Value::Array(vec![redis::Value::Array(vec![redis::Value::BulkString(
                    b"evalsha_ro".to_vec(),
                )])]))
            } else {
                Err(RedisError::from((ErrorKind::Server(redis::ServerErrorKind::ResponseError), "a script error")))
            })
        };
        let err = invoke(&SCRIPTS.read_one, &legacy, false, &["confo", "ns"], &[b"ns"], send).await.expect_err("error");
        assert_eq!(err.kind(), ErrorKind::Server(redis::ServerErrorKind::ResponseError));
        assert!(!legacy.load(Ordering::Relaxed));
    }
}
