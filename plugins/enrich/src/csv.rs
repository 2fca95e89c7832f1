//! A small CSV reader: the subset of RFC 4180 that catalog exports use.
//!
//! Records end at `\n`, `\r\n` or `\r`; fields are separated by commas and kept verbatim
//! (spaces included). A field in double quotes may hold commas, line breaks and quotes, the
//! latter doubled (`"say ""hi"""`). A quote inside an unquoted field, text after a closing
//! quote and an unclosed quote are errors naming their line, rather than guesses. Blank lines
//! are skipped, and a UTF-8 byte order mark at the start is ignored.

/// One record of a CSV text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvRecord {
    /// The line the record starts on, from 1.
    pub line: usize,
    pub fields: Vec<String>,
}

/// Reads the records of a CSV text in order; stops after the first error.
pub struct CsvReader<'a> {
    text: &'a str,
    /// Byte offset of the next character to read: always at a character boundary, since it
    /// only ever moves past ASCII delimiters or to the end of a slice found by `find`.
    position: usize,
    /// The line `position` is on, from 1.
    line: usize,
}

impl<'a> CsvReader<'a> {
    pub fn new(text: &'a str) -> CsvReader<'a> {
        CsvReader { text: text.strip_prefix('\u{feff}').unwrap_or(text), position: 0, line: 1 }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.position).copied()
    }

    fn rest(&self) -> &'a str {
        self.text.get(self.position..).unwrap_or_default()
    }

    /// Consumes a line ending if one is next: `\n`, `\r\n` or `\r`.
    fn end_line(&mut self) -> bool {
        match self.peek() {
            Some(b'\n') => self.position += 1,
            Some(b'\r') => self.position += if self.rest().starts_with("\r\n") { 2 } else { 1 },
            _ => return false,
        }
        self.line += 1;
        true
    }

    fn read_record(&mut self) -> Result<CsvRecord, String> {
        let line = self.line;
        let mut fields = Vec::new();
        loop {
            fields.push(self.read_field()?);
            match self.peek() {
                None => break,
                Some(b',') => self.position += 1,
                Some(_) if self.end_line() => break,
                Some(_) => return Err(format!("line {}: unexpected text after the closing quote of field {}", self.line, fields.len())),
            }
        }
        Ok(CsvRecord { line, fields })
    }

    fn read_field(&mut self) -> Result<String, String> {
        if self.peek() == Some(b'"') {
            return self.read_quoted_field();
        }
        let rest = self.rest();
        let length = rest.find([',', '\n', '\r']).unwrap_or(rest.len());
        let field = rest.get(..length).unwrap_or_default();
        if field.contains('"') {
            return Err(format!("line {}: a quote inside an unquoted field (quote the whole field and double its quotes)", self.line));
        }
        self.position += length;
        Ok(field.to_owned())
    }

    fn read_quoted_field(&mut self) -> Result<String, String> {
        let opened_on = self.line;
        let mut field = String::new();
        self.position += 1;
        loop {
            let rest = self.rest();
            let Some(length) = rest.find('"') else {
                return Err(format!("line {opened_on}: a quoted field is never closed"));
            };
            let chunk = rest.get(..length).unwrap_or_default();
            self.line += chunk.matches('\n').count();
            field.push_str(chunk);
            self.position += length + 1;
            // A doubled quote is a quote in the field; a single one closes it.
            if self.peek() != Some(b'"') {
                return Ok(field);
            }
            field.push('"');
            self.position += 1;
        }
    }
}

impl Iterator for CsvReader<'_> {
    type Item = Result<CsvRecord, String>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.end_line() {}
        if self.position >= self.text.len() {
            return None;
        }
        let record = self.read_record();
        if record.is_err() {
            // Where an error leaves the reader means nothing: end here.
            self.position = self.text.len();
        }
        Some(record)
    }
}
