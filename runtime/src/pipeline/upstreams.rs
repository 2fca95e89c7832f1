//! What a task knows of its upstreams: which have ended or reached a checkpoint barrier, how
//! far event time has advanced in each, and (behind a repartition topic) the last sequence
//! number applied of each one's streams, so that records sent again after an upstream's
//! restart are dropped once (`sequences.rs`).
//!
//! A task's watermark is the least of its upstreams' watermarks: it never closes a window
//! while any upstream can still send records for it.

use super::sequences::AppliedSequences;

/// Senders (barriers, the end) and watermark inputs of one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstreams {
    senders: Vec<Sender>,
    /// Watermark per upstream: the senders in process; behind a repartition topic, the
    /// upstream tasks whose markers arrive through it (the table grows with new ones).
    watermarks: Vec<Option<i64>>,
    /// Behind a repartition topic: the last sequence number applied of each upstream's streams.
    sequences: AppliedSequences,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Sender {
    ended: bool,
    /// The last barrier received.
    barrier: Option<u64>,
}

impl Upstreams {
    /// `senders` that send batches, barriers and the end; `watermarks` inputs of event time.
    pub fn new(senders: usize, watermarks: usize) -> Upstreams {
        Upstreams {
            senders: vec![Sender::default(); senders.max(1)],
            watermarks: vec![None; watermarks.max(1)],
            sequences: AppliedSequences::default(),
        }
    }

    /// Continues from a checkpoint's watermarks and sequence numbers.
    pub fn resume(&mut self, watermarks: &[Option<i64>], sequences: &AppliedSequences) {
        for (slot, watermark) in self.watermarks.iter_mut().zip(watermarks) {
            *slot = *watermark;
        }
        if watermarks.len() > self.watermarks.len() {
            self.watermarks.extend_from_slice(&watermarks[self.watermarks.len()..]);
        }
        self.sequences = sequences.clone();
    }

    /// The watermarks and sequence numbers, for a checkpoint.
    pub fn snapshot(&self) -> (Vec<Option<i64>>, AppliedSequences) {
        (self.watermarks.clone(), self.sequences.clone())
    }

    /// Notes upstream `from`'s watermark (watermarks never go back).
    pub fn watermark(&mut self, from: u32, watermark: i64) {
        let slot = self.slot(from);
        *slot = Some(slot.map_or(watermark, |current| current.max(watermark)));
    }

    fn slot(&mut self, from: u32) -> &mut Option<i64> {
        let index = from as usize;
        if index >= self.watermarks.len() {
            self.watermarks.resize(index + 1, None);
        }
        &mut self.watermarks[index]
    }

    /// The least watermark of all upstreams; `None` while any has none yet.
    pub fn least_watermark(&self) -> Option<i64> {
        self.watermarks.iter().copied().try_fold(i64::MAX, |least, watermark| watermark.map(|watermark| least.min(watermark)))
    }

    /// Notes that sender `from` ended: its event time is over.
    pub fn end(&mut self, from: u32) {
        if let Some(sender) = self.senders.get_mut(from as usize) {
            sender.ended = true;
        }
        if self.senders.len() == self.watermarks.len() {
            *self.slot(from) = Some(i64::MAX);
        }
    }

    pub fn all_ended(&self) -> bool {
        self.senders.iter().all(|sender| sender.ended)
    }

    /// Notes barrier `id` from sender `from`; true once every sender that has not ended sent it.
    pub fn barrier(&mut self, from: u32, id: u64) -> bool {
        if let Some(sender) = self.senders.get_mut(from as usize) {
            sender.barrier = Some(id);
        }
        self.aligned(id)
    }

    /// Whether every sender that has not ended sent barrier `id` (or a later one).
    pub fn aligned(&self, id: u64) -> bool {
        self.senders.iter().all(|sender| sender.ended || sender.barrier.is_some_and(|barrier| barrier >= id))
    }

    /// Whether a record numbered `sequence` in `upstream`'s stream for `input` is new (and
    /// then notes it applied).
    pub fn accept(&mut self, upstream: u32, input: u32, sequence: u64) -> bool {
        self.sequences.accept(upstream, input, sequence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watermark_is_the_least_of_every_upstream_once_each_has_one() {
        let mut upstreams = Upstreams::new(2, 2);
        upstreams.watermark(0, 1_000);
        assert_eq!(upstreams.least_watermark(), None, "upstream 1 may still send anything");
        upstreams.watermark(1, 400);
        assert_eq!(upstreams.least_watermark(), Some(400));
        upstreams.watermark(1, 300);
        assert_eq!(upstreams.least_watermark(), Some(400), "watermarks never go back");
        upstreams.end(1);
        assert_eq!(upstreams.least_watermark(), Some(1_000));
        assert!(!upstreams.all_ended());
    }

    #[test]
    fn barriers_align_over_the_senders_that_have_not_ended() {
        let mut upstreams = Upstreams::new(3, 3);
        assert!(!upstreams.barrier(0, 1));
        upstreams.end(2);
        assert!(!upstreams.barrier(0, 1));
        assert!(upstreams.barrier(1, 1));
        assert!(!upstreams.aligned(2));
    }

    #[test]
    fn records_sent_again_are_recognised_by_their_sequence_number() {
        let mut upstreams = Upstreams::new(1, 4);
        assert!(upstreams.accept(3, 0, 1));
        assert!(upstreams.accept(3, 0, 2));
        assert!(!upstreams.accept(3, 0, 2));
        assert!(upstreams.accept(0, 0, 1));
        let (watermarks, sequences) = upstreams.snapshot();
        let mut resumed = Upstreams::new(1, 4);
        resumed.resume(&watermarks, &sequences);
        assert!(!resumed.accept(3, 0, 1) && resumed.accept(3, 0, 5));
    }
}
