//! The Clavis HTTPS edge: axum handlers that extract, call `clavis-core`, and map the result.
//!
//! * [`entra`]: the Entra ID-compatible token service (discovery, JWKS, token endpoints), held to
//!   `docs/contracts/entra-token-service.md`; AADSTS error bodies.
//! * [`api`]: the management API under `/v1.0/`, shaped after Microsoft Graph.
//! * [`portal`]: the web portal under `/portal` for people (server-rendered HTML).
//! * [`serve`]: the TLS accept loop with graceful shutdown; [`jobs`]: background work.
//!
//! **Invariant:** handlers hold no domain rules; authorization is decided in the core.

pub mod api;
pub mod context;
pub mod entra;
pub mod error;
mod error_pages;
mod form;
pub mod jobs;
pub mod keyvault;
pub mod metrics;
pub mod openapi;
pub mod portal;
pub mod sealed;
pub mod serve;
pub mod tls;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use tower::ServiceExt as _;

use clavis_core::Core;

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The domain.
    pub core: Arc<Core>,
    /// False until start-up has finished and while shutting down.
    pub ready: Arc<AtomicBool>,
    /// Where the master key lives when Clavis manages it as a file (for `keys rotate-master`).
    pub master_key_file: Option<PathBuf>,
    /// The public URL (from the core's settings), shared cheaply with every request.
    pub public_url: std::sync::Arc<str>,
    /// This node's metrics.
    pub metrics: Arc<metrics::Metrics>,
}

impl AppState {
    /// The state of a server over `core`.
    pub fn new(core: Arc<Core>, ready: Arc<AtomicBool>, master_key_file: Option<PathBuf>) -> Self {
        let public_url = core.settings().public_url.clone().into();
        Self { core, ready, master_key_file, public_url, metrics: Arc::default() }
    }
}

/// Limits on request bodies: token requests are small forms; management bodies small JSON.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The whole HTTP surface: vault hosts (`{vault}.vault.{host}`) go to the Key Vault API, every
/// other host to the token service and the management API.
pub fn router(state: AppState) -> Router {
    let main = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/error", get(error_pages::error_page))
        .route("/metrics", get(metrics::metrics))
        .merge(api::routes())
        .merge(entra::routes())
        .merge(portal::routes())
        .fallback(api::not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(state.clone(), context::edge))
        .with_state(state.clone());
    let vault =
        keyvault::routes(state.clone()).layer(axum::middleware::from_fn_with_state(state.clone(), context::edge)).with_state(state.clone());
    let resource_host = state.core.settings().vault_resource.trim_start_matches("https://").to_ascii_lowercase();
    let resource_host = resource_host.rsplit_once(':').map_or(resource_host.as_str(), |(host, _)| host).to_string();
    let suffix = format!(".{resource_host}");
    Router::new().fallback_service(tower::service_fn(move |mut request: axum::extract::Request| {
        let target = match keyvault::vault_of_host(request.headers(), &suffix) {
            Some(name) => {
                request.extensions_mut().insert(keyvault::VaultName(name));
                vault.clone()
            }
            None => main.clone(),
        };
        target.oneshot(request)
    }))
}

mod health {
    use std::sync::atomic::Ordering;

    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::Json;
    use serde_json::{json, Value};

    use crate::AppState;

    /// Liveness: the process answers.
    pub async fn healthz() -> Json<Value> {
        Json(json!({"status": "ok"}))
    }

    /// Readiness: start-up finished and the store answers.
    pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
        let store = state.core.store().ping().await.is_ok();
        let ready = state.ready.load(Ordering::Acquire) && store;
        let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
        (
            status,
            Json(
                json!({"status": if ready { "ready" } else { "not ready" }, "store": {"backend": state.core.store().backend(), "reachable": store}}),
            ),
        )
    }
}
