//! Administrator accounts and portal sessions of [`Core`]: the people who sign in to the portal.
//!
//! A session's person acts as a [`Principal`] holding their account's management role, so every
//! portal action goes through the same operations, authorization and audit as the API.

use serde_json::json;

use clavis_crypto::password;
use clavis_crypto::random;

use super::{actor, require, Core};
use crate::admin::{self, AdminAccount, PortalSession};
use crate::audit::{Change, RequestContext};
use crate::error::{CoreError, Result};
use crate::policy::{Authorized, Permission, Principal, VaultRole, VaultRoleAssignment, ROLE_ADMINISTRATOR};
use crate::store::{Batch, Mutation};

/// Changes to an administrator account; `None` keeps the field.
#[derive(Default)]
pub struct AdminPatch {
    /// A new password (checked for length, hashed with Argon2id).
    pub password: Option<String>,
    /// A new management role.
    pub role: Option<String>,
    /// Disable (true) or enable (false) the account.
    pub disabled: Option<bool>,
}

impl std::fmt::Debug for AdminPatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminPatch")
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("role", &self.role)
            .field("disabled", &self.disabled)
            .finish()
    }
}

/// Hashes a password off the async runtime (Argon2id takes tens of milliseconds on purpose).
async fn hash(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || password::hash_password(&password))
        .await
        .map_err(|e| CoreError::Internal(format!("password hashing task: {e}")))?
        .map_err(CoreError::from)
}

/// Verifies a password off the async runtime.
async fn verify(password: String, stored: String) -> bool {
    tokio::task::spawn_blocking(move || password::verify_password(&password, &stored)).await.unwrap_or(false)
}

fn unknown_session() -> CoreError {
    CoreError::Unauthenticated("Your session has ended; sign in again.".into())
}

impl Core {
    /// Creates an administrator account. An administrator (`Clavis.Administrator`) also gets Key
    /// Vault Administrator at `/`, as the bootstrap administrator has, in the same transaction.
    pub async fn create_admin(
        &self,
        auth: &Authorized<'_>,
        context: &RequestContext,
        username: &str,
        password: &str,
        role: &str,
    ) -> Result<AdminAccount> {
        require(auth, Permission::Administer)?;
        let username = admin::validate_username(username)?;
        let role = admin::parse_role(role)?;
        admin::validate_password(password)?;
        let tenant_id = auth.principal().tenant_id.clone();
        let now = self.now();
        let account = AdminAccount {
            id: random::guid(),
            tenant_id: tenant_id.clone(),
            username: username.clone(),
            password_hash: hash(password.to_string()).await?,
            role: role.clone(),
            disabled: false,
            created_at: now,
            updated_at: now,
        };
        let change = Change::new(
            now,
            &tenant_id,
            &actor(auth),
            context,
            "admin.create",
            "adminAccount",
            &account.id,
            json!({"username": username, "role": role}),
        );
        let mut batch = Batch::one(Mutation::InsertAdmin(account.clone()), change);
        if role == ROLE_ADMINISTRATOR {
            let assignment = VaultRoleAssignment {
                id: random::guid(),
                tenant_id: tenant_id.clone(),
                principal_id: account.id.clone(),
                role: VaultRole::Administrator,
                scope: "/".into(),
                created_at: now,
            };
            let change = Change::new(
                now,
                &tenant_id,
                &actor(auth),
                context,
                "vaultRoleAssignment.create",
                "vaultRoleAssignment",
                &assignment.id,
                json!({"principalUser": username, "role": assignment.role.name(), "scope": "/"}),
            );
            batch.push(Mutation::InsertVaultAssignment(assignment), change);
        }
        self.commit(batch).await?;
        Ok(account)
    }

    /// Administrator accounts of the caller's tenant.
    pub async fn admins(&self, auth: &Authorized<'_>) -> Result<Vec<AdminAccount>> {
        require(auth, Permission::Administer)?;
        self.store.admins(&auth.principal().tenant_id).await
    }

