//! `trellis`: the trellis-rs command line.
//!
//! ```text
//! trellis contract digest <file>...
//! trellis contract check <file>... [--schema <schema.json>] [--strict-canonical]
//! trellis dev [--port 4222] [--dir .trellis/dev]      (feature `dev`, default)
//! trellis contract plan <file> | accept <file> [--allow-dangerous]
//! trellis status | purge <physical>
//! trellis principal add <kind> <id> --out <file> [--user U] [--contract C]
//! trellis principal list | grant <principal> <cap>... [--remove] | revoke <principal>
//! trellis authority init --out <dir> [--servers N] [--tls]
//! trellis authority run --config authority.toml
//! trellis upload --manifest <json> --operation <Group.Leaf> --input <json> --file <path>
//! trellis download --manifest <json> --rpc <Group.Leaf> --input <json> --out <path> [--resume]
//! ```
//!
//! `trellis dev` starts a loopback nats-server through `trellis-testing`,
//! so only the `dev` feature links the harness: an operator build
//! (`--no-default-features`) has every other command and no harness.
//!
//! Exit codes: `0` everything ok, `1` at least one manifest is invalid,
//! `2` usage or I/O errors (unreadable files, a bad `--schema`).

mod cli;
mod commands;
mod outcome;

use std::process::ExitCode;

use clap::Parser as _;

use crate::cli::{AuthorityCommand, Cli, Command, ContractCommand, PrincipalCommand};
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
        Command::Contract {
            command: ContractCommand::Plan(args),
        } => commands::connection::block_on(commands::authority::plan(args)),
        Command::Contract {
            command: ContractCommand::Accept(args),
        } => commands::connection::block_on(commands::authority::accept(args)),
        Command::Contract {
            command: ContractCommand::Retire(args),
        } => commands::connection::block_on(commands::authority::retire(args)),
        Command::Status(conn) => commands::connection::block_on(commands::authority::status(conn)),
        Command::Principal {
            command: PrincipalCommand::Add(args),
        } => commands::connection::block_on(commands::principals::add(args)),
        Command::Principal {
            command: PrincipalCommand::List(conn),
        } => commands::connection::block_on(commands::principals::list(conn)),
        Command::Grant(args) => commands::connection::block_on(commands::principals::grant(args)),
        Command::Revoke(args) => commands::connection::block_on(commands::principals::revoke(args)),
        Command::Purge(args) => commands::connection::block_on(commands::authority::purge(args)),
        Command::Upload(args) => commands::connection::block_on(commands::transfer::upload(args)),
        Command::Download(args) => {
            commands::connection::block_on(commands::transfer::download(args))
        }
        Command::Authority {
            command: AuthorityCommand::Run(args),
        } => commands::run::run(&args),
        Command::Authority {
            command: AuthorityCommand::Init(args),
        } => commands::init::run(&args),
        #[cfg(feature = "dev")]
        Command::Dev(args) => commands::connection::block_on(commands::dev::run(args)),
    };
    match result {
        Ok(outcome) => outcome.exit_code(),
        Err(e) => {
            eprintln!("trellis: {e:#}");
            Outcome::UsageOrIo.exit_code()
        }
    }
}
