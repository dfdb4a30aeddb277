//! Copying a whole instance between stores (`clavis migrate --from … --to …`): SQLite to
//! PostgreSQL when one node is no longer enough, PostgreSQL to SQLite for a local copy.
//!
//! Rows are copied verbatim, table by table in dependency order, inside one transaction on the
//! target, so a failed copy leaves the target as it was. Nothing is decrypted or re-encrypted:
//! the target opens with the same master key. The audit chain keeps its sequence numbers and
//! hashes, and is verified on the target before the copy is reported done.

use futures_util::TryStreamExt as _;
use sqlx::any::AnyRow;
use sqlx::Row as _;

use clavis_core::{CoreError, Result};

use crate::bulk::{insert_rows, Value};
use crate::{backend_error, Dialect, SqlStore};

/// Rows read from the source before they are written to the target.
const COPY_CHUNK: usize = 5_000;

/// Every table of the schema, parents before children. Node-local runtime state (job leases,
/// portal sessions) is not copied: nodes take leases afresh and people sign in again.
pub const TABLES: &[&str] = &[
    "wrapped_keys",
    "tenants",
    "tenant_domains",
    "applications",
    "identifier_uris",
    "password_credentials",
    "credential_usage",
    "app_role_assignments",
    "signing_keys",
    "audit_head",
    "audit",
    "events",
    "vaults",
    "vault_secrets",
    "vault_secret_versions",
    "vault_role_assignments",
    "revocations",
    "notices",
    "subscriptions",
    "deliveries",
    "cursors",
    "rotation_policies",
    "signins",
    "request_failures",
    "audit_checkpoints",
    "admins",
];

/// Tables that exist but are deliberately not copied (see [`TABLES`]); they are emptied on the
/// target.
pub const NOT_COPIED: &[&str] = &["leases", "portal_sessions"];

/// What a copy did: rows per table, and the audit records verified on the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// (table, rows copied), in copy order.
    pub tables: Vec<(&'static str, i64)>,
    /// Audit records whose chain verified on the target.
    pub audit_records: i64,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Int,
    Text,
    Bytes,
}

fn kind(declared: &str) -> Result<Kind> {
    let lowered = declared.to_ascii_lowercase();
    if lowered.contains("int") {
        Ok(Kind::Int)
    } else if lowered.contains("text") || lowered.contains("char") {
        Ok(Kind::Text)
    } else if lowered.contains("blob") || lowered.contains("bytea") {
        Ok(Kind::Bytes)
    } else {
        Err(CoreError::Internal(format!("column type '{declared}' has no copy rule")))
    }
}

impl SqlStore {
    /// The columns of a table with their kinds, in declaration order.
    async fn columns(&self, table: &str) -> Result<Vec<(String, Kind)>> {
        let sqlite = format!("SELECT name, type FROM pragma_table_info('{table}') ORDER BY cid");
        let rows = match self.dialect {
            Dialect::Sqlite => sqlx::query(&sqlite),
            Dialect::Postgres => sqlx::query(
                "SELECT column_name::text AS name, data_type::text AS type FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            )
            .bind(table),
        }
        .fetch_all(&self.read)
        .await
        .map_err(backend_error)?;
        let columns = rows
            .iter()
            .map(|row| {
                let name: String = row.try_get("name").map_err(backend_error)?;
                let declared: String = row.try_get("type").map_err(backend_error)?;
                Ok((name, kind(&declared)?))
            })
            .collect::<Result<Vec<_>>>()?;
        if columns.is_empty() {
            return Err(CoreError::Internal(format!("table {table} not found")));
        }
        Ok(columns)
    }

    async fn count(&self, table: &str) -> Result<i64> {
        let row = sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}")).fetch_one(&self.read).await.map_err(backend_error)?;
        row.try_get::<i64, _>("n").map_err(backend_error)
    }

