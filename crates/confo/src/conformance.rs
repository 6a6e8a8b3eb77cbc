//! The behaviour every backend shares, as plain async functions that take a `&dyn Backend`.
//!
//! Not API: compiled with the `conformance` feature, which the crate's own tests enable. Each
//! function works in namespaces of its own (random names), so functions can run in parallel
//! against one store, and a shared server is never wiped. A backend's test module runs them all
//! with [`conformance_tests!`](crate::conformance_tests).

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::json;

use crate::backend::Backend;
use crate::model::change::{Change, Precondition};
use crate::model::error::{Error, Missing};
use crate::model::version::Configuration;
use crate::store::ext::BackendExt;

/// Records that `function` (or part of it) did not run on `backend` for want of `capability`:
/// a line appended to `$CONFO_CONFORMANCE_SKIPS`, else `target/conformance-skips.txt` of the
/// workspace, which the test command prints at the end of a run. A skip is never silent.
pub fn skipped(backend: &dyn Backend, function: &str, capability: &str) {
    use std::io::Write;
    let path = std::env::var_os("CONFO_CONFORMANCE_SKIPS").map_or_else(
        || std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/conformance-skips.txt")),
        std::path::PathBuf::from,
    );
    // The engine, not the store's place (a temp folder, a port): one line per engine.
    let describe = backend.describe();
    let engine = describe.split_whitespace().next().unwrap_or("?");
    let line = format!("{function}: skipped on {engine}: it has no {capability}\n");
    eprint!("{line}");
    if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(&path) {
        let _ = file.write_all(line.as_bytes());
    }
}

/// A namespace name no other test uses: letters, digits and `_` only, so every backend's name
/// rules accept it.
pub fn unique_namespace(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{tag}_{}_{}_{nanos}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

fn obj(value: serde_json::Value) -> Configuration {
    match value {
        serde_json::Value::Object(map) => map,
        _ => panic!("not an object"),
    }
}

async fn fresh_namespace(store: &dyn Backend, tag: &str) -> String {
    let ns = unique_namespace(tag);
    assert!(store.create_namespace(&ns).await.unwrap(), "namespace {ns} was new");
    ns
}

/// A corrupt entry blocks only itself. The caller planted, in namespace `ns` of `store`, a
/// readable configuration `good` (with `"v": 1`) and two unreadable entries, `fixed` and `gone`
/// (each backend breaks data its own way; `fixed`'s location contains `location_part`). Then:
/// reading the namespace gives `good` and lists both as corrupt; the manager reads and writes
/// the others, lists the corrupt ones, refuses to read or field-edit them, replaces `fixed` as a
/// whole (readable again) and removes `gone`.
pub async fn corrupt_entries_block_only_themselves(
    store: Arc<dyn Backend>,
    ns: &str,
    fixed: &str,
    gone: &str,
    location_part: &str,
) {
    let data = store.load_namespace(ns).await.unwrap();
    assert!(data.contains_key("good"), "the readable one is read");
    let entry = data.corrupt.get(fixed).unwrap_or_else(|| panic!("{fixed} listed corrupt: {:?}", data.corrupt));
    assert!(entry.corruption.location.contains(location_part), "{}", entry.corruption);
    assert!(data.corrupt.contains_key(gone), "{:?}", data.corrupt);
    assert!(store.load_configuration(ns, fixed).await.unwrap_err().to_string().contains(location_part));

    let confo = manager_on(store.clone(), ns).await;
    assert_eq!(confo.get_field("good", "v").unwrap(), Some(json!(1)));
    let listed = confo.list().unwrap();
    assert!(listed.contains(&fixed.to_owned()) && listed.contains(&gone.to_owned()), "{listed:?}");
    assert_eq!(confo.corrupt().unwrap().len(), 2);
    let err = confo.get(fixed).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }) && err.to_string().contains("replace"), "{err}");
    assert!(confo.set(fixed, "x", 1).is_err(), "a field edit needs a readable configuration");
    // Other configurations write normally.
    confo.set("other", "v", 2).unwrap();
    confo.set("good", "v", 3).unwrap();
    confo.persist().await.unwrap();
    // Replaced as a whole, one is readable again; removed, the other is gone.
    confo.replace(fixed, obj(json!({"repaired": true}))).unwrap();
    confo.remove(gone).unwrap();
    confo.persist().await.unwrap();
    let data = store.load_namespace(ns).await.unwrap();
    assert!(data.corrupt.is_empty(), "{:?}", data.corrupt);
    assert_eq!(data[fixed].value["repaired"], json!(true));
    assert!(!data.contains_key(gone));
    assert_eq!((data["good"].value["v"].clone(), data["other"].value["v"].clone()), (json!(3), json!(2)));
    assert!(confo.corrupt().unwrap().is_empty());
}

/// Works through `Arc<dyn Backend>` as well as `&dyn Backend`.
pub async fn through_arc(store: Arc<dyn Backend>) {
    let ns = fresh_namespace(&*store, "arc").await;
    store.put_configuration(&ns, "c", obj(json!({"a": 1}))).await.unwrap();
    assert_eq!(store.load_namespace(&ns).await.unwrap().len(), 1);
    store.delete_namespace(&ns).await.unwrap();
}

fn author(actor: &str) -> Arc<crate::model::history::Author> {
    Arc::new(crate::model::history::Author::current("test").with_actor(actor))
}

/// A field in the clear purged from history (issue 33): every revision holding it gets the
/// marker, numbers unchanged, the purge recorded as a revision; a sealed value and other fields
/// are left; a rollback to a purged revision leaves the field out when nothing is sealed there.
/// (A backend without history: nothing to do.)
pub async fn history_purge_rewrites_every_revision(backend: Arc<dyn Backend>) {
    use crate::store::Page;
    if !backend.capabilities().history {
        skipped(&*backend, "history_purge_rewrites_every_revision", "history");
        return;
    }
    let ns = fresh_namespace(&*backend, "purge").await;
    let store = crate::store::Store::new(backend.clone());
    // Two revisions hold the field in the clear; the third (the stored value) no longer does
    // (made secret, or removed: what a purge follows).
    for v in 1..=3 {
        let mut value = json!({"v": v, "list": [{"password": "deep"}]});
        if v < 3 {
            value["password"] = json!(format!("clear-{v}"));
        }
        store.put(&ns, "c", obj(value), Precondition::Any).await.unwrap();
    }
    let rewritten = store.purge_history_field(&ns, "c", "/password").await.unwrap();
    assert_eq!(rewritten, [1, 2]);
    let history = store.history(&ns, "c", Page::all()).await.unwrap();
    let numbers: Vec<u64> = history.revisions.iter().map(|r| r.number).collect();
    assert_eq!(numbers, [4, 3, 2, 1], "numbers unchanged, the purge recorded");
    assert!(history.revisions[0].message.as_deref().unwrap_or_default().contains("history purge: /password"));
    for revision in &history.revisions[2..] {
        let value = revision.value.as_ref().unwrap();
        assert!(crate::secrets::is_purged(&value["password"]), "{value:?}");
        assert_eq!(value["list"][0]["password"], json!("deep"), "another field is left");
        assert!(!serde_json::to_string(&**value).unwrap().contains("clear-"));
    }
    assert_eq!(store.get(&ns, "c").await.unwrap().unwrap().value["v"], json!(3), "the stored value is kept");
    store.put(&ns, "c", obj(json!({"v": 9})), Precondition::Any).await.unwrap();
    store.rollback(&ns, "c", 2, None).await.unwrap();
    let now = store.get(&ns, "c").await.unwrap().unwrap().value;
    assert_eq!(now["v"], json!(2));
    assert!(now.get("password").is_none(), "nothing sealed there now: the field is left out: {now:?}");
    assert!(store.purge_history_field(&ns, "c", "/password").await.unwrap().is_empty(), "nothing left to purge");
    // The newest revision purged too (the stored value still holds the field in the clear):
    // the next write is not taken for a change made outside confo.
    store.put(&ns, "c", obj(json!({"v": 10, "password": "clear-10"})), Precondition::Any).await.unwrap();
    let newest = store.history(&ns, "c", Page::all()).await.unwrap().revisions[0].number;
    assert!(store.purge_history_field(&ns, "c", "/password").await.unwrap().contains(&newest));
    store.put(&ns, "c", obj(json!({"v": 11})), Precondition::Any).await.unwrap();
    let history = store.history(&ns, "c", Page::all()).await.unwrap();
    assert!(
        history.revisions.iter().all(|r| r.operation != crate::model::history::Operation::External),
        "{:?}",
        history.revisions.iter().map(|r| (r.number, r.operation)).collect::<Vec<_>>()
    );
    backend.delete_namespace(&ns).await.unwrap();
}

