//! Native tests of counting, ranking, the caps and the configuration.

mod streams;

use sluice_sdk::host::native_metrics;
use sluice_sdk::serde_json::{Value, json};
use sluice_sdk::testing::{Harness, json_values};

use crate::{Recommend, llr};

/// A config with the given keys over the defaults.
fn harness(config: Value) -> Harness<Recommend> {
    Harness::<Recommend>::new(config).unwrap()
}

/// Interactions `(user, item)` with event times 0, 1, 2, ...
fn interactions(pairs: &[(&str, &str)]) -> Vec<(Value, i64)> {
    pairs.iter().enumerate().map(|(time, (user, item))| (json!({"user_id": user, "item_id": item}), time as i64)).collect()
}

/// A string id as canonical JSON text, the form the model is queried with.
fn id(text: &str) -> String {
    json!(text).to_string()
}

/// The output records, scores rounded: JSON parsing may move a float by one unit in the last place.
fn outputs(batch: &sluice_sdk::Batch) -> Vec<Value> {
    let mut records = json_values(batch);
    for related in records.iter_mut().filter_map(|record| record["recommendations"].as_array_mut()).flatten() {
        related["score"] = json!(rounded(related["score"].as_f64().unwrap_or(f64::NAN)));
    }
    records
}

/// A score rounded as [`outputs`] does.
fn rounded(score: f64) -> f64 {
    (score * 1e9).round() / 1e9
}

fn counter(name: &str) -> u64 {
    native_metrics().counters.get(name).copied().unwrap_or(0)
}

#[test]
fn three_users_give_hand_checked_counts_and_records() {
    let mut op = harness(json!({}));
    let out = op.process_json(&interactions(&[("u1", "a"), ("u1", "b"), ("u1", "c"), ("u2", "a"), ("u2", "b"), ("u3", "b"), ("u3", "c")]));
    assert!(out.rejected.is_empty());
    let model = op.operator().model();
    let (a, b, c) = (id("a"), id("b"), id("c"));
    assert_eq!((model.count(&a, &b), model.count(&b, &a)), (2, 2));
    assert_eq!((model.count(&a, &c), model.count(&b, &c), model.count(&c, &b)), (1, 2, 2));
    let matrix = model.cooccurrences();
    let observations: Vec<u64> = [&a, &b, &c].iter().filter_map(|item| matrix.find(item)).map(|item| matrix.observations(item)).collect();
    assert_eq!(observations, vec![3, 4, 3]);
    assert_eq!(matrix.total(), 10, "five pairs, each counted in two rows");

    let records = outputs(&out.batch);
    assert_eq!(records.len(), 7, "every interaction updated counts");
    assert_eq!(records[0], json!({"user": "u1", "item": "a", "recommendations": [], "timestamp": 0}));
    // After u2 views b: C[b,a] = 2, rows a and b sum to 3, total 8; C[b,c] = 1 is below 2.
    assert_eq!(records[4]["recommendations"], json!([{"item": "a", "score": rounded(llr(2, 1, 1, 4)), "cooccurrences": 2}]));
    // k11 = C[c,b] = 2, k12 = 3 - 2, k21 = 4 - 2, k22 = 10 - 3 - 4 + 2.
    let last = json!({"user": "u3", "item": "c", "recommendations": [{"item": "b", "score": rounded(llr(2, 1, 2, 5)), "cooccurrences": 2}], "timestamp": 6});
    assert_eq!(records[6], last);
    assert!((llr(2, 1, 2, 5) - 1.2653741).abs() < 1e-6);
    assert_eq!(out.batch.iter().map(|record| record.timestamp()).collect::<Vec<_>>(), (0..7).collect::<Vec<_>>());
}

