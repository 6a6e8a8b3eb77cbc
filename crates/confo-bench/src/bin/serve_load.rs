//! Load on `confo serve` from a second process, on loopback: the server is the release `confo`
//! binary (started here over a file store of 100 configurations, with a token made by `confo
//! token add`), and this process is the load generator.
//!
//! - cached `GET` of one configuration at a fixed rate (open loop: each request has a time it
//!   was due, and its latency counts from then, so a stalled server cannot hide its queue),
//!   1,000/s and 5,000/s for 10 s each, over 32 keep-alive connections;
//! - 1,000 open server-sent-event subscribers of the namespace, 20 changes written one after
//!   the other: the time from sending each write to each subscriber receiving its event.
//!
//! `cargo build --release -p confo-cli && cargo run --release -p confo-bench --bin serve_load
//! [-- --smoke] [CONFO]` (CONFO: the binary, default target/release/confo). `--smoke` runs
//! a second of each at small sizes and fails on any error (the test command runs it).

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Server {
    child: std::process::Child,
    address: String,
    token: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(confo: &str) -> Result<Server> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("Configurations");
    std::fs::create_dir_all(root.join("bench"))?;
    for i in 0..100 {
        let value = serde_json::json!({"host": format!("db{i}.internal"), "port": 5432, "pool": {"min": 2, "max": 20}, "replicas": ["a", "b"], "n": i});
        std::fs::write(root.join("bench").join(format!("config{i}.json")), value.to_string())?;
    }
    let tokens = dir.path().join("tokens.json");
    let made = Command::new(confo)
        .args(["token", "add", "bench", "--role", "write", "--tokens"])
        .arg(&tokens)
        .stderr(Stdio::null())
        .output()?;
    if !made.status.success() {
        return Err(format!("{confo} token add failed: is it built (cargo build --release -p confo-cli)?").into());
    }
    let token = String::from_utf8(made.stdout)?.trim().to_owned();
    let mut child = Command::new(confo)
        .arg("-b")
        .arg(format!("file:{}", root.display()))
        .args(["serve", "--listen", "127.0.0.1:0", "--max-connections", "8192", "--max-streams", "4096"])
        // One token holds every subscriber here.
        .args(["--streams-per-token", "4096", "--tokens"])
        .arg(&tokens)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut line = String::new();
    let stdout = child.stdout.take().ok_or("no stdout")?;
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)?;
    let address = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .ok_or_else(|| format!("confo serve said {line:?}, not where it listens"))?
        .to_owned();
    Ok(Server { child, address, token, _dir: dir })
}

/// Sends one request and reads its whole answer; returns the status.
async fn exchange(stream: &mut BufReader<TcpStream>, request: &[u8]) -> Result<u16> {
    stream.get_mut().write_all(request).await?;
    let mut line = String::new();
    stream.read_line(&mut line).await?;
    let status: u16 = line.split_whitespace().nth(1).ok_or("no status line")?.parse()?;
    let mut length = 0usize;
    loop {
        line.clear();
        stream.read_line(&mut line).await?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse()?;
            }
        }
    }
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await?;
    Ok(status)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// GET one configuration at `rate` per second for `seconds`, over `connections`.
