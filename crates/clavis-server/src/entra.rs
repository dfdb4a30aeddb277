//! The Entra ID-compatible token service, held to `docs/contracts/entra-token-service.md`:
//! discovery documents, the JWKS, and the v2 and v1 client-credentials token endpoints with
//! Entra's success and AADSTS error shapes.
//!
//! **Boundary:** this module translates wire shapes only. Which secret is valid and what goes
//! into a token is decided by `Core::issue_token`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use base64::Engine as _;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use clavis_core::signin::SignIn;
use clavis_core::token::{ClientCredentialsRequest, EndpointVersion, IssuedToken, TokenError};
use clavis_core::CoreError;

use crate::context::{ClientIp, Correlation, ErrorCode};
use crate::error::DeferredBody;
use crate::AppState;

/// The token service's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/{tenant}/v2.0/.well-known/openid-configuration", get(discovery_v2))
        .route("/{tenant}/.well-known/openid-configuration", get(discovery_v1))
        .route("/{tenant}/discovery/v2.0/keys", get(jwks))
        .route("/{tenant}/discovery/keys", get(jwks))
        .route("/{tenant}/oauth2/v2.0/token", post(token_v2))
        .route("/{tenant}/oauth2/token", post(token_v1))
        .route("/{tenant}/oauth2/v2.0/introspect", post(introspect))
        .route("/{tenant}/oauth2/v2.0/revoke", post(revoke))
}

/// `YYYY-MM-DD HH:MM:SSZ`, Entra's error timestamp.
fn timestamp_entra(at: OffsetDateTime) -> String {
    format!("{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z", at.year(), u8::from(at.month()), at.day(), at.hour(), at.minute(), at.second())
}

/// Now as RFC 3339, for Graph error bodies.
pub fn timestamp_rfc3339() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default()
}

fn is_tenant_independent(tenant: &str) -> bool {
    matches!(tenant.to_ascii_lowercase().as_str(), "common" | "organizations" | "consumers")
}

fn json_response(status: StatusCode, body: Value, cache: &'static str) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    response
}

/// The v2 discovery document (contract §4.3). Every endpoint holds the tenant GUID, even when the
/// request named the tenant by domain. `adfs` serves the default tenant, for clients configured
/// by environment variables only (contract §2.5).
async fn discovery_v2(State(state): State<AppState>, Path(tenant): Path<String>) -> Response {
    let base = &state.core.settings().public_url;
    if is_tenant_independent(&tenant) {
        return json_response(
            StatusCode::OK,
            discovery_document(base, &tenant.to_ascii_lowercase(), &format!("{base}/{{tenantid}}/v2.0")),
            "max-age=86400, private",
        );
    }
    match state.core.resolve_tenant(&tenant) {
        Some(found) => json_response(
            StatusCode::OK,
            discovery_document(base, &found.id, &format!("{base}/{}/v2.0", found.id)),
            "max-age=86400, private",
        ),
        None => tenant_not_found(&tenant),
    }
}

/// The v1 discovery document, and the ADFS-style document at `/adfs/.well-known/…`.
async fn discovery_v1(State(state): State<AppState>, Path(tenant): Path<String>) -> Response {
    let base = &state.core.settings().public_url;
    let resolved = if tenant.eq_ignore_ascii_case("adfs") { state.core.default_tenant() } else { state.core.resolve_tenant(&tenant) };
    let Some(found) = resolved else {
        return tenant_not_found(&tenant);
    };
    if tenant.eq_ignore_ascii_case("adfs") {
        // MSAL treats an `adfs` authority as ADFS: no instance discovery; it posts the normal v2
        // body to whatever token endpoint this document names.
        return json_response(
            StatusCode::OK,
            discovery_document(base, &found.id, &format!("{base}/{}/v2.0", found.id)),
            "max-age=86400, private",
        );
    }
    let tid = &found.id;
    let mut document = discovery_document(base, tid, &format!("{base}/{tid}/"));
    document["token_endpoint"] = json!(format!("{base}/{tid}/oauth2/token"));
    document["authorization_endpoint"] = json!(format!("{base}/{tid}/oauth2/authorize"));
    document["jwks_uri"] = json!(format!("{base}/{tid}/discovery/keys"));
    json_response(StatusCode::OK, document, "max-age=86400, private")
}

