//! A write: changes to configurations, what must hold for each, and what a batch did.

use std::sync::Arc;

use crate::model::error::{ConfigId, ConfigRef, Error, Result, Violation};
use crate::model::version::{Configuration, Version};

/// What must hold in the store for a change to be applied.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Precondition {
    /// Apply whatever is stored (last writer wins).
    #[default]
    Any,
    /// Apply only if the configuration does not exist (create).
    Absent,
    /// Apply only if the configuration exists at exactly this version.
    Version(Version),
}

/// One change of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeKind {
    /// Store this content (create or replace).
    Put(Arc<Configuration>),
    /// Delete the configuration. Deleting one that does not exist is not an error unless the
    /// precondition says it must exist.
    Delete,
}

/// A change to one configuration of a namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The configuration's name.
    pub name: String,
    /// What to do.
    pub kind: ChangeKind,
    /// What must hold first.
    pub precondition: Precondition,
    /// For a rollback, the history revision whose value this put restores (recorded as a
    /// `rollback` entry naming it).
    pub restores: Option<u64>,
    /// The JSON pointers of sealed fields this put turns back into plain values on purpose
    /// (`confo secret unset`): exempt from the re-seal rule of [`BackendExt::write_sealed_as`](crate::store::ext::BackendExt::write_sealed_as).
    pub unseal: Vec<String>,
    /// The stored value this put was made over, when its precondition names that value's
    /// version: the re-seal rule checks against it instead of reading the store (the write
    /// lands only if the store still holds it).
    pub over: Option<Arc<Configuration>>,
}

impl Change {
    /// Store `value` under `name`, whatever is there.
    pub fn put(name: impl Into<String>, value: impl Into<Arc<Configuration>>) -> Self {
        Change {
            name: name.into(),
            kind: ChangeKind::Put(value.into()),
            precondition: Precondition::Any,
            restores: None,
            unseal: Vec::new(),
            over: None,
        }
    }

    /// Delete `name`, whatever is there.
    pub fn delete(name: impl Into<String>) -> Self {
        Change {
            name: name.into(),
            kind: ChangeKind::Delete,
            precondition: Precondition::Any,
            restores: None,
            unseal: Vec::new(),
            over: None,
        }
    }

    /// The same put, made over `stored` (the value at the version its precondition names):
    /// see [`Change::over`].
    pub fn made_over(mut self, stored: Arc<Configuration>) -> Self {
        self.over = Some(stored);
        self
    }

    /// The same put, turning the sealed fields at `pointers` back into the plain values it
    /// holds there, on purpose (see [`Change::unseal`]).
    pub fn unsealing(mut self, pointers: Vec<String>) -> Self {
        self.unseal = pointers;
        self
    }

    /// The same change, applied only if `precondition` holds.
    pub fn when(mut self, precondition: Precondition) -> Self {
        self.precondition = precondition;
        self
    }

    /// The same change, recorded in history as restoring revision `number`.
    pub fn restoring(mut self, number: u64) -> Self {
        self.restores = Some(number);
        self
    }
}

/// A change that a batch applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The configuration's name.
    pub name: String,
    /// Its new version; `None` for a delete.
    pub version: Option<Version>,
}

/// What [`Backend::apply`](crate::backend::Backend::apply) did: the changes applied, in order, and the error that stopped it.
///
/// Every change of the batch that is not in `applied` was not applied. A backend that writes a
/// batch atomically reports all or nothing; one that writes change by change (files) reports
/// the prefix it wrote.
#[derive(Debug, Default)]
#[must_use]
pub struct WriteReport {
    /// The changes that were applied.
    pub applied: Vec<Applied>,
    /// Why the rest were not, if they were not.
    pub error: Option<Error>,
    /// Changes (by configuration name) whose outcome is unknown: the connection failed after
    /// they were sent, and the store could not be read back to tell (see
    /// [`BackendExt::write_settled`](crate::store::ext::BackendExt::write_settled)). The others that are not applied were not written.
    pub in_doubt: Vec<String>,
    /// Schema violations of a namespace in mode `warn`: written anyway, and reported here (and
    /// in the log). See [`crate::schema`].
    pub warnings: Vec<Violation>,
}

impl WriteReport {
    /// A report of a batch that failed before anything was written.
    pub fn failed(error: Error) -> Self {
        WriteReport { error: Some(error), ..Default::default() }
    }

    /// The error for a sequence of batches (one per namespace) that stopped at this failed
    /// one: `written` so far, this batch's report, and the batches after it, which were not
    /// sent. Without anything written or in doubt, the batch's own error.
    pub(crate) fn into_incomplete<'a>(
        self,
        mut written: Vec<ConfigRef>,
        namespace: &str,
        batch: impl IntoIterator<Item = &'a str>,
        later: impl IntoIterator<Item = ConfigRef>,
    ) -> Error {
        let report = self;
        let applied: std::collections::HashSet<&str> = report.applied.iter().map(|a| a.name.as_str()).collect();
        let in_doubt: std::collections::HashSet<&str> = report.in_doubt.iter().map(String::as_str).collect();
        let mut unwritten = Vec::new();
        for name in batch {
            if applied.contains(name) {
                written.push(ConfigId::new(namespace, name));
            } else if !in_doubt.contains(name) {
                unwritten.push(ConfigId::new(namespace, name));
            }
        }
        unwritten.extend(later);
        let unknown: Vec<ConfigRef> = report.in_doubt.iter().map(|name| ConfigId::new(namespace, name)).collect();
        let source = report
            .error
            .unwrap_or_else(|| Error::unavailable(namespace.to_owned(), "the write stopped without a reason"));
        if written.is_empty() && unknown.is_empty() {
            return source;
        }
        Error::PersistIncomplete { written, unwritten, unknown, source: Box::new(source) }
    }

    /// The applied changes, or the error if there is one.
    pub fn into_result(self) -> Result<Vec<Applied>> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.applied),
        }
    }
}
