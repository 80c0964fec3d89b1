//! The weiwatchers feed list (the Chainlink contracts monitor's list of price feeds).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    monitor_strategies::fuzzing::weiwatchers_feeds(data);
});
