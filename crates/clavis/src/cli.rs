//! The `clavis` commands other than `serve`: thin callers of the management API.

use anyhow::{anyhow, bail, Context as _, Result};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::client::{Client, Connection, Identity};
use crate::output::{self, field, Format};

/// Options every client command takes.
#[derive(Debug, Clone, Args)]
pub struct Global {
    #[command(flatten)]
    pub connection: Connection,
    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value = "table")]
    pub output: Format,
}

#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Register an application.
    Create {
        /// Its display name.
        name: String,
        /// An application ID URI (api://…) clients use to name it as a resource; repeatable.
        #[arg(long = "identifier-uri")]
        identifier_uris: Vec<String>,
        /// Token version issued when this application is the resource (1 or 2; Entra's default is 1).
        #[arg(long)]
        token_version: Option<u8>,
    },
    /// List applications.
    List,
    /// Show one application (by object id, client id or unique display name).
    Show { app: String },
    /// Delete an application with its secrets and role assignments.
    Delete { app: String },
    /// Client secrets of an application.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// App roles: define them on a resource application and grant them to client applications.
    #[command(subcommand)]
    Role(RoleCommand),
    /// Automatic rotation of an application's secret into a vault secret.
    #[command(subcommand)]
    Rotation(RotationCommand),
}

