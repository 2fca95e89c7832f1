//! Sinks: where a pipeline's output records go. A closed enum, one `match`.

mod dead_letter;
mod encode;
mod file_start;
mod output_file;

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::config::{FileSinkConfig, LoadedPipeline, OutputFormat, SinkConfig, StdoutSinkConfig};
use crate::kafka::{KafkaClientError, KafkaSink, TransactionalProducer};
use crate::monitor::{Monitor, ResultBoards, SinkMetrics};
use crate::pipeline::{KeySelector, StopSignal};
use crate::wasm::{Batch, Records};

pub use dead_letter::DeadLetterSink;
pub use encode::record_json;
pub(crate) use file_start::prepare;
pub use file_start::{FileStart, cut_back_to_checkpoint, output_location};
pub use output_file::open_output_file;

/// Why a sink cannot take records.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("sink \"{sink}\": cannot open {path}: {error}")]
    Open { sink: String, path: String, error: io::Error },
    #[error("sink \"{sink}\": stopped while waiting for a process to read the named pipe {path}")]
    StoppedWaitingForReader { sink: String, path: String },
    #[error("sink \"{sink}\": write failed: {error}")]
    Write { sink: String, error: io::Error },
    #[error("sink \"{sink}\": {error}")]
    KafkaClient { sink: String, error: Box<KafkaClientError> },
    #[error("sink \"{sink}\": {error}")]
    Kafka { sink: String, error: String },
}

impl SinkError {
    /// Whether the sink's reader has gone (standard output into a pipe whose reader closed it,
    /// as `sluice run … | head` does): no later record can be delivered.
    pub fn is_reader_gone(&self) -> bool {
        matches!(self, SinkError::Write { error, .. } if error.kind() == io::ErrorKind::BrokenPipe)
    }
}

/// A configured sink, written to from its own thread.
pub struct Sink {
    name: String,
    output: Output,
    /// Sets each record's key from its fields before it is written (`key = [...]`).
    key: Option<KeySelector>,
    /// Records whose key fields could not be read (they keep the key they had).
    unkeyed: u64,
    /// Records, bytes and end-to-end latency (none when metrics are off).
    metrics: Option<SinkMetrics>,
    /// Its output file (a file sink's), whose length checkpoints record.
    file: Option<PathBuf>,
}

enum Output {
    /// One line per record (standard output, files).
    Lines {
        format: OutputFormat,
        writer: Box<dyn Write + Send>,
        /// The file behind `writer`, to make it durable at checkpoints.
        file: Option<File>,
    },
    Kafka(KafkaSink),
    /// The web console's live results.
    Console(ResultBoards),
}

