//! The `sluice` command line: run and validate pipelines, inspect plugins.

mod log_writer;
mod swap;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand, ValueEnum};
use sluice::admin::{AdminToken, TlsIdentity};
use sluice::commands::{self, AdminOptions, CommandError, ServeError, ServeOptions};
use sluice::develop::{self, BuildOptions, Language};
use sluice::graph::{Plan, render_dot, render_text};
use sluice::pipeline::StopSignal;
use sluice::wasm::{PluginRegistry, WasmEngine};
use swap::SwapArgs;

/// Stream processing with sandboxed WebAssembly operators.
#[derive(Debug, Parser)]
#[command(
    name = "sluice",
    version,
    about,
    after_help = "Examples:
  sluice run pipelines/quickstart.toml                 run a pipeline until its sources end (Ctrl-C drains)
  sluice run pipelines/kafka-marketing.toml --admin 127.0.0.1:9180 --set KAFKA_BROKERS=broker:9092
  sluice validate pipelines/quickstart.toml --graph    check a pipeline and print its graph
  sluice swap --pipeline quickstart --operator orders-only new.wasm   hot-swap an operator
  sluice plugin list                                   the shipped operators
  sluice plugin new my-op --lang python && cd my-op && sluice plugin test
  sluice completions bash > ~/.local/share/bash-completion/completions/sluice"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format on standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Sets a variable of the pipeline file (`${NAME}`, `${NAME:-default}`), taking precedence
    /// over the environment variable of that name. Repeatable.
    #[arg(long = "set", global = true, value_name = "NAME=VALUE", value_parser = parse_assignment)]
    set: Vec<(String, String)>,
}

