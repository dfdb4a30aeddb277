//! The [`Core`] facade: the operations the server, CLI and portal call.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde_json::json;
use time::{Duration, OffsetDateTime};

use clavis_crypto::signing::UnverifiedJws;
use clavis_crypto::{random, Algorithm, DataKey, MasterKey, PlainClientSecret, SecretHasher, SigningKey};

use crate::audit::{Actor, Change, RequestContext};
use crate::cache::{GenMap, Generation};
use crate::clock::Clock;
use crate::credential::{self, CredentialPolicy, NewPassword, PasswordCredential, PasswordRequest};
use crate::error::{CoreError, Result};
use crate::identity::{self, AppRole, AppRoleAssignment, Application, Tenant};
use crate::keys::{self, KeyMaterial, KeyRing, RotationSchedule, RotationStep};
use crate::policy::{self, Authorized, Permission, Principal};
use crate::store::{AssignmentFilter, Batch, Mutation, Store, StoredSigningKey, UsageUpdate, WrappedKey};
use crate::token::{self, AccessTokenClaims, ClientCredentialsRequest, EndpointVersion, IssuedToken, TokenError};
use crate::vault::{Secret, Vault};

mod admin_ops;
mod audit_ops;
mod bulk_ops;
mod event_ops;
mod lifecycle_ops;
mod log_ops;
mod rotation_ops;
mod vault_ops;

pub use admin_ops::AdminPatch;
pub use bulk_ops::{BulkLoaded, BulkPlan};
pub use event_ops::{EventRecord, OutgoingDelivery};
pub use vault_ops::{vault_app_id, PropertiesPatch, SecretValue, VaultPatch, VaultStateChange};

/// Settings the core needs, validated by the binary's configuration.
#[derive(Clone, Debug)]
pub struct CoreSettings {
    /// The public base URL, `https://host[:port]`, without a trailing slash: the issuer's prefix.
    pub public_url: String,
    /// Shortest access-token lifetime (Entra: 60 min).
    pub token_lifetime_min: Duration,
    /// Longest access-token lifetime (Entra: 90 min); each token gets a random lifetime between.
    pub token_lifetime_max: Duration,
    /// Tolerance applied to a credential's start and end at the token endpoint.
    pub credential_clock_skew: Duration,
    /// Throttling of failed client authentications per (client id, address).
    pub auth_throttle: crate::throttle::ThrottleSettings,
    /// Signing-key rotation schedule.
    pub rotation: RotationSchedule,
    /// The default tenant's domain name, created at first start.
    pub default_tenant_domain: String,
    /// The default tenant's display name.
    pub default_tenant_name: String,
    /// The default tenant's signing algorithm.
    pub default_signing_algorithm: Algorithm,
    /// Record vault value reads in the audit log in batches (within a second, not fail-closed)
    /// instead of before each value is returned.
    pub buffered_read_audit: bool,
    /// Days before expiry at which credentials and vault secrets get a near-expiry notice; the
    /// largest is the "expiring" window of credential states.
    pub notice_thresholds_days: Vec<i64>,
    /// The vault resource: the challenge `resource` of every vault and the audience of vault
    /// tokens, `https://vault.{host}[:port]`; vaults are served at `https://{name}.vault.{host}[:port]`.
    pub vault_resource: String,
    /// Portal sessions and sign-in throttling.
    pub portal: crate::admin::PortalSettings,
}

/// The administrator credential created at first start, handed once to the binary, which writes
/// it to a 0600 file for the CLI.
#[derive(Debug)]
pub struct BootstrapCredential {
    /// The default tenant's id.
    pub tenant_id: String,
    /// The default tenant's domain name.
    pub tenant_domain: String,
    /// The bootstrap administrator's client id.
    pub client_id: String,
    /// Its secret, shown once.
    pub client_secret: PlainClientSecret,
    /// Its credential id.
    pub key_id: String,
    /// When the secret expires.
    pub expires_at: OffsetDateTime,
}

/// A new application registration.
#[derive(Clone, Debug, Default)]
pub struct NewApplication {
    /// Its name.
    pub display_name: String,
    /// Application ID URIs.
    pub identifier_uris: Vec<String>,
    /// Roles it defines.
    pub app_roles: Vec<AppRole>,
    /// `api.requestedAccessTokenVersion`.
    pub requested_access_token_version: Option<u8>,
}

/// Changes to an application; absent fields stay as they are.
#[derive(Clone, Debug, Default)]
pub struct ApplicationPatch {
    /// New name.
    pub display_name: Option<String>,
    /// New identifier URIs (the whole list).
    pub identifier_uris: Option<Vec<String>>,
    /// New app roles (the whole list).
    pub app_roles: Option<Vec<AppRole>>,
    /// New token version (`Some(None)` resets to the default).
    pub requested_access_token_version: Option<Option<u8>>,
    /// New credential policy override (`Some(None)` removes it); needs the administrator role.
    pub credential_policy: Option<Option<crate::credential::PolicyOverride>>,
}

/// Counters of the token path, for health and metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct UsageStats {
    /// Usage records waiting to be flushed.
    pub pending: usize,
    /// Usage records dropped because the buffer was full.
    pub dropped: u64,
}

/// A verified access token.
#[derive(Debug)]
pub struct VerifiedToken {
    /// Who it was issued to.
    pub principal: Principal,
    /// Its unique id (`uti`).
    pub uti: String,
    /// Its `iat`.
    pub issued_at: i64,
    /// Its `aud`.
    pub audience: String,
    /// Its `exp`.
    pub exp: i64,
}

/// The claims Clavis reads back from its own tokens.
#[derive(serde::Deserialize)]
struct VerifiedClaims {
    tid: String,
    iss: String,
    aud: String,
    exp: i64,
    #[serde(default)]
    nbf: i64,
    #[serde(default)]
    iat: i64,
    #[serde(default)]
    oid: String,
    azp: Option<String>,
    appid: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    credential_id: String,
    #[serde(default)]
    uti: String,
}

/// Tenants by lower-case id and domain.
#[derive(Debug, Default)]
struct TenantIndex {
    by_key: HashMap<String, Arc<Tenant>>,
}

/// Bound on distinct credentials buffered between usage flushes.
const USAGE_BUFFER_MAX: usize = 100_000;

/// The Clavis domain facade.
pub struct Core {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    settings: CoreSettings,
    material: KeyMaterial,
    ring: RwLock<Arc<KeyRing>>,
    revoked: RwLock<Arc<crate::revocation::RevokedSet>>,
    tenants: RwLock<Arc<TenantIndex>>,
    generation: Generation,
    clients: GenMap<String, Option<Arc<Application>>>,
    resources: GenMap<(String, String), Option<Arc<Application>>>,
    grants: GenMap<(String, String), Arc<Vec<String>>>,
    verified: GenMap<[u8; 32], Arc<VerifiedToken>>,
    vaults: GenMap<String, Option<Arc<Vault>>>,
    vault_grants: GenMap<String, Arc<Vec<crate::policy::VaultRoleAssignment>>>,
    secrets: GenMap<(String, String), Option<Arc<Secret>>>,
    buckets: Mutex<HashMap<String, vault_ops::Bucket>>,
    usage: Mutex<HashMap<String, UsageUpdate>>,
    logs: Mutex<log_ops::LogBuffer>,
    read_audit: vault_ops::ReadAudit,
    usage_dropped: AtomicU64,
    seen_head: AtomicI64,
    /// This node's id, as the holder of job leases.
    node_id: String,
    /// Failed client authentications per (client id, address).
    throttle: crate::throttle::FailureThrottle,
    /// Failed portal sign-ins per (user name, address).
    portal_throttle: crate::throttle::FailureThrottle,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core").field("backend", &self.store.backend()).finish_non_exhaustive()
    }
}

