//! Vaults: the list, a vault's secrets and deleted secrets, a secret's versions with their
//! properties, and the actions of the data plane. A value is shown only after a click on
//! "Reveal", which reads it through the same audited, role-checked call as the Key Vault API;
//! the value is rendered into that one answer and never into a URL.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::response::Response;
use maud::{html, Markup};

use clavis_core::policy::Permission;
use clavis_core::vault::{SecretProperties, SecretVersion, Vault, VaultSettings};
use clavis_core::{CoreError, PropertiesPatch, SecretValue};

use super::apps::{act, ListQuery};
use super::{badge, copyable, core_failure, csrf, encode, notice, page, redirect, when, when_unix, Posted, Session};
use crate::AppState;

fn vault_path(name: &str) -> String {
    format!("/portal/vaults/{}", encode(name))
}

fn secret_path(vault: &str, name: &str) -> String {
    format!("{}/secrets/{}", vault_path(vault), encode(name))
}

fn vault_uri(state: &AppState, vault: &Vault) -> String {
    format!("https://{}.{}", vault.name, state.core.settings().vault_resource.trim_start_matches("https://"))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    session: Session,
    crate::api::Params(query): crate::api::Params<ListQuery>,
) -> Response {
    let vaults = async {
        let auth = state.core.authorize(&session.principal, Permission::Read)?;
        state.core.list_vaults(&auth).await
    }
    .await;
    let vaults = match vaults {
        Ok(vaults) => vaults,
        Err(error) => return core_failure(Some(&session), error),
    };
    let body = html! {
        h1 { "Vaults" }
        (notice(query.done.as_deref()))
        div.scroll { table #vaults {
            thead { tr { th { "Name" } th { "Vault URI" } th { "Retention" } th { "Purge protection" } th { "State" } } }
            tbody {
                @for vault in &vaults {
                    tr {
                        td { @if vault.deleted_at.is_none() { a href=(vault_path(&vault.name)) { (vault.name) } } @else { (vault.name) } }
                        td { code { (vault_uri(&state, vault)) } }
                        td { (vault.retention_days) " days" }
                        td { (if vault.purge_protection { "On" } else { "Off" }) }
                        td { @if let Some(at) = vault.deleted_at { (badge("error", "Deleted")) " " (when(at)) } @else { (badge("success", "Active")) } }
                    }
                }
                @if vaults.is_empty() { tr { td colspan="5" { "No vaults yet." } } }
            }
        } }
        section {
            h2 { "Create a vault" }
            form.stack method="post" action="/portal/vaults" {
                (csrf(&session))
                label for="name" { "Name (3–24 letters, digits and dashes)" } input id="name" name="name" required maxlength="24";
                label for="retention_days" { "Soft-delete retention (7–90 days)" } input id="retention_days" name="retention_days" type="number" min="7" max="90" value="90";
                label.check { input type="checkbox" name="purge_protection" value="on"; " Purge protection (deleted secrets cannot be purged before their retention ends)" }
                button.primary type="submit" { "Create" }
            }
        }
    };
    page(&session, "vaults", "Vaults", body)
}

pub(crate) async fn create(State(state): State<AppState>, posted: Posted) -> Response {
    let Posted { session, form } = posted;
    let name = form.text("name").to_string();
    let location = format!("{}?done=created", vault_path(&name));
    act!(
        state,
        session,
        Permission::Administer,
        |auth| async {
            let defaults = VaultSettings::default();
            let settings = VaultSettings {
                retention_days: form
                    .optional("retention_days")
                    .map(|_| form.number("retention_days", "The retention"))
                    .transpose()?
                    .unwrap_or(defaults.retention_days),
                purge_protection: form.get("purge_protection") == Some("on"),
                ..defaults
            };
            state.core.create_vault(&auth, &session.context, &name, settings).await
        },
        location
    )
}

/// The vault named in the path, if it is the caller's tenant's and not deleted.
async fn open(state: &AppState, session: &Session, name: &str) -> Result<Vault, CoreError> {
    let auth = state.core.authorize(&session.principal, Permission::Read)?;
    let vault = state.core.vault(&auth, name).await?;
    if vault.deleted_at.is_some() {
        return Err(CoreError::NotFound(format!("Vault '{}' is deleted; recover it first.", vault.name)));
    }
    Ok(vault)
}

