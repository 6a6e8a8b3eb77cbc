//! The redis engine's entry in the registry: its names are in the registry's table
//! ([`spec::REDIS`]), its options open the store.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::{RedisBackend, RedisOptions};
use crate::backend::Backend;
use crate::model::error::Result;
use crate::spec::BackendKind;
use crate::spec::{self, EngineSpec, NetOptions};

impl BackendKind {
    /// Redis, in the seed's layout.
    pub const REDIS: BackendKind = spec::REDIS.kind;
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

impl NetOptions for RedisOptions {
    fn from_url(spec: &str) -> Result<Self> {
        RedisOptions::from_url(spec)
    }

    fn from_credentials(credentials: &Value) -> Result<Self> {
        RedisOptions::from_credentials(credentials)
    }
}