fn discovery_document(base: &str, tid: &str, issuer: &str) -> Value {
    json!({
        "token_endpoint": format!("{base}/{tid}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/{tid}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": issuer,
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": format!("{base}/{tid}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base}/{tid}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{base}/{tid}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
        "kerberos_endpoint": format!("{base}/{tid}/kerberos"),
        "tenant_region_scope": "WW",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
        "introspection_endpoint": format!("{base}/{tid}/oauth2/v2.0/introspect"),
        "revocation_endpoint": format!("{base}/{tid}/oauth2/v2.0/revoke"),
    })
}

async fn jwks(State(state): State<AppState>, Path(tenant): Path<String>) -> Response {
    match state.core.resolve_tenant(&tenant) {
        Some(found) => json_response(StatusCode::OK, state.core.jwks(&found), "max-age=3600, public"),
        None => tenant_not_found(&tenant),
    }
}

fn tenant_not_found(tenant: &str) -> Response {
    entra_error(StatusCode::BAD_REQUEST, "invalid_tenant", 90002, tenant_not_found_text(tenant))
}

fn tenant_not_found_text(tenant: &str) -> String {
    format!(
        "Tenant '{}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.",
        clavis_core::identity::truncate(tenant, 100)
    )
}

/// An Entra-shaped error (contract §7.1), completed at the edge with the request's ids.
fn entra_error(status: StatusCode, error: &'static str, code: u32, text: String) -> Response {
    let render = move |correlation: &Correlation| {
        let error_uri = format!("{}/error?code={code}", correlation.public_url);
        let timestamp = timestamp_entra(OffsetDateTime::now_utc());
        json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {text}\r\nTrace ID: {}\r\nCorrelation ID: {}\r\nTimestamp: {timestamp}", correlation.trace_id, correlation.correlation_id),
            "error_codes": [code],
            "timestamp": timestamp,
            "trace_id": correlation.trace_id,
            "correlation_id": correlation.correlation_id,
            "error_uri": error_uri,
        })
        .to_string()
    };
    let mut response = status.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store, no-cache"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    response.extensions_mut().insert(ErrorCode(format!("AADSTS{code}")));
    response.extensions_mut().insert(DeferredBody(Arc::new(render)));
    response
}

/// The AADSTS mapping of every token failure (contract §7.2). Exhaustive: a new failure cannot
/// ship without a decided status and code.
pub fn token_error_response(error: &TokenError) -> Response {
    let (status, error_name, code, text) = describe(error);
    let mut response = entra_error(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST), error_name, code, text);
    if let TokenError::Throttled { retry_after_seconds, .. } = error {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_seconds));
    }
    response
}

/// The status, `error`, AADSTS code and text of a token failure.
pub fn describe(error: &TokenError) -> (u16, &'static str, u32, String) {
    use TokenError as E;
    match error {
        E::MissingParameter(name) => (400, "invalid_request", 900144, format!("The request body must contain the following parameter: '{name}'.")),
        E::Malformed(why) => (400, "invalid_request", 90023, format!("The request is not valid: {why}")),
        E::BodyTooLarge(limit) => (413, "invalid_request", 90023, format!("The request is not valid: the body is larger than {limit} bytes.")),
        E::UnsupportedGrantType(grant) => (
            400,
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{}'. Clavis supports client_credentials.", clavis_core::identity::truncate(grant, 60)),
        ),
        E::TenantIndependentEndpoint => (
            400,
            "invalid_request",
            9001023,
            "The grant type isn't supported over the /common, /organizations or /consumers endpoints. Please use the tenant-specific endpoint.".to_string(),
        ),
        E::TenantNotFound(tenant) => (400, "invalid_request", 90002, tenant_not_found_text(tenant)),
        E::UnknownClient { client_id, tenant } => (
            400,
            "unauthorized_client",
            700016,
            format!(
                "Application with identifier '{}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
                clavis_core::identity::truncate(client_id, 100),
                clavis_core::identity::truncate(tenant, 100)
            ),
        ),
        E::MissingCredential => (401, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.".to_string()),
        E::InvalidSecret { app_id } => (
            401,
            "invalid_client",
            7000215,
            format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{app_id}'."),
        ),
        E::ExpiredSecret { app_id, .. } => (
            401,
            "invalid_client",
            7000222,
            format!("The provided client secret keys for app '{app_id}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds."),
        ),
        E::SecretNotYetValid { app_id, valid_from, .. } => (
            401,
            "invalid_client",
            7000290,
            format!(
                "The provided client secret for app '{app_id}' is not valid yet: it becomes valid at {}. Use it from then on, or use a secret that is valid now.",
                valid_from.format(&Rfc3339).unwrap_or_default()
            ),
        ),
        E::AssertionNotSupported { app_id } => (
            401,
            "invalid_client",
            700027,
            format!("Client assertion failed signature validation: app '{app_id}' has no certificate credentials registered in Clavis. Authenticate with a client secret."),
        ),
        E::ScopeWithoutDefault(scope) => (
            400,
            "invalid_scope",
            1002012,
            format!(
                "The provided value for scope {} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).",
                clavis_core::identity::truncate(scope, 200)
            ),
        ),
        E::MultipleResources(_) => (
            400,
            "invalid_scope",
            700022,
            "The provided value for the input parameter scope isn't valid because it contains more than one resource.".to_string(),
        ),
        E::UnknownResource { resource, tenant } => (
            400,
            "invalid_resource",
            500011,
            format!(
                "The resource principal named {} was not found in the tenant named {}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.",
                clavis_core::identity::truncate(resource, 200),
                clavis_core::identity::truncate(tenant, 100)
            ),
        ),
        // Entra's lockout code for too many failed attempts, answered as its throttling (429
        // with Retry-After), which every Azure client library honours.
        E::Throttled { retry_after_seconds, .. } => (
            429,
            "temporarily_unavailable",
            50053,
            format!("Too many failed client authentications from this address. Retry after {retry_after_seconds} seconds."),
        ),
    }
}

fn core_error_response(error: CoreError) -> Response {
    match error {
        CoreError::Token(token_error) => token_error_response(&token_error),
        CoreError::Throttled { retry_after_seconds, message } => {
            let mut response = entra_error(StatusCode::TOO_MANY_REQUESTS, "temporarily_unavailable", 50196, message);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds));
            response
        }
        CoreError::Store(detail) => {
            tracing::error!(error = %detail, "store failure on the token path");
            entra_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                50000,
                "There was an error issuing a token: the store is unavailable. Retry later.".into(),
            )
        }
        other => {
            tracing::error!(error = %other, "failure on the token path");
            entra_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                50000,
                "There was an error issuing a token or an issue with our sign-in service.".into(),
            )
        }
    }
}

