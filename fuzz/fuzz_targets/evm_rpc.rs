//! An EVM node's JSON-RPC answer: byte 0 picks the method (`eth_blockNumber`, `eth_syncing`,
//! `eth_call`, `eth_getLogs`), byte 1 the HTTP status, the rest is the body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [method, status, body @ ..] = data else {
        return;
    };
    monitor_strategies::fuzzing::evm_answer(*method, fuzz_support::status(*status), body);
});
