//! Micro-benchmark: a cached read of one field through the manager, beside a bare
//! `HashMap<String, serde_json::Value>` lookup of the same data.
//!
//! ```text
//! cargo bench -p confo --bench cached_get
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};

fn main() {
    divan::main();
}

fn workload(n: usize) -> Vec<(String, confo::Configuration)> {
    (0..n)
        .map(|i| {
            let value =
                json!({"host": format!("db{i}.internal.example.com"), "port": 5432, "user": "svc", "ssl": true});
            (format!("c{i:05}"), value.as_object().cloned().unwrap_or_default())
        })
        .collect()
}

fn manager(configs: &[(String, confo::Configuration)]) -> confo::blocking::Confo {
    let confo = confo::blocking::Confo::new().expect("runtime");
    confo.add_backend("m", Arc::new(confo::MemoryBackend::new())).expect("add");
    confo.activate_backend("m").expect("activate");
    confo.create_namespace("bench").expect("create");
    confo.use_namespace("bench").expect("use");
    for (name, value) in configs {
        confo.replace(name, value.clone()).expect("stage");
    }
    confo.persist().expect("persist");
    confo
}

#[divan::bench(args = [100, 1000, 10_000])]
fn manager_get_field(bencher: divan::Bencher, n: usize) {
    let configs = workload(n);
    let confo = manager(&configs);
    let mut i = 0;
    bencher.bench_local(|| {
        i = (i + 7919) % n;
        confo.get_field(&configs[i].0, "host").ok()
    });
}

#[divan::bench(args = [100, 1000, 10_000])]
fn hashmap_lookup(bencher: divan::Bencher, n: usize) {
    let configs = workload(n);
    let map: HashMap<String, Value> = configs.iter().map(|(k, v)| (k.clone(), Value::Object(v.clone()))).collect();
    let mut i = 0;
    bencher.bench_local(|| {
        i = (i + 7919) % n;
        map.get(&configs[i].0).and_then(|c| c.get("host")).cloned()
    });
}
