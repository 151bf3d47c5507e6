//! The deployment's nkeys: the auth callout issuer, the authority's own
//! NATS user and its system account user.

use anyhow::Context as _;
use nkeys::KeyPair;

/// Fresh keys of a new deployment.
pub struct Keys {
    /// Account key whose public key is the callout `issuer`: the authority
    /// signs the users it issues with it.
    pub issuer: KeyPair,
    /// The authority's own user, listed in `auth_users` (no callout).
    pub authority: KeyPair,
    /// A user of the system account (disconnects revoked principals).
    pub system: KeyPair,
}

impl Keys {
    /// Random keys.
    pub fn generate() -> Keys {
        Keys {
            issuer: KeyPair::new_account(),
            authority: KeyPair::new_user(),
            system: KeyPair::new_user(),
        }
    }
}

/// The text of a seed file: the seed and a newline.
pub fn seed_file(key: &KeyPair) -> anyhow::Result<String> {
    let seed = key.seed().context("encoding a key seed")?;
    Ok(format!("{seed}\n"))
}
