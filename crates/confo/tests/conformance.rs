//! The shared conformance suite against every backend that needs no server.

use std::sync::Arc;

use confo::model::history::HistoryOptions;
use confo::{Backend, FileBackend, MemoryBackend};

mod memory {
    use super::*;

    async fn make() -> ((), Arc<dyn Backend>) {
        ((), Arc::new(MemoryBackend::with_history(HistoryOptions::default().keeping(500))))
    }

    confo::conformance_tests!(make());

    #[tokio::test]
    async fn history_retention() {
        let backend = Arc::new(MemoryBackend::with_history(HistoryOptions::default().keeping(3)));
        confo::conformance::history_retention_keeps_the_newest(backend).await;
    }
}

mod memory_without_history {
    use super::*;

    async fn make() -> ((), Arc<dyn Backend>) {
        ((), Arc::new(MemoryBackend::with_history(confo::model::history::HistoryOptions::off())))
    }

    confo::conformance_tests!(make());
}

mod file {
    use super::*;

    async fn make() -> (confo_testkit::StoreDir, Arc<dyn Backend>) {
        // A root inside a temp dir: history is kept beside the root.
        let dir = confo_testkit::store_dir().expect("temp dir");
        let backend = FileBackend::open(dir.path()).expect("open");
        (dir, Arc::new(backend))
    }

    confo::conformance_tests!(make());

    #[tokio::test]
    async fn history_retention() {
        let dir = confo_testkit::store_dir().expect("temp dir");
        let spec: confo::BackendSpec = format!("file:{}?history_keep=3", dir.path().display()).parse().expect("spec");
        confo::conformance::history_retention_keeps_the_newest(spec.open().await.expect("open")).await;
    }
}

/// The shared subscription (`confo serve` wraps every backend it serves in one) is a
/// wrapper over any backend: it passes the suite as every backend does.
mod file_shared_subscription {
    use super::*;
    use confo::backend::shared::SharedSubscription;

    async fn make() -> (confo_testkit::StoreDir, Arc<dyn Backend>) {
        let dir = confo_testkit::store_dir().expect("temp dir");
        let backend: Arc<dyn Backend> = Arc::new(FileBackend::open(dir.path()).expect("open"));
        (dir, SharedSubscription::wrap(backend))
    }

    confo::conformance_tests!(make());
}

mod memory_shared_subscription {
    use super::*;
    use confo::backend::shared::SharedSubscription;

    async fn make() -> ((), Arc<dyn Backend>) {
        let backend = MemoryBackend::with_history(HistoryOptions::default().keeping(500));
        ((), SharedSubscription::wrap(Arc::new(backend)))
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

    async fn make() -> (confo_testkit::StoreDir, Arc<dyn Backend>, Arc<dyn Backend>) {
        let dir = confo_testkit::store_dir().expect("temp dir");
        let a = FileBackend::open(dir.path()).expect("open");
        let b = FileBackend::open(dir.path()).expect("open");
        (dir, Arc::new(a), Arc::new(b))
    }

    confo::live_tests!(make());
}
