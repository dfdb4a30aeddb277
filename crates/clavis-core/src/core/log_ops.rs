//! Log operations of [`Core`]: the buffered sign-in and request-failure records, and the
//! troubleshooting built on them (`clavis diagnose`, `clavis app secret check`).

use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

use clavis_crypto::random;

use super::{require, Core};
use crate::error::{CoreError, Result};
use crate::policy::{Authorized, Permission};
use crate::signin::{RequestFailure, SignIn, SignInFilter};

/// Bound on buffered records between flushes; beyond it records are counted as dropped.
const LOG_BUFFER_MAX: usize = 100_000;

/// Buffered log records.
#[derive(Debug, Default)]
pub(super) struct LogBuffer {
    signins: Vec<SignIn>,
    /// Successes aggregated by (tenant, client, secret, resource, address, agent).
    /// Successes aggregated by a hash of (tenant, client, secret, resource, address, agent);
    /// a hash collision with different fields is kept as a separate record.
    successes: std::collections::HashMap<u64, SignIn>,
    failures: Vec<RequestFailure>,
    dropped: u64,
}

impl LogBuffer {
    fn len(&self) -> usize {
        self.signins.len() + self.successes.len() + self.failures.len()
    }
}

fn truncate_in_place(text: &mut String, max_chars: usize) {
    if text.len() > max_chars {
        if let Some((index, _)) = text.char_indices().nth(max_chars) {
            text.truncate(index);
        }
    }
}

impl Core {
    /// Buffers a sign-in record (written by [`Core::flush_logs`]); successes are aggregated.
    pub fn record_signin(&self, mut signin: SignIn) {
        // Client ids are GUIDs; anything else is recorded only as its pseudonym (a secret pasted
        // into the client id field must not land in the log), still correlatable across records.
        if !signin.client_id.is_empty() && !crate::identity::is_guid(&signin.client_id) {
            let pseudonym = self.material.hasher().pseudonym(signin.client_id.as_bytes());
            signin.diagnosis = signin.diagnosis.replace(&signin.client_id, &pseudonym);
            signin.client_id = pseudonym;
        }
        // Bounded and normalized without copying in the common case (short, lower-case values).
        truncate_in_place(&mut signin.client_id, 200);
        if signin.client_id.bytes().any(|b| b.is_ascii_uppercase()) {
            signin.client_id.make_ascii_lowercase();
        }
        truncate_in_place(&mut signin.resource, 500);
        truncate_in_place(&mut signin.user_agent, 200);
        signin.attempts = 1;
        let mut buffer = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        if signin.result == "success" {
            let key = {
                use std::hash::{Hash as _, Hasher as _};
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                (&signin.tenant, &signin.client_id, &signin.key_id, &signin.resource, &signin.client_ip, &signin.user_agent)
                    .hash(&mut hasher);
                hasher.finish()
            };
            if let Some(existing) = buffer.successes.get_mut(&key) {
                if (&existing.tenant, &existing.client_id, &existing.key_id, &existing.resource, &existing.client_ip, &existing.user_agent)
                    == (&signin.tenant, &signin.client_id, &signin.key_id, &signin.resource, &signin.client_ip, &signin.user_agent)
                {
                    existing.attempts += 1;
                    existing.at = signin.at;
                    existing.correlation_id = signin.correlation_id;
                    return;
                }
            }
            if buffer.len() < LOG_BUFFER_MAX {
                signin.id = random::guid();
                if let std::collections::hash_map::Entry::Vacant(slot) = buffer.successes.entry(key) {
                    slot.insert(signin);
                } else {
                    buffer.signins.push(signin);
                }
            } else {
                buffer.dropped += 1;
            }
        } else if buffer.len() < LOG_BUFFER_MAX {
            signin.id = random::guid();
            buffer.signins.push(signin);
        } else {
            buffer.dropped += 1;
        }
    }

    /// Buffers a refused or failed request of the management or vault APIs.
    pub fn record_failure(&self, mut failure: RequestFailure) {
        failure.id = random::guid();
        failure.message = failure.message.chars().take(2000).collect();
        let mut buffer = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        if buffer.len() < LOG_BUFFER_MAX {
            buffer.failures.push(failure);
        } else {
            buffer.dropped += 1;
        }
    }

    /// Records dropped because the buffer was full (a metric).
    pub fn dropped_log_records(&self) -> u64 {
        self.logs.lock().unwrap_or_else(|e| e.into_inner()).dropped
    }

