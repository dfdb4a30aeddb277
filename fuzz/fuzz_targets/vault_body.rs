//! The Key Vault set-secret body: parsed and held to Key Vault's limits, or refused; never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = clavis_server::keyvault::fuzz_set_body(data);
});
