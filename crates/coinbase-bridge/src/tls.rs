//! TLS to the Coinbase gateways: rustls (TLS 1.2 and 1.3 only, ring provider), server
//! certificates verified against the system roots plus the bundled Mozilla roots, or only
//! against a given CA file (tests, private gateways).

use anyhow::Context as _;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Builds the client configuration. With `ca_file`, only its certificates are trusted.
pub fn client_config(ca_file: Option<&Path>) -> anyhow::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path)
                .with_context(|| format!("reading CA file {}", path.display()))?;
            let mut added = 0;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.with_context(|| format!("parsing CA file {}", path.display()))?;
                roots
                    .add(cert)
                    .with_context(|| format!("adding a certificate of {}", path.display()))?;
                added += 1;
            }
            anyhow::ensure!(added > 0, "no certificate in CA file {}", path.display());
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for e in &native.errors {
                tracing::debug!("skipping a system root certificate source: {e}");
            }
            let (ok, bad) = roots.add_parsable_certificates(native.certs);
            tracing::debug!(ok, bad, "system root certificates loaded");
            // The bundled roots cover hosts without a CA store (minimal containers).
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Connects TCP (no Nagle: FIX messages are small and latency matters) and completes the
/// TLS handshake, verifying the certificate for `server_name` (default: `host`).
pub async fn connect(
    config: Arc<ClientConfig>,
    host: &str,
    port: u16,
    server_name: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<TlsStream<TcpStream>> {
    let tcp = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
        .await
        .with_context(|| format!("TCP connect to {host}:{port} timed out"))?
        .with_context(|| format!("TCP connect to {host}:{port}"))?;
    tcp.set_nodelay(true).context("setting TCP_NODELAY")?;
    let name = server_name.unwrap_or(host).to_owned();
    let name = ServerName::try_from(name.clone())
        .with_context(|| format!("invalid TLS server name {name:?}"))?;
    tokio::time::timeout(timeout, TlsConnector::from(config).connect(name, tcp))
        .await
        .with_context(|| format!("TLS handshake with {host}:{port} timed out"))?
        .with_context(|| format!("TLS handshake with {host}:{port}"))
}
