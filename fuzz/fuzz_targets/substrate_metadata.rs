//! Runtime metadata bytes (`state_getMetadata`, SCALE): decoded, then every storage item's
//! default, key and every constant read through the decoded type registry.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    monitor_strategies::fuzzing::substrate_metadata(data);
});
