//! Webhook signing per the Standard Webhooks convention: a `whsec_`-prefixed base64 secret, and
//! `webhook-signature: v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>`.

use aws_lc_rs::hmac;
use base64::Engine as _;

use crate::{random, CryptoError};

/// A new subscription secret (192 bits), in its `whsec_` text form.
pub fn generate_secret() -> String {
    format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(random::bytes::<24>()))
}

/// The `webhook-signature` header value for a delivery.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, CryptoError> {
    let key_bytes = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .map_err(|_| CryptoError::Malformed("webhook secret"))?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key_bytes);
    let mut context = hmac::Context::with_key(&key);
    context.update(id.as_bytes());
    context.update(b".");
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    Ok(format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(context.sign().as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        // From the Standard Webhooks specification's test vectors.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let signature = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap();
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(generate_secret().starts_with("whsec_"));
    }
}
