//! ZooKeeper (spec `zk://`): Python confo's znode tree.
//!
//! # Backend details
//!
//! | what | znode | data |
//! | --- | --- | --- |
//! | root | `[chroot]/confo` (created if absent) | none |
//! | namespace | `[chroot]/confo/<ns>` | none |
//! | configuration | `[chroot]/confo/<ns>/<cfg>` | the JSON object, UTF-8, compact |
//!
//! - Empty data reads as `{}` (as Python confo does); data that is not JSON or not an object is
//!   [`Error::Corrupt`] naming the path (Python confo silently made it `{}`). Znodes written by
//!   other clients (`zkCli.sh create /confo/sales/db '{"host": "x"}'`) load.
//! - A configuration larger than [`ZkOptions::max_value_bytes`] (1,000,000 bytes, below the
//!   server's 1 MiB `jute.maxbuffer`) is [`Error::TooLarge`] before anything is sent.
//! - **Reads** list the namespace's children, then fetch their data with read-only `multi`
//!   requests (ZooKeeper ≥ 3.6) of 500 znodes each, all in flight at once: a few round
//!   trips whatever the size. Each batch is a consistent snapshot of its znodes.
//! - **Writes** are `multi` transactions of at most 1,000 operations and
//!   900,000 bytes, all in flight at once; each transaction is all-or-nothing. A
//!   batch that needs several transactions first checks every version precondition in check-only
//!   transactions, so a conflict writes nothing; a failure after that reports the transactions
//!   that committed. A node another client created or deleted meanwhile (for a change without a
//!   precondition) makes the write retry with a fresh listing.
//! - **History**: revisions are znodes `[chroot]/confo-history/<ns>/<cfg>/v-NNNNNNNNNN`, created
//!   in the same `multi` as the configuration's version-checked write (see `history.rs`); with
//!   history a value is sent twice, so the largest configuration is 480,000 bytes.
//! - **Versions** are the znodes' stat versions; preconditions are version checks in the same
//!   transaction.
//! - **Auth and ACLs.** With `user:password`, the session authenticates with the `digest` scheme
//!   and every znode confo creates is readable and writable only by that identity (creator-all),
//!   or also world-readable with `acl=world-read`; without credentials they are world-open as in
//!   Python confo. A wrong password is [`Error::Unauthorized`] (ZooKeeper answers `NoAuth`).
//!   With credentials, nodes that others may change (created by another client, world-open) are
//!   refused as [`Error::Insecure`], unless `foreign_acls=trust`: see the `trust` module's
//!   documentation for which nodes are checked and why. A chroot inside `/zookeeper` is refused.
//! - **Sessions.** Connection loss is survived by the client (it reconnects to any server of the
//!   connect string within the session timeout); an expired or closed session is replaced by a
//!   new one on the next call. A dead address is [`Error::Unavailable`] within the connect
//!   timeout (3 s by default).
//! - **Notifications** use one persistent recursive watch on `[chroot]/confo` (ZooKeeper ≥ 3.6),
//!   so changes by any client (`zkCli.sh set …`) are seen. After a disconnection or a new
//!   session the watch is re-armed and a full re-read is asked for, since events during the
//!   gap may be lost (ZOOKEEPER-4698).

mod engine;
mod history;
mod options;
mod schema;
mod trust;

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use zookeeper_client as zk;

pub use options::{ZkAcl, ZkOptions};

use super::kit::{chunk_ranges, decode_all, join_ordered};
use super::{Backend, Capabilities, ChangeSet, Hint, Hints};
use crate::model::change::{Applied, Change, ChangeKind, Precondition, WriteReport};
use crate::model::decode::{Refused, Sink};
use crate::model::error::{ConfigId, Corruption, Error, Missing, Result};
use crate::model::name::{ConfigName, NameKind, NameRule, NamespaceName};
use crate::model::version::Version;
use trust::Trust;

/// Znodes read per read-only `multi`.
/// The process that first used ZooKeeper (see [`ZkBackend::connect`]).
static ZK_PROCESS: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

pub(crate) const READ_BATCH: usize = 500;
/// Most operations per write transaction.
pub(crate) const WRITE_BATCH: usize = 1000;
/// Most data bytes per write transaction (the server refuses requests over 1 MiB).
pub(crate) const WRITE_BATCH_BYTES: usize = 900_000;
/// Largest configuration when history is recorded (see [`ZkBackend::max_value_bytes`]).
pub(crate) const MAX_RECORDED_VALUE_BYTES: usize = 480_000;
/// How often a write is retried after another client created or deleted a node under it.
const WRITE_ATTEMPTS: usize = 3;

/// Python confo's znode tree on a ZooKeeper server or ensemble.
#[derive(Debug, Clone)]
pub struct ZkBackend {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    options: ZkOptions,
    describe: String,
    /// `[chroot]/confo`.
    base: String,
    acls: Vec<zk::Acl>,
    /// Set when nodes must be ours alone to be used (credentials, creator ACLs, no trust).
    trust: Option<Trust>,
    // A std RwLock: held only to clone or replace the handle, never across an await.
    client: RwLock<zk::Client>,
    reconnecting: tokio::sync::Mutex<()>,
}

/// One operation of a write transaction.
#[derive(Clone)]
enum Op {
    Create(Vec<u8>),
    Set(Vec<u8>, Option<i32>),
    Delete(Option<i32>),
    /// A delete of a configuration that does not exist: nothing to send.
    Nothing,
}

