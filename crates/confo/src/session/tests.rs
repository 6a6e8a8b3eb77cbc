#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::backend::memory::MemoryBackend;
use crate::backend::ChangeSet;
use crate::model::change::{Applied, WriteReport};
use crate::model::error::ConfigId;
use crate::model::name::NamespaceName;

async fn manager_with(backend: Arc<dyn Backend>) -> Confo {
    let confo = Confo::new();
    confo.add_backend("main", backend).await.unwrap();
    confo.activate_backend("main").unwrap();
    confo
}

async fn memory_manager() -> (Confo, Arc<MemoryBackend>) {
    let backend = Arc::new(MemoryBackend::new());
    (manager_with(backend.clone()).await, backend)
}

fn obj(v: Value) -> Configuration {
    v.as_object().unwrap().clone()
}

#[tokio::test]
async fn typed_errors_before_a_backend_or_namespace_is_chosen() {
    let confo = Confo::new();
    assert!(matches!(confo.namespaces(), Err(Error::NoActiveBackend)));
    assert!(matches!(confo.get("x"), Err(Error::NoActiveBackend)));
    assert!(matches!(confo.persist().await, Err(Error::NoActiveBackend)));
    assert!(matches!(confo.activate_backend("nope"), Err(Error::NotFound { what: Missing::Backend, .. })));

    confo.load_backend("mem", &BackendSpec::memory()).await.unwrap();
    assert_eq!(confo.backends(), BackendsInfo { all: vec!["mem".into()], active: None });
    assert!(matches!(confo.load_backend("mem", &BackendSpec::memory()).await, Err(Error::AlreadyExists { .. })));
    confo.activate_backend("mem").unwrap();
    assert_eq!(confo.namespaces().unwrap(), NamespacesInfo { all: vec![], current: None });
    assert!(matches!(confo.get_all(), Err(Error::NoNamespaceSelected { .. })));
    assert!(matches!(confo.set("c", "f", 1), Err(Error::NoNamespaceSelected { .. })));
    let err = confo.use_namespace("missing").await.unwrap_err();
    assert!(matches!(err, Error::NotFound { what: Missing::Namespace, .. }), "{err:?}");
    assert!(matches!(confo.load_backend("bad/name", &BackendSpec::memory()).await, Err(Error::InvalidName { .. })));
}

#[tokio::test]
async fn staged_edits_stay_in_memory_until_persisted() {
    let (confo, store) = memory_manager().await;
    confo.create_namespace("sales").await.unwrap();
    confo.use_namespace("sales").await.unwrap();
    confo.set("database", "host", "127.0.0.1").unwrap();
    confo.set("database", "port", 5432).unwrap();
    assert_eq!(confo.get_field("database", "port").unwrap(), Some(json!(5432)));
    assert_eq!(confo.count().unwrap(), 1);
    assert!(store.load_namespace("sales").await.unwrap().is_empty(), "nothing written before persist");
    assert_eq!(confo.staged().unwrap(), ["sales/database"]);

    assert_eq!(confo.persist().await.unwrap(), ["sales/database"]);
    let stored = store.load_namespace("sales").await.unwrap();
    assert_eq!(*stored["database"].value, obj(json!({"host": "127.0.0.1", "port": 5432})));
    assert!(confo.staged().unwrap().is_empty());
    // Nothing staged: persisting again writes nothing.
    assert!(confo.persist().await.unwrap().is_empty());
}

#[tokio::test]
async fn persist_writes_only_what_changed() {
    let (confo, store) = memory_manager().await;
    store.create_namespace("ns").await.unwrap();
    store.put_configuration("ns", "a", obj(json!({"x": 1}))).await.unwrap();
    let before = store.load_namespace("ns").await.unwrap()["a"].version.clone();
    confo.use_namespace("ns").await.unwrap();
    confo.set("a", "x", 1).unwrap(); // same value: no change
    confo.set("b", "y", 2).unwrap();
    assert_eq!(confo.persist().await.unwrap(), ["ns/b"]);
    assert_eq!(store.load_namespace("ns").await.unwrap()["a"].version, before, "a was not rewritten");
}

