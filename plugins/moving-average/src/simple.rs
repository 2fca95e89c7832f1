//! Simple moving averages: the mean of a key's last N values, or of its values within a span
//! of event time.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use sluice_sdk::numeric::CompensatedSum;

/// The sum of the values in a window, kept as values enter and leave it.
///
/// Neumaier compensation keeps each step accurate even when values of very different
/// magnitudes cancel. Removals can still let rounding build up over a long stream, so the sum
/// is recomputed from the window once as many values have left as it holds: amortised O(1)
/// per value, and never more than one window's worth of drift.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowSum {
    sum: CompensatedSum,
    removals: usize,
}

impl WindowSum {
    pub fn add(&mut self, x: f64) {
        self.sum.add(x);
    }

    pub fn remove(&mut self, x: f64) {
        self.add(-x);
        self.removals += 1;
    }

    /// Recomputes the sum from the window's `values` when drift may have built up, or when it
    /// overflowed (values near `f64::MAX`: it may fit again once they have left).
    pub fn refresh(&mut self, values: impl ExactSizeIterator<Item = f64>) {
        if self.removals >= values.len() || !self.value().is_finite() {
            *self = WindowSum::default();
            values.for_each(|x| self.add(x));
        }
    }

    /// The mean of the window's values; `None` for an empty window.
    pub fn mean(&self, values: impl ExactSizeIterator<Item = f64>) -> Option<f64> {
        let count = values.len() as f64;
        if values.len() == 0 {
            return None;
        }
        let mean = self.value() / count;
        if mean.is_finite() {
            return Some(mean);
        }
        // The sum overflowed but the mean need not: add the values scaled down first.
        let mut scaled = WindowSum::default();
        values.for_each(|x| scaled.add(x / count));
        Some(scaled.value())
    }

    fn value(&self) -> f64 {
        self.sum.value()
    }
}

/// The mean of a key's last `records` values, in arrival order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LastRecords {
    values: VecDeque<f64>,
    sum: WindowSum,
}

impl LastRecords {
    pub fn add(&mut self, x: f64, records: usize) {
        self.values.push_back(x);
        self.sum.add(x);
        while self.values.len() > records {
            let Some(old) = self.values.pop_front() else { break };
            self.sum.remove(old);
        }
        self.sum.refresh(self.values.iter().copied());
    }

    pub fn mean(&self) -> Option<f64> {
        self.sum.mean(self.values.iter().copied())
    }
}

/// The mean of a key's values whose event time is within `span` of its newest:
/// `timestamp > newest - span`.
///
/// Values are kept sorted by event time, so that a record arriving out of order still leaves
/// the window at the right moment. A record older than the window when it arrives does not
/// count. At most `max_records` values are kept: beyond, the oldest leave early.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventTimeSpan {
    entries: VecDeque<(i64, f64)>,
    sum: WindowSum,
    newest: Option<i64>,
}

impl EventTimeSpan {
    /// Adds `x` at `timestamp`; returns how many values left early because of `max_records`.
    pub fn add(&mut self, timestamp: i64, x: f64, span: i64, max_records: usize) -> u64 {
        let newest = self.newest.map_or(timestamp, |newest| newest.max(timestamp));
        self.newest = Some(newest);
        let window_start = newest.saturating_sub(span);
        if timestamp > window_start {
            // After the values of the same time: ties keep their arrival order.
            let position = self.entries.partition_point(|(time, _)| *time <= timestamp);
            self.entries.insert(position, (timestamp, x));
            self.sum.add(x);
        }
        while self.entries.front().is_some_and(|(time, _)| *time <= window_start) {
            self.remove_oldest();
        }
        let mut truncated = 0;
        while self.entries.len() > max_records {
            self.remove_oldest();
            truncated += 1;
        }
        self.sum.refresh(self.entries.iter().map(|(_, x)| *x));
        truncated
    }

    pub fn mean(&self) -> Option<f64> {
        self.sum.mean(self.entries.iter().map(|(_, x)| *x))
    }

    fn remove_oldest(&mut self) {
        if let Some((_, old)) = self.entries.pop_front() {
            self.sum.remove(old);
        }
    }
}
