//! Request context at the edge: correlation ids, client address, security headers and the access
//! log, plus the extractors handlers use to learn who is calling.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request};
use axum::http::header::{HeaderName, HeaderValue};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;

use clavis_core::audit::RequestContext;
use clavis_core::policy::Principal;

use crate::error::ApiError;
use crate::AppState;

/// The ids of one request: the caller's correlation id (or a new one) and Clavis's trace id.
#[derive(Clone, Debug)]
pub struct Correlation {
    /// Echoed as `client-request-id`; the id the caller quotes.
    pub correlation_id: String,
    /// Echoed as `x-ms-request-id`.
    pub trace_id: String,
    /// The instance's public URL, for links in error bodies.
    pub public_url: std::sync::Arc<str>,
}

/// A new request or trace id in GUID form: a random 128-bit base drawn once per process, plus
/// a counter. Ids must be unique, not secret, so a request costs no CSPRNG call for them.
pub fn next_id() -> String {
    static BASE: std::sync::OnceLock<u128> = std::sync::OnceLock::new();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let base = *BASE.get_or_init(|| u128::from_le_bytes(clavis_crypto::random::bytes::<16>()));
    let value = base.wrapping_add(u128::from(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        (value >> 96) as u32,
        (value >> 80) as u16,
        (value >> 64) as u16,
        (value >> 48) as u16,
        value & 0xffff_ffff_ffff
    )
}

fn acceptable_id(value: &str) -> bool {
    !value.is_empty() && value.len() <= 64 && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Middleware around every request: assigns ids, adds security headers, logs the outcome
/// (method, route template, status, latency, ids; never bodies, query strings or headers that
/// may hold credentials).
pub async fn edge(axum::extract::State(state): axum::extract::State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let supplied = ["client-request-id", "x-ms-client-request-id"]
        .iter()
        .filter_map(|name| request.headers().get(*name).and_then(|v| v.to_str().ok()))
        .find(|v| acceptable_id(v))
        .map(str::to_string)
        .or_else(|| {
            request.uri().query().and_then(|query| {
                query.split('&').filter_map(|pair| pair.strip_prefix("client-request-id=")).find(|v| acceptable_id(v)).map(str::to_string)
            })
        });
    let correlation =
        Correlation { correlation_id: supplied.unwrap_or_else(next_id), trace_id: next_id(), public_url: state.public_url.clone() };
    request.extensions_mut().insert(correlation.clone());
    let oversized_head = head_too_large(request.headers());
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "(unmatched)".into());
    // Kept only where needed: the tenant segment of token paths (metrics), the peer for failures.
    let path = if route.contains("/oauth2/") { request.uri().path().to_string() } else { String::new() };
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let mut response = match oversized_head {
        Some(message) => head_refusal(&path_of(&request), message),
        None => next.run(request).await,
    };
    if let Some(deferred) = response.extensions_mut().remove::<crate::error::DeferredBody>() {
        let body = (deferred.0)(&correlation);
        let (parts, _) = response.into_parts();
        response = Response::from_parts(parts, axum::body::Body::from(body));
    }
    let headers = response.headers_mut();
    let set = |headers: &mut axum::http::HeaderMap, name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    set(headers, "client-request-id", &correlation.correlation_id);
    set(headers, "x-ms-request-id", &correlation.trace_id);
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "strict-transport-security", "max-age=31536000");
    if !headers.contains_key("referrer-policy") {
        set(headers, "referrer-policy", "no-referrer");
    }
    if !headers.contains_key("cache-control") {
        set(headers, "cache-control", "no-store");
    }
    let status = response.status().as_u16();
    let latency_us = started.elapsed().as_micros() as u64;
    let code = response.extensions().get::<ErrorCode>().map(|c| c.0.as_str()).unwrap_or("");
    let observed = crate::metrics::Observed { route: &route, path: &path, method: method.as_str(), status, code, micros: latency_us };
    state.metrics.observe(&state, &observed);
    // Token requests have their own, richer record (the sign-in log); every other refused or
    // failed request is kept for `clavis diagnose`.
    if status >= 400 && !route.contains("/oauth2/") {
        state.core.record_failure(clavis_core::signin::RequestFailure {
            id: String::new(),
            at: state.core.now(),
            method: method.to_string(),
            route: route.clone(),
            status: i64::from(status),
            error_code: code.to_string(),
            message: response.extensions().get::<ErrorMessage>().map(|m| m.0.clone()).unwrap_or_default(),
            client_ip: peer.map(|ip| ip.to_string()).unwrap_or_default(),
            correlation_id: correlation.correlation_id.clone(),
        });
    }
    if status >= 500 {
        tracing::error!(target: "clavis::access", %method, route, status, latency_us, error_code = code, correlation_id = %correlation.correlation_id, trace_id = %correlation.trace_id, "request failed");
    } else if status >= 400 {
        tracing::info!(target: "clavis::access", %method, route, status, latency_us, error_code = code, correlation_id = %correlation.correlation_id, trace_id = %correlation.trace_id, "request refused");
    } else {
        tracing::debug!(target: "clavis::access", %method, route, status, latency_us, correlation_id = %correlation.correlation_id, "request served");
    }
    response
}

