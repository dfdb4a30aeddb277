//! The OpenAPI 3 document of the management API, served at `/openapi.json`.
//!
//! Request bodies and query parameters are generated from the very types the handlers
//! deserialize (`schemars` reads their serde attributes: names, optional fields, unknown fields
//! refused), so the document cannot drift from what the API accepts. Answers are described by
//! their status and shape; every refusal has Graph's error shape. The table below lists every
//! route of `api::routes`; a test calls each operation it names.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::api::schema_types as t;

/// How an operation answers when it succeeds.
#[derive(Clone, Copy)]
enum Answer {
    /// A JSON object.
    Object(u16),
    /// A Graph list: `{"@odata.context": …, "value": [...]}`.
    List,
    /// No content.
    Empty(u16),
}

struct Operation {
    method: &'static str,
    path: &'static str,
    id: &'static str,
    summary: &'static str,
    body: Option<fn(&mut SchemaGenerator) -> Schema>,
    query: Option<fn(&mut SchemaGenerator) -> Schema>,
    answer: Answer,
}

fn schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

const fn op(method: &'static str, path: &'static str, id: &'static str, summary: &'static str, answer: Answer) -> Operation {
    Operation { method, path, id, summary, body: None, query: None, answer }
}

const fn with_body(mut operation: Operation, body: fn(&mut SchemaGenerator) -> Schema) -> Operation {
    operation.body = Some(body);
    operation
}

const fn with_query(mut operation: Operation, query: fn(&mut SchemaGenerator) -> Schema) -> Operation {
    operation.query = Some(query);
    operation
}

use Answer::{Empty, List, Object};

