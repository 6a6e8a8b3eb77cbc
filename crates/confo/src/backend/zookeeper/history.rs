//! The ZooKeeper engine's history: one znode per revision,
//! `[chroot]/confo-history/<ns>/<cfg>/v-NNNNNNNNNN`, created in the same `multi` as the
//! configuration's version-checked write (a stale version leaves no revision).
//!
//! The numbers are not ZooKeeper sequence numbers (the parent's `cversion` also counts
//! deletions, so retention would leave gaps): a write reads each configuration's stat and its
//! revisions (all requests in flight at once), then creates revision `newest + 1` by name. Two
//! writers racing for a number both name the same znode; one `multi` fails whole (`NodeExists`,
//! or `BadVersion` on the configuration) and, for a change without a precondition, is tried
//! again with a fresh read. A revision's `after` is the configuration's stat version once
//! written. The revisions' parent is created or has a child created in the same transaction as
//! each recorded write, so its `pzxid` equals the configuration's `mzxid` unless someone else
//! changed the configuration since: then an `external` revision is recorded first.

use std::time::SystemTime;

use zookeeper_client as zk;

use super::{zk_version, ZkBackend, WRITE_BATCH, WRITE_BATCH_BYTES};
use crate::backend::kit::{join_ordered, pack};
use crate::model::change::{Applied, Change, ChangeKind, Precondition, WriteReport};
use crate::model::error::{ConfigId, Error, Result};
use crate::model::history::{decode_record, operation_of, Author, History, Record};
use crate::model::version::Version;

/// Digits of a revision's number in its znode's name.
const DIGITS: usize = 10;
/// How often a change without a precondition is tried again after another writer won a race.
const ATTEMPTS: usize = 40;
/// Most operations per write transaction with history (three or four per configuration; the
/// bytes, a value twice, are the real bound).
const RECORDED_BATCH_OPS: usize = WRITE_BATCH;
/// Write transactions in flight at once.
const IN_FLIGHT: usize = 4;
/// Configurations whose heads one read-only `multi` asks for (three reads each).
const HEADS_PER_READ: usize = 200;
/// Batches larger than this list the namespace first (see `heads`); smaller ones, point writes
/// above all, read only what they touch.
const LIST_FROM: usize = 16;

fn revision_name(number: u64) -> String {
    format!("v-{number:0DIGITS$}")
}

fn revision_number(name: &str) -> Option<u64> {
    name.strip_prefix("v-")?.parse().ok()
}

/// What a write needs to know of one configuration.
#[derive(Debug, Clone)]
struct Head {
    /// Its znode's stat, if it exists.
    data: Option<zk::Stat>,
    /// Its revisions (numbers, sorted), and their parent's `pzxid`; `None` if it has none yet.
    revisions: Option<(Vec<u64>, i64)>,
}

/// One change's part of a transaction.
struct Plan {
    ops: Vec<Op>,
    bytes: usize,
    /// The stat version it writes, for a put.
    version_after: Option<i64>,
}

#[derive(Clone)]
enum Op {
    Create(String, Vec<u8>),
    Set(String, Vec<u8>, i32),
    Delete(String, i32),
}

impl ZkBackend {
    pub(super) fn history_base(&self) -> String {
        format!("{}/confo-history", self.inner.options.chroot.as_deref().unwrap_or(""))
    }

    fn history_path(&self, namespace: &str, config: &str) -> String {
        format!("{}/{namespace}/{config}", self.history_base())
    }

    /// The history nodes a read or write of these configurations' history goes through:
    /// `[chroot]/confo-history`, the namespace's, each configuration's. With credentials each
    /// must be ours, as configuration nodes must ([`ZkBackend::check_nodes`]): a client without
    /// credentials could otherwise pre-create them world-open, plant revisions a rollback would
    /// write back, and delete ours. Their children (the revisions) need no look of their own:
    /// only an identity that may create children of a node ours alone may change created them.
    pub(super) fn history_chain(&self, namespace: &str, configs: &[&str]) -> Vec<String> {
        let base = self.history_base();
        let mut chain = vec![base.clone(), format!("{base}/{namespace}")];
        chain.extend(configs.iter().map(|config| self.history_path(namespace, config)));
        chain
    }

