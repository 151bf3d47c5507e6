//! Header names shared by requests, replies and events, and their readers.

/// Reply status header: absent on a successful reply, else `error`,
/// `bad-request`, `forbidden`, a transfer status, ...
pub const STATUS_HEADER: &str = "Trellis-Status";
/// Header with an event's unique id.
pub const EVENT_ID_HEADER: &str = "Trellis-Event-Id";
/// Header with an event's publication time (unix ms).
pub const EVENT_TIME_HEADER: &str = "Trellis-Event-Time";

/// The value of header `name`, if present.
pub(crate) fn header<'a>(message: &'a async_nats::Message, name: &str) -> Option<&'a str> {
    message
        .headers
        .as_ref()
        .and_then(|h| h.get(name))
        .map(|v| v.as_str())
}

/// The value of header `name` as a number, if present and numeric.
pub(crate) fn header_u64(message: &async_nats::Message, name: &str) -> Option<u64> {
    header(message, name).and_then(|v| v.trim().parse().ok())
}