/// The parameters of a token request Clavis reads; any other parameter is ignored (contract §5.2).
#[derive(Default)]
struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_assertion: Option<String>,
    scope: Option<String>,
    resource: Option<String>,
    token: Option<String>,
}

/// Fuzzing entry point (`fuzz/`): a token-endpoint body through the form parser.
#[doc(hidden)]
pub fn fuzz_token_form(body: &[u8]) -> bool {
    parse_form(body).is_ok()
}

/// Parameters a token-endpoint form may carry (the SDKs send at most a dozen; Entra's own extras,
/// such as `client_info` or `x-client-*`, are ignored but counted).
const MAX_FORM_PARAMETERS: usize = 64;

fn parse_form(body: &[u8]) -> Result<TokenForm, TokenError> {
    let mut form = TokenForm::default();
    for (index, pair) in body.split(|b| *b == b'&').filter(|p| !p.is_empty()).enumerate() {
        if index == MAX_FORM_PARAMETERS {
            return Err(TokenError::Malformed(format!("the form has more than {MAX_FORM_PARAMETERS} parameters.")));
        }
        let (name, value) = match pair.iter().position(|b| *b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &b""[..]),
        };
        let name = decode_component(name)?;
        let slot = match name.as_str() {
            "grant_type" => &mut form.grant_type,
            "client_id" => &mut form.client_id,
            "client_secret" => &mut form.client_secret,
            "client_assertion" => &mut form.client_assertion,
            "scope" => &mut form.scope,
            "resource" => &mut form.resource,
            "token" => &mut form.token,
            _ => continue,
        };
        if slot.is_some() {
            return Err(TokenError::Malformed(format!("the parameter '{name}' was sent more than once.")));
        }
        *slot = Some(decode_component(value)?);
    }
    Ok(form)
}

fn decode_component(raw: &[u8]) -> Result<String, TokenError> {
    crate::form::decode(raw)
        .ok_or_else(|| TokenError::Malformed("the body is not valid UTF-8 application/x-www-form-urlencoded data.".into()))
}

/// `client_secret_basic` (RFC 6749 §2.3.1): `Basic base64(urlencode(id) ":" urlencode(secret))`.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, TokenError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = || TokenError::Malformed("the Authorization header is not valid HTTP Basic client authentication.".into());
    let text = value.to_str().map_err(|_| malformed())?;
    let Some(encoded) = text.strip_prefix("Basic ").or_else(|| text.strip_prefix("basic ")) else {
        return Err(malformed());
    };
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    Ok(Some((decode_component(id.as_bytes())?, decode_component(secret.as_bytes())?)))
}

