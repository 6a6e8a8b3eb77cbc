//! JSON files in folders (spec `file:PATH`): Python confo's layout.
//!
//! # Backend details
//!
//! | what | where |
//! | --- | --- |
//! | the store | the folder `config_path`, which must exist |
//! | namespace `sales` | the folder `config_path/sales/` |
//! | configuration `database` in `sales` | the file `config_path/sales/database.json`, a JSON object |
//!
//! - A configuration's name is its file name minus `.json` (`app.prod.json` is `app.prod`;
//!   Python confo would cut it at the first dot). Dotfiles, other files, sub-folders and names
//!   that break the [name rules](crate::model::name) are ignored, as are stray files at the top of
//!   `config_path`.
//! - A file that is not valid JSON, or whose top level is not an object, is a corrupt entry
//!   ([`NamespaceData::corrupt`](crate::model::version::NamespaceData::corrupt)) naming the file, line and column; it blocks only itself.
//! - Files are written pretty-printed with a final newline.
//! - **Atomic writes.** Each file is written to a temporary file in the same folder, fsynced,
//!   renamed over the old one, and the folder is fsynced after the batch. A crash at any instant
//!   leaves the old or the new file, never a torn one.
//! - **Concurrency.** A batch holds an exclusive `flock` on the namespace folder's own file
//!   descriptor, so writers in several processes (and threads) take turns. Preconditions are
//!   checked under that lock before anything is written. No lock or metadata file is left in
//!   the tree: Python confo would take it for a configuration.
//! - **Temporary files** are named `.confo-tmp-<hash of the file name>` (a dotfile, so our
//!   readers skip it; Python confo does not, so none may linger) and exist only while a write
//!   runs. One left by a writer killed mid-write is replaced by the next write to the same
//!   configuration (under the lock, without listing the folder), and removed by the next batch
//!   into that folder and by the next read of the whole namespace (when no writer holds the
//!   lock).
//! - **Modes and owners.** A rewritten file keeps its mode, and its owner and group where the
//!   writer may give them (root; otherwise one warning per process, and the group if the
//!   writer belongs to it). The file is replaced, not rewritten in place (Python confo
//!   rewrote in place): a hard link to it keeps the old content, and extended attributes and
//!   ACL entries beyond the mode are not carried over.
//! - **Deleting a namespace** renames its folder to `.confo-trash-<ns>-<pid>-<n>` at the top of
//!   `config_path` (atomic), then removes it. A crash between the two leaves that dot-folder,
//!   which the next namespace deletion removes.
//! - Versions are a 64-bit hash of the file's bytes, so an edit by any program is seen.
//! - **Metadata** (history, schemas) is kept in one folder beside the root, never inside it:
//!   `meta_path=DIR`, by default `<parent>/.<root>.confo`, made no looser than the root (its
//!   mode and owner). History is `history/<ns>/<cfg>/NNNNNNNNNN.json` there (`history_path=DIR`
//!   puts it elsewhere), one fsynced file per revision written under the namespace's lock
//!   before the configuration's rename (the commit point); see the `history` module. When
//!   this process cannot write the metadata folder (a store on a volume whose parent only root
//!   may write, a read-only mount), configurations are still written, without history, with
//!   one warning per process; history reads say why ([`Error::NotFound`]) and schema changes
//!   are [`Error::Unavailable`].
//! - **Idle costs nothing**: file system events that cannot be changes (opens, reads, closes
//!   without writing: every reader's, our own re-reads included) are dropped where they
//!   arrive, and on a local file system every change is notified
//!   ([`Capabilities::notifies_every_change`]), so an idle watcher reads nothing. On a network
//!   file system (NFS, SMB, FUSE) other hosts' writes are not notified, and watchers also
//!   re-read periodically.
//! - **Notifications** come from the file system (`notify`: inotify on Linux) for the whole
//!   tree, so an edit by any program (a text editor, Python confo) is noticed; our temporary
//!   and trash dot-files are ignored, and a notification overflow asks for a full re-read.
//! - **Symbolic links** are followed when reading, as Python confo does (Kubernetes ConfigMap
//!   mounts are links). A write to a configuration that is a link replaces the link's target
//!   atomically in the target's own folder (the link stays a link); deleting it removes the link,
//!   not its target. A link whose target is missing is refused when written. With
//!   [`FileLinks::Inside`] (`file:PATH?links=inside`), a namespace folder or configuration that
//!   leads outside `config_path` is refused ([`Error::Insecure`]) for reads and writes alike.
//! - Limits: the file system's; a configuration name is at most 250 bytes (its file name,
//!   with `.json`, at most 255). A lock held by another process for longer than
//!   [`FileOptions::lock_timeout`] is [`Error::Unavailable`].

use std::fs::{self, File};
use std::hash::{Hash, Hasher};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{check_precondition, Backend, Capabilities, ChangeSet, Hint, Hints};
use crate::model::change::{Applied, Change, ChangeKind, Precondition, WriteReport};
use crate::model::version::{Configuration, Version};
mod history;
mod perms;
pub mod spec;

use history::FileHistory;
use perms::Perms;

use crate::model::decode::{Refused, Sink};
use crate::model::error::{Corruption, Error, Missing, Result, SpecProblem};
use crate::model::name;
use crate::model::name::{ConfigName, NameKind, NamespaceName};
use crate::model::threads::map_on_threads;

const EXT: &str = ".json";
const TMP_PREFIX: &str = ".confo-tmp-";
const TRASH_PREFIX: &str = ".confo-trash-";

/// Files loaded per thread before a load is spread over more threads.
const FILES_PER_THREAD: usize = 64;

/// Options of a [`FileBackend`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FileOptions {
    /// How long a batch waits for another writer's lock on a namespace folder before it gives
    /// up with [`Error::Unavailable`]. Default 30 s.
    pub lock_timeout: Duration,
    /// Which symbolic links are followed. Default [`FileLinks::Follow`].
    pub links: FileLinks,
    /// Whether history is recorded, and how much is kept.
    pub history: crate::model::history::HistoryOptions,
    /// Where history is kept (a folder that must not be inside the root). Default:
    /// `history` in the metadata folder.
    pub history_path: Option<PathBuf>,
    /// confo's metadata folder for this store (history, schemas), never inside the root.
    /// Default: the sibling folder `.<root name>.confo` beside the root.
    pub meta_path: Option<PathBuf>,
}

