//! Automatic rotation into the vault: the application keeps working through the overlap, a step
//! that fails half-way leaves nothing behind, a restart resumes where the state says.

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::Executor as _;

use clavis_core::clock::FixedClock;
use clavis_core::store::Store as _;

use crate::both_backends;
use crate::support::{assert_entra_error, Backend, TestApp};

async fn published(app: &TestApp) -> (String, Value) {
    let token = app.vault_token(&app.admin_client_id, &app.admin_secret.clone()).await;
    let response = app
        .vault_http("kv1")
        .get(format!("{}/secrets/worker-secret/?api-version=7.6", app.vault_url("kv1")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let value = body["value"].as_str().unwrap().to_string();
    app.remember(&value);
    (value, body)
}

async fn key_ids(app: &TestApp, id: &str) -> Vec<String> {
    let application = app.store.application(&app.tenant_id, id).await.unwrap().unwrap();
    application.password_credentials.iter().map(|c| c.key_id.clone()).collect()
}

both_backends!(rotation_publishes_overlaps_and_survives_failures, |app| Box::pin(async move {
    let (status, _) = app.api(Method::POST, "/v1.0/clavis/vaults", Some(json!({"name": "kv1"}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let worker = app.create_app("worker", &[]).await;
    let (object_id, client_id) = (worker["id"].as_str().unwrap().to_string(), worker["appId"].as_str().unwrap().to_string());
    let policy =
        json!({"rotateBeforeExpiryDays": 30, "overlapDays": 7, "secretLifetimeDays": 90, "vault": "kv1", "secretName": "worker-secret"});
    let (status, body) = app.api(Method::PUT, &format!("/v1.0/applications/{object_id}/rotationPolicy"), Some(policy)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"]["state"], "idle");

    // First run: the application has no secret, so it gets one, published to the vault.
    assert_eq!(app.core.run_rotations().await.unwrap(), 1);
    let (first, bundle) = published(&app).await;
    assert_eq!(bundle["tags"]["clavis-app-id"], client_id.as_str());
    assert_eq!(app.token(&client_id, &first, "api://clavis/.default").await.0, StatusCode::OK);
    assert_eq!(app.core.run_rotations().await.unwrap(), 0, "nothing is due during the overlap");
    app.clock.advance(time::Duration::days(7));
    assert_eq!(app.core.run_rotations().await.unwrap(), 1, "the overlap ends");
    assert_eq!(key_ids(&app, &object_id).await.len(), 1);

    // 60 days in, the secret is due. A failure in the middle of the step (the vault write)
    // leaves nothing behind: no secret without its published value.
    app.clock.advance(time::Duration::days(53) + time::Duration::minutes(1));
    let pool = app.store.write_pool().clone();
    let (create, drop) = match app.backend {
        Backend::Sqlite => (
            vec!["CREATE TRIGGER refuse_version BEFORE INSERT ON vault_secret_versions BEGIN SELECT RAISE(ABORT, 'refused'); END"],
            "DROP TRIGGER refuse_version",
        ),
        Backend::Postgres => (
            vec![
                "CREATE FUNCTION refuse_version() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$ LANGUAGE plpgsql",
                "CREATE TRIGGER refuse_version BEFORE INSERT ON vault_secret_versions FOR EACH ROW EXECUTE FUNCTION refuse_version()",
            ],
            "DROP TRIGGER refuse_version ON vault_secret_versions",
        ),
    };
    for statement in create {
        pool.execute(statement).await.unwrap();
    }
    assert_eq!(app.core.run_rotations().await.unwrap(), 0);
    assert_eq!(key_ids(&app, &object_id).await.len(), 1, "a failed step added no secret");
    pool.execute(drop).await.unwrap();
    // A restart (a new core over the same store) resumes from the stored state.
    let restarted = app.node(Arc::new(FixedClock::new(app.core.now()))).await;
    assert_eq!(restarted.run_rotations().await.unwrap(), 1);
    assert_eq!(app.core.run_rotations().await.unwrap(), 0, "exactly one rotation, whoever runs the job");
    let keys = key_ids(&app, &object_id).await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    app.core.refresh().await.unwrap();
    let (second, _) = published(&app).await;
    assert_ne!(first, second);
    // Through the overlap both secrets work.
    assert_eq!(app.token(&client_id, &first, "api://clavis/.default").await.0, StatusCode::OK);
    assert_eq!(app.token(&client_id, &second, "api://clavis/.default").await.0, StatusCode::OK);
    app.clock.advance(time::Duration::days(7) + time::Duration::minutes(1));
    assert_eq!(app.core.run_rotations().await.unwrap(), 1);
    let (status, body) = app.token(&client_id, &first, "api://clavis/.default").await;
    assert_entra_error(status, &body, 401, "invalid_client", 7000215);
    assert_eq!(app.token(&client_id, &second, "api://clavis/.default").await.0, StatusCode::OK);
    // Rotation on demand, and the events it wrote.
    let (_, fresh) = app.token(&app.admin_client_id, &app.admin_secret.clone(), "api://clavis/.default").await;
    let admin = fresh["access_token"].as_str().unwrap().to_string();
    let (status, body) = app.api_as(&admin, Method::POST, &format!("/v1.0/applications/{object_id}/rotatePassword"), Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (third, _) = published(&app).await;
    assert_ne!(third, second);
    let events = app.store.events(0, 1000).await.unwrap();
    assert_eq!(events.iter().filter(|(_, e)| e.event_type == "CredentialRotated").count(), 3);
    let (status, body) = app.api_as(&admin, Method::GET, &format!("/v1.0/applications/{object_id}/rotationPolicy"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["state"]["state"], "overlapping");
    assert!(body["nextStepDateTime"].is_string());
    // Bad policies are refused.
    for bad in [
        json!({"rotateBeforeExpiryDays": 30, "rotateEveryDays": 10, "overlapDays": 7, "secretLifetimeDays": 90, "vault": "kv1", "secretName": "s"}),
        json!({"rotateBeforeExpiryDays": 30, "overlapDays": 7, "secretLifetimeDays": 90, "vault": "nowhere", "secretName": "s"}),
    ] {
        let (status, _) = app.api_as(&admin, Method::PUT, &format!("/v1.0/applications/{object_id}/rotationPolicy"), Some(bad)).await;
        assert!(status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND, "{status}");
    }
    app
}));
