//! Serving a router over HTTP/1 with bounds no client can wear down: a deadline for each
//! request's head (which also closes a kept-alive connection left idle), and a cap on open
//! connections, past which a new one is closed at once. Without them, clients that connect
//! and send nothing, or a byte now and then, held a descriptor each for ever, until the
//! process had none left for its checkpoints.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::serve::Listener;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;

/// Time a client has to send a request's head, from when the connection is ready for one
/// (opened, or done with the previous answer).
pub const REQUEST_HEAD_LIMIT: Duration = Duration::from_secs(10);

/// Connections one listener keeps open at once.
pub const MAX_CONNECTIONS: usize = 256;

/// How long a stop waits for requests in progress before closing their connections.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// Serves `router` on `listener` until `shutdown` completes, then lets requests in progress
/// finish (for up to [`DRAIN_LIMIT`]).
pub async fn serve<L: Listener>(mut listener: L, router: Router, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
    let open = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(REQUEST_HEAD_LIMIT);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut refused_any = false;
    loop {
        let (io, _address) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        // Over the cap: closed at once, rather than left waiting in the backlog.
        let Ok(permit) = open.clone().try_acquire_owned() else {
            if !std::mem::replace(&mut refused_any, true) {
                tracing::warn!("an HTTP listener closed a connection: {MAX_CONNECTIONS} are open already (said once)");
            }
            drop(io);
            continue;
        };
        let connection = http.serve_connection(TokioIo::new(io), TowerToHyperService::new(router.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _permit = permit;
            // A client that went away, or sent no head in time: nothing to report.
            let _ = connection.await;
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN_LIMIT, graceful.shutdown()).await;
    Ok(())
}
