//! The one public error type of the crate.
//!
//! Every failure is a variant a caller can act on. Messages name the backend and the location
//! (`file Configurations/sales/database.json:3:7`), never a password.

use std::fmt;

use crate::model::name::{NameKind, NameRule};

/// `Result` with confo's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What is wrong with the part of a backend spec that [`Error::InvalidSpec`] names: callers
/// branch on this, never on the message (Python raises `KeyError` for [`SpecProblem::Missing`],
/// lenient credentials leave out what is [`SpecProblem::Unknown`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpecProblem {
    /// A key or URL part the engine needs is not given (or needs another that is not).
    Missing,
    /// A key the engine does not know (a typo, or another engine's key).
    Unknown,
    /// A path that must be a folder is something else (a file).
    NotAFolder,
    /// A value given that cannot be used.
    Invalid,
}

/// What an outage was, as far as confo can tell ([`Error::Unavailable`]): callers branch on
/// it (to retry, to settle a write whose answer was lost), never on the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outage {
    /// Nothing accepted the connection (it was refused): nothing of the request reached the
    /// store, so a write's outcome is known (not written), and sending it again is safe.
    NotReached,
    /// The address answered, but not as this engine (another protocol, TLS on one side only):
    /// trying again cannot help.
    Mismatch,
    /// Anything else (a lost connection, no answer in time, too few replicas): a write's
    /// outcome may be unknown; trying again later may help.
    Other,
}

/// What kind of thing was not found (or already exists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Missing {
    /// A named backend of the manager.
    Backend,
    /// A namespace.
    Namespace,
    /// A configuration in a namespace.
    Configuration,
    /// A field of a configuration.
    Field,
    /// The store itself (a file backend's `config_path`).
    Store,
    /// A file a spec names (a `tls_ca` certificate).
    File,
    /// A key of the secrets keyring.
    Key,
    /// A revision of a configuration's history.
    Revision,
    /// A configuration's history (none kept: history is switched off for the backend).
    History,
    /// A namespace's (or a configuration's) schema.
    Schema,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Missing::Backend => "backend",
            Missing::Namespace => "namespace",
            Missing::Configuration => "configuration",
            Missing::Field => "field",
            Missing::Store => "store",
            Missing::File => "file",
            Missing::Key => "key",
            Missing::Schema => "schema",
            Missing::Revision => "revision",
            Missing::History => "history",
        })
    }
}

/// What kind of failure an [`Error`] is: one flat classification that every edge maps once
/// (the CLI's exit codes, the Python exception classes, an HTTP status), with a stable name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// [`Error::InvalidName`].
    InvalidName,
    /// [`Error::InvalidSpec`].
    InvalidSpec,
    /// [`Error::InvalidValue`].
    InvalidValue,
    /// [`Error::NotFound`].
    NotFound,
    /// [`Error::AlreadyExists`].
    AlreadyExists,
    /// [`Error::NotEmpty`].
    NotEmpty,
    /// [`Error::NoActiveBackend`].
    NoActiveBackend,
    /// [`Error::NoNamespaceSelected`].
    NoNamespaceSelected,
    /// [`Error::Corrupt`].
    Corrupt,
    /// [`Error::Conflict`].
    Conflict,
    /// [`Error::TooLarge`].
    TooLarge,
    /// [`Error::Unavailable`].
    Unavailable,
    /// [`Error::Unauthorized`].
    Unauthorized,
    /// [`Error::Insecure`].
    Insecure,
    /// [`Error::Io`].
    Io,
    /// [`Error::PersistIncomplete`] (its cause has a kind of its own: [`Error::cause`]).
    PersistIncomplete,
    /// [`Error::Secret`].
    Secret,
    /// [`Error::SchemaViolation`].
    SchemaViolation,
}

