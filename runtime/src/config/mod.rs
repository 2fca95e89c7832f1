//! Pipeline definitions: the TOML file as serde structs (first layer) and its checks (second).
//!
//! Everything a user can get wrong is reported as a [`Diagnostic`] with the file, line and
//! column it comes from; every problem is reported, not just the first.

mod aliases;
mod concealed;
mod diagnostic;
mod kafka;
mod operator;
pub(crate) mod refused_value;
mod sink;
mod source;
mod tagged;
mod validate;
mod values;
mod variables;

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::bounded_read::{BoundedReadError, read_at_most};

pub use diagnostic::{Diagnostic, Diagnostics, SourceText};
pub use kafka::{
    KafkaDeadLetterConfig, KafkaProperties, KafkaSinkConfig, KafkaSourceConfig, Partitioning, PropertyError, PropertyValue,
    RESERVED_CONSUMER_PROPERTIES, RESERVED_PRODUCER_PROPERTIES, StartPosition, resolve_properties, resolve_property, topic_name_problem,
    topic_pattern,
};
pub use operator::{Inputs, MAX_GRANTED_FILE, MissingSecret, OperatorConfig, RecordOrder, SecretConfig, Secrets, parse_pinned_digest};
pub use sink::{
    CONSOLE_KEEP, ConsoleSinkConfig, DeadLetterConfig, FileDeadLetterConfig, FileSinkConfig, OutputFormat, SinkConfig,
    StderrDeadLetterConfig, StdoutSinkConfig,
};
pub use source::{AnomalyConfig, FileSourceConfig, GeneratorConfig, NexmarkConfig, SourceConfig, StdinSourceConfig};
pub use validate::{PluginCheck, PluginProblem, check_pipeline};
pub use values::{ByteSize, DurationText, InputRef, Name, Rate};
pub use variables::is_variable_name;

/// A whole pipeline file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineFileConfig {
    pub pipeline: PipelineConfig,
    #[serde(default)]
    pub sources: Vec<Spanned<SourceConfig>>,
    #[serde(default)]
    pub operators: Vec<Spanned<OperatorConfig>>,
    #[serde(default)]
    pub sinks: Vec<Spanned<SinkConfig>>,
    #[serde(default)]
    pub dead_letter: Option<Spanned<DeadLetterConfig>>,
}

/// The `[pipeline]` table: name, batching and event-time settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    pub name: Spanned<Name>,
    /// Most records per batch crossing into an operator.
    #[serde(default = "default_batch_size")]
    pub batch_size: Spanned<usize>,
    /// Longest wait for a batch to fill before it is sent anyway.
    #[serde(default = "default_batch_linger")]
    pub batch_linger: DurationText,
    /// How far behind the newest event time the watermark stays (bounded disorder).
    #[serde(default)]
    pub out_of_orderness: DurationText,
    /// After this long without records, the watermark advances with processing time.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: DurationText,
    /// What happens to records older than the watermark when they arrive.
    #[serde(default)]
    pub late_records: LateRecords,
    /// How often each task checkpoints its operators' state and commits its source position
    /// (Kafka sources always; file and generator sources when `state_dir` is set).
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval: DurationText,
    /// Where file and generator sources keep their checkpoints (relative to the pipeline
    /// file); a restart resumes from them. None: such sources start from the beginning.
    pub state_dir: Option<PathBuf>,
    /// Checkpoints a task may fail in a row (exactly-once: transactions a process may abort
    /// in a row) before the pipeline stops with the error. Positions are not committed
    /// meanwhile, so nothing is lost, but a restart replays more.
    #[serde(default = "default_tolerated_checkpoint_failures")]
    pub tolerated_checkpoint_failures: u32,
    /// What a Kafka → Kafka pipeline guarantees about its outputs.
    #[serde(default)]
    pub delivery: Delivery,
    /// Instances of each stage of a pipeline without Kafka sources (one thread each); by
    /// default the number of cores. Kafka pipelines run one task per partition instead.
    pub parallelism: Option<Spanned<usize>>,
    /// Partitions of the repartition topics a Kafka pipeline's keyed exchanges create; by
    /// default as many as the source's topics have (the largest count).
    pub repartition_partitions: Option<Spanned<u32>>,
}

