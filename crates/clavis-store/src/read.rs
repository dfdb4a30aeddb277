//! Reads. They go to the read pool, so they never wait behind a write transaction.

use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::AnyPool;

use clavis_core::audit::{AuditRecord, DomainEvent};
use clavis_core::credential::{CredentialUsage, PasswordCredential};
use clavis_core::identity::{AppRole, AppRoleAssignment, Application, Tenant};
use clavis_core::store::{AssignmentFilter, StoredSigningKey, WrappedKey};
use clavis_core::{CoreError, Result};
use clavis_crypto::{Algorithm, HashedClientSecret};

use crate::{backend_error, bytes, instant, int, opt_int, opt_text, text};

fn json(row: &AnyRow, column: &str) -> Result<Value> {
    serde_json::from_str(&text(row, column)?).map_err(|e| CoreError::Store(format!("column {column} holds malformed JSON: {e}")))
}

fn algorithm(name: &str) -> Result<Algorithm> {
    Algorithm::parse(name).ok_or_else(|| CoreError::Store(format!("unknown signing algorithm {name}")))
}

pub(crate) async fn wrapped_keys(pool: &AnyPool) -> Result<Vec<WrappedKey>> {
    let rows = sqlx::query("SELECT id, purpose, master_key_id, wrapped, created_at FROM wrapped_keys ORDER BY created_at, id")
        .fetch_all(pool)
        .await
        .map_err(backend_error)?;
    rows.iter()
        .map(|row| {
            Ok(WrappedKey {
                id: text(row, "id")?,
                purpose: text(row, "purpose")?,
                master_key_id: text(row, "master_key_id")?,
                wrapped: bytes(row, "wrapped")?,
                created_at: instant(int(row, "created_at")?),
            })
        })
        .collect()
}

pub(crate) async fn tenants(pool: &AnyPool) -> Result<Vec<Tenant>> {
    let rows = sqlx::query("SELECT id, display_name, signing_algorithm, policy, created_at FROM tenants ORDER BY created_at, id")
        .fetch_all(pool)
        .await
        .map_err(backend_error)?;
    let domains =
        sqlx::query("SELECT domain, tenant_id FROM tenant_domains ORDER BY domain").fetch_all(pool).await.map_err(backend_error)?;
    rows.iter()
        .map(|row| {
            let id = text(row, "id")?;
            let tenant_domains = domains
                .iter()
                .filter(|d| text(d, "tenant_id").is_ok_and(|t| t == id))
                .map(|d| text(d, "domain"))
                .collect::<Result<Vec<_>>>()?;
            Ok(Tenant {
                display_name: text(row, "display_name")?,
                domains: tenant_domains,
                signing_algorithm: algorithm(&text(row, "signing_algorithm")?)?,
                policy: serde_json::from_value(json(row, "policy")?).map_err(|e| CoreError::Store(format!("tenant policy: {e}")))?,
                created_at: instant(int(row, "created_at")?),
                id,
            })
        })
        .collect()
}

/// Applications matching `filter` (SQL over `applications`, with `$N` binds), with credentials.
pub(crate) async fn applications(pool: &AnyPool, filter: &str, binds: &[&str]) -> Result<Vec<Application>> {
    let sql = format!("SELECT id, tenant_id, app_id, service_principal_id, display_name, body, builtin, created_at FROM applications WHERE {filter} ORDER BY display_name, id");
    let mut query = sqlx::query(&sql);
    for bind in binds {
        query = query.bind(*bind);
    }
    let rows = query.fetch_all(pool).await.map_err(backend_error)?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let credential_sql = format!(
        "SELECT c.key_id, c.application_id, c.display_name, c.hint, c.secret_hash, c.start_at, c.end_at, c.created_at, u.last_used_at, u.last_ip, u.use_count \
         FROM password_credentials c LEFT JOIN credential_usage u ON u.key_id = c.key_id \
         WHERE c.application_id IN (SELECT id FROM applications WHERE {filter}) ORDER BY c.created_at, c.key_id"
    );
    let mut query = sqlx::query(&credential_sql);
    for bind in binds {
        query = query.bind(*bind);
    }
    let credential_rows = query.fetch_all(pool).await.map_err(backend_error)?;
    // Grouped by application: matching them per application by scanning would be quadratic.
    let mut credentials: std::collections::HashMap<String, Vec<PasswordCredential>> = std::collections::HashMap::new();
    for row in &credential_rows {
        let usage = match opt_int(row, "last_used_at")? {
            Some(at) => Some(CredentialUsage {
                last_used_date_time: instant(at),
                last_used_ip: opt_text(row, "last_ip")?.unwrap_or_default(),
                use_count: opt_int(row, "use_count")?.unwrap_or(0),
            }),
            None => None,
        };
        credentials.entry(text(row, "application_id")?).or_default().push(PasswordCredential {
            key_id: text(row, "key_id")?,
            display_name: opt_text(row, "display_name")?,
            hint: text(row, "hint")?,
            start: instant(int(row, "start_at")?),
            end: instant(int(row, "end_at")?),
            hash: HashedClientSecret::from_stored(bytes(row, "secret_hash")?),
            created_at: instant(int(row, "created_at")?),
            usage,
        });
    }
    rows.iter()
        .map(|row| {
            let id = text(row, "id")?;
            let body = json(row, "body")?;
            let identifier_uris = serde_json::from_value(body.get("identifierUris").cloned().unwrap_or(Value::Array(vec![])))
                .map_err(|e| CoreError::Store(format!("identifierUris: {e}")))?;
            let app_roles: Vec<AppRole> = serde_json::from_value(body.get("appRoles").cloned().unwrap_or(Value::Array(vec![])))
                .map_err(|e| CoreError::Store(format!("appRoles: {e}")))?;
            let credential_policy = match body.get("credentialPolicy") {
                None | Some(Value::Null) => None,
                Some(value) => Some(serde_json::from_value(value.clone()).map_err(|e| CoreError::Store(format!("credentialPolicy: {e}")))?),
            };
            let version = body.get("requestedAccessTokenVersion").and_then(Value::as_u64).and_then(|v| u8::try_from(v).ok());
            Ok(Application {
                password_credentials: credentials.remove(&id).unwrap_or_default(),
                app_id: text(row, "app_id")?,
                tenant_id: text(row, "tenant_id")?,
                service_principal_id: text(row, "service_principal_id")?,
                display_name: text(row, "display_name")?,
                identifier_uris,
                app_roles,
                requested_access_token_version: version,
                builtin: int(row, "builtin")? != 0,
                credential_policy,
                created_at: instant(int(row, "created_at")?),
                id,
            })
        })
        .collect()
}

