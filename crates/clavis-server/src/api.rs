//! The management API under `/v1.0/`, shaped after Microsoft Graph: applications, their
//! password credentials (`addPassword` / `removePassword`), service principals and app role
//! assignments, the organization (tenant), plus Clavis's own operations under `/v1.0/clavis/`.
//!
//! Every handler is three moves: extract (caller, context, body), call the core, map the result.

use std::path::PathBuf;

use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use clavis_core::credential::{CredentialPolicy, PasswordCredential, PasswordRequest};
use clavis_core::identity::{AppRole, AppRoleAssignment, Application, Tenant};
use clavis_core::policy::Permission;
use clavis_core::{ApplicationPatch, NewApplication};
use clavis_crypto::{Algorithm, MasterKey};

use crate::context::{Caller, Context};
use crate::error::ApiError;
use crate::AppState;

type ApiResult = Result<Response, ApiError>;

/// The request types, for the OpenAPI document (`crate::openapi`).
pub(crate) mod schema_types {
    pub(crate) use super::{
        AddPassword, AppRoleInput, AssignVaultRole, AuditQuery, CheckSecret, CreateAdmin, CreateApplication, CreateSubscription,
        CreateVault, EventQuery, GrantRole, OrganizationPatch, RemovePassword, RevokePassword, RotateMasterKey, SignInQuery, UpdateAdmin,
        UpdateApplication, UpdateVault,
    };

    /// The body of `PUT …/rotationPolicy`: `clavis_core::rotation::RotationPolicy` as it is read.
    #[derive(schemars::JsonSchema)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    pub(crate) struct RotationPolicy {
        rotate_before_expiry_days: Option<i64>,
        rotate_every_days: Option<i64>,
        overlap_days: i64,
        secret_lifetime_days: i64,
        vault: String,
        secret_name: String,
    }
}

/// The management API's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1.0/organization", get(organization).patch(update_organization))
        .route("/v1.0/applications", get(list_applications).post(create_application))
        .route("/v1.0/applications/{id}", get(application).patch(update_application).delete(delete_application))
        .route("/v1.0/applications/{id}/addPassword", post(add_password))
        .route("/v1.0/applications/{id}/removePassword", post(remove_password))
        .route("/v1.0/applications/{id}/revokePassword", post(revoke_password))
        .route("/v1.0/applications/{id}/rotatePassword", post(rotate_password))
        .route("/v1.0/applications/{id}/rotationPolicy", get(rotation_policy).put(set_rotation_policy).delete(delete_rotation_policy))
        .route("/v1.0/applications/{id}/appRoles", post(add_app_role))
        .route("/v1.0/servicePrincipals", get(list_service_principals))
        .route("/v1.0/servicePrincipals/{id}", get(service_principal))
        .route("/v1.0/servicePrincipals/{id}/appRoleAssignments", get(assignments_of_principal))
        .route("/v1.0/servicePrincipals/{id}/appRoleAssignedTo", get(assignments_of_resource).post(grant_role))
        .route("/v1.0/servicePrincipals/{id}/appRoleAssignedTo/{assignment}", delete(revoke_role))
        .route("/v1.0/servicePrincipals/{id}/appRoleAssignments/{assignment}", delete(revoke_role))
        .route("/v1.0/clavis/rotateMasterKey", post(rotate_master_key))
        .route("/v1.0/clavis/vaults", get(list_vaults).post(create_vault))
        .route("/v1.0/clavis/vaults/{name}", get(vault).patch(update_vault).delete(delete_vault))
        .route("/v1.0/clavis/vaults/{name}/recover", post(recover_vault))
        .route("/v1.0/clavis/vaults/{name}/purge", post(purge_vault))
        .route("/v1.0/clavis/vaultRoleAssignments", get(list_vault_roles).post(assign_vault_role))
        .route("/v1.0/clavis/vaultRoleAssignments/{id}", delete(remove_vault_role))
        .route("/v1.0/clavis/subscriptions", get(list_subscriptions).post(create_subscription))
        .route("/v1.0/clavis/subscriptions/{id}", delete(delete_subscription))
        .route("/v1.0/clavis/subscriptions/{id}/test", post(test_subscription))
        .route("/v1.0/clavis/events", get(list_events))
        .route("/v1.0/clavis/signIns", get(list_signins))
        .route("/v1.0/clavis/diagnose/{correlation}", get(diagnose))
        .route("/v1.0/clavis/checkSecret", post(check_secret))
        .route("/v1.0/clavis/auditRecords", get(audit_records))
        .route("/v1.0/clavis/auditCheckpoints", get(audit_checkpoints))
        .route("/v1.0/clavis/auditVerify", post(audit_verify))
        .route("/v1.0/clavis/admins", get(list_admins).post(create_admin))
        .route("/v1.0/clavis/admins/{name}", axum::routing::patch(update_admin))
        .route("/openapi.json", get(crate::openapi::serve))
}