impl ZkBackend {
    /// Connects, authenticates, and creates `[chroot]/confo` if it is absent.
    ///
    /// ```no_run
    /// # async fn demo() -> confo::Result<()> {
    /// use confo::backend::zookeeper::{ZkBackend, ZkOptions};
    /// let backend = ZkBackend::connect(ZkOptions::from_url("zk://127.0.0.1:2181")?).await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(options: ZkOptions) -> Result<Self> {
        let describe = options.describe();
        // The ZooKeeper client does its I/O on a process-wide thread (async-io's reactor) that
        // does not survive fork(): in a child of a process that used ZooKeeper, no session can
        // ever start. Say so at once instead of timing out with a misleading message.
        let first_user = *ZK_PROCESS.get_or_init(std::process::id);
        if first_user != std::process::id() {
            return Err(Error::unavailable(
                describe,
                "ZooKeeper cannot be used in a process forked after its parent used ZooKeeper (the \
                 ZooKeeper client's I/O thread does not survive fork()); open ZooKeeper backends \
                 only after forking (gunicorn without --preload, multiprocessing's spawn or \
                 forkserver start method)",
            ));
        }
        // A server that accepts connections but does not serve sessions yet (it is starting)
        // is tried again within the connect timeout; a refused one fails at once.
        super::kit::connect_within("ZooKeeper", &describe, &options.hosts.clone(), options.connect_timeout, || {
            Self::connect_once(options.clone(), describe.clone())
        })
        .await
    }

    async fn connect_once(options: ZkOptions, describe: String) -> Result<Self> {
        let client = new_client(&options).await.map_err(|e| map_error(&describe, e))?;
        let base = format!("{}/confo", options.chroot.as_deref().unwrap_or(""));
        let world_read = [
            zk::Acl::new(zk::Permission::ALL, zk::AuthId::new("auth", "")),
            zk::Acl::new(zk::Permission::READ, zk::AuthId::anyone()),
        ];
        let acls: Vec<zk::Acl> = match options.acl {
            ZkAcl::Open => zk::Acls::anyone_all().to_vec(),
            ZkAcl::CreatorAll => zk::Acls::creator_all().to_vec(),
            ZkAcl::CreatorAllWorldRead => world_read.to_vec(),
        };
        let trust = match (&options.username, &options.password) {
            (Some(user), Some(password)) if options.acl != ZkAcl::Open && !options.trust_foreign_acls => {
                Some(Trust::new(user, password.expose(), &options.trusted))
            }
            _ => None,
        };
        let backend = ZkBackend {
            inner: Arc::new(Inner {
                options,
                describe,
                base,
                acls,
                trust,
                client: RwLock::new(client),
                reconnecting: tokio::sync::Mutex::new(()),
            }),
        };
        // Nothing is written: `[chroot]/confo` is made by the first namespace created, so an
        // identity allowed only to read can connect. Reading it surfaces a wrong password now
        // (the root is only readable by its creator). Its ACL is checked by what uses it
        // (listing and creating namespaces), not here, so that `repair --fix-acls` can open a
        // store whose nodes others may change.
        backend.base_children().await?;
        Ok(backend)
    }

    /// The names under `[chroot]/confo` (none if it does not exist yet), unchecked.
    async fn base_children(&self) -> Result<Vec<String>> {
        let base = self.inner.base.clone();
        let listed = self
            .call(|c, _| {
                let base = base.clone();
                async move { c.list_children(&base).await }
            })
            .await;
        match listed {
            Ok(names) => Ok(names),
            // No root yet: nothing was ever created (it is made by the first write).
            Err(zk::Error::NoNode) => Ok(Vec::new()),
            Err(e) => Err(self.map_error(e)),
        }
    }

    /// Makes `[chroot]/confo` (and the chroot) if it is absent, for the first namespace.
    async fn make_base(&self) -> Result<()> {
        let base = self.inner.base.clone();
        self.call(|c, acls| {
            let base = base.clone();
            async move { c.mkdir(&base, &zk::CreateMode::Persistent.with_acls(zk::Acls::new(&acls))).await }
        })
        .await
        .or_else(|e| if e == zk::Error::NodeExists { Ok(()) } else { Err(e) })
        .map_err(|e| self.map_error(e))?;
        self.check_nodes(vec![base]).await
    }

    /// With [`Inner::trust`]: the namespace node's ACL version if only we may change it, `None`
    /// if it does not exist (or nothing is checked), [`Error::Insecure`] if others may.
    async fn namespace_acl(&self, namespace: &str) -> Result<Option<i32>> {
        let Some(trust) = &self.inner.trust else { return Ok(None) };
        let path = self.namespace_path(namespace);
        let result = self
            .call(|c, _| {
                let path = path.clone();
                async move { c.get_acl(&path).await }
            })
            .await;
        match result {
            Ok((acls, stat)) => {
                trust.check(&acls, || self.location(&path))?;
                Ok(Some(stat.aversion))
            }
            Err(zk::Error::NoNode) => Ok(None),
            Err(zk::Error::NoAuth) => Err(self.unreadable_acl(&path)),
            Err(e) => Err(self.map_error(e)),
        }
    }

    fn unreadable_acl(&self, path: &str) -> Error {
        Error::Insecure {
            location: self.location(path),
            message: "this identity may not read its ACL, so it was created by someone else".to_owned(),
        }
    }

    /// With [`Inner::trust`], checks the ACL of each node (all requests in flight at once).
    async fn check_nodes(&self, paths: Vec<String>) -> Result<()> {
        if self.inner.trust.is_none() || paths.is_empty() {
            return Ok(());
        }
        let checks = join_ordered(paths.into_iter().map(|path| {
            let this = self.clone();
            async move {
                let result = this
                    .call(|c, _| {
                        let path = path.clone();
                        async move { c.get_acl(&path).await }
                    })
                    .await;
                let Some(trust) = &this.inner.trust else { return Ok(()) };
                match result {
                    Ok((acls, _)) => trust.check(&acls, || this.location(&path)),
                    Err(zk::Error::NoNode) => Ok(()),
                    Err(zk::Error::NoAuth) => Err(this.unreadable_acl(&path)),
                    Err(e) => Err(this.map_error(e)),
                }
            }
        }))
        .await;
        // The first failure in the order asked, so the report does not depend on timing.
        checks.into_iter().collect::<Result<Vec<()>>>()?;
        Ok(())
    }

    fn map_error(&self, e: zk::Error) -> Error {
        map_error(&self.inner.describe, e)
    }

    fn client(&self) -> zk::Client {
        self.inner.client.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs `f` with the current client; if the session is gone (expired, closed), makes a new
    /// one and runs `f` once more. Connection loss is retried a few times while the client
    /// reconnects to another server.
    async fn call<T, F, Fut>(&self, f: F) -> std::result::Result<T, zk::Error>
    where
        F: Fn(zk::Client, Vec<zk::Acl>) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, zk::Error>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let client = self.client();
            let session = client.session_id();
            match f(client, self.inner.acls.clone()).await {
                Err(zk::Error::SessionExpired | zk::Error::ClientClosed) if attempt < 3 => {
                    self.renew_session(session).await?;
                }
                Err(zk::Error::ConnectionLoss) if attempt < 4 => {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                other => return other,
            }
        }
    }

    /// Replaces an expired session (once, however many callers noticed it).
    async fn renew_session(&self, expired: zk::SessionId) -> std::result::Result<(), zk::Error> {
        let _one_at_a_time = self.inner.reconnecting.lock().await;
        if self.client().session_id() != expired {
            return Ok(());
        }
        tracing::info!(backend = %self.inner.describe, "ZooKeeper session lost; opening a new one");
        let fresh = new_client(&self.inner.options).await?;
        *self.inner.client.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }

    fn namespace_path(&self, namespace: &str) -> String {
        format!("{}/{namespace}", self.inner.base)
    }

    fn location(&self, path: &str) -> String {
        format!("{} znode {path}", self.inner.describe)
    }

    fn missing_namespace(&self, namespace: &str) -> Error {
        Error::not_found(Missing::Namespace, namespace, self.inner.describe.clone())
    }

    /// The children of a namespace; `NotFound` if it does not exist.
    async fn children(&self, namespace: &str) -> Result<Vec<String>> {
        let path = self.namespace_path(namespace);
        self.call(|c, _| {
            let path = path.clone();
            async move { c.list_children(&path).await }
        })
        .await
        .map_err(|e| if e == zk::Error::NoNode { self.missing_namespace(namespace) } else { self.map_error(e) })
    }

    /// One attempt at writing `changes`: the applied changes, and the error that stopped the
    /// rest with whether a retry with a fresh listing may succeed.
    async fn write_once(&self, namespace: &str, changes: &[Change]) -> (Vec<Applied>, Option<(Error, bool)>) {
        let (children, acl) = tokio::join!(self.children(namespace), self.namespace_acl(namespace));
        let existing: HashSet<String> = match children.and_then(|c| acl.map(|a| (c, a))) {
            Ok((children, acl_version)) => {
                let ns_path = self.namespace_path(namespace);
                // A namespace node whose ACL changed may hold children someone else created.
                if acl_version.is_some_and(|v| v != 0) {
                    let targets = changes
                        .iter()
                        .filter(|c| children.contains(&c.name))
                        .map(|c| format!("{ns_path}/{}", c.name))
                        .collect();
                    if let Err(e) = self.check_nodes(targets).await {
                        return (Vec::new(), Some((e, false)));
                    }
                }
                children.into_iter().collect()
            }
            Err(e) => return (Vec::new(), Some((e, false))),
        };
        let ns_path = self.namespace_path(namespace);
        let mut ops = Vec::with_capacity(changes.len());
        for change in changes {
            let path = format!("{ns_path}/{}", change.name);
            let exists = existing.contains(&change.name);
            let conflict =
                || Some((Error::conflict(self.location(&path), Some(ConfigId::new(namespace, &change.name))), false));
            let op = match (&change.kind, &change.precondition) {
                (_, Precondition::Absent) if exists => return (Vec::new(), conflict()),
                (_, Precondition::Version(_)) if !exists => return (Vec::new(), conflict()),
                (ChangeKind::Put(value), precondition) => {
                    let data = match self.encode(&path, value) {
                        Ok(d) => d,
                        Err(error) => return (Vec::new(), Some((error, false))),
                    };
                    match precondition {
                        Precondition::Version(v) => Op::Set(data, Some(zk_version(v))),
                        _ if exists => Op::Set(data, None),
                        _ => Op::Create(data),
                    }
                }
                (ChangeKind::Delete, Precondition::Version(v)) => Op::Delete(Some(zk_version(v))),
                (ChangeKind::Delete, _) if exists => Op::Delete(None),
                (ChangeKind::Delete, _) => Op::Nothing,
            };
            ops.push((change, path, op));
        }

        // Cut into transactions bounded in operations and bytes.
        let size = |i: usize| {
            let (_, path, op) = &ops[i];
            path.len() + 64 + if let Op::Create(d) | Op::Set(d, _) = op { d.len() } else { 0 }
        };
        let chunks: Vec<&[(&Change, String, Op)]> =
            chunk_ranges(ops.len(), WRITE_BATCH, WRITE_BATCH_BYTES, size).into_iter().map(|r| &ops[r]).collect();

        // Several transactions: check every version first, so a conflict writes nothing.
        let versioned: Vec<(&str, i32)> = ops
            .iter()
            .filter_map(|(c, path, _)| match &c.precondition {
                Precondition::Version(v) => Some((path.as_str(), zk_version(v))),
                _ => None,
            })
            .collect();
        if chunks.len() > 1 && !versioned.is_empty() {
            for checks in versioned.chunks(WRITE_BATCH) {
                let result = self
                    .call(|c, _| async move {
                        let mut writer = c.new_multi_writer();
                        for (path, version) in checks {
                            writer.add_check_version(path, *version)?;
                        }
                        writer.commit().await.map_err(zk::Error::from).map(drop)
                    })
                    .await;
                match result {
                    Ok(()) => {}
                    Err(zk::Error::BadVersion | zk::Error::NoNode) => {
                        let location = format!("{} (a configuration in namespace {namespace:?})", self.inner.describe);
                        let error = Error::conflict(location, None);
                        return (Vec::new(), Some((error, false)));
                    }
                    Err(e) => return (Vec::new(), Some((self.map_error(e), false))),
                }
            }
        }

        // All transactions in flight at once.
        let outcomes = join_ordered(chunks.iter().map(|chunk| {
            let specs: Vec<(String, Op)> = chunk.iter().map(|(_, path, op)| (path.clone(), op.clone())).collect();
            let this = self.clone();
            async move {
                this.call(|c, acls| {
                    let specs = &specs;
                    async move {
                        let options = zk::CreateMode::Persistent.with_acls(zk::Acls::new(&acls));
                        let mut writer = c.new_multi_writer();
                        for (path, op) in specs {
                            match op {
                                Op::Create(d) => writer.add_create(path, d, &options)?,
                                Op::Set(d, v) => writer.add_set_data(path, d, *v)?,
                                Op::Delete(v) => writer.add_delete(path, *v)?,
                                Op::Nothing => {}
                            }
                        }
                        match writer.commit().await {
                            Ok(results) => Ok(Ok(results)),
                            Err(zk::MultiWriteError::OperationFailed { index, source }) => Ok(Err((index, source))),
                            Err(zk::MultiWriteError::RequestFailed { source }) => Err(source),
                        }
                    }
                })
                .await
            }
        }))
        .await;

        let mut applied = Vec::new();
        let mut failure = None;
        for (chunk, outcome) in chunks.iter().zip(outcomes) {
            match outcome {
                Ok(Ok(results)) => {
                    let mut results = results.into_iter();
                    for (change, _, op) in chunk.iter() {
                        let version = match op {
                            Op::Nothing => None,
                            Op::Delete(_) => {
                                results.next();
                                None
                            }
                            // A created znode is at version 0 (the multi response's stat for
                            // a create is not filled in by every server).
                            Op::Create(_) => {
                                results.next();
                                Some(Version::number(0))
                            }
                            Op::Set(..) => match results.next() {
                                Some(zk::MultiWriteResult::SetData { stat }) => {
                                    Some(Version::number(i64::from(stat.version)))
                                }
                                _ => None,
                            },
                        };
                        applied.push(Applied { name: change.name.clone(), version });
                    }
                }
                Ok(Err((index, source))) if failure.is_none() => {
                    // The failing operation's change: ops skip `Nothing`, so count sent ones.
                    let sent: Vec<&(&Change, String, Op)> =
                        chunk.iter().filter(|(_, _, op)| !matches!(op, Op::Nothing)).collect();
                    let (change, path, _) = sent.get(index).copied().unwrap_or(&chunk[0]);
                    let race = matches!(source, zk::Error::NodeExists | zk::Error::NoNode)
                        && change.precondition == Precondition::Any;
                    let error = match source {
                        zk::Error::BadVersion | zk::Error::NodeExists | zk::Error::NoNode if !race => {
                            if source == zk::Error::NoNode && !matches!(change.precondition, Precondition::Version(_)) {
                                self.missing_namespace(namespace)
                            } else {
                                Error::conflict(self.location(path), Some(ConfigId::new(namespace, &change.name)))
                            }
                        }
                        other => self.map_error(other),
                    };
                    failure = Some((error, race));
                }
                Err(e) if failure.is_none() => failure = Some((self.map_error(e), false)),
                _ => {}
            }
        }
        (applied, failure)
    }
}

