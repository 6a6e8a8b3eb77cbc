//! # confo: one configuration manager over files, Redis, ZooKeeper and etcd
//!
//! confo keeps configuration as
//!
//! ```text
//! backend -> namespace -> configuration -> field      (a configuration is a JSON object)
//! ```
//!
//! and is the successor of the Python library `confo`: the same model, the same store layouts
//! (an existing `Configurations/` folder works unchanged), edits staged in memory until
//! `persist`, and typed errors, atomic writes and bulk reads where the Python library printed,
//! tore files and made one round trip per configuration.
//!
//! ## Contents
//!
//! - [Quick start](#quick-start)
//! - [Backends](#backends)
//! - [Layout of this crate](#layout-of-this-crate)
//! - [Errors](#errors)
//!
//! ## Quick start
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> confo::Result<()> {
//! use confo::{BackendSpec, Confo};
//!
//! let confo = Confo::new();
//! confo.load_backend("files", &"file:./Configurations".parse::<BackendSpec>()?).await?;
//! confo.activate_backend("files")?;
//! confo.create_namespace("sales").await?;
//! confo.use_namespace("sales").await?;
//! confo.set("database", "host", "127.0.0.1")?;      // staged in memory
//! confo.set("database", "port", 5432)?;
//! confo.persist().await?;                          // Configurations/sales/database.json
//! let port: Option<serde_json::Value> = confo.get_field("database", "port")?;
//! # Ok(()) }
//! ```
//!
//! Sync callers use [`blocking::Confo`], which has the same methods without `.await`.
//!
//! ## Live updates and conflicts
//!
//! [`Confo::watch`] reports every change to a namespace, made by anyone, as an [`Event`];
//! [`Confo::set_auto_refresh`] keeps the cache current by itself. [`Confo::persist`] writes a
//! configuration only if it is still at the version that was loaded, and otherwise fails with
//! [`Error::Conflict`], keeping the edit staged ([`Confo::persist_with`] can force).
//!
//! ## Backends
//!
//! | backend | spec | credentials dictionary | layout |
//! | --- | --- | --- | --- |
//! | [files](backend::file) | `file:PATH` | `{"config_path": PATH}` | `PATH/<ns>/<cfg>.json` |
//! | [memory](backend::memory) | `memory:` | `{}` | in this process |
//! | [Redis](backend::redis) | `redis://[user[:pw]@]host[:port][/db]`, `rediss://`, `redis+sentinel://h:p,…/master` | `{"redis_host": …, "redis_port": …}` | keys `confo`, `<ns>`, `<ns>-<cfg>` (the seed's) |
//! | [ZooKeeper](backend::zookeeper) | `zk://[user:pw@]host:port[,host:port…][/chroot]` | `{"zookeeper_host": …, "zookeeper_port": …}` | znodes `/confo/<ns>/<cfg>` (Python confo's) |
//! | [etcd](backend::etcd) (feature `etcd`) | `etcd://[user:pw@]host:port[,host:port…]`, `etcds://` | `{"etcd_host": …, "etcd_port": …}` | keys `/confo/<ns>/<cfg>`, markers `/confo-namespaces/<ns>` |
//!
//! Every backend implements the small [`Backend`] trait and passes the same conformance suite.
//!
//! ## Numbers
//!
//! Every JSON number is kept exactly: integers of any size, doubles that need 17 digits, `-0`,
//! and exponents beyond a double's range (`1e400`) are stored and read back as the same number,
//! never rounded or turned into strings (serde_json's `arbitrary_precision`; the one change is
//! that an exponent is written `e+400` however it was written). Setting one field never
//! rewrites another.
//!
//! ## Layout of this crate
//!
//! - [`model`]: the vocabulary every layer speaks, importing nothing else of the crate: the
//!   one [`Error`] enum and [`Result`] ([`model::error`]), names ([`model::name`]), strict JSON
//!   ([`model::json`]), [`Configuration`] and [`Version`] ([`model::version`]), [`Change`] and
//!   [`Precondition`] ([`model::change`]), the compact form ([`model::compact`]) and history
//!   records ([`model::history`]).
//! - [`spec`]: [`BackendSpec`] from a URL-like string or a credentials dictionary, by the
//!   engine that answers it in [`backend::registry`].
//! - [`options`]: what engines' options share, and [`Secret`].
//! - [`backend`]: the [`Backend`] trait engines implement; one module per engine.
//! - [`store`]: [`Store`], and [`BackendExt`]: every policy of the write path, once.
//! - [`session`]: [`Confo`], the manager: named backends, snapshots, staged edits, persist;
//!   auto-refresh in `session::refresh`.
//! - [`watch`]: [`Watcher`], a stream of [`Event`]s built from any backend; the hint loop
//!   behind auto-refresh.
//! - [`draft`]: [`Draft`], staged edits as a plain value, committed to a [`Store`] with
//!   preconditions.
//! - history: every change recorded by the engine's write path, in the same atomic step as
//!   the data ([`model::history`]); [`Store::history`], [`Store::rollback`], [`Store::log`].
//! - [`schema`]: a JSON Schema per namespace (and per configuration), checked before every
//!   write (`enforce`, `warn`, `off`); stored outside confo's layout with its revisions.
//! - [`secrets`]: fields encrypted at rest (XChaCha20-Poly1305, bound to their place), the
//!   keyring.
//! - [`store`]: [`Store`], a stateless handle over one backend: point reads and writes of one
//!   configuration (whatever the namespace's size), bulk loads, transfer, watch.
//! - [`blocking`]: the sync facade.
//! - [`live`]: [`live::Live`], one configuration as a typed value that follows the store.
//! - `sources`: confo as a figment `Provider` (feature `figment`) and a config-rs `Source`
//!   (feature `config-rs`).
//! - [`backend::cache`]: last-known-good snapshots (`cache+<spec>`, `snapshots=on`): reads
//!   served from a local copy while the store is unavailable.
//! - [`transfer`]: whole stores as documents: export, plan/apply (import, copy), diff.
//!
//! ## Errors
//!
//! Every failure is an [`Error`] variant a caller can act on: `NotFound`, `InvalidName`,
//! `Corrupt` (with every bad file's path, line and column), `Conflict`, `Unavailable`,
//! `PersistIncomplete` (which configurations were and were not written), and so on. Nothing
//! is printed; secrets never appear in messages.

#![deny(missing_docs)]

pub mod backend;
pub mod blocking;
pub mod draft;
pub mod fork;
pub mod live;
pub mod model;
pub mod options;
pub mod schema;
pub mod secrets;
pub mod session;
#[cfg(any(feature = "figment", feature = "config-rs"))]
pub mod sources;
pub mod spec;
pub mod store;
pub mod transfer;
pub mod watch;

#[cfg(feature = "conformance")]
#[doc(hidden)]
pub mod conformance;

pub use backend::file::FileBackend;
pub use backend::memory::MemoryBackend;
pub use backend::{Backend, Capabilities};
pub use draft::{Draft, Scope};
pub use model::change::{Change, Precondition};
pub use model::error::{Error, ErrorKind, Result};
pub use model::version::{Configuration, CorruptEntry, NamespaceData, Stored, Version};
pub use options::Secret;
pub use session::{BackendView, Based, Confo, Content, Place};
pub use spec::{BackendKind, BackendSpec};
pub use store::ext::BackendExt;
pub use store::{FieldEdit, Removal, Store};
pub use watch::{Event, EventKind, WatchOptions, Watcher};
