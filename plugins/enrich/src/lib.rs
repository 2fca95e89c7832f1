//! `enrich`: joins each JSON record with a row of a small static table, by a key field.
//!
//! ```toml
//! [[operators]]
//! files = { catalog = "data/catalog.csv" }   # only for `file`: grants the file to the operator
//! [operators.config]
//! key = "item_id"              # dotted path of the join value in the record
//! # the rows: inline (keys are join values, rows are tables of fields) ...
//! table = { i1 = { category = "books", brand = "acme" }, i2 = { category = "toys" } }
//! # ... or from a granted file instead of `table`:
//! # file = "catalog"           # a name from `files`
//! # file_format = "csv"        # "csv" (header line, values kept as strings) or "json-lines"
//! # file_key = "id"            # the column (csv) or top-level field (json-lines) of the join value
//! into = "product"             # put the row under this field; without it, merge its fields
//! overwrite = false            # whether row fields replace fields the record already has
//! missing = "pass"             # records without a row: "pass" (counted), "drop" or "reject"
//! ```
//! Join values: strings match as they are; numbers by their canonical text, so `7` and `7.0`
//! match the key `"7"`. A record whose key is absent or null has no row; one whose key is a
//! boolean, array or object is rejected, like a payload that is not JSON. A row holds the
//! entry's fields without its key. The table is read once, at start, and limited to 1,000,000
//! rows and 64 MiB; the operator keeps no state.

mod csv;
mod join_key;
mod table;

use std::collections::BTreeMap;

use serde::Deserialize;
use sluice_sdk::edit::RawObject;
use sluice_sdk::serde_json::Value;
use sluice_sdk::{Batch, Distribution, FieldPath, Operator, Output, Record};

pub use csv::{CsvReader, CsvRecord};
pub use table::{MAX_BYTES, MAX_ROWS, Row, Table};

/// The `config` table of an enrich operator.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrichConfig {
    /// The record field holding the join value.
    pub key: FieldPath,
    /// Inline rows by join value.
    pub table: Option<BTreeMap<String, Value>>,
    /// The name of a granted file holding the rows.
    pub file: Option<String>,
    pub file_format: Option<FileFormat>,
    /// The column or field of the file holding the join value.
    pub file_key: Option<String>,
    /// Where the row goes in the record; `None` merges its fields at the top level.
    pub into: Option<FieldPath>,
    #[serde(default)]
    pub overwrite: bool,
    #[serde(default)]
    pub missing: MissingRowPolicy,
    /// The contents of the files granted to the operator, by name: set by the runtime.
    #[serde(default)]
    pub sluice_files: BTreeMap<String, String>,
}

/// How a granted file is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileFormat {
    /// One JSON object per line.
    JsonLines,
    /// Comma-separated values under a header line.
    Csv,
}

/// What happens to a record that matches no row.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MissingRowPolicy {
    /// Passed downstream unchanged.
    #[default]
    Pass,
    /// Dropped.
    Drop,
    /// Sent to the dead-letter sink.
    Reject,
}

/// A running enrichment.
pub struct Enrich {
    key: FieldPath,
    /// `key`, prepared once for reading every record.
    key_lookup: sluice_sdk::FieldLookup,
    table: Table,
    into: Option<FieldPath>,
    overwrite: bool,
    missing: MissingRowPolicy,
    /// The join text of the record being read, reused across records.
    join: String,
}

/// What became of one record.
enum Outcome<'a> {
    /// The record with its row added; the fields it had keep their exact text.
    Enriched(RawObject<'a>),
    /// No row: the key is absent (or null), or no row has it (the key is then in `join`).
    Unmatched {
        key_absent: bool,
    },
    Invalid(String),
}

impl Operator for Enrich {
    type Config = EnrichConfig;

    fn init(mut config: EnrichConfig) -> Result<Self, String> {
        if let Some(into) = &config.into {
            let (into_path, key_path) = (into.segments(), config.key.segments());
            if into_path.len() > key_path.len() && into_path.starts_with(key_path) {
                return Err(format!("`into` is {into}, inside the key {}, which holds a value, not an object", config.key));
            }
            if key_path.starts_with(into_path) && !config.overwrite {
                return Err(format!(
                    "`into` is {into}, which holds the key {}: a record with a key has it already, so without \
                     `overwrite = true` (to replace it by the row) the row is never written",
                    config.key
                ));
            }
        }
        let table = load_table(&mut config)?;
        let key_lookup = sluice_sdk::FieldLookup::new(vec![config.key.clone()]);
        Ok(Enrich {
            key: config.key,
            key_lookup,
            table,
            into: config.into,
            overwrite: config.overwrite,
            missing: config.missing,
            join: String::new(),
        })
    }

