//! The Entra-compatible token service: discovery, JWKS, tokens, and every error of the contract.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::support::{assert_entra_error, claims, TestApp, TrustCa as _};

async fn client_and_resource(app: &TestApp) -> (Value, Value, String) {
    let resource = app.create_app("orders-api", &["api://orders"]).await;
    let (status, role) = app
        .api(
            Method::POST,
            &format!("/v1.0/applications/{}/appRoles", resource["id"].as_str().unwrap()),
            Some(json!({"value": "Orders.Read"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{role}");
    let client = app.create_app("worker", &[]).await;
    let (status, grant) = app
        .api(
            Method::POST,
            &format!("/v1.0/servicePrincipals/{}/appRoleAssignedTo", resource["servicePrincipalId"].as_str().unwrap()),
            Some(json!({"principalId": client["servicePrincipalId"], "resourceId": resource["servicePrincipalId"], "appRoleId": "Orders.Read"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{grant}");
    let (_, secret) = app.add_secret(&client, json!({"displayName": "test"})).await;
    (client, resource, secret)
}

both_backends!(discovery_documents, |app| Box::pin(async move {
    for tenant in [app.tenant_id.clone(), "contoso.clavis.localhost".to_string(), "CONTOSO.clavis.LOCALHOST".to_string()] {
        let response = app.http.get(format!("{}/{tenant}/v2.0/.well-known/openid-configuration", app.url)).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/json; charset=utf-8");
        let document: Value = response.json().await.unwrap();
        let tid = &app.tenant_id;
        assert_eq!(document["issuer"], format!("{}/{tid}/v2.0", app.url));
        assert_eq!(document["token_endpoint"], format!("{}/{tid}/oauth2/v2.0/token", app.url));
        assert_eq!(document["authorization_endpoint"], format!("{}/{tid}/oauth2/v2.0/authorize", app.url));
        assert_eq!(document["jwks_uri"], format!("{}/{tid}/discovery/v2.0/keys", app.url));
    }
    let adfs: Value =
        app.http.get(format!("{}/adfs/.well-known/openid-configuration", app.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(adfs["token_endpoint"], format!("{}/{}/oauth2/v2.0/token", app.url, app.tenant_id));
    let response = app.http.get(format!("{}/nowhere.example/v2.0/.well-known/openid-configuration", app.url)).send().await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_entra_error(status, &body, 400, "invalid_tenant", 90002);
    let jwks: Value =
        app.http.get(format!("{}/{}/discovery/v2.0/keys", app.url, app.tenant_id)).send().await.unwrap().json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kty"], "RSA");
    assert_eq!(keys[0]["use"], "sig");
    assert_eq!(keys[0]["issuer"], format!("{}/{}/v2.0", app.url, app.tenant_id));
    app
}));

both_backends!(tokens_carry_entra_claims_and_roles, |app| Box::pin(async move {
    let (client, resource, secret) = client_and_resource(&app).await;
    let client_id = client["appId"].as_str().unwrap();
    // v1 resource (Entra's default): aud is the resource as requested, iss ends with '/'.
    let (status, body) = app.token(client_id, &secret, "api://orders/.default").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    let expires_in = body["expires_in"].as_i64().unwrap();
    assert!((3600..=5400).contains(&expires_in), "{expires_in}");
    assert_eq!(body["ext_expires_in"], body["expires_in"]);
    assert!(body.get("scope").is_none() && body.get("id_token").is_none() && body.get("refresh_token").is_none());
    let token = body["access_token"].as_str().unwrap();
    let c = claims(token);
    assert_eq!(c["aud"], "api://orders");
    assert_eq!(c["iss"], format!("{}/{}/", app.url, app.tenant_id));
    assert_eq!(c["appid"], client_id);
    assert_eq!(c["appidacr"], "1");
    assert_eq!(c["ver"], "1.0");
    assert_eq!(c["idtyp"], "app");
    assert_eq!(c["oid"], client["servicePrincipalId"]);
    assert_eq!(c["sub"], c["oid"]);
    assert_eq!(c["tid"], app.tenant_id);
    assert_eq!(c["roles"], json!(["Orders.Read"]));
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), expires_in + 300);
    let header: Value = serde_json::from_slice(&clavis_crypto::b64url_decode(token.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["x5t"], header["kid"]);

    // Switch the resource to v2 tokens: aud becomes its client id.
    let (status, _) = app
        .api(
            Method::PATCH,
            &format!("/v1.0/applications/{}", resource["id"].as_str().unwrap()),
            Some(json!({"api": {"requestedAccessTokenVersion": 2}})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for scope in ["api://orders/.default", &format!("{}/.default", resource["appId"].as_str().unwrap()), "API://ORDERS//.default"] {
        let (status, body) = app.token(client_id, &secret, scope).await;
        assert_eq!(status, StatusCode::OK, "{scope}: {body}");
        let c = claims(body["access_token"].as_str().unwrap());
        assert_eq!(c["aud"], resource["appId"], "{scope}");
        assert_eq!(c["iss"], format!("{}/{}/v2.0", app.url, app.tenant_id));
        assert_eq!(c["azp"], client_id);
        assert_eq!(c["azpacr"], "1");
        assert_eq!(c["ver"], "2.0");
    }

    // The same request by domain name and through HTTP Basic.
    let response = app
        .http
        .post(format!("{}/contoso.clavis.localhost/oauth2/v2.0/token", app.url))
        .basic_auth(client_id, Some(&secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "api://orders/.default"),
            ("x-client-SKU", "msal.js.node"),
            ("claims", "{\"access_token\":{\"xms_cc\":{\"values\":[\"CP1\"]}}}"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store, no-cache");
    assert_eq!(response.headers()["pragma"], "no-cache");
    let body: Value = response.json().await.unwrap();
    app.remember(body["access_token"].as_str().unwrap());

    // The v1 endpoint with resource=: string numbers and the resource echoed.
    let response = app
        .http
        .post(format!("{}/{}/oauth2/token", app.url, app.tenant_id))
        .form(&[("grant_type", "client_credentials"), ("client_id", client_id), ("client_secret", &secret), ("resource", "api://orders")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    app.remember(body["access_token"].as_str().unwrap());
    assert!(body["expires_in"].is_string() && body["expires_on"].is_string() && body["not_before"].is_string());
    assert_eq!(body["resource"], "api://orders");

    // Tokens verify against the JWKS.
    let jwks: Value =
        app.http.get(format!("{}/{}/discovery/v2.0/keys", app.url, app.tenant_id)).send().await.unwrap().json().await.unwrap();
    let kid = jwks["keys"][0]["kid"].as_str().unwrap();
    let header: Value =
        serde_json::from_slice(&clavis_crypto::b64url_decode(body["access_token"].as_str().unwrap().split('.').next().unwrap()).unwrap())
            .unwrap();
    assert_eq!(header["kid"], kid);
    app
}));

/// (path, content type, body, expected status, `error`, AADSTS code).
type Case<'a> = (String, &'a str, Vec<u8>, u16, &'a str, u64);

both_backends!(every_token_error_has_its_code_and_changes_nothing, |app| {
    Box::pin(async move {
        let (client, _resource, secret) = client_and_resource(&app).await;
        let client_id = client["appId"].as_str().unwrap().to_string();
        let head = app.audit_head().await;
        let tid = app.tenant_id.clone();
        let form = |pairs: &[(&str, &str)]| serde_urlencoded_encode(pairs);
        let v2 = format!("/{tid}/oauth2/v2.0/token");
        let urlencoded = "application/x-www-form-urlencoded";
        let cases: Vec<Case> = vec![
            (
                v2.clone(),
                urlencoded,
                form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", &client_id),
                    ("client_secret", "wrong"),
                    ("scope", "api://orders/.default"),
                ]),
                401,
                "invalid_client",
                7000215,
            ),
            (
                v2.clone(),
                urlencoded,
                form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", "00000000-0000-4000-8000-000000000000"),
                    ("client_secret", &secret),
                    ("scope", "api://orders/.default"),
                ]),
                400,
                "unauthorized_client",
                700016,
            ),
            (
                v2.clone(),
                urlencoded,
                form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", "not-a-guid"),
                    ("client_secret", &secret),
                    ("scope", "api://orders/.default"),
                ]),
                400,
                "unauthorized_client",
                700016,
            ),
            (
                "/nowhere.example/oauth2/v2.0/token".into(),
                urlencoded,
                form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", &client_id),
                    ("client_secret", &secret),
                    ("scope", "api://orders/.default"),
                ]),
                400,
                "invalid_request",
                90002,
            ),
            (
                "/common/oauth2/v2.0/token".into(),
                urlencoded,
                form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", &client_id),
                    ("client_secret", &secret),
                    ("scope", "api://orders/.default"),
                ]),
                400,
                "invalid_request",
                9001023,
            ),
            (
                v2.clone(),
                urlencoded,
                form(&[("grant_type", "client_credentials"), ("client_id", &client_id), ("scope", "api://orders/.default")]),
                401,
                "invalid_client",
                7000218,
            ),
            (
                v2.clone(),
                urlencoded,
                form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", &client_id),
                    ("client_secret", &secret),
                    ("scope", "api://orders/read"),
                ]),
                400,
                "invalid_scope",
                1002012,
            ),
            (
                v2.clone(),
                urlencoded,
                form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", &client_id),
                    ("client_secret", &secret),
                    ("scope", "api://orders/.default api://clavis/.default"),
                ]),
                400,
                "invalid_scope",
                700022,
            ),
            (
                v2.clone(),
                urlencoded,
                form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", &client_id),
                    ("client_secret", &secret),
                    ("scope", "api://nothing/.default"),
                ]),
                400,
                "invalid_resource",
                500011,
            ),
            (
                v2.clone(),
                urlencoded,
                form(&[
                    ("grant_type", "password"),
                    ("client_id", &client_id),
                    ("client_secret", &secret),
                    ("scope", "api://orders/.default"),
                ]),
                400,
                "unsupported_grant_type",
                70003,
            ),
            (
                v2.clone(),
                urlencoded,
                form(&[("client_id", &client_id), ("client_secret", &secret), ("scope", "api://orders/.default")]),
                400,
                "invalid_request",
                900144,
            ),
            (
                v2.clone(),
                urlencoded,
                form(&[("grant_type", "client_credentials"), ("client_secret", &secret), ("scope", "api://orders/.default")]),
                400,
                "invalid_request",
                900144,
            ),
            (
                v2.clone(),
                urlencoded,
                form(&[("grant_type", "client_credentials"), ("client_id", &client_id), ("client_secret", &secret)]),
                400,
                "invalid_request",
                900144,
            ),
            (
                format!("/{tid}/oauth2/token"),
                urlencoded,
                form(&[("grant_type", "client_credentials"), ("client_id", &client_id), ("client_secret", &secret)]),
                400,
                "invalid_request",
                900144,
            ),
            (
                v2.clone(),
                urlencoded,
                form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", &client_id),
                    ("client_id", &client_id),
                    ("client_secret", &secret),
                    ("scope", "api://orders/.default"),
                ]),
                400,
                "invalid_request",
                90023,
            ),
            (v2.clone(), urlencoded, b"grant_type=client_credentials&client_id=%FF%FE&scope=x".to_vec(), 400, "invalid_request", 90023),
            (v2.clone(), urlencoded, vec![0xff, 0xfe, 0x00, 0x01], 400, "invalid_request", 90023),
            (v2.clone(), "application/json", br#"{"grant_type":"client_credentials"}"#.to_vec(), 400, "invalid_request", 90023),
            (v2.clone(), "text/plain", b"grant_type=client_credentials".to_vec(), 400, "invalid_request", 90023),
            (v2.clone(), urlencoded, vec![b'a'; 70 * 1024], 413, "invalid_request", 90023),
            (
                v2.clone(),
                urlencoded,
                form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", &client_id),
                    ("client_secret", &secret),
                    ("scope", "/.default"),
                ]),
                400,
                "invalid_scope",
                1002012,
            ),
            (
                v2.clone(),
                urlencoded,
                form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", &client_id),
                    ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                    ("client_assertion", "a.b.c"),
                    ("scope", "api://orders/.default"),
                ]),
                401,
                "invalid_client",
                700027,
            ),
        ];
        let count = cases.len();
        for (path, content_type, body, status, error, code) in cases {
            let (actual, headers, answer) = app.raw_token(&path, content_type, body).await;
            assert_entra_error(actual, &answer, status, error, code);
            assert_eq!(headers["content-type"], "application/json; charset=utf-8");
            assert!(!answer.to_string().contains(&secret), "an error body echoed the secret");
        }
        assert_eq!(app.audit_head().await, head, "a refused token request changed stored state");
        // Still healthy, and the right secret still works.
        let (status, _) = app.token(&client_id, &secret, "api://orders/.default").await;
        assert_eq!(status, StatusCode::OK);
        assert!(count >= 20);
        app
    })
});

