//! SQLite and PostgreSQL implementations of `clavis_core::store::Store`.
//!
//! One SQL text serves both backends through sqlx's `Any` driver: queries use `$N` placeholders
//! (which SQLite accepts too) and only the types both share (text, 64-bit integers, bytes). The
//! dialects differ only in DDL types and row locks (`FOR UPDATE`), kept in [`Dialect`].
//!
//! SQLite runs in WAL mode with `synchronous=FULL`, so an acknowledged write survives a crash or
//! power loss, and with a single writer connection, so transactions never fail on lock upgrades.
//! PostgreSQL serializes audit-chain appends with a row lock on the chain head, which is what
//! lets several nodes share one database.

mod apply;
mod audit;
pub mod backup;
mod bulk;
mod events;
mod logs;
pub mod migrate;
mod people;
mod read;
mod schema;
mod vault;

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor as _, Row as _};
use time::OffsetDateTime;

use clavis_core::audit::{AuditRecord, DomainEvent};
use clavis_core::identity::{AppRoleAssignment, Application, Tenant};
use clavis_core::policy::VaultRoleAssignment;
use clavis_core::store::{AssignmentFilter, Batch, Store, StoredSigningKey, UsageUpdate, WrappedKey};
use clavis_core::vault::{Secret, Vault};
use clavis_core::{CoreError, Result};

/// The SQL dialect of a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// Embedded SQLite (the default).
    Sqlite,
    /// PostgreSQL (several nodes).
    Postgres,
}

impl Dialect {
    /// The row-lock suffix of a `SELECT` inside a write transaction. SQLite needs none: its single
    /// writer connection already serializes writes.
    pub(crate) fn for_update(self) -> &'static str {
        match self {
            Self::Sqlite => "",
            Self::Postgres => " FOR UPDATE",
        }
    }
}

/// A Clavis store on SQLite or PostgreSQL.
#[derive(Debug, Clone)]
pub struct SqlStore {
    write: AnyPool,
    read: AnyPool,
    dialect: Dialect,
    startup: StartupLock,
}

/// The PostgreSQL session holding the start-up lock while this node initializes the instance.
#[derive(Clone, Default)]
struct StartupLock(std::sync::Arc<tokio::sync::Mutex<Option<sqlx::pool::PoolConnection<sqlx::Any>>>>);

impl std::fmt::Debug for StartupLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StartupLock")
    }
}

/// The advisory-lock key that serializes first starts (and migrations) across nodes.
const STARTUP_LOCK_KEY: i64 = 7140115;

/// A store failure, with the underlying cause in its message (logged, never shown to callers).
pub(crate) fn backend_error(error: sqlx::Error) -> CoreError {
    CoreError::Store(error.to_string())
}

/// Microseconds since the Unix epoch: the stored form of every instant.
pub(crate) fn micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

