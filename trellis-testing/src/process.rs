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
/// its whole life). A watchdog (see [`watchdog`]) stops it once this
/// process is gone; its pid is returned with the child.
pub(crate) fn spawn_logged(
    binary: &Path,
    config: &Path,
    log: &Path,
    stdin: Stdio,
) -> Result<(Child, u32), HarnessError> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io("opening the server log"))?;
    let err = out.try_clone().map_err(io("cloning the log handle"))?;
    let child = Command::new(binary)
        .arg("-c")
        .arg(config)
        .stdin(stdin)
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(io(format!("spawning {}", binary.display())))?;
    match watchdog(child.id(), config) {
        Ok(watchdog) => Ok((child, watchdog)),
        Err(e) => {
            kill_and_forget(child);
            Err(e)
        }
    }
}

/// What the watchdog runs: while the parent lives, check twice a second
/// that the server still runs (and exit when it does not); once the parent
/// is gone, SIGTERM the server (it flushes its store and exits), after
/// checking that the pid still belongs to the nats-server started with
/// this config (pids are reused).
const WATCHDOG: &str = r#"parent=$1; server=$2; config=$3
while kill -0 "$parent" 2>/dev/null; do
  kill -0 "$server" 2>/dev/null || exit 0
  sleep 0.5
done
tr '\0' ' ' < "/proc/$server/cmdline" 2>/dev/null | grep -qF -- "$config" && kill -TERM "$server"
exit 0"#;

/// Starts a watchdog for server `server`: a small `sh` process that stops
/// the server once this process is gone, so a parent that crashes (even on
/// SIGKILL, where nothing of it runs any more) takes its servers with it.
/// The watchdog is reaped by a thread of this process while it lives.
/// Returns the watchdog's pid.
///
/// Written as a process rather than with `PR_SET_PDEATHSIG`: that needs
/// `unsafe` (`pre_exec`), and it fires when the spawning *thread* exits,
/// which a tokio blocking-pool thread does after idling.
pub(crate) fn watchdog(server: u32, config: &Path) -> Result<u32, HarnessError> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG)
        .arg("trellis-watchdog")
        .arg(std::process::id().to_string())
        .arg(server.to_string())
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(io("spawning the server's watchdog (sh)"))?;
    let pid = child.id();
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    Ok(pid)
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
