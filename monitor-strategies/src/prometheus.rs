//! Prometheus text exposition parsing, with the semantics PANIC got from Python's
//! `prometheus_client.parser.text_string_to_metric_families`, and PANIC's metric query
//! (`utils/data.py`, `get_prometheus_metrics_data`).
//!
//! A small parser of our own rather than a crate (see `docs/DEPENDENCIES.md`): PANIC's output depends
//! on details of the Python parser that generic parsers do not reproduce:
//!
//! * samples keep their labels **in order of appearance** (the label-set key is Python's
//!   `json.dumps` of the label dict, so order is part of the wire format);
//! * a sample belongs to the family announced by the preceding `# HELP`/`# TYPE` line only if its
//!   name is one the family's type allows (`name`, or `name_sum`/`name_count`/`name_bucket` for
//!   summaries and histograms); otherwise it is an untyped singleton;
//! * samples of a `counter` family whose name does not end in `_total` are renamed to end in `_total`
//!   ([`Sample::python_name`]); PANIC's Chainlink monitor relies on that;
//! * values are floats (`NaN`, `+Inf`, `-Inf` included); timestamps are read and ignored.
//!
//! The parser is total: any input, however broken, gives either samples or a [`ParseError`] naming
//! the line, never a panic (a property test feeds it random bytes and truncated lines).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::{Map, Value};

use monitor_core::envelope::float;

mod scan;

pub use scan::{
    query_text, Found, LabelSet, LabelSets, LimitError, Limits, Metric, Scratch, TextQueryError,
    DEFAULT_MAX_LABEL_BYTES, DEFAULT_MAX_SERIES_PER_METRIC,
};

/// The type of a metric family (`# TYPE name <type>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MetricType {
    /// `counter`
    Counter,
    /// `gauge`
    Gauge,
    /// `summary`
    Summary,
    /// `histogram`
    Histogram,
    /// No `# TYPE` line, `untyped`, or a sample outside its family.
    Untyped,
    /// Any other type word (`info`, `stateset`, `unknown`, …), kept as written.
    Other(String),
}

impl MetricType {
    fn from_word(word: &str) -> Self {
        match word {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "summary" => MetricType::Summary,
            "histogram" => MetricType::Histogram,
            "untyped" => MetricType::Untyped,
            other => MetricType::Other(other.to_owned()),
        }
    }

    /// The sample-name suffixes a family of this type accepts (prometheus_client's rule).
    fn allowed_suffixes(&self) -> &'static [&'static str] {
        match self {
            MetricType::Summary => &["_count", "_sum", ""],
            MetricType::Histogram => &["_count", "_sum", "_bucket"],
            _ => &[""],
        }
    }
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name as written.
    pub name: String,
    /// Labels in order of appearance; a repeated label name keeps its first position and its last
    /// value (a Python dict).
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
    /// The type of the family the sample belongs to ([`MetricType::Untyped`] when none).
    pub family_type: MetricType,
    /// 1-based line number in the exposition.
    pub line: usize,
}

impl Sample {
    /// The name Python's `prometheus_client` gives the sample: samples of a `counter` family get a
    /// `_total` suffix when their name lacks one.
    pub fn python_name(&self) -> Cow<'_, str> {
        if self.family_type == MetricType::Counter && !self.name.ends_with("_total") {
            Cow::Owned(format!("{}_total", self.name))
        } else {
            Cow::Borrowed(&self.name)
        }
    }

    /// A label's value.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Python's `json.dumps(labels)`: `{"cpu": "0", "mode": "idle"}`.
    pub fn labels_json(&self) -> String {
        labels_json(&self.labels)
    }
}

/// Why an exposition could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub problem: String,
}

