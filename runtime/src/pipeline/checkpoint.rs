//! Checkpoints of one task: its operators' state and watermark at a source position, how
//! they are encoded, and where they are kept (the Kafka checkpoint topic, `crate::kafka`, or
//! a local state directory, `crate::state_dir`).
//!
//! A task checkpoints at a barrier that its source puts in its queue: everything before the
//! barrier has been processed, so the operators' state matches the position exactly. The task
//! then waits until its sinks and the dead-letter sink hold everything emitted so far, writes
//! the checkpoint, and only then may the source commit the position (at-least-once).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::event_order::HeldRecord;
use super::sequences::{AppliedNumbers, AppliedSequences, OutputSequences, SenderEpoch, SentNumbers};
use crate::wasm::State;

/// Version of the stored format. Version 1 (before pipelines were graphs) is read as a task
/// with one upstream and no exchange; version 2 has no records held for event-time order.
const FORMAT: u32 = 3;

/// What a task saves at a barrier.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskCheckpoint {
    /// The source position of the first record after the barrier (where a restart resumes).
    pub next_position: u64,
    /// The last watermark the operators were given.
    pub watermark: Option<i64>,
    /// Each upstream's watermark (see `Upstreams`).
    pub upstream_watermarks: Vec<Option<i64>>,
    /// Behind a repartition topic: each upstream's name, in the order of the indexes of
    /// `upstream_watermarks` and `applied` (none: indexes as the task's upstreams have them).
    pub upstream_names: Vec<String>,
    /// Behind a repartition topic: the last sequence number applied of each upstream's streams.
    pub applied: AppliedSequences,
    /// The last sequence number of each stream this task sends into repartition topics.
    pub sent: OutputSequences,
    /// The sender digest its records were sent under, and since which number (none: an older
    /// checkpoint, or a task that sends into no repartition topic).
    pub sent_by: Option<SenderEpoch>,
    pub operators: Vec<OperatorCheckpoint>,
    /// Records received but held for event-time order (`order = "event-time"`).
    pub held: Vec<HeldRecord>,
}

/// One operator's state in a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorCheckpoint {
    pub name: String,
    /// The plugin version that wrote the state (for the operator's own migrations and logs).
    pub digest: String,
    pub state: State,
}

impl TaskCheckpoint {
    /// Where in its input and numbering this checkpoint stands, as a number (never 0): a
    /// restart from it with other operators than its own begins its sender epoch here, so that
    /// two restarts from one checkpoint (a crash in between) send under one epoch, and a
    /// restart from another checkpoint under another.
    pub fn restart_point(&self) -> u64 {
        let mut parts = vec![format!("at {}", self.next_position)];
        parts.extend(self.sent.streams().iter().map(|(topic, input, number)| format!("sent {topic}/{input}/{number}")));
        parts.extend(self.applied.streams().iter().map(|(upstream, input, number)| format!("applied {upstream}/{input}/{number}")));
        parts.extend(self.sent_by.map(|epoch| format!("under {:016x}/{}", epoch.digest, epoch.start)));
        super::sequences::sender_digest(parts.iter().map(String::as_str))
    }

    /// What this checkpoint holds of operator `name`.
    pub fn operator(&self, name: &str) -> Option<&OperatorCheckpoint> {
        self.operators.iter().find(|operator| operator.name == name)
    }

