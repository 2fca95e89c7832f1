//! Sequence numbers of the records sent through repartition topics. A task numbers the records
//! it sends per exchange and input; a task reading them keeps the last number applied per
//! upstream and input, so that what an upstream sends again after a restart is dropped once.
//!
//! A stream's numbers depend only on the records before it in that stream. One number shared
//! by every exchange of a task did not: records going to two exchanges were numbered in the
//! order of their batches, and after a restart other batch boundaries gave them other numbers,
//! so that some were dropped as already applied and others applied twice.

use std::collections::BTreeMap;

/// A stream of records one task sends: (exchange, input of its operator) as the sender knows
/// it, (upstream, input) as the reader does.
pub type Stream = (u32, u32);

/// The last number of each stream, for a checkpoint: `(exchange or upstream, input, number)`.
pub type StreamNumbers = Vec<(u32, u32, u64)>;

/// The numbers a task gives the records it sends into repartition topics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputSequences {
    last: BTreeMap<Stream, u64>,
    /// Where a stream not yet numbered starts: 0, or the one number of a checkpoint written
    /// when one number served every stream.
    start: u64,
}

impl OutputSequences {
    /// From a checkpoint with a number per stream: a stream it does not hold starts at 0,
    /// as it did the first time (its reader may have applied records of it sent after the
    /// checkpoint: they are sent again with the same numbers).
    pub fn restored(streams: &[(u32, u32, u64)]) -> OutputSequences {
        let last = streams.iter().map(|&(exchange, input, number)| ((exchange, input), number)).collect();
        OutputSequences { last, start: 0 }
    }

    /// From a checkpoint written when one number served every stream.
    pub fn restored_shared(shared: u64) -> OutputSequences {
        OutputSequences { last: BTreeMap::new(), start: shared }
    }

    /// The last number given in stream (`exchange`, `input`), to be counted up per record sent.
    pub fn of(&mut self, exchange: u32, input: u32) -> &mut u64 {
        self.last.entry((exchange, input)).or_insert(self.start)
    }

    /// For a checkpoint: the highest number given (what an older version of Sluice reads) and
    /// each stream's.
    pub fn snapshot(&self) -> (u64, StreamNumbers) {
        let highest = self.last.values().copied().fold(self.start, u64::max);
        (highest, numbers(&self.last))
    }
}

/// The last number a task applied of each stream it reads through a repartition topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedSequences {
    last: BTreeMap<Stream, u64>,
    /// Per upstream, from a checkpoint written when one number served all its streams: where
    /// its streams not yet seen stand (else none: they stand at 0).
    shared: Vec<u64>,
}

impl AppliedSequences {
    /// From a checkpoint with a number per stream.
    pub fn restored(streams: &[(u32, u32, u64)]) -> AppliedSequences {
        let last = streams.iter().map(|&(upstream, input, number)| ((upstream, input), number)).collect();
        AppliedSequences { last, shared: Vec::new() }
    }

    /// From a checkpoint written when one number served all of an upstream's streams.
    pub fn restored_shared(shared: &[u64]) -> AppliedSequences {
        AppliedSequences { last: BTreeMap::new(), shared: shared.to_vec() }
    }

    /// Whether the record numbered `sequence` in stream (`upstream`, `input`) is new (and then
    /// notes it applied).
    pub fn accept(&mut self, upstream: u32, input: u32, sequence: u64) -> bool {
        let shared = self.shared.get(upstream as usize).copied().unwrap_or(0);
        let last = self.last.entry((upstream, input)).or_insert(shared);
        if sequence <= *last {
            return false;
        }
        *last = sequence;
        true
    }

    /// For a checkpoint: per upstream, the highest number applied (what an older version of
    /// Sluice reads), and each stream's.
    pub fn snapshot(&self) -> (Vec<u64>, StreamNumbers) {
        let mut shared = self.shared.clone();
        for (&(upstream, _), &number) in &self.last {
            let index = upstream as usize;
            if index >= shared.len() {
                shared.resize(index + 1, 0);
            }
            shared[index] = shared[index].max(number);
        }
        (shared, numbers(&self.last))
    }
}

fn numbers(last: &BTreeMap<Stream, u64>) -> StreamNumbers {
    last.iter().map(|(&(first, input), &number)| (first, input, number)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records of two streams from one upstream are numbered and applied apart: however the
    /// sender's batches interleaved them, a record sent again has its first number.
    #[test]
    fn each_stream_is_numbered_and_applied_on_its_own() {
        let mut sent = OutputSequences::default();
        // Batches of 2 then of 3, interleaving exchanges 0 and 1.
        let mut first_run = Vec::new();
        for batch in [[0u32, 1].as_slice(), &[2, 3, 4]] {
            for exchange in [0, 1] {
                for record in batch {
                    let number = sent.of(exchange, 0);
                    *number += 1;
                    first_run.push((exchange, *record, *number));
                }
            }
        }
        let mut again = OutputSequences::default();
        let mut second_run = Vec::new();
        for exchange in [0, 1] {
            for record in 0..5u32 {
                let number = again.of(exchange, 0);
                *number += 1;
                second_run.push((exchange, record, *number));
            }
        }
        first_run.sort_unstable();
        assert_eq!(first_run, second_run, "a record's number does not depend on the batches");

        let mut applied = AppliedSequences::default();
        assert!(applied.accept(0, 0, 1) && applied.accept(0, 1, 1), "inputs are streams of their own");
        assert!(!applied.accept(0, 0, 1), "sent again");
        assert!(applied.accept(1, 0, 1), "upstreams too");
    }

    #[test]
    fn numbers_survive_a_checkpoint_and_an_older_one_serves_every_stream() {
        let mut sent = OutputSequences::restored_shared(40);
        *sent.of(2, 1) += 1;
        assert_eq!(sent.snapshot(), (41, vec![(2, 1, 41)]));
        let (_, streams) = sent.snapshot();
        let mut restored = OutputSequences::restored(&streams);
        assert_eq!(*restored.of(2, 1), 41);
        assert_eq!(*restored.of(0, 0), 0, "a stream the checkpoint does not hold starts as the first time");

        let mut applied = AppliedSequences::restored_shared(&[7]);
        assert!(!applied.accept(0, 3, 7), "an older checkpoint's number covers every input");
        assert!(applied.accept(0, 3, 8));
        assert!(applied.accept(2, 0, 1));
        let (shared, streams) = applied.snapshot();
        assert_eq!((shared, streams.clone()), (vec![8, 0, 1], vec![(0, 3, 8), (2, 0, 1)]));
        let mut restored = AppliedSequences::restored(&streams);
        assert!(restored.accept(0, 4, 1), "a stream not applied yet starts at 0 again");
        assert!(!restored.accept(0, 3, 8));
    }
}
