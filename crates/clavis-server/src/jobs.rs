//! Background work of a node: picking up other nodes' changes, flushing last-use records, and
//! signing-key rotation. Each loop logs failures and keeps going; none holds secrets.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use clavis_core::Core;

/// How often each job runs.
#[derive(Clone, Copy, Debug)]
pub struct Intervals {
    /// Change propagation between nodes (bounds how stale a cache can be).
    pub refresh: Duration,
    /// Last-use flush (bounds how stale "last used" is, and what a crash loses).
    pub usage_flush: Duration,
    /// Signing-key rotation, expiry notices, and purge of deleted secrets past their retention.
    pub key_rotation: Duration,
    /// Webhook dispatch (fan-out of new events and delivery of due ones).
    pub webhooks: Duration,
    /// How long sign-in and request-failure records are kept.
    pub log_retention: time::Duration,
}

impl Default for Intervals {
    fn default() -> Self {
        Self {
            refresh: Duration::from_secs(1),
            usage_flush: Duration::from_secs(1),
            key_rotation: Duration::from_secs(60),
            webhooks: Duration::from_secs(1),
            log_retention: time::Duration::days(30),
        }
    }
}

/// The lease of the instance-wide jobs: signing-key and secret rotation, audit checkpoints,
/// expiry notices and purges.
pub const MAINTENANCE_LEASE: &str = "maintenance";
/// A maintenance lease lasts this many runs' intervals.
const MAINTENANCE_LEASE_INTERVALS: u32 = 3;

/// Starts the jobs; they stop when `shutdown` turns true, after a last usage flush.
pub fn spawn(
    core: Arc<Core>,
    metrics: Arc<crate::metrics::Metrics>,
    intervals: Intervals,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let metrics_for_webhooks = metrics.clone();
    let record = move |job: &'static str, ok: bool| {
        metrics.job_runs.add(vec![("job", job.to_string()), ("result", if ok { "success" } else { "failure" }.to_string())], 1)
    };
    tokio::spawn(async move {
        let mut refresh = tokio::time::interval(intervals.refresh);
        let mut flush = tokio::time::interval(intervals.usage_flush);
        let mut rotate = tokio::time::interval(intervals.key_rotation);
        let mut dispatch = tokio::time::interval(intervals.webhooks);
        let http = webhook_client();
        for timer in [&mut refresh, &mut flush, &mut rotate, &mut dispatch] {
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        loop {
            tokio::select! {
                _ = refresh.tick() => {
                    let result = core.refresh().await;
                    record("refresh", result.is_ok());
                    if let Err(error) = result {
                        tracing::warn!(%error, "change refresh failed");
                    }
                }
                _ = flush.tick() => {
                    if let Err(error) = core.flush_usage().await {
                        tracing::warn!(%error, "usage flush failed; kept for the next attempt");
                    }
                    if let Err(error) = core.flush_logs().await {
                        tracing::warn!(%error, "sign-in log flush failed; kept for the next attempt");
                    }
                    if let Err(error) = core.flush_read_audit().await {
                        tracing::warn!(%error, "audit flush of buffered reads failed; kept for the next attempt");
                    }
                }
                _ = rotate.tick() => {
                    // Instance-wide jobs run on one node: the holder of the maintenance lease,
                    // renewed every run; a dead holder's lease ends after three intervals.
                    let ttl = time::Duration::try_from(intervals.key_rotation * MAINTENANCE_LEASE_INTERVALS).unwrap_or(time::Duration::minutes(3));
                    match core.take_lease(MAINTENANCE_LEASE, ttl).await {
                        Ok(true) => {}
                        Ok(false) => continue,
                        Err(error) => {
                            record("maintenance_lease", false);
                            tracing::warn!(%error, "cannot take the maintenance lease; instance-wide jobs skipped");
                            continue;
                        }
                    }
                    let result = core.rotate_signing_keys().await;
                    record("signing_key_rotation", result.is_ok());
                    match result {
                        Ok(0) => {}
                        Ok(created) => tracing::info!(created, "signing keys created by rotation"),
                        Err(error) => tracing::warn!(%error, "signing-key rotation failed"),
                    }
                    let result = core.run_rotations().await;
                    record("secret_rotation", result.is_ok());
                    match result {
                        Ok(0) => {}
                        Ok(steps) => tracing::info!(steps, "secret rotation steps taken"),
                        Err(error) => tracing::warn!(%error, "secret rotation run failed"),
                    }
                    let result = core.checkpoint().await;
                    record("audit_checkpoint", result.is_ok());
                    if let Err(error) = result {
                        tracing::warn!(%error, "audit checkpoint failed");
                    }
                    let result = core.scan_notices().await;
                    record("expiry_notices", result.is_ok());
                    match result {
                        Ok(0) => {}
                        Ok(sent) => tracing::info!(sent, "expiry notices written"),
                        Err(error) => tracing::warn!(%error, "expiry notice scan failed"),
                    }
                    if let Err(error) = core.purge_logs(intervals.log_retention).await {
                        tracing::warn!(%error, "purge of old sign-in records failed");
                    }
                    if let Err(error) = core.purge_sessions().await {
                        tracing::warn!(%error, "purge of ended portal sessions failed");
                    }
                    if let Err(error) = core.purge_revocations().await {
                        tracing::warn!(%error, "purge of expired revocations failed");
                    }
                    if let Err(error) = core.purge_due().await {
                        tracing::warn!(%error, "purge of deleted secrets past their retention failed");
                    }
                }
                _ = dispatch.tick() => {
                    if let Some(http) = &http {
                        let (delivered, failed) = dispatch_webhooks(&core, http).await;
                        if delivered + failed > 0 {
                            metrics_for_webhooks.webhook_deliveries.add(vec![("result", "delivered".into())], delivered);
                            metrics_for_webhooks.webhook_deliveries.add(vec![("result", "failed_attempt".into())], failed);
                        }
                    }
                }
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
            }
        }
        if let Err(error) = core.flush_usage().await {
            tracing::warn!(%error, "final usage flush failed");
        }
        if let Err(error) = core.flush_logs().await {
            tracing::warn!(%error, "final sign-in log flush failed");
        }
        if let Err(error) = core.flush_read_audit().await {
            tracing::warn!(%error, "final audit flush of buffered reads failed");
        }
        if let Err(error) = core.release_lease(MAINTENANCE_LEASE).await {
            tracing::warn!(%error, "cannot release the maintenance lease; another node takes it when it ends");
        }
    })
}

