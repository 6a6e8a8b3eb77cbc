//! The ZooKeeper engine's schema documents: one znode per namespace,
//! `[chroot]/confo-schemas/<ns>`, outside the `/confo` tree old readers walk. Versions are the
//! znode's stat version; a precondition is the operation's own (create for absent, a
//! versioned `setData` or delete).

use zookeeper_client as zk;

use super::{zk_version, ZkBackend};
use crate::model::change::Precondition;
use crate::model::error::{Error, Result};
use crate::model::version::Version;

/// How often a write without a precondition is tried again after racing another writer.
const ATTEMPTS: usize = 10;

impl ZkBackend {
    pub(super) fn schemas_base(&self) -> String {
        format!("{}/confo-schemas", self.inner.options.chroot.as_deref().unwrap_or(""))
    }

    fn schema_path(&self, namespace: &str) -> String {
        format!("{}/{namespace}", self.schemas_base())
    }

    /// The schema nodes a read or write of a namespace's schemas goes through; with
    /// credentials each must be ours (a squatted document would decide what may be written).
    pub(super) fn schema_chain(&self, namespace: &str) -> Vec<String> {
        vec![self.schemas_base(), self.schema_path(namespace)]
    }

    pub(super) async fn read_schema(&self, namespace: &str) -> Result<Option<(Vec<u8>, Version)>> {
        self.check_nodes(self.schema_chain(namespace)).await?;
        let path = self.schema_path(namespace);
        let found = self
            .call(|c, _| {
                let path = path.clone();
                async move { c.get_data(&path).await }
            })
            .await;
        match found {
            Ok((data, stat)) => Ok(Some((data, Version::number(i64::from(stat.version))))),
            Err(zk::Error::NoNode) => Ok(None),
            Err(zk::Error::NoAuth) => Err(self.unreadable_acl(&path)),
            Err(e) => Err(self.map_error(e)),
        }
    }

    pub(super) async fn write_schema(
        &self,
        namespace: &str,
        document: Option<Vec<u8>>,
        precondition: &Precondition,
    ) -> Result<Option<Version>> {
        self.check_nodes(self.schema_chain(namespace)).await?;
        let path = self.schema_path(namespace);
        let conflict = || Error::conflict(self.location(&path), None);
        let Some(data) = document else {
            let expected = match precondition {
                Precondition::Version(v) => Some(zk_version(v)),
                _ => None,
            };
            let deleted = self
                .call(|c, _| {
                    let path = path.clone();
                    async move { c.delete(&path, expected).await }
                })
                .await;
            return match deleted {
                Ok(()) => Ok(None),
                Err(zk::Error::NoNode) if expected.is_none() => Ok(None),
                Err(zk::Error::BadVersion | zk::Error::NoNode) => Err(conflict()),
                Err(e) => Err(self.map_error(e)),
            };
        };
        if !self.exists(&self.namespace_path(namespace)).await? {
            return Err(self.missing_namespace(namespace));
        }
        let set = |expected: Option<i32>| {
            let (path, data) = (path.clone(), data.clone());
            async move {
                self.call(|c, _| {
                    let (path, data) = (path.clone(), data.clone());
                    async move { c.set_data(&path, &data, expected).await }
                })
                .await
            }
        };
        for _ in 0..ATTEMPTS {
            match precondition {
                Precondition::Version(v) => {
                    return match set(Some(zk_version(v))).await {
                        Ok(stat) => Ok(Some(Version::number(i64::from(stat.version)))),
                        Err(zk::Error::BadVersion | zk::Error::NoNode) => Err(conflict()),
                        Err(e) => Err(self.map_error(e)),
                    }
                }
                Precondition::Any => match set(None).await {
                    Ok(stat) => return Ok(Some(Version::number(i64::from(stat.version)))),
                    Err(zk::Error::NoNode) => {}
                    Err(e) => return Err(self.map_error(e)),
                },
                Precondition::Absent => {}
            }
            match self.create_schema_node(&path, &data).await {
                Ok(()) => return Ok(Some(Version::number(0))),
                Err(zk::Error::NodeExists) if *precondition == Precondition::Any => continue,
                Err(zk::Error::NodeExists) => return Err(conflict()),
                Err(e) => return Err(self.map_error(e)),
            }
        }
        Err(conflict())
    }

    /// Creates the document's znode, and `/confo-schemas` first if it is missing.
    async fn create_schema_node(&self, path: &str, data: &[u8]) -> std::result::Result<(), zk::Error> {
        let create = |path: String, data: Vec<u8>| {
            self.call(move |c, acls| {
                let (path, data) = (path.clone(), data.clone());
                async move {
                    c.create(&path, &data, &zk::CreateMode::Persistent.with_acls(zk::Acls::new(&acls))).await.map(drop)
                }
            })
        };
        match create(path.to_owned(), data.to_vec()).await {
            Err(zk::Error::NoNode) => {
                match create(self.schemas_base(), Vec::new()).await {
                    Ok(()) | Err(zk::Error::NodeExists) => {}
                    Err(e) => return Err(e),
                }
                create(path.to_owned(), data.to_vec()).await
            }
            other => other,
        }
    }
}
