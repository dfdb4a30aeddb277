//! `clavis serve`: wiring only. Configuration → store → master key → core → TLS → server.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use serde_json::json;
use time::format_description::well_known::Rfc3339;

use clavis_core::clock::SystemClock;
use clavis_core::keys::RotationSchedule;
use clavis_core::store::Store as _;
use clavis_core::{BootstrapCredential, Core, CoreSettings};
use clavis_crypto::MasterKey;
use clavis_server::{jobs, AppState};
use clavis_store::SqlStore;

use crate::config::{absolute, public_host, Config, MasterKeySource};

/// Writes `contents` to a new file readable only by its owner, durably.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents)?;
    file.sync_all()?;
    Ok(())
}

fn read_master_key(path: &Path) -> Result<MasterKey> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the master key file {}", path.display()))?;
    MasterKey::parse(&text)
        .map_err(|_| anyhow::anyhow!("the master key file {} does not hold a 32-byte key (base64 or 64 hex digits)", path.display()))
}

/// Finds the master key, creating it in the data directory on first start. An interrupted
/// master-key rotation (a `master.key.next` beside `master.key`) is completed here: whichever
/// key the store's rows are wrapped with wins.
async fn resolve_master_key(config: &Config, store: &SqlStore) -> Result<(MasterKey, Option<PathBuf>)> {
    let wrapped = store.wrapped_keys().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let store_key_id = wrapped.first().map(|k| k.master_key_id.clone());
    match &config.master_key {
        MasterKeySource::Environment => {
            let text = std::env::var("CLAVIS_MASTER_KEY").unwrap_or_default();
            let key = MasterKey::parse(&text)
                .map_err(|_| anyhow::anyhow!("CLAVIS_MASTER_KEY does not hold a 32-byte key (base64 or 64 hex digits)"))?;
            Ok((key, None))
        }
        MasterKeySource::OperatorFile(path) => Ok((read_master_key(path)?, None)),
        MasterKeySource::DataDir(path) => {
            let pending = clavis_server::api::pending_master_key_path(path);
            if pending.exists() {
                let next = read_master_key(&pending)?;
                if store_key_id.as_deref() == Some(next.id()) {
                    std::fs::rename(&pending, path).context("cannot complete the interrupted master key rotation")?;
                    eprintln!("completed an interrupted master key rotation: {} is now the master key", path.display());
                    return Ok((next, Some(path.clone())));
                }
                std::fs::remove_file(&pending).ok();
            }
            if path.exists() {
                return Ok((read_master_key(path)?, Some(path.clone())));
            }
            if let Some(id) = store_key_id {
                bail!("the store's keys are wrapped by master key {id}, but {} does not exist; restore that file or give the key with CLAVIS_MASTER_KEY", path.display());
            }
            let key = MasterKey::generate();
            write_private(path, key.to_text().as_bytes())?;
            Ok((key, Some(path.clone())))
        }
    }
}

/// Loads the configured certificate, or creates and renews the development PKI.
fn tls_files(config: &Config) -> Result<(PathBuf, PathBuf, Option<PathBuf>)> {
    if let Some((cert, key)) = &config.tls {
        return Ok((cert.clone(), key.clone(), None));
    }
    let dir = config.data_dir.join("tls");
    std::fs::create_dir_all(&dir)?;
    let (ca_cert, ca_key) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
    let (server_cert, server_key, names_file) = (dir.join("server.pem"), dir.join("server-key.pem"), dir.join("server.names"));
    let now = time::OffsetDateTime::now_utc();
    if !ca_cert.exists() || !ca_key.exists() {
        let ca = clavis_crypto::tls::generate_ca(now).map_err(|e| anyhow::anyhow!("cannot create the development CA: {e}"))?;
        write_private(&ca_key, ca.key_pem.as_bytes())?;
        std::fs::write(&ca_cert, ca.cert_pem.as_bytes())?;
        std::fs::remove_file(&server_cert).ok();
    }
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string(), "*.vault.localhost".to_string()];
    let host = public_host(config);
    if !names.contains(&host) {
        names.push(host.clone());
        names.push(format!("*.vault.{host}"));
    }
    let wanted = names.join(",");
    let current = std::fs::read_to_string(&names_file).unwrap_or_default();
    let age_ok = std::fs::metadata(&server_cert)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age.as_secs() < 300 * 86_400);
    if current != wanted || !server_cert.exists() || !age_ok {
        let ca_key_pem = std::fs::read_to_string(&ca_key)?;
        let leaf = clavis_crypto::tls::issue_server_cert(&ca_key_pem, &names, now)
            .map_err(|e| anyhow::anyhow!("cannot issue the development server certificate: {e}"))?;
        write_private(&server_key, leaf.key_pem.as_bytes())?;
        std::fs::write(&server_cert, leaf.cert_pem.as_bytes())?;
        std::fs::write(&names_file, wanted)?;
    }
    Ok((server_cert, server_key, Some(ca_cert)))
}

