//! Dashboard users: `xueliang user add` and the first admin from `[admin]` for unattended
//! installs.

use anyhow::{Context, bail};
use serde::Deserialize;
use xl_core::{CommunityId, Role};
use xl_store::{NewAudit, Store, UserRow};

/// Shortest password accepted (the API's rule).
pub const MIN_PASSWORD: usize = xl_api::MIN_PASSWORD_CHARS;

/// `[admin]`: an admin account created at start when no user of that name exists (for
/// unattended installs; later changes go through the API or `xueliang user add`).
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    pub username: String,
    /// An argon2 PHC string (`$argon2id$...`), so the password itself is never in the file.
    pub password_hash: String,
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("username", &self.username)
            .field("password_hash", &"<redacted>")
            .finish()
    }
}

/// Adds a user with `password` (hashed with argon2 here), under the API's rules for names and
/// passwords, and records it in the audit log as done by `system` through `via` (the command).
pub async fn add(
    store: &Store,
    username: &str,
    password: &str,
    role: Role,
    communities: Vec<CommunityId>,
    via: &str,
) -> anyhow::Result<()> {
    xl_api::check_username(username).map_err(|e| anyhow::anyhow!("{}", e.message))?;
    if password.chars().count() < MIN_PASSWORD {
        bail!("the password must have at least {MIN_PASSWORD} characters");
    }
    if role == Role::Property && communities.is_empty() {
        bail!("a property user needs --communities (the communities they manage)");
    }
    let hash = xl_api::hash_password(password).map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let detail = serde_json::json!({ "role": role, "communities": communities, "via": via });
    store
        .insert_user(&UserRow {
            username: username.to_owned(),
            password_hash: hash,
            role,
            communities,
            // Station scope is set through the users API (it checks the stations against the
            // running topology, which this command does not start).
            stations: Vec::new(),
            disabled: false,
            created_at: jiff::Timestamp::now(),
        })
        .await
        .with_context(|| format!("cannot add user {username}"))?;
    audit_user_add(store, username, detail).await
}

/// The audit entry of a user added outside the API (the API audits its own).
async fn audit_user_add(
    store: &Store,
    username: &str,
    detail: serde_json::Value,
) -> anyhow::Result<()> {
    store
        .audit(&NewAudit {
            at: jiff::Timestamp::now(),
            actor: "system".to_owned(),
            action: "user.add".to_owned(),
            target: Some(username.to_owned()),
            detail,
            peer: None,
        })
        .await
        .with_context(|| format!("added user {username}, but could not write the audit log"))?;
    Ok(())
}

/// Creates the `[admin]` account if it does not exist yet.
pub async fn ensure_admin(store: &Store, admin: &AdminConfig) -> anyhow::Result<()> {
    if store.user(&admin.username).await?.is_some() {
        return Ok(());
    }
    xl_api::check_username(&admin.username)
        .map_err(|e| anyhow::anyhow!("[admin] username: {}", e.message))?;
    if !admin.password_hash.starts_with("$argon2") {
        bail!("[admin] password_hash must be an argon2 PHC string ($argon2id$...)");
    }
    store
        .insert_user(&UserRow {
            username: admin.username.clone(),
            password_hash: admin.password_hash.clone(),
            role: Role::Admin,
            communities: Vec::new(),
            stations: Vec::new(),
            disabled: false,
            created_at: jiff::Timestamp::now(),
        })
        .await?;
    let detail = serde_json::json!({ "role": Role::Admin, "via": "[admin] in the config" });
    audit_user_add(store, &admin.username, detail).await?;
    tracing::info!(user = %admin.username, "created the [admin] account");
    Ok(())
}