    /// What a write needs to know of each configuration. A large batch lists the namespace
    /// and its history folder first (two requests) and asks only about the configurations
    /// either lists; the rest are new, with no history. The others are read with read-only
    /// `multi`s (their stat, their revisions' parent and its children), all in flight at once.
    async fn heads(&self, namespace: &str, names: &[&str]) -> Result<Vec<Head>> {
        let mut heads = vec![Head { data: None, revisions: None }; names.len()];
        let mut asked: Vec<usize> = (0..names.len()).collect();
        if names.len() > LIST_FROM {
            let history_ns = format!("{}/{namespace}", self.history_base());
            let (existing, recorded) = tokio::join!(
                self.children(namespace),
                self.call(|c, _| {
                    let path = history_ns.clone();
                    async move { c.list_children(&path).await }
                })
            );
            let existing: std::collections::HashSet<String> = existing?.into_iter().collect();
            let recorded: std::collections::HashSet<String> = match recorded {
                Ok(names) => names.into_iter().collect(),
                Err(zk::Error::NoNode) => Default::default(),
                Err(e) => return Err(self.map_error(e)),
            };
            asked.retain(|&i| existing.contains(names[i]) || recorded.contains(names[i]));
        }
        let ns_path = self.namespace_path(namespace);
        let reads = join_ordered(asked.chunks(HEADS_PER_READ).map(|group| {
            let paths: Vec<(String, String)> = group
                .iter()
                .map(|&i| (format!("{ns_path}/{}", names[i]), self.history_path(namespace, names[i])))
                .collect();
            let this = self.clone();
            async move {
                this.call(|c, _| {
                    let paths = &paths;
                    async move {
                        let mut reader = c.new_multi_reader();
                        for (data, history) in paths {
                            reader.add_get_data(data)?;
                            reader.add_get_data(history)?;
                            reader.add_get_children(history)?;
                        }
                        reader.commit().await
                    }
                })
                .await
            }
        }))
        .await;
        for (group, read) in asked.chunks(HEADS_PER_READ).zip(reads) {
            let results = read.map_err(|e| self.map_error(e))?;
            if results.len() != group.len() * 3 {
                return Err(Error::unavailable(self.inner.describe.clone(), "unexpected multi-read response"));
            }
            for (&i, three) in group.iter().zip(results.chunks(3)) {
                let data = match &three[0] {
                    zk::MultiReadResult::Data { stat, .. } => Some(*stat),
                    zk::MultiReadResult::Error { err: zk::Error::NoNode } => None,
                    zk::MultiReadResult::Error { err } => return Err(self.map_error(err.clone())),
                    _ => None,
                };
                let revisions = match (&three[1], &three[2]) {
                    (zk::MultiReadResult::Data { stat, .. }, zk::MultiReadResult::Children { children }) => {
                        let mut numbers: Vec<u64> = children.iter().filter_map(|n| revision_number(n)).collect();
                        numbers.sort_unstable();
                        Some((numbers, stat.pzxid))
                    }
                    _ => None,
                };
                heads[i] = Head { data, revisions };
            }
        }
        Ok(heads)
    }

    /// Creates `[chroot]/confo-history/<ns>` (and its parent) if missing.
    async fn ensure_history_namespace(&self, namespace: &str) -> Result<()> {
        let path = format!("{}/{namespace}", self.history_base());
        self.call(|c, acls| {
            let path = path.clone();
            async move {
                match c.mkdir(&path, &zk::CreateMode::Persistent.with_acls(zk::Acls::new(&acls))).await {
                    Ok(()) | Err(zk::Error::NodeExists) => Ok(()),
                    Err(e) => Err(e),
                }
            }
        })
        .await
        .map_err(|e| self.map_error(e))
    }

