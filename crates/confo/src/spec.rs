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

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use serde_json::Value;

use crate::backend::{Backend, FileBackend, MemoryBackend};
use crate::error::{Error, Result};

/// The kinds of backend, as named in a credentials-based load (`backend_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendKind {
    /// JSON files in folders.
    File,
    /// In memory, in this process.
    Memory,
    /// Redis, in the seed's layout.
    Redis,
    /// ZooKeeper, in Python confo's layout.
    ZooKeeper,
    /// etcd.
    Etcd,
}

impl BackendKind {
    /// The kind's name: `file`, `memory`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::File => "file",
            BackendKind::Memory => "memory",
            BackendKind::Redis => "redis",
            BackendKind::ZooKeeper => "zookeeper",
            BackendKind::Etcd => "etcd",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BackendKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "file" | "files" => Ok(BackendKind::File),
            "memory" => Ok(BackendKind::Memory),
            "redis" => Ok(BackendKind::Redis),
            "zookeeper" | "zk" => Ok(BackendKind::ZooKeeper),
            "etcd" => Ok(BackendKind::Etcd),
            _ => Err(Error::spec(
                Some("backend_type"),
                format!("unknown backend type {s:?}; expected file, memory, redis, zookeeper or etcd"),
            )),
        }
    }
}

/// Where a backend stores: everything needed to open it.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendSpec {
    /// JSON files under a folder.
    File {
        /// The folder holding one sub-folder per namespace.
        config_path: PathBuf,
        /// Which symbolic links are followed (`?links=inside` in a spec, `"links": "inside"` in
        /// credentials).
        links: crate::backend::file::FileLinks,
    },
    /// In memory, in this process.
    Memory,
    /// Redis: one server or a Sentinel group.
    #[cfg(feature = "redis")]
    Redis(crate::backend::redis::RedisOptions),
    /// ZooKeeper: a server or an ensemble.
    #[cfg(feature = "zookeeper")]
    ZooKeeper(crate::backend::zookeeper::ZkOptions),
    /// etcd: one member or a cluster.
    #[cfg(feature = "etcd")]
    Etcd(crate::backend::etcd::EtcdOptions),
}

impl BackendSpec {
    /// The spec described by a credentials dictionary (a JSON object) for a kind of backend.
    ///
    /// ```
    /// use confo::{BackendKind, BackendSpec};
    /// let spec = BackendSpec::from_credentials(BackendKind::File, &serde_json::json!({"config_path": "Configurations"}))?;
    /// assert_eq!(spec.to_string(), "file:Configurations");
    /// # Ok::<(), confo::Error>(())
    /// ```
    pub fn from_credentials(kind: BackendKind, credentials: &Value) -> Result<Self> {
        let spec = match kind {
            BackendKind::File => {
                let mut creds = Credentials::new(kind, credentials)?;
                let config_path = PathBuf::from(creds.required_str("config_path")?);
                let links = creds.optional_str("links")?.map(str::parse).transpose()?.unwrap_or_default();
                creds.finish()?;
                BackendSpec::File { config_path, links }
            }
            BackendKind::Memory => {
                Credentials::new(kind, credentials)?.finish()?;
                BackendSpec::Memory
            }
            #[cfg(feature = "redis")]
            BackendKind::Redis => {
                BackendSpec::Redis(crate::backend::redis::RedisOptions::from_credentials(credentials)?)
            }
            #[cfg(not(feature = "redis"))]
            BackendKind::Redis => return Err(not_built("redis")),
            #[cfg(feature = "zookeeper")]
            BackendKind::ZooKeeper => {
                BackendSpec::ZooKeeper(crate::backend::zookeeper::ZkOptions::from_credentials(credentials)?)
            }
            #[cfg(not(feature = "zookeeper"))]
            BackendKind::ZooKeeper => return Err(not_built("zookeeper")),
            #[cfg(feature = "etcd")]
            BackendKind::Etcd => BackendSpec::Etcd(crate::backend::etcd::EtcdOptions::from_credentials(credentials)?),
            #[cfg(not(feature = "etcd"))]
            BackendKind::Etcd => return Err(not_built("etcd")),
        };
        Ok(spec)
    }

