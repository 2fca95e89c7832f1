//! Keys of records, read from their fields: what keyed exchanges route by, and what sinks
//! with a `key` write as a record's key. This is one of the few places the runtime reads a
//! payload (see ARCHITECTURE.md), and only the fields a pipeline names.

use sluice_sdk::json::{lookup_texts, text_plain_str, write_canonical_text, write_key_texts};
use sluice_sdk::serde_json;
use sluice_sdk::{FieldLookup, FieldPath, Record};

/// Reads the key of a record from its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySelector {
    fields: FieldLookup,
}

impl KeySelector {
    pub fn new(fields: Vec<FieldPath>) -> KeySelector {
        KeySelector { fields: FieldLookup::new(fields) }
    }

    pub fn fields(&self) -> &[FieldPath] {
        self.fields.paths()
    }

    /// Writes into `key` (replacing its text) the key of a JSON record: with one field, its
    /// value (a string without quotes, other values as canonical JSON, `null` when missing);
    /// with several, a JSON array of their canonical values. Equal values give equal keys
    /// however they are spelled (`1` and `1.0`), so equal groups always meet.
    pub fn write(&self, value: &[u8], key: &mut String) -> Result<(), String> {
        let values = lookup_texts(value, self.fields.paths()).map_err(Self::unreadable)?;
        Self::write_values(&values, key);
        Ok(())
    }

    /// [`KeySelector::write`] for a record, read through its field index when it has one;
    /// `found` is room for the fields' texts, reused from record to record.
    pub fn write_record<'a>(&self, record: Record<'a>, found: &mut Vec<Option<&'a [u8]>>, key: &mut String) -> Result<(), String> {
        record.look_up_into(&self.fields, found).map_err(Self::unreadable)?;
        Self::write_values(found, key);
        Ok(())
    }

    fn unreadable(error: String) -> String {
        format!("cannot read the key fields: {error}")
    }

    fn write_values(values: &[Option<&[u8]>], key: &mut String) {
        match values {
            [single] => {
                key.clear();
                match single {
                    Some(text) => match text_plain_str(text) {
                        Some(plain) => key.push_str(plain),
                        None => write_single(key, text),
                    },
                    None => key.push_str("null"),
                }
            }
            many => write_key_texts(key, many),
        }
    }
}

/// The key of one value that is not a plain string: a string with escapes is its characters,
/// as a plain one is (`"\u0061"` and `"a"` are one key), anything else its canonical text.
fn write_single(key: &mut String, text: &[u8]) {
    // Only a string is read here: a number (the usual key) goes straight to its canonical text.
    if text.trim_ascii_start().first() == Some(&b'"')
        && let Ok(string) = serde_json::from_slice::<String>(text)
    {
        return key.push_str(&string);
    }
    write_canonical_text(key, text)
}

/// Kafka's murmur2 (the Java client's `Utils.murmur2`): the hash both the Java default
/// partitioner and Sluice's exchanges route keys by.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    let mut hash = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        hash = hash.wrapping_mul(M) ^ k;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        for (index, byte) in rest.iter().enumerate().rev() {
            hash ^= u32::from(*byte) << (8 * index);
        }
        hash = hash.wrapping_mul(M);
    }
    hash ^= hash >> 13;
    hash = hash.wrapping_mul(M);
    hash ^= hash >> 15;
    hash as i32
}

/// The partition (or instance) of `key` among `count`, as Java's default partitioner picks it.
pub fn partition_of(key: &[u8], count: u32) -> u32 {
    (murmur2(key) as u32 & 0x7fff_ffff) % count.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_is_kafkas() {
        // Apache Kafka's UtilsTest.testMurmur2.
        assert_eq!(murmur2(b"21"), -973_932_308);
        assert_eq!(murmur2(b"foobar"), -790_332_482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985_981_536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1_486_304_829);
        assert_eq!(murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58_897_971);
        assert_eq!(murmur2(b"abc"), 479_470_107);
    }

    #[test]
    fn keys_are_canonical_and_plain_strings_lose_their_quotes() {
        let one = KeySelector::new(vec![FieldPath::parse("user").unwrap()]);
        let mut key = String::new();
        one.write(br#"{"user": "u7", "x": 1}"#, &mut key).unwrap();
        assert_eq!(key, "u7");
        one.write(br#"{"user": 1.0}"#, &mut key).unwrap();
        assert_eq!(key, "1");
        one.write(br#"{"other": 1}"#, &mut key).unwrap();
        assert_eq!(key, "null");
        one.write(br#"{"user": "\u0075\u0037"}"#, &mut key).unwrap();
        assert_eq!(key, "u7", "a string with escapes is the key its characters make");
        one.write(br#"{"user": "q\"t"}"#, &mut key).unwrap();
        assert_eq!(key, "q\"t");
        let two = KeySelector::new(vec![FieldPath::parse("a").unwrap(), FieldPath::parse("b.c").unwrap()]);
        two.write(br#"{"b": {"c": 2.50}, "a": "x"}"#, &mut key).unwrap();
        assert_eq!(key, r#"["x",2.5]"#);
        assert!(one.write(b"not json", &mut key).unwrap_err().contains("cannot read the key fields"));
        assert_eq!(partition_of(b"u7", 4), partition_of(b"u7", 4));
        assert!(partition_of(b"anything", 3) < 3);
    }

    /// A key value nested 100,000 levels deep (200 KB of brackets) is read without a stack
    /// overflow: below 128 levels, its text is its key.
    #[test]
    fn a_key_nested_far_deeper_than_any_stack_is_its_text_below_128_levels() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let one = KeySelector::new(vec![FieldPath::parse("a").unwrap()]);
        let mut key = String::new();
        let read = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || one.write(format!(r#"{{"a": {deep}}}"#).as_bytes(), &mut key).map(|()| key))
            .unwrap()
            .join()
            .expect("no stack overflow");
        assert_eq!(read.unwrap(), format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)));
    }
}
