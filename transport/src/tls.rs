//! rustls configurations: a server's from PEM files, a client's that trusts one certificate.
//!
//! The crypto provider is `ring` (a small C/assembly build, no cmake); protocol versions
//! are rustls' safe defaults (TLS 1.3 and 1.2). The server picks the cipher suite by its
//! own order (AEADs only, the strongest first), not the client's, so a client that prefers
//! a weaker suite does not get it (`scripts/tls-audit` checks this with testssl.sh).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// Why a certificate or key could not be loaded; each names the file and the likely fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("cannot read certificates from {path}: {why} (expected PEM `-----BEGIN CERTIFICATE-----` blocks; scripts/self-signed-cert makes a pair)")]
    Certificates { path: String, why: String },
    #[error("no certificate in {path} (expected PEM `-----BEGIN CERTIFICATE-----` blocks)")]
    NoCertificate { path: String },
    #[error("cannot read a private key from {path}: {why} (expected a PEM PKCS#8, PKCS#1 or SEC1 key)")]
    Key { path: String, why: String },
    #[error("the certificate and key do not make a usable server identity: {0}")]
    Identity(rustls::Error),
    #[error("not a valid TLS server name: {0}")]
    ServerName(String),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads every certificate in a PEM file (the leaf first, then its chain).
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let shown = path.display().to_string();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsConfigError::Certificates {
            path: shown.clone(),
            why: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsConfigError::NoCertificate { path: shown });
    }
    Ok(certs)
}

/// A server configuration from a PEM certificate chain and a PEM private key.
pub fn server_config(cert_path: &Path, key_path: &Path) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let certs = load_certificates(cert_path)?;
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| TlsConfigError::Key {
        path: key_path.display().to_string(),
        why: e.to_string(),
    })?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsConfigError::Identity)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(TlsConfigError::Identity)?;
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}

/// A client configuration trusting exactly the certificates in `roots` (PEM or DER list).
pub fn client_config(roots: &[CertificateDer<'static>]) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let mut store = RootCertStore::empty();
    for cert in roots {
        store.add(cert.clone()).map_err(TlsConfigError::Identity)?;
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsConfigError::Identity)?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A server name for a client connection (a DNS name or an IP address).
pub fn server_name(name: &str) -> Result<ServerName<'static>, TlsConfigError> {
    ServerName::try_from(name.to_owned()).map_err(|e| TlsConfigError::ServerName(format!("{name}: {e}")))
}

/// What a TLS client layer needs: the configuration and the name to verify.
pub type ClientTls = (Arc<ClientConfig>, ServerName<'static>);

/// A client trusting the certificates in the PEM file `ca`, verifying `name`.
pub fn client_trusting(ca: &Path, name: &str) -> Result<ClientTls, TlsConfigError> {
    let roots = load_certificates(ca)?;
    Ok((client_config(&roots)?, server_name(name)?))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn the_server_chooses_the_cipher_suite_by_its_own_order_from_aeads_only() {
        let testdata = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata");
        let config =
            server_config(&testdata.join("cert.pem"), &testdata.join("key.pem")).expect("test certificate loads");
        assert!(
            config.ignore_client_order,
            "the client's preference does not pick the suite"
        );
        let suites = &config.crypto_provider().cipher_suites;
        assert!(!suites.is_empty());
        for suite in suites {
            let name = format!("{:?}", suite.suite());
            assert!(
                name.contains("GCM") || name.contains("CHACHA20_POLY1305"),
                "{name} is not an AEAD suite"
            );
        }
    }
}
