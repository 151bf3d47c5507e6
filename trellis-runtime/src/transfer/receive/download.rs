//! The caller side of a download: credits, order, size and digest checks,
//! and resuming from the byte reached.

use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use async_nats::HeaderMap;
use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;
use tracing::debug;

use super::grant::RedeemRequest;
use super::{
    BOUNDARY_HEADER, CREDIT_HEADER, DOWNLOADS, FROM_HEADER, IDLE, RECEIVE_SUBJECT, ReceiveGrant,
};
use crate::runtime::ServiceRuntime;
use crate::transfer::budget::Share;
use crate::transfer::{
    ACK_HEADER, CHUNKS_HEADER, DIGEST_HEADER, END_HEADER, SEQ_HEADER, TransferError,
};
use crate::wire::headers::STATUS_HEADER;
use crate::wire::ids::now_ms;

/// Resumed redemptions a download makes on its own before giving up.
const AUTO_RESUMES: u32 = 8;
/// Resumes in a row that may bring no new byte before the download gives
/// up (the provider keeps refusing, the object is gone).
const FRUITLESS_RESUMES: u32 = 3;
/// First pause before a resume; it doubles up to [`RESUME_BACKOFF_MAX`].
const RESUME_BACKOFF: Duration = Duration::from_millis(200);
/// Longest pause before a resume.
const RESUME_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How often a waiting receiver checks whether its connection was
/// re-established meanwhile (chunks sent while it was away are lost).
const RECONNECT_POLL: Duration = Duration::from_millis(250);
/// Bytes hashed per read when a resume re-hashes what is already held.
const REHASH_BUFFER: usize = 1 << 20;

/// Called with a byte count: where a download resumes, or how far it got.
type Notify = std::sync::Arc<dyn Fn(u64) + Send + Sync>;

/// A download of one grant. Consume it as a stream of chunks, as bytes, or
/// into a file; every subscription is released when it ends or is dropped.
///
/// A download that stops part-way resumes on its own from the byte it
/// reached (see the [module docs](self)); a process that restarted with a
/// part of the content continues with [`Download::resume_from`] or
/// [`Download::resume_to_file`].
#[must_use = "a download does nothing until consumed"]
pub struct Download {
    runtime: ServiceRuntime,
    grant: ReceiveGrant,
    /// Set by [`Download::window`]; otherwise a share of [`DOWNLOADS`].
    window: Option<u64>,
    /// Where the first redemption starts, and the hash of the bytes
    /// before it (held by the caller already).
    start: Option<(u64, Sha256)>,
    on_resume: Option<Notify>,
    on_progress: Option<Notify>,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("size", &self.grant.size)
            .field("offset", &self.start.as_ref().map(|(offset, _)| *offset))
            .finish_non_exhaustive()
    }
}

/// The chunks of a download; the last item is an error if verification
/// failed.
pub type DownloadStream = Pin<Box<dyn Stream<Item = Result<Bytes, TransferError>> + Send>>;

/// A download in progress: one redemption (a session) at a time, and what
/// all sessions received so far.
struct Receiving {
    runtime: ServiceRuntime,
    grant: ReceiveGrant,
    client: async_nats::Client,
    /// The current session's inbox.
    sub: Option<async_nats::Subscriber>,
    credit: Option<String>,
    expected: Option<(u64, String)>,
    /// Chunks received in this session.
    next: u64,
    acked: u64,
    window: u64,
    /// This download's place in [`DOWNLOADS`] (none with a fixed window):
    /// each session asks for its share at the time.
    share: Option<Share>,
    /// Bytes received (and hashed) by every session, plus the bytes held
    /// before the first.
    bytes: u64,
    hasher: Sha256,
    done: bool,
    /// A direct download: the number of chunks this session sends.
    chunks: Option<u64>,
    /// Direct: the stream sequence of the last chunk received.
    last_seq: u64,
    /// Direct: every chunk arrived and verified.
    complete: bool,
    /// The byte offset this session started at.
    session_offset: u64,
    /// Connections the client had made when this session started.
    connects: u64,
    /// Resumed redemptions so far, and how many in a row brought nothing.
    resumes: u32,
    fruitless: u32,
    on_resume: Option<Notify>,
    on_progress: Option<Notify>,
}

