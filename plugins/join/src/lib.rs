//! `join`: joins the records of two inputs whose key fields are equal (an incremental,
//! symmetric hash join), optionally only within an interval of event time of each left record,
//! and optionally keeping only each left record's best match.
//!
//! ```toml
//! [[operators]]
//! name = "sellers"
//! inputs = ["auctions", "persons"]   # input 0 is `left`, input 1 is `right`
//! [operators.config]
//! key = ["person"]        # dotted paths, the same on both inputs; values compared canonically
//! retention = "10s"       # forget a record once the watermark is this far past its event time
//! max_records = 100000    # records kept by one instance, both sides together
//! missing = "drop"        # records without a key value: "drop" (counted) or "reject"
//! # An interval join: a right record matches only if left.start <= its event time <= left.end
//! # (left fields, epoch milliseconds).
//! # within = { from = "start", to = "end" }
//! # With `within` (and `retention`): each left record once, with its right match of the
//! # highest `price`, when the watermark passes its `end`.
//! # best = { field = "price", keep = "max" }
//! # unmatched = "drop"    # with `best`, left records without a match: "drop" (counted) or "emit"
//! ```
//! Each record is joined with every record of the other input that has the same key and is
//! still kept, and is then kept itself. A match is emitted at once as
//! `{"left": <left record>, "right": <right record>}`, its event time the later of the two, so
//! every pair is emitted exactly once, whichever input's record came first. Without
//! `retention`, records are kept for as long as the operator runs (within `max_records`);
//! with it, records whose event time is more than `retention` behind the watermark are
//! forgotten (and a record already that late is joined with what is kept but not kept
//! itself), and records more than `retention` apart in event time are not paired, so that
//! which pairs are made never depends on when the watermark forgot a record: the same pairs
//! at any batching and parallelism for records that are not late. Past `max_records`, or once
//! the kept records take a third of `memory_limit` (estimated: [`record_cost`]), new records
//! are joined but not kept (counted in `records_not_kept`). Distribution: by `key`, so
//! both inputs' records of a key meet in one instance.
//!
//! With `within`, a pair is made only if the right record's event time is within the left
//! record's `[from, to]` (and, with `retention`, at most that before the left record's event
//! time); a left record is kept until the watermark passes `to` (no right record it matches is
//! expected after that), whatever `retention`, which then applies to right records only. A
//! left record without `from` or `to` follows `missing`.
//!
//! With `best`, pairs are not emitted as they are found: each left record keeps its best match
//! so far (the highest or lowest `field`; of equal values, the earliest in event time, then the
//! least text, whatever the arrival) and is emitted once, as `{"left": …, "right": <best
//! match>}` with event time `to`, when the watermark passes `to` (`to < watermark`), then
//! forgotten; without a match, as `{"left": …, "right": null}` if `unmatched = "emit"`, else
//! counted in `unmatched_dropped`. A right record updates every kept left record of its key
//! whose interval holds it and is kept for left records still to come until the watermark
//! passes its event time + `retention` (required), so a right record may come before its left
//! record. Past `max_records`, a left record is not kept, so never emitted (counted in
//! `records_not_kept`). State: the kept records, left records with their best match (version
//! 2; version 1 is migrated).

mod best;
mod config;
mod fields;
mod kept;
mod migrate;

use sluice_sdk::{Batch, Distribution, FieldPath, KeyText, Operator, Output, Record};

pub use config::{BestConfig, JoinConfig, Keep, MissingKeyPolicy, UnmatchedPolicy, WithinConfig};
pub use fields::Interval;
pub use kept::{BestMatch, Kept, KeptRecord, cost_of, record_cost};

use best::{best_kept_match, emit_best};
use config::Settings;
use fields::read_number;

