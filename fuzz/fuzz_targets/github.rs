//! A GitHub releases answer: byte 0 the HTTP status, then header lines (`name: value`) up to an
//! empty line, then the body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [status, rest @ ..] = data else {
        return;
    };
    let split = rest.windows(2).position(|w| w == b"\n\n");
    let (headers, body) = match split {
        Some(i) => (&rest[..i], &rest[i + 2..]),
        None => (&[][..], rest),
    };
    monitor_strategies::fuzzing::github_answer(fuzz_support::status(*status), headers, body);
});
