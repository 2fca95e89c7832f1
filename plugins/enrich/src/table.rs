//! The lookup table: rows by join key, built once from the configuration or a granted file.
//!
//! A row is a JSON object: the fields of a table entry other than its key (the record already
//! holds the key). Tables are limited to `MAX_ROWS` rows and `MAX_BYTES` of source text (the
//! file, or the inline rows as JSON); in memory a row costs a few times its text.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, DefaultHasher};

use sluice_sdk::edit::RawObject;
use sluice_sdk::serde_json::{self, Value};

use crate::csv::CsvReader;
use crate::join_key::write_record_key;

/// The most rows a table may hold.
pub const MAX_ROWS: usize = 1_000_000;
/// The most bytes of source text a table may come from: 64 MiB.
pub const MAX_BYTES: usize = 64 * 1024 * 1024;

/// One row: the fields added to a matching record, with their text as the table has it.
pub type Row = RawObject<'static>;

/// Rows by join key.
#[derive(Debug, Default)]
pub struct Table {
    // A fixed hasher, not std's randomly seeded one: plugins must not use randomness, and the
    // keys come from the trusted configuration, so there is no flooding to defend against.
    rows: HashMap<String, Row, BuildHasherDefault<DefaultHasher>>,
}

impl Table {
    /// The row whose key is `key`.
    pub fn get(&self, key: &str) -> Option<&Row> {
        self.rows.get(key)
    }

    /// How many rows the table holds.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// An empty table with room for the rows of `text`, a line each at most: made once, a
    /// table of a million rows does not hold its old and its grown map at once while it loads.
    fn sized_for(text: &str) -> Table {
        let lines = line_count(text).min(MAX_ROWS + 1);
        Table { rows: HashMap::with_capacity_and_hasher(lines, BuildHasherDefault::default()) }
    }

    /// The inline `table` of the configuration: each value must be an object of fields.
    pub fn from_inline(entries: BTreeMap<String, Value>) -> Result<Table, String> {
        if entries.len() > MAX_ROWS {
            return Err(format!("`table` has {} rows, more than the {MAX_ROWS} a table may hold", entries.len()));
        }
        let mut counter = ByteCounter(0);
        let mut table = Table::default();
        for (key, row) in entries {
            if !row.is_object() {
                return Err(format!("`table` row {key:?} is {}, not a table of fields", sluice_sdk::json::kind(&row)));
            }
            let text = serde_json::to_string(&row).map_err(|error| format!("`table` row {key:?}: {error}"))?;
            counter.0 += key.len() + text.len();
            let row = RawObject::parse(&text).ok().flatten().map(RawObject::into_owned).unwrap_or_default();
            table.rows.insert(key, row);
        }
        if counter.0 > MAX_BYTES {
            return Err(format!("`table` holds {} bytes of JSON, more than the 64 MiB a table may hold", counter.0));
        }
        Ok(table)
    }

    /// A JSON-lines file: one object per line, its field `file_key` holding the join value.
    pub fn from_json_lines(name: &str, text: &str, file_key: &str) -> Result<Table, String> {
        check_file_size(name, text)?;
        let mut table = Table::sized_for(text);
        // A byte order mark is no part of the first line (as with CSV, and a file source).
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (number, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let at = |message: String| format!("file {name:?} line {}: {message}", number + 1);
            let mut row = match RawObject::parse(line) {
                Ok(Some(row)) => row.into_owned(),
                Ok(None) => {
                    let kind = serde_json::from_str::<Value>(line).map_or("a number", |other| sluice_sdk::json::kind(&other));
                    return Err(at(format!("{kind} where an object was expected")));
                }
                Err(error) => return Err(at(format!("not valid JSON: {}", without_location(&error)))),
            };
            let value = row.remove_member(file_key).map(|node| node.to_json());
            let mut key = String::new();
            match write_record_key(value.as_deref().map(str::as_bytes), &mut key) {
                Ok(true) => {}
                Ok(false) => return Err(at(format!("no value for the key field {file_key:?}"))),
                Err(kind) => return Err(at(format!("the key field {file_key:?} is {kind}, not a string or number"))),
            }
            table.insert(key, row).map_err(at)?;
        }
        Ok(table)
    }

    /// A CSV file: the first record names the columns, `file_key` the one holding the join
    /// value. Every value is kept as a string.
    pub fn from_csv(name: &str, text: &str, file_key: &str) -> Result<Table, String> {
        check_file_size(name, text)?;
        let mut records = CsvReader::new(text);
        let header = match records.next() {
            None => return Err(format!("file {name:?} is empty: its first line must name the columns")),
            Some(header) => header.map_err(|error| format!("file {name:?} {error}"))?,
        };
        check_columns(&header.fields).map_err(|error| format!("file {name:?} line {}: {error}", header.line))?;
        let Some(key_column) = header.fields.iter().position(|column| column == file_key) else {
            let columns = header.fields.join(", ");
            return Err(format!("file {name:?} has no column {file_key:?} for `file_key` (its columns: {columns})"));
        };
        let mut table = Table::sized_for(text);
        for record in records {
            let record = record.map_err(|error| format!("file {name:?} {error}"))?;
            let line = record.line;
            let at = |message: String| format!("file {name:?} line {line}: {message}");
            if record.fields.len() != header.fields.len() {
                return Err(at(format!("{} fields, but the header names {} columns", record.fields.len(), header.fields.len())));
            }
            let mut key = String::new();
            let mut row = Row::new();
            for (position, (column, value)) in header.fields.iter().zip(record.fields).enumerate() {
                if position == key_column {
                    key = value;
                } else {
                    // A string is always written.
                    let _ = row.set_member_value(column, &value);
                }
            }
            table.insert(key, row).map_err(at)?;
        }
        Ok(table)
    }

    /// Adds a row from a file, refusing a repeated key and one row too many.
    fn insert(&mut self, key: String, row: Row) -> Result<(), String> {
        if self.rows.len() >= MAX_ROWS {
            return Err(format!("more than the {MAX_ROWS} rows a table may hold"));
        }
        if self.rows.contains_key(&key) {
            return Err(format!("the key {key:?} appears on an earlier line too"));
        }
        self.rows.insert(key, row);
        Ok(())
    }
}

/// The lines of `text`: a bound on the rows it holds.
fn line_count(text: &str) -> usize {
    text.bytes().filter(|byte| *byte == b'\n').count() + 1
}

fn check_file_size(name: &str, text: &str) -> Result<(), String> {
    if text.len() > MAX_BYTES {
        return Err(format!("file {name:?} is {} bytes, more than the 64 MiB a table may hold", text.len()));
    }
    Ok(())
}

/// Column names must be present and distinct: each becomes a field of the rows.
fn check_columns(columns: &[String]) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    for (position, column) in columns.iter().enumerate() {
        if column.is_empty() {
            return Err(format!("column {} of the header has no name", position + 1));
        }
        if !seen.insert(column.as_str()) {
            return Err(format!("the header names column {column:?} twice"));
        }
    }
    Ok(())
}

/// A serde_json error without its "at line 1 column N" (the line is the file's, given apart).
fn without_location(error: &serde_json::Error) -> String {
    let message = error.to_string();
    match message.rsplit_once(" at line ") {
        Some((text, _)) => format!("{text} (column {})", error.column()),
        None => message,
    }
}

/// Counts the bytes written to it: the size of the inline rows as JSON, without keeping it.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