impl Default for FileOptions {
    fn default() -> Self {
        FileOptions {
            lock_timeout: Duration::from_secs(30),
            links: FileLinks::Follow,
            history: crate::model::history::HistoryOptions::default(),
            history_path: None,
            meta_path: None,
        }
    }
}

/// Which symbolic links (namespace folders, configuration files) a file backend follows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileLinks {
    /// Every link, wherever it leads (Python confo's behaviour).
    #[default]
    Follow,
    /// Only links that stay inside `config_path`; others are [`Error::Insecure`].
    Inside,
}

impl std::str::FromStr for FileLinks {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "follow" => Ok(FileLinks::Follow),
            "inside" => Ok(FileLinks::Inside),
            _ => Err(Error::spec(Some("links"), "must be follow or inside")),
        }
    }
}

impl std::fmt::Display for FileLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FileLinks::Follow => "follow",
            FileLinks::Inside => "inside",
        })
    }
}

/// A store of JSON files in folders, compatible with Python confo's `Configurations/` layout.
#[derive(Debug, Clone)]
pub struct FileBackend {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    /// `root` with every link resolved, to tell where links lead.
    real_root: PathBuf,
    options: FileOptions,
    /// Where history is kept, when it is recorded.
    history: Option<FileHistory>,
    /// Where namespaces' schema documents are kept (`schemas` in the metadata folder; `None`
    /// for a root without a parent folder).
    schemas: Option<PathBuf>,
    /// Whether this process can write the metadata folder.
    meta: Metadata,
    /// The root is on a network file system, whose notifications miss other hosts' writes
    /// (asked the first time it matters: a watcher's).
    remote: std::sync::OnceLock<bool>,
}

/// Whether confo's metadata folder of a store (history, schemas) can be written by this
/// process: asked the first time it matters (access(2) on the folder, or on the nearest
/// existing folder above it when it is not made yet), and again at the first write it refuses.
/// When it cannot be, configurations are still written, without history (one warning per
/// process and store), history reads say why ([`Error::NotFound`]) and metadata writes
/// (schemas) are [`Error::Unavailable`].
#[derive(Debug, Default)]
struct Metadata {
    /// The folders confo would write metadata into.
    folders: Vec<PathBuf>,
    /// The store folder's permission bits: a metadata folder found looser (made before the
    /// store was made private) is tightened to them at the first write.
    limit: u32,
    /// They were checked (once: a read never asks).
    checked: std::sync::OnceLock<()>,
    /// Why it cannot be written: the folder and the reason.
    unwritable: std::sync::Mutex<Option<(PathBuf, String)>>,
    /// The warning was given.
    warned: std::sync::atomic::AtomicBool,
}

impl Metadata {
    /// The metadata of these folders, not checked yet.
    fn of<'a>(folders: impl IntoIterator<Item = &'a Path>, limit: u32) -> Metadata {
        Metadata { folders: folders.into_iter().map(Path::to_owned).collect(), limit, ..Metadata::default() }
    }

    /// A metadata folder that lets others in where the store does not (made before the store
    /// was made private; history holds what was stored, and what was stored in the clear
    /// before a field was made secret) is made no looser than the store's folder, with
    /// everything in it: once, since a folder found tight is not walked.
    fn tighten(&self, folder: &Path) {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = fs::symlink_metadata(folder) else { return };
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o777 & !self.limit == 0 {
            return;
        }
        tracing::info!("{}: mode {mode:o} is looser than the store's folder: tightened", folder.display());
        let mut stack = vec![folder.to_owned()];
        while let Some(path) = stack.pop() {
            let Ok(meta) = fs::symlink_metadata(&path) else { continue };
            let limit = if meta.is_dir() { self.limit } else { self.limit & 0o666 };
            let mode = meta.permissions().mode() & 0o7777;
            let tight = (mode & 0o7000) | (mode & 0o777 & limit);
            if meta.is_dir() {
                if let Ok(entries) = fs::read_dir(&path) {
                    stack.extend(entries.flatten().map(|e| e.path()));
                }
            } else if !meta.is_file() {
                continue;
            }
            if tight != mode {
                if let Err(e) = fs::set_permissions(&path, fs::Permissions::from_mode(tight)) {
                    tracing::warn!("{} (mode {mode:o}) could not be tightened: {e}", path.display());
                }
            }
        }
    }

    fn refused(&self, folder: &Path, reason: String) {
        let mut unwritable = self.unwritable.lock().unwrap_or_else(|p| p.into_inner());
        unwritable.get_or_insert_with(|| (folder.to_owned(), reason));
    }

    /// The sentence saying why metadata cannot be kept, if it cannot.
    fn why_not(&self) -> Option<String> {
        self.checked.get_or_init(|| {
            for folder in &self.folders {
                if let Err(reason) = writable_or_creatable(folder) {
                    self.refused(folder, reason);
                    break;
                }
                self.tighten(folder);
            }
        });
        let unwritable = self.unwritable.lock().unwrap_or_else(|p| p.into_inner());
        unwritable.as_ref().map(|(folder, reason)| {
            format!(
                "confo's metadata folder {} cannot be written ({reason}); set meta_path=DIR in the store's spec to \
                 a folder outside the store that this user may write",
                folder.display()
            )
        })
    }

    /// Once per process and store: configurations are written without their history.
    fn warn(&self, store: &str) {
        if let Some(why) = self.why_not() {
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!("{store}: history is not recorded and schemas cannot be changed: {why}");
            }
        }
    }
}

/// `Ok` if this process may write `folder`, or create it (in the nearest folder above it that
/// exists); else why not.
fn writable_or_creatable(folder: &Path) -> std::result::Result<(), String> {
    let mut at = folder;
    loop {
        match fs::metadata(at) {
            Ok(meta) if meta.is_dir() => break,
            Ok(_) => return Err(format!("{} is not a folder", at.display())),
            Err(_) => match at.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => at = parent,
                _ => return Err(format!("no folder above {} exists", folder.display())),
            },
        }
    }
    rustix::fs::access(at, rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK).map_err(|e| {
        let what = if at == folder { "it" } else { "the folder it would be made in" };
        format!("{what}, {}, {}", at.display(), io::Error::from(e))
    })
}

