//! JWS signing keys for access tokens, their public JWKs, and signature verification.
//!
//! Keys are parsed once when loaded and kept parsed: re-parsing an RSA private key costs more
//! than one signature with it, and the token endpoint signs on every request.
//!
//! Verification has an algorithm allow-list of exactly the three signing algorithms below; a
//! token's `alg` must equal the algorithm of the key its `kid` names (no `none`, no HMAC).

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, ParsedPublicKey};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{b64url, b64url_decode, CryptoError};

/// A JWS signing algorithm Clavis issues tokens with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 and a 2048-bit key: what Entra issues, the default.
    RS256,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// Ed25519.
    EdDSA,
}

impl Algorithm {
    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::ES256 => "ES256",
            Self::EdDSA => "EdDSA",
        }
    }

    /// Parses the JOSE name (case-sensitive, as JOSE is).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "RS256" => Some(Self::RS256),
            "ES256" => Some(Self::ES256),
            "EdDSA" => Some(Self::EdDSA),
            _ => None,
        }
    }
}

enum Private {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A private signing key with its `kid`, parsed once.
pub struct SigningKey {
    private: Private,
    pkcs8: Vec<u8>,
    verifying: VerifyingKey,
}

impl SigningKey {
    /// Generates a new key. RSA keys are 2048 bits, as Entra's.
    pub fn generate(algorithm: Algorithm) -> Result<Self, CryptoError> {
        let pkcs8 = match algorithm {
            Algorithm::RS256 => RsaKeyPair::generate(KeySize::Rsa2048)
                .and_then(|k| k.as_der().map(|d| d.as_ref().to_vec()))
                .map_err(|_| CryptoError::Library("rsa keygen"))?,
            Algorithm::ES256 => EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                .and_then(|k| k.to_pkcs8v1().map(|d| d.as_ref().to_vec()))
                .map_err(|_| CryptoError::Library("ecdsa keygen"))?,
            Algorithm::EdDSA => Ed25519KeyPair::generate()
                .and_then(|k| k.to_pkcs8().map(|d| d.as_ref().to_vec()))
                .map_err(|_| CryptoError::Library("ed25519 keygen"))?,
        };
        Self::from_pkcs8(algorithm, &pkcs8)
    }

    /// Loads a key from its PKCS#8 DER (as decrypted from the store).
    pub fn from_pkcs8(algorithm: Algorithm, pkcs8: &[u8]) -> Result<Self, CryptoError> {
        let malformed = |_| CryptoError::Malformed("signing key");
        let (private, public) = match algorithm {
            Algorithm::RS256 => {
                let key = RsaKeyPair::from_pkcs8(pkcs8).map_err(malformed)?;
                let public = key.public_key();
                let n = public.modulus().big_endian_without_leading_zero().to_vec();
                let e = public.exponent().big_endian_without_leading_zero().to_vec();
                let der = public.as_ref().to_vec();
                (Private::Rsa(key), PublicMaterial::Rsa { n, e, der })
            }
            Algorithm::ES256 => {
                let key = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).map_err(malformed)?;
                let point = key.public_key().as_ref().to_vec();
                (Private::Ec(key), PublicMaterial::Ec { point })
            }
            Algorithm::EdDSA => {
                let key = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(malformed)?;
                let x = key.public_key().as_ref().to_vec();
                (Private::Ed(key), PublicMaterial::Ed { x })
            }
        };
        let verifying = VerifyingKey::from_material(algorithm, public)?;
        Ok(Self { private, pkcs8: pkcs8.to_vec(), verifying })
    }

    /// The key's PKCS#8 DER, to be sealed before storage. Never log it.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The key id: the RFC 7638 JWK thumbprint.
    pub fn kid(&self) -> &str {
        &self.verifying.kid
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.verifying.algorithm
    }

