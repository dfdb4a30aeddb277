//! Rotation operations of [`Core`]: policies, the scheduled job, and rotation on demand.

use std::collections::BTreeMap;

use serde_json::json;
use time::{Duration, OffsetDateTime};

use clavis_crypto::random;

use super::{actor, password_change, password_details, require, Core};
use crate::audit::{Actor, Change, RequestContext};
use crate::credential::PasswordRequest;
use crate::error::{CoreError, Result};
use crate::identity::Application;
use crate::policy::{Authorized, Permission};
use crate::rotation::{RotationPolicy, RotationRecord, RotationState};
use crate::store::{Batch, Mutation};
use crate::vault::{self, SecretProperties, SecretVersion};

impl Core {
    /// Sets an application's rotation policy; the target vault must exist in the tenant.
    pub async fn set_rotation_policy(
        &self,
        auth: &Authorized<'_>,
        context: &RequestContext,
        id: &str,
        policy: RotationPolicy,
    ) -> Result<RotationRecord> {
        require(auth, Permission::Administer)?;
        policy.validate()?;
        let application = self.find_application(&auth.principal().tenant_id, id).await?;
        if application.builtin {
            return Err(CoreError::Forbidden(format!("'{}' is built into Clavis and has no secrets to rotate.", application.display_name)));
        }
        let tenant = self.tenant_by_id(&application.tenant_id)?;
        let limits = tenant.policy.with_override(application.credential_policy.as_ref());
        if policy.secret_lifetime_days > limits.max_password_lifetime_days {
            return Err(CoreError::Invalid(format!(
                "passwordLifetime policy: secretLifetimeDays is {} but the credential policy allows at most {} days.",
                policy.secret_lifetime_days, limits.max_password_lifetime_days
            )));
        }
        let target = self.open_vault(&policy.vault).await?;
        if target.tenant_id != application.tenant_id {
            return Err(CoreError::NotFound(format!("Vault '{}' was not found in this tenant.", policy.vault)));
        }
        let existing = self.store.rotations().await?.into_iter().find(|r| r.application_id == application.id);
        let record = RotationRecord {
            application_id: application.id.clone(),
            tenant_id: application.tenant_id.clone(),
            policy,
            state: existing.map(|r| r.state).unwrap_or_default(),
        };
        let change = Change::new(
            self.now(),
            &application.tenant_id,
            &actor(auth),
            context,
            "rotationPolicy.set",
            "application",
            &application.id,
            json!({"policy": record.policy}),
        );
        self.commit(Batch::one(Mutation::PutRotationPolicy(record.clone()), change)).await?;
        Ok(record)
    }

    /// An application's rotation policy and state.
    pub async fn rotation_policy(&self, auth: &Authorized<'_>, id: &str) -> Result<RotationRecord> {
        require(auth, Permission::Read)?;
        let application = self.find_application(&auth.principal().tenant_id, id).await?;
        self.store
            .rotations()
            .await?
            .into_iter()
            .find(|r| r.application_id == application.id)
            .ok_or_else(|| CoreError::NotFound(format!("Application '{}' has no rotation policy.", application.display_name)))
    }

    /// Removes an application's rotation policy (its secrets stay as they are).
    pub async fn delete_rotation_policy(&self, auth: &Authorized<'_>, context: &RequestContext, id: &str) -> Result<()> {
        require(auth, Permission::Administer)?;
        let application = self.find_application(&auth.principal().tenant_id, id).await?;
        let change = Change::new(
            self.now(),
            &application.tenant_id,
            &actor(auth),
            context,
            "rotationPolicy.delete",
            "application",
            &application.id,
            json!({}),
        );
        self.commit(Batch::one(
            Mutation::DeleteRotationPolicy { tenant_id: application.tenant_id.clone(), application_id: application.id.clone() },
            change,
        ))
        .await
    }

    /// Rotates now, whatever the schedule (`clavis app secret rotate`). Returns the new keyId.
    pub async fn rotate_now(&self, auth: &Authorized<'_>, context: &RequestContext, id: &str) -> Result<String> {
        require(auth, Permission::WriteApplications)?;
        let record = self.rotation_policy(auth, id).await?;
        if matches!(record.state, RotationState::Overlapping { .. }) {
            // A rotation during an overlap first ends it, so the state machine stays linear.
            self.retire(&record, &actor(auth), context).await?;
        }
        let record = self.rotation_policy(auth, id).await?;
        self.rotate(&record, &actor(auth), context).await
    }

