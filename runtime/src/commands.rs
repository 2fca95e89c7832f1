//! What the `sluice` commands do, as library functions: `main.rs` parses arguments and prints.

use std::fmt;
use std::path::Path;

use crate::config::{Diagnostics, LoadedPipeline, check_pipeline};
use crate::graph::Graph;
use crate::monitor::Monitor;
use crate::pipeline::{CarriedOver, PipelineControl, StopSignal};
use crate::topology::{PipelineSummary, RunningPipeline, WasmPluginCheck};
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
    Start(#[from] crate::topology::StartError),
    #[error(transparent)]
    Run(#[from] crate::topology::RunError),
}

/// Loads `path` and checks everything, plugins included. Compiled plugins stay in `plugins`.
pub fn validate(path: &Path, plugins: &PluginRegistry) -> Result<LoadedPipeline, CommandError> {
    validate_graph(path, plugins).map(|(pipeline, _)| pipeline)
}

/// Like [`validate`], and also returns the pipeline's graph.
pub fn validate_graph(path: &Path, plugins: &PluginRegistry) -> Result<(LoadedPipeline, Graph), CommandError> {
    let pipeline = LoadedPipeline::load(path).map_err(CommandError::Invalid)?;
    let graph = check_pipeline(&pipeline, &WasmPluginCheck { pipeline: &pipeline, plugins }).map_err(CommandError::Invalid)?;
    Ok((pipeline, graph))
}

/// Validates and runs `path` until its sources end or the stop signal is raised, then drains.
/// `started` receives the stop signal and the control handle once everything runs.
pub fn run(
    path: &Path,
    plugins: &PluginRegistry,
    started: impl FnOnce(StopSignal, PipelineControl),
) -> Result<PipelineSummary, CommandError> {
    let pipeline = validate(path, plugins)?;
    let running = RunningPipeline::start(&pipeline, plugins)?;
    started(running.stop_signal(), running.control());
    Ok(running.wait()?)
}

/// How `sluice run` serves a pipeline beyond running it.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Serve the admin API.
    pub admin: Option<AdminOptions>,
    /// Serve `/metrics` (and `/health`) alone on this address.
    pub metrics: Option<std::net::SocketAddr>,
    /// Watch the pipeline file and its plugins, and apply their changes.
    pub watch: bool,
}

/// Where and how the admin API is served.
#[derive(Debug, Clone)]
pub struct AdminOptions {
    /// Port 0 picks a free port; the address bound is logged (`admin API listening`).
    pub address: std::net::SocketAddr,
    /// Required from every client when given (and for any non-loopback address).
    pub token: Option<crate::admin::AdminToken>,
    /// HTTPS instead of HTTP (required for any non-loopback address).
    pub tls: Option<crate::admin::TlsIdentity>,
}

