//! What last-known-good snapshots cost a namespace load, and what serving from one costs: N
//! configurations (the workload's) read through `redis://…` and `cache+redis://…` (the first
//! cached load writes the snapshot, a reload that changed nothing does not rewrite it), and read
//! from the snapshot with the server stopped. Medians of 5; a private redis-server on loopback.
//!
//! ```text
//! cargo run --release -p confo-bench --bin snapshot_cost [-- N...]     (default 10000)
//! ```

use std::time::{Duration, Instant};

use confo::{Change, Store};
use confo_bench::workload::configuration as config;

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

async fn median_load(store: &Store, namespace: &str) -> Duration {
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        store.load(namespace).await.expect("load");
        times.push(started.elapsed());
    }
    times.sort();
    times[2]
}

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() { vec![10_000] } else { sizes };
    let cache = tempfile::tempdir().expect("temp dir");
    std::env::set_var("XDG_CACHE_HOME", cache.path());
    let mut server = confo_testkit::RedisServer::start().expect("redis-server");
    let plain = Store::open(&server.url().parse().expect("spec")).await.expect("open");
    let cached = Store::open(&format!("cache+{}", server.url()).parse().expect("spec")).await.expect("open");
    println!("| N | load (redis://) | first cached load (writes the snapshot) | cached reload (unchanged) | load from the snapshot, server down |");
    println!("| --- | --- | --- | --- | --- |");
    let mut rows = Vec::new();
    for &n in &sizes {
        let namespace = format!("snap{n}");
        plain.create_namespace(&namespace).await.expect("create");
        let changes: Vec<Change> = (0..n).map(|i| Change::put(format!("c{i:05}"), config(i))).collect();
        plain.write(&namespace, &changes).await.expect("write");
        let bare = median_load(&plain, &namespace).await;
        let started = Instant::now();
        cached.load(&namespace).await.expect("load");
        let first = started.elapsed();
        let again = median_load(&cached, &namespace).await;
        rows.push((n, namespace, bare, first, again));
    }
    server.stop();
    for (n, namespace, bare, first, again) in rows {
        let mut times = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            let data = cached.load(&namespace).await.expect("served from the snapshot");
            assert!(data.from_snapshot.is_some());
            times.push(started.elapsed());
        }
        times.sort();
        println!("| {n} | {} | {} | {} | {} |", ms(bare), ms(first), ms(again), ms(times[2]));
    }
}
