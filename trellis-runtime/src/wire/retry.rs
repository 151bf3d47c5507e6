//! Retrying JetStream requests across a failover: [`retry_transient`]
//! with [`Attempt`] telling transient failures from final ones.

/// How long a JetStream read or write keeps retrying a failure that a
/// failover explains (a timeout, no responders, a leaderless stream): a
/// stream elects a new leader within seconds of losing a node, and an
/// operation whose record cannot move from one state to the next, or an
/// event that was never stored, would otherwise be lost.
pub(crate) const TRANSIENT_WINDOW: std::time::Duration = std::time::Duration::from_secs(15);

/// Runs `attempt` until it succeeds or fails for a reason other than a
/// transient one, retrying transient failures with backoff for at most
/// [`TRANSIENT_WINDOW`].
pub(crate) async fn retry_transient<T, F, Fut>(mut attempt: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Attempt>>,
{
    let deadline = tokio::time::Instant::now() + TRANSIENT_WINDOW;
    let mut pause = std::time::Duration::from_millis(50);
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(Attempt::Final(e)) => return Err(e),
            Err(Attempt::Transient(e)) => {
                if tokio::time::Instant::now() + pause >= deadline {
                    return Err(e);
                }
                tracing::debug!(error = %e, "JetStream unavailable; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(1));
            }
        }
    }
}

/// How one ledger request failed.
pub(crate) enum Attempt {
    /// Worth retrying: the cluster is electing a leader or a server died.
    Transient(String),
    /// Not worth retrying.
    Final(String),
}

impl Attempt {
    /// Classifies a JetStream error by its text: timeouts, missing
    /// responders and leaderless streams are transient.
    pub(crate) fn of(what: &str, e: &dyn std::fmt::Display) -> Attempt {
        let text = format!("{what}: {e}");
        let lower = text.to_lowercase();
        if [
            "timed out",
            "no responders",
            "no leader",
            "not current",
            "unavailable",
        ]
        .iter()
        .any(|w| lower.contains(w))
        {
            Attempt::Transient(text)
        } else {
            Attempt::Final(text)
        }
    }
}