fn write_bootstrap(
    config: &Config,
    bootstrap: &BootstrapCredential,
    ca: Option<&Path>,
    portal: Option<&(String, String)>,
) -> Result<PathBuf> {
    let path = config.data_dir.join("bootstrap.json");
    let mut document = json!({
        "tenantId": bootstrap.tenant_id,
        "tenantDomain": bootstrap.tenant_domain,
        "clientId": bootstrap.client_id,
        "clientSecret": bootstrap.client_secret.expose(),
        "keyId": bootstrap.key_id,
        "expiresAt": bootstrap.expires_at.format(&Rfc3339).unwrap_or_default(),
        "authority": format!("{}/{}", config.public_url, bootstrap.tenant_id),
        "url": config.public_url,
        "scope": format!("{}/.default", clavis_core::policy::MANAGEMENT_API_URI),
        "caCertificate": ca.map(|p| absolute(p).display().to_string()),
    });
    if let Some((user, password)) = portal {
        document["portal"] = json!({"url": format!("{}/portal", config.public_url), "userName": user, "password": password});
    }
    write_private(&path, serde_json::to_string_pretty(&document)?.as_bytes())?;
    Ok(path)
}

/// On a first start, a portal account `admin` (administrator) with a generated password, created by
/// the bootstrap administrator through the same operation as `clavis admin create`, so the portal
/// is usable with no CLI at all. The password goes only into bootstrap.json (0600).
async fn first_portal_account(core: &Core, bootstrap: &BootstrapCredential) -> Result<(String, String)> {
    let mut principal = clavis_core::policy::Principal {
        tenant_id: bootstrap.tenant_id.clone(),
        service_principal_id: String::new(),
        app_id: bootstrap.client_id.clone(),
        roles: vec![clavis_core::policy::ROLE_ADMINISTRATOR.to_string()],
        credential_id: bootstrap.key_id.clone(),
        user: None,
    };
    let error = |e: clavis_core::CoreError| anyhow::anyhow!("cannot create the first portal account: {e}");
    let found = {
        let auth = core.authorize(&principal, clavis_core::policy::Permission::Read).map_err(error)?;
        core.service_principal(&auth, &bootstrap.client_id).await.map_err(error)?
    };
    principal.service_principal_id = found.service_principal_id;
    let auth = core.authorize(&principal, clavis_core::policy::Permission::Administer).map_err(error)?;
    let context = clavis_core::audit::RequestContext {
        correlation_id: clavis_crypto::random::guid(),
        client_ip: String::new(),
        user_agent: "clavis serve".into(),
    };
    let password = clavis_crypto::password::generate_password();
    core.create_admin(&auth, &context, "admin", &password, "administrator").await.map_err(error)?;
    Ok(("admin".into(), password))
}

/// An opened instance: the core over its store, the bootstrap credential when this start created
/// the instance, the store (to close), and the master key file Clavis manages, if any.
type Opened = (Arc<Core>, Option<clavis_core::BootstrapCredential>, SqlStore, Option<PathBuf>);

/// Opens the store, the master key and the core, creating the instance on a first start.
async fn open_instance(config: &Config) -> Result<Opened> {
    prepare_data_dir(config)?;
    let store = SqlStore::open(&config.database_url).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let (master, master_file) = resolve_master_key(config, &store).await?;
    let store_for_close = store.clone();
    let (core, bootstrap) =
        Core::open(Arc::new(store), Arc::new(SystemClock), master, core_settings(config)).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((Arc::new(core), bootstrap, store_for_close, master_file))
}

/// Creates the data directory (0700) when missing.
fn prepare_data_dir(config: &Config) -> Result<()> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| format!("cannot create the data directory {}", config.data_dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&config.data_dir, std::fs::Permissions::from_mode(0o700)).ok();
    }
    Ok(())
}

