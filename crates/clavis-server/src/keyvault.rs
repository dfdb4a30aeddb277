//! The Azure Key Vault-compatible secrets API, held to `docs/contracts/keyvault-secrets.md`.
//! Each vault is served at the root of its own host, `https://{vault}.vault.{host}[:port]`; the
//! dispatcher in `lib.rs` sends those hosts here.
//!
//! **Boundary:** wire shapes only (challenge, paths, status codes, JSON bodies, paging, error
//! bodies). Which caller may do what, and what is stored, is decided in the core.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use clavis_core::audit::RequestContext;
use clavis_core::policy::Principal;
use clavis_core::vault::{DeletedState, Secret, SecretProperties, SecretVersion, Vault, MAX_PAGE};
use clavis_core::{CoreError, PropertiesPatch, SecretValue};

use crate::context::{Context, ErrorCode};
use crate::AppState;

/// The vault a request's Host names (inserted by the dispatcher).
#[derive(Clone, Debug)]
pub struct VaultName(pub String);

/// The authenticated caller of a vault request (inserted by [`authenticate`]).
#[derive(Clone, Debug)]
pub struct VaultCaller {
    pub vault: Arc<Vault>,
    pub principal: Principal,
    /// `https://{vault host}`: the base of every id and nextLink.
    pub base: String,
}

/// Vault bodies may carry a 25 KiB value, JSON-escaped.
pub const MAX_VAULT_BODY_BYTES: usize = 256 * 1024;

/// The vault data-plane routes. The challenge runs before routing decisions reach a handler, so
/// every unauthenticated request, on any path, gets the 401 challenge first.
pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/secrets", get(list_secrets))
        .route("/secrets/restore", post(restore).put(set_named_restore).delete(delete_named_restore).get(get_named_restore))
        .route("/secrets/{name}", axum::routing::put(set_secret).delete(delete_secret).get(get_latest))
        .route("/secrets/{name}/", get(get_latest).patch(update_latest))
        .route("/secrets/{name}/versions", get(list_versions))
        .route("/secrets/{name}/backup", post(backup))
        .route("/secrets/{name}/{version}", get(get_version).patch(update_version))
        .route("/deletedsecrets", get(list_deleted))
        .route("/deletedsecrets/{name}", get(get_deleted).delete(purge))
        .route("/deletedsecrets/{name}/recover", post(recover))
        .fallback(unknown_route)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_VAULT_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(state, authenticate))
}

// ----- errors ---------------------------------------------------------------------------------------

/// Inner codes carried as a `Code: ` prefix of core messages.
const INNER_CODES: &[&str] =
    &["ObjectIsDeletedButRecoverable", "ForbiddenByRbac", "SecretDisabled", "SecretExpired", "SecretNotYetValid", "PurgeProtected"];

/// A Key Vault error: `{"error":{"code":…,"message":…[,"innererror":{"code":…}]}}`.
pub fn vault_error(status: StatusCode, code: &str, message: &str, inner: Option<&str>) -> Response {
    let mut error = json!({"code": code, "message": message});
    if let Some(inner) = inner {
        error["innererror"] = json!({"code": inner});
    }
    let mut response = (status, json!({"error": error}).to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    response.extensions_mut().insert(ErrorCode(inner.unwrap_or(code).to_string()));
    response.extensions_mut().insert(crate::context::ErrorMessage(message.to_string()));
    response
}

fn split_code(message: &str) -> (Option<&str>, &str) {
    match message.split_once(": ") {
        Some((code, rest)) if !code.is_empty() && code.chars().all(|c| c.is_ascii_alphanumeric()) => (Some(code), rest),
        _ => (None, message),
    }
}

/// Maps a core error to Key Vault's status, code and inner code. Exhaustive.
pub fn core_error(error: CoreError) -> Response {
    match error {
        CoreError::Invalid(message) => vault_error(StatusCode::BAD_REQUEST, "BadParameter", &message, None),
        CoreError::NotFound(message) => {
            let (code, rest) = split_code(&message);
            vault_error(StatusCode::NOT_FOUND, code.unwrap_or("NotFound"), rest, None)
        }
        CoreError::Conflict(message) => {
            let (code, rest) = split_code(&message);
            let inner = code.filter(|c| INNER_CODES.contains(c));
            vault_error(StatusCode::CONFLICT, "Conflict", rest, inner)
        }
        CoreError::Forbidden(message) => {
            let (code, rest) = split_code(&message);
            let inner = code.filter(|c| INNER_CODES.contains(c));
            vault_error(StatusCode::FORBIDDEN, "Forbidden", rest, inner)
        }
        CoreError::Unauthenticated(message) => vault_error(StatusCode::UNAUTHORIZED, "Unauthorized", &message, None),
        CoreError::Throttled { retry_after_seconds, message } => {
            let mut response = vault_error(StatusCode::TOO_MANY_REQUESTS, "Throttled", &message, None);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds));
            response
        }
        CoreError::Token(error) => vault_error(StatusCode::BAD_REQUEST, "BadParameter", &error.to_string(), None),
        CoreError::Store(detail) => {
            tracing::error!(error = %detail, "store failure on the vault path");
            let mut response = vault_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "The vault's store is unavailable; nothing was changed. Retry later.",
                None,
            );
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            response
        }
        CoreError::Internal(detail) => {
            tracing::error!(error = %detail, "internal failure on the vault path");
            vault_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", "An internal error occurred; nothing was changed.", None)
        }
    }
}