/// Failures a resumed redemption may get past.
fn resumable(error: &TransferError) -> bool {
    matches!(
        error,
        TransferError::Idle(_) | TransferError::Interrupted(_) | TransferError::Nats(_)
    )
}

impl Receiving {
    fn connects(&self) -> u64 {
        crate::wire::connection::connects(&self.client)
    }

    /// Starts a session: redeems the grant, fresh (`offset` `None`) or
    /// resumed at byte `offset`.
    async fn redeem(&mut self, offset: Option<u64>) -> Result<(), TransferError> {
        let inbox = self.client.new_inbox();
        let sub = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| TransferError::Nats(e.to_string()))?;
        self.sub = Some(sub);
        self.credit = None;
        self.expected = None;
        self.next = 0;
        self.acked = 0;
        self.chunks = None;
        self.last_seq = 0;
        self.session_offset = offset.unwrap_or(0);
        self.connects = self.connects();
        if let Some(share) = &self.share {
            self.window = share.chunks();
        }
        let request = RedeemRequest {
            grant: self.grant.id.clone(),
            window: self.window,
            direct: true,
            offset,
        };
        let payload =
            serde_json::to_vec(&request).map_err(|e| TransferError::Nats(e.to_string()))?;
        let subject = self.runtime.request_subject(RECEIVE_SUBJECT);
        let mut headers = HeaderMap::new();
        self.runtime.identify(&mut headers, true);
        let _span = crate::trace::TraceContext::send(
            crate::trace::Hop::Call,
            RECEIVE_SUBJECT,
            &mut headers,
        );
        self.client
            .publish_with_reply_and_headers(subject, inbox, headers, payload.into())
            .await
            .map_err(|e| TransferError::Nats(e.to_string()))
    }

    /// Ends the current session: tells its provider to stop pacing (best
    /// effort, when it has a credit subject) and drops its inbox.
    async fn stop_session(&mut self) {
        if let Some(credit) = self.credit.take() {
            let mut headers = HeaderMap::new();
            headers.insert(STATUS_HEADER, "cancelled");
            let stop = self
                .client
                .publish_with_headers(credit, headers, Bytes::new());
            let _ = tokio::time::timeout(RECONNECT_POLL, stop).await;
        }
        if let Some(mut sub) = self.sub.take() {
            let _ = tokio::time::timeout(RECONNECT_POLL, sub.unsubscribe()).await;
        }
    }

    /// Whether a session that failed with `error` may be resumed after a
    /// pause of `backoff`.
    fn may_resume(&self, error: &TransferError, backoff: Duration) -> bool {
        let pause = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX);
        resumable(error)
            && !self.complete
            && self.resumes < AUTO_RESUMES
            && self.fruitless < FRUITLESS_RESUMES
            && now_ms().saturating_add(pause) < self.grant.expires_at_ms
    }

    /// The next chunk, resuming (a bounded number of times) when a session
    /// fails part-way.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, TransferError> {
        let mut failure = match self.next_in_session().await {
            Ok(chunk) => return Ok(chunk),
            Err(e) => e,
        };
        let mut backoff = RESUME_BACKOFF;
        // Bounded: every pass counts a resume, and `may_resume` stops at
        // `AUTO_RESUMES`.
        loop {
            if !self.may_resume(&failure, backoff) {
                return Err(failure);
            }
            debug!(error = %failure, offset = self.bytes, "resuming the download");
            self.stop_session().await;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RESUME_BACKOFF_MAX);
            self.resumes += 1;
            let before = self.bytes;
            if let Some(on_resume) = &self.on_resume {
                on_resume(before);
            }
            failure = match self.redeem(Some(before)).await {
                Err(e) => e,
                Ok(()) => match self.next_in_session().await {
                    Ok(chunk) => {
                        self.fruitless = 0;
                        return Ok(chunk);
                    }
                    Err(e) => e,
                },
            };
            if self.bytes == before {
                self.fruitless += 1;
            } else {
                self.fruitless = 0;
            }
        }
    }

    /// The next message of the current session. Fails with `Idle` after
    /// [`IDLE`] of silence, and sooner once the connection was
    /// re-established meanwhile (what was sent while it was away is lost).
    async fn next_message(&mut self) -> Result<async_nats::Message, TransferError> {
        let deadline = tokio::time::Instant::now() + IDLE;
        let connects = self.connects;
        let client = self.client.clone();
        let Some(sub) = self.sub.as_mut() else {
            return Err(TransferError::Interrupted(
                "no redemption in progress".into(),
            ));
        };
        // Bounded: each pass waits at least `RECONNECT_POLL` until `deadline`.
        loop {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(TransferError::Idle(IDLE));
            }
            match tokio::time::timeout((deadline - now).min(RECONNECT_POLL), sub.next()).await {
                Ok(Some(message)) => return Ok(message),
                Ok(None) => {
                    return Err(TransferError::Interrupted("the subscription closed".into()));
                }
                Err(_) => {
                    if crate::wire::connection::connects(&client) != connects {
                        return Err(TransferError::Interrupted(
                            "the connection dropped and was re-established".into(),
                        ));
                    }
                }
            }
        }
    }

    /// Acknowledges a direct download's chunks so far (the provider then
    /// asks the store for the next batch).
    async fn ack_direct(&mut self) -> Result<(), TransferError> {
        let Some(credit) = self.credit.clone() else {
            return Ok(());
        };
        self.acked = self.next;
        let mut headers = HeaderMap::new();
        headers.insert(ACK_HEADER, self.next.to_string());
        headers.insert(FROM_HEADER, (self.last_seq + 1).to_string());
        self.client
            .publish_with_headers(credit, headers, Bytes::new())
            .await
            .map_err(|e| TransferError::Nats(e.to_string()))
    }

    /// Checks size and digest once every byte arrived.
    fn verify(&mut self) -> Result<(), TransferError> {
        let Some((size, digest)) = &self.expected else {
            return Err(TransferError::Interrupted("no grant accepted".into()));
        };
        if self.bytes != *size {
            return Err(TransferError::SizeMismatch(format!(
                "{size} bytes granted, {} received",
                self.bytes
            )));
        }
        let ours = crate::transfer::digest_of(std::mem::take(&mut self.hasher));
        if &ours != digest {
            return Err(TransferError::DigestMismatch(format!(
                "granted {digest}, received {ours}"
            )));
        }
        Ok(())
    }

    /// One answer of the store in a direct download.
    async fn direct_chunk(
        &mut self,
        chunks: u64,
        message: async_nats::Message,
    ) -> Result<Option<Bytes>, TransferError> {
        match message.status.map(|s| s.as_u16()) {
            // End of a batch: ask for the next one.
            Some(204) => {
                if self.next > self.acked {
                    self.ack_direct().await?;
                }
                return Ok(None);
            }
            Some(code) => {
                return Err(TransferError::Interrupted(format!(
                    "the content is no longer readable (status {code})"
                )));
            }
            None => {}
        }
        let seq = crate::wire::headers::header_u64(&message, "Nats-Sequence")
            .filter(|seq| *seq > self.last_seq)
            .ok_or_else(|| TransferError::Interrupted("a chunk out of order".into()))?;
        // Chunks of the object stored after this one: fewer than expected
        // means one before it was lost (e.g. with a dropped connection),
        // so nothing of this one counts and the download resumes before it.
        let pending = crate::wire::headers::header_u64(&message, "Nats-Num-Pending");
        let expected = chunks.saturating_sub(self.next + 1);
        if pending.is_some_and(|pending| pending != expected) {
            return Err(TransferError::Interrupted(format!(
                "chunk {} of this redemption is missing",
                self.next
            )));
        }
        self.last_seq = seq;
        self.next += 1;
        self.bytes += message.payload.len() as u64;
        if self
            .expected
            .as_ref()
            .is_some_and(|(size, _)| self.bytes > *size)
            || self.next > chunks
        {
            return Err(TransferError::SizeMismatch(
                "more than the granted bytes arrived".into(),
            ));
        }
        self.hasher.update(&message.payload);
        if self.next == chunks {
            self.verify()?;
            self.complete = true;
            // The provider waits for this to finish.
            self.ack_direct().await?;
        }
        Ok(Some(message.payload))
    }

    /// The next chunk of the current session.
    async fn next_in_session(&mut self) -> Result<Option<Bytes>, TransferError> {
        loop {
            if self.complete {
                return Ok(None);
            }
            let message = self.next_message().await?;
            if let Some(status) = crate::wire::headers::header(&message, STATUS_HEADER) {
                let text = String::from_utf8_lossy(&message.payload).into_owned();
                if status == "bad-offset" {
                    return Err(TransferError::BadOffset {
                        offset: self.session_offset,
                        boundary: crate::wire::headers::header_u64(&message, BOUNDARY_HEADER),
                        reason: text,
                    });
                }
                return Err(TransferError::from_status(status, text));
            }
            if let Some(credit) = crate::wire::headers::header(&message, CREDIT_HEADER) {
                self.credit = Some(credit.to_owned());
                let size = crate::wire::headers::header_u64(&message, END_HEADER).unwrap_or(0);
                let digest = crate::wire::headers::header(&message, DIGEST_HEADER)
                    .unwrap_or("")
                    .to_owned();
                self.expected = Some((size, digest));
                self.chunks = crate::wire::headers::header_u64(&message, CHUNKS_HEADER);
                if self.chunks == Some(0) {
                    self.verify()?;
                    self.complete = true;
                }
                continue;
            }
            if let Some(chunks) = self.chunks {
                match self.direct_chunk(chunks, message).await? {
                    Some(chunk) => return Ok(Some(chunk)),
                    None => continue,
                }
            }
            let (Some(credit), Some((size, _))) = (&self.credit, &self.expected) else {
                return Err(TransferError::Interrupted(
                    "data before the grant was accepted".into(),
                ));
            };
            let seq = crate::wire::headers::header_u64(&message, SEQ_HEADER)
                .ok_or_else(|| TransferError::Interrupted("a chunk without a sequence".into()))?;
            if seq != self.next {
                return Err(TransferError::Interrupted(format!(
                    "chunk {} is missing (got {seq})",
                    self.next
                )));
            }
            if crate::wire::headers::header(&message, END_HEADER).is_some() {
                self.verify()?;
                return Ok(None);
            }
            self.next += 1;
            self.bytes += message.payload.len() as u64;
            if self.bytes > *size {
                return Err(TransferError::SizeMismatch(format!(
                    "more than the {size} granted bytes arrived"
                )));
            }
            self.hasher.update(&message.payload);
            if self.next - self.acked >= (self.window / 2).max(1) {
                self.acked = self.next;
                let mut headers = HeaderMap::new();
                headers.insert(ACK_HEADER, self.acked.to_string());
                self.client
                    .publish_with_headers(credit.clone(), headers, Bytes::new())
                    .await
                    .map_err(|e| TransferError::Nats(e.to_string()))?;
            }
            return Ok(Some(message.payload));
        }
    }
}