/// `NAME=VALUE` of `--set`.
fn parse_assignment(text: &str) -> Result<(String, String), String> {
    let (name, value) = text.split_once('=').ok_or_else(|| format!("{text:?} is not NAME=VALUE"))?;
    if !sluice::config::is_variable_name(name) {
        return Err(format!("{name:?} is not a variable name (letters, digits and `_`, not starting with a digit)"));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// `text` as one word of a shell command: as it is when it needs no quoting, else in single
/// quotes (a directory named `with space` is `'with space'`).
fn shell_word(text: &str) -> String {
    let plain = |character: char| character.is_ascii_alphanumeric() || "/._-+:@%=,".contains(character);
    if !text.is_empty() && text.chars().all(plain) {
        return text.to_owned();
    }
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// Every `--set NAME=VALUE` and `--set=NAME=VALUE` of the command line, in order (so that a
/// later one wins), up to a `--`; clap has refused a malformed one already.
fn every_assignment(arguments: impl Iterator<Item = std::ffi::OsString>) -> Vec<(String, String)> {
    let mut assignments = Vec::new();
    let mut arguments = arguments.skip(1).map(|argument| argument.to_string_lossy().into_owned());
    while let Some(argument) = arguments.next() {
        let text = match argument.as_str() {
            "--" => break,
            "--set" => arguments.next(),
            other => other.strip_prefix("--set=").map(str::to_owned),
        };
        assignments.extend(text.and_then(|text| parse_assignment(&text).ok()));
    }
    assignments
}

/// Warns of each `--set NAME=...` whose name the pipeline file never uses as `${NAME}`,
/// `${NAME:-...}` or `{ env = "NAME" }`: a misspelt name would leave a default in effect, silently. A file that
/// cannot be read is left to the command, which says why.
fn warn_of_unused_assignments(assignments: &[(String, String)], pipeline: &std::path::Path) {
    let Ok(text) = std::fs::read_to_string(pipeline) else { return };
    let mut warned = std::collections::BTreeSet::new();
    for (name, _) in assignments {
        // `${NAME}`, `${NAME:-...}`, or `{ env = "NAME" }` (secrets, Kafka properties).
        let used = [format!("${{{name}}}"), format!("${{{name}:-"), format!("\"{name}\"")].iter().any(|form| text.contains(form.as_str()));
        if !used && warned.insert(name) {
            tracing::warn!("--set {name}: {} uses no ${{{name}}}; is the name misspelt?", pipeline.display());
        }
    }
}

/// The admin API's flags of `sluice run`.
#[derive(Debug, clap::Args)]
struct AdminArgs {
    /// Serve the admin API (operators, swaps, history) on this address: a loopback one unless
    /// a token and TLS are given. Port 0 picks a free port (logged as `admin API listening`).
    #[arg(long, value_name = "ADDRESS", value_parser = listen_address)]
    admin: Option<SocketAddr>,
    /// Require this token (`Authorization: Bearer ...`) from every client; the file holds it.
    /// Without this flag, the token may come from the SLUICE_ADMIN_TOKEN environment variable.
    #[arg(long, value_name = "FILE", requires = "admin")]
    admin_token_file: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM); needs --admin-tls-key.
    #[arg(long, value_name = "PEM", requires_all = ["admin", "admin_tls_key"])]
    admin_tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --admin-tls-cert.
    #[arg(long, value_name = "PEM", requires = "admin_tls_cert")]
    admin_tls_key: Option<PathBuf>,
    /// Serve only `/metrics` (Prometheus), `/health` and `/ready` on this address: read-only, so any
    /// address, without token or TLS (for a scraper). `--admin` serves `/metrics` too.
    #[arg(long, value_name = "ADDRESS", value_parser = listen_address)]
    metrics: Option<SocketAddr>,
}

/// An address to listen on: `IP:PORT`, or `HOST:PORT` with a host name that resolves
/// (`localhost:9180`; its first address, IPv4 before IPv6).
fn listen_address(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs as _;
    if let Ok(address) = text.parse() {
        return Ok(address);
    }
    let addresses: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|error| format!("{text:?} is not an address such as 127.0.0.1:9180 or localhost:9180 ({error})"))?
        .collect();
    addresses
        .iter()
        .find(|address| address.is_ipv4())
        .or(addresses.first())
        .copied()
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}

/// A name `sluice plugin new` can give a plugin.
fn plugin_name(text: &str) -> Result<String, String> {
    develop::check_name(text).map(|()| text.to_owned()).map_err(|error| error.to_string())
}

/// A mistake on the command line that clap could not see (the admin API's flags together):
/// exit status 2, as for clap's own.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub(crate) struct UsageError(pub(crate) anyhow::Error);

impl AdminArgs {
    fn options(self) -> Result<Option<AdminOptions>, UsageError> {
        let Some(address) = self.admin else { return Ok(None) };
        let usage = |error: anyhow::Error| UsageError(error);
        let token = AdminToken::from_file_or_environment(self.admin_token_file.as_deref()).map_err(|error| usage(error.into()))?;
        let tls = match (&self.admin_tls_cert, &self.admin_tls_key) {
            (Some(cert), Some(key)) => Some(TlsIdentity::from_pem_files(cert, key).map_err(|error| usage(error.into()))?),
            _ => None,
        };
        // Refused here too (the server refuses it again), so that it is a usage mistake.
        sluice::admin::check_exposure(address, token.is_some(), tls.is_some()).map_err(|error| usage(error.into()))?;
        Ok(Some(AdminOptions { address, token, tls }))
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum GraphFormat {
    Text,
    Dot,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs a pipeline until its sources end or Ctrl-C, then drains and exits. Changes to the
    /// pipeline file or its plugins are applied while it runs (hot swap).
    Run {
        pipeline: PathBuf,
        #[command(flatten)]
        admin: AdminArgs,
        /// Do not watch the pipeline file and its plugins for changes.
        #[arg(long)]
        no_watch: bool,
    },
    /// Hot-swaps an operator of a running pipeline through its admin API.
    Swap(SwapArgs),
    /// Checks a pipeline file and the plugins it names; reports the errors (a file that does
    /// not parse: its first mistake; else every error found).
    Validate {
        pipeline: PathBuf,
        /// Also print the pipeline's graph: its stages and the edges between nodes, as text
        /// or as Graphviz DOT (`--graph=dot | dot -Tsvg > graph.svg`).
        #[arg(long, value_enum, value_name = "FORMAT", num_args = 0..=1, require_equals = true, default_missing_value = "text")]
        graph: Option<GraphFormat>,
        /// The pipeline when the format was written apart from `--graph` (`--graph dot FILE`).
        #[arg(hide = true)]
        pipeline_after_format: Option<PathBuf>,
    },
    /// Prints a shell completion script: `sluice completions bash > /etc/bash_completion.d/sluice`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Works with plugin components.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

impl Command {
    /// The subcommand as typed (`swap`, `plugin inspect`).
    fn name(&self) -> &'static str {
        match self {
            Command::Run { .. } => "run",
            Command::Swap(_) => "swap",
            Command::Validate { .. } => "validate",
            Command::Completions { .. } => "completions",
            Command::Plugin { command } => match command {
                PluginCommand::List => "plugin list",
                PluginCommand::Inspect { .. } => "plugin inspect",
                PluginCommand::New { .. } => "plugin new",
                PluginCommand::Build { .. } => "plugin build",
                PluginCommand::Test { .. } => "plugin test",
            },
        }
    }
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Lists the operators shipped with Sluice (in plugins/), one line each.
    List,
    /// Prints a component's world, exports and SHA-256 digest.
    Inspect { file: PathBuf },
    /// Writes a ready-to-build plugin skeleton (build file, operator, pipeline test).
    New {
        /// The plugin's name (lowercase letters, digits and '-').
        #[arg(value_parser = plugin_name)]
        name: String,
        #[arg(long, value_enum, default_value_t = Language::Rust)]
        lang: Language,
        /// The directory to create (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The Sluice Rust SDK to depend on (Rust plugins; default: the sdk/ of the source tree
        /// this binary was built from, else of a Sluice tree holding it or the working directory).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Builds the plugin in a directory (default: the current one) into a component.
    Build {
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Where to write the component (default: DIR/NAME.wasm).
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Generate bindings from this WIT directory instead of the runtime's own.
        #[arg(long)]
        wit: Option<PathBuf>,
    },
    /// Builds the plugin and runs its pipeline test (test/pipeline.toml).
    Test {
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
}

/// The exit status of a command refused because its pipeline file is invalid (sysexits'
/// `EX_CONFIG`): apart from the 1 of a run that failed, so that a service manager can leave a
/// mistake alone rather than restart it for ever (`RestartPreventExitStatus=78`).
const EXIT_INVALID_PIPELINE: u8 = 78;

/// The exit status of a mistake on the command line, clap's own.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    sluice::allocator::tune();
    let cli = Cli::parse();
    if matches!(cli.command, Command::Run { .. }) {
        sluice::reload::note_early_hangups();
    }
    // Every `--set`, before the subcommand and after it: clap keeps only the subcommand's
    // occurrences of a global argument given at both levels (`cli.set` has checked them all).
    let assignments = every_assignment(std::env::args_os());
    for (name, value) in &assignments {
        // SAFETY: no other thread exists yet (nothing has been started), so nothing reads the
        // environment while it changes. Pipeline files read their variables from it.
        unsafe { std::env::set_var(name, value) };
    }
    init_logging(cli.log_format);
    match &cli.command {
        Command::Run { pipeline, .. } | Command::Validate { pipeline, .. } => warn_of_unused_assignments(&assignments, pipeline),
        Command::Plugin { command: PluginCommand::Test { .. } } => {}
        other if !assignments.is_empty() => {
            tracing::warn!("--set has no effect on `sluice {}`, which reads no pipeline file", other.name());
        }
        _ => {}
    }
    match sluice::open_files::raise_to_hard_limit() {
        Ok(limit) => tracing::debug!(limit, "open files"),
        Err(error) => tracing::debug!("the limit on open files stays as it was: {error}"),
    }
    match execute(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let (message, code) = match error.downcast_ref::<CommandError>() {
                Some(CommandError::Invalid(diagnostics)) => (
                    format!("{diagnostics}\n\nerror: the pipeline has {} error(s)", diagnostics.len()),
                    ExitCode::from(EXIT_INVALID_PIPELINE),
                ),
                _ if error.downcast_ref::<UsageError>().is_some() => (format!("error: {error:#}"), ExitCode::from(EXIT_USAGE)),
                _ => (format!("error: {error:#}"), ExitCode::FAILURE),
            };
            match cli.log_format {
                // A log collector reading JSON lines gets the error as one more event.
                LogFormat::Json => print_error(&error_event(message.strip_prefix("error: ").unwrap_or(&message))),
                LogFormat::Text => print_error(&message),
            }
            code
        }
    }
}

fn execute(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run { pipeline, admin, no_watch } => {
            let metrics = admin.metrics;
            run(pipeline, ServeOptions { admin: admin.options()?, metrics, watch: !no_watch })
        }
        Command::Swap(args) => swap::run(args),
        Command::Validate { pipeline, graph, pipeline_after_format } => {
            let (pipeline, graph) = graph_format_written_apart(pipeline, graph, pipeline_after_format)?;
            validate(pipeline, graph)
        }
        Command::Plugin { command } => plugin(command),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut <Cli as clap::CommandFactory>::command(), "sluice", &mut script);
            print_out(&String::from_utf8_lossy(&script))
        }
    }
}