/// Unknown paths get Graph's 404 shape.
pub async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        "No endpoint matches this method and path; see the management API reference in docs/api.md.".into(),
    )
}

/// A JSON body whose rejections (wrong content type, malformed JSON, unknown or mistyped fields,
/// oversized body) are answered in Graph's error shape.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = request.headers().get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let media = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if !(media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Request_BadRequest",
                "The body must be JSON, sent with 'Content-Type: application/json'.".into(),
            ));
        }
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|rejection| ApiError::new(rejection.status(), "Request_BadRequest", rejection.body_text()))?;
        json_object(&bytes).map(Self).map_err(ApiError::bad_request)
    }
}

/// Reads a JSON object body into `T` (the management API's and the vault's bodies): anything but an
/// object is refused (serde alone would also read a struct from an array), and the refusal quotes
/// none of the values sent.
pub(crate) fn json_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err("The body must be a JSON object.".into());
    }
    serde_json::from_slice::<T>(bytes).map_err(|error| redact_values(&format!("The body does not match this operation: {error}")))
}

/// Drops the values serde quotes in its messages (`invalid type: string "…", expected …`): a
/// value sent to the wrong field may be a password or a secret, and refusals are logged.
pub fn redact_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("string \"") {
        out.push_str(&rest[..at + 8]);
        rest = &rest[at + 8..];
        match rest.find("\", expected").or_else(|| rest.rfind('"')) {
            Some(end) => {
                out.push('…');
                rest = &rest[end..];
            }
            None => break,
        }
    }
    out.push_str(rest);
    out
}

/// Query parameters whose rejections are answered in Graph's error shape.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Self(value))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

fn parse_time(field: &str, text: &str) -> Result<OffsetDateTime, ApiError> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
        ApiError::bad_request(format!(
            "{field} '{}' is not an ISO 8601 date-time such as 2027-01-31T00:00:00Z.",
            clavis_core::identity::truncate(text, 40)
        ))
    })
}

fn created(body: Value) -> Response {
    (StatusCode::CREATED, Json(body)).into_response()
}

fn ok(body: Value) -> Response {
    Json(body).into_response()
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

fn list(context: &str, values: Vec<Value>) -> Response {
    ok(json!({"@odata.context": format!("$metadata#{context}"), "value": values}))
}

// ----- wire shapes ---------------------------------------------------------------------------------

/// A credential without its value (`secretText` is always null after creation).
pub fn password_json(credential: &PasswordCredential, now: OffsetDateTime, notice: time::Duration) -> Value {
    json!({
        "customKeyIdentifier": null,
        "displayName": credential.display_name,
        "endDateTime": rfc3339(credential.end),
        "hint": credential.hint,
        "keyId": credential.key_id,
        "secretText": null,
        "startDateTime": rfc3339(credential.start),
        "state": credential.state(now, notice),
        "daysUntilExpiry": (credential.end - now).whole_days().max(0),
        "unusedForDays": credential.unused_days(now),
        "lastUsed": credential.usage,
    })
}

fn application_json(application: &Application, now: OffsetDateTime, notice: time::Duration) -> Value {
    json!({
        "id": application.id,
        "appId": application.app_id,
        "displayName": application.display_name,
        "createdDateTime": rfc3339(application.created_at),
        "identifierUris": application.identifier_uris,
        "appRoles": application.app_roles,
        "api": {"requestedAccessTokenVersion": application.requested_access_token_version},
        "passwordCredentials": application.password_credentials.iter().map(|c| password_json(c, now, notice)).collect::<Vec<_>>(),
        "credentialPolicy": application.credential_policy,
        "servicePrincipalId": application.service_principal_id,
        "isBuiltIn": application.builtin,
    })
}

fn service_principal_json(application: &Application) -> Value {
    let mut names = vec![application.app_id.clone()];
    names.extend(application.identifier_uris.iter().cloned());
    json!({
        "id": application.service_principal_id,
        "appId": application.app_id,
        "appObjectId": application.id,
        "displayName": application.display_name,
        "appRoles": application.app_roles,
        "servicePrincipalNames": names,
        "servicePrincipalType": "Application",
        "appOwnerOrganizationId": application.tenant_id,
    })
}

fn assignment_json(assignment: &AppRoleAssignment, applications: &[Application]) -> Value {
    let by_sp = |sp: &str| applications.iter().find(|a| a.service_principal_id == sp);
    let principal = by_sp(&assignment.principal_id);
    let resource = by_sp(&assignment.resource_id);
    let role = resource.and_then(|r| r.app_roles.iter().find(|role| role.id == assignment.app_role_id));
    json!({
        "id": assignment.id,
        "appRoleId": assignment.app_role_id,
        "appRoleValue": role.map(|r| r.value.clone()),
        "createdDateTime": rfc3339(assignment.created_date_time),
        "principalId": assignment.principal_id,
        "principalType": "ServicePrincipal",
        "principalDisplayName": principal.map(|p| p.display_name.clone()),
        "principalAppId": principal.map(|p| p.app_id.clone()),
        "resourceId": assignment.resource_id,
        "resourceDisplayName": resource.map(|r| r.display_name.clone()),
        "resourceAppId": resource.map(|r| r.app_id.clone()),
    })
}

fn organization_json(tenant: &Tenant) -> Value {
    json!({
        "id": tenant.id,
        "displayName": tenant.display_name,
        "createdDateTime": rfc3339(tenant.created_at),
        "verifiedDomains": tenant.domains.iter().enumerate().map(|(i, d)| json!({"name": d, "isDefault": i == 0, "isInitial": i == 0})).collect::<Vec<_>>(),
        "signingAlgorithm": tenant.signing_algorithm.as_str(),
        "credentialPolicy": tenant.policy,
    })
}

// ----- organization ----------------------------------------------------------------------------------

async fn organization(State(state): State<AppState>, Caller(principal): Caller) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::Read)?;
    let tenant = state.core.tenant(&auth)?;
    Ok(list("organization", vec![organization_json(&tenant)]))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct OrganizationPatch {
    signing_algorithm: Option<String>,
    #[schemars(with = "Option<serde_json::Map<String, Value>>")]
    credential_policy: Option<CredentialPolicy>,
}

