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
}

/// `trellis contract ...` commands.
#[derive(Debug, Subcommand)]
pub enum ContractCommand {
    /// Print the digest of each manifest file (`<digest>  <file>`).
    Digest(DigestArgs),
    /// Check manifest files: JSON syntax, shape, and contract rules.
    Check(CheckArgs),
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