#[tokio::test]
async fn staged_edits_survive_namespace_switching_and_reload() {
    let (confo, store) = memory_manager().await;
    for ns in ["sales", "analytics"] {
        confo.create_namespace(ns).await.unwrap();
    }
    confo.use_namespace("sales").await.unwrap();
    confo.set("sale_report", "title", "Q3").unwrap();
    confo.use_namespace("analytics").await.unwrap();
    assert_eq!(confo.get("sale_report").unwrap(), None, "staged in sales, not here");
    confo.reload().await.unwrap();
    confo.use_namespace("sales").await.unwrap();
    assert_eq!(confo.get_field("sale_report", "title").unwrap(), Some(json!("Q3")));
    // Another writer changes the store; reload shows it under the staged edit.
    store.put_configuration("sales", "database", obj(json!({"host": "db"}))).await.unwrap();
    confo.reload().await.unwrap();
    assert_eq!(confo.list().unwrap(), ["database", "sale_report"]);
    assert_eq!(confo.namespaces().unwrap().current.as_deref(), Some("sales"));
}

#[tokio::test]
async fn persist_scopes() {
    let (confo, store) = memory_manager().await;
    for ns in ["a", "b"] {
        confo.create_namespace(ns).await.unwrap();
        confo.use_namespace(ns).await.unwrap();
        confo.set("one", "v", 1).unwrap();
        confo.set("two", "v", 2).unwrap();
    }
    assert_eq!(confo.persist_configuration("a", "two").await.unwrap(), ["a/two"]);
    assert_eq!(store.load_namespace("a").await.unwrap().keys().collect::<Vec<_>>(), ["two"]);
    assert_eq!(confo.persist_namespace("b").await.unwrap(), ["b/one", "b/two"]);
    assert_eq!(store.load_namespace("a").await.unwrap().len(), 1, "namespace scope touched only b");
    assert_eq!(confo.staged().unwrap(), ["a/one"]);
    assert_eq!(confo.persist().await.unwrap(), ["a/one"]);
}

#[tokio::test]
async fn field_and_configuration_removal() {
    let (confo, store) = memory_manager().await;
    store.create_namespace("ns").await.unwrap();
    store.put_configuration("ns", "c", obj(json!({"a": 1, "b": 2, "c": 3}))).await.unwrap();
    confo.use_namespace("ns").await.unwrap();
    confo.remove_field("c", "b").unwrap();
    let keys: Vec<String> = confo.get("c").unwrap().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["a", "c"], "order of the remaining fields kept");
    assert!(matches!(confo.remove_field("c", "zz"), Err(Error::NotFound { what: Missing::Field, .. })));
    assert!(matches!(confo.remove_field("nope", "a"), Err(Error::NotFound { what: Missing::Configuration, .. })));
    assert!(matches!(confo.remove("nope"), Err(Error::NotFound { what: Missing::Configuration, .. })));
    confo.persist().await.unwrap();
    assert_eq!(*store.load_namespace("ns").await.unwrap()["c"].value, obj(json!({"a": 1, "c": 3})));

    confo.remove("c").unwrap();
    assert_eq!(confo.get("c").unwrap(), None);
    assert_eq!(confo.count().unwrap(), 0);
    assert_eq!(confo.persist().await.unwrap(), ["ns/c"]);
    assert!(store.load_namespace("ns").await.unwrap().is_empty());

    // A configuration that was only ever staged disappears without a write.
    confo.set("tmp", "x", 1).unwrap();
    confo.remove("tmp").unwrap();
    assert!(confo.persist().await.unwrap().is_empty());
}

#[tokio::test]
async fn typed_reads() {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Db {
        host: String,
        port: u16,
    }
    let (confo, _) = memory_manager().await;
    confo.create_namespace("ns").await.unwrap();
    confo.use_namespace("ns").await.unwrap();
    confo.replace("db", obj(json!({"host": "h", "port": 5432}))).unwrap();
    assert_eq!(confo.get_as::<Db>("db").unwrap(), Db { host: "h".into(), port: 5432 });
    assert!(matches!(confo.get_as::<Db>("missing"), Err(Error::NotFound { .. })));
    confo.set("db", "port", "not a number").unwrap();
    let err = confo.get_as::<Db>("db").unwrap_err();
    assert!(matches!(err, Error::InvalidValue { .. }) && err.to_string().contains("ns/db"), "{err}");
    assert_eq!(confo.get_field("db", "nope").unwrap(), None);
    assert_eq!(confo.get_field("nope", "host").unwrap(), None);
}

