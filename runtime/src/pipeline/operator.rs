//! A supervised operator: a plugin instance that recovers from its own failures.
//!
//! The operator keeps the state snapshot it last took and a journal of the calls made since.
//! When a call traps, runs past its deadline or exceeds its memory, the instance is thrown
//! away, a new one is restored from the snapshot and the journal is replayed (plugins are
//! deterministic), and the failed batch is retried record by record: the records that fail
//! alone go to the dead-letter sink with the reason, the others go on. An operator that
//! fails on every record again and again is disabled (its circuit opens) and its records go
//! to the dead-letter sink: never a crash loop. A failure that takes the operator's state with
//! it (`on_watermark` failing twice, a snapshot for the journal failing, no recovery) would
//! lose the records that state held, which no dead letter can give back: it is reported
//! (`lost_state`), and the task stops the pipeline before anything after it is committed.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use sluice_sdk::{Distribution, InitContext, OperatorInfo};

use super::journal::{Journal, JournalEntry};
use crate::monitor;
use crate::wasm::{Batch, CallFailure, Digest, FailureKind, InstanceLimits, OperatorMetrics, Plugin, PluginInstance, Records, State};

/// Batches in a row in which every record failed before the circuit opens.
const MAX_FAILED_BATCHES_IN_A_ROW: u32 = 5;

/// Records of a failed batch that, failing alone one after the other at the memory limit or the
/// deadline, end its retries: the rest of the batch is dead-lettered untried. Each such retry
/// costs a recovery, and a deadline the whole `call_timeout`: an operator at its memory limit
/// took about 30 s per batch of 1,024. Traps are retried to the end: poison records come in
/// runs, and the records between them are good.
const FAILURES_IN_A_ROW_BEFORE_GIVING_UP: usize = 8;

/// Why an operator could not start.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OperatorError {
    #[error("the plugin refused its configuration: {0}")]
    ConfigRefused(String),
    #[error("the plugin refused the restored state: {0}")]
    StateRefused(String),
    /// A call of the plugin (`step`: instantiate, init, restore, snapshot) failed.
    #[error("{step} failed: {failure}")]
    Failed { step: &'static str, failure: CallFailure },
    /// The plugin declared other side outputs or another distribution than the version or
    /// configuration the pipeline was wired for.
    #[error("{0}")]
    Rewired(String),
}

/// A record the operator refused or failed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadRecord {
    /// Position in the batch given to `process`.
    pub index: usize,
    /// The record, alone in its batch.
    pub record: Batch,
    pub reason: String,
    /// The reason's class (see `DeadLetter::class`).
    pub class: &'static str,
}

impl DeadRecord {
    fn new(records: &Records, index: usize, reason: String, class: &'static str) -> DeadRecord {
        DeadRecord { index, record: records.single(index), reason, class }
    }
}

/// The dead-letter class of a failed call.
fn failure_class(failure: &CallFailure) -> &'static str {
    match failure.kind {
        FailureKind::Trap => "trap",
        FailureKind::Deadline => "deadline",
        FailureKind::MemoryLimit => "memory",
        FailureKind::Instantiate => "instantiate",
        FailureKind::InvalidOutput => "invalid-output",
    }
}

/// The outcome of one `process` call.
#[derive(Debug, Default)]
pub struct Processed {
    /// What the operator emitted: a batch, or records of its input passed on without a copy.
    pub batch: Records,
    pub dead: Vec<DeadRecord>,
    /// A batch being retried record by record that has more to go: pass `batch` on, then
    /// [`Operator::go_on_isolating`].
    pub rest: Option<Isolation>,
}