fn system_context() -> RequestContext {
    RequestContext { correlation_id: random::guid(), client_ip: String::new(), user_agent: "clavis".into() }
}

/// Times are kept to the microsecond, the precision both stores hold.
fn truncate_micros(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_nanosecond(at.nanosecond() / 1_000 * 1_000).unwrap_or(at)
}

impl Core {
    /// Opens the instance: unwraps its keys with `master` (creating them on first start), loads
    /// tenants and signing keys, and on first start creates the default tenant and its bootstrap
    /// administrator, whose credential is returned once.
    pub async fn open(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        master: MasterKey,
        settings: CoreSettings,
    ) -> Result<(Self, Option<BootstrapCredential>)> {
        store.lock_startup().await?;
        let opened = Self::initialize(store.clone(), clock, master, settings).await;
        let unlocked = store.unlock_startup().await;
        let opened = opened?;
        unlocked?;
        Ok(opened)
    }

    /// The body of [`Core::open`], run under the start-up lock.
    async fn initialize(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        master: MasterKey,
        settings: CoreSettings,
    ) -> Result<(Self, Option<BootstrapCredential>)> {
        let now = truncate_micros(clock.now());
        let material = Self::open_key_material(store.as_ref(), master, now).await?;
        let throttle = crate::throttle::FailureThrottle::new(settings.auth_throttle);
        let portal_throttle = crate::throttle::FailureThrottle::new(crate::throttle::ThrottleSettings {
            free_failures: settings.portal.sign_in_free_failures,
            ..settings.auth_throttle
        });
        let core = Self {
            store,
            clock,
            settings,
            material,
            ring: RwLock::default(),
            revoked: RwLock::default(),
            tenants: RwLock::default(),
            generation: Generation::default(),
            clients: GenMap::default(),
            resources: GenMap::default(),
            grants: GenMap::default(),
            verified: GenMap::default(),
            vaults: GenMap::default(),
            vault_grants: GenMap::default(),
            secrets: GenMap::default(),
            buckets: Mutex::default(),
            usage: Mutex::default(),
            logs: Mutex::default(),
            read_audit: vault_ops::ReadAudit::default(),
            usage_dropped: AtomicU64::new(0),
            seen_head: AtomicI64::new(0),
            node_id: random::guid(),
            throttle,
            portal_throttle,
        };
        let head = core.store.change_head().await?;
        core.reload().await?;
        let bootstrap = if core.tenants.read().unwrap_or_else(|e| e.into_inner()).by_key.is_empty() {
            Some(core.create_default_tenant().await?)
        } else {
            None
        };
        core.ensure_builtin_applications().await?;
        core.ensure_instance_key().await?;
        core.rotate_signing_keys().await?;
        core.seen_head.store(head, Ordering::Release);
        Ok((core, bootstrap))
    }

    async fn open_key_material(store: &dyn Store, master: MasterKey, now: OffsetDateTime) -> Result<KeyMaterial> {
        let mut rows = store.wrapped_keys().await?;
        if rows.is_empty() {
            let make = |purpose: &str| {
                let id = format!("{purpose}-{}", &random::hex128()[..16]);
                let bytes = random::bytes::<32>();
                let wrapped = master.wrap(&bytes, &keys::wrapped_key_label(&id, purpose));
                WrappedKey { id, purpose: purpose.to_string(), master_key_id: master.id().to_string(), wrapped, created_at: now }
            };
            rows = vec![make("dek"), make("hmac")];
            let change = Change::new(
                now,
                "",
                &Actor::system("startup"),
                &system_context(),
                "keys.initialize",
                "instance",
                "keys",
                json!({"keyIds": rows.iter().map(|r| &r.id).collect::<Vec<_>>(), "masterKeyId": master.id()}),
            );
            store.apply(&Batch::one(Mutation::InsertWrappedKeys(rows.clone()), change)).await?;
        }
        let mut data_keys = Vec::new();
        let mut hasher = None;
        let mut active = None::<(OffsetDateTime, String)>;
        for row in &rows {
            if row.master_key_id != master.id() {
                return Err(CoreError::Invalid(format!(
                    "the master key given ({}) is not the one this store's keys are wrapped with ({}); start Clavis with the master key of this data directory or database",
                    master.id(),
                    row.master_key_id
                )));
            }
            let bytes = master
                .unwrap_key(&row.wrapped, &keys::wrapped_key_label(&row.id, &row.purpose))
                .map_err(|_| CoreError::Invalid(format!("wrapped key {} does not open with the master key {}", row.id, master.id())))?;
            match row.purpose.as_str() {
                "dek" => {
                    if active.as_ref().is_none_or(|(at, _)| row.created_at > *at) {
                        active = Some((row.created_at, row.id.clone()));
                    }
                    data_keys.push(DataKey::new(row.id.clone(), &bytes)?);
                }
                "hmac" => hasher = Some(SecretHasher::new(&bytes)),
                other => return Err(CoreError::Internal(format!("unknown wrapped key purpose {other}"))),
            }
        }
        let (Some(hasher), Some((_, active))) = (hasher, active) else {
            return Err(CoreError::Internal("the store lacks its data key or HMAC key".into()));
        };
        Ok(KeyMaterial::new(master, data_keys, active, hasher))
    }

    /// Takes or renews the job lease `name` for this node for `ttl`: instance-wide jobs run on
    /// the node holding it, and another node takes over once a dead holder's lease ends.
    pub async fn take_lease(&self, name: &str, ttl: Duration) -> Result<bool> {
        let now = self.now();
        self.store.take_lease(name, &self.node_id, now, now + ttl).await
    }

    /// Gives up this node's lease `name` (at shutdown, so another node takes over at once).
    pub async fn release_lease(&self, name: &str) -> Result<()> {
        self.store.release_lease(name, &self.node_id).await
    }

    /// The current time, to the microsecond.
    pub fn now(&self) -> OffsetDateTime {
        truncate_micros(self.clock.now())
    }

    /// The window before expiry in which a credential counts as expiring.
    pub fn notice_window(&self) -> Duration {
        Duration::days(self.settings.notice_thresholds_days.iter().copied().max().unwrap_or(30))
    }

    /// The settings.
    pub fn settings(&self) -> &CoreSettings {
        &self.settings
    }

    /// The store, for health probes.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    // ----- caches and change propagation -------------------------------------------------

    async fn reload(&self) -> Result<()> {
        let tenants = self.store.tenants().await?;
        let mut index = TenantIndex::default();
        for tenant in tenants {
            let tenant = Arc::new(tenant);
            index.by_key.insert(tenant.id.to_ascii_lowercase(), tenant.clone());
            for domain in &tenant.domains {
                index.by_key.insert(domain.to_ascii_lowercase(), tenant.clone());
            }
        }
        let ring = KeyRing::load(&self.store.signing_keys().await?, &self.material)?;
        *self.tenants.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(index);
        *self.ring.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(ring);
        let revoked = crate::revocation::RevokedSet::new(&self.store.revocations().await?);
        *self.revoked.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(revoked);
        Ok(())
    }

    fn invalidate(&self) {
        self.generation.bump();
        self.clients.clear();
        self.resources.clear();
        self.grants.clear();
        self.verified.clear();
        self.vaults.clear();
        self.vault_grants.clear();
        self.secrets.clear();
    }

    /// Applies a batch and drops every cache, so this node never serves what it just changed.
    async fn commit(&self, batch: Batch) -> Result<()> {
        let result = self.store.apply(&batch).await;
        self.invalidate();
        result?;
        if batch.touches_tenants_or_keys() {
            self.reload().await?;
        }
        Ok(())
    }

    /// Picks up changes made by other nodes: when the audit head has moved since the last look,
    /// caches are dropped and tenants and keys reloaded. Called every `poll_interval`; that
    /// interval bounds how long another node's change takes to be seen here.
    pub async fn refresh(&self) -> Result<bool> {
        let head = self.store.change_head().await?;
        if head == self.seen_head.load(Ordering::Acquire) {
            return Ok(false);
        }
        self.invalidate();
        self.reload().await?;
        self.seen_head.store(head, Ordering::Release);
        Ok(true)
    }

