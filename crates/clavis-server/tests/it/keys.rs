//! Key management: signing-key rotation with publication ahead, algorithm changes, and
//! master-key rotation while serving.

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use clavis_core::clock::FixedClock;
use clavis_core::Core;
use clavis_crypto::{Algorithm, MasterKey};

use crate::both_backends;
use crate::support::{claims, settings};

fn kid(token: &str) -> String {
    let header: Value = serde_json::from_slice(&clavis_crypto::b64url_decode(token.split('.').next().unwrap()).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_string()
}

both_backends!(signing_keys_rotate_with_publication_ahead, |app| Box::pin(async move {
    let client = app.create_app("rotating", &[]).await;
    let (_, secret) = app.add_secret(&client, json!({})).await;
    let client_id = client["appId"].as_str().unwrap().to_string();
    let jwks_url = format!("{}/{}/discovery/v2.0/keys", app.url, app.tenant_id);
    let first = kid(app.token(&client_id, &secret, "api://clavis/.default").await.1["access_token"].as_str().unwrap());
    // 89 days later the successor is published, but the first key still signs.
    app.clock.advance(time::Duration::days(89) + time::Duration::hours(1));
    assert_eq!(app.core.rotate_signing_keys().await.unwrap(), 1);
    assert_eq!(app.core.rotate_signing_keys().await.unwrap(), 0, "idempotent");
    let jwks: Value = app.http.get(&jwks_url).send().await.unwrap().json().await.unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    assert_eq!(kid(app.token(&client_id, &secret, "api://clavis/.default").await.1["access_token"].as_str().unwrap()), first);
    // Once due, the successor signs; the old key stays published until its tokens expired.
    app.clock.advance(time::Duration::days(1));
    let second = kid(app.token(&client_id, &secret, "api://clavis/.default").await.1["access_token"].as_str().unwrap());
    assert_ne!(second, first);
    let jwks: Value = app.http.get(&jwks_url).send().await.unwrap().json().await.unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    app.clock.advance(time::Duration::hours(3));
    app.core.rotate_signing_keys().await.unwrap();
    let jwks: Value = app.http.get(&jwks_url).send().await.unwrap().json().await.unwrap();
    let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids, vec![second.as_str()]);
    app
}));

both_backends!(algorithm_change_signs_with_the_new_algorithm, |app| {
    Box::pin(async move {
        for (name, kty) in [("EdDSA", "OKP"), ("ES256", "EC"), ("RS256", "RSA")] {
            let (status, body) = app.api(Method::PATCH, "/v1.0/organization", Some(json!({"signingAlgorithm": name}))).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let (_, body) = app.token(&app.admin_client_id, "x", "api://clavis/.default").await;
            assert_eq!(body["error"], "invalid_client");
            let client = app.create_app(&format!("alg-{name}"), &[]).await;
            let (_, secret) = app.add_secret(&client, json!({})).await;
            let (status, body) = app.token(client["appId"].as_str().unwrap(), &secret, "api://clavis/.default").await;
            assert_eq!(status, StatusCode::OK);
            let token = body["access_token"].as_str().unwrap();
            let header: Value = serde_json::from_slice(&clavis_crypto::b64url_decode(token.split('.').next().unwrap()).unwrap()).unwrap();
            assert_eq!(header["alg"], name);
            let jwks: Value =
                app.http.get(format!("{}/{}/discovery/v2.0/keys", app.url, app.tenant_id)).send().await.unwrap().json().await.unwrap();
            assert!(jwks["keys"].as_array().unwrap().iter().any(|k| k["kid"] == header["kid"] && k["kty"] == kty));
            assert_eq!(claims(token)["tid"], app.tenant_id);
        }
        app
    })
});

