//! `recommend`: real-time item-to-item recommendations ("also viewed", "also bought").
//!
//! ```toml
//! [operators.config]
//! user = "user_id"                    # dotted paths; ids are strings or integers
//! item = "item_id"
//! kind = "event_type"                 # the default when `kinds` is set
//! kinds = ["view", "cart", "order"]   # other kinds pass silently (counted); none = every record
//! history = 10                        # each user's most recent distinct items
//! max_interactions_per_user = 500     # down-sampling: a user's later interactions count no more
//! max_users = 50000                   # the least recently active users are forgotten beyond
//! max_items = 20000                   # new items are ignored beyond (counted)
//! max_cooccurrences_per_item = 200    # a full row forgets its weakest pair
//! top_n = 5
//! min_cooccurrence = 2                # pairs seen fewer times are not recommended
//! ```
//! The approach is that of Schelter, Celebi and Dunning, "Efficient Incremental Cooccurrence
//! Analysis for Item-Based Collaborative Filtering" (SSDBM 2019): co-occurrence counts are
//! updated incrementally from each user's recent items, heavy users are down-sampled so that
//! the work per interaction stays constant, and pairs are scored with Dunning's
//! log-likelihood ratio.
//!
//! An interaction of user `u` with item `i` not among `u`'s recent items counts `i` once with
//! each recent item, in both rows of the matrix, and emits, with the interaction's event time,
//! `{"user", "item", "recommendations": [{"item", "score", "cooccurrences"}, ...], "timestamp"}`:
//! up to `top_n` items seen with `i` at least `min_cooccurrence` times and more often than
//! chance, best score first (ties by the item id's JSON text). Interactions that update no count emit nothing:
//! repeating a recent item (which only refreshes its recency), a down-sampled user, an item
//! beyond `max_items`.
//!
//! Memory is bounded by the configuration: at most `max_items` items, each with its id
//! (at most [`ids::MAX_ID_BYTES`], stored twice) and a row of at most
//! `max_cooccurrences_per_item` cells of 8 bytes; at most `max_users` users, each with its id
//! (stored twice) and at most `history` items of 4 bytes; and, while a snapshot is taken (every
//! checkpoint, and every 64 calls for recovery), the encoded state beside it. Measured at the
//! defaults with every row full and ids of 120 bytes: 20000 × 200 cells, 50000 users, about
//! 62 MiB of memory with the snapshot, within the default 128 MiB `memory_limit` (100000 users
//! needed 113 MiB, too close to it). Raise `memory_limit` with `max_users` or `max_items` for
//! large catalogues: roughly 0.9 KiB per user and 2.5 KiB per item at these sizes, snapshot
//! included. Work per interaction is `2 × history` row updates of
//! at most `max_cooccurrences_per_item` cells each, plus one such row scored.

mod cooccurrence;
pub mod ids;
mod model;
mod scoring;
mod users;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sluice_sdk::serde_json::value::RawValue;
use sluice_sdk::{Batch, Distribution, FieldPath, Operator, Output, Record};

pub use cooccurrence::{Cell, Cooccurrences};
pub use model::{Limits, Model, Tally};
pub use scoring::{Related, llr, positively_associated, top_related};
pub use users::{UserHistory, Users};

/// The `config` table of a recommend operator.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecommendConfig {
    /// The user id field; default `user_id`.
    pub user: Option<FieldPath>,
    /// The item id field; default `item_id`.
    pub item: Option<FieldPath>,
    /// The interaction kind field, read only with `kinds`; default `event_type`.
    pub kind: Option<FieldPath>,
    /// The interaction kinds considered; absent: every record is an interaction.
    pub kinds: Option<Vec<String>>,
    /// Recent distinct items kept per user: a new item is paired with each of them.
    #[serde(default = "default_history")]
    pub history: usize,
    /// Interactions per user that update counts (down-sampling of heavy users).
    #[serde(default = "default_max_interactions_per_user")]
    pub max_interactions_per_user: u32,
    /// Users remembered; the least recently active are forgotten beyond.
    #[serde(default = "default_max_users")]
    pub max_users: usize,
    /// Items tracked; interactions with new items are ignored beyond.
    #[serde(default = "default_max_items")]
    pub max_items: u32,
    /// Partners kept per item; a full row forgets its weakest pair.
    #[serde(default = "default_max_cooccurrences_per_item")]
    pub max_cooccurrences_per_item: usize,
    /// Recommendations per output record, at most.
    #[serde(default = "default_top_n")]
    pub top_n: usize,
    /// Co-occurrences a pair needs to be recommended.
    #[serde(default = "default_min_cooccurrence")]
    pub min_cooccurrence: u32,
}