async fn fixed_rate(server: &Server, rate: u64, seconds: u64, connections: u64) -> Result<(Vec<Duration>, usize, f64)> {
    let request = Arc::new(
        format!(
            "GET /api/v1/namespaces/bench/configurations/config7 HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\r\n",
            server.address, server.token
        )
        .into_bytes(),
    );
    let total = rate * seconds;
    let start = Instant::now() + Duration::from_millis(200);
    let errors = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for k in 0..connections {
        let (request, errors, address) = (request.clone(), errors.clone(), server.address.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut stream = BufReader::new(TcpStream::connect(&address).await?);
            stream.get_mut().set_nodelay(true)?;
            let mut i = k;
            while i < total {
                let due = start + Duration::from_nanos(i * 1_000_000_000 / rate);
                tokio::time::sleep_until(due.into()).await;
                match exchange(&mut stream, &request).await {
                    Ok(200) => {}
                    Ok(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        stream = BufReader::new(TcpStream::connect(&address).await?);
                    }
                }
                latencies.push(due.elapsed());
                i += connections;
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(latencies)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort();
    Ok((all, errors.load(Ordering::Relaxed), all_len_rate(total, elapsed)))
}

fn all_len_rate(total: u64, elapsed: f64) -> f64 {
    total as f64 / elapsed
}

/// `subscribers` event streams, `changes` writes: every (write, subscriber) delivery time.
async fn events(server: &Server, subscribers: usize, changes: usize) -> Result<(Vec<Duration>, usize)> {
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..changes).map(|_| AtomicU64::new(0)).collect());
    let base = Instant::now();
    let ready = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..subscribers {
        let (sent, ready, address, token) = (sent.clone(), ready.clone(), server.address.clone(), server.token.clone());
        tasks.push(tokio::spawn(async move {
            let mut stream = BufReader::new(TcpStream::connect(&address).await?);
            let request = format!(
                "GET /api/v1/namespaces/bench/events HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\r\n"
            );
            stream.get_mut().write_all(request.as_bytes()).await?;
            let mut line = String::new();
            loop {
                line.clear();
                stream.read_line(&mut line).await?;
                if line == "\r\n" || line.is_empty() {
                    break;
                }
            }
            ready.fetch_add(1, Ordering::SeqCst);
            let mut got = Vec::new();
            while got.len() < changes {
                line.clear();
                let read = tokio::time::timeout(Duration::from_secs(30), stream.read_line(&mut line)).await;
                match read {
                    Ok(Ok(n)) if n > 0 => {}
                    _ => break,
                }
                // Chunked framing: data lines carry the event; its "mark" says which write.
                if let Some(at) = line.find("\"mark\":") {
                    let number: String = line[at + 7..].chars().take_while(|c| c.is_ascii_digit()).collect();
                    if let Ok(i) = number.parse::<usize>() {
                        let now = base.elapsed().as_nanos() as u64;
                        got.push(Duration::from_nanos(now.saturating_sub(sent[i].load(Ordering::SeqCst))));
                    }
                }
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(got)
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while ready.load(Ordering::SeqCst) < subscribers {
        if Instant::now() > deadline {
            return Err(format!("only {} of {subscribers} subscribers connected", ready.load(Ordering::SeqCst)).into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut writer = BufReader::new(TcpStream::connect(&server.address).await?);
    for (i, slot) in sent.iter().enumerate() {
        let body = format!("{{\"host\": \"db.internal\", \"port\": 5432, \"mark\": {i}}}");
        let request = format!(
            "PUT /api/v1/namespaces/bench/configurations/config0 HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            server.address,
            server.token,
            body.len()
        );
        slot.store(base.elapsed().as_nanos() as u64, Ordering::SeqCst);
        let status = exchange(&mut writer, request.as_bytes()).await?;
        if !(200..300).contains(&status) {
            return Err(format!("the write answered {status}").into());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut all = Vec::new();
    let mut missing = 0;
    for task in tasks {
        let got = task.await??;
        missing += changes.saturating_sub(got.len());
        all.extend(got);
    }
    all.sort();
    Ok((all, missing))
}

/// The resident memory of process `pid`, in MB.
fn rss_mb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    kb / 1024
}

/// Opens `count` connections that send nothing, then times a real request beside them.
async fn idle_flood(server: &Server, count: usize) -> Result<(usize, Duration)> {
    let mut idle = Vec::with_capacity(count);
    for _ in 0..count {
        match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(&server.address)).await {
            Ok(Ok(stream)) => idle.push(stream),
            _ => break,
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let opened = idle.len();
    let request = format!(
        "GET /api/v1/namespaces/bench/configurations/config7 HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\r\n",
        server.address, server.token
    );
    let started = Instant::now();
    let mut stream = BufReader::new(TcpStream::connect(&server.address).await?);
    let status = tokio::time::timeout(Duration::from_secs(60), exchange(&mut stream, request.as_bytes())).await??;
    let waited = started.elapsed();
    drop(idle);
    if status != 200 {
        return Err(format!("the GET beside idle connections answered {status}").into());
    }
    Ok((opened, waited))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = args.iter().any(|a| a == "--smoke");
    let confo = args.iter().find(|a| !a.starts_with("--")).cloned().unwrap_or_else(|| "target/release/confo".into());
    let server = start(&confo)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        let (rates, seconds, subscribers, changes) =
            if smoke { (vec![200, 500], 1, 20, 3) } else { (vec![1000, 5000], 10, 1000, 20) };
        println!("confo serve over a file store, GET of one cached configuration, open loop, 32 connections:");
        println!("| rate asked | achieved | requests | errors | p50 | p99 | p99.9 | max |");
        println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
        let mut failed = false;
        for rate in rates {
            let (latencies, errors, achieved) = fixed_rate(&server, rate, seconds, 32).await?;
            failed |= errors > 0;
            println!(
                "| {rate}/s | {achieved:.0}/s | {} | {errors} | {} | {} | {} | {} |",
                latencies.len(),
                ms(percentile(&latencies, 0.5)),
                ms(percentile(&latencies, 0.99)),
                ms(percentile(&latencies, 0.999)),
                ms(latencies.last().copied().unwrap_or_default())
            );
        }
        let (deliveries, missing) = events(&server, subscribers, changes).await?;
        failed |= missing > 0;
        println!();
        println!(
            "{subscribers} event subscribers, {changes} writes: {} deliveries, {missing} missing",
            deliveries.len()
        );
        println!(
            "| p50 | p99 | max |\n| --- | --- | --- |\n| {} | {} | {} |",
            ms(percentile(&deliveries, 0.5)),
            ms(percentile(&deliveries, 0.99)),
            ms(deliveries.last().copied().unwrap_or_default())
        );
        println!("server RSS after the subscribers: {} MB", rss_mb(server.child.id()));
        let idle = if smoke { 200 } else { 10_000 };
        let (opened, waited) = idle_flood(&server, idle).await?;
        println!(
            "{opened} idle connections opened (the server serves 8,192 at once and closes one whose request \
             does not come within 10 s): server RSS {} MB; a GET on a new connection answered after {}",
            rss_mb(server.child.id()),
            ms(waited)
        );
        if smoke && failed {
            return Err("errors or missing events under load (see above)".into());
        }
        Ok(())
    })
}
