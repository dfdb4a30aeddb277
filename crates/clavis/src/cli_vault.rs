//! `clavis vault`, `clavis secret`, `clavis role` and `clavis run`: vaults through the management
//! API, secrets through the Key Vault-compatible data plane (the same API the Azure SDKs use).

use std::io::{Read as _, Write as _};
use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::cli::Global;
use crate::client::{Client, Identity};
use crate::output::{self, field, Format};

#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Create a vault, served at https://NAME.vault.HOST[:PORT].
    Create {
        name: String,
        /// Days a deleted secret stays recoverable (7–90).
        #[arg(long, default_value_t = 90)]
        retention_days: i64,
        /// Deleted secrets cannot be purged before their retention ends (cannot be turned off).
        #[arg(long)]
        purge_protection: bool,
        /// Refuse to serve expired and not-yet-valid secret versions (a Clavis extension).
        #[arg(long)]
        enforce_expiry: bool,
        /// Requests per second before 429 Throttled (0: no limit).
        #[arg(long, default_value_t = 0)]
        rate_limit: i64,
    },
    /// List vaults.
    List,
    /// Show a vault.
    Show { name: String },
    /// Change a vault's settings.
    Update {
        name: String,
        #[arg(long)]
        purge_protection: Option<bool>,
        #[arg(long)]
        enforce_expiry: Option<bool>,
        #[arg(long)]
        rate_limit: Option<i64>,
    },
    /// Delete a vault (soft: recoverable during its retention).
    Delete { name: String },
    /// Recover a deleted vault.
    Recover { name: String },
    /// Purge a deleted vault for good.
    Purge { name: String },
}

/// Where a secret value comes from: an argument, a file, or standard input.
#[derive(Debug, clap::Args)]
pub struct ValueSource {
    /// The value (visible in shell history and the process list; prefer --file or stdin).
    #[arg(long, conflicts_with = "file")]
    value: Option<String>,
    /// Read the value from a file.
    #[arg(long)]
    file: Option<PathBuf>,
}

impl ValueSource {
    fn read(&self) -> Result<String> {
        if let Some(value) = &self.value {
            return Ok(value.clone());
        }
        if let Some(path) = &self.file {
            return std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()));
        }
        let mut value = String::new();
        std::io::stdin().read_to_string(&mut value).context("cannot read the value from standard input")?;
        Ok(value.strip_suffix('\n').unwrap_or(&value).to_string())
    }
}

/// Properties shared by `secret set` and `secret update`.
#[derive(Debug, clap::Args)]
pub struct PropertyFlags {
    /// Content type (e.g. text/plain).
    #[arg(long)]
    content_type: Option<String>,
    /// A tag KEY=VALUE (repeatable; on update, replaces all tags).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Expiry (RFC 3339).
    #[arg(long)]
    expires: Option<String>,
    /// Not before (RFC 3339).
    #[arg(long)]
    not_before: Option<String>,
}

