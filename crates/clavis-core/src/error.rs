//! The core's error type. Each edge (management API, Entra token service, later Key Vault) maps
//! it exhaustively to its own wire shape, so a new variant cannot ship without a decided status.

use crate::token::TokenError;

/// An error from a core operation. Messages are safe to show to the caller: they never hold a
/// secret value, a token or key material.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The caller's input is invalid; the message says which field and why.
    #[error("{0}")]
    Invalid(String),
    /// The named object does not exist (or the caller may not know that it does).
    #[error("{0}")]
    NotFound(String),
    /// The change conflicts with existing state (a duplicate name, a limit reached).
    #[error("{0}")]
    Conflict(String),
    /// The caller is authenticated but lacks the permission named in the message.
    #[error("{0}")]
    Forbidden(String),
    /// The caller is not authenticated (missing, invalid, expired or revoked token).
    #[error("{0}")]
    Unauthenticated(String),
    /// Too many requests; retry after the given seconds.
    #[error("{message}")]
    Throttled { retry_after_seconds: u64, message: String },
    /// A token request failed; the token service maps it to an AADSTS code.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The store failed. The detail is logged, never sent to callers.
    #[error("store error: {0}")]
    Store(String),
    /// A failure inside Clavis (for example key material that does not decrypt).
    #[error("internal error: {0}")]
    Internal(String),
}

/// The result of a core operation.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;

impl From<clavis_crypto::CryptoError> for CoreError {
    fn from(error: clavis_crypto::CryptoError) -> Self {
        Self::Internal(error.to_string())
    }
}