    /// Whether the store holds an instance (a tenant, a key or an audit record).
    pub async fn holds_instance(&self) -> Result<bool> {
        for table in ["tenants", "wrapped_keys", "audit"] {
            if self.count(table).await? > 0 {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Rows of every copied table, for comparing two stores.
    pub async fn table_counts(&self) -> Result<Vec<(&'static str, i64)>> {
        let mut counts = Vec::with_capacity(TABLES.len());
        for table in TABLES {
            counts.push((*table, self.count(table).await?));
        }
        Ok(counts)
    }

    /// Every row of a table as text, ordered, for comparing two stores in tests and checks.
    pub async fn dump_table(&self, table: &str) -> Result<Vec<String>> {
        let columns = self.columns(table).await?;
        let rows = sqlx::query(&format!("SELECT * FROM {table} ORDER BY 1, 2")).fetch_all(&self.read).await.map_err(backend_error)?;
        rows.iter()
            .map(|row| {
                let mut fields = Vec::with_capacity(columns.len());
                for (name, kind) in &columns {
                    fields.push(match read_value(row, name, *kind)? {
                        Value::Int(v) => format!("{v:?}"),
                        Value::Text(v) => format!("{v:?}"),
                        Value::Bytes(v) => format!("{:?}", v.map(|b| clavis_crypto::hex(&b))),
                    });
                }
                Ok(fields.join("|"))
            })
            .collect()
    }
}

fn read_value(row: &AnyRow, name: &str, kind: Kind) -> Result<Value> {
    Ok(match kind {
        Kind::Int => Value::Int(row.try_get(name).map_err(backend_error)?),
        Kind::Text => Value::Text(row.try_get(name).map_err(backend_error)?),
        Kind::Bytes => Value::Bytes(row.try_get(name).map_err(backend_error)?),
    })
}

/// Copies the instance in `source` into `target`. A target that already holds an instance is
/// refused unless `force`, in which case its rows are replaced. `progress` hears each table done.
pub async fn copy_instance(source: &SqlStore, target: &SqlStore, force: bool, progress: impl Fn(&str, i64)) -> Result<CopyReport> {
    if !source.holds_instance().await? {
        return Err(CoreError::Invalid("the source store holds no Clavis instance".into()));
    }
    if target.holds_instance().await? && !force {
        return Err(CoreError::Conflict(
            "the target store already holds a Clavis instance; pass --force to replace everything in it".into(),
        ));
    }
    // Every table is read inside one transaction of the source: a consistent snapshot, even of a
    // live instance (PostgreSQL: repeatable read; SQLite: one read transaction in WAL mode).
    let mut snapshot = source.read.begin().await.map_err(backend_error)?;
    if source.dialect == Dialect::Postgres {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *snapshot).await.map_err(backend_error)?;
    }
    let mut tx = target.write.begin().await.map_err(backend_error)?;
    for table in TABLES.iter().rev().chain(NOT_COPIED) {
        sqlx::query(&format!("DELETE FROM {table}")).execute(&mut *tx).await.map_err(backend_error)?;
    }
    let mut report = CopyReport { tables: Vec::with_capacity(TABLES.len()), audit_records: 0 };
    for table in TABLES {
        let columns = source.columns(table).await?;
        let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
        let mut copied = 0_i64;
        let mut pending: Vec<Vec<Value>> = Vec::with_capacity(COPY_CHUNK);
        let select = format!("SELECT {} FROM {table}", names.join(", "));
        {
            let mut rows = sqlx::query(&select).fetch(&mut *snapshot);
            while let Some(row) = rows.try_next().await.map_err(backend_error)? {
                pending.push(columns.iter().map(|(name, kind)| read_value(&row, name, *kind)).collect::<Result<_>>()?);
                if pending.len() == COPY_CHUNK {
                    copied += insert_rows(&mut tx, table, &names, std::mem::take(&mut pending)).await?;
                }
            }
        }
        if !pending.is_empty() {
            copied += insert_rows(&mut tx, table, &names, pending).await?;
        }
        progress(table, copied);
        report.tables.push((table, copied));
    }
    if target.dialect == Dialect::Postgres {
        // Copied rows kept their sequence numbers; the next event continues after them.
        sqlx::query("SELECT setval(pg_get_serial_sequence('events', 'seq'), COALESCE(MAX(seq), 1), MAX(seq) IS NOT NULL) FROM events")
            .execute(&mut *tx)
            .await
            .map_err(backend_error)?;
    }
    tx.commit().await.map_err(backend_error)?;
    snapshot.rollback().await.map_err(backend_error)?;
    let counts = target.table_counts().await?;
    if counts != report.tables {
        return Err(CoreError::Internal(format!("row counts differ after the copy: copied {:?}, found {counts:?}", report.tables)));
    }
    report.audit_records = verify_chain(target).await?;
    Ok(report)
}

/// Verifies the audit chain of a store end to end and that every checkpoint names a record with
/// its hash; returns the number of records.
pub async fn verify_chain(store: &SqlStore) -> Result<i64> {
    use clavis_core::store::Store as _;
    let mut after = 0;
    let mut prev_hash = clavis_core::audit::GENESIS_HASH.to_string();
    let mut hashes = std::collections::HashMap::new();
    loop {
        let page = store.audit_records(after, 1000).await?;
        let Some(last) = page.last() else { break };
        if let Some(seq) = clavis_core::audit::verify_chain(&page, after, prev_hash.clone()) {
            return Err(CoreError::Internal(format!("the audit chain does not verify at record {seq}")));
        }
        for record in &page {
            hashes.insert(record.seq, record.hash.clone());
        }
        after = last.seq;
        prev_hash = last.hash.clone();
    }
    if store.audit_head().await? != after {
        return Err(CoreError::Internal(format!("the audit head does not name the last record ({after})")));
    }
    for checkpoint in store.checkpoints().await? {
        if hashes.get(&checkpoint.seq) != Some(&checkpoint.hash) {
            return Err(CoreError::Internal(format!("the checkpoint at record {} does not match the chain", checkpoint.seq)));
        }
    }
    Ok(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new migration's table must be copied or declared not copied, or `clavis migrate` would
    /// silently drop it.
    #[tokio::test]
    async fn every_table_is_copied_or_declared_node_local() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqlStore::open(&format!("sqlite://{}", dir.path().join("t.db").display())).await.unwrap();
        let rows = sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
            .fetch_all(&store.read)
            .await
            .unwrap();
        let mut found: Vec<String> = rows.iter().map(|r| r.try_get::<String, _>("name").unwrap()).collect();
        found.retain(|name| name != "schema_migrations");
        let mut known: Vec<String> = TABLES.iter().chain(NOT_COPIED).map(|t| t.to_string()).collect();
        known.sort();
        assert_eq!(found, known);
    }
}
