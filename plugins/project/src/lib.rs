//! `project`: reshapes JSON records — computes, keeps, drops and renames fields.
//!
//! ```toml
//! [operators.config]
//! compute = { revenue = "price * quantity" }   # new field = arithmetic on fields
//! keep = ["user_id", "category", "revenue"]    # keep only these (computed ones included)
//! drop = ["debug"]                              # remove these
//! rename = { user_id = "user" }                 # old path = new path
//! ```
//! Steps run in that order: compute, keep, drop, rename (all renames at once, so that two
//! fields can swap). All names are dotted paths. A record that is not a JSON object is
//! rejected, whatever the steps; two renames to one name, or a renamed field inside another,
//! are refused at init.

mod flat;

use std::collections::BTreeMap;

use serde::Deserialize;
use sluice_sdk::edit::RawObject;
use sluice_sdk::fields::ObjectWriter;
use sluice_sdk::serde_json::{Map, Value};
use sluice_sdk::{Batch, Distribution, FieldPath, Operator, Output, Record};

use flat::FlatProjection;
pub use sluice_sdk::expression::Expression;

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
    /// With `keep`, the only fields read from a record: kept ones and expression inputs.
    reads: Option<Vec<FieldPath>>,
    /// The fields the expressions read, when none may index an array: a record is then not
    /// parsed whole to compute, so what they do not read (`1e400`, a name given twice) passes.
    compute_reads: Option<Vec<FieldPath>>,
    /// The fast path, when the projection has only top-level fields.
    flat: Option<FlatProjection>,
    /// Output object of the fast path, reused across records.
    writer: ObjectWriter,
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
        let rename = config.rename.into_iter().map(|(from, to)| Ok((FieldPath::parse(&from)?, to))).collect::<Result<Vec<_>, String>>()?;
        refuse_shared_rename_targets(&rename)?;
        let keep = config.keep.map(|mut keep| {
            keep.extend(compute.iter().map(|(path, _)| path.clone()));
            keep
        });
        if compute.is_empty() && keep.is_none() && config.drop.is_empty() && rename.is_empty() {
            return Err("nothing to do: set `compute`, `keep`, `drop` or `rename`".into());
        }
        // Reading only the kept fields builds objects on their way; a path that may index an
        // array needs the array, so the whole record is read.
        let reads = keep.as_ref().map(|keep| {
            let mut reads = keep.clone();
            reads.extend(compute.iter().flat_map(|(_, expression)| expression.fields()));
            reads.dedup();
            reads
        });
        let reads = reads.filter(|reads| !reads.iter().any(may_index_an_array));
        let mut compute_reads: Vec<FieldPath> = compute.iter().flat_map(|(_, expression)| expression.fields()).collect();
        compute_reads.sort_by(|a, b| a.segments().cmp(b.segments()));
        compute_reads.dedup();
        let compute_reads = Some(compute_reads).filter(|reads| !reads.iter().any(may_index_an_array));
        let flat = FlatProjection::plan(&compute, keep.as_deref(), &config.drop, &rename);
        // Removed as they were: later elements of an array before earlier ones, deeper first.
        let mut drop = config.drop;
        drop.sort_by(removal_order);
        let mut rename = rename;
        rename.sort_by(|(a, _), (b, _)| removal_order(a, b));
        Ok(Project { compute, keep, reads, compute_reads, flat, writer: ObjectWriter::new(), drop, rename })
    }

    fn distribution(&self) -> Distribution {
        Distribution::Any
    }

    fn process(&mut self, batch: &Batch, out: &mut Output) {
        if let Some(flat) = &self.flat {
            let mut values = Vec::new();
            for record in batch.iter() {
                match require_object(record).and_then(|()| flat.write(record, &mut self.writer, &mut values)) {
                    Ok(()) => out.batch.push_object_like(record, &self.writer),
                    Err(reason) => out.reject(record.index(), reason),
                }
            }
            return;
        }
        for record in batch.iter() {
            match self.reshape_record(record) {
                Ok(Reshaped::Text(object)) => out.emit_json_like(record, &object),
                Ok(Reshaped::Map(object)) => out.emit_json_like(record, &object),
                Err(reason) => out.reject(record.index(), reason),
            }
        }
    }
}

