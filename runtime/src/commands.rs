//! What the `sluice` commands do, as library functions: `main.rs` parses arguments and prints.

use std::fmt;
use std::path::Path;

use crate::config::{Diagnostics, LoadedPipeline, check_pipeline};
use crate::pipeline::{PipelineSummary, RunningPipeline, StopSignal, WasmPluginCheck};
use crate::wasm::{ComponentDescription, Digest, Plugin, PluginError, PluginRegistry, WasmEngine, describe_component};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The pipeline file has problems; each is located in the file.
    #[error("{0}")]
    Invalid(Diagnostics),
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error(transparent)]
    Start(#[from] crate::pipeline::StartError),
    #[error(transparent)]
    Run(#[from] crate::pipeline::RunError),
}

/// Loads `path` and checks everything, plugins included. Compiled plugins stay in `plugins`.
pub fn validate(path: &Path, plugins: &PluginRegistry) -> Result<LoadedPipeline, CommandError> {
    let pipeline = LoadedPipeline::load(path).map_err(CommandError::Invalid)?;
    check_pipeline(&pipeline, &WasmPluginCheck { pipeline: &pipeline, plugins }).map_err(CommandError::Invalid)?;
    Ok(pipeline)
}

/// Validates and runs `path` until its sources end or `stop` is raised, then drains.
pub fn run(path: &Path, plugins: &PluginRegistry, stop: impl FnOnce(StopSignal)) -> Result<PipelineSummary, CommandError> {
    let pipeline = validate(path, plugins)?;
    let running = RunningPipeline::start(&pipeline, plugins)?;
    stop(running.stop_signal());
    Ok(running.wait()?)
}

/// What `sluice plugin inspect` reports about a component file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginReport {
    pub digest: Digest,
    pub size: usize,
    pub world: ComponentDescription,
    /// `Ok` if the component implements the operator world, else why not.
    pub operator: Result<(), String>,
}

/// Describes the component in `path`, whatever world it implements.
pub fn inspect(path: &Path, engine: &WasmEngine) -> Result<PluginReport, PluginError> {
    let bytes = std::fs::read(path).map_err(|source| PluginError::Read { path: path.to_owned(), source })?;
    let world = describe_component(engine, path, &bytes)?;
    let operator = Plugin::compile(engine, path, &bytes).map(drop).map_err(|error| error.to_string());
    Ok(PluginReport { digest: Digest::of(&bytes), size: bytes.len(), world, operator })
}

impl fmt::Display for PluginReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "digest: {}", self.digest)?;
        writeln!(f, "size:   {} bytes", self.size)?;
        match &self.operator {
            Ok(()) => writeln!(f, "world:  implements sluice:plugin/operator@0.1.0")?,
            Err(reason) => writeln!(f, "world:  NOT an operator: {reason}")?,
        }
        writeln!(f, "imports:")?;
        for import in &self.world.imports {
            writeln!(f, "  {}", import.replace('\n', "\n  "))?;
        }
        writeln!(f, "exports:")?;
        for export in &self.world.exports {
            writeln!(f, "  {}", export.replace('\n', "\n  "))?;
        }
        Ok(())
    }
}

impl fmt::Display for PipelineSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = |field: fn(&crate::pipeline::TaskStats) -> u64| self.tasks.iter().map(field).sum::<u64>();
        write!(
            f,
            "{} records in, {} out, {} dead letters",
            total(|task| task.records_in),
            total(|task| task.records_out),
            self.dead_letters
        )?;
        if self.dead_letters > 0 {
            write!(f, " (in {})", self.dead_letter_destination)?;
        }
        let late = total(|task| task.late_dropped);
        if late > 0 {
            write!(f, ", {late} late records dropped")?;
        }
        for operator in &self.operators {
            for (counter, value) in &operator.counters {
                write!(f, "; {}.{counter} = {value}", operator.name)?;
            }
        }
        for task in &self.tasks {
            for (operator, reason) in &task.disabled_operators {
                write!(f, "; operator \"{operator}\" was disabled in task \"{}\": {reason}", task.source)?;
            }
        }
        Ok(())
    }
}
