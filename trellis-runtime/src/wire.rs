//! The wire pieces every surface shares, at the bottom of the runtime:
//! header names and readers, subject rules, replies, ids, the clock and
//! retries of transient JetStream failures.
//! Nothing here imports another module of the crate.

pub(crate) mod connection;
pub(crate) mod drain;
pub(crate) mod headers;
pub(crate) mod ids;
pub(crate) mod limits;
pub(crate) mod reply;
pub(crate) mod retry;
pub(crate) mod subjects;
pub(crate) mod time;
