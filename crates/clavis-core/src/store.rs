//! PORTS: what the core needs from persistence. Implemented for SQLite and PostgreSQL by
//! `clavis-store`; both pass one behavioural suite.
//!
//! **Boundary:** every state change goes through [`Store::apply`], which writes the batch's audit
//! records and outbox events in the same transaction as its mutations. Adding or removing one credential or one
//! role assignment is a single-row operation: no method overwrites a whole list.

use async_trait::async_trait;
use time::OffsetDateTime;

use clavis_crypto::Algorithm;

use crate::admin::{AdminAccount, PortalSession};
use crate::audit::{AuditFilter, AuditRecord, Change, Checkpoint, DomainEvent};
use crate::credential::PasswordCredential;
use crate::error::Result;
use crate::events::{Delivery, ExpiringCredential, ExpiringSecret, Subscription};
use crate::identity::{AppRoleAssignment, Application, Tenant};
use crate::policy::VaultRoleAssignment;
use crate::revocation::Revocation;
use crate::rotation::{RotationRecord, RotationState};
use crate::signin::{RequestFailure, SignIn, SignInFilter};
use crate::vault::{DeletedState, Secret, SecretVersion, Vault};

/// A key wrapped under the master key (a data key or the client-secret HMAC key).
#[derive(Clone, Debug)]
pub struct WrappedKey {
    /// The key's id, e.g. `dek-…`.
    pub id: String,
    /// `dek` (data encryption) or `hmac` (client-secret hashing).
    pub purpose: String,
    /// The id of the master key that wrapped it.
    pub master_key_id: String,
    /// The wrapped bytes.
    pub wrapped: Vec<u8>,
    /// When the key was created.
    pub created_at: OffsetDateTime,
}

/// A token-signing key as stored: its private half sealed under a data key.
#[derive(Clone, Debug)]
pub struct StoredSigningKey {
    /// The key id (JWK thumbprint).
    pub kid: String,
    /// The tenant it signs for.
    pub tenant_id: String,
    /// Its algorithm.
    pub algorithm: Algorithm,
    /// The data key that sealed it.
    pub data_key_id: String,
    /// The sealed PKCS#8.
    pub sealed: Vec<u8>,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it starts signing (published in the JWKS from creation).
    pub activate_at: OffsetDateTime,
    /// When it leaves the JWKS: set once a successor takes over, to the successor's activation
    /// plus the longest token lifetime.
    pub expire_at: Option<OffsetDateTime>,
}

/// A batched update of a credential's last use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageUpdate {
    /// The credential.
    pub key_id: String,
    /// The latest use in the batch.
    pub at: OffsetDateTime,
    /// The IP of that use.
    pub ip: String,
    /// Uses in the batch.
    pub count: i64,
}

/// Which role assignments to list.
#[derive(Clone, Debug, Default)]
pub struct AssignmentFilter {
    /// Only those granted to this service principal.
    pub principal_id: Option<String>,
    /// Only those of this resource service principal.
    pub resource_id: Option<String>,
}

