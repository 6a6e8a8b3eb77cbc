//! The zookeeper engine's entry in the registry: its names are in the registry's table
//! ([`spec::ZOOKEEPER`]), its options open the store.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::{ZkBackend, ZkOptions};
use crate::backend::Backend;
use crate::model::error::Result;
use crate::spec::BackendKind;
use crate::spec::{self, EngineSpec, NetOptions};

impl BackendKind {
    /// ZooKeeper, in Python confo's layout.
    pub const ZOOKEEPER: BackendKind = spec::ZOOKEEPER.kind;
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

impl NetOptions for ZkOptions {
    fn from_url(spec: &str) -> Result<Self> {
        ZkOptions::from_url(spec)
    }

    fn from_credentials(credentials: &Value) -> Result<Self> {
        ZkOptions::from_credentials(credentials)
    }
}