/// What a checkpoint round may take beside its tasks' state calls (a slow batch before the
/// barrier, a long swap).
const ROUND_MARGIN: std::time::Duration = std::time::Duration::from_secs(30);

impl PipelineFileConfig {
    /// How long a checkpoint round may wait for a task to reach its barrier and snapshot there:
    /// the task may be giving a watermark to its operators when the barrier comes, then
    /// snapshots them, and each of these calls may take its operator's state deadline, one
    /// operator after another, whatever the stages; and a margin.
    pub fn round_limit(&self) -> std::time::Duration {
        let state_calls = self
            .operators
            .iter()
            .map(|operator| crate::wasm::state_deadline(operator.get_ref().call_timeout.duration()))
            .fold(std::time::Duration::ZERO, std::time::Duration::saturating_add);
        state_calls.saturating_mul(2).saturating_add(ROUND_MARGIN)
    }
}

impl PipelineConfig {
    /// The instances of each stage of a local pipeline: as configured, or one per core.
    pub fn parallelism(&self) -> usize {
        self.parallelism
            .as_ref()
            .map(|parallelism| *parallelism.get_ref())
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
            .max(1)
    }
}

/// Delivery guarantee of the outputs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    /// Nothing is lost; after a crash, outputs since the last checkpoint may repeat.
    #[default]
    AtLeastOnce,
    /// Kafka → Kafka only: outputs, dead letters, checkpoints and consumer offsets are
    /// committed in one Kafka transaction per checkpoint, so `read_committed` readers see
    /// each output once.
    ExactlyOnce,
}

/// The runtime's handling of records that arrive behind the watermark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LateRecords {
    /// Passed to the operators, which decide (windows have their own lateness rules).
    #[default]
    Pass,
    /// Dropped and counted.
    Drop,
    /// Sent to the dead-letter sink.
    DeadLetter,
}

fn default_batch_size() -> Spanned<usize> {
    Spanned::new(0..0, 1024)
}

fn default_batch_linger() -> DurationText {
    DurationText::from_millis(20)
}

fn default_checkpoint_interval() -> DurationText {
    DurationText::from_millis(10_000)
}

fn default_tolerated_checkpoint_failures() -> u32 {
    3
}

fn default_idle_timeout() -> DurationText {
    DurationText::from_millis(5_000)
}

/// The largest pipeline file read.
pub const MAX_PIPELINE_FILE: u64 = 16 << 20;

/// A pipeline file as read from disk: its text (for diagnostics) and its parsed form.
#[derive(Debug, Clone)]
pub struct LoadedPipeline {
    pub text: SourceText,
    pub config: PipelineFileConfig,
}

impl LoadedPipeline {
    /// Reads and parses `path`; syntax and type errors come back as diagnostics.
    pub fn load(path: &Path) -> Result<LoadedPipeline, Diagnostics> {
        let cannot_read =
            |why: String| Diagnostics::single(Diagnostic::without_location(path, format!("cannot read pipeline file: {why}")));
        // A pipe (`<(...)`) is fine, but read no more than a pipeline file could sensibly hold.
        let bytes = std::fs::File::open(path)
            .map_err(BoundedReadError::from)
            .and_then(|file| read_at_most(file, MAX_PIPELINE_FILE, 0))
            .map_err(|error| match error {
                BoundedReadError::Io(error) => cannot_read(error.to_string()),
                other => cannot_read(format!("it {other}")),
            })?;
        match String::from_utf8(bytes) {
            Ok(contents) => Self::parse(path.to_path_buf(), contents),
            Err(error) => {
                // Located in the text as far as it is readable; the bad bytes show as U+FFFD.
                let start = error.utf8_error().valid_up_to();
                let text = SourceText::new(path.to_path_buf(), String::from_utf8_lossy(error.as_bytes()).into_owned());
                let byte = error.as_bytes()[start];
                let mut message = format!("the file is not UTF-8 text: byte 0x{byte:02X} here does not belong to a UTF-8 character");
                if error.as_bytes().starts_with(b"\0asm") {
                    message
                        .push_str(" (this is a WebAssembly file: a pipeline file is TOML text naming plugins by `plugin = \"path.wasm\"`)");
                }
                Err(Diagnostics::single(text.diagnostic(Some(start..start + 3), message)))
            }
        }
    }

