//! The object store wire format shared with async-nats (and the other NATS
//! clients): subjects, key encoding, the JSON metadata record, timestamps.
//!
//! An object `key` in bucket `b` is one metadata message on
//! `$O.b.M.<base64url(key)>` (a rollup: only the newest is kept) and its
//! content as chunk messages on `$O.b.C.<nuid>`, where `nuid` is recorded in
//! the metadata. A deletion is a metadata message with `deleted: true`.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_PAD_INDIFFERENT};
use serde::Serialize;

use super::{MAX_KEY_LEN, ObjectInfo, StoreError};

/// Header name of the content type inside the metadata record's `headers`.
pub(crate) const CONTENT_TYPE: &str = "Content-Type";

/// Checks `key` before any I/O.
///
/// async-nats accepts any non-empty name (it checks the base64 form); the
/// NATS object store convention forbids a leading or trailing `.`. We also
/// bound the length (the encoded key is part of a subject) and reject
/// control characters, which make keys unprintable and ambiguous in logs.
pub(crate) fn validate_key(key: &str) -> Result<(), StoreError> {
    let reason = if key.is_empty() {
        Some("must not be empty".to_owned())
    } else if key.len() > MAX_KEY_LEN {
        Some(format!(
            "is {} bytes long, at most {MAX_KEY_LEN} are allowed",
            key.len()
        ))
    } else if key.starts_with('.') || key.ends_with('.') {
        Some("must not start or end with `.`".to_owned())
    } else if key.chars().any(char::is_control) {
        Some("must not contain control characters".to_owned())
    } else {
        None
    };
    match reason {
        Some(reason) => Err(StoreError::InvalidKey {
            key: key.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// The subject token of `key`, as async-nats encodes it (base64url, padded).
pub(crate) fn encode_key(key: &str) -> String {
    URL_SAFE.encode(key)
}

/// The key of a metadata subject token, if it decodes.
pub(crate) fn decode_key(token: &str) -> Option<String> {
    let bytes = URL_SAFE_PAD_INDIFFERENT.decode(token).ok()?;
    String::from_utf8(bytes).ok()
}

/// `$O.<bucket>.M.<base64url(key)>`.
pub(crate) fn meta_subject(bucket: &str, key: &str) -> String {
    format!("$O.{bucket}.M.{}", encode_key(key))
}

/// `$O.<bucket>.C.<nuid>`.
pub(crate) fn chunk_subject(bucket: &str, nuid: &str) -> String {
    format!("$O.{bucket}.C.{nuid}")
}

/// Bytes a message occupies in a file-backed stream beyond its payload:
/// nats-server counts `22 + subject + (4 + headers) + payload + 8`.
pub(crate) fn stored_overhead(subject_len: usize, headers_len: usize) -> u64 {
    let headers = if headers_len == 0 { 0 } else { 4 + headers_len };
    (30 + subject_len + headers) as u64
}

/// The NATS digest form: `SHA-256=<base64url(sha256)>`.
pub(crate) fn digest_string(sha256: &[u8]) -> String {
    format!("SHA-256={}", URL_SAFE.encode(sha256))
}

/// RFC 3339 with nanoseconds in UTC, as Go's `time.RFC3339Nano` writes it.
pub(crate) fn rfc3339(time: SystemTime) -> String {
    crate::wire::time::rfc3339_nanos(time)
}

/// The metadata record as trellis writes it; field names and shapes follow
/// the NATS object store format (`ObjectInfo` in async-nats / nats.go).
#[derive(Debug, Serialize)]
pub(crate) struct MetaRecord<'a> {
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<&'a str, Vec<&'a str>>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: &'a BTreeMap<String, String>,
    pub options: MetaOptions,
    pub bucket: &'a str,
    pub nuid: &'a str,
    pub size: u64,
    pub chunks: u64,
    pub mtime: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

/// `options` of the metadata record.
#[derive(Debug, Serialize)]
pub(crate) struct MetaOptions {
    pub max_chunk_size: usize,
}

/// A decoded metadata record plus where it sits in the stream.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    /// The public view.
    pub info: ObjectInfo,
    /// Chunk subject token.
    pub nuid: String,
    /// Number of chunk messages.
    pub chunks: u64,
    /// A deletion marker.
    pub deleted: bool,
    /// A link to another object or bucket (written by other clients).
    pub link: bool,
    /// The record's stream sequence.
    pub seq: u64,
}

impl Meta {
    /// Whether this record is a live object (not a deletion marker).
    pub fn is_live(&self) -> bool {
        !self.deleted
    }
}

/// Decodes a metadata record with async-nats's own `ObjectInfo` type, so
/// whatever that client accepts, trellis accepts.
pub(crate) fn decode_meta(key_hint: &str, payload: &[u8], seq: u64) -> Result<Meta, StoreError> {
    let raw: async_nats::jetstream::object_store::ObjectInfo = serde_json::from_slice(payload)
        .map_err(|err| StoreError::Corrupt {
            key: key_hint.to_owned(),
            reason: format!("unreadable metadata record: {err}"),
        })?;
    let content_type = raw.headers.as_ref().and_then(|headers| {
        headers
            .iter()
            .find(|(name, _)| AsRef::<str>::as_ref(*name).eq_ignore_ascii_case(CONTENT_TYPE))
            .and_then(|(_, values)| values.first())
            .map(|value| value.as_str().to_owned())
    });
    let modified = raw
        .modified
        .map(|time| system_time_from_unix_nanos(time.unix_timestamp_nanos()))
        .unwrap_or(UNIX_EPOCH);
    let link = raw
        .options
        .as_ref()
        .is_some_and(|options| options.link.is_some());
    let metadata: HashMap<String, String> = raw.metadata;
    Ok(Meta {
        info: ObjectInfo {
            key: raw.name,
            size: raw.size as u64,
            digest: raw.digest.unwrap_or_default(),
            content_type,
            metadata: metadata.into_iter().collect(),
            modified,
        },
        nuid: raw.nuid,
        chunks: raw.chunks as u64,
        deleted: raw.deleted,
        link,
        seq,
    })
}

fn system_time_from_unix_nanos(nanos: i128) -> SystemTime {
    let magnitude = u64::try_from(nanos.unsigned_abs()).unwrap_or(u64::MAX);
    let offset = Duration::from_nanos(magnitude);
    if nanos >= 0 {
        UNIX_EPOCH.checked_add(offset)
    } else {
        UNIX_EPOCH.checked_sub(offset)
    }
    .unwrap_or(UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_validated() {
        for key in [
            "a",
            "dir/file.txt",
            "ünïcødé",
            "a b",
            "x".repeat(MAX_KEY_LEN).as_str(),
        ] {
            assert!(validate_key(key).is_ok(), "{key:?}");
        }
        for key in [
            "",
            ".hidden",
            "trailing.",
            "tab\there",
            "nl\n",
            "x".repeat(MAX_KEY_LEN + 1).as_str(),
        ] {
            assert!(
                matches!(validate_key(key), Err(StoreError::InvalidKey { .. })),
                "{key:?}"
            );
        }
    }

    #[test]
    fn keys_round_trip_through_subject_tokens() {
        for key in ["a", "dir/file.txt", "ünïcødé", "ab", "abc"] {
            assert_eq!(decode_key(&encode_key(key)).as_deref(), Some(key));
        }
    }

    #[test]
    fn timestamps_round_trip_through_async_nats() {
        for time in [
            UNIX_EPOCH,
            UNIX_EPOCH + Duration::new(951_782_400, 123_456_789), // 2000-02-29
            UNIX_EPOCH + Duration::new(4_107_542_399, 999_999_999), // 2100-02-28T23:59:59
            SystemTime::now(),
        ] {
            let json = serde_json::json!({
                "name": "k", "bucket": "b", "nuid": "n", "size": 0, "chunks": 0,
                "mtime": rfc3339(time),
            });
            let meta = decode_meta("k", json.to_string().as_bytes(), 1).expect("decodes");
            assert_eq!(meta.info.modified, time, "{}", rfc3339(time));
        }
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::new(951_782_400, 5)),
            "2000-02-29T00:00:00.000000005Z"
        );
    }
}
