//! Applications: the list with search, an application's overview with the endpoints its clients
//! need, "Certificates & secrets" (add with the value shown once, remove, revoke, rotate, the
//! rotation policy) and its roles and role assignments.

use axum::extract::{Path, State};
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;
use time::Duration;

use clavis_core::credential::{CredentialState, PasswordRequest};
use clavis_core::identity::{AppRole, Application};
use clavis_core::policy::Permission;
use clavis_core::rotation::RotationPolicy;
use clavis_core::{CoreError, NewApplication};

use super::{badge, copyable, core_failure, csrf, encode, notice, page, redirect, when, Posted, Session};
use crate::AppState;

#[derive(Deserialize, Default)]
pub(crate) struct ListQuery {
    q: Option<String>,
    pub(crate) done: Option<String>,
}

/// Runs a portal action: authorize, call, then 303 to `location`, or the error as a page.
macro_rules! act {
    ($state:expr, $session:expr, $permission:expr, |$auth:ident| $call:expr, $location:expr) => {{
        let result = async {
            let $auth = $state.core.authorize(&$session.principal, $permission)?;
            $call.await
        }
        .await;
        match result {
            Ok(_) => redirect(&$location),
            Err(error) => core_failure(Some(&$session), error),
        }
    }};
}
pub(crate) use act;

fn app_path(id: &str) -> String {
    format!("/portal/apps/{}", encode(id))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    session: Session,
    crate::api::Params(query): crate::api::Params<ListQuery>,
) -> Response {
    let apps = match state.core.authorize(&session.principal, Permission::Read) {
        Ok(auth) => state.core.applications(&auth).await,
        Err(error) => Err(error),
    };
    let mut apps = match apps {
        Ok(apps) => apps,
        Err(error) => return core_failure(Some(&session), error),
    };
    let search = query.q.unwrap_or_default();
    let needle = search.trim().to_lowercase();
    apps.retain(|a| needle.is_empty() || a.display_name.to_lowercase().contains(&needle) || a.app_id.contains(&needle));
    apps.sort_by_key(|a| a.display_name.to_lowercase());
    let now = state.core.now();
    let body = html! {
        h1 { "Applications" }
        (notice(query.done.as_deref()))
        form.search role="search" method="get" action="/portal/apps" {
            label for="q" { "Search by name or client id" }
            input id="q" name="q" type="search" value=(search);
            button type="submit" { "Search" }
        }
        div.scroll {
            table {
                thead { tr { th { "Name" } th { "Client id" } th { "Secrets" } th { "Next expiry" } } }
                tbody {
                    @for app in &apps {
                        tr {
                            td { a href=(app_path(&app.id)) { (app.display_name) } @if app.builtin { " " (badge("neutral", "built-in")) } }
                            td { code { (app.app_id) } }
                            td { (app.password_credentials.len()) }
                            td {
                                @if let Some(next) = app.password_credentials.iter().filter(|c| c.end > now).map(|c| c.end).min() { (when(next)) } @else { "—" }
                            }
                        }
                    }
                    @if apps.is_empty() { tr { td colspan="4" { "No application matches." } } }
                }
            }
        }
        section {
            h2 { "Register an application" }
            form.stack method="post" action="/portal/apps" {
                (csrf(&session))
                label for="name" { "Display name" }
                input id="name" name="name" required maxlength="256";
                label for="identifier_uri" { "Application ID URI (optional, for an API others call), e.g. api://orders" }
                input id="identifier_uri" name="identifier_uri" maxlength="256";
                button.primary type="submit" { "Register" }
            }
        }
    };
    page(&session, "apps", "Applications", body)
}

pub(crate) async fn create(State(state): State<AppState>, posted: Posted) -> Response {
    let Posted { session, form } = posted;
    let new = NewApplication {
        display_name: form.text("name").to_string(),
        identifier_uris: form.optional("identifier_uri").map(|u| vec![u.to_string()]).unwrap_or_default(),
        app_roles: Vec::new(),
        requested_access_token_version: None,
    };
    let result = async {
        let auth = state.core.authorize(&session.principal, Permission::WriteApplications)?;
        state.core.create_application(&auth, &session.context, new).await
    }
    .await;
    match result {
        Ok(app) => redirect(&format!("{}?done=created", app_path(&app.id))),
        Err(error) => core_failure(Some(&session), error),
    }
}

