//! Open windows: accumulators per window and group, fired by the watermark and purged once
//! their allowed lateness has passed. This is the operator's whole state.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use foldhash::fast::RandomState;
use serde::{Deserialize, Serialize};
use sluice_sdk::state::{matched_positions, rearranged};
use sluice_sdk::{KeyText, VersionedState};

use crate::Accumulator;
use crate::panes::{PaneShape, Panes};

/// A window's bounds in event time: `[start, end)` milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WindowKey {
    pub start: i64,
    pub end: i64,
}

impl WindowKey {
    /// The tumbling window of `size` that contains `timestamp`; `None` when it would start
    /// before the earliest time (`i64::MIN` ms). Ends past the latest time saturate to it.
    pub fn containing(timestamp: i64, size: i64) -> Option<WindowKey> {
        let start = aligned_start(timestamp, size)?;
        Some(WindowKey { start, end: start.saturating_add(size) })
    }

    /// The hopping windows of `size`, one starting every `slide`, that contain `timestamp`
    /// (those that start at a representable time: near the earliest one, starts do not wrap or
    /// repeat, and there may be none).
    pub fn hopping(timestamp: i64, size: i64, slide: i64) -> impl Iterator<Item = WindowKey> {
        let last_start = aligned_start(timestamp, slide);
        (0..)
            .map_while(move |step: i64| step.checked_mul(slide).and_then(|back| last_start?.checked_sub(back)))
            // An end cut at the latest time holds it, as a tumbling window's does.
            .take_while(move |start| start.saturating_add(size) > timestamp || start.saturating_add(size) == i64::MAX)
            .map(move |start| WindowKey { start, end: start.saturating_add(size) })
    }

    /// A record's own session: `gap` from its time. At the latest time, where no window
    /// starts, the session starts a millisecond before (and holds that time: see `reach`).
    pub fn session(timestamp: i64, gap: i64) -> WindowKey {
        WindowKey { start: timestamp.min(i64::MAX - 1), end: timestamp.saturating_add(gap) }
    }

    /// Whether the two windows share a time. A window cut at the latest time holds that time
    /// too, so a session there shares it with one that starts at it.
    fn overlaps(&self, other: &WindowKey) -> bool {
        i128::from(self.start) < other.reach() && i128::from(other.start) < self.reach()
    }

    /// The first time past the window: its end, or past the latest time for an end cut there.
    fn reach(&self) -> i128 {
        i128::from(self.end) + i128::from(self.end == i64::MAX)
    }
}

/// The start of the interval of `length` aligned on the Unix epoch that holds `timestamp`;
/// `None` when it is before the earliest time (`i64::MIN` ms), where subtracting would wrap.
/// No interval starts at the latest time (`i64::MAX` ms, when `length` divides it): it would be
/// empty, so a record there belongs to the interval ending at it, which holds that time.
pub fn aligned_start(timestamp: i64, length: i64) -> Option<i64> {
    let start = timestamp.checked_sub(timestamp.rem_euclid(length))?;
    if start == i64::MAX { start.checked_sub(length) } else { Some(start) }
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
    pub(crate) fn update(&mut self, update: impl FnOnce(&mut Vec<Accumulator>)) {
        self.dirty = self.revisions > 0;
        update(&mut self.accumulators);
    }
}

/// Every window not yet purged, and the watermark that closed the others. A window's groups
/// are hashed (a record finds its group in constant time, where a B-tree of key strings cost
/// q5 a fifth of its time in comparisons; with foldhash, as std's SipHash cost it another
/// tenth) and put in order when they are emitted; serialised, they are a map as before.
/// Hopping windows that are a whole number of slides wait in `panes` until they fire.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OpenWindows {
    windows: BTreeMap<WindowKey, HashMap<KeyText, GroupState, RandomState>>,
    /// Session windows only: each group's sessions.
    sessions: BTreeMap<KeyText, BTreeSet<WindowKey>>,
    watermark: Option<i64>,
    panes: Panes,
    /// What the accumulators compute (`None` in states before version 5, which did not say).
    definition: Option<Definition>,
}

/// What the accumulators of open windows were made for: the group fields and each aggregate,
/// in order ([`crate::AggregateConfig::describe`]), with its output name (version 6; none in
/// a state of version 5). Windows restored under another definition would mix results of two
/// configurations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Definition {
    pub group_by: Vec<String>,
    pub aggregates: Vec<String>,
    pub names: Vec<String>,
}

