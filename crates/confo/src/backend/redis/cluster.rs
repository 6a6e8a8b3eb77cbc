//! The seed's layout on a Redis Cluster with several masters (`redis+cluster://`).
//!
//! The root `confo`, a namespace's index `<ns>` and its data keys `<ns>-<cfg>` hash to
//! different slots, so no script may touch them together (`CROSSSLOT`), and keys cannot be
//! renamed (old readers). Cluster mode keeps the layout and gives up cross-key atomicity in an
//! order that never leaves a reader with an index entry pointing at nothing:
//!
//! - **A put** writes the value (one script on `<ns>-<cfg>` and its history stream
//!   `confo-history:{<ns>-<cfg>}`, which shares the slot through the hash tag: precondition,
//!   revision and value together), then lists it (one script on `<ns>` per 1,000 puts, which
//!   also publishes their events, so a watcher that re-reads sees the change). A crash in
//!   between leaves an unindexed value: invisible to readers, found by
//!   [`Backend::repair`](crate::backend::Backend::repair).
//! - **A delete** unlists first, then deletes the value (with its precondition and revision);
//!   if the value changed in between (the precondition fails), the entry is listed again; after
//!   any other failure it stays unlisted (an unindexed value at worst, never an entry without
//!   its value).
//! - **Preconditions** are read and checked for the whole batch before anything is written, and
//!   again by each value's script; a key that exists is not absent, listed or not, except a
//!   left-over: unlisted, and last written by confo more than 10 s ago (by a writer that died
//!   between value and listing), which a create-only write replaces (a crashed import can be
//!   run again). With `history=off` there is no time to tell: `confo repair --fix` first.
//! - **Batches** are not atomic (they are written change by change), and a failure reports
//!   exactly the changes written (listed) before it.
//! - **Reads**: the root and the index, then the values grouped by node (one pipeline per
//!   master, all in flight). A listed value that is missing (a delete between the two reads) is
//!   skipped.
//! - **Creating a namespace** writes its index, then lists it in the root; **deleting** unlists
//!   it, then deletes its values and its index.
//! - **Names** may not contain `{` or `}` (they would move the hash tag).

use std::collections::{BTreeMap, HashSet};

use futures_util::{StreamExt, TryStreamExt};
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{RedisError, RedisResult, Value};

use super::{history_key, precondition_args, sha1_version, ClusterLink, Link, RedisBackend, ROOT_KEY};
use crate::backend::Repair;
use crate::model::change::{Applied, Change, ChangeKind, Precondition, WriteReport};
use crate::model::decode::Sink;
use crate::model::error::{ConfigId, Error, Missing, Result};
use crate::model::version::Version;

/// Value scripts in flight at once.
const IN_FLIGHT: usize = 256;
/// Reads of at most this many keys go key by key (the client routes each), without the slot map.
const BY_KEY_UP_TO: usize = 8;
/// Puts whose values are written before the index lists them (one index script per slice).
const LISTED_EVERY: usize = 1000;
/// Most commands in one pipeline to a node.
const PIPELINE: usize = 2000;
/// How long ago an unlisted value must have been written for a create-only write to replace it
/// as a left-over (see `cluster_data.lua`): a put in flight lists its value milliseconds after
/// writing it.
const LEFT_OVER_AFTER_MS: u64 = 10_000;
/// How long a value must stay unindexed, and unchanged, before `repair` calls it so: a put in
/// flight lists its value a moment after writing it.
const REPAIR_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// The history arguments of the value scripts (as [`super::RedisBackend::apply`] builds them).
pub(super) struct HistoryArgs<'a> {
    /// `''` (off) or `keep max_age_ms now_ms`.
    pub settings: &'a [u8],
    /// The record's start.
    pub meta: &'a [u8],
    /// The time as text.
    pub time: &'a [u8],
}

/// CRC-16/XMODEM, Redis Cluster's key hash.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

/// The slot of a key (its hash tag's, if it has a non-empty `{…}`).
pub(super) fn slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    crc16(tagged.unwrap_or(key)) % 16384
}