#[test]
fn recommendations_are_best_first_with_ties_by_item_id() {
    let mut op = harness(json!({"top_n": 2, "min_cooccurrence": 1}));
    // x is seen with p three times, then once with r and once with q (r entered its row first).
    let out = op.process_json(&interactions(&[
        ("u1", "p"),
        ("u1", "x"),
        ("u2", "p"),
        ("u2", "x"),
        ("u3", "p"),
        ("u3", "x"),
        ("u4", "r"),
        ("u4", "x"),
        ("u5", "q"),
        ("u5", "x"),
    ]));
    let last = outputs(&out.batch).pop().unwrap();
    let expected = json!([
        {"item": "p", "score": rounded(llr(3, 2, 0, 5)), "cooccurrences": 3},
        {"item": "q", "score": rounded(llr(1, 4, 0, 5)), "cooccurrences": 1},
    ]);
    assert_eq!(last["recommendations"], expected, "q and r tie; q wins by id, and only top_n = 2 are kept");
}

#[test]
fn history_keeps_the_most_recent_distinct_items_and_repeats_refresh_them() {
    let mut op = harness(json!({"history": 2, "min_cooccurrence": 1}));
    let repeated_before = counter("interactions_repeated");
    op.process_json(&interactions(&[("u1", "a"), ("u1", "b"), ("u1", "c"), ("u1", "d")]));
    let model = op.operator().model();
    assert_eq!(model.history(&id("u1")), vec![id("c"), id("d")]);
    assert_eq!((model.count(&id("c"), &id("a")), model.count(&id("d"), &id("a"))), (1, 0), "a left the history before d");
    assert_eq!(model.count(&id("d"), &id("b")), 1);

    let out = op.process_json(&interactions(&[("u2", "a"), ("u2", "b"), ("u2", "a"), ("u2", "c"), ("u2", "e")]));
    assert_eq!(out.batch.len(), 4, "the repeat of a updates no count and emits nothing");
    assert_eq!(counter("interactions_repeated") - repeated_before, 1);
    let model = op.operator().model();
    assert_eq!(model.count(&id("a"), &id("b")), 2, "the repeat was not counted as a pair again");
    // The repeat made a more recent than b, so c pushed b out and e meets a and c.
    assert_eq!((model.count(&id("e"), &id("a")), model.count(&id("e"), &id("b"))), (1, 0));
    assert_eq!(model.history(&id("u2")), vec![id("c"), id("e")]);
}

#[test]
fn heavy_users_are_down_sampled_after_their_budget() {
    let mut op = harness(json!({"max_interactions_per_user": 3, "min_cooccurrence": 1}));
    let before = counter("interactions_downsampled");
    let out =
        op.process_json(&interactions(&[("bot", "a"), ("bot", "b"), ("bot", "c"), ("bot", "d"), ("bot", "e"), ("u1", "a"), ("u1", "d")]));
    let users: Vec<Value> = outputs(&out.batch).iter().map(|record| record["user"].clone()).collect();
    assert_eq!(users, vec![json!("bot"), json!("bot"), json!("bot"), json!("u1"), json!("u1")]);
    assert_eq!(counter("interactions_downsampled") - before, 2);
    let model = op.operator().model();
    assert_eq!(model.count(&id("d"), &id("c")), 0, "the bot's fourth item was not counted");
    assert_eq!(model.count(&id("d"), &id("a")), 1, "other users still count");
    assert_eq!(model.cooccurrences().total(), 2 * 4);
}

#[test]
fn items_beyond_max_items_are_ignored_and_counted() {
    let mut op = harness(json!({"max_items": 2, "min_cooccurrence": 1}));
    let before = counter("items_untracked");
    let out = op.process_json(&interactions(&[("u1", "a"), ("u1", "b"), ("u1", "c"), ("u2", "c"), ("u2", "b"), ("u2", "a")]));
    assert!(out.rejected.is_empty());
    assert_eq!(outputs(&out.batch).iter().filter(|record| record["item"] == json!("c")).count(), 0);
    assert_eq!(counter("items_untracked") - before, 2);
    let model = op.operator().model();
    assert_eq!(model.cooccurrences().len(), 2);
    assert_eq!(model.count(&id("a"), &id("b")), 2);
    assert_eq!(model.history(&id("u1")), vec![id("a"), id("b")]);
}

