//! Each server the harness knows starts, answers, stops when told or dropped, and restarts.

use std::net::TcpStream;
use std::time::Duration;

use confo_testkit::{zk_mode, EtcdServer, RedisServer, ZkEnsemble, ZkServer};

fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(300)).is_ok()
}

/// Waits (bounded) until the port stops accepting connections.
fn closed(port: u16) -> bool {
    (0..100).any(|_| {
        let open = listening(port);
        if open {
            std::thread::sleep(Duration::from_millis(20));
        }
        !open
    })
}

#[test]
fn redis_starts_stops_and_restarts() {
    let mut redis = RedisServer::start().expect("redis-server");
    let port = redis.port();
    assert!(listening(port));
    redis.stop();
    assert!(closed(port), "stopped");
    redis.restart().expect("restart");
    assert!(listening(port), "same port after restart");
    drop(redis);
    assert!(closed(port), "dropped means stopped");
}

#[test]
fn redis_with_a_password_is_ready_too() {
    let redis = RedisServer::start_with(&["--requirepass", "s3cret"]).expect("redis-server");
    assert!(listening(redis.port()));
}

#[test]
fn zookeeper_standalone_starts_and_stops() {
    let mut zk = ZkServer::start().expect("zookeeper");
    assert_eq!(zk_mode(zk.port()).as_deref(), Some("standalone"));
    let port = zk.port();
    zk.stop();
    assert!(closed(port));
    zk.restart().expect("restart");
    assert_eq!(zk_mode(port).as_deref(), Some("standalone"));
}

#[test]
fn zookeeper_ensemble_survives_losing_its_leader() {
    let mut ensemble = ZkEnsemble::start(3).expect("zookeeper ensemble");
    assert_eq!(ensemble.connect_string().split(',').count(), 3);
    let leader = ensemble.leader().expect("a leader");
    let followers = ensemble.client_ports().iter().filter(|&&p| zk_mode(p).as_deref() == Some("follower")).count();
    assert_eq!(followers, 2);
    let leader_port = ensemble.client_ports()[leader];
    ensemble.stop(leader);
    assert!(closed(leader_port));
    // The two others elect a new leader (bounded wait).
    let new_leader = (0..250).find_map(|_| {
        std::thread::sleep(Duration::from_millis(40));
        ensemble.leader()
    });
    assert!(new_leader.is_some_and(|l| l != leader), "a new leader was elected");
    ensemble.restart(leader).expect("restart the old leader");
    assert_eq!(zk_mode(leader_port).as_deref(), Some("follower"), "it rejoins as a follower");
}

#[test]
fn etcd_starts_stops_and_restarts() {
    let mut etcd = EtcdServer::start().expect("etcd");
    let port = etcd.port();
    assert!(listening(port));
    etcd.stop();
    assert!(closed(port));
    etcd.restart().expect("restart");
    assert!(listening(port));
}

#[test]
fn a_missing_binary_names_the_package_to_install() {
    let err = confo_testkit::require_binary("no-such-server-binary", "some-package").expect_err("missing");
    let message = err.to_string();
    assert!(message.contains("apt-get install -y some-package"), "{message}");
}
