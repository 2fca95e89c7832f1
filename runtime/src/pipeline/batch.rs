//! Batches: the unit in which records move from a source through a task's operators.

use std::time::{Duration, Instant};

use crate::wasm::Event;

/// Records read together from one source, with each record's position in that source.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Batch {
    pub events: Vec<Event>,
    /// Source position of each record (line number, sequence number, offset).
    pub positions: Vec<u64>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// Groups records into batches of at most `max_records`, or whatever arrived within `linger`.
#[derive(Debug)]
pub struct Batcher {
    max_records: usize,
    linger: Duration,
    current: Batch,
    first_added: Option<Instant>,
}

impl Batcher {
    pub fn new(max_records: usize, linger: Duration) -> Batcher {
        Batcher { max_records: max_records.max(1), linger, current: Batch::default(), first_added: None }
    }

    /// Adds a record; returns a full batch when this one filled it.
    pub fn push(&mut self, event: Event, position: u64) -> Option<Batch> {
        self.first_added.get_or_insert_with(Instant::now);
        self.current.events.push(event);
        self.current.positions.push(position);
        if self.current.len() >= self.max_records { self.take() } else { None }
    }

    /// The pending batch, if its linger time has passed.
    pub fn poll_linger(&mut self) -> Option<Batch> {
        match self.first_added {
            Some(first) if first.elapsed() >= self.linger => self.take(),
            _ => None,
        }
    }

    /// How long until the pending batch must be sent, if one is pending.
    pub fn linger_left(&self) -> Option<Duration> {
        self.first_added.map(|first| self.linger.saturating_sub(first.elapsed()))
    }

    /// The pending batch, whatever its size (at the end of the input).
    pub fn take(&mut self) -> Option<Batch> {
        self.first_added = None;
        if self.current.is_empty() {
            return None;
        }
        let capacity = self.max_records.min(4096);
        let events = std::mem::replace(&mut self.current.events, Vec::with_capacity(capacity));
        let positions = std::mem::replace(&mut self.current.positions, Vec::with_capacity(capacity));
        Some(Batch { events, positions })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u8) -> Event {
        Event { key: None, value: vec![n], timestamp: 0, headers: Vec::new() }
    }

    #[test]
    fn batches_fill_to_the_limit_and_keep_positions() {
        let mut batcher = Batcher::new(2, Duration::from_secs(60));
        assert!(batcher.push(event(1), 10).is_none());
        let batch = batcher.push(event(2), 11).unwrap();
        assert_eq!(batch.positions, vec![10, 11]);
        assert!(batcher.push(event(3), 12).is_none());
        assert!(batcher.poll_linger().is_none());
        assert_eq!(batcher.take().unwrap().positions, vec![12]);
        assert!(batcher.take().is_none());
    }

    #[test]
    fn linger_releases_partial_batches() {
        let mut batcher = Batcher::new(100, Duration::ZERO);
        batcher.push(event(1), 0);
        assert_eq!(batcher.poll_linger().map(|b| b.len()), Some(1));
        assert_eq!(batcher.linger_left(), None);
    }
}
