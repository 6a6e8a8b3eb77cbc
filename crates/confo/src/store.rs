//! [`Store`]: a stateless, cheap-to-clone handle over one backend, for one-shot callers and
//! servers. Every call names what it touches; nothing is cached and nothing is "current", so
//! one `Store` can serve any number of concurrent callers.
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

use std::sync::Arc;

use crate::backend::{
    Applied, Backend, BackendExt, Change, Configuration, NamespaceData, Precondition, Stored, Version,
};
use crate::error::Corruption;
use crate::error::{Error, Missing, Result};
use crate::history::{Author, History, Revision};
use crate::manager::{FieldEdit, Removal, WatchOptions, Watcher};
use crate::schema::{Schemas, Violation};
use crate::spec::BackendSpec;
use crate::transfer::{Difference, Document, Plan};

/// A handle over one backend; clones share the backend's connection.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
    /// Who its writes are recorded as made by.
    author: Arc<Author>,
}

impl Store {
    /// Opens (connects to) the store a spec names.
    pub async fn open(spec: &BackendSpec) -> Result<Self> {
        Ok(Store::new(spec.open().await?))
    }

    /// A store over a backend already open; its writes are recorded in history as the
    /// library's ([`Author::library`]).
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Store { backend, author: Author::library() }
    }

    /// The same store, its writes recorded in history as made by `author` (an actor, the tool,
    /// a message). Cheap: the connection is shared.
    pub fn with_author(&self, author: Arc<Author>) -> Self {
        Store { backend: self.backend.clone(), author }
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
        if let Some(found) = crate::history::find(&history, number) {
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
        let Some(value) = revision.value else {
            return Err(Error::InvalidValue {
                location: format!("{} configuration {namespace}/{config}@{number}", self.backend.describe()),
                message: "that revision is a deletion: there is no value to restore (delete explicitly instead)"
                    .to_owned(),
            });
        };
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
            self.backend.validate_new_name(crate::name::NameKind::Configuration, config)?;
        }
        self.change_schemas(namespace, None, |current| {
            let mut schemas = current.unwrap_or_default();
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
            let Some(mut schemas) = current else { return Err(missing(namespace)) };
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
        let Some(revision) = crate::history::find(&history, number) else {
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
    /// if the document is still as read (else again, a few times).
    async fn change_schemas(
        &self,
        namespace: &str,
        restores: Option<u64>,
        change: impl Fn(Option<Schemas>) -> Result<Option<Schemas>>,
    ) -> Result<Option<Schemas>> {
        let name = self.backend.namespace(namespace)?;
        let keep = if self.backend.capabilities().history { crate::schema::REVISIONS_KEPT } else { 0 };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (document, precondition) = match crate::schema::load(&*self.backend, &name).await? {
                Some((doc, version)) => (doc, Precondition::Version(version)),
                None => (Default::default(), Precondition::Absent),
            };
            let changed = change(document.schemas.clone())?;
            if let Some(schemas) = &changed {
                schemas.compile(namespace)?;
            }
            let bytes = document.next(changed.clone(), &self.author, restores, keep)?;
            match self.backend.put_schema_document(&name, Some(bytes), &precondition).await {
                Err(e) if e.is_conflict() && attempt < crate::manager::FIELD_UPDATE_ATTEMPTS => {
                    tokio::time::sleep(crate::manager::backoff(attempt)).await;
                }
                Err(e) => return Err(e),
                Ok(_) => return Ok(changed),
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
        let report = self.backend.write_settled_as(namespace, std::slice::from_ref(&change), &self.author).await;
        if report.error.is_some() {
            // A plain error, or "in doubt" when the answer was lost and could not be read back.
            return Err(Error::incomplete(Vec::new(), namespace, [change.name.as_str()], report, []));
        }
        Ok(report.applied.into_iter().next().and_then(|a| a.version))
    }

    /// Sets and removes fields of one configuration, on what is stored now: read it, apply the
    /// edits, write it only if it is still that version; on a conflict (another writer), again,
    /// up to [`crate::manager::FIELD_UPDATE_ATTEMPTS`] times with random growing pauses. A
    /// configuration that does not exist is created by a set ([`Error::NotFound`] for a
    /// remove). Returns the new version.
    pub async fn update_fields(&self, namespace: &str, config: &str, edits: &[FieldEdit]) -> Result<Version> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let current = self.get(namespace, config).await?;
            let (mut value, precondition) = match current {
                Some(stored) => ((*stored.value).clone(), Precondition::Version(stored.version)),
                None => (Configuration::new(), Precondition::Absent),
            };
            for edit in edits {
                match edit {
                    FieldEdit::Set(field, new) => {
                        value.insert(field.clone(), new.clone());
                    }
                    FieldEdit::Remove(field) => {
                        if precondition == Precondition::Absent {
                            return Err(Error::not_found(
                                Missing::Configuration,
                                config,
                                format!("namespace {namespace:?}"),
                            ));
                        }
                        if value.shift_remove(field).is_none() {
                            return Err(Error::not_found(
                                Missing::Field,
                                format!("{config}.{field}"),
                                format!("namespace {namespace:?}"),
                            ));
                        }
                    }
                }
            }
            match self.put(namespace, config, value, precondition).await {
                Err(e) if e.is_conflict() && attempt < crate::manager::FIELD_UPDATE_ATTEMPTS => {
                    tokio::time::sleep(crate::manager::backoff(attempt)).await;
                }
                other => return other,
            }
        }
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
    pub async fn rotate_secrets(&self, namespaces: &[String], keyring: &crate::secrets::Keyring) -> Result<usize> {
        let namespaces = if namespaces.is_empty() { self.namespaces().await? } else { namespaces.to_vec() };
        let mut count = 0;
        for namespace in &namespaces {
            for (config, stored) in self.load(namespace).await? {
                if crate::secrets::has_sealed(&stored.value) {
                    count += self.rotate_one(namespace, &config, stored, keyring).await?;
                }
            }
        }
        Ok(count)
    }

    /// Reseals one configuration's secrets, starting from what the bulk read gave; read again
    /// only after a conflict.
    async fn rotate_one(
        &self,
        namespace: &str,
        config: &str,
        mut stored: Stored,
        keyring: &crate::secrets::Keyring,
    ) -> Result<usize> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut value = (*stored.value).clone();
            let count = crate::secrets::reseal_all(&mut value, namespace, config, keyring)?;
            if count == 0 {
                return Ok(0);
            }
            match self.put(namespace, config, value, Precondition::Version(stored.version)).await {
                Err(e) if e.is_conflict() && attempt < crate::manager::FIELD_UPDATE_ATTEMPTS => {
                    tokio::time::sleep(crate::manager::backoff(attempt)).await;
                    match self.get(namespace, config).await? {
                        Some(fresh) => stored = fresh,
                        None => return Ok(0),
                    }
                }
                other => return other.map(|_| count),
            }
        }
    }

    /// Finds (and with `fix`, repairs) what breaks the layout's consistency: see
    /// [`Backend::repair`](crate::Backend::repair).
    pub async fn repair(&self, fix: bool) -> Result<crate::backend::Repair> {
        self.backend.repair(fix).await
    }

    /// Every configuration of a namespace in one bulk read.
    pub async fn load(&self, namespace: &str) -> Result<NamespaceData> {
        self.backend.load_namespace(namespace).await
    }

    /// Every configuration of a namespace in one bulk read, in the compact form a cache keeps
    /// (see [`Backend::load_compact`]).
    pub async fn load_compact(&self, namespace: &str) -> Result<crate::compact::CompactNamespace> {
        self.backend.load_namespace_compact(namespace).await
    }

    /// Writes a batch of changes to one namespace, each with its precondition; a batch with a
    /// bad name, an oversized value or a broken precondition writes nothing. Returns what was
    /// applied, in order; a failure part-way is [`Error::PersistIncomplete`] (what was written,
    /// what was not, what is in doubt after a lost answer, settled by reading back).
    pub async fn write(&self, namespace: &str, changes: &[Change]) -> Result<Vec<Applied>> {
        self.backend.check_batch(namespace, changes)?;
        let report = self.backend.write_settled_as(namespace, changes, &self.author).await;
        if report.error.is_none() {
            return Ok(report.applied);
        }
        Err(Error::incomplete(Vec::new(), namespace, changes.iter().map(|c| c.name.as_str()), report, []))
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

    /// What bringing the store to `document` would do; see [`crate::transfer::plan`].
    pub async fn plan(&self, document: &Document, prune: bool) -> Result<Plan> {
        crate::transfer::plan(&*self.backend, document, prune).await
    }

    /// Carries out a plan; see [`crate::transfer::apply`].
    pub async fn apply(&self, plan: &Plan, document: &Document, progress: impl FnMut(usize, usize)) -> Result<()> {
        crate::transfer::apply_as(&*self.backend, plan, document, &self.author, progress).await
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
        assert_eq!(err.kind(), crate::ErrorKind::InvalidName);

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
        assert!(crate::secrets::is_sealed(&raw.value["password"]));
        let shown = store.get_revealed("ns", "db", &keyring).await.unwrap().unwrap();
        assert_eq!(serde_json::Value::Object(shown), json!({"host": "h", "password": "hunter2"}));
        // Rotation: a new primary key reseals everything; then the old key can go.
        keyring.generate(Some("k2")).unwrap();
        keyring.set_primary("k2").unwrap();
        assert_eq!(store.rotate_secrets(&[], &keyring).await.unwrap(), 1);
        assert_eq!(store.rotate_secrets(&[], &keyring).await.unwrap(), 0, "nothing left to reseal");
        let raw = store.get("ns", "db").await.unwrap().unwrap();
        assert_eq!(crate::secrets::key_id(&raw.value["password"]), Some("k2"));
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
