//! Envelope encryption: AES-256-GCM under a key id, with associated data binding each ciphertext
//! to the record it belongs to.
//!
//! Key hierarchy (see `SECURITY.md`):
//!
//! ```text
//! master key (outside the store: file, environment or operator)
//!   └── wraps data keys and the client-secret HMAC key        (table `keys`)
//!         └── a data key encrypts signing keys, later vault values (with their record's AAD)
//! ```
//!
//! Rotating the master key re-wraps only the rows of `keys`, so it is quick and can run while
//! the server serves.
//!
//! Sealed format, version 1: `[0x01][12-byte random nonce][ciphertext][16-byte tag]`. Random
//! 96-bit nonces are safe for far more messages than one key ever seals here (NIST SP 800-38D
//! §8.3 bounds a key at 2^32 random-nonce invocations).

use std::fmt;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};

use crate::{random, CryptoError};

const FORMAT_V1: u8 = 1;
const TAG_LEN: usize = 16;

/// An AES-256-GCM key with its id.
struct AeadKey {
    id: String,
    key: LessSafeKey,
}

impl AeadKey {
    fn new(id: String, bytes: &[u8; 32]) -> Result<Self, CryptoError> {
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| CryptoError::Library("aes key"))?;
        Ok(Self { id, key: LessSafeKey::new(unbound) })
    }

    fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let nonce_bytes = random::bytes::<NONCE_LEN>();
        let mut out = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + TAG_LEN);
        out.push(FORMAT_V1);
        out.extend_from_slice(&nonce_bytes);
        let mut body = plaintext.to_vec();
        // Sealing only fails for inputs beyond GCM's 64 GiB limit, which no Clavis record approaches.
        #[allow(clippy::expect_used)]
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce_bytes), Aad::from(aad), &mut body)
            .expect("AES-GCM seal of a bounded record");
        out.extend_from_slice(&body);
        out
    }

    fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        // Length check before slicing: a truncated record is an error, never a panic.
        if sealed.len() < 1 + NONCE_LEN + TAG_LEN || sealed[0] != FORMAT_V1 {
            return Err(CryptoError::Malformed("sealed value"));
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[1..1 + NONCE_LEN]);
        let mut body = sealed[1 + NONCE_LEN..].to_vec();
        let plain =
            self.key.open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut body).map_err(|_| CryptoError::Decrypt)?;
        Ok(plain.to_vec())
    }
}

/// The root of the key hierarchy: 256 bits kept outside the store.
pub struct MasterKey {
    inner: AeadKey,
    bytes: [u8; 32],
}

impl MasterKey {
    /// A new random master key (256 bits).
    pub fn generate() -> Self {
        Self::from_bytes(random::bytes::<32>())
    }

    /// Builds the key from its 32 bytes. Its id is derived from the key, so a store can tell
    /// which master key wrapped its rows without holding the key.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let mut id_input = b"clavis-master-key-id:".to_vec();
        id_input.extend_from_slice(&bytes);
        let id = format!("mk-{}", &crate::hex(&crate::sha256(&id_input))[..16]);
        // A 32-byte key is always accepted by AES-256-GCM.
        #[allow(clippy::expect_used)]
        let inner = AeadKey::new(id, &bytes).expect("32-byte AES key");
        Self { inner, bytes }
    }

    /// Parses the text form: 64 hex digits or standard/url-safe base64 of 32 bytes, surrounding
    /// white space ignored.
    pub fn parse(text: &str) -> Result<Self, CryptoError> {
        use base64::Engine as _;
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| CryptoError::Malformed("master key"))?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
                .map_err(|_| CryptoError::Malformed("master key"))?
        };
        let array: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::Malformed("master key (must be 32 bytes)"))?;
        Ok(Self::from_bytes(array))
    }

    /// The text form written to the master key file (base64 of the 32 bytes).
    pub fn to_text(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(self.bytes)
    }

    /// The key's id, stored beside every row it wraps.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// Wraps a 32-byte key, binding it to `label` (the wrapped key's id and purpose).
    pub fn wrap(&self, key: &[u8; 32], label: &str) -> Vec<u8> {
        self.inner.seal(key, label.as_bytes())
    }

    /// Unwraps a key wrapped by [`MasterKey::wrap`] with the same label.
    pub fn unwrap_key(&self, wrapped: &[u8], label: &str) -> Result<[u8; 32], CryptoError> {
        let plain = self.inner.open(wrapped, label.as_bytes())?;
        plain.try_into().map_err(|_| CryptoError::Malformed("wrapped key length"))
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.inner.id)
    }
}