    fn tenant_index(&self) -> Arc<TenantIndex> {
        self.tenants.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn key_ring(&self) -> Arc<KeyRing> {
        self.ring.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Finds a tenant by GUID or domain name (case-insensitive).
    pub fn resolve_tenant(&self, tenant: &str) -> Option<Arc<Tenant>> {
        let index = self.tenant_index();
        // Clients send the id as given at registration (lower-case): look it up without copying.
        if let Some(found) = index.by_key.get(tenant) {
            return Some(found.clone());
        }
        index.by_key.get(&tenant.to_ascii_lowercase()).cloned()
    }

    /// Every tenant, once each, in id order.
    fn all_tenants(&self) -> Vec<Arc<Tenant>> {
        let index = self.tenant_index();
        let mut list: Vec<Arc<Tenant>> = index.by_key.values().cloned().collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        list.dedup_by(|a, b| a.id == b.id);
        list
    }

    /// The oldest tenant: the one created at first start.
    pub fn default_tenant(&self) -> Option<Arc<Tenant>> {
        self.tenant_index().by_key.values().min_by_key(|t| (t.created_at, t.id.clone())).cloned()
    }

    /// A tenant by id.
    fn tenant_by_id(&self, tenant_id: &str) -> Result<Arc<Tenant>> {
        self.resolve_tenant(tenant_id).ok_or_else(|| CoreError::NotFound(format!("tenant {tenant_id} not found")))
    }

    async fn client_application(&self, client_id: &str) -> Result<Option<Arc<Application>>> {
        let key = client_id.to_ascii_lowercase();
        if let Some(hit) = self.clients.get(&key) {
            return Ok(hit);
        }
        let generation = self.generation.current();
        let loaded = if identity::is_guid(client_id) { self.store.application_by_client_id(&key).await?.map(Arc::new) } else { None };
        self.clients.insert(&self.generation, generation, key, loaded.clone());
        Ok(loaded)
    }

    async fn resource_application(&self, tenant_id: &str, resource: &str) -> Result<Option<Arc<Application>>> {
        let normalized = token::normalize_resource(resource);
        let key = (tenant_id.to_string(), normalized.clone());
        if let Some(hit) = self.resources.get(&key) {
            return Ok(hit);
        }
        let generation = self.generation.current();
        let by_guid = normalized.strip_prefix("api://").unwrap_or(&normalized);
        let loaded = if normalized == token::normalize_resource(&self.settings.vault_resource) {
            self.store.application(tenant_id, &vault_app_id(tenant_id)).await?
        } else if identity::is_guid(by_guid) {
            self.store.application(tenant_id, by_guid).await?.filter(|a| a.app_id.eq_ignore_ascii_case(by_guid))
        } else {
            self.store.application_by_identifier_uri(tenant_id, &normalized).await?
        };
        let loaded = loaded.map(Arc::new);
        self.resources.insert(&self.generation, generation, key, loaded.clone());
        Ok(loaded)
    }

    async fn granted_roles(&self, tenant_id: &str, client: &Application, resource: &Application) -> Result<Arc<Vec<String>>> {
        let key = (client.service_principal_id.clone(), resource.service_principal_id.clone());
        if let Some(hit) = self.grants.get(&key) {
            return Ok(hit);
        }
        let generation = self.generation.current();
        let filter = AssignmentFilter { principal_id: Some(key.0.clone()), resource_id: Some(key.1.clone()) };
        let assignments = self.store.assignments(tenant_id, &filter).await?;
        let mut roles: Vec<String> = resource
            .app_roles
            .iter()
            .filter(|role| role.is_enabled && assignments.iter().any(|a| a.app_role_id == role.id))
            .map(|role| role.value.clone())
            .collect();
        roles.sort();
        let roles = Arc::new(roles);
        self.grants.insert(&self.generation, generation, key, roles.clone());
        Ok(roles)
    }

    // ----- token service --------------------------------------------------------------------

    /// The client-credentials grant: authenticates the client, resolves the resource and its
    /// granted roles, and signs an access token. Reads only caches on the hot path and records
    /// the credential's use in memory (flushed in batches by [`Core::flush_usage`]).
    pub async fn issue_token(&self, request: &ClientCredentialsRequest<'_>) -> Result<IssuedToken> {
        let (tenant, client, key_id) = self
            .authenticate_client(request.tenant, request.client_id, request.client_secret, request.has_assertion, Some(request.client_ip))
            .await?;
        let now = self.now();
        let requested = match request.endpoint {
            EndpointVersion::V2 => token::resource_of_scope(request.scope.unwrap_or(""))?,
            EndpointVersion::V1 => match request.resource.map(str::trim) {
                Some(resource) if !resource.is_empty() => resource.to_string(),
                _ => return Err(TokenError::MissingParameter("resource").into()),
            },
        };
        let Some(resource) = self.resource_application(&tenant.id, &requested).await? else {
            return Err(TokenError::UnknownResource { resource: requested, tenant: request.tenant.to_string() }.into());
        };
        let roles = self.granted_roles(&tenant.id, &client, &resource).await?;
        let issued = self.sign_token(&tenant, &client, &resource, &requested, &roles, &key_id, now)?;
        self.note_use(&key_id, now, request.client_ip);
        Ok(issued)
    }

    /// Authenticates a client by its secret in a tenant (token, introspection and revocation
    /// endpoints). Returns the tenant, the application and the `keyId` of the matching secret.
    /// With the caller's address, failures (unknown client, wrong secret) are throttled per
    /// (client id, address); without one (an administrator's check) nothing is counted.
    pub async fn authenticate_client(
        &self,
        tenant: &str,
        client_id: &str,
        secret: Option<&str>,
        has_assertion: bool,
        client_ip: Option<&str>,
    ) -> Result<(Arc<Tenant>, Arc<Application>, String)> {
        let Some(address) = client_ip else {
            return self.match_client_secret(tenant, client_id, secret, has_assertion).await;
        };
        let now = self.now();
        if let Some(wait) = self.throttle.wait(client_id, address, now) {
            let retry_after_seconds = (wait.whole_milliseconds() as i64 + 999) / 1000;
            return Err(TokenError::Throttled { client_id: client_id.to_string(), retry_after_seconds }.into());
        }
        let result = self.match_client_secret(tenant, client_id, secret, has_assertion).await;
        match &result {
            Ok(_) => self.throttle.succeeded(client_id, address),
            Err(CoreError::Token(TokenError::InvalidSecret { .. } | TokenError::UnknownClient { .. })) => {
                self.throttle.failed(client_id, address, now);
            }
            Err(_) => {}
        }
        result
    }

    async fn match_client_secret(
        &self,
        tenant: &str,
        client_id: &str,
        secret: Option<&str>,
        has_assertion: bool,
    ) -> Result<(Arc<Tenant>, Arc<Application>, String)> {
        let started = std::time::Instant::now();
        let result = self.compare_client_secret(tenant, client_id, secret, has_assertion).await;
        if matches!(
            result,
            Err(CoreError::Token(TokenError::TenantNotFound(_) | TokenError::UnknownClient { .. } | TokenError::InvalidSecret { .. }))
        ) {
            // The three failures do the same work, but not to the nanosecond (a map miss here, an
            // allocation there). Each answers no sooner than a fixed floor above all three, so
            // their times are one distribution. Measured with a monotonic clock: this is about
            // elapsed work, not the domain's time.
            while started.elapsed() < FAILURE_FLOOR {
                std::hint::spin_loop();
            }
        }
        result
    }

    async fn compare_client_secret(
        &self,
        tenant: &str,
        client_id: &str,
        secret: Option<&str>,
        has_assertion: bool,
    ) -> Result<(Arc<Tenant>, Arc<Application>, String)> {
        if matches!(tenant.to_ascii_lowercase().as_str(), "common" | "organizations" | "consumers") {
            return Err(TokenError::TenantIndependentEndpoint.into());
        }
        let found = self.resolve_tenant(tenant);
        // Equal work: the secret is hashed, the client looked up and the hash compared whatever
        // the tenant and client turn out to be, so an unknown tenant, an unknown client and a
        // wrong secret cost the same and differ only in the answer.
        let presented = secret.map(|s| self.material.hasher().hash_presented(s.as_bytes()));
        let client = if client_id.is_empty() { None } else { self.client_application(client_id).await? };
        let matched = presented.as_ref().and_then(|presented| {
            let candidates = client.as_ref().map(|c| c.password_credentials.as_slice()).unwrap_or(&[]);
            if candidates.is_empty() {
                let _ = SecretHasher::matches(presented, decoy_tag());
            }
            // Every candidate is compared, not only up to the first match.
            candidates
                .iter()
                .enumerate()
                .fold(None, |hit, (i, c)| if SecretHasher::matches(presented, &c.hash) && hit.is_none() { Some(i) } else { hit })
        });
        let Some(found) = found else {
            return Err(TokenError::TenantNotFound(tenant.to_string()).into());
        };
        if client_id.is_empty() {
            return Err(TokenError::MissingParameter("client_id").into());
        }
        let Some(client) = client.filter(|app| app.tenant_id == found.id) else {
            return Err(TokenError::UnknownClient { client_id: client_id.to_string(), tenant: tenant.to_string() }.into());
        };
        if presented.is_none() {
            return Err(if has_assertion {
                TokenError::AssertionNotSupported { app_id: client.app_id.clone() }
            } else {
                TokenError::MissingCredential
            }
            .into());
        }
        let now = self.now();
        let Some(credential) = matched.map(|i| &client.password_credentials[i]) else {
            return Err(TokenError::InvalidSecret { app_id: client.app_id.clone() }.into());
        };
        let skew = self.settings.credential_clock_skew;
        if now >= credential.end + skew {
            return Err(TokenError::ExpiredSecret {
                app_id: client.app_id.clone(),
                key_id: credential.key_id.clone(),
                expired_at: credential.end,
            }
            .into());
        }
        if now + skew < credential.start {
            return Err(TokenError::SecretNotYetValid {
                app_id: client.app_id.clone(),
                key_id: credential.key_id.clone(),
                valid_from: credential.start,
            }
            .into());
        }
        let key_id = credential.key_id.clone();
        Ok((found, client, key_id))
    }

    #[allow(clippy::too_many_arguments)]
    fn sign_token(
        &self,
        tenant: &Tenant,
        client: &Application,
        resource: &Application,
        requested: &str,
        roles: &[String],
        key_id: &str,
        now: OffsetDateTime,
    ) -> Result<IssuedToken> {
        let ring = self.key_ring();
        let signer = ring
            .signer(&tenant.id, tenant.signing_algorithm, now)
            .ok_or_else(|| CoreError::Internal(format!("tenant {} has no active signing key", tenant.id)))?;
        // One CSPRNG draw for everything random in a token: lifetime jitter, uti, aio and rh.
        let noise = random::bytes::<{ 8 + 16 + 24 + 12 }>();
        let (jitter, rest) = noise.split_at(8);
        let (uti, rest) = rest.split_at(16);
        let (aio, rh) = rest.split_at(24);
        let min = self.settings.token_lifetime_min.whole_seconds();
        let span = (self.settings.token_lifetime_max.whole_seconds() - min + 1).max(1) as u64;
        let lifetime = min + (u64::from_le_bytes(jitter.try_into().unwrap_or_default()) % span) as i64;
        let now_s = now.unix_timestamp();
        let exp = now_s + lifetime;
        let issued_at = now_s - 300;
        let v2 = resource.token_version() == 2;
        let base = &self.settings.public_url;
        let iss = if v2 { format!("{base}/{}/v2.0", tenant.id) } else { format!("{base}/{}/", tenant.id) };
        let uti = clavis_crypto::b64url(uti);
        let aio = clavis_crypto::b64url(aio);
        let rh = format!("0.{}", clavis_crypto::b64url(rh));
        let claims = AccessTokenClaims {
            aud: if v2 { &resource.app_id } else { requested },
            iss: &iss,
            iat: issued_at,
            nbf: issued_at,
            exp,
            aio: &aio,
            azp: v2.then_some(client.app_id.as_str()),
            azpacr: v2.then_some("1"),
            appid: (!v2).then_some(client.app_id.as_str()),
            appidacr: (!v2).then_some("1"),
            app_displayname: (!v2).then_some(client.display_name.as_str()),
            idp: (!v2).then_some(iss.as_str()),
            idtyp: "app",
            oid: &client.service_principal_id,
            rh: &rh,
            roles,
            sub: &client.service_principal_id,
            tid: &tenant.id,
            uti: &uti,
            ver: if v2 { "2.0" } else { "1.0" },
            credential_id: key_id,
        };
        let payload = serde_json::to_vec(&claims).map_err(|e| CoreError::Internal(e.to_string()))?;
        let header = if v2 { &signer.header_v2 } else { &signer.header_v1 };
        let access_token = signer.key.sign_compact(header, &payload)?;
        Ok(IssuedToken {
            access_token,
            expires_in: exp - now_s,
            expires_on: exp,
            not_before: issued_at,
            resource: requested.to_string(),
            tenant_id: tenant.id.clone(),
            key_id: key_id.to_string(),
        })
    }

    fn note_use(&self, key_id: &str, at: OffsetDateTime, ip: &str) {
        let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = usage.get_mut(key_id) {
            entry.count += 1;
            entry.at = at;
            if entry.ip != ip {
                entry.ip = ip.to_string();
            }
        } else if usage.len() < USAGE_BUFFER_MAX {
            usage.insert(key_id.to_string(), UsageUpdate { key_id: key_id.to_string(), at, ip: ip.to_string(), count: 1 });
        } else {
            self.usage_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Writes the buffered last-use records in one batch. Called every `usage_flush_interval`,
    /// which bounds how stale "last used" can be; a crash loses at most one interval of usage.
    pub async fn flush_usage(&self) -> Result<usize> {
        let batch: Vec<UsageUpdate> = {
            let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
            usage.drain().map(|(_, v)| v).collect()
        };
        if batch.is_empty() {
            return Ok(0);
        }
        if let Err(error) = self.store.record_usage(&batch).await {
            // Put the batch back so a passing store failure loses nothing.
            let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
            for update in batch {
                usage.entry(update.key_id.clone()).and_modify(|e| e.count += update.count).or_insert(update);
            }
            return Err(error);
        }
        Ok(batch.len())
    }

    /// Counters of the usage buffer.
    pub fn usage_stats(&self) -> UsageStats {
        UsageStats {
            pending: self.usage.lock().unwrap_or_else(|e| e.into_inner()).len(),
            dropped: self.usage_dropped.load(Ordering::Relaxed),
        }
    }

    /// The JWKS of a tenant: every published key.
    pub fn jwks(&self, tenant: &Tenant) -> serde_json::Value {
        let ring = self.key_ring();
        let issuer = format!("{}/{}/v2.0", self.settings.public_url, tenant.id);
        let keys: Vec<serde_json::Value> = ring
            .published(&tenant.id, self.now())
            .into_iter()
            .map(|signer| {
                let mut jwk = signer.key.verifying_key().jwk().clone();
                jwk["issuer"] = json!(issuer);
                jwk
            })
            .collect();
        json!({ "keys": keys })
    }

    /// Verifies a bearer token issued by this instance (signature with a published key of the
    /// signing tenant, issuer, expiry, not-before) and returns its principal and audience.
    /// Verified tokens are cached by their SHA-256 until they expire or any state changes.
    pub fn verify_token(&self, bearer: &str) -> Result<Arc<VerifiedToken>> {
        let now = self.now();
        let now_s = now.unix_timestamp();
        let digest = clavis_crypto::sha256(bearer.as_bytes());
        if let Some(hit) = self.verified.get(&digest) {
            if hit.exp > now_s {
                return Ok(hit);
            }
            self.verified.remove(&digest);
        }
        let generation = self.generation.current();
        let unauthenticated = |why: &str| CoreError::Unauthenticated(why.to_string());
        let jws = UnverifiedJws::parse(bearer).map_err(|_| unauthenticated("The access token is malformed."))?;
        let ring = self.key_ring();
        let signer = ring
            .verifier(&jws, now)
            .ok_or_else(|| unauthenticated("The access token's signing key is not known to this Clavis instance."))?;
        let payload = signer.key.verifying_key().verify(&jws).map_err(|_| unauthenticated("The access token's signature is invalid."))?;
        let claims: VerifiedClaims =
            serde_json::from_slice(&payload).map_err(|_| unauthenticated("The access token's claims are malformed."))?;
        if claims.tid != signer.tenant_id {
            return Err(unauthenticated("The access token was signed by another tenant's key."));
        }
        let base = &self.settings.public_url;
        let tid = &claims.tid;
        if claims.iss != format!("{base}/{tid}/v2.0") && claims.iss != format!("{base}/{tid}/") {
            return Err(unauthenticated("The access token's issuer is not this Clavis instance."));
        }
        if claims.exp <= now_s {
            return Err(unauthenticated("The access token has expired."));
        }
        if claims.nbf > now_s + 300 {
            return Err(unauthenticated("The access token is not valid yet."));
        }
        if self.revoked.read().unwrap_or_else(|e| e.into_inner()).covers(&claims.credential_id, &claims.uti) {
            return Err(unauthenticated("The access token has been revoked."));
        }
        let verified = Arc::new(VerifiedToken {
            principal: Principal {
                tenant_id: claims.tid,
                service_principal_id: claims.oid,
                app_id: claims.azp.or(claims.appid).unwrap_or_default(),
                roles: claims.roles,
                credential_id: claims.credential_id,
                user: None,
            },
            audience: claims.aud,
            exp: claims.exp,
            uti: claims.uti,
            issued_at: claims.iat,
        });
        self.verified.insert(&self.generation, generation, digest, verified.clone());
        Ok(verified)
    }

    /// Verifies a bearer token for the management API (audience `api://clavis` or its client id).
    pub fn authenticate(&self, bearer: &str) -> Result<Principal> {
        let verified = self.verify_token(bearer)?;
        let aud = &verified.audience;
        if !(aud.eq_ignore_ascii_case(&management_app_id(&verified.principal.tenant_id))
            || token::normalize_resource(aud) == policy::MANAGEMENT_API_URI)
        {
            return Err(CoreError::Unauthenticated(format!(
                "The access token's audience is not the management API; request a token for {}/.default.",
                policy::MANAGEMENT_API_URI
            )));
        }
        Ok(verified.principal.clone())
    }

    // ----- background jobs --------------------------------------------------------------------

    /// Creates signing keys that are due (first keys, scheduled successors, algorithm changes)
    /// and drops keys past their publication. Idempotent.
    pub async fn rotate_signing_keys(&self) -> Result<usize> {
        let now = self.now();
        let stored = self.store.signing_keys().await?;
        let mut created = 0;
        for tenant in self.all_tenants() {
            let own: Vec<&StoredSigningKey> = stored.iter().filter(|k| k.tenant_id == tenant.id).collect();
            if let RotationStep::Create { algorithm, activate_at } =
                keys::plan_rotation(&own, tenant.signing_algorithm, self.settings.rotation, now)
            {
                let key = SigningKey::generate(algorithm)?;
                let (data_key_id, sealed) = self.material.seal(key.pkcs8(), &keys::signing_key_aad(&tenant.id, key.kid()))?;
                let retire_at = activate_at + self.settings.rotation.retain_after;
                let retire: Vec<(String, OffsetDateTime)> =
                    own.iter().filter(|k| k.expire_at.is_none()).map(|k| (k.kid.clone(), retire_at)).collect();
                let row = StoredSigningKey {
                    kid: key.kid().to_string(),
                    tenant_id: tenant.id.clone(),
                    algorithm,
                    data_key_id,
                    sealed,
                    created_at: now,
                    activate_at,
                    expire_at: None,
                };
                let change = Change::new(
                    now,
                    &tenant.id,
                    &Actor::system("scheduler"),
                    &system_context(),
                    "signingKey.create",
                    "signingKey",
                    key.kid(),
                    json!({"algorithm": algorithm.as_str(), "activateAt": activate_at.unix_timestamp(), "retired": retire.iter().map(|r| &r.0).collect::<Vec<_>>()}),
                );
                self.commit(Batch::one(Mutation::InsertSigningKey { key: row, retire }, change)).await?;
                created += 1;
            }
        }
        if stored.iter().any(|k| k.expire_at.is_some_and(|e| e <= now)) {
            let change = Change::new(
                now,
                "",
                &Actor::system("scheduler"),
                &system_context(),
                "signingKey.deleteExpired",
                "signingKey",
                "",
                json!({}),
            );
            self.commit(Batch::one(Mutation::DeleteExpiredSigningKeys(now), change)).await?;
        }
        Ok(created)
    }

    /// Re-wraps every wrapped key under `new_master` in one transaction, then switches to it.
    /// Data sealed under data keys is untouched, so this is quick and safe while serving.
    pub async fn rotate_master_key(&self, auth: &Authorized<'_>, context: &RequestContext, new_master: MasterKey) -> Result<String> {
        require(auth, Permission::Administer)?;
        let old = self.material.master();
        if old.id() == new_master.id() {
            return Err(CoreError::Invalid("the new master key is the one already in use".into()));
        }
        let now = self.now();
        let mut rows = self.store.wrapped_keys().await?;
        for row in &mut rows {
            let label = keys::wrapped_key_label(&row.id, &row.purpose);
            let bytes = old.unwrap_key(&row.wrapped, &label)?;
            row.wrapped = new_master.wrap(&bytes, &label);
            row.master_key_id = new_master.id().to_string();
        }
        let change = Change::new(
            now,
            &auth.principal().tenant_id,
            &actor(auth),
            context,
            "masterKey.rotate",
            "instance",
            "keys",
            json!({"from": old.id(), "to": new_master.id(), "rewrapped": rows.len()}),
        );
        self.commit(Batch::one(Mutation::RewrapKeys { expected_master_key_id: old.id().to_string(), keys: rows }, change)).await?;
        let id = new_master.id().to_string();
        self.material.replace_master(new_master);
        Ok(id)
    }

    /// The id of the master key in use.
    pub fn master_key_id(&self) -> String {
        self.material.master().id().to_string()
    }

    // ----- first start ------------------------------------------------------------------------

    /// Creates the built-in applications a tenant lacks (tenants created before a built-in
    /// existed get it at the next start). Idempotent.
    async fn ensure_builtin_applications(&self) -> Result<()> {
        let now = self.now();
        let mut batch = Batch::default();
        for tenant in self.all_tenants() {
            if self.store.application(&tenant.id, &vault_app_id(&tenant.id)).await?.is_none() {
                let application = Application {
                    id: random::guid(),
                    app_id: vault_app_id(&tenant.id),
                    tenant_id: tenant.id.clone(),
                    service_principal_id: random::guid(),
                    display_name: "Clavis Vault".to_string(),
                    identifier_uris: Vec::new(),
                    app_roles: Vec::new(),
                    requested_access_token_version: None,
                    password_credentials: Vec::new(),
                    builtin: true,
                    credential_policy: None,
                    created_at: now,
                };
                let change = Change::new(
                    now,
                    &tenant.id,
                    &Actor::system("startup"),
                    &system_context(),
                    "application.create",
                    "application",
                    &application.id,
                    json!({"displayName": application.display_name, "appId": application.app_id}),
                );
                batch.push(Mutation::InsertApplication(application), change);
            }
        }
        if batch.mutations.is_empty() {
            return Ok(());
        }
        self.commit(batch).await
    }

    async fn create_default_tenant(&self) -> Result<BootstrapCredential> {
        let now = self.now();
        let tenant_id = random::guid();
        let system = Actor::system("startup");
        let context = system_context();
        let tenant = Tenant {
            id: tenant_id.clone(),
            display_name: self.settings.default_tenant_name.clone(),
            domains: vec![self.settings.default_tenant_domain.to_ascii_lowercase()],
            signing_algorithm: self.settings.default_signing_algorithm,
            policy: CredentialPolicy::default(),
            created_at: now,
        };
        let mut batch = Batch::default();
        let change = |action: &str, target_type: &str, target_id: &str, details: serde_json::Value| {
            Change::new(now, &tenant_id, &system, &context, action, target_type, target_id, details)
        };
        batch.push(
            Mutation::InsertTenant(tenant.clone()),
            change("tenant.create", "tenant", &tenant_id, json!({"domains": tenant.domains})),
        );

        let management = Application {
            id: random::guid(),
            app_id: management_app_id(&tenant_id),
            tenant_id: tenant_id.clone(),
            service_principal_id: random::guid(),
            display_name: policy::MANAGEMENT_API_NAME.to_string(),
            identifier_uris: vec![policy::MANAGEMENT_API_URI.to_string()],
            app_roles: policy::management_roles(),
            requested_access_token_version: Some(2),
            password_credentials: Vec::new(),
            builtin: true,
            credential_policy: None,
            created_at: now,
        };
        batch.push(
            Mutation::InsertApplication(management.clone()),
            change(
                "application.create",
                "application",
                &management.id,
                json!({"displayName": management.display_name, "appId": management.app_id}),
            ),
        );

        let admin = Application {
            id: random::guid(),
            app_id: random::guid(),
            tenant_id: tenant_id.clone(),
            service_principal_id: random::guid(),
            display_name: "Clavis bootstrap administrator".to_string(),
            identifier_uris: Vec::new(),
            app_roles: Vec::new(),
            requested_access_token_version: None,
            password_credentials: Vec::new(),
            builtin: false,
            credential_policy: None,
            created_at: now,
        };
        batch.push(
            Mutation::InsertApplication(admin.clone()),
            change("application.create", "application", &admin.id, json!({"displayName": admin.display_name, "appId": admin.app_id})),
        );

        let request = PasswordRequest {
            custom_value: None,
            display_name: Some("bootstrap".into()),
            start: None,
            end: Some(now + Duration::days(tenant.policy.max_password_lifetime_days)),
        };
        let new_password = self.new_password(&tenant.policy, request, now)?;
        let credential = new_password.credential.clone();
        batch.push(
            Mutation::AddPassword {
                tenant_id: tenant_id.clone(),
                application_id: admin.id.clone(),
                credential: credential.clone(),
                max: tenant.policy.max_passwords_per_application,
            },
            password_change(change("credential.add", "application", &admin.id, password_details(&credential)), &admin, &credential),
        );

        let assignment = AppRoleAssignment {
            id: random::guid(),
            tenant_id: tenant_id.clone(),
            principal_id: admin.service_principal_id.clone(),
            resource_id: management.service_principal_id.clone(),
            app_role_id: policy::management_roles()[0].id.clone(),
            created_date_time: now,
        };
        batch.push(
            Mutation::InsertAssignment(assignment.clone()),
            change(
                "appRoleAssignment.create",
                "appRoleAssignment",
                &assignment.id,
                json!({"role": policy::ROLE_ADMINISTRATOR, "principalId": assignment.principal_id}),
            ),
        );
        let vault_admin = crate::policy::VaultRoleAssignment {
            id: random::guid(),
            tenant_id: tenant_id.clone(),
            principal_id: admin.service_principal_id.clone(),
            role: crate::policy::VaultRole::Administrator,
            scope: "/".into(),
            created_at: now,
        };
        batch.push(
            Mutation::InsertVaultAssignment(vault_admin.clone()),
            change(
                "vaultRoleAssignment.create",
                "vaultRoleAssignment",
                &vault_admin.id,
                json!({"role": vault_admin.role.name(), "scope": "/"}),
            ),
        );
        self.commit(batch).await?;
        Ok(BootstrapCredential {
            tenant_id,
            tenant_domain: tenant.domains[0].clone(),
            client_id: admin.app_id,
            client_secret: new_password.secret,
            key_id: credential.key_id,
            expires_at: credential.end,
        })
    }

    fn new_password(&self, policy: &CredentialPolicy, request: PasswordRequest, now: OffsetDateTime) -> Result<NewPassword> {
        let display_name = credential::validate_description(request.display_name.as_deref())?;
        let (start, end) = credential::plan_window(policy, &request, now)?;
        let secret = request.custom_value.unwrap_or_else(PlainClientSecret::generate);
        let credential = PasswordCredential {
            key_id: random::guid(),
            display_name,
            hint: secret.hint(),
            start: truncate_micros(start),
            end: truncate_micros(end),
            hash: self.material.hasher().hash(&secret),
            created_at: now,
            usage: None,
        };
        Ok(NewPassword { credential, secret })
    }

    // ----- management operations ----------------------------------------------------------------

    /// Checks a permission and returns the capability the operations below take.
    pub fn authorize<'a>(&self, principal: &'a Principal, permission: Permission) -> Result<Authorized<'a>> {
        policy::authorize(principal, permission)
    }

    /// The caller's tenant.
    pub fn tenant(&self, auth: &Authorized<'_>) -> Result<Arc<Tenant>> {
        require(auth, Permission::Read)?;
        self.tenant_by_id(&auth.principal().tenant_id)
    }

    /// Changes the caller's tenant: its signing algorithm (a new key signs at once; the old one
    /// stays published until its tokens expire) and its credential policy.
    pub async fn update_tenant(
        &self,
        auth: &Authorized<'_>,
        context: &RequestContext,
        algorithm: Option<Algorithm>,
        policy: Option<CredentialPolicy>,
    ) -> Result<Arc<Tenant>> {
        require(auth, Permission::Administer)?;
        let mut tenant = (*self.tenant_by_id(&auth.principal().tenant_id)?).clone();
        if let Some(policy) = policy {
            policy.validate()?;
            tenant.policy = policy;
        }
        if let Some(algorithm) = algorithm {
            tenant.signing_algorithm = algorithm;
        }
        let change = Change::new(
            self.now(),
            &tenant.id,
            &actor(auth),
            context,
            "tenant.update",
            "tenant",
            &tenant.id,
            json!({"signingAlgorithm": tenant.signing_algorithm.as_str(), "policy": tenant.policy}),
        );
        self.commit(Batch::one(Mutation::UpdateTenant(tenant.clone()), change)).await?;
        self.rotate_signing_keys().await?;
        self.tenant_by_id(&tenant.id)
    }

    /// The applications of the caller's tenant.
    pub async fn applications(&self, auth: &Authorized<'_>) -> Result<Vec<Application>> {
        require(auth, Permission::Read)?;
        self.store.applications(&auth.principal().tenant_id).await
    }

    /// One application by object id or client id.
    pub async fn application(&self, auth: &Authorized<'_>, id: &str) -> Result<Application> {
        require(auth, Permission::Read)?;
        self.find_application(&auth.principal().tenant_id, id).await
    }

    async fn find_application(&self, tenant_id: &str, id: &str) -> Result<Application> {
        if !identity::is_guid(id) {
            return Err(CoreError::NotFound(format!(
                "Application '{}' was not found: an application is named by its object id or application (client) id, both GUIDs.",
                identity::truncate(id, 60)
            )));
        }
        self.store
            .application(tenant_id, &id.to_ascii_lowercase())
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("Application '{id}' was not found in this tenant.")))
    }

