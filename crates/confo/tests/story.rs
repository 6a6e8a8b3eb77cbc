//! Python confo's README story, on the file backend: namespaces `sales` and `analytics`, a
//! `database` configuration read from files, and a session-only `sale_report` that reaches the
//! disk only when persisted, at each of the three scopes.

use std::fs;
use std::path::Path;

use confo::{Confo, Error};
use serde_json::json;

fn read(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(path).expect("read")).expect("json")
}

#[tokio::test]
async fn confo_readme_story() {
    let dir = confo_testkit::store_dir().expect("temp dir");
    let root = dir.path();
    fs::create_dir_all(root.join("sales")).expect("mkdir");
    fs::write(root.join("sales/database.json"), r#"{"host": "127.0.0.1", "port": 5432, "user": "sales"}"#)
        .expect("write");

    let confo = Confo::new();
    let spec = confo::BackendSpec::from_credentials(confo::BackendKind::FILE, &json!({"config_path": root}))
        .expect("credentials");
    confo.load_backend("file_backend", &spec).await.expect("load");
    assert!(matches!(confo.get_all(), Err(Error::NoActiveBackend)));
    confo.activate_backend("file_backend").expect("activate");
    assert_eq!(confo.backends().active.as_deref(), Some("file_backend"));
    assert!(confo.create_namespace("analytics").await.expect("create"));
    let namespaces = confo.namespaces().expect("namespaces");
    assert_eq!(namespaces.all, ["analytics", "sales"]);
    assert_eq!(namespaces.current, None, "no namespace chosen yet");

    // The database configuration comes from the file.
    confo.use_namespace("sales").await.expect("use");
    assert_eq!(confo.get_field("database", "port").expect("get"), Some(json!(5432)));
    assert_eq!(confo.count().expect("count"), 1);

    // A session-only configuration: in memory, not on disk.
    confo.set("sale_report", "title", "Quarterly sales").expect("set");
    confo.set("sale_report", "recipients", json!(["ceo@x.io"])).expect("set");
    confo.set("database", "port", 6432).expect("set");
    assert_eq!(confo.count().expect("count"), 2);
    assert!(!root.join("sales/sale_report.json").exists());

    // Switching namespaces keeps it.
    confo.use_namespace("analytics").await.expect("use");
    confo.set("dashboard", "refresh_seconds", 30).expect("set");
    confo.set("warehouse", "dsn", "postgres://wh").expect("set");
    confo.use_namespace("sales").await.expect("use");
    assert_eq!(confo.get_field("sale_report", "title").expect("get"), Some(json!("Quarterly sales")));

    // Scope 1: one configuration.
    assert_eq!(confo.persist_configuration("sales", "sale_report").await.expect("persist"), ["sales/sale_report"]);
    assert_eq!(read(&root.join("sales/sale_report.json"))["title"], json!("Quarterly sales"));
    assert_eq!(read(&root.join("sales/database.json"))["port"], json!(5432), "database still staged");
    assert!(!root.join("analytics/dashboard.json").exists());

    // Scope 2: one namespace.
    assert_eq!(
        confo.persist_namespace("analytics").await.expect("persist"),
        ["analytics/dashboard", "analytics/warehouse"]
    );
    assert_eq!(read(&root.join("analytics/dashboard.json")), json!({"refresh_seconds": 30}));
    assert_eq!(read(&root.join("sales/database.json"))["port"], json!(5432), "sales untouched");

    // Scope 3: everything that is left.
    assert_eq!(confo.persist().await.expect("persist"), ["sales/database"]);
    assert_eq!(read(&root.join("sales/database.json")), json!({"host": "127.0.0.1", "port": 6432, "user": "sales"}));

    // A fresh manager reads back exactly what was persisted.
    let again = Confo::new();
    again.load_backend("f", &spec).await.expect("load");
    again.activate_backend("f").expect("activate");
    again.use_namespace("sales").await.expect("use");
    assert_eq!(again.list().expect("list"), ["database", "sale_report"]);
    assert_eq!(again.get_all().expect("all"), confo.get_all().expect("all"));
}