fn operations() -> Vec<Operation> {
    vec![
        op("get", "/v1.0/organization", "getOrganization", "The tenant: signing algorithm and credential policy.", List),
        with_body(
            op("patch", "/v1.0/organization", "updateOrganization", "Change the signing algorithm or the credential policy.", Object(200)),
            schema::<t::OrganizationPatch>,
        ),
        op("get", "/v1.0/applications", "listApplications", "Applications of the tenant.", List),
        with_body(
            op("post", "/v1.0/applications", "createApplication", "Register an application (and its service principal).", Object(201)),
            schema::<t::CreateApplication>,
        ),
        op("get", "/v1.0/applications/{id}", "getApplication", "One application, by object id or client id.", Object(200)),
        with_body(
            op(
                "patch",
                "/v1.0/applications/{id}",
                "updateApplication",
                "Change name, identifier URIs, app roles, token version or credential policy.",
                Empty(204),
            ),
            schema::<t::UpdateApplication>,
        ),
        op(
            "delete",
            "/v1.0/applications/{id}",
            "deleteApplication",
            "Delete an application with its secrets and role assignments.",
            Empty(204),
        ),
        with_body(
            op(
                "post",
                "/v1.0/applications/{id}/addPassword",
                "addPassword",
                "Add a client secret; the answer holds secretText, the only time it exists.",
                Object(200),
            ),
            schema::<t::AddPassword>,
        ),
        with_body(
            op("post", "/v1.0/applications/{id}/removePassword", "removePassword", "Remove one client secret.", Empty(204)),
            schema::<t::RemovePassword>,
        ),
        with_body(
            op(
                "post",
                "/v1.0/applications/{id}/revokePassword",
                "revokePassword",
                "Revoke a leaked secret and every token it obtained.",
                Empty(204),
            ),
            schema::<t::RevokePassword>,
        ),
        op("post", "/v1.0/applications/{id}/rotatePassword", "rotatePassword", "Rotate now, as the rotation policy would.", Object(200)),
        op(
            "get",
            "/v1.0/applications/{id}/rotationPolicy",
            "getRotationPolicy",
            "The application's rotation policy and state.",
            Object(200),
        ),
        with_body(
            op("put", "/v1.0/applications/{id}/rotationPolicy", "setRotationPolicy", "Set the rotation policy.", Object(200)),
            schema::<t::RotationPolicy>,
        ),
        op("delete", "/v1.0/applications/{id}/rotationPolicy", "deleteRotationPolicy", "Remove the rotation policy.", Empty(204)),
        with_body(
            op("post", "/v1.0/applications/{id}/appRoles", "addAppRole", "Define one app role.", Object(201)),
            schema::<t::AppRoleInput>,
        ),
        op("get", "/v1.0/servicePrincipals", "listServicePrincipals", "Service principals (one per application).", List),
        op("get", "/v1.0/servicePrincipals/{id}", "getServicePrincipal", "One service principal.", Object(200)),
        op("get", "/v1.0/servicePrincipals/{id}/appRoleAssignments", "listAssignmentsOfPrincipal", "Roles the principal holds.", List),
        op("get", "/v1.0/servicePrincipals/{id}/appRoleAssignedTo", "listAssignmentsOfResource", "Grants of the resource's roles.", List),
        with_body(
            op(
                "post",
                "/v1.0/servicePrincipals/{id}/appRoleAssignedTo",
                "grantRole",
                "Grant one of the resource's roles to a client.",
                Object(201),
            ),
            schema::<t::GrantRole>,
        ),
        op("delete", "/v1.0/servicePrincipals/{id}/appRoleAssignedTo/{assignment}", "revokeRoleOfResource", "Remove a grant.", Empty(204)),
        op(
            "delete",
            "/v1.0/servicePrincipals/{id}/appRoleAssignments/{assignment}",
            "revokeRoleOfPrincipal",
            "Remove a grant.",
            Empty(204),
        ),
        with_body(
            op(
                "post",
                "/v1.0/clavis/rotateMasterKey",
                "rotateMasterKey",
                "Re-wrap every key under a new master key while serving.",
                Object(200),
            ),
            schema::<t::RotateMasterKey>,
        ),
        op("get", "/v1.0/clavis/vaults", "listVaults", "Vaults of the tenant.", List),
        with_body(op("post", "/v1.0/clavis/vaults", "createVault", "Create a vault.", Object(201)), schema::<t::CreateVault>),
        op("get", "/v1.0/clavis/vaults/{name}", "getVault", "One vault.", Object(200)),
        with_body(
            op("patch", "/v1.0/clavis/vaults/{name}", "updateVault", "Change a vault's settings.", Object(200)),
            schema::<t::UpdateVault>,
        ),
        op("delete", "/v1.0/clavis/vaults/{name}", "deleteVault", "Delete a vault (softly).", Empty(204)),
        op("post", "/v1.0/clavis/vaults/{name}/recover", "recoverVault", "Recover a deleted vault.", Empty(204)),
        op("post", "/v1.0/clavis/vaults/{name}/purge", "purgeVault", "Purge a deleted vault.", Empty(204)),
        op("get", "/v1.0/clavis/vaultRoleAssignments", "listVaultRoles", "Vault data-plane role assignments.", List),
        with_body(
            op("post", "/v1.0/clavis/vaultRoleAssignments", "assignVaultRole", "Grant a vault role at a scope.", Object(201)),
            schema::<t::AssignVaultRole>,
        ),
        op("delete", "/v1.0/clavis/vaultRoleAssignments/{id}", "removeVaultRole", "Remove a vault role assignment.", Empty(204)),
        op("get", "/v1.0/clavis/subscriptions", "listSubscriptions", "Webhook subscriptions.", List),
        with_body(
            op(
                "post",
                "/v1.0/clavis/subscriptions",
                "createSubscription",
                "Subscribe a URL to events; the answer holds the signing secret, once.",
                Object(201),
            ),
            schema::<t::CreateSubscription>,
        ),
        op("delete", "/v1.0/clavis/subscriptions/{id}", "deleteSubscription", "Remove a subscription.", Empty(204)),
        op("post", "/v1.0/clavis/subscriptions/{id}/test", "testSubscription", "Send a test event.", Object(202)),
        with_query(op("get", "/v1.0/clavis/events", "listEvents", "Recent events with their deliveries.", List), schema::<t::EventQuery>),
        with_query(op("get", "/v1.0/clavis/signIns", "listSignIns", "The sign-in log.", List), schema::<t::SignInQuery>),
        op("get", "/v1.0/clavis/diagnose/{correlation}", "diagnose", "Everything recorded for a correlation id.", Object(200)),
        with_body(
            op(
                "post",
                "/v1.0/clavis/checkSecret",
                "checkSecret",
                "Tell whether a secret is valid for an application, without using it.",
                Object(200),
            ),
            schema::<t::CheckSecret>,
        ),
        with_query(
            op("get", "/v1.0/clavis/auditRecords", "listAuditRecords", "Audit records matching a filter.", List),
            schema::<t::AuditQuery>,
        ),
        op(
            "get",
            "/v1.0/clavis/auditCheckpoints",
            "listAuditCheckpoints",
            "Signed checkpoints and the keys that verify them.",
            Object(200),
        ),
        op("post", "/v1.0/clavis/auditVerify", "verifyAudit", "Verify the whole audit chain and its checkpoints.", Object(200)),
        op("get", "/v1.0/clavis/admins", "listAdmins", "Portal accounts.", List),
        with_body(op("post", "/v1.0/clavis/admins", "createAdmin", "Create a portal account.", Object(201)), schema::<t::CreateAdmin>),
        with_body(
            op("patch", "/v1.0/clavis/admins/{name}", "updateAdmin", "Change a portal account's password, role or state.", Object(200)),
            schema::<t::UpdateAdmin>,
        ),
    ]
}

