//! The deployment authority: a control plane served over NATS.
//!
//! It takes contract proposals, answers with a
//! [`Plan`](trellis_runtime::protocol::Plan), keeps accepted contracts in
//! its records (a JetStream KV bucket, so they survive restarts and are
//! shared by every instance), reconciles them into real KV buckets and
//! object stores, and serves each service its bindings.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use trellis_authority::{Authority, AuthorityConfig};
//! let client = async_nats::connect("nats://127.0.0.1:4222").await?;
//! let authority = Authority::start(client, AuthorityConfig::local("dev")).await?;
//! // ... serve until shutdown
//! authority.shutdown().await;
//! # Ok(()) }
//! ```

mod authority;
pub mod callout;
mod config;
pub(crate) mod consumers;
mod deployed;
mod handlers;
mod http;
mod inner;
mod metrics;
pub(crate) mod naming;
pub(crate) mod permissions;
pub mod plan;
pub mod principals;
pub mod provision;
pub mod public_state;
mod reconcile;
pub(crate) mod records;
pub(crate) mod rollout;
pub mod settings;

pub use authority::{Authority, StartError};
pub use config::{AuthorityConfig, DEFAULT_ROLLOUT_GRACE};
pub use settings::{Settings, SettingsError};
