//! The client-secret format: any text is judged well formed or not without a panic (this is what
//! a secret scanner runs offline); a caller-chosen value is accepted only within its bounds; and
//! the keyed hash of any presented value never equals the hash of another value.
#![no_main]
use std::sync::OnceLock;

use clavis_crypto::{PlainClientSecret, SecretHasher};

fn hasher() -> &'static SecretHasher {
    static HASHER: OnceLock<SecretHasher> = OnceLock::new();
    HASHER.get_or_init(|| SecretHasher::new(&[7u8; 32]))
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let presented = hasher().hash_presented(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if PlainClientSecret::is_well_formed(text) {
            assert_eq!(text.len(), clavis_crypto::client_secret::SECRET_LEN);
        }
        if let Some(secret) = PlainClientSecret::from_caller(text.to_string()) {
            assert!((16..=256).contains(&secret.expose().len()));
            assert!(SecretHasher::matches(&presented, &hasher().hash(&secret)), "the stored and the presented hash of one value agree");
        }
    }
});
