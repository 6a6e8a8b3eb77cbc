//! Change propagation: from the start of a persist in one process until a watcher in another
//! process has the event, over N changes per backend (files, Redis, ZooKeeper on servers the
//! testkit starts on loopback). Prints p50, p99 and max.
//!
//! ```text
//! cargo run --release -p confo --example propagation [-- N]       (default 1000)
//! ```
//!
//! The writer waits for each event before the next change, so every change is measured alone.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use confo::blocking::Confo;
use serde_json::json;

fn io_error(location: &str, source: std::io::Error) -> confo::Error {
    confo::Error::Io { location: location.to_owned(), source }
}

fn now_ns() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// The watching side: prints "ready", then "<seq> <receive time in ns>" per event.
fn watch(spec: &str) -> confo::Result<()> {
    let confo = Confo::new()?;
    confo.load_backend("b", &spec.parse()?)?;
    confo.activate_backend("b")?;
    let watcher = confo.watch("bench", Some("c"))?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    for event in watcher {
        let received = now_ns();
        let seq = event?.value.and_then(|v| v.get("seq").and_then(|s| s.as_u64())).unwrap_or(0);
        if writeln!(out, "{seq} {received}").and_then(|()| out.flush()).is_err() {
            break;
        }
    }
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// The writing side for one backend: returns latencies in ms.
fn measure(spec: &str, changes: u64) -> confo::Result<Vec<f64>> {
    let confo = Confo::new()?;
    confo.load_backend("b", &spec.parse()?)?;
    confo.activate_backend("b")?;
    confo.create_namespace("bench")?;
    confo.use_namespace("bench")?;
    confo.set("c", "seq", 0)?;
    confo.persist()?;

    let mut child = Command::new(std::env::current_exe().map_err(|e| io_error("current exe", e))?)
        .args(["--watch", spec])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| io_error("watcher process", e))?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    assert_eq!(lines.next().and_then(|l| l.ok()).as_deref(), Some("ready"));
    std::thread::sleep(Duration::from_millis(300)); // let the subscription settle

    let mut latencies = Vec::with_capacity(changes as usize);
    for seq in 1..=changes {
        confo.set("c", "seq", seq)?;
        confo.set("c", "payload", json!({"padding": "x".repeat(200)}))?;
        let sent = now_ns();
        confo.persist()?;
        loop {
            let line = lines.next().and_then(|l| l.ok()).expect("the watcher stopped");
            let mut parts = line.split(' ');
            let got: u64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            let received: u128 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            if got == seq {
                latencies.push(received.saturating_sub(sent) as f64 / 1e6);
                break;
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    Ok(latencies)
}

fn main() -> confo::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--watch") {
        return watch(&args[2]);
    }
    let changes: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let dir = confo_testkit::store_dir().map_err(|e| io_error("temp dir", e))?;
    let redis = confo_testkit::RedisServer::start().expect("redis-server");
    let zk = confo_testkit::ZkServer::start().expect("zookeeper");
    let backends = [
        ("files", format!("file:{}", dir.path().display()), 100.0),
        ("redis", redis.url(), 20.0),
        ("zookeeper", format!("zk://{}", zk.connect_string()), 20.0),
    ];
    println!("| backend | changes | p50 | p99 | max | goal (p99) |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (name, spec, goal) in backends {
        let mut latencies = measure(&spec, changes)?;
        latencies.sort_by(f64::total_cmp);
        let p99 = percentile(&latencies, 0.99);
        println!(
            "| {name} | {changes} | {:.2} ms | {:.2} ms | {:.2} ms | < {goal} ms {} |",
            percentile(&latencies, 0.5),
            p99,
            latencies[latencies.len() - 1],
            if p99 < goal { "met" } else { "NOT met" }
        );
    }
    Ok(())
}
