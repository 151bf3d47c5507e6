//! Picking free loopback ports.

use std::net::TcpListener;

use crate::error::{HarnessError, io};

/// Picks a free loopback port.
pub fn free_port() -> Result<u16, HarnessError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io("binding a free port"))?;
    let port = listener
        .local_addr()
        .map_err(io("reading the free port"))?
        .port();
    Ok(port)
}

/// Picks `count` distinct free loopback ports (all held until every one is
/// picked, so they differ from each other).
pub(crate) fn free_ports(count: usize) -> Result<Vec<u16>, HarnessError> {
    let mut listeners = Vec::with_capacity(count);
    for _ in 0..count {
        listeners.push(TcpListener::bind("127.0.0.1:0").map_err(io("binding a free port"))?);
    }
    listeners
        .iter()
        .map(|l| {
            l.local_addr()
                .map(|a| a.port())
                .map_err(io("reading the free port"))
        })
        .collect()
}