/// Runs `path` like [`run`], and also serves the admin API and watches files as asked. A
/// reload that changes the wiring restarts the pipeline (the old one drains first). Raising
/// `stop` ends it all.
pub fn serve(path: &Path, plugins: &PluginRegistry, options: &ServeOptions, stop: StopSignal) -> Result<PipelineSummary, ServeError> {
    let current = SharedControl::default();
    // One monitor for the process: counters go on across restarts, as Prometheus expects.
    let monitor = Monitor::default();
    // Listening before the plugins compile (tens of seconds for Python or JavaScript ones
    // without the compiled cache): `/health` answers, and `/ready` says the pipeline starts.
    let _admin = match &options.admin {
        Some(admin) => Some(AdminServer::start(admin, current.clone(), plugins.clone(), monitor.clone())?),
        None => None,
    };
    let _metrics = match options.metrics {
        Some(address) => Some(AdminServer::start_metrics(address, monitor.clone())?),
        None => None,
    };
    let mut pipeline = validate_unless_stopped(path, plugins, &stop)?;
    if options.admin.is_none() {
        warn_unseen_console_sinks(&pipeline);
    }
    // The previous definition, and what its run carried over, to go back to if a reloaded one
    // cannot start.
    let mut previous: Option<(LoadedPipeline, CarriedOver)> = None;
    let mut carried: Option<CarriedOver> = None;
    // The text of a reloaded definition that could not start: not tried again until the file
    // changes (else each start of the previous one would try it again, in a loop).
    let mut refused: Option<String> = None;
    loop {
        let started = match carried.take() {
            None => RunningPipeline::start_monitored(&pipeline, plugins, stop.child(), monitor.clone()),
            Some(carried) => RunningPipeline::restart_monitored(&pipeline, plugins, stop.child(), monitor.clone(), carried),
        };
        let running = match started {
            Ok(running) => running,
            // Stopped while it waited for brokers: the stop applies to any definition.
            Err(error) if error.is_stopped() => return Err(error.into()),
            // A reloaded definition that validated but cannot start: go back to the last one.
            Err(error) if let Some(last) = previous.take() => {
                refused = Some(give_way_to_previous(&error, &mut pipeline, &mut carried, last));
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        let control = running.control();
        current.set(control.clone());
        monitor.readiness.running(running.stop_signal());
        let (restart, restart_requested) = std::sync::mpsc::channel();
        let _watcher = watch_files(path, &pipeline, &running, plugins, restart, refused.clone(), options.watch);
        let summary = running.wait();
        monitor.readiness.ended();
        let summary = match summary {
            // A partition of a Kafka source that could not start from its checkpoint (they
            // start as the group assigns them, after the pipeline did): as above.
            Err(error)
                if error.is_task_not_started()
                    && !stop.is_raised()
                    && let Some(last) = previous.take() =>
            {
                control.retire_operator_gauges();
                monitor.results.close_pipeline(control.pipeline());
                refused = Some(give_way_to_previous(&error, &mut pipeline, &mut carried, last));
                continue;
            }
            summary => summary?,
        };
        // Several restarts may have been asked for while draining: the newest wins.
        match restart_requested.try_iter().last() {
            Some(crate::reload::Restart { new, running }) if !stop.is_raised() => {
                // The summary at the end counts from the last restart: say what this run did.
                tracing::info!("stopped to restart: {summary}; the next summary counts from the restart");
                control.retire_operator_gauges();
                monitor.results.close_pipeline(control.pipeline());
                let carried_over = control.carried_over();
                carried = Some(carried_over.clone());
                refused = None;
                // Back to what ran last, reloads swapped in place included, if `new` cannot start.
                pipeline = new;
                previous = Some((running, carried_over));
            }
            _ => return Ok(summary),
        }
    }
}

/// A reloaded definition that cannot start (`error`) gives way to the `previous` one and what
/// its run carried over; returns the refused definition's text, which is not tried again until
/// the file changes (else each start of the previous one would try it again, in a loop).
fn give_way_to_previous(
    error: &dyn std::fmt::Display,
    pipeline: &mut LoadedPipeline,
    carried: &mut Option<CarriedOver>,
    (definition, all_carried): (LoadedPipeline, CarriedOver),
) -> String {
    tracing::error!(
        "the reloaded pipeline cannot start, restarting the previous definition (the file is tried again once it changes): {error}"
    );
    let refused = pipeline.text.contents().to_owned();
    (*pipeline, *carried) = (definition, Some(all_carried));
    refused
}

/// [`validate`] on a thread of its own, given up when `stop` is raised first: compiling the
/// plugins (tens of seconds for Python or JavaScript ones without the compiled cache) cannot be
/// interrupted, and a stop asked for meanwhile does not wait for it (the process ends).
fn validate_unless_stopped(path: &Path, plugins: &PluginRegistry, stop: &StopSignal) -> Result<LoadedPipeline, ServeError> {
    let (done, validated) = std::sync::mpsc::channel();
    let (path, plugins) = (path.to_path_buf(), plugins.clone());
    let validating = std::thread::spawn(move || {
        let _ = done.send(validate(&path, &plugins));
    });
    loop {
        match validated.recv_timeout(std::time::Duration::from_millis(50)) {
            Ok(result) => return Ok(result?),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) if stop.is_raised() => return Err(ServeError::StoppedWhileValidating),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            // It panicked: the panic goes on here.
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match validating.join() {
                Err(panic) => std::panic::resume_unwind(panic),
                Ok(()) => unreachable!("the thread sends before it ends"),
            },
        }
    }
}

/// A `console` sink shows its records in the admin server's web console: without `--admin`
/// nobody sees them.
fn warn_unseen_console_sinks(pipeline: &LoadedPipeline) {
    for sink in &pipeline.config.sinks {
        if let crate::config::SinkConfig::Console(_) = sink.get_ref() {
            tracing::warn!(sink = %sink.get_ref().name(), "a console sink shows its records in the web console: run with --admin 127.0.0.1:9180 to see them");
        }
    }
}

/// Watches the pipeline's files (when `files`) and SIGHUP; a failure to watch is reported, and
/// the pipeline runs on.
fn watch_files(
    path: &Path,
    pipeline: &LoadedPipeline,
    running: &RunningPipeline,
    plugins: &PluginRegistry,
    restart: std::sync::mpsc::Sender<crate::reload::Restart>,
    refused: Option<String>,
    files: bool,
) -> Option<crate::reload::Watcher> {
    let targets = crate::reload::WatchTargets {
        pipeline_file: path.to_path_buf(),
        running: pipeline.clone(),
        control: running.control(),
        plugins: plugins.clone(),
        stop: running.stop_signal(),
        restart,
        refused,
    };
    crate::reload::watch(targets, files)
        .map_err(|error| tracing::warn!("changes to the pipeline's files will not be applied: cannot watch them: {error:#}"))
        .ok()
}

/// Why `sluice run` stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("cannot serve the admin API on {address}: {error}")]
    Admin { address: std::net::SocketAddr, error: std::io::Error },
    /// Its messages say what the admin API lacks (and the error has no other source).
    #[error(transparent)]
    AdminAccess(#[from] crate::admin::AccessError),
    #[error("cannot serve the metrics on {address}: {error}")]
    Metrics { address: std::net::SocketAddr, error: std::io::Error },
    #[error("stopped while the pipeline's plugins compiled")]
    StoppedWhileValidating,
}

impl ServeError {
    /// Whether the pipeline did not start because the stop signal came first.
    pub fn stopped_before_start(&self) -> bool {
        match self {
            ServeError::Command(CommandError::Start(start)) => start.is_stopped(),
            ServeError::StoppedWhileValidating => true,
            _ => false,
        }
    }
}

impl From<crate::topology::StartError> for ServeError {
    fn from(error: crate::topology::StartError) -> Self {
        ServeError::Command(error.into())
    }
}

impl From<crate::topology::RunError> for ServeError {
    fn from(error: crate::topology::RunError) -> Self {
        ServeError::Command(error.into())
    }
}

/// The control handle of whichever pipeline runs now (a restart replaces it).
#[derive(Clone, Default)]
pub struct SharedControl(std::sync::Arc<std::sync::Mutex<Option<PipelineControl>>>);

impl SharedControl {
    fn set(&self, control: PipelineControl) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(control);
    }

    /// The running pipeline's control, if one runs.
    pub fn get(&self) -> Option<PipelineControl> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// The admin API on its own small runtime; dropped, it shuts down, letting requests in
/// progress finish (for up to `admin::DRAIN_LIMIT`).
struct AdminServer {
    runtime: Option<tokio::runtime::Runtime>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    serving: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let (Some(runtime), Some(serving)) = (self.runtime.take(), self.serving.take()) {
            // The server drains for up to DRAIN_LIMIT; a second more covers its own bookkeeping.
            // The timer is made inside the runtime (made outside, it finds no reactor).
            let drained = async move { tokio::time::timeout(crate::admin::DRAIN_LIMIT + std::time::Duration::from_secs(1), serving).await };
            let _ = runtime.block_on(drained);
            // Blocking work still under way (a swap compiling its plugin) is not waited for.
            runtime.shutdown_timeout(std::time::Duration::ZERO);
        }
    }
}

