//! Sequence numbers of the records sent through repartition topics. A task numbers the records
//! it sends per repartition topic and input; a task reading them keeps the last number applied
//! per upstream and input, so that what an upstream sends again after a restart is dropped once.
//!
//! A stream's numbers depend only on the records before it in that stream. One number shared
//! by every exchange of a task did not: records going to two exchanges were numbered in the
//! order of their batches, and after a restart other batch boundaries gave them other numbers,
//! so that some were dropped as already applied and others applied twice. The sender names a
//! stream by its topic, not by the exchange's place in the graph, which a new operator may
//! shift.

use std::collections::BTreeMap;

/// `(upstream, input, last number applied)` of each stream a task reads, for a checkpoint.
pub type AppliedNumbers = Vec<(u32, u32, u64)>;
/// `(repartition topic, input, last number sent)` of each stream a task sends, for a checkpoint.
pub type SentNumbers = Vec<(String, u32, u64)>;

/// The numbers a task gives the records it sends into repartition topics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputSequences {
    last: BTreeMap<(String, u32), u64>,
    /// Where a stream not yet numbered starts: 0, or the one number of a checkpoint written
    /// when one number served every stream (kept in later checkpoints, for the streams that
    /// have not sent since).
    start: u64,
}

impl OutputSequences {
    /// From a checkpoint: where streams it does not hold start, and the streams it holds. A
    /// stream started after the checkpoint starts again at 0 (`start`), as it did the first
    /// time: its reader may have applied records of it, which are sent again with the same
    /// numbers.
    pub fn restored(start: u64, streams: &[(String, u32, u64)]) -> OutputSequences {
        let last = streams.iter().map(|(topic, input, number)| ((topic.clone(), *input), *number)).collect();
        OutputSequences { last, start }
    }

    /// The last number given in the stream of `topic` for `input`, to be counted up per
    /// record sent.
    pub fn of(&mut self, topic: &str, input: u32) -> &mut u64 {
        // Once a batch sent, not per record.
        self.last.entry((topic.to_owned(), input)).or_insert(self.start)
    }

    /// Where streams not yet numbered start.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// The highest number given: what an older version of Sluice, with one number for all,
    /// goes on from.
    pub fn highest(&self) -> u64 {
        self.last.values().copied().fold(self.start, u64::max)
    }

    pub fn streams(&self) -> SentNumbers {
        self.last.iter().map(|((topic, input), number)| (topic.clone(), *input, *number)).collect()
    }
}

/// What decides the records a task sends into repartition topics, given its input: its
/// operators (names, plugin versions, settings), how its stage wires them, and the topics and
/// their routing, as `parts`; never 0. Each record carries it (`sluice.by`): a reader drops a
/// record as sent again only when its number is one it applied *of the same digest*. After a
/// restart with other operators in front of the exchange, the records read after the
/// checkpoint are not those sent the first time, and their numbers say nothing about them.
pub fn sender_digest<'a>(parts: impl IntoIterator<Item = &'a str>) -> u64 {
    use sha2::{Digest as _, Sha256};
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    let hash = hasher.finalize();
    u64::from_le_bytes([hash[0], hash[1], hash[2], hash[3], hash[4], hash[5], hash[6], hash[7]]).max(1)
}

/// The sender digest a task runs under and where its run under it began: a restart whose
/// digest differs from its checkpoint's begins a new epoch at the checkpoint's restart point
/// (`TaskCheckpoint::restart_point`, 0 without a checkpoint), and every swap one at a number
/// drawn at random. Records carry the two together (`by`), so that numbers are compared only
/// within one stretch of one set of operators: a swap followed by a crash, or a rollback to
/// operators that ran before, gives other records other numbers, never numbers a reader
/// applied of different records. A swap's start is drawn, not derived from the task's
/// numbers: a derived one could repeat the epoch a restart after a crash begins (a stream that
/// sent nothing between leaves every count where it was).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SenderEpoch {
    pub digest: u64,
    pub start: u64,
}

impl SenderEpoch {
    /// A new epoch under `digest` at a random start, which no reader has seen (a swap's).
    pub fn new(digest: u64) -> SenderEpoch {
        use std::hash::{BuildHasher as _, Hasher as _};
        // Keyed from the operating system's randomness, once per thread, then stepped.
        let start = std::collections::hash_map::RandomState::new().build_hasher().finish();
        SenderEpoch { digest, start }
    }

    /// What records carry (`sluice.by`): 0 when the task sends into no repartition topic.
    pub fn by(&self) -> u64 {
        if self.digest == 0 {
            return 0;
        }
        sender_digest([format!("{:016x}/{}", self.digest, self.start).as_str()])
    }
}

