//! The web portal under `/portal`: server-rendered HTML (maud, escaped by construction) with a
//! little progressive enhancement (copy buttons, modal dialogs, confirmations), for people who
//! manage Clavis in a browser.
//!
//! **Invariant:** every page and action acts as the signed-in administrator's
//! [`Principal`](clavis_core::policy::Principal) through the same core operations as the
//! management API and the vault data plane, so authorization and audit are theirs. Handlers here
//! only read forms and render.
//!
//! Sessions: a 256-bit token in a `__Host-` cookie (Secure, HttpOnly, SameSite=Strict, path `/`),
//! stored hashed; idle and absolute expiry enforced by the core. Every form carries the session's
//! synchronizer token (`csrf`), compared in constant time, and a cross-origin `Origin` is refused.
//! The sign-in form is protected the same way by a pre-session cookie.

mod apps;
mod logs;
mod vaults;

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::header::{self, HeaderValue};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup, DOCTYPE};
use time::OffsetDateTime;

use clavis_core::admin::PortalSession;
use clavis_core::audit::RequestContext;
use clavis_core::policy::Principal;
use clavis_core::CoreError;

use crate::AppState;

/// The session cookie. `__Host-` binds it to this origin: Secure, path `/`, no Domain.
const SESSION_COOKIE: &str = "__Host-clavis-session";
/// The pre-session cookie that protects the sign-in form against login CSRF.
const SIGN_IN_COOKIE: &str = "__Host-clavis-signin";
/// Portal forms: a vault value (25,600 bytes) percent-encoded, plus the other fields.
const MAX_FORM_BYTES: usize = 128 * 1024;
/// Fields a portal form may carry.
const MAX_FORM_FIELDS: usize = 64;

const CSS: &str = include_str!("assets/portal.css");
const JS: &str = include_str!("assets/portal.js");

/// The portal's routes, and `/` redirecting to it.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { redirect("/portal") }))
        .route("/portal", get(logs::dashboard))
        .route("/portal/", get(|| async { redirect("/portal") }))
        .route("/portal/assets/portal.css", get(|| async { asset(CSS, "text/css; charset=utf-8") }))
        .route("/portal/assets/portal.js", get(|| async { asset(JS, "text/javascript; charset=utf-8") }))
        .route("/portal/signin", get(sign_in_page).post(sign_in))
        .route("/portal/signout", post(sign_out))
        .route("/portal/apps", get(apps::list).post(apps::create))
        .route("/portal/apps/{id}", get(apps::overview))
        .route("/portal/apps/{id}/delete", post(apps::delete))
        .route("/portal/apps/{id}/secrets", get(apps::secrets).post(apps::add_secret))
        .route("/portal/apps/{id}/secrets/{key}/remove", post(apps::remove_secret))
        .route("/portal/apps/{id}/secrets/{key}/revoke", post(apps::revoke_secret))
        .route("/portal/apps/{id}/rotate", post(apps::rotate))
        .route("/portal/apps/{id}/rotation", post(apps::set_rotation))
        .route("/portal/apps/{id}/rotation/remove", post(apps::remove_rotation))
        .route("/portal/apps/{id}/roles", get(apps::roles).post(apps::add_role))
        .route("/portal/apps/{id}/grants", post(apps::grant))
        .route("/portal/apps/{id}/grants/{assignment}/remove", post(apps::revoke_grant))
        .route("/portal/vaults", get(vaults::list).post(vaults::create))
        .route("/portal/vaults/{vault}", get(vaults::vault).post(vaults::set_secret))
        .route("/portal/vaults/{vault}/secrets/{name}", get(vaults::secret).post(vaults::new_version))
        .route("/portal/vaults/{vault}/secrets/{name}/reveal", post(vaults::reveal))
        .route("/portal/vaults/{vault}/secrets/{name}/enabled", post(vaults::set_enabled))
        .route("/portal/vaults/{vault}/secrets/{name}/delete", post(vaults::delete))
        .route("/portal/vaults/{vault}/secrets/{name}/recover", post(vaults::recover))
        .route("/portal/vaults/{vault}/secrets/{name}/purge", post(vaults::purge))
        .route("/portal/audit", get(logs::audit))
        .route("/portal/signins", get(logs::signins))
        .route("/portal/events", get(logs::events))
        .route("/portal/errors", get(logs::error_codes))
        .route("/portal/{*rest}", axum::routing::any(not_found))
        .layer(axum::middleware::from_fn(headers))
}

