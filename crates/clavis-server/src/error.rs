//! Management API errors in Microsoft Graph's shape:
//! `{"error":{"code":…,"message":…,"innerError":{"date":…,"request-id":…,"client-request-id":…}}}`.
//!
//! Error bodies are rendered by the edge middleware ([`DeferredBody`]) so they can carry the
//! request's correlation ids. 5xx causes are logged and replaced by a generic message.

use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use clavis_core::CoreError;

use crate::context::{Correlation, ErrorCode};

/// A response body completed at the edge with the request's ids.
#[derive(Clone)]
pub struct DeferredBody(pub Arc<dyn Fn(&Correlation) -> String + Send + Sync>);

impl std::fmt::Debug for DeferredBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeferredBody")
    }
}

/// A management API error.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    /// A 400 with a message naming the field and the reason.
    pub fn bad_request(message: String) -> Self {
        Self { status: StatusCode::BAD_REQUEST, code: "Request_BadRequest", message, retry_after: None }
    }

    /// A 401 (missing, malformed, expired or foreign token).
    pub fn unauthenticated(message: String) -> Self {
        Self { status: StatusCode::UNAUTHORIZED, code: "InvalidAuthenticationToken", message, retry_after: None }
    }

    /// A 404.
    pub fn not_found(message: String) -> Self {
        Self { status: StatusCode::NOT_FOUND, code: "Request_ResourceNotFound", message, retry_after: None }
    }

    /// Any status with a Graph code.
    pub fn new(status: StatusCode, code: &'static str, message: String) -> Self {
        Self { status, code, message, retry_after: None }
    }
}

impl From<CoreError> for ApiError {
    fn from(error: CoreError) -> Self {
        match error {
            CoreError::Invalid(message) => Self::bad_request(message),
            CoreError::NotFound(message) => Self::not_found(message),
            CoreError::Conflict(message) => Self::new(StatusCode::CONFLICT, "Request_Conflict", message),
            CoreError::Forbidden(message) => Self::new(StatusCode::FORBIDDEN, "Authorization_RequestDenied", message),
            CoreError::Unauthenticated(message) => Self::unauthenticated(message),
            CoreError::Token(token_error) => Self::bad_request(token_error.to_string()),
            CoreError::Throttled { retry_after_seconds, message } => {
                Self { status: StatusCode::TOO_MANY_REQUESTS, code: "TooManyRequests", message, retry_after: Some(retry_after_seconds) }
            }
            CoreError::Store(detail) => {
                tracing::error!(error = %detail, "store failure");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "The store is unavailable; the change was not made. Retry later and quote the request-id if it persists.".into(),
                )
            }
            CoreError::Internal(detail) => {
                tracing::error!(error = %detail, "internal failure");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServerError",
                    "An internal error occurred; nothing was changed. Quote the request-id to the administrator.".into(),
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.code;
        let message = self.message;
        let message_for_log = message.clone();
        let render = move |correlation: &Correlation| {
            json!({"error": {
                "code": code,
                "message": message,
                "innerError": {
                    "date": crate::entra::timestamp_rfc3339(),
                    "request-id": correlation.trace_id,
                    "client-request-id": correlation.correlation_id,
                }
            }})
            .to_string()
        };
        let mut response = self.status.into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\", scope=\"api://clavis/.default\""),
            );
        }
        if let Some(seconds) = self.retry_after.or((self.status == StatusCode::SERVICE_UNAVAILABLE).then_some(5)) {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response.extensions_mut().insert(ErrorCode(code.to_string()));
        response.extensions_mut().insert(crate::context::ErrorMessage(message_for_log));
        response.extensions_mut().insert(DeferredBody(Arc::new(render)));
        response
    }
}
