//! Config messages as PANIC's config manager sends them: `{id: {field: string}}`.
//!
//! * The `DEFAULT` section (an artefact of Python's `configparser`) is ignored.
//! * `{}` means "everything under this routing key was removed".
//! * Booleans are strings: `true`/`yes` in any case mean true, anything else false.
//! * Lists are comma-separated strings.
//!
//! A body that is not a JSON object is a [`ConfigError`] for the whole message; a section that is not
//! an object of strings is a [`ConfigError`] for that section only, so the valid sections of the same
//! message still apply.

use std::collections::BTreeMap;

use crate::keys::{ConfigKey, KeyError};

/// The ignored `configparser` section.
pub const DEFAULT_SECTION: &str = "DEFAULT";

/// What is wrong with a config message or one of its sections.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The routing key is not a config key.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The body is not valid JSON.
    #[error("config `{routing_key}`: invalid JSON: {message}")]
    InvalidJson {
        /// Routing key of the message.
        routing_key: String,
        /// The decoder's message.
        message: String,
    },
    /// The body is JSON but not an object.
    #[error("config `{routing_key}`: body is not a JSON object")]
    NotAnObject {
        /// Routing key of the message.
        routing_key: String,
    },
    /// A section is not an object of strings.
    #[error("config `{routing_key}` section `{section}`: {problem}")]
    BadSection {
        /// Routing key of the message.
        routing_key: String,
        /// Section id.
        section: String,
        /// What is wrong.
        problem: String,
    },
    /// A required field is missing (PANIC's 5011).
    #[error("config `{routing_key}` section `{section}`: missing field `{field}`")]
    MissingField {
        /// Routing key of the message.
        routing_key: String,
        /// Section id.
        section: String,
        /// Field name.
        field: String,
    },
    /// A field has a value that cannot be used.
    #[error("config `{routing_key}` section `{section}`: field `{field}`: {problem}")]
    BadField {
        /// Routing key of the message.
        routing_key: String,
        /// Section id.
        section: String,
        /// Field name.
        field: String,
        /// What is wrong.
        problem: String,
    },
}

/// PANIC's string boolean: `true`/`yes` (any case, surrounding blanks ignored) are true.
pub fn str_to_bool(value: &str) -> bool {
    let v = value.trim();
    v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("yes")
}

/// A comma-separated list, items trimmed; blank items dropped when `drop_blank`.
pub fn str_to_list(value: &str, drop_blank: bool) -> Vec<String> {
    if value.trim().is_empty() {
        return Vec::new();
    }
    value
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !drop_blank || !s.is_empty())
        .collect()
}

/// One config section: its id (the section name) and its string fields.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Section {
    /// Routing key of the message this came from (for error messages).
    pub routing_key: String,
    /// The section id (the key in the message).
    pub id: String,
    /// Fields, all strings.
    pub fields: BTreeMap<String, String>,
}

impl Section {
    /// A section from parts (tests and the config folder reader).
    pub fn new(
        routing_key: &str,
        id: &str,
        fields: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        Section {
            routing_key: routing_key.to_owned(),
            id: id.to_owned(),
            fields: fields.into_iter().collect(),
        }
    }

    /// The error for a missing field.
    pub fn missing(&self, field: &str) -> ConfigError {
        ConfigError::MissingField {
            routing_key: self.routing_key.clone(),
            section: self.id.clone(),
            field: field.to_owned(),
        }
    }

    /// The error for a field with a bad value.
    pub fn bad(&self, field: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError::BadField {
            routing_key: self.routing_key.clone(),
            section: self.id.clone(),
            field: field.to_owned(),
            problem: problem.into(),
        }
    }

    /// A required string field.
    pub fn str(&self, field: &str) -> Result<&str, ConfigError> {
        self.fields
            .get(field)
            .map(String::as_str)
            .ok_or_else(|| self.missing(field))
    }

    /// A required string field that must not be blank.
    pub fn non_empty(&self, field: &str) -> Result<&str, ConfigError> {
        let v = self.str(field)?;
        if v.trim().is_empty() {
            Err(self.bad(field, "is empty"))
        } else {
            Ok(v)
        }
    }

    /// An optional string field.
    pub fn opt_str(&self, field: &str) -> Option<&str> {
        self.fields.get(field).map(String::as_str)
    }

    /// A required string boolean.
    pub fn bool(&self, field: &str) -> Result<bool, ConfigError> {
        self.str(field).map(str_to_bool)
    }

    /// A required comma-separated list.
    pub fn list(&self, field: &str, drop_blank: bool) -> Result<Vec<String>, ConfigError> {
        self.str(field).map(|v| str_to_list(v, drop_blank))
    }
}

