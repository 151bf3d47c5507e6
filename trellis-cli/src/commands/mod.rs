//! The `trellis contract` commands, one module each.

pub mod check;
pub mod digest;

use std::path::Path;

use anyhow::Context as _;

/// Reads a manifest file as UTF-8 text, naming the file on failure.
pub fn read_text(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("{}: cannot read file", path.display()))
}
pub mod authority;
pub mod connection;
#[cfg(feature = "dev")]
pub mod dev;
pub mod init;
pub mod principals;
pub mod run;
pub mod transfer;