impl ErrorKind {
    /// A stable snake_case name (`not_found`, `conflict`, …), for logs, bindings and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidName => "invalid_name",
            ErrorKind::InvalidSpec => "invalid_spec",
            ErrorKind::InvalidValue => "invalid_value",
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::NotEmpty => "not_empty",
            ErrorKind::NoActiveBackend => "no_active_backend",
            ErrorKind::NoNamespaceSelected => "no_namespace_selected",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Conflict => "conflict",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Insecure => "insecure",
            ErrorKind::Io => "io",
            ErrorKind::PersistIncomplete => "persist_incomplete",
            ErrorKind::Secret => "secret",
            ErrorKind::SchemaViolation => "schema_violation",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One unreadable stored item: where it is and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    /// Where it is, with line and column when known (`file Configurations/sales/db.json:3:7`).
    pub location: String,
    /// What is wrong (`expected value`, `top level is an array, not an object`).
    pub problem: String,
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.problem)
    }
}

/// Which configuration: its namespace and its name. Shown as `namespace/configuration`, and
/// compares equal to that text (`id == "sales/database"`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConfigId {
    /// The namespace.
    pub namespace: String,
    /// The configuration's name.
    pub name: String,
}

impl ConfigId {
    /// The configuration `name` of `namespace`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ConfigId { namespace: namespace.into(), name: name.into() }
    }
}

impl fmt::Display for ConfigId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl fmt::Debug for ConfigId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

impl PartialEq<str> for ConfigId {
    fn eq(&self, other: &str) -> bool {
        other.split_once('/') == Some((self.namespace.as_str(), self.name.as_str()))
    }
}

impl PartialEq<String> for ConfigId {
    fn eq(&self, other: &String) -> bool {
        *self == **other
    }
}

impl PartialEq<&str> for ConfigId {
    fn eq(&self, other: &&str) -> bool {
        *self == **other
    }
}

/// The former name of [`ConfigId`].
pub type ConfigRef = ConfigId;

/// A store driver's own error, kept as the [`std::error::Error::source`] of an [`Error`]. Its
/// `Debug` shows only its message, so nothing a driver carries (request metadata) is printed.
pub struct DriverError(Box<dyn std::error::Error + Send + Sync + 'static>);

impl DriverError {
    /// Wraps a driver's error.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        DriverError(Box::new(error))
    }

    /// The driver's error, to downcast (`redis::RedisError`, `zookeeper_client::Error`, …).
    pub fn get_ref(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DriverError({})", self.0)
    }
}