fn bad_parameter(message: impl Into<String>) -> Response {
    vault_error(StatusCode::BAD_REQUEST, "BadParameter", &message.into(), None)
}

/// A refusal built before the handler's main work (boxed: responses are large).
type Refusal = Box<Response>;

fn refuse(message: impl Into<String>) -> Refusal {
    Box::new(bad_parameter(message))
}

// ----- the challenge --------------------------------------------------------------------------------

/// Authenticates every vault request before anything else looks at it: no or bad token → 401
/// with the challenge naming the vault's tenant and the vault resource.
async fn authenticate(State(state): State<AppState>, Extension(name): Extension<VaultName>, mut request: Request, next: Next) -> Response {
    let vault = match state.core.open_vault(&name.0).await {
        Ok(vault) => vault,
        Err(error) => return core_error(error),
    };
    let challenge = format!(
        "Bearer authorization=\"{}/{}\", resource=\"{}\"",
        state.core.settings().public_url,
        vault.tenant_id,
        state.core.settings().vault_resource
    );
    let unauthorized = |message: &str| {
        let mut response = vault_error(StatusCode::UNAUTHORIZED, "Unauthorized", message, None);
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        response
    };
    let header = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let Some(token) = header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("bearer ")).map(str::trim).filter(|t| !t.is_empty())
    else {
        return unauthorized("AKV10000: Request is missing a Bearer or PoP token.");
    };
    let principal = match state.core.authenticate_vault(token, &vault) {
        Ok(principal) => principal,
        Err(CoreError::Unauthenticated(message)) => return unauthorized(&message),
        Err(other) => return core_error(other),
    };
    if let Err(error) = state.core.throttle(&vault) {
        return core_error(error);
    }
    let host = request.headers().get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
    request.extensions_mut().insert(VaultCaller { vault, principal, base: format!("https://{host}") });
    next.run(request).await
}

async fn unknown_route() -> Response {
    vault_error(StatusCode::NOT_FOUND, "NotFound", "The requested path is not a Key Vault secrets operation.", None)
}

// ----- wire shapes ---------------------------------------------------------------------------------

fn attributes(vault: &Vault, version: &SecretVersion) -> Value {
    let mut attributes = json!({
        "enabled": version.properties.enabled,
        "created": version.created.unix_timestamp(),
        "updated": version.updated.unix_timestamp(),
        "recoveryLevel": vault.recovery_level(),
        "recoverableDays": vault.retention_days,
    });
    if let Some(nbf) = version.properties.nbf {
        attributes["nbf"] = json!(nbf);
    }
    if let Some(exp) = version.properties.exp {
        attributes["exp"] = json!(exp);
    }
    attributes
}

