//! A consumer process for fault tests: runs the ledger's `projector` group,
//! handling one event every `<ms>`, printing `handling <n>` when one arrives
//! and `acked <n>` after its ack,
//! until it is killed.
//!
//! `slow-consumer <nats url> <ms per event>`

use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt as _;
use trellis::ConnectOptions;
use trellis_tests::ledger;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, pause] = args.as_slice() else {
        anyhow::bail!("usage: slow-consumer <nats url> <ms per event>");
    };
    let pause = Duration::from_millis(pause.parse().context("ms per event")?);
    let service = ledger::Service::connect(
        ConnectOptions::new(url)
            .deployment("test")
            .credentials_from_env(),
    )
    .await?;
    let mut messages = service.consumers.projector.messages().await?;
    while let Some(delivery) = messages.next().await {
        let delivery = delivery?;
        let ledger::Projector::LedgerPosted(posted) = &delivery.event else {
            anyhow::bail!("unexpected event");
        };
        let n = posted.n;
        println!("handling {n}");
        std::io::stdout().flush()?;
        tokio::time::sleep(pause).await;
        delivery.ack().await?;
        println!("acked {n}");
        std::io::stdout().flush()?;
    }
    Ok(())
}