/// Parse a whole exposition into its samples, in order.
pub fn parse(text: &str) -> Result<Vec<Sample>, ParseError> {
    // Current family: name, type and the sample names it accepts.
    let mut family: Option<(String, MetricType)> = None;
    let mut samples = Vec::new();
    for (index, raw) in text.split('\n').enumerate() {
        let line_no = index + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('#') {
            // prometheus_client: `line.split(None, 3)`, the keyword is the second token.
            let mut parts = line.split_whitespace().skip(1);
            let keyword = parts.next();
            let Some(name) = parts.next() else {
                continue;
            };
            match keyword {
                Some("HELP") if family.as_ref().is_none_or(|(n, _)| n != name) => {
                    family = Some((name.to_owned(), MetricType::Untyped));
                }
                Some("TYPE") => {
                    let rest: Vec<&str> = parts.collect();
                    let ty = MetricType::from_word(&rest.join(" "));
                    family = Some((name.to_owned(), ty));
                }
                _ => {}
            }
            continue;
        }
        let (name, labels, value) = parse_sample(line).map_err(|problem| ParseError {
            line: line_no,
            problem,
        })?;
        let family_type = match &family {
            Some((fam, ty))
                if ty
                    .allowed_suffixes()
                    .iter()
                    .any(|s| name.strip_suffix(s) == Some(fam.as_str())) =>
            {
                ty.clone()
            }
            Some(_) => {
                // An untyped singleton; it also ends the current family.
                family = None;
                MetricType::Untyped
            }
            None => MetricType::Untyped,
        };
        samples.push(Sample {
            name,
            labels,
            value,
            family_type,
            line: line_no,
        });
    }
    Ok(samples)
}

type Labels = Vec<(String, String)>;
type ParsedSample = (String, Labels, f64);

fn parse_sample(line: &str) -> Result<ParsedSample, String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() {
        return Err("sample without a metric name".to_owned());
    }
    let mut rest = line[name_end..].trim_start();
    let mut labels = Vec::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        let (parsed, remaining) = parse_labels(after_brace)?;
        labels = parsed;
        rest = remaining;
    }
    let mut tokens = rest.split_whitespace();
    let Some(value_text) = tokens.next() else {
        return Err(format!("metric `{name}` has no value"));
    };
    let value = parse_float(value_text)
        .ok_or_else(|| format!("metric `{name}`: `{value_text}` is not a number"))?;
    if let Some(timestamp) = tokens.last() {
        // Read and ignored, as prometheus_client does (it must still be a number).
        if parse_float(timestamp).is_none() {
            return Err(format!(
                "metric `{name}`: timestamp `{timestamp}` is not a number"
            ));
        }
    }
    Ok((name.to_owned(), labels, value))
}

/// Parses `name="value", …}` (after the opening brace); returns the labels and what follows `}`.
fn parse_labels(mut s: &str) -> Result<(Labels, &str), String> {
    let mut labels: Vec<(String, String)> = Vec::new();
    // Label name → position in `labels`: a line with a huge number of labels stays linear.
    let mut positions: HashMap<String, usize> = HashMap::new();
    loop {
        s = s.trim_start();
        if let Some(after) = s.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = s
            .find(['=', '}', '"'])
            .filter(|&i| s.as_bytes().get(i) == Some(&b'='))
            .ok_or_else(|| "label without `=`".to_owned())?;
        let label_name = s[..eq].trim();
        if label_name.is_empty() {
            return Err("empty label name".to_owned());
        }
        s = s[eq + 1..].trim_start();
        let Some(quoted) = s.strip_prefix('"') else {
            return Err(format!("label `{label_name}`: value is not quoted"));
        };
        let (value, after) = parse_quoted(quoted)
            .ok_or_else(|| format!("label `{label_name}`: unterminated value"))?;
        match positions.get(label_name).and_then(|&i| labels.get_mut(i)) {
            Some(existing) => existing.1 = value,
            None => {
                positions.insert(label_name.to_owned(), labels.len());
                labels.push((label_name.to_owned(), value));
            }
        }
        s = after.trim_start();
        if let Some(after_comma) = s.strip_prefix(',') {
            s = after_comma;
        } else if !s.starts_with('}') {
            return Err("labels must be separated by `,`".to_owned());
        }
    }
}