/// A failed batch being retried record by record, handed back in parts of about one call's
/// output each (the operator's `memory_limit`), so that what its records emit is passed on as
/// it comes: gathered whole, it was up to the batch's records times one call's output.
#[derive(Debug)]
pub struct Isolation {
    input: u32,
    records: Records,
    /// The next record to try alone.
    next: usize,
    /// Records that failed alone in a row, and the last one's reason and class.
    failed_in_a_row: usize,
    last_failure: Option<(String, &'static str)>,
    /// Records of the batch dead-lettered so far.
    dead: usize,
}

/// Everything needed to build an instance of the operator again, and what its plugin
/// declared with this configuration.
#[derive(Clone)]
pub struct OperatorSpec {
    pub name: Arc<str>,
    pub plugin: Arc<Plugin>,
    pub config_json: String,
    pub context: InitContext,
    pub info: OperatorInfo,
    pub limits: InstanceLimits,
    pub metrics: Arc<OperatorMetrics>,
    /// The only plugin version the pipeline file allows (`sha256 = "..."`), if it pins one.
    pub pinned: Option<Digest>,
    /// The pipeline's `key_by` for the operator, if it narrows the plugin's key: records are
    /// routed by these fields.
    pub key_by: Option<Vec<String>>,
}

/// The value encodings the runtime offers operators, preferred first: JSON with each record's
/// field index, built once and kept from operator to operator, or JSON text alone.
pub const ENCODINGS: &[&str] = &[crate::wasm::ENCODING_WITH_FIELDS, "json"];

/// Who reads the records an operator writes, as far as their field indexes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputReaders {
    /// Other operators, or sinks that read keys from fields: they may use indexes.
    MayReadIndexes,
    /// Only sinks that write values as they are: an index would be written for nothing, so
    /// the runtime also offers "json+fields-in" (indexes in, none out), first.
    IgnoreIndexes,
}

impl OutputReaders {
    /// The encodings offered to an operator whose records these read.
    fn encodings(self) -> Vec<String> {
        let preferred = match self {
            OutputReaders::MayReadIndexes => None,
            OutputReaders::IgnoreIndexes => Some(crate::wasm::ENCODING_INDEXES_IN),
        };
        preferred.into_iter().chain(ENCODINGS.iter().copied()).map(str::to_owned).collect()
    }
}

impl OperatorSpec {
    /// Its `config_json` with the secrets' values left out (their names kept): what decides
    /// its records as far as settings go, fit to be hashed into a digest others can see
    /// (`sequences::sender_digest`).
    pub fn settings_digest(&self) -> String {
        let Ok(serde_json::Value::Object(mut config)) = serde_json::from_str::<serde_json::Value>(&self.config_json) else {
            return self.config_json.clone();
        };
        if let Some(serde_json::Value::Object(secrets)) = config.get_mut("sluice_secrets") {
            secrets.values_mut().for_each(|value| *value = serde_json::Value::Null);
        }
        serde_json::Value::Object(config).to_string()
    }

    /// The specification of operator `name` reading `inputs`: asks a throw-away instance of
    /// `plugin` what it declares with `config_json`.
    pub fn new(
        name: &str,
        plugin: Arc<Plugin>,
        config_json: String,
        inputs: Vec<String>,
        limits: InstanceLimits,
    ) -> Result<OperatorSpec, OperatorError> {
        Self::read_by(name, plugin, config_json, inputs, limits, OutputReaders::MayReadIndexes)
    }

    /// [`OperatorSpec::new`] for an operator whose records `readers` read.
    pub fn read_by(
        name: &str,
        plugin: Arc<Plugin>,
        config_json: String,
        inputs: Vec<String>,
        limits: InstanceLimits,
        readers: OutputReaders,
    ) -> Result<OperatorSpec, OperatorError> {
        let context = InitContext {
            operator: name.to_owned(),
            inputs,
            encodings: readers.encodings(),
            memory_limit: limits.memory as u64,
            call_timeout_ms: u64::try_from(limits.call_timeout.as_millis()).unwrap_or(u64::MAX),
        };
        let metrics = Arc::new(OperatorMetrics::default());
        // What the plugin declares is asked of it below.
        let undeclared = OperatorInfo { outputs: Vec::new(), distribution: Distribution::Any, encoding: String::new() };
        let mut spec =
            OperatorSpec { name: name.into(), plugin, config_json, context, info: undeclared, limits, metrics, pinned: None, key_by: None };
        spec.info = declared_info(&spec)?;
        Ok(spec)
    }

