//! TOKEN PLANE: the OAuth 2.0 client-credentials grant as Entra ID answers it, and the access
//! tokens Clavis issues. The wire parsing and the AADSTS error bodies live in the server's
//! `entra` module; the rules (which secret is valid, which roles go in the token) live here.

use serde::Serialize;
use time::OffsetDateTime;

/// Why a token request failed. The token service maps each variant to its AADSTS code; the
/// variants carry what an administrator needs to troubleshoot, never the presented secret.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// A required parameter is missing or empty.
    #[error("missing parameter {0}")]
    MissingParameter(&'static str),
    /// A parameter was given more than once, or is not valid UTF-8 form data.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The body is larger than the limit (bytes).
    #[error("body too large")]
    BodyTooLarge(usize),
    /// `grant_type` is not `client_credentials`.
    #[error("unsupported grant type")]
    UnsupportedGrantType(String),
    /// `/common`, `/organizations` or `/consumers` was used for client credentials.
    #[error("tenant-independent endpoint")]
    TenantIndependentEndpoint,
    /// No tenant has this id or domain.
    #[error("tenant not found")]
    TenantNotFound(String),
    /// No application with this client id in the tenant.
    #[error("application not found")]
    UnknownClient { client_id: String, tenant: String },
    /// Neither a secret nor an assertion was presented.
    #[error("no credential presented")]
    MissingCredential,
    /// The secret matches none of the application's credentials.
    #[error("invalid client secret")]
    InvalidSecret { app_id: String },
    /// The secret matches a credential that has expired.
    #[error("client secret expired")]
    ExpiredSecret { app_id: String, key_id: String, expired_at: OffsetDateTime },
    /// The secret matches a credential whose start is in the future.
    #[error("client secret not yet valid")]
    SecretNotYetValid { app_id: String, key_id: String, valid_from: OffsetDateTime },
    /// A client assertion was presented; certificate credentials are not registered in Clavis.
    #[error("client assertions are not supported")]
    AssertionNotSupported { app_id: String },
    /// A scope does not end in `/.default`.
    #[error("scope must end with /.default")]
    ScopeWithoutDefault(String),
    /// The scopes name more than one resource.
    #[error("scopes name several resources")]
    MultipleResources(String),
    /// No application in the tenant answers to this resource identifier.
    #[error("resource not found")]
    UnknownResource { resource: String, tenant: String },
    /// Too many failed authentications of this client id from this address: wait.
    #[error("throttled")]
    Throttled { client_id: String, retry_after_seconds: i64 },
}

impl TokenError {
    /// What went wrong, in the detail an administrator needs and the caller never gets.
    pub fn diagnosis(&self) -> String {
        use time::format_description::well_known::Rfc3339;
        let at = |t: &OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
        match self {
            Self::MissingParameter(name) => format!("The request lacked the required parameter '{name}'."),
            Self::Malformed(why) => format!("The request was malformed: {why}"),
            Self::BodyTooLarge(limit) => format!("The request body was larger than {limit} bytes."),
            Self::UnsupportedGrantType(grant) => format!("The grant type '{grant}' is not client_credentials."),
            Self::TenantIndependentEndpoint => "The client used /common, /organizations or /consumers; client credentials need the tenant's id or domain in the URL.".into(),
            Self::TenantNotFound(tenant) => format!("No tenant has the id or domain '{tenant}': the client is configured with the wrong tenant."),
            Self::UnknownClient { client_id, tenant } => format!("No application has the client id '{client_id}' in tenant '{tenant}': the application was deleted, never registered, or belongs to another tenant."),
            Self::MissingCredential => "The client sent neither a secret nor an assertion.".into(),
            Self::InvalidSecret { app_id } => format!("The secret sent matches none of the secrets of application '{app_id}': it is mistyped, was removed or revoked, or belongs to another application (or it is the secret's keyId rather than its value)."),
            Self::ExpiredSecret { app_id, key_id, expired_at } => format!("The secret sent is secret {key_id} of application '{app_id}', which expired at {}. Add a new secret and update the client.", at(expired_at)),
            Self::SecretNotYetValid { app_id, key_id, valid_from } => format!("The secret sent is secret {key_id} of application '{app_id}', valid only from {}.", at(valid_from)),
            Self::AssertionNotSupported { app_id } => format!("Application '{app_id}' sent a client assertion; Clavis holds no certificate credentials for it."),
            Self::ScopeWithoutDefault(scope) => format!("The scope '{scope}' does not end with /.default, which client credentials require."),
            Self::MultipleResources(scope) => format!("The scope '{scope}' names several resources; ask for one per token."),
            Self::UnknownResource { resource, tenant } => format!("No application in tenant '{tenant}' answers to the resource '{resource}': check the resource's identifier URIs."),
            Self::Throttled { client_id, retry_after_seconds } => format!("Too many failed authentications of client id '{client_id}' from this address; its requests are refused for {retry_after_seconds} s more (each further failure doubles the wait). Look at this client's earlier failures for the cause."),
        }
    }
}

