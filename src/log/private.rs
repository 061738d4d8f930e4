//! Files and directories that only their owner can use.
//!
//! Every directory joblog creates is made with mode 0700 and every file
//! with 0600, at creation (no moment when another user could open them)
//! and then set exactly (a umask can only take bits away, never add the
//! owner's). A store belongs to one OS user: opening (the engine, over the
//! whole data directory, with [`check_owner`]) refuses a directory,
//! or a file in it, that belongs to anybody else than the process's
//! effective user, root included (a root process would leave root-owned
//! files its owner could no longer open, and would follow what the owner
//! planted there with root's powers); see README, "Who can act as whom".
//!
//! Also the one way joblog puts a whole file in place ([`install_file`]:
//! write a temporary file, fsync it, rename it, fsync the directory), used
//! by the manifest, checkpoints, new segments and the simulation marker.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::error::io_err;
use super::LogError;

/// Mode of every directory joblog creates.
pub(crate) const DIR_MODE: u32 = 0o700;
/// Mode of every file joblog creates.
pub(crate) const FILE_MODE: u32 = 0o600;

/// Creates `dir` and any missing parent, each 0700.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(p) = at {
        if p.as_os_str().is_empty() || fs::symlink_metadata(p).is_ok() {
            break;
        }
        missing.push(p);
        at = p.parent();
    }
    for p in missing.into_iter().rev() {
        match DirBuilder::new().mode(DIR_MODE).create(p) {
            Ok(()) => fs::set_permissions(p, Permissions::from_mode(DIR_MODE))?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Opens `path` for reading and writing, creating it 0600 if it does not
/// exist (emptied if `truncate`); never follows a symbolic link.
pub(crate) fn create_file(path: &Path, truncate: bool) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(truncate)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    file.set_permissions(Permissions::from_mode(FILE_MODE))?;
    Ok(file)
}

/// The process's effective user id (joblog never changes it: asked once).
pub(crate) fn euid() -> u32 {
    static EUID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *EUID.get_or_init(|| nix::unistd::geteuid().as_raw())
}

/// Refuses `path` (not followed if a link) unless the process's effective
/// user owns it.
pub(crate) fn check_owner(path: &Path) -> Result<(), LogError> {
    check_owner_of(path, fs::symlink_metadata(path))
}

/// [`check_owner`] of `path` given what a look at it (not following a
/// link) found.
pub(crate) fn check_owner_of(path: &Path, looked: io::Result<fs::Metadata>) -> Result<(), LogError> {
    match looked {
        Ok(m) if m.uid() == euid() => Ok(()),
        Ok(m) => Err(LogError::NotOwned { path: path.to_path_buf(), owner: m.uid(), euid: euid() }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path, e)),
    }
}

/// Makes the directory's entries (creations, renames, removals) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), LogError> {
    sync_dir_io(dir).map_err(|e| io_err(dir, e))
}

fn sync_dir_io(dir: &Path) -> io::Result<()> {
    File::open(dir).and_then(|d| d.sync_all())
}

/// Where [`install_file`] stopped.
#[derive(Debug)]
pub enum InstallError<E> {
    /// Writing or syncing the temporary file failed; it was removed.
    Write(E),
    /// Renaming it to its name failed; it is removed.
    Rename(io::Error),
    /// Syncing the directory after the rename failed; the file is in place
    /// but its name may not survive a power cut.
    SyncDir(io::Error),
}

/// Puts a file in place atomically and durably: `write` fills the
/// temporary file `tmp` and syncs it (if it fails, `tmp` is removed);
/// `tmp` is renamed to `path` (if that fails, `tmp` is removed too); `after_rename` runs (a caller's crash point,
/// `src/crashpoint.rs`); the directory `dir` holding both is synced. A
/// reader, or a restart after a crash, sees the old file or the whole new
/// one. Each caller names its own paths in its errors.
pub(crate) fn install_file<E>(
    dir: &Path,
    tmp: &Path,
    path: &Path,
    write: impl FnOnce() -> Result<(), E>,
    after_rename: impl FnOnce(),
) -> Result<(), InstallError<E>> {
    if let Err(e) = write() {
        let _ = fs::remove_file(tmp);
        return Err(InstallError::Write(e));
    }
    if let Err(e) = fs::rename(tmp, path) {
        // Nothing reads a temporary file; one left would make a read-only
        // open of the store replay its log (it cannot tell it from an
        // interrupted write).
        let _ = fs::remove_file(tmp);
        return Err(InstallError::Rename(e));
    }
    after_rename();
    sync_dir_io(dir).map_err(InstallError::SyncDir)
}
