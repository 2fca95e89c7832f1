//! The Prometheus metrics of a process: the families, registered once, and the handles each
//! task, operator instance and sink keeps, so that the hot path only touches atomics of its own.
//!
//! Every name is in the `sluice_` namespace; labels are `pipeline`, then the node (`node`,
//! `operator` or `sink`), then `task` (a source share, a stage instance or a Kafka partition).
//! `docs/metrics.md` lists them all.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Seconds as a counter (busy, idle and back-pressured time).
pub type SecondsCounter = Counter<f64, AtomicU64>;
/// A gauge holding a float.
pub type FloatGauge = Gauge<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabels {
    pipeline: String,
    node: String,
    kind: String,
    task: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    pipeline: String,
    task: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperatorTaskLabels {
    pipeline: String,
    operator: String,
    task: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    pipeline: String,
    operator: String,
    task: String,
    call: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperatorLabels {
    pipeline: String,
    operator: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeadLetterLabels {
    pipeline: String,
    node: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    pipeline: String,
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkLabels {
    pipeline: String,
    sink: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckpointLabels {
    pipeline: String,
    task: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoundLabels {
    pipeline: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SwapLabels {
    pipeline: String,
    operator: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    pipeline: String,
    operator: String,
    plugin_digest: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginMetricLabels {
    pipeline: String,
    operator: String,
    task: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceResultLabels {
    pipeline: String,
    source: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    pipeline: String,
    topic: String,
    partition: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Latencies of calls and records: 10 µs to about 20 s.
fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(1e-5, 2.0, 22))
}

/// Lags of event time: 1 ms to about 400 days (a backfill, or the generator's default start
/// time of 2026-01-01, lags by months: with 12 days at most, every sample was `+Inf`).
fn lag_buckets() -> Histogram {
    Histogram::new(exponential_buckets(1e-3, 2.0, 36))
}

/// Every family, registered once per process.
struct Families {
    registry: Registry,
    records_in: Family<NodeLabels, Counter>,
    records_out: Family<NodeLabels, Counter>,
    bytes_in: Family<NodeLabels, Counter>,
    bytes_out: Family<NodeLabels, Counter>,
    dead_letters: Family<DeadLetterLabels, Counter>,
    late_dropped: Family<SourceLabels, Counter>,
    call_seconds: Histograms<CallLabels>,
    record_seconds: Histograms<OperatorTaskLabels>,
    busy: Family<TaskLabels, SecondsCounter>,
    idle: Family<TaskLabels, SecondsCounter>,
    backpressured: Family<TaskLabels, SecondsCounter>,
    watermark: Family<TaskLabels, Gauge>,
    task_running: Family<TaskLabels, Gauge>,
    watermark_lag: Histograms<TaskLabels>,
    end_to_end: Histograms<SinkLabels>,
    checkpoint_seconds: Histograms<TaskLabels>,
    checkpoints: Family<CheckpointLabels, Counter>,
    checkpoint_rounds: Family<RoundLabels, Counter>,
    checkpoint_bytes: Family<TaskLabels, Gauge>,
    memory: Family<OperatorTaskLabels, Gauge>,
    memory_limit: Family<OperatorLabels, Gauge>,
    restarts: Family<OperatorTaskLabels, Counter>,
    circuit_open: Family<OperatorTaskLabels, Gauge>,
    swaps: Family<SwapLabels, Counter>,
    swap_stall: Histograms<OperatorLabels>,
    version: Family<VersionLabels, Gauge>,
    plugin_counters: Family<PluginMetricLabels, Counter>,
    plugin_gauges: Family<PluginMetricLabels, FloatGauge>,
    consumer_lag: Family<PartitionLabels, Gauge>,
    commits: Family<SourceResultLabels, Counter>,
    /// The back-pressure clocks of the running tasks, credited before each scrape.
    blocked_clocks: Mutex<Vec<std::sync::Weak<super::blocked::BlockedClock>>>,
    /// The digest each (pipeline, operator) runs, so that a new one replaces it.
    versions: Mutex<HashMap<(String, String), String>>,
}

impl Families {
    /// Credits the running tasks' ongoing waits (and forgets the clocks of ended tasks).
    fn credit_blocked_tasks(&self) {
        let mut clocks = self.blocked_clocks.lock().unwrap_or_else(PoisonError::into_inner);
        clocks.retain(|clock| match clock.upgrade() {
            Some(clock) => {
                clock.credit_ongoing();
                true
            }
            None => false,
        });
    }

    fn new() -> Families {
        let latency: fn() -> Histogram = latency_buckets;
        let lag: fn() -> Histogram = lag_buckets;
        let mut families = Families {
            registry: Registry::with_prefix("sluice"),
            records_in: Family::default(),
            records_out: Family::default(),
            bytes_in: Family::default(),
            bytes_out: Family::default(),
            dead_letters: Family::default(),
            late_dropped: Family::default(),
            call_seconds: Family::new_with_constructor(latency),
            record_seconds: Family::new_with_constructor(latency),
            busy: Family::default(),
            idle: Family::default(),
            backpressured: Family::default(),
            watermark: Family::default(),
            task_running: Family::default(),
            watermark_lag: Family::new_with_constructor(lag),
            end_to_end: Family::new_with_constructor(lag),
            checkpoint_seconds: Family::new_with_constructor(latency),
            checkpoints: Family::default(),
            checkpoint_rounds: Family::default(),
            checkpoint_bytes: Family::default(),
            memory: Family::default(),
            memory_limit: Family::default(),
            restarts: Family::default(),
            circuit_open: Family::default(),
            swaps: Family::default(),
            swap_stall: Family::new_with_constructor(latency),
            version: Family::default(),
            plugin_counters: Family::default(),
            plugin_gauges: Family::default(),
            consumer_lag: Family::default(),
            commits: Family::default(),
            blocked_clocks: Mutex::default(),
            versions: Mutex::default(),
        };
        let r = &mut families.registry;
        r.register("records_in", "Records a node received (operators, sinks)", families.records_in.clone());
        r.register("records_out", "Records a node emitted (sources, operators)", families.records_out.clone());
        r.register("bytes_in", "Bytes of the records a node received", families.bytes_in.clone());
        r.register("bytes_out", "Bytes of the records a node emitted", families.bytes_out.clone());
        r.register(
            "dead_letters",
            "Records sent to the dead-letter output, by the node that refused or failed on them and the reason class \
             (refused, trap, deadline, memory, invalid-output, instantiate, disabled, late, decode, route, sink)",
            families.dead_letters.clone(),
        );
        r.register(
            "source_late_dropped",
            "Records a source dropped as late (behind its watermark, with late_records = \"drop\")",
            families.late_dropped.clone(),
        );
        r.register(
            "operator_call_seconds",
            "Time of one call into an operator (process, on-watermark, snapshot; a failed batch's record-by-record retries each count)",
            families.call_seconds.clone(),
        );
        r.register(
            "operator_record_seconds",
            "Processing time per record: a process call's time divided by its records",
            families.record_seconds.clone(),
        );
        r.register("task_busy_seconds", "Time a task spent working (processing, not waiting or blocked)", families.busy.clone());
        r.register("task_idle_seconds", "Time a task spent waiting for input", families.idle.clone());
        r.register("task_backpressured_seconds", "Time a task spent blocked on a full output queue", families.backpressured.clone());
        r.register("task_running", "1 while the task runs (the series goes when it ends)", families.task_running.clone());
        r.register("watermark_milliseconds", "The task's current watermark, milliseconds since the Unix epoch", families.watermark.clone());
        r.register("event_time_lag_seconds", "Wall clock minus the watermark, at each watermark advance", families.watermark_lag.clone());
        r.register(
            "end_to_end_latency_seconds",
            "Sink write time minus event time (up to 64 records sampled per batch)",
            families.end_to_end.clone(),
        );
        r.register("checkpoint_seconds", "Time to take and save a task's checkpoint", families.checkpoint_seconds.clone());
        r.register("checkpoints", "Checkpoints by result (ok, failed)", families.checkpoints.clone());
        r.register(
            "checkpoint_rounds",
            "Checkpoints of a whole pipeline (every task's, and the sources' positions) by result (saved, failed)",
            families.checkpoint_rounds.clone(),
        );
        r.register("checkpoint_size_bytes", "Operator state in the task's last checkpoint", families.checkpoint_bytes.clone());
        r.register("operator_memory_bytes", "Linear memory of an operator instance", families.memory.clone());
        r.register("operator_memory_limit_bytes", "The memory limit of each instance of an operator", families.memory_limit.clone());
        r.register("operator_restarts", "Instances re-created after a trap, a deadline or the memory limit", families.restarts.clone());
        r.register(
            "operator_circuit_open",
            "1 while an operator instance is disabled (its records are dead-lettered)",
            families.circuit_open.clone(),
        );
        r.register("swaps", "Hot swaps and rollbacks, by result (swapped, refused)", families.swaps.clone());
        r.register("swap_stall_seconds", "Longest time a task's records waited for a swap", families.swap_stall.clone());
        r.register("operator_version", "1 for the plugin version (digest) each operator runs", families.version.clone());
        r.register(
            "plugin_counter",
            "Counters operators report through the host's counter-add, per task",
            families.plugin_counters.clone(),
        );
        r.register("plugin_gauge", "Gauges operators report through the host's gauge-set, per task", families.plugin_gauges.clone());
        r.register("kafka_consumer_lag", "High watermark minus the position, per assigned partition", families.consumer_lag.clone());
        r.register(
            "kafka_commits",
            "Offset commits a Kafka source made after its checkpoints, by result (sent, failed: refused by the client)",
            families.commits.clone(),
        );
        families
    }
}

/// The metrics of a process. Cheap to clone; a disabled one hands out no handles, so that
/// the instrumented code does nothing (for comparisons in benchmarks).
#[derive(Clone)]
pub struct Metrics {
    families: Option<Arc<Families>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics { families: Some(Arc::new(Families::new())) }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("enabled", &self.families.is_some()).finish()
    }
}

impl Metrics {
    /// Metrics that record nothing.
    pub fn disabled() -> Metrics {
        Metrics { families: None }
    }

    pub fn is_enabled(&self) -> bool {
        self.families.is_some()
    }

    /// Every metric in the Prometheus text format (version 0.0.4).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Some(families) = &self.families {
            families.credit_blocked_tasks();
            // Writing into a String cannot fail.
            let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &families.registry);
        }
        text
    }

    /// The handles of one task.
    pub fn task(&self, pipeline: &str, task: &str) -> Option<TaskMetrics> {
        let families = self.families.as_ref()?;
        let labels = TaskLabels { pipeline: pipeline.into(), task: task.into() };
        // Counted, not set: a task that ends late (a Kafka partition handed over past its
        // limit) may retire after a new task of the same name started.
        families.task_running.get_or_create(&labels).inc();
        let backpressured = families.backpressured.get_or_create_owned(&labels);
        let blocked = Arc::new(super::blocked::BlockedClock::new(backpressured.clone()));
        families.blocked_clocks.lock().unwrap_or_else(PoisonError::into_inner).push(Arc::downgrade(&blocked));
        Some(TaskMetrics {
            busy: families.busy.get_or_create_owned(&labels),
            idle: families.idle.get_or_create_owned(&labels),
            backpressured,
            blocked,
            watermark: None,
            families: families.clone(),
            labels: labels.clone(),
            watermark_lag: families.watermark_lag.get_or_create_owned(&labels),
            checkpoint_sizes: None,
            checkpoints_ok: families.checkpoints.get_or_create_owned(&CheckpointLabels {
                pipeline: pipeline.into(),
                task: task.into(),
                result: "ok".into(),
            }),
            checkpoints_failed: families.checkpoints.get_or_create_owned(&CheckpointLabels {
                pipeline: pipeline.into(),
                task: task.into(),
                result: "failed".into(),
            }),
        })
    }

    /// The record and byte counters of a source as one task reads it.
    pub fn source(&self, pipeline: &str, source: &str, task: &str) -> Option<Flow> {
        let families = self.families.as_ref()?;
        let labels = NodeLabels { pipeline: pipeline.into(), node: source.into(), kind: "source".into(), task: task.into() };
        Some(Flow { records: families.records_out.get_or_create_owned(&labels), bytes: families.bytes_out.get_or_create_owned(&labels) })
    }

    /// The handles of one instance of an operator.
    pub fn operator(&self, pipeline: &str, operator: &str, task: &str, memory_limit: usize) -> Option<OperatorMetrics> {
        let families = self.families.as_ref()?;
        let node = NodeLabels { pipeline: pipeline.into(), node: operator.into(), kind: "operator".into(), task: task.into() };
        let labels = OperatorTaskLabels { pipeline: pipeline.into(), operator: operator.into(), task: task.into() };
        let call = |call: &str| {
            families.call_seconds.get_or_create_owned(&CallLabels {
                pipeline: pipeline.into(),
                operator: operator.into(),
                task: task.into(),
                call: call.into(),
            })
        };
        self.set_memory_limit(pipeline, operator, memory_limit);
        // Both series from the start, so that an alert on refused swaps has one to read.
        for result in ["swapped", "refused"] {
            let _created =
                families.swaps.get_or_create(&SwapLabels { pipeline: pipeline.into(), operator: operator.into(), result: result.into() });
        }
        Some(OperatorMetrics {
            input: Flow { records: families.records_in.get_or_create_owned(&node), bytes: families.bytes_in.get_or_create_owned(&node) },
            output: Flow { records: families.records_out.get_or_create_owned(&node), bytes: families.bytes_out.get_or_create_owned(&node) },
            process: call("process"),
            on_watermark: call("on-watermark"),
            snapshot: call("snapshot"),
            per_record: families.record_seconds.get_or_create_owned(&labels),
            memory: families.memory.get_or_create_owned(&labels),
            restarts: families.restarts.get_or_create_owned(&labels),
            circuit_open: families.circuit_open.get_or_create_owned(&labels),
            plugin: PluginMetrics {
                families: families.clone(),
                pipeline: pipeline.into(),
                operator: operator.into(),
                task: task.into(),
                counters: HashMap::new(),
                gauges: HashMap::new(),
                gauge_names: Arc::default(),
            },
        })
    }

    /// The handles of a sink.
    pub fn sink(&self, pipeline: &str, sink: &str) -> Option<SinkMetrics> {
        let families = self.families.as_ref()?;
        let node = NodeLabels { pipeline: pipeline.into(), node: sink.into(), kind: "sink".into(), task: sink.into() };
        Some(SinkMetrics {
            input: Flow { records: families.records_in.get_or_create_owned(&node), bytes: families.bytes_in.get_or_create_owned(&node) },
            latency: families.end_to_end.get_or_create_owned(&SinkLabels { pipeline: pipeline.into(), sink: sink.into() }),
        })
    }

    /// Counts a dead letter of `node` (an operator, or a source) of reason class `reason`.
    /// The count of the records `source` drops as late (`late_records = "drop"`).
    pub fn source_late_dropped(&self, pipeline: &str, source: &str) -> Option<Counter> {
        let families = self.families.as_ref()?;
        Some(families.late_dropped.get_or_create_owned(&SourceLabels { pipeline: pipeline.into(), source: source.into() }))
    }

    /// The counters of a pipeline's checkpoint rounds: saved and failed (both shown from the
    /// start, so that an alert on failures has a series to read).
    pub fn checkpoint_rounds(&self, pipeline: &str) -> Option<CheckpointRounds> {
        let families = self.families.as_ref()?;
        let counter = |result: &str| {
            families.checkpoint_rounds.get_or_create_owned(&RoundLabels { pipeline: pipeline.into(), result: result.into() })
        };
        Some(CheckpointRounds { saved: counter("saved"), failed: counter("failed") })
    }

    pub fn dead_letter(&self, pipeline: &str, node: &str, reason: &str) {
        if let Some(families) = &self.families {
            families
                .dead_letters
                .get_or_create(&DeadLetterLabels { pipeline: pipeline.into(), node: node.into(), reason: reason.into() })
                .inc();
        }
    }

    /// Records a swap attempt; a swap that happened moves the operator's version.
    pub fn swap(&self, pipeline: &str, operator: &str, outcome: SwapOutcome<'_>) {
        let Some(families) = &self.families else { return };
        let result = if outcome.swapped { "swapped" } else { "refused" };
        families.swaps.get_or_create(&SwapLabels { pipeline: pipeline.into(), operator: operator.into(), result: result.into() }).inc();
        let labels = OperatorLabels { pipeline: pipeline.into(), operator: operator.into() };
        // A refusal that reached the tasks held their records too (a restore that failed).
        if outcome.swapped || !outcome.stall.is_zero() {
            families.swap_stall.get_or_create(&labels).observe(outcome.stall.as_secs_f64());
        }
        if outcome.swapped {
            self.set_version(pipeline, operator, outcome.new_digest);
        }
    }

    /// The memory limit of each instance of `operator`, as a swap (a reload's new
    /// `memory_limit`) changes it.
    pub fn set_memory_limit(&self, pipeline: &str, operator: &str, memory_limit: usize) {
        let Some(families) = &self.families else { return };
        families
            .memory_limit
            .get_or_create(&OperatorLabels { pipeline: pipeline.into(), operator: operator.into() })
            .set(i64::try_from(memory_limit).unwrap_or(i64::MAX));
    }

    /// The operator now runs `digest`: the version it ran before (in this process, across
    /// restarts of the pipeline) is no longer shown.
    pub fn set_version(&self, pipeline: &str, operator: &str, digest: &str) {
        let Some(families) = &self.families else { return };
        let labels = |digest: &str| VersionLabels { pipeline: pipeline.into(), operator: operator.into(), plugin_digest: digest.into() };
        let mut versions = families.versions.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = versions.insert((pipeline.into(), operator.into()), digest.into()).filter(|old| old != digest) {
            families.version.remove(&labels(&old));
        }
        families.version.get_or_create(&labels(digest)).set(1);
    }

    /// Removes an operator's per-operator gauges (its version and memory limit): its pipeline
    /// stopped, to restart or for good, and a restart sets those of the operators it runs.
    pub fn retire_operator(&self, pipeline: &str, operator: &str) {
        let Some(families) = &self.families else { return };
        let mut versions = families.versions.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(digest) = versions.remove(&(pipeline.into(), operator.into())) {
            families.version.remove(&VersionLabels { pipeline: pipeline.into(), operator: operator.into(), plugin_digest: digest });
        }
        families.memory_limit.remove(&OperatorLabels { pipeline: pipeline.into(), operator: operator.into() });
    }

    /// Sets the consumer lag of a Kafka partition.
    pub fn consumer_lag(&self, pipeline: &str, topic: &str, partition: i32, lag: i64) {
        if let Some(families) = &self.families {
            let labels = PartitionLabels { pipeline: pipeline.into(), topic: topic.into(), partition: partition.to_string() };
            families.consumer_lag.get_or_create(&labels).set(lag);
        }
    }

    /// `source` sent an offset commit to the brokers, or its client refused it.
    pub fn commit(&self, pipeline: &str, source: &str, sent: bool) {
        let Some(families) = &self.families else { return };
        let result = if sent { "sent" } else { "failed" };
        let labels = SourceResultLabels { pipeline: pipeline.into(), source: source.into(), result: result.into() };
        families.commits.get_or_create(&labels).inc();
    }

    /// Forgets the consumer lag of a partition this process no longer reads.
    pub fn forget_partition(&self, pipeline: &str, topic: &str, partition: i32) {
        if let Some(families) = &self.families {
            families.consumer_lag.remove(&PartitionLabels {
                pipeline: pipeline.into(),
                topic: topic.into(),
                partition: partition.to_string(),
            });
        }
    }
}

/// What a swap did, for [`Metrics::swap`].
pub struct SwapOutcome<'a> {
    pub swapped: bool,
    pub stall: Duration,
    pub new_digest: &'a str,
}

/// Records and bytes through one side of a node.
#[derive(Clone, Debug)]
pub struct Flow {
    records: Counter,
    bytes: Counter,
}

impl Flow {
    pub fn add(&self, records: usize, bytes: usize) {
        self.records.inc_by(records as u64);
        self.bytes.inc_by(bytes as u64);
    }

    /// Counts `batch`: its records and their bytes.
    pub fn add_batch(&self, batch: &sluice_sdk::Batch) {
        self.add(batch.len(), record_bytes(batch));
    }

    /// Counts `records`, a batch or a selection of one.
    pub fn add_records(&self, records: &crate::wasm::Records) {
        self.add(records.len(), entries_bytes(records.base(), records.events()));
    }
}

/// The bytes of a batch's records: keys, values and headers. Not the records' field indexes,
/// nor bytes of the buffer no record points to (a batch of records passed on by position keeps
/// its input's whole buffer).
pub fn record_bytes(batch: &sluice_sdk::Batch) -> usize {
    entries_bytes(batch, &batch.events)
}

/// [`record_bytes`] of the records `events` describe in `batch`.
fn entries_bytes(batch: &sluice_sdk::Batch, events: &[sluice_sdk::Event]) -> usize {
    events
        .iter()
        .map(|event| {
            let first = event.first_header as usize;
            let headers = batch.headers.get(first..first.saturating_add(event.header_count as usize)).unwrap_or_default();
            let header_bytes: usize = headers.iter().map(|header| (header.name.length + header.value.length) as usize).sum();
            event.key.map_or(0, |key| key.length as usize) + event.value.length as usize + header_bytes
        })
        .sum()
}

/// The handles of one task.
#[derive(Clone)]
pub struct TaskMetrics {
    pub busy: SecondsCounter,
    pub idle: SecondsCounter,
    /// Credited by `blocked` (as sends wait), never directly.
    pub backpressured: SecondsCounter,
    /// The task thread's clock of blocked sends ([`super::blocked`]).
    pub blocked: Arc<super::blocked::BlockedClock>,
    /// Made at the first watermark: a task without one shows none (not 1970).
    watermark: Option<Gauge>,
    families: Arc<Families>,
    labels: TaskLabels,
    watermark_lag: Histogram,
    /// The checkpoint's duration and size, made at the first checkpoint: a task that takes
    /// none (no `state_dir`, not Kafka) shows none (a wide pipeline's scrape held a thousand
    /// lines of empty histograms).
    checkpoint_sizes: Option<(Histogram, Gauge)>,
    checkpoints_ok: Counter,
    checkpoints_failed: Counter,
}

/// The counters of one pipeline's checkpoint rounds.
pub struct CheckpointRounds {
    pub saved: Counter,
    pub failed: Counter,
}

impl TaskMetrics {
    /// The task's operators reached `watermark` at wall-clock time `now_ms`.
    pub fn watermark(&mut self, watermark: i64, now_ms: i64) {
        if watermark == i64::MAX {
            return;
        }
        let families = &self.families;
        let labels = &self.labels;
        self.watermark.get_or_insert_with(|| families.watermark.get_or_create_owned(labels)).set(watermark);
        self.watermark_lag.observe(now_ms.saturating_sub(watermark).max(0) as f64 / 1e3);
    }

    /// A checkpoint was saved.
    pub fn checkpoint_saved(&mut self, took: Duration, state_bytes: usize) {
        let (families, labels) = (&self.families, &self.labels);
        let (seconds, bytes) = self.checkpoint_sizes.get_or_insert_with(|| {
            (families.checkpoint_seconds.get_or_create_owned(labels), families.checkpoint_bytes.get_or_create_owned(labels))
        });
        seconds.observe(took.as_secs_f64());
        bytes.set(i64::try_from(state_bytes).unwrap_or(i64::MAX));
        self.checkpoints_ok.inc();
    }

    pub fn checkpoint_failed(&self) {
        self.checkpoints_failed.inc();
    }

    /// The task ended: its gauges go (counters and histograms stay, as totals).
    pub fn retire(&self) {
        if self.families.task_running.get_or_create(&self.labels).dec() <= 1 {
            self.families.task_running.remove(&self.labels);
        }
        self.families.watermark.remove(&self.labels);
        self.families.checkpoint_bytes.remove(&self.labels);
    }
}

impl std::fmt::Debug for TaskMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskMetrics").field("task", &self.labels.task).finish()
    }
}

/// The handles of one instance of an operator.
#[derive(Clone, Debug)]
pub struct OperatorMetrics {
    pub input: Flow,
    pub output: Flow,
    pub process: Histogram,
    pub on_watermark: Histogram,
    pub snapshot: Histogram,
    pub per_record: Histogram,
    pub memory: Gauge,
    pub restarts: Counter,
    pub circuit_open: Gauge,
    pub plugin: PluginMetrics,
}

impl OperatorMetrics {
    /// The instance ended with its task: its gauges go (counters and histograms stay).
    pub fn retire(&self) {
        let plugin = &self.plugin;
        let labels = OperatorTaskLabels { pipeline: plugin.pipeline.clone(), operator: plugin.operator.clone(), task: plugin.task.clone() };
        plugin.families.memory.remove(&labels);
        plugin.families.circuit_open.remove(&labels);
        for name in plugin.gauge_names.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            plugin.families.plugin_gauges.remove(&plugin.labels(name));
        }
    }
}

