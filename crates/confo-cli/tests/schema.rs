//! `schema set|get|rm|history|rollback` and `validate`, and writes refused by a schema, on
//! every backend.

#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

mod common;

use std::process::Command;

use common::Env;
use serde_json::{json, Value};

const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {"host": {"type": "string"}, "port": {"type": "integer", "minimum": 1, "maximum": 65535}},
  "required": ["host"]
}"#;

/// Runs confo against `spec`.
fn on<'a>(spec: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["--backend", spec];
    all.extend_from_slice(args);
    all
}

/// Everything a reader sees of the store, and the namespace's history: what must not change
/// when a write is refused.
fn snapshot(env: &Env, spec: &str) -> (String, String) {
    (env.ok(&on(spec, &["export"])), env.ok(&on(spec, &["log", "sales", "--output", "json"])))
}

/// Writes `(namespace, configuration, json)` as a program without confo would.
type RawWrite<'a> = &'a dyn Fn(&str, &str, &str);

/// The walkthrough on one backend; `raw_write(namespace, config, json)` writes a configuration
/// the way a program without confo would (a raw client), if the backend has one here.
fn walkthrough(env: &Env, spec: &str, raw_write: Option<RawWrite<'_>>) {
    std::fs::write(env.path("schema.json"), SCHEMA).unwrap();
    env.ok(&on(spec, &["ns", "create", "sales"]));
    env.ok(&on(spec, &["set", "sales/database", "host=db", "port=5432"]));
    // A schema on a namespace that does not exist, an invalid one, one with a remote $ref.
    let err = env.fails(&on(spec, &["schema", "set", "nowhere", "schema.json"]), 3);
    assert!(err.contains("nowhere"), "{err}");
    std::fs::write(env.path("bad.json"), r#"{"type": "strin"}"#).unwrap();
    let err = env.fails(&on(spec, &["schema", "set", "sales", "bad.json"]), 2);
    assert!(err.contains("not a valid JSON Schema"), "{err}");
    std::fs::write(env.path("remote.json"), r#"{"$ref": "http://127.0.0.1:9/s.json"}"#).unwrap();
    let err = env.fails(&on(spec, &["schema", "set", "sales", "remote.json"]), 2);
    assert!(err.contains("never fetches"), "{err}");
    env.fails(&on(spec, &["schema", "get", "sales"]), 3);

    let said = env.stderr(&on(spec, &["schema", "set", "sales", "schema.json", "--message", "ports"]));
    assert!(said.contains("mode enforce"), "{said}");
    let got: Value = serde_json::from_str(&env.ok(&on(spec, &["schema", "get", "sales"]))).unwrap();
    assert_eq!(got["mode"], json!("enforce"));
    assert_eq!(got["default"], serde_json::from_str::<Value>(SCHEMA).unwrap());

    // An invalid set exits 2, names every violation, and changes nothing.
    let before = snapshot(env, spec);
    let err = env.fails(&on(spec, &["set", "sales/database", "port=70000"]), 2);
    assert!(err.contains("sales/database: /port: 70000 is greater than the maximum of 65535"), "{err}");
    let err = env.fails(&on(spec, &["set", "sales/new", "--json", r#"{"port": "x"}"#]), 2);
    assert!(err.contains("2 schema violations") && err.contains("\"host\" is a required property"), "{err}");
    // edit, the same.
    let editor = env.path("editor.sh");
    std::fs::write(&editor, "#!/bin/sh\nsed -i 's/5432/0/' \"$1\"\n").unwrap();
    let out = env
        .command(&on(spec, &["edit", "sales/database"]))
        .env("EDITOR", format!("sh {}", editor.display()))
        .env_remove("VISUAL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/port: 0 is less than the minimum of 1"));
    // An import of 1,000 configurations with one invalid writes none of them.
    let mut document = serde_json::Map::new();
    let mut configs = serde_json::Map::new();
    for i in 0..1000 {
        configs.insert(format!("c{i:04}"), json!({"host": format!("h{i}"), "port": i + 1}));
    }
    configs.insert("c0500".into(), json!({"host": "h", "port": 65536}));
    document.insert("sales".into(), Value::Object(configs));
    std::fs::write(env.path("import.json"), serde_json::to_vec(&document).unwrap()).unwrap();
    let err = env.fails(&on(spec, &["import", "import.json"]), 2);
    assert!(err.contains("1 schema violation") && err.contains("sales/c0500: /port: 65536"), "{err}");
    // A copy from another store with one invalid configuration writes nothing either.
    std::fs::create_dir_all(env.path("source/sales")).unwrap();
    std::fs::write(env.path("source/sales/good.json"), r#"{"host": "h", "port": 1}"#).unwrap();
    std::fs::write(env.path("source/sales/bad.json"), r#"{"host": "h", "port": 0}"#).unwrap();
    let err = env.fails(&["copy", "--from", "file:./source", "--to", spec], 2);
    assert!(err.contains("sales/bad: /port: 0 is less than the minimum of 1"), "{err}");
    assert_eq!(snapshot(env, spec), before, "nothing stored or recorded changed");

    // warn: written, with a warning.
    env.fails(&on(spec, &["schema", "mode", "nowhere", "warn"]), 3);
    env.ok(&on(spec, &["schema", "mode", "sales", "warn"]));
    let out = env.command(&on(spec, &["set", "sales/loose", "port=0"])).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sales/loose: /port: 0 is less than the minimum of 1"));
    env.ok(&on(spec, &["schema", "set", "sales", "schema.json", "--mode", "enforce"]));

    // validate: what was written unchecked (warn, a raw client) is found; exit 6.
    if let Some(write) = raw_write {
        write("sales", "raw", r#"{"host": 5}"#);
    }
    let out = env.run(&on(spec, &["validate"]));
    assert_eq!(out.status.code(), Some(6), "{}", String::from_utf8_lossy(&out.stderr));
    let listed = String::from_utf8(out.stdout).unwrap();
    assert!(listed.contains("sales/loose: /port: 0 is less than the minimum of 1"), "{listed}");
    if raw_write.is_some() {
        assert!(listed.contains("sales/raw: /host: 5 is not of type \"string\""), "{listed}");
    }
    let json: Value =
        serde_json::from_str(&env.expect(&on(spec, &["validate", "sales", "--output", "json"]), 6)).unwrap();
    assert_eq!(json[0]["namespace"], json!("sales"));
    env.ok(&on(spec, &["rm", "sales/loose"]));
    if raw_write.is_some() {
        env.ok(&on(spec, &["rm", "sales/raw"]));
    }
    assert_eq!(env.ok(&on(spec, &["validate"])), "");

    // A configuration's own schema; history of the schemas; rollback; rm.
    std::fs::write(env.path("flags.json"), r#"{"additionalProperties": {"type": "boolean"}}"#).unwrap();
    env.ok(&on(spec, &["schema", "set", "sales", "flags.json", "--config", "flags"]));
    env.ok(&on(spec, &["set", "sales/flags", "beta=true"]));
    env.fails(&on(spec, &["set", "sales/flags", "beta=1"]), 2);
    let history: Value =
        serde_json::from_str(&env.ok(&on(spec, &["schema", "history", "sales", "--output", "json"]))).unwrap();
    let numbers: Vec<u64> = history.as_array().unwrap().iter().map(|r| r["number"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [4, 3, 2, 1], "{history}");
    assert_eq!(history[3]["message"], json!("ports"));
    env.ok(&on(spec, &["schema", "rollback", "sales", "--to", "1"]));
    let got: Value = serde_json::from_str(&env.ok(&on(spec, &["schema", "get", "sales"]))).unwrap();
    assert_eq!(got["configurations"], json!({}));
    env.ok(&on(spec, &["schema", "rm", "sales"]));
    env.fails(&on(spec, &["schema", "rm", "sales"]), 3);
    env.ok(&on(spec, &["set", "sales/database", "port=70000"]));
}

#[test]
fn schemas_on_files() {
    let env = Env::new();
    let root = env.root();
    let raw =
        |ns: &str, cfg: &str, json: &str| std::fs::write(root.join(ns).join(format!("{cfg}.json")), json).unwrap();
    walkthrough(&env, "file:./Configurations", Some(&raw));
    // Beside the root, never inside it.
    env.ok(&["schema", "set", "sales", "schema.json"]);
    assert!(env.path(".Configurations.confo/schemas/sales/schema.json").is_file());
    let top: Vec<String> =
        std::fs::read_dir(env.root()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(top, ["sales"]);
}

/// Byte for byte: a refused write leaves every file of the root as it was.
#[test]
fn a_refused_write_leaves_the_files_byte_for_byte() {
    let env = Env::new();
    std::fs::write(env.path("schema.json"), SCHEMA).unwrap();
    env.ok(&["ns", "create", "sales"]);
    env.ok(&["set", "sales/database", "host=db", "port=5432"]);
    env.ok(&["schema", "set", "sales", "schema.json"]);
    let read_all = || {
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        for dir in [env.root().join("sales"), env.path(".Configurations.confo/history/sales/database")] {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                files.push((path.display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
        files.sort();
        files
    };
    let before = read_all();
    env.fails(&["set", "sales/database", "port=70000"], 2);
    env.fails(&["set", "sales/database", "host=1", "port=0"], 2);
    assert_eq!(read_all(), before);
}

#[test]
fn schemas_on_redis() {
    let server = confo_testkit::RedisServer::start().expect("redis-server");
    let port = server.port().to_string();
    let cli = |args: &[&str]| {
        let out = Command::new("redis-cli").args(["-h", "127.0.0.1", "-p", &port]).args(args).output();
        let out = out.expect("redis-cli (Debian package redis-tools, installed with redis-server)");
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let raw = |ns: &str, cfg: &str, json: &str| {
        // As a program without confo would: the value, then the seed's index.
        cli(&["SET", &format!("{ns}-{cfg}"), json]);
        let index: Value = serde_json::from_str(cli(&["GET", ns]).trim()).unwrap();
        let mut names: Vec<Value> = index["configurations"].as_array().unwrap().clone();
        names.push(json!(cfg));
        cli(&["SET", ns, &json!({"configurations": names}).to_string()]);
    };
    let env = Env::new();
    walkthrough(&env, &server.url(), Some(&raw));
    env.ok(&["--backend", &server.url(), "schema", "set", "sales", "schema.json"]);
    let keys = cli(&["KEYS", "confo-schema:*"]);
    assert_eq!(keys.trim(), "confo-schema:sales");
}

#[test]
fn schemas_on_zookeeper() {
    let server = confo_testkit::ZkServer::shared().expect("zookeeper");
    let chroot = format!("/schema_{}", std::process::id());
    walkthrough(&Env::new(), &format!("zk://{}{chroot}", server.connect_string()), None);
}

#[test]
fn schemas_on_etcd() {
    let server = confo_testkit::EtcdServer::start().expect("etcd");
    let endpoint = server.endpoint();
    let raw = |ns: &str, cfg: &str, json: &str| {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &endpoint, "put", &format!("/confo/{ns}/{cfg}"), json])
            .output()
            .expect("etcdctl (Debian package etcd-client)");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    walkthrough(&Env::new(), &format!("etcd://{endpoint}"), Some(&raw));
}

/// Python confo 0.1.6.2 still loads a store whose namespace has schemas (kept beside the root).
#[test]
fn python_confo_still_reads_a_store_with_schemas() {
    // scripts/test.sh installs confo 0.1.6.2 there and sets CONFO_PY_COMPAT.
    let python = std::env::var_os("CONFO_PY_COMPAT")
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/confo-py-compat/bin/python").into());
    let env = Env::new();
    std::fs::write(env.path("schema.json"), SCHEMA).unwrap();
    env.ok(&["ns", "create", "sales"]);
    env.ok(&["schema", "set", "sales", "schema.json"]);
    std::fs::write(env.path("flags.json"), r#"{"type": "object"}"#).unwrap();
    env.ok(&["schema", "set", "sales", "flags.json", "--config", "flags"]);
    env.ok(&["set", "sales/database", "host=db", "port=5432"]);
    let script = format!(
        "from confo.Confo import Confo\nimport confo.Backends as BE\nc = Confo()\n\
         c.load_backend(credentials={{'config_path': {:?}}}, name='f', backend_type=BE.FILE_BACKEND)\n\
         c.activate_backend('f')\nc.use_namespace('sales')\nprint(c.get_all())\n",
        env.root().display().to_string()
    );
    let out = Command::new(python).arg("-c").arg(script).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "{'database': {'host': 'db', 'port': 5432}}");
}

/// `repair` through the CLI on the Redis store at `url`, whose keys `redis` (redis-cli's
/// arguments to reach it) sets by hand: reports (exit 6), repairs with --fix what confo wrote
/// and keeps another program's key (still exit 6, naming it), deletes it when named with
/// --key, then finds nothing (exit 0).
fn repair_reports_then_fixes_on(env: &Env, url: &str, redis: &[&str]) {
    env.ok(&on(url, &["ns", "create", "sales"]));
    env.ok(&on(url, &["set", "sales/a", "v=1"]));
    env.ok(&on(url, &["set", "sales/stray", "v=2"]));
    let cli = |args: &[&str]| {
        let out = Command::new("redis-cli").args(redis).args(args).output().unwrap();
        assert!(out.status.success());
    };
    cli(&["SET", "sales-counter", "17"]);
    cli(&["SET", "sales", r#"{"configurations":["a","ghost"]}"#]);
    let out = env.run(&on(url, &["repair"]));
    assert_eq!(out.status.code(), Some(6), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "unindexed sales/stray\ndangling sales/ghost\nforeign sales-counter: not a JSON object\n"
    );
    let out = env.run(&on(url, &["repair", "--fix"]));
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "another program's key is left, and said: {said}");
    assert!(said.contains("2 problem(s) repaired") && said.contains("--key"), "{said}");
    assert_eq!(env.ok(&on(url, &["ls", "sales"])), "a\n");
    assert_eq!(env.ok(&on(url, &["repair", "--fix", "--key", "sales-counter"])), "unindexed sales/counter\n");
    assert_eq!(env.ok(&on(url, &["repair"])), "");
    assert_eq!(env.ok(&on(url, &["get", "sales/a", "v"])).trim(), "1");
}

/// `repair` on Redis; on files there is nothing to repair.
#[test]
fn repair_reports_then_fixes() {
    let server = confo_testkit::RedisServer::start().expect("redis-server");
    let env = Env::new();
    let port = server.port().to_string();
    repair_reports_then_fixes_on(&env, &server.url(), &["-h", "127.0.0.1", "-p", &port]);
    assert!(env.stderr(&["repair"]).contains("nothing to repair"));
}

/// The same on a Redis Cluster of three masters (`redis+cluster://`): the CLI's grammar, exit
/// codes and output are those of one server.
#[test]
fn repair_on_a_redis_cluster() {
    let cluster = confo_testkit::RedisCluster::start(3, 0).expect("redis cluster");
    let port = cluster.ports()[0].to_string();
    repair_reports_then_fixes_on(&Env::new(), &cluster.url(), &["-c", "-h", "127.0.0.1", "-p", &port]);
}
