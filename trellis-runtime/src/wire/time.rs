//! RFC 3339 timestamps, total over every `SystemTime`: times before the
//! epoch are written as the epoch and times past year 9999 (a far expiry
//! a caller asked for, say) as the last instant of 9999, where the
//! formatter would otherwise panic.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// 9999-12-31T23:59:59.999999999Z, the last instant RFC 3339 can write.
fn last_writable() -> SystemTime {
    UNIX_EPOCH + Duration::new(253_402_300_799, 999_999_999)
}

fn clamped(time: SystemTime) -> SystemTime {
    time.clamp(UNIX_EPOCH, last_writable())
}

/// `time` in UTC with nanoseconds (`2025-01-31T12:00:00.000000001Z`).
pub(crate) fn rfc3339_nanos(time: SystemTime) -> String {
    humantime::format_rfc3339_nanos(clamped(time)).to_string()
}

/// `time` in UTC with milliseconds (`2025-01-31T12:00:00.001Z`).
pub(crate) fn rfc3339_millis(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(clamped(time)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_time_is_written() {
        assert_eq!(
            rfc3339_nanos(UNIX_EPOCH + Duration::new(1, 5)),
            "1970-01-01T00:00:01.000000005Z"
        );
        assert_eq!(
            rfc3339_millis(UNIX_EPOCH - Duration::from_secs(10)),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            rfc3339_millis(UNIX_EPOCH + Duration::from_millis(u64::MAX)),
            "9999-12-31T23:59:59.999Z"
        );
    }
}
