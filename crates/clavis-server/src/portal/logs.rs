//! The dashboard (what needs attention), the audit log with its chain verification, the sign-in
//! log, events with their webhook deliveries, and the error-code pages.

use axum::extract::State;
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;
use time::Duration;

use clavis_core::audit::AuditFilter;
use clavis_core::credential::CredentialState;
use clavis_core::events::DeliveryStatus;
use clavis_core::policy::Permission;
use clavis_core::signin::SignInFilter;
use clavis_core::CoreError;

use super::{badge, core_failure, encode, page, when, when_unix, Session};
use crate::AppState;

/// A credential unused for this long (or never used) is listed on the dashboard.
const UNUSED_AFTER_DAYS: i64 = 30;

fn or_error<T>(result: &Result<T, CoreError>, show: impl FnOnce(&T) -> Markup) -> Markup {
    match result {
        Ok(value) => show(value),
        Err(CoreError::Forbidden(_)) => html! { p.hint { "Your role does not include this." } },
        Err(error) => html! { p.notice.error { (error.to_string()) } },
    }
}

pub(crate) async fn dashboard(State(state): State<AppState>, session: Session) -> Response {
    let auth = match state.core.authorize(&session.principal, Permission::Read) {
        Ok(auth) => auth,
        Err(error) => return core_failure(Some(&session), error),
    };
    let now = state.core.now();
    let window = state.core.notice_window();
    let apps = match state.core.applications(&auth).await {
        Ok(apps) => apps,
        Err(error) => return core_failure(Some(&session), error),
    };
    let mut expiring = Vec::new();
    let mut unused = Vec::new();
    for app in apps.iter().filter(|a| !a.builtin) {
        for credential in &app.password_credentials {
            let state = credential.state(now, window);
            if matches!(state, CredentialState::Expiring | CredentialState::Expired) {
                expiring.push((app, credential, state));
            }
            let last = credential.usage.as_ref().map(|u| u.last_used_date_time);
            let idle_since = last.unwrap_or(credential.created_at);
            if state != CredentialState::Expired && now - idle_since >= Duration::days(UNUSED_AFTER_DAYS) {
                unused.push((app, credential, last));
            }
        }
    }
    expiring.sort_by_key(|(_, c, _)| c.end);
    let vault_expiring = state.core.expiring_vault_secrets(&auth, now + window).await;
    let failed = match state.core.authorize(&session.principal, Permission::Administer) {
        Ok(admin) => {
            let filter = SignInFilter { result: Some("failure".into()), limit: 10, ..Default::default() };
            state.core.signins(&admin, &filter).await
        }
        Err(error) => Err(error),
    };
    let deliveries = state.core.recent_events(&auth, -1, 500).await.map(|events| {
        let mut failing: Vec<_> = events
            .into_iter()
            .flat_map(|record| {
                let event = record.event;
                record
                    .deliveries
                    .into_iter()
                    .filter(|d| d.status == DeliveryStatus::Failed || (d.status == DeliveryStatus::Pending && d.attempts > 0))
                    .map(move |d| (event.clone(), d))
            })
            .collect();
        failing.reverse();
        failing.truncate(10);
        failing
    });
    let app_link = |id: &str| format!("/portal/apps/{}/secrets", encode(id));
    let body = html! {
        h1 { "Dashboard" }
        div.cards {
            section.card #expiring-credentials {
                h2 { "Client secrets expiring soon" }
                @if expiring.is_empty() { p.hint { "None within " (window.whole_days()) " days." } }
                ul.plain {
                    @for (app, credential, state) in &expiring {
                        li {
                            a href=(app_link(&app.id)) { (app.display_name) } " · " (credential.display_name.clone().unwrap_or_else(|| credential.hint.clone() + "…")) " · "
                            @if *state == CredentialState::Expired { (badge("error", "Expired")) } @else { (badge("warning", "Expiring")) }
                            " " (when(credential.end))
                        }
                    }
                }
            }
            section.card #expiring-secrets {
                h2 { "Vault secrets expiring soon" }
                (or_error(&vault_expiring, |secrets| html! {
                    @if secrets.is_empty() { p.hint { "None within " (window.whole_days()) " days." } }
                    ul.plain {
                        @for secret in secrets.iter().take(20) {
                            li { a href=(format!("/portal/vaults/{}/secrets/{}", encode(&secret.vault), encode(&secret.name))) { (secret.vault) "/" (secret.name) } " · " (when_unix(Some(secret.exp))) }
                        }
                    }
                }))
            }
            section.card #unused-credentials {
                h2 { "Unused client secrets" }
                p.hint { "Not used in " (UNUSED_AFTER_DAYS) " days, or never: candidates for removal." }
                @if unused.is_empty() { p.hint { "None." } }
                ul.plain {
                    @for (app, credential, last) in unused.iter().take(20) {
                        li {
                            a href=(app_link(&app.id)) { (app.display_name) } " · " (credential.display_name.clone().unwrap_or_else(|| credential.hint.clone() + "…")) " · "
                            @if let Some(at) = last { "last used " (when(*at)) } @else { "never used" }
                        }
                    }
                }
            }
            section.card #failed-signins {
                h2 { "Recent failed sign-ins" }
                (or_error(&failed, |signins| html! {
                    @if signins.is_empty() { p.hint { "None." } }
                    ul.plain {
                        @for signin in signins {
                            li { (when(signin.at)) " · " code { (signin.client_id) } " · " a href=(format!("/error?code={}", encode(signin.error_code.trim_start_matches("AADSTS")))) { (signin.error_code) } " · " (signin.client_ip) }
                        }
                    }
                    p { a href="/portal/signins?result=failure" { "All failed sign-ins" } }
                }))
            }
            section.card #delivery-failures {
                h2 { "Webhook delivery failures" }
                (or_error(&deliveries, |failing| html! {
                    @if failing.is_empty() { p.hint { "None." } }
                    ul.plain {
                        @for (event, delivery) in failing {
                            li { (event.event_type) " · " (delivery_badge(delivery.status)) " after " (delivery.attempts) " attempts · " (delivery.last_error.clone().unwrap_or_default()) }
                        }
                    }
                }))
            }
        }
    };
    page(&session, "dashboard", "Dashboard", body)
}

