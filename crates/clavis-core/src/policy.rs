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
    /// The credential that obtained the token (for a person: the portal session's short id).
    pub credential_id: String,
    /// The administrator's user name when the caller is a person signed in to the portal
    /// (`service_principal_id` is then the administrator's id).
    pub user: Option<String>,
}

impl Principal {
    /// The principal as the actor of an audit record.
    pub fn actor(&self) -> crate::audit::Actor {
        match &self.user {
            Some(_) => crate::audit::Actor {
                kind: "user".into(),
                id: self.service_principal_id.clone(),
                app_id: None,
                auth_method: "portal".into(),
            },
            None => crate::audit::Actor {
                kind: "servicePrincipal".into(),
                id: self.service_principal_id.clone(),
                app_id: Some(self.app_id.clone()),
                auth_method: "bearer".into(),
            },
        }
    }

    /// How the principal is named to people: the user name, or the application's client id.
    pub fn display(&self) -> &str {
        self.user.as_deref().unwrap_or(&self.app_id)
    }
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
            "The caller '{}' lacks a role that allows this operation; one of {} of the application '{MANAGEMENT_API_NAME}' ({MANAGEMENT_API_URI}) must be granted to it.",
            principal.display(),
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
            user: None,
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

/// A Key Vault data-plane role (the built-in roles of `docs/contracts/keyvault-secrets.md` §10.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VaultRole {
    /// Everything on vaults and secrets.
    Administrator,
    /// Every secret action, including purge.
    SecretsOfficer,
    /// Read values and metadata.
    SecretsUser,
    /// Metadata only, never values.
    Reader,
    /// Purge deleted secrets.
    PurgeOperator,
}

impl VaultRole {
    /// Every role.
    pub const ALL: [VaultRole; 5] = [Self::Administrator, Self::SecretsOfficer, Self::SecretsUser, Self::Reader, Self::PurgeOperator];

    /// Azure's role name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Administrator => "Key Vault Administrator",
            Self::SecretsOfficer => "Key Vault Secrets Officer",
            Self::SecretsUser => "Key Vault Secrets User",
            Self::Reader => "Key Vault Reader",
            Self::PurgeOperator => "Key Vault Purge Operator",
        }
    }

    /// Azure's role definition id.
    pub fn id(self) -> &'static str {
        match self {
            Self::Administrator => "00482a5a-887f-4fb3-b363-3b7fe8e74483",
            Self::SecretsOfficer => "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
            Self::SecretsUser => "4633458b-17de-408a-b874-0445c86b69e6",
            Self::Reader => "21090545-7ca7-4776-b22c-e363652d74d2",
            Self::PurgeOperator => "a68e7c17-0ab2-4c09-9a58-125dae29748c",
        }
    }

    /// Parses a role by Azure name, id, or short form (`secrets-user`, `Secrets User`, …).
    pub fn parse(text: &str) -> Option<Self> {
        let folded: String = text.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase();
        let folded = folded.strip_prefix("keyvault").unwrap_or(&folded).to_string();
        Self::ALL.into_iter().find(|role| {
            role.id().eq_ignore_ascii_case(text)
                || role
                    .name()
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric())
                    .collect::<String>()
                    .to_ascii_lowercase()
                    .strip_prefix("keyvault")
                    == Some(folded.as_str())
        })
    }

    /// Whether the role allows `action`.
    pub fn allows(self, action: DataAction) -> bool {
        use DataAction as A;
        match self {
            Self::Administrator | Self::SecretsOfficer => true,
            Self::SecretsUser => matches!(action, A::GetSecret | A::ReadMetadata),
            Self::Reader => matches!(action, A::ReadMetadata),
            Self::PurgeOperator => matches!(action, A::Purge),
        }
    }
}

/// A data action on secrets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataAction {
    /// Read a value.
    GetSecret,
    /// Create a secret or a version.
    SetSecret,
    /// List and read properties, never values.
    ReadMetadata,
    /// Change properties.
    Update,
    /// Delete (soft).
    Delete,
    /// Recover a deleted secret.
    Recover,
    /// Back up.
    Backup,
    /// Restore a backup.
    Restore,
    /// Purge a deleted secret.
    Purge,
}

impl DataAction {
    /// Azure's data action name.
    pub fn name(self) -> &'static str {
        match self {
            Self::GetSecret => "Microsoft.KeyVault/vaults/secrets/getSecret/action",
            Self::SetSecret => "Microsoft.KeyVault/vaults/secrets/setSecret/action",
            Self::ReadMetadata => "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
            Self::Update => "Microsoft.KeyVault/vaults/secrets/update/action",
            Self::Delete => "Microsoft.KeyVault/vaults/secrets/delete",
            Self::Recover => "Microsoft.KeyVault/vaults/secrets/recover/action",
            Self::Backup => "Microsoft.KeyVault/vaults/secrets/backup/action",
            Self::Restore => "Microsoft.KeyVault/vaults/secrets/restore/action",
            Self::Purge => "Microsoft.KeyVault/vaults/secrets/purge/action",
        }
    }
}

/// A grant of a vault role to a service principal at a scope: `/` (every vault of the tenant),
/// `/vaults/{vault}` or `/vaults/{vault}/secrets/{name}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaultRoleAssignment {
    /// The assignment id.
    pub id: String,
    /// The tenant.
    pub tenant_id: String,
    /// The service principal holding the role.
    pub principal_id: String,
    /// The role.
    pub role: VaultRole,
    /// The scope, normalized (lower-case vault and secret names).
    pub scope: String,
    /// When granted.
    pub created_at: time::OffsetDateTime,
}