fn serde_urlencoded_encode(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(&urlencode(k));
        out.push('=');
        out.push_str(&urlencode(v));
    }
    out.into_bytes()
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

both_backends!(expiry_and_not_before_are_enforced, |app| Box::pin(async move {
    let resource = app.create_app("api", &["api://expiring"]).await;
    let _ = resource;
    let client = app.create_app("short-lived", &[]).await;
    let now = app.core.now();
    let fmt = |t: time::OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap();
    let (_, secret) = app.add_secret(&client, json!({"endDateTime": fmt(now + time::Duration::days(2))})).await;
    let (_, future_secret) = app
        .add_secret(
            &client,
            json!({"startDateTime": fmt(now + time::Duration::days(1)), "endDateTime": fmt(now + time::Duration::days(30))}),
        )
        .await;
    let client_id = client["appId"].as_str().unwrap();
    assert_eq!(app.token(client_id, &secret, "api://expiring/.default").await.0, StatusCode::OK);
    let (status, body) = app.token(client_id, &future_secret, "api://expiring/.default").await;
    assert_entra_error(status, &body, 401, "invalid_client", 7000290);
    app.clock.advance(time::Duration::days(1) + time::Duration::minutes(2));
    assert_eq!(app.token(client_id, &future_secret, "api://expiring/.default").await.0, StatusCode::OK);
    app.clock.advance(time::Duration::days(1));
    let (status, body) = app.token(client_id, &secret, "api://expiring/.default").await;
    assert_entra_error(status, &body, 401, "invalid_client", 7000222);
    app
}));