/// Hashes the first `len` bytes of `reader` into `hasher`.
async fn hash_prefix(
    reader: &mut (impl tokio::io::AsyncRead + Unpin),
    len: u64,
    hasher: &mut Sha256,
) -> Result<(), TransferError> {
    use tokio::io::AsyncReadExt as _;
    let mut buffer = vec![0u8; REHASH_BUFFER];
    let mut left = len;
    // Bounded: every pass consumes at least one byte or fails.
    while left > 0 {
        let want = usize::try_from(left.min(REHASH_BUFFER as u64)).unwrap_or(REHASH_BUFFER);
        let read = reader
            .read(&mut buffer[..want])
            .await
            .map_err(TransferError::Body)?;
        if read == 0 {
            return Err(TransferError::Body(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("the held content ended {left} bytes before the resume offset {len}"),
            )));
        }
        hasher.update(&buffer[..read]);
        left -= read as u64;
    }
    Ok(())
}

/// Failures after which a `.part` file is kept for a later resume.
fn keep_part(error: &TransferError) -> bool {
    resumable(error) || matches!(error, TransferError::GrantExpired)
}

/// `<path>.part`.
fn part_path(path: &Path) -> std::path::PathBuf {
    let mut part = path.as_os_str().to_owned();
    part.push(".part");
    std::path::PathBuf::from(part)
}

