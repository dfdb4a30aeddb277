//! Sealed start. Without its master key (or with one that does not open the instance's keys)
//! Clavis still starts, sealed: `/healthz` says so, `/readyz` answers 503, every other request is
//! answered 503 with a message saying how to unseal, and nothing is read from or written to the
//! store beyond what was needed to know it is sealed. `POST /v1.0/clavis/unseal` with the key
//! (as `clavis unseal` sends it) opens the instance and the full service takes over on the same
//! listener, without a restart.
//!
//! The unseal request is not authenticated otherwise: holding the master key is the credential
//! (as with Vault's unseal keys), and a wrong key only earns a refusal.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;
use tower::ServiceExt as _;

/// Opens the instance with a master key given as text; the error says why it did not open.
pub type Unseal = Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// A router whose routes can be replaced while serving: the sealed routes until unsealed, then
/// the full service.
#[derive(Clone, Default)]
pub struct Switch(Arc<RwLock<Router>>);

impl std::fmt::Debug for Switch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Switch")
    }
}

impl Switch {
    /// Serves `router` from now on.
    pub fn set(&self, router: Router) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = router;
    }

    /// The router to hand to the listener: every request goes to the current routes.
    pub fn router(&self) -> Router {
        let current = self.0.clone();
        Router::new().fallback_service(tower::service_fn(move |request: Request| {
            let router = current.read().unwrap_or_else(|e| e.into_inner()).clone();
            router.oneshot(request)
        }))
    }
}

#[derive(Clone)]
struct Sealed {
    reason: Arc<str>,
    unseal: Unseal,
}

const HOW: &str = "Unseal it with `clavis unseal` (the master key from a file or standard input), or restart it with the key (CLAVIS_MASTER_KEY or master_key_file).";

/// The routes of a sealed instance. `reason` says why it is sealed (never the key).
pub fn router(reason: &str, unseal: Unseal) -> Router {
    let state = Sealed { reason: reason.into(), unseal };
    Router::new()
        .route(
            "/healthz",
            get(|State(s): State<Sealed>| async move {
                json_response(StatusCode::OK, json!({"status": "sealed", "sealed": true, "reason": &*s.reason}))
            }),
        )
        .route(
            "/readyz",
            get(|State(s): State<Sealed>| async move {
                json_response(StatusCode::SERVICE_UNAVAILABLE, json!({"status": "sealed", "sealed": true, "reason": &*s.reason}))
            }),
        )
        .route("/v1.0/clavis/unseal", post(unseal_handler))
        .fallback(refuse)
        .layer(axum::extract::DefaultBodyLimit::max(4096))
        .with_state(state)
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("strict-transport-security", HeaderValue::from_static("max-age=31536000"));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    response
}

/// Every operation of a sealed instance: 503 in the shape of the protocol the path belongs to.
async fn refuse(State(state): State<Sealed>, request: Request) -> Response {
    let message = format!("Clavis is sealed: {}. {HOW}", state.reason);
    let mut response = if request.uri().path().contains("/oauth2/") {
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "temporarily_unavailable", "error_description": format!("AADSTS50000: {message}"), "error_codes": [50000]}),
        )
    } else {
        json_response(StatusCode::SERVICE_UNAVAILABLE, json!({"error": {"code": "Sealed", "message": message}}))
    };
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UnsealBody {
    key: String,
}

async fn unseal_handler(
    State(state): State<Sealed>,
    body: Result<axum::Json<UnsealBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(axum::Json(body)) = body else {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"error": {"code": "BadRequest", "message": "Send {\"key\": \"<the master key, base64 or hex>\"} as JSON."}}),
        );
    };
    match (state.unseal)(body.key).await {
        Ok(()) => {
            tracing::info!(target: "clavis::seal", "unsealed");
            json_response(StatusCode::OK, json!({"sealed": false}))
        }
        Err(why) => {
            tracing::warn!(target: "clavis::seal", reason = %why, "unseal refused");
            json_response(StatusCode::BAD_REQUEST, json!({"error": {"code": "UnsealFailed", "message": why}}))
        }
    }
}