/// Parses and normalizes a scope.
pub fn parse_scope(scope: &str) -> Result<String> {
    let trimmed = scope.trim().trim_end_matches('/');
    let parts: Vec<&str> = trimmed.split('/').collect();
    let valid = match parts.as_slice() {
        [""] => return Ok("/".into()),
        ["", "vaults", vault] => crate::vault::validate_vault_name(vault).is_ok(),
        ["", "vaults", vault, "secrets", secret] => {
            crate::vault::validate_vault_name(vault).is_ok() && crate::vault::validate_secret_name(secret).is_ok()
        }
        _ => false,
    };
    if !valid {
        return Err(CoreError::Invalid(format!(
            "scope '{}' is not one of '/', '/vaults/VAULT' or '/vaults/VAULT/secrets/NAME'.",
            crate::identity::truncate(scope, 100)
        )));
    }
    Ok(trimmed.to_ascii_lowercase())
}

fn scope_covers(scope: &str, vault: &str, secret: Option<&str>) -> bool {
    if scope == "/" {
        return true;
    }
    let vault_scope = format!("/vaults/{}", vault.to_ascii_lowercase());
    if scope == vault_scope {
        return true;
    }
    secret.is_some_and(|s| scope == format!("{vault_scope}/secrets/{}", s.to_ascii_lowercase()))
}

/// Decides a data-plane request. `secret` is the secret the action targets (none for listing),
/// so a secret-scoped grant covers that secret only.
pub fn authorize_data(
    principal: &Principal,
    assignments: &[VaultRoleAssignment],
    action: DataAction,
    vault: &str,
    secret: Option<&str>,
) -> Result<()> {
    let allowed = assignments
        .iter()
        .any(|a| a.principal_id == principal.service_principal_id && a.role.allows(action) && scope_covers(&a.scope, vault, secret));
    if allowed {
        return Ok(());
    }
    Err(CoreError::Forbidden(format!(
        "ForbiddenByRbac: Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid={};oid={};iss={}\r\nAction: '{}'\r\nResource: '/vaults/{vault}{}'\r\nAssignment: (not found)\r\nDecisionReason: 'DeniedWithNoValidRBAC'\r\nVault: {vault}\r\n",
        principal.app_id,
        principal.service_principal_id,
        principal.tenant_id,
        action.name(),
        secret.map(|s| format!("/secrets/{s}")).unwrap_or_default(),
    )))
}

#[cfg(test)]
mod vault_tests {
    use super::*;

    fn assignment(role: VaultRole, scope: &str) -> VaultRoleAssignment {
        VaultRoleAssignment {
            id: "a".into(),
            tenant_id: "t".into(),
            principal_id: "sp".into(),
            role,
            scope: parse_scope(scope).unwrap(),
            created_at: time::OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn caller() -> Principal {
        Principal {
            tenant_id: "t".into(),
            service_principal_id: "sp".into(),
            app_id: "a".into(),
            roles: vec![],
            credential_id: "k".into(),
            user: None,
        }
    }

    #[test]
    fn roles_allow_their_data_actions_at_their_scopes() {
        let user = [assignment(VaultRole::SecretsUser, "/vaults/kv1")];
        assert!(authorize_data(&caller(), &user, DataAction::GetSecret, "kv1", Some("db")).is_ok());
        assert!(authorize_data(&caller(), &user, DataAction::GetSecret, "KV1", Some("db")).is_ok());
        assert!(authorize_data(&caller(), &user, DataAction::SetSecret, "kv1", Some("db")).is_err());
        assert!(authorize_data(&caller(), &user, DataAction::GetSecret, "kv2", Some("db")).is_err());
        let reader = [assignment(VaultRole::Reader, "/")];
        assert!(authorize_data(&caller(), &reader, DataAction::ReadMetadata, "kv9", None).is_ok());
        assert!(authorize_data(&caller(), &reader, DataAction::GetSecret, "kv9", Some("x")).is_err());
        let one = [assignment(VaultRole::SecretsOfficer, "/vaults/kv1/secrets/db")];
        assert!(authorize_data(&caller(), &one, DataAction::SetSecret, "kv1", Some("DB")).is_ok());
        assert!(authorize_data(&caller(), &one, DataAction::SetSecret, "kv1", Some("other")).is_err());
        assert!(authorize_data(&caller(), &one, DataAction::ReadMetadata, "kv1", None).is_err());
        let purge = [assignment(VaultRole::PurgeOperator, "/vaults/kv1")];
        assert!(authorize_data(&caller(), &purge, DataAction::Purge, "kv1", Some("x")).is_ok());
        assert!(authorize_data(&caller(), &purge, DataAction::Delete, "kv1", Some("x")).is_err());
        let error = authorize_data(&caller(), &[], DataAction::GetSecret, "kv1", Some("db")).unwrap_err().to_string();
        assert!(error.starts_with("ForbiddenByRbac") && error.contains("getSecret/action"), "{error}");
    }

    #[test]
    fn role_names_parse() {
        assert_eq!(VaultRole::parse("Key Vault Secrets User"), Some(VaultRole::SecretsUser));
        assert_eq!(VaultRole::parse("secrets-officer"), Some(VaultRole::SecretsOfficer));
        assert_eq!(VaultRole::parse("4633458b-17de-408a-b874-0445c86b69e6"), Some(VaultRole::SecretsUser));
        assert_eq!(VaultRole::parse("reader"), Some(VaultRole::Reader));
        assert_eq!(VaultRole::parse("owner"), None);
        assert!(parse_scope("/vaults/kv1/secrets/db").is_ok());
        assert!(parse_scope("/vaults/kv1/keys/x").is_err());
        assert_eq!(parse_scope("/VAULTS/KV1".to_lowercase().as_str()).unwrap(), "/vaults/kv1");
    }
}
