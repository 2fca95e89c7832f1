//! Fuzzing, bounded for CI: inputs a user or a plugin controls are mutated from a corpus
//! kept in the repository (`runtime/tests/fuzz-corpus/`, and the pipeline files under
//! `pipelines/`), and each harness asserts that nothing panics and that what is accepted
//! behaves. `SLUICE_FUZZ_CASES` sets the cases per harness (default 50000); proptest keeps the
//! inputs of any failure in `proptest-regressions/`, which are replayed first from then on.
//!
//! Harnesses: the pipeline-file loader and validator, the batch a plugin returns, the
//! checkpoint decoders (state directory and task checkpoints), and the file source's line
//! reading (event times).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use sluice::config::{LoadedPipeline, OperatorConfig, PluginCheck, PluginProblem, check_pipeline};
use sluice::pipeline::TaskCheckpoint;
use sluice::source::TimestampField;
use sluice::state_dir::PipelineCheckpoint;
use sluice_sdk::{Distribution, OperatorInfo};

use crate::support::{Scratch, repo_root};

fn cases() -> u32 {
    std::env::var("SLUICE_FUZZ_CASES").ok().and_then(|cases| cases.parse().ok()).unwrap_or(50_000)
}

/// One change to an input.
#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, byte: u8 },
    Insert { at: usize, token: Vec<u8> },
    Delete { at: usize, length: usize },
    Duplicate { at: usize, length: usize },
    Truncate { at: usize },
}

/// Pieces that make interesting inputs for TOML, JSON and the timestamp parser.
const TOKENS: &[&[u8]] = &[
    b"[[",
    b"]]",
    b"[",
    b"]",
    b"{",
    b"}",
    b"\"",
    b"'",
    b"=",
    b".",
    b",",
    b"\n",
    b"\\",
    b"..",
    b"/",
    b"-1",
    b"0",
    b"1e400",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"NaN",
    b"inf",
    b"\"\"",
    b"true",
    b"null",
    b"${X}",
    b"\xff",
    b"\x00",
    b"\xe2\x80",
    b"+09:00",
    b"Z",
    b"T",
    b"2026-02-30T25:61:61Z",
    b"name",
    b"type",
    b"inputs",
    b"key_by",
    b"sha256",
    b"\"kafka\"",
    b"\"file\"",
    b"\"stdin\"",
    b"\"generator\"",
    b"[[operators]]",
    b"[[sinks]]",
    b"[[sources]]",
    b"[dead_letter]",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Flip { at, byte }),
        (any::<usize>(), proptest::sample::select(TOKENS)).prop_map(|(at, token)| Mutation::Insert { at, token: token.to_vec() }),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8)).prop_map(|(at, token)| Mutation::Insert { at, token }),
        (any::<usize>(), 1..64usize).prop_map(|(at, length)| Mutation::Delete { at, length }),
        (any::<usize>(), 1..64usize).prop_map(|(at, length)| Mutation::Duplicate { at, length }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
    ]
}

fn mutate(mut input: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for mutation in mutations {
        let at = |at: usize| if input.is_empty() { 0 } else { at % (input.len() + 1) };
        match mutation {
            Mutation::Flip { at: position, byte } if !input.is_empty() => {
                let index = position % input.len();
                input[index] ^= byte;
            }
            Mutation::Flip { .. } => {}
            Mutation::Insert { at: position, token } => {
                let index = at(*position);
                input.splice(index..index, token.iter().copied());
            }
            Mutation::Delete { at: position, length } => {
                let start = at(*position);
                input.drain(start..(start + length).min(input.len()));
            }
            Mutation::Duplicate { at: position, length } => {
                let start = at(*position);
                let copy: Vec<u8> = input[start..(start + length).min(input.len())].to_vec();
                input.splice(start..start, copy);
            }
            Mutation::Truncate { at: position } => {
                let end = at(*position);
                input.truncate(end);
            }
        }
    }
    input
}