/// Any other portal path: a page, not the API's JSON.
async fn not_found() -> Response {
    failure(StatusCode::NOT_FOUND, None, "There is no such page in the portal.")
}

/// Strict headers on every portal answer: scripts and styles only from Clavis itself, no framing,
/// forms only to Clavis.
async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (
            "content-security-policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        ("x-frame-options", "DENY"),
        // Same-origin (not no-referrer): under no-referrer browsers send `Origin: null` with form
        // posts, which would defeat the origin check.
        ("referrer-policy", "same-origin"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
        ("permissions-policy", "camera=(), microphone=(), geolocation=(), payment=()"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// A 303 to `location` (after a form post, so a reload does not repeat it).
pub(crate) fn redirect(location: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, location.to_string())]).into_response()
}

// ----- sessions, forms and CSRF ---------------------------------------------------------------

/// A signed-in administrator: the principal every portal action runs as, and the session.
pub(crate) struct Session {
    pub principal: Principal,
    pub session: PortalSession,
    /// The request's audit context.
    pub context: RequestContext,
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_string())
}

/// Where to go after signing in: a portal path only (never another site).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path) if path.starts_with("/portal") && !path.contains("//") && !path.contains('\\') => path.to_string(),
        _ => "/portal".into(),
    }
}

fn to_sign_in(parts: &Parts, reason: Option<&str>) -> Response {
    let next = if parts.method == axum::http::Method::GET { parts.uri.path() } else { "/portal" };
    let mut location = format!("/portal/signin?next={}", crate::portal::encode(next));
    if let Some(reason) = reason {
        location.push_str("&reason=");
        location.push_str(reason);
    }
    redirect(&location)
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let crate::context::Context(context) =
            crate::context::Context::from_request_parts(parts, state).await.unwrap_or_else(|e| match e {});
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(to_sign_in(parts, None));
        };
        match state.core.portal_principal(&token).await {
            Ok((principal, session)) => Ok(Self { principal, session, context }),
            Err(CoreError::Unauthenticated(message)) => {
                Err(to_sign_in(parts, Some(if message.contains("expired") { "expired" } else { "ended" })))
            }
            Err(other) => Err(core_failure(None, other)),
        }
    }
}

/// A decoded form: each field once, valid UTF-8.
pub(crate) struct Fields(Vec<(String, String)>);

impl Fields {
    fn parse(body: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(body).map_err(|_| "The form is not valid UTF-8.".to_string())?;
        let mut fields: Vec<(String, String)> = Vec::new();
        for pair in text.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = crate::form::decode(key.as_bytes()).ok_or("A form field is not valid percent-encoded UTF-8.")?;
            let value = crate::form::decode(value.as_bytes()).ok_or("A form field is not valid percent-encoded UTF-8.")?;
            if fields.iter().any(|(k, _)| *k == key) {
                return Err(format!("The form repeats the field '{}'.", clavis_core::identity::truncate(&key, 40)));
            }
            if fields.len() == MAX_FORM_FIELDS {
                return Err(format!("The form has more than {MAX_FORM_FIELDS} fields."));
            }
            fields.push((key, value));
        }
        Ok(Self(fields))
    }

    /// A field's value, if sent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// A field's trimmed value; empty when missing.
    pub fn text(&self, name: &str) -> &str {
        self.get(name).map(str::trim).unwrap_or("")
    }

    /// A field's trimmed value, `None` when missing or empty.
    pub fn optional(&self, name: &str) -> Option<&str> {
        Some(self.text(name)).filter(|v| !v.is_empty())
    }

    /// A whole number field, or an error naming it.
    pub fn number(&self, name: &str, label: &str) -> Result<i64, CoreError> {
        self.text(name).parse().map_err(|_| CoreError::Invalid(format!("{label} must be a whole number.")))
    }
}

/// Refuses a form posted from another origin (browsers send `Origin` on every POST). The host is
/// the `Host` header (HTTP/1.1) or the request's authority (HTTP/2).
fn same_origin(parts: &Parts) -> bool {
    let Some(origin) = parts.headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host =
        parts.headers.get(header::HOST).and_then(|v| v.to_str().ok()).or_else(|| parts.uri.authority().map(|a| a.as_str())).unwrap_or("");
    !host.is_empty() && origin.eq_ignore_ascii_case(&format!("https://{host}"))
}

