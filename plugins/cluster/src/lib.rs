//! `cluster`: segments records online with streaming k-means over numeric features.
//!
//! ```toml
//! [operators.config]
//! features = ["spend", "visits"]   # dotted paths of numbers, on comparable scales
//! k = 5                            # segments (centroids), 2 to 256
//! init_points = 50                 # records buffered to seed the centroids (default 10·k)
//! seed = 1                         # k-means++ seeding is deterministic for a seed
//! min_rate = 0.001                 # the learning rate never falls below this
//! half_life = 10000                # a point's weight halves every 10000 records (default: never)
//! segment_field = "segment"        # dotted paths of the fields added to each record
//! distance_field = "distance"
//! report_centroids = true          # the side output `centroids`, which the pipeline must then read
//! ```
//! The first `init_points` records are held (in the state); then greedy k-means++ (seeded by
//! `seed`, SplitMix64) picks k of them as centroids and at most 10 Lloyd iterations refine them
//! (within one call: `init` refuses init_points × k × (features + 2) × (14 + ⌊ln k⌋) above
//! 250 million, which finishes well within the default 1 s `call_timeout`),
//! and the held records are emitted, in order, each with its segment (the index of its nearest
//! centroid) and its Euclidean distance to it. From then on each record is assigned to its
//! nearest centroid c (ties: the lower index), emitted with the distance to c before the
//! update, and c learns it (Sculley's web-scale k-means with a floor): with `half_life`, every
//! centroid's count is first multiplied by 2^(-1/half_life); then count_c += 1 and
//! c += η (x − c) with η = max(1 / count_c, `min_rate`). So, above the floor, a centroid is the
//! mean of its points, each weighted by 2^(-age / half_life), age in records of the whole stream.
//!
//! A watermark of `i64::MAX` (the end of the input) seeds from the held records if they hold at
//! least k distinct points; otherwise, and whenever a full buffer holds fewer than k distinct
//! points (buffering then starts afresh), the held records are emitted with `segment` and
//! `distance` null, a warning is logged and `unsegmented` counts them. On each watermark after
//! which the centroids changed, the side output `centroids` (unless `report_centroids = false`) gets
//! `{"centroids": [{"segment", "center": {<feature>: value}, "count"}], "records"}` with the
//! watermark as event time (at the end of the input, the latest record's).
//!
//! A record that is not a JSON object, or lacks a feature, or whose feature is not a finite
//! number, is rejected. Distribution: single instance. State (version 1): k × features numbers,
//! the held records, the generator and the totals.

mod annotate;
mod config;
mod held;
mod model;
mod report;
mod seeding;

use sluice_sdk::host::{self, Level};
use sluice_sdk::{Batch, Distribution, Operator, Output, Record, State, json};

pub use annotate::{Assignment, OutputFields};
pub use config::{ClusterConfig, MAX_FEATURES, MAX_INIT_POINTS, MAX_K, MAX_SEEDING_WORK, Rates, Settings, seeding_work};
pub use held::{Held, HeldRecord};
pub use model::Model;
pub use seeding::{LLOYD_ITERATIONS, Seeding, SplitMix64, candidates, passes};

/// The name of the side output that gets the centroids.
pub const CENTROIDS_OUTPUT: &str = "centroids";

/// A running cluster operator.
pub struct Cluster {
    settings: Settings,
    model: Model,
    /// The features of the record being read, reused across records.
    point: Vec<f64>,
    /// The payload being written, reused across records.
    payload: Vec<u8>,
}

impl Operator for Cluster {
    type Config = ClusterConfig;

    fn init(config: ClusterConfig) -> Result<Self, String> {
        let settings = Settings::from_config(config)?;
        let model = Model::new(&settings);
        Ok(Cluster { point: Vec::with_capacity(settings.dimensions()), payload: Vec::new(), settings, model })
    }

    fn distribution(&self) -> Distribution {
        Distribution::Single
    }

    fn side_outputs(&self) -> Vec<String> {
        if self.settings.report_centroids { vec![CENTROIDS_OUTPUT.into()] } else { Vec::new() }
    }