    /// The stored form: JSON, each operator's opaque state in base64.
    pub fn encode(&self) -> Vec<u8> {
        let stored = StoredCheckpoint {
            format: FORMAT,
            next_position: self.next_position,
            watermark: self.watermark,
            upstream_watermarks: self.upstream_watermarks.clone(),
            upstream_names: self.upstream_names.clone(),
            sequences: self.applied.highest_per_upstream(),
            input_sequences: Some(self.applied.streams()),
            input_sequences_by: self.applied.generations(),
            input_sequences_shared: self.applied.shared().to_vec(),
            output_sequence: self.sent.highest(),
            output_sequences: Some(self.sent.streams()),
            output_sequences_start: self.sent.start(),
            sent_by: self.sent_by.map(|epoch| (epoch.digest, epoch.start)),
            operators: self
                .operators
                .iter()
                .map(|operator| StoredOperator {
                    name: operator.name.clone(),
                    digest: operator.digest.clone(),
                    state_version: operator.state.version,
                    state: base64::engine::general_purpose::STANDARD.encode(&operator.state.bytes),
                })
                .collect(),
            held: self.held.iter().map(StoredHeld::of).collect(),
            written_at_unix_ms: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64),
        };
        // A struct of strings and numbers always serialises.
        serde_json::to_vec(&stored).unwrap_or_default()
    }

    /// Reads the stored form back, or says why it cannot.
    pub fn decode(bytes: &[u8]) -> Result<TaskCheckpoint, String> {
        let stored: StoredCheckpoint = serde_json::from_slice(bytes).map_err(|error| error.to_string())?;
        if !(1..=FORMAT).contains(&stored.format) {
            return Err(format!("format {} is newer than {FORMAT}: written by a newer version of Sluice", stored.format));
        }
        // Format 1: one upstream (the source), whose watermark was the task's.
        let upstream_watermarks = if stored.format == 1 { vec![stored.watermark] } else { stored.upstream_watermarks };
        let operators = stored
            .operators
            .into_iter()
            .map(|operator| {
                let bytes = base64::engine::general_purpose::STANDARD.decode(&operator.state).map_err(|error| error.to_string())?;
                let state = State { version: operator.state_version, bytes };
                Ok(OperatorCheckpoint { name: operator.name, digest: operator.digest, state })
            })
            .collect::<Result<_, String>>()?;
        let held = stored.held.into_iter().map(StoredHeld::record).collect::<Result<_, String>>()?;
        Ok(TaskCheckpoint {
            next_position: stored.next_position,
            watermark: stored.watermark,
            upstream_watermarks,
            upstream_names: stored.upstream_names,
            // A checkpoint written before sequence numbers were kept per stream has one number
            // for all of an upstream's (or all this task sent).
            applied: match &stored.input_sequences {
                Some(streams) => AppliedSequences::restored(&stored.input_sequences_shared, streams, &stored.input_sequences_by),
                None => AppliedSequences::restored(&stored.sequences, &[], &[]),
            },
            sent: match &stored.output_sequences {
                Some(streams) => OutputSequences::restored(stored.output_sequences_start, streams),
                None => OutputSequences::restored(stored.output_sequence, &[]),
            },
            sent_by: stored.sent_by.map(|(digest, start)| SenderEpoch { digest, start }),
            operators,
            held,
        })
    }
}

#[derive(Serialize, Deserialize)]
struct StoredCheckpoint {
    format: u32,
    /// Named `next_offset` in the Kafka checkpoint topic, where it is an offset.
    #[serde(rename = "next_offset")]
    next_position: u64,
    watermark: Option<i64>,
    #[serde(default)]
    upstream_watermarks: Vec<Option<i64>>,
    /// Behind a repartition topic: the upstreams' names, in the order of their indexes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    upstream_names: Vec<String>,
    /// Per upstream, the highest number applied (all a checkpoint before numbers per stream had).
    #[serde(default)]
    sequences: Vec<u64>,
    /// (upstream, input, last number applied), when kept per stream.
    #[serde(default)]
    input_sequences: Option<AppliedNumbers>,
    /// (upstream, input, the sender's digest its last number was given under), where known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    input_sequences_by: AppliedNumbers,
    /// With `input_sequences`: per upstream, where its streams not yet seen stand (the numbers
    /// of an older checkpoint, kept until every stream has been seen).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    input_sequences_shared: Vec<u64>,
    /// The highest number sent (all a checkpoint before numbers per stream had).
    #[serde(default)]
    output_sequence: u64,
    /// (repartition topic, input, last number sent), when kept per stream.
    #[serde(default)]
    output_sequences: Option<SentNumbers>,
    /// With `output_sequences`: where streams not held start (an older checkpoint's number).
    #[serde(default, skip_serializing_if = "is_zero")]
    output_sequences_start: u64,
    /// (sender digest, number its epoch began at).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sent_by: Option<(u64, u64)>,
    operators: Vec<StoredOperator>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    held: Vec<StoredHeld>,
    written_at_unix_ms: u64,
}

fn is_zero(number: &u64) -> bool {
    *number == 0
}

/// A held record: its bytes in base64.
#[derive(Serialize, Deserialize)]
struct StoredHeld {
    timestamp: i64,
    input: u32,
    value: String,
    key: Option<String>,
    #[serde(default)]
    headers: Vec<(String, String)>,
    /// Where it was read (absent from checkpoints before it was kept, and when unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    read_at: Option<(String, u64)>,
}

impl StoredHeld {
    fn of(record: &HeldRecord) -> StoredHeld {
        let text = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        StoredHeld {
            timestamp: record.timestamp,
            input: record.input,
            value: text(&record.value),
            key: record.key.as_deref().map(text),
            headers: record.headers.iter().map(|(name, value)| (text(name), text(value))).collect(),
            read_at: record.read_at.as_ref().map(|read_at| (read_at.source.to_string(), read_at.position)),
        }
    }

