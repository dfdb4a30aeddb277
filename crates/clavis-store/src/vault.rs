//! Vault tables: vaults, secrets (soft-delete state), their sealed versions, and vault role
//! assignments.

use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::AnyPool;

use clavis_core::policy::{VaultRole, VaultRoleAssignment};
use clavis_core::revocation::{Revocation, RevocationKind};
use clavis_core::store::Mutation;
use clavis_core::vault::{name_key, DeletedState, Secret, SecretProperties, SecretVersion, Vault};
use clavis_core::{CoreError, Result};

use crate::apply::{change_rows, conflict_or_backend, Tx};
use crate::{backend_error, bytes, instant, int, micros, opt_int, text, Dialect};

const VERSION_COLUMNS: &str =
    "v.vault_id, v.name_key, v.ordinal, v.version, v.data_key_id, v.sealed, v.properties, v.created_at, v.updated_at";

fn deleted_but_recoverable(name: &str) -> CoreError {
    CoreError::Conflict(format!(
        "ObjectIsDeletedButRecoverable: Secret {name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged."
    ))
}

fn secret_not_found(name: &str) -> CoreError {
    CoreError::NotFound(format!(
        "SecretNotFound: A secret with (name/id) {name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
    ))
}

fn deleted_not_found(name: &str) -> CoreError {
    CoreError::NotFound(format!("SecretNotFound: Deleted Secret not found: {name}"))
}

