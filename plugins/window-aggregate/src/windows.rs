//! Open windows: accumulators per window and group, fired by the watermark and purged once
//! their allowed lateness has passed. This is the operator's whole state.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use foldhash::fast::RandomState;
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

    /// The hopping windows of `size`, one starting every `slide`, that contain `timestamp`.
    pub fn hopping(timestamp: i64, size: i64, slide: i64) -> impl Iterator<Item = WindowKey> {
        let last_start = timestamp - timestamp.rem_euclid(slide);
        (0..)
            .map(move |step: i64| last_start.saturating_sub(step.saturating_mul(slide)))
            .take_while(move |start| start.saturating_add(size) > timestamp)
            .map(move |start| WindowKey { start, end: start.saturating_add(size) })
    }

    fn overlaps(&self, other: &WindowKey) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// One group's accumulators in one window, and how often its result was emitted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupState {
    pub accumulators: Vec<Accumulator>,
    /// Results emitted so far: 0 before the window fires, more after late updates.
    pub revisions: u32,
    /// Changed by a late record since its last emission.
    pub dirty: bool,
}

impl GroupState {
    /// Applies a record's `update`; a group whose window already fired becomes dirty.
    fn update(&mut self, update: impl FnOnce(&mut Vec<Accumulator>)) {
        self.dirty = self.revisions > 0;
        update(&mut self.accumulators);
    }
}

/// Every window not yet purged, and the watermark that closed the others. A window's groups
/// are hashed (a record finds its group in constant time, where a B-tree of key strings cost
/// q5 a fifth of its time in comparisons; with foldhash, as std's SipHash cost it another
/// tenth) and put in order when they are emitted; serialised, they are a map as before.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OpenWindows {
    windows: BTreeMap<WindowKey, HashMap<String, GroupState, RandomState>>,
    /// Session windows only: each group's sessions.
    sessions: BTreeMap<String, BTreeSet<WindowKey>>,
    watermark: Option<i64>,
    /// Arrival order of records, to order `first`/`last` among equal event times.
    sequence: u64,
}

impl VersionedState for OpenWindows {
    const VERSION: u32 = 2;

    fn migrate(version: u32, bytes: &[u8]) -> Result<Self, String> {
        match version {
            1 => sluice_sdk::state::decode_bytes::<OpenWindowsV1>(bytes).map(OpenWindows::from),
            _ => Err(format!("cannot read state version {version}: this plugin reads versions 1 and 2")),
        }
    }
}

/// The state layout of version 1: no revisions, no sessions, no arrival sequence.
#[derive(Deserialize)]
struct OpenWindowsV1 {
    windows: BTreeMap<WindowKey, BTreeMap<String, Vec<Accumulator>>>,
    watermark: Option<i64>,
}

impl From<OpenWindowsV1> for OpenWindows {
    fn from(old: OpenWindowsV1) -> Self {
        let fresh = |accumulators| GroupState { accumulators, revisions: 0, dirty: false };
        let windows =
            old.windows.into_iter().map(|(key, groups)| (key, groups.into_iter().map(|(g, a)| (g, fresh(a))).collect())).collect();
        OpenWindows { windows, sessions: BTreeMap::new(), watermark: old.watermark, sequence: 0 }
    }
}

impl OpenWindows {
    /// The watermark that purged `key`'s window, if it is purged (later records are late).
    pub fn purged(&self, key: &WindowKey, lateness: i64) -> Option<i64> {
        self.watermark.filter(|watermark| key.end.saturating_add(lateness) <= *watermark)
    }

    /// The highest watermark seen.
    pub fn watermark(&self) -> Option<i64> {
        self.watermark
    }

    /// The next arrival number, for `first` and `last`.
    pub fn next_sequence(&mut self) -> u64 {
        self.sequence += 1;
        self.sequence
    }

    /// Updates the accumulators of `group` in window `key` (created by `fresh` if new), found
    /// with one lookup. A window that already fired becomes dirty: its result is emitted again
    /// (a late update).
    pub fn group(
        &mut self,
        key: WindowKey,
        group: &str,
        fresh: impl FnOnce() -> Vec<Accumulator>,
        update: impl FnOnce(&mut Vec<Accumulator>),
    ) {
        let groups = self.windows.entry(key).or_default();
        // Looked up by &str: only a new group allocates its key.
        match groups.get_mut(group) {
            Some(state) => state.update(update),
            None => {
                groups.entry(group.to_owned()).or_insert(GroupState { accumulators: fresh(), revisions: 0, dirty: false }).update(update)
            }
        }
    }

    /// Updates the session of `group` that a record at `timestamp` joins: a new `[timestamp,
    /// timestamp + gap)` merged with every session of the group it overlaps.
    pub fn session(
        &mut self,
        group: &str,
        timestamp: i64,
        gap: i64,
        fresh: impl Fn() -> Vec<Accumulator>,
        update: impl FnOnce(&mut Vec<Accumulator>),
    ) {
        let mut key = WindowKey { start: timestamp, end: timestamp.saturating_add(gap) };
        let sessions = self.sessions.entry(group.to_owned()).or_default();
        let overlapping: Vec<WindowKey> = sessions.iter().filter(|session| session.overlaps(&key)).copied().collect();
        let mut merged = GroupState { accumulators: fresh(), revisions: 0, dirty: false };
        for old in overlapping {
            sessions.remove(&old);
            key = WindowKey { start: key.start.min(old.start), end: key.end.max(old.end) };
            if let Some(state) = self.windows.get_mut(&old).and_then(|groups| groups.remove(group)) {
                merged.accumulators.iter_mut().zip(&state.accumulators).for_each(|(into, from)| into.merge(from));
                merged.revisions = merged.revisions.max(state.revisions);
            }
            if self.windows.get(&old).is_some_and(HashMap::is_empty) {
                self.windows.remove(&old);
            }
        }
        sessions.insert(key);
        self.windows.entry(key).or_default().insert(group.to_owned(), merged);
        self.group(key, group, fresh, update)
    }

    /// Advances the watermark: emits each window group that ended and has no result yet or a
    /// changed one, in order of window then group; then purges windows past their lateness.
    pub fn close_until(&mut self, watermark: i64, lateness: i64, mut emit: impl FnMut(&WindowKey, &str, &GroupState)) {
        let watermark = self.watermark.map_or(watermark, |current| current.max(watermark));
        self.watermark = Some(watermark);
        let ended: Vec<WindowKey> = self
            .windows
            .range(..=WindowKey { start: watermark, end: i64::MAX })
            .map(|(key, _)| *key)
            .filter(|key| key.end <= watermark)
            .collect();
        for key in ended {
            let purge = key.end.saturating_add(lateness) <= watermark;
            let Some(groups) = self.windows.get_mut(&key) else { continue };
            let mut due: Vec<(&String, &mut GroupState)> =
                groups.iter_mut().filter(|(_, state)| state.revisions == 0 || state.dirty).collect();
            due.sort_unstable_by_key(|(group, _)| *group);
            for (group, state) in due {
                emit(&key, group, state);
                state.revisions += 1;
                state.dirty = false;
            }
            if purge {
                self.purge(key);
            }
        }
    }

    fn purge(&mut self, key: WindowKey) {
        if let Some(groups) = self.windows.remove(&key) {
            for group in groups.keys() {
                if let Some(sessions) = self.sessions.get_mut(group) {
                    sessions.remove(&key);
                    if sessions.is_empty() {
                        self.sessions.remove(group);
                    }
                }
            }
        }
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
