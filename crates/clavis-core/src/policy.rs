//! RBAC for the management API: which roles of the built-in management application allow what.
//!
//! **Invariant:** authorization decisions are made here. Core operations take an [`Authorized`]
//! value, which only [`authorize`] creates, so an unauthorized call does not type-check.

use crate::error::{CoreError, Result};
use crate::identity::AppRole;

/// The identifier URI of the built-in management API application in every tenant. Clients ask
/// for `api://clavis/.default` to manage Clavis, as they ask Entra for Graph.
pub const MANAGEMENT_API_URI: &str = "api://clavis";
/// The display name of the built-in management API application.
pub const MANAGEMENT_API_NAME: &str = "Clavis Management API";

/// Full control of the tenant.
pub const ROLE_ADMINISTRATOR: &str = "Clavis.Administrator";
/// Create, change and delete applications, their secrets and role assignments.
pub const ROLE_APPLICATION_READWRITE: &str = "Application.ReadWrite.All";
/// Read applications and their (value-less) credentials.
pub const ROLE_APPLICATION_READ: &str = "Application.Read.All";

/// The roles the management API defines, with fixed ids so every tenant and every node agrees.
pub fn management_roles() -> Vec<AppRole> {
    let role = |id: &str, value: &str, description: &str| AppRole {
        id: id.to_string(),
        value: value.to_string(),
        display_name: value.to_string(),
        description: description.to_string(),
        allowed_member_types: vec!["Application".into()],
        is_enabled: true,
    };
    vec![
        role(
            "7b0c5a51-6d0f-4a53-9d6a-6c1f0a9f0001",
            ROLE_ADMINISTRATOR,
            "Full control of the tenant: applications, secrets, roles and keys.",
        ),
        role(
            "7b0c5a51-6d0f-4a53-9d6a-6c1f0a9f0002",
            ROLE_APPLICATION_READWRITE,
            "Create, change and delete applications, their secrets and role assignments.",
        ),
        role("7b0c5a51-6d0f-4a53-9d6a-6c1f0a9f0003", ROLE_APPLICATION_READ, "Read applications and their credentials' metadata."),
    ]
}

/// What an operation needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// Read applications, credentials' metadata, role assignments, the tenant.
    Read,
    /// Change applications, credentials and role assignments.
    WriteApplications,
    /// Change the tenant, its policy and the instance's keys.
    Administer,
}

impl Permission {
    fn roles(self) -> &'static [&'static str] {
        match self {
            Self::Read => &[ROLE_ADMINISTRATOR, ROLE_APPLICATION_READWRITE, ROLE_APPLICATION_READ],
            Self::WriteApplications => &[ROLE_ADMINISTRATOR, ROLE_APPLICATION_READWRITE],
            Self::Administer => &[ROLE_ADMINISTRATOR],
        }
    }
}

/// An authenticated caller, as resolved from a verified access token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The caller's tenant.
    pub tenant_id: String,
    /// The caller's service principal id (`oid`).
    pub service_principal_id: String,
    /// The caller's client id.
    pub app_id: String,
    /// The roles in the token.
    pub roles: Vec<String>,
    /// The credential that obtained the token.
    pub credential_id: String,
}

/// Proof that a principal may do what a permission covers.
#[derive(Debug)]
pub struct Authorized<'a> {
    principal: &'a Principal,
    permission: Permission,
}

impl<'a> Authorized<'a> {
    /// Who is authorized.
    pub fn principal(&self) -> &'a Principal {
        self.principal
    }

    /// For what.
    pub fn permission(&self) -> Permission {
        self.permission
    }
}

/// Decides whether `principal` holds `permission`.
pub fn authorize(principal: &Principal, permission: Permission) -> Result<Authorized<'_>> {
    if principal.roles.iter().any(|held| permission.roles().contains(&held.as_str())) {
        Ok(Authorized { principal, permission })
    } else {
        Err(CoreError::Forbidden(format!(
            "The caller's application '{}' lacks a role that allows this operation; one of {} of the application '{MANAGEMENT_API_NAME}' ({MANAGEMENT_API_URI}) must be granted to it.",
            principal.app_id,
            permission.roles().join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(roles: &[&str]) -> Principal {
        Principal {
            tenant_id: "t".into(),
            service_principal_id: "sp".into(),
            app_id: "a".into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            credential_id: "k".into(),
        }
    }

    #[test]
    fn roles_grant_what_they_say() {
        assert!(authorize(&principal(&[ROLE_APPLICATION_READ]), Permission::Read).is_ok());
        assert!(authorize(&principal(&[ROLE_APPLICATION_READ]), Permission::WriteApplications).is_err());
        assert!(authorize(&principal(&[ROLE_APPLICATION_READWRITE]), Permission::WriteApplications).is_ok());
        assert!(authorize(&principal(&[ROLE_APPLICATION_READWRITE]), Permission::Administer).is_err());
        assert!(authorize(&principal(&[ROLE_ADMINISTRATOR]), Permission::Administer).is_ok());
        assert!(authorize(&principal(&[]), Permission::Read).is_err());
    }
}
