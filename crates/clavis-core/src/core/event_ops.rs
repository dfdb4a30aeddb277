//! Event operations of [`Core`]: webhook subscriptions, the time-driven expiry notices, and the
//! preparation and bookkeeping of deliveries (the HTTP sending is the server's).

use std::collections::HashSet;

use serde_json::json;
use time::{Duration, OffsetDateTime};

use clavis_crypto::random;

use super::{actor, require, Core};
use crate::audit::{Actor, Change, DomainEvent, RequestContext};
use crate::error::{CoreError, Result};
use crate::events::{self, Delivery, DeliveryStatus, PayloadSchema, Subscription};
use crate::policy::{Authorized, Permission};
use crate::store::{Batch, Mutation};

/// The cursor of the webhook dispatcher over the outbox.
const DISPATCH_CURSOR: &str = "webhooks";
/// How long a claimed delivery is held by the node sending it (longer than the 10-second send
/// timeout); if that node dies, the delivery is due again after it.
const DELIVERY_LEASE: time::Duration = time::Duration::seconds(60);

/// A delivery ready to send.
#[derive(Debug)]
pub struct OutgoingDelivery {
    /// The delivery.
    pub delivery: Delivery,
    /// Where to POST.
    pub url: String,
    /// `webhook-id` (the event id).
    pub id: String,
    /// `webhook-timestamp`.
    pub timestamp: i64,
    /// `webhook-signature`.
    pub signature: String,
    /// The body.
    pub body: Vec<u8>,
    /// The body's content type.
    pub content_type: &'static str,
}

/// A recent event with its deliveries, for `clavis events list`.
#[derive(Debug)]
pub struct EventRecord {
    /// Outbox position.
    pub seq: i64,
    /// The event.
    pub event: DomainEvent,
    /// Its deliveries.
    pub deliveries: Vec<Delivery>,
}

impl Core {
    /// Subscribes a URL to the caller's tenant's events. The returned `whsec_` secret (shown once)
    /// verifies the `webhook-signature` of every delivery.
    pub async fn create_subscription(
        &self,
        auth: &Authorized<'_>,
        context: &RequestContext,
        url: &str,
        schema: &str,
        event_types: Vec<String>,
    ) -> Result<(Subscription, String)> {
        require(auth, Permission::Administer)?;
        events::validate_url(url)?;
        let schema = PayloadSchema::parse(schema).ok_or_else(|| {
            CoreError::Invalid(format!("schema '{}' is not EventGrid or CloudEvents.", crate::identity::truncate(schema, 40)))
        })?;
        for event_type in &event_types {
            if !events::EVENT_TYPES.iter().any(|t| t.eq_ignore_ascii_case(event_type)) {
                return Err(CoreError::Invalid(format!(
                    "eventTypes: '{}' is not one of {}.",
                    crate::identity::truncate(event_type, 60),
                    events::EVENT_TYPES.join(", ")
                )));
            }
        }
        let id = random::guid();
        let secret = clavis_crypto::webhook::generate_secret();
        let (data_key_id, sealed_secret) = self.material.seal(secret.as_bytes(), &events::secret_aad(&id))?;
        let subscription = Subscription {
            id: id.clone(),
            tenant_id: auth.principal().tenant_id.clone(),
            url: url.to_string(),
            schema,
            event_types,
            data_key_id,
            sealed_secret,
            start_after: 0,
            created_at: self.now(),
        };
        let change = Change::new(
            self.now(),
            &subscription.tenant_id,
            &actor(auth),
            context,
            "subscription.create",
            "subscription",
            &id,
            json!({"url": subscription.url, "schema": schema.as_str(), "eventTypes": subscription.event_types}),
        );
        self.commit(Batch::one(Mutation::InsertSubscription(subscription.clone()), change)).await?;
        Ok((subscription, secret))
    }

    /// The caller's tenant's subscriptions.
    pub async fn subscriptions(&self, auth: &Authorized<'_>) -> Result<Vec<Subscription>> {
        require(auth, Permission::Read)?;
        self.store.subscriptions(Some(&auth.principal().tenant_id)).await
    }

    /// Removes a subscription (and its pending deliveries).
    pub async fn delete_subscription(&self, auth: &Authorized<'_>, context: &RequestContext, id: &str) -> Result<()> {
        require(auth, Permission::Administer)?;
        let tenant_id = auth.principal().tenant_id.clone();
        let change = Change::new(self.now(), &tenant_id, &actor(auth), context, "subscription.delete", "subscription", id, json!({}));
        self.commit(Batch::one(Mutation::DeleteSubscription { tenant_id, id: id.to_ascii_lowercase() }, change)).await
    }