/// One state change of a [`Batch`].
#[derive(Clone, Debug)]
pub enum Mutation {
    /// Inserts newly created wrapped keys.
    InsertWrappedKeys(Vec<WrappedKey>),
    /// Replaces every wrapped key with its re-wrapped form, provided every row is still wrapped by
    /// `expected_master_key_id` (two concurrent rotations cannot interleave).
    RewrapKeys { expected_master_key_id: String, keys: Vec<WrappedKey> },
    /// Inserts a tenant with its domains (a taken domain is a conflict).
    InsertTenant(Tenant),
    /// Updates a tenant's name, algorithm and policy (not its domains).
    UpdateTenant(Tenant),
    /// Registers an application without credentials (a taken identifier URI is a conflict).
    InsertApplication(Application),
    /// Updates name, identifier URIs, app roles and token version.
    UpdateApplication(Application),
    /// Deletes an application, its credentials and every role assignment naming it.
    DeleteApplication { tenant_id: String, id: String },
    /// Adds one credential, refusing when the application already holds `max`.
    AddPassword { tenant_id: String, application_id: String, credential: PasswordCredential, max: i64 },
    /// Removes one credential (not found is an error).
    RemovePassword { tenant_id: String, application_id: String, key_id: String },
    /// Grants a role (a duplicate grant is a conflict).
    InsertAssignment(AppRoleAssignment),
    /// Removes a grant (not found is an error).
    DeleteAssignment { tenant_id: String, id: String },
    /// Adds a signing key and sets `expire_at` on the keys it succeeds.
    InsertSigningKey { key: StoredSigningKey, retire: Vec<(String, OffsetDateTime)> },
    /// Deletes signing keys whose `expire_at` is before the instant.
    DeleteExpiredSigningKeys(OffsetDateTime),
    /// Creates a vault (a taken name is a conflict).
    InsertVault(Vault),
    /// Changes a vault's settings or soft-delete state.
    UpdateVault(Vault),
    /// Deletes a vault with all its secrets and the role assignments scoped to it.
    PurgeVault { vault_id: String, name: String },
    /// Adds a version, creating the secret when new. A deleted secret is a conflict
    /// (`ObjectIsDeletedButRecoverable`).
    PutSecretVersion(SecretVersion),
    /// Replaces the properties and `updated` of one version.
    UpdateSecretVersion(SecretVersion),
    /// Soft-deletes a secret (not found, or already deleted, is an error).
    DeleteSecret { vault_id: String, name: String, deleted: DeletedState },
    /// Recovers a deleted secret.
    RecoverSecret { vault_id: String, name: String },
    /// Purges a deleted secret and its versions.
    PurgeSecret { vault_id: String, name: String },
    /// Restores a secret with its versions (an existing name is a conflict).
    RestoreSecret(Secret),
    /// Purges every deleted secret scheduled for purge before the instant.
    PurgeDeletedSecrets(OffsetDateTime),
    /// Grants a vault role (a duplicate grant is a conflict).
    InsertVaultAssignment(VaultRoleAssignment),
    /// Removes a vault role grant (not found is an error).
    DeleteVaultAssignment { tenant_id: String, id: String },
    /// Records a revocation (a repeated one keeps the first).
    Revoke(Revocation),
    /// Drops revocations whose tokens have all expired.
    PurgeRevocations(OffsetDateTime),
    /// Creates a webhook subscription.
    InsertSubscription(Subscription),
    /// Deletes a subscription and its pending deliveries (not found is an error).
    DeleteSubscription { tenant_id: String, id: String },
    /// Records that a notice was sent for (object, threshold); a second one is a conflict.
    RecordNotice { object_key: String, threshold: String, at: OffsetDateTime },
    /// Sets an application's rotation policy (its state is kept, or starts idle).
    PutRotationPolicy(RotationRecord),
    /// Removes an application's rotation policy (not found is an error).
    DeleteRotationPolicy { tenant_id: String, application_id: String },
    /// Moves a rotation to `next`, provided it is still in `expected` (a conflict otherwise).
    UpdateRotationState { application_id: String, expected: RotationState, next: RotationState },
    /// Creates an administrator account (a taken user name is a conflict).
    InsertAdmin(AdminAccount),
    /// Replaces an account's password, role and state; `end_sessions` deletes its sessions.
    UpdateAdmin { admin: AdminAccount, end_sessions: bool },
    /// Starts a portal session.
    InsertSession(PortalSession),
    /// Ends a portal session (an already ended one is not an error).
    DeleteSession { id_hash: String },
    /// Inserts many new applications (with their credentials) and secret versions with
    /// multi-row statements; a version with ordinal 1 creates its secret. For bulk loading only:
    /// names and ids are fresh, so nothing is checked against existing rows beyond the keys.
    BulkInsert { applications: Vec<Application>, versions: Vec<SecretVersion> },
}

/// Mutations applied in one transaction together with their audit records and outbox events.
/// Either all of it commits or nothing does.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    /// The state changes, in order.
    pub mutations: Vec<Mutation>,
    /// Their audit records and events.
    pub changes: Vec<Change>,
}