    /// The scheduled job: rotates what is due and retires what has overlapped long enough.
    /// Returns the number of steps taken.
    pub async fn run_rotations(&self) -> Result<usize> {
        let now = self.now();
        let system = Actor::system("scheduler");
        let context = super::system_context();
        let mut steps = 0;
        for record in self.store.rotations().await? {
            let outcome = match &record.state {
                RotationState::Overlapping { retire_at, .. } if now.unix_timestamp() >= *retire_at => {
                    self.retire(&record, &system, &context).await.map(|_| true)
                }
                RotationState::Overlapping { .. } => Ok(false),
                RotationState::Idle => match self.store.application(&record.tenant_id, &record.application_id).await? {
                    Some(application) if record.policy.due(&application.password_credentials, now) => {
                        self.rotate(&record, &system, &context).await.map(|_| true)
                    }
                    _ => Ok(false),
                },
            };
            match outcome {
                Ok(true) => steps += 1,
                Ok(false) => {}
                // Another node took the step first: nothing to do.
                Err(CoreError::Conflict(_)) => {}
                Err(error) => {
                    tracing::warn!(application = %record.application_id, %error, "rotation step failed; it is retried at the next run")
                }
            }
        }
        Ok(steps)
    }

    /// Idle → Overlapping: a new secret, published as a new version of the target vault secret,
    /// in one transaction with the state change.
    async fn rotate(&self, record: &RotationRecord, actor: &Actor, context: &RequestContext) -> Result<String> {
        let application = self
            .store
            .application(&record.tenant_id, &record.application_id)
            .await?
            .ok_or_else(|| CoreError::NotFound("The application of this rotation policy no longer exists.".into()))?;
        let target = self.open_vault(&record.policy.vault).await?;
        let now = self.now();
        let tenant = self.tenant_by_id(&application.tenant_id)?;
        let limits = tenant.policy.with_override(application.credential_policy.as_ref());
        limits.check_addition(application.created_at, false)?;
        let request = PasswordRequest {
            display_name: Some(format!("rotated {}", now.date())),
            start: None,
            end: Some(now + Duration::days(record.policy.secret_lifetime_days)),
            custom_value: None,
        };
        let new_password = self.new_password(&limits, request, now)?;
        let credential = new_password.credential.clone();
        let retiring: Vec<String> = application.password_credentials.iter().map(|c| c.key_id.clone()).collect();
        // The vault secret's new version carries the value, sealed like any vault value.
        let existing_name = self.cached_secret_name(&target, &record.policy.secret_name).await?;
        let version_id = random::hex128();
        let (data_key_id, sealed) = self
            .material
            .seal(new_password.secret.expose().as_bytes(), &vault::value_aad(&target.tenant_id, &target.id, &existing_name, &version_id))?;
        let mut tags = BTreeMap::new();
        tags.insert("clavis-app-id".to_string(), application.app_id.clone());
        tags.insert("clavis-key-id".to_string(), credential.key_id.clone());
        let version = SecretVersion {
            vault_id: target.id.clone(),
            name: existing_name.clone(),
            version: version_id.clone(),
            ordinal: 0,
            data_key_id,
            sealed,
            properties: SecretProperties {
                content_type: Some("text/plain".into()),
                tags,
                enabled: true,
                nbf: None,
                exp: Some(credential.end.unix_timestamp()),
            },
            created: now,
            updated: now,
        };
        let retire_at = (now + Duration::days(record.policy.overlap_days)).unix_timestamp();
        let next = RotationState::Overlapping { new_key_id: credential.key_id.clone(), retiring: retiring.clone(), retire_at };
        let mut batch = Batch::default();
        let added = Change::new(
            now,
            &application.tenant_id,
            actor,
            context,
            "credential.add",
            "application",
            &application.id,
            password_details(&credential),
        );
        batch.push(
            Mutation::AddPassword {
                tenant_id: application.tenant_id.clone(),
                application_id: application.id.clone(),
                credential: credential.clone(),
                max: limits.max_passwords_per_application,
            },
            password_change(added, &application, &credential),
        );
        let published = Change::new(now, &application.tenant_id, actor, context, "vaultSecret.set", "vaultSecret", &format!("{}/{}", target.name, existing_name), json!({"version": version_id, "rotation": application.app_id}))
            .with_event(
                "SecretNewVersionCreated",
                format!("vaults/{}/secrets/{}/{}", target.name, existing_name, version_id),
                json!({"VaultName": target.name, "ObjectType": "Secret", "ObjectName": existing_name, "Version": version_id, "NBF": null, "EXP": version.properties.exp}),
            );
        batch.push(Mutation::PutSecretVersion(version), published);
        let rotated = Change::new(now, &application.tenant_id, actor, context, "credential.rotate", "application", &application.id, json!({"newKeyId": credential.key_id, "retiring": retiring, "overlapEnds": retire_at}))
            .with_event(
                "CredentialRotated",
                format!("applications/{}/passwordCredentials/{}", application.id, credential.key_id),
                json!({"appId": application.app_id, "newKeyId": credential.key_id, "retiringKeyIds": retiring, "overlapEnds": retire_at, "vault": target.name, "secretName": existing_name, "version": version_id}),
            );
        batch.push(Mutation::UpdateRotationState { application_id: application.id.clone(), expected: record.state.clone(), next }, rotated);
        self.commit(batch).await?;
        Ok(credential.key_id)
    }

