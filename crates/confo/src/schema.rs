//! Schemas: a JSON Schema per namespace (and optionally per configuration), checked before
//! anything is written.
//!
//! A namespace's [`Schemas`] hold a default schema for every configuration, schemas for named
//! configurations (which replace the default for them), and a [`Mode`]: `enforce` refuses a
//! write that breaks them ([`Error::SchemaViolation`] listing every [`Violation`], nothing of
//! the batch written), `warn` writes and reports (a warning in the log, and
//! [`WriteReport::warnings`](crate::model::change::WriteReport)), `off` keeps them without checking.
//! Loading never fails because of a schema: data written by others (a raw client, Python
//! confo) is checked with [`crate::store::Store::validate`].
//!
//! Schemas are JSON Schema drafts 7 and 2020-12 (the `$schema` keyword picks; 2020-12 when
//! absent), compiled by the `jsonschema` crate without its network and file features: a
//! `$ref` to anything outside the schema is refused when the schema is set. Compiled schemas
//! are cached by their text, so a batch of 10,000 configurations compiles each schema once.
//!
//! # Storage
//!
//! One document per namespace, outside confo's layout so old readers never see it: Redis key
//! `confo-schema:<ns>`, ZooKeeper znode and etcd key `/confo-schemas/<ns>`, for files
//! `.<root>.confo/schemas/<ns>.json` beside the root. The document holds the schemas and
//! their revisions (who, when, why, the schemas after), so a schema change and its history
//! are one atomic single-key write on every engine, under a precondition on the document's
//! version (concurrent schema edits never lose one another). Revisions are numbered like a
//! configuration's history and kept (the newest [`REVISIONS_KEPT`], at most
//! [`DOCUMENT_BYTES`] of document) unless the backend's history is off. One schema may be up to
//! [`SCHEMA_BYTES`].
//!
//! The check reads the namespace's schema document before each batch (one small read; none
//! is compiled twice). It is not in the same transaction as the write: a schema set while a
//! batch is being written may let that batch through, and [`crate::store::Store::validate`] finds it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::backend::Backend;
use crate::model::change::{Change, ChangeKind};
use crate::model::error::{Error, Result, Violation};
use crate::model::history::{Author, History, Operation, Record};
use crate::model::version::Configuration;

/// How a namespace's schemas are applied to writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Kept, not checked.
    Off,
    /// Writes go through; violations are reported.
    Warn,
    /// A write with a violation is refused whole.
    #[default]
    Enforce,
}

impl Mode {
    /// `off`, `warn` or `enforce`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Warn => "warn",
            Mode::Enforce => "enforce",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Mode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "off" => Ok(Mode::Off),
            "warn" => Ok(Mode::Warn),
            "enforce" => Ok(Mode::Enforce),
            other => Err(Error::InvalidValue {
                location: "schema mode".into(),
                message: format!("{other:?} is not a mode (off, warn or enforce)"),
            }),
        }
    }
}

/// A namespace's schemas.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Schemas {
    /// How they are applied.
    pub mode: Mode,
    /// The schema of every configuration that has none of its own.
    pub default: Option<Value>,
    /// Schemas of named configurations (replacing the default for them).
    pub configurations: BTreeMap<String, Value>,
}

impl Schemas {
    /// As one JSON object: `{"mode": …, "default": …, "configurations": {…}}`.
    pub fn to_json(&self) -> Configuration {
        let mut map = Map::new();
        map.insert("mode".into(), Value::from(self.mode.as_str()));
        map.insert("default".into(), self.default.clone().unwrap_or(Value::Null));
        let configs = self.configurations.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        map.insert("configurations".into(), Value::Object(configs));
        map
    }

