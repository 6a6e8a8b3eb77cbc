//! Where and how to connect to Redis: from a URL or from the seed's credentials dictionary.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::model::error::{Error, Result};
use crate::options::{decode, parse_bool, parse_host_port as host_port, Credentials, Secret};
use crate::spec::BackendKind;

fn parse_host_port(text: &str) -> Result<(String, u16)> {
    host_port(text, DEFAULT_PORT)
}

/// The default Redis port.
const DEFAULT_PORT: u16 = 6379;

/// Which server(s) to talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedisEndpoint {
    /// One server.
    Server {
        /// Host name or address.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// The current master of a Sentinel-monitored group.
    Sentinel {
        /// The sentinels, as (host, port).
        sentinels: Vec<(String, u16)>,
        /// The monitored master's name.
        master: String,
    },
    /// A Redis Cluster, reached through any of these nodes (the rest is discovered).
    Cluster {
        /// Seed nodes, as (host, port).
        nodes: Vec<(String, u16)>,
    },
}

/// Options of a [`super::RedisBackend`].
///
/// Built from `redis://[user[:password]@]host[:port][/db]`, `rediss://…` (TLS),
/// `redis+sentinel://[user[:password]@]host:port[,host:port…]/master[/db]`,
/// `redis+cluster://[user[:password]@]host:port[,host:port…]` (`rediss+cluster://` with TLS), or
/// a credentials dictionary. URL query options: `tls_ca=PATH` (a PEM CA to trust instead of the system's),
/// `wait_replicas=N` (a write succeeds only once N replicas acknowledged it).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisOptions {
    /// The server or the Sentinel group.
    pub endpoint: RedisEndpoint,
    /// ACL user name (`AUTH user password`); `None` for the default user.
    pub username: Option<String>,
    /// Password (`requirepass`, or the ACL user's).
    pub password: Option<Secret>,
    /// Database number.
    pub db: i64,
    /// Connect with TLS.
    pub tls: bool,
    /// A PEM file of the CA to trust for TLS, instead of the system's roots.
    pub tls_ca: Option<PathBuf>,
    /// After each write, wait until this many replicas acknowledged it (`WAIT`); 0 = don't.
    pub wait_replicas: u32,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// How long one request may take.
    pub response_timeout: Duration,
    /// History (`history=off`, `history_keep=N`, `history_max_age=30d`).
    pub history: crate::model::history::HistoryOptions,
}

impl RedisOptions {
    /// Options for one server with defaults (no auth, db 0, no TLS).
    pub fn server(host: impl Into<String>, port: u16) -> Self {
        RedisOptions {
            endpoint: RedisEndpoint::Server { host: host.into(), port },
            username: None,
            password: None,
            db: 0,
            tls: false,
            tls_ca: None,
            wait_replicas: 0,
            connect_timeout: Duration::from_secs(3),
            response_timeout: Duration::from_secs(10),
            history: crate::model::history::HistoryOptions::default(),
        }
    }

