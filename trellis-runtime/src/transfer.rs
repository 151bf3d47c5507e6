//! Byte transfers: send transfers (caller to provider store, as part of
//! starting an operation) and receive grants (provider store to caller).
//!
//! Bytes travel as raw NATS messages, never encoded into JSON. Each chunk
//! carries a sequence number in the `Trellis-Seq` header; the receiving
//! side acknowledges cumulatively (`Trellis-Ack: n` = every chunk below
//! `n` arrived) and the sender keeps at most a window of chunks
//! unacknowledged. A chunk resent after a lost ack is acknowledged again
//! and otherwise ignored; a gap gets an `out-of-order` reply naming the
//! expected chunk. The last message carries the total size and the SHA-256
//! digest, which the receiver checks before anything becomes visible.

pub(crate) mod budget;
mod chunks;
pub(crate) mod direct;
mod error;
pub(crate) mod outbound;
pub mod receive;

pub(crate) use chunks::*;
pub use error::TransferError;
