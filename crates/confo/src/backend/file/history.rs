//! The file engine's history: one file per revision in a sibling folder of the root,
//! `<parent>/.<root-name>.confo/history/<ns>/<cfg>/<NNNNNNNNNN>.json` (never inside the root:
//! Python confo would take a stray folder for a namespace and crash on it).
//!
//! Written under the namespace's lock, in this order: each revision is written to a temporary
//! file in its folder, fsynced, and renamed to its number (never over an existing one: under
//! the lock, a number taken is an error), so a revision file is whole or absent, never torn; a
//! new history folder is fsynced too; only then is the configuration renamed into place: one
//! extra fsynced file per configuration. Its directory entry is not fsynced folder by folder (a
//! second fsync per configuration): on journaling file systems (ext4, XFS) metadata is
//! committed in order, so the entry is durable no later than the configuration's rename, which
//! the batch's final folder fsync commits. The rename is the commit point. A revision whose
//! configuration never got renamed (a crash in between) is recognised, provably, by the
//! versions it records (content hashes): the configuration still holds its `before` version,
//! not its `after` one. Only such a revision is removed (by the next writer) and never listed.
//! A revision that cannot be read is never taken for one: it is listed as unreadable and kept,
//! and numbers go on after it. A temporary file a killed writer left is removed by the next
//! writer. A configuration that another program changed gets an `external` revision before
//! the next recorded change.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::model::change::{Change, ChangeKind};
use crate::model::error::{Corruption, Error, Result};
use crate::model::history::{decode_record, operation_of, Author, History, HistoryOptions, Record, Revision};

/// Digits of a revision file's number (sorted by name = sorted by number).
const DIGITS: usize = 10;
/// A revision being written (renamed to its number once whole).
const TMP_PREFIX: &str = ".tmp-";

/// Revision files, oldest first: (number, path).
type Numbered = Vec<(u64, PathBuf)>;

/// Where one file store's history lives, and how much it keeps.
#[derive(Debug, Clone)]
pub(crate) struct FileHistory {
    pub dir: PathBuf,
    pub options: HistoryOptions,
    /// The mode and owner of the folders and files it makes (no looser than the store's).
    pub perms: super::perms::Perms,
}

/// A revision file as read, with its number and path (for a rewrite).
pub(crate) type RawRecord = (u64, PathBuf, Vec<u8>);

/// A history folder written to, to make durable before the configuration's rename.
pub(crate) struct Pending {
    folder: PathBuf,
    /// The folder (and maybe its parents) was just created.
    new: bool,
}

impl FileHistory {
    fn folder(&self, namespace: &str, config: &str) -> PathBuf {
        self.dir.join(namespace).join(config)
    }

    fn loc(path: &Path) -> String {
        format!("file {}", path.display())
    }