#[tokio::test]
async fn invalid_names_are_refused_when_staging() {
    let (confo, _) = memory_manager().await;
    confo.create_namespace("ns").await.unwrap();
    confo.use_namespace("ns").await.unwrap();
    assert!(matches!(confo.set("a/b", "f", 1), Err(Error::InvalidName { .. })));
    assert!(matches!(confo.create_namespace("..").await, Err(Error::InvalidName { .. })));
    assert!(confo.staged().unwrap().is_empty());
}

#[tokio::test]
async fn remove_namespace_needs_force_when_not_empty() {
    let (confo, store) = memory_manager().await;
    confo.create_namespace("ns").await.unwrap();
    store.put_configuration("ns", "c", obj(json!({}))).await.unwrap();
    confo.use_namespace("ns").await.unwrap();
    let err = confo.remove_namespace("ns", Removal::IfEmpty).await.unwrap_err();
    assert!(matches!(err, Error::NotEmpty { count: 1, .. }), "{err:?}");
    confo.set("staged", "x", 1).unwrap();
    confo.remove_namespace("ns", Removal::Recursive).await.unwrap();
    assert!(store.list_namespaces().await.unwrap().is_empty());
    assert_eq!(confo.namespaces().unwrap(), NamespacesInfo { all: vec![], current: None });
    assert!(confo.staged().unwrap().is_empty(), "its staged edits went with it");
}

#[tokio::test]
async fn backends_are_independent() {
    let confo = Confo::new();
    confo.load_backend("one", &BackendSpec::memory()).await.unwrap();
    confo.load_backend("two", &BackendSpec::memory()).await.unwrap();
    confo.activate_backend("one").unwrap();
    confo.create_namespace("ns").await.unwrap();
    confo.use_namespace("ns").await.unwrap();
    confo.set("c", "f", 1).unwrap();
    confo.activate_backend("two").unwrap();
    assert!(confo.namespaces().unwrap().all.is_empty());
    assert!(confo.staged().unwrap().is_empty());
    confo.activate_backend("one").unwrap();
    assert_eq!(confo.get_field("c", "f").unwrap(), Some(json!(1)));
}

/// A backend that applies only the first `limit` changes of a batch, then fails: the shape of
/// a file backend that loses its disk part-way. With `lose_answer`, it reports nothing applied
/// (a connection that broke after the server did the work); with `dies`, reads fail after the
/// failure too (a server that went away).
#[derive(Debug, Default)]
struct FailingAfter {
    inner: MemoryBackend,
    limit: usize,
    lose_answer: bool,
    dies: bool,
    dead: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl Backend for FailingAfter {
    fn describe(&self) -> String {
        "failing".into()
    }
    fn capabilities(&self) -> crate::backend::Capabilities {
        self.inner.capabilities()
    }
    async fn list_namespaces(&self) -> Result<Vec<String>> {
        self.inner.list_namespaces().await
    }
    async fn create(&self, ns: &NamespaceName) -> Result<bool> {
        self.inner.create(ns).await
    }
    async fn delete(&self, ns: &NamespaceName) -> Result<()> {
        self.inner.delete(ns).await
    }
    async fn scan(&self, ns: &NamespaceName, sink: Arc<dyn crate::model::decode::Sink>) -> Result<()> {
        if self.dead.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(Error::unavailable("failing", "connection refused"));
        }
        self.inner.scan(ns, sink).await
    }
    async fn apply(&self, ns: &NamespaceName, changes: &ChangeSet<'_>) -> WriteReport {
        let take = changes.len().min(self.limit);
        let mut report = self.inner.write(ns, &changes[..take]).await;
        if take < changes.len() || self.lose_answer {
            report.error = Some(Error::unavailable("failing", "disk gone"));
            if self.lose_answer {
                report.applied.clear();
            }
            self.dead.store(self.dies, std::sync::atomic::Ordering::Relaxed);
        }
        report
    }
}

