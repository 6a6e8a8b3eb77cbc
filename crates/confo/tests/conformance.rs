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

mod memory_without_history {
    use super::*;

    async fn make() -> ((), Arc<dyn Backend>) {
        ((), Arc::new(MemoryBackend::with_history(confo::history::HistoryOptions::off())))
    }

    confo::conformance_tests!(make());
}

mod file {
    use super::*;

    async fn make() -> (tempfile::TempDir, Arc<dyn Backend>) {
        // The root is a sub-folder: history is kept in a sibling folder of the root.
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("Configurations");
        std::fs::create_dir(&root).expect("root");
        let backend = FileBackend::open(&root).expect("open");
        (dir, Arc::new(backend))
    }

    confo::conformance_tests!(make());
}

mod memory_live {
    use super::*;

    async fn make() -> ((), Arc<dyn Backend>, Arc<dyn Backend>) {
        let store: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        ((), store.clone(), store)
    }

    confo::live_tests!(make());
}

mod file_live {
    use super::*;

    async fn make() -> (tempfile::TempDir, Arc<dyn Backend>, Arc<dyn Backend>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let a = FileBackend::open(dir.path()).expect("open");
        let b = FileBackend::open(dir.path()).expect("open");
        (dir, Arc::new(a), Arc::new(b))
    }

    confo::live_tests!(make());
}
