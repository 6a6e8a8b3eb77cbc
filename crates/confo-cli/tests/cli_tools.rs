//! The operator's commands, run as the real binary: profiles, output formats, set from files
//! and stdin, edit, export/import, copy across engines, diff, completions.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

mod common;
use common::{check, Env};

/// Every file below a folder with its bytes.
fn files(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in fs::read_dir(root).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push((path.strip_prefix(root).expect("prefix").to_owned(), fs::read(&path).expect("read")));
        }
    }
    out.sort();
    out
}

#[test]
fn profiles_name_backends_and_keep_passwords_out_of_the_file() {
    let env = Env::new();
    let other = env.path("other");
    fs::create_dir(&other).expect("mkdir");
    env.ok(&["backend", "add", "other", &format!("file:{}", other.display())]);
    env.ok(&["ns", "create", "still_local"]);
    assert!(env.path("Configurations/still_local").is_dir(), "adding a profile does not move the default");
    env.ok(&["backend", "add", "local", "file:./Configurations", "--default"]);
    let listing = env.ok(&["backend", "ls"]);
    assert!(listing.contains("* local") && listing.contains("  other"), "{listing}");
    env.ok(&["-b", "other", "ns", "create", "in_other"]);
    assert!(other.join("in_other").is_dir(), "--backend takes a profile name");
    env.ok(&["ns", "create", "in_local"]);
    assert!(env.path("Configurations/in_local").is_dir(), "the default profile is used");
    env.ok(&["backend", "use", "other"]);
    assert_eq!(env.ok(&["ns", "ls"]), "in_other\n");
    // A reference to an environment variable is filled in when used, never stored resolved.
    env.ok(&["backend", "add", "by_env", "file:${CONFO_TEST_DIR}"]);
    let stored = fs::read_to_string(env.path("profiles.toml")).expect("profiles");
    assert!(stored.contains("${CONFO_TEST_DIR}"), "{stored}");
    let out = env.command(&["-b", "by_env", "ns", "ls"]).env("CONFO_TEST_DIR", &other).output().expect("run");
    assert_eq!(check(out, &["-b", "by_env", "ns", "ls"], 0), "in_other\n");
    let out = env.command(&["-b", "by_env", "ns", "ls"]).env_remove("CONFO_TEST_DIR").output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CONFO_TEST_DIR is not set"));
    let err = env.run(&["-b", "nosuch", "ns", "ls"]);
    assert_eq!(err.status.code(), Some(2), "an unknown profile is a usage error");
    assert!(String::from_utf8_lossy(&err.stderr).contains("unknown backend profile \"nosuch\""));
    env.ok(&["backend", "rm", "other"]);
    env.expect(&["backend", "rm", "other"], 3);
    env.expect(&["backend", "add", "bad", "ftp://x"], 2);
    let json: Value = serde_json::from_str(&env.ok(&["backend", "ls", "--output", "json"])).expect("json");
    assert_eq!(json["backends"]["local"], json!("file:./Configurations"));
}

