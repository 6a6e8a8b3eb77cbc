//! `repair` for the seed's Redis layout: data keys `<ns>-<cfg>` the namespace's index does not
//! list (invisible to every reader: a writer that died between its value and its index entry)
//! and index entries whose key is missing (read as corrupt entries).
//!
//! In a shared Redis, other programs' keys can share a namespace's prefix (`user-session:9f8e`
//! beside a namespace `user`). Only what confo could have written is removed: a key whose name
//! follows confo's rules, holding a JSON object, whose newest history revision (where history
//! is kept) records exactly that value. Everything else is reported as foreign and kept, unless
//! the operator names it (`repair --fix --key K`).

use std::collections::BTreeSet;

use super::{glob_escape, history_key, sha1_version, RedisBackend};
use crate::backend::{Backend, ForeignKey, Repair, RepairOptions};
use crate::model::error::{Error, Result};
use crate::model::name::NameKind;

/// An unlisted data key, as found.
pub(super) enum Unlisted {
    /// confo's: removed with `fix` if it still holds the value of this SHA-1.
    Ours(String),
    /// Not confo's (why): reported and kept.
    Foreign(String),
}

impl RedisBackend {
    pub(super) async fn find_and_repair(&self, options: &RepairOptions) -> Result<Repair> {
        if self.inner.topology == super::Topology::Sharded {
            return self.cluster_repair(options).await;
        }
        let mut report = Repair { fixed: options.fix, ..Repair::default() };
        let mut named: BTreeSet<&str> = options.keys.iter().map(String::as_str).collect();
        let mut work = Vec::new();
        for namespace in self.list_namespaces().await? {
            let listed = self.read_index(&namespace, "configurations").await?;
            // Every key <ns>-*: a namespace never contains '-', so the prefix is exact.
            let prefix = format!("{namespace}-");
            let pattern = format!("{}*", glob_escape(&prefix));
            let keys: BTreeSet<String> = self
                .scan_keys(&pattern)
                .await?
                .into_iter()
                .filter_map(|k| k.strip_prefix(&prefix).map(str::to_owned))
                .collect();
            let listed_set: BTreeSet<&str> = listed.iter().map(String::as_str).collect();
            let dangling: Vec<String> = listed.iter().filter(|c| !keys.contains(*c)).cloned().collect();
            let mut remove: Vec<(String, String)> = Vec::new();
            for cfg in keys.iter().filter(|c| !listed_set.contains(c.as_str())) {
                let key = format!("{prefix}{cfg}");
                let kind: String = self.query(redis::cmd("TYPE").arg(&key)).await?;
                let value: Option<Vec<u8>> = match kind.as_str() {
                    "string" => self.query(redis::cmd("GET").arg(&key)).await?,
                    _ => Some(format!("\0foreign {kind}").into_bytes()),
                };
                if named.remove(key.as_str()) {
                    remove.push((cfg.clone(), "*".to_owned()));
                    report.unindexed.push((namespace.clone(), cfg.clone()));
                    continue;
                }
                match self.classify_unlisted(&namespace, cfg, value.as_deref()).await? {
                    Unlisted::Ours(sha) => {
                        remove.push((cfg.clone(), sha));
                        report.unindexed.push((namespace.clone(), cfg.clone()));
                    }
                    Unlisted::Foreign(reason) => report.foreign.push(ForeignKey { key, reason }),
                }
            }
            report.dangling.extend(dangling.iter().map(|c| (namespace.clone(), c.clone())));
            work.push((namespace, dangling, remove));
        }
        if let Some(key) = named.first() {
            return Err(Error::InvalidValue {
                location: self.key_location(key),
                message: "repair --key names a key that is not an unlisted key of a listed namespace".into(),
            });
        }
        if options.fix {
            for (namespace, dangling, remove) in work.into_iter().filter(|(_, d, r)| !(d.is_empty() && r.is_empty())) {
                let count = dangling.len().to_string();
                let mut args: Vec<&[u8]> = vec![count.as_bytes()];
                args.extend(dangling.iter().map(|s| s.as_bytes()));
                for (cfg, sha) in &remove {
                    args.push(cfg.as_bytes());
                    args.push(sha.as_bytes());
                }
                let _fixed: i64 = self.script(&self.scripts().repair, &namespace, &args).await?;
                self.wait_for_replicas().await?;
            }
        }
        Ok(report)
    }

    /// Whether an unlisted data key `<namespace>-<cfg>` holding `value` (`None`: gone; another
    /// type as `\0foreign <type>`) can be confo's: its name follows confo's rules, it holds a
    /// JSON object, and where history is kept its newest revision records this value.
    pub(super) async fn classify_unlisted(&self, namespace: &str, cfg: &str, value: Option<&[u8]>) -> Result<Unlisted> {
        let foreign = |reason: &str| Ok(Unlisted::Foreign(reason.to_owned()));
        if crate::model::name::validate(NameKind::Configuration, cfg)
            .and_then(|()| self.check_name(NameKind::Configuration, cfg))
            .is_err()
        {
            return foreign("a name confo cannot write");
        }
        let Some(value) = value else { return foreign("removed meanwhile") };
        if let Some(kind) = value.strip_prefix(b"\0foreign ") {
            return Ok(Unlisted::Foreign(format!("a Redis {}, not a string", String::from_utf8_lossy(kind))));
        }
        if crate::model::codec::parse_config(value).is_err() {
            return foreign("not a JSON object");
        }
        let sha = sha1_version(value).as_text().unwrap_or_default().to_owned();
        if self.inner.history.enabled {
            let newest: redis::RedisResult<Vec<(String, Vec<Vec<u8>>)>> = {
                let mut conn = self.inner.link.connection().await.map_err(|e| self.map_error(e))?;
                redis::cmd("XREVRANGE")
                    .arg(history_key(namespace, cfg))
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1)
                    .query_async(&mut conn)
                    .await
            };
            let recorded = match newest {
                Ok(entries) => entries.first().and_then(|(_, fields)| {
                    fields.chunks(2).find(|pair| pair[0] == b"after").and_then(|pair| pair.get(1)).cloned()
                }),
                Err(e) if e.code() == Some("WRONGTYPE") => None,
                Err(e) => return Err(self.failed(e)),
            };
            if recorded.as_deref() != Some(sha.as_bytes()) {
                return foreign("no revision in confo's history records this value");
            }
        }
        Ok(Unlisted::Ours(sha))
    }
}