impl ZkBackend {
    /// Whether a znode exists.
    async fn exists(&self, path: &str) -> Result<bool> {
        let stat = self.call(|c, _| async move { c.check_stat(path).await }).await.map_err(|e| self.map_error(e))?;
        Ok(stat.is_some())
    }

    /// The largest configuration: with history, a value is sent twice in one request (the
    /// znode and its revision).
    fn max_value_bytes(&self) -> usize {
        let limit = self.inner.options.max_value_bytes;
        if self.inner.options.history.enabled {
            limit.min(MAX_RECORDED_VALUE_BYTES)
        } else {
            limit
        }
    }

    /// A configuration as the bytes of its znode: compact JSON, refused over the size limit.
    fn encode(&self, path: &str, value: &crate::model::version::Configuration) -> Result<Vec<u8>> {
        let data = serde_json::to_vec(value)
            .map_err(|e| Error::InvalidValue { location: self.location(path), message: e.to_string() })?;
        let limit = self.max_value_bytes();
        if data.len() > limit {
            return Err(Error::TooLarge { location: self.location(path), size: data.len(), limit });
        }
        Ok(data)
    }

    /// A batch of one change, on its znode alone (a batch lists the namespace first): the
    /// precondition is the operation's own (create for absent, a versioned set or delete), so
    /// the cost does not grow with the namespace.
    async fn write_one(&self, namespace: &str, change: &Change) -> Result<Option<Version>> {
        let path = format!("{}/{}", self.namespace_path(namespace), change.name);
        // With credentials, the namespace must be ours before anything is written into it.
        if self.namespace_acl(namespace).await?.is_some_and(|v| v != 0) {
            self.check_nodes(vec![path.clone()]).await?;
        }
        let conflict = || Error::conflict(self.location(&path), Some(ConfigId::new(namespace, &change.name)));
        let data = match &change.kind {
            ChangeKind::Put(value) => Some(self.encode(&path, value)?),
            ChangeKind::Delete => None,
        };
        let (path, data) = (&path, &data);
        let create = || async {
            let created = self
                .call(|c, acls| {
                    let (path, data) = (path.clone(), data.clone().unwrap_or_default());
                    async move {
                        c.create(&path, &data, &zk::CreateMode::Persistent.with_acls(zk::Acls::new(&acls))).await
                    }
                })
                .await;
            match created {
                // A created znode is at version 0 (see write_once).
                Ok(_) => Ok(Some(Version::number(0))),
                Err(zk::Error::NodeExists) => Err(conflict()),
                Err(zk::Error::NoNode) => Err(self.missing_namespace(namespace)),
                Err(e) => Err(self.map_error(e)),
            }
        };
        let set = |expected: Option<i32>| async move {
            let data = data.clone().unwrap_or_default();
            self.call(|c, _| {
                let (path, data) = (path.clone(), data.clone());
                async move { c.set_data(&path, &data, expected).await }
            })
            .await
        };
        let delete = |expected: Option<i32>| async move {
            self.call(|c, _| {
                let path = path.clone();
                async move { c.delete(&path, expected).await }
            })
            .await
        };
        match (&change.kind, &change.precondition) {
            (ChangeKind::Put(_), Precondition::Absent) => create().await,
            (ChangeKind::Put(_), Precondition::Version(v)) => match set(Some(zk_version(v))).await {
                Ok(stat) => Ok(Some(Version::number(i64::from(stat.version)))),
                Err(zk::Error::BadVersion | zk::Error::NoNode) => Err(conflict()),
                Err(e) => Err(self.map_error(e)),
            },
            (ChangeKind::Put(_), Precondition::Any) => {
                for _ in 0..WRITE_ATTEMPTS {
                    match set(None).await {
                        Ok(stat) => return Ok(Some(Version::number(i64::from(stat.version)))),
                        Err(zk::Error::NoNode) => match create().await {
                            // Someone created it in between: set it again.
                            Err(Error::Conflict { .. }) => continue,
                            other => return other,
                        },
                        Err(e) => return Err(self.map_error(e)),
                    }
                }
                Err(conflict())
            }
            (ChangeKind::Delete, Precondition::Version(v)) => match delete(Some(zk_version(v))).await {
                Ok(()) => Ok(None),
                Err(zk::Error::BadVersion | zk::Error::NoNode) => Err(conflict()),
                Err(e) => Err(self.map_error(e)),
            },
            (ChangeKind::Delete, Precondition::Any) => match delete(None).await {
                Ok(()) => Ok(None),
                Err(zk::Error::NoNode) => match self.exists(&self.namespace_path(namespace)).await? {
                    true => Ok(None),
                    false => Err(self.missing_namespace(namespace)),
                },
                Err(e) => Err(self.map_error(e)),
            },
            (ChangeKind::Delete, Precondition::Absent) => match self.exists(path).await? {
                true => Err(conflict()),
                false => Ok(None),
            },
        }
    }
}

