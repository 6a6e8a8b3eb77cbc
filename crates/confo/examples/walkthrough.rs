//! Python confo's README story on the embedded file backend, with the blocking API:
//! namespaces `sales` and `analytics`, configurations set in memory, persisted at each of the
//! three scopes, and read back by a fresh manager.
//!
//! ```text
//! cargo run -p confo --example walkthrough [-- CONFIG_PATH]     (default target/walkthrough/Configurations)
//! ```

use std::path::PathBuf;

use confo::blocking::Confo;
use confo::{BackendKind, BackendSpec};
use serde_json::json;

fn main() -> Result<(), confo::Error> {
    let path =
        std::env::args().nth(1).map_or_else(|| PathBuf::from("target/walkthrough/Configurations"), PathBuf::from);
    if path.exists() {
        std::fs::remove_dir_all(&path)
            .map_err(|e| confo::Error::Io { location: path.display().to_string(), source: e })?;
    }
    std::fs::create_dir_all(&path).map_err(|e| confo::Error::Io { location: path.display().to_string(), source: e })?;

    // The seed's credentials dictionary, for the file backend.
    let spec = BackendSpec::from_credentials(BackendKind::FILE, &json!({ "config_path": path }))?;
    let config = Confo::new()?;
    config.load_backend("file_backend", &spec)?;
    config.activate_backend("file_backend")?;
    println!("backends: {:?}", config.backends());

    config.create_namespace("sales")?;
    config.create_namespace("analytics")?;
    println!("namespaces: {:?}", config.namespaces()?);

    config.use_namespace("sales")?;
    config.set("database", "host", "127.0.0.1")?;
    config.set("database", "port", 5432)?;
    config.set("database", "admins", json!(["tshepang.maila@sambeconsulting.com", "kabelo.masemola@sambe.co.za"]))?;
    config.persist_configuration("sales", "database")?;
    println!("persisted sales/database -> {}", path.join("sales/database.json").display());

    // A session-only configuration: readable, but not on disk until persisted.
    config.set("sale_report", "title", "Quarterly sales")?;
    println!(
        "sale_report in memory: {:?}; on disk: {}",
        config.get_field("sale_report", "title")?,
        path.join("sales/sale_report.json").exists()
    );

    config.use_namespace("analytics")?;
    config.set("warehouse", "dsn", "postgres://warehouse.internal/analytics")?;
    config.persist_namespace("analytics")?;
    println!("persisted namespace analytics");

    config.use_namespace("sales")?;
    println!("back in sales, sale_report is still staged: {:?}", config.staged()?);
    let written = config.persist()?;
    println!("persisted everything: {written:?}");

    // A fresh manager sees exactly what was persisted.
    let fresh = Confo::new()?;
    fresh.load_backend("again", &spec)?;
    fresh.activate_backend("again")?;
    fresh.use_namespace("sales")?;
    println!("a fresh manager reads sales: {:?} ({} configurations)", fresh.list()?, fresh.count()?);
    println!("sales/database.json:\n{}", std::fs::read_to_string(path.join("sales/database.json")).unwrap_or_default());
    Ok(())
}