    /// Reads [`Schemas::to_json`]'s object; `location` names it in the error.
    pub fn from_json(value: &Configuration, location: &str) -> Result<Self> {
        let bad = |message: String| Error::InvalidValue { location: location.to_owned(), message };
        let mode = match value.get("mode") {
            None | Some(Value::Null) => Mode::default(),
            Some(Value::String(s)) => s.parse()?,
            Some(_) => return Err(bad("\"mode\" is not a string".into())),
        };
        let default = match value.get("default") {
            None | Some(Value::Null) => None,
            Some(schema) => Some(schema.clone()),
        };
        let configurations = match value.get("configurations") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Some(_) => return Err(bad("\"configurations\" is not an object".into())),
        };
        Ok(Schemas { mode, default, configurations })
    }

    /// Refuses a schema larger than [`SCHEMA_BYTES`] ([`Error::TooLarge`], naming it).
    pub fn check_sizes(&self, namespace: &str) -> Result<()> {
        let named = self.default.iter().map(|s| (None, s)).chain(self.configurations.iter().map(|(c, s)| (Some(c), s)));
        for (config, schema) in named {
            let size = serde_json::to_vec(schema).map_or(usize::MAX, |b| b.len());
            if size > SCHEMA_BYTES {
                let location = match config {
                    Some(c) => format!("schema of {namespace}/{c}"),
                    None => format!("schema of namespace {namespace}"),
                };
                return Err(Error::TooLarge { location, size, limit: SCHEMA_BYTES });
            }
        }
        Ok(())
    }

    /// Compiles every schema (each once, cached process-wide by its text), refusing one that
    /// is not valid JSON Schema or refers outside itself.
    pub fn compile(&self, namespace: &str) -> Result<Compiled> {
        let default = match &self.default {
            Some(schema) => Some(validator(schema, namespace, None)?),
            None => None,
        };
        let mut configurations = HashMap::with_capacity(self.configurations.len());
        for (name, schema) in &self.configurations {
            configurations.insert(name.clone(), validator(schema, namespace, Some(name))?);
        }
        Ok(Compiled { mode: self.mode, namespace: namespace.to_owned(), default, configurations })
    }
}

/// A namespace's schemas, compiled.
#[derive(Clone)]
pub struct Compiled {
    mode: Mode,
    namespace: String,
    default: Option<Arc<jsonschema::Validator>>,
    configurations: HashMap<String, Arc<jsonschema::Validator>>,
}

