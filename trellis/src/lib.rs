#![doc = include_str!("../README.md")]
//!
//! [`REVOCATION_BOUND`]: crate::REVOCATION_BOUND

/// The NATS client every connection is made with.
pub use async_nats;
pub use trellis_macros::{contract, schema};
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
    StoreError, StoreHandle, StoreStatus, Tls, TlsError, TransferError, TransferProgress, Unready,
    events, files, kv, operation, rpc, store, transfer,
};
pub use trellis_runtime::{BuiltinError, BuiltinErrorBody, Empty};
pub use trellis_runtime::{REVOCATION_BOUND, identity, state};

/// Support items for generated code; not public API.
#[doc(hidden)]
pub mod __private {
    pub use trellis_runtime::__private::*;
}