fn run(path: PathBuf, options: ServeOptions) -> anyhow::Result<()> {
    let plugins = PluginRegistry::new(WasmEngine::new()?);
    tracing::info!(pipeline = %path.display(), "starting");
    let stop = StopSignal::default();
    stop_on_ctrl_c(stop.clone());
    let summary = match commands::serve(&path, &plugins, &options, stop) {
        Ok(summary) => summary,
        // A stop asked for while waiting for brokers at start: nothing was read yet.
        Err(error) if error.stopped_before_start() => {
            tracing::info!(pipeline = %path.display(), "stopped before the pipeline started: {error}");
            return Ok(());
        }
        Err(ServeError::Command(command)) => return Err(anyhow::Error::new(command)),
        Err(other) => return Err(anyhow::Error::new(other)),
    };
    tracing::info!(pipeline = %path.display(), "finished: {summary}");
    let disabled = summary.disabled_operators();
    if !disabled.is_empty() {
        bail!(
            "the run ended, but {} operator(s) were disabled on the way ({}): their records went to {}",
            disabled.len(),
            disabled.join(", "),
            summary.dead_letter_destination
        );
    }
    Ok(())
}

/// `validate --graph dot FILE` reads `dot` as the pipeline and FILE as one more argument: take
/// them as the user meant them. Any other second file is an error.
fn graph_format_written_apart(
    pipeline: PathBuf,
    graph: Option<GraphFormat>,
    pipeline_after_format: Option<PathBuf>,
) -> anyhow::Result<(PathBuf, Option<GraphFormat>)> {
    let Some(after) = pipeline_after_format else { return Ok((pipeline, graph)) };
    let written_format = match pipeline.to_str() {
        Some("dot") if graph.is_some() => GraphFormat::Dot,
        Some("text") if graph.is_some() => GraphFormat::Text,
        _ => bail!("validate checks one pipeline file, and was given two: {} and {}", pipeline.display(), after.display()),
    };
    Ok((after, Some(written_format)))
}

