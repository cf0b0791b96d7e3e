//! STARTTLS client configuration (DESIGN.md §7): rustls with the ring provider,
//! the replica's certificate verified against `tls_client_ca_file`/`_dir` or the
//! system roots, or pinned by SHA-256 (`cyrsync_tls_fingerprint`); verification
//! off only when `cyrsync_tls_verify: no` says so. Client certificate from
//! `tls_client_cert`/`tls_client_key`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::config::TlsSettings;

/// Why TLS could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// A certificate or key file could not be read or holds nothing usable.
    #[error("{key} = {path}: {detail}")]
    File {
        /// The imapd.conf key that names the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// No trust anchors at all.
    #[error(
        "no CA certificates to verify the replica with (system store empty); set tls_client_ca_file or cyrsync_tls_fingerprint"
    )]
    NoRoots,
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(String),
}

/// Formats a SHA-256 fingerprint as `AB:CD:…`, the form `cyrsync_tls_fingerprint`
/// accepts and `openssl x509 -fingerprint -sha256` prints.
pub fn format_fingerprint(fp: &[u8; 32]) -> String {
    fp.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// SHA-256 of a DER certificate.
pub fn fingerprint(cert: &[u8]) -> [u8; 32] {
    Sha256::digest(cert).into()
}

/// What the verifier saw of the peer's certificate, for error messages and
/// `cyrsync check`.
#[derive(Debug, Default)]
pub struct SeenCertificate {
    /// SHA-256 of the end-entity certificate presented by the server.
    pub fingerprint: Option<[u8; 32]>,
    /// The end-entity certificate (DER).
    pub der: Option<Vec<u8>>,
    /// Why the verifier refused it, when it did.
    pub rejected: Option<Rejection>,
}

/// Why a server certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Its SHA-256 is not the pinned one.
    PinMismatch {
        /// The pin from `cyrsync_tls_fingerprint`.
        expected: [u8; 32],
    },
    /// No chain to a trusted CA.
    UnknownIssuer,
    /// Valid, but not for the name connected to.
    WrongName,
    /// Expired or not yet valid.
    Expired,
    /// Anything else webpki refused, in its words.
    Other(String),
}

/// A ready client configuration plus what the handshake reveals.
#[derive(Debug, Clone)]
pub struct TlsClient {
    /// The rustls configuration.
    pub config: Arc<ClientConfig>,
    /// Filled in during the handshake.
    pub seen: Arc<Mutex<SeenCertificate>>,
    /// How the server is verified, for `check` and logs.
    pub mode: VerifyMode,
}

/// How the server certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyMode {
    /// Chain and name against CA certificates.
    Chain,
    /// The end-entity certificate's SHA-256 must match the pin.
    Pinned,
    /// Nothing checked (`cyrsync_tls_verify: no`).
    Off,
}

impl std::fmt::Display for VerifyMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VerifyMode::Chain => "verified",
            VerifyMode::Pinned => "pinned",
            VerifyMode::Off => "NOT VERIFIED",
        })
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the client configuration from the channel's TLS settings.
pub fn client_config(settings: &TlsSettings) -> Result<TlsClient, TlsConfigError> {
    let provider = provider();
    let seen = Arc::new(Mutex::new(SeenCertificate::default()));
    let algorithms = provider.signature_verification_algorithms;
    let (verifier, mode): (Arc<dyn ServerCertVerifier>, VerifyMode) =
        if let Some(pin) = settings.fingerprint {
            (
                Arc::new(Verifier {
                    inner: Inner::Pinned(pin),
                    algorithms,
                    seen: seen.clone(),
                }),
                VerifyMode::Pinned,
            )
        } else if !settings.verify {
            (
                Arc::new(Verifier {
                    inner: Inner::Off,
                    algorithms,
                    seen: seen.clone(),
                }),
                VerifyMode::Off,
            )
        } else {
            let roots = Arc::new(load_roots(settings)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| TlsConfigError::Rustls(e.to_string()))?;
            (
                Arc::new(Verifier {
                    inner: Inner::Chain(webpki),
                    algorithms,
                    seen: seen.clone(),
                }),
                VerifyMode::Chain,
            )
        };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsConfigError::Rustls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (&settings.client_cert, &settings.client_key) {
        (Some(cert), Some(key)) => {
            let chain = load_certs(cert, "tls_client_cert")?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsConfigError::File {
                key: "tls_client_key",
                path: key.clone(),
                detail: format!("no usable PEM private key: {e}"),
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| TlsConfigError::Rustls(e.to_string()))?
        }
        (Some(cert), None) => {
            return Err(TlsConfigError::File {
                key: "tls_client_cert",
                path: cert.clone(),
                detail: "set tls_client_key too".into(),
            });
        }
        (None, Some(key)) => {
            return Err(TlsConfigError::File {
                key: "tls_client_key",
                path: key.clone(),
                detail: "set tls_client_cert too".into(),
            });
        }
        (None, None) => builder.with_no_client_auth(),
    };
    Ok(TlsClient {
        config: Arc::new(config),
        seen,
        mode,
    })
}

