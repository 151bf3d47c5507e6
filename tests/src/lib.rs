//! Workspace-level tests live in `tests/`. This library holds the contracts
//! shared by the integration tests and the fault-test processes in `src/bin`,
//! and the shared schema types of `shared`.

pub mod shared;

/// A ledger contract with one event and two durable consumer groups over
/// it, used by the consumer tests.
#[trellis::contract(
    id = "ledger@v1",
    display_name = "Ledger",
    description = "Posts entries"
)]
pub mod ledger {
    use serde::{Deserialize, Serialize};

    /// An entry was posted.
    #[event("Ledger.Posted", params = ["/account"])]
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Posted {
        /// Account.
        pub account: String,
        /// Sequence the test assigns.
        pub n: u64,
    }

    /// Projects entries: short ack wait and a backoff so redelivery is quick.
    #[event_consumer(
        self = ["Ledger.Posted"],
        ordering = "strict",
        ack_wait_ms = 2_000,
        max_deliver = 4,
        backoff_ms = [300, 600, 900, 1_200, 1_500]
    )]
    pub struct Projector;

    /// Audits every retained entry, four at a time.
    #[event_consumer(self = ["Ledger.Posted"], replay = "all", concurrency = 4, ack_wait_ms = 2_000)]
    pub struct Auditor;
}
