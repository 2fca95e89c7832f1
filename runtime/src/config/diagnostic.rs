//! Errors in pipeline files, located and rendered like a compiler's.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
        let line_text = self.contents[line_start..line_end].trim_end_matches('\r').to_owned();
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

/// Where in the file: 1-based line and column, and the line itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
    pub width: usize,
    pub line_text: String,
}

impl Diagnostic {
    /// A problem with the file as a whole (unreadable, for instance).
    pub fn without_location(path: &Path, message: impl Into<String>) -> Diagnostic {
        Diagnostic { path: path.to_path_buf(), location: None, message: message.into() }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        let Some(location) = &self.location else {
            return write!(f, "error: {}\n  --> {path}", self.message);
        };
        let gutter = " ".repeat(location.line.to_string().len());
        writeln!(f, "error: {}", self.message)?;
        writeln!(f, "{gutter}--> {path}:{}:{}", location.line, location.column)?;
        writeln!(f, "{gutter} |")?;
        writeln!(f, "{} | {}", location.line, location.line_text)?;
        let pad: String = location.line_text.chars().take(location.column - 1).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
        write!(f, "{gutter} | {pad}{}", "^".repeat(location.width))
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