fn zk_version(version: &Version) -> i32 {
    // Our versions for ZooKeeper are stat versions (≥ 0). Anything else must never match, and
    // must never be -1, which ZooKeeper reads as "any version".
    version.as_number().and_then(|n| i32::try_from(n).ok()).filter(|v| *v >= 0).unwrap_or(-2)
}

async fn new_client(options: &ZkOptions) -> std::result::Result<zk::Client, zk::Error> {
    let mut connector = zk::Client::connector()
        .with_session_timeout(options.session_timeout)
        .with_connection_timeout(options.connect_timeout)
        .with_fail_eagerly();
    if let (Some(user), Some(password)) = (&options.username, &options.password) {
        connector = connector.with_auth("digest", format!("{user}:{}", password.expose()).as_bytes());
    }
    let cluster = options.connect_string();
    let connect = connector.connect(&cluster);
    // fail_eagerly bounds a dead address; this bounds everything else (a server that accepts
    // TCP but never answers).
    match tokio::time::timeout(options.connect_timeout * 2, connect).await {
        Ok(result) => result,
        Err(_) => Err(zk::Error::Timeout),
    }
}

fn map_error(describe: &str, e: zk::Error) -> Error {
    classify(describe, &e).caused_by(e)
}

/// The error a driver's error means, worded about the store.
fn classify(describe: &str, e: &zk::Error) -> Error {
    match e {
        zk::Error::NoAuth | zk::Error::AuthFailed => {
            Error::unauthorized(describe.to_owned(), format!("{e} (check the user and password)"))
        }
        zk::Error::NoHosts => {
            Error::unavailable(describe.to_owned(), "no server could be reached or would start a session")
        }
        zk::Error::ConnectionLoss => Error::unavailable(describe.to_owned(), "the connection to the server was lost"),
        zk::Error::Timeout => Error::unavailable(describe.to_owned(), "no answer in time"),
        other => Error::unavailable(describe.to_owned(), other.to_string()),
    }
}

