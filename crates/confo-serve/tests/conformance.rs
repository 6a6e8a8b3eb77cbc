//! The server's shared subscription (`confo_serve::shared::SharedHints`) is a wrapper over
//! every backend it serves: it passes the shared conformance suite as every backend does.

#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

use std::sync::Arc;

use confo::{Backend, FileBackend};
use confo_serve::shared::SharedHints;

mod file_shared {
    use super::*;

    async fn make() -> (confo_testkit::StoreDir, Arc<dyn Backend>) {
        let dir = confo_testkit::store_dir().expect("temp dir");
        let backend: Arc<dyn Backend> = Arc::new(FileBackend::open(dir.path()).expect("open"));
        (dir, SharedHints::wrap(backend))
    }

    confo::conformance_tests!(make());
}

mod memory_shared {
    use super::*;

    async fn make() -> ((), Arc<dyn Backend>) {
        ((), SharedHints::wrap(Arc::new(confo::MemoryBackend::new())))
    }

    confo::conformance_tests!(make());
}