/// The instant of a stored microsecond count.
pub(crate) fn instant(micros: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl SqlStore {
    /// Opens (creating if needed) the store at `url`: `sqlite://PATH` or `postgres://…`, and
    /// applies pending migrations.
    pub async fn open(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let store = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = AnyPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await
                .map_err(|e| CoreError::Store(format!("cannot connect to PostgreSQL: {e}")))?;
            Self { write: pool.clone(), read: pool, dialect: Dialect::Postgres, startup: StartupLock::default() }
        } else if let Some(path) = url.strip_prefix("sqlite://") {
            Self::open_sqlite(Path::new(path)).await?
        } else {
            return Err(CoreError::Invalid(format!("unsupported database URL '{}': use sqlite://PATH or postgres://…", redact_url(url))));
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn open_sqlite(path: &Path) -> Result<Self> {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let options = || {
            AnyPoolOptions::new().after_connect(|connection, _| {
                Box::pin(async move {
                    // WAL lets readers proceed beside the writer; synchronous=FULL fsyncs the WAL
                    // at every commit, so acknowledged writes survive power loss.
                    connection.execute("PRAGMA journal_mode=WAL").await?;
                    connection.execute("PRAGMA synchronous=FULL").await?;
                    connection.execute("PRAGMA busy_timeout=10000").await?;
                    connection.execute("PRAGMA foreign_keys=ON").await?;
                    Ok(())
                })
            })
        };
        let write = options()
            .max_connections(1)
            .connect(&url)
            .await
            .map_err(|e| CoreError::Store(format!("cannot open SQLite database {}: {e}", path.display())))?;
        let read = options()
            .max_connections(4)
            .connect(&url)
            .await
            .map_err(|e| CoreError::Store(format!("cannot open SQLite database {}: {e}", path.display())))?;
        Ok(Self { write, read, dialect: Dialect::Sqlite, startup: StartupLock::default() })
    }

    /// The backend's dialect.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    async fn migrate(&self) -> Result<()> {
        let postgres = self.dialect == Dialect::Postgres;
        let mut tx = self.write.begin().await.map_err(backend_error)?;
        if postgres {
            // Several nodes may start at once: one migrates, the others wait for it.
            sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(STARTUP_LOCK_KEY).execute(&mut *tx).await.map_err(backend_error)?;
        }
        tx.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, applied_at BIGINT NOT NULL)")
            .await
            .map_err(backend_error)?;
        let applied: Vec<i64> = sqlx::query("SELECT version FROM schema_migrations")
            .fetch_all(&mut *tx)
            .await
            .map_err(backend_error)?
            .iter()
            .map(|row| row.try_get::<i64, _>(0))
            .collect::<std::result::Result<_, _>>()
            .map_err(backend_error)?;
        let newest_known = schema::MIGRATIONS.last().map_or(0, |m| m.version);
        if let Some(newer) = applied.iter().find(|v| **v > newest_known) {
            return Err(CoreError::Store(format!(
                "the database has schema version {newer}, newer than this Clavis knows ({newest_known}); upgrade Clavis"
            )));
        }
        for migration in schema::MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
            for statement in schema::ddl(migration.template, postgres).split(';').map(str::trim).filter(|s| !s.is_empty()) {
                tx.execute(statement).await.map_err(backend_error)?;
            }
            sqlx::query("INSERT INTO schema_migrations (version, description, applied_at) VALUES ($1, $2, $3)")
                .bind(migration.version)
                .bind(migration.description)
                .bind(micros(OffsetDateTime::now_utc()))
                .execute(&mut *tx)
                .await
                .map_err(backend_error)?;
        }
        tx.commit().await.map_err(backend_error)
    }

    /// Closes the pools, waiting for running queries.
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }

    /// The connection pool for writes (tests use it to tamper with rows).
    pub fn write_pool(&self) -> &AnyPool {
        &self.write
    }

    pub(crate) fn read_pool(&self) -> &AnyPool {
        &self.read
    }
}

/// Hides the password of a database URL for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme + 3], &credentials[..colon], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

pub(crate) fn text(row: &AnyRow, column: &str) -> Result<String> {
    row.try_get::<String, _>(column).map_err(backend_error)
}

pub(crate) fn int(row: &AnyRow, column: &str) -> Result<i64> {
    row.try_get::<i64, _>(column).map_err(backend_error)
}

pub(crate) fn bytes(row: &AnyRow, column: &str) -> Result<Vec<u8>> {
    row.try_get::<Vec<u8>, _>(column).map_err(backend_error)
}

pub(crate) fn opt_text(row: &AnyRow, column: &str) -> Result<Option<String>> {
    row.try_get::<Option<String>, _>(column).map_err(backend_error)
}