pub(crate) async fn assignments(pool: &AnyPool, tenant_id: &str, filter: &AssignmentFilter) -> Result<Vec<AppRoleAssignment>> {
    let rows = sqlx::query(
        "SELECT id, tenant_id, principal_id, resource_id, app_role_id, created_at FROM app_role_assignments \
         WHERE tenant_id = $1 AND ($2 = '' OR principal_id = $2) AND ($3 = '' OR resource_id = $3) ORDER BY created_at, id",
    )
    .bind(tenant_id)
    .bind(filter.principal_id.as_deref().unwrap_or(""))
    .bind(filter.resource_id.as_deref().unwrap_or(""))
    .fetch_all(pool)
    .await
    .map_err(backend_error)?;
    rows.iter()
        .map(|row| {
            Ok(AppRoleAssignment {
                id: text(row, "id")?,
                tenant_id: text(row, "tenant_id")?,
                principal_id: text(row, "principal_id")?,
                resource_id: text(row, "resource_id")?,
                app_role_id: text(row, "app_role_id")?,
                created_date_time: instant(int(row, "created_at")?),
            })
        })
        .collect()
}

pub(crate) async fn signing_keys(pool: &AnyPool) -> Result<Vec<StoredSigningKey>> {
    let rows = sqlx::query("SELECT kid, tenant_id, algorithm, data_key_id, sealed, created_at, activate_at, expire_at FROM signing_keys ORDER BY activate_at, kid")
        .fetch_all(pool)
        .await
        .map_err(backend_error)?;
    rows.iter()
        .map(|row| {
            Ok(StoredSigningKey {
                kid: text(row, "kid")?,
                tenant_id: text(row, "tenant_id")?,
                algorithm: algorithm(&text(row, "algorithm")?)?,
                data_key_id: text(row, "data_key_id")?,
                sealed: bytes(row, "sealed")?,
                created_at: instant(int(row, "created_at")?),
                activate_at: instant(int(row, "activate_at")?),
                expire_at: opt_int(row, "expire_at")?.map(instant),
            })
        })
        .collect()
}

pub(crate) async fn audit_records(pool: &AnyPool, after: i64, limit: i64) -> Result<Vec<AuditRecord>> {
    let rows = sqlx::query(
        "SELECT seq, at, tenant_id, actor, action, target_type, target_id, result, context, details, prev_hash, hash FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(backend_error)?;
    rows.iter().map(audit_row).collect()
}

/// An audit record from a row of `audit` (all columns).
pub(crate) fn audit_row(row: &AnyRow) -> Result<AuditRecord> {
    {
        {
            Ok(AuditRecord {
                seq: int(row, "seq")?,
                at: instant(int(row, "at")?),
                tenant_id: text(row, "tenant_id")?,
                actor: serde_json::from_value(json(row, "actor")?).map_err(|e| CoreError::Store(format!("audit actor: {e}")))?,
                action: text(row, "action")?,
                target_type: text(row, "target_type")?,
                target_id: text(row, "target_id")?,
                result: text(row, "result")?,
                context: serde_json::from_value(json(row, "context")?).map_err(|e| CoreError::Store(format!("audit context: {e}")))?,
                details: json(row, "details")?,
                prev_hash: text(row, "prev_hash")?,
                hash: text(row, "hash")?,
            })
        }
    }
}

pub(crate) async fn events(pool: &AnyPool, after: i64, limit: i64) -> Result<Vec<(i64, DomainEvent)>> {
    // A negative `after` asks for the latest events: read them newest first, return them in order.
    let order = if after < 0 { "DESC" } else { "" };
    let mut rows = sqlx::query(&format!(
        "SELECT seq, id, at, tenant_id, event_type, subject, data FROM events WHERE seq > $1 ORDER BY seq {order} LIMIT $2"
    ))
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(backend_error)?;
    if after < 0 {
        rows.reverse();
    }
    rows.iter()
        .map(|row| {
            Ok((
                int(row, "seq")?,
                DomainEvent {
                    id: text(row, "id")?,
                    event_type: text(row, "event_type")?,
                    tenant_id: text(row, "tenant_id")?,
                    subject: text(row, "subject")?,
                    at: instant(int(row, "at")?),
                    data: json(row, "data")?,
                },
            ))
        })
        .collect()
}
