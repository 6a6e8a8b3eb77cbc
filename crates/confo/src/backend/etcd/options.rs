//! Where and how to connect to etcd: from a URL or from a credentials dictionary.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::model::error::{Error, Result, SpecProblem};
use crate::options::{decode, parse_host_port, Credentials, Secret};
use crate::spec::BackendKind;

const DEFAULT_PORT: u16 = 2379;

/// Options of a [`super::EtcdBackend`].
///
/// Built from `etcd://[user:password@]host:port[,host:port…]`, `etcds://…` (TLS, with
/// `?tls_ca=PATH` for a private CA), or a credentials dictionary in the seed's style.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EtcdOptions {
    /// The cluster's client endpoints, as (host, port).
    pub endpoints: Vec<(String, u16)>,
    /// User name (etcd authentication).
    pub username: Option<String>,
    /// Password.
    pub password: Option<Secret>,
    /// Connect with TLS.
    pub tls: bool,
    /// A PEM file of the CA to trust for TLS.
    pub tls_ca: Option<PathBuf>,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// How long one request may take.
    pub request_timeout: Duration,
    /// Largest configuration accepted, in bytes: below etcd's 1.5 MiB request limit.
    pub max_value_bytes: usize,
    /// History (`history=off`, `history_keep=N`, `history_max_age=30d`).
    pub history: crate::model::history::HistoryOptions,
}

impl EtcdOptions {
    /// Options for these endpoints with defaults.
    pub fn new(endpoints: Vec<(String, u16)>) -> Self {
        EtcdOptions {
            endpoints,
            username: None,
            password: None,
            tls: false,
            tls_ca: None,
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(10),
            max_value_bytes: 1_400_000,
            history: crate::model::history::HistoryOptions::default(),
        }
    }

    /// Parses an `etcd://` or `etcds://` URL.
    pub fn from_url(url: &str) -> Result<Self> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| Error::spec(None, "expected etcd://host:port"))?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "etcd" => false,
            "etcds" => true,
            other => return Err(Error::spec(Some("scheme"), format!("not an etcd scheme: {other}"))),
        };
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let rest = rest.trim_end_matches('/');
        let (auth, hosts) = match rest.rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        if hosts.contains('/') {
            return Err(Error::spec(Some("path"), "etcd URLs take no path: etcd://host:port[,host:port...]"));
        }
        let endpoints = hosts.split(',').map(|h| parse_host_port(h, DEFAULT_PORT)).collect::<Result<Vec<_>>>()?;
        let mut options = EtcdOptions::new(endpoints);
        options.tls = tls;
        if let Some(auth) = auth {
            let (user, password) = auth
                .split_once(':')
                .ok_or_else(|| Error::spec(Some("password"), "authentication needs user:password"))?;
            options.username = Some(decode(user)?);
            options.password = Some(Secret::new(decode(password)?));
        }
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "tls_ca" => options.tls_ca = Some(PathBuf::from(decode(value)?)),
                other => {
                    if !crate::options::set_history_option(&mut options.history, other, value)? {
                        return Err(Error::spec(
                            Some(other),
                            "unknown option; known: tls_ca, history, history_keep, history_max_age",
                        ));
                    }
                }
            }
        }
        Ok(options)
    }

    /// Reads a credentials dictionary: `etcd_host` (one host, or several separated by
    /// commas), `etcd_port` (number or numeric string), and optionally `etcd_user`,
    /// `etcd_password`, `etcd_tls`, `etcd_tls_ca`.
    pub fn from_credentials(credentials: &Value) -> Result<Self> {
        let mut creds = Credentials::new(BackendKind::ETCD, credentials)?;
        let hosts = creds.required_str("etcd_host")?;
        let port = creds.port("etcd_port")?.unwrap_or(DEFAULT_PORT);
        let endpoints = hosts.split(',').map(|h| parse_host_port(h.trim(), port)).collect::<Result<Vec<_>>>()?;
        let mut options = EtcdOptions::new(endpoints);
        match (creds.optional_str("etcd_user")?, creds.optional_str("etcd_password")?) {
            (Some(user), Some(password)) => {
                options.username = Some(user.to_owned());
                options.password = Some(Secret::new(password));
            }
            (None, None) => {}
            (Some(_), None) => {
                return Err(Error::spec_problem(
                    SpecProblem::Missing,
                    Some("etcd_password"),
                    "missing: etcd_user needs it",
                ))
            }
            (None, Some(_)) => {
                return Err(Error::spec_problem(
                    SpecProblem::Missing,
                    Some("etcd_user"),
                    "missing: etcd_password needs it",
                ))
            }
        }
        options.tls = creds.optional_bool("etcd_tls")?.unwrap_or(false);
        options.tls_ca = creds.optional_str("etcd_tls_ca")?.map(PathBuf::from);
        options.history = crate::options::history_from_credentials(&mut creds)?;
        creds.finish()?;
        Ok(options)
    }

    /// The endpoint URLs the client connects to.
    pub(crate) fn endpoint_urls(&self) -> Vec<String> {
        let scheme = if self.tls { "https" } else { "http" };
        self.endpoints
            .iter()
            .map(|(h, p)| if h.contains(':') { format!("{scheme}://[{h}]:{p}") } else { format!("{scheme}://{h}:{p}") })
            .collect()
    }

    /// `etcd h1:p1,h2:p2`, for messages.
    pub fn describe(&self) -> String {
        let hosts: Vec<String> =
            self.endpoints.iter().map(|(h, p)| format!("{}:{p}", crate::options::shorten(h))).collect();
        format!("etcd {}", hosts.join(","))
    }
}

