//! Where a mistake inside a `[[sources]]`, `[[sinks]]` or `[dead_letter]` table is. These are
//! internally tagged (`type` picks the kind), and serde reads such a table from a copy without
//! positions, so its errors point at the whole table. Reading the table again as the kind its
//! `type` names finds the key or value at fault.

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::{
    ConsoleSinkConfig, FileDeadLetterConfig, FileSinkConfig, FileSourceConfig, GeneratorConfig, KafkaDeadLetterConfig, KafkaSinkConfig,
    KafkaSourceConfig, NexmarkConfig, StderrDeadLetterConfig, StdinSourceConfig, StdoutSinkConfig,
};

/// Reads one table (without its `type`) as the kind a `type` names.
type Reread = fn(&str, ValueDeserializer<'_>) -> Result<(), toml::de::Error>;

/// The error of the first tagged table of `document` whose kind refuses it, located within
/// the table; `None` if none does (or the document cannot be read this way).
pub fn locate_in_tagged_tables(document: &str) -> Option<toml::de::Error> {
    let root = DeTable::parse(document).ok()?;
    let root = root.get_ref();
    let sections: [(&str, Reread); 3] = [("sources", reread_source), ("sinks", reread_sink), ("dead_letter", reread_dead_letter)];
    for (section, reread) in sections {
        let Some((_, value)) = root.iter().find(|(key, _)| key.get_ref().as_ref() == section) else { continue };
        let tables: Vec<&Spanned<DeValue<'_>>> = match value.get_ref() {
            DeValue::Array(items) => items.iter().collect(),
            DeValue::Table(_) => vec![value],
            _ => Vec::new(),
        };
        for table in tables {
            if let Some(error) = reread_table(table, reread) {
                return Some(error);
            }
        }
    }
    None
}

/// Reads `table` without its `type` as the kind `type` names; the error, if it has a place.
fn reread_table(table: &Spanned<DeValue<'_>>, reread: Reread) -> Option<toml::de::Error> {
    let DeValue::Table(entries) = table.get_ref() else { return None };
    let kind = entries.iter().find(|(key, _)| key.get_ref().as_ref() == "type")?.1.get_ref().as_str()?.to_owned();
    let rest: DeTable<'_> =
        entries.iter().filter(|(key, _)| key.get_ref().as_ref() != "type").map(|(key, value)| (key.clone(), value.clone())).collect();
    let deserializer = ValueDeserializer::from(Spanned::new(table.span(), DeValue::Table(rest)));
    reread(&kind, deserializer).err().filter(|error| error.span().is_some_and(|span| span != table.span()))
}

fn reread_source(kind: &str, table: ValueDeserializer<'_>) -> Result<(), toml::de::Error> {
    match kind {
        "generator" => GeneratorConfig::deserialize(table).map(drop),
        "file" => FileSourceConfig::deserialize(table).map(drop),
        "stdin" => StdinSourceConfig::deserialize(table).map(drop),
        "kafka" => KafkaSourceConfig::deserialize(table).map(drop),
        "nexmark" => NexmarkConfig::deserialize(table).map(drop),
        _ => Ok(()),
    }
}

fn reread_sink(kind: &str, table: ValueDeserializer<'_>) -> Result<(), toml::de::Error> {
    match kind {
        "stdout" => StdoutSinkConfig::deserialize(table).map(drop),
        "file" => FileSinkConfig::deserialize(table).map(drop),
        "kafka" => KafkaSinkConfig::deserialize(table).map(drop),
        "console" => ConsoleSinkConfig::deserialize(table).map(drop),
        _ => Ok(()),
    }
}

fn reread_dead_letter(kind: &str, table: ValueDeserializer<'_>) -> Result<(), toml::de::Error> {
    match kind {
        "file" => FileDeadLetterConfig::deserialize(table).map(drop),
        "stderr" => StderrDeadLetterConfig::deserialize(table).map(drop),
        "kafka" => KafkaDeadLetterConfig::deserialize(table).map(drop),
        _ => Ok(()),
    }
}
