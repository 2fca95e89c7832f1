//! Between the runtime's batches and state (the SDK's Rust types) and wasmtime's bindings.
//!
//! Both are generated from the same WIT records; converting copies plain fields only.

use sluice_sdk::{Batch, Distribution, Event, Header, InitContext, OperatorInfo, Span, State};

use super::bindings::wit;

/// Whether an operator receives and returns records' field indexes (it chose the encoding
/// "json+fields").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldIndexes {
    /// Every indexable record reaches it indexed (indexed here if it was not yet), and the
    /// indexes of the records it returns are kept.
    Built,
    /// Records reach it with the indexes they have, and those of the records it returns are
    /// kept.
    Kept,
    /// It sees no index, and any it returns are dropped.
    Absent,
}

/// The batch as the operator receives it: one copy of its bytes, to which the indexes of
/// records not yet indexed are appended.
pub fn batch_to_wit(batch: &Batch, indexes: FieldIndexes) -> wit::Batch {
    let mut bytes = match indexes {
        // Room for the indexes of records with a few fields, so that adding them rarely
        // copies the buffer again.
        FieldIndexes::Built => Vec::with_capacity(batch.bytes.len() + batch.events.len() * 100),
        FieldIndexes::Kept | FieldIndexes::Absent => Vec::with_capacity(batch.bytes.len()),
    };
    bytes.extend_from_slice(&batch.bytes);
    let mut indexer = sluice_sdk::fields::Indexer::default();
    let events = batch
        .events
        .iter()
        .map(|event| {
            let fields = match indexes {
                FieldIndexes::Absent => None,
                FieldIndexes::Kept => event.fields,
                FieldIndexes::Built => event.fields.or_else(|| indexer.index_in(&mut bytes, event.value)),
            };
            wit::Event { fields: fields.map(span_to_wit), ..event_to_wit(event) }
        })
        .collect();
    wit::Batch { bytes, events, headers: batch.headers.iter().map(header_to_wit).collect() }
}

pub fn batch_from_wit(batch: wit::Batch, indexes: FieldIndexes) -> Batch {
    let event = |event: wit::Event| match indexes {
        FieldIndexes::Built | FieldIndexes::Kept => event_from_wit(event),
        FieldIndexes::Absent => Event { fields: None, ..event_from_wit(event) },
    };
    Batch {
        bytes: batch.bytes,
        events: batch.events.into_iter().map(event).collect(),
        headers: batch
            .headers
            .into_iter()
            .map(|header| Header { name: span_from_wit(header.name), value: span_from_wit(header.value) })
            .collect(),
    }
}

fn header_to_wit(header: &Header) -> wit::Header {
    wit::Header { name: span_to_wit(header.name), value: span_to_wit(header.value) }
}

pub fn state_to_wit(state: &State) -> wit::State {
    wit::State { version: state.version, bytes: state.bytes.clone() }
}

pub fn state_from_wit(state: wit::State) -> State {
    State { version: state.version, bytes: state.bytes }
}

fn event_to_wit(event: &Event) -> wit::Event {
    wit::Event {
        key: event.key.map(span_to_wit),
        value: span_to_wit(event.value),
        timestamp: event.timestamp,
        first_header: event.first_header,
        header_count: event.header_count,
        port: event.port,
        fields: event.fields.map(span_to_wit),
    }
}

fn event_from_wit(event: wit::Event) -> Event {
    Event {
        key: event.key.map(span_from_wit),
        value: span_from_wit(event.value),
        timestamp: event.timestamp,
        first_header: event.first_header,
        header_count: event.header_count,
        port: event.port,
        fields: event.fields.map(span_from_wit),
    }
}

fn span_to_wit(span: Span) -> wit::Span {
    wit::Span { offset: span.offset, length: span.length }
}

fn span_from_wit(span: wit::Span) -> Span {
    Span { offset: span.offset, length: span.length }
}

pub fn context_to_wit(context: &InitContext) -> wit::InitContext {
    wit::InitContext {
        operator: context.operator.clone(),
        inputs: context.inputs.clone(),
        encodings: context.encodings.clone(),
        memory_limit: context.memory_limit,
        call_timeout_ms: context.call_timeout_ms,
    }
}

pub fn info_from_wit(info: wit::OperatorInfo) -> OperatorInfo {
    let distribution = match info.distribution {
        wit::Distribution::Any => Distribution::Any,
        wit::Distribution::Key(fields) => Distribution::Key(fields),
        wit::Distribution::Single => Distribution::Single,
    };
    OperatorInfo { outputs: info.outputs, distribution, encoding: info.encoding }
}
