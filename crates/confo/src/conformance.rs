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

use crate::backend::{Backend, BackendExt, Change, Configuration, Precondition};
use crate::error::{Error, Missing};

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

/// Namespaces: create (twice is not an error, and reports `false`), list, delete.
pub async fn namespaces_create_list_delete(store: &dyn Backend) {
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
pub async fn configurations_write_read_delete(store: &dyn Backend) {
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

/// Values of every JSON kind, unicode and names with dots survive a round trip.
pub async fn values_round_trip(store: &dyn Backend) {
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

/// One bulk read returns every configuration of a namespace, and only that namespace's.
pub async fn bulk_read(store: &dyn Backend) {
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
pub async fn batch_write(store: &dyn Backend) {
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
pub async fn versions_change_on_write(store: &dyn Backend) {
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
pub async fn preconditions(store: &dyn Backend) {
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
    assert!(store.write(&ns, &[stale]).await.into_result().unwrap_err().is_conflict());
    let stale_delete = Change::delete("c").when(Precondition::Version(v1));
    assert!(store.write(&ns, &[stale_delete]).await.into_result().unwrap_err().is_conflict());
    let missing_at_version = Change::put("ghost", obj(json!({}))).when(Precondition::Version(v2.clone()));
    assert!(store.write(&ns, &[missing_at_version]).await.into_result().unwrap_err().is_conflict());
    store.write(&ns, &[Change::delete("c").when(Precondition::Version(v2))]).await.into_result().unwrap();
    assert!(store.load_configuration(&ns, "c").await.unwrap().is_none());
    store.delete_namespace(&ns).await.unwrap();
}

/// Unknown namespaces are typed `NotFound` errors for every operation that needs one.
pub async fn unknown_things_are_typed_errors(store: &dyn Backend) {
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
pub async fn invalid_names_are_refused(store: &dyn Backend) {
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

/// Works through `Arc<dyn Backend>` as well as `&dyn Backend`.
pub async fn through_arc(store: Arc<dyn Backend>) {
    let ns = fresh_namespace(&*store, "arc").await;
    store.put_configuration(&ns, "c", obj(json!({"a": 1}))).await.unwrap();
    assert_eq!(store.load_namespace(&ns).await.unwrap().len(), 1);
    store.delete_namespace(&ns).await.unwrap();
}

/// Generates one `#[tokio::test]` per conformance function for a backend. `$make` is an async
/// expression evaluating to `(guard, Arc<dyn Backend>)`; the guard (a temp dir, a server) lives
/// until the test ends.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@each $make;
            namespaces_create_list_delete, configurations_write_read_delete, values_round_trip,
            bulk_read, batch_write, versions_change_on_write, preconditions,
            unknown_things_are_typed_errors, invalid_names_are_refused);
        #[tokio::test]
        async fn through_arc() {
            let (_guard, store) = $make.await;
            $crate::conformance::through_arc(store).await;
        }
    };
    (@each $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test]
            async fn $name() {
                let (_guard, store) = $make.await;
                $crate::conformance::$name(&*store).await;
            }
        )*
    };
}
