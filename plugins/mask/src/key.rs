//! The HMAC key: read from the secret or granted file the config names, decoded and checked.
//!
//! No message here quotes the key or any part of it, nor the `secret` setting (a user may have
//! written the key there by mistake): refusals end up in logs and terminals.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_PAD_INDIFFERENT, URL_SAFE_PAD_INDIFFERENT};
use serde::Deserialize;

/// The shortest key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 16;

/// How the key's text is turned into bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyEncoding {
    /// The UTF-8 bytes of the text, trailing line breaks removed.
    #[default]
    Text,
    /// Hexadecimal digits, surrounding whitespace ignored.
    Hex,
    /// Base64, standard or URL-safe alphabet, padding optional, surrounding whitespace ignored.
    Base64,
}

/// Values the runtime passes by name (secrets, granted files). `Debug` shows the names only,
/// so that printing a configuration never prints a key.
#[derive(Default, Deserialize)]
#[serde(transparent)]
pub struct Granted(pub BTreeMap<String, String>);

impl fmt::Debug for Granted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Where the key is, and how it is written.
pub struct KeySource<'c> {
    /// The name of the secret or granted file holding the key.
    pub secret: Option<&'c str>,
    pub encoding: KeyEncoding,
    pub secrets: &'c Granted,
    pub files: &'c Granted,
}

/// The key's bytes: `Ok(None)` when no `secret` is named and no key is `needed`.
pub fn load_key(source: &KeySource<'_>, needed: bool) -> Result<Option<Vec<u8>>, String> {
    let Some(name) = source.secret else {
        return if needed { Err(NO_KEY.into()) } else { Ok(None) };
    };
    let Some(text) = source.secrets.0.get(name).or_else(|| source.files.0.get(name)) else {
        return Err(unknown_name(source));
    };
    let key = decode(text, source.encoding)?;
    if key.len() < MIN_KEY_BYTES {
        return Err(format!(
            "the HMAC key is shorter than {MIN_KEY_BYTES} bytes (read with key_encoding = {:?}): use 32 random bytes, such as \
             `openssl rand -hex 32` prints, with key_encoding = \"hex\"",
            encoding_name(source.encoding)
        ));
    }
    Ok(Some(key))
}

const NO_KEY: &str = "pseudonymising (a `pseudonymise` rule, or record_key = \"pseudonymise\", the default) needs an HMAC key: grant it \
                      on the [[operators]] entry with `secrets = { mask-key = { env = \"SLUICE_MASK_KEY\" } }` and set \
                      secret = \"mask-key\"; or, when nothing is to be pseudonymised, set record_key = \"drop\" or \"keep\"";

fn unknown_name(source: &KeySource<'_>) -> String {
    let granted: Vec<&str> = source.secrets.0.keys().chain(source.files.0.keys()).map(String::as_str).collect();
    let granted = if granted.is_empty() { "none".to_owned() } else { granted.join(", ") };
    format!(
        "`secret` names no secret or file granted to this operator (granted: {granted}): grant the key with \
         `secrets = {{ mask-key = {{ env = \"SLUICE_MASK_KEY\" }} }}` on the [[operators]] entry and set secret = \"mask-key\" \
         (the setting is not repeated here, in case it holds the key itself)"
    )
}

/// The key's bytes; errors name the encoding, never a character of the text.
fn decode(text: &str, encoding: KeyEncoding) -> Result<Vec<u8>, String> {
    match encoding {
        KeyEncoding::Text => Ok(text.trim_end_matches(['\n', '\r']).as_bytes().to_vec()),
        KeyEncoding::Hex => hex::decode(text.trim()).map_err(|_| {
            "the HMAC key is not hexadecimal (key_encoding = \"hex\"): write an even number of digits 0-9 and a-f, as \
             `openssl rand -hex 32` prints them"
                .to_owned()
        }),
        KeyEncoding::Base64 => {
            let text = text.trim();
            STANDARD_PAD_INDIFFERENT.decode(text).or_else(|_| URL_SAFE_PAD_INDIFFERENT.decode(text)).map_err(|_| {
                "the HMAC key is not base64 (key_encoding = \"base64\"): write it as `openssl rand -base64 32` prints it".to_owned()
            })
        }
    }
}

fn encoding_name(encoding: KeyEncoding) -> &'static str {
    match encoding {
        KeyEncoding::Text => "text",
        KeyEncoding::Hex => "hex",
        KeyEncoding::Base64 => "base64",
    }
}