#[tokio::test]
async fn partial_persist_names_what_was_and_was_not_written_and_keeps_the_rest_staged() {
    let backend = Arc::new(FailingAfter { limit: 2, ..Default::default() });
    let confo = manager_with(backend.clone()).await;
    confo.create_namespace("ns").await.unwrap();
    confo.use_namespace("ns").await.unwrap();
    for c in ["a", "b", "c", "d"] {
        confo.set(c, "v", c).unwrap();
    }
    let err = confo.persist().await.unwrap_err();
    let Error::PersistIncomplete { written, unwritten, unknown, source } = err else { panic!("{err:?}") };
    assert_eq!(written, ["ns/a", "ns/b"]);
    assert_eq!(unwritten, ["ns/c", "ns/d"]);
    assert!(unknown.is_empty());
    assert!(matches!(*source, Error::Unavailable { .. }));
    assert_eq!(confo.staged().unwrap(), ["ns/c", "ns/d"], "nothing lost");
    assert_eq!(backend.inner.load_namespace("ns").await.unwrap().len(), 2);
    assert_eq!(confo.get_field("c", "v").unwrap(), Some(json!("c")), "still readable");
}

#[tokio::test]
async fn a_failing_first_write_returns_its_own_error() {
    let backend = Arc::new(FailingAfter { limit: 0, ..Default::default() });
    let confo = manager_with(backend).await;
    confo.create_namespace("ns").await.unwrap();
    confo.use_namespace("ns").await.unwrap();
    confo.set("a", "v", 1).unwrap();
    assert!(matches!(confo.persist().await, Err(Error::Unavailable { .. })));
    assert_eq!(confo.staged().unwrap(), ["ns/a"]);
}

#[tokio::test]
async fn an_edit_made_during_a_persist_stays_staged() {
    let (confo, _) = memory_manager().await;
    confo.create_namespace("ns").await.unwrap();
    confo.use_namespace("ns").await.unwrap();
    confo.set("c", "v", 1).unwrap();
    // Simulate: the batch was taken, then the user edits again before the write settles.
    let batches =
        confo.state().backends.get_mut("main").unwrap().draft.prepare(Scope::All, false, |_, _| Known::Unknown);
    confo.set("c", "v", 2).unwrap();
    confo.settle(
        "main",
        &batches[0],
        &[Applied { name: "c".into(), version: Some(crate::model::version::Version::number(7)) }],
    );
    assert_eq!(confo.staged().unwrap(), ["ns/c"], "the newer edit is kept");
    assert_eq!(confo.get_field("c", "v").unwrap(), Some(json!(2)));
    let base = confo.state().backends["main"].draft.get("ns", "c").unwrap().base().cloned();
    assert_eq!(
        base,
        Some(crate::model::version::Version::number(7)),
        "now based on the version just written, so it persists without a conflict"
    );
    assert!(confo.stale_edits().unwrap().is_empty());
}

/// The answer to a write is lost but the store did the work: reading back settles it, and the
/// persist succeeds (never a failure for a write that landed).
#[tokio::test]
async fn a_lost_answer_is_settled_by_reading_back() {
    let backend = Arc::new(FailingAfter { limit: usize::MAX, lose_answer: true, ..Default::default() });
    let confo = manager_with(backend.clone()).await;
    confo.create_namespace("ns").await.unwrap();
    confo.use_namespace("ns").await.unwrap();
    confo.set("a", "v", 1).unwrap();
    confo.set("b", "v", 2).unwrap();
    assert_eq!(confo.persist().await.unwrap(), ["ns/a", "ns/b"]);
    assert!(confo.staged().unwrap().is_empty());
    // A point write (one configuration) is settled by reading back that one.
    confo.set("a", "v", 3).unwrap();
    assert_eq!(confo.persist().await.unwrap(), ["ns/a"]);

    // Half landed, answer lost: the read-back tells which half.
    let backend = Arc::new(FailingAfter { limit: 1, lose_answer: true, ..Default::default() });
    let confo = manager_with(backend.clone()).await;
    confo.create_namespace("ns").await.unwrap();
    confo.use_namespace("ns").await.unwrap();
    confo.set("a", "v", 1).unwrap();
    confo.set("b", "v", 2).unwrap();
    let err = confo.persist().await.unwrap_err();
    let Error::PersistIncomplete { written, unwritten, unknown, .. } = err else { panic!("{err:?}") };
    assert_eq!(
        (written, unwritten, unknown.len()),
        (vec![ConfigId::new("ns", "a")], vec![ConfigId::new("ns", "b")], 0)
    );
}

