//! A window's result written field by field into its record (an `ObjectWriter`: indexed for
//! the next operator, no map built and serialised per result), its group values as their
//! canonical text, so that numbers a double would round are written exactly.

use sluice_sdk::fields::{FieldName, ObjectWriter};
use sluice_sdk::{FieldPath, serde_json};

use crate::{AggregateConfig, GroupState, REVISION, WINDOW_END, WINDOW_START, WindowKey};

/// The names of a result's fields, written once.
pub struct ResultNames {
    window_start: FieldName,
    window_end: FieldName,
    groups: Vec<FieldName>,
    aggregates: Vec<FieldName>,
    computed: Vec<FieldName>,
    revision: FieldName,
}

impl ResultNames {
    /// The names, unless one comes twice (refused by the configuration's check; the map then
    /// keeps one field).
    pub fn new(group_by: &[FieldPath], aggregates: &[AggregateConfig], computed: &[&str]) -> Option<ResultNames> {
        let groups: Vec<String> = group_by.iter().map(ToString::to_string).collect();
        let outputs: Vec<String> = aggregates.iter().map(AggregateConfig::output_name).collect();
        let mut all: Vec<&str> = [WINDOW_START, WINDOW_END, REVISION].into_iter().chain(groups.iter().map(String::as_str)).collect();
        all.extend(outputs.iter().map(String::as_str));
        all.extend(computed);
        all.sort_unstable();
        if all.windows(2).any(|pair| pair[0] == pair[1]) {
            return None;
        }
        Some(ResultNames {
            window_start: FieldName::new(WINDOW_START),
            window_end: FieldName::new(WINDOW_END),
            groups: groups.iter().map(|name| FieldName::new(name)).collect(),
            aggregates: outputs.iter().map(|name| FieldName::new(name)).collect(),
            computed: computed.iter().map(|name| FieldName::new(name)).collect(),
            revision: FieldName::new(REVISION),
        })
    }