    /// Parses `contents` as if read from `path`, its `${VARIABLES}` read from the environment.
    pub fn parse(path: PathBuf, contents: String) -> Result<LoadedPipeline, Diagnostics> {
        let text = match variables::substitute(&contents, |name| std::env::var(name).ok()) {
            Ok(substituted) => SourceText::with_variables(path, contents, substituted),
            Err(unresolved) => {
                let text = SourceText::new(path, contents);
                let mut diagnostics = Diagnostics::default();
                for problem in unresolved {
                    diagnostics.push(text.diagnostic_in_file(Some(problem.span), problem.message));
                }
                return Err(diagnostics);
            }
        };
        match toml::from_str::<PipelineFileConfig>(text.parsed()) {
            Ok(config) => Ok(LoadedPipeline { text, config }),
            Err(error) => {
                // The parser gives no position for some errors (its recursion limit, met by a
                // deeply nested table header): point at the most deeply nested key instead.
                // A mistake inside a `type`-tagged table is read again where it is.
                let error = tagged::locate_in_tagged_tables(text.parsed()).unwrap_or(error);
                let message = error.message().trim_end();
                match error.span() {
                    Some(span) => {
                        let message = plain_shape_message(message, &text.parsed()[span.clone()]);
                        let span = refused_input_span(message.as_str(), text.parsed(), span);
                        Err(Diagnostics::single(text.diagnostic(Some(span), &message)))
                    }
                    None => {
                        let deepest = deepest_key(text.parsed());
                        let message =
                            if deepest.is_some() { format!("{message}: this key is nested too deeply") } else { message.to_owned() };
                        Err(Diagnostics::single(text.diagnostic(deepest, message)))
                    }
                }
            }
        }
    }

    /// The directory relative paths in the file are resolved against.
    pub fn base_dir(&self) -> &Path {
        self.text.path().parent().unwrap_or(Path::new("."))
    }

    /// Resolves a path written in the file (relative to the file, `..` folded away).
    pub fn resolve(&self, path: &Path) -> PathBuf {
        let joined = if path.is_absolute() { path.to_path_buf() } else { self.base_dir().join(path) };
        normalize(&joined)
    }
}

/// The span of the element of an `inputs` list (`span`, the whole list, as serde gives it) that
/// the refusal `message` (`input "a.": ...`) is about, written as a basic or a literal string;
/// `span` itself when the list has no such element.
fn refused_input_span(message: &str, text: &str, span: Range<usize>) -> Range<usize> {
    let Some(written) = message.strip_prefix("input ").and_then(|rest| rest.split_once(": ")).map(|(quoted, _)| quoted) else {
        return span;
    };
    let list = &text[span.clone()];
    if !list.starts_with('[') {
        return span;
    }
    let literal = written.strip_prefix('"').and_then(|rest| rest.strip_suffix('"')).map(|inner| format!("'{inner}'"));
    let found = list.find(written).map(|at| (at, written.len())).or_else(|| {
        let literal = literal?;
        list.find(&literal).map(|at| (at, literal.len()))
    });
    found.map_or(span.clone(), |(at, length)| span.start + at..span.start + at + length)
}

