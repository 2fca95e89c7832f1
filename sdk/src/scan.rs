//! A fast pass over JSON text that finds where field paths' values lie, or where an object's
//! fields lie (to index them), without allocating per value.
//!
//! It validates the whole document as it goes, like serde_json skipping what it ignores, and
//! declines (`None`) anything outside its common case: invalid UTF-8, a key with escapes,
//! deep nesting, more than 64 paths, or text that is not JSON. [`crate::json`] then asks
//! serde_json, so answers and error messages are serde_json's in every case; this pass only
//! makes the common case cheap (it was a third of a filter's time inside WebAssembly).

use crate::fields::Field;
use crate::json::FieldPath;

/// Paths one pass can look for (one bit each).
const MOST_PATHS: usize = 64;
/// Nesting beyond this is left to serde_json (whose limit is 128).
const MOST_DEPTH: usize = 100;

/// Byte ranges of `text` holding the values at `paths` (first occurrence, as serde_json's
/// lookup), or `None` when this pass declines the document.
pub(crate) fn field_spans(text: &str, paths: &[FieldPath]) -> Option<Vec<Option<(usize, usize)>>> {
    field_spans_below(text, paths, 0)
}

/// Like [`field_spans`], for a document that is the value at the first `depth` segments of
/// every path (the value of an indexed field, for deeper paths).
pub(crate) fn field_spans_below(text: &str, paths: &[FieldPath], depth: usize) -> Option<Vec<Option<(usize, usize)>>> {
    if paths.len() > MOST_PATHS {
        return None;
    }
    let mut scan = Scan { bytes: text.as_bytes(), at: 0, paths, found: vec![None; paths.len()] };
    scan.whitespace();
    let everything = if paths.len() == MOST_PATHS { u64::MAX } else { (1u64 << paths.len()) - 1 };
    scan.value(depth, everything)?;
    scan.end().then_some(scan.found)
}

/// The name and value ranges of the top-level fields of `text`, in document order, when it
/// is a valid JSON object whose keys have no escapes (`None` otherwise).
pub(crate) fn top_level_fields(text: &str, fields: &mut Vec<Field>) -> Option<()> {
    fields.clear();
    let mut scan = Scan { bytes: text.as_bytes(), at: 0, paths: &[], found: Vec::new() };
    scan.whitespace();
    if scan.peek()? != b'{' {
        return None;
    }
    if scan.opens_empty(b'}')? {
        return scan.end().then_some(());
    }
    loop {
        let name_start = scan.at + 1;
        let name_length = scan.key()?.len();
        scan.whitespace();
        scan.expect(b':')?;
        scan.whitespace();
        let value_start = scan.at;
        scan.value(1, 0)?;
        fields.push(Field { name: (name_start, name_length), value: (value_start, scan.at - value_start) });
        if !scan.more(b'}')? {
            return scan.end().then_some(());
        }
    }
}

struct Scan<'a> {
    bytes: &'a [u8],
    at: usize,
    paths: &'a [FieldPath],
    found: Vec<Option<(usize, usize)>>,
}

impl<'a> Scan<'a> {
    /// One value whose paths of `depth` segments end here; `wanted` holds the paths that
    /// matched every segment so far.
    fn value(&mut self, depth: usize, wanted: u64) -> Option<()> {
        if depth > MOST_DEPTH {
            return None;
        }
        let start = self.at;
        let ending = self.select(wanted, |path| path.segments().len() == depth);
        let deeper = wanted & !ending;
        match self.peek()? {
            b'{' => self.object(depth, deeper)?,
            b'[' => self.array(depth, deeper)?,
            // A path that goes on through a scalar makes serde_json read it: a string's
            // `\u` escapes (a lone surrogate is an error) and a number's range (`1e400` is
            // one) are left to it there.
            b'"' => {
                if self.string()? && deeper != 0 {
                    return None;
                }
            }
            b't' => self.literal(b"true")?,
            b'f' => self.literal(b"false")?,
            b'n' => self.literal(b"null")?,
            _ => {
                self.number()?;
                if deeper != 0 && !finite(self.bytes.get(start..self.at)?) {
                    return None;
                }
            }
        }
        for slot in bits(ending) {
            self.found[slot] = Some((start, self.at));
        }
        Some(())
    }

    fn object(&mut self, depth: usize, wanted: u64) -> Option<()> {
        if self.opens_empty(b'}')? {
            return Some(());
        }
        loop {
            // Keys are compared only where a path goes on; elsewhere any valid key will do.
            let inside = if wanted == 0 {
                self.expect_string()?;
                0
            } else {
                let key = self.key()?;
                self.select(wanted, |path| crate::text::same_bytes(path.segments()[depth].as_bytes(), key))
            };
            self.whitespace();
            self.expect(b':')?;
            self.whitespace();
            self.value(depth + 1, inside)?;
            if !self.more(b'}')? {
                return Some(());
            }
        }
    }

    fn array(&mut self, depth: usize, wanted: u64) -> Option<()> {
        if self.opens_empty(b']')? {
            return Some(());
        }
        let mut index = 0usize;
        loop {
            // The same reading of numeric segments as serde_json's lookup (`str::parse`).
            let inside = self.select(wanted, |path| path.segments()[depth].parse::<usize>().ok() == Some(index));
            self.value(depth + 1, inside)?;
            if !self.more(b']')? {
                return Some(());
            }
            index += 1;
        }
    }

