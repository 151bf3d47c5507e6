//! The wire pieces every surface shares, at the bottom of the runtime:
//! header names and readers, subject rules, replies, ids and the clock.
//! Nothing here imports another module of the crate.

pub(crate) mod headers;
pub(crate) mod ids;
pub(crate) mod limits;
pub(crate) mod reply;
pub(crate) mod subjects;