async fn update_organization(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Context(context): Context,
    Body(patch): Body<OrganizationPatch>,
) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::Administer)?;
    let algorithm = match patch.signing_algorithm.as_deref() {
        None => None,
        Some(name) => Some(Algorithm::parse(name).ok_or_else(|| {
            ApiError::bad_request(format!(
                "signingAlgorithm '{}' is not one of RS256, ES256, EdDSA.",
                clavis_core::identity::truncate(name, 20)
            ))
        })?),
    };
    let tenant = state.core.update_tenant(&auth, &context, algorithm, patch.credential_policy).await?;
    Ok(ok(organization_json(&tenant)))
}

// ----- applications -----------------------------------------------------------------------------------

async fn list_applications(State(state): State<AppState>, Caller(principal): Caller) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::Read)?;
    let now = state.core.now();
    let applications = state.core.applications(&auth).await?;
    Ok(list("applications", applications.iter().map(|a| application_json(a, now, state.core.notice_window())).collect()))
}

async fn application(State(state): State<AppState>, Caller(principal): Caller, Path(id): Path<String>) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::Read)?;
    let application = state.core.application(&auth, &id).await?;
    Ok(ok(application_json(&application, state.core.now(), state.core.notice_window())))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct AppRoleInput {
    id: Option<String>,
    value: String,
    display_name: Option<String>,
    description: Option<String>,
    allowed_member_types: Option<Vec<String>>,
    is_enabled: Option<bool>,
}

impl AppRoleInput {
    fn into_role(self) -> AppRole {
        AppRole {
            id: self.id.unwrap_or_default().to_ascii_lowercase(),
            display_name: self.display_name.unwrap_or_default(),
            description: self.description.unwrap_or_default(),
            allowed_member_types: self.allowed_member_types.unwrap_or_else(|| vec!["Application".into()]),
            is_enabled: self.is_enabled.unwrap_or(true),
            value: self.value,
        }
    }
}

fn roles_with_ids(inputs: Vec<AppRoleInput>) -> Vec<AppRole> {
    inputs
        .into_iter()
        .map(|input| {
            let mut role = input.into_role();
            if role.id.is_empty() {
                role.id = clavis_crypto::random::guid();
            }
            if role.display_name.is_empty() {
                role.display_name = role.value.clone();
            }
            role
        })
        .collect()
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ApiSettings {
    requested_access_token_version: Option<u8>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateApplication {
    display_name: String,
    #[serde(default)]
    identifier_uris: Vec<String>,
    #[serde(default)]
    app_roles: Vec<AppRoleInput>,
    api: Option<ApiSettings>,
}

async fn create_application(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Context(context): Context,
    Body(body): Body<CreateApplication>,
) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::WriteApplications)?;
    let new = NewApplication {
        display_name: body.display_name,
        identifier_uris: body.identifier_uris,
        app_roles: roles_with_ids(body.app_roles),
        requested_access_token_version: body.api.and_then(|a| a.requested_access_token_version),
    };
    let application = state.core.create_application(&auth, &context, new).await?;
    Ok(created(application_json(&application, state.core.now(), state.core.notice_window())))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct UpdateApplication {
    display_name: Option<String>,
    identifier_uris: Option<Vec<String>>,
    app_roles: Option<Vec<AppRoleInput>>,
    api: Option<ApiSettings>,
    /// `null` removes the override.
    #[serde(default, deserialize_with = "present")]
    #[schemars(with = "Option<serde_json::Map<String, Value>>")]
    credential_policy: Option<Option<clavis_core::credential::PolicyOverride>>,
}

/// Distinguishes a field set to `null` (`Some(None)`) from an absent one (`None`).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

async fn update_application(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Context(context): Context,
    Path(id): Path<String>,
    Body(body): Body<UpdateApplication>,
) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::WriteApplications)?;
    let patch = ApplicationPatch {
        display_name: body.display_name,
        identifier_uris: body.identifier_uris,
        app_roles: body.app_roles.map(roles_with_ids),
        requested_access_token_version: body.api.map(|a| a.requested_access_token_version),
        credential_policy: body.credential_policy,
    };
    state.core.update_application(&auth, &context, &id, patch).await?;
    Ok(no_content())
}