impl fmt::Debug for Compiled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compiled")
            .field("mode", &self.mode)
            .field("namespace", &self.namespace)
            .field("default", &self.default.is_some())
            .field("configurations", &self.configurations.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Compiled {
    /// How they are applied.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Every violation of `value` as configuration `config` (whatever the mode).
    pub fn check(&self, config: &str, value: &Configuration) -> Vec<Violation> {
        let Some(validator) = self.configurations.get(config).or(self.default.as_ref()) else {
            return Vec::new();
        };
        // The validator reads a `Value`; a configuration is its object.
        let instance = Value::Object(value.clone());
        validator
            .iter_errors(&instance)
            .map(|e| Violation {
                namespace: self.namespace.clone(),
                configuration: config.to_owned(),
                pointer: e.instance_path().to_string(),
                message: shorten(e.to_string()),
            })
            .collect()
    }
}

/// The longest rule text a violation keeps (a rule quoting a huge value, or naming 100,000
/// unexpected fields, would otherwise make an error of megabytes).
const MESSAGE_CHARS: usize = 300;

fn shorten(message: String) -> String {
    match message.char_indices().nth(MESSAGE_CHARS) {
        Some((at, _)) => format!("{}… ({} characters in all)", &message[..at], message.chars().count()),
        None => message,
    }
}

/// Compiled validators by their schema's compact text. Bounded: cleared when full.
/// (A lock a `fork()` waits for: see `crate::fork`.)
static COMPILED: std::sync::LazyLock<crate::fork::Mutex<HashMap<String, Arc<jsonschema::Validator>>>> =
    std::sync::LazyLock::new(Default::default);
const COMPILED_KEPT: usize = 256;

/// How many schemas are compiled in this process (each once, whatever the batches).
static COMPILATIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How many schemas this process has compiled (a cache hit compiles none): for tests and
/// benchmarks.
pub fn compilations() -> usize {
    COMPILATIONS.load(std::sync::atomic::Ordering::Relaxed)
}

fn validator(schema: &Value, namespace: &str, config: Option<&str>) -> Result<Arc<jsonschema::Validator>> {
    let location = match config {
        Some(c) => format!("schema of {namespace}/{c}"),
        None => format!("schema of namespace {namespace}"),
    };
    let bad = |message: String| Error::InvalidValue { location: location.clone(), message };
    if !matches!(schema, Value::Object(_) | Value::Bool(_)) {
        return Err(bad("a JSON Schema is an object (or true/false)".into()));
    }
    if crate::model::json::depth(schema) > crate::model::json::MAX_DEPTH {
        return Err(bad(format!("it nests more than {} levels deep", crate::model::json::MAX_DEPTH)));
    }
    let key = serde_json::to_string(schema).map_err(|e| bad(e.to_string()))?;
    let cache = || COMPILED.lock();
    if let Some(found) = cache().get(&key) {
        return Ok(found.clone());
    }
    let options = jsonschema::options().with_draft(draft_of(schema).map_err(bad)?);
    let compiled = options.build(schema).map_err(|e| bad(compile_problem(&e)))?;
    COMPILATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let compiled = Arc::new(compiled);
    let mut cache = cache();
    if cache.len() >= COMPILED_KEPT {
        cache.clear();
    }
    cache.insert(key, compiled.clone());
    Ok(compiled)
}

/// The draft a schema declares: 7 or 2020-12 (the default).
fn draft_of(schema: &Value) -> std::result::Result<jsonschema::Draft, String> {
    let Some(declared) = schema.get("$schema") else { return Ok(jsonschema::Draft::Draft202012) };
    let uri = declared.as_str().ok_or("\"$schema\" is not a string")?;
    let uri = uri.trim_end_matches('#').trim_start_matches("https://").trim_start_matches("http://");
    match uri {
        "json-schema.org/draft-07/schema" => Ok(jsonschema::Draft::Draft7),
        "json-schema.org/draft/2020-12/schema" => Ok(jsonschema::Draft::Draft202012),
        other => Err(format!(
            "\"$schema\" {other:?} is not a supported draft (http://json-schema.org/draft-07/schema# or \
             https://json-schema.org/draft/2020-12/schema)"
        )),
    }
}

/// A compile error in words: a reference outside the schema (one the validator would have to
/// retrieve) is named as refused.
fn compile_problem(error: &jsonschema::ValidationError<'_>) -> String {
    match error.kind() {
        jsonschema::error::ValidationErrorKind::Referencing(jsonschema::ReferencingError::Unretrievable {
            uri,
            ..
        }) => format!(
            "$ref {uri:?} points outside the schema: confo never fetches schemas (no network or file access); \
             put what it refers to under \"$defs\" and refer to \"#/$defs/…\""
        ),
        _ => format!("not a valid JSON Schema: {error}"),
    }
}

/// How many revisions of a namespace's schemas are kept (when history is on).
pub const REVISIONS_KEPT: usize = 100;
/// The largest schema (a namespace's default, or one configuration's), as compact JSON.
pub const SCHEMA_BYTES: usize = 256 * 1024;
/// The most a schema document may weigh, its revisions included (below ZooKeeper's 1 MiB
/// request limit, with room): older revisions are dropped to stay under it. The current
/// schemas and their newest revision (a copy of them) must fit.
pub const DOCUMENT_BYTES: usize = 900_000;

/// A namespace's schema document as stored: the schemas (none after a removal) and their
/// revisions as stored records, oldest first (decoded only when the history is asked for).
#[derive(Debug, Clone, Default)]
pub(crate) struct Document {
    pub schemas: Option<Schemas>,
    records: Vec<Value>,
    /// Names the document in errors.
    location: String,
}

/// The part of a schema document a write needs: its schemas, not its revisions (serde skips
/// those without building them).
#[derive(serde::Deserialize)]
struct Current {
    #[serde(default)]
    schemas: Option<Configuration>,
}

impl Document {
    pub(crate) fn decode(bytes: &[u8], location: &str) -> std::result::Result<Self, crate::model::error::Corruption> {
        let bad = |problem: String| crate::model::error::Corruption { location: location.to_owned(), problem };
        let mut map = crate::model::codec::parse_config(bytes)
            .map_err(|p| bad(format!("not a schema document: {}", crate::model::codec::describe_problem(p))))?;
        let schemas = schemas_of(map.get("schemas"), location)?;
        let records = match map.remove("revisions") {
            Some(Value::Array(records)) => records,
            _ => Vec::new(),
        };
        Ok(Document { schemas, records, location: location.to_owned() })
    }

    /// Only the schemas of a stored document (what every write checks against).
    pub(crate) fn decode_schemas(
        bytes: &[u8],
        location: &str,
    ) -> std::result::Result<Option<Schemas>, crate::model::error::Corruption> {
        let current: Current = serde_json::from_slice(bytes).map_err(|e| crate::model::error::Corruption {
            location: location.to_owned(),
            problem: format!("not a schema document: {e}"),
        })?;
        schemas_of(current.schemas.map(Value::Object).as_ref(), location)
    }

    /// The document after a change to `schemas` by `author` (recorded as a revision unless
    /// `keep` is 0), encoded.
    pub(crate) fn next(
        mut self,
        schemas: Option<Schemas>,
        author: &Author,
        restores: Option<u64>,
        keep: usize,
    ) -> Result<Vec<u8>> {
        let last = self.records.last().and_then(|r| r.get("n")).and_then(Value::as_u64);
        let number = last.unwrap_or(0) + 1;
        let operation = match (&schemas, &self.schemas, restores) {
            (None, _, _) => Operation::Delete,
            (Some(_), _, Some(_)) => Operation::Rollback,
            (Some(_), Some(_), None) => Operation::Change,
            (Some(_), None, None) => Operation::Create,
        };
        let value = schemas.as_ref().map(Schemas::to_json);
        let record = Record {
            number,
            operation,
            time: crate::model::history::now(),
            author,
            restores,
            before: last.map(|n| n.to_string()),
            after: Some(number.to_string()),
            value: value.as_ref(),
        };
        if keep > 0 {
            self.records.push(
                serde_json::from_slice(&record.encode()?)
                    .map_err(|e| Error::InvalidValue { location: "schema revision".into(), message: e.to_string() })?,
            );
        }
        let drop = self.records.len().saturating_sub(keep);
        self.records.drain(..drop);
        self.schemas = schemas;
        loop {
            let mut doc = Map::new();
            doc.insert("format".into(), Value::from(1));
            doc.insert("schemas".into(), self.schemas.as_ref().map_or(Value::Null, |s| Value::Object(s.to_json())));
            doc.insert("revisions".into(), Value::Array(self.records.clone()));
            let bytes = serde_json::to_vec(&Value::Object(doc))
                .map_err(|e| Error::InvalidValue { location: "schema document".into(), message: e.to_string() })?;
            if bytes.len() <= DOCUMENT_BYTES || self.records.len() <= 1 {
                if bytes.len() > DOCUMENT_BYTES && self.schemas.is_some() {
                    return Err(Error::TooLarge {
                        location: format!(
                            "{} (the namespace's schemas together, and their newest revision)",
                            self.location
                        ),
                        size: bytes.len(),
                        limit: DOCUMENT_BYTES,
                    });
                }
                return Ok(bytes);
            }
            self.records.remove(0);
        }
    }

    /// The revisions as a [`History`], newest first; a record that cannot be read is named
    /// apart, as in a configuration's history.
    pub(crate) fn history(&self) -> History {
        let mut history = History::default();
        for (i, record) in self.records.iter().enumerate().rev() {
            let location = || format!("{} revision #{}", self.location, i + 1);
            let decoded = match record {
                Value::Object(map) => crate::model::history::record_from_map(map.clone(), None, location),
                _ => Err(crate::model::error::Corruption { location: location(), problem: "not a record".into() }),
            };
            match decoded {
                Ok(revision) => history.revisions.push(revision),
                Err(corruption) => history.corrupt.push(corruption),
            }
        }
        history
    }
}

fn schemas_of(
    value: Option<&Value>,
    location: &str,
) -> std::result::Result<Option<Schemas>, crate::model::error::Corruption> {
    let bad = |problem: String| crate::model::error::Corruption { location: location.to_owned(), problem };
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(s)) => Schemas::from_json(s, location).map(Some).map_err(|e| bad(e.to_string())),
        Some(_) => Err(bad("\"schemas\" is not an object".into())),
    }
}