/// The store goes away with the answer: nothing can be read back, so the changes sent are in
/// doubt, said as such, and stay staged.
#[tokio::test]
async fn a_store_that_dies_mid_write_leaves_changes_in_doubt() {
    let backend = Arc::new(FailingAfter { limit: 1, lose_answer: true, dies: true, ..Default::default() });
    let confo = manager_with(backend.clone()).await;
    confo.create_namespace("first").await.unwrap();
    confo.create_namespace("second").await.unwrap();
    confo.use_namespace("first").await.unwrap();
    confo.set("a", "v", 1).unwrap();
    confo.set("b", "v", 2).unwrap();
    confo.use_namespace("second").await.unwrap();
    confo.set("c", "v", 3).unwrap();
    let err = confo.persist().await.unwrap_err();
    let text = err.to_string();
    let Error::PersistIncomplete { written, unwritten, unknown, .. } = err else { panic!("{err:?}") };
    assert!(written.is_empty());
    assert_eq!(unknown, ["first/a", "first/b"]);
    assert_eq!(unwritten, ["second/c"], "the batch after the failure was never sent");
    assert!(text.contains("outcome unknown"), "{text}");
    assert_eq!(confo.staged().unwrap().len(), 3, "nothing dropped");

    // A point write whose store died with the answer: in doubt too.
    let backend = Arc::new(FailingAfter { limit: 1, lose_answer: true, dies: true, ..Default::default() });
    let confo = manager_with(backend.clone()).await;
    confo.create_namespace("ns").await.unwrap();
    confo.use_namespace("ns").await.unwrap();
    confo.set("a", "v", 1).unwrap();
    let err = confo.persist().await.unwrap_err();
    let Error::PersistIncomplete { unknown, .. } = err else { panic!("{err:?}") };
    assert_eq!(unknown, ["ns/a"]);
}

/// A field update applies to what is stored, not to the session's (stale) snapshot, and drops
/// the session's own staged edit of that configuration.
#[tokio::test]
async fn field_updates_apply_to_what_is_stored() {
    let backend = Arc::new(MemoryBackend::new());
    let stale = manager_with(backend.clone()).await;
    stale.create_namespace("ns").await.unwrap();
    stale.use_namespace("ns").await.unwrap();
    stale.set("db", "host", "h").unwrap();
    stale.persist().await.unwrap();
    let other = manager_with(backend.clone()).await;
    other.use_namespace("ns").await.unwrap();
    other.set("db", "port", 1).unwrap();
    other.persist().await.unwrap();
    stale.set("db", "host", "staged").unwrap();
    stale.update_fields("ns", "db", &[FieldEdit::Set("user".into(), json!("u"))]).await.unwrap();
    let stored = backend.load_configuration("ns", "db").await.unwrap().unwrap();
    assert_eq!(*stored.value, *json!({"host": "h", "port": 1, "user": "u"}).as_object().unwrap());
    assert!(stale.staged().unwrap().is_empty(), "the staged edit gave way");
    assert_eq!(stale.get_field("db", "port").unwrap(), Some(json!(1)), "the session reads afresh");
}

#[tokio::test]
async fn count_follows_staged_edits_without_building_the_map() {
    let (confo, store) = memory_manager().await;
    store.create_namespace("ns").await.unwrap();
    store.put_configuration("ns", "a", obj(json!({}))).await.unwrap();
    store.put_configuration("ns", "b", obj(json!({}))).await.unwrap();
    confo.use_namespace("ns").await.unwrap();
    assert_eq!(confo.count().unwrap(), 2);
    confo.set("a", "v", 1).unwrap(); // an edit of an existing one
    confo.set("c", "v", 1).unwrap(); // a new one
    confo.remove("b").unwrap();
    assert_eq!(confo.count().unwrap(), confo.get_all().unwrap().len());
    assert_eq!(confo.count().unwrap(), 2);
}

