//! TLS of the OTLP exporter: the certificate files of the standard environment, read and
//! checked when the configuration is resolved ([`TrustedCertificates`] for
//! `OTEL_EXPORTER_OTLP_CERTIFICATE`, [`ClientCertificate`] for `..._CLIENT_CERTIFICATE` and
//! `..._CLIENT_KEY`), and what the sender's connections need from rustls: the client
//! configuration of a signal, which notes whether the server asked for a client certificate,
//! and a stream that keeps the TLS error that failed it.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::config::{invalid, ConfigError, Protocol, SignalConfig};

/// The trust anchors of a PEM file (`OTEL_EXPORTER_OTLP_CERTIFICATE`): a private CA or a
/// self-signed collector certificate. As in the OpenTelemetry SDKs, they replace the web PKI
/// roots for that signal rather than adding to them.
#[derive(Debug, Clone)]
pub struct TrustedCertificates {
    /// The file they were read from (for messages).
    pub path: PathBuf,
    /// Its certificates as trust anchors.
    pub roots: Arc<rustls::RootCertStore>,
}

impl TrustedCertificates {
    /// Read every `CERTIFICATE` block of the PEM file at `path`; `var` names the setting in
    /// errors.
    pub fn read(var: &str, path: &str) -> Result<Self, ConfigError> {
        use rustls::pki_types::{pem::PemObject as _, CertificateDer};
        let pem =
            std::fs::read(path).map_err(|e| invalid(var, format!("cannot read `{path}`: {e}")))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| invalid(var, format!("`{path}` is not valid PEM: {e}")))?;
            roots.add(cert).map_err(|e| {
                invalid(
                    var,
                    format!("`{path}` has a certificate that cannot be trusted: {e}"),
                )
            })?;
        }
        if roots.is_empty() {
            return Err(invalid(
                var,
                format!("`{path}` has no PEM certificate (-----BEGIN CERTIFICATE-----)"),
            ));
        }
        Ok(TrustedCertificates {
            path: path.into(),
            roots: Arc::new(roots),
        })
    }
}

/// A client certificate (chain) and its private key for mutual TLS, from the PEM files of
/// `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` and `OTEL_EXPORTER_OTLP_CLIENT_KEY`. Both are read
/// and checked against each other when the configuration is resolved, so a wrong file or a
/// key of another certificate stops the run before it starts instead of failing every export.
pub struct ClientCertificate {
    /// The certificate file (for messages).
    pub certificate_path: PathBuf,
    /// The key file (for messages).
    pub key_path: PathBuf,
    /// The certificates of the file, the client's own first.
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
}

impl std::fmt::Debug for ClientCertificate {
    /// The paths only: the key stays out of any output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("certificate_path", &self.certificate_path)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

impl ClientCertificate {
    /// Read the certificates of the PEM file at `certificate` and the private key of the PEM
    /// file at `key` (they may be the same file), and check that the key is the certificate's;
    /// `certificate_var` and `key_var` name the settings in errors. Key file errors never
    /// show its content.
    pub fn read(
        (certificate_var, certificate): (&str, &str),
        (key_var, key): (&str, &str),
    ) -> Result<Self, ConfigError> {
        use rustls::pki_types::{pem::PemObject as _, CertificateDer, PrivateKeyDer};
        let pem = std::fs::read(certificate)
            .map_err(|e| invalid(certificate_var, format!("cannot read `{certificate}`: {e}")))?;
        let chain = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                invalid(
                    certificate_var,
                    format!("`{certificate}` is not valid PEM: {e}"),
                )
            })?;
        if chain.is_empty() {
            return Err(invalid(
                certificate_var,
                format!("`{certificate}` has no PEM certificate (-----BEGIN CERTIFICATE-----)"),
            ));
        }
        let pem = std::fs::read(key)
            .map_err(|e| invalid(key_var, format!("cannot read `{key}`: {e}")))?;
        let private_key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
            invalid(
                key_var,
                match e {
                    rustls::pki_types::pem::Error::NoItemsFound => format!(
                        "`{key}` has no PEM private key (-----BEGIN PRIVATE KEY-----, RSA PRIVATE \
                         KEY or EC PRIVATE KEY; encrypted keys are not supported)"
                    ),
                    _ => format!("`{key}` is not valid PEM"),
                },
            )
        })?;
        // What rustls would refuse when the TLS configuration is built: say so now.
        let checked = rustls::sign::CertifiedKey::from_der(
            chain.clone(),
            private_key.clone_key(),
            &provider(),
        );
        if let Err(e) = checked {
            let message = match e {
                rustls::Error::InconsistentKeys(_) => format!(
                    "`{key}` is not the private key of the certificate in `{certificate}` \
                     ({certificate_var})"
                ),
                e => format!(
                    "`{key}` cannot be used with the certificate in `{certificate}` \
                     ({certificate_var}): {e}"
                ),
            };
            return Err(invalid(key_var, message));
        }
        Ok(ClientCertificate {
            certificate_path: certificate.into(),
            key_path: key.into(),
            chain,
            key: private_key,
        })
    }

    /// The certificate chain and a copy of the key, as `with_client_auth_cert` takes them.
    pub(super) fn pair(
        &self,
    ) -> (
        Vec<rustls::pki_types::CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ) {
        (self.chain.clone(), self.key.clone_key())
    }
}