impl AdminServer {
    fn start(options: &AdminOptions, control: SharedControl, plugins: PluginRegistry, monitor: Monitor) -> Result<AdminServer, ServeError> {
        // The API swaps code into the running process: elsewhere than loopback, only with a
        // token and TLS.
        crate::admin::check_exposure(options.address, options.token.is_some(), options.tls.is_some())?;
        let failed = |error| ServeError::Admin { address: options.address, error };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sluice-admin")
            .enable_all()
            .build()
            .map_err(failed)?;
        let listener = std::net::TcpListener::bind(options.address).map_err(failed)?;
        listener.set_nonblocking(true).map_err(failed)?;
        let (shutdown, shutdown_requested) = tokio::sync::oneshot::channel::<()>();
        let bound = listener.local_addr().map_err(failed)?;
        let (token, tls) = (options.token.clone(), options.tls.clone());
        let serving = runtime.spawn(async move {
            let shutdown = async move { drop(shutdown_requested.await) };
            let served = match (tokio::net::TcpListener::from_std(listener), tls) {
                (Ok(listener), Some(tls)) => {
                    crate::admin::serve(crate::admin::TlsListener::new(listener, &tls), control, plugins, monitor, token, shutdown).await
                }
                (Ok(listener), None) => crate::admin::serve(listener, control, plugins, monitor, token, shutdown).await,
                (Err(error), _) => Err(error),
            };
            if let Err(error) = served {
                tracing::error!("the admin API stopped: {error}");
            }
        });
        let scheme = if options.tls.is_some() { "https" } else { "http" };
        tracing::info!(address = %bound, scheme, token = options.token.is_some(), "admin API listening");
        Ok(AdminServer { runtime: Some(runtime), shutdown: Some(shutdown), serving: Some(serving) })
    }
}

