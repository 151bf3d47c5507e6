//! Command-line definitions (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The trellis-rs command line.
#[derive(Debug, Parser)]
#[command(name = "trellis", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work with `trellis.contract.v1` manifest files.
    Contract {
        /// The contract command.
        #[command(subcommand)]
        command: ContractCommand,
    },
    /// Run a local stack: nats-server with JetStream under a project-local
    /// directory plus the deployment authority, until Ctrl-C (feature
    /// `dev`, on by default).
    #[cfg(feature = "dev")]
    Dev(DevArgs),
    /// Show accepted contracts, resource status, bindings, orphans, and
    /// (with auth) every principal with the NATS permissions it is issued.
    Status(ConnArgs),
    /// Manage principals (services, users, devices, operators).
    Principal {
        /// The principal command.
        #[command(subcommand)]
        command: PrincipalCommand,
    },
    /// Grant capabilities to a principal (or take them away).
    Grant(GrantArgs),
    /// Revoke a principal: its keys are refused at connect and on every
    /// request.
    Revoke(RevokeArgs),
    /// Delete a detached (orphaned) resource and its data.
    Purge(PurgeArgs),
    /// Start a contract's send-transfer operation with JSON input and
    /// stream a file as its bytes; prints the operation's outcome as JSON.
    Upload(UploadArgs),
    /// Call a contract's receive-grant RPC with JSON input and download
    /// the object its output grants into a file (resuming on a dropped
    /// connection); prints path, size and digest as JSON.
    Download(DownloadArgs),
    /// Run the deployment authority against an existing NATS deployment,
    /// or write the keys and configuration to start one.
    Authority {
        /// The authority command.
        #[command(subcommand)]
        command: AuthorityCommand,
    },
}

/// `trellis authority ...` commands.
#[derive(Debug, Subcommand)]
pub enum AuthorityCommand {
    /// Run the authority from a settings file until SIGTERM or Ctrl-C
    /// (in-flight requests and the current reconcile pass finish first).
    Run(AuthorityRunArgs),
    /// Write keys, an `authority.toml` and nats-server configurations for
    /// a new deployment.
    Init(AuthorityInitArgs),
}

/// Arguments of `trellis authority run`.
#[derive(Debug, Args)]
pub struct AuthorityRunArgs {
    /// The settings file (see `docs/deploy.md`); `TRELLIS_AUTHORITY_*`
    /// environment variables override its values.
    #[arg(long, value_name = "FILE", default_value = "authority.toml")]
    pub config: PathBuf,
}

/// Arguments of `trellis authority init`.
#[derive(Debug, Args)]
pub struct AuthorityInitArgs {
    /// Directory to write into (created; existing files are never
    /// overwritten).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Number of nats-servers (1, or 3 and more for a JetStream cluster).
    #[arg(long, default_value_t = 1)]
    pub servers: usize,
    /// Also write a CA and server and client certificates, and turn TLS
    /// on for clients and routes.
    #[arg(long)]
    pub tls: bool,
    /// Deployment name.
    #[arg(long, default_value = "main")]
    pub deployment: String,
    /// Host the servers listen on and are reached at (also in the
    /// certificates): one for every server, or one per server
    /// (comma-separated or repeated, in server order).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1")]
    pub host: Vec<String>,
    /// Client port of the first server on a host; each further server on
    /// the same host uses the next port.
    #[arg(long, default_value_t = 4222)]
    pub client_port: u16,
    /// Route port of the first server (clusters).
    #[arg(long, default_value_t = 6222)]
    pub cluster_port: u16,
    /// Monitoring (HTTP) port of the first server.
    #[arg(long, default_value_t = 8222)]
    pub http_port: u16,
    /// JetStream file storage each server may reserve (`max_file_store`,
    /// e.g. `200GB`). Unset, nats-server takes 75% of the disk free at its
    /// start, so servers sharing a disk each claim the same space.
    #[arg(long, value_name = "SIZE")]
    pub max_file_store: Option<String>,
}

/// Where the deployment authority is reached.
#[derive(Debug, Clone, Args)]
pub struct ConnArgs {
    /// NATS server URL (a comma-separated list names several servers).
    #[arg(long, env = "TRELLIS_URL", default_value = "nats://127.0.0.1:4222")]
    pub url: String,
    /// CA certificate (PEM) to trust for TLS connections; implies TLS.
    #[arg(long, env = "TRELLIS_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for servers that verify clients.
    #[arg(
        long,
        env = "TRELLIS_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// Key (PEM) of the client certificate.
    #[arg(
        long,
        env = "TRELLIS_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// Deployment name.
    #[arg(long, env = "TRELLIS_DEPLOYMENT", default_value = "dev")]
    pub deployment: String,
    /// Credential file to connect with (an operator's, for administration;
    /// `trellis dev` writes one and prints its path).
    #[arg(long, env = "TRELLIS_CREDENTIALS")]
    pub credentials: Option<PathBuf>,
}

/// `trellis principal ...` commands.
#[derive(Debug, Subcommand)]
pub enum PrincipalCommand {
    /// Create a key pair for a new principal, register its public key and
    /// write its credential file.
    Add(AddPrincipalArgs),
    /// List principals with their capabilities and issued permissions.
    List(ConnArgs),
}

