//! `confo-bench`: every performance figure of confo beside its baseline, measured in the same
//! run on the same machine, against servers the testkit starts on loopback.
//!
//! ```text
//! cargo run --release -p confo-bench              # N = 100, 1,000, 10,000; 7 runs a row
//! cargo run --release -p confo-bench -- --smoke   # N = 100; 2 runs a row (CI)
//! cargo run -p confo-bench -- --smoke --record    # write the smoke baseline (see below)
//! ```
//!
//! **The smoke guard.** In smoke mode each row's ratio (fastest of ours ÷ fastest of its
//! baseline, both measured in the same run, so the machine's speed cancels out; for memory,
//! bytes held ÷ JSON bytes) is compared with the ratio recorded for it in
//! `smoke-baseline.tsv`: a row more than 3× its recorded ratio fails the run, naming the row,
//! and so does a row with no recorded ratio (a new row must be recorded, so the guard cannot
//! silently cover less). A row over its limit is measured again (the whole smoke run, up to
//! 3 times in all, each row keeping its best ratio): a regression is over in every run, a row
//! whose one run met a slow fsync or a busy core is not. `--record` keeps, per row, the larger
//! of the recorded and the measured ratio (run it a few times, in the build CI uses: debug).
//!
//! Workload: one namespace of N configurations of 11 fields (about 280 bytes each). Each row
//! prints the median (min-max) of ours and of the baseline, and ours / baseline.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use confo::backend::etcd::{EtcdBackend, EtcdOptions};
use confo::backend::redis::{RedisBackend, RedisOptions};
use confo::backend::zookeeper::{ZkBackend, ZkOptions};
use confo::{Backend, BackendExt, Change, Configuration, FileBackend};
use confo_bench::workload::configuration as config;
use serde_json::{json, Value};
use zookeeper_client as zk;

/// The system allocator, counting the bytes live on the heap, so the memory row measures what a
/// loaded namespace really holds (resident-set growth would also count freed read buffers the
/// allocator keeps).
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn name(i: usize) -> String {
    format!("c{i:05}")
}

/// Timings of one side of a row.
struct Sample(Vec<Duration>);

impl Sample {
    fn median(&self) -> Duration {
        let mut v = self.0.clone();
        v.sort();
        v[v.len() / 2]
    }

    fn range(&self) -> (Duration, Duration) {
        (self.0.iter().min().copied().unwrap_or_default(), self.0.iter().max().copied().unwrap_or_default())
    }
}

fn fmt(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns < 10_000.0 {
        format!("{ns:.0} ns")
    } else if ns < 10_000_000.0 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{:.1} ms", ns / 1e6)
    }
}

struct Report {
    rows: Vec<String>,
    /// Per row (`figure @ N`), the ratio the smoke guard checks.
    ratios: Vec<(String, f64)>,
}

impl Report {
    fn row(&mut self, figure: &str, n: usize, ours: &Sample, base: &Sample, goal: Option<f64>, note: &str) {
        let ratio = ours.median().as_secs_f64() / base.median().as_secs_f64().max(1e-12);
        let (omin, omax) = ours.range();
        let (bmin, bmax) = base.range();
        self.ratios.push((format!("{figure} @ {n}"), omin.as_secs_f64() / bmin.as_secs_f64().max(1e-12)));
        let verdict = verdict(ratio, goal);
        let line = format!(
            "| {figure} | {n} | {} ({}–{}) | {} ({}–{}) | {ratio:.2}× | {verdict} | {note} |",
            fmt(ours.median()),
            fmt(omin),
            fmt(omax),
            fmt(base.median()),
            fmt(bmin),
            fmt(bmax),
        );
        println!("{line}");
        self.rows.push(line);
    }
}

/// A row's goal column: met or not, or "report" for a row without a goal.
fn verdict(ratio: f64, goal: Option<f64>) -> String {
    match goal {
        Some(goal) if ratio <= goal => format!("≤ {goal}× met"),
        Some(goal) => format!("≤ {goal}× **not met**"),
        None => "report".to_owned(),
    }
}

/// Runs `f` `runs` times and returns the timings.
async fn time<F, Fut>(runs: usize, mut f: F) -> Sample
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
    Sample(times)
}

/// Point operations timed per row: this many calls, spread over the namespace.
const POINT_CALLS: usize = 100;

/// The configuration a point call `i` touches: spread over the namespace.
fn pick(i: usize, n: usize) -> usize {
    (i * 7919) % n
}

