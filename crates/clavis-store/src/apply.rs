//! Writes: every mutation of a batch, its audit records (hash-chained) and its outbox events, in
//! one transaction.

use serde_json::json;
use sqlx::{Any, Transaction};

use clavis_core::audit::{chain_hash, Change};
use clavis_core::identity::Application;
use clavis_core::store::{Batch, Mutation, UsageUpdate};
use clavis_core::{CoreError, Result};

use crate::{backend_error, int, micros, text, Dialect, SqlStore};

pub(crate) type Tx<'a> = Transaction<'a, Any>;

/// Runs a statement of a mutation that must change at least one row: none changed means its
/// target is missing (or moved on), reported as `missing`.
pub(crate) async fn change_rows<'q>(
    tx: &mut Tx<'_>,
    query: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    missing: impl FnOnce() -> CoreError,
) -> Result<()> {
    let done = query.execute(&mut **tx).await.map_err(backend_error)?;
    if done.rows_affected() == 0 {
        return Err(missing());
    }
    Ok(())
}

/// Audit records per INSERT statement (12 parameters each, far below both backends' limits).
const AUDIT_ROWS_PER_STATEMENT: usize = 32;

pub(crate) async fn apply(store: &SqlStore, batch: &Batch) -> Result<()> {
    let mut tx = store.write.begin().await.map_err(backend_error)?;
    for mutation in &batch.mutations {
        apply_one(&mut tx, store.dialect, mutation).await?;
    }
    append_changes(&mut tx, store.dialect, &batch.changes, !batch.mutations.is_empty()).await?;
    tx.commit().await.map_err(backend_error)
}

/// Maps a unique-constraint failure to a conflict with `message`; other failures stay store errors.
pub(crate) fn conflict_or_backend(error: sqlx::Error, message: impl FnOnce() -> String) -> CoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => CoreError::Conflict(message()),
        _ => backend_error(error),
    }
}

