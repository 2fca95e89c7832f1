//! The index of a JSON object's top-level fields that travels with a record (`event.fields`):
//! built once, when the record first reaches an operator that reads it, then read in place.
//!
//! Layout (WIT `event.fields`): a little-endian u32 count, then per field four u32s (name
//! offset, name length, value offset, value length), relative to the start of the value.

use std::cell::Cell;

use crate::{Batch, Span};

/// The value encoding of JSON text with each record's field index (WIT `event.fields`).
pub const ENCODING: &str = "json+fields";

/// The value encoding of JSON text whose records arrive with their field index, while those
/// the operator writes carry none: what the runtime offers an operator whose outputs reach no
/// other operator (only sinks, none of which reads a key from fields), so that no index is
/// written that nothing would read.
pub const ENCODING_INDEXES_IN: &str = "json+fields-in";

thread_local! {
    /// Whether the records this instance writes get field indexes: true unless its encoding
    /// says nothing reads them ("json+fields-in", "json"). Native code (the runtime, native
    /// tests) always writes them.
    static WRITES_INDEXES: Cell<bool> = const { Cell::new(true) };
}

/// Sets whether the records this instance writes get field indexes (the glue, at `init`).
pub(crate) fn set_writes_indexes(writes: bool) {
    WRITES_INDEXES.with(|slot| slot.set(writes));
}

/// Whether the records this instance writes get field indexes.
pub(crate) fn writes_indexes() -> bool {
    WRITES_INDEXES.with(Cell::get)
}

/// Bytes of one entry.
const ENTRY: usize = 16;

/// One indexed field: where its name (the key's text between quotes) and its JSON value lie
/// within the record's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub name: (usize, usize),
    pub value: (usize, usize),
}

impl Field {
    /// Whether its name and value lie within a value of `length` bytes.
    pub fn lies_within(&self, length: usize) -> bool {
        let within = |(offset, span): (usize, usize)| offset.checked_add(span).is_some_and(|end| end <= length);
        within(self.name) && within(self.value)
    }
}

/// Appends to `out` the index of `value` and returns true, when `value` is a valid JSON object
/// whose keys have no escapes; otherwise leaves `out` alone and returns false.
pub fn append_index(value: &[u8], out: &mut Vec<u8>) -> bool {
    let mut ranges = Vec::new();
    field_ranges(value, &mut ranges) && write_entries(&ranges, out)
}

/// Indexes, in place, every record of `batch` that has no index yet and whose value is an
/// indexable JSON object: what the runtime does before handing a batch to an operator that
/// chose "json+fields" (and [`crate::testing::Harness`] in native tests).
pub fn index_batch(batch: &mut Batch) {
    let mut indexer = Indexer::default();
    for position in 0..batch.events.len() {
        let event = batch.events[position];
        if event.fields.is_none() {
            batch.events[position].fields = indexer.index_in(&mut batch.bytes, event.value);
        }
    }
}

/// Builds field indexes, reusing its scratch space from one record to the next.
#[derive(Debug, Default)]
pub struct Indexer {
    ranges: Vec<Field>,
}

impl Indexer {
    /// Appends to `bytes` the index of the value at `value` (a span of `bytes`) and returns
    /// where it lies, when that value is an indexable JSON object.
    pub fn index_in(&mut self, bytes: &mut Vec<u8>, value: Span) -> Option<Span> {
        self.find_fields(bytes, value)?;
        append_entries(&self.ranges, bytes, 0)
    }

    /// Appends to `indexes` the index of the value at `value` (a span of `bytes`) and returns
    /// where it lies once `indexes` follows `bytes` (its offset counts `bytes.len()` first),
    /// when that value is an indexable JSON object. For indexes built beside a batch, without
    /// copying its bytes.
    pub fn index_beside(&mut self, bytes: &[u8], indexes: &mut Vec<u8>, value: Span) -> Option<Span> {
        self.find_fields(bytes, value)?;
        append_entries(&self.ranges, indexes, bytes.len())
    }

    /// The top-level fields of `value`, in document order, when it is an indexable JSON
    /// object: for a reader that looks at a field itself (a source reading a record's event
    /// time) and then keeps the fields as the record's index ([`Batch::push_indexed`]).
    pub fn scan(&mut self, value: &[u8]) -> Option<&[Field]> {
        field_ranges(value, &mut self.ranges).then_some(&self.ranges)
    }

