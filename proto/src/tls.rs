//! TLS material of coordinator connections, read from PEM files and checked when it is
//! loaded (at start-up), so that a missing, unreadable or malformed file is an error
//! naming the file rather than a failed handshake at the first call.
//!
//! [`PemCertificates`] and [`PemKey`] are checked PEM files; [`ClientTls`] is what a
//! client trusts (a CA, else the system's roots) and the certificate it presents, if
//! any. The coordinator's own side (`[tls]` of its config) builds on the same files.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// How long a TLS handshake may take before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS material that cannot be used; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file cannot be read.
    #[error("cannot read the TLS {what} file {path}: {source}")]
    Read {
        /// Which file (`CA`, `certificate`, `key`, ...).
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not PEM, or holds no block of the expected kind.
    #[error("the TLS {what} file {path} is not usable: {detail}")]
    Pem {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// What is wrong and what it should hold.
        detail: String,
    },
    /// A PEM block decodes but is not an X.509 certificate.
    #[error("the TLS {what} file {path} holds a malformed certificate (block {index}): {detail}")]
    Certificate {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// 1-based position of the block in the file.
        index: usize,
        /// The parser's complaint.
        detail: String,
    },
    /// One half of a client certificate is missing.
    #[error("a client certificate needs both files: {given} was given without {missing}")]
    Incomplete {
        /// The option given.
        given: &'static str,
        /// The option missing.
        missing: &'static str,
    },
}

/// One or more X.509 certificates read from a PEM file and checked to parse.
#[derive(Clone)]
pub struct PemCertificates {
    path: PathBuf,
    pem: Vec<u8>,
    count: usize,
}

impl PemCertificates {
    /// Reads `path`; `what` names the file's role in errors (e.g. `"CA"`).
    pub fn read(what: &'static str, path: &Path) -> Result<Self, TlsError> {
        let pem = read(what, path)?;
        let pem_error = |detail: String| TlsError::Pem {
            what,
            path: path.to_path_buf(),
            detail,
        };
        let ders = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem_error(format!("{e} (expected PEM CERTIFICATE blocks)")))?;
        if ders.is_empty() {
            return Err(pem_error(
                "it holds no `-----BEGIN CERTIFICATE-----` block".into(),
            ));
        }
        for (i, der) in ders.iter().enumerate() {
            webpki::anchor_from_trusted_cert(der).map_err(|e| TlsError::Certificate {
                what,
                path: path.to_path_buf(),
                index: i + 1,
                detail: format!("{e:?}"),
            })?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            count: ders.len(),
            pem,
        })
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many certificates the file holds.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The file's PEM text, as tonic takes it.
    pub fn certificate(&self) -> Certificate {
        Certificate::from_pem(&self.pem)
    }

    /// The PEM text.
    pub fn pem(&self) -> &[u8] {
        &self.pem
    }
}

impl fmt::Debug for PemCertificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PemCertificates({}, {} certificate(s))",
            self.path.display(),
            self.count
        )
    }
}

/// A private key read from a PEM file (PKCS#8, PKCS#1 or SEC1) and checked to decode.
/// Its `Debug` form shows the path only.
#[derive(Clone)]
pub struct PemKey {
    path: PathBuf,
    pem: Vec<u8>,
}

impl PemKey {
    /// Reads `path`.
    pub fn read(path: &Path) -> Result<Self, TlsError> {
        let pem = read("key", path)?;
        PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::Pem {
            what: "key",
            path: path.to_path_buf(),
            detail: format!(
                "{e} (expected a PEM PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block)"
            ),
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            pem,
        })
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The PEM text.
    pub fn pem(&self) -> &[u8] {
        &self.pem
    }

    /// A certificate with this key, as tonic takes it.
    pub fn identity(&self, certificate: &PemCertificates) -> Identity {
        Identity::from_pem(certificate.pem(), &self.pem)
    }
}

impl fmt::Debug for PemKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PemKey({})", self.path.display())
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// What a client trusts and presents on an `https://` connection.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// CA the coordinator's certificate must chain to; the system's roots when `None`.
    pub ca: Option<PemCertificates>,
    /// The certificate and key this client presents (for a coordinator that requires
    /// client certificates).
    pub identity: Option<(PemCertificates, PemKey)>,
}

