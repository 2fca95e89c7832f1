//! `mask`: protects the personal fields of JSON-object records: pseudonymises them with a keyed
//! HMAC-SHA-256, redacts, truncates (IP networks, times, number buckets) or drops them, and
//! pseudonymises, drops or keeps the record key.
//!
//! ```toml
//! [[operators]]
//! name = "masked"
//! plugin = "../build/plugins/mask.wasm"
//! secrets = { mask-key = { env = "SLUICE_MASK_KEY" } }   # the key: never in the pipeline file
//! [operators.config]
//! secret = "mask-key"          # the secret (or granted file) holding the HMAC key, ≥ 16 bytes
//! key_encoding = "hex"         # "text" (default; trailing line breaks removed), "hex" or "base64"
//! pseudonymise = ["user_id", "customer.email"]   # → lowercase hex of HMAC-SHA-256(key, value)
//! pseudonym_bytes = 16         # digest bytes kept, 8 to 32 (twice as many hex digits)
//! prefix = ""                  # written before every pseudonym
//! redact = ["customer.name"]   # → the redaction
//! redaction = "[redacted]"
//! drop = ["customer.phone"]    # removed
//! truncate = [
//!   { field = "client_ip", to = "ip", ipv4_prefix = 24, ipv6_prefix = 48 },
//!   { field = "ts", to = "hour" },    # "second", "minute", "hour", "day": epoch ms or RFC 3339
//!   { field = "age", bucket = 10 },   # floor(x / 10) * 10
//! ]
//! record_key = "pseudonymise"  # the record's key: "pseudonymise" (needs the key), "drop" or "keep"
//! headers = "keep"             # or "drop"
//! invalid = "drop"             # payloads that are not JSON objects (or unreadable): "drop" (counted) or "reject"
//! ```
//! Pseudonyms: a string by its UTF-8 text, any other value by its canonical JSON text (`7` and
//! `7.0` agree, and so do `7` and `"7"`), the record key by its bytes; equal values get equal
//! pseudonyms in every field, process and restart for as long as the key is the same. A null
//! value stays null under `pseudonymise`, `redact` and `truncate` (`drop` removes it like any
//! other), and a missing field stays missing. A value a truncation cannot read (not an address,
//! a time or a number) is redacted and counted in `untruncatable_redacted`, never passed on.
//! Each field is masked by one rule: a field in two rules (`a.0` and `a.00` are the same array
//! element), or inside a field another rule masks, is refused. Array indexes name the elements
//! of the record as it came: the drops run after every other rule, from the highest index down.
//! A dotted path masks the nested field and also a top-level key spelt like the whole path
//! (`context.ip` also finds {"context.ip": …}). The payload is read whole and written again
//! (fields no rule names keep their exact text), so duplicate keys collapse to the first (the
//! value every lookup reads) and no second copy of a field slips through.
//! Numeric times are read as epoch milliseconds (seconds or microseconds would be misread:
//! convert them upstream, or floor them with `bucket`). A rejected record reaches the
//! dead-letter output *unmasked* (the runtime dead-letters the input as it came), which is why
//! `invalid` defaults to dropping (counted in `invalid_dropped`). Stateless; distribution: any
//! instance.

mod key;
mod pseudonym;
mod rfc3339;
mod rules;
mod truncate;

use serde::Deserialize;
use sluice_sdk::edit::RawObject;
use sluice_sdk::{Batch, Distribution, FieldPath, Operator, Output, Record};

pub use key::{Granted, KeyEncoding, KeySource, MIN_KEY_BYTES, load_key};
pub use pseudonym::{PSEUDONYM_BYTES, Pseudonymiser};
pub use rules::{Action, Masker, Rule, check_disjoint};
pub use truncate::{TimeUnit, TruncateConfig, TruncateTo, Truncation, truncate_ip};

/// The `config` table of a mask operator.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskConfig {
    /// The name of the secret (or granted file) holding the HMAC key.
    pub secret: Option<String>,
    #[serde(default)]
    pub key_encoding: KeyEncoding,
    #[serde(default)]
    pub pseudonymise: Vec<FieldPath>,
    #[serde(default = "default_pseudonym_bytes")]
    pub pseudonym_bytes: usize,
    /// Written before every pseudonym.
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub redact: Vec<FieldPath>,
    #[serde(default = "default_redaction")]
    pub redaction: String,
    #[serde(default)]
    pub drop: Vec<FieldPath>,
    #[serde(default)]
    pub truncate: Vec<TruncateConfig>,
    #[serde(default)]
    pub record_key: RecordKeyPolicy,
    #[serde(default)]
    pub headers: HeadersPolicy,
    #[serde(default)]
    pub invalid: InvalidPolicy,
    /// The secrets granted to the operator, by name: set by the runtime.
    #[serde(default)]
    pub sluice_secrets: Granted,
    /// The contents of the files granted to the operator, by name: set by the runtime.
    #[serde(default)]
    pub sluice_files: Granted,
}

fn default_pseudonym_bytes() -> usize {
    16
}

