//! Where in a pipeline file something is that serde's structs keep no position for: the value
//! a plugin refused in its configuration (the path the Rust SDK puts before the reason, `any[1].op:
//! unknown variant ...`, followed through the file's TOML), and a key of a map such as a
//! connector's `properties`, so that an error points at it rather than at the whole table.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One step of a path into a configuration.
#[derive(Debug, PartialEq)]
enum Step<'r> {
    Key(&'r str),
    Index(usize),
}

/// The span in `text` (the parsed pipeline file) of the value the refusal `reason` of operator
/// number `operator` (among `[[operators]]`) names by its path; `None` when the reason starts
/// with no path or the file has nothing there.
pub fn refused_value_span(text: &str, operator: usize, reason: &str) -> Option<Range<usize>> {
    let (steps, rest) = match (path_of(reason), quoted_path_of(reason)) {
        (Some(steps), _) => (steps, reason.split_once(": ").map_or(reason, |(_, rest)| rest)),
        (None, Some(steps)) => (steps, reason),
        (None, None) => (Vec::new(), reason),
    };
    let document = DeTable::parse(text).ok()?;
    let operators = entry(document.get_ref(), "operators")?;
    let DeValue::Array(operators) = operators.get_ref() else { return None };
    let DeValue::Table(operator) = operators.get(operator)?.get_ref() else { return None };
    let config = entry(operator, "config");
    // serde's "unknown field `x`, expected …": the key `x` of the table the path leads to.
    if let Some(unknown) = unknown_field(rest)
        && let Some(table) = config.and_then(|config| follow(config, &steps))
        && let DeValue::Table(fields) = table.get_ref()
        && let Some((key, _)) = fields.iter().find(|(name, _)| name.get_ref().as_ref() == unknown)
    {
        return Some(key.span());
    }
    if steps.is_empty() {
        return None;
    }
    let in_config = config.and_then(|config| follow(config, &steps)).map(Spanned::span);
    // `inputs: …` refuses what the operator reads, when its configuration has no `inputs`.
    in_config.or_else(|| (steps == [Step::Key("inputs")]).then(|| entry(operator, "inputs")).flatten().map(Spanned::span))
}

/// The name in a refusal that starts with serde's "unknown field `name`".
fn unknown_field(reason: &str) -> Option<&str> {
    reason.strip_prefix("unknown field `")?.split_once('`').map(|(name, _)| name)
}

/// The value at the end of `steps` from `value`.
fn follow<'t, 'i>(mut value: &'t Spanned<DeValue<'i>>, steps: &[Step<'_>]) -> Option<&'t Spanned<DeValue<'i>>> {
    for step in steps {
        value = match (value.get_ref(), step) {
            (DeValue::Table(table), Step::Key(key)) => entry(table, key)?,
            (DeValue::Array(array), Step::Index(index)) => array.get(*index)?,
            _ => return None,
        };
    }
    Some(value)
}

/// The span in `text` (the parsed pipeline file) of the key `key` of the table whose own span
/// (as a `Spanned` field gives it) is `table`, or of its sub-table `within` when given (a
/// connector's `properties`); `None` when the file has no such key there.
pub fn key_span(text: &str, table: Range<usize>, within: Option<&str>, key: &str) -> Option<Range<usize>> {
    key_and_value_spans(text, table, within, key).map(|(key, _)| key)
}

/// Like [`key_span`], the span of the key's value: where a refused value is pointed at.
pub fn value_span(text: &str, table: Range<usize>, key: &str) -> Option<Range<usize>> {
    key_and_value_spans(text, table, None, key).map(|(_, value)| value)
}

/// [`value_span`] of `key` in the sub-table `within` (a connector's `properties`).
pub fn value_span_within(text: &str, table: Range<usize>, within: &str, key: &str) -> Option<Range<usize>> {
    key_and_value_spans(text, table, Some(within), key).map(|(_, value)| value)
}

fn key_and_value_spans(text: &str, table: Range<usize>, within: Option<&str>, key: &str) -> Option<(Range<usize>, Range<usize>)> {
    let document = DeTable::parse(text).ok()?;
    let found = table_at(&document, table)?;
    let found = match within {
        Some(within) => match entry(found, within)?.get_ref() {
            DeValue::Table(inner) => inner,
            _ => return None,
        },
        None => found,
    };
    found.iter().find(|(name, _)| name.get_ref().as_ref() == key).map(|(name, value)| (name.span(), value.span()))
}

/// The spans in `text` (the parsed pipeline file) of the elements of the array at `key` of the
/// table whose own span is `table` (a sink's `inputs`); empty when the file has none there.
pub fn array_element_spans(text: &str, table: Range<usize>, key: &str) -> Vec<Range<usize>> {
    let Ok(document) = DeTable::parse(text) else { return Vec::new() };
    match table_at(&document, table).and_then(|found| entry(found, key)).map(Spanned::get_ref) {
        Some(DeValue::Array(elements)) => elements.iter().map(Spanned::span).collect(),
        _ => Vec::new(),
    }
}

/// The table of `document` (top level, or an element of an array of tables) whose span is `table`.
fn table_at<'t, 'i>(document: &'t Spanned<DeTable<'i>>, table: Range<usize>) -> Option<&'t DeTable<'i>> {
    let tables = document.get_ref().iter().flat_map(|(_, value)| match value.get_ref() {
        DeValue::Array(elements) => elements.iter().collect::<Vec<_>>(),
        _ => vec![value],
    });
    tables.filter(|value| value.span() == table).find_map(|value| match value.get_ref() {
        DeValue::Table(found) => Some(found),
        _ => None,
    })
}

/// The span in `text` (the parsed pipeline file) of the value of the key `key` of the
/// top-level table `table` (`[pipeline]`): where a refused setting is pointed at.
pub fn top_level_value_span(text: &str, table: &str, key: &str) -> Option<Range<usize>> {
    let document = DeTable::parse(text).ok()?;
    let DeValue::Table(found) = entry(document.get_ref(), table)?.get_ref() else { return None };
    found.iter().find(|(name, _)| name.get_ref().as_ref() == key).map(|(_, value)| value.span())
}

fn entry<'t, 'i>(table: &'t DeTable<'i>, key: &str) -> Option<&'t Spanned<DeValue<'i>>> {
    table.iter().find(|(name, _)| name.get_ref().as_ref() == key).map(|(_, value)| value)
}

/// The steps of the path before the first `: ` of `reason`, when it is one: names (letters,
/// digits, `_`, `-`) joined by `.`, each followed by any number of `[index]`.
fn path_of(reason: &str) -> Option<Vec<Step<'_>>> {
    let (path, _) = reason.split_once(": ")?;
    steps_of(path)
}