async fn load(state: &AppState, session: &Session, id: &str) -> Result<Application, CoreError> {
    let auth = state.core.authorize(&session.principal, Permission::Read)?;
    state.core.application(&auth, id).await
}

fn tabs(app: &Application, active: &str) -> Markup {
    let base = app_path(&app.id);
    html! {
        p.crumbs { a href="/portal/apps" { "Applications" } " / " (app.display_name) }
        h1 { (app.display_name) }
        nav.tabs aria-label="Application" {
            @for (key, suffix, label) in [("overview", "", "Overview"), ("secrets", "/secrets", "Certificates & secrets"), ("roles", "/roles", "App roles & assignments")] {
                a href=(format!("{base}{suffix}")) aria-current=[(key == active).then_some("page")] { (label) }
            }
        }
    }
}

pub(crate) async fn overview(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    crate::api::Params(query): crate::api::Params<ListQuery>,
) -> Response {
    let app = match load(&state, &session, &id).await {
        Ok(app) => app,
        Err(error) => return core_failure(Some(&session), error),
    };
    let base = format!("{}/{}", state.public_url, app.tenant_id);
    let endpoints = [
        ("token-v2", "Token endpoint (v2)", format!("{base}/oauth2/v2.0/token")),
        ("token-v1", "Token endpoint (v1)", format!("{base}/oauth2/token")),
        ("authority", "Authority", base.clone()),
        ("openid", "OpenID configuration", format!("{base}/v2.0/.well-known/openid-configuration")),
        ("jwks", "Signing keys (JWKS)", format!("{base}/discovery/v2.0/keys")),
    ];
    let body = html! {
        (tabs(&app, "overview"))
        (notice(query.done.as_deref()))
        dl.facts {
            dt { "Application (client) id" } dd { (copyable("client-id", &app.app_id)) }
            dt { "Directory (tenant) id" } dd { (copyable("tenant-id", &app.tenant_id)) }
            dt { "Object id" } dd { code { (app.id) } }
            dt { "Application ID URIs" } dd { @for uri in &app.identifier_uris { code { (uri) } " " } @if app.identifier_uris.is_empty() { "—" } }
            dt { "Registered" } dd { (when(app.created_at)) }
        }
        h2 { "Endpoints" }
        dl.facts {
            @for (key, label, url) in &endpoints { dt { (label) } dd { (copyable(key, url)) } }
        }
        h2 { "Use it from the Azure SDK" }
        pre.snippet { code {
            "from azure.identity import ClientSecretCredential\n\ncredential = ClientSecretCredential(\n    \"" (app.tenant_id) "\", \"" (app.app_id) "\", SECRET,\n    authority=\"" (state.public_url) "\", disable_instance_discovery=True)\n"
        } }
        @if !app.builtin {
            section.danger {
                h2 { "Delete" }
                form method="post" action=(format!("{}/delete", app_path(&app.id))) data-confirm=(format!("Delete {} with its secrets and role assignments?", app.display_name)) {
                    (csrf(&session))
                    button.danger type="submit" { "Delete application" }
                }
            }
        }
    };
    page(&session, "apps", &app.display_name, body)
}

pub(crate) async fn delete(State(state): State<AppState>, Path(id): Path<String>, posted: Posted) -> Response {
    let Posted { session, .. } = posted;
    act!(
        state,
        session,
        Permission::WriteApplications,
        |auth| state.core.delete_application(&auth, &session.context, &id),
        "/portal/apps?done=removed"
    )
}

fn state_badge(state: CredentialState) -> Markup {
    match state {
        CredentialState::Active => badge("success", "Active"),
        CredentialState::Expiring => badge("warning", "Expiring soon"),
        CredentialState::Expired => badge("error", "Expired"),
        CredentialState::NotYetValid => badge("neutral", "Not yet valid"),
    }
}

