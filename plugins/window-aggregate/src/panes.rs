//! Panes: hopping windows whose size is a whole number of slides, aggregated per slide.
//!
//! A record belongs to size/slide hopping windows. Updating each one cost Nexmark q5 (10 s
//! windows every 2 s) five hash lookups per record. Instead a record updates the pane (the
//! slide-long interval) holding it, and a window is merged from its panes when the watermark
//! passes its end (see [`crate::OpenWindows::close_until`]). From then on it is an ordinary
//! window: a late record within the allowed lateness updates it directly.

use std::collections::{BTreeMap, HashMap};

use foldhash::fast::RandomState;
use serde::{Deserialize, Serialize};
use sluice_sdk::KeyText;

use crate::windows::{GroupState, WindowKey};
use crate::{Accumulator, WindowConfig};

/// The hopping windows panes serve: `size` a positive multiple of `slide` (checked when a
/// state is read, so a corrupt one is refused rather than divided by).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PaneShapeFields")]
pub struct PaneShape {
    pub size: i64,
    pub slide: i64,
}

/// A [`PaneShape`] as read, before its check.
#[derive(Deserialize)]
struct PaneShapeFields {
    size: i64,
    slide: i64,
}

impl TryFrom<PaneShapeFields> for PaneShape {
    type Error = String;

    fn try_from(fields: PaneShapeFields) -> Result<PaneShape, String> {
        let PaneShapeFields { size, slide } = fields;
        if slide > 0 && size > 0 && size % slide == 0 {
            Ok(PaneShape { size, slide })
        } else {
            Err(format!("panes of windows of {size} ms sliding by {slide} ms: the state is corrupt"))
        }
    }
}

impl PaneShape {
    /// The panes of a window configuration: hopping windows whose size is a whole number of
    /// slides; `None` for others (each record then updates each of its windows).
    pub fn of(window: &WindowConfig) -> Option<PaneShape> {
        match *window {
            WindowConfig::Hopping { size, slide } if slide.0 > 0 && size.0 % slide.0 == 0 => {
                Some(PaneShape { size: size.0, slide: slide.0 })
            }
            _ => None,
        }
    }

    /// The start of the pane holding `timestamp`; `None` before the earliest time (a record
    /// there has no window either, and is refused before it reaches a pane).
    fn pane_of(&self, timestamp: i64) -> Option<i64> {
        crate::windows::aligned_start(timestamp, self.slide)
    }

    /// The windows holding the pane starting at `pane` that end in `(after, until]`, latest
    /// first: found without trying the other windows holding it (an hour sliding by a second
    /// is 3,600 of them).
    fn windows_ending_within(&self, pane: i64, after: Option<i64>, until: Option<i64>) -> impl Iterator<Item = WindowKey> + use<> {
        let (size, slide) = (self.size, self.slide);
        // Window `step` (0: the latest) ends at pane + size - step * slide: the first step that
        // ends by `end` is (pane + size - end) / slide, rounded up.
        let latest_end = i128::from(pane) + i128::from(size);
        let steps_to = |end: i64| -(i128::from(end) - latest_end).div_euclid(i128::from(slide));
        // Ends past the latest time saturate to it: every window ends by then.
        let first = until.filter(|&until| until < i64::MAX).map_or(0, |until| steps_to(until).max(0));
        let past = after.map_or(i128::from(size / slide), |after| steps_to(after).min(i128::from(size / slide)));
        let ends_within = move |key: &WindowKey| until.is_none_or(|until| key.end <= until) && after.is_none_or(|after| key.end > after);
        (first..past.max(first))
            // As `WindowKey::hopping`: no window starts before the earliest time.
            .map_while(move |step| {
                let start = i64::try_from(step).ok().and_then(|step| step.checked_mul(slide)).and_then(|back| pane.checked_sub(back))?;
                Some(WindowKey { start, end: start.saturating_add(size) })
            })
            .filter(ends_within)
    }
}

/// Each pane's accumulators per group, and the shape they were made for.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Panes {
    shape: Option<PaneShape>,
    panes: BTreeMap<i64, HashMap<KeyText, Vec<Accumulator>, RandomState>>,
}

