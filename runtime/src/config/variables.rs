//! `${NAME}` and `${NAME:-default}` in pipeline files: replaced by environment variables
//! (which `sluice run --set NAME=value` also sets) before the TOML is parsed, so that one file
//! serves a laptop and production. Positions in the substituted text map back to the file, so
//! diagnostics point at what the user wrote.

use std::ops::Range;

/// One `${...}` and what replaced it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Replacement {
    /// Where it was in the file.
    original: Range<usize>,
    /// Where its value is in the substituted text.
    substituted: Range<usize>,
}

/// A file's text with its variables replaced, and how to find the file's positions again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Substituted {
    pub text: String,
    replacements: Vec<Replacement>,
}

impl Substituted {
    /// A text without variables: positions are the file's.
    pub fn verbatim(text: String) -> Substituted {
        Substituted { text, replacements: Vec::new() }
    }

    /// The span of the file that `span` of the substituted text came from: a span inside a
    /// variable's value points at the whole `${...}`.
    pub fn original_span(&self, span: Range<usize>) -> Range<usize> {
        self.original_offset(span.start, false)..self.original_offset(span.end, true)
    }

    fn original_offset(&self, offset: usize, end: bool) -> usize {
        let mut shift: isize = 0;
        for replacement in &self.replacements {
            if offset < replacement.substituted.start || (end && offset == replacement.substituted.start) {
                break;
            }
            if offset < replacement.substituted.end || (end && offset == replacement.substituted.end) {
                return if end { replacement.original.end } else { replacement.original.start };
            }
            shift = replacement.original.end as isize - replacement.substituted.end as isize;
        }
        offset.saturating_add_signed(shift)
    }
}

/// A variable that is used without a default and not set: where, and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    pub span: Range<usize>,
    pub message: String,
}

/// Replaces every `${NAME}` and `${NAME:-default}` of `text` by `lookup(NAME)` (the default
/// when that is `None` or empty); `$${` writes a literal `${`. Returns every problem at once.
pub fn substitute(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<Substituted, Vec<Unresolved>> {
    let mut out = Substituted::default();
    let mut problems = Vec::new();
    let mut rest = 0;
    while let Some(found) = text[rest..].find("${") {
        let start = rest + found;
        if text[..start].ends_with('$') {
            // `$${`: a literal `${`.
            out.text.push_str(&text[rest..start - 1]);
            out.text.push_str("${");
            shift_for_escape(&mut out, start - 1);
            rest = start + 2;
            continue;
        }
        out.text.push_str(&text[rest..start]);
        let line_end = text[start..].find('\n').map_or(text.len(), |at| start + at);
        let Some(length) = closing_brace(&text[start..line_end]) else {
            problems.push(Unresolved {
                span: start..text.len().min(start + 2),
                message: "`${` is not closed by `}`: write `$${` for a literal `${`".into(),
            });
            rest = start + 2;
            continue;
        };
        let end = start + length + 1;
        let inside = &text[start + 2..end - 1];
        let (name, default) = match inside.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (inside, None),
        };
        let nested = default.and_then(|default| default.find("${")).filter(|at| !default.unwrap_or("")[..*at].ends_with('$'));
        let value = if let Some(at) = nested {
            let nested_start = start + 2 + name.len() + 2 + at;
            problems.push(Unresolved {
                span: nested_start..end,
                message: format!(
                    "the default of `${{{name}}}` cannot use another variable (nested `${{...}}` is not expanded): set {name} itself, \
                     e.g. with `--set {name}=...`, or write `$${{` for a literal `${{`"
                ),
            });
            String::new()
        } else if !is_variable_name(name) {
            problems.push(Unresolved {
                span: start..end,
                message: format!("`{}` is not a variable: names are letters, digits and `_`, not starting with a digit", &text[start..end]),
            });
            String::new()
        } else {
            // As in a shell: a default stands in for an unset or empty variable; without one,
            // an empty variable gives its empty value, and only an unset one is an error.
            // A default's `$${` is a literal `${` too: `${A:-$${B}}` gives `${B}`.
            let default = default.map(|default| default.replace("$${", "${"));
            match (lookup(name), default) {
                (Some(value), Some(default)) if value.is_empty() => default,
                (Some(value), _) => value,
                (None, Some(default)) => default,
                (None, None) => {
                    problems.push(Unresolved {
                        span: start..end,
                        message: format!(
                            "variable {name} is not set: set it in the environment or with `--set {name}=...`, or give a default: `${{{name}:-...}}`"
                        ),
                    });
                    String::new()
                }
            }
        };
        let at = out.text.len();
        out.text.push_str(&value);
        out.replacements.push(Replacement { original: start..end, substituted: at..out.text.len() });
        rest = end;
    }
    out.text.push_str(&text[rest..]);
    if problems.is_empty() { Ok(out) } else { Err(problems) }
}