#[tokio::test]
async fn persisting_a_namespace_or_configuration_that_does_not_exist_is_not_found() {
    let (confo, store) = memory_manager().await;
    store.create_namespace("ns").await.unwrap();
    store.put_configuration("ns", "a", obj(json!({}))).await.unwrap();
    confo.use_namespace("ns").await.unwrap();
    let err = confo.persist_namespace("typo").await.unwrap_err();
    assert!(matches!(err, Error::NotFound { what: Missing::Namespace, .. }), "{err:?}");
    let err = confo.persist_configuration("ns", "typo").await.unwrap_err();
    assert!(matches!(err, Error::NotFound { what: Missing::Configuration, .. }), "{err:?}");
    // Existing names with nothing staged are fine, and write nothing.
    assert!(confo.persist_namespace("ns").await.unwrap().is_empty());
    assert!(confo.persist_configuration("ns", "a").await.unwrap().is_empty());
    // A namespace made by someone else since the list was read is found in the store.
    store.create_namespace("later").await.unwrap();
    assert!(confo.persist_namespace("later").await.unwrap().is_empty());
}

#[tokio::test]
async fn replacing_a_backend_drops_its_edits_and_keeps_it_active() {
    let confo = Confo::new();
    confo.load_backend("main", &BackendSpec::memory()).await.unwrap();
    confo.activate_backend("main").unwrap();
    confo.create_namespace("ns").await.unwrap();
    confo.use_namespace("ns").await.unwrap();
    confo.set("a", "v", 1).unwrap();
    confo.replace_backend("main", &BackendSpec::memory()).await.unwrap();
    assert_eq!(confo.backends().active.as_deref(), Some("main"));
    assert!(confo.staged().unwrap().is_empty());
    assert!(confo.namespaces().unwrap().all.is_empty(), "a new, empty store");
    // A spec that cannot be opened leaves the old backend in place.
    let missing = BackendSpec::file("/nonexistent/confo-test-folder");
    assert!(confo.replace_backend("main", &missing).await.is_err());
    assert_eq!(confo.backends().all, ["main"]);
}

#[tokio::test]
async fn credentials_kept_in_a_configuration_may_carry_other_fields() {
    let dir = confo_testkit::store_dir().unwrap();
    let confo = Confo::new();
    confo.load_backend("mem", &BackendSpec::memory()).await.unwrap();
    confo.activate_backend("mem").unwrap();
    let store = confo.store().unwrap();
    store.create_namespace("infra").await.unwrap();
    let creds = obj(json!({"config_path": dir.path().to_str().unwrap(), "env": "prod", "owner": "ops"}));
    store.put("infra", "files", creds, crate::model::change::Precondition::Any).await.unwrap();
    confo.load_backend_from("files", "file".parse().unwrap(), "mem", "infra", "files").await.unwrap();
    assert_eq!(confo.backends().all, ["files", "mem"]);
    // The spec API itself stays strict.
    let strict =
        BackendSpec::from_credentials(crate::spec::BackendKind::FILE, &json!({"config_path": "x", "env": "prod"}));
    assert!(strict.is_err());
}

#[tokio::test]
async fn secrets_are_staged_sealed_and_revealed_with_the_key() {
    let (confo, store) = memory_manager().await;
    store.create_namespace("ns").await.unwrap();
    confo.use_namespace("ns").await.unwrap();
    let mut keyring = crate::secrets::Keyring::new();
    keyring.generate(None).unwrap();
    confo.set_secret("db", "password", "hunter2", &keyring).unwrap();
    assert!(!serde_json::to_string(&*confo.get("db").unwrap().unwrap()).unwrap().contains("hunter2"));
    confo.persist().await.unwrap();
    let raw = store.load_configuration("ns", "db").await.unwrap().unwrap();
    assert!(crate::model::sealed::is_sealed(&raw.value["password"]));
    assert_eq!(confo.get_revealed("db", &keyring).unwrap().unwrap()["password"], json!("hunter2"));
    // A sealed value moved to another field does not open there.
    let sealed = raw.value["password"].clone();
    confo.set("db", "token", sealed).unwrap();
    let err = confo.get_revealed("db", &keyring).unwrap_err();
    assert!(err.to_string().contains("field /token") && !err.to_string().contains("hunter2"), "{err}");
}

