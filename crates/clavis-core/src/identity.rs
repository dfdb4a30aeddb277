//! IDENTITY PLANE: tenants, application registrations with their service principals, app roles
//! and app role assignments. Shapes follow Microsoft Graph where it has them.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use clavis_crypto::Algorithm;

use crate::credential::{CredentialPolicy, PasswordCredential};
use crate::error::{CoreError, Result};

/// A tenant: an isolated directory of applications with its own signing keys and policy.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    /// The tenant id, a GUID (Entra's `tid`).
    pub id: String,
    /// A friendly name.
    pub display_name: String,
    /// Domain names that identify the tenant in URLs besides its GUID, lower-case.
    pub domains: Vec<String>,
    /// The algorithm new signing keys of this tenant use.
    pub signing_algorithm: Algorithm,
    /// The tenant's credential policy.
    pub policy: CredentialPolicy,
    /// When the tenant was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// An app role (Graph `appRole`): a permission a resource application defines and grants to
/// client applications; granted roles appear in the `roles` claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppRole {
    /// The role's id, a GUID.
    pub id: String,
    /// The value that appears in the `roles` claim.
    pub value: String,
    /// A friendly name.
    #[serde(default)]
    pub display_name: String,
    /// What the role allows.
    #[serde(default)]
    pub description: String,
    /// Who may hold the role; Clavis grants roles to applications.
    #[serde(default = "default_member_types")]
    pub allowed_member_types: Vec<String>,
    /// Disabled roles are not granted in tokens.
    #[serde(default = "default_true")]
    pub is_enabled: bool,
}

fn default_member_types() -> Vec<String> {
    vec!["Application".to_string()]
}

fn default_true() -> bool {
    true
}

/// An application registration with its service principal.
///
/// Clavis creates exactly one service principal per application, in the application's tenant;
/// its object id is the `oid`/`sub` of the application's tokens.
#[derive(Clone, Debug)]
pub struct Application {
    /// The object id (GUID), used in management URLs.
    pub id: String,
    /// The application (client) id (GUID): `client_id` in token requests, `azp`/`appid` in tokens.
    pub app_id: String,
    /// The tenant the application belongs to.
    pub tenant_id: String,
    /// The service principal's object id.
    pub service_principal_id: String,
    /// A friendly name.
    pub display_name: String,
    /// Application ID URIs (`api://…`): how clients name this application as a resource.
    pub identifier_uris: Vec<String>,
    /// Roles this application defines as a resource.
    pub app_roles: Vec<AppRole>,
    /// Token version issued for this application as a resource (`api.requestedAccessTokenVersion`);
    /// `None` means 1, as in Entra.
    pub requested_access_token_version: Option<u8>,
    /// Client secrets, without their values.
    pub password_credentials: Vec<PasswordCredential>,
    /// Built-in applications (the management API) cannot be deleted or changed through the API.
    pub builtin: bool,
    /// Changes to the tenant's credential policy for this application.
    pub credential_policy: Option<crate::credential::PolicyOverride>,
    /// When the application was registered.
    pub created_at: OffsetDateTime,
}

impl Application {
    /// The token version issued when this application is the resource.
    pub fn token_version(&self) -> u8 {
        match self.requested_access_token_version {
            Some(2) => 2,
            _ => 1,
        }
    }
}

/// A grant of one of a resource application's roles to a client application's service principal
/// (Graph `appRoleAssignment`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppRoleAssignment {
    /// The assignment id.
    pub id: String,
    /// The tenant.
    pub tenant_id: String,
    /// The client's service principal id.
    pub principal_id: String,
    /// The resource's service principal id.
    pub resource_id: String,
    /// The granted role's id.
    pub app_role_id: String,
    /// When it was granted.
    #[serde(with = "time::serde::rfc3339")]
    pub created_date_time: OffsetDateTime,
}

/// Limits on names, so stored data and responses stay bounded.
pub const MAX_DISPLAY_NAME: usize = 256;
/// At most this many identifier URIs per application.
pub const MAX_IDENTIFIER_URIS: usize = 20;
/// At most this many app roles per application.
pub const MAX_APP_ROLES: usize = 100;

/// Validates a display name.
pub fn validate_display_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(CoreError::Invalid("displayName is required and must not be blank.".into()));
    }
    if name.chars().count() > MAX_DISPLAY_NAME {
        return Err(CoreError::Invalid(format!("displayName must be at most {MAX_DISPLAY_NAME} characters.")));
    }
    if name.chars().any(char::is_control) {
        return Err(CoreError::Invalid("displayName must not contain control characters.".into()));
    }
    Ok(name.to_string())
}

