//! Auth callout keys and server config, [`ServerAuth`].

use crate::error::HarnessError;

/// The keys of a server that authenticates through auth callout: the
/// issuer account key the authority signs users with, and the admin user
/// (the authority's own connection) that bypasses the callout.
#[derive(Clone)]
pub struct ServerAuth {
    /// Account seed (`SA...`) whose public key is the callout `issuer`.
    pub issuer_seed: String,
    /// User seed (`SU...`) of the admin connection.
    pub admin_seed: String,
    /// User seed (`SU...`) of a system-account connection (the authority
    /// uses it to disconnect revoked principals).
    pub system_seed: String,
    /// The account every connection lives in.
    pub account: String,
}

impl std::fmt::Debug for ServerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerAuth")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

impl ServerAuth {
    /// Fresh random keys, account `TRELLIS`.
    pub fn generate() -> Result<ServerAuth, HarnessError> {
        let seed = |k: nkeys::KeyPair| {
            k.seed()
                .map_err(|e| HarnessError::Auth(format!("generating a key failed: {e}")))
        };
        Ok(ServerAuth {
            issuer_seed: seed(nkeys::KeyPair::new_account())?,
            admin_seed: seed(nkeys::KeyPair::new_user())?,
            system_seed: seed(nkeys::KeyPair::new_user())?,
            account: "TRELLIS".to_owned(),
        })
    }

    fn public(seed: &str) -> Result<String, HarnessError> {
        nkeys::KeyPair::from_seed(seed)
            .map(|k| k.public_key())
            .map_err(|e| HarnessError::Auth(format!("bad seed: {e}")))
    }

    /// The server config block: the account (with JetStream) holding the
    /// admin user, and the callout.
    pub(crate) fn config(&self) -> Result<String, HarnessError> {
        let admin = Self::public(&self.admin_seed)?;
        let system = Self::public(&self.system_seed)?;
        let issuer = Self::public(&self.issuer_seed)?;
        let account = &self.account;
        // Only the application account is delegated to the callout; the
        // system account's user authenticates from this file.
        Ok(format!(
            "accounts {{\n  {account} {{\n    jetstream: enabled\n    users: [ {{ nkey: {admin} }} ]\n  }}\n\
             \x20 SYS {{\n    users: [ {{ nkey: {system} }} ]\n  }}\n}}\nsystem_account: SYS\n\
             authorization {{\n  auth_callout {{\n    issuer: {issuer}\n    account: {account}\n    auth_users: [ {admin} ]\n    allowed_accounts: [ {account} ]\n  }}\n}}\n"
        ))
    }

    /// Connect options of the system-account connection.
    pub fn system_options(&self) -> async_nats::ConnectOptions {
        async_nats::ConnectOptions::with_nkey(self.system_seed.clone())
    }

    /// Connect options of the admin connection.
    pub fn admin_options(&self) -> async_nats::ConnectOptions {
        async_nats::ConnectOptions::with_nkey(self.admin_seed.clone())
    }
}
