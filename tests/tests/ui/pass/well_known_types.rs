// Every well-known external type in one contract, named every way a module
// can name it: imported, renamed, through a module prefix and fully
// qualified; plus schemas stated with #[trellis(schema = ...)]. (`Arc<str>`
// and `Rc<str>` map like `Box<str>` but need serde's `rc` feature.)
#[trellis::contract(
    id = "well-known@v1",
    display_name = "Well-known types",
    description = "Uses every well-known external type"
)]
pub mod well_known {
    use std::borrow::Cow;
    use std::net;
    use std::num::{NonZero, NonZeroI8, NonZeroU64};
    use std::time::{Duration, SystemTime};

    use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Utc};
    use rust_decimal::Decimal;
    use serde::{Deserialize, Serialize};
    use uuid::Uuid as Id;

    // An OS string as serde writes it on unix: `{"Unix": [bytes]}`.
    #[trellis(schema = r#"{"type": "object", "required": ["Unix"],
        "properties": {"Unix": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 255}}}}"#)]
    use std::ffi::OsString;

    /// One field per well-known type.
    #[derive(Serialize, Deserialize)]
    pub struct Everything {
        pub id: Id,
        pub qualified_id: ::uuid::Uuid,
        pub at: DateTime<Utc>,
        pub at_offset: chrono::DateTime<FixedOffset>,
        pub day: NaiveDate,
        pub time_of_day: NaiveTime,
        pub local: NaiveDateTime,
        pub link: url::Url,
        pub ip: net::IpAddr,
        pub ipv4: net::Ipv4Addr,
        pub ipv6: std::net::Ipv6Addr,
        pub socket: net::SocketAddr,
        pub socket_v4: net::SocketAddrV4,
        pub socket_v6: core::net::SocketAddrV6,
        pub timeout: Duration,
        pub modified: SystemTime,
        pub amount: Decimal,
        pub blob: bytes::Bytes,
        pub blob_mut: bytes::BytesMut,
        pub buf: serde_bytes::ByteBuf,
        pub huge: u128,
        pub signed_huge: i128,
        pub count: NonZeroU64,
        pub delta: NonZeroI8,
        pub generic_count: NonZero<u32>,
        pub any_count: std::num::NonZeroUsize,
        pub boxed: Box<str>,
        pub cow: Cow<'static, str>,
        pub path: std::path::PathBuf,
        pub os: OsString,
        /// `time` pinned to RFC 3339, its shape stated on the field.
        #[serde(with = "time::serde::rfc3339")]
        #[trellis(schema = r#"{"type": "string", "format": "date-time"}"#)]
        pub stamped: time::OffsetDateTime,
    }

    /// Records by id.
    #[kv(purpose = "Keeps every well-known type reachable", schema = Everything)]
    pub struct Records;
}

fn main() {
    assert_eq!(well_known::ID, "well-known@v1");
    assert!(well_known::MANIFEST_JSON.contains(r#""id":{"format":"uuid","type":"string"}"#));
    let _records: Option<&well_known::Records> = None::<&trellis::KvHandle<well_known::Everything>>;
}