#[derive(Debug, Subcommand)]
pub enum RotationCommand {
    /// Set the rotation policy: when to rotate, the overlap, new secrets' lifetime, and the vault secret that receives them.
    Set {
        app: String,
        /// The vault that receives each new secret.
        #[arg(long)]
        vault: String,
        /// The vault secret that receives it (a new version per rotation).
        #[arg(long)]
        secret: String,
        /// Rotate when the newest secret expires within this many days.
        #[arg(long, conflicts_with = "every_days")]
        before_expiry_days: Option<i64>,
        /// Or rotate every this many days.
        #[arg(long)]
        every_days: Option<i64>,
        /// Days the previous secret keeps working after a rotation.
        #[arg(long, default_value_t = 7)]
        overlap_days: i64,
        /// Lifetime of each new secret, in days.
        #[arg(long, default_value_t = 90)]
        lifetime_days: i64,
    },
    /// Show the policy, the state and the next step.
    Show { app: String },
    /// Remove the policy (secrets stay as they are).
    Remove { app: String },
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Add a client secret; its value is printed once and cannot be retrieved again.
    Add {
        app: String,
        /// A description.
        #[arg(long)]
        description: Option<String>,
        /// Lifetime in days (default: the tenant policy's default, 180).
        #[arg(long, conflicts_with = "end")]
        days: Option<i64>,
        /// End date-time (RFC 3339, e.g. 2027-06-30T00:00:00Z).
        #[arg(long)]
        end: Option<String>,
        /// Start date-time (RFC 3339); default now.
        #[arg(long)]
        start: Option<String>,
    },
    /// List an application's client secrets (never their values).
    List { app: String },
    /// Tell whether a secret (read from standard input) is valid for an application, without using it.
    Check {
        /// The application's client id.
        #[arg(long)]
        client_id: String,
    },
    /// Rotate now into the rotation policy's vault secret; the previous secret keeps working for the overlap.
    Rotate { app: String },
    /// Revoke a leaked secret: removed at once, and every token it obtained is refused from now on.
    Revoke {
        app: String,
        /// The secret's keyId.
        #[arg(long)]
        key_id: String,
        /// Why (recorded in the audit log and the event).
        #[arg(long, default_value = "compromised")]
        reason: String,
        /// Remove the secret but let the tokens it already obtained run out.
        #[arg(long)]
        keep_tokens: bool,
    },
    /// Remove a client secret.
    Remove {
        app: String,
        /// The secret's keyId.
        #[arg(long)]
        key_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Define an app role on a (resource) application.
    Add {
        app: String,
        /// The value that appears in the roles claim, e.g. Orders.Read.
        #[arg(long)]
        value: String,
        /// A description.
        #[arg(long)]
        description: Option<String>,
    },
    /// Show the roles an application defines and the grants it holds and gives.
    List { app: String },
    /// Grant a client application a role of a resource application.
    Grant {
        /// The client application that receives the role.
        #[arg(long)]
        client: String,
        /// The resource application that defines the role.
        #[arg(long)]
        resource: String,
        /// The role's value or id.
        #[arg(long)]
        role: String,
    },
    /// Remove a grant by its assignment id (see `clavis app role list`).
    Revoke {
        /// The client application holding the grant.
        #[arg(long)]
        client: String,
        /// The assignment id.
        #[arg(long)]
        assignment: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Request an access token (for troubleshooting) as the configured identity.
    Get {
        /// The scope, e.g. api://my-api/.default (default: the management API).
        #[arg(long)]
        scope: Option<String>,
        /// Print the token's header and claims instead of the token.
        #[arg(long)]
        decode: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Show the tenant: id, domains, signing algorithm, credential policy and endpoints.
    Show,
    /// Change the tenant's signing algorithm or credential policy.
    Update {
        /// RS256, ES256 or EdDSA: a new key signs at once; the old one stays published until its tokens expire.
        #[arg(long)]
        signing_algorithm: Option<String>,
        /// Longest allowed client-secret lifetime, in days.
        #[arg(long)]
        max_secret_days: Option<i64>,
        /// Client-secret lifetime when none is asked for, in days.
        #[arg(long)]
        default_secret_days: Option<i64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Re-wrap every key under a new master key while the server keeps serving.
    RotateMaster {
        /// The new master key (base64 or hex). Needed when the key comes from the environment;
        /// otherwise Clavis generates it and writes it to the data directory.
        #[arg(long)]
        new_key_file: Option<std::path::PathBuf>,
    },
}

/// Resolves an application named by object id, client id or unique display name.
async fn resolve_app(client: &mut Client, name: &str) -> Result<Value> {
    if clavis_core::identity::is_guid(name) {
        return client.call(Method::GET, &format!("/v1.0/applications/{name}"), None).await;
    }
    let list = client.call(Method::GET, "/v1.0/applications", None).await?;
    let matches: Vec<&Value> =
        list["value"].as_array().map(|v| v.iter().filter(|a| a["displayName"].as_str() == Some(name)).collect()).unwrap_or_default();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => bail!("no application is named '{name}'; name it by object id, client id or exact display name (see `clavis app list`)"),
        _ => bail!("{} applications are named '{name}'; name one by its client id", matches.len()),
    }
}

fn app_id(app: &Value) -> Result<String> {
    app["id"].as_str().map(str::to_string).ok_or_else(|| anyhow!("the server's answer has no application id"))
}

fn parse_time(text: &str) -> Result<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).with_context(|| format!("'{text}' is not an RFC 3339 date-time such as 2027-06-30T00:00:00Z"))
}

/// Runs `clavis app …`.
pub async fn app(global: &Global, command: AppCommand) -> Result<()> {
    let mut client = Client::new(Identity::resolve(&global.connection)?)?;
    match command {
        AppCommand::Create { name, identifier_uris, token_version } => {
            let mut body = json!({"displayName": name, "identifierUris": identifier_uris});
            if let Some(version) = token_version {
                body["api"] = json!({"requestedAccessTokenVersion": version});
            }
            let app = client.call(Method::POST, "/v1.0/applications", Some(body)).await?;
            match global.output {
                Format::Json => output::json(&app),
                Format::Table => output::pairs(&[
                    ("Application created:", field(&app, "/displayName")),
                    ("Client id (appId):", field(&app, "/appId")),
                    ("Object id:", field(&app, "/id")),
                    ("Identifier URIs:", output::joined(&app["identifierUris"], ", ")),
                    ("Next:", format!("clavis app secret add {}", field(&app, "/appId"))),
                ]),
            }
        }
        AppCommand::List => {
            let list = client.call(Method::GET, "/v1.0/applications", None).await?;
            match global.output {
                Format::Json => output::json(&list),
                Format::Table => {
                    let rows = output::rows(&list["value"], |a| {
                        vec![
                            field(a, "/displayName"),
                            field(a, "/appId"),
                            a["passwordCredentials"].as_array().map_or(0, Vec::len).to_string(),
                            output::joined(&a["identifierUris"], " "),
                        ]
                    });
                    output::table(&["NAME", "CLIENT ID", "SECRETS", "IDENTIFIER URIS"], &rows);
                }
            }
        }
        AppCommand::Show { app } => {
            let app = resolve_app(&mut client, &app).await?;
            match global.output {
                Format::Json => output::json(&app),
                Format::Table => {
                    let tenant = client.identity().tenant.clone();
                    let url = client.identity().url.clone();
                    output::pairs(&[
                        ("Name:", field(&app, "/displayName")),
                        ("Client id (appId):", field(&app, "/appId")),
                        ("Object id:", field(&app, "/id")),
                        ("Service principal id:", field(&app, "/servicePrincipalId")),
                        ("Identifier URIs:", output::joined(&app["identifierUris"], ", ")),
                        (
                            "App roles:",
                            app["appRoles"]
                                .as_array()
                                .map(|r| r.iter().filter_map(|r| r["value"].as_str()).collect::<Vec<_>>().join(", "))
                                .unwrap_or_default(),
                        ),
                        ("Secrets:", app["passwordCredentials"].as_array().map_or(0, Vec::len).to_string()),
                        ("Token endpoint:", format!("{url}/{tenant}/oauth2/v2.0/token")),
                        ("Authority:", format!("{url}/{tenant}")),
                    ]);
                }
            }
        }
        AppCommand::Delete { app } => {
            let app = resolve_app(&mut client, &app).await?;
            client.call(Method::DELETE, &format!("/v1.0/applications/{}", app_id(&app)?), None).await?;
            println!("Deleted application {} ({}).", field(&app, "/displayName"), field(&app, "/appId"));
        }
        AppCommand::Secret(command) => secret(global, &mut client, command).await?,
        AppCommand::Role(command) => role(global, &mut client, command).await?,
        AppCommand::Rotation(command) => rotation(global, &mut client, command).await?,
    }
    Ok(())
}

async fn secret(global: &Global, client: &mut Client, command: SecretCommand) -> Result<()> {
    match command {
        SecretCommand::Add { app, description, days, end, start } => {
            let app = resolve_app(client, &app).await?;
            let mut credential = json!({});
            if let Some(description) = description {
                credential["displayName"] = json!(description);
            }
            let start_at = start.as_deref().map(parse_time).transpose()?;
            if let Some(start_at) = start_at {
                credential["startDateTime"] = json!(start_at.format(&Rfc3339)?);
            }
            if let Some(end) = end {
                credential["endDateTime"] = json!(parse_time(&end)?.format(&Rfc3339)?);
            } else if let Some(days) = days {
                let from = start_at.unwrap_or_else(OffsetDateTime::now_utc);
                credential["endDateTime"] = json!((from + Duration::days(days)).format(&Rfc3339)?);
            }
            let added = client
                .call(
                    Method::POST,
                    &format!("/v1.0/applications/{}/addPassword", app_id(&app)?),
                    Some(json!({"passwordCredential": credential})),
                )
                .await?;
            match global.output {
                Format::Json => output::json(&added),
                Format::Table => {
                    output::pairs(&[
                        ("Secret value:", field(&added, "/secretText")),
                        ("Key id:", field(&added, "/keyId")),
                        ("Hint:", field(&added, "/hint")),
                        ("Valid from:", field(&added, "/startDateTime")),
                        ("Expires:", field(&added, "/endDateTime")),
                        ("Client id:", field(&app, "/appId")),
                    ]);
                    eprintln!("\nCopy the secret value now: Clavis keeps only a keyed hash of it and cannot show it again.");
                }
            }
        }
        SecretCommand::List { app } => {
            let app = resolve_app(client, &app).await?;
            match global.output {
                Format::Json => output::json(&app["passwordCredentials"]),
                Format::Table => {
                    let rows = output::rows(&app["passwordCredentials"], |c| {
                        vec![
                            field(c, "/keyId"),
                            field(c, "/hint"),
                            field(c, "/displayName"),
                            field(c, "/state"),
                            field(c, "/startDateTime"),
                            field(c, "/endDateTime"),
                            field(c, "/lastUsed/lastUsedDateTime"),
                            field(c, "/lastUsed/lastUsedIp"),
                            field(c, "/lastUsed/useCount"),
                            field(c, "/unusedForDays"),
                        ]
                    });
                    output::table(
                        &["KEY ID", "HINT", "DESCRIPTION", "STATE", "START", "END", "LAST USED", "FROM", "USES", "UNUSED DAYS"],
                        &rows,
                    );
                }
            }
        }
        SecretCommand::Check { client_id } => {
            let mut secret = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut secret).context("cannot read the secret from standard input")?;
            let answer = client
                .call(Method::POST, "/v1.0/clavis/checkSecret", Some(json!({"clientId": client_id, "secret": secret.trim()})))
                .await?;
            match global.output {
                Format::Json => output::json(&answer),
                Format::Table => {
                    let valid = answer["valid"].as_bool().unwrap_or(false);
                    println!(
                        "{}",
                        if valid {
                            format!(
                                "valid: secret {} ({}), ends {}",
                                field(&answer, "/keyId"),
                                field(&answer, "/state"),
                                field(&answer, "/endDateTime")
                            )
                        } else {
                            "NOT valid".to_string()
                        }
                    );
                    println!("{}", field(&answer, "/diagnosis"));
                    if !valid {
                        std::process::exit(1);
                    }
                }
            }
        }
        SecretCommand::Rotate { app } => {
            let app = resolve_app(client, &app).await?;
            let result =
                client.call(Method::POST, &format!("/v1.0/applications/{}/rotatePassword", app_id(&app)?), Some(json!({}))).await?;
            match global.output {
                Format::Json => output::json(&result),
                Format::Table => println!(
                    "Rotated {}: new secret {} published to the policy's vault secret; the previous secret works until the overlap ends.",
                    field(&app, "/displayName"),
                    field(&result, "/newKeyId")
                ),
            }
        }
        SecretCommand::Revoke { app, key_id, reason, keep_tokens } => {
            let app = resolve_app(client, &app).await?;
            let body = json!({"keyId": key_id, "reason": reason, "revokeTokens": !keep_tokens});
            client.call(Method::POST, &format!("/v1.0/applications/{}/revokePassword", app_id(&app)?), Some(body)).await?;
            if keep_tokens {
                println!(
                    "Revoked secret {key_id} of {}; tokens it already obtained stay valid until they expire.",
                    field(&app, "/displayName")
                );
            } else {
                println!("Revoked secret {key_id} of {} and every token it obtained (refused by Clavis from now on; resource servers see them inactive through introspection).", field(&app, "/displayName"));
            }
        }
        SecretCommand::Remove { app, key_id } => {
            let app = resolve_app(client, &app).await?;
            client
                .call(Method::POST, &format!("/v1.0/applications/{}/removePassword", app_id(&app)?), Some(json!({"keyId": key_id})))
                .await?;
            println!("Removed secret {key_id} from {}.", field(&app, "/displayName"));
        }
    }
    Ok(())
}

