//! The coordinator's side of TLS: its certificate and key and, when clients must prove
//! who they are, the CA their certificates must be signed by. The files are read and
//! checked when the configuration is loaded (see [`proto::tls`]); the shared token is
//! still checked on every call, TLS or not.

use proto::tls::{PemCertificates, PemKey, TlsError, HANDSHAKE_TIMEOUT};
use std::path::Path;
use tonic::transport::ServerTlsConfig;

/// The coordinator's TLS material.
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// The coordinator's certificate (chain), leaf first.
    pub cert: PemCertificates,
    /// Its private key.
    pub key: PemKey,
    /// When set, every client must present a certificate signed by this CA.
    pub client_ca: Option<PemCertificates>,
}

impl ServerTls {
    /// Reads and checks the files.
    pub fn load(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<Self, TlsError> {
        Ok(Self {
            cert: PemCertificates::read("certificate", cert)?,
            key: PemKey::read(key)?,
            client_ca: client_ca
                .map(|p| PemCertificates::read("client CA", p))
                .transpose()?,
        })
    }

    /// The tonic settings: the identity, the client CA (certificates then required),
    /// a handshake timeout so a silent client cannot hold a connection open.
    pub fn tonic_config(&self) -> ServerTlsConfig {
        let mut config = ServerTlsConfig::new()
            .identity(self.key.identity(&self.cert))
            .timeout(HANDSHAKE_TIMEOUT);
        if let Some(ca) = &self.client_ca {
            config = config.client_ca_root(ca.certificate());
        }
        config
    }

    /// A rustls server configuration with the same certificate and key (for the HTTP
    /// port: browsers and Prometheus present no client certificate; the token is checked
    /// instead), speaking HTTP/1.1.
    pub fn rustls_config(&self) -> Result<tokio_rustls::rustls::ServerConfig, String> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_slice_iter(self.cert.pem())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let key = PrivateKeyDer::from_pem_slice(self.key.pem()).map_err(|e| e.to_string())?;
        let provider =
            std::sync::Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
        let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| e.to_string())?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }

    /// The files, for logs and messages.
    pub fn describe(&self) -> String {
        let mut text = format!(
            "certificate {}, key {}",
            self.cert.path().display(),
            self.key.path().display()
        );
        if let Some(ca) = &self.client_ca {
            text.push_str(&format!(
                ", client certificates required (CA {})",
                ca.path().display()
            ));
        }
        text
    }
}
