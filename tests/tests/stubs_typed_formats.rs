//! Typed formats in client stubs: the hand-written manifest
//! `tests/fixtures/stamps@v1.json` uses strings of format `uuid`,
//! `date-time`, `date`, `uri`, `ipv4` and `anyOf [ipv4, ipv6]`; `build.rs`
//! generates its stub with `.uuid().chrono().url().net()`, so they are
//! `uuid::Uuid`, `chrono::DateTime<FixedOffset>`, `chrono::NaiveDate`,
//! `url::Url` and `std::net` addresses. A hand-written provider checks the
//! wire text of what the typed client sends and answers in other RFC 3339
//! spellings; the values round-trip through a real nats-server.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone, Utc};
use common::*;
use futures::StreamExt;
use uuid::Uuid;

include!(concat!(env!("OUT_DIR"), "/stamps.rs"));

use stamps::{Stamp, StampId};

const ID: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

/// Serves `Stamps.Echo` (checks the wire text, answers the input as sent)
/// and `Stamps.Get` (answers a fixed stamp in other spellings: `Z`, a
/// negative offset, an upper-case UUID, a URL to normalize).
async fn serve(nats: async_nats::Client) {
    const ECHO: &str = "rpc.v1.Stamps.Echo";
    const GET: &str = "rpc.v1.Stamps.Get";
    let served = |s| trellis_runtime::internal::served_subject("test", stamps::ID, s);
    let sent = |s| {
        trellis_runtime::rpc::request_subject(
            "test",
            trellis_runtime::rpc::NO_CALLER,
            stamps::ID,
            s,
        )
    };
    let (echo, get) = (sent(ECHO), sent(GET));
    let mut subs = futures::stream::select(
        nats.subscribe(served(ECHO)).await.expect("subscribe"),
        nats.subscribe(served(GET)).await.expect("subscribe"),
    );
    nats.flush().await.expect("flush");
    tokio::spawn(async move {
        while let Some(msg) = subs.next().await {
            let Some(reply) = msg.reply.clone() else {
                continue;
            };
            let input: serde_json::Value =
                serde_json::from_slice(&msg.payload).expect("request is JSON");
            let (status, body) = if msg.subject.as_str() == echo {
                // What the typed values' serde writes: the formats' text.
                let expected = serde_json::json!({
                    "id": ID,
                    "at": "2026-12-04T11:30:00.250+02:00",
                    "day": "2026-12-04",
                    "site": "https://example.com/stamps?page=2",
                    "host": "192.168.1.20",
                    "peer": "2001:db8::1",
                    "seen": ["2026-12-01T00:00:00Z", "2026-12-02T23:59:59-05:30"],
                    "related": [ID],
                    "holidays": {"new-year": "2027-01-01"},
                    "expires": null,
                    "reviewed": "2026-11-30",
                    "code": "not checked as a uuid",
                    "note": "typed"
                });
                if input == expected {
                    (None, input)
                } else {
                    (Some("bad-request"), serde_json::json!(format!("{input}")))
                }
            } else if msg.subject.as_str() == get {
                if input == serde_json::json!(ID) {
                    (
                        None,
                        serde_json::json!({
                            "id": ID.to_uppercase(),
                            "at": "2026-12-04T09:00:00Z",
                            "day": "2026-12-04",
                            "site": "HTTPS://Example.COM",
                            "host": "10.0.0.1",
                            "peer": "10.0.0.2",
                            "seen": [],
                            "related": [],
                            "holidays": {},
                            "expires": "2027-06-30T18:00:00.5-07:00",
                            "code": "c",
                            "note": "fixed"
                        }),
                    )
                } else {
                    (Some("bad-request"), serde_json::json!(format!("{input}")))
                }
            } else {
                (
                    Some("bad-request"),
                    serde_json::json!(format!("unexpected request subject {}", msg.subject)),
                )
            };
            let payload = serde_json::to_vec(&body).expect("encode").into();
            match status {
                Some(status) => {
                    let mut headers = async_nats::HeaderMap::new();
                    headers.insert(trellis_runtime::rpc::STATUS_HEADER, status);
                    nats.publish_with_headers(reply, headers, payload)
                        .await
                        .expect("reply");
                }
                None => nats.publish(reply, payload).await.expect("reply"),
            }
        }
    });
}