pub(crate) async fn vault(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
    crate::api::Params(query): crate::api::Params<ListQuery>,
) -> Response {
    let vault = match open(&state, &session, &name).await {
        Ok(vault) => vault,
        Err(error) => return core_failure(Some(&session), error),
    };
    let live = state.core.list_secrets(&session.principal, &vault, false, "", 100).await;
    let deleted = state.core.list_secrets(&session.principal, &vault, true, "", 100).await;
    let body = html! {
        p.crumbs { a href="/portal/vaults" { "Vaults" } " / " (vault.name) }
        h1 { (vault.name) }
        (notice(query.done.as_deref()))
        dl.facts {
            dt { "Vault URI" } dd { (copyable("vault-uri", &vault_uri(&state, &vault))) }
            dt { "Soft-delete retention" } dd { (vault.retention_days) " days · purge protection " (if vault.purge_protection { "on" } else { "off" }) }
        }
        h2 { "Secrets" }
        @match &live {
            Ok(secrets) => {
                div.scroll { table #secrets {
                    thead { tr { th { "Name" } th { "Content type" } th { "Versions" } th { "Updated" } th { "Expires" } th { "State" } } }
                    tbody {
                        @for secret in secrets {
                            @if let Some(latest) = secret.latest() {
                                tr {
                                    td { a href=(secret_path(&vault.name, &secret.name)) { (secret.name) } }
                                    td { (latest.properties.content_type.clone().unwrap_or_default()) }
                                    td { (secret.versions.len()) }
                                    td { (when(latest.updated)) }
                                    td { (when_unix(latest.properties.exp)) }
                                    td { (version_badge(&state, latest)) }
                                }
                            }
                        }
                        @if secrets.is_empty() { tr { td colspan="6" { "No secrets." } } }
                    }
                } }
            }
            Err(error) => { p.notice.error { (error_text(error)) } }
        }
        section {
            h2 { "New secret" }
            form.stack #set-secret method="post" action=(vault_path(&vault.name)) autocomplete="off" {
                (csrf(&session))
                label for="secret_name" { "Name (letters, digits and dashes)" } input id="secret_name" name="name" required maxlength="127";
                (value_fields())
                button.primary type="submit" { "Create" }
            }
        }
        h2 { "Deleted secrets" }
        @match &deleted {
            Ok(secrets) => {
                div.scroll { table #deleted {
                    thead { tr { th { "Name" } th { "Deleted" } th { "Purged on" } th { span.visually-hidden { "Actions" } } } }
                    tbody {
                        @for secret in secrets {
                            tr {
                                td { (secret.name) }
                                td { (secret.deleted.as_ref().map(|d| when(d.deleted_at)).unwrap_or_default()) }
                                td { (secret.deleted.as_ref().map(|d| when(d.scheduled_purge_at)).unwrap_or_default()) }
                                td.actions {
                                    form method="post" action=(format!("{}/recover", secret_path(&vault.name, &secret.name))) { (csrf(&session)) button type="submit" { "Recover" } }
                                    form method="post" action=(format!("{}/purge", secret_path(&vault.name, &secret.name))) data-confirm="Purge this secret and all its versions for good?" { (csrf(&session)) button.danger type="submit" { "Purge" } }
                                }
                            }
                        }
                        @if secrets.is_empty() { tr { td colspan="4" { "None." } } }
                    }
                } }
            }
            Err(error) => { p.notice.error { (error_text(error)) } }
        }
    };
    page(&session, "vaults", &vault.name, body)
}

fn error_text(error: &CoreError) -> String {
    match error {
        CoreError::Forbidden(message) => format!("You hold no vault role that allows this. {}", message.lines().next().unwrap_or("")),
        other => other.to_string(),
    }
}

fn value_fields() -> Markup {
    html! {
        label for="value" { "Value" }
        textarea id="value" name="value" required rows="3" maxlength="25600" spellcheck="false" autocomplete="off" {}
        label for="content_type" { "Content type (optional)" } input id="content_type" name="content_type" maxlength="255";
        label for="expires" { "Expires (optional)" } input id="expires" name="expires" type="date";
        label for="tags" { "Tags (optional, one key=value per line)" } textarea id="tags" name="tags" rows="2" {}
    }
}

