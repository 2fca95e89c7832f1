//! The recovery journal: the calls an operator made since its last snapshot, replayed into a
//! new instance after a failure; bounded in calls and in bytes.

use crate::wasm::Batch;

/// Calls kept before a new snapshot replaces them.
pub const MAX_CALLS: usize = 64;
/// Bytes of batches kept before a new snapshot replaces them: with large records a journal of
/// 64 batches could otherwise hold hundreds of MiB per operator instance.
pub const MAX_BYTES: usize = 16 << 20;

/// One call made since the snapshot.
pub enum JournalEntry {
    Process(u32, Batch),
    Watermark(i64),
}

impl JournalEntry {
    /// The memory it holds, near enough.
    fn bytes(&self) -> usize {
        match self {
            JournalEntry::Process(_, batch) => {
                batch.bytes.len()
                    + batch.events.len() * std::mem::size_of::<sluice_sdk::Event>()
                    + batch.headers.len() * std::mem::size_of::<sluice_sdk::Header>()
            }
            JournalEntry::Watermark(_) => std::mem::size_of::<i64>(),
        }
    }
}

/// The calls since the last snapshot, with the bytes they hold.
#[derive(Default)]
pub struct Journal {
    entries: Vec<JournalEntry>,
    bytes: usize,
}

impl Journal {
    /// Records a call; true once the journal is full, when a new snapshot should replace it.
    pub fn record(&mut self, entry: JournalEntry) -> bool {
        self.bytes += entry.bytes();
        self.entries.push(entry);
        self.entries.len() >= MAX_CALLS || self.bytes >= MAX_BYTES
    }

    /// Forgets every call (a new snapshot covers them).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// The calls, oldest first.
    pub fn entries(&self) -> &[JournalEntry] {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(calls_until_full(|| JournalEntry::Process(0, batch_of(100))), MAX_CALLS);
        assert_eq!(calls_until_full(|| JournalEntry::Process(0, batch_of(1 << 20))), MAX_BYTES / (1 << 20));
        let mut journal = Journal::default();
        assert!(journal.record(JournalEntry::Process(0, batch_of(MAX_BYTES))), "one huge batch fills it at once");
        journal.clear();
        assert!(!journal.record(JournalEntry::Watermark(1)) && journal.entries().len() == 1, "cleared, it counts afresh");
    }
}
