//! EVENTS: domain events from the outbox, delivered to webhook subscriptions.
//!
//! Every change writes its events to the outbox (`events`) in its own transaction; time-driven
//! notices (near expiry, expired) are written by a scheduler once per (object, threshold), the
//! `notices` table's key making a second one impossible. A dispatcher copies new events into
//! `deliveries` (one row per matching subscription, so nothing is lost across restarts) and sends
//! them signed per Standard Webhooks, retrying with exponential backoff: at-least-once delivery,
//! with the event id as `webhook-id` for receivers to deduplicate.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::audit::DomainEvent;
use crate::error::{CoreError, Result};

/// Event types Clavis emits.
pub const EVENT_TYPES: &[&str] = &[
    "CredentialCreated",
    "CredentialRemoved",
    "CredentialRotated",
    "CredentialNearExpiry",
    "CredentialExpired",
    "SecretNewVersionCreated",
    "SecretNearExpiry",
    "SecretExpired",
    "SubscriptionTest",
];

/// How a subscription's payloads are shaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PayloadSchema {
    /// Azure Event Grid's schema (an array of events), with Key Vault's event names and data keys.
    EventGrid,
    /// CloudEvents 1.0, structured JSON.
    CloudEvents,
}

impl PayloadSchema {
    /// Parses `eventgrid` / `cloudevents` (any case, `-` and `_` ignored).
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().replace(['-', '_', ' '], "").as_str() {
            "eventgrid" | "eventgridschema" => Some(Self::EventGrid),
            "cloudevents" | "cloudevent" | "cloudeventschemav10" => Some(Self::CloudEvents),
            _ => None,
        }
    }

    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EventGrid => "EventGrid",
            Self::CloudEvents => "CloudEvents",
        }
    }
}

/// A webhook subscription. Its signing secret is sealed at rest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    /// Its id (GUID).
    pub id: String,
    /// The tenant whose events it receives.
    pub tenant_id: String,
    /// Where deliveries are POSTed.
    pub url: String,
    /// Payload schema.
    pub schema: PayloadSchema,
    /// Event types to receive (empty: all).
    pub event_types: Vec<String>,
    /// The data key that sealed the secret.
    pub data_key_id: String,
    /// The sealed `whsec_…` secret.
    pub sealed_secret: Vec<u8>,
    /// The outbox position when it was created: it receives only later events (set by the store).
    pub start_after: i64,
    /// When created.
    pub created_at: OffsetDateTime,
}

impl Subscription {
    /// Whether the subscription receives `event`, at outbox position `seq`.
    pub fn wants(&self, seq: i64, event: &DomainEvent) -> bool {
        if event.tenant_id != self.tenant_id || seq <= self.start_after {
            return false;
        }
        if event.event_type == "SubscriptionTest" {
            return event.data.get("subscriptionId").and_then(Value::as_str) == Some(self.id.as_str());
        }
        self.event_types.is_empty() || self.event_types.iter().any(|t| t.eq_ignore_ascii_case(&event.event_type))
    }
}

/// Associated data binding a sealed webhook secret to its subscription.
pub fn secret_aad(id: &str) -> Vec<u8> {
    format!("clavis:webhook-secret:{id}").into_bytes()
}

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// Accepted by the receiver (2xx).
    Delivered,
    /// Given up after the last attempt.
    Failed,
}

impl DeliveryStatus {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    /// Parses the stored form.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One event's delivery to one subscription.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// The outbox sequence number of the event.
    pub event_seq: i64,
    /// The subscription.
    pub subscription_id: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: i64,
    /// When the next attempt is due.
    #[serde(with = "time::serde::rfc3339")]
    pub next_attempt_at: OffsetDateTime,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was delivered.
    #[serde(with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<OffsetDateTime>,
}

/// Attempts before a delivery is given up.
pub const MAX_ATTEMPTS: i64 = 10;

/// The wait before attempt `attempts + 1`: 5 s doubling, at most one hour (about 5.5 hours in all).
pub fn backoff(attempts: i64) -> Duration {
    Duration::seconds((5_i64 << attempts.clamp(0, 10)).min(3600))
}

/// A client secret close to or past its end.
#[derive(Clone, Debug)]
pub struct ExpiringCredential {
    /// The tenant.
    pub tenant_id: String,
    /// The application's object id.
    pub application_id: String,
    /// Its client id.
    pub app_id: String,
    /// Its name.
    pub display_name: String,
    /// The credential.
    pub key_id: String,
    /// Its end.
    pub end: OffsetDateTime,
}

/// A vault secret's latest version close to or past its `exp`.
#[derive(Clone, Debug)]
pub struct ExpiringSecret {
    /// The tenant.
    pub tenant_id: String,
    /// The vault.
    pub vault: String,
    /// The secret.
    pub name: String,
    /// The version.
    pub version: String,
    /// Not before (Unix seconds).
    pub nbf: Option<i64>,
    /// Expiry (Unix seconds).
    pub exp: i64,
}

/// The type a subscription sees: Key Vault's names for vault events, `Clavis.*` for the rest.
pub fn wire_type(event_type: &str) -> String {
    match event_type {
        "SecretNewVersionCreated" | "SecretNearExpiry" | "SecretExpired" => format!("Microsoft.KeyVault.{event_type}"),
        other => format!("Clavis.{other}"),
    }
}

