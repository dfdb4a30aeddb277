//! The management API: applications, secrets, roles, authorization and bad input.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::support::{assert_graph_error, TestApp};

both_backends!(applications_and_secrets_round_trip, |app| Box::pin(async move {
    let created = app.create_app("billing", &["api://billing"]).await;
    let id = created["id"].as_str().unwrap().to_string();
    assert!(clavis_core::identity::is_guid(created["appId"].as_str().unwrap()));
    let (key_id, secret) = app.add_secret(&created, json!({"displayName": "prod"})).await;
    assert!(clavis_crypto::PlainClientSecret::is_well_formed(&secret));
    let (status, body) = app.api(Method::GET, &format!("/v1.0/applications/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let credentials = body["passwordCredentials"].as_array().unwrap();
    assert_eq!(credentials.len(), 1);
    assert_eq!(credentials[0]["keyId"], key_id);
    assert_eq!(credentials[0]["hint"], &secret[..3]);
    assert!(credentials[0]["secretText"].is_null(), "a stored secret is never returned");
    assert!(!body.to_string().contains(&secret));
    let end = time::OffsetDateTime::parse(credentials[0]["endDateTime"].as_str().unwrap(), &time::format_description::well_known::Rfc3339)
        .unwrap();
    let start =
        time::OffsetDateTime::parse(credentials[0]["startDateTime"].as_str().unwrap(), &time::format_description::well_known::Rfc3339)
            .unwrap();
    assert_eq!(end - start, time::Duration::days(180), "default lifetime");
    // Also addressable by client id.
    let (status, _) = app.api(Method::GET, &format!("/v1.0/applications/{}", created["appId"].as_str().unwrap()), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.api(Method::POST, &format!("/v1.0/applications/{id}/removePassword"), Some(json!({"keyId": key_id}))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.api(Method::POST, &format!("/v1.0/applications/{id}/removePassword"), Some(json!({"keyId": key_id}))).await;
    assert_graph_error(status, &body, 404, "Request_ResourceNotFound");
    let (status, _) = app.api(Method::DELETE, &format!("/v1.0/applications/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.api(Method::GET, &format!("/v1.0/applications/{id}"), None).await;
    assert_graph_error(status, &body, 404, "Request_ResourceNotFound");
    let (status, body) = app.token(created["appId"].as_str().unwrap(), &secret, "api://clavis/.default").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    app
}));

both_backends!(concurrent_secret_changes_never_lose_a_credential, |app| {
    Box::pin(async move {
        let created = app.create_app("busy", &[]).await;
        let id = created["id"].as_str().unwrap().to_string();
        let (keep, _) = app.add_secret(&created, json!({"displayName": "keep"})).await;
        let (doomed, _) = app.add_secret(&created, json!({"displayName": "doomed"})).await;
        let app = std::sync::Arc::new(app);
        let mut tasks = Vec::new();
        for i in 0..6 {
            let app = app.clone();
            let id = id.clone();
            tasks.push(tokio::spawn(async move {
                let (status, body) = app
                    .api(
                        Method::POST,
                        &format!("/v1.0/applications/{id}/addPassword"),
                        Some(json!({"passwordCredential": {"displayName": format!("parallel-{i}")}})),
                    )
                    .await;
                if status == StatusCode::OK {
                    app.remember(body["secretText"].as_str().unwrap());
                }
                (status, body["keyId"].as_str().map(str::to_string))
            }));
        }
        let remover = {
            let app = app.clone();
            let id = id.clone();
            tokio::spawn(async move {
                app.api(Method::POST, &format!("/v1.0/applications/{id}/removePassword"), Some(json!({"keyId": doomed}))).await.0
            })
        };
        let mut added = Vec::new();
        for task in tasks {
            let (status, key) = task.await.unwrap();
            assert_eq!(status, StatusCode::OK);
            added.push(key.unwrap());
        }
        assert_eq!(remover.await.unwrap(), StatusCode::NO_CONTENT);
        let (_, body) = app.api(Method::GET, &format!("/v1.0/applications/{id}"), None).await;
        let keys: Vec<&str> = body["passwordCredentials"].as_array().unwrap().iter().map(|c| c["keyId"].as_str().unwrap()).collect();
        assert_eq!(keys.len(), 7, "{keys:?}");
        assert!(keys.contains(&keep.as_str()));
        for key in &added {
            assert!(keys.contains(&key.as_str()));
        }
        // The policy's cap (10 per application) holds under concurrency too.
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let app = app.clone();
            let id = id.clone();
            tasks.push(tokio::spawn(async move {
                let (status, body) = app.api(Method::POST, &format!("/v1.0/applications/{id}/addPassword"), Some(json!({}))).await;
                if let Some(secret) = body["secretText"].as_str() {
                    app.remember(secret);
                }
                status
            }));
        }
        let mut statuses = Vec::new();
        for task in tasks {
            statuses.push(task.await.unwrap());
        }
        assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 3, "{statuses:?}");
        assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count(), 3, "{statuses:?}");
        std::sync::Arc::try_unwrap(app).ok().expect("tasks done")
    })
});

both_backends!(policy_bounds_secret_lifetime, |app| Box::pin(async move {
    let created = app.create_app("policy", &[]).await;
    let id = created["id"].as_str().unwrap();
    let far = (app.core.now() + time::Duration::days(800)).format(&time::format_description::well_known::Rfc3339).unwrap();
    let head = app.audit_head().await;
    let (status, body) = app
        .api(Method::POST, &format!("/v1.0/applications/{id}/addPassword"), Some(json!({"passwordCredential": {"endDateTime": far}})))
        .await;
    assert_graph_error(status, &body, 400, "Request_BadRequest");
    assert!(body["error"]["message"].as_str().unwrap().contains("passwordLifetime"), "{body}");
    let (status, body) = app.api(Method::PATCH, "/v1.0/organization", Some(json!({"credentialPolicy": {"maxPasswordLifetimeDays": 90, "defaultPasswordLifetimeDays": 30, "maxPasswordsPerApplication": 10}}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let in_100 = (app.core.now() + time::Duration::days(100)).format(&time::format_description::well_known::Rfc3339).unwrap();
    let (status, body) = app
        .api(Method::POST, &format!("/v1.0/applications/{id}/addPassword"), Some(json!({"passwordCredential": {"endDateTime": in_100}})))
        .await;
    assert_graph_error(status, &body, 400, "Request_BadRequest");
    assert_eq!(app.audit_head().await, head + 1, "only the policy change was recorded");
    let (_, secret) = app.add_secret(&created, json!({})).await;
    let _ = secret;
    app
}));

both_backends!(authorization_is_enforced, |app| Box::pin(async move {
    // A reader: holds Application.Read.All of the management API.
    let reader = app.create_app("reader", &[]).await;
    let (_, reader_secret) = app.add_secret(&reader, json!({})).await;
    let (status, apps) = app.api(Method::GET, "/v1.0/applications", None).await;
    assert_eq!(status, StatusCode::OK);
    let management = apps["value"].as_array().unwrap().iter().find(|a| a["identifierUris"] == json!(["api://clavis"])).unwrap().clone();
    let (status, body) = app
        .api(
            Method::POST,
            &format!("/v1.0/servicePrincipals/{}/appRoleAssignedTo", management["servicePrincipalId"].as_str().unwrap()),
            Some(json!({"principalId": reader["servicePrincipalId"], "appRoleId": "Application.Read.All"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app.token(reader["appId"].as_str().unwrap(), &reader_secret, "api://clavis/.default").await;
    assert_eq!(status, StatusCode::OK);
    let reader_token = body["access_token"].as_str().unwrap().to_string();
    let (status, _) = app.api_as(&reader_token, Method::GET, "/v1.0/applications", None).await;
    assert_eq!(status, StatusCode::OK);
    let api = app.create_app("other-api", &["api://other"]).await;
    let _ = api;
    let head = app.audit_head().await;
    let (status, body) = app.api_as(&reader_token, Method::POST, "/v1.0/applications", Some(json!({"displayName": "nope"}))).await;
    assert_graph_error(status, &body, 403, "Authorization_RequestDenied");
    let (status, body) = app
        .api_as(&reader_token, Method::POST, &format!("/v1.0/applications/{}/addPassword", reader["id"].as_str().unwrap()), Some(json!({})))
        .await;
    assert_graph_error(status, &body, 403, "Authorization_RequestDenied");
    // A token for another audience is refused, as are missing, forged and foreign tokens.
    let (_, body) = app.token(reader["appId"].as_str().unwrap(), &reader_secret, "api://other/.default").await;
    let other_token = body["access_token"].as_str().unwrap().to_string();
    let response = app.http.get(format!("{}/v1.0/applications", app.url)).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    for token in [
        other_token.as_str(),
        "not-a-token",
        &format!("{}x", &reader_token[..reader_token.len() - 1]),
        "eyJhbGciOiJub25lIn0.eyJ0aWQiOiJ4In0.",
    ] {
        let (status, body) = app.api_as(token, Method::GET, "/v1.0/applications", None).await;
        assert_graph_error(status, &body, 401, "InvalidAuthenticationToken");
    }
    // A built-in application cannot be deleted or changed.
    let (status, body) = app.api(Method::DELETE, &format!("/v1.0/applications/{}", management["id"].as_str().unwrap()), None).await;
    assert_graph_error(status, &body, 403, "Authorization_RequestDenied");
    assert_eq!(app.audit_head().await, head, "refused calls changed nothing");
    app
}));

both_backends!(bad_management_input_is_refused_in_graph_shape, |app| {
    Box::pin(async move {
        let created = app.create_app("target", &["api://target"]).await;
        let id = created["id"].as_str().unwrap().to_string();
        let head = app.audit_head().await;
        let big = "x".repeat(70 * 1024);
        let cases: Vec<(Method, String, Option<&str>, String, u16)> = vec![
            (Method::POST, "/v1.0/applications".into(), Some("application/json"), "{not json".into(), 400),
            (Method::POST, "/v1.0/applications".into(), Some("text/plain"), r#"{"displayName":"x"}"#.into(), 415),
            (Method::POST, "/v1.0/applications".into(), None, r#"{"displayName":"x"}"#.into(), 415),
            (Method::POST, "/v1.0/applications".into(), Some("application/json"), r#"{"displayName":"x","unknownField":1}"#.into(), 400),
            (Method::POST, "/v1.0/applications".into(), Some("application/json"), r#"{"displayName":42}"#.into(), 400),
            (Method::POST, "/v1.0/applications".into(), Some("application/json"), r#"{"displayName":"   "}"#.into(), 400),
            (
                Method::POST,
                "/v1.0/applications".into(),
                Some("application/json"),
                r#"{"displayName":"x","identifierUris":["not a uri"]}"#.into(),
                400,
            ),
            (
                Method::POST,
                "/v1.0/applications".into(),
                Some("application/json"),
                r#"{"displayName":"x","identifierUris":["api://target"]}"#.into(),
                409,
            ),
            (Method::POST, "/v1.0/applications".into(), Some("application/json"), format!(r#"{{"displayName":"{big}"}}"#), 413),
            (
                Method::POST,
                "/v1.0/applications".into(),
                Some("application/json"),
                format!(r#"{{"displayName":"{}"}}"#, "y".repeat(300)),
                400,
            ),
            (Method::POST, "/v1.0/applications".into(), Some("application/json"), format!("{}{}", "[".repeat(200), "]".repeat(200)), 400),
            (
                Method::POST,
                format!("/v1.0/applications/{id}/addPassword"),
                Some("application/json"),
                r#"{"passwordCredential":{"secretText":"mine"}}"#.into(),
                400,
            ),
            (
                Method::POST,
                format!("/v1.0/applications/{id}/addPassword"),
                Some("application/json"),
                r#"{"passwordCredential":{"endDateTime":"tomorrow"}}"#.into(),
                400,
            ),
            (
                Method::POST,
                format!("/v1.0/applications/{id}/addPassword"),
                Some("application/json"),
                r#"{"passwordCredential":{"endDateTime":"2001-01-01T00:00:00Z"}}"#.into(),
                400,
            ),
            (Method::POST, format!("/v1.0/applications/{id}/removePassword"), Some("application/json"), r#"{"keyId":"nope"}"#.into(), 400),
            (Method::POST, format!("/v1.0/applications/{id}/removePassword"), Some("application/json"), r#"{}"#.into(), 400),
            (Method::POST, "/v1.0/applications/not-a-guid/addPassword".into(), Some("application/json"), "{}".into(), 404),
            (
                Method::PATCH,
                format!("/v1.0/applications/{id}"),
                Some("application/json"),
                r#"{"api":{"requestedAccessTokenVersion":3}}"#.into(),
                400,
            ),
            (
                Method::PATCH,
                format!("/v1.0/applications/{id}"),
                Some("application/json"),
                r#"{"appRoles":[{"value":"has space"}]}"#.into(),
                400,
            ),
            (Method::PATCH, "/v1.0/organization".into(), Some("application/json"), r#"{"signingAlgorithm":"HS256"}"#.into(), 400),
            (
                Method::PATCH,
                "/v1.0/organization".into(),
                Some("application/json"),
                r#"{"credentialPolicy":{"maxPasswordLifetimeDays":0}}"#.into(),
                400,
            ),
            (Method::GET, "/v1.0/nothing-here".into(), None, String::new(), 404),
            (
                Method::POST,
                format!("/v1.0/servicePrincipals/{}/appRoleAssignedTo", created["servicePrincipalId"].as_str().unwrap()),
                Some("application/json"),
                r#"{"principalId":"00000000-0000-4000-8000-000000000000","appRoleId":"x"}"#.into(),
                404,
            ),
            (Method::POST, "/v1.0/clavis/rotateMasterKey".into(), Some("application/json"), r#"{"newMasterKey":"short"}"#.into(), 400),
        ];
        for (method, path, content_type, body, expected) in cases {
            let mut request =
                app.http.request(method.clone(), format!("{}{path}", app.url)).bearer_auth(&app.admin_token).body(body.into_bytes());
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            let text = response.text().await.unwrap();
            let value: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{method} {path}: not JSON: {text}"));
            let code = match expected {
                404 => "Request_ResourceNotFound",
                409 => "Request_Conflict",
                _ => "Request_BadRequest",
            };
            assert_eq!(status.as_u16(), expected, "{method} {path}: {value}");
            assert_graph_error(status, &value, expected, code);
        }
        assert_eq!(app.audit_head().await, head, "refused requests changed stored state");
        let (status, _) = app.api(Method::GET, &format!("/v1.0/applications/{id}"), None).await;
        assert_eq!(status, StatusCode::OK);
        app
    })
});

#[tokio::test]
async fn health_and_readiness() {
    let app: TestApp = crate::support::spawn(crate::support::Backend::Sqlite).await;
    for path in ["/healthz", "/readyz"] {
        let response = app.http.get(format!("{}{path}", app.url)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        assert!(response.headers().get("server").is_none());
    }
    app.finish().await;
}
