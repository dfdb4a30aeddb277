//! SECRET LIFECYCLE: client secrets (Graph `passwordCredential`) and the tenant policy that
//! bounds them.
//!
//! **Invariant:** a plaintext client secret exists only in the [`NewPassword`] returned by the
//! operation that created it. Everything stored or listed holds a [`HashedClientSecret`].

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use clavis_crypto::{HashedClientSecret, PlainClientSecret};

use crate::error::{CoreError, Result};
use crate::identity::{truncate, MAX_DISPLAY_NAME};

/// A client secret as stored: everything but its value.
#[derive(Clone, Debug)]
pub struct PasswordCredential {
    /// The credential's id (GUID): Graph's `keyId`.
    pub key_id: String,
    /// A description.
    pub display_name: Option<String>,
    /// The first three characters of the secret.
    pub hint: String,
    /// Valid from.
    pub start: OffsetDateTime,
    /// Valid until (exclusive).
    pub end: OffsetDateTime,
    /// The keyed hash of the value.
    pub hash: HashedClientSecret,
    /// When it was added.
    pub created_at: OffsetDateTime,
    /// Last successful use, if any (kept by the batched usage recorder).
    pub usage: Option<CredentialUsage>,
}

/// The last use of a credential.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialUsage {
    /// Time of the last successful token request with this credential.
    #[serde(with = "time::serde::rfc3339")]
    pub last_used_date_time: OffsetDateTime,
    /// The client IP of that request.
    pub last_used_ip: String,
    /// Number of successful token requests.
    pub use_count: i64,
}

/// Where a credential stands at a given instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum CredentialState {
    /// Usable now.
    Active,
    /// Usable now, but it expires within the notice window.
    Expiring,
    /// Its start is still in the future.
    NotYetValid,
    /// Its end has passed.
    Expired,
}

impl PasswordCredential {
    /// The state at `now`, with `notice` the window before expiry that counts as expiring.
    pub fn state(&self, now: OffsetDateTime, notice: Duration) -> CredentialState {
        if now < self.start {
            CredentialState::NotYetValid
        } else if now >= self.end {
            CredentialState::Expired
        } else if self.end - now <= notice {
            CredentialState::Expiring
        } else {
            CredentialState::Active
        }
    }

    /// Whole days since the last use, or since creation when never used.
    pub fn unused_days(&self, now: OffsetDateTime) -> i64 {
        let since = self.usage.as_ref().map_or(self.created_at, |u| u.last_used_date_time);
        (now - since).whole_days().max(0)
    }
}

/// A tenant's credential policy (modelled on Entra's app management policy).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CredentialPolicy {
    /// `passwordLifetime`: the longest a client secret may live, in days (Entra's portal: 2 years).
    pub max_password_lifetime_days: i64,
    /// The lifetime of a secret when the request names no end, in days (Entra's portal: 180).
    pub default_password_lifetime_days: i64,
    /// How many secrets one application may hold at once.
    pub max_passwords_per_application: i64,
    /// `passwordAddition`: no new secrets at all (for every application, or only for those
    /// created after `block_password_addition_for_apps_created_after`).
    pub block_password_addition: bool,
    /// Limits `block_password_addition` to applications created after this instant.
    #[serde(with = "time::serde::rfc3339::option")]
    pub block_password_addition_for_apps_created_after: Option<OffsetDateTime>,
    /// `customPasswordAddition`: refuse secret values chosen by the caller (on by default: Clavis
    /// generates every secret with 210 bits of entropy).
    pub block_custom_passwords: bool,
    /// Every secret must expire. When off, a secret may be created without expiry by asking for
    /// an `endDateTime` in or after the year 2299 (the "never" of Entra's portal).
    pub expiry_required: bool,
}

impl Default for CredentialPolicy {
    fn default() -> Self {
        Self {
            max_password_lifetime_days: 730,
            default_password_lifetime_days: 180,
            max_passwords_per_application: 10,
            block_password_addition: false,
            block_password_addition_for_apps_created_after: None,
            block_custom_passwords: true,
            expiry_required: true,
        }
    }
}

/// Per-application changes to the tenant's policy; absent fields inherit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyOverride {
    /// See [`CredentialPolicy::max_password_lifetime_days`].
    pub max_password_lifetime_days: Option<i64>,
    /// See [`CredentialPolicy::default_password_lifetime_days`].
    pub default_password_lifetime_days: Option<i64>,
    /// See [`CredentialPolicy::max_passwords_per_application`].
    pub max_passwords_per_application: Option<i64>,
    /// See [`CredentialPolicy::block_password_addition`].
    pub block_password_addition: Option<bool>,
    /// See [`CredentialPolicy::block_custom_passwords`].
    pub block_custom_passwords: Option<bool>,
    /// See [`CredentialPolicy::expiry_required`].
    pub expiry_required: Option<bool>,
}

