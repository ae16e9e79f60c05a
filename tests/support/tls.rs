//! HTTPS in front of a test server: a TLS terminator on 127.0.0.1 that forwards the decrypted
//! bytes to a plain-HTTP address (the store, or a fault proxy in front of it), so the binary talks
//! to S3 over TLS as it does to AWS.
//!
//! Its certificate (`fixtures/tls/server.pem`, for `127.0.0.1` and `localhost`, valid until 2126)
//! is signed by a test CA (`fixtures/tls/ca.pem`) that a run trusts through `SSL_CERT_FILE`, which
//! the SDK's native root store reads. They were made once with openssl; see
//! `fixtures/tls/README.md`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tls").join(name)
}

/// The CA a run must trust to reach [`start`]'s endpoint (its `SSL_CERT_FILE`).
pub fn ca_file() -> PathBuf {
    fixture("ca.pem")
}

/// Starts a TLS terminator forwarding to `upstream` on `runtime`; returns its `https://` endpoint.
/// It stops with the runtime.
pub fn start(runtime: &tokio::runtime::Handle, upstream: SocketAddr) -> String {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(fixture("server.pem"))
        .expect("fixtures/tls/server.pem")
        .collect::<Result<_, _>>()
        .expect("a PEM certificate");
    let key = PrivateKeyDer::from_pem_file(fixture("server-key.pem")).expect("fixtures/tls/server-key.pem");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("the test certificate and key");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = runtime.block_on(TcpListener::bind(("127.0.0.1", 0))).unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let (Ok(mut tls), Ok(mut plain)) = (acceptor.accept(socket).await, TcpStream::connect(upstream).await)
                else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    format!("https://{addr}")
}