    async fn find_admin(&self, tenant_id: &str, id_or_name: &str) -> Result<AdminAccount> {
        let key = id_or_name.trim().to_ascii_lowercase();
        self.store
            .admin(tenant_id, &key)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("No administrator '{}' in this tenant.", crate::identity::truncate(id_or_name, 64))))
    }

    /// Changes an account's password, role or state. A new password or a disabled account ends
    /// every session of the account in the same transaction.
    pub async fn update_admin(
        &self,
        auth: &Authorized<'_>,
        context: &RequestContext,
        id_or_name: &str,
        patch: AdminPatch,
    ) -> Result<AdminAccount> {
        require(auth, Permission::Administer)?;
        let mut account = self.find_admin(&auth.principal().tenant_id, id_or_name).await?;
        let mut details = serde_json::Map::new();
        let mut end_sessions = false;
        if let Some(password) = patch.password {
            admin::validate_password(&password)?;
            account.password_hash = hash(password).await?;
            details.insert("passwordChanged".into(), json!(true));
            end_sessions = true;
        }
        if let Some(role) = patch.role {
            account.role = admin::parse_role(&role)?;
            details.insert("role".into(), json!(account.role));
            end_sessions = true;
        }
        if let Some(disabled) = patch.disabled {
            account.disabled = disabled;
            details.insert("disabled".into(), json!(disabled));
            end_sessions |= disabled;
        }
        details.insert("username".into(), json!(account.username));
        account.updated_at = self.now();
        let change = Change::new(
            self.now(),
            &account.tenant_id,
            &actor(auth),
            context,
            "admin.update",
            "adminAccount",
            &account.id,
            serde_json::Value::Object(details),
        );
        self.commit(Batch::one(Mutation::UpdateAdmin { admin: account.clone(), end_sessions }, change)).await?;
        Ok(account)
    }

    /// Signs a person in to the default tenant's portal: returns the session token for the cookie
    /// (shown nowhere else) and the session. Unknown and disabled accounts cost the same work as a
    /// wrong password and get the same answer; failures per (user name, address) are throttled.
    pub async fn sign_in(&self, context: &RequestContext, username: &str, password: &str) -> Result<(String, PortalSession)> {
        let tenant = self.default_tenant().ok_or_else(|| CoreError::Internal("no tenant".into()))?;
        let key = username.trim().to_ascii_lowercase();
        let now = self.now();
        if let Some(wait) = self.portal_throttle.wait(&key, &context.client_ip, now) {
            return Err(throttled(wait));
        }
        let account = match admin::validate_username(username) {
            Ok(name) => self.store.admin(&tenant.id, &name).await?,
            Err(_) => None,
        };
        let stored = account.as_ref().filter(|a| !a.disabled).map(|a| a.password_hash.clone());
        let matched = verify(password.to_string(), stored.clone().unwrap_or_else(|| password::decoy_hash().to_string())).await;
        let account = match account {
            Some(account) if matched && stored.is_some() => account,
            _ => {
                // Counted; a wait it starts applies from the next attempt on.
                self.portal_throttle.failed(&key, &context.client_ip, now);
                return Err(CoreError::Unauthenticated("The user name or password is incorrect.".into()));
            }
        };
        self.portal_throttle.succeeded(&key, &context.client_ip);
        let (token, id_hash) = password::new_session_token();
        let session = PortalSession {
            id_hash,
            admin_id: account.id.clone(),
            tenant_id: account.tenant_id.clone(),
            csrf: random::hex128(),
            created_at: now,
            last_seen_at: now,
            expires_at: now + self.settings.portal.session_lifetime,
        };
        let principal = principal_of(&account, &session);
        let change = Change::new(
            now,
            &account.tenant_id,
            &principal.actor(),
            context,
            "portal.signIn",
            "adminAccount",
            &account.id,
            json!({"username": account.username, "session": session.short_id()}),
        );
        self.commit(Batch::one(Mutation::InsertSession(session.clone()), change)).await?;
        Ok((token, session))
    }

    /// The person behind a session cookie, with the session. An unknown, idle, expired or
    /// disabled account's session is refused; activity is recorded at most once a minute.
    pub async fn portal_principal(&self, token: &str) -> Result<(Principal, PortalSession)> {
        if token.is_empty() || token.len() > 128 {
            return Err(unknown_session());
        }
        let mut session = self.store.session(&password::session_token_hash(token)).await?.ok_or_else(unknown_session)?;
        let now = self.now();
        if now >= session.expires_at || now >= session.last_seen_at + self.settings.portal.session_idle {
            return Err(CoreError::Unauthenticated("Your session has expired; sign in again.".into()));
        }
        let account = self.store.admin(&session.tenant_id, &session.admin_id).await?.filter(|a| !a.disabled).ok_or_else(unknown_session)?;
        let touch_every: time::Duration = (self.settings.portal.session_idle / 4_i32).min(time::Duration::minutes(1));
        if now - session.last_seen_at >= touch_every {
            self.store.touch_session(&session.id_hash, now).await?;
            session.last_seen_at = now;
        }
        Ok((principal_of(&account, &session), session))
    }

    /// Ends a session.
    pub async fn sign_out(&self, principal: &Principal, context: &RequestContext, session: &PortalSession) -> Result<()> {
        let change = Change::new(
            self.now(),
            &session.tenant_id,
            &principal.actor(),
            context,
            "portal.signOut",
            "adminAccount",
            &session.admin_id,
            json!({"username": principal.display(), "session": session.short_id()}),
        );
        self.commit(Batch::one(Mutation::DeleteSession { id_hash: session.id_hash.clone() }, change)).await
    }

    /// Deletes ended sessions (a maintenance job).
    pub async fn purge_sessions(&self) -> Result<u64> {
        let now = self.now();
        self.store.purge_sessions(now, now - self.settings.portal.session_idle).await
    }
}

fn throttled(wait: time::Duration) -> CoreError {
    let seconds = wait.whole_seconds().max(1) as u64;
    CoreError::Throttled {
        retry_after_seconds: seconds,
        message: format!("Too many failed sign-ins for this user name from your address; try again in {seconds} seconds."),
    }
}

fn principal_of(account: &AdminAccount, session: &PortalSession) -> Principal {
    Principal {
        tenant_id: account.tenant_id.clone(),
        service_principal_id: account.id.clone(),
        app_id: String::new(),
        roles: vec![account.role.clone()],
        credential_id: session.short_id().to_string(),
        user: Some(account.username.clone()),
    }
}
