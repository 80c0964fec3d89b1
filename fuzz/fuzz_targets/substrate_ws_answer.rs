//! One websocket message (text or binary, the same path) from a Substrate node, routed by the
//! JSON-RPC client's answer handler with three calls in flight (ids 1, 2, 3): asserts that an
//! answer reaches the call with its id and no other (result or JSON-RPC error unchanged), that
//! garbage (not a JSON object) fails every call in flight as malformed, and that a notification
//! reaches none.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    monitor_strategies::fuzzing::substrate_ws_frame(data);
});
