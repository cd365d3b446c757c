//! `--ssl-keyfile`, `--ssl-certfile`, `--ssl-ca-certs`, `--ssl-cert-reqs`: the rustls server
//! configuration. Everything is read and checked at start-up, so a bad file is one error line
//! naming it instead of a failure on the first connection.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The TLS flags as given.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    pub keyfile: Option<PathBuf>,
    pub certfile: Option<PathBuf>,
    pub ca_certs: Option<PathBuf>,
    /// Python's `ssl.CERT_NONE` (0), `CERT_OPTIONAL` (1), `CERT_REQUIRED` (2), as vLLM takes it.
    pub cert_reqs: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("--ssl-keyfile {0} needs --ssl-certfile")]
    KeyWithoutCert(PathBuf),
    #[error(
        "--ssl-cert-reqs must be 0 (no client certificate), 1 (optional) or 2 (required), got {0}"
    )]
    BadCertReqs(i32),
    #[error("--ssl-cert-reqs {0} checks client certificates: it needs --ssl-ca-certs with the CA that signs them")]
    CertReqsWithoutCa(i32),
    #[error("{flag} {path}: {reason}")]
    File {
        flag: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("TLS set-up: {0}")]
    Rustls(String),
}

impl TlsSettings {
    /// True when the server should speak TLS.
    pub fn enabled(&self) -> bool {
        self.certfile.is_some() || self.keyfile.is_some()
    }
}

fn file_error(flag: &'static str, path: &Path, reason: impl Into<String>) -> TlsError {
    TlsError::File {
        flag,
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads the whole file first so that "cannot read" and "not PEM" are told apart.
fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| file_error(flag, path, format!("cannot read it: {e}")))
}

fn certificates(flag: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(flag, path)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(flag, path, format!("not a valid PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(file_error(
            flag,
            path,
            "no PEM certificate (-----BEGIN CERTIFICATE-----) in it",
        ));
    }
    Ok(certs)
}

fn private_key(flag: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(flag, path)?;
    // Python's ssl module can decrypt keys with a password callback; vLLM offers no flag for
    // the password, and rustls reads only plain keys, so say what to do instead.
    if pem.windows(b"ENCRYPTED".len()).any(|w| w == b"ENCRYPTED") {
        return Err(file_error(flag, path, "encrypted private keys are not supported yet; decrypt it first (openssl pkey -in KEY -out PLAIN_KEY)"));
    }
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => file_error(
            flag,
            path,
            "no PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC) in it",
        ),
        e => file_error(flag, path, format!("not a valid PEM private key: {e}")),
    })
}

/// The server configuration, or the first problem found with the flags and files.
pub fn server_config(s: &TlsSettings) -> Result<Arc<ServerConfig>, TlsError> {
    let certfile = match (&s.certfile, &s.keyfile) {
        (Some(c), _) => c,
        (None, Some(k)) => return Err(TlsError::KeyWithoutCert(k.clone())),
        (None, None) => return Err(TlsError::Rustls("no certificate given".into())),
    };
    if !(0..=2).contains(&s.cert_reqs) {
        return Err(TlsError::BadCertReqs(s.cert_reqs));
    }
    let chain = certificates("--ssl-certfile", certfile)?;
    // As with Python's load_cert_chain, the key may sit in the certificate file.
    let key = match &s.keyfile {
        Some(k) => private_key("--ssl-keyfile", k)?,
        None => private_key("--ssl-certfile", certfile)?,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = match (s.cert_reqs, &s.ca_certs) {
        (0, _) => builder.with_no_client_auth(),
        (reqs, None) => return Err(TlsError::CertReqsWithoutCa(reqs)),
        (reqs, Some(ca)) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates("--ssl-ca-certs", ca)? {
                roots.add(cert).map_err(|e| {
                    file_error(
                        "--ssl-ca-certs",
                        ca,
                        format!("unusable CA certificate: {e}"),
                    )
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if reqs == 1 {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| file_error("--ssl-ca-certs", ca, e.to_string()))?,
            )
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        let path = s.keyfile.as_deref().unwrap_or(certfile);
        file_error(
            "--ssl-keyfile",
            path,
            format!(
                "does not fit the certificate in {}: {e}",
                certfile.display()
            ),
        )
    })?;
    // Offer HTTP/2 as uvicorn does not, but harmlessly: clients that do not ask keep HTTP/1.1.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(cert: &str, key: Option<&str>) -> TlsSettings {
        TlsSettings {
            certfile: Some(cert.into()),
            keyfile: key.map(PathBuf::from),
            ..Default::default()
        }
    }

    #[test]
    fn bad_files_name_themselves() {
        let dir = std::env::temp_dir().join(format!("vllm-rs-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "hello").unwrap();
        let enc = dir.join("enc.pem");
        std::fs::write(
            &enc,
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        )
        .unwrap();

        let e = server_config(&settings("/nonexistent/cert.pem", None))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--ssl-certfile /nonexistent/cert.pem: cannot read it"),
            "{e}"
        );
        let e = server_config(&settings(junk.to_str().unwrap(), None))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("junk.pem") && e.contains("no PEM certificate"),
            "{e}"
        );
        let e = server_config(&TlsSettings {
            keyfile: Some(junk.clone()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("needs --ssl-certfile"), "{e}");
        let e = private_key("--ssl-keyfile", &enc).unwrap_err().to_string();
        assert!(
            e.contains("encrypted private keys are not supported yet"),
            "{e}"
        );
        let e = private_key("--ssl-keyfile", &junk).unwrap_err().to_string();
        assert!(e.contains("no PEM private key"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn cert_reqs_are_checked() {
        let s = TlsSettings {
            certfile: Some("c".into()),
            cert_reqs: 3,
            ..Default::default()
        };
        assert!(matches!(server_config(&s), Err(TlsError::BadCertReqs(3))));
    }
}
