// The contract module, kept in its own file so build.rs and the trybuild
// pass case read exactly what the crate compiles.

/// Keeps item records.
#[trellis::contract(
    id = "items@v1",
    display_name = "Items",
    description = "Keeps item records in a KV bucket"
)]
pub mod items {
    use serde::{Deserialize, Serialize};

    /// Item lifecycle.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum Status {
        /// Being edited.
        Draft,
        /// Visible to everyone.
        Published,
        /// Hidden, kept for history.
        Archived,
    }

    /// An item record.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Item {
        /// Stable id (also the KV key).
        pub id: String,
        /// Display title.
        pub title: String,
        /// Lifecycle state.
        pub status: Status,
        /// Free-form tags.
        #[serde(default)]
        pub tags: Vec<String>,
        /// Price in cents, when for sale.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub price_cents: Option<u64>,
    }

    /// Recently viewed item ids, per user; expires after a day.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct RecentlyViewed {
        /// Item ids, newest first.
        pub ids: Vec<String>,
    }

    /// Item records by id.
    #[kv(purpose = "Store item records", schema = Item, history = 8, max_value_bytes = 65_536)]
    pub struct Items;

    /// Recently viewed items by user id.
    #[kv(
        purpose = "Remember recently viewed items per user",
        schema = RecentlyViewed,
        ttl_ms = 86_400_000,
        required = false
    )]
    pub struct Recent;
}
