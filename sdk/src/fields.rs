//! The index of a JSON object's top-level fields that travels with a record (`event.fields`):
//! built once, when the record first reaches an operator that reads it, then read in place.
//!
//! Layout (WIT `event.fields`): a little-endian u32 count, then per field four u32s (name
//! offset, name length, value offset, value length), relative to the start of the value.

use crate::{Batch, Span};

/// Bytes of one entry.
const ENTRY: usize = 16;

/// One indexed field: where its name (the key's text between quotes) and its JSON value lie
/// within the record's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub name: (usize, usize),
    pub value: (usize, usize),
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
        let (offset, length) = (value.offset as usize, value.length as usize);
        let text = bytes.get(offset..offset.checked_add(length)?)?;
        if !field_ranges(text, &mut self.ranges) {
            return None;
        }
        let start = bytes.len();
        write_entries(&self.ranges, bytes).then(|| Span { offset: start as u32, length: (bytes.len() - start) as u32 })
    }
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
    /// The index in `bytes` of a value of `value_length` bytes, or `None` when it is malformed
    /// (a wrong size, or an entry outside the value).
    pub fn parse(bytes: &'a [u8], value_length: usize) -> Option<FieldIndex<'a>> {
        let (count, entries) = bytes.split_first_chunk::<4>()?;
        if (u32::from_le_bytes(*count) as usize).checked_mul(ENTRY)? != entries.len() {
            return None;
        }
        let index = FieldIndex { entries };
        let within = |(offset, length): (usize, usize)| offset.checked_add(length).is_some_and(|end| end <= value_length);
        index.fields().all(|field| within(field.name) && within(field.value)).then_some(index)
    }

    /// The fields, in document order.
    pub fn fields(&self) -> impl Iterator<Item = Field> + 'a {
        self.entries.chunks_exact(ENTRY).map(|entry| {
            let number = |at: usize| u32::from_le_bytes([entry[at], entry[at + 1], entry[at + 2], entry[at + 3]]) as usize;
            Field { name: (number(0), number(4)), value: (number(8), number(12)) }
        })
    }

    /// Where the value of every field named `name` lies in `value` (the record's value),
    /// first first.
    pub fn values_named<'s>(&'s self, value: &'s [u8], name: &'s str) -> impl Iterator<Item = (usize, usize)> + 's {
        let text = move |(offset, length): (usize, usize)| value.get(offset..offset + length).unwrap_or_default();
        self.fields().filter(move |field| text(field.name) == name.as_bytes()).map(|field| field.value)
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

    /// Adds a field whose value is `json` (JSON text, written as is).
    pub fn field(&mut self, name: &str, json: &[u8]) {
        if self.text.is_empty() {
            self.clear();
        }
        if self.text.len() > 1 {
            self.text.push(b',');
        }
        let plain = !name.bytes().any(|byte| byte == b'"' || byte == b'\\' || byte < 0x20);
        let name_start = self.text.len() + 1;
        if plain {
            self.text.push(b'"');
            self.text.extend_from_slice(name.as_bytes());
            self.text.push(b'"');
        } else {
            self.indexable = false;
            // Serialising a string into a vector cannot fail.
            let _ = serde_json::to_writer(&mut self.text, name);
        }
        self.text.push(b':');
        let value_start = self.text.len();
        self.text.extend_from_slice(json);
        self.fields.push(Field { name: (name_start, name.len()), value: (value_start, json.len()) });
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