fn delivery_badge(status: DeliveryStatus) -> Markup {
    match status {
        DeliveryStatus::Delivered => badge("success", "delivered"),
        DeliveryStatus::Pending => badge("warning", "retrying"),
        DeliveryStatus::Failed => badge("error", "failed"),
    }
}

#[derive(Deserialize, Default)]
pub(crate) struct AuditQuery {
    principal: Option<String>,
    action: Option<String>,
    target: Option<String>,
    result: Option<String>,
    since: Option<String>,
}

fn parse_day(text: Option<&str>) -> Result<Option<time::OffsetDateTime>, CoreError> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else { return Ok(None) };
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, &format)
        .map(|day| Some(day.midnight().assume_utc()))
        .map_err(|_| CoreError::Invalid("'Since' must be a date (YYYY-MM-DD).".into()))
}

/// The filter fields both logs share: result and a first day, and the submit button.
fn result_and_since(result: Option<&str>, since: Option<&str>) -> Markup {
    html! {
        label { "Result " select name="result" {
            option value="" { "any" }
            option value="success" selected[result == Some("success")] { "success" }
            option value="failure" selected[result == Some("failure")] { "failure" }
        } }
        label { "Since " input name="since" type="date" value=[since]; }
        button type="submit" { "Filter" }
    }
}

fn some(text: &Option<String>) -> Option<String> {
    text.as_ref().map(|t| t.trim().to_string()).filter(|t| !t.is_empty())
}

