//! [`BackendExt`]: what callers use on every backend, and the write path's policy, once: the
//! name rules, depth and size checks, the schema check, the re-seal rule of secrets and
//! read-back settling. Engines ([`crate::backend`]) only store; they never call up here.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;

use crate::backend::{history_off, Backend, ChangeSet};
use crate::model::change::{Applied, Change, ChangeKind, Precondition, WriteReport};
use crate::model::codec::json_size;
use crate::model::error::{Error, Result};
use crate::model::name::{ConfigName, NameKind, NamespaceName};
use crate::model::version::{Configuration, NamespaceData, Stored, Version};

/// What callers use, for every backend: the string-taking operations (each checks its names
/// once and calls the engine with typed ones) and conveniences built on them.
#[async_trait]
pub trait BackendExt: Backend {
    /// An existing namespace's name, checked.
    fn namespace(&self, name: &str) -> Result<NamespaceName> {
        self.validate_name(NameKind::Namespace, name)?;
        Ok(NamespaceName::checked(name))
    }

    /// A configuration's name, checked.
    fn config_name(&self, name: &str) -> Result<ConfigName> {
        self.validate_name(NameKind::Configuration, name)?;
        Ok(ConfigName::checked(name))
    }

    /// Creates a namespace; `false` if it existed.
    async fn create_namespace(&self, namespace: &str) -> Result<bool> {
        self.validate_new_name(NameKind::Namespace, namespace)?;
        // Names made before this rule may be in another Unicode form: a new one canonically
        // equal to one of them would look like it and be another namespace.
        if let Some(existing) = self
            .list_namespaces()
            .await?
            .into_iter()
            .find(|e| e != namespace && crate::model::name::nfc(e) == namespace)
        {
            return Err(Error::InvalidName {
                name: namespace.to_owned(),
                kind: NameKind::Namespace,
                rule: crate::model::name::NameRule::CanonicallyEqual { existing },
            });
        }
        self.create(&NamespaceName::checked(namespace)).await
    }

    /// Deletes a namespace and everything in it, then its schemas (a namespace created again
    /// under the same name starts without them; their revisions go too).
    async fn delete_namespace(&self, namespace: &str) -> Result<()> {
        let namespace = self.namespace(namespace)?;
        self.delete(&namespace).await?;
        // Removing a document that is not there is not an error: one request, no read first.
        if let Err(e) = self.put_schema_document(&namespace, None, &Precondition::Any).await {
            tracing::warn!(backend = %self.describe(), %namespace, error = %e, "the deleted namespace's schemas could not be removed");
        }
        Ok(())
    }

    /// Reads a whole namespace in one bulk call.
    async fn load_namespace(&self, namespace: &str) -> Result<NamespaceData> {
        self.load(&self.namespace(namespace)?).await
    }

    /// Reads a whole namespace in one bulk call, in compact form (see [`Backend::load_compact`]).
    async fn load_namespace_compact(&self, namespace: &str) -> Result<crate::model::compact::CompactNamespace> {
        self.load_compact(&self.namespace(namespace)?).await
    }

    /// Reads one configuration, and only it ([`Backend::read_one`], decoded here): `None` if it
    /// does not exist, [`Error::Corrupt`] if it is not a configuration.
    async fn load_configuration(&self, namespace: &str, name: &str) -> Result<Option<Stored>> {
        let (namespace, name) = (self.namespace(namespace)?, self.config_name(name)?);
        let one = crate::model::decode::One::new(name.as_str());
        self.read_one(&namespace, &name, one.clone()).await?;
        one.read()
    }

    /// Applies a batch of changes to one namespace (see [`Backend::apply`]); a batch with a bad
    /// name, or naming one configuration twice, is refused whole. History records the library's
    /// author ([`Author::library`](crate::model::history::Author::library)); see [`BackendExt::write_as`].
    async fn write(&self, namespace: &str, changes: &[Change]) -> WriteReport {
        self.write_as(namespace, changes, &crate::model::history::Author::library()).await
    }

    /// [`BackendExt::write`], recorded in history as made by `author`.
    ///
    /// The puts are checked against the namespace's schemas first ([`crate::schema`]): under
    /// `enforce` a violation refuses the whole batch ([`Error::SchemaViolation`]); under `warn`
    /// the batch is written and the violations are in [`WriteReport::warnings`].
    async fn write_as(
        &self,
        namespace: &str,
        changes: &[Change],
        author: &crate::model::history::Author,
    ) -> WriteReport {
        self.write_sealed_as(namespace, changes, author, None).await
    }