    /// Sends a test event to one subscription.
    pub async fn test_subscription(&self, auth: &Authorized<'_>, context: &RequestContext, id: &str) -> Result<String> {
        require(auth, Permission::Administer)?;
        let tenant_id = auth.principal().tenant_id.clone();
        let id = id.to_ascii_lowercase();
        if !self.store.subscriptions(Some(&tenant_id)).await?.iter().any(|s| s.id == id) {
            return Err(CoreError::NotFound(format!("Subscription '{id}' was not found.")));
        }
        let change = Change::new(self.now(), &tenant_id, &actor(auth), context, "subscription.test", "subscription", &id, json!({}))
            .with_event("SubscriptionTest", format!("subscriptions/{id}"), json!({"subscriptionId": id}));
        let event_id = change.events[0].id.clone();
        // The audit record carries the event; the "mutation" is the notice row that makes the
        // test event unique, so the batch is never empty of state.
        let mutation =
            Mutation::RecordNotice { object_key: format!("subscription-test:{event_id}"), threshold: "test".into(), at: self.now() };
        self.commit(Batch::one(mutation, change)).await?;
        Ok(event_id)
    }

    /// Events after `after` (or the latest ones when `after` is negative) with their deliveries.
    pub async fn recent_events(&self, auth: &Authorized<'_>, after: i64, limit: i64) -> Result<Vec<EventRecord>> {
        require(auth, Permission::Read)?;
        let tenant_id = &auth.principal().tenant_id;
        let found = self.store.events(after, limit.clamp(1, 500)).await?;
        let since = found.first().map_or(after, |(seq, _)| seq - 1).max(0);
        let deliveries = self.store.deliveries(since).await?;
        Ok(found
            .into_iter()
            .filter(|(_, e)| &e.tenant_id == tenant_id)
            .map(|(seq, event)| EventRecord { seq, deliveries: deliveries.iter().filter(|d| d.event_seq == seq).cloned().collect(), event })
            .collect())
    }

    /// Writes the notices that are due: `CredentialNearExpiry` / `SecretNearExpiry` once per object
    /// and threshold (only the nearest threshold when several were crossed at once, so a late
    /// scan sends one notice, not a burst), and `CredentialExpired` / `SecretExpired` once.
    pub async fn scan_notices(&self) -> Result<usize> {
        let now = self.now();
        let thresholds = &self.settings.notice_thresholds_days;
        let horizon = now + Duration::days(thresholds.iter().copied().max().unwrap_or(30));
        let sent: HashSet<(String, String)> = self.store.notices().await?.into_iter().collect();
        let system = Actor::system("scheduler");
        let context = super::system_context();
        let mut batch = Batch::default();
        let mut plan = |object_key: String,
                        end: OffsetDateTime,
                        tenant_id: &str,
                        near: &str,
                        expired: &str,
                        subject: String,
                        data: serde_json::Value| {
            let (label, event_type) = if end <= now {
                ("expired".to_string(), expired)
            } else {
                let crossed = events::crossed_thresholds(thresholds, end - now);
                let Some(nearest) = crossed.first() else { return };
                // Thresholds already passed without a notice are marked sent with the nearest one.
                for days in crossed.iter().skip(1) {
                    let label = format!("{days}d");
                    if !sent.contains(&(object_key.clone(), label.clone())) {
                        batch.mutations.push(Mutation::RecordNotice { object_key: object_key.clone(), threshold: label, at: now });
                        batch.changes.push(Change::new(
                            now,
                            tenant_id,
                            &system,
                            &context,
                            "notice.skip",
                            "notice",
                            &object_key,
                            json!({"reason": "a nearer threshold applies"}),
                        ));
                    }
                }
                (format!("{nearest}d"), near)
            };
            if sent.contains(&(object_key.clone(), label.clone())) {
                return;
            }
            let mut data = data;
            data["threshold"] = json!(label);
            data["expiresOn"] = json!(end.unix_timestamp());
            let change = Change::new(
                now,
                tenant_id,
                &system,
                &context,
                "notice.send",
                "notice",
                &object_key,
                json!({"eventType": event_type, "threshold": label}),
            )
            .with_event(event_type, subject, data);
            batch.mutations.push(Mutation::RecordNotice { object_key, threshold: label, at: now });
            batch.changes.push(change);
        };
        for credential in self.store.expiring_credentials(horizon).await? {
            plan(
                format!("credential:{}", credential.key_id),
                credential.end,
                &credential.tenant_id,
                "CredentialNearExpiry",
                "CredentialExpired",
                format!("applications/{}/passwordCredentials/{}", credential.application_id, credential.key_id),
                json!({"appId": credential.app_id, "displayName": credential.display_name, "keyId": credential.key_id}),
            );
        }
        for secret in self.store.expiring_secrets(horizon).await? {
            let end = OffsetDateTime::from_unix_timestamp(secret.exp).unwrap_or(now);
            plan(
                format!("secret:{}/{}/{}", secret.vault, secret.name.to_ascii_lowercase(), secret.version),
                end,
                &secret.tenant_id,
                "SecretNearExpiry",
                "SecretExpired",
                format!("vaults/{}/secrets/{}/{}", secret.vault, secret.name, secret.version),
                json!({"VaultName": secret.vault, "ObjectType": "Secret", "ObjectName": secret.name, "Version": secret.version, "NBF": secret.nbf, "EXP": secret.exp}),
            );
        }
        let sent_now = batch.changes.iter().filter(|c| !c.events.is_empty()).count();
        if batch.mutations.is_empty() {
            return Ok(0);
        }
        self.commit(batch).await?;
        Ok(sent_now)
    }

