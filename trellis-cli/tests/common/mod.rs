//! Shared by the CLI tests: `trellis dev`, and deployments built from
//! `trellis authority init` for the fault tests.
#![allow(dead_code)]

pub mod deployment;
pub mod netns;

use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running `trellis dev`, interrupted (like Ctrl-C) when dropped.
pub struct Dev(Child);

impl Dev {
    /// `trellis dev --port <port> --dir <dir>`.
    pub fn start(port: u16, dir: &Path) -> Dev {
        Dev(Command::new(env!("CARGO_BIN_EXE_trellis"))
            .args(["dev", "--port", &port.to_string(), "--dir"])
            .arg(dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("trellis dev starts"))
    }

    /// SIGKILL to its own pid: a crash, no clean-up.
    pub fn crash(mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
        std::mem::forget(self);
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}