impl CredentialPolicy {
    /// The tenant's policy with an application's override applied.
    pub fn with_override(&self, changes: Option<&PolicyOverride>) -> Self {
        let Some(changes) = changes else { return self.clone() };
        Self {
            max_password_lifetime_days: changes.max_password_lifetime_days.unwrap_or(self.max_password_lifetime_days),
            default_password_lifetime_days: changes.default_password_lifetime_days.unwrap_or(self.default_password_lifetime_days),
            max_passwords_per_application: changes.max_passwords_per_application.unwrap_or(self.max_passwords_per_application),
            block_password_addition: changes.block_password_addition.unwrap_or(self.block_password_addition),
            block_password_addition_for_apps_created_after: if changes.block_password_addition.is_some() {
                None
            } else {
                self.block_password_addition_for_apps_created_after
            },
            block_custom_passwords: changes.block_custom_passwords.unwrap_or(self.block_custom_passwords),
            expiry_required: changes.expiry_required.unwrap_or(self.expiry_required),
        }
    }

    /// Refuses a new secret for an application created at `app_created_at` when the policy
    /// blocks additions, naming the restriction.
    pub fn check_addition(&self, app_created_at: OffsetDateTime, custom_value: bool) -> Result<()> {
        let blocked =
            self.block_password_addition && self.block_password_addition_for_apps_created_after.is_none_or(|after| app_created_at > after);
        if blocked {
            return Err(CoreError::Forbidden(format!(
                "passwordAddition policy: new client secrets are blocked for this application{}. Use a certificate or federated credential, or ask an administrator to change the credential policy.",
                self.block_password_addition_for_apps_created_after.map(|after| format!(" (it applies to applications created after {after})")).unwrap_or_default()
            )));
        }
        if custom_value && self.block_custom_passwords {
            return Err(CoreError::Invalid(
                "customPasswordAddition policy: secret values chosen by the caller are blocked; omit secretText and Clavis generates a 210-bit secret.".into(),
            ));
        }
        Ok(())
    }
}

impl CredentialPolicy {
    /// Checks the policy's own consistency.
    pub fn validate(&self) -> Result<()> {
        if !(1..=36_500).contains(&self.max_password_lifetime_days) {
            return Err(CoreError::Invalid("maxPasswordLifetimeDays must be between 1 and 36500.".into()));
        }
        if !(1..=self.max_password_lifetime_days).contains(&self.default_password_lifetime_days) {
            return Err(CoreError::Invalid("defaultPasswordLifetimeDays must be between 1 and maxPasswordLifetimeDays.".into()));
        }
        if !(1..=100).contains(&self.max_passwords_per_application) {
            return Err(CoreError::Invalid("maxPasswordsPerApplication must be between 1 and 100.".into()));
        }
        Ok(())
    }
}

/// What a caller asks for when adding a secret.
#[derive(Debug, Default)]
pub struct PasswordRequest {
    /// A description.
    pub display_name: Option<String>,
    /// Valid from; now when absent.
    pub start: Option<OffsetDateTime>,
    /// Valid until; start + the policy's default lifetime when absent.
    pub end: Option<OffsetDateTime>,
    /// A caller-chosen value, where the policy allows it.
    pub custom_value: Option<PlainClientSecret>,
}

/// A newly added secret: the only value that ever holds the plaintext.
#[derive(Debug)]
pub struct NewPassword {
    /// The stored credential.
    pub credential: PasswordCredential,
    /// The value, shown once.
    pub secret: PlainClientSecret,
}

/// Decides the validity window of a new secret under `policy`, refusing what it forbids.
pub fn plan_window(policy: &CredentialPolicy, request: &PasswordRequest, now: OffsetDateTime) -> Result<(OffsetDateTime, OffsetDateTime)> {
    let start = request.start.unwrap_or(now);
    if start < now - Duration::days(1) {
        return Err(CoreError::Invalid("startDateTime must not be more than a day in the past.".into()));
    }
    let end = request.end.unwrap_or(start + Duration::days(policy.default_password_lifetime_days));
    if end <= start {
        return Err(CoreError::Invalid("endDateTime must be after startDateTime.".into()));
    }
    if end <= now {
        return Err(CoreError::Invalid("endDateTime must be in the future.".into()));
    }
    let never = end.year() >= 2299;
    if never && !policy.expiry_required {
        return Ok((start, end));
    }
    if never {
        return Err(CoreError::Invalid(
            "expiry policy: every client secret must expire (the tenant's credential policy requires expiry); choose an endDateTime within maxPasswordLifetimeDays.".into(),
        ));
    }
    let max = Duration::days(policy.max_password_lifetime_days);
    if end - start > max {
        return Err(CoreError::Invalid(format!(
            "passwordLifetime policy: the requested lifetime is {} days, but the tenant's credential policy allows at most {} days (maxPasswordLifetimeDays). Choose an earlier endDateTime.",
            (end - start).whole_days(),
            policy.max_password_lifetime_days
        )));
    }
    Ok((start, end))
}