/// The point-read and point-write rows of one engine: [`POINT_CALLS`] reads of one
/// configuration (`Backend::load_configuration`) and one-change writes, against the same
/// number of raw single-key reads (+ parse) and writes.
#[allow(clippy::too_many_arguments)]
async fn point_rows<R, RF, W, WF>(
    report: &mut Report,
    engine: &str,
    runs: usize,
    backend: &dyn Backend,
    namespace: &str,
    configs: &[(String, Configuration)],
    raw_read: R,
    raw_write: W,
) where
    R: Fn(usize) -> RF,
    RF: std::future::Future<Output = ()>,
    W: Fn(usize) -> WF,
    WF: std::future::Future<Output = ()>,
{
    let n = configs.len();
    let ours = time(runs, |_| async {
        for i in 0..POINT_CALLS {
            black_box(backend.load_configuration(namespace, &configs[pick(i, n)].0).await.expect("point read"));
        }
    })
    .await;
    let base = time(runs, |_| async {
        for i in 0..POINT_CALLS {
            raw_read(pick(i, n)).await;
        }
    })
    .await;
    report.row(
        &format!("{engine}: point read ×{POINT_CALLS}"),
        n,
        &ours,
        &base,
        Some(2.0),
        "raw single-key read + parse",
    );
    let ours = time(runs, |_| async {
        for i in 0..POINT_CALLS {
            let (name, value) = &configs[pick(i, n)];
            let change = Change::put(name.clone(), value.clone());
            backend.write(namespace, std::slice::from_ref(&change)).await.into_result().expect("point write");
        }
    })
    .await;
    let base = time(runs, |_| async {
        for i in 0..POINT_CALLS {
            raw_write(pick(i, n)).await;
        }
    })
    .await;
    report.row(&format!("{engine}: point write ×{POINT_CALLS}"), n, &ours, &base, None, "raw single-key write");
}

/// Times of one call, from batches of `iterations` calls.
fn time_per_call(runs: usize, iterations: usize, mut f: impl FnMut()) -> Sample {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        for _ in 0..iterations {
            f();
        }
        times.push(started.elapsed() / iterations as u32);
    }
    Sample(times)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let sizes: Vec<usize> = if smoke { vec![100] } else { vec![100, 1000, 10_000] };
    let runs = if smoke { 2 } else { 7 };
    println!(
        "confo-bench: {} mode, {runs} runs a row, {} threads available",
        if smoke { "smoke" } else { "full" },
        threads()
    );
    println!();
    let report = measure(&sizes, runs).await;
    if smoke {
        let record = std::env::args().any(|a| a == "--record");
        let mut ratios = report.ratios;
        let mut result = guard(&ratios, record);
        for attempt in 2..=GUARD_ATTEMPTS {
            let Err(failures) = &result else { break };
            let over = failures.iter().filter(|f| f.over).count();
            if over == 0 {
                break;
            }
            println!();
            println!(
                "smoke guard: {over} row(s) over their limit; measuring everything again (attempt {attempt} of {GUARD_ATTEMPTS}), each row keeping its best ratio, so that one noisy run is not taken for a regression"
            );
            let again = measure(&sizes, runs).await;
            ratios = best_of(&ratios, &again.ratios);
            result = guard(&ratios, false);
        }
        if let Err(failures) = result {
            eprintln!("confo-bench: the smoke guard failed:");
            for failure in &failures {
                eprintln!("  {}", failure.message);
            }
            std::process::exit(1);
        }
    }
}

