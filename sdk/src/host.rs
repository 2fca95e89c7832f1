//! What the runtime offers a plugin: logging and operator metrics.
//!
//! In WebAssembly these call the host; in native builds (unit tests, benchmarks) log
//! lines go to stderr and metrics to a per-thread table that [`crate::testing`] reads.

use std::cell::RefCell;
use std::collections::BTreeMap;

pub use crate::bindings::sluice::plugin::host::Level;

/// Writes a log line attributed to this operator.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::bindings::sluice::plugin::host::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message}");
}

/// Adds `delta` to the operator counter `name`.
pub fn counter_add(name: &str, delta: u64) {
    #[cfg(target_arch = "wasm32")]
    crate::bindings::sluice::plugin::host::counter_add(name, delta);
    #[cfg(not(target_arch = "wasm32"))]
    NATIVE_METRICS.with(|metrics| *metrics.borrow_mut().counters.entry(name.to_owned()).or_default() += delta);
}

/// Adds each non-zero count to its operator counter: what one call counted, reported once at
/// its end (a zero is not a call across the boundary).
pub fn counters_add(counts: &[(&str, u64)]) {
    for &(name, count) in counts {
        if count > 0 {
            counter_add(name, count);
        }
    }
}

/// Sets the operator gauge `name`.
pub fn gauge_set(name: &str, value: f64) {
    #[cfg(target_arch = "wasm32")]
    crate::bindings::sluice::plugin::host::gauge_set(name, value);
    #[cfg(not(target_arch = "wasm32"))]
    NATIVE_METRICS.with(|metrics| metrics.borrow_mut().gauges.insert(name.to_owned(), value));
}

/// Metrics recorded by native builds, per thread.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct NativeMetrics {
    pub counters: BTreeMap<String, u64>,
    pub gauges: BTreeMap<String, f64>,
}

thread_local! {
    static NATIVE_METRICS: RefCell<NativeMetrics> = RefCell::new(NativeMetrics::default());
}

/// The metrics this thread recorded so far (native builds only; empty in Wasm).
pub fn native_metrics() -> NativeMetrics {
    NATIVE_METRICS.with(|metrics| metrics.borrow().clone())
}