    /// Registers an application (and its service principal).
    pub async fn create_application(&self, auth: &Authorized<'_>, context: &RequestContext, new: NewApplication) -> Result<Application> {
        require(auth, Permission::WriteApplications)?;
        let display_name = identity::validate_display_name(&new.display_name)?;
        let identifier_uris = identity::validate_identifier_uris(&new.identifier_uris)?;
        identity::validate_app_roles(&new.app_roles)?;
        validate_token_version(new.requested_access_token_version)?;
        let now = self.now();
        let application = Application {
            id: random::guid(),
            app_id: random::guid(),
            tenant_id: auth.principal().tenant_id.clone(),
            service_principal_id: random::guid(),
            display_name,
            identifier_uris,
            app_roles: new.app_roles,
            requested_access_token_version: new.requested_access_token_version,
            password_credentials: Vec::new(),
            builtin: false,
            credential_policy: None,
            created_at: now,
        };
        let change = Change::new(
            now,
            &application.tenant_id,
            &actor(auth),
            context,
            "application.create",
            "application",
            &application.id,
            json!({"displayName": application.display_name, "appId": application.app_id, "identifierUris": application.identifier_uris}),
        );
        self.commit(Batch::one(Mutation::InsertApplication(application.clone()), change)).await?;
        Ok(application)
    }

