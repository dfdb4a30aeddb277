//! The audit log: fail-closed (a change whose record cannot be written does not happen) and
//! tamper-evident (an edited, deleted or reordered record breaks the chain).

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::Executor as _;

use clavis_core::audit::{verify_chain, GENESIS_HASH};
use clavis_core::store::Store as _;

use crate::both_backends;
use crate::support::{assert_graph_error, Backend};

both_backends!(a_change_whose_audit_record_fails_does_not_happen, |app| Box::pin(async move {
    let pool = app.store.write_pool().clone();
    let refuse = match app.backend {
        Backend::Sqlite => vec!["CREATE TRIGGER refuse_audit BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'audit refused'); END"],
        Backend::Postgres => vec![
            "CREATE FUNCTION refuse_audit() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'audit refused'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION refuse_audit()",
        ],
    };
    for statement in refuse {
        pool.execute(statement).await.unwrap();
    }
    let head = app.audit_head().await;
    let (status, body) = app.api(Method::POST, "/v1.0/applications", Some(json!({"displayName": "ghost"}))).await;
    assert_graph_error(status, &body, 503, "ServiceUnavailable");
    assert!(!body.to_string().contains("audit refused"), "store details stay in the logs");
    let drop = match app.backend {
        Backend::Sqlite => "DROP TRIGGER refuse_audit",
        Backend::Postgres => "DROP TRIGGER refuse_audit ON audit",
    };
    pool.execute(drop).await.unwrap();
    let (status, list) = app.api(Method::GET, "/v1.0/applications", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!list.to_string().contains("ghost"), "the application was created without its audit record");
    assert_eq!(app.audit_head().await, head);
    app
}));

both_backends!(tampering_breaks_the_chain, |app| Box::pin(async move {
    let created = app.create_app("audited", &[]).await;
    app.add_secret(&created, json!({})).await;
    let records = app.store.audit_records(0, 1000).await.unwrap();
    assert_eq!(verify_chain(&records, 0, GENESIS_HASH.to_string()), None);
    assert!(records.iter().any(|r| r.action == "credential.add" && r.target_id == created["id"].as_str().unwrap()));
    let pool = app.store.write_pool().clone();
    let victim = records[records.len() / 2].seq;
    // Edit a record's details.
    sqlx::query("UPDATE audit SET details = '{\"displayName\":\"forged\"}' WHERE seq = $1").bind(victim).execute(&pool).await.unwrap();
    let tampered = app.store.audit_records(0, 1000).await.unwrap();
    assert_eq!(verify_chain(&tampered, 0, GENESIS_HASH.to_string()), Some(victim));
    // Delete a record instead.
    sqlx::query("DELETE FROM audit WHERE seq = $1").bind(victim).execute(&pool).await.unwrap();
    let gapped = app.store.audit_records(0, 1000).await.unwrap();
    assert_eq!(verify_chain(&gapped, 0, GENESIS_HASH.to_string()), Some(victim + 1));
    // Put the original back so the harness's final chain check holds.
    let original = &records[records.len() / 2];
    sqlx::query("INSERT INTO audit (seq, at, tenant_id, actor, action, target_type, target_id, result, context, details, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
        .bind(original.seq)
        .bind(i64::try_from(original.at.unix_timestamp_nanos() / 1000).unwrap())
        .bind(&original.tenant_id)
        .bind(json!(original.actor).to_string())
        .bind(&original.action)
        .bind(&original.target_type)
        .bind(&original.target_id)
        .bind(&original.result)
        .bind(json!(original.context).to_string())
        .bind(original.details.to_string())
        .bind(&original.prev_hash)
        .bind(&original.hash)
        .execute(&pool)
        .await
        .unwrap();
    let restored = app.store.audit_records(0, 1000).await.unwrap();
    assert_eq!(verify_chain(&restored, 0, GENESIS_HASH.to_string()), None);
    app
}));

both_backends!(verification_finds_edits_and_truncation_and_filters_work, |app| Box::pin(async move {
    let created = app.create_app("watched", &[]).await;
    app.add_secret(&created, json!({})).await;
    assert!(app.core.checkpoint().await.unwrap().is_some());
    assert_eq!(app.core.checkpoint().await.unwrap(), None, "nothing new to sign");
    let (status, verdict) = app.api(Method::POST, "/v1.0/clavis/auditVerify", Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{verdict}");
    assert_eq!(verdict["intact"], true, "{verdict}");
    assert_eq!(verdict["checkpointsVerified"], 1);
    // Filters.
    let (_, found) = app
        .api(Method::GET, &format!("/v1.0/clavis/auditRecords?action=credential.&target={}", created["id"].as_str().unwrap()), None)
        .await;
    let actions: Vec<&str> = found["value"].as_array().unwrap().iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(actions, vec!["credential.add"]);
    let (_, by_admin) =
        app.api(Method::GET, &format!("/v1.0/clavis/auditRecords?principal={}&action=application.create", app.admin_client_id), None).await;
    assert_eq!(by_admin["value"].as_array().unwrap().len(), 1);
    let (status, _) = app.api(Method::GET, "/v1.0/clavis/auditRecords?since=yesterday", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // An edit is found, and named.
    let pool = app.store.write_pool().clone();
    let head = app.audit_head().await;
    let original: (String,) = sqlx::query_as("SELECT details FROM audit WHERE seq = $1").bind(head).fetch_one(&pool).await.unwrap();
    sqlx::query("UPDATE audit SET details = '{}' WHERE seq = $1").bind(head).execute(&pool).await.unwrap();
    let (_, verdict) = app.api(Method::POST, "/v1.0/clavis/auditVerify", Some(json!({}))).await;
    assert_eq!(verdict["intact"], false);
    assert_eq!(verdict["firstTamperedSeq"], head);
    sqlx::query("UPDATE audit SET details = $1 WHERE seq = $2").bind(&original.0).bind(head).execute(&pool).await.unwrap();
    // Deleting the newest record (and moving the head back) is caught by the signed checkpoint.
    let last = app.store.audit_records(head - 1, 1).await.unwrap().pop().unwrap();
    let previous = app.store.audit_records(head - 2, 1).await.unwrap().pop().unwrap();
    sqlx::query("DELETE FROM audit WHERE seq = $1").bind(head).execute(&pool).await.unwrap();
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(previous.seq)
        .bind(&previous.hash)
        .execute(&pool)
        .await
        .unwrap();
    let (_, verdict) = app.api(Method::POST, "/v1.0/clavis/auditVerify", Some(json!({}))).await;
    assert_eq!(verdict["intact"], false, "{verdict}");
    assert!(verdict["problem"].as_str().unwrap().contains("checkpoint"), "{verdict}");
    // Put it back for the harness's final check.
    sqlx::query("INSERT INTO audit (seq, at, tenant_id, actor, action, target_type, target_id, result, context, details, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
        .bind(last.seq)
        .bind(i64::try_from(last.at.unix_timestamp_nanos() / 1000).unwrap())
        .bind(&last.tenant_id)
        .bind(json!(last.actor).to_string())
        .bind(&last.action)
        .bind(&last.target_type)
        .bind(&last.target_id)
        .bind(&last.result)
        .bind(json!(last.context).to_string())
        .bind(last.details.to_string())
        .bind(&last.prev_hash)
        .bind(&last.hash)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1").bind(last.seq).bind(&last.hash).execute(&pool).await.unwrap();
    app
}));
