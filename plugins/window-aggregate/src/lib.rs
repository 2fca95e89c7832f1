//! `window-aggregate`: aggregates JSON records per event-time window and group.
//!
//! ```toml
//! [operators.config]
//! window = { type = "tumbling", size = "1m" }   # or { type = "hopping", size = "5m", slide = "1m" }
//!                                               # or { type = "session", gap = "30s" }
//! group_by = ["category"]                       # dotted paths; none = one global group
//! aggregates = [
//!   { function = "sum", field = "amount", as = "revenue" },
//!   { function = "count", as = "orders" },
//!   { function = "quantile", field = "amount", q = 0.95, as = "p95" },
//!   { function = "count", as = "views", when = { field = "event_type", equals = "view" } },
//! ]
//! compute = { rate = "round(orders / max(views, 1), 4)" }   # fields computed from the results
//! allowed_lateness = "0s"                       # keep windows this long after they fire
//! late = "drop"                                 # records for purged windows: drop, reject, side-output
//!                                               # (side-output: unchanged, to the output "late")
//! pass_through = false                          # also pass every input record downstream
//! ```
//! A window's result is emitted once the watermark passes its end, one record per group:
//! `{"window_start", "window_end", <group fields>, <aggregates>}` with event time
//! `window_end - 1`, in order of window, then group. Within the allowed lateness a late record
//! updates its window, whose result is emitted again with `"revision": n`. Every name of a
//! result is unique: a configuration whose group fields, aggregates (`as`) or computed fields
//! repeat one, or take `window_start`, `window_end` or `revision`, is refused. A record whose
//! windows would all start before the earliest time (`i64::MIN` ms) is rejected.

mod aggregate;
mod panes;
mod result;
mod sketch;
mod windows;

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use sluice_sdk::expression::Expression;
use sluice_sdk::fields::ObjectWriter;
use sluice_sdk::serde_json::{Map, Value};
use sluice_sdk::{Batch, Distribution, FieldPath, KeyText, Millis, Operator, Output, Record};

pub use aggregate::{Accumulator, AggregateConfig, Function, Input};
pub use panes::PaneShape;
use result::ResultNames;
pub use sketch::{DISTINCT_PRECISION, QUANTILE_RELATIVE_ERROR};
pub use windows::{Definition, GroupState, OpenWindows, WindowKey};

/// The `config` table of a window-aggregate operator.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowAggregateConfig {
    pub window: WindowConfig,
    #[serde(default)]
    pub group_by: Vec<FieldPath>,
    pub aggregates: Vec<AggregateConfig>,
    /// Fields computed from each result, in name order: `{ rate = "orders / max(views, 1)" }`.
    #[serde(default)]
    pub compute: BTreeMap<String, String>,
    #[serde(default)]
    pub allowed_lateness: Option<Millis>,
    #[serde(default)]
    pub late: LatePolicy,
    /// Also pass every input record downstream, before the results (roll-ups in one chain).
    #[serde(default)]
    pub pass_through: bool,
}

/// The window shape.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum WindowConfig {
    /// Fixed-size, non-overlapping windows aligned on the Unix epoch.
    Tumbling { size: Millis },
    /// Fixed-size windows starting every `slide` (a record belongs to size/slide windows).
    Hopping { size: Millis, slide: Millis },
    /// Per group, records closer than `gap` in event time share a window.
    Session { gap: Millis },
}

/// What happens to a record whose windows were purged.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LatePolicy {
    /// Dropped and counted in the `late_dropped` metric.
    #[default]
    Drop,
    /// Sent to the dead-letter sink with the reason.
    Reject,
    /// Sent unchanged to the side output `late` (read as `"<node>.late"`).
    SideOutput,
}

/// The fields of a result besides its groups and aggregates (built as a map in
/// `WindowAggregate::result`, or written field by field in `result.rs`).
const WINDOW_START: &str = "window_start";
const WINDOW_END: &str = "window_end";
const REVISION: &str = "revision";

/// The side output of late records (`late = "side-output"`), and its port.
pub const LATE_OUTPUT: &str = "late";
const LATE_PORT: u32 = 1;

/// Where an aggregate's inputs are among the fields read from each record.
struct Slots {
    field: Option<usize>,
    condition: Option<usize>,
}