/// A `SecretBundle` (without `value`); `versioned` chooses the versioned or base id.
fn bundle(caller: &VaultCaller, version: &SecretVersion, versioned: bool) -> Map<String, Value> {
    let mut body = Map::new();
    if let Some(content_type) = &version.properties.content_type {
        body.insert("contentType".into(), json!(content_type));
    }
    let id = if versioned {
        format!("{}/secrets/{}/{}", caller.base, version.name, version.version)
    } else {
        format!("{}/secrets/{}", caller.base, version.name)
    };
    body.insert("id".into(), json!(id));
    body.insert("attributes".into(), attributes(&caller.vault, version));
    if !version.properties.tags.is_empty() {
        body.insert("tags".into(), json!(version.properties.tags));
    }
    body
}

fn deleted_fields(caller: &VaultCaller, name: &str, deleted: &DeletedState, body: &mut Map<String, Value>) {
    body.insert("recoveryId".into(), json!(format!("{}/deletedsecrets/{name}", caller.base)));
    body.insert("deletedDate".into(), json!(deleted.deleted_at.unix_timestamp()));
    body.insert("scheduledPurgeDate".into(), json!(deleted.scheduled_purge_at.unix_timestamp()));
}

fn ok_json(body: Value) -> Response {
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    response
}

/// Query parameters, with percent-decoded keys (Node sends `api%2Dversion`).
fn query_params(raw: Option<&str>) -> BTreeMap<String, String> {
    crate::form::pairs(raw.unwrap_or("")).collect()
}

/// Page size from `maxresults` (1–25; 25 when absent).
fn page_size(params: &BTreeMap<String, String>) -> Result<usize, Refusal> {
    match params.get("maxresults") {
        None => Ok(MAX_PAGE),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            _ => Err(refuse(format!("maxresults must be an integer from 1 to {MAX_PAGE}."))),
        },
    }
}

fn skiptoken(params: &BTreeMap<String, String>) -> Result<String, Refusal> {
    match params.get("$skiptoken") {
        None => Ok(String::new()),
        Some(token) => clavis_crypto::b64url_decode(token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| refuse("The $skiptoken is not valid.")),
    }
}

fn next_link(caller: &VaultCaller, path: &str, params: &BTreeMap<String, String>, token: &str) -> Value {
    let api_version = params.get("api-version").cloned().unwrap_or_else(|| "7.6".into());
    let mut link = format!("{}{path}?api-version={}&$skiptoken={}", caller.base, api_version, clavis_crypto::b64url(token.as_bytes()));
    if let Some(max) = params.get("maxresults") {
        link.push_str(&format!("&maxresults={max}"));
    }
    json!(link)
}

// ----- request bodies ---------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct AttributesInput {
    enabled: Option<bool>,
    nbf: Option<i64>,
    exp: Option<i64>,
    // Read-only fields that clients may echo back are accepted and ignored.
    #[allow(dead_code)]
    created: Option<i64>,
    #[allow(dead_code)]
    updated: Option<i64>,
    #[allow(dead_code)]
    recovery_level: Option<String>,
    #[allow(dead_code)]
    recoverable_days: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SetBody {
    value: Option<String>,
    content_type: Option<String>,
    tags: Option<BTreeMap<String, String>>,
    attributes: Option<AttributesInput>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateBody {
    content_type: Option<String>,
    tags: Option<BTreeMap<String, String>>,
    attributes: Option<AttributesInput>,
}

#[derive(Deserialize)]
struct ValueBody {
    value: Option<String>,
}

/// Fuzzing entry point (`fuzz/`): a set-secret body through parsing and Key Vault's limits, as
/// `PUT /secrets/{name}` reads it.
#[doc(hidden)]
pub fn fuzz_set_body(body: &[u8]) -> bool {
    let Ok(body) = parse_json::<SetBody>(&Bytes::copy_from_slice(body)) else { return false };
    let (value, properties) = body.into_parts();
    clavis_core::vault::validate_contents(value.as_deref(), &properties).is_ok()
}

impl SetBody {
    /// The value and the properties of the version it sets (enabled unless said otherwise).
    fn into_parts(self) -> (Option<String>, SecretProperties) {
        let attributes = self.attributes.unwrap_or_default();
        let properties = SecretProperties {
            content_type: self.content_type,
            tags: self.tags.unwrap_or_default(),
            enabled: attributes.enabled.unwrap_or(true),
            nbf: attributes.nbf,
            exp: attributes.exp,
        };
        (self.value, properties)
    }
}

fn parse_json<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, Refusal> {
    if body.is_empty() {
        return Err(refuse("The request body is empty; a JSON object is required."));
    }
    crate::api::json_object(body).map_err(refuse)
}

fn body_or_limit(body: Result<Bytes, axum::extract::rejection::BytesRejection>) -> Result<Bytes, Refusal> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Box::new(vault_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "BadParameter",
                &format!("The request body is larger than {MAX_VAULT_BODY_BYTES} bytes."),
                None,
            ))
        } else {
            refuse("The request body could not be read.")
        }
    })
}