async fn role(global: &Global, client: &mut Client, command: RoleCommand) -> Result<()> {
    match command {
        RoleCommand::Add { app, value, description } => {
            let app = resolve_app(client, &app).await?;
            let mut body = json!({"value": value});
            if let Some(description) = description {
                body["description"] = json!(description);
            }
            let role = client.call(Method::POST, &format!("/v1.0/applications/{}/appRoles", app_id(&app)?), Some(body)).await?;
            match global.output {
                Format::Json => output::json(&role),
                Format::Table => {
                    println!("Defined role {} ({}) on {}.", field(&role, "/value"), field(&role, "/id"), field(&app, "/displayName"))
                }
            }
        }
        RoleCommand::List { app } => {
            let app = resolve_app(client, &app).await?;
            let sp = field(&app, "/servicePrincipalId");
            let held = client.call(Method::GET, &format!("/v1.0/servicePrincipals/{sp}/appRoleAssignments"), None).await?;
            let given = client.call(Method::GET, &format!("/v1.0/servicePrincipals/{sp}/appRoleAssignedTo"), None).await?;
            if global.output == Format::Json {
                output::json(
                    &json!({"appRoles": app["appRoles"], "appRoleAssignments": held["value"], "appRoleAssignedTo": given["value"]}),
                );
                return Ok(());
            }
            println!("Roles defined by {}:", field(&app, "/displayName"));
            let defined = output::rows(&app["appRoles"], |r| {
                vec![field(r, "/value"), field(r, "/id"), field(r, "/isEnabled"), field(r, "/description")]
            });
            output::table(&["VALUE", "ID", "ENABLED", "DESCRIPTION"], &defined);
            let grants = |list: &Value| {
                output::rows(&list["value"], |g| {
                    vec![field(g, "/id"), field(g, "/principalDisplayName"), field(g, "/resourceDisplayName"), field(g, "/appRoleValue")]
                })
            };
            println!("\nGrants it holds:");
            output::table(&["ASSIGNMENT ID", "CLIENT", "RESOURCE", "ROLE"], &grants(&held));
            println!("\nGrants of its roles to others:");
            output::table(&["ASSIGNMENT ID", "CLIENT", "RESOURCE", "ROLE"], &grants(&given));
        }
        RoleCommand::Grant { client: client_app, resource, role } => {
            let client_app = resolve_app(client, &client_app).await?;
            let resource = resolve_app(client, &resource).await?;
            let body = json!({"principalId": field(&client_app, "/servicePrincipalId"), "resourceId": field(&resource, "/servicePrincipalId"), "appRoleId": role});
            let assignment = client
                .call(
                    Method::POST,
                    &format!("/v1.0/servicePrincipals/{}/appRoleAssignedTo", field(&resource, "/servicePrincipalId")),
                    Some(body),
                )
                .await?;
            match global.output {
                Format::Json => output::json(&assignment),
                Format::Table => println!(
                    "Granted {} of {} to {} (assignment {}). Tokens issued from now on carry it in their roles claim.",
                    field(&assignment, "/appRoleValue"),
                    field(&resource, "/displayName"),
                    field(&client_app, "/displayName"),
                    field(&assignment, "/id")
                ),
            }
        }
        RoleCommand::Revoke { client: client_app, assignment } => {
            let client_app = resolve_app(client, &client_app).await?;
            client
                .call(
                    Method::DELETE,
                    &format!("/v1.0/servicePrincipals/{}/appRoleAssignments/{assignment}", field(&client_app, "/servicePrincipalId")),
                    None,
                )
                .await?;
            println!("Removed assignment {assignment}.");
        }
    }
    Ok(())
}

