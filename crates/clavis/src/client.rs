//! The CLI's HTTPS client: it gets a token from Clavis's own token service with the bootstrap
//! (or a given) credential, then calls the management API, the way kubectl uses a kubeconfig.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context as _, Result};
use reqwest::Method;
use serde_json::Value;

/// How the CLI finds and authenticates to Clavis.
#[derive(Debug, Clone, clap::Args)]
pub struct Connection {
    /// Credentials file (the bootstrap.json that `clavis serve` writes, or one of the same shape).
    #[arg(long, global = true, env = "CLAVIS_CREDENTIALS")]
    pub credentials: Option<PathBuf>,
    /// Data directory whose bootstrap.json to use when --credentials is not given.
    #[arg(long = "data-dir", global = true, default_value = "./clavis-data")]
    pub data_dir: PathBuf,
    /// Clavis's URL (overrides the credentials file).
    #[arg(long, global = true, env = "CLAVIS_URL")]
    pub url: Option<String>,
    /// Tenant id or domain (overrides the credentials file).
    #[arg(long, global = true)]
    pub tenant: Option<String>,
    /// Client id to authenticate as; its secret comes from CLAVIS_CLIENT_SECRET or --client-secret-file.
    #[arg(long, global = true)]
    pub client_id: Option<String>,
    /// File holding the client secret for --client-id.
    #[arg(long, global = true)]
    pub client_secret_file: Option<PathBuf>,
    /// CA certificate (PEM) to trust; default: the one named by the credentials file, else the system's.
    #[arg(long, global = true, env = "CLAVIS_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
}

/// A resolved identity to act as. The secret is kept out of `Debug`.
pub struct Identity {
    pub url: String,
    pub tenant: String,
    pub client_id: String,
    secret: String,
    pub ca_cert: Option<PathBuf>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("url", &self.url)
            .field("tenant", &self.tenant)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Resolves the identity from flags, environment and the credentials file.
    pub fn resolve(connection: &Connection) -> Result<Self> {
        let file = connection.credentials.clone().unwrap_or_else(|| connection.data_dir.join("bootstrap.json"));
        let document: Option<Value> = match std::fs::read_to_string(&file) {
            Ok(text) => Some(serde_json::from_str(&text).with_context(|| format!("{} is not a Clavis credentials file", file.display()))?),
            Err(_) if connection.client_id.is_some() && connection.url.is_some() && connection.tenant.is_some() => None,
            Err(error) => bail!(
                "cannot read the credentials file {}: {error}.\nStart `clavis serve` in this directory first (it writes the bootstrap administrator's credential there), or pass --credentials FILE, or --url, --tenant and --client-id with CLAVIS_CLIENT_SECRET.",
                file.display()
            ),
        };
        let field = |name: &str| document.as_ref().and_then(|d| d.get(name)).and_then(Value::as_str).map(str::to_string);
        let url = connection.url.clone().or_else(|| field("url")).ok_or_else(|| anyhow!("no Clavis URL: pass --url"))?;
        let tenant = connection.tenant.clone().or_else(|| field("tenantId")).ok_or_else(|| anyhow!("no tenant: pass --tenant"))?;
        let (client_id, secret) = match &connection.client_id {
            Some(client_id) => {
                let secret = match (&connection.client_secret_file, std::env::var("CLAVIS_CLIENT_SECRET")) {
                    (Some(path), _) => {
                        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?.trim().to_string()
                    }
                    (None, Ok(secret)) => secret,
                    (None, Err(_)) => bail!("--client-id needs its secret in CLAVIS_CLIENT_SECRET or --client-secret-file"),
                };
                (client_id.clone(), secret)
            }
            None => (
                field("clientId").ok_or_else(|| anyhow!("the credentials file has no clientId"))?,
                field("clientSecret").ok_or_else(|| anyhow!("the credentials file has no clientSecret"))?,
            ),
        };
        let ca_cert = connection.ca_cert.clone().or_else(|| field("caCertificate").map(PathBuf::from));
        Ok(Self { url: url.trim_end_matches('/').to_string(), tenant, client_id, secret, ca_cert })
    }
}

/// Builds an HTTPS client that trusts `ca_cert` (or the system's roots).
pub fn http_client(ca_cert: Option<&Path>) -> Result<reqwest::Client> {
    http_client_with(ca_cert, None)
}

