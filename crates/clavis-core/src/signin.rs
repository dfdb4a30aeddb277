//! SIGN-IN LOG: every token request, success or failure, with the credential it used and, for
//! failures, a diagnosis for administrators that the caller never sees. Records are buffered in
//! memory and written in batches (`Core::flush_logs`), so the token path never waits on a write;
//! a crash loses at most one flush interval of records.
//!
//! Failures are recorded one by one. Successes are aggregated, like Entra's aggregated
//! non-interactive sign-ins: within one flush interval, successes of the same client, secret,
//! resource, address and user agent become one record with `attempts`, the last time and the
//! last correlation id, so a busy client costs one row per interval, not one per token.
//!
//! Request failures of the other APIs (management, vault) are kept the same way, so
//! `clavis diagnose CORRELATION_ID` can explain any failed request.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// One token request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignIn {
    /// Record id.
    pub id: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The tenant as requested (GUID or domain), or its id once resolved.
    pub tenant: String,
    /// The client id presented.
    pub client_id: String,
    /// The credential that matched (empty when none did).
    pub key_id: String,
    /// The resource asked for.
    pub resource: String,
    /// `success` or `failure`.
    pub result: String,
    /// The AADSTS code of a failure (empty on success).
    pub error_code: String,
    /// What went wrong, in detail, for administrators only (never a secret value).
    pub diagnosis: String,
    /// The client's IP address.
    pub client_ip: String,
    /// The correlation id returned to the client.
    pub correlation_id: String,
    /// The client's user agent.
    pub user_agent: String,
    /// Requests this record stands for (successes are aggregated per flush interval).
    pub attempts: i64,
}

/// A refused or failed request of the management or vault APIs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestFailure {
    /// Record id.
    pub id: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// HTTP method.
    pub method: String,
    /// Route template (no query string).
    pub route: String,
    /// HTTP status.
    pub status: i64,
    /// The error code returned.
    pub error_code: String,
    /// The error message returned (messages never hold secret values).
    pub message: String,
    /// The client's IP address.
    pub client_ip: String,
    /// The correlation id returned.
    pub correlation_id: String,
}

/// Filters of a sign-in query.
#[derive(Clone, Debug, Default)]
pub struct SignInFilter {
    /// From (inclusive).
    pub since: Option<OffsetDateTime>,
    /// Until (exclusive).
    pub until: Option<OffsetDateTime>,
    /// One client id.
    pub client_id: Option<String>,
    /// `success` or `failure`.
    pub result: Option<String>,
    /// At most this many, newest first.
    pub limit: i64,
}
