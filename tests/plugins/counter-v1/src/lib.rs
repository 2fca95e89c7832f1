//! Test plugin for hot swap, version 1 of a counter: passes every record downstream as
//! `{"n", "total", "version": 1, "label"}` and keeps the running count as its state.
//!
//! Its state is version 1 (`{ count: u32 }`); it also reads version 2, the state of
//! `counter-v2`, so that the count stays continuous when a swap goes back from v2 to v1.
//! Any other state version is refused, which makes a swap roll back.

use serde::{Deserialize, Serialize};
use sluice_sdk::serde_json::value::RawValue;
use sluice_sdk::state::decode_bytes;
use sluice_sdk::{Batch, Distribution, FieldPath, Operator, Output, VersionedState};

/// The version of this plugin, written in its output records and used as its state version.
pub const VERSION: u32 = 1;

/// The `config` table of the counter (the same for both versions).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CounterConfig {
    /// Copied into every output record (`null` when absent).
    pub label: Option<String>,
}

/// The state of version 1: the number of records passed downstream.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountV1 {
    pub count: u32,
}

/// The layout of `counter-v2`'s state (version 2), read when swapping back from v2.
#[derive(Deserialize)]
struct CountV2 {
    count: u64,
    #[allow(dead_code)] // Part of the layout; v1 does not keep it.
    swaps_seen: u32,
}

impl VersionedState for CountV1 {
    const VERSION: u32 = VERSION;

    fn migrate(version: u32, bytes: &[u8]) -> Result<Self, String> {
        match version {
            2 => {
                let newer: CountV2 = decode_bytes(bytes)?;
                Ok(CountV1 { count: u32::try_from(newer.count).unwrap_or(u32::MAX) })
            }
            _ => Err(format!("counter-v1 cannot read state version {version}: it reads versions 1 and 2")),
        }
    }
}

/// One output record.
#[derive(Serialize)]
struct Counted<'a> {
    /// The input's `n` field, copied as JSON text (`null` when absent).
    n: Option<&'a RawValue>,
    total: u32,
    version: u32,
    label: Option<&'a str>,
}

pub struct CounterV1 {
    label: Option<String>,
    n: [FieldPath; 1],
    counted: CountV1,
}

impl Operator for CounterV1 {
    type Config = CounterConfig;

    fn init(config: CounterConfig) -> Result<Self, String> {
        Ok(CounterV1 { label: config.label, n: [FieldPath::parse("n")?], counted: CountV1::default() })
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
            let counted = Counted { n, total: self.counted.count, version: VERSION, label: self.label.as_deref() };
            out.emit_json_like(record, &counted);
        }
    }

    sluice_sdk::state_in!(counted);
}

