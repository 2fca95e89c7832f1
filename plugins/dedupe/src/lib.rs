//! `dedupe`: drops records whose key fields were already seen within a horizon of event time.
//!
//! ```toml
//! [operators.config]
//! keys = ["event_id"]   # dotted paths; the combination of their values is the identity
//! horizon = "10m"       # how close in event time a duplicate must be
//! duplicates = "drop"   # "drop" (counted in `duplicates_dropped`) or "reject" (dead-letter)
//! missing = "pass"      # records without a key value: "pass" (counted) or "reject"
//! ```
//! A record is a duplicate when a record processed before it with the same identity has an
//! event time at most `horizon` before or after its own (`|t - t'| <= horizon`), unless that
//! one was forgotten (below). Duplicates count as seen too: a chain of copies each at most
//! `horizon` from another keeps only its first record. Key values are compared canonically:
//! `1` equals `1.0`, `"\u0061"` equals `"a"`, objects match whatever the order of their keys.
//! A key field that is absent or null is missing: such records pass (metric
//! `missing_key_passed`) or are rejected, and are never duplicates.
//!
//! State is bounded by the watermark: at watermark `w` the operator forgets the occurrences of
//! an identity whose latest is before `w - horizon`, since no record at or after `w` can be
//! within the horizon of them. Memory holds the identities seen in the last 1.25 × `horizon`
//! of event time before the watermark (a sweep removes them every quarter horizon) and any
//! ahead of it: about 100 bytes plus the identity's text each, reported by the gauge
//! `remembered_identities`. So a record behind the watermark (late) is compared only with what
//! is still remembered, and one more than `horizon` behind it is not remembered itself.
//! Outputs depend only on the records and watermarks, in order: never on batch boundaries.

mod identity;
mod seen;

use serde::Deserialize;
use sluice_sdk::{Batch, Distribution, FieldPath, Millis, Operator, Output, Record};

pub use identity::write_identity;
pub use seen::{Run, Seen};

/// The `config` table of a dedupe operator.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupeConfig {
    /// The fields whose values, together, identify a record.
    pub keys: Vec<FieldPath>,
    /// The largest event-time distance between a record and a duplicate of it.
    pub horizon: Millis,
    #[serde(default)]
    pub duplicates: DuplicatePolicy,
    #[serde(default)]
    pub missing: MissingKeyPolicy,
}

/// What happens to a duplicate.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DuplicatePolicy {
    /// Dropped and counted in the `duplicates_dropped` metric.
    #[default]
    Drop,
    /// Sent to the dead-letter sink, the reason naming the first occurrence's event time.
    Reject,
}

/// What happens to a record without a value for some key field.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MissingKeyPolicy {
    /// Passed downstream unchanged and counted in the `missing_key_passed` metric.
    #[default]
    Pass,
    /// Sent to the dead-letter sink.
    Reject,
}

/// A running deduplication.
pub struct Dedupe {
    /// The key paths, prepared once for reading every record.
    keys: sluice_sdk::FieldLookup,
    /// The key paths as the user wrote them, for rejection reasons.
    keys_text: String,
    horizon: i64,
    duplicates: DuplicatePolicy,
    missing: MissingKeyPolicy,
    seen: Seen,
    /// The identity being built, reused across records.
    identity: String,
}

/// What one record is.
enum Verdict {
    /// Its identity was not seen within the horizon: it passes.
    First,
    /// A duplicate, at this event time, of the occurrences of this run (whose first passed).
    Duplicate { timestamp: i64, reached: Run },
    /// The key field at this position is absent or null.
    MissingKey(usize),
    /// The payload is not JSON.
    Invalid(String),
}

impl Operator for Dedupe {
    type Config = DedupeConfig;

    fn init(config: DedupeConfig) -> Result<Self, String> {
        if config.keys.is_empty() {
            return Err("`keys` is empty: name at least one field, such as keys = [\"event_id\"]".into());
        }
        if let Some(twice) = config.keys.iter().enumerate().find_map(|(at, key)| config.keys[..at].contains(key).then_some(key)) {
            return Err(format!("`keys` names {twice} twice: list each field once"));
        }
        let keys_text = config.keys.iter().map(FieldPath::to_string).collect::<Vec<_>>().join(", ");
        Ok(Dedupe {
            keys: sluice_sdk::FieldLookup::new(config.keys),
            keys_text,
            horizon: config.horizon.0,
            duplicates: config.duplicates,
            missing: config.missing,
            seen: Seen::default(),
            identity: String::new(),
        })
    }

