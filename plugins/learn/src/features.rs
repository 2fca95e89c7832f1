//! Reading a record: its label, its numeric values, its hashed one-hot features and its key,
//! in one pass over the JSON without parsing the rest.
//!
//! Feature indices are FNV-1a 64 hashes (offset basis 0xcbf29ce484222325, prime
//! 0x100000001b3) of the feature's UTF-8 text, folded to 32 bits (`h ^ (h >> 32)`) and masked to
//! the low `hash_bits` bits. The texts: a numeric feature is its path (`price`); a categorical
//! one is `<path>=<canonical JSON of the value>` (`category="books"`, `quantity=2`); a cross
//! joins its parts with `&` (`category="books"&campaign="organic"`). Canonical JSON writes equal
//! values alike (`2.0` is `2`), so an index means the same in every process and after a restart.

use sluice_sdk::json::{text_number, write_canonical_text, write_key_texts};
use sluice_sdk::{FieldPath, Record};

use crate::config::{Settings, Task};

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 of `bytes`.
pub fn fnv(bytes: &[u8]) -> u64 {
    fnv_extend(FNV_OFFSET_BASIS, bytes)
}

/// Continues an FNV-1a 64 hash with more bytes.
pub fn fnv_extend(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(FNV_PRIME))
}

/// A 64-bit hash folded to 32 bits and masked to the feature space.
pub fn fold(hash: u64, mask: u32) -> u32 {
    ((hash ^ (hash >> 32)) as u32) & mask
}

/// What one record says to the model; reused from record to record.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Example {
    /// `None`: no label (missing or null), so the record is only predicted.
    pub label: Option<f64>,
    /// The value of each numeric feature, in configuration order; `None` when missing or null.
    pub numeric: Vec<Option<f64>>,
    /// The indices of the one-hot features present (value 1), categorical then crosses.
    pub one_hot: Vec<u32>,
}

/// Reads records for one configuration.
pub struct Reader {
    task: Task,
    label: FieldPath,
    numeric: Vec<FieldPath>,
    /// Every path read, in one pass: label, numeric, categorical, cross parts, key, and the
    /// prediction field when it is a top-level name (to know whether the record has it).
    lookups: sluice_sdk::FieldLookup,
    /// The FNV state after `<path>=` of each categorical feature.
    categorical_prefixes: Vec<u64>,
    /// The path texts of each cross.
    crosses: Vec<Vec<String>>,
    key_fields: usize,
    reads_prediction_field: bool,
    mask: u32,
    /// The canonical text of a value, reused.
    scratch: String,
}

impl Reader {
    pub fn new(settings: &Settings) -> Reader {
        let top_level_prediction = settings.prediction_field.segments().len() == 1;
        let lookups = std::iter::once(&settings.label)
            .chain(&settings.numeric)
            .chain(&settings.categorical)
            .chain(settings.crosses.iter().flatten())
            .chain(&settings.key)
            .chain(top_level_prediction.then_some(&settings.prediction_field))
            .cloned()
            .collect();
        let lookups = sluice_sdk::FieldLookup::new(lookups);
        Reader {
            task: settings.task,
            label: settings.label.clone(),
            numeric: settings.numeric.clone(),
            lookups,
            categorical_prefixes: settings.categorical.iter().map(|path| fnv(format!("{path}=").as_bytes())).collect(),
            crosses: settings.crosses.iter().map(|cross| cross.iter().map(ToString::to_string).collect()).collect(),
            key_fields: settings.key.len(),
            reads_prediction_field: top_level_prediction,
            mask: settings.mask(),
            scratch: String::new(),
        }
    }

    /// Fills `example` and `key` from `record`; returns whether the record already has a
    /// top-level prediction field (`None`: the prediction field is nested, so not looked up).
    /// An error is the reason to reject the record.
    pub fn read(&mut self, record: Record<'_>, example: &mut Example, key: &mut String) -> Result<Option<bool>, String> {
        let values = record.look_up(&self.lookups)?;
        if record.value().trim_ascii_start().first() != Some(&b'{') {
            return Err("the payload is not a JSON object".into());
        }
        let (label, rest) = values.split_first().ok_or("internal: the label was not looked up")?;
        let (numeric, rest) = rest.split_at(self.numeric.len());
        let (categorical, rest) = rest.split_at(self.categorical_prefixes.len());
        let cross_fields = self.crosses.iter().map(Vec::len).sum();
        let (crosses, rest) = rest.split_at(cross_fields);
        let (key_values, rest) = rest.split_at(self.key_fields);
        example.label = label_value(self.task, &self.label, *label)?;
        self.read_numeric(numeric, example)?;
        example.one_hot.clear();
        self.read_categorical(categorical, example);
        self.read_crosses(crosses, example);
        if self.key_fields > 0 {
            write_key_texts(key, key_values);
        }
        Ok(self.reads_prediction_field.then(|| rest.first().copied().flatten().is_some()))
    }

