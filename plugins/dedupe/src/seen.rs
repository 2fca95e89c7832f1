//! The identities seen recently, by event time: the operator's whole state.
//!
//! For each identity the state keeps runs: groups of occurrences whose event times chain with
//! gaps of at most `horizon`. An event time is within `horizon` of some occurrence of a run
//! exactly when it lies in `[earliest - horizon, latest + horizon]`, so three numbers per run
//! answer "was this identity seen within the horizon?" exactly, in any arrival order.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sluice_sdk::VersionedState;

/// Occurrences of one identity chained within the horizon of each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// Event time of the record of this run that passed: the first occurrence.
    pub kept: i64,
    /// Earliest event time of an occurrence (passed, dropped or rejected).
    pub earliest: i64,
    /// Latest event time of an occurrence.
    pub latest: i64,
}

impl Run {
    fn new(timestamp: i64) -> Run {
        Run { kept: timestamp, earliest: timestamp, latest: timestamp }
    }

    /// Whether `timestamp` is within `horizon` of an occurrence of this run.
    fn reaches(&self, timestamp: i64, horizon: i64) -> bool {
        self.earliest.saturating_sub(horizon) <= timestamp && timestamp <= self.latest.saturating_add(horizon)
    }

    /// The run holding the occurrences of both.
    fn joined(self, other: Run) -> Run {
        Run { kept: self.kept.min(other.kept), earliest: self.earliest.min(other.earliest), latest: self.latest.max(other.latest) }
    }
}

/// Recently seen identities, and how far the watermark has made the operator forget.
///
/// Bound: an identity is kept while one of its runs has an occurrence at or after
/// `watermark - horizon` (a run is forgotten once its latest occurrence is older), plus up to
/// a quarter of the horizon more until the next sweep removes it physically (see `forget_before`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Seen {
    identities: BTreeMap<String, Vec<Run>>,
    /// Runs whose latest occurrence is before this are forgotten, even before a sweep.
    forgotten_before: i64,
    /// The value of `forgotten_before` at the last sweep.
    swept_at: i64,
}

impl VersionedState for Seen {
    const VERSION: u32 = 1;
}

impl Default for Seen {
    fn default() -> Seen {
        Seen { identities: BTreeMap::new(), forgotten_before: i64::MIN, swept_at: i64::MIN }
    }
}

impl Seen {
    /// Records an occurrence of `identity` at `timestamp`. If it is within `horizon` of an
    /// occurrence already seen, returns the run it duplicates as it was before this one (its
    /// `kept` is the event time of the record that passed).
    ///
    /// An occurrence already older than the cutoff is compared but not remembered: the
    /// watermark has passed the time when it would have been forgotten.
    pub fn observe(&mut self, identity: &str, timestamp: i64, horizon: i64) -> Option<Run> {
        let forgotten_before = self.forgotten_before;
        // Look up by &str first: only a new identity allocates its key.
        let Some(runs) = self.identities.get_mut(identity) else {
            if timestamp >= forgotten_before {
                self.identities.insert(identity.to_owned(), vec![Run::new(timestamp)]);
            }
            return None;
        };
        runs.retain(|run| run.latest >= forgotten_before);
        let (run, reached) = take_reached_runs(runs, timestamp, horizon);
        if run.latest >= forgotten_before {
            let position = runs.partition_point(|other| other.earliest < run.earliest);
            runs.insert(position, run);
        }
        reached
    }

    /// Forgets the runs whose latest occurrence is before `cutoff` (the watermark minus the
    /// horizon): no record at or after the watermark is within the horizon of them.
    ///
    /// They are ignored at once but removed from memory by a sweep over every identity, done
    /// only when the cutoff has moved by `sweep_every` since the last one, so that frequent
    /// watermarks cost nothing per remembered identity.
    pub fn forget_before(&mut self, cutoff: i64, sweep_every: i64) {
        if cutoff <= self.forgotten_before {
            return;
        }
        self.forgotten_before = cutoff;
        if cutoff.saturating_sub(self.swept_at) >= sweep_every {
            self.identities.retain(|_, runs| {
                runs.retain(|run| run.latest >= cutoff);
                !runs.is_empty()
            });
            self.swept_at = cutoff;
        }
    }

    /// How many identities are held in memory.
    pub fn len(&self) -> usize {
        self.identities.len()
    }

    /// Whether no identity is held.
    pub fn is_empty(&self) -> bool {
        self.identities.is_empty()
    }
}

/// Removes from `runs` (sorted by `earliest`, more than the horizon apart) those that
/// `timestamp` reaches, and returns them joined with the occurrence, with the runs it reached
/// joined without it (what it duplicates). It may bridge two runs; if it reaches none it
/// starts a run of its own.
fn take_reached_runs(runs: &mut Vec<Run>, timestamp: i64, horizon: i64) -> (Run, Option<Run>) {
    let mut reached: Option<Run> = None;
    runs.retain(|run| {
        if !run.reaches(timestamp, horizon) {
            return true;
        }
        reached = Some(reached.map_or(*run, |joined| joined.joined(*run)));
        false
    });
    match reached {
        Some(run) => (run.joined(Run { kept: run.kept, earliest: timestamp, latest: timestamp }), Some(run)),
        None => (Run::new(timestamp), None),
    }
}