    /// [`BackendExt::write_as`] with the keyring at hand. Every write goes through here, and
    /// with it the one rule for secrets: a plain value written at a JSON pointer where the
    /// stored configuration holds a sealed one is sealed again under the keyring's primary key
    /// (the secret opened and left as it was is put back as it was stored); without a keyring it
    /// is refused ([`Error::InvalidValue`] naming the pointer). A secret is never stored in the
    /// clear by a writer that read it opened (`get` in Python, `--reveal`), nor by `set` of a
    /// plain value over it; [`Change::unseal`] turns one back into a plain value on purpose.
    async fn write_sealed_as(
        &self,
        namespace: &str,
        changes: &[Change],
        author: &crate::model::history::Author,
        keyring: Option<&crate::secrets::Keyring>,
    ) -> WriteReport {
        self.write_with(namespace, changes, &WriteOptions { keyring, ..WriteOptions::by(author) }).await
    }

    /// Writes a batch as `options` say: the one write path every other `write` method is a
    /// case of (names, depth and size, the re-seal rule of secrets, the schema check, the
    /// engine's atomic apply, then settling when asked).
    async fn write_with(&self, namespace: &str, changes: &[Change], options: &WriteOptions<'_>) -> WriteReport {
        let report = write_once(self, namespace, changes, options).await;
        if options.settle {
            settle(self, namespace, changes, report).await
        } else {
            report
        }
    }

    /// The schema violations of a batch, as [`BackendExt::write`] would find them (`Err` under
    /// `enforce`, the list under `warn`), without writing: for callers that write several
    /// batches and must refuse all of them before the first.
    async fn check_schemas(&self, namespace: &str, changes: &[Change]) -> Result<Vec<crate::model::error::Violation>> {
        crate::schema::check_batch(self, &self.namespace(namespace)?, changes).await
    }

    /// One configuration's recorded history (see [`Backend::history`]); [`Error::NotFound`]
    /// at once when the backend keeps none ([`Capabilities::history`](crate::backend::Capabilities::history)).
    async fn configuration_history(&self, namespace: &str, name: &str) -> Result<crate::model::history::History> {
        let (namespace, name) = (self.namespace(namespace)?, self.config_name(name)?);
        if !self.capabilities().history {
            return Err(history_off(&self.describe(), namespace.as_str()));
        }
        self.history(&namespace, &name).await.map(crate::model::history::History::sorted)
    }

    /// The configurations of a namespace that have a recorded history (see
    /// [`Backend::history_names`]); [`Error::NotFound`] when the backend keeps none.
    async fn history_configurations(&self, namespace: &str) -> Result<Vec<String>> {
        let namespace = self.namespace(namespace)?;
        if !self.capabilities().history {
            return Err(history_off(&self.describe(), namespace.as_str()));
        }
        self.history_names(&namespace).await
    }

    /// Checks a name against the shared rules and this backend's own.
    fn validate_name(&self, kind: NameKind, name: &str) -> Result<()> {
        crate::model::name::validate(kind, name)?;
        self.check_name(kind, name)
    }

    /// Checks a name that is about to be created or written ([`crate::model::name::validate_new`]
    /// and this backend's own rules).
    fn validate_new_name(&self, kind: NameKind, name: &str) -> Result<()> {
        crate::model::name::validate_new(kind, name)?;
        self.check_name(kind, name)
    }

    /// Checks a batch as a backend's `write` would before writing anything (names, the rules
    /// for new names, depth, the value size limit), so that callers writing several batches
    /// (an import, a persist of several namespaces) can refuse all of them before the first.
    fn check_batch(&self, namespace: &str, changes: &[Change]) -> Result<()> {
        validate_batch(self, namespace, changes)?;
        let Some(limit) = self.capabilities().max_value_bytes else { return Ok(()) };
        for change in changes {
            if let ChangeKind::Put(value) = &change.kind {
                let size = json_size(value);
                if size > limit {
                    return Err(Error::TooLarge {
                        location: format!("{} configuration {namespace}/{}", self.describe(), change.name),
                        size,
                        limit,
                    });
                }
            }
        }
        Ok(())
    }