both_backends!(master_key_rotation_rewraps_while_serving, |app| Box::pin(async move {
    let client = app.create_app("survivor", &[]).await;
    let (_, secret) = app.add_secret(&client, json!({})).await;
    let client_id = client["appId"].as_str().unwrap().to_string();
    let old_key = app.master_key_text.clone();
    let old_id = MasterKey::parse(&old_key).unwrap().id().to_string();
    let (status, body) = app.api(Method::POST, "/v1.0/clavis/rotateMasterKey", Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let new_id = body["masterKeyId"].as_str().unwrap().to_string();
    assert_ne!(new_id, old_id);
    let stored = std::fs::read_to_string(body["storedIn"].as_str().unwrap()).unwrap();
    app.remember(stored.trim());
    app.remember(&old_key);
    assert_eq!(MasterKey::parse(&stored).unwrap().id(), new_id);
    // Still serving with the same secrets.
    assert_eq!(app.token(&client_id, &secret, "api://clavis/.default").await.0, StatusCode::OK);
    // A restart with the new key opens the store; the old key no longer does.
    let clock = Arc::new(FixedClock::new(app.core.now()));
    let reopened =
        Core::open(app.store.clone(), clock.clone(), MasterKey::parse(&stored).unwrap(), settings(&app.url, Algorithm::RS256)).await;
    assert!(reopened.is_ok(), "{:?}", reopened.err());
    let refused = Core::open(app.store.clone(), clock, MasterKey::parse(&old_key).unwrap(), settings(&app.url, Algorithm::RS256)).await;
    assert!(refused.err().unwrap().to_string().contains("master key"));
    app
}));

/// Two nodes starting together on one empty PostgreSQL database: one initializes the instance
/// (keys, default tenant, bootstrap credential), the other finds it; no second HMAC key, data
/// key, tenant or signing key, also for a node whose clock lags a second behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_initialize_the_instance_once() {
    let (url, name) = crate::support::fresh_postgres_database().await;
    let master = MasterKey::generate();
    let master_text = master.to_text();
    let base = time::OffsetDateTime::now_utc();
    let start = |url: String, master_text: String, lag: i64| async move {
        let store = Arc::new(clavis_store::SqlStore::open(&url).await.unwrap());
        let clock = Arc::new(FixedClock::new(base - time::Duration::seconds(lag)));
        let (core, bootstrap) =
            Core::open(store.clone(), clock, MasterKey::parse(&master_text).unwrap(), settings("https://localhost:1", Algorithm::ES256))
                .await
                .unwrap();
        (store, core, bootstrap)
    };
    let ((store, _first, a), (_, _second, b)) =
        tokio::join!(start(url.clone(), master_text.clone(), 0), start(url.clone(), master_text.clone(), 0));
    assert_eq!(usize::from(a.is_some()) + usize::from(b.is_some()), 1, "exactly one node bootstraps");
    let (_, _third, c) = start(url.clone(), master_text, 1).await;
    assert!(c.is_none());
    use clavis_core::store::Store as _;
    let wrapped = store.wrapped_keys().await.unwrap();
    assert_eq!(wrapped.iter().filter(|k| k.purpose == "hmac").count(), 1, "one client-secret HMAC key");
    assert_eq!(wrapped.iter().filter(|k| k.purpose == "dek").count(), 1, "one data key");
    assert_eq!(store.tenants().await.unwrap().len(), 1, "one default tenant");
    let keys = store.signing_keys().await.unwrap();
    assert_eq!(keys.iter().filter(|k| !k.tenant_id.is_empty()).count(), 1, "one signing key for the tenant");
    assert_eq!(keys.iter().filter(|k| k.tenant_id.is_empty()).count(), 1, "one instance checkpoint key");
    store.close().await;
    crate::support::drop_postgres_database(&name).await;
}

both_backends!(one_node_holds_the_maintenance_lease_until_it_ends_or_is_released, |app| Box::pin(async move {
    let other = app.node(app.clock.clone()).await;
    let lease = clavis_server::jobs::MAINTENANCE_LEASE;
    let ttl = time::Duration::minutes(3);
    let (first, second) = tokio::join!(app.core.take_lease(lease, ttl), other.take_lease(lease, ttl));
    assert!(first.unwrap() ^ second.unwrap(), "of two nodes asking at once, exactly one holds the lease");
    let (holder, waiting): (&Core, &Core) =
        if app.core.take_lease(lease, ttl).await.unwrap() { (&app.core, &other) } else { (&other, &app.core) };
    assert!(holder.take_lease(lease, ttl).await.unwrap(), "the holder renews");
    assert!(!waiting.take_lease(lease, ttl).await.unwrap());
    // The holder dies: the lease ends three minutes after its last renewal.
    app.clock.advance(time::Duration::minutes(2));
    assert!(!waiting.take_lease(lease, ttl).await.unwrap());
    app.clock.advance(time::Duration::minutes(1));
    assert!(waiting.take_lease(lease, ttl).await.unwrap(), "taken over once it ended");
    assert!(!holder.take_lease(lease, ttl).await.unwrap());
    // A clean shutdown releases it at once.
    waiting.release_lease(lease).await.unwrap();
    assert!(holder.take_lease(lease, ttl).await.unwrap());
    app
}));
