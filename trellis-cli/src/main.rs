//! `trellis`: the trellis-rs command line.
//!
//! ```text
//! trellis contract digest <file>...
//! trellis contract check <file>... [--schema <schema.json>] [--strict-canonical]
//! ```
//!
//! Exit codes: `0` everything ok, `1` at least one manifest is invalid,
//! `2` usage or I/O errors (unreadable files, a bad `--schema`).

mod cli;
mod commands;
mod outcome;

use std::process::ExitCode;

use clap::Parser as _;

use crate::cli::{Cli, Command, ContractCommand};
use crate::outcome::Outcome;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Contract {
            command: ContractCommand::Digest(args),
        } => commands::digest::run(&args),
        Command::Contract {
            command: ContractCommand::Check(args),
        } => commands::check::run(&args),
    };
    match result {
        Ok(outcome) => outcome.exit_code(),
        Err(e) => {
            eprintln!("trellis: {e:#}");
            Outcome::UsageOrIo.exit_code()
        }
    }
}
