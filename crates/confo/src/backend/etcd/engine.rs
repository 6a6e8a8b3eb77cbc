//! The etcd engine's entry in the registry.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::{EtcdBackend, EtcdOptions};
use crate::backend::registry::{Engine, EngineSpec, Registry};
use crate::backend::Backend;
use crate::error::Result;
use crate::spec::{BackendKind, BackendSpec};

impl BackendKind {
    /// etcd.
    pub const ETCD: BackendKind = BackendKind::new("etcd");
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

/// The etcd engine.
pub(crate) struct EtcdEngine;

impl Engine for EtcdEngine {
    fn kind(&self) -> BackendKind {
        BackendKind::ETCD
    }

    fn aliases(&self) -> &'static [&'static str] {
        &[]
    }

    fn schemes(&self) -> &'static [&'static str] {
        &["etcd", "etcds"]
    }

    fn example(&self) -> &'static str {
        "etcd://HOST:PORT"
    }

    fn parse_url(&self, _: &Registry, spec: &str) -> Result<BackendSpec> {
        Ok(BackendSpec::new(EtcdOptions::from_url(spec)?))
    }

    fn parse_credentials(&self, _: &Registry, credentials: &Value) -> Result<BackendSpec> {
        Ok(BackendSpec::new(EtcdOptions::from_credentials(credentials)?))
    }
}