/// The last number a task applied of each stream it reads through a repartition topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedSequences {
    last: BTreeMap<(u32, u32), u64>,
    /// The sender's digest (`sender_digest`) the last number of a stream was given under,
    /// where known (not in checkpoints, nor from senders, before digests were sent).
    by: BTreeMap<(u32, u32), u64>,
    /// Per upstream, from a checkpoint written when one number served all its streams: where
    /// its streams not yet seen stand (kept in later checkpoints; none: they stand at 0).
    shared: Vec<u64>,
    /// Whether the log said once that an upstream sends under a new epoch (after a swap, every
    /// upstream does, and a line per stream would be thousands).
    told_of_new_epoch: bool,
}

impl AppliedSequences {
    /// From a checkpoint: the numbers per upstream of an older one (or none), each stream's,
    /// and the digests they were given under (`by`, where known).
    pub fn restored(shared: &[u64], streams: &[(u32, u32, u64)], by: &[(u32, u32, u64)]) -> AppliedSequences {
        let last = streams.iter().map(|&(upstream, input, number)| ((upstream, input), number)).collect();
        let by = by.iter().map(|&(upstream, input, digest)| ((upstream, input), digest)).collect();
        AppliedSequences { last, by, shared: shared.to_vec(), told_of_new_epoch: false }
    }

    /// Whether the record numbered `sequence` in stream (`upstream`, `input`), sent under
    /// digest `by` (0: not said), is new (and then notes it applied). A number given under
    /// another digest than the last one applied is new whatever its value: the sender runs
    /// other operators since, and what it sends again is not what it sent (at-least-once).
    pub fn accept(&mut self, upstream: u32, input: u32, by: u64, sequence: u64) -> bool {
        let stream = (upstream, input);
        let shared = self.shared.get(upstream as usize).copied().unwrap_or(0);
        let known = self.by.get(&stream).copied().unwrap_or(0);
        if by != 0 && by != known {
            self.by.insert(stream, by);
        }
        let last = self.last.entry(stream).or_insert(shared);
        if by != 0 && known != 0 && known != by {
            if !std::mem::replace(&mut self.told_of_new_epoch, true) {
                tracing::info!(
                    upstream,
                    input,
                    "upstreams send under other operators or settings than the numbers applied of them (a swap, or a restart \
                     with a changed pipeline): their records are applied whatever their numbers, so what they send again after \
                     a crash may count twice (said once per reading task)"
                );
            }
            *last = sequence;
            return true;
        }
        if sequence <= *last {
            return false;
        }
        *last = sequence;
        true
    }

    /// Per upstream, where streams not yet seen stand.
    pub fn shared(&self) -> &[u64] {
        &self.shared
    }

    /// Per upstream, the highest number applied: what an older version of Sluice, with one
    /// number per upstream, goes on from.
    pub fn highest_per_upstream(&self) -> Vec<u64> {
        let mut highest = self.shared.clone();
        for (&(upstream, _), &number) in &self.last {
            let index = upstream as usize;
            if index >= highest.len() {
                highest.resize(index + 1, 0);
            }
            highest[index] = highest[index].max(number);
        }
        highest
    }

    /// The same numbers with upstream `i` renamed `now[i]` (an upstream beyond `now` is left
    /// out: its streams start again at 0).
    pub fn renumbered(&self, now: &[u32]) -> AppliedSequences {
        let last =
            self.last.iter().filter_map(|(&(upstream, input), &number)| Some(((*now.get(upstream as usize)?, input), number))).collect();
        let by = self.by.iter().filter_map(|(&(upstream, input), &digest)| Some(((*now.get(upstream as usize)?, input), digest))).collect();
        let mut shared = Vec::new();
        for (upstream, &floor) in self.shared.iter().enumerate() {
            let Some(&index) = now.get(upstream) else { continue };
            let index = index as usize;
            if index >= shared.len() {
                shared.resize(index + 1, 0);
            }
            shared[index] = floor;
        }
        AppliedSequences { last, by, shared, told_of_new_epoch: self.told_of_new_epoch }
    }

    /// (upstream, input, digest) of each stream whose digest is known.
    pub fn generations(&self) -> AppliedNumbers {
        self.by.iter().map(|(&(upstream, input), &digest)| (upstream, input, digest)).collect()
    }

