//! Event-time watermarks: how far event time has certainly advanced in one task.

use std::time::{Duration, Instant};

/// Tracks the newest event time seen and derives the watermark from it.
///
/// watermark = newest event time − out-of-orderness. When the task has received nothing for
/// `idle_timeout`, event time is assumed to advance with processing time, so that windows
/// still close on a quiet stream. Slow processing is not idleness: the clock restarts with
/// every message the task receives.
#[derive(Debug)]
pub struct WatermarkTracker {
    out_of_orderness: i64,
    idle_timeout: Duration,
    newest: Option<i64>,
    last_received: Instant,
    emitted: Option<i64>,
}

impl WatermarkTracker {
    pub fn new(out_of_orderness: i64, idle_timeout: Duration) -> WatermarkTracker {
        WatermarkTracker { out_of_orderness, idle_timeout, newest: None, last_received: Instant::now(), emitted: None }
    }

    /// Continues from a checkpoint's watermark: records behind it are late, as they were.
    pub fn resume_at(&mut self, watermark: Option<i64>) {
        self.emitted = watermark;
    }

    /// The last watermark handed to the operators.
    pub fn current(&self) -> Option<i64> {
        self.emitted
    }

    /// Whether a record with this event time is behind the current watermark.
    pub fn is_late(&self, timestamp: i64) -> bool {
        self.emitted.is_some_and(|watermark| timestamp < watermark)
    }

    /// Notes a record's event time.
    pub fn observe(&mut self, timestamp: i64) {
        self.newest = Some(self.newest.map_or(timestamp, |newest| newest.max(timestamp)));
    }

    /// Notes that the task received something (the idle clock restarts).
    pub fn received(&mut self) {
        self.last_received = Instant::now();
    }

    /// The new watermark after processing, if it advanced.
    pub fn advance(&mut self) -> Option<i64> {
        let candidate = self.newest?.saturating_sub(self.out_of_orderness);
        self.emit(candidate)
    }

    /// The new watermark while nothing arrives: after `idle_timeout` of silence, event time
    /// advances with the time waited.
    pub fn advance_idle(&mut self) -> Option<i64> {
        let idle = self.last_received.elapsed();
        if idle < self.idle_timeout {
            return self.advance();
        }
        let shift = i64::try_from(idle.as_millis()).unwrap_or(i64::MAX);
        let candidate = self.newest?.saturating_sub(self.out_of_orderness).saturating_add(shift);
        self.emit(candidate)
    }

    /// The end of the input: the largest watermark, which closes everything.
    pub fn finish(&mut self) -> Option<i64> {
        self.emit(i64::MAX)
    }

    fn emit(&mut self, candidate: i64) -> Option<i64> {
        if self.emitted.is_some_and(|emitted| candidate <= emitted) {
            return None;
        }
        self.emitted = Some(candidate);
        Some(candidate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_trails_the_newest_event_time_and_never_goes_back() {
        let mut tracker = WatermarkTracker::new(100, Duration::from_secs(3600));
        assert_eq!(tracker.advance(), None);
        tracker.observe(1_000);
        assert_eq!(tracker.advance(), Some(900));
        tracker.observe(950);
        assert_eq!(tracker.advance(), None);
        assert!(tracker.is_late(899));
        assert!(!tracker.is_late(900));
        tracker.observe(2_000);
        assert_eq!(tracker.advance(), Some(1_900));
        assert_eq!(tracker.finish(), Some(i64::MAX));
        assert_eq!(tracker.finish(), None);
    }

    #[test]
    fn idle_sources_advance_with_processing_time() {
        let mut tracker = WatermarkTracker::new(0, Duration::ZERO);
        tracker.observe(1_000);
        tracker.received();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(tracker.advance(), Some(1_000), "processing time alone does not move it");
        assert!(tracker.advance_idle().is_some_and(|watermark| watermark >= 1_020));
    }
}