    fn process(&mut self, batch: &Batch, out: &mut Output) {
        for record in batch.iter() {
            if let Err(reason) = self.process_record(record, &mut out.batch) {
                out.reject(record.index(), reason);
            }
        }
        host::gauge_set("held_records", self.model.held.len() as f64);
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Batch) {
        if watermark == i64::MAX && !self.model.held.is_empty() {
            self.release_held(out);
        }
        if self.settings.report_centroids && self.model.is_seeded() && self.model.changed {
            let timestamp = if watermark == i64::MAX { self.model.latest_timestamp.unwrap_or(watermark) } else { watermark };
            out.push_json_to(1, &report::centroids(&self.model, &self.settings), timestamp);
            self.model.changed = false;
        }
    }

    fn snapshot(&self) -> State {
        State::encode(&self.model)
    }

    fn restore(&mut self, state: State) -> Result<(), String> {
        let model: Model = state.decode()?;
        model.check_fits(&self.settings)?;
        self.model = model;
        Ok(())
    }
}

impl Cluster {
    /// Holds, or segments and emits, one record; an error rejects it (and nothing was learnt).
    fn process_record(&mut self, record: Record<'_>, out: &mut Batch) -> Result<(), String> {
        let parse = self.read(record)?;
        if !self.model.is_seeded() {
            if parse {
                self.settings.output.check(record.value())?;
            }
            self.model.count(record.timestamp());
            self.model.held.hold(record, &self.point, parse);
            if self.model.held.len() >= self.settings.init_points {
                self.release_held(out);
            }
            return Ok(());
        }
        let (segment, distance) = self.model.nearest(&self.point);
        self.settings.output.write(record.value(), parse, Some((segment, distance)), &mut self.payload)?;
        self.model.count(record.timestamp());
        self.model.learn(segment, &self.point, self.settings.rates);
        out.push(record.key(), &self.payload, record.timestamp(), record.headers());
        Ok(())
    }

    /// Reads the record's features into `point`; whether writing the output fields needs
    /// parsing the record.
    fn read(&mut self, record: Record<'_>) -> Result<bool, String> {
        if record.value().iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
            return Err("the record is not a JSON object: cluster reads its features from the fields of an object".into());
        }
        let found = record.look_up(&self.settings.lookups)?;
        let (features, outputs) = found.split_at(self.settings.dimensions());
        self.point.clear();
        for (path, text) in self.settings.features.iter().zip(features) {
            let text = text.ok_or_else(|| format!("feature {path} is missing"))?;
            match json::text_number(text) {
                Ok(Some(x)) if x.is_finite() => self.point.push(x),
                Ok(Some(_)) | Err("a number out of range") => {
                    return Err(format!("feature {path} is {}, beyond the range of a 64-bit float", String::from_utf8_lossy(text)));
                }
                Ok(None) => return Err(format!("feature {path} is null, not a number")),
                Err(kind) => return Err(format!("feature {path} is {kind}, not a number")),
            }
        }
        Ok(self.settings.output.needs_parsing(outputs))
    }

    /// Seeds the centroids from the held records and emits them, in order, with their
    /// segments; with fewer than k distinct points, emits them unsegmented.
    fn release_held(&mut self, out: &mut Batch) {
        let seeding = self.model.seed();
        let held = self.model.held.take();
        if seeding.is_none() {
            let message = format!(
                "the {} records buffered hold fewer than k = {} distinct points: they are emitted with a null {}; \
                 lower k, raise init_points or check the features",
                held.len(),
                self.settings.k,
                self.settings.output.segment_name()
            );
            host::log(Level::Warn, &message);
            host::counter_add("unsegmented", held.len() as u64);
        }
        let d = self.settings.dimensions();
        for (index, (record, point)) in held.records.iter().zip(held.points.chunks_exact(d)).enumerate() {
            let assignment = seeding.as_ref().and_then(|seeding| seeding.assignment.get(index)).map(|&segment| {
                let distance = seeding::distance(self.model.centroid(segment), point);
                (segment, distance)
            });
            // Checked when the record was held, so writing cannot fail; were it to, the record
            // still goes on, unchanged.
            match self.settings.output.write(&record.value, record.parse, assignment, &mut self.payload) {
                Ok(()) => record.push_to(out, &self.payload),
                Err(_) => record.push_to(out, &record.value),
            }
        }
    }

    /// The model (for tests).
    pub fn model(&self) -> &Model {
        &self.model
    }
}

sluice_sdk::export_operator!(Cluster);

#[cfg(test)]
mod tests;