async fn insert_version(tx: &mut Tx<'_>, version: &SecretVersion) -> Result<()> {
    sqlx::query(
        "INSERT INTO vault_secret_versions (vault_id, name_key, ordinal, version, data_key_id, sealed, properties, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&version.vault_id)
    .bind(name_key(&version.name))
    .bind(version.ordinal)
    .bind(&version.version)
    .bind(&version.data_key_id)
    .bind(&version.sealed)
    .bind(json!(version.properties).to_string())
    .bind(micros(version.created))
    .bind(micros(version.updated))
    .execute(&mut **tx)
    .await
    .map_err(|e| conflict_or_backend(e, || format!("Conflict: version {} of secret {} exists", version.version, version.name)))?;
    Ok(())
}

/// Applies one vault mutation inside the batch's transaction.
pub(crate) async fn apply(tx: &mut Tx<'_>, dialect: Dialect, mutation: &Mutation) -> Result<()> {
    match mutation {
        Mutation::InsertVault(vault) => {
            sqlx::query(
                "INSERT INTO vaults (id, tenant_id, name, retention_days, purge_protection, enforce_expiry, rate_limit, created_at, deleted_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL)",
            )
            .bind(&vault.id)
            .bind(&vault.tenant_id)
            .bind(&vault.name)
            .bind(vault.retention_days)
            .bind(i64::from(vault.purge_protection))
            .bind(i64::from(vault.enforce_expiry))
            .bind(vault.rate_limit)
            .bind(micros(vault.created_at))
            .execute(&mut **tx)
            .await
            .map_err(|e| conflict_or_backend(e, || format!("A vault named '{}' already exists (vault names are unique in a Clavis instance).", vault.name)))?;
        }
        Mutation::UpdateVault(vault) => {
            change_rows(tx, sqlx::query("UPDATE vaults SET retention_days = $1, purge_protection = $2, enforce_expiry = $3, rate_limit = $4, deleted_at = $5 WHERE id = $6")
                .bind(vault.retention_days)
                .bind(i64::from(vault.purge_protection))
                .bind(i64::from(vault.enforce_expiry))
                .bind(vault.rate_limit)
                .bind(vault.deleted_at.map(micros))
                .bind(&vault.id), || CoreError::NotFound(format!("Vault '{}' was not found.", vault.name))).await?;
        }
        Mutation::PurgeVault { vault_id, name } => {
            for sql in ["DELETE FROM vault_secret_versions WHERE vault_id = $1", "DELETE FROM vault_secrets WHERE vault_id = $1", "DELETE FROM vaults WHERE id = $1"] {
                sqlx::query(sql).bind(vault_id).execute(&mut **tx).await.map_err(backend_error)?;
            }
            sqlx::query("DELETE FROM vault_role_assignments WHERE scope = $1 OR scope LIKE $2")
                .bind(format!("/vaults/{name}"))
                .bind(format!("/vaults/{name}/%"))
                .execute(&mut **tx)
                .await
                .map_err(backend_error)?;
        }
        Mutation::PutSecretVersion(version) => {
            let key = name_key(&version.name);
            let existing = sqlx::query(&format!("SELECT deleted_at FROM vault_secrets WHERE vault_id = $1 AND name_key = $2{}", dialect.for_update()))
                .bind(&version.vault_id)
                .bind(&key)
                .fetch_optional(&mut **tx)
                .await
                .map_err(backend_error)?;
            match existing {
                Some(row) if opt_int(&row, "deleted_at")?.is_some() => return Err(deleted_but_recoverable(&version.name)),
                Some(_) => {}
                None => {
                    sqlx::query("INSERT INTO vault_secrets (vault_id, name_key, name, deleted_at, scheduled_purge_at) VALUES ($1, $2, $3, NULL, NULL)")
                        .bind(&version.vault_id)
                        .bind(&key)
                        .bind(&version.name)
                        .execute(&mut **tx)
                        .await
                        .map_err(|e| conflict_or_backend(e, || format!("Conflict: secret {} was created concurrently; retry", version.name)))?;
                }
            }
            let next = sqlx::query("SELECT COALESCE(MAX(ordinal), 0) AS n FROM vault_secret_versions WHERE vault_id = $1 AND name_key = $2")
                .bind(&version.vault_id)
                .bind(&key)
                .fetch_one(&mut **tx)
                .await
                .map_err(backend_error)?;
            let mut version = version.clone();
            version.ordinal = int(&next, "n")? + 1;
            insert_version(tx, &version).await?;
        }
        Mutation::UpdateSecretVersion(version) => {
            change_rows(tx, sqlx::query("UPDATE vault_secret_versions SET properties = $1, updated_at = $2 WHERE vault_id = $3 AND name_key = $4 AND version = $5")
                .bind(json!(version.properties).to_string())
                .bind(micros(version.updated))
                .bind(&version.vault_id)
                .bind(name_key(&version.name))
                .bind(&version.version), || secret_not_found(&version.name)).await?;
        }
        Mutation::DeleteSecret { vault_id, name, deleted } => {
            change_rows(tx, sqlx::query("UPDATE vault_secrets SET deleted_at = $1, scheduled_purge_at = $2 WHERE vault_id = $3 AND name_key = $4 AND deleted_at IS NULL")
                .bind(micros(deleted.deleted_at))
                .bind(micros(deleted.scheduled_purge_at))
                .bind(vault_id)
                .bind(name_key(name)), || secret_not_found(name)).await?;
        }
        Mutation::RecoverSecret { vault_id, name } => {
            change_rows(tx, sqlx::query("UPDATE vault_secrets SET deleted_at = NULL, scheduled_purge_at = NULL WHERE vault_id = $1 AND name_key = $2 AND deleted_at IS NOT NULL")
                .bind(vault_id)
                .bind(name_key(name)), || deleted_not_found(name)).await?;
        }
        Mutation::PurgeSecret { vault_id, name } => {
            change_rows(tx, sqlx::query("DELETE FROM vault_secrets WHERE vault_id = $1 AND name_key = $2 AND deleted_at IS NOT NULL")
                .bind(vault_id)
                .bind(name_key(name)), || deleted_not_found(name)).await?;
            sqlx::query("DELETE FROM vault_secret_versions WHERE vault_id = $1 AND name_key = $2")
                .bind(vault_id)
                .bind(name_key(name))
                .execute(&mut **tx)
                .await
                .map_err(backend_error)?;
        }
        Mutation::RestoreSecret(secret) => {
            let key = name_key(&secret.name);
            let existing = sqlx::query("SELECT deleted_at FROM vault_secrets WHERE vault_id = $1 AND name_key = $2")
                .bind(&secret.vault_id)
                .bind(&key)
                .fetch_optional(&mut **tx)
                .await
                .map_err(backend_error)?;
            if let Some(row) = existing {
                return Err(if opt_int(&row, "deleted_at")?.is_some() {
                    deleted_but_recoverable(&secret.name)
                } else {
                    CoreError::Conflict(format!("Conflict: Secret {} already exists. Backup cannot be restored over an existing secret.", secret.name))
                });
            }
            sqlx::query("INSERT INTO vault_secrets (vault_id, name_key, name, deleted_at, scheduled_purge_at) VALUES ($1, $2, $3, NULL, NULL)")
                .bind(&secret.vault_id)
                .bind(&key)
                .bind(&secret.name)
                .execute(&mut **tx)
                .await
                .map_err(|e| conflict_or_backend(e, || format!("Conflict: Secret {} already exists.", secret.name)))?;
            for version in &secret.versions {
                insert_version(tx, version).await?;
            }
        }
        Mutation::PurgeDeletedSecrets(now) => {
            for sql in [
                "DELETE FROM vault_secret_versions WHERE EXISTS (SELECT 1 FROM vault_secrets s WHERE s.vault_id = vault_secret_versions.vault_id AND s.name_key = vault_secret_versions.name_key AND s.scheduled_purge_at IS NOT NULL AND s.scheduled_purge_at <= $1)",
                "DELETE FROM vault_secrets WHERE scheduled_purge_at IS NOT NULL AND scheduled_purge_at <= $1",
            ] {
                sqlx::query(sql).bind(micros(*now)).execute(&mut **tx).await.map_err(backend_error)?;
            }
        }
        Mutation::InsertVaultAssignment(assignment) => {
            sqlx::query("INSERT INTO vault_role_assignments (id, tenant_id, principal_id, role, scope, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(&assignment.id)
                .bind(&assignment.tenant_id)
                .bind(&assignment.principal_id)
                .bind(assignment.role.id())
                .bind(&assignment.scope)
                .bind(micros(assignment.created_at))
                .execute(&mut **tx)
                .await
                .map_err(|e| conflict_or_backend(e, || "The principal already holds this role at this scope.".to_string()))?;
        }
        Mutation::DeleteVaultAssignment { tenant_id, id } => {
            change_rows(tx, sqlx::query("DELETE FROM vault_role_assignments WHERE id = $1 AND tenant_id = $2")
                .bind(id)
                .bind(tenant_id), || CoreError::NotFound(format!("Role assignment '{id}' was not found."))).await?;
        }
        Mutation::Revoke(revocation) => {
            sqlx::query(
                "INSERT INTO revocations (kind, value, tenant_id, reason, revoked_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (kind, value) DO NOTHING",
            )
            .bind(revocation.kind.as_str())
            .bind(&revocation.value)
            .bind(&revocation.tenant_id)
            .bind(&revocation.reason)
            .bind(micros(revocation.revoked_at))
            .bind(micros(revocation.expires_at))
            .execute(&mut **tx)
            .await
            .map_err(backend_error)?;
        }
        Mutation::PurgeRevocations(now) => {
            sqlx::query("DELETE FROM revocations WHERE expires_at <= $1").bind(micros(*now)).execute(&mut **tx).await.map_err(backend_error)?;
        }
        other => crate::events::apply(tx, other).await?,
    }
    Ok(())
}

fn vault_row(row: &AnyRow) -> Result<Vault> {
    Ok(Vault {
        id: text(row, "id")?,
        tenant_id: text(row, "tenant_id")?,
        name: text(row, "name")?,
        retention_days: int(row, "retention_days")?,
        purge_protection: int(row, "purge_protection")? != 0,
        enforce_expiry: int(row, "enforce_expiry")? != 0,
        rate_limit: int(row, "rate_limit")?,
        created_at: instant(int(row, "created_at")?),
        deleted_at: opt_int(row, "deleted_at")?.map(instant),
    })
}

fn version_row(row: &AnyRow, name: &str) -> Result<SecretVersion> {
    let properties: SecretProperties =
        serde_json::from_str(&text(row, "properties")?).map_err(|e| CoreError::Store(format!("secret properties: {e}")))?;
    Ok(SecretVersion {
        vault_id: text(row, "vault_id")?,
        name: name.to_string(),
        version: text(row, "version")?,
        ordinal: int(row, "ordinal")?,
        data_key_id: text(row, "data_key_id")?,
        sealed: bytes(row, "sealed")?,
        properties,
        created: instant(int(row, "created_at")?),
        updated: instant(int(row, "updated_at")?),
    })
}

fn deleted_state(row: &AnyRow) -> Result<Option<DeletedState>> {
    Ok(match (opt_int(row, "deleted_at")?, opt_int(row, "scheduled_purge_at")?) {
        (Some(deleted), Some(purge)) => Some(DeletedState { deleted_at: instant(deleted), scheduled_purge_at: instant(purge) }),
        _ => None,
    })
}

const VAULT_COLUMNS: &str = "id, tenant_id, name, retention_days, purge_protection, enforce_expiry, rate_limit, created_at, deleted_at";

pub(crate) async fn vaults(pool: &AnyPool, tenant_id: &str) -> Result<Vec<Vault>> {
    let rows = sqlx::query(&format!("SELECT {VAULT_COLUMNS} FROM vaults WHERE tenant_id = $1 ORDER BY name"))
        .bind(tenant_id)
        .fetch_all(pool)
        .await
        .map_err(backend_error)?;
    rows.iter().map(vault_row).collect()
}

pub(crate) async fn vault_by_name(pool: &AnyPool, name: &str) -> Result<Option<Vault>> {
    let row = sqlx::query(&format!("SELECT {VAULT_COLUMNS} FROM vaults WHERE name = $1"))
        .bind(name.to_ascii_lowercase())
        .fetch_optional(pool)
        .await
        .map_err(backend_error)?;
    row.as_ref().map(vault_row).transpose()
}

pub(crate) async fn secret(pool: &AnyPool, vault_id: &str, name: &str) -> Result<Option<Secret>> {
    let key = name_key(name);
    let Some(head) = sqlx::query("SELECT name, deleted_at, scheduled_purge_at FROM vault_secrets WHERE vault_id = $1 AND name_key = $2")
        .bind(vault_id)
        .bind(&key)
        .fetch_optional(pool)
        .await
        .map_err(backend_error)?
    else {
        return Ok(None);
    };
    let stored_name = text(&head, "name")?;
    let rows = sqlx::query(&format!(
        "SELECT {VERSION_COLUMNS} FROM vault_secret_versions v WHERE v.vault_id = $1 AND v.name_key = $2 ORDER BY v.ordinal"
    ))
    .bind(vault_id)
    .bind(&key)
    .fetch_all(pool)
    .await
    .map_err(backend_error)?;
    Ok(Some(Secret {
        vault_id: vault_id.to_string(),
        deleted: deleted_state(&head)?,
        versions: rows.iter().map(|row| version_row(row, &stored_name)).collect::<Result<_>>()?,
        name: stored_name,
    }))
}

pub(crate) async fn secrets(pool: &AnyPool, vault_id: &str, deleted: bool, after: &str, limit: i64) -> Result<Vec<Secret>> {
    let condition = if deleted { "s.deleted_at IS NOT NULL" } else { "s.deleted_at IS NULL" };
    let rows = sqlx::query(&format!(
        "SELECT s.name, s.deleted_at, s.scheduled_purge_at, {VERSION_COLUMNS} FROM vault_secrets s \
         JOIN vault_secret_versions v ON v.vault_id = s.vault_id AND v.name_key = s.name_key \
           AND v.ordinal = (SELECT MAX(ordinal) FROM vault_secret_versions m WHERE m.vault_id = s.vault_id AND m.name_key = s.name_key) \
         WHERE s.vault_id = $1 AND {condition} AND s.name_key > $2 ORDER BY s.name_key LIMIT $3"
    ))
    .bind(vault_id)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(backend_error)?;
    rows.iter()
        .map(|row| {
            let name = text(row, "name")?;
            Ok(Secret { vault_id: vault_id.to_string(), deleted: deleted_state(row)?, versions: vec![version_row(row, &name)?], name })
        })
        .collect()
}

pub(crate) async fn vault_assignments(pool: &AnyPool, tenant_id: &str, principal_id: Option<&str>) -> Result<Vec<VaultRoleAssignment>> {
    let rows = sqlx::query(
        "SELECT id, tenant_id, principal_id, role, scope, created_at FROM vault_role_assignments \
         WHERE tenant_id = $1 AND ($2 = '' OR principal_id = $2) ORDER BY created_at, id",
    )
    .bind(tenant_id)
    .bind(principal_id.unwrap_or(""))
    .fetch_all(pool)
    .await
    .map_err(backend_error)?;
    rows.iter()
        .map(|row| {
            let role = text(row, "role")?;
            Ok(VaultRoleAssignment {
                id: text(row, "id")?,
                tenant_id: text(row, "tenant_id")?,
                principal_id: text(row, "principal_id")?,
                role: VaultRole::parse(&role).ok_or_else(|| CoreError::Store(format!("unknown vault role {role}")))?,
                scope: text(row, "scope")?,
                created_at: instant(int(row, "created_at")?),
            })
        })
        .collect()
}

pub(crate) async fn revocations(pool: &AnyPool) -> Result<Vec<Revocation>> {
    let rows = sqlx::query("SELECT kind, value, tenant_id, reason, revoked_at, expires_at FROM revocations ORDER BY revoked_at")
        .fetch_all(pool)
        .await
        .map_err(backend_error)?;
    rows.iter()
        .map(|row| {
            let kind = text(row, "kind")?;
            Ok(Revocation {
                kind: RevocationKind::parse(&kind).ok_or_else(|| CoreError::Store(format!("unknown revocation kind {kind}")))?,
                value: text(row, "value")?,
                tenant_id: text(row, "tenant_id")?,
                reason: text(row, "reason")?,
                revoked_at: instant(int(row, "revoked_at")?),
                expires_at: instant(int(row, "expires_at")?),
            })
        })
        .collect()
}