/// The cryptography of every OTLP TLS connection (and of the checks made here beforehand).
pub(super) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client certificate resolver that notes that the server asked for a certificate (rustls
/// consults it exactly when a CertificateRequest arrives), then answers as the resolver it
/// wraps: so a refused handshake can say whether a client certificate was the matter.
struct NoteRequest {
    inner: Arc<dyn rustls::client::ResolvesClientCert>,
    asked: Arc<AtomicBool>,
}

impl std::fmt::Debug for NoteRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoteRequest").finish_non_exhaustive()
    }
}

impl rustls::client::ResolvesClientCert for NoteRequest {
    fn resolve(
        &self,
        acceptable_issuers: &[&[u8]],
        schemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.asked.store(true, Ordering::Relaxed);
        self.inner.resolve(acceptable_issuers, schemes)
    }

    fn only_raw_public_keys(&self) -> bool {
        self.inner.only_raw_public_keys()
    }

    fn has_certs(&self) -> bool {
        self.inner.has_certs()
    }
}

/// The TLS settings of `config`'s signal: its trusted roots, its client certificate if it has
/// one, and the ALPN protocol of its wire protocol. `asked` is set whenever a server asks for a
/// client certificate (the sender resets it before each handshake).
pub(super) fn client_config(
    config: &SignalConfig,
    asked: Arc<AtomicBool>,
) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    // `OTEL_EXPORTER_OTLP_CERTIFICATE` replaces the web PKI roots, as in the SDKs.
    let roots = match &config.certificate {
        Some(c) => (*c.roots).clone(),
        None => rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        },
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut c = match &config.client_certificate {
        Some(client) => {
            let (chain, key) = client.pair();
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    };
    c.client_auth_cert_resolver = Arc::new(NoteRequest {
        inner: c.client_auth_cert_resolver.clone(),
        asked,
    });
    c.alpn_protocols = match config.protocol {
        Protocol::Grpc => vec![b"h2".to_vec()],
        Protocol::HttpProtobuf => vec![b"http/1.1".to_vec()],
    };
    Ok(Arc::new(c))
}

/// A TLS stream that keeps the rustls error that failed it. hyper's HTTP/2 client hands I/O
/// errors on as text ("operation was canceled" by the time a request sees it), so without
/// this a collector's refusal of the handshake could not be told from any other failure.
pub(super) struct TlsIo<S> {
    /// The stream.
    pub(super) inner: S,
    /// Where the error goes.
    pub(super) error: Arc<Mutex<Option<rustls::Error>>>,
}

