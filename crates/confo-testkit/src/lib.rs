//! Private servers for confo's tests: `redis-server`, a standalone ZooKeeper, a 3-node ZooKeeper
//! ensemble and `etcd`, each on free loopback ports in its own temp dir, ready when returned,
//! and stopped (killed and reaped) when dropped.
//!
//! Nothing here uses a server someone else started. A missing binary is an error that names
//! the Debian package to install; tests `expect()` it, so they fail loudly instead of skipping.
//!
//! # Layout
//!
//! - [`Server`]: one child process with its command line, so it can be stopped and restarted
//!   on the same port and data dir.
//! - [`RedisServer`], [`ZkServer`], [`ZkEnsemble`], [`EtcdServer`]: the servers.
//! - [`free_port`], [`require_binary`]: the pieces they share.
//! - [`sample_configuration`]: the benchmarks' workload.

#![deny(missing_docs)]

use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer after it was started.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

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

fn err(message: impl Into<String>) -> HarnessError {
    HarnessError(message.into())
}

/// Configuration `i` of the benchmarks' workload: 11 fields, about 277 bytes of JSON.
pub fn sample_configuration(i: usize) -> serde_json::Map<String, serde_json::Value> {
    let value = serde_json::json!({
        "host": format!("db{i}.internal.example.com"), "port": 5432, "user": "service_account",
        "database": format!("inventory_{i}"), "pool_min": 2, "pool_max": 20, "timeout_ms": 3000,
        "ssl": true, "replicas": ["replica-1.db.example.com", "replica-2.db.example.com"],
        "region": "eu-west-1", "owner": format!("team-{}@example.com", i % 97)
    });
    value.as_object().cloned().unwrap_or_default()
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
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

fn missing(program: &str, package: &str) -> HarnessError {
    err(format!(
        "{program} not found: the tests start their own servers and need it installed \
         (apt-get update && apt-get install -y {package}; the README's test command does this)"
    ))
}

fn temp_dir(tag: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix(&format!("confo-{tag}-")).tempdir().map_err(|e| err(format!("temp dir: {e}")))
}

/// One server process: how to start it, and the running child if it runs.
pub struct Server {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server").field("name", &self.name).field("running", &self.child.is_some()).finish()
    }
}