async fn read_form(parts: &Parts, body: axum::body::Body) -> Result<Fields, (StatusCode, String)> {
    if !same_origin(parts) {
        return Err((StatusCode::FORBIDDEN, "The form was posted from another site; Clavis accepts forms from its own pages only.".into()));
    }
    let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return Err((StatusCode::UNSUPPORTED_MEDIA_TYPE, "Portal forms are sent as application/x-www-form-urlencoded.".into()));
    }
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| (StatusCode::PAYLOAD_TOO_LARGE, format!("The form exceeds {} KiB.", MAX_FORM_BYTES / 1024)))?;
    Fields::parse(&bytes).map_err(|message| (StatusCode::BAD_REQUEST, message))
}

/// A form posted by a signed-in administrator, its synchronizer token checked.
pub(crate) struct Posted {
    pub session: Session,
    pub form: Fields,
}

impl FromRequest<AppState> for Posted {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        let form = read_form(&parts, body).await.map_err(|(status, message)| failure(status, Some(&session), &message))?;
        if !clavis_crypto::password::equal(form.text("csrf"), &session.session.csrf) {
            return Err(failure(
                StatusCode::FORBIDDEN,
                Some(&session),
                "The form's security token is missing or stale (it was opened in another session). Reload the page and try again.",
            ));
        }
        Ok(Self { session, form })
    }
}

// ----- sign-in and sign-out ---------------------------------------------------------------------

#[derive(serde::Deserialize)]
struct SignInQuery {
    next: Option<String>,
    reason: Option<String>,
}

