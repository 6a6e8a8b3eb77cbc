//! The file engine's history: one file per revision in a sibling folder of the root,
//! `<parent>/.<root-name>.confo/history/<ns>/<cfg>/<NNNNNNNNNN>.json` (never inside the root:
//! Python confo would take a stray folder for a namespace and crash on it).
//!
//! Written under the namespace's lock, in this order: each revision file is created (never
//! replaced: `O_EXCL`), written and fsynced (a new history folder is fsynced too), and only then
//! is the configuration renamed into place: one extra fsynced file per configuration. Its
//! directory entry is not fsynced folder by folder (a second fsync per configuration): on
//! journaling file systems (ext4, XFS) metadata is committed in order, so the entry is durable
//! no later than the configuration's rename, which the batch's final folder fsync commits. The rename is the commit point. A revision whose
//! configuration never got renamed (a crash in between) is recognised by the next writer or
//! reader: the configuration still holds the revision's `before` version, not its `after` one.
//! It is removed by the next writer and never listed. A configuration that another program
//! changed gets an `external` revision before the next recorded change.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::backend::{Change, ChangeKind};
use crate::error::{Corruption, Error, Result};
use crate::history::{decode_record, operation_of, Author, History, HistoryOptions, Record, Revision};

/// Digits of a revision file's number (sorted by name = sorted by number).
const DIGITS: usize = 10;

/// Where one file store's history lives, and how much it keeps.
#[derive(Debug, Clone)]
pub(crate) struct FileHistory {
    pub dir: PathBuf,
    pub options: HistoryOptions,
}

/// A history folder written to, to make durable before the configuration's rename.
pub(crate) struct Pending {
    folder: PathBuf,
    /// The folder (and maybe its parents) was just created.
    new: bool,
}

impl FileHistory {
    /// The default place: `<parent of root>/.<root name>.confo/history`.
    pub(crate) fn beside(real_root: &Path, options: HistoryOptions) -> Option<Self> {
        Some(FileHistory { dir: super::metadata_dir(real_root)?.join("history"), options })
    }

    fn folder(&self, namespace: &str, config: &str) -> PathBuf {
        self.dir.join(namespace).join(config)
    }

    fn loc(path: &Path) -> String {
        format!("file {}", path.display())
    }