    /// Writes a batch like [`BackendExt::write`]; when it fails in a way that leaves the outcome of
    /// sent changes unknown (the connection broke: [`Error::Unavailable`] or [`Error::Io`]),
    /// what it touched is read back (the one configuration of a point write, else the
    /// namespace; a few tries over about two seconds, while the store comes back), and each
    /// change not reported applied is settled by what the store holds: a put whose
    /// value is stored, or a delete whose configuration is gone, landed. If every change
    /// landed, the report has no error (a warning is logged). If the store cannot be read, the
    /// unsettled changes are listed in [`WriteReport::in_doubt`].
    async fn write_settled(&self, namespace: &str, changes: &[Change]) -> WriteReport {
        self.write_settled_as(namespace, changes, &crate::model::history::Author::library()).await
    }

    /// [`BackendExt::write_settled`], recorded in history as made by `author`.
    async fn write_settled_as(
        &self,
        namespace: &str,
        changes: &[Change],
        author: &crate::model::history::Author,
    ) -> WriteReport {
        self.write_settled_sealed_as(namespace, changes, author, None).await
    }

    /// [`BackendExt::write_settled_as`] with the keyring at hand (see
    /// [`BackendExt::write_sealed_as`]).
    async fn write_settled_sealed_as(
        &self,
        namespace: &str,
        changes: &[Change],
        author: &crate::model::history::Author,
        keyring: Option<&crate::secrets::Keyring>,
    ) -> WriteReport {
        self.write_with(namespace, changes, &WriteOptions { keyring, settle: true, ..WriteOptions::by(author) }).await
    }

    /// Stores one configuration, whatever is there, and returns its new version.
    async fn put_configuration(&self, namespace: &str, name: &str, value: Configuration) -> Result<Version> {
        let applied = self.write(namespace, &[Change::put(name, value)]).await.into_result()?;
        applied
            .into_iter()
            .next()
            .and_then(|a| a.version)
            .ok_or_else(|| Error::unavailable(self.describe(), "write returned no version"))
    }

    /// Deletes one configuration if it exists.
    async fn delete_configuration(&self, namespace: &str, name: &str) -> Result<()> {
        self.write(namespace, &[Change::delete(name)]).await.into_result().map(drop)
    }
}

impl<B: Backend + ?Sized> BackendExt for B {}

/// The read-back of [`BackendExt::write_settled`]: the changes of a report whose error leaves
/// their outcome unknown, settled by what the store holds.
pub(crate) async fn settle<B: BackendExt + ?Sized>(
    backend: &B,
    namespace: &str,
    changes: &[Change],
    mut report: WriteReport,
) -> WriteReport {
    let unsure = |e: &Error| matches!(e, Error::Unavailable { .. } | Error::Io { .. }) && !e.never_reached_the_store();
    if !report.error.as_ref().is_some_and(unsure) {
        return report;
    }
    let done: std::collections::HashSet<String> = report.applied.iter().map(|a| a.name.clone()).collect();
    let pending: Vec<&Change> = changes.iter().filter(|c| !done.contains(&c.name)).collect();
    if pending.is_empty() {
        return report;
    }
    for attempt in 1..=READ_BACK_ATTEMPTS {
        // What the write touched: the one configuration of a point write, else the namespace.
        let stored: Result<BTreeMap<String, Stored>> = match pending.as_slice() {
            [one] => backend
                .load_configuration(namespace, &one.name)
                .await
                .map(|found| found.map(|s| (one.name.clone(), s)).into_iter().collect()),
            _ => backend.load_namespace(namespace).await.map(|data| data.into_parts().0),
        };
        match stored {
            Ok(data) => {
                for change in pending {
                    let landed = match (&change.kind, data.get(&change.name)) {
                        (ChangeKind::Put(value), Some(stored)) if *stored.value == **value => {
                            Some(Some(stored.version.clone()))
                        }
                        (ChangeKind::Delete, None) => Some(None),
                        _ => None,
                    };
                    if let Some(version) = landed {
                        report.applied.push(Applied { name: change.name.clone(), version });
                    }
                }
                if report.applied.len() == changes.len() {
                    if let Some(error) = report.error.take() {
                        tracing::warn!(
                            backend = %backend.describe(), namespace, %error,
                            "the write's answer was lost, but reading back shows every change landed"
                        );
                    }
                }
                return report;
            }
            Err(Error::Unavailable { .. } | Error::Io { .. }) if attempt < READ_BACK_ATTEMPTS => {
                tokio::time::sleep(std::time::Duration::from_millis(400)).await;
            }
            Err(_) => break,
        }
    }
    report.in_doubt = pending.into_iter().map(|c| c.name.clone()).collect();
    report
}

