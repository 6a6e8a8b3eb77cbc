//! The shared conformance suite against every backend that needs no server.

use std::sync::Arc;

use confo::{Backend, FileBackend, MemoryBackend};

mod memory {
    use super::*;

    async fn make() -> ((), Arc<dyn Backend>) {
        ((), Arc::new(MemoryBackend::new()))
    }

    confo::conformance_tests!(make());
}

mod file {
    use super::*;

    async fn make() -> (tempfile::TempDir, Arc<dyn Backend>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let backend = FileBackend::open(dir.path()).expect("open");
        (dir, Arc::new(backend))
    }

    confo::conformance_tests!(make());
}
