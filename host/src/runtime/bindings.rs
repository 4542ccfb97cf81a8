//! Generated host bindings, one module per supported `sda:operator` WIT version; `bindgen!` only.
//!
//! Kept private to `runtime`: generated names never leak into the rest of the host.

pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../guest-sdk/wit/v0.1.0",
        world: "plugin",
    });
}

pub mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../guest-sdk/wit/v0.2.0",
        world: "plugin",
    });
}
