//! Vault operations of [`Core`]: the Key Vault data plane (every secrets operation, authorized by
//! vault roles) and vault management (create, settings, delete, role grants).

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::json;
use time::{Duration, OffsetDateTime};

use clavis_crypto::random;

use super::{actor, require, Core};
use crate::audit::{Actor, Change, RequestContext};
use crate::error::{CoreError, Result};
use crate::identity::{self};
use crate::policy::{self, Authorized, DataAction, Permission, Principal, VaultRole, VaultRoleAssignment};
use crate::store::{Batch, Mutation};
use crate::vault::{self, name_key, DeletedState, Secret, SecretProperties, SecretVersion, Vault, VaultSettings};

/// A secret value in clear, on its way in or out. `Debug` prints nothing of it.
pub struct SecretValue(String);

impl SecretValue {
    /// Wraps a value.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The value, for the response that returns it or the environment it is injected into.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

/// Changes to a version's properties; absent fields stay as they are.
#[derive(Clone, Debug, Default)]
pub struct PropertiesPatch {
    /// New content type.
    pub content_type: Option<String>,
    /// New tags (replace all).
    pub tags: Option<std::collections::BTreeMap<String, String>>,
    /// Enable or disable.
    pub enabled: Option<bool>,
    /// New not-before.
    pub nbf: Option<i64>,
    /// New expiry.
    pub exp: Option<i64>,
}

/// Changes to a vault's settings.
#[derive(Clone, Debug, Default)]
pub struct VaultPatch {
    /// Turn purge protection on (it cannot be turned off again, as in Key Vault).
    pub purge_protection: Option<bool>,
    /// Enforce expiry on reads.
    pub enforce_expiry: Option<bool>,
    /// Requests per second before 429.
    pub rate_limit: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct BackupVersion {
    version: String,
    value: String,
    properties: SecretProperties,
    created: i64,
    updated: i64,
}

#[derive(Serialize, Deserialize)]
struct BackupPayload {
    tenant: String,
    name: String,
    versions: Vec<BackupVersion>,
}

/// The first bytes of a Clavis secret backup blob.
const BACKUP_MAGIC: &[u8; 8] = b"CLVSBK01";

fn backup_aad(tenant_id: &str) -> Vec<u8> {
    format!("clavis:secret-backup:{tenant_id}").into_bytes()
}

fn bad_parameter(message: String) -> CoreError {
    CoreError::Invalid(message)
}

/// Where a queued read learns whether its record was written.
type ReadOutcome = tokio::sync::oneshot::Sender<std::result::Result<(), String>>;

/// What reads are merged by: tenant, principal, action, target, version, address, user agent.
type ReadKey = (String, String, String, String, String, String, String);

/// Group commit of value-read audit records: readers queue their records; whoever holds the
/// commit lock writes everything queued in one transaction (one fsync) and tells each reader its
/// outcome. A reader gets its value only once its record is durable (fail-closed).
#[derive(Debug, Default)]
pub(super) struct ReadAudit {
    queue: Mutex<Vec<(Change, ReadOutcome)>>,
    committing: tokio::sync::Mutex<()>,
    /// Records of reads in `buffered` mode, merged as they arrive (so the flush only writes),
    /// written by [`Core::flush_read_audit`].
    pending: Mutex<ReadMerger>,
}

/// A token bucket per vault, for the vault's `rate_limit`.
#[derive(Debug)]
pub(super) struct Bucket {
    tokens: f64,
    at: std::time::Instant,
}

/// The built-in vault resource application's client id in a tenant: derived from the tenant
/// id, so every node agrees on it without a lookup.
pub fn vault_app_id(tenant_id: &str) -> String {
    super::derived_guid(&format!("clavis-vault:{tenant_id}"))
}

impl Core {
    // ----- access ---------------------------------------------------------------------------------

    /// The live vault served at `name`.
    pub async fn open_vault(&self, name: &str) -> Result<Arc<Vault>> {
        let key = name.to_ascii_lowercase();
        let found = match self.vaults.get(&key) {
            Some(hit) => hit,
            None => {
                let generation = self.generation.current();
                let loaded = self.store.vault_by_name(&key).await?.map(Arc::new);
                self.vaults.insert(&self.generation, generation, key, loaded.clone());
                loaded
            }
        };
        found
            .filter(|v| v.deleted_at.is_none())
            .ok_or_else(|| CoreError::NotFound(format!("VaultNotFound: Vault '{name}' does not exist.")))
    }

