//! People's passwords and portal session tokens.
//!
//! Client secrets are 256-bit random values, so a keyed fast hash protects them; a person's
//! password has little entropy and must be expensive to guess offline, so it is hashed with
//! Argon2id (RFC 9106) at OWASP's recommended cost (19 MiB, 2 passes, 1 lane), stored as a PHC
//! string that carries its own salt and parameters (old hashes keep verifying if the cost rises).
//!
//! A portal session token is 256 random bits shown only to the browser (in a cookie); the store
//! keeps its SHA-256, so a copy of the database opens no session.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;

use crate::CryptoError;

/// The shortest password accepted for a person.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// The longest password accepted (bounds the hashing work an attacker can ask for).
pub const MAX_PASSWORD_BYTES: usize = 1024;

fn hasher() -> Argon2<'static> {
    // 19 MiB, t=2, p=1: OWASP's Password Storage Cheat Sheet's first Argon2id configuration.
    let params = Params::new(19 * 1024, 2, 1, None).expect("static Argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`). Slow on
/// purpose: call it off the async runtime.
pub fn hash_password(password: &str) -> Result<String, CryptoError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(CryptoError::Malformed("password (too long)"));
    }
    hasher().hash_password(password.as_bytes()).map(|hash| hash.to_string()).map_err(|_| CryptoError::Library("argon2 hashing"))
}

/// Whether `password` matches the PHC string `stored`. A malformed `stored` never matches.
/// Slow on purpose: call it off the async runtime.
pub fn verify_password(password: &str, stored: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    match PasswordHash::new(stored) {
        Ok(parsed) => hasher().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// A PHC string of a random password nobody knows, verified against when a user name is unknown
/// or disabled so that every sign-in attempt costs the same work.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&generate_password()).expect("hashing a generated password succeeds"))
}

/// A new random password for a person (24 characters of base64url, 144 bits), shown once.
pub fn generate_password() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(crate::random::bytes::<18>())
}

/// A new session token (256 bits, base64url) and the hex SHA-256 the store keeps.
pub fn new_session_token() -> (String, String) {
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(crate::random::bytes::<32>());
    let hash = session_token_hash(&token);
    (token, hash)
}

/// The stored form of a session token.
pub fn session_token_hash(token: &str) -> String {
    crate::hex(&crate::sha256(token.as_bytes()))
}

/// Constant-time comparison of two short strings (CSRF tokens).
pub fn equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let hash = hash_password("correct horse battery staple").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(verify_password("correct horse battery staple", &hash));
        assert!(!verify_password("correct horse battery stapl", &hash));
        assert!(!verify_password("correct horse battery staple", "not a phc string"));
        assert_ne!(hash, hash_password("correct horse battery staple").unwrap(), "salted");
        assert!(!verify_password("x", decoy_hash()));
        assert!(hash_password(&"a".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
    }

    #[test]
    fn session_tokens_are_random_and_stored_hashed() {
        let (token, hash) = new_session_token();
        assert_eq!(token.len(), 43);
        assert_eq!(hash, session_token_hash(&token));
        assert_ne!(new_session_token().0, token);
        assert!(equal("abc", "abc") && !equal("abc", "abd") && !equal("abc", "ab"));
    }
}
