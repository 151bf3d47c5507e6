//! The chunk protocol both directions share: header names, the subject of
//! an operation's send transfer, and the digest form.

/// Chunk sequence number (from 0).
pub(crate) const SEQ_HEADER: &str = "Trellis-Seq";
/// Cumulative acknowledgement: every chunk below this number arrived.
pub(crate) const ACK_HEADER: &str = "Trellis-Ack";
/// On the final message: total bytes.
pub(crate) const END_HEADER: &str = "Trellis-End";
/// On the final message: `SHA-256=<base64url>` of the content.
pub(crate) const DIGEST_HEADER: &str = "Trellis-Digest";
/// On a start request: the size the sender will send, if known.
pub(crate) const SIZE_HEADER: &str = "Trellis-Size";

/// Reply header on a transfer start: the subject of the store a direct
/// upload publishes its chunks to (JetStream publishes; the acks are the
/// sender's window). Opaque to callers: the runtime never surfaces it.
pub(crate) const UPLOAD_HEADER: &str = "Trellis-Upload";
/// First message of a direct upload on the transfer subject; its reply
/// inbox receives the provider's verdicts.
pub(crate) const BEGIN_HEADER: &str = "Trellis-Begin";
/// A direct upload's resume request (after a dropped connection): the
/// provider answers with `Trellis-Ack`, the first chunk it has not
/// stored, once it read everything stored so far.
pub(crate) const RESUME_HEADER: &str = "Trellis-Resume";
/// On a direct upload's final message: the number of chunks published.
pub(crate) const CHUNKS_HEADER: &str = "Trellis-Chunks";

/// Reply header on a transfer start: the largest chunk accepted.
pub(crate) const CHUNK_SIZE_HEADER: &str = "Trellis-Chunk-Size";
/// Reply header on a transfer start: chunks the sender may have unacked.
pub(crate) const WINDOW_HEADER: &str = "Trellis-Window";

/// The subject of operation `id`'s send transfer: below the subject of
/// the request that started it (which names the caller), so only that
/// caller may send its chunks.
pub(crate) fn transfer_subject(start_subject: &str, id: &str) -> String {
    format!("{start_subject}.transfer.{id}")
}

/// `SHA-256=<base64url>` of a finished hasher (the object store's form).
pub(crate) fn digest_of(hasher: sha2::Sha256) -> String {
    use sha2::Digest as _;
    crate::store::digest_string(&hasher.finalize())
}