pub(crate) fn location_of<B: Backend + ?Sized>(backend: &B, namespace: &crate::model::name::NamespaceName) -> String {
    format!("{} schema document of {namespace}", backend.describe())
}

/// A namespace's schema document and its version; `None` if it has none.
pub(crate) async fn load<B: Backend + ?Sized>(
    backend: &B,
    namespace: &crate::model::name::NamespaceName,
) -> Result<Option<(Document, crate::model::version::Version)>> {
    let Some((bytes, version)) = backend.schema_document(namespace).await? else { return Ok(None) };
    let document = Document::decode(&bytes, &location_of(backend, namespace))
        .map_err(|c| Error::Corrupt { corruptions: vec![c] })?;
    Ok(Some((document, version)))
}

/// A namespace's schema document for a change: the document and its version, or, when what
/// is stored cannot be read as one (a corrupt document blocks only itself, never its own
/// repair), an empty document with the stored bytes' version (so the change replaces exactly
/// what was read) and what was wrong; `None` if it has none.
pub(crate) async fn load_for_change<B: Backend + ?Sized>(
    backend: &B,
    namespace: &crate::model::name::NamespaceName,
) -> Result<Option<(Document, crate::model::version::Version, Option<crate::model::error::Corruption>)>> {
    let Some((bytes, version)) = backend.schema_document(namespace).await? else { return Ok(None) };
    let location = location_of(backend, namespace);
    Ok(Some(match Document::decode(&bytes, &location) {
        Ok(document) => (document, version, None),
        Err(corruption) => (Document { location, ..Document::default() }, version, Some(corruption)),
    }))
}

