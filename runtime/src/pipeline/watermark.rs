//! Event-time watermarks where records enter a pipeline: how far event time has certainly
//! advanced in one source share or partition.

use std::time::{Duration, Instant};

/// Derives the watermark of one stream of records (a source share, a Kafka partition).
///
/// watermark = newest event time − out-of-orderness. When the stream is idle (nothing arrived
/// for `idle_timeout`), event time is assumed to advance with processing time, so that windows
/// still close on a quiet stream. A stream that has had no record at all has no event time to
/// advance from: once its source says it has reached the end of what there is to read (a Kafka
/// partition at its high watermark), it follows the wall clock, so that an empty partition
/// does not hold back, forever, the stages behind an exchange. Downstream, a task's watermark
/// is the least of its upstreams' (see `Upstreams`).
#[derive(Debug)]
pub struct WatermarkGenerator {
    out_of_orderness: i64,
    idle_timeout: Duration,
    newest: Option<i64>,
    last_received: Instant,
    emitted: Option<i64>,
    /// The watermark of the checkpoint this stream resumed from.
    resumed: Option<i64>,
    /// The source reached the end of what there is to read, and nothing arrived since.
    at_end: bool,
}

impl WatermarkGenerator {
    pub fn new(out_of_orderness: i64, idle_timeout: Duration) -> WatermarkGenerator {
        WatermarkGenerator {
            out_of_orderness,
            idle_timeout,
            newest: None,
            last_received: Instant::now(),
            emitted: None,
            resumed: None,
            at_end: false,
        }
    }

    /// Continues from a checkpoint's watermark: records behind it are late, as they were.
    pub fn resume_at(&mut self, watermark: Option<i64>) {
        self.emitted = watermark;
        self.resumed = watermark;
    }

    /// The last watermark sent downstream.
    pub fn current(&self) -> Option<i64> {
        self.emitted
    }

    /// Whether a record with this event time is late: behind the watermark that the records
    /// before it make (newest event time so far − out-of-orderness, or the watermark resumed
    /// from a checkpoint). Idle advances do not count, so that the verdict depends on the
    /// records alone and a replay judges them alike.
    pub fn is_late(&self, timestamp: i64) -> bool {
        let by_records = self.newest.map(|newest| newest.saturating_sub(self.out_of_orderness));
        by_records.max(self.resumed).is_some_and(|watermark| timestamp < watermark)
    }

    /// Notes a record's event time (the idle clock restarts).
    pub fn observe(&mut self, timestamp: i64) {
        self.newest = Some(self.newest.map_or(timestamp, |newest| newest.max(timestamp)));
        self.last_received = Instant::now();
        self.at_end = false;
    }

    /// The source read everything there is for now (until the next record).
    pub fn reached_end(&mut self) {
        self.at_end = true;
    }

    /// The new watermark after a batch, if it advanced.
    pub fn advance(&mut self) -> Option<i64> {
        let candidate = self.newest?.saturating_sub(self.out_of_orderness);
        self.emit(candidate)
    }

    /// The new watermark while nothing arrives (the source has caught up): after
    /// `idle_timeout` of silence, event time advances with the time waited.
    pub fn advance_idle(&mut self) -> Option<i64> {
        let idle = self.last_received.elapsed();
        if idle < self.idle_timeout {
            return self.advance();
        }
        let shift = i64::try_from(idle.as_millis()).unwrap_or(i64::MAX);
        let candidate = match (self.newest, self.resumed) {
            (Some(newest), _) => newest.saturating_sub(self.out_of_orderness).saturating_add(shift),
            (None, Some(resumed)) if self.at_end => resumed.saturating_add(shift),
            (None, None) if self.at_end => wall_clock_millis().saturating_sub(self.out_of_orderness),
            (None, _) => return None,
        };
        self.emit(candidate)
    }

    fn emit(&mut self, candidate: i64) -> Option<i64> {
        if self.emitted.is_some_and(|emitted| candidate <= emitted) {
            return None;
        }
        self.emitted = Some(candidate);
        Some(candidate)
    }
}

/// Milliseconds since the Unix epoch.
fn wall_clock_millis() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_trails_the_newest_event_time_and_never_goes_back() {
        let mut generator = WatermarkGenerator::new(100, Duration::from_secs(3600));
        assert_eq!(generator.advance(), None);
        generator.observe(1_000);
        assert_eq!(generator.advance(), Some(900));
        generator.observe(950);
        assert_eq!(generator.advance(), None);
        assert!(generator.is_late(899));
        assert!(!generator.is_late(900));
        generator.observe(2_000);
        assert!(generator.is_late(1_899), "judged by the records so far, before the batch ends");
        assert_eq!(generator.advance(), Some(1_900));
    }

    #[test]
    fn a_stream_without_records_follows_the_wall_clock_only_once_its_source_reached_the_end() {
        let mut generator = WatermarkGenerator::new(1_000, Duration::ZERO);
        assert_eq!(generator.advance_idle(), None, "nothing read yet: it may still come");
        generator.reached_end();
        let watermark = generator.advance_idle().expect("an empty partition advances");
        assert!((wall_clock_millis() - 1_000 - watermark).abs() < 60_000, "{watermark}");
        generator.observe(5);
        assert!(!generator.at_end, "a record arrived: not at the end any more");
    }

    #[test]
    fn idle_streams_advance_with_processing_time_but_do_not_make_records_late() {
        let mut generator = WatermarkGenerator::new(0, Duration::ZERO);
        generator.observe(1_000);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(generator.advance(), Some(1_000), "processing time alone does not move it");
        assert!(generator.advance_idle().is_some_and(|watermark| watermark >= 1_020));
        assert!(!generator.is_late(1_010), "lateness is judged by the records alone");
    }

    #[test]
    fn a_resumed_watermark_judges_records_until_newer_ones_arrive() {
        let mut generator = WatermarkGenerator::new(0, Duration::from_secs(60));
        generator.resume_at(Some(5_000));
        assert!(generator.is_late(4_999));
        assert_eq!(generator.advance(), None);
        generator.observe(6_000);
        assert_eq!(generator.advance(), Some(6_000));
    }
}
