//! Backend specs: which store a backend talks to, from a URL-like string or from the seed's
//! credentials dictionary.
//!
//! | backend | spec string | credentials dictionary |
//! | --- | --- | --- |
//! | files | `file:PATH`, `file://PATH` (`file:///abs/path`) | `{"config_path": "PATH"}` |
//! | memory | `memory:` | `{}` |
//! | etcd | `etcd://[user:password@]host:port[,host:port…]`, `etcds://…` | `{"etcd_host": …, "etcd_port": …}` (see [`EtcdOptions`](crate::backend::etcd::EtcdOptions)) |
//! | ZooKeeper | `zk://[user:password@]host:port[,host:port…][/chroot]` | `{"zookeeper_host": …, "zookeeper_port": …}` (see [`ZkOptions`](crate::backend::zookeeper::ZkOptions)) |
//! | Redis | `redis://[user[:password]@]host[:port][/db]`, `rediss://…`, `redis+sentinel://h:p[,h:p…]/master` | `{"redis_host": …, "redis_port": …}` (see [`RedisOptions`](crate::backend::redis::RedisOptions)) |
//!
//! Unknown and missing keys are errors that name the key. A spec's `Display` and `Debug`
//! never show a password.
//!
//! This module knows no engine: it dispatches over the table in
//! [`backend::registry`](crate::backend::registry), where each engine's folder registers itself.

use std::any::Any;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::backend::Backend;
use crate::model::error::{Error, Result, SpecProblem};

/// A kind of backend, as named in a credentials-based load (`backend_type`): `file`,
/// `memory`, `redis`, `zookeeper`, `etcd`, or a kind a registered engine adds. Each engine
/// defines its constant (`BackendKind::FILE`, `BackendKind::REDIS`, …) in its own module.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct BackendKind(&'static str);

impl BackendKind {
    /// A kind named `name` (lower case), for an engine to define its constant.
    pub const fn new(name: &'static str) -> Self {
        BackendKind(name)
    }

    /// The kind's name: `file`, `memory`.
    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl fmt::Debug for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BackendKind({})", self.0)
    }
}

impl FromStr for BackendKind {
    type Err = Error;

    /// A kind name or alias (`zk`), compared without case, among the built-in engines.
    fn from_str(s: &str) -> Result<Self> {
        Registry::builtin().kind(s)
    }
}

/// Where a backend stores: everything needed to open it. Cheap to clone.
///
/// Parsed from a spec string ([`FromStr`]) or a credentials dictionary
/// ([`BackendSpec::from_credentials`]) by the engine that answers it; made directly with an
/// engine's constructor (`BackendSpec::memory()`, `BackendSpec::file(path)`) or
/// [`BackendSpec::new`] over an engine's options.
#[derive(Clone)]
pub struct BackendSpec(Arc<dyn EngineSpec>);

impl BackendSpec {
    /// A spec over an engine's parsed options.
    pub fn new(options: impl EngineSpec) -> Self {
        BackendSpec(Arc::new(options))
    }

    /// The spec described by a credentials dictionary (a JSON object) for a kind of backend.
    ///
    /// ```
    /// use confo::{BackendKind, BackendSpec};
    /// let spec = BackendSpec::from_credentials(BackendKind::FILE, &serde_json::json!({"config_path": "Configurations"}))?;
    /// assert_eq!(spec.to_string(), "file:Configurations");
    /// # Ok::<(), confo::Error>(())
    /// ```
    pub fn from_credentials(kind: BackendKind, credentials: &Value) -> Result<Self> {
        Registry::builtin().parse_credentials(kind, credentials)
    }

