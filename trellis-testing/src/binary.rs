//! Locating the `nats-server` binary.

use std::path::{Path, PathBuf};

use crate::error::HarnessError;

/// Environment variable naming the `nats-server` binary.
pub const ENV_VAR: &str = "TRELLIS_NATS_SERVER";

/// Finds the `nats-server` binary.
pub fn nats_server_binary() -> Result<PathBuf, HarnessError> {
    if let Some(path) = std::env::var_os(ENV_VAR) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(HarnessError::NotFound(format!(
                "{ENV_VAR}={} is not a file",
                path.display()
            )))
        };
    }
    // Where `cargo xtask setup` installs it in this workspace.
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/nats/bin/nats-server");
    if tools.is_file() {
        return Ok(tools);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            HarnessError::NotFound(format!(
                "{ENV_VAR} is unset, .tools/nats/bin has none and PATH has none"
            ))
        })
}