/// History, on a backend that keeps it (on one that does not, reading it is a clear
/// `NotFound`): three writes by three actors are three revisions with their actors and values;
/// rollback to 1 writes 1's value as revision 4 (recorded as a rollback of 1); a stale rollback
/// is a conflict that writes nothing; an unknown revision is `NotFound`; a deleted
/// configuration keeps its history and is restored from it; rolling back to a deletion is
/// refused; the namespace's log lists every change, newest first, filtered by actor.
pub async fn history_records_who_and_rolls_back(backend: Arc<dyn Backend>) {
    use crate::model::history::Operation;
    use crate::store::{LogFilter, Page};
    let ns = fresh_namespace(&*backend, "hist").await;
    let store = crate::store::Store::new(backend.clone());
    if !backend.capabilities().history {
        skipped(&*backend, "history_records_who_and_rolls_back (all but the error)", "history");
        let err = store.history(&ns, "c", Page::all()).await.unwrap_err();
        assert!(matches!(err, Error::NotFound { what: Missing::History, .. }), "{err}");
        assert!(err.to_string().contains("history=off"), "{err}");
        backend.delete_namespace(&ns).await.unwrap();
        return;
    }
    assert!(store.history(&ns, "c", Page::all()).await.unwrap().revisions.is_empty());
    for (actor, v) in [("alice", 1), ("bob", 2), ("carol", 3)] {
        store.with_author(author(actor)).put(&ns, "c", obj(json!({"v": v})), Precondition::Any).await.unwrap();
    }
    let history = store.history(&ns, "c", Page::all()).await.unwrap();
    assert!(history.corrupt.is_empty(), "{:?}", history.corrupt);
    let seen: Vec<(u64, &str, Operation, serde_json::Value)> = history
        .revisions
        .iter()
        .map(|r| (r.number, r.actor.as_str(), r.operation, r.value.as_ref().unwrap()["v"].clone()))
        .collect();
    assert_eq!(
        seen,
        [
            (3, "carol", Operation::Change, json!(3)),
            (2, "bob", Operation::Change, json!(2)),
            (1, "alice", Operation::Create, json!(1))
        ]
    );
    assert_eq!(history.revisions[0].tool, "test");
    assert_eq!(store.history(&ns, "c", Page { before: Some(3), limit: 1 }).await.unwrap().revisions[0].number, 2);

    let by_dave = store.with_author(Arc::new(
        crate::model::history::Author::current("test").with_actor("dave").with_message(Some("back to one".into())),
    ));
    by_dave.rollback(&ns, "c", 1, None).await.unwrap();
    assert_eq!(backend.load_configuration(&ns, "c").await.unwrap().unwrap().value["v"], json!(1));
    let four = store.revision(&ns, "c", 4).await.unwrap();
    assert_eq!((four.operation, four.restores, four.actor.as_str()), (Operation::Rollback, Some(1), "dave"));
    assert_eq!((four.message.as_deref(), four.value.unwrap()["v"].clone()), (Some("back to one"), json!(1)));

    // A rollback based on a version someone has since replaced is a conflict, and writes nothing.
    let seen_version = backend.load_configuration(&ns, "c").await.unwrap().unwrap().version;
    store.put(&ns, "c", obj(json!({"v": 5})), Precondition::Any).await.unwrap();
    let err = store.rollback(&ns, "c", 2, Some(Precondition::Version(seen_version))).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert_eq!(store.history(&ns, "c", Page::all()).await.unwrap().head(), 5);
    assert_eq!(backend.load_configuration(&ns, "c").await.unwrap().unwrap().value["v"], json!(5));

    let err = store.revision(&ns, "c", 99).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { what: Missing::Revision, .. }), "{err}");
    assert!(err.to_string().contains("c@99"), "{err}");
    let err = store.rollback(&ns, "c", 99, None).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { what: Missing::Revision, .. }), "{err}");

    // Deleted, its history stays, and it is restored from it.
    store.remove(&ns, "c").await.unwrap();
    let six = store.revision(&ns, "c", 6).await.unwrap();
    assert_eq!((six.operation, six.value), (Operation::Delete, None));
    let err = store.rollback(&ns, "c", 6, None).await.unwrap_err();
    assert!(matches!(err, Error::InvalidValue { .. }), "{err}");
    store.rollback(&ns, "c", 3, None).await.unwrap();
    assert_eq!(backend.load_configuration(&ns, "c").await.unwrap().unwrap().value["v"], json!(3));
    assert_eq!(store.revision(&ns, "c", 7).await.unwrap().restores, Some(3));

    // (Times are kept to the millisecond: the log's order within one is not defined.)
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    store.with_author(author("erin")).put(&ns, "other", obj(json!({"o": 1})), Precondition::Any).await.unwrap();
    let (log, corrupt) = store.log(&ns, &LogFilter::default()).await.unwrap();
    assert!(corrupt.is_empty());
    assert_eq!(log.len(), 8, "{log:?}");
    assert_eq!((log[0].0.as_str(), log[0].1.actor.as_str()), ("other", "erin"));
    let (alice, _) = store.log(&ns, &LogFilter { actor: Some("alice".into()), ..Default::default() }).await.unwrap();
    assert_eq!(alice.iter().map(|(c, r)| (c.as_str(), r.number)).collect::<Vec<_>>(), [("c", 1)]);

    // Numbers at the limits of JSON come back from a revision exactly as written.
    let exact: Configuration =
        serde_json::from_str(r#"{"big": 123456789012345678901234567890, "d": 0.30000000000000004, "z": -0.0}"#)
            .unwrap();
    store.put(&ns, "numbers", exact.clone(), Precondition::Any).await.unwrap();
    assert_eq!(store.revision(&ns, "numbers", 1).await.unwrap().value.as_deref(), Some(&exact));
    backend.delete_namespace(&ns).await.unwrap();
}

/// 8 writers × 50 unconditional writes to one configuration, at once: every acknowledged write
/// has exactly one revision, numbered without gaps or repeats (the head is 400, the kept
/// revisions are consecutive and each holds a different acknowledged write).
pub async fn history_numbers_concurrent_writes(backend: Arc<dyn Backend>) {
    if !backend.capabilities().history {
        skipped(&*backend, "history_numbers_concurrent_writes", "history");
        return;
    }
    let ns = fresh_namespace(&*backend, "histc").await;
    let store = crate::store::Store::new(backend.clone());
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let store = store.clone();
            let ns = ns.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    store.put(&ns, "c", obj(json!({"w": w, "i": i})), Precondition::Any).await.unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let history = store.history(&ns, "c", crate::store::Page::all()).await.unwrap();
    assert!(history.corrupt.is_empty(), "{:?}", history.corrupt);
    assert_eq!(history.head(), 400);
    let numbers: Vec<u64> = history.revisions.iter().map(|r| r.number).collect();
    let oldest = *numbers.last().unwrap();
    assert_eq!(numbers, (oldest..=400).rev().collect::<Vec<_>>(), "consecutive, newest first");
    let mut writes: Vec<(i64, i64)> = history
        .revisions
        .iter()
        .map(|r| {
            let v = r.value.as_ref().unwrap();
            (v["w"].as_i64().unwrap(), v["i"].as_i64().unwrap())
        })
        .collect();
    let kept = writes.len();
    writes.sort_unstable();
    writes.dedup();
    assert_eq!(writes.len(), kept, "no write is recorded twice");
    // The suite's backends keep 500 revisions: all 400 are there, numbered 1 to 400.
    if kept < 400 {
        assert_eq!(oldest, 401 - kept as u64, "only retention dropped the oldest");
    } else {
        assert_eq!((kept, oldest), (400, 1), "every acknowledged write has its revision");
    }
    // Each writer's own writes appear in the order it made them.
    for w in 0..8 {
        let mine: Vec<i64> = history
            .revisions
            .iter()
            .rev()
            .filter(|r| r.value.as_ref().unwrap()["w"] == json!(w))
            .map(|r| r.value.as_ref().unwrap()["i"].as_i64().unwrap())
            .collect();
        assert!(mine.windows(2).all(|p| p[0] < p[1]), "writer {w}: {mine:?}");
    }
    backend.delete_namespace(&ns).await.unwrap();
}