type Body = Result<Bytes, axum::extract::rejection::BytesRejection>;

// ----- handlers --------------------------------------------------------------------------------------

async fn set_secret(
    state: State<AppState>,
    caller: Extension<VaultCaller>,
    context: Context,
    Path(name): Path<String>,
    body: Body,
) -> Response {
    set(state, caller, context, name, body).await
}

async fn set(
    State(state): State<AppState>,
    Extension(caller): Extension<VaultCaller>,
    Context(context): Context,
    name: String,
    body: Body,
) -> Response {
    let body = match body_or_limit(body).and_then(|b| parse_json::<SetBody>(&b)) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    let (value, properties) = body.into_parts();
    let Some(value) = value else {
        return bad_parameter("The property 'value' is required.");
    };
    // The caller sent the value: the answer echoes it without reading it back (no read to audit).
    let echoed = SecretValue::new(value.clone());
    match state.core.set_secret(&caller.principal, &context, &caller.vault, &name, SecretValue::new(value), properties).await {
        Ok(version) => value_response(&caller, &version, &echoed),
        Err(error) => core_error(error),
    }
}

fn value_response(caller: &VaultCaller, version: &SecretVersion, value: &SecretValue) -> Response {
    let mut body = Map::new();
    body.insert("value".into(), json!(value.expose()));
    body.extend(bundle(caller, version, true));
    ok_json(Value::Object(body))
}

async fn get_latest(
    State(state): State<AppState>,
    Extension(caller): Extension<VaultCaller>,
    Context(context): Context,
    Path(name): Path<String>,
) -> Response {
    read(&state, &caller, &context, &name, None).await
}

async fn get_version(
    State(state): State<AppState>,
    Extension(caller): Extension<VaultCaller>,
    Context(context): Context,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    read(&state, &caller, &context, &name, Some(&version)).await
}

async fn read(state: &AppState, caller: &VaultCaller, context: &RequestContext, name: &str, version: Option<&str>) -> Response {
    match state.core.get_secret(&caller.principal, context, &caller.vault, name, version).await {
        Ok((version, value)) => value_response(caller, &version, &value),
        Err(error) => core_error(error),
    }
}

async fn update_latest(
    state: State<AppState>,
    caller: Extension<VaultCaller>,
    context: Context,
    Path(name): Path<String>,
    body: Body,
) -> Response {
    update(state, caller, context, name, None, body).await
}

async fn update_version(
    state: State<AppState>,
    caller: Extension<VaultCaller>,
    context: Context,
    Path((name, version)): Path<(String, String)>,
    body: Body,
) -> Response {
    update(state, caller, context, name, Some(version), body).await
}

async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<VaultCaller>,
    Context(context): Context,
    name: String,
    version: Option<String>,
    body: Body,
) -> Response {
    let body = match body_or_limit(body).and_then(|b| parse_json::<UpdateBody>(&b)) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    let attributes = body.attributes.unwrap_or_default();
    let patch = PropertiesPatch {
        content_type: body.content_type,
        tags: body.tags,
        enabled: attributes.enabled,
        nbf: attributes.nbf,
        exp: attributes.exp,
    };
    match state.core.update_secret(&caller.principal, &context, &caller.vault, &name, version.as_deref(), patch).await {
        Ok(version) => ok_json(Value::Object(bundle(&caller, &version, true))),
        Err(error) => core_error(error),
    }
}

