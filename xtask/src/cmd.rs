//! Helpers for spawning child processes.

use std::env;
use std::ffi::OsString;
use std::fmt;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

/// A child process that ran but did not exit successfully.
///
/// `main` looks for this error to exit with the same code as the child.
#[derive(Debug)]
pub struct CommandFailed {
    /// Human-readable rendering of the command line.
    pub command: String,
    /// Exit code of the child, or `None` if it was killed by a signal.
    pub code: Option<i32>,
}

impl fmt::Display for CommandFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(code) => write!(f, "`{}` failed with exit code {code}", self.command),
            None => write!(f, "`{}` was terminated by a signal", self.command),
        }
    }
}

impl std::error::Error for CommandFailed {}

/// Runs `cmd` with inherited stdio and fails with context unless it succeeds.
///
/// A non-zero exit is reported as [`CommandFailed`] so the caller can
/// propagate the child's exit code.
pub fn run(cmd: &mut Command) -> Result<()> {
    let command = describe(cmd);
    let status = cmd
        .status()
        .with_context(|| format!("failed to start `{command}`"))?;
    if status.success() {
        Ok(())
    } else {
        Err(CommandFailed {
            command,
            code: status.code(),
        }
        .into())
    }
}

/// Returns a `cargo` command (honouring `$CARGO`) running in `root`.
pub fn cargo(root: &Path) -> Command {
    let program = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(program);
    cmd.current_dir(root);
    cmd
}

/// Prints a short header announcing the next step.
pub fn step(title: &str) {
    println!("\n==> {title}");
}

/// Renders a command line for messages, e.g. `cargo fmt --all`.
fn describe(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|arg| arg.to_string_lossy().into_owned()));
    parts.join(" ")
}
