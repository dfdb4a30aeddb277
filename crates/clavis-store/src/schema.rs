//! Versioned schema migrations, one list per backend. **Never edit a migration that has shipped;**
//! add a new one. Types are kept to those both backends and sqlx's `Any` driver share: text,
//! 64-bit integers (times are microseconds since the Unix epoch) and byte strings.

/// One migration: a DDL template shared by both backends, with `{BLOB}` and `{SERIAL}` filled in
/// per backend by [`ddl`].
pub(crate) struct Migration {
    pub version: i64,
    pub description: &'static str,
    pub template: &'static str,
}

/// Every migration, in order.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, description: "initial schema", template: V1 },
    Migration { version: 2, description: "vaults", template: V2 },
    Migration { version: 3, description: "revocations, notices, webhooks, rotation", template: V3 },
    Migration { version: 4, description: "sign-in log, request failures, audit checkpoints", template: V4 },
    Migration { version: 5, description: "state-change counter apart from the audit head", template: V5 },
    Migration { version: 6, description: "administrator accounts and portal sessions", template: V6 },
];

const V1: &str = r#"
CREATE TABLE wrapped_keys (
    id TEXT PRIMARY KEY,
    purpose TEXT NOT NULL,
    master_key_id TEXT NOT NULL,
    wrapped {BLOB} NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    signing_algorithm TEXT NOT NULL,
    policy TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE tenant_domains (
    domain TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id)
);
CREATE TABLE applications (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    app_id TEXT NOT NULL UNIQUE,
    service_principal_id TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    body TEXT NOT NULL,
    builtin BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX applications_tenant ON applications (tenant_id, display_name);
CREATE TABLE identifier_uris (
    tenant_id TEXT NOT NULL,
    uri TEXT NOT NULL,
    application_id TEXT NOT NULL REFERENCES applications(id),
    PRIMARY KEY (tenant_id, uri)
);
CREATE INDEX identifier_uris_application ON identifier_uris (application_id);
CREATE TABLE password_credentials (
    key_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    application_id TEXT NOT NULL REFERENCES applications(id),
    display_name TEXT,
    hint TEXT NOT NULL,
    secret_hash {BLOB} NOT NULL,
    start_at BIGINT NOT NULL,
    end_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX password_credentials_application ON password_credentials (application_id);
CREATE TABLE credential_usage (
    key_id TEXT PRIMARY KEY,
    last_used_at BIGINT NOT NULL,
    last_ip TEXT NOT NULL,
    use_count BIGINT NOT NULL
);
CREATE TABLE app_role_assignments (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    principal_id TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    app_role_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (principal_id, resource_id, app_role_id)
);
CREATE INDEX app_role_assignments_resource ON app_role_assignments (resource_id);
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    data_key_id TEXT NOT NULL,
    sealed {BLOB} NOT NULL,
    created_at BIGINT NOT NULL,
    activate_at BIGINT NOT NULL,
    expire_at BIGINT
);
CREATE TABLE audit_head (
    id BIGINT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
CREATE TABLE audit (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    tenant_id TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id TEXT NOT NULL,
    result TEXT NOT NULL,
    context TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_tenant_at ON audit (tenant_id, at);
CREATE TABLE events (
    seq {SERIAL},
    id TEXT NOT NULL UNIQUE,
    at BIGINT NOT NULL,
    tenant_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    subject TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
"#;

const V2: &str = r#"
CREATE TABLE vaults (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL UNIQUE,
    retention_days BIGINT NOT NULL,
    purge_protection BIGINT NOT NULL,
    enforce_expiry BIGINT NOT NULL,
    rate_limit BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    deleted_at BIGINT
);
CREATE TABLE vault_secrets (
    vault_id TEXT NOT NULL REFERENCES vaults(id),
    name_key TEXT NOT NULL,
    name TEXT NOT NULL,
    deleted_at BIGINT,
    scheduled_purge_at BIGINT,
    PRIMARY KEY (vault_id, name_key)
);
CREATE INDEX vault_secrets_purge ON vault_secrets (scheduled_purge_at);
CREATE TABLE vault_secret_versions (
    vault_id TEXT NOT NULL,
    name_key TEXT NOT NULL,
    ordinal BIGINT NOT NULL,
    version TEXT NOT NULL,
    data_key_id TEXT NOT NULL,
    sealed {BLOB} NOT NULL,
    properties TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (vault_id, name_key, ordinal),
    UNIQUE (vault_id, name_key, version)
);
CREATE TABLE vault_role_assignments (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    principal_id TEXT NOT NULL,
    role TEXT NOT NULL,
    scope TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (tenant_id, principal_id, role, scope)
);
CREATE INDEX vault_role_assignments_principal ON vault_role_assignments (principal_id)
"#;

const V3: &str = r#"
CREATE TABLE revocations (
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    revoked_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (kind, value)
);
CREATE TABLE notices (
    object_key TEXT NOT NULL,
    threshold TEXT NOT NULL,
    noticed_at BIGINT NOT NULL,
    PRIMARY KEY (object_key, threshold)
);
CREATE TABLE subscriptions (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    url TEXT NOT NULL,
    schema_kind TEXT NOT NULL,
    event_types TEXT NOT NULL,
    sealed_secret {BLOB} NOT NULL,
    data_key_id TEXT NOT NULL,
    start_after BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE deliveries (
    event_seq BIGINT NOT NULL,
    subscription_id TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT,
    delivered_at BIGINT,
    PRIMARY KEY (event_seq, subscription_id)
);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
CREATE TABLE cursors (
    name TEXT PRIMARY KEY,
    position BIGINT NOT NULL
);
CREATE TABLE rotation_policies (
    application_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    policy TEXT NOT NULL,
    state TEXT NOT NULL
)
"#;

const V4: &str = r#"
CREATE TABLE signins (
    id TEXT PRIMARY KEY,
    at BIGINT NOT NULL,
    tenant TEXT NOT NULL,
    client_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    resource TEXT NOT NULL,
    result TEXT NOT NULL,
    error_code TEXT NOT NULL,
    diagnosis TEXT NOT NULL,
    client_ip TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    attempts BIGINT NOT NULL
);
CREATE INDEX signins_at ON signins (at);
CREATE INDEX signins_correlation ON signins (correlation_id);
CREATE TABLE request_failures (
    id TEXT PRIMARY KEY,
    at BIGINT NOT NULL,
    method TEXT NOT NULL,
    route TEXT NOT NULL,
    status BIGINT NOT NULL,
    error_code TEXT NOT NULL,
    message TEXT NOT NULL,
    client_ip TEXT NOT NULL,
    correlation_id TEXT NOT NULL
);
CREATE INDEX request_failures_correlation ON request_failures (correlation_id);
CREATE TABLE audit_checkpoints (
    seq BIGINT PRIMARY KEY,
    hash TEXT NOT NULL,
    at BIGINT NOT NULL,
    kid TEXT NOT NULL,
    signature TEXT NOT NULL
)
"#;

const V5: &str = "ALTER TABLE audit_head ADD COLUMN changes BIGINT NOT NULL DEFAULT 0";

const V6: &str = r#"
CREATE TABLE admins (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    username TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    disabled BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, username)
);
CREATE TABLE portal_sessions (
    id_hash TEXT PRIMARY KEY,
    admin_id TEXT NOT NULL REFERENCES admins(id),
    tenant_id TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX portal_sessions_admin ON portal_sessions (admin_id);
"#;

/// The DDL of a migration for a backend.
pub(crate) fn ddl(template: &str, postgres: bool) -> String {
    if postgres {
        template.replace("{BLOB}", "BYTEA").replace("{SERIAL}", "BIGSERIAL PRIMARY KEY")
    } else {
        template.replace("{BLOB}", "BLOB").replace("{SERIAL}", "INTEGER PRIMARY KEY AUTOINCREMENT")
    }
}
