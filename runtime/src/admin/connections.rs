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

/// Connections one peer may hold open at once (an IPv4 address, an IPv6 /64).
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
    let open = PeerPlaces::new(MAX_CONNECTIONS_PER_PEER, MAX_CONNECTIONS);
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

/// Places for connections, capped per peer (an IPv4 address; an IPv6 /64, which one client
/// usually holds whole) and in all; a place is held until its guard is dropped.
#[derive(Clone)]
pub(super) struct PeerPlaces {
    places: Arc<Mutex<Places>>,
    per_peer: usize,
    total: usize,
}

#[derive(Default)]
struct Places {
    /// Only peers holding places: an entry goes with its last place.
    by_peer: HashMap<[u8; 8], usize>,
    open: usize,
}

impl PeerPlaces {
    pub(super) fn new(per_peer: usize, total: usize) -> PeerPlaces {
        PeerPlaces { places: Arc::default(), per_peer, total }
    }

    /// A place for one more connection from `peer`; `None` over a cap.
    pub(super) fn admit(&self, peer: IpAddr) -> Option<HeldPlace> {
        let key = peer_key(peer);
        let mut places = self.places.lock().unwrap_or_else(PoisonError::into_inner);
        if places.open >= self.total || places.by_peer.get(&key).is_some_and(|held| *held >= self.per_peer) {
            return None;
        }
        places.open += 1;
        *places.by_peer.entry(key).or_default() += 1;
        Some(HeldPlace { places: self.places.clone(), key })
    }
}

/// The peer a connection is counted against: an IPv4 address (an IPv4-mapped IPv6 one
/// included), or an IPv6 /64.
fn peer_key(peer: IpAddr) -> [u8; 8] {
    match peer {
        IpAddr::V4(v4) => ipv4_key(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => ipv4_key(v4),
            None => {
                let mut key = [0; 8];
                key.copy_from_slice(&v6.octets()[..8]);
                key
            }
        },
    }
}

/// An IPv4 address as a key no IPv6 /64 in use has (the /64 `ffff:ffff::`, reserved).
fn ipv4_key(v4: std::net::Ipv4Addr) -> [u8; 8] {
    let [a, b, c, d] = v4.octets();
    [0xff, 0xff, 0xff, 0xff, a, b, c, d]
}

/// One connection's place; given back when the connection ends, however it ends.
pub(super) struct HeldPlace {
    places: Arc<Mutex<Places>>,
    key: [u8; 8],
}

impl Drop for HeldPlace {
    fn drop(&mut self) {
        let mut places = self.places.lock().unwrap_or_else(PoisonError::into_inner);
        places.open = places.open.saturating_sub(1);
        if let Some(count) = places.by_peer.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                places.by_peer.remove(&self.key);
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
        let places = PeerPlaces::new(3, 5);
        let peer = |text: &str| -> IpAddr { text.parse().expect("an address") };
        let mut held: Vec<HeldPlace> = (0..3).map(|_| places.admit(peer("10.0.0.1")).expect("a place")).collect();
        assert!(places.admit(peer("10.0.0.1")).is_none(), "the peer's cap");
        assert!(places.admit(peer("::ffff:10.0.0.1")).is_none(), "the same peer, IPv4-mapped");
        let other = places.admit(peer("2001:db8::1")).expect("another peer");
        let second = places.admit(peer("2001:db8::2:3")).expect("a second place for that /64");
        assert!(places.admit(peer("192.0.2.7")).is_none(), "the cap in all (5)");
        held.pop();
        drop((other, second));
        assert!(places.admit(peer("10.0.0.1")).is_some(), "a place given back");
        let refused = places.places.lock().expect("not poisoned").by_peer.len();
        assert_eq!(refused, 1, "only peers holding places are kept");
    }
}
