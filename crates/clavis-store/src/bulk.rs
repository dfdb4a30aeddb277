//! Multi-row inserts: the copy of a whole instance (`migrate`) and bulk loading of benchmark data
//! (`Mutation::BulkInsert`) write thousands of rows per statement instead of one.

use serde_json::json;

use clavis_core::identity::Application;
use clavis_core::store::Mutation;
use clavis_core::vault::{name_key, SecretVersion};
use clavis_core::{CoreError, Result};

use crate::apply::{conflict_or_backend, Tx};
use crate::micros;

/// One column value of a row.
pub(crate) enum Value {
    Int(Option<i64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
}

/// Parameters per statement: far below SQLite's 32,766 and PostgreSQL's 65,535.
const MAX_PARAMETERS: usize = 900;

/// Inserts `rows` (each with one value per column) with as few statements as the parameter limit
/// allows; returns how many rows were inserted.
pub(crate) async fn insert_rows(tx: &mut Tx<'_>, table: &str, columns: &[&str], rows: Vec<Vec<Value>>) -> Result<i64> {
    let width = columns.len();
    let per_statement = (MAX_PARAMETERS / width).max(1);
    let total = rows.len() as i64;
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Vec<Value>> = rows.by_ref().take(per_statement).collect();
        let mut sql = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
        for r in 0..chunk.len() {
            if r > 0 {
                sql.push_str(", ");
            }
            let placeholders: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
            sql.push('(');
            sql.push_str(&placeholders.join(", "));
            sql.push(')');
        }
        let mut query = sqlx::query(&sql);
        for row in chunk {
            for value in row {
                query = match value {
                    Value::Int(v) => query.bind(v),
                    Value::Text(v) => query.bind(v),
                    Value::Bytes(v) => query.bind(v),
                };
            }
        }
        query.execute(&mut **tx).await.map_err(|e| conflict_or_backend(e, || format!("a bulk row of {table} exists")))?;
    }
    Ok(total)
}

fn text(value: &str) -> Value {
    Value::Text(Some(value.to_string()))
}

/// Applies a bulk insert inside the batch's transaction.
pub(crate) async fn apply(tx: &mut Tx<'_>, mutation: &Mutation) -> Result<()> {
    let Mutation::BulkInsert { applications, versions } = mutation else {
        return Err(CoreError::Internal(format!("mutation {mutation:?} reached no table")));
    };
    insert_applications(tx, applications).await?;
    let secrets: Vec<Vec<Value>> = versions
        .iter()
        .filter(|v| v.ordinal == 1)
        .map(|v| vec![text(&v.vault_id), text(&name_key(&v.name)), text(&v.name), Value::Int(None), Value::Int(None)])
        .collect();
    insert_rows(tx, "vault_secrets", &["vault_id", "name_key", "name", "deleted_at", "scheduled_purge_at"], secrets).await?;
    let rows: Vec<Vec<Value>> = versions.iter().map(version_row).collect();
    insert_rows(
        tx,
        "vault_secret_versions",
        &["vault_id", "name_key", "ordinal", "version", "data_key_id", "sealed", "properties", "created_at", "updated_at"],
        rows,
    )
    .await?;
    Ok(())
}

fn version_row(v: &SecretVersion) -> Vec<Value> {
    vec![
        text(&v.vault_id),
        text(&name_key(&v.name)),
        Value::Int(Some(v.ordinal)),
        text(&v.version),
        text(&v.data_key_id),
        Value::Bytes(Some(v.sealed.clone())),
        Value::Text(Some(json!(v.properties).to_string())),
        Value::Int(Some(micros(v.created))),
        Value::Int(Some(micros(v.updated))),
    ]
}

async fn insert_applications(tx: &mut Tx<'_>, applications: &[Application]) -> Result<()> {
    if applications.iter().any(|a| !a.identifier_uris.is_empty()) {
        return Err(CoreError::Invalid("bulk-loaded applications carry no identifier URIs".into()));
    }
    let rows: Vec<Vec<Value>> = applications
        .iter()
        .map(|a| {
            vec![
                text(&a.id),
                text(&a.tenant_id),
                text(&a.app_id),
                text(&a.service_principal_id),
                text(&a.display_name),
                Value::Text(Some(crate::apply::application_body(a))),
                Value::Int(Some(i64::from(a.builtin))),
                Value::Int(Some(micros(a.created_at))),
            ]
        })
        .collect();
    insert_rows(
        tx,
        "applications",
        &["id", "tenant_id", "app_id", "service_principal_id", "display_name", "body", "builtin", "created_at"],
        rows,
    )
    .await?;
    let credentials: Vec<Vec<Value>> = applications
        .iter()
        .flat_map(|a| {
            a.password_credentials.iter().map(move |c| {
                vec![
                    text(&c.key_id),
                    text(&a.tenant_id),
                    text(&a.id),
                    Value::Text(c.display_name.clone()),
                    text(&c.hint),
                    Value::Bytes(Some(c.hash.as_bytes().to_vec())),
                    Value::Int(Some(micros(c.start))),
                    Value::Int(Some(micros(c.end))),
                    Value::Int(Some(micros(c.created_at))),
                ]
            })
        })
        .collect();
    insert_rows(
        tx,
        "password_credentials",
        &["key_id", "tenant_id", "application_id", "display_name", "hint", "secret_hash", "start_at", "end_at", "created_at"],
        credentials,
    )
    .await?;
    Ok(())
}