/// Whether an I/O error says this process may not write there (rather than that the write
/// failed).
fn refused(e: &Error) -> bool {
    match e {
        Error::Io { source, .. } => {
            matches!(source.kind(), io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem)
        }
        _ => false,
    }
}

/// Distinguishes temporary names made by one process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl FileBackend {
    /// Opens the store at `config_path`, which must be an existing folder.
    ///
    /// ```no_run
    /// let backend = confo::FileBackend::open("Configurations")?;
    /// # Ok::<(), confo::Error>(())
    /// ```
    pub fn open(config_path: impl Into<PathBuf>) -> Result<Self> {
        Self::with_options(config_path, FileOptions::default())
    }

    /// Opens the store at `config_path` with options.
    pub fn with_options(config_path: impl Into<PathBuf>, options: FileOptions) -> Result<Self> {
        let root = config_path.into();
        match fs::metadata(&root) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(Error::spec_problem(
                    SpecProblem::NotAFolder,
                    Some("config_path"),
                    format!("{} is a file, not a folder", root.display()),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::not_found(
                    Missing::Store,
                    root.display().to_string(),
                    "file backend (create the folder first, e.g. mkdir -p)",
                ))
            }
            Err(e) => return Err(Error::io(format!("file {}", root.display()), e)),
        }
        // Fail now, not at the first read, if the folder cannot be listed.
        fs::read_dir(&root).map_err(|e| Error::io(format!("file {}", root.display()), e))?;
        let real_root = fs::canonicalize(&root).map_err(|e| Error::io(format!("file {}", root.display()), e))?;
        let outside = |key: &str, dir: &Path| {
            let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
            if absolute.starts_with(&real_root) || absolute.starts_with(&root) {
                return Err(Error::spec(
                    Some(key),
                    "must be outside the root: Python confo would read a folder there as a namespace",
                ));
            }
            Ok(absolute)
        };
        let meta_dir = match &options.meta_path {
            Some(dir) => Some(outside("meta_path", dir)?),
            None => metadata_dir(&real_root),
        };
        let perms = Perms::like(&real_root);
        let history_dir = match (&options.history_path, &meta_dir) {
            _ if !options.history.enabled => None,
            (Some(dir), _) => Some(outside("history_path", dir)?),
            (None, Some(meta)) => Some(meta.join("history")),
            (None, None) => None,
        };
        let schemas = meta_dir.as_ref().map(|dir| dir.join("schemas"));
        // The metadata folder, and a history folder given apart from it.
        let apart = history_dir.as_ref().filter(|dir| meta_dir.as_ref().is_none_or(|meta| !dir.starts_with(meta)));
        let meta = Metadata::of(meta_dir.iter().chain(apart).map(PathBuf::as_path), perms.dir_mode);
        let history = history_dir.map(|dir| FileHistory { dir, options: options.history, perms });
        let remote = std::sync::OnceLock::new();
        Ok(FileBackend { inner: Arc::new(Inner { root, real_root, options, history, schemas, meta, remote }) })
    }

    /// The folder this backend stores in.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Runs blocking file work off the async runtime's threads.
    async fn run<T: Send + 'static>(&self, f: impl FnOnce(&Inner) -> T + Send + 'static) -> T {
        let inner = self.inner.clone();
        super::kit::joined(tokio::task::spawn_blocking(move || f(&inner))).await
    }
}

impl Inner {
    fn describe(&self) -> String {
        format!("file {}", self.root.display())
    }

    fn loc(path: &Path) -> String {
        format!("file {}", path.display())
    }

    fn namespace_dir(&self, namespace: &str) -> PathBuf {
        self.root.join(namespace)
    }

    /// With [`FileLinks::Inside`], refuses `path` if it is a link that leads outside the root.
    fn check_link(&self, path: &Path) -> Result<()> {
        if self.options.links == FileLinks::Follow || !fs::symlink_metadata(path).is_ok_and(|m| m.is_symlink()) {
            return Ok(());
        }
        match fs::canonicalize(path) {
            Ok(target) if target.starts_with(&self.real_root) => Ok(()),
            Ok(target) => Err(Error::Insecure {
                location: Self::loc(path),
                message: format!(
                    "it is a symbolic link to {}, outside {} (links=inside)",
                    target.display(),
                    self.root.display()
                ),
            }),
            // A dangling link: reads see no file, writes refuse it.
            Err(_) => Ok(()),
        }
    }

    fn missing_namespace(&self, namespace: &str) -> Error {
        Error::not_found(Missing::Namespace, namespace, self.describe())
    }