#[tokio::test]
async fn unchanged_secrets_are_not_sealed_again_on_persist() {
    let (confo, store) = memory_manager().await;
    store.create_namespace("ns").await.unwrap();
    confo.use_namespace("ns").await.unwrap();
    let mut keyring = crate::secrets::Keyring::new();
    keyring.generate(None).unwrap();
    confo.set_secret("db", "password", "hunter2", &keyring).unwrap();
    confo.persist().await.unwrap();
    let before = store.load_configuration("ns", "db").await.unwrap().unwrap().value["password"].clone();
    confo.set("db", "host", "h").unwrap();
    confo.persist().await.unwrap();
    let after = store.load_configuration("ns", "db").await.unwrap().unwrap().value["password"].clone();
    assert_eq!(before, after, "the same ciphertext: no new nonce, no churn");
}

/// The session's rollback: its precondition is the version the session loaded (a change made
/// since by someone else is a conflict, nothing written), it records the session's author, and
/// the session sees the restored value.
#[tokio::test]
async fn session_rollback_uses_the_loaded_version_and_the_sessions_author() {
    let (confo, backend) = memory_manager().await;
    confo.set_author(crate::model::history::Author::current("test").with_actor("sam"));
    confo.create_namespace("ns").await.unwrap();
    confo.use_namespace("ns").await.unwrap();
    for port in [1, 2] {
        confo.set("db", "port", port).unwrap();
        confo.persist().await.unwrap();
    }
    assert_eq!(confo.history("db", crate::store::Page::all()).await.unwrap().head(), 2);
    confo.rollback("db", 1).await.unwrap();
    assert_eq!(confo.get_field("db", "port").unwrap(), Some(json!(1)));
    let three = confo.revision("db", 3).await.unwrap();
    assert_eq!((three.actor.as_str(), three.restores), ("sam", Some(1)));
    // Someone else writes: this session's loaded version is stale.
    backend.put_configuration("ns", "db", obj(json!({"port": 9}))).await.unwrap();
    assert!(matches!(confo.rollback("db", 2).await, Err(Error::Conflict { .. })));
    assert_eq!(backend.load_configuration("ns", "db").await.unwrap().unwrap().value["port"], json!(9));
    let (log, _) = confo.log(&crate::store::LogFilter::default()).await.unwrap();
    assert_eq!(log.len(), 4);
}

/// A namespace large enough to be made compact on several threads reads back exactly, whichever
/// half each configuration fell in, and edits and persists over the compact form as over any.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_namespace_is_cached_compact_and_reads_back_exactly() {
    let (confo, backend) = memory_manager().await;
    confo.create_namespace("big").await.unwrap();
    let n = crate::model::compact::LARGE + 501;
    let value = |i: usize| {
        obj(
            json!({"id": i, "name": format!("configuration number {i} with a longer text"), "big": 123456789012345678901234567890u128,
                   "nested": {"list": [i, "x", null, true, 1.5e300], "i": i}, "order": "kept"}),
        )
    };
    let changes: Vec<crate::model::change::Change> =
        (0..n).map(|i| crate::model::change::Change::put(format!("c{i:05}"), value(i))).collect();
    backend.write("big", &changes).await.into_result().unwrap();
    confo.use_namespace("big").await.unwrap();
    assert_eq!(confo.count().unwrap(), n);
    for i in [0, 1, n / 2 - 1, n / 2, n / 2 + 1, n - 1] {
        let name = format!("c{i:05}");
        let got = confo.get(&name).unwrap().unwrap();
        assert_eq!(serde_json::to_string(&*got).unwrap(), serde_json::to_string(&value(i)).unwrap(), "{name}");
        assert_eq!(confo.get_field(&name, "nested").unwrap(), Some(value(i)["nested"].clone()));
        assert!(matches!(confo.get_content(&name).unwrap(), Some(Content::Stored(_))));
    }
    // An edit over the compact form, persisted, then cached compact again; an edit that
    // changes nothing is not written.
    confo.set("c00007", "id", 7).unwrap();
    confo.set("c00008", "id", -8).unwrap();
    assert!(matches!(confo.get_content("c00008").unwrap(), Some(Content::Staged(_))));
    let written = confo.persist().await.unwrap();
    assert_eq!(written.iter().map(|r| r.to_string()).collect::<Vec<_>>(), ["big/c00008"]);
    assert_eq!(confo.get_field("c00008", "id").unwrap(), Some(json!(-8)));
    assert!(matches!(confo.get_content("c00008").unwrap(), Some(Content::Stored(_))));
    let all = confo.get_all_content().unwrap();
    assert_eq!(all.len(), n);
    let (a, b) = (confo.get_content("c00001").unwrap().unwrap(), all["c00001"].clone());
    assert!(a.same(&b), "the same cached content, not a copy");
}