/// Retention, on a backend made with `history_keep=3`: six writes keep revisions 4 to 6 (the
/// numbers go on; none is reused), a deleted configuration keeps its newest three, and a
/// revision that retention dropped is `NotFound` naming what is kept.
pub async fn history_retention_keeps_the_newest(backend: Arc<dyn Backend>) {
    let ns = fresh_namespace(&*backend, "histk").await;
    let store = crate::store::Store::new(backend.clone());
    for v in 1..=6 {
        store.put(&ns, "c", obj(json!({"v": v})), Precondition::Any).await.unwrap();
    }
    let numbers = |h: &crate::model::history::History| h.revisions.iter().map(|r| r.number).collect::<Vec<_>>();
    let history = store.history(&ns, "c", crate::store::Page::all()).await.unwrap();
    assert_eq!(numbers(&history), [6, 5, 4]);
    assert_eq!(history.revisions[2].value.as_ref().unwrap()["v"], json!(4));
    let err = store.revision(&ns, "c", 2).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { what: Missing::Revision, .. }), "{err}");
    assert!(err.to_string().contains("4..6"), "{err}");
    store.remove(&ns, "c").await.unwrap();
    let history = store.history(&ns, "c", crate::store::Page::all()).await.unwrap();
    assert_eq!(numbers(&history), [7, 6, 5]);
    store.rollback(&ns, "c", 5, None).await.unwrap();
    assert_eq!(backend.load_configuration(&ns, "c").await.unwrap().unwrap().value["v"], json!(5));
    backend.delete_namespace(&ns).await.unwrap();
}

fn port_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": {"host": {"type": "string"}, "port": {"type": "integer", "minimum": 1, "maximum": 65535}},
        "required": ["host"]
    })
}

/// Schemas: a schema set on a namespace that does not exist is `NotFound`, an invalid one is
/// refused with the reason; under `enforce` a point write, a batch with one invalid
/// configuration among valid ones, a field update and a rollback to an invalid revision are
/// refused whole with every violation named (nothing written, the store unchanged), deletes
/// pass; a configuration's own schema replaces the default; under `warn` the write lands and
/// reports; `off` checks nothing; [`Store::validate`](crate::store::Store::validate) finds what was
/// written unchecked; deleting the namespace deletes its schemas.
pub async fn schemas_are_enforced_before_anything_is_written(backend: Arc<dyn Backend>) {
    use crate::schema::Mode;
    let store = crate::store::Store::new(backend.clone());
    let missing = unique_namespace("noschema");
    let err = store.set_schema(&missing, None, Some(port_schema()), None).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { what: Missing::Namespace, .. }), "{err}");
    let ns = fresh_namespace(&*backend, "schema").await;
    assert!(store.schemas(&ns).await.unwrap().is_none());
    let err = store.set_schema(&ns, None, Some(json!({"type": "strin"})), None).await.unwrap_err();
    assert_eq!(err.kind(), crate::model::error::ErrorKind::InvalidValue, "{err}");
    assert!(store.schemas(&ns).await.unwrap().is_none(), "a refused schema is not stored");

    store.put(&ns, "before", obj(json!({"port": 70000})), Precondition::Any).await.unwrap();
    let set = store.set_schema(&ns, None, Some(port_schema()), None).await.unwrap();
    assert_eq!(set.mode, Mode::Enforce);
    assert_eq!(store.schemas(&ns).await.unwrap(), Some(set));

    // A point write.
    let err = store.put(&ns, "db", obj(json!({"host": "h", "port": 70000})), Precondition::Any).await.unwrap_err();
    let Error::SchemaViolation { violations } = err.cause() else { panic!("{err}") };
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].to_string(), format!("{ns}/db: /port: 70000 is greater than the maximum of 65535"));
    assert!(store.get(&ns, "db").await.unwrap().is_none());
    store.put(&ns, "db", obj(json!({"host": "h", "port": 5432})), Precondition::Any).await.unwrap();
    // A batch with one invalid configuration among valid ones writes nothing.
    let stored_before = store.load(&ns).await.unwrap();
    let mut batch: Vec<Change> =
        (0..20).map(|i| Change::put(format!("ok{i}"), obj(json!({"host": "h", "port": i + 1})))).collect();
    batch.push(Change::put("bad", obj(json!({"port": "x"}))));
    let err = store.write(&ns, &batch).await.unwrap_err();
    let Error::SchemaViolation { violations } = err.cause() else { panic!("{err}") };
    let shown: Vec<String> = violations.iter().map(ToString::to_string).collect();
    assert_eq!(shown.len(), 2, "{shown:?}");
    assert!(shown.iter().any(|v| v.ends_with("/bad: \"host\" is a required property")), "{shown:?}");
    assert_eq!(store.load(&ns).await.unwrap(), stored_before, "nothing of the batch was written");
    // A field update, and deletes (never a violation).
    let edit = [crate::store::FieldEdit::Set("port".into(), json!(0))];
    assert_eq!(
        store.update_fields(&ns, "db", &edit).await.unwrap_err().cause().kind(),
        crate::model::error::ErrorKind::SchemaViolation
    );
    store.delete(&ns, "before", Precondition::Any).await.unwrap();
    // A configuration's own schema replaces the default for it.
    store
        .set_schema(&ns, Some("flags"), Some(json!({"additionalProperties": {"type": "boolean"}})), None)
        .await
        .unwrap();
    store.put(&ns, "flags", obj(json!({"beta": true})), Precondition::Any).await.unwrap();
    assert!(store.put(&ns, "flags", obj(json!({"beta": 1})), Precondition::Any).await.is_err());
    // A rollback to a revision the schema refuses.
    if backend.capabilities().history {
        let err = store.rollback(&ns, "before", 1, None).await.unwrap_err();
        assert_eq!(err.cause().kind(), crate::model::error::ErrorKind::SchemaViolation, "{err}");
    } else {
        skipped(&*backend, "schemas_are_enforced_before_anything_is_written (a rollback)", "history");
    }
    // warn: written, and reported.
    store.set_schema(&ns, None, None, Some(Mode::Warn)).await.unwrap();
    let report = backend.write(&ns, &[Change::put("loose", obj(json!({"port": 0})))]).await;
    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!(report.warnings.len(), 2, "{:?}", report.warnings);
    // off: nothing checked; validate still finds everything invalid, whatever the mode.
    store.set_schema(&ns, None, None, Some(Mode::Off)).await.unwrap();
    assert!(backend.write(&ns, &[Change::put("free", obj(json!({})))]).await.warnings.is_empty());
    let found = store.validate(std::slice::from_ref(&ns)).await.unwrap();
    let names: std::collections::BTreeSet<&str> = found.iter().map(|v| v.configuration.as_str()).collect();
    assert_eq!(names.into_iter().collect::<Vec<_>>(), ["free", "loose"], "{found:?}");
    // Removing the schemas lets anything in; removing twice is NotFound.
    store.set_schema(&ns, None, None, Some(Mode::Enforce)).await.unwrap();
    store.remove_schema(&ns, None).await.unwrap();
    store.put(&ns, "anything", obj(json!({"port": -1})), Precondition::Any).await.unwrap();
    let err = store.remove_schema(&ns, None).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { what: Missing::Schema, .. }), "{err}");
    // Deleting the namespace deletes its schemas: a new one of that name starts without.
    store.set_schema(&ns, None, Some(port_schema()), None).await.unwrap();
    backend.delete_namespace(&ns).await.unwrap();
    backend.create_namespace(&ns).await.unwrap();
    assert!(store.schemas(&ns).await.unwrap().is_none());
    store.put(&ns, "anything", obj(json!({})), Precondition::Any).await.unwrap();
    backend.delete_namespace(&ns).await.unwrap();
}

/// A schema document that cannot be read (broken by hand or by another program) refuses
/// writes to its namespace (a broken schema must not silently stop checking), saying how to
/// mend it, and never blocks its own repair: `set_schema` replaces it, `remove_schema` removes
/// it; one configuration's part cannot be removed from it.
pub async fn a_corrupt_schema_document_never_blocks_its_own_repair(backend: Arc<dyn Backend>) {
    let schemas = crate::store::Store::new(backend.clone());
    let store = &*backend;
    let ns = fresh_namespace(store, "badschema").await;
    let name = store.namespace(&ns).unwrap();
    let broken = || store.put_schema_document(&name, Some(b"{\"schemas\": [not json".to_vec()), &Precondition::Any);
    if broken().await.is_err() {
        // A backend that stores no schemas has none to break.
        skipped(store, "a_corrupt_schema_document_never_blocks_its_own_repair", "schema store");
        return;
    }
    let err = store.put_configuration(&ns, "c", obj(json!({"v": 1}))).await.unwrap_err();
    assert_eq!(err.kind(), crate::model::error::ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("confo schema rm"), "{err}");
    let err = schemas.remove_schema(&ns, Some("c")).await.unwrap_err();
    assert_eq!(err.kind(), crate::model::error::ErrorKind::Corrupt, "{err}");
    assert_eq!(schemas.remove_schema(&ns, None).await.unwrap(), None);
    store.put_configuration(&ns, "c", obj(json!({"v": 1}))).await.unwrap();
    broken().await.unwrap();
    let set = schemas.set_schema(&ns, None, Some(json!({"type": "object"})), None).await.unwrap();
    assert_eq!(set.default, Some(json!({"type": "object"})));
    store.put_configuration(&ns, "c", obj(json!({"v": 2}))).await.unwrap();
    assert_eq!(schemas.schemas(&ns).await.unwrap().and_then(|s| s.default), Some(json!({"type": "object"})));
    store.delete_namespace(&ns).await.unwrap();
}