async fn delete_application(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Context(context): Context,
    Path(id): Path<String>,
) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::WriteApplications)?;
    state.core.delete_application(&auth, &context, &id).await?;
    Ok(no_content())
}

async fn add_app_role(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Context(context): Context,
    Path(id): Path<String>,
    Body(body): Body<AppRoleInput>,
) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::WriteApplications)?;
    let role = state.core.add_app_role(&auth, &context, &id, body.into_role()).await?;
    Ok(created(json!(role)))
}

#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct PasswordInput {
    display_name: Option<String>,
    start_date_time: Option<String>,
    end_date_time: Option<String>,
    secret_text: Option<String>,
    key_id: Option<String>,
    custom_key_identifier: Option<Value>,
    hint: Option<String>,
}

#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct AddPassword {
    password_credential: Option<PasswordInput>,
}

async fn add_password(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Context(context): Context,
    Path(id): Path<String>,
    Body(body): Body<AddPassword>,
) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::WriteApplications)?;
    let input = body.password_credential.unwrap_or_default();
    let custom_value = match input.secret_text {
        Some(text) => Some(
            clavis_crypto::PlainClientSecret::from_caller(text)
                .ok_or_else(|| ApiError::bad_request("secretText must be 16 to 256 printable ASCII characters.".into()))?,
        ),
        None => None,
    };
    if input.key_id.is_some() || input.hint.is_some() || input.custom_key_identifier.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(ApiError::bad_request("keyId, hint and customKeyIdentifier are assigned by Clavis and cannot be set.".into()));
    }
    let request = PasswordRequest {
        display_name: input.display_name,
        start: input.start_date_time.as_deref().map(|t| parse_time("startDateTime", t)).transpose()?,
        end: input.end_date_time.as_deref().map(|t| parse_time("endDateTime", t)).transpose()?,
        custom_value,
    };
    let new_password = state.core.add_password(&auth, &context, &id, request).await?;
    let mut body = password_json(&new_password.credential, state.core.now(), state.core.notice_window());
    body["secretText"] = json!(new_password.secret.expose());
    body["@odata.context"] = json!("$metadata#microsoft.graph.passwordCredential");
    Ok(ok(body))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RemovePassword {
    key_id: String,
}

async fn remove_password(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Context(context): Context,
    Path(id): Path<String>,
    Body(body): Body<RemovePassword>,
) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::WriteApplications)?;
    state.core.remove_password(&auth, &context, &id, &body.key_id).await?;
    Ok(no_content())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RevokePassword {
    key_id: String,
    reason: Option<String>,
    revoke_tokens: Option<bool>,
}

/// Removes a leaked secret at once and (by default) revokes every token it obtained.
async fn revoke_password(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Context(context): Context,
    Path(id): Path<String>,
    Body(body): Body<RevokePassword>,
) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::WriteApplications)?;
    let reason = body.reason.unwrap_or_else(|| "compromised".into());
    state.core.revoke_password(&auth, &context, &id, &body.key_id, &reason, body.revoke_tokens.unwrap_or(true)).await?;
    Ok(no_content())
}

fn rotation_json(state: &AppState, record: &clavis_core::rotation::RotationRecord, application: Option<&Application>) -> Value {
    json!({
        "applicationId": record.application_id,
        "policy": record.policy,
        "state": record.state,
        "nextStepDateTime": application.and_then(|a| state.core.next_rotation_step(record, a)).map(rfc3339),
    })
}

async fn rotation_policy(State(state): State<AppState>, Caller(principal): Caller, Path(id): Path<String>) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::Read)?;
    let record = state.core.rotation_policy(&auth, &id).await?;
    let application = state.core.application(&auth, &id).await.ok();
    Ok(ok(rotation_json(&state, &record, application.as_ref())))
}

async fn set_rotation_policy(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Context(context): Context,
    Path(id): Path<String>,
    Body(policy): Body<clavis_core::rotation::RotationPolicy>,
) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::Administer)?;
    let record = state.core.set_rotation_policy(&auth, &context, &id, policy).await?;
    let application = state.core.application(&auth, &id).await.ok();
    Ok(ok(rotation_json(&state, &record, application.as_ref())))
}