/// A namespace's schemas, without reading their revisions; `None` if it has none.
pub(crate) async fn load_schemas<B: Backend + ?Sized>(
    backend: &B,
    namespace: &crate::model::name::NamespaceName,
) -> Result<Option<Schemas>> {
    let Some((bytes, _)) = backend.schema_document(namespace).await? else { return Ok(None) };
    Document::decode_schemas(&bytes, &location_of(backend, namespace))
        .map_err(|c| Error::Corrupt { corruptions: vec![c] })
}

/// The violations of a batch's puts under the namespace's schemas: `Err` with every one when
/// the mode is `enforce`, the list when it is `warn` (also logged), nothing when there are no
/// schemas or the mode is `off`. A schema document that cannot be read fails the batch (a
/// broken schema must not silently stop checking).
pub(crate) async fn check_batch<B: Backend + ?Sized>(
    backend: &B,
    namespace: &crate::model::name::NamespaceName,
    changes: &[Change],
) -> Result<Vec<Violation>> {
    if !changes.iter().any(|c| matches!(c.kind, ChangeKind::Put(_))) {
        return Ok(Vec::new());
    }
    let schemas = load_schemas(backend, namespace).await.map_err(|e| refusing_writes(e, namespace))?;
    check_with(schemas.as_ref(), namespace, changes)
}

/// A schema document that cannot be read, as the error of a write it refuses (fail closed, and
/// say how to mend it).
fn refusing_writes(error: Error, namespace: &str) -> Error {
    match error {
        Error::Corrupt { corruptions } => Error::Corrupt {
            corruptions: corruptions
                .into_iter()
                .map(|c| crate::model::error::Corruption {
                    problem: format!(
                        "{}; writes to namespace {namespace} are refused until it is replaced (confo schema set) \
                         or removed (confo schema rm)",
                        c.problem
                    ),
                    ..c
                })
                .collect(),
        },
        other => other,
    }
}

