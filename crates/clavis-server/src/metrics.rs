//! Prometheus metrics at `/metrics`: token and vault requests by outcome with latency
//! histograms, days until each application's nearest secret expiry, webhook deliveries, jobs and
//! store health. Counters are in-process (per node); label values are bounded (tenants that
//! exist, fixed error codes, route templates), so an attacker cannot grow them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

/// A latency histogram with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; 12],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn observe(&self, micros: u64) {
        let seconds = micros as f64 / 1e6;
        if let Some(index) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.counts[index].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let total = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {total}");
    }
}

/// Labelled counters.
#[derive(Debug, Default)]
pub struct Counters(Mutex<BTreeMap<Vec<(&'static str, String)>, u64>>);

impl Counters {
    /// Adds `by` to the counter with these labels.
    pub fn add(&self, labels: Vec<(&'static str, String)>, by: u64) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()).entry(labels).or_default() += by;
    }

    fn render(&self, out: &mut String, name: &str, help: &str, kind: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in self.0.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(out, "{name}{} {value}", label_text(labels));
        }
    }
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn label_text(labels: &[(&'static str, String)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    format!("{{{}}}", inner.join(","))
}

/// What the edge saw of one request.
#[derive(Clone, Copy, Debug)]
pub struct Observed<'a> {
    /// The route template.
    pub route: &'a str,
    /// The path (its first segment names the tenant on token routes).
    pub path: &'a str,
    /// The method.
    pub method: &'a str,
    /// The status.
    pub status: u16,
    /// The error code, if any.
    pub code: &'a str,
    /// Latency in microseconds.
    pub micros: u64,
}

/// Every metric of a node.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Failed token requests by tenant, result and AADSTS code.
    pub token_requests: Counters,
    /// Successful token requests by tenant.
    pub token_successes: std::sync::RwLock<BTreeMap<String, AtomicU64>>,
    /// Token request latency.
    pub token_latency: Histogram,
    /// Vault requests by operation and result.
    pub vault_requests: Counters,
    /// Vault request latency.
    pub vault_latency: Histogram,
    /// Management API requests by status class.
    pub api_requests: Counters,
    /// Background job runs by job and result.
    pub job_runs: Counters,
    /// Webhook delivery attempts by result.
    pub webhook_deliveries: Counters,
}

impl Metrics {
    /// Records one request at the edge.
    pub fn observe(&self, state: &AppState, request: &Observed<'_>) {
        let Observed { route, path, method, status, code, micros } = *request;
        let result = if status < 400 { "success" } else { "failure" };
        if route.contains("/oauth2/") && route.ends_with("token") {
            let segment = path.trim_start_matches('/').split('/').next().unwrap_or_default();
            let tenant = state.core.resolve_tenant(segment);
            self.token_latency.observe(micros);
            if status < 400 {
                // The hot path: a read lock and an atomic add, no allocation once warm.
                if let Some(tenant) = tenant {
                    if let Some(counter) = self.token_successes.read().unwrap_or_else(|e| e.into_inner()).get(tenant.id.as_str()) {
                        counter.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    self.token_successes
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry(tenant.id.clone())
                        .or_default()
                        .fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
            let tenant = tenant.map(|t| t.id.clone()).unwrap_or_else(|| "unknown".into());
            self.token_requests.add(vec![("tenant", tenant), ("result", result.into()), ("code", code.into())], 1);
        } else if route.starts_with("/secrets") || route.starts_with("/deletedsecrets") {
            self.vault_requests.add(vec![("operation", format!("{method} {route}")), ("result", result.into()), ("code", code.into())], 1);
            self.vault_latency.observe(micros);
        } else if route.starts_with("/v1.0/") {
            self.api_requests.add(vec![("status", format!("{}xx", status / 100))], 1);
        }
    }
}

/// `GET /metrics`: the Prometheus text exposition.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let metrics = &state.metrics;
    let mut out = String::with_capacity(4096);
    metrics.token_requests.render(&mut out, "clavis_token_requests_total", "Token requests by tenant, result and AADSTS code.", "counter");
    for (tenant, count) in metrics.token_successes.read().unwrap_or_else(|e| e.into_inner()).iter() {
        let labels = label_text(&[("tenant", tenant.clone()), ("result", "success".into()), ("code", String::new())]);
        let _ = writeln!(out, "clavis_token_requests_total{labels} {}", count.load(Ordering::Relaxed));
    }
    metrics.token_latency.render(&mut out, "clavis_token_request_duration_seconds", "Token request latency.");
    metrics.vault_requests.render(
        &mut out,
        "clavis_vault_requests_total",
        "Vault requests by operation, result and error code.",
        "counter",
    );
    metrics.vault_latency.render(&mut out, "clavis_vault_request_duration_seconds", "Vault request latency.");
    metrics.api_requests.render(&mut out, "clavis_management_requests_total", "Management API requests by status class.", "counter");
    metrics.job_runs.render(&mut out, "clavis_job_runs_total", "Background job runs by job and result.", "counter");
    metrics.webhook_deliveries.render(&mut out, "clavis_webhook_deliveries_total", "Webhook delivery attempts by result.", "counter");
    let store_up = state.core.store().ping().await.is_ok();
    let _ = writeln!(
        out,
        "# HELP clavis_store_up Whether the store answers.\n# TYPE clavis_store_up gauge\nclavis_store_up {}",
        u8::from(store_up)
    );
    let usage = state.core.usage_stats();
    let _ = writeln!(out, "# HELP clavis_usage_buffer_pending Last-use records waiting for the next flush.\n# TYPE clavis_usage_buffer_pending gauge\nclavis_usage_buffer_pending {}", usage.pending);
    let _ = writeln!(out, "# HELP clavis_log_records_dropped_total Sign-in and failure records dropped because the buffer was full.\n# TYPE clavis_log_records_dropped_total counter\nclavis_log_records_dropped_total {}", state.core.dropped_log_records());
    if let Ok(expiries) = state.core.nearest_expiries().await {
        let _ = writeln!(out, "# HELP clavis_credential_nearest_expiry_days Days until the application's nearest client secret expiry (negative: expired).\n# TYPE clavis_credential_nearest_expiry_days gauge");
        for (tenant, app_id, name, days) in expiries {
            let _ = writeln!(
                out,
                "clavis_credential_nearest_expiry_days{} {days:.2}",
                label_text(&[("tenant", tenant), ("app_id", app_id), ("app", name)])
            );
        }
    }
    let mut response = out.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}
