//! Bounds on what a caller controls, checked before any I/O: how long ids
//! and headers may be. Each bound is documented in
//! `docs/wire-and-storage.md` ("Bounds").

/// The most header bytes a request may carry (names and values together).
/// A request with more is refused with `bad-request`.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// The longest request id a proof may carry (the runtime's own are 43
/// bytes at most); ids are `A-Z a-z 0-9 - _`.
pub const MAX_REQUEST_ID_BYTES: usize = 64;

/// The longest subject the runtime publishes to: nats-server closes a
/// connection whose protocol line (subject, reply, sizes) exceeds its
/// 4 KiB control line limit, so subjects built from data stay well under.
pub const MAX_SUBJECT_BYTES: usize = 3 * 1024;

/// Header bytes of a message: every name and value, as counted against
/// [`MAX_HEADER_BYTES`].
pub(crate) fn header_bytes(headers: Option<&async_nats::HeaderMap>) -> usize {
    headers.map_or(0, |headers| {
        headers
            .iter()
            .map(|(name, values)| {
                values
                    .iter()
                    .map(|v| AsRef::<[u8]>::as_ref(name).len() + v.as_str().len() + 4)
                    .sum::<usize>()
            })
            .sum()
    })
}

/// Whether `id` is a token of at most `max` bytes of `A-Z a-z 0-9 - _`
/// (safe in subjects and KV keys).
pub(crate) fn is_token(id: &str, max: usize) -> bool {
    !id.is_empty()
        && id.len() <= max
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bounded_and_subject_safe() {
        assert!(is_token("abc-DEF_123", 64));
        for bad in ["", ">", "*", ".", "a..b", "a b", "a.b"] {
            assert!(!is_token(bad, 64), "{bad:?}");
        }
        assert!(!is_token(&"a".repeat(65), 64));
        assert!(is_token(&"a".repeat(64), 64));
    }

    #[test]
    fn header_bytes_count_names_and_values() {
        let mut h = async_nats::HeaderMap::new();
        assert_eq!(header_bytes(Some(&h)), 0);
        h.insert("A", "bc");
        assert_eq!(header_bytes(Some(&h)), 1 + 2 + 4);
        assert_eq!(header_bytes(None), 0);
    }
}
