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
//!
//! [`ConfigMessage::parse`] reads a body whole; [`RawConfig::split`] splits it into its sections'
//! JSON texts without reading them, and [`RawSection::parse`] reads one, with the same result
//! (so a reader may read again only the sections whose text changed).

use std::borrow::Cow;
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
            match raw::section(routing_key, id, entry) {
                Ok(section) => sections.push(section),
                Err(e) => rejected.push(e),
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

/// Values nested at least this deep are left to [`ConfigMessage::parse`]: serde_json's recursion
/// limit (128 levels) counts the body's own top-level object, so a value read alone has one level
/// more than within its body; far below the limit, the two readings cannot differ.
const SPLIT_MAX_DEPTH: usize = 64;

/// One top-level entry of a config body, not read yet: its id and its value's JSON text, borrowed
/// from the body (see [`RawConfig`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSection<'a> {
    /// The section id (unescaped; borrowed from the body when it has no escapes).
    pub id: Cow<'a, str>,
    /// The value's JSON text exactly as it is in the body (a subslice of the body).
    pub raw: &'a str,
}

impl RawSection<'_> {
    /// This entry read as [`ConfigMessage::parse`] reads it: `Some(Ok(section))` for a section,
    /// `Some(Err(_))` for a [`ConfigError::BadSection`] (not an object of strings), `None` when
    /// this value makes the whole body a matter for [`ConfigMessage::parse`] (it does not read as
    /// JSON the way the body's reading does, or it is nested too deep to tell).
    ///
    /// A pure function of (`routing_key`, [`id`](Self::id), [`raw`](Self::raw)): an entry with
    /// the same id and the same bytes under the same routing key reads the same in any body, so
    /// its reading may be remembered from one message to the next.
    pub fn parse(&self, routing_key: &str) -> Option<Result<Section, ConfigError>> {
        let entry = raw::read_entry(self.raw)?;
        Some(raw::section(
            routing_key,
            self.id.clone().into_owned(),
            entry,
        ))
    }
}

/// A config body split into its sections without reading them: the top-level object's entries in
/// message order with [`ConfigMessage::parse`]'s rules (a repeated id keeps its first position and
/// its last value; `DEFAULT` dropped), each value left as its JSON text.
///
/// The contract with [`ConfigMessage::parse`]: when [`RawConfig::split`] gives `Some(raw)` and
/// [`RawSection::parse`] gives `Some` for every section of `raw`, then `ConfigMessage::parse` of
/// the same body is `Ok` with the same key, the `Ok` sections in order as `sections` and the `Err`
/// ones in order as `rejected`; when any of them gives `None`, `ConfigMessage::parse` is the
/// answer. The values that are not sections (`DEFAULT`, the earlier values of a repeated id) are
/// read and checked by `split` itself, as `parse` reads them.
#[derive(Debug, Clone)]
pub struct RawConfig<'a> {
    /// The parsed routing key.
    pub key: ConfigKey,
    /// The sections in message order, values unread.
    pub sections: Vec<RawSection<'a>>,
}

impl<'a> RawConfig<'a> {
    /// Split `body` received with `routing_key`; `None` when the body must be read by
    /// [`ConfigMessage::parse`] instead (a bad routing key, not JSON, not an object, a value that
    /// is not a section and does not read as `parse` reads it).
    ///
    /// Cost: one scan of the body (values are checked as JSON text, not read), the ids unescaped
    /// only when they have escapes.
    pub fn split(routing_key: &str, body: &'a [u8]) -> Option<Self> {
        let key = ConfigKey::parse(routing_key).ok()?;
        let raw::RawTop(pairs) = serde_json::from_slice(body).ok()?;
        let pairs = pairs?;
        let mut dropped_ok = true;
        let pairs = raw::dedupe(pairs, |value: &serde_json::value::RawValue| {
            dropped_ok &= raw::read_entry(value.get()).is_some();
        });
        if !dropped_ok {
            return None;
        }
        let mut sections = Vec::with_capacity(pairs.len());
        for (id, value) in pairs {
            if id == DEFAULT_SECTION {
                // Read (and dropped) by `parse`: it must read the same here.
                raw::read_entry(value.get())?;
                continue;
            }
            sections.push(RawSection {
                id,
                raw: value.get(),
            });
        }
        Some(RawConfig { key, sections })
    }
}

