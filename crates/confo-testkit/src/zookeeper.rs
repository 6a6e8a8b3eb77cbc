//! Private ZooKeeper servers: standalone and a 3-node ensemble.

use std::path::{Path, PathBuf};

// The harness pieces (Server, temp folders, ports, readiness probes) and the std items they use.
use crate::harness::*;

const ZK_JAR: &str = "/usr/share/java/zookeeper.jar";

fn zk_java() -> Result<PathBuf> {
    let java = require_binary("java", "zookeeper")?;
    require_binary(ZK_JAR, "zookeeper")?;
    Ok(java)
}

/// The server's heap: `CONFO_ZK_HEAP` (a JVM size such as `1g`), else 256 MB, plenty for tests;
/// benchmarks that keep hundreds of thousands of znodes ask for more.
fn zk_heap() -> String {
    format!("-Xmx{}", std::env::var("CONFO_ZK_HEAP").unwrap_or_else(|_| "256m".into()))
}

fn zk_args(main_class: &str, cfg: &Path) -> Vec<String> {
    [
        zk_heap().as_str(),
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