pub(crate) fn opt_int(row: &AnyRow, column: &str) -> Result<Option<i64>> {
    row.try_get::<Option<i64>, _>(column).map_err(backend_error)
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }

    /// On PostgreSQL, a session-level advisory lock on a dedicated connection. SQLite needs none:
    /// one process serves a database file, and its single writer orders the rest.
    async fn lock_startup(&self) -> Result<()> {
        if self.dialect != Dialect::Postgres {
            return Ok(());
        }
        let mut held = self.startup.0.lock().await;
        if held.is_none() {
            let mut connection = self.write.acquire().await.map_err(backend_error)?;
            sqlx::query("SELECT pg_advisory_lock($1)").bind(STARTUP_LOCK_KEY).execute(&mut *connection).await.map_err(backend_error)?;
            *held = Some(connection);
        }
        Ok(())
    }

    async fn take_lease(&self, name: &str, holder: &str, now: OffsetDateTime, until: OffsetDateTime) -> Result<bool> {
        // An upsert whose update is conditional: it changes a row only when the lease is
        // expired or already the holder's, atomically on both backends.
        let taken = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE \
             SET holder = excluded.holder, expires_at = excluded.expires_at WHERE leases.expires_at <= $4 OR leases.holder = excluded.holder",
        )
        .bind(name)
        .bind(holder)
        .bind(micros(until))
        .bind(micros(now))
        .execute(&self.write)
        .await
        .map_err(backend_error)?;
        Ok(taken.rows_affected() == 1)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.write)
            .await
            .map_err(backend_error)?;
        Ok(())
    }

    async fn unlock_startup(&self) -> Result<()> {
        if let Some(mut connection) = self.startup.0.lock().await.take() {
            let released = sqlx::query("SELECT pg_advisory_unlock($1)").bind(STARTUP_LOCK_KEY).execute(&mut *connection).await;
            if released.is_err() {
                // Closing the session releases the lock whatever happened to the statement.
                let _ = connection.close().await;
            }
            released.map_err(backend_error)?;
        }
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await.map_err(backend_error)?;
        Ok(())
    }

    async fn apply(&self, batch: &Batch) -> Result<()> {
        apply::apply(self, batch).await
    }

    async fn wrapped_keys(&self) -> Result<Vec<WrappedKey>> {
        read::wrapped_keys(&self.read).await
    }

    async fn tenants(&self) -> Result<Vec<Tenant>> {
        read::tenants(&self.read).await
    }

    async fn applications(&self, tenant_id: &str) -> Result<Vec<Application>> {
        read::applications(&self.read, "tenant_id = $1", &[tenant_id]).await
    }

    async fn application(&self, tenant_id: &str, id: &str) -> Result<Option<Application>> {
        Ok(read::applications(&self.read, "tenant_id = $1 AND (id = $2 OR app_id = $2 OR service_principal_id = $2)", &[tenant_id, id])
            .await?
            .pop())
    }

    async fn application_by_client_id(&self, app_id: &str) -> Result<Option<Application>> {
        Ok(read::applications(&self.read, "app_id = $1", &[app_id]).await?.pop())
    }

    async fn application_by_identifier_uri(&self, tenant_id: &str, uri: &str) -> Result<Option<Application>> {
        let normalized = clavis_core::token::normalize_resource(uri);
        Ok(read::applications(
            &self.read,
            "id IN (SELECT application_id FROM identifier_uris WHERE tenant_id = $1 AND uri = $2)",
            &[tenant_id, &normalized],
        )
        .await?
        .pop())
    }

    async fn record_usage(&self, batch: &[UsageUpdate]) -> Result<()> {
        apply::record_usage(self, batch).await
    }

    async fn assignments(&self, tenant_id: &str, filter: &AssignmentFilter) -> Result<Vec<AppRoleAssignment>> {
        read::assignments(&self.read, tenant_id, filter).await
    }

    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>> {
        read::signing_keys(&self.read).await
    }

    async fn audit_records(&self, after: i64, limit: i64) -> Result<Vec<AuditRecord>> {
        read::audit_records(&self.read, after, limit).await
    }

    async fn change_head(&self) -> Result<i64> {
        let row = sqlx::query("SELECT changes FROM audit_head WHERE id = 1").fetch_one(&self.read).await.map_err(backend_error)?;
        int(&row, "changes")
    }

    async fn audit_head(&self) -> Result<i64> {
        let row = sqlx::query("SELECT seq FROM audit_head WHERE id = 1").fetch_one(&self.read).await.map_err(backend_error)?;
        int(&row, "seq")
    }

    async fn events(&self, after: i64, limit: i64) -> Result<Vec<(i64, DomainEvent)>> {
        read::events(&self.read, after, limit).await
    }

    async fn vaults(&self, tenant_id: &str) -> Result<Vec<Vault>> {
        vault::vaults(&self.read, tenant_id).await
    }

    async fn vault_by_name(&self, name: &str) -> Result<Option<Vault>> {
        vault::vault_by_name(&self.read, name).await
    }

    async fn secret(&self, vault_id: &str, name: &str) -> Result<Option<Secret>> {
        vault::secret(&self.read, vault_id, name).await
    }

    async fn secrets(&self, vault_id: &str, deleted: bool, after: &str, limit: i64) -> Result<Vec<Secret>> {
        vault::secrets(&self.read, vault_id, deleted, after, limit).await
    }

    async fn subscriptions(&self, tenant_id: Option<&str>) -> Result<Vec<clavis_core::events::Subscription>> {
        self.subscriptions_of(tenant_id).await
    }

    async fn notices(&self) -> Result<Vec<(String, String)>> {
        self.all_notices().await
    }

    async fn expiring_credentials(&self, until: OffsetDateTime) -> Result<Vec<clavis_core::events::ExpiringCredential>> {
        self.credentials_ending(until).await
    }

    async fn expiring_secrets(&self, until: OffsetDateTime) -> Result<Vec<clavis_core::events::ExpiringSecret>> {
        self.secrets_expiring(until).await
    }

    async fn cursor(&self, name: &str) -> Result<i64> {
        self.cursor_position(name).await
    }

    async fn enqueue_deliveries(&self, cursor: &str, position: i64, deliveries: &[clavis_core::events::Delivery]) -> Result<()> {
        self.enqueue(cursor, position, deliveries).await
    }

    async fn claim_deliveries(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: i64,
    ) -> Result<Vec<clavis_core::events::Delivery>> {
        self.claim_due(now, lease_until, limit).await
    }

    async fn record_delivery(&self, delivery: &clavis_core::events::Delivery) -> Result<()> {
        self.update_delivery(delivery).await
    }

    async fn deliveries(&self, after: i64) -> Result<Vec<clavis_core::events::Delivery>> {
        self.deliveries_after(after).await
    }

    async fn event(&self, seq: i64) -> Result<Option<DomainEvent>> {
        self.event_at(seq).await
    }

    async fn audit_query(&self, filter: &clavis_core::audit::AuditFilter) -> Result<Vec<AuditRecord>> {
        self.query_audit(filter).await
    }

    async fn checkpoints(&self) -> Result<Vec<clavis_core::audit::Checkpoint>> {
        self.all_checkpoints().await
    }

    async fn insert_checkpoint(&self, checkpoint: &clavis_core::audit::Checkpoint) -> Result<()> {
        self.add_checkpoint(checkpoint).await
    }

    async fn append_logs(&self, signins: &[clavis_core::signin::SignIn], failures: &[clavis_core::signin::RequestFailure]) -> Result<()> {
        self.append(signins, failures).await
    }

    async fn signins(&self, filter: &clavis_core::signin::SignInFilter) -> Result<Vec<clavis_core::signin::SignIn>> {
        self.query_signins(filter).await
    }

    async fn by_correlation(
        &self,
        correlation_id: &str,
    ) -> Result<(Vec<clavis_core::signin::SignIn>, Vec<clavis_core::signin::RequestFailure>)> {
        self.correlation(correlation_id).await
    }

    async fn admins(&self, tenant_id: &str) -> Result<Vec<clavis_core::admin::AdminAccount>> {
        people::admins(&self.read, tenant_id).await
    }

    async fn admin(&self, tenant_id: &str, id_or_name: &str) -> Result<Option<clavis_core::admin::AdminAccount>> {
        people::admin(&self.read, tenant_id, id_or_name).await
    }

    async fn session(&self, id_hash: &str) -> Result<Option<clavis_core::admin::PortalSession>> {
        people::session(&self.read, id_hash).await
    }

    async fn touch_session(&self, id_hash: &str, at: OffsetDateTime) -> Result<()> {
        people::touch_session(&self.write, id_hash, at).await
    }

    async fn purge_sessions(&self, now: OffsetDateTime, idle_before: OffsetDateTime) -> Result<u64> {
        people::purge_sessions(&self.write, now, idle_before).await
    }

    async fn purge_logs(&self, before: OffsetDateTime) -> Result<u64> {
        self.purge_old_logs(before).await
    }

    async fn rotations(&self) -> Result<Vec<clavis_core::rotation::RotationRecord>> {
        self.rotation_records().await
    }

    async fn revocations(&self) -> Result<Vec<clavis_core::revocation::Revocation>> {
        vault::revocations(&self.read).await
    }

    async fn secrets_due(&self, now: OffsetDateTime) -> Result<bool> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM vault_secrets WHERE scheduled_purge_at IS NOT NULL AND scheduled_purge_at <= $1")
            .bind(micros(now))
            .fetch_one(&self.read)
            .await
            .map_err(backend_error)?;
        Ok(int(&row, "n")? > 0)
    }

    async fn vault_assignments(&self, tenant_id: &str, principal_id: Option<&str>) -> Result<Vec<VaultRoleAssignment>> {
        vault::vault_assignments(&self.read, tenant_id, principal_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact_url("postgres://user:pw@host/db"), "postgres://user:***@host/db");
        assert_eq!(redact_url("postgres://host/db"), "postgres://host/db");
    }
}
