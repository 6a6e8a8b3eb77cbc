//! Where and how to connect to ZooKeeper: from a URL or from confo's credentials dictionary.

use std::fmt;
use std::time::Duration;

use serde_json::Value;

use crate::model::error::{Error, Result, SpecProblem};
use crate::options::{decode, parse_host_port, Credentials, Secret};
use crate::spec::BackendKind;

const DEFAULT_PORT: u16 = 2181;

/// Who may read and change the znodes confo creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ZkAcl {
    /// Anyone may do anything (Python confo's behaviour; the default without credentials).
    Open,
    /// Only the authenticated identity that created a node (the default with credentials).
    CreatorAll,
    /// The creator may do anything, anyone may read.
    CreatorAllWorldRead,
}

/// Options of a [`super::ZkBackend`].
///
/// Built from `zk://[user:password@]host:port[,host:port…][/chroot][?acl=creator|world-read|open]`
/// or from confo's credentials dictionary.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ZkOptions {
    /// The ensemble's servers, as (host, port).
    pub hosts: Vec<(String, u16)>,
    /// A path under which confo keeps its `/confo` tree (created if absent); `None` for `/`.
    pub chroot: Option<String>,
    /// Digest user name.
    pub username: Option<String>,
    /// Digest password.
    pub password: Option<Secret>,
    /// The ACL of created znodes.
    pub acl: ZkAcl,
    /// With credentials, use nodes whose ACL lets other identities change them (`false` by
    /// default: such nodes are refused as [`Error::Insecure`]). `foreign_acls=trust` in a URL.
    pub trust_foreign_acls: bool,
    /// Other identities whose nodes are trusted as this one's own (a reader trusting the
    /// writers): ZooKeeper ids `digest:USER:HASH`, as `getAcl` shows them. `trusted=…` in a
    /// URL (comma-separated), `zookeeper_trusted` in credentials.
    pub trusted: Vec<String>,
    /// The session timeout asked of the server.
    pub session_timeout: Duration,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// Largest configuration accepted, in bytes: below the server's `jute.maxbuffer` (1 MiB by
    /// default) with room for the request around it.
    pub max_value_bytes: usize,
    /// History (`history=off`, `history_keep=N`, `history_max_age=30d`).
    pub history: crate::model::history::HistoryOptions,
}

impl ZkOptions {
    /// Options for these servers with defaults.
    pub fn new(hosts: Vec<(String, u16)>) -> Self {
        ZkOptions {
            hosts,
            chroot: None,
            username: None,
            password: None,
            acl: ZkAcl::Open,
            trust_foreign_acls: false,
            trusted: Vec::new(),
            session_timeout: Duration::from_secs(6),
            connect_timeout: Duration::from_secs(3),
            max_value_bytes: 1_000_000,
            history: crate::model::history::HistoryOptions::default(),
        }
    }

