//! What an anomaly produces: alert records, and the annotation of a passed-through record.

use serde::Serialize;
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

/// An alert record, as emitted.
#[derive(Serialize)]
struct Alert<'a> {
    alert: &'static str,
    detector: &'a str,
    group: &'a Map<String, Value>,
    field: String,
    value: Value,
    score: f64,
    expected: Expected,
    timestamp: i64,
    record: &'a Map<String, Value>,
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
    pub fn emit(&self, out: &mut Output, record: Record<'_>, original: &Map<String, Value>, pass_through: bool, alerts_port: u32) {
        if pass_through {
            out.emit_json_like(record, &self.annotated(original));
        }
        let group = self.group(original);
        for finding in self.findings {
            let alert = Alert {
                alert: "anomaly",
                detector: finding.detector,
                group: &group,
                field: self.field.to_string(),
                value: sluice_sdk::json::number(self.value),
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
    fn annotated(&self, original: &Map<String, Value>) -> Map<String, Value> {
        let scores = self.findings.iter().map(|finding| (finding.detector.to_owned(), Value::from(finding.assessment.score))).collect();
        let mut annotated = original.clone();
        annotated.insert(ANNOTATION_FIELD.into(), Value::Object(scores));
        annotated
    }

    /// The group fields of the record, by path (null where absent).
    fn group(&self, original: &Map<String, Value>) -> Map<String, Value> {
        self.group_by.iter().map(|path| (path.to_string(), path.get(original).cloned().unwrap_or(Value::Null))).collect()
    }
}