    /// The public half.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying
    }

    /// The base64url JWS header for this key. `with_x5t` adds `x5t`, as Entra's v1 tokens carry.
    pub fn header_b64(&self, with_x5t: bool) -> String {
        let mut header = json!({"typ": "JWT", "alg": self.algorithm().as_str(), "kid": self.kid()});
        if with_x5t {
            header["x5t"] = Value::String(self.kid().to_string());
        }
        b64url(header.to_string().as_bytes())
    }

    /// Signs `payload` under a header made by [`SigningKey::header_b64`], returning a compact JWS.
    pub fn sign_compact(&self, header_b64: &str, payload: &[u8]) -> Result<String, CryptoError> {
        let mut token = String::with_capacity(header_b64.len() + payload.len() * 4 / 3 + 400);
        token.push_str(header_b64);
        token.push('.');
        token.push_str(&b64url(payload));
        let signature = self.sign(token.as_bytes())?;
        token.push('.');
        token.push_str(&b64url(&signature));
        Ok(token)
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match &self.private {
            Private::Rsa(key) => {
                let mut out = vec![0u8; key.public_modulus_len()];
                key.sign(&signature::RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut out)
                    .map_err(|_| CryptoError::Library("rsa sign"))?;
                Ok(out)
            }
            Private::Ec(key) => {
                key.sign(&SystemRandom::new(), message).map(|s| s.as_ref().to_vec()).map_err(|_| CryptoError::Library("ecdsa sign"))
            }
            Private::Ed(key) => Ok(key.sign(message).as_ref().to_vec()),
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({} {})", self.algorithm().as_str(), self.kid())
    }
}

enum PublicMaterial {
    Rsa { n: Vec<u8>, e: Vec<u8>, der: Vec<u8> },
    Ec { point: Vec<u8> },
    Ed { x: Vec<u8> },
}

/// A public verification key with its JWK, parsed once.
pub struct VerifyingKey {
    algorithm: Algorithm,
    kid: String,
    jwk: Value,
    parsed: ParsedPublicKey,
}

impl VerifyingKey {
    fn from_material(algorithm: Algorithm, material: PublicMaterial) -> Result<Self, CryptoError> {
        // RFC 7638: the thumbprint input has the required members in lexicographic order.
        let (thumb_input, mut jwk, parsed) = match &material {
            PublicMaterial::Rsa { n, e, der } => (
                format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, b64url(e), b64url(n)),
                json!({"kty": "RSA", "n": b64url(n), "e": b64url(e)}),
                ParsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, der),
            ),
            PublicMaterial::Ec { point } => {
                if point.len() != 65 {
                    return Err(CryptoError::Malformed("P-256 public key"));
                }
                let (x, y) = (b64url(&point[1..33]), b64url(&point[33..65]));
                (
                    format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#),
                    json!({"kty": "EC", "crv": "P-256", "x": x, "y": y}),
                    ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point),
                )
            }
            PublicMaterial::Ed { x } => (
                format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b64url(x)),
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64url(x)}),
                ParsedPublicKey::new(&signature::ED25519, x),
            ),
        };
        let parsed = parsed.map_err(|_| CryptoError::Malformed("public key"))?;
        let kid = b64url(&crate::sha256(thumb_input.as_bytes()));
        jwk["use"] = json!("sig");
        jwk["alg"] = json!(algorithm.as_str());
        jwk["kid"] = json!(kid);
        if algorithm == Algorithm::RS256 {
            // Entra publishes x5t beside kid; clients that match on either find the key.
            jwk["x5t"] = json!(kid);
        }
        Ok(Self { algorithm, kid, jwk, parsed })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Rebuilds a verifying key from a published JWK (Ed25519 or P-256 keys).
    pub fn from_jwk(jwk: &Value) -> Result<Self, CryptoError> {
        let field = |name: &str| jwk.get(name).and_then(Value::as_str).ok_or(CryptoError::Malformed("JWK")).and_then(b64url_decode);
        match (jwk.get("kty").and_then(Value::as_str), jwk.get("crv").and_then(Value::as_str)) {
            (Some("OKP"), Some("Ed25519")) => Self::from_material(Algorithm::EdDSA, PublicMaterial::Ed { x: field("x")? }),
            (Some("EC"), Some("P-256")) => {
                let mut point = vec![4u8];
                point.extend(field("x")?);
                point.extend(field("y")?);
                Self::from_material(Algorithm::ES256, PublicMaterial::Ec { point })
            }
            _ => Err(CryptoError::Malformed("JWK (only Ed25519 and P-256 keys are supported)")),
        }
    }

    /// The public JWK (RFC 7517), as published in the JWKS.
    pub fn jwk(&self) -> &Value {
        &self.jwk
    }

    /// Verifies a parsed compact JWS against this key and returns its payload bytes.
    pub fn verify(&self, jws: &UnverifiedJws<'_>) -> Result<Vec<u8>, CryptoError> {
        if jws.algorithm != Some(self.algorithm) {
            return Err(CryptoError::BadSignature);
        }
        self.parsed.verify_sig(jws.signing_input.as_bytes(), &jws.signature).map_err(|_| CryptoError::BadSignature)?;
        b64url_decode(jws.payload_b64)
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({} {})", self.algorithm.as_str(), self.kid)
    }
}