/// [`check_batch`] against schemas already at hand.
pub(crate) fn check_with(schemas: Option<&Schemas>, namespace: &str, changes: &[Change]) -> Result<Vec<Violation>> {
    let Some(schemas) = schemas else { return Ok(Vec::new()) };
    if schemas.mode == Mode::Off || !changes.iter().any(|c| matches!(c.kind, ChangeKind::Put(_))) {
        return Ok(Vec::new());
    }
    let compiled = schemas.compile(namespace)?;
    let mut violations = Vec::new();
    for change in changes {
        if let ChangeKind::Put(value) = &change.kind {
            violations.extend(compiled.check(&change.name, value));
        }
    }
    if violations.is_empty() {
        return Ok(violations);
    }
    match compiled.mode {
        Mode::Enforce => Err(Error::SchemaViolation { violations }),
        _ => {
            for v in &violations {
                tracing::warn!("schema (mode warn): {v}");
            }
            Ok(violations)
        }
    }
}

/// A namespace's schemas as read with a configuration
/// ([`Backend::read_one_with_schema`]): a write
/// made from that read is checked against them without fetching the document again, and an
/// engine that can applies it only if the document is still this version.
#[derive(Debug, Clone, Default)]
pub struct SchemasAsRead {
    /// The document's version; `None`: the namespace had none.
    pub(crate) version: Option<crate::model::version::Version>,
    /// The schemas it holds.
    pub(crate) schemas: Option<Arc<Schemas>>,
}

impl SchemasAsRead {
    /// What a stored document says: decoded, or the error that refuses writes.
    pub(crate) fn decode(
        document: Result<Option<(Vec<u8>, crate::model::version::Version)>>,
        location: &str,
        namespace: &str,
    ) -> Result<SchemasAsRead> {
        let document = document.map_err(|e| refusing_writes(e, namespace))?;
        let Some((bytes, version)) = document else { return Ok(SchemasAsRead::default()) };
        let schemas = Document::decode_schemas(&bytes, location)
            .map_err(|c| refusing_writes(Error::Corrupt { corruptions: vec![c] }, namespace))?;
        Ok(SchemasAsRead { version: Some(version), schemas: schemas.map(Arc::new) })
    }

    /// The precondition on the document that this read makes.
    pub(crate) fn precondition(&self) -> crate::model::change::Precondition {
        self.version
            .clone()
            .map_or(crate::model::change::Precondition::Absent, crate::model::change::Precondition::Version)
    }
}

