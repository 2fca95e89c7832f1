//! `moving-average`: simple, exponential and cumulative moving averages of a numeric field,
//! per key.
//!
//! ```toml
//! [operators.config]
//! field = "price"                # dotted path of the number averaged
//! group_by = ["item_id"]         # dotted paths; none = one global key
//! averages = [
//!   { type = "simple", records = 10, as = "sma_10" },   # mean of the last 10 records
//!   { type = "simple", span = "5m" },                   # of the last 5 minutes; named sma_5m
//!   { type = "exponential", alpha = 0.3, as = "ema" },  # ema = 0.3 x + 0.7 ema, per record
//!   { type = "exponential", half_life = "1m" },         # decays with event time; named ema_1m
//!   { type = "cumulative" },                            # of all the key's records so far; named cma
//! ]
//! emit = "per-record"            # default: every record passes on with the averages added,
//! into = "averages"              # nested in this object (default: as top-level fields); not `field`
//! max_records = 1000             # most values a key keeps per average (and waiting, per interval)
//! max_keys = 2000                # most keys; a new one beyond forgets the least recently used
//!                                # (defaults: see the bound below)
//! # or one record per key and interval, instead of `emit` and `into` above:
//! # emit = "per-interval"
//! # interval = "1m"              # aligned on the Unix epoch
//! # late = "drop"                # records of intervals already emitted: "drop" (counted) or "reject"
//! ```
//!
//! `records` and `alpha` count records in the order they are applied: arrival order per
//! record, event-time order per interval. `span` and `half_life` use event time: a span window
//! holds the key's records with `timestamp > newest - span`, `newest` being the key's newest
//! event time; a half-life step weighs `1 - 2^(-Δt / half_life)`, Δt the event time since the
//! key's previous step. Records of one event time form one step with their mean; a record
//! older than the key's newest joins the newest step (the average cannot be rewound). A
//! cumulative average is the mean of every value the key has had (since it was last forgotten).
//!
//! Per record, each record passes on with the averages after it. Per interval, records wait
//! until the watermark passes them and are then applied in event-time order; when the
//! watermark passes the end of an interval in which a key had records, the key emits
//! `{"interval_end", <group fields>, <averages>, "count"}` with event time `interval_end - 1`
//! (the averages after the interval's last record; `count`: its records), ordered by interval
//! end, then key.
//!
//! A missing or non-numeric field rejects the record; null is skipped (passed on unchanged
//! per record) and counted in the `null_skipped` metric.
//!
//! State is bounded: at most `max_keys` keys, each keeping at most `max_records` values per
//! simple average (`N` for `records = N`; a span window beyond it loses its oldest values
//! early, counted in `span_truncated`), a few numbers per exponential or cumulative average, and per
//! interval at most `max_records` records waiting for the watermark from before the latest
//! watermark, plus those held since, which no watermark has been offered to yet (a batch's
//! records, as many as it has: up to `max_keys` × `max_records`, all keys together, until a
//! watermark comes; beyond, records are rejected: the watermark lags too far). A new key beyond `max_keys` forgets the least
//! recently used one (`keys_evicted`), which starts afresh if it returns; per interval, the
//! forgotten key's intervals are emitted at once. A value takes 16 bytes (with its event time),
//! so the values need at most `max_keys` × `max_records` × 16 B per simple average (32 MB with
//! the defaults), and a snapshot (every checkpoint, and every 64 calls for recovery) encodes
//! the state beside it. Measured at the defaults with two simple averages (one by records, one
//! by span) and an exponential one, every key full and keys of 120 bytes: 92 MiB with the
//! snapshot, within the default 128 MiB `memory_limit`; more simple averages or larger limits
//! need a larger `memory_limit`.

mod average;
mod config;
mod cumulative;
mod exponential;
mod fields;
mod keys;
mod simple;

use sluice_sdk::edit::RawObject;
use sluice_sdk::serde_json::{Map, Value};
use sluice_sdk::{Batch, Distribution, Operator, Output, Record};