    /// Parses a `redis://`, `rediss://` or `redis+sentinel://` URL.
    pub fn from_url(url: &str) -> Result<Self> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| Error::spec(None, "expected redis://host:port"))?;
        let scheme = scheme.to_ascii_lowercase();
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (auth, rest) = match rest.rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
        let path: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let mut options = RedisOptions::server("", DEFAULT_PORT);
        let db_part = match scheme.as_str() {
            "redis" | "rediss" => {
                let (host, port) = parse_host_port(hosts)?;
                options.endpoint = RedisEndpoint::Server { host, port };
                options.tls = scheme == "rediss";
                match path.as_slice() {
                    [] => None,
                    [db] => Some(*db),
                    _ => {
                        return Err(Error::spec(
                            Some("db"),
                            "the path is only the database number (redis://host:port/0)",
                        ))
                    }
                }
            }
            "redis+sentinel" | "rediss+sentinel" => {
                let sentinels = hosts.split(',').map(parse_host_port).collect::<Result<Vec<_>>>()?;
                let (master, db) = match path.as_slice() {
                    [master] => (*master, None),
                    [master, db] => (*master, Some(*db)),
                    _ => {
                        return Err(Error::spec(
                            Some("master"),
                            "name the master: redis+sentinel://host:port[,host:port...]/master_name[/db]",
                        ))
                    }
                };
                options.endpoint = RedisEndpoint::Sentinel { sentinels, master: decode(master)? };
                options.tls = scheme.starts_with("rediss");
                db
            }
            "redis+cluster" | "rediss+cluster" => {
                let nodes = hosts.split(',').map(parse_host_port).collect::<Result<Vec<_>>>()?;
                options.endpoint = RedisEndpoint::Cluster { nodes };
                options.tls = scheme.starts_with("rediss");
                if !path.is_empty() {
                    return Err(Error::spec(
                        Some("db"),
                        "a Redis Cluster has only database 0: no path after the nodes",
                    ));
                }
                None
            }
            other => return Err(Error::spec(Some("scheme"), format!("not a Redis scheme: {other}"))),
        };
        if let Some(db) = db_part {
            options.db = db.parse().map_err(|_| Error::spec(Some("db"), "must be a database number"))?;
        }
        if let Some(auth) = auth {
            let (user, password) = match auth.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (auth, None),
            };
            options.username = Some(decode(user)?).filter(|u| !u.is_empty());
            options.password = password.map(decode).transpose()?.map(Secret::new);
        }
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "tls_ca" => options.tls_ca = Some(PathBuf::from(decode(value)?)),
                "wait_replicas" => {
                    options.wait_replicas =
                        value.parse().map_err(|_| Error::spec(Some("wait_replicas"), "must be a number"))?
                }
                "tls" => {
                    options.tls = parse_bool(value).ok_or_else(|| Error::spec(Some("tls"), "must be true or false"))?
                }
                other => {
                    if !crate::options::set_history_option(&mut options.history, other, value)? {
                        return Err(Error::spec(
                            Some(other),
                            "unknown option; known: tls, tls_ca, wait_replicas, history, history_keep, history_max_age",
                        ));
                    }
                }
            }
        }
        Ok(options)
    }

    /// Reads the seed's credentials dictionary: `redis_host`, `redis_port` (number or string),
    /// and optionally `redis_username`, `redis_password`, `redis_db`, `redis_tls`,
    /// `redis_tls_ca`, `redis_wait_replicas`; or, for Sentinel, `redis_sentinels`
    /// (`"host:port,host:port"`) and `redis_master` instead of host and port; or, for a Redis
    /// Cluster, `redis_cluster_nodes` (`"host:port,host:port"`).
    pub fn from_credentials(credentials: &Value) -> Result<Self> {
        let mut creds = Credentials::new(BackendKind::REDIS, credentials)?;
        let cluster = creds.optional_str("redis_cluster_nodes")?.map(str::to_owned);
        let mut options = match creds.optional_str("redis_sentinels")? {
            Some(_) if cluster.is_some() => {
                return Err(Error::spec(
                    Some("redis_cluster_nodes"),
                    "give either redis_sentinels or redis_cluster_nodes, not both",
                ))
            }
            None if cluster.is_some() => {
                let list = cluster.as_deref().unwrap_or_default();
                let nodes = list.split(',').map(|s| parse_host_port(s.trim())).collect::<Result<Vec<_>>>()?;
                RedisOptions { endpoint: RedisEndpoint::Cluster { nodes }, ..RedisOptions::server("", 0) }
            }
            Some(list) => {
                let sentinels = list.split(',').map(|s| parse_host_port(s.trim())).collect::<Result<Vec<_>>>()?;
                let master = creds.required_str("redis_master")?.to_owned();
                RedisOptions { endpoint: RedisEndpoint::Sentinel { sentinels, master }, ..RedisOptions::server("", 0) }
            }
            None => {
                let host = creds.required_str("redis_host")?;
                let port = creds.port("redis_port")?.unwrap_or(DEFAULT_PORT);
                RedisOptions::server(host, port)
            }
        };
        options.username = creds.optional_str("redis_username")?.map(str::to_owned);
        options.password = creds.optional_str("redis_password")?.map(Secret::new);
        options.db = i64::from(creds.optional_u32("redis_db")?.unwrap_or(0));
        options.tls = creds.optional_bool("redis_tls")?.unwrap_or(false);
        options.tls_ca = creds.optional_str("redis_tls_ca")?.map(PathBuf::from);
        options.wait_replicas = creds.optional_u32("redis_wait_replicas")?.unwrap_or(0);
        if options.db != 0 && matches!(options.endpoint, RedisEndpoint::Cluster { .. }) {
            return Err(Error::spec(Some("redis_db"), "a Redis Cluster has only database 0"));
        }
        options.history = crate::options::history_from_credentials(&mut creds)?;
        creds.finish()?;
        Ok(options)
    }

    /// `redis 127.0.0.1:6379` or `redis sentinel master@h1:p1,h2:p2`, for messages.
    pub fn describe(&self) -> String {
        match &self.endpoint {
            RedisEndpoint::Server { host, port } => format!("redis {}:{port}", crate::options::shorten(host)),
            RedisEndpoint::Sentinel { sentinels, master } => {
                let list: Vec<String> =
                    sentinels.iter().map(|(h, p)| format!("{}:{p}", crate::options::shorten(h))).collect();
                format!("redis sentinel {}@{}", crate::options::shorten(master), list.join(","))
            }
            RedisEndpoint::Cluster { nodes } => {
                let list: Vec<String> =
                    nodes.iter().map(|(h, p)| format!("{}:{p}", crate::options::shorten(h))).collect();
                format!("redis cluster {}", list.join(","))
            }
        }
    }
}