    /// Like [`BackendSpec::from_credentials`], but keys the backend does not know are left out
    /// (and returned) instead of refused: for credentials kept among other fields (the seed's
    /// note keeps them in a configuration) and for Python confo's callers, whose dictionaries
    /// often carry extra keys. Every other problem is still an error.
    pub fn from_credentials_lenient(kind: BackendKind, credentials: &Value) -> Result<(Self, Vec<String>)> {
        let mut credentials = credentials.clone();
        let mut ignored = Vec::new();
        loop {
            match Registry::builtin().parse_credentials(kind, &credentials) {
                Err(Error::InvalidSpec { key: Some(key), problem: SpecProblem::Unknown, message }) => match credentials
                    .as_object_mut()
                    .and_then(|map| map.remove(&key))
                {
                    Some(_) => ignored.push(key),
                    None => return Err(Error::InvalidSpec { key: Some(key), problem: SpecProblem::Unknown, message }),
                },
                other => return other.map(|spec| (spec, ignored)),
            }
        }
    }

    /// The kind of backend this spec opens.
    pub fn kind(&self) -> BackendKind {
        self.0.kind()
    }

    /// The engine's options, when they are a `T` (`spec.options::<RedisOptions>()`).
    pub fn options<T: Any>(&self) -> Option<&T> {
        self.0.as_any().downcast_ref()
    }

    /// Opens (connects to) the store.
    pub async fn open(&self) -> Result<Arc<dyn Backend>> {
        self.0.open().await
    }
}

impl PartialEq for BackendSpec {
    fn eq(&self, other: &Self) -> bool {
        self.0.same_as(&*other.0)
    }
}

impl Eq for BackendSpec {}

impl FromStr for BackendSpec {
    type Err = Error;

    /// Parses `file:PATH`, `memory:`, `redis://…`, `zk://…`, `etcd://…`, by the engine that
    /// answers the scheme.
    fn from_str(s: &str) -> Result<Self> {
        Registry::builtin().parse(s)
    }
}

impl fmt::Display for BackendSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl fmt::Debug for BackendSpec {
    // Shows what Display shows, so that no engine's options can ever print a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BackendSpec({self})")
    }
}

/// One engine confo can open: its names, its URL schemes, and how its options are read.
pub trait Engine: Send + Sync + 'static {
    /// The kind, as named in a credentials-based load (`backend_type`).
    fn kind(&self) -> BackendKind;

    /// Other names accepted for the kind (`zk` for `zookeeper`).
    fn aliases(&self) -> &'static [&'static str] {
        &[]
    }

    /// The URL schemes it answers (`redis`, `rediss`). A scheme ending in `+` answers every
    /// scheme it begins (`cache+` answers `cache+redis`): a wrapping engine.
    fn schemes(&self) -> &'static [&'static str];

    /// A spec string as shown in messages that list what is accepted (`redis://HOST[:PORT]`).
    fn example(&self) -> &'static str;

    /// Reads a whole spec string whose scheme is one of [`Engine::schemes`].
    fn parse_url(&self, registry: &Registry, spec: &str) -> Result<BackendSpec>;

    /// Reads confo's credentials dictionary (a JSON object); unknown keys are refused by name.
    fn parse_credentials(&self, registry: &Registry, credentials: &Value) -> Result<BackendSpec>;
}

/// An engine's parsed spec: everything needed to open the store. Its `Display` is the spec
/// string, without secrets; it must be `PartialEq` (specs are compared).
#[async_trait]
pub trait EngineSpec: SpecIdentity + fmt::Display + Send + Sync + 'static {
    /// The kind of backend it opens.
    fn kind(&self) -> BackendKind;

    /// Opens (connects to) the store.
    async fn open(&self) -> Result<Arc<dyn Backend>>;
}

/// What a spec is, for [`BackendSpec::options`](crate::spec::BackendSpec::options) and equality:
/// implemented for every `PartialEq` type, so an engine writes nothing for it.
pub trait SpecIdentity {
    /// The options as `Any`, to downcast.
    fn as_any(&self) -> &dyn Any;

    /// Whether `other` is the same spec (used by `BackendSpec`'s `PartialEq`).
    fn same_as(&self, other: &dyn EngineSpec) -> bool;
}

impl<T: PartialEq + Any> SpecIdentity for T {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn same_as(&self, other: &dyn EngineSpec) -> bool {
        other.as_any().downcast_ref::<T>() == Some(self)
    }
}