async fn token_v2(
    state: State<AppState>,
    tenant: Path<String>,
    ClientIp(client_ip): ClientIp,
    Extension(correlation): Extension<Correlation>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    token(state, tenant, client_ip, headers, body, EndpointVersion::V2, correlation).await
}

async fn token_v1(
    state: State<AppState>,
    tenant: Path<String>,
    ClientIp(client_ip): ClientIp,
    Extension(correlation): Extension<Correlation>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    token(state, tenant, client_ip, headers, body, EndpointVersion::V1, correlation).await
}

/// Reads a form body with client authentication (body or HTTP Basic), refusing what the
/// token endpoint refuses: oversized bodies, other content types, malformed or repeated fields.
fn read_form(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<TokenForm, TokenError> {
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(TokenError::BodyTooLarge(crate::MAX_BODY_BYTES))
        }
        Err(_) => return Err(TokenError::Malformed("the body could not be read.".into())),
    };
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        let shown = clavis_core::identity::truncate(media_type, 60);
        return Err(TokenError::Malformed(format!("the body must be sent as application/x-www-form-urlencoded, not '{shown}'.")));
    }
    let mut form = parse_form(&body)?;
    if let Some((id, secret)) = basic_credentials(headers)? {
        if form.client_secret.is_some() {
            return Err(TokenError::Malformed(
                "the client authenticated both with HTTP Basic and with client_secret in the body; use one.".into(),
            ));
        }
        if form.client_id.as_deref().is_some_and(|body_id| body_id != id) {
            return Err(TokenError::Malformed("client_id in the body differs from the one in the Authorization header.".into()));
        }
        form.client_id = Some(id);
        form.client_secret = Some(secret);
    }
    Ok(form)
}

#[allow(clippy::too_many_arguments)]
async fn token(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    client_ip: String,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    endpoint: EndpointVersion,
    correlation: Correlation,
) -> Response {
    let mut record = SignIn {
        id: String::new(),
        at: state.core.now(),
        tenant: tenant.clone(),
        client_id: String::new(),
        key_id: String::new(),
        resource: String::new(),
        result: "failure".into(),
        error_code: String::new(),
        diagnosis: String::new(),
        client_ip: client_ip.clone(),
        correlation_id: correlation.correlation_id.clone(),
        user_agent: headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string(),
        attempts: 1,
    };
    let outcome = issue(&state, &tenant, &client_ip, &headers, body, endpoint, &mut record).await;
    let response = match &outcome {
        Ok(issued) => {
            record.result = "success".into();
            record.key_id = issued.key_id.clone();
            record.tenant = issued.tenant_id.clone();
            token_response(issued, endpoint)
        }
        Err(CoreError::Token(error)) => {
            record.error_code = format!("AADSTS{}", describe(error).2);
            record.diagnosis = error.diagnosis();
            token_error_response(error)
        }
        Err(other) => {
            record.error_code = "AADSTS50000".into();
            record.diagnosis =
                "Clavis could not issue the token: the store or key material failed (see the server log for this correlation id).".into();
            core_error_response(clone_core_error(other))
        }
    };
    state.core.record_signin(record);
    response
}

/// Parses and runs one token request, filling the sign-in record as it learns who asked for what.
async fn issue(
    state: &AppState,
    tenant: &str,
    client_ip: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    endpoint: EndpointVersion,
    record: &mut SignIn,
) -> Result<IssuedToken, CoreError> {
    let form = read_form(headers, body)?;
    record.client_id = form.client_id.clone().unwrap_or_default();
    record.resource = form.scope.clone().or(form.resource.clone()).unwrap_or_default();
    match form.grant_type.as_deref() {
        None | Some("") => return Err(TokenError::MissingParameter("grant_type").into()),
        Some("client_credentials") => {}
        Some(other) => return Err(TokenError::UnsupportedGrantType(other.to_string()).into()),
    }
    let Some(client_id) = form.client_id.as_deref().filter(|c| !c.is_empty()) else {
        return Err(TokenError::MissingParameter("client_id").into());
    };
    if endpoint == EndpointVersion::V2 && form.scope.as_deref().is_none_or(|s| s.trim().is_empty()) {
        return Err(TokenError::MissingParameter("scope").into());
    }
    let request = ClientCredentialsRequest {
        tenant,
        endpoint,
        client_id,
        client_secret: form.secret(),
        has_assertion: form.client_assertion.as_deref().is_some_and(|a| !a.is_empty()),
        scope: form.scope.as_deref(),
        resource: form.resource.as_deref(),
        client_ip,
    };
    state.core.issue_token(&request).await
}