/// A data-encryption key: encrypts records (signing keys, vault values) under their AAD.
pub struct DataKey {
    inner: AeadKey,
}

impl DataKey {
    /// Builds a data key from its unwrapped bytes.
    pub fn new(id: String, bytes: &[u8; 32]) -> Result<Self, CryptoError> {
        Ok(Self { inner: AeadKey::new(id, bytes)? })
    }

    /// The id stored beside every ciphertext this key made.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// Encrypts `plaintext`, bound to `aad` (the identity of the record it is stored in).
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        self.inner.seal(plaintext, aad)
    }

    /// Decrypts a value sealed with the same key and associated data.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.inner.open(sealed, aad)
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataKey({})", self.inner.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let key = DataKey::new("dk-1".into(), &[3u8; 32]).unwrap();
        let sealed = key.seal(b"value", b"tenant/vault/name/v1");
        assert_eq!(key.open(&sealed, b"tenant/vault/name/v1").unwrap(), b"value");
        assert_eq!(key.open(&sealed, b"tenant/vault/name/v2"), Err(CryptoError::Decrypt));
    }

    #[test]
    fn tampering_any_byte_fails() {
        let key = DataKey::new("dk-1".into(), &[3u8; 32]).unwrap();
        let sealed = key.seal(b"some secret value", b"aad");
        for i in 0..sealed.len() {
            let mut changed = sealed.clone();
            changed[i] ^= 0x01;
            assert!(key.open(&changed, b"aad").is_err(), "byte {i}");
        }
        for len in 0..sealed.len() {
            assert!(key.open(&sealed[..len], b"aad").is_err(), "truncated to {len}");
        }
    }

    /// Property: for random keys, plaintexts and associated data, changing any byte of the
    /// ciphertext (by any non-zero mask), any byte of the associated data, or the key makes
    /// opening fail; the untouched ciphertext opens to the plaintext.
    #[test]
    fn tampering_any_byte_fails_for_random_inputs() {
        for case in 0..48 {
            let seed = crate::random::bytes::<64>();
            let key = DataKey::new(format!("dk-{case}"), &crate::random::bytes::<32>()).unwrap();
            let plaintext = &seed[..usize::from(seed[0]) % 64];
            let aad = &seed[32..32 + usize::from(seed[1]) % 32];
            let sealed = key.seal(plaintext, aad);
            assert_eq!(key.open(&sealed, aad).unwrap(), plaintext);
            for i in 0..sealed.len() {
                let mut changed = sealed.clone();
                changed[i] ^= crate::random::bytes::<1>()[0].max(1);
                assert!(key.open(&changed, aad).is_err(), "case {case}, byte {i}");
            }
            for i in 0..aad.len() {
                let mut other = aad.to_vec();
                other[i] ^= 0x80;
                assert!(key.open(&sealed, &other).is_err(), "case {case}, aad byte {i}");
            }
            let stranger = DataKey::new("dk-x".into(), &crate::random::bytes::<32>()).unwrap();
            assert!(stranger.open(&sealed, aad).is_err());
        }
    }

    #[test]
    fn master_key_wraps_and_parses() {
        let master = MasterKey::generate();
        let again = MasterKey::parse(&master.to_text()).unwrap();
        assert_eq!(master.id(), again.id());
        let wrapped = master.wrap(&[9u8; 32], "dk-1/dek");
        assert_eq!(again.unwrap_key(&wrapped, "dk-1/dek").unwrap(), [9u8; 32]);
        assert!(again.unwrap_key(&wrapped, "dk-2/dek").is_err());
        assert!(MasterKey::generate().unwrap_key(&wrapped, "dk-1/dek").is_err());
        assert!(MasterKey::parse("too short").is_err());
        let hex = "00".repeat(32);
        assert!(MasterKey::parse(&hex).is_ok());
        assert!(!format!("{master:?}").contains(&master.to_text()));
    }
}