    /// Steps over an opening bracket; true (and past `close`) if the container is empty.
    fn opens_empty(&mut self, close: u8) -> Option<bool> {
        self.at += 1;
        self.whitespace();
        let empty = self.peek()? == close;
        if empty {
            self.at += 1;
        }
        Some(empty)
    }

    /// After a member: true past a comma (another member follows), false past `close`.
    fn more(&mut self, close: u8) -> Option<bool> {
        self.whitespace();
        match self.next()? {
            b',' => {
                self.whitespace();
                Some(true)
            }
            byte if byte == close => Some(false),
            _ => None,
        }
    }

    /// The paths of `wanted` not found yet that satisfy `test`.
    fn select(&self, wanted: u64, test: impl Fn(&FieldPath) -> bool) -> u64 {
        bits(wanted).filter(|&slot| self.found[slot].is_none() && test(&self.paths[slot])).fold(0, |mask, slot| mask | (1 << slot))
    }

    /// An object key without escapes (keys with escapes are left to serde_json).
    fn key(&mut self) -> Option<&'a [u8]> {
        self.expect(b'"')?;
        let start = self.at;
        loop {
            self.skip_plain_text();
            match self.next()? {
                b'"' => return self.bytes.get(start..self.at - 1),
                0..=0x1f | b'\\' => return None,
                _ => {}
            }
        }
    }

    fn expect_string(&mut self) -> Option<()> {
        (self.peek()? == b'"').then_some(())?;
        self.string().map(drop)
    }

    /// A string; whether it holds a `\u` escape.
    fn string(&mut self) -> Option<bool> {
        self.at += 1;
        let mut unicode_escape = false;
        loop {
            self.skip_plain_text();
            match self.next()? {
                b'"' => return Some(unicode_escape),
                b'\\' => unicode_escape |= self.escape()?,
                0..=0x1f => return None,
                _ => {}
            }
        }
    }

    /// Skips string bytes that need no attention (not a quote, backslash or control
    /// character), eight at a time.
    fn skip_plain_text(&mut self) {
        while let Some(chunk) = self.bytes.get(self.at..self.at + 8) {
            let chunk = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
            let special = special_bytes(chunk);
            if special != 0 {
                self.at += special.trailing_zeros() as usize / 8;
                return;
            }
            self.at += 8;
        }
    }

    /// One escape after its backslash; whether it was a `\u` escape.
    fn escape(&mut self) -> Option<bool> {
        match self.next()? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(false),
            b'u' => (0..4).try_for_each(|_| self.next().filter(u8::is_ascii_hexdigit).map(drop)).map(|()| true),
            _ => None,
        }
    }

    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.next().filter(u8::is_ascii_digit)?;
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            self.next().filter(u8::is_ascii_digit)?;
            self.digits();
        }
        Some(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|byte| byte.is_ascii_digit()) {
            self.at += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at.checked_add(word.len())?;
        (self.bytes.get(self.at..end)? == word).then(|| self.at = end)
    }

    /// Whether only whitespace is left.
    fn end(&mut self) -> bool {
        self.whitespace();
        self.at == self.bytes.len()
    }

    fn whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }
}

/// Whether JSON number text reads as a finite `f64` (serde_json refuses `1e400`).
fn finite(number: &[u8]) -> bool {
    std::str::from_utf8(number).ok().and_then(|text| text.parse::<f64>().ok()).is_some_and(f64::is_finite)
}

/// Whether `json` is one valid JSON value, and nothing else but whitespace.
pub(crate) fn is_one_value(json: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(json) else { return false };
    let mut scan = Scan { bytes: text.as_bytes(), at: 0, paths: &[], found: Vec::new() };
    scan.whitespace();
    scan.value(0, 0).is_some() && scan.end()
}

/// The positions of the set bits of `mask`, lowest first.
fn bits(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (mask != 0).then(|| {
            let slot = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            slot
        })
    })
}

/// Whether `text` holds a quote, a backslash or a control character (what a JSON string must
/// escape), eight bytes at a time.
pub(crate) fn needs_escapes(text: &[u8]) -> bool {
    let mut chunks = text.chunks_exact(8);
    let special = chunks.by_ref().any(|chunk| special_bytes(u64::from_le_bytes(chunk.try_into().unwrap_or_default())) != 0);
    special || chunks.remainder().iter().any(|&byte| byte == b'"' || byte == b'\\' || byte < 0x20)
}

/// The high bit of each byte of `chunk` that is a quote, a backslash or a control character;
/// the lowest set bit is exact (higher ones may be false after a true one).
fn special_bytes(chunk: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_bytes = |word: u64| word.wrapping_sub(ONES) & !word;
    let quote = chunk ^ (ONES * u64::from(b'"'));
    let backslash = chunk ^ (ONES * u64::from(b'\\'));
    let control = chunk.wrapping_sub(ONES * 0x20) & !chunk;
    (zero_bytes(quote) | zero_bytes(backslash) | control) & HIGHS
}
