//! Operator configuration: which plugin, its limits and its own `config` table.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use sluice_sdk::FieldPath;

use super::{ByteSize, DurationText, InputRef, Name};

/// What a node reads: `inputs = ["node", "node.output", ...]`, each located in the file.
pub type Inputs = Spanned<Vec<Spanned<InputRef>>>;

/// One `[[operators]]` table. Without `inputs`, an operator reads the operator written
/// before it (the first one: every source), so that a file without `inputs` is a chain.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorConfig {
    pub name: Spanned<Name>,
    /// The plugin's component file, relative to the pipeline file.
    pub plugin: Spanned<PathBuf>,
    /// What the operator reads; by default the operator before it (the first: every source).
    pub inputs: Option<Inputs>,
    /// Route records to the operator's parallel instances by these fields (a keyed exchange).
    /// By default the plugin's own declaration decides; given, it must not split what the
    /// plugin needs together.
    pub key_by: Option<Spanned<Vec<FieldPath>>>,
    /// The order the operator receives the records of its exchange in: as they arrive
    /// (default), or sorted by event time once the watermark passes them.
    pub order: Option<Spanned<RecordOrder>>,
    /// Most linear memory one instance may use.
    #[serde(default = "default_memory_limit")]
    pub memory_limit: ByteSize,
    /// Longest time one call (a batch, a watermark, a snapshot) may take.
    #[serde(default = "default_call_timeout")]
    pub call_timeout: DurationText,
    /// The plugin's own settings, passed to its `init` as JSON.
    pub config: Option<Spanned<toml::Table>>,
    /// Files the plugin may read, by name: their contents reach `init` under `sluice_files`.
    pub files: Option<Spanned<BTreeMap<String, PathBuf>>>,
    /// Secrets the plugin may read, by name, each from an environment variable: their values
    /// reach `init` under `sluice_secrets`, so that they never stand in the pipeline file.
    pub secrets: Option<Spanned<Secrets>>,
    /// Pins the plugin file's SHA-256 (64 hex digits, optionally after `sha256:`): another
    /// file is refused at start, on every watched change and by the admin API.
    pub sha256: Option<Spanned<String>>,
}

/// The order in which an operator behind an exchange receives its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordOrder {
    /// As they arrive from the upstream instances: records of one key sent by several
    /// instances (or sources, or partitions) interleave as timing has it.
    #[default]
    Arrival,
    /// Held until the watermark passes them, then given in event-time order (ties in the
    /// order of their bytes), so that results do not depend on parallelism or timing.
    EventTime,
}

/// An operator's secrets by name: `{ name = { env = "VARIABLE" }, ... }`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Secrets(pub BTreeMap<String, SecretConfig>);

/// Where a secret's value comes from: `{ env = "VARIABLE" }`, read at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretConfig {
    pub env: String,
}

/// Why a `secrets` table is refused; it never quotes what was written, which may be a secret.
const SECRETS_SHAPE: &str = "secrets are read from environment variables: write `secrets = { name = { env = \"VARIABLE\" } }` \
                             and set VARIABLE; a secret itself never belongs in the pipeline file";

/// A table of `{ env = "VARIABLE" }` tables and nothing else. Anything else is refused without
/// being echoed, since it may be the secret itself.
impl<'de> Deserialize<'de> for Secrets {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct EnvironmentVariable {
            env: String,
        }
        let refused = || serde::de::Error::custom(SECRETS_SHAPE);
        let toml::Value::Table(table) = toml::Value::deserialize(deserializer).map_err(|_: D::Error| refused())? else {
            return Err(refused());
        };
        let secrets = table.into_iter().map(|(name, value)| match value.try_into::<EnvironmentVariable>() {
            Ok(EnvironmentVariable { env }) => Ok((name, SecretConfig { env })),
            Err(_) => Err(refused()),
        });
        secrets.collect::<Result<_, _>>().map(Secrets)
    }
}

/// A secret whose environment variable is not set (or not UTF-8).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("secret \"{secret}\" reads environment variable {variable}, which is not set (or not UTF-8)")]
pub struct MissingSecret {
    pub secret: String,
    pub variable: String,
}