fn validate(path: PathBuf, graph_format: Option<GraphFormat>) -> anyhow::Result<()> {
    let plugins = PluginRegistry::new(WasmEngine::new()?);
    let (pipeline, graph) = commands::validate_graph(&path, &plugins)?;
    let config = &pipeline.config;
    let name = config.pipeline.name.get_ref().as_str();
    let plan = Plan::of(&graph);
    match graph_format {
        Some(GraphFormat::Dot) => return print_out(&render_dot(name, &graph, &plan)),
        Some(GraphFormat::Text) => print_out(&render_text(name, &graph, &plan))?,
        None => {}
    }
    print_out(&format!(
        "{}: pipeline \"{name}\" is valid ({} source(s), {} operator(s), {} sink(s), {} stage(s))\n",
        path.display(),
        config.sources.len(),
        config.operators.len(),
        config.sinks.len(),
        plan.stages.len()
    ))
}

fn plugin(command: PluginCommand) -> anyhow::Result<()> {
    match command {
        PluginCommand::List => {
            let width = develop::SHIPPED_OPERATORS.iter().map(|operator| operator.name.len()).max().unwrap_or(0);
            let lines: String = develop::SHIPPED_OPERATORS
                .iter()
                .map(|operator| format!("{:width$}  {:6}  {}\n", operator.name, operator.language, operator.description))
                .collect();
            print_out(&lines)
        }
        PluginCommand::Inspect { file } => inspect(file),
        PluginCommand::New { name, lang, dir, sdk } => {
            if sdk.is_some() && !matches!(lang, Language::Rust) {
                bail!(UsageError(anyhow::anyhow!("--sdk names the Rust SDK: a {lang} plugin does not use it")));
            }
            let directory = dir.unwrap_or_else(|| PathBuf::from(&name));
            develop::new_plugin(&name, lang, &directory, sdk.as_deref())?;
            print_out(&format!("created {lang} plugin \"{name}\" in {}\n", directory.display()))?;
            print_out(&format!("next: cd {} && sluice plugin test\n", shell_word(&directory.display().to_string())))?;
            Ok(())
        }
        PluginCommand::Build { dir, output, wit } => {
            let built = develop::build_plugin(&dir, &BuildOptions { output, wit })
                .with_context(|| format!("building the plugin in {}", dir.display()))?;
            let size = std::fs::metadata(&built).map(|metadata| metadata.len()).unwrap_or(0);
            print_out(&format!("built {} ({})\n", built.display(), bytesize::ByteSize::b(size)))?;
            Ok(())
        }
        PluginCommand::Test { dir } => {
            let report =
                develop::test_plugin(&dir, WasmEngine::new()?).with_context(|| format!("testing the plugin in {}", dir.display()))?;
            print_out(&format!("test passed: {report}\n"))?;
            Ok(())
        }
    }
}