impl std::error::Error for DriverError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Every error confo returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A namespace, configuration or field name breaks a rule; nothing was written.
    #[error("invalid {kind} name {name:?}: {rule}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// What the name was for.
        kind: NameKind,
        /// The rule it breaks.
        rule: NameRule,
    },

    /// A backend spec or credentials dictionary cannot be used.
    #[error("invalid backend spec{}: {message}", key.as_ref().map(|k| format!(" (key {k:?})")).unwrap_or_default())]
    InvalidSpec {
        /// The credentials key or URL part at fault, when there is one.
        key: Option<String>,
        /// What is wrong with it, for callers to branch on.
        problem: SpecProblem,
        /// What is wrong and how to fix it, in words. Never contains a secret.
        message: String,
    },

    /// A value cannot be used where it was given (for example a configuration that is not a
    /// JSON object, or a stored value that does not deserialize into the requested type).
    #[error("invalid value for {location}: {message}")]
    InvalidValue {
        /// What the value was for.
        location: String,
        /// What is wrong.
        message: String,
    },

    /// A named thing does not exist.
    #[error("{what} {name:?} not found{}", in_where(location))]
    NotFound {
        /// What kind of thing.
        what: Missing,
        /// Its name (for a field: `configuration.field`).
        name: String,
        /// Where it was looked for (`file Configurations`, `namespace sales`).
        location: String,
    },

    /// A thing that must not exist yet does.
    #[error("{what} {name:?} already exists{}", in_where(location))]
    AlreadyExists {
        /// What kind of thing.
        what: Missing,
        /// Its name.
        name: String,
        /// Where.
        location: String,
    },

    /// A namespace still holds configurations and the removal was not forced.
    #[error("namespace {namespace:?} holds {count} configuration(s); remove them first or force the removal")]
    NotEmpty {
        /// The namespace.
        namespace: String,
        /// How many configurations it holds.
        count: usize,
    },

    /// The manager has no active backend.
    #[error("no active backend: load one, or activate one of the loaded backends")]
    NoActiveBackend,

    /// The active backend has no current namespace.
    #[error("no namespace selected on backend {backend:?}: call use_namespace first")]
    NoNamespaceSelected {
        /// The active backend's name.
        backend: String,
    },

    /// Stored data cannot be read as a configuration. Every bad item of one read is listed.
    #[error("corrupt data: {}", list(corruptions))]
    Corrupt {
        /// Each bad item, with its location.
        corruptions: Vec<Corruption>,
    },

    /// A stored configuration is not at the version the writer expected: someone else
    /// changed, created or deleted it meanwhile.
    #[error("conflict on {location}: it changed in the store since it was read")]
    Conflict {
        /// The configuration (`file Configurations/sales/database.json`).
        location: String,
        /// Which configuration, when one is to blame (not for a batch refused as a whole).
        config: Option<ConfigId>,
    },

    /// A value is larger than the backend accepts.
    #[error("{location} is too large: {size} bytes, the limit is {limit}")]
    TooLarge {
        /// What was refused.
        location: String,
        /// Its size in bytes.
        size: usize,
        /// The backend's limit in bytes.
        limit: usize,
    },

    /// The store cannot be reached or did not answer in time.
    #[error("{backend} is unavailable: {message}")]
    Unavailable {
        /// The backend (`redis 127.0.0.1:6379`), without credentials.
        backend: String,
        /// What happened.
        message: String,
        /// What kind of outage it was, for callers to branch on.
        outage: Outage,
        /// The driver's own error, when there is one.
        #[source]
        source: Option<DriverError>,
    },

    /// The store refused the credentials or the operation.
    #[error("{backend} refused access: {message}")]
    Unauthorized {
        /// The backend, without credentials.
        backend: String,
        /// What the store said.
        message: String,
        /// The driver's own error, when there is one.
        #[source]
        source: Option<DriverError>,
    },

    /// The store holds something confo refuses to trust: a ZooKeeper node that others may
    /// change, a file link that leaves the store's folder. Nothing was read from it or written
    /// to it.
    #[error("{location} is not trusted: {message}")]
    Insecure {
        /// What was refused (`zookeeper 127.0.0.1:2181 znode /confo/payments`).
        location: String,
        /// Why, and how to fix it.
        message: String,
    },

    /// A secret cannot be sealed or opened (no key, the wrong key, a changed or moved
    /// ciphertext, a malformed sealed value, a bad keyring). Names the configuration and the
    /// field, never a value.
    #[error("secret {location}: {message}")]
    Secret {
        /// Where (`sales/db field /password`, `keyring /path`).
        location: String,
        /// What is wrong and what to do.
        message: String,
    },

    /// A write was refused because configurations break their namespace's schema (mode
    /// `enforce`); nothing of the batch was written. Lists every violation.
    #[error("{} schema violation{}: {}", violations.len(), if violations.len() == 1 { "" } else { "s" }, violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    SchemaViolation {
        /// Every violation of every configuration of the batch.
        violations: Vec<Violation>,
    },

    /// An I/O error at a location.
    #[error("{location}: {source}")]
    Io {
        /// Where (`file Configurations/sales`).
        location: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A persist (or import, or copy) failed part-way. What was written is stored; what was not
    /// stays staged. When the connection broke mid-write and the store could not be read back,
    /// the changes whose outcome is unknown are listed apart.
    #[error(
        "persist incomplete: written [{}], not written [{}]{}: {source}",
        join(written),
        join(unwritten),
        if unknown.is_empty() { String::new() } else { format!(", outcome unknown (the connection broke after sending; read them back) [{}]", join(unknown)) }
    )]
    PersistIncomplete {
        /// Configurations (`namespace/configuration`) that were written or deleted.
        written: Vec<ConfigRef>,
        /// Configurations that were not, and are still staged.
        unwritten: Vec<ConfigRef>,
        /// Configurations that may or may not have been written: the store could not be read
        /// back after the connection broke. They stay staged.
        unknown: Vec<ConfigRef>,
        /// Why it stopped.
        #[source]
        source: Box<Error>,
    },
}