fn path_parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "minLength": 1, "maxLength": 256}}))
        .collect()
}

/// Query parameters from the properties of a query type's schema.
fn query_parameters(schema: &Value, definitions: &Map<String, Value>) -> Vec<Value> {
    let resolved = schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.rsplit('/').next())
        .and_then(|name| definitions.get(name))
        .unwrap_or(schema);
    let required: Vec<&str> =
        resolved.get("required").and_then(Value::as_array).map(|r| r.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    resolved
        .get("properties")
        .and_then(Value::as_object)
        .map(|properties| {
            properties
                .iter()
                .map(|(name, property)| {
                    let mut property = property.clone();
                    // A query value is one scalar: `nullable` adds nothing a missing parameter does not say.
                    if let Some(object) = property.as_object_mut() {
                        object.remove("nullable");
                    }
                    json!({"name": name, "in": "query", "required": required.contains(&name.as_str()), "schema": property})
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The document, with `server` as its base URL.
pub fn document(server: &str) -> Value {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let mut paths = Map::new();
    let operations = operations();
    let mut bodies = Vec::new();
    let mut queries = Vec::new();
    for operation in &operations {
        bodies.push(operation.body.map(|body| body(&mut generator).to_value()));
        queries.push(operation.query.map(|query| query(&mut generator).to_value()));
    }
    let definitions: Map<String, Value> = generator.take_definitions(true).into_iter().collect();
    for ((operation, body), query) in operations.iter().zip(bodies).zip(queries) {
        let mut parameters = path_parameters(operation.path);
        if let Some(query) = &query {
            parameters.extend(query_parameters(query, &definitions));
        }
        let success = match operation.answer {
            Object(status) => (status, json!({"description": "Done.", "content": {"application/json": {"schema": {"type": "object"}}}})),
            List => {
                (200, json!({"description": "A list.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/List"}}}}))
            }
            Empty(status) => (status, json!({"description": "Done; no content."})),
        };
        let mut entry = json!({
            "operationId": operation.id,
            "summary": operation.summary,
            "parameters": parameters,
            "responses": {
                success.0.to_string(): success.1,
                "default": {"description": "Refused or failed, in Graph's error shape.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            },
        });
        if let Some(body) = body {
            entry["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": body}}});
        }
        let item = paths.entry(operation.path.to_string()).or_insert_with(|| json!({}));
        item[operation.method] = entry;
    }
    let mut schemas = definitions;
    schemas.insert(
        "Error".into(),
        json!({"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}),
    );
    schemas.insert(
        "List".into(),
        json!({"type": "object", "required": ["value"], "properties": {"value": {"type": "array", "items": {"type": "object"}}}}),
    );
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Clavis management API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Applications, client secrets, roles, vaults, events, logs and audit of a Clavis instance, shaped after Microsoft Graph. Authenticate with a Clavis-issued token for api://clavis/.default.",
        },
        "servers": [{"url": server}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    })
}

/// `GET /openapi.json`.
pub async fn serve(axum::extract::State(state): axum::extract::State<crate::AppState>) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let mut response = (axum::http::StatusCode::OK, document(&state.public_url).to_string()).into_response();
    response.headers_mut().insert(axum::http::header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/json"));
    response.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("public, max-age=300"));
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_describes_bodies_from_the_handlers_types() {
        let document = super::document("https://localhost:8443");
        assert_eq!(document["openapi"], "3.0.3");
        let create = &document["paths"]["/v1.0/applications"]["post"];
        assert_eq!(create["operationId"], "createApplication");
        let reference = create["requestBody"]["content"]["application/json"]["schema"]["$ref"].as_str().unwrap();
        let name = reference.rsplit('/').next().unwrap();
        let schema = &document["components"]["schemas"][name];
        assert_eq!(schema["required"], serde_json::json!(["displayName"]), "{schema}");
        assert_eq!(schema["additionalProperties"], false, "unknown fields are refused: {schema}");
        let signins = &document["paths"]["/v1.0/clavis/signIns"]["get"]["parameters"];
        assert!(signins.as_array().unwrap().iter().any(|p| p["name"] == "clientId"), "{signins}");
        assert_eq!(document["paths"].as_object().unwrap().values().map(|p| p.as_object().unwrap().len()).sum::<usize>(), 47);
    }
}