fn inspect(path: PathBuf) -> anyhow::Result<()> {
    let engine = WasmEngine::new()?;
    let report = commands::inspect(&path, &engine).with_context(|| format!("inspecting {}", path.display()))?;
    print_out(&report.to_string())?;
    // A script checking a file before it deploys it reads the answer from the exit status.
    match report.operator {
        Ok(()) => Ok(()),
        Err(_) => anyhow::bail!("{} is not a Sluice operator (see the world line above)", path.display()),
    }
}

/// First Ctrl-C or SIGTERM (systemd, Kubernetes): stop the sources, drain, checkpoint.
/// Second: exit at once. Both signals are taken over before this returns (the pipeline, and
/// its metrics listener, start after it): a Ctrl-C right after start drains the run instead of
/// killing the process unheard, as when a thread registered them a little later.
fn stop_on_ctrl_c(stop: StopSignal) {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return tracing::warn!("Ctrl-C handling is unavailable: {error}"),
    };
    let signals = {
        let _context = runtime.enter();
        signal(SignalKind::interrupt()).and_then(|interrupt| Ok((interrupt, signal(SignalKind::terminate())?)))
    };
    let (mut interrupt, mut terminate) = match signals {
        Ok(signals) => signals,
        Err(error) => return tracing::warn!("Ctrl-C and SIGTERM handling is unavailable: {error}"),
    };
    let watcher = std::thread::Builder::new().name("sluice-signals".into()).spawn(move || {
        runtime.block_on(async {
            let again = tokio::select! {
                _ = interrupt.recv() => "Ctrl-C",
                _ = terminate.recv() => "SIGTERM",
            };
            tracing::info!("stopping: draining in-flight records ({again} again to exit at once)");
            stop.raise();
            // The shell's code for a death by the signal: 128 + SIGINT (2) or SIGTERM (15).
            let code = tokio::select! {
                _ = interrupt.recv() => 130,
                _ = terminate.recv() => 143,
            };
            tracing::warn!(
                "exiting at once on a second signal: records in flight are abandoned, not written nor dead-lettered (a checkpointed \
                 source reads them again at the next start)"
            );
            std::process::exit(code);
        });
    });
    if let Err(error) = watcher {
        tracing::warn!("Ctrl-C handling is unavailable: {error}");
    }
}

