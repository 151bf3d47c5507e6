// Every well-known external type in one contract, named every way a module
// can name it: imported, renamed, through a module prefix and fully
// qualified; plus schemas stated with #[trellis(schema = ...)]. (`Arc<str>`
// and `Rc<str>` map like `Box<str>` but need serde's `rc` feature.) Also a
// generic `Page<T>` used with two item types, a `Vec<_>` output, primitive
// and optional outputs, and RPCs and an operation without input.
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

    /// One page of any item type.
    #[derive(Serialize, Deserialize)]
    pub struct Page<T> {
        pub items: Vec<T>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub next: Option<String>,
    }

    /// A team.
    #[derive(Serialize, Deserialize)]
    pub struct Team {
        pub id: Id,
        pub name: String,
    }

    /// Where a listing starts.
    #[derive(Serialize, Deserialize)]
    pub struct Cursor {
        pub after: Option<String>,
    }

    /// One page of records.
    #[rpc("Records.List")]
    fn records_list(input: Cursor) -> Page<Everything>;

    /// Every record at once.
    #[rpc("Records.All")]
    fn records_all() -> Vec<Everything>;

    /// How many records there are.
    #[rpc("Records.Count")]
    fn records_count() -> u64;

    /// One team by id, if it exists.
    #[rpc("Teams.Get")]
    fn teams_get(input: Id) -> Option<Team>;

    /// One page of teams.
    #[rpc("Teams.List")]
    fn teams_list(input: Cursor) -> Page<Team>;

    /// Recomputes every record.
    #[operation("Records.Rebuild")]
    fn records_rebuild() -> u64;
}

struct Service;

impl well_known::Handlers for Service {
    async fn records_list(&self, _input: well_known::Cursor) -> well_known::Page<well_known::Everything> {
        well_known::Page { items: Vec::new(), next: None }
    }
    async fn records_all(&self) -> Vec<well_known::Everything> {
        Vec::new()
    }
    async fn records_count(&self) -> u64 {
        0
    }
    async fn teams_get(&self, _input: uuid::Uuid) -> Option<well_known::Team> {
        None
    }
    async fn teams_list(&self, _input: well_known::Cursor) -> well_known::Page<well_known::Team> {
        well_known::Page { items: Vec::new(), next: None }
    }
    async fn records_rebuild(
        &self,
        _op: trellis::OperationContext<()>,
    ) -> Result<u64, trellis::OperationFailure> {
        Ok(0)
    }
}

#[allow(dead_code)]
async fn call(client: &well_known::Client) -> Result<(), trellis::CallError> {
    let _: Vec<well_known::Everything> = client.rpc.records.all().await?;
    let _: u64 = client.rpc.records.count().await?;
    let _: Option<well_known::Team> = client.rpc.teams.get(&uuid::Uuid::nil()).await?;
    let page: well_known::Page<well_known::Team> =
        client.rpc.teams.list(&well_known::Cursor { after: None }).await?;
    let _ = page.next;
    let _ = client.operation.records.rebuild.start().await;
    Ok(())
}

fn main() {
    assert_eq!(well_known::ID, "well-known@v1");
    assert!(well_known::MANIFEST_JSON.contains(r#""id":{"format":"uuid","type":"string"}"#));
    let _records: Option<&well_known::Records> = None::<&trellis::KvHandle<well_known::Everything>>;
    let json = well_known::MANIFEST_JSON;
    for expected in [
        r#""input":{"schema":"Empty"}"#,
        r#""output":{"schema":"EverythingList"}"#,
        r#""output":{"schema":"PageOfEverything"}"#,
        r#""output":{"schema":"PageOfTeam"}"#,
        r#""output":{"schema":"OptionalTeam"}"#,
        r#""output":{"schema":"U64"}"#,
        r#""input":{"schema":"Uuid"}"#,
    ] {
        assert!(json.contains(expected), "manifest lacks {expected}");
    }
    let _ = Service;
}
