//! [`Draft`]: staged edits as a plain value.
//!
//! A draft holds, per namespace and configuration, one edit (put a whole configuration, or
//! delete it) and the version the edit was made on (its *base*: the stored version when the
//! configuration was first edited, `None` when it did not exist). Committing turns each edit
//! into a [`Change`] whose precondition is that base, so an edit made on what someone else has
//! since changed is a [`Error::Conflict`](crate::Error::Conflict) and stays in the draft. Everything but
//! [`Draft::commit`] is synchronous and pure: it can be built, inspected and tested without a
//! runtime or a store.
//!
//! The session ([`crate::session::Confo`]) keeps one draft per backend; a server or a script can keep
//! its own and commit it to a [`Store`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> confo::Result<()> {
//! use confo::{Draft, Scope, Store};
//! let store = Store::open(&"memory:".parse()?).await?;
//! store.create_namespace("sales").await?;
//! let mut draft = Draft::new();
//! let mut db = serde_json::Map::new();
//! db.insert("port".into(), 5432.into());
//! draft.put("sales", "database", db, None); // made on "absent"
//! assert_eq!(draft.refs(), ["sales/database"]);
//! let written = draft.commit(&store, Scope::All, false).await?;
//! assert_eq!(written, ["sales/database"]);
//! assert!(draft.is_empty());
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::model::change::{Applied, Change, Precondition};
use crate::model::compact::Compact;
use crate::model::error::{ConfigId, ConfigRef, Result};
use crate::model::version::{Configuration, Version};
use crate::store::ext::BackendExt;
use crate::store::Store;

/// An edit of one configuration.
#[derive(Debug, Clone)]
pub enum Edit {
    /// Write this whole configuration.
    Put(Arc<Configuration>),
    /// Delete the configuration.
    Delete,
}

impl Edit {
    /// Whether this is the very edit `other` is (the same value, not an equal one): how a
    /// commit tells an edit it wrote from one made again while it was writing.
    fn is(&self, other: &Edit) -> bool {
        match (self, other) {
            (Edit::Put(a), Edit::Put(b)) => Arc::ptr_eq(a, b),
            (Edit::Delete, Edit::Delete) => true,
            _ => false,
        }
    }

    /// Whether writing this edit over `stored` would change nothing.
    fn changes_nothing(&self, stored: Option<&Compact>) -> bool {
        match (stored, self) {
            (Some(stored), Edit::Put(value)) => stored.same_as(value),
            (None, Edit::Delete) => true,
            _ => false,
        }
    }
}

/// An edit staged for one configuration, and the version it was made on.
#[derive(Debug, Clone)]
pub struct Staged {
    edit: Edit,
    base: Option<Version>,
}

impl Staged {
    /// The edit.
    pub fn edit(&self) -> &Edit {
        &self.edit
    }

    /// The stored version the edit was made on; `None`: the configuration did not exist.
    pub fn base(&self) -> Option<&Version> {
        self.base.as_ref()
    }

    /// The change that writes this edit: with its base as the precondition, or none with
    /// `force`.
    fn change(&self, config: &str, force: bool) -> Change {
        let change = match &self.edit {
            Edit::Put(value) => Change::put(config, value.clone()),
            Edit::Delete => Change::delete(config),
        };
        if force {
            return change;
        }
        change.when(self.base.clone().map_or(Precondition::Absent, Precondition::Version))
    }
}

/// What a commit writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// Every staged edit.
    All,
    /// The staged edits of one namespace.
    Namespace(&'a str),
    /// The staged edit of one configuration: (namespace, configuration).
    Configuration(&'a str, &'a str),
}

impl Scope<'_> {
    fn namespace(&self) -> Option<&str> {
        match *self {
            Scope::All => None,
            Scope::Namespace(ns) | Scope::Configuration(ns, _) => Some(ns),
        }
    }

    fn configuration(&self) -> Option<&str> {
        match *self {
            Scope::Configuration(_, cfg) => Some(cfg),
            _ => None,
        }
    }
}

/// What a snapshot knows of a configuration, for [`Draft::prepare`] to drop edits that would
/// change nothing.
#[derive(Debug, Clone, Copy)]
pub enum Known<'a> {
    /// Nothing is known: the edit is written as it is.
    Unknown,
    /// It does not exist.
    Absent,
    /// It is stored at this version with this content.
    Stored(&'a Version, &'a Compact),
    /// It exists but cannot be read: any edit of it changes something.
    Corrupt,
}

/// One namespace's part of a commit: each change with the staged edit it came from.
#[derive(Debug, Clone)]
pub struct Batch {
    namespace: String,
    sent: Vec<(Change, Staged)>,
}

impl Batch {
    /// The namespace written.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The changes, as the backend takes them.
    pub fn changes(&self) -> Vec<Change> {
        self.sent.iter().map(|(change, _)| change.clone()).collect()
    }

