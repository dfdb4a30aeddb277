//! Every cryptographic primitive Clavis uses, in one crate that can be read in an hour.
//!
//! **Invariant:** no other Clavis crate depends on a cryptographic library. Everything here is
//! built on `aws-lc-rs` (a FIPS-validated, audited library), with RustCrypto's `argon2` for people's passwords; nothing is home-made beyond the
//! encodings around it (the client-secret text format and compact JWS assembly).
//!
//! | module | guarantees |
//! |---|---|
//! | [`random`] | CSPRNG output; every generator states its entropy |
//! | [`client_secret`] | plain secrets exist only in [`PlainClientSecret`], shown once; storage sees an HMAC tag |
//! | [`envelope`] | AES-256-GCM with a key id beside and associated data bound to every ciphertext |
//! | [`signing`] | JWS signing keys (RS256, ES256, EdDSA) parsed once, their JWKs, and verification |
//! | [`password`] | people's passwords hashed with Argon2id (slow on purpose), portal session tokens |
//! | [`tls`] | the development CA and server certificate for zero-setup HTTPS |
//!
//! Every type that holds key material prints only its kind and id in `Debug`.

pub mod client_secret;
pub mod envelope;
pub mod password;
pub mod random;
pub mod signing;
pub mod tls;
pub mod webhook;

pub use client_secret::{HashedClientSecret, PlainClientSecret, SecretHasher};
pub use envelope::{DataKey, MasterKey};
pub use signing::{Algorithm, SigningKey, VerifyingKey};

/// An error from a cryptographic operation. It never carries key material or plaintext.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// A ciphertext did not authenticate: wrong key, wrong associated data, or tampered bytes.
    #[error("ciphertext failed to authenticate")]
    Decrypt,
    /// Stored key material or an encoded value could not be parsed.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// A signature did not verify.
    #[error("signature verification failed")]
    BadSignature,
    /// The underlying library refused an operation (for example key generation).
    #[error("cryptographic operation failed: {0}")]
    Library(&'static str),
}

/// SHA-256 of `data`, used for the audit hash chain and for cache keys of verified tokens.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Lower-case hex, for digests shown to people (audit hashes, key ids).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0x0f)] as char);
    }
    out
}

/// Base64url without padding, the encoding of JWS segments and JWK members.
pub fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url without padding.
pub fn b64url_decode(text: &str) -> Result<Vec<u8>, CryptoError> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).map_err(|_| CryptoError::Malformed("base64url"))
}