fn init_logging(format: LogFormat) {
    // A `SLUICE_LOG` that is no filter is said (once logging works), not silently ignored.
    let (filter, refused) = match std::env::var("SLUICE_LOG").as_deref() {
        Ok(text) if let Some(stranger) = unknown_log_target(text) => (
            tracing_subscriber::EnvFilter::new("info"),
            Some(format!(
                "SLUICE_LOG={text:?} names {stranger:?}, which is no level (error, warn, info, debug, trace, off) and no module \
                 Sluice logs from, so it would log nothing: logging at info{}",
                closest_level(stranger).map(|level| format!(" (did you mean {level}?)")).unwrap_or_default()
            )),
        ),
        Ok(text) => match tracing_subscriber::EnvFilter::try_new(with_default_level(text)) {
            Ok(filter) => (filter, None),
            Err(error) => (
                tracing_subscriber::EnvFilter::new("info"),
                Some(format!("SLUICE_LOG={text:?} is not a filter ({error}): logging at info")),
            ),
        },
        Err(_) => (tracing_subscriber::EnvFilter::new("info"), None),
    };
    // Colours only on a terminal: a log file or a pipe gets plain text.
    let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // A log that cannot be written (stderr closed, `2>&1 | head`, a full disk) is lost, not
    // a reason to stop: the subscriber's own report of the failure would panic writing to
    // the same stderr.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(log_writer::one_line_stderr())
        .with_ansi(colours)
        .log_internal_errors(false);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => {
            sluice::wasm::log_escapes_control_characters();
            builder.json().init()
        }
    }
    if let Some(refused) = refused {
        tracing::warn!("{refused}");
    }
}

/// The crates Sluice logs from: a filter directive naming another target selects nothing.
const LOG_TARGETS: [&str; 11] =
    ["sluice", "wasmtime", "cranelift", "rdkafka", "librdkafka", "axum", "hyper", "tower", "tokio", "rustls", "notify"];
const LOG_LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];

/// The first directive of a `SLUICE_LOG` filter that is a bare word naming neither a level
/// (nor its number, 0 to 5) nor a crate Sluice logs from (`degub`): a typo that would silence
/// every event. A directive with `=` or a module path (`myapp=debug`, `a::b`) is taken as meant.
fn unknown_log_target(filter: &str) -> Option<&str> {
    filter.split(',').map(str::trim).filter(|directive| !directive.is_empty()).find_map(|directive| {
        if directive.contains('=') || directive.contains("::") {
            return None;
        }
        let target = directive.split('[').next().unwrap_or_default().trim();
        let known = target.is_empty() || is_log_level(target) || LOG_TARGETS.iter().any(|crate_name| target.starts_with(crate_name));
        (!known).then_some(target)
    })
}

/// `filter` with `info` for every module it does not name, unless it gives a level for all
/// itself: `wasmtime=debug` alone would silence Sluice's own warnings and errors.
fn with_default_level(filter: &str) -> String {
    let gives_a_level = filter.split(',').map(str::trim).any(is_log_level);
    match (gives_a_level, filter.trim().is_empty()) {
        (true, _) => filter.to_owned(),
        (false, true) => "info".to_owned(),
        (false, false) => format!("info,{filter}"),
    }
}

/// Whether `word` is a level (error … trace, off, or its number, 0 to 5), in any case.
fn is_log_level(word: &str) -> bool {
    matches!(word, "0" | "1" | "2" | "3" | "4" | "5") || LOG_LEVELS.iter().any(|level| word.eq_ignore_ascii_case(level))
}

