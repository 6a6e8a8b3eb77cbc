//! The floor under reading a namespace of files: what the machine charges for opening and
//! reading N small files, and for parsing them, on the same threads confo's file engine uses,
//! beside confo's own reads. Best of 7 runs (the files are in the page cache after the first).
//!
//! ```text
//! cargo run --release -p confo-bench --bin files_floor [-- N]     (default 10000)
//! ```
//!
//! Rows: the files read (`std::fs::read`, no parsing); read and parsed into `serde_json`
//! values; confo's `load_namespace` (maps, version tokens, corrupt-entry bookkeeping); confo's
//! `load_namespace_compact` (what a session, and so the Python package's `use_namespace`,
//! reads).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use confo::{BackendExt, FileBackend};
use confo_bench::workload::configuration as config;

const RUNS: usize = 7;

fn best(mut f: impl FnMut()) -> Duration {
    (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .min()
        .unwrap_or_default()
}

/// `read` applied to every file on `threads` threads, as the file engine splits them.
fn on_threads(files: &[PathBuf], threads: usize, read: impl Fn(&PathBuf) + Sync) {
    let per = files.len().div_ceil(threads).max(1);
    let read = &read;
    std::thread::scope(|scope| {
        for part in files.chunks(per) {
            scope.spawn(move || part.iter().for_each(read));
        }
    });
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args().nth(1).map_or(10_000, |a| a.parse().expect("N"));
    let dir = tempfile::tempdir().expect("temp dir");
    let ns = dir.path().join("ns");
    std::fs::create_dir(&ns).expect("mkdir");
    let files: Vec<PathBuf> = (0..n)
        .map(|i| {
            let path = ns.join(format!("c{i:05}.json"));
            std::fs::write(&path, serde_json::to_vec(&config(i)).expect("json")).expect("write");
            path
        })
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let backend = FileBackend::open(dir.path()).expect("open");
    println!("A namespace of {n} files, {threads} threads, best of {RUNS} runs");
    println!();
    println!("| read | time |");
    println!("| --- | --- |");
    let rows: [(&str, Duration); 3] = [
        (
            "the folder listed (read_dir, one thread)",
            best(|| {
                let names: Vec<(String, PathBuf)> = std::fs::read_dir(&ns)
                    .expect("read_dir")
                    .map(|e| {
                        let e = e.expect("entry");
                        (e.file_name().into_string().expect("utf-8"), e.path())
                    })
                    .collect();
                std::hint::black_box(names);
            }),
        ),
        (
            "the files read, not parsed",
            best(|| on_threads(&files, threads, |p| drop(std::hint::black_box(std::fs::read(p).expect("read"))))),
        ),
        (
            "read and parsed into serde_json values",
            best(|| {
                on_threads(&files, threads, |p| {
                    let bytes = std::fs::read(p).expect("read");
                    drop(std::hint::black_box(serde_json::from_slice::<serde_json::Value>(&bytes).expect("json")));
                })
            }),
        ),
    ];
    for (row, time) in rows {
        println!("| {row} | {:.1} ms |", time.as_secs_f64() * 1e3);
    }
    for compact in [false, true] {
        let mut times = Vec::new();
        for _ in 0..RUNS {
            // Timed until the namespace is read: a session keeps it (its freeing is not timed).
            let started = Instant::now();
            if compact {
                let read = std::hint::black_box(backend.load_namespace_compact("ns").await.expect("load"));
                times.push(started.elapsed());
                drop(read);
            } else {
                let read = std::hint::black_box(backend.load_namespace("ns").await.expect("load"));
                times.push(started.elapsed());
                drop(read);
            }
        }
        let row = if compact { "confo's load_namespace_compact" } else { "confo's load_namespace" };
        println!("| {row} | {:.1} ms |", times.iter().min().copied().unwrap_or_default().as_secs_f64() * 1e3);
    }
}