    /// Verifies a bearer token for the vault data plane: issued by this instance, for the vault
    /// resource, in the vault's tenant.
    pub fn authenticate_vault(&self, bearer: &str, vault: &Vault) -> Result<Principal> {
        let verified = self.verify_token(bearer)?;
        let audience = crate::token::normalize_resource(&verified.audience);
        if audience != crate::token::normalize_resource(&self.settings.vault_resource)
            && !audience.eq_ignore_ascii_case(&vault_app_id(&vault.tenant_id))
        {
            return Err(CoreError::Unauthenticated(format!(
                "AKV10022: Invalid audience. Expected {}, found: {}.",
                self.settings.vault_resource, verified.audience
            )));
        }
        if verified.principal.tenant_id != vault.tenant_id {
            return Err(CoreError::Unauthenticated(format!(
                "AKV10032: Invalid issuer. Expected one of {}/{}/, found another tenant.",
                self.settings.public_url, vault.tenant_id
            )));
        }
        Ok(verified.principal.clone())
    }

    /// Applies the vault's rate limit: a 429 `Throttled` with `Retry-After` past it.
    pub fn throttle(&self, vault: &Vault) -> Result<()> {
        if vault.rate_limit <= 0 {
            return Ok(());
        }
        let rate = vault.rate_limit as f64;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        let bucket = buckets.entry(vault.id.clone()).or_insert(Bucket { tokens: rate, at: now });
        bucket.tokens = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rate).min(rate);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        Err(CoreError::Throttled {
            retry_after_seconds: 1,
            message: format!("Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached ({} requests per second for vault '{}').", vault.rate_limit, vault.name),
        })
    }

    async fn vault_grants(&self, principal: &Principal) -> Result<Arc<Vec<VaultRoleAssignment>>> {
        let key = principal.service_principal_id.clone();
        if let Some(hit) = self.vault_grants.get(&key) {
            return Ok(hit);
        }
        let generation = self.generation.current();
        let loaded = Arc::new(self.store.vault_assignments(&principal.tenant_id, Some(&key)).await?);
        self.vault_grants.insert(&self.generation, generation, key, loaded.clone());
        Ok(loaded)
    }

    async fn allow(&self, principal: &Principal, vault: &Vault, action: DataAction, secret: Option<&str>) -> Result<()> {
        let grants = self.vault_grants(principal).await?;
        policy::authorize_data(principal, &grants, action, &vault.name, secret)
    }

    async fn cached_secret(&self, vault: &Vault, name: &str) -> Result<Option<Arc<Secret>>> {
        let key = (vault.id.clone(), name_key(name));
        if let Some(hit) = self.secrets.get(&key) {
            return Ok(hit);
        }
        let generation = self.generation.current();
        let loaded = self.store.secret(&vault.id, name).await?.map(Arc::new);
        self.secrets.insert(&self.generation, generation, key, loaded.clone());
        Ok(loaded)
    }

    async fn live_secret(&self, vault: &Vault, name: &str) -> Result<Arc<Secret>> {
        match self.cached_secret(vault, name).await? {
            Some(secret) if secret.deleted.is_none() => Ok(secret),
            _ => Err(not_found(name)),
        }
    }

    async fn deleted_secret_of(&self, vault: &Vault, name: &str) -> Result<Arc<Secret>> {
        match self.cached_secret(vault, name).await? {
            Some(secret) if secret.deleted.is_some() => Ok(secret),
            _ => Err(CoreError::NotFound(format!("SecretNotFound: Deleted Secret not found: {name}"))),
        }
    }

    fn open_value(&self, vault: &Vault, version: &SecretVersion) -> Result<SecretValue> {
        let plain = self.material.open(
            &version.data_key_id,
            &version.sealed,
            &vault::value_aad(&vault.tenant_id, &vault.id, &version.name, &version.version),
        )?;
        String::from_utf8(plain).map(SecretValue).map_err(|_| CoreError::Internal("a stored secret value is not UTF-8".into()))
    }

    fn data_change(
        &self,
        principal: &Principal,
        context: &RequestContext,
        vault: &Vault,
        action: &str,
        name: &str,
        details: serde_json::Value,
    ) -> Change {
        Change::new(
            self.now(),
            &vault.tenant_id,
            &principal.actor(),
            context,
            action,
            "vaultSecret",
            &format!("{}/{}", vault.name, name),
            details,
        )
    }

    // ----- the data plane ---------------------------------------------------------------------------

