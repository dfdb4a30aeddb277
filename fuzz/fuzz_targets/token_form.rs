//! The token endpoint's form parser: any body is parsed or refused, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = clavis_server::entra::fuzz_token_form(data);
});
