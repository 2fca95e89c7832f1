//! Flat batches of records: reading records in place, and building output batches.
//!
//! A [`Batch`] keeps every byte string in one buffer; a [`Record`] is a view of one record.
//! Reading costs no allocation, and emitting appends to the output's buffer.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::edit::RawObject;
use crate::fields::{Field, FieldIndex, ObjectWriter, append_entries, writes_indexes};
use crate::json::{self, FieldPath};
use crate::lookup::FieldLookup;
use crate::{Batch, Event, Header, Span};

// `Batch` is generated from WIT; deriving `Default` for every generated type would fail on enums.
#[allow(clippy::derivable_impls)]
impl Default for Batch {
    fn default() -> Self {
        Batch { bytes: Vec::new(), events: Vec::new(), headers: Vec::new() }
    }
}

/// The most bytes [`Batch::with_room_of`] reserves: beyond it, an output grows as it is
/// written, and an operator that keeps little of a large batch does not hold twice its size.
pub const RESERVED_BYTES_AT_MOST: usize = 1 << 20;

/// How many times over, at most, the records of a batch a plugin returns may refer to its
/// bytes (and to its headers): records may share bytes (a value sent to two outputs, say),
/// but a few bytes must not stand for gigabytes the runtime would copy.
pub const MAX_SHARING: u64 = 16;

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// An empty batch with room for as many records, bytes and headers as `like` holds (bytes
    /// up to [`RESERVED_BYTES_AT_MOST`]), so that an operator passing on most of its input
    /// writes it without growing the buffers (each growth copies what is written so far).
    pub fn with_room_of(like: &Batch) -> Batch {
        Batch {
            bytes: Vec::with_capacity(like.bytes.len().min(RESERVED_BYTES_AT_MOST)),
            events: Vec::with_capacity(like.events.len()),
            headers: Vec::with_capacity(like.headers.len()),
        }
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The record at `index`.
    pub fn get(&self, index: usize) -> Option<Record<'_>> {
        self.events.get(index).map(|event| Record { batch: self, event, index })
    }

    /// The records, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Record<'_>> {
        self.events.iter().enumerate().map(|(index, event)| Record { batch: self, event, index })
    }

    /// Appends a record (port 0).
    pub fn push<'h>(&mut self, key: Option<&[u8]>, value: &[u8], timestamp: i64, headers: impl IntoIterator<Item = (&'h [u8], &'h [u8])>) {
        let key = key.map(|key| self.append(key));
        let value = self.append(value);
        self.push_event(0, key, value, timestamp, headers);
    }

    /// Appends a record (port 0) with `fields` as its field index: the fields of `value` as
    /// [`crate::fields::Indexer::scan`] found them. Fields that do not lie within `value` are a
    /// caller's bug; the record is then appended without an index.
    pub fn push_indexed<'h>(
        &mut self,
        key: Option<&[u8]>,
        value: &[u8],
        fields: &[Field],
        timestamp: i64,
        headers: impl IntoIterator<Item = (&'h [u8], &'h [u8])>,
    ) {
        self.push(key, value, timestamp, headers);
        if !writes_indexes() || !fields.iter().all(|field| field.lies_within(value.len())) {
            return;
        }
        if let Some(index) = append_entries(fields, &mut self.bytes, 0) {
            self.set_last_fields(index);
        }
    }

    /// Appends a copy of `record` (from any batch) on port 0.
    pub fn push_record(&mut self, record: Record<'_>) {
        self.push_record_to(0, record);
    }

    /// Appends a copy of `record` (from any batch) on `port`, with its field index.
    pub fn push_record_to(&mut self, port: u32, record: Record<'_>) {
        let key = record.key().map(|key| self.append(key));
        let value = self.append(record.value());
        self.push_event(port, key, value, record.timestamp(), record.headers());
        if writes_indexes()
            && let Some(index) = record.field_index_bytes()
        {
            let fields = self.append(index);
            self.set_last_fields(fields);
        }
    }

    /// Appends `record` with its payload replaced by the object `writer` holds, indexed (key,
    /// time, headers kept): what an operator that reshapes records uses to keep them indexed.
    pub fn push_object_like(&mut self, record: Record<'_>, writer: &ObjectWriter) {
        self.push_object_like_to(0, record, writer);
    }

    /// Like [`Batch::push_object_like`], on `port`.
    pub fn push_object_like_to(&mut self, port: u32, record: Record<'_>, writer: &ObjectWriter) {
        let key = record.key().map(|key| self.append(key));
        self.push_object_event(port, key, writer, record.timestamp(), record.headers());
    }

    /// Appends a record (port 0, no headers) whose payload is the object `writer` holds,
    /// indexed.
    pub fn push_object(&mut self, key: Option<&[u8]>, writer: &ObjectWriter, timestamp: i64) {
        let key = key.map(|key| self.append(key));
        self.push_object_event(0, key, writer, timestamp, []);
    }

    fn push_object_event<'h>(
        &mut self,
        port: u32,
        key: Option<Span>,
        writer: &ObjectWriter,
        timestamp: i64,
        headers: impl IntoIterator<Item = (&'h [u8], &'h [u8])>,
    ) {
        let start = self.bytes.len();
        writer.write_to(&mut self.bytes);
        let value = Span { offset: start as u32, length: (self.bytes.len() - start) as u32 };
        self.push_event(port, key, value, timestamp, headers);
        let index_start = self.bytes.len();
        if writes_indexes() && writer.append_index(&mut self.bytes) {
            let fields = Span { offset: index_start as u32, length: (self.bytes.len() - index_start) as u32 };
            self.set_last_fields(fields);
        }
    }

    /// Appends a record whose payload is `value` serialised as JSON, with no key or headers.
    pub fn push_json(&mut self, value: &impl Serialize, timestamp: i64) {
        self.push_json_to(0, value, timestamp);
    }

    /// Like [`Batch::push_json`], on `port`.
    pub fn push_json_to(&mut self, port: u32, value: &impl Serialize, timestamp: i64) {
        let value = self.append_json(value);
        self.push_event(port, None, value, timestamp, []);
    }

    /// Appends `record` with its payload replaced by `value` as JSON (key, time, headers kept).
    pub fn push_json_like(&mut self, record: Record<'_>, value: &impl Serialize) {
        self.push_json_like_to(0, record, value);
    }

    /// Like [`Batch::push_json_like`], on `port`.
    pub fn push_json_like_to(&mut self, port: u32, record: Record<'_>, value: &impl Serialize) {
        let key = record.key().map(|key| self.append(key));
        let value = self.append_json(value);
        self.push_event(port, key, value, record.timestamp(), record.headers());
    }

    /// Checks that every span lies within `bytes` and every header range within `headers`,
    /// and that the records do not refer to more than [`MAX_SHARING`] times `bytes` (records
    /// may share bytes, but a batch must not amplify into far more than a plugin wrote). The
    /// runtime checks each batch a plugin returns.
    pub fn check(&self) -> Result<(), String> {
        let in_bytes = |span: Span| (span.offset as usize).checked_add(span.length as usize).is_some_and(|end| end <= self.bytes.len());
        let in_headers = |event: &Event| {
            (event.first_header as usize).checked_add(event.header_count as usize).is_some_and(|end| end <= self.headers.len())
        };
        for (index, event) in self.events.iter().enumerate() {
            let inside = in_bytes(event.value) && event.key.is_none_or(in_bytes) && in_headers(event) && event.fields.is_none_or(in_bytes);
            if !inside {
                return Err(format!("record {index} points outside its batch"));
            }
        }
        if let Some(index) = self.headers.iter().position(|header| !in_bytes(header.name) || !in_bytes(header.value)) {
            return Err(format!("header {index} points outside its batch"));
        }
        // Once every span is known to be inside (a span past the end is said as such), and
        // before any field index is read (records sharing one huge index would cost its
        // reading once each).
        self.check_sharing()?;
        for (index, event) in self.events.iter().enumerate() {
            if let Some(fields) = event.fields {
                FieldIndex::checked(self.slice(fields), event.value.length as usize)
                    .ok_or_else(|| format!("record {index} has a malformed field index"))?;
            }
        }
        Ok(())
    }

    /// Refuses a batch whose records refer to more bytes (their keys, values, field indexes
    /// and headers, summed over the records) than [`MAX_SHARING`] times its `bytes` and
    /// 64 KiB, or to more header entries than that many times its `headers`. Costs one pass
    /// over the headers and one over the events, whatever they point at.
    fn check_sharing(&self) -> Result<(), String> {
        let length = |span: Span| u64::from(span.length);
        // Bytes of headers[..i], so that an event's headers cost one subtraction.
        let mut header_bytes = Vec::with_capacity(self.headers.len() + 1);
        header_bytes.push(0u64);
        let mut sum = 0u64;
        for header in &self.headers {
            sum = sum.saturating_add(length(header.name)).saturating_add(length(header.value));
            header_bytes.push(sum);
        }
        let (mut referred, mut header_entries) = (0u64, 0u64);
        for event in &self.events {
            let first = event.first_header as usize;
            let end = first.saturating_add(event.header_count as usize);
            let headers = match (header_bytes.get(end), header_bytes.get(first)) {
                (Some(end), Some(first)) => end.saturating_sub(*first),
                _ => 0, // outside `headers`: refused by `check` itself
            };
            let own = length(event.value) + event.key.map_or(0, length) + event.fields.map_or(0, length);
            referred = referred.saturating_add(own).saturating_add(headers);
            header_entries = header_entries.saturating_add(u64::from(event.header_count));
        }
        let bytes_allowed = (self.bytes.len() as u64).saturating_mul(MAX_SHARING).saturating_add(64 << 10);
        if referred > bytes_allowed {
            return Err(format!(
                "its records refer to {referred} bytes, more than {MAX_SHARING} times the {} bytes of the batch: records may share \
                 bytes, but not that much",
                self.bytes.len()
            ));
        }
        let entries_allowed = (self.headers.len() as u64).saturating_mul(MAX_SHARING).saturating_add(1024);
        if header_entries > entries_allowed {
            return Err(format!(
                "its records list {header_entries} headers, more than {MAX_SHARING} times the {} headers of the batch",
                self.headers.len()
            ));
        }
        Ok(())
    }

    /// A batch holding a copy of the record at `index` alone, port kept (empty if there is
    /// none).
    pub fn single(&self, index: usize) -> Batch {
        let mut single = Batch::new();
        if let Some(record) = self.get(index) {
            single.push_record_to(record.port(), record);
        }
        single
    }

    /// Sets the port of every record (the SDK marks a batch with the input it arrived on).
    pub fn set_port(&mut self, port: u32) {
        self.events.iter_mut().for_each(|event| event.port = port);
    }

    fn push_event<'h>(
        &mut self,
        port: u32,
        key: Option<Span>,
        value: Span,
        timestamp: i64,
        headers: impl IntoIterator<Item = (&'h [u8], &'h [u8])>,
    ) {
        let first_header = self.headers.len();
        for (name, header_value) in headers {
            let header = Header { name: self.append(name), value: self.append(header_value) };
            self.headers.push(header);
        }
        let header_count = self.headers.len() - first_header;
        let (first_header, header_count) = (first_header as u32, header_count as u32);
        self.events.push(Event { key, value, timestamp, first_header, header_count, port, fields: None });
    }

    fn set_last_fields(&mut self, fields: Span) {
        if let Some(event) = self.events.last_mut() {
            event.fields = Some(fields);
        }
    }

    fn append(&mut self, bytes: &[u8]) -> Span {
        let offset = self.bytes.len();
        self.bytes.extend_from_slice(bytes);
        Span { offset: offset as u32, length: bytes.len() as u32 }
    }

    fn append_json(&mut self, value: &impl Serialize) -> Span {
        let offset = self.bytes.len();
        // Serialising fails only for maps with non-string keys: a plugin bug. The panic
        // traps the call, and the runtime isolates the record with this message.
        if let Err(error) = serde_json::to_writer(&mut self.bytes, value) {
            panic!("cannot serialise an output record as JSON: {error}");
        }
        Span { offset: offset as u32, length: (self.bytes.len() - offset) as u32 }
    }

    fn slice(&self, span: Span) -> &[u8] {
        let start = span.offset as usize;
        self.bytes.get(start..start.saturating_add(span.length as usize)).unwrap_or_default()
    }
}

