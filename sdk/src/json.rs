//! JSON field paths, and looking a field up without parsing the whole payload.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::fields::FieldIndex;
use crate::text::same_bytes;

/// Parses `bytes` as one JSON value as the SDK's lookups read it: of a name an object gives
/// twice, the first value counts, in the position it first took (serde_json alone keeps the
/// last). The runtime reads event times and keys so too.
pub fn parse_first_wins(bytes: &[u8]) -> Result<serde_json::Value, serde_json::Error> {
    crate::first_wins::parse_value(bytes)
}

/// A dotted path to a field of a JSON object, such as `order.customer.id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FieldPath {
    text: String,
    segments: Vec<String>,
}

impl FieldPath {
    /// Parses `a.b.c`; segments must be non-empty.
    pub fn parse(text: &str) -> Result<FieldPath, String> {
        let segments: Vec<String> = text.split('.').map(str::to_owned).collect();
        if segments.iter().any(String::is_empty) {
            return Err(format!("invalid field path {text:?}: expected names separated by '.'"));
        }
        Ok(FieldPath { text: text.to_owned(), segments })
    }

    /// The path's segments, outermost first.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The path as written (`order.customer.id`).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The last segment: the field's own name.
    pub fn leaf(&self) -> &str {
        self.segments.last().map_or("", String::as_str)
    }

    /// For a path of several segments, the one-segment path naming a top-level member spelt
    /// like the whole path (`"shop.category"`, as window-aggregate writes its group fields):
    /// what every lookup reads when the record has no nested field at the path.
    pub fn whole_name(&self) -> Option<FieldPath> {
        (self.segments.len() > 1).then(|| FieldPath { text: self.text.clone(), segments: vec![self.text.clone()] })
    }

    /// The value at this path in `object`, if present (numeric segments index arrays); else
    /// the top-level member spelt like the whole path ([`FieldPath::whole_name`]).
    pub fn get<'v>(&self, object: &'v serde_json::Map<String, Value>) -> Option<&'v Value> {
        self.get_nested(object).or_else(|| if self.segments.len() > 1 { object.get(&self.text) } else { None })
    }

    /// The value at this path in `object`, nested only (no top-level member spelt like the
    /// whole path).
    pub fn get_nested<'v>(&self, object: &'v serde_json::Map<String, Value>) -> Option<&'v Value> {
        let (first, rest) = self.segments.split_first()?;
        rest.iter().try_fold(object.get(first)?, |value, segment| member(value, segment))
    }

    /// Sets the value at this path in `object`, creating missing intermediate objects; a
    /// numeric segment replaces an existing element of an array. Returns an error if a value on
    /// the way is neither (it would be destroyed) or an array lacks the element.
    pub fn set(&self, object: &mut serde_json::Map<String, Value>, value: Value) -> Result<(), String> {
        let Some((first, rest)) = self.segments.split_first() else { return Ok(()) };
        let Some((last, middle)) = rest.split_last() else {
            object.insert(first.clone(), value);
            return Ok(());
        };
        let mut current = object.entry(first.clone()).or_insert_with(|| Value::Object(Default::default()));
        let mut name = first;
        for segment in middle {
            current = match current {
                Value::Object(members) => members.entry(segment.clone()).or_insert_with(|| Value::Object(Default::default())),
                Value::Array(items) => {
                    array_element(items, segment).map_err(|reason| format!("cannot set {}: {name:?} {reason}", self.text))?
                }
                _ => return Err(format!("cannot set {}: {name:?} is not an object", self.text)),
            };
            name = segment;
        }
        match current {
            Value::Object(members) => {
                members.insert(last.clone(), value);
            }
            Value::Array(items) => {
                *array_element(items, last).map_err(|reason| format!("cannot set {}: {name:?} {reason}", self.text))? = value;
            }
            _ => return Err(format!("cannot set {}: {name:?} is not an object", self.text)),
        }
        Ok(())
    }

    /// Removes the value at this path from `object` and returns it; the members after it keep
    /// their order, and a numeric segment removes an element of an array (the later ones move
    /// up).
    pub fn remove(&self, object: &mut serde_json::Map<String, Value>) -> Option<Value> {
        let (first, rest) = self.segments.split_first()?;
        if rest.is_empty() {
            return object.shift_remove(first);
        }
        self.remove_nested(object).or_else(|| object.shift_remove(&self.text))
    }

    /// [`FieldPath::remove`] of a path of several segments, at the nested field only.
    fn remove_nested(&self, object: &mut serde_json::Map<String, Value>) -> Option<Value> {
        let (first, rest) = self.segments.split_first()?;
        let (last, middle) = rest.split_last()?;
        let mut current = object.get_mut(first)?;
        for segment in middle {
            current = match current {
                Value::Object(members) => members.get_mut(segment)?,
                Value::Array(items) => array_element(items, segment).ok()?,
                _ => return None,
            };
        }
        match current {
            Value::Object(members) => members.shift_remove(last),
            Value::Array(items) => {
                let index = last.parse::<usize>().ok().filter(|index| *index < items.len())?;
                Some(items.remove(index))
            }
            _ => None,
        }
    }
}

/// The element of `items` that `segment` indexes, or why there is none (after the array's name).
fn array_element<'v>(items: &'v mut [Value], segment: &str) -> Result<&'v mut Value, String> {
    let length = items.len();
    let index = segment.parse::<usize>().map_err(|_| format!("is an array, and {segment:?} is not an index"))?;
    items.get_mut(index).ok_or_else(|| format!("is an array of {length} elements, and has no element {index}"))
}

impl TryFrom<String> for FieldPath {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        FieldPath::parse(&text)
    }
}

