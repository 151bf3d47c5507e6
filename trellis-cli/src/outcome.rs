//! The result of a command over several files, mapped to an exit code.

use std::process::ExitCode;

/// How a command went, ordered from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Every file was fine (exit code 0).
    Ok,
    /// At least one manifest was invalid (exit code 1).
    Invalid,
    /// A usage or I/O error happened (exit code 2).
    UsageOrIo,
}

impl Outcome {
    /// The process exit code.
    pub fn exit_code(self) -> ExitCode {
        match self {
            Outcome::Ok => ExitCode::SUCCESS,
            Outcome::Invalid => ExitCode::from(1),
            Outcome::UsageOrIo => ExitCode::from(2),
        }
    }
}
