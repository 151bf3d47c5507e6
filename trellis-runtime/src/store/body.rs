//! [`Body`]: what `put` and `create` upload.

use std::fmt;
use std::io;
use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The content of an object being written: bytes in memory, an
/// [`AsyncRead`] reader or a [`Stream`] of byte chunks.
///
/// In-memory bodies convert with `From`/`Into` (`Bytes`, `Vec<u8>`,
/// `String`, `&[u8]`, `&str`, `&[u8; N]`), so `store.put("k", b"hi", opts)`
/// works. Readers and streams are consumed incrementally, one chunk at a
/// time: uploading a large file does not buffer it.
///
/// A reader or stream has an unknown size unless you declare it with
/// [`Body::with_size`]; a declared size lets a write into a full store
/// fail before anything is uploaded, and is checked against the bytes
/// actually produced.
///
/// ```
/// # use trellis_runtime::store::Body;
/// let from_bytes: Body<'_> = b"hello".into();
/// assert_eq!(from_bytes.size(), Some(5));
/// let file_like = Body::from_reader(&b"streamed"[..]).with_size(8);
/// assert_eq!(file_like.size(), Some(8));
/// ```
pub struct Body<'a> {
    kind: Kind<'a>,
    size: Option<u64>,
}

enum Kind<'a> {
    Bytes(Bytes),
    Slice(&'a [u8]),
    Reader(Pin<Box<dyn AsyncRead + Send + 'a>>),
    Stream(BoxStream<'a, io::Result<Bytes>>),
}

impl fmt::Debug for Body<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Bytes(_) | Kind::Slice(_) => "bytes",
            Kind::Reader(_) => "reader",
            Kind::Stream(_) => "stream",
        };
        f.debug_struct("Body")
            .field("kind", &kind)
            .field("size", &self.size)
            .finish()
    }
}

impl Body<'static> {
    /// An empty body.
    pub fn empty() -> Body<'static> {
        Body::from(Bytes::new())
    }
}

impl<'a> Body<'a> {
    /// A body read from `reader` until end of file.
    pub fn from_reader<R>(reader: R) -> Body<'a>
    where
        R: AsyncRead + Send + 'a,
    {
        Body {
            kind: Kind::Reader(Box::pin(reader)),
            size: None,
        }
    }

    /// A body made of the chunks `stream` yields; an `Err` item aborts the
    /// write.
    pub fn from_stream<S>(stream: S) -> Body<'a>
    where
        S: Stream<Item = Result<Bytes, io::Error>> + Send + 'a,
    {
        Body {
            kind: Kind::Stream(stream.boxed()),
            size: None,
        }
    }

    /// The content of the file at `path`, read as it is sent; its size is
    /// taken from the file system.
    pub async fn file(path: impl AsRef<std::path::Path>) -> io::Result<Body<'static>> {
        let file = tokio::fs::File::open(path).await?;
        let size = file.metadata().await?.len();
        Ok(Body::from_reader(file).with_size(size))
    }

    /// Declares the exact size of a reader or stream body. A body that
    /// produces a different number of bytes fails the write with
    /// [`StoreError::SizeMismatch`](super::StoreError::SizeMismatch).
    /// In-memory bodies know their size; declaring another one makes the
    /// write fail the same way.
    pub fn with_size(mut self, size: u64) -> Body<'a> {
        self.size = Some(size);
        self
    }

    /// The size, if known (in-memory, or declared with [`Body::with_size`]).
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// The declared size and the chunk source.
    pub(crate) fn into_parts(self) -> (Option<u64>, Chunker<'a>) {
        let source = match self.kind {
            Kind::Bytes(bytes) => Source::Bytes(bytes),
            Kind::Slice(slice) => Source::Slice(slice),
            Kind::Reader(reader) => Source::Reader(reader),
            Kind::Stream(stream) => Source::Stream {
                stream,
                pending: Bytes::new(),
                buffer: BytesMut::new(),
                done: false,
            },
        };
        (self.size, Chunker { source })
    }
}

impl From<Bytes> for Body<'static> {
    fn from(bytes: Bytes) -> Self {
        Body {
            size: Some(bytes.len() as u64),
            kind: Kind::Bytes(bytes),
        }
    }
}

impl From<BytesMut> for Body<'static> {
    fn from(bytes: BytesMut) -> Self {
        Body::from(bytes.freeze())
    }
}

impl From<Vec<u8>> for Body<'static> {
    fn from(bytes: Vec<u8>) -> Self {
        Body::from(Bytes::from(bytes))
    }
}