impl From<FieldPath> for String {
    fn from(path: FieldPath) -> String {
        path.text
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The value at `path` in the JSON document `bytes`, skipping everything else.
///
/// `Ok(None)` when the document has no such field (or is not an object on the way);
/// an error when the document is not valid JSON.
pub fn lookup(bytes: &[u8], path: &FieldPath) -> Result<Option<Value>, String> {
    let mut found = lookup_many(bytes, std::slice::from_ref(path))?;
    Ok(found.pop().flatten())
}

/// The values at several `paths` in one pass over `bytes`, in the order of `paths`.
pub fn lookup_many(bytes: &[u8], paths: &[FieldPath]) -> Result<Vec<Option<Value>>, String> {
    parse_raw_values(lookup_raw_many(bytes, paths)?)
}

/// Raw values parsed; of a name an object repeats, the first value counts, as in the lookups.
pub(crate) fn parse_raw_values(raw: Vec<Option<&RawValue>>) -> Result<Vec<Option<Value>>, String> {
    raw.into_iter()
        .map(|raw| {
            raw.map(|raw| {
                crate::first_wins::parse_value(raw.get().as_bytes()).map_err(|error| format!("payload is not valid JSON: {error}"))
            })
            .transpose()
        })
        .collect()
}

/// [`lookup_raw_many`] for a payload with a field index: each path starts at its indexed
/// top-level field, and only a deeper path reads further (within that field's text). An index
/// that does not agree with the text (a plugin's bug) falls back to reading the whole text.
pub fn lookup_raw_indexed<'a>(bytes: &'a [u8], index: FieldIndex<'_>, paths: &[FieldPath]) -> Result<Vec<Option<&'a RawValue>>, String> {
    match raw_values(&lookup_texts_indexed(bytes, index, paths)?) {
        Some(found) => Ok(found),
        None => lookup_raw_many(bytes, paths),
    }
}

/// The JSON text at `path` through the index: `Some(None)` when absent, `None` when the index
/// points outside the value or the text below a field cannot be read.
pub(crate) fn indexed_text<'a>(bytes: &'a [u8], index: FieldIndex<'_>, path: &FieldPath) -> Option<Option<&'a [u8]>> {
    let (first, rest) = path.segments().split_first()?;
    for field in index.values_named(bytes, first) {
        let field = field?;
        if rest.is_empty() {
            return Some(Some(field));
        }
        // A duplicated key: as in a lookup over the text, the first one holding the path.
        let text = std::str::from_utf8(field).ok()?;
        let spans = crate::scan::field_spans_below(text, std::slice::from_ref(path), 1)?;
        if let Some((start, end)) = spans[0] {
            return Some(text.as_bytes().get(start..end));
        }
    }
    Some(None)
}

/// The JSON text of the values at `paths`, borrowed from `bytes`, in one pass: as
/// [`lookup_raw_many`] finds them, without reading each found value a second time.
pub fn lookup_texts<'a>(bytes: &'a [u8], paths: &[FieldPath]) -> Result<Vec<Option<&'a [u8]>>, String> {
    let fast = std::str::from_utf8(bytes).ok().and_then(|text| crate::scan::field_spans(text, paths));
    match fast {
        Some(spans) => {
            let mut found: Vec<Option<&'a [u8]>> =
                spans.into_iter().map(|span| span.and_then(|(start, end)| bytes.get(start..end))).collect();
            fill_from_whole_names(paths, &mut found, |wholes| lookup_texts(bytes, wholes))?;
            Ok(found)
        }
        // serde_json's reader fills the whole names itself.
        None => Ok(lookup_raw_many_with_serde(bytes, paths)?.into_iter().map(|raw| raw.map(|raw| raw.get().as_bytes())).collect()),
    }
}

/// Gives each path of several segments that found nothing the value of the top-level member
/// spelt like the whole path ([`FieldPath::whole_name`]), looked up by `look_up` (called only
/// when some path found nothing: the usual record pays nothing).
pub(crate) fn fill_from_whole_names<T, E>(
    paths: &[FieldPath],
    found: &mut [Option<T>],
    look_up: impl FnOnce(&[FieldPath]) -> Result<Vec<Option<T>>, E>,
) -> Result<(), E> {
    let missing = || found.iter().zip(paths).enumerate().filter(|(_, (found, path))| found.is_none() && path.segments.len() > 1);
    if missing().next().is_none() {
        return Ok(());
    }
    let (slots, wholes): (Vec<usize>, Vec<FieldPath>) = missing().filter_map(|(slot, (_, path))| Some((slot, path.whole_name()?))).unzip();
    for (slot, value) in slots.into_iter().zip(look_up(&wholes)?) {
        found[slot] = value;
    }
    Ok(())
}

/// [`lookup_texts`] through a record's field index (see [`lookup_raw_indexed`]). Top-level
/// names are matched in one pass over the index (each entry read once, names compared by
/// length first); a path below the top level is followed from its field.
pub fn lookup_texts_indexed<'a>(bytes: &'a [u8], index: FieldIndex<'_>, paths: &[FieldPath]) -> Result<Vec<Option<&'a [u8]>>, String> {
    let mut found = Vec::new();
    lookup_texts_indexed_into(bytes, index, paths, &mut found)?;
    Ok(found)
}

/// [`lookup_texts_indexed`] into `found` (its contents replaced), so that a loop over records
/// reuses one vector instead of allocating one per record.
pub fn lookup_texts_indexed_into<'a>(
    bytes: &'a [u8],
    index: FieldIndex<'_>,
    paths: &[FieldPath],
    found: &mut Vec<Option<&'a [u8]>>,
) -> Result<(), String> {
    crate::lookup::texts_into(bytes, Some(index), &crate::lookup::PathsOnce::new(paths), found)
}

/// A JSON number's text as `f64`: `Ok(None)` for null, an error naming any other kind of
/// value (as [`raw_number`]).
pub fn text_number(text: &[u8]) -> Result<Option<f64>, &'static str> {
    match text.first() {
        Some(b'-' | b'0'..=b'9') => {
            if let Some(number) = crate::text::plain_decimal(text) {
                return Ok(Some(number));
            }
            std::str::from_utf8(text).ok().and_then(|text| text.parse().ok()).map(Some).ok_or("a number out of range")
        }
        Some(b'n') => Ok(None),
        Some(b'"') => Err("a string"),
        Some(b't' | b'f') => Err("a boolean"),
        Some(b'[') => Err("an array"),
        _ => Err("an object"),
    }
}

/// The exact value of a JSON integer's text (no fraction or exponent) of at most 38 digits;
/// `None` for any other text. A double holds integers exactly only up to 2⁵³: read so, 2⁵³ + 1
/// would equal 2⁵³.
pub fn text_integer(text: &[u8]) -> Option<i128> {
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    if digits.is_empty() || digits.len() > 38 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if digits.len() <= 18 {
        // Fits in 64 bits: parsed without 128-bit multiplications (software calls in WebAssembly).
        let magnitude = digits.iter().fold(0i64, |value, digit| value * 10 + i64::from(digit - b'0'));
        return Some(i128::from(if digits.len() < text.len() { -magnitude } else { magnitude }));
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// A JSON string's text without escapes, borrowed without its quotes; `None` for anything
/// else (other kinds, escapes).
pub fn text_plain_str(text: &[u8]) -> Option<&str> {
    let inner = text.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if inner.contains(&b'\\') {
        return None;
    }
    std::str::from_utf8(inner).ok()
}

/// Whether a JSON value's text (valid JSON, as an index or a scan gives it) is the string
/// `wanted`, compared as bytes: `None` when only decoding escapes can tell. Text between
/// quotes that is `wanted`'s bytes is `wanted` (when `wanted` has no backslash, so that those
/// bytes hold no escape), and text without a backslash is its own bytes; another kind of value
/// is never a string.
pub fn text_is_str(text: &[u8], wanted: &str) -> Option<bool> {
    let Some(inner) = text.strip_prefix(b"\"").and_then(|text| text.strip_suffix(b"\"")) else {
        return Some(false);
    };
    let wanted = wanted.as_bytes();
    if inner.len() == wanted.len() && same_bytes(inner, wanted) && !wanted.contains(&b'\\') {
        return Some(true);
    }
    if inner.contains(&b'\\') || wanted.contains(&b'\\') { None } else { Some(false) }
}

/// The JSON text of the values at `paths`, borrowed from `bytes`: no allocation per value.
pub fn lookup_raw_many<'a>(bytes: &'a [u8], paths: &[FieldPath]) -> Result<Vec<Option<&'a RawValue>>, String> {
    match raw_values(&lookup_texts(bytes, paths)?) {
        Some(found) => Ok(found),
        None => lookup_raw_many_with_serde(bytes, paths),
    }
}

/// The values of `texts` as serde_json's raw values: serde_json reads each again, which costs
/// little (they are the few values asked for) and needs no unsafe code. `None` if one is not
/// JSON (an index that disagrees with its text).
fn raw_values<'a>(texts: &[Option<&'a [u8]>]) -> Option<Vec<Option<&'a RawValue>>> {
    let raw = |text: &'a [u8]| serde_json::from_str::<&RawValue>(std::str::from_utf8(text).ok()?).ok();
    texts.iter().map(|text| text.map_or(Some(None), |text| raw(text).map(Some))).collect()
}