    /// The fields of the value at `value` into `self.ranges`, when it is indexable.
    fn find_fields(&mut self, bytes: &[u8], value: Span) -> Option<()> {
        let (offset, length) = (value.offset as usize, value.length as usize);
        let text = bytes.get(offset..offset.checked_add(length)?)?;
        field_ranges(text, &mut self.ranges).then_some(())
    }
}

/// Appends the index of `fields` to `out` and returns its span, counting `before` bytes ahead of
/// `out`; `None`, nothing appended, past u32 offsets.
pub(crate) fn append_entries(fields: &[Field], out: &mut Vec<u8>, before: usize) -> Option<Span> {
    let start = u32::try_from(before.checked_add(out.len())?).ok()?;
    let written = out.len();
    let span = write_entries(fields, out).then(|| Span { offset: start, length: (out.len() - written) as u32 });
    if span.is_none() || u32::try_from(before + out.len()).is_err() {
        out.truncate(written);
        return None;
    }
    span
}

/// The fields of `value` into `ranges`, when it is indexable.
fn field_ranges(value: &[u8], ranges: &mut Vec<Field>) -> bool {
    let Ok(text) = std::str::from_utf8(value) else { return false };
    crate::scan::top_level_fields(text, ranges).is_some() && u32::try_from(value.len()).is_ok()
}

/// Appends the index of `fields` to `out` (false, nothing appended, past u32 counts).
fn write_entries(fields: &[Field], out: &mut Vec<u8>) -> bool {
    let Ok(count) = u32::try_from(fields.len()) else { return false };
    out.reserve(4 + fields.len() * ENTRY);
    out.extend_from_slice(&count.to_le_bytes());
    for field in fields {
        for number in [field.name.0, field.name.1, field.value.0, field.value.1] {
            out.extend_from_slice(&(number as u32).to_le_bytes());
        }
    }
    true
}

/// A record's field index, checked: every entry lies within the value.
#[derive(Debug, Clone, Copy)]
pub struct FieldIndex<'a> {
    entries: &'a [u8],
}

impl<'a> FieldIndex<'a> {
    /// The index in `bytes`, or `None` when its size is wrong. Entries are not checked here:
    /// each is checked against its value where it is read ([`FieldIndex::text_of`]).
    pub fn parse(bytes: &'a [u8]) -> Option<FieldIndex<'a>> {
        let (count, entries) = bytes.split_first_chunk::<4>()?;
        let size = (u32::from_le_bytes(*count) as usize).checked_mul(ENTRY)?;
        (size == entries.len()).then_some(FieldIndex { entries })
    }

    /// The index in `bytes` of a value of `value_length` bytes, when it is well formed: the
    /// right size, and every entry within the value (what the runtime checks).
    pub fn checked(bytes: &'a [u8], value_length: usize) -> Option<FieldIndex<'a>> {
        let index = FieldIndex::parse(bytes)?;
        index.fields().all(|field| field.lies_within(value_length)).then_some(index)
    }

    /// The fields, in document order.
    pub fn fields(&self) -> impl Iterator<Item = Field> + 'a {
        entry_fields(self.entries)
    }

    /// The JSON text of every field named `name` in `value` (the record's value), first
    /// first; `None` in place of an entry outside the value.
    pub fn values_named<'v, 'n>(self, value: &'v [u8], name: &'n str) -> impl Iterator<Item = Option<&'v [u8]>> + 'n
    where
        'a: 'n,
        'v: 'n,
    {
        entry_fields(self.entries)
            .filter(move |field| text_of(value, field.name).is_some_and(|text| crate::text::same_bytes(text, name.as_bytes())))
            .map(move |field| text_of(value, field.value))
    }
}

fn entry_fields(entries: &[u8]) -> impl Iterator<Item = Field> + '_ {
    // Read as whole words: built from single bytes, each number took four byte loads once
    // compiled to WebAssembly.
    entries.chunks_exact(ENTRY).map(|entry| {
        let words: [[u8; 4]; 4] = std::array::from_fn(|at| entry[4 * at..4 * at + 4].try_into().unwrap_or_default());
        let [name_offset, name_length, value_offset, value_length] = words.map(|word| u32::from_le_bytes(word) as usize);
        Field { name: (name_offset, name_length), value: (value_offset, value_length) }
    })
}

