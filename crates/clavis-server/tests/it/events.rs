//! Events and webhooks: expiry notices once per threshold (across a restart), signed
//! deliveries, retries after failures, both payload schemas.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode as AxumStatus};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use clavis_core::clock::FixedClock;
use clavis_core::Core;

use crate::both_backends;
use crate::support::TestApp;

/// A webhook receiver: verifies signatures; fails the first attempt of every event (to see
/// retries), or every attempt.
#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<(String, Value)>>>,
    attempts: Arc<Mutex<usize>>,
    seen: Arc<Mutex<std::collections::HashSet<String>>>,
    fail_always: bool,
    secrets: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    async fn start(fail_always: bool) -> (Self, String) {
        let receiver = Self { fail_always, ..Default::default() };
        let state = receiver.clone();
        let router = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let state = state.clone();
                async move {
                    *state.attempts.lock().unwrap() += 1;
                    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                    if state.fail_always || state.seen.lock().unwrap().insert(header("webhook-id")) {
                        return AxumStatus::INTERNAL_SERVER_ERROR;
                    }
                    let (id, timestamp, signature) = (header("webhook-id"), header("webhook-timestamp"), header("webhook-signature"));
                    let valid = state.secrets.lock().unwrap().iter().any(|secret| {
                        clavis_crypto::webhook::sign(secret, &id, timestamp.parse().unwrap_or(0), &body).ok() == Some(signature.clone())
                    });
                    if !valid {
                        return AxumStatus::UNAUTHORIZED;
                    }
                    state.received.lock().unwrap().push((id, serde_json::from_slice(&body).unwrap()));
                    AxumStatus::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://127.0.0.1:{}/hook", listener.local_addr().unwrap().port());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        (receiver, url)
    }

    /// The received event types (with their thresholds), sorted: deliveries are concurrent, and
    /// webhooks promise no order.
    fn types(&self) -> Vec<String> {
        let mut types: Vec<String> = self
            .received
            .lock()
            .unwrap()
            .iter()
            .map(|(_, body)| {
                let event = if body.is_array() { &body[0] } else { body };
                let kind = event.get("type").or_else(|| event.get("eventType")).and_then(Value::as_str).unwrap_or_default();
                match event["data"]["threshold"].as_str() {
                    Some(threshold) => format!("{kind}:{threshold}"),
                    None => kind.to_string(),
                }
            })
            .collect();
        types.sort();
        types
    }
}

/// Delivers everything due: a first attempt, then the retry after the backoff.
async fn deliver(app: &TestApp, core: &Arc<Core>) {
    dispatch(core).await;
    app.clock.advance(time::Duration::seconds(6));
    dispatch(core).await;
}

fn sorted(items: &[&str]) -> Vec<String> {
    let mut items: Vec<String> = items.iter().map(|s| s.to_string()).collect();
    items.sort();
    items
}

async fn dispatch(core: &Arc<Core>) {
    clavis_server::jobs::dispatch_webhooks(core, &clavis_server::jobs::webhook_client().unwrap()).await;
}

