//! Host bindings generated from `wit/`, the only ABI between the runtime and plugins.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "operator",
});

/// The WIT types as wasmtime lowers and lifts them; see `convert` for the runtime's own.
pub use self::sluice::plugin::types as wit;
