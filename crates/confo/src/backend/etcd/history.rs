//! The etcd engine's history: one key per revision, `/confo-history/<ns>/<cfg>/<NNNNNNNNNN>`,
//! written in the same transaction as the configuration (etcd's own revisions are lost at
//! compaction, so none is relied on).
//!
//! A write reads, for each configuration, its key's revision and its newest history key (one
//! read-only transaction per 60 configurations, all in flight at once), then writes the data and
//! the next revision under a compare on the configuration's revision: if anyone wrote it in
//! between, the transaction writes nothing and, for a change without a precondition, is tried
//! again with a fresh read (so numbers never repeat or skip). A revision's `after` version is
//! the history key's own `mod_revision` (the transaction's); a configuration whose revision is
//! not its newest history key's was changed outside confo, and gets an `external` revision
//! first.

use std::time::SystemTime;

use etcd_client as etcd;

use super::{config_prefix, marker, prefix_end, transact, EtcdBackend, TXN_BYTES, TXN_OPS};
use crate::backend::kit::{join_ordered, pack};
use crate::model::change::{Applied, Change, ChangeKind, Precondition, WriteReport};
use crate::model::error::{ConfigId, Error, Result};
use crate::model::history::{decode_record, operation_of, Author, History, Operation, Record};
use crate::model::version::Version;

/// Prefix of every history key.
pub const HISTORY_PREFIX: &str = "/confo-history/";
/// Digits of a revision's number in its key (sorted by key = sorted by number).
const DIGITS: usize = 10;
/// Configurations whose heads one read transaction asks for (two ranges each).
const HEADS_PER_READ: usize = 60;
/// How often a change without a precondition is tried again after another writer won a race.
const ATTEMPTS: usize = 40;

fn history_prefix(namespace: &str, config: &str) -> String {
    format!("{HISTORY_PREFIX}{namespace}/{config}/")
}

fn history_key(namespace: &str, config: &str, number: u64) -> String {
    format!("{}{number:0DIGITS$}", history_prefix(namespace, config))
}

/// What a write needs to know of one configuration.
#[derive(Debug, Clone, Copy)]
struct Head {
    /// Its key's `mod_revision`, if it exists.
    data: Option<i64>,
    /// Its newest history key: number and `mod_revision`.
    newest: Option<(u64, i64)>,
}

impl EtcdBackend {
    async fn heads(&self, namespace: &str, names: &[&str]) -> Result<Vec<Head>> {
        let prefix = config_prefix(namespace);
        let reads = join_ordered(names.chunks(HEADS_PER_READ).map(|group| {
            let mut ops = Vec::with_capacity(group.len() * 2);
            for name in group {
                ops.push(etcd::TxnOp::get(format!("{prefix}{name}"), Some(etcd::GetOptions::new().with_keys_only())));
                let history = history_prefix(namespace, name);
                ops.push(etcd::TxnOp::get(
                    history.clone(),
                    Some(
                        etcd::GetOptions::new()
                            .with_range(prefix_end(&history))
                            .with_sort(etcd::SortTarget::Key, etcd::SortOrder::Descend)
                            .with_limit(1)
                            .with_keys_only(),
                    ),
                ));
            }
            let client = self.client();
            async move { transact(client, etcd::Txn::new().and_then(ops)).await }
        }))
        .await;
        let mut heads = Vec::with_capacity(names.len());
        for read in reads {
            let responses = read.map_err(|e| self.map_error(e))?.op_responses();
            let mut responses = responses.into_iter();
            while let (Some(etcd::TxnOpResponse::Get(data)), Some(etcd::TxnOpResponse::Get(history))) =
                (responses.next(), responses.next())
            {
                let newest = history.kvs().first().and_then(|kv| {
                    let key = kv.key_str().ok()?;
                    let number = key.rsplit('/').next()?.parse::<u64>().ok()?;
                    Some((number, kv.mod_revision()))
                });
                heads.push(Head { data: data.kvs().first().map(|kv| kv.mod_revision()), newest });
            }
        }
        if heads.len() != names.len() {
            return Err(Error::unavailable(self.inner.describe.clone(), "unexpected transaction response"));
        }
        Ok(heads)
    }