    /// [`Backend::apply`](crate::backend::Backend::apply) with history: see the module's notes.
    pub(super) async fn apply_recorded(&self, namespace: &str, author: &Author, changes: &[Change]) -> WriteReport {
        let ns_path = self.namespace_path(namespace);
        // With credentials, the namespace must be ours before anything is written into it.
        match self.namespace_acl(namespace).await {
            Ok(Some(v)) if v != 0 => {
                let targets = changes.iter().map(|c| format!("{ns_path}/{}", c.name)).collect();
                if let Err(e) = self.check_nodes(targets).await {
                    return WriteReport::failed(e);
                }
            }
            Ok(_) => {}
            Err(e) => return WriteReport::failed(e),
        }
        let mut encoded = Vec::with_capacity(changes.len());
        for change in changes {
            let path = format!("{ns_path}/{}", change.name);
            match &change.kind {
                ChangeKind::Put(value) => match self.encode(&path, value) {
                    Ok(bytes) => encoded.push(Some(bytes)),
                    Err(e) => return WriteReport::failed(e),
                },
                ChangeKind::Delete => encoded.push(None),
            }
        }
        let names: Vec<&str> = changes.iter().map(|c| c.name.as_str()).collect();
        if let Err(e) = self.check_nodes(self.history_chain(namespace, &names)).await {
            return WriteReport::failed(e);
        }
        if let Err(e) = self.ensure_history_namespace(namespace).await {
            return WriteReport::failed(e);
        }
        let time = crate::model::history::now();
        let mut report = WriteReport::default();
        let mut pending: Vec<usize> = (0..changes.len()).collect();
        for attempt in 1..=ATTEMPTS {
            let names: Vec<&str> = pending.iter().map(|&i| changes[i].name.as_str()).collect();
            let heads = match self.heads(namespace, &names).await {
                Ok(heads) => heads,
                Err(e) => {
                    report.error = Some(e);
                    return report;
                }
            };
            let mut plans = Vec::with_capacity(pending.len());
            for (&i, head) in pending.iter().zip(&heads) {
                let change = &changes[i];
                let current = head.data.as_ref().map(|s| i64::from(s.version));
                let holds = match &change.precondition {
                    Precondition::Any => true,
                    Precondition::Absent => current.is_none(),
                    Precondition::Version(v) => current.is_some() && zk_version(v) == current.unwrap_or(-1) as i32,
                };
                if !holds {
                    let path = format!("{ns_path}/{}", change.name);
                    report.error =
                        Some(Error::conflict(self.location(&path), Some(ConfigId::new(namespace, &change.name))));
                    return report;
                }
                match self.plan(namespace, author, time, change, encoded[i].as_deref(), head).await {
                    Ok(plan) => plans.push((i, plan)),
                    Err(e) => {
                        report.error = Some(e);
                        return report;
                    }
                }
            }
            // Transactions bounded in operations and bytes.
            let chunks = pack(plans, RECORDED_BATCH_OPS, WRITE_BATCH_BYTES, |(_, plan)| (plan.ops.len(), plan.bytes));
            // A few transactions in flight at a time: a connection busy with many large ones
            // answers no ping within the session's timeout.
            let mut outcomes = Vec::with_capacity(chunks.len());
            for wave in chunks.chunks(IN_FLIGHT) {
                outcomes.extend(
                    join_ordered(wave.iter().map(|chunk| {
                        let ops: Vec<Op> = chunk.iter().flat_map(|(_, p)| p.ops.iter().cloned()).collect();
                        let this = self.clone();
                        async move {
                            if ops.is_empty() {
                                return Ok(Ok(()));
                            }
                            this.call(|c, acls| {
                                let ops = &ops;
                                async move {
                                    let options = zk::CreateMode::Persistent.with_acls(zk::Acls::new(&acls));
                                    let mut writer = c.new_multi_writer();
                                    for op in ops {
                                        match op {
                                            Op::Create(path, data) => writer.add_create(path, data, &options)?,
                                            Op::Set(path, data, version) => {
                                                writer.add_set_data(path, data, Some(*version))?
                                            }
                                            Op::Delete(path, version) => writer.add_delete(path, Some(*version))?,
                                        }
                                    }
                                    match writer.commit().await {
                                        Ok(_) => Ok(Ok(())),
                                        Err(zk::MultiWriteError::OperationFailed { source, .. }) => Ok(Err(source)),
                                        Err(zk::MultiWriteError::RequestFailed { source }) => Err(source),
                                    }
                                }
                            })
                            .await
                        }
                    }))
                    .await,
                );
            }
            let mut retry = Vec::new();
            for (chunk, outcome) in chunks.iter().zip(outcomes) {
                match outcome {
                    Ok(Ok(())) => {
                        for (i, plan) in chunk {
                            let version = plan.version_after.map(Version::number);
                            report.applied.push(Applied { name: changes[*i].name.clone(), version });
                        }
                    }
                    Ok(Err(zk::Error::NoNode))
                        if report.error.is_none() && !self.exists(&ns_path).await.unwrap_or(true) =>
                    {
                        report.error = Some(self.missing_namespace(namespace));
                    }
                    Ok(Err(source)) => {
                        let race = matches!(source, zk::Error::NodeExists | zk::Error::BadVersion | zk::Error::NoNode);
                        // Another writer won a race, or the configuration changed: read again
                        // (a precondition that no longer holds is then a conflict).
                        if race {
                            retry.extend(chunk.iter().map(|(i, _)| *i));
                        } else if report.error.is_none() {
                            report.error = Some(match source {
                                zk::Error::NodeExists | zk::Error::BadVersion | zk::Error::NoNode => {
                                    Error::conflict(format!("{} namespace {namespace:?}", self.inner.describe), None)
                                }
                                other => self.map_error(other),
                            });
                        }
                    }
                    Err(e) if report.error.is_none() => report.error = Some(self.map_error(e)),
                    Err(_) => {}
                }
            }
            if report.error.is_some() || retry.is_empty() {
                return report;
            }
            match self.exists(&ns_path).await {
                Ok(true) => {}
                Ok(false) => {
                    report.error = Some(self.missing_namespace(namespace));
                    return report;
                }
                Err(e) => {
                    report.error = Some(e);
                    return report;
                }
            }
            pending = retry;
            if attempt < ATTEMPTS {
                crate::backend::kit::race_pause(attempt).await;
            }
        }
        let path = format!("{ns_path}/{}", changes[pending[0]].name);
        report.error = Some(Error::conflict(
            format!("{} (other writers kept winning the race for its next revision)", self.location(&path)),
            Some(ConfigId::new(namespace, &changes[pending[0]].name)),
        ));
        report
    }