async fn list_secrets(state: State<AppState>, caller: Extension<VaultCaller>, query: RawQuery) -> Response {
    list(state, caller, query, false).await
}

async fn list_deleted(state: State<AppState>, caller: Extension<VaultCaller>, query: RawQuery) -> Response {
    list(state, caller, query, true).await
}

async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<VaultCaller>,
    RawQuery(query): RawQuery,
    deleted: bool,
) -> Response {
    let params = query_params(query.as_deref());
    let (size, after) = match page_size(&params).and_then(|size| skiptoken(&params).map(|after| (size, after))) {
        Ok(pair) => pair,
        Err(response) => return *response,
    };
    let secrets = match state.core.list_secrets(&caller.principal, &caller.vault, deleted, &after, size).await {
        Ok(secrets) => secrets,
        Err(error) => return core_error(error),
    };
    let items: Vec<Value> = secrets.iter().filter_map(|secret| secret_item(&caller, secret)).collect();
    let next = if secrets.len() == size {
        secrets
            .last()
            .map(|s| next_link(&caller, if deleted { "/deletedsecrets" } else { "/secrets" }, &params, &s.name.to_ascii_lowercase()))
    } else {
        None
    };
    ok_json(json!({"value": items, "nextLink": next}))
}

fn secret_item(caller: &VaultCaller, secret: &Secret) -> Option<Value> {
    let latest = secret.latest()?;
    let mut item = bundle(caller, latest, false);
    if let Some(deleted) = &secret.deleted {
        deleted_fields(caller, &secret.name, deleted, &mut item);
    }
    Some(Value::Object(item))
}

async fn list_versions(
    State(state): State<AppState>,
    Extension(caller): Extension<VaultCaller>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let params = query_params(query.as_deref());
    let size = match page_size(&params) {
        Ok(size) => size,
        Err(response) => return *response,
    };
    let after = match skiptoken(&params) {
        Ok(token) if token.is_empty() => 0,
        Ok(token) => match token.parse::<i64>() {
            Ok(after) => after,
            Err(_) => return bad_parameter("The $skiptoken is not valid."),
        },
        Err(response) => return *response,
    };
    match state.core.list_versions(&caller.principal, &caller.vault, &name, after, size).await {
        Ok(versions) => {
            let items: Vec<Value> = versions.iter().map(|v| Value::Object(bundle(&caller, v, true))).collect();
            let next = if versions.len() == size {
                versions.last().map(|v| next_link(&caller, &format!("/secrets/{name}/versions"), &params, &v.ordinal.to_string()))
            } else {
                None
            };
            ok_json(json!({"value": items, "nextLink": next}))
        }
        Err(error) => core_error(error),
    }
}

async fn delete_secret(
    State(state): State<AppState>,
    Extension(caller): Extension<VaultCaller>,
    Context(context): Context,
    Path(name): Path<String>,
) -> Response {
    remove(&state, &caller, &context, &name).await
}

async fn remove(state: &AppState, caller: &VaultCaller, context: &RequestContext, name: &str) -> Response {
    match state.core.delete_secret(&caller.principal, context, &caller.vault, name).await {
        Ok(secret) => deleted_response(caller, &secret),
        Err(error) => core_error(error),
    }
}

fn deleted_response(caller: &VaultCaller, secret: &Secret) -> Response {
    let (Some(latest), Some(deleted)) = (secret.latest(), secret.deleted.as_ref()) else {
        return core_error(CoreError::Internal("a deleted secret without versions".into()));
    };
    let mut body = Map::new();
    deleted_fields(caller, &secret.name, deleted, &mut body);
    body.extend(bundle(caller, latest, true));
    ok_json(Value::Object(body))
}

async fn get_deleted(State(state): State<AppState>, Extension(caller): Extension<VaultCaller>, Path(name): Path<String>) -> Response {
    match state.core.deleted_secret(&caller.principal, &caller.vault, &name).await {
        Ok(secret) => deleted_response(&caller, &secret),
        Err(error) => core_error(error),
    }
}

