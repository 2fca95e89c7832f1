//! Errors in pipeline files, located and rendered like a compiler's.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::concealed::conceal_secrets;
use super::variables::Substituted;

/// A pipeline file's path and contents, for locating diagnostics; and the text that was
/// parsed, with its variables replaced (`variables.rs`).
#[derive(Debug, Clone)]
pub struct SourceText {
    path: PathBuf,
    contents: Arc<str>,
    substituted: Arc<Substituted>,
}

impl SourceText {
    /// A file without variables (or read before they are replaced).
    pub fn new(path: PathBuf, contents: String) -> SourceText {
        let substituted = Substituted::verbatim(contents.clone());
        SourceText { path, contents: contents.into(), substituted: Arc::new(substituted) }
    }

    /// A file whose variables were replaced as `substituted`.
    pub fn with_variables(path: PathBuf, contents: String, substituted: Substituted) -> SourceText {
        SourceText { path, contents: contents.into(), substituted: Arc::new(substituted) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file as written.
    pub fn contents(&self) -> &str {
        &self.contents
    }

    /// The text parsed: the file with its variables replaced.
    pub fn parsed(&self) -> &str {
        &self.substituted.text
    }

    /// A diagnostic pointing at `span` of the parsed text (reported where the file has it).
    pub fn diagnostic(&self, span: Option<Range<usize>>, message: impl Into<String>) -> Diagnostic {
        self.diagnostic_in_file(span.map(|span| self.substituted.original_span(span)), message)
    }

    /// A diagnostic pointing at `span` of the file as written.
    pub fn diagnostic_in_file(&self, span: Option<Range<usize>>, message: impl Into<String>) -> Diagnostic {
        let location = span.map(|span| self.locate(span));
        Diagnostic { path: self.path.clone(), location, message: message.into() }
    }

    fn locate(&self, span: Range<usize>) -> Location {
        let start = span.start.min(self.contents.len());
        let line_start = self.contents[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.contents[start..].find('\n').map_or(self.contents.len(), |i| start + i);
        let line_text = conceal_secrets(&self.contents, line_start, self.contents[line_start..line_end].trim_end_matches('\r'));
        let column = self.contents[line_start..start].chars().count() + 1;
        let end = span.end.clamp(start, line_end);
        let width = self.contents[start..end].chars().count().max(1);
        Location { line: self.contents[..start].matches('\n').count() + 1, column, width, line_text }
    }
}

/// One problem in a pipeline file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: PathBuf,
    pub location: Option<Location>,
    pub message: String,
}

/// Where in the file: 1-based line and column, and the line itself (values that may be
/// secrets starred: `concealed.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
    pub width: usize,
    pub line_text: String,
}

impl Diagnostic {
    /// `path:line:column: message` on one line (a log event), without the file's line drawn.
    pub fn one_line(&self) -> String {
        let message = self.shown_message().replace('\n', " ");
        match &self.location {
            Some(at) => format!("{}:{}:{}: {message}", self.path.display(), at.line, at.column),
            None => format!("{}: {message}", self.path.display()),
        }
    }

    /// The message, cut after [`Diagnostic::LONGEST_MESSAGE`] characters: a value quoted in it
    /// (a name, an unknown key) may be megabytes long.
    fn shown_message(&self) -> std::borrow::Cow<'_, str> {
        let Some((cut, _)) = self.message.char_indices().nth(Self::LONGEST_MESSAGE) else { return self.message.as_str().into() };
        let more = self.message[cut..].chars().count();
        format!("{}… ({more} more characters)", &self.message[..cut]).into()
    }

    const LONGEST_MESSAGE: usize = 2_000;

    /// A problem with the file as a whole (unreadable, for instance).
    pub fn without_location(path: &Path, message: impl Into<String>) -> Diagnostic {
        Diagnostic { path: path.to_path_buf(), location: None, message: message.into() }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        let Some(location) = &self.location else {
            return write!(f, "error: {}\n  --> {path}", self.shown_message());
        };
        let gutter = " ".repeat(location.line.to_string().len());
        writeln!(f, "error: {}", self.shown_message())?;
        writeln!(f, "{gutter}--> {path}:{}:{}", location.line, location.column)?;
        writeln!(f, "{gutter} |")?;
        let excerpt = Excerpt::around(&location.line_text, location.column - 1);
        writeln!(f, "{} | {}", location.line, excerpt.text)?;
        let pad: String = excerpt.text.chars().take(excerpt.caret_at).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
        let width = location.width.min(excerpt.text.chars().count().saturating_sub(excerpt.caret_at).max(1));
        write!(f, "{gutter} | {pad}{}", "^".repeat(width))
    }
}

