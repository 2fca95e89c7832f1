//! The process's one wasmtime `Engine`, its `Linker`, and the epoch ticker for deadlines.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig, ProfilingStrategy};

use super::bindings::Operator;
use super::host::HostState;
use super::plugin::PluginError;

/// How often the epoch advances: the granularity of call deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(2);

/// A shared handle on the engine and linker. Cheap to clone.
#[derive(Clone)]
pub struct WasmEngine {
    engine: Engine,
    linker: Arc<Linker<HostState>>,
}

impl WasmEngine {
    /// Configures the engine (component model, epoch interruption) and starts its ticker.
    pub fn new() -> Result<WasmEngine, PluginError> {
        Self::configured(Deadlines::Enforced)
    }

    /// An engine that gives instances their memories and tables from wasmtime's pooling
    /// allocator (slots reserved once and reused) instead of mapping them per instance: for
    /// measuring what re-instantiation costs each way (`cargo bench -p sluice --bench
    /// instantiate`).
    #[doc(hidden)]
    pub fn pooled_for_measurement(instances: u32) -> Result<WasmEngine, PluginError> {
        Self::configured_with(Deadlines::Enforced, Some(instances))
    }

    /// An engine whose compiled code has no epoch checks, so no call deadline can ever fire:
    /// only for measuring what the checks cost (`cargo bench -p sluice --bench throughput`).
    /// A plugin that loops runs for ever in it.
    #[doc(hidden)]
    pub fn without_deadlines_for_measurement() -> Result<WasmEngine, PluginError> {
        Self::configured(Deadlines::Absent)
    }

    fn configured(deadlines: Deadlines) -> Result<WasmEngine, PluginError> {
        Self::configured_with(deadlines, None)
    }

    fn configured_with(deadlines: Deadlines, pool: Option<u32>) -> Result<WasmEngine, PluginError> {
        let mut config = Config::new();
        if let Some(instances) = pool {
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling(instances)));
        }
        config.wasm_component_model(true);
        config.epoch_interruption(deadlines == Deadlines::Enforced);
        config.cranelift_opt_level(OptLevel::Speed);
        // `SLUICE_PROFILE=perfmap` names plugin functions in `perf` profiles (/tmp/perf-PID.map).
        match std::env::var("SLUICE_PROFILE").as_deref() {
            Ok("perfmap") => {
                config.profiler(ProfilingStrategy::PerfMap);
            }
            Ok(other) => tracing::warn!("SLUICE_PROFILE={other:?} is not a profiling mode: the only one is \"perfmap\""),
            Err(_) => {}
        }
        let engine = Engine::new(&config).map_err(PluginError::engine)?;
        if deadlines == Deadlines::Enforced {
            start_epoch_ticker(&engine).map_err(|error| PluginError::Engine(format!("cannot start the epoch ticker thread: {error}")))?;
        }
        let mut linker = Linker::new(&engine);
        Operator::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |state| state).map_err(PluginError::engine)?;
        Ok(WasmEngine { engine, linker: Arc::new(linker) })
    }

    pub(super) fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(super) fn linker(&self) -> &Linker<HostState> {
        &self.linker
    }

    /// Epoch ticks for a call deadline of `timeout` (at least one tick).
    pub(super) fn deadline_ticks(timeout: Duration) -> u64 {
        let ticks = (timeout.as_micros() / EPOCH_TICK.as_micros()).max(1);
        u64::try_from(ticks).unwrap_or(u64::MAX).saturating_add(1)
    }
}

/// A pool for `instances` component instances, each with memories of up to 4 GiB (the
/// `ResourceLimiter` still holds each to its operator's `memory_limit`).
fn pooling(instances: u32) -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(8))
        .total_memories(instances.saturating_mul(2))
        .total_tables(instances.saturating_mul(4))
        .max_memories_per_component(4)
        .max_tables_per_component(8)
        .table_elements(1 << 20)
        .max_memory_size(1 << 32);
    pool
}

/// Whether compiled code checks the epoch, so that call deadlines can fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deadlines {
    Enforced,
    Absent,
}

/// Advances the epoch every tick until the engine is dropped; holds only a weak handle.
/// Without the ticker no deadline fires, so failing to start it is an error.
fn start_epoch_ticker(engine: &Engine) -> std::io::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new().name("sluice-epoch".into()).spawn(move || {
        while let Some(engine) = weak.upgrade() {
            engine.increment_epoch();
            drop(engine);
            std::thread::sleep(EPOCH_TICK);
        }
    })?;
    Ok(())
}
