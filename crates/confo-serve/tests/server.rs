//! The server on real loopback sockets: TLS, slow and idle clients, the connection bound,
//! graceful shutdown; and a backend that goes down mid-request (503, nothing half-written).

use std::sync::Arc;
use std::time::{Duration, Instant};

use confo::Store;
use confo_serve::auth::{Role, TokenFile, Tokens};
use confo_serve::listen::{serve, tls_config, Limits};
use confo_serve::{router, App, Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Running {
    address: std::net::SocketAddr,
    token: String,
    stop: tokio::sync::watch::Sender<bool>,
    served: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn start(spec: Option<String>, limits: Limits, tls: Option<Arc<rustls::ServerConfig>>) -> Running {
    start_with(spec, limits, tls, Settings::default()).await
}

async fn start_with(
    spec: Option<String>,
    limits: Limits,
    tls: Option<Arc<rustls::ServerConfig>>,
    settings: Settings,
) -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = spec.unwrap_or_else(|| {
        let root = dir.path().join("Configurations");
        std::fs::create_dir(&root).expect("store");
        format!("file:{}", root.display())
    });
    let mut file = TokenFile::default();
    let token = file.add("ops", vec![Role::Admin], "*", "*").expect("token");
    let path = dir.path().join("tokens.json");
    file.save(&path).expect("tokens");
    let store = Store::open(&spec.parse().expect("spec")).await.expect("store");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let app = App::new(
        vec![("main".into(), store)],
        Some(Tokens::open(&path).expect("tokens")),
        None,
        settings,
        stopped.clone(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let mut stopped = stopped;
    let served = tokio::spawn(serve(listener, router(app), tls, limits, async move {
        let _ = stopped.wait_for(|s| *s).await;
    }));
    Running { address, token, stop, served, _dir: dir }
}

/// Sends one request on a new connection and returns the whole answer (the server closes).
async fn ask(address: std::net::SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer))
        .await
        .expect("an answer")
        .expect("read");
    String::from_utf8_lossy(&answer).into_owned()
}

fn get(path: &str, token: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n")
}

#[tokio::test]
async fn a_slow_client_is_cut_off_and_idle_connections_do_not_starve_others() {
    let limits = Limits { max_connections: 20, header_timeout: Duration::from_millis(500), ..Limits::default() };
    let server = start(None, limits, None).await;
    // Half a request line, then nothing: closed after the header timeout.
    let mut slow = TcpStream::connect(server.address).await.expect("connect");
    slow.write_all(b"GET /api/v1/namespa").await.expect("send");
    let started = Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the slow client was not cut off within 5 s");
    assert!(started.elapsed() >= Duration::from_millis(400), "cut off only after the timeout");

    // 200 idle connections against a bound of 20: a real request still gets its answer, once
    // idle ones time out (each round of 20 takes the 0.5 s timeout).
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(TcpStream::connect(server.address).await.expect("connect"));
    }
    let started = Instant::now();
    let answer = ask(server.address, &get("/api/v1/namespaces", &server.token)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(15), "served within the bound's rounds");
    drop(idle);
}

#[tokio::test]
async fn shutdown_ends_event_streams_and_stops_accepting() {
    let server = start(None, Limits::default(), None).await;
    let answer = ask(
        server.address,
        &format!(
            "PUT /api/v1/namespaces/sales HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            server.token
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let mut events = TcpStream::connect(server.address).await.expect("connect");
    events.write_all(get("/api/v1/namespaces/sales/events", &server.token).as_bytes()).await.expect("send");
    let mut head = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), events.read(&mut head)).await.expect("headers").expect("read");
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 200"));
    let started = Instant::now();
    server.stop.send(true).expect("stop");
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), events.read_to_end(&mut rest))
        .await
        .expect("the stream ended")
        .expect("read");
    tokio::time::timeout(Duration::from_secs(5), server.served).await.expect("the server finished").expect("no panic");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(TcpStream::connect(server.address).await.is_err(), "no longer accepting");
}

#[tokio::test]
async fn tls_serves_https_and_refuses_plain_http() {
    let openssl = confo_testkit::require_binary("openssl", "openssl").expect("openssl");
    let certs = tempfile::tempdir().expect("tempdir");
    confo_testkit::make_test_certificates(&openssl, certs.path()).expect("certificates");
    let config = tls_config(&certs.path().join("server.pem"), &certs.path().join("server.key")).expect("tls");
    let server = start(None, Limits::default(), Some(config)).await;

    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(certs.path().join("ca.pem")).expect("ca");
    for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(&ca) {
        roots.add(cert.expect("pem")).expect("root");
    }
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let tcp = TcpStream::connect(server.address).await.expect("connect");
    let name = rustls_pki_types::ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    let mut tls = connector.connect(name, tcp).await.expect("handshake");
    tls.write_all(get("/api/v1/namespaces", &server.token).as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut answer)).await.expect("answer").ok();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"namespaces\""));

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = ask(server.address, &get("/api/v1/namespaces", &server.token)).await;
    assert!(!plain.contains("200 OK"));
    assert!(tls_config(&certs.path().join("missing.pem"), &certs.path().join("server.key")).is_err());
    assert!(tls_config(&certs.path().join("server.key"), &certs.path().join("server.key")).is_err());
}

