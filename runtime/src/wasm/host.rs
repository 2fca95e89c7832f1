//! The host side of a plugin instance: its limits, log lines and operator metrics.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use wasmtime::ResourceLimiter;

use super::bindings::sluice::plugin::{host, types};
use crate::monitor::PluginMetrics;

/// Longest log line (or rejection reason) kept from a plugin; longer ones are cut.
const MAX_LOG_LINE: usize = 4096;
/// Most distinct metric names one operator may create.
const MAX_METRICS: usize = 256;
/// Most log lines one operator (all its instances) may write in a second; more are dropped,
/// and counted in a warning, so that a plugin logging in a loop cannot fill a disk.
const MAX_LOG_LINES_PER_SECOND: u32 = 1000;

/// Counters and gauges an operator reports, kept across instance re-creations.
#[derive(Debug, Default)]
pub struct OperatorMetrics {
    values: Mutex<MetricValues>,
    /// Whether the log said that a name past the limit was dropped (once per operator).
    refused_name_said: std::sync::atomic::AtomicBool,
    log_budget: Mutex<LogBudget>,
    /// Whether log lines were dropped and not yet counted in a warning (read after every
    /// call, so that the budget's lock is taken only then).
    logs_dropped: std::sync::atomic::AtomicBool,
}

/// The log lines an operator wrote in the current second, and those dropped.
#[derive(Debug, Default)]
struct LogBudget {
    second: Option<std::time::Instant>,
    written: u32,
    dropped: u64,
    /// Whether this second's first dropped line was said (the count may be taken before the
    /// second ends, by an instance that ends).
    announced: bool,
}

impl LogBudget {
    /// What to do with a line logged now.
    fn take(&mut self, now: std::time::Instant) -> LogDecision {
        let mut dropped_before = 0;
        if self.second.is_none_or(|second| now.duration_since(second) >= std::time::Duration::from_secs(1)) {
            self.second = Some(now);
            self.written = 0;
            self.announced = false;
            dropped_before = std::mem::take(&mut self.dropped);
        }
        if self.written < MAX_LOG_LINES_PER_SECOND {
            self.written += 1;
            LogDecision { write: true, dropped_before, first_dropped: false }
        } else {
            self.dropped += 1;
            LogDecision { write: false, dropped_before, first_dropped: !std::mem::replace(&mut self.announced, true) }
        }
    }

    /// The lines dropped in a second that has ended (or in any, with `at_end`), to be said
    /// though no line follows them.
    fn take_dropped(&mut self, now: std::time::Instant, at_end: bool) -> u64 {
        let ended = self.second.is_some_and(|second| now.duration_since(second) >= std::time::Duration::from_secs(1));
        if ended || at_end { std::mem::take(&mut self.dropped) } else { 0 }
    }
}

/// Whether a log line is written, and what to say of the lines dropped.
#[derive(Debug, PartialEq, Eq)]
struct LogDecision {
    write: bool,
    /// Lines dropped in the second that ended, said when the next begins.
    dropped_before: u64,
    /// The first line dropped in this second: said at once, so that a flood that ends within
    /// the second is said too.
    first_dropped: bool,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct MetricValues {
    pub counters: BTreeMap<String, u64>,
    pub gauges: BTreeMap<String, f64>,
}

impl OperatorMetrics {
    /// A copy of the current values.
    pub fn values(&self) -> MetricValues {
        self.values.lock().map(|values| values.clone()).unwrap_or_default()
    }

    fn update(&self, change: impl FnOnce(&mut MetricValues)) {
        if let Ok(mut values) = self.values.lock() {
            change(&mut values);
        }
    }
}

/// The data of one plugin instance's `Store`.
pub struct HostState {
    operator: Arc<str>,
    memory_limit: usize,
    metrics: Arc<OperatorMetrics>,
    /// Set when the plugin asked for more memory than its limit.
    pub(super) memory_refused: Option<usize>,
    /// The last panic message the plugin logged (the SDK logs panics before trapping).
    pub(super) last_panic: Option<String>,
    /// Metrics are ignored while calls are replayed after a recovery, and in throw-away
    /// instances (a configuration's check).
    pub(super) muted: bool,
    /// Calls are being replayed after a recovery: their log lines were written the first time.
    pub(super) replaying: bool,
    /// Linear memory granted so far (it never shrinks), in bytes.
    pub(super) memory_in_use: usize,
    /// Where the plugin's counters and gauges also go, per task (Prometheus).
    pub(super) task_metrics: Option<PluginMetrics>,
    /// Counter additions of the call under way, by name, recorded once it succeeds.
    pending_counters: Vec<(String, u64)>,
}

impl HostState {
    pub fn new(operator: Arc<str>, memory_limit: usize, metrics: Arc<OperatorMetrics>) -> HostState {
        HostState {
            operator,
            memory_limit,
            metrics,
            memory_refused: None,
            last_panic: None,
            muted: false,
            replaying: false,
            memory_in_use: 0,
            task_metrics: None,
            pending_counters: Vec::new(),
        }
    }