pub(crate) async fn audit(
    State(state): State<AppState>,
    session: Session,
    crate::api::Params(query): crate::api::Params<AuditQuery>,
) -> Response {
    let loaded = async {
        let auth = state.core.authorize(&session.principal, Permission::Administer)?;
        let filter = AuditFilter {
            since: parse_day(query.since.as_deref())?,
            principal: some(&query.principal),
            action: some(&query.action),
            target: some(&query.target),
            result: some(&query.result),
            limit: 200,
            newest_first: true,
            ..Default::default()
        };
        let records = state.core.audit_query(&auth, filter).await?;
        let verification = state.core.verify_audit(&auth).await?;
        Ok::<_, CoreError>((records, verification))
    }
    .await;
    let (records, verification) = match loaded {
        Ok(loaded) => loaded,
        Err(error) => return core_failure(Some(&session), error),
    };
    let intact = verification["intact"].as_bool().unwrap_or(false);
    let body = html! {
        h1 { "Audit log" }
        section #chain {
            @if intact {
                p.notice.success { (badge("success", "Chain intact")) " " (verification["records"]) " records verified, " (verification["checkpointsVerified"]) " signed checkpoints verified." }
            } @else {
                p.notice.error role="alert" { (badge("error", "Chain broken")) " " (verification["problem"].as_str().unwrap_or("verification failed")) }
            }
        }
        form.filters method="get" action="/portal/audit" {
            label { "Actor " input name="principal" value=[query.principal.as_deref()] placeholder="id, client id or user"; }
            label { "Action " input name="action" value=[query.action.as_deref()] placeholder="e.g. addPassword or vaultSecret."; }
            label { "Target " input name="target" value=[query.target.as_deref()]; }
            (result_and_since(query.result.as_deref(), query.since.as_deref()))
        }
        div.scroll { table #audit {
            thead { tr { th { "#" } th { "Time" } th { "Actor" } th { "Action" } th { "Target" } th { "Result" } th { "Correlation id" } } }
            tbody {
                @for record in &records {
                    tr {
                        td { (record.seq) }
                        td { (when(record.at)) }
                        td { (record.actor.kind) " " code { (record.details.get("username").and_then(|u| u.as_str()).filter(|_| record.actor.kind == "user").map(str::to_string).or(record.actor.app_id.clone()).unwrap_or_else(|| record.actor.id.clone())) } }
                        td { code { (record.action) } }
                        td { (record.target_type) " " code { (record.target_id) } }
                        td { (record.result) }
                        td { code { (record.context.correlation_id) } }
                    }
                }
                @if records.is_empty() { tr { td colspan="7" { "No record matches." } } }
            }
        } }
    };
    page(&session, "audit", "Audit log", body)
}

#[derive(Deserialize, Default)]
pub(crate) struct SignInQuery {
    client_id: Option<String>,
    result: Option<String>,
    since: Option<String>,
}

pub(crate) async fn signins(
    State(state): State<AppState>,
    session: Session,
    crate::api::Params(query): crate::api::Params<SignInQuery>,
) -> Response {
    let loaded = async {
        let auth = state.core.authorize(&session.principal, Permission::Administer)?;
        let filter = SignInFilter {
            since: parse_day(query.since.as_deref())?,
            client_id: some(&query.client_id),
            result: some(&query.result),
            limit: 200,
            ..Default::default()
        };
        state.core.signins(&auth, &filter).await
    }
    .await;
    let signins = match loaded {
        Ok(signins) => signins,
        Err(error) => return core_failure(Some(&session), error),
    };
    let body = html! {
        h1 { "Sign-in logs" }
        p.hint { "Token requests: failures one by one, successes counted per client, secret and address each flush interval." }
        form.filters method="get" action="/portal/signins" {
            label { "Client id " input name="client_id" value=[query.client_id.as_deref()]; }
            (result_and_since(query.result.as_deref(), query.since.as_deref()))
        }
        div.scroll { table #signins {
            thead { tr { th { "Time" } th { "Client id" } th { "Resource" } th { "Result" } th { "Error" } th { "Address" } th { "Count" } th { "Correlation id" } } }
            tbody {
                @for signin in &signins {
                    tr {
                        td { (when(signin.at)) }
                        td { code { (signin.client_id) } }
                        td { (signin.resource) }
                        td { @if signin.result == "success" { (badge("success", "success")) } @else { (badge("error", "failure")) } }
                        td { @if !signin.error_code.is_empty() { a href=(format!("/error?code={}", encode(signin.error_code.trim_start_matches("AADSTS")))) { (signin.error_code) } " " (signin.diagnosis) } }
                        td { (signin.client_ip) }
                        td { (signin.attempts) }
                        td { code { (signin.correlation_id) } }
                    }
                }
                @if signins.is_empty() { tr { td colspan="8" { "No sign-in matches." } } }
            }
        } }
    };
    page(&session, "signins", "Sign-in logs", body)
}