impl AdminServer {
    /// Serves `/metrics`, `/health` and `/ready` alone: nothing to change, nothing secret.
    fn start_metrics(address: std::net::SocketAddr, monitor: Monitor) -> Result<AdminServer, ServeError> {
        let failed = |error| ServeError::Metrics { address, error };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sluice-metrics")
            .enable_all()
            .build()
            .map_err(failed)?;
        let listener = std::net::TcpListener::bind(address).map_err(failed)?;
        listener.set_nonblocking(true).map_err(failed)?;
        let bound = listener.local_addr().map_err(failed)?;
        let (shutdown, shutdown_requested) = tokio::sync::oneshot::channel::<()>();
        let serving = runtime.spawn(async move {
            let shutdown = async move { drop(shutdown_requested.await) };
            let served = match tokio::net::TcpListener::from_std(listener) {
                Ok(listener) => crate::admin::serve_metrics(listener, monitor, shutdown).await,
                Err(error) => Err(error),
            };
            if let Err(error) = served {
                tracing::error!("the metrics endpoint stopped: {error}");
            }
        });
        tracing::info!(address = %bound, "metrics listening");
        Ok(AdminServer { runtime: Some(runtime), shutdown: Some(shutdown), serving: Some(serving) })
    }
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
    let bytes = crate::wasm::read_plugin_file(path)?;
    let world = describe_component(engine, path, &bytes)?;
    let operator = Plugin::compile(engine, path, &bytes).map(drop).map_err(|error| error.to_string());
    Ok(PluginReport { digest: Digest::of(&bytes), size: bytes.len(), world, operator })
}

impl fmt::Display for PluginReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "digest: {}", self.digest)?;
        writeln!(f, "size:   {} bytes", self.size)?;
        match &self.operator {
            Ok(()) => writeln!(f, "world:  implements sluice:plugin/operator@0.4.0")?,
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
        // Records enter a local pipeline at its sources' shares, a Kafka pipeline at the tasks
        // of its source topics' partitions (not those of repartition topics).
        let from_sources = self.tasks.iter().filter(|task| task.reads_source).map(|task| task.records_in + task.late_dropped).sum::<u64>();
        // A record the source could not read (its event time, say) was read all the same.
        let read_by_sources = self.sources.records + self.sources.unreadable;
        let records_in = if read_by_sources > 0 { read_by_sources } else { from_sources };
        write!(f, "{records_in} records in")?;
        // A Kafka process may own partitions of repartition topics only: what it worked on came in there.
        let from_repartition_topics = self.tasks.iter().filter(|task| !task.reads_source).map(|task| task.records_in).sum::<u64>();
        if read_by_sources == 0 && from_repartition_topics > 0 {
            write!(f, " (and {from_repartition_topics} read from repartition topics)")?;
        }
        write!(f, ", {} out, {} dead letters", total(|task| task.records_out), self.dead_letters)?;
        if self.dead_letters > 0 {
            write!(f, " (in {})", self.dead_letter_destination)?;
        }
        let late = total(|task| task.late_dropped) + self.sources.late_dropped;
        if late > 0 {
            write!(f, ", {late} late records dropped")?;
        }
        let duplicates = total(|task| task.duplicates_dropped);
        if duplicates > 0 {
            write!(f, ", {duplicates} records sent again through repartition topics dropped")?;
        }
        let unread = total(|task| task.unread_dropped);
        if unread > 0 {
            write!(f, ", {unread} records sent to outputs nothing reads")?;
        }
        for operator in &self.operators {
            for (counter, value) in &operator.counters {
                write!(f, "; {}.{} = {value}", operator.name, crate::wasm::on_one_line(counter.clone()))?;
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

#[cfg(test)]
mod tests {
    use crate::pipeline::TaskStats;
    use crate::topology::PipelineSummary;

    fn task(reads_source: bool, records_in: u64, records_out: u64) -> TaskStats {
        TaskStats { reads_source, records_in, records_out, ..TaskStats::default() }
    }

    #[test]
    fn a_kafka_process_owning_repartition_partitions_only_says_what_it_read_there() {
        let behind_an_exchange = PipelineSummary { tasks: vec![task(false, 24, 24)], ..PipelineSummary::default() };
        assert_eq!(behind_an_exchange.to_string(), "0 records in (and 24 read from repartition topics), 24 out, 0 dead letters");
        let both = PipelineSummary { tasks: vec![task(true, 100, 0), task(false, 24, 24)], ..PipelineSummary::default() };
        assert!(both.to_string().starts_with("100 records in (and 24 read from repartition topics), 24 out"), "{both}");
    }
}
