//! A config message as the manager receives it: first line the routing key, the rest the JSON
//! body. Parsed (`ConfigMessage::parse`), then planned by every real planner that accepts the key
//! and every spec built (`fuzz_support::plan_all`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor_core::ConfigMessage;

fuzz_target!(|data: &[u8]| {
    let (key, body) = fuzz_support::first_line(data);
    let Ok(key) = std::str::from_utf8(key) else {
        return;
    };
    match ConfigMessage::parse(key, body) {
        Ok(message) => {
            if message.is_removal() {
                assert!(message.sections.is_empty());
            }
            for r in &message.rejected {
                let _ = r.to_string();
            }
            fuzz_support::plan_all(&message);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
