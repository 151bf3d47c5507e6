//! An indexer service built only from the documents service's manifest
//! JSON: `build.rs` generates the `documents` client module, the contract
//! declares `uses` on it, and a durable consumer group keeps a projection
//! of created documents in the indexer's own KV bucket.

include!(concat!(env!("OUT_DIR"), "/documents.rs"));
include!("contract.rs");

use trellis::Consumed;

/// The KV key of a document key (`reports/q3.pdf` -> `doc.reports.2Fq3.2Epdf`):
/// subject-safe tokens with `%` written as `.`, so distinct keys stay
/// distinct and every key is a valid KV key.
pub fn index_key(key: &str) -> String {
    let token = trellis::events::subject_token(&serde_json::Value::from(key)).unwrap_or_default();
    format!("doc.{}", token.replace('%', "."))
}

/// Indexes one created document: looks the file up through the documents
/// RPC (so the index holds the stored digest) and writes the projection.
pub async fn index(
    service: &indexer::Service,
    consumed: Consumed<indexer::Indexing>,
) -> anyhow::Result<indexer::IndexEntry> {
    let indexer::Indexing::DocsDocumentsCreated(created) = consumed.event;
    let file = service
        .uses
        .docs
        .rpc
        .files
        .head(&documents::FileKey {
            key: created.key.clone(),
        })
        .await?
        .map_err(|e| anyhow::anyhow!("Files.Head refused: {e:?}"))?;
    let entry = indexer::IndexEntry {
        key: file.key,
        size: file.size,
        content_type: created.content_type,
        digest: file.digest,
        event_id: consumed.id,
    };
    service
        .kv
        .index
        .put(&index_key(&created.key), &entry)
        .await?;
    Ok(entry)
}

/// Runs the indexing consumer group until the returned task is shut down,
/// calling `on_indexed` after each entry is written.
pub async fn run(
    service: std::sync::Arc<indexer::Service>,
    on_indexed: impl Fn(&indexer::IndexEntry) + Send + Sync + 'static,
) -> Result<trellis::ConsumerTask, trellis::ConsumerError> {
    let handle = service.consumers.indexing.clone();
    let on_indexed = std::sync::Arc::new(on_indexed);
    handle
        .run(move |consumed| {
            let (service, on_indexed) = (service.clone(), on_indexed.clone());
            async move {
                let entry = index(&service, consumed)
                    .await
                    .map_err(|e| format!("{e:#}"))?;
                on_indexed(&entry);
                Ok::<(), String>(())
            }
        })
        .await
}
