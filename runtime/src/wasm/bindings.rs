//! Host bindings generated from `wit/`, the only ABI between the runtime and plugins.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "operator",
    additional_derives: [Clone, PartialEq, Eq],
});

pub use sluice::plugin::types::{Header, Rejection};