fn load_certs(
    path: &Path,
    key: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsConfigError::File {
            key,
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?
        .collect();
    let certs = certs.map_err(|e| TlsConfigError::File {
        key,
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    if certs.is_empty() {
        return Err(TlsConfigError::File {
            key,
            path: path.to_path_buf(),
            detail: "no PEM certificate in the file".into(),
        });
    }
    Ok(certs)
}

fn load_roots(settings: &TlsSettings) -> Result<RootCertStore, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    let mut configured = false;
    if let Some(file) = &settings.ca_file {
        configured = true;
        for cert in load_certs(file, "tls_client_ca_file")? {
            roots.add(cert).map_err(|e| TlsConfigError::File {
                key: "tls_client_ca_file",
                path: file.clone(),
                detail: e.to_string(),
            })?;
        }
    }
    if let Some(dir) = &settings.ca_dir {
        configured = true;
        let entries = std::fs::read_dir(dir).map_err(|e| TlsConfigError::File {
            key: "tls_client_ca_dir",
            path: dir.clone(),
            detail: e.to_string(),
        })?;
        // OpenSSL-style directories hold PEM files and hash-named links to
        // them; anything that parses as a certificate is taken.
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_file() {
                continue;
            }
            if let Ok(iter) = CertificateDer::pem_file_iter(&path) {
                for cert in iter.flatten() {
                    let _ = roots.add(cert);
                }
            }
        }
    }
    if !configured {
        let found = rustls_native_certs::load_native_certs();
        for cert in found.certs {
            let _ = roots.add(cert);
        }
    }
    if roots.is_empty() {
        return Err(TlsConfigError::NoRoots);
    }
    Ok(roots)
}

#[derive(Debug)]
enum Inner {
    Chain(Arc<WebPkiServerVerifier>),
    Pinned([u8; 32]),
    Off,
}

/// One verifier for all modes, so that every handshake records the
/// certificate it saw (the error message can then offer the pin).
#[derive(Debug)]
struct Verifier {
    inner: Inner,
    algorithms: WebPkiSupportedAlgorithms,
    seen: Arc<Mutex<SeenCertificate>>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fp = fingerprint(end_entity);
        let result = match &self.inner {
            Inner::Chain(v) => {
                v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            Inner::Pinned(pin) if *pin == fp => Ok(ServerCertVerified::assertion()),
            Inner::Pinned(_) => Err(rustls::Error::General(
                "the certificate does not match cyrsync_tls_fingerprint".into(),
            )),
            Inner::Off => Ok(ServerCertVerified::assertion()),
        };
        if let Ok(mut seen) = self.seen.lock() {
            seen.fingerprint = Some(fp);
            seen.der = Some(end_entity.as_ref().to_vec());
            seen.rejected = match (&result, &self.inner) {
                (Ok(_), _) => None,
                (Err(_), Inner::Pinned(pin)) => Some(Rejection::PinMismatch { expected: *pin }),
                (Err(e), _) => Some(rejection(e)),
            };
        }
        result
    }

    // Handshake signatures are always checked, even with verification off or
    // pinned: the pin is only worth something if the peer holds the key.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

fn rejection(e: &rustls::Error) -> Rejection {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => Rejection::UnknownIssuer,
            C::NotValidForName | C::NotValidForNameContext { .. } => Rejection::WrongName,
            C::Expired
            | C::ExpiredContext { .. }
            | C::NotValidYet
            | C::NotValidYetContext { .. } => Rejection::Expired,
            other => Rejection::Other(format!("{other:?}")),
        },
        other => Rejection::Other(other.to_string()),
    }
}

/// The name to verify and send as SNI: a DNS name, or an IP address.
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_string())
        .map_err(|e| format!("'{host}' is not a valid TLS server name: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_format_round_trips_through_the_config_parser() {
        let fp = fingerprint(b"certificate bytes");
        let text = format_fingerprint(&fp);
        assert_eq!(text.len(), 95);
        assert_eq!(
            crate::config::value::parse_sha256_fingerprint(&text),
            Some(fp)
        );
    }

    #[test]
    fn missing_ca_file_names_the_key() {
        let settings = TlsSettings {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ca_dir: None,
            client_cert: None,
            client_key: None,
            verify: true,
            fingerprint: None,
        };
        let err = client_config(&settings).unwrap_err().to_string();
        assert!(err.contains("tls_client_ca_file"), "{err}");
    }

    #[test]
    fn pinned_and_off_need_no_roots() {
        let mut settings = TlsSettings {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ca_dir: None,
            client_cert: None,
            client_key: None,
            verify: true,
            fingerprint: Some([7; 32]),
        };
        assert_eq!(client_config(&settings).unwrap().mode, VerifyMode::Pinned);
        settings.fingerprint = None;
        settings.verify = false;
        assert_eq!(client_config(&settings).unwrap().mode, VerifyMode::Off);
    }
}