/// A corpus entry and mutations to apply to it.
fn mutated(corpus: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (proptest::sample::select(corpus), proptest::collection::vec(mutation(), 0..6)).prop_map(|(seed, mutations)| mutate(seed, &mutations))
}

/// Every file with `extension` under `directory` of the repository.
fn corpus_files(directory: &str, extension: &str) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_root().join(directory))
        .unwrap_or_else(|error| panic!("{directory}: {error}"))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|found| found == extension))
        .collect();
    files.sort();
    files.iter().map(|path| std::fs::read(path).expect("corpus file")).collect()
}

/// Runs `harness` over `cases()` inputs from `strategy`; prints executions and time.
fn fuzz<S: Strategy>(name: &str, strategy: S, harness: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let executions = AtomicU64::new(0);
    let started = Instant::now();
    let config = Config { cases: cases(), failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |input| {
        executions.fetch_add(1, Ordering::Relaxed);
        harness(input)
    });
    eprintln!("fuzz {name}: {} executions in {:.1} s", executions.load(Ordering::Relaxed), started.elapsed().as_secs_f64());
    if let Err(failure) = result {
        panic!("fuzz {name}: {failure}");
    }
}

/// A plugin check that accepts every operator without compiling anything: the validator's
/// own logic is what is fuzzed.
struct AnyPlugin;

impl PluginCheck for AnyPlugin {
    fn check(&self, _path: &Path, _operator: &OperatorConfig, _inputs: Vec<String>) -> Result<OperatorInfo, PluginProblem> {
        Ok(OperatorInfo { outputs: Vec::new(), distribution: Distribution::Any, encoding: "json".into() })
    }
}

#[test]
fn fuzz_the_pipeline_file_loader_and_validator() {
    let mut corpus = corpus_files("pipelines", "toml");
    corpus.extend(corpus_files("pipelines/invalid", "toml"));
    corpus.extend(corpus_files("pipelines/graphs", "toml"));
    let scratch = Scratch::new();
    let path = scratch.path("pipeline.toml");
    fuzz("pipeline files", mutated(corpus), |text| {
        std::fs::write(&path, &text).expect("write");
        let rendered = match LoadedPipeline::load(&path) {
            Ok(pipeline) => match check_pipeline(&pipeline, &AnyPlugin) {
                Ok(_) => String::new(),
                Err(diagnostics) => diagnostics.to_string(),
            },
            Err(diagnostics) => diagnostics.to_string(),
        };
        prop_assert!(!rendered.contains("panicked"));
        Ok(())
    });
}

/// Spans that are mostly plausible, sometimes absurd.
fn span() -> impl Strategy<Value = sluice_sdk::Span> {
    let offset = prop_oneof![4 => 0u32..96, 1 => any::<u32>()];
    let length = prop_oneof![4 => 0u32..96, 1 => any::<u32>()];
    (offset, length).prop_map(|(offset, length)| sluice_sdk::Span { offset, length })
}

fn returned_batch() -> impl Strategy<Value = sluice_sdk::Batch> {
    let header_count = prop_oneof![3 => 0u32..4, 1 => any::<u32>()];
    let event = (proptest::option::of(span()), span(), 0u32..6, header_count, any::<i64>(), 0u32..3, proptest::option::of(span()))
        .prop_map(|(key, value, first_header, header_count, timestamp, port, fields)| sluice_sdk::Event {
            key,
            value,
            first_header,
            header_count,
            timestamp,
            port,
            fields,
        });
    let header = (span(), span()).prop_map(|(name, value)| sluice_sdk::Header { name, value });
    (proptest::collection::vec(any::<u8>(), 0..128), proptest::collection::vec(event, 0..12), proptest::collection::vec(header, 0..6))
        .prop_map(|(bytes, events, headers)| sluice_sdk::Batch { bytes, events, headers })
}