    fn list_namespaces(&self) -> Result<Vec<String>> {
        let entries = fs::read_dir(&self.root).map_err(|e| Error::io(self.describe(), e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(self.describe(), e))?;
            let Ok(name) = entry.file_name().into_string() else { continue };
            if name::is_valid(&name) && is_kind(&entry, |t| t.is_dir()) {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    fn create_namespace(&self, namespace: &str) -> Result<bool> {
        let dir = self.namespace_dir(namespace);
        match fs::create_dir(&dir) {
            Ok(()) => {
                sync_dir(&self.root)?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(Error::AlreadyExists {
                what: Missing::Namespace,
                name: namespace.to_owned(),
                location: format!("{} (a file of that name is in the way)", self.describe()),
            }),
            Err(e) => Err(Error::io(Self::loc(&dir), e)),
        }
    }

    fn delete_namespace(&self, namespace: &str) -> Result<()> {
        let dir = self.namespace_dir(namespace);
        if !dir.is_dir() {
            return Err(self.missing_namespace(namespace));
        }
        self.remove_stale_trash();
        // Not named after the namespace: a 255-byte name plus a prefix would be too long.
        let trash = self.root.join(format!("{TRASH_PREFIX}{}-{}", std::process::id(), next_tmp()));
        match fs::rename(&dir, &trash) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(self.missing_namespace(namespace)),
            Err(e) => return Err(Error::io(Self::loc(&dir), e)),
        }
        sync_dir(&self.root)?;
        if let Err(e) = fs::remove_dir_all(&trash) {
            // The namespace is gone from every reader's view; the next deletion retries this.
            tracing::warn!(path = %trash.display(), error = %e, "could not remove a deleted namespace's folder");
        }
        Ok(())
    }

    /// Removes dot-folders left by a deletion that crashed between its rename and its removal.
    fn remove_stale_trash(&self) {
        let Ok(entries) = fs::read_dir(&self.root) else { return };
        for entry in entries.flatten() {
            if entry.file_name().to_str().is_some_and(|n| n.starts_with(TRASH_PREFIX)) {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }

    /// The configuration files of a namespace folder: (configuration name, path).
    fn config_files(&self, namespace: &str) -> Result<Vec<(String, PathBuf)>> {
        let dir = self.namespace_dir(namespace);
        self.check_link(&dir)?;
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => {
                return Err(self.missing_namespace(namespace))
            }
            Err(e) => return Err(Error::io(Self::loc(&dir), e)),
        };
        let mut files = Vec::new();
        let mut temps = false;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(Self::loc(&dir), e))?;
            let Ok(file_name) = entry.file_name().into_string() else { continue };
            temps |= file_name.starts_with(TMP_PREFIX);
            let Some(name) = file_name.strip_suffix(EXT) else { continue };
            if !name::is_valid(name) || file_name.starts_with('.') {
                continue;
            }
            if is_kind(&entry, |t| t.is_file()) {
                if entry.file_type().is_ok_and(|t| t.is_symlink()) {
                    self.check_link(&entry.path())?;
                }
                files.push((name.to_owned(), entry.path()));
            }
        }
        if temps {
            sweep_if_no_writer(&dir);
        }
        Ok(files)
    }

    /// Reads a namespace's configuration files on as many threads as it takes and hands each
    /// file's bytes to `sink` on the thread that read it (see [`Backend::scan`]).
    fn scan_namespace(&self, namespace: &str, sink: &dyn Sink) -> Result<()> {
        let files = self.config_files(namespace)?;
        sink.expect(files.len());
        let failed = std::sync::Mutex::new(None);
        map_on_threads(files, FILES_PER_THREAD, |_: &mut (), (name, path)| {
            let bytes = match fs::read(&path) {
                Ok(bytes) => bytes,
                // Deleted between listing and reading.
                Err(e) if e.kind() == io::ErrorKind::NotFound => return,
                Err(e) => {
                    failed.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(Error::io(Self::loc(&path), e));
                    return;
                }
            };
            let version = version_of(&bytes);
            hand(sink, &path, name, &bytes, version);
        });
        match failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn read_configuration(&self, namespace: &str, name: &str, sink: &dyn Sink) -> Result<()> {
        let dir = self.namespace_dir(namespace);
        self.check_link(&dir)?;
        let path = config_path(&dir, name);
        self.check_link(&path)?;
        // One read in the common case; the folder is looked at only when the file is not there.
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::IsADirectory) => {
                return if dir.is_dir() { Ok(()) } else { Err(self.missing_namespace(namespace)) };
            }
            Err(e) if e.kind() == io::ErrorKind::NotADirectory => return Err(self.missing_namespace(namespace)),
            Err(e) => return Err(Error::io(Self::loc(&path), e)),
        };
        hand(sink, &path, name.to_owned(), &bytes, version_of(&bytes));
        Ok(())
    }

    /// Records the revisions of a batch (see [`history`]) and makes them durable, before any
    /// configuration is renamed into place.
    fn record_history(
        &self,
        history: &FileHistory,
        namespace: &str,
        changes: &[Change],
        current: &[Option<Vec<u8>>],
        encoded: &[Option<Vec<u8>>],
        author: &crate::model::history::Author,
    ) -> Result<()> {
        let time = crate::model::history::now();
        let mut pending = Vec::new();
        for ((change, bytes), current) in changes.iter().zip(encoded).zip(current) {
            let current = current.as_ref().map(|b| (b.as_slice(), version_of(b).to_string()));
            let after = bytes.as_ref().map(|b| version_of(b).to_string());
            if let Some(p) = history.record(namespace, change, current, after, author, time)? {
                pending.push(p);
            }
        }
        history::sync(&pending)
    }

    /// The store's history, if it is kept and can be read (else the error saying why not).
    fn kept_history(&self, namespace: &str) -> Result<&FileHistory> {
        let Some(history) = &self.history else {
            return Err(super::history_off(&self.describe(), namespace));
        };
        if let Some(why) = self.meta.why_not() {
            return Err(Error::not_found(
                Missing::History,
                namespace,
                format!("{} (history is not kept: {why})", self.describe()),
            ));
        }
        Ok(history)
    }

    fn history(&self, namespace: &str, config: &str) -> Result<crate::model::history::History> {
        let history = self.kept_history(namespace)?;
        // The version of what is stored now (readable or not), to mark the current revision.
        let dir = self.namespace_dir(namespace);
        let path = config_path(&dir, config);
        self.check_link(&dir)?;
        self.check_link(&path)?;
        let current = match fs::read(&path) {
            Ok(bytes) => Some(version_of(&bytes).to_string()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::IsADirectory | io::ErrorKind::NotADirectory
                ) =>
            {
                None
            }
            Err(e) => return Err(Error::io(Self::loc(&path), e)),
        };
        history.history(namespace, config, current.as_deref())
    }

    /// The namespace's folder, open (to be locked), after the link checks of it and of
    /// `names`' files.
    fn open_namespace<'n>(&self, namespace: &str, names: impl Iterator<Item = &'n str>) -> Result<(PathBuf, File)> {
        let dir = self.namespace_dir(namespace);
        self.check_link(&dir)?;
        for name in names {
            self.check_link(&config_path(&dir, name))?;
        }
        let folder = match File::open(&dir) {
            Ok(f) if f.metadata().is_ok_and(|m| m.is_dir()) => f,
            Ok(_) => return Err(self.missing_namespace(namespace)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(self.missing_namespace(namespace)),
            Err(e) => return Err(Error::io(Self::loc(&dir), e)),
        };
        Ok((dir, folder))
    }

    /// Whether the history of writes is recorded now.
    fn history_kept_now(&self) -> bool {
        self.history.is_some() && self.meta.why_not().is_none()
    }

    /// A configuration's file as stored, under the folder's lock: `None` if it is not there.
    fn read_current(path: &Path) -> Result<Option<Vec<u8>>> {
        match fs::read(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::IsADirectory) => Ok(None),
            Err(e) => Err(Error::io(Self::loc(path), e)),
        }
    }

