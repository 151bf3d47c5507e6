//! [`Tls`]: the certificate files a TLS connection to nats-server uses.

use std::path::{Path, PathBuf};

/// The environment variable naming the CA certificate to trust.
pub const TLS_CA_ENV: &str = "TRELLIS_TLS_CA";
/// The environment variable naming a client certificate.
pub const TLS_CERT_ENV: &str = "TRELLIS_TLS_CERT";
/// The environment variable naming the client certificate's key.
pub const TLS_KEY_ENV: &str = "TRELLIS_TLS_KEY";

/// TLS for a NATS connection: the CA certificate the servers' certificates
/// are checked against, and optionally a client certificate for servers
/// that verify clients. Setting any of it requires TLS on every server
/// the connection uses.
///
/// ```
/// let tls = trellis_runtime::Tls::new()
///     .ca_file("deploy/tls/ca.pem")
///     .client_certificate("deploy/tls/client.pem", "deploy/tls/client-key.pem");
/// assert!(tls.is_set());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    ca_file: Option<PathBuf>,
    client: Option<(PathBuf, PathBuf)>,
}

/// A TLS file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("TLS {what} {}: {reason}", path.display())]
pub struct TlsError {
    /// Which file (`CA certificate`, `client certificate`, `client key`).
    pub what: &'static str,
    /// Its path.
    pub path: PathBuf,
    /// Why it is unusable.
    pub reason: String,
}

impl Tls {
    /// No TLS settings (the server decides; `tls://` URLs still use TLS
    /// with the system's roots).
    pub fn new() -> Self {
        Tls::default()
    }

    /// Trusts the CA certificate (PEM) at `path`.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Presents the client certificate `cert` with key `key` (PEM).
    pub fn client_certificate(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client = Some((cert.into(), key.into()));
        self
    }

    /// TLS settings from `TRELLIS_TLS_CA`, `TRELLIS_TLS_CERT` and
    /// `TRELLIS_TLS_KEY` (the client certificate needs both of the last
    /// two).
    pub fn from_env() -> Self {
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        let mut tls = Tls::new();
        if let Some(ca) = var(TLS_CA_ENV) {
            tls = tls.ca_file(ca);
        }
        if let (Some(cert), Some(key)) = (var(TLS_CERT_ENV), var(TLS_KEY_ENV)) {
            tls = tls.client_certificate(cert, key);
        }
        tls
    }

    /// Whether anything is set (then TLS is required).
    pub fn is_set(&self) -> bool {
        self.ca_file.is_some() || self.client.is_some()
    }

    /// Checks that every named file is readable PEM, so a wrong path is
    /// reported as such rather than as a failed handshake.
    pub fn check(&self) -> Result<(), TlsError> {
        if let Some(ca) = &self.ca_file {
            pem_file("CA certificate", ca, "CERTIFICATE")?;
        }
        if let Some((cert, key)) = &self.client {
            pem_file("client certificate", cert, "CERTIFICATE")?;
            pem_file("client key", key, "PRIVATE KEY")?;
        }
        Ok(())
    }

    /// `options` with these settings applied (unchanged when nothing is
    /// set).
    pub fn apply(&self, mut options: async_nats::ConnectOptions) -> async_nats::ConnectOptions {
        if !self.is_set() {
            return options;
        }
        if let Some(ca) = &self.ca_file {
            options = options.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &self.client {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        options.require_tls(true)
    }
}

fn pem_file(what: &'static str, path: &Path, label: &str) -> Result<(), TlsError> {
    let error = |reason: String| TlsError {
        what,
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    if !text.contains("-----BEGIN ") || !text.contains(label) {
        return Err(error(format!("not a PEM file holding a {label}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_names_the_unusable_file() {
        let dir = tempfile::tempdir().expect("dir");
        let missing = dir.path().join("ca.pem");
        let e = Tls::new().ca_file(&missing).check().expect_err("missing");
        assert_eq!(e.what, "CA certificate");
        assert!(e.to_string().contains("ca.pem"), "{e}");

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "hello").expect("write");
        let e = Tls::new().ca_file(&garbage).check().expect_err("not pem");
        assert!(e.reason.contains("PEM"), "{e}");

        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\n").expect("write");
        assert!(Tls::new().ca_file(&cert).check().is_ok());
        let e = Tls::new()
            .client_certificate(&cert, &missing)
            .check()
            .expect_err("no key");
        assert_eq!(e.what, "client key");
        assert!(!Tls::new().is_set());
    }
}
