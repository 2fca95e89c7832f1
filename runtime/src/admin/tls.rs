//! TLS for the admin API, with OpenSSL (which librdkafka links already): a listener whose
//! connections are TLS streams once their handshake succeeds.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use openssl::ssl::{Ssl, SslAcceptor, SslFiletype, SslMethod};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
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
        // OpenSSL takes file names as text (and panics on others): refuse them first.
        if cert.to_str().is_none() || key.to_str().is_none() {
            return Err(fail("a path that is not UTF-8: OpenSSL takes file names as text".into()));
        }
        readable_pem(cert, "certificate").map_err(fail)?;
        readable_pem(key, "private key").map_err(fail)?;
        builder.set_certificate_chain_file(cert).map_err(|error| fail(format!("the certificate: {}", reasons(&error))))?;
        builder.set_private_key_file(key, SslFiletype::PEM).map_err(|error| fail(format!("the private key: {}", reasons(&error))))?;
        builder.check_private_key().map_err(|error| fail(format!("the key does not match the certificate: {}", reasons(&error))))?;
        Ok(TlsIdentity { acceptor: Arc::new(builder.build()) })
    }
}

/// Fails with a plain reason unless `path` can be read and holds a PEM block: OpenSSL's own
/// errors for these name its source files and internal routines.
fn readable_pem(path: &Path, what: &str) -> Result<(), String> {
    let text = std::fs::read(path).map_err(|error| format!("cannot read the {what} {}: {error}", path.display()))?;
    if !text.windows(b"-----BEGIN ".len()).any(|window| window == b"-----BEGIN ") {
        return Err(format!("the {what} {} is not PEM (no \"-----BEGIN\" line)", path.display()));
    }
    Ok(())
}

/// OpenSSL's reasons for `error`, without its library and file positions.
fn reasons(error: &openssl::error::ErrorStack) -> String {
    let reasons: Vec<&str> = error.errors().iter().filter_map(openssl::error::Error::reason).collect();
    if reasons.is_empty() { error.to_string() } else { reasons.join("; ") }
}

/// Accepts TCP connections and completes their TLS handshakes, each in a task of its own (at
/// most [`HANDSHAKES_AT_ONCE`] at a time), so that a client that connects and says nothing
/// delays no other; a client that fails its handshake, or takes too long, is dropped.
pub struct TlsListener {
    ready: mpsc::Receiver<(SslStream<TcpStream>, SocketAddr)>,
    address: Option<SocketAddr>,
    accepting: tokio::task::JoinHandle<()>,
}

/// Most handshakes under way at once; further connections wait to be accepted.
const HANDSHAKES_AT_ONCE: usize = 64;

/// Most handshakes under way at once from one peer (an IPv4 address, an IPv6 /64); a further
/// connection from it is closed.
const HANDSHAKES_PER_PEER: usize = 8;

impl TlsListener {
    /// Starts accepting on `tcp` (in the current Tokio runtime).
    pub fn new(tcp: TcpListener, identity: &TlsIdentity) -> TlsListener {
        let address = tcp.local_addr().ok();
        let (sender, ready) = mpsc::channel(HANDSHAKES_AT_ONCE);
        let accepting = tokio::spawn(accept_and_handshake(tcp, identity.acceptor.clone(), sender));
        TlsListener { ready, address, accepting }
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

async fn accept_and_handshake(tcp: TcpListener, acceptor: Arc<SslAcceptor>, ready: mpsc::Sender<(SslStream<TcpStream>, SocketAddr)>) {
    let handshakes = Arc::new(Semaphore::new(HANDSHAKES_AT_ONCE));
    // One peer's handshakes take a few of the places, so that one client reconnecting in a
    // loop cannot hold them all.
    let by_peer = super::connections::PeerPlaces::new(HANDSHAKES_PER_PEER, HANDSHAKES_AT_ONCE);
    loop {
        let Ok(permit) = handshakes.clone().acquire_owned().await else { return };
        let (stream, address) = match tcp.accept().await {
            Ok(connection) => connection,
            Err(error) => {
                // Out of file descriptors, say: wait rather than spin.
                tracing::warn!("the admin API cannot accept a connection: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(place) = by_peer.admit(address.ip()) else {
            drop(stream);
            continue;
        };
        let (acceptor, ready) = (acceptor.clone(), ready.clone());
        tokio::spawn(async move {
            let (_permit, _place) = (permit, place);
            match tokio::time::timeout(HANDSHAKE_LIMIT, handshake(&acceptor, stream)).await {
                Ok(Ok(tls)) => {
                    let _ = ready.send((tls, address)).await;
                }
                Ok(Err(reason)) => tracing::debug!(%address, "admin API TLS handshake failed: {reason}"),
                Err(_) => tracing::debug!(%address, "admin API TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = SslStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accepting task ended (only if the runtime is shutting down): nothing more comes.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.address.ok_or_else(|| std::io::Error::other("the admin API's listener has no local address"))
    }
}

async fn handshake(acceptor: &SslAcceptor, stream: TcpStream) -> Result<SslStream<TcpStream>, String> {
    let ssl = Ssl::new(acceptor.context()).map_err(|error| error.to_string())?;
    let mut tls = SslStream::new(ssl, stream).map_err(|error| error.to_string())?;
    Pin::new(&mut tls).accept().await.map_err(|error| error.to_string())?;
    Ok(tls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_or_non_pem_files_are_refused_with_a_plain_reason() {
        let directory = tempfile::tempdir().expect("a directory");
        let missing = directory.path().join("missing.pem");
        let text = directory.path().join("notes.txt");
        std::fs::write(&text, "not a certificate").expect("write");
        let refused = |cert: &Path| TlsIdentity::from_pem_files(cert, cert).map(drop).expect_err("refused").to_string();
        let message = refused(&missing);
        assert!(message.contains(&format!("cannot read the certificate {}: No such file", missing.display())), "{message}");
        let message = refused(&text);
        assert!(message.contains("is not PEM (no \"-----BEGIN\" line)") && !message.contains("crypto/"), "{message}");
    }
}
