//! VAULT: named vaults of a tenant holding versioned secrets, with soft delete, recovery, purge,
//! backup and restore, as Azure Key Vault's secrets API defines them
//! (`docs/contracts/keyvault-secrets.md`).
//!
//! **Invariant:** a secret value exists in clear only between the request that carries it and
//! its sealing, and between unsealing and the response that returns it. Stored versions hold the
//! value sealed under a data key with associated data naming tenant, vault, secret and version
//! ([`value_aad`]), so a ciphertext moved to another row does not decrypt.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{CoreError, Result};

/// Key Vault's limit on a secret value (25 KiB, as bytes).
pub const MAX_VALUE_BYTES: usize = 25_600;
/// Key Vault's limit on tags per secret.
pub const MAX_TAGS: usize = 15;
/// Key Vault's limit on a tag name or value.
pub const MAX_TAG_CHARS: usize = 512;
/// Key Vault's limit on `contentType`.
pub const MAX_CONTENT_TYPE_CHARS: usize = 255;
/// Key Vault's largest page.
pub const MAX_PAGE: usize = 25;

/// A vault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vault {
    /// Its id (GUID).
    pub id: String,
    /// The tenant it belongs to; its challenge names this tenant.
    pub tenant_id: String,
    /// Its name: the first label of its host, unique in the instance, lower-case.
    pub name: String,
    /// Days a deleted secret stays recoverable (7–90).
    pub retention_days: i64,
    /// When on, deleted secrets cannot be purged before their retention ends.
    pub purge_protection: bool,
    /// When on (a Clavis extension), expired and not-yet-valid versions are not served.
    pub enforce_expiry: bool,
    /// Requests per second the vault serves before answering 429 `Throttled` (0: no limit).
    pub rate_limit: i64,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it was deleted (soft), if it was.
    pub deleted_at: Option<OffsetDateTime>,
}

impl Vault {
    /// Key Vault's `recoveryLevel` for this vault's settings.
    pub fn recovery_level(&self) -> &'static str {
        match (self.retention_days >= 90, self.purge_protection) {
            (true, false) => "Recoverable+Purgeable",
            (true, true) => "Recoverable",
            (false, false) => "CustomizedRecoverable+Purgeable",
            (false, true) => "CustomizedRecoverable",
        }
    }
}

/// Settings of a new vault.
#[derive(Clone, Debug)]
pub struct VaultSettings {
    /// Days a deleted secret stays recoverable (7–90; default 90).
    pub retention_days: i64,
    /// Purge protection (default off).
    pub purge_protection: bool,
    /// Enforce `nbf`/`exp` on reads (default off, as Key Vault).
    pub enforce_expiry: bool,
    /// Requests per second before 429 (0: none).
    pub rate_limit: i64,
}

impl Default for VaultSettings {
    fn default() -> Self {
        Self { retention_days: 90, purge_protection: false, enforce_expiry: false, rate_limit: 0 }
    }
}

/// One version of a secret as stored: the value sealed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretVersion {
    /// The vault.
    pub vault_id: String,
    /// The secret's name as first given (names compare case-insensitively).
    pub name: String,
    /// 32 lower-case hex characters.
    pub version: String,
    /// Order of creation within the secret, from 1; the highest is the latest version.
    pub ordinal: i64,
    /// The data key that sealed the value.
    pub data_key_id: String,
    /// The sealed value.
    pub sealed: Vec<u8>,
    /// Properties.
    pub properties: SecretProperties,
    /// When created.
    pub created: OffsetDateTime,
    /// When last updated.
    pub updated: OffsetDateTime,
}

/// The mutable properties of a version.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretProperties {
    /// `contentType`.
    pub content_type: Option<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Disabled versions are not served.
    pub enabled: bool,
    /// Not before (Unix seconds).
    pub nbf: Option<i64>,
    /// Expiry (Unix seconds).
    pub exp: Option<i64>,
}

/// A secret's soft-delete state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeletedState {
    /// When it was deleted.
    pub deleted_at: OffsetDateTime,
    /// When it will be purged.
    pub scheduled_purge_at: OffsetDateTime,
}

/// A secret: its name, soft-delete state and versions, oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Secret {
    /// The vault.
    pub vault_id: String,
    /// The name as first given.
    pub name: String,
    /// Set while deleted.
    pub deleted: Option<DeletedState>,
    /// The versions, by ordinal.
    pub versions: Vec<SecretVersion>,
}

impl Secret {
    /// The latest version.
    pub fn latest(&self) -> Option<&SecretVersion> {
        self.versions.iter().max_by_key(|v| v.ordinal)
    }
}

/// Associated data binding a sealed value to its place.
pub fn value_aad(tenant_id: &str, vault_id: &str, name: &str, version: &str) -> Vec<u8> {
    format!("clavis:vault-secret:{tenant_id}:{vault_id}:{}:{version}", name.to_ascii_lowercase()).into_bytes()
}

/// The lookup key of a secret name (Key Vault names are case-insensitive).
pub fn name_key(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// Validates a secret name: `^[0-9a-zA-Z-]{1,127}$`.
pub fn validate_secret_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 127 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(CoreError::Invalid(format!(
            "The request URI contains an invalid name: {}. A secret name is 1 to 127 letters, digits and dashes.",
            crate::identity::truncate(name, 130)
        )));
    }
    Ok(())
}

