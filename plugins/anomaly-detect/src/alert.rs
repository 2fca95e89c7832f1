//! What an anomaly produces: alert records, and the annotation of a passed-through record.

use std::borrow::Cow;

use serde::Serialize;
use sluice_sdk::edit::RawObject;
use sluice_sdk::serde_json::value::RawValue;
use sluice_sdk::serde_json::{Map, Value};
use sluice_sdk::{FieldPath, Output, Record};

use crate::detectors::Assessment;

/// The field added to an anomalous record passed through: detector name → score.
pub const ANNOTATION_FIELD: &str = "anomaly";

/// One detector's alert on one value.
#[derive(Debug, Clone, Copy)]
pub struct Finding<'a> {
    pub detector: &'a str,
    pub assessment: &'a Assessment,
}

/// An anomalous value, with what the alerts about it need to say.
pub struct Anomaly<'a> {
    pub field: &'a FieldPath,
    pub group_by: &'a [FieldPath],
    pub value: f64,
    pub findings: &'a [Finding<'a>],
}

/// An alert record, as emitted. The group's values, the value and the record are written as
/// the record has them (exactly: a number past a double keeps its digits).
#[derive(Serialize)]
struct Alert<'a, 'r> {
    alert: &'static str,
    detector: &'a str,
    group: &'a RawObject<'r>,
    field: String,
    value: &'a RawValue,
    score: f64,
    expected: Expected,
    timestamp: i64,
    record: &'a RawObject<'r>,
}

/// The range the value was expected in; `null` for an unbounded side.
#[derive(Serialize)]
struct Expected {
    low: Option<f64>,
    high: Option<f64>,
}

impl Anomaly<'_> {
    /// Emits `record` annotated (when passing records through), then one alert per finding
    /// on output `alerts_port`. Alerts keep the record's key, headers and event time.
    pub fn emit(&self, out: &mut Output, record: Record<'_>, original: &RawObject<'_>, pass_through: bool, alerts_port: u32) {
        if pass_through {
            out.emit_json_like(record, &self.annotated(original));
        }
        let group = self.group(original);
        let value = original.get(self.field).unwrap_or_else(|| Cow::Owned(number_text(self.value)));
        for finding in self.findings {
            let alert = Alert {
                alert: "anomaly",
                detector: finding.detector,
                group: &group,
                field: self.field.to_string(),
                value: &value,
                score: finding.assessment.score,
                expected: Expected { low: finding.assessment.low, high: finding.assessment.high },
                timestamp: record.timestamp(),
                record: original,
            };
            out.emit_json_like_to(alerts_port, record, &alert);
        }
    }

    /// The record with `"anomaly": {detector: score}` for the detectors that alerted; an
    /// `anomaly` field already there is replaced.
    fn annotated<'r>(&self, original: &RawObject<'r>) -> RawObject<'r> {
        let scores: Map<String, Value> =
            self.findings.iter().map(|finding| (finding.detector.to_owned(), Value::from(finding.assessment.score))).collect();
        let mut annotated = original.clone();
        // A map of names to numbers is always written.
        let _ = annotated.set_member_value(ANNOTATION_FIELD, &scores);
        annotated
    }

    /// The group fields of the record, by path (null where absent).
    fn group<'r>(&self, original: &RawObject<'r>) -> RawObject<'r> {
        let mut group = RawObject::new();
        for path in self.group_by {
            let value = original.get(path).map_or_else(|| RawValue::NULL.to_owned(), Cow::into_owned);
            group.set_member(&path.to_string(), value);
        }
        group
    }
}

/// `x` as JSON text, as the SDK writes numbers (null when not finite).
fn number_text(x: f64) -> Box<RawValue> {
    sluice_sdk::serde_json::value::to_raw_value(&sluice_sdk::json::number(x)).unwrap_or_else(|_| RawValue::NULL.to_owned())
}
