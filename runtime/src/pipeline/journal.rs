//! The recovery journal: the calls an operator made since its last snapshot, replayed into a
//! new instance after a failure; bounded in bytes, and replaced by a new snapshot when that
//! costs little against what it holds.
//!
//! A snapshot costs in proportion to the operator's state, and more per byte than a call costs
//! per byte of its batch (encoding every kept record, then copying the encoding out of the
//! sandbox), so a journal is not replaced before it holds [`SNAPSHOT_WEIGHT`] times as many
//! bytes as the last snapshot: a join that keeps every record of its windows spent a third of
//! its time taking snapshots every 64 calls, and 15 % of Nexmark q7's CPU time taking one each
//! time its calls held as many bytes as the last. Beyond [`MAX_WEIGHTED_BYTES`] the weight
//! gives way, so a journal holds at most the largest of [`MAX_BYTES`], that bound and the last
//! snapshot's size: recovery memory at most doubles a large operator's. A journal also holds at
//! most [`MAX_CALLS_EVER`] calls, so a replay stays short.

use crate::wasm::Records;

/// Calls kept before a new snapshot replaces them, once they hold as many bytes as it.
pub const MAX_CALLS: usize = 64;
/// Calls kept before a new snapshot replaces them whatever they hold: each is replayed after a
/// failure (and again after each failing record of a batch being isolated), so a large state
/// must not let thousands of light calls (watermarks) pile up.
pub const MAX_CALLS_EVER: usize = 16 * MAX_CALLS;
/// A new snapshot replaces the calls once they hold this many times its bytes (and at least
/// [`MAX_CALLS`] calls): taking snapshots then costs a fraction of the calls' time.
pub const SNAPSHOT_WEIGHT: usize = 4;
/// The weight applies up to this many bytes of calls (or the last snapshot's size, if larger),
/// so that the journal of a large state does not hold several times its size.
pub const MAX_WEIGHTED_BYTES: usize = 256 << 20;
/// Bytes of calls kept before a new snapshot replaces them, however large the last one was
/// (unless the last snapshot was larger): with large records a journal of 64 batches could
/// otherwise hold hundreds of MiB per operator instance.
pub const MAX_BYTES: usize = 16 << 20;

/// One call made since the snapshot.
pub enum JournalEntry {
    /// The records are shared with the task, which traces later dead letters back to them.
    Process(u32, Records),
    Watermark(i64),
}

impl JournalEntry {
    /// The memory it holds, near enough.
    fn bytes(&self) -> usize {
        std::mem::size_of::<JournalEntry>()
            + match self {
                JournalEntry::Process(_, records) => records.bytes_held(),
                JournalEntry::Watermark(_) => 0,
            }
    }
}

/// The calls since the last snapshot, with the bytes they hold.
#[derive(Default)]
pub struct Journal {
    entries: Vec<JournalEntry>,
    bytes: usize,
    /// The size of the snapshot the calls follow.
    snapshot_bytes: usize,
}

impl Journal {
    /// An empty journal after a snapshot of `snapshot_bytes` bytes.
    pub fn after_snapshot(snapshot_bytes: usize) -> Journal {
        Journal { snapshot_bytes, ..Journal::default() }
    }

    /// Records a call; true once the journal is full, when a new snapshot should replace it.
    pub fn record(&mut self, entry: JournalEntry) -> bool {
        self.bytes += entry.bytes();
        self.entries.push(entry);
        let due = self.bytes_due();
        let worth_a_snapshot = self.entries.len() >= MAX_CALLS && self.bytes >= due;
        worth_a_snapshot || self.entries.len() >= MAX_CALLS_EVER || self.bytes >= MAX_BYTES.max(due)
    }

    /// The bytes of calls that make a new snapshot worth taking: [`SNAPSHOT_WEIGHT`] times the
    /// last one, up to [`MAX_WEIGHTED_BYTES`] or the last one's size, whichever is larger.
    fn bytes_due(&self) -> usize {
        (SNAPSHOT_WEIGHT * self.snapshot_bytes).min(MAX_WEIGHTED_BYTES.max(self.snapshot_bytes))
    }

