//! The operator's state: per key, its averages, the records waiting for the watermark and the
//! interval being counted; at most `max_keys` keys, forgetting the least recently used.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use sluice_sdk::VersionedState;
use sluice_sdk::state::{EntryDefinition, rearranged};

use sluice_sdk::numeric::CompensatedSum;

use crate::average::{Average, AverageState};
use crate::cumulative::CumulativeMean;
use crate::exponential::{ByAlpha, ByHalfLife};
use crate::simple::{EventTimeSpan, LastRecords};

/// Every key's state. Maps are ordered so that iteration, hence output, is deterministic.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AveragesByKey {
    keys: BTreeMap<String, KeyState>,
    /// Keys by their last use, oldest first: the next to forget when a new key arrives.
    recency: BTreeMap<u64, String>,
    /// Numbers uses: the arrival order of records, the same however they are batched.
    uses: u64,
    /// Per interval: the newest watermark seen; intervals ending at or before it are emitted.
    watermark: Option<i64>,
    /// Per interval: values held, all keys together, since the latest watermark (version 4).
    held_since_watermark: usize,
    /// What each average's state was made for, in configuration order (version 5; `None` in
    /// a state of an earlier version, whose averages are taken by place).
    made_for: Option<Vec<EntryDefinition>>,
    /// The `group_by` the keys are values of (version 5; `None` before).
    grouped_by: Option<Vec<String>>,
}

/// Version 2 added the cumulative average. Version 1's encoding is a valid version 2 one (the
/// new kind is a new last variant): it is read as is. The version still changed, so that a
/// plugin of version 1 refuses state that may hold a cumulative average, rather than misread it.
/// Version 3 added each key's `waited_past_watermark` (read from an earlier version, it is 0
/// until the next watermark) and keeps a cumulative mean's sum halved where it would overflow,
/// in place of a running mean. Version 4 added `held_since_watermark` (0 from earlier ones).
/// Version 5 added `made_for` and `grouped_by` (`None` from earlier ones).
impl VersionedState for AveragesByKey {
    const VERSION: u32 = 5;

    fn migrate(version: u32, bytes: &[u8]) -> Result<Self, String> {
        match version {
            1 | 2 => sluice_sdk::state::decode_bytes::<AveragesByKeyV2>(bytes).map(AveragesByKeyV2::into_current),
            3 => sluice_sdk::state::decode_bytes::<AveragesByKeyV3>(bytes).map(AveragesByKeyV3::into_current),
            4 => sluice_sdk::state::decode_bytes::<AveragesByKeyV4>(bytes).map(AveragesByKeyV4::into_current),
            _ => Err(format!("cannot read state version {version}: this plugin reads versions 1 to 5")),
        }
    }
}

/// The state of version 4, as it was encoded: without `made_for` and `grouped_by`.
#[derive(Deserialize)]
struct AveragesByKeyV4 {
    keys: BTreeMap<String, KeyState>,
    recency: BTreeMap<u64, String>,
    uses: u64,
    watermark: Option<i64>,
    held_since_watermark: usize,
}

impl AveragesByKeyV4 {
    fn into_current(self) -> AveragesByKey {
        let AveragesByKeyV4 { keys, recency, uses, watermark, held_since_watermark } = self;
        AveragesByKey { keys, recency, uses, watermark, held_since_watermark, made_for: None, grouped_by: None }
    }
}

/// The state of version 3, as it was encoded: without `held_since_watermark`.
#[derive(Deserialize)]
struct AveragesByKeyV3 {
    keys: BTreeMap<String, KeyState>,
    recency: BTreeMap<u64, String>,
    uses: u64,
    watermark: Option<i64>,
}

impl AveragesByKeyV3 {
    fn into_current(self) -> AveragesByKey {
        let AveragesByKeyV3 { keys, recency, uses, watermark } = self;
        AveragesByKey { keys, recency, uses, watermark, held_since_watermark: 0, made_for: None, grouped_by: None }
    }
}

/// The state of versions 1 and 2, as they were encoded.
#[derive(Deserialize)]
struct AveragesByKeyV2 {
    keys: BTreeMap<String, KeyStateV2>,
    recency: BTreeMap<u64, String>,
    uses: u64,
    watermark: Option<i64>,
}

#[derive(Deserialize)]
struct KeyStateV2 {
    last_use: u64,
    averages: Vec<AverageStateV2>,
    pending: VecDeque<(i64, f64)>,
    interval: Option<IntervalCount>,
}

/// `AverageState` of versions 1 and 2: the cumulative mean kept a running mean.
#[derive(Deserialize)]
enum AverageStateV2 {
    LastRecords(LastRecords),
    Span(EventTimeSpan),
    Alpha(ByAlpha),
    HalfLife(ByHalfLife),
    Cumulative(CompensatedSum, u64, f64),
}