    /// At the end of a call: records the counters it added if it succeeded, forgets them if it
    /// failed (the records it was given are processed again); counts the log lines dropped in
    /// a second that has ended.
    pub fn settle_counters(&mut self, succeeded: bool) {
        self.say_dropped_log_lines(false);
        let pending = std::mem::take(&mut self.pending_counters);
        if !succeeded {
            return;
        }
        for (name, delta) in pending {
            self.add_to_counter(name, delta);
        }
    }

    fn add_to_counter(&mut self, name: String, delta: u64) {
        let mut accepted = false;
        self.metrics.update(|values| {
            if values.counters.len() < MAX_METRICS || values.counters.contains_key(&name) {
                let counter = values.counters.entry(name.clone()).or_default();
                *counter = counter.saturating_add(delta);
                accepted = true;
            }
        });
        if !accepted {
            self.name_refused("counter", &name);
        }
        if let Some(task_metrics) = self.task_metrics.as_mut().filter(|_| accepted) {
            task_metrics.counter_add(&name, delta);
        }
    }

    /// Warns of the log lines dropped in a second that ended (or in any, `at_end`) and not
    /// yet counted: a plugin that floods its log and then falls silent is counted too.
    pub fn say_dropped_log_lines(&self, at_end: bool) {
        use std::sync::atomic::Ordering;
        if !self.metrics.logs_dropped.load(Ordering::Relaxed) {
            return;
        }
        let Ok(mut budget) = self.metrics.log_budget.lock() else { return };
        let dropped = budget.take_dropped(std::time::Instant::now(), at_end);
        if budget.dropped == 0 {
            // Said here, or already when a line of the next second came.
            self.metrics.logs_dropped.store(false, Ordering::Relaxed);
        }
        drop(budget);
        if dropped > 0 {
            tracing::warn!(operator = &*self.operator, "{dropped} log lines of the plugin dropped in a second");
        }
    }