/// The bytes of `value` at `(offset, length)`, if they lie within it.
pub fn text_of(value: &[u8], (offset, length): (usize, usize)) -> Option<&[u8]> {
    value.get(offset..offset.checked_add(length)?)
}

/// A field name written once as JSON (`"name":`), for objects written many times with the
/// same names ([`ObjectWriter::named_field`]).
#[derive(Debug, Clone)]
pub struct FieldName {
    written: Vec<u8>,
    length: usize,
    plain: bool,
}

impl FieldName {
    pub fn new(name: &str) -> FieldName {
        let mut written = Vec::with_capacity(name.len() + 3);
        write_string(&mut written, name);
        written.push(b':');
        FieldName { written, length: name.len(), plain: !needs_escapes(name) }
    }
}

/// Writes a JSON object and its field index together: how an operator that builds new
/// records keeps them indexed for the next operator (see [`Batch::push_object_like`]).
/// Start each object with [`ObjectWriter::clear`].
#[derive(Debug, Default)]
pub struct ObjectWriter {
    text: Vec<u8>,
    fields: Vec<Field>,
    /// False once a name needed escapes: such an object is emitted without an index.
    indexable: bool,
}

impl ObjectWriter {
    pub fn new() -> ObjectWriter {
        ObjectWriter::default()
    }

    /// Starts a new object.
    pub fn clear(&mut self) {
        self.text.clear();
        self.text.push(b'{');
        self.fields.clear();
        self.indexable = true;
    }

    /// Adds a field whose value is `json`, written as is: it must be one valid JSON value
    /// (the index that goes with the object is trusted by the operators after this one; debug
    /// builds, native tests among them, check it).
    pub fn field(&mut self, name: &str, json: &[u8]) {
        debug_assert!(crate::scan::is_one_value(json), "ObjectWriter::field: {:?} is not one JSON value", String::from_utf8_lossy(json));
        let name_start = self.name(name);
        let value_start = self.text.len();
        self.text.extend_from_slice(json);
        self.fields.push(Field { name: (name_start, name.len()), value: (value_start, json.len()) });
    }

    /// Adds a field named `name` (written once beforehand) whose value is `json`, one valid
    /// JSON value (as for [`ObjectWriter::field`]).
    pub fn named_field(&mut self, name: &FieldName, json: &[u8]) {
        self.named_field_written(name, |text| text.extend_from_slice(json));
    }

    /// Adds a field named `name` (written once beforehand) whose value `write` appends: one
    /// valid JSON value (as for [`ObjectWriter::field`]). For a value made as it is written,
    /// with no copy of it to keep.
    pub fn named_field_written(&mut self, name: &FieldName, write: impl FnOnce(&mut Vec<u8>)) {
        let name_start = self.written_name(name);
        let value_start = self.text.len();
        write(&mut self.text);
        debug_assert!(
            crate::scan::is_one_value(&self.text[value_start..]),
            "ObjectWriter::named_field: {:?} is not one JSON value",
            String::from_utf8_lossy(&self.text[value_start..])
        );
        self.fields.push(Field { name: (name_start, name.length), value: (value_start, self.text.len() - value_start) });
    }

    /// Adds a string field named `name` (written once beforehand), escaped as JSON requires.
    pub fn named_field_str(&mut self, name: &FieldName, value: &str) {
        let name_start = self.written_name(name);
        let value_start = self.text.len();
        write_string(&mut self.text, value);
        self.fields.push(Field { name: (name_start, name.length), value: (value_start, self.text.len() - value_start) });
    }

    /// Adds an integer field named `name` (written once beforehand).
    pub fn named_field_i64(&mut self, name: &FieldName, value: i64) {
        let mut digits = itoa::Buffer::new();
        self.named_field(name, digits.format(value).as_bytes());
    }

    /// Writes a name written beforehand and its colon (after a comma, past the first field);
    /// returns where the name's text starts.
    fn written_name(&mut self, name: &FieldName) -> usize {
        self.separate();
        self.indexable &= name.plain;
        self.text.extend_from_slice(&name.written);
        self.text.len() - name.written.len() + 1
    }

