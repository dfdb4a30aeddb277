//! Equal work at the token endpoint: an unknown tenant, an unknown client and a wrong secret take
//! indistinguishable time, compared as distributions (two-sample Kolmogorov–Smirnov), so timing
//! tells an attacker nothing the answer does not.

use std::time::Instant;

use serde_json::json;

use crate::support::{spawn, Backend};

/// The two-sample Kolmogorov–Smirnov statistic: the largest distance between the empirical
/// distribution functions (ties stepped over together).
fn ks(a: &mut [f64], b: &mut [f64]) -> f64 {
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (mut i, mut j, mut d) = (0, 0, 0.0_f64);
    while i < a.len() && j < b.len() {
        let value = a[i].min(b[j]);
        while i < a.len() && a[i] == value {
            i += 1;
        }
        while j < b.len() && b[j] == value {
            j += 1;
        }
        d = d.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    d
}

/// Times are compared at 100 ns: far finer than anyone timing answers over a network can resolve,
/// and coarser than the timer's own jitter.
const RESOLUTION_NS: f64 = 100.0;

fn median(sorted: &[f64]) -> f64 {
    sorted[sorted.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tenant_unknown_client_and_wrong_secret_take_the_same_time() {
    let app = spawn(Backend::Sqlite).await;
    let worker = app.create_app("worker", &[]).await;
    for i in 0..3 {
        app.add_secret(&worker, json!({"displayName": format!("s{i}")})).await;
    }
    let client_id = worker["appId"].as_str().unwrap().to_string();
    let wrong = clavis_crypto::PlainClientSecret::generate().expose().to_string();
    let unknown_tenant = clavis_crypto::random::guid();
    let unknown_client = clavis_crypto::random::guid();
    let cases: [(&str, &str); 3] = [(&unknown_tenant, &client_id), (&app.tenant_id, &unknown_client), (&app.tenant_id, &client_id)];
    const SAMPLES: usize = 4000;
    let mut times: [Vec<f64>; 3] = Default::default();
    for round in 0..(SAMPLES + 1000) {
        // Interleaved, in a rotating order, so drift and scheduling hit every case alike.
        for k in 0..3 {
            let case = (round + k) % 3;
            let (tenant, client) = cases[case];
            let started = Instant::now();
            let result = app.core.authenticate_client(tenant, client, Some(&wrong), false, None).await;
            let elapsed = (started.elapsed().as_nanos() as f64 / RESOLUTION_NS).round() * RESOLUTION_NS;
            assert!(result.is_err());
            if round >= 1000 {
                times[case].push(elapsed);
            }
        }
    }
    let [mut tenant, mut client, mut secret] = times;
    let critical = 1.949 * (2.0 / SAMPLES as f64).sqrt(); // α = 0.001
    let d_tenant_secret = ks(&mut tenant, &mut secret);
    let d_client_secret = ks(&mut client, &mut secret);
    let d_tenant_client = ks(&mut tenant, &mut client);
    println!(
        "medians: unknown tenant {:.0} ns, unknown client {:.0} ns, wrong secret {:.0} ns; KS D {d_tenant_secret:.3} / {d_client_secret:.3} / {d_tenant_client:.3} (critical {critical:.3} at α = 0.001, n = {SAMPLES})",
        median(&tenant),
        median(&client),
        median(&secret)
    );
    for (name, d) in [
        ("unknown tenant vs wrong secret", d_tenant_secret),
        ("unknown client vs wrong secret", d_client_secret),
        ("unknown tenant vs unknown client", d_tenant_client),
    ] {
        assert!(d < critical, "{name}: the time distributions differ (KS D = {d:.3}, critical {critical:.3})");
    }
    app.remember(&wrong);
    app.finish().await;
}
