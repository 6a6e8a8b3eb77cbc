//! Private `etcd` members: one, or a 3-member cluster.

// The harness pieces (Server, temp folders, ports, readiness probes) and the std items they use.
use crate::harness::*;

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
