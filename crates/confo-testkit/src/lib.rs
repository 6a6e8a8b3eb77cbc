//! Private servers for confo's tests: `redis-server`, a standalone ZooKeeper, a 3-node ZooKeeper
//! ensemble and `etcd`, each on free loopback ports in its own temp dir, ready when returned,
//! and stopped (killed and reaped) when dropped.
//!
//! Nothing here uses a server someone else started. A missing binary is an error that names
//! the Debian package to install; tests `expect()` it, so they fail loudly instead of skipping.
//!
//! # Layout
//!
//! - [`Server`]: one child process with its command line, so it can be stopped and restarted
//!   on the same port and data dir.
//! - [`RedisServer`], [`ZkServer`], [`ZkEnsemble`], [`EtcdServer`]: the servers.
//! - [`free_port`], [`require_binary`]: the pieces they share.

#![deny(missing_docs)]

mod etcd;
mod harness;
mod redis;
mod zookeeper;

pub use etcd::*;
pub use harness::*;
pub use redis::*;
pub use zookeeper::*;