/// Validates identifier URIs: absolute URIs (`api://…`, `https://…`, or `urn:…`) without a
/// fragment, query or trailing `/.default`, unique, at most [`MAX_IDENTIFIER_URIS`].
pub fn validate_identifier_uris(uris: &[String]) -> Result<Vec<String>> {
    if uris.len() > MAX_IDENTIFIER_URIS {
        return Err(CoreError::Invalid(format!("identifierUris may hold at most {MAX_IDENTIFIER_URIS} values.")));
    }
    let mut out: Vec<String> = Vec::with_capacity(uris.len());
    for uri in uris {
        let valid_scheme =
            ["api://", "https://", "http://", "urn:"].iter().any(|s| uri.len() > s.len() && uri.to_ascii_lowercase().starts_with(s));
        if !valid_scheme
            || uri.len() > 250
            || uri.contains(['#', '?', ' ', '*'])
            || uri.chars().any(char::is_control)
            || uri.ends_with("/.default")
        {
            return Err(CoreError::Invalid(format!(
                "identifierUris: '{}' is not a valid application ID URI; use a form such as api://my-api or https://host/path.",
                truncate(uri, 80)
            )));
        }
        let normalized = uri.trim_end_matches('/').to_string();
        if out.iter().any(|u| u.eq_ignore_ascii_case(&normalized)) {
            return Err(CoreError::Invalid(format!("identifierUris: '{normalized}' is listed twice.")));
        }
        out.push(normalized);
    }
    Ok(out)
}

/// Validates a role value as Entra does: no spaces, printable, at most 120 characters.
pub fn validate_role_value(value: &str) -> Result<()> {
    if value.is_empty() || value.len() > 120 || !value.chars().all(|c| c.is_ascii_graphic()) {
        return Err(CoreError::Invalid("appRoles: value must be 1 to 120 printable characters without spaces, e.g. Secrets.Read.".into()));
    }
    Ok(())
}

/// Validates the whole list of app roles of an application.
pub fn validate_app_roles(roles: &[AppRole]) -> Result<()> {
    if roles.len() > MAX_APP_ROLES {
        return Err(CoreError::Invalid(format!("an application may define at most {MAX_APP_ROLES} app roles.")));
    }
    for (i, role) in roles.iter().enumerate() {
        validate_role_value(&role.value)?;
        if !is_guid(&role.id) {
            return Err(CoreError::Invalid(format!("appRoles: id '{}' is not a GUID.", truncate(&role.id, 40))));
        }
        if role.display_name.len() > MAX_DISPLAY_NAME || role.description.len() > 1024 {
            return Err(CoreError::Invalid("appRoles: displayName or description is too long.".into()));
        }
        if roles[..i].iter().any(|r| r.value == role.value || r.id == role.id) {
            return Err(CoreError::Invalid(format!("appRoles: value '{}' or its id is defined twice.", role.value)));
        }
    }
    Ok(())
}

/// Whether `text` is a GUID in its canonical 8-4-4-4-12 hex form (any case).
pub fn is_guid(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// Whether `text` is a valid tenant domain name: dot-separated labels of letters, digits and
/// hyphens (the characters azure-identity accepts in a tenant).
pub fn is_domain_name(text: &str) -> bool {
    text.len() <= 253
        && text.contains('.')
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
        })
}

/// Shortens untrusted text echoed in an error message.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(max).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_and_domains() {
        assert!(is_guid("11111111-2222-3333-4444-555555555555"));
        assert!(!is_guid("11111111-2222-3333-4444-55555555555"));
        assert!(!is_guid("1111111122223333444455555555555555555"));
        assert!(is_domain_name("contoso.clavis.local"));
        assert!(!is_domain_name("my_tenant"));
        assert!(!is_domain_name("localhost"));
    }

    #[test]
    fn identifier_uris_are_checked() {
        assert_eq!(validate_identifier_uris(&["api://my-api/".into()]).unwrap(), vec!["api://my-api"]);
        assert!(validate_identifier_uris(&["my-api".into()]).is_err());
        assert!(validate_identifier_uris(&["api://a/.default".into()]).is_err());
        assert!(validate_identifier_uris(&["api://a".into(), "API://A".into()]).is_err());
    }
}