async fn rotation(global: &Global, client: &mut Client, command: RotationCommand) -> Result<()> {
    let (app, answer) = match command {
        RotationCommand::Set { app, vault, secret, before_expiry_days, every_days, overlap_days, lifetime_days } => {
            let app = resolve_app(client, &app).await?;
            let before = if before_expiry_days.is_none() && every_days.is_none() { Some(30) } else { before_expiry_days };
            let body = json!({"rotateBeforeExpiryDays": before, "rotateEveryDays": every_days, "overlapDays": overlap_days, "secretLifetimeDays": lifetime_days, "vault": vault, "secretName": secret});
            let answer = client.call(Method::PUT, &format!("/v1.0/applications/{}/rotationPolicy", app_id(&app)?), Some(body)).await?;
            (app, answer)
        }
        RotationCommand::Show { app } => {
            let app = resolve_app(client, &app).await?;
            let answer = client.call(Method::GET, &format!("/v1.0/applications/{}/rotationPolicy", app_id(&app)?), None).await?;
            (app, answer)
        }
        RotationCommand::Remove { app } => {
            let app = resolve_app(client, &app).await?;
            client.call(Method::DELETE, &format!("/v1.0/applications/{}/rotationPolicy", app_id(&app)?), None).await?;
            println!("Removed the rotation policy of {}.", field(&app, "/displayName"));
            return Ok(());
        }
    };
    match global.output {
        Format::Json => output::json(&answer),
        Format::Table => {
            let trigger = match answer.pointer("/policy/rotateBeforeExpiryDays").and_then(Value::as_i64) {
                Some(days) => format!("{days} days before the newest secret expires"),
                None => format!("every {} days", field(&answer, "/policy/rotateEveryDays")),
            };
            output::pairs(&[
                ("Application:", field(&app, "/displayName")),
                ("Rotates:", trigger),
                ("Overlap:", format!("{} days", field(&answer, "/policy/overlapDays"))),
                ("New secrets live:", format!("{} days", field(&answer, "/policy/secretLifetimeDays"))),
                ("Published to:", format!("{}/{}", field(&answer, "/policy/vault"), field(&answer, "/policy/secretName"))),
                ("State:", field(&answer, "/state/state")),
                ("Next step:", field(&answer, "/nextStepDateTime")),
            ]);
        }
    }
    Ok(())
}