    /// Why `replacement` cannot take this operator's place without rewiring the pipeline
    /// (other side outputs, another distribution), if it cannot.
    pub fn rewiring_needed_by(&self, replacement: &OperatorSpec) -> Option<String> {
        let (old, new) = (&self.info, &replacement.info);
        if old.outputs != new.outputs {
            return Some(format!(
                "the new version declares the side outputs {:?} where the running one declares {:?}: the pipeline must be restarted",
                new.outputs, old.outputs
            ));
        }
        let (routed, needed) = (self.routing(), replacement.routing());
        if routed != needed || !replacement.key_by_fits() {
            let narrowed = match &self.key_by {
                Some(fields) => format!(" (the pipeline's key_by [{}] narrows its key)", fields.join(", ")),
                None => String::new(),
            };
            return Some(format!(
                "the new version takes its records {} where the running one takes them {}{narrowed}: the pipeline must be restarted",
                distribution_in_words(&new.distribution),
                distribution_in_words(&routed)
            ));
        }
        None
    }

    /// How records reach the operator's instances: its plugin's declaration, narrowed by the
    /// pipeline's `key_by`, as the graph built its exchange.
    fn routing(&self) -> sluice_sdk::Distribution {
        use sluice_sdk::Distribution;
        match (&self.info.distribution, &self.key_by) {
            (Distribution::Single, _) | (_, None) => self.info.distribution.clone(),
            (Distribution::Any | Distribution::Key(_), Some(fields)) => Distribution::Key(fields.clone()),
        }
    }

    /// Whether `key_by` keeps the records of each of the plugin's groups in one instance (it
    /// names some of the plugin's key fields, or the plugin has none).
    fn key_by_fits(&self) -> bool {
        use sluice_sdk::Distribution;
        match (&self.info.distribution, &self.key_by) {
            (_, None) | (Distribution::Any, _) => true,
            (Distribution::Single, Some(_)) => false,
            (Distribution::Key(needed), Some(fields)) => fields.iter().all(|field| needed.contains(field)),
        }
    }
}

/// A distribution as the documentation says it.
fn distribution_in_words(distribution: &sluice_sdk::Distribution) -> String {
    match distribution {
        sluice_sdk::Distribution::Any => "in any instance".into(),
        sluice_sdk::Distribution::Single => "in a single instance".into(),
        sluice_sdk::Distribution::Key(fields) => format!("by key ({})", fields.join(", ")),
    }
}

/// A running operator with its recovery data.
pub struct Operator {
    spec: OperatorSpec,
    /// `None` once the circuit is open.
    instance: Option<PluginInstance>,
    base: State,
    /// Whether `base` holds anything a fresh instance would not (asked while disabled, when
    /// `base` no longer changes; computed once: it starts an instance).
    base_holds_state: OnceLock<bool>,
    journal: Journal,
    failed_batches_in_a_row: u32,
    disabled_because: Option<String>,
    /// Why the operator's state was lost with a failure, if it was.
    lost_state: Option<String>,
    /// This instance's metrics (none when metrics are off).
    metrics: Option<monitor::OperatorMetrics>,
}

/// What a swap does with the running version's state (`?state=carry|discard` in the admin API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateHandover {
    /// The new version restores the running version's state (the default).
    #[default]
    Carry,
    /// The new version starts without state, as at a first start: what the running version
    /// holds (open windows, models, counts) is dropped. For a version that cannot read that
    /// state, such as the stateless version a stateful one replaced.
    Discard,
}

/// Counts a `process` call begun at `started` on `records` records in the call and per-record
/// histograms.
fn observe_process_call(metrics: Option<&monitor::OperatorMetrics>, started: Instant, records: usize) {
    if let Some(metrics) = metrics {
        let took = started.elapsed().as_secs_f64();
        metrics.process.observe(took);
        metrics.per_record.observe(took / records.max(1) as f64);
    }
}