impl Batch {
    /// Whether the batch changes what a node keeps loaded in memory: tenants, key material,
    /// revocations.
    pub fn touches_tenants_or_keys(&self) -> bool {
        self.mutations.iter().any(|m| {
            matches!(
                m,
                Mutation::InsertWrappedKeys(_)
                    | Mutation::RewrapKeys { .. }
                    | Mutation::InsertTenant(_)
                    | Mutation::UpdateTenant(_)
                    | Mutation::InsertSigningKey { .. }
                    | Mutation::DeleteExpiredSigningKeys(_)
                    | Mutation::Revoke(_)
                    | Mutation::PurgeRevocations(_)
            )
        })
    }

    /// A batch of one mutation and its change.
    pub fn one(mutation: Mutation, change: Change) -> Self {
        Self { mutations: vec![mutation], changes: vec![change] }
    }

    /// Adds a mutation and its change.
    pub fn push(&mut self, mutation: Mutation, change: Change) {
        self.mutations.push(mutation);
        self.changes.push(change);
    }
}

/// The persistence port.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Which backend this is (`sqlite` or `postgres`), for health output.
    fn backend(&self) -> &'static str;

    /// A cheap probe for readiness.
    async fn ping(&self) -> Result<()>;

    /// Takes the instance-wide start-up lock: nodes starting together on one database
    /// initialize it one at a time (one creates the keys and the default tenant, the others
    /// find them). Held until [`Store::unlock_startup`].
    async fn lock_startup(&self) -> Result<()>;
    /// Releases the start-up lock.
    async fn unlock_startup(&self) -> Result<()>;
    /// Takes or renews the lease `name` for `holder` until `until`, if it is free, expired at
    /// `now`, or already `holder`'s. Returns whether `holder` holds it: of several nodes asking,
    /// one does.
    async fn take_lease(&self, name: &str, holder: &str, now: OffsetDateTime, until: OffsetDateTime) -> Result<bool>;
    /// Gives up `holder`'s lease `name` (another node may take it at once).
    async fn release_lease(&self, name: &str, holder: &str) -> Result<()>;

    /// Applies a batch atomically, with its audit records chained and its events in the outbox.
    async fn apply(&self, batch: &Batch) -> Result<()>;

    /// Keys wrapped under the master key.
    async fn wrapped_keys(&self) -> Result<Vec<WrappedKey>>;
    /// All tenants.
    async fn tenants(&self) -> Result<Vec<Tenant>>;
    /// The applications of a tenant, with their credentials.
    async fn applications(&self, tenant_id: &str) -> Result<Vec<Application>>;
    /// One application of a tenant by object id, application (client) id or service principal id.
    async fn application(&self, tenant_id: &str, id: &str) -> Result<Option<Application>>;
    /// An application by its client id, in any tenant.
    async fn application_by_client_id(&self, app_id: &str) -> Result<Option<Application>>;
    /// The application of a tenant that has `uri` among its identifier URIs (case-insensitive).
    async fn application_by_identifier_uri(&self, tenant_id: &str, uri: &str) -> Result<Option<Application>>;
    /// Applies a batch of last-use updates (not audited: usage is not a state change).
    async fn record_usage(&self, batch: &[UsageUpdate]) -> Result<()>;
    /// Role assignments of a tenant.
    async fn assignments(&self, tenant_id: &str, filter: &AssignmentFilter) -> Result<Vec<AppRoleAssignment>>;
    /// Every signing key.
    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>>;
    /// Audit records with `seq > after`, oldest first, at most `limit`.
    async fn audit_records(&self, after: i64, limit: i64) -> Result<Vec<AuditRecord>>;
    /// The sequence number of the newest audit record.
    async fn audit_head(&self) -> Result<i64>;
    /// How many batches have changed state (records of reads do not count): a node learns that
    /// something changed, on any node, when this moves.
    async fn change_head(&self) -> Result<i64>;
    /// Outbox events with `seq > after`, oldest first.
    /// (`after` < 0: the latest `limit` events, in order.)
    async fn events(&self, after: i64, limit: i64) -> Result<Vec<(i64, DomainEvent)>>;

    /// The vaults of a tenant, deleted ones included.
    async fn vaults(&self, tenant_id: &str) -> Result<Vec<Vault>>;
    /// A vault by (lower-case) name.
    async fn vault_by_name(&self, name: &str) -> Result<Option<Vault>>;
    /// A secret with all its versions, deleted or not.
    async fn secret(&self, vault_id: &str, name: &str) -> Result<Option<Secret>>;
    /// A page of secrets (live or deleted) of a vault in name order after `after`, each with its
    /// latest version only.
    async fn secrets(&self, vault_id: &str, deleted: bool, after: &str, limit: i64) -> Result<Vec<Secret>>;
    /// Webhook subscriptions, of one tenant or all.
    async fn subscriptions(&self, tenant_id: Option<&str>) -> Result<Vec<Subscription>>;
    /// Every (object, threshold) notice already sent.
    async fn notices(&self) -> Result<Vec<(String, String)>>;
    /// Client secrets whose end is before `until`.
    async fn expiring_credentials(&self, until: OffsetDateTime) -> Result<Vec<ExpiringCredential>>;
    /// Latest versions of live vault secrets whose `exp` is before `until`.
    async fn expiring_secrets(&self, until: OffsetDateTime) -> Result<Vec<ExpiringSecret>>;
    /// The position of a named cursor over the outbox (0 when new).
    async fn cursor(&self, name: &str) -> Result<i64>;
    /// Adds deliveries and moves the cursor, in one transaction (not audited: bookkeeping).
    async fn enqueue_deliveries(&self, cursor: &str, position: i64, deliveries: &[Delivery]) -> Result<()>;
    /// Claims pending deliveries due at `now`, oldest first, until `lease_until`: a delivery is
    /// claimed by one caller only, across nodes.
    async fn claim_deliveries(&self, now: OffsetDateTime, lease_until: OffsetDateTime, limit: i64) -> Result<Vec<Delivery>>;
    /// Records an attempt's outcome.
    async fn record_delivery(&self, delivery: &Delivery) -> Result<()>;
    /// Deliveries of events with `seq > after`.
    async fn deliveries(&self, after: i64) -> Result<Vec<Delivery>>;
    /// One outbox event.
    async fn event(&self, seq: i64) -> Result<Option<DomainEvent>>;
    /// Audit records matching a filter, oldest first.
    async fn audit_query(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>>;
    /// Signed audit checkpoints, oldest first.
    async fn checkpoints(&self) -> Result<Vec<Checkpoint>>;
    /// Stores a checkpoint (not audited: it is a signature over the audit chain).
    async fn insert_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()>;
    /// Appends buffered sign-in and request-failure records (not audited: they are logs).
    async fn append_logs(&self, signins: &[SignIn], failures: &[RequestFailure]) -> Result<()>;
    /// Sign-ins matching a filter, newest first.
    async fn signins(&self, filter: &SignInFilter) -> Result<Vec<SignIn>>;
    /// The sign-in and request-failure records of a correlation id.
    async fn by_correlation(&self, correlation_id: &str) -> Result<(Vec<SignIn>, Vec<RequestFailure>)>;
    /// Drops sign-in and request-failure records older than `before`; returns how many.
    async fn purge_logs(&self, before: OffsetDateTime) -> Result<u64>;
    /// Every rotation policy with its state.
    async fn rotations(&self) -> Result<Vec<RotationRecord>>;
    /// Every revocation.
    async fn revocations(&self) -> Result<Vec<Revocation>>;
    /// Whether any deleted secret is due for purge at `now`.
    async fn secrets_due(&self, now: OffsetDateTime) -> Result<bool>;
    /// Vault role assignments of a tenant, optionally of one principal.
    async fn vault_assignments(&self, tenant_id: &str, principal_id: Option<&str>) -> Result<Vec<VaultRoleAssignment>>;
    /// Administrator accounts of a tenant, by user name.
    async fn admins(&self, tenant_id: &str) -> Result<Vec<AdminAccount>>;
    /// One administrator account, by id or (lower-case) user name.
    async fn admin(&self, tenant_id: &str, id_or_name: &str) -> Result<Option<AdminAccount>>;
    /// A portal session by the hash of its token.
    async fn session(&self, id_hash: &str) -> Result<Option<PortalSession>>;
    /// Records a session's activity (not audited: it changes no state anyone acts on).
    async fn touch_session(&self, id_hash: &str, at: OffsetDateTime) -> Result<()>;
    /// Deletes sessions that ended before the instant (idle since `idle_before`, or past their end).
    async fn purge_sessions(&self, now: OffsetDateTime, idle_before: OffsetDateTime) -> Result<u64>;
}