/// [`lookup_raw_many`] by serde_json alone: every document, and its error messages.
fn lookup_raw_many_with_serde<'a>(bytes: &'a [u8], paths: &[FieldPath]) -> Result<Vec<Option<&'a RawValue>>, String> {
    // serde_json checks the UTF-8 of the strings it reads, not of those it skips: JSON text
    // is UTF-8 throughout.
    if let Err(error) = std::str::from_utf8(bytes) {
        return Err(format!("payload is not valid JSON: invalid UTF-8 at byte {}", error.valid_up_to()));
    }
    let mut found = vec![None; paths.len()];
    let wanted = paths.iter().enumerate().map(|(slot, path)| (slot, path.segments())).collect();
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    Lookup { wanted, found: &mut found }
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end())
        .map_err(|error| format!("payload is not valid JSON: {error}"))?;
    fill_from_whole_names(paths, &mut found, |wholes| lookup_raw_many_with_serde(bytes, wholes))?;
    Ok(found)
}

/// A JSON number as `f64`: `Ok(None)` for null, an error for any other kind of value.
pub fn raw_number(raw: &RawValue) -> Result<Option<f64>, &'static str> {
    text_number(raw.get().as_bytes())
}

/// The finite number in `raw`, the JSON text of `field`: `Ok(None)` for null, and for anything
/// else that is not a finite number an error a user can act on (`1e400` parses as infinity and
/// is refused: it would turn sums and averages into null).
pub fn finite_number(field: &FieldPath, raw: &RawValue) -> Result<Option<f64>, String> {
    finite_text_number(field, raw.get().as_bytes())
}

/// [`finite_number`] from the value's JSON text (as [`crate::Record::field_texts`] gives it).
pub fn finite_text_number(field: &FieldPath, text: &[u8]) -> Result<Option<f64>, String> {
    match text_number(text) {
        Ok(None) => Ok(None),
        Ok(Some(number)) if number.is_finite() => Ok(Some(number)),
        Ok(Some(_)) | Err("a number out of range") => {
            Err(format!("field {field} is {}, beyond the range of a 64-bit float", String::from_utf8_lossy(text)))
        }
        Err(kind) => Err(format!("field {field} is {kind}, not a number")),
    }
}

/// A JSON string without escapes, borrowed; `None` for anything else (other kinds, escapes).
pub fn raw_plain_str(raw: &RawValue) -> Option<&str> {
    text_plain_str(raw.get().as_bytes())
}

/// Appends the canonical text of a JSON value, so that equal values give equal text: numbers
/// by value (`1.0` is `1`), strings escaped one way, object keys sorted. Plain strings (the
/// usual ids) are copied without parsing.
pub fn write_canonical(out: &mut String, raw: &RawValue) {
    write_canonical_text(out, raw.get().as_bytes());
}

/// Levels of arrays and objects [`write_canonical_text`] reads into; a value nested deeper is
/// written as its text below that level (as serde_json's own limit, 128), so that a record
/// nested thousands of levels deep costs no more stack than that.
const CANONICAL_DEPTH: usize = 128;

/// [`write_canonical`] for the JSON text of a value (as [`crate::Record::field_texts`] gives
/// it), without making a `RawValue` of it first.
pub fn write_canonical_text(out: &mut String, text: &[u8]) {
    write_canonical_text_at(out, text, 0);
}

fn write_canonical_text_at(out: &mut String, text: &[u8], depth: usize) {
    if let Some(plain) = text_plain_str(text) {
        // The text of a plain string is its quotes around its characters.
        out.push('"');
        out.push_str(plain);
        out.push('"');
        return;
    }
    if canonical_integer(text) {
        // Digits and a minus sign only.
        out.extend(text.iter().map(|&byte| char::from(byte)));
        return;
    }
    let text = text.trim_ascii();
    let written = match text.first() {
        Some(b'[' | b'{') if depth >= CANONICAL_DEPTH => false,
        Some(b'[') => write_canonical_array(out, text, depth),
        Some(b'{') => write_canonical_object(out, text, depth),
        Some(b'-' | b'0'..=b'9') => Decimal::parse(text).map(|decimal| decimal.write_canonical(out)).is_some(),
        _ => match serde_json::from_slice::<Value>(text) {
            Ok(value) => {
                write_canonical_value(out, &value);
                true
            }
            Err(_) => false,
        },
    };
    if !written {
        // Texts come from a read document; the text itself is still a stable identity.
        out.push_str(&String::from_utf8_lossy(text));
    }
}

/// The items of a JSON array, each by its canonical text: numbers exactly as written.
fn write_canonical_array(out: &mut String, text: &[u8], depth: usize) -> bool {
    let Ok(items) = serde_json::from_slice::<Vec<&RawValue>>(text) else { return false };
    out.push('[');
    for (position, item) in items.into_iter().enumerate() {
        if position > 0 {
            out.push(',');
        }
        write_canonical_text_at(out, item.get().as_bytes(), depth + 1);
    }
    out.push(']');
    true
}

/// The fields of a JSON object in name order (a repeated name: its last value, as a parsed
/// object keeps), each by its canonical text.
fn write_canonical_object(out: &mut String, text: &[u8], depth: usize) -> bool {
    use std::fmt::Write as _;
    let Ok(fields) = serde_json::from_slice::<std::collections::BTreeMap<String, &RawValue>>(text) else { return false };
    out.push('{');
    for (position, (name, field)) in fields.into_iter().enumerate() {
        if position > 0 {
            out.push(',');
        }
        let _ = write!(out, "{}:", Value::String(name));
        write_canonical_text_at(out, field.get().as_bytes(), depth + 1);
    }
    out.push('}');
    true
}

/// A JSON number's exact value, `digits · 10^exponent` (no leading or trailing zero in
/// `digits`; none at all for zero), read from its text.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Decimal {
    pub(crate) negative: bool,
    pub(crate) digits: Vec<u8>,
    pub(crate) exponent: i64,
}

impl Decimal {
    /// The value of a JSON number's text; `None` if the text is not one.
    pub(crate) fn parse(text: &[u8]) -> Option<Decimal> {
        let (negative, rest) = match text.strip_prefix(b"-") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let integer_end = rest.iter().position(|byte| !byte.is_ascii_digit()).unwrap_or(rest.len());
        let (integer, rest) = rest.split_at(integer_end);
        if integer.is_empty() || (integer.len() > 1 && integer[0] == b'0') {
            return None;
        }
        let (fraction, rest) = match rest.strip_prefix(b".") {
            Some(rest) => {
                let end = rest.iter().position(|byte| !byte.is_ascii_digit()).unwrap_or(rest.len());
                if end == 0 {
                    return None;
                }
                rest.split_at(end)
            }
            None => (&rest[..0], rest),
        };
        let exponent = match rest {
            [] => 0,
            [b'e' | b'E', exponent @ ..] => exponent_value(exponent)?,
            _ => return None,
        };
        let mut digits: Vec<u8> = integer.iter().chain(fraction).copied().skip_while(|digit| *digit == b'0').collect();
        let exponent = exponent.saturating_sub(fraction.len() as i64);
        let trailing = digits.iter().rev().take_while(|digit| **digit == b'0').count();
        digits.truncate(digits.len() - trailing);
        let exponent = if digits.is_empty() { 0 } else { exponent.saturating_add(trailing as i64) };
        Some(Decimal { negative: negative && !digits.is_empty(), digits, exponent })
    }

