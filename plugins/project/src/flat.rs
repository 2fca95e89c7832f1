//! The fast path of `project`: a `keep` list of top-level fields (plus computed ones) is
//! written straight from the input's JSON text, without building a JSON object per record,
//! and indexed as it is written (the next operator reads its fields in place).

use sluice_sdk::fields::{FieldName, ObjectWriter};
use sluice_sdk::{FieldLookup, FieldPath, Record};

use sluice_sdk::expression::{BoundExpression, Expression};

/// A projection that only keeps top-level fields: each output field is read or computed.
pub struct FlatProjection {
    /// Fields read from each record: kept ones first, then expression inputs.
    reads: FieldLookup,
    /// Output fields in order, with their names.
    outputs: Vec<(FieldName, Source)>,
}

enum Source {
    /// The value of `reads[index]`, copied as it is.
    Read(usize),
    /// The result of an expression computing the field named first, its fields bound to
    /// their positions in `reads`.
    Computed(FieldPath, BoundExpression),
}

impl FlatProjection {
    /// The flat form of a projection, when it has one: `keep` set, every kept, computed,
    /// dropped and renamed field top-level, and no rename onto another output field.
    pub fn plan(
        compute: &[(FieldPath, Expression)],
        keep: Option<&[FieldPath]>,
        drop: &[FieldPath],
        rename: &[(FieldPath, FieldPath)],
    ) -> Option<FlatProjection> {
        let keep = keep?;
        let top_level = |path: &FieldPath| path.segments().len() == 1;
        let all_top_level =
            keep.iter().chain(drop).chain(compute.iter().map(|(path, _)| path)).chain(rename.iter().flat_map(|(from, to)| [from, to]));
        if !all_top_level.into_iter().all(top_level) {
            return None;
        }
        let mut names: Vec<&FieldPath> = Vec::new();
        for path in keep.iter().filter(|path| !drop.contains(path)) {
            if !names.contains(&path) {
                names.push(path);
            }
        }
        let final_names: Vec<&FieldPath> =
            names.iter().map(|path| rename.iter().find(|(from, _)| from == *path).map_or(*path, |(_, to)| to)).collect();
        if (1..final_names.len()).any(|i| final_names[..i].contains(&final_names[i])) {
            return None;
        }
        let computed = |path: &FieldPath| compute.iter().find(|(target, _)| target == path);
        // An expression that reads a field computed before it (in name order) sees it
        // computed: the general path evaluates them one after the other; this one reads the
        // record only. Reading its own name (`price = "0.908 * price"`) reads the record's.
        let reads_an_earlier_result = compute.iter().enumerate().any(|(position, (_, expression))| {
            expression.fields().iter().any(|field| compute[..position].iter().any(|(target, _)| target == field))
        });
        if reads_an_earlier_result {
            return None;
        }
        let mut reads: Vec<FieldPath> = names.iter().filter(|path| computed(path).is_none()).map(|path| (*path).clone()).collect();
        reads.extend(compute.iter().flat_map(|(_, expression)| expression.fields()));
        // Expressions are bound once every path read is known (theirs come last).
        let mut outputs = Vec::new();
        for (path, name) in names.iter().zip(&final_names) {
            let source = match computed(path) {
                Some((target, expression)) => Source::Computed(target.clone(), expression.bind(&reads)),
                None => Source::Read(reads.iter().position(|read| read == *path)?),
            };
            outputs.push((FieldName::new(name.leaf()), source));
        }
        Some(FlatProjection { reads: FieldLookup::new(reads), outputs })
    }

    /// Writes the projected object of `record` into `out` (cleared first). `values` is room
    /// for the fields' texts, reused from record to record.
    pub fn write<'a>(&self, record: Record<'a>, out: &mut ObjectWriter, values: &mut Vec<Option<&'a [u8]>>) -> Result<(), String> {
        record.look_up_into(&self.reads, values)?;
        let values = &values[..];
        out.clear();
        for (name, source) in &self.outputs {
            match source {
                Source::Read(index) => {
                    let Some(text) = values[*index] else { continue };
                    out.named_field(name, text);
                }
                Source::Computed(target, expression) => {
                    let value = expression.finite_number_texts(values).map_err(|error| format!("compute {target}: {error}"))?;
                    out.named_field_written(name, |text| sluice_sdk::json::write_number(text, value));
                }
            }
        }
        Ok(())
    }
}