#[test]
fn output_formats() {
    let env = Env::new();
    env.ok(&["ns", "create", "sales"]);
    env.ok(&["set", "sales/db", "host=h", "port=5432", r#"tags=["a"]"#]);
    assert_eq!(env.ok(&["get", "sales/db", "--output", "yaml"]), "host: h\nport: 5432\ntags:\n- a\n");
    let toml: toml::Table = toml::from_str(&env.ok(&["get", "sales/db", "--output", "toml"])).expect("toml");
    assert_eq!(toml["port"].as_integer(), Some(5432));
    assert_eq!(env.ok(&["get", "sales/db", "--output", "table"]), "host  h\nport  5432\ntags  [\"a\"]\n");
    assert_eq!(env.ok(&["ls", "sales", "--output", "json"]).split_whitespace().collect::<String>(), r#"["db"]"#);
    assert_eq!(env.ok(&["ls", "sales"]), "db\n", "piped lists stay one name per line");
    let err = env.run(&["get", "sales/db", "--output", "xml"]);
    assert_eq!(err.status.code(), Some(2));
    assert!(!err.stderr.contains(&0x1b), "no colour when not on a terminal");
}

#[test]
fn set_from_a_file_and_from_stdin() {
    let env = Env::new();
    env.ok(&["ns", "create", "sales"]);
    fs::write(env.path("db.json"), r#"{"host": "from-file"}"#).expect("write");
    env.ok(&["set", "sales/db", "--file", "db.json"]);
    assert_eq!(env.ok(&["get", "sales/db", "host"]), "\"from-file\"\n");
    let out = env.run_with_stdin(&["set", "sales/db", "-"], r#"{"host": "from-stdin", "port": 1}"#);
    check(out, &["set", "-"], 0);
    assert_eq!(env.ok(&["get", "sales/db", "host"]), "\"from-stdin\"\n");
    let bad = env.run_with_stdin(&["set", "sales/db", "-"], "[1, 2]");
    assert_eq!(bad.status.code(), Some(2));
    env.expect(&["set", "sales/db", "--file", "missing.json"], 3);
    env.expect(&["set", "sales/db", "--json", "{oops"], 2);
    assert_eq!(env.ok(&["get", "sales/db", "port"]), "1\n", "failed commands wrote nothing");
}

#[test]
fn edit_writes_only_valid_changed_content() {
    let env = Env::new();
    env.ok(&["ns", "create", "sales"]);
    env.ok(&["set", "sales/db", "port=1"]);
    let script = env.path("editor.sh");
    let edit_with = |body: &str| {
        fs::write(&script, format!("#!/bin/sh\n{body}\n")).expect("script");
        let out = env
            .command(&["edit", "sales/db"])
            .env("EDITOR", format!("sh {}", script.display()))
            .env_remove("VISUAL")
            .output()
            .expect("run");
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, _) = edit_with(r#"sed -i 's/"port": 1/"port": 2/' "$1""#);
    assert_eq!(code, Some(0));
    assert_eq!(env.ok(&["get", "sales/db", "port"]), "2\n");
    let (code, stderr) = edit_with("true");
    assert_eq!(code, Some(0));
    assert!(stderr.contains("no changes"), "{stderr}");
    let (code, stderr) = edit_with(r#"echo '{broken' > "$1""#);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("nothing written"), "{stderr}");
    assert_eq!(env.ok(&["get", "sales/db", "port"]), "2\n");
}

#[test]
fn export_import_dry_run_and_prune() {
    let env = Env::new();
    env.ok(&["ns", "create", "sales"]);
    env.ok(&["set", "sales/db", "port=1"]);
    env.ok(&["set", "sales/cache", "ttl=5"]);
    let text = env.ok(&["export"]);
    let document: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(document, json!({"sales": {"cache": {"ttl": 5}, "db": {"port": 1}}}), "the document and nothing else");
    // Streamed as it is encoded: pretty, sorted, one final newline, the same in a file.
    assert_eq!(text, "{\n  \"sales\": {\n    \"cache\": {\n      \"ttl\": 5\n    },\n    \"db\": {\n      \"port\": 1\n    }\n  }\n}\n");
    env.ok(&["export", "-o", "backup.json"]);
    assert_eq!(fs::read_to_string(env.path("backup.json")).expect("json"), text);
    env.ok(&["export", "sales", "-o", "backup.yaml"]);
    assert!(fs::read_to_string(env.path("backup.yaml")).expect("yaml").contains("ttl: 5"));
    env.ok(&["export", "-o", "backup.toml"]);

    fs::write(
        env.path("wanted.json"),
        r#"{"sales": {"db": {"port": 2}, "queue": {"size": 10}}, "analytics": {"wh": {}}}"#,
    )
    .expect("write");
    let before = files(&env.path("Configurations"));
    let plan = env.ok(&["import", "wanted.json", "--dry-run", "--prune"]);
    assert_eq!(
        plan,
        "create namespace analytics\ncreate analytics/wh\ndelete sales/cache\nchange sales/db\ncreate sales/queue\n"
    );
    assert_eq!(files(&env.path("Configurations")), before, "--dry-run writes nothing");
    env.ok(&["import", "wanted.json"]);
    assert_eq!(env.ok(&["ls", "sales"]), "cache\ndb\nqueue\n", "no --prune: nothing deleted");
    env.ok(&["import", "wanted.json", "--prune"]);
    assert_eq!(env.ok(&["ls", "sales"]), "db\nqueue\n");
    assert_eq!(env.ok(&["import", "wanted.json", "--dry-run", "--prune"]), "", "already at the document");
    // The TOML export (taken before) brings the old values back, without deleting anything.
    env.ok(&["import", "backup.toml"]);
    assert_eq!(env.ok(&["get", "sales/db", "port"]), "1\n");
    assert_eq!(env.ok(&["import", "wanted.json", "--dry-run", "--prune"]), "delete sales/cache\nchange sales/db\n");
    env.expect(&["import", "nope.json"], 3);
    fs::write(env.path("bad.json"), r#"{"sales": {"db": 1}}"#).expect("write");
    env.expect(&["import", "bad.json"], 2);
}

/// The export writes every value exactly as stored (numbers beyond 64 bits and doubles, `-0`,
/// unicode, nesting), and an import of it changes nothing.
#[test]
fn export_writes_values_exactly_and_imports_back_unchanged() {
    let env = Env::new();
    env.ok(&["ns", "create", "exact"]);
    env.ok(&[
        "set",
        "exact/numbers",
        "--json",
        r#"{"big": 123456789012345678901234567890, "neg0": -0, "d": 0.30000000000000004, "huge": 1e400,
           "s": "ü \"q\" \u0000", "nested": {"z": [1, {"a": null}], "a": true}}"#,
    ]);
    env.ok(&["set", "exact/a", "x=1"]);
    let text = env.ok(&["export", "exact"]);
    for literal in [
        r#""big": 123456789012345678901234567890"#,
        r#""neg0": -0"#,
        r#""d": 0.30000000000000004"#,
        r#""huge": 1e+400"#, // as `set --json` stores it
        r#""s": "ü \"q\" \u0000""#,
    ] {
        assert!(text.contains(literal), "{literal} in {text}");
    }
    assert!(text.find("\"a\": {").expect("a") < text.find("\"numbers\"").expect("numbers"), "sorted: {text}");
    let stored = fs::read_to_string(env.path("Configurations/exact/numbers.json")).expect("stored");
    let indented: String = stored.trim_end().lines().map(|line| format!("    {line}\n")).collect();
    assert!(text.contains(indented.trim_start()), "the stored text, indented: {text}");
    fs::write(env.path("exact.json"), &text).expect("write");
    assert_eq!(env.ok(&["import", "exact.json", "--dry-run", "--prune"]), "", "the export is what is stored");
}

/// file → Redis → ZooKeeper → file ends byte-identical; diff sees no difference; a change shows.
#[test]
fn copy_round_trip_across_engines_and_diff() {
    let redis = confo_testkit::RedisServer::start().expect("redis-server");
    let zk = confo_testkit::ZkServer::shared().expect("zookeeper");
    let env = Env::new();
    for ns in ["sales", "analytics"] {
        env.ok(&["ns", "create", ns]);
    }
    env.ok(&["set", "sales/database", "host=127.0.0.1", "port=5432", r#"admins=["a@x.io","ü@x.io"]"#]);
    env.ok(&["set", "sales/app.prod", "--json", r#"{"replicas": 3, "nested": {"z": 1, "a": [true, null, 1.5]}}"#]);
    env.ok(&["set", "analytics/warehouse", "dsn=postgres://wh"]);
    let back = env.path("back");
    fs::create_dir(&back).expect("mkdir");
    let file_spec = "file:./Configurations";
    let redis_spec = redis.url();
    let zk_spec = format!("zk://{}/copy", zk.connect_string());
    let back_spec = format!("file:{}", back.display());
    for (from, to) in [
        (file_spec, redis_spec.as_str()),
        (redis_spec.as_str(), zk_spec.as_str()),
        (zk_spec.as_str(), back_spec.as_str()),
    ] {
        let out = env.run(&["copy", "--from", from, "--to", to]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "copy {from} → {to}: {stderr}");
        assert!(stderr.contains("copied 3 configuration(s) in 2 namespace(s)"), "{stderr}");
        assert!(!stderr.contains('\r') && !stderr.contains("[#"), "no progress bar when not on a terminal: {stderr}");
    }
    assert_eq!(
        files(&env.path("Configurations")),
        files(&back),
        "byte-identical after file → Redis → ZooKeeper → file"
    );
    assert_eq!(env.ok(&["diff", file_spec, &zk_spec]), "");
    env.ok(&["--backend", &redis_spec, "set", "sales/database", "port=6432"]);
    env.ok(&["--backend", &redis_spec, "rm", "analytics/warehouse"]);
    env.ok(&["--backend", &redis_spec, "set", "analytics/extra", "x=1"]);
    assert_eq!(
        env.ok(&["diff", file_spec, &redis_spec]),
        "+ analytics/extra\n- analytics/warehouse\n~ sales/database\n"
    );
    env.ok(&["export", "-o", "snapshot.json"]);
    assert_eq!(
        env.ok(&["diff", "snapshot.json", &redis_spec, "sales"]),
        "~ sales/database\n",
        "a file against a backend, one namespace"
    );
    // Copying into Redis refuses names its layout cannot hold, before writing anything.
    env.ok(&["ns", "create", "bad-name"]);
    env.expect(&["copy", "--from", file_spec, "--to", &redis_spec], 2);
}

#[test]
fn completions_and_help() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish"] {
        let script = env.ok(&["completions", shell]);
        assert!(script.contains("confo") && script.contains("export"), "{shell}: {}", &script[..script.len().min(200)]);
    }
    env.expect(&["completions", "tcsh"], 2);
    for command in
        ["ns", "ls", "get", "set", "edit", "rm", "watch", "export", "import", "copy", "diff", "backend", "completions"]
    {
        let help = env.ok(&[command, "--help"]);
        assert!(help.contains("Usage: confo"), "{command}: {help}");
    }
    for command in ["ls", "get", "set", "edit", "rm", "watch", "export", "import", "copy", "diff", "completions"] {
        assert!(env.ok(&[command, "--help"]).contains("Example"), "{command} --help has examples");
    }
}

/// Someone changes the configuration while it is open in the editor: the edit is a conflict
/// (exit 4) and the other change stays.
#[test]
fn edit_detects_a_change_made_meanwhile() {
    let env = Env::new();
    env.ok(&["ns", "create", "sales"]);
    env.ok(&["set", "sales/db", "port=1"]);
    let script = env.path("editor.sh");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\n'{}' set sales/db port=99\nsed -i 's/\"port\": 1/\"port\": 2/' \"$1\"\n",
            env!("CARGO_BIN_EXE_confo")
        ),
    )
    .expect("script");
    let out = env
        .command(&["edit", "sales/db"])
        .env("EDITOR", format!("sh {}", script.display()))
        .env_remove("VISUAL")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(env.ok(&["get", "sales/db", "port"]), "99\n", "the other writer's change stays");
}

#[test]
fn colour_and_progress_only_on_a_terminal() {
    let env = Env::new();
    env.ok(&["ns", "create", "sales"]);
    for i in 0..5 {
        env.ok(&["set", &format!("sales/c{i}"), "v=1"]);
    }
    let coloured = env.on_a_terminal("get sales/nope", false);
    assert!(coloured.contains("\x1b[1;31mconfo: error:"), "{coloured:?}");
    let plain = env.on_a_terminal("get sales/nope", true);
    assert!(plain.contains("confo: error:") && !plain.contains('\x1b'), "NO_COLOR: {plain:?}");
    fs::create_dir(env.path("copy")).expect("mkdir");
    let copied = env.on_a_terminal("copy --from file:./Configurations --to file:./copy", true);
    assert!(copied.contains("[##############################] 5/5"), "a progress bar on a terminal: {copied:?}");
    assert!(copied.contains("copied 5 configuration(s)"), "{copied:?}");
}

/// A ZooKeeper store made world-open (as confo 0.1.6.2 makes it), used with credentials:
/// refused with a message naming the way in; `repair --acls` lists the nodes others may change
/// (exit 6), `repair --fix-acls` gives them the identity's ACL (exit 0), and it is then used. A
/// store without ACLs per node says so (exit 2).
#[test]
fn repair_acls_moves_a_world_open_zookeeper_store_to_credentials() {
    let zk = confo_testkit::ZkServer::shared().expect("zookeeper");
    let env = Env::new();
    let chroot = format!("/acls{}", std::process::id());
    let open = format!("zk://{}{chroot}", zk.connect_string());
    let alice = format!("zk://alice:pw@{}{chroot}", zk.connect_string());
    env.ok(&["-b", &open, "ns", "create", "pay"]);
    env.ok(&["-b", &open, "set", "pay/db", "host=db.internal"]);
    let refused = env.fails(&["-b", &alice, "get", "pay/db"], 5);
    assert!(refused.contains("confo repair --fix-acls"), "{refused}");
    let listed = check(env.run(&["-b", &alice, "repair", "--acls"]), &["repair", "--acls"], 6);
    let lines: Vec<&str> = listed.lines().filter(|l| l.starts_with("open ")).collect();
    assert_eq!(lines.len(), 3, "{listed}");
    assert!(lines.iter().all(|l| l.ends_with(" world:anyone=ALL")), "{listed}");
    assert!(lines[2].contains(&format!("{chroot}/confo/pay/db")), "{listed}");
    // The history the world-open client recorded: confo's metadata made by another identity.
    assert!(listed.lines().any(|l| l == format!("foreign {chroot}/confo-history world:anyone=ALL")), "{listed}");
    let fixed = env.ok(&["-b", &alice, "repair", "--fix-acls"]);
    assert_eq!(fixed.lines().filter(|l| l.starts_with("fixed ")).count(), 3, "{fixed}");
    assert!(fixed.lines().any(|l| l.starts_with(&format!("removed {chroot}/confo-history "))), "{fixed}");
    assert_eq!(env.ok(&["-b", &alice, "get", "pay/db", "host"]).trim(), "\"db.internal\"");
    assert_eq!(env.ok(&["-b", &alice, "repair", "--acls"]), "");
    // The old, credential-less client is now refused (old readers pass the same credentials).
    env.fails(&["-b", &open, "get", "pay/db"], 5);
    let err = env.fails(&["repair", "--acls"], 2);
    assert!(err.contains("no ACL per node"), "{err}");
}

/// A value as deep as a write accepts exports and imports back as JSON; YAML and TOML, whose
/// readers stop sooner, export what they read back and refuse (exit 2, naming it) what they
/// would not, writing nothing.
#[test]
fn the_deepest_value_exports_and_imports_back() {
    let env = Env::new();
    env.ok(&["ns", "create", "app"]);
    let nested = |levels: usize| format!("{{\"v\": {}{}}}", "[".repeat(levels - 1), "]".repeat(levels - 1));
    env.ok(&["set", "app/deep", "--json", &nested(127)]);
    env.ok(&["export", "-o", "all.json"]);
    let plan = env.stderr(&["import", "all.json", "--dry-run"]);
    assert!(plan.contains("1 unchanged"), "{plan}");
    for (extension, limit) in [("yaml", 126), ("toml", 81)] {
        let file = format!("all.{extension}");
        let err = env.fails(&["export", "-o", &file], 2);
        assert!(err.contains("app/deep") && err.contains(&format!("only to {limit}")), "{err}");
        assert!(!env.path(&file).exists(), "nothing written");
        env.ok(&["set", "app/deep", "--json", &nested(limit)]);
        env.ok(&["export", "-o", &file]);
        let plan = env.stderr(&["import", &file, "--dry-run"]);
        assert!(plan.contains("1 unchanged"), "{extension} at {limit} levels reads back: {plan}");
        std::fs::remove_file(env.path(&file)).expect("rm");
        env.ok(&["set", "app/deep", "--json", &nested(127)]);
    }
}
