//! Schema types that the contracts of `tests/shared_schemas.rs` share: one
//! declaration of money and paging, read by each contract through
//! `schemas = "src/shared.rs"`.

/// Money and paging for every contract of the billing team.
#[trellis::schema]
pub mod billing_types {
    use serde::{Deserialize, Serialize};

    /// An amount in minor units of a currency.
    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub struct Money {
        /// Minor units (cents).
        pub minor: i64,
        /// ISO 4217 code.
        pub currency: Currency,
    }

    /// The currencies the team bills in.
    #[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
    #[serde(rename_all = "UPPERCASE")]
    pub enum Currency {
        /// Euro.
        Eur,
        /// US dollar.
        Usd,
    }

    /// One page of any item type.
    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub struct Page<T> {
        /// The items.
        pub items: Vec<T>,
        /// The sum of the page, when the items carry amounts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub total: Option<Money>,
    }
}
