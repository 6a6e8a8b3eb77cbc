//! Connecting to servers that are not (yet) what they should be, on every network engine:
//! nothing listening, listening but not serving yet, silent, another protocol, TLS on one side
//! only, an absurd host. Each fails within the documented 3 s connect timeout (or succeeds
//! once the server serves), with a sentence about the store.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use confo::{BackendSpec, Error};

/// How a fake server treats each connection.
#[derive(Clone, Copy)]
enum Fake {
    /// Accepts and closes at once (a server still starting).
    Close,
    /// Accepts and never answers.
    Silent,
    /// Answers anything with an HTTP/1.1 error.
    Http,
}

/// A listener on a loopback port that behaves as told until dropped.
struct FakeServer {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl FakeServer {
    fn start(fake: Fake) -> Self {
        Self::start_then(fake, Duration::MAX, None)
    }

    /// Behaves as `fake` until `for_how_long` has passed, then forwards to `then` (if any).
    fn start_then(fake: Fake, for_how_long: Duration, then: Option<u16>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let started = Instant::now();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            // Bounded: a test never runs this long.
            while !stopped.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(120) {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                match (started.elapsed() < for_how_long, then) {
                    (false, Some(real)) => forward(stream, real),
                    _ => match fake {
                        Fake::Close => drop(stream),
                        Fake::Silent => held.push(stream),
                        Fake::Http => {
                            std::thread::spawn(move || {
                                let mut buf = [0u8; 4096];
                                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                                let _ = stream.read(&mut buf);
                                let _ = stream.write_all(
                                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                                );
                            });
                        }
                    },
                }
            }
        });
        FakeServer { port, stop }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Copies bytes both ways between `client` and the real server until either side closes.
fn forward(client: TcpStream, real: u16) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", real)) else { return };
    let (mut c2, mut s2) = (client.try_clone().expect("clone"), server.try_clone().expect("clone"));
    let (mut client, mut server) = (client, server);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut client, &mut server);
        let _ = server.shutdown(std::net::Shutdown::Both);
    });
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut s2, &mut c2);
        let _ = c2.shutdown(std::net::Shutdown::Both);
    });
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Opens `spec`; returns the error and how long it took.
async fn fails(spec: &str) -> (Error, Duration) {
    let spec: BackendSpec = spec.parse().expect("spec");
    let started = Instant::now();
    let err = spec.open().await.err().unwrap_or_else(|| panic!("{spec} opened"));
    (err, started.elapsed())
}

fn schemes(port: u16) -> [(&'static str, String); 3] {
    [
        ("Redis", format!("redis://127.0.0.1:{port}")),
        ("ZooKeeper", format!("zk://127.0.0.1:{port}")),
        ("etcd", format!("etcd://127.0.0.1:{port}")),
    ]
}

#[tokio::test]
async fn nothing_listening_fails_at_once() {
    let port = free_port();
    for (_, spec) in schemes(port) {
        let (err, took) = fails(&spec).await;
        assert!(matches!(err, Error::Unavailable { .. }) && err.to_string().contains("connection refused"), "{err}");
        assert!(took < Duration::from_secs(1), "{spec}: {took:?}");
    }
}

#[tokio::test]
async fn silent_and_closing_servers_fail_within_the_connect_timeout() {
    let (silent, closing) = (FakeServer::start(Fake::Silent), FakeServer::start(Fake::Close));
    let mut checks = Vec::new();
    for server in [&silent, &closing] {
        for (engine, spec) in schemes(server.port) {
            checks.push(async move {
                let (err, took) = fails(&spec).await;
                let text = err.to_string();
                assert!(text.contains(&format!("no {engine} answer within 3 s")), "{spec}: {text}");
                assert!(!text.contains("tonic") && !text.contains("no available hosts"), "{text}");
                assert!(took >= Duration::from_millis(2500) && took < Duration::from_millis(4500), "{spec}: {took:?}");
            });
        }
    }
    futures_join(checks).await;
}

#[tokio::test]
async fn another_protocol_or_tls_mismatch_says_so() {
    let http = FakeServer::start(Fake::Http);
    let port = http.port;
    for (spec, says) in [
        (format!("redis://127.0.0.1:{port}"), "something other than the Redis protocol"),
        (format!("etcd://127.0.0.1:{port}"), "something other than etcd's gRPC"),
        (format!("rediss://127.0.0.1:{port}"), "TLS handshake failed"),
    ] {
        let (err, took) = fails(&spec).await;
        let text = err.to_string();
        assert!(
            text.contains(says) && !text.contains("Parse error") && !text.contains("Unexpected `"),
            "{spec}: {text}"
        );
        // Said as data too: trying again cannot help.
        assert!(
            matches!(err, confo::Error::Unavailable { outage: confo::model::error::Outage::Mismatch, .. }),
            "{spec}: {err:?}"
        );
        assert!(!err.is_retryable(), "{spec}");
        assert!(took < Duration::from_millis(4500), "{spec}: {took:?}");
    }
    // A plain client to a TLS server: the server closes on it; said within the timeout.
    let (tls, _ca) = confo_testkit::RedisServer::start_tls().expect("redis-server with TLS");
    let (err, took) = fails(&format!("redis://127.0.0.1:{}", tls.port())).await;
    assert!(err.to_string().contains("a TLS port, or not one?"), "{err}");
    assert!(took < Duration::from_millis(4500), "{took:?}");
}

#[tokio::test]
async fn a_server_still_starting_is_waited_for() {
    // For its first second the port accepts and closes, as a starting server does; then it
    // serves. Both engines that the issue saw fail at once now wait and connect.
    let zk = confo_testkit::ZkServer::shared().expect("zookeeper");
    let redis = confo_testkit::RedisServer::start().expect("redis-server");
    let zk_port: u16 = zk.connect_string().rsplit(':').next().expect("port").parse().expect("port");
    for (scheme, real) in [("zk", zk_port), ("redis", redis.port())] {
        let starting = FakeServer::start_then(Fake::Close, Duration::from_millis(1000), Some(real));
        let spec: BackendSpec = format!("{scheme}://127.0.0.1:{}", starting.port).parse().expect("spec");
        let started = Instant::now();
        let backend = spec.open().await.unwrap_or_else(|e| panic!("{scheme}: {e}"));
        assert!(started.elapsed() >= Duration::from_millis(900), "{scheme}: it did wait");
        backend.list_namespaces().await.expect("serves");
    }
}

#[tokio::test]
async fn an_absurd_host_is_shortened_in_messages() {
    let host = "h".repeat(100_000);
    for spec in [format!("redis://{host}:6379"), format!("zk://{host}:2181"), format!("etcd://{host}:2379")] {
        let (err, took) = fails(&spec).await;
        let text = err.to_string();
        assert!(text.len() < 1000 && text.contains("100000 characters"), "{}", &text[..text.len().min(300)]);
        assert!(took < Duration::from_millis(4500), "{took:?}");
    }
}

/// Runs the futures together (each check waits out a timeout; one after another would be slow).
async fn futures_join(checks: Vec<impl std::future::Future<Output = ()> + Send + 'static>) {
    let handles: Vec<_> = checks.into_iter().map(tokio::spawn).collect();
    for handle in handles {
        if let Err(e) = handle.await {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}
