//! JWT parsing and verification: any text is parsed or refused without a panic, and nothing the
//! fuzzer makes verifies under a key it does not hold.
#![no_main]
use std::sync::OnceLock;

use clavis_crypto::signing::UnverifiedJws;
use clavis_crypto::{Algorithm, SigningKey};

fn key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate(Algorithm::EdDSA).expect("key generation"))
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(jws) = UnverifiedJws::parse(text) {
        assert!(key().verifying_key().verify(&jws).is_err(), "a forged token verified");
    }
});