impl From<String> for Body<'static> {
    fn from(text: String) -> Self {
        Body::from(Bytes::from(text))
    }
}

impl<'a> From<&'a [u8]> for Body<'a> {
    fn from(slice: &'a [u8]) -> Self {
        Body {
            size: Some(slice.len() as u64),
            kind: Kind::Slice(slice),
        }
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for Body<'a> {
    fn from(array: &'a [u8; N]) -> Self {
        Body::from(&array[..])
    }
}

impl<'a> From<&'a Vec<u8>> for Body<'a> {
    fn from(bytes: &'a Vec<u8>) -> Self {
        Body::from(bytes.as_slice())
    }
}

impl<'a> From<&'a str> for Body<'a> {
    fn from(text: &'a str) -> Self {
        Body::from(text.as_bytes())
    }
}

/// Cuts a body into chunks of exactly `chunk_size` bytes (the last one may
/// be shorter), without copying in-memory bodies or large stream items.
pub(crate) struct Chunker<'a> {
    source: Source<'a>,
}

enum Source<'a> {
    Bytes(Bytes),
    Slice(&'a [u8]),
    Reader(Pin<Box<dyn AsyncRead + Send + 'a>>),
    Stream {
        stream: BoxStream<'a, io::Result<Bytes>>,
        /// The unconsumed rest of the last stream item.
        pending: Bytes,
        /// A partial chunk assembled from small items.
        buffer: BytesMut,
        done: bool,
    },
}

impl Chunker<'_> {
    /// The next chunk, or `None` at the end of the body.
    pub(crate) async fn next_chunk(&mut self, chunk_size: usize) -> io::Result<Option<Bytes>> {
        match &mut self.source {
            Source::Bytes(bytes) => {
                if bytes.is_empty() {
                    return Ok(None);
                }
                let take = chunk_size.min(bytes.len());
                Ok(Some(bytes.split_to(take)))
            }
            Source::Slice(slice) => {
                if slice.is_empty() {
                    return Ok(None);
                }
                let (head, tail) = slice.split_at(chunk_size.min(slice.len()));
                *slice = tail;
                Ok(Some(Bytes::copy_from_slice(head)))
            }
            Source::Reader(reader) => {
                let mut buffer = BytesMut::zeroed(chunk_size);
                let mut filled = 0;
                while filled < chunk_size {
                    let n = reader.read(&mut buffer[filled..]).await?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                if filled == 0 {
                    return Ok(None);
                }
                buffer.truncate(filled);
                Ok(Some(buffer.freeze()))
            }
            Source::Stream {
                stream,
                pending,
                buffer,
                done,
            } => loop {
                let missing = chunk_size - buffer.len();
                if pending.len() >= missing {
                    if buffer.is_empty() {
                        return Ok(Some(pending.split_to(chunk_size)));
                    }
                    buffer.extend_from_slice(&pending.split_to(missing));
                    return Ok(Some(buffer.split().freeze()));
                }
                buffer.extend_from_slice(pending);
                *pending = Bytes::new();
                if *done {
                    if buffer.is_empty() {
                        return Ok(None);
                    }
                    return Ok(Some(buffer.split().freeze()));
                }
                match stream.next().await {
                    Some(Ok(item)) => *pending = item,
                    Some(Err(err)) => return Err(err),
                    None => *done = true,
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn chunks(body: Body<'_>, size: usize) -> Vec<Vec<u8>> {
        let (_, mut chunker) = body.into_parts();
        let mut out = Vec::new();
        while let Some(chunk) = chunker.next_chunk(size).await.expect("chunk") {
            out.push(chunk.to_vec());
        }
        out
    }

    #[tokio::test]
    async fn every_body_kind_is_cut_into_full_chunks() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let expected: Vec<Vec<u8>> = data.chunks(300).map(<[u8]>::to_vec).collect();
        assert_eq!(chunks(Body::from(data.clone()), 300).await, expected);
        assert_eq!(chunks(Body::from(&data[..]), 300).await, expected);
        assert_eq!(chunks(Body::from_reader(&data[..]), 300).await, expected);
        let items: Vec<io::Result<Bytes>> = data
            .chunks(7)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .chain(std::iter::once(Ok(Bytes::copy_from_slice(&[]))))
            .collect();
        let stream = futures::stream::iter(items);
        assert_eq!(chunks(Body::from_stream(stream), 300).await, expected);
        let big = futures::stream::iter(vec![Ok(Bytes::from(data.clone()))]);
        assert_eq!(chunks(Body::from_stream(big), 300).await, expected);
        assert!(chunks(Body::empty(), 300).await.is_empty());
    }
}