    /// Writes the buffered records in one transaction; on failure they are kept for the next try.
    pub async fn flush_logs(&self) -> Result<usize> {
        let (signins, failures) = {
            let mut buffer = self.logs.lock().unwrap_or_else(|e| e.into_inner());
            let mut signins = std::mem::take(&mut buffer.signins);
            signins.extend(std::mem::take(&mut buffer.successes).into_values());
            (signins, std::mem::take(&mut buffer.failures))
        };
        if signins.is_empty() && failures.is_empty() {
            return Ok(0);
        }
        let count = signins.len() + failures.len();
        if let Err(error) = self.store.append_logs(&signins, &failures).await {
            let mut buffer = self.logs.lock().unwrap_or_else(|e| e.into_inner());
            buffer.signins.splice(0..0, signins);
            buffer.failures.splice(0..0, failures);
            return Err(error);
        }
        Ok(count)
    }

    /// Drops log records past their retention (a job).
    pub async fn purge_logs(&self, retention: Duration) -> Result<u64> {
        self.store.purge_logs(self.now() - retention).await
    }

    /// Sign-ins of the caller's tenant.
    pub async fn signins(&self, auth: &Authorized<'_>, filter: &SignInFilter) -> Result<Vec<SignIn>> {
        require(auth, Permission::Administer)?;
        let tenant = self.tenant_by_id(&auth.principal().tenant_id)?;
        let mut names: Vec<String> = tenant.domains.clone();
        names.push(tenant.id.clone());
        let mut filter = filter.clone();
        // Non-GUID client ids are stored as their pseudonym; a filter by one finds them.
        if let Some(client_id) = filter.client_id.as_mut().filter(|c| !crate::identity::is_guid(c) && !c.starts_with("hmac:")) {
            *client_id = self.material.hasher().pseudonym(client_id.as_bytes());
        }
        Ok(self.store.signins(&filter).await?.into_iter().filter(|s| names.iter().any(|n| n.eq_ignore_ascii_case(&s.tenant))).collect())
    }

    /// Explains a request from its correlation id: the sign-in and failure records carrying it.
    pub async fn diagnose(&self, auth: &Authorized<'_>, correlation_id: &str) -> Result<Value> {
        require(auth, Permission::Administer)?;
        let (signins, failures) = self.store.by_correlation(correlation_id.trim()).await?;
        if signins.is_empty() && failures.is_empty() {
            return Err(CoreError::NotFound(format!(
                "No request with correlation id '{}' is recorded: it may be older than the log retention, may not have reached Clavis, or its records are still buffered (they are written every second).",
                crate::identity::truncate(correlation_id, 80)
            )));
        }
        Ok(json!({"correlationId": correlation_id.trim(), "signIns": signins, "requestFailures": failures}))
    }

    /// Vault secret versions of the caller's tenant whose `exp` is before `until` (the portal's
    /// dashboard), soonest first.
    pub async fn expiring_vault_secrets(&self, auth: &Authorized<'_>, until: OffsetDateTime) -> Result<Vec<crate::events::ExpiringSecret>> {
        require(auth, Permission::Read)?;
        let tenant = &auth.principal().tenant_id;
        let mut expiring: Vec<_> = self.store.expiring_secrets(until).await?.into_iter().filter(|s| &s.tenant_id == tenant).collect();
        expiring.sort_by_key(|s| s.exp);
        Ok(expiring)
    }

    /// Days until each application's nearest client-secret expiry: (tenant, client id, name, days).
    pub async fn nearest_expiries(&self) -> Result<Vec<(String, String, String, f64)>> {
        let now = self.now();
        let mut nearest: std::collections::BTreeMap<String, (String, String, f64)> = std::collections::BTreeMap::new();
        for credential in self.store.expiring_credentials(now + Duration::days(36_500)).await? {
            let days = (credential.end - now).as_seconds_f64() / 86_400.0;
            let entry =
                nearest.entry(credential.app_id.clone()).or_insert((credential.tenant_id.clone(), credential.display_name.clone(), days));
            if days < entry.2 {
                entry.2 = days;
            }
        }
        Ok(nearest.into_iter().map(|(app_id, (tenant, name, days))| (tenant, app_id, name, days)).collect())
    }

    /// Tells whether a secret is valid for an application, without using it: no token is issued
    /// and no use is recorded.
    pub async fn check_secret(&self, auth: &Authorized<'_>, client_id: &str, secret: &str) -> Result<Value> {
        require(auth, Permission::Administer)?;
        let tenant = self.tenant_by_id(&auth.principal().tenant_id)?;
        match self.authenticate_client(&tenant.id, client_id, Some(secret), false, None).await {
            Ok((_, application, key_id)) => {
                let credential = application.password_credentials.iter().find(|c| c.key_id == key_id);
                Ok(json!({
                    "valid": true,
                    "keyId": key_id,
                    "state": credential.map(|c| c.state(self.now(), self.notice_window())),
                    "endDateTime": credential.map(|c| c.end.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()),
                    "diagnosis": "The secret is valid for this application now.",
                }))
            }
            Err(CoreError::Token(error)) => Ok(json!({"valid": false, "diagnosis": error.diagnosis()})),
            Err(other) => Err(other),
        }
    }
}
