//! Durable long-running operations.
//!
//! Starting an operation creates its record (`op.<id>`) in the contract's
//! ledger, a runtime-owned JetStream KV bucket the authority provisions
//! with the contract (see [`crate::layout`]), so the record outlives
//! both the caller and the provider instance running it. The record carries
//! the status (pending, running, completed, failed, cancelled), the latest
//! progress, the output or error, the owner principal and a lease the
//! running instance renews; its KV revision is the operation's monotonic
//! revision.
//!
//! Callers never read the bucket: they send control requests (`get`,
//! `wait`, `cancel`) to `<operation subject>.control`, which any instance
//! of the provider answers from the bucket. `wait` is a long poll that
//! returns as soon as the record moves past a given revision, so a watcher
//! sees every change that is still current (intermediate progress may be
//! coalesced) and cannot miss the terminal one.
//!
//! Every instance follows the bucket with one ordered consumer: it wakes
//! long polls, delivers cancel requests to the handler it runs, and fails
//! operations whose lease expired (their instance stopped) as abandoned.

mod client;
mod direct;
mod inbound;
mod plan;
mod record;
pub(crate) mod server;
mod spec;

pub use client::{
    OperationClient, OperationEvents, OperationRef, SendOperationClient, SendStart, Start,
    TransferStart,
};
pub use record::{
    OperationError, OperationFailure, OperationStatus, Outcome, Snapshot, TransferProgress,
};
pub use server::OperationContext;
pub use spec::{OperationSpec, SendTransferSpec};