/// A network engine's names: what a spec for it is recognised by, whether this build has the
/// engine or leaves it out (then a spec for it says which feature to enable). One place for
/// both: the engine's entry and its stand-in read the same constant below.
pub(crate) struct Names {
    /// Its kind (`backend_type`), also the name of its cargo feature.
    pub kind: BackendKind,
    /// Other names accepted for the kind.
    pub aliases: &'static [&'static str],
    /// The URL schemes it answers.
    pub schemes: &'static [&'static str],
    /// A spec string for messages (shown for an engine this build has).
    pub example: &'static str,
}

/// Redis, in the seed's layout (`backend/redis`).
pub(crate) const REDIS: Names = Names {
    kind: BackendKind::new("redis"),
    aliases: &[],
    schemes: &["redis", "rediss", "redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster"],
    example: "redis://HOST[:PORT]",
};

/// ZooKeeper, in Python confo's layout (`backend/zookeeper`).
pub(crate) const ZOOKEEPER: Names = Names {
    kind: BackendKind::new("zookeeper"),
    aliases: &["zk"],
    schemes: &["zk", "zookeeper"],
    example: "zk://HOST:PORT",
};

/// etcd (`backend/etcd`).
pub(crate) const ETCD: Names =
    Names { kind: BackendKind::new("etcd"), aliases: &[], schemes: &["etcd", "etcds"], example: "etcd://HOST:PORT" };

/// What a network engine's options give the registry; [`NetEngine`] makes the rest of its
/// [`Engine`] from its [`Names`].
#[cfg(feature = "net")]
pub(crate) trait NetOptions: EngineSpec + Sized {
    /// Reads a whole spec string.
    fn from_url(spec: &str) -> Result<Self>;
    /// Reads confo's credentials dictionary.
    fn from_credentials(credentials: &Value) -> Result<Self>;
}

/// A set of engines to parse specs with: [`Registry::builtin`] is [`ENGINES`](crate::backend::registry::ENGINES); a caller may add
/// engines of its own (a wrapping backend, a test double) with [`Registry::with`].
#[derive(Clone)]
pub struct Registry {
    engines: Vec<&'static dyn Engine>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.engines.iter().map(|e| e.kind())).finish()
    }
}

impl Registry {
    /// A registry of these engines, in lookup order ([`Registry::builtin`] is the table of
    /// `backend::registry`).
    pub(crate) fn of(engines: Vec<&'static dyn Engine>) -> Self {
        Registry { engines }
    }

    /// This registry with one more engine (checked first, so it may take over a scheme).
    pub fn with(mut self, engine: &'static dyn Engine) -> Self {
        self.engines.insert(0, engine);
        self
    }

    /// The engines, in lookup order.
    pub fn engines(&self) -> impl Iterator<Item = &'static dyn Engine> + '_ {
        self.engines.iter().copied()
    }

