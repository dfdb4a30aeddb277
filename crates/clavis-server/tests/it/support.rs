//! `spawn_app`: the real server on 127.0.0.1:0 over TLS, with a temporary SQLite file or a fresh
//! PostgreSQL database, a `FixedClock`, and the bootstrap administrator's token. Every secret and
//! token a test sees is registered, and `finish` scans everything logged so far for them.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use time::OffsetDateTime;

use clavis_core::clock::FixedClock;
use clavis_core::keys::RotationSchedule;
use clavis_core::store::Store;
use clavis_core::{Core, CoreSettings};
use clavis_crypto::{Algorithm, MasterKey};
use clavis_server::AppState;
use clavis_store::SqlStore;

/// Which store a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Everything logged by every test in this process, at TRACE level.
fn log_buffer() -> &'static Mutex<Vec<u8>> {
    static BUFFER: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    BUFFER.get_or_init(|| Mutex::new(Vec::new()))
}

#[derive(Clone)]
struct BufferWriter;

impl std::io::Write for BufferWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        log_buffer().lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn init_logging() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = tracing_subscriber::fmt().with_max_level(tracing::Level::TRACE).with_writer(|| BufferWriter).with_ansi(false).try_init();
    });
}

/// The PostgreSQL server tests use.
pub fn postgres_url() -> String {
    std::env::var("CLAVIS_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// Creates a fresh database on the test PostgreSQL server. An unreachable server fails the test
/// with a clear message: it is never skipped silently.
pub async fn fresh_postgres_database() -> (String, String) {
    use sqlx::Executor as _;
    sqlx::any::install_default_drivers();
    let admin_url = postgres_url();
    let mut connection = sqlx::AnyConnection::connect_with_retry(&admin_url).await;
    let name = format!("clavis_it_{}", &clavis_crypto::random::hex128()[..16]);
    connection.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("CREATE DATABASE");
    let base = admin_url.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or(admin_url.clone());
    (format!("{base}/{name}"), name)
}

/// Drops a test database (best effort).
pub async fn drop_postgres_database(name: &str) {
    use sqlx::Executor as _;
    if let Ok(mut connection) = <sqlx::AnyConnection as sqlx::Connection>::connect(&postgres_url()).await {
        let _ = connection.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await;
    }
}

trait ConnectWithRetry {
    async fn connect_with_retry(url: &str) -> sqlx::AnyConnection;
}

impl ConnectWithRetry for sqlx::AnyConnection {
    async fn connect_with_retry(url: &str) -> sqlx::AnyConnection {
        match <sqlx::AnyConnection as sqlx::Connection>::connect(url).await {
            Ok(connection) => connection,
            Err(error) => panic!(
                "PostgreSQL at {} is unreachable ({error}). The suite runs every store test on PostgreSQL too: start it, or point CLAVIS_TEST_DATABASE_URL at one.",
                clavis_store::redact_url(url)
            ),
        }
    }
}

/// A running server and what tests need to drive it.
pub struct TestApp {
    pub url: String,
    pub tenant_id: String,
    pub admin_client_id: String,
    pub admin_token: String,
    pub admin_secret: String,
    pub http: reqwest::Client,
    pub clock: Arc<FixedClock>,
    pub core: Arc<Core>,
    pub store: Arc<SqlStore>,
    pub master_key_text: String,
    pub backend: Backend,
    pub ca_pem: String,
    pub port: u16,
    secrets: Mutex<Vec<String>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
    pg_database: Option<String>,
}

/// Options for `spawn_with`.
#[derive(Clone, Debug)]
pub struct Options {
    pub algorithm: Algorithm,
    pub limits: clavis_server::serve::Limits,
}

impl Default for Options {
    fn default() -> Self {
        Self { algorithm: Algorithm::RS256, limits: clavis_server::serve::Limits::default() }
    }
}

pub async fn spawn(backend: Backend) -> TestApp {
    spawn_with(backend, Options::default()).await
}

pub fn settings(public_url: &str, algorithm: Algorithm) -> CoreSettings {
    CoreSettings {
        public_url: public_url.to_string(),
        token_lifetime_min: time::Duration::minutes(60),
        token_lifetime_max: time::Duration::minutes(90),
        credential_clock_skew: time::Duration::seconds(60),
        portal: clavis_core::admin::PortalSettings::default(),
        auth_throttle: clavis_core::throttle::ThrottleSettings::default(),
        rotation: RotationSchedule {
            period: time::Duration::days(90),
            publish_ahead: time::Duration::days(1),
            retain_after: time::Duration::minutes(100),
        },
        default_tenant_domain: "contoso.clavis.localhost".into(),
        default_tenant_name: "Contoso".into(),
        default_signing_algorithm: algorithm,
        notice_thresholds_days: vec![30, 14, 7, 1],
        buffered_read_audit: false,
        vault_resource: format!("https://vault.{}", public_url.trim_start_matches("https://")),
    }
}

pub async fn spawn_with(backend: Backend, options: Options) -> TestApp {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let (database_url, pg_database) = match backend {
        Backend::Sqlite => (format!("sqlite://{}", dir.path().join("clavis.db").display()), None),
        Backend::Postgres => {
            let (url, name) = fresh_postgres_database().await;
            (url, Some(name))
        }
    };
    let store = Arc::new(SqlStore::open(&database_url).await.expect("open store"));
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let clock = Arc::new(FixedClock::new(now));
    let master = MasterKey::generate();
    let master_key_text = master.to_text();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = format!("https://localhost:{port}");
    let (core, bootstrap) = Core::open(store.clone(), clock.clone(), master, settings(&url, options.algorithm)).await.expect("open core");
    let bootstrap = bootstrap.expect("first start creates the bootstrap administrator");
    let core = Arc::new(core);
    let ca = clavis_crypto::tls::generate_ca(now).unwrap();
    let leaf =
        clavis_crypto::tls::issue_server_cert(&ca.key_pem, &["localhost".into(), "127.0.0.1".into(), "*.vault.localhost".into()], now)
            .unwrap();
    let tls = clavis_server::tls::server_config(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap();
    let master_file = dir.path().join("master.key");
    std::fs::write(&master_file, &master_key_text).unwrap();
    let state = AppState::new(core.clone(), Arc::new(AtomicBool::new(true)), Some(master_file));
    let router = clavis_server::router(state);
    let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(clavis_server::serve::serve_with(listener, tls, router, options.limits, async move {
        let _ = shutdown_rx.await;
    }));
    let http = reqwest::Client::builder().use_rustls_tls_with_ca(&ca.cert_pem).build().unwrap();
    let mut app = TestApp {
        url,
        tenant_id: bootstrap.tenant_id.clone(),
        admin_client_id: bootstrap.client_id.clone(),
        admin_token: String::new(),
        admin_secret: bootstrap.client_secret.expose().to_string(),
        http,
        clock,
        core,
        store,
        master_key_text,
        backend,
        ca_pem: ca.cert_pem.clone(),
        port,
        secrets: Mutex::new(vec![bootstrap.client_secret.expose().to_string()]),
        shutdown: Some(shutdown),
        server: Some(server),
        _dir: dir,
        pg_database,
    };
    let answer = app.token(&bootstrap.client_id, bootstrap.client_secret.expose(), "api://clavis/.default").await;
    assert_eq!(answer.0, StatusCode::OK, "bootstrap admin token: {}", answer.1);
    app.admin_token = answer.1["access_token"].as_str().unwrap().to_string();
    app.remember(&app.admin_token.clone());
    app
}

/// Builds a reqwest client that trusts one PEM CA, with rustls on aws-lc-rs.
pub trait TrustCa {
    fn use_rustls_tls_with_ca(self, pem: &str) -> Self;
}

impl TrustCa for reqwest::ClientBuilder {
    fn use_rustls_tls_with_ca(self, pem: &str) -> Self {
        use rustls::pki_types::pem::PemObject as _;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        self.use_preconfigured_tls(tls)
    }
}

impl TestApp {
    /// The directory holding the SQLite files.
    pub fn db_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// An HTTPS client that reaches `{vault}.vault.localhost` on this server.
    pub fn vault_http(&self, vault: &str) -> reqwest::Client {
        reqwest::Client::builder()
            .use_rustls_tls_with_ca(&self.ca_pem)
            .resolve(&format!("{vault}.vault.localhost"), std::net::SocketAddr::from(([127, 0, 0, 1], self.port)))
            .build()
            .unwrap()
    }

    /// The base URL of a vault.
    pub fn vault_url(&self, vault: &str) -> String {
        format!("https://{vault}.vault.localhost:{}", self.port)
    }

    /// A token for the vault resource, as `client_id`.
    pub async fn vault_token(&self, client_id: &str, secret: &str) -> String {
        let (status, body) = self.token(client_id, secret, &format!("https://vault.localhost:{}/.default", self.port)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().unwrap().to_string()
    }

    /// Registers a secret or token for the leak scan.
    pub fn remember(&self, value: &str) {
        self.secrets.lock().unwrap().push(value.to_string());
    }

    /// POSTs a client-credentials request to the v2 endpoint of the app's tenant.
    pub async fn token(&self, client_id: &str, secret: &str, scope: &str) -> (StatusCode, Value) {
        let form = [("grant_type", "client_credentials"), ("client_id", client_id), ("client_secret", secret), ("scope", scope)];
        let response = self.http.post(format!("{}/{}/oauth2/v2.0/token", self.url, self.tenant_id)).form(&form).send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if let Some(token) = body.get("access_token").and_then(Value::as_str) {
            self.remember(token);
        }
        (status, body)
    }

    /// POSTs a raw body to a token endpoint path.
    pub async fn raw_token(&self, path: &str, content_type: &str, body: Vec<u8>) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let response = self.http.post(format!("{}{path}", self.url)).header("content-type", content_type).body(body).send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Calls the management API as the bootstrap administrator.
    pub async fn api(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.api_as(&self.admin_token, method, path, body).await
    }

    /// Calls the management API with a given bearer token.
    pub async fn api_as(&self, token: &str, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.url)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) })
    }

    /// Registers an application and returns its JSON.
    pub async fn create_app(&self, name: &str, identifier_uris: &[&str]) -> Value {
        let (status, body) =
            self.api(Method::POST, "/v1.0/applications", Some(json!({"displayName": name, "identifierUris": identifier_uris}))).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// Adds a secret to an application; returns (keyId, secretText).
    pub async fn add_secret(&self, app: &Value, credential: Value) -> (String, String) {
        let (status, body) = self
            .api(
                Method::POST,
                &format!("/v1.0/applications/{}/addPassword", app["id"].as_str().unwrap()),
                Some(json!({"passwordCredential": credential})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let secret = body["secretText"].as_str().unwrap().to_string();
        self.remember(&secret);
        (body["keyId"].as_str().unwrap().to_string(), secret)
    }

    /// The audit head, to prove a refused request changed nothing.
    /// Another node: a core over the same store and master key, with the given clock (the app's
    /// for a node running beside it, a new one for a restart).
    pub async fn node(&self, clock: Arc<FixedClock>) -> Arc<Core> {
        let master = MasterKey::parse(&self.master_key_text).unwrap();
        Arc::new(Core::open(self.store.clone(), clock, master, settings(&self.url, Algorithm::RS256)).await.unwrap().0)
    }

    pub async fn audit_head(&self) -> i64 {
        self.store.audit_head().await.unwrap()
    }

    /// Stops the server, verifies the audit chain, and scans all logs for this test's secrets.
    pub async fn finish(mut self) {
        let records = self.store.audit_records(0, 100_000).await.unwrap();
        assert_eq!(clavis_core::audit::verify_chain(&records, 0, clavis_core::audit::GENESIS_HASH.to_string()), None, "audit chain broken");
        for record in &records {
            let text = serde_json::to_string(record).unwrap();
            for secret in self.secrets.lock().unwrap().iter() {
                assert!(!text.contains(secret.as_str()), "an audit record holds a secret or token");
            }
        }
        // Sign-in and request-failure records are logs too: none may hold a secret or token.
        self.core.flush_logs().await.unwrap();
        let filter = clavis_core::signin::SignInFilter { limit: 1_000_000, ..Default::default() };
        let signins = serde_json::to_string(&self.store.signins(&filter).await.unwrap()).unwrap();
        let failures: Vec<(String, String, String)> =
            sqlx::query_as("SELECT route, error_code, message FROM request_failures").fetch_all(self.store.write_pool()).await.unwrap();
        let failures = format!("{failures:?}");
        for secret in self.secrets.lock().unwrap().iter() {
            assert!(!signins.contains(secret.as_str()), "a sign-in record holds a secret or token");
            assert!(!failures.contains(secret.as_str()), "a request-failure record holds a secret or token");
        }
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        self.store.close().await;
        let logs = String::from_utf8_lossy(&log_buffer().lock().unwrap()).to_string();
        for secret in self.secrets.lock().unwrap().iter() {
            assert!(!logs.contains(secret.as_str()), "a secret or token appeared in the logs");
        }
        if let Some(name) = &self.pg_database {
            drop_postgres_database(name).await;
        }
    }
}

/// Runs one test body on SQLite and on PostgreSQL, as two tests.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::support::spawn($crate::support::Backend::Sqlite).await;
                let run: fn(
                    $crate::support::TestApp,
                ) -> std::pin::Pin<Box<dyn std::future::Future<Output = $crate::support::TestApp> + Send>> = $body;
                run(app).await.finish().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let app = $crate::support::spawn($crate::support::Backend::Postgres).await;
                let run: fn(
                    $crate::support::TestApp,
                ) -> std::pin::Pin<Box<dyn std::future::Future<Output = $crate::support::TestApp> + Send>> = $body;
                run(app).await.finish().await;
            }
        }
    };
}

