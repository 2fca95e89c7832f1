//! TLS for the admin API, with OpenSSL (which librdkafka links already): a listener whose
//! connections are TLS streams once their handshake succeeds.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use openssl::ssl::{Ssl, SslAcceptor, SslFiletype, SslMethod};
use tokio::net::{TcpListener, TcpStream};
use tokio_openssl::SslStream;

/// Longest a client may take to complete its handshake.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);

/// Why the certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("TLS for the admin API ({cert}, {key}): {reason}")]
pub struct TlsError {
    cert: PathBuf,
    key: PathBuf,
    reason: String,
}

/// The admin API's certificate chain and private key (PEM files), ready to accept with.
#[derive(Clone)]
pub struct TlsIdentity {
    acceptor: Arc<SslAcceptor>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsIdentity(…)")
    }
}

impl TlsIdentity {
    /// Loads `cert` (a PEM chain, the server's certificate first) and its private `key`.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<TlsIdentity, TlsError> {
        let fail = |reason: String| TlsError { cert: cert.to_owned(), key: key.to_owned(), reason };
        let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).map_err(|error| fail(error.to_string()))?;
        builder.set_certificate_chain_file(cert).map_err(|error| fail(format!("the certificate: {error}")))?;
        builder.set_private_key_file(key, SslFiletype::PEM).map_err(|error| fail(format!("the private key: {error}")))?;
        builder.check_private_key().map_err(|error| fail(format!("the key does not match the certificate: {error}")))?;
        Ok(TlsIdentity { acceptor: Arc::new(builder.build()) })
    }
}

/// Accepts TCP connections and completes their TLS handshake; a client that fails it (or
/// takes too long) is dropped and the next one accepted.
pub struct TlsListener {
    tcp: TcpListener,
    acceptor: Arc<SslAcceptor>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, identity: &TlsIdentity) -> TlsListener {
        TlsListener { tcp, acceptor: identity.acceptor.clone() }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = SslStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, address) = match self.tcp.accept().await {
                Ok(connection) => connection,
                Err(error) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!("the admin API cannot accept a connection: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            match tokio::time::timeout(HANDSHAKE_LIMIT, handshake(&self.acceptor, stream)).await {
                Ok(Ok(tls)) => return (tls, address),
                Ok(Err(reason)) => tracing::debug!(%address, "admin API TLS handshake failed: {reason}"),
                Err(_) => tracing::debug!(%address, "admin API TLS handshake timed out"),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

async fn handshake(acceptor: &SslAcceptor, stream: TcpStream) -> Result<SslStream<TcpStream>, String> {
    let ssl = Ssl::new(acceptor.context()).map_err(|error| error.to_string())?;
    let mut tls = SslStream::new(ssl, stream).map_err(|error| error.to_string())?;
    Pin::new(&mut tls).accept().await.map_err(|error| error.to_string())?;
    Ok(tls)
}