    /// The kind of backend this spec opens.
    pub fn kind(&self) -> BackendKind {
        match self {
            BackendSpec::File { .. } => BackendKind::File,
            BackendSpec::Memory => BackendKind::Memory,
            #[cfg(feature = "redis")]
            BackendSpec::Redis(_) => BackendKind::Redis,
            #[cfg(feature = "zookeeper")]
            BackendSpec::ZooKeeper(_) => BackendKind::ZooKeeper,
            #[cfg(feature = "etcd")]
            BackendSpec::Etcd(_) => BackendKind::Etcd,
        }
    }

    /// Opens (connects to) the store.
    pub async fn open(&self) -> Result<Arc<dyn Backend>> {
        Ok(match self {
            BackendSpec::File { config_path, links } => {
                let options = crate::backend::file::FileOptions { links: *links, ..Default::default() };
                Arc::new(FileBackend::with_options(config_path.clone(), options)?)
            }
            BackendSpec::Memory => Arc::new(MemoryBackend::new()),
            // Boxed: the connect futures are deep types, and callers nest this one further.
            #[cfg(feature = "redis")]
            BackendSpec::Redis(options) => {
                Arc::new(Box::pin(crate::backend::redis::RedisBackend::connect(options.clone())).await?)
            }
            #[cfg(feature = "zookeeper")]
            BackendSpec::ZooKeeper(options) => {
                Arc::new(Box::pin(crate::backend::zookeeper::ZkBackend::connect(options.clone())).await?)
            }
            #[cfg(feature = "etcd")]
            BackendSpec::Etcd(options) => {
                Arc::new(Box::pin(crate::backend::etcd::EtcdBackend::connect(options.clone())).await?)
            }
        })
    }
}

impl FromStr for BackendSpec {
    type Err = Error;

    /// Parses `file:PATH`, `file://PATH` or `memory:`.
    fn from_str(s: &str) -> Result<Self> {
        let Some((scheme, rest)) = s.split_once(':') else {
            return Err(Error::spec(
                None,
                format!("{s:?} has no scheme; expected file:PATH or memory: (for example file:./Configurations)"),
            ));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "file" => {
                let path = rest.strip_prefix("//").unwrap_or(rest);
                // `?links=…` is the only option; any other `?` belongs to the path.
                let (path, links) = match path.rsplit_once("?links=") {
                    Some((path, links)) => (path, links.parse()?),
                    None => (path, Default::default()),
                };
                if path.is_empty() {
                    return Err(Error::spec(Some("path"), "file: needs a folder, for example file:./Configurations"));
                }
                Ok(BackendSpec::File { config_path: PathBuf::from(path), links })
            }
            "memory" if rest.is_empty() || rest == "//" => Ok(BackendSpec::Memory),
            "memory" => Err(Error::spec(None, "memory: takes nothing after the colon")),
            #[cfg(feature = "redis")]
            "redis" | "rediss" | "redis+sentinel" | "rediss+sentinel" => {
                Ok(BackendSpec::Redis(crate::backend::redis::RedisOptions::from_url(s)?))
            }
            #[cfg(not(feature = "redis"))]
            "redis" | "rediss" | "redis+sentinel" | "rediss+sentinel" => Err(not_built("redis")),
            #[cfg(feature = "zookeeper")]
            "zk" | "zookeeper" => Ok(BackendSpec::ZooKeeper(crate::backend::zookeeper::ZkOptions::from_url(s)?)),
            #[cfg(not(feature = "zookeeper"))]
            "zk" | "zookeeper" => Err(not_built("zookeeper")),
            #[cfg(feature = "etcd")]
            "etcd" | "etcds" => Ok(BackendSpec::Etcd(crate::backend::etcd::EtcdOptions::from_url(s)?)),
            #[cfg(not(feature = "etcd"))]
            "etcd" | "etcds" => Err(not_built("etcd")),
            other => Err(Error::spec(
                Some("scheme"),
                format!(
                    "unknown scheme {other:?}; expected file:, memory:, redis://, redis+sentinel://, zk:// or etcd://"
                ),
            )),
        }
    }
}