/// Where the `}` closing the variable that starts `line` lies: the first `}`, except that an
/// escaped `$${...}` in a default is passed over when a `}` follows it before any other `${`
/// (`${A:-$${B}}`).
fn closing_brace(line: &str) -> Option<usize> {
    let first = line.find('}')?;
    let Some(escape) = line[..first].find("$${") else { return Some(first) };
    let after_escape = escape + line[escape..].find('}')? + 1;
    let closing = line[after_escape..].find('}').map(|at| after_escape + at);
    Some(closing.filter(|closing| !line[after_escape..*closing].contains("${")).unwrap_or(first))
}

/// A `$` dropped by `$${` shifts the rest of the text by one: recorded as an empty replacement.
fn shift_for_escape(out: &mut Substituted, original_start: usize) {
    let at = out.text.len() - 2;
    out.replacements.push(Replacement { original: original_start..original_start + 1, substituted: at..at });
}

/// Whether `name` can name a variable: letters, digits and `_`, not starting with a digit.
pub fn is_variable_name(name: &str) -> bool {
    let mut characters = name.chars();
    characters.next().is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && characters.all(|character| character.is_ascii_alphanumeric() || character == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<String> {
        match name {
            "DIR" => Some("/data".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn variables_and_defaults_are_replaced() {
        let text = r#"path = "${DIR}/in.jsonl"
brokers = "${BROKERS:-127.0.0.1:9092}"
empty = "${EMPTY:-fallback}"
set_empty = "${EMPTY}"
literal = "$${DIR}""#;
        let substituted = substitute(text, lookup).expect("resolved");
        assert_eq!(
            substituted.text,
            "path = \"/data/in.jsonl\"\nbrokers = \"127.0.0.1:9092\"\nempty = \"fallback\"\nset_empty = \"\"\nliteral = \"${DIR}\""
        );
    }

    #[test]
    fn positions_map_back_to_the_file() {
        let text = "a = \"${DIR}\"\nbad = 1 2";
        let substituted = substitute(text, lookup).expect("resolved");
        let bad = substituted.text.find("1 2").expect("found");
        assert_eq!(substituted.original_span(bad..bad + 3), text.find("1 2").map(|at| at..at + 3).expect("found"));
        let value = substituted.text.find("/data").expect("value");
        assert_eq!(substituted.original_span(value..value + 5), 5..11, "inside a value: the whole ${{...}}");
    }

    #[test]
    fn every_unset_or_malformed_variable_is_reported_with_its_place() {
        let text = "a = \"${UNSET}\"\nb = \"${1X}\"\nc = \"${OPEN\"";
        let problems = substitute(text, lookup).expect_err("problems");
        assert_eq!(problems.len(), 3);
        assert_eq!(problems[0].span, 5..13);
        assert!(problems[0].message.starts_with("variable UNSET is not set"), "{}", problems[0].message);
        assert!(problems[1].message.contains("is not a variable"));
        assert!(problems[2].message.contains("is not closed"));
    }

    #[test]
    fn an_escaped_dollar_brace_in_a_default_is_a_literal_one() {
        let text = "a = \"${UNSET:-$${B}}\"\nb = \"${DIR:-$${B}}\"";
        let substituted = substitute(text, lookup).expect("substituted");
        assert_eq!(substituted.text, "a = \"${B}\"\nb = \"/data\"");
        let unclosed = substitute("a = \"${UNSET:-$${B}\"", lookup).expect("substituted");
        assert_eq!(unclosed.text, "a = \"${B\"", "without a second `}}`, the first one closes the variable");
        let then_another = substitute("a = \"${UNSET:-$${B} and ${DIR}\"", lookup).expect("substituted");
        assert_eq!(then_another.text, "a = \"${B and /data\"");
    }

    #[test]
    fn a_default_holding_another_variable_is_refused_at_it() {
        let text = "name = \"${UNSET:-${ALSO_UNSET:-nested}}\"";
        let problems = substitute(text, lookup).expect_err("nested");
        assert_eq!(problems.len(), 1);
        assert_eq!(&text[problems[0].span.clone()], "${ALSO_UNSET:-nested}");
        assert!(problems[0].message.contains("cannot use another variable"), "{}", problems[0].message);
    }
}