async fn delete_rotation_policy(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Context(context): Context,
    Path(id): Path<String>,
) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::Administer)?;
    state.core.delete_rotation_policy(&auth, &context, &id).await?;
    Ok(no_content())
}

/// Rotates an application's secret now, into its policy's vault secret.
async fn rotate_password(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Context(context): Context,
    Path(id): Path<String>,
) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::WriteApplications)?;
    let key_id = state.core.rotate_now(&auth, &context, &id).await?;
    Ok(ok(json!({"newKeyId": key_id})))
}

// ----- service principals and app role assignments ----------------------------------------------------

async fn list_service_principals(State(state): State<AppState>, Caller(principal): Caller) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::Read)?;
    let applications = state.core.service_principals(&auth).await?;
    Ok(list("servicePrincipals", applications.iter().map(service_principal_json).collect()))
}

async fn service_principal(State(state): State<AppState>, Caller(principal): Caller, Path(id): Path<String>) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::Read)?;
    let application = state.core.service_principal(&auth, &id).await?;
    Ok(ok(service_principal_json(&application)))
}

/// The applications whose service principals `ids` name, to show names beside ids: looked up one
/// by one (deduplicated), never by listing a tenant that may hold 100,000 applications.
async fn referenced(state: &AppState, auth: &clavis_core::policy::Authorized<'_>, mut ids: Vec<String>) -> Vec<Application> {
    ids.sort();
    ids.dedup();
    let mut found = Vec::with_capacity(ids.len());
    for id in &ids {
        if let Ok(application) = state.core.service_principal(auth, id).await {
            found.push(application);
        }
    }
    found
}

async fn assignments(state: &AppState, principal: &clavis_core::policy::Principal, id: &str, as_resource: bool) -> ApiResult {
    let auth = state.core.authorize(principal, Permission::Read)?;
    let application = state.core.service_principal(&auth, id).await?;
    let assignments = state.core.assignments(&auth, &application.id, as_resource).await?;
    let ids = assignments.iter().flat_map(|a| [a.principal_id.clone(), a.resource_id.clone()]).collect();
    let applications = referenced(state, &auth, ids).await;
    Ok(list("appRoleAssignments", assignments.iter().map(|a| assignment_json(a, &applications)).collect()))
}

async fn assignments_of_principal(State(state): State<AppState>, Caller(principal): Caller, Path(id): Path<String>) -> ApiResult {
    assignments(&state, &principal, &id, false).await
}

async fn assignments_of_resource(State(state): State<AppState>, Caller(principal): Caller, Path(id): Path<String>) -> ApiResult {
    assignments(&state, &principal, &id, true).await
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct GrantRole {
    principal_id: String,
    resource_id: Option<String>,
    app_role_id: String,
}

async fn grant_role(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Context(context): Context,
    Path(id): Path<String>,
    Body(body): Body<GrantRole>,
) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::WriteApplications)?;
    let resource = state.core.service_principal(&auth, &id).await?;
    if let Some(resource_id) = body.resource_id.as_deref() {
        if !resource_id.eq_ignore_ascii_case(&resource.service_principal_id)
            && !resource_id.eq_ignore_ascii_case(&resource.app_id)
            && !resource_id.eq_ignore_ascii_case(&resource.id)
        {
            return Err(ApiError::bad_request("resourceId must name the service principal in the URL.".into()));
        }
    }
    let assignment = state.core.grant_role(&auth, &context, &body.principal_id, &resource.id, &body.app_role_id).await?;
    let applications = referenced(&state, &auth, vec![assignment.principal_id.clone(), assignment.resource_id.clone()]).await;
    Ok(created(assignment_json(&assignment, &applications)))
}

async fn revoke_role(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Context(context): Context,
    Path((_id, assignment)): Path<(String, String)>,
) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::WriteApplications)?;
    state.core.revoke_role(&auth, &context, &assignment).await?;
    Ok(no_content())
}

// ----- instance operations -------------------------------------------------------------------------------

#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RotateMasterKey {
    new_master_key: Option<String>,
}