impl AverageStateV2 {
    fn into_current(self) -> AverageState {
        match self {
            AverageStateV2::LastRecords(state) => AverageState::LastRecords(state),
            AverageStateV2::Span(state) => AverageState::Span(state),
            AverageStateV2::Alpha(state) => AverageState::Alpha(state),
            AverageStateV2::HalfLife(state) => AverageState::HalfLife(state),
            AverageStateV2::Cumulative(sum, count, running) => {
                AverageState::Cumulative(CumulativeMean::from_version_2(sum, count, running))
            }
        }
    }
}

impl AveragesByKeyV2 {
    fn into_current(self) -> AveragesByKey {
        let keys = self
            .keys
            .into_iter()
            .map(|(name, key)| {
                let KeyStateV2 { last_use, averages, pending, interval } = key;
                let averages = averages.into_iter().map(AverageStateV2::into_current).collect();
                (name, KeyState { last_use, averages, pending, interval, waited_past_watermark: 0 })
            })
            .collect();
        AveragesByKey {
            keys,
            recency: self.recency,
            uses: self.uses,
            watermark: self.watermark,
            held_since_watermark: 0,
            made_for: None,
            grouped_by: None,
        }
    }
}

/// One key's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyState {
    last_use: u64,
    averages: Vec<AverageState>,
    /// Per interval: values not yet applied, as (event time, value) sorted by event time.
    pending: VecDeque<(i64, f64)>,
    /// Per interval: the interval of the newest applied value, not yet emitted.
    interval: Option<IntervalCount>,
    /// Per interval: how many values still waited when the latest watermark was offered.
    /// Those held since have not met one yet: `max_records` bounds these only, so that a batch
    /// brings as many as it has (version 3).
    waited_past_watermark: usize,
}

/// The interval `[end - interval, end)` being counted for a key.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct IntervalCount {
    end: i64,
    count: u64,
}

/// A key's finished interval: its end, how many values it counted, and the averages then.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedInterval {
    pub end: i64,
    pub count: u64,
    pub values: Vec<Option<f64>>,
}

/// The end of the interval containing `timestamp`, intervals aligned on the Unix epoch: counted
/// forward from `timestamp`, so that an interval starting before the earliest time still ends
/// where it should (saturating its start gave it a wrong end); ends past the latest time
/// saturate to it.
pub fn interval_end(timestamp: i64, interval: i64) -> i64 {
    timestamp.saturating_add(interval - timestamp.rem_euclid(interval))
}

impl AveragesByKey {
    /// Takes this state (a fresh one, or one restored) under the averages of `field` now
    /// configured. Where they changed, each key keeps the state of each average it still has,
    /// matched by what it averages whatever its place or name (`as`), else by its name where
    /// only its parameter changed (an `alpha`, a span: it goes on from there); an average
    /// added starts afresh, one removed is dropped. A state that did not record what it was
    /// made for (before version 5) is taken by place, as it was then.
    ///
    /// Keys of another `group_by` are values of other fields: every key is forgotten (values
    /// still waiting for an interval with them).
    pub fn redefine(&mut self, field: &str, group_by: &[String], averages: &[Average]) {
        if self.grouped_by.as_deref().is_some_and(|then| then != group_by) {
            *self = AveragesByKey { watermark: self.watermark, ..AveragesByKey::default() };
        }
        self.grouped_by = Some(group_by.to_vec());
        let now: Vec<EntryDefinition> = averages.iter().map(|average| average.definition(field)).collect();
        if let Some(then) = self.made_for.take().filter(|then| *then != now) {
            let sources = EntryDefinition::matched(&then, &now);
            for state in self.keys.values_mut() {
                state.averages =
                    rearranged(std::mem::take(&mut state.averages), &sources, |place| AverageState::fresh(averages[place].kind));
            }
        }
        self.made_for = Some(now);
    }

    /// This state as version 4 encoded it (without `made_for` and `grouped_by`), for tests of
    /// migration.
    #[cfg(test)]
    pub fn version_4_bytes(&self) -> Vec<u8> {
        let mut bytes = sluice_sdk::State::encode(&AveragesByKey { made_for: None, grouped_by: None, ..self.clone() }).bytes;
        bytes.truncate(bytes.len() - 2); // two `None`s: a byte each
        bytes
    }