/// Which master serves which slots (`CLUSTER SLOTS`).
#[derive(Debug)]
pub(super) struct SlotMap {
    /// (first slot, last slot, master).
    ranges: Vec<(u16, u16, (String, u16))>,
    /// Every node it names, masters first.
    nodes: Vec<(String, u16)>,
}

impl SlotMap {
    /// Asks any node of a cluster link.
    pub(super) async fn read(link: &Link) -> RedisResult<SlotMap> {
        let Link::Cluster(cluster) = link else {
            return Err(RedisError::from((redis::ErrorKind::Client, "not a cluster link")));
        };
        let reply = cluster
            .connection()
            .await?
            .route_command(
                redis::cmd("CLUSTER").arg("SLOTS").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            )
            .await?;
        let malformed = || RedisError::from((redis::ErrorKind::Parse, "unexpected CLUSTER SLOTS reply"));
        // A node that does not know its address (a one-node cluster) answers "": a seed's host.
        let seed_host = match &cluster.options.endpoint {
            super::RedisEndpoint::Cluster { nodes } => nodes.first().map(|n| n.0.clone()).unwrap_or_default(),
            _ => String::new(),
        };
        let node = |v: &Value| -> Option<(String, u16)> {
            let Value::Array(parts) = v else { return None };
            let host = match parts.first()? {
                Value::BulkString(b) if b.is_empty() => seed_host.clone(),
                Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                Value::SimpleString(s) => s.clone(),
                _ => return None,
            };
            let port = match parts.get(1)? {
                Value::Int(p) => u16::try_from(*p).ok()?,
                _ => return None,
            };
            Some((host, port))
        };
        let Value::Array(entries) = reply else { return Err(malformed()) };
        let mut map = SlotMap { ranges: Vec::new(), nodes: Vec::new() };
        let mut replicas = Vec::new();
        for entry in &entries {
            let Value::Array(parts) = entry else { return Err(malformed()) };
            let (Some(Value::Int(first)), Some(Value::Int(last)), Some(master)) =
                (parts.first(), parts.get(1), parts.get(2).and_then(node))
            else {
                return Err(malformed());
            };
            let (first, last) =
                (u16::try_from(*first).map_err(|_| malformed())?, u16::try_from(*last).map_err(|_| malformed())?);
            if !map.nodes.contains(&master) {
                map.nodes.push(master.clone());
            }
            replicas.extend(parts.iter().skip(3).filter_map(node));
            map.ranges.push((first, last, master));
        }
        for replica in replicas {
            if !map.nodes.contains(&replica) {
                map.nodes.push(replica);
            }
        }
        map.ranges.sort_by_key(|r| r.0);
        Ok(map)
    }

    /// The masters, each once.
    pub(super) fn masters(&self) -> Vec<(String, u16)> {
        let mut masters: Vec<(String, u16)> = self.ranges.iter().map(|r| r.2.clone()).collect();
        masters.sort();
        masters.dedup();
        masters
    }

    /// The master serving `slot`.
    fn master_of(&self, slot: u16) -> Option<&(String, u16)> {
        let at = self.ranges.partition_point(|r| r.0 <= slot);
        self.ranges[..at].last().filter(|r| slot <= r.1).map(|r| &r.2)
    }
}