/// The expiry choices the tenant's policy allows, with its default first.
fn expiry_choices(max_days: i64, default_days: i64) -> Vec<(i64, String)> {
    let mut choices: Vec<(i64, String)> = [(90, "3 months"), (180, "6 months"), (365, "12 months"), (545, "18 months"), (730, "24 months")]
        .into_iter()
        .filter(|(days, _)| *days <= max_days)
        .map(|(days, label)| (days, format!("{label} ({days} days)")))
        .collect();
    if !choices.iter().any(|(days, _)| *days == default_days) && default_days <= max_days {
        choices.push((default_days, format!("{default_days} days (policy default)")));
    }
    choices.sort_by_key(|(days, _)| (*days != default_days, *days));
    choices
}

pub(crate) async fn secrets(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    crate::api::Params(query): crate::api::Params<ListQuery>,
) -> Response {
    secrets_page(&state, &session, &id, query.done.as_deref(), None).await
}

/// "Certificates & secrets"; `created` is a secret just added, shown this once in a dialog.
async fn secrets_page(state: &AppState, session: &Session, id: &str, done: Option<&str>, created: Option<(&str, &str)>) -> Response {
    let loaded = async {
        let auth = state.core.authorize(&session.principal, Permission::Read)?;
        let app = state.core.application(&auth, id).await?;
        let tenant = state.core.tenant(&auth)?;
        let rotation = match state.core.rotation_policy(&auth, id).await {
            Ok(record) => Some(record),
            Err(CoreError::NotFound(_)) | Err(CoreError::Forbidden(_)) => None,
            Err(other) => return Err(other),
        };
        Ok((app, tenant, rotation))
    }
    .await;
    let (app, tenant, rotation) = match loaded {
        Ok(loaded) => loaded,
        Err(error) => return core_failure(Some(session), error),
    };
    let policy = tenant.policy.with_override(app.credential_policy.as_ref());
    let now = state.core.now();
    let window = state.core.notice_window();
    let mut credentials = app.password_credentials.clone();
    credentials.sort_by_key(|c| std::cmp::Reverse(c.created_at));
    let base = app_path(&app.id);
    let body = html! {
        (tabs(&app, "secrets"))
        (notice(done))
        @if let Some((value, key_id)) = created {
            dialog #new-secret open data-modal data-once aria-labelledby="new-secret-title" {
                h2 #new-secret-title { "Copy the new client secret now" }
                p.notice.warning { strong { "This is the only time it is shown." } " Clavis keeps only a keyed hash of it; if you lose it, add a new secret." }
                (copyable("secret-value", value))
                p { "Secret id (keyId): " code #secret-key-id { (key_id) } }
                form method="dialog" { button.primary type="submit" autofocus { "I have copied it" } }
            }
        }
        h2 { "Client secrets" }
        p.hint { "Applications prove their identity with a secret when they request a token. Policy: at most " (policy.max_password_lifetime_days) " days, " (policy.max_passwords_per_application) " secrets per application." }
        div.scroll {
            table #secrets {
                thead { tr { th { "Description" } th { "Value" } th { "Secret id" } th { "Starts" } th { "Expires" } th { "State" } th { "Last used" } th { span.visually-hidden { "Actions" } } } }
                tbody {
                    @for credential in &credentials {
                        tr data-key-id=(credential.key_id) {
                            td { (credential.display_name.clone().unwrap_or_default()) }
                            td { code.nowrap { (credential.hint) "•••••" } }
                            td { code { (credential.key_id) } }
                            td { (when(credential.start)) }
                            td { (when(credential.end)) }
                            td { (state_badge(credential.state(now, window))) }
                            td.last-used {
                                @if let Some(usage) = &credential.usage {
                                    (when(usage.last_used_date_time)) br; small { (usage.use_count) " uses · from " (usage.last_used_ip) }
                                } @else { "Never" }
                            }
                            td.actions {
                                form method="post" action=(format!("{base}/secrets/{}/remove", encode(&credential.key_id))) data-confirm="Remove this secret? Clients using it stop getting tokens." {
                                    (csrf(session)) button type="submit" { "Remove" }
                                }
                                form method="post" action=(format!("{base}/secrets/{}/revoke", encode(&credential.key_id))) data-confirm="Revoke this secret as compromised? It is removed and every token it obtained is refused at once." {
                                    (csrf(session)) button.danger type="submit" { "Revoke as compromised" }
                                }
                            }
                        }
                    }
                    @if credentials.is_empty() { tr { td colspan="8" { "No client secrets." } } }
                }
            }
        }
        section {
            h2 { "New client secret" }
            form.stack #add-secret method="post" action=(format!("{base}/secrets")) {
                (csrf(session))
                label for="description" { "Description" }
                input id="description" name="description" maxlength="256" placeholder="e.g. production worker";
                label for="expires" { "Expires" }
                select id="expires" name="expires_days" {
                    @for (days, label) in expiry_choices(policy.max_password_lifetime_days, policy.default_password_lifetime_days) {
                        option value=(days) { (label) }
                    }
                }
                button.primary type="submit" { "Add" }
            }
        }
        section {
            h2 { "Automatic rotation" }
            @if let Some(record) = &rotation {
                p { "A new secret is published to vault " code { (record.policy.vault) } " as secret " code { (record.policy.secret_name) } " "
                    (record.policy.rotate_before_expiry_days.map(|d| format!("{d} days before the newest secret expires")).or(record.policy.rotate_every_days.map(|d| format!("every {d} days"))).unwrap_or_default())
                    "; the previous one keeps working for " (record.policy.overlap_days) " days. New secrets live " (record.policy.secret_lifetime_days) " days." }
                div.row {
                    form method="post" action=(format!("{base}/rotate")) data-confirm="Rotate now: add a new secret and publish it to the vault?" { (csrf(session)) button.primary type="submit" { "Rotate now" } }
                    form method="post" action=(format!("{base}/rotation/remove")) { (csrf(session)) button type="submit" { "Remove policy" } }
                }
            } @else {
                p.hint { "No rotation policy. With one, Clavis adds a new secret before the current one expires, publishes it to a vault secret your workload reads, and removes the old one after an overlap." }
            }
            form.stack #rotation method="post" action=(format!("{base}/rotation")) {
                (csrf(session))
                label for="vault" { "Vault" } input id="vault" name="vault" required value=[rotation.as_ref().map(|r| r.policy.vault.clone())];
                label for="secret_name" { "Vault secret name" } input id="secret_name" name="secret_name" required value=[rotation.as_ref().map(|r| r.policy.secret_name.clone())];
                label for="before_days" { "Rotate this many days before expiry" } input id="before_days" name="before_days" type="number" min="1" value=(rotation.as_ref().and_then(|r| r.policy.rotate_before_expiry_days).unwrap_or(30));
                label for="overlap_days" { "Overlap (days the old secret keeps working)" } input id="overlap_days" name="overlap_days" type="number" min="0" value=(rotation.as_ref().map(|r| r.policy.overlap_days).unwrap_or(7));
                label for="lifetime_days" { "Lifetime of each new secret (days)" } input id="lifetime_days" name="lifetime_days" type="number" min="1" value=(rotation.as_ref().map(|r| r.policy.secret_lifetime_days).unwrap_or(policy.default_password_lifetime_days.min(policy.max_password_lifetime_days)));
                button type="submit" { "Save rotation policy" }
            }
        }
    };
    page(session, "apps", &format!("{} · Certificates & secrets", app.display_name), body)
}

