//! Test plugin for hot swap, version 2 of a counter: passes every record downstream as
//! `{"n", "total", "version": 2, "label", "swaps_seen"}` and keeps the running count as its
//! state, together with the number of times it was restored.
//!
//! Its state is version 2 (`{ count: u64, swaps_seen: u32 }`); it also reads version 1, the
//! state of `counter-v1`, so that the count stays continuous when a swap goes from v1 to v2.
//! Any other state version is refused, which makes a swap roll back.

use serde::{Deserialize, Serialize};
use sluice_sdk::serde_json::value::RawValue;
use sluice_sdk::state::decode_bytes;
use sluice_sdk::{Batch, Distribution, FieldPath, Operator, Output, State, VersionedState};

/// The version of this plugin, written in its output records and used as its state version.
pub const VERSION: u32 = 2;

/// The `config` table of the counter (the same for both versions).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CounterConfig {
    /// Copied into every output record (`null` when absent).
    pub label: Option<String>,
}

/// The state of version 2.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountV2 {
    /// The number of records passed downstream.
    pub count: u64,
    /// How many times this plugin was restored from a state (of either version).
    pub swaps_seen: u32,
}

/// The layout of `counter-v1`'s state (version 1), read when swapping from v1.
#[derive(Deserialize)]
struct CountV1 {
    count: u32,
}

impl VersionedState for CountV2 {
    const VERSION: u32 = VERSION;

    fn migrate(version: u32, bytes: &[u8]) -> Result<Self, String> {
        match version {
            1 => {
                let older: CountV1 = decode_bytes(bytes)?;
                Ok(CountV2 { count: older.count.into(), swaps_seen: 0 })
            }
            _ => Err(format!("counter-v2 cannot read state version {version}: it reads versions 1 and 2")),
        }
    }
}

/// One output record.
#[derive(Serialize)]
struct Counted<'a> {
    /// The input's `n` field, copied as JSON text (`null` when absent).
    n: Option<&'a RawValue>,
    total: u64,
    version: u32,
    label: Option<&'a str>,
    swaps_seen: u32,
}

pub struct CounterV2 {
    label: Option<String>,
    n: [FieldPath; 1],
    counted: CountV2,
}

impl Operator for CounterV2 {
    type Config = CounterConfig;

    fn init(config: CounterConfig) -> Result<Self, String> {
        Ok(CounterV2 { label: config.label, n: [FieldPath::parse("n")?], counted: CountV2::default() })
    }

    fn distribution(&self) -> Distribution {
        // Counts every record it passes: one instance sees them all.
        Distribution::Single
    }

    fn process(&mut self, batch: &Batch, out: &mut Output) {
        for record in batch.iter() {
            let n = match record.raw_fields(&self.n) {
                Ok(fields) => fields.into_iter().next().flatten(),
                Err(reason) => {
                    out.reject(record.index(), reason);
                    continue;
                }
            };
            self.counted.count = self.counted.count.saturating_add(1);
            let counted = Counted {
                n,
                total: self.counted.count,
                version: VERSION,
                label: self.label.as_deref(),
                swaps_seen: self.counted.swaps_seen,
            };
            out.emit_json_like(record, &counted);
        }
    }

    fn snapshot(&self) -> State {
        State::encode(&self.counted)
    }

    /// Takes the state (migrating version 1) and counts this restore in `swaps_seen`.
    fn restore(&mut self, state: State) -> Result<(), String> {
        let mut counted: CountV2 = state.decode()?;
        counted.swaps_seen = counted.swaps_seen.saturating_add(1);
        self.counted = counted;
        Ok(())
    }
}

