//! `project`: reshapes JSON records — computes, keeps, drops and renames fields.
//!
//! ```toml
//! [operators.config]
//! compute = { revenue = "price * quantity" }   # new field = arithmetic on fields
//! keep = ["user_id", "category", "revenue"]    # keep only these (computed ones included)
//! drop = ["debug"]                              # remove these
//! rename = { user_id = "user" }                 # old path = new path
//! ```
//! Steps run in that order: compute, keep, drop, rename. All names are dotted paths.

mod expression;

use std::collections::BTreeMap;

use serde::Deserialize;
use sluice_sdk::serde_json::{Map, Value};
use sluice_sdk::{Event, FieldPath, Operator, Output};

pub use expression::Expression;

/// The `config` table of a project operator.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    /// New fields and the arithmetic expressions that compute them.
    #[serde(default)]
    pub compute: BTreeMap<String, String>,
    /// When set, only these fields (and computed ones) are kept.
    pub keep: Option<Vec<FieldPath>>,
    /// Fields removed.
    #[serde(default)]
    pub drop: Vec<FieldPath>,
    /// Fields renamed, old path to new path.
    #[serde(default)]
    pub rename: BTreeMap<String, FieldPath>,
}

/// A running projection.
pub struct Project {
    compute: Vec<(FieldPath, Expression)>,
    keep: Option<Vec<FieldPath>>,
    drop: Vec<FieldPath>,
    rename: Vec<(FieldPath, FieldPath)>,
}

impl Operator for Project {
    type Config = ProjectConfig;

    fn init(config: ProjectConfig) -> Result<Self, String> {
        let compute = config
            .compute
            .into_iter()
            .map(|(name, text)| {
                let path = FieldPath::parse(&name)?;
                let expression = Expression::parse(&text).map_err(|error| format!("compute.{name}: {error}"))?;
                Ok((path, expression))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let rename = config
            .rename
            .into_iter()
            .map(|(from, to)| Ok((FieldPath::parse(&from)?, to)))
            .collect::<Result<Vec<_>, String>>()?;
        let keep = config.keep.map(|mut keep| {
            keep.extend(compute.iter().map(|(path, _)| path.clone()));
            keep
        });
        if compute.is_empty() && keep.is_none() && config.drop.is_empty() && rename.is_empty() {
            return Err("nothing to do: set `compute`, `keep`, `drop` or `rename`".into());
        }
        Ok(Project { compute, keep, drop: config.drop, rename })
    }

    fn process(&mut self, batch: Vec<Event>, out: &mut Output) {
        for (index, event) in batch.into_iter().enumerate() {
            match event.json_object().and_then(|record| self.reshape(record)) {
                Ok(record) => out.emit(event.with_json(&record)),
                Err(reason) => out.reject(index, reason),
            }
        }
    }
}

impl Project {
    /// Applies compute, keep, drop and rename to one record.
    pub fn reshape(&self, mut record: Map<String, Value>) -> Result<Map<String, Value>, String> {
        for (path, expression) in &self.compute {
            let value = expression.evaluate(&record).map_err(|error| format!("compute {path}: {error}"))?;
            path.set(&mut record, value)?;
        }
        if let Some(keep) = &self.keep {
            record = keep_only(&record, keep)?;
        }
        for path in &self.drop {
            path.remove(&mut record);
        }
        for (from, to) in &self.rename {
            if let Some(value) = from.remove(&mut record) {
                to.set(&mut record, value)?;
            }
        }
        Ok(record)
    }
}

fn keep_only(record: &Map<String, Value>, keep: &[FieldPath]) -> Result<Map<String, Value>, String> {
    let mut kept = Map::new();
    for path in keep {
        if let Some(value) = path.get(record) {
            path.set(&mut kept, value.clone())?;
        }
    }
    Ok(kept)
}

sluice_sdk::export_operator!(Project);

#[cfg(test)]
mod tests;