    /// Forgets every call: a new snapshot of `snapshot_bytes` bytes covers them.
    pub fn clear(&mut self, snapshot_bytes: usize) {
        self.entries.clear();
        self.bytes = 0;
        self.snapshot_bytes = snapshot_bytes;
    }

    /// The calls, oldest first.
    pub fn entries(&self) -> &[JournalEntry] {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wasm::Batch;

    fn batch_of(payload_bytes: usize) -> Batch {
        let mut batch = Batch::new();
        batch.push(None, &vec![b'x'; payload_bytes], 0, []);
        batch
    }

    /// Calls recorded until the journal says it is full.
    fn calls_until_full(entry: impl Fn() -> JournalEntry) -> usize {
        let mut journal = Journal::default();
        (1..).find(|_| journal.record(entry())).expect("the journal fills")
    }

    #[test]
    fn the_journal_is_full_at_its_call_bound_or_its_byte_bound_whichever_comes_first() {
        assert_eq!(calls_until_full(|| JournalEntry::Watermark(1)), MAX_CALLS);
        assert_eq!(calls_until_full(|| JournalEntry::Process(0, Records::from(batch_of(100)))), MAX_CALLS);
        assert_eq!(calls_until_full(|| JournalEntry::Process(0, Records::from(batch_of(1 << 20)))), MAX_BYTES / (1 << 20));
        let mut journal = Journal::default();
        assert!(journal.record(JournalEntry::Process(0, Records::from(batch_of(MAX_BYTES)))), "one huge batch fills it at once");
        journal.clear(0);
        assert!(!journal.record(JournalEntry::Watermark(1)) && journal.entries().len() == 1, "cleared, it counts afresh");
    }

    #[test]
    fn after_a_large_snapshot_the_journal_waits_until_it_holds_as_much() {
        let fill = |snapshot_bytes: usize, entry: &dyn Fn() -> JournalEntry| {
            let mut journal = Journal::after_snapshot(snapshot_bytes);
            let calls = (1..).find(|_| journal.record(entry())).expect("the journal fills");
            (calls, journal.bytes)
        };
        // A state of 1 MiB: 64 calls of 8 KiB do not replace it; SNAPSHOT_WEIGHT MiB of calls do.
        let (calls, bytes) = fill(1 << 20, &|| JournalEntry::Process(0, Records::from(batch_of(8 << 10))));
        let due = SNAPSHOT_WEIGHT << 20;
        assert!(calls > MAX_CALLS && (due..due + (9 << 10)).contains(&bytes), "{calls} calls, {bytes} bytes");
        // A state larger than MAX_BYTES: the journal grows to SNAPSHOT_WEIGHT times the state,
        let (_, bytes) = fill(2 * MAX_BYTES, &|| JournalEntry::Process(0, Records::from(batch_of(1 << 20))));
        let due = 2 * SNAPSHOT_WEIGHT * MAX_BYTES;
        assert!((due..due + (2 << 20)).contains(&bytes), "{bytes} bytes");
        // up to MAX_WEIGHTED_BYTES, or the state's size if larger.
        let due = |snapshot_bytes| Journal::after_snapshot(snapshot_bytes).bytes_due();
        assert_eq!(due(MAX_WEIGHTED_BYTES / 2), MAX_WEIGHTED_BYTES);
        assert_eq!(due(2 * MAX_WEIGHTED_BYTES), 2 * MAX_WEIGHTED_BYTES);
        // Watermarks alone count what they hold too, so they end a journal in the end.
        let (calls, _) = fill(1 << 11, &|| JournalEntry::Watermark(1));
        assert_eq!(calls, (SNAPSHOT_WEIGHT << 11).div_ceil(std::mem::size_of::<JournalEntry>()));
        assert!(calls < MAX_CALLS_EVER, "{calls} calls: not the cap below");
        // However large the state, a replay is at most MAX_CALLS_EVER calls.
        let (calls, _) = fill(1 << 30, &|| JournalEntry::Watermark(1));
        assert_eq!(calls, MAX_CALLS_EVER);
    }
}