impl fmt::Display for RedisOptions {
    /// The URL without the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tls = if self.tls { "s" } else { "" };
        let user = match (&self.username, &self.password) {
            (Some(u), Some(_)) => format!("{u}:<redacted>@"),
            (Some(u), None) => format!("{u}@"),
            (None, Some(_)) => ":<redacted>@".to_owned(),
            (None, None) => String::new(),
        };
        match &self.endpoint {
            RedisEndpoint::Server { host, port } => write!(f, "redis{tls}://{user}{host}:{port}/{}", self.db)?,
            RedisEndpoint::Sentinel { sentinels, master } => {
                let list: Vec<String> = sentinels.iter().map(|(h, p)| format!("{h}:{p}")).collect();
                write!(f, "redis{tls}+sentinel://{user}{}/{master}/{}", list.join(","), self.db)?
            }
            RedisEndpoint::Cluster { nodes } => {
                let list: Vec<String> = nodes.iter().map(|(h, p)| format!("{h}:{p}")).collect();
                write!(f, "redis{tls}+cluster://{user}{}", list.join(","))?
            }
        }
        let query = self.history.query();
        if !query.is_empty() {
            write!(f, "?{}", query.join("&"))?;
        }
        Ok(())
    }
}

impl fmt::Debug for RedisOptions {
    // By hand, so the password can never be printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisOptions")
            .field("endpoint", &self.endpoint)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("db", &self.db)
            .field("tls", &self.tls)
            .field("tls_ca", &self.tls_ca)
            .field("wait_replicas", &self.wait_replicas)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urls() {
        let o = RedisOptions::from_url("redis://127.0.0.1:6380/2").unwrap();
        assert_eq!(o.endpoint, RedisEndpoint::Server { host: "127.0.0.1".into(), port: 6380 });
        assert_eq!((o.db, o.tls, o.username.clone()), (2, false, None));
        let o = RedisOptions::from_url("rediss://app:p%40ss%3Aw@cache.local?tls_ca=/tmp/ca.pem").unwrap();
        assert_eq!(o.endpoint, RedisEndpoint::Server { host: "cache.local".into(), port: 6379 });
        assert!(o.tls);
        assert_eq!(o.username.as_deref(), Some("app"));
        assert_eq!(o.password.as_ref().map(Secret::expose), Some("p@ss:w"));
        assert_eq!(o.tls_ca, Some(PathBuf::from("/tmp/ca.pem")));
        let o = RedisOptions::from_url("redis://:only-pass@[::1]:7000").unwrap();
        assert_eq!(o.endpoint, RedisEndpoint::Server { host: "::1".into(), port: 7000 });
        assert_eq!(
            (o.username.as_deref(), o.password.map(|p| p.expose().to_owned())),
            (None, Some("only-pass".into()))
        );
        let o = RedisOptions::from_url("redis+sentinel://a:26379,b:26380/mymaster/1?wait_replicas=1").unwrap();
        assert_eq!(
            o.endpoint,
            RedisEndpoint::Sentinel {
                sentinels: vec![("a".into(), 26379), ("b".into(), 26380)],
                master: "mymaster".into()
            }
        );
        assert_eq!((o.db, o.wait_replicas), (1, 1));
        let o = RedisOptions::from_url("rediss+cluster://app:pw@a:7000,b:7001?wait_replicas=1&tls_ca=/ca.pem").unwrap();
        assert_eq!(o.endpoint, RedisEndpoint::Cluster { nodes: vec![("a".into(), 7000), ("b".into(), 7001)] });
        assert_eq!((o.tls, o.wait_replicas, o.username.as_deref()), (true, 1, Some("app")));
        assert_eq!(o.to_string(), "rediss+cluster://app:<redacted>@a:7000,b:7001");
        assert_eq!(o.describe(), "redis cluster a:7000,b:7001");
    }