/// The one-pass reading of a config body: the top-level object as (id, entry) pairs in body order,
/// each entry a section's (name, value) pairs or "not an object".
mod raw {
    use std::collections::{BTreeMap, HashMap, HashSet};
    use std::fmt;

    use std::borrow::Cow;

    use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
    use serde_json::value::RawValue;
    use serde_json::Value;

    use super::{ConfigError, Section, SPLIT_MAX_DEPTH};

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
    pub(super) fn first_position_last_value<K: AsRef<str>, V>(pairs: Vec<(K, V)>) -> Vec<(K, V)> {
        dedupe(pairs, |_| {})
    }

    /// [`first_position_last_value`], each value it drops (the earlier values of a repeated
    /// key) handed to `dropped` first.
    pub(super) fn dedupe<K: AsRef<str>, V>(
        pairs: Vec<(K, V)>,
        mut dropped: impl FnMut(V),
    ) -> Vec<(K, V)> {
        let order: Vec<(usize, usize)> = {
            let mut last: HashMap<&str, usize> = HashMap::with_capacity(pairs.len());
            for (i, (k, _)) in pairs.iter().enumerate() {
                last.insert(k.as_ref(), i);
            }
            if last.len() == pairs.len() {
                return pairs;
            }
            let mut seen: HashSet<&str> = HashSet::with_capacity(last.len());
            pairs
                .iter()
                .enumerate()
                .filter(|(_, (k, _))| seen.insert(k.as_ref()))
                .map(|(first, (k, _))| (first, last.get(k.as_ref()).copied().unwrap_or(first)))
                .collect()
        };
        let mut slots: Vec<Option<(K, V)>> = pairs.into_iter().map(Some).collect();
        let mut kept = Vec::with_capacity(order.len());
        for (first, last) in order {
            let Some((key, value)) = slots.get_mut(first).and_then(Option::take) else {
                continue;
            };
            if first == last {
                kept.push((key, value));
            } else if let Some((_, last_value)) = slots.get_mut(last).and_then(Option::take) {
                dropped(value);
                kept.push((key, last_value));
            }
        }
        // The values between the first and the last of a key.
        for (_, value) in slots.into_iter().flatten() {
            dropped(value);
        }
        kept
    }

    /// One top-level entry read: the section, or its [`ConfigError::BadSection`].
    pub(super) fn section(
        routing_key: &str,
        id: String,
        entry: Entry,
    ) -> Result<Section, ConfigError> {
        let bad = |id: String, problem: String| ConfigError::BadSection {
            routing_key: routing_key.to_owned(),
            section: id,
            problem,
        };
        let Entry::Fields(fields) = entry else {
            return Err(bad(id, "is not a JSON object".to_owned()));
        };
        match string_fields(fields) {
            Ok(fields) => Ok(Section {
                routing_key: routing_key.to_owned(),
                id,
                fields,
            }),
            Err(problem) => Err(bad(id, problem)),
        }
    }

    /// A top-level value's JSON text read as the body's reading reads it, `None` when it does not
    /// read or is nested [`SPLIT_MAX_DEPTH`] deep or more (the reading alone and within the body
    /// could then differ).
    pub(super) fn read_entry(raw: &str) -> Option<Entry> {
        let entry: Entry = serde_json::from_str(raw).ok()?;
        // A flat object of scalars is one level deep: only the others need a look.
        let flat =
            matches!(&entry, Entry::Fields(fields) if fields.iter().all(|(_, v)| is_scalar(v)));
        if !flat && nesting_depth(raw.as_bytes()) >= SPLIT_MAX_DEPTH {
            return None;
        }
        Some(entry)
    }