/// Re-wraps every key under a new master key. When Clavis keeps the master key in its data
/// directory it writes the new key there (crash-safe: written beside, committed, then renamed);
/// when the key came from the environment, the caller supplies the new one and must update the
/// environment before the next start.
async fn rotate_master_key(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Context(context): Context,
    Body(body): Body<RotateMasterKey>,
) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::Administer)?;
    let supplied = body
        .new_master_key
        .as_deref()
        .map(MasterKey::parse)
        .transpose()
        .map_err(|_| ApiError::bad_request("newMasterKey must be 32 bytes, as base64 or 64 hex digits.".into()))?;
    let (new_key, file) = match (&state.master_key_file, supplied) {
        (Some(file), supplied) => (supplied.unwrap_or_else(MasterKey::generate), Some(file.clone())),
        (None, Some(supplied)) => (supplied, None),
        (None, None) => {
            return Err(ApiError::bad_request(
                "This instance's master key comes from the environment (CLAVIS_MASTER_KEY or CLAVIS_MASTER_KEY_FILE); supply the new key with `clavis keys rotate-master --new-key-file FILE` and update the environment before the next start.".into(),
            ))
        }
    };
    let pending = match &file {
        Some(file) => Some(write_pending_master_key(file, &new_key).map_err(|e| {
            tracing::error!(error = %e, "cannot write the new master key file");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "The new master key could not be written to the data directory; nothing was changed.".into(),
            )
        })?),
        None => None,
    };
    let id = state.core.rotate_master_key(&auth, &context, new_key).await.inspect_err(|_| {
        if let Some(pending) = &pending {
            let _ = std::fs::remove_file(pending);
        }
    })?;
    if let (Some(file), Some(pending)) = (&file, &pending) {
        std::fs::rename(pending, file).map_err(|e| {
            tracing::error!(error = %e, "cannot move the new master key into place; it is kept beside the old one and picked up at the next start");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", "The keys were re-wrapped but the new master key file could not be moved into place; Clavis will find it at the next start.".into())
        })?;
    }
    Ok(ok(json!({"masterKeyId": id, "storedIn": file.map(|f| f.display().to_string())})))
}

/// The file a new master key is written to before the re-wrap commits.
pub fn pending_master_key_path(file: &std::path::Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".next");
    PathBuf::from(name)
}

fn write_pending_master_key(file: &std::path::Path, key: &MasterKey) -> std::io::Result<PathBuf> {
    use std::io::Write as _;
    let pending = pending_master_key_path(file);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut handle = options.open(&pending)?;
    handle.write_all(key.to_text().as_bytes())?;
    handle.sync_all()?;
    Ok(pending)
}

#[derive(Deserialize, schemars::JsonSchema)]
pub(crate) struct AuditQuery {
    after: Option<i64>,
    limit: Option<i64>,
    since: Option<String>,
    until: Option<String>,
    principal: Option<String>,
    target: Option<String>,
    action: Option<String>,
    result: Option<String>,
}

async fn audit_records(State(state): State<AppState>, Caller(principal): Caller, Params(query): Params<AuditQuery>) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::Administer)?;
    let filter = clavis_core::audit::AuditFilter {
        after: query.after.unwrap_or(0),
        since: query.since.as_deref().map(|t| parse_time("since", t)).transpose()?,
        until: query.until.as_deref().map(|t| parse_time("until", t)).transpose()?,
        tenant_id: None,
        principal: query.principal,
        target: query.target,
        action: query.action,
        result: query.result,
        limit: query.limit.unwrap_or(100),
        newest_first: false,
    };
    let records = state.core.audit_query(&auth, filter).await?;
    Ok(list("auditRecords", records.iter().map(|r| json!(r)).collect()))
}

async fn audit_checkpoints(State(state): State<AppState>, Caller(principal): Caller) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::Administer)?;
    let (checkpoints, keys) = state.core.audit_checkpoints(&auth).await?;
    Ok(ok(json!({"value": checkpoints, "keys": keys})))
}

/// Verifies the whole audit chain and its signed checkpoints.
async fn audit_verify(State(state): State<AppState>, Caller(principal): Caller) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::Administer)?;
    Ok(ok(state.core.verify_audit(&auth).await?))
}

// ----- vaults ------------------------------------------------------------------------------------------

fn vault_json(state: &AppState, vault: &clavis_core::vault::Vault) -> Value {
    let resource_host = state.core.settings().vault_resource.trim_start_matches("https://").to_string();
    json!({
        "id": vault.id,
        "name": vault.name,
        "vaultUri": format!("https://{}.{resource_host}", vault.name),
        "retentionDays": vault.retention_days,
        "purgeProtection": vault.purge_protection,
        "enforceExpiry": vault.enforce_expiry,
        "rateLimit": vault.rate_limit,
        "recoveryLevel": vault.recovery_level(),
        "createdDateTime": rfc3339(vault.created_at),
        "deletedDateTime": vault.deleted_at.map(rfc3339),
    })
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateVault {
    name: String,
    retention_days: Option<i64>,
    purge_protection: Option<bool>,
    enforce_expiry: Option<bool>,
    rate_limit: Option<i64>,
}

async fn create_vault(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Context(context): Context,
    Body(body): Body<CreateVault>,
) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::Administer)?;
    let defaults = clavis_core::vault::VaultSettings::default();
    let settings = clavis_core::vault::VaultSettings {
        retention_days: body.retention_days.unwrap_or(defaults.retention_days),
        purge_protection: body.purge_protection.unwrap_or(defaults.purge_protection),
        enforce_expiry: body.enforce_expiry.unwrap_or(defaults.enforce_expiry),
        rate_limit: body.rate_limit.unwrap_or(defaults.rate_limit),
    };
    let vault = state.core.create_vault(&auth, &context, &body.name, settings).await?;
    Ok(created(vault_json(&state, &vault)))
}

