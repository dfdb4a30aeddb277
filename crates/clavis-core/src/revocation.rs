//! REVOCATION: credentials and individual tokens revoked before their time. A revoked
//! credential's tokens (they carry its `keyId` as `credential_id`) and a revoked token (by its
//! `uti`) are refused by every verifier of this instance until they would have expired anyway;
//! then the record is dropped.

use time::OffsetDateTime;

/// What a revocation names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RevocationKind {
    /// Every token issued with a credential (`credential_id` claim).
    Credential,
    /// One token (`uti` claim).
    Token,
}

impl RevocationKind {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Credential => "credential",
            Self::Token => "token",
        }
    }

    /// Parses the stored form.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "credential" => Some(Self::Credential),
            "token" => Some(Self::Token),
            _ => None,
        }
    }
}

/// A revocation record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// What it names.
    pub kind: RevocationKind,
    /// The credential's `keyId` or the token's `uti`.
    pub value: String,
    /// The tenant.
    pub tenant_id: String,
    /// Why (`compromised`, `rotated`, `revoked by client`, …).
    pub reason: String,
    /// When.
    pub revoked_at: OffsetDateTime,
    /// When every token it covers has expired: the record can go.
    pub expires_at: OffsetDateTime,
}

/// The revocations a node holds in memory.
#[derive(Debug, Default)]
pub struct RevokedSet {
    credentials: std::collections::HashSet<String>,
    tokens: std::collections::HashSet<String>,
}

impl RevokedSet {
    /// Builds the set from stored records.
    pub fn new(records: &[Revocation]) -> Self {
        let mut set = Self::default();
        for record in records {
            match record.kind {
                RevocationKind::Credential => set.credentials.insert(record.value.to_ascii_lowercase()),
                RevocationKind::Token => set.tokens.insert(record.value.clone()),
            };
        }
        set
    }

    /// Whether a token with these claims is revoked.
    pub fn covers(&self, credential_id: &str, uti: &str) -> bool {
        (!credential_id.is_empty() && self.credentials.contains(&credential_id.to_ascii_lowercase()))
            || (!uti.is_empty() && self.tokens.contains(uti))
    }
}