    /// [`Backend::apply`](crate::backend::Backend::apply) with history: see the module's notes.
    pub(super) async fn apply_recorded(
        &self,
        namespace: &str,
        author: &Author,
        encoded: Vec<(&Change, String, Option<Vec<u8>>)>,
    ) -> WriteReport {
        let mut report = WriteReport::default();
        let mut pending: Vec<usize> = (0..encoded.len()).collect();
        let time = crate::model::history::now();
        for attempt in 1..=ATTEMPTS {
            let names: Vec<&str> = pending.iter().map(|&i| encoded[i].0.name.as_str()).collect();
            let heads = match self.heads(namespace, &names).await {
                Ok(heads) => heads,
                Err(e) => {
                    report.error = Some(e);
                    return report;
                }
            };
            // Preconditions are checked against what was read (and enforced by the compare on
            // the configuration's revision): a broken one writes nothing.
            for (&i, head) in pending.iter().zip(&heads) {
                let (change, key, _) = &encoded[i];
                let holds = match &change.precondition {
                    Precondition::Any => true,
                    Precondition::Absent => head.data.is_none(),
                    Precondition::Version(v) => head.data.is_some_and(|r| v.as_number() == Some(r)),
                };
                if !holds {
                    report.error =
                        Some(Error::conflict(self.location(key), Some(ConfigId::new(namespace, &change.name))));
                    return report;
                }
            }
            let mut plans = Vec::with_capacity(pending.len());
            for (&i, head) in pending.iter().zip(&heads) {
                match self.plan(namespace, author, time, &encoded[i], *head).await {
                    Ok(plan) => plans.push((i, plan)),
                    Err(e) => {
                        report.error = Some(e);
                        return report;
                    }
                }
            }
            // Transactions bounded in operations and bytes, all in flight at once.
            let chunks = pack(plans, TXN_OPS, TXN_BYTES, |(_, plan)| (plan.ops.len(), plan.bytes));
            let outcomes = join_ordered(chunks.iter().map(|chunk| {
                let mut compares = vec![etcd::Compare::create_revision(marker(namespace), etcd::CompareOp::Greater, 0)];
                let mut ops = Vec::new();
                for (_, plan) in chunk {
                    compares.push(plan.compare.clone());
                    ops.extend(plan.ops.iter().cloned());
                }
                let client = self.client();
                async move { transact(client, etcd::Txn::new().when(compares).and_then(ops)).await }
            }))
            .await;
            let mut retry = Vec::new();
            for (chunk, outcome) in chunks.iter().zip(outcomes) {
                match outcome {
                    Ok(resp) if resp.succeeded() => {
                        let revision = resp.header().map_or(0, |h| h.revision());
                        for (i, _) in chunk {
                            let (change, _, value) = &encoded[*i];
                            let version = value.as_ref().map(|_| Version::number(revision));
                            report.applied.push(Applied { name: change.name.clone(), version });
                        }
                        if self.inner.history.by_age() {
                            for (i, plan) in chunk {
                                self.trim_by_age(namespace, &encoded[*i].0.name, plan.number).await;
                            }
                        }
                    }
                    Ok(_) => {
                        let changes: Vec<&Change> = chunk.iter().map(|(i, _)| encoded[*i].0).collect();
                        if changes.iter().all(|c| c.precondition == Precondition::Any) {
                            retry.extend(chunk.iter().map(|(i, _)| *i));
                        } else if report.error.is_none() {
                            report.error = Some(self.explain_failed_compares(namespace, &changes).await);
                        }
                    }
                    Err(e) if report.error.is_none() => report.error = Some(self.map_error(e)),
                    Err(_) => {}
                }
            }
            if report.error.is_some() || retry.is_empty() {
                return report;
            }
            // Another writer won a race for these: read them again, after a short pause that
            // differs between writers.
            pending = retry;
            if attempt < ATTEMPTS {
                crate::backend::kit::race_pause(attempt).await;
            }
        }
        let names: Vec<&Change> = pending.iter().map(|&i| encoded[i].0).collect();
        report.error = Some(self.explain_failed_compares(namespace, &names).await);
        report
    }