/// Reads a label value after its opening quote: `\\`, `\"` and `\n` are escapes, any other
/// backslash is kept as written (prometheus_client). Returns the value and what follows the quote.
fn parse_quoted(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, '\\')) => out.push('\\'),
                Some((_, '"')) => out.push('"'),
                Some((_, 'n')) => out.push('\n'),
                Some((_, other)) => {
                    out.push('\\');
                    out.push(other);
                }
                None => return None,
            },
            other => out.push(other),
        }
    }
    None
}

/// Python's `float()` on a token: decimal and exponent forms, `NaN`, `Inf`, `+Inf`, `-Inf`,
/// `Infinity`, any case.
pub(crate) fn parse_float(token: &str) -> Option<f64> {
    token.parse::<f64>().ok()
}

/// Python's `json.dumps(dict)` of a label set: `", "` and `": "` separators, `ensure_ascii`
/// escaping.
pub(crate) fn labels_json(labels: &[(String, String)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        push_python_json_string(&mut out, k);
        out.push_str(": ");
        push_python_json_string(&mut out, v);
    }
    out.push('}');
    out
}

/// Appends a string as Python's `json.dumps` writes it (ASCII only).
pub(crate) fn push_python_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    // Writing to a String cannot fail.
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// Whether a requested metric must be present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Absent → `QueryError::MetricNotFound` (PANIC's 5003).
    Strict,
    /// Absent → `None` (null).
    Optional,
}

/// One label set of a labelled metric.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledValue {
    /// The labels, in order of appearance.
    pub labels: Vec<(String, String)>,
    /// Python's `json.dumps` of the labels: the key PANIC uses.
    pub key: String,
    /// The value (the last sample with this label set wins, as in a Python dict).
    pub value: f64,
}

impl LabelledValue {
    /// A label's value.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What PANIC's query gives for one metric.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricValue {
    /// Unlabelled: the value (duplicates summed).
    Single(f64),
    /// Labelled: one entry per distinct label set, in order of first appearance.
    Labelled(Vec<LabelledValue>),
}

impl MetricValue {
    /// The JSON PANIC would put in its data: a float, or `{label-set JSON: float}`.
    pub fn to_json(&self) -> Value {
        match self {
            MetricValue::Single(v) => float(*v),
            MetricValue::Labelled(entries) => Value::Object(
                entries
                    .iter()
                    .map(|e| (e.key.clone(), float(e.value)))
                    .collect::<Map<String, Value>>(),
            ),
        }
    }
}

/// Why a query failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// A strict metric is absent (PANIC's `MetricNotFoundException`, 5003).
    #[error("metric `{0}` not found")]
    MetricNotFound(String),
    /// A metric has both labelled and unlabelled samples (a `TypeError` in PANIC: processing error).
    #[error("metric `{0}` has both labelled and unlabelled samples")]
    MixedLabels(String),
}

/// The answer to a query: each requested metric with its value (`None` = optional and absent), in
/// request order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetricsData(pub Vec<(String, Option<MetricValue>)>);

impl MetricsData {
    /// A metric's value (`None` if absent or not requested).
    pub fn get(&self, metric: &str) -> Option<&MetricValue> {
        self.0
            .iter()
            .find(|(name, _)| name == metric)
            .and_then(|(_, v)| v.as_ref())
    }

    /// The whole answer as PANIC's dict (`null` for absent optional metrics).
    pub fn to_json(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_ref().map_or(Value::Null, MetricValue::to_json),
                    )
                })
                .collect(),
        )
    }
}