    pub fn get(&self, key: &str) -> Option<&KeyState> {
        self.keys.get(key)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn watermark(&self) -> Option<i64> {
        self.watermark
    }

    /// Values held, all keys together, since the latest watermark.
    pub fn held_since_watermark(&self) -> usize {
        self.held_since_watermark
    }

    /// Counts a value held (`KeyState::hold`).
    pub fn note_held(&mut self) {
        self.held_since_watermark += 1;
    }

    /// The state of `key`, made the most recently used; created if new, after forgetting the
    /// least recently used key (returned) if `max_keys` keys are kept already.
    pub fn touch(&mut self, key: &str, max_keys: usize) -> (&mut KeyState, Option<(String, KeyState)>) {
        let now = self.uses;
        self.uses += 1;
        let mut forgotten = None;
        match self.keys.get(key).map(|state| state.last_use) {
            Some(last_use) => {
                let name = self.recency.remove(&last_use).unwrap_or_else(|| key.to_owned());
                self.recency.insert(now, name);
            }
            None => {
                if self.keys.len() >= max_keys {
                    forgotten = self.forget_least_recent();
                }
                self.recency.insert(now, key.to_owned());
                self.keys.insert(key.to_owned(), KeyState::default());
            }
        }
        match self.keys.get_mut(key) {
            Some(state) => {
                state.last_use = now;
                (state, forgotten)
            }
            None => unreachable!("the key was inserted above"),
        }
    }

    fn forget_least_recent(&mut self) -> Option<(String, KeyState)> {
        let (_, name) = self.recency.pop_first()?;
        let state = self.keys.remove(&name)?;
        Some((name, state))
    }

    /// Applies every value before `watermark` and returns the intervals that ended, ordered by
    /// end, then key. Visits every key: O(keys) per watermark.
    pub fn advance(&mut self, watermark: i64, interval: i64, averages: &[Average], max_records: usize) -> Advanced {
        self.watermark = Some(self.watermark.map_or(watermark, |current| current.max(watermark)));
        self.held_since_watermark = 0;
        let mut advanced = Advanced::default();
        for (key, state) in &mut self.keys {
            let mut finished = Vec::new();
            advanced.span_truncated += state.advance(watermark, interval, averages, max_records, &mut finished);
            advanced.finished.extend(finished.into_iter().map(|result| (key.clone(), result)));
        }
        // Stable: keys stay in order within an interval end.
        advanced.finished.sort_by_key(|(_, result)| result.end);
        advanced
    }
}

/// What a watermark finished.
#[derive(Debug, Default)]
pub struct Advanced {
    pub finished: Vec<(String, FinishedInterval)>,
    pub span_truncated: u64,
}

impl KeyState {
    /// Adds a value to every average; returns how many values span windows dropped early.
    pub fn apply(&mut self, timestamp: i64, x: f64, averages: &[Average], max_records: usize) -> u64 {
        // Restored state may come from a configuration with other averages: match it up.
        self.averages.truncate(averages.len());
        for average in &averages[self.averages.len()..] {
            self.averages.push(AverageState::fresh(average.kind));
        }
        self.averages.iter_mut().zip(averages).map(|(state, average)| state.add(average.kind, timestamp, x, max_records)).sum()
    }

    /// The averages' current values, in configuration order.
    pub fn values(&self) -> impl Iterator<Item = Option<f64>> + '_ {
        self.averages.iter().map(AverageState::value)
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Values that still waited for the watermark when the latest one was offered.
    pub fn waited_past_watermark(&self) -> usize {
        self.waited_past_watermark
    }

    /// Keeps a value until the watermark passes it.
    pub fn hold(&mut self, timestamp: i64, x: f64) {
        // After the values of the same time: ties are applied in arrival order.
        let position = self.pending.partition_point(|(time, _)| *time <= timestamp);
        self.pending.insert(position, (timestamp, x));
    }

    /// Applies the values before `watermark` in event-time order and appends the intervals
    /// that ended to `finished`; returns how many values span windows dropped early.
    pub fn advance(
        &mut self,
        watermark: i64,
        interval: i64,
        averages: &[Average],
        max_records: usize,
        finished: &mut Vec<FinishedInterval>,
    ) -> u64 {
        let mut truncated = 0;
        while self.pending.front().is_some_and(|(time, _)| *time < watermark) {
            let Some((timestamp, x)) = self.pending.pop_front() else { break };
            let end = interval_end(timestamp, interval);
            match self.interval {
                // The interval's averages are those before the first value of a later interval.
                Some(current) if end > current.end => {
                    finished.push(self.finish(current));
                    self.interval = Some(IntervalCount { end, count: 0 });
                }
                Some(_) => {}
                None => self.interval = Some(IntervalCount { end, count: 0 }),
            }
            truncated += self.apply(timestamp, x, averages, max_records);
            if let Some(current) = &mut self.interval {
                current.count += 1;
            }
        }
        if let Some(current) = self.interval.filter(|current| current.end <= watermark) {
            finished.push(self.finish(current));
            self.interval = None;
        }
        self.waited_past_watermark = self.pending.len();
        truncated
    }

    fn finish(&self, interval: IntervalCount) -> FinishedInterval {
        FinishedInterval { end: interval.end, count: interval.count, values: self.values().collect() }
    }
}
