//! The same service as `figment_service`, through config-rs: its settings are one
//! configuration (`service/database`), rebuilt with `config::Config` on every change, and kept
//! when a change does not deserialise.
//!
//! ```text
//! cargo run -p confo --features redis,config-rs --example config_service -- [REDIS_URL] [SECONDS]
//! ```

use std::time::Duration;

use confo::sources::ConfoSource;
use confo::{Precondition, Store, WatchOptions};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Database {
    host: String,
    port: u16,
}

async fn extract(store: &Store) -> Result<Database, Box<dyn std::error::Error>> {
    let source = ConfoSource::configuration(store, "service", "database").await?;
    Ok(config::Config::builder().add_source(source).build()?.try_deserialize()?)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let private = match args.first() {
        Some(_) => None,
        None => Some(confo_testkit::RedisServer::start()?),
    };
    let url = args.first().cloned().or_else(|| private.as_ref().map(|s| s.url())).unwrap_or_default();
    let seconds: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(2);
    let store = Store::open(&url.parse()?).await?;
    store.create_namespace("service").await?;
    let db = |host: &str, port: serde_json::Value| {
        serde_json::json!({"host": host, "port": port}).as_object().cloned().unwrap_or_default()
    };
    store.put("service", "database", db("db1", 5432.into()), Precondition::Any).await?;

    let mut settings = extract(&store).await?;
    println!("started with {}:{}", settings.host, settings.port);
    let mut watcher = store.watch("service", Some("database"), WatchOptions::default()).await?;
    if private.is_some() {
        let writer = store.clone();
        tokio::spawn(async move {
            for (host, port) in [("db2", 6432.into()), ("db3", "not a port".into()), ("db4", 7432.into())] {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let _ = writer.put("service", "database", db(host, port), Precondition::Any).await;
            }
        });
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, watcher.next()).await {
        if event.is_err() {
            continue;
        }
        match extract(&store).await {
            Ok(fresh) => {
                settings = fresh;
                println!("reloaded: {}:{}", settings.host, settings.port);
            }
            Err(e) => println!("kept {}:{}: {e}", settings.host, settings.port),
        }
    }
    Ok(())
}
