//! The web portal over HTTPS, as a browser without JavaScript would use it: sign-in with its
//! login-CSRF cookie, sessions (idle and absolute expiry, sign-out, disabled accounts), the
//! synchronizer token and origin check on every form, sign-in throttling, and the secret and vault
//! story acting as the signed-in person through the core's authorization and audit.

use std::collections::HashMap;

use reqwest::header::{HeaderMap, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use time::Duration;

use crate::both_backends;
use crate::support::{TestApp, TrustCa};

/// A cookie-keeping HTTP client that does not follow redirects.
pub(crate) struct Browser {
    pub(crate) http: reqwest::Client,
    base: String,
    cookies: HashMap<String, String>,
}

pub(crate) struct Page {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Page {
    pub(crate) fn location(&self) -> &str {
        self.headers.get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// The value of the first hidden `csrf` field.
    pub(crate) fn csrf(&self) -> String {
        let at = self.body.find(r#"name="csrf" value=""#).unwrap_or_else(|| panic!("no csrf field in {}", self.body));
        let rest = &self.body[at + r#"name="csrf" value=""#.len()..];
        rest[..rest.find('"').unwrap()].to_string()
    }

    /// The text of the element with this id (`<code id="…">text</code>`).
    fn text_of(&self, id: &str) -> String {
        let marker = format!(r#"id="{id}">"#);
        let at = self.body.find(&marker).unwrap_or_else(|| panic!("no #{id} in {}", self.body));
        let rest = &self.body[at + marker.len()..];
        rest[..rest.find('<').unwrap()].to_string()
    }
}

impl Browser {
    pub(crate) fn new(app: &TestApp) -> Self {
        let http =
            reqwest::Client::builder().use_rustls_tls_with_ca(&app.ca_pem).redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { http, base: app.url.clone(), cookies: HashMap::new() }
    }

    pub(crate) async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let cookie: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let request = if cookie.is_empty() { request } else { request.header(COOKIE, cookie.join("; ")) };
        let response = request.send().await.unwrap();
        for set in response.headers().get_all(SET_COOKIE) {
            let set = set.to_str().unwrap();
            assert!(set.contains("; Secure") && set.contains("; HttpOnly") && set.contains("SameSite=Strict"), "{set}");
            let (pair, _) = set.split_once(';').unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            assert!(name.starts_with("__Host-"), "{name}");
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
        let status = response.status();
        let headers = response.headers().clone();
        Page { status, headers, body: response.text().await.unwrap() }
    }

    pub(crate) async fn get(&mut self, path: &str) -> Page {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    pub(crate) async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let request = self.http.post(format!("{}{path}", self.base)).form(form);
        self.send(request).await
    }

    pub(crate) async fn sign_in(&mut self, user: &str, password: &str) -> Page {
        let page = self.get("/portal/signin").await;
        assert_eq!(page.status, StatusCode::OK);
        let csrf = page.csrf();
        self.post("/portal/signin", &[("csrf", &csrf), ("next", "/portal"), ("username", user), ("password", password)]).await
    }
}

pub(crate) async fn create_admin(app: &TestApp, user: &str, password: &str, role: &str) -> Value {
    app.remember(password);
    let (status, body) =
        app.api(Method::POST, "/v1.0/clavis/admins", Some(json!({"userName": user, "password": password, "role": role}))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body.get("password").is_none() && !body.to_string().contains(password));
    body
}

async fn app_count(app: &TestApp) -> usize {
    app.api(Method::GET, "/v1.0/applications", None).await.1["value"].as_array().unwrap().len()
}

both_backends!(sessions_csrf_and_throttling, |app| Box::pin(async move {
    let alice = create_admin(&app, "alice", "correct horse battery staple", "administrator").await;
    // Weak and duplicate accounts are refused in the API's error shape.
    let (status, body) =
        app.api(Method::POST, "/v1.0/clavis/admins", Some(json!({"userName": "weak", "password": "short", "role": "reader"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = app
        .api(Method::POST, "/v1.0/clavis/admins", Some(json!({"userName": "ALICE", "password": "another long password", "role": "reader"})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    let mut browser = Browser::new(&app);
    let page = browser.get("/").await;
    assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, "/portal"));
    let page = browser.get("/portal/apps").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/portal/signin?next=/portal/apps");

    // Login CSRF: a sign-in post without the pre-session cookie's token is refused.
    let mut stranger = Browser::new(&app);
    let page =
        stranger.post("/portal/signin", &[("csrf", "guess"), ("username", "alice"), ("password", "correct horse battery staple")]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(!stranger.cookies.contains_key("__Host-clavis-session"));

    let page = browser.sign_in("alice", "wrong password, long enough").await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(page.body.contains("The user name or password is incorrect."));
    let unknown = browser.sign_in("nobody", "wrong password, long enough").await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.body.replace("nobody", "alice").len(), page.body.replace("nobody", "alice").len(), "same answer");

    let page = browser.sign_in("alice", "correct horse battery staple").await;
    assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, "/portal"), "{}", page.body);
    let page = browser.get("/portal").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("alice"));
    let csp = page.headers.get("content-security-policy").unwrap().to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.headers.get("x-frame-options").unwrap(), "DENY");
    assert_eq!(page.headers.get("cache-control").unwrap(), "no-store");
    let csrf = page.csrf();

    // Every form needs the session's token and our own origin; a refused form changes nothing.
    let before = app_count(&app).await;
    let head = app.audit_head().await;
    let page = browser.post("/portal/apps", &[("csrf", "0123456789abcdef0123456789abcdef"), ("name", "forged")]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("security token"));
    let page = browser.post("/portal/apps", &[("name", "forged")]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let forged = browser
        .http
        .post(format!("{}/portal/apps", app.url))
        .header("origin", "https://evil.example")
        .form(&[("csrf", csrf.as_str()), ("name", "forged")]);
    assert_eq!(browser.send(forged).await.status, StatusCode::FORBIDDEN);
    let duplicate = browser
        .http
        .post(format!("{}/portal/apps", app.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}&name=a&name=b"));
    assert_eq!(browser.send(duplicate).await.status, StatusCode::BAD_REQUEST);
    let json = browser.http.post(format!("{}/portal/apps", app.url)).json(&json!({"csrf": csrf, "name": "x"}));
    assert_eq!(browser.send(json).await.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = browser.http.post(format!("{}/portal/apps", app.url)).form(&[("csrf", csrf.as_str()), ("name", &"x".repeat(200_000))]);
    assert_eq!(browser.send(huge).await.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!((app_count(&app).await, app.audit_head().await), (before, head));

    let page = browser.post("/portal/apps", &[("csrf", &csrf), ("name", "portal-made")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(app_count(&app).await, before + 1);
    // The change is audited as the person, through the same operation the API uses.
    let (_, records) = app.api(Method::GET, "/v1.0/clavis/auditRecords?action=application.create&limit=1000", None).await;
    let record = records["value"].as_array().unwrap().iter().find(|r| r["details"]["displayName"] == "portal-made").unwrap().clone();
    assert_eq!(record["actor"]["kind"], "user");
    assert_eq!(record["actor"]["id"], alice["id"]);

    // Sign-out ends the session on the server, not just in the browser.
    assert_eq!(browser.sign_in("alice", "correct horse battery staple").await.status, StatusCode::SEE_OTHER);
    let stolen = browser.cookies.clone();
    let csrf = browser.get("/portal").await.csrf();
    let page = browser.post("/portal/signout", &[("csrf", &csrf)]).await;
    assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, "/portal/signin?reason=signedout"));
    browser.cookies = stolen;
    assert!(browser.get("/portal").await.location().contains("reason=ended"));

    // Disabling an account ends its sessions at once.
    assert_eq!(browser.sign_in("alice", "correct horse battery staple").await.status, StatusCode::SEE_OTHER);
    let (status, _) = app.api(Method::PATCH, "/v1.0/clavis/admins/alice", Some(json!({"disabled": true}))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(browser.get("/portal").await.location().starts_with("/portal/signin"));
    assert_eq!(browser.sign_in("alice", "correct horse battery staple").await.status, StatusCode::UNAUTHORIZED);
    let (status, body) =
        app.api(Method::PATCH, "/v1.0/clavis/admins/alice", Some(json!({"disabled": false, "password": "a new long passphrase"}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.remember("a new long passphrase");
    assert_eq!(browser.sign_in("alice", "correct horse battery staple").await.status, StatusCode::UNAUTHORIZED, "old password");
    assert_eq!(browser.sign_in("alice", "a new long passphrase").await.status, StatusCode::SEE_OTHER);

    // Failed sign-ins are throttled per (user name, address): after 5, even the right password
    // waits, with Retry-After; the count is per user name, so others sign in.
    create_admin(&app, "carol", "carol's long passphrase", "reader").await;
    let mut attacker = Browser::new(&app);
    for _ in 0..5 {
        assert_eq!(attacker.sign_in("carol", "not carol's password").await.status, StatusCode::UNAUTHORIZED);
    }
    let page = attacker.sign_in("carol", "not carol's password").await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(page.headers.get("retry-after").is_some());
    assert_eq!(attacker.sign_in("carol", "carol's long passphrase").await.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(attacker.sign_in("alice", "a new long passphrase").await.status, StatusCode::SEE_OTHER);
    app.clock.advance(Duration::minutes(20));
    assert_eq!(attacker.sign_in("carol", "carol's long passphrase").await.status, StatusCode::SEE_OTHER);

    // Idle expiry (30 minutes), with activity keeping a session alive up to its absolute end (8 h).
    assert_eq!(browser.sign_in("alice", "a new long passphrase").await.status, StatusCode::SEE_OTHER);
    app.clock.advance(Duration::minutes(20));
    assert_eq!(browser.get("/portal").await.status, StatusCode::OK);
    app.clock.advance(Duration::minutes(20));
    assert_eq!(browser.get("/portal").await.status, StatusCode::OK, "activity resets the idle timer");
    app.clock.advance(Duration::minutes(31));
    let page = browser.get("/portal/vaults").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(page.location().contains("reason=expired"), "{}", page.location());
    assert!(browser.get("/portal/signin?reason=expired").await.body.contains("Your session has expired"));
    assert_eq!(browser.sign_in("alice", "a new long passphrase").await.status, StatusCode::SEE_OTHER);
    for _ in 0..16 {
        app.clock.advance(Duration::minutes(29));
        assert_eq!(browser.get("/portal").await.status, StatusCode::OK);
    }
    app.clock.advance(Duration::minutes(29));
    assert!(browser.get("/portal").await.location().contains("reason=expired"), "absolute lifetime");

    let (_, list) = app.api(Method::GET, "/v1.0/clavis/admins", None).await;
    assert!(!list.to_string().contains("argon2"), "hashes never leave the store");
    app
}));

both_backends!(secrets_and_vaults_as_a_person, |app| Box::pin(async move {
    create_admin(&app, "alice", "correct horse battery staple", "administrator").await;
    create_admin(&app, "bob", "bob's long passphrase", "reader").await;
    let mut alice = Browser::new(&app);
    assert_eq!(alice.sign_in("alice", "correct horse battery staple").await.status, StatusCode::SEE_OTHER);
    let csrf = alice.get("/portal").await.csrf();

    // Register an application, add a secret, read it from the one-time dialog, use it.
    let page = alice.post("/portal/apps", &[("csrf", &csrf), ("name", "worker")]).await;
    let app_path = page.location().split('?').next().unwrap().to_string();
    let overview = alice.get(&app_path).await;
    let client_id = overview.text_of("client-id");
    assert_eq!(overview.text_of("tenant-id"), app.tenant_id);
    assert_eq!(overview.text_of("token-v2"), format!("{}/{}/oauth2/v2.0/token", app.url, app.tenant_id));
    let page =
        alice.post(&format!("{app_path}/secrets"), &[("csrf", &csrf), ("description", "from the portal"), ("expires_days", "90")]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("This is the only time it is shown."));
    let secret = page.text_of("secret-value");
    let key_id = page.text_of("secret-key-id");
    app.remember(&secret);
    assert!(!alice.get(&format!("{app_path}/secrets")).await.body.contains(&secret), "shown once");
    let (status, body) = app.token(&client_id, &secret, "api://clavis/.default").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.core.flush_usage().await.unwrap();
    let page = alice.get(&format!("{app_path}/secrets")).await;
    assert!(page.body.contains("1 uses · from 127.0.0.1"), "last use shows: {}", page.body);
    // An expiry beyond the policy is refused and adds nothing.
    let page = alice.post(&format!("{app_path}/secrets"), &[("csrf", &csrf), ("expires_days", "9999")]).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("passwordLifetime"), "{}", page.body);
    // Revoke as compromised: the secret and its tokens stop working.
    let page = alice.post(&format!("{app_path}/secrets/{key_id}/revoke"), &[("csrf", &csrf)]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(app.token(&client_id, &secret, "api://clavis/.default").await.0, StatusCode::UNAUTHORIZED);

    // Roles: define one, grant it to the app itself.
    let page = alice.post(&format!("{app_path}/roles"), &[("csrf", &csrf), ("value", "Jobs.Run")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let page = alice.post(&format!("{app_path}/grants"), &[("csrf", &csrf), ("role", &format!("{client_id}|Jobs.Run"))]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert!(alice.get(&format!("{app_path}/roles")).await.body.contains("Jobs.Run"));

    // Vaults: create, set, reveal (audited), disable, delete, recover, purge.
    assert_eq!(
        alice.post("/portal/vaults", &[("csrf", &csrf), ("name", "kv1"), ("retention_days", "7")]).await.status,
        StatusCode::SEE_OTHER
    );
    app.remember("portal-vault-value-1");
    let page =
        alice.post("/portal/vaults/kv1", &[("csrf", &csrf), ("name", "db"), ("value", "portal-vault-value-1"), ("tags", "env=dev")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let page = alice.get("/portal/vaults/kv1/secrets/db").await;
    assert!(!page.body.contains("portal-vault-value-1"), "values only on request");
    assert!(page.body.contains("env=dev"));
    let page = alice.post("/portal/vaults/kv1/secrets/db/reveal", &[("csrf", &csrf)]).await;
    assert_eq!(page.text_of("revealed-value"), "portal-vault-value-1");
    let (_, reads) = app.api(Method::GET, "/v1.0/clavis/auditRecords?action=vaultSecret.read&limit=100", None).await;
    assert!(reads["value"].as_array().unwrap().iter().any(|r| r["actor"]["kind"] == "user"), "{reads}");
    let version = page.body.split(r#"data-version=""#).nth(1).unwrap().split('"').next().unwrap().to_string();
    let page = alice.post("/portal/vaults/kv1/secrets/db/enabled", &[("csrf", &csrf), ("version", &version), ("enabled", "false")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(alice.post("/portal/vaults/kv1/secrets/db/reveal", &[("csrf", &csrf)]).await.status, StatusCode::FORBIDDEN, "disabled");
    assert_eq!(alice.post("/portal/vaults/kv1/secrets/db/delete", &[("csrf", &csrf)]).await.status, StatusCode::SEE_OTHER);
    assert!(alice.get("/portal/vaults/kv1").await.body.contains("Recover"));
    assert_eq!(alice.post("/portal/vaults/kv1/secrets/db/recover", &[("csrf", &csrf)]).await.status, StatusCode::SEE_OTHER);
    assert_eq!(alice.post("/portal/vaults/kv1/secrets/db/delete", &[("csrf", &csrf)]).await.status, StatusCode::SEE_OTHER);
    assert_eq!(alice.post("/portal/vaults/kv1/secrets/db/purge", &[("csrf", &csrf)]).await.status, StatusCode::SEE_OTHER);

    // Rotation: a policy publishing into kv1, rotated now; then a secret removed.
    let page = alice
        .post(
            &format!("{app_path}/rotation"),
            &[
                ("csrf", &csrf),
                ("vault", "kv1"),
                ("secret_name", "worker-secret"),
                ("before_days", "30"),
                ("overlap_days", "1"),
                ("lifetime_days", "90"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert!(alice.get(&format!("{app_path}/secrets")).await.body.contains("worker-secret"));
    let page = alice.post(&format!("{app_path}/rotate"), &[("csrf", &csrf)]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let page = alice.post("/portal/vaults/kv1/secrets/worker-secret/reveal", &[("csrf", &csrf)]).await;
    let rotated = page.text_of("revealed-value");
    app.remember(&rotated);
    assert_eq!(app.token(&client_id, &rotated, "api://clavis/.default").await.0, StatusCode::OK, "the published secret works");
    let (_, listed) = app.api(Method::GET, &format!("/v1.0/applications/{client_id}"), None).await;
    let rotated_key = listed["passwordCredentials"][0]["keyId"].as_str().unwrap().to_string();
    let page = alice.post(&format!("{app_path}/secrets/{rotated_key}/remove"), &[("csrf", &csrf)]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(app.token(&client_id, &rotated, "api://clavis/.default").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(alice.post(&format!("{app_path}/rotation/remove"), &[("csrf", &csrf)]).await.status, StatusCode::SEE_OTHER);

    let missing = alice.get("/portal/no/such/page").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.headers.get("content-type").unwrap().to_str().unwrap().starts_with("text/html"));

    // Every page renders for the administrator.
    for path in [
        "/portal",
        "/portal/apps?q=work",
        "/portal/vaults",
        "/portal/audit",
        "/portal/signins?result=failure",
        "/portal/events",
        "/portal/errors",
    ] {
        let page = alice.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
    }
    assert!(alice.get("/portal/audit").await.body.contains("Chain intact"));

    // A reader sees but cannot change, and holds no vault role: values stay hidden.
    let mut bob = Browser::new(&app);
    assert_eq!(bob.sign_in("bob", "bob's long passphrase").await.status, StatusCode::SEE_OTHER);
    let bob_csrf = bob.get("/portal/apps").await.csrf();
    assert_eq!(bob.get(&app_path).await.status, StatusCode::OK);
    let before = app.audit_head().await;
    assert_eq!(bob.post("/portal/apps", &[("csrf", &bob_csrf), ("name", "nope")]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        bob.post(&format!("{app_path}/secrets"), &[("csrf", &bob_csrf), ("expires_days", "90")]).await.status,
        StatusCode::FORBIDDEN
    );
    app.remember("bob-cannot-set");
    let page = bob.post("/portal/vaults/kv1", &[("csrf", &bob_csrf), ("name", "x"), ("value", "bob-cannot-set")]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert_eq!(app.audit_head().await, before, "refusals change nothing");
    assert!(bob.get("/portal/vaults/kv1").await.body.contains("You hold no vault role"));
    assert_eq!(bob.get("/portal/audit").await.status, StatusCode::FORBIDDEN);
    // Granting bob a vault role by user name lets him read values.
    let (status, body) = app
        .api(
            Method::POST,
            "/v1.0/clavis/vaultRoleAssignments",
            Some(json!({"principalId": "user:bob", "role": "Key Vault Secrets User", "scope": "/vaults/kv1"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(bob.get("/portal/vaults/kv1").await.status, StatusCode::OK);
    assert!(!bob.get("/portal/vaults/kv1").await.body.contains("You hold no vault role"));
    app
}));