fn in_where(location: &str) -> String {
    if location.is_empty() {
        String::new()
    } else {
        format!(" in {location}")
    }
}

fn join(ids: &[ConfigId]) -> String {
    ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

fn list(corruptions: &[Corruption]) -> String {
    corruptions.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

impl Error {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidName { .. } => ErrorKind::InvalidName,
            Error::InvalidSpec { .. } => ErrorKind::InvalidSpec,
            Error::InvalidValue { .. } => ErrorKind::InvalidValue,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            Error::NotEmpty { .. } => ErrorKind::NotEmpty,
            Error::NoActiveBackend => ErrorKind::NoActiveBackend,
            Error::NoNamespaceSelected { .. } => ErrorKind::NoNamespaceSelected,
            Error::Corrupt { .. } => ErrorKind::Corrupt,
            Error::Conflict { .. } => ErrorKind::Conflict,
            Error::TooLarge { .. } => ErrorKind::TooLarge,
            Error::Unavailable { .. } => ErrorKind::Unavailable,
            Error::Unauthorized { .. } => ErrorKind::Unauthorized,
            Error::Insecure { .. } => ErrorKind::Insecure,
            Error::Io { .. } => ErrorKind::Io,
            Error::PersistIncomplete { .. } => ErrorKind::PersistIncomplete,
            Error::Secret { .. } => ErrorKind::Secret,
            Error::SchemaViolation { .. } => ErrorKind::SchemaViolation,
        }
    }

    /// The error that stopped things: for [`Error::PersistIncomplete`] its cause, else itself.
    pub fn cause(&self) -> &Error {
        match self {
            Error::PersistIncomplete { source, .. } => source.cause(),
            other => other,
        }
    }

    /// True for [`Error::NotFound`] (of any kind of thing).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// True for [`Error::Conflict`], also when it stopped a persist part-way.
    pub fn is_conflict(&self) -> bool {
        self.cause().kind() == ErrorKind::Conflict
    }

    /// True for [`Error::Unavailable`], also when it stopped a persist part-way.
    pub fn is_unavailable(&self) -> bool {
        self.cause().kind() == ErrorKind::Unavailable
    }

    /// True when the same call may succeed if made again later, unchanged: the store was
    /// unavailable (also when that stopped a persist part-way), other than by answering as
    /// something else ([`Outage::Mismatch`]).
    pub fn is_retryable(&self) -> bool {
        matches!(self.cause(), Error::Unavailable { outage, .. } if *outage != Outage::Mismatch)
    }

    /// True when the store could not even be connected to (a refused connection): nothing of
    /// the request reached it, so its outcome is known.
    pub(crate) fn never_reached_the_store(&self) -> bool {
        matches!(self, Error::Unavailable { outage: Outage::NotReached, .. })
    }

    pub(crate) fn unavailable(backend: impl Into<String>, message: impl Into<String>) -> Self {
        Error::outage(Outage::Other, backend, message)
    }

    /// [`Error::Unavailable`] with its [`Outage`].
    pub(crate) fn outage(outage: Outage, backend: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Unavailable { backend: backend.into(), message: message.into(), outage, source: None }
    }

    #[cfg_attr(not(feature = "net"), allow(dead_code))]
    pub(crate) fn unauthorized(backend: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Unauthorized { backend: backend.into(), message: message.into(), source: None }
    }

    /// This error with a driver's error as its source (for [`Error::Unavailable`] and
    /// [`Error::Unauthorized`]; others are returned as they are).
    pub(crate) fn caused_by(mut self, error: impl std::error::Error + Send + Sync + 'static) -> Self {
        if let Error::Unavailable { source, .. } | Error::Unauthorized { source, .. } = &mut self {
            *source = Some(DriverError::new(error));
        }
        self
    }

    pub(crate) fn conflict(location: impl Into<String>, config: Option<ConfigId>) -> Self {
        Error::Conflict { location: location.into(), config }
    }

    pub(crate) fn not_found(what: Missing, name: impl Into<String>, location: impl Into<String>) -> Self {
        Error::NotFound { what, name: name.into(), location: location.into() }
    }

    pub(crate) fn spec(key: Option<&str>, message: impl Into<String>) -> Self {
        Error::spec_problem(SpecProblem::Invalid, key, message)
    }

    /// [`Error::InvalidSpec`] with its [`SpecProblem`].
    pub(crate) fn spec_problem(problem: SpecProblem, key: Option<&str>, message: impl Into<String>) -> Self {
        Error::InvalidSpec { key: key.map(str::to_owned), problem, message: message.into() }
    }

    pub(crate) fn io(location: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { location: location.into(), source }
    }
}