impl Download {
    #[doc(hidden)]
    pub fn new(runtime: ServiceRuntime, grant: &ReceiveGrant) -> Download {
        Download {
            runtime,
            grant: grant.clone(),
            window: None,
            start: None,
            on_resume: None,
            on_progress: None,
        }
    }

    /// Chunks the provider may send ahead of consumption. By default each
    /// download takes a share of 384 chunks (48 MiB at 128 KiB) across
    /// the downloads this process runs, 16 to 64 each.
    pub fn window(mut self, chunks: u64) -> Download {
        self.window = Some(chunks.clamp(1, 1024));
        self
    }

    /// Calls `on_resume(offset)` each time the download resumes on its own
    /// at byte `offset` (e.g. to report it).
    pub fn on_resume(mut self, on_resume: impl Fn(u64) + Send + Sync + 'static) -> Download {
        self.on_resume = Some(std::sync::Arc::new(on_resume));
        self
    }

    /// Calls `on_progress(bytes)` after each chunk with the bytes held so
    /// far (those held before a [`Download::resume_from`] included).
    pub fn on_progress(mut self, on_progress: impl Fn(u64) + Send + Sync + 'static) -> Download {
        self.on_progress = Some(std::sync::Arc::new(on_progress));
        self
    }

    /// The size the grant announces.
    pub fn size(&self) -> u64 {
        self.grant.size
    }

