//! The Key Vault-compatible data plane: the challenge, every error of the contract, limits,
//! RBAC, expiry enforcement, purge protection, throttling, and encryption at rest.

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use clavis_core::store::Store as _;

use crate::support::{Backend, TestApp};

/// Calls a vault with a bearer token (or none) and returns status, headers and JSON.
async fn kv(
    app: &TestApp,
    vault: &str,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<&str>,
) -> (StatusCode, HeaderMap, Value) {
    let separator = if path.contains('?') { '&' } else { '?' };
    let mut request = app.vault_http(vault).request(method, format!("{}{path}{separator}api-version=2026-04-01", app.vault_url(vault)));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.header("content-type", "application/json").body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    (status, headers, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) })
}

async fn create_vault(app: &TestApp, body: Value) {
    let (status, answer) = app.api(Method::POST, "/v1.0/clavis/vaults", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
}

fn assert_kv_error(status: StatusCode, body: &Value, expected: u16, code: &str, inner: Option<&str>) {
    assert_eq!(status.as_u16(), expected, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    match inner {
        Some(inner) => assert_eq!(body["error"]["innererror"]["code"], inner, "{body}"),
        None => assert!(body["error"].get("innererror").is_none(), "{body}"),
    }
}

both_backends!(the_challenge_comes_before_anything_else, |app| Box::pin(async move {
    create_vault(&app, json!({"name": "kv1"})).await;
    let expected = format!("Bearer authorization=\"{}/{}\", resource=\"https://vault.localhost:{}\"", app.url, app.tenant_id, app.port);
    for (method, path, body) in [
        (Method::GET, "/secrets/missing/", None),
        (Method::PUT, "/secrets/new", Some("{\"value\":\"x\"}")),
        (Method::PUT, "/secrets/bad_name", Some("not json")),
        (Method::DELETE, "/no/such/route", None),
        (Method::POST, "/secrets/restore", Some("")),
    ] {
        let (status, headers, answer) = kv(&app, "kv1", None, method.clone(), path, body).await;
        assert_eq!(status, 401, "{method} {path}");
        assert_eq!(headers["www-authenticate"], expected.as_str());
        assert_eq!(answer["error"]["code"], "Unauthorized");
        assert!(headers["content-type"].to_str().unwrap().starts_with("application/json"));
    }
    // A management-API token is for another audience.
    let (status, headers, _) = kv(&app, "kv1", Some(&app.admin_token), Method::GET, "/secrets", None).await;
    assert_eq!(status, 401);
    assert!(headers.contains_key("www-authenticate"));
    // An unknown vault.
    let (status, _, answer) = kv(&app, "nowhere", None, Method::GET, "/secrets", None).await;
    assert_kv_error(status, &answer, 404, "VaultNotFound", None);
    app
}));

/// (method, path, body, expected status, code, inner code).
type Case = (Method, String, Option<String>, u16, &'static str, Option<&'static str>);

both_backends!(every_vault_error_has_its_code_and_changes_nothing, |app| Box::pin(async move {
    create_vault(&app, json!({"name": "kv1", "retentionDays": 7})).await;
    let token = app.vault_token(&app.admin_client_id, &app.admin_secret.clone()).await;
    app.remember(&token);
    let t = Some(token.as_str());
    let (status, _, set) =
        kv(&app, "kv1", t, Method::PUT, "/secrets/alpha", Some(r#"{"value":"value-alpha-1","tags":{"env":"dev"}}"#)).await;
    assert_eq!(status, 200, "{set}");
    app.remember("value-alpha-1");
    let head = app.audit_head().await;
    let big = format!(r#"{{"value":"{}"}}"#, "v".repeat(25_601));
    let many_tags = format!(r#"{{"value":"x","tags":{{{}}}}}"#, (0..16).map(|i| format!(r#""t{i}":"v""#)).collect::<Vec<_>>().join(","));
    let long_tag = format!(r#"{{"value":"x","tags":{{"t":"{}"}}}}"#, "v".repeat(513));
    let long_type = format!(r#"{{"value":"x","contentType":"{}"}}"#, "c".repeat(256));
    let cases: Vec<Case> = vec![
        (Method::PUT, "/secrets/bad_name".into(), Some(r#"{"value":"x"}"#.into()), 400, "BadParameter", None),
        (Method::PUT, format!("/secrets/{}", "a".repeat(128)), Some(r#"{"value":"x"}"#.into()), 400, "BadParameter", None),
        (Method::PUT, "/secrets/beta".into(), Some(big), 400, "BadParameter", None),
        (Method::PUT, "/secrets/beta".into(), Some(many_tags), 400, "BadParameter", None),
        (Method::PUT, "/secrets/beta".into(), Some(long_tag), 400, "BadParameter", None),
        (Method::PUT, "/secrets/beta".into(), Some(long_type), 400, "BadParameter", None),
        (Method::PUT, "/secrets/beta".into(), Some("{not json".into()), 400, "BadParameter", None),
        (Method::PUT, "/secrets/beta".into(), Some(r#"{"contentType":"no value"}"#.into()), 400, "BadParameter", None),
        (Method::PUT, "/secrets/beta".into(), Some(r#"{"value":42}"#.into()), 400, "BadParameter", None),
        (Method::PUT, "/secrets/beta".into(), Some(r#"{"value":"x","attributes":{"nbf":20,"exp":10}}"#.into()), 400, "BadParameter", None),
        (Method::PUT, "/secrets/beta".into(), Some(format!(r#"{{"value":"{}"}}"#, "v".repeat(300_000))), 413, "BadParameter", None),
        (Method::GET, "/secrets/missing/".into(), None, 404, "SecretNotFound", None),
        (Method::GET, "/secrets/alpha/0123456789abcdef0123456789abcdef".into(), None, 404, "SecretNotFound", None),
        (Method::PATCH, "/secrets/missing/".into(), Some(r#"{"tags":{}}"#.into()), 404, "SecretNotFound", None),
        (Method::DELETE, "/secrets/missing".into(), None, 404, "SecretNotFound", None),
        (Method::GET, "/deletedsecrets/alpha".into(), None, 404, "SecretNotFound", None),
        (Method::POST, "/deletedsecrets/alpha/recover".into(), None, 404, "SecretNotFound", None),
        (Method::DELETE, "/deletedsecrets/alpha".into(), None, 404, "SecretNotFound", None),
        (Method::POST, "/secrets/missing/backup".into(), None, 404, "SecretNotFound", None),
        (Method::POST, "/secrets/restore".into(), Some(r#"{"value":"bm90LWEtYmFja3Vw"}"#.into()), 400, "BadParameter", None),
        (Method::POST, "/secrets/restore".into(), Some(r#"{"value":"!!!"}"#.into()), 400, "BadParameter", None),
        (Method::GET, "/secrets?maxresults=26".into(), None, 400, "BadParameter", None),
        (Method::GET, "/secrets?$skiptoken=%2A%2A%2A".into(), None, 400, "BadParameter", None),
        (Method::GET, "/keys".into(), None, 404, "NotFound", None),
    ];
    for (method, path, body, status, code, inner) in &cases {
        let (actual, headers, answer) = kv(&app, "kv1", t, method.clone(), path, body.as_deref()).await;
        assert_kv_error(actual, &answer, *status, code, *inner);
        assert!(headers["content-type"].to_str().unwrap().starts_with("application/json"), "{method} {path}");
    }
    assert_eq!(app.audit_head().await, head, "refused vault requests changed stored state");
    // The secret is intact.
    let (status, _, got) = kv(&app, "kv1", t, Method::GET, "/secrets/alpha/", None).await;
    assert_eq!(status, 200);
    assert_eq!(got["value"], "value-alpha-1");
    // Deleted-but-recoverable names and disabled versions.
    let (status, _, deleted) = kv(&app, "kv1", t, Method::DELETE, "/secrets/alpha", None).await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["recoveryId"], format!("{}/deletedsecrets/alpha", app.vault_url("kv1")));
    assert_eq!(deleted["scheduledPurgeDate"].as_i64().unwrap() - deleted["deletedDate"].as_i64().unwrap(), 7 * 86_400);
    assert_eq!(deleted["attributes"]["recoveryLevel"], "CustomizedRecoverable+Purgeable");
    let (status, _, answer) = kv(&app, "kv1", t, Method::PUT, "/secrets/ALPHA", Some(r#"{"value":"again"}"#)).await;
    assert_kv_error(status, &answer, 409, "Conflict", Some("ObjectIsDeletedButRecoverable"));
    let (status, _, answer) = kv(&app, "kv1", t, Method::GET, "/secrets/alpha/", None).await;
    assert_kv_error(status, &answer, 404, "SecretNotFound", None);
    let (status, _, _) = kv(&app, "kv1", t, Method::POST, "/deletedsecrets/alpha/recover", None).await;
    assert_eq!(status, 200);
    let (status, _, _) = kv(&app, "kv1", t, Method::PATCH, "/secrets/alpha/", Some(r#"{"attributes":{"enabled":false}}"#)).await;
    assert_eq!(status, 200);
    let (status, _, answer) = kv(&app, "kv1", t, Method::GET, "/secrets/alpha/", None).await;
    assert_kv_error(status, &answer, 403, "Forbidden", Some("SecretDisabled"));
    // A backup restores only where nothing holds the name.
    let (status, _, _) = kv(&app, "kv1", t, Method::PATCH, "/secrets/alpha/", Some(r#"{"attributes":{"enabled":true}}"#)).await;
    assert_eq!(status, 200);
    let (_, _, backup) = kv(&app, "kv1", t, Method::POST, "/secrets/alpha/backup", None).await;
    let blob = backup["value"].as_str().unwrap().to_string();
    assert!(!blob.contains('=') && !blob.contains('+') && !blob.contains('/'), "base64url without padding");
    let (status, _, answer) = kv(&app, "kv1", t, Method::POST, "/secrets/restore", Some(&json!({"value": blob}).to_string())).await;
    assert_kv_error(status, &answer, 409, "Conflict", None);
    app
}));

both_backends!(roles_decide_who_reads_what, |app| Box::pin(async move {
    create_vault(&app, json!({"name": "kv1"})).await;
    create_vault(&app, json!({"name": "kv2"})).await;
    let admin_token = app.vault_token(&app.admin_client_id, &app.admin_secret.clone()).await;
    for (vault, name) in [("kv1", "shared"), ("kv1", "private"), ("kv2", "other")] {
        let (status, _, _) = kv(
            &app,
            vault,
            Some(&admin_token),
            Method::PUT,
            &format!("/secrets/{name}"),
            Some(&json!({"value": format!("value-of-{name}")}).to_string()),
        )
        .await;
        assert_eq!(status, 200);
        app.remember(&format!("value-of-{name}"));
    }
    let make = |name: &'static str| {
        let app = &app;
        async move {
            let created = app.create_app(name, &[]).await;
            let (_, secret) = app.add_secret(&created, json!({})).await;
            (created, secret)
        }
    };
    let (user, user_secret) = make("secrets-user").await;
    let (reader, reader_secret) = make("reader").await;
    let (nobody, nobody_secret) = make("nobody").await;
    for (app_json, role, scope) in [(&user, "Key Vault Secrets User", "/vaults/kv1/secrets/shared"), (&reader, "reader", "/vaults/kv1")] {
        let (status, body) = app
            .api(
                Method::POST,
                "/v1.0/clavis/vaultRoleAssignments",
                Some(json!({"principalId": app_json["appId"], "role": role, "scope": scope})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let user_token = app.vault_token(user["appId"].as_str().unwrap(), &user_secret).await;
    let reader_token = app.vault_token(reader["appId"].as_str().unwrap(), &reader_secret).await;
    let nobody_token = app.vault_token(nobody["appId"].as_str().unwrap(), &nobody_secret).await;
    let (status, _, got) = kv(&app, "kv1", Some(&user_token), Method::GET, "/secrets/shared/", None).await;
    assert_eq!(status, 200);
    assert_eq!(got["value"], "value-of-shared");
    for (token, vault, path) in [
        (&user_token, "kv1", "/secrets/private/"),
        (&user_token, "kv2", "/secrets/other/"),
        (&user_token, "kv1", "/secrets"),
        (&reader_token, "kv1", "/secrets/shared/"),
        (&nobody_token, "kv1", "/secrets/shared/"),
        (&nobody_token, "kv1", "/secrets"),
    ] {
        let (status, _, answer) = kv(&app, vault, Some(token), Method::GET, path, None).await;
        assert_kv_error(status, &answer, 403, "Forbidden", Some("ForbiddenByRbac"));
        assert!(answer["error"]["message"].as_str().unwrap().contains("Caller is not authorized"));
    }
    let (status, _, answer) = kv(&app, "kv1", Some(&user_token), Method::PUT, "/secrets/shared", Some(r#"{"value":"overwrite"}"#)).await;
    assert_kv_error(status, &answer, 403, "Forbidden", Some("ForbiddenByRbac"));
    // The reader lists metadata, never values.
    let (status, _, list) = kv(&app, "kv1", Some(&reader_token), Method::GET, "/secrets", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["value"].as_array().unwrap().len(), 2);
    assert!(!list.to_string().contains("value-of-"));
    app
}));

both_backends!(paging_expiry_purge_protection_and_throttling, |app| Box::pin(async move {
    create_vault(&app, json!({"name": "kv1", "retentionDays": 7, "purgeProtection": true, "enforceExpiry": true, "rateLimit": 1000})).await;
    let token = app.vault_token(&app.admin_client_id, &app.admin_secret.clone()).await;
    let t = Some(token.as_str());
    for i in 0..5 {
        let (status, _, _) = kv(&app, "kv1", t, Method::PUT, &format!("/secrets/s{i}"), Some(r#"{"value":"paged"}"#)).await;
        assert_eq!(status, 200);
    }
    // Paging: every item once, URL-safe skiptokens on the vault host, an explicit last page.
    let mut names = Vec::new();
    let mut next = Some(format!("{}/secrets?api-version=7.6&maxresults=2", app.vault_url("kv1")));
    while let Some(url) = next {
        let page: Value = app.vault_http("kv1").get(&url).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        for item in page["value"].as_array().unwrap() {
            assert!(!item.to_string().contains("paged"), "lists never carry values");
            names.push(item["id"].as_str().unwrap().rsplit('/').next().unwrap().to_string());
        }
        next = page["nextLink"].as_str().map(str::to_string);
        if let Some(link) = &next {
            assert!(link.starts_with(&app.vault_url("kv1")));
            let token_part = link.split("$skiptoken=").nth(1).unwrap().split('&').next().unwrap();
            assert!(token_part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{link}");
        }
    }
    assert_eq!(names, vec!["s0", "s1", "s2", "s3", "s4"]);
    // Versions of an unknown secret: an empty list, not a 404.
    let (status, _, versions) = kv(&app, "kv1", t, Method::GET, "/secrets/unknown/versions", None).await;
    assert_eq!(status, 200);
    assert_eq!(versions, json!({"value": [], "nextLink": null}));
    // Enforced expiry (a Clavis extension).
    let now = app.core.now().unix_timestamp();
    let (status, _, _) = kv(
        &app,
        "kv1",
        t,
        Method::PUT,
        "/secrets/expiring",
        Some(&json!({"value": "soon-gone", "attributes": {"exp": now + 60}}).to_string()),
    )
    .await;
    assert_eq!(status, 200);
    app.remember("soon-gone");
    let (status, _, _) =
        kv(&app, "kv1", t, Method::PUT, "/secrets/future", Some(&json!({"value": "later", "attributes": {"nbf": now + 3600}}).to_string()))
            .await;
    assert_eq!(status, 200);
    let (status, _, answer) = kv(&app, "kv1", t, Method::GET, "/secrets/future/", None).await;
    assert_kv_error(status, &answer, 403, "Forbidden", Some("SecretNotYetValid"));
    app.clock.advance(time::Duration::seconds(61));
    let (status, _, answer) = kv(&app, "kv1", t, Method::GET, "/secrets/expiring/", None).await;
    assert_kv_error(status, &answer, 403, "Forbidden", Some("SecretExpired"));
    // Purge protection: recoverable, not purgeable before the end of retention; then purged by the job.
    let (status, _, _) = kv(&app, "kv1", t, Method::DELETE, "/secrets/s0", None).await;
    assert_eq!(status, 200);
    let (status, _, answer) = kv(&app, "kv1", t, Method::DELETE, "/deletedsecrets/s0", None).await;
    assert_kv_error(status, &answer, 403, "Forbidden", Some("PurgeProtected"));
    app.clock.advance(time::Duration::days(7) + time::Duration::minutes(1));
    app.core.purge_due().await.unwrap();
    let (status, _, answer) = kv(&app, "kv1", t, Method::GET, "/deletedsecrets/s0", None).await;
    assert_eq!(status, 401, "the token expired with the clock: {answer}");
    let token = app.vault_token(&app.admin_client_id, &app.admin_secret.clone()).await;
    let (status, _, answer) = kv(&app, "kv1", Some(&token), Method::GET, "/deletedsecrets/s0", None).await;
    assert_kv_error(status, &answer, 404, "SecretNotFound", None);
    // Throttling: 429 Throttled with Retry-After past the vault's rate.
    let (_, fresh) = app.token(&app.admin_client_id, &app.admin_secret.clone(), "api://clavis/.default").await;
    let (status, _) =
        app.api_as(fresh["access_token"].as_str().unwrap(), Method::PATCH, "/v1.0/clavis/vaults/kv1", Some(json!({"rateLimit": 2}))).await;
    assert_eq!(status, StatusCode::OK);
    let mut throttled = None;
    for _ in 0..10 {
        let (status, headers, answer) = kv(&app, "kv1", Some(&token), Method::GET, "/secrets/s1/", None).await;
        if status == 429 {
            throttled = Some((headers, answer));
            break;
        }
    }
    let (headers, answer) = throttled.expect("the rate limit was never applied");
    assert_eq!(answer["error"]["code"], "Throttled");
    assert_eq!(headers["retry-after"], "1");
    app.remember(&token);
    app
}));

both_backends!(values_are_encrypted_at_rest_and_bound_to_their_row, |app| Box::pin(async move {
    create_vault(&app, json!({"name": "kv1"})).await;
    let token = app.vault_token(&app.admin_client_id, &app.admin_secret.clone()).await;
    let markers = ["PLAINTEXT-MARKER-one-7c1f", "PLAINTEXT-MARKER-two-91ab"];
    for (i, marker) in markers.iter().enumerate() {
        let (status, _, _) =
            kv(&app, "kv1", Some(&token), Method::PUT, &format!("/secrets/m{i}"), Some(&json!({"value": marker}).to_string())).await;
        assert_eq!(status, 200);
        app.remember(marker);
    }
    match app.backend {
        Backend::Sqlite => {
            // Every byte of the database files, WAL included.
            let dir = app.db_dir();
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let bytes = std::fs::read(&path).unwrap();
                for marker in markers {
                    assert!(!bytes.windows(marker.len()).any(|w| w == marker.as_bytes()), "{} holds a plaintext value", path.display());
                }
            }
        }
        Backend::Postgres => {
            let rows: Vec<(Vec<u8>, String)> = sqlx::query_as("SELECT sealed, properties FROM vault_secret_versions")
                .fetch_all(app.store.write_pool())
                .await
                .unwrap_or_default();
            assert_eq!(rows.len(), 2);
            for (sealed, properties) in rows {
                for marker in markers {
                    assert!(!sealed.windows(marker.len()).any(|w| w == marker.as_bytes()) && !properties.contains(marker));
                }
            }
        }
    }
    // Moving a ciphertext to another row does not decrypt there.
    let pool = app.store.write_pool().clone();
    sqlx::query(
        "UPDATE vault_secret_versions SET sealed = (SELECT sealed FROM vault_secret_versions WHERE name_key = 'm0') WHERE name_key = 'm1'",
    )
    .execute(&pool)
    .await
    .unwrap();
    // Caches hold ciphertexts too: a tampered row is seen once they refresh.
    app.core.refresh().await.unwrap();
    let (status, _, answer) = kv(&app, "kv1", Some(&token), Method::GET, "/secrets/m1/", None).await;
    assert_eq!(status, 500, "{answer}");
    assert!(!answer.to_string().contains(markers[0]));
    app
}));

both_backends!(value_reads_are_audited_and_fail_closed, |app| Box::pin(async move {
    create_vault(&app, json!({"name": "kv1"})).await;
    let token = app.vault_token(&app.admin_client_id, &app.admin_secret.clone()).await;
    let (status, _, _) = kv(&app, "kv1", Some(&token), Method::PUT, "/secrets/watched", Some(r#"{"value":"audited-value-1"}"#)).await;
    assert_eq!(status, 200);
    app.remember("audited-value-1");
    // Concurrent reads are grouped into few transactions, and each is recorded.
    let mut reads = Vec::new();
    for _ in 0..20 {
        let (http, url, token) =
            (app.vault_http("kv1"), format!("{}/secrets/watched/?api-version=7.6", app.vault_url("kv1")), token.clone());
        reads.push(tokio::spawn(async move { http.get(url).bearer_auth(token).send().await.unwrap().status() }));
    }
    for read in reads {
        assert_eq!(read.await.unwrap(), 200);
    }
    let records = app.store.audit_records(0, 10_000).await.unwrap();
    let read_records: Vec<_> = records.iter().filter(|r| r.action == "vaultSecret.read" && r.target_id == "kv1/watched").collect();
    let reads: i64 = read_records.iter().map(|r| r.details["reads"].as_i64().unwrap()).sum();
    assert_eq!(reads, 20, "every read is recorded");
    let mut ids: Vec<&str> =
        read_records.iter().flat_map(|r| r.details["correlationIds"].as_array().unwrap().iter().map(|v| v.as_str().unwrap())).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 20, "with each read's correlation id");
    assert!(read_records.iter().all(|r| r.actor.app_id.as_deref() == Some(app.admin_client_id.as_str())));
    // Reads do not count as state changes: caches stay warm.
    let changes = app.store.change_head().await.unwrap();
    let (status, _, _) = kv(&app, "kv1", Some(&token), Method::GET, "/secrets/watched/", None).await;
    assert_eq!(status, 200);
    assert_eq!(app.store.change_head().await.unwrap(), changes);
    // When the record cannot be written, the value is not returned.
    let pool = app.store.write_pool().clone();
    let (create, drop) = match app.backend {
        Backend::Sqlite => (
            vec!["CREATE TRIGGER refuse_audit BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'refused'); END"],
            "DROP TRIGGER refuse_audit",
        ),
        Backend::Postgres => (
            vec![
                "CREATE FUNCTION refuse_audit() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$ LANGUAGE plpgsql",
                "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION refuse_audit()",
            ],
            "DROP TRIGGER refuse_audit ON audit",
        ),
    };
    for statement in create {
        sqlx::Executor::execute(&pool, statement).await.unwrap();
    }
    let (status, headers, answer) = kv(&app, "kv1", Some(&token), Method::GET, "/secrets/watched/", None).await;
    assert_eq!(status, 503, "{answer}");
    assert!(headers.contains_key("retry-after"));
    assert!(!answer.to_string().contains("audited-value-1"));
    sqlx::Executor::execute(&pool, drop).await.unwrap();
    let (status, _, _) = kv(&app, "kv1", Some(&token), Method::GET, "/secrets/watched/", None).await;
    assert_eq!(status, 200);
    app.remember(&token);
    app
}));