    /// The content a change of this batch wrote, for a session to update its snapshot:
    /// `Some(value)` for a put, `None` for a delete.
    pub fn written_value(&self, config: &str) -> Option<Option<Arc<Configuration>>> {
        self.sent.iter().find(|(change, _)| change.name == config).map(|(_, staged)| match &staged.edit {
            Edit::Put(value) => Some(value.clone()),
            Edit::Delete => None,
        })
    }
}

/// Staged edits over base versions; see the [module documentation](self).
#[derive(Debug, Clone, Default)]
pub struct Draft {
    edits: BTreeMap<String, BTreeMap<String, Staged>>,
}

impl Draft {
    /// An empty draft.
    pub fn new() -> Self {
        Draft::default()
    }

    /// Whether nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.edits.is_empty()
    }

    /// Stages an edit of `namespace/config`. `stored` is the version the caller sees stored now
    /// (`None`: absent); it becomes the edit's base unless the configuration was already edited,
    /// whose first base is kept (the edit is still made on what was read then).
    pub fn stage(&mut self, namespace: &str, config: &str, edit: Edit, stored: Option<Version>) {
        // Editing again what is already staged (the common case of several `set`s) allocates
        // nothing: the first base is kept and the edit replaced in place.
        if let Some(staged) = self.edits.get_mut(namespace).and_then(|edits| edits.get_mut(config)) {
            staged.edit = edit;
            return;
        }
        let edits = match self.edits.get_mut(namespace) {
            Some(edits) => edits,
            None => self.edits.entry(namespace.to_owned()).or_default(),
        };
        edits.insert(config.to_owned(), Staged { edit, base: stored });
    }

    /// Stages a whole configuration, made on `stored` (see [`Draft::stage`]).
    pub fn put(&mut self, namespace: &str, config: &str, value: Configuration, stored: Option<Version>) {
        self.stage(namespace, config, Edit::Put(Arc::new(value)), stored);
    }

    /// Stages a deletion, made on `stored` (see [`Draft::stage`]).
    pub fn delete(&mut self, namespace: &str, config: &str, stored: Option<Version>) {
        self.stage(namespace, config, Edit::Delete, stored);
    }

    /// The value staged for one configuration, to change in place, if it is staged as a put
    /// that nothing else shares (else `None`: change a copy and stage it).
    pub(crate) fn staged_value_mut(&mut self, namespace: &str, config: &str) -> Option<&mut Configuration> {
        match &mut self.edits.get_mut(namespace)?.get_mut(config)?.edit {
            Edit::Put(value) => Arc::get_mut(value),
            Edit::Delete => None,
        }
    }

    /// The edit staged for one configuration.
    pub fn get(&self, namespace: &str, config: &str) -> Option<&Staged> {
        self.edits.get(namespace)?.get(config)
    }

    /// The content of a configuration with its staged edit applied over `stored`: the staged
    /// value, `None` for a staged deletion, else `stored`.
    pub fn effective(
        &self,
        namespace: &str,
        config: &str,
        stored: Option<&Arc<Configuration>>,
    ) -> Option<Arc<Configuration>> {
        match self.get(namespace, config).map(|s| &s.edit) {
            Some(Edit::Put(value)) => Some(value.clone()),
            Some(Edit::Delete) => None,
            None => stored.cloned(),
        }
    }

    /// Every staged edit: (namespace, configuration, edit), sorted.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, &Staged)> {
        self.edits.iter().flat_map(|(ns, edits)| edits.iter().map(move |(cfg, s)| (ns.as_str(), cfg.as_str(), s)))
    }

    /// The staged edits of one namespace: (configuration, edit), sorted.
    pub fn namespace(&self, namespace: &str) -> impl Iterator<Item = (&str, &Staged)> {
        self.edits.get(namespace).into_iter().flatten().map(|(cfg, s)| (cfg.as_str(), s))
    }

    /// Every staged edit as `namespace/configuration`, sorted.
    pub fn refs(&self) -> Vec<ConfigRef> {
        self.iter().map(|(ns, cfg, _)| ConfigId::new(ns, cfg)).collect()
    }

    /// Drops the staged edits in `scope`.
    pub fn discard(&mut self, scope: Scope<'_>) {
        match scope {
            Scope::All => self.edits.clear(),
            Scope::Namespace(ns) => drop(self.edits.remove(ns)),
            Scope::Configuration(ns, cfg) => {
                if let Some(edits) = self.edits.get_mut(ns) {
                    edits.remove(cfg);
                    if edits.is_empty() {
                        self.edits.remove(ns);
                    }
                }
            }
        }
    }

    /// The batches that write the edits in `scope`, one per namespace, each change with its
    /// base as precondition (none with `force`). Edits that `known` shows would change nothing
    /// are dropped from the draft here and never written.
    pub fn prepare<'s>(
        &mut self,
        scope: Scope<'_>,
        force: bool,
        known: impl Fn(&str, &str) -> Known<'s>,
    ) -> Vec<Batch> {
        let mut batches = Vec::new();
        for (ns, edits) in &mut self.edits {
            if scope.namespace().is_some_and(|want| want != ns) {
                continue;
            }
            edits.retain(|cfg, staged| match known(ns, cfg) {
                Known::Unknown | Known::Corrupt => true,
                Known::Absent => !staged.edit.changes_nothing(None),
                Known::Stored(_, stored) => !staged.edit.changes_nothing(Some(stored)),
            });
            let sent: Vec<(Change, Staged)> = edits
                .iter()
                .filter(|(cfg, _)| scope.configuration().is_none_or(|want| want == cfg.as_str()))
                .map(|(cfg, staged)| (staged.change(cfg, force), staged.clone()))
                .collect();
            if !sent.is_empty() {
                batches.push(Batch { namespace: ns.clone(), sent });
            }
        }
        self.edits.retain(|_, edits| !edits.is_empty());
        batches
    }

    /// Records what a batch's write applied: each written edit leaves the draft, unless it was
    /// edited again since [`Draft::prepare`] (then it stays, now based on the version just
    /// written).
    pub fn settle(&mut self, batch: &Batch, applied: &[Applied]) {
        let Some(edits) = self.edits.get_mut(&batch.namespace) else { return };
        for done in applied {
            let Some((_, sent)) = batch.sent.iter().find(|(c, _)| c.name == done.name) else { continue };
            match edits.get_mut(&done.name) {
                Some(now) if now.edit.is(&sent.edit) => {
                    edits.remove(&done.name);
                }
                Some(now) => now.base = done.version.clone(),
                None => {}
            }
        }
        if edits.is_empty() {
            self.edits.remove(&batch.namespace);
        }
    }

    /// Writes the edits in `scope` to `store`, each only if its configuration is still at the
    /// edit's base (any version with `force`). Returns what was written, as
    /// `namespace/configuration`. Every batch is checked before the first is written; on a
    /// failure ([`Error::Conflict`](crate::Error::Conflict), or [`Error::PersistIncomplete`](crate::Error::PersistIncomplete) once something was
    /// written), the edits not written stay in the draft.
    pub async fn commit(&mut self, store: &Store, scope: Scope<'_>, force: bool) -> Result<Vec<ConfigRef>> {
        let batches = self.prepare(scope, force, |_, _| Known::Unknown);
        write_batches(store, &batches, |batch, applied| self.settle(batch, applied)).await
    }
}

