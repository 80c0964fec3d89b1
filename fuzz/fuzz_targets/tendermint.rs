//! A Tendermint RPC answer (`/status`, `/block`, `/validators`, `/block_results`): byte 0 the
//! HTTP status, the rest the body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [status, body @ ..] = data else {
        return;
    };
    monitor_strategies::fuzzing::tendermint_answer(fuzz_support::status(*status), body);
});
