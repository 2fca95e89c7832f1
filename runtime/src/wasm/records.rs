//! What an operator is given and what it gives: a whole batch, or a selection of one (the
//! records an operator passed on by position, WIT 0.4.0 `output.passed`) that shares the batch
//! they came from instead of copying their bytes. A selection is lowered into the next
//! operator's sandbox from the shared batch; it is copied into a batch of its own only where a
//! batch is needed (an exchange, a record retried alone); sinks write it in place.

use std::sync::Arc;

use sluice_sdk::{Batch, Event, Record};

/// A batch, or records of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Records {
    Whole(Arc<Batch>),
    /// Records of `base`, in this order: each event is one of `base`'s entries, its port
    /// that of the output it goes to.
    Selected {
        base: Arc<Batch>,
        events: Vec<Event>,
    },
}

impl Records {
    /// The records `events` describe in `base` (entries of `base`'s, on the ports they go to):
    /// a selection of the shared batch while they are at least half of its records, else
    /// copied into a batch of their own, so that a few records are not lowered into the next
    /// operator with a whole batch.
    pub fn selection(base: Arc<Batch>, events: Vec<Event>) -> Records {
        if names_most_of(&base, &events) { Records::Selected { base, events } } else { Records::from(copy_each(&base, &events)) }
    }

    pub fn len(&self) -> usize {
        self.events().len()
    }

    pub fn is_empty(&self) -> bool {
        self.events().is_empty()
    }

    /// The batch whose bytes and headers the records are in.
    pub fn base(&self) -> &Batch {
        match self {
            Records::Whole(batch) | Records::Selected { base: batch, .. } => batch,
        }
    }

    /// The shared batch the records are in.
    pub fn base_shared(&self) -> &Arc<Batch> {
        match self {
            Records::Whole(batch) | Records::Selected { base: batch, .. } => batch,
        }
    }

    /// The records' entries, in order.
    pub fn events(&self) -> &[Event] {
        match self {
            Records::Whole(batch) => &batch.events,
            Records::Selected { events, .. } => events,
        }
    }

    /// The record at `index`.
    pub fn get(&self, index: usize) -> Option<Record<'_>> {
        self.events().get(index).map(|event| Record::of(self.base(), event, index))
    }

    /// The records, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Record<'_>> {
        let base = self.base();
        self.events().iter().enumerate().map(move |(index, event)| Record::of(base, event, index))
    }

    /// The records in `range` (within `0..len()`), in order: a selection of the same batch,
    /// copied where it is less than half of it (see [`Records::selection`]).
    pub fn part(&self, range: std::ops::Range<usize>) -> Records {
        let events = match self {
            Records::Whole(batch) => &batch.events[range],
            Records::Selected { events, .. } => &events[range],
        };
        Records::selection(Arc::clone(self.base_shared()), events.to_vec())
    }

    /// The record at `index` alone in a batch (empty if there is none).
    pub fn single(&self, index: usize) -> Batch {
        let mut single = Batch::new();
        if let Some(record) = self.get(index) {
            single.push_record_to(record.port(), record);
        }
        single
    }

    /// The records as a batch of their own: a whole batch shared, a selection copied.
    pub fn to_batch(&self) -> Arc<Batch> {
        match self {
            Records::Whole(batch) => Arc::clone(batch),
            Records::Selected { base, events } => Arc::new(copy_of(base, events)),
        }
    }

    /// The records as a batch owned here: copied only if shared, or a selection.
    pub fn into_batch(self) -> Batch {
        match self {
            Records::Whole(batch) => Arc::unwrap_or_clone(batch),
            Records::Selected { base, events } => copy_of(&base, &events),
        }
    }

    /// The records of each of `ports` outputs, by the port they go to, each on port 0 (as
    /// the readers of that output receive them); records on other ports are left out. A
    /// selection's share is a [`Records::selection`] of its batch.
    pub fn split_by_port(self, ports: usize) -> Vec<Records> {
        match self {
            Records::Whole(batch) => {
                let mut by_port = vec![Batch::new(); ports];
                for record in batch.iter() {
                    if let Some(output) = by_port.get_mut(record.port() as usize) {
                        output.push_record(record);
                    }
                }
                by_port.into_iter().map(Records::from).collect()
            }
            Records::Selected { base, events } => (0..ports)
                .map(|port| {
                    let on_port = events.iter().filter(|event| event.port as usize == port).map(|event| Event { port: 0, ..*event });
                    Records::selection(Arc::clone(&base), on_port.collect())
                })
                .collect(),
        }
    }

    /// The memory the records keep alive: the whole base batch, shared or not, and a
    /// selection's own entries.
    pub fn bytes_held(&self) -> usize {
        let own_events = match self {
            Records::Whole(_) => 0,
            Records::Selected { events, .. } => events.len(),
        };
        batch_bytes_held(self.base()) + own_events * std::mem::size_of::<Event>()
    }
}

/// The memory `batch` holds: its bytes, entries and headers.
pub fn batch_bytes_held(batch: &Batch) -> usize {
    batch.bytes.len() + batch.events.len() * std::mem::size_of::<Event>() + batch.headers.len() * std::mem::size_of::<sluice_sdk::Header>()
}