    /// Says once per operator that a new metric name past [`MAX_METRICS`] was dropped.
    fn name_refused(&self, kind: &str, name: &str) {
        if !self.metrics.refused_name_said.swap(true, std::sync::atomic::Ordering::Relaxed) {
            let operator = &*self.operator;
            tracing::warn!(
                operator,
                "the plugin's {kind} \"{}\" is dropped: a plugin may have at most {MAX_METRICS} counter names and \
                 {MAX_METRICS} gauge names, and new names past them are dropped (said once)",
                on_one_line(name.to_owned())
            );
        }
    }
}

impl Drop for HostState {
    /// The instance ends: lines dropped in a second that ended are counted now. Those of the
    /// current second are left to the instance made again after a failure (one warning a
    /// second, not one per failing record), or counted by the operator's last instance as it
    /// ends ([`crate::wasm::PluginInstance::say_dropped_log_lines`]).
    fn drop(&mut self) {
        self.say_dropped_log_lines(false);
    }
}

impl ResourceLimiter for HostState {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            self.memory_refused = Some(desired);
            return Ok(false);
        }
        self.memory_in_use = self.memory_in_use.max(desired);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// Whether the process's log format escapes control characters itself (JSON): plugins' log
/// lines are then passed on as they are.
static LOG_ESCAPES_CONTROL_CHARACTERS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Says that the process's log format escapes control characters itself (`--log-format json`).
pub fn log_escapes_control_characters() {
    LOG_ESCAPES_CONTROL_CHARACTERS.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// `message` with its control characters escaped as Rust writes them (`\n`, `\u{1b}`).
pub fn on_one_line(message: String) -> String {
    if !message.chars().any(char::is_control) {
        return message;
    }
    message.chars().map(|c| if c.is_control() { c.escape_debug().to_string() } else { c.to_string() }).collect()
}

impl host::Host for HostState {
    fn log(&mut self, level: host::Level, message: String) {
        let message = truncate(message);
        let operator = &*self.operator;
        if let Some(panic) = message.strip_prefix("panic: ").filter(|_| matches!(level, host::Level::Error)) {
            self.last_panic = Some(panic.to_owned());
        }
        // A call replayed after a failure logged its lines the first time.
        if self.replaying {
            return;
        }
        let decision = match self.metrics.log_budget.lock() {
            Ok(mut budget) => budget.take(std::time::Instant::now()),
            Err(_) => LogDecision { write: true, dropped_before: 0, first_dropped: false },
        };
        if decision.dropped_before > 0 {
            tracing::warn!(operator, "{} log lines of the plugin dropped in a second", decision.dropped_before);
        }
        if decision.first_dropped {
            tracing::warn!(operator, "dropping the plugin's log lines: more than {MAX_LOG_LINES_PER_SECOND} in a second");
        }
        if !decision.write {
            self.metrics.logs_dropped.store(true, std::sync::atomic::Ordering::Relaxed);
            return;
        }
        // One event, one line: a plugin's line breaks and control characters (a record quoted
        // in a panic message) are escaped, so that they cannot break a line-based log reader
        // (a JSON log escapes them itself: escaped twice, they would read `\\n`).
        let message =
            if LOG_ESCAPES_CONTROL_CHARACTERS.load(std::sync::atomic::Ordering::Relaxed) { message } else { on_one_line(message) };
        match level {
            host::Level::Trace => tracing::trace!(operator, "{message}"),
            host::Level::Debug => tracing::debug!(operator, "{message}"),
            host::Level::Info => tracing::info!(operator, "{message}"),
            host::Level::Warn => tracing::warn!(operator, "{message}"),
            host::Level::Error => tracing::error!(operator, "{message}"),
        }
    }

    /// Kept until the call ends: a call that fails is replayed record by record, and its
    /// additions would be counted twice ([`HostState::settle_counters`]).
    fn counter_add(&mut self, name: String, delta: u64) {
        if self.muted {
            return;
        }
        // Summed per name as they come, so that a plugin adding in a loop holds the host's
        // memory to one entry a name; twice the names a plugin may have covers those it has
        // and as many new ones as may be accepted.
        // A name is its bytes (Prometheus escapes them in its labels); where names are shown on
        // a line (the run's summary, a warning) they are escaped there.
        let name = truncate(name);
        let pending = &mut self.pending_counters;
        match pending.iter().position(|(pending, _)| *pending == name) {
            Some(at) => pending[at].1 = pending[at].1.saturating_add(delta),
            None if pending.len() < 2 * MAX_METRICS => pending.push((name, delta)),
            None => {}
        }
    }

    fn gauge_set(&mut self, name: String, value: f64) {
        if self.muted {
            return;
        }
        let name = truncate(name);
        let mut accepted = false;
        self.metrics.update(|values| {
            if values.gauges.len() < MAX_METRICS || values.gauges.contains_key(&name) {
                values.gauges.insert(name.clone(), value);
                accepted = true;
            }
        });
        if !accepted {
            self.name_refused("gauge", &name);
        }
        if let Some(task_metrics) = self.task_metrics.as_mut().filter(|_| accepted) {
            task_metrics.gauge_set(&name, value);
        }
    }
}

impl types::Host for HostState {}

/// `text` cut to [`MAX_LOG_LINE`] bytes (a log line, a metric name, a rejection's reason).
pub(super) fn truncate(mut text: String) -> String {
    if text.len() > MAX_LOG_LINE {
        let mut cut = MAX_LOG_LINE;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use host::Host as _;

    #[test]
    fn a_calls_counter_additions_are_summed_by_name_and_recorded_only_if_it_succeeds() {
        let metrics = Arc::new(OperatorMetrics::default());
        let mut state = HostState::new("op".into(), 1 << 20, metrics.clone());
        for _ in 0..100_000 {
            state.counter_add("seen".into(), 1);
        }
        assert_eq!(state.pending_counters.len(), 1, "one entry a name, however many additions");
        state.settle_counters(true);
        state.counter_add("seen".into(), 5);
        state.settle_counters(false);
        assert_eq!(metrics.values().counters.get("seen"), Some(&100_000), "the failed call's 5 are not recorded");
        for name in 0..3 * MAX_METRICS {
            state.counter_add(format!("name {name}"), 1);
        }
        assert_eq!(state.pending_counters.len(), 2 * MAX_METRICS);
        state.settle_counters(true);
        assert_eq!(metrics.values().counters.len(), MAX_METRICS, "as many names as a plugin may have");
        assert!(metrics.refused_name_said.load(std::sync::atomic::Ordering::Relaxed), "the dropped names were said");
    }

    #[test]
    fn log_lines_past_the_budget_of_a_second_are_dropped_and_counted_when_the_next_starts() {
        let mut budget = LogBudget::default();
        let start = std::time::Instant::now();
        let decisions: Vec<LogDecision> = (0..MAX_LOG_LINES_PER_SECOND + 500).map(|_| budget.take(start)).collect();
        assert_eq!(decisions.iter().filter(|decision| decision.write).count(), MAX_LOG_LINES_PER_SECOND as usize);
        assert_eq!(decisions.iter().filter(|decision| decision.first_dropped).count(), 1, "the first drop is said at once");
        let decision = |write, dropped_before, first_dropped| LogDecision { write, dropped_before, first_dropped };
        assert_eq!(budget.take(start + std::time::Duration::from_millis(999)), decision(false, 0, false), "the same second");
        assert_eq!(budget.take(start + std::time::Duration::from_secs(1)), decision(true, 501, false), "a new second, and the drops");
        assert_eq!(budget.take(start + std::time::Duration::from_secs(1)), decision(true, 0, false));
        // Lines dropped with none after them are counted once their second ends, or at the end.
        let mut quiet = LogBudget::default();
        (0..MAX_LOG_LINES_PER_SECOND + 7).for_each(|_| {
            quiet.take(start);
        });
        assert_eq!(quiet.take_dropped(start + std::time::Duration::from_millis(500), false), 0, "the second goes on");
        assert_eq!(quiet.take_dropped(start + std::time::Duration::from_secs(1), false), 7);
        assert_eq!(quiet.take_dropped(start + std::time::Duration::from_secs(2), true), 0, "said once");
        (0..3).for_each(|_| {
            quiet.take(start);
        });
        assert_eq!(quiet.take_dropped(start, true), 3, "at the end, whatever the second");
        let more = quiet.take(start);
        assert!(!more.write && !more.first_dropped, "the second's dropping was said already");
    }

    #[test]
    fn a_replayed_call_logs_nothing_but_its_panic_is_kept() {
        let mut state = HostState::new("op".into(), 1 << 20, Arc::new(OperatorMetrics::default()));
        state.replaying = true;
        state.log(host::Level::Error, "panic: again".into());
        assert_eq!(state.last_panic.as_deref(), Some("again"));
        let budget = state.metrics.log_budget.lock().expect("budget");
        assert_eq!(budget.written, 0, "nothing written while muted");
    }

    #[test]
    fn metric_names_are_their_bytes_so_a_control_character_and_its_escape_are_two_names() {
        let metrics = Arc::new(OperatorMetrics::default());
        let mut state = HostState::new("op".into(), 1 << 20, metrics.clone());
        state.counter_add("a\nb".into(), 1);
        state.counter_add("a\\nb".into(), 2);
        state.gauge_set("g\t".into(), 1.0);
        state.gauge_set("g\\t".into(), 2.0);
        state.settle_counters(true);
        let values = metrics.values();
        assert_eq!(values.counters.get("a\nb"), Some(&1));
        assert_eq!(values.counters.get("a\\nb"), Some(&2));
        assert_eq!(values.gauges.len(), 2);
    }

    #[test]
    fn a_plugins_log_message_is_one_line_and_its_panic_kept_as_written() {
        assert_eq!(on_one_line("plain".into()), "plain");
        assert_eq!(on_one_line("a\nb\t\u{1b}[2J\"q\"".into()), "a\\nb\\t\\u{1b}[2J\"q\"");
        let mut state = HostState::new("op".into(), 1 << 20, Arc::new(OperatorMetrics::default()));
        state.log(host::Level::Error, "panic: bad record {\"t\": \"x\ny\"}".into());
        assert_eq!(state.last_panic.as_deref(), Some("bad record {\"t\": \"x\ny\"}"), "the dead letter's reason as written");
    }
}