impl fmt::Display for BackendSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendSpec::File { config_path, links } => {
                write!(f, "file:{}", config_path.display())?;
                match links {
                    crate::backend::file::FileLinks::Follow => Ok(()),
                    other => write!(f, "?links={other}"),
                }
            }
            BackendSpec::Memory => f.write_str("memory:"),
            #[cfg(feature = "redis")]
            BackendSpec::Redis(options) => write!(f, "{options}"),
            #[cfg(feature = "zookeeper")]
            BackendSpec::ZooKeeper(options) => write!(f, "{options}"),
            #[cfg(feature = "etcd")]
            BackendSpec::Etcd(options) => write!(f, "{options}"),
        }
    }
}

impl fmt::Debug for BackendSpec {
    // Written by hand so that no variant can ever print a secret: it shows what Display shows.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BackendSpec({self})")
    }
}

/// A credentials dictionary being read: tracks which keys were used so that unknown keys are
/// reported, and never puts a value into an error.
pub(crate) struct Credentials<'a> {
    kind: BackendKind,
    map: &'a serde_json::Map<String, Value>,
    used: Vec<&'static str>,
}

#[cfg_attr(not(any(feature = "redis", feature = "zookeeper", feature = "etcd")), allow(dead_code))]
impl<'a> Credentials<'a> {
    pub(crate) fn new(kind: BackendKind, credentials: &'a Value) -> Result<Self> {
        match credentials {
            Value::Object(map) => Ok(Credentials { kind, map, used: Vec::new() }),
            other => Err(Error::spec(
                None,
                format!("credentials must be a JSON object, not {}", crate::backend::file::json_kind(other)),
            )),
        }
    }

    pub(crate) fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.used.push(key);
        self.map.get(key)
    }

    pub(crate) fn required_str(&mut self, key: &'static str) -> Result<&'a str> {
        match self.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s),
            Some(Value::String(_)) => Err(Error::spec(Some(key), "must not be empty")),
            Some(other) => {
                Err(Error::spec(Some(key), format!("must be a string, not {}", crate::backend::file::json_kind(other))))
            }
            None => Err(Error::spec(Some(key), format!("missing: the {} backend needs it", self.kind))),
        }
    }

    /// An optional non-empty string.
    pub(crate) fn optional_str(&mut self, key: &'static str) -> Result<Option<&'a str>> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s)),
            Some(_) => Err(Error::spec(Some(key), "must be a non-empty string")),
        }
    }

    /// An optional boolean, given as `true`/`false` or the strings "true"/"false"/"1"/"0".
    #[cfg_attr(not(any(feature = "redis", feature = "etcd")), allow(dead_code))]
    pub(crate) fn optional_bool(&mut self, key: &'static str) -> Result<Option<bool>> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => {
                parse_bool(s).map(Some).ok_or_else(|| Error::spec(Some(key), "must be true or false"))
            }
            Some(_) => Err(Error::spec(Some(key), "must be true or false")),
        }
    }

    /// An optional non-negative integer, given as a number or a numeric string.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn optional_u32(&mut self, key: &'static str) -> Result<Option<u32>> {
        let bad = || Error::spec(Some(key), "must be a non-negative whole number, as a number or a numeric string");
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()).map(Some).ok_or_else(bad),
            Some(Value::String(s)) => s.trim().parse::<u32>().map(Some).map_err(|_| bad()),
            Some(_) => Err(bad()),
        }
    }

    /// A TCP port given as a number or a numeric string (`6379` or `"6379"`).
    pub(crate) fn port(&mut self, key: &'static str) -> Result<Option<u16>> {
        let bad = || Error::spec(Some(key), "must be a port number from 1 to 65535, as a number or a numeric string");
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => {
                n.as_u64().and_then(|n| u16::try_from(n).ok()).filter(|&p| p > 0).map(Some).ok_or_else(bad)
            }
            Some(Value::String(s)) => s.trim().parse::<u16>().ok().filter(|&p| p > 0).map(Some).ok_or_else(bad),
            Some(_) => Err(bad()),
        }
    }

    /// Fails on the first key that was never read.
    pub(crate) fn finish(self) -> Result<()> {
        let mut unknown: Vec<&String> = self.map.keys().filter(|k| !self.used.contains(&k.as_str())).collect();
        unknown.sort();
        match unknown.first() {
            None => Ok(()),
            Some(key) => Err(Error::spec(
                Some(key),
                format!("unknown key for the {} backend (known: {})", self.kind, self.used.join(", ")),
            )),
        }
    }
}