impl ClientTls {
    /// What the TLS client flags (`--tls-ca`, `--tls-cert`, `--tls-key` or their
    /// environment variables) name, read and checked; `None` when they name nothing.
    pub fn from_args(args: &infra::cli::ClientTlsArgs) -> Result<Option<Self>, TlsError> {
        Self::load(
            args.tls_ca.as_deref(),
            args.tls_cert.as_deref(),
            args.tls_key.as_deref(),
        )
    }

    /// Reads the files given (`--tls-ca`, `--tls-cert`, `--tls-key`); `cert` and `key`
    /// come together. `None` when no file is given at all.
    pub fn load(
        ca: Option<&Path>,
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<Option<Self>, TlsError> {
        let identity = match (cert, key) {
            (Some(cert), Some(key)) => Some((
                PemCertificates::read("client certificate", cert)?,
                PemKey::read(key)?,
            )),
            (Some(_), None) => {
                return Err(TlsError::Incomplete {
                    given: "--tls-cert",
                    missing: "--tls-key",
                })
            }
            (None, Some(_)) => {
                return Err(TlsError::Incomplete {
                    given: "--tls-key",
                    missing: "--tls-cert",
                })
            }
            (None, None) => None,
        };
        let ca = ca.map(|p| PemCertificates::read("CA", p)).transpose()?;
        if ca.is_none() && identity.is_none() {
            return Ok(None);
        }
        Ok(Some(Self { ca, identity }))
    }

    /// The tonic settings: the CA (or the system's roots), the client certificate, a
    /// handshake timeout.
    pub fn tonic_config(&self) -> ClientTlsConfig {
        let mut config = ClientTlsConfig::new().timeout(HANDSHAKE_TIMEOUT);
        config = match &self.ca {
            Some(ca) => config.ca_certificate(ca.certificate()),
            None => config.with_native_roots(),
        };
        if let Some((cert, key)) = &self.identity {
            config = config.identity(key.identity(cert));
        }
        config
    }

    /// The files, for messages: `CA ca.pem, client certificate c.pem`.
    pub fn describe(&self) -> String {
        let ca = match &self.ca {
            Some(ca) => format!("CA {}", ca.path().display()),
            None => "the system's CA roots".into(),
        };
        match &self.identity {
            Some((cert, _)) => format!("{ca}, client certificate {}", cert.path().display()),
            None => ca,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        path
    }

    #[test]
    fn a_missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let err = ClientTls::load(Some(&missing), None, None).unwrap_err();
        assert!(matches!(err, TlsError::Read { what: "CA", .. }), "{err}");
        assert!(err.to_string().contains("nope.pem"), "{err}");
    }

    #[test]
    fn a_file_without_certificates_or_with_broken_ones_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let text = file(dir.path(), "notes.pem", "just some text\n");
        let err = ClientTls::load(Some(&text), None, None).unwrap_err();
        assert!(matches!(err, TlsError::Pem { .. }), "{err}");
        assert!(err.to_string().contains("notes.pem"), "{err}");

        let broken = file(
            dir.path(),
            "broken.pem",
            "-----BEGIN CERTIFICATE-----\n!!!!not base64!!!!\n-----END CERTIFICATE-----\n",
        );
        let err = ClientTls::load(Some(&broken), None, None).unwrap_err();
        assert!(matches!(err, TlsError::Pem { .. }), "{err}");
        assert!(err.to_string().contains("broken.pem"), "{err}");

        // Valid base64, but not a certificate.
        let junk = file(
            dir.path(),
            "junk.pem",
            "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
        );
        let err = ClientTls::load(Some(&junk), None, None).unwrap_err();
        assert!(
            matches!(err, TlsError::Certificate { index: 1, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("junk.pem"), "{err}");
    }

    #[test]
    fn a_key_file_without_a_key_is_named_and_halves_must_come_together() {
        let dir = tempfile::tempdir().unwrap();
        let key = file(dir.path(), "client.key", "no key here\n");
        let err = PemKey::read(&key).unwrap_err();
        assert!(matches!(err, TlsError::Pem { what: "key", .. }), "{err}");
        assert!(err.to_string().contains("client.key"), "{err}");
        assert!(matches!(
            ClientTls::load(None, None, Some(&key)),
            Err(TlsError::Incomplete {
                given: "--tls-key",
                ..
            })
        ));
        assert!(matches!(
            ClientTls::load(None, Some(&key), None),
            Err(TlsError::Incomplete {
                given: "--tls-cert",
                ..
            })
        ));
        assert!(ClientTls::load(None, None, None).unwrap().is_none());
    }
}