    /// The revision files of a configuration, oldest first: (number, path).
    fn files(folder: &Path) -> Result<Vec<(u64, PathBuf)>> {
        let entries = match fs::read_dir(folder) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(Self::loc(folder), e)),
        };
        let mut files = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(number) = name.to_str().and_then(|n| n.strip_suffix(".json")).and_then(|n| n.parse().ok()) else {
                continue;
            };
            files.push((number, entry.path()));
        }
        files.sort_unstable_by_key(|(n, _)| *n);
        Ok(files)
    }

    fn read(number: u64, path: &Path) -> std::result::Result<Revision, Corruption> {
        let location = || format!("{}@{number}", Self::loc(path));
        match fs::read(path) {
            Ok(bytes) => decode_record(&bytes, Some(number), location),
            Err(e) => Err(Corruption { location: location(), problem: e.to_string() }),
        }
    }

    /// Whether `newest` never committed: the configuration is still at its `before` version
    /// and not at its `after` one (a crash between the revision and the rename), or the
    /// revision file itself is torn.
    fn uncommitted(newest: &std::result::Result<Revision, Corruption>, current: Option<&str>) -> bool {
        match newest {
            Ok(r) => r.version_after.as_deref() != current && r.version_before.as_deref() == current,
            Err(_) => true,
        }
    }

    /// Every revision of a configuration, readable ones newest first; an uncommitted newest one
    /// is not listed. `current` is the configuration's version now.
    pub(crate) fn history(&self, namespace: &str, config: &str, current: Option<&str>) -> Result<History> {
        let files = Self::files(&self.folder(namespace, config))?;
        let mut history = History::default();
        let newest = files.len().saturating_sub(1);
        for (i, (number, path)) in files.iter().enumerate() {
            let read = Self::read(*number, path);
            if i == newest && Self::uncommitted(&read, current) {
                continue;
            }
            match read {
                Ok(revision) => history.revisions.push(revision),
                Err(corruption) => history.corrupt.push(corruption),
            }
        }
        Ok(history.sorted())
    }

    /// The configurations of a namespace with a history.
    pub(crate) fn names(&self, namespace: &str) -> Result<Vec<String>> {
        let dir = self.dir.join(namespace);
        let mut names: Vec<String> = match fs::read_dir(&dir) {
            Ok(entries) => entries.flatten().filter_map(|e| e.file_name().into_string().ok()).collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io(Self::loc(&dir), e)),
        };
        names.sort();
        Ok(names)
    }

    /// Writes the revision a change makes (and, first, an `external` one if another program
    /// changed the configuration since the last recorded revision), fsynced, and drops what
    /// retention allows. Called under the namespace's lock, before the configuration is
    /// renamed. `current` is the configuration's content now (`None`: no file), `after` its
    /// version once written (`None`: a delete). Returns the folder to fsync before the rename;
    /// `None` when the change records nothing (deleting what does not exist).
    pub(crate) fn record(
        &self,
        namespace: &str,
        change: &Change,
        current: Option<(&[u8], String)>,
        after: Option<String>,
        author: &Author,
        time: SystemTime,
    ) -> Result<Option<Pending>> {
        let config = change.name.as_str();
        let value = match &change.kind {
            ChangeKind::Put(value) => Some(&**value),
            ChangeKind::Delete => None,
        };
        let folder = self.folder(namespace, config);
        let mut files = Self::files(&folder)?;
        let current_version = current.as_ref().map(|(_, v)| v.clone());
        // A revision left by a writer that crashed before its rename: remove it.
        if let Some((number, path)) = files.last() {
            if Self::uncommitted(&Self::read(*number, path), current_version.as_deref()) {
                fs::remove_file(path).map_err(|e| Error::io(Self::loc(path), e))?;
                tracing::warn!(path = %path.display(), "removed a history revision whose write never completed");
                files.pop();
            }
        }
        if value.is_none() && current.is_none() {
            return Ok(None);
        }
        let new = files.is_empty() && !folder.is_dir();
        fs::create_dir_all(&folder).map_err(|e| Error::io(Self::loc(&folder), e))?;
        let mut next = files.last().map_or(1, |(n, _)| n + 1);
        // The newest committed revision is never dropped by this write: if it crashes before
        // its rename, its own revisions are removed and that one is the newest again (numbers
        // go on from it, never restart).
        let committed = next.saturating_sub(1);
        let last = files.last().map(|(n, p)| Self::read(*n, p));
        let recorded = match &last {
            Some(Ok(r)) => r.version_after.clone(),
            _ => None,
        };
        let changed_outside = match &last {
            None => current.is_some(),
            Some(Ok(_)) => recorded != current_version,
            Some(Err(_)) => false,
        };
        if changed_outside {
            let found = match &current {
                Some((bytes, _)) => crate::codec::parse_config(bytes).ok(),
                None => None,
            };
            // An unreadable file is recorded as an external change without a value.
            let record = Record::external(next, time, recorded, current_version.clone(), found.as_ref());
            Self::create(&folder, next, &record.encode()?)?;
            files.push((next, folder.join(format!("{next:0DIGITS$}.json"))));
            next += 1;
        }
        let operation = operation_of(change, current.is_some());
        let restores = change.restores;
        let record = Record { number: next, operation, time, author, restores, before: current_version, after, value };
        Self::create(&folder, next, &record.encode()?)?;
        files.push((next, folder.join(format!("{next:0DIGITS$}.json"))));
        self.trim(&files, time, committed);
        Ok(Some(Pending { folder, new }))
    }

    /// Drops what retention allows, but never `committed` or newer (best effort: a failure
    /// leaves an extra old revision).
    fn trim(&self, files: &[(u64, PathBuf)], now: SystemTime, committed: u64) {
        if files.len() <= self.options.keep {
            return;
        }
        let dated: Vec<(u64, SystemTime)> = files
            .iter()
            .map(|(n, p)| {
                let time = if self.options.by_age() {
                    Self::read(*n, p).map_or(now, |r| r.time)
                } else {
                    SystemTime::UNIX_EPOCH
                };
                (*n, time)
            })
            .collect();
        for number in self.options.to_drop(&dated, now).into_iter().filter(|&n| n < committed) {
            if let Some((_, path)) = files.iter().find(|(n, _)| *n == number) {
                let _ = fs::remove_file(path);
            }
        }
    }

    /// Creates revision `number` (never over an existing one) and fsyncs it.
    fn create(folder: &Path, number: u64, bytes: &[u8]) -> Result<()> {
        let path = folder.join(format!("{number:0DIGITS$}.json"));
        let written = (|| {
            let mut file = File::options().write(true).create_new(true).open(&path)?;
            file.write_all(bytes)?;
            file.write_all(b"\n")?;
            file.sync_all()
        })();
        written.map_err(|e| {
            let _ = if e.kind() == io::ErrorKind::AlreadyExists { Ok(()) } else { fs::remove_file(&path) };
            Error::io(Self::loc(&path), e)
        })
    }
}

/// Makes the entries of new history folders durable in their parents, once per parent for a
/// whole batch, before any configuration is renamed. A revision file's own entry is not
/// fsynced folder by folder (a second fsync per configuration): on journaling file systems
/// (ext4, XFS) directory entries are committed in order with the file's fsync; see the
/// module's notes.
pub(crate) fn sync(pending: &[Pending]) -> Result<()> {
    let mut parents: Vec<&Path> =
        pending.iter().filter(|p| p.new).flat_map(|p| p.folder.ancestors().skip(1).take(3)).collect();
    parents.sort_unstable();
    parents.dedup();
    for folder in parents {
        File::open(folder).and_then(|f| f.sync_all()).map_err(|e| Error::io(FileHistory::loc(folder), e))?;
    }
    Ok(())
}
