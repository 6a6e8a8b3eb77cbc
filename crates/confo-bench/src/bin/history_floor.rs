//! The floor under history's cost: what each engine charges for storing a value a second time
//! in the same atomic step, measured with the raw clients and no confo code. N existing keys
//! of about 280 bytes are rewritten (medians of 5 runs), once alone and once each with a
//! revision holding the same value, in the layout the history issue prescribes, and once with
//! the same bytes kept as one record per batch (one per script, `multi` or transaction) instead:
//!
//! - Redis: one script per 1,000 keys, `SET` alone, or `SET` + `XADD … MAXLEN 100` on the key's
//!   stream;
//! - ZooKeeper: `multi`s of 1,000 `setData`, 4 in flight, or `setData` + `create` of a
//!   revision node under the key's revision folder (500 keys per `multi`, the same ops limit);
//! - etcd: transactions of 127 puts, 4 in flight, or each put with a second put of the
//!   revision key (63 keys per transaction, the same `--max-txn-ops`).
//!
//! ```text
//! cargo run --release -p confo-bench --bin history_floor [-- N]     (default 10000)
//! ```

use std::time::{Duration, Instant};

use confo_bench::workload::configuration as config;
use futures_util::StreamExt;

const RUNS: usize = 5;

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn value(i: usize, run: usize) -> Vec<u8> {
    let mut v = config(i);
    v.insert("run".into(), serde_json::json!(run));
    serde_json::to_vec(&v).expect("json")
}

async fn redis(url: &str, n: usize) -> (Duration, Duration, Duration) {
    let client = redis::Client::open(url).expect("client");
    let mut conn = client.get_multiplexed_async_connection().await.expect("connect");
    let alone = redis::Script::new("for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[i]) end return 1");
    let twice = redis::Script::new(
        "for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[i]) \
         redis.call('XADD', 'h:{' .. KEYS[i] .. '}', 'MAXLEN', 100, '0-*', 'r', ARGV[i]) end return 1",
    );
    // The same bytes kept once per script call instead of once per key (the floor of a
    // per-batch record, against which a per-key record's overhead shows).
    let batched = redis::Script::new(
        "for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[i]) end \
         redis.call('XADD', 'h:batches', 'MAXLEN', 100, '*', 'r', table.concat(ARGV, ',')) return 1",
    );
    let mut result = Vec::new();
    for script in [&alone, &twice, &batched] {
        let mut times = Vec::new();
        for run in 0..=RUNS {
            let started = Instant::now();
            for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
                let mut call = script.prepare_invoke();
                for &i in chunk {
                    call.key(format!("k{i:05}")).arg(value(i, run));
                }
                let _: i64 = call.invoke_async(&mut conn).await.expect("script");
            }
            // The first run creates the keys: only rewrites are timed.
            if run > 0 {
                times.push(started.elapsed());
            }
        }
        result.push(median(times));
    }
    (result[0], result[1], result[2])
}

