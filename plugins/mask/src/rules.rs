//! The masking rules: which field gets which treatment, checked for overlaps, applied to a
//! record's object in place.

use sluice_sdk::FieldPath;
use sluice_sdk::serde_json::{Map, Value};

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
pub fn check_disjoint(rules: &[Rule]) -> Result<(), String> {
    for (position, first) in rules.iter().enumerate() {
        for second in &rules[position + 1..] {
            let (first_path, second_path) = (first.path.segments(), second.path.segments());
            let (first_key, second_key) = (first.action.config_key(), second.action.config_key());
            if first_path == second_path && first_key == second_key {
                return Err(format!("{} is listed twice in `{first_key}`: list it once", first.path));
            }
            if first_path == second_path {
                return Err(format!(
                    "{} is in both `{first_key}` and `{second_key}`: a field is masked by one rule only, keep the one you mean",
                    first.path
                ));
            }
            let (outer, inner) = if second_path.starts_with(first_path) { (first, second) } else { (second, first) };
            if inner.path.segments().starts_with(outer.path.segments()) {
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

/// Applies the rules to records.
pub struct Masker {
    pub rules: Vec<Rule>,
    /// Present whenever a rule pseudonymises (`init` refuses to start otherwise).
    pub pseudonymiser: Option<Pseudonymiser>,
    pub redaction: String,
    /// Canonical text of the value being pseudonymised, reused across values.
    pub scratch: String,
}

impl Masker {
    /// Masks the fields of `object` in place; returns how many values a truncation could not
    /// read (they are redacted). Missing fields stay missing and null values stay null.
    pub fn mask(&mut self, object: &mut Map<String, Value>) -> u64 {
        let mut untruncatable = 0;
        for rule in &self.rules {
            if rule.action == Action::Drop {
                remove_at(object, rule.path.segments());
                continue;
            }
            let Some(value) = value_at_mut(object, rule.path.segments()) else { continue };
            if value.is_null() {
                continue;
            }
            let redacted = || Value::String(self.redaction.clone());
            *value = match (&rule.action, &self.pseudonymiser) {
                (Action::Pseudonymise, Some(pseudonymiser)) => {
                    pseudonymiser.pseudonym_of_value(value, &mut self.scratch).map_or(Value::Null, Value::String)
                }
                (Action::Truncate(truncation), _) => truncation.apply(value).unwrap_or_else(|| {
                    untruncatable += 1;
                    redacted()
                }),
                // Redact, and (never reached) a pseudonymise rule without a key: nothing passes unmasked.
                _ => redacted(),
            };
        }
        untruncatable
    }
}

/// The value at `segments` (numeric segments index arrays), if present.
fn value_at_mut<'v>(object: &'v mut Map<String, Value>, segments: &[String]) -> Option<&'v mut Value> {
    let (first, rest) = segments.split_first()?;
    rest.iter().try_fold(object.get_mut(first)?, |value, segment| member_mut(value, segment))
}

fn member_mut<'v>(value: &'v mut Value, segment: &str) -> Option<&'v mut Value> {
    match value {
        Value::Object(fields) => fields.get_mut(segment),
        Value::Array(items) => items.get_mut(segment.parse::<usize>().ok()?),
        _ => None,
    }
}

/// Removes the value at `segments`, keeping the order of the other fields (an array element
/// is removed and the later ones move up).
fn remove_at(object: &mut Map<String, Value>, segments: &[String]) {
    let Some((last, parents)) = segments.split_last() else { return };
    if parents.is_empty() {
        object.shift_remove(last);
        return;
    }
    match value_at_mut(object, parents) {
        Some(Value::Object(fields)) => {
            fields.shift_remove(last);
        }
        Some(Value::Array(items)) => {
            if let Some(index) = last.parse::<usize>().ok().filter(|index| *index < items.len()) {
                items.remove(index);
            }
        }
        _ => {}
    }
}
