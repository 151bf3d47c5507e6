//! The items service, run against a deployment: connects through the
//! authority and uses its typed KV bucket.
//!
//! ```text
//! trellis dev &                                            # local stack
//! trellis contract accept examples/items/contracts/items@v1.json
//! cargo run -p items-example                               # this program
//! ```

use std::time::Duration;

use anyhow::Context as _;
use items_example::items::{self, Item, Status};
use trellis::{ConnectOptions, KvError};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("TRELLIS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let deployment = std::env::var("TRELLIS_DEPLOYMENT").unwrap_or_else(|_| "dev".to_owned());
    let service = items::Service::connect(
        ConnectOptions::new(&url)
            .deployment(&deployment)
            .from_env()
            .ready_deadline(Duration::from_secs(20)),
    )
    .await
    .with_context(|| format!("connecting the items service to {url} (deployment {deployment})"))?;
    println!("connected items@v1 ({})", items::DIGEST);

    let kv = &service.kv.items;
    let chair = Item {
        id: "chair".into(),
        title: "Oak chair".into(),
        status: Status::Draft,
        tags: vec!["furniture".into()],
        price_cents: Some(12_900),
    };
    let revision = kv.put("chair", &chair).await?;
    println!("put chair at revision {revision}");

    // Compare-and-set: publish the item only if nobody changed it meanwhile.
    let published = Item {
        status: Status::Published,
        ..chair.clone()
    };
    let revision = kv.update("chair", &published, revision).await?;
    println!("published chair at revision {revision}");
    match kv.update("chair", &chair, revision - 1).await {
        Err(KvError::RevisionMismatch { .. }) => println!("stale update refused (compare-and-set)"),
        other => anyhow::bail!("expected a revision mismatch, got {other:?}"),
    }

    let lamp = Item {
        id: "lamp".into(),
        title: "Desk lamp".into(),
        status: Status::Published,
        tags: vec![],
        price_cents: None,
    };
    if let Err(KvError::AlreadyExists { .. }) = kv.create("lamp", &lamp).await {
        println!("lamp already existed (data survives restarts of the stack)");
    }
    let entry = kv.get("chair").await?.context("chair is missing")?;
    println!(
        "get chair -> {:?} {:?} (revision {})",
        entry.value.title, entry.value.status, entry.revision
    );
    println!("keys: {:?}", kv.keys(">").await?);
    println!(
        "chair history: {} revisions",
        kv.history("chair").await?.len()
    );
    match kv.put("bad key", &lamp).await {
        Err(e @ KvError::InvalidKey { .. }) => println!("invalid key refused: {e}"),
        other => anyhow::bail!("expected an invalid-key error, got {other:?}"),
    }
    if let Some(recent) = &service.kv.recent {
        recent
            .put(
                "user-1",
                &items::RecentlyViewed {
                    ids: vec!["chair".into()],
                },
            )
            .await?;
        println!("recently viewed stored (optional bucket is bound)");
    }
    Ok(())
}
