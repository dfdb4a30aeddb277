//! Lifecycle: revocation of leaked secrets and their tokens, introspection (RFC 7662) and token
//! revocation (RFC 7009).

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use clavis_core::store::Store as _;

use crate::support::{assert_entra_error, TestApp};

async fn form(app: &TestApp, path: &str, pairs: &[(&str, &str)]) -> (StatusCode, Value) {
    let response = app.http.post(format!("{}/{}/oauth2/v2.0/{path}", app.url, app.tenant_id)).form(pairs).send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
}

both_backends!(a_revoked_secret_and_its_tokens_stop_working_at_once, |app| Box::pin(async move {
    let (status, _) = app.api(Method::POST, "/v1.0/clavis/vaults", Some(json!({"name": "kv1"}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let worker = app.create_app("leaky", &[]).await;
    let (leaked, secret) = app.add_secret(&worker, json!({})).await;
    let (_, spare) = app.add_secret(&worker, json!({})).await;
    let client_id = worker["appId"].as_str().unwrap().to_string();
    let (status, _) = app
        .api(
            Method::POST,
            "/v1.0/clavis/vaultRoleAssignments",
            Some(json!({"principalId": client_id, "role": "Secrets Officer", "scope": "/vaults/kv1"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let vault_token = app.vault_token(&client_id, &secret).await;
    let spare_token = app.vault_token(&client_id, &spare).await;
    let read = |token: String| {
        let app = &app;
        async move {
            app.vault_http("kv1")
                .get(format!("{}/secrets?api-version=7.6", app.vault_url("kv1")))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(read(vault_token.clone()).await, 200);
    let (status, body) = app
        .api(
            Method::POST,
            &format!("/v1.0/applications/{}/revokePassword", worker["id"].as_str().unwrap()),
            Some(json!({"keyId": leaked, "reason": "compromised"})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    // The leaked secret cannot get tokens; the tokens it got are refused at once; the other
    // secret and its tokens keep working.
    let (status, body) = app.token(&client_id, &secret, "api://clavis/.default").await;
    assert_entra_error(status, &body, 401, "invalid_client", 7000215);
    assert_eq!(read(vault_token.clone()).await, 401);
    assert_eq!(read(spare_token.clone()).await, 200);
    let records = app.store.audit_records(0, 1000).await.unwrap();
    assert!(records.iter().any(|r| r.action == "credential.revoke"));
    let (_, events) = (0, app.store.events(0, 100).await.unwrap());
    assert!(events.iter().any(|(_, e)| e.event_type == "CredentialRemoved" && e.data["reason"] == "compromised"));
    app
}));

both_backends!(introspection_and_token_revocation, |app| Box::pin(async move {
    let api = app.create_app("orders-api", &["api://orders"]).await;
    let (_, api_secret) = app.add_secret(&api, json!({})).await;
    let client = app.create_app("orders-client", &[]).await;
    let (_, client_secret) = app.add_secret(&client, json!({})).await;
    let other = app.create_app("bystander", &[]).await;
    let (_, other_secret) = app.add_secret(&other, json!({})).await;
    let (api_id, client_id, other_id) =
        (api["appId"].as_str().unwrap(), client["appId"].as_str().unwrap(), other["appId"].as_str().unwrap());
    let (_, issued) = app.token(client_id, &client_secret, "api://orders/.default").await;
    let token = issued["access_token"].as_str().unwrap().to_string();
    // The resource sees the token active with its claims; a bystander sees it inactive.
    let (status, answer) = form(&app, "introspect", &[("token", &token), ("client_id", api_id), ("client_secret", &api_secret)]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["active"], true);
    assert_eq!(answer["client_id"], client_id);
    assert_eq!(answer["aud"], "api://orders");
    let (_, answer) = form(&app, "introspect", &[("token", &token), ("client_id", other_id), ("client_secret", &other_secret)]).await;
    assert_eq!(answer, json!({"active": false}));
    let (_, answer) = form(&app, "introspect", &[("token", "garbage"), ("client_id", api_id), ("client_secret", &api_secret)]).await;
    assert_eq!(answer, json!({"active": false}));
    // Introspection needs client authentication and a token.
    let (status, answer) = form(&app, "introspect", &[("token", &token), ("client_id", api_id), ("client_secret", "wrong")]).await;
    assert_entra_error(status, &answer, 401, "invalid_client", 7000215);
    let (status, answer) = form(&app, "introspect", &[("client_id", api_id), ("client_secret", &api_secret)]).await;
    assert_entra_error(status, &answer, 400, "invalid_request", 900144);
    // RFC 7009: a bystander's revocation is ignored; the client's takes effect.
    let (status, _) = form(&app, "revoke", &[("token", &token), ("client_id", other_id), ("client_secret", &other_secret)]).await;
    assert_eq!(status, 200);
    let (_, answer) = form(&app, "introspect", &[("token", &token), ("client_id", api_id), ("client_secret", &api_secret)]).await;
    assert_eq!(answer["active"], true);
    let (status, _) = form(&app, "revoke", &[("token", &token), ("client_id", client_id), ("client_secret", &client_secret)]).await;
    assert_eq!(status, 200);
    let (_, answer) = form(&app, "introspect", &[("token", &token), ("client_id", api_id), ("client_secret", &api_secret)]).await;
    assert_eq!(answer, json!({"active": false}));
    // Revocations are dropped once the tokens they cover have expired.
    app.clock.advance(time::Duration::hours(3));
    app.core.purge_revocations().await.unwrap();
    assert!(app.store.revocations().await.unwrap().is_empty());
    app
}));

both_backends!(credential_policy_with_application_overrides, |app| Box::pin(async move {
    let old = app.create_app("legacy", &[]).await;
    app.clock.advance(time::Duration::minutes(5));
    let cutoff = app.core.now().format(&time::format_description::well_known::Rfc3339).unwrap();
    app.clock.advance(time::Duration::minutes(5));
    let fresh = app.create_app("fresh", &[]).await;
    let policy = json!({"credentialPolicy": {"maxPasswordLifetimeDays": 365, "defaultPasswordLifetimeDays": 90, "maxPasswordsPerApplication": 5,
        "blockPasswordAddition": true, "blockPasswordAdditionForAppsCreatedAfter": cutoff, "blockCustomPasswords": true, "expiryRequired": true}});
    let (_, fresh_token) = app.token(&app.admin_client_id, &app.admin_secret.clone(), "api://clavis/.default").await;
    let admin = fresh_token["access_token"].as_str().unwrap().to_string();
    let (status, body) = app.api_as(&admin, Method::PATCH, "/v1.0/organization", Some(policy)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Applications created after the cutoff may not add secrets; older ones may.
    let (status, body) = app
        .api_as(&admin, Method::POST, &format!("/v1.0/applications/{}/addPassword", fresh["id"].as_str().unwrap()), Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("passwordAddition"));
    let (status, body) =
        app.api_as(&admin, Method::POST, &format!("/v1.0/applications/{}/addPassword", old["id"].as_str().unwrap()), Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.remember(body["secretText"].as_str().unwrap());
    // A per-application override lifts the block and allows a caller-chosen value.
    let (status, body) = app
        .api_as(
            &admin,
            Method::PATCH,
            &format!("/v1.0/applications/{}", fresh["id"].as_str().unwrap()),
            Some(json!({"credentialPolicy": {"blockPasswordAddition": false, "blockCustomPasswords": false}})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let chosen = "Chosen-Value-For-A-Legacy-Integration-42";
    app.remember(chosen);
    let (status, body) = app
        .api_as(
            &admin,
            Method::POST,
            &format!("/v1.0/applications/{}/addPassword", fresh["id"].as_str().unwrap()),
            Some(json!({"passwordCredential": {"secretText": chosen}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["hint"], "Cho");
    let end = time::OffsetDateTime::parse(body["endDateTime"].as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap();
    assert_eq!((end - app.core.now()).whole_days(), 90, "the tenant's default lifetime");
    let (status, _) = app.token(fresh["appId"].as_str().unwrap(), chosen, "api://clavis/.default").await;
    assert_eq!(status, StatusCode::OK);
    // States: expiring within the notice window, with days unused.
    let near = (app.core.now() + time::Duration::days(10)).format(&time::format_description::well_known::Rfc3339).unwrap();
    let (_, body) = app
        .api_as(
            &admin,
            Method::POST,
            &format!("/v1.0/applications/{}/addPassword", old["id"].as_str().unwrap()),
            Some(json!({"passwordCredential": {"endDateTime": near}})),
        )
        .await;
    app.remember(body["secretText"].as_str().unwrap());
    assert_eq!(body["state"], "expiring");
    assert_eq!(body["daysUntilExpiry"], 10);
    assert_eq!(body["unusedForDays"], 0);
    app
}));
