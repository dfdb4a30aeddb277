//! The sign-in log and request failures: appended in batches, queried by administrators.

use sqlx::any::AnyRow;
use time::OffsetDateTime;

use clavis_core::signin::{RequestFailure, SignIn, SignInFilter};
use clavis_core::Result;

use crate::{backend_error, instant, int, micros, text, SqlStore};

const SIGNIN_COLUMNS: &str =
    "id, at, tenant, client_id, key_id, resource, result, error_code, diagnosis, client_ip, correlation_id, user_agent, attempts";
const FAILURE_COLUMNS: &str = "id, at, method, route, status, error_code, message, client_ip, correlation_id";

fn signin_row(row: &AnyRow) -> Result<SignIn> {
    Ok(SignIn {
        id: text(row, "id")?,
        at: instant(int(row, "at")?),
        tenant: text(row, "tenant")?,
        client_id: text(row, "client_id")?,
        key_id: text(row, "key_id")?,
        resource: text(row, "resource")?,
        result: text(row, "result")?,
        error_code: text(row, "error_code")?,
        diagnosis: text(row, "diagnosis")?,
        client_ip: text(row, "client_ip")?,
        correlation_id: text(row, "correlation_id")?,
        user_agent: text(row, "user_agent")?,
        attempts: int(row, "attempts")?,
    })
}

fn failure_row(row: &AnyRow) -> Result<RequestFailure> {
    Ok(RequestFailure {
        id: text(row, "id")?,
        at: instant(int(row, "at")?),
        method: text(row, "method")?,
        route: text(row, "route")?,
        status: int(row, "status")?,
        error_code: text(row, "error_code")?,
        message: text(row, "message")?,
        client_ip: text(row, "client_ip")?,
        correlation_id: text(row, "correlation_id")?,
    })
}

impl SqlStore {
    pub(crate) async fn append(&self, signins: &[SignIn], failures: &[RequestFailure]) -> Result<()> {
        let mut tx = self.write_pool().begin().await.map_err(backend_error)?;
        for s in signins {
            sqlx::query(&format!("INSERT INTO signins ({SIGNIN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"))
                .bind(&s.id)
                .bind(micros(s.at))
                .bind(&s.tenant)
                .bind(&s.client_id)
                .bind(&s.key_id)
                .bind(&s.resource)
                .bind(&s.result)
                .bind(&s.error_code)
                .bind(&s.diagnosis)
                .bind(&s.client_ip)
                .bind(&s.correlation_id)
                .bind(&s.user_agent)
                .bind(s.attempts)
                .execute(&mut *tx)
                .await
                .map_err(backend_error)?;
        }
        for f in failures {
            sqlx::query(&format!("INSERT INTO request_failures ({FAILURE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"))
                .bind(&f.id)
                .bind(micros(f.at))
                .bind(&f.method)
                .bind(&f.route)
                .bind(f.status)
                .bind(&f.error_code)
                .bind(&f.message)
                .bind(&f.client_ip)
                .bind(&f.correlation_id)
                .execute(&mut *tx)
                .await
                .map_err(backend_error)?;
        }
        tx.commit().await.map_err(backend_error)
    }

    pub(crate) async fn query_signins(&self, filter: &SignInFilter) -> Result<Vec<SignIn>> {
        let rows = sqlx::query(&format!(
            "SELECT {SIGNIN_COLUMNS} FROM signins WHERE at >= $1 AND at < $2 AND ($3 = '' OR client_id = $3) AND ($4 = '' OR result = $4) ORDER BY at DESC, id LIMIT $5"
        ))
        .bind(filter.since.map_or(0, micros))
        .bind(filter.until.map_or(i64::MAX, micros))
        .bind(filter.client_id.clone().unwrap_or_default().to_ascii_lowercase())
        .bind(filter.result.clone().unwrap_or_default())
        .bind(filter.limit.clamp(1, 10_000))
        .fetch_all(self.read_pool())
        .await
        .map_err(backend_error)?;
        rows.iter().map(signin_row).collect()
    }

    pub(crate) async fn correlation(&self, correlation_id: &str) -> Result<(Vec<SignIn>, Vec<RequestFailure>)> {
        let signins = sqlx::query(&format!("SELECT {SIGNIN_COLUMNS} FROM signins WHERE correlation_id = $1 ORDER BY at"))
            .bind(correlation_id)
            .fetch_all(self.read_pool())
            .await
            .map_err(backend_error)?;
        let failures = sqlx::query(&format!("SELECT {FAILURE_COLUMNS} FROM request_failures WHERE correlation_id = $1 ORDER BY at"))
            .bind(correlation_id)
            .fetch_all(self.read_pool())
            .await
            .map_err(backend_error)?;
        Ok((signins.iter().map(signin_row).collect::<Result<_>>()?, failures.iter().map(failure_row).collect::<Result<_>>()?))
    }

    pub(crate) async fn purge_old_logs(&self, before: OffsetDateTime) -> Result<u64> {
        let mut removed = 0;
        for sql in ["DELETE FROM signins WHERE at < $1", "DELETE FROM request_failures WHERE at < $1"] {
            removed += sqlx::query(sql).bind(micros(before)).execute(self.write_pool()).await.map_err(backend_error)?.rows_affected();
        }
        Ok(removed)
    }
}
