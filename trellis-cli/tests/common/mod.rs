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

/// `trellis upload` of `file` through the documents example's
/// `Files.Upload`, described by the manifest at `manifest`.
pub fn upload_args<'a>(manifest: &'a str, input: &'a str, file: &'a str) -> [&'a str; 9] {
    [
        "upload",
        "--manifest",
        manifest,
        "--operation",
        "Files.Upload",
        "--input",
        input,
        "--file",
        file,
    ]
}

/// `trellis download` into `out` through the documents example's
/// `Files.Download`, described by the manifest at `manifest`.
pub fn download_args<'a>(manifest: &'a str, input: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "download",
        "--manifest",
        manifest,
        "--rpc",
        "Files.Download",
        "--input",
        input,
        "--out",
        out,
    ]
}