fn default_history() -> usize {
    10
}
fn default_max_interactions_per_user() -> u32 {
    500
}
fn default_max_users() -> usize {
    50_000
}
fn default_max_items() -> u32 {
    20_000
}
fn default_max_cooccurrences_per_item() -> usize {
    200
}
fn default_top_n() -> usize {
    5
}
fn default_min_cooccurrence() -> u32 {
    2
}

/// A running recommender.
pub struct Recommend {
    user: FieldPath,
    item: FieldPath,
    /// Fields read from each record, in one pass: user, item, then the kind if filtered.
    lookups: Vec<FieldPath>,
    kinds: Option<BTreeSet<String>>,
    limits: Limits,
    top_n: usize,
    min_cooccurrence: u32,
    model: Model,
}

impl Operator for Recommend {
    type Config = RecommendConfig;

    fn init(config: RecommendConfig) -> Result<Self, String> {
        let limits = Limits {
            history: config.history,
            max_interactions_per_user: config.max_interactions_per_user,
            max_users: config.max_users,
            max_items: config.max_items,
            max_cooccurrences_per_item: config.max_cooccurrences_per_item,
        };
        check_limits(&limits, config.top_n, config.min_cooccurrence)?;
        let kinds = match (config.kind.is_some(), config.kinds) {
            (_, Some(kinds)) if kinds.is_empty() => return Err("`kinds` is empty: list the interaction kinds to count".into()),
            (_, Some(kinds)) => Some(kinds.into_iter().collect::<BTreeSet<_>>()),
            (true, None) => return Err("`kind` is set but `kinds` is not: list the interaction kinds to count".into()),
            (false, None) => None,
        };
        let user = path_or(config.user, "user_id")?;
        let item = path_or(config.item, "item_id")?;
        if user == item {
            return Err(format!("`user` and `item` are both {user}: a user's items would be the user; name two different fields"));
        }
        let mut lookups = vec![user.clone(), item.clone()];
        if kinds.is_some() {
            lookups.push(path_or(config.kind, "event_type")?);
        }
        let (top_n, min_cooccurrence) = (config.top_n, config.min_cooccurrence);
        Ok(Recommend { user, item, lookups, kinds, limits, top_n, min_cooccurrence, model: Model::default() })
    }

    fn distribution(&self) -> Distribution {
        // Co-occurrence counts span every user: the whole stream meets one instance.
        Distribution::Single
    }

    fn process(&mut self, batch: &Batch, out: &mut Output) {
        let mut tally = Tally::default();
        for record in batch.iter() {
            if let Err(reason) = self.interact(record, out, &mut tally) {
                out.reject(record.index(), reason);
            }
        }
        tally.publish();
        sluice_sdk::host::gauge_set("users_tracked", self.model.users().len() as f64);
        sluice_sdk::host::gauge_set("items_tracked", self.model.cooccurrences().len() as f64);
    }

    sluice_sdk::state_in!(model);
}

