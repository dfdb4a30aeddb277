//! `clavis backup` / `clavis restore`: a live instance's encrypted snapshot restored onto an
//! empty instance of the other store compares equal table by table, audit chain included; a
//! tampered or foreign-key backup restores nothing.

use reqwest::{Method, StatusCode};
use serde_json::json;

use clavis_crypto::MasterKey;
use clavis_store::backup::{backup, restore};
use clavis_store::SqlStore;

use crate::support::{drop_postgres_database, dumps, fresh_postgres_database, spawn, Backend};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_of_a_live_instance_restores_onto_an_empty_one() {
    let app = spawn(Backend::Postgres).await;
    let worker = app.create_app("worker", &[]).await;
    app.add_secret(&worker, json!({"displayName": "s1"})).await;
    let (status, _) = app.api(Method::POST, "/v1.0/clavis/vaults", Some(json!({"name": "kv1"}))).await;
    assert_eq!(status, StatusCode::CREATED);
    app.remember("backed-up-value");
    let token = app.vault_token(&app.admin_client_id, &app.admin_secret).await;
    let put = app
        .vault_http("kv1")
        .put(format!("{}/secrets/db?api-version=7.6", app.vault_url("kv1")))
        .bearer_auth(&token)
        .json(&json!({"value": "backed-up-value"}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::OK);
    app.core.checkpoint().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clavis.backup");
    let master = MasterKey::parse(&app.master_key_text).unwrap();
    // Taken while the server keeps serving.
    let serving = {
        let app_url = app.url.clone();
        let http = app.http.clone();
        tokio::spawn(async move {
            for _ in 0..50 {
                let _ = http.get(format!("{app_url}/healthz")).send().await;
            }
        })
    };
    let summary = backup(&app.store, &master, &file, "2026-11-27T00:00:00Z").await.unwrap();
    serving.await.unwrap();
    assert_eq!(summary.audit_records, app.audit_head().await);
    let bytes = std::fs::read(&file).unwrap();
    assert!(bytes.starts_with(b"CLAVIS-BACKUP 1\n"));
    assert!(!bytes.windows(15).any(|w| w == b"backed-up-value"), "the backup is encrypted");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }

    // Restored onto an empty SQLite store: the same rows, the same chain.
    let target = SqlStore::open(&format!("sqlite://{}", dir.path().join("restored.db").display())).await.unwrap();
    let report = restore(&file, &master, &target).await.unwrap();
    assert_eq!(report.audit_records, summary.audit_records);
    assert_eq!(dumps(&target).await, dumps(&app.store).await);
    // Not onto an instance.
    assert!(restore(&file, &master, &target).await.unwrap_err().to_string().contains("--force"));

    // A flipped byte, a truncated file or another master key restore nothing.
    let empty = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
    let mut tampered = bytes.clone();
    let last = tampered.len() - 10;
    tampered[last] ^= 1;
    std::fs::write(dir.path().join("tampered"), &tampered).unwrap();
    let store = SqlStore::open(&empty("t1.db")).await.unwrap();
    assert!(restore(&dir.path().join("tampered"), &master, &store).await.unwrap_err().to_string().contains("altered"));
    let mut header = bytes.clone();
    let at = header.iter().position(|b| *b == b'"').unwrap();
    header[at + 1] ^= 0x20;
    std::fs::write(dir.path().join("header"), &header).unwrap();
    assert!(restore(&dir.path().join("header"), &master, &store).await.is_err());
    std::fs::write(dir.path().join("short"), &bytes[..bytes.len() / 2]).unwrap();
    assert!(restore(&dir.path().join("short"), &master, &store).await.is_err());
    assert!(restore(&dir.path().join("clavis.backup"), &MasterKey::generate(), &store)
        .await
        .unwrap_err()
        .to_string()
        .contains("master key"));
    assert!(!store.holds_instance().await.unwrap(), "a refused restore leaves the target empty");

    // And back onto an empty PostgreSQL database.
    let (pg_url, pg_name) = fresh_postgres_database().await;
    let postgres = SqlStore::open(&pg_url).await.unwrap();
    restore(&file, &master, &postgres).await.unwrap();
    assert_eq!(dumps(&postgres).await, dumps(&app.store).await);
    postgres.close().await;
    drop_postgres_database(&pg_name).await;
    app.finish().await;
}
