//! ROTATION: scheduled replacement of an application's client secret, published into a vault
//! secret so the applications that read it (or run under `clavis run`) pick the new value up,
//! with an overlap during which the old secret keeps working.
//!
//! The state machine has two states and each transition is one transaction:
//!
//! ```text
//! Idle ──(due)──▶ Overlapping { new, retiring, retire_at }   new secret + vault version + state
//!   ▲                              │
//!   └────────(retire_at passed)────┘                         old secrets removed + state
//! ```
//!
//! A transition's state update is conditional on the state it was computed from, so a crash at
//! any point leaves exactly the state before or after the step, and two nodes running the job
//! at once cannot both rotate.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::credential::PasswordCredential;
use crate::error::{CoreError, Result};

/// When and how an application's secret is rotated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotationPolicy {
    /// Rotate when the newest secret expires within this many days.
    pub rotate_before_expiry_days: Option<i64>,
    /// Or rotate when the newest secret is this many days old.
    pub rotate_every_days: Option<i64>,
    /// Days the previous secret stays valid after a rotation.
    pub overlap_days: i64,
    /// Lifetime of each new secret, in days.
    pub secret_lifetime_days: i64,
    /// The vault that receives each new secret.
    pub vault: String,
    /// The vault secret that receives it (a new version per rotation).
    pub secret_name: String,
}

impl RotationPolicy {
    /// Checks the policy's own consistency.
    pub fn validate(&self) -> Result<()> {
        match (self.rotate_before_expiry_days, self.rotate_every_days) {
            (Some(days), None) | (None, Some(days)) if (1..=3650).contains(&days) => {}
            _ => {
                return Err(CoreError::Invalid(
                    "Give exactly one of rotateBeforeExpiryDays and rotateEveryDays, from 1 to 3650 days.".into(),
                ))
            }
        }
        if !(0..=90).contains(&self.overlap_days) {
            return Err(CoreError::Invalid("overlapDays must be between 0 and 90.".into()));
        }
        if !(1..=3650).contains(&self.secret_lifetime_days) || self.secret_lifetime_days <= self.overlap_days {
            return Err(CoreError::Invalid("secretLifetimeDays must be longer than overlapDays (and at most 3650).".into()));
        }
        if let Some(before) = self.rotate_before_expiry_days {
            if before >= self.secret_lifetime_days {
                return Err(CoreError::Invalid(
                    "rotateBeforeExpiryDays must be shorter than secretLifetimeDays, or every new secret would be due at once.".into(),
                ));
            }
        }
        crate::vault::validate_vault_name(&self.vault)?;
        crate::vault::validate_secret_name(&self.secret_name)
    }

    /// Whether a rotation is due at `now`, given the application's secrets.
    pub fn due(&self, credentials: &[PasswordCredential], now: OffsetDateTime) -> bool {
        let Some(newest) = credentials.iter().max_by_key(|c| c.end) else {
            return true;
        };
        match (self.rotate_before_expiry_days, self.rotate_every_days) {
            (Some(before), _) => newest.end - now <= Duration::days(before),
            (None, Some(every)) => now - newest.start >= Duration::days(every),
            (None, None) => false,
        }
    }
}

/// Where an application's rotation stands.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum RotationState {
    /// Waiting for the next rotation.
    #[default]
    Idle,
    /// A new secret is published; the previous ones still work until `retire_at`.
    Overlapping {
        /// The new secret.
        new_key_id: String,
        /// The secrets to remove when the overlap ends.
        retiring: Vec<String>,
        /// When the overlap ends (Unix seconds).
        retire_at: i64,
    },
}

/// An application's rotation policy and state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotationRecord {
    /// The application (object id).
    pub application_id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// The policy.
    pub policy: RotationPolicy,
    /// The state.
    pub state: RotationState,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clavis_crypto::HashedClientSecret;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);

    fn policy() -> RotationPolicy {
        RotationPolicy {
            rotate_before_expiry_days: Some(30),
            rotate_every_days: None,
            overlap_days: 7,
            secret_lifetime_days: 90,
            vault: "kv1".into(),
            secret_name: "app-secret".into(),
        }
    }

    fn credential(start: OffsetDateTime, end: OffsetDateTime) -> PasswordCredential {
        PasswordCredential {
            key_id: "k".into(),
            display_name: None,
            hint: "abc".into(),
            start,
            end,
            hash: HashedClientSecret::from_stored(vec![]),
            created_at: start,
            usage: None,
        }
    }

    #[test]
    fn due_by_expiry_or_age() {
        let fresh = credential(NOW, NOW + Duration::days(90));
        assert!(!policy().due(std::slice::from_ref(&fresh), NOW));
        assert!(policy().due(std::slice::from_ref(&fresh), NOW + Duration::days(60)));
        assert!(policy().due(&[], NOW), "an application without a secret gets one");
        let every = RotationPolicy { rotate_before_expiry_days: None, rotate_every_days: Some(45), ..policy() };
        assert!(!every.due(std::slice::from_ref(&fresh), NOW + Duration::days(44)));
        assert!(every.due(&[fresh], NOW + Duration::days(45)));
    }

    #[test]
    fn policies_are_checked() {
        assert!(policy().validate().is_ok());
        assert!(RotationPolicy { rotate_every_days: Some(10), ..policy() }.validate().is_err());
        assert!(RotationPolicy { overlap_days: 90, secret_lifetime_days: 90, ..policy() }.validate().is_err());
        assert!(RotationPolicy { rotate_before_expiry_days: Some(90), ..policy() }.validate().is_err());
        assert!(RotationPolicy { secret_name: "bad_name".into(), ..policy() }.validate().is_err());
    }
}
