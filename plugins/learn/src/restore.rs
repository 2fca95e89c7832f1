//! Reading a snapshot. The header comes first, so that a state learnt under other settings is
//! refused before anything else is decoded; then the models, the global model's weights
//! straight into the dense block of the model they replace (see `vector`), so that a restore
//! needs that block and the snapshot's bytes, and nothing in proportion to the weights besides.
//!
//! Versions: 2 (this one), and 1, whose header did not record `standardize` (read as unknown).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use sluice_sdk::{State, VersionedState};

use crate::config::{OptimizerKind, Settings, Task};
use crate::model::{Model, ModelSeed, ModelTarget};
use crate::state::{Header, LearnState};

impl VersionedState for LearnState {
    const VERSION: u32 = 2;

    fn migrate(version: u32, bytes: &[u8]) -> Result<Self, String> {
        decode(version, bytes, ModelTarget::Any)
    }
}

impl<'de> Deserialize<'de> for LearnState {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        StateSeed { version: LearnState::VERSION, global: ModelTarget::Any }.deserialize(deserializer)
    }
}

/// The state in `state`, taken over under `settings` (see [`LearnState::adopt`]); its global
/// weights are decoded into the dense block of `replaced`, the global model it replaces, which
/// is consumed either way.
pub fn restore(state: &State, settings: &Settings, replaced: Model) -> Result<LearnState, String> {
    let header = header(state.version, &state.bytes)?;
    if let Some(refusal) = header.refusal(&Header::of(settings)) {
        return Err(refusal);
    }
    decode(state.version, &state.bytes, ModelTarget::Block(replaced))?.adopt(settings)
}

/// The header of a state of `version`, decoded alone.
fn header(version: u32, bytes: &[u8]) -> Result<Header, String> {
    let decoded = match version {
        1 => postcard::take_from_bytes::<HeaderV1>(bytes).map(|(header, _)| Header::from(header)),
        2 => postcard::take_from_bytes::<Header>(bytes).map(|(header, _)| header),
        _ => return Err(unknown_version(version)),
    };
    decoded.map_err(corrupt)
}

/// The whole state of `version`, the global model's weights decoded into `global`.
fn decode(version: u32, bytes: &[u8], global: ModelTarget) -> Result<LearnState, String> {
    if !matches!(version, 1 | 2) {
        return Err(unknown_version(version));
    }
    StateSeed { version, global }.deserialize(&mut postcard::Deserializer::from_bytes(bytes)).map_err(corrupt)
}

fn unknown_version(version: u32) -> String {
    format!("cannot read state version {version}: this plugin reads version {} (and version 1)", LearnState::VERSION)
}

fn corrupt(error: postcard::Error) -> String {
    format!("state is corrupt or of another layout: {error}")
}

/// The header of version 1: without `standardize`.
#[derive(Deserialize)]
struct HeaderV1 {
    task: Task,
    hash_bits: u32,
    optimizer: OptimizerKind,
    numeric: Vec<String>,
    key: Vec<String>,
}

impl From<HeaderV1> for Header {
    fn from(old: HeaderV1) -> Header {
        Header { task: old.task, hash_bits: old.hash_bits, optimizer: old.optimizer, numeric: old.numeric, key: old.key, standardize: None }
    }
}

/// Decodes a [`LearnState`] of `version`, field by field in its order.
struct StateSeed {
    version: u32,
    global: ModelTarget,
}

const FIELDS: &[&str] = &["header", "global", "keyed", "global_changed", "changed_keys", "latest_timestamp"];

impl<'de> DeserializeSeed<'de> for StateSeed {
    type Value = LearnState;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<LearnState, D::Error> {
        deserializer.deserialize_struct("LearnState", FIELDS, self)
    }
}

impl<'de> Visitor<'de> for StateSeed {
    type Value = LearnState;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a learn state")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<LearnState, A::Error> {
        let missing = |position: usize| A::Error::invalid_length(position, &"a learn state");
        let header = match self.version {
            1 => sequence.next_element::<HeaderV1>()?.map(Header::from),
            _ => sequence.next_element::<Header>()?,
        };
        let header = header.ok_or_else(|| missing(0))?;
        let global = sequence.next_element_seed(ModelSeed { target: self.global })?.ok_or_else(|| missing(1))?;
        let keyed = sequence.next_element_seed(KeyedSeed)?.ok_or_else(|| missing(2))?;
        let global_changed = sequence.next_element()?.ok_or_else(|| missing(3))?;
        let changed_keys: BTreeSet<String> = sequence.next_element()?.ok_or_else(|| missing(4))?;
        let latest_timestamp = sequence.next_element()?.ok_or_else(|| missing(5))?;
        Ok(LearnState { header, global, keyed, global_changed, changed_keys, latest_timestamp })
    }
}

/// The per-key models, each sparse.
struct KeyedSeed;

impl<'de> DeserializeSeed<'de> for KeyedSeed {
    type Value = BTreeMap<String, Model>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for KeyedSeed {
    type Value = BTreeMap<String, Model>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("the per-key models")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut keyed = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let model = map.next_value_seed(ModelSeed { target: ModelTarget::Sparse })?;
            keyed.insert(key, model);
        }
        Ok(keyed)
    }
}