/// A schema of up to [`crate::schema::SCHEMA_BYTES`] (256 KiB) is kept and enforced on every
/// engine, though the stored document holds it twice (the schemas and their newest revision);
/// one byte more is refused, naming it, and nothing is written.
pub async fn a_schema_of_256_kib_is_kept(backend: Arc<dyn Backend>) {
    let store = crate::store::Store::new(backend.clone());
    let ns = fresh_namespace(&*backend, "bigschema").await;
    let big = |bytes: usize| {
        // An enum of short strings, the last padded so that the schema is `bytes` of compact JSON.
        let with = |values: Vec<String>| json!({"type": "object", "properties": {"tier": {"enum": values}}});
        let empty = serde_json::to_vec(&with(vec![String::new()])).unwrap().len();
        let count = (bytes - empty) / 13 - 1;
        let mut values: Vec<String> = (0..count).map(|i| format!("v{i:09}")).collect();
        let short = serde_json::to_vec(&with(values.clone())).unwrap().len();
        values.push("x".repeat(bytes - short - 3));
        let schema = with(values);
        assert_eq!(serde_json::to_vec(&schema).unwrap().len(), bytes);
        schema
    };
    let limit = crate::schema::SCHEMA_BYTES;
    let within = big(limit - 8);
    assert!(serde_json::to_vec(&within).unwrap().len() > limit / 2 + 1024, "larger than half the limit");
    store.set_schema(&ns, None, Some(within.clone()), None).await.unwrap();
    assert_eq!(store.schemas(&ns).await.unwrap().and_then(|s| s.default), Some(within));
    let err = store.put(&ns, "c", obj(json!({"tier": "nope"})), Precondition::Any).await.unwrap_err();
    assert_eq!(err.kind(), crate::model::error::ErrorKind::SchemaViolation, "{err}");
    store.put(&ns, "c", obj(json!({"tier": "v000000001"})), Precondition::Any).await.unwrap();
    let over = big(limit + 64);
    let err = store.set_schema(&ns, Some("c"), Some(over), None).await.unwrap_err();
    assert_eq!(err.kind(), crate::model::error::ErrorKind::TooLarge, "{err}");
    assert!(err.to_string().contains(&format!("{ns}/c")), "{err}");
    assert!(store.schemas(&ns).await.unwrap().is_some_and(|s| s.configurations.is_empty()), "nothing written");
    backend.delete_namespace(&ns).await.unwrap();
}