    #[test]
    fn bad_urls_name_the_part() {
        let key = |url: &str| match RedisOptions::from_url(url).unwrap_err() {
            Error::InvalidSpec { key, .. } => key,
            e => panic!("{e:?}"),
        };
        assert_eq!(key("redis://h:notaport"), Some("port".into()));
        assert_eq!(key("redis://h:0"), Some("port".into()));
        assert_eq!(key("redis://h/x"), Some("db".into()));
        assert_eq!(key("redis://h?bogus=1"), Some("bogus".into()));
        assert_eq!(key("redis+sentinel://h:1"), Some("master".into()));
        assert_eq!(key("redis://:pw@"), Some("host".into()));
        assert_eq!(key("redis+cluster://a:1,b:x"), Some("port".into()));
        assert_eq!(key("redis+cluster://a:1/2"), Some("db".into()));
    }

    #[test]
    fn the_seeds_credentials_dictionary() {
        let o = RedisOptions::from_credentials(&json!({"redis_host": "localhost", "redis_port": "6379"})).unwrap();
        assert_eq!(o.endpoint, RedisEndpoint::Server { host: "localhost".into(), port: 6379 });
        let o = RedisOptions::from_credentials(&json!({"redis_host": "h", "redis_port": 7000, "redis_password": "pw", "redis_db": "3", "redis_tls": "true"})).unwrap();
        assert_eq!((o.db, o.tls), (3, true));
        let o = RedisOptions::from_credentials(&json!({"redis_sentinels": "a:1, b:2", "redis_master": "m"})).unwrap();
        assert!(matches!(o.endpoint, RedisEndpoint::Sentinel { ref sentinels, .. } if sentinels.len() == 2));
        let o = RedisOptions::from_credentials(&json!({"redis_cluster_nodes": "a:1, b:2", "redis_password": "pw"}))
            .unwrap();
        assert!(matches!(o.endpoint, RedisEndpoint::Cluster { ref nodes } if nodes.len() == 2));
        for (creds, key) in [
            (json!({"redis_port": "6379"}), "redis_host"),
            (json!({"redis_host": "h", "redis_port": "x"}), "redis_port"),
            (json!({"redis_host": "h", "redis_port": [1]}), "redis_port"),
            (json!({"redis_host": "h", "redis_pasword": "typo"}), "redis_pasword"),
            (json!({"redis_sentinels": "a:1"}), "redis_master"),
            (json!({"redis_cluster_nodes": "a:1", "redis_sentinels": "b:2"}), "redis_cluster_nodes"),
            (json!({"redis_cluster_nodes": "a:1", "redis_db": 2}), "redis_db"),
            (json!({"redis_cluster_nodes": "a:x"}), "port"),
        ] {
            match RedisOptions::from_credentials(&creds).unwrap_err() {
                Error::InvalidSpec { key: Some(k), .. } => assert_eq!(k, key),
                e => panic!("{creds}: {e:?}"),
            }
        }
    }

    #[test]
    fn passwords_never_show() {
        let o = RedisOptions::from_url("redis://user:hunter2@h:1").unwrap();
        let shown = format!("{o} {o:?} {}", o.describe());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("user:<redacted>@h:1"), "{shown}");
        let err = RedisOptions::from_credentials(&json!({"redis_host": "h", "redis_password": "hunter2", "x": 1}))
            .unwrap_err();
        assert!(!format!("{err} {err:?}").contains("hunter2"));
    }
}
