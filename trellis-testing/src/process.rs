//! Spawning, stopping and killing nats-server processes.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{HarnessError, io};

/// SIGKILL and reap, ignoring errors (for `Drop`).
pub(crate) fn kill_and_forget(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Starts `binary -c config` with stdout and stderr appended to `log`; the
/// child inherits `stdin` (the locked store file, which it then holds for
/// its whole life).
pub(crate) fn spawn_logged(
    binary: &Path,
    config: &Path,
    log: &Path,
    stdin: Stdio,
) -> Result<Child, HarnessError> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io("opening the server log"))?;
    let err = out.try_clone().map_err(io("cloning the log handle"))?;
    Command::new(binary)
        .arg("-c")
        .arg(config)
        .stdin(stdin)
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(io(format!("spawning {}", binary.display())))
}

/// SIGTERM, then SIGKILL if the process has not exited after 10 s.
pub(crate) async fn stop_gracefully(mut child: Child) -> Result<(), HarnessError> {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if child
            .try_wait()
            .map_err(io("waiting for nats-server"))?
            .is_some()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    Ok(())
}

/// SIGKILL to this child's own PID, then reaps it.
pub(crate) fn kill_now(mut child: Child) -> Result<(), HarnessError> {
    child.kill().map_err(io("killing nats-server"))?;
    child.wait().map_err(io("reaping nats-server"))?;
    Ok(())
}
