//! `repair` for the seed's Redis layout: data keys `<ns>-<cfg>` the namespace's index does not
//! list (invisible to every reader: a crashed writer that is not confo's scripts, a raw client),
//! and index entries whose key is missing (read as corrupt entries).

use super::{glob_escape, RedisBackend};
use crate::backend::{Backend, Repair};
use crate::error::Result;

impl RedisBackend {
    pub(super) async fn find_and_repair(&self, fix: bool) -> Result<Repair> {
        if self.inner.topology == super::Topology::Sharded {
            return self.cluster_repair(fix).await;
        }
        let mut report = Repair { fixed: fix, ..Repair::default() };
        for namespace in self.list_namespaces().await? {
            let listed = self.read_index(&namespace, "configurations").await?;
            // Every key <ns>-*: a namespace never contains '-', so the prefix is exact.
            let prefix = format!("{namespace}-");
            let pattern = format!("{}*", glob_escape(&prefix));
            let keys: std::collections::BTreeSet<String> = self
                .scan_keys(&pattern)
                .await?
                .into_iter()
                .filter_map(|k| k.strip_prefix(&prefix).map(str::to_owned))
                .collect();
            let listed_set: std::collections::BTreeSet<&str> = listed.iter().map(String::as_str).collect();
            let dangling: Vec<String> = listed.iter().filter(|c| !keys.contains(*c)).cloned().collect();
            let mut unindexed = Vec::new();
            for cfg in keys.iter().filter(|c| !listed_set.contains(c.as_str())) {
                // Another program's key of another type is not ours: left alone, not reported.
                let kind: String = self.query(redis::cmd("TYPE").arg(format!("{prefix}{cfg}"))).await?;
                if kind == "string" {
                    unindexed.push(cfg.clone());
                }
            }
            if fix && !(dangling.is_empty() && unindexed.is_empty()) {
                let count = dangling.len().to_string();
                let mut args: Vec<&[u8]> = vec![count.as_bytes()];
                args.extend(dangling.iter().map(|s| s.as_bytes()));
                args.extend(unindexed.iter().map(|s| s.as_bytes()));
                let _fixed: i64 = self.script(&self.scripts().repair, &namespace, &args).await?;
                self.wait_for_replicas().await?;
            }
            report.dangling.extend(dangling.into_iter().map(|c| (namespace.clone(), c)));
            report.unindexed.extend(unindexed.into_iter().map(|c| (namespace.clone(), c)));
        }
        Ok(report)
    }
}
