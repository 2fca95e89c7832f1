//! What a process shows of its pipelines while they run: Prometheus metrics, the last dead
//! letters with their reasons, and the live results of `console` sinks. The admin server
//! serves them (`/metrics`, `/ready`, the web console); the pipeline only writes into them.

pub mod blocked;
pub mod metrics;
mod readiness;
mod recent;
mod results;

pub use metrics::{CheckpointRounds, Flow, Metrics, OperatorMetrics, PluginMetrics, SinkMetrics, SwapOutcome, TaskMetrics};
pub use readiness::Readiness;
pub use recent::{RecentDeadLetter, RecentDeadLetters};
pub use results::{ChartConfig, ResultBoard, ResultBoards};

/// Everything a process shows while it runs; one per process, kept across pipeline restarts.
#[derive(Clone, Default, Debug)]
pub struct Monitor {
    pub metrics: Metrics,
    pub dead_letters: RecentDeadLetters,
    pub results: ResultBoards,
    pub readiness: Readiness,
}

impl Monitor {
    /// A monitor whose metrics record nothing (benchmarks compare with it).
    pub fn without_metrics() -> Monitor {
        Monitor { metrics: Metrics::disabled(), ..Monitor::default() }
    }
}