fn set_cookie(name: &str, value: &str, max_age: Option<i64>) -> (header::HeaderName, String) {
    let age = max_age.map(|s| format!("; Max-Age={s}")).unwrap_or_default();
    (header::SET_COOKIE, format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Strict{age}"))
}

fn sign_in_form(token: &str, next: &str, message: Option<(&str, &str)>) -> Markup {
    html! {
        main.signin id="main" {
            h1 { "Sign in to Clavis" }
            @if let Some((kind, text)) = message {
                p.notice.(kind) role="alert" { (text) }
            }
            form method="post" action="/portal/signin" {
                input type="hidden" name="csrf" value=(token);
                input type="hidden" name="next" value=(next);
                label for="username" { "User name" }
                input id="username" name="username" autocomplete="username" required autofocus maxlength="64";
                label for="password" { "Password" }
                input id="password" name="password" type="password" autocomplete="current-password" required maxlength="1024";
                button.primary type="submit" { "Sign in" }
            }
            p.hint { "Accounts are created with " code { "clavis admin create NAME" } "." }
        }
    }
}

async fn sign_in_page(crate::api::Params(query): crate::api::Params<SignInQuery>) -> Response {
    let token = clavis_crypto::random::hex128();
    let message = match query.reason.as_deref() {
        Some("expired") => Some(("warning", "Your session has expired; sign in again.")),
        Some("ended") => Some(("warning", "Your session has ended; sign in again.")),
        Some("signedout") => Some(("success", "You are signed out.")),
        _ => None,
    };
    let next = safe_next(query.next.as_deref());
    let mut response = render(StatusCode::OK, "Sign in", None, "", sign_in_form(&token, &next, message));
    let (name, value) = set_cookie(SIGN_IN_COOKIE, &token, Some(3600));
    response.headers_mut().append(name, HeaderValue::from_str(&value).expect("cookie is ASCII"));
    response
}

async fn sign_in(State(state): State<AppState>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let crate::context::Context(context) =
        crate::context::Context::from_request_parts(&mut parts, &state).await.unwrap_or_else(|e| match e {});
    let form = match read_form(&parts, body).await {
        Ok(form) => form,
        Err((status, message)) => return failure(status, None, &message),
    };
    let expected = cookie(&parts.headers, SIGN_IN_COOKIE).unwrap_or_default();
    let next = safe_next(form.optional("next"));
    if expected.is_empty() || !clavis_crypto::password::equal(form.text("csrf"), &expected) {
        let token = clavis_crypto::random::hex128();
        let message = Some(("error", "The sign-in form expired. Try again."));
        let mut response = render(StatusCode::FORBIDDEN, "Sign in", None, "", sign_in_form(&token, &next, message));
        let (name, value) = set_cookie(SIGN_IN_COOKIE, &token, Some(3600));
        response.headers_mut().append(name, HeaderValue::from_str(&value).expect("cookie is ASCII"));
        return response;
    }
    match state.core.sign_in(&context, form.text("username"), form.get("password").unwrap_or("")).await {
        Ok((token, _session)) => {
            let mut response = redirect(&next);
            for (name, value) in [set_cookie(SESSION_COOKIE, &token, None), set_cookie(SIGN_IN_COOKIE, "", Some(0))] {
                response.headers_mut().append(name, HeaderValue::from_str(&value).expect("cookie is ASCII"));
            }
            response
        }
        Err(error) => {
            let (status, text, retry_after) = match error {
                CoreError::Throttled { retry_after_seconds, message } => {
                    (StatusCode::TOO_MANY_REQUESTS, format!("{message} ({retry_after_seconds} s)"), Some(retry_after_seconds))
                }
                CoreError::Unauthenticated(message) => (StatusCode::UNAUTHORIZED, message, None),
                other => return core_failure(None, other),
            };
            let mut response = render(status, "Sign in", None, "", sign_in_form(&expected, &next, Some(("error", &text))));
            response.extensions_mut().insert(crate::context::ErrorMessage(text));
            if let Some(seconds) = retry_after {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            response
        }
    }
}

async fn sign_out(State(state): State<AppState>, posted: Posted) -> Response {
    let Posted { session, .. } = posted;
    if let Err(error) = state.core.sign_out(&session.principal, &session.context, &session.session).await {
        return core_failure(Some(&session), error);
    }
    let mut response = redirect("/portal/signin?reason=signedout");
    let (name, value) = set_cookie(SESSION_COOKIE, "", Some(0));
    response.headers_mut().append(name, HeaderValue::from_str(&value).expect("cookie is ASCII"));
    response
}

// ----- rendering ----------------------------------------------------------------------------------

const NAV: &[(&str, &str, &str)] = &[
    ("dashboard", "/portal", "Dashboard"),
    ("apps", "/portal/apps", "Applications"),
    ("vaults", "/portal/vaults", "Vaults"),
    ("audit", "/portal/audit", "Audit log"),
    ("signins", "/portal/signins", "Sign-in logs"),
    ("events", "/portal/events", "Events"),
    ("errors", "/portal/errors", "Error codes"),
];

fn layout(title: &str, session: Option<&Session>, active: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · Clavis" }
                link rel="stylesheet" href=(format!("/portal/assets/portal.css?v={}", env!("CARGO_PKG_VERSION")));
                script src=(format!("/portal/assets/portal.js?v={}", env!("CARGO_PKG_VERSION"))) defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/portal" { "Clavis" }
                    @if let Some(session) = session {
                        nav aria-label="Main" {
                            ul {
                                @for (key, href, label) in NAV {
                                    li { a href=(href) aria-current=[(*key == active).then_some("page")] { (label) } }
                                }
                            }
                        }
                        form.signout method="post" action="/portal/signout" {
                            (csrf(session))
                            span.who { (session.principal.display()) " · " (role_label(&session.principal)) }
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                (body)
            }
        }
    }
}

fn role_label(principal: &Principal) -> &'static str {
    match principal.roles.first().map(String::as_str) {
        Some(clavis_core::policy::ROLE_ADMINISTRATOR) => "Administrator",
        Some(clavis_core::policy::ROLE_APPLICATION_READWRITE) => "Applications read/write",
        _ => "Reader",
    }
}

/// The hidden synchronizer-token field every form of a session carries.
pub(crate) fn csrf(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.session.csrf); }
}

/// A whole page.
pub(crate) fn render(status: StatusCode, title: &str, session: Option<&Session>, active: &str, body: Markup) -> Response {
    let markup = layout(title, session, active, body);
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], markup.into_string()).into_response()
}

/// A page for `session` under the main navigation.
pub(crate) fn page(session: &Session, active: &str, title: &str, body: Markup) -> Response {
    render(StatusCode::OK, title, Some(session), active, html! { main id="main" { (body) } })
}

