//! Randomness from the operating system's CSPRNG (through aws-lc-rs).

use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};

/// `N` random bytes: `8 * N` bits of entropy.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // The system RNG only fails when the OS cannot supply entropy; continuing without it would be
    // worse than stopping, so this is the one place a failure aborts.
    #[allow(clippy::expect_used)]
    SystemRandom::new().fill(&mut out).expect("operating system CSPRNG unavailable");
    out
}

/// A random version-4 GUID (122 bits of entropy), the wire form of tenant, application and
/// credential ids.
pub fn guid() -> String {
    let mut b = bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = crate::hex(&b);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// 32 lower-case hex characters (128 bits), the form of Key Vault version ids and trace ids.
pub fn hex128() -> String {
    crate::hex(&bytes::<16>())
}