impl ClusterLink {
    /// The connection in use, or a new one after a timeout (see `current`).
    pub(super) async fn connection(&self) -> RedisResult<redis::cluster_async::ClusterConnection> {
        if let Some(connection) = self.current.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(connection);
        }
        let connecting = tokio::time::timeout(self.options.connect_timeout, self.client.get_async_connection());
        let connection = connecting
            .await
            .map_err(|_| RedisError::from((redis::ErrorKind::Io, "timed out connecting to the cluster")))??;
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(connection.clone());
        Ok(connection)
    }

    /// A connection subscribed to the events channel on the first node that answers: the seeds,
    /// then every node the cluster announces (a failover may have taken the seeds down).
    pub(super) async fn pubsub(&self, link: &Link) -> RedisResult<redis::aio::PubSub> {
        let timeout = self.options.connect_timeout;
        let mut clients = self.clients.clone();
        if let Ok(Ok(map)) = tokio::time::timeout(timeout, SlotMap::read(link)).await {
            for (host, port) in &map.nodes {
                clients.push(super::node_client(&self.options, self.ca.as_ref(), host, *port)?);
            }
        }
        let mut last = RedisError::from((redis::ErrorKind::Io, "no cluster node to subscribe on"));
        for client in clients {
            let connect = async {
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(super::EVENTS_CHANNEL).await?;
                Ok(pubsub)
            };
            match tokio::time::timeout(timeout, connect).await {
                Ok(Ok(pubsub)) => return Ok(pubsub),
                Ok(Err(e)) => last = e,
                Err(_) => last = RedisError::from((redis::ErrorKind::Io, "timed out subscribing")),
            }
        }
        Err(last)
    }
}

/// Sends a command to the master of a one-master cluster (the client would refuse a script's
/// keys of several slots); an error reply is an error.
pub(super) async fn on_master(
    mut connection: redis::cluster_async::ClusterConnection,
    cmd: redis::Cmd,
) -> RedisResult<Value> {
    let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::RandomPrimary);
    match connection.route_command(cmd, routing).await? {
        Value::ServerError(e) => Err(RedisError::from(e)),
        value => Ok(value),
    }
}

/// Whether an error says a key has moved (a failover, a resharding): asked again by key.
fn moved(e: &RedisError) -> bool {
    matches!(e.code(), Some("MOVED" | "ASK" | "TRYAGAIN" | "CLUSTERDOWN"))
        || e.is_io_error()
        || e.is_connection_dropped()
}

impl RedisBackend {
    async fn cluster_connection(&self) -> Result<redis::cluster_async::ClusterConnection> {
        match &self.inner.link {
            Link::Cluster(link) => link.connection().await.map_err(|e| self.failed(e)),
            _ => Err(Error::unavailable(self.inner.describe.clone(), "not connected to a cluster")),
        }
    }