impl Default for Records {
    fn default() -> Records {
        Records::from(Batch::new())
    }
}

impl From<Batch> for Records {
    fn from(batch: Batch) -> Records {
        Records::Whole(Arc::new(batch))
    }
}

impl From<Arc<Batch>> for Records {
    fn from(batch: Arc<Batch>) -> Records {
        Records::Whole(batch)
    }
}

/// Whether `events` are at least half of `base`'s records: then `base` is worth sharing, or
/// copying whole.
fn names_most_of(base: &Batch, events: &[Event]) -> bool {
    events.len() * 2 >= base.events.len()
}

/// The records `events` describe in `base`, copied into a batch: when most of `base` is
/// selected, its bytes in one copy (the others' bytes left unreferenced, which costs less than
/// copying records one by one), else record by record.
pub fn copy_of(base: &Batch, events: &[Event]) -> Batch {
    if names_most_of(base, events) { copy_whole(base, events) } else { copy_each(base, events) }
}

/// `base`'s bytes and headers in one copy, with `events`.
pub fn copy_whole(base: &Batch, events: &[Event]) -> Batch {
    Batch { bytes: base.bytes.clone(), events: events.to_vec(), headers: base.headers.clone() }
}

/// The records `events` describe in `base`, each copied alone with its key, headers and
/// field index.
pub fn copy_each(base: &Batch, events: &[Event]) -> Batch {
    let mut batch = Batch::new();
    for (index, event) in events.iter().enumerate() {
        batch.push_record_to(event.port, Record::of(base, event, index));
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Batch {
        let mut batch = Batch::new();
        for n in 0..6 {
            let headers = if n % 2 == 0 { vec![(&b"h"[..], &b"v"[..])] } else { Vec::new() };
            batch.push(Some(format!("k{n}").as_bytes()), format!("{{\"n\":{n}}}").as_bytes(), n, headers);
        }
        sluice_sdk::fields::index_batch(&mut batch);
        batch
    }

    fn selection(positions: &[(usize, u32)]) -> Records {
        let base = Arc::new(base());
        let events = positions.iter().map(|&(index, port)| Event { port, ..base.events[index] }).collect();
        Records::Selected { base, events }
    }

    /// What a record holds, to compare records laid out differently: port, key, value, event
    /// time, headers, whether it has a field index.
    type Contents = (u32, Option<Vec<u8>>, Vec<u8>, i64, usize, bool);

    fn contents<'a>(records: impl Iterator<Item = Record<'a>>) -> Vec<Contents> {
        records
            .map(|record| {
                let key = record.key().map(<[u8]>::to_vec);
                (record.port(), key, record.value().to_vec(), record.timestamp(), record.headers().count(), record.field_index().is_some())
            })
            .collect()
    }

    #[test]
    fn a_selection_reads_and_copies_as_the_records_it_names() {
        for positions in [vec![(0, 0), (5, 1), (2, 0), (2, 0)], vec![(3, 0)], vec![(1, 0), (2, 0), (3, 0), (4, 2)], vec![]] {
            let records = selection(&positions);
            let expected: Vec<_> = positions
                .iter()
                .map(|&(index, port)| {
                    let n = index as i64;
                    (port, Some(format!("k{n}").into_bytes()), format!("{{\"n\":{n}}}").into_bytes(), n, usize::from(n % 2 == 0), true)
                })
                .collect();
            assert_eq!(records.len(), positions.len());
            assert_eq!(contents(records.iter()), expected);
            assert_eq!(contents(records.clone().into_batch().iter()), expected, "copied: {positions:?}");
            assert_eq!(contents(records.to_batch().iter()), expected);
            if !positions.is_empty() {
                assert_eq!(contents(records.single(0).iter()), vec![expected[0].clone()]);
            }
        }
    }

    /// Split by port, a selection and its copy give each output the same records, on port 0.
    #[test]
    fn a_selection_split_by_port_gives_each_output_its_records() {
        let records = selection(&[(0, 0), (5, 1), (2, 0), (4, 2), (1, 1), (3, 0)]);
        let split = records.clone().split_by_port(3);
        let copied = Records::from(records.into_batch()).split_by_port(3);
        assert_eq!(split.len(), 3);
        for (port, (shared, copy)) in split.iter().zip(&copied).enumerate() {
            assert_eq!(contents(shared.iter()), contents(copy.iter()), "port {port}");
            assert!(shared.iter().all(|record| record.port() == 0));
        }
        // Port 0 holds half of the batch's records and shares it; the others are copied.
        assert!(matches!(&split[0], Records::Selected { .. }));
        assert!(matches!(&split[1], Records::Whole(_)) && matches!(&split[2], Records::Whole(_)));
        let values = |records: &Records| records.iter().map(|record| record.value().to_vec()).collect::<Vec<_>>();
        assert_eq!(values(&split[1]), vec![b"{\"n\":5}".to_vec(), b"{\"n\":1}".to_vec()]);
    }

    #[test]
    fn a_whole_batch_is_shared_not_copied() {
        let batch = Arc::new(base());
        let records = Records::from(Arc::clone(&batch));
        assert!(Arc::ptr_eq(&records.to_batch(), &batch));
        assert_eq!(records.len(), 6);
        assert!(std::ptr::eq(records.base(), &*batch));
    }
}
