//! The masking rules: which field gets which treatment, checked for overlaps, applied to a
//! record's object in place.

use sluice_sdk::FieldPath;
use sluice_sdk::edit::RawObject;
use sluice_sdk::serde_json::value::RawValue;
use sluice_sdk::serde_json::{self, Value};

use crate::pseudonym::Pseudonymiser;
use crate::truncate::Truncation;

/// What a rule does to its field.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Pseudonymise,
    Redact,
    Drop,
    Truncate(Truncation),
}

impl Action {
    /// The config key that lists the rule.
    pub fn config_key(&self) -> &'static str {
        match self {
            Action::Pseudonymise => "pseudonymise",
            Action::Redact => "redact",
            Action::Drop => "drop",
            Action::Truncate(_) => "truncate",
        }
    }
}

/// One field and what is done to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub path: FieldPath,
    pub action: Action,
}

/// Refuses a field named twice, or inside a field that another rule masks already: each field
/// is masked by exactly one rule, so the outcome never depends on the order of the rules.
/// Segments that read as the same array index (`0`, `00`, `+0`) count as the same segment.
pub fn check_disjoint(rules: &[Rule]) -> Result<(), String> {
    for (position, first) in rules.iter().enumerate() {
        for second in &rules[position + 1..] {
            let (first_path, second_path) = (first.path.segments(), second.path.segments());
            let (first_key, second_key) = (first.action.config_key(), second.action.config_key());
            let same_text = if first_path == second_path { String::new() } else { format!(" (as {})", second.path) };
            if same_path(first_path, second_path) && first_key == second_key {
                return Err(format!("{} is listed twice{same_text} in `{first_key}`: list it once", first.path));
            }
            if same_path(first_path, second_path) {
                return Err(format!(
                    "{} is in both `{first_key}` and `{second_key}`{same_text}: a field is masked by one rule only, keep the one you mean",
                    first.path
                ));
            }
            let (outer, inner) = if starts_with(second_path, first_path) { (first, second) } else { (second, first) };
            if starts_with(inner.path.segments(), outer.path.segments()) {
                return Err(format!(
                    "{} (in `{}`) lies inside {} (in `{}`), which that rule masks whole: remove one of the two",
                    inner.path,
                    inner.action.config_key(),
                    outer.path,
                    outer.action.config_key()
                ));
            }
        }
    }
    Ok(())
}

/// Whether two paths name the same field: equal segment by segment, array indexes by value.
fn same_path(first: &[String], second: &[String]) -> bool {
    first.len() == second.len() && starts_with(first, second)
}

/// Whether `path` begins with `prefix`, array indexes compared by value.
fn starts_with(path: &[String], prefix: &[String]) -> bool {
    path.len() >= prefix.len() && path.iter().zip(prefix).all(|(left, right)| same_segment(left, right))
}

/// Equal text, or the same array index however it is spelt.
fn same_segment(left: &str, right: &str) -> bool {
    left == right || matches!((array_index(left), array_index(right)), (Some(left), Some(right)) if left == right)
}

/// The array index a segment names when its parent is an array (as `usize` parses it, so
/// `00` and `+0` are index 0).
fn array_index(segment: &str) -> Option<usize> {
    segment.parse().ok()
}

/// A rule ready to apply: its path, and the top-level key spelt like the whole path, tried
/// too (a key that itself contains a dot).
struct Step {
    rule: Rule,
    literal_key: Option<String>,
}

/// Applies the rules to records.
pub struct Masker {
    /// Every rule that rewrites a value, in the order given, then the drops, so that every
    /// rule reads the array indexes of the record as it came; drops of elements of one array
    /// run from the highest index down, so that no drop moves an element another one names.
    steps: Vec<Step>,
    /// Present whenever a rule pseudonymises (`init` refuses to start otherwise).
    pub pseudonymiser: Option<Pseudonymiser>,
    redaction: String,
    /// Canonical text of the value being pseudonymised, reused across values.
    scratch: String,
}

