//! Client secrets: generated here, shown once, stored only as an HMAC tag.
//!
//! # The text format (version 1) — NEVER CHANGE IT FOR EXISTING SECRETS
//!
//! ```text
//!   abc8Q~<32 random characters><6 checksum characters>      44 characters in all
//!   ^^^                                                      hint: 3 random characters (Entra's `hint`)
//!      ^                                                     format digit, '8' for version 1
//!       ^^                                                   the literal marker `Q~`
//! ```
//!
//! * The shape matches what secret scanners already look for in Entra client secrets
//!   (`[a-zA-Z0-9_~.]{3}\dQ~[a-zA-Z0-9_~.-]{31,34}`), so a leaked Clavis secret is flagged by
//!   tools people already run.
//! * Every character comes from a 64-symbol alphabet (`A-Z a-z 0-9 _ ~`), all of them unreserved
//!   in URLs and in both classes of that pattern.
//! * 35 random characters give **210 bits** of entropy.
//! * The last 6 characters are a 36-bit checksum (SHA-256 over a domain label and the first 38
//!   characters), so a scanner can tell a Clavis secret from random text offline
//!   ([`PlainClientSecret::is_well_formed`]), with a false-positive rate of 2^-36.
//!
//! # Storage
//!
//! Secrets have full entropy, so they are stored as HMAC-SHA256 under a server key
//! ([`SecretHasher`]) rather than with a slow password hash: a slow hash would cap the token
//! endpoint at a few requests per second per core and make it a CPU denial-of-service lever.

use std::fmt;

use aws_lc_rs::{constant_time, hmac};

use crate::random;

/// The 64-symbol alphabet of every character of a secret.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_~";
/// Format digit and marker of version 1. NEVER CHANGE for existing secrets.
const MARKER_V1: &str = "8Q~";
const HINT_LEN: usize = 3;
const BODY_LEN: usize = 32;
const CHECK_LEN: usize = 6;
/// Total length of a version-1 secret.
pub const SECRET_LEN: usize = HINT_LEN + MARKER_V1.len() + BODY_LEN + CHECK_LEN;
const CHECKSUM_LABEL: &[u8] = b"clavis-client-secret-v1:";

/// A client secret in clear. It exists only between generation and the response that shows it
/// once; `Debug` prints nothing of it and it has no `Display`.
pub struct PlainClientSecret(String);

impl PlainClientSecret {
    /// Generates a new version-1 secret (210 bits of entropy).
    pub fn generate() -> Self {
        let random = random::bytes::<{ HINT_LEN + BODY_LEN }>();
        let mut text = String::with_capacity(SECRET_LEN);
        for byte in &random[..HINT_LEN] {
            text.push(symbol(*byte));
        }
        text.push_str(MARKER_V1);
        for byte in &random[HINT_LEN..] {
            text.push(symbol(*byte));
        }
        let check = checksum(text.as_bytes());
        text.push_str(&check);
        Self(text)
    }

    /// A value chosen by the caller (allowed only where policy permits custom secrets): 16 to 256
    /// printable ASCII characters.
    pub fn from_caller(text: String) -> Option<Self> {
        ((16..=256).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic())).then_some(Self(text))
    }

    /// The secret's text, for the one response that shows it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Entra's `hint`: the first three characters.
    pub fn hint(&self) -> String {
        self.0.chars().take(HINT_LEN).collect()
    }

    /// Whether `text` is a well-formed Clavis secret (shape and checksum), without knowing any key.
    /// This is what a secret scanner runs offline.
    pub fn is_well_formed(text: &str) -> bool {
        let bytes = text.as_bytes();
        if bytes.len() != SECRET_LEN || !bytes.iter().all(|b| ALPHABET.contains(b)) {
            return false;
        }
        let (head, check) = text.split_at(SECRET_LEN - CHECK_LEN);
        if head.get(HINT_LEN..HINT_LEN + MARKER_V1.len()) != Some(MARKER_V1) {
            return false;
        }
        constant_time::verify_slices_are_equal(checksum(head.as_bytes()).as_bytes(), check.as_bytes()).is_ok()
    }
}

impl fmt::Debug for PlainClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlainClientSecret(<redacted>)")
    }
}

fn symbol(byte: u8) -> char {
    // 256 is a multiple of 64, so the low six bits of a uniform byte are uniform.
    ALPHABET[usize::from(byte & 0x3f)] as char
}

fn checksum(head: &[u8]) -> String {
    let mut input = Vec::with_capacity(CHECKSUM_LABEL.len() + head.len());
    input.extend_from_slice(CHECKSUM_LABEL);
    input.extend_from_slice(head);
    let digest = crate::sha256(&input);
    // 36 bits: the first 4.5 bytes, six symbols of six bits each.
    let bits = u64::from_be_bytes([0, 0, 0, digest[0], digest[1], digest[2], digest[3], digest[4]]) >> 4;
    (0..CHECK_LEN).rev().map(|i| ALPHABET[((bits >> (6 * i)) & 0x3f) as usize] as char).collect()
}