async fn list_vaults(State(state): State<AppState>, Caller(principal): Caller) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::Read)?;
    let vaults = state.core.list_vaults(&auth).await?;
    Ok(list("vaults", vaults.iter().map(|v| vault_json(&state, v)).collect()))
}

async fn vault(State(state): State<AppState>, Caller(principal): Caller, Path(name): Path<String>) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::Read)?;
    let vault = state.core.vault(&auth, &name).await?;
    Ok(ok(vault_json(&state, &vault)))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct UpdateVault {
    purge_protection: Option<bool>,
    enforce_expiry: Option<bool>,
    rate_limit: Option<i64>,
}

async fn update_vault(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Context(context): Context,
    Path(name): Path<String>,
    Body(body): Body<UpdateVault>,
) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::Administer)?;
    let patch = clavis_core::VaultPatch {
        purge_protection: body.purge_protection,
        enforce_expiry: body.enforce_expiry,
        rate_limit: body.rate_limit,
    };
    let vault = state.core.update_vault(&auth, &context, &name, patch).await?;
    Ok(ok(vault_json(&state, &vault)))
}

async fn vault_state(
    state: &AppState,
    principal: &clavis_core::policy::Principal,
    context: &clavis_core::audit::RequestContext,
    name: &str,
    change: clavis_core::VaultStateChange,
) -> ApiResult {
    let auth = state.core.authorize(principal, Permission::Administer)?;
    state.core.change_vault_state(&auth, context, name, change).await?;
    Ok(no_content())
}

async fn delete_vault(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Context(context): Context,
    Path(name): Path<String>,
) -> ApiResult {
    vault_state(&state, &principal, &context, &name, clavis_core::VaultStateChange::Delete).await
}

async fn recover_vault(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Context(context): Context,
    Path(name): Path<String>,
) -> ApiResult {
    vault_state(&state, &principal, &context, &name, clavis_core::VaultStateChange::Recover).await
}

async fn purge_vault(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Context(context): Context,
    Path(name): Path<String>,
) -> ApiResult {
    vault_state(&state, &principal, &context, &name, clavis_core::VaultStateChange::Purge).await
}

fn vault_role_json(assignment: &clavis_core::policy::VaultRoleAssignment, applications: &[Application]) -> Value {
    let principal = applications.iter().find(|a| a.service_principal_id == assignment.principal_id);
    json!({
        "id": assignment.id,
        "principalId": assignment.principal_id,
        "principalAppId": principal.map(|p| p.app_id.clone()),
        "principalDisplayName": principal.map(|p| p.display_name.clone()),
        "roleDefinitionId": assignment.role.id(),
        "roleName": assignment.role.name(),
        "scope": assignment.scope,
        "createdDateTime": rfc3339(assignment.created_at),
    })
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct AssignVaultRole {
    principal_id: String,
    role: String,
    scope: String,
}

async fn assign_vault_role(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Context(context): Context,
    Body(body): Body<AssignVaultRole>,
) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::Administer)?;
    let assignment = state.core.assign_vault_role(&auth, &context, &body.principal_id, &body.role, &body.scope).await?;
    let applications = referenced(&state, &auth, vec![assignment.principal_id.clone()]).await;
    Ok(created(vault_role_json(&assignment, &applications)))
}

async fn list_vault_roles(State(state): State<AppState>, Caller(principal): Caller) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::Read)?;
    let assignments = state.core.vault_role_assignments(&auth).await?;
    let applications = referenced(&state, &auth, assignments.iter().map(|a| a.principal_id.clone()).collect()).await;
    Ok(list("vaultRoleAssignments", assignments.iter().map(|a| vault_role_json(a, &applications)).collect()))
}

async fn remove_vault_role(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Context(context): Context,
    Path(id): Path<String>,
) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::Administer)?;
    state.core.remove_vault_role(&auth, &context, &id).await?;
    Ok(no_content())
}

// ----- administrator accounts (people who sign in to the portal) -------------------------------------------

fn admin_json(account: &clavis_core::admin::AdminAccount) -> Value {
    json!({
        "id": account.id,
        "userName": account.username,
        "role": account.role,
        "disabled": account.disabled,
        "createdDateTime": rfc3339(account.created_at),
        "updatedDateTime": rfc3339(account.updated_at),
    })
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateAdmin {
    user_name: String,
    password: String,
    #[serde(default)]
    role: Option<String>,
}

async fn create_admin(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Context(context): Context,
    Body(body): Body<CreateAdmin>,
) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::Administer)?;
    let role = body.role.as_deref().unwrap_or(clavis_core::policy::ROLE_ADMINISTRATOR);
    let account = state.core.create_admin(&auth, &context, &body.user_name, &body.password, role).await?;
    Ok(created(admin_json(&account)))
}