/// The HTTP client of webhook deliveries: the system's trust roots, 10-second timeout, no redirects.
pub fn webhook_client() -> Option<reqwest::Client> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("clavis-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| tracing::error!(%error, "cannot build the webhook client; deliveries are paused"))
        .ok()
}

/// Fans new events out to subscriptions and sends the deliveries that are due, concurrently.
/// Returns the attempts that were accepted and those that failed.
pub async fn dispatch_webhooks(core: &Arc<Core>, http: &reqwest::Client) -> (u64, u64) {
    if let Err(error) = core.fan_out().await {
        tracing::warn!(%error, "webhook fan-out failed");
        return (0, 0);
    }
    let due = match core.due_deliveries(100).await {
        Ok(due) => due,
        Err(error) => {
            tracing::warn!(%error, "cannot prepare webhook deliveries");
            return (0, 0);
        }
    };
    let mut sending = tokio::task::JoinSet::new();
    for outgoing in due {
        let http = http.clone();
        let core = core.clone();
        sending.spawn(async move {
            let result = http
                .post(&outgoing.url)
                .header("content-type", outgoing.content_type)
                .header("webhook-id", &outgoing.id)
                .header("webhook-timestamp", outgoing.timestamp.to_string())
                .header("webhook-signature", &outgoing.signature)
                .body(outgoing.body)
                .send()
                .await;
            let outcome = match result {
                Ok(response) if response.status().is_success() => Ok(()),
                Ok(response) => Err(format!("HTTP {}", response.status().as_u16())),
                Err(error) => Err(if error.is_timeout() {
                    "timed out".to_string()
                } else if error.is_connect() {
                    "connection failed".to_string()
                } else {
                    "request failed".to_string()
                }),
            };
            let delivered = outcome.is_ok();
            if let Err(error) = core.complete_delivery(outgoing.delivery, outcome).await {
                tracing::warn!(%error, "cannot record a webhook delivery");
            }
            delivered
        });
    }
    let (mut delivered, mut failed) = (0, 0);
    while let Some(result) = sending.join_next().await {
        if result.unwrap_or(false) {
            delivered += 1;
        } else {
            failed += 1;
        }
    }
    (delivered, failed)
}