/// A running join.
pub struct Join {
    settings: Settings,
    kept: Kept,
    /// The key being read, reused across records.
    identity: KeyText,
    /// The pair being written, reused across matches.
    pair: Vec<u8>,
    /// Whether the log said that `max_records` or the memory budget was reached.
    warned_full: bool,
    /// The most bytes the kept records may take (estimated: [`kept::record_cost`]): a third of
    /// the instance's `memory_limit`.
    memory_budget: usize,
    /// Whether a record was not kept for the memory budget (rather than `max_records`).
    over_memory_budget: bool,
}

impl Operator for Join {
    type Config = JoinConfig;

    fn init(config: JoinConfig) -> Result<Self, String> {
        let settings = Settings::from_config(config)?;
        // A third of the instance's memory: a snapshot copies what is kept, and batches need room.
        let memory_budget = usize::try_from(sluice_sdk::init_context().memory_limit / 3).unwrap_or(usize::MAX);
        Ok(Join {
            settings,
            kept: Kept::default(),
            identity: KeyText::default(),
            pair: Vec::new(),
            warned_full: false,
            memory_budget,
            over_memory_budget: false,
        })
    }

    fn distribution(&self) -> Distribution {
        Distribution::grouped_by(&self.settings.key)
    }

    fn process(&mut self, batch: &Batch, out: &mut Output) {
        let mut counts = Counts::default();
        let mut values = Vec::new();
        for record in batch.iter() {
            if let Err(reason) = self.process_record(record, out, &mut counts, &mut values) {
                out.reject(record.index(), reason);
            }
        }
        self.report(&counts);
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Batch) {
        self.kept.watermark = Some(watermark);
        let mut counts = Counts::default();
        if self.settings.within.is_some() {
            for left in self.kept.close_before(watermark) {
                if let (Some(best), Some(interval)) = (&self.settings.best, left.interval) {
                    let emitted = emit_best(&mut self.pair, best, &left.value, interval.to, left.best.as_deref(), out);
                    counts.unmatched_dropped += u64::from(!emitted);
                }
            }
        }
        if let Some(retention) = self.settings.retention {
            self.kept.forget_before(watermark.saturating_sub(retention));
        }
        self.report(&counts);
        sluice_sdk::host::gauge_set("kept_records", self.kept.len() as f64);
    }

    sluice_sdk::state_in!(kept);
}

/// Which input a record came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Left,
    Right,
}

impl Side {
    fn of(record: Record<'_>) -> Side {
        if record.port() == 0 { Side::Left } else { Side::Right }
    }
}