/// Runs `clavis token get`.
pub async fn token(global: &Global, command: TokenCommand) -> Result<()> {
    let TokenCommand::Get { scope, decode } = command;
    let client = Client::new(Identity::resolve(&global.connection)?)?;
    let scope = scope.unwrap_or_else(|| format!("{}/.default", clavis_core::policy::MANAGEMENT_API_URI));
    let answer = client.request_token(&scope).await?;
    if answer.status != 200 {
        let description = answer.body.get("error_description").and_then(Value::as_str).unwrap_or("(no description)");
        if global.output == Format::Json {
            output::json(&answer.body);
        } else {
            eprintln!("Token request refused (HTTP {}): {}", answer.status, field(&answer.body, "/error"));
            eprintln!("{}", description.replace("\r\n", "\n"));
        }
        std::process::exit(1);
    }
    let token = answer.body["access_token"].as_str().unwrap_or_default().to_string();
    if decode {
        let segment = |i: usize| -> Value {
            token
                .split('.')
                .nth(i)
                .and_then(|s| clavis_crypto::b64url_decode(s).ok())
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or(Value::Null)
        };
        output::json(&json!({"header": segment(0), "claims": segment(1), "expires_in": answer.body["expires_in"]}));
    } else if global.output == Format::Json {
        output::json(&answer.body);
    } else {
        println!("{token}");
    }
    Ok(())
}

