//! Restores: a mostly filled space comes back exactly, into the block `init` allocated; what
//! the header records about `standardize`, and version 1 states, which did not record it; a
//! lower `max_key_weights` keeps each key's largest weights.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use sluice_sdk::serde_json::{Map, Value, json};
use sluice_sdk::testing::Harness;
use sluice_sdk::{Operator, State};

use super::state::{run, stream};
use super::{learner, planted_classification, predictions};
use crate::state::LearnState;
use crate::{Learn, Model, OptimizerKind, Task};

/// Records of 20 categorical fields whose values never repeat: 20 new features each.
fn distinct_features(numbers: std::ops::Range<usize>) -> Vec<(Value, i64)> {
    numbers
        .map(|n| {
            let mut record: Map<String, Value> = (0..20).map(|field| (format!("c{field}"), json!(n * 20 + field))).collect();
            record.insert("y".into(), json!(n % 3 == 0));
            (Value::Object(record), n as i64)
        })
        .collect()
}

#[test]
fn a_mostly_filled_space_snapshots_and_restores_exactly_into_the_same_block() {
    for optimizer in ["sgd", "ftrl"] {
        let fields: Vec<String> = (0..20).map(|field| format!("c{field}")).collect();
        let config = json!({"label": "y", "categorical": fields, "hash_bits": 16, "optimizer": optimizer});
        let mut learn = learner(config.clone());
        for chunk in distinct_features(0..8_000).chunks(1_000) {
            learn.process_json(chunk);
        }
        let weights = learn.operator().state().global.nonzero_weights();
        // 160 000 features hashed into 65 536 slots fill 1 − e^(−160000/65536) ≈ 91 % of them.
        assert!(weights > 57_000, "{optimizer}: {weights} of 65 536 slots");
        let mut restored = learner(config);
        let block = restored.operator().state().global.block_address();
        restored.operator().restore(learn.snapshot()).expect("restores");
        assert_eq!(restored.operator().state(), learn.operator().state(), "{optimizer}");
        assert_eq!(restored.operator().state().global.block_address(), block, "{optimizer}: decoded into the block init allocated");
        let more = distinct_features(7_500..8_500);
        assert_eq!(predictions(&restored.process_json(&more).batch), predictions(&learn.process_json(&more).batch), "{optimizer}");
        assert_eq!(restored.operator().state(), learn.operator().state(), "{optimizer}");
    }
}

/// The header of version 1, without `standardize`.
#[derive(Serialize)]
struct HeaderV1<'a> {
    task: Task,
    hash_bits: u32,
    optimizer: OptimizerKind,
    numeric: &'a [String],
    key: &'a [String],
}

/// The layout of version 1.
#[derive(Serialize)]
struct LearnStateV1<'a> {
    header: HeaderV1<'a>,
    global: &'a Model,
    keyed: &'a BTreeMap<String, Model>,
    global_changed: bool,
    changed_keys: &'a BTreeSet<String>,
    latest_timestamp: Option<i64>,
}

/// `state` as version 1 of the plugin wrote it.
fn as_version_1(state: &LearnState) -> State {
    let header = &state.header;
    let old = LearnStateV1 {
        header: HeaderV1 {
            task: header.task,
            hash_bits: header.hash_bits,
            optimizer: header.optimizer,
            numeric: &header.numeric,
            key: &header.key,
        },
        global: &state.global,
        keyed: &state.keyed,
        global_changed: state.global_changed,
        changed_keys: &state.changed_keys,
        latest_timestamp: state.latest_timestamp,
    };
    State { version: 1, bytes: postcard::to_allocvec(&old).expect("encodes") }
}

#[test]
fn a_state_learnt_with_another_standardize_is_refused_with_both_values() {
    let config = |standardize: bool| json!({"label": "y", "numeric": ["x1", "x2"], "standardize": standardize, "hash_bits": 12});
    for (learnt, now) in [(true, false), (false, true)] {
        let mut learn = learner(config(learnt));
        learn.process_json(&planted_classification(200, 4));
        assert_eq!(learn.operator().state().header.standardize, Some(learnt));
        let mut other = learner(config(now));
        let refusal = other.operator().restore(learn.snapshot()).err().unwrap_or_default();
        let expected = format!("the state was learnt with standardize = {learnt} but the configuration says {now}");
        assert!(refusal.contains(&expected) && refusal.contains(&format!("keep standardize = {learnt}")), "{refusal}");
        assert_eq!(other.operator().state(), learner(config(now)).operator().state(), "untouched");
    }
}

#[test]
fn a_version_1_state_is_migrated_and_its_unknown_standardize_accepted() {
    let config = json!({
        "label": "y", "numeric": ["x1", "x2"], "categorical": ["color"], "standardize": true, "key": ["user"], "min_key_examples": 20,
    });
    let records = stream(2_000);
    let (first_half, second_half) = records.split_at(1_000);
    let mut uninterrupted = learner(config.clone());
    run(&mut uninterrupted, first_half);
    let old = as_version_1(uninterrupted.operator().state());
    let (expected, expected_reports) = run(&mut uninterrupted, second_half);
    let mut restored = Harness::<Learn>::restored(config.clone(), old.clone()).expect("version 1 restores");
    assert_eq!(restored.operator().state().header.standardize, Some(true), "recorded from now on");
    let (seen, seen_reports) = run(&mut restored, second_half);
    assert_eq!((seen, seen_reports), (expected, expected_reports), "continues exactly");
    assert_eq!(restored.operator().state(), uninterrupted.operator().state());
    let mut unstandardized = config;
    unstandardized["standardize"] = json!(false);
    let taken = Harness::<Learn>::restored(unstandardized, old.clone()).expect("standardize unknown: taken on trust");
    assert_eq!(taken.snapshot().version, 2);
    assert_eq!(old.decode::<LearnState>().map(|state| state.header.standardize), Ok(None), "the SDK's decode migrates too");
}

#[test]
fn a_restore_under_a_lower_max_key_weights_keeps_each_keys_largest_weights() {
    let config = json!({"label": "y", "numeric": ["x1", "x2"], "categorical": ["color"], "key": ["user"], "hash_bits": 12});
    let mut learn = learner(config.clone());
    run(&mut learn, &stream(600));
    let state = learn.operator().state().clone();
    assert!(state.keyed.values().all(|model| model.nonzero_weights() == 5), "x1, x2 and three colours");
    let mut lower = config;
    lower["max_key_weights"] = json!(2);
    let mut restored = Harness::<Learn>::restored(lower, learn.snapshot()).expect("restores");
    let restored = restored.operator().state();
    assert_eq!(restored.global, state.global, "the global model is not bounded");
    for (key, model) in &restored.keyed {
        let mut largest = state.keyed[key].weights();
        largest.sort_by(|(_, a), (_, b)| b.abs().total_cmp(&a.abs()));
        largest.truncate(2);
        largest.sort_by_key(|(index, _)| *index);
        assert_eq!(model.weights(), largest, "{key}");
    }
}

#[test]
fn relocating_a_restored_state_copies_all_but_the_global_weights() {
    let mut learn = learner(json!({"label": "y", "numeric": ["x1", "x2"], "categorical": ["color"], "key": ["user"], "hash_bits": 12}));
    run(&mut learn, &stream(300));
    let learnt = learn.operator().state().clone();
    let mut state = learnt.clone();
    let block = state.global.block_address();
    state.relocate(usize::MAX);
    assert_eq!((&state, state.global.block_address()), (&learnt, block), "the same state, the global weights moved, not copied");
    state.relocate(0);
    assert_eq!((&state, state.global.block_address()), (&learnt, block), "no room: left as it is");
}
