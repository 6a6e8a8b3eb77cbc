//! The zookeeper engine's entry in the registry.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::{ZkBackend, ZkOptions};
use crate::backend::registry::{Engine, EngineSpec, Registry};
use crate::backend::Backend;
use crate::error::Result;
use crate::spec::{BackendKind, BackendSpec};

impl BackendKind {
    /// ZooKeeper, in Python confo's layout.
    pub const ZOOKEEPER: BackendKind = BackendKind::new("zookeeper");
}

#[async_trait]
impl EngineSpec for ZkOptions {
    fn kind(&self) -> BackendKind {
        BackendKind::ZOOKEEPER
    }

    async fn open(&self) -> Result<Arc<dyn Backend>> {
        // Boxed: the connect future is a deep type, and callers nest this one further.
        Ok(Arc::new(Box::pin(ZkBackend::connect(self.clone())).await?))
    }
}

/// The zookeeper engine.
pub(crate) struct ZkEngine;

impl Engine for ZkEngine {
    fn kind(&self) -> BackendKind {
        BackendKind::ZOOKEEPER
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["zk"]
    }

    fn schemes(&self) -> &'static [&'static str] {
        &["zk", "zookeeper"]
    }

    fn example(&self) -> &'static str {
        "zk://HOST:PORT"
    }

    fn parse_url(&self, _: &Registry, spec: &str) -> Result<BackendSpec> {
        Ok(BackendSpec::new(ZkOptions::from_url(spec)?))
    }

    fn parse_credentials(&self, _: &Registry, credentials: &Value) -> Result<BackendSpec> {
        Ok(BackendSpec::new(ZkOptions::from_credentials(credentials)?))
    }
}
