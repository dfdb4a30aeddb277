//! Audit operations of [`Core`]: queries, signed checkpoints and verification of the chain.

use serde_json::{json, Value};

use clavis_crypto::signing::UnverifiedJws;
use clavis_crypto::{Algorithm, SigningKey};

use super::{require, system_context, Core};
use crate::audit::{self, Actor, AuditFilter, AuditRecord, Change, Checkpoint};
use crate::error::{CoreError, Result};
use crate::keys;
use crate::policy::{Authorized, Permission};
use crate::store::{Batch, Mutation, StoredSigningKey};

impl Core {
    /// Creates the instance's checkpoint key (Ed25519) when it has none.
    pub(super) async fn ensure_instance_key(&self) -> Result<()> {
        let now = self.now();
        if self.key_ring().instance_signer().is_some() {
            return Ok(());
        }
        let key = SigningKey::generate(Algorithm::EdDSA)?;
        let (data_key_id, sealed) = self.material.seal(key.pkcs8(), &keys::signing_key_aad("", key.kid()))?;
        let row = StoredSigningKey {
            kid: key.kid().to_string(),
            tenant_id: String::new(),
            algorithm: Algorithm::EdDSA,
            data_key_id,
            sealed,
            created_at: now,
            activate_at: now,
            expire_at: None,
        };
        let change = Change::new(
            now,
            "",
            &Actor::system("startup"),
            &system_context(),
            "auditKey.create",
            "signingKey",
            key.kid(),
            json!({"purpose": "audit checkpoints"}),
        );
        self.commit(Batch::one(Mutation::InsertSigningKey { key: row, retire: Vec::new() }, change)).await
    }

    /// Signs the chain's head if it moved since the last checkpoint (a job). Returns the seq signed.
    pub async fn checkpoint(&self) -> Result<Option<i64>> {
        let head = self.store.audit_head().await?;
        let last = self.store.checkpoints().await?.last().map_or(0, |c| c.seq);
        if head <= last {
            return Ok(None);
        }
        let Some(record) = self.store.audit_records(head - 1, 1).await?.pop() else {
            return Ok(None);
        };
        let now = self.now();
        let ring = self.key_ring();
        let signer = ring.instance_signer().ok_or_else(|| CoreError::Internal("the instance has no checkpoint key".into()))?;
        let payload = json!({"seq": record.seq, "hash": record.hash, "at": now.unix_timestamp()}).to_string();
        let jws = signer.key.sign_compact(&signer.header_v2, payload.as_bytes())?;
        let checkpoint = Checkpoint { seq: record.seq, hash: record.hash, at: now, kid: signer.key.kid().to_string(), jws };
        self.store.insert_checkpoint(&checkpoint).await?;
        Ok(Some(checkpoint.seq))
    }

    /// Audit records of the caller's tenant (and instance-wide ones) matching a filter.
    pub async fn audit_query(&self, auth: &Authorized<'_>, mut filter: AuditFilter) -> Result<Vec<AuditRecord>> {
        require(auth, Permission::Administer)?;
        filter.tenant_id = Some(auth.principal().tenant_id.clone());
        self.store.audit_query(&filter).await
    }

    /// The checkpoints and the public keys that verify them.
    pub async fn audit_checkpoints(&self, auth: &Authorized<'_>) -> Result<(Vec<Checkpoint>, Vec<Value>)> {
        require(auth, Permission::Administer)?;
        let checkpoints = self.store.checkpoints().await?;
        let ring = self.key_ring();
        let mut keys: Vec<Value> =
            checkpoints.iter().filter_map(|c| ring.instance_key(&c.kid)).map(|s| s.key.verifying_key().jwk().clone()).collect();
        keys.dedup();
        Ok((checkpoints, keys))
    }

    /// Verifies the whole chain and every checkpoint signature; reports the first problem.
    pub async fn verify_audit(&self, auth: &Authorized<'_>) -> Result<Value> {
        require(auth, Permission::Administer)?;
        let mut after = 0;
        let mut prev_hash = audit::GENESIS_HASH.to_string();
        let mut hashes = std::collections::HashMap::new();
        let mut first_bad = None;
        loop {
            let page = self.store.audit_records(after, 1000).await?;
            if page.is_empty() {
                break;
            }
            if first_bad.is_none() {
                first_bad = audit::verify_chain(&page, after, prev_hash.clone());
            }
            for record in &page {
                hashes.insert(record.seq, record.hash.clone());
            }
            let last = page.last().map(|r| (r.seq, r.hash.clone())).unwrap_or_default();
            after = last.0;
            prev_hash = last.1;
        }
        let head = self.store.audit_head().await?;
        let ring = self.key_ring();
        let checkpoints = self.store.checkpoints().await?;
        let mut bad_checkpoint = None;
        for checkpoint in &checkpoints {
            let verified = ring.instance_key(&checkpoint.kid).is_some_and(|signer| {
                UnverifiedJws::parse(&checkpoint.jws)
                    .ok()
                    .and_then(|jws| signer.key.verifying_key().verify(&jws).ok())
                    .and_then(|payload| serde_json::from_slice::<Value>(&payload).ok())
                    .is_some_and(|claims| claims["seq"] == checkpoint.seq && claims["hash"] == checkpoint.hash.as_str())
            });
            if !verified || hashes.get(&checkpoint.seq) != Some(&checkpoint.hash) {
                bad_checkpoint = Some(checkpoint.seq);
                break;
            }
        }
        let truncated = after < head || checkpoints.last().is_some_and(|c| c.seq > after);
        let problem = match (first_bad, bad_checkpoint, truncated) {
            (Some(seq), _, _) => {
                Some(format!("record {seq} was altered, removed or reordered: its hash or its link to the previous record does not match"))
            }
            (None, Some(seq), _) => Some(format!("the checkpoint at record {seq} does not verify or no longer matches the record")),
            (None, None, true) => {
                Some(format!("records after {after} are missing: the chain head or a signed checkpoint names a later record"))
            }
            (None, None, false) => None,
        };
        Ok(json!({
            "intact": problem.is_none(),
            "records": after,
            "checkpointsVerified": if bad_checkpoint.is_none() { checkpoints.len() } else { 0 },
            "firstTamperedSeq": first_bad.or(bad_checkpoint),
            "problem": problem,
        }))
    }
}