impl Masker {
    /// A masker applying `rules` (already checked by [`check_disjoint`]).
    pub fn new(rules: Vec<Rule>, pseudonymiser: Option<Pseudonymiser>, redaction: String) -> Masker {
        let (mut drops, mut ordered): (Vec<Rule>, Vec<Rule>) = rules.into_iter().partition(|rule| rule.action == Action::Drop);
        drops.sort_by(|first, second| drop_order(second).cmp(drop_order(first)));
        ordered.extend(drops);
        let steps = ordered
            .into_iter()
            .map(|rule| {
                let literal_key = (rule.path.segments().len() > 1).then(|| rule.path.to_string());
                Step { rule, literal_key }
            })
            .collect();
        Masker { steps, pseudonymiser, redaction, scratch: String::new() }
    }

    /// Masks the fields of `object` in place; returns how many values a truncation could not
    /// read (they are redacted). Missing fields stay missing; null values stay null, except
    /// that a dropped one is removed. The fields no rule names keep their exact text.
    pub fn mask(&mut self, object: &mut RawObject<'_>) -> u64 {
        let mut untruncatable = 0;
        for step in &self.steps {
            let (rule, literal_key) = (&step.rule, step.literal_key.as_deref());
            if rule.action == Action::Drop {
                object.remove(&rule.path);
                if let Some(key) = literal_key {
                    object.remove_member(key);
                }
                continue;
            }
            // Both the nested field and a top-level key spelt like the whole path, if present.
            let (pseudonymiser, scratch, redaction) = (&self.pseudonymiser, &mut self.scratch, self.redaction.as_str());
            if let Some(text) = object.get_nested(&rule.path) {
                let masked = mask_value(rule, &text, pseudonymiser, scratch, redaction, &mut untruncatable);
                if let Some(masked) = masked {
                    // The path holds a value, so setting it replaces that value.
                    let _ = object.set(&rule.path, masked);
                }
            }
            if let Some(key) = literal_key
                && let Some(text) = object.get_member(key)
                && let Some(masked) = mask_value(rule, &text, pseudonymiser, scratch, redaction, &mut untruncatable)
            {
                object.set_member(key, masked);
            }
        }
        untruncatable
    }
}

/// The JSON text of one value masked by `rule`: `None` to leave it (null stays null). Counts
/// in `untruncatable` a value a truncation could not read (it is then redacted).
fn mask_value(
    rule: &Rule,
    text: &RawValue,
    pseudonymiser: &Option<Pseudonymiser>,
    scratch: &mut String,
    redaction: &str,
    untruncatable: &mut u64,
) -> Option<Box<RawValue>> {
    if text.get() == "null" {
        return None;
    }
    let masked = match (&rule.action, pseudonymiser) {
        (Action::Pseudonymise, Some(pseudonymiser)) => pseudonymiser.pseudonym_of_text(text, scratch).map_or(Value::Null, Value::String),
        (Action::Truncate(truncation), _) => {
            let value = serde_json::from_str::<Value>(text.get()).ok();
            value.and_then(|value| truncation.apply(&value)).unwrap_or_else(|| {
                *untruncatable += 1;
                Value::String(redaction.to_owned())
            })
        }
        // Redact, and (never reached) a pseudonymise rule without a key: nothing passes unmasked.
        _ => Value::String(redaction.to_owned()),
    };
    // A string, a number or null is always written; were it not, the value is redacted.
    Some(serde_json::value::to_raw_value(&masked).unwrap_or_else(|_| RawValue::NULL.to_owned()))
}

/// A drop's path as drops are ordered: segment by segment, so that of two elements of one
/// array (or fields inside them) the higher index sorts after.
fn drop_order(rule: &Rule) -> impl Iterator<Item = SortSegment<'_>> {
    rule.path.segments().iter().map(|segment| SortSegment::of(segment))
}

/// A path segment as drops are ordered: array indexes by value, other names by text.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum SortSegment<'s> {
    Index(usize),
    Name(&'s str),
}

impl<'s> SortSegment<'s> {
    fn of(segment: &'s str) -> SortSegment<'s> {
        array_index(segment).map_or(SortSegment::Name(segment), SortSegment::Index)
    }
}