/// `host[:port]` or `[v6]:port` → (host, port), with `default_port` when none is given.
#[cfg_attr(not(any(feature = "redis", feature = "zookeeper", feature = "etcd")), allow(dead_code))]
pub(crate) fn parse_host_port(text: &str, default_port: u16) -> Result<(String, u16)> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        // [::1]:6379
        let (host, after) =
            rest.split_once(']').ok_or_else(|| Error::spec(Some("host"), "unclosed [ in an IPv6 address"))?;
        (host, after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(Error::spec(Some("host"), "missing host"));
    }
    let port = match port {
        None => default_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| Error::spec(Some("port"), "must be a port number from 1 to 65535"))?,
    };
    Ok((host.to_owned(), port))
}

/// Percent-decodes a URL part (user names and passwords may hold `@`, `:` or `/` encoded).
#[cfg_attr(not(any(feature = "redis", feature = "zookeeper", feature = "etcd")), allow(dead_code))]
pub(crate) fn decode(part: &str) -> Result<String> {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = part.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
            out.push(hex.ok_or_else(|| Error::spec(None, "bad percent-encoding in the URL"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| Error::spec(None, "the URL decodes to invalid UTF-8"))
}

/// A host name as shown in messages: one of more than 64 characters is shortened (a
/// 100,000-character host must not flood a terminal or a log).
#[cfg_attr(not(any(feature = "redis", feature = "zookeeper", feature = "etcd")), allow(dead_code))]
pub(crate) fn shorten(host: &str) -> std::borrow::Cow<'_, str> {
    const MAX: usize = 64;
    if host.chars().count() <= MAX {
        return std::borrow::Cow::Borrowed(host);
    }
    let head: String = host.chars().take(40).collect();
    let tail: String = host.chars().rev().take(12).collect::<Vec<_>>().into_iter().rev().collect();
    std::borrow::Cow::Owned(format!("{head}…{tail} ({} characters)", host.chars().count()))
}

#[cfg(not(all(feature = "redis", feature = "zookeeper", feature = "etcd")))]
fn not_built(backend: &str) -> Error {
    Error::spec(
        Some("scheme"),
        format!("this build of confo has no {backend} backend (enable the `{backend}` feature)"),
    )
}

/// `true`/`false`/`1`/`0`/`yes`/`no`, as in a URL query or a credentials string.
#[cfg_attr(not(any(feature = "redis", feature = "etcd")), allow(dead_code))]
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// A password or token: its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key_of(err: Error) -> Option<String> {
        match err {
            Error::InvalidSpec { key, .. } => key,
            other => panic!("expected InvalidSpec, got {other:?}"),
        }
    }

    #[test]
    fn parses_file_and_memory_specs() {
        let file = |p: &str| BackendSpec::File { config_path: PathBuf::from(p), links: Default::default() };
        assert_eq!("file:./Configurations".parse::<BackendSpec>().unwrap(), file("./Configurations"));
        assert_eq!("file:///tmp/x".parse::<BackendSpec>().unwrap(), file("/tmp/x"));
        assert_eq!("file://rel/dir".parse::<BackendSpec>().unwrap(), file("rel/dir"));
        assert_eq!("memory:".parse::<BackendSpec>().unwrap(), BackendSpec::Memory);
        assert_eq!("file:a b".parse::<BackendSpec>().unwrap().to_string(), "file:a b");
        let inside = "file:/srv/conf?links=inside".parse::<BackendSpec>().unwrap();
        assert_eq!(
            inside,
            BackendSpec::File { config_path: "/srv/conf".into(), links: crate::backend::file::FileLinks::Inside }
        );
        assert_eq!(inside.to_string(), "file:/srv/conf?links=inside");
        assert_eq!(key_of("file:x?links=sometimes".parse::<BackendSpec>().unwrap_err()), Some("links".into()));
        let creds = BackendSpec::from_credentials(BackendKind::File, &json!({"config_path": "c", "links": "inside"}));
        assert_eq!(creds.unwrap().to_string(), "file:c?links=inside");
    }

    #[test]
    fn rejects_bad_specs_with_the_part_at_fault() {
        assert_eq!(key_of("file:".parse::<BackendSpec>().unwrap_err()), Some("path".into()));
        assert_eq!(key_of("ftp://x".parse::<BackendSpec>().unwrap_err()), Some("scheme".into()));
        assert_eq!(key_of("Configurations".parse::<BackendSpec>().unwrap_err()), None);
        // Without the etcd feature the scheme itself is refused, naming the feature.
        let etcd_part = if cfg!(feature = "etcd") { "path" } else { "scheme" };
        assert_eq!(key_of("etcd://h/x".parse::<BackendSpec>().unwrap_err()), Some(etcd_part.into()));
    }

    #[test]
    fn credentials_dictionary() {
        let spec = BackendSpec::from_credentials(BackendKind::File, &json!({"config_path": "Configurations"})).unwrap();
        assert_eq!(spec, BackendSpec::File { config_path: "Configurations".into(), links: Default::default() });
        let missing = BackendSpec::from_credentials(BackendKind::File, &json!({})).unwrap_err();
        assert_eq!(key_of(missing), Some("config_path".into()));
        let wrong_type = BackendSpec::from_credentials(BackendKind::File, &json!({"config_path": 3})).unwrap_err();
        assert_eq!(key_of(wrong_type), Some("config_path".into()));
        let not_object = BackendSpec::from_credentials(BackendKind::File, &json!(["x"])).unwrap_err();
        assert!(not_object.to_string().contains("JSON object"));
    }

    #[test]
    fn unknown_key_is_named_but_its_value_never_shown() {
        let creds = json!({"config_path": "C", "password": "hunter2-secret"});
        let err = BackendSpec::from_credentials(BackendKind::File, &creds).unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(key_of(err), Some("password".into()));
    }

    #[test]
    fn ports_are_numbers_or_numeric_strings() {
        let creds = json!({"p1": 6379, "p2": "2181", "p3": "abc", "p4": 70000, "p5": true, "p6": 0});
        let mut c = Credentials::new(BackendKind::Memory, &creds).unwrap();
        assert_eq!(c.port("p1").unwrap(), Some(6379));
        assert_eq!(c.port("p2").unwrap(), Some(2181));
        for key in ["p3", "p4", "p5", "p6"] {
            assert_eq!(key_of(c.port(key).unwrap_err()), Some(key.to_owned()));
        }
        assert_eq!(c.port("absent").unwrap(), None);
    }

    #[test]
    fn backend_kinds() {
        assert_eq!("file".parse::<BackendKind>().unwrap(), BackendKind::File);
        assert_eq!("MEMORY".parse::<BackendKind>().unwrap(), BackendKind::Memory);
        assert_eq!(key_of("nosuch".parse::<BackendKind>().unwrap_err()), Some("backend_type".into()));
    }
}