impl Server {
    fn new(name: impl Into<String>, program: PathBuf, args: Vec<String>, log: PathBuf) -> Self {
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
    fn wait_ready(&mut self, mut ready: impl FnMut() -> bool) -> Result<()> {
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
fn tcp_ask(addr: SocketAddr, request: &[u8], enough: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
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

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Starts a server on fresh ports, retrying with new ports if one was taken meanwhile.
fn with_retries<T>(mut attempt: impl FnMut() -> Result<T>) -> Result<T> {
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

// ----- Redis -----

/// A private `redis-server` on 127.0.0.1, without persistence.
#[derive(Debug)]
pub struct RedisServer {
    server: Server,
    port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts a plain server.
    pub fn start() -> Result<Self> {
        Self::start_with(&[])
    }

    /// Starts a server with extra `redis-server` arguments (`["--requirepass", "secret"]`).
    pub fn start_with(extra: &[&str]) -> Result<Self> {
        let program = require_binary("redis-server", "redis-server")?;
        with_retries(|| {
            let dir = temp_dir("redis")?;
            let port = free_port();
            let mut args: Vec<String> = [
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--dir",
                &dir.path().display().to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            args.extend(extra.iter().map(|s| s.to_string()));
            let server =
                Server::new(format!("redis-server :{port}"), program.clone(), args, dir.path().join("redis.log"));
            let mut redis = RedisServer { server, port, _dir: dir };
            redis.server.start()?;
            redis.wait_ready()?;
            Ok(redis)
        })
    }

    /// Starts a TLS-only server with a fresh self-signed CA and server certificate (SAN
    /// `IP:127.0.0.1`, made with `openssl`); returns it and the CA's PEM path.
    pub fn start_tls() -> Result<(Self, PathBuf)> {
        let program = require_binary("redis-server", "redis-server")?;
        let openssl = require_binary("openssl", "openssl")?;
        with_retries(|| {
            let dir = temp_dir("redis-tls")?;
            let d = dir.path();
            let run = |args: &[&str]| -> Result<()> {
                let out = Command::new(&openssl)
                    .args(args)
                    .current_dir(d)
                    .output()
                    .map_err(|e| err(format!("openssl: {e}")))?;
                if out.status.success() {
                    Ok(())
                } else {
                    Err(err(format!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr))))
                }
            };
            run(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=confo test CA",
            ])?;
            run(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ])?;
            std::fs::write(d.join("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
                .map_err(|e| err(e.to_string()))?;
            run(&[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "san.ext",
            ])?;
            let port = free_port();
            let p = |f: &str| d.join(f).display().to_string();
            let args: Vec<String> = [
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--dir",
                &p(""),
                "--save",
                "",
                "--appendonly",
                "no",
                "--tls-cert-file",
                &p("server.pem"),
                "--tls-key-file",
                &p("server.key"),
                "--tls-ca-cert-file",
                &p("ca.pem"),
                "--tls-auth-clients",
                "no",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            let ca = d.join("ca.pem");
            let server = Server::new(format!("redis-server tls :{port}"), program.clone(), args, d.join("redis.log"));
            let mut redis = RedisServer { server, port, _dir: dir };
            redis.server.start()?;
            // TLS: the plain PING probe cannot speak to it; an accepted connection is enough.
            redis
                .server
                .wait_ready(|| TcpStream::connect_timeout(&loopback(port), Duration::from_millis(200)).is_ok())?;
            Ok((redis, ca))
        })
    }

    fn wait_ready(&mut self) -> Result<()> {
        let addr = loopback(self.port);
        // PING answers +PONG, or -NOAUTH when a password is required: either way it serves.
        self.server.wait_ready(|| {
            tcp_ask(addr, b"PING\r\n", |a| a.ends_with(b"\r\n"))
                .is_some_and(|a| a.starts_with(b"+PONG") || a.starts_with(b"-NOAUTH"))
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server (SIGKILL).
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// Starts it again on the same port and waits until it answers.
    pub fn restart(&mut self) -> Result<()> {
        self.server.start()?;
        self.wait_ready()
    }

    /// Starts it again on the same port with extra arguments for this start only (for example
    /// `["--replicaof", "127.0.0.1", "6380"]`), and waits until it answers.
    pub fn restart_with(&mut self, extra: &[&str]) -> Result<()> {
        let base = self.server.args.clone();
        self.server.args.extend(extra.iter().map(|s| s.to_string()));
        let started = self.server.start();
        self.server.args = base;
        started?;
        self.wait_ready()
    }
}

/// A Redis master, one replica and three sentinels monitoring them, all on loopback, with a
/// 2 s down-after time so a failover takes a few seconds (and a loaded machine does not fail
/// over by mistake).
#[derive(Debug)]
pub struct RedisSentinelGroup {
    /// The master (index 0) and the replica (index 1).
    pub servers: Vec<RedisServer>,
    sentinels: Vec<Server>,
    sentinel_ports: Vec<u16>,
    master_name: String,
    _dir: tempfile::TempDir,
}

impl RedisSentinelGroup {
    /// Starts the group and waits until the replica is in sync and every sentinel knows both.
    pub fn start() -> Result<Self> {
        let program = require_binary("redis-server", "redis-server")?;
        let mut master = RedisServer::start()?;
        let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &master.port().to_string()])?;
        let master_addr = loopback(master.port());
        master.server.wait_ready(|| {
            tcp_ask(master_addr, b"INFO replication\r\n", |a| a.ends_with(b"\r\n\r\n"))
                .is_some_and(|a| String::from_utf8_lossy(&a).contains("state=online"))
        })?;
        let dir = temp_dir("sentinel")?;
        let master_name = "confomaster".to_owned();
        let mut sentinels = Vec::new();
        let mut sentinel_ports = Vec::new();
        for i in 0..3 {
            let port = free_port();
            let conf = dir.path().join(format!("sentinel{i}.conf"));
            let text = format!(
                "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor {master_name} 127.0.0.1 {} 2\n\
                 sentinel down-after-milliseconds {master_name} 2000\nsentinel failover-timeout {master_name} 5000\n\
                 sentinel parallel-syncs {master_name} 1\n",
                dir.path().display(),
                master.port()
            );
            std::fs::write(&conf, text).map_err(|e| err(format!("sentinel.conf: {e}")))?;
            let args = vec![conf.display().to_string(), "--sentinel".to_owned()];
            let mut sentinel = Server::new(
                format!("redis-sentinel :{port}"),
                program.clone(),
                args,
                dir.path().join(format!("sentinel{i}.log")),
            );
            sentinel.start()?;
            sentinels.push(sentinel);
            sentinel_ports.push(port);
        }
        let mut group =
            RedisSentinelGroup { servers: vec![master, replica], sentinels, sentinel_ports, master_name, _dir: dir };
        let ports = group.sentinel_ports.clone();
        let name = group.master_name.clone();
        for (i, port) in ports.into_iter().enumerate() {
            let ask = format!("SENTINEL REPLICAS {name}\r\n");
            group.sentinels[i].wait_ready(|| {
                tcp_ask(loopback(port), ask.as_bytes(), |a| a.len() > 64).is_some_and(|a| {
                    String::from_utf8_lossy(&a).contains("slave") || String::from_utf8_lossy(&a).contains("replica")
                })
            })?;
        }
        Ok(group)
    }

    /// The sentinels' addresses, `127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`.
    pub fn sentinels(&self) -> String {
        self.sentinel_ports.iter().map(|p| format!("127.0.0.1:{p}")).collect::<Vec<_>>().join(",")
    }

    /// The monitored master's name.
    pub fn master_name(&self) -> &str {
        &self.master_name
    }

    /// The port of the server every sentinel currently calls master; `None` while they
    /// disagree or one does not answer.
    pub fn master_port(&self) -> Option<u16> {
        let ask = format!("SENTINEL GET-MASTER-ADDR-BY-NAME {}\r\n", self.master_name);
        let answers: Vec<Option<u16>> = self
            .sentinel_ports
            .iter()
            .map(|&port| {
                let answer = tcp_ask(loopback(port), ask.as_bytes(), |a| a.ends_with(b"\r\n") && a.len() > 20)?;
                let text = String::from_utf8_lossy(&answer).into_owned();
                text.lines().filter(|l| !l.starts_with(['*', '$'])).nth(1)?.trim().parse().ok()
            })
            .collect();
        let first = answers.first().copied().flatten()?;
        answers.iter().all(|a| *a == Some(first)).then_some(first)
    }
}

// ----- ZooKeeper -----

const ZK_JAR: &str = "/usr/share/java/zookeeper.jar";

fn zk_java() -> Result<PathBuf> {
    let java = require_binary("java", "zookeeper")?;
    require_binary(ZK_JAR, "zookeeper")?;
    Ok(java)
}

fn zk_args(main_class: &str, cfg: &Path) -> Vec<String> {
    [
        "-Xmx256m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-Xshare:auto",
        "-Dzookeeper.admin.enableServer=false",
        "-Dzookeeper.4lw.commands.whitelist=*",
        "-cp",
        ZK_JAR,
        main_class,
        &cfg.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn zk_cfg(data: &Path, client_port: u16, extra: &str) -> String {
    format!(
        "tickTime=500\ninitLimit=20\nsyncLimit=10\ndataDir={}\nclientPort={client_port}\n\
         clientPortAddress=127.0.0.1\nadmin.enableServer=false\n4lw.commands.whitelist=*\nmaxClientCnxns=0\n{extra}",
        data.display()
    )
}

/// The `Mode:` line of a ZooKeeper server's `srvr` answer (`standalone`, `leader`,
/// `follower`), or `None` if it does not serve.
pub fn zk_mode(port: u16) -> Option<String> {
    let answer = tcp_ask(loopback(port), b"srvr", |_| false)?;
    let text = String::from_utf8_lossy(&answer);
    text.lines().find_map(|l| l.strip_prefix("Mode: ")).map(|m| m.trim().to_owned())
}

/// A private standalone ZooKeeper (`tickTime=500`, so sessions expire fast in tests).
#[derive(Debug)]
pub struct ZkServer {
    server: Server,
    port: u16,
    _dir: tempfile::TempDir,
}

impl ZkServer {
    /// Starts it and waits until it serves (`srvr` reports `Mode: standalone`).
    pub fn start() -> Result<Self> {
        let java = zk_java()?;
        with_retries(|| {
            let dir = temp_dir("zk")?;
            let port = free_port();
            let data = dir.path().join("data");
            std::fs::create_dir(&data).map_err(|e| err(format!("zk data dir: {e}")))?;
            let cfg = dir.path().join("zoo.cfg");
            std::fs::write(&cfg, zk_cfg(&data, port, "")).map_err(|e| err(format!("zoo.cfg: {e}")))?;
            let args = zk_args("org.apache.zookeeper.server.ZooKeeperServerMain", &cfg);
            let server = Server::new(format!("zookeeper :{port}"), java.clone(), args, dir.path().join("zk.log"));
            let mut zk = ZkServer { server, port, _dir: dir };
            zk.server.start()?;
            zk.wait_ready()?;
            Ok(zk)
        })
    }

    /// A server shared by the tests of one binary that run at the same time: it starts with
    /// the first caller and stops when the last holder drops it (a `static` would never be
    /// dropped, and would leave the JVM running after the tests). Use a chroot per test.
    pub fn shared() -> Result<std::sync::Arc<ZkServer>> {
        static SHARED: std::sync::Mutex<std::sync::Weak<ZkServer>> = std::sync::Mutex::new(std::sync::Weak::new());
        let mut slot = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(server) = slot.upgrade() {
            return Ok(server);
        }
        let server = std::sync::Arc::new(ZkServer::start()?);
        *slot = std::sync::Arc::downgrade(&server);
        Ok(server)
    }

    fn wait_ready(&mut self) -> Result<()> {
        // `ruok` says `imok` before the server serves requests; `srvr` shows a mode only then.
        let port = self.port;
        self.server.wait_ready(|| zk_mode(port).is_some_and(|m| m == "standalone"))
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The connect string `127.0.0.1:PORT`.
    pub fn connect_string(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the server (SIGKILL).
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// Starts it again on the same port and data and waits until it answers.
    pub fn restart(&mut self) -> Result<()> {
        self.server.start()?;
        self.wait_ready()
    }
}

/// A ZooKeeper ensemble on loopback ports, one process per node.
#[derive(Debug)]
pub struct ZkEnsemble {
    nodes: Vec<Server>,
    client_ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl ZkEnsemble {
    /// Starts `size` nodes (3 for a real quorum) and waits until every one is a leader or a
    /// follower.
    pub fn start(size: usize) -> Result<Self> {
        let java = zk_java()?;
        with_retries(|| {
            let dir = temp_dir("zk-ensemble")?;
            let client_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
            let peers: String =
                (1..=size).map(|id| format!("server.{id}=127.0.0.1:{}:{}\n", free_port(), free_port())).collect();
            let mut nodes = Vec::new();
            for (i, &port) in client_ports.iter().enumerate() {
                let node_dir = dir.path().join(format!("node{}", i + 1));
                let data = node_dir.join("data");
                std::fs::create_dir_all(&data).map_err(|e| err(format!("zk data dir: {e}")))?;
                std::fs::write(data.join("myid"), format!("{}\n", i + 1)).map_err(|e| err(format!("myid: {e}")))?;
                let cfg = node_dir.join("zoo.cfg");
                std::fs::write(&cfg, zk_cfg(&data, port, &peers)).map_err(|e| err(format!("zoo.cfg: {e}")))?;
                let args = zk_args("org.apache.zookeeper.server.quorum.QuorumPeerMain", &cfg);
                nodes.push(Server::new(
                    format!("zookeeper node {} :{port}", i + 1),
                    java.clone(),
                    args,
                    node_dir.join("zk.log"),
                ));
            }
            let mut ensemble = ZkEnsemble { nodes, client_ports, _dir: dir };
            for node in &mut ensemble.nodes {
                node.start()?;
            }
            for i in 0..size {
                ensemble.wait_serving(i)?;
            }
            Ok(ensemble)
        })
    }

    fn wait_serving(&mut self, index: usize) -> Result<()> {
        let port = self.client_ports[index];
        self.nodes[index].wait_ready(|| zk_mode(port).is_some_and(|m| m == "leader" || m == "follower"))
    }

    /// The connect string naming every node: `127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`.
    pub fn connect_string(&self) -> String {
        self.client_ports.iter().map(|p| format!("127.0.0.1:{p}")).collect::<Vec<_>>().join(",")
    }

    /// Each node's client port.
    pub fn client_ports(&self) -> &[u16] {
        &self.client_ports
    }

    /// The index of the node that is leader now, if one is.
    pub fn leader(&self) -> Option<usize> {
        self.client_ports.iter().position(|&p| zk_mode(p).as_deref() == Some("leader"))
    }

    /// Stops one node (SIGKILL).
    pub fn stop(&mut self, index: usize) {
        self.nodes[index].stop();
    }

    /// Starts a stopped node again and waits until it serves as leader or follower.
    pub fn restart(&mut self, index: usize) -> Result<()> {
        self.nodes[index].start()?;
        self.wait_serving(index)
    }
}

// ----- etcd -----

/// True when the etcd member on `port` answers `GET /health` with `{"health":"true"}`.
pub fn etcd_healthy(port: u16) -> bool {
    let request = format!("GET /health HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    tcp_ask(loopback(port), request.as_bytes(), |_| false)
        .is_some_and(|a| String::from_utf8_lossy(&a).contains("\"health\":\"true\""))
}

/// A private single-member `etcd` with fast elections.
#[derive(Debug)]
pub struct EtcdServer {
    server: Server,
    client_port: u16,
    _dir: tempfile::TempDir,
}

impl EtcdServer {
    /// Starts it and waits until `/health` says it is healthy.
    pub fn start() -> Result<Self> {
        let etcd = require_binary("etcd", "etcd-server")?;
        with_retries(|| {
            let dir = temp_dir("etcd")?;
            let (client_port, peer_port) = (free_port(), free_port());
            let client = format!("http://127.0.0.1:{client_port}");
            let peer = format!("http://127.0.0.1:{peer_port}");
            let args: Vec<String> = [
                "--name",
                "n1",
                "--data-dir",
                &dir.path().join("data").display().to_string(),
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
                "--initial-cluster",
                &format!("n1={peer}"),
                "--initial-cluster-state",
                "new",
                "--heartbeat-interval=10",
                "--election-timeout=100",
                "--logger=zap",
                "--log-outputs=stderr",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            let server = Server::new(format!("etcd :{client_port}"), etcd.clone(), args, dir.path().join("etcd.log"));
            let mut etcd = EtcdServer { server, client_port, _dir: dir };
            etcd.server.start()?;
            etcd.wait_ready()?;
            Ok(etcd)
        })
    }

    fn wait_ready(&mut self) -> Result<()> {
        let port = self.client_port;
        self.server.wait_ready(|| etcd_healthy(port))
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.client_port
    }

    /// The client endpoint `127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// Stops the server (SIGKILL).
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// Starts it again with the same data and waits until it is healthy.
    pub fn restart(&mut self) -> Result<()> {
        self.server.start()?;
        self.wait_ready()
    }
}

/// An etcd cluster of several members on loopback ports.
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<Server>,
    client_ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl EtcdCluster {
    /// Starts `size` members and waits until each is healthy.
    pub fn start(size: usize) -> Result<Self> {
        let etcd = require_binary("etcd", "etcd-server")?;
        with_retries(|| {
            let dir = temp_dir("etcd-cluster")?;
            let ports: Vec<(u16, u16)> = (0..size).map(|_| (free_port(), free_port())).collect();
            let cluster: Vec<String> =
                ports.iter().enumerate().map(|(i, (_, peer))| format!("n{}=http://127.0.0.1:{peer}", i + 1)).collect();
            let cluster = cluster.join(",");
            let mut members = Vec::new();
            for (i, (client, peer)) in ports.iter().enumerate() {
                let name = format!("n{}", i + 1);
                let client_url = format!("http://127.0.0.1:{client}");
                let peer_url = format!("http://127.0.0.1:{peer}");
                let args: Vec<String> = [
                    "--name",
                    &name,
                    "--data-dir",
                    &dir.path().join(&name).display().to_string(),
                    "--listen-client-urls",
                    &client_url,
                    "--advertise-client-urls",
                    &client_url,
                    "--listen-peer-urls",
                    &peer_url,
                    "--initial-advertise-peer-urls",
                    &peer_url,
                    "--initial-cluster",
                    &cluster,
                    "--initial-cluster-state",
                    "new",
                    "--initial-cluster-token",
                    "confo-test",
                    // Fast elections, with room for a loaded 2-core machine.
                    "--heartbeat-interval=50",
                    "--election-timeout=500",
                    "--logger=zap",
                    "--log-outputs=stderr",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                members.push(Server::new(
                    format!("etcd {name} :{client}"),
                    etcd.clone(),
                    args,
                    dir.path().join(format!("{name}.log")),
                ));
            }
            let mut cluster = EtcdCluster { members, client_ports: ports.iter().map(|(c, _)| *c).collect(), _dir: dir };
            for member in &mut cluster.members {
                member.start()?;
            }
            for i in 0..size {
                cluster.wait_healthy(i)?;
            }
            Ok(cluster)
        })
    }

    fn wait_healthy(&mut self, index: usize) -> Result<()> {
        let port = self.client_ports[index];
        self.members[index].wait_ready(|| etcd_healthy(port))
    }

    /// The client endpoints, `127.0.0.1:P1,127.0.0.1:P2,…`.
    pub fn endpoints(&self) -> String {
        self.client_ports.iter().map(|p| format!("127.0.0.1:{p}")).collect::<Vec<_>>().join(",")
    }

    /// Each member's client port.
    pub fn client_ports(&self) -> &[u16] {
        &self.client_ports
    }

    /// The index of the member that leads now, if a running member says so.
    pub fn leader(&self) -> Option<usize> {
        self.client_ports.iter().position(|&port| {
            let body = "{}";
            let request = format!(
                "POST /v3/maintenance/status HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let Some(answer) = tcp_ask(loopback(port), request.as_bytes(), |_| false) else { return false };
            let text = String::from_utf8_lossy(&answer);
            let field = |name: &str| {
                let start = text.find(&format!("\"{name}\":\""))? + name.len() + 4;
                text[start..].split('"').next().map(str::to_owned)
            };
            matches!((field("member_id"), field("leader")), (Some(me), Some(leader)) if me == leader)
        })
    }

    /// Stops one member (SIGKILL).
    pub fn stop(&mut self, index: usize) {
        self.members[index].stop();
    }

    /// Starts a stopped member again (same data) and waits until it is healthy.
    pub fn restart(&mut self, index: usize) -> Result<()> {
        self.members[index].start()?;
        self.wait_healthy(index)
    }
}