    /// The engine answering a URL scheme (compared without case).
    pub fn by_scheme(&self, scheme: &str) -> Option<&'static dyn Engine> {
        let scheme = scheme.to_ascii_lowercase();
        let answers = |s: &&str| match s.strip_suffix('+') {
            Some(prefix) => scheme.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('+') && rest.len() > 1),
            None => **s == scheme,
        };
        self.engines().find(|e| e.schemes().iter().any(answers))
    }

    /// The engine of a kind name or alias (compared without case).
    pub fn by_kind(&self, name: &str) -> Option<&'static dyn Engine> {
        let name = name.to_ascii_lowercase();
        self.engines().find(|e| e.kind().as_str() == name || e.aliases().contains(&name.as_str()))
    }

    /// The kind a `backend_type` names.
    pub fn kind(&self, name: &str) -> Result<BackendKind> {
        self.by_kind(name).map(|e| e.kind()).ok_or_else(|| {
            let known: Vec<&str> = self.engines().map(|e| e.kind().as_str()).collect();
            Error::spec(
                Some("backend_type"),
                format!("unknown backend type {name:?}; expected one of {}", known.join(", ")),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::model::error::tests::spec_key as key_of;

    #[test]
    fn parses_file_and_memory_specs() {
        let file = BackendSpec::file;
        assert_eq!("file:./Configurations".parse::<BackendSpec>().unwrap(), file("./Configurations"));
        assert_eq!("file:///tmp/x".parse::<BackendSpec>().unwrap(), file("/tmp/x"));
        assert_eq!("file://rel/dir".parse::<BackendSpec>().unwrap(), file("rel/dir"));
        assert_eq!("memory:".parse::<BackendSpec>().unwrap(), BackendSpec::memory());
        assert_eq!("file:a b".parse::<BackendSpec>().unwrap().to_string(), "file:a b");
        let inside = "file:/srv/conf?links=inside".parse::<BackendSpec>().unwrap();
        let options = inside.options::<crate::backend::file::spec::FileSpec>().expect("a file spec");
        assert_eq!(options.links, crate::backend::file::FileLinks::Inside);
        assert_eq!(options.config_path, std::path::Path::new("/srv/conf"));
        assert_ne!(inside, BackendSpec::file("/srv/conf"));
        assert_eq!(inside.to_string(), "file:/srv/conf?links=inside");
        assert_eq!(key_of("file:x?links=sometimes".parse::<BackendSpec>().unwrap_err()), Some("links".into()));
        let creds = BackendSpec::from_credentials(BackendKind::FILE, &json!({"config_path": "c", "links": "inside"}));
        assert_eq!(creds.unwrap().to_string(), "file:c?links=inside");
    }

    #[test]
    fn rejects_bad_specs_with_the_part_at_fault() {
        assert_eq!(key_of("file:".parse::<BackendSpec>().unwrap_err()), Some("path".into()));
        assert_eq!(key_of("ftp://x".parse::<BackendSpec>().unwrap_err()), Some("scheme".into()));
        assert_eq!(key_of("Configurations".parse::<BackendSpec>().unwrap_err()), None);
        // The path when the etcd engine is built; without it the scheme itself is refused,
        // naming the feature (registry.rs: an_engine_left_out_of_the_build_names_its_feature).
        let part = key_of("etcd://h/x".parse::<BackendSpec>().unwrap_err());
        assert!(matches!(part.as_deref(), Some("path" | "scheme")), "{part:?}");
    }

    #[test]
    fn credentials_dictionary() {
        let spec = BackendSpec::from_credentials(BackendKind::FILE, &json!({"config_path": "Configurations"})).unwrap();
        assert_eq!(spec, BackendSpec::file("Configurations"));
        assert_eq!(spec.kind(), BackendKind::FILE);
        assert!(spec.options::<crate::backend::memory::MemorySpec>().is_none());
        let missing = BackendSpec::from_credentials(BackendKind::FILE, &json!({})).unwrap_err();
        assert_eq!(key_of(missing), Some("config_path".into()));
        let wrong_type = BackendSpec::from_credentials(BackendKind::FILE, &json!({"config_path": 3})).unwrap_err();
        assert_eq!(key_of(wrong_type), Some("config_path".into()));
        let not_object = BackendSpec::from_credentials(BackendKind::FILE, &json!(["x"])).unwrap_err();
        assert!(not_object.to_string().contains("JSON object"));
    }

    #[test]
    fn unknown_key_is_named_but_its_value_never_shown() {
        let creds = json!({"config_path": "C", "password": "hunter2-secret"});
        let err = BackendSpec::from_credentials(BackendKind::FILE, &creds).unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(key_of(err), Some("password".into()));
    }

    #[test]
    fn backend_kinds() {
        assert_eq!("file".parse::<BackendKind>().unwrap(), BackendKind::FILE);
        assert_eq!("MEMORY".parse::<BackendKind>().unwrap(), BackendKind::MEMORY);
        assert_eq!(key_of("nosuch".parse::<BackendKind>().unwrap_err()), Some("backend_type".into()));
    }
}
