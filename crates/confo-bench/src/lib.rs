//! The benchmarks' workload, shared by the `confo-bench` binary and `backend_timings`.

#![deny(missing_docs)]

/// The data every benchmark writes and reads.
pub mod workload {
    /// Configuration `i` of the benchmarks' workload: 11 fields, about 277 bytes of JSON.
    pub fn configuration(i: usize) -> serde_json::Map<String, serde_json::Value> {
        let value = serde_json::json!({
            "host": format!("db{i}.internal.example.com"), "port": 5432, "user": "service_account",
            "database": format!("inventory_{i}"), "pool_min": 2, "pool_max": 20, "timeout_ms": 3000,
            "ssl": true, "replicas": ["replica-1.db.example.com", "replica-2.db.example.com"],
            "region": "eu-west-1", "owner": format!("team-{}@example.com", i % 97)
        });
        value.as_object().cloned().unwrap_or_default()
    }
}
