//! SIGHUP, a daemon's "read your configuration again": the pipeline file and its plugin files
//! are read again at once, as when they change on disk (also under `--no-watch`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::oneshot;

/// Whether a SIGHUP came while no listener listened (before the first started, in a slow
/// start, or while the pipeline restarted): the next listener applies it once.
static MISSED: AtomicBool = AtomicBool::new(false);

extern "C" fn note_hangup(_signal: libc::c_int) {
    MISSED.store(true, Ordering::SeqCst);
}

/// From the start of `sluice run`: a SIGHUP before a listener runs is noted and applied once
/// one does, rather than killing the process (the signal's default action: a systemd `reload`
/// during a slow start, or while a sink waits for a named pipe's reader, ended the service).
pub fn note_early_hangups() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe; replacing
    // SIGHUP's default action touches nothing else.
    unsafe { libc::signal(libc::SIGHUP, note_hangup as *const () as libc::sighandler_t) };
}

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
                    if MISSED.swap(false, Ordering::SeqCst) {
                        on_hangup();
                    }
                    loop {
                        tokio::select! {
                            _ = &mut stopped => break,
                            received = hangups.recv() => match received {
                                Some(()) => {
                                    // The handler noted before may be called too: this one is applied.
                                    MISSED.store(false, Ordering::SeqCst);
                                    on_hangup();
                                }
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
