//! Local sources (the generators, files, standard input): a closed enum, one `match`. Each is
//! read in one or more shares, each share feeding the tasks of its stage through a
//! [`SourceOutput`]. The Kafka source is the other kind: it starts a task per partition
//! (`crate::kafka::KafkaSource`).

mod generator;
mod json_lines;
pub mod nexmark;
mod output;
mod pace;
mod timestamp_field;

use crate::config::{LoadedPipeline, SourceConfig};

pub use generator::{CATEGORIES as GENERATOR_CATEGORIES, Generator, conversion_probability};
pub use json_lines::JsonLinesSource;
pub use nexmark::NexmarkSource;
pub use output::{Downstream, EventTime, SourceOutput, SourceStats};
pub use timestamp_field::TimestampField;

/// Why a source stopped early.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("source \"{source_name}\": cannot open {path}: {error}")]
    Open { source_name: String, path: String, error: std::io::Error },
    #[error("source \"{source_name}\": read failed: {error}")]
    Read { source_name: String, error: std::io::Error },
    #[error("source \"{source_name}\": {message}")]
    Invalid { source_name: String, message: String },
    /// The task of a partition could not start (its checkpoint was taken on another graph, or
    /// its operators refused the state): the definition cannot run on this state.
    #[error("source \"{source_name}\": {message}")]
    TaskNotStarted { source_name: String, message: String },
}

/// A configured local source, ready to run its shares on threads of their own.
pub enum Source {
    Generator(Generator),
    JsonLines(JsonLinesSource),
    Nexmark(NexmarkSource),
}

impl Source {
    /// Builds the local source described by `config` (a Kafka source is refused: it is the
    /// other kind, `crate::kafka::KafkaSource`).
    pub fn build(config: &SourceConfig, pipeline: &LoadedPipeline) -> Result<Source, SourceError> {
        let name = config.name();
        match config {
            SourceConfig::Generator(generator) => Generator::new(name, generator).map(Source::Generator),
            SourceConfig::Nexmark(nexmark) => NexmarkSource::new(name, nexmark).map(Source::Nexmark),
            SourceConfig::File(file) => {
                let path = pipeline.resolve(&file.path);
                JsonLinesSource::file(name, &path, TimestampField::new(file.timestamp_field.as_deref())).map(Source::JsonLines)
            }
            SourceConfig::Stdin(stdin) => {
                Ok(Source::JsonLines(JsonLinesSource::stdin(name, TimestampField::new(stdin.timestamp_field.as_deref()))))
            }
            SourceConfig::Kafka(_) => Err(SourceError::Invalid {
                source_name: name,
                message: "a Kafka source runs its own partition tasks (crate::kafka::KafkaSource)".into(),
            }),
        }
    }

    /// How many shares the source is read in, for stages of `parallelism` tasks: the
    /// generator makes each share's records independently; a file or standard input is read
    /// once, its batches spread over the tasks.
    pub fn shares(&self, parallelism: usize) -> usize {
        match self {
            Source::Generator(_) | Source::Nexmark(_) => parallelism.max(1),
            Source::JsonLines(_) => 1,
        }
    }

    /// Reads share `share` of `shares` until the input ends or `stop` is raised, sending
    /// batches downstream; then ends the share's stream (see [`SourceOutput::close`]).
    pub fn run(self, share: usize, shares: usize, mut output: SourceOutput) -> Result<SourceStats, SourceError> {
        let result = match self {
            Source::Generator(generator) => generator.run(share, shares, &mut output),
            Source::Nexmark(nexmark) => nexmark.run(share, shares, &mut output),
            Source::JsonLines(source) => source.run(&mut output),
        };
        output.close(result)
    }
}