async fn apply_one(tx: &mut Tx<'_>, dialect: Dialect, mutation: &Mutation) -> Result<()> {
    match mutation {
        Mutation::InsertWrappedKeys(keys) => {
            for key in keys {
                sqlx::query("INSERT INTO wrapped_keys (id, purpose, master_key_id, wrapped, created_at) VALUES ($1, $2, $3, $4, $5)")
                    .bind(&key.id)
                    .bind(&key.purpose)
                    .bind(&key.master_key_id)
                    .bind(&key.wrapped)
                    .bind(micros(key.created_at))
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| conflict_or_backend(e, || format!("wrapped key {} exists", key.id)))?;
            }
        }
        Mutation::RewrapKeys { expected_master_key_id, keys } => {
            let rows = sqlx::query(&format!("SELECT id, master_key_id FROM wrapped_keys{}", dialect.for_update()))
                .fetch_all(&mut **tx)
                .await
                .map_err(backend_error)?;
            for row in &rows {
                if text(row, "master_key_id")? != *expected_master_key_id {
                    return Err(CoreError::Conflict("the master key was rotated concurrently; try again".into()));
                }
            }
            if rows.len() != keys.len() {
                return Err(CoreError::Conflict("the set of wrapped keys changed during rotation; try again".into()));
            }
            for key in keys {
                let done = sqlx::query("UPDATE wrapped_keys SET wrapped = $1, master_key_id = $2 WHERE id = $3")
                    .bind(&key.wrapped)
                    .bind(&key.master_key_id)
                    .bind(&key.id)
                    .execute(&mut **tx)
                    .await
                    .map_err(backend_error)?;
                if done.rows_affected() != 1 {
                    return Err(CoreError::Conflict(format!("wrapped key {} vanished during rotation", key.id)));
                }
            }
        }
        Mutation::InsertTenant(tenant) => {
            sqlx::query("INSERT INTO tenants (id, display_name, signing_algorithm, policy, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(&tenant.id)
                .bind(&tenant.display_name)
                .bind(tenant.signing_algorithm.as_str())
                .bind(json!(tenant.policy).to_string())
                .bind(micros(tenant.created_at))
                .execute(&mut **tx)
                .await
                .map_err(|e| conflict_or_backend(e, || format!("tenant {} exists", tenant.id)))?;
            for domain in &tenant.domains {
                sqlx::query("INSERT INTO tenant_domains (domain, tenant_id) VALUES ($1, $2)")
                    .bind(domain.to_ascii_lowercase())
                    .bind(&tenant.id)
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| conflict_or_backend(e, || format!("the domain {domain} belongs to another tenant")))?;
            }
        }
        Mutation::UpdateTenant(tenant) => {
            change_rows(
                tx,
                sqlx::query("UPDATE tenants SET display_name = $1, signing_algorithm = $2, policy = $3 WHERE id = $4")
                    .bind(&tenant.display_name)
                    .bind(tenant.signing_algorithm.as_str())
                    .bind(json!(tenant.policy).to_string())
                    .bind(&tenant.id),
                || CoreError::NotFound(format!("tenant {} not found", tenant.id)),
            )
            .await?;
        }
        Mutation::InsertApplication(application) => {
            sqlx::query("INSERT INTO applications (id, tenant_id, app_id, service_principal_id, display_name, body, builtin, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                .bind(&application.id)
                .bind(&application.tenant_id)
                .bind(&application.app_id)
                .bind(&application.service_principal_id)
                .bind(&application.display_name)
                .bind(application_body(application))
                .bind(i64::from(application.builtin))
                .bind(micros(application.created_at))
                .execute(&mut **tx)
                .await
                .map_err(|e| conflict_or_backend(e, || format!("application {} exists", application.id)))?;
            insert_identifier_uris(tx, application).await?;
        }
        Mutation::UpdateApplication(application) => {
            change_rows(
                tx,
                sqlx::query("UPDATE applications SET display_name = $1, body = $2 WHERE id = $3 AND tenant_id = $4")
                    .bind(&application.display_name)
                    .bind(application_body(application))
                    .bind(&application.id)
                    .bind(&application.tenant_id),
                || CoreError::NotFound(format!("Application '{}' was not found in this tenant.", application.id)),
            )
            .await?;
            sqlx::query("DELETE FROM identifier_uris WHERE application_id = $1")
                .bind(&application.id)
                .execute(&mut **tx)
                .await
                .map_err(backend_error)?;
            insert_identifier_uris(tx, application).await?;
        }
        Mutation::DeleteApplication { tenant_id, id } => {
            let row = sqlx::query(&format!(
                "SELECT service_principal_id FROM applications WHERE id = $1 AND tenant_id = $2{}",
                dialect.for_update()
            ))
            .bind(id)
            .bind(tenant_id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(backend_error)?
            .ok_or_else(|| CoreError::NotFound(format!("Application '{id}' was not found in this tenant.")))?;
            let sp = text(&row, "service_principal_id")?;
            for sql in [
                "DELETE FROM credential_usage WHERE key_id IN (SELECT key_id FROM password_credentials WHERE application_id = $1)",
                "DELETE FROM password_credentials WHERE application_id = $1",
                "DELETE FROM identifier_uris WHERE application_id = $1",
            ] {
                sqlx::query(sql).bind(id).execute(&mut **tx).await.map_err(backend_error)?;
            }
            sqlx::query("DELETE FROM app_role_assignments WHERE principal_id = $1 OR resource_id = $1")
                .bind(&sp)
                .execute(&mut **tx)
                .await
                .map_err(backend_error)?;
            sqlx::query("DELETE FROM applications WHERE id = $1").bind(id).execute(&mut **tx).await.map_err(backend_error)?;
        }
        Mutation::AddPassword { tenant_id, application_id, credential, max } => {
            // Lock the application row so concurrent additions count each other.
            sqlx::query(&format!("SELECT id FROM applications WHERE id = $1 AND tenant_id = $2{}", dialect.for_update()))
                .bind(application_id)
                .bind(tenant_id)
                .fetch_optional(&mut **tx)
                .await
                .map_err(backend_error)?
                .ok_or_else(|| CoreError::NotFound(format!("Application '{application_id}' was not found in this tenant.")))?;
            let count = sqlx::query("SELECT COUNT(*) AS n FROM password_credentials WHERE application_id = $1")
                .bind(application_id)
                .fetch_one(&mut **tx)
                .await
                .map_err(backend_error)?;
            if int(&count, "n")? >= *max {
                return Err(CoreError::Conflict(format!(
                    "The application already holds {max} client secrets, the most the tenant's credential policy allows (maxPasswordsPerApplication); remove one first."
                )));
            }
            sqlx::query("INSERT INTO password_credentials (key_id, tenant_id, application_id, display_name, hint, secret_hash, start_at, end_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
                .bind(&credential.key_id)
                .bind(tenant_id)
                .bind(application_id)
                .bind(credential.display_name.clone())
                .bind(&credential.hint)
                .bind(credential.hash.as_bytes())
                .bind(micros(credential.start))
                .bind(micros(credential.end))
                .bind(micros(credential.created_at))
                .execute(&mut **tx)
                .await
                .map_err(|e| conflict_or_backend(e, || format!("credential {} exists", credential.key_id)))?;
        }
        Mutation::RemovePassword { tenant_id, application_id, key_id } => {
            change_rows(
                tx,
                sqlx::query("DELETE FROM password_credentials WHERE key_id = $1 AND application_id = $2 AND tenant_id = $3")
                    .bind(key_id)
                    .bind(application_id)
                    .bind(tenant_id),
                || CoreError::NotFound(format!("The application has no password credential with keyId '{key_id}'.")),
            )
            .await?;
            sqlx::query("DELETE FROM credential_usage WHERE key_id = $1").bind(key_id).execute(&mut **tx).await.map_err(backend_error)?;
        }
        Mutation::InsertAssignment(assignment) => {
            sqlx::query("INSERT INTO app_role_assignments (id, tenant_id, principal_id, resource_id, app_role_id, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(&assignment.id)
                .bind(&assignment.tenant_id)
                .bind(&assignment.principal_id)
                .bind(&assignment.resource_id)
                .bind(&assignment.app_role_id)
                .bind(micros(assignment.created_date_time))
                .execute(&mut **tx)
                .await
                .map_err(|e| conflict_or_backend(e, || "The application already holds this app role.".to_string()))?;
        }
        Mutation::DeleteAssignment { tenant_id, id } => {
            change_rows(
                tx,
                sqlx::query("DELETE FROM app_role_assignments WHERE id = $1 AND tenant_id = $2").bind(id).bind(tenant_id),
                || CoreError::NotFound(format!("App role assignment '{id}' was not found.")),
            )
            .await?;
        }
        Mutation::InsertSigningKey { key, retire } => {
            sqlx::query("INSERT INTO signing_keys (kid, tenant_id, algorithm, data_key_id, sealed, created_at, activate_at, expire_at) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)")
                .bind(&key.kid)
                .bind(&key.tenant_id)
                .bind(key.algorithm.as_str())
                .bind(&key.data_key_id)
                .bind(&key.sealed)
                .bind(micros(key.created_at))
                .bind(micros(key.activate_at))
                .execute(&mut **tx)
                .await
                .map_err(|e| conflict_or_backend(e, || format!("signing key {} exists", key.kid)))?;
            for (kid, expire_at) in retire {
                sqlx::query("UPDATE signing_keys SET expire_at = $1 WHERE kid = $2 AND expire_at IS NULL")
                    .bind(micros(*expire_at))
                    .bind(kid)
                    .execute(&mut **tx)
                    .await
                    .map_err(backend_error)?;
            }
        }
        Mutation::DeleteExpiredSigningKeys(now) => {
            sqlx::query("DELETE FROM signing_keys WHERE expire_at IS NOT NULL AND expire_at <= $1")
                .bind(micros(*now))
                .execute(&mut **tx)
                .await
                .map_err(backend_error)?;
        }
        other => crate::vault::apply(tx, dialect, other).await?,
    }
    Ok(())
}

pub(crate) fn application_body(application: &Application) -> String {
    json!({
        "identifierUris": application.identifier_uris,
        "appRoles": application.app_roles,
        "requestedAccessTokenVersion": application.requested_access_token_version,
        "credentialPolicy": application.credential_policy,
    })
    .to_string()
}

async fn insert_identifier_uris(tx: &mut Tx<'_>, application: &Application) -> Result<()> {
    for uri in &application.identifier_uris {
        sqlx::query("INSERT INTO identifier_uris (tenant_id, uri, application_id) VALUES ($1, $2, $3)")
            .bind(&application.tenant_id)
            .bind(clavis_core::token::normalize_resource(uri))
            .bind(&application.id)
            .execute(&mut **tx)
            .await
            .map_err(|e| {
                conflict_or_backend(e, || format!("The identifier URI '{uri}' is already used by another application in this tenant."))
            })?;
    }
    Ok(())
}

/// Appends the batch's audit records to the chain and its events to the outbox. The chain head
/// row is locked for the transaction, so appends from several nodes serialize.
async fn append_changes(tx: &mut Tx<'_>, dialect: Dialect, changes: &[Change], state_changed: bool) -> Result<()> {
    if changes.is_empty() {
        return Err(CoreError::Internal("a state change without an audit record was refused".into()));
    }
    let head = sqlx::query(&format!("SELECT seq, hash FROM audit_head WHERE id = 1{}", dialect.for_update()))
        .fetch_one(&mut **tx)
        .await
        .map_err(backend_error)?;
    let mut seq = int(&head, "seq")?;
    let mut prev_hash = text(&head, "hash")?;
    let mut records = Vec::with_capacity(changes.len());
    for change in changes {
        let mut record = change.audit.clone();
        seq += 1;
        record.seq = seq;
        record.prev_hash = prev_hash.clone();
        record.hash = chain_hash(&record);
        prev_hash = record.hash.clone();
        records.push(record);
    }
    // Many records (a group of audited reads) go in a few multi-row statements.
    for chunk in records.chunks(AUDIT_ROWS_PER_STATEMENT) {
        let tuples: Vec<String> = (0..chunk.len())
            .map(|i| {
                let p = i * 12;
                format!(
                    "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                    p + 1,
                    p + 2,
                    p + 3,
                    p + 4,
                    p + 5,
                    p + 6,
                    p + 7,
                    p + 8,
                    p + 9,
                    p + 10,
                    p + 11,
                    p + 12
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO audit (seq, at, tenant_id, actor, action, target_type, target_id, result, context, details, prev_hash, hash) VALUES {}",
            tuples.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for record in chunk {
            query = query
                .bind(record.seq)
                .bind(micros(record.at))
                .bind(record.tenant_id.clone())
                .bind(json!(record.actor).to_string())
                .bind(record.action.clone())
                .bind(record.target_type.clone())
                .bind(record.target_id.clone())
                .bind(record.result.clone())
                .bind(json!(record.context).to_string())
                .bind(record.details.to_string())
                .bind(record.prev_hash.clone())
                .bind(record.hash.clone());
        }
        query.execute(&mut **tx).await.map_err(backend_error)?;
    }
    for event in changes.iter().flat_map(|c| &c.events) {
        sqlx::query("INSERT INTO events (id, at, tenant_id, event_type, subject, data) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&event.id)
            .bind(micros(event.at))
            .bind(&event.tenant_id)
            .bind(&event.event_type)
            .bind(&event.subject)
            .bind(event.data.to_string())
            .execute(&mut **tx)
            .await
            .map_err(backend_error)?;
    }
    // `changes` counts batches that changed state (not records of reads): nodes poll it to
    // know when to drop their caches.
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2, changes = changes + $3 WHERE id = 1")
        .bind(seq)
        .bind(&prev_hash)
        .bind(i64::from(state_changed))
        .execute(&mut **tx)
        .await
        .map_err(backend_error)?;
    Ok(())
}

/// Upserts last-use records in one transaction. Usage of a credential removed meanwhile is
/// dropped (the `EXISTS` guard), so no orphan rows appear.
pub(crate) async fn record_usage(store: &SqlStore, batch: &[UsageUpdate]) -> Result<()> {
    let mut tx = store.write.begin().await.map_err(backend_error)?;
    for update in batch {
        sqlx::query(
            "INSERT INTO credential_usage (key_id, last_used_at, last_ip, use_count) \
             SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM password_credentials WHERE key_id = $1) \
             ON CONFLICT (key_id) DO UPDATE SET \
               last_ip = CASE WHEN excluded.last_used_at >= credential_usage.last_used_at THEN excluded.last_ip ELSE credential_usage.last_ip END, \
               last_used_at = CASE WHEN excluded.last_used_at >= credential_usage.last_used_at THEN excluded.last_used_at ELSE credential_usage.last_used_at END, \
               use_count = credential_usage.use_count + excluded.use_count",
        )
        .bind(&update.key_id)
        .bind(micros(update.at))
        .bind(&update.ip)
        .bind(update.count)
        .execute(&mut *tx)
        .await
        .map_err(backend_error)?;
    }
    tx.commit().await.map_err(backend_error)
}
