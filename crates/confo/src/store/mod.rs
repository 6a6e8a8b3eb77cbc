//! [`Store`]: a cheap-to-clone handle over one backend, for one-shot callers and servers.
//! Every call names what it touches; nothing is "current", and nothing is cached but the
//! namespaces' schema documents by version, each use confirmed by the engine in the request
//! that reads the data (see `schemas`): one `Store` can serve any number of concurrent
//! callers.
//!
//! Point operations ([`Store::get`], [`Store::put`], [`Store::delete`],
//! [`Store::update_fields`]) touch one configuration and never read the rest of its
//! namespace: their cost is the same in a namespace of one configuration or of 10,000.
//!
//! ```no_run
//! # async fn demo() -> confo::Result<()> {
//! use confo::{FieldEdit, Precondition, Store};
//! let store = Store::open(&"redis://127.0.0.1:6379".parse()?).await?;
//! if let Some(db) = store.get("sales", "database").await? {
//!     println!("{} at version {}", serde_json::Value::Object((*db.value).clone()), db.version);
//! }
//! store.update_fields("sales", "database", &[FieldEdit::Set("port".into(), 5432.into())]).await?;
//! # Ok(()) }
//! ```

pub mod ext;
mod schemas;

use std::sync::Arc;

use serde_json::Value;

use crate::backend::Backend;
use crate::model::change::{Applied, Change, Precondition};
use crate::model::error::{Corruption, Error, Missing, Result, Violation};
use crate::model::history::{Author, History, Revision};
use crate::model::version::{Configuration, NamespaceData, Stored, Version};
use crate::schema::Schemas;
use crate::spec::BackendSpec;
use crate::transfer::{Difference, Document, Plan};
use crate::watch::{WatchOptions, Watcher};
use ext::{BackendExt, WriteOptions};

/// How [`Confo::remove_namespace`](crate::session::Confo::remove_namespace) treats a namespace that holds configurations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Refuse with [`Error::NotEmpty`].
    IfEmpty,
    /// Remove it with everything in it.
    Recursive,
}

/// What [`Store::modify`] did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Modified {
    /// What was stored before (`None`: nothing).
    pub before: Option<Stored>,
    /// The new version; `None` when the edit wrote nothing.
    pub version: Option<Version>,
    /// The schema violations of the value written under `warn`.
    pub warnings: Vec<Violation>,
}

/// What one attempt of [`Store::modify`]'s edit left, for after the engine's step.
struct Outcome<E> {
    /// The caller's edit refused, with this error.
    refused: Option<E>,
    /// Its schema violations under `warn`.
    warnings: Vec<Violation>,
}

impl<E> Default for Outcome<E> {
    fn default() -> Self {
        Outcome { refused: None, warnings: Vec::new() }
    }
}

/// How many times [`Store::update_fields`] tries before it reports the conflict.
pub(crate) const FIELD_UPDATE_ATTEMPTS: u32 = 16;

/// One edit of a field, for [`Store::update_fields`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FieldEdit {
    /// Set the field to the value (created if absent, with the configuration).
    Set(String, Value),
    /// Remove the field ([`Error::NotFound`] if it or the configuration does not exist).
    Remove(String),
}

/// The pause after the `attempt`-th conflict: 4 ms doubling up to 250 ms, plus up to as much
/// again at random, so writers that collided do not collide again in step.
pub(crate) fn backoff(attempt: u32) -> std::time::Duration {
    use std::hash::BuildHasher;
    let base = (4u64 << attempt.min(6)).min(250);
    let random = std::collections::hash_map::RandomState::new().hash_one(attempt) % (base + 1);
    std::time::Duration::from_millis(base + random)
}

/// A handle over one backend; clones share the backend's connection.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
    /// Who its writes are recorded as made by.
    author: Arc<Author>,
    /// The keyring its writes seal secrets again with (see [`BackendExt::write_sealed_as`]);
    /// without one, a plain value written where a secret is sealed is refused.
    keyring: Option<Arc<crate::secrets::Keyring>>,
    /// The schema documents its read-modify-writes have read, by version.
    schemas: Arc<schemas::HeldSchemas>,
}

impl Store {
    /// Opens (connects to) the store a spec names.
    pub async fn open(spec: &BackendSpec) -> Result<Self> {
        Ok(Store::new(spec.open().await?))
    }

