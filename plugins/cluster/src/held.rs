//! The records buffered before the centroids are seeded, with their points.

use serde::{Deserialize, Serialize};
use sluice_sdk::{Batch, Record};

/// The first `init_points` records, held (in order) until they seed the centroids.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Held {
    /// The records' features, n × d, row-major.
    pub points: Vec<f64>,
    pub records: Vec<HeldRecord>,
}

/// A held record, as it will be emitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldRecord {
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub timestamp: i64,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// Whether the output fields are written by parsing the record (see `OutputFields`).
    pub parse: bool,
}

impl Held {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn hold(&mut self, record: Record<'_>, point: &[f64], parse: bool) {
        self.points.extend_from_slice(point);
        self.records.push(HeldRecord {
            key: record.key().map(<[u8]>::to_vec),
            value: record.value().to_vec(),
            timestamp: record.timestamp(),
            headers: record.headers().map(|(name, value)| (name.to_vec(), value.to_vec())).collect(),
            parse,
        });
    }

    /// Empties the buffer, returning what it held.
    pub fn take(&mut self) -> Held {
        std::mem::take(self)
    }
}

impl HeldRecord {
    /// Appends the record to `batch` (main output) with `value` as its payload.
    pub fn push_to(&self, batch: &mut Batch, value: &[u8]) {
        let headers = self.headers.iter().map(|(name, value)| (name.as_slice(), value.as_slice()));
        batch.push(self.key.as_deref(), value, self.timestamp, headers);
    }
}