both_backends!(last_use_is_recorded_in_batches, |app| Box::pin(async move {
    let (client, _, secret) = client_and_resource(&app).await;
    let client_id = client["appId"].as_str().unwrap();
    for _ in 0..3 {
        assert_eq!(app.token(client_id, &secret, "api://orders/.default").await.0, StatusCode::OK);
    }
    let (_, before) = app.api(Method::GET, &format!("/v1.0/applications/{}", client["id"].as_str().unwrap()), None).await;
    assert!(before["passwordCredentials"][0]["lastUsed"].is_null(), "usage is written in batches, not per request");
    app.core.flush_usage().await.unwrap();
    let (_, after) = app.api(Method::GET, &format!("/v1.0/applications/{}", client["id"].as_str().unwrap()), None).await;
    let used = &after["passwordCredentials"][0]["lastUsed"];
    assert_eq!(used["useCount"], 3, "{after}");
    assert_eq!(used["lastUsedIp"], "127.0.0.1");
    app
}));

both_backends!(failed_authentications_are_throttled_per_client_and_address, |app| Box::pin(async move {
    let worker = app.create_app("guessed", &[]).await;
    let client_id = worker["appId"].as_str().unwrap().to_string();
    let (_, secret) = app.add_secret(&worker, json!({})).await;
    for attempt in 1..=10 {
        let (status, body) = app.token(&client_id, "guess-guess-guess", "api://clavis/.default").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "attempt {attempt}: {body}");
    }
    // The tenth failure started a one-second wait: even the right secret is refused, in
    // Entra's shape with Retry-After, and nothing is evaluated.
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", client_id.as_str()),
        ("client_secret", secret.as_str()),
        ("scope", "api://clavis/.default"),
    ];
    let token_url = format!("{}/{}/oauth2/v2.0/token", app.url, app.tenant_id);
    let response = app.http.post(&token_url).form(&form).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert_entra_error(StatusCode::TOO_MANY_REQUESTS, &body, 429, "temporarily_unavailable", 50053);
    // Another address is never locked out by this one.
    let elsewhere = reqwest::Client::builder()
        .use_rustls_tls_with_ca(&app.ca_pem)
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let response = elsewhere.post(&token_url).form(&form).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    app.remember(response.json::<Value>().await.unwrap()["access_token"].as_str().unwrap());
    // Each further failure doubles the wait; once it has passed, the right secret clears it.
    app.clock.advance(time::Duration::seconds(1));
    assert_eq!(app.token(&client_id, "guess-guess-guess", "api://clavis/.default").await.0, StatusCode::UNAUTHORIZED);
    app.clock.advance(time::Duration::seconds(1));
    let (status, body) = app.token(&client_id, &secret, "api://clavis/.default").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    app.clock.advance(time::Duration::seconds(1));
    assert_eq!(app.token(&client_id, &secret, "api://clavis/.default").await.0, StatusCode::OK);
    assert_eq!(
        app.token(&client_id, "guess-guess-guess", "api://clavis/.default").await.0,
        StatusCode::UNAUTHORIZED,
        "a success clears the count"
    );
    // Throttled attempts are in the sign-in log with their code.
    app.core.flush_logs().await.unwrap();
    let filter = clavis_core::signin::SignInFilter { client_id: Some(client_id.clone()), limit: 100, ..Default::default() };
    let signins = clavis_core::store::Store::signins(app.store.as_ref(), &filter).await.unwrap();
    assert_eq!(signins.iter().filter(|s| s.error_code == "AADSTS50053").count(), 2);
    app
}));