    /// Changes an application's name, identifier URIs, app roles or token version.
    pub async fn update_application(
        &self,
        auth: &Authorized<'_>,
        context: &RequestContext,
        id: &str,
        patch: ApplicationPatch,
    ) -> Result<Application> {
        require(auth, Permission::WriteApplications)?;
        let mut application = self.find_application(&auth.principal().tenant_id, id).await?;
        if application.builtin {
            return Err(CoreError::Forbidden(format!("'{}' is built into Clavis and cannot be changed.", application.display_name)));
        }
        if let Some(name) = patch.display_name {
            application.display_name = identity::validate_display_name(&name)?;
        }
        if let Some(uris) = patch.identifier_uris {
            application.identifier_uris = identity::validate_identifier_uris(&uris)?;
        }
        if let Some(roles) = patch.app_roles {
            identity::validate_app_roles(&roles)?;
            application.app_roles = roles;
        }
        if let Some(changes) = patch.credential_policy {
            require(auth, Permission::Administer)?;
            if let Some(changes) = &changes {
                self.tenant_by_id(&application.tenant_id)?.policy.with_override(Some(changes)).validate()?;
            }
            application.credential_policy = changes;
        }
        if let Some(version) = patch.requested_access_token_version {
            validate_token_version(version)?;
            application.requested_access_token_version = version;
        }
        let change = Change::new(
            self.now(),
            &application.tenant_id,
            &actor(auth),
            context,
            "application.update",
            "application",
            &application.id,
            json!({"displayName": application.display_name, "identifierUris": application.identifier_uris, "appRoles": application.app_roles.iter().map(|r| &r.value).collect::<Vec<_>>()}),
        );
        self.commit(Batch::one(Mutation::UpdateApplication(application.clone()), change)).await?;
        self.find_application(&application.tenant_id, &application.id).await
    }