pub(crate) async fn events(State(state): State<AppState>, session: Session) -> Response {
    let loaded = async {
        let auth = state.core.authorize(&session.principal, Permission::Read)?;
        let subscriptions = state.core.subscriptions(&auth).await?;
        let mut events = state.core.recent_events(&auth, -1, 100).await?;
        events.reverse();
        Ok::<_, CoreError>((subscriptions, events))
    }
    .await;
    let (subscriptions, events) = match loaded {
        Ok(loaded) => loaded,
        Err(error) => return core_failure(Some(&session), error),
    };
    let body = html! {
        h1 { "Events" }
        h2 { "Webhook subscriptions" }
        p.hint { "Subscribe with " code { "clavis events subscribe --url URL" } "; the signing secret is shown once there." }
        div.scroll { table #subscriptions {
            thead { tr { th { "Id" } th { "URL" } th { "Schema" } th { "Event types" } th { "Created" } } }
            tbody {
                @for subscription in &subscriptions {
                    tr {
                        td { code { (subscription.id) } }
                        td { (subscription.url) }
                        td { (subscription.schema.as_str()) }
                        td { @if subscription.event_types.is_empty() { "all" } @else { (subscription.event_types.join(", ")) } }
                        td { (when(subscription.created_at)) }
                    }
                }
                @if subscriptions.is_empty() { tr { td colspan="5" { "None." } } }
            }
        } }
        h2 { "Recent events" }
        div.scroll { table #events {
            thead { tr { th { "#" } th { "Time" } th { "Type" } th { "Subject" } th { "Deliveries" } } }
            tbody {
                @for record in &events {
                    tr {
                        td { (record.seq) }
                        td { (when(record.event.at)) }
                        td { code { (clavis_core::events::wire_type(&record.event.event_type)) } }
                        td { (record.event.subject) }
                        td {
                            @for delivery in &record.deliveries {
                                (delivery_badge(delivery.status)) " " (delivery.attempts) " attempts"
                                @if let Some(error) = &delivery.last_error { " · " (error) }
                                br;
                            }
                            @if record.deliveries.is_empty() { "—" }
                        }
                    }
                }
                @if events.is_empty() { tr { td colspan="5" { "No events yet." } } }
            }
        } }
    };
    page(&session, "events", "Events", body)
}

pub(crate) async fn error_codes(session: Session) -> Response {
    let body = html! {
        h1 { "Error codes" }
        p.hint { "Every code Clavis answers with, what causes it and how to fix it. Token errors link here through their error_uri." }
        div.scroll { table #codes {
            thead { tr { th { "Code" } th { "Meaning" } th { "Cause" } } }
            tbody {
                @for (code, title, cause, _) in crate::error_pages::PAGES {
                    tr { td { a href=(format!("/error?code={}", encode(code))) { code { (code) } } } td { (title) } td { (cause) } }
                }
            }
        } }
    };
    page(&session, "errors", "Error codes", body)
}
