//! Rolling deploys: which digests of a lineage may connect.
//!
//! The accepted digest always may. When a safe plan supersedes it, the
//! old digest stays live, so instances built from it keep connecting and
//! restarting beside the new build, until an operator retires it or the
//! rollout grace period ends. A dangerous accept makes every earlier
//! digest retired at once. Instances of an earlier digest run on the
//! accepted digest's bindings, which a safe plan only extends.

use std::time::Duration;

use trellis_runtime::protocol::{AuthorityError, LiveDigestReport, RetireReason, Retired};

use crate::records::{Desired, Earlier, RETIRED_KEPT};

fn grace_ms(grace: Duration) -> u64 {
    u64::try_from(grace.as_millis()).unwrap_or(u64::MAX)
}

fn expired(e: &Earlier, grace: Duration, now: u64) -> bool {
    e.superseded_ms.saturating_add(grace_ms(grace)) <= now
}

fn remember(retired: &mut Vec<Retired>, r: Retired) {
    retired.retain(|x| x.digest != r.digest);
    retired.insert(0, r);
    retired.truncate(RETIRED_KEPT);
}

/// The live and retired lists of the desired record that replaces
/// `previous` with `next_digest` (accepted through a dangerous plan or
/// not). Expired earlier digests are retired on the way.
pub fn supersede(
    previous: Option<&Desired>,
    next_digest: &str,
    dangerous: bool,
    grace: Duration,
    now: u64,
) -> (Vec<Earlier>, Vec<Retired>) {
    let Some(previous) = previous else {
        return (Vec::new(), Vec::new());
    };
    let mut earlier = Vec::new();
    let mut retired = previous.retired.clone();
    if previous.digest != next_digest {
        earlier.push(Earlier {
            digest: previous.digest.clone(),
            superseded_ms: now,
        });
    }
    earlier.extend(previous.earlier.iter().cloned());
    // Accepting an earlier digest again makes it the accepted one.
    earlier.retain(|e| e.digest != next_digest);
    retired.retain(|r| r.digest != next_digest);
    let mut live = Vec::new();
    for e in earlier {
        let reason = if dangerous {
            Some(RetireReason::Dangerous)
        } else if expired(&e, grace, now) {
            Some(RetireReason::GraceEnded)
        } else {
            None
        };
        match reason {
            Some(reason) => remember(
                &mut retired,
                Retired {
                    digest: e.digest,
                    reason,
                    retired_ms: now,
                },
            ),
            None => live.push(e),
        }
    }
    (live, retired)
}

/// The earlier digests of `desired` still live at `now`.
pub fn live(desired: &Desired, grace: Duration, now: u64) -> Vec<&Earlier> {
    desired
        .earlier
        .iter()
        .filter(|e| !expired(e, grace, now))
        .collect()
}

/// Why `digest` may no longer connect, if it was ever live in `desired`'s
/// lineage (an expired grace counts from its end).
pub fn retirement(desired: &Desired, digest: &str, grace: Duration, now: u64) -> Option<Retired> {
    if let Some(e) = desired
        .earlier
        .iter()
        .find(|e| e.digest == digest && expired(e, grace, now))
    {
        return Some(Retired {
            digest: digest.to_owned(),
            reason: RetireReason::GraceEnded,
            retired_ms: e.superseded_ms.saturating_add(grace_ms(grace)),
        });
    }
    desired.retired.iter().find(|r| r.digest == digest).cloned()
}

/// `desired` with `digest` retired. Only an earlier, live digest can be:
/// the accepted one is replaced by accepting another.
pub fn retire(desired: &Desired, digest: &str, now: u64) -> Result<Desired, AuthorityError> {
    if desired.digest == digest {
        return Err(AuthorityError::BadRequest {
            message: format!(
                "{digest} is the accepted digest of {}; accept another build first, then retire \
                 this one",
                desired.id
            ),
        });
    }
    if !desired.earlier.iter().any(|e| e.digest == digest) {
        return Err(AuthorityError::NotFound {
            what: format!("live earlier digest {digest} of {}", desired.id),
        });
    }
    let mut next = desired.clone();
    next.earlier.retain(|e| e.digest != digest);
    remember(
        &mut next.retired,
        Retired {
            digest: digest.to_owned(),
            reason: RetireReason::Retired,
            retired_ms: now,
        },
    );
    Ok(next)
}