    /// The operations that write one change and its revisions.
    async fn plan(
        &self,
        namespace: &str,
        author: &Author,
        time: SystemTime,
        change: &Change,
        value: Option<&[u8]>,
        head: &Head,
    ) -> Result<Plan> {
        let path = format!("{}/{}", self.namespace_path(namespace), change.name);
        let history = self.history_path(namespace, &change.name);
        let mut plan = Plan { ops: Vec::new(), bytes: 0, version_after: None };
        let current = head.data.as_ref();
        if value.is_none() && current.is_none() {
            return Ok(plan); // deleting what does not exist: nothing to write or record
        }
        let numbers: &[u64] = head.revisions.as_ref().map_or(&[], |(n, _)| n.as_slice());
        let mut next = numbers.last().map_or(1, |n| n + 1);
        if head.revisions.is_none() {
            plan.ops.push(Op::Create(history.clone(), Vec::new()));
        }
        let before = current.map(|s| s.version.to_string());
        // Changed outside confo: the configuration's last change is not the revisions' last.
        if let Some(stat) = current {
            let recorded = head.revisions.as_ref().filter(|(n, _)| !n.is_empty()).map(|(_, pzxid)| *pzxid);
            if recorded != Some(stat.mzxid) {
                let content = self
                    .call(|c, _| {
                        let path = path.clone();
                        async move { c.get_data(&path).await }
                    })
                    .await
                    .ok()
                    .and_then(|(bytes, _)| crate::model::codec::parse_config(&bytes).ok());
                let last_after = match numbers.last() {
                    Some(n) => self.read_revision(namespace, &change.name, *n).await.and_then(|r| r.version_after),
                    None => None,
                };
                let record = Record::external(next, time, last_after, before.clone(), content.as_ref());
                let bytes = record.encode()?;
                plan.ops.push(Op::Create(format!("{history}/{}", revision_name(next)), bytes));
                next += 1;
            }
        }
        let operation = operation_of(change, current.is_some());
        let content = match &change.kind {
            ChangeKind::Put(v) => Some(&**v),
            ChangeKind::Delete => None,
        };
        plan.version_after = match (value, current) {
            (Some(_), Some(stat)) => Some(i64::from(stat.version) + 1),
            (Some(_), None) => Some(0),
            (None, _) => None,
        };
        let record = Record {
            number: next,
            operation,
            time,
            author,
            restores: change.restores,
            before,
            after: plan.version_after.map(|v| v.to_string()),
            value: content,
        };
        let bytes = record.encode()?;
        plan.ops.push(match (value, current) {
            (Some(v), Some(stat)) => Op::Set(path.clone(), v.to_vec(), stat.version),
            (Some(v), None) => Op::Create(path.clone(), v.to_vec()),
            (None, Some(stat)) => Op::Delete(path.clone(), stat.version),
            (None, None) => unreachable!("handled above"),
        });
        plan.ops.push(Op::Create(format!("{history}/{}", revision_name(next)), bytes));
        // Retention (count, and age when set): the oldest beyond the newest `keep`.
        let options = &self.inner.options.history;
        let mut all: Vec<u64> = numbers.to_vec();
        all.extend(numbers.last().map_or(1, |n| n + 1)..=next);
        let keep = options.keep.max(1);
        if all.len() > keep {
            let beyond: Vec<u64> = all[..all.len() - keep].to_vec();
            let now = crate::model::history::now();
            let mut dated: Vec<(u64, SystemTime)> = Vec::new();
            for n in &beyond {
                let t = if options.by_age() {
                    self.read_revision(namespace, &change.name, *n).await.map_or(now, |r| r.time)
                } else {
                    SystemTime::UNIX_EPOCH
                };
                dated.push((*n, t));
            }
            dated.extend(all[all.len() - keep..].iter().map(|n| (*n, now)));
            for n in options.to_drop(&dated, now) {
                if numbers.contains(&n) {
                    plan.ops.push(Op::Delete(format!("{history}/{}", revision_name(n)), -1));
                }
            }
        }
        // Request bytes: each operation's path and data, and room for its header and ACL.
        plan.bytes = plan
            .ops
            .iter()
            .map(|op| match op {
                Op::Create(path, data) | Op::Set(path, data, _) => path.len() + data.len() + 64,
                Op::Delete(path, _) => path.len() + 64,
            })
            .sum();
        Ok(plan)
    }