pub(crate) async fn add_secret(State(state): State<AppState>, Path(id): Path<String>, posted: Posted) -> Response {
    let Posted { session, form } = posted;
    let added = async {
        let days = form.number("expires_days", "The expiry")?;
        let auth = state.core.authorize(&session.principal, Permission::WriteApplications)?;
        let request = PasswordRequest {
            display_name: form.optional("description").map(str::to_string),
            start: None,
            end: Some(state.core.now() + Duration::days(days)),
            custom_value: None,
        };
        state.core.add_password(&auth, &session.context, &id, request).await
    }
    .await;
    match added {
        Ok(new) => secrets_page(&state, &session, &id, None, Some((new.secret.expose(), &new.credential.key_id))).await,
        Err(error) => core_failure(Some(&session), error),
    }
}

pub(crate) async fn remove_secret(State(state): State<AppState>, Path((id, key)): Path<(String, String)>, posted: Posted) -> Response {
    let Posted { session, .. } = posted;
    let location = format!("{}/secrets?done=removed", app_path(&id));
    act!(state, session, Permission::WriteApplications, |auth| state.core.remove_password(&auth, &session.context, &id, &key), location)
}

pub(crate) async fn revoke_secret(State(state): State<AppState>, Path((id, key)): Path<(String, String)>, posted: Posted) -> Response {
    let Posted { session, .. } = posted;
    let location = format!("{}/secrets?done=revoked", app_path(&id));
    act!(
        state,
        session,
        Permission::WriteApplications,
        |auth| state.core.revoke_password(&auth, &session.context, &id, &key, "compromised", true),
        location
    )
}