/// Refuses zero limits: with any of them the operator would count or recommend nothing.
fn check_limits(limits: &Limits, top_n: usize, min_cooccurrence: u32) -> Result<(), String> {
    let at_least_one = [
        ("history", limits.history as u64),
        ("max_interactions_per_user", u64::from(limits.max_interactions_per_user)),
        ("max_users", limits.max_users as u64),
        ("max_items", u64::from(limits.max_items)),
        ("max_cooccurrences_per_item", limits.max_cooccurrences_per_item as u64),
        ("top_n", top_n as u64),
        ("min_cooccurrence", u64::from(min_cooccurrence)),
    ];
    if let Some((name, _)) = at_least_one.iter().find(|(_, value)| *value == 0) {
        return Err(format!("`{name}` must be at least 1"));
    }
    check_addressable(limits)
}

/// Most bytes a Wasm instance can address (32-bit linear memory), whatever its `memory_limit`.
const ADDRESSABLE_BYTES: u64 = 4 << 30;

/// Refuses limits whose state could not fit in any instance at worst: every item's row full,
/// every user's history full, ids of the longest length, in memory and once more in a snapshot.
/// Below that, `memory_limit` is what bounds it (the plugin cannot see it).
fn check_addressable(limits: &Limits) -> Result<(), String> {
    let id = 2 * ids::MAX_ID_BYTES as u64;
    let items = u64::from(limits.max_items).saturating_mul((limits.max_cooccurrences_per_item as u64).saturating_mul(8).saturating_add(id));
    let users = (limits.max_users as u64).saturating_mul((limits.history as u64).saturating_mul(4).saturating_add(id));
    let worst = items.saturating_add(users).saturating_mul(2);
    if worst <= ADDRESSABLE_BYTES {
        return Ok(());
    }
    Err(format!(
        "max_items × max_cooccurrences_per_item and max_users × history could take {} GiB at worst, snapshot included: beyond \
         the 4 GiB a Wasm instance can address; lower them (the defaults take about 62 MiB)",
        worst.div_ceil(1 << 30)
    ))
}

fn path_or(path: Option<FieldPath>, default: &str) -> Result<FieldPath, String> {
    path.map_or_else(|| FieldPath::parse(default), Ok)
}

/// One output record; ids are repeated as canonical JSON.
#[derive(Serialize)]
struct RecommendationRecord<'a> {
    user: Option<&'a RawValue>,
    item: Option<&'a RawValue>,
    recommendations: Vec<RecommendedItem<'a>>,
    timestamp: i64,
}

#[derive(Serialize)]
struct RecommendedItem<'a> {
    item: Option<&'a RawValue>,
    score: f64,
    cooccurrences: u32,
}

impl Recommend {
    /// Applies one record; emits recommendations if it updated counts. An error rejects it.
    fn interact(&mut self, record: Record<'_>, out: &mut Output, tally: &mut Tally) -> Result<(), String> {
        let fields = record.raw_fields(&self.lookups)?;
        let field = |position: usize| fields.get(position).copied().flatten();
        if let Some(kinds) = &self.kinds {
            // Filtered before the ids are checked: other kinds of events may lack them.
            if !ids::read_kind(field(2)).is_some_and(|kind| kinds.contains(kind.as_ref())) {
                tally.skipped_kinds += 1;
                return Ok(());
            }
        }
        let user = ids::read_id(&self.user, field(0))?;
        let item = ids::read_id(&self.item, field(1))?;
        let Some(index) = self.model.observe(&user, &item, &self.limits, tally) else { return Ok(()) };
        let matrix = self.model.cooccurrences();
        let recommendations = top_related(matrix, index, self.top_n, self.min_cooccurrence)
            .into_iter()
            .map(|related| RecommendedItem {
                item: ids::id_json(matrix.id(related.partner)),
                score: related.score,
                cooccurrences: related.cooccurrences,
            })
            .collect();
        let timestamp = record.timestamp();
        let result = RecommendationRecord { user: ids::id_json(&user), item: ids::id_json(&item), recommendations, timestamp };
        out.emit_json(&result, timestamp);
        Ok(())
    }

    /// The state, for inspection (tests, benchmarks).
    pub fn model(&self) -> &Model {
        &self.model
    }
}

sluice_sdk::export_operator!(Recommend);

#[cfg(test)]
mod tests;
