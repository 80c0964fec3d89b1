//! ABI return data of the Chainlink contracts' calls and their logs: byte 0 picks the call (or,
//! 8 mod 9, a log: then byte 1 the topic count, the topics, the log data), the rest is the data.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [which, rest @ ..] = data else {
        return;
    };
    monitor_strategies::fuzzing::abi_return(*which, rest);
});
