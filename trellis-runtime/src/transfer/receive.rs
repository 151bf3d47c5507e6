//! Receive grants: a provider hands a caller a bounded, single-use grant
//! for one object of its store; the caller downloads it with
//! [`Download`] without ever seeing the store's name or subjects.
//!
//! A grant is a random 128-bit id whose record (object, size, digest,
//! expiry, the caller it was issued to) lives in the provider's
//! contract's ledger. Redeeming it marks it used with a
//! compare-and-set, so of concurrent redemptions exactly one wins.
//!
//! The download is credit-based: the caller tells the provider how many
//! chunks it may send ahead (`window`) and acknowledges cumulatively as it
//! consumes, so the provider never runs ahead of the caller. The caller
//! verifies order, size and SHA-256 at the end.
//!
//! # Resuming
//!
//! A download that stops part-way (the caller's connection dropped, the
//! chunks stalled) continues from a byte offset. The offset is a byte
//! count, and must be a chunk boundary of the stored object (chunk sizes
//! are not assumed uniform: the provider finds the boundary by reading the
//! chunk headers); anything else is refused with
//! [`TransferError::BadOffset`], naming the boundary below it. A resumed
//! redemption is allowed only to the principal the grant was issued to,
//! only before the grant expires, at most [`MAX_RESUMES`] times, and never
//! once a download of it completed (the provider records completion when
//! the caller acknowledges the last chunk, which it does after verifying
//! size and digest). The caller keeps hashing across resumes, so the
//! end-to-end size and SHA-256 cover every byte, including bytes a
//! restarted process already held ([`Download::resume_from`],
//! [`Download::resume_to_file`]). [`Download`] resumes on its own, a
//! bounded number of times with a bounded backoff, within the grant's
//! expiry.

mod download;
mod grant;
mod provider;

use std::time::Duration;

pub use download::{Download, DownloadStream};
pub use grant::{GrantError, Grants, ReceiveGrant};
pub(crate) use provider::serve;

/// Manifest-style subject (under the contract) where grants are redeemed.
pub const RECEIVE_SUBJECT: &str = "transfer.v1.receive";
/// On the first download message: where the caller sends its acks.
const CREDIT_HEADER: &str = "Trellis-Credit";
/// On a direct download's acks: the stream sequence after the last chunk
/// received (where the next batch starts).
const FROM_HEADER: &str = "Trellis-From";
/// How many chunks the caller lets the provider send ahead, unless it
/// sets a window: the downloads of a process share 384 chunks (48 MiB at
/// 128 KiB, under nats-server's 64 MiB per-connection pending buffer,
/// beyond which a slow consumer is disconnected), 16 to 64 each. One
/// download alone gets 64: 16 measured 0.85 of async-nats's object-store
/// read, 64 and 128 both 0.91.
static DOWNLOADS: crate::transfer::budget::Budget =
    crate::transfer::budget::Budget::new(384, 16, 64);
/// How long either side waits for the other before giving up.
const IDLE: Duration = Duration::from_secs(30);
/// Resumed redemptions one grant allows.
pub const MAX_RESUMES: u32 = 16;
/// On a `bad-offset` refusal: the chunk boundary at or below the offset
/// asked for.
const BOUNDARY_HEADER: &str = "Trellis-Boundary";
/// How long a grant is valid unless the issuer says otherwise.
pub const DEFAULT_GRANT_TTL: Duration = Duration::from_secs(300);