    /// Parses a `zk://` URL.
    pub fn from_url(url: &str) -> Result<Self> {
        let rest = url
            .strip_prefix("zk://")
            .or_else(|| url.strip_prefix("zookeeper://"))
            .ok_or_else(|| Error::spec(Some("scheme"), "expected zk://host:port"))?;
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (auth, rest) = match rest.rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let (hosts, chroot) = match rest.find('/') {
            Some(slash) => (&rest[..slash], Some(&rest[slash..])),
            None => (rest, None),
        };
        let hosts = hosts.split(',').map(|h| parse_host_port(h, DEFAULT_PORT)).collect::<Result<Vec<_>>>()?;
        let mut options = ZkOptions::new(hosts);
        options.chroot = chroot.map(normalize_chroot).transpose()?.flatten();
        if let Some(auth) = auth {
            let (user, password) =
                auth.split_once(':').ok_or_else(|| Error::spec(Some("password"), "digest auth needs user:password"))?;
            options.username = Some(decode(user)?);
            options.password = Some(Secret::new(decode(password)?));
            options.acl = ZkAcl::CreatorAll;
        }
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "acl" => options.acl = parse_acl(value)?,
                "foreign_acls" => options.trust_foreign_acls = parse_foreign_acls(value)?,
                "trusted" => options.trusted = parse_trusted("trusted", &decode(value)?)?,
                "session_timeout_ms" => {
                    let ms: u64 =
                        value.parse().map_err(|_| Error::spec(Some("session_timeout_ms"), "must be milliseconds"))?;
                    options.session_timeout = Duration::from_millis(ms);
                }
                other => {
                    if !crate::options::set_history_option(&mut options.history, other, value)? {
                        return Err(Error::spec(
                            Some(other),
                            "unknown option; known: acl, foreign_acls, trusted, session_timeout_ms, history, \
                             history_keep, history_max_age",
                        ));
                    }
                }
            }
        }
        options.check()?;
        Ok(options)
    }

    /// Reads confo's credentials dictionary: `zookeeper_host` (one host, or several separated
    /// by commas), `zookeeper_port` (number or numeric string), and optionally `zookeeper_user`,
    /// `zookeeper_passwd`, `zookeeper_chroot`, `zookeeper_acl` (`creator`, `world-read`,
    /// `open`).
    pub fn from_credentials(credentials: &Value) -> Result<Self> {
        let mut creds = Credentials::new(BackendKind::ZOOKEEPER, credentials)?;
        let hosts_text = creds.required_str("zookeeper_host")?;
        let port = creds
            .port("zookeeper_port")?
            .ok_or_else(|| Error::spec_problem(SpecProblem::Missing, Some("zookeeper_port"), "missing"))?;
        let hosts = hosts_text
            .split(',')
            .map(|h| {
                let h = h.trim();
                if h.contains(':') && !h.starts_with('[') {
                    parse_host_port(h, port)
                } else {
                    Ok((h.trim_matches(['[', ']']).to_owned(), port))
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let mut options = ZkOptions::new(hosts);
        let user = creds.optional_str("zookeeper_user")?;
        let password = creds.optional_str("zookeeper_passwd")?;
        match (user, password) {
            (Some(user), Some(password)) => {
                options.username = Some(user.to_owned());
                options.password = Some(Secret::new(password));
                options.acl = ZkAcl::CreatorAll;
            }
            (None, None) => {}
            (Some(_), None) => {
                return Err(Error::spec_problem(
                    SpecProblem::Missing,
                    Some("zookeeper_passwd"),
                    "missing: zookeeper_user needs it",
                ))
            }
            (None, Some(_)) => {
                return Err(Error::spec_problem(
                    SpecProblem::Missing,
                    Some("zookeeper_user"),
                    "missing: zookeeper_passwd needs it",
                ))
            }
        }
        if let Some(chroot) = creds.optional_str("zookeeper_chroot")? {
            options.chroot = normalize_chroot(chroot)?;
        }
        if let Some(value) = creds.optional_str("zookeeper_foreign_acls")? {
            options.trust_foreign_acls = parse_foreign_acls(value)
                .map_err(|_| Error::spec(Some("zookeeper_foreign_acls"), "must be trust or refuse"))?;
        }
        if let Some(acl) = creds.optional_str("zookeeper_acl")? {
            options.acl = parse_acl(acl)
                .map_err(|_| Error::spec(Some("zookeeper_acl"), "must be creator, world-read or open"))?;
        }
        if let Some(trusted) = creds.optional_str("zookeeper_trusted")? {
            options.trusted = parse_trusted("zookeeper_trusted", trusted)?;
        }
        options.history = crate::options::history_from_credentials(&mut creds)?;
        creds.finish()?;
        options.check()?;
        Ok(options)
    }

    fn check(&self) -> Result<()> {
        if self.acl != ZkAcl::Open && self.username.is_none() {
            return Err(Error::spec(Some("acl"), "creator ACLs need credentials (user:password@)"));
        }
        if !self.trusted.is_empty() && self.username.is_none() {
            return Err(Error::spec(Some("trusted"), "trusting other identities needs credentials (user:password@)"));
        }
        Ok(())
    }

    /// The Java client's connect string, `h1:p1,h2:p2` (no chroot: confo prefixes paths itself).
    pub fn connect_string(&self) -> String {
        self.hosts
            .iter()
            .map(|(h, p)| if h.contains(':') { format!("[{h}]:{p}") } else { format!("{h}:{p}") })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `zookeeper h1:p1,h2:p2/chroot`, for messages.
    pub fn describe(&self) -> String {
        let hosts: Vec<String> = self
            .hosts
            .iter()
            .map(|(h, p)| {
                let h = crate::options::shorten(h);
                if h.contains(':') {
                    format!("[{h}]:{p}")
                } else {
                    format!("{h}:{p}")
                }
            })
            .collect();
        format!(
            "zookeeper {}{}",
            hosts.join(","),
            self.chroot.as_deref().map(crate::options::shorten).unwrap_or_default()
        )
    }
}

fn parse_acl(value: &str) -> Result<ZkAcl> {
    match value {
        "creator" | "creator-all" => Ok(ZkAcl::CreatorAll),
        "world-read" => Ok(ZkAcl::CreatorAllWorldRead),
        "open" => Ok(ZkAcl::Open),
        _ => Err(Error::spec(Some("acl"), "must be creator, world-read or open")),
    }
}

/// `digest:USER[:HASH][,…]`: the writers' ZooKeeper ids. A reader sees only the user name of a
/// digest ACL (ZooKeeper masks the hash for a client without the ADMIN right), so the hash,
/// when given, is compared only where it is shown.
fn parse_trusted(key: &str, value: &str) -> Result<Vec<String>> {
    value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|id| {
            let rest = id.strip_prefix("digest:");
            let valid = rest.is_some_and(|rest| match rest.split_once(':') {
                Some((user, hash)) => {
                    !user.is_empty()
                        && hash.len() == 28
                        && hash.ends_with('=')
                        && hash.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
                }
                None => !rest.is_empty(),
            });
            if valid {
                Ok(id.to_owned())
            } else {
                Err(Error::spec(
                    Some(key),
                    "each entry must be a ZooKeeper digest identity, digest:USER or digest:USER:HASH (HASH as \
                     getAcl shows it: base64(sha1(USER:PASSWORD)))",
                ))
            }
        })
        .collect()
}

fn parse_foreign_acls(value: &str) -> Result<bool> {
    match value {
        "trust" => Ok(true),
        "refuse" => Ok(false),
        _ => Err(Error::spec(Some("foreign_acls"), "must be trust or refuse")),
    }
}

/// `/a/b/` → `/a/b`; `/` → none. ZooKeeper's own `/zookeeper` tree is refused.
fn normalize_chroot(chroot: &str) -> Result<Option<String>> {
    let trimmed = chroot.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(None);
    }
    if !trimmed.starts_with('/')
        || trimmed.split('/').skip(1).any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(Error::spec(Some("chroot"), "must be an absolute path like /team/app"));
    }
    if trimmed == "/zookeeper" || trimmed.starts_with("/zookeeper/") {
        return Err(Error::spec(
            Some("chroot"),
            "/zookeeper is ZooKeeper's own tree (quotas, config); choose another path",
        ));
    }
    Ok(Some(trimmed.to_owned()))
}