/// serde's words for a value of the wrong shape, said in the file's terms, with what to write
/// (`written` is the text the error points at).
fn plain_shape_message(message: &str, written: &str) -> String {
    let written = written.trim();
    if let Some(header) = written.strip_prefix("[[").and_then(|rest| rest.split("]]").next())
        && message.starts_with("invalid type: map")
    {
        // A list of values (`inputs`) or a single value given as tables: each table is a map
        // where a string (or the list itself) was expected.
        if header.contains('.') && message.ends_with("expected a string") {
            let leaf = header.rsplit('.').next().unwrap_or(header).trim();
            return format!("`[[{header}]]` makes a list of tables, but `{leaf}` takes no table: write `{leaf} = ...` in its table");
        }
        return format!("`[[{header}]]` makes a list of tables, but `{header}` is one table: write `[{header}]`");
    }
    if let Some(header) = written.strip_prefix("[[").and_then(|rest| rest.split("]]").next())
        && message == "invalid type: sequence, expected a map"
    {
        return format!("`[[{header}]]` makes a list of tables, but `{header}` is one table: write `[{header}]`");
    }
    if let Some(header) = written.strip_prefix('[').and_then(|rest| rest.split(']').next())
        && message == "invalid type: map, expected a sequence"
    {
        // The lists of tables are the top-level ones; a list below them holds values.
        return match header.rsplit_once('.') {
            Some((_, leaf)) => {
                let leaf = leaf.trim();
                format!("`[{header}]` makes a table, but `{leaf}` is a list of values: write `{leaf} = [...]` in its table")
            }
            None => format!("`[{header}]` makes one table, but `{header}` is a list of tables: write `[[{header}]]`, once for each"),
        };
    }
    if message == "duplicate key" {
        return format!("`{written}` is given twice: a key, or a table, may appear once; merge the two");
    }
    let is_date_time = written.len() >= 10
        && written.as_bytes()[..4].iter().all(u8::is_ascii_digit)
        && written.as_bytes()[4] == b'-'
        && written.parse::<toml::value::Datetime>().is_ok();
    if is_date_time && message.starts_with("invalid type: map, expected a string") {
        return format!("a date-time is written as a string here: `\"{written}\"`");
    }
    let mut message = message.replace("expected variant identifier", "expected a string naming one of the kinds this key takes");
    for (rust, plain) in INTEGER_TYPES {
        if let Some(start) = message.strip_suffix(&format!("expected {rust}")) {
            let negative = rust.starts_with('u') && start.starts_with("invalid value: integer `-");
            message =
                if negative { format!("{start}expected a whole number that is not negative") } else { format!("{start}expected {plain}") };
        }
    }
    let message = message.replace(" as i128", "");
    match message.split_once(", expected struct ") {
        Some((found, _)) => format!("{found}, expected a table"),
        None => message,
    }
}

/// Rust's integer types, as serde names them in "expected u32", in the file's terms.
const INTEGER_TYPES: [(&str, &str); 8] = [
    ("u8", "a whole number from 0 to 255"),
    ("u16", "a whole number from 0 to 65535"),
    ("u32", "a whole number from 0 to 4294967295"),
    ("u64", "a whole number from 0 to 18446744073709551615"),
    ("usize", "a whole number from 0 to 18446744073709551615"),
    ("i32", "a whole number from -2147483648 to 2147483647"),
    ("i64", "a whole number from -9223372036854775808 to 9223372036854775807"),
    ("isize", "a whole number from -9223372036854775808 to 9223372036854775807"),
];

/// The span of the table header or key with the most dotted parts, if any has more than one.
fn deepest_key(contents: &str) -> Option<Range<usize>> {
    let mut deepest: Option<(usize, Range<usize>)> = None;
    let mut offset = 0;
    for line in contents.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let start = offset + (line.len() - trimmed.len());
        let key = if trimmed.starts_with('[') { trimmed.split(']').next() } else { trimmed.split('=').next() };
        let depth = key.map_or(0, dotted_parts);
        if depth > 1 && deepest.as_ref().is_none_or(|(most, _)| depth > *most) {
            deepest = Some((depth, start..offset + line.trim_end().len()));
        }
        offset += line.len();
    }
    deepest.map(|(_, span)| span)
}

/// How many dot-separated parts a key has (dots inside quotes do not count).
fn dotted_parts(key: &str) -> usize {
    let mut quote = None;
    let mut parts = 1;
    for character in key.chars() {
        match (quote, character) {
            (None, '"' | '\'') => quote = Some(character),
            (Some(open), _) if character == open => quote = None,
            (None, '.') => parts += 1,
            _ => {}
        }
    }
    parts
}

/// Folds `.` and `name/..` out of a path without touching the filesystem.
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut folded = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir if matches!(folded.components().next_back(), Some(Component::Normal(_))) => {
                folded.pop();
            }
            other => folded.push(other),
        }
    }
    // `.` alone (or `a/..`) folds to nothing: it is the current directory.
    if folded.as_os_str().is_empty() { PathBuf::from(".") } else { folded }
}