/// Runs `clavis tenant …`.
pub async fn tenant(global: &Global, command: TenantCommand) -> Result<()> {
    let mut client = Client::new(Identity::resolve(&global.connection)?)?;
    let organization = match command {
        TenantCommand::Show => client.call(Method::GET, "/v1.0/organization", None).await?["value"][0].clone(),
        TenantCommand::Update { signing_algorithm, max_secret_days, default_secret_days } => {
            let mut body = json!({});
            if let Some(algorithm) = signing_algorithm {
                body["signingAlgorithm"] = json!(algorithm);
            }
            if max_secret_days.is_some() || default_secret_days.is_some() {
                let current = client.call(Method::GET, "/v1.0/organization", None).await?["value"][0]["credentialPolicy"].clone();
                let mut policy = current;
                if let Some(days) = max_secret_days {
                    policy["maxPasswordLifetimeDays"] = json!(days);
                }
                if let Some(days) = default_secret_days {
                    policy["defaultPasswordLifetimeDays"] = json!(days);
                }
                body["credentialPolicy"] = policy;
            }
            client.call(Method::PATCH, "/v1.0/organization", Some(body)).await?
        }
    };
    match global.output {
        Format::Json => output::json(&organization),
        Format::Table => {
            let url = client.identity().url.clone();
            let id = field(&organization, "/id");
            output::pairs(&[
                ("Tenant id:", id.clone()),
                ("Name:", field(&organization, "/displayName")),
                (
                    "Domains:",
                    organization["verifiedDomains"]
                        .as_array()
                        .map(|d| d.iter().filter_map(|d| d["name"].as_str()).collect::<Vec<_>>().join(", "))
                        .unwrap_or_default(),
                ),
                ("Signing algorithm:", field(&organization, "/signingAlgorithm")),
                ("Max secret lifetime:", format!("{} days", field(&organization, "/credentialPolicy/maxPasswordLifetimeDays"))),
                ("Default secret lifetime:", format!("{} days", field(&organization, "/credentialPolicy/defaultPasswordLifetimeDays"))),
                ("Authority:", format!("{url}/{id}")),
                ("Discovery:", format!("{url}/{id}/v2.0/.well-known/openid-configuration")),
                ("Token endpoint:", format!("{url}/{id}/oauth2/v2.0/token")),
                ("JWKS:", format!("{url}/{id}/discovery/v2.0/keys")),
            ]);
        }
    }
    Ok(())
}