    /// The deepest nesting of arrays and objects in valid JSON text.
    fn nesting_depth(json: &[u8]) -> usize {
        let (mut depth, mut max) = (0usize, 0usize);
        let (mut in_string, mut escaped) = (false, false);
        for &b in json {
            if in_string {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_string = false;
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    max = max.max(depth);
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        max
    }

    /// The body split: `Some` pairs (id, value's text) when it is an object (whose first key is
    /// not serde_json's number token), else `None`.
    pub(super) struct RawTop<'a>(pub(super) Option<Vec<(Cow<'a, str>, &'a RawValue)>>);

    /// A string borrowed from the body when it has no escapes.
    struct Id<'a>(Cow<'a, str>);

    impl<'de> Deserialize<'de> for Id<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Id<'de>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a string")
                }
                fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                    Ok(Id(Cow::Borrowed(s)))
                }
                fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                    Ok(Id(Cow::Owned(s.to_owned())))
                }
                fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
                    Ok(Id(Cow::Owned(s)))
                }
            }
            d.deserialize_str(V)
        }
    }

    impl<'de> Deserialize<'de> for RawTop<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = RawTop<'de>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("any JSON value")
                }
                fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                    Ok(RawTop(None))
                }
                fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                    Ok(RawTop(None))
                }
                fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                    Ok(RawTop(None))
                }
                fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                    Ok(RawTop(None))
                }
                fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                    Ok(RawTop(None))
                }
                fn visit_unit<E>(self) -> Result<Self::Value, E> {
                    Ok(RawTop(None))
                }
                fn visit_none<E>(self) -> Result<Self::Value, E> {
                    Ok(RawTop(None))
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                    while seq.next_element::<&RawValue>()?.is_some() {}
                    Ok(RawTop(None))
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                    let mut pairs = Vec::new();
                    while let Some(Id(id)) = map.next_key::<Id<'de>>()? {
                        if pairs.is_empty() && id == NUMBER_TOKEN {
                            // `parse` reads this as a number: left to it.
                            return Err(serde::de::Error::custom("number token"));
                        }
                        let value = map.next_value::<&'de RawValue>()?;
                        pairs.push((id, value));
                    }
                    Ok(RawTop(Some(pairs)))
                }
            }
            d.deserialize_any(V)
        }
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

    /// Edge cases of the readers.
    const EDGE_BODIES: &[&str] = &[
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
        // What only a full reading of every value finds: in `DEFAULT`, in a dropped value of a
        // repeated id, in a section.
        r#"{"DEFAULT": {"x": "\ud800"}, "a": {"x": "1"}}"#,
        r#"{"a": {"x": "\ud800"}, "a": {"x": "1"}}"#,
        r#"{"a": {"x": "1"}, "b": {"x": "\udc00\ud800"}}"#,
        r#"{"a": {"x": "\ud83d\ude00"}}"#,
        r#"{"$serde_json::private::Number": "5"}"#,
        r#"{"$serde_json::private::Number": "x", "a": {}}"#,
        r#"{"a": {}, "$serde_json::private::Number": "5"}"#,
        r#"{"a": {"$serde_json::private::Number": "x"}}"#,
        r#"{"a": {"$serde_json::private::Number": "5", "b": "1"}}"#,
        r#"{"DEFAULT": {"$serde_json::private::Number": "x"}}"#,
        " \n{ \"a\" : { \"x\" : \"1\" } , \"b\":{}}\t",
        r#"{"a": {"x": "1"},}"#,
        r#"{"a": {"x": "1"} "b": {}}"#,
        r#"{"a": {"x": 01}}"#,
        r#"{"a": tru}"#,
        "{\"a\": {\"x\": \"\u{1}\"}}",
    ];

    /// Bodies nested `depth` deep inside a section, in `DEFAULT` and in a dropped value (around
    /// serde_json's recursion limit).
    fn deep_bodies() -> Vec<String> {
        let mut bodies = Vec::new();
        for depth in [1, 2, 62, 63, 64, 65, 125, 126, 127, 128, 129, 200] {
            let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            bodies.push(format!("{{\"a\": {{\"x\": {nested}}}}}"));
            bodies.push(format!("{{\"a\": {nested}}}"));
            bodies.push(format!("{{\"DEFAULT\": {nested}, \"a\": {{}}}}"));
            bodies.push(format!("{{\"a\": {nested}, \"a\": {{}}}}"));
        }
        bodies
    }

    /// A big message, in order.
    fn big_body(n: usize) -> String {
        format!(
            "{{{}}}",
            (0..n)
                .map(|i| format!(r#""s{i}": {{"id": "s{i}", "n": {i}}}"#))
                .collect::<Vec<_>>()
                .join(",")
        )
    }

    /// Random bodies from a small grammar (repeated ids and names, every JSON type, nesting).
    fn generated_bodies(count: usize) -> Vec<String> {
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
        (0..count)
            .map(|_| {
                if r.below(10) == 0 {
                    value(&mut r, 0)
                } else {
                    object(&mut r, 0)
                }
            })
            .collect()
    }

    #[test]
    fn one_pass_reader_agrees_with_reading_through_a_json_value() {
        for body in EDGE_BODIES {
            assert_eq!(
                ConfigMessage::parse("general.systems_config", body.as_bytes()),
                parse_through_value("general.systems_config", body.as_bytes()),
                "{body}"
            );
        }
        // Deep nesting: the same recursion limit.
        for deep in deep_bodies() {
            assert_eq!(
                ConfigMessage::parse("general.systems_config", deep.as_bytes()),
                parse_through_value("general.systems_config", deep.as_bytes()),
                "{deep}"
            );
        }
        let big = big_body(2000);
        let m = ConfigMessage::parse("general.systems_config", big.as_bytes()).unwrap();
        assert_eq!(
            m,
            parse_through_value("general.systems_config", big.as_bytes()).unwrap()
        );
        assert_eq!(m.sections.len(), 2000);
        assert_eq!(m.sections[1999].id, "s1999");
    }

    /// Random bodies: the one-pass reader agrees with the reference on each.
    #[test]
    fn one_pass_reader_agrees_on_generated_bodies() {
        for body in generated_bodies(5000) {
            assert_eq!(
                ConfigMessage::parse("general.systems_config", body.as_bytes()),
                parse_through_value("general.systems_config", body.as_bytes()),
                "{body}"
            );
        }
    }

    /// [`RawConfig`]'s contract: the split and each section read alone, or `parse` when either
    /// says `None`; `Some(true)` when the split answered.
    fn assemble(routing_key: &str, body: &[u8]) -> (Result<ConfigMessage, ConfigError>, bool) {
        let Some(split) = RawConfig::split(routing_key, body) else {
            return (ConfigMessage::parse(routing_key, body), false);
        };
        let mut sections = Vec::new();
        let mut rejected = Vec::new();
        for section in &split.sections {
            // The text is the body's own bytes.
            let start = section.raw.as_ptr() as usize - body.as_ptr() as usize;
            assert_eq!(
                &body[start..start + section.raw.len()],
                section.raw.as_bytes()
            );
            match section.parse(routing_key) {
                None => return (ConfigMessage::parse(routing_key, body), false),
                Some(Ok(s)) => sections.push(s),
                Some(Err(e)) => rejected.push(e),
            }
        }
        let message = ConfigMessage {
            key: split.key,
            sections,
            rejected,
        };
        (Ok(message), true)
    }

    #[test]
    fn split_then_sections_agree_with_parse() {
        let rk = "general.systems_config";
        let mut split = 0;
        let mut bodies: Vec<String> = EDGE_BODIES.iter().map(|b| (*b).to_owned()).collect();
        bodies.extend(deep_bodies());
        bodies.push(big_body(2000));
        bodies.extend(generated_bodies(5000));
        for body in &bodies {
            let (assembled, by_split) = assemble(rk, body.as_bytes());
            assert_eq!(
                assembled,
                ConfigMessage::parse(rk, body.as_bytes()),
                "{body}"
            );
            split += usize::from(by_split);
        }
        // The split answers for most bodies (every object that reads).
        assert!(split > bodies.len() / 2, "{split} of {}", bodies.len());
        for body in [
            r#"{"DEFAULT": {}, "b": {"id": "b"}, "a": 3, "b": {"x": "1"}}"#,
            r#"{"a\u00e9": {"k": [1]}}"#,
        ] {
            assert!(assemble(rk, body.as_bytes()).1, "{body}");
        }
        let m = RawConfig::split(
            rk,
            br#"{"DEFAULT": {}, "b": {"id": "b"}, "a": 3, "b": {"x": "1"}}"#,
        )
        .unwrap();
        let ids: Vec<_> = m.sections.iter().map(|s| (&*s.id, s.raw)).collect();
        assert_eq!(ids, [("b", r#"{"x": "1"}"#), ("a", "3")]);
        // Unsplittable: left to `parse`.
        for body in ["{not json", "[1]", "3", r#"{"a": {}} x"#] {
            assert!(RawConfig::split(rk, body.as_bytes()).is_none(), "{body}");
        }
        assert!(RawConfig::split("general.bogus", b"{}").is_none());
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
