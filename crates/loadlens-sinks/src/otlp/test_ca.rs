//! A certificate authority for TLS tests (this crate's, and the binary's with the `testing`
//! feature): it signs collector and client certificates, and builds a collector's rustls
//! configuration that may require a client certificate it signed. Its PEM is what a user hands
//! to `OTEL_EXPORTER_OTLP_CERTIFICATE`.

use std::sync::Arc;

/// A self-signed CA with a name of its own (two of them are two different CAs, as in life).
pub struct TestCa {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

impl TestCa {
    /// A new CA.
    pub fn new() -> TestCa {
        let key = rcgen::KeyPair::generate().expect("a key pair");
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("loadlens test CA {}", fastrand::u64(..)),
        );
        ca.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        TestCa {
            cert: ca.self_signed(&key).expect("a self-signed CA"),
            key,
        }
    }

    /// The CA certificate as PEM.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// The CA as the only trust anchor.
    pub fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.cert.der().clone())
            .expect("the CA is a valid anchor");
        roots
    }

    /// A certificate it signed for `names`, with its key.
    pub fn issue(&self, names: &[&str]) -> (rcgen::Certificate, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().expect("a key pair");
        let names = names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        let cert = rcgen::CertificateParams::new(names)
            .expect("certificate parameters")
            .signed_by(&key, &self.cert, &self.key)
            .expect("a signed certificate");
        (cert, key)
    }

    /// A collector's configuration with a certificate it signed for `127.0.0.1` and
    /// `localhost`, offering `alpn`; with `require_client_certificate`, clients must present a
    /// certificate it signed.
    pub fn server_config(
        &self,
        require_client_certificate: bool,
        alpn: &[u8],
    ) -> Arc<rustls::ServerConfig> {
        let (leaf, leaf_key) = self.issue(&["127.0.0.1", "localhost"]);
        let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der())
            .expect("a private key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("TLS versions");
        let builder = if require_client_certificate {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                self.roots().into(),
                provider,
            )
            .build()
            .expect("a client verifier");
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut cfg = builder
            .with_single_cert(vec![leaf.der().clone()], key)
            .expect("a server certificate");
        cfg.alpn_protocols = vec![alpn.to_vec()];
        Arc::new(cfg)
    }
}