impl PropertyFlags {
    fn apply(&self, body: &mut Value, enabled: Option<bool>) -> Result<()> {
        if let Some(content_type) = &self.content_type {
            body["contentType"] = json!(content_type);
        }
        if !self.tags.is_empty() {
            let mut tags = serde_json::Map::new();
            for tag in &self.tags {
                let (key, value) = tag.split_once('=').with_context(|| format!("--tag '{tag}' is not KEY=VALUE"))?;
                tags.insert(key.to_string(), json!(value));
            }
            body["tags"] = Value::Object(tags);
        }
        let mut attributes = serde_json::Map::new();
        let time = |text: &str| -> Result<i64> {
            Ok(OffsetDateTime::parse(text, &Rfc3339).with_context(|| format!("'{text}' is not an RFC 3339 date-time"))?.unix_timestamp())
        };
        if let Some(expires) = &self.expires {
            attributes.insert("exp".into(), json!(time(expires)?));
        }
        if let Some(not_before) = &self.not_before {
            attributes.insert("nbf".into(), json!(time(not_before)?));
        }
        if let Some(enabled) = enabled {
            attributes.insert("enabled".into(), json!(enabled));
        }
        body["attributes"] = Value::Object(attributes);
        Ok(())
    }
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Set a secret: a new version (the value from --value, --file or standard input).
    Set {
        name: String,
        #[arg(long)]
        vault: String,
        #[command(flatten)]
        source: ValueSource,
        #[command(flatten)]
        properties: PropertyFlags,
        /// Store the version disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// Print a secret's value alone (for shells), or the whole bundle with -o json.
    Get {
        name: String,
        #[arg(long)]
        vault: String,
        #[arg(long)]
        version: Option<String>,
    },
    /// List secrets (never values).
    List {
        #[arg(long)]
        vault: String,
        /// List deleted secrets instead.
        #[arg(long)]
        deleted: bool,
    },
    /// List a secret's versions.
    Versions {
        name: String,
        #[arg(long)]
        vault: String,
    },
    /// Change a version's properties (the latest unless --version).
    Update {
        name: String,
        #[arg(long)]
        vault: String,
        #[arg(long)]
        version: Option<String>,
        #[arg(long)]
        enabled: Option<bool>,
        #[command(flatten)]
        properties: PropertyFlags,
    },
    /// Delete a secret (soft: recoverable during the vault's retention).
    Delete {
        name: String,
        #[arg(long)]
        vault: String,
    },
    /// Recover a deleted secret.
    Recover {
        name: String,
        #[arg(long)]
        vault: String,
    },
    /// Purge a deleted secret for good.
    Purge {
        name: String,
        #[arg(long)]
        vault: String,
    },
    /// Back a secret up (all versions, sealed to this Clavis tenant) to a file or standard output.
    Backup {
        name: String,
        #[arg(long)]
        vault: String,
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Restore a backup from a file or standard input.
    Restore {
        #[arg(long)]
        vault: String,
        #[arg(long)]
        file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Grant a vault role to an application.
    Assign {
        /// The application (client id, object id or service principal id).
        #[arg(long)]
        principal: String,
        /// Key Vault Administrator, Secrets Officer, Secrets User, Reader or Purge Operator.
        #[arg(long)]
        role: String,
        /// Scope: / (every vault), /vaults/NAME or /vaults/NAME/secrets/SECRET.
        #[arg(long)]
        scope: String,
    },
    /// List vault role assignments.
    List,
    /// Remove a vault role assignment by id.
    Remove { id: String },
}

fn vault_row(v: &Value) -> Vec<String> {
    vec![
        field(v, "/name"),
        field(v, "/vaultUri"),
        field(v, "/retentionDays"),
        field(v, "/purgeProtection"),
        field(v, "/enforceExpiry"),
        if v["deletedDateTime"].is_null() { "active".into() } else { format!("deleted {}", field(v, "/deletedDateTime")) },
    ]
}

/// Runs `clavis vault …`.
pub async fn vault(global: &Global, command: VaultCommand) -> Result<()> {
    let mut client = Client::new(Identity::resolve(&global.connection)?)?;
    let headers = ["NAME", "URI", "RETENTION", "PURGE PROTECTION", "ENFORCE EXPIRY", "STATE"];
    let shown = match command {
        VaultCommand::Create { name, retention_days, purge_protection, enforce_expiry, rate_limit } => {
            let body = json!({"name": name, "retentionDays": retention_days, "purgeProtection": purge_protection, "enforceExpiry": enforce_expiry, "rateLimit": rate_limit});
            client.call(Method::POST, "/v1.0/clavis/vaults", Some(body)).await?
        }
        VaultCommand::List => {
            let list = client.call(Method::GET, "/v1.0/clavis/vaults", None).await?;
            match global.output {
                Format::Json => output::json(&list),
                Format::Table => output::table(&headers, &output::rows(&list["value"], vault_row)),
            }
            return Ok(());
        }
        VaultCommand::Show { name } => client.call(Method::GET, &format!("/v1.0/clavis/vaults/{name}"), None).await?,
        VaultCommand::Update { name, purge_protection, enforce_expiry, rate_limit } => {
            let mut body = json!({});
            if let Some(on) = purge_protection {
                body["purgeProtection"] = json!(on);
            }
            if let Some(on) = enforce_expiry {
                body["enforceExpiry"] = json!(on);
            }
            if let Some(rate) = rate_limit {
                body["rateLimit"] = json!(rate);
            }
            client.call(Method::PATCH, &format!("/v1.0/clavis/vaults/{name}"), Some(body)).await?
        }
        VaultCommand::Delete { name } => {
            client.call(Method::DELETE, &format!("/v1.0/clavis/vaults/{name}"), None).await?;
            println!("Deleted vault {name}; it can be recovered during its retention (clavis vault recover {name}).");
            return Ok(());
        }
        VaultCommand::Recover { name } => {
            client.call(Method::POST, &format!("/v1.0/clavis/vaults/{name}/recover"), Some(json!({}))).await?;
            println!("Recovered vault {name}.");
            return Ok(());
        }
        VaultCommand::Purge { name } => {
            client.call(Method::POST, &format!("/v1.0/clavis/vaults/{name}/purge"), Some(json!({}))).await?;
            println!("Purged vault {name} and all its secrets.");
            return Ok(());
        }
    };
    match global.output {
        Format::Json => output::json(&shown),
        Format::Table => output::table(&headers, &[vault_row(&shown)]),
    }
    Ok(())
}

fn secret_row(item: &Value) -> Vec<String> {
    let id = field(item, "/id");
    let time = |pointer: &str| {
        item.pointer(pointer)
            .and_then(Value::as_i64)
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_else(|| "-".into())
    };
    vec![
        id.rsplit("/secrets/").next().unwrap_or(&id).to_string(),
        field(item, "/contentType"),
        field(item, "/attributes/enabled"),
        time("/attributes/updated"),
        time("/attributes/exp"),
        item.get("tags")
            .and_then(Value::as_object)
            .map(|t| t.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect::<Vec<_>>().join(","))
            .unwrap_or_default(),
    ]
}

/// Runs `clavis secret …`.
pub async fn secret(global: &Global, command: SecretCommand) -> Result<()> {
    let client = Client::new(Identity::resolve(&global.connection)?)?;
    let headers = ["SECRET", "CONTENT TYPE", "ENABLED", "UPDATED", "EXPIRES", "TAGS"];
    match command {
        SecretCommand::Set { name, vault, source, properties, disabled } => {
            let value = source.read()?;
            let mut body = json!({"value": value});
            properties.apply(&mut body, disabled.then_some(false))?;
            let result = client.vault(&vault).await?.call(Method::PUT, &format!("/secrets/{name}"), Some(body)).await?;
            match global.output {
                Format::Json => output::json(&without_value(result)),
                Format::Table => {
                    println!("Set {name} in {vault}: version {}.", field(&result, "/id").rsplit('/').next().unwrap_or_default())
                }
            }
        }
        SecretCommand::Get { name, vault, version } => {
            let path = format!("/secrets/{name}/{}", version.unwrap_or_default());
            let result = client.vault(&vault).await?.call(Method::GET, &path, None).await?;
            match global.output {
                Format::Json => output::json(&result),
                Format::Table => {
                    let mut out = std::io::stdout();
                    out.write_all(result["value"].as_str().unwrap_or_default().as_bytes())?;
                    out.write_all(b"\n")?;
                }
            }
        }
        SecretCommand::List { vault, deleted } => {
            let items = client.vault(&vault).await?.list(if deleted { "/deletedsecrets" } else { "/secrets" }).await?;
            match global.output {
                Format::Json => output::json(&json!(items)),
                Format::Table => output::table(&headers, &items.iter().map(secret_row).collect::<Vec<_>>()),
            }
        }
        SecretCommand::Versions { name, vault } => {
            let items = client.vault(&vault).await?.list(&format!("/secrets/{name}/versions")).await?;
            match global.output {
                Format::Json => output::json(&json!(items)),
                Format::Table => output::table(
                    &["SECRET/VERSION", "CONTENT TYPE", "ENABLED", "UPDATED", "EXPIRES", "TAGS"],
                    &items.iter().map(secret_row).collect::<Vec<_>>(),
                ),
            }
        }
        SecretCommand::Update { name, vault, version, enabled, properties } => {
            let mut body = json!({});
            properties.apply(&mut body, enabled)?;
            let path = format!("/secrets/{name}/{}", version.unwrap_or_default());
            let result = client.vault(&vault).await?.call(Method::PATCH, &path, Some(body)).await?;
            match global.output {
                Format::Json => output::json(&result),
                Format::Table => output::table(&headers, &[secret_row(&result)]),
            }
        }
        SecretCommand::Delete { name, vault } => {
            let result = client.vault(&vault).await?.call(Method::DELETE, &format!("/secrets/{name}"), None).await?;
            match global.output {
                Format::Json => output::json(&result),
                Format::Table => println!(
                    "Deleted {name}; recoverable until {} (clavis secret recover {name} --vault {vault}).",
                    unix_time(&result["scheduledPurgeDate"])
                ),
            }
        }
        SecretCommand::Recover { name, vault } => {
            let result = client.vault(&vault).await?.call(Method::POST, &format!("/deletedsecrets/{name}/recover"), None).await?;
            match global.output {
                Format::Json => output::json(&result),
                Format::Table => println!("Recovered {name} in {vault}."),
            }
        }
        SecretCommand::Purge { name, vault } => {
            client.vault(&vault).await?.call(Method::DELETE, &format!("/deletedsecrets/{name}"), None).await?;
            println!("Purged {name} from {vault}.");
        }
        SecretCommand::Backup { name, vault, file } => {
            let result = client.vault(&vault).await?.call(Method::POST, &format!("/secrets/{name}/backup"), None).await?;
            let blob = result["value"].as_str().unwrap_or_default();
            match file {
                Some(path) => {
                    crate::serve::write_private(&path, blob.as_bytes())?;
                    eprintln!("Backed up {name} to {} (sealed: it restores only into this Clavis tenant).", path.display());
                }
                None => println!("{blob}"),
            }
        }
        SecretCommand::Restore { vault, file } => {
            let blob = match file {
                Some(path) => std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?,
                None => {
                    let mut text = String::new();
                    std::io::stdin().read_to_string(&mut text)?;
                    text
                }
            };
            let result = client.vault(&vault).await?.call(Method::POST, "/secrets/restore", Some(json!({"value": blob.trim()}))).await?;
            match global.output {
                Format::Json => output::json(&result),
                Format::Table => println!("Restored {}.", field(&result, "/id")),
            }
        }
    }
    Ok(())
}

fn without_value(mut bundle: Value) -> Value {
    if let Some(object) = bundle.as_object_mut() {
        object.remove("value");
    }
    bundle
}

fn unix_time(value: &Value) -> String {
    value
        .as_i64()
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "-".into())
}

/// Runs `clavis role …` (vault data-plane roles).
pub async fn role(global: &Global, command: RoleCommand) -> Result<()> {
    let mut client = Client::new(Identity::resolve(&global.connection)?)?;
    let headers = ["ID", "PRINCIPAL", "CLIENT ID", "ROLE", "SCOPE"];
    let row = |a: &Value| {
        vec![field(a, "/id"), field(a, "/principalDisplayName"), field(a, "/principalAppId"), field(a, "/roleName"), field(a, "/scope")]
    };
    match command {
        RoleCommand::Assign { principal, role, scope } => {
            let result = client
                .call(
                    Method::POST,
                    "/v1.0/clavis/vaultRoleAssignments",
                    Some(json!({"principalId": principal, "role": role, "scope": scope})),
                )
                .await?;
            match global.output {
                Format::Json => output::json(&result),
                Format::Table => output::table(&headers, &[row(&result)]),
            }
        }
        RoleCommand::List => {
            let list = client.call(Method::GET, "/v1.0/clavis/vaultRoleAssignments", None).await?;
            match global.output {
                Format::Json => output::json(&list),
                Format::Table => output::table(&headers, &output::rows(&list["value"], row)),
            }
        }
        RoleCommand::Remove { id } => {
            client.call(Method::DELETE, &format!("/v1.0/clavis/vaultRoleAssignments/{id}"), None).await?;
            println!("Removed role assignment {id}.");
        }
    }
    Ok(())
}

/// One `--env NAME=VAULT/SECRET[/VERSION]` of `clavis run`.
#[derive(Debug, Clone)]
pub struct EnvMapping {
    variable: String,
    vault: String,
    secret: String,
    version: Option<String>,
}

/// Parses `NAME=VAULT/SECRET[/VERSION]`.
pub fn parse_env_mapping(text: &str) -> Result<EnvMapping, String> {
    let (variable, reference) = text.split_once('=').ok_or_else(|| format!("'{text}' is not NAME=VAULT/SECRET[/VERSION]"))?;
    if variable.is_empty() || !variable.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') || variable.as_bytes()[0].is_ascii_digit() {
        return Err(format!("'{variable}' is not an environment variable name"));
    }
    let parts: Vec<&str> = reference.split('/').collect();
    match parts.as_slice() {
        [vault, secret] if !vault.is_empty() && !secret.is_empty() => {
            Ok(EnvMapping { variable: variable.into(), vault: (*vault).into(), secret: (*secret).into(), version: None })
        }
        [vault, secret, version] if !vault.is_empty() && !secret.is_empty() && !version.is_empty() => {
            Ok(EnvMapping { variable: variable.into(), vault: (*vault).into(), secret: (*secret).into(), version: Some((*version).into()) })
        }
        _ => Err(format!("'{reference}' is not VAULT/SECRET or VAULT/SECRET/VERSION")),
    }
}

/// `clavis run`: starts a command with secrets in its environment, written nowhere else.
pub async fn run(global: &Global, mappings: Vec<EnvMapping>, command: Vec<String>) -> Result<()> {
    let Some((program, arguments)) = command.split_first() else {
        bail!("nothing to run: give the command after --, e.g. clavis run --env DB=kv1/db -- ./server");
    };
    let client = Client::new(Identity::resolve(&global.connection)?)?;
    let mut vaults = std::collections::BTreeMap::new();
    let mut environment = Vec::with_capacity(mappings.len());
    for mapping in &mappings {
        if !vaults.contains_key(&mapping.vault) {
            vaults.insert(mapping.vault.clone(), client.vault(&mapping.vault).await?);
        }
        let path = format!("/secrets/{}/{}", mapping.secret, mapping.version.clone().unwrap_or_default());
        let bundle = vaults[&mapping.vault]
            .call(Method::GET, &path, None)
            .await
            .with_context(|| format!("cannot read {}/{} for {}", mapping.vault, mapping.secret, mapping.variable))?;
        environment.push((mapping.variable.clone(), bundle["value"].as_str().unwrap_or_default().to_string()));
    }
    let mut child = std::process::Command::new(program);
    child.args(arguments).envs(environment);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        // Replace this process: the values live only in the child's environment.
        let error = child.exec();
        bail!("cannot run {program}: {error}");
    }
    #[cfg(not(unix))]
    {
        let status = child.status().with_context(|| format!("cannot run {program}"))?;
        std::process::exit(status.code().unwrap_or(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_mappings() {
        let mapping = parse_env_mapping("DB_PASSWORD=kv1/db/0123").unwrap();
        assert_eq!(
            (mapping.variable.as_str(), mapping.vault.as_str(), mapping.secret.as_str(), mapping.version.as_deref()),
            ("DB_PASSWORD", "kv1", "db", Some("0123"))
        );
        assert!(parse_env_mapping("DB=kv1").is_err());
        assert!(parse_env_mapping("1DB=kv1/db").is_err());
        assert!(parse_env_mapping("kv1/db").is_err());
    }
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Subscribe a URL to the tenant's events; prints the signing secret once.
    Subscribe {
        /// https:// URL (http:// only to localhost).
        #[arg(long)]
        url: String,
        /// EventGrid or CloudEvents.
        #[arg(long, default_value = "EventGrid")]
        schema: String,
        /// Event types to receive (repeatable; default all).
        #[arg(long = "type")]
        event_types: Vec<String>,
    },
    /// List subscriptions.
    Subscriptions,
    /// Remove a subscription.
    Remove { id: String },
    /// Send a test event to a subscription.
    Test { id: String },
    /// Recent events with their delivery state.
    List {
        /// Only events after this outbox position.
        #[arg(long, default_value_t = 0)]
        after: i64,
    },
}

/// Runs `clavis events …`.
pub async fn events(global: &Global, command: EventsCommand) -> Result<()> {
    let mut client = Client::new(Identity::resolve(&global.connection)?)?;
    match command {
        EventsCommand::Subscribe { url, schema, event_types } => {
            let result = client
                .call(Method::POST, "/v1.0/clavis/subscriptions", Some(json!({"url": url, "schema": schema, "eventTypes": event_types})))
                .await?;
            match global.output {
                Format::Json => output::json(&result),
                Format::Table => {
                    output::pairs(&[
                        ("Subscription:", field(&result, "/id")),
                        ("URL:", field(&result, "/url")),
                        ("Schema:", field(&result, "/schema")),
                        ("Signing secret:", field(&result, "/secret")),
                    ]);
                    eprintln!("\nDeliveries are signed per Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature). Keep the secret: it is shown once.");
                }
            }
        }
        EventsCommand::Subscriptions => {
            let list = client.call(Method::GET, "/v1.0/clavis/subscriptions", None).await?;
            match global.output {
                Format::Json => output::json(&list),
                Format::Table => {
                    let rows = output::rows(&list["value"], |s| {
                        vec![
                            field(s, "/id"),
                            field(s, "/url"),
                            field(s, "/schema"),
                            Some(output::joined(&s["eventTypes"], ",")).filter(|t| !t.is_empty()).unwrap_or_else(|| "all".into()),
                        ]
                    });
                    output::table(&["ID", "URL", "SCHEMA", "EVENT TYPES"], &rows);
                }
            }
        }
        EventsCommand::Remove { id } => {
            client.call(Method::DELETE, &format!("/v1.0/clavis/subscriptions/{id}"), None).await?;
            println!("Removed subscription {id}.");
        }
        EventsCommand::Test { id } => {
            let result = client.call(Method::POST, &format!("/v1.0/clavis/subscriptions/{id}/test"), Some(json!({}))).await?;
            println!("Queued test event {} for subscription {id}; see its delivery with `clavis events list`.", field(&result, "/eventId"));
        }
        EventsCommand::List { after } => {
            let list = client.call(Method::GET, &format!("/v1.0/clavis/events?after={after}&limit=500"), None).await?;
            match global.output {
                Format::Json => output::json(&list),
                Format::Table => {
                    let rows = output::rows(&list["value"], |e| {
                        let deliveries = e["deliveries"].as_array().cloned().unwrap_or_default();
                        let state = if deliveries.is_empty() {
                            "no subscription".to_string()
                        } else {
                            deliveries
                                .iter()
                                .map(|d| {
                                    format!(
                                        "{} ({} attempt{})",
                                        field(d, "/status"),
                                        field(d, "/attempts"),
                                        if d["attempts"] == 1 { "" } else { "s" }
                                    )
                                })
                                .collect::<Vec<_>>()
                                .join(", ")
                        };
                        vec![field(e, "/seq"), field(e, "/eventTime"), field(e, "/eventType"), field(e, "/subject"), state]
                    });
                    output::table(&["SEQ", "TIME", "TYPE", "SUBJECT", "DELIVERIES"], &rows);
                }
            }
        }
    }
    Ok(())
}
