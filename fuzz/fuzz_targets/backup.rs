//! The backup file format: any bytes are refused (or, impossibly, opened) without a panic; nothing
//! the fuzzer makes decrypts under a master key it does not hold.
#![no_main]
use std::sync::OnceLock;

use clavis_crypto::MasterKey;

fn master() -> &'static MasterKey {
    static KEY: OnceLock<MasterKey> = OnceLock::new();
    KEY.get_or_init(MasterKey::generate)
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = clavis_store::backup::header(data);
    assert!(clavis_store::backup::open(data, master()).is_err(), "a made-up backup opened");
});