/// The core's settings from the configuration.
fn core_settings(config: &Config) -> CoreSettings {
    CoreSettings {
        public_url: config.public_url.clone(),
        token_lifetime_min: config.token_lifetime.0,
        token_lifetime_max: config.token_lifetime.1,
        credential_clock_skew: config.clock_skew,
        auth_throttle: config.auth_throttle,
        rotation: RotationSchedule {
            period: config.rotation_period,
            publish_ahead: config.publish_ahead,
            retain_after: config.token_lifetime.1 + time::Duration::minutes(10),
        },
        default_tenant_domain: config.tenant_domain.clone(),
        default_tenant_name: config.tenant_name.clone(),
        default_signing_algorithm: config.signing_algorithm,
        vault_resource: crate::config::vault_resource(config),
        notice_thresholds_days: config.notice_thresholds_days.clone(),
        buffered_read_audit: config.buffered_read_audit,
        portal: config.portal,
    }
}

/// A key that is configured but malformed is a setting to fix, not a reason to start sealed.
fn check_master_key_format(config: &Config) -> Result<()> {
    match &config.master_key {
        MasterKeySource::Environment => {
            MasterKey::parse(&std::env::var("CLAVIS_MASTER_KEY").unwrap_or_default())
                .map_err(|_| anyhow::anyhow!("CLAVIS_MASTER_KEY does not hold a 32-byte key (base64 or 64 hex digits)"))?;
        }
        MasterKeySource::OperatorFile(path) | MasterKeySource::DataDir(path) if path.exists() => {
            read_master_key(path)?;
        }
        _ => {}
    }
    Ok(())
}

/// A serving process: what it needs to open the instance, at start or when unsealed.
struct Node {
    config: Config,
    store: SqlStore,
    ca: Option<PathBuf>,
    local: std::net::SocketAddr,
    started: std::time::Instant,
    ready: Arc<AtomicBool>,
    switch: clavis_server::sealed::Switch,
    stop: tokio::sync::watch::Receiver<bool>,
    jobs: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    opened: tokio::sync::Mutex<bool>,
}

impl Node {
    /// Opens the instance with `master` and switches the listener to the full service.
    async fn open(&self, master: MasterKey, master_file: Option<PathBuf>) -> Result<()> {
        let mut opened = self.opened.lock().await;
        if *opened {
            return Ok(());
        }
        // The store names the key its rows are wrapped with: another key is refused before
        // anything is tried with it.
        let wrapped = self.store.wrapped_keys().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Some(expected) = wrapped.first().map(|k| k.master_key_id.clone()) {
            if expected != master.id() {
                bail!("the key given is not this instance's master key (it needs master key {expected})");
            }
        }
        let (core, bootstrap) = Core::open(Arc::new(self.store.clone()), Arc::new(SystemClock), master, core_settings(&self.config))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let core = Arc::new(core);
        let bootstrap_file = match &bootstrap {
            Some(bootstrap) => {
                let portal = first_portal_account(&core, bootstrap).await?;
                Some(write_bootstrap(&self.config, bootstrap, self.ca.as_deref(), Some(&portal))?)
            }
            None => None,
        };
        drop(bootstrap);
        let state = AppState::new(core.clone(), self.ready.clone(), master_file);
        let metrics = state.metrics.clone();
        self.switch.set(clavis_server::router(state));
        let intervals = jobs::Intervals {
            refresh: self.config.refresh_interval,
            usage_flush: self.config.usage_flush_interval,
            key_rotation: self.config.key_rotation_interval,
            webhooks: self.config.webhook_interval,
            log_retention: self.config.log_retention,
        };
        *self.jobs.lock().unwrap_or_else(|e| e.into_inner()) = Some(jobs::spawn(core.clone(), metrics, intervals, self.stop.clone()));
        print_banner(&self.config, &core, self.local, self.ca.as_deref(), bootstrap_file.as_deref(), self.started);
        self.ready.store(true, Ordering::Release);
        *opened = true;
        Ok(())
    }
}

