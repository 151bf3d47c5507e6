//! trellis-rs: describe a NATS JetStream service as a contract.
//!
//! One module under `#[trellis::contract]` declares schema types, resources
//! (`#[kv]`, `#[store]`), RPCs, operations, events, capabilities, `uses` and
//! durable event consumers. The macro validates it at compile time and
//! embeds the canonical `trellis.contract.v1` manifest; your `build.rs`
//! writes the same bytes to `contracts/<id>.json` with
//! `trellis_codegen::Builder`.
//!
//! ```
//! #[trellis::contract(id = "items@v1", display_name = "Items", description = "Item records")]
//! pub mod items {
//!     use serde::{Deserialize, Serialize};
//!
//!     /// An item.
//!     #[derive(Serialize, Deserialize)]
//!     pub struct Item {
//!         pub id: String,
//!         pub title: String,
//!     }
//!
//!     /// Item records by id.
//!     #[kv(purpose = "Store item records", schema = Item, history = 4)]
//!     pub struct Items;
//! }
//!
//! assert_eq!(items::ID, "items@v1");
//! assert!(items::MANIFEST_JSON.contains(r#""history":4"#));
//! // `items::Service::connect(ConnectOptions::new(url))` returns the service
//! // with `kv.items: KvHandle<Item>`; only the runtime can build it.
//! ```

pub use trellis_macros::contract;
pub use trellis_runtime::identity::{Credentials, PrincipalKind};
pub use trellis_runtime::{
    Acker, Consumed, ConsumerError, ConsumerTask, Deliveries, Delivery, EventConsumer, Rejected,
    consumer, surface,
};
pub use trellis_runtime::{
    BindError, Body, CallError, Caller, ConnectError, ConnectOptions, Download, DownloadStream,
    EventError, EventListener, EventPublisher, EventStream, GrantError, Grants, KvChange, KvEntry,
    KvError, KvHandle, ListOptions, ListPage, Object, ObjectInfo, OperationContext, OperationError,
    OperationEvents, OperationFailure, OperationRef, OperationStatus, Outcome, Principal,
    PutOptions, ReceiveGrant, ReceivedEvent, RpcServer, ServeError, ServeOptions, Snapshot, Store,
    StoreError, StoreHandle, StoreStatus, TransferError, TransferProgress, Unready, events, files,
    kv, operation, rpc, store, transfer,
};
pub use trellis_runtime::{REVOCATION_BOUND, identity};

/// Support items for generated code; not public API.
#[doc(hidden)]
pub mod __private {
    pub use trellis_runtime::__private::*;
}
