//! The development PKI behind zero-setup HTTPS: a local CA (written to the data directory so
//! clients can trust it through `REQUESTS_CA_BUNDLE` / `NODE_EXTRA_CA_CERTS`) and a server
//! certificate it signs for the names Clavis serves.
//!
//! The CA's key stays in the data directory (mode 0600) so the server certificate can be
//! re-issued when the served names change, without users trusting a new CA.

use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose};
use time::{Duration, OffsetDateTime};

use crate::CryptoError;

/// A certificate and its private key, both PEM.
pub struct CertifiedKey {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key (PKCS#8), PEM. Never log it.
    pub key_pem: String,
}

impl std::fmt::Debug for CertifiedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CertifiedKey")
    }
}

fn ca_params(now: OffsetDateTime) -> Result<CertificateParams, CryptoError> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|_| CryptoError::Library("ca params"))?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "Clavis development CA");
    name.push(DnType::OrganizationName, "Clavis");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(3650);
    Ok(params)
}

/// Creates a new development CA (ECDSA P-256, valid ten years).
pub fn generate_ca(now: OffsetDateTime) -> Result<CertifiedKey, CryptoError> {
    let key = KeyPair::generate().map_err(|_| CryptoError::Library("ca keygen"))?;
    let cert = ca_params(now)?.self_signed(&key).map_err(|_| CryptoError::Library("ca sign"))?;
    Ok(CertifiedKey { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

/// Issues a server certificate for `names` (DNS names, wildcards such as `*.vault.localhost`, or
/// IP addresses) signed by the CA whose key is `ca_key_pem`. Valid one year.
pub fn issue_server_cert(ca_key_pem: &str, names: &[String], now: OffsetDateTime) -> Result<CertifiedKey, CryptoError> {
    let ca_key = KeyPair::from_pem(ca_key_pem).map_err(|_| CryptoError::Malformed("CA key"))?;
    // The CA certificate object is rebuilt from the same name and key: the leaf's issuer name and
    // authority key identifier come from those alone, so it chains to the CA users already trust.
    let ca_cert = ca_params(now)?.self_signed(&ca_key).map_err(|_| CryptoError::Library("ca rebuild"))?;
    let mut params = CertificateParams::new(names.to_vec()).map_err(|_| CryptoError::Malformed("server name"))?;
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, names.first().cloned().unwrap_or_else(|| "localhost".into()));
    params.distinguished_name = subject;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(365);
    let key = KeyPair::generate().map_err(|_| CryptoError::Library("server keygen"))?;
    let cert = params.signed_by(&key, &ca_cert, &ca_key).map_err(|_| CryptoError::Library("server sign"))?;
    Ok(CertifiedKey { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_a_chain() {
        let now = OffsetDateTime::now_utc();
        let ca = generate_ca(now).unwrap();
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "*.vault.localhost".to_string()];
        let leaf = issue_server_cert(&ca.key_pem, &names, now).unwrap();
        assert!(leaf.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(leaf.key_pem.contains("PRIVATE KEY"));
    }
}
