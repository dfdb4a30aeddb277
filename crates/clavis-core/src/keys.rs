//! KEYS: the instance's key material in memory (master key, data keys, the client-secret HMAC
//! key) and the per-tenant signing key ring with its rotation schedule.
//!
//! Signing-key rotation (pure, see [`plan_rotation`]): a successor is created `publish_ahead`
//! before it starts signing, so it is in every JWKS before any token carries its `kid`; the
//! predecessor stays published until the last token it signed has expired.

use std::collections::HashMap;
use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use clavis_crypto::signing::UnverifiedJws;
use clavis_crypto::{Algorithm, DataKey, MasterKey, SecretHasher, SigningKey};

use crate::error::{CoreError, Result};
use crate::store::StoredSigningKey;

/// Associated data binding a sealed signing key to its row.
pub fn signing_key_aad(tenant_id: &str, kid: &str) -> Vec<u8> {
    format!("clavis:signing-key:{tenant_id}:{kid}").into_bytes()
}

/// The label a wrapped key is bound to.
pub fn wrapped_key_label(id: &str, purpose: &str) -> String {
    format!("clavis:wrapped-key:{purpose}:{id}")
}

/// The rotation schedule of signing keys.
#[derive(Clone, Copy, Debug)]
pub struct RotationSchedule {
    /// How long a key signs before its successor takes over.
    pub period: Duration,
    /// How long a successor is published before it signs.
    pub publish_ahead: Duration,
    /// How long after its successor takes over a key stays published (the longest token
    /// lifetime plus clock-skew margin).
    pub retain_after: Duration,
}

/// What the ring of one tenant needs next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RotationStep {
    /// Nothing is due.
    Idle,
    /// Create a key with this algorithm that signs from `activate_at`.
    Create { algorithm: Algorithm, activate_at: OffsetDateTime },
}

/// Decides the next step for one tenant's keys. A first key, or a key for a changed algorithm,
/// signs at once; a scheduled successor is created `publish_ahead` before it is due.
pub fn plan_rotation(keys: &[&StoredSigningKey], algorithm: Algorithm, schedule: RotationSchedule, now: OffsetDateTime) -> RotationStep {
    let Some(latest) = keys.iter().max_by_key(|k| k.activate_at) else {
        return RotationStep::Create { algorithm, activate_at: now };
    };
    if latest.activate_at > now {
        return RotationStep::Idle; // a successor is already published and waiting
    }
    if latest.algorithm != algorithm {
        return RotationStep::Create { algorithm, activate_at: now };
    }
    let due = latest.activate_at + schedule.period;
    if now >= due - schedule.publish_ahead {
        // An overdue rotation (the instance was down) still publishes its successor ahead.
        let activate_at = if due > now { due } else { now + schedule.publish_ahead };
        return RotationStep::Create { algorithm, activate_at };
    }
    RotationStep::Idle
}

/// A signing key ready to sign, with its JWS headers pre-encoded.
#[derive(Debug)]
pub struct Signer {
    /// The key.
    pub key: SigningKey,
    /// The v1 header (with `x5t`).
    pub header_v1: String,
    /// The v2 header.
    pub header_v2: String,
    /// When it starts signing.
    pub activate_at: OffsetDateTime,
    /// When it leaves the JWKS, once a successor exists.
    pub expire_at: Option<OffsetDateTime>,
    /// Its tenant.
    pub tenant_id: String,
}

/// All signing keys in memory, by tenant and by `kid`.
#[derive(Debug, Default)]
pub struct KeyRing {
    by_tenant: HashMap<String, Vec<Arc<Signer>>>,
    by_kid: HashMap<String, Arc<Signer>>,
}

impl KeyRing {
    /// Builds the ring from stored keys, decrypting each with its data key.
    pub fn load(stored: &[StoredSigningKey], material: &KeyMaterial) -> Result<Self> {
        let mut ring = Self::default();
        for row in stored {
            let pkcs8 = material.open(&row.data_key_id, &row.sealed, &signing_key_aad(&row.tenant_id, &row.kid))?;
            let key = SigningKey::from_pkcs8(row.algorithm, &pkcs8)?;
            if key.kid() != row.kid {
                return Err(CoreError::Internal(format!("signing key {} does not match its kid", row.kid)));
            }
            let signer = Arc::new(Signer {
                header_v1: key.header_b64(true),
                header_v2: key.header_b64(false),
                key,
                activate_at: row.activate_at,
                expire_at: row.expire_at,
                tenant_id: row.tenant_id.clone(),
            });
            ring.by_kid.insert(row.kid.clone(), signer.clone());
            ring.by_tenant.entry(row.tenant_id.clone()).or_default().push(signer);
        }
        for signers in ring.by_tenant.values_mut() {
            signers.sort_by_key(|s| s.activate_at);
        }
        Ok(ring)
    }

    /// The key that signs for `tenant_id` at `now`: the latest activated key of the tenant's
    /// algorithm (so an algorithm change takes effect at once), else the latest activated key.
    pub fn signer(&self, tenant_id: &str, algorithm: Algorithm, now: OffsetDateTime) -> Option<&Arc<Signer>> {
        let signers = self.by_tenant.get(tenant_id)?;
        let active = || signers.iter().rev().filter(|s| s.activate_at <= now);
        active().find(|s| s.key.algorithm() == algorithm).or_else(|| active().next())
    }

