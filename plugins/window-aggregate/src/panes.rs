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

/// The hopping windows panes serve: `size` a positive multiple of `slide`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaneShape {
    pub size: i64,
    pub slide: i64,
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

    /// The start of the pane holding `timestamp`.
    fn pane_of(&self, timestamp: i64) -> i64 {
        timestamp - timestamp.rem_euclid(self.slide)
    }

    /// The windows holding the pane starting at `pane`, latest first.
    fn windows_of(&self, pane: i64) -> impl Iterator<Item = WindowKey> + use<> {
        let (size, slide) = (self.size, self.slide);
        (0..size / slide).map(move |step| {
            let start = pane.saturating_sub(step.saturating_mul(slide));
            WindowKey { start, end: start.saturating_add(size) }
        })
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

    /// How many panes are held.
    pub fn len(&self) -> usize {
        self.panes.len()
    }

    /// Updates the accumulators of `group` in the pane holding `timestamp` (created by `fresh`
    /// if new). Only called with a shape.
    pub fn update(
        &mut self,
        timestamp: i64,
        group: &KeyText,
        fresh: impl FnOnce() -> Vec<Accumulator>,
        update: impl FnOnce(&mut Vec<Accumulator>),
    ) {
        let Some(shape) = self.shape else { return };
        let groups = self.panes.entry(shape.pane_of(timestamp)).or_default();
        match groups.get_mut(group) {
            Some(accumulators) => update(accumulators),
            None => update(groups.entry(group.clone()).or_insert_with(fresh)),
        }
    }

    /// Merges into `windows` every window that holds a pane and ends in `(after, until]`
    /// (they fire now), then forgets the panes whose windows all ended by `until`.
    pub fn fire(&mut self, after: Option<i64>, until: i64, windows: &mut BTreeMap<WindowKey, HashMap<KeyText, GroupState, RandomState>>) {
        let Some(shape) = self.shape else { return };
        let ends_now = |key: &WindowKey| key.end <= until && after.is_none_or(|after| key.end > after);
        let due: std::collections::BTreeSet<WindowKey> =
            self.panes.keys().flat_map(|&pane| shape.windows_of(pane)).filter(ends_now).collect();
        for key in due {
            self.merge_into(key, windows.entry(key).or_default());
        }
        self.panes.retain(|&pane, _| pane.saturating_add(shape.size) > until);
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
            let to_fire = |key: &WindowKey| watermark.is_none_or(|watermark| key.end > watermark);
            let keys: std::collections::BTreeSet<WindowKey> =
                self.panes.keys().flat_map(|&pane| old.windows_of(pane)).filter(to_fire).collect();
            for key in keys {
                self.merge_into(key, windows.entry(key).or_default());
            }
        }
        *self = Panes { shape, panes: BTreeMap::new() };
    }
}
