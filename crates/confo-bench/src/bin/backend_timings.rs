//! Reload and persist times (medians of 5 runs) of one namespace of N configurations (11 fields, about 280 bytes
//! each) on the network backends, against servers the testkit starts on loopback: one Redis server, a Redis
//! Cluster of 3 masters and one of 1 master (no replicas, so the machine's cores serve the same work),
//! ZooKeeper and etcd. Run with `CONFO_ZK_HEAP=1g` for N = 10000 (history keeps every run's znodes).
//!
//! ```text
//! cargo run --release -p confo-bench --bin backend_timings [-- N...]     (default 100 1000 10000)
//! ```

use std::time::{Duration, Instant};

use confo::backend::redis::{RedisBackend, RedisOptions};
use confo::backend::zookeeper::{ZkBackend, ZkOptions};
use confo::{Backend, BackendExt, Change};
use confo_bench::workload::configuration as config;

/// Median of `runs` timings of `f`.
async fn median<F, Fut>(runs: usize, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        f().await;
        times.push(started.elapsed());
    }
    times.sort();
    times[times.len() / 2]
}

async fn measure(name: &str, backend: &dyn Backend, n: usize) {
    let changes: Vec<Change> = (0..n).map(|i| Change::put(format!("c{i:05}"), config(i))).collect();
    let bytes = serde_json::to_vec(&config(n / 2)).map_or(0, |v| v.len());
    // New configurations: a fresh namespace each run.
    let mut run = 0;
    let create = median(5, || {
        run += 1;
        let namespace = format!("timing_new_{n}_{run}");
        let changes = &changes;
        async move {
            backend.create_namespace(&namespace).await.expect("create");
            backend.write(&namespace, changes).await.into_result().map(drop).expect("write");
        }
    })
    .await;
    let namespace = format!("timing_new_{n}_1");
    let update =
        median(5, || async { backend.write(&namespace, &changes).await.into_result().map(drop).expect("write") }).await;
    let reload = median(5, || async {
        assert_eq!(backend.load_namespace(&namespace).await.expect("load").len(), n);
    })
    .await;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("| {name} | {n} | {bytes} B | {:.1} ms | {:.1} ms | {:.1} ms |", ms(reload), ms(create), ms(update));
    for run in 1..=5 {
        backend.delete_namespace(&format!("timing_new_{n}_{run}")).await.expect("delete");
    }
}

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() { vec![100, 1000, 10_000] } else { sizes };
    let redis_server = confo_testkit::RedisServer::start().expect("redis-server");
    let zk_server = confo_testkit::ZkServer::start().expect("zookeeper");
    let redis = RedisBackend::connect(RedisOptions::from_url(&redis_server.url()).expect("url")).await.expect("redis");
    let zk = ZkBackend::connect(ZkOptions::from_url(&format!("zk://{}", zk_server.connect_string())).expect("url"))
        .await
        .expect("zookeeper");
    let sharded_cluster = confo_testkit::RedisCluster::start(3, 0).expect("redis cluster");
    let sharded =
        RedisBackend::connect(RedisOptions::from_url(&sharded_cluster.url()).expect("url")).await.expect("redis");
    let one_cluster = confo_testkit::RedisCluster::start(1, 0).expect("redis cluster");
    let one = RedisBackend::connect(RedisOptions::from_url(&one_cluster.url()).expect("url")).await.expect("redis");
    let etcd_server = confo_testkit::EtcdServer::start().expect("etcd");
    let etcd = confo::backend::etcd::EtcdBackend::connect(
        confo::backend::etcd::EtcdOptions::from_url(&format!("etcd://{}", etcd_server.endpoint())).expect("url"),
    )
    .await
    .expect("etcd");
    println!("| backend | configurations | each | reload | persist, new | persist, changed |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for &n in &sizes {
        measure("redis", &redis, n).await;
        measure("redis cluster, 3 masters", &sharded, n).await;
        measure("redis cluster, 1 master", &one, n).await;
        measure("zookeeper", &zk, n).await;
        measure("etcd", &etcd, n).await;
    }
}
