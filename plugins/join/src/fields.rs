//! Reading the numbers `within` and `best` name: a left record's interval, a right record's rank.

use serde::{Deserialize, Serialize};
use sluice_sdk::{FieldPath, json};

/// The event times a left record matches, both bounds included (epoch milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interval {
    pub from: i64,
    pub to: i64,
}

impl Interval {
    /// Reads `from` and `to` (their JSON text, if present): `Ok(None)` when either is absent or
    /// null. Fractional bounds are rounded inward, as event times are whole milliseconds.
    pub fn read(from: (&FieldPath, Option<&[u8]>), to: (&FieldPath, Option<&[u8]>)) -> Result<Option<Interval>, String> {
        let (Some(start), Some(end)) = (read_bound(from, f64::ceil)?, read_bound(to, f64::floor)?) else { return Ok(None) };
        Ok(Some(Interval { from: start, to: end }))
    }

    pub fn contains(&self, timestamp: i64) -> bool {
        self.from <= timestamp && timestamp <= self.to
    }

    /// Whether no right record it matches is still expected at `watermark` (records before the
    /// watermark are late): the watermark passed `to`, or the input ended.
    pub fn is_closed_by(&self, watermark: i64) -> bool {
        end_is_passed(self.to, watermark)
    }
}

/// A bound in whole milliseconds: a JSON integer within the i64 range exactly (a double holds
/// integers exactly only up to 2⁵³), another number rounded by `round` (inward), saturating.
fn read_bound((field, text): (&FieldPath, Option<&[u8]>), round: fn(f64) -> f64) -> Result<Option<i64>, String> {
    if let Some(exact) = text.and_then(json::text_integer).and_then(|integer| i64::try_from(integer).ok()) {
        return Ok(Some(exact));
    }
    // `as` saturates: bounds beyond the i64 range stay ordered.
    Ok(read_number(field, text)?.map(|number| round(number) as i64))
}

/// Whether `watermark` passed the inclusive end `to`, or the input ended.
pub fn end_is_passed(to: i64, watermark: i64) -> bool {
    to < watermark || watermark == i64::MAX
}

/// The number at `field` (its JSON text, if present): `Ok(None)` when absent or null, an
/// error a user can act on for anything else that is not a finite number.
pub fn read_number(field: &FieldPath, text: Option<&[u8]>) -> Result<Option<f64>, String> {
    text.map_or(Ok(None), |text| json::finite_text_number(field, text))
}

/// The number at `field` of a kept record's JSON text; `None` if it has none (the record was
/// kept under another configuration).
pub fn kept_number(field: &FieldPath, text: &[u8]) -> Option<f64> {
    let found = json::lookup_texts(text, std::slice::from_ref(field)).ok()?;
    read_number(field, found.first().copied().flatten()).ok().flatten()
}