    /// Sends a command to one node.
    pub(super) async fn on_node<T: redis::FromRedisValue>(&self, cmd: redis::Cmd, host: &str, port: u16) -> Result<T> {
        let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host: host.to_owned(), port });
        let value = self.cluster_connection().await?.route_command(cmd, routing).await.map_err(|e| self.failed(e))?;
        redis::from_redis_value(value).map_err(|e| self.failed(e.into()))
    }

    /// Sends `WAIT` to the master of each of `keys` (once each); the fewest replicas any
    /// acknowledged.
    pub(super) async fn cluster_wait(&self, wait: &redis::Cmd, keys: &[&str]) -> Result<u32> {
        let map = SlotMap::read(&self.inner.link).await.map_err(|e| self.failed(e))?;
        let mut masters: Vec<&(String, u16)> = keys.iter().filter_map(|k| map.master_of(slot(k.as_bytes()))).collect();
        masters.sort();
        masters.dedup();
        let waits = masters.into_iter().map(|(host, port)| self.on_node::<u32>(wait.clone(), host, *port));
        let acked = futures_util::future::try_join_all(waits).await?;
        Ok(acked.into_iter().min().unwrap_or(u32::MAX))
    }

    /// The namespaces the root lists.
    async fn root_names(&self) -> Result<Vec<String>> {
        self.read_index(ROOT_KEY, "namespaces").await
    }

    /// Not found unless the root lists `namespace`.
    pub(super) async fn require_namespace(&self, namespace: &str) -> Result<()> {
        if self.root_names().await?.iter().any(|n| n == namespace) {
            Ok(())
        } else {
            Err(Error::not_found(Missing::Namespace, namespace, self.inner.describe.clone()))
        }
    }

    /// `GET` of every key, grouped by node: one pipeline per master (in slices), all in flight.
    /// A key whose node moved is asked again by itself; a key of another type reads as
    /// `\0foreign <type>`.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        let mut by_node: BTreeMap<(String, u16), Vec<usize>> = BTreeMap::new();
        let mut unmapped = Vec::new();
        if keys.len() <= BY_KEY_UP_TO {
            // A few keys (a point read): asked by key, without asking for the slot map first.
            unmapped.extend(0..keys.len());
        } else {
            let map = SlotMap::read(&self.inner.link).await.map_err(|e| self.failed(e))?;
            for (i, key) in keys.iter().enumerate() {
                match map.master_of(slot(key.as_bytes())) {
                    Some(node) => by_node.entry(node.clone()).or_default().push(i),
                    None => unmapped.push(i),
                }
            }
        }
        let connection = self.cluster_connection().await?;
        let mut requests = Vec::new();
        for ((host, port), indices) in &by_node {
            for slice in indices.chunks(PIPELINE) {
                let mut pipe = redis::pipe();
                for &i in slice {
                    pipe.cmd("GET").arg(&keys[i]);
                }
                let routing = SingleNodeRoutingInfo::ByAddress { host: host.clone(), port: *port };
                let mut connection = connection.clone();
                requests.push(async move {
                    let answer = connection.route_pipeline(pipe, 0, slice.len(), routing).await;
                    (slice, answer)
                });
            }
        }
        let answers = futures_util::future::join_all(requests).await;
        let mut values: Vec<Option<Vec<u8>>> = vec![None; keys.len()];
        let mut again = unmapped;
        for (slice, answer) in answers {
            match answer {
                Ok(replies) if replies.len() == slice.len() => {
                    for (&i, reply) in slice.iter().zip(replies) {
                        match reply {
                            Value::BulkString(bytes) => values[i] = Some(bytes),
                            Value::Nil => {}
                            _ => again.push(i),
                        }
                    }
                }
                Ok(_) => again.extend_from_slice(slice),
                Err(e) if moved(&e) => again.extend_from_slice(slice),
                Err(e) => return Err(self.failed(e)),
            }
        }
        // Asked by key: the connection follows MOVED and ASK; WRONGTYPE is another program's key.
        let asked = futures_util::stream::iter(again.into_iter().map(|i| {
            let mut connection = connection.clone();
            let key = keys[i].clone();
            async move {
                let got: RedisResult<Option<Vec<u8>>> = redis::cmd("GET").arg(&key).query_async(&mut connection).await;
                let value = match got {
                    Ok(value) => value,
                    Err(e) if e.code() == Some("WRONGTYPE") => {
                        let kind: String = redis::cmd("TYPE").arg(&key).query_async(&mut connection).await?;
                        Some(format!("\0foreign {kind}").into_bytes())
                    }
                    Err(e) => return Err(e),
                };
                Ok((i, value))
            }
        }))
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<Vec<_>>()
        .await
        .map_err(|e| self.failed(e))?;
        for (i, value) in asked {
            values[i] = value;
        }
        Ok(values)
    }

    /// The (name, value) pairs of a namespace; see the module's notes.
    pub(super) async fn cluster_load(&self, namespace: &str) -> Result<Vec<(String, Option<Vec<u8>>)>> {
        let (root, index) =
            tokio::join!(self.require_namespace(namespace), self.read_index(namespace, "configurations"));
        root?;
        let mut names = index?;
        let mut seen = HashSet::new();
        names.retain(|n| seen.insert(n.clone()));
        let keys: Vec<String> = names.iter().map(|n| format!("{namespace}-{n}")).collect();
        let values = self.get_many(&keys).await?;
        // A listed value that is missing was deleted since the index was read: skipped.
        Ok(names.into_iter().zip(values).filter_map(|(name, value)| Some((name, Some(value?)))).collect())
    }

    /// One configuration: the root, the index and the value read at once.
    pub(super) async fn cluster_read_one(&self, namespace: &str, name: &str, sink: &dyn Sink) -> Result<()> {
        let key = format!("{namespace}-{name}");
        let (root, index, value) = tokio::join!(
            self.require_namespace(namespace),
            self.read_index(namespace, "configurations"),
            self.get_many(std::slice::from_ref(&key))
        );
        root?;
        if !index?.iter().any(|n| n == name) {
            return Ok(());
        }
        if let Some(bytes) = value?.pop().flatten() {
            self.hand(sink, namespace, (name.to_owned(), Some(bytes)));
        }
        Ok(())
    }

    /// Lists and unlists names in a namespace's index (and publishes their events).
    async fn update_index(&self, namespace: &str, list: &[&str], unlist: &[&str]) -> Result<()> {
        let count = list.len().to_string();
        let mut args: Vec<&[u8]> = vec![count.as_bytes()];
        args.extend(list.iter().map(|n| n.as_bytes()));
        args.extend(unlist.iter().map(|n| n.as_bytes()));
        let _: i64 = self.eval(&self.scripts().cluster_index, &[namespace], namespace, &args).await?;
        Ok(())
    }

    pub(super) async fn cluster_create(&self, namespace: &str) -> Result<bool> {
        // The index first (refused if the key holds something else), then the root's entry.
        self.update_index(namespace, &[], &[]).await?;
        let created: i64 = self.eval(&self.scripts().cluster_root, &[ROOT_KEY], namespace, &[b"+"]).await?;
        self.wait_for_replicas_of(&[ROOT_KEY, namespace]).await?;
        Ok(created == 1)
    }

    pub(super) async fn cluster_delete(&self, namespace: &str) -> Result<()> {
        // A corrupt index stops the delete before anything changes.
        let names = self.read_index(namespace, "configurations").await?;
        let _: i64 = self.eval(&self.scripts().cluster_root, &[ROOT_KEY], namespace, &[b"-"]).await?;
        let keys: Vec<String> =
            names.iter().map(|n| format!("{namespace}-{n}")).chain([namespace.to_owned()]).collect();
        let connection = self.cluster_connection().await?;
        futures_util::stream::iter(keys.iter().cloned().map(|key| {
            let mut connection = connection.clone();
            async move { redis::cmd("DEL").arg(key).query_async::<i64>(&mut connection).await }
        }))
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<Vec<_>>()
        .await
        .map_err(|e| self.failed(e))?;
        let written: Vec<&str> = keys.iter().map(String::as_str).chain([ROOT_KEY]).collect();
        self.wait_for_replicas_of(&written).await
    }

    /// Checks the preconditions of a batch against the stored values, before anything is
    /// written (the value scripts check them again).
    async fn check_preconditions(&self, namespace: &str, changes: &[Change], listed: &HashSet<String>) -> Result<()> {
        // (An unlisted value under a create-only write may be a left-over: its script decides.)
        let checked: Vec<&Change> = changes
            .iter()
            .filter(|c| match c.precondition {
                Precondition::Any => false,
                Precondition::Absent => listed.contains(&c.name),
                Precondition::Version(_) => true,
            })
            .collect();
        if checked.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = checked.iter().map(|c| format!("{namespace}-{}", c.name)).collect();
        let values = self.get_many(&keys).await?;
        for ((change, key), value) in checked.iter().zip(&keys).zip(values) {
            let holds = match (&change.precondition, value) {
                (_, Some(v)) if v.starts_with(b"\0foreign ") => true,
                (Precondition::Absent, found) => found.is_none(),
                (Precondition::Version(expected), Some(v)) => sha1_version(&v) == *expected,
                (Precondition::Version(_), None) => false,
                (Precondition::Any, _) => true,
            };
            if !holds {
                return Err(Error::conflict(
                    self.key_location(key),
                    Some(ConfigId::new(namespace, change.name.clone())),
                ));
            }
        }
        Ok(())
    }

    /// Runs the value script of each change (all in flight, in slices); the outcome of each.
    async fn write_values(
        &self,
        namespace: &str,
        changes: &[(&Change, &[u8], Option<&Version>)],
        history: &HistoryArgs<'_>,
        listed: &HashSet<String>,
    ) -> Vec<Result<()>> {
        let script = &self.scripts().cluster_data;
        let Ok(connection) = self.cluster_connection().await else {
            return changes
                .iter()
                .map(|_| Err(Error::unavailable(self.inner.describe.clone(), "no connection")))
                .collect();
        };
        // (Collected first: a lazily mapped stream trips the compiler's lifetime inference.)
        let calls: Vec<_> = changes
            .iter()
            .map(|&(change, value, version)| {
                let connection = connection.clone();
                let key = format!("{namespace}-{}", change.name);
                let (pre, expected) = precondition_args(&change.precondition);
                let op = if matches!(change.kind, ChangeKind::Put(_)) { "P" } else { "D" };
                let restores = change.restores.map(|n| n.to_string()).unwrap_or_default();
                let sha = version.and_then(Version::as_text).unwrap_or_default().to_owned();
                let hkey = history_key(namespace, &change.name);
                async move {
                    let listed = if listed.contains(&change.name) { "1" } else { "0" };
                    let left_over = LEFT_OVER_AFTER_MS.to_string();
                    let args: [&[u8]; 12] = [
                        change.name.as_bytes(),
                        history.settings,
                        history.meta,
                        history.time,
                        op.as_bytes(),
                        pre.as_bytes(),
                        expected.as_bytes(),
                        value,
                        restores.as_bytes(),
                        sha.as_bytes(),
                        listed.as_bytes(),
                        left_over.as_bytes(),
                    ];
                    let legacy = &self.inner.legacy_scripts;
                    let done = super::invoke(script, legacy, false, &[&key, &hkey], &args, |cmd| {
                        let mut connection = connection.clone();
                        async move { cmd.query_async::<Value>(&mut connection).await }
                    })
                    .await;
                    done.map(|_| ()).map_err(|e| self.script_error(namespace, e))
                }
            })
            .collect();
        futures_util::stream::iter(calls).buffered(IN_FLIGHT).collect().await
    }

    /// [`Backend::apply`](crate::backend::Backend::apply) on a sharded cluster: see the module's notes.
    pub(super) async fn cluster_apply(
        &self,
        namespace: &str,
        changes: &[Change],
        encoded: &[(Vec<u8>, Option<Version>)],
        history: HistoryArgs<'_>,
    ) -> WriteReport {
        let (root, index) =
            tokio::join!(self.require_namespace(namespace), self.read_index(namespace, "configurations"));
        let indexed: HashSet<String> = match root.and(index) {
            Ok(names) => names.into_iter().collect(),
            Err(e) => return WriteReport::failed(e),
        };
        if let Err(e) = self.check_preconditions(namespace, changes, &indexed).await {
            return WriteReport::failed(e);
        }
        let mut report = WriteReport::default();
        // What each change applied, by position: the report lists them in the batch's order.
        let mut done: Vec<Option<Applied>> = vec![None; changes.len()];
        let (puts, deletes): (Vec<_>, Vec<_>) = changes
            .iter()
            .zip(encoded)
            .enumerate()
            .map(|(i, (change, (value, version)))| (i, (change, value.as_slice(), version.as_ref())))
            .partition(|(_, (change, ..))| matches!(change.kind, ChangeKind::Put(_)));
        let (put_at, puts): (Vec<usize>, Vec<_>) = puts.into_iter().unzip();
        let (delete_at, deletes): (Vec<usize>, Vec<_>) = deletes.into_iter().unzip();
        // Values first, then the index lists the ones written, a slice at a time: a value stays
        // unlisted only while its slice is written (well within `REPAIR_GRACE`).
        for (ats, slice) in put_at.chunks(LISTED_EVERY).zip(puts.chunks(LISTED_EVERY)) {
            let outcomes = self.write_values(namespace, slice, &history, &indexed).await;
            let mut listed = Vec::new();
            for ((&at, &(change, _, version)), outcome) in ats.iter().zip(slice).zip(outcomes) {
                match outcome {
                    Ok(()) => {
                        listed.push(change.name.as_str());
                        done[at] = Some(Applied { name: change.name.clone(), version: version.cloned() });
                    }
                    Err(e) => {
                        report.error.get_or_insert(e);
                    }
                }
            }
            if !listed.is_empty() {
                if let Err(e) = self.update_index(namespace, &listed, &[]).await {
                    // Written but not listed: invisible, as if not written (repair finds them).
                    for &at in ats {
                        done[at] = None;
                    }
                    report.error = Some(e);
                    report.applied = done.into_iter().flatten().collect();
                    return report;
                }
            }
            if report.error.is_some() {
                break;
            }
        }
        // Deletes only if every put went in.
        let unlisted: Vec<&str> =
            if report.error.is_none() { deletes.iter().map(|(c, ..)| c.name.as_str()).collect() } else { Vec::new() };
        if !unlisted.is_empty() {
            if let Err(e) = self.update_index(namespace, &[], &unlisted).await {
                report.error = Some(e);
                report.applied = done.into_iter().flatten().collect();
                return report;
            }
            // Unlisted, now the values go: one whose value changed meanwhile is listed again.
            let outcomes = self.write_values(namespace, &deletes, &history, &indexed).await;
            let mut relist = Vec::new();
            for ((&at, &(change, ..)), outcome) in delete_at.iter().zip(&deletes).zip(outcomes) {
                match outcome {
                    Ok(()) => done[at] = Some(Applied { name: change.name.clone(), version: None }),
                    // The value is certainly still there: listed again. (After another error
                    // it may be gone: left unlisted, as a value repair finds, never an entry
                    // without a value.)
                    Err(e) if e.kind() == crate::model::error::ErrorKind::Conflict => {
                        relist.push(change.name.as_str());
                        report.error.get_or_insert(e);
                    }
                    Err(e) => {
                        report.error.get_or_insert(e);
                    }
                }
            }
            if !relist.is_empty() {
                if let Err(e) = self.update_index(namespace, &relist, &[]).await {
                    tracing::warn!(backend = %self.inner.describe, error = %e, "could not list again values whose delete failed");
                }
            }
        }
        report.applied = done.into_iter().flatten().collect();
        let written: Vec<String> = report.applied.iter().map(|a| format!("{namespace}-{}", a.name)).collect();
        let written: Vec<&str> = written.iter().map(String::as_str).chain([namespace]).collect();
        if let Err(e) = self.wait_for_replicas_of(&written).await {
            report.error.get_or_insert(e);
        }
        report
    }

    /// [`Backend::repair`](crate::backend::Backend::repair) on a sharded cluster. A value counts as
    /// unindexed only if it still is, unchanged, after [`REPAIR_GRACE`] (a put in flight lists
    /// its value a moment after writing it); each fix is checked again on its own key.
    pub(super) async fn cluster_repair(&self, options: &crate::backend::RepairOptions) -> Result<Repair> {
        let fix = options.fix;
        let mut report = Repair { fixed: fix, ..Repair::default() };
        let mut named: std::collections::BTreeSet<&str> = options.keys.iter().map(String::as_str).collect();
        // (namespace, configuration, the value's version when first seen; none for a key the
        // operator named)
        let mut suspects: Vec<(String, String, Option<Version>)> = Vec::new();
        let mut dangling: Vec<(String, String)> = Vec::new();
        for namespace in self.root_names().await? {
            let (listed, keys) = self.index_and_keys(&namespace).await?;
            dangling.extend(listed.iter().filter(|c| !keys.contains(*c)).map(|c| (namespace.clone(), c.clone())));
            let unlisted: Vec<&String> = keys.iter().filter(|c| !listed.contains(*c)).collect();
            let full: Vec<String> = unlisted.iter().map(|c| format!("{namespace}-{c}")).collect();
            for ((cfg, key), value) in unlisted.into_iter().zip(&full).zip(self.get_many(&full).await?) {
                if named.remove(key.as_str()) {
                    suspects.push((namespace.clone(), cfg.clone(), None));
                    continue;
                }
                match self.classify_unlisted(&namespace, cfg, value.as_deref()).await? {
                    super::repair::Unlisted::Ours(_) => {
                        let version = value.map(|v| sha1_version(&v));
                        suspects.push((namespace.clone(), cfg.clone(), version));
                    }
                    super::repair::Unlisted::Foreign(reason) => {
                        report.foreign.push(crate::backend::ForeignKey { key: key.clone(), reason })
                    }
                }
            }
        }
        if let Some(key) = named.first() {
            return Err(Error::InvalidValue {
                location: self.key_location(key),
                message: "repair --key names a key that is not an unlisted key of a listed namespace".into(),
            });
        }
        if !suspects.is_empty() || !dangling.is_empty() {
            tokio::time::sleep(REPAIR_GRACE).await;
        }
        // The indexes again, after the grace period.
        let mut indexes: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for namespace in suspects.iter().map(|s| &s.0).chain(dangling.iter().map(|d| &d.0)) {
            if !indexes.contains_key(namespace) {
                indexes.insert(namespace.clone(), self.read_index(namespace, "configurations").await?);
            }
        }
        let keys: Vec<String> = suspects.iter().map(|(n, c, _)| format!("{n}-{c}")).collect();
        let now = self.get_many(&keys).await?;
        let mut unindexed = Vec::new();
        for ((namespace, cfg, before), value) in suspects.into_iter().zip(now) {
            let same = before.is_none() || value.map(|v| sha1_version(&v)) == before;
            if same && !indexes[&namespace].contains(&cfg) {
                unindexed.push((namespace, cfg, before));
            }
        }
        let keys: Vec<String> = dangling.iter().map(|(n, c)| format!("{n}-{c}")).collect();
        let now = self.get_many(&keys).await?;
        dangling = dangling
            .into_iter()
            .zip(now)
            .filter(|((namespace, cfg), value)| value.is_none() && indexes[namespace].contains(cfg))
            .map(|(pair, _)| pair)
            .collect();
        if fix {
            let drops: Vec<_> = unindexed
                .iter()
                .map(|(namespace, cfg, before)| async move {
                    let sha = before.as_ref().map_or("*", |v| v.as_text().unwrap_or_default());
                    let key = format!("{namespace}-{cfg}");
                    self.eval::<i64>(&self.scripts().cluster_drop, &[&key], sha, &[]).await
                })
                .collect();
            futures_util::stream::iter(drops).buffer_unordered(IN_FLIGHT).try_collect::<Vec<_>>().await?;
            let mut by_namespace: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for (namespace, cfg) in &dangling {
                by_namespace.entry(namespace).or_default().push(cfg);
            }
            for (namespace, names) in by_namespace {
                self.update_index(namespace, &[], &names).await?;
            }
            self.wait_for_replicas().await?;
        }
        report.unindexed = unindexed.into_iter().map(|(n, c, _)| (n, c)).collect();
        report.dangling = dangling;
        Ok(report)
    }

    /// A namespace's index, and the configurations its data keys name.
    async fn index_and_keys(&self, namespace: &str) -> Result<(Vec<String>, Vec<String>)> {
        let listed = self.read_index(namespace, "configurations").await?;
        // Every key <ns>-*: a namespace never contains '-', so the prefix is exact.
        let prefix = format!("{namespace}-");
        let mut keys: Vec<String> = self
            .scan_keys(&format!("{}*", super::glob_escape(&prefix)))
            .await?
            .into_iter()
            .filter_map(|k| k.strip_prefix(&prefix).map(str::to_owned))
            .collect();
        keys.sort();
        keys.dedup();
        Ok((listed, keys))
    }
}

#[cfg(test)]
mod tests {
    use super::{crc16, slot};

    #[test]
    fn slots_match_redis() {
        // Values from CLUSTER KEYSLOT.
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"somekey"), 11058);
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        assert_eq!(slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % 16384, "an empty tag hashes the whole key");
        assert_ne!(slot(b"foo{}{bar}"), slot(b"bar"));
        assert_eq!(slot(b"confo-history:{ns-db}"), slot(b"ns-db"));
    }
}
