//! Private `redis-server`s: plain, TLS, ACL users, a Sentinel group.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

// The harness pieces (Server, temp folders, ports, readiness probes) and the std items they use.
use crate::harness::*;

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
            make_test_certificates(&openssl, d)?;
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

/// A fresh CA (`ca.pem`) and a server certificate it signed (`server.pem`, `server.key`; SAN
/// `IP:127.0.0.1`), made with `openssl` in `d`.
pub fn make_test_certificates(openssl: &Path, d: &Path) -> Result<()> {
    let run = |args: &[&str]| -> Result<()> {
        let out = Command::new(openssl).args(args).current_dir(d).output().map_err(|e| err(format!("openssl: {e}")))?;
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
    std::fs::write(d.join("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").map_err(|e| err(e.to_string()))?;
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
    Ok(())
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

/// A private Redis Cluster on loopback: `masters` masters with `replicas` replicas each
/// (`redis-server --cluster-enabled yes`, joined with `redis-cli --cluster create`), started and
/// stopped by the tests; every slot covered before `start` returns.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    /// Each node's TLS port, with TLS.
    tls_ports: Vec<u16>,
    /// The CA's PEM file and the folder of the certificates, with TLS.
    tls: Option<(PathBuf, tempfile::TempDir)>,
}

/// How clients reach a test cluster besides its plain ports (which the testkit's own probes use).
#[derive(Debug, Clone, Default)]
pub struct ClusterAccess {
    /// An ACL user (name, password) with every right, also used between the nodes.
    pub user: Option<(String, String)>,
    /// A TLS port on every node (and TLS on the cluster bus and replication), with a CA made
    /// at start.
    pub tls: bool,
}

impl RedisCluster {
    /// Starts the nodes and forms the cluster (3 masters, 1 replica each: `start(3, 1)`).
    pub fn start(masters: usize, replicas: usize) -> Result<Self> {
        Self::start_with(masters, replicas, &ClusterAccess::default())
    }

    /// [`RedisCluster::start`] with an ACL user and/or TLS.
    pub fn start_with(masters: usize, replicas: usize, access: &ClusterAccess) -> Result<Self> {
        let cli = require_binary("redis-cli", "redis-tools (installed with redis-server)")?;
        let tls = if access.tls {
            let openssl = require_binary("openssl", "openssl")?;
            let dir = temp_dir("redis-cluster-tls")?;
            make_test_certificates(&openssl, dir.path())?;
            Some((dir.path().join("ca.pem"), dir))
        } else {
            None
        };
        let mut nodes = Vec::new();
        let mut tls_ports = Vec::new();
        for _ in 0..masters * (1 + replicas) {
            // The bus port is chosen too: port + 10000 may be taken, or beyond 65535.
            let bus = free_port().to_string();
            let mut args: Vec<String> = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
                "--cluster-port",
                &bus,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            if let Some((user, password)) = &access.user {
                for arg in ["--user", user, "on", &format!(">{password}"), "~*", "&*", "+@all"] {
                    args.push(arg.to_owned());
                }
                for arg in ["--masteruser", user, "--masterauth", password] {
                    args.push(arg.to_owned());
                }
            }
            if let Some((_, dir)) = &tls {
                let port = free_port();
                tls_ports.push(port);
                let file = |f: &str| dir.path().join(f).display().to_string();
                for arg in [
                    "--tls-port",
                    &port.to_string(),
                    "--tls-cert-file",
                    &file("server.pem"),
                    "--tls-key-file",
                    &file("server.key"),
                    "--tls-ca-cert-file",
                    &file("ca.pem"),
                    "--tls-auth-clients",
                    "no",
                    "--tls-cluster",
                    "yes",
                    "--tls-replication",
                    "yes",
                ] {
                    args.push(arg.to_owned());
                }
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            nodes.push(RedisServer::start_with(&args)?);
        }
        let addresses: Vec<String> = match &tls {
            Some(_) => tls_ports.iter().map(|p| format!("127.0.0.1:{p}")).collect(),
            None => nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())).collect(),
        };
        let tls_args: Vec<String> = match &tls {
            Some((ca, _)) => vec!["--tls".into(), "--cacert".into(), ca.display().to_string()],
            None => Vec::new(),
        };
        let out = if masters >= 3 {
            Command::new(&cli)
                .args(&tls_args)
                .args(["--cluster", "create"])
                .args(&addresses)
                .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
                .output()
        } else if masters == 1 && replicas == 0 {
            // (`--cluster create` wants three masters: one node takes every slot itself.)
            let port = nodes[0].port().to_string();
            Command::new(&cli).args(["-p", &port, "CLUSTER", "ADDSLOTSRANGE", "0", "16383"]).output()
        } else {
            return Err(err("a cluster has 1 master without replicas, or at least 3 masters"));
        }
        .map_err(|e| err(format!("redis-cli --cluster create: {e}")))?;
        if !out.status.success() {
            return Err(err(format!("redis-cli --cluster create failed: {}", String::from_utf8_lossy(&out.stdout))));
        }
        let mut cluster = RedisCluster { nodes, tls_ports, tls };
        // And every replica in sync with its master (else a `WAIT` right away counts none).
        for i in 0..cluster.nodes.len() {
            let addr = loopback(cluster.nodes[i].port());
            if cluster.role(i).as_deref() == Some("slave") {
                cluster.nodes[i].server.wait_ready(|| {
                    tcp_ask(addr, b"INFO replication\r\n", |a| a.len() > 100 && a.ends_with(b"\r\n"))
                        .is_some_and(|a| String::from_utf8_lossy(&a).contains("master_link_status:up"))
                })?;
            }
        }
        // Every node must see every slot served before clients come.
        for i in 0..cluster.nodes.len() {
            let addr = loopback(cluster.nodes[i].port());
            cluster.nodes[i].server.wait_ready(|| {
                tcp_ask(addr, b"CLUSTER INFO\r\n", |a| a.len() > 40)
                    .is_some_and(|a| String::from_utf8_lossy(&a).contains("cluster_state:ok"))
            })?;
        }
        Ok(cluster)
    }

    /// A cluster shared by the tests of one binary that run at the same time (one per shape):
    /// it starts with the first caller and stops when the last holder drops it. Use a
    /// namespace per test.
    pub fn shared(masters: usize, replicas: usize) -> Result<std::sync::Arc<RedisCluster>> {
        type Shapes = Vec<((usize, usize), std::sync::Weak<RedisCluster>)>;
        static SHARED: std::sync::Mutex<Shapes> = std::sync::Mutex::new(Vec::new());
        let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        shared.retain(|(_, weak)| weak.strong_count() > 0);
        if let Some(cluster) =
            shared.iter().find(|(shape, _)| *shape == (masters, replicas)).and_then(|s| s.1.upgrade())
        {
            return Ok(cluster);
        }
        let cluster = std::sync::Arc::new(RedisCluster::start(masters, replicas)?);
        shared.push(((masters, replicas), std::sync::Arc::downgrade(&cluster)));
        Ok(cluster)
    }

    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,…` (every node as a seed), or with TLS
    /// `rediss+cluster://127.0.0.1:T1,…?tls_ca=CA`.
    pub fn url(&self) -> String {
        match &self.tls {
            Some((ca, _)) => {
                let nodes: Vec<String> = self.tls_ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
                format!("rediss+cluster://{}?tls_ca={}", nodes.join(","), ca.display())
            }
            None => format!("redis+cluster://{}", self.nodes()),
        }
    }

    /// Node `index`'s role (`master` or `slave`), if it answers.
    pub fn role(&self, index: usize) -> Option<String> {
        let answer = tcp_ask(loopback(self.nodes[index].port()), b"ROLE\r\n", |a| a.len() > 12)?;
        let text = String::from_utf8_lossy(&answer).into_owned();
        text.lines().find(|l| !l.starts_with(['*', '$', ':'])).map(|l| l.trim().to_owned())
    }

    /// Every node's address, `127.0.0.1:P1,127.0.0.1:P2,…`.
    pub fn nodes(&self) -> String {
        self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())).collect::<Vec<_>>().join(",")
    }

    /// The nodes' ports, in start order.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisServer::port).collect()
    }

    /// Kills node `index` (SIGKILL).
    pub fn stop(&mut self, index: usize) {
        self.nodes[index].stop();
    }

    /// Starts node `index` again (same port and `nodes.conf`: it rejoins the cluster, as a
    /// replica if its slots failed over meanwhile).
    pub fn restart(&mut self, index: usize) -> Result<()> {
        self.nodes[index].restart()
    }
}