/// The level `word` is a typo of (at most two letters changed, added, removed or swapped).
fn closest_level(word: &str) -> Option<&'static str> {
    let word = word.to_ascii_lowercase();
    LOG_LEVELS.into_iter().find(|level| strsim::osa_distance(&word, level) <= 2)
}

/// The error a command ended with as one JSON log event, as `--log-format json` writes them:
/// written whatever `SLUICE_LOG` filters, since it is what the exit status means.
fn error_event(message: &str) -> String {
    let event = serde_json::json!({
        // Microseconds, as tracing's JSON lines write them.
        "timestamp": format!("{:.6}", jiff::Timestamp::now()),
        "level": "ERROR",
        "fields": { "message": message },
        "target": "sluice",
    });
    event.to_string()
}

/// Writes the error a command ended with to standard error; if stderr is gone too, the exit
/// status alone tells.
fn print_error(message: &str) {
    let _ = writeln!(std::io::stderr(), "{message}");
}

/// Writes a command's result to standard output. A reader that has gone (`| head`) is not an
/// error: there is no one left to tell.
fn print_out(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(error).context("cannot write to standard output"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_filter_naming_nothing_sluice_logs_is_caught_with_the_level_it_misspells() {
        let good = ["debug", "INFO", "4", "sluice=debug", "sluice::kafka=trace,rdkafka=warn", "warn,wasmtime_cranelift=off", ""];
        for good in good.into_iter().chain(["sluice[run]=info", "myapp=debug", "h2::codec", "sluice"]) {
            assert_eq!(unknown_log_target(good), None, "{good}");
        }
        assert_eq!(unknown_log_target("degub"), Some("degub"));
        assert_eq!(unknown_log_target("info,garbage%%%"), Some("garbage%%%"));
        assert_eq!(closest_level("degub"), Some("debug"));
        assert_eq!(closest_level("WRAN"), Some("warn"));
        assert_eq!(closest_level("garbage"), None);
    }

    #[test]
    fn a_log_filter_for_some_modules_leaves_the_others_at_info() {
        assert_eq!(with_default_level("wasmtime=debug"), "info,wasmtime=debug");
        assert_eq!(with_default_level("sluice::kafka=trace,rdkafka=warn"), "info,sluice::kafka=trace,rdkafka=warn");
        assert_eq!(with_default_level("warn,wasmtime=debug"), "warn,wasmtime=debug", "a level for all is the user's");
        assert_eq!(with_default_level("OFF"), "OFF");
        assert_eq!(with_default_level(""), "info");
        assert!(tracing_subscriber::EnvFilter::try_new(with_default_level("sluice")).is_ok());
    }

    #[test]
    fn listen_addresses_are_ip_addresses_or_host_names_that_resolve() {
        assert_eq!(listen_address("127.0.0.1:9180"), Ok("127.0.0.1:9180".parse().expect("an address")));
        assert_eq!(listen_address("[::1]:9180"), Ok("[::1]:9180".parse().expect("an address")));
        assert_eq!(listen_address("localhost:9180").map(|address| (address.ip().is_loopback(), address.port())), Ok((true, 9180)));
        assert!(listen_address("localhost").is_err_and(|message| message.contains("localhost:9180")));
    }

    #[test]
    fn shell_words_are_quoted_only_when_they_need_it() {
        assert_eq!(super::shell_word("my-op"), "my-op");
        assert_eq!(super::shell_word("with space"), "'with space'");
        assert_eq!(super::shell_word("it's"), "'it'\\''s'");
    }

    #[test]
    fn every_set_counts_before_and_after_the_subcommand_until_a_double_dash() {
        let arguments = ["sluice", "--set", "A=1", "validate", "--set=B=2", "--set", "A=3", "p.toml", "--", "--set", "C=4"];
        let found = every_assignment(arguments.iter().map(std::ffi::OsString::from));
        let expected = [("A", "1"), ("B", "2"), ("A", "3")].map(|(name, value)| (name.to_owned(), value.to_owned()));
        assert_eq!(found, expected);
    }
}