    /// Adds one app role to an application, server-side (no list overwrite).
    pub async fn add_app_role(&self, auth: &Authorized<'_>, context: &RequestContext, id: &str, mut role: AppRole) -> Result<AppRole> {
        require(auth, Permission::WriteApplications)?;
        let application = self.find_application(&auth.principal().tenant_id, id).await?;
        if role.id.is_empty() {
            role.id = random::guid();
        }
        if role.display_name.is_empty() {
            role.display_name = role.value.clone();
        }
        let mut roles = application.app_roles.clone();
        roles.push(role.clone());
        self.update_application(auth, context, id, ApplicationPatch { app_roles: Some(roles), ..Default::default() }).await?;
        Ok(role)
    }

    /// Deletes an application with its credentials and role assignments.
    pub async fn delete_application(&self, auth: &Authorized<'_>, context: &RequestContext, id: &str) -> Result<()> {
        require(auth, Permission::WriteApplications)?;
        let application = self.find_application(&auth.principal().tenant_id, id).await?;
        if application.builtin {
            return Err(CoreError::Forbidden(format!("'{}' is built into Clavis and cannot be deleted.", application.display_name)));
        }
        if application.service_principal_id == auth.principal().service_principal_id {
            return Err(CoreError::Conflict("An application cannot delete itself; use another administrator.".into()));
        }
        let change = Change::new(
            self.now(),
            &application.tenant_id,
            &actor(auth),
            context,
            "application.delete",
            "application",
            &application.id,
            json!({"displayName": application.display_name, "appId": application.app_id}),
        );
        self.commit(Batch::one(
            Mutation::DeleteApplication { tenant_id: application.tenant_id.clone(), id: application.id.clone() },
            change,
        ))
        .await
    }