/// A running window aggregation.
pub struct WindowAggregate {
    window: WindowConfig,
    lateness: i64,
    group_by: Vec<FieldPath>,
    aggregates: Vec<AggregateConfig>,
    /// Every field read from a record: group fields, then each aggregate's field and condition.
    lookups: sluice_sdk::FieldLookup,
    slots: Vec<Slots>,
    compute: Vec<(String, Expression)>,
    late: LatePolicy,
    pass_through: bool,
    windows: OpenWindows,
    /// The group key being built, and a record's windows, reused across records.
    group: KeyText,
    keys: Vec<WindowKey>,
    /// How results are written field by field (`None`: built as maps).
    result_names: Option<ResultNames>,
    /// Whether dropping late records was said in the log (once an instance: a pipeline whose
    /// every record is late, started before its producer, would otherwise say nothing).
    late_drop_said: bool,
}

impl Operator for WindowAggregate {
    type Config = WindowAggregateConfig;

    fn init(config: WindowAggregateConfig) -> Result<Self, String> {
        check_window(&config.window)?;
        if config.aggregates.is_empty() {
            return Err("`aggregates` is empty: name at least one, such as { function = \"count\" }".into());
        }
        // Each refusal starts with the path of the value it refuses, so that `validate` points at it.
        for (index, aggregate) in config.aggregates.iter().enumerate() {
            aggregate.check().map_err(|reason| format!("aggregates[{index}]: {reason}"))?;
        }
        check_result_names(&config)?;
        let compute = config
            .compute
            .iter()
            .map(|(name, text)| {
                Expression::parse(text).map(|expression| (name.clone(), expression)).map_err(|error| format!("compute.{name}: {error}"))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let mut lookups = config.group_by.clone();
        let slots = config
            .aggregates
            .iter()
            .map(|aggregate| Slots {
                field: slot(&mut lookups, aggregate.field.as_ref()),
                condition: slot(&mut lookups, aggregate.when.as_ref().map(|when| &when.field)),
            })
            .collect();
        let computed: Vec<&str> = compute.iter().map(|(name, _)| name.as_str()).collect();
        let result_names = ResultNames::new(&config.group_by, &config.aggregates, &computed);
        let mut windows = OpenWindows::default();
        windows.use_panes(PaneShape::of(&config.window));
        windows.define(definition(&config.group_by, &config.aggregates));
        Ok(WindowAggregate {
            window: config.window,
            lateness: config.allowed_lateness.map_or(0, |lateness| lateness.0),
            group_by: config.group_by,
            aggregates: config.aggregates,
            lookups: sluice_sdk::FieldLookup::new(lookups),
            slots,
            compute,
            late: config.late,
            pass_through: config.pass_through,
            windows,
            group: KeyText::default(),
            keys: Vec::new(),
            result_names,
            late_drop_said: false,
        })
    }

    fn distribution(&self) -> Distribution {
        Distribution::grouped_by(&self.group_by)
    }

    fn side_outputs(&self) -> Vec<String> {
        if self.late == LatePolicy::SideOutput { vec![LATE_OUTPUT.into()] } else { Vec::new() }
    }

    fn process(&mut self, batch: &Batch, out: &mut Output) {
        let (mut late_dropped, mut windows_missed, mut first_dropped) = (0, 0, None);
        let mut scratch = Scratch::default();
        for record in batch.iter() {
            let added = self.add(record, &mut scratch);
            // A record is rejected or passed on, never both (the runtime refuses such an output).
            let rejected = match &added {
                Err(Refusal::Invalid(_)) => true,
                Err(Refusal::Late { .. }) => self.late == LatePolicy::Reject,
                Ok(_) => false,
            };
            if self.pass_through && !rejected {
                out.emit(record);
            }
            match added {
                Ok(missed) => windows_missed += missed,
                Err(Refusal::Late { timestamp, watermark }) if self.late == LatePolicy::Drop => {
                    late_dropped += 1;
                    first_dropped.get_or_insert((timestamp, watermark));
                }
                Err(Refusal::Late { .. }) if self.late == LatePolicy::SideOutput => out.emit_to(LATE_PORT, record),
                Err(Refusal::Late { timestamp, watermark }) => out.reject(record.index(), self.late_reason(timestamp, watermark)),
                Err(Refusal::Invalid(reason)) => out.reject(record.index(), reason),
            }
        }
        if late_dropped > 0 {
            sluice_sdk::host::counter_add("late_dropped", late_dropped);
        }
        if let Some((timestamp, watermark)) = first_dropped.filter(|_| !self.late_drop_said) {
            self.late_drop_said = true;
            let message = format!(
                "dropping records that come after their windows closed (counted in late_dropped; said once): the first at event \
                 time {timestamp}, behind the watermark {watermark}. If they are not meant to be late, see time.md: the \
                 pipeline's out_of_orderness, and the watermark of a source that was idle or empty when it started"
            );
            sluice_sdk::host::log(sluice_sdk::host::Level::Warn, &message);
        }
        if windows_missed > 0 {
            sluice_sdk::host::counter_add("late_window_updates_missed", windows_missed);
        }
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Batch) {
        let mut windows = std::mem::take(&mut self.windows);
        let (mut writer, mut scratch) = (ObjectWriter::new(), Vec::new());
        windows.close_until(watermark, self.lateness, |key, group, state| {
            // Each aggregate's result once, for the computed fields and the record alike.
            let results: Vec<Value> = state.accumulators.iter().map(|accumulator| accumulator.result()).collect();
            let computed = self.computed_values(key, group, state, &results);
            let written = self
                .result_names
                .as_ref()
                .is_some_and(|names| names.write((key, group, state), (&results, &computed), &mut writer, &mut scratch));
            match written {
                true => out.push_object(None, &writer, key.end - 1),
                false => out.push_json(&self.result(key, group, state), key.end - 1),
            }
        });
        self.windows = windows;
        sluice_sdk::host::gauge_set("open_windows", self.windows.len() as f64);
    }

    fn snapshot(&self) -> sluice_sdk::State {
        sluice_sdk::State::encode(&self.windows)
    }

    fn restore(&mut self, state: sluice_sdk::State) -> Result<(), String> {
        let mut windows: OpenWindows = state.decode()?;
        windows.redefine(definition(&self.group_by, &self.aggregates))?;
        windows.use_panes(PaneShape::of(&self.window));
        self.windows = windows;
        Ok(())
    }
}

/// What a configuration's accumulators compute: its group fields and each aggregate.
fn definition(group_by: &[FieldPath], aggregates: &[AggregateConfig]) -> Definition {
    Definition {
        group_by: group_by.iter().map(ToString::to_string).collect(),
        aggregates: aggregates.iter().map(AggregateConfig::describe).collect(),
        names: aggregates.iter().map(AggregateConfig::output_name).collect(),
    }
}

/// Registers `path` among the fields read per record and returns its position.
fn slot(lookups: &mut Vec<FieldPath>, path: Option<&FieldPath>) -> Option<usize> {
    let path = path?;
    lookups.push(path.clone());
    Some(lookups.len() - 1)
}

/// Most hopping windows one record may belong to (`size / slide`).
const MAX_WINDOWS_PER_RECORD: i64 = 10_000;

fn check_window(window: &WindowConfig) -> Result<(), String> {
    match *window {
        WindowConfig::Tumbling { size } if size.0 <= 0 => Err("window.size: must be positive".into()),
        WindowConfig::Hopping { size, slide } if slide.0 <= 0 || slide.0 > size.0 => {
            Err("window.slide: must be positive and at most window.size".into())
        }
        // Every record updates size / slide windows (or panes): past this, one record's
        // windows alone outgrow any memory limit.
        WindowConfig::Hopping { size, slide } if size.0 / slide.0 > MAX_WINDOWS_PER_RECORD => Err(format!(
            "window.size is {} times window.slide: a record would belong to that many windows (at most {MAX_WINDOWS_PER_RECORD})",
            size.0 / slide.0
        )),
        WindowConfig::Session { gap } if gap.0 <= 0 => Err("window.gap: must be positive".into()),
        _ => Ok(()),
    }
}

/// Refuses a configuration whose results would hold one name twice (a group field, an
/// aggregate, a computed field, or `window_start`, `window_end` or `revision`): the later
/// value would silently overwrite the earlier one.
fn check_result_names(config: &WindowAggregateConfig) -> Result<(), String> {
    let mut taken: Vec<String> = [WINDOW_START, WINDOW_END, REVISION].map(String::from).to_vec();
    let mut claim = |name: String, owner: String, remedy: &str| {
        if name.trim().is_empty() {
            return Err(format!("{owner}: the result's field name is empty; {remedy}"));
        }
        if taken.contains(&name) {
            return Err(format!("{owner}: the name {name:?} is already a field of the results; {remedy}"));
        }
        taken.push(name);
        Ok(())
    };
    for (position, path) in config.group_by.iter().enumerate() {
        claim(path.to_string(), format!("group_by[{position}]"), "group by another field")?;
    }
    for (position, aggregate) in config.aggregates.iter().enumerate() {
        claim(aggregate.output_name(), format!("aggregates[{position}]"), "choose another `as`")?;
    }
    for name in config.compute.keys() {
        claim(name.clone(), format!("compute.{name}"), "choose another name")?;
    }
    Ok(())
}

/// Room reused from record to record of a batch: the fields' texts, and the aggregates' inputs
/// read from them (a vector of each per record was an allocation each).
#[derive(Default)]
struct Scratch<'b> {
    values: Vec<Option<&'b [u8]>>,
    inputs: Vec<Option<Input<'b>>>,
}

enum Refusal {
    /// Late: the record's event time and the watermark that purged its windows (the reason is
    /// written only for a record rejected, not for each one dropped).
    Late {
        timestamp: i64,
        watermark: i64,
    },
    Invalid(String),
}

impl WindowAggregate {
    /// Adds the record to its windows still open; the number of its windows already closed
    /// for good that it missed (a hopping window's record may be late for some of its windows
    /// only).
    fn add<'b>(&mut self, record: Record<'b>, scratch: &mut Scratch<'b>) -> Result<u64, Refusal> {
        let mut keys = std::mem::take(&mut self.keys);
        let added = self
            .open_windows_for(record.timestamp(), &mut keys)
            .and_then(|missed| self.add_to_windows(record, &keys, scratch).map(|()| missed));
        self.keys = keys;
        added
    }