/// Header fields a request may carry.
pub const MAX_HEADER_FIELDS: usize = 100;
/// Bytes of all header names and values of a request.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

fn head_too_large(headers: &axum::http::HeaderMap) -> Option<String> {
    if headers.len() > MAX_HEADER_FIELDS {
        return Some(format!("The request carries {} header fields; at most {MAX_HEADER_FIELDS} are accepted.", headers.len()));
    }
    let bytes: usize = headers.iter().map(|(name, value)| name.as_str().len() + value.len()).sum();
    (bytes > MAX_HEADER_BYTES).then(|| format!("The request's headers hold {bytes} bytes; at most {MAX_HEADER_BYTES} are accepted."))
}

fn path_of(request: &Request) -> String {
    request.uri().path().to_string()
}

/// 431 for an oversized request head, in the shape of the protocol the path belongs to: Entra's
/// for the token service, Graph's (which Key Vault's shares) elsewhere.
fn head_refusal(path: &str, message: String) -> Response {
    if path.contains("/oauth2/") {
        let error = clavis_core::token::TokenError::Malformed(message);
        let mut response = crate::entra::token_error_response(&error);
        *response.status_mut() = axum::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
        response
    } else {
        axum::response::IntoResponse::into_response(crate::error::ApiError::new(
            axum::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "RequestHeaderFieldsTooLarge",
            message,
        ))
    }
}

/// The error code of a refused request, attached to the response for the access log.
#[derive(Clone, Debug)]
pub struct ErrorCode(pub String);

/// The error message of a refused request, attached to the response for the failure log.
#[derive(Clone, Debug)]
pub struct ErrorMessage(pub String);

/// The caller's IP address (from the TCP connection).
pub fn client_ip(parts: &Parts) -> String {
    parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string()).unwrap_or_default()
}

/// The caller's IP address as an extractor.
#[derive(Debug)]
pub struct ClientIp(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(client_ip(parts)))
    }
}

/// Extracts the audit context of a request.
#[derive(Debug)]
pub struct Context(pub RequestContext);

impl<S: Send + Sync> FromRequestParts<S> for Context {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let correlation_id = parts.extensions.get::<Correlation>().map(|c| c.correlation_id.clone()).unwrap_or_default();
        let user_agent = parts.headers.get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or("").chars().take(200).collect();
        Ok(Self(RequestContext { correlation_id, client_ip: client_ip(parts), user_agent }))
    }
}

/// The authenticated caller of the management API (a verified Clavis-issued bearer token).
#[derive(Debug)]
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
        let token =
            header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("bearer ")).map(str::trim).filter(|t| !t.is_empty()).ok_or_else(
                || {
                    ApiError::unauthenticated(
                        "Access token is empty or missing: send 'Authorization: Bearer <token>' with a token for api://clavis/.default."
                            .into(),
                    )
                },
            )?;
        state.core.authenticate(token).map(Caller).map_err(ApiError::from)
    }
}