    fn record(self) -> Result<HeldRecord, String> {
        let bytes = |text: &str| base64::engine::general_purpose::STANDARD.decode(text).map_err(|error| format!("a held record: {error}"));
        let headers = self.headers.iter().map(|(name, value)| Ok((bytes(name)?, bytes(value)?))).collect::<Result<_, String>>()?;
        Ok(HeldRecord {
            timestamp: self.timestamp,
            input: self.input,
            value: bytes(&self.value)?,
            key: self.key.as_deref().map(bytes).transpose()?,
            headers,
            read_at: self.read_at.map(|(source, position)| super::ReadAt { source: source.into(), position }),
        })
    }
}

#[derive(Serialize, Deserialize)]
struct StoredOperator {
    name: String,
    digest: String,
    state_version: u32,
    /// Base64 of the plugin's opaque state bytes.
    state: String,
}

/// Where a task's checkpoints go; after `save` returns, the checkpoint is durable and the
/// position may be committed.
pub trait CheckpointTarget: Send {
    /// Saves the checkpoint of round `round` (the barrier's id).
    fn save(&mut self, round: u64, checkpoint: &TaskCheckpoint) -> Result<(), String>;

    /// The task could not take the checkpoint at barrier `round` (an operator's state could
    /// not be read): nothing is saved, and its position is not committed.
    fn skipped(&mut self, _round: u64, _reason: &str) {}

    /// The task's input ended and all its output is durable: the stream is finished, and a
    /// later run starts from the beginning (nothing to resume).
    fn finished(&mut self) -> Result<(), String> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two restarts from one checkpoint begin one epoch (a crash between them sends the same
    /// records again, to be dropped once); restarts from checkpoints elsewhere in the input or
    /// the numbering begin others.
    #[test]
    fn a_checkpoint_restart_point_is_its_own() {
        let at = |next_position: u64, sent: u64| TaskCheckpoint {
            next_position,
            sent: OutputSequences::restored(0, &[("t-repartition".into(), 0, sent)]),
            ..TaskCheckpoint::default()
        };
        assert_eq!(at(10, 5).restart_point(), at(10, 5).restart_point());
        assert_ne!(at(10, 5).restart_point(), at(11, 5).restart_point(), "another position in the input");
        assert_ne!(at(10, 5).restart_point(), at(10, 6).restart_point(), "other numbers sent");
        assert_ne!(at(10, 5).restart_point(), 0, "0 is the point of no checkpoint");
    }

    #[test]
    fn checkpoints_survive_encoding() {
        let checkpoint = TaskCheckpoint {
            next_position: 42,
            watermark: Some(-5),
            upstream_watermarks: vec![Some(-5), None],
            upstream_names: vec!["events/0".into(), "events/1".into()],
            applied: AppliedSequences::restored(&[4], &[(0, 0, 3), (2, 1, 9)], &[(2, 1, u64::MAX)]),
            sent: OutputSequences::restored(2, &[("t-repartition".into(), 0, 77), ("u-repartition".into(), 0, 5)]),
            sent_by: Some(SenderEpoch { digest: u64::MAX, start: 41 }),
            operators: vec![OperatorCheckpoint {
                name: "count".into(),
                digest: "ab".into(),
                state: State { version: 3, bytes: vec![0, 1, 255] },
            }],
            held: vec![HeldRecord {
                timestamp: -3,
                value: b"{}".to_vec(),
                key: Some(vec![0, 255]),
                headers: vec![(b"h".to_vec(), vec![])],
                input: 1,
                read_at: Some(super::super::ReadAt { source: "file".into(), position: 7 }),
            }],
        };
        assert_eq!(TaskCheckpoint::decode(&checkpoint.encode()).unwrap(), checkpoint);
        assert!(TaskCheckpoint::decode(b"{}").is_err());
        assert!(
            TaskCheckpoint::decode(br#"{"format": 9, "next_offset": 1, "watermark": null, "operators": [], "written_at_unix_ms": 0}"#)
                .is_err()
        );
        let first_format =
            TaskCheckpoint::decode(br#"{"format": 1, "next_offset": 5, "watermark": 10, "operators": [], "written_at_unix_ms": 0}"#)
                .unwrap();
        assert_eq!(first_format.upstream_watermarks, vec![Some(10)], "a format-1 task had one upstream");
        // Before numbers per stream: one number per upstream applied, one sent.
        let shared = br#"{"format": 3, "next_offset": 5, "watermark": 10, "sequences": [3], "output_sequence": 77, "operators": [], "written_at_unix_ms": 0}"#;
        let mut shared = TaskCheckpoint::decode(shared).unwrap();
        assert!(!shared.applied.accept(0, 1, 0, 3) && shared.applied.accept(0, 1, 0, 4), "the upstream's number covers each input");
        assert_eq!(*shared.sent.of("t-repartition", 0), 77, "each stream goes on from the number sent");
        // And a checkpoint after that keeps those numbers for the streams not seen since.
        let later = TaskCheckpoint::decode(&shared.encode()).unwrap();
        assert_eq!(later, shared);
    }
}