/// Like [`http_client`], with one host name pinned to an address (vault hosts such as
/// `kv1.vault.localhost` need no DNS entry: they are served by the same server).
pub fn http_client_with(ca_cert: Option<&Path>, pin: Option<(&str, std::net::SocketAddr)>) -> Result<reqwest::Client> {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    match ca_cert {
        Some(path) => {
            let pem = std::fs::read(path).with_context(|| format!("cannot read the CA certificate {}", path.display()))?;
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
                roots.add(cert.with_context(|| format!("{} is not a PEM certificate", path.display()))?)?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut builder = reqwest::Client::builder().use_preconfigured_tls(tls).user_agent(concat!("clavis-cli/", env!("CARGO_PKG_VERSION")));
    if let Some((host, address)) = pin {
        builder = builder.resolve(host, address);
    }
    Ok(builder.build()?)
}

/// A token endpoint answer: the parsed JSON and its status.
pub struct TokenAnswer {
    pub status: u16,
    pub body: Value,
}

/// An authenticated management API client.
pub struct Client {
    http: reqwest::Client,
    identity: Identity,
    token: Option<String>,
}

impl Client {
    /// A client acting as `identity`.
    pub fn new(identity: Identity) -> Result<Self> {
        Ok(Self { http: http_client(identity.ca_cert.as_deref())?, identity, token: None })
    }

    /// The identity in use.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Requests a token for `scope` (v2 endpoint, client_secret_post), returning the raw answer.
    pub async fn request_token(&self, scope: &str) -> Result<TokenAnswer> {
        let url = format!("{}/{}/oauth2/v2.0/token", self.identity.url, self.identity.tenant);
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", &self.identity.client_id),
            ("client_secret", &self.identity.secret),
            ("scope", scope),
        ];
        let response =
            self.http.post(&url).form(&form).send().await.with_context(|| format!("cannot reach Clavis at {}", self.identity.url))?;
        let status = response.status().as_u16();
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        Ok(TokenAnswer { status, body })
    }

    async fn bearer(&mut self) -> Result<String> {
        if let Some(token) = &self.token {
            return Ok(token.clone());
        }
        let answer = self.request_token(&format!("{}/.default", clavis_core::policy::MANAGEMENT_API_URI)).await?;
        let Some(token) = answer.body.get("access_token").and_then(Value::as_str) else {
            let description = answer.body.get("error_description").and_then(Value::as_str).unwrap_or("no description");
            bail!("Clavis refused the CLI's credential (HTTP {}): {}", answer.status, description.lines().next().unwrap_or(description));
        };
        self.token = Some(token.to_string());
        Ok(token.to_string())
    }

    /// A client for one vault's data plane, with a token for the vault resource.
    pub async fn vault(&self, vault: &str) -> Result<VaultClient> {
        let host_port = self.identity.url.trim_start_matches("https://").to_string();
        let vault_host =
            format!("{}.vault.{}", vault.to_ascii_lowercase(), host_port.rsplit_once(':').map_or(host_port.as_str(), |(h, _)| h));
        let target = if host_port.contains(':') { host_port.clone() } else { format!("{host_port}:443") };
        let address = tokio::net::lookup_host(&target)
            .await
            .with_context(|| format!("cannot resolve {target}"))?
            .next()
            .ok_or_else(|| anyhow!("{target} has no address"))?;
        let http = http_client_with(self.identity.ca_cert.as_deref(), Some((&vault_host, address)))?;
        let answer = self.request_token(&format!("https://vault.{host_port}/.default")).await?;
        let Some(token) = answer.body.get("access_token").and_then(Value::as_str) else {
            let description = answer.body.get("error_description").and_then(Value::as_str).unwrap_or("no description");
            bail!("Clavis refused a vault token (HTTP {}): {}", answer.status, description.lines().next().unwrap_or(description));
        };
        let port = host_port.rsplit_once(':').map(|(_, p)| format!(":{p}")).unwrap_or_default();
        Ok(VaultClient { http, base: format!("https://{vault_host}{port}"), token: token.to_string() })
    }

    /// Calls the management API; a Graph error becomes a readable error with its request id.
    pub async fn call(&mut self, method: Method, path: &str, body: Option<Value>) -> Result<Value> {
        let token = self.bearer().await?;
        let url = format!("{}{path}", self.identity.url);
        let mut request = self.http.request(method, &url).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.with_context(|| format!("cannot reach Clavis at {}", self.identity.url))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let value: Value = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        if status.is_success() {
            return Ok(value);
        }
        let error = value.get("error");
        let code = error.and_then(|e| e.get("code")).and_then(Value::as_str).unwrap_or("Error");
        let message = error.and_then(|e| e.get("message")).and_then(Value::as_str).unwrap_or("no message");
        let request_id = error.and_then(|e| e.pointer("/innerError/request-id")).and_then(Value::as_str).unwrap_or("-");
        bail!("{message}\n({code}, HTTP {}, request-id {request_id})", status.as_u16())
    }
}

/// A client of one vault's Key Vault-compatible data plane.
pub struct VaultClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl VaultClient {
    /// Calls the vault; a Key Vault error becomes a readable error.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let url = format!("{}{path}{separator}api-version=7.6", self.base);
        let mut request = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.with_context(|| format!("cannot reach the vault at {}", self.base))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let value: Value = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        if status.is_success() {
            return Ok(value);
        }
        let code =
            value.pointer("/error/innererror/code").or_else(|| value.pointer("/error/code")).and_then(Value::as_str).unwrap_or("Error");
        let message = value.pointer("/error/message").and_then(Value::as_str).unwrap_or("no message");
        bail!("{}\n({code}, HTTP {})", message.replace("\r\n", "\n").trim_end(), status.as_u16())
    }

    /// Follows `nextLink` paging and returns every item.
    pub async fn list(&self, path: &str) -> Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut page = self.call(Method::GET, path, None).await?;
        loop {
            items.extend(page["value"].as_array().cloned().unwrap_or_default());
            let Some(next) = page["nextLink"].as_str().filter(|n| !n.is_empty()) else { break };
            let relative = next.strip_prefix(&self.base).unwrap_or(next).to_string();
            let response = self.http.get(format!("{}{relative}", self.base)).bearer_auth(&self.token).send().await?;
            page = response.json().await?;
        }
        Ok(items)
    }
}