    fn distribution(&self) -> Distribution {
        // Duplicates are recognised by their keys: records with equal keys meet one instance.
        Distribution::grouped_by(self.keys.paths())
    }

    fn process(&mut self, batch: &Batch, out: &mut Output) {
        let (mut duplicates_dropped, mut missing_key_passed) = (0, 0);
        for record in batch.iter() {
            match self.judge(record) {
                Verdict::First => out.emit(record),
                Verdict::Duplicate { .. } if self.duplicates == DuplicatePolicy::Drop => duplicates_dropped += 1,
                Verdict::Duplicate { timestamp, reached } => out.reject(record.index(), self.duplicate_reason(timestamp, reached)),
                Verdict::MissingKey(_) if self.missing == MissingKeyPolicy::Pass => {
                    out.emit(record);
                    missing_key_passed += 1;
                }
                Verdict::MissingKey(position) => out.reject(record.index(), self.missing_reason(position)),
                Verdict::Invalid(reason) => out.reject(record.index(), reason),
            }
        }
        if duplicates_dropped > 0 {
            sluice_sdk::host::counter_add("duplicates_dropped", duplicates_dropped);
        }
        if missing_key_passed > 0 {
            sluice_sdk::host::counter_add("missing_key_passed", missing_key_passed);
        }
    }

    fn on_watermark(&mut self, watermark: i64, _out: &mut Batch) {
        // Sweeping every quarter horizon keeps memory within 1.25 horizons of identities
        // while costing a constant amount per record, however often watermarks come.
        let sweep_every = (self.horizon / 4).max(1);
        self.seen.forget_before(watermark.saturating_sub(self.horizon), sweep_every);
        sluice_sdk::host::gauge_set("remembered_identities", self.seen.len() as f64);
    }

    sluice_sdk::state_in!(seen);
}

impl Dedupe {
    /// Reads the record's identity and records the occurrence.
    fn judge(&mut self, record: Record<'_>) -> Verdict {
        let values = match record.look_up(&self.keys) {
            Ok(values) => values,
            Err(reason) => return Verdict::Invalid(reason),
        };
        if let Err(position) = write_identity(&mut self.identity, &values) {
            return Verdict::MissingKey(position);
        }
        match self.seen.observe(&self.identity, record.timestamp(), self.horizon) {
            Some(reached) => Verdict::Duplicate { timestamp: record.timestamp(), reached },
            None => Verdict::First,
        }
    }

    /// Why a record at `timestamp` duplicates the run `reached`: the record that passed when it
    /// is within the horizon of it, else the copy that kept the identity alive.
    fn duplicate_reason(&self, timestamp: i64, reached: Run) -> String {
        let (keys, horizon, kept) = (&self.keys_text, self.horizon, reached.kept);
        let first = format!("duplicate of the record at event time {kept}: same {keys}");
        let within = |other: i64| timestamp.abs_diff(other) <= horizon.unsigned_abs();
        let near = [kept, reached.latest, reached.earliest].into_iter().find(|&other| within(other));
        match near {
            Some(near) if near == kept => format!("{first} within the horizon of {horizon}ms"),
            Some(near) => format!(
                "{first}, through a copy at event time {near} within the horizon of {horizon}ms (each duplicate extends the horizon)"
            ),
            None => format!(
                "{first}, through copies between event times {} and {}, each within the horizon of {horizon}ms of another \
                 (each duplicate extends the horizon)",
                reached.earliest, reached.latest
            ),
        }
    }

    fn missing_reason(&self, position: usize) -> String {
        let key = self.keys.paths().get(position).map(FieldPath::to_string).unwrap_or_default();
        format!("key field {key} is missing or null")
    }

    /// The deduplication state (for tests and benchmarks).
    pub fn seen(&self) -> &Seen {
        &self.seen
    }
}

sluice_sdk::export_operator!(Dedupe);

#[cfg(test)]
mod tests;
