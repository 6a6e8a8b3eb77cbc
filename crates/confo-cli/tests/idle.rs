//! Idle costs nothing. A watcher (`confo watch`), an auto-refreshing session (the library's
//! `Confo`) and `confo serve` after one GET, left running on a file store with nothing
//! changing, open no store file and use under 50 ms of CPU in 10 s (measured with `strace`
//! attached to each process and `/proc/PID/stat`); one change costs each of them one re-read.
//!
//! The session is this test binary itself, re-run on one `#[ignore]`d test that acts only when
//! `CONFO_TEST_CHILD` is set.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::Env;

/// The child side: an auto-refreshing session that read the namespace once, then idles.
#[test]
#[ignore = "run as a child process by the test below"]
fn child_session() {
    let Ok(root) = std::env::var("CONFO_TEST_CHILD") else { return };
    let spec: confo::BackendSpec = format!("file:{root}").parse().expect("spec");
    let confo = confo::blocking::Confo::new().expect("session");
    confo.load_backend("files", &spec).expect("load");
    confo.activate_backend("files").expect("activate");
    confo.use_namespace("app").expect("use");
    confo.set_auto_refresh(true, confo::WatchOptions::default()).expect("auto-refresh");
    assert!(confo.get_field("cfg", "a").expect("get").is_some());
    println!("ready");
    std::io::stdout().flush().expect("flush");
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// CPU time (user + system) of a process so far, in clock ticks of 10 ms.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command's closing parenthesis: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

/// `strace` attached to a running process (and its threads), recording its opens.
fn attach(pid: u32, log: &Path) -> Child {
    let strace = confo_testkit::require_binary("strace", "strace").expect("strace");
    let child = Command::new(strace)
        .args(["-f", "-qq", "-e", "trace=open,openat,openat2", "-o"])
        .arg(log)
        .args(["-p", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("strace");
    // strace writes its first line once attached; give it a moment whatever it prints.
    std::thread::sleep(Duration::from_millis(500));
    child
}

/// The opens `log` recorded of paths containing `part` (the store is `Configurations`, given
/// relative to the processes' working folder or absolute: both contain that name, as does the
/// metadata folder `.Configurations.confo`).
fn opens_of(log: &Path, part: &str) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines().filter(|l| l.contains(part)).map(str::to_owned).collect()
}

fn http(address: &str, path: &str, token: &str) -> String {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    answer
}

/// Reads one line from a child's stdout.
fn first_line(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().expect("stdout")).read_line(&mut line).expect("read");
    line
}

struct Subject {
    name: &'static str,
    child: Child,
}

impl Drop for Subject {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn idle_watchers_sessions_and_servers_read_nothing() {
    let env = Env::new();
    let root = env.root();
    env.ok(&["ns", "create", "app"]);
    env.ok(&["set", "app/cfg", "a=1"]);
    env.ok(&["set", "app/other", "b=2"]);
    let token = env.ok(&["token", "add", "reader", "--role", "read"]).trim().to_owned();

    let watch = env.command(&["watch", "app"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("watch");
    let mut serve = env
        .command(&["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let line = first_line(&mut serve);
    let address = line.split("http://").nth(1).and_then(|r| r.split_whitespace().next()).expect("address").to_owned();
    let answer = http(&address, "/api/v1/namespaces/app/configurations/cfg", &token);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let mut session = Command::new(std::env::current_exe().expect("exe"))
        .args(["child_session", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env("CONFO_TEST_CHILD", &root)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("session");
    let ready = first_line(&mut session);
    let ready = if ready.contains("ready") { ready } else { first_line(&mut session) };
    assert!(ready.contains("ready"), "{ready:?}");
    let subjects = [
        Subject { name: "confo watch", child: watch },
        Subject { name: "confo serve", child: serve },
        Subject { name: "auto-refreshing session", child: session },
    ];
    // Let start-up settle, then watch each for 10 s of nothing changing.
    std::thread::sleep(Duration::from_secs(1));
    let logs: Vec<std::path::PathBuf> = (0..subjects.len()).map(|i| env.path(&format!("strace-{i}.log"))).collect();
    let mut tracers: Vec<Child> = subjects.iter().zip(&logs).map(|(s, log)| attach(s.child.id(), log)).collect();
    let before: Vec<u64> = subjects.iter().map(|s| cpu_ticks(s.child.id())).collect();
    std::thread::sleep(Duration::from_secs(10));
    let after: Vec<u64> = subjects.iter().map(|s| cpu_ticks(s.child.id())).collect();
    for ((subject, log), (b, a)) in subjects.iter().zip(&logs).zip(before.iter().zip(&after)) {
        let opened = opens_of(log, "Configurations");
        assert!(
            opened.is_empty(),
            "{} opened store files while idle: {:?}",
            subject.name,
            &opened[..opened.len().min(5)]
        );
        let ms = (a - b) * 10;
        assert!(ms < 50, "{} used {ms} ms of CPU in 10 s idle", subject.name);
    }

    // One change: each re-reads the namespace once (each of its files opened once).
    env.ok(&["set", "app/cfg", "a=2"]);
    std::thread::sleep(Duration::from_secs(2));
    for tracer in &mut tracers {
        let _ = tracer.kill();
        let _ = tracer.wait();
    }
    for (subject, log) in subjects.iter().zip(&logs) {
        let other = opens_of(log, "app/other.json").len();
        assert!(other <= 1, "{} read an unchanged file {other} times after one change", subject.name);
    }
    let watched = opens_of(&logs[0], "app/other.json").len();
    assert_eq!(watched, 1, "confo watch re-reads the namespace once after a change");
}

/// An HTTP request with a JSON body and extra headers; the whole answer.
fn send(address: &str, method: &str, path: &str, token: &str, headers: &str, body: &str) -> String {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n{headers}Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    answer
}

/// A `PUT` of one configuration through `confo serve` on the file engine opens that
/// configuration's file once: the If-Match check, the secrets kept, the history record and the
/// write all use the one read made under the folder's lock (issue 34). A `PATCH` reads it once
/// per attempt (one here).
#[test]
fn a_put_through_the_server_reads_the_configuration_once() {
    let env = Env::new();
    env.ok(&["ns", "create", "app"]);
    env.ok(&["set", "app/cfg", "a=1"]);
    let token = env.ok(&["token", "add", "writer", "--role", "write"]).trim().to_owned();
    let serve = env
        .command(&["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let mut serve = Subject { name: "confo serve", child: serve };
    let line = first_line(&mut serve.child);
    let address = line.split("http://").nth(1).and_then(|r| r.split_whitespace().next()).expect("address").to_owned();
    let log = env.path("strace-put.log");
    let mut tracer = attach(serve.child.id(), &log);
    let path = "/api/v1/namespaces/app/configurations/cfg";
    let opened = |what: &str, expected: usize, answer: &str, status: &str| {
        assert!(answer.starts_with(&format!("HTTP/1.1 {status}")), "{what}: {answer}");
        // Until strace has written what it saw.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut seen = opens_of(&log, "app/cfg.json");
        while seen.len() < expected && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            seen = opens_of(&log, "app/cfg.json");
        }
        std::thread::sleep(Duration::from_millis(300));
        seen = opens_of(&log, "app/cfg.json");
        assert_eq!(seen.len(), expected, "{what} ({} in all): {seen:#?}", serve.name);
    };
    let answer = send(&address, "PUT", path, &token, "", r#"{"a": 2}"#);
    opened("a PUT", 1, &answer, "200");
    let answer = send(&address, "PUT", path, &token, "If-Match: \"0\"\r\n", r#"{"a": 3}"#);
    opened("a PUT whose If-Match fails", 2, &answer, "412");
    let answer = send(&address, "PATCH", path, &token, "", r#"{"b": 1}"#);
    opened("a PATCH", 3, &answer, "200");
    let _ = tracer.kill();
    let _ = tracer.wait();
    let stored: serde_json::Value = serde_json::from_str(&env.ok(&["get", "app/cfg"])).expect("json");
    assert_eq!(stored, serde_json::json!({"a": 2, "b": 1}));
    let fresh = send(&address, "PUT", "/api/v1/namespaces/app/configurations/fresh", &token, "", "{}");
    assert!(fresh.starts_with("HTTP/1.1 201"), "{fresh}");
}

/// `confo set NS/CFG k=v` on the file engine opens the configuration's file once: the read,
/// the precondition, the history record and the write share the one read made under the
/// folder's lock (issue 34; it was twice).
#[test]
fn a_field_update_on_files_reads_the_configuration_once() {
    let env = Env::new();
    env.ok(&["ns", "create", "app"]);
    env.ok(&["set", "app/cfg", "a=1"]);
    let strace = confo_testkit::require_binary("strace", "strace").expect("strace");
    let log = env.path("strace-set.log");
    let confo = env.command(&["set", "app/cfg", "a=2"]);
    let status = Command::new(strace)
        .args(["-f", "-qq", "-e", "trace=open,openat,openat2", "-o"])
        .arg(&log)
        .arg(confo.get_program())
        .args(confo.get_args())
        .envs(confo.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .env_remove("CONFO_BACKEND")
        .current_dir(confo.get_current_dir().expect("dir"))
        .stdout(Stdio::null())
        .status()
        .expect("strace confo set");
    assert!(status.success());
    let opened = opens_of(&log, "app/cfg.json");
    assert_eq!(opened.len(), 1, "{opened:#?}");
    let stored: serde_json::Value = serde_json::from_str(&env.ok(&["get", "app/cfg"])).expect("json");
    assert_eq!(stored, serde_json::json!({"a": 2}));

    // The same through last-known-good snapshots (`cache+`): the wrapper hands the update to
    // the engine's one-step read-modify-write and keeps the written value in its snapshot.
    let log = env.path("strace-set-cached.log");
    let confo = env.command(&["-b", "cache+file:Configurations", "set", "app/cfg", "a=3"]);
    let status = Command::new(confo_testkit::require_binary("strace", "strace").expect("strace"))
        .args(["-f", "-qq", "-e", "trace=open,openat,openat2", "-o"])
        .arg(&log)
        .arg(confo.get_program())
        .args(confo.get_args())
        .envs(confo.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .env("XDG_CACHE_HOME", env.path("cache"))
        .current_dir(confo.get_current_dir().expect("dir"))
        .stdout(Stdio::null())
        .status()
        .expect("strace confo set");
    assert!(status.success());
    let opened = opens_of(&log, "app/cfg.json");
    assert_eq!(opened.len(), 1, "through cache+: {opened:#?}");
}
