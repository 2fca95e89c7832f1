//! The operators shipped in `plugins/`, one line each, for `sluice plugin list`. A test keeps
//! this table equal to the directory and to each crate's own description.

/// A shipped operator: its name (also its directory and component file), language and what
/// it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShippedOperator {
    pub name: &'static str,
    pub language: &'static str,
    pub description: &'static str,
}

/// Every operator in `plugins/`, by name.
pub const SHIPPED_OPERATORS: &[ShippedOperator] = &[
    ShippedOperator {
        name: "anomaly-detect",
        language: "rust",
        description: "Per-key anomaly detection: z-score, median/MAD, thresholds, rate of change",
    },
    ShippedOperator {
        name: "cluster",
        language: "rust",
        description: "Segments records online with streaming k-means over numeric features",
    },
    ShippedOperator { name: "dedupe", language: "rust", description: "Drops records whose key fields were seen within a time horizon" },
    ShippedOperator {
        name: "enrich",
        language: "rust",
        description: "Joins records against a static table from the configuration or a granted file",
    },
    ShippedOperator { name: "filter", language: "rust", description: "Keeps the records whose JSON field satisfies a predicate" },
    ShippedOperator {
        name: "forecast",
        language: "rust",
        description: "Forecasts a series per key with Holt-Winters (level, trend, season) and prediction intervals",
    },
    ShippedOperator {
        name: "fraud-score",
        language: "python",
        description: "Scores each record against weighted rules and a per-key velocity check",
    },
    ShippedOperator { name: "join", language: "rust", description: "Joins the records of two inputs whose key fields are equal" },
    ShippedOperator {
        name: "learn",
        language: "rust",
        description: "Learns a model online from the stream (logistic or linear regression) and predicts each record",
    },
    ShippedOperator {
        name: "mask",
        language: "rust",
        description: "Protects personal data: pseudonymises with keyed HMAC-SHA-256, redacts, truncates and drops fields",
    },
    ShippedOperator { name: "moving-average", language: "rust", description: "Simple, exponential and cumulative moving averages per key" },
    ShippedOperator { name: "project", language: "rust", description: "Keeps, drops, renames and computes JSON fields" },
    ShippedOperator { name: "range-filter", language: "c", description: "Keeps the records whose numeric field lies in a range" },
    ShippedOperator {
        name: "recommend",
        language: "rust",
        description: "Real-time item-to-item recommendations from co-occurrence scored by log-likelihood ratio",
    },
    ShippedOperator { name: "reshape", language: "js", description: "JSON reshaping and enrichment" },
    ShippedOperator {
        name: "window-aggregate",
        language: "rust",
        description: "Tumbling, hopping and session window aggregates of JSON records, grouped by fields",
    },
];