    /// Writes the canonical text of the value: an integer of up to 40 digits by its digits; a
    /// value that is the shortest text of a double as that double is written
    /// ([`write_canonical_number`]); any other, which a double would round, exactly as
    /// `d.ddde±n`.
    fn write_canonical(&self, out: &mut String) {
        use std::fmt::Write as _;
        if self.digits.is_empty() {
            out.push('0');
            return;
        }
        if self.write_integer(out) {
            return;
        }
        if let Some(number) = self.as_shortest_double() {
            write_canonical_number(out, &number);
            return;
        }
        if self.negative {
            out.push('-');
        }
        out.push(char::from(self.digits[0]));
        if self.digits.len() > 1 {
            out.push('.');
            out.extend(self.digits[1..].iter().map(|&digit| char::from(digit)));
        }
        let _ = write!(out, "e{}", self.digits.len() as i64 + self.exponent - 1);
    }

    /// Writes the value by its digits if it is an integer of at most 40 of them.
    fn write_integer(&self, out: &mut String) -> bool {
        if self.exponent < 0 || self.digits.len() as i64 + self.exponent > 40 {
            return false;
        }
        if self.negative {
            out.push('-');
        }
        out.extend(self.digits.iter().map(|&digit| char::from(digit)));
        out.extend(std::iter::repeat_n('0', self.exponent as usize));
        true
    }

    /// The double whose shortest text has this value, if one does.
    fn as_shortest_double(&self) -> Option<serde_json::Number> {
        let digits = std::str::from_utf8(&self.digits).ok()?;
        let x: f64 = format!("{}{digits}e{}", if self.negative { "-" } else { "" }, self.exponent).parse().ok()?;
        if !x.is_finite() {
            return None;
        }
        // serde_json writes a double in its shortest text (ryu's choice among equally short).
        let number = serde_json::Number::from_f64(x)?;
        (Decimal::parse(number.to_string().as_bytes()).as_ref() == Some(self)).then_some(number)
    }
}

/// An exponent's value (sign and digits), saturated far beyond any double's.
fn exponent_value(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text {
        [b'-', digits @ ..] => (true, digits),
        [b'+', digits @ ..] => (false, digits),
        digits => (false, digits),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let magnitude = digits.iter().fold(0i64, |value, digit| value.saturating_mul(10).saturating_add(i64::from(digit - b'0'))).min(1 << 40);
    Some(if negative { -magnitude } else { magnitude })
}

/// Whether `text` is an integer written as its canonical text is: no sign but a minus, no
/// leading zero, no `-0`, at most 18 digits (within `i64`), no point or exponent. Such ids
/// are copied as they are, without parsing.
fn canonical_integer(text: &[u8]) -> bool {
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    match digits {
        [b'0'] => digits.len() == text.len(),
        [b'1'..=b'9', rest @ ..] => rest.len() < 18 && rest.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

/// Writes into `key` (replacing its text) a JSON array of the canonical text of `values`,
/// absent ones as null: the identity of a group of field values (`group_by`, keys).
pub fn write_key(key: &mut String, values: &[Option<&RawValue>]) {
    write_key_of(key, values, |key, raw| write_canonical(key, raw));
}

/// The values of a key [`write_key`] or [`write_key_texts`] wrote, as their canonical texts
/// (exact: an integer past a double keeps its digits), in order; `None` for another text.
pub fn key_values(key: &str) -> Option<Vec<&RawValue>> {
    serde_json::from_str(key).ok()
}

/// [`write_key`] for the JSON texts of the values (as [`crate::Record::field_texts`] gives
/// them).
pub fn write_key_texts(key: &mut String, texts: &[Option<&[u8]>]) {
    write_key_of(key, texts, |key, text| write_canonical_text(key, text));
}

fn write_key_of<V>(key: &mut String, values: &[Option<V>], write: impl Fn(&mut String, &V)) {
    key.clear();
    key.push('[');
    for (position, value) in values.iter().enumerate() {
        if position > 0 {
            key.push(',');
        }
        match value {
            Some(value) => write(key, value),
            None => key.push_str("null"),
        }
    }
    key.push(']');
}

/// Appends the canonical text of a parsed JSON value (see [`write_canonical`]).
pub fn write_canonical_value(out: &mut String, value: &Value) {
    use std::fmt::Write as _;
    match value {
        Value::Number(number) => write_canonical_number(out, number),
        Value::Array(items) => {
            out.push('[');
            for (position, item) in items.iter().enumerate() {
                if position > 0 {
                    out.push(',');
                }
                write_canonical_value(out, item);
            }
            out.push(']');
        }
        Value::Object(object) => {
            // Keys keep document order in a parsed object; equal objects must not depend on it.
            let mut fields: Vec<(&String, &Value)> = object.iter().collect();
            fields.sort_by(|left, right| left.0.cmp(right.0));
            out.push('{');
            for (position, (name, field)) in fields.into_iter().enumerate() {
                if position > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{}:", Value::String(name.clone()));
                write_canonical_value(out, field);
            }
            out.push('}');
        }
        // Strings are re-escaped the one way serde_json writes them; null and booleans as is.
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

/// Appends a number canonically: integral values of up to 40 digits as integers, others in
/// serde_json's shortest form.
pub fn write_canonical_number(out: &mut String, number: &serde_json::Number) {
    use std::fmt::Write as _;
    let _ = if let Some(integer) = number.as_i64() {
        write!(out, "{integer}")
    } else if let Some(integer) = number.as_u64() {
        write!(out, "{integer}")
    } else {
        match number.as_f64() {
            // Within these bounds the conversions are exact, so equal values give equal text.
            Some(x) if x.fract() == 0.0 && (-9.2e18..0.0).contains(&x) => write!(out, "{}", x as i64),
            Some(x) if x.fract() == 0.0 && (0.0..1.8e19).contains(&x) => write!(out, "{}", x as u64),
            // Larger integers of up to 40 digits, as their text would be (see `Decimal`).
            Some(x) if x.fract() == 0.0 && x.abs() < 1e40 => {
                if !Decimal::parse(number.to_string().as_bytes()).is_some_and(|decimal| decimal.write_integer(out)) {
                    let _ = write!(out, "{number}");
                }
                Ok(())
            }
            _ => write!(out, "{number}"),
        }
    };
}

/// `x` as a JSON number: integral values within f64's exact range (2^53) as integers, so that
/// a value reads as it was written; non-finite values as null.
pub fn number(x: f64) -> Value {
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if x.fract() == 0.0 && x.abs() < EXACT {
        Value::from(x as i64)
    } else {
        serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
    }
}

/// Appends the JSON text of [`number`]`(x)`, as serde_json writes it, without making the
/// `Value`.
pub fn write_number(out: &mut Vec<u8>, x: f64) {
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if x.fract() == 0.0 && x.abs() < EXACT {
        out.extend_from_slice(itoa::Buffer::new().format(x as i64).as_bytes());
    } else {
        // Writing into a vector cannot fail; non-finite values are written as null.
        let _ = serde_json::to_writer(out, &x);
    }
}

/// The name of a JSON value's type, for error messages.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Extracts the wanted paths (slot, remaining segments) of the value being deserialised.
struct Lookup<'p, 'f, 'de> {
    wanted: Vec<(usize, &'p [String])>,
    found: &'f mut Vec<Option<&'de RawValue>>,
}

impl<'de> DeserializeSeed<'de> for Lookup<'_, '_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        if self.wanted.iter().all(|(_, rest)| !rest.is_empty()) {
            return deserializer.deserialize_any(self);
        }
        // Some path ends here: keep the value's text, and answer deeper paths from it.
        let raw = <&'de RawValue>::deserialize(deserializer)?;
        for (slot, rest) in self.wanted {
            self.found[slot] = if rest.is_empty() { Some(raw) } else { nested(raw, rest) };
        }
        Ok(())
    }
}

/// The text at `rest` inside `raw` (a rare case: one path is a prefix of another).
fn nested<'de>(raw: &'de RawValue, rest: &[String]) -> Option<&'de RawValue> {
    let mut found = vec![None];
    let mut deserializer = serde_json::Deserializer::from_str(raw.get());
    Lookup { wanted: vec![(0, rest)], found: &mut found }.deserialize(&mut deserializer).ok()?;
    found.pop().flatten()
}

impl<'de> Visitor<'de> for Lookup<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<KeyText<'de>>()? {
            let wanted: Vec<_> = self
                .wanted
                .iter()
                .filter(|(slot, rest)| rest[0] == key.as_str() && self.found[*slot].is_none())
                .map(|(slot, rest)| (*slot, &rest[1..]))
                .collect();
            if wanted.is_empty() {
                map.next_value::<IgnoredAny>()?;
            } else {
                map.next_value_seed(Lookup { wanted, found: &mut *self.found })?;
            }
        }
        Ok(())
    }

    /// Arrays are indexed by numeric path segments: `items.0.price`.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0usize;
        loop {
            let wanted: Vec<_> = self
                .wanted
                .iter()
                .filter(|(slot, rest)| rest[0].parse::<usize>().ok() == Some(index) && self.found[*slot].is_none())
                .map(|(slot, rest)| (*slot, &rest[1..]))
                .collect();
            let more = if wanted.is_empty() {
                seq.next_element::<IgnoredAny>()?.is_some()
            } else {
                seq.next_element_seed(Lookup { wanted, found: &mut *self.found })?.is_some()
            };
            if !more {
                return Ok(());
            }
            index += 1;
        }
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// The member `segment` of `value`: an object field, or an array element by index.
fn member<'v>(value: &'v Value, segment: &str) -> Option<&'v Value> {
    match value {
        Value::Array(items) => items.get(segment.parse::<usize>().ok()?),
        other => other.get(segment),
    }
}