/// A parsed config message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigMessage {
    /// The parsed routing key.
    pub key: ConfigKey,
    /// The valid sections in message order (`DEFAULT` dropped).
    pub sections: Vec<Section>,
    /// Sections that were not objects of strings: reported, not applied.
    pub rejected: Vec<ConfigError>,
}

impl ConfigMessage {
    /// Parse a message body received with `routing_key`.
    pub fn parse(routing_key: &str, body: &[u8]) -> Result<Self, ConfigError> {
        let key = ConfigKey::parse(routing_key)?;
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| ConfigError::InvalidJson {
                routing_key: routing_key.to_owned(),
                message: e.to_string(),
            })?;
        let serde_json::Value::Object(map) = value else {
            return Err(ConfigError::NotAnObject {
                routing_key: routing_key.to_owned(),
            });
        };
        let mut sections = Vec::with_capacity(map.len());
        let mut rejected = Vec::new();
        for (id, section) in map {
            if id == DEFAULT_SECTION {
                continue;
            }
            let bad = |problem: String| ConfigError::BadSection {
                routing_key: routing_key.to_owned(),
                section: id.clone(),
                problem,
            };
            let serde_json::Value::Object(fields) = section else {
                rejected.push(bad("is not a JSON object".to_owned()));
                continue;
            };
            let mut out = BTreeMap::new();
            let mut problem = None;
            for (name, v) in fields {
                match v {
                    serde_json::Value::String(s) => {
                        out.insert(name, s);
                    }
                    // Lenient with hand-written JSON: numbers and booleans are taken as their text.
                    serde_json::Value::Bool(b) => {
                        out.insert(name, b.to_string());
                    }
                    serde_json::Value::Number(n) => {
                        out.insert(name, n.to_string());
                    }
                    other => {
                        problem = Some(format!("field `{name}` is not a string but {other}"));
                        break;
                    }
                }
            }
            match problem {
                Some(p) => rejected.push(bad(p)),
                None => sections.push(Section {
                    routing_key: routing_key.to_owned(),
                    id,
                    fields: out,
                }),
            }
        }
        Ok(ConfigMessage {
            key,
            sections,
            rejected,
        })
    }

    /// Whether the message removes everything under its key (`{}`, or only `DEFAULT`).
    pub fn is_removal(&self) -> bool {
        self.sections.is_empty() && self.rejected.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::ConfigType;

    #[test]
    fn parses_sections_in_order_and_drops_default() {
        let body = br#"{"DEFAULT": {}, "b": {"id": "b", "monitor_system": "Yes"}, "a": {"id": "a", "monitor_system": "false"}}"#;
        let m = ConfigMessage::parse("general.systems_config", body).unwrap();
        assert_eq!(m.key.config_type, ConfigType::SystemsConfig);
        let ids: Vec<_> = m.sections.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["b", "a"]);
        assert!(m.sections[0].bool("monitor_system").unwrap());
        assert!(!m.sections[1].bool("monitor_system").unwrap());
        assert!(!m.is_removal());
    }

    #[test]
    fn empty_means_removal() {
        assert!(ConfigMessage::parse("general.systems_config", b"{}")
            .unwrap()
            .is_removal());
        assert!(
            ConfigMessage::parse("general.systems_config", br#"{"DEFAULT":{}}"#)
                .unwrap()
                .is_removal()
        );
    }

    #[test]
    fn errors_name_where() {
        let err = ConfigMessage::parse("general.systems_config", b"{not json").unwrap_err();
        assert!(err.to_string().contains("general.systems_config"), "{err}");
        assert!(matches!(
            ConfigMessage::parse("general.systems_config", b"[1]"),
            Err(ConfigError::NotAnObject { .. })
        ));
        assert!(ConfigMessage::parse("general.bogus", b"{}").is_err());
        let m = ConfigMessage::parse(
            "general.systems_config",
            br#"{"x": 3, "y": {"id": ["a"]}, "z": {"id": "z"}}"#,
        )
        .unwrap();
        assert_eq!(m.sections.len(), 1);
        assert_eq!(m.rejected.len(), 2);
        let err = m.sections[0].str("name").unwrap_err();
        assert_eq!(
            err.to_string(),
            "config `general.systems_config` section `z`: missing field `name`"
        );
    }

    #[test]
    fn booleans_and_lists() {
        for t in ["true", "True", "TRUE", "yes", "YES", " yes "] {
            assert!(str_to_bool(t), "{t}");
        }
        for f in ["false", "no", "", "1", "y"] {
            assert!(!str_to_bool(f), "{f}");
        }
        assert_eq!(str_to_list("a, b,,c", true), ["a", "b", "c"]);
        assert_eq!(str_to_list("a, b,,c", false), ["a", "b", "", "c"]);
        assert!(str_to_list("  ", true).is_empty());
    }
}