fn offset(hours: i32, minutes: i32) -> FixedOffset {
    FixedOffset::east_opt(hours * 3600 + hours.signum() * minutes * 60).expect("offset")
}

#[tokio::test]
async fn typed_formats_round_trip_through_nats() {
    let stack = plain_stack().await;
    match stack.client.accept(stamps::MANIFEST_JSON, false).await {
        Ok(_) => {
            ready(&stack.client, stamps::ID, stamps::DIGEST).await;
        }
        Err(e) => eprintln!("the authority refused the manifest: {e}"),
    }
    serve(stack.server.client().await.expect("client")).await;
    let client = stamps::Client::connect(stack.options())
        .await
        .expect("client connects");

    let id = Uuid::parse_str(ID).expect("uuid");
    let at: DateTime<FixedOffset> = offset(2, 0)
        .with_ymd_and_hms(2026, 12, 4, 11, 30, 0)
        .single()
        .expect("time")
        + chrono::Duration::milliseconds(250);
    let stamp = Stamp {
        id,
        at,
        day: NaiveDate::from_ymd_opt(2026, 12, 4).expect("date"),
        site: url::Url::parse("https://example.com/stamps?page=2").expect("url"),
        host: Ipv4Addr::new(192, 168, 1, 20),
        peer: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        seen: vec![
            Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0)
                .single()
                .expect("time")
                .fixed_offset(),
            offset(-5, 30)
                .with_ymd_and_hms(2026, 12, 2, 23, 59, 59)
                .single()
                .expect("time"),
        ],
        related: BTreeSet::from([id]),
        holidays: BTreeMap::from([(
            "new-year".to_owned(),
            NaiveDate::from_ymd_opt(2027, 1, 1).expect("date"),
        )]),
        expires: None,
        reviewed: NaiveDate::from_ymd_opt(2026, 11, 30),
        code: "not checked as a uuid".to_owned(),
        note: "typed".to_owned(),
    };
    // The provider answers `bad-request` unless the wire text is the formats'.
    let echoed = client
        .rpc
        .stamps
        .echo(&stamp)
        .await
        .expect("the provider read the formats' text");
    assert_eq!(echoed, stamp);
    // `FixedOffset` keeps the offset the value was sent with.
    assert_eq!(echoed.at.offset(), &offset(2, 0));
    assert_eq!(echoed.seen[1].offset(), &offset(-5, 30));
    assert_eq!(echoed.at.to_rfc3339(), "2026-12-04T11:30:00.250+02:00");

    // Other spellings the formats allow parse into the same types.
    let got = client
        .rpc
        .stamps
        .get(&StampId(id))
        .await
        .expect("call succeeds");
    assert_eq!(got.id, id);
    assert_eq!(
        got.at,
        Utc.with_ymd_and_hms(2026, 12, 4, 9, 0, 0)
            .single()
            .expect("time")
    );
    assert_eq!(got.at.offset(), &offset(0, 0));
    assert_eq!(got.day, NaiveDate::from_ymd_opt(2026, 12, 4).expect("date"));
    assert_eq!(got.site.as_str(), "https://example.com/");
    assert_eq!(got.host, Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(got.peer, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
    assert!(got.seen.is_empty() && got.related.is_empty() && got.holidays.is_empty());
    let expires = got.expires.expect("expires is set");
    assert_eq!(expires.offset(), &offset(-7, 0));
    assert_eq!(
        expires.to_utc(),
        Utc.with_ymd_and_hms(2027, 7, 1, 1, 0, 0)
            .single()
            .expect("time")
            + chrono::Duration::milliseconds(500)
    );
    assert_eq!(got.reviewed, None);
    assert_eq!(got.code, "c");
}