/// A refusal or failure, said plainly, with a way back.
pub(crate) fn failure(status: StatusCode, session: Option<&Session>, message: &str) -> Response {
    let body = html! {
        main id="main" {
            h1 { (status.canonical_reason().unwrap_or("Error")) }
            p.notice.error role="alert" { (message) }
            p { a href="/portal" data-back { "Go back" } " · " a href="/portal" { "Dashboard" } }
        }
    };
    let mut response = render(status, "Error", session, "", body);
    response.extensions_mut().insert(crate::context::ErrorMessage(message.to_string()));
    response
}

/// A core error as a page, with the status the management API would answer.
pub(crate) fn core_failure(session: Option<&Session>, error: CoreError) -> Response {
    let status = match &error {
        CoreError::Invalid(_) => StatusCode::BAD_REQUEST,
        CoreError::NotFound(_) => StatusCode::NOT_FOUND,
        CoreError::Conflict(_) => StatusCode::CONFLICT,
        CoreError::Forbidden(_) => StatusCode::FORBIDDEN,
        CoreError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        CoreError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
        CoreError::Token(_) => StatusCode::BAD_REQUEST,
        CoreError::Store(_) | CoreError::Internal(_) => {
            tracing::error!(target: "clavis::portal", error = %error, "portal request failed");
            return failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                session,
                "Clavis could not complete this. The cause is in the server log under this request's correlation id.",
            );
        }
    };
    let message = match &error {
        CoreError::Forbidden(message) => format!("You are not allowed to do this. {}", message.lines().next().unwrap_or("")),
        other => other.to_string(),
    };
    failure(status, session, &message)
}

/// A one-line banner after an action.
pub(crate) fn notice(done: Option<&str>) -> Markup {
    let text = match done.unwrap_or("") {
        "created" => "Created.",
        "removed" => "Removed.",
        "revoked" => "Revoked: the secret is gone and every token it obtained is refused.",
        "rotated" => "Rotated: a new secret was published to the vault; the old one works until the overlap ends.",
        "rotation-set" => "Rotation policy saved.",
        "rotation-removed" => "Rotation policy removed.",
        "role-added" => "App role added.",
        "granted" => "Role granted.",
        "set" => "New version saved.",
        "updated" => "Updated.",
        "deleted" => "Deleted. It can be recovered until its retention ends.",
        "recovered" => "Recovered.",
        "purged" => "Purged for good.",
        _ => return html! {},
    };
    html! { p.notice.success role="status" { (text) } }
}

/// A time for people: `2026-11-27 14:05 UTC`.
pub(crate) fn when(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!("{:04}-{:02}-{:02} {:02}:{:02} UTC", at.year(), u8::from(at.month()), at.day(), at.hour(), at.minute())
}

/// A Unix time for people, or a dash.
pub(crate) fn when_unix(at: Option<i64>) -> String {
    at.and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok()).map(when).unwrap_or_else(|| "—".into())
}

/// Percent-encodes a path segment or query value.
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A value with a copy button (the value is in the page; the button spares selecting it).
pub(crate) fn copyable(id: &str, value: &str) -> Markup {
    html! {
        span.copyable {
            code id=(id) { (value) }
            button.copy type="button" data-copy=(format!("#{id}")) aria-label=(format!("Copy {id}")) { "Copy" }
        }
    }
}

/// A state badge.
pub(crate) fn badge(kind: &str, text: &str) -> Markup {
    html! { span class=(format!("badge {kind}")) { (text) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_parse_strictly() {
        let form = Fields::parse(b"a=1&b=x+y%21").unwrap();
        assert_eq!(form.get("b"), Some("x y!"));
        assert!(Fields::parse(b"a=1&a=2").is_err());
        assert!(Fields::parse(b"a=%FF").is_err());
        let many: String = (0..65).map(|i| format!("f{i}=1&")).collect();
        assert!(Fields::parse(many.as_bytes()).is_err());
    }

    #[test]
    fn next_stays_in_the_portal() {
        assert_eq!(safe_next(Some("/portal/apps")), "/portal/apps");
        assert_eq!(safe_next(Some("https://evil.example")), "/portal");
        assert_eq!(safe_next(Some("/portal//evil.example")), "/portal");
        assert_eq!(safe_next(None), "/portal");
    }

    #[test]
    fn markup_escapes_what_it_shows() {
        let markup = html! { p { ("<script>alert(1)</script>") } }.into_string();
        assert_eq!(markup, "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>");
    }
}
