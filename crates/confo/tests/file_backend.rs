//! File-backend behaviour beyond the conformance suite: Python confo's folders, corrupt files,
//! bad paths, what is (not) left in the tree.

use std::fs;
use std::path::Path;

use confo::model::error::Missing;
use confo::{Backend, BackendExt, BackendKind, BackendSpec, Change, Confo, Error, FileBackend};
use serde_json::json;

fn obj(v: serde_json::Value) -> confo::Configuration {
    v.as_object().expect("object").clone()
}

/// Every entry of the tree below `root`, relative, sorted.
fn tree(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            out.push(path.strip_prefix(root).expect("prefix").display().to_string());
            if path.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// A folder as Python confo leaves it: `json.dumps` spacing, a dotted name, and the clutter a
/// real folder collects.
fn python_confo_folder() -> confo_testkit::StoreDir {
    let dir = confo_testkit::store_dir().expect("temp dir");
    let root = dir.path();
    fs::create_dir_all(root.join("sales")).expect("mkdir");
    fs::create_dir_all(root.join("analytics")).expect("mkdir");
    fs::write(
        root.join("sales/database.json"),
        r#"{"host": "127.0.0.1", "port": 5432, "admins": ["a@x.io", "b@x.io"]}"#,
    )
    .expect("write");
    fs::write(root.join("sales/app.prod.json"), r#"{"replicas": 3}"#).expect("write");
    fs::write(root.join("sales/.DS_Store"), b"\0\x01binary").expect("write");
    fs::write(root.join("sales/notes.txt"), "not a configuration").expect("write");
    fs::create_dir(root.join("sales/archive")).expect("mkdir");
    fs::write(root.join("analytics/warehouse.json"), "{\n    \"dsn\": \"postgres://wh\"\n}").expect("write");
    fs::write(root.join("README.txt"), "a stray file at the top").expect("write");
    fs::create_dir(root.join(".git")).expect("mkdir");
    dir
}

#[tokio::test]
async fn reads_an_existing_python_confo_folder() {
    let dir = python_confo_folder();
    let backend = FileBackend::open(dir.path()).expect("open");
    assert_eq!(backend.list_namespaces().await.expect("list"), ["analytics", "sales"]);
    let sales = backend.load_namespace("sales").await.expect("load");
    assert_eq!(sales.keys().collect::<Vec<_>>(), ["app.prod", "database"], "dotted names kept whole; clutter ignored");
    assert_eq!(
        *sales["database"].value,
        obj(json!({"host": "127.0.0.1", "port": 5432, "admins": ["a@x.io", "b@x.io"]}))
    );
    let keys: Vec<&String> = sales["database"].value.keys().collect();
    assert_eq!(keys, ["host", "port", "admins"]);
}

/// Read in compact form on several threads (300 files), a namespace lists its corrupt files
/// as the bulk read does, and the others hold their own values.
#[tokio::test]
async fn a_compact_read_on_several_threads_reports_corrupt_files() {
    let dir = confo_testkit::store_dir().expect("temp dir");
    let ns = dir.path().join("ns");
    fs::create_dir(&ns).expect("mkdir");
    for i in 0..300 {
        fs::write(ns.join(format!("c{i:03}.json")), format!(r#"{{"i": {i}, "name": "c{i:03}"}}"#)).expect("write");
    }
    fs::write(ns.join("c017.json"), "{\n  \"a\": \n}").expect("write");
    fs::write(ns.join("c250.json"), "[1]").expect("write");
    let backend = FileBackend::open(dir.path()).expect("open");
    let data = backend.load_namespace("ns").await.expect("load");
    let compact = backend.load_namespace_compact("ns").await.expect("load compact");
    assert_eq!(compact.entries.len(), 298);
    for (name, value, version) in &compact.entries {
        assert_eq!(value.field("name"), Some(json!(name)), "{name} holds its own value");
        assert_eq!(*version, data[name.as_str()].version, "{name}");
    }
    assert_eq!(compact.corrupt, data.corrupt, "the same corrupt entries, with the same locations");
    assert_eq!(compact.corrupt.keys().collect::<Vec<_>>(), ["c017", "c250"]);
    assert!(compact.corrupt["c017"].corruption.location.ends_with("ns/c017.json:3:1"), "{:?}", compact.corrupt);
}

#[tokio::test]
async fn corrupt_files_are_all_reported_with_path_line_and_column() {
    let dir = confo_testkit::store_dir().expect("temp dir");
    let ns = dir.path().join("ns");
    fs::create_dir(&ns).expect("mkdir");
    fs::write(ns.join("good.json"), r#"{"v": 1}"#).expect("write");
    fs::write(ns.join("broken.json"), "{\n  \"a\": 1,\n  \"b\": \n}").expect("write");
    fs::write(ns.join("list.json"), "[1, 2]").expect("write");
    fs::write(ns.join("empty.json"), "").expect("write");
    let backend = FileBackend::open(dir.path()).expect("open");
    let data = backend.load_namespace("ns").await.expect("the readable part reads");
    assert_eq!(data.len(), 1);
    let err = data.corruption_error().expect("corrupt entries");
    let Error::Corrupt { corruptions } = &err else { panic!("{err:?}") };
    assert_eq!(corruptions.len(), 3, "{corruptions:?}");
    let broken = corruptions.iter().find(|c| c.location.contains("broken.json")).expect("broken listed");
    assert!(broken.location.ends_with("ns/broken.json:4:1"), "{}", broken.location);
    let list = corruptions.iter().find(|c| c.location.contains("list.json")).expect("list listed");
    assert!(list.problem.contains("an array, not a JSON object"), "{}", list.problem);
    assert!(corruptions.iter().any(|c| c.location.contains("empty.json")));
    let message = err.to_string();
    assert!(message.contains("broken.json:4:1") && message.contains("list.json"), "{message}");
    // Nothing was turned into null or {}; each blocks only itself, and can be repaired.
    fs::remove_file(ns.join("empty.json")).expect("rm");
    confo::conformance::corrupt_entries_block_only_themselves(
        std::sync::Arc::new(backend),
        "ns",
        "broken",
        "list",
        "ns/broken.json:4:1",
    )
    .await;
    assert!(!ns.join("list.json").exists());
}

#[tokio::test]
async fn bad_config_paths_are_clear_errors() {
    let dir = confo_testkit::store_dir().expect("temp dir");
    let missing = dir.path().join("nope");
    let err = FileBackend::open(&missing).expect_err("missing");
    assert!(matches!(err, Error::NotFound { what: Missing::Store, .. }), "{err:?}");
    assert!(err.to_string().contains("nope") && err.to_string().contains("mkdir"), "{err}");
    assert!(!missing.exists(), "not created behind the user's back");

    let file = dir.path().join("file");
    fs::write(&file, "x").expect("write");
    let err = FileBackend::open(&file).expect_err("a file");
    assert!(matches!(&err, Error::InvalidSpec { key: Some(k), .. } if k == "config_path"), "{err:?}");
    assert!(err.to_string().contains("is a file, not a folder"), "{err}");
    // Through a credentials dictionary and the manager, the same error.
    let spec = BackendSpec::from_credentials(BackendKind::FILE, &json!({"config_path": file})).expect("spec");
    assert!(matches!(Confo::new().load_backend("f", &spec).await, Err(Error::InvalidSpec { .. })));
}

#[tokio::test]
async fn a_namespace_name_taken_by_a_file_is_an_error_not_a_namespace() {
    let dir = confo_testkit::store_dir().expect("temp dir");
    fs::write(dir.path().join("taken"), "x").expect("write");
    let backend = FileBackend::open(dir.path()).expect("open");
    assert!(matches!(backend.create_namespace("taken").await, Err(Error::AlreadyExists { .. })));
    assert!(backend.load_namespace("taken").await.expect_err("not a namespace").is_not_found());
}

#[tokio::test]
async fn writes_leave_only_json_files_in_the_tree() {
    let dir = confo_testkit::store_dir().expect("temp dir");
    let backend = FileBackend::open(dir.path()).expect("open");
    backend.create_namespace("sales").await.expect("create");
    let changes: Vec<Change> = (0..20).map(|i| Change::put(format!("c{i}"), obj(json!({"i": i})))).collect();
    backend.write("sales", &changes).await.into_result().expect("write");
    backend.delete_configuration("sales", "c0").await.expect("delete");
    backend.create_namespace("gone").await.expect("create");
    backend.put_configuration("gone", "x", obj(json!({}))).await.expect("put");
    backend.delete_namespace("gone").await.expect("delete ns");
    let mut expected: Vec<String> = (1..20).map(|i| format!("sales/c{i}.json")).collect();
    expected.push("sales".into());
    expected.sort();
    assert_eq!(tree(dir.path()), expected, "no temp, lock, trash or metadata files");
}

#[tokio::test]
async fn a_temp_file_left_by_a_crash_is_removed_by_the_next_persist() {
    let dir = confo_testkit::store_dir().expect("temp dir");
    let backend = FileBackend::open(dir.path()).expect("open");
    backend.create_namespace("ns").await.expect("create");
    fs::write(dir.path().join("ns/.confo-tmp-99999-0"), "{\"torn").expect("write");
    assert!(backend.load_namespace("ns").await.expect("load").is_empty(), "readers skip it");
    let batch = [Change::put("c", obj(json!({}))), Change::put("d", obj(json!({})))];
    backend.write("ns", &batch).await.into_result().expect("write");
    assert_eq!(tree(dir.path()), ["ns", "ns/c.json", "ns/d.json"]);
}

#[tokio::test]
async fn a_failed_write_leaves_nothing_behind() {
    let dir = confo_testkit::store_dir().expect("temp dir");
    let backend = FileBackend::open(dir.path()).expect("open");
    backend.create_namespace("ns").await.expect("create");
    // A folder where the file should go makes the rename fail after the temp file was written.
    fs::create_dir(dir.path().join("ns/blocked.json")).expect("mkdir");
    let changes = [Change::put("first", obj(json!({"a": 1}))), Change::put("blocked", obj(json!({"b": 2})))];
    let report = backend.write("ns", &changes).await;
    assert_eq!(report.applied.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["first"]);
    let err = report.error.expect("error");
    assert!(err.to_string().contains("blocked.json"), "{err}");
    assert_eq!(tree(dir.path()), ["ns", "ns/blocked.json", "ns/first.json"], "no temp file left");
}

/// Runs Python confo 0.1.6.2 itself (installed by the README's test command into a venv named
/// by `CONFO_PY_COMPAT`) on a folder we wrote.
#[tokio::test]
async fn python_confo_reads_what_we_write() {
    let python = std::env::var("CONFO_PY_COMPAT").unwrap_or_else(|_| "target/confo-py-compat/bin/python".into());
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(python);
    assert!(
        python.exists(),
        "Python confo 0.1.6.2 is needed at {}: run the README's test command, or \
         `python3 -m venv target/confo-py-compat && target/confo-py-compat/bin/pip install --no-deps \
         confo==0.1.6.2 kazoo==2.8.0 singleton-decorator==1.0.0 six==1.16.0`",
        python.display()
    );
    let dir = confo_testkit::store_dir().expect("temp dir");
    let confo = Confo::new();
    confo.load_backend("files", &format!("file:{}", dir.path().display()).parse().expect("spec")).await.expect("load");
    confo.activate_backend("files").expect("activate");
    for ns in ["sales", "analytics"] {
        confo.create_namespace(ns).await.expect("create");
    }
    confo.use_namespace("sales").await.expect("use");
    confo.set("database", "host", "127.0.0.1").expect("set");
    confo.set("database", "port", 5432).expect("set");
    confo.set("database", "admins", json!(["ünï@x.io"])).expect("set");
    confo.use_namespace("analytics").await.expect("use");
    confo.set("warehouse", "dsn", "postgres://wh").expect("set");
    confo.persist().await.expect("persist");
    // Recorded beside the root, where Python confo never looks.
    confo.use_namespace("sales").await.expect("use");
    confo.set("database", "port", 5433).expect("set");
    confo.persist().await.expect("persist");
    confo.rollback("database", 1).await.expect("rollback");
    let history = dir.path().parent().expect("parent").join(".root.confo/history/sales/database");
    assert_eq!(fs::read_dir(&history).expect("history").count(), 3);

    let script = r#"
import json, sys
from confo.Confo import Confo
import confo.Backends as BE
c = Confo()
c.load_backend(credentials={"config_path": sys.argv[1]}, name="f", backend_type=BE.FILE_BACKEND)
c.activate_backend("f")
out = {"namespaces": sorted(c.get_namespaces()["all_namespaces"])}
for ns in out["namespaces"]:
    c.use_namespace(ns)
    out[ns] = c.get_all()
print(json.dumps(out))
"#;
    let output =
        std::process::Command::new(&python).arg("-c").arg(script).arg(dir.path()).output().expect("run python");
    assert!(output.status.success(), "python confo failed: {}", String::from_utf8_lossy(&output.stderr));
    let seen: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json from python");
    assert_eq!(
        seen,
        json!({
            "namespaces": ["analytics", "sales"],
            "sales": {"database": {"host": "127.0.0.1", "port": 5432, "admins": ["ünï@x.io"]}},
            "analytics": {"warehouse": {"dsn": "postgres://wh"}}
        })
    );
}

/// Edits by other programs are reported: a text editor writing a file in place, a new file
/// dropped in, a file removed.
#[tokio::test]
async fn watch_sees_edits_by_other_programs() {
    let dir = confo_testkit::store_dir().expect("temp dir");
    fs::create_dir(dir.path().join("sales")).expect("mkdir");
    fs::write(dir.path().join("sales/db.json"), r#"{"port": 1}"#).expect("write");
    let confo = Confo::new();
    confo.load_backend("f", &format!("file:{}", dir.path().display()).parse().expect("spec")).await.expect("load");
    confo.activate_backend("f").expect("activate");
    let mut watcher = confo.watch("sales", None).await.expect("watch");
    fs::write(dir.path().join("sales/db.json"), r#"{"port": 2}"#).expect("in-place write");
    let event = watcher.next_timeout(std::time::Duration::from_secs(10)).await.expect("event").expect("ok");
    assert_eq!((event.kind, event.configuration.as_deref()), (confo::EventKind::Changed, Some("db")));
    assert_eq!(event.value.expect("value")["port"], json!(2));
    fs::write(dir.path().join("sales/cache.json"), r#"{"ttl": 5}"#).expect("new file");
    let event = watcher.next_timeout(std::time::Duration::from_secs(10)).await.expect("event").expect("ok");
    assert_eq!((event.kind, event.configuration.as_deref()), (confo::EventKind::Created, Some("cache")));
    fs::remove_file(dir.path().join("sales/db.json")).expect("rm");
    let event = watcher.next_timeout(std::time::Duration::from_secs(10)).await.expect("event").expect("ok");
    assert_eq!((event.kind, event.configuration.as_deref()), (confo::EventKind::Deleted, Some("db")));
    // Our own temporary files never make events of their own.
    fs::write(dir.path().join("sales/.confo-tmp-1-1"), "{").expect("temp");
    assert!(watcher.next_timeout(std::time::Duration::from_millis(300)).await.is_none());
}

/// Links, as a Kubernetes ConfigMap mount makes them (`db.json -> ..data/db.json`) and as an
/// operator might (a namespace folder or a configuration kept elsewhere).
#[tokio::test]
async fn symbolic_links_are_read_and_written_through_consistently() {
    use std::os::unix::fs::symlink;
    let dir = confo_testkit::store_dir().expect("temp dir");
    let (root, outside) = (dir.path().join("root"), dir.path().join("outside"));
    fs::create_dir_all(root.join("mounted/..data")).expect("mkdir");
    fs::create_dir_all(outside.join("ns")).expect("mkdir");
    fs::write(root.join("mounted/..data/db.json"), "{\"host\": \"a\"}\n").expect("write");
    symlink("..data/db.json", root.join("mounted/db.json")).expect("link inside");
    fs::write(outside.join("secret.json"), "{\"token\": \"t\"}\n").expect("write");
    symlink(outside.join("secret.json"), root.join("mounted/secret.json")).expect("link out");
    symlink(outside.join("ns"), root.join("linked")).expect("linked namespace");
    symlink(outside.join("missing.json"), root.join("mounted/dangling.json")).expect("dangling");

    let follow = FileBackend::open(&root).expect("open");
    let data = follow.load_namespace("mounted").await.expect("read through links");
    assert_eq!((data["db"].value["host"].clone(), data["secret"].value["token"].clone()), (json!("a"), json!("t")));
    assert!(!data.contains_key("dangling"));

    // A write through a link replaces its target atomically; the link stays a link.
    follow.put_configuration("mounted", "db", obj(json!({"host": "b"}))).await.expect("write through");
    follow.put_configuration("mounted", "secret", obj(json!({"token": "u"}))).await.expect("write through");
    assert!(fs::symlink_metadata(root.join("mounted/db.json")).expect("stat").is_symlink());
    assert!(fs::read_to_string(root.join("mounted/..data/db.json")).expect("target").contains("\"b\""));
    assert!(fs::read_to_string(outside.join("secret.json")).expect("target").contains("\"u\""));
    assert_eq!(tree(&outside), ["ns", "secret.json"], "no temporary file left beside the target");
    // A dangling link is refused, not replaced by a file.
    let report = follow.write("mounted", &[Change::put("dangling", obj(json!({})))]).await;
    let err = report.error.expect("refused");
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert!(fs::symlink_metadata(root.join("mounted/dangling.json")).expect("stat").is_symlink());
    // Deleting removes the link, never its target.
    follow.write("mounted", &[Change::delete("secret")]).await.error.map_or(Ok(()), Err).expect("delete");
    assert!(outside.join("secret.json").exists() && !root.join("mounted/secret.json").exists());
    symlink(outside.join("secret.json"), root.join("mounted/secret.json")).expect("link out again");
    // A linked namespace folder works with the default.
    follow.put_configuration("linked", "c", obj(json!({"v": 1}))).await.expect("linked namespace");
    assert!(outside.join("ns/c.json").exists());

    // links=inside: links within the root still work; any that leave it are refused, for reads
    // and writes, naming the link.
    let spec: BackendSpec = format!("file:{}?links=inside", root.display()).parse().expect("spec");
    let inside = spec.open().await.expect("open");
    let insecure = |err: Error, name: &str| {
        assert!(matches!(err, Error::Insecure { .. }) && err.to_string().contains(name), "{err:?}");
    };
    insecure(inside.load_namespace("mounted").await.expect_err("link out"), "secret.json");
    insecure(inside.load_namespace("linked").await.expect_err("linked namespace"), "linked");
    let report = inside.write("mounted", &[Change::put("secret", obj(json!({"token": "x"})))]).await;
    insecure(report.error.expect("refused"), "secret.json");
    assert!(fs::read_to_string(outside.join("secret.json")).expect("target").contains("\"u\""), "unchanged");
    fs::remove_file(root.join("mounted/secret.json")).expect("rm link");
    inside.put_configuration("mounted", "db", obj(json!({"host": "c"}))).await.expect("a link inside the root");
    assert_eq!(inside.load_namespace("mounted").await.expect("read")["db"].value["host"], json!("c"));
}

#[tokio::test]
async fn secrets_are_sealed_at_rest() {
    let dir = confo_testkit::store_dir().expect("temp dir");
    let backend = confo::FileBackend::open(dir.path()).expect("open");
    let ns = confo::conformance::store_a_secret(std::sync::Arc::new(backend)).await;
    confo::conformance::assert_no_plaintext(&std::fs::read(dir.path().join(&ns).join("db.json")).expect("read"));
}

/// A write that crashed after its revision and before its rename leaves a revision that is not
/// listed and is removed by the next writer, whose number then follows the last committed one;
/// with `history_keep=1` the committed revision before the newest is not dropped by the write
/// that follows it, so numbers never restart.
#[tokio::test]
async fn an_uncommitted_revision_is_hidden_then_replaced_and_numbers_go_on() {
    let dir = confo_testkit::store_dir().expect("temp dir");
    let spec: confo::BackendSpec = format!("file:{}?history_keep=1", dir.path().display()).parse().expect("spec");
    let backend = spec.open().await.expect("open");
    backend.create_namespace("ns").await.expect("create");
    for v in 1..=3 {
        backend.put_configuration("ns", "c", json!({"v": v}).as_object().expect("object").clone()).await.expect("put");
    }
    let history = backend.configuration_history("ns", "c").await.expect("history");
    let numbers: Vec<u64> = history.revisions.iter().map(|r| r.number).collect();
    assert_eq!(numbers, [3, 2], "the one before the newest stays until the next write");
    // A writer that died before its rename: revision 4 names the file's current version as its
    // `before`, and a version the file never reached as its `after`.
    let current = history.revisions[0].version_after.clone().expect("after");
    let folder = dir.path().parent().expect("parent").join(".root.confo/history/ns/c");
    let torn = json!({"n": 4, "op": "change", "time": "2026-11-28T00:00:00.000Z", "actor": "x", "host": "",
        "tool": "t", "message": null, "restores": null, "before": current, "after": "never", "value": {"v": 4}});
    fs::write(folder.join("0000000004.json"), torn.to_string()).expect("write");
    let listed: Vec<u64> =
        backend.configuration_history("ns", "c").await.expect("history").revisions.iter().map(|r| r.number).collect();
    assert_eq!(listed, [3, 2], "an uncommitted revision is never listed");
    backend.put_configuration("ns", "c", json!({"v": 5}).as_object().expect("object").clone()).await.expect("put");
    let history = backend.configuration_history("ns", "c").await.expect("history");
    assert_eq!(history.revisions[0].number, 4, "numbered after the last committed one");
    assert_eq!(history.revisions[0].value.as_deref().expect("value")["v"], json!(5));
    assert_eq!(fs::read_dir(&folder).expect("folder").count(), 2, "the torn one is gone, 2 is dropped");
}
