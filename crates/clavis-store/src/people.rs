//! Administrator accounts and their portal sessions.

use sqlx::any::AnyRow;
use sqlx::AnyPool;
use time::OffsetDateTime;

use clavis_core::admin::{AdminAccount, PortalSession};
use clavis_core::store::Mutation;
use clavis_core::{CoreError, Result};

use crate::apply::{change_rows, conflict_or_backend, Tx};
use crate::{backend_error, instant, int, micros, text};

/// Applies one account or session mutation inside the batch's transaction.
pub(crate) async fn apply(tx: &mut Tx<'_>, mutation: &Mutation) -> Result<()> {
    match mutation {
        Mutation::InsertAdmin(admin) => {
            sqlx::query(
                "INSERT INTO admins (id, tenant_id, username, password_hash, role, disabled, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&admin.id)
            .bind(&admin.tenant_id)
            .bind(&admin.username)
            .bind(&admin.password_hash)
            .bind(&admin.role)
            .bind(i64::from(admin.disabled))
            .bind(micros(admin.created_at))
            .bind(micros(admin.updated_at))
            .execute(&mut **tx)
            .await
            .map_err(|e| conflict_or_backend(e, || format!("An administrator named '{}' already exists.", admin.username)))?;
        }
        Mutation::UpdateAdmin { admin, end_sessions } => {
            change_rows(
                tx,
                sqlx::query("UPDATE admins SET password_hash = $1, role = $2, disabled = $3, updated_at = $4 WHERE id = $5")
                    .bind(&admin.password_hash)
                    .bind(&admin.role)
                    .bind(i64::from(admin.disabled))
                    .bind(micros(admin.updated_at))
                    .bind(&admin.id),
                || CoreError::NotFound(format!("No administrator '{}'.", admin.username)),
            )
            .await?;
            if *end_sessions {
                sqlx::query("DELETE FROM portal_sessions WHERE admin_id = $1")
                    .bind(&admin.id)
                    .execute(&mut **tx)
                    .await
                    .map_err(backend_error)?;
            }
        }
        Mutation::InsertSession(session) => {
            sqlx::query(
                "INSERT INTO portal_sessions (id_hash, admin_id, tenant_id, csrf, created_at, last_seen_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&session.id_hash)
            .bind(&session.admin_id)
            .bind(&session.tenant_id)
            .bind(&session.csrf)
            .bind(micros(session.created_at))
            .bind(micros(session.last_seen_at))
            .bind(micros(session.expires_at))
            .execute(&mut **tx)
            .await
            .map_err(|e| conflict_or_backend(e, || "session exists".into()))?;
        }
        Mutation::DeleteSession { id_hash } => {
            sqlx::query("DELETE FROM portal_sessions WHERE id_hash = $1").bind(id_hash).execute(&mut **tx).await.map_err(backend_error)?;
        }
        other => crate::bulk::apply(tx, other).await?,
    }
    Ok(())
}

const ADMIN_COLUMNS: &str = "id, tenant_id, username, password_hash, role, disabled, created_at, updated_at";

fn admin_row(row: &AnyRow) -> Result<AdminAccount> {
    Ok(AdminAccount {
        id: text(row, "id")?,
        tenant_id: text(row, "tenant_id")?,
        username: text(row, "username")?,
        password_hash: text(row, "password_hash")?,
        role: text(row, "role")?,
        disabled: int(row, "disabled")? != 0,
        created_at: instant(int(row, "created_at")?),
        updated_at: instant(int(row, "updated_at")?),
    })
}

pub(crate) async fn admins(pool: &AnyPool, tenant_id: &str) -> Result<Vec<AdminAccount>> {
    let rows = sqlx::query(&format!("SELECT {ADMIN_COLUMNS} FROM admins WHERE tenant_id = $1 ORDER BY username"))
        .bind(tenant_id)
        .fetch_all(pool)
        .await
        .map_err(backend_error)?;
    rows.iter().map(admin_row).collect()
}

pub(crate) async fn admin(pool: &AnyPool, tenant_id: &str, id_or_name: &str) -> Result<Option<AdminAccount>> {
    let row = sqlx::query(&format!("SELECT {ADMIN_COLUMNS} FROM admins WHERE tenant_id = $1 AND (id = $2 OR username = $2)"))
        .bind(tenant_id)
        .bind(id_or_name)
        .fetch_optional(pool)
        .await
        .map_err(backend_error)?;
    row.as_ref().map(admin_row).transpose()
}

pub(crate) async fn session(pool: &AnyPool, id_hash: &str) -> Result<Option<PortalSession>> {
    let row = sqlx::query(
        "SELECT id_hash, admin_id, tenant_id, csrf, created_at, last_seen_at, expires_at FROM portal_sessions WHERE id_hash = $1",
    )
    .bind(id_hash)
    .fetch_optional(pool)
    .await
    .map_err(backend_error)?;
    row.map(|row| {
        Ok(PortalSession {
            id_hash: text(&row, "id_hash")?,
            admin_id: text(&row, "admin_id")?,
            tenant_id: text(&row, "tenant_id")?,
            csrf: text(&row, "csrf")?,
            created_at: instant(int(&row, "created_at")?),
            last_seen_at: instant(int(&row, "last_seen_at")?),
            expires_at: instant(int(&row, "expires_at")?),
        })
    })
    .transpose()
}

pub(crate) async fn touch_session(pool: &AnyPool, id_hash: &str, at: OffsetDateTime) -> Result<()> {
    sqlx::query("UPDATE portal_sessions SET last_seen_at = $1 WHERE id_hash = $2 AND last_seen_at < $1")
        .bind(micros(at))
        .bind(id_hash)
        .execute(pool)
        .await
        .map_err(backend_error)?;
    Ok(())
}

pub(crate) async fn purge_sessions(pool: &AnyPool, now: OffsetDateTime, idle_before: OffsetDateTime) -> Result<u64> {
    let done = sqlx::query("DELETE FROM portal_sessions WHERE expires_at <= $1 OR last_seen_at <= $2")
        .bind(micros(now))
        .bind(micros(idle_before))
        .execute(pool)
        .await
        .map_err(backend_error)?;
    Ok(done.rows_affected())
}
