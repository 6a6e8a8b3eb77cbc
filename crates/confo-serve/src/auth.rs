//! Who may do what: API tokens (kept in a file as SHA-256 hashes, never in the clear), their
//! roles per backend and namespace pattern, console sessions, and the limit on failed logins.
//!
//! A token is 32 random bytes, written `confo_` + base64url (48 characters in all). It is shown
//! once, when `confo token add` makes it; the file keeps its hash. A token carries that much
//! randomness, so one fast hash is enough: there is nothing to guess from it.

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::problem::Problem;

/// What a token may do. Every role may read; `write` also writes configurations; `admin`
/// also writes schemas and deletes namespaces; `reveal` also opens secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read configurations, history, schemas and events (secrets masked).
    Read,
    /// Create, change and delete configurations, create namespaces, roll back.
    Write,
    /// Set and remove schemas, delete namespaces; implies `write`.
    Admin,
    /// See secrets in the clear.
    Reveal,
}

impl Role {
    /// `read`, `write`, `admin` or `reveal`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
            Role::Reveal => "reveal",
        }
    }

    /// Parses a comma-separated list (`read,reveal`).
    pub fn parse_list(text: &str) -> Result<Vec<Role>, String> {
        let mut roles = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let role = match part {
                "read" => Role::Read,
                "write" => Role::Write,
                "admin" => Role::Admin,
                "reveal" => Role::Reveal,
                other => return Err(format!("unknown role {other:?} (expected read, write, admin or reveal)")),
            };
            if !roles.contains(&role) {
                roles.push(role);
            }
        }
        if roles.is_empty() {
            return Err("no role given (expected read, write, admin or reveal)".to_owned());
        }
        roles.sort();
        Ok(roles)
    }
}

/// One token as the file keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenRecord {
    /// Its name: who its requests are recorded as in history.
    pub name: String,
    /// `sha256:` and the hex digest of the token.
    pub hash: String,
    /// What it may do.
    pub roles: Vec<Role>,
    /// The namespaces it may touch (a glob: `*`, `sales-*`).
    #[serde(default = "everything")]
    pub namespaces: String,
    /// The backends (names given to `confo serve`) it may touch (a glob).
    #[serde(default = "everything")]
    pub backends: String,
    /// When it was made (RFC 3339).
    #[serde(default)]
    pub created: String,
}

fn everything() -> String {
    "*".to_owned()
}

/// The tokens file: `{"tokens": [TokenRecord…]}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TokenFile {
    /// The tokens, in the order they were added.
    pub tokens: Vec<TokenRecord>,
}

impl TokenFile {
    /// Reads a tokens file; a missing file is an empty one.
    pub fn load(path: &Path) -> Result<TokenFile, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                serde_json::from_str(&text).map_err(|e| format!("{} is not a valid tokens file: {e}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TokenFile::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Writes the file atomically (a temporary file renamed over it), readable by its owner
    /// only.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(folder).map_err(|e| format!("{}: {e}", folder.display()))?;
        let mut file = tempfile::NamedTempFile::new_in(folder).map_err(|e| format!("{}: {e}", folder.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = file.as_file().set_permissions(std::fs::Permissions::from_mode(0o600));
        }
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.as_file().sync_all())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        file.persist(path).map_err(|e| format!("{}: {}", path.display(), e.error))?;
        Ok(())
    }

    /// Adds a new token and returns it (the only time it is seen in the clear). A name
    /// already used is refused.
    pub fn add(&mut self, name: &str, roles: Vec<Role>, namespaces: &str, backends: &str) -> Result<String, String> {
        if name.trim().is_empty() || name.chars().any(char::is_control) {
            return Err(format!("{name:?} is not a usable token name (empty, or a control character)"));
        }
        if self.tokens.iter().any(|t| t.name == name) {
            return Err(format!("a token named {name:?} exists; remove it first (confo token rm {name})"));
        }
        let token = generate()?;
        self.tokens.push(TokenRecord {
            name: name.to_owned(),
            hash: hash(&token),
            roles,
            namespaces: namespaces.to_owned(),
            backends: backends.to_owned(),
            created: confo::model::history::format_time(SystemTime::now()),
        });
        Ok(token)
    }

    /// Removes the token named `name`; `false` if there is none.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.tokens.len();
        self.tokens.retain(|t| t.name != name);
        self.tokens.len() != before
    }
}