    /// Adds the record to the windows `keys` (its session, for session windows).
    fn add_to_windows<'b>(&mut self, record: Record<'b>, keys: &[WindowKey], scratch: &mut Scratch<'b>) -> Result<(), Refusal> {
        let timestamp = record.timestamp();
        record.look_up_into(&self.lookups, &mut scratch.values).map_err(Refusal::Invalid)?;
        self.inputs_into(&scratch.values, &mut scratch.inputs).map_err(Refusal::Invalid)?;
        let (values, inputs) = (&scratch.values, &scratch.inputs);
        let mut group = std::mem::take(&mut self.group);
        group.write_texts(&values[..self.group_by.len()]);
        let aggregates = &self.aggregates;
        let fresh = || aggregates.iter().map(AggregateConfig::accumulator).collect();
        let add_to = |accumulators: &mut Vec<Accumulator>| {
            for (accumulator, input) in accumulators.iter_mut().zip(inputs) {
                if let Some(input) = input {
                    accumulator.add(input, timestamp);
                }
            }
        };
        match self.window {
            WindowConfig::Session { gap } => {
                // Late only if the session it makes, merged with the open ones it overlaps, is
                // closed for good: a record before an open session extends it.
                let session = self.windows.session_with(&group, timestamp, gap.0);
                if let Some(watermark) = self.windows.purged(&session, self.lateness) {
                    self.group = group;
                    return Err(Refusal::Late { timestamp, watermark });
                }
                self.windows.session(&group, session, fresh, add_to)
            }
            _ if self.windows.pane_shape().is_some() => self.windows.hop(timestamp, keys, &group, fresh, add_to),
            _ => keys.iter().for_each(|&key| self.windows.group(key, &group, fresh, add_to)),
        }
        self.group = group;
        Ok(())
    }

    /// Sets `keys` to the windows a record at `timestamp` belongs to that are not purged, and
    /// gives the number of those purged; late if none is left.
    fn open_windows_for(&self, timestamp: i64, keys: &mut Vec<WindowKey>) -> Result<u64, Refusal> {
        keys.clear();
        match self.window {
            WindowConfig::Tumbling { size } => keys.extend(WindowKey::containing(timestamp, size.0)),
            WindowConfig::Hopping { size, slide } => keys.extend(WindowKey::hopping(timestamp, size.0, slide.0)),
            // Judged with the record's group, once its session is known (`add_to_windows`).
            WindowConfig::Session { .. } => return Ok(0),
        }
        if keys.is_empty() {
            return Err(Refusal::Invalid(format!(
                "event time {timestamp} has no window that can be represented: its window would start before the earliest time ({} ms)",
                i64::MIN
            )));
        }
        let (first, all) = (keys.first().copied(), keys.len());
        keys.retain(|key| self.windows.purged(key, self.lateness).is_none());
        match (keys.is_empty(), first.and_then(|key| self.windows.purged(&key, self.lateness))) {
            (true, Some(watermark)) => Err(Refusal::Late { timestamp, watermark }),
            _ => Ok((all - keys.len()) as u64),
        }
    }

    fn late_reason(&self, timestamp: i64, watermark: i64) -> String {
        format!(
            "late record: event time {timestamp} belongs to windows already closed by watermark {watermark} (allowed lateness {} ms)",
            self.lateness
        )
    }

    /// Each aggregate's input from the record's fields, into `inputs` (`None`: the record does not count).
    fn inputs_into<'v>(&self, values: &[Option<&'v [u8]>], inputs: &mut Vec<Option<Input<'v>>>) -> Result<(), String> {
        inputs.clear();
        for (aggregate, slots) in self.aggregates.iter().zip(&self.slots) {
            let condition = slots.condition.and_then(|index| values[index]);
            let input = match aggregate.applies(condition) {
                true => aggregate.input(slots.field.and_then(|index| values[index]))?,
                false => None,
            };
            inputs.push(input);
        }
        Ok(())
    }

    /// The values of the `compute` fields of one group's result in one window, in name order
    /// (none without `compute`).
    fn computed_values(&self, key: &WindowKey, group: &str, state: &GroupState, results: &[Value]) -> Vec<Value> {
        if self.compute.is_empty() {
            return Vec::new();
        }
        let mut result = self.result_of(key, group, state, results);
        self.compute.iter().map(|(name, _)| result.remove(name).unwrap_or(Value::Null)).collect()
    }

    /// The result record of one group in one window (numbers of the group that a double would
    /// round are rounded here: [`ResultNames::write`] writes the result exactly).
    fn result(&self, key: &WindowKey, group: &str, state: &GroupState) -> Map<String, Value> {
        let results: Vec<Value> = state.accumulators.iter().map(|accumulator| accumulator.result()).collect();
        self.result_of(key, group, state, &results)
    }

    /// [`WindowAggregate::result`] with the aggregates' `results` given.
    fn result_of(&self, key: &WindowKey, group: &str, state: &GroupState, results: &[Value]) -> Map<String, Value> {
        let mut record = Map::new();
        record.insert(WINDOW_START.into(), key.start.into());
        record.insert(WINDOW_END.into(), key.end.into());
        let group_values: Vec<Value> = sluice_sdk::serde_json::from_str(group).unwrap_or_default();
        for (path, value) in self.group_by.iter().zip(group_values) {
            record.insert(path.to_string(), value);
        }
        for (aggregate, result) in self.aggregates.iter().zip(results) {
            record.insert(aggregate.output_name(), result.clone());
        }
        for (name, expression) in &self.compute {
            // An aggregate that is null (an empty window) leaves the computed field null.
            let value = expression.evaluate(&record).unwrap_or(Value::Null);
            record.insert(name.clone(), value);
        }
        if state.revisions > 0 {
            record.insert(REVISION.into(), state.revisions.into());
        }
        record
    }
}

/// A JSON value's canonical text (see `sluice_sdk::json::write_canonical`), from its JSON
/// text; plain strings, the usual case, are borrowed.
pub fn canonical_text(text: &[u8]) -> Cow<'_, str> {
    if sluice_sdk::json::text_plain_str(text).is_some()
        && let Ok(text) = std::str::from_utf8(text)
    {
        return Cow::Borrowed(text);
    }
    let mut canonical = String::new();
    sluice_sdk::json::write_canonical_text(&mut canonical, text);
    Cow::Owned(canonical)
}

sluice_sdk::export_operator!(WindowAggregate);

#[cfg(test)]
mod tests;