    /// A store over a backend already open; its writes are recorded in history as the
    /// library's ([`Author::library`]).
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Store { backend, author: Author::library(), keyring: None, schemas: Arc::default() }
    }

    /// The same store, its writes recorded in history as made by `author` (an actor, the tool,
    /// a message). Cheap: the connection is shared.
    pub fn with_author(&self, author: Arc<Author>) -> Self {
        Store { author, ..self.clone() }
    }

    /// The same store, its writes sealing again with `keyring` a plain value written where a
    /// secret is sealed (without one, such a write is refused): see
    /// [`BackendExt::write_sealed_as`].
    pub fn with_keyring(&self, keyring: Option<Arc<crate::secrets::Keyring>>) -> Self {
        Store { keyring, ..self.clone() }
    }

    /// The keyring its writes seal secrets again with, if any.
    pub fn keyring(&self) -> Option<&crate::secrets::Keyring> {
        self.keyring.as_deref()
    }

    /// Who this store's writes are recorded as made by.
    pub fn author(&self) -> &Arc<Author> {
        &self.author
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The namespaces, sorted.
    pub async fn namespaces(&self) -> Result<Vec<String>> {
        self.backend.list_namespaces().await
    }

    /// Creates a namespace; `false` if it existed.
    pub async fn create_namespace(&self, namespace: &str) -> Result<bool> {
        self.backend.create_namespace(namespace).await
    }

    /// Removes a namespace; with [`Removal::IfEmpty`], one holding configurations is
    /// [`Error::NotEmpty`].
    pub async fn remove_namespace(&self, namespace: &str, removal: Removal) -> Result<()> {
        if removal == Removal::IfEmpty {
            let count = self.backend.load_namespace(namespace).await?.len();
            if count > 0 {
                return Err(Error::NotEmpty { namespace: namespace.to_owned(), count });
            }
        }
        self.backend.delete_namespace(namespace).await
    }

    /// One configuration and its version; `None` if it does not exist, [`Error::Corrupt`] if
    /// it cannot be read. Reads nothing else.
    pub async fn get(&self, namespace: &str, config: &str) -> Result<Option<Stored>> {
        self.backend.load_configuration(namespace, config).await
    }

    /// Writes one configuration if `precondition` holds (else [`Error::Conflict`]); returns its
    /// new version.
    pub async fn put(
        &self,
        namespace: &str,
        config: &str,
        value: Configuration,
        precondition: Precondition,
    ) -> Result<Version> {
        let change = Change::put(config, value).when(precondition);
        let applied = self.write_one(namespace, change).await?;
        applied.ok_or_else(|| {
            Error::unavailable(
                self.backend.describe(),
                format!("the write of {namespace}/{config} reported no version"),
            )
        })
    }

    /// Deletes one configuration if `precondition` holds (else [`Error::Conflict`]).
    pub async fn delete(&self, namespace: &str, config: &str, precondition: Precondition) -> Result<()> {
        self.write_one(namespace, Change::delete(config).when(precondition)).await.map(drop)
    }

    /// Replaces a whole configuration with `value`, if it is still what is stored now (read
    /// just before: a concurrent writer makes it [`Error::Conflict`]). An entry that cannot be
    /// read is replaced too: that is how it is repaired. Returns the new version.
    pub async fn replace(&self, namespace: &str, config: &str, value: Configuration) -> Result<Version> {
        let precondition = self.as_stored_now(namespace, config).await?;
        self.put(namespace, config, value, precondition).await
    }

    // ----- history -----

    /// One configuration's recorded history, newest first, a page at a time (see [`Page`]),
    /// with the records that could not be read named apart. Works for a deleted configuration
    /// too. [`Error::NotFound`] if the backend keeps no history (`history=off`).
    pub async fn history(&self, namespace: &str, config: &str, page: Page) -> Result<History> {
        let mut history = self.backend.configuration_history(namespace, config).await?;
        history.revisions.retain(|r| page.before.is_none_or(|b| r.number < b));
        history.revisions.truncate(page.limit);
        Ok(history)
    }

    /// Revision `number` of a configuration; [`Error::NotFound`] naming it if it was never
    /// recorded or retention dropped it.
    pub async fn revision(&self, namespace: &str, config: &str, number: u64) -> Result<Revision> {
        let history = self.backend.configuration_history(namespace, config).await?;
        if let Some(found) = crate::model::history::find(&history, number) {
            return Ok(found.clone());
        }
        if let Some(bad) = history.corrupt.iter().find(|c| c.location.ends_with(&format!("@{number}"))) {
            return Err(Error::Corrupt { corruptions: vec![bad.clone()] });
        }
        Err(self.revision_not_kept(&history, format!("{namespace}/{config}@{number}")))
    }

    /// [`Error::NotFound`] for a revision `name` that `history` does not hold, saying which it
    /// holds.
    fn revision_not_kept(&self, history: &History, name: String) -> Error {
        let kept = match (history.revisions.last(), history.head()) {
            (_, 0) => "no revision is recorded".to_owned(),
            (Some(oldest), head) => format!("revisions {}..{head} are kept", oldest.number),
            (None, _) => "no revision is readable".to_owned(),
        };
        Error::not_found(Missing::Revision, name, format!("{} ({kept})", self.backend.describe()))
    }

    /// Writes revision `number`'s value again, as a new revision recorded as a `rollback` of
    /// it. Never deletes: rolling back to a deletion is refused ([`Error::InvalidValue`]);
    /// rolling back to a configuration's creation restores that content, and a deleted
    /// configuration is restored from its history. `precondition` (default: what is stored
    /// now) must hold, else [`Error::Conflict`] and nothing is written. Returns the new
    /// version.
    pub async fn rollback(
        &self,
        namespace: &str,
        config: &str,
        number: u64,
        precondition: Option<Precondition>,
    ) -> Result<Version> {
        let revision = self.revision(namespace, config, number).await?;
        let Some(mut value) = revision.value else {
            return Err(Error::InvalidValue {
                location: format!("{} configuration {namespace}/{config}@{number}", self.backend.describe()),
                message: "that revision is a deletion: there is no value to restore (delete explicitly instead)"
                    .to_owned(),
            });
        };
        // A field purged from this revision (`--purge-field`): what is sealed there now stays,
        // else the field is left out.
        if crate::secrets::has_purged(&value) {
            let current = self.get(namespace, config).await?;
            let mut restored = (*value).clone();
            let settled = crate::secrets::settle_purged(&mut restored, current.as_ref().map(|c| &*c.value));
            tracing::info!(
                namespace,
                config,
                number,
                ?settled,
                "purged fields of the revision settled for the rollback"
            );
            value = Arc::new(restored);
        }
        let precondition = match precondition {
            Some(p) => p,
            None => self.as_stored_now(namespace, config).await?,
        };
        let change = Change::put(config, value).when(precondition).restoring(number);
        self.write_one(namespace, change).await?.ok_or_else(|| {
            Error::unavailable(
                self.backend.describe(),
                format!("the rollback of {namespace}/{config} reported no version"),
            )
        })
    }

    /// Replaces a field (its JSON pointer) by a purge marker (`{"$confo_purged": "<time>"}`) in
    /// every recorded revision of a configuration that holds it in the clear (a sealed value is
    /// left: it is no secret in the clear), numbers and authors unchanged; then records the
    /// purge as a revision of its own (the value unchanged, the message naming the field and the
    /// revisions). Returns the revisions rewritten. For a field stored in the clear before it
    /// was made secret. A rollback to a purged revision keeps what is sealed at the field now,
    /// or leaves the field out. Nothing reaches the engines' own copies (etcd's revisions until
    /// compaction, Redis AOF/RDB, ZooKeeper logs and snapshots) or backups.
    pub async fn purge_history_field(&self, namespace: &str, config: &str, pointer: &str) -> Result<Vec<u64>> {
        let (ns, name) = (self.backend.namespace(namespace)?, self.backend.config_name(config)?);
        if !pointer.starts_with('/') || pointer.len() < 2 {
            return Err(Error::InvalidValue {
                location: format!("{namespace}/{config}"),
                message: format!("{pointer:?} is not a field's JSON pointer (/password, /db/password)"),
            });
        }
        let marker = serde_json::json!({ crate::secrets::PURGED: crate::model::history::format_time(crate::model::history::now()) });
        let at = pointer.to_owned();
        let rewrite = move |value: &mut Configuration| -> bool {
            let mut whole = serde_json::Value::Object(std::mem::take(value));
            let changed = match whole.pointer_mut(&at) {
                Some(slot) if !crate::model::sealed::is_sealed(slot) && !crate::secrets::is_purged(slot) => {
                    *slot = marker.clone();
                    true
                }
                _ => false,
            };
            if let serde_json::Value::Object(map) = whole {
                *value = map;
            }
            changed
        };
        let rewritten = self.backend.rewrite_history(&ns, &name, &rewrite).await?;
        if rewritten.is_empty() {
            return Ok(rewritten);
        }
        let list = rewritten.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
        let message = format!("history purge: {pointer} replaced by a marker in revision(s) {list}");
        match self.get(namespace, config).await? {
            Some(current) => {
                let mut author = (*self.author).clone();
                author.message = Some(match author.message.take() {
                    Some(given) => format!("{message}: {given}"),
                    None => message,
                });
                let store = self.with_author(Arc::new(author));
                let change = Change::put(config, (*current.value).clone())
                    .when(Precondition::Version(current.version))
                    .made_over(current.value.clone());
                store.write_one(namespace, change).await?;
            }
            None => {
                tracing::warn!(namespace, config, "{message} (the configuration is deleted: no revision records it)")
            }
        }
        Ok(rewritten)
    }

    /// Every recorded change in a namespace (deleted configurations included), newest first,
    /// filtered: `(configuration, revision)`. Records that could not be read are returned
    /// apart.
    pub async fn log(&self, namespace: &str, filter: &LogFilter) -> Result<(Vec<(String, Revision)>, Vec<Corruption>)> {
        let names = self.backend.history_configurations(namespace).await?;
        let histories = crate::backend::kit::join_ordered(names.into_iter().map(|name| {
            let (backend, namespace) = (self.backend.clone(), namespace.to_owned());
            async move { backend.configuration_history(&namespace, &name).await.map(|h| (name, h)) }
        }))
        .await;
        let mut entries = Vec::new();
        let mut corrupt = Vec::new();
        for result in histories {
            let (name, history) = result?;
            corrupt.extend(history.corrupt);
            entries.extend(
                history
                    .revisions
                    .into_iter()
                    .filter(|r| filter.since.is_none_or(|t| r.time >= t))
                    .filter(|r| filter.actor.as_ref().is_none_or(|a| &r.actor == a))
                    .map(|r| (name.clone(), r)),
            );
        }
        entries.sort_by(|a, b| b.1.time.cmp(&a.1.time).then_with(|| a.0.cmp(&b.0)).then(b.1.number.cmp(&a.1.number)));
        if let Some(limit) = filter.limit {
            entries.truncate(limit);
        }
        Ok((entries, corrupt))
    }

    // ----- schemas -----

    /// A namespace's schemas ([`crate::schema`]); `None` if it has none.
    pub async fn schemas(&self, namespace: &str) -> Result<Option<Schemas>> {
        crate::schema::load_schemas(&*self.backend, &self.backend.namespace(namespace)?).await
    }

    /// Sets a namespace's default schema (`config` `None`) or one configuration's, and/or its
    /// mode (kept when `None`; `enforce` for a namespace that had no schemas). The schema is
    /// compiled first: one that is not valid JSON Schema, or refers outside itself, is refused
    /// with the reason and nothing is written. Recorded as a revision by this store's author.
    /// [`Error::NotFound`] if the namespace does not exist. Returns the schemas now stored.
    pub async fn set_schema(
        &self,
        namespace: &str,
        config: Option<&str>,
        schema: Option<serde_json::Value>,
        mode: Option<crate::schema::Mode>,
    ) -> Result<Schemas> {
        if let Some(config) = config {
            self.backend.validate_new_name(crate::model::name::NameKind::Configuration, config)?;
        }
        self.change_schemas(namespace, None, |current| {
            // An unreadable document is replaced: what is set starts afresh.
            let mut schemas = match current {
                Current::Schemas(schemas) => schemas,
                Current::None | Current::Unreadable(_) => Schemas::default(),
            };
            if let Some(schema) = schema.clone() {
                match config {
                    Some(c) => {
                        schemas.configurations.insert(c.to_owned(), schema);
                    }
                    None => schemas.default = Some(schema),
                }
            }
            if let Some(mode) = mode {
                schemas.mode = mode;
            }
            Ok(Some(schemas))
        })
        .await
        .map(Option::unwrap_or_default)
    }

    /// Removes a namespace's schemas (all of them, or one configuration's), recorded as a
    /// revision; [`Error::NotFound`] if there is none to remove.
    pub async fn remove_schema(&self, namespace: &str, config: Option<&str>) -> Result<Option<Schemas>> {
        self.change_schemas(namespace, None, |current| {
            let missing = |name: &str| Error::not_found(Missing::Schema, name, self.backend.describe());
            let mut schemas = match current {
                Current::Schemas(schemas) => schemas,
                Current::None => return Err(missing(namespace)),
                // An unreadable document is removed whole; one configuration's part of it
                // cannot be told apart.
                Current::Unreadable(_) if config.is_none() => return Ok(None),
                Current::Unreadable(corruption) => {
                    return Err(Error::Corrupt {
                        corruptions: vec![crate::model::error::Corruption {
                            problem: format!(
                                "{}: remove it whole (confo schema rm {namespace}) or replace it (confo schema set)",
                                corruption.problem
                            ),
                            ..corruption
                        }],
                    })
                }
            };
            match config {
                None => Ok(None),
                Some(c) => {
                    if schemas.configurations.remove(c).is_none() {
                        return Err(missing(&format!("{namespace}/{c}")));
                    }
                    Ok(Some(schemas))
                }
            }
        })
        .await
    }

    /// The revisions of a namespace's schemas, newest first (empty when history is off), with
    /// the records that could not be read named apart.
    pub async fn schema_history(&self, namespace: &str) -> Result<History> {
        let name = self.backend.namespace(namespace)?;
        Ok(crate::schema::load(&*self.backend, &name).await?.map(|(doc, _)| doc.history()).unwrap_or_default())
    }

    /// Puts a namespace's schemas back as they were at revision `number`, as a new revision
    /// recorded as a rollback of it.
    pub async fn rollback_schema(&self, namespace: &str, number: u64) -> Result<Option<Schemas>> {
        let history = self.schema_history(namespace).await?;
        let Some(revision) = crate::model::history::find(&history, number) else {
            return Err(self.revision_not_kept(&history, format!("schema of {namespace}@{number}")));
        };
        let location = format!("schema of {namespace}@{number}");
        let restored = match &revision.value {
            Some(value) => Some(Schemas::from_json(value, &location)?),
            None => None,
        };
        self.change_schemas(namespace, Some(number), |_| Ok(restored.clone())).await
    }

    /// Reads the schema document, applies `change`, compiles the result and writes it back
    /// if the document is still as read (else again, a few times). A document that cannot be
    /// read is given to `change` as such, and replaced by what it returns (its unreadable
    /// revisions with it: said in the log).
    async fn change_schemas(
        &self,
        namespace: &str,
        restores: Option<u64>,
        change: impl Fn(Current) -> Result<Option<Schemas>>,
    ) -> Result<Option<Schemas>> {
        let name = self.backend.namespace(namespace)?;
        let keep = if self.backend.capabilities().history { crate::schema::REVISIONS_KEPT } else { 0 };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (document, precondition, current) = match crate::schema::load_for_change(&*self.backend, &name).await? {
                Some((doc, version, None)) => {
                    let current = doc.schemas.clone().map_or(Current::None, Current::Schemas);
                    (doc, Precondition::Version(version), current)
                }
                Some((doc, version, Some(corruption))) => {
                    (doc, Precondition::Version(version), Current::Unreadable(corruption))
                }
                None => (Default::default(), Precondition::Absent, Current::None),
            };
            let replaced = match &current {
                Current::Unreadable(corruption) => Some(corruption.to_string()),
                _ => None,
            };
            let changed = change(current)?;
            if let Some(schemas) = &changed {
                schemas.check_sizes(namespace)?;
                schemas.compile(namespace)?;
            }
            let bytes = document.next(changed.clone(), &self.author, restores, keep)?;
            match self.backend.put_schema_document(&name, Some(bytes), &precondition).await {
                Err(e) if e.is_conflict() && attempt < FIELD_UPDATE_ATTEMPTS => {
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => return Err(e),
                Ok(_) => {
                    if let Some(what) = replaced {
                        tracing::warn!("replaced an unreadable schema document ({what}); its revisions went with it");
                    }
                    return Ok(changed);
                }
            }
        }
    }

    /// Checks what is stored in `namespaces` (all when empty) against their schemas, whatever
    /// their mode: every violation, by namespace and configuration. Entries that cannot be
    /// read are not configurations and are not checked (loading reports them).
    pub async fn validate(&self, namespaces: &[String]) -> Result<Vec<Violation>> {
        let namespaces = if namespaces.is_empty() { self.namespaces().await? } else { namespaces.to_vec() };
        let mut violations = Vec::new();
        for namespace in &namespaces {
            let Some(schemas) = self.schemas(namespace).await? else { continue };
            let compiled = schemas.compile(namespace)?;
            for (config, stored) in self.load(namespace).await? {
                violations.extend(compiled.check(&config, &stored.value));
            }
        }
        Ok(violations)
    }

    /// Removes a configuration, if it is still what is stored now; [`Error::NotFound`] if there
    /// is none. An entry that cannot be read is removed too.
    pub async fn remove(&self, namespace: &str, config: &str) -> Result<()> {
        match self.as_stored_now(namespace, config).await? {
            Precondition::Absent => {
                Err(Error::not_found(Missing::Configuration, config, format!("namespace {namespace:?}")))
            }
            precondition => self.delete(namespace, config, precondition).await,
        }
    }

    /// The precondition that holds for what is stored now: its version, absent, or a corrupt
    /// entry's version (which a point read does not return: the namespace is read for it, in
    /// that rare case only).
    async fn as_stored_now(&self, namespace: &str, config: &str) -> Result<Precondition> {
        let version = match self.get(namespace, config).await {
            Ok(stored) => stored.map(|s| s.version),
            Err(Error::Corrupt { .. }) => {
                let data = self.load(namespace).await?;
                data.corrupt.get(config).and_then(|entry| entry.version.clone())
            }
            Err(e) => return Err(e),
        };
        Ok(version.map_or(Precondition::Absent, Precondition::Version))
    }

    async fn write_one(&self, namespace: &str, change: Change) -> Result<Option<Version>> {
        let options = WriteOptions::by(&self.author).keyring(self.keyring()).settled();
        let report = self.backend.write_with(namespace, std::slice::from_ref(&change), &options).await;
        if report.error.is_some() {
            // A plain error, or "in doubt" when the answer was lost and could not be read back.
            return Err(report.into_incomplete(Vec::new(), namespace, [change.name.as_str()], []));
        }
        Ok(report.applied.into_iter().next().and_then(|a| a.version))
    }

    /// Reads one configuration and writes what `edit` makes of it (`None`: nothing), as one
    /// step where the engine can ([`Backend::load_and_apply`]: the file engine reads the file
    /// once, under its folder's lock). The value goes through the whole write path: the batch
    /// rules, the re-seal rule of secrets over what it replaces, the schemas stored now (read
    /// with the configuration; under `enforce` a violation is the error). A writer in between
    /// (on an engine that cannot hold a lock) makes it read and edit again, up to
    /// 16 times. An error of `edit` is returned as it is.
    pub async fn modify<E, F>(&self, namespace: &str, config: &str, edit: F) -> std::result::Result<Modified, E>
    where
        E: From<Error> + Send + 'static,
        F: Fn(Option<&Stored>) -> std::result::Result<Option<Configuration>, E> + Send + Sync + 'static,
    {
        let (ns, name) = (self.backend.namespace(namespace)?, self.backend.config_name(config)?);
        let edit = Arc::new(edit);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let held = self.schemas.held(namespace);
            let known = held.as_ref().and_then(|h| h.version.clone());
            let outcome: Arc<crate::fork::Mutex<Outcome<E>>> = Arc::default();
            let step = {
                let (edit, outcome, store) = (edit.clone(), outcome.clone(), self.clone());
                let (ns, config) = (ns.clone(), config.to_owned());
                crate::backend::Edit::new(&name, move |stored: Option<&Stored>, read| {
                    let value = match edit(stored) {
                        Ok(Some(value)) => value,
                        Ok(None) => return Ok(None),
                        Err(e) => {
                            outcome.lock().refused = Some(e);
                            return Err(Error::InvalidValue { location: config.clone(), message: "refused".into() });
                        }
                    };
                    let schemas = store.schemas.answer(&ns, &*store.backend, held.as_ref(), read)?;
                    let mut change = Change::put(config.clone(), value)
                        .when(stored.map_or(Precondition::Absent, |s| Precondition::Version(s.version.clone())));
                    change.over = stored.map(|s| s.value.clone());
                    let over: std::collections::HashMap<String, Arc<Configuration>> =
                        stored.map(|s| (config.clone(), s.value.clone())).into_iter().collect();
                    let change = ext::reseal(std::slice::from_ref(&change), &over, ns.as_str(), store.keyring())?
                        .into_owned()
                        .remove(0);
                    store.backend.check_batch(ns.as_str(), std::slice::from_ref(&change))?;
                    let warnings = crate::schema::check_with(
                        schemas.schemas.as_deref(),
                        ns.as_str(),
                        std::slice::from_ref(&change),
                    )?;
                    let mut outcome = outcome.lock();
                    outcome.warnings = warnings;
                    Ok(Some((change, Some(schemas.precondition()))))
                })
            };
            let result = self.backend.load_and_apply(&ns, &name, known.as_ref(), &self.author, step.clone()).await;
            let (refused, change, warnings) = {
                let mut outcome = outcome.lock();
                (outcome.refused.take(), step.decided(), std::mem::take(&mut outcome.warnings))
            };
            if let Some(e) = refused {
                return Err(e);
            }
            let report = result?;
            let before = step.read()?;
            let (Some(report), Some(change)) = (report, change) else {
                return Ok(Modified { before, version: None, warnings });
            };
            let report = ext::settle(&*self.backend, namespace, std::slice::from_ref(&change), report).await;
            match report.error {
                Some(e) if e.is_conflict() && attempt < FIELD_UPDATE_ATTEMPTS => {
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Some(_) => return Err(report.into_incomplete(Vec::new(), namespace, [config], []).into()),
                None => {
                    let version = report.applied.into_iter().next().and_then(|a| a.version);
                    return Ok(Modified { before, version, warnings });
                }
            }
        }
    }

    /// Sets and removes fields of one configuration, on what is stored now: read it, apply the
    /// edits, write it only if it is still that version; on a conflict (another writer), again,
    /// up to 16 times with random growing pauses. A
    /// configuration that does not exist is created by a set ([`Error::NotFound`] for a
    /// remove). Returns the new version.
    pub async fn update_fields(&self, namespace: &str, config: &str, edits: &[FieldEdit]) -> Result<Version> {
        // One read-modify-write ([`Store::modify`]): the configuration and the namespace's
        // schemas read in one request where the engine can (the file engine: one read under
        // its lock), the write refused as a conflict, and made again, if either changed.
        let (edits, ns, cfg) = (edits.to_vec(), namespace.to_owned(), config.to_owned());
        let edit = move |current: Option<&Stored>| -> Result<Option<Configuration>> {
            let mut value = current.map(|s| (*s.value).clone()).unwrap_or_default();
            for edit in &edits {
                match edit {
                    FieldEdit::Set(field, new) => {
                        value.insert(field.clone(), new.clone());
                    }
                    FieldEdit::Remove(field) => {
                        if current.is_none() {
                            return Err(Error::not_found(Missing::Configuration, &cfg, format!("namespace {ns:?}")));
                        }
                        if value.shift_remove(field).is_none() {
                            return Err(Error::not_found(
                                Missing::Field,
                                format!("{cfg}.{field}"),
                                format!("namespace {ns:?}"),
                            ));
                        }
                    }
                }
            }
            Ok(Some(value))
        };
        let modified = self.modify(namespace, config, edit).await?;
        modified.version.ok_or_else(|| {
            Error::unavailable(
                self.backend.describe(),
                format!("the write of {namespace}/{config} reported no version"),
            )
        })
    }

    /// Sets a field to a secret: sealed with the keyring's primary key, bound to this namespace,
    /// configuration and field, then written like [`Store::update_fields`]. The value never
    /// reaches the store in the clear.
    pub async fn set_secret(
        &self,
        namespace: &str,
        config: &str,
        field: &str,
        value: serde_json::Value,
        keyring: &crate::secrets::Keyring,
    ) -> Result<Version> {
        let pointer = crate::secrets::pointer(field);
        let place = crate::secrets::Place { namespace, configuration: config, pointer: &pointer };
        let sealed = keyring.seal(&place, &value)?;
        self.update_fields(namespace, config, &[FieldEdit::Set(field.to_owned(), sealed)]).await
    }

    /// Turns a sealed field (its JSON pointer, `/password`, `/db/pass`) back into its plain
    /// value, on purpose: opened with the keyring and written in the clear, only if the
    /// configuration is unchanged since it was read ([`Error::Conflict`] otherwise). The one
    /// write the re-seal rule lets through (see
    /// [`BackendExt::write_sealed_as`]).
    /// [`Error::NotFound`] when nothing sealed is there.
    pub async fn unset_secret(
        &self,
        namespace: &str,
        config: &str,
        pointer: &str,
        keyring: &crate::secrets::Keyring,
    ) -> Result<Version> {
        let missing = || Error::NotFound {
            what: crate::model::error::Missing::Field,
            name: format!("{config}{pointer}"),
            location: format!("namespace {namespace} (no secret is sealed there)"),
        };
        let stored = self.get(namespace, config).await?.ok_or_else(missing)?;
        let mut value = serde_json::Value::Object((*stored.value).clone());
        let at = value.pointer_mut(pointer).filter(|v| crate::model::sealed::is_sealed(v)).ok_or_else(missing)?;
        let place = crate::secrets::Place { namespace, configuration: config, pointer };
        *at = keyring.open(&place, at)?;
        let serde_json::Value::Object(value) = value else { return Err(missing()) };
        let change =
            Change::put(config, value).when(Precondition::Version(stored.version)).unsealing(vec![pointer.to_owned()]);
        self.write_one(namespace, change).await?.ok_or_else(|| {
            Error::unavailable(
                self.backend.describe(),
                format!("the write of {namespace}/{config} reported no version"),
            )
        })
    }

    /// One configuration with every secret opened; `None` if it does not exist. A secret the
    /// keyring cannot open is [`Error::Secret`] naming the field.
    pub async fn get_revealed(
        &self,
        namespace: &str,
        config: &str,
        keyring: &crate::secrets::Keyring,
    ) -> Result<Option<Configuration>> {
        match self.get(namespace, config).await? {
            Some(stored) => crate::secrets::reveal(&stored.value, namespace, config, keyring).map(Some),
            None => Ok(None),
        }
    }

    /// Seals again, under the keyring's primary key, every secret of the namespaces (all when
    /// empty) sealed with another key; each configuration is written only if unchanged since it
    /// was read (a conflict is retried on the new content). Returns how many secrets were
    /// resealed. Old keys keep opening what is left until they are removed.
    ///
    /// A secret that does not open (sealed with a key no longer in the keyring, or planted by
    /// a writer without the keys) does not stop the rotation: everything else is resealed,
    /// then [`Error::Secret`] says how many were left and where (see
    /// [`Store::rotate_secrets_report`] for the list).
    pub async fn rotate_secrets(&self, namespaces: &[String], keyring: &crate::secrets::Keyring) -> Result<usize> {
        let rotation = self.rotate_secrets_report(namespaces, keyring).await?;
        match rotation.unopened.first() {
            None => Ok(rotation.resealed),
            Some((namespace, config, pointer, why)) => Err(Error::Secret {
                location: format!("{namespace}/{config} field {pointer}"),
                message: format!(
                    "{} secret(s) could not be opened and were left as they were ({} resealed); the first: {why}",
                    rotation.unopened.len(),
                    rotation.resealed
                ),
            }),
        }
    }

    /// [`Store::rotate_secrets`], reporting each secret that could not be opened instead of
    /// failing; the namespaces' other secrets are resealed all the same.
    pub async fn rotate_secrets_report(
        &self,
        namespaces: &[String],
        keyring: &crate::secrets::Keyring,
    ) -> Result<Rotation> {
        let namespaces = if namespaces.is_empty() { self.namespaces().await? } else { namespaces.to_vec() };
        let mut rotation = Rotation::default();
        for namespace in &namespaces {
            for (config, stored) in self.load(namespace).await? {
                if crate::model::sealed::has_sealed(&stored.value) {
                    let (count, unopened) = self.rotate_one(namespace, &config, stored, keyring).await?;
                    rotation.resealed += count;
                    rotation.unopened.extend(
                        unopened.into_iter().map(|(pointer, why)| (namespace.clone(), config.clone(), pointer, why)),
                    );
                }
            }
        }
        Ok(rotation)
    }

    /// Reseals one configuration's secrets, starting from what the bulk read gave; read again
    /// only after a conflict. Returns how many were resealed and those that did not open.
    async fn rotate_one(
        &self,
        namespace: &str,
        config: &str,
        mut stored: Stored,
        keyring: &crate::secrets::Keyring,
    ) -> Result<(usize, Vec<(String, String)>)> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut value = (*stored.value).clone();
            let (count, unopened) = crate::secrets::reseal_what_opens(&mut value, namespace, config, keyring);
            let unopened: Vec<(String, String)> =
                unopened.into_iter().map(|(pointer, why)| (pointer, why.to_string())).collect();
            if count == 0 {
                return Ok((0, unopened));
            }
            match self.put(namespace, config, value, Precondition::Version(stored.version)).await {
                Err(e) if e.is_conflict() && attempt < FIELD_UPDATE_ATTEMPTS => {
                    tokio::time::sleep(backoff(attempt)).await;
                    match self.get(namespace, config).await? {
                        Some(fresh) => stored = fresh,
                        None => return Ok((0, Vec::new())),
                    }
                }
                other => return other.map(|_| (count, unopened)),
            }
        }
    }

    /// Finds (and with `fix`, repairs) what breaks the layout's consistency: see
    /// [`Backend::repair`].
    pub async fn repair(&self, options: &crate::backend::RepairOptions) -> Result<crate::backend::Repair> {
        self.backend.repair(options).await
    }

    /// The nodes whose ACL lets others change them, and with `fix` the spec's ACL given to
    /// them: see [`Backend::check_acls`].
    pub async fn check_acls(&self, fix: bool) -> Result<Vec<crate::backend::AclFinding>> {
        self.backend.check_acls(fix).await
    }

    /// Every configuration of a namespace in one bulk read.
    pub async fn load(&self, namespace: &str) -> Result<NamespaceData> {
        self.backend.load_namespace(namespace).await
    }

    /// Every configuration of a namespace in one bulk read, in the compact form a cache keeps
    /// (see [`Backend::load_compact`]).
    pub async fn load_compact(&self, namespace: &str) -> Result<crate::model::compact::CompactNamespace> {
        self.backend.load_namespace_compact(namespace).await
    }

    /// Writes a batch of changes to one namespace, each with its precondition; a batch with a
    /// bad name, an oversized value or a broken precondition writes nothing. Returns what was
    /// applied, in order; a failure part-way is [`Error::PersistIncomplete`] (what was written,
    /// what was not, what is in doubt after a lost answer, settled by reading back).
    pub async fn write(&self, namespace: &str, changes: &[Change]) -> Result<Vec<Applied>> {
        self.backend.check_batch(namespace, changes)?;
        let report = self.backend.write_settled_sealed_as(namespace, changes, &self.author, self.keyring()).await;
        if report.error.is_none() {
            return Ok(report.applied);
        }
        Err(report.into_incomplete(Vec::new(), namespace, changes.iter().map(|c| c.name.as_str()), []))
    }

    /// How this store's namespaces (all when empty) differ from `other`'s: each configuration
    /// only on this side, only on the other, or different. See [`crate::transfer::diff`].
    pub async fn diff(&self, other: &Store, namespaces: &[String]) -> Result<Vec<(String, String, Difference)>> {
        let (left, right) = (self.export(namespaces).await?, other.export(namespaces).await?);
        Ok(crate::transfer::diff(&left, &right))
    }

    /// Namespaces (all when empty) as a document; see [`crate::transfer::export`].
    pub async fn export(&self, namespaces: &[String]) -> Result<Document> {
        crate::transfer::export(&*self.backend, namespaces).await
    }

    /// Every readable configuration of the namespaces (all when empty) as a document, and the
    /// corrupt entries it skipped; see [`crate::transfer::export_readable`].
    pub async fn export_readable(&self, namespaces: &[String]) -> Result<(Document, Vec<Corruption>)> {
        crate::transfer::export_readable(&*self.backend, namespaces).await
    }

    /// [`Store::export_readable`] in compact form, to write out without holding maps (a third
    /// of their memory); see [`crate::transfer::export_readable_compact`].
    pub async fn export_readable_compact(
        &self,
        namespaces: &[String],
    ) -> Result<(crate::transfer::CompactDocument, Vec<Corruption>)> {
        crate::transfer::export_readable_compact(&*self.backend, namespaces).await
    }

    /// A JSON document (`{namespace: {configuration: object}}`) checked for its shape and
    /// against this store's name rules; see [`crate::transfer::document_from_value`].
    pub fn parse_document(&self, value: serde_json::Value) -> Result<Document> {
        crate::transfer::document_from_value(value, &*self.backend)
    }

    /// Checks a document's names against this store's rules, before anything is written.
    pub fn check_names(&self, document: &Document) -> Result<()> {
        crate::transfer::check_names(&*self.backend, document)
    }

    /// What bringing the store to `document` would do; see [`crate::transfer::plan`].
    pub async fn plan(&self, document: &Document, prune: bool) -> Result<Plan> {
        crate::transfer::plan(&*self.backend, document, prune).await
    }

    /// Carries out a plan; see [`crate::transfer::apply`].
    pub async fn apply(&self, plan: &Plan, document: &Document, progress: impl FnMut(usize, usize)) -> Result<()> {
        crate::transfer::apply_sealed_as(&*self.backend, plan, document, &self.author, self.keyring(), progress).await
    }

    /// [`Store::apply`] taking the document (moved into the writes, not copied); see
    /// [`crate::transfer::apply_owned_as`].
    pub async fn apply_owned(&self, plan: &Plan, document: Document, progress: impl FnMut(usize, usize)) -> Result<()> {
        crate::transfer::apply_owned_sealed_as(&*self.backend, plan, document, &self.author, self.keyring(), progress)
            .await
    }

    /// Live events of a namespace (optionally one configuration).
    pub async fn watch(&self, namespace: &str, config: Option<&str>, options: WatchOptions) -> Result<Watcher> {
        Watcher::new(self.backend.clone(), namespace, config, options).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn config(value: serde_json::Value) -> Configuration {
        value.as_object().cloned().unwrap_or_default()
    }

    #[tokio::test]
    async fn a_batch_writes_whole_or_not_at_all_and_stores_compare() {
        let store = Store::open(&BackendSpec::memory()).await.unwrap();
        store.create_namespace("ns").await.unwrap();
        let applied = store
            .write("ns", &[Change::put("a", config(json!({"v": 1}))), Change::put("b", config(json!({"v": 2})))])
            .await
            .unwrap();
        assert_eq!(applied.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        // One broken precondition: nothing of the batch is written.
        let batch = [Change::put("c", config(json!({}))), Change::delete("a").when(Precondition::Absent)];
        let err = store.write("ns", &batch).await.unwrap_err();
        assert!(err.is_conflict(), "{err}");
        assert!(store.get("ns", "c").await.unwrap().is_none());
        // A bad name is refused before anything is sent.
        let err = store.write("ns", &[Change::put("x/y", config(json!({})))]).await.unwrap_err();
        assert_eq!(err.kind(), crate::model::error::ErrorKind::InvalidName);

        let other = Store::open(&BackendSpec::memory()).await.unwrap();
        other.create_namespace("ns").await.unwrap();
        other.write("ns", &[Change::put("a", config(json!({"v": 9})))]).await.unwrap();
        let differences = store.diff(&other, &[]).await.unwrap();
        let kinds: Vec<(&str, Difference)> = differences.iter().map(|(_, c, d)| (c.as_str(), *d)).collect();
        assert_eq!(kinds, [("a", Difference::Different), ("b", Difference::OnlyLeft)]);
    }

    #[tokio::test]
    async fn secrets_are_stored_sealed_revealed_with_the_key_and_rotated() {
        let store = Store::open(&BackendSpec::memory()).await.unwrap();
        store.create_namespace("ns").await.unwrap();
        let mut keyring = crate::secrets::Keyring::new();
        keyring.generate(Some("k1")).unwrap();
        store.update_fields("ns", "db", &[FieldEdit::Set("host".into(), json!("h"))]).await.unwrap();
        store.set_secret("ns", "db", "password", json!("hunter2"), &keyring).await.unwrap();
        let raw = store.get("ns", "db").await.unwrap().unwrap();
        assert!(!serde_json::to_string(&*raw.value).unwrap().contains("hunter2"));
        assert!(crate::model::sealed::is_sealed(&raw.value["password"]));
        let shown = store.get_revealed("ns", "db", &keyring).await.unwrap().unwrap();
        assert_eq!(serde_json::Value::Object(shown), json!({"host": "h", "password": "hunter2"}));
        // Rotation: a new primary key reseals everything; then the old key can go.
        keyring.generate(Some("k2")).unwrap();
        keyring.set_primary("k2").unwrap();
        assert_eq!(store.rotate_secrets(&[], &keyring).await.unwrap(), 1);
        assert_eq!(store.rotate_secrets(&[], &keyring).await.unwrap(), 0, "nothing left to reseal");
        let raw = store.get("ns", "db").await.unwrap().unwrap();
        assert_eq!(crate::model::sealed::key_id(&raw.value["password"]), Some("k2"));
        let mut only_new = crate::secrets::Keyring::new();
        only_new.generate(Some("k1")).unwrap(); // same id, another key: cannot open
        assert!(store.get_revealed("ns", "db", &only_new).await.is_err());
        assert_eq!(store.get_revealed("ns", "db", &keyring).await.unwrap().unwrap()["password"], json!("hunter2"));
    }
}

/// Which revisions of a history to return: those numbered below `before` (all when `None`),
/// at most `limit`, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Only revisions numbered below this (the last number of the previous page).
    pub before: Option<u64>,
    /// At most this many.
    pub limit: usize,
}

impl Page {
    /// Every revision kept.
    pub fn all() -> Self {
        Page { before: None, limit: usize::MAX }
    }

    /// The newest `limit`.
    pub fn newest(limit: usize) -> Self {
        Page { before: None, limit }
    }
}

impl Default for Page {
    /// The newest 50.
    fn default() -> Self {
        Page::newest(50)
    }
}

/// Which changes a namespace's log lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    /// Only changes made at or after this time.
    pub since: Option<std::time::SystemTime>,
    /// Only changes by this actor.
    pub actor: Option<String>,
    /// At most this many (the newest).
    pub limit: Option<usize>,
}

/// A namespace's schemas as a change finds them.
enum Current {
    /// None are set.
    None,
    /// These.
    Schemas(Schemas),
    /// A document is stored that cannot be read as one (what is wrong).
    Unreadable(crate::model::error::Corruption),
}

/// What [`Store::rotate_secrets_report`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// How many secrets were resealed under the primary key.
    pub resealed: usize,
    /// Each secret left as it was because it did not open: namespace, configuration, JSON
    /// pointer, and why (never the value).
    pub unopened: Vec<(String, String, String, String)>,
}