/// An object key, borrowed from the input unless it contains escapes.
pub(crate) enum KeyText<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl<'de> KeyText<'de> {
    fn as_str(&self) -> &str {
        match self {
            KeyText::Borrowed(text) => text,
            KeyText::Owned(text) => text,
        }
    }

    pub(crate) fn into_cow(self) -> std::borrow::Cow<'de, str> {
        match self {
            KeyText::Borrowed(text) => std::borrow::Cow::Borrowed(text),
            KeyText::Owned(text) => std::borrow::Cow::Owned(text),
        }
    }
}

impl<'de> Deserialize<'de> for KeyText<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyTextVisitor)
    }
}

struct KeyTextVisitor;

impl<'de> Visitor<'de> for KeyTextVisitor {
    type Value = KeyText<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Self::Value, E> {
        Ok(KeyText::Borrowed(key))
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(KeyText::Owned(key.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(text: &str) -> FieldPath {
        FieldPath::parse(text).unwrap()
    }

    /// A path of several segments with no nested field there reads the top-level member
    /// spelt like the whole path (window-aggregate's group fields), the same through every
    /// lookup: the scan, serde_json's reader, the field index, prepared and one-off lookups, a
    /// parsed map and an edited object; a nested field there wins.
    #[test]
    fn a_dotted_path_reads_a_top_level_member_spelt_like_it_when_nothing_is_nested_there() {
        let paths = [path("shop.category"), path("o.n"), path("a.b"), path("x"), path("gone.too")];
        let doc = r#"{"shop.category":"books","o":{"n":1},"o.n":2,"a":{"c":3},"a.b":[4],"x":5}"#;
        let expected = [Some(r#""books""#), Some("1"), Some("[4]"), Some("5"), None];
        let texts = |found: Vec<Option<&[u8]>>| {
            found.into_iter().map(|text| text.map(|text| std::str::from_utf8(text).unwrap().to_owned())).collect::<Vec<_>>()
        };
        let expected: Vec<Option<String>> = expected.iter().map(|text| text.map(str::to_owned)).collect();
        assert_eq!(texts(lookup_texts(doc.as_bytes(), &paths).unwrap()), expected, "scan");
        let by_serde = lookup_raw_many_with_serde(doc.as_bytes(), &paths).unwrap();
        assert_eq!(texts(by_serde.into_iter().map(|raw| raw.map(|raw| raw.get().as_bytes())).collect()), expected, "serde_json");
        let mut index = Vec::new();
        assert!(crate::fields::append_index(doc.as_bytes(), &mut index));
        let index = FieldIndex::parse(&index).unwrap();
        assert_eq!(texts(lookup_texts_indexed(doc.as_bytes(), index, &paths).unwrap()), expected, "indexed");
        let mut prepared = Vec::new();
        let lookup = crate::FieldLookup::new(paths.to_vec());
        crate::lookup::texts_into(doc.as_bytes(), Some(index), &lookup, &mut prepared).unwrap();
        assert_eq!(texts(prepared), expected, "prepared");
        let Value::Object(map) = serde_json::from_str::<Value>(doc).unwrap() else { panic!() };
        let got: Vec<Option<String>> = paths.iter().map(|path| path.get(&map).map(|value| value.to_string())).collect();
        assert_eq!(got, [Some(r#""books""#), Some("1"), Some("[4]"), Some("5"), None].map(|text| text.map(str::to_owned)), "map");
        let object = crate::edit::RawObject::parse(doc).unwrap().unwrap();
        let edited: Vec<Option<String>> = paths.iter().map(|path| object.get(path).map(|raw| raw.get().to_owned())).collect();
        assert_eq!(edited, expected, "edited");
        let (mut map, mut object) = (map, object);
        assert_eq!(path("shop.category").remove(&mut map), Some(json!("books")));
        assert!(object.remove(&path("shop.category")).is_some());
        assert_eq!(path("o.n").remove(&mut map), Some(json!(1)), "the nested one first");
        assert!(!map.contains_key("shop.category") && map.contains_key("o.n"), "{map:?}");
        assert!(!object.has_member("shop.category") && object.has_member("o.n"));
    }

    /// A value read at a path keeps the first of a repeated name, as the whole payload
    /// parsed does (`Record::json_object`).
    #[test]
    fn values_read_at_a_path_keep_the_first_of_a_repeated_name() {
        let doc = br#"{"a": {"x": 1, "y": {"z": true, "z": false}, "x": 2}}"#;
        assert_eq!(lookup(doc, &path("a")).unwrap(), Some(json!({"x": 1, "y": {"z": true}})));
        assert_eq!(lookup(doc, &path("a.y")).unwrap(), Some(json!({"z": true})));
        let whole = crate::first_wins::parse_value(doc).unwrap();
        assert_eq!(lookup(doc, &path("a")).unwrap().as_ref(), whole.get("a"));
    }

    #[test]
    fn lookup_finds_top_level_and_nested_fields() {
        let doc = br#"{"a": 1, "b": {"c": "x", "d": [1, 2]}, "e": null}"#;
        assert_eq!(lookup(doc, &path("a")).unwrap(), Some(json!(1)));
        assert_eq!(lookup(doc, &path("b.c")).unwrap(), Some(json!("x")));
        assert_eq!(lookup(doc, &path("b.d")).unwrap(), Some(json!([1, 2])));
        assert_eq!(lookup(doc, &path("e")).unwrap(), Some(Value::Null));
    }

    /// JSON text of `value` with whitespace between tokens, keys possibly repeated.
    fn spaced_json(value: &Value, space: &str) -> String {
        match value {
            Value::Object(object) => {
                let fields: Vec<String> = object
                    .iter()
                    .map(|(name, field)| format!("{space}{}{space}:{space}{}", Value::String(name.clone()), spaced_json(field, space)))
                    .collect();
                let repeated = object.iter().next().map(|(name, _)| format!(",{}:0", Value::String(name.clone()))).unwrap_or_default();
                format!("{{{}{repeated}{space}}}", fields.join(","))
            }
            Value::Array(items) => format!("[{space}{}]", items.iter().map(|item| spaced_json(item, space)).collect::<Vec<_>>().join(",")),
            // Texts serde_json reads only when it must: a number beyond f64, a lone surrogate.
            Value::String(text) if text == "<huge>" => "1e400".into(),
            Value::String(text) if text == "<lone>" => r#""\ud800""#.into(),
            other => other.to_string(),
        }
    }

    fn arbitrary_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let key = prop::sample::select(vec![
            "a",
            "b",
            "0",
            "1",
            "k y",
            "é",
            "q\"t",
            "\u{1}",
            "dateTime",
            "dateTimes",
            "a-long-field-name",
            "a-long-field-namf",
            "a-field-name-longer-than-31-bytes",
            "a-field-name-longer-than-thirty-one-bytes",
        ]);
        let leaf = prop_oneof![
            Just(Value::Null),
            Just(Value::String("<huge>".into())),
            Just(Value::String("<lone>".into())),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            "[a-c\"\\\u{1}\u{e9}/]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 4, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..4)
                    .prop_map(|fields| Value::Object(fields.into_iter().map(|(name, value)| (name.to_owned(), value)).collect())),
            ]
        })
    }

    #[test]
    fn the_fast_pass_takes_common_documents_and_leaves_the_rest_to_serde_json() {
        let spans = |text: &str, paths: &[&str]| crate::scan::field_spans(text, &paths.iter().map(|text| path(text)).collect::<Vec<_>>());
        let doc = r#" {"type":"bid","n":-1.5e3,"s":"a\"\u00e9","o":{"x":[1,{"y":true}]},"type":"again"} "#;
        let found = spans(doc, &["type", "o.x.1.y", "s", "zz"]).expect("the fast pass takes it");
        let texts: Vec<Option<&str>> = found.iter().map(|span| span.map(|(start, end)| &doc[start..end])).collect();
        assert_eq!(texts, vec![Some("\"bid\""), Some("true"), Some(r#""a\"\u00e9""#), None]);
        assert_eq!(spans(r#"{"a\u0062": 2}"#, &["ab"]), None, "escaped keys are serde_json's");
        assert_eq!(spans(r#"{"a": 01}"#, &["a"]), None, "invalid documents are serde_json's");
        assert_eq!(spans(&"[".repeat(200), &["a"]), None, "deep nesting is serde_json's");
        // A path through a scalar serde_json cannot read is an error there, and here too.
        for doc in [&br#"{"a": 1e400}"#[..], br#"{"a": "\ud800"}"#] {
            assert!(lookup_raw_many(doc, &[path("a.b")]).is_err());
            assert!(lookup_texts(doc, &[path("a.b")]).is_err());
            assert!(lookup_raw_many(doc, &[path("a")]).unwrap()[0].is_some(), "ending there, it is text");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// The fast pass answers exactly as serde_json does, on valid and broken documents.
        #[test]
        fn the_fast_lookup_agrees_with_serde_json(
            value in arbitrary_json(),
            space in proptest::sample::select(vec!["", " ", "\n\t "]),
            cut in proptest::option::of(0usize..200),
            flip in proptest::option::of((0usize..200, proptest::prelude::any::<u8>())),
            paths in proptest::collection::vec(proptest::sample::select(vec!["a", "b", "0", "1", "a.b", "a.0", "b.a.1", "0.a", "00", "k y", "é", "a.é", "dateTime", "dateTimes", "a-long-field-name", "a.dateTime", "a-field-name-longer-than-31-bytes", "a-field-name-longer-than-thirty-one-bytes"]), 1..5),
        ) {
            let mut bytes = spaced_json(&value, space).into_bytes();
            if let Some((at, byte)) = flip
                && let Some(place) = bytes.get_mut(at)
            {
                *place = byte;
            }
            if let Some(cut) = cut {
                bytes.truncate(cut);
            }
            let paths: Vec<FieldPath> = paths.into_iter().map(path).collect();
            let texts = |found: Result<Vec<Option<&RawValue>>, String>| found.map(|found| found.into_iter().map(|raw| raw.map(|raw| raw.get().to_owned())).collect::<Vec<_>>());
            proptest::prop_assert_eq!(texts(lookup_raw_many(&bytes, &paths)), texts(lookup_raw_many_with_serde(&bytes, &paths)));
        }
    }

    proptest::proptest! {
        /// Reading through a record's field index, with paths prepared or not, answers as
        /// reading its whole text.
        #[test]
        fn the_indexed_lookup_agrees_with_the_text_lookup(
            value in arbitrary_json(),
            space in proptest::sample::select(vec!["", " ", "\n\t "]),
            paths in proptest::collection::vec(proptest::sample::select(vec!["a", "b", "0", "1", "a.b", "a.0", "b.a.1", "0.a", "00", "k y", "é", "a.é", "dateTime", "dateTimes", "a-long-field-name", "a.dateTime"]), 1..5),
        ) {
            let bytes = spaced_json(&value, space).into_bytes();
            let mut index = Vec::new();
            let indexable = crate::fields::append_index(&bytes, &mut index);
            let plain_keys = value.as_object().is_some_and(|object| object.keys().all(|key| !key.chars().any(|c| c == '"' || c == '\\' || c < ' ')));
            proptest::prop_assert_eq!(indexable, plain_keys);
            if indexable {
                let index = FieldIndex::checked(&index, bytes.len()).expect("a well-formed index");
                let paths: Vec<FieldPath> = paths.into_iter().map(path).collect();
                let texts = |found: Result<Vec<Option<&RawValue>>, String>| found.map(|found| found.into_iter().map(|raw| raw.map(|raw| raw.get().to_owned())).collect::<Vec<_>>());
                let expected = texts(lookup_raw_many_with_serde(&bytes, &paths));
                proptest::prop_assert_eq!(texts(lookup_raw_indexed(&bytes, index, &paths)), expected.clone());
                let plain = |found: Result<Vec<Option<&[u8]>>, String>| found.map(|found| found.into_iter().map(|text| text.map(|text| String::from_utf8(text.to_vec()).unwrap())).collect::<Vec<_>>());
                proptest::prop_assert_eq!(plain(lookup_texts_indexed(&bytes, index, &paths)), expected.clone());
                let (prepared, mut found) = (crate::FieldLookup::new(paths.clone()), Vec::new());
                let through_prepared = crate::lookup::texts_into(&bytes, Some(index), &prepared, &mut found).map(|()| found);
                proptest::prop_assert_eq!(plain(through_prepared), expected.clone());
                proptest::prop_assert_eq!(plain(lookup_texts(&bytes, &paths)), expected);
            }
        }
    }

    proptest::proptest! {
        /// A number written directly is the text of its JSON value, and reads back as the number.
        #[test]
        fn numbers_write_as_their_values_serialise(x in proptest::num::f64::ANY, integer in -1e17..1e17f64) {
            for x in [x, integer.trunc(), integer / 1000.0] {
                let mut written = Vec::new();
                write_number(&mut written, x);
                proptest::prop_assert_eq!(&written, &serde_json::to_vec(&number(x)).unwrap());
                if x.is_finite() {
                    proptest::prop_assert_eq!(text_number(&written), Ok(Some(x)));
                }
            }
        }
    }

    #[test]
    fn numbers_read_from_text_are_the_numbers_written() {
        for (text, expected) in [
            ("12.5", Some(12.5)),
            ("-0", Some(-0.0)),
            ("1e3", Some(1000.0)),
            ("123456789012345678901", Some(1.2345678901234568e20)),
            ("null", None),
        ] {
            assert_eq!(text_number(text.as_bytes()), Ok(expected), "{text}");
        }
        assert_eq!(text_number(b"1e400"), Ok(Some(f64::INFINITY)), "the caller decides about infinities");
        assert_eq!(text_number(b"\"x\""), Err("a string"));
    }

    proptest::proptest! {
        /// An integer's canonical text is its digits, past 64 bits too; within them, that of
        /// its parsed value.
        #[test]
        fn integers_are_canonical_by_their_digits(integer: i64, digits in "-?[0-9]{1,30}") {
            for text in [integer.to_string(), digits] {
                let Ok(raw) = serde_json::from_str::<&RawValue>(&text) else { continue };
                let mut copied = String::new();
                write_canonical(&mut copied, raw);
                let expected = if text == "-0" { "0" } else { text.as_str() };
                proptest::prop_assert_eq!(&copied, expected);
                let parsed = serde_json::from_str::<Value>(&text).unwrap();
                if parsed.is_i64() || parsed.is_u64() {
                    let mut from_value = String::new();
                    write_canonical_value(&mut from_value, &parsed);
                    proptest::prop_assert_eq!(copied, from_value);
                }
            }
        }

        /// Numbers written as serde_json writes a double have the canonical text of their
        /// parsed value, whatever their spelling. (An integer past 2^53 written shorter, as
        /// `2.1219101631944684e18`, is the decimal written, not the double's exact value.)
        #[test]
        fn numbers_a_double_holds_are_canonical_as_their_double(x in proptest::num::f64::NORMAL | proptest::num::f64::ZERO) {
            if x.fract() == 0.0 && x.abs() >= 9_007_199_254_740_992.0 {
                return Ok(());
            }
            let mut from_value = String::new();
            write_canonical_value(&mut from_value, &number(x));
            let written = serde_json::to_string(&x).unwrap();
            let decimal = Decimal::parse(written.as_bytes()).unwrap();
            let digits = if decimal.digits.is_empty() { "0".to_owned() } else { String::from_utf8(decimal.digits.clone()).unwrap() };
            let sign = if decimal.negative { "-" } else { "" };
            let spellings = if decimal.digits.is_empty() {
                ["0.0".to_owned(), "-0".to_owned(), "0e7".to_owned()]
            } else {
                [written.clone(), format!("{sign}{digits}e{}", decimal.exponent), format!("{sign}{digits}00E{}", decimal.exponent - 2)]
            };
            for text in spellings {
                let mut canonical = String::new();
                write_canonical_text(&mut canonical, text.as_bytes());
                proptest::prop_assert_eq!(&canonical, &from_value, "{}", text);
            }
        }
    }

    proptest::proptest! {
        /// A key written from values' texts is the key written from their raw values.
        #[test]
        fn keys_from_texts_are_keys_from_raw_values(values in proptest::collection::vec(proptest::option::of(arbitrary_json()), 0..4)) {
            let texts: Vec<Option<String>> = values.iter().map(|value| value.as_ref().map(|value| spaced_json(value, " "))).collect();
            let raws: Vec<Option<&RawValue>> = texts.iter().map(|text| text.as_deref().and_then(|text| serde_json::from_str(text).ok())).collect();
            proptest::prop_assume!(raws.iter().zip(&texts).all(|(raw, text)| raw.is_some() == text.is_some()));
            let (mut from_raw, mut from_texts) = (String::new(), String::new());
            write_key(&mut from_raw, &raws);
            write_key_texts(&mut from_texts, &texts.iter().map(|text| text.as_deref().map(str::as_bytes)).collect::<Vec<_>>());
            proptest::prop_assert_eq!(from_raw, from_texts);
        }
    }

    proptest::proptest! {
        /// A string compared as bytes answers what decoding it answers, or leaves the question
        /// to decoding; escaped and unescaped texts of the same string both count, and so do
        /// values of other kinds.
        #[test]
        fn strings_compared_as_bytes_are_strings_compared_decoded(
            value in "[a-c\\\\\"\u{e9}\n]{0,4}",
            wanted in "[a-c\\\\\"\u{e9}\n]{0,4}",
            other in arbitrary_json(),
        ) {
            let escaped: String = value.chars().map(|character| format!("\\u{:04x}", character as u32)).collect();
            for text in [serde_json::to_string(&value).unwrap(), format!("\"{escaped}\""), other.to_string()] {
                let decoded: Value = serde_json::from_str(&text).unwrap();
                let equal = decoded.as_str() == Some(wanted.as_str());
                if let Some(answer) = text_is_str(text.as_bytes(), &wanted) {
                    proptest::prop_assert_eq!(answer, equal, "{} against {:?}", text, wanted);
                }
                if !text.contains('\\') && !wanted.contains('\\') {
                    proptest::prop_assert_eq!(text_is_str(text.as_bytes(), &wanted), Some(equal), "{} against {:?}", text, wanted);
                }
            }
        }
    }

    #[test]
    fn lookup_reports_absent_fields_as_none() {
        let doc = br#"{"a": 1, "b": {"c": "x"}}"#;
        assert_eq!(lookup(doc, &path("z")).unwrap(), None);
        assert_eq!(lookup(doc, &path("a.b")).unwrap(), None);
        assert_eq!(lookup(doc, &path("b.z")).unwrap(), None);
        assert_eq!(lookup(b"[1,2]", &path("a")).unwrap(), None);
    }

    #[test]
    fn lookup_matches_escaped_keys_and_rejects_invalid_json() {
        assert_eq!(lookup(br#"{"a\u0062": 2}"#, &path("ab")).unwrap(), Some(json!(2)));
        assert!(lookup(br#"{"a": 1"#, &path("a")).is_err());
        assert!(lookup(br#"{"a": 1} trailing"#, &path("a")).is_err());
    }

    #[test]
    fn lookup_many_answers_several_paths_in_one_pass() {
        let doc = br#"{"a": {"b": 1, "c": 2}, "d": 3}"#;
        let paths = [path("a.c"), path("d"), path("a"), path("zz"), path("a.b")];
        let found = lookup_many(doc, &paths).unwrap();
        assert_eq!(found, vec![Some(json!(2)), Some(json!(3)), Some(json!({"b": 1, "c": 2})), None, Some(json!(1))]);
    }

    #[test]
    fn raw_lookups_borrow_the_text_and_classify_numbers() {
        let doc = br#"{"n": -1.5e2, "s": "plain", "e": "a\"b", "z": null, "b": true}"#;
        let paths = [path("n"), path("s"), path("e"), path("z"), path("b")];
        let raw = lookup_raw_many(doc, &paths).unwrap();
        let raw: Vec<&RawValue> = raw.into_iter().map(Option::unwrap).collect();
        assert_eq!(raw_number(raw[0]), Ok(Some(-150.0)));
        assert_eq!(raw_number(raw[3]), Ok(None));
        assert_eq!(raw_number(raw[1]), Err("a string"));
        assert_eq!(raw_number(raw[4]), Err("a boolean"));
        assert_eq!(raw_plain_str(raw[1]), Some("plain"));
        assert_eq!(raw_plain_str(raw[2]), None);
        assert_eq!(raw_plain_str(raw[0]), None);
    }

    #[test]
    fn numeric_segments_index_arrays() {
        let doc = br#"{"items": [{"p": 1}, {"p": 2}], "empty": []}"#;
        assert_eq!(lookup(doc, &path("items.1.p")).unwrap(), Some(json!(2)));
        assert_eq!(lookup(doc, &path("items.0")).unwrap(), Some(json!({"p": 1})));
        assert_eq!(lookup(doc, &path("items.2")).unwrap(), None);
        assert_eq!(lookup(doc, &path("empty.0")).unwrap(), None);
        let object = serde_json::from_slice::<Value>(doc).unwrap();
        assert_eq!(path("items.1.p").get(object.as_object().unwrap()), Some(&json!(2)));
    }

    #[test]
    fn canonical_text_equates_spellings_of_equal_values() {
        let canonical = |text: &str| {
            let raw: &RawValue = serde_json::from_str(text).unwrap();
            let mut out = String::new();
            write_canonical(&mut out, raw);
            out
        };
        assert_eq!(canonical("1.0"), canonical("1"));
        assert_eq!(canonical("1e2"), "100");
        assert_eq!(canonical(r#""\u0062""#), canonical(r#""b""#));
        assert_eq!(canonical(r#"{"b": 1, "a": [1.0]}"#), r#"{"a":[1],"b":1}"#);
        assert_eq!(canonical("2.5"), "2.5");
        assert_eq!(canonical("0.10"), "0.1");
        assert_eq!(canonical("-0.0"), "0");
        assert_eq!(canonical("1E-1"), "0.1");
    }

    #[test]
    fn canonical_text_keeps_numbers_a_double_would_round() {
        let canonical = |text: &str| {
            let mut out = String::new();
            write_canonical_text(&mut out, text.as_bytes());
            out
        };
        assert_eq!(canonical("18446744073709551617"), "18446744073709551617");
        assert_eq!(canonical("1.8446744073709551617e19"), "18446744073709551617");
        assert_ne!(canonical("18446744073709551617"), canonical("18446744073709551618"));
        assert_eq!(canonical("-9223372036854775809"), "-9223372036854775809");
        assert_eq!(canonical("18446744073709551615"), "18446744073709551615", "u64::MAX");
        assert_eq!(canonical("0.10000000000000000001"), "1.0000000000000000001e-1");
        assert_ne!(canonical("0.10000000000000000001"), canonical("0.1"));
        assert_eq!(canonical("1e400"), canonical("10E399"));
        assert_eq!(canonical("1e400"), "1e400");
        assert_eq!(canonical("[18446744073709551617, 1.0]"), "[18446744073709551617,1]");
        assert_eq!(canonical(r#"{"b": 18446744073709551617, "a": 1}"#), r#"{"a":1,"b":18446744073709551617}"#);
        for text in ["18446744073709551617", "1.0000000000000000001e-1", "1e400", "-123456789012345678901234567890"] {
            assert!(serde_json::from_str::<&RawValue>(&canonical(text)).is_ok(), "{text}: canonical text is JSON");
        }
    }

    #[test]
    fn integer_texts_are_read_exactly_and_others_are_not_integers() {
        assert_eq!(text_integer(b"9007199254740993"), Some(9_007_199_254_740_993));
        assert_eq!(text_integer(b"-999999999999999999"), Some(-999_999_999_999_999_999));
        assert_eq!(text_integer(b"1000000000000000000"), Some(1_000_000_000_000_000_000));
        assert_eq!(text_integer(b"-170141183460469231731687303715884105727"), None, "39 digits");
        for other in [&b"1.5"[..], b"1e3", b"-", b"", b"\"7\"", b"null"] {
            assert_eq!(text_integer(other), None, "{}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn numbers_are_integers_when_integral_and_null_when_not_finite() {
        assert_eq!(number(3.0), json!(3));
        assert_eq!(number(-2.5), json!(-2.5));
        assert_eq!(number(1e300), json!(1e300));
        assert_eq!(number(f64::NAN), Value::Null);
        assert_eq!(number(f64::INFINITY), Value::Null);
    }

    #[test]
    fn paths_must_not_have_empty_segments() {
        assert!(FieldPath::parse("a..b").is_err());
        assert!(FieldPath::parse("").is_err());
        assert_eq!(path("a.b").leaf(), "b");
    }

    #[test]
    fn set_and_remove_create_and_delete_nested_fields() {
        let mut object = serde_json::Map::new();
        path("a.b").set(&mut object, json!(3)).unwrap();
        assert_eq!(Value::Object(object.clone()), json!({"a": {"b": 3}}));
        assert_eq!(path("a.b").remove(&mut object), Some(json!(3)));
        assert!(path("x").set(&mut serde_json::Map::from_iter([("x".into(), json!(1))]), json!(2)).is_ok());
    }

    /// Numeric segments index arrays when writing and removing, as when reading.
    #[test]
    fn set_and_remove_index_arrays_as_get_does() {
        let json_object = |value: Value| value.as_object().cloned().unwrap();
        let mut object = json_object(json!({"n": {"y": [10, {"z": 1}, 30]}, "s": "text"}));
        path("n.y.1.z").set(&mut object, json!(2)).unwrap();
        path("n.y.0").set(&mut object, json!(11)).unwrap();
        assert_eq!(Value::Object(object.clone()), json!({"n": {"y": [11, {"z": 2}, 30]}, "s": "text"}));
        assert_eq!(
            path("n.y.3").set(&mut object, json!(0)),
            Err("cannot set n.y.3: \"y\" is an array of 3 elements, and has no element 3".into())
        );
        assert_eq!(
            path("n.y.first").set(&mut object, json!(0)),
            Err("cannot set n.y.first: \"y\" is an array, and \"first\" is not an index".into())
        );
        assert_eq!(path("s.t").set(&mut object, json!(0)), Err("cannot set s.t: \"s\" is not an object".into()));
        assert_eq!(path("n.y.1.z").remove(&mut object), Some(json!(2)));
        assert_eq!(path("n.y.0").remove(&mut object), Some(json!(11)));
        assert_eq!(path("n.y.5").remove(&mut object), None);
        assert_eq!(Value::Object(object), json!({"n": {"y": [{}, 30]}, "s": "text"}));
    }
}