impl fmt::Display for ZkOptions {
    /// The URL without the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let user = match &self.username {
            Some(u) => format!("{u}:<redacted>@"),
            None => String::new(),
        };
        write!(f, "zk://{user}{}{}", self.connect_string(), self.chroot.as_deref().unwrap_or(""))?;
        let query = self.history.query();
        if !query.is_empty() {
            write!(f, "?{}", query.join("&"))?;
        }
        Ok(())
    }
}

impl fmt::Debug for ZkOptions {
    // By hand, so the password can never be printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZkOptions")
            .field("hosts", &self.hosts)
            .field("chroot", &self.chroot)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("acl", &self.acl)
            .field("trust_foreign_acls", &self.trust_foreign_acls)
            .field("trusted", &self.trusted.len())
            .field("session_timeout", &self.session_timeout)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urls() {
        let o = ZkOptions::from_url("zk://a:2181,b:2182/team/app").unwrap();
        assert_eq!(o.hosts, [("a".to_owned(), 2181), ("b".to_owned(), 2182)]);
        assert_eq!(o.chroot.as_deref(), Some("/team/app"));
        assert_eq!((o.acl, o.connect_string()), (ZkAcl::Open, "a:2181,b:2182".to_owned()));
        let o = ZkOptions::from_url("zk://app:p%40ss@127.0.0.1:2181?acl=world-read").unwrap();
        assert_eq!(o.password.as_ref().map(Secret::expose), Some("p@ss"));
        assert_eq!(o.acl, ZkAcl::CreatorAllWorldRead);
        assert_eq!(ZkOptions::from_url("zk://h").unwrap().hosts, [("h".to_owned(), 2181)]);
    }