    /// The compare and operations that write one change and its history.
    async fn plan(
        &self,
        namespace: &str,
        author: &Author,
        time: SystemTime,
        (change, key, value): &(&Change, String, Option<Vec<u8>>),
        head: Head,
    ) -> Result<Plan> {
        let compare = match head.data {
            Some(revision) => etcd::Compare::mod_revision(key.clone(), etcd::CompareOp::Equal, revision),
            None => etcd::Compare::create_revision(key.clone(), etcd::CompareOp::Equal, 0),
        };
        let mut plan = Plan { compare, ops: Vec::new(), bytes: key.len(), number: 0 };
        if value.is_none() && head.data.is_none() {
            return Ok(plan); // deleting what does not exist: nothing to do or record
        }
        let mut next = head.newest.map_or(1, |(n, _)| n + 1);
        let before = head.data.map(|r| r.to_string());
        // Changed outside confo: its key's revision is not the newest revision's.
        if let Some(current) = head.data {
            if head.newest.is_none_or(|(_, recorded)| recorded != current) {
                let found = self.get(key.clone(), None).await?;
                let content = found.kvs().first().and_then(|kv| crate::model::codec::parse_config(kv.value()).ok());
                let record = Record::external(
                    next,
                    time,
                    head.newest.map(|(_, r)| r.to_string()),
                    before.clone(),
                    content.as_ref(),
                );
                let bytes = record.encode()?;
                plan.bytes += bytes.len();
                plan.ops.push(etcd::TxnOp::put(history_key(namespace, &change.name, next), bytes, None));
                next += 1;
            }
        }
        let operation = operation_of(change, head.data.is_some());
        let content = match &change.kind {
            ChangeKind::Put(v) => Some(&**v),
            ChangeKind::Delete => None,
        };
        let record = Record {
            number: next,
            operation,
            time,
            author,
            restores: change.restores,
            before,
            // The history key's own mod_revision, filled in when read.
            after: None,
            value: content,
        };
        let bytes = record.encode()?;
        plan.bytes += bytes.len() + value.as_ref().map_or(0, Vec::len);
        plan.ops.push(match value {
            Some(v) => etcd::TxnOp::put(key.clone(), v.clone(), None),
            None => etcd::TxnOp::delete(key.clone(), None),
        });
        plan.ops.push(etcd::TxnOp::put(history_key(namespace, &change.name, next), bytes, None));
        plan.number = next;
        // Retention by count: every revision below the newest `keep`, in one range delete.
        let keep = self.inner.history.keep.max(1) as u64;
        if next > keep && !self.inner.history.by_age() {
            let first = history_key(namespace, &change.name, 0);
            let end = history_key(namespace, &change.name, next + 1 - keep);
            plan.ops.push(etcd::TxnOp::delete(first, Some(etcd::DeleteOptions::new().with_range(end))));
        }
        Ok(plan)
    }

    /// With an age limit: drops revisions beyond `keep` that are also older than it (best
    /// effort; a failure leaves old revisions for the next write).
    async fn trim_by_age(&self, namespace: &str, config: &str, newest: u64) {
        let keep = self.inner.history.keep.max(1) as u64;
        if newest <= keep {
            return;
        }
        let first = history_key(namespace, config, 0);
        let end = history_key(namespace, config, newest + 1 - keep);
        let Ok(old) = self.get(first, Some(etcd::GetOptions::new().with_range(end))).await else { return };
        let now = crate::model::history::now();
        let dated: Vec<(u64, SystemTime, String)> = old
            .kvs()
            .iter()
            .filter_map(|kv| {
                let key = kv.key_str().ok()?.to_owned();
                let number = key.rsplit('/').next()?.parse::<u64>().ok()?;
                let time = decode_record(kv.value(), Some(number), String::new).map_or(now, |r| r.time);
                Some((number, time, key))
            })
            .collect();
        // The kept ones are all newer than these: pass them as such.
        let mut all: Vec<(u64, SystemTime)> = dated.iter().map(|(n, t, _)| (*n, *t)).collect();
        all.extend((newest + 1 - keep..=newest).map(|n| (n, now)));
        for number in self.inner.history.to_drop(&all, now) {
            if let Some((_, _, key)) = dated.iter().find(|(n, _, _)| *n == number) {
                let mut client = self.client();
                let _ = client.delete(key.clone(), None).await;
            }
        }
    }