#[test]
fn fuzz_the_batch_a_plugin_returns() {
    fuzz("returned batches", returned_batch(), |batch| {
        if batch.check().is_ok() {
            // What the runtime does with an accepted batch must not fail on it.
            let path = sluice_sdk::FieldPath::parse("a.b").expect("a path");
            for record in batch.iter() {
                let _ = (record.key(), record.value(), record.timestamp(), record.port());
                let _ = (record.field_index().map(|index| index.fields().count()), record.raw_fields(std::slice::from_ref(&path)));
                prop_assert!(record.headers().count() <= batch.headers.len());
            }
            for index in 0..batch.len() {
                prop_assert_eq!(batch.single(index).len(), 1);
            }
            prop_assert_eq!(sluice_sdk::testing::json_values(&batch).len(), batch.len());
        }
        Ok(())
    });
}

#[test]
fn fuzz_the_checkpoint_decoders() {
    let corpus = corpus_files("runtime/tests/fuzz-corpus/checkpoints", "json");
    assert!(corpus.len() >= 2, "the checkpoint corpus");
    fuzz("checkpoints", mutated(corpus), |bytes| {
        if let Ok(checkpoint) = PipelineCheckpoint::decode(&bytes) {
            let again = PipelineCheckpoint::decode(&checkpoint.encode());
            prop_assert_eq!(again.as_ref().map(|decoded| &decoded.tasks), Ok(&checkpoint.tasks), "a decoded checkpoint encodes to itself");
        }
        if let Ok(checkpoint) = TaskCheckpoint::decode(&bytes) {
            prop_assert_eq!(TaskCheckpoint::decode(&checkpoint.encode()), Ok(checkpoint));
        }
        Ok(())
    });
}

#[test]
fn fuzz_the_file_sources_lines() {
    let corpus = corpus_files("runtime/tests/fuzz-corpus/lines", "jsonl")
        .into_iter()
        .flat_map(|file| file.split(|byte| *byte == b'\n').map(<[u8]>::to_vec).collect::<Vec<_>>())
        .filter(|line| !line.is_empty())
        .collect();
    let timestamps = TimestampField::new(Some("ts"));
    fuzz("file source lines", mutated(corpus), |line| {
        let mut indexer = sluice_sdk::fields::Indexer::default();
        // The source reads the time through the line's scanned fields when the scan finds an
        // object, and parses the line otherwise. Every time the parse accepts, the scan finds.
        let scanned = timestamps.extract(&line, indexer.scan(&line));
        if let Ok(parsed) = timestamps.extract(&line, None) {
            prop_assert_eq!(&scanned, &Ok(parsed), "scanned and parsed agree");
        }
        if let Ok(millis) = scanned {
            // An accepted event time is one the record really holds: its number, or its text.
            // (The scan also accepts JSON that serde_json declines to parse whole, such as a
            // number beyond f64 in another field; its fields are read as raw text here.)
            // A name given twice counts by its first value, as the runtime reads it.
            let FirstTimestamp(first) = serde_json::from_slice(&line).expect("accepted lines are JSON objects");
            let first = first.expect("accepted lines hold the field");
            let text = first.get();
            match serde_json::from_str::<serde_json::Value>(text) {
                Ok(serde_json::Value::Number(number)) => prop_assert_eq!(number.as_i64(), Some(millis)),
                Ok(serde_json::Value::String(text)) => prop_assert_eq!(sluice::event_time::parse_rfc3339_millis(&text), Ok(millis)),
                other => prop_assert!(false, "accepted a timestamp of {other:?}"),
            }
        }
        Ok(())
    });
}

/// The raw value of a JSON object's first `ts` member (the runtime reads the first of a name
/// given twice; a map keeps the last).
struct FirstTimestamp(Option<Box<serde_json::value::RawValue>>);

impl<'de> serde::Deserialize<'de> for FirstTimestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = FirstTimestamp;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut members: A) -> Result<FirstTimestamp, A::Error> {
                let mut first = None;
                while let Some(name) = members.next_key::<String>()? {
                    let value: Box<serde_json::value::RawValue> = members.next_value()?;
                    if name == "ts" && first.is_none() {
                        first = Some(value);
                    }
                }
                Ok(FirstTimestamp(first))
            }
        }
        deserializer.deserialize_map(Members)
    }
}