    /// Sets a secret: a new version (the first one creates the secret).
    pub async fn set_secret(
        &self,
        principal: &Principal,
        context: &RequestContext,
        vault: &Vault,
        name: &str,
        value: SecretValue,
        properties: SecretProperties,
    ) -> Result<SecretVersion> {
        vault::validate_secret_name(name)?;
        self.allow(principal, vault, DataAction::SetSecret, Some(name)).await?;
        vault::validate_contents(Some(value.expose()), &properties)?;
        let now = self.now();
        let version_id = random::hex128();
        let stored_name = self.cached_secret(vault, name).await?.map(|s| s.name.clone()).unwrap_or_else(|| name.to_string());
        let (data_key_id, sealed) =
            self.material.seal(value.expose().as_bytes(), &vault::value_aad(&vault.tenant_id, &vault.id, &stored_name, &version_id))?;
        let version = SecretVersion {
            vault_id: vault.id.clone(),
            name: stored_name.clone(),
            version: version_id,
            ordinal: 0,
            data_key_id,
            sealed,
            properties,
            created: now,
            updated: now,
        };
        let change = self
            .data_change(principal, context, vault, "vaultSecret.set", &stored_name, json!({"version": version.version, "contentType": version.properties.content_type, "enabled": version.properties.enabled}))
            .with_event(
                "SecretNewVersionCreated",
                format!("vaults/{}/secrets/{}/{}", vault.name, stored_name, version.version),
                json!({"VaultName": vault.name, "ObjectType": "Secret", "ObjectName": stored_name, "Version": version.version, "NBF": version.properties.nbf, "EXP": version.properties.exp}),
            );
        self.commit(Batch::one(Mutation::PutSecretVersion(version.clone()), change)).await?;
        let secret = self.live_secret(vault, &stored_name).await?;
        secret
            .versions
            .iter()
            .find(|v| v.version == version.version)
            .cloned()
            .ok_or_else(|| CoreError::Internal("the new version vanished".into()))
    }

