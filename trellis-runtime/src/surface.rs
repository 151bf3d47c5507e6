//! Type-level descriptions of a contract's surfaces.
//!
//! Every contract module (from `#[trellis::contract]` or a stub generated
//! from manifest JSON) has a `surface` module with one marker type per RPC,
//! operation and event, implementing these traits. A contract that `uses`
//! another one builds its facade from them: it names the surfaces it
//! selected and nothing else, so an unselected surface has no method.

use std::future::Future;

use crate::events::EventSpec;
use crate::rpc::RpcClient;

/// The input of an RPC or operation that declares none: `{}` on the wire,
/// the manifest schema `Empty` (`{"properties":{},"type":"object"}`).
/// Any JSON object decodes into it, so peers may send extra fields.
///
/// ```
/// let wire = serde_json::to_string(&trellis_runtime::Empty {}).unwrap();
/// assert_eq!(wire, "{}");
/// let _: trellis_runtime::Empty = serde_json::from_str(r#"{"extra":1}"#).unwrap();
/// ```
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Empty {}

/// One RPC of a contract.
pub trait RpcSurface {
    /// Request type.
    type Input: serde::Serialize + Sync;
    /// What a call returns (`Result<Output, CallError>`, or
    /// `Result<Result<Output, DeclaredError>, CallError>`).
    type Reply;
    /// `Group.Leaf`.
    const NAME: &'static str;
    /// Manifest subject.
    const SUBJECT: &'static str;
    /// Calls it.
    fn call(client: &RpcClient, input: &Self::Input) -> impl Future<Output = Self::Reply> + Send;
}

/// One operation of a contract.
pub trait OperationSurface {
    /// The typed operation client (`OperationClient` or `SendOperationClient`).
    type Client;
    /// `Group.Leaf`.
    const NAME: &'static str;
    /// Manifest subject.
    const SUBJECT: &'static str;
    /// A client for it.
    fn client(rpc: RpcClient) -> Self::Client;
}

/// One event of a contract.
pub trait EventSurface {
    /// The event type.
    type Event: serde::de::DeserializeOwned + serde::Serialize + Send + 'static;
    /// Its manifest description.
    const SPEC: EventSpec;
}

/// Whether two strings are equal, in const context (used by generated
/// checks that a `uses` module is the contract it claims to be).
pub const fn same_str(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Decodes a JSON payload (used by generated consumer-group decoders, so
/// contract crates need no direct `serde_json` dependency).
pub fn decode_json<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, String> {
    serde_json::from_slice(payload).map_err(|e| e.to_string())
}