    /// The keys published in `tenant_id`'s JWKS at `now`.
    pub fn published(&self, tenant_id: &str, now: OffsetDateTime) -> Vec<&Arc<Signer>> {
        self.by_tenant
            .get(tenant_id)
            .map(|signers| signers.iter().filter(|s| s.expire_at.is_none_or(|e| e > now)).collect())
            .unwrap_or_default()
    }

    /// The published key a token names by `kid` (never the instance's checkpoint key).
    pub fn verifier(&self, jws: &UnverifiedJws<'_>, now: OffsetDateTime) -> Option<&Arc<Signer>> {
        self.by_kid.get(&jws.kid).filter(|s| !s.tenant_id.is_empty() && s.expire_at.is_none_or(|e| e > now))
    }

    /// The instance's audit-checkpoint key (stored as the signing key of tenant "").
    ///
    /// Whatever its activation time: instance keys are not rotated, and a node whose clock lags
    /// the node that created the key must neither miss it nor create a second one.
    pub fn instance_signer(&self) -> Option<&Arc<Signer>> {
        self.by_tenant.get("")?.last()
    }

    /// Every instance key by kid, for checkpoint verification.
    pub fn instance_key(&self, kid: &str) -> Option<&Arc<Signer>> {
        self.by_kid.get(kid).filter(|s| s.tenant_id.is_empty())
    }
}

/// Unwrapped key material held by a running instance.
pub struct KeyMaterial {
    master: std::sync::RwLock<Arc<MasterKey>>,
    data_keys: HashMap<String, DataKey>,
    active_data_key: String,
    hasher: SecretHasher,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial").field("data_keys", &self.data_keys.len()).finish_non_exhaustive()
    }
}

impl KeyMaterial {
    /// Assembles unwrapped keys.
    pub fn new(master: MasterKey, data_keys: Vec<DataKey>, active_data_key: String, hasher: SecretHasher) -> Self {
        Self {
            master: std::sync::RwLock::new(Arc::new(master)),
            data_keys: data_keys.into_iter().map(|k| (k.id().to_string(), k)).collect(),
            active_data_key,
            hasher,
        }
    }

    /// The master key in use.
    pub fn master(&self) -> Arc<MasterKey> {
        self.master.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Switches to a new master key after its re-wrap committed.
    pub fn replace_master(&self, master: MasterKey) {
        *self.master.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(master);
    }

    /// The client-secret hasher.
    pub fn hasher(&self) -> &SecretHasher {
        &self.hasher
    }

    /// Seals with the active data key; returns the key id and the sealed bytes.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<(String, Vec<u8>)> {
        let key = self.data_keys.get(&self.active_data_key).ok_or_else(|| CoreError::Internal("active data key missing".into()))?;
        Ok((key.id().to_string(), key.seal(plaintext, aad)))
    }

    /// Opens a value sealed by data key `key_id`.
    pub fn open(&self, key_id: &str, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let key = self.data_keys.get(key_id).ok_or_else(|| CoreError::Internal(format!("data key {key_id} is unknown")))?;
        Ok(key.open(sealed, aad)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-06-01 00:00 UTC);

    fn schedule() -> RotationSchedule {
        RotationSchedule { period: Duration::days(90), publish_ahead: Duration::days(1), retain_after: Duration::hours(2) }
    }

    fn key(activate_at: OffsetDateTime, algorithm: Algorithm) -> StoredSigningKey {
        StoredSigningKey {
            kid: "k".into(),
            tenant_id: "t".into(),
            algorithm,
            data_key_id: "d".into(),
            sealed: vec![],
            created_at: activate_at,
            activate_at,
            expire_at: None,
        }
    }

    #[test]
    fn first_key_signs_at_once() {
        assert_eq!(
            plan_rotation(&[], Algorithm::RS256, schedule(), NOW),
            RotationStep::Create { algorithm: Algorithm::RS256, activate_at: NOW }
        );
    }

    #[test]
    fn successor_is_published_a_day_ahead() {
        let current = key(NOW - Duration::days(88), Algorithm::RS256);
        assert_eq!(plan_rotation(&[&current], Algorithm::RS256, schedule(), NOW), RotationStep::Idle);
        let later = NOW + Duration::days(1) + Duration::hours(1);
        assert_eq!(
            plan_rotation(&[&current], Algorithm::RS256, schedule(), later),
            RotationStep::Create { algorithm: Algorithm::RS256, activate_at: NOW + Duration::days(2) }
        );
        let pending = key(NOW + Duration::days(2), Algorithm::RS256);
        assert_eq!(plan_rotation(&[&current, &pending], Algorithm::RS256, schedule(), later), RotationStep::Idle);
    }

    #[test]
    fn overdue_rotation_still_publishes_first() {
        let current = key(NOW - Duration::days(200), Algorithm::ES256);
        match plan_rotation(&[&current], Algorithm::ES256, schedule(), NOW) {
            RotationStep::Create { activate_at, .. } => assert!(activate_at >= NOW),
            RotationStep::Idle => panic!("rotation due"),
        }
    }

    #[test]
    fn algorithm_change_signs_at_once() {
        let current = key(NOW - Duration::days(1), Algorithm::RS256);
        assert_eq!(
            plan_rotation(&[&current], Algorithm::EdDSA, schedule(), NOW),
            RotationStep::Create { algorithm: Algorithm::EdDSA, activate_at: NOW }
        );
    }
}