impl ZkBackend {
    /// A namespace's configuration znodes, read in `multi`s of `READ_BATCH` all in flight:
    /// (name, data, version) of each, and the paths whose ACLs must be checked.
    #[allow(clippy::type_complexity)]
    async fn read_namespace(&self, namespace: &str) -> Result<(Vec<(String, Vec<u8>, Version)>, Vec<String>)> {
        let (children, acl) = tokio::join!(self.children(namespace), self.namespace_acl(namespace));
        let mut children = children?;
        let namespace_acl_changed = acl?.is_some_and(|v| v != 0);
        children.retain(|c| crate::model::name::is_valid(c));
        let ns_path = self.namespace_path(namespace);
        let reads = join_ordered(children.chunks(READ_BATCH).map(|batch| {
            let paths: Vec<String> = batch.iter().map(|c| format!("{ns_path}/{c}")).collect();
            let this = self.clone();
            async move {
                this.call(|c, _| {
                    let paths = &paths;
                    async move {
                        let mut reader = c.new_multi_reader();
                        for path in paths {
                            reader.add_get_data(path)?;
                        }
                        reader.commit().await
                    }
                })
                .await
            }
        }))
        .await;
        let mut results = Vec::with_capacity(reads.len());
        for read in reads {
            results.push(read.map_err(|e| self.map_error(e))?);
        }
        let mut read = Vec::with_capacity(children.len());
        let mut to_check = Vec::new();
        for (name, result) in children.into_iter().zip(results.into_iter().flatten()) {
            match result {
                zk::MultiReadResult::Data { data: bytes, stat } => {
                    if self.inner.trust.is_some() && (namespace_acl_changed || stat.aversion != 0) {
                        to_check.push(format!("{ns_path}/{name}"));
                    }
                    read.push((name, bytes, Version::number(i64::from(stat.version))));
                }
                // Deleted between the listing and the read.
                zk::MultiReadResult::Error { err: zk::Error::NoNode } => {}
                zk::MultiReadResult::Error { err } => return Err(self.map_error(err)),
                _ => {}
            }
        }
        Ok((read, to_check))
    }