    fn write(&self, namespace: &str, changes: &[Change], author: &crate::model::history::Author) -> WriteReport {
        let (dir, folder) = match self.open_namespace(namespace, changes.iter().map(|c| c.name.as_str())) {
            Ok(opened) => opened,
            Err(e) => return WriteReport::failed(e),
        };
        let _locked = match self.lock(&folder, &dir) {
            Ok(locked) => locked,
            Err(e) => return WriteReport::failed(e),
        };
        // From here on we hold the folder's lock (let go of when `_locked` is dropped). A batch
        // removes every temporary file a dead writer left (it lists the folder); a point write
        // never lists it, and removes only its own configuration's (see `write_atomic`).
        if changes.len() > 1 {
            remove_stale_temps(&dir);
        }
        // Each file is read once, for the precondition and the history record both.
        let history = self.history_kept_now();
        let mut current = Vec::with_capacity(changes.len());
        for change in changes {
            if change.precondition == Precondition::Any && !history {
                current.push(None);
                continue;
            }
            match Self::read_current(&config_path(&dir, &change.name)) {
                Ok(bytes) => current.push(bytes),
                Err(e) => return WriteReport::failed(e),
            }
        }
        self.write_locked(namespace, &dir, &folder, changes, &current, author)
    }

    /// Reads one configuration and writes what `edit` makes of it, under the folder's lock:
    /// the file is read once (see [`Backend::load_and_apply`]).
    fn load_and_apply(
        &self,
        namespace: &str,
        name: &str,
        known_schema: Option<&Version>,
        author: &crate::model::history::Author,
        edit: &super::Edit,
    ) -> Result<Option<WriteReport>> {
        let (dir, folder) = self.open_namespace(namespace, std::iter::once(name))?;
        let _locked = self.lock(&folder, &dir)?;
        let path = config_path(&dir, name);
        let bytes = Self::read_current(&path)?;
        if let Some(bytes) = &bytes {
            hand(&*edit.sink(), &path, name.to_owned(), bytes, version_of(bytes));
        }
        let schema = super::SchemaRead::of(self.schema_document(namespace), known_schema);
        let Some((change, _)) = edit.decide(schema, || Self::loc(&path))? else { return Ok(None) };
        // (The schema document was read under this lock, which its writers take too.)
        Ok(Some(self.write_locked(namespace, &dir, &folder, std::slice::from_ref(&change), &[bytes], author)))
    }

    /// Writes a batch under the folder's lock, given what each of its files holds now.
    fn write_locked(
        &self,
        namespace: &str,
        dir: &Path,
        folder: &File,
        changes: &[Change],
        current: &[Option<Vec<u8>>],
        author: &crate::model::history::Author,
    ) -> WriteReport {
        let dir = dir.to_path_buf();
        for (change, bytes) in changes.iter().zip(current) {
            if change.precondition == Precondition::Any {
                continue;
            }
            let path = config_path(&dir, &change.name);
            let version = bytes.as_deref().map(version_of);
            if let Err(e) =
                check_precondition(&change.precondition, version.as_ref(), (namespace, &change.name), || {
                    Self::loc(&path)
                })
            {
                return WriteReport::failed(e);
            }
        }
        // Every value encoded first: one that cannot be fails the batch before anything is
        // written.
        let mut encoded: Vec<Option<Vec<u8>>> = Vec::with_capacity(changes.len());
        for change in changes {
            match &change.kind {
                ChangeKind::Put(value) => match encode(&config_path(&dir, &change.name), value) {
                    Ok(bytes) => encoded.push(Some(bytes)),
                    Err(e) => return WriteReport::failed(e),
                },
                ChangeKind::Delete => encoded.push(None),
            }
        }
        if let Some(history) = self.history.as_ref().filter(|_| self.meta.why_not().is_none()) {
            match self.record_history(history, namespace, changes, current, &encoded, author) {
                Ok(()) => {}
                // The metadata folder turned out not to be writable: the configurations are
                // written all the same, without history (and this is said once).
                Err(e) if refused(&e) => self.meta.refused(&history.dir, e.to_string()),
                Err(e) => return WriteReport::failed(e),
            }
        }
        if self.history.is_some() {
            self.meta.warn(&self.describe());
        }
        let mut report = WriteReport::default();
        for (change, bytes) in changes.iter().zip(&encoded) {
            let path = config_path(&dir, &change.name);
            let result = match (&change.kind, bytes) {
                (ChangeKind::Put(_), Some(bytes)) => write_atomic(&dir, &path, bytes, None).map(Some),
                _ => match fs::remove_file(&path) {
                    Ok(()) => Ok(None),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(Error::io(Self::loc(&path), e)),
                },
            };
            match result {
                Ok(version) => report.applied.push(Applied { name: change.name.clone(), version }),
                Err(e) => {
                    report.error = Some(e);
                    break;
                }
            }
        }
        if let Err(e) = folder.sync_all() {
            // The renames are visible but may not survive a power loss: say so.
            report.error.get_or_insert(Error::io(format!("{} (fsync of the folder)", Self::loc(&dir)), e));
        }
        report
    }

    /// A namespace's schema document's folder and file: `.<root>.confo/schemas/<ns>/schema.json`
    /// (a folder per namespace, so any namespace name fits).
    fn schema_path(&self, namespace: &str) -> Result<(PathBuf, PathBuf)> {
        let Some(base) = &self.schemas else {
            return Err(Error::InvalidValue {
                location: self.describe(),
                message: "a root without a parent folder has no place beside it for schemas".into(),
            });
        };
        let dir = base.join(namespace);
        let path = dir.join("schema.json");
        Ok((dir, path))
    }