/// An edit that changes only the order of fields changes nothing, as before the cache was
/// compact (serde_json compares objects as maps); a changed value is written.
#[tokio::test]
async fn a_reordered_replace_is_not_written_and_a_changed_one_is() {
    let (confo, backend) = memory_manager().await;
    confo.create_namespace("ns").await.unwrap();
    backend
        .write("ns", &[crate::model::change::Change::put("db", obj(json!({"a": 1, "b": {"x": 1, "y": 2}})))])
        .await
        .into_result()
        .unwrap();
    confo.use_namespace("ns").await.unwrap();
    confo.replace("db", obj(json!({"b": {"y": 2, "x": 1}, "a": 1}))).unwrap();
    assert!(confo.persist().await.unwrap().is_empty(), "nothing to write");
    confo.replace("db", obj(json!({"b": {"y": 2, "x": 1}, "a": 2}))).unwrap();
    assert_eq!(confo.persist().await.unwrap().len(), 1);
    assert_eq!(confo.get_field("db", "a").unwrap(), Some(json!(2)));
}

#[tokio::test]
async fn loading_a_backend_again_keeps_the_namespace_and_the_staged_edits() {
    let first = Arc::new(MemoryBackend::new());
    let confo = manager_with(first.clone()).await;
    confo.create_namespace("sales").await.unwrap();
    confo.use_namespace("sales").await.unwrap();
    confo.set("db", "port", 1).unwrap();
    let second = Arc::new(MemoryBackend::new());
    second.create_namespace("sales").await.unwrap();
    second.put_configuration("sales", "cache", obj(json!({"ttl": 5}))).await.unwrap();
    confo.reload_backend_with("main", second.clone()).await.unwrap();
    assert_eq!(confo.current_namespace().unwrap(), "sales");
    assert_eq!(confo.staged().unwrap(), ["sales/db"]);
    assert_eq!(confo.get_field("cache", "ttl").unwrap(), Some(json!(5)), "read from the new store");
    confo.persist().await.unwrap();
    assert!(second.load_configuration("sales", "db").await.unwrap().is_some());
    assert!(first.load_namespace("sales").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_whole_value_staged_on_an_older_version_is_a_conflict() {
    let (confo, store) = memory_manager().await;
    confo.create_namespace("sales").await.unwrap();
    confo.use_namespace("sales").await.unwrap();
    confo.set("db", "port", 1).unwrap();
    confo.persist().await.unwrap();
    let (place, found) = confo.get_placed("db").unwrap();
    let found = found.unwrap();
    assert_eq!((place.backend.as_str(), place.namespace.as_str()), ("main", "sales"));
    let seen = found.base.clone().unwrap();
    // Another writer moves the store on; this session reads it again.
    store.put_configuration("sales", "db", obj(json!({"port": 9}))).await.unwrap();
    confo.reload().await.unwrap();
    assert_ne!(confo.get_placed("db").unwrap().1.unwrap().base, Some(seen.clone()));
    // A change made on what was seen before is staged on that version: a conflict to persist.
    confo.replace_on(&place, "db", obj(json!({"port": 2})), Some(seen)).unwrap();
    assert_eq!(confo.stale_edits().unwrap(), ["sales/db"]);
    assert!(matches!(confo.persist().await, Err(Error::Conflict { .. })));
    assert_eq!(store.load_configuration("sales", "db").await.unwrap().unwrap().value["port"], json!(9));
    // Not on the active backend: refused.
    let elsewhere = Place { backend: "other".into(), namespace: "sales".into() };
    assert!(matches!(confo.replace_on(&elsewhere, "db", obj(json!({})), None), Err(Error::NoActiveBackend)));
}
