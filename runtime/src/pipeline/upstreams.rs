//! What a task knows of its upstreams: which have ended or reached a checkpoint barrier, how
//! far event time has advanced in each, and (behind a repartition topic) the last sequence
//! number applied of each one's streams, so that records sent again after an upstream's
//! restart are dropped once (`sequences.rs`).
//!
//! A task's watermark is the least of its upstreams' watermarks: it never closes a window
//! while any upstream can still send records for it.
//!
//! Behind a repartition topic, upstreams are indexed in the order of their names
//! (`UpstreamNames`), and checkpoints keep the names: a restart whose list differs (a topic's
//! partitions added, a new topic matching a source's pattern) finds each upstream's watermark
//! and numbers under its own name, not under the index it had.

use std::sync::{Arc, Mutex, PoisonError};

use super::sequences::AppliedSequences;

/// Behind a repartition topic: the names of the upstream tasks (the `topic/partition` each
/// reads), in the order of their indexes. Shared by the task, which keeps them in its
/// checkpoints, and the feed of its partition, which adds the upstreams it meets.
#[derive(Debug, Clone, Default)]
pub struct UpstreamNames(Arc<Mutex<Vec<String>>>);

impl UpstreamNames {
    pub fn new(names: Vec<String>) -> UpstreamNames {
        UpstreamNames(Arc::new(Mutex::new(names)))
    }