pub use average::AverageConfig;
pub use config::{EmitMode, LatePolicy, MovingAverageConfig};
pub use keys::AveragesByKey;

use config::{Emission, INTERVAL_COUNT, INTERVAL_END, Settings};
use fields::{number, read_number};
use keys::{FinishedInterval, interval_end};

/// A running moving-average operator.
pub struct MovingAverage {
    settings: Settings,
    keys: AveragesByKey,
    /// The key being built, reused across records.
    group: String,
}

impl Operator for MovingAverage {
    type Config = MovingAverageConfig;

    fn init(config: MovingAverageConfig) -> Result<Self, String> {
        let settings = Settings::from_config(config)?;
        let mut keys = AveragesByKey::default();
        keys.redefine(&settings.field.to_string(), &settings.group_by_names(), &settings.averages);
        Ok(MovingAverage { settings, keys, group: String::new() })
    }

    fn distribution(&self) -> Distribution {
        Distribution::grouped_by(&self.settings.group_by)
    }

    fn process(&mut self, batch: &Batch, out: &mut Output) {
        let mut counters = Counters::default();
        let mut found = Vec::new();
        for record in batch.iter() {
            if let Err(reason) = self.process_record(record, out, &mut counters, &mut found) {
                out.reject(record.index(), reason);
            }
        }
        counters.report();
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Batch) {
        if let Emission::PerInterval { interval, .. } = self.settings.emission {
            let advanced = self.keys.advance(watermark, interval, &self.settings.averages, self.settings.max_records);
            for (key, finished) in &advanced.finished {
                out.push_json(&self.interval_record(key, finished), finished.end.saturating_sub(1));
            }
            Counters { span_truncated: advanced.span_truncated, ..Counters::default() }.report();
        }
        sluice_sdk::host::gauge_set("keys", self.keys.len() as f64);
    }

    fn snapshot(&self) -> sluice_sdk::State {
        sluice_sdk::State::encode(&self.keys)
    }

    fn restore(&mut self, state: sluice_sdk::State) -> Result<(), String> {
        let mut keys: AveragesByKey = state.decode()?;
        keys.redefine(&self.settings.field.to_string(), &self.settings.group_by_names(), &self.settings.averages);
        self.keys = keys;
        Ok(())
    }
}

