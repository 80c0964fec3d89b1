//! A config message as the manager receives it: first line the routing key, the rest the JSON
//! body. Parsed (`ConfigMessage::parse`), checked against the split (`RawConfig`: the same
//! message when it answers), then planned by every real planner that accepts the key (a
//! section-local one's plan checked against `plan_section`) and every spec built
//! (`fuzz_support::plan_all`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor_core::{ConfigMessage, RawConfig};

fuzz_target!(|data: &[u8]| {
    let (key, body) = fuzz_support::first_line(data);
    let Ok(key) = std::str::from_utf8(key) else {
        return;
    };
    // `RawConfig`'s contract: the split and each section read alone give what `parse` gives.
    let parsed = ConfigMessage::parse(key, body);
    if let Some(split) = RawConfig::split(key, body) {
        let mut sections = Vec::new();
        let mut rejected = Vec::new();
        let mut whole = false;
        for section in &split.sections {
            match section.parse(key) {
                None => whole = true,
                Some(Ok(s)) => sections.push(s),
                Some(Err(e)) => rejected.push(e),
            }
        }
        if !whole {
            let assembled = ConfigMessage {
                key: split.key,
                sections,
                rejected,
            };
            assert_eq!(Ok(assembled), parsed, "split and parse disagree");
        }
    }
    match parsed {
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
