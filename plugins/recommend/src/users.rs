//! Users' recent items and interaction budgets, forgetting the least recently active users.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What is kept of one user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserHistory {
    /// The most recent distinct items (indexes), oldest first.
    recent: Vec<u32>,
    /// Interactions that updated counts: the down-sampling budget spent.
    counted: u32,
    /// When the user was last active, on the `Users` clock: its key in `by_recency`.
    last_active: u64,
}

impl UserHistory {
    /// The recent items, oldest first.
    pub fn recent(&self) -> &[u32] {
        &self.recent
    }

    /// Interactions counted so far.
    pub fn counted(&self) -> u32 {
        self.counted
    }

    /// Whether `item` is among the recent items.
    pub fn contains(&self, item: u32) -> bool {
        self.recent.contains(&item)
    }

    /// Makes `item` (already recent) the most recent one.
    pub fn refresh(&mut self, item: u32) {
        if let Some(position) = self.recent.iter().position(|recent| *recent == item) {
            self.recent.remove(position);
            self.recent.push(item);
        }
    }

    /// Records a counted interaction with a new `item`, keeping at most `capacity` items.
    pub fn push(&mut self, item: u32, capacity: usize) {
        // A loop rather than one removal: a restored state may come from a larger capacity.
        while self.recent.len() >= capacity.max(1) {
            self.recent.remove(0);
        }
        self.recent.push(item);
        self.counted = self.counted.saturating_add(1);
    }
}

/// Every remembered user, and their order of activity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Users {
    /// Canonical user id → history.
    by_id: BTreeMap<String, UserHistory>,
    /// Last activity → user id, least recent first: the eviction order.
    by_recency: BTreeMap<u64, String>,
    /// Counts activities; a logical clock, so that eviction depends on the input alone.
    clock: u64,
}

impl Users {
    /// The history of `user`, if remembered.
    pub fn get(&self, user: &str) -> Option<&UserHistory> {
        self.by_id.get(user)
    }

    /// Marks `user` as the most recently active and returns its history, remembering a new
    /// user after forgetting the least recently active ones beyond `max_users`. Also returns
    /// how many users were forgotten.
    pub fn touch(&mut self, user: &str, max_users: usize) -> (Option<&mut UserHistory>, u64) {
        self.clock = self.clock.saturating_add(1);
        let mut forgotten = 0;
        if let Some(history) = self.by_id.get_mut(user) {
            // Reuses the id moved out of the old position: no allocation per interaction.
            let id = self.by_recency.remove(&history.last_active).unwrap_or_else(|| user.to_owned());
            history.last_active = self.clock;
            self.by_recency.insert(self.clock, id);
        } else {
            while self.by_id.len() >= max_users.max(1) {
                let Some((_, oldest)) = self.by_recency.pop_first() else { break };
                self.by_id.remove(&oldest);
                forgotten += 1;
            }
            self.by_recency.insert(self.clock, user.to_owned());
            self.by_id.insert(user.to_owned(), UserHistory { last_active: self.clock, ..UserHistory::default() });
        }
        (self.by_id.get_mut(user), forgotten)
    }

    /// How many users are remembered.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether no user is remembered.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The number of items of the longest history.
    pub fn longest_history(&self) -> usize {
        self.by_id.values().map(|history| history.recent.len()).max().unwrap_or(0)
    }
}
