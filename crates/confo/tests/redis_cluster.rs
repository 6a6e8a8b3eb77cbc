//! The Redis backend on private Redis Clusters started by the testkit: three masters with a
//! replica each (change by change, see `confo::backend::redis`'s cluster notes) and one master
//! (the atomic scripts, allowed to span slots).

use std::sync::Arc;

use confo::backend::redis::{RedisBackend, RedisOptions};
use confo::{Backend, BackendExt};
use confo_testkit::RedisCluster;
use serde_json::{json, Value};

fn obj(v: Value) -> confo::Configuration {
    v.as_object().expect("object").clone()
}

async fn connect(url: &str) -> RedisBackend {
    RedisBackend::connect(RedisOptions::from_url(url).expect("url")).await.expect("connect")
}

mod sharded {
    use super::*;

    async fn make() -> (Arc<RedisCluster>, Arc<dyn Backend>) {
        let cluster = RedisCluster::shared(3, 1).expect("redis cluster");
        let backend = connect(&format!("{}?history_keep=500", cluster.url())).await;
        (cluster, Arc::new(backend))
    }

    confo::conformance_tests!(make());
}

mod one_shard {
    use super::*;

    async fn make() -> (Arc<RedisCluster>, Arc<dyn Backend>) {
        let cluster = RedisCluster::shared(1, 0).expect("redis cluster");
        let backend = connect(&format!("{}?history_keep=500", cluster.url())).await;
        (cluster, Arc::new(backend))
    }

    confo::conformance_tests!(make());
}

mod sharded_live {
    use super::*;

    async fn make() -> (Arc<RedisCluster>, Arc<dyn Backend>, Arc<dyn Backend>) {
        let cluster = RedisCluster::shared(3, 1).expect("redis cluster");
        let a = connect(&cluster.url()).await;
        let b = connect(&cluster.url()).await;
        (cluster, Arc::new(a), Arc::new(b))
    }

    confo::live_tests!(make());
}

/// A sharded cluster says its batches are written change by change; a one-master cluster keeps
/// the atomic scripts.
#[tokio::test]
async fn capabilities_follow_the_shards() {
    let sharded = RedisCluster::shared(3, 1).expect("cluster");
    assert_eq!(connect(&sharded.url()).await.capabilities().atomic_batch, 1);
    let one = RedisCluster::shared(1, 0).expect("cluster");
    assert!(connect(&one.url()).await.capabilities().atomic_batch > 1);
    let backend = connect(&sharded.url()).await;
    backend.create_namespace("braces").await.expect("create");
    let err = backend.put_configuration("braces", "a{b}", obj(json!({"x": 1}))).await.expect_err("braces");
    assert_eq!(err.kind(), confo::ErrorKind::InvalidName, "{err}");
}