    fn find_version<'a>(secret: &'a Secret, version: Option<&str>) -> Result<&'a SecretVersion> {
        match version.filter(|v| !v.is_empty()) {
            None => secret.latest().ok_or_else(|| not_found(&secret.name)),
            Some(id) => secret
                .versions
                .iter()
                .find(|v| v.version.eq_ignore_ascii_case(id))
                .ok_or_else(|| not_found(&format!("{}/{id}", secret.name))),
        }
    }

    /// Reads a value: the latest version, or the one named. The read is in the audit log before
    /// the value is returned.
    pub async fn get_secret(
        &self,
        principal: &Principal,
        context: &RequestContext,
        vault: &Vault,
        name: &str,
        version: Option<&str>,
    ) -> Result<(SecretVersion, SecretValue)> {
        vault::validate_secret_name(name)?;
        self.allow(principal, vault, DataAction::GetSecret, Some(name)).await?;
        let secret = self.live_secret(vault, name).await?;
        let found = Self::find_version(&secret, version)?;
        vault::readable(vault, found, self.now())?;
        let value = self.open_value(vault, found)?;
        self.audit_read(self.data_change(principal, context, vault, "vaultSecret.read", &secret.name, json!({"version": found.version})))
            .await?;
        Ok((found.clone(), value))
    }

    /// Writes the records of reads buffered in `buffered` mode (a job, every second). Returns the
    /// number of records written (each counting one or more reads).
    pub async fn flush_read_audit(&self) -> Result<usize> {
        let changes = std::mem::take(&mut *self.read_audit.pending.lock().unwrap_or_else(|e| e.into_inner())).into_changes();
        if changes.is_empty() {
            return Ok(0);
        }
        let count = changes.len();
        if let Err(error) = self.store.apply(&Batch { mutations: Vec::new(), changes: changes.clone() }).await {
            // Kept for the next flush, merged with the reads made meanwhile.
            let mut pending = self.read_audit.pending.lock().unwrap_or_else(|e| e.into_inner());
            changes.into_iter().for_each(|change| pending.push(change));
            return Err(error);
        }
        Ok(count)
    }

    /// Writes a read's audit record: by default through the group commit, returning once it is
    /// durable (fail-closed); in `buffered` mode into the next flush.
    async fn audit_read(&self, change: Change) -> Result<()> {
        if self.settings.buffered_read_audit {
            self.read_audit.pending.lock().unwrap_or_else(|e| e.into_inner()).push(change);
            return Ok(());
        }
        let (sender, mut receiver) = tokio::sync::oneshot::channel();
        self.read_audit.queue.lock().unwrap_or_else(|e| e.into_inner()).push((change, sender));
        let _turn = self.read_audit.committing.lock().await;
        // A committer that ran while this reader waited may have written its record already.
        if let Ok(outcome) = receiver.try_recv() {
            return outcome.map_err(CoreError::Store);
        }
        let group: Vec<_> = std::mem::take(&mut *self.read_audit.queue.lock().unwrap_or_else(|e| e.into_inner()));
        let (changes, senders): (Vec<Change>, Vec<_>) = group.into_iter().unzip();
        let mut merger = ReadMerger::default();
        changes.into_iter().for_each(|change| merger.push(change));
        let outcome = self.store.apply(&Batch { mutations: Vec::new(), changes: merger.into_changes() }).await.map_err(|e| e.to_string());
        for sender in senders {
            let _ = sender.send(outcome.clone());
        }
        receiver.await.unwrap_or_else(|_| Err("the read's audit record was lost".into())).map_err(CoreError::Store)
    }

    /// Changes a version's properties.
    pub async fn update_secret(
        &self,
        principal: &Principal,
        context: &RequestContext,
        vault: &Vault,
        name: &str,
        version: Option<&str>,
        patch: PropertiesPatch,
    ) -> Result<SecretVersion> {
        vault::validate_secret_name(name)?;
        self.allow(principal, vault, DataAction::Update, Some(name)).await?;
        let secret = self.live_secret(vault, name).await?;
        let mut updated = Self::find_version(&secret, version)?.clone();
        if let Some(content_type) = patch.content_type {
            updated.properties.content_type = Some(content_type);
        }
        if let Some(tags) = patch.tags {
            updated.properties.tags = tags;
        }
        if let Some(enabled) = patch.enabled {
            updated.properties.enabled = enabled;
        }
        if patch.nbf.is_some() {
            updated.properties.nbf = patch.nbf;
        }
        if patch.exp.is_some() {
            updated.properties.exp = patch.exp;
        }
        vault::validate_contents(None, &updated.properties)?;
        updated.updated = self.now();
        let change = self.data_change(principal, context, vault, "vaultSecret.update", &secret.name, json!({"version": updated.version, "enabled": updated.properties.enabled, "nbf": updated.properties.nbf, "exp": updated.properties.exp}));
        self.commit(Batch::one(Mutation::UpdateSecretVersion(updated.clone()), change)).await?;
        Ok(updated)
    }

    /// A page of live or deleted secrets (each with its latest version), in name order after `after`.
    pub async fn list_secrets(
        &self,
        principal: &Principal,
        vault: &Vault,
        deleted: bool,
        after: &str,
        limit: usize,
    ) -> Result<Vec<Secret>> {
        self.allow(principal, vault, DataAction::ReadMetadata, None).await?;
        self.store.secrets(&vault.id, deleted, &after.to_ascii_lowercase(), limit.clamp(1, vault::MAX_PAGE) as i64).await
    }

    /// A page of a secret's versions, after ordinal `after`. An unknown secret has none.
    pub async fn list_versions(
        &self,
        principal: &Principal,
        vault: &Vault,
        name: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<SecretVersion>> {
        vault::validate_secret_name(name)?;
        self.allow(principal, vault, DataAction::ReadMetadata, Some(name)).await?;
        let Some(secret) = self.cached_secret(vault, name).await?.filter(|s| s.deleted.is_none()) else {
            return Ok(Vec::new());
        };
        Ok(secret.versions.iter().filter(|v| v.ordinal > after).take(limit.clamp(1, vault::MAX_PAGE)).cloned().collect())
    }

    /// Soft-deletes a secret with all its versions; it stays recoverable for the vault's retention.
    pub async fn delete_secret(&self, principal: &Principal, context: &RequestContext, vault: &Vault, name: &str) -> Result<Secret> {
        vault::validate_secret_name(name)?;
        self.allow(principal, vault, DataAction::Delete, Some(name)).await?;
        let secret = self.live_secret(vault, name).await?;
        let now = self.now();
        let deleted = DeletedState { deleted_at: now, scheduled_purge_at: now + Duration::days(vault.retention_days) };
        let change = self.data_change(
            principal,
            context,
            vault,
            "vaultSecret.delete",
            &secret.name,
            json!({"scheduledPurgeDate": deleted.scheduled_purge_at.unix_timestamp()}),
        );
        self.commit(Batch::one(
            Mutation::DeleteSecret { vault_id: vault.id.clone(), name: secret.name.clone(), deleted: deleted.clone() },
            change,
        ))
        .await?;
        let mut result = (*secret).clone();
        result.deleted = Some(deleted);
        Ok(result)
    }

    /// A deleted secret.
    pub async fn deleted_secret(&self, principal: &Principal, vault: &Vault, name: &str) -> Result<Secret> {
        vault::validate_secret_name(name)?;
        self.allow(principal, vault, DataAction::ReadMetadata, Some(name)).await?;
        Ok((*self.deleted_secret_of(vault, name).await?).clone())
    }

    /// Recovers a deleted secret with its versions.
    pub async fn recover_secret(&self, principal: &Principal, context: &RequestContext, vault: &Vault, name: &str) -> Result<Secret> {
        vault::validate_secret_name(name)?;
        self.allow(principal, vault, DataAction::Recover, Some(name)).await?;
        let secret = self.deleted_secret_of(vault, name).await?;
        let change = self.data_change(principal, context, vault, "vaultSecret.recover", &secret.name, json!({}));
        self.commit(Batch::one(Mutation::RecoverSecret { vault_id: vault.id.clone(), name: secret.name.clone() }, change)).await?;
        let mut result = (*secret).clone();
        result.deleted = None;
        Ok(result)
    }

    /// Purges a deleted secret for good (refused under purge protection before its date).
    pub async fn purge_secret(&self, principal: &Principal, context: &RequestContext, vault: &Vault, name: &str) -> Result<()> {
        vault::validate_secret_name(name)?;
        self.allow(principal, vault, DataAction::Purge, Some(name)).await?;
        let secret = self.deleted_secret_of(vault, name).await?;
        if vault.purge_protection && secret.deleted.as_ref().is_some_and(|d| d.scheduled_purge_at > self.now()) {
            return Err(CoreError::Forbidden(format!(
                "PurgeProtected: Operation purge is not allowed: vault '{}' has purge protection, so secret {} can be purged only after its scheduled purge date. It can still be recovered.",
                vault.name, secret.name
            )));
        }
        let change = self.data_change(principal, context, vault, "vaultSecret.purge", &secret.name, json!({}));
        self.commit(Batch::one(Mutation::PurgeSecret { vault_id: vault.id.clone(), name: secret.name.clone() }, change)).await
    }

    /// Backs a secret up: every version, sealed to this instance and tenant.
    pub async fn backup_secret(&self, principal: &Principal, context: &RequestContext, vault: &Vault, name: &str) -> Result<Vec<u8>> {
        vault::validate_secret_name(name)?;
        self.allow(principal, vault, DataAction::Backup, Some(name)).await?;
        let secret = self.live_secret(vault, name).await?;
        let mut versions = Vec::with_capacity(secret.versions.len());
        for version in secret.versions.iter().rev().take(500).rev() {
            versions.push(BackupVersion {
                version: version.version.clone(),
                value: self.open_value(vault, version)?.0,
                properties: version.properties.clone(),
                created: version.created.unix_timestamp(),
                updated: version.updated.unix_timestamp(),
            });
        }
        let payload = serde_json::to_vec(&BackupPayload { tenant: vault.tenant_id.clone(), name: secret.name.clone(), versions })
            .map_err(|e| CoreError::Internal(e.to_string()))?;
        let (key_id, sealed) = self.material.seal(&payload, &backup_aad(&vault.tenant_id))?;
        self.audit_read(self.data_change(
            principal,
            context,
            vault,
            "vaultSecret.backup",
            &secret.name,
            json!({"versions": secret.versions.len()}),
        ))
        .await?;
        let mut blob = BACKUP_MAGIC.to_vec();
        blob.push(key_id.len() as u8);
        blob.extend_from_slice(key_id.as_bytes());
        blob.extend_from_slice(&sealed);
        Ok(blob)
    }

    /// Restores a backup made in this tenant into `vault`.
    pub async fn restore_secret(&self, principal: &Principal, context: &RequestContext, vault: &Vault, blob: &[u8]) -> Result<Secret> {
        let malformed = || bad_parameter("The backup blob is malformed or was not made by this Clavis instance.".into());
        let rest = blob.strip_prefix(BACKUP_MAGIC.as_slice()).ok_or_else(malformed)?;
        let (&key_len, rest) = rest.split_first().ok_or_else(malformed)?;
        if rest.len() < usize::from(key_len) {
            return Err(malformed());
        }
        let (key_id, sealed) = rest.split_at(usize::from(key_len));
        let key_id = std::str::from_utf8(key_id).map_err(|_| malformed())?;
        let plain = self.material.open(key_id, sealed, &backup_aad(&vault.tenant_id)).map_err(|_| {
            bad_parameter(
                "The backup blob cannot be restored here: it was made in another tenant or Clavis instance, or it was altered.".into(),
            )
        })?;
        let payload: BackupPayload = serde_json::from_slice(&plain).map_err(|_| malformed())?;
        vault::validate_secret_name(&payload.name)?;
        self.allow(principal, vault, DataAction::Restore, Some(&payload.name)).await?;
        let mut versions = Vec::with_capacity(payload.versions.len());
        for (index, version) in payload.versions.into_iter().enumerate() {
            let (data_key_id, sealed) = self
                .material
                .seal(version.value.as_bytes(), &vault::value_aad(&vault.tenant_id, &vault.id, &payload.name, &version.version))?;
            versions.push(SecretVersion {
                vault_id: vault.id.clone(),
                name: payload.name.clone(),
                version: version.version,
                ordinal: index as i64 + 1,
                data_key_id,
                sealed,
                properties: version.properties,
                created: OffsetDateTime::from_unix_timestamp(version.created).unwrap_or(OffsetDateTime::UNIX_EPOCH),
                updated: OffsetDateTime::from_unix_timestamp(version.updated).unwrap_or(OffsetDateTime::UNIX_EPOCH),
            });
        }
        if versions.is_empty() {
            return Err(malformed());
        }
        let secret = Secret { vault_id: vault.id.clone(), name: payload.name.clone(), deleted: None, versions };
        let change =
            self.data_change(principal, context, vault, "vaultSecret.restore", &secret.name, json!({"versions": secret.versions.len()}));
        self.commit(Batch::one(Mutation::RestoreSecret(secret.clone()), change)).await?;
        Ok(secret)
    }

    /// Purges deleted secrets whose retention has ended, and deleted vaults likewise (a job).
    pub async fn purge_due(&self) -> Result<()> {
        let now = self.now();
        let mut batch = Batch::default();
        let system = Actor::system("scheduler");
        let context = super::system_context();
        for tenant in self.all_tenants() {
            for vault in self.store.vaults(&tenant.id).await? {
                if vault.deleted_at.is_some_and(|at| at + Duration::days(vault.retention_days) <= now) {
                    let change = Change::new(
                        now,
                        &tenant.id,
                        &system,
                        &context,
                        "vault.purge",
                        "vault",
                        &vault.name,
                        json!({"reason": "retention ended"}),
                    );
                    batch.push(Mutation::PurgeVault { vault_id: vault.id.clone(), name: vault.name.clone() }, change);
                }
            }
        }
        let change =
            Change::new(now, "", &system, &context, "vaultSecret.purgeDue", "vaultSecret", "", json!({"before": now.unix_timestamp()}));
        batch.push(Mutation::PurgeDeletedSecrets(now), change);
        // Nothing is written (not even the audit record) when nothing is due.
        if batch.mutations.len() == 1 && !self.store.secrets_due(now).await? {
            return Ok(());
        }
        self.commit(batch).await
    }

    // ----- management -------------------------------------------------------------------------------

    /// Creates a vault in the caller's tenant.
    pub async fn create_vault(
        &self,
        auth: &Authorized<'_>,
        context: &RequestContext,
        name: &str,
        settings: VaultSettings,
    ) -> Result<Vault> {
        require(auth, Permission::Administer)?;
        vault::validate_vault_name(name)?;
        vault::validate_settings(&settings)?;
        let vault = Vault {
            id: random::guid(),
            tenant_id: auth.principal().tenant_id.clone(),
            name: name.to_ascii_lowercase(),
            retention_days: settings.retention_days,
            purge_protection: settings.purge_protection,
            enforce_expiry: settings.enforce_expiry,
            rate_limit: settings.rate_limit,
            created_at: self.now(),
            deleted_at: None,
        };
        let change = Change::new(
            self.now(),
            &vault.tenant_id,
            &actor(auth),
            context,
            "vault.create",
            "vault",
            &vault.name,
            json!({"retentionDays": vault.retention_days, "purgeProtection": vault.purge_protection, "enforceExpiry": vault.enforce_expiry}),
        );
        self.commit(Batch::one(Mutation::InsertVault(vault.clone()), change)).await?;
        Ok(vault)
    }

    /// The vaults of the caller's tenant, deleted ones included.
    pub async fn list_vaults(&self, auth: &Authorized<'_>) -> Result<Vec<Vault>> {
        require(auth, Permission::Read)?;
        self.store.vaults(&auth.principal().tenant_id).await
    }

    async fn tenant_vault(&self, tenant_id: &str, name: &str) -> Result<Vault> {
        self.store
            .vault_by_name(&name.to_ascii_lowercase())
            .await?
            .filter(|v| v.tenant_id == tenant_id)
            .ok_or_else(|| CoreError::NotFound(format!("Vault '{}' was not found in this tenant.", identity::truncate(name, 40))))
    }

    /// One vault of the caller's tenant.
    pub async fn vault(&self, auth: &Authorized<'_>, name: &str) -> Result<Vault> {
        require(auth, Permission::Read)?;
        self.tenant_vault(&auth.principal().tenant_id, name).await
    }

    /// Changes a vault's settings.
    pub async fn update_vault(&self, auth: &Authorized<'_>, context: &RequestContext, name: &str, patch: VaultPatch) -> Result<Vault> {
        require(auth, Permission::Administer)?;
        let mut vault = self.tenant_vault(&auth.principal().tenant_id, name).await?;
        if patch.purge_protection == Some(false) && vault.purge_protection {
            return Err(CoreError::Conflict("Purge protection cannot be turned off once on.".into()));
        }
        if let Some(on) = patch.purge_protection {
            vault.purge_protection = on;
        }
        if let Some(on) = patch.enforce_expiry {
            vault.enforce_expiry = on;
        }
        if let Some(rate) = patch.rate_limit {
            vault.rate_limit = rate;
        }
        vault::validate_settings(&VaultSettings {
            retention_days: vault.retention_days,
            purge_protection: vault.purge_protection,
            enforce_expiry: vault.enforce_expiry,
            rate_limit: vault.rate_limit,
        })?;
        let change = Change::new(
            self.now(),
            &vault.tenant_id,
            &actor(auth),
            context,
            "vault.update",
            "vault",
            &vault.name,
            json!({"purgeProtection": vault.purge_protection, "enforceExpiry": vault.enforce_expiry, "rateLimit": vault.rate_limit}),
        );
        self.commit(Batch::one(Mutation::UpdateVault(vault.clone()), change)).await?;
        Ok(vault)
    }

    /// Deletes (soft), recovers or purges a vault.
    pub async fn change_vault_state(
        &self,
        auth: &Authorized<'_>,
        context: &RequestContext,
        name: &str,
        state: VaultStateChange,
    ) -> Result<()> {
        require(auth, Permission::Administer)?;
        let mut vault = self.tenant_vault(&auth.principal().tenant_id, name).await?;
        let now = self.now();
        let (mutation, action) = match state {
            VaultStateChange::Delete if vault.deleted_at.is_none() => {
                vault.deleted_at = Some(now);
                (Mutation::UpdateVault(vault.clone()), "vault.delete")
            }
            VaultStateChange::Recover if vault.deleted_at.is_some() => {
                vault.deleted_at = None;
                (Mutation::UpdateVault(vault.clone()), "vault.recover")
            }
            VaultStateChange::Purge if vault.deleted_at.is_some() => {
                if vault.purge_protection && vault.deleted_at.is_some_and(|at| at + Duration::days(vault.retention_days) > now) {
                    return Err(CoreError::Forbidden(format!(
                        "Vault '{}' has purge protection: it can be purged only after its retention of {} days.",
                        vault.name, vault.retention_days
                    )));
                }
                (Mutation::PurgeVault { vault_id: vault.id.clone(), name: vault.name.clone() }, "vault.purge")
            }
            VaultStateChange::Delete => return Err(CoreError::Conflict(format!("Vault '{}' is already deleted.", vault.name))),
            _ => return Err(CoreError::Conflict(format!("Vault '{}' is not deleted; delete it first.", vault.name))),
        };
        let change = Change::new(now, &vault.tenant_id, &actor(auth), context, action, "vault", &vault.name, json!({}));
        self.commit(Batch::one(mutation, change)).await
    }

    /// Grants a vault role to an application (named by client id, object id or service principal
    /// id) or to an administrator (`user:NAME`).
    pub async fn assign_vault_role(
        &self,
        auth: &Authorized<'_>,
        context: &RequestContext,
        principal: &str,
        role: &str,
        scope: &str,
    ) -> Result<VaultRoleAssignment> {
        require(auth, Permission::Administer)?;
        let tenant_id = auth.principal().tenant_id.clone();
        let (principal_id, principal_label) = match principal.strip_prefix("user:") {
            Some(name) => {
                let account =
                    self.store.admin(&tenant_id, &crate::admin::validate_username(name)?).await?.ok_or_else(|| {
                        CoreError::NotFound(format!("No administrator '{}' in this tenant.", identity::truncate(name, 64)))
                    })?;
                (account.id, json!({"principalUser": account.username}))
            }
            None => {
                let application = self.find_application_or_sp(&tenant_id, principal).await?;
                (application.service_principal_id, json!({"principalAppId": application.app_id}))
            }
        };
        let role = VaultRole::parse(role).ok_or_else(|| {
            CoreError::Invalid(format!(
                "'{}' is not a vault role; use one of: {}.",
                identity::truncate(role, 60),
                VaultRole::ALL.iter().map(|r| r.name()).collect::<Vec<_>>().join(", ")
            ))
        })?;
        let scope = policy::parse_scope(scope)?;
        if let Some(vault_name) = scope.strip_prefix("/vaults/").map(|rest| rest.split('/').next().unwrap_or_default().to_string()) {
            self.tenant_vault(&tenant_id, &vault_name).await?;
        }
        let assignment =
            VaultRoleAssignment { id: random::guid(), tenant_id: tenant_id.clone(), principal_id, role, scope, created_at: self.now() };
        let change = Change::new(
            self.now(),
            &tenant_id,
            &actor(auth),
            context,
            "vaultRoleAssignment.create",
            "vaultRoleAssignment",
            &assignment.id,
            {
                let mut details = principal_label;
                details["role"] = json!(role.name());
                details["scope"] = json!(assignment.scope);
                details
            },
        );
        self.commit(Batch::one(Mutation::InsertVaultAssignment(assignment.clone()), change)).await?;
        Ok(assignment)
    }

    /// Vault role assignments of the caller's tenant.
    pub async fn vault_role_assignments(&self, auth: &Authorized<'_>) -> Result<Vec<VaultRoleAssignment>> {
        require(auth, Permission::Read)?;
        self.store.vault_assignments(&auth.principal().tenant_id, None).await
    }

    /// Removes a vault role assignment.
    pub async fn remove_vault_role(&self, auth: &Authorized<'_>, context: &RequestContext, id: &str) -> Result<()> {
        require(auth, Permission::Administer)?;
        let tenant_id = auth.principal().tenant_id.clone();
        let change =
            Change::new(self.now(), &tenant_id, &actor(auth), context, "vaultRoleAssignment.delete", "vaultRoleAssignment", id, json!({}));
        self.commit(Batch::one(Mutation::DeleteVaultAssignment { tenant_id, id: id.to_ascii_lowercase() }, change)).await
    }
}

