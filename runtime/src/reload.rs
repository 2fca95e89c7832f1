//! Applying a new pipeline definition to a running pipeline, and watching the files (and
//! SIGHUP) that trigger it.
//!
//! One path for start and reload: [`plan`] compares the running definition (none at
//! start-up) with the new one. Changes confined to operators' plugins, configurations,
//! limits or granted files are hot-swapped, operator by operator, keeping their state; any
//! other change (sources, sinks, settings, the list of operators) restarts the pipeline. A new
//! definition that does not validate changes nothing: its errors are logged.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::time::SystemTime;

use notify_debouncer_mini::notify::RecursiveMode;
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer};

use crate::commands;
use crate::config::LoadedPipeline;
use crate::graph::resolve_inputs;
use crate::pipeline::{OperatorSpec, PipelineControl, StopSignal};
use crate::topology::operator_spec;
use crate::wasm::PluginRegistry;

/// How long file events settle before they are acted on.
pub const DEBOUNCE: Duration = Duration::from_millis(500);

/// What it takes to go from one definition to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing runs yet: start everything.
    Start,
    /// The wiring changed: stop (draining) and start again, for this reason.
    Restart(String),
    /// Only operators may have changed: swap those whose plugin, config or limits differ.
    SwapOperators,
}

/// The plan from `running` (none at start-up) to `new`.
pub fn plan(running: Option<&LoadedPipeline>, new: &LoadedPipeline) -> Plan {
    let Some(running) = running else { return Plan::Start };
    let (old, new) = (&running.config, &new.config);
    let names = |config: &crate::config::PipelineFileConfig| {
        config.operators.iter().map(|operator| operator.get_ref().name.get_ref().clone()).collect::<Vec<_>>()
    };
    let wiring = |config: &crate::config::PipelineFileConfig| {
        let wiring = |operator: &crate::config::OperatorConfig| (operator.inputs.clone(), operator.key_by.clone(), operator.order.clone());
        config.operators.iter().map(|operator| wiring(operator.get_ref())).collect::<Vec<_>>()
    };
    if old.pipeline != new.pipeline {
        Plan::Restart("the [pipeline] settings changed".into())
    } else if old.sources != new.sources {
        Plan::Restart("the sources changed".into())
    } else if old.sinks != new.sinks || old.dead_letter != new.dead_letter {
        Plan::Restart("the sinks changed".into())
    } else if names(old) != names(new) {
        Plan::Restart("operators were added, removed or reordered".into())
    } else if wiring(old) != wiring(new) {
        Plan::Restart("what operators read changed (`inputs`, `key_by` or `order`)".into())
    } else {
        Plan::SwapOperators
    }
}

/// Swaps every operator whose new specification (`specs`, from [`new_specs`]) differs in
/// plugin (by digest), configuration, limits or pin from what the files last made of it
/// ([`PipelineControl::made_by_files`]). Comparing with the files' previous version, not with
/// what runs, leaves swaps made through the admin API alone until the files change that
/// operator again. Stops at the first refusal.
pub fn swap_changed_operators(specs: Vec<OperatorSpec>, control: &PipelineControl) -> anyhow::Result<usize> {
    let mut swapped = 0;
    for spec in specs.into_iter().filter(|spec| !control.made_by_files(spec)) {
        control.swap_spec(spec)?;
        swapped += 1;
    }
    Ok(swapped)
}

/// The specifications of `new`'s operators (each plugin compiled and asked what it declares);
/// a refused one is recorded in the swap history (once: the caller reuses the specifications).
pub fn new_specs(new: &LoadedPipeline, control: &PipelineControl, plugins: &PluginRegistry) -> anyhow::Result<Vec<OperatorSpec>> {
    let (resolved, _) = resolve_inputs(new);
    let mut specs: Vec<OperatorSpec> = Vec::new();
    for (index, operator) in new.config.operators.iter().enumerate() {
        match operator_spec(new, operator.get_ref(), resolved.input_names(new, index), resolved.readers_of(new, index), plugins) {
            Ok(spec) => specs.push(spec),
            Err(error) => {
                let name = operator.get_ref().name.get_ref().as_str();
                let plugin_file = new.resolve(operator.get_ref().plugin.get_ref());
                control.record_refusal(name, &error.to_string(), crate::wasm::file_digest(&plugin_file));
                // Which operator, and which of its files, when it was a granted one.
                let granted: Vec<String> =
                    operator.get_ref().granted_files().map(|(grant, path)| format!("{grant} = {}", new.resolve(path).display())).collect();
                let files = if granted.is_empty() { String::new() } else { format!(" (granted files: {})", granted.join(", ")) };
                return Err(anyhow::Error::new(error).context(format!("operator \"{name}\"{files}")));
            }
        }
    }
    Ok(specs)
}