#[tokio::test]
async fn a_backend_that_goes_down_gives_503_and_nothing_half_written() {
    // Kept on disk, so what was written survives the kill.
    let mut redis = confo_testkit::RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"])
        .expect("redis-server");
    let server = start(Some(redis.url()), Limits::default(), None).await;
    let put = |body: &str| {
        format!(
            "PUT /api/v1/namespaces/sales/configurations/db HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            server.token,
            body.len()
        )
    };
    let created = ask(
        server.address,
        &format!("PUT /api/v1/namespaces/sales HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", server.token),
    )
    .await;
    assert!(created.starts_with("HTTP/1.1 201"), "{created}");
    assert!(ask(server.address, &put(r#"{"n": 1}"#)).await.starts_with("HTTP/1.1 201"));
    redis.stop();
    let down = ask(server.address, &put(r#"{"n": 2}"#)).await;
    assert!(down.starts_with("HTTP/1.1 503"), "{down}");
    assert!(down.contains("application/problem+json") && down.contains("\"kind\":\"unavailable\""), "{down}");
    assert!(down.to_ascii_lowercase().contains("retry-after"));
    redis.restart().expect("restart");
    // Back: the stored value is the last one written whole.
    let mut answer = String::new();
    for _ in 0..50 {
        answer = ask(server.address, &get("/api/v1/namespaces/sales/configurations/db", &server.token)).await;
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with(r#"{"n":1}"#), "{answer}");
}

/// Opens an event stream and returns the connection once its answer's status line is read.
async fn open_stream(address: std::net::SocketAddr, token: Option<&str>) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let request = format!("GET /api/v1/namespaces/sales/events HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut head = vec![0u8; 512];
    let n =
        tokio::time::timeout(Duration::from_secs(10), stream.read(&mut head)).await.expect("an answer").expect("read");
    let text = String::from_utf8_lossy(&head[..n]).into_owned();
    (stream, text)
}

/// Issue 33, item 9: event streams hold connections for as long as they last; with 20
/// connections, 20 streams of one token left a plain GET unanswered for 30 s. Streams have a
/// limit of their own (and per token, and per anonymous address): beyond, 429 with
/// Retry-After, and ordinary requests are still answered.
#[tokio::test]
async fn event_streams_never_take_the_connections_ordinary_requests_need() {
    use confo_serve::auth::StreamLimits;
    let limits = Limits { max_connections: 20, ..Limits::default() };
    let settings = Settings {
        anonymous_read: true,
        streams: StreamLimits { max: 5, per_token: 3, per_address: 2 },
        ..Settings::default()
    };
    let server = start_with(None, limits, None, settings).await;
    let created = ask(
        server.address,
        &format!(
            "PUT /api/v1/namespaces/sales HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            server.token
        ),
    )
    .await;
    assert!(created.starts_with("HTTP/1.1 201"), "{created}");
    let mut open = Vec::new();
    // Per token: 3, then 429.
    for _ in 0..3 {
        let (stream, head) = open_stream(server.address, Some(&server.token)).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        open.push(stream);
    }
    let (_, head) = open_stream(server.address, Some(&server.token)).await;
    assert!(head.starts_with("HTTP/1.1 429") && head.to_ascii_lowercase().contains("retry-after"), "{head}");
    assert!(head.contains("too_many_streams") || head.contains("problem+json"), "{head}");
    // Per anonymous address: 2, then 429; and the server's 5 in all are then taken.
    for _ in 0..2 {
        let (stream, head) = open_stream(server.address, None).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        open.push(stream);
    }
    let (_, head) = open_stream(server.address, None).await;
    assert!(head.starts_with("HTTP/1.1 429"), "{head}");
    // Ordinary requests are answered at once, many of them.
    for _ in 0..10 {
        let started = Instant::now();
        let answer = ask(server.address, &get("/api/v1/namespaces", &server.token)).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    // A stream that ends gives its place back.
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (stream, head) = open_stream(server.address, None).await;
        if head.starts_with("HTTP/1.1 200") {
            open.push(stream);
            break;
        }
        assert!(Instant::now() < deadline, "the closed stream's place was not given back: {head}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A stream lasts while its token does: removing the token ends it (within the 15 s between
/// looks).
#[tokio::test]
async fn an_event_stream_ends_when_its_token_is_removed() {
    let server = start(None, Limits::default(), None).await;
    let created = ask(
        server.address,
        &format!(
            "PUT /api/v1/namespaces/sales HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            server.token
        ),
    )
    .await;
    assert!(created.starts_with("HTTP/1.1 201"), "{created}");
    let (mut stream, head) = open_stream(server.address, Some(&server.token)).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let path = server._dir.path().join("tokens.json");
    let mut file = TokenFile::load(&path).expect("load");
    assert!(file.remove("ops"));
    file.save(&path).expect("save");
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(40), stream.read_to_end(&mut rest))
        .await
        .expect("the stream ended after its token was removed")
        .expect("read");
}
