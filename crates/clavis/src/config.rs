//! Layered configuration: compiled-in defaults (`config.default.toml`, which doubles as the
//! reference) → a TOML file → `CLAVIS_*` environment variables → command-line flags, validated
//! once into [`Config`]. Unknown keys in files are errors; unknown `CLAVIS_*` variables warn.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use serde::Deserialize;
use time::Duration;

use clavis_crypto::Algorithm;

const DEFAULTS: &str = include_str!("../config.default.toml");

/// Environment variables that are not settings (read elsewhere, or by tests and tools).
const NOT_SETTINGS: &[&str] =
    &["CLAVIS_CONFIG", "CLAVIS_MASTER_KEY", "CLAVIS_CREDENTIALS", "CLAVIS_URL", "CLAVIS_CLIENT_SECRET", "CLAVIS_CA_CERT"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    listen: String,
    data_dir: String,
    database_url: String,
    public_url: String,
    tls_cert: String,
    tls_key: String,
    master_key_file: String,
    log_format: String,
    log_level: String,
    tenant: RawTenant,
    tokens: RawTokens,
    credentials: RawCredentials,
    lifecycle: RawLifecycle,
    audit: RawAudit,
    logs: RawLogs,
    signing_keys: RawSigningKeys,
    jobs: RawJobs,
    portal: RawPortal,
    limits: RawLimits,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_connections: usize,
    header_read_timeout_seconds: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPortal {
    session_idle_minutes: i64,
    session_lifetime_hours: i64,
    failed_sign_in_free_attempts: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenant {
    name: String,
    domain: String,
    signing_algorithm: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokens {
    lifetime_min_seconds: i64,
    lifetime_max_seconds: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredentials {
    clock_skew_seconds: i64,
    failed_auth_free_attempts: u32,
    failed_auth_max_wait_seconds: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    value_reads: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogs {
    retention_days: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLifecycle {
    notice_thresholds_days: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSigningKeys {
    rotation_days: i64,
    publish_ahead_hours: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJobs {
    refresh_interval_ms: u64,
    usage_flush_interval_ms: u64,
    key_rotation_interval_seconds: u64,
    webhook_interval_ms: u64,
}

/// Flags of `clavis serve` that override other layers.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct ServeFlags {
    /// A TOML configuration file (see config.default.toml for every key).
    #[arg(long, env = "CLAVIS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address and port to listen on.
    #[arg(long)]
    pub listen: Option<String>,
    /// The data directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The store: sqlite://PATH or postgres://…
    #[arg(long)]
    pub database_url: Option<String>,
    /// The URL clients use to reach Clavis (issuer prefix).
    #[arg(long)]
    pub public_url: Option<String>,
    /// TLS certificate chain (PEM).
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// The default tenant's token signing algorithm (RS256, ES256, EdDSA), used when it is created.
    #[arg(long)]
    pub signing_algorithm: Option<String>,
    /// Log format: pretty or json.
    #[arg(long)]
    pub log_format: Option<String>,
}

/// Where the master key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterKeySource {
    /// `CLAVIS_MASTER_KEY`: the key itself, never written anywhere by Clavis.
    Environment,
    /// A file the operator manages (`master_key_file`): read, never written.
    OperatorFile(PathBuf),
    /// `{data_dir}/master.key`, created and rotated by Clavis.
    DataDir(PathBuf),
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub public_url: String,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub master_key: MasterKeySource,
    pub log_json: bool,
    pub log_level: String,
    pub tenant_name: String,
    pub tenant_domain: String,
    pub signing_algorithm: Algorithm,
    pub token_lifetime: (Duration, Duration),
    pub clock_skew: Duration,
    pub auth_throttle: clavis_core::throttle::ThrottleSettings,
    /// Portal sessions and sign-in throttling.
    pub portal: clavis_core::admin::PortalSettings,
    /// Connection and request-head limits.
    pub limits: clavis_server::serve::Limits,
    pub notice_thresholds_days: Vec<i64>,
    pub log_retention: Duration,
    pub buffered_read_audit: bool,
    pub rotation_period: Duration,
    pub publish_ahead: Duration,
    pub refresh_interval: std::time::Duration,
    pub usage_flush_interval: std::time::Duration,
    pub key_rotation_interval: std::time::Duration,
    pub webhook_interval: std::time::Duration,
}

fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(existing)), toml::Value::Table(incoming)) => merge(existing, incoming),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn env_value(text: &str) -> toml::Value {
    if let Ok(number) = text.parse::<i64>() {
        toml::Value::Integer(number)
    } else {
        toml::Value::String(text.to_string())
    }
}

/// Loads and validates the configuration from all layers.
pub fn load(flags: &ServeFlags, environment: &[(String, String)]) -> Result<Config> {
    let mut table: toml::Table = DEFAULTS.parse().context("the built-in defaults are malformed")?;
    if let Some(file) = &flags.config {
        let text = std::fs::read_to_string(file).with_context(|| format!("cannot read the configuration file {}", file.display()))?;
        let overlay: toml::Table = text.parse().with_context(|| format!("the configuration file {} is not valid TOML", file.display()))?;
        merge(&mut table, overlay);
    }
    for (name, value) in environment {
        let Some(rest) = name.strip_prefix("CLAVIS_") else {
            continue;
        };
        if NOT_SETTINGS.contains(&name.as_str()) || rest.starts_with("TEST_") || rest.starts_with("BENCH_") {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        let known = match path.as_slice() {
            [key] => table.get(key).is_some_and(|v| !v.is_table()),
            [section, key] => table.get(section).and_then(|s| s.as_table()).is_some_and(|s| s.contains_key(key)),
            _ => false,
        };
        if !known {
            eprintln!("warning: ignoring {name}: it names no Clavis setting (see config.default.toml)");
            continue;
        }
        let mut overlay = toml::Table::new();
        match path.as_slice() {
            [key] => {
                overlay.insert(key.clone(), env_value(value));
            }
            [section, key] => {
                let mut inner = toml::Table::new();
                inner.insert(key.clone(), env_value(value));
                overlay.insert(section.clone(), toml::Value::Table(inner));
            }
            _ => {}
        }
        merge(&mut table, overlay);
    }
    let mut set = |key: &str, value: Option<String>| {
        if let Some(value) = value {
            table.insert(key.to_string(), toml::Value::String(value));
        }
    };
    set("listen", flags.listen.clone());
    set("data_dir", flags.data_dir.as_ref().map(|p| p.display().to_string()));
    set("database_url", flags.database_url.clone());
    set("public_url", flags.public_url.clone());
    set("tls_cert", flags.tls_cert.as_ref().map(|p| p.display().to_string()));
    set("tls_key", flags.tls_key.as_ref().map(|p| p.display().to_string()));
    set("log_format", flags.log_format.clone());
    if let Some(algorithm) = &flags.signing_algorithm {
        if let Some(toml::Value::Table(tenant)) = table.get_mut("tenant") {
            tenant.insert("signing_algorithm".into(), toml::Value::String(algorithm.clone()));
        }
    }
    // Numbers given as strings in the environment are accepted by re-typing against defaults.
    let raw: Raw = toml::Value::Table(table).try_into().map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    validate(raw, environment)
}

fn validate(raw: Raw, environment: &[(String, String)]) -> Result<Config> {
    let listen: SocketAddr =
        raw.listen.parse().with_context(|| format!("listen = '{}' is not an address:port such as 127.0.0.1:8443", raw.listen))?;
    if raw.data_dir.trim().is_empty() {
        bail!("data_dir must not be empty");
    }
    let data_dir = PathBuf::from(&raw.data_dir);
    let database_url =
        if raw.database_url.is_empty() { format!("sqlite://{}", data_dir.join("clavis.db").display()) } else { raw.database_url.clone() };
    if !(database_url.starts_with("sqlite://") || database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")) {
        bail!("database_url must start with sqlite:// or postgres://, not '{}'", clavis_store::redact_url(&database_url));
    }
    let public_url = if raw.public_url.is_empty() {
        format!("https://localhost:{}", listen.port())
    } else {
        raw.public_url.trim_end_matches('/').to_string()
    };
    let Some(host_part) = public_url.strip_prefix("https://") else {
        bail!("public_url must be an https:// URL (the Azure clients refuse anything else), not '{public_url}'");
    };
    if host_part.is_empty() || host_part.contains('/') || host_part.contains('?') || host_part.contains('#') {
        bail!(
            "public_url must be https://host[:port] with no path (the token service is served at the root of its host), not '{public_url}'"
        );
    }
    let tls = match (raw.tls_cert.is_empty(), raw.tls_key.is_empty()) {
        (true, true) => None,
        (false, false) => Some((PathBuf::from(&raw.tls_cert), PathBuf::from(&raw.tls_key))),
        _ => bail!("tls_cert and tls_key must be given together"),
    };
    let master_key = if environment.iter().any(|(k, _)| k == "CLAVIS_MASTER_KEY") {
        MasterKeySource::Environment
    } else if !raw.master_key_file.is_empty() {
        MasterKeySource::OperatorFile(PathBuf::from(&raw.master_key_file))
    } else {
        MasterKeySource::DataDir(data_dir.join("master.key"))
    };
    let log_json = match raw.log_format.as_str() {
        "pretty" => false,
        "json" => true,
        other => bail!("log_format must be 'pretty' or 'json', not '{other}'"),
    };
    let signing_algorithm = Algorithm::parse(&raw.tenant.signing_algorithm)
        .with_context(|| format!("tenant.signing_algorithm must be RS256, ES256 or EdDSA, not '{}'", raw.tenant.signing_algorithm))?;
    if !clavis_core::identity::is_domain_name(&raw.tenant.domain) {
        bail!("tenant.domain '{}' is not a domain name such as contoso.clavis.localhost", raw.tenant.domain);
    }
    let (min, max) = (raw.tokens.lifetime_min_seconds, raw.tokens.lifetime_max_seconds);
    if !(600..=86_400).contains(&min) || max < min || max > 86_400 {
        bail!("tokens.lifetime_min_seconds and lifetime_max_seconds must satisfy 600 <= min <= max <= 86400 (got {min} and {max})");
    }
    if !(0..=3600).contains(&raw.credentials.clock_skew_seconds) {
        bail!("credentials.clock_skew_seconds must be between 0 and 3600");
    }
    if !(1..=86_400).contains(&raw.credentials.failed_auth_max_wait_seconds) {
        bail!("credentials.failed_auth_max_wait_seconds must be between 1 and 86400");
    }
    let notice_thresholds_days: Vec<i64> = raw
        .lifecycle
        .notice_thresholds_days
        .split(',')
        .map(|d| d.trim().parse::<i64>().ok().filter(|d| (1..=365).contains(d)))
        .collect::<Option<Vec<_>>>()
        .filter(|d| !d.is_empty())
        .with_context(|| {
            format!(
                "lifecycle.notice_thresholds_days must be a comma-separated list of days from 1 to 365, not '{}'",
                raw.lifecycle.notice_thresholds_days
            )
        })?;
    let buffered_read_audit = match raw.audit.value_reads.as_str() {
        "durable" => false,
        "buffered" => true,
        other => bail!("audit.value_reads must be 'durable' or 'buffered', not '{other}'"),
    };
    if !(1..=3650).contains(&raw.logs.retention_days) {
        bail!("logs.retention_days must be between 1 and 3650");
    }
    if !(1..=3650).contains(&raw.signing_keys.rotation_days) {
        bail!("signing_keys.rotation_days must be between 1 and 3650");
    }
    if raw.signing_keys.publish_ahead_hours < 0 || raw.signing_keys.publish_ahead_hours > raw.signing_keys.rotation_days * 24 {
        bail!("signing_keys.publish_ahead_hours must be between 0 and the rotation period");
    }
    if !(1..=1_000_000).contains(&raw.limits.max_connections) {
        bail!("limits.max_connections must be between 1 and 1000000");
    }
    if !(1..=300).contains(&raw.limits.header_read_timeout_seconds) {
        bail!("limits.header_read_timeout_seconds must be between 1 and 300");
    }
    if !(1..=1440).contains(&raw.portal.session_idle_minutes) {
        bail!("portal.session_idle_minutes must be between 1 and 1440");
    }
    if !(1..=720).contains(&raw.portal.session_lifetime_hours) {
        bail!("portal.session_lifetime_hours must be between 1 and 720");
    }
    let interval = |name: &str, ms: u64| -> Result<std::time::Duration> {
        if !(50..=3_600_000).contains(&ms) {
            bail!("jobs.{name} must be between 50 ms and one hour");
        }
        Ok(std::time::Duration::from_millis(ms))
    };
    Ok(Config {
        listen,
        data_dir,
        database_url,
        public_url,
        tls,
        master_key,
        log_json,
        log_level: raw.log_level,
        tenant_name: raw.tenant.name,
        tenant_domain: raw.tenant.domain.to_ascii_lowercase(),
        signing_algorithm,
        token_lifetime: (Duration::seconds(min), Duration::seconds(max)),
        clock_skew: Duration::seconds(raw.credentials.clock_skew_seconds),
        auth_throttle: clavis_core::throttle::ThrottleSettings {
            free_failures: raw.credentials.failed_auth_free_attempts,
            max_backoff: Duration::seconds(raw.credentials.failed_auth_max_wait_seconds),
            ..Default::default()
        },
        limits: clavis_server::serve::Limits {
            max_connections: raw.limits.max_connections,
            header_read_timeout: std::time::Duration::from_secs(raw.limits.header_read_timeout_seconds),
            ..Default::default()
        },
        portal: clavis_core::admin::PortalSettings {
            session_idle: Duration::minutes(raw.portal.session_idle_minutes),
            session_lifetime: Duration::hours(raw.portal.session_lifetime_hours),
            sign_in_free_failures: raw.portal.failed_sign_in_free_attempts,
        },
        notice_thresholds_days,
        log_retention: Duration::days(raw.logs.retention_days),
        buffered_read_audit,
        rotation_period: Duration::days(raw.signing_keys.rotation_days),
        publish_ahead: Duration::hours(raw.signing_keys.publish_ahead_hours),
        refresh_interval: interval("refresh_interval_ms", raw.jobs.refresh_interval_ms)?,
        usage_flush_interval: interval("usage_flush_interval_ms", raw.jobs.usage_flush_interval_ms)?,
        key_rotation_interval: interval("key_rotation_interval_seconds", raw.jobs.key_rotation_interval_seconds.saturating_mul(1000))?,
        webhook_interval: interval("webhook_interval_ms", raw.jobs.webhook_interval_ms)?,
    })
}

/// The vault resource: `https://vault.{public host}[:port]`. Vaults are served on its subdomains,
/// which is what the Key Vault SDKs' challenge-resource verification requires.
pub fn vault_resource(config: &Config) -> String {
    let host_port = config.public_url.trim_start_matches("https://");
    format!("https://vault.{host_port}")
}

/// The host of the public URL, for the development certificate.
pub fn public_host(config: &Config) -> String {
    let host_port = config.public_url.trim_start_matches("https://");
    if let Some(rest) = host_port.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("").to_string();
    }
    host_port.rsplit_once(':').map(|(h, _)| h).unwrap_or(host_port).to_string()
}

/// The absolute form of a path, for messages users copy.
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_are_valid() {
        let config = load(&ServeFlags::default(), &[]).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8443");
        assert_eq!(config.public_url, "https://localhost:8443");
        assert!(config.database_url.starts_with("sqlite://"));
        assert_eq!(config.signing_algorithm, Algorithm::RS256);
        assert_eq!(config.auth_throttle.free_failures, 10);
        assert_eq!(config.auth_throttle.max_backoff, Duration::minutes(5));
    }

    #[test]
    fn layers_override_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\n[tokens]\nlifetime_min_seconds = 1200\n").unwrap();
        let flags = ServeFlags { config: Some(file.clone()), ..Default::default() };
        let config = load(&flags, &env(&[("CLAVIS_TOKENS__LIFETIME_MIN_SECONDS", "1800"), ("CLAVIS_TEST_DATABASE_URL", "x")])).unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.token_lifetime.0, Duration::seconds(1800));
        let flags = ServeFlags { config: Some(file), listen: Some("127.0.0.1:9100".into()), ..Default::default() };
        assert_eq!(load(&flags, &[]).unwrap().listen.port(), 9100);
    }

    #[test]
    fn invalid_settings_are_named() {
        let bad = |pairs: &[(&str, &str)]| load(&ServeFlags::default(), &env(pairs)).unwrap_err().to_string();
        assert!(bad(&[("CLAVIS_LISTEN", "nope")]).contains("listen"));
        assert!(bad(&[("CLAVIS_PUBLIC_URL", "http://x")]).contains("https"));
        assert!(bad(&[("CLAVIS_TENANT__SIGNING_ALGORITHM", "HS256")]).contains("signing_algorithm"));
        assert!(bad(&[("CLAVIS_TOKENS__LIFETIME_MIN_SECONDS", "abc")]).contains("lifetime_min_seconds"));
        assert!(bad(&[("CLAVIS_CREDENTIALS__FAILED_AUTH_MAX_WAIT_SECONDS", "0")]).contains("failed_auth_max_wait_seconds"));
        assert!(bad(&[("CLAVIS_CREDENTIALS__FAILED_AUTH_FREE_ATTEMPTS", "-1")]).contains("failed_auth_free_attempts"));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        let error = load(&ServeFlags { config: Some(file), ..Default::default() }, &[]).unwrap_err().to_string();
        assert!(error.contains("lisen"), "{error}");
    }
}