/// The part of a line shown under a diagnostic: at most [`Excerpt::WIDEST`] characters around
/// the column (a binary file's "line" can be megabytes), with control characters shown as
/// their Unicode pictures (␀, ␛) so that the terminal prints them rather than obeys them.
struct Excerpt {
    text: String,
    /// The caret's column in `text`, counted in characters from 0.
    caret_at: usize,
}

impl Excerpt {
    const WIDEST: usize = 160;

    fn around(line: &str, column: usize) -> Excerpt {
        let length = line.chars().count();
        let first = if length <= Self::WIDEST { 0 } else { column.saturating_sub(Self::WIDEST / 2).min(length - Self::WIDEST) };
        let last = (first + Self::WIDEST).min(length);
        let mut text: String = if first > 0 { "…".to_owned() } else { String::new() };
        text.extend(line.chars().skip(first).take(last - first).map(visible));
        if last < length {
            text.push('…');
        }
        Excerpt { text, caret_at: column - first + usize::from(first > 0) }
    }
}

/// A control character as its picture (U+2400 block); a tab stays a tab.
fn visible(character: char) -> char {
    match character {
        '\t' => '\t',
        '\u{0}'..='\u{1f}' => char::from_u32(0x2400 + character as u32).unwrap_or('\u{fffd}'),
        '\u{7f}' => '\u{2421}',
        '\u{80}'..='\u{9f}' => '\u{fffd}',
        other => other,
    }
}

/// Every problem found in a pipeline file, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(Vec<Diagnostic>);

impl Diagnostics {
    pub fn single(diagnostic: Diagnostic) -> Diagnostics {
        Diagnostics(vec![diagnostic])
    }

    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.0.push(diagnostic);
    }

    /// Adds every diagnostic of `other`.
    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }

    /// `Ok(())` when there is no problem.
    pub fn into_result(mut self) -> Result<(), Diagnostics> {
        // Problems with the whole file first, then in file order.
        self.0.sort_by_key(|d| d.location.as_ref().map(|l| (l.line, l.column)));
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (number, diagnostic) in self.0.iter().enumerate() {
            if number > 0 {
                writeln!(f)?;
                writeln!(f)?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(contents: &str, span: Range<usize>) -> String {
        SourceText::new(PathBuf::from("p.toml"), contents.to_owned()).diagnostic_in_file(Some(span), "bad").to_string()
    }

    #[test]
    fn control_characters_are_shown_as_their_pictures_under_the_caret() {
        let shown = rendered("name = \"a\u{1}b\u{1b}[2J\"\n", 9..10);
        assert!(shown.contains("1 | name = \"a\u{2401}b\u{241b}[2J\""), "{shown}");
        assert!(shown.ends_with("  |          ^"), "{shown}");
        assert!(!shown.contains('\u{1b}'), "{shown}");
    }

    #[test]
    fn a_long_line_is_cut_around_the_column() {
        let line = format!("{}X{}", "a".repeat(10_000), "b".repeat(10_000));
        let shown = rendered(&line, 10_000..10_001);
        let excerpt = shown.lines().nth(3).unwrap();
        assert!(excerpt.starts_with("1 | …a") && excerpt.ends_with("b…"), "{excerpt}");
        assert!(excerpt.chars().count() < 200, "{excerpt}");
        let caret_line = shown.lines().nth(4).unwrap();
        let x_at = excerpt.chars().position(|c| c == 'X').unwrap();
        assert_eq!(caret_line.chars().position(|c| c == '^'), Some(x_at), "{shown}");
    }

    #[test]
    fn a_short_line_is_shown_whole() {
        let shown = rendered("type = 3\n", 7..8);
        assert!(shown.contains("1 | type = 3\n  |        ^"), "{shown}");
    }

    /// A megabyte-long name quoted in a message is cut, and says how much was left out.
    #[test]
    fn a_message_quoting_a_huge_value_is_cut() {
        let message = format!("bad name {}", "n".repeat(1_000_000));
        let diagnostic = Diagnostic::without_location(Path::new("p.toml"), message);
        let shown = diagnostic.to_string();
        assert!(shown.len() < 2_100 && shown.contains("… (998009 more characters)"), "{}", &shown[..100]);
        assert!(diagnostic.one_line().len() < 2_100);
    }
}