/// The delivery body of an event in a subscription's schema.
pub fn payload(schema: PayloadSchema, event: &DomainEvent, public_url: &str, vault_resource: &str) -> Vec<u8> {
    let time = event.at.format(&Rfc3339).unwrap_or_default();
    let (source, subject, data) = match event.data.get("VaultName").and_then(Value::as_str) {
        Some(vault) => {
            let name = event.data.get("ObjectName").and_then(Value::as_str).unwrap_or_default();
            let version = event.data.get("Version").and_then(Value::as_str).unwrap_or_default();
            let host = vault_resource.trim_start_matches("https://");
            let mut data = event.data.clone();
            data["Id"] = json!(format!("https://{vault}.{host}/secrets/{name}/{version}"));
            (format!("{public_url}/tenants/{}/vaults/{vault}", event.tenant_id), name.to_string(), data)
        }
        None => (format!("{public_url}/tenants/{}", event.tenant_id), event.subject.clone(), event.data.clone()),
    };
    let body = match schema {
        PayloadSchema::EventGrid => json!([{
            "id": event.id,
            "topic": source,
            "subject": subject,
            "eventType": wire_type(&event.event_type),
            "eventTime": time,
            "data": data,
            "dataVersion": "1",
            "metadataVersion": "1",
        }]),
        PayloadSchema::CloudEvents => json!({
            "specversion": "1.0",
            "id": event.id,
            "source": source,
            "type": wire_type(&event.event_type),
            "subject": subject,
            "time": time,
            "datacontenttype": "application/json",
            "data": data,
        }),
    };
    body.to_string().into_bytes()
}

/// Validates a subscription URL: https anywhere, or http to a loopback host (for local receivers).
pub fn validate_url(url: &str) -> Result<()> {
    let lower = url.to_ascii_lowercase();
    let host = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or(""));
    let Some(host_port) = host.filter(|h| !h.is_empty()) else {
        return Err(CoreError::Invalid("url must be an absolute https:// URL (http:// only to localhost or 127.0.0.1).".into()));
    };
    let host = host_port.rsplit_once(':').map_or(host_port, |(h, _)| h);
    let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]");
    if url.len() > 2000 || url.chars().any(|c| c.is_whitespace() || c.is_control()) || (lower.starts_with("http://") && !loopback) {
        return Err(CoreError::Invalid(
            "url must be an absolute https:// URL of at most 2000 characters (http:// only to localhost or 127.0.0.1).".into(),
        ));
    }
    Ok(())
}

/// The threshold label of a notice, and which thresholds a remaining time has crossed.
pub fn crossed_thresholds(thresholds: &[i64], remaining: Duration) -> Vec<i64> {
    let mut crossed: Vec<i64> = thresholds.iter().copied().filter(|days| remaining <= Duration::days(*days)).collect();
    crossed.sort_unstable();
    crossed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_and_backoff() {
        assert_eq!(crossed_thresholds(&[30, 14, 7, 1], Duration::days(10)), vec![14, 30]);
        assert!(crossed_thresholds(&[30, 14, 7, 1], Duration::days(40)).is_empty());
        assert_eq!(backoff(0), Duration::seconds(5));
        assert_eq!(backoff(3), Duration::seconds(40));
        assert_eq!(backoff(20), Duration::hours(1));
    }

    #[test]
    fn urls_and_schemas() {
        assert!(validate_url("https://hooks.example.com/clavis").is_ok());
        assert!(validate_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(validate_url("http://hooks.example.com/").is_err());
        assert!(validate_url("ftp://x").is_err());
        assert_eq!(PayloadSchema::parse("CloudEvents"), Some(PayloadSchema::CloudEvents));
        assert_eq!(PayloadSchema::parse("event-grid"), Some(PayloadSchema::EventGrid));
    }

    #[test]
    fn payloads_follow_their_schemas() {
        let event = DomainEvent {
            id: "e1".into(),
            event_type: "SecretNearExpiry".into(),
            tenant_id: "t".into(),
            subject: "vaults/kv1/secrets/db/v1".into(),
            at: OffsetDateTime::UNIX_EPOCH,
            data: json!({"VaultName": "kv1", "ObjectType": "Secret", "ObjectName": "db", "Version": "v1", "NBF": null, "EXP": 100}),
        };
        let grid: Value = serde_json::from_slice(&payload(PayloadSchema::EventGrid, &event, "https://h", "https://vault.h")).unwrap();
        assert_eq!(grid[0]["eventType"], "Microsoft.KeyVault.SecretNearExpiry");
        assert_eq!(grid[0]["data"]["Id"], "https://kv1.vault.h/secrets/db/v1");
        assert_eq!(grid[0]["subject"], "db");
        let cloud: Value = serde_json::from_slice(&payload(PayloadSchema::CloudEvents, &event, "https://h", "https://vault.h")).unwrap();
        assert_eq!(cloud["specversion"], "1.0");
        assert_eq!(cloud["type"], "Microsoft.KeyVault.SecretNearExpiry");
    }
}
