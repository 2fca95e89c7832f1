//! Pseudonyms: the leading bytes of HMAC-SHA-256(key, value), in lowercase hex.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use sluice_sdk::serde_json::{self, value::RawValue};

/// The fewest and most digest bytes a pseudonym may keep.
pub const PSEUDONYM_BYTES: std::ops::RangeInclusive<usize> = 8..=32;

/// Turns values into pseudonyms with one key: equal input, equal pseudonym, in every process.
///
/// The HMAC state is keyed once; each value clones it, which copies two SHA-256 states
/// instead of hashing the key again.
#[derive(Clone)]
pub struct Pseudonymiser {
    keyed: Hmac<Sha256>,
    bytes: usize,
    prefix: String,
}

impl Pseudonymiser {
    /// A pseudonymiser keeping `bytes` bytes of each digest (clamped to 1..=32), after `prefix`.
    /// The caller checks the key's length: here any key is accepted, as HMAC allows.
    pub fn new(key: &[u8], bytes: usize, prefix: String) -> Result<Pseudonymiser, String> {
        // HMAC takes keys of any length; the error (which names no key byte) cannot occur.
        let keyed = Hmac::<Sha256>::new_from_slice(key).map_err(|_| "the HMAC-SHA-256 key was refused".to_owned())?;
        Ok(Pseudonymiser { keyed, bytes: bytes.clamp(1, 32), prefix })
    }

    /// The pseudonym of `data`: the prefix, then 2 × `bytes` lowercase hex digits.
    pub fn pseudonym(&self, data: &[u8]) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut mac = self.keyed.clone();
        mac.update(data);
        let digest = mac.finalize().into_bytes();
        let mut text = String::with_capacity(self.prefix.len() + 2 * self.bytes);
        text.push_str(&self.prefix);
        for byte in &digest[..self.bytes] {
            text.push(char::from(DIGITS[usize::from(byte >> 4)]));
            text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
        }
        text
    }

    /// The pseudonym of a JSON value (its text), `None` for null: a string by its UTF-8 text,
    /// any other value by its canonical JSON text (so `7` and `7.0` agree, and integers past a
    /// double keep their digits). `scratch` is reused.
    pub fn pseudonym_of_text(&self, text: &RawValue, scratch: &mut String) -> Option<String> {
        if text.get() == "null" {
            return None;
        }
        if let Some(plain) = sluice_sdk::json::raw_plain_str(text) {
            return Some(self.pseudonym(plain.as_bytes()));
        }
        match serde_json::from_str::<String>(text.get()) {
            Ok(string) => Some(self.pseudonym(string.as_bytes())),
            Err(_) => {
                scratch.clear();
                sluice_sdk::json::write_canonical(scratch, text);
                Some(self.pseudonym(scratch.as_bytes()))
            }
        }
    }
}
