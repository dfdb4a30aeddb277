//! Troubleshooting: the sign-in log, diagnosis by correlation id, checking a secret without using
//! it, and the error pages.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;

both_backends!(every_failure_is_explained_from_its_correlation_id, |app| Box::pin(async move {
    let worker = app.create_app("diagnosed", &[]).await;
    let client_id = worker["appId"].as_str().unwrap().to_string();
    let now = app.core.now();
    let end = (now + time::Duration::days(1)).format(&time::format_description::well_known::Rfc3339).unwrap();
    let (key_id, secret) = app.add_secret(&worker, json!({"endDateTime": end})).await;
    // A success, a wrong secret, then the same secret once expired.
    assert_eq!(app.token(&client_id, &secret, "api://clavis/.default").await.0, StatusCode::OK);
    let (_, wrong) = app.token(&client_id, "not-the-secret", "api://clavis/.default").await;
    app.clock.advance(time::Duration::days(2));
    let (_, expired) = app.token(&client_id, &secret, "api://clavis/.default").await;
    assert_eq!(expired["error_uri"], format!("{}/error?code=7000222", app.url));
    // A vault failure, diagnosed the same way.
    let (_, fresh) = app.token(&app.admin_client_id, &app.admin_secret.clone(), "api://clavis/.default").await;
    let admin = fresh["access_token"].as_str().unwrap().to_string();
    let (status, missing) = app.api_as(&admin, Method::GET, "/v1.0/applications/00000000-0000-4000-8000-000000000000", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.core.flush_logs().await.unwrap();

    let (status, signins) = app.api_as(&admin, Method::GET, &format!("/v1.0/clavis/signIns?clientId={client_id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{signins}");
    let rows = signins["value"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows.iter().filter(|r| r["result"] == "success").count(), 1);
    assert!(rows.iter().any(|r| r["result"] == "success" && r["keyId"] == key_id.as_str()));
    let (_, failures) = app.api_as(&admin, Method::GET, &format!("/v1.0/clavis/signIns?clientId={client_id}&result=failure"), None).await;
    assert_eq!(failures["value"].as_array().unwrap().len(), 2);

    let diagnose = |correlation: String| {
        let app = &app;
        let admin = admin.clone();
        async move { app.api_as(&admin, Method::GET, &format!("/v1.0/clavis/diagnose/{correlation}"), None).await }
    };
    let (status, wrong_diagnosis) = diagnose(wrong["correlation_id"].as_str().unwrap().to_string()).await;
    assert_eq!(status, StatusCode::OK, "{wrong_diagnosis}");
    assert_eq!(wrong_diagnosis["signIns"][0]["errorCode"], "AADSTS7000215");
    assert!(wrong_diagnosis["signIns"][0]["diagnosis"].as_str().unwrap().contains("matches none of the secrets"));
    let (_, expired_diagnosis) = diagnose(expired["correlation_id"].as_str().unwrap().to_string()).await;
    let text = expired_diagnosis["signIns"][0]["diagnosis"].as_str().unwrap();
    assert!(text.contains(&key_id) && text.contains("expired at"), "{text}");
    let (_, api_diagnosis) = diagnose(missing["error"]["innerError"]["client-request-id"].as_str().unwrap().to_string()).await;
    assert_eq!(api_diagnosis["requestFailures"][0]["status"], 404);
    assert_eq!(api_diagnosis["requestFailures"][0]["errorCode"], "Request_ResourceNotFound");
    let (status, _) = diagnose("no-such-correlation".into()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Checking a secret without using it: no token, no recorded use.
    let (_, added) = app
        .api_as(&admin, Method::POST, &format!("/v1.0/applications/{}/addPassword", worker["id"].as_str().unwrap()), Some(json!({})))
        .await;
    let fresh_secret = added["secretText"].as_str().unwrap().to_string();
    app.remember(&fresh_secret);
    let (status, checked) =
        app.api_as(&admin, Method::POST, "/v1.0/clavis/checkSecret", Some(json!({"clientId": client_id, "secret": fresh_secret}))).await;
    assert_eq!(status, StatusCode::OK, "{checked}");
    assert_eq!(checked["valid"], true);
    let (_, checked) =
        app.api_as(&admin, Method::POST, "/v1.0/clavis/checkSecret", Some(json!({"clientId": client_id, "secret": secret}))).await;
    assert_eq!(checked["valid"], false);
    assert!(checked["diagnosis"].as_str().unwrap().contains("expired"));
    app.core.flush_usage().await.unwrap();
    let (_, listed) = app.api_as(&admin, Method::GET, &format!("/v1.0/applications/{}", worker["id"].as_str().unwrap()), None).await;
    let fresh_entry = listed["passwordCredentials"].as_array().unwrap().iter().find(|c| c["hint"] == fresh_secret[..3]).unwrap();
    assert!(fresh_entry["lastUsed"].is_null(), "a check is not a use");

    // A secret pasted into the client id field is recorded only as its pseudonym, which a
    // filter by the same value still finds; `finish` scans the sign-in log for the secret.
    let (status, _) = app.token(&fresh_secret, &fresh_secret, "api://clavis/.default").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    app.core.flush_logs().await.unwrap();
    let (_, pasted) = app.api_as(&admin, Method::GET, &format!("/v1.0/clavis/signIns?clientId={fresh_secret}"), None).await;
    let rows = pasted["value"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{pasted}");
    let pseudonym = rows[0]["clientId"].as_str().unwrap();
    assert!(pseudonym.starts_with("hmac:") && pseudonym.len() == 29, "{pseudonym}");
    assert!(rows[0]["diagnosis"].as_str().unwrap().contains(pseudonym));
    app
}));

#[tokio::test]
async fn every_emitted_code_has_a_page() {
    let app = crate::support::spawn(crate::support::Backend::Sqlite).await;
    for code in [
        "7000215",
        "AADSTS7000222",
        "700016",
        "90002",
        "1002012",
        "500011",
        "50053",
        "SecretNotFound",
        "ObjectIsDeletedButRecoverable",
        "ForbiddenByRbac",
        "Throttled",
    ] {
        let response = app.http.get(format!("{}/error?code={code}", app.url)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{code}");
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        let html = response.text().await.unwrap();
        assert!(html.contains("Cause") && html.contains("Fix"), "{code}");
    }
    let response = app.http.get(format!("{}/error?code=<script>", app.url)).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert!(!response.text().await.unwrap().contains("<script>"), "unknown codes are not echoed");
    let index: Value = Value::String(app.http.get(format!("{}/error", app.url)).send().await.unwrap().text().await.unwrap());
    assert!(index.as_str().unwrap().contains("7000215"));
    app.finish().await;
}

both_backends!(metrics_count_what_happened, |app| Box::pin(async move {
    let worker = app.create_app("measured", &[]).await;
    let end = (app.core.now() + time::Duration::days(10)).format(&time::format_description::well_known::Rfc3339).unwrap();
    let (_, secret) = app.add_secret(&worker, json!({"endDateTime": end})).await;
    let client_id = worker["appId"].as_str().unwrap();
    for _ in 0..3 {
        assert_eq!(app.token(client_id, &secret, "api://clavis/.default").await.0, StatusCode::OK);
    }
    app.token(client_id, "wrong", "api://clavis/.default").await;
    let text = app.http.get(format!("{}/metrics", app.url)).send().await.unwrap().text().await.unwrap();
    let tenant = &app.tenant_id;
    // The bootstrap administrator's token request counts too.
    assert!(text.contains(&format!("clavis_token_requests_total{{tenant=\"{tenant}\",result=\"success\",code=\"\"}} 4")), "{text}");
    assert!(
        text.contains(&format!("clavis_token_requests_total{{tenant=\"{tenant}\",result=\"failure\",code=\"AADSTS7000215\"}} 1")),
        "{text}"
    );
    assert!(text.contains("clavis_token_request_duration_seconds_count 5"), "{text}");
    assert!(text.contains("clavis_store_up 1"));
    let line = text.lines().find(|l| l.starts_with("clavis_credential_nearest_expiry_days") && l.contains(client_id)).unwrap();
    let days: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((9.9..=10.0).contains(&days), "{line}");
    assert!(!text.contains(&secret));
    app
}));
