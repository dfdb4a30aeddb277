//! Troubleshooting pages: one per error code Clavis emits, at `/error?code=…` (the `error_uri`
//! of token errors points here), saying what causes the error and how to fix it.

use axum::extract::RawQuery;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// (code, title, cause, fix) for every code Clavis emits.
pub(crate) const PAGES: &[(&str, &str, &str, &str)] = &[
    ("7000215", "Invalid client secret", "The secret sent matches none of the application's secrets: it is mistyped, truncated, was removed or revoked, belongs to another application, or is the secret's keyId rather than its value.", "Check the value the client sends against `clavis app secret list APP` (the hint is its first three characters); add a new secret with `clavis app secret add APP` if it is lost."),
    ("7000222", "Client secret expired", "The secret sent was valid but its endDateTime has passed.", "Add a new secret (`clavis app secret add APP`), give it to the client, then remove the expired one. A rotation policy (`clavis app rotation set`) prevents this."),
    ("7000290", "Client secret not valid yet", "The secret sent has a startDateTime in the future (a Clavis code; Entra has none).", "Wait for its start, or use a secret that is valid now."),
    ("7000218", "No client credential", "The request carried neither client_secret nor client_assertion.", "Send client_secret in the form body or HTTP Basic authentication."),
    ("700027", "Client assertion not accepted", "The client sent a certificate assertion; Clavis holds no certificate credentials.", "Authenticate with a client secret."),
    ("700016", "Application not found", "No application with this client id exists in the tenant in the URL.", "Check the client id (`clavis app list`) and the tenant the client is configured with (`clavis tenant show`)."),
    ("90002", "Tenant not found", "The tenant in the URL is neither a tenant id nor a domain of this Clavis instance.", "Use the tenant id or domain shown by `clavis tenant show`."),
    ("9001023", "Tenant-independent endpoint", "Client credentials were requested from /common, /organizations or /consumers.", "Use the tenant-specific endpoint: https://HOST/{tenant}/oauth2/v2.0/token."),
    ("1002012", "Scope without /.default", "Client credentials need a scope of the form {resource}/.default.", "Ask for e.g. api://orders/.default."),
    ("700022", "Several resources in one request", "The scopes name more than one resource.", "Request one token per resource."),
    ("500011", "Resource not found", "No application in the tenant has the requested identifier URI or client id.", "Check the resource's identifier URIs (`clavis app show RESOURCE`), or register it with --identifier-uri."),
    ("70003", "Unsupported grant type", "Clavis's token service implements the client_credentials grant only.", "Send grant_type=client_credentials."),
    ("900144", "Missing parameter", "A required parameter (grant_type, client_id, scope or resource, token) is missing or empty.", "Add the parameter named in the message."),
    ("90023", "Malformed request", "The body is not valid UTF-8 form data, repeats a parameter, has another content type, or exceeds 64 KiB.", "Send application/x-www-form-urlencoded with each parameter once."),
    ("50053", "Too many failed authentications", "This client id failed to authenticate (unknown client or wrong secret) too many times in a row from this address (`credentials.failed_auth_free_attempts`, 10 by default); its requests from this address are refused until Retry-After, the wait doubling with each further failure. Other addresses are not affected.", "Fix the cause of the earlier failures (`clavis signins list --client-id ID --failures`), then retry after Retry-After; a success clears the count."),
    ("50196", "Too many requests", "The request was throttled.", "Retry after the Retry-After seconds; cache tokens until 5 minutes before they expire."),
    ("50000", "Server error", "Clavis could not issue the token (store or key material failure).", "Retry; if it persists, look up the correlation id with `clavis diagnose` and the server log."),
    ("SecretNotFound", "Secret not found", "No live secret (or version) of that name exists in the vault; it may be deleted and recoverable.", "Check `clavis secret list --vault V` and `--deleted`; recover it with `clavis secret recover`."),
    ("VaultNotFound", "Vault not found", "No vault of that name exists, or it is deleted.", "Check `clavis vault list`; the vault name is the first label of the vault's host."),
    ("BadParameter", "Bad parameter", "A name, value, tag, content type or body violates Key Vault's limits or syntax.", "Names: 1-127 letters, digits and dashes; values up to 25,600 bytes; at most 15 tags of 512 characters; content type up to 255."),
    ("ObjectIsDeletedButRecoverable", "Name held by a deleted secret", "A deleted secret with this name is still recoverable, so the name cannot be reused.", "Recover it (`clavis secret recover`) or purge it (`clavis secret purge`)."),
    ("ForbiddenByRbac", "Not authorized by vault role", "The caller holds no vault role that allows this action at this scope.", "Grant a role: `clavis role assign --principal APP --role \"Key Vault Secrets User\" --scope /vaults/V`."),
    ("SecretDisabled", "Secret version disabled", "The version is disabled.", "Enable it (`clavis secret update NAME --vault V --enabled true`) or read another version."),
    ("SecretExpired", "Secret version expired", "The vault enforces expiry and this version's exp has passed (a Clavis extension).", "Set a new version, or extend exp with `clavis secret update --expires`."),
    ("SecretNotYetValid", "Secret version not valid yet", "The vault enforces expiry and this version's nbf is in the future.", "Wait, or read another version."),
    ("PurgeProtected", "Purge protected", "The vault has purge protection: deleted secrets can be purged only after their retention.", "Recover it, or wait for its scheduled purge date."),
    ("Throttled", "Vault throttled", "The vault's rate limit was exceeded.", "Retry after Retry-After; raise the vault's rate limit with `clavis vault update V --rate-limit N`."),
    ("Unauthorized", "Vault authentication required", "The request carried no token, or one not valid for this vault (wrong audience or tenant, expired or revoked).", "Request a token for https://vault.{host}[:port]/.default from the vault's tenant; the Azure SDKs do this after the challenge."),
    ("InvalidAuthenticationToken", "Management API authentication required", "The token is missing, malformed, expired, revoked, or not for api://clavis.", "Request a token for api://clavis/.default."),
    ("Authorization_RequestDenied", "Management API role missing", "The caller's application lacks the management role the operation needs.", "Grant Clavis.Administrator, Application.ReadWrite.All or Application.Read.All of the Clavis Management API application."),
];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn page(title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}code{{background:#8882;padding:0 .2rem}}\
         @media(prefers-color-scheme:dark){{body{{background:#111;color:#eee}}a{{color:#8cf}}}}</style></head><body>{body}</body></html>",
        escape(title)
    );
    let mut response = (StatusCode::OK, html).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    response
        .headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"));
    response
}

/// `GET /error?code=…`: the page of one code, or the index.
pub async fn error_page(RawQuery(query): RawQuery) -> Response {
    let code = crate::form::pairs(query.as_deref().unwrap_or(""))
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.trim_start_matches("AADSTS").to_string());
    match code.as_deref().and_then(|code| PAGES.iter().find(|p| p.0.eq_ignore_ascii_case(code))) {
        Some((code, title, cause, fix)) => {
            let prefix = if code.chars().all(|c| c.is_ascii_digit()) { "AADSTS" } else { "" };
            page(
                title,
                &format!(
                    "<h1>{prefix}{code}: {}</h1><h2>Cause</h2><p>{}</p><h2>Fix</h2><p>{}</p><p><a href=\"/error\">All error codes</a></p>",
                    escape(title),
                    escape(cause),
                    escape(fix)
                ),
            )
        }
        None => {
            let items: String = PAGES
                .iter()
                .map(|(code, title, _, _)| format!("<li><a href=\"/error?code={code}\">{code}</a>: {}</li>", escape(title)))
                .collect();
            let mut response = page("Clavis error codes", &format!("<h1>Clavis error codes</h1><ul>{items}</ul>"));
            if code.is_some() {
                *response.status_mut() = StatusCode::NOT_FOUND;
            }
            response
        }
    }
}