    fn schema_document(&self, namespace: &str) -> Result<Option<(Vec<u8>, Version)>> {
        let (_, path) = self.schema_path(namespace)?;
        match fs::read(&path) {
            Ok(bytes) => {
                let version = version_of(&bytes);
                Ok(Some((bytes, version)))
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => Ok(None),
            Err(e) => Err(Error::io(Self::loc(&path), e)),
        }
    }

    /// Writes or removes a schema document under its folder's lock, through a fsynced
    /// temporary file and a rename.
    fn put_schema_document(
        &self,
        namespace: &str,
        document: Option<Vec<u8>>,
        precondition: &Precondition,
    ) -> Result<Option<Version>> {
        if document.is_some() && !self.namespace_dir(namespace).is_dir() {
            return Err(self.missing_namespace(namespace));
        }
        let (dir, path) = self.schema_path(namespace)?;
        if document.is_none() && !dir.exists() {
            return check_precondition(precondition, None, (namespace, "(schema)"), || Self::loc(&path)).map(|()| None);
        }
        if let Some(why) = self.meta.why_not() {
            return Err(Error::unavailable(Self::loc(&path), why));
        }
        let created = !dir.exists();
        let perms = Perms::like(&self.real_root);
        perms.create_dirs(&dir).map_err(|e| Error::io(Self::loc(&dir), e))?;
        if created {
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
        }
        let folder = File::open(&dir).map_err(|e| Error::io(Self::loc(&dir), e))?;
        let _locked = self.lock(&folder, &dir)?;
        let current = match fs::read(&path) {
            Ok(bytes) => Some(version_of(&bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(Self::loc(&path), e)),
        };
        check_precondition(precondition, current.as_ref(), (namespace, "(schema)"), || Self::loc(&path))?;
        let version = match document {
            Some(bytes) => Some(write_atomic(&dir, &path, &bytes, Some(perms))?),
            None => {
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io(Self::loc(&path), e)),
                }
                None
            }
        };
        folder.sync_all().map_err(|e| Error::io(Self::loc(&dir), e))?;
        Ok(version)
    }

    /// Takes the folder's exclusive lock, waiting up to [`FileOptions::lock_timeout`]; it is
    /// let go of when the returned guard is dropped.
    fn lock<'a>(&self, folder: &'a File, dir: &Path) -> Result<FolderLock<'a>> {
        let deadline = Instant::now() + self.options.lock_timeout;
        loop {
            match folder.try_lock() {
                Ok(()) => return Ok(FolderLock(folder)),
                Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(Error::unavailable(
                        Self::loc(dir),
                        format!(
                            "another writer has held the folder's lock for more than {:?}",
                            self.options.lock_timeout
                        ),
                    ))
                }
                Err(fs::TryLockError::Error(e)) => return Err(Error::io(Self::loc(dir), e)),
            }
        }
    }
}

/// A folder's `flock`, let go of explicitly when dropped. Closing the file would not be
/// enough: a child made by `fork()` while the lock was held keeps a copy of the descriptor,
/// and the lock belongs to the open file, so the child (and every writer after it) would wait
/// for it until that child exits.
struct FolderLock<'a>(&'a File);

impl Drop for FolderLock<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.0.unlock() {
            tracing::warn!(error = %e, "a store folder's lock could not be let go of (it is when the file closes)");
        }
    }
}

/// Whether a folder entry is of a kind, following a symbolic link as Python confo's
/// `os.listdir` + `open` would. The entry's own type comes with the listing on Linux, so only
/// links cost a `stat`.
fn is_kind(entry: &fs::DirEntry, kind: impl Fn(&fs::FileType) -> bool) -> bool {
    match entry.file_type() {
        Ok(t) if t.is_symlink() => fs::metadata(entry.path()).is_ok_and(|m| kind(&m.file_type())),
        Ok(t) => kind(&t),
        Err(_) => false,
    }
}

/// Hands a configuration file's bytes to `sink`, or what is wrong with them and where.
fn hand(sink: &dyn Sink, path: &Path, name: String, bytes: &[u8], version: Version) {
    if let Err(refused) = sink.entry(name, bytes, version) {
        let corruption = corruption_at(path, &refused);
        sink.corrupt(refused.name, corruption, Some(refused.version));
    }
}

/// Where and what is wrong with a configuration file's bytes.
fn corruption_at(path: &Path, refused: &Refused) -> Corruption {
    let location = match refused.position {
        Some((line, column)) => format!("file {}:{line}:{column}", path.display()),
        None => Inner::loc(path),
    };
    Corruption { location, problem: refused.problem.clone() }
}

/// Where confo keeps what is not configurations (history, schemas): `<parent>/.<root>.confo`,
/// beside the root and never inside it (Python confo would read a folder there as a
/// namespace); `None` for a root without a parent folder.
fn metadata_dir(real_root: &Path) -> Option<PathBuf> {
    let name = real_root.file_name()?.to_str()?;
    Some(real_root.parent()?.join(format!(".{name}.confo")))
}

fn config_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}{EXT}"))
}

fn next_tmp() -> u64 {
    TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
}

fn version_of(bytes: &[u8]) -> Version {
    // SipHash with fixed keys: the same bytes give the same token in every process of one build.
    let mut hasher = std::hash::DefaultHasher::new();
    bytes.hash(&mut hasher);
    Version::number(hasher.finish() as i64)
}

/// A configuration as its file's bytes: pretty-printed, with a final newline.
fn encode(path: &Path, value: &Configuration) -> Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| Error::InvalidValue { location: Inner::loc(path), message: e.to_string() })?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// The temporary file a write to `path` uses in its own folder: named after the file (a hash
/// of its name), so that the next write to the same file, under the folder's lock, replaces one
/// that a writer killed mid-write left, without listing the folder.
fn temp_path(dir: &Path, path: &Path) -> PathBuf {
    let mut hasher = std::hash::DefaultHasher::new();
    path.file_name().hash(&mut hasher);
    dir.join(format!("{TMP_PREFIX}{:016x}", hasher.finish()))
}