/// Where an operator instance's own counters and gauges go: one series per task, so that the
/// instances of an operator never overwrite each other.
#[derive(Clone)]
pub struct PluginMetrics {
    families: Arc<Families>,
    pipeline: String,
    operator: String,
    task: String,
    /// The handles of the names this instance used: later calls touch only their atomics.
    counters: HashMap<String, Counter>,
    gauges: HashMap<String, FloatGauge>,
    /// The gauge names every copy of these handles used (the running instance has its own
    /// copy), so that [`OperatorMetrics::retire`] removes them all.
    gauge_names: Arc<Mutex<BTreeSet<String>>>,
}

impl std::fmt::Debug for PluginMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginMetrics").field("operator", &self.operator).field("task", &self.task).finish()
    }
}

impl PluginMetrics {
    fn labels(&self, name: &str) -> PluginMetricLabels {
        PluginMetricLabels { pipeline: self.pipeline.clone(), operator: self.operator.clone(), task: self.task.clone(), name: name.into() }
    }

    pub fn counter_add(&mut self, name: &str, delta: u64) {
        if !self.counters.contains_key(name) {
            let counter = self.families.plugin_counters.get_or_create_owned(&self.labels(name));
            self.counters.insert(name.to_owned(), counter);
        }
        if let Some(counter) = self.counters.get(name) {
            counter.inc_by(delta);
        }
    }

