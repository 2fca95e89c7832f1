//! [`KeyText`]: the canonical text of a record's key fields (a group, a join key), compared
//! eight bytes at a time.
//!
//! Hash maps and B-trees of keys compare them a lot, and `memcmp` in WebAssembly goes byte by
//! byte: 4 % of Nexmark q5's time and of q7's (a quarter of q7's when join keys were B-tree
//! keys). Equality and order are those of the
//! bytes (as `str`'s), hashing is `String`'s, and serde sees the plain string, so states that
//! held `String` keys read the same.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The canonical text of a group of field values (see [`crate::json::write_key`]).
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyText(String);

impl KeyText {
    /// Replaces the text with the key of `values` (absent ones as null), reusing its memory.
    pub fn write(&mut self, values: &[Option<&RawValue>]) {
        crate::json::write_key(&mut self.0, values);
    }

    /// [`KeyText::write`] from the values' JSON texts (as [`crate::Record::field_texts`]
    /// gives them).
    pub fn write_texts(&mut self, texts: &[Option<&[u8]>]) {
        crate::json::write_key_texts(&mut self.0, texts);
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for KeyText {
    fn from(text: String) -> KeyText {
        KeyText(text)
    }
}

impl From<&str> for KeyText {
    fn from(text: &str) -> KeyText {
        KeyText(text.to_owned())
    }
}

impl From<KeyText> for String {
    fn from(key: KeyText) -> String {
        key.0
    }
}

impl fmt::Debug for KeyText {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, formatter)
    }
}

impl fmt::Display for KeyText {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl PartialEq for KeyText {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        let (left, right) = (self.0.as_bytes(), other.0.as_bytes());
        left.len() == right.len() && compare_bytes(left, right) == Ordering::Equal
    }
}

impl Eq for KeyText {}

/// As the string's: equal keys have equal bytes.
impl Hash for KeyText {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl Ord for KeyText {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_bytes(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl PartialOrd for KeyText {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The lexicographic order of two byte strings (as `[u8]::cmp`), eight bytes at a time.
#[inline]
fn compare_bytes(left: &[u8], right: &[u8]) -> Ordering {
    let (mut left_chunks, mut right_chunks) = (left.chunks_exact(8), right.chunks_exact(8));
    for (a, b) in (&mut left_chunks).zip(&mut right_chunks) {
        let (a, b) = (u64::from_be_bytes(a.try_into().unwrap_or_default()), u64::from_be_bytes(b.try_into().unwrap_or_default()));
        if a != b {
            return a.cmp(&b);
        }
    }
    let done = left.len().min(right.len()) / 8 * 8;
    let (left, right) = (&left[done..], &right[done..]);
    for (a, b) in left.iter().zip(right) {
        if a != b {
            return a.cmp(b);
        }
    }
    left.len().cmp(&right.len())
}

#[cfg(test)]
mod tests {
    use std::hash::{BuildHasher, RandomState};

    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Equality, order and hash are the plain string's, whatever the lengths and bytes:
        /// keys that share a prefix of any length (past a word or two) and differ after it.
        #[test]
        fn key_text_compares_and_hashes_as_its_string(prefix in "[a-c,0-9]{0,20}", left in "[a-c\\[\\]\u{e9}]{0,10}", right in "[a-c\\[\\]\u{e9}]{0,10}") {
            let (left, right) = (format!("{prefix}{left}"), format!("{prefix}{right}"));
            let (a, b) = (KeyText::from(left.as_str()), KeyText::from(right.as_str()));
            prop_assert_eq!(a == b, left == right);
            prop_assert_eq!(a.cmp(&b), left.cmp(&right));
            let hasher = RandomState::new();
            prop_assert_eq!(hasher.hash_one(&a), hasher.hash_one(&left));
            let same = KeyText::from(left.clone());
            prop_assert!(a == same);
        }
    }

    #[test]
    fn key_text_is_serialised_as_its_string() {
        let key = KeyText::from("[\"a\",1]");
        assert_eq!(serde_json::to_string(&key).unwrap(), serde_json::to_string("[\"a\",1]").unwrap());
        assert_eq!(postcard::to_allocvec(&key).unwrap(), postcard::to_allocvec("[\"a\",1]").unwrap());
    }
}
