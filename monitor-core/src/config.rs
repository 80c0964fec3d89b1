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
    ///
    /// One pass over the body straight into sections (no intermediate JSON tree of the whole
    /// message), with the semantics of reading it as a JSON object with serde_json's
    /// `preserve_order`: a repeated section id or field name keeps its first position and its last
    /// value.
    pub fn parse(routing_key: &str, body: &[u8]) -> Result<Self, ConfigError> {
        let key = ConfigKey::parse(routing_key)?;
        let top: raw::Top = serde_json::from_slice(body).map_err(|e| ConfigError::InvalidJson {
            routing_key: routing_key.to_owned(),
            message: e.to_string(),
        })?;
        let raw::Top::Object(entries) = top else {
            return Err(ConfigError::NotAnObject {
                routing_key: routing_key.to_owned(),
            });
        };
        let entries = raw::first_position_last_value(entries);
        let mut sections = Vec::with_capacity(entries.len());
        let mut rejected = Vec::new();
        for (id, entry) in entries {
            if id == DEFAULT_SECTION {
                continue;
            }
            let bad = |id: String, problem: String| ConfigError::BadSection {
                routing_key: routing_key.to_owned(),
                section: id,
                problem,
            };
            let raw::Entry::Fields(fields) = entry else {
                rejected.push(bad(id, "is not a JSON object".to_owned()));
                continue;
            };
            match raw::string_fields(fields) {
                Ok(fields) => sections.push(Section {
                    routing_key: routing_key.to_owned(),
                    id,
                    fields,
                }),
                Err(problem) => rejected.push(bad(id, problem)),
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

/// The one-pass reading of a config body: the top-level object as (id, entry) pairs in body order,
/// each entry a section's (name, value) pairs or "not an object".
mod raw {
    use std::collections::{BTreeMap, HashMap, HashSet};
    use std::fmt;

    use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
    use serde_json::Value;

    /// With the `arbitrary_precision` feature (on in this workspace) serde_json hands a number to
    /// a visitor as a one-entry map under this key, and its own `Value` reads any map whose first
    /// key is this one as a number: so do we (the parser tests fail if serde_json changes it).
    const NUMBER_TOKEN: &str = "$serde_json::private::Number";

    /// The body.
    pub(super) enum Top {
        Object(Vec<(String, Entry)>),
        NotAnObject,
    }

    /// One value of the top-level object.
    pub(super) enum Entry {
        Fields(Vec<(String, Value)>),
        NotAnObject,
    }

    /// Visits a JSON value: its pairs when it is an object (each value read by `V`), else
    /// `None` (the value read as serde_json's `Value` reads it, so that the same bodies fail).
    struct ObjectOf<V>(std::marker::PhantomData<V>);

    impl<'de, V: Deserialize<'de>> Visitor<'de> for ObjectOf<V> {
        type Value = Option<Vec<(String, V)>>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            // Read as `Value` reads it (a number token inside is checked the same way).
            while seq.next_element::<Value>()?.is_some() {}
            Ok(None)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            // serde_json gives no size hint: room for a section's usual few fields at once.
            let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(8));
            match map.next_key::<String>()? {
                None => return Ok(Some(pairs)),
                Some(k) if k == NUMBER_TOKEN => {
                    // As `Value` does: the number's text, and nothing more read of the map.
                    map.next_value::<NumberFromString>()?;
                    return Ok(None);
                }
                Some(k) => {
                    let v = map.next_value::<V>()?;
                    pairs.push((k, v));
                }
            }
            while let Some((k, v)) = map.next_entry::<String, V>()? {
                pairs.push((k, v));
            }
            Ok(Some(pairs))
        }
    }

    /// A number's text under [`NUMBER_TOKEN`], read as serde_json's `Value` reads it (same
    /// errors).
    struct NumberFromString;

    impl<'de> Deserialize<'de> for NumberFromString {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = NumberFromString;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("string containing a number")
                }
                fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
                    s.parse::<serde_json::Number>().map_err(E::custom)?;
                    Ok(NumberFromString)
                }
            }
            d.deserialize_str(V)
        }
    }

    impl<'de> Deserialize<'de> for Top {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            Ok(
                match d.deserialize_any(ObjectOf::<Entry>(std::marker::PhantomData))? {
                    Some(pairs) => Top::Object(pairs),
                    None => Top::NotAnObject,
                },
            )
        }
    }

    impl<'de> Deserialize<'de> for Entry {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            Ok(
                match d.deserialize_any(ObjectOf::<Value>(std::marker::PhantomData))? {
                    Some(pairs) => Entry::Fields(pairs),
                    None => Entry::NotAnObject,
                },
            )
        }
    }

    /// The pairs with each repeated key kept once, at its first position, with its last value
    /// (a JSON object read into an insertion-ordered map). Unchanged when no key repeats.
    pub(super) fn first_position_last_value<V>(pairs: Vec<(String, V)>) -> Vec<(String, V)> {
        let order: Vec<(usize, usize)> = {
            let mut last: HashMap<&str, usize> = HashMap::with_capacity(pairs.len());
            for (i, (k, _)) in pairs.iter().enumerate() {
                last.insert(k.as_str(), i);
            }
            if last.len() == pairs.len() {
                return pairs;
            }
            let mut seen: HashSet<&str> = HashSet::with_capacity(last.len());
            pairs
                .iter()
                .enumerate()
                .filter(|(_, (k, _))| seen.insert(k.as_str()))
                .map(|(first, (k, _))| (first, last.get(k.as_str()).copied().unwrap_or(first)))
                .collect()
        };
        let mut slots: Vec<Option<(String, V)>> = pairs.into_iter().map(Some).collect();
        let mut take = |i: usize| slots.get_mut(i).and_then(Option::take);
        order
            .into_iter()
            .filter_map(|(first, last)| {
                let (key, value) = take(first)?;
                if first == last {
                    Some((key, value))
                } else {
                    take(last).map(|(_, value)| (key, value))
                }
            })
            .collect()
    }

    fn is_scalar(v: &Value) -> bool {
        matches!(v, Value::String(_) | Value::Bool(_) | Value::Number(_))
    }

    /// A section's fields as strings (numbers and booleans taken as their text, lenient with
    /// hand-written JSON), or the problem with the first field (in object order) that is neither.
    pub(super) fn string_fields(
        fields: Vec<(String, Value)>,
    ) -> Result<BTreeMap<String, String>, String> {
        // Only a field that is not a scalar needs the object's exact order and values.
        let fields = if fields.iter().all(|(_, v)| is_scalar(v)) {
            fields
        } else {
            first_position_last_value(fields)
        };
        let mut out = BTreeMap::new();
        for (name, v) in fields {
            let text = match v {
                Value::String(s) => s,
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                other => return Err(format!("field `{name}` is not a string but {other}")),
            };
            // A repeated name: the last value wins.
            out.insert(name, text);
        }
        Ok(out)
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

    /// The parse before the one-pass reader (through a `serde_json::Value` of the whole body):
    /// the reference the one-pass reader must agree with.
    fn parse_through_value(routing_key: &str, body: &[u8]) -> Result<ConfigMessage, ConfigError> {
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
        let mut sections = Vec::new();
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

    #[test]
    fn one_pass_reader_agrees_with_reading_through_a_json_value() {
        let bodies: &[&str] = &[
            "{}",
            r#"{"DEFAULT": {}}"#,
            r#"{"DEFAULT": 3, "a": {"id": "a"}}"#,
            "3",
            "-1.5e400",
            "123456789012345678901234567890",
            r#""text""#,
            "null",
            "true",
            "[1, {\"a\": {}}]",
            "{not json",
            r#"{"a": {}} trailing"#,
            r#"{"a": {"x": "1"}, "a": {"y": "2"}}"#,
            r#"{"a": 3, "b": {"x": "1"}, "a": {"y": "2"}}"#,
            r#"{"a": {"x": "1"}, "b": {"x": "2"}, "a": 3}"#,
            r#"{"a": {"x": "1", "x": "2"}}"#,
            r#"{"a": {"x": [1], "x": "2"}}"#,
            r#"{"a": {"x": "1", "y": null, "x": {"k": 1}}}"#,
            r#"{"a": {"z": null, "y": [1, 2], "x": "1"}}"#,
            r#"{"a": {"n": 3, "f": 1.50, "big": 123456789012345678901234567890, "e": -1e400, "b": false}}"#,
            r#"{"a": {"$serde_json::private::Number": "5"}}"#,
            r#"{"a": [], "b": "s", "c": null, "d": true, "e": 1.0, "f": {"g": "h"}}"#,
            r#"{"a\u00e9": {"k\n": "v\"q"}}"#,
            r#"{"a": {"x": "1"}, "DEFAULT": {"x": [1]}, "DEFAULT": {}}"#,
        ];
        for body in bodies {
            assert_eq!(
                ConfigMessage::parse("general.systems_config", body.as_bytes()),
                parse_through_value("general.systems_config", body.as_bytes()),
                "{body}"
            );
        }
        // Deep nesting: the same recursion limit.
        let deep = format!(
            "{{\"a\": {{\"x\": {}{}}}}}",
            "[".repeat(200),
            "]".repeat(200)
        );
        assert_eq!(
            ConfigMessage::parse("general.systems_config", deep.as_bytes()),
            parse_through_value("general.systems_config", deep.as_bytes()),
        );
        // A big message, in order.
        let big: String = format!(
            "{{{}}}",
            (0..2000)
                .map(|i| format!(r#""s{i}": {{"id": "s{i}", "n": {i}}}"#))
                .collect::<Vec<_>>()
                .join(",")
        );
        let m = ConfigMessage::parse("general.systems_config", big.as_bytes()).unwrap();
        assert_eq!(
            m,
            parse_through_value("general.systems_config", big.as_bytes()).unwrap()
        );
        assert_eq!(m.sections.len(), 2000);
        assert_eq!(m.sections[1999].id, "s1999");
    }

    /// Random bodies from a small grammar (repeated ids and names, every JSON type, nesting):
    /// the one-pass reader agrees with the reference on each.
    #[test]
    fn one_pass_reader_agrees_on_generated_bodies() {
        struct Lcg(u64);
        impl Lcg {
            fn below(&mut self, n: u64) -> u64 {
                self.0 = self
                    .0
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (self.0 >> 33) % n
            }
        }
        fn value(r: &mut Lcg, depth: u32) -> String {
            match r.below(if depth > 2 { 6 } else { 8 }) {
                0 => ["\"v1\"", "\"5\"", "\"-1.5e3\""][r.below(3) as usize].to_owned(),
                1 => ["true", "false"][r.below(2) as usize].to_owned(),
                2 => ["0", "-7", "1.50", "1e400", "123456789012345678901234567890"]
                    [r.below(5) as usize]
                    .to_owned(),
                3 => "null".to_owned(),
                4 => "\"\"".to_owned(),
                5 => "\"\\u00e9\\n\"".to_owned(),
                6 => format!("[{}]", value(r, depth + 1)),
                _ => object(r, depth + 1),
            }
        }
        fn object(r: &mut Lcg, depth: u32) -> String {
            let n = r.below(5);
            let pairs: Vec<String> = (0..n)
                .map(|_| {
                    let key = match r.below(6) {
                        0 => "DEFAULT".to_owned(),
                        1 => "$serde_json::private::Number".to_owned(),
                        k => format!("k{k}"),
                    };
                    format!("\"{key}\": {}", value(r, depth))
                })
                .collect();
            format!("{{{}}}", pairs.join(", "))
        }
        let mut r = Lcg(14);
        for _ in 0..5000 {
            let body = if r.below(10) == 0 {
                value(&mut r, 0)
            } else {
                object(&mut r, 0)
            };
            assert_eq!(
                ConfigMessage::parse("general.systems_config", body.as_bytes()),
                parse_through_value("general.systems_config", body.as_bytes()),
                "{body}"
            );
        }
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