    /// Writes the result of `group` in window `key` into `out` (cleared first), with the
    /// aggregates' results and the values of the computed fields: false if its group key
    /// cannot be read back (the map then writes what it writes).
    pub fn write(
        &self,
        (key, group, state): (&WindowKey, &str, &GroupState),
        (results, computed): (&[serde_json::Value], &[serde_json::Value]),
        out: &mut ObjectWriter,
        scratch: &mut Vec<u8>,
    ) -> bool {
        let Some(group_values) = sluice_sdk::json::key_values(group) else { return false };
        out.clear();
        out.named_field_i64(&self.window_start, key.start);
        out.named_field_i64(&self.window_end, key.end);
        // Each group value as its canonical text (JSON: strings escaped one way, numbers exact,
        // integers past 64 bits by their digits).
        for (name, value) in self.groups.iter().zip(group_values) {
            out.named_field(name, value.get().as_bytes());
        }
        for ((name, result), accumulator) in self.aggregates.iter().zip(results).zip(&state.accumulators) {
            if let Some(text) = accumulator.kept_text() {
                out.named_field(name, text.as_bytes());
                continue;
            }
            scratch.clear();
            if serde_json::to_writer(&mut *scratch, result).is_err() {
                return false;
            }
            out.named_field(name, scratch);
        }
        for (name, value) in self.computed.iter().zip(computed) {
            scratch.clear();
            if serde_json::to_writer(&mut *scratch, value).is_err() {
                return false;
            }
            out.named_field(name, scratch);
        }
        if state.revisions > 0 {
            out.named_field_i64(&self.revision, i64::from(state.revisions));
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use sluice_sdk::Operator;
    use sluice_sdk::json::write_key;
    use sluice_sdk::serde_json::json;
    use sluice_sdk::serde_json::value::RawValue;

    use super::*;
    use crate::{Input, WindowAggregate};

    /// For group values of every kind, the record written field by field is the text of the
    /// map the operator built before (or the writer declines and the map is built).
    #[test]
    fn a_result_written_field_by_field_is_the_text_of_the_map() {
        let config = json!({
            "window": {"type": "tumbling", "size": "10s"},
            "group_by": ["g", "h.i"],
            "aggregates": [{"function": "count"}, {"function": "sum", "field": "x", "as": "total"}, {"function": "max", "field": "x"}, {"function": "mean", "field": "x"}]
        });
        let operator = WindowAggregate::init(serde_json::from_value(config).unwrap()).unwrap();
        let names = operator.result_names.as_ref().expect("no compute, no name twice: written field by field");
        let values = [
            "\"k\"",
            "\"é \\\"q\\\" \\u0041\"",
            "12",
            "-7",
            "0",
            "1.5",
            "1e3",
            "-0.0",
            "null",
            "true",
            "[1, 2.0]",
            "{\"b\": 1, \"a\": [null]}",
        ];
        let key = WindowKey { start: 0, end: 10_000 };
        let (mut writer, mut scratch) = (ObjectWriter::new(), Vec::new());
        for first in values {
            for second in values {
                let raws = [first, second].map(|text| RawValue::from_string(text.to_owned()).unwrap());
                let mut group = String::new();
                write_key(&mut group, &[Some(&raws[0]), Some(&raws[1])]);
                for revisions in [0, 3] {
                    let mut state = GroupState {
                        accumulators: operator.aggregates.iter().map(AggregateConfig::accumulator).collect(),
                        revisions,
                        dirty: false,
                    };
                    state.accumulators.iter_mut().for_each(|accumulator| accumulator.add(&Input::Number(2.5), 1));
                    let map = serde_json::to_string(&operator.result(&key, &group, &state)).unwrap();
                    let results: Vec<_> = state.accumulators.iter().map(|accumulator| accumulator.result()).collect();
                    assert!(names.write((&key, &group, &state), (&results, &[]), &mut writer, &mut scratch));
                    let mut written = Vec::new();
                    writer.write_to(&mut written);
                    assert_eq!(String::from_utf8(written).unwrap(), map, "group {group}");
                }
            }
        }
    }

    /// Numbers a double would round (which the map rounds) are written exactly.
    #[test]
    fn group_numbers_past_a_double_are_written_exactly() {
        let config = json!({
            "window": {"type": "tumbling", "size": "10s"},
            "group_by": ["id", "big"],
            "aggregates": [{"function": "count"}],
            "compute": {"twice": "count * 2"}
        });
        let operator = WindowAggregate::init(serde_json::from_value(config).unwrap()).unwrap();
        let names = operator.result_names.as_ref().expect("names");
        let raws = ["18446744073709551617", "1e400"].map(|text| RawValue::from_string(text.to_owned()).unwrap());
        let mut group = String::new();
        write_key(&mut group, &[Some(&raws[0]), Some(&raws[1])]);
        let mut state =
            GroupState { accumulators: operator.aggregates.iter().map(AggregateConfig::accumulator).collect(), revisions: 0, dirty: false };
        state.accumulators.iter_mut().for_each(|accumulator| accumulator.add(&Input::Number(1.0), 1));
        let key = WindowKey { start: 0, end: 10_000 };
        let (mut writer, mut scratch, mut written) = (ObjectWriter::new(), Vec::new(), Vec::new());
        let results: Vec<_> = state.accumulators.iter().map(|accumulator| accumulator.result()).collect();
        assert!(names.write((&key, &group, &state), (&results, &[json!(2)]), &mut writer, &mut scratch));
        writer.write_to(&mut written);
        assert_eq!(
            String::from_utf8(written).unwrap(),
            r#"{"window_start":0,"window_end":10000,"id":18446744073709551617,"big":1e400,"count":1,"twice":2}"#
        );
    }

    #[test]
    fn results_are_built_as_maps_with_a_name_given_twice() {
        let aggregates: Vec<AggregateConfig> = serde_json::from_value(json!([{"function": "count", "as": "g"}])).unwrap();
        let group_by = [FieldPath::parse("g").unwrap()];
        assert!(ResultNames::new(&group_by, &aggregates, &[]).is_none(), "g twice");
        assert!(ResultNames::new(&[], &aggregates, &["g"]).is_none(), "computed g twice");
        assert!(ResultNames::new(&[], &aggregates, &["rate"]).is_some(), "compute");
        let revision: Vec<AggregateConfig> = serde_json::from_value(json!([{"function": "count", "as": "revision"}])).unwrap();
        assert!(ResultNames::new(&[], &revision, &[]).is_none(), "revision twice");
        assert!(ResultNames::new(&group_by, &revision[..0], &[]).is_some());
    }
}