/// A vault lifecycle change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VaultStateChange {
    /// Soft delete.
    Delete,
    /// Undo a soft delete.
    Recover,
    /// Remove for good.
    Purge,
}

/// At most this many reads share one audit record (bounding a record's size).
const MAX_READS_PER_RECORD: i64 = 256;

/// Merges the records of reads written together: reads by the same principal, of the same
/// version, from the same address and user agent become one record whose details count them and
/// list every read's correlation id. Every read stays in the log; a burst costs one record.
#[derive(Debug, Default)]
pub(super) struct ReadMerger {
    merged: Vec<Change>,
    index: std::collections::HashMap<ReadKey, usize>,
}

impl ReadMerger {
    /// Adds a read's record, or a record that already merges several (a failed flush's).
    fn push(&mut self, mut change: Change) {
        let record = &change.audit;
        let key = (
            record.tenant_id.clone(),
            record.actor.id.clone(),
            record.action.clone(),
            record.target_id.clone(),
            record.details.get("version").and_then(|v| v.as_str()).unwrap_or_default().to_string(),
            record.context.client_ip.clone(),
            record.context.user_agent.clone(),
        );
        let reads = record.details.get("reads").and_then(|v| v.as_i64()).unwrap_or(1);
        let ids = match record.details.get("correlationIds").and_then(|v| v.as_array()) {
            Some(ids) => ids.clone(),
            None => vec![json!(record.context.correlation_id)],
        };
        let fits = |position: &usize| self.merged[*position].audit.details["reads"].as_i64().unwrap_or(1) + reads <= MAX_READS_PER_RECORD;
        match self.index.get(&key).copied().filter(fits) {
            Some(position) => {
                let target = &mut self.merged[position].audit;
                target.details["reads"] = json!(target.details["reads"].as_i64().unwrap_or(1) + reads);
                if let Some(existing) = target.details["correlationIds"].as_array_mut() {
                    existing.extend(ids);
                }
                target.at = change.audit.at;
            }
            None => {
                change.audit.details["reads"] = json!(reads);
                change.audit.details["correlationIds"] = json!(ids);
                self.index.insert(key, self.merged.len());
                self.merged.push(change);
            }
        }
    }

