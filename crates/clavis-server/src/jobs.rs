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
    /// Signing-key rotation check and purge of deleted secrets past their retention.
    pub key_rotation: Duration,
}

impl Default for Intervals {
    fn default() -> Self {
        Self { refresh: Duration::from_secs(1), usage_flush: Duration::from_secs(1), key_rotation: Duration::from_secs(60) }
    }
}

/// Starts the jobs; they stop when `shutdown` turns true, after a last usage flush.
pub fn spawn(core: Arc<Core>, intervals: Intervals, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut refresh = tokio::time::interval(intervals.refresh);
        let mut flush = tokio::time::interval(intervals.usage_flush);
        let mut rotate = tokio::time::interval(intervals.key_rotation);
        for timer in [&mut refresh, &mut flush, &mut rotate] {
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        loop {
            tokio::select! {
                _ = refresh.tick() => {
                    if let Err(error) = core.refresh().await {
                        tracing::warn!(%error, "change refresh failed");
                    }
                }
                _ = flush.tick() => {
                    if let Err(error) = core.flush_usage().await {
                        tracing::warn!(%error, "usage flush failed; kept for the next attempt");
                    }
                }
                _ = rotate.tick() => {
                    match core.rotate_signing_keys().await {
                        Ok(0) => {}
                        Ok(created) => tracing::info!(created, "signing keys created by rotation"),
                        Err(error) => tracing::warn!(%error, "signing-key rotation failed"),
                    }
                    if let Err(error) = core.purge_revocations().await {
                        tracing::warn!(%error, "purge of expired revocations failed");
                    }
                    if let Err(error) = core.purge_due().await {
                        tracing::warn!(%error, "purge of deleted secrets past their retention failed");
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
    })
}