    /// Adds a client secret (Graph `addPassword`). The returned [`NewPassword`] holds the only
    /// copy of the value.
    pub async fn add_password(
        &self,
        auth: &Authorized<'_>,
        context: &RequestContext,
        id: &str,
        request: PasswordRequest,
    ) -> Result<NewPassword> {
        require(auth, Permission::WriteApplications)?;
        let application = self.find_application(&auth.principal().tenant_id, id).await?;
        if application.builtin {
            return Err(CoreError::Forbidden(format!(
                "'{}' is built into Clavis; it authenticates no one and takes no secrets.",
                application.display_name
            )));
        }
        let tenant = self.tenant_by_id(&application.tenant_id)?;
        let policy = tenant.policy.with_override(application.credential_policy.as_ref());
        policy.check_addition(application.created_at, request.custom_value.is_some())?;
        let new_password = self.new_password(&policy, request, self.now())?;
        let credential = new_password.credential.clone();
        let change = Change::new(
            self.now(),
            &application.tenant_id,
            &actor(auth),
            context,
            "credential.add",
            "application",
            &application.id,
            password_details(&credential),
        );
        let mutation = Mutation::AddPassword {
            tenant_id: application.tenant_id.clone(),
            application_id: application.id.clone(),
            credential: credential.clone(),
            max: tenant.policy.max_passwords_per_application,
        };
        self.commit(Batch::one(mutation, password_change(change, &application, &credential))).await?;
        Ok(new_password)
    }

    /// Removes one client secret by `keyId` (Graph `removePassword`).
    pub async fn remove_password(&self, auth: &Authorized<'_>, context: &RequestContext, id: &str, key_id: &str) -> Result<()> {
        require(auth, Permission::WriteApplications)?;
        let application = self.find_application(&auth.principal().tenant_id, id).await?;
        if !identity::is_guid(key_id) {
            return Err(CoreError::Invalid(format!("keyId '{}' is not a GUID.", identity::truncate(key_id, 60))));
        }
        let key_id = key_id.to_ascii_lowercase();
        let Some(credential) = application.password_credentials.iter().find(|c| c.key_id == key_id) else {
            return Err(CoreError::NotFound(format!(
                "Application '{}' has no password credential with keyId '{key_id}'.",
                application.app_id
            )));
        };
        let change = Change::new(
            self.now(),
            &application.tenant_id,
            &actor(auth),
            context,
            "credential.remove",
            "application",
            &application.id,
            json!({"keyId": key_id, "hint": credential.hint}),
        )
        .with_event(
            "CredentialRemoved",
            format!("applications/{}/passwordCredentials/{key_id}", application.id),
            json!({"appId": application.app_id, "keyId": key_id}),
        );
        let mutation = Mutation::RemovePassword {
            tenant_id: application.tenant_id.clone(),
            application_id: application.id.clone(),
            key_id: key_id.clone(),
        };
        self.commit(Batch::one(mutation, change)).await
    }