    /// Every revision of a configuration.
    pub(super) async fn read_history(&self, namespace: &str, config: &str) -> Result<History> {
        let prefix = history_prefix(namespace, config);
        let found = self.get(prefix.clone(), Some(etcd::GetOptions::new().with_range(prefix_end(&prefix)))).await?;
        let mut history = History::default();
        for kv in found.kvs() {
            let Ok(key) = kv.key_str() else { continue };
            let number = key.rsplit('/').next().and_then(|n| n.parse::<u64>().ok());
            let location = || format!("{}@{}", self.location(key), number.unwrap_or(0));
            match decode_record(kv.value(), number, location) {
                Ok(mut revision) => {
                    if revision.version_after.is_none() && revision.operation != Operation::Delete {
                        revision.version_after = Some(kv.mod_revision().to_string());
                    }
                    history.revisions.push(revision);
                }
                Err(corruption) => history.corrupt.push(corruption),
            }
        }
        Ok(history.sorted())
    }

    /// [`Backend::rewrite_history`](crate::backend::Backend::rewrite_history): each revision key
    /// rewritten only if it is unchanged since it was read (`mod_revision`); a record whose
    /// version after was its own key's `mod_revision` keeps it, written out.
    pub(super) async fn rewrite_records(
        &self,
        namespace: &str,
        config: &str,
        rewrite: &crate::model::history::Rewrite,
    ) -> Result<Vec<u64>> {
        let prefix = history_prefix(namespace, config);
        let found = self.get(prefix.clone(), Some(etcd::GetOptions::new().with_range(prefix_end(&prefix)))).await?;
        let newest = found.kvs().iter().map(|kv| kv.mod_revision()).max();
        // A write tells a change made outside confo by the configuration's key revision not
        // being its newest revision's: that one, rewritten, is written in one transaction with
        // the configuration's own value again, so that the two stay equal.
        let data_key = format!("{}{config}", config_prefix(namespace));
        let data = self.get(data_key.clone(), None).await?;
        let data = data.kvs().first().map(|kv| (kv.mod_revision(), kv.value().to_vec()));
        let mut rewritten = Vec::new();
        for kv in found.kvs() {
            let Ok(key) = kv.key_str() else { continue };
            let Some(number) = key.rsplit('/').next().and_then(|n| n.parse::<u64>().ok()) else { continue };
            let Some(mut record) = crate::model::history::rewritten_record(kv.value(), rewrite) else { continue };
            let deletion = record.get("op").and_then(|v| v.as_str()) == Some("delete");
            if record.get("after").is_none_or(|v| v.is_null()) && !deletion {
                record.insert("after".into(), serde_json::Value::String(kv.mod_revision().to_string()));
            }
            let bytes = serde_json::to_vec(&record)
                .map_err(|e| Error::InvalidValue { location: self.location(key), message: e.to_string() })?;
            let mut compares = vec![etcd::Compare::mod_revision(key, etcd::CompareOp::Equal, kv.mod_revision())];
            let mut ops = vec![etcd::TxnOp::put(key, bytes, None)];
            if let Some((revision, value)) =
                data.as_ref().filter(|(r, _)| Some(kv.mod_revision()) == newest && *r == kv.mod_revision())
            {
                compares.push(etcd::Compare::mod_revision(data_key.clone(), etcd::CompareOp::Equal, *revision));
                ops.push(etcd::TxnOp::put(data_key.clone(), value.clone(), None));
            }
            let txn = etcd::Txn::new().when(compares).and_then(ops);
            if self.txn(txn).await?.succeeded() {
                rewritten.push(number);
            }
        }
        rewritten.sort_unstable();
        Ok(rewritten)
    }

    /// The configurations of a namespace with a history.
    pub(super) async fn history_configurations(&self, namespace: &str) -> Result<Vec<String>> {
        let prefix = format!("{HISTORY_PREFIX}{namespace}/");
        let found = self
            .get(prefix.clone(), Some(etcd::GetOptions::new().with_range(prefix_end(&prefix)).with_keys_only()))
            .await?;
        let mut names: Vec<String> = found
            .kvs()
            .iter()
            .filter_map(|kv| kv.key_str().ok()?.strip_prefix(&prefix)?.split('/').next().map(str::to_owned))
            .collect();
        names.dedup();
        Ok(names)
    }
}

/// One change's part of a transaction.
struct Plan {
    compare: etcd::Compare,
    ops: Vec<etcd::TxnOp>,
    bytes: usize,
    /// The number of the revision it records.
    number: u64,
}