    /// The grant this download redeems.
    pub fn grant(&self) -> &ReceiveGrant {
        &self.grant
    }

    /// Continues a download of this grant that stopped at byte `offset`
    /// (e.g. in a process that restarted): `held` yields the first
    /// `offset` bytes already received, which are hashed (not fetched
    /// again) so the end-to-end digest still covers them. The stream then
    /// yields only the bytes from `offset` on. `offset` must not exceed the
    /// size and must be a chunk boundary (the bytes an earlier download of
    /// this grant delivered always end at one); otherwise the download
    /// fails with [`TransferError::BadOffset`]. Only the caller the grant
    /// was issued to may resume it, and not once a download completed.
    pub async fn resume_from(
        mut self,
        offset: u64,
        mut held: impl tokio::io::AsyncRead + Unpin,
    ) -> Result<Download, TransferError> {
        if offset > self.grant.size {
            return Err(TransferError::BadOffset {
                offset,
                boundary: None,
                reason: format!("the object has {} bytes", self.grant.size),
            });
        }
        let mut hasher = Sha256::new();
        hash_prefix(&mut held, offset, &mut hasher).await?;
        self.start = Some((offset, hasher));
        Ok(self)
    }

    /// The content as a stream of chunks, verified at the end.
    pub async fn stream(self) -> Result<DownloadStream, TransferError> {
        let client = self.runtime.nats().clone();
        let (offset, hasher) = match self.start {
            Some((offset, hasher)) => (Some(offset), hasher),
            None => (None, Sha256::new()),
        };
        let mut state = Receiving {
            runtime: self.runtime,
            grant: self.grant,
            client,
            sub: None,
            credit: None,
            expected: None,
            next: 0,
            acked: 0,
            // (With a share, each session sets it before redeeming.)
            window: self.window.unwrap_or_default(),
            share: self.window.is_none().then(|| DOWNLOADS.join()),
            bytes: offset.unwrap_or(0),
            hasher,
            done: false,
            chunks: None,
            last_seq: 0,
            complete: false,
            session_offset: 0,
            connects: 0,
            resumes: 0,
            fruitless: 0,
            on_resume: self.on_resume,
            on_progress: self.on_progress,
        };
        state.redeem(offset).await?;
        Ok(Box::pin(futures::stream::unfold(
            state,
            |mut state| async move {
                if state.done {
                    return None;
                }
                match state.next_chunk().await {
                    Ok(Some(chunk)) => {
                        if let Some(on_progress) = &state.on_progress {
                            on_progress(state.bytes);
                        }
                        Some((Ok(chunk), state))
                    }
                    Ok(None) => {
                        state.done = true;
                        // Finished: the provider stopped on its own.
                        state.credit = None;
                        state.stop_session().await;
                        None
                    }
                    Err(e) => {
                        state.done = true;
                        state.stop_session().await;
                        Some((Err(e), state))
                    }
                }
            },
        )))
    }