/// Why the new specifications cannot be applied by swapping operators: an operator whose new
/// version or configuration declares other side outputs or another distribution rewires the
/// pipeline.
pub fn rewiring_needed(specs: &[OperatorSpec], control: &PipelineControl) -> Option<String> {
    let current = control.current_specs();
    current
        .iter()
        .zip(specs)
        .find_map(|(running, new)| running.rewiring_needed_by(new).map(|why| format!("operator \"{}\": {why}", new.name)))
}

mod hangup;

pub use hangup::note_early_hangups;

/// Watches the pipeline file and its plugin files, and reads them again at a SIGHUP; dropped,
/// it stops.
pub struct Watcher {
    _debouncer: Option<Debouncer<notify_debouncer_mini::notify::RecommendedWatcher>>,
    _hangup: Option<hangup::HangupListener>,
}

/// What the watcher acts on.
pub struct WatchTargets {
    pub pipeline_file: PathBuf,
    pub running: LoadedPipeline,
    pub control: PipelineControl,
    pub plugins: PluginRegistry,
    pub stop: StopSignal,
    /// Where a definition that needs a restart goes (the run loop starts it).
    pub restart: Sender<Restart>,
    /// The text of a pipeline file the run loop could not start: the running definition is
    /// the one before it, and that file is not applied again until it changes.
    pub refused: Option<String>,
}

/// A restart the watcher asks for: the definition to start, and the one running when it was
/// asked (with what reloads swapped in place), which the run loop goes back to if the new
/// one cannot start.
pub struct Restart {
    pub new: LoadedPipeline,
    pub running: LoadedPipeline,
}

/// The watcher's state: its targets, and the files' fingerprints when last seen.
struct WatchState {
    targets: WatchTargets,
    fingerprints: BTreeMap<PathBuf, Fingerprint>,
}

/// Starts watching the directories of the pipeline file and of every plugin it names when
/// `files` (else only SIGHUP reads them again), then applies what changed since the files
/// were loaded (start-up takes time).
pub fn watch(targets: WatchTargets, files: bool) -> anyhow::Result<Watcher> {
    let watched = watched_files(&targets.pipeline_file, &targets.running);
    let fingerprints = watched.iter().map(|file| (file.clone(), fingerprint(file))).collect();
    let state = Arc::new(Mutex::new(WatchState { targets, fingerprints }));
    let on_hangup = state.clone();
    let hangup = hangup::HangupListener::start(move || {
        tracing::info!("SIGHUP: reading the pipeline file and its plugin files again");
        on_hangup.lock().unwrap_or_else(std::sync::PoisonError::into_inner).catch_up(true);
    });
    if !files {
        return Ok(Watcher { _debouncer: None, _hangup: hangup });
    }
    let directories = watched_directories(&watched);
    let handler = state.clone();
    let mut debouncer = new_debouncer(DEBOUNCE, move |events: DebounceEventResult| match events {
        // Which files the events name does not matter: every watched file is looked at.
        Ok(_) => handler.lock().unwrap_or_else(std::sync::PoisonError::into_inner).on_events(),
        Err(error) => tracing::warn!("watching files failed: {error}"),
    })?;
    for directory in &directories {
        debouncer.watcher().watch(directory, RecursiveMode::NonRecursive)?;
    }
    state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).catch_up(false);
    Ok(Watcher { _debouncer: Some(debouncer), _hangup: hangup })
}

