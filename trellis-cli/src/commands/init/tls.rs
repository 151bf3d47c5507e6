//! The deployment's TLS material: a self-signed CA, one certificate the
//! servers present to clients and to each other (routes), and the
//! authority's client certificate.

use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

/// How long the CA is valid.
const CA_DAYS: u64 = 10 * 365;
/// How long the server and client certificates are valid.
const CERT_DAYS: u64 = 5 * 365;
/// Backdating, for clocks slightly behind this one.
const SKEW: Duration = Duration::from_secs(3600);

/// PEM texts of the generated certificates and keys.
pub struct Certificates {
    /// CA certificate (every client trusts it).
    pub ca: String,
    /// CA key (signs certificates; keep it offline).
    pub ca_key: String,
    /// Server certificate (TLS server for clients, client and server for
    /// routes).
    pub server: String,
    /// Server key.
    pub server_key: String,
    /// The authority's client certificate.
    pub client: String,
    /// Its key.
    pub client_key: String,
    /// Last day (UTC) the server and client certificates are valid.
    pub expires: String,
}

/// A new CA and the certificates it signs; the server certificate names
/// every one of `hosts`, `localhost` and `127.0.0.1`.
pub fn generate(deployment: &str, hosts: &[String]) -> anyhow::Result<Certificates> {
    generate_inner(deployment, hosts).context("generating TLS certificates")
}

fn generate_inner(deployment: &str, hosts: &[String]) -> Result<Certificates, rcgen::Error> {
    // The epoch if the clock is before it.
    let since_epoch = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let now = rcgen::date_time_ymd(1970, 1, 1) + since_epoch;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    // A distinct name per CA, so a client trusting another deployment's CA
    // is told `UnknownIssuer`, not a bad signature.
    ca.distinguished_name = name(&format!(
        "trellis {deployment} CA {:x}",
        since_epoch.as_nanos() & 0xffff_ffff_ffff
    ));
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = now - SKEW;
    ca.not_after = now + days(CA_DAYS);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;

    let mut names = hosts.to_vec();
    for extra in ["localhost", "127.0.0.1"] {
        if !names.iter().any(|n| n == extra) {
            names.push(extra.to_owned());
        }
    }
    let leaf = |sans: Vec<String>, common_name: &str, usages: Vec<ExtendedKeyUsagePurpose>| {
        let mut params = CertificateParams::new(sans)?;
        params.distinguished_name = name(common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = usages;
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - SKEW;
        params.not_after = now + days(CERT_DAYS);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &ca)?;
        Ok::<_, rcgen::Error>((cert.pem(), key.serialize_pem()))
    };
    // Routes present the server certificate as a client certificate too.
    let (server, server_key) = leaf(
        names,
        "trellis nats-server",
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    )?;
    let (client, client_key) = leaf(
        Vec::new(),
        "trellis-authority",
        vec![ExtendedKeyUsagePurpose::ClientAuth],
    )?;
    Ok(Certificates {
        ca: ca.pem(),
        ca_key: ca.key().serialize_pem(),
        server,
        server_key,
        client,
        client_key,
        expires: (now + days(CERT_DAYS)).date().to_string(),
    })
}

fn name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "trellis");
    name.push(DnType::CommonName, common_name);
    name
}

fn days(n: u64) -> Duration {
    Duration::from_secs(n * 24 * 3600)
}