impl Drop for Operator {
    /// The operator's last instance ends (its task ended, a swap replaced it): the plugin's log
    /// lines dropped in its last second are counted now.
    fn drop(&mut self) {
        if let Some(instance) = &self.instance {
            instance.say_dropped_log_lines();
        }
    }
}

/// How to swap in a version that cannot take the running version's state.
const DISCARD_STATE_HINT: &str = " (to start it without the running version's state, losing what that holds, swap with \
                                  `--discard-state`, `?state=discard` in the API)";

impl Operator {
    /// Instantiates, initialises and (given a state) restores the operator.
    pub fn start(spec: OperatorSpec, state: Option<State>) -> Result<Operator, OperatorError> {
        let (instance, base) = build(&spec, state.as_ref())?;
        let journal = Journal::after_snapshot(base.bytes.len());
        Ok(Operator {
            spec,
            instance: Some(instance),
            base,
            base_holds_state: OnceLock::new(),
            journal,
            failed_batches_in_a_row: 0,
            disabled_because: None,
            lost_state: None,
            metrics: None,
        })
    }

    /// Reports this instance's work to `metrics` from now on (and the plugin's own counters
    /// and gauges, per task).
    pub fn observe(&mut self, metrics: Option<monitor::OperatorMetrics>) {
        if let (Some(instance), Some(metrics)) = (self.instance.as_mut(), &metrics) {
            instance.report_to(metrics.plugin.clone());
            metrics.circuit_open.set(0);
        }
        self.metrics = metrics;
    }

