//! A real `nats-server` with JetStream for tests (and the local `trellis
//! dev` stack): free loopback port, its own temporary store directory,
//! stop/restart on the same port and store (for durability tests), killed
//! and cleaned up on drop.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let mut server = trellis_testing::NatsServer::start().await?;
//! let client = server.client().await?;
//! client.publish("hello", "world".into()).await?;
//! server.restart().await?; // same port, same JetStream store
//! # Ok(()) }
//! ```
//!
//! [`NatsCluster`] runs several such servers as one JetStream cluster (for
//! replicated R3 streams, failover and quorum tests).
//!
//! The binary comes from `TRELLIS_NATS_SERVER`, else the workspace's
//! `.tools/nats/bin/nats-server` (where `cargo xtask setup` installs it),
//! else `nats-server` on `PATH`.

mod auth;
mod binary;
mod cluster;
mod error;
mod ports;
mod probe;
mod process;
mod server;
mod store_lock;

pub use auth::ServerAuth;
pub use binary::{ENV_VAR, nats_server_binary};
pub use cluster::{CLUSTER_READY_LIMIT, NatsCluster};
pub use error::HarnessError;
pub use ports::free_port;
pub use server::NatsServer;