    /// [`Backend::check_acls`]: the root, every namespace and every configuration, their ACLs
    /// read all at once; with `fix`, each node others may change gets the spec's ACL under a
    /// precondition on the ACL's version (a node whose ACL changed meanwhile is reported, not
    /// overwritten).
    async fn acl_findings(&self, fix: bool) -> Result<Vec<super::AclFinding>> {
        let Some(trust) = self.inner.trust.clone() else {
            return Err(Error::spec(
                Some("password"),
                format!(
                    "{}: checking ACLs needs credentials (zk://user:password@…) without foreign_acls=trust: \
                     without them every node is world-open by design",
                    self.inner.describe
                ),
            ));
        };
        let mut paths = vec![self.inner.base.clone()];
        for namespace in self.base_children().await?.into_iter().filter(|n| crate::model::name::is_valid(n)) {
            let ns_path = self.namespace_path(&namespace);
            let children = match self.children(&namespace).await {
                Ok(children) => children,
                // Removed meanwhile.
                Err(Error::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            paths.push(ns_path.clone());
            paths.extend(children.iter().filter(|c| crate::model::name::is_valid(c)).map(|c| format!("{ns_path}/{c}")));
        }
        // confo's metadata trees: history down to each configuration's node, schemas.
        let mut metadata = std::collections::HashSet::new();
        for base in [self.history_base(), self.schemas_base()] {
            metadata.insert(base.clone());
            for child in self.list_or_empty(&base).await? {
                let child = format!("{base}/{child}");
                if base == self.history_base() {
                    for config in self.list_or_empty(&child).await? {
                        metadata.insert(format!("{child}/{config}"));
                    }
                }
                metadata.insert(child);
            }
        }
        let mut metadata_paths: Vec<String> = metadata.iter().cloned().collect();
        metadata_paths.sort();
        paths.extend(metadata_paths);
        let read = join_ordered(paths.into_iter().map(|path| {
            let this = self.clone();
            async move {
                let acl = this
                    .call(|c, _| {
                        let path = path.clone();
                        async move { c.get_acl(&path).await }
                    })
                    .await;
                (path, acl)
            }
        }))
        .await;
        let mut findings = Vec::new();
        for (path, acl) in read {
            let (acl, version) = match acl {
                Ok((acls, stat)) if trust.others_may_change(&acls) => (trust.describe(&acls), Some(stat.aversion)),
                Ok(_) | Err(zk::Error::NoNode) => continue,
                // Not even readable by this identity: someone else's.
                Err(zk::Error::NoAuth) => ("(not readable by this identity)".to_owned(), None),
                Err(e) => return Err(self.map_error(e)),
            };
            let is_metadata = metadata.contains(&path);
            // Below a metadata node removed already: gone with it.
            if fix
                && findings.iter().any(|f: &super::AclFinding| f.metadata && path.starts_with(&format!("{}/", f.path)))
            {
                continue;
            }
            findings.push(super::AclFinding { path, acl, fixed: None, metadata: is_metadata });
            if let (true, true, Some(finding)) = (fix, is_metadata, findings.last_mut()) {
                finding.fixed = Some(self.delete_tree(&finding.path).await);
                continue;
            }
            if let (true, Some(finding)) = (fix, findings.last_mut()) {
                finding.fixed = Some(match version {
                    None => Err("this identity may not read or change its ACL".to_owned()),
                    Some(version) => {
                        let path = finding.path.clone();
                        let set = self
                            .call(|c, acls| {
                                let path = path.clone();
                                async move { c.set_acl(&path, &acls, Some(version)).await.map(drop) }
                            })
                            .await;
                        match set {
                            Ok(()) => Ok(()),
                            Err(zk::Error::NoAuth) => {
                                Err("this identity may not change its ACL (no ADMIN right)".into())
                            }
                            Err(zk::Error::BadVersion) => {
                                Err("its ACL changed meanwhile; run the command again".into())
                            }
                            Err(zk::Error::NoNode) => Err("it was removed meanwhile".into()),
                            Err(e) => return Err(self.map_error(e)),
                        }
                    }
                });
            }
        }
        Ok(findings)
    }

    /// The children of a node; none when it is not there.
    async fn list_or_empty(&self, path: &str) -> Result<Vec<String>> {
        let listed = self
            .call(|c, _| {
                let path = path.to_owned();
                async move { c.list_children(&path).await }
            })
            .await;
        match listed {
            Ok(names) => Ok(names),
            Err(zk::Error::NoNode) => Ok(Vec::new()),
            Err(zk::Error::NoAuth) => Err(self.unreadable_acl(path)),
            Err(e) => Err(self.map_error(e)),
        }
    }

    /// Removes a node and everything below it (children first); why not, as a sentence.
    async fn delete_tree(&self, root: &str) -> std::result::Result<(), String> {
        let mut order = vec![root.to_owned()];
        let mut at = 0;
        while at < order.len() {
            let children = self.list_or_empty(&order[at]).await.map_err(|e| e.to_string())?;
            let parent = order[at].clone();
            order.extend(children.into_iter().map(|c| format!("{parent}/{c}")));
            at += 1;
        }
        for path in order.iter().rev() {
            let deleted = self
                .call(|c, _| {
                    let path = path.clone();
                    async move { c.delete(&path, None).await }
                })
                .await;
            match deleted {
                Ok(()) | Err(zk::Error::NoNode) => {}
                Err(zk::Error::NoAuth) => return Err(format!("this identity may not remove {path}")),
                Err(zk::Error::NotEmpty) => {
                    return Err(format!("{path} got new children meanwhile; run the command again"))
                }
                Err(e) => return Err(self.map_error(e).to_string()),
            }
        }
        Ok(())
    }

    /// A configuration znode whose data is not a configuration: where it is, what is wrong.
    fn corrupt_node(&self, namespace: &str, refused: &Refused) -> Corruption {
        let location = self.location(&format!("{}/{}", self.namespace_path(namespace), refused.name));
        Corruption { location, problem: refused.described() }
    }
}

/// A configuration znode's data as the configuration it stores: empty data, or only white
/// space, reads as `{}`, as Python confo read it.
fn node_bytes(bytes: &[u8]) -> &[u8] {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    }
}

/// Hands a configuration znode read from a namespace to `sink`; returns its refusal.
fn decode_node(sink: &dyn Sink, (name, bytes, version): (String, Vec<u8>, Version)) -> Option<Refused> {
    sink.entry(name, node_bytes(&bytes), version).err()
}

#[async_trait]
impl Backend for ZkBackend {
    fn describe(&self) -> String {
        self.inner.describe.clone()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            notifies: true,
            notifies_every_change: true,
            max_value_bytes: Some(self.max_value_bytes()),
            history: self.inner.options.history.enabled,
        }
    }

