//! `confo token` and `confo serve`, the real binary: tokens printed once and kept hashed,
//! the server started on a free port over two backends, refused without tokens, stopped
//! gracefully by SIGTERM.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::Env;

fn ask(address: &str, request: &str) -> String {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    answer
}

fn request(method: &str, path: &str, token: &str, body: Option<&str>) -> String {
    let body = body.unwrap_or("");
    format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Starts `confo ARGS serve …` and returns it with the address it printed.
fn serve(env: &Env, args: &[&str]) -> (Child, String) {
    let mut child = env.command(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read");
    let address = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    (child, address)
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("confo serve did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn tokens_are_printed_once_and_kept_hashed() {
    let env = Env::new();
    let out = env.run(&["token", "add", "ci", "--role", "read,write", "--namespaces", "sales-*"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).expect("utf-8").trim().to_owned();
    assert!(token.starts_with("confo_") && token.len() > 40, "{token}");
    let file = std::fs::read_to_string(env.path("tokens.json")).expect("tokens file");
    assert!(!file.contains(&token), "the file keeps only the hash");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(env.path("tokens.json")).expect("meta").permissions().mode();
        assert_eq!(mode & 0o077, 0, "readable by its owner only");
    }
    let listed = env.ok(&["token", "ls"]);
    assert!(listed.contains("ci\tread,write\tnamespaces=sales-*"), "{listed}");
    assert!(!listed.contains(&token));
    let json = env.ok(&["token", "ls", "--output", "json"]);
    assert!(json.contains("\"roles\"") && !json.contains("sha256"), "{json}");
    assert!(env.fails(&["token", "add", "ci", "--role", "read"], 2).contains("exists"));
    assert!(env.fails(&["token", "add", "x", "--role", "root"], 2).contains("unknown role"));
    env.ok(&["token", "rm", "ci"]);
    env.fails(&["token", "rm", "ci"], 3);
}

#[test]
fn serve_refuses_to_start_without_tokens_unless_anonymous_reading() {
    let env = Env::new();
    let out = env.run(&["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(5));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("confo token add"), "{stderr}");
    assert_eq!(env.run(&["-b", "file:./a", "-b", "file:./b", "ls", "x"]).status.code(), Some(2), "one -b elsewhere");
    let (mut child, address) = serve(&env, &["serve", "--listen", "127.0.0.1:0", "--anonymous-read"]);
    let read = ask(&address, "GET /api/v1/namespaces HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    assert!(read.starts_with("HTTP/1.1 200"), "{read}");
    let write = ask(
        &address,
        "PUT /api/v1/namespaces/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert!(write.starts_with("HTTP/1.1 401"), "{write}");
    let _ = child.kill();
    let _ = child.wait();
}

/// DNS rebinding (issue 33): a page whose name was rebound to the server's address sends its
/// own name as `Host`: 421, unless the name was given with --allowed-host.
#[test]
fn serve_answers_only_the_host_names_it_is_reachable_as() {
    let env = Env::new();
    assert_eq!(env.run(&["serve", "--anonymous-read", "--allowed-host", "http://x/"]).status.code(), Some(2));
    let (mut child, address) = serve(
        &env,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--anonymous-read",
            "--allowed-host",
            "Confo.Example",
            "--allowed-host",
            "ops",
        ],
    );
    let port = address.rsplit(':').next().expect("port");
    let read = |host: &str| {
        ask(&address, &format!("GET /api/v1/namespaces HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"))
    };
    for host in [format!("attacker.example:{port}"), "attacker.example".into(), format!("10.0.0.1:{port}")] {
        let answer = read(&host);
        assert!(answer.starts_with("HTTP/1.1 421"), "{host}: {answer}");
        assert!(answer.contains("application/problem+json") && answer.contains("misdirected_request"), "{answer}");
    }
    for host in
        [format!("127.0.0.1:{port}"), format!("localhost:{port}"), "confo.example".into(), format!("ops:{port}")]
    {
        let answer = read(&host);
        assert!(answer.starts_with("HTTP/1.1 200"), "{host}: {answer}");
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn serve_two_backends_and_stop_gracefully_on_sigterm() {
    let env = Env::new();
    std::fs::create_dir(env.path("other")).expect("mkdir");
    let token = env.ok(&["token", "add", "ops", "--role", "admin"]).trim().to_owned();
    let (mut child, address) =
        serve(&env, &["-b", "main=file:./Configurations", "-b", "file:./other", "serve", "--listen", "127.0.0.1:0"]);
    let backends = ask(&address, &request("GET", "/api/v1/backends", &token, None));
    assert!(backends.contains("\"name\":\"main\"") && backends.contains("\"name\":\"file\""), "{backends}");
    // The first backend is /api/v1/namespaces'; the second is reached by name.
    assert!(ask(&address, &request("PUT", "/api/v1/namespaces/sales", &token, None)).starts_with("HTTP/1.1 201"));
    let put = request("PUT", "/api/v1/backends/file/namespaces/hr", &token, None);
    assert!(ask(&address, &put).starts_with("HTTP/1.1 201"));
    let cfg = request("PUT", "/api/v1/namespaces/sales/configurations/db", &token, Some(r#"{"port": 5432}"#));
    assert!(ask(&address, &cfg).starts_with("HTTP/1.1 201"));
    // What the server wrote is an ordinary confo folder: the CLI reads it.
    assert_eq!(env.ok(&["get", "sales/db", "port"]).trim(), "5432");
    assert!(env.path("other/hr").is_dir());
    // History records the token's name as the actor.
    let history = env.ok(&["history", "sales/db", "--output", "json"]);
    assert!(history.contains("\"ops\""), "{history}");
    let term = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(term.success());
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert!(status.success(), "a graceful stop exits 0: {status:?}");
}
