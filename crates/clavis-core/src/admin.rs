//! People: the local administrator accounts that sign in to the portal, and their sessions.
//!
//! An administrator holds one management role (the same roles applications are granted) and acts
//! through the same core operations, authorization and audit as an application: a signed-in
//! person is a [`crate::policy::Principal`] whose `user` is set. Passwords are stored only as
//! Argon2id PHC strings; sessions only as the SHA-256 of their token.

use time::{Duration, OffsetDateTime};

use crate::error::{CoreError, Result};
use crate::policy::{ROLE_ADMINISTRATOR, ROLE_APPLICATION_READ, ROLE_APPLICATION_READWRITE};

/// A local administrator account.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminAccount {
    /// The account's id (GUID): the principal id in audit records and vault role assignments.
    pub id: String,
    /// The tenant it administers.
    pub tenant_id: String,
    /// The sign-in name (lower case).
    pub username: String,
    /// The Argon2id PHC string of the password.
    pub password_hash: String,
    /// The management role held (`Clavis.Administrator`, …).
    pub role: String,
    /// A disabled account cannot sign in and its sessions end.
    pub disabled: bool,
    /// When created.
    pub created_at: OffsetDateTime,
    /// When the password, role or state last changed.
    pub updated_at: OffsetDateTime,
}

impl std::fmt::Debug for AdminAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminAccount")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("role", &self.role)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// A signed-in portal session as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct PortalSession {
    /// SHA-256 (hex) of the session token; the token itself is only in the browser's cookie.
    pub id_hash: String,
    /// The administrator.
    pub admin_id: String,
    /// The administrator's tenant.
    pub tenant_id: String,
    /// The synchronizer token every form of this session must carry.
    pub csrf: String,
    /// When signed in.
    pub created_at: OffsetDateTime,
    /// The last request seen (kept to within a minute).
    pub last_seen_at: OffsetDateTime,
    /// The session ends here whatever its activity.
    pub expires_at: OffsetDateTime,
}

impl std::fmt::Debug for PortalSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortalSession").field("id", &self.short_id()).field("admin_id", &self.admin_id).finish_non_exhaustive()
    }
}

impl PortalSession {
    /// A short, non-secret name of the session for audit records (a prefix of the token's hash).
    pub fn short_id(&self) -> &str {
        &self.id_hash[..self.id_hash.len().min(16)]
    }
}

/// How portal sessions and sign-ins behave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortalSettings {
    /// A session idle for this long ends.
    pub session_idle: Duration,
    /// A session ends this long after sign-in whatever its activity.
    pub session_lifetime: Duration,
    /// Failed sign-ins per (user name, address) before waits start (0 = off).
    pub sign_in_free_failures: u32,
}

impl Default for PortalSettings {
    fn default() -> Self {
        Self { session_idle: Duration::minutes(30), session_lifetime: Duration::hours(8), sign_in_free_failures: 5 }
    }
}

/// Normalizes and checks a user name: 1–64 of `a-z 0-9 . _ @ -`, lower-cased.
pub fn validate_username(name: &str) -> Result<String> {
    let lowered = name.trim().to_ascii_lowercase();
    let valid = !lowered.is_empty()
        && lowered.len() <= 64
        && lowered.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'@' | b'-'));
    if !valid {
        return Err(CoreError::Invalid(format!(
            "user name '{}' must be 1 to 64 characters of letters, digits, '.', '_', '@' and '-'.",
            crate::identity::truncate(name, 64)
        )));
    }
    Ok(lowered)
}

/// Checks a new password's length (long passphrases beat composition rules; NIST SP 800-63B).
pub fn validate_password(password: &str) -> Result<()> {
    let chars = password.chars().count();
    if chars < clavis_crypto::password::MIN_PASSWORD_CHARS || password.len() > clavis_crypto::password::MAX_PASSWORD_BYTES {
        return Err(CoreError::Invalid(format!(
            "a password must have {} to {} characters.",
            clavis_crypto::password::MIN_PASSWORD_CHARS,
            clavis_crypto::password::MAX_PASSWORD_BYTES
        )));
    }
    Ok(())
}

/// Parses a management role by value or short name (`administrator`, `readwrite`, `reader`).
pub fn parse_role(text: &str) -> Result<String> {
    let folded: String = text.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase();
    let role = match folded.as_str() {
        "administrator" | "admin" | "clavisadministrator" => ROLE_ADMINISTRATOR,
        "readwrite" | "applicationreadwriteall" => ROLE_APPLICATION_READWRITE,
        "reader" | "read" | "applicationreadall" => ROLE_APPLICATION_READ,
        _ => {
            return Err(CoreError::Invalid(format!(
                "'{}' is not a role; use administrator ({ROLE_ADMINISTRATOR}), readwrite ({ROLE_APPLICATION_READWRITE}) or reader ({ROLE_APPLICATION_READ}).",
                crate::identity::truncate(text, 60)
            )))
        }
    };
    Ok(role.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_roles_and_passwords_are_checked() {
        assert_eq!(validate_username(" Alice@Example.com ").unwrap(), "alice@example.com");
        assert!(validate_username("").is_err() && validate_username("a b").is_err() && validate_username(&"a".repeat(65)).is_err());
        assert_eq!(parse_role("Administrator").unwrap(), ROLE_ADMINISTRATOR);
        assert_eq!(parse_role("Application.Read.All").unwrap(), ROLE_APPLICATION_READ);
        assert!(parse_role("owner").is_err());
        assert!(validate_password("short").is_err() && validate_password("long enough pass").is_ok());
    }
}