/// Schema changes are versioned: two writers setting different configurations' schemas at
/// once both land (the document is written under a precondition on its version); every change
/// is a numbered revision with its actor (when the backend keeps history); a rollback puts an
/// earlier revision back as a new one.
pub async fn schemas_change_concurrently_with_history(backend: Arc<dyn Backend>) {
    let ns = fresh_namespace(&*backend, "schemahist").await;
    let writers: Vec<_> = (0..4)
        .map(|i| {
            let store = crate::store::Store::new(backend.clone()).with_author(author(&format!("w{i}")));
            let ns = ns.clone();
            tokio::spawn(async move {
                for j in 0..3 {
                    let schema = json!({"properties": {"n": {"maximum": j}}});
                    store.set_schema(&ns, Some(&format!("c{i}")), Some(schema), None).await.unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let store = crate::store::Store::new(backend.clone());
    let schemas = store.schemas(&ns).await.unwrap().unwrap();
    assert_eq!(schemas.configurations.len(), 4, "no writer lost another's schema: {schemas:?}");
    assert!(schemas.configurations.values().all(|s| s["properties"]["n"]["maximum"] == json!(2)));
    let history = store.schema_history(&ns).await.unwrap();
    if !backend.capabilities().history {
        skipped(&*backend, "schemas_change_concurrently_with_history (the revisions)", "history");
        assert!(history.revisions.is_empty());
        backend.delete_namespace(&ns).await.unwrap();
        return;
    }
    let numbers: Vec<u64> = history.revisions.iter().map(|r| r.number).collect();
    assert_eq!(numbers, (1..=12).rev().collect::<Vec<u64>>());
    assert_eq!(history.revisions.last().unwrap().operation, crate::model::history::Operation::Create);
    assert!(history.revisions[0].actor.starts_with('w'), "{:?}", history.revisions[0].actor);
    // Back to revision 1: one configuration's schema only.
    let restored = store.rollback_schema(&ns, 1).await.unwrap().unwrap();
    assert_eq!(restored.configurations.len(), 1);
    let history = store.schema_history(&ns).await.unwrap();
    assert_eq!((history.revisions[0].number, history.revisions[0].restores), (13, Some(1)));
    assert_eq!(store.schemas(&ns).await.unwrap(), Some(restored));
    backend.delete_namespace(&ns).await.unwrap();
}

/// A store's field updates read the namespace's schemas with the configuration and keep them
/// by version: a schema replaced by another writer since is read again (never checked against
/// the stale one), in both directions; and a write that says which schema document it was
/// checked against is, where the engine checks that atomically, refused as a conflict when the
/// document is another by then (nothing written), else written.
pub async fn field_updates_check_the_schemas_stored_now(backend: Arc<dyn Backend>) {
    let ns = fresh_namespace(&*backend, "schemaread").await;
    let store = crate::store::Store::new(backend.clone());
    let other = crate::store::Store::new(backend.clone());
    let set = |port: i64| [crate::store::FieldEdit::Set("port".into(), json!(port))];
    store.update_fields(&ns, "db", &set(70000)).await.unwrap();
    // Another writer adds a schema: the store's next update sees it.
    other
        .set_schema(&ns, None, Some(json!({"properties": {"port": {"type": "integer", "maximum": 65535}}})), None)
        .await
        .unwrap();
    let err = store.update_fields(&ns, "db", &set(70001)).await.unwrap_err();
    assert_eq!(err.cause().kind(), crate::model::error::ErrorKind::SchemaViolation, "{err}");
    store.update_fields(&ns, "db", &set(5432)).await.unwrap();
    // It tightens it: the store holds the older version, and is told of the new one.
    other.set_schema(&ns, None, Some(json!({"properties": {"port": {"maximum": 100}}})), None).await.unwrap();
    let err = store.update_fields(&ns, "db", &set(5433)).await.unwrap_err();
    assert_eq!(err.cause().kind(), crate::model::error::ErrorKind::SchemaViolation, "{err}");
    // It removes it: anything goes again.
    other.remove_schema(&ns, None).await.unwrap();
    store.update_fields(&ns, "db", &set(70002)).await.unwrap();
    assert_eq!(store.get(&ns, "db").await.unwrap().unwrap().value["port"], json!(70002));
    // A batch checked against "no schemas" while the namespace has some.
    other.set_schema(&ns, None, Some(json!({"properties": {"port": {"maximum": 100}}})), None).await.unwrap();
    let none = crate::schema::SchemasAsRead::default();
    let author = crate::model::history::Author::library();
    let options = crate::store::ext::WriteOptions::by(&author).checked_against(&none);
    let report = backend.write_with(&ns, &[Change::put("db", obj(json!({"port": 9999})))], &options).await;
    let stored = store.get(&ns, "db").await.unwrap().unwrap();
    match report.error {
        Some(e) => {
            assert!(e.is_conflict(), "{e}");
            assert_eq!(stored.value["port"], json!(70002), "nothing written");
        }
        None => assert_eq!(stored.value["port"], json!(9999)),
    }
    backend.delete_namespace(&ns).await.unwrap();
}

/// Defines the suite's functions (each `pub async fn NAME(store: &dyn Backend)`) and, from the
/// same list, [`conformance_tests!`](crate::conformance_tests), which runs every one of them: a
/// function added here is run against every backend, with no second list to keep.
macro_rules! suite {
    ($d:tt; $( $(#[$meta:meta])* async fn $name:ident($store:ident) $body:block )*) => {
        $( $(#[$meta])* pub async fn $name($store: &dyn Backend) $body )*

        /// Generates one `#[tokio::test]` per conformance function for a backend. `$make` is an
        /// async expression evaluating to `(guard, Arc<dyn Backend>)`; the guard (a temp dir, a
        /// server) lives until the test ends.
        #[macro_export]
        macro_rules! conformance_tests {
            ($d make:expr) => {
                $(
                    #[tokio::test]
                    async fn $name() {
                        let (_guard, store) = $d make.await;
                        $d crate::conformance::$name(&*store).await;
                    }
                )*
                #[tokio::test]
                async fn through_arc() {
                    let (_guard, store) = $d make.await;
                    $d crate::conformance::through_arc(store).await;
                }
                #[tokio::test]
                async fn history_records_who_and_rolls_back() {
                    let (_guard, store) = $d make.await;
                    $d crate::conformance::history_records_who_and_rolls_back(store).await;
                }
                #[tokio::test]
                async fn history_purge_rewrites_every_revision() {
                    let (_guard, store) = $d make.await;
                    $d crate::conformance::history_purge_rewrites_every_revision(store).await;
                }
                #[tokio::test]
                async fn schemas_are_enforced_before_anything_is_written() {
                    let (_guard, store) = $d make.await;
                    $d crate::conformance::schemas_are_enforced_before_anything_is_written(store).await;
                }
                #[tokio::test]
                async fn field_updates_check_the_schemas_stored_now() {
                    let (_guard, store) = $d make.await;
                    $d crate::conformance::field_updates_check_the_schemas_stored_now(store).await;
                }
                #[tokio::test]
                async fn a_schema_of_256_kib_is_kept() {
                    let (_guard, store) = $d make.await;
                    $d crate::conformance::a_schema_of_256_kib_is_kept(store).await;
                }
                #[tokio::test]
                async fn a_corrupt_schema_document_never_blocks_its_own_repair() {
                    let (_guard, store) = $d make.await;
                    $d crate::conformance::a_corrupt_schema_document_never_blocks_its_own_repair(store).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn schemas_change_concurrently_with_history() {
                    let (_guard, store) = $d make.await;
                    $d crate::conformance::schemas_change_concurrently_with_history(store).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn history_numbers_concurrent_writes() {
                    let (_guard, store) = $d make.await;
                    $d crate::conformance::history_numbers_concurrent_writes(store).await;
                }
            };
        }
    };
}

suite! { $;
    /// What a backend says it can do, it does: it announces changes if and only if it says so,
    /// and a value over its size limit is refused whole (the batch it is in writes nothing)
    /// while one within the limit is stored.
    async fn capabilities_hold(store) {
        let caps = store.capabilities();
        assert_eq!(store.subscribe().await.unwrap().is_some(), caps.notifies, "{caps:?}");
        let Some(limit) = caps.max_value_bytes else {
            skipped(store, "capabilities_hold (the size limit)", "max_value_bytes");
            return;
        };
        let ns = fresh_namespace(store, "caps").await;
        let within = obj(json!({"x": "y".repeat(limit - 16)}));
        let over = obj(json!({"x": "y".repeat(limit)}));
        let batch = [Change::put("small", obj(json!({}))), Change::put("big", over)];
        assert!(matches!(store.check_batch(&ns, &batch), Err(Error::TooLarge { .. })));
        let report = store.write(&ns, &batch).await;
        assert!(matches!(report.error, Some(Error::TooLarge { .. })), "{:?}", report.error);
        assert!(store.load_namespace(&ns).await.unwrap().is_empty(), "nothing of the batch was written");
        store.put_configuration(&ns, "within", within).await.unwrap();
        store.delete_namespace(&ns).await.unwrap();
    }

    /// The deepest value a write accepts ([`crate::model::json::MAX_DEPTH`] levels, the configuration's
    /// own object included) reads back everywhere a copy of it is kept: the value itself, and
    /// its history record (which wraps it once more), so it can be rolled back to; one level
    /// more is refused before anything is written.
    async fn the_deepest_value_a_write_accepts_reads_back(store) {
        let ns = fresh_namespace(store, "deep").await;
        let mut nested = json!([]);
        for _ in 0..crate::model::json::MAX_DEPTH - 2 {
            nested = json!([nested]);
        }
        let deep = obj(json!({"v": nested}));
        assert_eq!(crate::model::json::depth(&serde_json::Value::Object(deep.clone())), crate::model::json::MAX_DEPTH);
        store.put_configuration(&ns, "deep", deep.clone()).await.unwrap();
        assert_eq!(*store.load_configuration(&ns, "deep").await.unwrap().unwrap().value, deep);
        assert_eq!(*store.load_namespace(&ns).await.unwrap()["deep"].value, deep);
        if store.capabilities().history {
            store.put_configuration(&ns, "deep", obj(json!({"v": 1}))).await.unwrap();
            let history = store.configuration_history(&ns, "deep").await.unwrap();
            assert!(history.corrupt.is_empty(), "{:?}", history.corrupt);
            assert_eq!(history.revisions.last().and_then(|r| r.value.as_deref()), Some(&deep));
        } else {
            skipped(store, "the_deepest_value_a_write_accepts_reads_back (its history record)", "history");
        }
        let too_deep = obj(json!({"v": [nested]}));
        let err = store.put_configuration(&ns, "deeper", too_deep).await.unwrap_err();
        assert_eq!(err.kind(), crate::model::error::ErrorKind::InvalidValue, "{err}");
        store.delete_namespace(&ns).await.unwrap();
    }

    /// Namespaces: create (twice is not an error, and reports `false`), list, delete.
    async fn namespaces_create_list_delete(store) {
        let ns = unique_namespace("ns");
        assert!(!store.list_namespaces().await.unwrap().contains(&ns));
        assert!(store.create_namespace(&ns).await.unwrap());
        assert!(!store.create_namespace(&ns).await.unwrap(), "second create reports it existed");
        let list = store.list_namespaces().await.unwrap();
        assert!(list.contains(&ns), "{list:?}");
        let mut sorted = list.clone();
        sorted.sort();
        assert_eq!(list, sorted, "namespaces are listed sorted");
        assert!(store.load_namespace(&ns).await.unwrap().is_empty());

        store.put_configuration(&ns, "database", obj(json!({"host": "h"}))).await.unwrap();
        store.delete_namespace(&ns).await.unwrap();
        assert!(!store.list_namespaces().await.unwrap().contains(&ns));
        assert!(store.load_namespace(&ns).await.unwrap_err().is_not_found());
        // Recreated, it is empty: the deletion took its configurations with it.
        store.create_namespace(&ns).await.unwrap();
        assert!(store.load_namespace(&ns).await.unwrap().is_empty());
        store.delete_namespace(&ns).await.unwrap();
    }

    /// Configurations: write, read back equal (field order kept), replace, delete.
    async fn configurations_write_read_delete(store) {
        let ns = fresh_namespace(store, "cfg").await;
        let value = obj(json!({"zeta": 1, "alpha": "two", "mid": [1, 2, {"x": null}], "nested": {"b": true, "a": 1.5}}));
        store.put_configuration(&ns, "database", value.clone()).await.unwrap();
        let stored = store.load_configuration(&ns, "database").await.unwrap().unwrap();
        assert_eq!(*stored.value, value);
        let keys: Vec<&String> = stored.value.keys().collect();
        assert_eq!(keys, ["zeta", "alpha", "mid", "nested"], "field order round-trips");

        let replaced = obj(json!({"only": "this"}));
        store.put_configuration(&ns, "database", replaced.clone()).await.unwrap();
        assert_eq!(*store.load_configuration(&ns, "database").await.unwrap().unwrap().value, replaced);

        store.delete_configuration(&ns, "database").await.unwrap();
        assert!(store.load_configuration(&ns, "database").await.unwrap().is_none());
        // Deleting what is not there is not an error.
        store.delete_configuration(&ns, "database").await.unwrap();
        store.delete_namespace(&ns).await.unwrap();
    }

    /// A namespace read in compact form holds what the bulk read holds: the same names and
    /// versions, the same values in the same field order (200 configurations: the file
    /// engine's own compact reading runs on several threads), and a missing namespace is
    /// not-found either way.
    async fn compact_load_reads_what_load_reads(store) {
        let ns = fresh_namespace(store, "compact").await;
        let changes: Vec<Change> = (0..200)
            .map(|i| {
                let value = obj(json!({"zeta": i, "host": format!("h{i}"), "exact": 0.30000000000000004,
                    "big": 123456789012345678901234567890u128, "nested": {"b": [true, null], "a": "x".repeat(i % 40)}}));
                Change::put(format!("c{i:03}"), value)
            })
            .collect();
        store.write(&ns, &changes).await.into_result().unwrap();
        let data = store.load_namespace(&ns).await.unwrap();
        let compact = store.load_namespace_compact(&ns).await.unwrap();
        assert_eq!(compact.entries.len(), data.len());
        assert!(compact.corrupt.is_empty() && compact.from_snapshot.is_none());
        for (name, value, version) in &compact.entries {
            let stored = &data[name.as_str()];
            assert_eq!(*version, stored.version, "{name}");
            assert!(value.same_as(&stored.value), "{name}");
            let built = value.to_configuration();
            assert_eq!(built.keys().collect::<Vec<_>>(), stored.value.keys().collect::<Vec<_>>(), "{name}'s field order");
            assert_eq!(serde_json::to_string(&built).unwrap(), serde_json::to_string(&*stored.value).unwrap(), "{name}");
        }
        store.delete_namespace(&ns).await.unwrap();
        assert!(store.load_namespace_compact(&ns).await.unwrap_err().is_not_found());
    }

    /// Values of every JSON kind, unicode and names with dots survive a round trip.
    async fn values_round_trip(store) {
        let ns = fresh_namespace(store, "val").await;
        let value = obj(json!({
            "s": "ünïcödé ✓ \"quoted\" \n newline", "i": -42, "big": 9007199254740993u64, "f": 0.1,
            "t": true, "n": null, "empty_obj": {}, "empty_list": [],
            "admins": ["tshepang.maila@sambeconsulting.com", "kabelo.masemola@sambe.co.za"]
        }));
        for name in ["app.prod", "ünï", "with space", "x..y"] {
            store.put_configuration(&ns, name, value.clone()).await.unwrap();
        }
        let data = store.load_namespace(&ns).await.unwrap();
        assert_eq!(data.keys().collect::<Vec<_>>(), ["app.prod", "with space", "x..y", "ünï"]);
        assert!(data.values().all(|s| *s.value == value));
        store.delete_namespace(&ns).await.unwrap();
    }

    /// A point read says what a bulk read says of the same configuration (content and version),
    /// `None` for one that does not exist, and not found for a missing namespace.
    async fn point_reads_agree_with_bulk_reads(store) {
        let ns = fresh_namespace(store, "point").await;
        let names = ["db", "app.prod", "ünï", "with space", "x..y", "a-b"];
        let changes: Vec<Change> = names.iter().map(|n| Change::put(*n, obj(json!({"name": n, "n": 1})))).collect();
        store.write(&ns, &changes).await.into_result().unwrap();
        let bulk = store.load_namespace(&ns).await.unwrap();
        for name in names {
            let one = store.load_configuration(&ns, name).await.unwrap().unwrap_or_else(|| panic!("{name}"));
            assert_eq!((&one.value, &one.version), (&bulk[name].value, &bulk[name].version), "{name}");
        }
        assert!(store.load_configuration(&ns, "d").await.unwrap().is_none(), "a prefix of a name is not the name");
        assert!(store.load_configuration(&ns, "absent").await.unwrap().is_none());
        let v2 = store.put_configuration(&ns, "db", obj(json!({"n": 2}))).await.unwrap();
        assert_eq!(store.load_configuration(&ns, "db").await.unwrap().unwrap().version, v2);
        store.delete_configuration(&ns, "db").await.unwrap();
        assert!(store.load_configuration(&ns, "db").await.unwrap().is_none(), "deleted");
        let ghost = unique_namespace("ghost");
        let err = store.load_configuration(&ghost, "db").await.unwrap_err();
        assert!(matches!(err, Error::NotFound { what: Missing::Namespace, .. }), "{err:?}");
        store.delete_namespace(&ns).await.unwrap();
    }

    /// JSON numbers at and beyond the limits of 64-bit integers and doubles are stored and read back
    /// exactly, as written (the JSON text of each number is the same), and versions stay stable.
    async fn numbers_round_trip_exactly(store) {
        let ns = fresh_namespace(store, "num").await;
        let text = r#"{"beyond_u64": 123456789012345678901234567890, "below_i64": -9223372036854775809,
            "u64_max": 18446744073709551615, "seventeen_digits": 0.30000000000000004,
            "planck": 1.602176634e-19, "tiny": 5e-324, "max_double": 1.7976931348623157e308,
            "negative_zero": -0, "negative_zero_float": -0.0, "beyond_double": 1e400, "trailing_zero": 2.50,
            "nested": [{"id": 340282366920938463463374607431768211457}]}"#;
        let value: Configuration = serde_json::from_str(text).unwrap();
        let version = store.put_configuration(&ns, "limits", value.clone()).await.unwrap();
        let stored = store.load_configuration(&ns, "limits").await.unwrap().unwrap();
        for (field, number) in &value {
            assert_eq!(stored.value[field].to_string(), number.to_string(), "field {field}");
        }
        assert_eq!(stored.version, version, "the version read is the version written");
        // Rewriting the same value leaves the numbers (and, where versions hash content, the version) as they were.
        store.put_configuration(&ns, "limits", (*stored.value).clone()).await.unwrap();
        let again = store.load_configuration(&ns, "limits").await.unwrap().unwrap();
        assert_eq!(serde_json::to_string(&*again.value).unwrap(), serde_json::to_string(&value).unwrap());
        store.delete_namespace(&ns).await.unwrap();
    }

    /// One bulk read returns every configuration of a namespace, and only that namespace's.
    async fn bulk_read(store) {
        let ns = fresh_namespace(store, "bulk").await;
        let other = fresh_namespace(store, "bulk_other").await;
        let changes: Vec<Change> =
            (0..150).map(|i| Change::put(format!("c{i:03}"), obj(json!({"i": i, "pad": "x".repeat(i)})))).collect();
        store.write(&ns, &changes).await.into_result().unwrap();
        store.put_configuration(&other, "elsewhere", obj(json!({}))).await.unwrap();
        let data = store.load_namespace(&ns).await.unwrap();
        assert_eq!(data.len(), 150);
        for i in 0..150 {
            assert_eq!(data[&format!("c{i:03}")].value["i"], json!(i));
        }
        assert!(!data.contains_key("elsewhere"));
        store.delete_namespace(&ns).await.unwrap();
        store.delete_namespace(&other).await.unwrap();
    }

    /// A batch mixing puts and deletes applies every change and reports each, in order.
    async fn batch_write(store) {
        let ns = fresh_namespace(store, "batch").await;
        store.put_configuration(&ns, "old", obj(json!({"v": 0}))).await.unwrap();
        let changes =
            [Change::put("a", obj(json!({"v": 1}))), Change::delete("old"), Change::put("b", obj(json!({"v": 2})))];
        let applied = store.write(&ns, &changes).await.into_result().unwrap();
        assert_eq!(applied.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["a", "old", "b"]);
        assert!(applied[0].version.is_some() && applied[1].version.is_none() && applied[2].version.is_some());
        let data = store.load_namespace(&ns).await.unwrap();
        assert_eq!(data.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(data["b"].version, applied[2].version.clone().unwrap(), "reported version is the stored one");
        // An empty batch is fine.
        assert!(store.write(&ns, &[]).await.into_result().unwrap().is_empty());
        // A batch naming one configuration twice is refused whole.
        let twice = [Change::put("c", obj(json!({}))), Change::delete("c")];
        assert!(store.write(&ns, &twice).await.error.is_some());
        assert!(!store.load_namespace(&ns).await.unwrap().contains_key("c"));
        store.delete_namespace(&ns).await.unwrap();
    }

    /// Versions change on every write and stay put on reads.
    async fn versions_change_on_write(store) {
        let ns = fresh_namespace(store, "ver").await;
        let v1 = store.put_configuration(&ns, "c", obj(json!({"n": 1}))).await.unwrap();
        let read1 = store.load_configuration(&ns, "c").await.unwrap().unwrap().version;
        let read2 = store.load_configuration(&ns, "c").await.unwrap().unwrap().version;
        assert_eq!(v1, read1);
        assert_eq!(read1, read2, "reading does not change the version");
        let v2 = store.put_configuration(&ns, "c", obj(json!({"n": 2}))).await.unwrap();
        assert_ne!(v1, v2);
        assert_eq!(store.load_configuration(&ns, "c").await.unwrap().unwrap().version, v2);
        store.delete_namespace(&ns).await.unwrap();
    }

    /// Preconditions: create-only, update-at-version, delete-at-version; a broken one is a
    /// `Conflict` and the batch writes nothing.
    async fn preconditions(store) {
        let ns = fresh_namespace(store, "pre").await;
        let v1 = store.put_configuration(&ns, "c", obj(json!({"n": 1}))).await.unwrap();

        let create_existing = Change::put("c", obj(json!({"n": 9}))).when(Precondition::Absent);
        let fresh = Change::put("new", obj(json!({"n": 1}))).when(Precondition::Absent);
        let err = store.write(&ns, &[fresh.clone(), create_existing]).await.into_result().unwrap_err();
        assert!(err.is_conflict(), "{err:?}");
        let data = store.load_namespace(&ns).await.unwrap();
        assert!(!data.contains_key("new"), "a conflicting batch writes nothing");
        assert_eq!(data["c"].value["n"], json!(1));

        store.write(&ns, &[fresh]).await.into_result().unwrap();
        let v2 = store
            .write(&ns, &[Change::put("c", obj(json!({"n": 2}))).when(Precondition::Version(v1.clone()))])
            .await
            .into_result()
            .unwrap()[0]
            .version
            .clone()
            .unwrap();
        let stale = Change::put("c", obj(json!({"n": 3}))).when(Precondition::Version(v1.clone()));
        let err = store.write(&ns, &[stale]).await.into_result().unwrap_err();
        // A conflict names the configuration to blame, as a structured id.
        match &err {
            Error::Conflict { config: Some(id), .. } => assert_eq!(*id, format!("{ns}/c")),
            other => panic!("expected a conflict naming {ns}/c, got {other:?}"),
        }
        let stale_delete = Change::delete("c").when(Precondition::Version(v1));
        assert!(store.write(&ns, &[stale_delete]).await.into_result().unwrap_err().is_conflict());
        let missing_at_version = Change::put("ghost", obj(json!({}))).when(Precondition::Version(v2.clone()));
        assert!(store.write(&ns, &[missing_at_version]).await.into_result().unwrap_err().is_conflict());
        store.write(&ns, &[Change::delete("c").when(Precondition::Version(v2))]).await.into_result().unwrap();
        assert!(store.load_configuration(&ns, "c").await.unwrap().is_none());
        store.delete_namespace(&ns).await.unwrap();
    }

    /// Unknown namespaces are typed `NotFound` errors for every operation that needs one.
    async fn unknown_things_are_typed_errors(store) {
        let ns = unique_namespace("ghost");
        let is_missing_ns = |e: Error| matches!(e, Error::NotFound { what: Missing::Namespace, .. });
        assert!(is_missing_ns(store.load_namespace(&ns).await.unwrap_err()));
        assert!(is_missing_ns(store.delete_namespace(&ns).await.unwrap_err()));
        let report = store.write(&ns, &[Change::put("c", obj(json!({})))]).await;
        assert!(report.applied.is_empty());
        assert!(is_missing_ns(report.error.unwrap()));
        assert!(!store.list_namespaces().await.unwrap().contains(&ns), "a failed write creates no namespace");
    }

    /// Names breaking the shared rules are refused before anything is written.
    async fn invalid_names_are_refused(store) {
        let ns = fresh_namespace(store, "names").await;
        for bad in ["", ".", "..", ".hidden", "a/b", "a\\b", "a\0b", "a\nb", &"x".repeat(256)] {
            let err = store.create_namespace(bad).await.unwrap_err();
            assert!(matches!(err, Error::InvalidName { .. }), "namespace {bad:?}: {err:?}");
            let report = store.write(&ns, &[Change::put("good", obj(json!({}))), Change::put(bad, obj(json!({})))]).await;
            assert!(report.applied.is_empty());
            assert!(matches!(report.error, Some(Error::InvalidName { .. })), "configuration {bad:?}");
        }
        assert!(store.load_namespace(&ns).await.unwrap().is_empty(), "nothing was written");
        store.delete_namespace(&ns).await.unwrap();
    }
}

// ----- high availability -----

/// What a client saw while writing through a failover.
#[derive(Debug)]
pub struct Failover {
    /// The writes the store acknowledged (configuration `c<i>` for each `i`).
    pub acknowledged: Vec<usize>,
    /// Writes refused while the cluster recovered (all `Unavailable`).
    pub refused: usize,
    /// From the failure to the first acknowledged write after it.
    pub resumed_after: Option<std::time::Duration>,
}

/// Writes `c0, c1, …` into `namespace` in a loop (reading the namespace now and then), calls
/// `fail` after write 30, goes on until 30 more writes were acknowledged (at most 60 s), and
/// checks that every acknowledged write is readable. Every refusal must be `Unavailable`.
pub async fn write_through_failover(store: &dyn Backend, namespace: &str, fail: impl FnOnce()) -> Failover {
    let mut fail = Some(fail);
    let mut outcome = Failover { acknowledged: Vec::new(), refused: 0, resumed_after: None };
    let mut failed_at = None;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    for i in 0.. {
        assert!(std::time::Instant::now() < deadline, "the client did not resume within 60 s: {outcome:?}");
        match store.put_configuration(namespace, &format!("c{i}"), obj(json!({"i": i}))).await {
            Ok(_) => {
                outcome.acknowledged.push(i);
                if let Some(at) = failed_at {
                    outcome.resumed_after.get_or_insert_with(|| std::time::Instant::now().duration_since(at));
                }
            }
            Err(e) => {
                assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
                outcome.refused += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
        if i % 10 == 0 {
            store.load_namespace(namespace).await.ok();
        }
        if i == 30 {
            if let Some(fail) = fail.take() {
                fail();
            }
            failed_at = Some(std::time::Instant::now());
        }
        if failed_at.is_some() && outcome.acknowledged.iter().filter(|&&a| a > 30).count() >= 30 {
            break;
        }
    }
    let data = store.load_namespace(namespace).await.unwrap();
    for i in &outcome.acknowledged {
        assert!(data.contains_key(&format!("c{i}")), "acknowledged write c{i} was lost");
    }
    outcome
}

// ----- live updates and conflicts: two handles on one store -----

/// How long a live test waits for something that should happen within milliseconds.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(15);

async fn manager_on(store: Arc<dyn Backend>, namespace: &str) -> crate::session::Confo {
    let confo = crate::session::Confo::new();
    confo.add_backend("store", store).await.unwrap();
    confo.activate_backend("store").unwrap();
    confo.use_namespace(namespace).await.unwrap();
    confo
}

async fn expect_event(
    watcher: &mut crate::watch::Watcher,
    kind: crate::watch::EventKind,
    configuration: Option<&str>,
) -> crate::watch::Event {
    let event = watcher.next_timeout(PATIENCE).await.expect("an event in time").expect("not an error");
    assert_eq!((event.kind, event.configuration.as_deref()), (kind, configuration), "{event:?}");
    event
}

/// Like `suite!`, for the functions that take two independent handles on one store, and
/// [`live_tests!`](crate::live_tests), which runs every one of them.
macro_rules! live_suite {
    ($d:tt; $( $(#[$meta:meta])* async fn $name:ident($a:ident, $b:ident) $body:block )*) => {
        $( $(#[$meta])* pub async fn $name($a: Arc<dyn Backend>, $b: Arc<dyn Backend>) $body )*

        /// Generates the live-update and conflict tests for a backend. `$make` is an async
        /// expression evaluating to `(guard, Arc<dyn Backend>, Arc<dyn Backend>)`: two
        /// independent handles (connections, processes' views) on one store.
        #[macro_export]
        macro_rules! live_tests {
            ($d make:expr) => {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        let (_guard, a, b) = $d make.await;
                        $d crate::conformance::$name(a, b).await;
                    }
                )*
            };
        }
    };
}

live_suite! { $;
    /// A watcher on one handle sees every kind of change made through the other, in order, with
    /// the new values; a watcher of one configuration sees only that one.
    async fn watch_sees_changes(watching, writing) {
        use crate::watch::EventKind::*;
        let ns = fresh_namespace(&*writing, "watch").await;
        let confo = manager_on(watching, &ns).await;
        let mut all = confo.watch(&ns, None).await.unwrap();
        let mut only_x = confo.watch(&ns, Some("x")).await.unwrap();

        writing.put_configuration(&ns, "c1", obj(json!({"v": 1}))).await.unwrap();
        let created = expect_event(&mut all, Created, Some("c1")).await;
        assert_eq!(created.value.unwrap()["v"], json!(1));
        writing.put_configuration(&ns, "c1", obj(json!({"v": 2}))).await.unwrap();
        let changed = expect_event(&mut all, Changed, Some("c1")).await;
        assert_eq!(changed.value.unwrap()["v"], json!(2));
        assert_eq!(changed.namespace, ns);
        writing.delete_configuration(&ns, "c1").await.unwrap();
        assert!(expect_event(&mut all, Deleted, Some("c1")).await.value.is_none());

        writing.put_configuration(&ns, "x", obj(json!({"x": true}))).await.unwrap();
        expect_event(&mut all, Created, Some("x")).await;
        expect_event(&mut only_x, Created, Some("x")).await;

        writing.delete_namespace(&ns).await.unwrap();
        expect_event(&mut all, Deleted, Some("x")).await;
        expect_event(&mut all, NamespaceDeleted, None).await;
        expect_event(&mut only_x, Deleted, Some("x")).await;
        writing.create_namespace(&ns).await.unwrap();
        expect_event(&mut all, NamespaceCreated, None).await;
        writing.delete_namespace(&ns).await.unwrap();
    }

    /// Two managers edit one configuration: the first persist wins, the second gets `Conflict`,
    /// keeps its edit and can see the stored value; creating what someone else created, and
    /// deleting what someone else changed, conflict too; `force` overwrites.
    async fn managers_conflict(first, second) {
        let ns = fresh_namespace(&*first, "conflict").await;
        first.put_configuration(&ns, "shared", obj(json!({"v": 0}))).await.unwrap();
        let one = manager_on(first.clone(), &ns).await;
        let two = manager_on(second, &ns).await;

        one.set("shared", "v", 1).unwrap();
        two.set("shared", "v", 2).unwrap();
        two.set("unrelated", "ok", true).unwrap();
        assert_eq!(one.persist().await.unwrap(), [format!("{ns}/shared")]);
        let err = two.persist().await.unwrap_err();
        assert!(err.is_conflict(), "{err:?}");
        assert!(err.to_string().contains("shared"), "the conflict names the configuration: {err}");
        assert_eq!(two.staged().unwrap(), [format!("{ns}/shared"), format!("{ns}/unrelated")], "nothing lost");
        assert_eq!(two.get_field("shared", "v").unwrap(), Some(json!(2)), "the edit is still there");
        let stored = first.load_configuration(&ns, "shared").await.unwrap().unwrap();
        assert_eq!(stored.value["v"], json!(1), "the first writer's value was not overwritten");
        two.reload().await.unwrap();
        assert_eq!(two.stored("shared").unwrap().unwrap()["v"], json!(1), "the caller can see the stored value");
        assert_eq!(two.stale_edits().unwrap(), [format!("{ns}/shared")]);

        // Creating what someone else created meanwhile.
        one.set("fresh", "by", "one").unwrap();
        two.set("fresh", "by", "two").unwrap();
        one.persist().await.unwrap();
        let err = two.persist_with(crate::draft::Scope::Configuration(&ns, "fresh"), false).await.unwrap_err();
        assert!(err.is_conflict(), "{err:?}");

        // Force overwrites.
        two.persist_with(crate::draft::Scope::All, true).await.unwrap();
        let data = first.load_namespace(&ns).await.unwrap();
        assert_eq!((data["shared"].value["v"].clone(), data["fresh"].value["by"].clone()), (json!(2), json!("two")));
        assert!(two.staged().unwrap().is_empty());

        // Deleting what someone else changed since.
        one.remove("shared").unwrap();
        let err = one.persist().await.unwrap_err();
        assert!(err.is_conflict(), "{err:?}");
        assert!(first.load_configuration(&ns, "shared").await.unwrap().is_some(), "not deleted");
        first.delete_namespace(&ns).await.unwrap();
    }

    /// Auto-refresh brings other writers' changes into the cache; a staged edit stays on top and
    /// is reported stale when the stored configuration under it changes.
    async fn auto_refresh_keeps_the_cache_current(watching, writing) {
        let ns = fresh_namespace(&*writing, "refresh").await;
        let confo = manager_on(watching, &ns).await;
        confo.set_auto_refresh(true, crate::watch::WatchOptions::default()).await.unwrap();
        confo.set("mine", "x", 1).unwrap();
        writing.put_configuration(&ns, "theirs", obj(json!({"v": 1}))).await.unwrap();
        let deadline = std::time::Instant::now() + PATIENCE;
        while confo.get_field("theirs", "v").unwrap() != Some(json!(1)) {
            assert!(std::time::Instant::now() < deadline, "the cache never saw the change");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        writing.put_configuration(&ns, "mine", obj(json!({"x": 9}))).await.unwrap();
        while confo.stale_edits().unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "the stale edit was never reported");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(confo.stale_edits().unwrap(), [format!("{ns}/mine")]);
        assert_eq!(confo.get_field("mine", "x").unwrap(), Some(json!(1)), "the staged edit stays on top");
        assert_eq!(confo.stored("mine").unwrap().unwrap()["x"], json!(9));
        confo.set_auto_refresh(false, crate::watch::WatchOptions::default()).await.unwrap();
        writing.delete_namespace(&ns).await.unwrap();
    }
}

// ----- outages, shared by the network engines -----

/// Takes a watcher's way to the store away and gives it back: stopping its only server of an
/// ensemble, killing its subscription, … Each network engine's tests implement it.
#[async_trait::async_trait]
pub trait Outage: Send {
    /// The watcher can no longer reach the store (writes through the other handle still can,
    /// perhaps after a moment).
    async fn down(&mut self);
    /// The watcher's way back is open.
    async fn up(&mut self);
}

/// A spec naming an address where nothing listens fails to open with [`Error::Unavailable`]
/// within seconds, and the error shows no password of the spec.
pub async fn a_dead_address_is_unavailable(spec: &str) {
    let spec: crate::spec::BackendSpec = spec.parse().unwrap();
    let started = std::time::Instant::now();
    let err = spec.open().await.map(|b| b.describe()).unwrap_err();
    // Nothing listens there: nothing of the request reached a store, and trying again may work.
    assert!(matches!(err, Error::Unavailable { outage: crate::model::error::Outage::NotReached, .. }), "{err:?}");
    assert!(err.is_retryable(), "{err:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(8), "took {:?}", started.elapsed());
    assert!(!format!("{err} {err:?}").contains("dead-secret"), "{err:?}");
}

/// A change made while the watcher's way to the store is down (through `writing`, retried
/// until the store takes it) is reported once the way is back: nothing is missed.
pub async fn watch_misses_nothing_while_down(
    watching: Arc<dyn Backend>,
    writing: Arc<dyn Backend>,
    outage: &mut dyn Outage,
) {
    use std::time::{Duration, Instant};
    let ns = fresh_namespace(&*writing, "outage").await;
    writing.put_configuration(&ns, "c", obj(json!({"v": 1}))).await.unwrap();
    // Periodic re-reads far away: only the recovery can find the change.
    let options = crate::watch::WatchOptions::default().resync_every(Duration::from_secs(600));
    let mut watcher = crate::watch::Watcher::new(watching, &ns, None, options).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    outage.down().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while writing.put_configuration(&ns, "c", obj(json!({"v": 2}))).await.is_err() {
        assert!(Instant::now() < deadline, "the store took no write during the outage");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    outage.up().await;
    let event = watcher.next_timeout(Duration::from_secs(30)).await.expect("an event after the outage").unwrap();
    assert_eq!((event.kind, event.configuration.as_deref()), (crate::watch::EventKind::Changed, Some("c")));
    assert_eq!(event.value.expect("value")["v"], json!(2));
    writing.delete_namespace(&ns).await.unwrap();
}

// ----- secrets at rest -----

/// Stores configuration `db` with a secret `password` (`"hunter2-at-rest"`) and a secret
/// number through a [`crate::store::Store`], checks that it reads back sealed, reveals with the key
/// and that a copy in another field does not open; returns the namespace, for the engine's
/// test to read the raw bytes of `db` and pass them to [`assert_no_plaintext`].
pub async fn store_a_secret(store: Arc<dyn Backend>) -> String {
    let ns = fresh_namespace(&*store, "secret").await;
    let store = crate::store::Store::new(store);
    let mut keyring = crate::secrets::Keyring::new();
    keyring.generate(Some("k1")).unwrap();
    store.update_fields(&ns, "db", &[crate::store::FieldEdit::Set("host".into(), json!("h"))]).await.unwrap();
    store.set_secret(&ns, "db", "password", json!("hunter2-at-rest"), &keyring).await.unwrap();
    store.set_secret(&ns, "db", "pin", json!(1234), &keyring).await.unwrap();
    let stored = store.get(&ns, "db").await.unwrap().unwrap();
    assert!(crate::model::sealed::is_sealed(&stored.value["password"]));
    let shown = store.get_revealed(&ns, "db", &keyring).await.unwrap().unwrap();
    assert_eq!((shown["password"].clone(), shown["pin"].clone()), (json!("hunter2-at-rest"), json!(1234)));
    let copied = stored.value["password"].clone();
    store.update_fields(&ns, "db", &[crate::store::FieldEdit::Set("token".into(), copied)]).await.unwrap();
    let err = store.get_revealed(&ns, "db", &keyring).await.unwrap_err();
    assert!(err.to_string().contains("/token") && !err.to_string().contains("hunter2"), "{err}");
    ns
}

/// The raw bytes of a stored configuration hold no plaintext of [`store_a_secret`]'s secrets.
pub fn assert_no_plaintext(raw: &[u8]) {
    let text = String::from_utf8_lossy(raw);
    assert!(text.contains("$confo_secret"), "{text}");
    assert!(!text.contains("hunter2-at-rest") && !text.contains("1234"), "{text}");
}