/// One record of a batch, read in place.
#[derive(Clone, Copy)]
pub struct Record<'a> {
    batch: &'a Batch,
    event: &'a Event,
    index: usize,
}

impl<'a> Record<'a> {
    /// The record `event` describes in `batch`'s bytes, at position `index` of a selection of
    /// `batch`'s records (the runtime's records passed on by position). `event` is one of
    /// `batch`'s entries, its port aside: its spans are `batch`'s.
    pub fn of(batch: &'a Batch, event: &'a Event, index: usize) -> Record<'a> {
        Record { batch, event, index }
    }

    /// Position in its batch (what [`crate::Output::reject`] takes).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The address of the batch this record is in, to tell the very batch from an equal one.
    pub(crate) fn batch_address(&self) -> usize {
        std::ptr::from_ref(self.batch) as usize
    }

    pub fn key(&self) -> Option<&'a [u8]> {
        self.event.key.map(|span| self.batch.slice(span))
    }

    pub fn value(&self) -> &'a [u8] {
        self.batch.slice(self.event.value)
    }

    /// Event time, milliseconds since the Unix epoch.
    pub fn timestamp(&self) -> i64 {
        self.event.timestamp
    }

    /// In a batch given to [`crate::Operator::process`]: the input the record arrived on (an
    /// index into the operator's `inputs`, see [`crate::init_context`]). In an output batch:
    /// the output it goes to (0: the main output). Emitting a record with
    /// [`crate::Output::emit`] sends it to the main output, whatever its input.
    pub fn port(&self) -> u32 {
        self.event.port
    }

    /// The headers as (name, value) pairs, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        let batch = self.batch;
        let first = self.event.first_header as usize;
        let headers = batch.headers.get(first..first.saturating_add(self.event.header_count as usize)).unwrap_or_default();
        headers.iter().map(move |header| (batch.slice(header.name), batch.slice(header.value)))
    }

    /// The value of the first header named `name`.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers().find(|(header, _)| *header == name.as_bytes()).map(|(_, value)| value)
    }

    /// The value at `path` in the JSON payload, without parsing the rest of it.
    pub fn field(&self, path: &FieldPath) -> Result<Option<Value>, String> {
        let mut found = self.fields(std::slice::from_ref(path))?;
        Ok(found.pop().flatten())
    }

    /// The values at several paths in one pass over the JSON payload.
    pub fn fields(&self, paths: &[FieldPath]) -> Result<Vec<Option<Value>>, String> {
        json::parse_raw_values(self.raw_fields(paths)?)
    }

    /// The JSON text of the values at several paths, borrowed from the payload: read from
    /// the record's field index when it has one, without going over the rest of the payload.
    pub fn raw_fields(&self, paths: &[FieldPath]) -> Result<Vec<Option<&'a serde_json::value::RawValue>>, String> {
        match self.field_index() {
            Some(index) => json::lookup_raw_indexed(self.value(), index, paths),
            None => json::lookup_raw_many(self.value(), paths),
        }
    }

    /// The JSON text (UTF-8) of the values at several paths, borrowed from the payload: like
    /// [`Record::raw_fields`], without reading each value found a second time. Without an index
    /// the scan validates the document; with one, the index is trusted (the runtime validates
    /// what it indexes, and an operator indexes only JSON it wrote).
    pub fn field_texts(&self, paths: &[FieldPath]) -> Result<Vec<Option<&'a [u8]>>, String> {
        let mut found = Vec::new();
        self.field_texts_into(paths, &mut found)?;
        Ok(found)
    }

    /// [`Record::field_texts`] into `found` (its contents replaced): a loop over a batch's
    /// records can reuse one vector instead of allocating one per record.
    pub fn field_texts_into(&self, paths: &[FieldPath], found: &mut Vec<Option<&'a [u8]>>) -> Result<(), String> {
        crate::lookup::texts_into(self.value(), self.field_index(), &crate::lookup::PathsOnce::new(paths), found)
    }

    /// [`Record::field_texts`] with paths prepared once ([`FieldLookup`]).
    pub fn look_up(&self, lookup: &FieldLookup) -> Result<Vec<Option<&'a [u8]>>, String> {
        let mut found = Vec::new();
        self.look_up_into(lookup, &mut found)?;
        Ok(found)
    }

    /// [`Record::field_texts_into`] with paths prepared once ([`FieldLookup`]): what a plugin
    /// reading the same fields from every record should use.
    pub fn look_up_into(&self, lookup: &FieldLookup, found: &mut Vec<Option<&'a [u8]>>) -> Result<(), String> {
        crate::lookup::texts_into(self.value(), self.field_index(), lookup, found)
    }

    /// The index of the payload's top-level fields, when the record has one of the right size
    /// (entries outside the value read as a disagreement, and the text is read instead).
    pub fn field_index(&self) -> Option<FieldIndex<'a>> {
        FieldIndex::parse(self.field_index_bytes()?)
    }

    fn field_index_bytes(&self) -> Option<&'a [u8]> {
        self.event.fields.map(|span| self.batch.slice(span))
    }

    /// Parses the payload as JSON into `T`.
    pub fn parse_json<T: DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_slice(self.value()).map_err(|error| format!("payload is not valid JSON for this operator: {error}"))
    }

    /// Parses the payload as a JSON object. Of a name an object repeats, the first value
    /// counts, as in the lookups ([`Record::look_up`]); serde_json alone keeps the last.
    pub fn json_object(&self) -> Result<Map<String, Value>, String> {
        match crate::first_wins::parse_value(self.value()) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(other) => Err(format!("payload is {}, but an object was expected", json_kind_phrase(&other))),
            Err(error) => Err(format!("payload is not valid JSON: {error}")),
        }
    }

    /// The payload as a JSON object to edit as text ([`RawObject`]): what an operator that
    /// passes a record on with a few fields set or removed should use, since the members it
    /// does not touch keep their exact text (a `Map` passes numbers through doubles). Refused
    /// as [`Record::json_object`] refuses.
    pub fn raw_object(&self) -> Result<RawObject<'a>, String> {
        let parsed = std::str::from_utf8(self.value()).ok().map(RawObject::parse);
        match parsed {
            Some(Ok(Some(object))) => Ok(object),
            _ => Err(self.json_object().err().unwrap_or_else(|| "payload is not a JSON object".to_owned())),
        }
    }
}