    async fn read_revision(
        &self,
        namespace: &str,
        config: &str,
        number: u64,
    ) -> Option<crate::model::history::Revision> {
        let path = format!("{}/{}", self.history_path(namespace, config), revision_name(number));
        let (bytes, _) = self
            .call(|c, _| {
                let path = path.clone();
                async move { c.get_data(&path).await }
            })
            .await
            .ok()?;
        decode_record(&bytes, Some(number), String::new).ok()
    }

    /// Every revision of a configuration.
    pub(super) async fn read_history(&self, namespace: &str, config: &str) -> Result<History> {
        self.check_nodes(self.history_chain(namespace, &[config])).await?;
        let path = self.history_path(namespace, config);
        let names = match self
            .call(|c, _| {
                let path = path.clone();
                async move { c.list_children(&path).await }
            })
            .await
        {
            Ok(names) => names,
            Err(zk::Error::NoNode) => return Ok(History::default()),
            Err(e) => return Err(self.map_error(e)),
        };
        let numbers: Vec<u64> = names.iter().filter_map(|n| revision_number(n)).collect();
        let reads = join_ordered(numbers.iter().map(|&n| {
            let (this, child) = (self.clone(), format!("{path}/{}", revision_name(n)));
            async move {
                let read = this
                    .call(|c, _| {
                        let child = child.clone();
                        async move { c.get_data(&child).await }
                    })
                    .await;
                (n, child, read)
            }
        }))
        .await;
        let mut history = History::default();
        for (number, child, read) in reads {
            match read {
                Ok((bytes, _)) => {
                    match decode_record(&bytes, Some(number), || format!("{}@{number}", self.location(&child))) {
                        Ok(revision) => history.revisions.push(revision),
                        Err(corruption) => history.corrupt.push(corruption),
                    }
                }
                // Dropped by retention meanwhile.
                Err(zk::Error::NoNode) => {}
                Err(e) => return Err(self.map_error(e)),
            }
        }
        Ok(history.sorted())
    }

