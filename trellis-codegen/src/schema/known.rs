//! The well-known external types: the JSON Schema of what each one's own
//! serde implementation writes through `serde_json`, looked up by the
//! type's full path.
//!
//! One table, read by the schema derivation and listed in the README
//! ("Types a contract may use"); `tests/well_known_types.rs` checks every
//! row against real values serialized by the type's crate. A format is
//! used only where the standard format describes what serde writes; a
//! `pattern` (with a fixed `description`) otherwise. Types whose shape
//! depends on a cargo feature the contract cannot see are refused, with
//! the fix.

use trellis_manifest::json::{Json, Number};

/// How a well-known type maps to a schema.
#[derive(Debug, Clone, Copy)]
pub enum Mapping {
    /// A fixed schema, as JSON text.
    Schema(&'static str),
    /// The schema of the type argument (`Cow<'static, str>` is `str`).
    Argument,
    /// An integer that is never zero: the primitive it wraps
    /// (`NonZeroU32` wraps `u32`), or `None` for `NonZero<T>`, which wraps
    /// its type argument.
    NonZero(Option<&'static str>),
    /// No faithful schema.
    Refused {
        /// Why.
        why: &'static str,
        /// What to write instead.
        fix: &'static str,
    },
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct WellKnown {
    /// The type as the README lists it, e.g. `chrono::DateTime<Tz>`.
    pub rust: &'static str,
    /// Every full path that names it. `std::` paths also match the same
    /// path under `core::` and `alloc::`.
    pub paths: &'static [&'static str],
    /// Its schema.
    pub mapping: Mapping,
}

const BYTES: &str = r#"{"type":"array","items":{"type":"integer","minimum":0,"maximum":255}}"#;

/// A `NonZero*` row: the path names the type in the README too.
macro_rules! non_zero {
    ($path:literal, $primitive:literal) => {
        WellKnown {
            rust: $path,
            paths: &[$path],
            mapping: Mapping::NonZero(Some($primitive)),
        }
    };
}

const TIME_REFUSED: &str = "its serde shape depends on a cargo feature of the `time` crate that \
    the contract cannot see: by default it is written as an array of numbers, and as a string \
    only when some crate in the build enables `time/serde-human-readable`";

/// The table. Order is the README's.
pub const WELL_KNOWN: &[WellKnown] = &[
    WellKnown {
        rust: "uuid::Uuid",
        paths: &["uuid::Uuid"],
        mapping: Mapping::Schema(r#"{"type":"string","format":"uuid"}"#),
    },
    WellKnown {
        rust: "chrono::DateTime<Tz>",
        paths: &["chrono::DateTime", "chrono::datetime::DateTime"],
        mapping: Mapping::Schema(r#"{"type":"string","format":"date-time"}"#),
    },
    WellKnown {
        rust: "chrono::NaiveDate",
        paths: &["chrono::NaiveDate", "chrono::naive::NaiveDate"],
        mapping: Mapping::Schema(r#"{"type":"string","format":"date"}"#),
    },
    WellKnown {
        rust: "chrono::NaiveTime",
        paths: &["chrono::NaiveTime", "chrono::naive::NaiveTime"],
        // RFC 3339's `time` format requires an offset; chrono writes none.
        mapping: Mapping::Schema(
            r#"{"type":"string","description":"time of day without offset: HH:MM:SS, optionally with 3, 6 or 9 fractional digits",
                "pattern":"^([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)([.]([0-9]{3}){1,3})?$"}"#,
        ),
    },
    WellKnown {
        rust: "chrono::NaiveDateTime",
        paths: &["chrono::NaiveDateTime", "chrono::naive::NaiveDateTime"],
        // RFC 3339's `date-time` format requires an offset; chrono writes none.
        mapping: Mapping::Schema(
            r#"{"type":"string","description":"date and time without offset: YYYY-MM-DDTHH:MM:SS, optionally with 3, 6 or 9 fractional digits; years outside 0000-9999 signed",
                "pattern":"^([0-9]{4}|[+-][0-9]{4,})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)([.]([0-9]{3}){1,3})?$"}"#,
        ),
    },
    WellKnown {
        rust: "time::OffsetDateTime",
        paths: &["time::OffsetDateTime"],
        mapping: Mapping::Refused {
            why: TIME_REFUSED,
            fix: "use `chrono::DateTime<Utc>`, or fix the shape on the field: \
             `#[serde(with = \"time::serde::rfc3339\")] \
             #[trellis(schema = r#\"{\"type\": \"string\", \"format\": \"date-time\"}\"#)]`",
        },
    },
    WellKnown {
        rust: "time::PrimitiveDateTime",
        paths: &["time::PrimitiveDateTime"],
        mapping: Mapping::Refused {
            why: TIME_REFUSED,
            fix: "use `chrono::NaiveDateTime`, or a `#[serde(with = ...)]` module from \
             `time::serde::format_description!` plus `#[trellis(schema = r#\"...\"#)]` on the field",
        },
    },
    WellKnown {
        rust: "time::Date",
        paths: &["time::Date"],
        mapping: Mapping::Refused {
            why: TIME_REFUSED,
            fix: "use `chrono::NaiveDate`, or a `#[serde(with = ...)]` module from \
             `time::serde::format_description!` plus \
             `#[trellis(schema = r#\"{\"type\": \"string\", \"format\": \"date\"}\"#)]` on the field",
        },
    },
    WellKnown {
        rust: "time::Time",
        paths: &["time::Time"],
        mapping: Mapping::Refused {
            why: TIME_REFUSED,
            fix: "use `chrono::NaiveTime`, or a `#[serde(with = ...)]` module from \
             `time::serde::format_description!` plus `#[trellis(schema = r#\"...\"#)]` on the field",
        },
    },
    WellKnown {
        rust: "url::Url",
        paths: &["url::Url"],
        mapping: Mapping::Schema(r#"{"type":"string","format":"uri"}"#),
    },
    WellKnown {
        rust: "std::net::IpAddr",
        paths: &["std::net::IpAddr"],
        mapping: Mapping::Schema(
            r#"{"anyOf":[{"type":"string","format":"ipv4"},{"type":"string","format":"ipv6"}]}"#,
        ),
    },
    WellKnown {
        rust: "std::net::Ipv4Addr",
        paths: &["std::net::Ipv4Addr"],
        mapping: Mapping::Schema(r#"{"type":"string","format":"ipv4"}"#),
    },
    WellKnown {
        rust: "std::net::Ipv6Addr",
        paths: &["std::net::Ipv6Addr"],
        mapping: Mapping::Schema(r#"{"type":"string","format":"ipv6"}"#),
    },
    WellKnown {
        rust: "std::net::SocketAddr",
        paths: &["std::net::SocketAddr"],
        mapping: Mapping::Schema(
            r#"{"anyOf":[
                {"type":"string","description":"IPv4 address and port: a.b.c.d:port",
                 "pattern":"^(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])([.](25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}|0)$"},
                {"type":"string","description":"IPv6 address (optionally with a scope id) and port: [addr%scope]:port",
                 "pattern":"^\\[[0-9a-f:.]+(%[0-9]+)?\\]:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}|0)$"}
            ]}"#,
        ),
    },
    WellKnown {
        rust: "std::net::SocketAddrV4",
        paths: &["std::net::SocketAddrV4"],
        mapping: Mapping::Schema(
            r#"{"type":"string","description":"IPv4 address and port: a.b.c.d:port",
                "pattern":"^(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])([.](25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}|0)$"}"#,
        ),
    },
    WellKnown {
        rust: "std::net::SocketAddrV6",
        paths: &["std::net::SocketAddrV6"],
        mapping: Mapping::Schema(
            r#"{"type":"string","description":"IPv6 address (optionally with a scope id) and port: [addr%scope]:port",
                "pattern":"^\\[[0-9a-f:.]+(%[0-9]+)?\\]:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}|0)$"}"#,
        ),
    },
    WellKnown {
        rust: "std::time::Duration",
        paths: &["std::time::Duration"],
        // serde's own struct: its deserializer refuses unknown fields, so
        // unlike a contract's wire objects this one is closed.
        mapping: Mapping::Schema(
            r#"{"type":"object","additionalProperties":false,"required":["secs","nanos"],"properties":{
                "secs":{"type":"integer","minimum":0},
                "nanos":{"type":"integer","minimum":0,"maximum":999999999}}}"#,
        ),
    },
    WellKnown {
        rust: "std::time::SystemTime",
        paths: &["std::time::SystemTime"],
        mapping: Mapping::Schema(
            r#"{"type":"object","additionalProperties":false,"required":["secs_since_epoch","nanos_since_epoch"],"properties":{
                "secs_since_epoch":{"type":"integer","minimum":0},
                "nanos_since_epoch":{"type":"integer","minimum":0,"maximum":999999999}}}"#,
        ),
    },
    WellKnown {
        rust: "std::path::PathBuf",
        paths: &["std::path::PathBuf"],
        mapping: Mapping::Schema(r#"{"type":"string"}"#),
    },
    WellKnown {
        rust: "std::borrow::Cow<'static, T>",
        paths: &["std::borrow::Cow"],
        mapping: Mapping::Argument,
    },
    WellKnown {
        rust: "rust_decimal::Decimal",
        paths: &["rust_decimal::Decimal", "rust_decimal::prelude::Decimal"],
        mapping: Mapping::Schema(
            r#"{"type":"string","description":"decimal number: optional minus, digits, optional fraction",
                "pattern":"^-?[0-9]+([.][0-9]+)?$"}"#,
        ),
    },
    WellKnown {
        rust: "bytes::Bytes",
        paths: &["bytes::Bytes"],
        mapping: Mapping::Schema(BYTES),
    },
    WellKnown {
        rust: "bytes::BytesMut",
        paths: &["bytes::BytesMut"],
        mapping: Mapping::Schema(BYTES),
    },
    WellKnown {
        rust: "serde_bytes::ByteBuf",
        paths: &["serde_bytes::ByteBuf"],
        mapping: Mapping::Schema(BYTES),
    },
    WellKnown {
        rust: "std::num::NonZero<T>",
        paths: &["std::num::NonZero"],
        mapping: Mapping::NonZero(None),
    },
    non_zero!("std::num::NonZeroU8", "u8"),
    non_zero!("std::num::NonZeroU16", "u16"),
    non_zero!("std::num::NonZeroU32", "u32"),
    non_zero!("std::num::NonZeroU64", "u64"),
    non_zero!("std::num::NonZeroU128", "u128"),
    non_zero!("std::num::NonZeroUsize", "usize"),
    non_zero!("std::num::NonZeroI8", "i8"),
    non_zero!("std::num::NonZeroI16", "i16"),
    non_zero!("std::num::NonZeroI32", "i32"),
    non_zero!("std::num::NonZeroI64", "i64"),
    non_zero!("std::num::NonZeroI128", "i128"),
    non_zero!("std::num::NonZeroIsize", "isize"),
];