#[test]
fn full_rows_forget_their_weakest_oldest_cell() {
    let mut op = harness(json!({"max_cooccurrences_per_item": 2, "min_cooccurrence": 1}));
    let before = counter("cooccurrences_forgotten");
    op.process_json(&interactions(&[
        ("u1", "a"),
        ("u1", "x"),
        ("u2", "a"),
        ("u2", "x"),
        ("u3", "b"),
        ("u3", "x"),
        ("u4", "c"),
        ("u4", "x"),
    ]));
    let model = op.operator().model();
    let (x, a, b, c) = (id("x"), id("a"), id("b"), id("c"));
    assert_eq!((model.count(&x, &a), model.count(&x, &b), model.count(&x, &c)), (2, 0, 1), "b was x's weakest cell");
    assert_eq!(model.count(&b, &x), 1, "b's own row keeps the pair");
    assert_eq!(model.cooccurrences().find(&x).map(|x| model.cooccurrences().observations(x)), Some(4), "marginals stay exact");
    op.process_json(&interactions(&[("u5", "d"), ("u5", "x")]));
    let model = op.operator().model();
    assert_eq!((model.count(&x, &a), model.count(&x, &c), model.count(&x, &id("d"))), (2, 0, 1), "c, a newcomer, went first");
    assert_eq!(counter("cooccurrences_forgotten") - before, 2);
}

#[test]
fn the_least_recently_active_users_are_forgotten_beyond_max_users() {
    let mut op = harness(json!({"max_users": 2, "min_cooccurrence": 1}));
    let before = counter("users_forgotten");
    op.process_json(&interactions(&[("u1", "a"), ("u2", "a"), ("u1", "a"), ("u3", "a"), ("u1", "b"), ("u2", "b")]));
    let model = op.operator().model();
    // u1's repeat made u2 the least recently active when u3 arrived, and u3 when u2 returned
    // with an empty history.
    assert_eq!(model.users().len(), 2);
    assert_eq!(model.history(&id("u1")), vec![id("a"), id("b")]);
    assert_eq!(model.history(&id("u2")), vec![id("b")]);
    assert_eq!(model.count(&id("a"), &id("b")), 1, "only u1 counts the pair: u2 was forgotten");
    assert_eq!(counter("users_forgotten") - before, 2);
}

#[test]
fn kinds_filter_skips_other_interactions_silently() {
    let mut op = harness(json!({"kinds": ["cart", "order"], "min_cooccurrence": 1}));
    let before = counter("kinds_skipped");
    let out = op.process_json(&[
        (json!({"user_id": "u1", "item_id": "a", "event_type": "view"}), 0),
        (json!({"user_id": "u1", "item_id": "b", "event_type": "cart"}), 1),
        (json!({"user_id": "u1", "item_id": "c"}), 2),
        (json!({"user_id": "u1", "item_id": "e", "event_type": 5}), 3),
        (json!({"user_id": "u1", "item_id": "d", "event_type": "order"}), 4),
        (json!({"user_id": "u1", "event_type": "login"}), 5),
        (json!({"user_id": "u1", "event_type": "order"}), 6),
    ]);
    assert_eq!(out.batch.len(), 2);
    assert_eq!(counter("kinds_skipped") - before, 4);
    let reasons: Vec<_> = out.rejected.iter().map(|rejection| (rejection.index, rejection.reason.as_str())).collect();
    assert_eq!(reasons, vec![(6, "field item_id is missing")]);
    let model = op.operator().model();
    assert_eq!((model.count(&id("b"), &id("d")), model.cooccurrences().len()), (1, 2));

    let mut nested = harness(json!({"kind": "event.type", "kinds": ["view"], "user": "who.id", "item": "what"}));
    let out = nested.process_json(&[(json!({"who": {"id": 7}, "what": "a", "event": {"type": "view"}}), 0)]);
    assert_eq!(outputs(&out.batch), vec![json!({"user": 7, "item": "a", "recommendations": [], "timestamp": 0})]);
}

