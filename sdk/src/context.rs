//! What the runtime told this instance at `init`: its name, its inputs, the encodings offered,
//! its sandbox limits.

use std::cell::RefCell;

use crate::InitContext;

thread_local! {
    static CONTEXT: RefCell<Option<InitContext>> = const { RefCell::new(None) };
}

/// Remembers the context `init` was given (the glue calls this before `Operator::init`).
pub(crate) fn set(context: InitContext) {
    CONTEXT.with(|slot| *slot.borrow_mut() = Some(context));
}

/// The context of this instance: the operator's name, what it reads (`inputs`, which a
/// record's [`crate::Record::port`] indexes), the value encodings the runtime offers, and
/// the instance's `memory_limit` (bytes) and `call_timeout_ms`.
/// Available from [`crate::Operator::init`] on; in native tests, what
/// [`crate::testing::Harness`] was given (by default one input, `"input"`).
pub fn init_context() -> InitContext {
    CONTEXT.with(|slot| slot.borrow().clone()).unwrap_or_else(default_context)
}

/// The context of an operator with one input and the default limits (128 MiB, 1 s), as
/// native tests assume.
pub fn default_context() -> InitContext {
    InitContext {
        operator: "operator".into(),
        inputs: vec!["input".into()],
        encodings: [crate::fields::ENCODING, "json"].map(String::from).to_vec(),
        memory_limit: 128 * 1024 * 1024,
        call_timeout_ms: 1_000,
    }
}