/// Core errors are not `Clone`; the token path maps a failure after recording it.
fn clone_core_error(error: &CoreError) -> CoreError {
    match error {
        CoreError::Store(detail) => CoreError::Store(detail.clone()),
        CoreError::Throttled { retry_after_seconds, message } => {
            CoreError::Throttled { retry_after_seconds: *retry_after_seconds, message: message.clone() }
        }
        other => CoreError::Internal(other.to_string()),
    }
}

fn token_response(issued: &IssuedToken, endpoint: EndpointVersion) -> Response {
    let body = match endpoint {
        // Numbers as JSON numbers (py-aio and Node require it), no scope, id_token or client_info.
        EndpointVersion::V2 => json!({
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
            "ext_expires_in": issued.expires_in,
            "access_token": issued.access_token,
        }),
        // The v1 endpoint answers with string numbers, as Entra's does.
        EndpointVersion::V1 => json!({
            "token_type": "Bearer",
            "expires_in": issued.expires_in.to_string(),
            "ext_expires_in": issued.expires_in.to_string(),
            "expires_on": issued.expires_on.to_string(),
            "not_before": issued.not_before.to_string(),
            "resource": issued.resource,
            "access_token": issued.access_token,
        }),
    };
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store, no-cache"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(header::EXPIRES, HeaderValue::from_static("-1"));
    response
}

/// The form of the introspection and revocation endpoints: client authentication and `token`.
fn read_token_form(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<(TokenForm, String), TokenError> {
    let mut form = read_form(headers, body)?;
    match form.token.take().filter(|t| !t.is_empty()) {
        Some(token) => Ok((form, token)),
        None => Err(TokenError::MissingParameter("token")),
    }
}

impl TokenForm {
    fn client_id(&self) -> &str {
        self.client_id.as_deref().unwrap_or("")
    }

    fn secret(&self) -> Option<&str> {
        self.client_secret.as_deref().filter(|s| !s.is_empty())
    }
}

/// RFC 7662 token introspection, for resource servers (authenticated as clients of the tenant).
async fn introspect(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (form, token) = match read_token_form(&headers, body) {
        Ok(read) => read,
        Err(error) => return token_error_response(&error),
    };
    match state.core.introspect(&tenant, form.client_id(), form.secret(), &token, &client_ip).await {
        Ok(answer) => {
            let mut response = (StatusCode::OK, answer.to_string()).into_response();
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(error) => core_error_response(error),
    }
}

/// RFC 7009 token revocation, by the token's client or its resource.
async fn revoke(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (form, token) = match read_token_form(&headers, body) {
        Ok(read) => read,
        Err(error) => return token_error_response(&error),
    };
    match state.core.revoke_token(&tenant, form.client_id(), form.secret(), &token, &client_ip).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(error) => core_error_response(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_plus_and_percent_and_refuse_duplicates() {
        let form =
            parse_form(b"scope=api%3A%2F%2Fa%2F.default+api%3A%2F%2Fa%2F.default&client_id=x&x-client-SKU=1&x-client-SKU=2").unwrap();
        assert_eq!(form.scope.as_deref(), Some("api://a/.default api://a/.default"));
        assert!(parse_form(b"client_id=a&client_id=b").is_err());
        assert!(parse_form(b"client_id=%FF").is_err());
        assert!(parse_form(b"client_id=%F").is_err());
        assert!(parse_form(&[b'c', b'l', b'i', b'e', b'n', b't', b'_', b'i', b'd', b'=', 0xff]).is_err());
        assert_eq!(parse_form(b"client_id=a%20b+c&unknown=%FF%FF").map(|f| f.client_id).ok().flatten().as_deref(), Some("a b c"));
    }

    #[test]
    fn basic_credentials_are_url_decoded() {
        let mut headers = HeaderMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode("my%20id:abc8Q~x%3Ay");
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Basic {encoded}")).unwrap());
        assert_eq!(basic_credentials(&headers).unwrap(), Some(("my id".to_string(), "abc8Q~x:y".to_string())));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert!(basic_credentials(&headers).is_err());
    }

    #[test]
    fn entra_timestamps() {
        let at = time::macros::datetime!(2023-05-06 06:03:00 UTC);
        assert_eq!(timestamp_entra(at), "2023-05-06 06:03:00Z");
    }
}