async fn zookeeper(connect: &str, n: usize) -> (Duration, Duration, Duration) {
    let client = zookeeper_client::Client::connect(connect).await.expect("connect");
    let mode = zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
    for root in ["/floor", "/floor-h"] {
        let _ = client.create(root, b"", &mode).await;
    }
    // The keys and their revision folders.
    let creates: Vec<_> = (0..n)
        .map(|i| {
            let client = client.clone();
            let mode = mode.clone();
            async move {
                let _ = client.create(&format!("/floor/k{i:05}"), &value(i, 0), &mode).await;
                let _ = client.create(&format!("/floor-h/k{i:05}"), b"", &mode).await;
            }
        })
        .collect();
    futures_util::stream::iter(creates).buffer_unordered(64).collect::<Vec<_>>().await;
    let sequential = zookeeper_client::CreateMode::PersistentSequential.with_acls(zookeeper_client::Acls::anyone_all());
    let mut result = Vec::new();
    // 0: values alone; 1: a revision node per key; 2: one node per multi holding the values.
    for (variant, per_multi) in [(0, 1000), (1, 500), (2, 1000)] {
        let mut times = Vec::new();
        for run in 1..=RUNS {
            let started = Instant::now();
            let keys: Vec<usize> = (0..n).collect();
            let multis: Vec<_> = keys
                .chunks(per_multi)
                .map(|chunk| {
                    let client = client.clone();
                    let sequential = sequential.clone();
                    async move {
                        let mut writer = client.new_multi_writer();
                        let values: Vec<(usize, Vec<u8>)> = chunk.iter().map(|&i| (i, value(i, run))).collect();
                        for (i, bytes) in &values {
                            writer.add_set_data(&format!("/floor/k{i:05}"), bytes, None).expect("op");
                            if variant == 1 {
                                writer.add_create(&format!("/floor-h/k{i:05}/v-"), bytes, &sequential).expect("op");
                            }
                        }
                        let joined: Vec<u8> = values.iter().flat_map(|(_, b)| b.iter().copied()).collect();
                        if variant == 2 {
                            writer.add_create("/floor-h/b-", &joined, &sequential).expect("op");
                        }
                        writer.commit().await.expect("multi");
                    }
                })
                .collect();
            futures_util::stream::iter(multis).buffer_unordered(4).collect::<Vec<_>>().await;
            times.push(started.elapsed());
        }
        result.push(median(times));
    }
    (result[0], result[1], result[2])
}

async fn etcd(endpoint: &str, n: usize) -> (Duration, Duration, Duration) {
    let client = etcd_client::Client::connect([endpoint], None).await.expect("connect");
    let mut result = Vec::new();
    for (variant, per_txn) in [(0, 127), (1, 63), (2, 126)] {
        let mut times = Vec::new();
        for run in 0..=RUNS {
            let started = Instant::now();
            let keys: Vec<usize> = (0..n).collect();
            let txns: Vec<_> = keys
                .chunks(per_txn)
                .map(|chunk| {
                    let mut kv = client.kv_client();
                    let mut ops = Vec::new();
                    let mut joined = Vec::new();
                    for &i in chunk {
                        let bytes = value(i, run);
                        if variant == 1 {
                            ops.push(etcd_client::TxnOp::put(format!("/floor-h/k{i:05}/{run}"), bytes.clone(), None));
                        }
                        joined.extend_from_slice(&bytes);
                        ops.push(etcd_client::TxnOp::put(format!("/floor/k{i:05}"), bytes, None));
                    }
                    if variant == 2 {
                        ops.push(etcd_client::TxnOp::put(format!("/floor-b/{run}/{}", chunk[0]), joined, None));
                    }
                    async move {
                        kv.txn(etcd_client::Txn::new().and_then(ops)).await.expect("txn");
                    }
                })
                .collect();
            futures_util::stream::iter(txns).buffer_unordered(4).collect::<Vec<_>>().await;
            if run > 0 {
                times.push(started.elapsed());
            }
        }
        result.push(median(times));
    }
    (result[0], result[1], result[2])
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    // Every run keeps its revisions: ZooKeeper holds them all in memory.
    std::env::set_var("CONFO_ZK_HEAP", "1g");
    let redis_server = confo_testkit::RedisServer::start().expect("redis-server");
    let zk_server = confo_testkit::ZkServer::start().expect("zookeeper");
    let etcd_server = confo_testkit::EtcdServer::start().expect("etcd");
    println!("| engine | N | value alone | + a revision per key | ratio | + one record per batch | ratio |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (name, (alone, twice, batched)) in [
        ("redis", redis(&redis_server.url(), n).await),
        ("zookeeper", zookeeper(&zk_server.connect_string(), n).await),
        ("etcd", etcd(&format!("http://{}", etcd_server.endpoint()), n).await),
    ] {
        println!(
            "| {name} | {n} | {} | {} | {:.2}× | {} | {:.2}× |",
            ms(alone),
            ms(twice),
            twice.as_secs_f64() / alone.as_secs_f64(),
            ms(batched),
            batched.as_secs_f64() / alone.as_secs_f64()
        );
    }
}