impl std::fmt::Display for Definition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "aggregates [{}] grouped by [{}]", self.aggregates.join(", "), self.group_by.join(", "))
    }
}

/// Version 6 records each aggregate's output name in the definition; version 5 records the
/// definition; version 4 made sums, moments and first/last independent of arrival order (the
/// arrival sequence is gone); version 3 added the panes; versions 1 to 5 are migrated.
impl VersionedState for OpenWindows {
    const VERSION: u32 = 6;

    fn migrate(version: u32, bytes: &[u8]) -> Result<Self, String> {
        let mut windows = match version {
            5 => sluice_sdk::state::decode_bytes::<OpenWindowsV5>(bytes).map(OpenWindows::from),
            1 => sluice_sdk::state::decode_bytes::<OpenWindowsV1>(bytes).map(OpenWindows::from),
            2 => sluice_sdk::state::decode_bytes::<OpenWindowsV2>(bytes).map(OpenWindows::from),
            3 => sluice_sdk::state::decode_bytes::<OpenWindowsV3>(bytes).map(OpenWindows::from),
            4 => sluice_sdk::state::decode_bytes::<OpenWindowsV4>(bytes).map(OpenWindows::from),
            _ => Err(format!("cannot read state version {version}: this plugin reads versions 1 to 6")),
        }?;
        if version < 4 {
            windows.accumulators_mut().for_each(Accumulator::upgrade);
        }
        Ok(windows)
    }
}

/// The state layout of version 5: a definition without the output names.
#[derive(Deserialize)]
struct OpenWindowsV5 {
    windows: BTreeMap<WindowKey, HashMap<KeyText, GroupState, RandomState>>,
    sessions: BTreeMap<KeyText, BTreeSet<WindowKey>>,
    watermark: Option<i64>,
    panes: Panes,
    definition: Option<DefinitionV5>,
}

#[derive(Deserialize)]
struct DefinitionV5 {
    group_by: Vec<String>,
    aggregates: Vec<String>,
}

impl From<OpenWindowsV5> for OpenWindows {
    fn from(old: OpenWindowsV5) -> Self {
        let definition = old.definition.map(|DefinitionV5 { group_by, aggregates }| Definition { group_by, aggregates, names: Vec::new() });
        OpenWindows { windows: old.windows, sessions: old.sessions, watermark: old.watermark, panes: old.panes, definition }
    }
}

/// The state layout of version 4: no definition.
#[derive(Deserialize)]
struct OpenWindowsV4 {
    windows: BTreeMap<WindowKey, HashMap<KeyText, GroupState, RandomState>>,
    sessions: BTreeMap<KeyText, BTreeSet<WindowKey>>,
    watermark: Option<i64>,
    panes: Panes,
}

impl From<OpenWindowsV4> for OpenWindows {
    fn from(old: OpenWindowsV4) -> Self {
        OpenWindows { windows: old.windows, sessions: old.sessions, watermark: old.watermark, panes: old.panes, definition: None }
    }
}

/// The state layout of version 3: an arrival sequence for first/last.
#[derive(Deserialize)]
struct OpenWindowsV3 {
    windows: BTreeMap<WindowKey, HashMap<KeyText, GroupState, RandomState>>,
    sessions: BTreeMap<KeyText, BTreeSet<WindowKey>>,
    watermark: Option<i64>,
    #[allow(dead_code)] // read to skip it
    sequence: u64,
    panes: Panes,
}

impl From<OpenWindowsV3> for OpenWindows {
    fn from(old: OpenWindowsV3) -> Self {
        OpenWindows { windows: old.windows, sessions: old.sessions, watermark: old.watermark, panes: old.panes, definition: None }
    }
}

/// The state layout of version 2: no panes.
#[derive(Deserialize)]
struct OpenWindowsV2 {
    windows: BTreeMap<WindowKey, HashMap<KeyText, GroupState, RandomState>>,
    sessions: BTreeMap<KeyText, BTreeSet<WindowKey>>,
    watermark: Option<i64>,
    #[allow(dead_code)] // read to skip it
    sequence: u64,
}

