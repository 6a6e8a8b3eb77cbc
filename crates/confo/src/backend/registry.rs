//! The engines confo can open, in one table.
//!
//! Each engine's folder exposes an [`Engine`]: its kind, the URL schemes it answers, and how
//! it reads a spec string or a credentials dictionary into an [`EngineSpec`](crate::spec::EngineSpec) (its options,
//! which know how to open the store). [`BackendSpec`] dispatches over
//! [`ENGINES`] and knows no engine itself. A wrapping engine (a cache, history) registers a
//! scheme ending in `+` (`cache+`), receives the whole spec and parses the inner one with
//! [`Registry::parse`] — the same way a caller-made [`Registry`] adds engines of its own.

use serde_json::Value;

use crate::model::error::{Error, Result};
#[cfg(feature = "net")]
use crate::spec::NetOptions;
use crate::spec::{BackendKind, BackendSpec, Names, ETCD, REDIS, ZOOKEEPER};
use crate::spec::{Engine, Registry};

/// How a built engine reads a spec string and a credentials dictionary.
type Readers = (fn(&str) -> Result<BackendSpec>, fn(&Value) -> Result<BackendSpec>);

/// A network engine: its names, and its options' readers when this build has it. Left out
/// (its cargo feature off), its names are still known, so a spec for it says which feature to
/// enable instead of "unknown scheme".
struct NetEngine {
    names: &'static Names,
    readers: Option<Readers>,
}

impl NetEngine {
    /// The engine named `names`, whose specs are read as `O`.
    #[cfg(feature = "net")]
    const fn built<O: NetOptions>(names: &'static Names) -> Self {
        fn url<O: NetOptions>(spec: &str) -> Result<BackendSpec> {
            Ok(BackendSpec::new(O::from_url(spec)?))
        }
        fn credentials<O: NetOptions>(credentials: &Value) -> Result<BackendSpec> {
            Ok(BackendSpec::new(O::from_credentials(credentials)?))
        }
        NetEngine { names, readers: Some((url::<O>, credentials::<O>)) }
    }

    /// The engine named `names`, left out of this build.
    #[cfg_attr(all(feature = "redis", feature = "zookeeper", feature = "etcd"), allow(dead_code))]
    const fn left_out(names: &'static Names) -> Self {
        NetEngine { names, readers: None }
    }

    fn readers(&self) -> Result<&Readers> {
        self.readers.as_ref().ok_or_else(|| {
            let kind = self.names.kind;
            Error::spec(
                Some("scheme"),
                format!("this build of confo has no {kind} backend (enable the `{kind}` feature)"),
            )
        })
    }
}

impl Engine for NetEngine {
    fn kind(&self) -> BackendKind {
        self.names.kind
    }
    fn aliases(&self) -> &'static [&'static str] {
        self.names.aliases
    }
    fn schemes(&self) -> &'static [&'static str] {
        self.names.schemes
    }
    fn example(&self) -> &'static str {
        // Messages list what this build accepts: nothing for an engine it leaves out.
        if self.readers.is_some() {
            self.names.example
        } else {
            ""
        }
    }
    fn parse_url(&self, _: &Registry, spec: &str) -> Result<BackendSpec> {
        (self.readers()?.0)(spec)
    }
    fn parse_credentials(&self, _: &Registry, credentials: &Value) -> Result<BackendSpec> {
        (self.readers()?.1)(credentials)
    }
}

/// Every engine this build knows: one line each (a left-out engine's line names its schemes).
pub static ENGINES: &[&dyn Engine] = &[
    &super::cache::CacheEngine,
    &super::file::spec::FileEngine,
    &super::memory::MemoryEngine,
    #[cfg(feature = "redis")]
    &NetEngine::built::<super::redis::RedisOptions>(&REDIS),
    #[cfg(not(feature = "redis"))]
    &NetEngine::left_out(&REDIS),
    #[cfg(feature = "zookeeper")]
    &NetEngine::built::<super::zookeeper::ZkOptions>(&ZOOKEEPER),
    #[cfg(not(feature = "zookeeper"))]
    &NetEngine::left_out(&ZOOKEEPER),
    #[cfg(feature = "etcd")]
    &NetEngine::built::<super::etcd::EtcdOptions>(&ETCD),
    #[cfg(not(feature = "etcd"))]
    &NetEngine::left_out(&ETCD),
];