    fn check_name(&self, kind: NameKind, name: &str) -> Result<()> {
        // ZooKeeper (PathUtils.validatePath) refuses these code points in paths, and everything
        // above U+FFFF, which Java strings hold as surrogates (refused as U+D800-DFFF).
        let refused = |c: char| {
            ('\u{e000}'..='\u{f8ff}').contains(&c) || ('\u{fff0}'..='\u{ffff}').contains(&c) || c > '\u{ffff}'
        };
        match name.chars().find(|&c| refused(c)) {
            None => Ok(()),
            Some(c) => Err(Error::InvalidName {
                name: name.to_owned(),
                kind,
                rule: NameRule::Backend { backend: "zookeeper", rule: format!("ZooKeeper paths cannot contain {c:?}") },
            }),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = %self.inner.describe))]
    async fn list_namespaces(&self) -> Result<Vec<String>> {
        // (The root's ACL is asked at the same time.)
        let (names, checked) = tokio::join!(self.base_children(), self.check_nodes(vec![self.inner.base.clone()]));
        checked?;
        let mut names = names?;
        names.retain(|n| crate::model::name::is_valid(n));
        names.sort();
        Ok(names)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(backend = %self.inner.describe))]
    async fn create(&self, namespace: &NamespaceName) -> Result<bool> {
        let namespace = namespace.as_str();
        let path = self.namespace_path(namespace);
        let create = || {
            self.call(|c, acls| {
                let path = path.clone();
                async move { c.create(&path, &[], &zk::CreateMode::Persistent.with_acls(zk::Acls::new(&acls))).await }
            })
        };
        // A root that others may change is not built on.
        self.check_nodes(vec![self.inner.base.clone()]).await?;
        let created = match create().await {
            // The first namespace: the root goes first.
            Err(zk::Error::NoNode) => {
                self.make_base().await?;
                create().await
            }
            other => other,
        };
        match created {
            Ok(_) => Ok(true),
            Err(zk::Error::NodeExists) => {
                // Someone else's node must not become ours by being "created" again.
                self.namespace_acl(namespace).await?;
                Ok(false)
            }
            Err(e) => Err(self.map_error(e)),
        }
    }

    #[tracing::instrument(level = "debug", skip(self), fields(backend = %self.inner.describe))]
    async fn delete(&self, namespace: &NamespaceName) -> Result<()> {
        let namespace = namespace.as_str();
        let ns_path = self.namespace_path(namespace);
        for _ in 0..WRITE_ATTEMPTS {
            let children = self.children(namespace).await?;
            let mut paths: Vec<String> = children.iter().map(|c| format!("{ns_path}/{c}")).collect();
            paths.push(ns_path.clone());
            let mut result = Ok(());
            for chunk in paths.chunks(WRITE_BATCH) {
                result = self
                    .call(|c, _| async move {
                        let mut writer = c.new_multi_writer();
                        for path in chunk {
                            writer.add_delete(path, None)?;
                        }
                        writer.commit().await.map_err(zk::Error::from).map(drop)
                    })
                    .await;
                if result.is_err() {
                    break;
                }
            }
            match result {
                Ok(()) => return Ok(()),
                // Someone added or removed a configuration meanwhile: list again.
                Err(zk::Error::NotEmpty | zk::Error::NoNode) => continue,
                Err(e) => return Err(self.map_error(e)),
            }
        }
        Err(Error::unavailable(
            self.inner.describe.clone(),
            format!("namespace {namespace:?} kept changing while it was being deleted"),
        ))
    }

    #[tracing::instrument(level = "debug", skip(self, sink), fields(backend = %self.inner.describe))]
    async fn read_one(&self, namespace: &NamespaceName, name: &ConfigName, sink: Arc<dyn Sink>) -> Result<()> {
        let (namespace, name) = (namespace.as_str(), name.as_str());
        let ns_path = self.namespace_path(namespace);
        let path = format!("{ns_path}/{name}");
        let read = self.call(|c, _| {
            let path = path.clone();
            async move { c.get_data(&path).await }
        });
        // The namespace's ACL (with credentials) goes out with the read: one round trip.
        let (read, acl) = tokio::join!(read, self.namespace_acl(namespace));
        let namespace_acl_changed = acl?.is_some_and(|v| v != 0);
        match read {
            Ok((bytes, stat)) => {
                if self.inner.trust.is_some() && (namespace_acl_changed || stat.aversion != 0) {
                    self.check_nodes(vec![path.clone()]).await?;
                }
                let version = Version::number(i64::from(stat.version));
                if let Some(refused) = decode_node(&*sink, (name.to_owned(), bytes, version)) {
                    let corruption = self.corrupt_node(namespace, &refused);
                    sink.corrupt(refused.name, corruption, Some(refused.version));
                }
                Ok(())
            }
            // No such configuration, or no such namespace: one more question tells which.
            Err(zk::Error::NoNode) => match self.exists(&ns_path).await? {
                true => Ok(()),
                false => Err(self.missing_namespace(namespace)),
            },
            Err(e) => Err(self.map_error(e)),
        }
    }

    #[tracing::instrument(level = "debug", skip(self, sink), fields(backend = %self.inner.describe))]
    async fn scan(&self, namespace: &NamespaceName, sink: Arc<dyn Sink>) -> Result<()> {
        let namespace = namespace.as_str();
        let (read, to_check) = self.read_namespace(namespace).await?;
        sink.expect(read.len());
        // Decoding costs more than the read: a large namespace is decoded on every core.
        for refused in decode_all(read, sink.clone(), decode_node).await {
            let corruption = self.corrupt_node(namespace, &refused);
            sink.corrupt(refused.name, corruption, Some(refused.version));
        }
        self.check_nodes(to_check).await?;
        Ok(())
    }

    async fn history(&self, namespace: &NamespaceName, name: &ConfigName) -> Result<crate::model::history::History> {
        self.read_history(namespace.as_str(), name.as_str()).await
    }

    async fn history_names(&self, namespace: &NamespaceName) -> Result<Vec<String>> {
        self.history_configurations(namespace.as_str()).await
    }

    async fn rewrite_history(
        &self,
        namespace: &NamespaceName,
        name: &ConfigName,
        rewrite: &crate::model::history::Rewrite,
    ) -> Result<Vec<u64>> {
        self.rewrite_records(namespace.as_str(), name.as_str(), rewrite).await
    }

    async fn schema_document(&self, namespace: &NamespaceName) -> Result<Option<(Vec<u8>, Version)>> {
        self.read_schema(namespace.as_str()).await
    }

    async fn check_acls(&self, fix: bool) -> Result<Vec<super::AclFinding>> {
        self.acl_findings(fix).await
    }

    async fn put_schema_document(
        &self,
        namespace: &NamespaceName,
        document: Option<Vec<u8>>,
        precondition: &Precondition,
    ) -> Result<Option<Version>> {
        self.write_schema(namespace.as_str(), document, precondition).await
    }

    async fn subscribe(&self) -> Result<Option<Hints>> {
        let this = self.clone();
        Ok(Some(super::spawn_subscription(move |tx| {
            let this = this.clone();
            async move {
                let base = &this.inner.base;
                let client = this.client();
                let session = client.session_id();
                let mut watcher = match client.watch(base, zk::AddWatchMode::PersistentRecursive).await {
                    Ok(watcher) => watcher,
                    Err(zk::Error::SessionExpired | zk::Error::ClientClosed) => {
                        let _ = this.renew_session(session).await;
                        return;
                    }
                    Err(e) => {
                        tracing::debug!(backend = %this.inner.describe, error = %e, "watch failed; retrying");
                        return;
                    }
                };
                let _ = tx.send(Hint::All);
                loop {
                    let event = watcher.changed().await;
                    if event.event_type == zk::EventType::Session {
                        if event.session_state.is_terminated() {
                            break; // a new session (and watch) is needed
                        }
                        if event.session_state == zk::SessionState::SyncConnected {
                            let _ = tx.send(Hint::All); // events in the gap may be lost
                        }
                        continue;
                    }
                    let hint = event
                        .path
                        .strip_prefix(base.as_str())
                        .and_then(|rest| rest.strip_prefix('/'))
                        .and_then(|rest| rest.split('/').next())
                        .map_or(Hint::All, |ns| Hint::Namespace(ns.to_owned()));
                    let _ = tx.send(hint);
                }
                let _ = this.renew_session(session).await;
            }
        })))
    }

    #[tracing::instrument(level = "debug", skip(self, changes), fields(backend = %self.inner.describe, changes = changes.len()))]
    async fn apply(&self, namespace: &NamespaceName, changes: &ChangeSet<'_>) -> WriteReport {
        let namespace = namespace.as_str();
        if self.inner.options.history.enabled {
            return self.apply_recorded(namespace, changes.author(), changes).await;
        }
        let changes: &[Change] = changes;
        if let [change] = changes {
            return match self.write_one(namespace, change).await {
                Ok(version) => {
                    WriteReport { applied: vec![Applied { name: change.name.clone(), version }], ..Default::default() }
                }
                Err(e) => WriteReport::failed(e),
            };
        }
        let mut report = WriteReport::default();
        let mut pending: Vec<Change> = changes.to_vec();
        for attempt in 1..=WRITE_ATTEMPTS {
            let (applied, failure) = self.write_once(namespace, &pending).await;
            let done: HashSet<String> = applied.iter().map(|a| a.name.clone()).collect();
            report.applied.extend(applied);
            match failure {
                None => return report,
                Some((_, true)) if attempt < WRITE_ATTEMPTS => {
                    pending.retain(|c| !done.contains(&c.name));
                }
                Some((error, _)) => {
                    report.error = Some(error);
                    return report;
                }
            }
        }
        report
    }
}
