//! Limits: header count and size, form parameters, JSON nesting, body size, slow request heads
//! and the connection limit, each answered in the protocol's shape (or by closing the
//! connection, for clients that never finish a request), with the server still serving and
//! nothing stored.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support::{spawn_with, Backend, Options, TestApp};

fn tls_connector(app: &TestApp) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(app.ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn connect(app: &TestApp) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", app.port)).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tls_connector(app).connect(name, tcp).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_limit_answers_in_the_protocols_shape_and_keeps_serving() {
    let limits = clavis_server::serve::Limits { max_connections: 6, header_read_timeout: Duration::from_secs(1), ..Default::default() };
    let app = spawn_with(Backend::Sqlite, Options { limits, ..Default::default() }).await;
    let head = app.audit_head().await;
    let token_url = format!("{}/{}/oauth2/v2.0/token", app.url, app.tenant_id);

    // Too many header fields, or too many header bytes: 431 in the protocol's shape.
    let mut request = app.http.get(format!("{}/v1.0/applications", app.url)).bearer_auth(&app.admin_token);
    for i in 0..150 {
        request = request.header(format!("x-filler-{i}"), "1");
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "RequestHeaderFieldsTooLarge", "{body}");
    let big = app
        .http
        .post(&token_url)
        .header("x-big", "a".repeat(40 * 1024))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let body: Value = big.json().await.unwrap();
    assert_eq!((body["error"].as_str(), body["error_codes"][0].as_i64()), (Some("invalid_request"), Some(90023)), "{body}");
    let huge = app.http.get(format!("{}/healthz", app.url)).header("x-huge", "a".repeat(200 * 1024)).send().await;
    assert!(
        huge.map(|r| r.status() == StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE).unwrap_or(true),
        "beyond the parser's buffer: 431 or closed"
    );

    // A token form with too many parameters: Entra's error shape, AADSTS90023.
    let form: String = (0..100).map(|i| format!("p{i}=1&")).collect::<String>() + "grant_type=client_credentials";
    let (status, _, body) =
        app.raw_token(&format!("/{}/oauth2/v2.0/token", app.tenant_id), "application/x-www-form-urlencoded", form.into_bytes()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_request");
    assert_eq!(body["error_codes"][0], 90023, "{body}");
    // A body over 64 KiB: 413 in the same shape.
    let (status, _, body) =
        app.raw_token(&format!("/{}/oauth2/v2.0/token", app.tenant_id), "application/x-www-form-urlencoded", vec![b'a'; 70 * 1024]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error_codes"][0], 90023, "{body}");

    // JSON nested beyond the parser's limit: the management API answers in Graph's shape, the
    // vault in Key Vault's; no stack overflow.
    let deep = "[".repeat(100_000) + &"]".repeat(100_000);
    let response = app
        .http
        .post(format!("{}/v1.0/applications", app.url))
        .bearer_auth(&app.admin_token)
        .header("content-type", "application/json")
        .body(deep.clone())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert!(status == StatusCode::BAD_REQUEST || status == StatusCode::PAYLOAD_TOO_LARGE, "{status} {body}");
    assert!(body["error"]["code"].is_string() && body["error"]["message"].is_string(), "{body}");
    let nested = "{\"value\":".repeat(1_000) + "\"x\"" + &"}".repeat(1_000);
    let (status, _) = app.api(Method::POST, "/v1.0/clavis/vaults", Some(serde_json::json!({"name": "kv1"}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let token = app.vault_token(&app.admin_client_id, &app.admin_secret).await;
    let response = app
        .vault_http("kv1")
        .put(format!("{}/secrets/deep?api-version=7.6", app.vault_url("kv1")))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(nested)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "BadParameter", "{body}");
    let head_after_vault = app.audit_head().await;

    // A client that never finishes its request head is disconnected after the header timeout.
    let mut slow = connect(&app).await.unwrap();
    slow.write_all(b"POST /healthz HTTP/1.1\r\nHost: localhost\r\nx-slow: ").await.unwrap();
    let started = std::time::Instant::now();
    let mut buffer = [0u8; 512];
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut buffer)).await.expect("closed within the timeout");
    assert!(started.elapsed() >= Duration::from_millis(900), "not before the timeout");
    assert!(matches!(read, Ok(_) | Err(_)), "the connection ended");
    drop(slow);

    // The connection limit: with 6 connections open, a 7th waits; it is served once one closes.
    let mut open = Vec::new();
    for _ in 0..6 {
        let mut stream = connect(&app).await.unwrap();
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
        let mut answer = [0u8; 64];
        let n = stream.read(&mut answer).await.unwrap();
        assert!(answer[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer[..n]));
        open.push(stream);
    }
    let waiting = tokio::time::timeout(Duration::from_millis(700), connect(&app)).await;
    assert!(waiting.is_err(), "a seventh connection was served beyond the limit");
    drop(open.pop());
    let seventh = tokio::time::timeout(Duration::from_secs(5), connect(&app)).await;
    assert!(matches!(seventh, Ok(Ok(_))), "the waiting connection is served once one closes");
    drop(seventh);
    drop(open);

    // Still serving, and nothing was stored by any refused request.
    let healthy = app.http.get(format!("{}/healthz", app.url)).send().await.unwrap();
    assert_eq!(healthy.status(), StatusCode::OK);
    assert_eq!(app.audit_head().await, head_after_vault);
    assert!(head_after_vault <= head + 2, "only the vault creation was recorded");
    app.finish().await;
}