pub(crate) async fn rotate(State(state): State<AppState>, Path(id): Path<String>, posted: Posted) -> Response {
    let Posted { session, .. } = posted;
    let location = format!("{}/secrets?done=rotated", app_path(&id));
    act!(state, session, Permission::Administer, |auth| state.core.rotate_now(&auth, &session.context, &id), location)
}

pub(crate) async fn set_rotation(State(state): State<AppState>, Path(id): Path<String>, posted: Posted) -> Response {
    let Posted { session, form } = posted;
    let location = format!("{}/secrets?done=rotation-set", app_path(&id));
    act!(
        state,
        session,
        Permission::Administer,
        |auth| async {
            let policy = RotationPolicy {
                rotate_before_expiry_days: Some(form.number("before_days", "Days before expiry")?),
                rotate_every_days: None,
                overlap_days: form.number("overlap_days", "The overlap")?,
                secret_lifetime_days: form.number("lifetime_days", "The lifetime")?,
                vault: form.text("vault").to_string(),
                secret_name: form.text("secret_name").to_string(),
            };
            state.core.set_rotation_policy(&auth, &session.context, &id, policy).await
        },
        location
    )
}

pub(crate) async fn remove_rotation(State(state): State<AppState>, Path(id): Path<String>, posted: Posted) -> Response {
    let Posted { session, .. } = posted;
    let location = format!("{}/secrets?done=rotation-removed", app_path(&id));
    act!(state, session, Permission::Administer, |auth| state.core.delete_rotation_policy(&auth, &session.context, &id), location)
}

pub(crate) async fn roles(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    crate::api::Params(query): crate::api::Params<ListQuery>,
) -> Response {
    let loaded = async {
        let auth = state.core.authorize(&session.principal, Permission::Read)?;
        let app = state.core.application(&auth, &id).await?;
        let held = state.core.assignments(&auth, &id, false).await?;
        let granted = state.core.assignments(&auth, &id, true).await?;
        let apps = state.core.applications(&auth).await?;
        Ok::<_, CoreError>((app, held, granted, apps))
    }
    .await;
    let (app, held, granted, apps) = match loaded {
        Ok(loaded) => loaded,
        Err(error) => return core_failure(Some(&session), error),
    };
    let by_sp = |sp: &str| apps.iter().find(|a| a.service_principal_id == sp);
    let role_name = |resource: Option<&Application>, role_id: &str| {
        resource
            .and_then(|r| r.app_roles.iter().find(|role| role.id == role_id))
            .map(|role| role.value.clone())
            .unwrap_or_else(|| role_id.to_string())
    };
    let base = app_path(&app.id);
    let body = html! {
        (tabs(&app, "roles"))
        (notice(query.done.as_deref()))
        h2 { "App roles this application defines" }
        div.scroll { table {
            thead { tr { th { "Value" } th { "Display name" } th { "Description" } th { "Enabled" } } }
            tbody {
                @for role in &app.app_roles { tr { td { code { (role.value) } } td { (role.display_name) } td { (role.description) } td { (if role.is_enabled { "Yes" } else { "No" }) } } }
                @if app.app_roles.is_empty() { tr { td colspan="4" { "None." } } }
            }
        } }
        form.stack #add-role method="post" action=(format!("{base}/roles")) {
            (csrf(&session))
            label for="value" { "Value (the claim clients receive), e.g. Orders.Read" } input id="value" name="value" required maxlength="120";
            label for="display_name" { "Display name" } input id="display_name" name="display_name" maxlength="100";
            label for="role_description" { "Description" } input id="role_description" name="description" maxlength="256";
            button type="submit" { "Add app role" }
        }
        h2 { "Roles this application holds" }
        div.scroll { table #held {
            thead { tr { th { "Resource" } th { "Role" } th { "Granted" } th { span.visually-hidden { "Actions" } } } }
            tbody {
                @for assignment in &held {
                    @let resource = by_sp(&assignment.resource_id);
                    tr {
                        td { (resource.map(|r| r.display_name.clone()).unwrap_or_else(|| assignment.resource_id.clone())) }
                        td { code { (role_name(resource, &assignment.app_role_id)) } }
                        td { (when(assignment.created_date_time)) }
                        td { form method="post" action=(format!("{base}/grants/{}/remove", encode(&assignment.id))) data-confirm="Remove this role from the application?" { (csrf(&session)) button type="submit" { "Remove" } } }
                    }
                }
                @if held.is_empty() { tr { td colspan="4" { "None." } } }
            }
        } }
        form.stack #grant method="post" action=(format!("{base}/grants")) {
            (csrf(&session))
            label for="grant_role" { "Grant this application a role of" }
            select id="grant_role" name="role" required {
                @for resource in apps.iter().filter(|a| !a.app_roles.is_empty()) {
                    @for role in resource.app_roles.iter().filter(|r| r.is_enabled) {
                        option value=(format!("{}|{}", resource.app_id, role.value)) { (resource.display_name) " — " (role.value) }
                    }
                }
            }
            button type="submit" { "Grant" }
        }
        h2 { "Clients granted this application's roles" }
        div.scroll { table #granted {
            thead { tr { th { "Client" } th { "Role" } th { "Granted" } th { span.visually-hidden { "Actions" } } } }
            tbody {
                @for assignment in &granted {
                    tr {
                        td { (by_sp(&assignment.principal_id).map(|c| c.display_name.clone()).unwrap_or_else(|| assignment.principal_id.clone())) }
                        td { code { (role_name(Some(&app), &assignment.app_role_id)) } }
                        td { (when(assignment.created_date_time)) }
                        td { form method="post" action=(format!("{base}/grants/{}/remove", encode(&assignment.id))) data-confirm="Remove this grant?" { (csrf(&session)) button type="submit" { "Remove" } } }
                    }
                }
                @if granted.is_empty() { tr { td colspan="4" { "None." } } }
            }
        } }
    };
    page(&session, "apps", &format!("{} · Roles", app.display_name), body)
}

