//! Audit queries and checkpoints.

use clavis_core::audit::{AuditFilter, AuditRecord, Checkpoint};
use clavis_core::Result;

use crate::{backend_error, instant, int, micros, text, SqlStore};

impl SqlStore {
    pub(crate) async fn query_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>> {
        let action = filter.action.clone().unwrap_or_default();
        let action_pattern = if action.ends_with('.') { format!("{action}%") } else { action.clone() };
        let order = if filter.newest_first { "DESC" } else { "" };
        let rows = sqlx::query(&format!(
            "SELECT seq, at, tenant_id, actor, action, target_type, target_id, result, context, details, prev_hash, hash FROM audit WHERE seq > $1 AND at >= $2 AND at < $3 \
             AND ($4 = '' OR tenant_id = $4 OR tenant_id = '') \
             AND ($5 = '' OR actor LIKE $5) \
             AND ($6 = '' OR target_id = $6) \
             AND ($7 = '' OR action LIKE $7) \
             AND ($8 = '' OR result = $8) \
             ORDER BY seq {order} LIMIT $9"
        ))
        .bind(filter.after)
        .bind(filter.since.map_or(0, micros))
        .bind(filter.until.map_or(i64::MAX, micros))
        .bind(filter.tenant_id.clone().unwrap_or_default())
        .bind(filter.principal.as_ref().map(|p| format!("%\"{}\"%", p.replace(['%', '_', '"'], ""))).unwrap_or_default())
        .bind(filter.target.clone().unwrap_or_default())
        .bind(action_pattern)
        .bind(filter.result.clone().unwrap_or_default())
        .bind(filter.limit.clamp(1, 10_000))
        .fetch_all(self.read_pool())
        .await
        .map_err(backend_error)?;
        rows.iter().map(crate::read::audit_row).collect()
    }

    pub(crate) async fn all_checkpoints(&self) -> Result<Vec<Checkpoint>> {
        let rows = sqlx::query("SELECT seq, hash, at, kid, signature FROM audit_checkpoints ORDER BY seq")
            .fetch_all(self.read_pool())
            .await
            .map_err(backend_error)?;
        rows.iter()
            .map(|row| {
                Ok(Checkpoint {
                    seq: int(row, "seq")?,
                    hash: text(row, "hash")?,
                    at: instant(int(row, "at")?),
                    kid: text(row, "kid")?,
                    jws: text(row, "signature")?,
                })
            })
            .collect()
    }

    pub(crate) async fn add_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_checkpoints (seq, hash, at, kid, signature) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq) DO NOTHING",
        )
        .bind(checkpoint.seq)
        .bind(&checkpoint.hash)
        .bind(micros(checkpoint.at))
        .bind(&checkpoint.kid)
        .bind(&checkpoint.jws)
        .execute(self.write_pool())
        .await
        .map_err(backend_error)?;
        Ok(())
    }
}