    #[test]
    fn bad_urls_name_the_part() {
        let key = |url: &str| match ZkOptions::from_url(url).unwrap_err() {
            Error::InvalidSpec { key, .. } => key,
            e => panic!("{e:?}"),
        };
        assert_eq!(key("zk://h:x"), Some("port".into()));
        assert_eq!(key("zk://h/a//b"), Some("chroot".into()));
        assert_eq!(key("zk://h?acl=creator"), Some("acl".into()));
        assert_eq!(key("zk://onlyuser@h"), Some("password".into()));
        assert_eq!(key("zk://h?x=1"), Some("x".into()));
        assert_eq!(key("zk://h/zookeeper"), Some("chroot".into()));
        assert_eq!(key("zk://h/zookeeper/quota/x"), Some("chroot".into()));
        assert_eq!(key("zk://u:p@h?foreign_acls=maybe"), Some("foreign_acls".into()));
        assert!(ZkOptions::from_url("zk://h/zookeepers").is_ok(), "only ZooKeeper's own tree");
        assert!(ZkOptions::from_url("zk://u:p@h?foreign_acls=trust").unwrap().trust_foreign_acls);
    }

    #[test]
    fn confos_credentials_dictionary() {
        // Python confo crashes when the port is a number and a user is given; we don't.
        let o = ZkOptions::from_credentials(
            &json!({"zookeeper_host": "127.0.0.1", "zookeeper_port": 2181, "zookeeper_user": "u", "zookeeper_passwd": "p"}),
        )
        .unwrap();
        assert_eq!((o.hosts.clone(), o.acl), (vec![("127.0.0.1".to_owned(), 2181)], ZkAcl::CreatorAll));
        let o = ZkOptions::from_credentials(&json!({"zookeeper_host": "a,b:2182", "zookeeper_port": "2181"})).unwrap();
        assert_eq!(o.hosts, [("a".to_owned(), 2181), ("b".to_owned(), 2182)]);
        for (creds, key) in [
            (json!({"zookeeper_port": "2181"}), "zookeeper_host"),
            (json!({"zookeeper_host": "h"}), "zookeeper_port"),
            (json!({"zookeeper_host": "h", "zookeeper_port": "two"}), "zookeeper_port"),
            (json!({"zookeeper_host": "h", "zookeeper_port": 1, "zookeeper_user": "u"}), "zookeeper_passwd"),
            (json!({"zookeeper_host": "h", "zookeeper_port": 1, "zookeeper_password": "p"}), "zookeeper_password"),
        ] {
            match ZkOptions::from_credentials(&creds).unwrap_err() {
                Error::InvalidSpec { key: Some(k), .. } => assert_eq!(k, key, "{creds}"),
                e => panic!("{creds}: {e:?}"),
            }
        }
    }

    #[test]
    fn passwords_never_show() {
        let o = ZkOptions::from_url("zk://user:hunter2@h:1").unwrap();
        let shown = format!("{o} {o:?} {}", o.describe());
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