    /// The whole content in memory, verified (after
    /// [`Download::resume_from`]: the bytes from the offset on).
    pub async fn bytes(self) -> Result<Bytes, TransferError> {
        let held = self.start.as_ref().map_or(0, |(offset, _)| *offset);
        let capacity = usize::try_from(self.grant.size.saturating_sub(held))
            .unwrap_or(0)
            .min(1 << 30);
        let mut stream = self.stream().await?;
        let mut all = bytes::BytesMut::with_capacity(capacity);
        while let Some(chunk) = stream.next().await {
            all.extend_from_slice(&chunk?);
        }
        Ok(all.freeze())
    }

    /// Writes the content to `path`. The bytes go to `<path>.part` first,
    /// which is renamed into place only after size and digest verify.
    /// When the download stops for good part-way (its own resumes
    /// exhausted, the grant expired), `<path>.part` is kept for
    /// [`Download::resume_to_file`]; after any other failure it is removed.
    /// Returns the size.
    pub async fn to_file(self, path: impl AsRef<Path>) -> Result<u64, TransferError> {
        let path = path.as_ref();
        let part = part_path(path);
        let file = tokio::fs::File::create(&part)
            .await
            .map_err(TransferError::Write)?;
        self.write_rest(file, &part, path).await
    }

    /// Like [`Download::to_file`], but continues `<path>.part` left by an
    /// earlier download of this grant: its bytes are hashed again (not
    /// fetched), and only the rest is downloaded. Without a `.part` file
    /// (or with one longer than the object) this downloads from the start.
    pub async fn resume_to_file(self, path: impl AsRef<Path>) -> Result<u64, TransferError> {
        let path = path.as_ref();
        let part = part_path(path);
        let held = match tokio::fs::metadata(&part).await {
            Ok(meta) if meta.len() <= self.grant.size => meta.len(),
            _ => return self.to_file(path).await,
        };
        let (runtime, grant, window) = (self.runtime, self.grant, self.window);
        let (on_resume, on_progress) = (self.on_resume, self.on_progress);
        let mut offset = held;
        // At most two passes: the second starts at the chunk boundary the
        // provider named for an offset inside a chunk.
        for pass in 0..2 {
            let mut file = tokio::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&part)
                .await
                .map_err(TransferError::Write)?;
            file.set_len(offset).await.map_err(TransferError::Write)?;
            let download = Download {
                runtime: runtime.clone(),
                grant: grant.clone(),
                window,
                start: None,
                on_resume: on_resume.clone(),
                on_progress: on_progress.clone(),
            }
            .resume_from(offset, &mut file)
            .await?;
            match download.write_rest(file, &part, path).await {
                Err(TransferError::BadOffset {
                    boundary: Some(boundary),
                    ..
                }) if pass == 0 && boundary < offset => offset = boundary,
                result => return result,
            }
        }
        Err(TransferError::Interrupted(
            "no chunk boundary to resume at".into(),
        ))
    }

    /// Streams the content (from the download's start offset) to the end
    /// of `file` (`part`), then renames it to `path` once verified.
    async fn write_rest(
        self,
        mut file: tokio::fs::File,
        part: &Path,
        path: &Path,
    ) -> Result<u64, TransferError> {
        use tokio::io::AsyncSeekExt as _;
        let held = self.start.as_ref().map_or(0, |(offset, _)| *offset);
        let result: Result<u64, TransferError> = async {
            file.seek(std::io::SeekFrom::Start(held))
                .await
                .map_err(TransferError::Write)?;
            let mut stream = self.stream().await?;
            let mut written = held;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                file.write_all(&chunk).await.map_err(TransferError::Write)?;
                written += chunk.len() as u64;
            }
            file.sync_all().await.map_err(TransferError::Write)?;
            tokio::fs::rename(part, path)
                .await
                .map_err(TransferError::Write)?;
            Ok(written)
        }
        .await;
        match &result {
            Err(TransferError::BadOffset { .. }) => {}
            Err(e) if keep_part(e) => {
                let _ = file.flush().await;
            }
            Err(_) => {
                let _ = tokio::fs::remove_file(part).await;
            }
            Ok(_) => {}
        }
        result
    }
}