sluice_sdk::export_operator!(CounterV1);

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::serde_json::{Value, json};
    use sluice_sdk::testing::{Harness, json_values};
    use sluice_sdk::{Record, State};

    /// The shape of `counter-v2`'s state, written here as v2 would write it.
    #[derive(Serialize, Deserialize)]
    struct V2State {
        count: u64,
        swaps_seen: u32,
    }
    impl VersionedState for V2State {
        const VERSION: u32 = 2;
    }

    fn counter(config: Value) -> Harness<CounterV1> {
        Harness::new(config).unwrap()
    }

    fn text(record: Record<'_>) -> &str {
        std::str::from_utf8(record.value()).unwrap()
    }

    #[test]
    fn counts_records_and_copies_n_with_key_headers_and_time() {
        let mut counter = counter(json!({"label": "blue"}));
        let mut batch = Batch::new();
        batch.push(Some(b"k"), br#"{"n": 7, "other": true}"#, 10, [(&b"h"[..], &b"v"[..])]);
        batch.push(None, br#"{"other": 1}"#, 20, []);
        batch.push(None, b"not json", 30, []);
        batch.push(None, br#"{"n": {"deep": [1, "x"]}}"#, 40, []);
        let out = counter.process(&batch);
        assert_eq!(
            json_values(&out.batch),
            vec![
                json!({"n": 7, "total": 1, "version": 1, "label": "blue"}),
                json!({"n": null, "total": 2, "version": 1, "label": "blue"}),
                json!({"n": {"deep": [1, "x"]}, "total": 3, "version": 1, "label": "blue"}),
            ]
        );
        assert_eq!(out.rejected.len(), 1);
        assert_eq!(out.rejected[0].index, 2);
        assert!(out.rejected[0].reason.contains("not valid JSON"), "{}", out.rejected[0].reason);

        let first = out.batch.get(0).unwrap();
        assert_eq!(text(first), r#"{"n":7,"total":1,"version":1,"label":"blue"}"#);
        assert_eq!((first.key(), first.header("h"), first.timestamp()), (Some(&b"k"[..]), Some(&b"v"[..]), 10));
        let times: Vec<i64> = out.batch.iter().map(|record| record.timestamp()).collect();
        assert_eq!(times, vec![10, 20, 40]);

        let out = counter.process_json(&[(json!({"n": 8}), 50)]);
        assert_eq!(json_values(&out.batch), vec![json!({"n": 8, "total": 4, "version": 1, "label": "blue"})]);
        assert_eq!(counter.snapshot(), State::encode(&CountV1 { count: 4 }));
    }

    #[test]
    fn label_defaults_to_null_and_n_is_copied_verbatim() {
        let mut counter = counter(json!({}));
        let mut batch = Batch::new();
        batch.push(None, br#"{"n": 123456789012345678901234567890}"#, 0, []);
        batch.push(None, b"[1, 2]", 0, []);
        let out = counter.process(&batch);
        assert!(out.rejected.is_empty());
        let texts: Vec<&str> = out.batch.iter().map(text).collect();
        assert_eq!(
            texts,
            vec![
                r#"{"n":123456789012345678901234567890,"total":1,"version":1,"label":null}"#,
                r#"{"n":null,"total":2,"version":1,"label":null}"#,
            ]
        );
    }

    #[test]
    fn own_snapshot_restores_and_the_count_continues() {
        let mut counter = counter(json!({}));
        counter.process_json(&[(json!({"n": 1}), 0), (json!({"n": 2}), 0)]);
        let snapshot = counter.snapshot();
        assert_eq!(snapshot.version, 1);
        let mut restored = Harness::<CounterV1>::restored(json!({}), snapshot).unwrap();
        let out = restored.process_json(&[(json!({"n": 3}), 0)]);
        assert_eq!(json_values(&out.batch), vec![json!({"n": 3, "total": 3, "version": 1, "label": null})]);
    }

    #[test]
    fn reads_the_state_of_counter_v2() {
        let state = State::encode(&V2State { count: 41, swaps_seen: 3 });
        let mut restored = Harness::<CounterV1>::restored(json!({"label": "back"}), state).unwrap();
        let out = restored.process_json(&[(json!({"n": "x"}), 5)]);
        assert_eq!(json_values(&out.batch), vec![json!({"n": "x", "total": 42, "version": 1, "label": "back"})]);
        assert_eq!(restored.snapshot(), State::encode(&CountV1 { count: 42 }));
    }

    #[test]
    fn a_v2_count_beyond_u32_saturates() {
        let state = State::encode(&V2State { count: u64::from(u32::MAX) + 10, swaps_seen: 0 });
        let mut restored = Harness::<CounterV1>::restored(json!({}), state).unwrap();
        let out = restored.process_json(&[(json!({}), 0)]);
        assert_eq!(json_values(&out.batch)[0]["total"], json!(u32::MAX));
    }

    #[test]
    fn refuses_unknown_and_corrupt_state() {
        let Err(error) = Harness::<CounterV1>::restored(json!({}), State { version: 9, bytes: vec![1] }) else {
            panic!("state version 9 was accepted");
        };
        assert!(error.contains("cannot read state version 9"), "{error}");
        let Err(error) = Harness::<CounterV1>::restored(json!({}), State { version: 2, bytes: vec![] }) else {
            panic!("corrupt version 2 state was accepted");
        };
        assert!(error.contains("corrupt"), "{error}");
    }

    #[test]
    fn refuses_unknown_config_fields() {
        let Err(error) = Harness::<CounterV1>::new(json!({"lable": "typo"})) else {
            panic!("an unknown config field was accepted");
        };
        assert!(error.contains("lable"), "{error}");
    }
}
