//! Native tests over long deterministic streams: bounds, batch-size independence, recovery.

use proptest::prelude::*;
use sluice_sdk::serde_json::{Value, json};
use sluice_sdk::testing::{Harness, json_values};

use crate::Recommend;

/// Small limits, so that every cap is reached within a few thousand interactions.
fn tight_config() -> Value {
    json!({
        "kinds": ["view", "cart"],
        "history": 4,
        "max_interactions_per_user": 30,
        "max_users": 40,
        "max_items": 60,
        "max_cooccurrences_per_item": 8,
        "top_n": 3,
        "min_cooccurrence": 2,
    })
}

/// SplitMix64: a fixed, well-mixed sequence from a seed.
fn split_mix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `count` interactions of 100 users on 150 items (small ids more popular), with some other
/// kinds and some invalid records.
fn stream(seed: u64, count: usize) -> Vec<(Value, i64)> {
    let mut state = seed;
    (0..count)
        .map(|position| {
            let (a, b, c) = (split_mix(&mut state), split_mix(&mut state), split_mix(&mut state));
            let user = format!("u{}", a % 100);
            let item = (b % 150).min(c % 150);
            let kind = ["view", "view", "cart", "order"][(a >> 40) as usize % 4];
            let record = match c % 50 {
                0 => json!({"user_id": user, "event_type": kind}),
                1 => json!({"user_id": user, "item_id": item, "event_type": kind}),
                _ => json!({"user_id": user, "item_id": format!("i{item}"), "event_type": kind}),
            };
            (record, position as i64)
        })
        .collect()
}

/// What a run produced: output records with their event times, and rejections with their
/// position in the whole stream.
#[derive(Debug, PartialEq)]
struct Run {
    emitted: Vec<(Value, i64)>,
    rejected: Vec<(usize, String)>,
}

/// Runs `records` in batches of `batch_size`.
fn run(op: &mut Harness<Recommend>, records: &[(Value, i64)], batch_size: usize) -> Run {
    let (mut emitted, mut rejected) = (Vec::new(), Vec::new());
    for (number, chunk) in records.chunks(batch_size).enumerate() {
        let out = op.process_json(chunk);
        let times = out.batch.iter().map(|record| record.timestamp());
        emitted.extend(json_values(&out.batch).into_iter().zip(times));
        rejected.extend(out.rejected.into_iter().map(|rejection| (number * batch_size + rejection.index as usize, rejection.reason)));
    }
    Run { emitted, rejected }
}

#[test]
fn state_stays_within_the_configured_bounds_on_a_long_stream() {
    let mut op = Harness::<Recommend>::new(tight_config()).unwrap();
    let Run { emitted, rejected } = run(&mut op, &stream(7, 20_000), 500);
    let model = op.operator().model();
    assert_eq!(model.users().len(), 40);
    assert_eq!(model.cooccurrences().len(), 60);
    assert_eq!(model.cooccurrences().longest_row(), 8);
    assert_eq!(model.users().longest_history(), 4);
    assert!(!rejected.is_empty() && emitted.len() > 1_000, "{} rejected, {} emitted", rejected.len(), emitted.len());
    let mut recommended = 0;
    for (record, time) in &emitted {
        assert_eq!(record["timestamp"], json!(time));
        let recommendations = record["recommendations"].as_array().unwrap();
        assert!(recommendations.len() <= 3);
        let scores: Vec<f64> = recommendations.iter().map(|related| related["score"].as_f64().unwrap()).collect();
        assert!(scores.windows(2).all(|pair| pair[0] >= pair[1]), "{record}");
        assert!(recommendations.iter().all(|related| related["cooccurrences"].as_u64().unwrap() >= 2 && related["item"] != record["item"]));
        recommended += recommendations.len();
    }
    assert!(recommended > 1_000, "the stream should produce recommendations, got {recommended}");
    // The snapshot obeys the limits too. Worst-case postcard sizes (u32 5 bytes, u64 10, ids
    // of at most 7 bytes and their length): an item is its index entry, id, marginal and 8
    // cells; a user its id, 4 recent items, budget and clock, and its recency entry.
    let (item_bytes, user_bytes) = ((8 + 5) + (8 + 10 + 1 + 8 * (5 + 5)), (8 + 1 + 4 * 5 + 5 + 10) + (10 + 8));
    assert!(op.snapshot().bytes.len() <= 60 * item_bytes + 40 * user_bytes + 64, "{}", op.snapshot().bytes.len());
}

#[test]
fn snapshot_and_restore_continue_identically() {
    let records = stream(11, 3_000);
    let (first, rest) = records.split_at(1_700);
    let mut op = Harness::<Recommend>::new(tight_config()).unwrap();
    run(&mut op, first, 100);
    let mut restored = Harness::<Recommend>::restored(tight_config(), op.snapshot()).unwrap();
    assert_eq!(restored.operator().model(), op.operator().model());
    let expected = run(&mut op, rest, 100);
    assert_eq!(run(&mut restored, rest, 100), expected);
    assert_eq!(restored.snapshot(), op.snapshot());
    let wrong = sluice_sdk::State { version: 9, bytes: Vec::new() };
    assert!(Harness::<Recommend>::restored(tight_config(), wrong).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn outputs_do_not_depend_on_batch_size(batch_size in 1usize..200, seed in 0u64..1_000) {
        let records = stream(seed, 1_500);
        let mut whole = Harness::<Recommend>::new(tight_config()).unwrap();
        let mut split = Harness::<Recommend>::new(tight_config()).unwrap();
        prop_assert_eq!(run(&mut split, &records, batch_size), run(&mut whole, &records, records.len()));
        prop_assert_eq!(split.snapshot(), whole.snapshot());
    }
}