impl Sink {
    /// Opens the sink described by `config`. A file starts as `start` says: emptied, or
    /// continued when the pipeline goes on from a previous run. A Kafka sink writes through
    /// `transactions` when the pipeline is exactly-once.
    pub fn build(
        config: &SinkConfig,
        pipeline: &LoadedPipeline,
        start: FileStart,
        transactions: Option<&TransactionalProducer>,
        monitor: &Monitor,
        stop: &StopSignal,
    ) -> Result<Sink, SinkError> {
        let name = config.name();
        let pipeline_name = pipeline.config.pipeline.name.get_ref().to_string();
        let lines = |writer: Box<dyn Write + Send>, format: OutputFormat, file: Option<File>| Output::Lines {
            format,
            writer: Box::new(BufWriter::with_capacity(1 << 16, writer)),
            file,
        };
        let mut output_file = None;
        let output = match config {
            SinkConfig::Stdout(StdoutSinkConfig { format, .. }) => {
                Output::Lines { format: *format, writer: Box::new(StdoutLines::default()), file: None }
            }
            SinkConfig::File(FileSinkConfig { path, format, .. }) => {
                let path = pipeline.resolve(path);
                let open_failed = |error| SinkError::Open { sink: name.clone(), path: path.display().to_string(), error };
                let file = open_output_file(&path, start == FileStart::Anew, Some(stop)).map_err(|error| match error.kind() {
                    io::ErrorKind::Interrupted => {
                        SinkError::StoppedWaitingForReader { sink: name.clone(), path: path.display().to_string() }
                    }
                    _ => open_failed(error),
                })?;
                prepare(&file, &path, start).map_err(open_failed)?;
                let durable = file.try_clone().map_err(open_failed)?;
                output_file = Some(path);
                lines(Box::new(file), *format, Some(durable))
            }
            SinkConfig::Kafka(kafka) => Output::Kafka(
                KafkaSink::new(kafka, transactions, stop)
                    .map_err(|error| SinkError::KafkaClient { sink: name.clone(), error: Box::new(error) })?,
            ),
            SinkConfig::Console(console) => {
                monitor.results.open(&pipeline_name, &name, console.rows_kept(), console.chart.clone());
                Output::Console(monitor.results.clone())
            }
        };
        let key = config.key().map(|fields| KeySelector::new(fields.to_vec()));
        let metrics = monitor.metrics.sink(&pipeline_name, &name);
        Ok(Sink { name, output, key, unkeyed: 0, metrics, file: output_file })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file the sink `config` writes, if it writes one: before it is opened.
    pub fn file_of(config: &SinkConfig, pipeline: &LoadedPipeline) -> Option<PathBuf> {
        match config {
            SinkConfig::File(FileSinkConfig { path, .. }) => Some(pipeline.resolve(path)),
            _ => None,
        }
    }

    /// The file a file sink writes.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Writes records (a batch, or a selection of one, read in place): lines are flushed at
    /// once, Kafka records are queued for delivery.
    pub fn write(&mut self, records: &Records) -> Result<(), SinkError> {
        let keyed;
        let batch = match &self.key {
            Some(selector) => {
                keyed = Records::from(self.with_keys(selector.clone(), records));
                &keyed
            }
            None => records,
        };
        if let Some(metrics) = &self.metrics {
            metrics.input.add_records(batch);
            metrics.written(batch.events().iter().map(|event| event.timestamp), crate::event_time::now_millis());
        }
        match &mut self.output {
            Output::Lines { format, writer, .. } => {
                write_lines(writer, *format, batch).map_err(|error| SinkError::Write { sink: self.name.clone(), error })
            }
            Output::Kafka(kafka) => kafka.write(batch).map_err(|error| SinkError::Kafka { sink: self.name.clone(), error }),
            Output::Console(boards) => {
                boards.add(&self.name, batch.iter().map(|record| record.value()));
                Ok(())
            }
        }
    }

    /// The records of `batch` with their keys read from their fields; a record whose fields
    /// cannot be read, or that has none of them, keeps its key (and is counted, and reported
    /// once): a missing field must not make the key `null` that every such record would share.
    fn with_keys(&mut self, selector: KeySelector, batch: &Records) -> Batch {
        let mut keyed = Batch::new();
        let (mut key, mut found) = (String::new(), Vec::new());
        for record in batch.iter() {
            let written = selector.write_record(record, &mut found, &mut key).and_then(|()| match found.iter().all(Option::is_none) {
                true => Err("it has none of the key fields".to_owned()),
                false => Ok(()),
            });
            match written {
                Ok(()) => keyed.push(Some(key.as_bytes()), record.value(), record.timestamp(), record.headers()),
                Err(reason) => {
                    if self.unkeyed == 0 {
                        tracing::warn!(sink = %self.name, "a record keeps its key: {reason}");
                    }
                    self.unkeyed += 1;
                    keyed.push_record(record);
                }
            }
        }
        keyed
    }

    /// Returns once everything written so far is durable (on disk, or acknowledged by the
    /// brokers).
    pub fn flush(&mut self) -> Result<(), SinkError> {
        match &mut self.output {
            Output::Lines { writer, file, .. } => {
                let durable = writer.flush().and_then(|()| file.as_ref().map_or(Ok(()), sync_if_possible));
                durable.map_err(|error| SinkError::Write { sink: self.name.clone(), error })
            }
            Output::Kafka(kafka) => kafka.flush().map_err(|error| SinkError::Kafka { sink: self.name.clone(), error }),
            Output::Console(_) => Ok(()),
        }
    }
}

/// Opens (and perhaps creates) an output file, and makes its directory entry durable: a
/// file created now must not vanish in a power loss after its contents were synced.
fn open_durably(options: &std::fs::OpenOptions, path: &Path) -> io::Result<File> {
    let file = options.open(path)?;
    let directory = path.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
    File::open(directory).and_then(|directory| sync_if_possible_all(&directory))?;
    Ok(file)
}

fn sync_if_possible_all(file: &File) -> io::Result<()> {
    match file.sync_all() {
        Err(error) if error.kind() == io::ErrorKind::InvalidInput => Ok(()),
        other => other,
    }
}

/// Makes a file's contents durable; a pipe or a device cannot be synced, and need not be.
pub fn sync_if_possible(file: &File) -> io::Result<()> {
    match file.sync_data() {
        Err(error) if error.kind() == io::ErrorKind::InvalidInput => Ok(()),
        other => other,
    }
}

/// Cuts an output file back to its last complete line: a run killed while writing may have
/// left part of a line, which the next record appended would otherwise be glued to.
fn drop_torn_last_line(file: &File, path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let length = file.metadata()?.len();
    let mut end = length;
    let mut chunk = vec![0u8; 1 << 16];
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let window = &mut chunk[..(end - start) as usize];
        file.read_exact_at(window, start)?;
        if let Some(newline) = window.iter().rposition(|byte| *byte == b'\n') {
            end = start + newline as u64 + 1;
            break;
        }
        end = start;
    }
    if end < length {
        tracing::warn!(file = %path.display(), bytes = length - end, "dropping an incomplete last line left by an interrupted run");
        file.set_len(end)?;
    }
    Ok(())
}

/// How much a stdout sink gathers before it writes the whole lines it has.
const STDOUT_CHUNK: usize = 1 << 16;

/// A stdout sink's writer: it writes only whole lines, each chunk under the lock of the
/// process's standard output and flushed through it, so that the lines of two stdout sinks
/// never interleave (standard output's own line buffer, which every writer of the process
/// shares, is empty after each chunk).
#[derive(Default)]
struct StdoutLines {
    buffer: Vec<u8>,
}

impl StdoutLines {
    fn write_through(&mut self, end: usize) -> io::Result<()> {
        let mut stdout = io::stdout().lock();
        stdout.write_all(&self.buffer[..end])?;
        stdout.flush()?;
        self.buffer.drain(..end);
        Ok(())
    }
}

impl Write for StdoutLines {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= STDOUT_CHUNK
            && let Some(newline) = self.buffer.iter().rposition(|byte| *byte == b'\n')
        {
            self.write_through(newline + 1)?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_through(self.buffer.len())
    }
}

fn write_lines(writer: &mut Box<dyn Write + Send>, format: OutputFormat, batch: &Records) -> io::Result<()> {
    for record in batch.iter() {
        match format {
            OutputFormat::Value => writer.write_all(record.value())?,
            OutputFormat::Envelope => serde_json::to_writer(&mut *writer, &record_json(record))?,
        }
        writer.write_all(b"\n")?;
    }
    writer.flush()
}
