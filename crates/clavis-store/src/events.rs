//! Outbox deliveries, webhook subscriptions, expiry notices and the scans behind them.

use serde_json::json;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use clavis_core::audit::DomainEvent;
use clavis_core::events::{Delivery, DeliveryStatus, ExpiringCredential, ExpiringSecret, PayloadSchema, Subscription};
use clavis_core::store::Mutation;
use clavis_core::{CoreError, Result};

use crate::apply::{change_rows, conflict_or_backend, Tx};
use crate::{backend_error, bytes, instant, int, micros, opt_int, opt_text, text, SqlStore};

/// Applies one event mutation inside the batch's transaction.
pub(crate) async fn apply(tx: &mut Tx<'_>, mutation: &Mutation) -> Result<()> {
    match mutation {
        Mutation::InsertSubscription(subscription) => {
            sqlx::query(
                "INSERT INTO subscriptions (id, tenant_id, url, schema_kind, event_types, sealed_secret, data_key_id, start_after, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, (SELECT COALESCE(MAX(seq), 0) FROM events), $8)",
            )
            .bind(&subscription.id)
            .bind(&subscription.tenant_id)
            .bind(&subscription.url)
            .bind(subscription.schema.as_str())
            .bind(json!(subscription.event_types).to_string())
            .bind(&subscription.sealed_secret)
            .bind(&subscription.data_key_id)
            .bind(micros(subscription.created_at))
            .execute(&mut **tx)
            .await
            .map_err(backend_error)?;
        }
        Mutation::DeleteSubscription { tenant_id, id } => {
            change_rows(tx, sqlx::query("DELETE FROM subscriptions WHERE id = $1 AND tenant_id = $2").bind(id).bind(tenant_id), || {
                CoreError::NotFound(format!("Subscription '{id}' was not found."))
            })
            .await?;
            sqlx::query("DELETE FROM deliveries WHERE subscription_id = $1 AND status = 'pending'")
                .bind(id)
                .execute(&mut **tx)
                .await
                .map_err(backend_error)?;
        }
        Mutation::RecordNotice { object_key, threshold, at } => {
            sqlx::query("INSERT INTO notices (object_key, threshold, noticed_at) VALUES ($1, $2, $3)")
                .bind(object_key)
                .bind(threshold)
                .bind(micros(*at))
                .execute(&mut **tx)
                .await
                .map_err(|e| conflict_or_backend(e, || format!("the notice {threshold} for {object_key} was already sent")))?;
        }
        Mutation::PutRotationPolicy(record) => {
            sqlx::query(
                "INSERT INTO rotation_policies (application_id, tenant_id, policy, state) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (application_id) DO UPDATE SET policy = excluded.policy",
            )
            .bind(&record.application_id)
            .bind(&record.tenant_id)
            .bind(json!(record.policy).to_string())
            .bind(json!(record.state).to_string())
            .execute(&mut **tx)
            .await
            .map_err(backend_error)?;
        }
        Mutation::DeleteRotationPolicy { tenant_id, application_id } => {
            change_rows(
                tx,
                sqlx::query("DELETE FROM rotation_policies WHERE application_id = $1 AND tenant_id = $2")
                    .bind(application_id)
                    .bind(tenant_id),
                || CoreError::NotFound("The application has no rotation policy.".into()),
            )
            .await?;
        }
        Mutation::UpdateRotationState { application_id, expected, next } => {
            change_rows(
                tx,
                sqlx::query("UPDATE rotation_policies SET state = $1 WHERE application_id = $2 AND state = $3")
                    .bind(json!(next).to_string())
                    .bind(application_id)
                    .bind(json!(expected).to_string()),
                || CoreError::Conflict("The rotation moved on concurrently; nothing was changed.".into()),
            )
            .await?;
        }
        other => crate::people::apply(tx, other).await?,
    }
    Ok(())
}

fn subscription_row(row: &AnyRow) -> Result<Subscription> {
    let schema = text(row, "schema_kind")?;
    Ok(Subscription {
        id: text(row, "id")?,
        tenant_id: text(row, "tenant_id")?,
        url: text(row, "url")?,
        schema: PayloadSchema::parse(&schema).ok_or_else(|| CoreError::Store(format!("unknown payload schema {schema}")))?,
        event_types: serde_json::from_str(&text(row, "event_types")?).map_err(|e| CoreError::Store(format!("event types: {e}")))?,
        data_key_id: text(row, "data_key_id")?,
        sealed_secret: bytes(row, "sealed_secret")?,
        start_after: int(row, "start_after")?,
        created_at: instant(int(row, "created_at")?),
    })
}