/// The kind of a JSON value as a refusal names it: "a JSON array", "JSON null".
fn json_kind_phrase(value: &Value) -> &'static str {
    match value {
        Value::Null => "JSON null",
        Value::Bool(_) => "a JSON boolean",
        Value::Number(_) => "a JSON number",
        Value::String(_) => "a JSON string",
        Value::Array(_) => "a JSON array",
        Value::Object(_) => "a JSON object",
    }
}

impl std::fmt::Debug for Record<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("index", &self.index)
            .field("key", &self.key().map(String::from_utf8_lossy))
            .field("value", &String::from_utf8_lossy(self.value()))
            .field("timestamp", &self.timestamp())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_a_flat_batch() {
        let mut batch = Batch::new();
        batch.push(Some(b"k1"), b"{\"a\":1}", 10, [(&b"h"[..], &b"v"[..]), (&b"h2"[..], &b""[..])]);
        batch.push_json(&serde_json::json!({"b": 2}), 20);
        let mut copy = Batch::new();
        copy.push_record(batch.get(0).unwrap());
        copy.push_json_like(batch.get(0).unwrap(), &serde_json::json!({"c": 3}));
        let first = copy.get(0).unwrap();
        assert_eq!((first.key(), first.value(), first.timestamp()), (Some(&b"k1"[..]), &b"{\"a\":1}"[..], 10));
        assert_eq!(first.headers().collect::<Vec<_>>(), vec![(&b"h"[..], &b"v"[..]), (&b"h2"[..], &b""[..])]);
        let second = copy.get(1).unwrap();
        assert_eq!((second.value(), second.header("h")), (&b"{\"c\":3}"[..], Some(&b"v"[..])));
        assert_eq!(batch.get(1).unwrap().key(), None);
        assert_eq!(batch.iter().map(|r| r.index()).collect::<Vec<_>>(), vec![0, 1]);
    }

    #[test]
    fn a_payload_that_is_not_an_object_is_refused_in_a_sentence() {
        let mut batch = Batch::new();
        for payload in ["[1,2]", "\"str\"", "42", "true", "null", "{\"a\":1}"] {
            batch.push(None, payload.as_bytes(), 0, []);
        }
        let reasons: Vec<_> = batch.iter().map(|record| record.json_object().err()).collect();
        let refused = |kind: &str| Some(format!("payload is {kind}, but an object was expected"));
        let kinds = ["a JSON array", "a JSON string", "a JSON number", "a JSON boolean", "JSON null"];
        assert_eq!(reasons, kinds.into_iter().map(refused).chain([None]).collect::<Vec<_>>());
    }

    /// An output with the room of its input takes every record of it, index, key and headers
    /// included, without growing (and so without copying what it holds); the room given to a
    /// large batch is bounded.
    #[test]
    fn an_output_with_the_room_of_its_input_takes_all_of_it_without_growing() {
        let mut writer = ObjectWriter::new();
        let mut input = Batch::new();
        for number in 0..100 {
            writer.clear();
            writer.field_i64("n", number);
            writer.field_str("text", "some padding");
            input.push_object(Some(b"key"), &writer, number);
        }
        input.push(None, b"[1]", 7, [(&b"h"[..], &b"v"[..])]);
        let mut output = Batch::with_room_of(&input);
        let room = (output.bytes.capacity(), output.events.capacity(), output.headers.capacity());
        input.iter().for_each(|record| output.push_record(record));
        assert_eq!(output, input);
        assert_eq!((output.bytes.capacity(), output.events.capacity(), output.headers.capacity()), room);
        let large = Batch { bytes: vec![0; 3 * RESERVED_BYTES_AT_MOST], ..Batch::new() };
        assert!((RESERVED_BYTES_AT_MOST..2 * RESERVED_BYTES_AT_MOST).contains(&Batch::with_room_of(&large).bytes.capacity()));
    }

    #[test]
    fn check_finds_spans_and_header_ranges_outside_the_batch() {
        let mut batch = Batch::new();
        batch.push(Some(b"k"), b"v", 0, [(&b"h"[..], &b"x"[..])]);
        assert_eq!(batch.check(), Ok(()));
        let mut bad = batch.clone();
        bad.events[0].value.length = 99;
        assert_eq!(bad.check(), Err("record 0 points outside its batch".into()));
        let mut bad = batch.clone();
        bad.events[0].header_count = 2;
        assert!(bad.check().is_err());
        let mut bad = batch.clone();
        bad.headers[0].value.offset = u32::MAX;
        assert_eq!(bad.check(), Err("header 0 points outside its batch".into()));
        assert_eq!(batch.single(0), batch);
        assert!(batch.single(5).is_empty());
    }

    #[test]
    fn records_may_share_bytes_but_not_amplify_them() {
        let mut batch = Batch::new();
        batch.push(None, &vec![b'v'; 1 << 20], 0, [(&b"h"[..], &b"x"[..])]);
        // The same value and header sent to several outputs: shared, and fine.
        for port in 1..16 {
            let mut copy = batch.events[0];
            copy.port = port;
            batch.events.push(copy);
        }
        assert_eq!(batch.check(), Ok(()));
        let mut amplified = batch.clone();
        amplified.events.extend(std::iter::repeat_n(batch.events[0], 1000));
        let error = amplified.check().unwrap_err();
        assert!(error.starts_with("its records refer to 1065355248 bytes, more than 16 times"), "{error}");
        // Many records naming the one header: a small value each, so only the headers count.
        let mut headers = Batch::new();
        headers.push(None, b"v", 0, [(&b"h"[..], &b"x"[..])]);
        headers.events.extend(std::iter::repeat_n(headers.events[0], 2000));
        assert!(headers.check().unwrap_err().starts_with("its records list 2001 headers, more than 16 times the 1 headers"));
    }

    #[test]
    fn copies_keep_the_field_index_and_check_refuses_a_malformed_one() {
        let mut batch = Batch::new();
        batch.push(Some(b"k"), br#"{"a": 1, "b": {"c": [2]}}"#, 5, []);
        batch.push(None, b"not json", 6, []);
        crate::fields::index_batch(&mut batch);
        assert!(batch.events[0].fields.is_some() && batch.events[1].fields.is_none());
        assert_eq!(batch.check(), Ok(()));
        let mut copy = Batch::new();
        copy.push_record(batch.get(0).unwrap());
        let record = copy.get(0).unwrap();
        assert!(record.field_index().is_some());
        let paths = [FieldPath::parse("b.c.0").unwrap(), FieldPath::parse("a").unwrap()];
        let texts: Vec<String> = record.raw_fields(&paths).unwrap().into_iter().map(|raw| raw.unwrap().get().to_owned()).collect();
        assert_eq!(texts, ["2", "1"]);
        let mut bad = batch.clone();
        let fields = bad.events[0].fields.unwrap();
        bad.bytes[fields.offset as usize + 4 + 8] = 200;
        assert_eq!(bad.check(), Err("record 0 has a malformed field index".into()));
        let found = bad.get(0).unwrap().field_texts(&paths[1..]).unwrap();
        assert_eq!(found, vec![Some(&b"1"[..])], "an entry outside its value is read from the text instead");
    }

    #[test]
    fn objects_written_with_their_index_read_back_through_it() {
        let mut input = Batch::new();
        input.push(Some(b"k"), b"{}", 7, [(&b"h"[..], &b"v"[..])]);
        let mut writer = ObjectWriter::new();
        writer.clear();
        writer.field("price", b"12.5");
        writer.field("odd \"name\"", b"true");
        writer.clear();
        writer.field("price", b"12.5");
        writer.field("nested", br#"{"x":[1,2]}"#);
        let mut out = Batch::new();
        out.push_object_like(input.get(0).unwrap(), &writer);
        writer.clear();
        writer.field("odd \"name\"", b"true");
        out.push_object_like(input.get(0).unwrap(), &writer);
        assert_eq!(out.check(), Ok(()));
        let first = out.get(0).unwrap();
        assert_eq!(
            (first.value(), first.key(), first.timestamp(), first.header("h")),
            (&br#"{"price":12.5,"nested":{"x":[1,2]}}"#[..], Some(&b"k"[..]), 7, Some(&b"v"[..]))
        );
        let paths = [FieldPath::parse("nested.x.1").unwrap(), FieldPath::parse("price").unwrap()];
        assert_eq!(first.fields(&paths).unwrap(), vec![Some(serde_json::json!(2)), Some(serde_json::json!(12.5))]);
        let second = out.get(1).unwrap();
        assert_eq!(second.value(), br#"{"odd \"name\"":true}"#);
        assert!(second.field_index().is_none(), "a name with escapes is not indexed");
    }

    /// An instance whose encoding says nothing reads its indexes writes none: not for objects
    /// it writes, copies it makes, nor fields it scanned. The values are the same.
    #[test]
    fn an_instance_that_writes_no_indexes_writes_the_same_values_without_them() {
        let mut input = Batch::new();
        input.push(Some(b"k"), br#"{"a":1}"#, 7, []);
        crate::fields::index_batch(&mut input);
        let mut writer = ObjectWriter::new();
        writer.clear();
        writer.field("price", b"12.5");
        let fields = [Field { name: (2, 1), value: (5, 1) }];
        let write = |out: &mut Batch| {
            out.push_object_like(input.get(0).unwrap(), &writer);
            out.push_record(input.get(0).unwrap());
            out.push_indexed(None, br#"{"a":1}"#, &fields, 3, []);
        };
        let mut indexed = Batch::new();
        write(&mut indexed);
        crate::fields::set_writes_indexes(false);
        let mut plain = Batch::new();
        write(&mut plain);
        crate::fields::set_writes_indexes(true);
        assert!(indexed.events.iter().all(|event| event.fields.is_some()));
        assert!(plain.events.iter().all(|event| event.fields.is_none()));
        let values = |batch: &Batch| batch.iter().map(|record| record.value().to_vec()).collect::<Vec<_>>();
        assert_eq!(values(&plain), values(&indexed));
    }

    #[test]
    fn records_pushed_with_their_scanned_fields_read_as_records_indexed_later() {
        let values: [&[u8]; 4] = [br#"{"a": 1, "b": {"c": [true]}, "a": "x"}"#, b"{}", b"not json", br#"{"esc\"aped": 1}"#];
        let mut indexer = crate::fields::Indexer::default();
        let (mut scanned, mut plain) = (Batch::new(), Batch::new());
        for value in values {
            match indexer.scan(value) {
                Some(fields) => scanned.push_indexed(Some(b"k"), value, fields, 3, []),
                None => scanned.push(Some(b"k"), value, 3, []),
            }
            plain.push(Some(b"k"), value, 3, []);
        }
        crate::fields::index_batch(&mut plain);
        assert_eq!(scanned.check(), Ok(()));
        let indexes = |batch: &Batch| batch.iter().map(|record| record.field_index_bytes().map(<[u8]>::to_vec)).collect::<Vec<_>>();
        assert_eq!(indexes(&scanned), indexes(&plain));
        assert_eq!(indexes(&scanned).iter().filter(|index| index.is_some()).count(), 2);
        let first = scanned.get(0).unwrap();
        assert_eq!(first.field_texts(&[FieldPath::parse("b.c").unwrap()]).unwrap(), vec![Some(&b"[true]"[..])]);
        let outside = [crate::fields::Field { name: (1, 1), value: (5, 100) }];
        scanned.push_indexed(None, b"{\"a\":1}", &outside, 0, []);
        assert!(scanned.get(4).unwrap().field_index().is_none(), "fields beyond the value are not kept as an index");
    }

    #[test]
    fn spans_outside_the_buffer_read_as_empty() {
        let batch = Batch {
            bytes: b"abc".to_vec(),
            events: vec![Event {
                key: None,
                value: Span { offset: 2, length: 9 },
                timestamp: 0,
                first_header: 7,
                header_count: 1,
                port: 0,
                fields: None,
            }],
            headers: Vec::new(),
        };
        let record = batch.get(0).unwrap();
        assert_eq!((record.value(), record.headers().count()), (&b""[..], 0));
    }
}
