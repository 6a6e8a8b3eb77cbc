//! The etcd engine's entry in the registry: its names are in the registry's table
//! ([`spec::ETCD`]), its options open the store.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::{EtcdBackend, EtcdOptions};
use crate::backend::Backend;
use crate::model::error::Result;
use crate::spec::BackendKind;
use crate::spec::{self, EngineSpec, NetOptions};

impl BackendKind {
    /// etcd.
    pub const ETCD: BackendKind = spec::ETCD.kind;
}

#[async_trait]
impl EngineSpec for EtcdOptions {
    fn kind(&self) -> BackendKind {
        BackendKind::ETCD
    }

    async fn open(&self) -> Result<Arc<dyn Backend>> {
        // Boxed: the connect future is a deep type, and callers nest this one further.
        Ok(Arc::new(Box::pin(EtcdBackend::connect(self.clone())).await?))
    }
}

impl NetOptions for EtcdOptions {
    fn from_url(spec: &str) -> Result<Self> {
        EtcdOptions::from_url(spec)
    }

    fn from_credentials(credentials: &Value) -> Result<Self> {
        EtcdOptions::from_credentials(credentials)
    }
}