    fn into_changes(self) -> Vec<Change> {
        self.merged
    }
}

fn not_found(name: &str) -> CoreError {
    CoreError::NotFound(format!(
        "SecretNotFound: A secret with (name/id) {name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(correlation: &str, version: &str) -> Change {
        let context = RequestContext { correlation_id: correlation.into(), client_ip: "10.0.0.1".into(), user_agent: "sdk".into() };
        let now = OffsetDateTime::now_utc();
        Change::new(now, "t", &Actor::system("bearer"), &context, "vaultSecret.read", "vaultSecret", "kv/s", json!({"version": version}))
    }

    fn reads(changes: &[Change]) -> i64 {
        changes.iter().map(|c| c.audit.details["reads"].as_i64().unwrap()).sum()
    }

    #[test]
    fn reads_merge_by_version_within_the_cap_and_merged_records_merge_again() {
        let mut merger = ReadMerger::default();
        (0..300).for_each(|i| merger.push(read(&format!("c{i}"), "v1")));
        merger.push(read("other", "v2"));
        let changes = merger.into_changes();
        assert_eq!(changes.len(), 3, "256 + 44 reads of v1, one of v2");
        assert_eq!(changes[0].audit.details["reads"], 256);
        assert_eq!(changes[0].audit.details["correlationIds"].as_array().unwrap().len(), 256);
        assert_eq!(reads(&changes), 301);

        // A failed flush's records merge with newer reads without losing a count or an id.
        let mut again = ReadMerger::default();
        again.push(read("new", "v1"));
        changes.into_iter().for_each(|change| again.push(change));
        let changes = again.into_changes();
        assert_eq!(reads(&changes), 302);
        let ids: usize = changes.iter().map(|c| c.audit.details["correlationIds"].as_array().unwrap().len()).sum();
        assert_eq!(ids, 302);
        assert!(changes.iter().all(|c| c.audit.details["reads"].as_i64().unwrap() <= MAX_READS_PER_RECORD));
    }
}
