//! What the servers share: errors, ports, binaries, temp dirs, readiness.

use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer after it was started.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a server could not be started.
pub struct HarnessError(String);

impl fmt::Debug for HarnessError {
    // Shown by `expect()`: the plain message, which says what to install or what went wrong.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HarnessError {}

/// `Result` of the harness.
pub type Result<T> = std::result::Result<T, HarnessError>;

pub(crate) fn err(message: impl Into<String>) -> HarnessError {
    HarnessError(message.into())
}

/// A free TCP port on 127.0.0.1, outside the kernel's ephemeral range.
///
/// A port the kernel hands out for port 0 lies in `ip_local_port_range`, the range it also
/// picks outgoing connections' source ports from: a server stopped for a restart test could
/// find its port taken by any client's connection meanwhile (seen in CI: a ZooKeeper node
/// that exited at its restart because a peer's reconnect held its port). Ports below that
/// range are never taken by a connection, so a stopped server gets its port back. A port is
/// picked at random, checked bindable, and never handed out twice by one process.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::Mutex;
    static HANDED_OUT: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let (low, high) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut parts = text.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((parts.next()??, parts.next()??))
        })
        .unwrap_or((32768, 60999));
    // The larger of the two ranges outside the ephemeral one, keeping clear of the well-known
    // and commonly configured ports below 10000.
    let (from, to) = if low.saturating_sub(10000) >= 65535u16.saturating_sub(high) {
        (10000, low.max(10001) - 1)
    } else {
        (high.saturating_add(1), 65535)
    };
    let span = u32::from(to - from) + 1;
    let mut handed = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
    let seed = std::collections::hash_map::RandomState::new();
    for attempt in 0u32..2000 {
        let mut hasher = seed.build_hasher();
        hasher.write_u32(attempt);
        hasher.write_u32(std::process::id());
        let port = from + (hasher.finish() % u64::from(span)) as u16;
        if handed.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed.push(port);
            return port;
        }
    }
    // Every port tried was in use: fall back on the kernel's choice.
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or_else(|e| {
        panic!("cannot bind a loopback port: {e}");
    })
}

/// The path of `program` on `PATH` (or `program` itself if it is a path that exists), or an
/// error naming the Debian package that provides it.
pub fn require_binary(program: &str, package: &str) -> Result<PathBuf> {
    let as_path = Path::new(program);
    if as_path.components().count() > 1 {
        return if as_path.exists() { Ok(as_path.to_owned()) } else { Err(missing(program, package)) };
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| missing(program, package))
}

pub(crate) fn missing(program: &str, package: &str) -> HarnessError {
    err(format!(
        "{program} not found: the tests start their own servers and need it installed \
         (apt-get update && apt-get install -y {package}; the README's test command does this)"
    ))
}

/// A file store's root for one test: the folder `root` inside a temp dir, so that what confo
/// keeps beside a root (its history, in `.root.confo/`) is removed with it.
#[derive(Debug)]
pub struct StoreDir {
    _outer: tempfile::TempDir,
    root: PathBuf,
}

impl StoreDir {
    /// The store's root (an empty folder when made).
    pub fn path(&self) -> &std::path::Path {
        &self.root
    }
}

/// A new, empty [`StoreDir`].
pub fn store_dir() -> std::io::Result<StoreDir> {
    let outer = tempfile::Builder::new().prefix("confo-store-").tempdir()?;
    let root = outer.path().join("root");
    std::fs::create_dir(&root)?;
    Ok(StoreDir { _outer: outer, root })
}

pub(crate) fn temp_dir(tag: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix(&format!("confo-{tag}-")).tempdir().map_err(|e| err(format!("temp dir: {e}")))
}

/// One server process: how to start it, and the running child if it runs.
pub struct Server {
    pub(crate) name: String,
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<String>,
    pub(crate) log: PathBuf,
    pub(crate) child: Option<Child>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server").field("name", &self.name).field("running", &self.child.is_some()).finish()
    }
}

impl Server {
    pub(crate) fn new(name: impl Into<String>, program: PathBuf, args: Vec<String>, log: PathBuf) -> Self {
        Server { name: name.into(), program, args, log, child: None }
    }

    /// Starts the process if it is not running. Output goes to the server's log file.
    pub fn start(&mut self) -> Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| err(format!("{}: log {}: {e}", self.name, self.log.display())))?;
        let log2 = log.try_clone().map_err(|e| err(format!("{}: log: {e}", self.name)))?;
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| err(format!("{}: cannot start {}: {e}", self.name, self.program.display())))?;
        self.child = Some(child);
        Ok(())
    }

    /// Kills the process (SIGKILL, as a crash would) and reaps it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The last lines of the server's log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Polls `ready` until it answers true, the process dies, or the timeout passes.
    pub(crate) fn wait_ready(&mut self, mut ready: impl FnMut() -> bool) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if ready() {
                return Ok(());
            }
            if !self.is_running() {
                return Err(err(format!("{} exited during start-up; its log ends:\n{}", self.name, self.log_tail())));
            }
            if Instant::now() > deadline {
                return Err(err(format!(
                    "{} did not answer within {READY_TIMEOUT:?}; log:\n{}",
                    self.name,
                    self.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends `request` to `addr` and returns what the server answers before closing or timing out.
pub(crate) fn tcp_ask(addr: SocketAddr, request: &[u8], enough: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    stream.write_all(request).ok()?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !enough(&answer) {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    Some(answer)
}

pub(crate) fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Starts a server on fresh ports, retrying with new ports if one was taken meanwhile.
pub(crate) fn with_retries<T>(mut attempt: impl FnMut() -> Result<T>) -> Result<T> {
    let mut last = None;
    for _ in 0..3 {
        match attempt() {
            Ok(v) => return Ok(v),
            Err(e) if e.0.contains("not found:") => return Err(e),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| err("no attempt made")))
}