impl MovingAverage {
    /// Reads the record's fields (into `found`, room reused from record to record) and
    /// updates its group's averages.
    fn process_record<'b>(
        &mut self,
        record: Record<'b>,
        out: &mut Output,
        counters: &mut Counters,
        found: &mut Vec<Option<&'b [u8]>>,
    ) -> Result<(), String> {
        record.look_up_into(&self.settings.lookups, found)?;
        let (group_values, value) = found.split_at(self.settings.group_by.len());
        let Some(x) = read_number(&self.settings.field, value.first().copied().flatten())? else {
            counters.null_skipped += 1;
            if matches!(self.settings.emission, Emission::PerRecord { .. }) {
                out.emit(record);
            }
            return Ok(());
        };
        sluice_sdk::json::write_key_texts(&mut self.group, group_values);
        match self.settings.emission {
            Emission::PerRecord { .. } => self.emit_with_averages(record, x, out, counters),
            Emission::PerInterval { .. } => self.hold_for_interval(record, x, out, counters),
        }
    }

    /// Per record: applies the value and passes the record on with the averages added.
    fn emit_with_averages(&mut self, record: Record<'_>, x: f64, out: &mut Output, counters: &mut Counters) -> Result<(), String> {
        let mut object = record.raw_object()?;
        let into = match &self.settings.emission {
            Emission::PerRecord { into } => into.as_ref(),
            Emission::PerInterval { .. } => None,
        };
        // Fails now, before the state changes, if the record has a non-object on that path.
        if let Some(into) = into {
            object.set_value(into, &Value::Null)?;
        }
        let (key, forgotten) = self.keys.touch(&self.group, self.settings.max_keys);
        counters.span_truncated += key.apply(record.timestamp(), x, &self.settings.averages, self.settings.max_records);
        let averages = self.settings.averages.iter().zip(key.values()).map(|(average, value)| (average.name.clone(), number(value)));
        match into {
            Some(into) => object.set_value(into, &averages.collect::<Map<String, Value>>())?,
            None => {
                for (name, value) in averages {
                    object.set_member_value(&name, &value)?;
                }
            }
        }
        counters.keys_evicted += u64::from(forgotten.is_some());
        out.emit_json_like(record, &object);
        Ok(())
    }

    /// Per interval: keeps the value until the watermark passes it.
    fn hold_for_interval(&mut self, record: Record<'_>, x: f64, out: &mut Output, counters: &mut Counters) -> Result<(), String> {
        let Emission::PerInterval { interval, late } = self.settings.emission else { return Ok(()) };
        let timestamp = record.timestamp();
        let end = interval_end(timestamp, interval);
        if let Some(watermark) = self.keys.watermark().filter(|watermark| end <= *watermark) {
            return match late {
                LatePolicy::Drop => {
                    counters.late_dropped += 1;
                    Ok(())
                }
                LatePolicy::Reject => Err(format!(
                    "late record: event time {timestamp} belongs to the interval ending at {end}, which the watermark {watermark} has passed"
                )),
            };
        }
        let max_records = self.settings.max_records;
        if self.keys.get(&self.group).is_some_and(|key| key.waited_past_watermark() >= max_records) {
            return Err(format!(
                "{max_records} records of this key already wait for the watermark (max_records): the watermark lags far \
                 behind event time; lower the pipeline's out_of_orderness or raise max_records"
            ));
        }
        // The memory the keys may hold anyway: max_keys × max_records values.
        let most_held = self.settings.max_keys.saturating_mul(max_records);
        if self.keys.held_since_watermark() >= most_held {
            return Err(format!(
                "{most_held} records (max_keys × max_records) wait for a watermark that has not come since they were held: \
                 the pipeline's watermark does not advance (an idle or stalled source, or records all of one time?)"
            ));
        }
        self.keys.note_held();
        let (key, forgotten) = self.keys.touch(&self.group, self.settings.max_keys);
        key.hold(timestamp, x);
        if let Some((name, mut state)) = forgotten {
            counters.keys_evicted += 1;
            // Its intervals cannot wait for the watermark any more: emit them now.
            let mut finished = Vec::new();
            counters.span_truncated += state.advance(i64::MAX, interval, &self.settings.averages, max_records, &mut finished);
            for result in &finished {
                out.emit_json(&self.interval_record(&name, result), result.end.saturating_sub(1));
            }
        }
        Ok(())
    }

    /// `{"interval_end", <group fields>, <averages>, "count"}` for one key and interval.
    fn interval_record(&self, key: &str, finished: &FinishedInterval) -> RawObject<'static> {
        let mut record = RawObject::new();
        // Writing numbers and JSON texts cannot fail.
        let _ = record.set_member_value(INTERVAL_END, &finished.end);
        for (path, value) in self.settings.group_by.iter().zip(sluice_sdk::json::key_values(key).unwrap_or_default()) {
            let _ = record.set_member_value(&path.to_string(), value);
        }
        for (average, value) in self.settings.averages.iter().zip(&finished.values) {
            let _ = record.set_member_value(&average.name, &number(*value));
        }
        let _ = record.set_member_value(INTERVAL_COUNT, &finished.count);
        record
    }
}

/// What one call counted, reported as operator metrics at its end.
#[derive(Debug, Default)]
struct Counters {
    null_skipped: u64,
    late_dropped: u64,
    keys_evicted: u64,
    span_truncated: u64,
}

impl Counters {
    fn report(&self) {
        sluice_sdk::host::counters_add(&[
            ("null_skipped", self.null_skipped),
            ("late_dropped", self.late_dropped),
            ("keys_evicted", self.keys_evicted),
            ("span_truncated", self.span_truncated),
        ]);
    }
}

sluice_sdk::export_operator!(MovingAverage);

#[cfg(test)]
mod tests;
