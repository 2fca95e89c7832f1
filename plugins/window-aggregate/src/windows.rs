//! Open windows: accumulators per window and group, closed in order by the watermark.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sluice_sdk::VersionedState;

use crate::Accumulator;

/// A window's bounds in event time: `[start, end)` milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WindowKey {
    pub start: i64,
    pub end: i64,
}

impl WindowKey {
    /// The tumbling window of `size` that contains `timestamp`.
    pub fn containing(timestamp: i64, size: i64) -> WindowKey {
        let start = timestamp - timestamp.rem_euclid(size);
        WindowKey { start, end: start.saturating_add(size) }
    }
}

/// Every window not yet emitted, and the watermark that closed the others.
///
/// This is the operator's whole state: its size is bounded by the open windows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OpenWindows {
    windows: BTreeMap<WindowKey, BTreeMap<String, Vec<Accumulator>>>,
    watermark: Option<i64>,
}

impl VersionedState for OpenWindows {
    const VERSION: u32 = 1;
}

impl OpenWindows {
    /// The watermark that closed `key`'s window, if it is closed.
    pub fn closed_for(&self, key: &WindowKey) -> Option<i64> {
        self.watermark.filter(|watermark| key.end <= *watermark)
    }

    /// The accumulators of `group` in window `key`, created by `fresh` if new.
    pub fn group(&mut self, key: WindowKey, group: &str, fresh: impl FnOnce() -> Vec<Accumulator>) -> &mut Vec<Accumulator> {
        let groups = self.windows.entry(key).or_default();
        // Look up by &str first: only a new group allocates its key.
        if !groups.contains_key(group) {
            groups.insert(group.to_owned(), fresh());
        }
        match groups.get_mut(group) {
            Some(accumulators) => accumulators,
            None => unreachable!("the group was inserted above"),
        }
    }

    /// Removes and returns, in order, the windows that end at or before `watermark`.
    pub fn close_until(&mut self, watermark: i64) -> Vec<(WindowKey, BTreeMap<String, Vec<Accumulator>>)> {
        self.watermark = Some(self.watermark.map_or(watermark, |current| current.max(watermark)));
        let mut closed = Vec::new();
        while let Some(entry) = self.windows.first_entry() {
            if entry.key().end > watermark {
                break;
            }
            closed.push(entry.remove_entry());
        }
        closed
    }

    /// How many windows are open.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    /// Whether no window is open.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }
}