async fn list_admins(State(state): State<AppState>, Caller(principal): Caller) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::Administer)?;
    let accounts = state.core.admins(&auth).await?;
    Ok(list("admins", accounts.iter().map(admin_json).collect()))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct UpdateAdmin {
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    disabled: Option<bool>,
}

async fn update_admin(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Context(context): Context,
    Path(name): Path<String>,
    Body(body): Body<UpdateAdmin>,
) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::Administer)?;
    let patch = clavis_core::AdminPatch { password: body.password, role: body.role, disabled: body.disabled };
    let account = state.core.update_admin(&auth, &context, &name, patch).await?;
    Ok(ok(admin_json(&account)))
}

// ----- events and webhook subscriptions ------------------------------------------------------------------

fn subscription_json(subscription: &clavis_core::events::Subscription) -> Value {
    json!({
        "id": subscription.id,
        "url": subscription.url,
        "schema": subscription.schema.as_str(),
        "eventTypes": subscription.event_types,
        "createdDateTime": rfc3339(subscription.created_at),
    })
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateSubscription {
    url: String,
    schema: Option<String>,
    #[serde(default)]
    event_types: Vec<String>,
}

async fn create_subscription(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Context(context): Context,
    Body(body): Body<CreateSubscription>,
) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::Administer)?;
    let (subscription, secret) =
        state.core.create_subscription(&auth, &context, &body.url, body.schema.as_deref().unwrap_or("EventGrid"), body.event_types).await?;
    let mut answer = subscription_json(&subscription);
    answer["secret"] = json!(secret);
    Ok(created(answer))
}

async fn list_subscriptions(State(state): State<AppState>, Caller(principal): Caller) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::Read)?;
    let subscriptions = state.core.subscriptions(&auth).await?;
    Ok(list("subscriptions", subscriptions.iter().map(subscription_json).collect()))
}

async fn delete_subscription(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Context(context): Context,
    Path(id): Path<String>,
) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::Administer)?;
    state.core.delete_subscription(&auth, &context, &id).await?;
    Ok(no_content())
}

async fn test_subscription(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Context(context): Context,
    Path(id): Path<String>,
) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::Administer)?;
    let event_id = state.core.test_subscription(&auth, &context, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"eventId": event_id}))).into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
pub(crate) struct EventQuery {
    after: Option<i64>,
    limit: Option<i64>,
}

async fn list_events(State(state): State<AppState>, Caller(principal): Caller, Params(query): Params<EventQuery>) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::Read)?;
    let records = state.core.recent_events(&auth, query.after.unwrap_or(0), query.limit.unwrap_or(100)).await?;
    let values = records
        .iter()
        .map(|r| {
            json!({
                "seq": r.seq,
                "id": r.event.id,
                "eventType": r.event.event_type,
                "subject": r.event.subject,
                "eventTime": rfc3339(r.event.at),
                "data": r.event.data,
                "deliveries": r.deliveries,
            })
        })
        .collect();
    Ok(list("events", values))
}

// ----- troubleshooting -------------------------------------------------------------------------------------

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SignInQuery {
    since: Option<String>,
    until: Option<String>,
    client_id: Option<String>,
    result: Option<String>,
    limit: Option<i64>,
}

async fn list_signins(State(state): State<AppState>, Caller(principal): Caller, Params(query): Params<SignInQuery>) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::Administer)?;
    if let Some(result) = query.result.as_deref() {
        if result != "success" && result != "failure" {
            return Err(ApiError::bad_request("result must be success or failure.".into()));
        }
    }
    let filter = clavis_core::signin::SignInFilter {
        since: query.since.as_deref().map(|t| parse_time("since", t)).transpose()?,
        until: query.until.as_deref().map(|t| parse_time("until", t)).transpose()?,
        client_id: query.client_id,
        result: query.result,
        limit: query.limit.unwrap_or(100),
    };
    let signins = state.core.signins(&auth, &filter).await?;
    Ok(list("signIns", signins.iter().map(|s| json!(s)).collect()))
}

async fn diagnose(State(state): State<AppState>, Caller(principal): Caller, Path(correlation): Path<String>) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::Administer)?;
    Ok(ok(state.core.diagnose(&auth, &correlation).await?))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CheckSecret {
    client_id: String,
    secret: String,
}

/// Tells whether a secret is valid for an application, without using it.
async fn check_secret(State(state): State<AppState>, Caller(principal): Caller, Body(body): Body<CheckSecret>) -> ApiResult {
    let auth = state.core.authorize(&principal, Permission::Administer)?;
    Ok(ok(state.core.check_secret(&auth, &body.client_id, &body.secret).await?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn serde_messages_lose_their_values() {
        let message = "Failed to deserialize the JSON body into the target type: disabled: invalid type: string \"hunter2 secret\", expected a boolean at line 1 column 30";
        let redacted = super::redact_values(message);
        assert!(!redacted.contains("hunter2"), "{redacted}");
        assert!(redacted.contains("invalid type: string \"…\", expected a boolean"), "{redacted}");
    }
}
