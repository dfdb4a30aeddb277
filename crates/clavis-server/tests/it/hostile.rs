//! A table of malformed and hostile requests across every public surface: the token service,
//! discovery, the management API, the vault data plane and the portal's forms. Each must be
//! refused with a 4xx in its protocol's error shape (never a 5xx, never a crash), the server must
//! stay healthy, and nothing stored may change.

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::portal::{create_admin, Browser};
use crate::support::{spawn, Backend, TestApp};

/// The error shape a refusal must have.
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// `{"error": "...", "error_description": "...", "error_codes": [n], ...}`
    Entra,
    /// `{"error": {"code": "...", "message": "..."}}` (Graph; Key Vault's is the same at this level)
    Graph,
    /// An HTML page, or a redirect to the sign-in page.
    Portal,
}

#[derive(Clone, Copy)]
enum Host {
    Main,
    Vault,
}

struct Case {
    name: String,
    host: Host,
    method: reqwest::Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    shape: Shape,
    /// Send the bootstrap administrator's bearer token (management API) or a vault token.
    bearer: bool,
    /// Send the portal session cookie.
    session: bool,
}

fn case(name: impl Into<String>, method: &str, path: impl Into<String>, shape: Shape) -> Case {
    Case {
        name: name.into(),
        host: Host::Main,
        method: reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
        path: path.into(),
        headers: Vec::new(),
        body: Vec::new(),
        shape,
        bearer: false,
        session: false,
    }
}

impl Case {
    fn body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        self.headers.push(("content-type".into(), content_type.into()));
        self.body = body.into();
        self
    }
    fn form(self, body: impl Into<Vec<u8>>) -> Self {
        self.body("application/x-www-form-urlencoded", body)
    }
    fn json(self, body: impl Into<Vec<u8>>) -> Self {
        self.body("application/json", body)
    }
    fn bearer(mut self) -> Self {
        self.bearer = true;
        self
    }
    fn vault(mut self) -> Self {
        self.host = Host::Vault;
        self.bearer = true;
        self
    }
    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    fn session(mut self) -> Self {
        self.session = true;
        self
    }
}

/// Hostile strings used in names, ids and values.
fn nasty() -> Vec<(&'static str, String)> {
    vec![
        ("sql", "' OR '1'='1'; DROP TABLE applications;--".into()),
        ("traversal", "../../../../etc/passwd".into()),
        ("nul", "a\u{0}b".into()),
        ("long", "x".repeat(5_000)),
        ("unicode", "\u{202e}gnp.exe\u{200b}🙂".into()),
        ("script", "<script>alert(1)</script>".into()),
        ("crlf", "a\r\nSet-Cookie: x=1".into()),
        ("format", "%s%s%n{0}${jndi:ldap://x}".into()),
    ]
}

