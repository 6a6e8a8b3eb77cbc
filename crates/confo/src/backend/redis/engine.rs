//! The redis engine's entry in the registry.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::{RedisBackend, RedisOptions};
use crate::backend::registry::{Engine, EngineSpec, Registry};
use crate::backend::Backend;
use crate::error::Result;
use crate::spec::{BackendKind, BackendSpec};

impl BackendKind {
    /// Redis, in the seed's layout.
    pub const REDIS: BackendKind = BackendKind::new("redis");
}

#[async_trait]
impl EngineSpec for RedisOptions {
    fn kind(&self) -> BackendKind {
        BackendKind::REDIS
    }

    async fn open(&self) -> Result<Arc<dyn Backend>> {
        // Boxed: the connect future is a deep type, and callers nest this one further.
        Ok(Arc::new(Box::pin(RedisBackend::connect(self.clone())).await?))
    }
}

/// The redis engine.
pub(crate) struct RedisEngine;

impl Engine for RedisEngine {
    fn kind(&self) -> BackendKind {
        BackendKind::REDIS
    }

    fn aliases(&self) -> &'static [&'static str] {
        &[]
    }

    fn schemes(&self) -> &'static [&'static str] {
        &["redis", "rediss", "redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster"]
    }

    fn example(&self) -> &'static str {
        "redis://HOST[:PORT]"
    }

    fn parse_url(&self, _: &Registry, spec: &str) -> Result<BackendSpec> {
        Ok(BackendSpec::new(RedisOptions::from_url(spec)?))
    }

    fn parse_credentials(&self, _: &Registry, credentials: &Value) -> Result<BackendSpec> {
        Ok(BackendSpec::new(RedisOptions::from_credentials(credentials)?))
    }
}