    fn distribution(&self) -> Distribution {
        Distribution::Any
    }

    fn process(&mut self, batch: &Batch, out: &mut Output) {
        let mut unmatched = 0;
        for record in batch.iter() {
            match self.enrich(record) {
                Outcome::Enriched(object) => out.emit_json_like(record, &object),
                Outcome::Unmatched { key_absent } => {
                    // Counted whatever the policy: the metric tells how well the table covers the stream.
                    unmatched += 1;
                    match self.missing {
                        MissingRowPolicy::Pass => out.emit(record),
                        MissingRowPolicy::Drop => {}
                        MissingRowPolicy::Reject => out.reject(record.index(), self.unmatched_reason(key_absent)),
                    }
                }
                Outcome::Invalid(reason) => out.reject(record.index(), reason),
            }
        }
        if unmatched > 0 {
            sluice_sdk::host::counter_add("unmatched", unmatched);
        }
    }
}

impl Enrich {
    /// Looks the record's key up, and adds the row it matches.
    fn enrich<'a>(&mut self, record: Record<'a>) -> Outcome<'a> {
        let text = match record.look_up(&self.key_lookup) {
            Ok(values) => values.into_iter().next().flatten(),
            Err(reason) => return Outcome::Invalid(reason),
        };
        match join_key::write_record_key(text, &mut self.join) {
            Ok(true) => {}
            Ok(false) => return Outcome::Unmatched { key_absent: true },
            Err(kind) => return Outcome::Invalid(format!("key field {} is {kind}, not a string or number", self.key)),
        }
        let Some(row) = self.table.get(&self.join) else { return Outcome::Unmatched { key_absent: false } };
        // Only matched records are parsed whole: the others pass as they are.
        let mut object = match record.raw_object() {
            Ok(object) => object,
            Err(reason) => return Outcome::Invalid(reason),
        };
        match self.add_row(&mut object, row) {
            Ok(()) => Outcome::Enriched(object),
            Err(reason) => Outcome::Invalid(reason),
        }
    }

    /// Puts the row under `into`, or merges its fields; the record's own fields win unless `overwrite`.
    fn add_row(&self, object: &mut RawObject<'_>, row: &Row) -> Result<(), String> {
        match &self.into {
            // The row is written at the nested path: whether it is taken is asked there too.
            Some(into) if self.overwrite || object.get_nested(into).is_none() => object.set_value(into, row),
            Some(_) => Ok(()),
            None => {
                for (name, value) in row.members() {
                    if self.overwrite || !object.has_member(name) {
                        object.set_member_node(name, value.clone());
                    }
                }
                Ok(())
            }
        }
    }

    fn unmatched_reason(&self, key_absent: bool) -> String {
        if key_absent {
            format!("key field {} is missing or null", self.key)
        } else {
            format!("no table row for {} {:?}", self.key, self.join)
        }
    }

    /// The table (for tests and benchmarks).
    pub fn table(&self) -> &Table {
        &self.table
    }
}

/// Builds the table from the inline rows or the granted file, whichever the config names.
/// The inline rows are moved out of `config`: a large table is not copied.
fn load_table(config: &mut EnrichConfig) -> Result<Table, String> {
    let Some(name) = &config.file else {
        let Some(rows) = config.table.take() else {
            return Err("no table: set `table` (rows inline) or `file` (a file granted to the operator)".into());
        };
        if config.file_format.is_some() || config.file_key.is_some() {
            return Err("`file_format` and `file_key` apply only with `file`".into());
        }
        return Table::from_inline(rows);
    };
    if config.table.is_some() {
        return Err("`table` and `file` are exclusive: the rows come from one or the other".into());
    }
    let format = config.file_format.ok_or("`file` needs `file_format`: \"csv\" or \"json-lines\"")?;
    let file_key = config.file_key.as_deref().ok_or("`file` needs `file_key`: the column (csv) or field (json-lines) of the join value")?;
    let Some(contents) = config.sluice_files.get(name) else {
        return Err(format!(
            "file {name:?} is not granted to this operator: add `files = {{ {} = \"path/to/file\" }}` to its [[operators]] entry",
            toml_key(name)
        ));
    };
    match format {
        FileFormat::JsonLines => Table::from_json_lines(name, contents, file_key),
        FileFormat::Csv => Table::from_csv(name, contents, file_key),
    }
}

/// `name` as a TOML key: bare when it can be, quoted otherwise.
fn toml_key(name: &str) -> String {
    let bare = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare { name.to_owned() } else { format!("{name:?}") }
}

sluice_sdk::export_operator!(Enrich);

#[cfg(test)]
mod tests;