impl Registry {
    /// The engines of this build.
    pub fn builtin() -> Self {
        Registry::of(ENGINES.to_vec())
    }

    /// Parses a spec string (`redis://…`, `file:PATH`, `cache+redis://…`). `snapshots=on` or
    /// `snapshot_max_age=…` in any spec's query wraps it in last-known-good snapshots
    /// ([`super::cache`]).
    pub fn parse(&self, spec: &str) -> Result<BackendSpec> {
        if !spec.starts_with("cache+") && spec.contains("snapshot") {
            let (plain, options) = super::cache::split_query(spec)?;
            if plain != spec {
                return Ok(super::cache::wrap(self.parse_plain(&plain)?, options));
            }
        }
        self.parse_plain(spec)
    }

    fn parse_plain(&self, spec: &str) -> Result<BackendSpec> {
        let schemes = || {
            let examples: Vec<&str> = self.engines().map(|e| e.example()).filter(|e| !e.is_empty()).collect();
            examples.join(", ")
        };
        let Some((scheme, _)) = spec.split_once(':') else {
            return Err(Error::spec(
                None,
                format!("{spec:?} has no scheme; expected one of {} (for example file:./Configurations)", schemes()),
            ));
        };
        match self.by_scheme(scheme) {
            Some(engine) => engine.parse_url(self, spec),
            None => {
                Err(Error::spec(Some("scheme"), format!("unknown scheme {scheme:?}; expected one of {}", schemes())))
            }
        }
    }

