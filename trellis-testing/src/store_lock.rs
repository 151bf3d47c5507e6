//! One server per store directory: a lock file the server process itself
//! holds (inherited as its standard input), and the pid it records.
//!
//! The lock outlives whoever started the server, so a crashed parent
//! leaves a server that still owns its store, and a second start sees it:
//! a local stack then stops that orphan (after checking it is a nats-server
//! started on this very directory) and takes the store over, instead of
//! opening the same store twice.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{HarnessError, io};

/// The lock file and pid file of a server directory.
#[derive(Debug)]
pub(crate) struct StoreLock {
    lock: PathBuf,
    pid: PathBuf,
    watchdog: PathBuf,
}

impl StoreLock {
    pub(crate) fn of(dir: &Path) -> StoreLock {
        StoreLock {
            lock: dir.join("store.lock"),
            pid: dir.join("nats-server.pid"),
            watchdog: dir.join("watchdog.pid"),
        }
    }

    /// The locked file, for the server process to inherit, or `None` if
    /// another process holds it.
    pub(crate) fn try_take(&self) -> Result<Option<File>, HarnessError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock)
            .map_err(io(format!("opening {}", self.lock.display())))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(io(format!("locking {}", self.lock.display()))(e)),
        }
    }

    /// Records the server's pid and its watchdog's.
    pub(crate) fn record(&self, pid: u32, watchdog: u32) -> Result<(), HarnessError> {
        std::fs::write(&self.pid, pid.to_string())
            .map_err(io(format!("writing {}", self.pid.display())))?;
        std::fs::write(&self.watchdog, watchdog.to_string())
            .map_err(io(format!("writing {}", self.watchdog.display())))
    }

    /// The recorded pid, if any.
    pub(crate) fn recorded(&self) -> Option<u32> {
        std::fs::read_to_string(&self.pid)
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// Stops the nats-server that holds the lock, if it is one started
    /// with `config` (an orphan of a crashed stack), and waits for the lock
    /// to free; otherwise says who holds the store.
    pub(crate) async fn reclaim(&self, config: &Path) -> Result<File, HarnessError> {
        let pid = self.recorded();
        let orphan = pid.filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                text.contains("nats-server") && text.contains(&config.display().to_string())
            })
        });
        let dir = self
            .lock
            .parent()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        let Some(orphan) = orphan else {
            return Err(HarnessError::StoreInUse { dir, pid });
        };
        // SIGTERM: the server flushes its store and exits.
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &orphan.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Some(file) = self.try_take()? {
                return Ok(file);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(HarnessError::StoreInUse {
            dir,
            pid: Some(orphan),
        })
    }
}