    /// Overlapping → Idle: the secrets the last rotation replaced are removed.
    async fn retire(&self, record: &RotationRecord, actor: &Actor, context: &RequestContext) -> Result<()> {
        let RotationState::Overlapping { retiring, .. } = &record.state else { return Ok(()) };
        let now = self.now();
        let application = self.store.application(&record.tenant_id, &record.application_id).await?;
        let mut batch = Batch::default();
        if let Some(application) = &application {
            for key_id in retiring.iter().filter(|k| application.password_credentials.iter().any(|c| &c.key_id == *k)) {
                let change = Change::new(
                    now,
                    &application.tenant_id,
                    actor,
                    context,
                    "credential.remove",
                    "application",
                    &application.id,
                    json!({"keyId": key_id, "reason": "rotation overlap ended"}),
                )
                .with_event(
                    "CredentialRemoved",
                    format!("applications/{}/passwordCredentials/{key_id}", application.id),
                    json!({"appId": application.app_id, "keyId": key_id, "reason": "rotated"}),
                );
                batch.push(
                    Mutation::RemovePassword {
                        tenant_id: application.tenant_id.clone(),
                        application_id: application.id.clone(),
                        key_id: key_id.clone(),
                    },
                    change,
                );
            }
        }
        let change = Change::new(
            now,
            &record.tenant_id,
            actor,
            context,
            "credential.rotationComplete",
            "application",
            &record.application_id,
            json!({"removed": retiring}),
        );
        batch.push(
            Mutation::UpdateRotationState {
                application_id: record.application_id.clone(),
                expected: record.state.clone(),
                next: RotationState::Idle,
            },
            change,
        );
        self.commit(batch).await
    }

    /// The stored spelling of a vault secret's name (names are case-insensitive), or `name`.
    async fn cached_secret_name(&self, target: &crate::vault::Vault, name: &str) -> Result<String> {
        Ok(self.store.secret(&target.id, name).await?.map(|s| s.name).unwrap_or_else(|| name.to_string()))
    }

    /// Applications with a rotation policy, for listings.
    pub async fn rotation_records(&self, auth: &Authorized<'_>) -> Result<Vec<(RotationRecord, Option<Application>)>> {
        require(auth, Permission::Read)?;
        let tenant_id = auth.principal().tenant_id.clone();
        let mut out = Vec::new();
        for record in self.store.rotations().await?.into_iter().filter(|r| r.tenant_id == tenant_id) {
            let application = self.store.application(&tenant_id, &record.application_id).await?;
            out.push((record, application));
        }
        Ok(out)
    }

    /// When the next rotation step of a record is due, for display.
    pub fn next_rotation_step(&self, record: &RotationRecord, application: &Application) -> Option<OffsetDateTime> {
        match &record.state {
            RotationState::Overlapping { retire_at, .. } => OffsetDateTime::from_unix_timestamp(*retire_at).ok(),
            RotationState::Idle => {
                let newest = application.password_credentials.iter().max_by_key(|c| c.end)?;
                match (record.policy.rotate_before_expiry_days, record.policy.rotate_every_days) {
                    (Some(before), _) => Some(newest.end - Duration::days(before)),
                    (None, Some(every)) => Some(newest.start + Duration::days(every)),
                    _ => None,
                }
            }
        }
    }
}
