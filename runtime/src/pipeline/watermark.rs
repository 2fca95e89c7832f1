//! Event-time watermarks where records enter a pipeline: how far event time has certainly
//! advanced in one source share or partition.

use std::time::{Duration, Instant};

use crate::config::LateRecords;
use crate::event_time::now_millis;

/// What a source does with a record, by its event time ([`WatermarkGenerator::arrival`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Late, and `late_records = "drop"`: counted and dropped.
    Drop,
    /// Late, and `late_records = "dead-letter"`: to the dead-letter sink with this reason,
    /// which names the watermark the records before it make.
    DeadLetter { reason: String },
    /// Passed on (`late` if it is late and `late_records = "pass"`), after the pending batch
    /// and its watermark if `after_watermark`: the batch's own records made it late.
    Take { late: bool, after_watermark: bool },
}

/// Derives the watermark of one stream of records (a source share, a Kafka partition).
///
/// watermark = newest event time − out-of-orderness. When the stream is idle, event time is
/// assumed to advance with processing time, so that windows still close on a quiet stream.
/// Idle means caught up, not merely silent: silence counts only up to the last moment the
/// source confirmed it had read everything there is (`reached_end`: a Kafka partition whose
/// position is at its high watermark), so a consumer that stalls (a frozen broker, a paused
/// process) and then catches up does not find its windows closed and its records late.
/// A stream that has had no record at all has no event time to advance from: once its source
/// confirmed it has read everything for `idle_timeout`, it follows the wall clock, so that an
/// empty partition does not hold back, forever, the stages behind an exchange. Downstream, a
/// task's watermark is the least of its upstreams' (see `Upstreams`).
#[derive(Debug)]
pub struct WatermarkGenerator {
    out_of_orderness: i64,
    idle_timeout: Duration,
    newest: Option<i64>,
    /// When the last record arrived, or a little later: a record only marks the time
    /// `unstamped`, and the source stamps it between records (`mark_time`: every few records
    /// and before it waits) or it is stamped when next needed. Reading the clock for every
    /// record cost a fast source 2 %; a late stamp only makes the stream look idle later.
    last_received: Instant,
    unstamped: bool,
    emitted: Option<i64>,
    /// The watermark of the checkpoint this stream resumed from.
    resumed: Option<i64>,
    /// The last time the source confirmed it had read everything there is, if it did since
    /// the last record.
    caught_up_at: Option<Instant>,
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
            unstamped: false,
            emitted: None,
            resumed: None,
            caught_up_at: None,
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
        self.by_records().is_some_and(|watermark| timestamp < watermark)
    }

    /// The watermark the records so far make (newest event time − out-of-orderness, or the
    /// watermark resumed from, whichever is ahead): the one a record meets, and a late
    /// record's dead-letter reason names.
    pub fn by_records(&self) -> Option<i64> {
        let by_records = self.newest.map(|newest| newest.saturating_sub(self.out_of_orderness));
        by_records.max(self.resumed)
    }

    /// What becomes of a record with this event time arriving now, under the pipeline's
    /// `late_records` rule; a record taken is observed. Every source (a share, a Kafka
    /// partition) decides through this one verdict, so that a record's fate depends on the
    /// records before it alone.
    pub fn arrival(&mut self, timestamp: i64, rule: LateRecords) -> Arrival {
        let late = self.is_late(timestamp);
        match rule {
            LateRecords::Drop if late => return Arrival::Drop,
            LateRecords::DeadLetter if late => {
                let watermark = self.by_records().unwrap_or(i64::MIN);
                return Arrival::DeadLetter { reason: format!("late record: event time {timestamp} is behind the watermark {watermark}") };
            }
            _ => {}
        }
        let after_watermark = late && self.late_behind_unsent(timestamp);
        self.observe(timestamp);
        Arrival::Take { late, after_watermark }
    }

    /// Whether a record with this event time is late and the tasks have not been told the
    /// watermark that makes it so (it advanced within the pending batch): the source then
    /// sends the batch and that watermark first, so that the operators meet the record behind
    /// the watermark its predecessors make, as one record at a time would, whatever the batch
    /// size.
    fn late_behind_unsent(&self, timestamp: i64) -> bool {
        self.by_records().is_some_and(|watermark| timestamp < watermark && self.emitted.is_none_or(|emitted| emitted < watermark))
    }

    /// Notes a record's event time (the idle clock restarts).
    pub fn observe(&mut self, timestamp: i64) {
        self.newest = Some(self.newest.map_or(timestamp, |newest| newest.max(timestamp)));
        self.unstamped = true;
        self.caught_up_at = None;
        self.at_end = false;
    }

    /// The source confirms that, now, it has read everything there is.
    pub fn reached_end(&mut self) {
        let now = Instant::now();
        self.mark_time(now);
        self.caught_up_at = Some(now);
        self.at_end = true;
    }

    /// The source confirms it had read everything there was at `at` (an answer that took a
    /// while). Ignored if a record arrived since: then it says nothing about the silence.
    pub fn caught_up_at(&mut self, at: Instant) {
        if at >= self.last_received() && self.caught_up_at.is_none_or(|known| known < at) {
            self.caught_up_at = Some(at);
            self.at_end = true;
        }
    }

    /// Whether the stream has been silent for `idle_timeout` and its source has not confirmed
    /// it is caught up in the last `recently`: time to ask (a Kafka partition's high watermark).
    pub fn wants_confirmation(&mut self, recently: Duration) -> bool {
        self.last_received().elapsed() >= self.idle_timeout && self.caught_up_at.is_none_or(|at| at.elapsed() >= recently)
    }

    /// The new watermark after a batch, if it advanced.
    pub fn advance(&mut self) -> Option<i64> {
        let candidate = self.newest?.saturating_sub(self.out_of_orderness);
        self.emit(candidate)
    }

    /// The new watermark while nothing arrives. After records: once the source confirmed it
    /// was caught up `idle_timeout` after the last one, event time advances by the time the
    /// stream is known to have been idle (up to that confirmation, not up to now). Without
    /// records: once the source reached its end and `idle_timeout` passed, from the resumed
    /// watermark, or else from the wall clock.
    pub fn advance_idle(&mut self) -> Option<i64> {
        let last_received = self.last_received();
        if self.newest.is_some() {
            let known_idle = self.caught_up_at.map(|at| at.saturating_duration_since(last_received));
            let Some(idle) = known_idle.filter(|idle| *idle >= self.idle_timeout) else { return self.advance() };
            let shift = i64::try_from(idle.as_millis()).unwrap_or(i64::MAX);
            return self.advance_by(shift);
        }
        let idle = last_received.elapsed();
        if !self.at_end || idle < self.idle_timeout {
            return None;
        }
        match self.resumed {
            Some(resumed) => self.emit(resumed.saturating_add(i64::try_from(idle.as_millis()).unwrap_or(i64::MAX))),
            None => self.emit(now_millis().saturating_sub(self.out_of_orderness)),
        }
    }

    /// When the last record arrived (stamped now if it was not yet).
    fn last_received(&mut self) -> Instant {
        if self.unstamped {
            self.mark_time(Instant::now());
        }
        self.last_received
    }

    /// The source is between records at `now`: the time of the records since the last mark.
    pub fn mark_time(&mut self, now: Instant) {
        if self.unstamped {
            self.last_received = now;
            self.unstamped = false;
        }
    }

    fn advance_by(&mut self, shift: i64) -> Option<i64> {
        let candidate = self.newest?.saturating_sub(self.out_of_orderness).saturating_add(shift);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_record_meets_the_rule_and_the_watermark_of_the_records_before_it() {
        for rule in [LateRecords::Pass, LateRecords::Drop, LateRecords::DeadLetter] {
            let mut generator = WatermarkGenerator::new(1_000, Duration::from_secs(3600));
            assert_eq!(generator.arrival(10_000, rule), Arrival::Take { late: false, after_watermark: false });
            let late = generator.arrival(8_000, rule);
            match rule {
                LateRecords::Pass => assert_eq!(late, Arrival::Take { late: true, after_watermark: true }, "9000 not sent yet"),
                LateRecords::Drop => assert_eq!(late, Arrival::Drop),
                LateRecords::DeadLetter => {
                    assert_eq!(late, Arrival::DeadLetter { reason: "late record: event time 8000 is behind the watermark 9000".into() })
                }
            }
            assert_eq!(generator.advance(), Some(9_000));
            let after_sent = generator.arrival(8_500, LateRecords::Pass);
            assert_eq!(after_sent, Arrival::Take { late: true, after_watermark: false }, "{rule:?}: 9000 was sent");
            assert_eq!(generator.arrival(9_500, rule), Arrival::Take { late: false, after_watermark: false });
        }
    }

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
        assert!((now_millis() - 1_000 - watermark).abs() < 60_000, "{watermark}");
        generator.observe(5);
        assert!(generator.caught_up_at.is_none() && !generator.at_end, "a record arrived: not at the end any more");
    }

    #[test]
    fn idle_streams_advance_with_processing_time_but_do_not_make_records_late() {
        let mut generator = WatermarkGenerator::new(0, Duration::ZERO);
        generator.observe(1_000);
        generator.mark_time(Instant::now()); // as a source does between records
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(generator.advance(), Some(1_000), "processing time alone does not move it");
        generator.reached_end();
        assert!(generator.advance_idle().is_some_and(|watermark| watermark >= 1_020));
        assert!(!generator.is_late(1_010), "lateness is judged by the records alone");
    }

    #[test]
    fn silence_without_a_confirmation_that_the_source_caught_up_is_not_idleness() {
        let mut generator = WatermarkGenerator::new(0, Duration::from_millis(10));
        generator.observe(1_000);
        generator.mark_time(Instant::now());
        assert_eq!(generator.advance(), Some(1_000));
        std::thread::sleep(Duration::from_millis(30));
        // A stalled consumer: silent for longer than idle_timeout, but never confirmed at the end.
        assert!(generator.wants_confirmation(Duration::from_secs(1)));
        assert_eq!(generator.advance_idle(), None, "a stall does not close windows");
        assert!(!generator.is_late(1_001));
        // Confirmed caught up now: idle since the last record, and it advances by that much.
        generator.reached_end();
        assert!(!generator.wants_confirmation(Duration::from_secs(1)), "just confirmed");
        assert!(generator.advance_idle().is_some_and(|watermark| watermark >= 1_030));
    }

    #[test]
    fn a_confirmation_right_after_the_last_record_does_not_count_later_silence() {
        let mut generator = WatermarkGenerator::new(0, Duration::from_millis(10));
        generator.observe(1_000);
        generator.reached_end(); // the consumer reached the end at once
        std::thread::sleep(Duration::from_millis(30));
        // The broker froze: no confirmation since. Known idle time is ~0.
        assert_eq!(generator.advance_idle(), Some(1_000), "only the records' own watermark");
        assert_eq!(generator.advance_idle(), None);
    }

    #[test]
    fn a_record_counts_from_the_first_look_at_the_clock_after_it() {
        let mut generator = WatermarkGenerator::new(0, Duration::from_millis(10));
        generator.observe(1_000);
        let looked = Instant::now();
        generator.mark_time(looked);
        generator.mark_time(looked + Duration::from_secs(5));
        assert_eq!(generator.last_received(), looked, "a later look without records changes nothing");
        generator.observe(1_001);
        assert!(generator.last_received() >= looked, "stamped when needed");
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