/// Where `confo token` and `confo serve` keep tokens by default: `$CONFO_TOKENS`, else
/// `$XDG_CONFIG_HOME/confo/tokens.json`, else `~/.config/confo/tokens.json`.
pub fn default_tokens_path() -> PathBuf {
    if let Some(path) = std::env::var_os("CONFO_TOKENS") {
        return PathBuf::from(path);
    }
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("confo")
        .join("tokens.json")
}

/// A new random token: `confo_` and 32 random bytes in base64url.
pub fn generate() -> Result<String, String> {
    Ok(format!("confo_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random::<32>()?)))
}

/// `n` random bytes from the operating system.
pub(crate) fn random<const N: usize>() -> Result<[u8; N], String> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; N];
    ring::rand::SystemRandom::new().fill(&mut bytes).map_err(|_| "the system's random source failed".to_owned())?;
    Ok(bytes)
}

/// `sha256:` and the hex digest of `token`.
pub fn hash(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = String::with_capacity(71);
    out.push_str("sha256:");
    for byte in digest.as_ref() {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// Whether `text` matches a glob of `*` (any run) and `?` (one character).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Who a request is, and what they may do.
#[derive(Clone, PartialEq)]
pub struct Grant {
    /// The token's name (the history actor); `anonymous` for `--anonymous-read`.
    pub name: String,
    /// The roles.
    pub roles: Vec<Role>,
    /// The namespaces glob.
    pub namespaces: String,
    /// The backends glob.
    pub backends: String,
}

impl fmt::Debug for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Grant({} {:?} ns={} backends={})", self.name, self.roles, self.namespaces, self.backends)
    }
}

impl Grant {
    /// What `--anonymous-read` gives a request without a token: read, everywhere.
    pub fn anonymous() -> Grant {
        Grant { name: "anonymous".into(), roles: vec![Role::Read], namespaces: everything(), backends: everything() }
    }

    fn from_record(record: &TokenRecord) -> Grant {
        Grant {
            name: record.name.clone(),
            roles: record.roles.clone(),
            namespaces: record.namespaces.clone(),
            backends: record.backends.clone(),
        }
    }

    /// Whether it has `role` (every role reads; admin writes).
    pub fn has(&self, role: Role) -> bool {
        match role {
            Role::Read => !self.roles.is_empty(),
            Role::Write => self.roles.iter().any(|r| matches!(r, Role::Write | Role::Admin)),
            other => self.roles.contains(&other),
        }
    }

    /// Whether it may touch `backend` at all.
    pub fn sees_backend(&self, backend: &str) -> bool {
        glob_match(&self.backends, backend)
    }

    /// Whether it may touch `namespace` of `backend` at all.
    pub fn sees(&self, backend: &str, namespace: &str) -> bool {
        self.sees_backend(backend) && glob_match(&self.namespaces, namespace)
    }

    /// `Ok` if it has `role` on `namespace` of `backend` (or on the backend, for `None`); a
    /// 403 problem saying what is missing otherwise.
    pub fn require(&self, role: Role, backend: &str, namespace: Option<&str>) -> Result<(), Problem> {
        let place_ok = match namespace {
            Some(ns) => self.sees(backend, ns),
            None => self.sees_backend(backend),
        };
        if place_ok && self.has(role) {
            return Ok(());
        }
        let place = match namespace {
            Some(ns) => format!("namespace {ns:?} of backend {backend:?}"),
            None => format!("backend {backend:?}"),
        };
        Err(Problem::forbidden(format!("token {:?} may not {} {place}", self.name, role.verb())))
    }
}

impl Role {
    fn verb(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write to",
            Role::Admin => "administer",
            Role::Reveal => "reveal secrets of",
        }
    }
}

/// The tokens a server accepts: the file, read again when it changes (checked at most once a
/// second), so `confo token rm` takes effect on a running server.
#[derive(Debug)]
pub struct Tokens {
    path: PathBuf,
    state: Mutex<TokensState>,
}

#[derive(Debug)]
struct TokensState {
    by_hash: HashMap<String, TokenRecord>,
    modified: Option<SystemTime>,
    checked: Instant,
}