/// The digests `status` reports for `desired`: the accepted one, then the
/// live earlier ones with their expiry.
pub fn report(desired: &Desired, grace: Duration, now: u64) -> Vec<LiveDigestReport> {
    let mut out = vec![LiveDigestReport {
        digest: desired.digest.clone(),
        accepted: true,
        superseded_ms: None,
        expires_ms: None,
        instances: 0,
    }];
    out.extend(
        live(desired, grace, now)
            .into_iter()
            .map(|e| LiveDigestReport {
                digest: e.digest.clone(),
                accepted: false,
                superseded_ms: Some(e.superseded_ms),
                expires_ms: Some(e.superseded_ms.saturating_add(grace_ms(grace))),
                instances: 0,
            }),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn desired(digest: &str) -> Desired {
        Desired {
            id: "a@v1".into(),
            digest: digest.into(),
            manifest: String::new(),
            generation: 1,
            accepted_ms: 0,
            recreate_consumers: Vec::new(),
            earlier: Vec::new(),
            retired: Vec::new(),
        }
    }

    fn with(previous: &Desired, digest: &str, dangerous: bool, now: u64) -> Desired {
        let (earlier, retired) = supersede(Some(previous), digest, dangerous, HOUR, now);
        Desired {
            digest: digest.into(),
            earlier,
            retired,
            ..previous.clone()
        }
    }

    #[test]
    fn a_safe_accept_keeps_the_old_digest_live_until_the_grace_ends() {
        let v2 = with(&desired("d1"), "d2", false, 1000);
        assert_eq!(live(&v2, HOUR, 2000).len(), 1);
        assert_eq!(retirement(&v2, "d1", HOUR, 2000), None);
        let late = 1000 + 3_600_000;
        assert!(live(&v2, HOUR, late).is_empty());
        let r = retirement(&v2, "d1", HOUR, late).expect("retired");
        assert_eq!(r.reason, RetireReason::GraceEnded);
        // A third accept drops the expired one into the retired list.
        let v3 = with(&v2, "d3", false, late + 1);
        assert_eq!(
            v3.earlier
                .iter()
                .map(|e| e.digest.as_str())
                .collect::<Vec<_>>(),
            ["d2"]
        );
        assert_eq!(v3.retired[0].digest, "d1");
    }

    #[test]
    fn a_dangerous_accept_retires_every_earlier_digest() {
        let v2 = with(&desired("d1"), "d2", false, 1000);
        let v3 = with(&v2, "d3", true, 2000);
        assert!(v3.earlier.is_empty());
        let reasons: Vec<_> = v3.retired.iter().map(|r| (&*r.digest, r.reason)).collect();
        assert_eq!(
            reasons,
            [
                ("d1", RetireReason::Dangerous),
                ("d2", RetireReason::Dangerous)
            ]
        );
    }

    #[test]
    fn retiring_names_what_cannot_be_retired() {
        let v2 = with(&desired("d1"), "d2", false, 1000);
        assert!(matches!(
            retire(&v2, "d2", 1),
            Err(AuthorityError::BadRequest { .. })
        ));
        assert!(matches!(
            retire(&v2, "nope", 1),
            Err(AuthorityError::NotFound { .. })
        ));
        let done = retire(&v2, "d1", 1500).expect("retired");
        assert!(done.earlier.is_empty());
        assert_eq!(done.retired[0].reason, RetireReason::Retired);
        // Accepting a retired digest again makes it live (as the accepted one).
        let back = with(&done, "d1", false, 2000);
        assert!(back.retired.is_empty());
        assert_eq!(back.earlier[0].digest, "d2");
    }
}