/// PANIC's `get_prometheus_metrics_data` over parsed samples: samples are matched by
/// `Sample::python_name`; the first sample of a metric decides whether it is labelled; a strict
/// metric that is absent fails (the first one in request order is reported).
pub fn query(
    samples: &[Sample],
    requested: &[(&str, Requirement)],
) -> Result<MetricsData, QueryError> {
    let mut found: Vec<Option<MetricValue>> = vec![None; requested.len()];
    // Per requested metric: label-set key → index in its entries (linear in the samples, however
    // many label sets a hostile exporter sends).
    let mut positions: Vec<HashMap<String, usize>> = vec![HashMap::new(); requested.len()];
    for sample in samples {
        let name = sample.python_name();
        let Some(index) = requested.iter().position(|(r, _)| *r == name) else {
            continue;
        };
        let (Some(slot), Some(keys)) = (found.get_mut(index), positions.get_mut(index)) else {
            continue;
        };
        match (slot.as_mut(), sample.labels.is_empty()) {
            (None, true) => *slot = Some(MetricValue::Single(sample.value)),
            (None, false) => {
                let key = sample.labels_json();
                keys.insert(key.clone(), 0);
                *slot = Some(MetricValue::Labelled(vec![LabelledValue {
                    labels: sample.labels.clone(),
                    key,
                    value: sample.value,
                }]))
            }
            (Some(MetricValue::Single(total)), true) => *total += sample.value,
            (Some(MetricValue::Labelled(entries)), false) => {
                let key = sample.labels_json();
                match keys.get(&key).and_then(|&i| entries.get_mut(i)) {
                    Some(entry) => entry.value = sample.value,
                    None => {
                        keys.insert(key.clone(), entries.len());
                        entries.push(LabelledValue {
                            labels: sample.labels.clone(),
                            key,
                            value: sample.value,
                        });
                    }
                }
            }
            _ => return Err(QueryError::MixedLabels(name.into_owned())),
        }
    }
    let mut out = Vec::with_capacity(requested.len());
    for ((metric, requirement), value) in requested.iter().zip(found) {
        if value.is_none() && *requirement == Requirement::Strict {
            return Err(QueryError::MetricNotFound((*metric).to_owned()));
        }
        out.push(((*metric).to_owned(), value));
    }
    Ok(MetricsData(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_types_and_counter_renaming() {
        let text = "# HELP a_total A counter.\n# TYPE a_total counter\na_total 1\n\
                    # TYPE heads counter\nheads{x=\"1\"} 2\nheads{x=\"2\"} 3\n\
                    # TYPE lat histogram\nlat_bucket{le=\"+Inf\"} 4\nlat_sum 5\nlat_count 4\nlat 9\n\
                    # TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 2\ns_count 3\n";
        let samples = parse(text).unwrap();
        let names: Vec<_> = samples
            .iter()
            .map(|s| s.python_name().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "a_total",
                "heads_total",
                "heads_total",
                "lat_bucket",
                "lat_sum",
                "lat_count",
                "lat",
                "s",
                "s_sum",
                "s_count"
            ]
        );
        assert_eq!(samples[1].family_type, MetricType::Counter);
        // `lat` is not a histogram sample name: untyped singleton.
        assert_eq!(samples[6].family_type, MetricType::Untyped);
        // … which ended the histogram family, and `s` starts a summary.
        assert_eq!(samples[7].family_type, MetricType::Summary);
    }

    #[test]
    fn values_labels_timestamps() {
        let text =
            "m{a=\"x\",b=\"q\\\"u\\\\o\\nte\\d\"} NaN 1600000000000\nn +Inf\no -Inf\np 1e-3\n\
                    q{} 7\nr { a = \"1\" , } 2\n";
        let s = parse(text).unwrap();
        assert!(s[0].value.is_nan());
        assert_eq!(
            s[0].labels,
            [
                ("a".to_owned(), "x".to_owned()),
                ("b".to_owned(), "q\"u\\o\nte\\d".to_owned())
            ]
        );
        assert_eq!(s[0].labels_json(), r#"{"a": "x", "b": "q\"u\\o\nte\\d"}"#);
        assert_eq!(s[1].value, f64::INFINITY);
        assert_eq!(s[2].value, f64::NEG_INFINITY);
        assert_eq!(s[3].value, 0.001);
        assert!(s[4].labels.is_empty());
        assert_eq!(s[5].labels, [("a".to_owned(), "1".to_owned())]);
    }

    #[test]
    fn python_json_escaping() {
        let labels = vec![("k".to_owned(), "é\u{7f}\n\u{2028}😀\t".to_owned())];
        assert_eq!(
            labels_json(&labels),
            r#"{"k": "\u00e9\u007f\n\u2028\ud83d\ude00\t"}"#
        );
        assert_eq!(labels_json(&[]), "{}");
    }

    #[test]
    fn errors_name_the_line() {
        for bad in [
            "m",
            "m abc",
            "m{a=\"1\" 2",
            "m{a=1} 2",
            "{a=\"1\"} 2",
            "m{=\"1\"} 2",
            "m 1 x",
        ] {
            let err = parse(&format!("# ok\n{bad}\n")).unwrap_err();
            assert_eq!(err.line, 2, "{bad}: {err}");
        }
    }

    #[test]
    fn query_like_panic() {
        let text = "# TYPE c counter\nc 1\nu 2\nu 3\nl{a=\"1\"} 1\nl{a=\"2\"} 2\nl{a=\"1\"} 5\nmix 1\nmix{a=\"1\"} 1\n";
        let samples = parse(text).unwrap();
        let data = query(
            &samples,
            &[
                ("c_total", Requirement::Strict),
                ("u", Requirement::Strict),
                ("l", Requirement::Strict),
                ("gone", Requirement::Optional),
            ],
        )
        .unwrap();
        assert_eq!(data.get("c_total"), Some(&MetricValue::Single(1.0)));
        assert_eq!(data.get("u"), Some(&MetricValue::Single(5.0)));
        assert_eq!(
            serde_json::to_string(&data.to_json()).unwrap(),
            r#"{"c_total":1.0,"u":5.0,"l":{"{\"a\": \"1\"}":5.0,"{\"a\": \"2\"}":2.0},"gone":null}"#
        );
        assert_eq!(
            query(&samples, &[("c", Requirement::Strict)]),
            Err(QueryError::MetricNotFound("c".to_owned()))
        );
        assert_eq!(
            query(&samples, &[("mix", Requirement::Optional)]),
            Err(QueryError::MixedLabels("mix".to_owned()))
        );
    }

    /// A hostile exporter (any body under the cap) cannot make parsing or the query quadratic: a
    /// body of 200,000 distinct label sets of one metric, and a line of 100,000 labels. With a
    /// linear search per sample these took minutes of CPU on a runtime thread (which no round
    /// timeout can interrupt); the semantics (first position, last value) are unchanged.
    #[test]
    fn many_label_sets_and_labels_stay_linear() {
        let n = 200_000;
        let mut text = String::with_capacity(n * 40);
        for i in 0..n {
            let _ = writeln!(text, "m{{a=\"{i}\"}} {i}");
        }
        text.push_str("m{a=\"7\"} 0.5\n");
        let data = query(&parse(&text).unwrap(), &[("m", Requirement::Strict)]).unwrap();
        let Some(MetricValue::Labelled(entries)) = data.get("m") else {
            panic!("labelled expected");
        };
        assert_eq!(entries.len(), n);
        assert_eq!(entries[7].key, r#"{"a": "7"}"#);
        assert_eq!(entries[7].value, 0.5);
        assert_eq!(entries[n - 1].value, (n - 1) as f64);

        let labels = 100_000;
        let mut line = String::from("x{");
        for i in 0..labels {
            let _ = write!(line, "l{i}=\"{i}\",");
        }
        line.push_str("l3=\"again\"} 1\n");
        let samples = parse(&line).unwrap();
        assert_eq!(samples[0].labels.len(), labels);
        assert_eq!(samples[0].labels[3], ("l3".to_owned(), "again".to_owned()));
        assert_eq!(samples[0].label("l99999"), Some("99999"));
    }
}