/// Checks several batches before the first is written (an import, a persist of several
/// namespaces): under `enforce`, every violation of every batch in one error. A single batch
/// is left to [`crate::store::ext::BackendExt::write`], which checks it anyway.
pub(crate) async fn check_batches<'a, B: Backend + ?Sized>(
    backend: &B,
    batches: impl ExactSizeIterator<Item = (&'a str, &'a [Change])>,
) -> Result<()> {
    if batches.len() < 2 {
        return Ok(());
    }
    let mut violations = Vec::new();
    for (namespace, changes) in batches {
        let checked = crate::model::name::validate(crate::model::name::NameKind::Namespace, namespace)
            .and_then(|()| backend.check_name(crate::model::name::NameKind::Namespace, namespace));
        let checked = match checked {
            Ok(()) => check_batch(backend, &crate::model::name::NamespaceName::checked(namespace), changes).await,
            Err(e) => Err(e),
        };
        match checked {
            Ok(_) => {}
            Err(Error::SchemaViolation { violations: found }) => violations.extend(found),
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(Error::SchemaViolation { violations })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn config(value: Value) -> Configuration {
        value.as_object().cloned().unwrap_or_default()
    }

    fn schemas(default: Value) -> Schemas {
        Schemas { mode: Mode::Enforce, default: Some(default), configurations: BTreeMap::new() }
    }

    #[test]
    fn violations_name_the_configuration_the_pointer_and_the_rule() {
        let compiled = schemas(json!({
            "type": "object",
            "properties": {"port": {"type": "integer", "maximum": 65535}, "host": {"type": "string"}},
            "required": ["host"]
        }))
        .compile("sales")
        .unwrap();
        let found = compiled.check("database", &config(json!({"port": 70000})));
        let shown: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert!(
            shown.contains(&"sales/database: /port: 70000 is greater than the maximum of 65535".to_owned()),
            "{shown:?}"
        );
        assert!(shown.contains(&"sales/database: \"host\" is a required property".to_owned()), "{shown:?}");
        assert!(compiled.check("database", &config(json!({"host": "h", "port": 5432}))).is_empty());
    }

    #[test]
    fn a_configuration_schema_replaces_the_default() {
        let mut set = schemas(json!({"required": ["host"]}));
        set.configurations.insert("flags".into(), json!({"additionalProperties": {"type": "boolean"}}));
        let compiled = set.compile("ns").unwrap();
        assert!(compiled.check("flags", &config(json!({"beta": true}))).is_empty());
        assert_eq!(compiled.check("flags", &config(json!({"beta": 1}))).len(), 1);
        assert_eq!(compiled.check("other", &config(json!({}))).len(), 1);
    }

    #[test]
    fn numbers_beyond_64_bits_are_compared_exactly() {
        let max: Value = serde_json::from_str(r#"{"properties": {"n": {"maximum": 18446744073709551616}}}"#).unwrap();
        let compiled = schemas(max).compile("ns").unwrap();
        let at: Configuration = serde_json::from_str(r#"{"n": 18446744073709551616}"#).unwrap();
        let above: Configuration = serde_json::from_str(r#"{"n": 18446744073709551617}"#).unwrap();
        assert!(compiled.check("c", &at).is_empty());
        assert_eq!(compiled.check("c", &above).len(), 1);
    }

    #[test]
    fn bad_schemas_are_refused_with_the_reason() {
        let err = schemas(json!({"type": "strin"})).compile("ns").unwrap_err().to_string();
        assert!(err.contains("not a valid JSON Schema"), "{err}");
        for remote in ["https://example.com/s.json", "file:///etc/passwd", "other.json"] {
            let err = schemas(json!({"$ref": remote})).compile("ns").unwrap_err().to_string();
            assert!(err.contains("never fetches"), "{remote}: {err}");
        }
        let err = schemas(json!({"$schema": "http://json-schema.org/draft-04/schema#"})).compile("ns").unwrap_err();
        assert!(err.to_string().contains("not a supported draft"), "{err}");
        let err = schemas(json!([1])).compile("ns").unwrap_err();
        assert!(err.to_string().contains("is an object"), "{err}");
        // A reference inside the schema is fine, in both drafts.
        let local = json!({"$defs": {"port": {"maximum": 10}}, "properties": {"p": {"$ref": "#/$defs/port"}}});
        assert_eq!(schemas(local).compile("ns").unwrap().check("c", &config(json!({"p": 11}))).len(), 1);
        let d7 = json!({"$schema": "http://json-schema.org/draft-07/schema#", "definitions": {"p": {"type": "string"}},
                        "properties": {"p": {"$ref": "#/definitions/p"}}});
        assert_eq!(schemas(d7).compile("ns").unwrap().check("c", &config(json!({"p": 1}))).len(), 1);
    }

    #[test]
    fn a_deep_configuration_under_a_recursive_schema_does_not_overflow_a_small_stack() {
        let compiled = schemas(json!({"type": "object", "additionalProperties": {"$ref": "#"}})).compile("ns").unwrap();
        let mut deep = json!({});
        for _ in 0..crate::model::json::MAX_DEPTH - 1 {
            deep = json!({"a": deep});
        }
        let value = config(deep);
        // A tokio worker's stack is 2 MiB.
        let ok = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || compiled.check("c", &value).is_empty())
            .unwrap()
            .join()
            .unwrap();
        assert!(ok);
    }

    #[test]
    fn a_reference_outside_the_schema_is_refused_by_its_kind() {
        for reference in ["http://127.0.0.1:9/s.json", "file:///etc/passwd", "other.json#/x"] {
            let err = schemas(json!({"$ref": reference})).compile("ns").unwrap_err().to_string();
            assert!(err.contains("points outside the schema") && err.contains("never fetches"), "{reference}: {err}");
        }
        // A reference inside it compiles; a pointer to nowhere inside it is a plain compile error.
        assert!(schemas(json!({"$defs": {"p": {"type": "string"}}, "$ref": "#/$defs/p"})).compile("ns").is_ok());
        let err = schemas(json!({"$ref": "#/$defs/missing"})).compile("ns").unwrap_err().to_string();
        assert!(err.contains("not a valid JSON Schema") && !err.contains("points outside"), "{err}");
    }

    #[test]
    fn an_enormous_configuration_gets_a_short_clear_violation() {
        let compiled = schemas(json!({"additionalProperties": false, "maxProperties": 10})).compile("ns").unwrap();
        let value: Configuration = (0..100_000).map(|i| (format!("field{i}"), json!(i))).collect();
        let found = compiled.check("big", &value);
        assert!(!found.is_empty());
        assert!(found.iter().all(|v| v.message.chars().count() < MESSAGE_CHARS + 40), "{:?}", found[0]);
        assert!(found.iter().any(|v| v.message.contains("characters in all")), "{found:?}");
    }

    #[test]
    fn compiled_schemas_are_reused() {
        // By identity: the compilation counter is shared with the tests running beside this one.
        let schema = json!({"properties": {"unique-to-this-test": {"type": "integer"}}});
        let first = schemas(schema.clone()).compile("a").unwrap().default.unwrap();
        for _ in 0..10 {
            let again = schemas(schema.clone()).compile("b").unwrap().default.unwrap();
            assert!(Arc::ptr_eq(&first, &again), "compiled once, then taken from the cache");
        }
    }

    #[test]
    fn the_document_keeps_numbered_revisions_within_its_limits() {
        let author = Author::current("test");
        let one = Document::default().next(Some(schemas(json!({"type": "object"}))), &author, None, 3).unwrap();
        let doc = Document::decode(&one, "t").unwrap();
        assert_eq!(doc.history().revisions.len(), 1);
        assert_eq!(doc.history().revisions[0].operation, Operation::Create);
        let mut doc = doc;
        for _ in 0..4 {
            let bytes = doc.next(Some(schemas(json!({"type": "object"}))), &author, None, 3).unwrap();
            doc = Document::decode(&bytes, "t").unwrap();
        }
        assert_eq!(doc.history().revisions.iter().map(|r| r.number).collect::<Vec<_>>(), [5, 4, 3]);
        let removed = Document::decode(&doc.clone().next(None, &author, None, 3).unwrap(), "t").unwrap();
        assert!(removed.schemas.is_none());
        assert_eq!(removed.history().revisions[0].operation, Operation::Delete);
        // The write path reads the schemas alone, the same as the whole document's.
        let bytes = doc.clone().next(Some(schemas(json!({"type": "object"}))), &author, None, 3).unwrap();
        assert_eq!(Document::decode_schemas(&bytes, "t").unwrap(), Document::decode(&bytes, "t").unwrap().schemas);
        // A record that cannot be read is named apart; the others are listed.
        let mut broken: Value = serde_json::from_slice(&bytes).unwrap();
        broken["revisions"][0] = json!("garbage");
        let broken = Document::decode(&serde_json::to_vec(&broken).unwrap(), "t").unwrap().history();
        assert_eq!((broken.revisions.len(), broken.corrupt.len()), (2, 1));
        // History off: nothing recorded.
        let off = Document::decode(&Document::default().next(Some(Schemas::default()), &author, None, 0).unwrap(), "t");
        assert!(off.unwrap().history().revisions.is_empty());
    }
}