    pub fn streams(&self) -> AppliedNumbers {
        self.last.iter().map(|(&(upstream, input), &number)| (upstream, input, number)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records of two streams from one task are numbered and applied apart: however the
    /// sender's batches interleaved them, a record sent again has its first number.
    #[test]
    fn each_stream_is_numbered_and_applied_on_its_own() {
        let number_all = |batches: &[&[u32]]| {
            let mut sent = OutputSequences::default();
            let mut numbered = Vec::new();
            for batch in batches {
                for topic in ["a-repartition", "b-repartition"] {
                    for record in *batch {
                        let number = sent.of(topic, 0);
                        *number += 1;
                        numbered.push((topic, *record, *number));
                    }
                }
            }
            numbered.sort_unstable();
            numbered
        };
        assert_eq!(number_all(&[&[0, 1], &[2, 3, 4]]), number_all(&[&[0, 1, 2, 3, 4]]), "numbers do not depend on batches");

        let mut applied = AppliedSequences::default();
        assert!(applied.accept(0, 0, 0, 1) && applied.accept(0, 1, 0, 1), "inputs are streams of their own");
        assert!(!applied.accept(0, 0, 0, 1), "sent again");
        assert!(applied.accept(1, 0, 0, 1), "upstreams too");
    }

    /// Checkpoints hold each stream's number, and where streams not held start: after an
    /// older checkpoint (one number for all), that number, through every later checkpoint.
    #[test]
    fn numbers_and_an_older_checkpoints_floor_survive_checkpoints() {
        let mut sent = OutputSequences::restored(40, &[]);
        *sent.of("a", 1) += 1;
        assert_eq!((sent.start(), sent.highest(), sent.streams()), (40, 41, vec![("a".to_owned(), 1, 41)]));
        let mut again = OutputSequences::restored(sent.start(), &sent.streams());
        assert_eq!(*again.of("a", 1), 41);
        assert_eq!(*again.of("b", 0), 40, "a stream not sent since the older checkpoint goes on from its number");
        assert_eq!(*OutputSequences::restored(0, &[]).of("b", 0), 0, "after a checkpoint of numbers per stream: as the first time");

        let mut applied = AppliedSequences::restored(&[7], &[], &[]);
        assert!(!applied.accept(0, 3, 0, 7), "an older checkpoint's number covers every input");
        assert!(applied.accept(0, 3, 0, 8));
        assert!(applied.accept(2, 0, 0, 1));
        assert_eq!(applied.highest_per_upstream(), vec![8, 0, 1]);
        let mut restored = AppliedSequences::restored(applied.shared(), &applied.streams(), &applied.generations());
        assert!(!restored.accept(0, 4, 0, 7), "the older floor is kept for streams not seen yet");
        assert!(!restored.accept(0, 3, 0, 8) && restored.accept(0, 3, 0, 9));
        assert!(AppliedSequences::restored(&[], &[], &[]).accept(0, 4, 0, 1), "without an older floor, a stream starts at 0");
    }

    /// Numbers are compared within one sender digest: after a restart with other operators in
    /// front of the exchange, the sender's records are new whatever their numbers; sent again
    /// under the same digest, they are dropped; a digest not known (older senders or
    /// checkpoints) compares numbers.
    #[test]
    fn numbers_are_compared_within_one_sender_digest() {
        let mut applied = AppliedSequences::default();
        assert!(applied.accept(0, 0, 11, 1) && applied.accept(0, 0, 11, 2) && applied.accept(0, 0, 11, 3));
        assert!(!applied.accept(0, 0, 11, 2), "sent again by the same operators");
        assert!(applied.accept(0, 0, 22, 2), "sent by other operators: new");
        assert!(applied.accept(0, 0, 22, 3) && !applied.accept(0, 0, 22, 3));
        assert!(applied.accept(0, 0, 11, 3), "back to the first operators (a third run): new again");
        assert!(!applied.accept(0, 0, 0, 3), "a sender that says no digest compares numbers");
        let mut restored = AppliedSequences::restored(applied.shared(), &applied.streams(), &applied.generations());
        assert!(!restored.accept(0, 0, 11, 3) && restored.accept(0, 0, 33, 1), "the digest survives checkpoints");
        let mut older = AppliedSequences::restored(&[], &[(0, 0, 5)], &[]);
        assert!(!older.accept(0, 0, 44, 5) && older.accept(0, 0, 44, 6), "an older checkpoint's numbers hold for any digest");
    }

    /// A new epoch never repeats an earlier one of the same operators: a swap, then a crash
    /// and a restart with the swapped-in operators, sends other records under numbers a reader
    /// applied of the swap's epoch, and must not be dropped for them.
    #[test]
    fn new_epochs_of_the_same_operators_differ() {
        let bys: std::collections::BTreeSet<u64> = (0..1000).map(|_| SenderEpoch::new(7).by()).collect();
        assert_eq!(bys.len(), 1000);
        assert!(!bys.contains(&0), "0 says no epoch");
    }
}
