//! The mode and owner a file engine gives what it writes.

use std::fs::{self, File};
use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;

/// A file's or folder's mode and owner, kept across a rewrite, or given to what confo makes
/// beside a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Perms {
    /// The permission bits of a file.
    pub(super) file_mode: u32,
    /// The permission bits of a folder.
    pub(super) dir_mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
    /// They are a rewritten file's own (an owner that cannot be kept is warned about).
    pub(super) rewrite: bool,
}

impl Perms {
    /// An existing file's.
    pub(super) fn of(meta: &fs::Metadata) -> Perms {
        use std::os::unix::fs::MetadataExt;
        let mode = meta.mode() & 0o7777;
        Perms { file_mode: mode, dir_mode: mode, uid: meta.uid(), gid: meta.gid(), rewrite: true }
    }

    /// For what confo keeps beside the store `root` (history, schemas): no looser than the
    /// store's folder (its read and write bits; files without execute bits), and its owner.
    pub(super) fn like(root: &Path) -> Perms {
        use std::os::unix::fs::MetadataExt;
        match fs::metadata(root) {
            Ok(meta) => {
                let mode = meta.mode() & 0o777;
                Perms { file_mode: mode & 0o666, dir_mode: mode, uid: meta.uid(), gid: meta.gid(), rewrite: false }
            }
            Err(_) => Perms { file_mode: 0o600, dir_mode: 0o700, uid: u32::MAX, gid: u32::MAX, rewrite: false },
        }
    }

    /// Gives `file` (just made) this owner, group and mode (owner first: changing it may clear
    /// set-id bits). An owner this process may not give is warned about once, not an error.
    pub(super) fn apply(&self, file: &File, path: &Path) -> io::Result<()> {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let made = file.metadata()?;
        if (made.uid(), made.gid()) != (self.uid, self.gid) && self.uid != u32::MAX {
            if let Err(e) = std::os::unix::fs::fchown(file, Some(self.uid), Some(self.gid)) {
                // Not root: keep at least the group, if this user belongs to it.
                let group_kept =
                    made.gid() == self.gid || std::os::unix::fs::fchown(file, None, Some(self.gid)).is_ok();
                if self.rewrite {
                    owner_not_kept(path, self, group_kept, &e);
                }
            }
        }
        if made.mode() & 0o7777 != self.file_mode {
            file.set_permissions(fs::Permissions::from_mode(self.file_mode))?;
        }
        Ok(())
    }

    /// Makes `dir` and the folders above it that are missing, each with this mode and owner.
    pub(super) fn create_dirs(&self, dir: &Path) -> io::Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        if let Some(parent) = dir.parent() {
            self.create_dirs(parent)?;
        }
        let mut builder = fs::DirBuilder::new();
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, self.dir_mode);
        match builder.create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
            Err(e) => return Err(e),
        }
        // The mode without the process's umask; the owner where this process may give it.
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(self.dir_mode))?;
        let _ = std::os::unix::fs::chown(dir, Some(self.uid), Some(self.gid));
        Ok(())
    }
}

/// Once per process: a rewritten file could not keep its owner (only root may give a file to
/// another user).
fn owner_not_kept(path: &Path, wanted: &Perms, group_kept: bool, error: &io::Error) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if WARNED.swap(true, Ordering::Relaxed) {
        return;
    }
    let kept = if group_kept { "its group and mode were kept" } else { "its mode was kept" };
    tracing::warn!(
        "{} was owned by uid {} (gid {}); rewritten by this user it is now owned by this user ({error}): {kept} \
         (only root keeps the owner; further files are not warned about)",
        path.display(),
        wanted.uid,
        wanted.gid
    );
}