    /// The revision files of a configuration, oldest first: (number, path); and the temporary
    /// files writers left.
    fn files_and_temporaries(folder: &Path) -> Result<(Numbered, Vec<PathBuf>)> {
        let entries = match fs::read_dir(folder) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Default::default()),
            Err(e) => return Err(Error::io(Self::loc(folder), e)),
        };
        let (mut files, mut temporaries) = (Vec::new(), Vec::new());
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(TMP_PREFIX) {
                temporaries.push(entry.path());
                continue;
            }
            let Some(number) = name.strip_suffix(".json").and_then(|n| n.parse().ok()) else {
                continue;
            };
            files.push((number, entry.path()));
        }
        files.sort_unstable_by_key(|(n, _)| *n);
        Ok((files, temporaries))
    }

    /// The revision files of a configuration, oldest first: (number, path).
    fn files(folder: &Path) -> Result<Vec<(u64, PathBuf)>> {
        Self::files_and_temporaries(folder).map(|(files, _)| files)
    }

    fn read(number: u64, path: &Path) -> std::result::Result<Revision, Corruption> {
        let location = || format!("{}@{number}", Self::loc(path));
        match fs::read(path) {
            Ok(bytes) => decode_record(&bytes, Some(number), location),
            Err(e) => Err(Corruption { location: location(), problem: e.to_string() }),
        }
    }

    /// Whether `newest` provably never committed: the configuration is still at its `before`
    /// version and not at its `after` one (a crash between the revision and the rename). A
    /// revision that cannot be read proves nothing (revision files are never torn: see the
    /// module's notes), so it is kept.
    fn uncommitted(newest: &std::result::Result<Revision, Corruption>, current: Option<&str>) -> bool {
        match newest {
            Ok(r) => r.version_after.as_deref() != current && r.version_before.as_deref() == current,
            Err(_) => false,
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
        let (mut files, temporaries) = Self::files_and_temporaries(&folder)?;
        // Under the lock: no live writer's temporary file can be among them.
        for temporary in temporaries {
            let _ = fs::remove_file(temporary);
        }
        let current_version = current.as_ref().map(|(_, v)| v.clone());
        // A revision left by a writer that crashed before its rename: remove it.
        // The newest revision, read once (again only when it was such a leftover).
        let mut last = files.last().map(|(n, p)| Self::read(*n, p));
        if let (Some((_, path)), Some(newest)) = (files.last(), &last) {
            if Self::uncommitted(newest, current_version.as_deref()) {
                fs::remove_file(path).map_err(|e| Error::io(Self::loc(path), e))?;
                tracing::warn!(path = %path.display(), "removed a history revision whose write never completed");
                files.pop();
                last = files.last().map(|(n, p)| Self::read(*n, p));
            }
        }
        if value.is_none() && current.is_none() {
            return Ok(None);
        }
        let new = files.is_empty() && !folder.is_dir();
        self.perms.create_dirs(&folder).map_err(|e| Error::io(Self::loc(&folder), e))?;
        let mut next = files.last().map_or(1, |(n, _)| n + 1);
        // The newest committed revision is never dropped by this write: if it crashes before
        // its rename, its own revisions are removed and that one is the newest again (numbers
        // go on from it, never restart).
        let committed = next.saturating_sub(1);
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
                Some((bytes, _)) => crate::model::codec::parse_config(bytes).ok(),
                None => None,
            };
            // An unreadable file is recorded as an external change without a value.
            let record = Record::external(next, time, recorded, current_version.clone(), found.as_ref());
            self.create(&folder, next, &record.encode()?)?;
            files.push((next, folder.join(format!("{next:0DIGITS$}.json"))));
            next += 1;
        }
        let operation = operation_of(change, current.is_some());
        let restores = change.restores;
        let record = Record { number: next, operation, time, author, restores, before: current_version, after, value };
        self.create(&folder, next, &record.encode()?)?;
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

    /// Every readable revision file of a configuration, oldest first, with its number and path
    /// (for a rewrite; unreadable files are left alone).
    pub(crate) fn raw_records(&self, namespace: &str, config: &str) -> Result<Vec<RawRecord>> {
        let files = Self::files(&self.folder(namespace, config))?;
        Ok(files
            .into_iter()
            .filter_map(|(number, path)| Some((number, fs::read(&path).ok()?, path)))
            .map(|(n, b, p)| (n, p, b))
            .collect())
    }

    /// Replaces a revision file whole with `record` (a fsynced temporary file renamed over it,
    /// mode and owner as the store's); `false` if it was dropped by retention meanwhile.
    pub(crate) fn replace(&self, path: &Path, record: &serde_json::Map<String, serde_json::Value>) -> Result<bool> {
        if fs::symlink_metadata(path).is_err() {
            return Ok(false);
        }
        let folder = path.parent().unwrap_or(Path::new("."));
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = folder.join(format!("{TMP_PREFIX}rewrite-{name}"));
        let bytes = serde_json::to_vec(record)
            .map_err(|e| Error::InvalidValue { location: Self::loc(path), message: e.to_string() })?;
        let written = (|| {
            let mut options = File::options();
            options.write(true).create(true).truncate(true);
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, self.perms.file_mode);
            let mut file = options.open(&tmp)?;
            self.perms.apply(&file, &tmp)?;
            file.write_all(&bytes)?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            drop(file);
            fs::rename(&tmp, path)?;
            File::open(folder)?.sync_all()
        })();
        written.map(|()| true).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            Error::io(Self::loc(path), e)
        })
    }

    /// Creates revision `number` whole (a fsynced temporary file renamed to it; never over an
    /// existing one: called under the namespace's lock; mode and owner as the store's).
    fn create(&self, folder: &Path, number: u64, bytes: &[u8]) -> Result<()> {
        let path = folder.join(format!("{number:0DIGITS$}.json"));
        let tmp = folder.join(format!("{TMP_PREFIX}{number:0DIGITS$}"));
        let written = (|| {
            if fs::symlink_metadata(&path).is_ok() {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, "revision number already taken"));
            }
            let mut options = File::options();
            options.write(true).create(true).truncate(true);
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, self.perms.file_mode);
            let mut file = options.open(&tmp)?;
            self.perms.apply(&file, &tmp)?;
            file.write_all(bytes)?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            drop(file);
            fs::rename(&tmp, &path)
        })();
        written.map_err(|e| {
            let _ = fs::remove_file(&tmp);
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
