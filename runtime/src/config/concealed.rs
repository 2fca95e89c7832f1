//! What an error's excerpt of the pipeline file hides: the values of settings that may hold
//! a secret, written there by mistake (a key pasted into `secret`, a literal in `secrets`).

/// Words that make a setting's value secret in an excerpt, wherever they are in its name
/// (`secret`, `hmac_key`, `"sasl.password"`, `ssl.key.pem`...).
const SECRET_WORDS: &[&str] =
    &["secret", "password", "passwd", "token", "credential", "private", "hmac", "apikey", "api_key", "key.pem", "keystore"];

/// `line` (which starts at byte `line_start` of `contents`) with the characters of each string
/// that may hold a secret replaced by `*`, one for one, so that a caret under it still points
/// where it did: every string on a line in a table whose name says secret (`[operators.secrets]`)
/// or whose setting does (`secrets = { ... }`, `secret = "..."`), and the value of each key
/// whose name says so (`{ hmac_key = "..." }`); not the name of an environment variable
/// (`{ env = "VARIABLE" }`), which the error may name anyway.
pub(super) fn conceal_secrets(contents: &str, line_start: usize, line: &str) -> String {
    let whole_line = table_of(contents, line_start).is_some_and(names_a_secret) || leading_key(line).is_some_and(names_a_secret);
    let mut shown = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find(['"', '\'', '#']) {
        let (before, from) = rest.split_at(at);
        shown.push_str(before);
        if from.starts_with('#') {
            rest = from;
            break;
        }
        let length = quoted_length(from);
        let (literal, after) = from.split_at(length);
        let is_a_key = after.trim_start().starts_with(['=', '.']);
        let key = key_before(&line[..line.len() - from.len()]);
        // `{ env = "VARIABLE" }` names where the secret is, not the secret.
        let secret = !is_a_key && key != Some("env") && (whole_line || key.is_some_and(names_a_secret));
        if secret {
            let quote = &literal[..1];
            let inner = literal[1..].strip_suffix(quote).filter(|_| length > 1).unwrap_or(&literal[1..]);
            shown.push_str(quote);
            shown.extend(inner.chars().map(|_| '*'));
            shown.push_str(&literal[1 + inner.len()..]);
        } else {
            shown.push_str(literal);
        }
        rest = after;
    }
    shown.push_str(rest);
    shown
}

/// The length in bytes of the string literal `text` starts with, quotes included (to the end
/// of `text` if it is not closed there): `"..."` with its escapes, `'...'` without.
fn quoted_length(text: &str) -> usize {
    let quote = text.as_bytes()[0];
    let mut escaped = false;
    for (at, byte) in text.bytes().enumerate().skip(1) {
        if byte == quote && !escaped {
            return at + 1;
        }
        escaped = quote == b'"' && byte == b'\\' && !escaped;
    }
    text.len()
}

/// Whether a key or table name says its value is secret: `secrets`, `secret`, `hmac_key`...
fn names_a_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|word| name.contains(word))
}

/// The name of the table the line at `line_start` is in: its last `[...]` header's, if any.
fn table_of(contents: &str, line_start: usize) -> Option<&str> {
    contents[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| line.starts_with('['))
        .map(|header| header.trim_matches(['[', ']']).trim())
}

/// The key a line sets (`name` of `name = value`), if it sets one.
fn leading_key(line: &str) -> Option<&str> {
    let trimmed = line.trim_start();
    if trimmed.starts_with(['[', '#']) {
        return None;
    }
    trimmed.split_once('=').map(|(key, _)| key.trim())
}

/// The key whose value starts right after `before` (`name =`, `"name" =`), if one does.
fn key_before(before: &str) -> Option<&str> {
    let before = before.trim_end().strip_suffix('=')?.trim_end();
    let is_part_of_a_key = |c: char| c.is_ascii_alphanumeric() || "_-.\"'".contains(c);
    let start = before.char_indices().rev().find(|(_, c)| !is_part_of_a_key(*c)).map_or(0, |(at, c)| at + c.len_utf8());
    Some(&before[start..]).filter(|key| !key.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn concealed(contents: &str, line_number: usize) -> String {
        let line_start: usize = contents.split_inclusive('\n').take(line_number - 1).map(str::len).sum();
        let line = contents[line_start..].lines().next().unwrap_or_default();
        conceal_secrets(contents, line_start, line)
    }

    #[test]
    fn values_of_settings_named_as_secrets_are_starred_one_for_one() {
        let file = "[[operators]]\nsecrets = { mask-key = \"KEY-1\" }\n[operators.config]\nsecret = \"KEY-2\"\nhmac_key = 'KEY-3'\nfield = \"user\" # a comment \"x\"\n";
        assert_eq!(concealed(file, 2), "secrets = { mask-key = \"*****\" }");
        assert_eq!(concealed(file, 4), "secret = \"*****\"");
        assert_eq!(concealed(file, 5), "hmac_key = '*****'");
        assert_eq!(concealed(file, 6), "field = \"user\" # a comment \"x\"");
    }

    #[test]
    fn a_secrets_table_and_secret_keys_of_inline_tables_are_starred() {
        let file = "[operators.secrets]\nmask-key = \"K\\\"EY\"\n[sources.properties]\n\"sasl.password\" = \"pw\"\n\"client.id\" = \"me\"\nx = { token = \"t\", user = \"u\" }\n";
        assert_eq!(concealed(file, 2), "mask-key = \"*****\"");
        assert_eq!(concealed(file, 4), "\"sasl.password\" = \"**\"");
        assert_eq!(concealed(file, 5), "\"client.id\" = \"me\"");
        assert_eq!(concealed(file, 6), "x = { token = \"*\", user = \"u\" }");
        let file = "secrets = { token = { env = \"SLUICE_TOKEN\" }, key = \"KEY\" }\n";
        assert_eq!(concealed(file, 1), "secrets = { token = { env = \"SLUICE_TOKEN\" }, key = \"***\" }");
        // A character of several bytes before a key (found by the fuzzer).
        assert_eq!(concealed("typ\u{fffd}token = \"t\"\n", 1), "typ\u{fffd}token = \"*\"");
        assert_eq!(concealed("é= \"x\"\n", 1), "é= \"x\"");
    }
}