/// Writes batches in order, every one checked before the first is written, calling `settle`
/// with what each applied; stops at the first failure with an error that says what was
/// written, what was not, and what is in doubt.
pub(crate) async fn write_batches(
    store: &Store,
    batches: &[Batch],
    mut settle: impl FnMut(&Batch, &[Applied]),
) -> Result<Vec<ConfigRef>> {
    let backend = store.backend();
    let changes: Vec<Vec<Change>> = batches.iter().map(Batch::changes).collect();
    for (batch, changes) in batches.iter().zip(&changes) {
        backend.check_batch(&batch.namespace, changes)?;
    }
    let all = batches.iter().zip(&changes).map(|(b, c)| (b.namespace.as_str(), c.as_slice()));
    crate::schema::check_batches(&**backend, all).await?;
    let mut written: Vec<ConfigRef> = Vec::new();
    for (index, (batch, changes)) in batches.iter().zip(&changes).enumerate() {
        let ns = &batch.namespace;
        let report = backend.write_settled_sealed_as(ns, changes, store.author(), store.keyring()).await;
        if !report.applied.is_empty() {
            settle(batch, &report.applied);
        }
        if report.error.is_some() {
            let later = batches[index + 1..]
                .iter()
                .flat_map(|b| b.sent.iter().map(move |(c, _)| ConfigId::new(&b.namespace, &c.name)));
            return Err(report.into_incomplete(written, ns, changes.iter().map(|c| c.name.as_str()), later));
        }
        written.extend(report.applied.iter().map(|a| ConfigId::new(ns, &a.name)));
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn config(value: serde_json::Value) -> Configuration {
        match value {
            serde_json::Value::Object(map) => map,
            _ => unreachable!("objects only"),
        }
    }

    fn stored(value: serde_json::Value, version: i64) -> (Version, Compact) {
        (Version::number(version), Compact::new(&config(value), &mut Default::default()))
    }

    #[test]
    fn the_first_base_is_kept_across_edits() {
        let mut draft = Draft::new();
        draft.put("ns", "a", config(json!({"x": 1})), Some(Version::number(3)));
        draft.put("ns", "a", config(json!({"x": 2})), Some(Version::number(9)));
        let staged = draft.get("ns", "a").unwrap();
        assert_eq!(staged.base(), Some(&Version::number(3)));
        assert!(matches!(staged.edit(), Edit::Put(v) if v["x"] == 2));
        draft.delete("ns", "b", None);
        assert_eq!(draft.refs(), ["ns/a", "ns/b"]);
        assert_eq!(draft.effective("ns", "b", Some(&Arc::new(config(json!({"old": true}))))), None);
        let other = Arc::new(config(json!({"y": 1})));
        assert_eq!(draft.effective("ns", "c", Some(&other)), Some(other));
    }

    #[test]
    fn prepare_sets_preconditions_and_drops_edits_that_change_nothing() {
        let mut draft = Draft::new();
        let same = stored(json!({"x": 1}), 4);
        draft.put("ns", "same", config(json!({"x": 1})), Some(same.0.clone()));
        draft.put("ns", "new", config(json!({"x": 1})), None);
        draft.put("ns", "changed", config(json!({"x": 2})), Some(Version::number(5)));
        draft.delete("ns", "gone-already", None);
        draft.put("other", "kept", config(json!({})), None);
        let changed = stored(json!({"x": 1}), 5);
        let batches = draft.prepare(Scope::Namespace("ns"), false, |_, cfg| match cfg {
            "same" => Known::Stored(&same.0, &same.1),
            "changed" => Known::Stored(&changed.0, &changed.1),
            _ => Known::Absent,
        });
        assert_eq!(batches.len(), 1);
        let changes = batches[0].changes();
        let by_name: Vec<(&str, &Precondition)> = changes.iter().map(|c| (c.name.as_str(), &c.precondition)).collect();
        assert_eq!(by_name, [("changed", &Precondition::Version(Version::number(5))), ("new", &Precondition::Absent)]);
        // The no-ops left the draft; the other namespace was not touched.
        assert_eq!(draft.refs(), ["ns/changed", "ns/new", "other/kept"]);
        let forced = draft.prepare(Scope::Configuration("ns", "new"), true, |_, _| Known::Unknown);
        assert_eq!(forced[0].changes()[0].precondition, Precondition::Any);
    }

    #[test]
    fn settle_drops_what_was_written_and_rebases_what_was_edited_again() {
        let mut draft = Draft::new();
        draft.put("ns", "a", config(json!({"v": 1})), None);
        draft.put("ns", "b", config(json!({"v": 1})), None);
        let batches = draft.prepare(Scope::All, false, |_, _| Known::Unknown);
        // "b" is edited again while the write is in flight.
        draft.put("ns", "b", config(json!({"v": 2})), None);
        let applied = [
            Applied { name: "a".into(), version: Some(Version::number(1)) },
            Applied { name: "b".into(), version: Some(Version::number(2)) },
        ];
        draft.settle(&batches[0], &applied);
        assert_eq!(draft.refs(), ["ns/b"]);
        assert_eq!(draft.get("ns", "b").unwrap().base(), Some(&Version::number(2)));
        assert_eq!(batches[0].written_value("a").unwrap().unwrap()["v"], 1);
    }

    #[test]
    fn discard_by_scope() {
        let mut draft = Draft::new();
        draft.delete("a", "x", None);
        draft.delete("a", "y", None);
        draft.delete("b", "x", None);
        draft.discard(Scope::Configuration("a", "x"));
        assert_eq!(draft.refs(), ["a/y", "b/x"]);
        draft.discard(Scope::Configuration("a", "y"));
        assert_eq!(draft.namespace("a").count(), 0);
        draft.discard(Scope::Namespace("b"));
        assert!(draft.is_empty());
    }

    #[tokio::test]
    async fn a_conflicting_commit_keeps_the_edits_and_a_forced_one_writes() {
        let store = Store::open(&crate::spec::BackendSpec::memory()).await.unwrap();
        store.create_namespace("ns").await.unwrap();
        let mut draft = Draft::new();
        draft.put("ns", "db", config(json!({"port": 1})), None);
        // Someone creates it first: the draft's edit was made on "absent".
        store.put("ns", "db", config(json!({"port": 2})), Precondition::Absent).await.unwrap();
        let err = draft.commit(&store, Scope::All, false).await.unwrap_err();
        assert_eq!(err.kind(), crate::model::error::ErrorKind::Conflict, "{err}");
        assert_eq!(draft.refs(), ["ns/db"]);
        assert_eq!(store.get("ns", "db").await.unwrap().unwrap().value["port"], 2);
        assert_eq!(draft.commit(&store, Scope::All, true).await.unwrap(), ["ns/db"]);
        assert!(draft.is_empty());
        assert_eq!(store.get("ns", "db").await.unwrap().unwrap().value["port"], 1);
    }
}