/// Writes `bytes` to `path` through a fsynced temporary file in `dir` and a rename. When `path`
/// is a symbolic link, its target is replaced the same way in the target's own folder, so the
/// link stays and the target is never torn.
///
/// The new file keeps the mode, owner and group of the one it replaces (owner and group where
/// this process may give them: as root, or a group it belongs to; otherwise one warning per
/// process). A file that did not exist gets `new_file` (metadata: no looser than the store),
/// or the process's default mode (configurations, as Python confo makes them). Being a new file,
/// it no longer shares the old one's hard links, extended attributes or ACLs (beyond what the
/// mode says).
fn write_atomic(dir: &Path, path: &Path, bytes: &[u8], new_file: Option<Perms>) -> Result<Version> {
    // A link: write beside its target (a rename must stay in one folder), and fsync that folder
    // too, since the batch's final fsync covers only the namespace folder.
    let (dir, path, linked) = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_symlink() => {
            let target = fs::canonicalize(path).map_err(|e| Error::Io {
                location: Inner::loc(path),
                source: io::Error::new(e.kind(), format!("a symbolic link whose target cannot be reached: {e}")),
            })?;
            let folder = target.parent().map(Path::to_owned).unwrap_or_default();
            (folder, target, true)
        }
        _ => (dir.to_owned(), path.to_owned(), false),
    };
    // The target's folder is not under our lock: a name of this process's own.
    let tmp = if linked {
        dir.join(format!("{TMP_PREFIX}{}-{}", std::process::id(), next_tmp()))
    } else {
        temp_path(&dir, &path)
    };
    let existing = fs::metadata(&path).ok().map(|m| Perms::of(&m));
    let written = (|| {
        if !linked {
            match fs::remove_file(&tmp) {
                Ok(()) => tracing::debug!(path = %tmp.display(), "removed a temporary file a dead writer left"),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let mut options = File::options();
        options.write(true).create_new(true);
        let keep = existing.or(new_file);
        if let Some(perms) = keep {
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, perms.file_mode);
        }
        {
            let mut file = options.open(&tmp)?;
            if let Some(perms) = keep {
                perms.apply(&file, &path)?;
            }
            file.write_all(bytes)?;
            file.sync_all()?;
            // Closed before the rename: watchers see the rename, not a write to the file.
        }
        fs::rename(&tmp, &path)?;
        if linked {
            File::open(&dir)?.sync_all()?;
        }
        Ok::<(), io::Error>(())
    })();
    match written {
        Ok(()) => Ok(version_of(bytes)),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(Error::io(Inner::loc(&path), e))
        }
    }
}

/// A reader that saw temporary files in a namespace folder removes them if no writer holds the
/// folder's lock (a live writer's are only there while it does): a dead writer's never outlive
/// the next whole read of its namespace. Nothing is waited for, and a reader that may not
/// remove them (a read-only store) leaves them.
fn sweep_if_no_writer(dir: &Path) {
    let Ok(folder) = File::open(dir) else { return };
    if folder.try_lock().is_ok() {
        let _locked = FolderLock(&folder);
        remove_stale_temps(dir);
    }
}

/// Removes temporary files left in `dir` by a writer that crashed. Only called under the
/// folder's lock, so no live writer's temporary file can be among them.
fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        if entry.file_name().to_str().is_some_and(|n| n.starts_with(TMP_PREFIX)) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|f| f.sync_all()).map_err(|e| Error::io(Inner::loc(dir), e))
}

/// Whether `path` is on a network file system (NFS, SMB, FUSE, …), whose change notifications
/// show only this host's writes: its file system's type, by statfs(2) (one system call).
fn on_network_file_system(path: &Path) -> bool {
    // Linux's magic numbers (linux/magic.h): NFS, SMB, SMB2, CIFS, FUSE, 9P, Ceph, AFS, Coda.
    const NETWORK: [i64; 9] =
        [0x6969, 0x517b, 0xfe53_4d42, 0xff53_4d42, 0x6573_5546, 0x0102_1997, 0x00c3_6400, 0x5346_414f, 0x7375_7245];
    // (f_type is an i64 on x86_64, another integer type elsewhere.)
    #[allow(clippy::unnecessary_cast)]
    rustix::fs::statfs(path).is_ok_and(|stat| NETWORK.contains(&(stat.f_type as i64)))
}

/// Whether a file system event can mean a change: opening, reading and closing a file unchanged
/// (every reader's, confo's own re-reads included) cannot, and re-reading on them would make a
/// watcher wake itself without end.
///
/// A rename is reported three times (its source, its target, then both together): the third
/// says nothing new, and would cost a second re-read of every rename (every confo write).
fn is_change(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
    match kind {
        notify::EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        notify::EventKind::Access(_) => false,
        notify::EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => false,
        _ => true,
    }
}

/// The hint for a changed path below `root`, if it can concern a namespace.
fn hint_for(root: &Path, path: &Path) -> Option<Hint> {
    let rel = path.strip_prefix(root).ok()?;
    let mut parts = rel.components().map(|c| c.as_os_str().to_str());
    let namespace = parts.next()??;
    if namespace.starts_with('.') {
        return None;
    }
    match parts.next() {
        // Our own temporary files and other dotfiles never hold a configuration.
        Some(Some(file)) if file.starts_with('.') => None,
        _ => Some(Hint::Namespace(namespace.to_owned())),
    }
}