async fn subscribe(app: &TestApp, admin: &str, url: &str, schema: &str, types: &[&str]) -> String {
    let (status, body) = app
        .api_as(admin, Method::POST, "/v1.0/clavis/subscriptions", Some(json!({"url": url, "schema": schema, "eventTypes": types})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let secret = body["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    app.remember(&secret);
    secret
}

both_backends!(notices_arrive_once_per_threshold_signed_and_retried, |app| Box::pin(async move {
    let (credentials, credential_url) = Receiver::start(false).await;
    let (vault_events, vault_url) = Receiver::start(false).await;
    let admin = app.admin_token.clone();
    let secret =
        subscribe(&app, &admin, &credential_url, "CloudEvents", &["CredentialCreated", "CredentialNearExpiry", "CredentialExpired"]).await;
    credentials.secrets.lock().unwrap().push(secret);
    let secret = subscribe(&app, &admin, &vault_url, "EventGrid", &["SecretNewVersionCreated", "SecretNearExpiry", "SecretExpired"]).await;
    vault_events.secrets.lock().unwrap().push(secret);

    let worker = app.create_app("expiring-worker", &[]).await;
    let end = (app.core.now() + time::Duration::days(20)).format(&time::format_description::well_known::Rfc3339).unwrap();
    app.add_secret(&worker, json!({"endDateTime": end})).await;
    let (status, _) = app.api(Method::POST, "/v1.0/clavis/vaults", Some(json!({"name": "kv1"}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let vault_token = app.vault_token(&app.admin_client_id, &app.admin_secret.clone()).await;
    let exp = app.core.now().unix_timestamp() + 12 * 86_400;
    let response = app
        .vault_http("kv1")
        .put(format!("{}/secrets/db?api-version=7.6", app.vault_url("kv1")))
        .bearer_auth(&vault_token)
        .json(&json!({"value": "notice-me", "attributes": {"exp": exp}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    app.remember("notice-me");

    let core = app.core.clone();
    // 20 days left: the 30-day notice; the first attempt to the credential receiver fails.
    assert_eq!(core.scan_notices().await.unwrap(), 2);
    assert_eq!(core.scan_notices().await.unwrap(), 0, "a scan never repeats a notice");
    dispatch(&core).await;
    assert_eq!(credentials.types(), Vec::<String>::new(), "every first attempt fails");
    dispatch(&core).await;
    assert_eq!(*credentials.attempts.lock().unwrap(), 2, "no retry before the backoff");
    app.clock.advance(time::Duration::seconds(6));
    dispatch(&core).await;
    assert_eq!(credentials.types(), sorted(&["Clavis.CredentialCreated", "Clavis.CredentialNearExpiry:30d"]));
    assert_eq!(vault_events.types(), sorted(&["Microsoft.KeyVault.SecretNewVersionCreated", "Microsoft.KeyVault.SecretNearExpiry:14d"]));

    // Travel through the thresholds (credential: 13, 6 and 1 days left; the secret: 5 days
    // left, then expired); a restarted core over the same store sends nothing twice.
    for (days, notices) in [(7, 2), (7, 2), (5, 1)] {
        app.clock.advance(time::Duration::days(days));
        assert_eq!(core.scan_notices().await.unwrap(), notices, "after {days} more days");
        deliver(&app, &core).await;
    }
    let restarted = app.node(Arc::new(FixedClock::new(app.core.now()))).await;
    assert_eq!(restarted.scan_notices().await.unwrap(), 0);
    deliver(&app, &restarted).await;
    app.clock.advance(time::Duration::days(2));
    assert_eq!(core.scan_notices().await.unwrap(), 1, "the credential expired");
    deliver(&app, &core).await;
    assert_eq!(
        credentials.types(),
        sorted(&[
            "Clavis.CredentialCreated",
            "Clavis.CredentialNearExpiry:30d",
            "Clavis.CredentialNearExpiry:14d",
            "Clavis.CredentialNearExpiry:7d",
            "Clavis.CredentialNearExpiry:1d",
            "Clavis.CredentialExpired:expired",
        ])
    );
    assert_eq!(
        vault_events.types(),
        sorted(&[
            "Microsoft.KeyVault.SecretNewVersionCreated",
            "Microsoft.KeyVault.SecretNearExpiry:14d",
            "Microsoft.KeyVault.SecretNearExpiry:7d",
            "Microsoft.KeyVault.SecretExpired:expired"
        ])
    );
    let mut ids: Vec<String> = credentials.received.lock().unwrap().iter().map(|(id, _)| id.clone()).collect();
    ids.sort();
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(ids, unique, "every event is delivered once");
    // Event Grid's data keys for Key Vault events.
    let grid = vault_events
        .received
        .lock()
        .unwrap()
        .iter()
        .map(|(_, body)| body.clone())
        .find(|body| body[0]["eventType"] == "Microsoft.KeyVault.SecretNearExpiry")
        .unwrap();
    assert_eq!(grid[0]["data"]["VaultName"], "kv1");
    assert_eq!(grid[0]["data"]["ObjectName"], "db");
    assert_eq!(grid[0]["data"]["EXP"], exp);
    assert!(grid[0]["data"]["Id"].as_str().unwrap().starts_with("https://kv1.vault.localhost:"));
    // The event list shows delivery state.
    let (_, fresh) = app.token(&app.admin_client_id, &app.admin_secret.clone(), "api://clavis/.default").await;
    let (status, listed) = app.api_as(fresh["access_token"].as_str().unwrap(), Method::GET, "/v1.0/clavis/events", None).await;
    assert_eq!(status, StatusCode::OK);
    let retried = listed["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["eventType"] == "CredentialCreated" && e["subject"].as_str().unwrap().contains(worker["id"].as_str().unwrap()))
        .unwrap();
    assert_eq!(retried["deliveries"][0]["status"], "delivered");
    assert_eq!(retried["deliveries"][0]["attempts"], 2);
    app
}));

both_backends!(test_events_and_failing_receivers, |app| Box::pin(async move {
    let (receiver, url) = Receiver::start(true).await;
    let admin = app.admin_token.clone();
    let secret = subscribe(&app, &admin, &url, "CloudEvents", &[]).await;
    receiver.secrets.lock().unwrap().push(secret);
    let (status, body) = app.api(Method::GET, "/v1.0/clavis/subscriptions", None).await;
    assert_eq!(status, StatusCode::OK);
    let id = body["value"][0]["id"].as_str().unwrap().to_string();
    assert!(body["value"][0].get("secret").is_none(), "the secret is shown once");
    let (status, _) = app.api(Method::POST, &format!("/v1.0/clavis/subscriptions/{id}/test"), Some(json!({}))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    for _ in 0..12 {
        dispatch(&app.core).await;
        app.clock.advance(time::Duration::hours(1));
    }
    let (_, fresh) = app.token(&app.admin_client_id, &app.admin_secret.clone(), "api://clavis/.default").await;
    let (_, listed) = app.api_as(fresh["access_token"].as_str().unwrap(), Method::GET, "/v1.0/clavis/events", None).await;
    let test = listed["value"].as_array().unwrap().iter().find(|e| e["eventType"] == "SubscriptionTest").unwrap();
    assert_eq!(test["deliveries"][0]["status"], "failed");
    assert_eq!(test["deliveries"][0]["attempts"], 10);
    assert_eq!(test["deliveries"][0]["lastError"], "HTTP 500");
    // Bad subscriptions are refused.
    for body in [
        json!({"url": "http://example.com/hook"}),
        json!({"url": "https://x/hook", "schema": "xml"}),
        json!({"url": "https://x/hook", "eventTypes": ["Nope"]}),
    ] {
        let (status, answer) =
            app.api_as(fresh["access_token"].as_str().unwrap(), Method::POST, "/v1.0/clavis/subscriptions", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    }
    app
}));

both_backends!(a_delivery_is_claimed_by_one_node_until_its_lease_ends, |app| Box::pin(async move {
    let (receiver, url) = Receiver::start(false).await;
    let admin = app.admin_token.clone();
    let secret = subscribe(&app, &admin, &url, "CloudEvents", &["CredentialCreated"]).await;
    receiver.secrets.lock().unwrap().push(secret);
    let worker = app.create_app("claimed-worker", &[]).await;
    app.add_secret(&worker, json!({})).await;
    app.add_secret(&worker, json!({})).await;
    // A second node over the same store and clock.
    let other = app.node(app.clock.clone()).await;
    let core = app.core.clone();
    core.fan_out().await.unwrap();
    other.fan_out().await.unwrap();
    let claimed = core.due_deliveries(100).await.unwrap();
    assert_eq!(claimed.len(), 2, "two credentials created, one subscription");
    assert!(other.due_deliveries(100).await.unwrap().is_empty(), "claimed deliveries are not sent by another node");
    // The claiming node dies without recording anything: after the lease the other node sends.
    drop(claimed);
    app.clock.advance(time::Duration::seconds(61));
    assert_eq!(other.due_deliveries(100).await.unwrap().len(), 2);
    assert!(core.due_deliveries(100).await.unwrap().is_empty());
    app
}));
