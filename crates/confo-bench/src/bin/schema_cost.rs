//! What schema validation adds to an import: N configurations (the workload's, about 277 bytes
//! each) imported into an empty namespace with and without a schema (every field typed and
//! bounded, mode enforce), medians of 5 runs each, on every backend against servers the
//! testkit starts on loopback; and how many schemas the imports compiled (the one schema is
//! compiled when it is set, then reused: never once per configuration).
//!
//! ```text
//! cargo run --release -p confo-bench --bin schema_cost [-- N...]     (default 10000)
//! SCHEMA_COST_ONLY=files cargo run --release -p confo-bench --bin schema_cost
//! ```

use std::time::{Duration, Instant};

use confo::transfer::Document;
use confo::{BackendSpec, Store};
use confo_bench::workload::configuration as config;
use serde_json::json;

fn schema() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": {
            "host": {"type": "string", "minLength": 1},
            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
            "user": {"type": "string"},
            "database": {"type": "string", "pattern": "^[a-z_0-9]+$"},
            "pool_min": {"type": "integer", "minimum": 0},
            "pool_max": {"type": "integer", "minimum": 1},
            "timeout_ms": {"type": "integer", "minimum": 1},
            "ssl": {"type": "boolean"},
            "replicas": {"type": "array", "items": {"type": "string"}},
            "region": {"enum": ["eu-west-1", "us-east-1"]},
            "owner": {"type": "string"}
        },
        "required": ["host", "port", "database"],
        "additionalProperties": false
    })
}

/// One import of `document` (whose one namespace is `namespace`) into a new, empty namespace,
/// with the schema set first when `with_schema`: the import's time alone.
async fn import(store: &Store, namespace: &str, document: &Document, with_schema: bool) -> Duration {
    store.create_namespace(namespace).await.expect("create");
    if with_schema {
        store.set_schema(namespace, None, Some(schema()), None).await.expect("schema");
    }
    let started = Instant::now();
    let plan = store.plan(document, false).await.expect("plan");
    store.apply(&plan, document, |_, _| {}).await.expect("import");
    started.elapsed()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() { vec![10_000] } else { sizes };
    std::env::set_var("CONFO_ZK_HEAP", "1g");
    let only = std::env::var("SCHEMA_COST_ONLY").ok();
    let wanted = |name: &str| only.as_deref().is_none_or(|o| o == name);
    let files = confo_testkit::store_dir().expect("temp dir");
    let redis = wanted("redis").then(|| confo_testkit::RedisServer::start().expect("redis-server"));
    let zk = wanted("zookeeper").then(|| confo_testkit::ZkServer::start().expect("zookeeper"));
    let etcd = wanted("etcd").then(|| confo_testkit::EtcdServer::start().expect("etcd"));
    let mut specs = vec![("files", format!("file:{}", files.path().display()))];
    specs.extend(redis.as_ref().map(|s| ("redis", s.url())));
    specs.extend(zk.as_ref().map(|s| ("zookeeper", format!("zk://{}", s.connect_string()))));
    specs.extend(etcd.as_ref().map(|s| ("etcd", format!("etcd://{}", s.endpoint()))));

    for &n in &sizes {
        let configs: Vec<_> = (0..n).map(config).collect();
        let schemas = confo::schema::Schemas { default: Some(schema()), ..Default::default() };
        let started = Instant::now();
        let compiled = schemas.compile("bench").expect("compile");
        let compile = started.elapsed();
        let started = Instant::now();
        let violations: usize = configs.iter().map(|c| compiled.check("c", c).len()).sum();
        assert_eq!(violations, 0);
        println!(
            "validation alone: {n} configurations checked in {} ({:.1} µs each); compiling the schema: {}\n",
            ms(started.elapsed()),
            started.elapsed().as_secs_f64() * 1e6 / n as f64,
            ms(compile)
        );
    }
    println!(
        "| backend | N | import without schema | with schema | with ÷ without | schemas compiled (set + import) |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for (name, spec) in specs.iter().filter(|(name, _)| wanted(name)) {
        let store = Store::open(&spec.parse::<BackendSpec>().expect("spec")).await.expect("open");
        for &n in &sizes {
            let mut without = Vec::new();
            let mut with = Vec::new();
            let mut compiled = 0;
            for run in 0..5 {
                // Alternated, so that drift (page cache, compaction) weighs on both alike.
                for with_schema in [false, true] {
                    let namespace = format!("s{}{n}x{run}", if with_schema { "with" } else { "without" });
                    let configs: serde_json::Map<String, serde_json::Value> =
                        (0..n).map(|i| (format!("c{i:05}"), serde_json::Value::Object(config(i)))).collect();
                    let document: Document =
                        serde_json::from_value(json!({ namespace.clone(): configs })).expect("doc");
                    let before = confo::schema::compilations();
                    let took = import(&store, &namespace, &document, with_schema).await;
                    if with_schema {
                        // The set compiles the schema once (or finds it cached); the import none.
                        compiled += confo::schema::compilations() - before;
                        with.push(took);
                    } else {
                        without.push(took);
                    }
                    store.remove_namespace(&namespace, confo::Removal::Recursive).await.expect("remove");
                }
            }
            let (without, with) = (median(without), median(with));
            println!(
                "| {name} | {n} | {} | {} | {:.2}× | {compiled} in 5 runs of {n} |",
                ms(without),
                ms(with),
                with.as_secs_f64() / without.as_secs_f64()
            );
        }
    }
}