    /// Role assignments granted to an application, or granted on its roles.
    pub async fn assignments(&self, auth: &Authorized<'_>, id: &str, as_resource: bool) -> Result<Vec<AppRoleAssignment>> {
        require(auth, Permission::Read)?;
        let application = self.find_application(&auth.principal().tenant_id, id).await?;
        let filter = if as_resource {
            AssignmentFilter { resource_id: Some(application.service_principal_id), ..Default::default() }
        } else {
            AssignmentFilter { principal_id: Some(application.service_principal_id), ..Default::default() }
        };
        self.store.assignments(&application.tenant_id, &filter).await
    }

    /// Grants `client` the role `role` (id or value) of `resource`. Both are applications of the
    /// caller's tenant, named by object id or client id.
    pub async fn grant_role(
        &self,
        auth: &Authorized<'_>,
        context: &RequestContext,
        client: &str,
        resource: &str,
        role: &str,
    ) -> Result<AppRoleAssignment> {
        require(auth, Permission::WriteApplications)?;
        let tenant_id = &auth.principal().tenant_id;
        let client = self.find_application_or_sp(tenant_id, client).await?;
        let resource = self.find_application_or_sp(tenant_id, resource).await?;
        if resource.builtin && policy::authorize(auth.principal(), Permission::Administer).is_err() {
            return Err(CoreError::Forbidden("Granting roles of the management API requires the Clavis.Administrator role.".into()));
        }
        let Some(app_role) = resource.app_roles.iter().find(|r| r.id.eq_ignore_ascii_case(role) || r.value == role) else {
            let known: Vec<&str> = resource.app_roles.iter().map(|r| r.value.as_str()).collect();
            return Err(CoreError::Invalid(format!(
                "Application '{}' defines no app role '{}'. Its roles: {}.",
                resource.display_name,
                identity::truncate(role, 80),
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            )));
        };
        if !app_role.is_enabled {
            return Err(CoreError::Invalid(format!("App role '{}' is disabled.", app_role.value)));
        }
        let assignment = AppRoleAssignment {
            id: random::guid(),
            tenant_id: tenant_id.clone(),
            principal_id: client.service_principal_id.clone(),
            resource_id: resource.service_principal_id.clone(),
            app_role_id: app_role.id.clone(),
            created_date_time: self.now(),
        };
        let change = Change::new(
            self.now(),
            tenant_id,
            &actor(auth),
            context,
            "appRoleAssignment.create",
            "appRoleAssignment",
            &assignment.id,
            json!({"principalAppId": client.app_id, "resourceAppId": resource.app_id, "role": app_role.value}),
        );
        self.commit(Batch::one(Mutation::InsertAssignment(assignment.clone()), change)).await?;
        Ok(assignment)
    }

    /// Removes a role assignment by id.
    pub async fn revoke_role(&self, auth: &Authorized<'_>, context: &RequestContext, assignment_id: &str) -> Result<()> {
        require(auth, Permission::WriteApplications)?;
        if !identity::is_guid(assignment_id) {
            return Err(CoreError::NotFound(format!("App role assignment '{}' was not found.", identity::truncate(assignment_id, 60))));
        }
        let tenant_id = &auth.principal().tenant_id;
        let all = self.store.assignments(tenant_id, &AssignmentFilter::default()).await?;
        let Some(assignment) = all.into_iter().find(|a| a.id.eq_ignore_ascii_case(assignment_id)) else {
            return Err(CoreError::NotFound(format!("App role assignment '{assignment_id}' was not found.")));
        };
        let management_roles = policy::management_roles();
        if management_roles.iter().any(|r| r.id == assignment.app_role_id)
            && policy::authorize(auth.principal(), Permission::Administer).is_err()
        {
            return Err(CoreError::Forbidden("Removing grants of the management API requires the Clavis.Administrator role.".into()));
        }
        let change = Change::new(
            self.now(),
            tenant_id,
            &actor(auth),
            context,
            "appRoleAssignment.delete",
            "appRoleAssignment",
            &assignment.id,
            json!({"principalId": assignment.principal_id, "resourceId": assignment.resource_id, "appRoleId": assignment.app_role_id}),
        );
        self.commit(Batch::one(Mutation::DeleteAssignment { tenant_id: tenant_id.clone(), id: assignment.id }, change)).await
    }

    async fn find_application_or_sp(&self, tenant_id: &str, id: &str) -> Result<Application> {
        // The store finds an application by object id, client id or service principal id alike.
        self.find_application(tenant_id, id).await
    }

    /// An application found by its service principal id, object id or client id.
    pub async fn service_principal(&self, auth: &Authorized<'_>, id: &str) -> Result<Application> {
        require(auth, Permission::Read)?;
        self.find_application_or_sp(&auth.principal().tenant_id, id).await
    }

    /// Service principals of the caller's tenant (one per application).
    pub async fn service_principals(&self, auth: &Authorized<'_>) -> Result<Vec<Application>> {
        self.applications(auth).await
    }

    /// The audit records after `after`, for export and verification.
    pub async fn audit_records(&self, auth: &Authorized<'_>, after: i64, limit: i64) -> Result<Vec<crate::audit::AuditRecord>> {
        require(auth, Permission::Administer)?;
        self.store.audit_records(after, limit.clamp(1, 1000)).await
    }
}

/// The management API's client id in a tenant: derived from the tenant id, so every node and
/// every token check agrees on it without a lookup.
pub fn management_app_id(tenant_id: &str) -> String {
    derived_guid(&format!("clavis-management-api:{tenant_id}"))
}

/// A name-based GUID (version 5 layout over SHA-256), for ids every node derives alike.
fn derived_guid(name: &str) -> String {
    let digest = clavis_crypto::sha256(name.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x50;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let h = clavis_crypto::hex(&bytes);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

fn require(auth: &Authorized<'_>, permission: Permission) -> Result<()> {
    // The capability was checked for one permission; make sure it covers this one.
    policy::authorize(auth.principal(), permission).map(|_| ())
}

fn actor(auth: &Authorized<'_>) -> Actor {
    auth.principal().actor()
}

fn validate_token_version(version: Option<u8>) -> Result<()> {
    match version {
        None | Some(1) | Some(2) => Ok(()),
        Some(other) => Err(CoreError::Invalid(format!("requestedAccessTokenVersion must be 1 or 2, not {other}."))),
    }
}

fn password_details(credential: &PasswordCredential) -> serde_json::Value {
    json!({
        "keyId": credential.key_id,
        "hint": credential.hint,
        "displayName": credential.display_name,
        "startDateTime": credential.start.unix_timestamp(),
        "endDateTime": credential.end.unix_timestamp(),
    })
}

fn password_change(change: Change, application: &Application, credential: &PasswordCredential) -> Change {
    change.with_event(
        "CredentialCreated",
        format!("applications/{}/passwordCredentials/{}", application.id, credential.key_id),
        json!({"appId": application.app_id, "keyId": credential.key_id, "endDateTime": credential.end.unix_timestamp()}),
    )
}

/// A stored-hash stand-in compared against when a request names no known client, so that path
/// does the comparison work of a wrong secret.
fn decoy_tag() -> &'static clavis_crypto::HashedClientSecret {
    static DECOY: std::sync::OnceLock<clavis_crypto::HashedClientSecret> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| clavis_crypto::HashedClientSecret::from_stored(vec![0; 32]))
}

/// The least time a failed client authentication (unknown tenant, unknown client, wrong secret)
/// takes: well above the work of any of them (a few microseconds), so timing does not tell them
/// apart, and small beside a network round trip.
const FAILURE_FLOOR: std::time::Duration = std::time::Duration::from_micros(25);
