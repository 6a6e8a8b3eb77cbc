//! The vocabulary every layer speaks, at the bottom of the crate: names, values, versions,
//! changes and preconditions, write reports, history records, errors.
//!
//! Nothing here imports anything else of the crate: engines ([`crate::backend`]) store these
//! values, the store ([`crate::store`]) applies its policies to them, the session
//! ([`crate::session`]) caches them. `scripts/import-graph.py` checks that it stays so.
//!
//! - [`error`]: the one [`Error`](error::Error) enum, its kinds, and [`Result`](error::Result).
//! - [`name`]: the rules for namespace and configuration names, in one place.
//! - [`json`]: strict parsing of JSON input (duplicate keys refused, depth limit named).
//! - [`version`]: a [`Configuration`](version::Configuration), its
//!   [`Version`](version::Version) token, a namespace as read.
//! - [`change`]: a [`Change`](change::Change) and its [`Precondition`](change::Precondition),
//!   and what a batch did ([`WriteReport`](change::WriteReport)).
//! - [`compact`]: the compact form cached namespaces are kept in (about 2.6× their JSON bytes).
//! - [`decode`]: what engines read, decoded once ([`Sink`](decode::Sink)).
//! - [`history`]: revisions and the records engines store them as.
//! - [`sealed`]: how a sealed secret looks, recognised without opening it.

pub mod change;
pub(crate) mod codec;
pub mod compact;
pub mod decode;
pub mod error;
pub mod history;
pub mod json;
pub mod name;
pub mod sealed;
pub(crate) mod threads;
pub mod version;