/// Runs the server until SIGINT or SIGTERM. Without a master key that opens the instance it
/// serves sealed until `clavis unseal`.
pub async fn run(config: Config) -> Result<()> {
    let started = std::time::Instant::now();
    prepare_data_dir(&config)?;
    let store = SqlStore::open(&config.database_url).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let (cert, key, ca) = tls_files(&config)?;
    let tls = clavis_server::tls::server_config(
        &std::fs::read(&cert).with_context(|| format!("cannot read {}", cert.display()))?,
        &std::fs::read(&key).with_context(|| format!("cannot read {}", key.display()))?,
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    let listener = tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("cannot listen on {}", config.listen))?;
    let local = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let limits = config.limits;
    let node = Arc::new(Node {
        config,
        store: store.clone(),
        ca,
        local,
        started,
        ready: Arc::new(AtomicBool::new(false)),
        switch: clavis_server::sealed::Switch::default(),
        stop: stop_rx,
        jobs: std::sync::Mutex::new(None),
        opened: tokio::sync::Mutex::new(false),
    });
    check_master_key_format(&node.config)?;
    let sealed = match resolve_master_key(&node.config, &store).await {
        Ok((master, file)) => node.open(master, file).await.err(),
        Err(error) => Some(error),
    };
    if let Some(reason) = sealed {
        let reason = format!("{reason:#}");
        eprintln!(
            "\nClavis is SEALED: {reason}\nIt answers 503 until unsealed: clavis unseal --key-file FILE (or the key on standard input).\n"
        );
        tracing::warn!(target: "clavis::seal", %reason, "started sealed");
        let opener = node.clone();
        let unseal: clavis_server::sealed::Unseal = Arc::new(move |text: String| {
            let node = opener.clone();
            Box::pin(async move {
                let key = MasterKey::parse(&text).map_err(|_| "the key is not 32 bytes in base64 or hex".to_string())?;
                node.open(key, None).await.map_err(|e| format!("{e:#}"))
            })
        });
        node.switch.set(clavis_server::sealed::router(&reason, unseal));
    }
    let ready = node.ready.clone();
    let shutdown = async move {
        shutdown_signal().await;
        tracing::info!("shutting down: no new connections; draining requests");
        ready.store(false, Ordering::Release);
    };
    clavis_server::serve::serve_with(listener, tls, node.switch.router(), limits, shutdown).await;
    let _ = stop_tx.send(true);
    let jobs = node.jobs.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(jobs) = jobs {
        let _ = jobs.await;
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn print_banner(
    config: &Config,
    core: &Core,
    local: std::net::SocketAddr,
    ca: Option<&Path>,
    bootstrap: Option<&Path>,
    started: std::time::Instant,
) {
    let tenant = core.default_tenant();
    let mut out = String::new();
    out.push_str(&format!(
        "Clavis {} is serving {} (listening on {local}, store: {})\n",
        env!("CARGO_PKG_VERSION"),
        config.public_url,
        core.store().backend()
    ));
    if let Some(tenant) = tenant {
        out.push_str(&format!("  Tenant:            {} ({})\n", tenant.id, tenant.domains.join(", ")));
        out.push_str(&format!("  Authority:         {}/{}\n", config.public_url, tenant.id));
    }
    if let Some(ca) = ca {
        let ca = absolute(ca);
        out.push_str(&format!("  CA certificate:    {}\n", ca.display()));
        out.push_str(&format!(
            "    trust it with:   export REQUESTS_CA_BUNDLE={0} SSL_CERT_FILE={0} NODE_EXTRA_CA_CERTS={0}\n",
            ca.display()
        ));
    }
    match bootstrap {
        Some(file) => out.push_str(&format!(
            "  Administrator:     created; its credential is in {} (mode 0600). The clavis CLI in this directory uses it by default: try `clavis app list`.\n",
            absolute(file).display()
        )),
        None => out.push_str(&format!("  Administrator:     see {} (written at first start)\n", absolute(&config.data_dir.join("bootstrap.json")).display())),
    }
    out.push_str(&format!(
        "  Portal:            {}/portal (first start: user admin, its password in bootstrap.json; more with `clavis admin create`)\n",
        config.public_url
    ));
    out.push_str(&format!("  Ready in {} ms. Stop with Ctrl-C.\n", started.elapsed().as_millis()));
    print!("{out}");
    let _ = std::io::stdout().flush();
}

/// Arguments of `clavis bench-load`: a synthetic data set for benchmarks at scale.
#[derive(Debug, clap::Args)]
pub struct BenchLoadArgs {
    #[command(flatten)]
    pub serve: crate::config::ServeFlags,
    /// Applications to register, each with one client secret (all the same secret).
    #[arg(long, default_value_t = 100_000)]
    pub apps: usize,
    /// The vault to fill (created when missing).
    #[arg(long, default_value = "bulk")]
    pub vault: String,
    /// Secrets in that vault.
    #[arg(long, default_value_t = 100_000)]
    pub secrets: usize,
    /// Versions of each secret.
    #[arg(long, default_value_t = 10)]
    pub versions_per_secret: usize,
    /// Bytes of each secret value.
    #[arg(long, default_value_t = 100)]
    pub value_bytes: usize,
    /// Where to write the shared client secret (first line) and the client ids (one per line),
    /// mode 0600, for a benchmark that spreads requests over the applications.
    #[arg(long)]
    pub clients_file: PathBuf,
}

/// Runs `clavis bench-load` against a stopped instance (or creates one).
pub async fn bench_load(config: Config, args: BenchLoadArgs) -> Result<()> {
    let (core, bootstrap, store, _) = open_instance(&config).await?;
    if let Some(bootstrap) = &bootstrap {
        let (_, _, ca) = tls_files(&config)?;
        write_bootstrap(&config, bootstrap, ca.as_deref(), None)?;
    }
    let plan = clavis_core::BulkPlan {
        applications: args.apps,
        vault: args.vault,
        secrets: args.secrets,
        versions_per_secret: args.versions_per_secret,
        value_bytes: args.value_bytes,
    };
    let started = std::time::Instant::now();
    let last = std::sync::Mutex::new(std::time::Instant::now());
    let loaded = core
        .bulk_load(&plan, |what, count| {
            let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
            if last.elapsed() >= std::time::Duration::from_secs(2) {
                eprintln!("  {count} {what} after {:.1} s", started.elapsed().as_secs_f64());
                *last = std::time::Instant::now();
            }
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let versions = plan.secrets * plan.versions_per_secret;
    let mut text = String::with_capacity(40 * (loaded.client_ids.len() + 1));
    text.push_str(loaded.secret.expose());
    text.push('\n');
    for id in &loaded.client_ids {
        text.push_str(id);
        text.push('\n');
    }
    write_private(&args.clients_file, text.as_bytes())?;
    println!(
        "Loaded {} applications and {versions} secret versions in {seconds:.1} s ({:.0} rows/s); client ids in {}.",
        plan.applications,
        (plan.applications + versions) as f64 / seconds,
        args.clients_file.display()
    );
    drop(core);
    store.close().await;
    Ok(())
}

/// Arguments of `clavis backup`.
#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub serve: crate::config::ServeFlags,
    /// The file to write (mode 0600). Encrypted under the master key: keep that key apart.
    #[arg(long)]
    pub out: PathBuf,
}

/// Arguments of `clavis restore`.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub serve: crate::config::ServeFlags,
    /// The backup file to restore.
    #[arg(long)]
    pub from: PathBuf,
}

/// Runs `clavis backup`: an encrypted, consistent snapshot of a live instance.
pub async fn backup(config: Config, args: BackupArgs) -> Result<()> {
    let store = SqlStore::open(&config.database_url).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    if !store.holds_instance().await.map_err(|e| anyhow::anyhow!("{e}"))? {
        bail!("the store at {} holds no Clavis instance to back up", clavis_store::redact_url(&config.database_url));
    }
    let (master, _) = resolve_master_key(&config, &store).await?;
    let started = std::time::Instant::now();
    let now = time::OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default();
    let summary = clavis_store::backup::backup(&store, &master, &args.out, &now).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let rows: i64 = summary.tables.iter().map(|(_, n)| n).sum();
    println!(
        "Wrote {} ({} bytes, {rows} rows, audit chain of {} records verified) in {:.1} s. It opens only with master key {}.",
        args.out.display(),
        summary.bytes,
        summary.audit_records,
        started.elapsed().as_secs_f64(),
        master.id()
    );
    store.close().await;
    Ok(())
}

/// Runs `clavis restore` onto an empty instance.
pub async fn restore(config: Config, args: RestoreArgs) -> Result<()> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| format!("cannot create the data directory {}", config.data_dir.display()))?;
    let store = SqlStore::open(&config.database_url).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    if store.holds_instance().await.map_err(|e| anyhow::anyhow!("{e}"))? {
        bail!("the target store already holds an instance; restore onto an empty data directory or database");
    }
    if let MasterKeySource::DataDir(path) = &config.master_key {
        if !path.exists() {
            bail!("give the backup's master key: CLAVIS_MASTER_KEY, master_key_file, or {} in the data directory", path.display());
        }
    }
    let (master, _) = resolve_master_key(&config, &store).await?;
    let report = clavis_store::backup::restore(&args.from, &master, &store).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let rows: i64 = report.tables.iter().map(|(_, n)| n).sum();
    println!("Restored {rows} rows; row counts match the backup and the audit chain of {} records verifies.", report.audit_records);
    store.close().await;
    Ok(())
}
