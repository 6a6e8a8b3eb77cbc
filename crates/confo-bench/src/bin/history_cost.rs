//! What history adds to a persist: N configurations written with history on and with
//! `history=off`, on every backend, against servers the testkit starts on loopback (medians of 5
//! runs; the namespace is new for "new" and holds the configurations already for "changed").
//!
//! ```text
//! cargo run --release -p confo-bench --bin history_cost [-- N...]     (default 10000)
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use confo::{Backend, BackendExt, BackendSpec, Change};
use confo_bench::workload::configuration as config;

async fn median<F, Fut>(runs: usize, mut f: F) -> Duration
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut times = Vec::with_capacity(runs);
    for run in 0..runs {
        let started = Instant::now();
        f(run).await;
        times.push(started.elapsed());
    }
    times.sort();
    times[times.len() / 2]
}

/// (new, changed) persist times.
async fn persist_times(backend: &dyn Backend, tag: &str, n: usize) -> (Duration, Duration) {
    let changes: Vec<Change> = (0..n).map(|i| Change::put(format!("c{i:05}"), config(i))).collect();
    let new = median(5, |run| {
        let namespace = format!("{tag}new{n}x{run}");
        let changes = &changes;
        async move {
            backend.create_namespace(&namespace).await.expect("create");
            backend.write(&namespace, changes).await.into_result().expect("write");
        }
    })
    .await;
    let namespace = format!("{tag}changed{n}");
    backend.create_namespace(&namespace).await.expect("create");
    backend.write(&namespace, &changes).await.into_result().expect("write");
    let changed = median(5, |run| {
        let changes: Vec<Change> = (0..n)
            .map(|i| {
                let mut value = config(i);
                value.insert("run".into(), serde_json::json!(run));
                Change::put(format!("c{i:05}"), value)
            })
            .collect();
        let namespace = &namespace;
        async move {
            backend.write(namespace, &changes).await.into_result().expect("write");
        }
    })
    .await;
    (new, changed)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() { vec![10_000] } else { sizes };
    // Every run keeps its configurations and their revisions: ZooKeeper holds them all in memory.
    std::env::set_var("CONFO_ZK_HEAP", "1g");
    let redis = confo_testkit::RedisServer::start().expect("redis-server");
    let zk = confo_testkit::ZkServer::start().expect("zookeeper");
    let etcd = confo_testkit::EtcdServer::start().expect("etcd");
    let files = confo_testkit::store_dir().expect("temp dir");
    let plain_files = confo_testkit::store_dir().expect("temp dir");
    let specs = [
        (
            "files",
            format!("file:{}", files.path().display()),
            format!("file:{}?history=off", plain_files.path().display()),
        ),
        ("redis", redis.url(), format!("{}?history=off", redis.url())),
        ("zookeeper", format!("zk://{}", zk.connect_string()), format!("zk://{}?history=off", zk.connect_string())),
        ("etcd", format!("etcd://{}", etcd.endpoint()), format!("etcd://{}?history=off", etcd.endpoint())),
    ];
    println!("| backend | N | persist new: on | off | on ÷ off | persist changed: on | off | on ÷ off |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    // `HISTORY_COST_ONLY=zookeeper` measures one backend.
    let only = std::env::var("HISTORY_COST_ONLY").ok();
    for (name, on, off) in specs.iter().filter(|(name, _, _)| only.as_deref().is_none_or(|o| o == *name)) {
        let on: Arc<dyn Backend> = on.parse::<BackendSpec>().expect("spec").open().await.expect("open");
        let off: Arc<dyn Backend> = off.parse::<BackendSpec>().expect("spec").open().await.expect("open");
        for &n in &sizes {
            let (new_on, changed_on) = persist_times(&*on, "on", n).await;
            let (new_off, changed_off) = persist_times(&*off, "off", n).await;
            println!(
                "| {name} | {n} | {} | {} | {:.2}× | {} | {} | {:.2}× |",
                ms(new_on),
                ms(new_off),
                new_on.as_secs_f64() / new_off.as_secs_f64(),
                ms(changed_on),
                ms(changed_off),
                changed_on.as_secs_f64() / changed_off.as_secs_f64()
            );
        }
    }
}