/// The row whose paths include `path` (the segments of a resolved type
/// path, `core`/`alloc` already read as `std`).
pub fn lookup(path: &[String]) -> Option<&'static WellKnown> {
    WELL_KNOWN.iter().find(|row| {
        row.paths
            .iter()
            .any(|p| p.split("::").eq(path.iter().map(String::as_str)))
    })
}

/// The error message for a refused row.
pub fn refusal(row: &WellKnown) -> Option<String> {
    match row.mapping {
        Mapping::Refused { why, fix } => Some(format!(
            "`{}` cannot be used in a contract schema as it is: {why}; {fix}",
            row.rust
        )),
        _ => None,
    }
}

/// The schema of an integer that is never zero, from the schema of the
/// integer it wraps: an unsigned lower bound of 0 becomes 1, a signed range
/// excludes 0 with `not`. `None` when `schema` is not an integer schema.
pub fn non_zero(schema: Json) -> Option<Json> {
    let Json::Object(mut map) = schema else {
        return None;
    };
    if map.get("type").and_then(Json::as_str) != Some("integer") {
        return None;
    }
    if map.get("minimum") == Some(&Json::Number(Number::UInt(0))) {
        map.insert("minimum".into(), Json::uint(1));
    } else {
        let zero = [("const".to_owned(), Json::uint(0))].into_iter().collect();
        map.insert("not".into(), Json::Object(zero));
    }
    Some(Json::Object(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> Vec<String> {
        p.split("::").map(str::to_owned).collect()
    }

    #[test]
    fn every_schema_is_json_schema_without_references() {
        for row in WELL_KNOWN {
            if let Mapping::Schema(text) = row.mapping {
                let value: serde_json::Value = serde_json::from_str(text)
                    .unwrap_or_else(|e| panic!("{}: not JSON: {e}", row.rust));
                jsonschema::draft202012::new(&value)
                    .unwrap_or_else(|e| panic!("{}: not a JSON Schema: {e}", row.rust));
                assert!(!text.contains("$ref"), "{}", row.rust);
            }
        }
    }

    #[test]
    fn rows_are_found_by_any_of_their_paths() {
        let found = |p: &str| lookup(&path(p)).map(|r| r.rust);
        assert_eq!(found("uuid::Uuid"), Some("uuid::Uuid"));
        assert_eq!(found("std::net::IpAddr"), Some("std::net::IpAddr"));
        assert_eq!(
            found("std::borrow::Cow"),
            Some("std::borrow::Cow<'static, T>")
        );
        assert_eq!(found("chrono::naive::NaiveDate"), Some("chrono::NaiveDate"));
        assert_eq!(found("Uuid"), None);
        assert_eq!(found("uuid::Uuid::extra"), None);
        assert_eq!(found("std::net"), None);
    }

    #[test]
    fn non_zero_excludes_zero() {
        let unsigned = Json::parse(r#"{"type":"integer","minimum":0,"maximum":255}"#).unwrap();
        assert_eq!(
            non_zero(unsigned).unwrap().to_canonical_string(),
            r#"{"maximum":255,"minimum":1,"type":"integer"}"#
        );
        let signed = Json::parse(r#"{"type":"integer","minimum":-128,"maximum":127}"#).unwrap();
        assert_eq!(
            non_zero(signed).unwrap().to_canonical_string(),
            r#"{"maximum":127,"minimum":-128,"not":{"const":0},"type":"integer"}"#
        );
        assert!(non_zero(Json::parse(r#"{"type":"string"}"#).unwrap()).is_none());
    }
}
