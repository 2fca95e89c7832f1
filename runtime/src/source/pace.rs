//! What the generators share: which records a share makes, and keeping to a rate.

use std::time::{Duration, Instant};

use super::SourceOutput;

/// Longest sleep between checks of the stop signal and the batch linger.
const PACE_SLICE: Duration = Duration::from_millis(20);

/// The first record number of share `share` of `step` at or after `resume_from`: a share makes
/// records `share`, `share + step`, ...
pub fn first_of_share(resume_from: u64, share: u64, step: u64) -> u64 {
    resume_from + (share + step - resume_from % step) % step
}

/// Waits until the `made`-th record of a share since `started` is due at the share's part of
/// `rate` (records per second over all `shares`), in short slices so that a stop is noticed and
/// a lingering batch is sent. False if the pipeline stops meanwhile.
pub fn pace(rate: Option<f64>, made: u64, shares: usize, started: Instant, output: &mut SourceOutput) -> bool {
    let Some(rate) = rate.map(|rate| rate / shares.max(1) as f64) else { return true };
    let due = Duration::try_from_secs_f64(made as f64 / rate).unwrap_or(Duration::MAX);
    loop {
        let elapsed = started.elapsed();
        if due <= elapsed + Duration::from_millis(1) {
            return true;
        }
        // Nothing is due yet. This is no silence of the stream: the generator knows its next
        // record, whose event time follows its own clock, not the wall's. Counted as idle, the
        // pause would advance the watermark by wall-clock time past records it has yet to make
        // (a slow `rate` made every record after the first late).
        if output.stop.is_raised() || output.flush_lingering().is_err() {
            return false;
        }
        std::thread::sleep((due - elapsed).min(PACE_SLICE));
    }
}