/// A record reshaped: its text edited, or (where `keep` names array elements) rebuilt.
enum Reshaped<'r> {
    Text(RawObject<'r>),
    Map(Map<String, Value>),
}

impl Project {
    /// Reshapes one record. The fields no step computes keep their exact text (an integer past
    /// 64 bits, `-0`), except where `keep` names array elements: the record is then rebuilt
    /// as a map, its numbers passing through doubles.
    fn reshape_record<'r>(&self, record: Record<'r>) -> Result<Reshaped<'r>, String> {
        if self.keep.is_some() && self.reads.is_none() {
            return self.read(record).and_then(|object| self.reshape(object)).map(Reshaped::Map);
        }
        let mut object = record.raw_object()?;
        let mut inputs = if self.compute.is_empty() { Map::new() } else { read_fields(record, self.compute_reads.as_deref())? };
        for (path, expression) in &self.compute {
            let value = expression.evaluate(&inputs).map_err(|error| format!("compute {path}: {error}"))?;
            object.set_value(path, &value)?;
            path.set(&mut inputs, value)?;
        }
        if let Some(keep) = &self.keep {
            object = keep_only_text(&object, keep)?;
        }
        for path in &self.drop {
            object.remove(path);
        }
        // All at once, as below.
        let mut moved: Vec<_> = self.rename.iter().filter_map(|(from, to)| object.remove(from).map(|node| (to, node))).collect();
        // Written shallowest first: `account` before `account.name` lands inside it.
        moved.sort_by_key(|(to, _)| to.segments().len());
        for (to, node) in moved {
            object.set_node(to, node)?;
        }
        Ok(Reshaped::Text(object))
    }

    /// The record's JSON object: only the fields the projection reads, when it keeps a few.
    fn read(&self, record: Record<'_>) -> Result<Map<String, Value>, String> {
        read_fields(record, self.reads.as_deref())
    }

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
        // All at once, as the flat form does: `{ a = "b", b = "a" }` swaps the two fields.
        let mut moved: Vec<(&FieldPath, Value)> =
            self.rename.iter().filter_map(|(from, to)| from.remove(&mut record).map(|value| (to, value))).collect();
        moved.sort_by_key(|(to, _)| to.segments().len());
        for (to, value) in moved {
            to.set(&mut record, value)?;
        }
        Ok(record)
    }
}

/// The order that removes every path as the record had it: removing `items.0` first would
/// move `items.1` to 0, so later elements of an array go first (indexes before names, by value
/// then text: a total order); a deeper path before its parent.
fn removal_order(a: &FieldPath, b: &FieldPath) -> std::cmp::Ordering {
    fn key(segment: &str) -> (bool, std::cmp::Reverse<u128>, &str) {
        let index = !segment.is_empty() && segment.bytes().all(|byte| byte.is_ascii_digit());
        (!index, std::cmp::Reverse(if index { segment.parse().unwrap_or(u128::MAX) } else { 0 }), segment)
    }
    for (x, y) in a.segments().iter().zip(b.segments()) {
        match key(x).cmp(&key(y)) {
            std::cmp::Ordering::Equal => continue,
            other => return other,
        }
    }
    b.segments().len().cmp(&a.segments().len())
}

/// Refuses two renames to one name (the second would silently overwrite the first) and a
/// renamed field inside another renamed field (it moves with its parent).
fn refuse_shared_rename_targets(rename: &[(FieldPath, FieldPath)]) -> Result<(), String> {
    for (position, (from, to)) in rename.iter().enumerate() {
        if let Some((earlier, _)) = rename[..position].iter().find(|(_, other)| other == to) {
            return Err(format!("rename: {earlier} and {from} are both renamed to {to}; give each its own name"));
        }
        if let Some((parent, _)) = rename.iter().find(|(other, _)| other != from && from.segments().starts_with(other.segments())) {
            return Err(format!("rename: {from} is inside {parent}, which is renamed too; rename one of them"));
        }
    }
    Ok(())
}

