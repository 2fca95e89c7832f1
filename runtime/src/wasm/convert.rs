//! Between the runtime's state and operator descriptions (the SDK's Rust types) and wasmtime's
//! bindings, and the field indexes of batches on their way in (batches themselves cross in
//! `boundary`).
//!
//! Both are generated from the same WIT records; converting copies plain fields only.

use sluice_sdk::{Batch, Distribution, Event, InitContext, OperatorInfo, State};

use super::bindings::wit;

/// Whether an operator receives and returns records' field indexes (it chose the encoding
/// "json+fields", or "json+fields-in" to receive them only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldIndexes {
    /// Every indexable record reaches it indexed (indexed here if it was not yet), and the
    /// indexes of the records it returns are kept. An index costs a native scan of the record,
    /// and its bytes at the boundary; a plugin reading fields without one scans the text
    /// itself, compiled to WebAssembly, which costs more (`cargo bench -p sluice --bench
    /// throughput`, 2026-12-04: a lone window ran 15 % faster behind an index, the learning
    /// operators 8-17 %, mask 4 % slower; a filter feeding a projection 40 % faster).
    Built,
    /// Every indexable record reaches it indexed, as for `Built`, but any index it returns is
    /// dropped: nothing downstream reads them, and it said it writes none.
    BuiltIn,
    /// It sees no index, and any it returns are dropped.
    Absent,
}

impl FieldIndexes {
    /// What an operator of `encoding` (one the runtime offered) receives and returns.
    pub fn of_encoding(encoding: &str) -> FieldIndexes {
        match encoding {
            sluice_sdk::fields::ENCODING => FieldIndexes::Built,
            sluice_sdk::fields::ENCODING_INDEXES_IN => FieldIndexes::BuiltIn,
            _ => FieldIndexes::Absent,
        }
    }

    /// Whether it reads indexes: records reach it indexed.
    pub fn read(self) -> bool {
        self != FieldIndexes::Absent
    }
}

/// Field indexes built for a batch's records that had none, beside the batch: lowered after its
/// bytes, so that the batch itself is neither copied nor changed.
pub struct IndexesBeside {
    /// The batch's events, each with its index (offsets count the batch's bytes first).
    pub events: Vec<Event>,
    /// The indexes built, which follow the batch's bytes.
    pub bytes: Vec<u8>,
}

/// Indexes (natively, once) every record of `batch` that has no field index yet.
pub fn field_indexes_beside(batch: &Batch) -> IndexesBeside {
    // Room for the indexes of records with a few fields, so that adding them rarely copies.
    let mut bytes = Vec::with_capacity(batch.events.len() * 100);
    let mut indexer = sluice_sdk::fields::Indexer::default();
    let events = batch
        .events
        .iter()
        .map(|event| Event { fields: event.fields.or_else(|| indexer.index_beside(&batch.bytes, &mut bytes, event.value)), ..*event })
        .collect();
    IndexesBeside { events, bytes }
}

pub fn state_to_wit(state: &State) -> wit::State {
    wit::State { version: state.version, bytes: state.bytes.clone() }
}

pub fn state_from_wit(state: wit::State) -> State {
    State { version: state.version, bytes: state.bytes }
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
