//! `history`, `show`, `diff NS/CONFIG@N`, `rollback` and `log`, on every backend.

#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

mod common;

use common::Env;
use serde_json::{json, Value};

/// The walkthrough of the README on one backend: three writes by three actors, what each
/// command shows, a rollback, and the exit codes of the contract (3 for an unknown revision).
fn walkthrough(env: &Env, spec: &str) {
    let run = |args: &[&str], code: i32, actor: Option<&str>| -> String {
        let mut all = vec!["--backend", spec];
        all.extend_from_slice(args);
        let mut command = env.command(&all);
        if let Some(actor) = actor {
            command.env("CONFO_ACTOR", actor);
        }
        common::check(command.output().expect("run"), &all, code)
    };
    run(&["ns", "create", "sales"], 0, None);
    run(&["set", "sales/database", "host=db", "port=5432"], 0, Some("alice"));
    run(&["set", "sales/database", "port=6432", "--message", "bigger pool"], 0, Some("bob"));
    run(&["rm", "sales/database", "host"], 0, Some("carol"));

    let listed: Value =
        serde_json::from_str(&run(&["history", "sales/database", "--output", "json"], 0, None)).unwrap();
    let seen: Vec<(u64, &str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["number"].as_u64().unwrap(), r["actor"].as_str().unwrap(), r["operation"].as_str().unwrap()))
        .collect();
    assert_eq!(seen, [(3, "carol", "change"), (2, "bob", "change"), (1, "alice", "create")], "{spec}");
    assert_eq!(listed[1]["message"], json!("bigger pool"));
    assert_eq!(listed[0]["tool"], json!("cli"));
    let table = run(&["history", "sales/database"], 0, None);
    assert!(table.starts_with("NUMBER  TIME"), "{table}");
    assert!(table.lines().nth(2).unwrap().contains("bigger pool"), "{table}");

    let first: Value = serde_json::from_str(&run(&["show", "sales/database@1"], 0, None)).unwrap();
    assert_eq!(first, json!({"host": "db", "port": 5432}));
    assert_eq!(run(&["show", "sales/database@2", "port"], 0, None), "6432\n");
    assert_eq!(
        run(&["diff", "sales/database@1", "sales/database@3"], 0, None),
        "- host: \"db\"\n~ port: 5432 -> 6432\n"
    );

    run(&["rollback", "sales/database", "--to", "1", "--message", "back"], 0, Some("dave"));
    let now: Value = serde_json::from_str(&run(&["get", "sales/database"], 0, None)).unwrap();
    assert_eq!(now, first, "rollback to 1 restores version 1's value");
    let four: Value =
        serde_json::from_str(&run(&["history", "sales/database", "--output", "json", "--limit", "1"], 0, None))
            .unwrap();
    assert_eq!((four[0]["number"].clone(), four[0]["operation"].clone()), (json!(4), json!("rollback")));
    assert_eq!((four[0]["restores"].clone(), four[0]["actor"].clone()), (json!(1), json!("dave")));
    assert_eq!(run(&["diff", "sales/database@1"], 0, None), "", "revision 1 is the current value again");

    let err = env.fails(&["--backend", spec, "rollback", "sales/database", "--to", "99"], 3);
    assert!(err.contains("sales/database@99") && err.contains("1..4"), "{err}");
    env.fails(&["--backend", spec, "show", "sales/database@99"], 3);
    env.fails(&["--backend", spec, "show", "sales/database"], 2);

    // Deleted, it keeps its history, and is restored from it.
    run(&["rm", "sales/database"], 0, None);
    run(&["rollback", "sales/database", "--to", "2"], 0, None);
    assert_eq!(run(&["get", "sales/database", "port"], 0, None), "6432\n");

    let log = run(&["log", "sales", "--actor", "bob"], 0, None);
    assert_eq!(log.lines().count(), 2, "{log}");
    assert!(log.contains("database@2") && log.contains("bigger pool"), "{log}");
    let all: Value = serde_json::from_str(&run(&["log", "sales", "--output", "json"], 0, None)).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 6);
    assert_eq!(all[0]["number"], json!(6));
    assert_eq!(run(&["log", "sales", "--since", "2999-01-01"], 0, None).lines().count(), 1, "only the header");
    env.fails(&["--backend", spec, "log", "sales", "--since", "tomorrow"], 2);
}