/// Validates a vault name: 3–24 letters, digits and dashes, starting with a letter, not ending
/// with a dash, without consecutive dashes (Key Vault's rule, which also makes it a DNS label).
pub fn validate_vault_name(name: &str) -> Result<()> {
    let bytes = name.as_bytes();
    let valid = (3..=24).contains(&bytes.len())
        && bytes[0].is_ascii_alphabetic()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && !name.ends_with('-')
        && !name.contains("--");
    if !valid {
        return Err(CoreError::Invalid(format!(
            "'{}' is not a valid vault name: use 3 to 24 letters, digits and single dashes, starting with a letter.",
            crate::identity::truncate(name, 40)
        )));
    }
    Ok(())
}

/// Validates the settings of a vault.
pub fn validate_settings(settings: &VaultSettings) -> Result<()> {
    if !(7..=90).contains(&settings.retention_days) {
        return Err(CoreError::Invalid("retentionDays must be between 7 and 90.".into()));
    }
    if !(0..=1_000_000).contains(&settings.rate_limit) {
        return Err(CoreError::Invalid("rateLimit must be between 0 (none) and 1000000 requests per second.".into()));
    }
    Ok(())
}

/// Validates a value, content type and tags against Key Vault's limits.
pub fn validate_contents(value: Option<&str>, properties: &SecretProperties) -> Result<()> {
    if let Some(value) = value {
        if value.len() > MAX_VALUE_BYTES {
            return Err(CoreError::Invalid(format!("Secret value is too large. Maximum allowed size is {MAX_VALUE_BYTES} bytes.")));
        }
    }
    if properties.content_type.as_ref().is_some_and(|c| c.chars().count() > MAX_CONTENT_TYPE_CHARS) {
        return Err(CoreError::Invalid(format!("contentType is too long. Maximum allowed length is {MAX_CONTENT_TYPE_CHARS} characters.")));
    }
    if properties.tags.len() > MAX_TAGS {
        return Err(CoreError::Invalid(format!("Too many tags: at most {MAX_TAGS} are allowed.")));
    }
    for (name, value) in &properties.tags {
        if name.is_empty() || name.chars().count() > MAX_TAG_CHARS || value.chars().count() > MAX_TAG_CHARS {
            return Err(CoreError::Invalid(format!(
                "Tag names must be 1 to {MAX_TAG_CHARS} characters and values at most {MAX_TAG_CHARS}."
            )));
        }
    }
    if let (Some(nbf), Some(exp)) = (properties.nbf, properties.exp) {
        if exp <= nbf {
            return Err(CoreError::Invalid("The secret's expiry (exp) must be after its activation (nbf).".into()));
        }
    }
    Ok(())
}

/// Whether a version may be served at `now` in a vault: disabled versions never; expired and
/// not-yet-valid ones only when the vault does not enforce expiry.
pub fn readable(vault: &Vault, version: &SecretVersion, now: OffsetDateTime) -> Result<()> {
    if !version.properties.enabled {
        return Err(CoreError::Forbidden("SecretDisabled: Operation get is not allowed on a disabled secret.".into()));
    }
    if vault.enforce_expiry {
        let now = now.unix_timestamp();
        if version.properties.exp.is_some_and(|exp| now >= exp) {
            return Err(CoreError::Forbidden(format!(
                "SecretExpired: Operation get is not allowed on an expired secret: vault '{}' enforces expiry and this version expired.",
                vault.name
            )));
        }
        if version.properties.nbf.is_some_and(|nbf| now < nbf) {
            return Err(CoreError::Forbidden(format!(
                "SecretNotYetValid: Operation get is not allowed on a secret that is not yet valid: vault '{}' enforces nbf.",
                vault.name
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_secret_name("db-password-1").is_ok());
        assert!(validate_secret_name("9-leading-digit").is_ok());
        assert!(validate_secret_name("bad_name").is_err());
        assert!(validate_secret_name(&"a".repeat(128)).is_err());
        assert!(validate_secret_name("").is_err());
        assert!(validate_vault_name("kv1").is_ok());
        assert!(validate_vault_name("k").is_err());
        assert!(validate_vault_name("1kv").is_err());
        assert!(validate_vault_name("kv--x").is_err());
        assert!(validate_vault_name("kv-").is_err());
    }

    #[test]
    fn limits() {
        let ok = SecretProperties { enabled: true, ..Default::default() };
        assert!(validate_contents(Some(&"x".repeat(MAX_VALUE_BYTES)), &ok).is_ok());
        assert!(validate_contents(Some(&"x".repeat(MAX_VALUE_BYTES + 1)), &ok).is_err());
        let mut many = ok.clone();
        for i in 0..16 {
            many.tags.insert(format!("t{i}"), "v".into());
        }
        assert!(validate_contents(None, &many).is_err());
        let long_type = SecretProperties { content_type: Some("x".repeat(256)), ..ok.clone() };
        assert!(validate_contents(None, &long_type).is_err());
    }

    #[test]
    fn expiry_is_enforced_only_when_asked() {
        let now = OffsetDateTime::from_unix_timestamp(1_000_000).unwrap();
        let mut vault = Vault {
            id: "v".into(),
            tenant_id: "t".into(),
            name: "kv".into(),
            retention_days: 90,
            purge_protection: false,
            enforce_expiry: false,
            rate_limit: 0,
            created_at: now,
            deleted_at: None,
        };
        let version = SecretVersion {
            vault_id: "v".into(),
            name: "s".into(),
            version: "0".repeat(32),
            ordinal: 1,
            data_key_id: "d".into(),
            sealed: vec![],
            properties: SecretProperties { enabled: true, exp: Some(999_999), ..Default::default() },
            created: now,
            updated: now,
        };
        assert!(readable(&vault, &version, now).is_ok());
        vault.enforce_expiry = true;
        assert!(readable(&vault, &version, now).unwrap_err().to_string().starts_with("SecretExpired"));
        assert_eq!(vault.recovery_level(), "Recoverable+Purgeable");
    }
}
