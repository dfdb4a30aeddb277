//! Lifecycle operations of [`Core`]: revocation of leaked secrets with the tokens they obtained,
//! and token introspection (RFC 7662) and revocation (RFC 7009) for resource servers and clients.

use serde_json::{json, Value};
use time::Duration;

use super::{actor, require, Core};
use crate::audit::{Change, RequestContext};
use crate::error::{CoreError, Result};
use crate::identity;
use crate::policy::{Authorized, Permission};
use crate::revocation::{Revocation, RevocationKind};
use crate::store::{Batch, Mutation};

impl Core {
    /// How long a revocation must be kept: until every token it covers has expired.
    fn revocation_horizon(&self) -> Duration {
        self.settings.token_lifetime_max + Duration::minutes(10)
    }

    /// Removes a secret at once and, when `revoke_tokens`, revokes every access token it obtained:
    /// they are refused by Clavis's vault and management API and reported inactive by introspection.
    pub async fn revoke_password(
        &self,
        auth: &Authorized<'_>,
        context: &RequestContext,
        id: &str,
        key_id: &str,
        reason: &str,
        revoke_tokens: bool,
    ) -> Result<()> {
        require(auth, Permission::WriteApplications)?;
        let application = self.find_application(&auth.principal().tenant_id, id).await?;
        let key_id = key_id.to_ascii_lowercase();
        if !application.password_credentials.iter().any(|c| c.key_id == key_id) {
            return Err(CoreError::NotFound(format!(
                "Application '{}' has no password credential with keyId '{}'.",
                application.app_id,
                identity::truncate(&key_id, 60)
            )));
        }
        let reason = match reason.trim() {
            "" => "compromised".to_string(),
            text if text.len() <= 200 && !text.chars().any(char::is_control) => text.to_string(),
            _ => return Err(CoreError::Invalid("reason must be at most 200 printable characters.".into())),
        };
        let now = self.now();
        let change = Change::new(
            now,
            &application.tenant_id,
            &actor(auth),
            context,
            "credential.revoke",
            "application",
            &application.id,
            json!({"keyId": key_id, "reason": reason, "tokensRevoked": revoke_tokens}),
        )
        .with_event(
            "CredentialRemoved",
            format!("applications/{}/passwordCredentials/{key_id}", application.id),
            json!({"appId": application.app_id, "keyId": key_id, "reason": reason, "tokensRevoked": revoke_tokens}),
        );
        let mut batch = Batch::one(
            Mutation::RemovePassword {
                tenant_id: application.tenant_id.clone(),
                application_id: application.id.clone(),
                key_id: key_id.clone(),
            },
            change,
        );
        if revoke_tokens {
            let record = Revocation {
                kind: RevocationKind::Credential,
                value: key_id.clone(),
                tenant_id: application.tenant_id.clone(),
                reason: reason.clone(),
                revoked_at: now,
                expires_at: now + self.revocation_horizon(),
            };
            let change = Change::new(
                now,
                &application.tenant_id,
                &actor(auth),
                context,
                "token.revokeByCredential",
                "credential",
                &key_id,
                json!({"reason": reason}),
            );
            batch.push(Mutation::Revoke(record), change);
        }
        self.commit(batch).await
    }

    /// RFC 7662 introspection for an authenticated client of the tenant. A token is reported
    /// active, with its claims, only to the resource it was issued for; to every other caller,
    /// and for any invalid, expired or revoked token, the answer is `{"active": false}`.
    pub async fn introspect(&self, tenant: &str, client_id: &str, secret: Option<&str>, token: &str, client_ip: &str) -> Result<Value> {
        let (tenant, caller, _) = self.authenticate_client(tenant, client_id, secret, false, Some(client_ip)).await?;
        let inactive = json!({"active": false});
        let Ok(verified) = self.verify_token(token) else {
            return Ok(inactive);
        };
        if verified.principal.tenant_id != tenant.id || !self.is_audience_of(&caller, &verified.audience) {
            return Ok(inactive);
        }
        let mut answer = json!({
            "active": true,
            "token_type": "Bearer",
            "client_id": verified.principal.app_id,
            "sub": verified.principal.service_principal_id,
            "aud": verified.audience,
            "iss": format!("{}/{}/v2.0", self.settings.public_url, tenant.id),
            "exp": verified.exp,
            "iat": verified.issued_at,
            "jti": verified.uti,
            "tid": tenant.id,
            "credential_id": verified.principal.credential_id,
        });
        if !verified.principal.roles.is_empty() {
            answer["roles"] = json!(verified.principal.roles);
        }
        Ok(answer)
    }

    /// RFC 7009 revocation by the token's client or its resource. Unknown, invalid and foreign
    /// tokens are ignored (the endpoint answers 200 whatever the token), as the RFC requires.
    pub async fn revoke_token(&self, tenant: &str, client_id: &str, secret: Option<&str>, token: &str, client_ip: &str) -> Result<()> {
        let (tenant, caller, _) = self.authenticate_client(tenant, client_id, secret, false, Some(client_ip)).await?;
        let Ok(verified) = self.verify_token(token) else {
            return Ok(());
        };
        let own = verified.principal.app_id.eq_ignore_ascii_case(&caller.app_id) || self.is_audience_of(&caller, &verified.audience);
        if verified.principal.tenant_id != tenant.id || !own || verified.uti.is_empty() {
            return Ok(());
        }
        let now = self.now();
        let record = Revocation {
            kind: RevocationKind::Token,
            value: verified.uti.clone(),
            tenant_id: tenant.id.clone(),
            reason: "revoked by client".into(),
            revoked_at: now,
            expires_at: time::OffsetDateTime::from_unix_timestamp(verified.exp).unwrap_or(now) + Duration::minutes(10),
        };
        let actor = crate::audit::Actor {
            kind: "servicePrincipal".into(),
            id: caller.service_principal_id.clone(),
            app_id: Some(caller.app_id.clone()),
            auth_method: "client_secret".into(),
        };
        let change = Change::new(
            now,
            &tenant.id,
            &actor,
            &super::system_context(),
            "token.revoke",
            "token",
            &verified.uti,
            json!({"tokenClientId": verified.principal.app_id}),
        );
        self.commit(Batch::one(Mutation::Revoke(record), change)).await
    }

    fn is_audience_of(&self, application: &crate::identity::Application, audience: &str) -> bool {
        let audience = crate::token::normalize_resource(audience);
        audience.eq_ignore_ascii_case(&application.app_id)
            || audience == format!("api://{}", application.app_id.to_ascii_lowercase())
            || application.identifier_uris.iter().any(|uri| crate::token::normalize_resource(uri) == audience)
    }

    /// Drops revocations whose tokens have all expired (a job).
    pub async fn purge_revocations(&self) -> Result<()> {
        let now = self.now();
        if !self.store.revocations().await?.iter().any(|r| r.expires_at <= now) {
            return Ok(());
        }
        let change = Change::new(
            now,
            "",
            &crate::audit::Actor::system("scheduler"),
            &super::system_context(),
            "revocation.purgeExpired",
            "revocation",
            "",
            json!({}),
        );
        self.commit(Batch::one(Mutation::PurgeRevocations(now), change)).await
    }
}