impl Panes {
    pub fn shape(&self) -> Option<PaneShape> {
        self.shape
    }

    /// Every accumulator the panes hold.
    pub fn accumulators_mut(&mut self) -> impl Iterator<Item = &mut Accumulator> {
        self.group_accumulators_mut().flat_map(|accumulators| accumulators.iter_mut())
    }

    /// Each group's accumulators, in every pane.
    pub fn group_accumulators_mut(&mut self) -> impl Iterator<Item = &mut Vec<Accumulator>> {
        self.panes.values_mut().flat_map(|groups| groups.values_mut())
    }

    /// How many panes are held.
    pub fn len(&self) -> usize {
        self.panes.len()
    }

    /// Updates the accumulators of `group` in the pane holding `timestamp` (created by `fresh`
    /// if new). Only called with a shape (see [`crate::OpenWindows::hop`]).
    pub fn update(
        &mut self,
        timestamp: i64,
        group: &KeyText,
        fresh: impl FnOnce() -> Vec<Accumulator>,
        update: impl FnOnce(&mut Vec<Accumulator>),
    ) {
        let Some(pane) = self.shape.and_then(|shape| shape.pane_of(timestamp)) else { return };
        let groups = self.panes.entry(pane).or_default();
        match groups.get_mut(group) {
            Some(accumulators) => update(accumulators),
            None => update(groups.entry(group.clone()).or_insert_with(fresh)),
        }
    }

    /// Merges into `windows` every window that holds a pane and ends in `(after, until]`
    /// (they fire now), then forgets the panes whose windows all ended by `until`.
    pub fn fire(&mut self, after: Option<i64>, until: i64, windows: &mut BTreeMap<WindowKey, HashMap<KeyText, GroupState, RandomState>>) {
        let Some(shape) = self.shape else { return };
        self.merge_windows_ending_within(shape, after, Some(until), windows);
        self.panes.retain(|&pane, _| pane.saturating_add(shape.size) > until);
    }

    /// Merges into `windows` every window of `shape` that holds a pane and ends in
    /// `(after, until]` (`None`: unbounded).
    fn merge_windows_ending_within(
        &self,
        shape: PaneShape,
        after: Option<i64>,
        until: Option<i64>,
        windows: &mut BTreeMap<WindowKey, HashMap<KeyText, GroupState, RandomState>>,
    ) {
        // A pane's windows end at its start + slide at the earliest (or at the latest time,
        // where ends saturate); every pane kept has windows ending after `after` when firing
        // (the others were forgotten when it was reached).
        let last_pane = match until {
            Some(until) if until < i64::MAX => until.saturating_sub(shape.slide),
            _ => i64::MAX,
        };
        let keys: std::collections::BTreeSet<WindowKey> =
            self.panes.range(..=last_pane).flat_map(|(&pane, _)| shape.windows_ending_within(pane, after, until)).collect();
        for key in keys {
            self.merge_into(key, windows.entry(key).or_default());
        }
    }

    /// Merges the panes of window `key` into its groups.
    fn merge_into(&self, key: WindowKey, groups: &mut HashMap<KeyText, GroupState, RandomState>) {
        for pane in self.panes.range(key.start..key.end).map(|(_, pane)| pane) {
            for (group, accumulators) in pane {
                match groups.get_mut(group) {
                    Some(state) => state.accumulators.iter_mut().zip(accumulators).for_each(|(into, from)| into.merge(from)),
                    None => {
                        groups.insert(group.clone(), GroupState { accumulators: accumulators.clone(), revisions: 0, dirty: false });
                    }
                }
            }
        }
    }

    /// Takes panes of `shape` from now on. Panes of another shape are merged into each of
    /// their windows that has not fired by `watermark` (those that fired hold them already),
    /// as if each record had updated its windows.
    pub fn reshape(
        &mut self,
        shape: Option<PaneShape>,
        watermark: Option<i64>,
        windows: &mut BTreeMap<WindowKey, HashMap<KeyText, GroupState, RandomState>>,
    ) {
        if self.shape == shape {
            return;
        }
        if let Some(old) = self.shape {
            self.merge_windows_ending_within(old, watermark, None, windows);
        }
        *self = Panes { shape, panes: BTreeMap::new() };
    }
}