impl WatchState {
    /// Events of every kind arrive, reads included, in any watched directory: act only on
    /// watched files whose modification time or size changed. Every watched file is looked at,
    /// not only those the events name: a symbolic link's fingerprint (its target's) changes
    /// with an event that names the target.
    fn on_events(&mut self) {
        let changed: BTreeSet<PathBuf> =
            self.fingerprints.iter().filter(|(path, known)| **known != fingerprint(path)).map(|(path, _)| path.clone()).collect();
        for path in &changed {
            self.fingerprints.insert(path.clone(), fingerprint(path));
        }
        if changed.is_empty() {
            return;
        }
        if changed.contains(&absolute(&self.targets.pipeline_file)) {
            self.reload();
        } else {
            self.apply_plugin_changes();
        }
        for file in watched_files(&self.targets.pipeline_file, &self.targets.running) {
            self.fingerprints.entry(file.clone()).or_insert_with(|| fingerprint(&file));
        }
    }

    /// Applies what changed in the files since they were last applied (at watch start, and at
    /// a SIGHUP): a changed pipeline file is reloaded, else the plugin files are compared. A
    /// file that could not start is tried again only when asked (`retry_refused`: a SIGHUP).
    fn catch_up(&mut self, retry_refused: bool) {
        let on_disk = std::fs::read_to_string(&self.targets.pipeline_file).ok();
        if !retry_refused && on_disk.is_some() && on_disk == self.targets.refused {
            tracing::debug!("the pipeline file is the one that could not start: waiting for it to change");
            self.apply_plugin_changes();
        } else if on_disk.as_deref() != Some(self.targets.running.text.contents()) {
            self.reload();
        } else if self.apply_plugin_changes() == Some(0) && retry_refused {
            tracing::info!("SIGHUP: nothing changed in the pipeline file or its plugin files");
        }
    }

    /// A plugin file changed: the running definition, re-applied, swaps what differs. How many
    /// operators were swapped; `None` when it failed (said) or the pipeline restarts.
    fn apply_plugin_changes(&mut self) -> Option<usize> {
        let targets = &self.targets;
        let specs = match new_specs(&targets.running, &targets.control, &targets.plugins) {
            Ok(specs) => specs,
            Err(error) => {
                tracing::error!("a changed plugin or granted file was refused, the old version keeps running: {error:#}");
                return None;
            }
        };
        if let Some(why) = rewiring_needed(&specs, &targets.control) {
            tracing::info!("a plugin file changed: {why}; restarting the pipeline");
            if targets.restart.send(Restart { new: targets.running.clone(), running: targets.running.clone() }).is_ok() {
                targets.stop.raise();
            }
            return None;
        }
        match swap_changed_operators(specs, &targets.control) {
            Ok(swapped) => {
                if swapped > 0 {
                    tracing::info!(swapped, "plugin files changed");
                }
                Some(swapped)
            }
            // The swap's own error says that the old version keeps running.
            Err(error) => {
                tracing::error!("a changed plugin file was not swapped in: {error:#}");
                None
            }
        }
    }

    /// The pipeline file changed: validate it, then swap operators or restart.
    fn reload(&mut self) {
        let targets = &mut self.targets;
        let new = match commands::validate(&targets.pipeline_file, &targets.plugins) {
            Ok(new) => new,
            Err(commands::CommandError::Invalid(diagnostics)) => {
                // One event a problem, each on one line (`sluice validate FILE` draws them).
                for diagnostic in diagnostics.iter() {
                    tracing::error!("the changed pipeline file is invalid and was not applied: {}", diagnostic.one_line());
                }
                return;
            }
            Err(error) => return tracing::error!("the changed pipeline file is invalid and was not applied: {error:#}"),
        };
        let plan = match plan(Some(&targets.running), &new) {
            Plan::SwapOperators => match new_specs(&new, &targets.control, &targets.plugins) {
                Err(error) => return tracing::error!("reloading the pipeline file stopped at a refused operator: {error:#}"),
                Ok(specs) => match rewiring_needed(&specs, &targets.control) {
                    Some(why) => Plan::Restart(why),
                    None => return self.swap_reloaded(new, specs),
                },
            },
            other => other,
        };
        if let Plan::Restart(why) = plan {
            tracing::info!("pipeline file reloaded: {why}; restarting the pipeline");
            if targets.restart.send(Restart { new, running: targets.running.clone() }).is_ok() {
                targets.stop.raise();
            }
        }
    }

