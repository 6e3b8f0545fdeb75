//! Noticing that the store's file was removed or replaced while the store has it open.
//!
//! SQLite keeps writing to the file it opened, even once that file is unlinked or another file
//! took its name: a worker would go on "completing" executions into a file nobody will read
//! again, and the next process would open whatever is at the path now. So before each write
//! transaction commits, the store compares the file at its path with the file it opened (device
//! and inode on Unix; elsewhere, only that a file is there). A mismatch rolls the transaction
//! back and stops the store for good: every later call fails with the same error.
//!
//! The check is one `stat` of the path per write transaction, shared by every commit of a
//! group commit: 2.0-2.4 µs on the 2-core test VM, against about 17 µs for the cheapest commit
//! (`synchronous = NORMAL`, BENCHMARKS.md figure 2ns) and 157 µs for a synced one (figure 2s).
//! It cannot close the window between the check and the commit itself: a file removed in that
//! instant loses that one commit, and the next one is refused.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::store::StoreError;

/// The file a store opened, and whether it is known to be gone.
#[derive(Debug)]
pub(super) struct WatchedFile {
    /// The path as the store was given it, made absolute (so that a change of the working
    /// directory does not look like a removal).
    path: PathBuf,
    identity: Identity,
    /// Why the store stopped, once it has.
    lost: OnceLock<String>,
}

/// What tells two files apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Identity {
    device: u64,
    inode: u64,
}

#[cfg(unix)]
fn identity(path: &Path) -> std::io::Result<Identity> {
    use std::os::unix::fs::MetadataExt as _;
    let metadata = std::fs::metadata(path)?;
    Ok(Identity { device: metadata.dev(), inode: metadata.ino() })
}

#[cfg(not(unix))]
fn identity(path: &Path) -> std::io::Result<Identity> {
    std::fs::metadata(path).map(|_| Identity { device: 0, inode: 0 })
}

impl WatchedFile {
    /// The file now at `path`: call right after opening it.
    pub(super) fn new(path: &Path) -> Result<Self, StoreError> {
        let shown = path.display();
        let path = std::path::absolute(path)
            .map_err(|error| StoreError::backend(format!("sqlite: cannot resolve the path {shown}: {error}")))?;
        let identity = identity(&path)
            .map_err(|error| StoreError::backend(format!("sqlite: cannot read the metadata of {shown}: {error}")))?;
        Ok(WatchedFile { path, identity, lost: OnceLock::new() })
    }

    /// Fails if the store has stopped because its file was removed or replaced.
    pub(super) fn stopped(&self) -> Result<(), StoreError> {
        match self.lost.get() {
            Some(why) => Err(StoreError::backend(why.clone())),
            None => Ok(()),
        }
    }

    /// Fails, and stops the store for good, if the file at the path is no longer the one the
    /// store opened. Another failure to read the path fails this call only.
    pub(super) fn check(&self) -> Result<(), StoreError> {
        self.stopped()?;
        let what = match identity(&self.path) {
            Ok(identity) if identity == self.identity => return Ok(()),
            Ok(_) => "was replaced by another file",
            Err(error) if error.kind() == ErrorKind::NotFound => "was removed",
            Err(error) => {
                let path = self.path.display();
                return Err(StoreError::backend(format!("sqlite: cannot check that {path} is still there: {error}")));
            }
        };
        let path = self.path.display();
        let why = format!(
            "sqlite: {path} {what} while the store had it open; the store has stopped and writes nothing more \
             (the last write was rolled back): restore the file and open the store again"
        );
        tracing::error!("{why}");
        Err(StoreError::backend(self.lost.get_or_init(|| why).clone()))
    }
}