impl From<OpenWindowsV2> for OpenWindows {
    fn from(old: OpenWindowsV2) -> Self {
        OpenWindows { windows: old.windows, sessions: old.sessions, watermark: old.watermark, panes: Panes::default(), definition: None }
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
        let windows = old
            .windows
            .into_iter()
            .map(|(key, groups)| (key, groups.into_iter().map(|(g, a)| (KeyText::from(g), fresh(a))).collect()))
            .collect();
        OpenWindows { windows, sessions: BTreeMap::new(), watermark: old.watermark, panes: Panes::default(), definition: None }
    }
}

impl OpenWindows {
    /// Aggregates hopping windows of `shape` by panes from now on (`None`: each window on its
    /// own); called after `init` and `restore`. Panes of another shape (a restored state of
    /// another configuration) are merged into their windows first.
    pub fn use_panes(&mut self, shape: Option<PaneShape>) {
        self.panes.reshape(shape, self.watermark, &mut self.windows);
    }

    /// The panes' shape, if hopping windows are aggregated by panes.
    pub fn pane_shape(&self) -> Option<PaneShape> {
        self.panes.shape()
    }

    /// The watermark that purged `key`'s window, if it is purged (later records are late).
    pub fn purged(&self, key: &WindowKey, lateness: i64) -> Option<i64> {
        self.watermark.filter(|watermark| key.end.saturating_add(lateness) <= *watermark)
    }

    /// The highest watermark seen.
    pub fn watermark(&self) -> Option<i64> {
        self.watermark
    }

    /// Every accumulator held, in windows and in panes.
    fn accumulators_mut(&mut self) -> impl Iterator<Item = &mut Accumulator> {
        let in_windows = self.windows.values_mut().flat_map(|groups| groups.values_mut()).flat_map(|group| group.accumulators.iter_mut());
        in_windows.chain(self.panes.accumulators_mut())
    }

    /// Updates the accumulators of `group` in window `key` (created by `fresh` if new), found
    /// with one lookup. A window that already fired becomes dirty: its result is emitted again
    /// (a late update).
    pub fn group(
        &mut self,
        key: WindowKey,
        group: &KeyText,
        fresh: impl FnOnce() -> Vec<Accumulator>,
        update: impl FnOnce(&mut Vec<Accumulator>),
    ) {
        let groups = self.windows.entry(key).or_default();
        // Looked up by reference: only a new group allocates its key.
        match groups.get_mut(group) {
            Some(state) => state.update(update),
            None => groups.entry(group.clone()).or_insert(GroupState { accumulators: fresh(), revisions: 0, dirty: false }).update(update),
        }
    }

    /// Adds a record at `timestamp` to its hopping windows `keys` (those not purged) by panes:
    /// to its pane if one of them is still to fire, and to each that fired already (a late
    /// update within the allowed lateness).
    pub fn hop(
        &mut self,
        timestamp: i64,
        keys: &[WindowKey],
        group: &KeyText,
        fresh: impl Fn() -> Vec<Accumulator>,
        update: impl Fn(&mut Vec<Accumulator>),
    ) {
        if self.panes.shape().is_none() {
            return keys.iter().for_each(|&key| self.group(key, group, &fresh, &update));
        }
        let watermark = self.watermark;
        let fired = |key: &&WindowKey| watermark.is_some_and(|watermark| key.end <= watermark);
        if keys.iter().any(|key| !fired(&key)) {
            self.panes.update(timestamp, group, &fresh, &update);
        }
        for key in keys.iter().filter(fired) {
            self.group(*key, group, &fresh, &update);
        }
    }

    /// The session a record of `group` at `timestamp` would make: its own, merged with the
    /// open sessions of the group it overlaps (those of a group never overlap each other).
    pub fn session_with(&self, group: &KeyText, timestamp: i64, gap: i64) -> WindowKey {
        let own = WindowKey::session(timestamp, gap);
        let overlapping = self.sessions.get(group).into_iter().flatten().filter(|session| session.overlaps(&own));
        overlapping.fold(own, |merged, session| WindowKey { start: merged.start.min(session.start), end: merged.end.max(session.end) })
    }