sluice_sdk::export_operator!(CounterV2);

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::Record;
    use sluice_sdk::serde_json::{Value, json};
    use sluice_sdk::testing::{Harness, json_values};

    /// The shape of `counter-v1`'s state, written here as v1 would write it.
    #[derive(Serialize, Deserialize)]
    struct V1State {
        count: u32,
    }
    impl VersionedState for V1State {
        const VERSION: u32 = 1;
    }

    fn counter(config: Value) -> Harness<CounterV2> {
        Harness::new(config).unwrap()
    }

    fn text(record: Record<'_>) -> &str {
        std::str::from_utf8(record.value()).unwrap()
    }

    #[test]
    fn counts_records_and_copies_n_with_key_headers_and_time() {
        let mut counter = counter(json!({"label": "green"}));
        let mut batch = Batch::new();
        batch.push(Some(b"k"), br#"{"n": 7, "other": true}"#, 10, [(&b"h"[..], &b"v"[..])]);
        batch.push(None, br#"{"other": 1}"#, 20, []);
        batch.push(None, b"{\"n\": 1", 30, []);
        batch.push(None, br#"{"n": [1.5, null]}"#, 40, []);
        let out = counter.process(&batch);
        assert_eq!(
            json_values(&out.batch),
            vec![
                json!({"n": 7, "total": 1, "version": 2, "label": "green", "swaps_seen": 0}),
                json!({"n": null, "total": 2, "version": 2, "label": "green", "swaps_seen": 0}),
                json!({"n": [1.5, null], "total": 3, "version": 2, "label": "green", "swaps_seen": 0}),
            ]
        );
        assert_eq!(out.rejected.len(), 1);
        assert_eq!(out.rejected[0].index, 2);
        assert!(out.rejected[0].reason.contains("not valid JSON"), "{}", out.rejected[0].reason);

        let first = out.batch.get(0).unwrap();
        assert_eq!(text(first), r#"{"n":7,"total":1,"version":2,"label":"green","swaps_seen":0}"#);
        assert_eq!((first.key(), first.header("h"), first.timestamp()), (Some(&b"k"[..]), Some(&b"v"[..]), 10));
        let times: Vec<i64> = out.batch.iter().map(|record| record.timestamp()).collect();
        assert_eq!(times, vec![10, 20, 40]);
        assert_eq!(counter.snapshot(), State::encode(&CountV2 { count: 3, swaps_seen: 0 }));
    }

    #[test]
    fn label_defaults_to_null() {
        let mut counter = counter(json!({}));
        let out = counter.process_json(&[(json!({"n": "a"}), 0)]);
        assert_eq!(text(out.batch.get(0).unwrap()), r#"{"n":"a","total":1,"version":2,"label":null,"swaps_seen":0}"#);
    }

    #[test]
    fn reads_the_state_of_counter_v1_and_counts_the_swap() {
        let state = State::encode(&V1State { count: 41 });
        let mut restored = Harness::<CounterV2>::restored(json!({"label": "up"}), state).unwrap();
        let out = restored.process_json(&[(json!({"n": 1}), 5)]);
        assert_eq!(json_values(&out.batch), vec![json!({"n": 1, "total": 42, "version": 2, "label": "up", "swaps_seen": 1})]);
        assert_eq!(restored.snapshot(), State::encode(&CountV2 { count: 42, swaps_seen: 1 }));
    }

    #[test]
    fn every_restore_of_its_own_state_is_counted() {
        let mut counter = counter(json!({}));
        counter.process_json(&[(json!({}), 0), (json!({}), 0)]);
        let once = Harness::<CounterV2>::restored(json!({}), counter.snapshot()).unwrap();
        let mut twice = Harness::<CounterV2>::restored(json!({}), once.snapshot()).unwrap();
        let out = twice.process_json(&[(json!({"n": 3}), 0)]);
        assert_eq!(json_values(&out.batch), vec![json!({"n": 3, "total": 3, "version": 2, "label": null, "swaps_seen": 2})]);
    }

    #[test]
    fn refuses_unknown_and_corrupt_state() {
        let Err(error) = Harness::<CounterV2>::restored(json!({}), State { version: 9, bytes: vec![1] }) else {
            panic!("state version 9 was accepted");
        };
        assert!(error.contains("cannot read state version 9"), "{error}");
        let Err(error) = Harness::<CounterV2>::restored(json!({}), State { version: 1, bytes: vec![] }) else {
            panic!("corrupt version 1 state was accepted");
        };
        assert!(error.contains("corrupt"), "{error}");
    }

    #[test]
    fn refuses_unknown_config_fields() {
        let Err(error) = Harness::<CounterV2>::new(json!({"label": "x", "extra": 1})) else {
            panic!("an unknown config field was accepted");
        };
        assert!(error.contains("extra"), "{error}");
    }
}