impl Tokens {
    /// Reads the tokens file at `path` (it must exist and parse).
    pub fn open(path: &Path) -> Result<Tokens, String> {
        if !path.exists() {
            return Err(format!(
                "no tokens file at {}; make a token first: confo token add NAME --role read --tokens {}",
                path.display(),
                path.display()
            ));
        }
        let tokens = Tokens {
            path: path.to_owned(),
            state: Mutex::new(TokensState { by_hash: HashMap::new(), modified: None, checked: Instant::now() }),
        };
        tokens.reload(true)?;
        Ok(tokens)
    }

    fn reload(&self, force: bool) -> Result<(), String> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !force && state.checked.elapsed() < Duration::from_secs(1) {
            return Ok(());
        }
        state.checked = Instant::now();
        let modified = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        if !force && modified == state.modified {
            return Ok(());
        }
        let file = TokenFile::load(&self.path)?;
        state.by_hash = file.tokens.into_iter().map(|t| (t.hash.clone(), t)).collect();
        state.modified = modified;
        Ok(())
    }

    /// The grant of a presented token; `None` for an unknown one.
    pub fn check(&self, token: &str) -> Option<Grant> {
        if let Err(e) = self.reload(false) {
            // Keep the tokens last read; say why the new file is not used.
            tracing::warn!("tokens file not reloaded: {e}");
        }
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.by_hash.get(&hash(token)).map(Grant::from_record)
    }

    /// Whether a token of this name is still accepted (an event stream lasts while its token
    /// does).
    pub fn has_name(&self, name: &str) -> bool {
        let _ = self.reload(false);
        self.state.lock().unwrap_or_else(|e| e.into_inner()).by_hash.values().any(|t| t.name == name)
    }

    /// Whether a token with this hash is still accepted (a console session lasts while its
    /// token does).
    pub fn has_hash(&self, hash: &str) -> bool {
        let _ = self.reload(false);
        self.state.lock().unwrap_or_else(|e| e.into_inner()).by_hash.contains_key(hash)
    }
}

/// Console sessions: a random id in an HttpOnly cookie, mapped here to the grant it logged in
/// with. Sessions last 12 hours and end with the process.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, (Grant, String, Instant)>>,
}

/// How long a console session lasts.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

impl Sessions {
    /// Starts a session for `grant` logged in with `token`; returns its id.
    pub fn start(&self, grant: Grant, token: &str) -> Result<String, String> {
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random::<32>()?);
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, (_, _, at)| at.elapsed() < SESSION_LIFETIME);
        map.insert(id.clone(), (grant, hash(token), Instant::now()));
        Ok(id)
    }

    /// The session's grant and token hash, if it is live.
    pub fn get(&self, id: &str) -> Option<(Grant, String)> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(id).filter(|(_, _, at)| at.elapsed() < SESSION_LIFETIME).map(|(g, h, _)| (g.clone(), h.clone()))
    }

    /// Ends a session.
    pub fn end(&self, id: &str) {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }
}

/// Failed logins (and requests with an unknown token) per client address: after
/// [`FAILURES_ALLOWED`] in a minute, that address is refused (429) until the minute is over.
#[derive(Debug, Default)]
pub struct Limiter {
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

/// Failed attempts an address may make per minute.
pub const FAILURES_ALLOWED: u32 = 10;

impl Limiter {
    /// `Some(seconds to wait)` if `ip` is refused now.
    pub fn blocked(&self, ip: IpAddr) -> Option<u64> {
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(&ip) {
            Some((count, since)) if *count >= FAILURES_ALLOWED && since.elapsed() < Duration::from_secs(60) => {
                Some(60 - since.elapsed().as_secs())
            }
            _ => None,
        }
    }