/// Asserts an Entra error: status, `error`, AADSTS code, and the full body shape.
pub fn assert_entra_error(status: StatusCode, body: &Value, expected_status: u16, error: &str, code: u64) {
    assert_eq!(status.as_u16(), expected_status, "{body}");
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_codes"], json!([code]), "{body}");
    let description = body["error_description"].as_str().unwrap();
    assert!(description.starts_with(&format!("AADSTS{code}: ")), "{description}");
    assert!(
        description.contains("\r\nTrace ID: ") && description.contains("\r\nCorrelation ID: ") && description.contains("\r\nTimestamp: "),
        "{description}"
    );
    assert!(body["trace_id"].is_string() && body["correlation_id"].is_string() && body["timestamp"].is_string(), "{body}");
}

/// Asserts a Graph error: status and code, with request ids.
pub fn assert_graph_error(status: StatusCode, body: &Value, expected_status: u16, code: &str) {
    assert_eq!(status.as_u16(), expected_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(body["error"]["innerError"]["request-id"].is_string(), "{body}");
}

/// Decodes a JWT's claims without verifying.
pub fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&clavis_crypto::b64url_decode(payload).unwrap()).unwrap()
}

/// Every row of every copied table of a store, as text, for comparing two stores.
pub async fn dumps(store: &SqlStore) -> Vec<(&'static str, Vec<String>)> {
    let mut all = Vec::new();
    for table in clavis_store::migrate::TABLES {
        all.push((*table, store.dump_table(table).await.unwrap()));
    }
    all
}