impl<S> TlsIo<S> {
    fn note<T>(&self, r: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        if let Poll::Ready(Err(e)) = &r {
            if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                *self.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(tls.clone());
            }
        }
        r
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TlsIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.note(r)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TlsIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note(r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.note(r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.note(r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.note(r)
    }
}

#[cfg(test)]
mod tests {
    use super::super::config;
    use super::super::config::{env_of, Config, FileSettings};

    #[test]
    fn a_certificate_file_replaces_the_trusted_roots_per_signal_and_bad_files_are_named() {
        let dir = std::env::temp_dir().join(format!("loadlens-otlp-ca-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        let pem = |name: &str, count: usize| {
            let path = dir.join(name);
            let mut text = String::new();
            for _ in 0..count {
                let c = rcgen::generate_simple_self_signed(vec!["collector.internal".to_owned()])
                    .unwrap();
                text.push_str(&c.cert.pem());
            }
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        let (one, two) = (pem("one.pem", 1), pem("two.pem", 2));
        let c = Config::resolve(
            &FileSettings::default(),
            env_of(&[
                (
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    "https://collector.internal:4318",
                ),
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", &one),
                ("OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE", &two),
            ]),
        )
        .unwrap();
        let roots = |s: &config::SignalConfig| s.certificate.as_ref().map(|c| c.roots.len());
        assert_eq!(roots(&c.traces), Some(1));
        assert_eq!(roots(&c.metrics), Some(2));
        let c = Config::resolve(&FileSettings::default(), env_of(&[])).unwrap();
        assert!(c.traces.certificate.is_none() && c.metrics.certificate.is_none());

        let not_pem = dir.join("not.pem");
        std::fs::write(&not_pem, "just text\n").unwrap();
        let missing = dir.join("missing.pem");
        for (var, path, want) in [
            (
                "OTEL_EXPORTER_OTLP_CERTIFICATE",
                missing.display().to_string(),
                "cannot read",
            ),
            (
                "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
                not_pem.display().to_string(),
                "no PEM certificate",
            ),
        ] {
            let e = Config::resolve(&FileSettings::default(), env_of(&[(var, &path)])).unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.starts_with(var) && msg.contains(&path) && msg.contains(want),
                "{msg}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_client_certificate_and_key_are_read_per_signal_and_bad_pairs_are_named() {
        let dir = std::env::temp_dir().join(format!("loadlens-otlp-mtls-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        let pair = |name: &str| {
            let c = rcgen::generate_simple_self_signed(vec![format!("{name}.loadlens")]).unwrap();
            let key = c.key_pair.serialize_pem();
            (
                write(&format!("{name}.crt"), &c.cert.pem()),
                write(&format!("{name}.key"), &key),
                write(&format!("{name}.pem"), &format!("{}{key}", c.cert.pem())),
                key,
            )
        };
        let (a_crt, a_key, a_both, a_key_pem) = pair("a");
        let (b_crt, b_key, _, _) = pair("b");
        let resolve =
            |vars: &[(&str, &str)]| Config::resolve(&FileSettings::default(), env_of(vars));

        let c = resolve(&[
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &a_crt),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &a_key),
            ("OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE", &b_crt),
            ("OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY", &b_key),
        ])
        .unwrap();
        let files = |s: &config::SignalConfig| {
            s.client_certificate.as_ref().map(|c| {
                (
                    c.certificate_path.display().to_string(),
                    c.key_path.display().to_string(),
                )
            })
        };
        assert_eq!(files(&c.traces), Some((a_crt.clone(), a_key.clone())));
        assert_eq!(files(&c.metrics), Some((b_crt.clone(), b_key.clone())));
        let key_body = a_key_pem.lines().nth(1).unwrap();
        assert!(!format!("{c:?}").contains(key_body));
        // One file holding both, as many tools write them.
        let c = resolve(&[
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &a_both),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &a_both),
        ])
        .unwrap();
        assert!(c.traces.client_certificate.is_some() && c.metrics.client_certificate.is_some());
        let c = resolve(&[]).unwrap();
        assert!(c.traces.client_certificate.is_none() && c.metrics.client_certificate.is_none());

        let missing = dir.join("missing.pem").display().to_string();
        for (vars, var, want) in [
            (
                vec![("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", a_crt.as_str())],
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                "needs its private key: set OTEL_EXPORTER_OTLP_CLIENT_KEY",
            ),
            (
                vec![("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", a_key.as_str())],
                "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
                "needs its certificate: set OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            ),
            (
                vec![
                    ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", missing.as_str()),
                    ("OTEL_EXPORTER_OTLP_CLIENT_KEY", a_key.as_str()),
                ],
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                "cannot read",
            ),
            (
                vec![
                    ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", a_key.as_str()),
                    ("OTEL_EXPORTER_OTLP_CLIENT_KEY", a_key.as_str()),
                ],
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                "has no PEM certificate",
            ),
            (
                vec![
                    ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", a_crt.as_str()),
                    ("OTEL_EXPORTER_OTLP_CLIENT_KEY", a_crt.as_str()),
                ],
                "OTEL_EXPORTER_OTLP_CLIENT_KEY",
                "has no PEM private key",
            ),
            // The signal's key with the general certificate: a pair that does not match.
            (
                vec![
                    ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", a_crt.as_str()),
                    ("OTEL_EXPORTER_OTLP_CLIENT_KEY", a_key.as_str()),
                    ("OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY", b_key.as_str()),
                ],
                "OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY",
                "is not the private key of the certificate in",
            ),
        ] {
            let msg = resolve(&vars).unwrap_err().to_string();
            assert!(
                msg.starts_with(&format!("{var}: ")) && msg.contains(want),
                "{msg}"
            );
            assert!(!msg.contains(key_body), "{msg}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