    /// The metrics this instance reports to.
    pub fn metrics(&self) -> Option<&monitor::OperatorMetrics> {
        self.metrics.as_ref()
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// What the operator was built from.
    pub fn spec(&self) -> &OperatorSpec {
        &self.spec
    }

    /// Prepares a replacement with another plugin version or configuration, carrying the
    /// state over (snapshot this instance, start the new one with `init` and `restore`), or,
    /// when told to discard it, starting the new one with `init` alone. This
    /// operator stays as it was (a failed snapshot recovers it); the caller switches. A disabled
    /// operator hands over its last good snapshot, so a fixed version brings it back.
    /// The refusal names the side (running or new version) and the step that failed.
    pub fn prepare_swap(&mut self, spec: OperatorSpec, handover: StateHandover) -> Result<Operator, String> {
        if let Some(reason) = self.spec.rewiring_needed_by(&spec) {
            return Err(reason);
        }
        let state = match handover {
            StateHandover::Carry => Some(
                self.checkpoint_state()
                    .map_err(|failure| format!("the running version could not hand over its state: snapshot failed: {failure}"))?,
            ),
            StateHandover::Discard => None,
        };
        // "No state" (version 0, no bytes) is not restored: `start` snapshots the new version then.
        let restored = state.as_ref().is_some_and(|state| !(state.version == 0 && state.bytes.is_empty()));
        let mut new = Operator::start(spec, state).map_err(|error| match error {
            OperatorError::StateRefused(_) | OperatorError::Failed { step: "restore", .. } => {
                // Said once: a plugin's own reason may give the same advice.
                let error = error.to_string();
                let hint = if error.contains("--discard-state") { "" } else { DISCARD_STATE_HINT };
                format!("the new version could not start: {error}{hint}")
            }
            error => format!("the new version could not start: {error}"),
        })?;
        // A version that restores the state but cannot snapshot it would fail at the next
        // checkpoint, after the swap, and stop the pipeline: it is tried now, while the running
        // version can still keep going. On the instance itself, not through `checkpoint_state`:
        // a failed candidate is dropped, so there is nothing to recover (recovery would rebuild
        // it, and report any failure under the running operator's name).
        if restored && let Some(Err(failure)) = new.instance.as_mut().map(PluginInstance::snapshot) {
            return Err(format!(
                "the new version could not start: snapshot failed after restoring the running version's state: {failure}\
                 {DISCARD_STATE_HINT}"
            ));
        }
        Ok(new)
    }

    /// The state to carry over (checkpoint, swap): a fresh snapshot, or a disabled operator's
    /// last good one. A failed snapshot recovers the instance and is reported.
    pub fn checkpoint_state(&mut self) -> Result<State, CallFailure> {
        let started = Instant::now();
        let snapshot = self.instance.as_mut().map(PluginInstance::snapshot);
        if let (Some(metrics), Some(_)) = (&self.metrics, &snapshot) {
            metrics.snapshot.observe(started.elapsed().as_secs_f64());
        }
        match snapshot {
            Some(Ok(state)) => Ok(state),
            Some(Err(failure)) => {
                // The failed instance must not serve again.
                self.recover(&failure);
                Err(failure)
            }
            None => Ok(self.base.clone()),
        }
    }

    /// The linear memory of the running instance, in bytes (0 while disabled).
    pub fn memory_in_use(&self) -> usize {
        self.instance.as_ref().map_or(0, PluginInstance::memory_in_use)
    }

    pub fn plugin(&self) -> &Plugin {
        &self.spec.plugin
    }

    /// Why the operator is disabled, if it is.
    pub fn disabled_because(&self) -> Option<&str> {
        self.disabled_because.as_deref()
    }

    /// Why the operator is disabled, if it is and holds state (its last good snapshot is not
    /// "no state"): open windows or pending results that only it can emit.
    pub fn disabled_holding_state(&self) -> Option<&str> {
        self.disabled_because.as_deref().filter(|_| self.holds_state())
    }

    /// Whether the last good snapshot holds anything: it is not "no state", nor what a fresh
    /// instance snapshots (a window operator with no window open, say). Computed once per
    /// snapshot: it starts an instance.
    fn holds_state(&self) -> bool {
        *self.base_holds_state.get_or_init(|| self.base_differs_from_a_fresh_instance())
    }

    fn base_differs_from_a_fresh_instance(&self) -> bool {
        if self.base.is_empty() {
            return false;
        }
        match build(&self.spec, None) {
            Ok((_, fresh)) => fresh.version != self.base.version || fresh.bytes != self.base.bytes,
            Err(_) => true,
        }
    }

    /// Why the operator lost the state it held, if a failure took it: the records that state
    /// held are in no output and no dead letter, so the pipeline must stop before committing
    /// past them.
    pub fn lost_state(&self) -> Option<&str> {
        self.lost_state.as_deref()
    }

    /// Processes records that arrived on `input`; failing records are isolated, never lost:
    /// a batch retried record by record may come back in parts, the next one to ask for with
    /// [`Operator::go_on_isolating`] (`Processed::rest`) once this one is passed on.
    /// The journal keeps the records (shared, not copied) until the next snapshot.
    pub fn process(&mut self, input: u32, records: impl Into<Records>) -> Processed {
        let records = records.into();
        if let Some(metrics) = &self.metrics {
            metrics.input.add_records(&records);
        }
        let processed = self.process_counted(input, records);
        if let Some(metrics) = &self.metrics {
            metrics.output.add_records(&processed.batch);
        }
        processed
    }

    fn process_counted(&mut self, input: u32, records: Records) -> Processed {
        let Some(instance) = self.instance.as_mut() else { return self.refuse_all(&records) };
        let started = Instant::now();
        let result = instance.process(input, &records);
        observe_process_call(self.metrics.as_ref(), started, records.len());
        if let Some(metrics) = &self.metrics {
            metrics.memory.set(i64::try_from(instance.memory_in_use()).unwrap_or(i64::MAX));
        }
        match result {
            Ok(output) => {
                let dead = output
                    .rejected
                    .into_iter()
                    .filter(|(index, _)| (*index as usize) < records.len())
                    .map(|(index, reason)| DeadRecord::new(&records, index as usize, format!("rejected: {reason}"), "refused"))
                    .collect();
                self.failed_batches_in_a_row = 0;
                self.record(JournalEntry::Process(input, records));
                Processed { batch: output.batch, dead, rest: None }
            }
            Err(failure) => self.isolate(input, records, &failure),
        }
    }

    /// Tells the operator that event time reached `watermark`; returns what it emits.
    pub fn on_watermark(&mut self, watermark: i64) -> Batch {
        let emitted = self.on_watermark_counted(watermark);
        if let Some(metrics) = &self.metrics {
            metrics.output.add_batch(&emitted);
        }
        emitted
    }

    fn on_watermark_counted(&mut self, watermark: i64) -> Batch {
        let Some(instance) = self.instance.as_mut() else { return Batch::new() };
        let started = Instant::now();
        let result = instance.on_watermark(watermark);
        if let Some(metrics) = &self.metrics {
            metrics.on_watermark.observe(started.elapsed().as_secs_f64());
        }
        match result {
            Ok(batch) => {
                self.record(JournalEntry::Watermark(watermark));
                batch
            }
            // Retried once on a recovered instance (a deadline may have been bad luck); if it
            // fails again the operator is disabled, visibly, rather than losing output quietly.
            Err(failure) => {
                tracing::warn!(operator = %self.spec.name, watermark, "on-watermark failed, retrying on a recovered instance: {failure}");
                let retried =
                    self.recover(&failure).then(|| self.instance.as_mut().map(|instance| instance.on_watermark(watermark))).flatten();
                match retried {
                    Some(Ok(batch)) => {
                        self.record(JournalEntry::Watermark(watermark));
                        batch
                    }
                    Some(Err(again)) => {
                        self.disable_losing_state(format!("on-watermark failed twice at watermark {watermark}: {again}"));
                        Batch::new()
                    }
                    None => Batch::new(),
                }
            }
        }
    }

    /// The operator's current state (for checkpoints and hot swap).
    pub fn snapshot(&mut self) -> Result<State, CallFailure> {
        let instance = self.instance.as_mut().ok_or_else(|| CallFailure {
            kind: crate::wasm::FailureKind::Instantiate,
            message: self.disabled_because.clone().unwrap_or_default(),
        })?;
        instance.snapshot()
    }

    fn record(&mut self, entry: JournalEntry) {
        if self.journal.record(entry) {
            self.compact();
        }
    }

    /// Replaces the journal with a fresh snapshot.
    fn compact(&mut self) {
        let Some(instance) = self.instance.as_mut() else { return };
        match instance.snapshot() {
            Ok(state) => {
                self.journal.clear(state.bytes.len());
                self.base = state;
                self.base_holds_state = OnceLock::new();
            }
            Err(failure) => self.disable_losing_state(format!("snapshot failed: {failure}")),
        }
    }

    /// Retries a failed batch record by record, recovering after each failure.
    fn isolate(&mut self, input: u32, records: Records, failure: &CallFailure) -> Processed {
        tracing::warn!(operator = %self.spec.name, records = records.len(), "batch failed, isolating the failing records: {failure}");
        if !self.recover(failure) {
            return self.refuse_all(&records);
        }
        self.isolate_part(Isolation { input, records, next: 0, failed_in_a_row: 0, last_failure: None, dead: 0 })
    }

    /// [`Operator::process`] with every part of a batch retried record by record gathered into
    /// one: for tests and benchmarks, which hold what an operator emits anyway.
    pub fn process_gathered(&mut self, input: u32, records: impl Into<Records>) -> Processed {
        let mut processed = self.process(input, records);
        while let Some(rest) = processed.rest.take() {
            let more = self.go_on_isolating(rest);
            let mut batch = std::mem::take(&mut processed.batch).into_batch();
            more.batch.iter().for_each(|record| batch.push_record_to(record.port(), record));
            processed = Processed { batch: Records::from(batch), dead: [processed.dead, more.dead].concat(), rest: more.rest };
        }
        processed
    }

    /// Goes on retrying the records of a failed batch alone, from where the last part ended.
    pub fn go_on_isolating(&mut self, isolation: Isolation) -> Processed {
        let processed = self.isolate_part(isolation);
        if let Some(metrics) = &self.metrics {
            metrics.output.add_records(&processed.batch);
        }
        processed
    }

    /// Tries records of `isolation` alone until their output reaches the bound of one part,
    /// or the batch ends.
    fn isolate_part(&mut self, mut isolation: Isolation) -> Processed {
        let (mut emitted, mut dead) = (Batch::new(), Vec::new());
        let total = isolation.records.len();
        let part_bound = self.spec.limits.memory;
        while isolation.next < total && crate::wasm::batch_bytes_held(&emitted) < part_bound {
            let index = isolation.next;
            isolation.next += 1;
            let single = isolation.records.single(index);
            let Some(instance) = self.instance.as_mut() else {
                dead.push(DeadRecord { index, record: single, reason: self.disabled_reason(), class: "disabled" });
                continue;
            };
            if isolation.failed_in_a_row >= FAILURES_IN_A_ROW_BEFORE_GIVING_UP
                && let Some((reason, class)) = &isolation.last_failure
            {
                let reason = format!(
                    "{reason} (not tried alone: the {FAILURES_IN_A_ROW_BEFORE_GIVING_UP} records before it in its batch failed in a row)"
                );
                dead.push(DeadRecord { index, record: single, reason, class });
                continue;
            }
            let single = Records::from(single);
            let started = Instant::now();
            let result = instance.process(isolation.input, &single);
            // Each retry is a call of its own, the one that runs into the deadline included.
            observe_process_call(self.metrics.as_ref(), started, 1);
            match result {
                Ok(output) => {
                    output.batch.iter().for_each(|record| emitted.push_record_to(record.port(), record));
                    if let Some((_, reason)) = output.rejected.into_iter().next() {
                        let reason = format!("rejected: {reason}");
                        dead.push(DeadRecord { index, record: single.single(0), reason, class: "refused" });
                    }
                    self.record(JournalEntry::Process(isolation.input, single));
                    isolation.failed_in_a_row = 0;
                }
                Err(failure) => {
                    dead.push(DeadRecord {
                        index,
                        record: single.into_batch(),
                        reason: failure.message.clone(),
                        class: failure_class(&failure),
                    });
                    let costly = matches!(failure.kind, FailureKind::MemoryLimit | FailureKind::Deadline);
                    isolation.failed_in_a_row = if costly { isolation.failed_in_a_row + 1 } else { 0 };
                    isolation.last_failure = Some((failure.message.clone(), failure_class(&failure)));
                    self.recover(&failure);
                }
            }
        }
        isolation.dead += dead.len();
        if isolation.next < total {
            return Processed { batch: Records::from(emitted), dead, rest: Some(isolation) };
        }
        // Compacted first: a circuit opened by the count keeps the state after this batch.
        self.compact();
        self.count_batch_failures(isolation.dead == total);
        Processed { batch: Records::from(emitted), dead, rest: None }
    }

    fn count_batch_failures(&mut self, every_record_failed: bool) {
        if !every_record_failed {
            self.failed_batches_in_a_row = 0;
            return;
        }
        self.failed_batches_in_a_row += 1;
        if self.failed_batches_in_a_row >= MAX_FAILED_BATCHES_IN_A_ROW {
            self.disable(format!("every record of {MAX_FAILED_BATCHES_IN_A_ROW} batches in a row failed"));
        }
    }

    /// Builds a new instance from the snapshot and replays the journal. False if disabled.
    fn recover(&mut self, failure: &CallFailure) -> bool {
        self.instance = None;
        if let Some(metrics) = &self.metrics {
            metrics.restarts.inc();
        }
        let rebuilt = build(&self.spec, Some(&self.base)).map_err(|error| error.to_string()).and_then(|(mut instance, _)| {
            // Replayed calls already reported their metrics and wrote their logs once.
            instance.replaying(true);
            for entry in self.journal.entries() {
                let replayed = match entry {
                    JournalEntry::Process(input, batch) => instance.process(*input, batch).map(drop),
                    JournalEntry::Watermark(watermark) => instance.on_watermark(*watermark).map(drop),
                };
                replayed.map_err(|replay| format!("replaying its journal failed: {replay}"))?;
            }
            instance.replaying(false);
            Ok(instance)
        });
        match rebuilt {
            Ok(mut instance) => {
                if let Some(metrics) = &self.metrics {
                    instance.report_to(metrics.plugin.clone());
                }
                self.instance = Some(instance);
                true
            }
            Err(reason) => {
                self.disable_losing_state(format!("cannot recover after \"{failure}\": {reason}"));
                false
            }
        }
    }

    /// Disables the operator after a failure that took its instance's state with it: lost,
    /// unless the operator keeps no state (its last snapshot is "no state").
    fn disable_losing_state(&mut self, reason: String) {
        if self.base.is_empty() {
            return self.disable(reason);
        }
        tracing::error!(operator = %self.spec.name, "operator failed and lost its state: {reason}");
        self.lost_state = Some(reason.clone());
        self.switch_off(reason);
    }

    fn disable(&mut self, reason: String) {
        tracing::error!(operator = %self.spec.name, "operator disabled, its records go to the dead-letter sink: {reason}");
        self.switch_off(reason);
    }

    fn switch_off(&mut self, reason: String) {
        if let Some(instance) = self.instance.take() {
            instance.say_dropped_log_lines();
        }
        self.disabled_because = Some(reason);
        if let Some(metrics) = &self.metrics {
            metrics.circuit_open.set(1);
            metrics.memory.set(0);
        }
    }

    fn disabled_reason(&self) -> String {
        format!("operator disabled (circuit open): {}", self.disabled_because.as_deref().unwrap_or("unknown failure"))
    }

    fn refuse_all(&self, records: &Records) -> Processed {
        let reason = self.disabled_reason();
        let dead = (0..records.len()).map(|index| DeadRecord::new(records, index, reason.clone(), "disabled")).collect();
        Processed { batch: Records::default(), dead, rest: None }
    }
}

/// What `spec`'s plugin declares with its configuration and context: from a throw-away
/// instance (before a version is swapped in).
/// The instance is also asked for its state once, as every running one is at start: a
/// snapshot that always fails is found by `validate` and before a swap, not by `run`.
pub fn declared_info(spec: &OperatorSpec) -> Result<OperatorInfo, OperatorError> {
    let (mut instance, info) = initialised(spec, true)?;
    instance.snapshot().map_err(|failure| OperatorError::Failed { step: "snapshot", failure })?;
    Ok(info)
}

/// A new instance of `spec`'s plugin, after `init`; with what it declared.
fn initialised(spec: &OperatorSpec, muted: bool) -> Result<(PluginInstance, OperatorInfo), OperatorError> {
    let mut instance = PluginInstance::new(&spec.plugin, spec.name.clone(), spec.limits, spec.metrics.clone())
        .map_err(|failure| OperatorError::Failed { step: "instantiate", failure })?;
    instance.mute_metrics(muted);
    let info = instance
        .init(&spec.config_json, &spec.context)
        .map_err(|failure| OperatorError::Failed { step: "init", failure })?
        .map_err(OperatorError::ConfigRefused)?;
    Ok((instance, info))
}

/// A new, initialised instance; restored from `state` if given. Returns its base snapshot.
fn build(spec: &OperatorSpec, state: Option<&State>) -> Result<(PluginInstance, State), OperatorError> {
    let (mut instance, info) = initialised(spec, false)?;
    if info != spec.info {
        // Plugins are deterministic: the same configuration declares the same thing.
        return Err(OperatorError::Rewired(format!(
            "the plugin declared {info:?} now but {:?} when the pipeline was wired: is it deterministic?",
            spec.info
        )));
    }
    // Version 0 without bytes is what a stateless version snapshots: nothing to restore, so a
    // version with state can replace it whatever its own `restore` makes of that.
    let state = state.filter(|state| !(state.version == 0 && state.bytes.is_empty()));
    let base = match state {
        Some(state) => {
            instance
                .restore(state)
                .map_err(|failure| OperatorError::Failed { step: "restore", failure })?
                .map_err(OperatorError::StateRefused)?;
            state.clone()
        }
        None => instance.snapshot().map_err(|failure| OperatorError::Failed { step: "snapshot", failure })?,
    };
    Ok((instance, base))
}