/// One write of a batch, without settling: the re-seal rule, the batch's checks, the schema
/// check (against the schemas read with the data when `options` has them, else as stored
/// now), then the engine's atomic apply.
async fn write_once<B: BackendExt + ?Sized>(
    backend: &B,
    namespace: &str,
    changes: &[Change],
    options: &WriteOptions<'_>,
) -> WriteReport {
    let sealed = match keep_secrets_sealed(backend, namespace, changes, options.keyring).await {
        Ok(sealed) => sealed,
        Err(e) => return WriteReport::failed(e),
    };
    let changes: &[Change] = &sealed;
    let set = match validate_batch(backend, namespace, changes) {
        Ok(set) => set,
        Err(e) => return WriteReport::failed(e),
    };
    let name = NamespaceName::checked(namespace);
    let checked = match options.schemas {
        Some(read) => crate::schema::check_with(read.schemas.as_deref(), namespace, changes),
        None => crate::schema::check_batch(backend, &name, changes).await,
    };
    let warnings = match checked {
        Ok(warnings) => warnings,
        Err(e) => return WriteReport::failed(e),
    };
    let set = set.by(options.author).under_schema(options.schemas.map(crate::schema::SchemasAsRead::precondition));
    let mut report = backend.apply(&name, &set).await;
    report.warnings = warnings;
    report
}

/// How [`BackendExt::write_with`] writes a batch.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct WriteOptions<'a> {
    /// Who makes it (recorded in history).
    pub author: &'a crate::model::history::Author,
    /// The keyring the re-seal rule seals with (see [`BackendExt::write_sealed_as`]).
    pub keyring: Option<&'a crate::secrets::Keyring>,
    /// Read back what the write touched when its answer was lost (see
    /// [`BackendExt::write_settled`]).
    pub settle: bool,
    /// The namespace's schemas as read with the data the batch was made from: checked against
    /// without fetching them again, and the batch applied only if they are unchanged where the
    /// engine can tell ([`ChangeSet::schema`]).
    pub schemas: Option<&'a crate::schema::SchemasAsRead>,
}

impl<'a> WriteOptions<'a> {
    /// A write by `author`: no keyring, no settling, the schemas read as the write is made.
    pub fn by(author: &'a crate::model::history::Author) -> Self {
        WriteOptions { author, keyring: None, settle: false, schemas: None }
    }

    /// The same, sealing again with `keyring`.
    pub fn keyring(self, keyring: Option<&'a crate::secrets::Keyring>) -> Self {
        WriteOptions { keyring, ..self }
    }

    /// The same, settled by a read-back when the answer is lost.
    pub fn settled(self) -> Self {
        WriteOptions { settle: true, ..self }
    }

    /// The same, checked against the schemas read with the data (see
    /// [`WriteOptions::schemas`]).
    pub fn checked_against(self, schemas: &'a crate::schema::SchemasAsRead) -> Self {
        WriteOptions { schemas: Some(schemas), ..self }
    }
}

/// The re-seal rule of [`BackendExt::write_sealed_as`] over a batch: the puts as they are to be
/// written. The stored values are read (the one configuration of a small batch, else the
/// namespace in one bulk read); a batch over nothing sealed is returned as it is.
async fn keep_secrets_sealed<'c, B: BackendExt + ?Sized>(
    backend: &B,
    namespace: &str,
    changes: &'c [Change],
    keyring: Option<&crate::secrets::Keyring>,
) -> Result<std::borrow::Cow<'c, [Change]>> {
    use std::borrow::Cow;
    // A put made on nothing (`Absent`) replaces nothing, or is refused; one that says what it
    // was made over ([`Change::over`]) is checked against that: neither reads the store.
    let needs_read =
        |c: &Change| matches!(c.kind, ChangeKind::Put(_)) && c.precondition != Precondition::Absent && c.over.is_none();
    let puts = changes.iter().filter(|c| needs_read(c)).count();
    let given: HashMap<String, Arc<Configuration>> =
        changes.iter().filter_map(|c| c.over.clone().map(|over| (c.name.clone(), over))).collect();
    if puts == 0 && given.values().all(|v| !crate::model::sealed::has_sealed(v)) {
        return Ok(Cow::Borrowed(changes));
    }
    let mut stored: HashMap<String, Arc<Configuration>> = if puts == 0 {
        HashMap::new()
    } else if puts <= 4 {
        let mut stored = HashMap::new();
        for change in changes.iter().filter(|c| needs_read(c)) {
            // Not there, not readable as a configuration, or a bad name: nothing sealed to keep
            // (the write itself says what is wrong).
            if let Ok(Some(found)) = backend.load_configuration(namespace, &change.name).await {
                stored.insert(change.name.clone(), found.value);
            }
        }
        stored
    } else {
        match backend.load_namespace(namespace).await {
            Ok(data) => data.into_iter().map(|(name, found)| (name, found.value)).collect(),
            Err(_) => HashMap::new(),
        }
    };
    stored.extend(given);
    reseal(changes, &stored, namespace, keyring)
}

