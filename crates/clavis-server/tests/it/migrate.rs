//! `clavis migrate`: a whole instance copied SQLite → PostgreSQL → SQLite, row for row, with its
//! audit chain, and still working on the copy with the same master key.

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::json;

use clavis_core::clock::{Clock as _, FixedClock};
use clavis_core::token::{ClientCredentialsRequest, EndpointVersion};
use clavis_core::Core;
use clavis_crypto::{Algorithm, MasterKey};
use clavis_store::migrate::copy_instance;
use clavis_store::SqlStore;

use crate::support::{drop_postgres_database, dumps, fresh_postgres_database, settings, spawn, Backend};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_moves_between_sqlite_and_postgres_and_back() {
    let app = spawn(Backend::Sqlite).await;
    // Something of everything: applications, secrets with last use, roles, a vault with values,
    // events, a portal account, and a signed audit checkpoint.
    let api = app.create_app("orders-api", &["api://orders"]).await;
    let worker = app.create_app("worker", &[]).await;
    let (_, secret) = app.add_secret(&worker, json!({"displayName": "s1"})).await;
    let (status, _) = app
        .api(Method::POST, &format!("/v1.0/applications/{}/appRoles", api["id"].as_str().unwrap()), Some(json!({"value": "Orders.Read"})))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let worker_id = worker["appId"].as_str().unwrap().to_string();
    assert_eq!(app.token(&worker_id, &secret, "api://orders/.default").await.0, StatusCode::OK);
    let (status, _) = app.api(Method::POST, "/v1.0/clavis/vaults", Some(json!({"name": "kv1"}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) =
        app.api(Method::POST, "/v1.0/clavis/admins", Some(json!({"userName": "alice", "password": "correct horse battery staple"}))).await;
    assert_eq!(status, StatusCode::CREATED);
    app.remember("correct horse battery staple");
    let vault_token = app.vault_token(&app.admin_client_id, &app.admin_secret).await;
    app.remember("migrated-value");
    let response = app
        .vault_http("kv1")
        .put(format!("{}/secrets/db?api-version=7.6", app.vault_url("kv1")))
        .bearer_auth(&vault_token)
        .json(&json!({"value": "migrated-value"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    app.core.flush_usage().await.unwrap();
    app.core.checkpoint().await.unwrap().expect("a checkpoint");

    let source = app.store.clone();
    let (pg_url, pg_name) = fresh_postgres_database().await;
    let postgres = SqlStore::open(&pg_url).await.unwrap();
    let report = copy_instance(&source, &postgres, false, |_, _| {}).await.unwrap();
    assert_eq!(report.audit_records, app.audit_head().await);
    assert!(report.tables.iter().any(|(table, rows)| *table == "vault_secret_versions" && *rows == 1), "{report:?}");
    let original = dumps(&source).await;
    assert_eq!(dumps(&postgres).await, original, "PostgreSQL holds the same rows");

    // A target holding an instance is refused without --force, and replaced with it.
    let refused = copy_instance(&source, &postgres, false, |_, _| {}).await.unwrap_err();
    assert!(refused.to_string().contains("--force"), "{refused}");
    copy_instance(&source, &postgres, true, |_, _| {}).await.unwrap();
    assert_eq!(dumps(&postgres).await, original);

    // And back to a new SQLite file.
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqlStore::open(&format!("sqlite://{}", dir.path().join("copy.db").display())).await.unwrap();
    copy_instance(&postgres, &sqlite, false, |_, _| {}).await.unwrap();
    assert_eq!(dumps(&sqlite).await, original, "the round trip loses nothing");

    // The PostgreSQL copy serves with the same master key: the old secret still gets a token,
    // and new changes extend the copied chain.
    let clock = Arc::new(FixedClock::new(app.clock.now()));
    let master = MasterKey::parse(&app.master_key_text).unwrap();
    let postgres = Arc::new(postgres);
    let (core, bootstrap) = Core::open(postgres.clone(), clock, master, settings(&app.url, Algorithm::RS256)).await.unwrap();
    assert!(bootstrap.is_none(), "the copy is an existing instance");
    let issued = core
        .issue_token(&ClientCredentialsRequest {
            tenant: &app.tenant_id,
            endpoint: EndpointVersion::V2,
            client_id: &worker_id,
            client_secret: Some(&secret),
            has_assertion: false,
            scope: Some("api://orders/.default"),
            resource: None,
            client_ip: "127.0.0.1",
        })
        .await
        .unwrap();
    app.remember(&issued.access_token);
    assert!(core.verify_token(&issued.access_token).is_ok());
    core.checkpoint().await.unwrap();
    clavis_store::migrate::verify_chain(&postgres).await.unwrap();
    drop(core);
    drop_postgres_database(&pg_name).await;
    app.finish().await;
}
