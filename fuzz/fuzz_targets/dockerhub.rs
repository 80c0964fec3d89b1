//! A DockerHub tags page: byte 0 odd for the first page (whose `count` is checked), the rest the
//! body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [first, body @ ..] = data else {
        return;
    };
    monitor_strategies::fuzzing::dockerhub_page(first % 2 == 1, body);
});
