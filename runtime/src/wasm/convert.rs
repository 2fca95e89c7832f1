//! Between the runtime's batches and state (the SDK's Rust types) and wasmtime's bindings.
//!
//! Both are generated from the same WIT records; converting copies plain fields only.

use sluice_sdk::{Batch, Distribution, Event, Header, InitContext, OperatorInfo, Span, State};

use super::bindings::wit;

pub fn batch_to_wit(batch: &Batch) -> wit::Batch {
    wit::Batch {
        bytes: batch.bytes.clone(),
        events: batch.events.iter().map(event_to_wit).collect(),
        headers: batch
            .headers
            .iter()
            .map(|header| wit::Header { name: span_to_wit(header.name), value: span_to_wit(header.value) })
            .collect(),
    }
}

pub fn batch_from_wit(batch: wit::Batch) -> Batch {
    Batch {
        bytes: batch.bytes,
        events: batch.events.into_iter().map(event_from_wit).collect(),
        headers: batch
            .headers
            .into_iter()
            .map(|header| Header { name: span_from_wit(header.name), value: span_from_wit(header.value) })
            .collect(),
    }
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
    }
}

fn span_to_wit(span: Span) -> wit::Span {
    wit::Span { offset: span.offset, length: span.length }
}

fn span_from_wit(span: wit::Span) -> Span {
    Span { offset: span.offset, length: span.length }
}

pub fn context_to_wit(context: &InitContext) -> wit::InitContext {
    wit::InitContext { operator: context.operator.clone(), inputs: context.inputs.clone(), encodings: context.encodings.clone() }
}

pub fn info_from_wit(info: wit::OperatorInfo) -> OperatorInfo {
    let distribution = match info.distribution {
        wit::Distribution::Any => Distribution::Any,
        wit::Distribution::Key(fields) => Distribution::Key(fields),
        wit::Distribution::Single => Distribution::Single,
    };
    OperatorInfo { outputs: info.outputs, distribution, encoding: info.encoding }
}