fn default_redaction() -> String {
    "[redacted]".into()
}

/// What becomes of the record's key (the Kafka key).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordKeyPolicy {
    /// Replaced by its pseudonym, with the same key as the fields.
    #[default]
    Pseudonymise,
    Drop,
    Keep,
}

/// What becomes of the record's headers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeadersPolicy {
    #[default]
    Keep,
    Drop,
}

/// What becomes of a record whose payload is not a JSON object.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InvalidPolicy {
    /// Dropped and counted in `invalid_dropped`.
    #[default]
    Drop,
    /// Sent to the dead-letter output, unmasked.
    Reject,
}

/// A running mask.
pub struct Mask {
    masker: Masker,
    record_key: RecordKeyPolicy,
    headers: HeadersPolicy,
    invalid: InvalidPolicy,
    /// The payload being written, reused across records.
    payload: Vec<u8>,
}

impl Operator for Mask {
    type Config = MaskConfig;

    fn init(config: MaskConfig) -> Result<Self, String> {
        if !PSEUDONYM_BYTES.contains(&config.pseudonym_bytes) {
            return Err("`pseudonym_bytes` must be between 8 and 32 (the default, 16, gives pseudonyms of 32 hex digits)".into());
        }
        let rules = rules_of(&config)?;
        check_disjoint(&rules)?;
        if rules.is_empty() && config.record_key == RecordKeyPolicy::Keep && config.headers == HeadersPolicy::Keep {
            return Err("nothing to mask: list fields in `pseudonymise`, `redact`, `drop` or `truncate`".into());
        }
        let pseudonymiser = pseudonymiser_of(&config, &rules)?;
        let masker = Masker::new(rules, pseudonymiser, config.redaction);
        Ok(Mask { masker, record_key: config.record_key, headers: config.headers, invalid: config.invalid, payload: Vec::new() })
    }

    fn distribution(&self) -> Distribution {
        Distribution::Any
    }

    fn process(&mut self, batch: &Batch, out: &mut Output) {
        let (mut invalid_dropped, mut untruncatable) = (0, 0);
        for record in batch.iter() {
            match record.raw_object() {
                Ok(mut object) => {
                    untruncatable += self.masker.mask(&mut object);
                    self.emit(record, &object, out);
                }
                Err(_) if self.invalid == InvalidPolicy::Drop => invalid_dropped += 1,
                Err(reason) => out.reject(record.index(), reason),
            }
        }
        sluice_sdk::host::counters_add(&[("invalid_dropped", invalid_dropped), ("untruncatable_redacted", untruncatable)]);
    }
}

impl Mask {
    /// Emits the masked object with the record's event time, and its key and headers as the
    /// policies say.
    fn emit(&mut self, record: Record<'_>, object: &RawObject<'_>, out: &mut Output) {
        self.payload.clear();
        object.write_to(&mut self.payload);
        let pseudonym;
        let key = match (self.record_key, record.key(), &self.masker.pseudonymiser) {
            (RecordKeyPolicy::Keep, key, _) => key,
            (RecordKeyPolicy::Pseudonymise, Some(key), Some(pseudonymiser)) => {
                pseudonym = pseudonymiser.pseudonym(key);
                Some(pseudonym.as_bytes())
            }
            _ => None,
        };
        let keep_headers = self.headers == HeadersPolicy::Keep;
        out.batch.push(key, &self.payload, record.timestamp(), record.headers().filter(|_| keep_headers));
    }
}

/// The rules of every list, in the order pseudonymise, redact, drop, truncate (the masker
/// applies the drops last).
fn rules_of(config: &MaskConfig) -> Result<Vec<Rule>, String> {
    let listed = [(&config.pseudonymise, Action::Pseudonymise), (&config.redact, Action::Redact), (&config.drop, Action::Drop)];
    let mut rules: Vec<Rule> =
        listed.iter().flat_map(|(paths, action)| paths.iter().map(|path| Rule { path: path.clone(), action: action.clone() })).collect();
    for truncate in &config.truncate {
        rules.push(Rule { path: truncate.field.clone(), action: Action::Truncate(truncate.truncation()?) });
    }
    Ok(rules)
}

/// The keyed pseudonymiser, when a `secret` is named; an error when pseudonyms are needed and
/// there is no usable key.
fn pseudonymiser_of(config: &MaskConfig, rules: &[Rule]) -> Result<Option<Pseudonymiser>, String> {
    let needed = config.record_key == RecordKeyPolicy::Pseudonymise || rules.iter().any(|rule| rule.action == Action::Pseudonymise);
    let source = KeySource {
        secret: config.secret.as_deref(),
        encoding: config.key_encoding,
        secrets: &config.sluice_secrets,
        files: &config.sluice_files,
    };
    let Some(key) = load_key(&source, needed)? else { return Ok(None) };
    Pseudonymiser::new(&key, config.pseudonym_bytes, config.prefix.clone()).map(Some)
}

sluice_sdk::export_operator!(Mask);

#[cfg(test)]
mod tests;
