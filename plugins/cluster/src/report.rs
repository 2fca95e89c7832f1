//! The record of the side output `centroids`: where the segments are.

use serde::Serialize;
use sluice_sdk::serde_json::{Map, Value};

use crate::config::Settings;
use crate::model::Model;

/// `{"centroids": [...], "records": n}`.
#[derive(Debug, Serialize)]
pub struct CentroidsRecord {
    pub centroids: Vec<Centroid>,
    /// Records accepted so far.
    pub records: u64,
}

/// One segment's centroid.
#[derive(Debug, Serialize)]
pub struct Centroid {
    pub segment: usize,
    /// Feature path → coordinate.
    pub center: Map<String, Value>,
    /// The centroid's count (decayed with `half_life`).
    pub count: Value,
}

/// The centroids of a seeded model.
pub fn centroids(model: &Model, settings: &Settings) -> CentroidsRecord {
    let centroids = (0..model.k)
        .map(|segment| Centroid {
            segment,
            center: settings
                .features
                .iter()
                .zip(model.centroid(segment))
                .map(|(feature, &x)| (feature.to_string(), sluice_sdk::json::number(x)))
                .collect(),
            count: sluice_sdk::json::number(model.counts.get(segment).copied().unwrap_or(0.0)),
        })
        .collect();
    CentroidsRecord { centroids, records: model.records }
}