    /// Adds a string field (escaped as JSON requires).
    pub fn field_str(&mut self, name: &str, value: &str) {
        let name_start = self.name(name);
        let value_start = self.text.len();
        write_string(&mut self.text, value);
        self.fields.push(Field { name: (name_start, name.len()), value: (value_start, self.text.len() - value_start) });
    }

    /// Adds an integer field.
    pub fn field_i64(&mut self, name: &str, value: i64) {
        let mut digits = itoa::Buffer::new();
        self.field(name, digits.format(value).as_bytes());
    }

    /// Writes `name` and its colon (after a comma, past the first field); returns where the
    /// name's text starts.
    fn name(&mut self, name: &str) -> usize {
        self.separate();
        let name_start = self.text.len() + 1;
        if needs_escapes(name) {
            self.indexable = false;
            write_escaped(&mut self.text, name);
        } else {
            write_plain(&mut self.text, name);
        }
        self.text.push(b':');
        name_start
    }

    /// Opens the object if it is not, or writes the comma before a field after the first.
    fn separate(&mut self) {
        if self.text.is_empty() {
            self.clear();
        }
        if self.text.len() > 1 {
            self.text.push(b',');
        }
    }

    /// Appends the object's JSON text to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self.text.is_empty() {
            true => out.extend_from_slice(b"{}"),
            false => {
                out.extend_from_slice(&self.text);
                out.push(b'}');
            }
        }
    }

    /// Appends the object's index to `out` (false, nothing appended, if it has none).
    pub(crate) fn append_index(&self, out: &mut Vec<u8>) -> bool {
        self.indexable && u32::try_from(self.text.len() + 1).is_ok() && write_entries(&self.fields, out)
    }
}

fn needs_escapes(text: &str) -> bool {
    crate::scan::needs_escapes(text.as_bytes())
}

/// Appends `text` as a JSON string: copied between quotes when it needs no escapes.
pub(crate) fn write_string(out: &mut Vec<u8>, text: &str) {
    if needs_escapes(text) { write_escaped(out, text) } else { write_plain(out, text) }
}

/// Appends `text`, which needs no escapes, between quotes.
fn write_plain(out: &mut Vec<u8>, text: &str) {
    out.reserve(text.len() + 2);
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
}

fn write_escaped(out: &mut Vec<u8>, text: &str) {
    // Serialising a string into a vector cannot fail.
    let _ = serde_json::to_writer(out, text);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Indexes built beside a batch are the indexes built into it, moved by the batch's size.
    #[test]
    fn indexes_beside_a_batch_are_those_built_into_it() {
        let values: [&[u8]; 4] = [br#"{"a": 1, "bb": "x"}"#, b"[1, 2]", br#"{"k\u0041": 1}"#, br#"{"nested": {"c": [true]}, "d": null}"#];
        let mut bytes = Vec::new();
        let spans: Vec<Span> = values
            .iter()
            .map(|value| {
                let span = Span { offset: bytes.len() as u32, length: value.len() as u32 };
                bytes.extend_from_slice(value);
                span
            })
            .collect();
        let (mut inside, mut beside) = (bytes.clone(), Vec::new());
        let (mut indexer, mut other) = (Indexer::default(), Indexer::default());
        for span in spans {
            let built_in = indexer.index_in(&mut inside, span);
            let built_beside = other.index_beside(&bytes, &mut beside, span);
            assert_eq!(built_in, built_beside);
        }
        assert_eq!(inside[..bytes.len()], bytes[..]);
        assert_eq!(inside[bytes.len()..], beside[..]);
        assert!(!beside.is_empty());
    }

    #[test]
    fn strings_are_escaped_exactly_when_json_needs_it() {
        let cases = [
            "",
            "plain",
            "exactly8",
            "a longer plain string of text",
            "q\"uote",
            "back\\slash",
            "tab\there",
            "é ü",
            "long plain text then \u{1}",
        ];
        for text in cases {
            let mut out = Vec::new();
            write_string(&mut out, text);
            assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(text).unwrap(), "{text:?}");
        }
    }
}
