//! The operator's state, and how one interaction updates it (Schelter et al.'s update rule).

use serde::{Deserialize, Serialize};
use sluice_sdk::VersionedState;

use crate::{Cooccurrences, Users};

/// The bounds of the state, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Recent distinct items kept per user.
    pub history: usize,
    /// Interactions per user that update counts; later ones are ignored (down-sampling).
    pub max_interactions_per_user: u32,
    /// Users remembered; the least recently active are forgotten beyond.
    pub max_users: usize,
    /// Items tracked; new items are ignored beyond.
    pub max_items: u32,
    /// Cells per item row; a full row forgets its weakest cell.
    pub max_cooccurrences_per_item: usize,
}

/// What happened to the interactions of one batch, for the operator's metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub counted: u64,
    pub repeated: u64,
    pub downsampled: u64,
    pub untracked_items: u64,
    pub skipped_kinds: u64,
    pub forgotten_users: u64,
    pub forgotten_cooccurrences: u64,
}

impl Tally {
    /// Adds the non-zero counts to the operator's counters.
    pub fn publish(&self) {
        let counters = [
            ("interactions_counted", self.counted),
            ("interactions_repeated", self.repeated),
            ("interactions_downsampled", self.downsampled),
            ("items_untracked", self.untracked_items),
            ("kinds_skipped", self.skipped_kinds),
            ("users_forgotten", self.forgotten_users),
            ("cooccurrences_forgotten", self.forgotten_cooccurrences),
        ];
        for (name, delta) in counters {
            if delta > 0 {
                sluice_sdk::host::counter_add(name, delta);
            }
        }
    }
}

/// The whole state: the co-occurrence matrix and the users' histories.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Model {
    cooccurrences: Cooccurrences,
    users: Users,
}

impl VersionedState for Model {
    const VERSION: u32 = 1;
}

impl Model {
    /// Applies the interaction of `user` with `item` (canonical ids). Returns the item's index
    /// when the interaction updated counts, which is when it deserves recommendations.
    pub fn observe(&mut self, user: &str, item: &str, limits: &Limits, tally: &mut Tally) -> Option<u32> {
        if let Some(history) = self.users.get(user) {
            if let Some(index) = self.cooccurrences.find(item).filter(|index| history.contains(*index)) {
                // Counting the pair again would reward repeated views of the same items.
                self.users.touch(user, limits.max_users).0?.refresh(index);
                tally.repeated += 1;
                return None;
            }
            if history.counted() >= limits.max_interactions_per_user {
                // Still touched: forgetting a heavy user would reset its budget.
                self.users.touch(user, limits.max_users);
                tally.downsampled += 1;
                return None;
            }
        }
        let Some(index) = self.cooccurrences.find_or_add(item, limits.max_items) else {
            tally.untracked_items += 1;
            return None;
        };
        let (history, forgotten_users) = self.users.touch(user, limits.max_users);
        tally.forgotten_users += forgotten_users;
        let history = history?;
        for &partner in history.recent() {
            tally.forgotten_cooccurrences += self.cooccurrences.add_pair(index, partner, limits.max_cooccurrences_per_item);
        }
        history.push(index, limits.history);
        tally.counted += 1;
        Some(index)
    }

    /// The co-occurrence matrix.
    pub fn cooccurrences(&self) -> &Cooccurrences {
        &self.cooccurrences
    }

    /// The users' histories.
    pub fn users(&self) -> &Users {
        &self.users
    }

    /// The count kept in cell `C[a, b]`, by canonical item ids (0 if either is untracked).
    pub fn count(&self, a: &str, b: &str) -> u32 {
        match (self.cooccurrences.find(a), self.cooccurrences.find(b)) {
            (Some(a), Some(b)) => self.cooccurrences.count(a, b),
            _ => 0,
        }
    }

    /// The recent items of `user`, oldest first, as canonical ids.
    pub fn history(&self, user: &str) -> Vec<&str> {
        let recent = self.users.get(user).map_or(&[][..], |history| history.recent());
        recent.iter().map(|item| self.cooccurrences.id(*item)).collect()
    }
}