    /// Updates `session` of `group` (a record's, from [`OpenWindows::session_with`]): the
    /// sessions of the group it spans are merged into it.
    pub fn session(
        &mut self,
        group: &KeyText,
        session: WindowKey,
        fresh: impl Fn() -> Vec<Accumulator>,
        update: impl FnOnce(&mut Vec<Accumulator>),
    ) {
        let sessions = self.sessions.entry(group.clone()).or_default();
        let overlapping: Vec<WindowKey> = sessions.iter().filter(|old| old.overlaps(&session)).copied().collect();
        let mut merged = GroupState { accumulators: fresh(), revisions: 0, dirty: false };
        for old in overlapping {
            sessions.remove(&old);
            if let Some(state) = self.windows.get_mut(&old).and_then(|groups| groups.remove(group)) {
                merged.accumulators.iter_mut().zip(&state.accumulators).for_each(|(into, from)| into.merge(from));
                merged.revisions = merged.revisions.max(state.revisions);
            }
            if self.windows.get(&old).is_some_and(HashMap::is_empty) {
                self.windows.remove(&old);
            }
        }
        sessions.insert(session);
        self.windows.entry(session).or_default().insert(group.clone(), merged);
        self.group(session, group, fresh, update)
    }

    /// Advances the watermark: emits each window group that ended and has no result yet or a
    /// changed one, in order of window then group; then purges windows past their lateness.
    pub fn close_until(&mut self, watermark: i64, lateness: i64, mut emit: impl FnMut(&WindowKey, &str, &GroupState)) {
        let previous = self.watermark;
        let watermark = previous.map_or(watermark, |current| current.max(watermark));
        self.watermark = Some(watermark);
        self.panes.fire(previous, watermark, &mut self.windows);
        let ended: Vec<WindowKey> = self
            .windows
            .range(..=WindowKey { start: watermark, end: i64::MAX })
            .map(|(key, _)| *key)
            .filter(|key| key.end <= watermark)
            .collect();
        for key in ended {
            let purge = key.end.saturating_add(lateness) <= watermark;
            let Some(groups) = self.windows.get_mut(&key) else { continue };
            let mut due: Vec<(&KeyText, &mut GroupState)> =
                groups.iter_mut().filter(|(_, state)| state.revisions == 0 || state.dirty).collect();
            due.sort_unstable_by_key(|(group, _)| *group);
            for (group, state) in due {
                emit(&key, group.as_str(), state);
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

    /// How many windows are open, panes counted as windows.
    pub fn len(&self) -> usize {
        self.windows.len() + self.panes.len()
    }

    /// Whether no window is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records what the accumulators compute from now on.
    pub fn define(&mut self, definition: Definition) {
        self.definition = Some(definition);
    }

    /// Takes these restored windows under `definition`. Where the aggregates changed, each
    /// open group keeps the accumulators of the aggregates it still has (matched by what they
    /// compute, whatever their place or output name), drops those of aggregates removed, and
    /// gives an aggregate added [`Accumulator::Incomplete`]: it missed the window's records
    /// before the change. Other group fields cannot be matched up: refused while a window is
    /// open. A state that did not record its definition (before version 5) is taken as it is.
    pub fn redefine(&mut self, definition: Definition) -> Result<(), String> {
        let Some(made_for) = self.definition.take().filter(|made_for| *made_for != definition && !self.is_empty()) else {
            self.definition = Some(definition);
            return Ok(());
        };
        if made_for.group_by != definition.group_by {
            let open = self.len();
            self.definition = Some(made_for.clone());
            return Err(format!(
                "the state holds {open} open window(s) grouped by [{}], and this configuration groups by [{}]: their groups cannot \
                 be matched up; keep group_by, or start the new version without the state (sluice swap --discard-state: the \
                 open windows start again empty; for a restart, remove the checkpoint), or add a second window-aggregate \
                 beside this one",
                made_for.group_by.join(", "),
                definition.group_by.join(", ")
            ));
        }
        let (then, now) = (&made_for.aggregates, &definition.aggregates);
        // The same computation under the same name first: two aggregates that compute alike
        // keep each its own accumulators whatever their order (one may have been added later,
        // and missed part of the window).
        let same_name = |old: usize, new: usize| made_for.names.get(old).is_some_and(|name| Some(name) == definition.names.get(new));
        let sources = matched_positions(
            then.len(),
            now.len(),
            &[&|old, new| then[old] == now[new] && same_name(old, new), &|old, new| then[old] == now[new]],
        );
        let remap = |accumulators: &mut Vec<Accumulator>| {
            *accumulators = rearranged(std::mem::take(accumulators), &sources, |_| Accumulator::Incomplete);
        };
        self.windows.values_mut().flat_map(|groups| groups.values_mut()).for_each(|group| remap(&mut group.accumulators));
        self.panes.group_accumulators_mut().for_each(remap);
        self.definition = Some(definition);
        Ok(())
    }
}
