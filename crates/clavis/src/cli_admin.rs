//! `clavis admin …`: the administrator accounts people sign in to the portal with, managed
//! through the management API like everything else.

use anyhow::{Context as _, Result};
use clap::Subcommand;
use reqwest::Method;
use serde_json::json;

use crate::cli::Global;
use crate::client::{Client, Identity};
use crate::output::{self, field, Format};

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an account. Without --password-stdin a strong password is generated and printed once.
    Create {
        /// The user name (letters, digits, '.', '_', '@', '-').
        name: String,
        /// administrator (everything, including vault values), readwrite (applications) or reader.
        #[arg(long, default_value = "administrator")]
        role: String,
        /// Read the password from standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a new password (ends the account's sessions). Generated unless --password-stdin.
    Passwd {
        /// The user name.
        name: String,
        /// Read the password from standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts.
    List,
    /// Disable an account: it can no longer sign in and its sessions end.
    Disable {
        /// The user name.
        name: String,
    },
    /// Enable a disabled account.
    Enable {
        /// The user name.
        name: String,
    },
}

/// The password to set: read from standard input (one line, the newline dropped), or generated.
fn password(from_stdin: bool) -> Result<(String, bool)> {
    if !from_stdin {
        return Ok((clavis_crypto::password::generate_password(), true));
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).context("cannot read the password from standard input")?;
    let text = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text).to_string();
    Ok((text, false))
}

fn print_generated(name: &str, password: &str) {
    eprintln!("Password for {name} (shown once; Clavis keeps only an Argon2id hash of it):");
    println!("{password}");
}

/// Runs `clavis admin …`.
pub async fn admin(global: &Global, command: AdminCommand) -> Result<()> {
    let mut client = Client::new(Identity::resolve(&global.connection)?)?;
    let path = |name: &str| format!("/v1.0/clavis/admins/{}", name.trim());
    let answer = match command {
        AdminCommand::Create { name, role, password_stdin } => {
            let (password, generated) = password(password_stdin)?;
            let created = client
                .call(Method::POST, "/v1.0/clavis/admins", Some(json!({"userName": name, "password": password, "role": role})))
                .await?;
            if generated {
                print_generated(&name, &password);
                return Ok(());
            }
            created
        }
        AdminCommand::Passwd { name, password_stdin } => {
            let (password, generated) = password(password_stdin)?;
            let changed = client.call(Method::PATCH, &path(&name), Some(json!({"password": password}))).await?;
            if generated {
                print_generated(&name, &password);
                return Ok(());
            }
            changed
        }
        AdminCommand::Disable { name } => client.call(Method::PATCH, &path(&name), Some(json!({"disabled": true}))).await?,
        AdminCommand::Enable { name } => client.call(Method::PATCH, &path(&name), Some(json!({"disabled": false}))).await?,
        AdminCommand::List => {
            let list = client.call(Method::GET, "/v1.0/clavis/admins", None).await?;
            match global.output {
                Format::Json => output::json(&list),
                Format::Table => {
                    let rows = output::rows(&list["value"], |a| {
                        vec![field(a, "/userName"), field(a, "/role"), field(a, "/disabled"), field(a, "/createdDateTime"), field(a, "/id")]
                    });
                    output::table(&["USER", "ROLE", "DISABLED", "CREATED", "ID"], &rows);
                }
            }
            return Ok(());
        }
    };
    match global.output {
        Format::Json => output::json(&answer),
        Format::Table => output::pairs(&[
            ("user", field(&answer, "/userName")),
            ("role", field(&answer, "/role")),
            ("disabled", field(&answer, "/disabled")),
            ("id", field(&answer, "/id")),
        ]),
    }
    Ok(())
}

/// Arguments of `clavis unseal`.
#[derive(Debug, clap::Args)]
pub struct UnsealArgs {
    /// The file holding the master key (base64 or hex); without it, the key is read from standard input.
    #[arg(long)]
    pub key_file: Option<std::path::PathBuf>,
    /// Clavis's URL; default: the one in the data directory's bootstrap.json.
    #[arg(long, env = "CLAVIS_URL")]
    pub url: Option<String>,
    /// The data directory whose bootstrap.json and development CA to use.
    #[arg(long = "data-dir", default_value = "./clavis-data")]
    pub data_dir: std::path::PathBuf,
    /// CA certificate (PEM) to trust; default: the data directory's development CA, else the system's.
    #[arg(long, env = "CLAVIS_CA_CERT")]
    pub ca_cert: Option<std::path::PathBuf>,
}

/// Runs `clavis unseal`: hands the master key to a sealed server over TLS.
pub async fn unseal(args: UnsealArgs) -> Result<()> {
    let key = match &args.key_file {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?,
        None => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).context("cannot read the key from standard input")?;
            text
        }
    };
    let bootstrap: Option<serde_json::Value> =
        std::fs::read_to_string(args.data_dir.join("bootstrap.json")).ok().and_then(|text| serde_json::from_str(&text).ok());
    let url = args
        .url
        .clone()
        .or_else(|| bootstrap.as_ref().and_then(|b| b["url"].as_str().map(str::to_string)))
        .ok_or_else(|| anyhow::anyhow!("no Clavis URL: pass --url (or --data-dir with the bootstrap.json of the instance)"))?;
    let ca = args.ca_cert.clone().or_else(|| Some(args.data_dir.join("tls").join("ca.pem")).filter(|p| p.exists()));
    let http = crate::client::http_client(ca.as_deref())?;
    let response = http
        .post(format!("{}/v1.0/clavis/unseal", url.trim_end_matches('/')))
        .json(&json!({"key": key.trim()}))
        .send()
        .await
        .with_context(|| format!("cannot reach Clavis at {url}"))?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if status.is_success() {
        println!("Unsealed: Clavis at {url} is serving.");
        return Ok(());
    }
    if status == reqwest::StatusCode::NOT_FOUND {
        anyhow::bail!("Clavis at {url} is not sealed: it is already serving");
    }
    match body["error"]["message"].as_str() {
        Some(message) => anyhow::bail!("{message} (HTTP {status})"),
        None => anyhow::bail!("Clavis answered {status}"),
    }
}
