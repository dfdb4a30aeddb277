//! Bulk loading of a synthetic data set for benchmarks at scale (`clavis bench-load`):
//! applications with a client secret each, and a vault holding many secrets with many versions.
//!
//! The rows are real: every credential is an HMAC under the instance's key and every version is
//! sealed with its own associated data, so what the benchmark reads back decrypts and what it
//! authenticates verifies. They are written in large batches (multi-row inserts), each batch in
//! one transaction with one audit record saying what it loaded.

use serde_json::json;
use time::Duration;

use clavis_crypto::{random, PlainClientSecret};

use super::{system_context, Core};
use crate::audit::{Actor, Change};
use crate::credential::PasswordCredential;
use crate::error::{CoreError, Result};
use crate::identity::Application;
use crate::store::{Batch, Mutation};
use crate::vault::{self, SecretProperties, SecretVersion, Vault};

/// What to load.
#[derive(Clone, Debug)]
pub struct BulkPlan {
    /// Applications to register, each with one client secret.
    pub applications: usize,
    /// The vault to fill (created when missing).
    pub vault: String,
    /// Secrets in that vault.
    pub secrets: usize,
    /// Versions of each secret.
    pub versions_per_secret: usize,
    /// Bytes of each value.
    pub value_bytes: usize,
}

/// What was loaded: the applications' client ids and the one secret they share, so a benchmark
/// can spread token requests over all of them.
pub struct BulkLoaded {
    /// Client ids of the loaded applications.
    pub client_ids: Vec<String>,
    /// The client secret every loaded application accepts (shown once, like any new secret).
    pub secret: PlainClientSecret,
}

/// Applications per transaction.
const APPLICATIONS_PER_BATCH: usize = 2_000;
/// Secret versions per transaction.
const VERSIONS_PER_BATCH: usize = 20_000;

impl Core {
    /// Loads `plan` into the default tenant. `progress` hears (what, how many so far).
    pub async fn bulk_load(&self, plan: &BulkPlan, progress: impl Fn(&str, usize)) -> Result<BulkLoaded> {
        let tenant = self.default_tenant().ok_or_else(|| CoreError::Internal("no tenant".into()))?;
        let actor = Actor::system("bulkLoad");
        let context = system_context();
        let secret = PlainClientSecret::generate();
        let hash = self.material.hasher().hash(&secret);
        let now = self.now();
        let mut client_ids = Vec::with_capacity(plan.applications);
        let mut loaded = 0;
        while loaded < plan.applications {
            let count = APPLICATIONS_PER_BATCH.min(plan.applications - loaded);
            let applications: Vec<Application> = (0..count)
                .map(|i| Application {
                    id: random::guid(),
                    app_id: random::guid(),
                    tenant_id: tenant.id.clone(),
                    service_principal_id: random::guid(),
                    display_name: format!("bulk-app-{:07}", loaded + i),
                    identifier_uris: Vec::new(),
                    app_roles: Vec::new(),
                    requested_access_token_version: None,
                    password_credentials: vec![PasswordCredential {
                        key_id: random::guid(),
                        display_name: Some("bulk".into()),
                        hint: secret.hint(),
                        start: now,
                        end: now + Duration::days(365),
                        hash: hash.clone(),
                        created_at: now,
                        usage: None,
                    }],
                    builtin: false,
                    credential_policy: None,
                    created_at: now,
                })
                .collect();
            client_ids.extend(applications.iter().map(|a| a.app_id.clone()));
            let change = Change::new(now, &tenant.id, &actor, &context, "bulk.load", "tenant", &tenant.id, json!({"applications": count}));
            self.commit(Batch::one(Mutation::BulkInsert { applications, versions: Vec::new() }, change)).await?;
            loaded += count;
            progress("applications", loaded);
        }

        if plan.secrets > 0 && plan.versions_per_secret > 0 {
            let vault = self.bulk_vault(&tenant.id, &plan.vault, &actor, &context).await?;
            let value = "v".repeat(plan.value_bytes.max(1));
            let total = plan.secrets * plan.versions_per_secret;
            let mut batch_versions = Vec::with_capacity(VERSIONS_PER_BATCH.min(total));
            let mut written = 0;
            for s in 0..plan.secrets {
                let name = format!("bulk-secret-{s:07}");
                for ordinal in 1..=plan.versions_per_secret {
                    let version = random::hex128();
                    let (data_key_id, sealed) =
                        self.material.seal(value.as_bytes(), &vault::value_aad(&tenant.id, &vault.id, &name, &version))?;
                    batch_versions.push(SecretVersion {
                        vault_id: vault.id.clone(),
                        name: name.clone(),
                        version,
                        ordinal: ordinal as i64,
                        data_key_id,
                        sealed,
                        properties: SecretProperties { content_type: None, tags: Default::default(), enabled: true, nbf: None, exp: None },
                        created: now,
                        updated: now,
                    });
                    if batch_versions.len() == VERSIONS_PER_BATCH {
                        written += self.bulk_versions(&tenant.id, &vault, std::mem::take(&mut batch_versions), &actor, &context).await?;
                        progress("secret versions", written);
                    }
                }
            }
            if !batch_versions.is_empty() {
                written += self.bulk_versions(&tenant.id, &vault, batch_versions, &actor, &context).await?;
                progress("secret versions", written);
            }
        }
        Ok(BulkLoaded { client_ids, secret })
    }

    async fn bulk_vault(&self, tenant_id: &str, name: &str, actor: &Actor, context: &crate::audit::RequestContext) -> Result<Vault> {
        vault::validate_vault_name(name)?;
        if let Some(existing) = self.store.vaults(tenant_id).await?.into_iter().find(|v| v.name == name && v.deleted_at.is_none()) {
            return Ok(existing);
        }
        let defaults = vault::VaultSettings::default();
        let vault = Vault {
            id: random::guid(),
            tenant_id: tenant_id.to_string(),
            name: name.to_ascii_lowercase(),
            retention_days: defaults.retention_days,
            purge_protection: defaults.purge_protection,
            enforce_expiry: defaults.enforce_expiry,
            rate_limit: defaults.rate_limit,
            created_at: self.now(),
            deleted_at: None,
        };
        let change = Change::new(self.now(), tenant_id, actor, context, "vault.create", "vault", &vault.name, json!({"bulk": true}));
        self.commit(Batch::one(Mutation::InsertVault(vault.clone()), change)).await?;
        Ok(vault)
    }

    async fn bulk_versions(
        &self,
        tenant_id: &str,
        vault: &Vault,
        versions: Vec<SecretVersion>,
        actor: &Actor,
        context: &crate::audit::RequestContext,
    ) -> Result<usize> {
        let count = versions.len();
        let change =
            Change::new(self.now(), tenant_id, actor, context, "bulk.load", "vault", &vault.name, json!({"secretVersions": count}));
        self.commit(Batch::one(Mutation::BulkInsert { applications: Vec::new(), versions }, change)).await?;
        Ok(count)
    }
}