/// The re-seal rule of [`BackendExt::write_sealed_as`] over a batch, given the stored values
/// of the configurations it puts (those without one replace nothing sealed).
pub(crate) fn reseal<'c>(
    changes: &'c [Change],
    stored: &HashMap<String, Arc<Configuration>>,
    namespace: &str,
    keyring: Option<&crate::secrets::Keyring>,
) -> Result<std::borrow::Cow<'c, [Change]>> {
    use std::borrow::Cow;
    let mut out: Option<Vec<Change>> = None;
    for (index, change) in changes.iter().enumerate() {
        let ChangeKind::Put(new) = &change.kind else { continue };
        let Some(old) = stored.get(&change.name).filter(|v| crate::model::sealed::has_sealed(v)) else { continue };
        let old: std::borrow::Cow<'_, Configuration> = if change.unseal.is_empty() {
            std::borrow::Cow::Borrowed(&**old)
        } else {
            // Fields unsealed on purpose are not sealed places any more.
            let mut kept = serde_json::Value::Object((**old).clone());
            for pointer in &change.unseal {
                if let Some(at) = kept.pointer_mut(pointer) {
                    *at = serde_json::Value::Null;
                }
            }
            match kept {
                serde_json::Value::Object(map) => std::borrow::Cow::Owned(map),
                _ => continue,
            }
        };
        let kept = crate::secrets::keep_sealed(new, &old, namespace, &change.name, keyring)?;
        if kept != **new {
            let out = out.get_or_insert_with(|| changes.to_vec());
            out[index].kind = ChangeKind::Put(Arc::new(kept));
        }
    }
    Ok(out.map_or(Cow::Borrowed(changes), Cow::Owned))
}

/// Validates the namespace and every change's name of a batch, and rejects a batch that names
/// one configuration twice.
pub(crate) fn validate_batch<'a, B: Backend + ?Sized>(
    backend: &B,
    namespace: &str,
    changes: &'a [Change],
) -> Result<ChangeSet<'a>> {
    backend.validate_name(NameKind::Namespace, namespace)?;
    let mut seen = std::collections::HashSet::with_capacity(changes.len());
    for change in changes {
        match &change.kind {
            ChangeKind::Put(value) => {
                backend.validate_new_name(NameKind::Configuration, &change.name)?;
                let depth = crate::model::json::object_depth(value);
                if depth > crate::model::json::MAX_DEPTH {
                    return Err(Error::InvalidValue {
                        location: format!("{} configuration {namespace}/{}", backend.describe(), change.name),
                        message: format!(
                            "it nests {depth} levels deep, more than the {} that can be read back",
                            crate::model::json::MAX_DEPTH
                        ),
                    });
                }
            }
            ChangeKind::Delete => backend.validate_name(NameKind::Configuration, &change.name)?,
        }
        if !seen.insert(change.name.as_str()) {
            return Err(Error::InvalidValue {
                location: format!("{} namespace {namespace:?}", backend.describe()),
                message: format!("batch changes configuration {:?} twice", change.name),
            });
        }
    }
    static LIBRARY: std::sync::OnceLock<crate::model::history::Author> = std::sync::OnceLock::new();
    let author = LIBRARY.get_or_init(|| crate::model::history::Author::current("library"));
    Ok(ChangeSet::new(changes, author))
}

/// How often [`BackendExt::write_settled`] tries to read a namespace back.
const READ_BACK_ATTEMPTS: usize = 5;