/// The path a refusal starts with between backquotes (`` `k` must be between 2 and 256 ``), as
/// the shipped plugins name the key whose value is out of range.
fn quoted_path_of(reason: &str) -> Option<Vec<Step<'_>>> {
    let (path, _) = reason.strip_prefix('`')?.split_once('`')?;
    steps_of(path)
}

/// The steps of a path such as `a.b[2][3].c`.
fn steps_of(path: &str) -> Option<Vec<Step<'_>>> {
    let is_name_character = |character: char| character.is_ascii_alphanumeric() || character == '_' || character == '-';
    let mut steps = Vec::new();
    for part in path.split('.') {
        let (name, indexes) = part.split_once('[').map_or((part, None), |(name, rest)| (name, Some(rest)));
        if name.is_empty() || !name.chars().all(is_name_character) {
            return None;
        }
        steps.push(Step::Key(name));
        let mut rest = indexes;
        while let Some(indexes) = rest {
            let (index, after) = indexes.split_once(']')?;
            steps.push(Step::Index(index.parse().ok()?));
            rest = match after {
                "" => None,
                after => Some(after.strip_prefix('[')?),
            };
        }
    }
    Some(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[[operators]]
name = "first"
config = { any = [{ field = "a", op = "gt" }, { field = "a", op = "bigger" }] }

[[operators]]
name = "second"
inputs = ["first"]
[operators.config]
field = "event_type"
op = "between"
window = { size = "ten" }
"#;

    fn located(operator: usize, reason: &str) -> Option<&'static str> {
        refused_value_span(FILE, operator, reason).map(|span| &FILE[span])
    }

    #[test]
    fn the_path_before_the_reason_leads_to_the_refused_value() {
        assert_eq!(located(0, "any[1].op: unknown variant `bigger`"), Some("\"bigger\""));
        assert_eq!(located(0, "any[1]: unknown field `x`"), Some("{ field = \"a\", op = \"bigger\" }"));
        assert_eq!(located(1, "op: unknown variant `between`"), Some("\"between\""));
        assert_eq!(located(1, "window.size: not a duration"), Some("\"ten\""));
        assert_eq!(located(1, "inputs: a join reads two"), Some("[\"first\"]"), "the operator's inputs");
        assert_eq!(located(0, "inputs: a join reads two"), None);
    }

    #[test]
    fn an_unknown_field_is_located_at_its_key() {
        assert_eq!(located(1, "unknown field `window`, expected `field` or `op`"), Some("window"));
        assert_eq!(located(1, "window: unknown field `size`, expected `length`"), Some("size"));
        assert_eq!(located(0, "any[1]: unknown field `op`, expected `field`"), Some("op"));
        assert_eq!(located(1, "unknown field `absent`, expected `field`"), None);
    }

    #[test]
    fn a_reason_without_a_path_or_with_one_the_file_lacks_is_not_located() {
        assert_eq!(located(1, "predicate on price: this comparison needs a `value`"), None);
        assert_eq!(located(1, "no predicate"), None);
        assert_eq!(located(0, "any[2].op: out of the list"), None);
        assert_eq!(located(1, "missing.key: absent"), None);
        assert_eq!(located(2, "op: no such operator"), None);
        assert_eq!(located(0, "any[x]: not an index"), None);
        assert_eq!(located(0, "any[1]x: not a path"), None);
        assert_eq!(located(0, "[0]: a list at the top"), None);
    }

    #[test]
    fn a_path_quoted_at_the_start_of_the_reason_leads_to_the_refused_value() {
        assert_eq!(located(0, "`any[1].op` must be one of gt, lt"), Some("\"bigger\""));
        assert_eq!(located(0, "`missing` must be at least 1"), None);
    }

    #[test]
    fn paths_are_read_step_by_step() {
        assert_eq!(path_of("a.b[2][3].c: why"), Some(vec![Step::Key("a"), Step::Key("b"), Step::Index(2), Step::Index(3), Step::Key("c")]));
        assert_eq!(path_of("sliding-size: why"), Some(vec![Step::Key("sliding-size")]));
        assert_eq!(path_of("a..b: why"), None);
        assert_eq!(path_of("no colon"), None);
    }
}