    /// [`Backend::rewrite_history`](crate::backend::Backend::rewrite_history): each revision znode
    /// rewritten only if unchanged since it was read (its data version).
    pub(super) async fn rewrite_records(
        &self,
        namespace: &str,
        config: &str,
        rewrite: &crate::model::history::Rewrite,
    ) -> Result<Vec<u64>> {
        self.check_nodes(self.history_chain(namespace, &[config])).await?;
        let path = self.history_path(namespace, config);
        let names = match self
            .call(|c, _| {
                let path = path.clone();
                async move { c.list_children(&path).await }
            })
            .await
        {
            Ok(names) => names,
            Err(zk::Error::NoNode) => return Ok(Vec::new()),
            Err(e) => return Err(self.map_error(e)),
        };
        let mut rewritten = Vec::new();
        for number in names.iter().filter_map(|n| revision_number(n)) {
            let child = format!("{path}/{}", revision_name(number));
            let read = self
                .call(|c, _| {
                    let child = child.clone();
                    async move { c.get_data(&child).await }
                })
                .await;
            let (bytes, stat) = match read {
                Ok(found) => found,
                Err(zk::Error::NoNode) => continue,
                Err(e) => return Err(self.map_error(e)),
            };
            let Some(record) = crate::model::history::rewritten_record(&bytes, rewrite) else { continue };
            let bytes = serde_json::to_vec(&record)
                .map_err(|e| Error::InvalidValue { location: self.location(&child), message: e.to_string() })?;
            let written = self
                .call(|c, _| {
                    let (child, bytes) = (child.clone(), bytes.clone());
                    async move { c.set_data(&child, &bytes, Some(stat.version)).await.map(drop) }
                })
                .await;
            match written {
                Ok(()) => rewritten.push(number),
                Err(zk::Error::NoNode | zk::Error::BadVersion) => {}
                Err(e) => return Err(self.map_error(e)),
            }
        }
        rewritten.sort_unstable();
        Ok(rewritten)
    }

    /// The configurations of a namespace with a history.
    pub(super) async fn history_configurations(&self, namespace: &str) -> Result<Vec<String>> {
        self.check_nodes(self.history_chain(namespace, &[])).await?;
        let path = format!("{}/{namespace}", self.history_base());
        match self
            .call(|c, _| {
                let path = path.clone();
                async move { c.list_children(&path).await }
            })
            .await
        {
            Ok(mut names) => {
                names.sort();
                Ok(names)
            }
            Err(zk::Error::NoNode) => Ok(Vec::new()),
            Err(e) => Err(self.map_error(e)),
        }
    }
}