fn version_badge(state: &AppState, version: &SecretVersion) -> Markup {
    let now = state.core.now().unix_timestamp();
    if !version.properties.enabled {
        badge("neutral", "Disabled")
    } else if version.properties.exp.is_some_and(|exp| exp <= now) {
        badge("error", "Expired")
    } else if version.properties.nbf.is_some_and(|nbf| nbf > now) {
        badge("neutral", "Not yet valid")
    } else {
        badge("success", "Enabled")
    }
}

/// The properties of a new version from the form's optional fields.
fn properties(form: &super::Fields) -> Result<SecretProperties, CoreError> {
    let exp = match form.optional("expires") {
        Some(date) => {
            let format = time::macros::format_description!("[year]-[month]-[day]");
            let day = time::Date::parse(date, &format).map_err(|_| CoreError::Invalid("The expiry must be a date (YYYY-MM-DD).".into()))?;
            Some(day.midnight().assume_utc().unix_timestamp())
        }
        None => None,
    };
    let mut tags = BTreeMap::new();
    for line in form.text("tags").lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (key, value) = line.split_once('=').ok_or_else(|| CoreError::Invalid("Write each tag as key=value on its own line.".into()))?;
        tags.insert(key.trim().to_string(), value.trim().to_string());
    }
    Ok(SecretProperties { content_type: form.optional("content_type").map(str::to_string), tags, enabled: true, nbf: None, exp })
}

async fn save_version(state: &AppState, session: &Session, vault_name: &str, name: &str, form: &super::Fields) -> Response {
    let saved = async {
        let vault = open(state, session, vault_name).await?;
        let value = form.get("value").filter(|v| !v.is_empty()).ok_or_else(|| CoreError::Invalid("A value is required.".into()))?;
        state
            .core
            .set_secret(&session.principal, &session.context, &vault, name, SecretValue::new(value.to_string()), properties(form)?)
            .await
    }
    .await;
    match saved {
        Ok(_) => redirect(&format!("{}?done=set", secret_path(vault_name, name))),
        Err(error) => core_failure(Some(session), error),
    }
}

pub(crate) async fn set_secret(State(state): State<AppState>, Path(vault): Path<String>, posted: Posted) -> Response {
    let Posted { session, form } = posted;
    let name = form.text("name").to_string();
    save_version(&state, &session, &vault, &name, &form).await
}

pub(crate) async fn new_version(State(state): State<AppState>, Path((vault, name)): Path<(String, String)>, posted: Posted) -> Response {
    let Posted { session, form } = posted;
    save_version(&state, &session, &vault, &name, &form).await
}

pub(crate) async fn secret(
    State(state): State<AppState>,
    session: Session,
    Path((vault, name)): Path<(String, String)>,
    crate::api::Params(query): crate::api::Params<ListQuery>,
) -> Response {
    secret_page(&state, &session, &vault, &name, query.done.as_deref(), None).await
}