impl Join {
    /// Reads the record's key (into `identity`) and the fields `within` or `best` name (into
    /// `values`, room reused from record to record), then joins it; an error rejects the record.
    fn process_record<'b>(
        &mut self,
        record: Record<'b>,
        out: &mut Output,
        counts: &mut Counts,
        values: &mut Vec<Option<&'b [u8]>>,
    ) -> Result<(), String> {
        let side = Side::of(record);
        let lookups = match side {
            Side::Left => &self.settings.left_lookups,
            Side::Right => &self.settings.right_lookups,
        };
        record.look_up_into(lookups, values)?;
        let (key, named) = values.split_at(self.settings.key.len());
        if key.iter().any(|value| value.is_none_or(|text| text == b"null")) {
            let reason = || format!("a key field ({}) is missing or null", self.key_text());
            return self.missing(&mut counts.missing_key_dropped, reason);
        }
        self.identity.write_texts(key);
        match side {
            Side::Left => self.process_left(record, named, out, counts),
            Side::Right => self.process_right(record, named, out, counts),
        }
    }

    fn process_left(&mut self, record: Record<'_>, named: &[Option<&[u8]>], out: &mut Output, counts: &mut Counts) -> Result<(), String> {
        let interval = match &self.settings.within {
            None => None,
            Some(within) => {
                match Interval::read((&within.from, named.first().copied().flatten()), (&within.to, named.get(1).copied().flatten()))? {
                    Some(interval) => Some(interval),
                    None => {
                        let reason = || format!("a `within` field ({}, {}) is missing or null", within.from, within.to);
                        return self.missing(&mut counts.missing_field_dropped, reason);
                    }
                }
            }
        };
        match interval {
            Some(interval) if self.settings.best.is_some() => self.best_left(record, interval, out, counts),
            _ => {
                self.emit_matches(Side::Left, record, interval, out);
                if !self.keep(Side::Left, record, interval, None) {
                    counts.not_kept += 1;
                }
            }
        }
        Ok(())
    }

    fn process_right(&mut self, record: Record<'_>, named: &[Option<&[u8]>], out: &mut Output, counts: &mut Counts) -> Result<(), String> {
        if let Some(best) = &self.settings.best {
            let Some(rank) = read_number(&best.field, named.first().copied().flatten())? else {
                let reason = || format!("the `best` field {} is missing or null", best.field);
                return self.missing(&mut counts.missing_field_dropped, reason);
            };
            // Kept too when a left record took it: a left record still to come may hold it.
            self.offer_to_lefts(record, rank);
        } else {
            self.emit_matches(Side::Right, record, None, out);
        }
        if !self.keep(Side::Right, record, None, None) {
            counts.not_kept += 1;
        }
        Ok(())
    }

    /// A record without a value `missing` applies to: dropped and counted, or rejected.
    fn missing(&self, dropped: &mut u64, reason: impl FnOnce() -> String) -> Result<(), String> {
        match self.settings.missing {
            MissingKeyPolicy::Drop => {
                *dropped += 1;
                Ok(())
            }
            MissingKeyPolicy::Reject => Err(reason()),
        }
    }

    /// Emits `{"left": …, "right": …}` for each kept record of the other side with this key
    /// (and, with `within`, whose interval matches).
    fn emit_matches(&mut self, side: Side, record: Record<'_>, interval: Option<Interval>, out: &mut Output) {
        for partner in self.kept.partners(&self.identity, side) {
            let (left, right, interval) = match side {
                Side::Left => (record.value(), partner.value.as_slice(), interval),
                Side::Right => (partner.value.as_slice(), record.value(), partner.interval),
            };
            let (left_time, right_time) = match side {
                Side::Left => (record.timestamp(), partner.timestamp),
                Side::Right => (partner.timestamp, record.timestamp()),
            };
            if interval.is_some_and(|interval| !interval.contains(right_time)) || !self.settings.close_enough(left_time, right_time) {
                continue;
            }
            write_pair(&mut self.pair, left, Some(right));
            out.batch.push(None, &self.pair, record.timestamp().max(partner.timestamp), []);
        }
    }

    /// Best mode, a left record: its best match among the kept right records; emitted at once
    /// if the watermark already passed its interval, else kept with it.
    fn best_left(&mut self, record: Record<'_>, interval: Interval, out: &mut Output, counts: &mut Counts) {
        let Some(best) = &self.settings.best else { return };
        let earliest = self.settings.earliest_right_for(record.timestamp());
        let found = best_kept_match(best, self.kept.partners(&self.identity, Side::Left), interval, earliest);
        if self.kept.watermark.is_some_and(|watermark| interval.is_closed_by(watermark)) {
            let emitted = emit_best(&mut self.pair, best, record.value(), interval.to, found.as_ref(), &mut out.batch);
            counts.unmatched_dropped += u64::from(!emitted);
        } else if !self.keep(Side::Left, record, Some(interval), found) {
            counts.not_kept += 1;
        }
    }

    /// Best mode, a right record: the new best match of every kept left record of its key whose
    /// interval holds it (and that it is not more than `retention` before) and whose best it
    /// beats.
    fn offer_to_lefts(&mut self, record: Record<'_>, rank: f64) {
        let Some(best) = &self.settings.best else { return };
        let timestamp = record.timestamp();
        let (mut before, mut after) = (0, 0);
        for left in self.kept.lefts_mut(&self.identity) {
            let holds = left.interval.is_some_and(|interval| interval.contains(timestamp));
            if !holds || timestamp < self.settings.earliest_right_for(left.timestamp) {
                continue;
            }
            if left.best.as_ref().is_none_or(|current| best.keep.prefers((rank, timestamp, record.value()), current)) {
                let value = record.value().to_vec();
                before += left.best.as_ref().map_or(0, |current| kept::BEST_MATCH_ENTRY + current.value.len());
                after += kept::BEST_MATCH_ENTRY + value.len();
                left.best = Some(Box::new(BestMatch { rank, timestamp, value }));
            }
        }
        self.kept.best_replaced(before, after);
    }

    /// Keeps the record for later matches, unless it is too late to match anything more or the
    /// bound is reached; true if it is kept or too late to keep.
    fn keep(&mut self, side: Side, record: Record<'_>, interval: Option<Interval>, best: Option<BestMatch>) -> bool {
        if self.too_late_to_keep(record.timestamp(), interval) {
            return true;
        }
        if self.kept.len() >= self.settings.max_records {
            return false;
        }
        // A third of the memory: a snapshot copies what is kept, and batches need room too.
        if self.kept.bytes() + cost_of(&self.identity, record.value(), best.as_ref()) > self.memory_budget {
            self.over_memory_budget = true;
            return false;
        }
        let value = record.value().to_vec();
        self.kept.add(&self.identity, side, KeptRecord::new(record.timestamp(), value, interval, best));
        true
    }

    /// A record with an interval once the watermark passed its end; another once it is more
    /// than `retention` behind the watermark.
    fn too_late_to_keep(&self, timestamp: i64, interval: Option<Interval>) -> bool {
        let Some(watermark) = self.kept.watermark else { return false };
        match (interval, self.settings.retention) {
            (Some(interval), _) => interval.is_closed_by(watermark),
            (None, Some(retention)) => timestamp < watermark.saturating_sub(retention),
            (None, None) => false,
        }
    }

    fn key_text(&self) -> String {
        self.settings.key.iter().map(FieldPath::to_string).collect::<Vec<_>>().join(", ")
    }

    fn report(&mut self, counts: &Counts) {
        counts.report();
        if counts.not_kept > 0 && !self.warned_full {
            self.warned_full = true;
            let bound = if self.over_memory_budget {
                format!("the kept records' memory reached a third of memory_limit ({} bytes)", self.memory_budget)
            } else {
                format!("max_records ({}) reached", self.settings.max_records)
            };
            let message = format!(
                "{bound}: later records are joined with what is kept but not kept themselves, so pairs they would make with \
                 records still to come are missed; raise max_records and memory_limit, or set a retention"
            );
            sluice_sdk::host::log(sluice_sdk::host::Level::Warn, &message);
        }
    }

    /// The kept records (for tests).
    pub fn kept(&self) -> &Kept {
        &self.kept
    }
}

/// `{"left":<left>,"right":<right or null>}` into `pair`.
pub(crate) fn write_pair(pair: &mut Vec<u8>, left: &[u8], right: Option<&[u8]>) {
    pair.clear();
    pair.extend_from_slice(b"{\"left\":");
    pair.extend_from_slice(left);
    pair.extend_from_slice(b",\"right\":");
    pair.extend_from_slice(right.unwrap_or(b"null"));
    pair.push(b'}');
}

/// What one call counted, reported as operator metrics at its end.
#[derive(Debug, Default)]
struct Counts {
    missing_key_dropped: u64,
    missing_field_dropped: u64,
    not_kept: u64,
    unmatched_dropped: u64,
}

impl Counts {
    fn report(&self) {
        sluice_sdk::host::counters_add(&[
            ("missing_key_dropped", self.missing_key_dropped),
            ("missing_field_dropped", self.missing_field_dropped),
            ("records_not_kept", self.not_kept),
            ("unmatched_dropped", self.unmatched_dropped),
        ]);
    }
}

sluice_sdk::export_operator!(Join);

#[cfg(test)]
mod tests;
