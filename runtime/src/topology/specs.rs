//! Operator specifications: each operator's plugin compiled, its granted files read, its
//! context (what it reads) and what it declares with its configuration; and the plugin check
//! `sluice validate` runs.

use std::collections::BTreeMap;
use std::path::Path;

use sluice_sdk::OperatorInfo;

use crate::bounded_read::read_bounded_text;
use crate::config::{LoadedPipeline, MAX_GRANTED_FILE, MissingSecret, OperatorConfig, PluginCheck, PluginProblem, parse_pinned_digest};
use crate::graph::ResolvedInputs;
use crate::pipeline::{OperatorError, OperatorSpec, OutputReaders};
use crate::wasm::{Digest, InstanceLimits, PluginError, PluginRegistry};

/// Why an operator's specification could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error(transparent)]
    Operator(#[from] OperatorError),
    #[error(transparent)]
    Secret(#[from] MissingSecret),
    #[error("{path} is {found}, but the pipeline pins {pinned} (its `sha256`): refused; change the pin to run this file")]
    Pinned { path: String, found: Digest, pinned: Digest },
}

/// The specifications of every operator of `pipeline`, in file order.
pub fn operator_specs(
    pipeline: &LoadedPipeline,
    resolved: &ResolvedInputs,
    plugins: &PluginRegistry,
) -> Result<Vec<OperatorSpec>, (String, SpecError)> {
    pipeline
        .config
        .operators
        .iter()
        .enumerate()
        .map(|(index, operator)| {
            let operator = operator.get_ref();
            let readers = resolved.readers_of(pipeline, index);
            operator_spec(pipeline, operator, resolved.input_names(pipeline, index), readers, plugins)
                .map_err(|error| (operator.name.get_ref().to_string(), error))
        })
        .collect()
}

/// Compiles (or finds) the plugin of `operator`, gathers what is needed to instantiate it,
/// and asks a throw-away instance what it declares with its configuration.
pub fn operator_spec(
    pipeline: &LoadedPipeline,
    operator: &OperatorConfig,
    inputs: Vec<String>,
    readers: OutputReaders,
    plugins: &PluginRegistry,
) -> Result<OperatorSpec, SpecError> {
    let path = pipeline.resolve(operator.plugin.get_ref());
    let plugin = plugins.load(&path)?;
    let pinned = operator.sha256.as_ref().and_then(|pin| parse_pinned_digest(pin.get_ref()).ok()).map(Digest::from_bytes);
    if let Some(pinned) = pinned
        && pinned != plugin.digest()
    {
        return Err(SpecError::Pinned { path: path.display().to_string(), found: plugin.digest(), pinned });
    }
    let mut granted = BTreeMap::new();
    for (name, path) in operator.granted_files() {
        let path = pipeline.resolve(path);
        let contents =
            read_bounded_text(&path, MAX_GRANTED_FILE).map_err(|error| PluginError::GrantedFile { path: path.clone(), error })?;
        granted.insert(name.clone(), contents);
    }
    let limits = InstanceLimits {
        memory: usize::try_from(operator.memory_limit.bytes()).unwrap_or(usize::MAX),
        call_timeout: operator.call_timeout.duration(),
    };
    let spec = OperatorSpec::read_by(
        operator.name.get_ref().as_str(),
        plugin,
        operator.config_json(&granted, &operator.secret_values()?),
        inputs,
        limits,
        readers,
    )?;
    let key_by = operator.key_by.as_ref().map(|fields| fields.get_ref().iter().map(ToString::to_string).collect());
    Ok(OperatorSpec { pinned, key_by, ..spec })
}

/// Checks plugins for `sluice validate` (and before `run`): compiles, type-checks, and
/// offers each operator its configuration in a throw-away instance.
pub struct WasmPluginCheck<'a> {
    pub pipeline: &'a LoadedPipeline,
    pub plugins: &'a PluginRegistry,
}

impl PluginCheck for WasmPluginCheck<'_> {
    fn check(&self, _path: &Path, operator: &OperatorConfig, inputs: Vec<String>) -> Result<OperatorInfo, PluginProblem> {
        // Offered what an operator others read is offered: the check is of its configuration.
        match operator_spec(self.pipeline, operator, inputs, OutputReaders::MayReadIndexes, self.plugins) {
            Ok(spec) => Ok(spec.info),
            Err(SpecError::Operator(OperatorError::ConfigRefused(reason))) => Err(PluginProblem::Config(reason)),
            Err(SpecError::Operator(error @ OperatorError::Failed { step: "snapshot", .. })) => {
                Err(PluginProblem::Plugin(format!("its state right after init could not be taken: {error}")))
            }
            // Its failure says it all ("cannot instantiate the plugin: …").
            Err(SpecError::Operator(OperatorError::Failed { step: "instantiate", failure })) => {
                Err(PluginProblem::Plugin(failure.to_string()))
            }
            // The error names its step ("init failed: …").
            Err(SpecError::Operator(error @ OperatorError::Failed { .. })) => Err(PluginProblem::Plugin(format!("its {error}"))),
            Err(SpecError::Operator(error)) => Err(PluginProblem::Plugin(format!("its init failed: {error}"))),
            Err(error @ (SpecError::Plugin(_) | SpecError::Pinned { .. } | SpecError::Secret(_))) => {
                Err(PluginProblem::Plugin(error.to_string()))
            }
        }
    }
}