    /// Counts a failure from `ip`.
    pub fn fail(&self, ip: IpAddr) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, (_, since)| since.elapsed() < Duration::from_secs(60));
        }
        let entry = map.entry(ip).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= Duration::from_secs(60) {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_runs_and_single_characters() {
        assert!(glob_match("*", "sales"));
        assert!(glob_match("sales-*", "sales-eu"));
        assert!(!glob_match("sales-*", "sale"));
        assert!(glob_match("s?les", "sales"));
        assert!(glob_match("*-eu", "sales-eu"));
        assert!(!glob_match("*-eu", "sales-us"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
    }

    #[test]
    fn roles_imply_reading_and_admin_implies_writing() {
        let grant = |roles: &str| Grant {
            name: "t".into(),
            roles: Role::parse_list(roles).expect("roles"),
            namespaces: "sales*".into(),
            backends: "*".into(),
        };
        assert!(grant("reveal").has(Role::Read));
        assert!(!grant("reveal").has(Role::Write));
        assert!(grant("admin").has(Role::Write));
        assert!(!grant("write").has(Role::Admin));
        assert!(grant("write").require(Role::Write, "main", Some("sales")).is_ok());
        assert_eq!(grant("write").require(Role::Write, "main", Some("hr")).expect_err("403").status.as_u16(), 403);
        assert!(Role::parse_list("read,bogus").is_err());
        assert!(Role::parse_list("").is_err());
    }

    #[test]
    fn a_token_file_keeps_hashes_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokens.json");
        let mut file = TokenFile::default();
        let token = file.add("ci", vec![Role::Read], "*", "*").expect("add");
        assert!(file.add("ci", vec![Role::Read], "*", "*").is_err(), "a name is used once");
        file.save(&path).expect("save");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(!text.contains(&token), "the token is not stored in the clear");
        assert!(text.contains(&hash(&token)));
        let tokens = Tokens::open(&path).expect("open");
        assert_eq!(tokens.check(&token).expect("known").name, "ci");
        assert!(tokens.check("confo_wrong").is_none());
    }
}

/// How many event streams a server holds open: in all, per token and per anonymous address, so
/// that streams (each holds a connection for as long as it lasts) never take the capacity that
/// ordinary requests need.
#[derive(Debug, Default)]
pub struct Streams {
    counts: Mutex<StreamCounts>,
}

#[derive(Debug, Default)]
struct StreamCounts {
    total: usize,
    by_token: HashMap<String, usize>,
    by_address: HashMap<IpAddr, usize>,
}

/// Who a stream is counted against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamOwner {
    /// A token, by name (Bearer or the console's session).
    Token(String),
    /// An anonymous reader, by address.
    Address(IpAddr),
}

/// Event streams one token may hold open at once, by default (`--streams-per-token`).
pub const STREAMS_PER_TOKEN: usize = 16;
/// Event streams one anonymous address may hold open at once, by default.
pub const STREAMS_PER_ADDRESS: usize = 4;

/// The limits [`Streams::open`] enforces.
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    /// In all.
    pub max: usize,
    /// Per token.
    pub per_token: usize,
    /// Per anonymous address.
    pub per_address: usize,
}

impl Streams {
    /// Counts one more stream of `owner`, or says which limit it would pass.
    pub fn open(&self, owner: &StreamOwner, limits: StreamLimits) -> Result<(), String> {
        let max = limits.max;
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.total >= max {
            return Err(format!("the server holds its limit of {max} event streams (--max-streams)"));
        }
        let (held, limit, whose) = match owner {
            StreamOwner::Token(name) => {
                (counts.by_token.get(name).copied().unwrap_or(0), limits.per_token, "this token")
            }
            StreamOwner::Address(ip) => {
                (counts.by_address.get(ip).copied().unwrap_or(0), limits.per_address, "an anonymous address")
            }
        };
        if held >= limit {
            return Err(format!("{whose} holds its limit of {limit} event streams; close one first"));
        }
        counts.total += 1;
        match owner {
            StreamOwner::Token(name) => *counts.by_token.entry(name.clone()).or_default() += 1,
            StreamOwner::Address(ip) => *counts.by_address.entry(*ip).or_default() += 1,
        }
        Ok(())
    }

    /// Counts one stream of `owner` less (it ended).
    pub fn close(&self, owner: &StreamOwner) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.total = counts.total.saturating_sub(1);
        match owner {
            StreamOwner::Token(name) => {
                if let Some(n) = counts.by_token.get_mut(name) {
                    *n -= 1;
                    if *n == 0 {
                        counts.by_token.remove(name);
                    }
                }
            }
            StreamOwner::Address(ip) => {
                if let Some(n) = counts.by_address.get_mut(ip) {
                    *n -= 1;
                    if *n == 0 {
                        counts.by_address.remove(ip);
                    }
                }
            }
        }
    }

    /// How many streams are open.
    pub fn open_now(&self) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}