    /// Swaps the operators a reloaded pipeline file changed; it becomes the running definition.
    fn swap_reloaded(&mut self, new: LoadedPipeline, specs: Vec<OperatorSpec>) {
        match swap_changed_operators(specs, &self.targets.control) {
            Ok(swapped) => {
                tracing::info!(swapped, "pipeline file reloaded");
                self.targets.running = new;
            }
            Err(error) => {
                tracing::error!("reloading the pipeline file stopped at a refused operator (those before it were swapped): {error:#}")
            }
        }
    }
}

/// The pipeline file and every plugin file it names, absolute.
fn watched_files(pipeline_file: &Path, running: &LoadedPipeline) -> Vec<PathBuf> {
    let mut files = vec![absolute(pipeline_file)];
    for operator in &running.config.operators {
        let operator = operator.get_ref();
        files.push(absolute(&running.resolve(operator.plugin.get_ref())));
        // Granted files are read into `init`: a change swaps the operator, as a plugin's does.
        files.extend(operator.granted_files().map(|(_, path)| absolute(&running.resolve(path))));
    }
    files
}

/// The directories to watch for `files`: each one's, and, for a symbolic link, its target's
/// (an edit of the target changes nothing in the link's directory).
fn watched_directories(files: &[PathBuf]) -> BTreeSet<PathBuf> {
    let targets = files.iter().filter_map(|file| std::fs::canonicalize(file).ok());
    files.iter().cloned().chain(targets).filter_map(|file| file.parent().map(Path::to_path_buf)).collect()
}

/// A file's modification time and size (`None` while it is missing): read without opening it.
type Fingerprint = Option<(SystemTime, u64)>;

fn fingerprint(path: &Path) -> Fingerprint {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::{Plan, plan};
    use crate::config::LoadedPipeline;

    const BASE: &str = r#"
[pipeline]
name = "p"

[[sources]]
type = "generator"

[[operators]]
name = "a"
plugin = "a.wasm"
config = { x = 1 }

[[sinks]]
type = "stdout"
"#;

    fn parse(text: &str) -> LoadedPipeline {
        LoadedPipeline::parse(PathBuf::from("p.toml"), text.to_owned()).expect("valid TOML")
    }

    #[test]
    fn start_up_is_the_plan_from_nothing() {
        assert_eq!(plan(None, &parse(BASE)), Plan::Start);
    }

    #[test]
    fn operator_changes_are_swapped_and_wiring_changes_restart() {
        let base = parse(BASE);
        assert_eq!(plan(Some(&base), &parse(BASE)), Plan::SwapOperators);
        assert_eq!(plan(Some(&base), &parse(&BASE.replace("x = 1", "x = 2"))), Plan::SwapOperators);
        assert_eq!(plan(Some(&base), &parse(&BASE.replace("a.wasm", "b.wasm"))), Plan::SwapOperators);
        assert!(
            matches!(plan(Some(&base), &parse(&BASE.replace("\"generator\"", "\"stdin\""))), Plan::Restart(why) if why.contains("sources"))
        );
        assert!(
            matches!(plan(Some(&base), &parse(&BASE.replace("\"stdout\"", "\"stdout\"\nformat = \"envelope\""))), Plan::Restart(why) if why.contains("sinks"))
        );
        assert!(
            matches!(plan(Some(&base), &parse(&BASE.replace("name = \"a\"", "name = \"b\""))), Plan::Restart(why) if why.contains("operators"))
        );
        assert!(
            matches!(plan(Some(&base), &parse(&BASE.replace("name = \"p\"", "name = \"p\"\nbatch_size = 5"))), Plan::Restart(why) if why.contains("[pipeline]"))
        );
    }
}