/// The 32 bytes of a pinned digest written as `sha256 = "..."`, or why it is not one.
pub fn parse_pinned_digest(text: &str) -> Result<[u8; 32], String> {
    let digits = text.strip_prefix("sha256:").unwrap_or(text);
    let mut bytes = [0u8; 32];
    match hex::decode_to_slice(digits, &mut bytes) {
        Ok(()) => Ok(bytes),
        Err(_) => Err(format!("sha256 {text:?} is not 64 hexadecimal digits (as `sluice plugin inspect` prints them)")),
    }
}

/// A TOML table as the JSON a plugin is given. A date or time is its RFC 3339 text (serde
/// would write it as toml's private `{"$__toml_private_datetime": ...}` table), so that
/// `value = 2026-01-01T00:00:00Z` compares with a record's `"2026-01-01T00:00:00Z"`.
fn json_object_of(table: &toml::Table) -> serde_json::Map<String, serde_json::Value> {
    table.iter().map(|(key, value)| (key.clone(), json_of(value))).collect()
}

fn json_of(value: &toml::Value) -> serde_json::Value {
    match value {
        toml::Value::String(text) => serde_json::Value::String(text.clone()),
        toml::Value::Integer(number) => serde_json::Value::from(*number),
        // Not finite: refused by validate before any plugin is given it.
        toml::Value::Float(number) => serde_json::Number::from_f64(*number).map_or(serde_json::Value::Null, serde_json::Value::Number),
        toml::Value::Boolean(flag) => serde_json::Value::Bool(*flag),
        toml::Value::Datetime(datetime) => serde_json::Value::String(datetime.to_string()),
        toml::Value::Array(items) => serde_json::Value::Array(items.iter().map(json_of).collect()),
        toml::Value::Table(table) => serde_json::Value::Object(json_object_of(table)),
    }
}

/// Largest file an operator may be granted.
pub const MAX_GRANTED_FILE: u64 = 64 * 1024 * 1024;

fn default_memory_limit() -> ByteSize {
    ByteSize::mebibytes(128)
}

fn default_call_timeout() -> DurationText {
    DurationText::from_millis(1_000)
}

impl OperatorConfig {
    /// The JSON text handed to the plugin's `init`: the `config` table, plus the contents
    /// of granted files under `sluice_files` and the secrets' values under `sluice_secrets`
    /// when there are any.
    pub fn config_json(&self, granted: &BTreeMap<String, String>, secrets: &BTreeMap<String, String>) -> String {
        let mut config = self.config.as_ref().map_or_else(serde_json::Map::new, |table| json_object_of(table.get_ref()));
        if !granted.is_empty() {
            config.insert("sluice_files".into(), serde_json::json!(granted));
        }
        if !secrets.is_empty() {
            config.insert("sluice_secrets".into(), serde_json::json!(secrets));
        }
        serde_json::Value::Object(config).to_string()
    }

    /// The secrets' values, by name, read from the environment now.
    pub fn secret_values(&self) -> Result<BTreeMap<String, String>, MissingSecret> {
        let secrets = self.secrets.iter().flat_map(|secrets| secrets.get_ref().0.iter());
        secrets
            .map(|(secret, source)| match std::env::var(&source.env) {
                Ok(value) => Ok((secret.clone(), value)),
                Err(_) => Err(MissingSecret { secret: secret.clone(), variable: source.env.clone() }),
            })
            .collect()
    }

    /// The granted files, by name (none when the table is absent).
    pub fn granted_files(&self) -> impl Iterator<Item = (&String, &PathBuf)> {
        self.files.iter().flat_map(|files| files.get_ref().iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_is_given_dates_and_times_as_their_rfc_3339_text() {
        let table: toml::Table =
            toml::from_str("when = 2026-01-01T00:00:00Z\nday = 2026-01-02\n[nested]\nat = [10:30:00, 1.5, 2, true]").expect("TOML");
        let json = serde_json::Value::Object(json_object_of(&table));
        assert_eq!(
            json,
            serde_json::json!({"when": "2026-01-01T00:00:00Z", "day": "2026-01-02", "nested": {"at": ["10:30:00", 1.5, 2, true]}})
        );
    }
}
