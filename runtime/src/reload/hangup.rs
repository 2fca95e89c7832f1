//! SIGHUP, a daemon's "read your configuration again": the pipeline file and its plugin files
//! are read again at once, as when they change on disk (also under `--no-watch`).

use std::thread::JoinHandle;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::oneshot;

/// Listens for SIGHUP on a thread of its own until dropped.
pub struct HangupListener {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl HangupListener {
    /// Calls `on_hangup` at every SIGHUP; `None` (logged) if signals cannot be listened to.
    pub fn start(mut on_hangup: impl FnMut() + Send + 'static) -> Option<HangupListener> {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| tracing::warn!("SIGHUP will not reload the pipeline file: {error}"))
            .ok()?;
        // Registered before the thread starts, so that a SIGHUP right after never kills the
        // process (the signal's default action).
        let mut hangups = runtime
            .block_on(async { signal(SignalKind::hangup()) })
            .map_err(|error| tracing::warn!("SIGHUP will not reload the pipeline file: {error}"))
            .ok()?;
        let thread = std::thread::Builder::new()
            .name("sluice-sighup".into())
            .spawn(move || {
                runtime.block_on(async move {
                    loop {
                        tokio::select! {
                            _ = &mut stopped => break,
                            received = hangups.recv() => match received {
                                Some(()) => on_hangup(),
                                None => break,
                            },
                        }
                    }
                })
            })
            .map_err(|error| tracing::warn!("SIGHUP will not reload the pipeline file: {error}"))
            .ok()?;
        Some(HangupListener { stop: Some(stop), thread: Some(thread) })
    }
}

impl Drop for HangupListener {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
