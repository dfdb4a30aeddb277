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
    /// Its start is still in the future.
    NotYetValid,
    /// Its end has passed.
    Expired,
}

impl PasswordCredential {
    /// The state at `now`.
    pub fn state(&self, now: OffsetDateTime) -> CredentialState {
        if now < self.start {
            CredentialState::NotYetValid
        } else if now >= self.end {
            CredentialState::Expired
        } else {
            CredentialState::Active
        }
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
}

impl Default for CredentialPolicy {
    fn default() -> Self {
        Self { max_password_lifetime_days: 730, default_password_lifetime_days: 180, max_passwords_per_application: 10 }
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
#[derive(Clone, Debug, Default)]
pub struct PasswordRequest {
    /// A description.
    pub display_name: Option<String>,
    /// Valid from; now when absent.
    pub start: Option<OffsetDateTime>,
    /// Valid until; start + the policy's default lifetime when absent.
    pub end: Option<OffsetDateTime>,
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
        assert_eq!(credential.state(NOW - Duration::seconds(1)), CredentialState::NotYetValid);
        assert_eq!(credential.state(NOW), CredentialState::Active);
        assert_eq!(credential.state(NOW + Duration::days(1)), CredentialState::Expired);
    }
}