/// Which token endpoint was called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointVersion {
    /// `/oauth2/token` with `resource=`.
    V1,
    /// `/oauth2/v2.0/token` with `scope=`.
    V2,
}

/// A parsed client-credentials request.
#[derive(Debug)]
pub struct ClientCredentialsRequest<'a> {
    /// The tenant path segment (GUID or domain name).
    pub tenant: &'a str,
    /// The endpoint called.
    pub endpoint: EndpointVersion,
    /// `client_id`.
    pub client_id: &'a str,
    /// `client_secret` (body or Basic); never logged.
    pub client_secret: Option<&'a str>,
    /// Whether a `client_assertion` was presented instead.
    pub has_assertion: bool,
    /// `scope` (v2).
    pub scope: Option<&'a str>,
    /// `resource` (v1).
    pub resource: Option<&'a str>,
    /// The caller's IP address, for last-use tracking.
    pub client_ip: &'a str,
}

/// A successfully issued access token.
#[derive(Debug)]
pub struct IssuedToken {
    /// The compact JWS.
    pub access_token: String,
    /// Seconds until expiry.
    pub expires_in: i64,
    /// Unix time of expiry.
    pub expires_on: i64,
    /// Unix time of `nbf`.
    pub not_before: i64,
    /// The resource as requested (v1 answers echo it).
    pub resource: String,
    /// The tenant the token was issued in.
    pub tenant_id: String,
    /// The credential that authenticated the request.
    pub key_id: String,
}

/// The claims of an app-only access token, v1 or v2 (Entra's shapes).
#[derive(Debug, Serialize)]
pub struct AccessTokenClaims<'a> {
    /// Audience: v2 the resource's client id; v1 the resource as requested.
    pub aud: &'a str,
    /// Issuer: v2 `{base}/{tid}/v2.0`; v1 `{base}/{tid}/`.
    pub iss: &'a str,
    /// Issued at (backdated five minutes, as Entra does, to absorb clock skew).
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Expiry.
    pub exp: i64,
    /// Opaque, as Entra's.
    pub aio: &'a str,
    /// v2: the client id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub azp: Option<&'a str>,
    /// v2: `1` = client secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub azpacr: Option<&'a str>,
    /// v1: the client id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub appid: Option<&'a str>,
    /// v1: `1` = client secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub appidacr: Option<&'a str>,
    /// v1: the client's display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_displayname: Option<&'a str>,
    /// v1: the identity provider (the issuer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idp: Option<&'a str>,
    /// `app`: an app-only token.
    pub idtyp: &'static str,
    /// The client's service principal id.
    pub oid: &'a str,
    /// Opaque, as Entra's.
    pub rh: &'a str,
    /// Granted app roles of the resource.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub roles: &'a [String],
    /// Same as `oid` in app-only tokens.
    pub sub: &'a str,
    /// The tenant id.
    pub tid: &'a str,
    /// A unique token id.
    pub uti: &'a str,
    /// `1.0` or `2.0`.
    pub ver: &'static str,
    /// The `keyId` of the credential that authenticated the request, so that tokens issued
    /// with a credential can be found and revoked with it.
    pub credential_id: &'a str,
}

/// Splits a v2 `scope` parameter into the one resource it names.
pub fn resource_of_scope(scope: &str) -> Result<String, TokenError> {
    let mut resource: Option<String> = None;
    for item in scope.split([' ', '\t']).filter(|s| !s.is_empty()) {
        let Some(base) = item.strip_suffix("/.default") else {
            return Err(TokenError::ScopeWithoutDefault(item.to_string()));
        };
        if base.is_empty() {
            return Err(TokenError::ScopeWithoutDefault(item.to_string()));
        }
        match &resource {
            None => resource = Some(base.to_string()),
            Some(existing) if normalize_resource(existing) == normalize_resource(base) => {}
            Some(_) => return Err(TokenError::MultipleResources(scope.to_string())),
        }
    }
    resource.ok_or(TokenError::MissingParameter("scope"))
}

/// The form of a resource identifier used for lookups: lower-case, without trailing slashes
/// (Azure's `https://management.core.windows.net//.default` names `…net/`).
pub fn normalize_resource(resource: &str) -> String {
    resource.trim_end_matches('/').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        assert_eq!(resource_of_scope("api://my-api/.default").unwrap(), "api://my-api");
        assert_eq!(resource_of_scope("https://h//.default").unwrap(), "https://h/");
        assert_eq!(resource_of_scope("api://a/.default api://a/.default").unwrap(), "api://a");
        assert!(matches!(resource_of_scope("api://a/read"), Err(TokenError::ScopeWithoutDefault(_))));
        assert!(matches!(resource_of_scope("api://a/.default api://b/.default"), Err(TokenError::MultipleResources(_))));
        assert!(matches!(resource_of_scope("   "), Err(TokenError::MissingParameter("scope"))));
        assert!(matches!(resource_of_scope("/.default"), Err(TokenError::ScopeWithoutDefault(_))));
    }
}
