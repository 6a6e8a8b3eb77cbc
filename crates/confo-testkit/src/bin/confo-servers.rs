//! Starts one private server for tests written in other languages (the Python suite) and
//! keeps it until standard input closes:
//!
//! ```text
//! confo-servers redis|redis-cluster|zookeeper|etcd
//! ```
//!
//! prints `READY <address>` (`redis://127.0.0.1:P`, `redis+cluster://127.0.0.1:P1,…` for a
//! cluster of 3 masters, `127.0.0.1:P`) on stdout once it answers.

use std::io::Read;

fn main() {
    let kind = std::env::args().nth(1).unwrap_or_default();
    let result = match kind.as_str() {
        "redis" => confo_testkit::RedisServer::start().map(|s| (s.url(), Box::new(s) as Box<dyn std::any::Any>)),
        "redis-cluster" => {
            confo_testkit::RedisCluster::start(3, 0).map(|s| (s.url(), Box::new(s) as Box<dyn std::any::Any>))
        }
        "zookeeper" => {
            confo_testkit::ZkServer::start().map(|s| (s.connect_string(), Box::new(s) as Box<dyn std::any::Any>))
        }
        "etcd" => confo_testkit::EtcdServer::start().map(|s| (s.endpoint(), Box::new(s) as Box<dyn std::any::Any>)),
        other => {
            eprintln!("confo-servers: unknown server {other:?}; expected redis, redis-cluster, zookeeper or etcd");
            std::process::exit(2);
        }
    };
    match result {
        Ok((address, server)) => {
            println!("READY {address}");
            // Until the test process closes our stdin (or dies).
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            drop(server);
        }
        Err(e) => {
            eprintln!("confo-servers: {e}");
            std::process::exit(1);
        }
    }
}