/// The record's JSON object, or only the fields at `reads` (none of which indexes an array).
fn read_fields(record: Record<'_>, reads: Option<&[FieldPath]>) -> Result<Map<String, Value>, String> {
    let Some(reads) = reads else { return record.json_object() };
    require_object(record)?;
    let mut object = Map::new();
    for (path, value) in reads.iter().zip(record.fields(reads)?) {
        if let Some(value) = value {
            // A value read at a top-level member spelt like the path (no nested field there)
            // stays one, where the expression's lookup finds it, as in the whole record.
            if path.set(&mut object, value.clone()).is_err() {
                object.insert(path.to_string(), value);
            }
        }
    }
    Ok(object)
}

/// Refuses a record whose payload is not a JSON object, with the reason the whole-record
/// parse gives: reading only the kept fields would otherwise turn `[1, 2]` or `42` into `{}`.
fn require_object(record: Record<'_>) -> Result<(), String> {
    match record.value().iter().find(|byte| !byte.is_ascii_whitespace()) {
        Some(b'{') => Ok(()),
        _ => record.json_object().map(|_| ()),
    }
}

/// The fields of `record` at the `keep` paths (none of which indexes an array), in a new
/// object, with their exact text.
fn keep_only_text<'r>(record: &RawObject<'r>, keep: &[FieldPath]) -> Result<RawObject<'r>, String> {
    let mut kept = RawObject::new();
    for path in keep {
        if let Some(value) = record.get_nested(path) {
            kept.set(path, value.into_owned())?;
        } else if let Some(value) = record.get(path) {
            // A top-level member spelt like the whole path stays one.
            kept.set_member(&path.to_string(), value.into_owned());
        }
    }
    Ok(kept)
}

/// The fields of `record` at the `keep` paths, in a new object.
fn keep_only(record: &Map<String, Value>, keep: &[FieldPath]) -> Result<Map<String, Value>, String> {
    let mut kept = Map::new();
    for path in keep {
        if path.get_nested(record).is_some() {
            copy_path(record, &mut kept, path.segments());
        } else if let Some(value) = path.get(record) {
            // A top-level member spelt like the whole path stays one.
            kept.insert(path.to_string(), value.clone());
        }
    }
    Ok(kept)
}

/// Copies the value at `segments` (present in `from`) into `into`, with the objects and arrays
/// on its way: an array element keeps its index, the elements before it not kept being null
/// (as jq's `pick`).
fn copy_path(from: &Map<String, Value>, into: &mut Map<String, Value>, segments: &[String]) {
    let Some((first, rest)) = segments.split_first() else { return };
    let Some(mut source) = from.get(first) else { return };
    let mut target = into.entry(first.clone()).or_insert_with(|| empty_like(source));
    for segment in rest {
        let (next_source, next_target) = match (source, target) {
            (Value::Object(members), Value::Object(kept)) => {
                let Some(member) = members.get(segment) else { return };
                (member, kept.entry(segment.clone()).or_insert(Value::Null))
            }
            (Value::Array(items), Value::Array(kept)) => {
                let Some((index, item)) = segment.parse::<usize>().ok().and_then(|index| Some((index, items.get(index)?))) else { return };
                if kept.len() <= index {
                    kept.resize(index + 1, Value::Null);
                }
                (item, &mut kept[index])
            }
            _ => return,
        };
        if next_target.is_null() {
            *next_target = empty_like(next_source);
        }
        (source, target) = (next_source, next_target);
    }
    *target = source.clone();
}

/// Whether a path has a numeric segment below its top level, which indexes an array if there
/// is one there.
fn may_index_an_array(path: &FieldPath) -> bool {
    path.segments().iter().skip(1).any(|segment| segment.parse::<usize>().is_ok())
}

/// An empty object or array in place of a container; a copy of anything else.
fn empty_like(value: &Value) -> Value {
    match value {
        Value::Object(_) => Value::Object(Map::new()),
        Value::Array(_) => Value::Array(Vec::new()),
        other => other.clone(),
    }
}

sluice_sdk::export_operator!(Project);

#[cfg(test)]
mod tests;
