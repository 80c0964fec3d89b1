//! A Cosmos REST answer (syncing, validator, proposals of SDK 0.39 to 0.50): byte 0 the HTTP
//! status, the rest the body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [status, body @ ..] = data else {
        return;
    };
    monitor_strategies::fuzzing::cosmos_rest_answer(fuzz_support::status(*status), body);
});
