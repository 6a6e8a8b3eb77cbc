//! `confo edit`: the configuration in a private temporary file, opened in the user's editor.
//!
//! The file lives in a fresh folder made by `mkdtemp` (mode 0700, a random name), and is created
//! exclusively with mode 0600, so no other user can read it, and nothing planted in the temporary
//! folder (a symbolic link at a guessed name) is ever opened. The folder is removed on every way
//! out: normal return and errors (a drop guard), and SIGTERM, SIGHUP or SIGQUIT (a signal
//! thread). SIGINT goes to the editor, which handles it, and is ignored by confo meanwhile, as
//! git does. A `kill -9` cannot be caught: the next `confo edit` removes folders that earlier runs
//! of the same user left behind, once their process is gone.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};

use crate::exit::{Exit, Failure};

const PREFIX: &str = "confo-edit-";

/// A private copy of a configuration for the editor; removed when dropped.
#[derive(Debug)]
pub struct EditFile {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl EditFile {
    /// Writes `text` to `<fresh private folder>/<config>.json`.
    pub fn create(config: &str, text: &str) -> Result<Self, Failure> {
        let base = std::env::temp_dir();
        let failed = |e: std::io::Error| {
            Failure::new(Exit::Error, format!("cannot make a private temporary file in {}: {e}", base.display()))
        };
        let dir = tempfile::Builder::new()
            .prefix(&format!("{PREFIX}{}-", std::process::id()))
            .permissions(fs::Permissions::from_mode(0o700))
            .tempdir_in(&base)
            .map_err(failed)?;
        sweep_leftovers(&base, dir.path());
        let path = dir.path().join(format!("{config}.json"));
        let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).map_err(failed)?;
        file.write_all(text.as_bytes()).map_err(failed)?;
        Ok(EditFile { dir, path })
    }

    /// The file the editor opens.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `command` (the editor) with SIGINT left to it, and the folder removed if confo is
    /// told to stop meanwhile.
    pub fn run_editor(&self, command: &mut std::process::Command) -> std::io::Result<std::process::ExitStatus> {
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT])?;
        let handle = signals.handle();
        let dir = self.dir.path().to_owned();
        let watcher = std::thread::spawn(move || {
            for signal in signals.forever() {
                if signal != SIGINT {
                    let _ = fs::remove_dir_all(&dir);
                    std::process::exit(128 + signal);
                }
            }
        });
        let status = command.status();
        handle.close();
        let _ = watcher.join();
        status
    }
}

/// Removes `confo-edit-<pid>-…` entries of `base` that belong to this user and whose process is
/// gone (left by a run that was killed with SIGKILL). `ours` is this run's folder: its owner is
/// this user. Links are never followed: an entry must itself be a folder or a file we own.
fn sweep_leftovers(base: &Path, ours: &Path) {
    let Ok(me) = fs::symlink_metadata(ours).map(|m| m.uid()) else { return };
    let Ok(entries) = fs::read_dir(base) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path == ours {
            continue;
        }
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)).and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        let Ok(meta) = fs::symlink_metadata(&path) else { continue };
        if meta.uid() != me || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let _ = if meta.is_dir() {
            fs::remove_dir_all(&path)
        } else if meta.is_file() {
            fs::remove_file(&path)
        } else {
            continue;
        };
    }
}