    /// The index of upstream `name` (added, if new).
    pub fn index_of(&self, name: &str) -> usize {
        let mut names = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        names.iter().position(|known| known == name).unwrap_or_else(|| {
            names.push(name.to_owned());
            names.len() - 1
        })
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub fn count(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// Senders (barriers, the end) and watermark inputs of one task.
#[derive(Debug, Clone)]
pub struct Upstreams {
    senders: Vec<Sender>,
    /// Watermark per upstream: the senders in process; behind a repartition topic, the
    /// upstream tasks whose markers arrive through it (the table grows with new ones).
    watermarks: Vec<Option<i64>>,
    /// Behind a repartition topic: the last sequence number applied of each upstream's streams.
    sequences: AppliedSequences,
    /// Behind a repartition topic: the upstreams' names.
    names: Option<UpstreamNames>,
    /// Upstreams a checkpoint named that the pipeline no longer has (a topic deleted, fewer
    /// partitions): event time does not wait for them until they send a watermark again.
    gone: std::collections::BTreeSet<u32>,
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
            names: None,
            gone: std::collections::BTreeSet::new(),
        }
    }

    /// The one sender of a task behind a repartition topic, and the upstreams named `names`
    /// writing into it.
    pub fn named(names: UpstreamNames) -> Upstreams {
        let mut upstreams = Upstreams::new(1, names.count());
        upstreams.names = Some(names);
        upstreams
    }

    /// Continues from a checkpoint's watermarks and sequence numbers. With the names of the
    /// checkpoint's upstreams (`checkpoint_names`, none in checkpoints of other tasks and of
    /// versions before names were kept), each upstream's are found under its name.
    pub fn resume(&mut self, checkpoint_names: &[String], watermarks: &[Option<i64>], sequences: &AppliedSequences) {
        if let Some(names) = self.names.as_ref().filter(|_| !checkpoint_names.is_empty()) {
            let current = names.count();
            let now: Vec<u32> = checkpoint_names.iter().map(|name| names.index_of(name) as u32).collect();
            let mut moved = vec![None; names.count().max(self.watermarks.len())];
            // An upstream named but without a watermark (a checkpoint taken after its first
            // record, before its first watermark) has none yet.
            for (position, (index, name)) in now.iter().zip(checkpoint_names).enumerate() {
                let watermark = watermarks.get(position).copied().flatten();
                // An upstream the pipeline no longer has (a topic deleted, fewer partitions)
                // holds event time back no more: its numbers and watermark are kept, should
                // it come back.
                if *index as usize >= current {
                    tracing::info!(upstream = name, "an upstream of the checkpoint is gone: event time no longer waits for it");
                    self.gone.insert(*index);
                }
                moved[*index as usize] = watermark;
            }
            self.watermarks = moved;
            self.sequences = sequences.renumbered(&now);
            return;
        }
        for (slot, watermark) in self.watermarks.iter_mut().zip(watermarks) {
            *slot = *watermark;
        }
        if watermarks.len() > self.watermarks.len() {
            self.watermarks.extend_from_slice(&watermarks[self.watermarks.len()..]);
        }
        self.sequences = sequences.clone();
    }

    /// The watermarks, sequence numbers and (behind a repartition topic) names of the
    /// upstreams, for a checkpoint.
    pub fn snapshot(&self) -> (Vec<Option<i64>>, AppliedSequences, Vec<String>) {
        let names = self.names.as_ref().map(UpstreamNames::to_vec).unwrap_or_default();
        (self.watermarks.clone(), self.sequences.clone(), names)
    }

    /// Notes upstream `from`'s watermark (watermarks never go back).
    pub fn watermark(&mut self, from: u32, watermark: i64) {
        self.gone.remove(&from);
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
        let waited_for = self.watermarks.iter().enumerate().filter(|(index, _)| !self.gone.contains(&(*index as u32)));
        waited_for.map(|(_, watermark)| *watermark).try_fold(i64::MAX, |least, watermark| watermark.map(|watermark| least.min(watermark)))
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
    pub fn accept(&mut self, upstream: u32, input: u32, by: u64, sequence: u64) -> bool {
        self.sequences.accept(upstream, input, by, sequence)
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
        assert!(upstreams.accept(3, 0, 0, 1));
        assert!(upstreams.accept(3, 0, 0, 2));
        assert!(!upstreams.accept(3, 0, 0, 2));
        assert!(upstreams.accept(0, 0, 0, 1));
        let (watermarks, sequences, names) = upstreams.snapshot();
        assert!(names.is_empty(), "upstreams in process have no names");
        let mut resumed = Upstreams::new(1, 4);
        resumed.resume(&names, &watermarks, &sequences);
        assert!(!resumed.accept(3, 0, 0, 1) && resumed.accept(3, 0, 0, 5));
    }

    /// A restart with another list of upstreams (a topic that sorts first appeared) finds each
    /// one's watermark and numbers under its name; one the list no longer has is kept after
    /// the others, its numbers kept and its watermark no longer waited for.
    #[test]
    fn upstreams_are_found_by_name_after_a_restart_with_other_upstreams() {
        let names = UpstreamNames::new(vec!["b/0".into(), "c/0".into()]);
        let mut upstreams = Upstreams::named(names.clone());
        upstreams.watermark(0, 500);
        upstreams.watermark(1, 700);
        assert!(upstreams.accept(0, 0, 0, 40) && upstreams.accept(1, 2, 0, 9));
        let (watermarks, sequences, saved) = upstreams.snapshot();
        assert_eq!(saved, ["b/0", "c/0"]);

        let names = UpstreamNames::new(vec!["a/0".into(), "b/0".into()]);
        let mut resumed = Upstreams::named(names.clone());
        resumed.resume(&saved, &watermarks, &sequences);
        assert_eq!(names.to_vec(), ["a/0", "b/0", "c/0"], "c/0 is kept, its numbers too");
        assert!(resumed.accept(0, 0, 0, 1), "a/0 is new: its first record is applied");
        assert!(!resumed.accept(1, 0, 0, 40) && resumed.accept(1, 0, 0, 41), "b/0 goes on from its number");
        assert!(!resumed.accept(2, 2, 0, 9) && resumed.accept(2, 2, 0, 10), "c/0 too");
        assert_eq!(resumed.least_watermark(), None, "a/0 has sent no watermark yet");
        resumed.watermark(0, 900);
        assert_eq!(resumed.least_watermark(), Some(500), "c/0, gone, holds event time back no more");
        let (watermarks, _, _) = resumed.snapshot();
        assert_eq!(watermarks[2], Some(700), "its own watermark is kept");
        resumed.watermark(2, 650);
        assert_eq!(resumed.least_watermark(), Some(500));
        resumed.watermark(1, 800);
        assert_eq!(resumed.least_watermark(), Some(700), "back, it is waited for again");
    }

    #[test]
    fn an_upstream_gone_before_its_first_watermark_holds_event_time_back_no_more() {
        let mut upstreams = Upstreams::named(UpstreamNames::new(vec!["a/0".into()]));
        upstreams.watermark(0, 500);
        let names = upstreams.names.clone().expect("named");
        names.index_of("b/0");
        assert!(upstreams.accept(1, 0, 0, 1), "b/0's first record, before any watermark of it");
        let (watermarks, sequences, saved) = upstreams.snapshot();
        assert_eq!((saved.len(), watermarks.len()), (2, 1), "named, not yet watermarked");

        let mut resumed = Upstreams::named(UpstreamNames::new(vec!["a/0".into()]));
        resumed.resume(&saved, &watermarks, &sequences);
        assert_eq!(resumed.least_watermark(), Some(500), "b/0 is gone: not waited for");
    }
}
