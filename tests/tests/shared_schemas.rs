#![allow(missing_docs)]
//! Schema types shared across contracts: `trellis_tests::shared` declares
//! `Money`, `Currency` and a generic `Page<T>` once under
//! `#[trellis::schema]`; two contracts name that file with
//! `schemas = "src/shared.rs"` and use the types as fields, as a KV value,
//! as RPC outputs and as a generic instance with their own item types. Both
//! carry the same schema for `Money`; the macro and `build.rs` agree; a
//! call returns shared types through nats-server.

mod common;

use common::*;
use trellis::ServeOptions;
use trellis_tests::shared::billing_types::{Currency, Money, Page};

#[trellis::contract(
    id = "invoices@v1",
    display_name = "Invoices",
    description = "Bills customers",
    schemas = "src/shared.rs"
)]
pub mod invoices {
    use serde::{Deserialize, Serialize};
    use trellis_tests::shared::billing_types::{Money, Page};

    /// A bill.
    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub struct Invoice {
        pub number: u32,
        pub amount: Money,
    }

    /// Invoices by number.
    #[kv(purpose = "Keeps issued invoices", schema = Invoice)]
    pub struct Invoices;

    /// Issued amounts by customer.
    #[kv(purpose = "Keeps each customer's balance", schema = Money)]
    pub struct Balances;

    /// Every open invoice, with the total.
    #[rpc("Invoices.Open")]
    fn invoices_open() -> Page<Invoice>;

    /// What the customer owes.
    #[rpc("Invoices.Balance")]
    fn invoices_balance() -> Money;
}

#[trellis::contract(
    id = "refunds@v1",
    display_name = "Refunds",
    description = "Pays money back",
    schemas = "src/shared.rs"
)]
pub mod refunds {
    use serde::{Deserialize, Serialize};
    use trellis_tests::shared::billing_types;

    /// Money going back.
    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub struct Refund {
        pub invoice: u32,
        pub amount: billing_types::Money,
    }

    /// Pending refunds.
    #[rpc("Refunds.Pending")]
    fn refunds_pending() -> billing_types::Page<Refund>;
}

fn eur(minor: i64) -> Money {
    Money {
        minor,
        currency: Currency::Eur,
    }
}

fn manifest(json: &str) -> serde_json::Value {
    serde_json::from_str(json).expect("manifest is JSON")
}

#[test]
fn both_contracts_carry_the_shared_schemas() {
    let (invoices, refunds) = (
        manifest(invoices::MANIFEST_JSON),
        manifest(refunds::MANIFEST_JSON),
    );
    let money = &invoices["schemas"]["Money"];
    assert_eq!(
        money["properties"]["currency"]["enum"],
        serde_json::json!(["EUR", "USD"]),
        "{money}"
    );
    assert_eq!(
        invoices["schemas"]["Invoice"]["properties"]["amount"],
        *money
    );
    assert_eq!(refunds["schemas"]["Refund"]["properties"]["amount"], *money);
    assert_eq!(
        invoices["resources"]["kv"]["balances"]["schema"]["schema"],
        "Money"
    );
    assert_eq!(
        invoices["rpc"]["Invoices.Open"]["output"]["schema"],
        "PageOfInvoice"
    );
    assert_eq!(
        refunds["rpc"]["Refunds.Pending"]["output"]["schema"],
        "PageOfRefund"
    );
    assert_eq!(
        invoices["schemas"]["PageOfInvoice"]["properties"]["total"]["anyOf"][0],
        *money
    );
    assert_eq!(
        refunds["schemas"]["PageOfRefund"]["properties"]["items"]["items"],
        refunds["schemas"]["Refund"]
    );
}

#[test]
fn macro_and_build_rs_agree() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/shared_schemas.rs");
    let text = std::fs::read_to_string(&path).expect("this file");
    let contracts = trellis_codegen::parse_source(&text, &path).expect("parses");
    let by_id = |id: &str| {
        contracts
            .iter()
            .find(|c| c.manifest.id == id)
            .map(|c| (c.manifest.to_canonical_string(), c.manifest.digest()))
            .expect("contract found")
    };
    assert_eq!(
        by_id("invoices@v1"),
        (
            invoices::MANIFEST_JSON.to_owned(),
            invoices::DIGEST.to_owned()
        )
    );
    assert_eq!(
        by_id("refunds@v1"),
        (
            refunds::MANIFEST_JSON.to_owned(),
            refunds::DIGEST.to_owned()
        )
    );
}

#[test]
fn a_missing_shared_file_is_named() {
    let text = r#"
        #[trellis::contract(id = "a@v1", display_name = "A", description = "a", schemas = "src/nowhere.rs")]
        pub mod a {}
    "#;
    let Err(e) = trellis_codegen::parse_source(text, "lib.rs".as_ref()) else {
        panic!("a missing shared file must fail");
    };
    let message = e.to_string();
    assert!(
        message.contains("shared schema file `src/nowhere.rs`"),
        "{message}"
    );
    assert!(message.contains("cannot read it"), "{message}");
}

struct Billing;

impl invoices::Handlers for Billing {
    async fn invoices_open(&self) -> Page<invoices::Invoice> {
        Page {
            items: vec![
                invoices::Invoice {
                    number: 1,
                    amount: eur(1_250),
                },
                invoices::Invoice {
                    number: 2,
                    amount: eur(750),
                },
            ],
            total: Some(eur(2_000)),
        }
    }
    async fn invoices_balance(&self) -> Money {
        eur(2_000)
    }
}

#[tokio::test]
async fn shared_types_cross_the_wire() {
    let stack = stack().await;
    stack
        .client
        .accept(invoices::MANIFEST_JSON, false)
        .await
        .expect("accept invoices");
    let service = invoices::Service::connect(stack.service(invoices::ID).await)
        .await
        .expect("service connects");
    let balances: &trellis::KvHandle<Money> = &service.kv.balances;
    balances
        .put("acme", &eur(2_000))
        .await
        .expect("put balance");
    assert_eq!(
        balances
            .get("acme")
            .await
            .expect("get balance")
            .map(|e| e.value),
        Some(eur(2_000))
    );
    let server = service
        .serve(Billing, ServeOptions::default())
        .await
        .expect("serve");
    let client = invoices::Client::connect(stack.user("accounts", &[]).await)
        .await
        .expect("client connects");
    let open = client.rpc.invoices.open().await.expect("open invoices");
    assert_eq!(open.total, Some(eur(2_000)));
    assert_eq!(open.items[1].amount, eur(750));
    assert_eq!(
        client.rpc.invoices.balance().await.expect("balance"),
        eur(2_000)
    );
    assert!(server.shutdown(std::time::Duration::from_secs(5)).await);
}