impl fmt::Display for EtcdOptions {
    /// The URL without the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "etcds" } else { "etcd" };
        let user = self.username.as_ref().map(|u| format!("{u}:<redacted>@")).unwrap_or_default();
        let hosts: Vec<String> = self.endpoints.iter().map(|(h, p)| format!("{h}:{p}")).collect();
        write!(f, "{scheme}://{user}{}", hosts.join(","))?;
        let query = self.history.query();
        if !query.is_empty() {
            write!(f, "?{}", query.join("&"))?;
        }
        Ok(())
    }
}

impl fmt::Debug for EtcdOptions {
    // By hand, so the password can never be printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdOptions")
            .field("endpoints", &self.endpoints)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .field("tls_ca", &self.tls_ca)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urls_and_credentials() {
        let o = EtcdOptions::from_url("etcd://a:2379,b:2380").unwrap();
        assert_eq!(o.endpoint_urls(), ["http://a:2379", "http://b:2380"]);
        let o = EtcdOptions::from_url("etcds://root:p%40ss@h?tls_ca=/ca.pem").unwrap();
        assert_eq!(o.endpoint_urls(), ["https://h:2379"]);
        assert_eq!(o.password.as_ref().map(Secret::expose), Some("p@ss"));
        let o = EtcdOptions::from_credentials(
            &json!({"etcd_host": "127.0.0.1", "etcd_port": "2379", "etcd_user": "u", "etcd_password": "p"}),
        )
        .unwrap();
        assert_eq!((o.endpoints.clone(), o.username.as_deref()), (vec![("127.0.0.1".to_owned(), 2379)], Some("u")));
        for (creds, key) in [
            (json!({"etcd_port": 1}), "etcd_host"),
            (json!({"etcd_host": "h", "etcd_port": "x"}), "etcd_port"),
            (json!({"etcd_host": "h", "etcd_user": "u"}), "etcd_password"),
            (json!({"etcd_host": "h", "etcd_pasword": "typo"}), "etcd_pasword"),
        ] {
            match EtcdOptions::from_credentials(&creds).unwrap_err() {
                Error::InvalidSpec { key: Some(k), .. } => assert_eq!(k, key),
                e => panic!("{creds}: {e:?}"),
            }
        }
        assert!(
            matches!(EtcdOptions::from_url("etcd://h/x"), Err(Error::InvalidSpec { key: Some(k), .. }) if k == "path")
        );
    }

    #[test]
    fn passwords_never_show() {
        let o = EtcdOptions::from_url("etcd://root:hunter2@h:1").unwrap();
        let shown = format!("{o} {o:?} {}", o.describe());
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