/// Arguments of `trellis principal add`.
#[derive(Debug, Args)]
pub struct AddPrincipalArgs {
    /// `service`, `user`, `device` or `operator`.
    #[arg(value_name = "KIND")]
    pub kind: String,
    /// Principal id (a service's is usually its contract's name).
    #[arg(value_name = "ID")]
    pub id: String,
    /// The user a device belongs to.
    #[arg(long)]
    pub user: Option<String>,
    /// The contract a service runs (e.g. `documents@v1`).
    #[arg(long)]
    pub contract: Option<String>,
    /// Where to write the credential file (secret: mode 0600).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Where the authority is.
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Arguments of `trellis grant`.
#[derive(Debug, Args)]
pub struct GrantArgs {
    /// Principal id or public key.
    #[arg(value_name = "PRINCIPAL")]
    pub principal: String,
    /// Capabilities, e.g. `documents::read`.
    #[arg(required = true, value_name = "CAPABILITY")]
    pub capabilities: Vec<String>,
    /// Take the capabilities away instead.
    #[arg(long)]
    pub remove: bool,
    /// Where the authority is.
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Arguments of `trellis revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// Principal id or public key.
    #[arg(value_name = "PRINCIPAL")]
    pub principal: String,
    /// Where the authority is.
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Arguments of `trellis dev`.
#[cfg(feature = "dev")]
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Port nats-server listens on (loopback).
    #[arg(long, default_value_t = 4222)]
    pub port: u16,
    /// Directory holding the server's config, log and JetStream store.
    #[arg(long, default_value = ".trellis/dev")]
    pub dir: PathBuf,
    /// Deployment name.
    #[arg(long, default_value = "dev")]
    pub deployment: String,
    /// Run without authentication (any connection gets full access).
    #[arg(long)]
    pub no_auth: bool,
}

/// Arguments of `trellis contract plan` / `accept`.
#[derive(Debug, Args)]
pub struct ProposeArgs {
    /// The manifest file (e.g. `contracts/items@v1.json`).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Confirm dangerous changes (accept only).
    #[arg(long)]
    pub allow_dangerous: bool,
    /// Where the authority is.
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Arguments of `trellis upload`.
#[derive(Debug, Args)]
pub struct UploadArgs {
    /// The contract's manifest (e.g. `contracts/documents@v1.json`).
    #[arg(long, value_name = "FILE")]
    pub manifest: PathBuf,
    /// The operation (`Group.Leaf`) whose manifest entry declares
    /// `transfer.direction: "send"`.
    #[arg(long, value_name = "NAME")]
    pub operation: String,
    /// The operation's input as JSON.
    #[arg(long, value_name = "JSON", default_value = "{}")]
    pub input: String,
    /// The file to send.
    #[arg(long, value_name = "PATH")]
    pub file: PathBuf,
    /// Where the deployment is, and who calls.
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Arguments of `trellis download`.
#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// The contract's manifest (e.g. `contracts/documents@v1.json`).
    #[arg(long, value_name = "FILE")]
    pub manifest: PathBuf,
    /// The RPC (`Group.Leaf`) whose manifest entry declares
    /// `transfer.direction: "receive"`; its output holds the grant.
    #[arg(long, value_name = "NAME")]
    pub rpc: String,
    /// The RPC's input as JSON.
    #[arg(long, value_name = "JSON", default_value = "{}")]
    pub input: String,
    /// Where to write the content (through `<out>.part`, renamed once
    /// size and digest verify).
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
    /// Continue the partial `<out>.part` an interrupted download left
    /// (its bytes are hashed again, only the rest is fetched).
    #[arg(long)]
    pub resume: bool,
    /// Where the deployment is, and who calls.
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Arguments of `trellis purge`.
#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// Physical name of the orphan (see `trellis status`).
    #[arg(value_name = "PHYSICAL")]
    pub physical: String,
    /// Where the authority is.
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// `trellis contract ...` commands.
#[derive(Debug, Subcommand)]
pub enum ContractCommand {
    /// Print the digest of each manifest file (`<digest>  <file>`).
    Digest(DigestArgs),
    /// Check manifest files: JSON syntax, shape, and contract rules.
    Check(CheckArgs),
    /// Show what accepting a manifest would change (safe / dangerous).
    Plan(ProposeArgs),
    /// Accept a manifest as the desired contract; dangerous plans need
    /// `--allow-dangerous`.
    Accept(ProposeArgs),
    /// Stop an earlier digest of a contract from connecting before its
    /// rollout grace period ends (see `trellis status` for live digests).
    Retire(RetireArgs),
}

/// Arguments of `trellis contract retire`.
#[derive(Debug, Args)]
pub struct RetireArgs {
    /// Contract id (e.g. `documents@v1`).
    #[arg(value_name = "ID")]
    pub id: String,
    /// The earlier digest to retire.
    #[arg(value_name = "DIGEST")]
    pub digest: String,
    /// Where the authority is.
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Arguments of `trellis contract digest`.
#[derive(Debug, Args)]
pub struct DigestArgs {
    /// Manifest files (any `trellis.contract.v1` JSON, whoever wrote it).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// Arguments of `trellis contract check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Manifest files to check.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Also validate each file against this JSON Schema (e.g. `trellis.contract.v1.schema.json`).
    #[arg(long, value_name = "SCHEMA")]
    pub schema: Option<PathBuf>,
    /// Fail on files that are valid but not in canonical form.
    #[arg(long)]
    pub strict_canonical: bool,
}
