//! A config file as the config folder reader sees it: first line its path under the config
//! root (`general/systems_config.ini`), the rest its ini text. Read as Python's configparser
//! would (`bins::config_dir::parse_ini`), published as JSON, parsed as the manager parses it and
//! planned by every planner. Checks that what the reader produces is always a config message
//! the manager takes whole: every section kept, none rejected.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use monitor_core::ConfigMessage;

fuzz_target!(|data: &[u8]| {
    let (path, text) = fuzz_support::first_line(data);
    let (Ok(path), Ok(text)) = (std::str::from_utf8(path), std::str::from_utf8(text)) else {
        return;
    };
    let root = Path::new("/config");
    let file = root.join(path);
    let Some(key) = bins::config_dir::routing_key_for(root, &file) else {
        return;
    };
    let body = match bins::config_dir::parse_ini(&file, text) {
        Ok(body) => body,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let sections = body.as_object().map_or(0, serde_json::Map::len);
    let bytes = body.to_string();
    match ConfigMessage::parse(&key, bytes.as_bytes()) {
        Ok(message) => {
            assert!(
                message.rejected.is_empty(),
                "an ini file gave rejected sections: {:?}",
                message.rejected
            );
            assert_eq!(message.sections.len(), sections, "sections lost: {bytes}");
            fuzz_support::plan_all(&message);
        }
        // Only the routing key can be wrong: the body is always a JSON object.
        Err(e) => assert!(
            matches!(e, monitor_core::ConfigError::Key(_)),
            "the reader's JSON was refused: {e}: {bytes}"
        ),
    }
});