    /// Copies new outbox events into deliveries for the subscriptions that want them.
    pub async fn fan_out(&self) -> Result<usize> {
        let cursor = self.store.cursor(DISPATCH_CURSOR).await?;
        let found = self.store.events(cursor, 500).await?;
        let Some((last, _)) = found.last() else {
            return Ok(0);
        };
        let last = *last;
        let subscriptions = self.store.subscriptions(None).await?;
        let now = self.now();
        let deliveries: Vec<Delivery> = found
            .iter()
            .flat_map(|(seq, event)| {
                subscriptions.iter().filter(|s| s.wants(*seq, event)).map(move |s| Delivery {
                    event_seq: *seq,
                    subscription_id: s.id.clone(),
                    status: DeliveryStatus::Pending,
                    attempts: 0,
                    next_attempt_at: now,
                    last_error: None,
                    delivered_at: None,
                })
            })
            .collect();
        self.store.enqueue_deliveries(DISPATCH_CURSOR, last, &deliveries).await?;
        Ok(deliveries.len())
    }

    /// Claims the deliveries due now (no other node sends them while this one does) and returns
    /// them with their bodies and signatures.
    pub async fn due_deliveries(&self, limit: i64) -> Result<Vec<OutgoingDelivery>> {
        let now = self.now();
        let due = self.store.claim_deliveries(now, now + DELIVERY_LEASE, limit).await?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let subscriptions = self.store.subscriptions(None).await?;
        let mut out = Vec::with_capacity(due.len());
        for delivery in due {
            let (Some(subscription), Some(event)) =
                (subscriptions.iter().find(|s| s.id == delivery.subscription_id), self.store.event(delivery.event_seq).await?)
            else {
                continue;
            };
            let secret =
                self.material.open(&subscription.data_key_id, &subscription.sealed_secret, &events::secret_aad(&subscription.id))?;
            let secret = String::from_utf8(secret).map_err(|_| CoreError::Internal("a webhook secret is not UTF-8".into()))?;
            let body = events::payload(subscription.schema, &event, &self.settings.public_url, &self.settings.vault_resource);
            let timestamp = now.unix_timestamp();
            let signature = clavis_crypto::webhook::sign(&secret, &event.id, timestamp, &body)?;
            let content_type = match subscription.schema {
                PayloadSchema::EventGrid => "application/json",
                PayloadSchema::CloudEvents => "application/cloudevents+json",
            };
            out.push(OutgoingDelivery { delivery, url: subscription.url.clone(), id: event.id, timestamp, signature, body, content_type });
        }
        Ok(out)
    }

    /// Records an attempt: delivered, or retried later with backoff, or given up.
    pub async fn complete_delivery(&self, mut delivery: Delivery, outcome: std::result::Result<(), String>) -> Result<Delivery> {
        let now = self.now();
        delivery.attempts += 1;
        match outcome {
            Ok(()) => {
                delivery.status = DeliveryStatus::Delivered;
                delivery.delivered_at = Some(now);
                delivery.last_error = None;
            }
            Err(error) => {
                delivery.last_error = Some(crate::identity::truncate(&error, 300));
                if delivery.attempts >= events::MAX_ATTEMPTS {
                    delivery.status = DeliveryStatus::Failed;
                } else {
                    delivery.next_attempt_at = now + events::backoff(delivery.attempts - 1);
                }
            }
        }
        self.store.record_delivery(&delivery).await?;
        Ok(delivery)
    }
}