#[test]
fn history_on_files() {
    let env = Env::new();
    walkthrough(&env, "file:./Configurations");
    // Outside the root, beside it: Python confo never sees it.
    assert!(env.path(".Configurations.confo/history/sales/database/0000000001.json").is_file());
    let top: Vec<String> =
        std::fs::read_dir(env.root()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(top, ["sales"]);
}

#[test]
fn history_on_redis() {
    let server = confo_testkit::RedisServer::start().expect("redis-server");
    walkthrough(&Env::new(), &server.url());
}

#[test]
fn history_on_zookeeper() {
    let server = confo_testkit::ZkServer::shared().expect("zookeeper");
    let chroot = format!("/history_{}", std::process::id());
    walkthrough(&Env::new(), &format!("zk://{}{chroot}", server.connect_string()));
}

#[test]
fn history_on_etcd() {
    let server = confo_testkit::EtcdServer::start().expect("etcd");
    walkthrough(&Env::new(), &format!("etcd://{}", server.endpoint()));
}

/// The actor: `CONFO_ACTOR`, else the profile's, else the profiles file's, else user@host.
#[test]
fn actors_come_from_the_environment_then_the_profile() {
    let env = Env::new();
    std::fs::write(
        env.path("profiles.toml"),
        "default = \"local\"\nactor = \"team\"\n[backends]\nlocal = \"file:./Configurations\"\nother = \"file:./Configurations\"\n[actors]\nlocal = \"erin\"\n",
    )
    .unwrap();
    env.ok(&["ns", "create", "app"]);
    env.ok(&["set", "app/c", "a=1"]);
    env.ok(&["-b", "other", "set", "app/c", "a=2"]);
    let mut command = env.command(&["set", "app/c", "a=3"]);
    command.env("CONFO_ACTOR", "frank");
    common::check(command.output().unwrap(), &["set"], 0);
    let listed: Value = serde_json::from_str(&env.ok(&["history", "app/c", "--output", "json"])).unwrap();
    let actors: Vec<&str> = listed.as_array().unwrap().iter().map(|r| r["actor"].as_str().unwrap()).collect();
    assert_eq!(actors, ["frank", "team", "erin"]);
}

/// With history switched off, the history commands say so (exit 3), and writes still work.
#[test]
fn history_switched_off_is_a_clear_error() {
    let env = Env::new();
    let spec = "file:./Configurations?history=off";
    env.ok(&["-b", spec, "ns", "create", "app"]);
    env.ok(&["-b", spec, "set", "app/c", "a=1"]);
    let err = env.fails(&["-b", spec, "history", "app/c"], 3);
    assert!(err.contains("history=off"), "{err}");
    assert!(!env.path(".Configurations.confo").exists(), "nothing recorded");
}

/// A record that cannot be read is named, and the rest is still listed (exit 1).
#[test]
fn a_corrupt_record_is_named_and_the_rest_listed() {
    let env = Env::new();
    env.ok(&["ns", "create", "app"]);
    for v in 1..=3 {
        env.ok(&["set", "app/c", &format!("v={v}")]);
    }
    let record = env.path(".Configurations.confo/history/app/c/0000000002.json");
    std::fs::write(&record, "{ torn").unwrap();
    let out = env.run(&["history", "app/c"]);
    assert_eq!(out.status.code(), Some(1));
    let listed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(listed.lines().count(), 3, "header, 3 and 1: {listed}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("0000000002.json") && err.contains("@2"), "{err}");
    // Its value cannot be shown; the others can.
    env.fails(&["show", "app/c@2"], 1);
    assert_eq!(env.ok(&["show", "app/c@1", "v"]), "1\n");
}

/// The newest record unreadable (not a crash leftover: a crash never tears a record, which is
/// written whole and renamed): listed as unreadable (exit 1 naming it) and kept; the next write
/// numbers after it and deletes nothing. A readable record whose configuration was never
/// renamed into place (provably a crash leftover, by its versions) is still dropped.
#[test]
fn an_unreadable_newest_record_is_kept_and_named() {
    let env = Env::new();
    env.ok(&["ns", "create", "app"]);
    for v in 1..=2 {
        env.ok(&["set", "app/c", &format!("v={v}")]);
    }
    let folder = env.path(".Configurations.confo/history/app/c");
    let unreadable = folder.join("0000000003.json");
    std::fs::write(&unreadable, "{\"n\": 3, \"op\": ").unwrap();
    let err = env.fails(&["history", "app/c"], 1);
    assert!(err.contains("0000000003.json") && err.contains("@3"), "{err}");
    env.ok(&["set", "app/c", "v=4"]);
    assert!(unreadable.is_file(), "an unreadable record is never removed");
    let out = env.run(&["history", "app/c", "--output", "json"]);
    assert_eq!(out.status.code(), Some(1), "still named");
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let numbers: Vec<u64> = listed.as_array().unwrap().iter().map(|r| r["number"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [4, 2, 1], "numbers go on after it, and no synthetic revision takes its place");
    assert_eq!(listed[0]["operation"], json!("change"));
    // A leftover provably uncommitted: a revision 5 recording a change from the current
    // version to one never stored. Hidden, and removed by the next write.
    let four: Value = serde_json::from_slice(&std::fs::read(folder.join("0000000004.json")).unwrap()).unwrap();
    let mut five = four.clone();
    five["n"] = json!(5);
    five["before"] = four["after"].clone();
    five["after"] = json!("12345");
    std::fs::write(folder.join("0000000005.json"), five.to_string()).unwrap();
    let out = env.run(&["history", "app/c", "--output", "json"]);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["number"], json!(4), "the uncommitted one is not listed");
    env.ok(&["set", "app/c", "v=6"]);
    let out = env.run(&["history", "app/c", "--output", "json"]);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["number"], json!(5), "its number taken again by the next write");
    assert!(unreadable.is_file());
}

/// A writer killed while writing its revision leaves no torn record (it writes a temporary
/// file and renames it whole), and the next write removes the temporary file.
#[test]
fn a_writer_killed_mid_revision_leaves_no_torn_record() {
    let env = Env::new();
    env.ok(&["ns", "create", "app"]);
    env.ok(&["set", "app/c", "v=1"]);
    let folder = env.path(".Configurations.confo/history/app/c");
    let temporaries = || -> Vec<String> {
        std::fs::read_dir(&folder)
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.starts_with(".tmp-"))
            .collect()
    };
    // Every fsync slowed to a second: the writer is killed while its revision is being written.
    let strace = confo_testkit::require_binary("strace", "strace").unwrap();
    let mut tracer = std::process::Command::new(strace)
        .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=fsync", "-e", "inject=fsync:delay_enter=1000000"])
        .arg(env!("CARGO_BIN_EXE_confo"))
        .args(["set", "app/c", "v=2"])
        .current_dir(env.dir.path())
        .env_remove("CONFO_BACKEND")
        .env("CONFO_CONFIG", env.path("profiles.toml"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while temporaries().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the writer never began its revision");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", tracer.id())).unwrap();
    for pid in children.split_whitespace() {
        std::process::Command::new("kill").args(["-9", pid]).status().unwrap();
    }
    let _ = tracer.kill();
    let _ = tracer.wait();
    assert_eq!(env.ok(&["history", "app/c", "--output", "json"]).matches("\"number\"").count(), 1);
    env.ok(&["set", "app/c", "v=3"]);
    assert!(temporaries().is_empty(), "removed by the next write");
    assert_eq!(env.ok(&["history", "app/c", "--output", "json"]).matches("\"number\"").count(), 2);
}
