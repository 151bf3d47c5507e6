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
    /// directory plus the deployment authority, until Ctrl-C.
    Dev(DevArgs),
    /// Show accepted contracts, resource status, bindings and orphans.
    Status(ConnArgs),
    /// Delete a detached (orphaned) resource and its data.
    Purge(PurgeArgs),
}

/// Where the deployment authority is reached.
#[derive(Debug, Clone, Args)]
pub struct ConnArgs {
    /// NATS server URL.
    #[arg(long, env = "TRELLIS_URL", default_value = "nats://127.0.0.1:4222")]
    pub url: String,
    /// Deployment name.
    #[arg(long, env = "TRELLIS_DEPLOYMENT", default_value = "dev")]
    pub deployment: String,
}

/// Arguments of `trellis dev`.
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
    /// Accept a manifest as the desired state; dangerous plans need
    /// `--allow-dangerous`.
    Accept(ProposeArgs),
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
