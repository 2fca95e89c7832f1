//! The one operator instance of a component, behind the functions `export_operator!` exports.
//!
//! A component instance hosts exactly one operator; the runtime never calls concurrently.

use std::cell::RefCell;

use crate::bindings::sluice::plugin::types::Output as WitOutput;
use crate::host::{self, Level};
use crate::{Batch, InitContext, Operator, OperatorInfo, Output, State};

/// The value encodings the Rust SDK reads and writes, preferred first: JSON whose records
/// arrive indexed and leave without an index (offered when nothing downstream reads one), JSON
/// with each record's field index ([`crate::Record::raw_fields`] reads it in place), or JSON
/// text alone.
pub const ENCODINGS: [&str; 3] = [crate::fields::ENCODING_INDEXES_IN, crate::fields::ENCODING, "json"];

/// An operator with its type erased, so that one static slot can hold any plugin.
trait ErasedOperator {
    fn process(&mut self, batch: Batch) -> Output;
    fn on_watermark(&mut self, watermark: i64) -> Batch;
    fn snapshot(&self) -> State;
    fn restore(&mut self, state: State) -> Result<(), String>;
}

impl<O: Operator> ErasedOperator for O {
    fn process(&mut self, batch: Batch) -> Output {
        let mut out = Output::for_input(&batch);
        Operator::process(self, &batch, &mut out);
        out
    }
    fn on_watermark(&mut self, watermark: i64) -> Batch {
        let mut out = Batch::new();
        Operator::on_watermark(self, watermark, &mut out);
        out
    }
    fn snapshot(&self) -> State {
        Operator::snapshot(self)
    }
    /// No state ([`State::is_empty`]) is not handed to the operator.
    fn restore(&mut self, state: State) -> Result<(), String> {
        if state.is_empty() {
            return Ok(());
        }
        Operator::restore(self, state)
    }
}

thread_local! {
    static INSTANCE: RefCell<Option<Box<dyn ErasedOperator>>> = const { RefCell::new(None) };
}

fn with_instance<R>(call: impl FnOnce(&mut dyn ErasedOperator) -> R) -> R {
    INSTANCE.with(|slot| {
        let mut slot = slot.borrow_mut();
        // The runtime always calls `init` first; a call before it is a host bug and traps.
        let operator = slot.as_deref_mut().expect("sluice runtime called the operator before init");
        call(operator)
    })
}

pub fn init<O: Operator>(config: &str, context: InitContext) -> Result<OperatorInfo, String> {
    // A panic becomes a trap; its message reaches the runtime first, as an error log line.
    std::panic::set_hook(Box::new(|info| host::log(Level::Error, &format!("panic: {info}"))));
    let Some(encoding) = ENCODINGS.into_iter().find(|encoding| context.encodings.iter().any(|offered| offered == encoding)) else {
        return Err(format!("this plugin reads and writes {} values, which the runtime does not offer", ENCODINGS.join(" or ")));
    };
    crate::context::set(context);
    crate::fields::set_writes_indexes(encoding == crate::fields::ENCODING);
    let config: O::Config = parse_config(config)?;
    let operator = O::init(config)?;
    let info = OperatorInfo { encoding: encoding.to_owned(), ..info_of(&operator) };
    INSTANCE.with(|slot| *slot.borrow_mut() = Some(Box::new(operator)));
    Ok(info)
}

/// What an initialised operator declares about itself, reading and writing field indexes.
pub fn info_of<O: Operator>(operator: &O) -> OperatorInfo {
    OperatorInfo { outputs: operator.side_outputs(), distribution: operator.distribution(), encoding: crate::fields::ENCODING.to_owned() }
}

/// Deserialises the operator's configuration; an error names where in it the refused value
/// is (`any[1].op: unknown variant ...`), unless that is the top level.
pub fn parse_config<C: serde::de::DeserializeOwned>(config: &str) -> Result<C, String> {
    let mut deserializer = serde_json::Deserializer::from_str(config);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        // The JSON text is the runtime's, not the user's: its line and column mean nothing.
        let message = error.inner().to_string();
        let message = match message.rsplit_once(" at line ") {
            Some((text, _)) => text.to_owned(),
            None => message,
        };
        let path = error.path().to_string();
        match where_refused(&path, &message) {
            "" | "." => message,
            place => format!("{place}: {message}"),
        }
    })
}

/// Where the refused value is: its path, but for an unknown field the object holding it (the
/// message names the field).
fn where_refused<'p>(path: &'p str, message: &str) -> &'p str {
    let unknown = message.strip_prefix("unknown field `").and_then(|rest| rest.split_once('`')).map(|(name, _)| name);
    match unknown.and_then(|name| path.strip_suffix(name)) {
        Some(parent) => parent.strip_suffix('.').unwrap_or(parent),
        None => path,
    }
}

pub fn process(input: u32, mut batch: Batch) -> WitOutput {
    // The SDK shows the input on each record (`Record::port`); emitted records start at 0.
    if input != 0 {
        batch.set_port(input);
    }
    with_instance(|operator| operator.process(batch)).into()
}

pub fn on_watermark(watermark: i64) -> Batch {
    with_instance(|operator| operator.on_watermark(watermark))
}

pub fn snapshot() -> State {
    with_instance(|operator| operator.snapshot())
}

pub fn restore(state: State) -> Result<(), String> {
    with_instance(|operator| operator.restore(state))
}

#[cfg(test)]
mod tests {
    use super::parse_config;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Config {
        #[serde(default)]
        any: Vec<Predicate>,
        #[serde(default)]
        size: Option<u32>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Predicate {
        #[allow(dead_code)]
        field: String,
        #[allow(dead_code)]
        op: Op,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "kebab-case")]
    enum Op {
        Eq,
        Gt,
    }

    fn refusal(config: &str) -> String {
        parse_config::<Config>(config).expect_err("refused")
    }

    #[test]
    fn a_refused_configuration_names_where_the_value_is() {
        let accepted: Config = parse_config(r#"{"any":[{"field":"a","op":"eq"}],"size":3}"#).expect("accepted");
        assert_eq!((accepted.any.len(), accepted.size), (1, Some(3)));
        assert_eq!(
            refusal(r#"{"any":[{"field":"a","op":"gt"},{"field":"a","op":"bigger"}]}"#),
            "any[1].op: unknown variant `bigger`, expected `eq` or `gt`"
        );
        assert_eq!(refusal(r#"{"size":"three"}"#), "size: invalid type: string \"three\", expected u32");
        assert_eq!(refusal(r#"{"any":[{"field":"a"}]}"#), "any[0]: missing field `op`");
        assert_eq!(refusal(r#"{"sise":3}"#), "unknown field `sise`, expected `any` or `size`");
        assert_eq!(refusal(r#"{"any":[{"field":"a","op":"eq","opp":1}]}"#), "any[0]: unknown field `opp`, expected `field` or `op`");
    }
}