/// The threads this machine offers.
fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs every row once at each size (starting its own servers) and prints the table.
async fn measure(sizes: &[usize], runs: usize) -> Report {
    let threads = threads();
    println!("| figure | N | ours: median (min–max) | baseline: median (min–max) | ratio | goal | baseline is |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let mut report = Report { rows: Vec::new(), ratios: Vec::new() };

    // Every run keeps its configurations and their revisions: ZooKeeper holds them all in memory.
    std::env::set_var("CONFO_ZK_HEAP", "1g");
    let redis_server = confo_testkit::RedisServer::start().expect("redis-server");
    let zk_server = confo_testkit::ZkServer::start().expect("zookeeper");
    let etcd_server = confo_testkit::EtcdServer::start().expect("etcd");
    let redis = RedisBackend::connect(RedisOptions::from_url(&redis_server.url()).expect("url")).await.expect("redis");
    let zk_url = format!("zk://{}", zk_server.connect_string());
    let zk = ZkBackend::connect(ZkOptions::from_url(&zk_url).expect("url")).await.expect("zookeeper");
    let etcd_url = format!("etcd://{}", etcd_server.endpoint());
    let etcd = EtcdBackend::connect(EtcdOptions::from_url(&etcd_url).expect("url")).await.expect("etcd");
    // The same servers without history, for the history rows.
    let redis_off =
        RedisBackend::connect(RedisOptions::from_url(&format!("{}?history=off", redis_server.url())).expect("url"))
            .await
            .expect("redis");
    let zk_off =
        ZkBackend::connect(ZkOptions::from_url(&format!("{zk_url}?history=off")).expect("url")).await.expect("zk");
    let etcd_off = EtcdBackend::connect(EtcdOptions::from_url(&format!("{etcd_url}?history=off")).expect("url"))
        .await
        .expect("etcd");
    let mut raw_redis = redis::Client::open(redis_server.url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("raw redis");
    let raw_zk = zk::Client::connect(&zk_server.connect_string()).await.expect("raw zookeeper");
    let mut raw_etcd =
        etcd_client::Client::connect([format!("http://{}", etcd_server.endpoint())], None).await.expect("raw etcd");

    for &n in sizes {
        let configs: Vec<(String, Configuration)> = (0..n).map(|i| (name(i), config(i))).collect();
        let json: Vec<(String, Vec<u8>)> =
            configs.iter().map(|(k, v)| (k.clone(), serde_json::to_vec(v).expect("json"))).collect();
        let changes: Vec<Change> = configs.iter().map(|(k, v)| Change::put(k.clone(), v.clone())).collect();

        // ----- cached get of one field -----
        {
            let confo = confo::Confo::new();
            confo.add_backend("m", Arc::new(confo::MemoryBackend::new())).await.expect("add");
            confo.activate_backend("m").expect("activate");
            confo.create_namespace("bench").await.expect("create");
            confo.backend().expect("backend").write("bench", &changes).await.into_result().expect("write");
            confo.use_namespace("bench").await.expect("use");
            let map: HashMap<String, Value> =
                configs.iter().map(|(k, v)| (k.clone(), Value::Object(v.clone()))).collect();
            let keys: Vec<&String> = configs.iter().map(|(k, _)| k).collect();
            let mut i = 0;
            let ours = time_per_call(runs, 200_000, || {
                i = (i + 7919) % n;
                black_box(confo.get_field(keys[i], "host").ok());
            });
            let mut i = 0;
            let base = time_per_call(runs, 200_000, || {
                i = (i + 7919) % n;
                black_box(map.get(keys[i]).and_then(|c| c.get("host")).cloned());
            });
            report.row("cached get of one field", n, &ours, &base, Some(2.0), "HashMap<String, Value> lookup + clone");
        }

        // ----- files: load -----
        let dir = confo_testkit::store_dir().expect("temp dir");
        let files = FileBackend::open(dir.path()).expect("open");
        files.create_namespace("bench").await.expect("create");
        files.write("bench", &changes).await.into_result().expect("write");
        {
            let ours = time(runs, |_| async {
                black_box(files.load_namespace("bench").await.expect("load"));
            })
            .await;
            let folder = dir.path().join("bench");
            let base = time(runs, |_| {
                let folder = folder.clone();
                async move {
                    let paths: Vec<std::path::PathBuf> =
                        std::fs::read_dir(&folder).expect("read_dir").map(|e| e.expect("entry").path()).collect();
                    let per = paths.len().div_ceil(threads).max(1);
                    let parsed: Vec<Value> = std::thread::scope(|s| {
                        let handles: Vec<_> = paths
                            .chunks(per)
                            .map(|part| {
                                s.spawn(move || {
                                    part.iter()
                                        .map(|p| {
                                            serde_json::from_slice::<Value>(&std::fs::read(p).expect("read"))
                                                .expect("parse")
                                        })
                                        .collect::<Vec<Value>>()
                                })
                            })
                            .collect();
                        handles.into_iter().flat_map(|h| h.join().expect("join")).collect()
                    });
                    black_box(parsed);
                }
            })
            .await;
            report.row("files: load a namespace", n, &ours, &base, Some(1.5), "std::fs + serde_json, same threads");
            let folder = &folder;
            let raw_read = |i: usize| async move {
                let bytes = std::fs::read(folder.join(format!("{}.json", name(i)))).expect("read");
                black_box(serde_json::from_slice::<Value>(&bytes).expect("parse"));
            };
            // The same atomic steps as ours (temp file, fsync, rename), without the lock.
            let raw_write = |i: usize| {
                let bytes = &json[i].1;
                async move {
                    let tmp = folder.join(".raw-tmp");
                    let mut file = std::fs::File::create(&tmp).expect("create");
                    std::io::Write::write_all(&mut file, bytes).expect("write");
                    file.sync_all().expect("fsync");
                    std::fs::rename(&tmp, folder.join(format!("raw-{i}"))).expect("rename");
                }
            };
            point_rows(&mut report, "files", runs, &files, "bench", &configs, raw_read, raw_write).await;
        }

        // ----- secrets: sealing, opening, and loading a namespace that holds them -----
        {
            let mut keyring = confo::secrets::Keyring::new();
            keyring.generate(Some("bench")).expect("key");
            let place = confo::secrets::Place { namespace: "bench", configuration: "c00001", pointer: "/password" };
            let secret = Value::String("correct horse battery staple".into());
            let sealed = keyring.seal(&place, &secret).expect("seal");
            let seal = time_per_call(runs, 20_000, || drop(black_box(keyring.seal(&place, &secret).expect("seal"))));
            let open = time_per_call(runs, 20_000, || drop(black_box(keyring.open(&place, &sealed).expect("open"))));
            let encode = time_per_call(runs, 20_000, || drop(black_box(serde_json::to_vec(&secret).expect("json"))));
            report.row("secrets: seal one field (goal < 10 µs)", n, &seal, &encode, None, "the field's JSON encoding");
            report.row("secrets: open one field (goal < 10 µs)", n, &open, &encode, None, "the field's JSON encoding");
            // The same namespace with one secret in each configuration, loaded from files.
            let with = confo_testkit::store_dir().expect("temp dir");
            let sealed_files = FileBackend::open(with.path()).expect("open");
            sealed_files.create_namespace("bench").await.expect("create");
            let sealed_changes: Vec<Change> = configs
                .iter()
                .map(|(k, v)| {
                    let mut v = v.clone();
                    let place = confo::secrets::Place { namespace: "bench", configuration: k, pointer: "/password" };
                    v.insert("password".into(), keyring.seal(&place, &secret).expect("seal"));
                    Change::put(k.clone(), v)
                })
                .collect();
            sealed_files.write("bench", &sealed_changes).await.into_result().expect("write");
            let plain = confo_testkit::store_dir().expect("temp dir");
            let plain_files = FileBackend::open(plain.path()).expect("open");
            plain_files.create_namespace("bench").await.expect("create");
            plain_files.write("bench", &changes).await.into_result().expect("write");
            let ours = time(runs, |_| async {
                black_box(sealed_files.load_namespace("bench").await.expect("load"));
            })
            .await;
            let base = time(runs, |_| async {
                black_box(plain_files.load_namespace("bench").await.expect("load"));
            })
            .await;
            report.row(
                "files: load N with a secret each",
                n,
                &ours,
                &base,
                Some(1.5),
                "the same namespace without secrets",
            );
        }

        // ----- files: persist N changed -----
        {
            let rewritten: Vec<Vec<Change>> = (0..runs)
                .map(|r| {
                    configs
                        .iter()
                        .map(|(k, v)| {
                            let mut v = v.clone();
                            v.insert("run".into(), json!(r));
                            Change::put(k.clone(), v)
                        })
                        .collect()
                })
                .collect();
            let ours = time(runs, |r| {
                let batch = &rewritten[r];
                let files = &files;
                async move { files.write("bench", batch).await.into_result().map(drop).expect("write") }
            })
            .await;
            let folder = dir.path().join("plain");
            std::fs::create_dir(&folder).expect("mkdir");
            let base = time(runs, |_| {
                let folder = folder.clone();
                let json = &json;
                async move {
                    use std::io::Write;
                    for (k, v) in json {
                        let tmp = folder.join(format!(".tmp-{k}"));
                        let mut f = std::fs::File::create(&tmp).expect("create");
                        f.write_all(v).expect("write");
                        f.sync_all().expect("fsync");
                        std::fs::rename(&tmp, folder.join(format!("{k}.json"))).expect("rename");
                    }
                    std::fs::File::open(&folder).and_then(|d| d.sync_all()).expect("fsync dir");
                }
            })
            .await;
            report.row(
                "files: persist N changed",
                n,
                &ours,
                &base,
                Some(1.5),
                "temp + fsync + rename per file, one folder fsync",
            );
            // The same persist without history (one revision file and its folder fsynced per
            // configuration is what history adds).
            let plain_dir = confo_testkit::store_dir().expect("temp dir");
            let mut options = confo::backend::file::FileOptions::default();
            options.history = confo::model::history::HistoryOptions::off();
            let plain = FileBackend::with_options(plain_dir.path(), options).expect("open");
            plain.create_namespace("bench").await.expect("create");
            plain.write("bench", &changes).await.into_result().expect("write");
            let off = time(runs, |r| {
                let batch = &rewritten[r];
                let plain = &plain;
                async move { plain.write("bench", batch).await.into_result().map(drop).expect("write") }
            })
            .await;
            report.row(
                "files: persist N changed, history on ÷ off",
                n,
                &ours,
                &off,
                None,
                "the same persist with history=off (history adds one fsynced file and one folder fsync each)",
            );
        }

        // ----- memory -----
        {
            let json_bytes: usize = json.iter().map(|(_, v)| v.len()).sum();
            let mut memory_row = |figure: &str, held: usize, goal: Option<f64>, note: &str| {
                let ratio = held.max(1) as f64 / json_bytes as f64;
                let verdict = verdict(ratio, goal);
                let line = format!(
                    "| {figure} | {n} | {:.2} MB | JSON bytes {:.2} MB | {ratio:.2}× | {verdict} | {note} |",
                    held as f64 / 1e6,
                    json_bytes as f64 / 1e6,
                );
                println!("{line}");
                report.rows.push(line);
                report.ratios.push((format!("{figure} @ {n}"), ratio));
            };
            // The session's cache: what a loaded namespace keeps (compact).
            let session = confo::Confo::new();
            session.add_backend("files", Arc::new(FileBackend::open(dir.path()).expect("open"))).await.expect("add");
            session.activate_backend("files").expect("activate");
            let before = LIVE.load(Ordering::Relaxed);
            session.use_namespace("bench").await.expect("use");
            let held = LIVE.load(Ordering::Relaxed).saturating_sub(before);
            memory_row(
                "memory: heap held by a cached namespace",
                held,
                Some(3.0),
                "live heap bytes after use_namespace (counting allocator)",
            );
            drop(session);
            // For reference: a namespace as read (serde_json maps), which the cache is made from.
            let before = LIVE.load(Ordering::Relaxed);
            let loaded = files.load_namespace("bench").await.expect("load");
            let held = LIVE.load(Ordering::Relaxed).saturating_sub(before);
            memory_row(
                "memory: a namespace as read (serde_json maps)",
                held,
                None,
                "live heap bytes of load_namespace's result (counting allocator)",
            );
            drop(loaded);
        }

        // ----- Redis -----
        redis.create_namespace("bench").await.expect("create");
        redis.write("bench", &changes).await.into_result().expect("write");
        {
            let ours = time(runs, |_| async {
                black_box(redis.load_namespace("bench").await.expect("load"));
            })
            .await;
            let keys: Vec<String> = configs.iter().map(|(k, _)| format!("bench-{k}")).collect();
            let base = time(runs, |_| {
                let keys = &keys;
                let mut conn = raw_redis.clone();
                async move {
                    let values: Vec<Option<Vec<u8>>> =
                        redis::cmd("MGET").arg(keys).query_async(&mut conn).await.expect("MGET");
                    let parsed: Vec<Value> =
                        values.iter().flatten().map(|v| serde_json::from_slice(v).expect("parse")).collect();
                    black_box(parsed);
                }
            })
            .await;
            report.row("Redis: reload a namespace", n, &ours, &base, Some(1.5), "one raw MGET + parse");
            let raw_read = |i: usize| {
                let mut conn = raw_redis.clone();
                async move {
                    let value: Vec<u8> =
                        redis::cmd("GET").arg(format!("bench-{}", name(i))).query_async(&mut conn).await.expect("GET");
                    black_box(serde_json::from_slice::<Value>(&value).expect("parse"));
                }
            };
            let raw_write = |i: usize| {
                let mut conn = raw_redis.clone();
                let bytes = json[i].1.clone();
                async move {
                    let _: () =
                        redis::cmd("SET").arg(format!("raw-{i}")).arg(bytes).query_async(&mut conn).await.expect("SET");
                }
            };
            point_rows(&mut report, "Redis", runs, &redis, "bench", &configs, raw_read, raw_write).await;
            let ours =
                time(runs, |_| async { redis.write("bench", &changes).await.into_result().map(drop).expect("write") })
                    .await;
            let base = time(runs, |_| {
                let mut conn = raw_redis.clone();
                let json = &json;
                async move {
                    let mut pipe = redis::pipe();
                    for (k, v) in json {
                        pipe.cmd("SET").arg(format!("raw-{k}")).arg(v.as_slice()).ignore();
                    }
                    let _: () = pipe.query_async(&mut conn).await.expect("pipeline");
                }
            })
            .await;
            report.row(
                "Redis: persist N configurations",
                n,
                &ours,
                &base,
                Some(1.5),
                "raw pipelined SET, no index (the index update is the difference)",
            );
            redis_off.create_namespace("plain").await.expect("create");
            let off = time(runs, |_| async {
                redis_off.write("plain", &changes).await.into_result().map(drop).expect("write")
            })
            .await;
            report.row(
                "Redis: persist N, history on ÷ off",
                n,
                &ours,
                &off,
                Some(1.3),
                "the same persist with history=off",
            );
        }
        let _: () = redis::cmd("FLUSHALL").query_async(&mut raw_redis).await.expect("FLUSHALL");

        // ----- ZooKeeper -----
        let zk_ns = format!("bench{n}");
        zk.create_namespace(&zk_ns).await.expect("create");
        zk.write(&zk_ns, &changes).await.into_result().expect("write");
        {
            let ours = time(runs, |_| async {
                black_box(zk.load_namespace(&zk_ns).await.expect("load"));
            })
            .await;
            let parent = format!("/confo/{zk_ns}");
            let base = time(runs, |_| {
                let raw_zk = &raw_zk;
                let parent = &parent;
                async move {
                    let children = raw_zk.list_children(parent).await.expect("children");
                    let mut parsed = Vec::with_capacity(children.len());
                    // About 1 MB a batch: ~3,500 znodes of ~280 bytes.
                    let mut pending = Vec::new();
                    for batch in children.chunks(3500) {
                        let mut reader = raw_zk.new_multi_reader();
                        for child in batch {
                            reader.add_get_data(&format!("{parent}/{child}")).expect("add");
                        }
                        pending.push(reader.commit());
                    }
                    for result in pending {
                        for item in result.await.expect("multi read") {
                            if let zk::MultiReadResult::Data { data, .. } = item {
                                parsed.push(serde_json::from_slice::<Value>(&data).expect("parse"));
                            }
                        }
                    }
                    black_box(parsed);
                }
            })
            .await;
            report.row(
                "ZooKeeper: reload a namespace",
                n,
                &ours,
                &base,
                Some(1.5),
                "raw read-only multi, ~1 MB batches, same client",
            );
            let (parent, raw_zk) = (&parent, &raw_zk);
            let raw_read = |i: usize| async move {
                let (data, _) = raw_zk.get_data(&format!("{parent}/{}", name(i))).await.expect("getData");
                black_box(serde_json::from_slice::<Value>(&data).expect("parse"));
            };
            let raw_write = |i: usize| {
                let bytes = json[i].1.clone();
                async move {
                    raw_zk.set_data(&format!("{parent}/{}", name(i)), &bytes, None).await.expect("setData");
                }
            };
            point_rows(&mut report, "ZooKeeper", runs, &zk, &zk_ns, &configs, raw_read, raw_write).await;
            let ours = time(runs, |r| {
                let zk = &zk;
                let changes = &changes;
                async move {
                    let ns = format!("new{n}_{r}");
                    zk.create_namespace(&ns).await.expect("create");
                    zk.write(&ns, changes).await.into_result().map(drop).expect("write");
                }
            })
            .await;
            let base = time(runs, |r| {
                let raw_zk = &raw_zk;
                let json = &json;
                async move {
                    let parent = format!("/raw{n}_{r}");
                    let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
                    raw_zk.create(&parent, b"", &open).await.expect("create");
                    for (k, v) in json {
                        raw_zk.create(&format!("{parent}/{k}"), v, &open).await.expect("create");
                    }
                }
            })
            .await;
            report.row(
                "ZooKeeper: persist N new configurations",
                n,
                &ours,
                &base,
                None,
                "raw sequential create, one round trip each",
            );
            let off = time(runs, |r| {
                let zk_off = &zk_off;
                let changes = &changes;
                async move {
                    let ns = format!("off{n}_{r}");
                    zk_off.create_namespace(&ns).await.expect("create");
                    zk_off.write(&ns, changes).await.into_result().map(drop).expect("write");
                }
            })
            .await;
            report.row(
                "ZooKeeper: persist N new, history on ÷ off",
                n,
                &ours,
                &off,
                Some(1.3),
                "the same persist with history=off",
            );
        }

        // ----- etcd -----
        etcd.create_namespace("bench").await.expect("create");
        etcd.write("bench", &changes).await.into_result().expect("write");
        {
            let ours = time(runs, |_| async {
                black_box(etcd.load_namespace("bench").await.expect("load"));
            })
            .await;
            let base = time(runs, |_| {
                let mut client = raw_etcd.clone();
                async move {
                    let resp = client
                        .get("/confo/bench/", Some(etcd_client::GetOptions::new().with_prefix()))
                        .await
                        .expect("range");
                    let parsed: Vec<Value> =
                        resp.kvs().iter().map(|kv| serde_json::from_slice(kv.value()).expect("parse")).collect();
                    black_box(parsed);
                }
            })
            .await;
            report.row("etcd: reload a namespace", n, &ours, &base, Some(1.5), "one raw range get + parse");
            let raw_read = |i: usize| {
                let mut client = raw_etcd.clone();
                async move {
                    let resp = client.get(format!("/confo/bench/{}", name(i)), None).await.expect("get");
                    let kv = resp.kvs().first().expect("present");
                    black_box(serde_json::from_slice::<Value>(kv.value()).expect("parse"));
                }
            };
            let raw_write = |i: usize| {
                let mut client = raw_etcd.clone();
                let bytes = json[i].1.clone();
                async move {
                    client.put(format!("/raw/{i}"), bytes, None).await.expect("put");
                }
            };
            point_rows(&mut report, "etcd", runs, &etcd, "bench", &configs, raw_read, raw_write).await;
            let ours =
                time(runs, |_| async { etcd.write("bench", &changes).await.into_result().map(drop).expect("write") })
                    .await;
            let base = time(runs, |_| {
                let mut client = raw_etcd.clone();
                let json = &json;
                async move {
                    for batch in json.chunks(128) {
                        let ops: Vec<etcd_client::TxnOp> = batch
                            .iter()
                            .map(|(k, v)| etcd_client::TxnOp::put(format!("/raw/{k}"), v.clone(), None))
                            .collect();
                        client.txn(etcd_client::Txn::new().and_then(ops)).await.expect("txn");
                    }
                }
            })
            .await;
            report.row(
                "etcd: persist N configurations",
                n,
                &ours,
                &base,
                Some(1.5),
                "raw transactions of 128 puts, one after another",
            );
            etcd_off.create_namespace("plain").await.expect("create");
            let off = time(runs, |_| async {
                etcd_off.write("plain", &changes).await.into_result().map(drop).expect("write")
            })
            .await;
            report.row(
                "etcd: persist N, history on ÷ off",
                n,
                &ours,
                &off,
                Some(1.3),
                "the same persist with history=off",
            );
            etcd_off.delete_namespace("plain").await.expect("delete");
        }
        etcd.delete_namespace("bench").await.expect("delete");
        let _ = raw_etcd.delete("/raw/", Some(etcd_client::DeleteOptions::new().with_prefix())).await;
    }
    println!();
    println!("{} rows", report.rows.len());
    report
}

/// How many times a smoke run measures everything before a row over its limit fails the run:
/// a regression shows in every run, a noisy one (a slow fsync, a busy core) not.
const GUARD_ATTEMPTS: usize = 3;

/// Per row, the better (lower) ratio of two runs; rows only one run has are kept as they are.
fn best_of(first: &[(String, f64)], second: &[(String, f64)]) -> Vec<(String, f64)> {
    first
        .iter()
        .map(|(row, ratio)| {
            let again = second.iter().find(|(r, _)| r == row).map_or(*ratio, |(_, r)| *r);
            (row.clone(), ratio.min(again))
        })
        .collect()
}

/// One reason the smoke guard fails.
#[derive(Debug)]
struct Failure {
    /// What to print, naming the row.
    message: String,
    /// A row over its limit (measuring again may clear it), not a missing or unknown row.
    over: bool,
}

/// What fails the guard: a row over [`GUARD_FACTOR`] × its recorded ratio, a row with none,
/// a recorded row no longer measured.
fn check(measured: &[(String, f64)], recorded: &std::collections::BTreeMap<String, f64>, file: &str) -> Vec<Failure> {
    let mut failures = Vec::new();
    for (row, ratio) in measured {
        match recorded.get(row) {
            None => failures.push(Failure {
                message: format!("{row}: no recorded ratio in {file} (record it with --smoke --record)"),
                over: false,
            }),
            Some(&limit) if *ratio > GUARD_FACTOR * limit => failures.push(Failure {
                message: format!(
                    "{row}: {ratio:.2}× its baseline, more than {GUARD_FACTOR}× the recorded {limit:.2}× (a regression?)"
                ),
                over: true,
            }),
            Some(_) => {}
        }
    }
    for row in recorded.keys() {
        if !measured.iter().any(|(r, _)| r == row) {
            failures.push(Failure {
                message: format!("{row}: recorded but no longer measured (remove it from {file})"),
                over: false,
            });
        }
    }
    failures
}

/// How far a row may move from its recorded ratio before the smoke run fails.
const GUARD_FACTOR: f64 = 3.0;

/// The recorded smoke ratios, one `figure @ N<TAB>ratio` per line.
fn baseline_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("smoke-baseline.tsv")
}

/// Checks every measured ratio against its recorded one (see the module's documentation), or
/// with `record`, records the larger of the two.
fn guard(measured: &[(String, f64)], record: bool) -> Result<(), Vec<Failure>> {
    let path = baseline_path();
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let mut recorded: std::collections::BTreeMap<String, f64> = text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| line.split_once('\t'))
        .filter_map(|(row, ratio)| Some((row.to_owned(), ratio.trim().parse().ok()?)))
        .collect();
    if record {
        for (row, ratio) in measured {
            let kept = recorded.entry(row.clone()).or_insert(*ratio);
            *kept = kept.max(*ratio);
        }
        let mut out = String::from("# confo-bench --smoke: per row, the largest ratio recorded (ours ÷ baseline, fastest runs; memory: bytes ÷ JSON bytes).\n# A smoke run fails if a row exceeds 3× its ratio here. Written by `cargo run -p confo-bench -- --smoke --record`.\n");
        for (row, ratio) in &recorded {
            out.push_str(&format!("{row}\t{ratio:.3}\n"));
        }
        std::fs::write(&path, out)
            .map_err(|e| vec![Failure { message: format!("{}: {e}", path.display()), over: false }])?;
        println!("recorded {} rows in {}", recorded.len(), path.display());
        return Ok(());
    }
    let failures = check(measured, &recorded, &path.display().to_string());
    match failures.is_empty() {
        true => {
            println!("smoke guard: {} rows within {GUARD_FACTOR}× of their recorded ratios", measured.len());
            Ok(())
        }
        false => Err(failures),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_names_regressions_and_rows_it_cannot_check() {
        let recorded: std::collections::BTreeMap<String, f64> =
            [("a @ 100".to_owned(), 1.5), ("b @ 100".to_owned(), 2.0), ("gone @ 100".to_owned(), 1.0)].into();
        let measured = [("a @ 100".to_owned(), 4.4), ("b @ 100".to_owned(), 6.1), ("new @ 100".to_owned(), 1.0)];
        let failures = check(&measured, &recorded, "baseline.tsv");
        assert_eq!(failures.len(), 3, "{failures:?}");
        assert!(failures[0].message.starts_with("b @ 100: 6.10×") && failures[0].over, "{failures:?}");
        assert!(failures[1].message.starts_with("new @ 100: no recorded ratio") && !failures[1].over, "{failures:?}");
        assert!(
            failures[2].message.starts_with("gone @ 100: recorded but no longer measured") && !failures[2].over,
            "{failures:?}"
        );
        assert!(check(&measured[..1], &[("a @ 100".to_owned(), 1.5)].into(), "f").is_empty(), "4.4 ≤ 3 × 1.5");
    }

    #[test]
    fn a_second_run_clears_noise_but_not_a_regression() {
        let recorded: std::collections::BTreeMap<String, f64> =
            [("noisy @ 100".to_owned(), 3.0), ("slow @ 100".to_owned(), 1.0)].into();
        let first = [("noisy @ 100".to_owned(), 39.0), ("slow @ 100".to_owned(), 5.0)];
        let second = [("noisy @ 100".to_owned(), 3.5), ("slow @ 100".to_owned(), 4.0)];
        let best = best_of(&first, &second);
        assert_eq!(best, [("noisy @ 100".to_owned(), 3.5), ("slow @ 100".to_owned(), 4.0)]);
        let failures = check(&best, &recorded, "f");
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(failures[0].message.starts_with("slow @ 100: 4.00×"), "{failures:?}");
    }

    #[test]
    fn the_recorded_baseline_is_readable_and_for_the_smoke_size() {
        let text = std::fs::read_to_string(baseline_path()).expect("smoke-baseline.tsv");
        let rows: Vec<(&str, f64)> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('\t'))
            .map(|(row, ratio)| (row, ratio.trim().parse().expect("a ratio")))
            .collect();
        assert!(rows.len() >= 20, "{rows:?}");
        assert!(rows.iter().all(|(row, ratio)| row.ends_with(" @ 100") && *ratio > 0.0), "{rows:?}");
    }
}