    /// Reads a credentials dictionary for a kind of backend.
    pub fn parse_credentials(&self, kind: BackendKind, credentials: &Value) -> Result<BackendSpec> {
        let (credentials, snapshots) = super::cache::split_credentials(credentials)?;
        match self.by_kind(kind.as_str()) {
            Some(engine) => Ok(super::cache::wrap(engine.parse_credentials(self, &credentials)?, snapshots)),
            None => Err(Error::spec(Some("backend_type"), format!("no {kind} backend in this registry"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use std::fmt;
    use std::sync::Arc;

    use async_trait::async_trait;

    use super::*;
    use crate::backend::Backend;
    use crate::model::name::NamespaceName;
    use crate::model::version::NamespaceData;
    use crate::spec::EngineSpec;
    use crate::store::ext::BackendExt;

    /// A wrapping engine, as a cache or history layer would be: `count+<inner spec>` opens the
    /// inner backend and counts the namespace loads that go through it.
    struct CountEngine;

    static LOADS: AtomicUsize = AtomicUsize::new(0);

    #[derive(PartialEq)]
    struct CountSpec(BackendSpec);

    impl fmt::Display for CountSpec {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "count+{}", self.0)
        }
    }

    #[async_trait]
    impl EngineSpec for CountSpec {
        fn kind(&self) -> BackendKind {
            BackendKind::new("count")
        }
        async fn open(&self) -> Result<Arc<dyn Backend>> {
            Ok(Arc::new(Counting(self.0.open().await?)))
        }
    }

    impl Engine for CountEngine {
        fn kind(&self) -> BackendKind {
            BackendKind::new("count")
        }
        fn schemes(&self) -> &'static [&'static str] {
            &["count+"]
        }
        fn example(&self) -> &'static str {
            "count+SPEC"
        }
        fn parse_url(&self, registry: &Registry, spec: &str) -> Result<BackendSpec> {
            let inner = &spec["count+".len()..];
            Ok(BackendSpec::new(CountSpec(registry.parse(inner)?)))
        }
        fn parse_credentials(&self, _: &Registry, _: &Value) -> Result<BackendSpec> {
            Err(Error::spec(None, "count takes no credentials"))
        }
    }

    #[derive(Debug)]
    struct Counting(Arc<dyn Backend>);

    /// A wrapper writes only what it changes: the rest is forwarded ([`Layered`]).
    #[async_trait]
    impl crate::backend::layer::Layered for Counting {
        fn inner_now(&self) -> Option<Arc<dyn Backend>> {
            Some(self.0.clone())
        }
        fn describe(&self) -> String {
            format!("counting {}", self.0.describe())
        }
        async fn load(&self, namespace: &NamespaceName) -> Result<NamespaceData> {
            LOADS.fetch_add(1, Ordering::SeqCst);
            self.0.load_namespace(namespace).await
        }
    }

    #[tokio::test]
    async fn a_wrapping_engine_registers_a_scheme_and_wraps_any_spec() {
        let registry = Registry::builtin().with(&CountEngine);
        let spec = registry.parse("count+memory:").expect("parses");
        assert_eq!(spec.to_string(), "count+memory:");
        assert_eq!(spec.kind().as_str(), "count");
        assert_eq!(spec, registry.parse("COUNT+memory:").unwrap());
        let backend = spec.open().await.expect("opens");
        assert_eq!(backend.describe(), "counting memory");
        backend.create_namespace("sales").await.unwrap();
        backend.put_configuration("sales", "db", serde_json::Map::new()).await.unwrap();
        let before = LOADS.load(Ordering::SeqCst);
        assert!(backend.load_namespace("sales").await.unwrap().contains_key("db"));
        assert_eq!(LOADS.load(Ordering::SeqCst), before + 1);
        // The inner spec is parsed by the same registry: its errors are the inner engine's.
        let err = registry.parse("count+ftp://x").unwrap_err();
        assert!(err.to_string().contains("unknown scheme \"ftp\""), "{err}");
        // `count+` alone is no scheme of the wrapper, and the built-in registry knows none of it.
        assert!(registry.parse("count+:x").is_err());
        assert!(Registry::builtin().parse("count+memory:").unwrap_err().to_string().contains("unknown scheme"));
    }

    #[test]
    fn kinds_and_schemes_resolve_through_the_table() {
        let registry = Registry::builtin();
        assert_eq!(registry.kind("files").unwrap(), BackendKind::FILE);
        assert_eq!(registry.kind("ZK").unwrap().as_str(), "zookeeper");
        assert_eq!(registry.by_scheme("REDISS+sentinel").unwrap().kind().as_str(), "redis");
        let err = registry.parse("nothing-here").unwrap_err().to_string();
        assert!(err.contains("file:PATH") && err.contains("memory:"), "{err}");
        // Every engine's kind and schemes are unique across the table.
        let mut schemes: Vec<&str> = registry.engines().flat_map(|e| e.schemes().iter().copied()).collect();
        let count = schemes.len();
        schemes.sort_unstable();
        schemes.dedup();
        assert_eq!(schemes.len(), count, "a scheme is registered twice");
    }

    /// Whatever this build leaves out: every scheme and the credentials of each engine left
    /// out are refused naming the feature to enable (the builds without an engine run this in
    /// the test command: `cargo test -p confo` and `--no-default-features`).
    #[test]
    fn an_engine_left_out_of_the_build_names_its_feature() {
        let registry = Registry::builtin();
        for engine in registry.engines().filter(|e| e.example().is_empty()) {
            let enable = format!("enable the `{}` feature", engine.kind());
            for scheme in engine.schemes() {
                let err = registry.parse(&format!("{scheme}://127.0.0.1:1")).unwrap_err();
                assert!(err.to_string().contains(&enable), "{scheme}: {err}");
            }
            let err = BackendSpec::from_credentials(engine.kind(), &serde_json::json!({})).unwrap_err();
            assert!(err.to_string().contains(&enable), "{err}");
        }
        // Built or not, every engine's schemes are known: none is an "unknown scheme".
        for scheme in ["redis+cluster", "rediss+cluster", "zk", "etcds"] {
            let err = registry.parse(&format!("{scheme}://")).map(|_| ()).unwrap_err().to_string();
            assert!(!err.contains("unknown scheme"), "{scheme}: {err}");
        }
    }
}