/// Runs `clavis keys …`.
pub async fn keys(global: &Global, command: KeysCommand) -> Result<()> {
    let KeysCommand::RotateMaster { new_key_file } = command;
    let mut client = Client::new(Identity::resolve(&global.connection)?)?;
    let mut body = json!({});
    if let Some(path) = new_key_file {
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        body["newMasterKey"] = json!(text.trim());
    }
    let answer = client.call(Method::POST, "/v1.0/clavis/rotateMasterKey", Some(body)).await?;
    match global.output {
        Format::Json => output::json(&answer),
        Format::Table => {
            println!("Every key is now wrapped by master key {}.", field(&answer, "/masterKeyId"));
            match answer["storedIn"].as_str() {
                Some(file) => println!("Clavis wrote the new master key to {file}; back it up."),
                None => println!("Update CLAVIS_MASTER_KEY / CLAVIS_MASTER_KEY_FILE to the new key before the next start."),
            }
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum SigninsCommand {
    /// List sign-ins (token requests), newest first.
    List {
        /// Only this client id.
        #[arg(long)]
        client_id: Option<String>,
        /// Only failures.
        #[arg(long)]
        failures: bool,
        /// From (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

/// Runs `clavis signins …`.
pub async fn signins(global: &Global, command: SigninsCommand) -> Result<()> {
    let SigninsCommand::List { client_id, failures, since, limit } = command;
    let mut client = Client::new(Identity::resolve(&global.connection)?)?;
    let mut query = vec![format!("limit={limit}")];
    if let Some(client_id) = client_id {
        query.push(format!("clientId={client_id}"));
    }
    if failures {
        query.push("result=failure".into());
    }
    if let Some(since) = since {
        query.push(format!("since={}", since.replace('+', "%2B").replace(':', "%3A")));
    }
    let list = client.call(Method::GET, &format!("/v1.0/clavis/signIns?{}", query.join("&")), None).await?;
    match global.output {
        Format::Json => output::json(&list),
        Format::Table => {
            let rows = output::rows(&list["value"], |s| {
                vec![
                    field(s, "/at"),
                    field(s, "/clientId"),
                    field(s, "/result"),
                    field(s, "/errorCode"),
                    field(s, "/keyId"),
                    field(s, "/resource"),
                    field(s, "/clientIp"),
                    field(s, "/correlationId"),
                ]
            });
            output::table(&["TIME", "CLIENT ID", "RESULT", "CODE", "KEY ID", "RESOURCE", "IP", "CORRELATION ID"], &rows);
        }
    }
    Ok(())
}

/// Runs `clavis diagnose CORRELATION_ID`.
pub async fn diagnose(global: &Global, correlation_id: String) -> Result<()> {
    let mut client = Client::new(Identity::resolve(&global.connection)?)?;
    let answer = client.call(Method::GET, &format!("/v1.0/clavis/diagnose/{correlation_id}"), None).await?;
    if global.output == Format::Json {
        output::json(&answer);
        return Ok(());
    }
    for signin in answer["signIns"].as_array().cloned().unwrap_or_default() {
        println!(
            "Token request at {} from {} for client {} ({}).",
            field(&signin, "/at"),
            field(&signin, "/clientIp"),
            field(&signin, "/clientId"),
            field(&signin, "/resource")
        );
        if signin["result"] == "success" {
            println!("  It succeeded with secret {}.", field(&signin, "/keyId"));
        } else {
            println!("  It failed with {}: {}", field(&signin, "/errorCode"), field(&signin, "/diagnosis"));
        }
    }
    for failure in answer["requestFailures"].as_array().cloned().unwrap_or_default() {
        println!(
            "{} {} at {} from {} failed with {} {}:",
            field(&failure, "/method"),
            field(&failure, "/route"),
            field(&failure, "/at"),
            field(&failure, "/clientIp"),
            field(&failure, "/status"),
            field(&failure, "/errorCode")
        );
        println!("  {}", field(&failure, "/message").replace("\r\n", "\n  "));
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit records (oldest first) matching filters.
    List {
        /// From (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Until (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// Only actions by this principal (service principal id or client id).
        #[arg(long)]
        principal: Option<String>,
        /// Only this target id.
        #[arg(long)]
        target: Option<String>,
        /// Only this action, or a prefix ending with "." (e.g. credential.).
        #[arg(long)]
        action: Option<String>,
        /// Only this result.
        #[arg(long)]
        result: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Export every record as JSON lines (to a file or standard output).
    Export {
        #[arg(long)]
        file: Option<std::path::PathBuf>,
    },
    /// Verify the chain and its signed checkpoints; with --file, verify an export offline.
    Verify {
        #[arg(long)]
        file: Option<std::path::PathBuf>,
    },
}

fn encode_query(pairs: &[(&str, Option<String>)]) -> String {
    pairs
        .iter()
        .filter_map(|(k, v)| {
            v.as_ref().map(|v| {
                format!(
                    "{k}={}",
                    v.bytes()
                        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                            (b as char).to_string()
                        } else {
                            format!("%{b:02X}")
                        })
                        .collect::<String>()
                )
            })
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Runs `clavis audit …`.
pub async fn audit(global: &Global, command: AuditCommand) -> Result<()> {
    if let AuditCommand::Verify { file: Some(path) } = &command {
        // Offline: the export's chain, from its first record on.
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let records: Vec<clavis_core::audit::AuditRecord> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()
            .context("the file is not a Clavis audit export")?;
        let Some(first) = records.first() else { bail!("the export holds no record") };
        return match clavis_core::audit::verify_chain(&records, first.seq - 1, first.prev_hash.clone()) {
            None => {
                println!("intact: {} records, {} to {}", records.len(), first.seq, records.last().map_or(0, |r| r.seq));
                Ok(())
            }
            Some(seq) => {
                println!("TAMPERED: record {seq} was altered, removed or reordered");
                std::process::exit(1);
            }
        };
    }
    let mut client = Client::new(Identity::resolve(&global.connection)?)?;
    match command {
        AuditCommand::List { since, until, principal, target, action, result, limit } => {
            let query = encode_query(&[
                ("since", since),
                ("until", until),
                ("principal", principal),
                ("target", target),
                ("action", action),
                ("result", result),
                ("limit", Some(limit.to_string())),
            ]);
            let list = client.call(Method::GET, &format!("/v1.0/clavis/auditRecords?{query}"), None).await?;
            match global.output {
                Format::Json => output::json(&list),
                Format::Table => {
                    let rows = output::rows(&list["value"], |r| {
                        vec![
                            field(r, "/seq"),
                            field(r, "/at"),
                            field(r, "/action"),
                            field(r, "/targetType"),
                            field(r, "/targetId"),
                            field(r, "/actor/appId"),
                            field(r, "/result"),
                            field(r, "/context/correlationId"),
                        ]
                    });
                    output::table(&["SEQ", "TIME", "ACTION", "TARGET TYPE", "TARGET", "BY (CLIENT ID)", "RESULT", "CORRELATION ID"], &rows);
                }
            }
        }
        AuditCommand::Export { file } => {
            let mut after = 0;
            let mut out = String::new();
            loop {
                let page = client.call(Method::GET, &format!("/v1.0/clavis/auditRecords?after={after}&limit=1000"), None).await?;
                let records = page["value"].as_array().cloned().unwrap_or_default();
                let Some(last) = records.last() else { break };
                after = last["seq"].as_i64().unwrap_or(after);
                for record in &records {
                    out.push_str(&serde_json::to_string(record)?);
                    out.push('\n');
                }
            }
            match file {
                Some(path) => {
                    std::fs::write(&path, out)?;
                    eprintln!("Exported the audit log to {}.", path.display());
                }
                None => print!("{out}"),
            }
        }
        AuditCommand::Verify { .. } => {
            let answer = client.call(Method::POST, "/v1.0/clavis/auditVerify", Some(json!({}))).await?;
            match global.output {
                Format::Json => output::json(&answer),
                Format::Table => {
                    if answer["intact"].as_bool().unwrap_or(false) {
                        println!(
                            "intact: {} records, {} signed checkpoints verified",
                            field(&answer, "/records"),
                            field(&answer, "/checkpointsVerified")
                        );
                    } else {
                        println!("TAMPERED: {}", field(&answer, "/problem"));
                    }
                }
            }
            if !answer["intact"].as_bool().unwrap_or(false) {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}
