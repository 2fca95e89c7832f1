//! Serving a router over HTTP/1 with bounds no client can wear down: a deadline for each
//! request's head (which also closes a kept-alive connection left idle), a cap on the
//! connections one peer address may hold, and one on all of them; a connection past a cap is
//! closed at once. Without them, clients that connect and send nothing, or a byte now and
//! then, held a descriptor each for ever, until the process had none left for its
//! checkpoints; with one cap alone, one peer could take every connection, the orchestrator's
//! health probes refused with the rest.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::serve::Listener;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;

/// Time a client has to send a request's head, from when the connection is ready for one
/// (opened, or done with the previous answer).
pub const REQUEST_HEAD_LIMIT: Duration = Duration::from_secs(10);

/// Connections one listener keeps open at once, all peers together.
pub const MAX_CONNECTIONS: usize = 1024;

/// Connections one peer address may hold open at once.
pub const MAX_CONNECTIONS_PER_PEER: usize = 64;

/// How long a stop waits for requests in progress before closing their connections.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// How often connections closed over a cap are said in the log, at most.
const REFUSALS_SAID_EVERY: Duration = Duration::from_secs(60);

/// Serves `router` on `listener` until `shutdown` completes, then lets requests in progress
/// finish (for up to [`DRAIN_LIMIT`]).
pub async fn serve<L>(mut listener: L, router: Router, shutdown: impl Future<Output = ()>) -> std::io::Result<()>
where
    L: Listener<Addr = SocketAddr>,
{
    let open = OpenConnections::default();
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(REQUEST_HEAD_LIMIT);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut refusals = Refusals::default();
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        // Over a cap: closed at once, rather than left waiting in the backlog.
        let Some(held) = open.admit(peer.ip()) else {
            refusals.note(peer.ip());
            drop(io);
            continue;
        };
        let connection = http.serve_connection(TokioIo::new(io), TowerToHyperService::new(router.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _held = held;
            // A client that went away, or sent no head in time: nothing to report.
            let _ = connection.await;
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN_LIMIT, graceful.shutdown()).await;
    Ok(())
}

/// The connections open, by peer address.
#[derive(Clone, Default)]
struct OpenConnections(Arc<Mutex<HashMap<IpAddr, usize>>>);

impl OpenConnections {
    /// A place for one more connection from `peer`, held until the returned guard is dropped;
    /// `None` over a cap.
    fn admit(&self, peer: IpAddr) -> Option<HeldConnection> {
        let mut open = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let total: usize = open.values().sum();
        let of_peer = open.entry(peer).or_default();
        if total >= MAX_CONNECTIONS || *of_peer >= MAX_CONNECTIONS_PER_PEER {
            return None;
        }
        *of_peer += 1;
        Some(HeldConnection { open: self.clone(), peer })
    }
}

/// One open connection's place; given back when the connection ends, however it ends.
struct HeldConnection {
    open: OpenConnections,
    peer: IpAddr,
}

impl Drop for HeldConnection {
    fn drop(&mut self) {
        let mut open = self.open.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.peer) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.peer);
            }
        }
    }
}

/// Connections closed over a cap, said in the log at most once a minute.
#[derive(Default)]
struct Refusals {
    since_said: u64,
    said_at: Option<Instant>,
}

impl Refusals {
    fn note(&mut self, peer: IpAddr) {
        self.since_said += 1;
        if self.said_at.is_none_or(|at| at.elapsed() >= REFUSALS_SAID_EVERY) {
            tracing::warn!(
                %peer,
                closed = self.since_said,
                "an HTTP listener closed connections over its caps ({MAX_CONNECTIONS_PER_PEER} per peer address, \
                 {MAX_CONNECTIONS} in all; said at most once a minute)"
            );
            self.since_said = 0;
            self.said_at = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_capped_alone_and_its_places_come_back_when_its_connections_end() {
        let open = OpenConnections::default();
        let (first, second): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let mut held: Vec<HeldConnection> = (0..MAX_CONNECTIONS_PER_PEER).map(|_| open.admit(first).expect("a place")).collect();
        assert!(open.admit(first).is_none(), "the peer's cap");
        assert!(open.admit(second).is_some(), "another peer is still answered");
        held.pop();
        assert!(open.admit(first).is_some(), "a place given back");
    }
}