#[test]
fn records_without_usable_ids_are_rejected_with_the_reason() {
    let mut op = harness(json!({}));
    let mut batch = sluice_sdk::Batch::new();
    let long = format!(r#"{{"user_id": "u", "item_id": "{}"}}"#, "x".repeat(200));
    let payloads: [&[u8]; 8] = [
        br#"{"item_id": "a"}"#,
        br#"{"user_id": "u", "item_id": null}"#,
        br#"{"user_id": true, "item_id": "a"}"#,
        br#"{"user_id": "u", "item_id": 1.5}"#,
        br#"{"user_id": "", "item_id": "a"}"#,
        long.as_bytes(),
        br#"{"user_id": "u", "item_id": "a""#,
        br#"{"user_id": "u", "item_id": {"id": 1}}"#,
    ];
    for payload in payloads {
        batch.push(None, payload, 0, []);
    }
    let out = op.process(&batch);
    assert!(out.batch.is_empty());
    let reasons: Vec<&str> = out.rejected.iter().map(|rejection| rejection.reason.as_str()).collect();
    assert_eq!(
        &reasons[..6],
        [
            "field user_id is missing",
            "field item_id is null, expected a string or an integer",
            "field user_id is a boolean, expected a string or an integer",
            "field item_id is a number but not an integer",
            "field user_id is an empty string",
            "field item_id is longer than 128 bytes",
        ]
    );
    assert!(reasons[6].starts_with("payload is not valid JSON"), "{}", reasons[6]);
    assert_eq!(reasons[7], "field item_id is an object, expected a string or an integer");
    assert_eq!(out.rejected.iter().map(|rejection| rejection.index).collect::<Vec<_>>(), (0..8).collect::<Vec<_>>());
}

#[test]
fn ids_are_compared_and_repeated_as_canonical_json() {
    let mut op = harness(json!({"min_cooccurrence": 1}));
    let mut batch = sluice_sdk::Batch::new();
    let payloads: [(&[u8], i64); 5] = [
        (br#"{"user_id": "u", "item_id": 7}"#, 0),
        (br#"{"user_id": "\u0075", "item_id": "a"}"#, 0),
        (br#"{"user_id": "u", "item_id": 7.0}"#, 0),
        (br#"{"user_id": "v", "item_id": 7.0}"#, 1),
        (br#"{"user_id": "v", "item_id": "\u0061"}"#, 2),
    ];
    for (payload, time) in payloads {
        batch.push(None, payload, time, []);
    }
    let records = outputs(&op.process(&batch).batch);
    assert_eq!(records.len(), 4, "7.0 repeats 7 for user u");
    assert_eq!(
        records[3],
        json!({"user": "v", "item": "a", "recommendations": [{"item": 7, "score": rounded(llr(2, 0, 0, 2)), "cooccurrences": 2}], "timestamp": 2})
    );
}

#[test]
fn configuration_errors_are_explained() {
    let refuse = |config: Value| Harness::<Recommend>::new(config).err().unwrap();
    for key in ["history", "max_interactions_per_user", "max_users", "max_items", "max_cooccurrences_per_item", "top_n", "min_cooccurrence"]
    {
        assert_eq!(refuse(json!({key: 0})), format!("`{key}` must be at least 1"));
    }
    assert!(refuse(json!({"kinds": []})).contains("`kinds` is empty"));
    assert!(refuse(json!({"kind": "type"})).contains("`kinds` is not"));
    assert!(refuse(json!({"user": "a..b"})).contains("invalid field path"));
    assert!(refuse(json!({"top": 5})).contains("unknown field `top`"));
    assert!(refuse(json!({"user": "item_id"})).contains("`user` and `item` are both item_id"));
    assert!(refuse(json!({"history": -1})).contains("invalid value"));
    assert!(refuse(json!({"max_items": 5_000_000_000u64})).contains("invalid value"));
    assert!(Harness::<Recommend>::new(json!({"kinds": ["view"]})).is_ok());
    let beyond = json!({"max_items": 1_000_000, "max_cooccurrences_per_item": 100_000, "max_users": 1_000_000, "history": 1000});
    assert!(refuse(beyond).contains("beyond the 4 GiB a Wasm instance can address"));
    let large = json!({"max_items": 200_000, "max_cooccurrences_per_item": 1000, "max_users": 1_000_000});
    assert!(Harness::<Recommend>::new(large).is_ok(), "fits with a larger memory_limit");
}