#[async_trait]
impl Backend for FileBackend {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            notifies: true,
            notifies_every_change: !*self.inner.remote.get_or_init(|| on_network_file_system(&self.inner.real_root)),
            history: self.inner.history.is_some(),
            ..Capabilities::default()
        }
    }

    fn check_name(&self, kind: NameKind, name: &str) -> Result<()> {
        // A configuration is a file `<name>.json`, and file names hold at most 255 bytes.
        let limit = name::MAX_NAME_BYTES - EXT.len();
        if kind == NameKind::Configuration && name.len() > limit {
            return Err(Error::InvalidName {
                name: name.to_owned(),
                kind,
                rule: name::NameRule::Backend {
                    backend: "file",
                    rule: format!(
                        "is {} bytes long; a configuration's file name <name>.json allows {limit}",
                        name.len()
                    ),
                },
            });
        }
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = %self.describe()))]
    async fn list_namespaces(&self) -> Result<Vec<String>> {
        self.run(|inner| inner.list_namespaces()).await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(backend = %self.describe()))]
    async fn create(&self, namespace: &NamespaceName) -> Result<bool> {
        let namespace = namespace.as_str();
        let namespace = namespace.to_owned();
        self.run(move |inner| inner.create_namespace(&namespace)).await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(backend = %self.describe()))]
    async fn delete(&self, namespace: &NamespaceName) -> Result<()> {
        let namespace = namespace.as_str();
        let namespace = namespace.to_owned();
        self.run(move |inner| inner.delete_namespace(&namespace)).await
    }

    #[tracing::instrument(level = "debug", skip(self, sink), fields(backend = %self.describe()))]
    async fn scan(&self, namespace: &NamespaceName, sink: Arc<dyn Sink>) -> Result<()> {
        let namespace = namespace.as_str().to_owned();
        self.run(move |inner| inner.scan_namespace(&namespace, &*sink)).await
    }

    #[tracing::instrument(level = "debug", skip(self, sink), fields(backend = %self.describe()))]
    async fn read_one(&self, namespace: &NamespaceName, name: &ConfigName, sink: Arc<dyn Sink>) -> Result<()> {
        let (namespace, name) = (namespace.as_str().to_owned(), name.as_str().to_owned());
        self.run(move |inner| inner.read_configuration(&namespace, &name, &*sink)).await
    }

    async fn load_and_apply(
        &self,
        namespace: &NamespaceName,
        name: &ConfigName,
        known_schema: Option<&Version>,
        author: &crate::model::history::Author,
        edit: Arc<super::Edit>,
    ) -> Result<Option<WriteReport>> {
        let (namespace, name) = (namespace.as_str().to_owned(), name.as_str().to_owned());
        let (known, author) = (known_schema.cloned(), author.clone());
        self.run(move |inner| inner.load_and_apply(&namespace, &name, known.as_ref(), &author, &edit)).await
    }

    #[tracing::instrument(level = "debug", skip(self, changes), fields(backend = %self.describe(), changes = changes.len()))]
    async fn apply(&self, namespace: &NamespaceName, changes: &ChangeSet<'_>) -> WriteReport {
        let namespace = namespace.as_str();
        let author = changes.author().clone();
        let changes: &[Change] = changes;
        let namespace = namespace.to_owned();
        let changes = changes.to_vec();
        self.run(move |inner| inner.write(&namespace, &changes, &author)).await
    }

    async fn history(&self, namespace: &NamespaceName, name: &ConfigName) -> Result<crate::model::history::History> {
        let (namespace, name) = (namespace.as_str().to_owned(), name.as_str().to_owned());
        self.run(move |inner| inner.history(&namespace, &name)).await
    }

    async fn history_names(&self, namespace: &NamespaceName) -> Result<Vec<String>> {
        let namespace = namespace.as_str().to_owned();
        self.run(move |inner| inner.kept_history(&namespace)?.names(&namespace)).await
    }

    async fn rewrite_history(
        &self,
        namespace: &NamespaceName,
        name: &ConfigName,
        rewrite: &crate::model::history::Rewrite,
    ) -> Result<Vec<u64>> {
        // Read and decided here, written off the runtime's threads.
        let (ns, cfg) = (namespace.as_str().to_owned(), name.as_str().to_owned());
        let read = self.run(move |inner| inner.kept_history(&ns)?.raw_records(&ns, &cfg)).await?;
        let changed: Vec<_> = read
            .into_iter()
            .filter_map(|(number, path, bytes)| {
                Some((number, path, crate::model::history::rewritten_record(&bytes, rewrite)?))
            })
            .collect();
        let ns = namespace.as_str().to_owned();
        self.run(move |inner| {
            let history = inner.kept_history(&ns)?;
            let mut numbers = Vec::new();
            for (number, path, record) in changed {
                if history.replace(&path, &record)? {
                    numbers.push(number);
                }
            }
            Ok(numbers)
        })
        .await
    }

    async fn schema_document(&self, namespace: &NamespaceName) -> Result<Option<(Vec<u8>, Version)>> {
        let namespace = namespace.to_string();
        self.run(move |inner| inner.schema_document(&namespace)).await
    }

    async fn put_schema_document(
        &self,
        namespace: &NamespaceName,
        document: Option<Vec<u8>>,
        precondition: &Precondition,
    ) -> Result<Option<Version>> {
        let (namespace, precondition) = (namespace.to_string(), precondition.clone());
        self.run(move |inner| inner.put_schema_document(&namespace, document, &precondition)).await
    }

    async fn subscribe(&self) -> Result<Option<Hints>> {
        use notify::Watcher;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let root = self.inner.root.clone();
        let absolute = fs::canonicalize(&root).unwrap_or_else(|_| root.clone());
        let sender = tx.clone();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let hints: Vec<Hint> = match event {
                Ok(event) if event.need_rescan() => vec![Hint::All],
                Ok(event) if !is_change(&event.kind) => Vec::new(),
                Ok(event) => {
                    event.paths.iter().filter_map(|p| hint_for(&root, p).or_else(|| hint_for(&absolute, p))).collect()
                }
                Err(_) => vec![Hint::All],
            };
            for hint in hints {
                let _ = sender.send(hint);
            }
        })
        .map_err(|e| Error::unavailable(self.describe(), format!("file notifications: {e}")).caused_by(e))?;
        watcher
            .watch(&self.inner.root, notify::RecursiveMode::Recursive)
            .map_err(|e| Error::unavailable(self.describe(), format!("file notifications: {e}")).caused_by(e))?;
        // The watcher lives until the receiver is dropped.
        tokio::spawn(async move {
            tx.closed().await;
            drop(watcher);
        });
        Ok(Some(rx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a child made by `fork()` while a write held the lock does to the folder: it keeps a
    /// copy of the locked descriptor (a `dup`, as here). Once the write is done the next writer
    /// must get the lock at once; closing the parent's descriptor alone would leave it held by
    /// the copy.
    #[test]
    fn a_copy_of_the_locked_descriptor_does_not_keep_the_folder_locked() {
        let dir = tempfile::tempdir().unwrap();
        let folder = File::open(dir.path()).unwrap();
        folder.try_lock().unwrap();
        let locked = FolderLock(&folder);
        let inherited = folder.try_clone().unwrap();
        drop(locked);
        drop(folder);
        let next = File::open(dir.path()).unwrap();
        assert!(next.try_lock().is_ok(), "the folder stayed locked by the copy of the descriptor");
        drop(inherited);
    }
}
