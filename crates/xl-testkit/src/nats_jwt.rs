//! NATS decentralized auth made the way `nsc` makes it, for a test server in operator mode: an
//! operator, an account with JetStream, a user of it and its `.creds` file, all NATS JWTs (v2)
//! signed with NKeys. Only what a server and a client need; nothing is downloaded or run.
//!
//! A NATS JWT is `header.claims.signature`, each part base64url without padding: the header
//! `{"typ":"JWT","alg":"ed25519-nkey"}`, the claims (`jti`, `iat`, `iss` the signer's public
//! key, `sub` the subject's, `name`, `nats` with the type and its settings), and the signer's
//! ed25519 signature over `header.claims`. The operator signs itself and the account; the
//! account signs its users.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use data_encoding::BASE32_NOPAD;
use nkeys::KeyPair;
use serde_json::{Value, json};
use sha2::{Digest, Sha512_256};

/// An operator with one account (JetStream enabled, nothing limited) and one user of it, plus
/// a user whose account the operator never signed (a server asked about it finds no account),
/// and the system account without which nats-server does not start JetStream.
pub(crate) struct Decentralized {
    operator_jwt: String,
    /// Public key and JWT of the system account and of the users' account.
    accounts: [(String, String); 2],
    /// The `.creds` file of the account's user.
    pub(crate) user_creds: String,
    /// The `.creds` file of the user of the unknown account.
    pub(crate) unknown_account_user_creds: String,
}

impl Decentralized {
    /// Fresh keys and JWTs.
    pub(crate) fn generate() -> anyhow::Result<Decentralized> {
        let operator = KeyPair::new_operator();
        let system = KeyPair::new_account();
        let account = KeyPair::new_account();
        let operator_jwt = jwt(
            &operator,
            &operator.public_key(),
            "xl-test-operator",
            json!({"system_account": system.public_key(), "type": "operator", "version": 2}),
        )?;
        // -1: no limit. No JetStream in the system account (the server refuses it there).
        let system_jwt = jwt(
            &operator,
            &system.public_key(),
            "SYS",
            json!({
                "limits": {
                    "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
                    "wildcards": true, "conn": -1, "leaf": -1,
                },
                "default_permissions": {"pub": {}, "sub": {}},
                "type": "account",
                "version": 2,
            }),
        )?;
        // JetStream is on for an account when its storage limits are not 0.
        let account_jwt = jwt(
            &operator,
            &account.public_key(),
            "xl-test-account",
            json!({
                "limits": {
                    "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
                    "wildcards": true, "conn": -1, "leaf": -1,
                    "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1,
                },
                "default_permissions": {"pub": {}, "sub": {}},
                "type": "account",
                "version": 2,
            }),
        )?;
        let user_creds = new_user_creds(&account, "xl-test-user")?;
        let unknown_account_user_creds =
            new_user_creds(&KeyPair::new_account(), "xl-test-stranger")?;
        Ok(Decentralized {
            operator_jwt,
            accounts: [
                (system.public_key(), system_jwt),
                (account.public_key(), account_jwt),
            ],
            user_creds,
            unknown_account_user_creds,
        })
    }

    /// nats-server config for operator mode with the accounts preloaded in memory (listener
    /// and JetStream come from the command line; the system account from the operator JWT).
    pub(crate) fn server_config(&self) -> String {
        let preload: String = self
            .accounts
            .iter()
            .map(|(key, jwt)| format!("  {key}: {jwt}\n"))
            .collect();
        format!(
            "operator: {}\nresolver: MEMORY\nresolver_preload: {{\n{preload}}}\n",
            self.operator_jwt
        )
    }
}

/// A new user of `account` (no permission or limit) and its `.creds` file, in the layout
/// `nsc generate creds` writes and async-nats parses (the markers' dashes are uneven on
/// purpose).
fn new_user_creds(account: &KeyPair, name: &str) -> anyhow::Result<String> {
    let user = KeyPair::new_user();
    let jwt = jwt(
        account,
        &user.public_key(),
        name,
        json!({
            "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
            "type": "user", "version": 2,
        }),
    )?;
    let seed = user.seed()?;
    Ok(format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
         *************************************************************\n"
    ))
}

/// The JWT `signer` issues to `subject` with these `nats` claims.
fn jwt(signer: &KeyPair, subject: &str, name: &str, nats: Value) -> anyhow::Result<String> {
    let iat = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let mut claims = json!({
        "iat": iat,
        "iss": signer.public_key(),
        "sub": subject,
        "name": name,
        "nats": nats,
    });
    // As nats-io/jwt does: the id is the SHA-512/256 of the claims without it, in base32.
    let hash = Sha512_256::digest(serde_json::to_vec(&claims)?);
    claims["jti"] = BASE32_NOPAD.encode(&hash).into();
    let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let signed = format!(
        "{header}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims)?)
    );
    let signature = signer.sign(signed.as_bytes())?;
    Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
}
