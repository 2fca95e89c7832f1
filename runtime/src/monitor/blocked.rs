//! A task's time blocked on full queues, counted while it lasts: a send that waits tells the
//! clock of the task's thread, and every scrape credits the wait so far, so that a stalled sink
//! shows as back-pressure during the stall, not only once it ends.

use std::cell::RefCell;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::metrics::SecondsCounter;

/// The back-pressure counter of one task, and when its current wait began (or was last
/// credited by a scrape).
#[derive(Debug)]
pub struct BlockedClock {
    counter: SecondsCounter,
    waiting_since: Mutex<Option<Instant>>,
}

impl BlockedClock {
    pub fn new(counter: SecondsCounter) -> BlockedClock {
        BlockedClock { counter, waiting_since: Mutex::new(None) }
    }

    fn start(&self) {
        *self.since() = Some(Instant::now());
    }

    fn stop(&self) {
        if let Some(since) = self.since().take() {
            self.counter.inc_by(since.elapsed().as_secs_f64());
        }
    }

    /// Credits the wait so far, if the task is waiting now (a scrape is about to read).
    pub fn credit_ongoing(&self) {
        let mut since = self.since();
        if let Some(since) = since.as_mut() {
            let now = Instant::now();
            self.counter.inc_by(now.duration_since(*since).as_secs_f64());
            *since = now;
        }
    }

    fn since(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.waiting_since.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

thread_local! {
    /// The clock of the task running on this thread, if it has metrics.
    static CURRENT: RefCell<Option<Arc<BlockedClock>>> = const { RefCell::new(None) };
}

/// Makes `clock` the one this thread's blocked sends count on (a task's thread, at its start).
pub fn count_blocked_sends_on(clock: Option<Arc<BlockedClock>>) {
    CURRENT.with(|current| *current.borrow_mut() = clock);
}

/// Runs `wait` (a send into a full queue), counting its time on this thread's clock while it
/// lasts; returns the time it took.
pub fn blocked<R>(wait: impl FnOnce() -> R) -> (R, Duration) {
    let clock = CURRENT.with(|current| current.borrow().clone());
    if let Some(clock) = &clock {
        clock.start();
    }
    let started = Instant::now();
    let result = wait();
    let took = started.elapsed();
    if let Some(clock) = &clock {
        clock.stop();
    }
    (result, took)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_is_credited_while_it_lasts_and_once_in_all() {
        let counter = SecondsCounter::default();
        let clock = Arc::new(BlockedClock::new(counter.clone()));
        count_blocked_sends_on(Some(clock.clone()));
        let (entered, release) = std::sync::mpsc::channel::<()>();
        let (ready, go) = std::sync::mpsc::sync_channel::<()>(0);
        let scraper = {
            let clock = clock.clone();
            let counter = counter.clone();
            std::thread::spawn(move || {
                go.recv().expect("the wait began");
                std::thread::sleep(Duration::from_millis(30));
                clock.credit_ongoing();
                let during = counter.get();
                entered.send(()).expect("the waiter listens");
                during
            })
        };
        let (_, took) = blocked(|| {
            ready.send(()).expect("the scraper listens");
            release.recv().expect("the scraper answers");
        });
        let during = scraper.join().expect("the scraper ends");
        assert!(during >= 0.03, "credited during the wait: {during}");
        let total = counter.get();
        assert!((total - took.as_secs_f64()).abs() < 1e-3, "the whole wait once: {total} vs {took:?}");
        count_blocked_sends_on(None);
    }
}