/// A secret's page; `revealed` is (version, value) just read on request.
async fn secret_page(
    state: &AppState,
    session: &Session,
    vault_name: &str,
    name: &str,
    done: Option<&str>,
    revealed: Option<(&str, &str)>,
) -> Response {
    let loaded = async {
        let vault = open(state, session, vault_name).await?;
        let versions = state.core.list_versions(&session.principal, &vault, name, 0, 100).await?;
        Ok::<_, CoreError>((vault, versions))
    }
    .await;
    let (vault, mut versions) = match loaded {
        Ok(loaded) => loaded,
        Err(error) => return core_failure(Some(session), error),
    };
    versions.sort_by_key(|v| std::cmp::Reverse(v.ordinal));
    let base = secret_path(&vault.name, name);
    let body = html! {
        p.crumbs { a href="/portal/vaults" { "Vaults" } " / " a href=(vault_path(&vault.name)) { (vault.name) } " / " (name) }
        h1 { (name) }
        (notice(done))
        @if let Some((version, value)) = revealed {
            section.revealed aria-live="polite" data-once {
                p { "Value of version " code { (version) } " (this read is in the audit log):" }
                (copyable("revealed-value", value))
            }
        }
        h2 { "Versions" }
        div.scroll { table #versions {
            thead { tr { th { "Version" } th { "State" } th { "Content type" } th { "Tags" } th { "Created" } th { "Activates" } th { "Expires" } th { span.visually-hidden { "Actions" } } } }
            tbody {
                @for version in &versions {
                    tr data-version=(version.version) {
                        td { code { (version.version) } }
                        td { (version_badge(state, version)) }
                        td { (version.properties.content_type.clone().unwrap_or_default()) }
                        td { @for (key, value) in &version.properties.tags { span.tag { (key) "=" (value) } " " } }
                        td { (when(version.created)) }
                        td { (when_unix(version.properties.nbf)) }
                        td { (when_unix(version.properties.exp)) }
                        td.actions {
                            form method="post" action=(format!("{base}/reveal")) {
                                (csrf(session)) input type="hidden" name="version" value=(version.version);
                                button type="submit" { "Reveal value" }
                            }
                            form method="post" action=(format!("{base}/enabled")) {
                                (csrf(session)) input type="hidden" name="version" value=(version.version);
                                input type="hidden" name="enabled" value=(if version.properties.enabled { "false" } else { "true" });
                                button type="submit" { (if version.properties.enabled { "Disable" } else { "Enable" }) }
                            }
                        }
                    }
                }
            }
        } }
        section {
            h2 { "New version" }
            form.stack #new-version method="post" action=(base.clone()) autocomplete="off" {
                (csrf(session))
                (value_fields())
                button.primary type="submit" { "Save new version" }
            }
        }
        section.danger {
            h2 { "Delete" }
            p.hint { "A deleted secret can be recovered for " (vault.retention_days) " days, then it is purged." }
            form method="post" action=(format!("{base}/delete")) data-confirm=(format!("Delete {name}? It can be recovered for {} days.", vault.retention_days)) {
                (csrf(session)) button.danger type="submit" { "Delete secret" }
            }
        }
    };
    page(session, "vaults", name, body)
}

pub(crate) async fn reveal(State(state): State<AppState>, Path((vault_name, name)): Path<(String, String)>, posted: Posted) -> Response {
    let Posted { session, form } = posted;
    let read = async {
        let vault = open(&state, &session, &vault_name).await?;
        state.core.get_secret(&session.principal, &session.context, &vault, &name, form.optional("version")).await
    }
    .await;
    match read {
        Ok((version, value)) => secret_page(&state, &session, &vault_name, &name, None, Some((&version.version, value.expose()))).await,
        Err(error) => core_failure(Some(&session), error),
    }
}

pub(crate) async fn set_enabled(
    State(state): State<AppState>,
    Path((vault_name, name)): Path<(String, String)>,
    posted: Posted,
) -> Response {
    let Posted { session, form } = posted;
    let changed = async {
        let vault = open(&state, &session, &vault_name).await?;
        let patch = PropertiesPatch { enabled: Some(form.text("enabled") == "true"), ..Default::default() };
        state.core.update_secret(&session.principal, &session.context, &vault, &name, form.optional("version"), patch).await
    }
    .await;
    match changed {
        Ok(_) => redirect(&format!("{}?done=updated", secret_path(&vault_name, &name))),
        Err(error) => core_failure(Some(&session), error),
    }
}

/// Runs a whole-secret action of the data plane and returns to the vault page.
macro_rules! secret_action {
    ($fn:ident, $call:ident, $done:literal) => {
        pub(crate) async fn $fn(
            State(state): State<AppState>,
            Path((vault_name, name)): Path<(String, String)>,
            posted: Posted,
        ) -> Response {
            let Posted { session, .. } = posted;
            let done = async {
                let vault = open(&state, &session, &vault_name).await?;
                state.core.$call(&session.principal, &session.context, &vault, &name).await.map(|_| ())
            }
            .await;
            match done {
                Ok(()) => redirect(&format!("{}?done={}", vault_path(&vault_name), $done)),
                Err(error) => core_failure(Some(&session), error),
            }
        }
    };
}

secret_action!(delete, delete_secret, "deleted");
secret_action!(recover, recover_secret, "recovered");
secret_action!(purge, purge_secret, "purged");
