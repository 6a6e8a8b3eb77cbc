//! A small service that reads its settings through figment from confo on Redis, and reloads
//! them live: every change to the namespace is extracted again (a bad one is reported and the
//! running settings are kept).
//!
//! ```text
//! cargo run -p confo --features redis,figment --example figment_service -- [REDIS_URL] [SECONDS]
//! ```
//!
//! With no URL it starts a private redis-server on a free loopback port (the testkit's), writes
//! a few changes itself, and stops after SECONDS (default 2).

use std::time::Duration;

use confo::sources::ConfoProvider;
use confo::{Precondition, Store, WatchOptions};
use figment::Figment;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Settings {
    database: Database,
}

#[derive(Debug, Deserialize)]
struct Database {
    host: String,
    port: u16,
}

async fn extract(store: &Store, namespace: &str) -> Result<Settings, Box<dyn std::error::Error>> {
    Ok(Figment::new().merge(ConfoProvider::namespace(store, namespace).await?).extract()?)
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

    let mut settings = extract(&store, "service").await?;
    println!("started with {}:{}", settings.database.host, settings.database.port);
    let mut watcher = store.watch("service", None, WatchOptions::default()).await?;
    if private.is_some() {
        // Play the operator: a good change, a bad one, a good one.
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
        match extract(&store, "service").await {
            Ok(fresh) => {
                settings = fresh;
                println!("reloaded: {}:{}", settings.database.host, settings.database.port);
            }
            Err(e) => println!("kept {}:{}: {e}", settings.database.host, settings.database.port),
        }
    }
    Ok(())
}