fn corpus(app: &TestApp, csrf: &str) -> Vec<Case> {
    let tenant = app.tenant_id.clone();
    let mut cases = Vec::new();

    // ----- the token service -------------------------------------------------------------------------
    for endpoint in ["oauth2/v2.0/token", "oauth2/token"] {
        let path = format!("/{tenant}/{endpoint}");
        let token = |name: &str| case(format!("{endpoint}: {name}"), "POST", path.clone(), Shape::Entra);
        cases.push(token("empty body").form(""));
        cases.push(token("invalid UTF-8").form(b"grant_type=client_credentials&client_id=\xff\xfe".to_vec()));
        cases.push(token("broken escape").form("grant_type=%ZZ"));
        cases.push(token("duplicate parameter").form("grant_type=client_credentials&grant_type=client_credentials"));
        cases.push(token("another grant").form("grant_type=password&username=a&password=b"));
        cases.push(token("no client id").form("grant_type=client_credentials&client_secret=x&scope=api://clavis/.default"));
        cases.push(
            token("no secret").form(format!("grant_type=client_credentials&client_id={}&scope=api://clavis/.default", app.admin_client_id)),
        );
        cases.push(token("JSON body").json(r#"{"grant_type":"client_credentials"}"#));
        cases.push(token("text body").body("text/plain", "grant_type=client_credentials"));
        cases.push(token("multipart").body(
            "multipart/form-data; boundary=x",
            "--x\r\nContent-Disposition: form-data; name=\"grant_type\"\r\n\r\nclient_credentials\r\n--x--",
        ));
        cases.push(token("too many parameters").form((0..80).map(|i| format!("p{i}=1")).collect::<Vec<_>>().join("&")));
        cases.push(token("oversized").form(vec![b'a'; 70 * 1024]));
        for (kind, value) in nasty() {
            let encoded: String = form_urlencoded(&value);
            cases.push(
                token(&format!("client id {kind}"))
                    .form(format!("grant_type=client_credentials&client_id={encoded}&client_secret=x&scope=api://clavis/.default")),
            );
            cases.push(token(&format!("scope {kind}")).form(format!(
                "grant_type=client_credentials&client_id={}&client_secret={}&scope={encoded}&resource={encoded}",
                app.admin_client_id,
                form_urlencoded(&app.admin_secret)
            )));
        }
    }
    for (kind, value) in nasty().into_iter().filter(|(k, _)| *k != "nul" && *k != "crlf") {
        let segment = path_segment(&value);
        cases.push(
            case(format!("token at tenant {kind}"), "POST", format!("/{segment}/oauth2/v2.0/token"), Shape::Entra)
                .form("grant_type=client_credentials&client_id=x&client_secret=y&scope=a/.default"),
        );
        cases.push(case(
            format!("discovery at tenant {kind}"),
            "GET",
            format!("/{segment}/v2.0/.well-known/openid-configuration"),
            Shape::Entra,
        ));
        cases.push(case(format!("jwks at tenant {kind}"), "GET", format!("/{segment}/discovery/v2.0/keys"), Shape::Entra));
    }
    cases.push(
        case("token from /common", "POST", "/common/oauth2/v2.0/token", Shape::Entra)
            .form("grant_type=client_credentials&client_id=x&client_secret=y&scope=a/.default"),
    );
    cases.push(
        case("introspection without credentials", "POST", format!("/{tenant}/oauth2/v2.0/introspect"), Shape::Entra).form("token=abc"),
    );
    cases.push(case("revocation without token", "POST", format!("/{tenant}/oauth2/v2.0/revoke"), Shape::Entra).form("client_id=x"));

    // ----- the management API -----------------------------------------------------------------------------
    let api = |name: &str, method: &str, path: &str| case(format!("api: {name}"), method, path, Shape::Graph).bearer();
    cases.push(case("api: no token", "GET", "/v1.0/applications", Shape::Graph));
    cases.push(case("api: garbage token", "GET", "/v1.0/applications", Shape::Graph).header("authorization", "Bearer not.a.token"));
    cases.push(
        case("api: alg none token", "GET", "/v1.0/applications", Shape::Graph)
            .header("authorization", "Bearer eyJhbGciOiJub25lIn0.eyJyb2xlcyI6WyJDbGF2aXMuQWRtaW5pc3RyYXRvciJdfQ."),
    );
    cases.push(case("api: basic auth", "GET", "/v1.0/applications", Shape::Graph).header("authorization", "Basic YWRtaW46YWRtaW4="));
    for (name, body) in [
        ("not JSON", "{displayName: x".to_string()),
        ("array", "[]".to_string()),
        ("wrong type", r#"{"displayName": 42}"#.to_string()),
        ("unknown field", r#"{"displayName": "x", "isAdmin": true}"#.to_string()),
        ("null name", r#"{"displayName": null}"#.to_string()),
        ("empty name", r#"{"displayName": ""}"#.to_string()),
        ("deep nesting", "[".repeat(10_000) + &"]".repeat(10_000)),
        ("bad identifier uri", r#"{"displayName": "x", "identifierUris": ["javascript:alert(1)"]}"#.to_string()),
        (
            "too many identifier uris",
            json!({"displayName": "x", "identifierUris": (0..50).map(|i| format!("api://x{i}")).collect::<Vec<_>>()}).to_string(),
        ),
        ("bad token version", r#"{"displayName": "x", "api": {"requestedAccessTokenVersion": 7}}"#.to_string()),
        (
            "bad app role",
            r#"{"displayName": "x", "appRoles": [{"value": "has space", "allowedMemberTypes": ["Application"]}]}"#.to_string(),
        ),
        ("BOM", "\u{feff}{\"displayName\": \"x\"}".to_string()),
        ("oversized", json!({"displayName": "x".repeat(70 * 1024)}).to_string()),
        ("long name", json!({"displayName": "x".repeat(300)}).to_string()),
    ] {
        cases.push(api(&format!("create application, {name}"), "POST", "/v1.0/applications").json(body));
    }
    cases.push(api("create application, no content type", "POST", "/v1.0/applications").body("text/plain", r#"{"displayName":"x"}"#));
    for (kind, value) in nasty() {
        let id = path_segment(&value);
        cases.push(api(&format!("get application {kind}"), "GET", &format!("/v1.0/applications/{id}")));
        cases.push(api(&format!("patch application {kind}"), "PATCH", &format!("/v1.0/applications/{id}")).json(r#"{"displayName":"y"}"#));
        cases.push(api(&format!("delete application {kind}"), "DELETE", &format!("/v1.0/applications/{id}")));
        cases.push(api(&format!("add password {kind}"), "POST", &format!("/v1.0/applications/{id}/addPassword")).json("{}"));
        cases.push(api(&format!("service principal {kind}"), "GET", &format!("/v1.0/servicePrincipals/{id}/appRoleAssignedTo")));
        cases.push(api(&format!("vault {kind}"), "GET", &format!("/v1.0/clavis/vaults/{id}")));
        cases.push(api(&format!("create vault named {kind}"), "POST", "/v1.0/clavis/vaults").json(json!({"name": value}).to_string()));
        cases.push(api(&format!("subscribe {kind}"), "POST", "/v1.0/clavis/subscriptions").json(json!({"url": value}).to_string()));
        cases.push(api(&format!("diagnose {kind}"), "GET", &format!("/v1.0/clavis/diagnose/{id}")));
        cases.push(
            api(&format!("admin {kind}"), "POST", "/v1.0/clavis/admins")
                .json(json!({"userName": value, "password": "long enough password"}).to_string()),
        );
    }
    let admin_app = app.admin_client_id.clone();
    for (name, body) in [
        ("end in the past", r#"{"passwordCredential": {"endDateTime": "2001-01-01T00:00:00Z"}}"#),
        ("end not a date", r#"{"passwordCredential": {"endDateTime": "tomorrow"}}"#),
        ("end year 99999", r#"{"passwordCredential": {"endDateTime": "99999-01-01T00:00:00Z"}}"#),
        ("custom secret", r#"{"passwordCredential": {"secretText": "hunter2hunter2"}}"#),
        (
            "description too long",
            &*Box::leak(json!({"passwordCredential": {"displayName": "d".repeat(2000)}}).to_string().into_boxed_str()),
        ),
        ("wrong shape", r#"{"passwordCredential": []}"#),
    ] {
        cases.push(api(&format!("add password, {name}"), "POST", &format!("/v1.0/applications/{admin_app}/addPassword")).json(body));
    }
    for (name, body) in [
        ("missing key id", "{}"),
        ("unknown key id", r#"{"keyId": "00000000-0000-0000-0000-000000000000"}"#),
        ("key id not a guid", r#"{"keyId": "' OR 1=1 --"}"#),
    ] {
        cases.push(api(&format!("remove password, {name}"), "POST", &format!("/v1.0/applications/{admin_app}/removePassword")).json(body));
        cases.push(api(&format!("revoke password, {name}"), "POST", &format!("/v1.0/applications/{admin_app}/revokePassword")).json(body));
    }
    for (name, body) in [
        ("lifetime too long", r#"{"credentialPolicy": {"maxPasswordLifetimeDays": 100000}}"#),
        ("negative default", r#"{"credentialPolicy": {"defaultPasswordLifetimeDays": -5}}"#),
        ("unknown algorithm", r#"{"signingAlgorithm": "HS256"}"#),
        ("algorithm none", r#"{"signingAlgorithm": "none"}"#),
        ("unknown field", r#"{"tenantType": "B2C"}"#),
    ] {
        cases.push(api(&format!("organization, {name}"), "PATCH", "/v1.0/organization").json(body));
    }
    for (name, body) in [
        ("unknown role", r#"{"principalId": "x", "role": "Owner", "scope": "/"}"#),
        ("bad scope", r#"{"principalId": "x", "role": "Key Vault Reader", "scope": "/vaults/../../x"}"#),
        ("keys scope", r#"{"principalId": "x", "role": "Key Vault Reader", "scope": "/vaults/kv/keys/k"}"#),
        ("unknown principal", r#"{"principalId": "00000000-0000-0000-0000-000000000000", "role": "Key Vault Reader", "scope": "/"}"#),
    ] {
        cases.push(api(&format!("vault role, {name}"), "POST", "/v1.0/clavis/vaultRoleAssignments").json(body));
    }
    for query in ["after=abc", "limit=-1x", "since=yesterday", "until=2026-13-45T00:00:00Z", "after=99999999999999999999999"] {
        cases.push(api(&format!("audit records {query}"), "GET", &format!("/v1.0/clavis/auditRecords?{query}")));
    }
    for query in ["since=not-a-date", "limit=abc"] {
        cases.push(api(&format!("sign-ins {query}"), "GET", &format!("/v1.0/clavis/signIns?{query}")));
    }
    cases.push(api("rotate master key as a reader is not possible without a body", "POST", "/v1.0/clavis/rotateMasterKey").json("[1,2,3]"));
    cases.push(api("unknown route", "GET", "/v1.0/users"));
    cases.push(api("method not allowed", "PUT", "/v1.0/applications"));

    // ----- the vault data plane ---------------------------------------------------------------------------
    let vault = |name: &str, method: &str, path: &str| case(format!("vault: {name}"), method, path, Shape::Graph).vault();
    let mut anonymous = case("vault: no token", "GET", "/secrets?api-version=7.6", Shape::Graph).vault();
    anonymous.bearer = false;
    cases.push(anonymous);
    for (name, body) in [
        ("not JSON", "value=x".to_string()),
        ("no value", "{}".to_string()),
        ("value not a string", r#"{"value": 42}"#.to_string()),
        ("value too large", json!({"value": "v".repeat(25_601)}).to_string()),
        (
            "16 tags",
            json!({"value": "v", "tags": (0..16).map(|i| (format!("t{i}"), "x")).collect::<std::collections::BTreeMap<_, _>>()})
                .to_string(),
        ),
        ("tag too long", json!({"value": "v", "tags": {"t": "x".repeat(513)}}).to_string()),
        ("content type too long", json!({"value": "v", "contentType": "x".repeat(256)}).to_string()),
        ("attributes wrong type", r#"{"value": "v", "attributes": {"exp": "soon"}}"#.to_string()),
        ("deep nesting", "{\"value\":".repeat(500) + "\"x\"" + &"}".repeat(500)),
        ("oversized", json!({"value": "v".repeat(70 * 1024)}).to_string()),
    ] {
        cases.push(vault(&format!("set secret, {name}"), "PUT", "/secrets/hostile?api-version=7.6").json(body));
    }
    for (kind, value) in nasty() {
        let name = path_segment(&value);
        cases.push(vault(&format!("get secret {kind}"), "GET", &format!("/secrets/{name}?api-version=7.6")));
        cases.push(vault(&format!("set secret named {kind}"), "PUT", &format!("/secrets/{name}?api-version=7.6")).json(r#"{"value":"v"}"#));
        cases.push(vault(&format!("get version {kind}"), "GET", &format!("/secrets/existing/{name}?api-version=7.6")));
        cases.push(vault(&format!("delete {kind}"), "DELETE", &format!("/secrets/{name}?api-version=7.6")));
        cases.push(vault(&format!("purge {kind}"), "DELETE", &format!("/deletedsecrets/{name}?api-version=7.6")));
    }
    for query in ["maxresults=abc", "maxresults=-1", "maxresults=99999"] {
        cases.push(vault(&format!("list {query}"), "GET", &format!("/secrets?api-version=7.6&{query}")));
    }
    cases.push(vault("restore garbage", "POST", "/secrets/restore?api-version=7.6").json(r#"{"value":"bm90IGEgYmFja3Vw"}"#));
    cases.push(vault("restore not base64", "POST", "/secrets/restore?api-version=7.6").json(r#"{"value":"***"}"#));
    cases.push(vault("update unknown", "PATCH", "/secrets/nothing/abc?api-version=7.6").json(r#"{"contentType":"x"}"#));

    // ----- the portal's forms -------------------------------------------------------------------------------
    let portal = |name: &str, path: &str| case(format!("portal: {name}"), "POST", path, Shape::Portal).session();
    cases.push(case("portal: post without a session", "POST", "/portal/apps", Shape::Portal).form("name=x"));
    cases.push(portal("no csrf", "/portal/apps").form("name=x"));
    cases.push(portal("wrong csrf", "/portal/apps").form("csrf=00000000000000000000000000000000&name=x"));
    cases.push(portal("JSON", "/portal/apps").json(r#"{"name":"x"}"#));
    cases
        .push(portal("invalid UTF-8", "/portal/apps").form([b"csrf=".to_vec(), csrf.as_bytes().to_vec(), b"&name=\xff".to_vec()].concat()));
    cases.push(portal("duplicate fields", "/portal/apps").form(format!("csrf={csrf}&name=a&name=b")));
    cases.push(
        portal("too many fields", "/portal/apps")
            .form(format!("csrf={csrf}&") + &(0..80).map(|i| format!("f{i}=1")).collect::<Vec<_>>().join("&")),
    );
    cases.push(portal("oversized", "/portal/apps").form(format!("csrf={csrf}&name=") + &"x".repeat(200_000)));
    cases.push(portal("cross-origin", "/portal/apps").form(format!("csrf={csrf}&name=x")).header("origin", "https://evil.example"));
    cases.push(portal("empty application name", "/portal/apps").form(format!("csrf={csrf}&name=")));
    cases.push(portal("vault name invalid", "/portal/vaults").form(format!("csrf={csrf}&name=..%2F..&retention_days=7")));
    cases.push(portal("retention not a number", "/portal/vaults").form(format!("csrf={csrf}&name=okname&retention_days=seven")));
    cases.push(
        portal("secret expiry not a number", &format!("/portal/apps/{admin_app}/secrets"))
            .form(format!("csrf={csrf}&expires_days=forever")),
    );
    cases.push(
        portal("secret expiry beyond policy", &format!("/portal/apps/{admin_app}/secrets"))
            .form(format!("csrf={csrf}&expires_days=100000")),
    );
    cases.push(portal("grant without role", &format!("/portal/apps/{admin_app}/grants")).form(format!("csrf={csrf}&role=nopipe")));
    for (kind, value) in nasty() {
        let id = path_segment(&value);
        cases.push(
            portal(&format!("remove secret of {kind}"), &format!("/portal/apps/{id}/secrets/{id}/remove")).form(format!("csrf={csrf}")),
        );
        cases.push(
            portal(&format!("reveal in vault {kind}"), &format!("/portal/vaults/{id}/secrets/{id}/reveal")).form(format!("csrf={csrf}")),
        );
    }
    cases
}

fn form_urlencoded(value: &str) -> String {
    value.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

fn path_segment(value: &str) -> String {
    form_urlencoded(value)
}

fn check_shape(case: &Case, status: StatusCode, headers: &HeaderMap, body: &str) -> Result<(), String> {
    if status.is_server_error() || status.is_success() {
        return Err(format!("answered {status}"));
    }
    match case.shape {
        Shape::Entra => {
            let value: Value = serde_json::from_str(body).map_err(|_| format!("{status}: not JSON: {body:.200}"))?;
            if !(value["error"].is_string() && value["error_description"].is_string() && value["error_codes"].is_array()) {
                return Err(format!("{status}: not Entra's error shape: {body:.300}"));
            }
        }
        Shape::Graph => {
            if status == StatusCode::METHOD_NOT_ALLOWED {
                return Ok(());
            }
            let value: Value = serde_json::from_str(body).map_err(|_| format!("{status}: not JSON: {body:.200}"))?;
            if !(value["error"]["code"].is_string() && value["error"]["message"].is_string()) {
                return Err(format!("{status}: not the error shape: {body:.300}"));
            }
        }
        Shape::Portal => {
            let html = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").starts_with("text/html");
            let to_sign_in = status == StatusCode::SEE_OTHER
                && headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or("").starts_with("/portal/signin");
            if !(html || to_sign_in) {
                return Err(format!("{status}: neither a page nor a sign-in redirect"));
            }
        }
    }
    Ok(())
}

/// Tables whose rows the refusals themselves legitimately add to (the logs of refused requests).
const LOG_TABLES: &[&str] = &["signins", "request_failures"];

async fn stored(app: &TestApp) -> Vec<(&'static str, Vec<String>)> {
    let mut all = Vec::new();
    for table in clavis_store::migrate::TABLES.iter().filter(|t| !LOG_TABLES.contains(t)) {
        all.push((*table, app.store.dump_table(table).await.unwrap()));
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_are_refused_in_shape_and_change_nothing() {
    let app = spawn(Backend::Sqlite).await;
    create_admin(&app, "alice", "correct horse battery staple", "administrator").await;
    let (status, _) = app.api(reqwest::Method::POST, "/v1.0/clavis/vaults", Some(json!({"name": "kv1"}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let vault_token = app.vault_token(&app.admin_client_id, &app.admin_secret).await;
    let mut plain = Browser::new(&app); // no cookies, no redirects followed
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in("alice", "correct horse battery staple").await.status, StatusCode::SEE_OTHER);
    let csrf = browser.get("/portal").await.csrf();
    app.core.flush_usage().await.unwrap();
    app.core.flush_logs().await.unwrap();
    let before = stored(&app).await;
    let head = app.audit_head().await;

    let cases = corpus(&app, &csrf);
    let mut failures = Vec::new();
    for case in &cases {
        let (client, base) = match (case.host, case.shape) {
            // Portal answers are judged as sent (a redirect is not followed).
            (Host::Main, Shape::Portal) => (plain.http.clone(), app.url.clone()),
            (Host::Main, _) => (app.http.clone(), app.url.clone()),
            (Host::Vault, _) => (app.vault_http("kv1"), app.vault_url("kv1")),
        };
        let mut request = client.request(case.method.clone(), format!("{base}{}", case.path)).body(case.body.clone());
        if case.bearer {
            request = request.bearer_auth(match case.host {
                Host::Main => &app.admin_token,
                Host::Vault => &vault_token,
            });
        }
        for (name, value) in &case.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let answer = if case.session {
            let page = browser.send(request).await;
            Ok((page.status, page.headers, page.body))
        } else if matches!(case.shape, Shape::Portal) {
            let page = plain.send(request).await;
            Ok((page.status, page.headers, page.body))
        } else {
            match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    Ok((status, headers, response.text().await.unwrap_or_default()))
                }
                Err(error) => Err(error.to_string()),
            }
        };
        match answer {
            Ok((status, headers, body)) => {
                if let Err(problem) = check_shape(case, status, &headers, &body) {
                    failures.push(format!("{}: {problem}", case.name));
                }
            }
            Err(error) => failures.push(format!("{}: no answer: {error}", case.name)),
        }
    }
    println!("{} hostile requests across the token service, discovery, the management API, the vault and the portal", cases.len());
    assert!(cases.len() >= 200, "only {} cases", cases.len());
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
    let healthy = app.http.get(format!("{}/healthz", app.url)).send().await.unwrap();
    assert_eq!(healthy.status(), StatusCode::OK);
    assert_eq!(app.audit_head().await, head, "no refused request wrote an audit record");
    app.core.flush_usage().await.unwrap();
    assert_eq!(stored(&app).await, before, "no refused request changed stored data");
    app.finish().await;
}
