//! `clavis`: the one binary. `clavis serve` runs the service; every other command is a client of
//! its management API (see `cli`). This file is wiring only: parse, configure telemetry, dispatch.

mod cli;
mod cli_admin;
mod cli_vault;
mod client;
mod config;
mod migrate;
mod output;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Application identities, client secrets and tokens, wire-compatible with Entra ID.
#[derive(Debug, Parser)]
#[command(name = "clavis", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run Clavis (HTTPS, embedded SQLite by default; zero setup on first start).
    Serve(config::ServeFlags),
    /// Application registrations, their client secrets and app roles.
    App {
        #[command(flatten)]
        global: cli::Global,
        #[command(subcommand)]
        command: cli::AppCommand,
    },
    /// Request tokens, for troubleshooting.
    Token {
        #[command(flatten)]
        global: cli::Global,
        #[command(subcommand)]
        command: cli::TokenCommand,
    },
    /// The tenant.
    Tenant {
        #[command(flatten)]
        global: cli::Global,
        #[command(subcommand)]
        command: cli::TenantCommand,
    },
    /// Vaults (Key Vault-compatible secret stores).
    Vault {
        #[command(flatten)]
        global: cli::Global,
        #[command(subcommand)]
        command: cli_vault::VaultCommand,
    },
    /// Secrets in a vault.
    Secret {
        #[command(flatten)]
        global: cli::Global,
        #[command(subcommand)]
        command: cli_vault::SecretCommand,
    },
    /// Vault data-plane roles (Key Vault Administrator, Secrets Officer, Secrets User, Reader, Purge Operator).
    Role {
        #[command(flatten)]
        global: cli::Global,
        #[command(subcommand)]
        command: cli_vault::RoleCommand,
    },
    /// Events (expiry notices, credential and secret changes) and their webhook subscriptions.
    Events {
        #[command(flatten)]
        global: cli::Global,
        #[command(subcommand)]
        command: cli_vault::EventsCommand,
    },
    /// Run a command with vault secrets in its environment, written nowhere else.
    Run {
        #[command(flatten)]
        global: cli::Global,
        /// NAME=VAULT/SECRET[/VERSION], repeatable.
        #[arg(long = "env", value_parser = cli_vault::parse_env_mapping, required = true)]
        env: Vec<cli_vault::EnvMapping>,
        /// The command and its arguments, after --.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// The audit log: every change, hash-chained and checkpointed.
    Audit {
        #[command(flatten)]
        global: cli::Global,
        #[command(subcommand)]
        command: cli::AuditCommand,
    },
    /// The sign-in log: every token request with the secret it used or why it failed.
    Signins {
        #[command(flatten)]
        global: cli::Global,
        #[command(subcommand)]
        command: cli::SigninsCommand,
    },
    /// Explain a failed request from the correlation id it returned.
    Diagnose {
        #[command(flatten)]
        global: cli::Global,
        /// The correlation id (client-request-id) of the request.
        correlation_id: String,
    },
    /// Load a synthetic data set (applications, secret versions) for benchmarks at scale.
    #[command(hide = true)]
    BenchLoad(serve::BenchLoadArgs),
    /// Open a sealed server (started without its master key) with the key from a file or stdin.
    Unseal(cli_admin::UnsealArgs),
    /// Write an encrypted, consistent snapshot of the instance (live, either store) to a file.
    Backup(serve::BackupArgs),
    /// Restore a backup onto an empty instance (either store), with the instance's master key.
    Restore(serve::RestoreArgs),
    /// Copy a whole instance between stores (SQLite and PostgreSQL, either way), with the nodes stopped.
    Migrate(migrate::MigrateArgs),
    /// Administrator accounts for the web portal (/portal).
    Admin {
        #[command(flatten)]
        global: cli::Global,
        #[command(subcommand)]
        command: cli_admin::AdminCommand,
    },
    /// The instance's keys.
    Keys {
        #[command(flatten)]
        global: cli::Global,
        #[command(subcommand)]
        command: cli::KeysCommand,
    },
}

fn init_telemetry(json: bool, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(flags) => {
                let environment: Vec<(String, String)> = std::env::vars().collect();
                let config = config::load(&flags, &environment)?;
                init_telemetry(config.log_json, &config.log_level);
                serve::run(config).await
            }
            Command::App { global, command } => cli::app(&global, command).await,
            Command::Token { global, command } => cli::token(&global, command).await,
            Command::Tenant { global, command } => cli::tenant(&global, command).await,
            Command::Keys { global, command } => cli::keys(&global, command).await,
            Command::Admin { global, command } => cli_admin::admin(&global, command).await,
            Command::Migrate(args) => migrate::run(args).await,
            Command::Unseal(args) => cli_admin::unseal(args).await,
            Command::Backup(args) => {
                let environment: Vec<(String, String)> = std::env::vars().collect();
                let config = config::load(&args.serve, &environment)?;
                init_telemetry(config.log_json, "warn");
                serve::backup(config, args).await
            }
            Command::Restore(args) => {
                let environment: Vec<(String, String)> = std::env::vars().collect();
                let config = config::load(&args.serve, &environment)?;
                init_telemetry(config.log_json, "warn");
                serve::restore(config, args).await
            }
            Command::BenchLoad(args) => {
                let environment: Vec<(String, String)> = std::env::vars().collect();
                let config = config::load(&args.serve, &environment)?;
                init_telemetry(config.log_json, "warn");
                serve::bench_load(config, args).await
            }
            Command::Audit { global, command } => cli::audit(&global, command).await,
            Command::Signins { global, command } => cli::signins(&global, command).await,
            Command::Diagnose { global, correlation_id } => cli::diagnose(&global, correlation_id).await,
            Command::Vault { global, command } => cli_vault::vault(&global, command).await,
            Command::Secret { global, command } => cli_vault::secret(&global, command).await,
            Command::Role { global, command } => cli_vault::role(&global, command).await,
            Command::Events { global, command } => cli_vault::events(&global, command).await,
            Command::Run { global, env, command } => cli_vault::run(&global, env, command).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