    pub fn gauge_set(&mut self, name: &str, value: f64) {
        if !self.gauges.contains_key(name) {
            let gauge = self.families.plugin_gauges.get_or_create_owned(&self.labels(name));
            self.gauges.insert(name.to_owned(), gauge);
            self.gauge_names.lock().unwrap_or_else(PoisonError::into_inner).insert(name.to_owned());
        }
        if let Some(gauge) = self.gauges.get(name) {
            gauge.set(value);
        }
    }
}

/// The handles of a sink.
#[derive(Clone, Debug)]
pub struct SinkMetrics {
    pub input: Flow,
    latency: Histogram,
}

/// Most records of a batch whose end-to-end latency is observed.
const LATENCY_SAMPLES: usize = 64;

impl SinkMetrics {
    /// Observes the end-to-end latency of up to 64 records spread over a batch written at
    /// `now_ms`, given their event times.
    pub fn written(&self, timestamps: impl ExactSizeIterator<Item = i64>, now_ms: i64) {
        let step = timestamps.len().div_ceil(LATENCY_SAMPLES).max(1);
        for timestamp in timestamps.step_by(step) {
            self.latency.observe(now_ms.saturating_sub(timestamp).max(0) as f64 / 1e3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Metrics;

    /// The running instance sets gauges through its own copy of the handles: retiring the
    /// operator's removes them too.
    #[test]
    fn a_retired_instance_leaves_no_plugin_gauge() {
        let metrics = Metrics::default();
        let operator = metrics.operator("p", "windows", "windows#1", 1 << 20).expect("enabled");
        let mut running = operator.plugin.clone();
        running.gauge_set("open_windows", 3.0);
        running.counter_add("late_dropped", 2);
        assert!(
            metrics.encode().contains(r#"sluice_plugin_gauge{pipeline="p",operator="windows",task="windows#1",name="open_windows"} 3.0"#)
        );
        operator.retire();
        let text = metrics.encode();
        assert!(!text.contains("open_windows"), "{text}");
        assert!(text.contains("late_dropped"), "counters stay, as totals: {text}");
    }

    /// The tasks running now are those with a `sluice_task_running` series: an ended task's
    /// counters stay, its series goes.
    #[test]
    fn a_task_is_running_until_it_is_retired() {
        let metrics = Metrics::default();
        let task = metrics.task("p", "agg#0").expect("enabled");
        let running = r#"sluice_task_running{pipeline="p",task="agg#0"} 1"#;
        assert!(metrics.encode().contains(running));
        // A task of the same name started before the first ended (a partition back soon).
        let again = metrics.task("p", "agg#0").expect("enabled");
        task.retire();
        assert!(metrics.encode().contains(running), "the later task still runs");
        again.retire();
        let text = metrics.encode();
        assert!(!text.contains(running), "{text}");
        assert!(text.contains(r#"sluice_task_busy_seconds_total{pipeline="p",task="agg#0"}"#), "counters stay: {text}");
    }
}