fn delivery_row(row: &AnyRow) -> Result<Delivery> {
    let status = text(row, "status")?;
    Ok(Delivery {
        event_seq: int(row, "event_seq")?,
        subscription_id: text(row, "subscription_id")?,
        status: DeliveryStatus::parse(&status).ok_or_else(|| CoreError::Store(format!("unknown delivery status {status}")))?,
        attempts: int(row, "attempts")?,
        next_attempt_at: instant(int(row, "next_attempt_at")?),
        last_error: opt_text(row, "last_error")?,
        delivered_at: opt_int(row, "delivered_at")?.map(instant),
    })
}

const DELIVERY_COLUMNS: &str = "event_seq, subscription_id, status, attempts, next_attempt_at, last_error, delivered_at";

impl SqlStore {
    pub(crate) async fn subscriptions_of(&self, tenant_id: Option<&str>) -> Result<Vec<Subscription>> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, url, schema_kind, event_types, sealed_secret, data_key_id, start_after, created_at FROM subscriptions WHERE ($1 = '' OR tenant_id = $1) ORDER BY created_at, id",
        )
        .bind(tenant_id.unwrap_or(""))
        .fetch_all(self.read_pool())
        .await
        .map_err(backend_error)?;
        rows.iter().map(subscription_row).collect()
    }

    pub(crate) async fn all_notices(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT object_key, threshold FROM notices").fetch_all(self.read_pool()).await.map_err(backend_error)?;
        rows.iter().map(|row| Ok((text(row, "object_key")?, text(row, "threshold")?))).collect()
    }

    pub(crate) async fn credentials_ending(&self, until: OffsetDateTime) -> Result<Vec<ExpiringCredential>> {
        let rows = sqlx::query(
            "SELECT c.tenant_id, c.application_id, a.app_id, a.display_name, c.key_id, c.end_at FROM password_credentials c \
             JOIN applications a ON a.id = c.application_id WHERE c.end_at < $1 ORDER BY c.end_at",
        )
        .bind(micros(until))
        .fetch_all(self.read_pool())
        .await
        .map_err(backend_error)?;
        rows.iter()
            .map(|row| {
                Ok(ExpiringCredential {
                    tenant_id: text(row, "tenant_id")?,
                    application_id: text(row, "application_id")?,
                    app_id: text(row, "app_id")?,
                    display_name: text(row, "display_name")?,
                    key_id: text(row, "key_id")?,
                    end: instant(int(row, "end_at")?),
                })
            })
            .collect()
    }

    pub(crate) async fn secrets_expiring(&self, until: OffsetDateTime) -> Result<Vec<ExpiringSecret>> {
        let rows = sqlx::query(
            "SELECT vt.tenant_id, vt.name AS vault, s.name, v.version, v.properties FROM vault_secrets s \
             JOIN vaults vt ON vt.id = s.vault_id AND vt.deleted_at IS NULL \
             JOIN vault_secret_versions v ON v.vault_id = s.vault_id AND v.name_key = s.name_key \
               AND v.ordinal = (SELECT MAX(ordinal) FROM vault_secret_versions m WHERE m.vault_id = s.vault_id AND m.name_key = s.name_key) \
             WHERE s.deleted_at IS NULL",
        )
        .fetch_all(self.read_pool())
        .await
        .map_err(backend_error)?;
        let until = until.unix_timestamp();
        let mut out = Vec::new();
        for row in &rows {
            let properties: clavis_core::vault::SecretProperties =
                serde_json::from_str(&text(row, "properties")?).map_err(|e| CoreError::Store(format!("secret properties: {e}")))?;
            if let Some(exp) = properties.exp.filter(|exp| *exp < until) {
                out.push(ExpiringSecret {
                    tenant_id: text(row, "tenant_id")?,
                    vault: text(row, "vault")?,
                    name: text(row, "name")?,
                    version: text(row, "version")?,
                    nbf: properties.nbf,
                    exp,
                });
            }
        }
        Ok(out)
    }

    pub(crate) async fn cursor_position(&self, name: &str) -> Result<i64> {
        let row = sqlx::query("SELECT position FROM cursors WHERE name = $1")
            .bind(name)
            .fetch_optional(self.read_pool())
            .await
            .map_err(backend_error)?;
        row.map_or(Ok(0), |row| int(&row, "position"))
    }

    pub(crate) async fn enqueue(&self, cursor: &str, position: i64, deliveries: &[Delivery]) -> Result<()> {
        let mut tx = self.write_pool().begin().await.map_err(backend_error)?;
        for delivery in deliveries {
            sqlx::query(&format!("INSERT INTO deliveries ({DELIVERY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (event_seq, subscription_id) DO NOTHING"))
                .bind(delivery.event_seq)
                .bind(&delivery.subscription_id)
                .bind(delivery.status.as_str())
                .bind(delivery.attempts)
                .bind(micros(delivery.next_attempt_at))
                .bind(delivery.last_error.clone())
                .bind(delivery.delivered_at.map(micros))
                .execute(&mut *tx)
                .await
                .map_err(backend_error)?;
        }
        sqlx::query("INSERT INTO cursors (name, position) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET position = excluded.position")
            .bind(cursor)
            .bind(position)
            .execute(&mut *tx)
            .await
            .map_err(backend_error)?;
        tx.commit().await.map_err(backend_error)
    }

    /// Claims due deliveries: each is taken by moving its next attempt to `lease_until` on the
    /// condition that it still holds the time read, so of several nodes exactly one claims it
    /// (PostgreSQL re-checks the condition after the row lock; SQLite has one writer). A node
    /// that dies holding a claim leaves the delivery due again when the lease ends.
    pub(crate) async fn claim_due(&self, now: OffsetDateTime, lease_until: OffsetDateTime, limit: i64) -> Result<Vec<Delivery>> {
        let rows = sqlx::query(&format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE status = 'pending' AND next_attempt_at <= $1 ORDER BY next_attempt_at, event_seq LIMIT $2"))
            .bind(micros(now))
            .bind(limit)
            .fetch_all(self.read_pool())
            .await
            .map_err(backend_error)?;
        let mut claimed = Vec::with_capacity(rows.len());
        for delivery in rows.iter().map(delivery_row) {
            let delivery = delivery?;
            let taken = sqlx::query("UPDATE deliveries SET next_attempt_at = $1 WHERE event_seq = $2 AND subscription_id = $3 AND status = 'pending' AND next_attempt_at = $4")
                .bind(micros(lease_until))
                .bind(delivery.event_seq)
                .bind(&delivery.subscription_id)
                .bind(micros(delivery.next_attempt_at))
                .execute(self.write_pool())
                .await
                .map_err(backend_error)?;
            if taken.rows_affected() == 1 {
                claimed.push(delivery);
            }
        }
        Ok(claimed)
    }

    pub(crate) async fn update_delivery(&self, delivery: &Delivery) -> Result<()> {
        sqlx::query("UPDATE deliveries SET status = $1, attempts = $2, next_attempt_at = $3, last_error = $4, delivered_at = $5 WHERE event_seq = $6 AND subscription_id = $7")
            .bind(delivery.status.as_str())
            .bind(delivery.attempts)
            .bind(micros(delivery.next_attempt_at))
            .bind(delivery.last_error.clone())
            .bind(delivery.delivered_at.map(micros))
            .bind(delivery.event_seq)
            .bind(&delivery.subscription_id)
            .execute(self.write_pool())
            .await
            .map_err(backend_error)?;
        Ok(())
    }

    pub(crate) async fn deliveries_after(&self, after: i64) -> Result<Vec<Delivery>> {
        let rows =
            sqlx::query(&format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE event_seq > $1 ORDER BY event_seq, subscription_id"))
                .bind(after)
                .fetch_all(self.read_pool())
                .await
                .map_err(backend_error)?;
        rows.iter().map(delivery_row).collect()
    }

    pub(crate) async fn event_at(&self, seq: i64) -> Result<Option<DomainEvent>> {
        Ok(crate::read::events(self.read_pool(), seq - 1, 1).await?.into_iter().find(|(s, _)| *s == seq).map(|(_, e)| e))
    }
}

impl SqlStore {
    pub(crate) async fn rotation_records(&self) -> Result<Vec<clavis_core::rotation::RotationRecord>> {
        let rows = sqlx::query("SELECT application_id, tenant_id, policy, state FROM rotation_policies ORDER BY application_id")
            .fetch_all(self.read_pool())
            .await
            .map_err(backend_error)?;
        rows.iter()
            .map(|row| {
                Ok(clavis_core::rotation::RotationRecord {
                    application_id: text(row, "application_id")?,
                    tenant_id: text(row, "tenant_id")?,
                    policy: serde_json::from_str(&text(row, "policy")?).map_err(|e| CoreError::Store(format!("rotation policy: {e}")))?,
                    state: serde_json::from_str(&text(row, "state")?).map_err(|e| CoreError::Store(format!("rotation state: {e}")))?,
                })
            })
            .collect()
    }
}