/// What storage holds for a client secret: its HMAC-SHA256 tag under the server's secret key.
/// `Debug` prints only the type name.
#[derive(Clone, PartialEq, Eq)]
pub struct HashedClientSecret(Vec<u8>);

impl HashedClientSecret {
    /// Rebuilds a stored tag.
    pub fn from_stored(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The tag's bytes, for storage.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for HashedClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashedClientSecret")
    }
}

/// The keyed hash of client secrets. The 256-bit key is itself stored wrapped under the master key.
pub struct SecretHasher {
    key: hmac::Key,
}

impl SecretHasher {
    /// Builds the hasher from the 32-byte key unwrapped at start.
    pub fn new(key_bytes: &[u8; 32]) -> Self {
        Self { key: hmac::Key::new(hmac::HMAC_SHA256, key_bytes) }
    }

    /// The tag of a newly generated secret, for storage.
    pub fn hash(&self, secret: &PlainClientSecret) -> HashedClientSecret {
        self.hash_presented(secret.expose().as_bytes())
    }

    /// The tag of a secret presented by a client. Computed once per request, then compared with
    /// every stored tag of the application by [`SecretHasher::matches`].
    pub fn hash_presented(&self, presented: &[u8]) -> HashedClientSecret {
        HashedClientSecret(hmac::sign(&self.key, presented).as_ref().to_vec())
    }

    /// A stable pseudonym for a value that may be sensitive and must still be correlatable in
    /// logs: a client id that is not one (often a secret pasted into the wrong field). The same
    /// value always gives the same pseudonym on every node; without the server key it reveals
    /// nothing. Domain-separated from secret tags, so a pseudonym never equals a stored tag.
    pub fn pseudonym(&self, value: &[u8]) -> String {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(b"clavis:pseudonym\0");
        context.update(value);
        let tag = context.sign();
        let hex: String = tag.as_ref()[..12].iter().map(|b| format!("{b:02x}")).collect();
        format!("hmac:{hex}")
    }

    /// Constant-time comparison of two tags.
    pub fn matches(presented: &HashedClientSecret, stored: &HashedClientSecret) -> bool {
        constant_time::verify_slices_are_equal(&presented.0, &stored.0).is_ok()
    }
}

impl fmt::Debug for SecretHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHasher(HMAC-SHA256)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_stable_keyed_and_not_secret_tags() {
        let hasher = SecretHasher::new(&[7; 32]);
        let other = SecretHasher::new(&[8; 32]);
        let value = b"abc8Q~not-a-client-id";
        assert_eq!(hasher.pseudonym(value), hasher.pseudonym(value));
        assert_ne!(hasher.pseudonym(value), other.pseudonym(value));
        assert_ne!(hasher.pseudonym(value), hasher.pseudonym(b"another value"));
        let hex = hasher.pseudonym(value).trim_start_matches("hmac:").to_string();
        let tag: String = hasher.hash_presented(value).0[..12].iter().map(|b| format!("{b:02x}")).collect();
        assert_ne!(hex, tag, "a pseudonym must not reveal the secret's stored tag");
        assert!(!hasher.pseudonym(value).contains("8Q~"));
    }

    #[test]
    fn generated_secrets_have_the_documented_shape() {
        for _ in 0..200 {
            let secret = PlainClientSecret::generate();
            let text = secret.expose();
            assert_eq!(text.len(), SECRET_LEN);
            assert_eq!(&text[3..6], "8Q~");
            assert!(PlainClientSecret::is_well_formed(text), "{text}");
            assert_eq!(secret.hint(), &text[..3]);
        }
    }

    #[test]
    fn checksum_rejects_any_single_change() {
        let secret = PlainClientSecret::generate();
        let text = secret.expose().to_string();
        for position in (0..text.len()).filter(|p| !(3..6).contains(p)) {
            let mut bytes = text.clone().into_bytes();
            bytes[position] = if bytes[position] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(bytes).unwrap();
            assert!(!PlainClientSecret::is_well_formed(&changed), "position {position}");
        }
        assert!(!PlainClientSecret::is_well_formed("short"));
        assert!(!PlainClientSecret::is_well_formed(&text.replace("8Q~", "7Q~")));
    }

    #[test]
    fn hashes_match_only_the_same_secret() {
        let hasher = SecretHasher::new(&[7u8; 32]);
        let a = PlainClientSecret::generate();
        let b = PlainClientSecret::generate();
        let stored = hasher.hash(&a);
        assert!(SecretHasher::matches(&hasher.hash_presented(a.expose().as_bytes()), &stored));
        assert!(!SecretHasher::matches(&hasher.hash_presented(b.expose().as_bytes()), &stored));
        let other_key = SecretHasher::new(&[8u8; 32]);
        assert!(!SecretHasher::matches(&other_key.hash(&a), &stored));
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let secret = PlainClientSecret::generate();
        assert!(!format!("{secret:?}").contains(secret.expose()));
        let hasher = SecretHasher::new(&[1u8; 32]);
        assert_eq!(format!("{:?}", hasher.hash(&secret)), "HashedClientSecret");
    }
}