async fn recover(
    State(state): State<AppState>,
    Extension(caller): Extension<VaultCaller>,
    Context(context): Context,
    Path(name): Path<String>,
) -> Response {
    match state.core.recover_secret(&caller.principal, &context, &caller.vault, &name).await {
        Ok(secret) => match secret.latest() {
            Some(latest) => ok_json(Value::Object(bundle(&caller, latest, true))),
            None => core_error(CoreError::Internal("a recovered secret without versions".into())),
        },
        Err(error) => core_error(error),
    }
}

async fn purge(
    State(state): State<AppState>,
    Extension(caller): Extension<VaultCaller>,
    Context(context): Context,
    Path(name): Path<String>,
) -> Response {
    match state.core.purge_secret(&caller.principal, &context, &caller.vault, &name).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => core_error(error),
    }
}

async fn backup(
    State(state): State<AppState>,
    Extension(caller): Extension<VaultCaller>,
    Context(context): Context,
    Path(name): Path<String>,
) -> Response {
    match state.core.backup_secret(&caller.principal, &context, &caller.vault, &name).await {
        Ok(blob) => ok_json(json!({"value": clavis_crypto::b64url(&blob)})),
        Err(error) => core_error(error),
    }
}

async fn restore(
    State(state): State<AppState>,
    Extension(caller): Extension<VaultCaller>,
    Context(context): Context,
    body: Body,
) -> Response {
    let body = match body_or_limit(body).and_then(|b| parse_json::<ValueBody>(&b)) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    let Some(encoded) = body.value else {
        return bad_parameter("The property 'value' (the backup blob) is required.");
    };
    let trimmed = encoded.trim_end_matches('=');
    let Ok(blob) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(trimmed) else {
        return bad_parameter("The backup blob is not base64url.");
    };
    match state.core.restore_secret(&caller.principal, &context, &caller.vault, &blob).await {
        Ok(secret) => match secret.latest() {
            Some(latest) => ok_json(Value::Object(bundle(&caller, latest, true))),
            None => core_error(CoreError::Internal("a restored secret without versions".into())),
        },
        Err(error) => core_error(error),
    }
}

// A secret may be named "restore": its non-POST operations land on the static route.
async fn set_named_restore(state: State<AppState>, caller: Extension<VaultCaller>, context: Context, body: Body) -> Response {
    set(state, caller, context, "restore".into(), body).await
}

async fn delete_named_restore(
    State(state): State<AppState>,
    Extension(caller): Extension<VaultCaller>,
    Context(context): Context,
) -> Response {
    remove(&state, &caller, &context, "restore").await
}

async fn get_named_restore(
    State(state): State<AppState>,
    Extension(caller): Extension<VaultCaller>,
    Context(context): Context,
) -> Response {
    read(&state, &caller, &context, "restore", None).await
}

/// The vault a Host names, if it is `{vault}.vault.{public host}[:port]`.
pub fn vault_of_host(headers: &HeaderMap, vault_suffix: &str) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let host = host.rsplit_once(':').filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit())).map_or(host, |(h, _)| h);
    let name = host.to_ascii_lowercase().strip_suffix(vault_suffix)?.to_string();
    (!name.is_empty() && !name.contains('.')).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_keys_are_percent_decoded() {
        let params = query_params(Some("api%2Dversion=2025-07-01&maxresults=2&%24skiptoken=YQ"));
        assert_eq!(params["api-version"], "2025-07-01");
        assert_eq!(params["$skiptoken"], "YQ");
    }

    #[test]
    fn vault_hosts() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("KV1.vault.localhost:8443"));
        assert_eq!(vault_of_host(&headers, ".vault.localhost").as_deref(), Some("kv1"));
        headers.insert(header::HOST, HeaderValue::from_static("localhost:8443"));
        assert_eq!(vault_of_host(&headers, ".vault.localhost"), None);
        headers.insert(header::HOST, HeaderValue::from_static("a.b.vault.localhost"));
        assert_eq!(vault_of_host(&headers, ".vault.localhost"), None);
    }

    #[test]
    fn inner_codes_split() {
        assert_eq!(split_code("ForbiddenByRbac: Caller is not"), (Some("ForbiddenByRbac"), "Caller is not"));
        assert_eq!(split_code("plain message: with colon"), (None, "plain message: with colon"));
    }
}