/// Validates a credential description.
pub fn validate_description(text: Option<&str>) -> Result<Option<String>> {
    match text.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) if text.chars().count() > MAX_DISPLAY_NAME || text.chars().any(char::is_control) => Err(CoreError::Invalid(format!(
            "displayName '{}' must be at most {MAX_DISPLAY_NAME} printable characters.",
            truncate(text, 40)
        ))),
        Some(text) => Ok(Some(text.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);

    #[test]
    fn default_window_is_180_days() {
        let (start, end) = plan_window(&CredentialPolicy::default(), &PasswordRequest::default(), NOW).unwrap();
        assert_eq!(start, NOW);
        assert_eq!(end - start, Duration::days(180));
    }

    #[test]
    fn lifetime_beyond_policy_is_refused_naming_the_policy() {
        let request = PasswordRequest { end: Some(NOW + Duration::days(731)), ..Default::default() };
        let error = plan_window(&CredentialPolicy::default(), &request, NOW).unwrap_err().to_string();
        assert!(error.contains("passwordLifetime"), "{error}");
        let request = PasswordRequest { end: Some(NOW + Duration::days(730)), ..Default::default() };
        assert!(plan_window(&CredentialPolicy::default(), &request, NOW).is_ok());
        let strict = CredentialPolicy { max_password_lifetime_days: 90, default_password_lifetime_days: 30, ..Default::default() };
        let request = PasswordRequest { end: Some(NOW + Duration::days(91)), ..Default::default() };
        assert!(plan_window(&strict, &request, NOW).is_err());
    }

    #[test]
    fn policies_block_and_override() {
        let tenant = CredentialPolicy {
            block_password_addition: true,
            block_password_addition_for_apps_created_after: Some(NOW),
            ..Default::default()
        };
        assert!(tenant.check_addition(NOW - Duration::days(1), false).is_ok(), "older applications are exempt");
        let error = tenant.check_addition(NOW + Duration::days(1), false).unwrap_err().to_string();
        assert!(error.contains("passwordAddition"), "{error}");
        let relaxed = tenant.with_override(Some(&PolicyOverride { block_password_addition: Some(false), ..Default::default() }));
        assert!(relaxed.check_addition(NOW + Duration::days(1), false).is_ok());
        let error = CredentialPolicy::default().check_addition(NOW, true).unwrap_err().to_string();
        assert!(error.contains("customPasswordAddition"), "{error}");
        let never = PasswordRequest { end: Some(time::macros::datetime!(2299-12-31 00:00 UTC)), ..Default::default() };
        assert!(plan_window(&CredentialPolicy::default(), &never, NOW).unwrap_err().to_string().contains("expiry policy"));
        let lax = CredentialPolicy { expiry_required: false, ..Default::default() };
        assert!(plan_window(&lax, &never, NOW).is_ok());
    }

    #[test]
    fn windows_in_the_past_are_refused() {
        let request = PasswordRequest { end: Some(NOW - Duration::days(1)), start: Some(NOW - Duration::hours(30)), ..Default::default() };
        assert!(plan_window(&CredentialPolicy::default(), &request, NOW).is_err());
    }

    #[test]
    fn states_follow_the_window() {
        let credential = PasswordCredential {
            key_id: "k".into(),
            display_name: None,
            hint: "abc".into(),
            start: NOW,
            end: NOW + Duration::days(1),
            hash: HashedClientSecret::from_stored(vec![]),
            created_at: NOW,
            usage: None,
        };
        let notice = Duration::hours(2);
        assert_eq!(credential.state(NOW - Duration::seconds(1), notice), CredentialState::NotYetValid);
        assert_eq!(credential.state(NOW, notice), CredentialState::Active);
        assert_eq!(credential.state(NOW + Duration::hours(23), notice), CredentialState::Expiring);
        assert_eq!(credential.state(NOW + Duration::days(1), notice), CredentialState::Expired);
        assert_eq!(credential.unused_days(NOW + Duration::days(3)), 3);
    }
}
