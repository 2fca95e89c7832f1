//! `join`: joins the records of two inputs whose key fields are equal (an incremental,
//! symmetric hash join).
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
//! ```
//! Each record is joined with every record of the other input that has the same key and is
//! still kept, and is then kept itself. A match is emitted at once as
//! `{"left": <left record>, "right": <right record>}`, its event time the later of the two, so
//! every pair is emitted exactly once, whichever input's record came first. Without
//! `retention`, records are kept for as long as the operator runs (within `max_records`);
//! with it, records whose event time is more than `retention` behind the watermark are
//! forgotten (and a record already that late is joined with what is kept but not kept
//! itself). Past `max_records`, new records are joined but not kept (counted in
//! `records_not_kept`). Distribution: by `key`, so both inputs' records of a key meet in one
//! instance. State: the kept records (version 1).

mod kept;

use serde::Deserialize;
use sluice_sdk::{Batch, Distribution, FieldPath, Millis, Operator, Output, Record};

pub use kept::Kept;

/// The join's configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinConfig {
    /// The fields whose values, together, must be equal on both sides.
    pub key: Vec<FieldPath>,
    /// How long records stay after the watermark passed their event time; absent: always.
    pub retention: Option<Millis>,
    #[serde(default = "default_max_records")]
    pub max_records: usize,
    #[serde(default)]
    pub missing: MissingKeyPolicy,
}

fn default_max_records() -> usize {
    100_000
}

/// What happens to a record without a value at one of the key fields.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MissingKeyPolicy {
    /// Dropped and counted in the `missing_key_dropped` metric.
    #[default]
    Drop,
    /// Sent to the dead-letter sink.
    Reject,
}

/// A running join.
pub struct Join {
    key: Vec<FieldPath>,
    retention: Option<i64>,
    max_records: usize,
    missing: MissingKeyPolicy,
    kept: Kept,
    /// The key being read, reused across records.
    identity: String,
    /// Whether the log said that `max_records` was reached.
    warned_full: bool,
}

impl Operator for Join {
    type Config = JoinConfig;

    fn init(config: JoinConfig) -> Result<Self, String> {
        if config.key.is_empty() {
            return Err("`key` is empty: name the fields both inputs share, such as key = [\"user_id\"]".into());
        }
        let inputs = sluice_sdk::init_context().inputs;
        if inputs.len() != 2 {
            return Err(format!("a join reads two inputs (left, then right), but this operator reads {}: {inputs:?}", inputs.len()));
        }
        if config.max_records == 0 {
            return Err("`max_records` must be at least 1".into());
        }
        Ok(Join {
            key: config.key,
            retention: config.retention.map(|retention| retention.0),
            max_records: config.max_records,
            missing: config.missing,
            kept: Kept::default(),
            identity: String::new(),
            warned_full: false,
        })
    }

    fn distribution(&self) -> Distribution {
        Distribution::grouped_by(&self.key)
    }

    fn process(&mut self, batch: &Batch, out: &mut Output) {
        let (mut missing_dropped, mut not_kept) = (0, 0);
        for record in batch.iter() {
            match self.key_of(record) {
                Ok(true) => {
                    let side = Side::of(record);
                    self.emit_matches(side, record, out);
                    if !self.keep(side, record) {
                        not_kept += 1;
                    }
                }
                Ok(false) if self.missing == MissingKeyPolicy::Drop => missing_dropped += 1,
                Ok(false) => out.reject(record.index(), format!("a key field ({}) is missing or null", self.key_text())),
                Err(reason) => out.reject(record.index(), reason),
            }
        }
        if missing_dropped > 0 {
            sluice_sdk::host::counter_add("missing_key_dropped", missing_dropped);
        }
        if not_kept > 0 {
            sluice_sdk::host::counter_add("records_not_kept", not_kept);
            if !self.warned_full {
                self.warned_full = true;
                let message = format!(
                    "max_records ({}) reached: later records are joined with what is kept but not kept themselves, so pairs they \
                     would make with records still to come are missed; raise max_records (and memory_limit) or set a retention",
                    self.max_records
                );
                sluice_sdk::host::log(sluice_sdk::host::Level::Warn, &message);
            }
        }
    }

    fn on_watermark(&mut self, watermark: i64, _out: &mut Batch) {
        self.kept.watermark = Some(watermark);
        if let Some(retention) = self.retention {
            self.kept.forget_before(watermark.saturating_sub(retention));
        }
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
    /// Reads the record's key into `identity`: false when a key field is missing or null.
    fn key_of(&mut self, record: Record<'_>) -> Result<bool, String> {
        let values = record.raw_fields(&self.key)?;
        if values.iter().any(|value| value.is_none_or(|raw| raw.get() == "null")) {
            return Ok(false);
        }
        sluice_sdk::json::write_key(&mut self.identity, &values);
        Ok(true)
    }

    /// Emits `{"left": …, "right": …}` for each kept record of the other side with this key.
    fn emit_matches(&self, side: Side, record: Record<'_>, out: &mut Output) {
        let mut pair = Vec::new();
        for partner in self.kept.partners(&self.identity, side) {
            let (left, right) = match side {
                Side::Left => (record.value(), partner.value.as_bytes()),
                Side::Right => (partner.value.as_bytes(), record.value()),
            };
            pair.clear();
            pair.extend_from_slice(b"{\"left\":");
            pair.extend_from_slice(left);
            pair.extend_from_slice(b",\"right\":");
            pair.extend_from_slice(right);
            pair.push(b'}');
            out.batch.push(None, &pair, record.timestamp().max(partner.timestamp), []);
        }
    }

    /// Keeps the record for later matches, unless it is past retention or the bound is
    /// reached; true if it is kept or too late to keep.
    fn keep(&mut self, side: Side, record: Record<'_>) -> bool {
        let horizon = self.retention.zip(self.kept.watermark).map(|(retention, watermark)| watermark.saturating_sub(retention));
        if horizon.is_some_and(|horizon| record.timestamp() < horizon) {
            return true;
        }
        if self.kept.len() >= self.max_records {
            return false;
        }
        let value = String::from_utf8_lossy(record.value()).into_owned();
        self.kept.add(&self.identity, side, record.timestamp(), value);
        true
    }

    fn key_text(&self) -> String {
        self.key.iter().map(FieldPath::to_string).collect::<Vec<_>>().join(", ")
    }

    /// The kept records (for tests).
    pub fn kept(&self) -> &Kept {
        &self.kept
    }
}

sluice_sdk::export_operator!(Join);

#[cfg(test)]
mod tests;