/// A compact JWS split into its parts, before any trust is placed in it.
#[derive(Debug)]
pub struct UnverifiedJws<'a> {
    /// The header's `alg`, if it is one of Clavis's algorithms.
    pub algorithm: Option<Algorithm>,
    /// The header's `kid`.
    pub kid: String,
    signing_input: &'a str,
    payload_b64: &'a str,
    signature: Vec<u8>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: String,
}

impl<'a> UnverifiedJws<'a> {
    /// Splits and decodes a compact JWS. Bounded: tokens over 16 KiB are refused before decoding.
    pub fn parse(token: &'a str) -> Result<Self, CryptoError> {
        if token.len() > 16 * 1024 {
            return Err(CryptoError::Malformed("token too long"));
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(CryptoError::Malformed("compact JWS"));
        };
        let header: Header = serde_json::from_slice(&b64url_decode(header_b64)?).map_err(|_| CryptoError::Malformed("JWS header"))?;
        let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
        Ok(Self {
            algorithm: Algorithm::parse(&header.alg),
            kid: header.kid,
            signing_input,
            payload_b64,
            signature: b64url_decode(signature_b64)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_signs_and_verifies() {
        for algorithm in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
            let key = SigningKey::generate(algorithm).unwrap();
            let again = SigningKey::from_pkcs8(algorithm, key.pkcs8()).unwrap();
            assert_eq!(key.kid(), again.kid());
            let token = key.sign_compact(&key.header_b64(false), br#"{"sub":"x"}"#).unwrap();
            let jws = UnverifiedJws::parse(&token).unwrap();
            assert_eq!(jws.kid, key.kid());
            assert_eq!(again.verifying_key().verify(&jws).unwrap(), br#"{"sub":"x"}"#);

            // A changed payload fails.
            let mut parts: Vec<&str> = token.split('.').collect();
            let forged = b64url(br#"{"sub":"y"}"#);
            parts[1] = &forged;
            let forged_token = parts.join(".");
            let jws = UnverifiedJws::parse(&forged_token).unwrap();
            assert!(key.verifying_key().verify(&jws).is_err());
        }
    }

    #[test]
    fn algorithm_confusion_is_refused() {
        let rsa = SigningKey::generate(Algorithm::RS256).unwrap();
        let ed = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let token = ed.sign_compact(&ed.header_b64(false), b"{}").unwrap();
        let jws = UnverifiedJws::parse(&token).unwrap();
        assert!(rsa.verifying_key().verify(&jws).is_err());
        let none = format!("{}.{}.", b64url(br#"{"alg":"none"}"#), b64url(b"{}"));
        let jws = UnverifiedJws::parse(&none).unwrap();
        assert_eq!(jws.algorithm, None);
        assert!(ed.verifying_key().verify(&jws).is_err());
    }

    #[test]
    fn jwks_round_trip() {
        for algorithm in [Algorithm::EdDSA, Algorithm::ES256] {
            let key = SigningKey::generate(algorithm).unwrap();
            let again = VerifyingKey::from_jwk(key.verifying_key().jwk()).unwrap();
            assert_eq!(again.kid(), key.kid());
            let token = key.sign_compact(&key.header_b64(false), b"{}").unwrap();
            assert!(again.verify(&UnverifiedJws::parse(&token).unwrap()).is_ok());
        }
    }

    #[test]
    fn jwk_has_the_thumbprint_kid() {
        let key = SigningKey::generate(Algorithm::ES256).unwrap();
        let jwk = key.verifying_key().jwk();
        assert_eq!(jwk["kid"], key.kid());
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(key.kid().len(), 43);
    }
}