/// One way a configuration breaks its schema. Serialises as `{"namespace", "configuration",
/// "pointer", "message"}` (the CLI's `--output json`, Python's `violations`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    /// The namespace.
    pub namespace: String,
    /// The configuration.
    pub configuration: String,
    /// Where in it, as a JSON pointer (`/port`; empty for the whole configuration).
    pub pointer: String,
    /// The rule broken (`70000 is greater than the maximum of 65535`).
    pub message: String,
}

impl fmt::Display for Violation {
    /// `sales/database: /port: 70000 is greater than the maximum of 65535`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}: ", self.namespace, self.configuration)?;
        if !self.pointer.is_empty() {
            write!(f, "{}: ", self.pointer)?;
        }
        f.write_str(&self.message)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The key an [`Error::InvalidSpec`] names (a test fails on any other error).
    pub(crate) fn spec_key(err: Error) -> Option<String> {
        match err {
            Error::InvalidSpec { key, .. } => key,
            other => panic!("expected InvalidSpec, got {other:?}"),
        }
    }

    #[test]
    fn kinds_have_stable_distinct_names_and_causes_are_followed() {
        let conflict = Error::conflict("x", None);
        let partial = Error::PersistIncomplete {
            written: vec![ConfigId::new("a", "b")],
            unwritten: Vec::new(),
            unknown: Vec::new(),
            source: Box::new(Error::conflict("a/c", Some(ConfigId::new("a", "c")))),
        };
        assert_eq!((conflict.kind().as_str(), partial.kind().as_str()), ("conflict", "persist_incomplete"));
        assert_eq!(partial.cause().kind(), ErrorKind::Conflict);
        assert!(partial.is_conflict() && !partial.is_unavailable());
        let all = [
            ErrorKind::InvalidName,
            ErrorKind::InvalidSpec,
            ErrorKind::InvalidValue,
            ErrorKind::NotFound,
            ErrorKind::AlreadyExists,
            ErrorKind::NotEmpty,
            ErrorKind::NoActiveBackend,
            ErrorKind::NoNamespaceSelected,
            ErrorKind::Corrupt,
            ErrorKind::Conflict,
            ErrorKind::TooLarge,
            ErrorKind::Unavailable,
            ErrorKind::Unauthorized,
            ErrorKind::Insecure,
            ErrorKind::Io,
            ErrorKind::PersistIncomplete,
            ErrorKind::Secret,
        ];
        let names: std::collections::HashSet<&str> = all.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), all.len());
    }
}
