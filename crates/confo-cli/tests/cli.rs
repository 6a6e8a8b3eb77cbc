//! The `confo` binary, run for real against a file backend in a temp dir.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

mod common;
use common::Env;

/// Every file under a folder with its bytes, to prove a failed command wrote nothing.
fn snapshot(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in fs::read_dir(root).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.push((path.clone(), Vec::new()));
            out.extend(snapshot(&path));
        } else {
            out.push((path.clone(), fs::read(&path).expect("read")));
        }
    }
    out.sort();
    out
}

#[test]
fn the_main_job_end_to_end() {
    let env = Env::new();
    env.ok(&["ns", "create", "sales"]);
    env.ok(&["ns", "create", "analytics"]);
    assert_eq!(env.ok(&["ns", "ls"]), "analytics\nsales\n");
    env.ok(&[
        "set",
        "sales/database",
        "host=127.0.0.1",
        "port=5432",
        r#"tags=["a","b"]"#,
        "ssl=true",
        "note=hello world",
    ]);
    assert_eq!(
        env.file("sales/database.json"),
        json!({"host": "127.0.0.1", "port": 5432, "tags": ["a", "b"], "ssl": true, "note": "hello world"})
    );
    env.ok(&["set", "sales/app.prod", "--json", r#"{"replicas": 3, "image": "app:1"}"#]);
    assert_eq!(env.ok(&["ls", "sales"]), "app.prod\ndatabase\n");

    let whole: Value = serde_json::from_str(&env.ok(&["get", "sales/database"])).expect("json");
    assert_eq!(whole["port"], json!(5432));
    assert_eq!(env.ok(&["get", "sales/database", "host"]), "\"127.0.0.1\"\n", "a string prints as a JSON string");
    assert_eq!(env.ok(&["get", "sales/database", "port"]), "5432\n");

    env.ok(&["set", "sales/database", "port=6432"]);
    assert_eq!(env.ok(&["get", "sales/database", "port"]), "6432\n");
    assert_eq!(env.ok(&["get", "sales/database", "host"]), "\"127.0.0.1\"\n", "other fields kept");

    env.ok(&["rm", "sales/database", "tags"]);
    assert!(env.file("sales/database.json").get("tags").is_none());
    env.ok(&["rm", "sales/app.prod"]);
    assert_eq!(env.ok(&["ls", "sales"]), "database\n");
    assert!(!env.root().join("sales/app.prod.json").exists());

    env.expect(&["ns", "rm", "sales"], 1);
    assert!(env.root().join("sales/database.json").exists(), "not removed without --force");
    env.ok(&["ns", "rm", "sales", "--force"]);
    env.ok(&["ns", "rm", "analytics"]);
    assert_eq!(env.ok(&["ns", "ls"]), "");
}

#[test]
fn set_replaces_with_json_keeping_field_order() {
    let env = Env::new();
    env.ok(&["ns", "create", "ns"]);
    env.ok(&["set", "ns/c", "--json", r#"{"z": 1, "a": {"nested": [1, 2]}, "m": null}"#]);
    let text = fs::read_to_string(env.root().join("ns/c.json")).expect("read");
    let (z, a, m) = (text.find("\"z\"").expect("z"), text.find("\"a\"").expect("a"), text.find("\"m\"").expect("m"));
    assert!(z < a && a < m, "{text}");
}

#[test]
fn not_found_is_exit_3_and_writes_nothing() {
    let env = Env::new();
    env.ok(&["ns", "create", "sales"]);
    env.ok(&["set", "sales/database", "port=1"]);
    let before = snapshot(&env.root());
    let stderr = env.stderr(&["set", "salse/database", "port=2"]);
    assert!(stderr.contains("namespace \"salse\" not found"), "{stderr}");
    assert!(stderr.contains("confo ns create salse"), "says how to create it: {stderr}");
    for args in [
        &["set", "salse/database", "port=2"][..],
        &["get", "sales/nope"],
        &["get", "sales/database", "nope"],
        &["get", "nope/database"],
        &["ls", "nope"],
        &["rm", "sales/nope"],
        &["rm", "sales/database", "nope"],
        &["ns", "rm", "nope"],
    ] {
        env.expect(args, 3);
    }
    assert_eq!(snapshot(&env.root()), before, "a typo created nothing");
}

#[test]
fn usage_errors_are_exit_2_and_write_nothing() {
    let env = Env::new();
    env.ok(&["ns", "create", "ns"]);
    let before = snapshot(&env.root());
    for args in [
        &["set", "ns/c"][..],                    // nothing to set
        &["set", "nsc", "a=1"],                  // no slash
        &["set", "ns/c", "novalue"],             // no '='
        &["set", "ns/c", "=1"],                  // empty field
        &["set", "ns/c", "--json", "[1, 2]"],    // not an object
        &["set", "ns/c", "--json", "{broken"],   // not JSON
        &["set", "ns/c", "--json", "{}", "a=1"], // both forms
        &["set", "ns/.hidden", "a=1"],           // invalid name
        &["ns", "create", "a\\b"],               // invalid name
        &["--backend", "ftp://x", "ns", "ls"],   // unknown scheme
        &["frobnicate"],                         // unknown command
    ] {
        env.expect(args, 2);
    }
    assert_eq!(snapshot(&env.root()), before);
    let stderr = env.stderr(&["set", "ns/c", "--json", "{broken"]);
    assert!(stderr.starts_with("confo: error: --json is not valid JSON"), "{stderr}");
}

#[test]
fn backend_spec_from_flag_and_environment() {
    let env = Env::new();
    let other = env.dir.path().join("other");
    fs::create_dir(&other).expect("mkdir");
    let spec = format!("file:{}", other.display());
    env.ok(&["--backend", &spec, "ns", "create", "flagged"]);
    assert!(other.join("flagged").is_dir());
    let out = env.command(&["ns", "ls"]).env("CONFO_BACKEND", &spec).output().expect("run");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "flagged\n");
    assert_eq!(env.ok(&["ns", "ls"]), "", "the default ./Configurations is another store");
    env.ok(&["--backend", "memory:", "ns", "ls"]);
}

#[test]
fn a_missing_store_folder_is_not_found_with_a_hint() {
    let env = Env::new();
    fs::remove_dir(env.root()).expect("rmdir");
    let out = env.run(&["ns", "create", "sales"]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Configurations") && stderr.contains("mkdir"), "{stderr}");
    assert!(!env.root().exists());
}

#[test]
fn corrupt_files_are_reported_not_hidden() {
    let env = Env::new();
    env.ok(&["ns", "create", "ns"]);
    fs::write(env.root().join("ns/bad.json"), "{\"a\": }").expect("write");
    let out = env.run(&["get", "ns/bad"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.json:1:7"), "{stderr}");
}

#[test]
fn help_and_version() {
    let env = Env::new();
    let help = env.ok(&["--help"]);
    assert!(help.contains("Exit codes") && help.contains("confo set sales/database"), "{help}");
    let set_help = env.ok(&["set", "--help"]);
    assert!(set_help.contains("port=5432 is a number"), "{set_help}");
    assert!(env.ok(&["--version"]).starts_with("confo "));
}

/// The same commands against a private redis-server, through a `redis://` spec.
#[test]
fn works_with_redis_specs() {
    let server = confo_testkit::RedisServer::start().expect("redis-server");
    let env = Env::new();
    let url = server.url();
    let with = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["--backend".to_owned(), url.clone()];
        all.extend(args.iter().map(|s| s.to_string()));
        all
    };
    let run = |args: &[&str], code: i32| -> String {
        let all = with(args);
        env.expect(&all.iter().map(String::as_str).collect::<Vec<_>>(), code)
    };
    run(&["ns", "create", "HR_dept"], 0);
    run(&["set", "HR_dept/database", "host=localhost", "port=6379"], 0);
    assert_eq!(run(&["ns", "ls"], 0), "HR_dept\n");
    assert_eq!(run(&["ls", "HR_dept"], 0), "database\n");
    assert_eq!(run(&["get", "HR_dept/database", "port"], 0), "6379\n");
    run(&["get", "HR_dept/nope"], 3);
    run(&["ns", "create", "a-b"], 2); // a Redis name rule
    run(&["rm", "HR_dept/database"], 0);
    run(&["ns", "rm", "HR_dept"], 0);
    assert_eq!(run(&["ns", "ls"], 0), "");
    // A dead server is "unavailable": exit 5, quickly.
    let dead = format!("redis://127.0.0.1:{}", confo_testkit::free_port());
    let started = std::time::Instant::now();
    env.expect(&["--backend", &dead, "ns", "ls"], 5);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

/// The same commands against a private ZooKeeper, through a `zk://` spec.
#[test]
fn works_with_zookeeper_specs() {
    let server = confo_testkit::ZkServer::shared().expect("zookeeper");
    let env = Env::new();
    let url = format!("zk://{}/cli", server.connect_string());
    let run = |args: &[&str], code: i32| -> String {
        let mut all = vec!["--backend", url.as_str()];
        all.extend_from_slice(args);
        env.expect(&all, code)
    };
    run(&["ns", "create", "systemA"], 0);
    run(&["set", "systemA/database", "host=zk-db", "port=5432"], 0);
    assert_eq!(run(&["ns", "ls"], 0), "systemA\n");
    assert_eq!(run(&["get", "systemA/database", "host"], 0), "\"zk-db\"\n");
    run(&["set", "systemB/database", "a=1"], 3);
    run(&["rm", "systemA/database", "port"], 0);
    assert_eq!(run(&["get", "systemA/database"], 0).trim(), "{\n  \"host\": \"zk-db\"\n}");
    run(&["ns", "rm", "systemA", "--force"], 0);
    assert_eq!(run(&["ns", "ls"], 0), "");
}

/// `confo watch` prints one JSON line per change made by another `confo` process.
#[test]
fn watch_prints_one_json_line_per_event() {
    use std::io::{BufRead, BufReader};
    let env = Env::new();
    env.ok(&["ns", "create", "sales"]);
    env.ok(&["set", "sales/database", "port=1"]);
    let mut child = env
        .command(&["watch", "sales"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn confo watch");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    stderr.read_line(&mut line).expect("ready line");
    assert!(line.contains("watching sales"), "{line}");
    env.ok(&["set", "sales/database", "port=2"]);
    env.ok(&["rm", "sales/database"]);
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut events = Vec::new();
    for _ in 0..2 {
        let mut line = String::new();
        stdout.read_line(&mut line).expect("event line");
        events.push(serde_json::from_str::<Value>(&line).expect("one JSON object per line"));
    }
    child.kill().expect("kill");
    child.wait().expect("wait");
    assert_eq!(
        events,
        [
            json!({"event": "changed", "namespace": "sales", "configuration": "database", "value": {"port": 2}}),
            json!({"event": "deleted", "namespace": "sales", "configuration": "database"}),
        ]
    );
    env.expect(&["watch", "nope"], 3);
}

/// The same commands against a private etcd, through an `etcd://` spec.
#[test]
fn works_with_etcd_specs() {
    let server = confo_testkit::EtcdServer::start().expect("etcd");
    let env = Env::new();
    let url = format!("etcd://{}", server.endpoint());
    let run = |args: &[&str], code: i32| -> String {
        let mut all = vec!["--backend", url.as_str()];
        all.extend_from_slice(args);
        env.expect(&all, code)
    };
    run(&["ns", "create", "k8s"], 0);
    run(&["set", "k8s/ingress", "replicas=3", "host=example.com"], 0);
    assert_eq!(run(&["ls", "k8s"], 0), "ingress\n");
    assert_eq!(run(&["get", "k8s/ingress", "replicas"], 0), "3\n");
    run(&["get", "k8s/nope"], 3);
    run(&["ns", "rm", "k8s"], 1);
    run(&["ns", "rm", "k8s", "--force"], 0);
    assert_eq!(run(&["ns", "ls"], 0), "");
}
