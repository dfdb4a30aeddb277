//! AUDIT: the record of every state change, appended in the same transaction as the change.
//!
//! **Invariant:** every state change reaches the store as a `store::Batch` that carries a
//! [`Change`] per mutation; the store writes the audit records (and outbox events) in the
//! transaction of the mutations, so a change without its record cannot commit (fail-closed).
//!
//! Records form a hash chain: each carries the SHA-256 of its predecessor's hash and its own
//! canonical form ([`chain_hash`]), so editing, deleting or reordering a stored record is
//! detectable. Records never hold a secret value.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

/// Who acted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Actor {
    /// `servicePrincipal`, `system` or later `user`.
    pub kind: String,
    /// The principal's id (service principal object id, or `clavis` for the system).
    pub id: String,
    /// The application (client) id, when the actor is an application.
    pub app_id: Option<String>,
    /// How the actor authenticated: `bearer`, `bootstrap`, `scheduler`.
    pub auth_method: String,
}

impl Actor {
    /// Clavis itself (start-up, background jobs).
    pub fn system(auth_method: &str) -> Self {
        Self { kind: "system".into(), id: "clavis".into(), app_id: None, auth_method: auth_method.into() }
    }
}

/// Where a request came from, for audit and troubleshooting.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestContext {
    /// The correlation id returned to the caller.
    pub correlation_id: String,
    /// The client's IP address.
    pub client_ip: String,
    /// The client's user agent, truncated.
    pub user_agent: String,
}

/// One audit record as written. `seq`, `prev_hash` and `hash` are assigned by the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The tenant the change belongs to (empty for instance-wide changes).
    pub tenant_id: String,
    /// Who.
    pub actor: Actor,
    /// What, as `noun.verb` (e.g. `application.create`, `credential.add`).
    pub action: String,
    /// The kind of object changed.
    pub target_type: String,
    /// The id of the object changed.
    pub target_id: String,
    /// `success` (failed attempts that change nothing are in the sign-in and request logs).
    pub result: String,
    /// The request it came from.
    pub context: RequestContext,
    /// Non-secret details (names, key ids, dates). Never a secret value.
    pub details: Value,
    /// The hash of the previous record (64 zeros for the first).
    pub prev_hash: String,
    /// This record's hash.
    pub hash: String,
}

/// A domain event, written to the outbox in the same transaction as its change and delivered
/// later (webhooks arrive with the lifecycle work).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainEvent {
    /// A unique id (GUID).
    pub id: String,
    /// The event type, e.g. `CredentialCreated`.
    pub event_type: String,
    /// The tenant.
    pub tenant_id: String,
    /// The object the event is about (e.g. `applications/{id}/passwordCredentials/{keyId}`).
    pub subject: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Non-secret data.
    pub data: Value,
}

/// What a mutation writes beside its data: its audit record and its events.
#[derive(Clone, Debug)]
pub struct Change {
    /// The audit record (without chain fields).
    pub audit: AuditRecord,
    /// Events for the outbox.
    pub events: Vec<DomainEvent>,
}

impl Change {
    /// A change with an audit record and no events.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        at: OffsetDateTime,
        tenant_id: &str,
        actor: &Actor,
        context: &RequestContext,
        action: &str,
        target_type: &str,
        target_id: &str,
        details: Value,
    ) -> Self {
        Self {
            audit: AuditRecord {
                seq: 0,
                at,
                tenant_id: tenant_id.to_string(),
                actor: actor.clone(),
                action: action.to_string(),
                target_type: target_type.to_string(),
                target_id: target_id.to_string(),
                result: "success".into(),
                context: context.clone(),
                details,
                prev_hash: String::new(),
                hash: String::new(),
            },
            events: Vec::new(),
        }
    }

    /// Adds an outbox event.
    pub fn with_event(mut self, event_type: &str, subject: String, data: Value) -> Self {
        self.events.push(DomainEvent {
            id: clavis_crypto::random::guid(),
            event_type: event_type.to_string(),
            tenant_id: self.audit.tenant_id.clone(),
            subject,
            at: self.audit.at,
            data,
        });
        self
    }
}

/// The hash of the first record's predecessor.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The chain hash of `record` (its `hash` field ignored): SHA-256 over the previous hash and the
/// record's canonical JSON. Both stores and `clavis audit verify` use this one function.
pub fn chain_hash(record: &AuditRecord) -> String {
    let canonical = serde_json::json!({
        "seq": record.seq,
        "at": record.at.unix_timestamp_nanos().to_string(),
        "tenantId": record.tenant_id,
        "actor": record.actor,
        "action": record.action,
        "targetType": record.target_type,
        "targetId": record.target_id,
        "result": record.result,
        "context": record.context,
        "details": record.details,
        "prevHash": record.prev_hash,
    });
    let mut input = record.prev_hash.as_bytes().to_vec();
    input.push(b'\n');
    input.extend_from_slice(canonical.to_string().as_bytes());
    clavis_crypto::hex(&clavis_crypto::sha256(&input))
}

/// Checks a run of records in `seq` order, starting after `prev_hash`. Returns the seq of the
/// first record that breaks the chain, if any.
pub fn verify_chain<'a>(records: impl IntoIterator<Item = &'a AuditRecord>, mut prev_seq: i64, mut prev_hash: String) -> Option<i64> {
    for record in records {
        if record.seq != prev_seq + 1 || record.prev_hash != prev_hash || chain_hash(record) != record.hash {
            return Some(record.seq);
        }
        prev_seq = record.seq;
        prev_hash = record.hash.clone();
    }
    None
}

/// Filters of an audit query.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Newest records first (the portal's view) instead of in chain order.
    pub newest_first: bool,
    /// Only records with `seq > after`.
    pub after: i64,
    /// From (inclusive).
    pub since: Option<OffsetDateTime>,
    /// Until (exclusive).
    pub until: Option<OffsetDateTime>,
    /// Only this tenant's records (and instance-wide ones); `None` for all.
    pub tenant_id: Option<String>,
    /// Only actions by this principal (service principal id or client id).
    pub principal: Option<String>,
    /// Only this target id.
    pub target: Option<String>,
    /// Only this action, or actions starting with it when it ends with `.` (e.g. `credential.`).
    pub action: Option<String>,
    /// Only this result.
    pub result: Option<String>,
    /// At most this many.
    pub limit: i64,
}

/// A signed statement that the chain had `hash` at `seq`: truncating or rewriting the log
/// before a checkpoint is detectable even by someone who can recompute hashes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    /// The record it vouches for.
    pub seq: i64,
    /// That record's hash.
    pub hash: String,
    /// When it was signed.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The signing key.
    pub kid: String,
    /// A compact JWS over `{"seq","hash","at"}` by the instance's checkpoint key.
    pub jws: String,
}