pub(crate) async fn add_role(State(state): State<AppState>, Path(id): Path<String>, posted: Posted) -> Response {
    let Posted { session, form } = posted;
    let value = form.text("value").to_string();
    let role = AppRole {
        id: String::new(),
        display_name: form.optional("display_name").unwrap_or(&value).to_string(),
        description: form.text("description").to_string(),
        value,
        allowed_member_types: vec!["Application".into()],
        is_enabled: true,
    };
    let location = format!("{}/roles?done=role-added", app_path(&id));
    act!(state, session, Permission::WriteApplications, |auth| state.core.add_app_role(&auth, &session.context, &id, role), location)
}

pub(crate) async fn grant(State(state): State<AppState>, Path(id): Path<String>, posted: Posted) -> Response {
    let Posted { session, form } = posted;
    let Some((resource, role)) = form.text("role").split_once('|').map(|(r, v)| (r.to_string(), v.to_string())) else {
        return core_failure(Some(&session), CoreError::Invalid("Choose a resource and role to grant.".into()));
    };
    let location = format!("{}/roles?done=granted", app_path(&id));
    act!(
        state,
        session,
        Permission::WriteApplications,
        |auth| state.core.grant_role(&auth, &session.context, &id, &resource, &role),
        location
    )
}

pub(crate) async fn revoke_grant(
    State(state): State<AppState>,
    Path((id, assignment)): Path<(String, String)>,
    posted: Posted,
) -> Response {
    let Posted { session, .. } = posted;
    let location = format!("{}/roles?done=removed", app_path(&id));
    act!(state, session, Permission::WriteApplications, |auth| state.core.revoke_role(&auth, &session.context, &assignment), location)
}

#[cfg(test)]
mod tests {
    #[test]
    fn expiry_choices_stay_within_policy() {
        let choices = super::expiry_choices(365, 180);
        assert_eq!(choices.first().map(|c| c.0), Some(180));
        assert!(choices.iter().all(|(days, _)| *days <= 365));
        assert_eq!(super::expiry_choices(30, 30), vec![(30, "30 days (policy default)".to_string())]);
    }
}