    fn read_numeric(&self, values: &[Option<&[u8]>], example: &mut Example) -> Result<(), String> {
        example.numeric.clear();
        for (path, text) in self.numeric.iter().zip(values) {
            let value = match text.map(text_number) {
                None | Some(Ok(None)) => None,
                Some(Ok(Some(value))) if value.is_finite() => Some(value),
                Some(Ok(Some(_)) | Err("a number out of range")) => {
                    return Err(format!("numeric feature {path} is {}, beyond the range of a 64-bit float", shown(*text)));
                }
                Some(Err(kind)) => return Err(format!("numeric feature {path} is {kind}, not a number")),
            };
            example.numeric.push(value);
        }
        Ok(())
    }

    fn read_categorical(&mut self, values: &[Option<&[u8]>], example: &mut Example) {
        for (prefix, text) in self.categorical_prefixes.iter().zip(values) {
            if let Some(text) = present(*text) {
                self.scratch.clear();
                write_canonical_text(&mut self.scratch, text);
                example.one_hot.push(fold(fnv_extend(*prefix, self.scratch.as_bytes()), self.mask));
            }
        }
    }

    /// A cross is present when all its parts are (not missing, not null).
    fn read_crosses(&mut self, mut values: &[Option<&[u8]>], example: &mut Example) {
        for cross in &self.crosses {
            let (parts, rest) = values.split_at(cross.len());
            values = rest;
            if parts.iter().any(|text| present(*text).is_none()) {
                continue;
            }
            let mut hash = FNV_OFFSET_BASIS;
            for (position, (path, text)) in cross.iter().zip(parts).enumerate() {
                if position > 0 {
                    hash = fnv_extend(hash, b"&");
                }
                hash = fnv_extend(fnv_extend(hash, path.as_bytes()), b"=");
                self.scratch.clear();
                if let Some(text) = text {
                    write_canonical_text(&mut self.scratch, text);
                }
                hash = fnv_extend(hash, self.scratch.as_bytes());
            }
            example.one_hot.push(fold(hash, self.mask));
        }
    }
}

/// The value's JSON text unless missing or null.
fn present(text: Option<&[u8]>) -> Option<&[u8]> {
    text.filter(|text| *text != b"null")
}

/// A value's JSON text for a message, or "missing".
fn shown(text: Option<&[u8]>) -> std::borrow::Cow<'_, str> {
    text.map_or("missing".into(), String::from_utf8_lossy)
}

/// The label as a number: 0 or 1 for classification, any finite number for regression;
/// `None` when missing or null; an error for anything else.
pub fn label_value(task: Task, path: &FieldPath, text: Option<&[u8]>) -> Result<Option<f64>, String> {
    let Some(text) = present(text) else { return Ok(None) };
    match task {
        Task::Classification => match text {
            b"true" => Ok(Some(1.0)),
            b"false" => Ok(Some(0.0)),
            _ => match text_number(text) {
                Ok(Some(value)) if value == 0.0 || value == 1.0 => Ok(Some(value)),
                _ => Err(format!("label {path} is {}: a classification label must be true, false, 0 or 1", shown(Some(text)))),
            },
        },
        Task::Regression => match text_number(text) {
            Ok(Some(value)) if value.is_finite() => Ok(Some(value)),
            _ => Err(format!("label {path} is {}: a regression label must be a finite number", shown(Some(text)))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_the_published_test_vectors() {
        assert_eq!(fnv(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(fnv_extend(fnv(b"foo"), b"bar"), fnv(b"foobar"));
    }

    #[test]
    fn labels_are_read_by_task() {
        let path = FieldPath::parse("y").expect("valid");
        let read = |task, text: &str| label_value(task, &path, Some(text.as_bytes()));
        assert_eq!(read(Task::Classification, "true"), Ok(Some(1.0)));
        assert_eq!(read(Task::Classification, "0.0"), Ok(Some(0.0)));
        assert_eq!(read(Task::Classification, "null"), Ok(None));
        assert!(read(Task::Classification, "2").is_err());
        assert!(read(Task::Classification, "\"yes\"").is_err());
        assert_eq!(read(Task::Regression, "-2.5"), Ok(Some(-2.5)));
        assert!(read(Task::Regression, "1e999").is_err());
        assert!(read(Task::Regression, "true").is_err());
        assert_eq!(label_value(Task::Regression, &path, None), Ok(None));
    }
}
