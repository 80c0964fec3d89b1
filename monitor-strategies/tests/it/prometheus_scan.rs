//! The one-pass query (`query_prometheus_text`, what the monitors run) against the two-step
//! `parse_prometheus` + `query_prometheus` it replaces, kept as the oracle: the same answer and the
//! same errors on every fixture, on every truncation and on random mutations, for the metrics the
//! monitors request and for every name the body has; and its bounds.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use monitor_strategies::{
    parse_prometheus as parse, query_prometheus as query, query_prometheus_text as query_text,
    MetricsData, PrometheusLimitError, PrometheusLimits, PrometheusQueryError, PrometheusScratch,
    PrometheusTextError, Requirement, SYSTEM_METRICS,
};

use crate::common::fixture;

/// The old path's outcome in the new path's terms.
fn oracle(
    text: &str,
    requested: &[(&str, Requirement)],
) -> Result<MetricsData, PrometheusTextError> {
    let samples = parse(text).map_err(PrometheusTextError::Parse)?;
    query(&samples, requested).map_err(PrometheusTextError::Query)
}

fn one_pass(
    text: &str,
    requested: &[(&str, Requirement)],
    scratch: &mut PrometheusScratch,
) -> Result<MetricsData, PrometheusTextError> {
    query_text(text, requested, &PrometheusLimits::default(), scratch).map(|f| f.to_metrics_data())
}

/// NaN != NaN: compare through Debug text.
fn same(
    a: &Result<MetricsData, PrometheusTextError>,
    b: &Result<MetricsData, PrometheusTextError>,
) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

/// Requests to try on a body: the system's (strict and optional), and every name the body has
/// (and each without `_total`), optional.
fn requests(text: &str) -> Vec<Vec<(String, Requirement)>> {
    let mut out = vec![
        SYSTEM_METRICS
            .iter()
            .map(|m| ((*m).to_owned(), Requirement::Strict))
            .collect::<Vec<_>>(),
        SYSTEM_METRICS
            .iter()
            .map(|m| ((*m).to_owned(), Requirement::Optional))
            .collect(),
    ];
    if let Ok(samples) = parse(text) {
        let mut names = BTreeSet::new();
        for s in &samples {
            names.insert(s.python_name().into_owned());
            names.insert(s.name.clone());
            if let Some(stem) = s.name.strip_suffix("_total") {
                names.insert(stem.to_owned());
            }
        }
        out.push(
            names
                .into_iter()
                .map(|n| (n, Requirement::Optional))
                .collect(),
        );
    }
    out
}

fn check(text: &str, scratch: &mut PrometheusScratch) {
    for requested in requests(text) {
        let requested: Vec<(&str, Requirement)> =
            requested.iter().map(|(n, r)| (n.as_str(), *r)).collect();
        let want = oracle(text, &requested);
        let got = one_pass(text, &requested, scratch);
        assert!(
            same(&want, &got),
            "differs on {:?}…\nold: {want:?}\nnew: {got:?}",
            text.chars().take(200).collect::<String>()
        );
    }
}

const FIXTURES: [&str; 4] = [
    "node_exporter/metrics.txt",
    "chainlink/metrics.txt",
    "tendermint/metrics.txt",
    "tendermint/metrics_evmos_devnet.txt",
];

#[test]
fn same_answer_as_parse_and_query_on_every_fixture() {
    // One scratch for everything: reuse across bodies must not leak state.
    let mut scratch = PrometheusScratch::new();
    for name in FIXTURES {
        let text = fixture(name);
        check(&text, &mut scratch);
        // The answer is complete, not vacuous.
        let all = requests(&text).pop().unwrap();
        let all: Vec<(&str, Requirement)> = all.iter().map(|(n, r)| (n.as_str(), *r)).collect();
        let data = one_pass(&text, &all, &mut scratch).unwrap();
        assert!(
            data.0.iter().filter(|(_, v)| v.is_some()).count() > 10,
            "{name}"
        );
    }
}

#[test]
fn same_answer_on_truncations_and_mutations() {
    let mut scratch = PrometheusScratch::new();
    let mut rng = StdRng::seed_from_u64(0x5eed_0003);
    for name in FIXTURES {
        let text = fixture(name);
        // Every line alone, cut at random char boundaries.
        for line in text.lines().take(300) {
            let bounds: Vec<usize> = line.char_indices().map(|(i, _)| i).collect();
            for _ in 0..4 {
                if let Some(&cut) = bounds.get(rng.random_range(0..bounds.len().max(1))) {
                    check(&line[..cut], &mut scratch);
                }
            }
        }
        let bytes = text.as_bytes();
        for _ in 0..60 {
            let cut = rng.random_range(0..bytes.len());
            check(&String::from_utf8_lossy(&bytes[..cut]), &mut scratch);
            let mut mutated = bytes.to_vec();
            for _ in 0..rng.random_range(1..12) {
                let at = rng.random_range(0..mutated.len());
                let alphabet = b"{}=\",# \n\t\\_01.eNaInf\xc3";
                mutated[at] = alphabet[rng.random_range(0..alphabet.len())];
            }
            check(&String::from_utf8_lossy(&mutated), &mut scratch);
        }
    }
}

#[test]
fn same_answer_on_crafted_edge_cases() {
    let mut scratch = PrometheusScratch::new();
    for text in [
        // Counter renaming, families ended by foreign samples, HELP/TYPE orders.
        "# TYPE c counter\nc 1\nc_total 2\nu 3\n# HELP c x\nc 4\n",
        "# HELP c x\n# TYPE c counter\nc{a=\"1\"} 1\nc{a=\"1\"} 2\nc{a=\"2\"} 3\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 2\nh_count 3\nh 4\nh_sum 5\n",
        "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 2\ns 3\n# TYPE s gauge wrong\ns 4\n",
        // Repeated label names, escapes, spacing, empty label sets, mixed labels.
        "m{a=\"1\",b=\"2\",a=\"3\"} 1\nm{ a = \"3\" , b=\"2\" ,} 2\nm{a=\"x\\\"y\\\\z\\n\\q\"} 3\n",
        "m{} 1\nm 2\nm{a=\"1\"} 3\n",
        "m{a=\"1\"} 1\nm 2\nbad line here\n",
        "m{a=\"é\u{2028}😀\"} 1\n\u{a0}n\u{a0}2\u{a0}\n",
        "m 1 2\nm 1 x\n",
        "m NaN\nm +Inf\nm -inf\nm 1e400\n",
        // Shapes next to the usual one (checked bytewise in one pass) that the general code reads.
        "u{a=\"1\",} 1\nu{} 1 2\nu{a=\"\\\\\"} 1\nu{a=\"\\\"\"} 1\nu 1  2\nu\t1\nu{a=\"1\"}1\n",
        "u{a=\"1\"} 1 2 3\nu {a=\"1\"} 1\nu{a = \"1\"} 1\nu{a=\"1\" } 1\nu{a=\"1\"}  1\nu{a:b=\"1\"} 1\n",
        "u{a=\"1\"} 1 x\n",
        "u{a=\"1\"\n",
        "u{a=\"1\\",
        "u{a=\"1\"} \n",
        "u{,} 1\n",
        "u 1 2\x01\n",
        "# TYPE c  counter\nc 1\n# TYPE c counter x\nc 2\n#TYPE c counter\nc 3\n# TYPE c\tcounter\nc 4\n",
        "# TYPE c counter\n# HELP\tc x\nc 1\n# HELP  c\nc 2\n# TYPE c\nc 3\n# HELP c\nc_total 4\n",
    ] {
        check(text, &mut scratch);
        let requested = [
            ("m", Requirement::Optional),
            ("c_total", Requirement::Optional),
            ("c", Requirement::Optional),
            ("h_sum", Requirement::Optional),
            ("s", Requirement::Optional),
            ("n", Requirement::Strict),
        ];
        let want = oracle(text, &requested);
        let got = one_pass(text, &requested, &mut scratch);
        assert!(same(&want, &got), "{text:?}\nold: {want:?}\nnew: {got:?}");
    }
    // Many labels on a line (the map path) and many label sets.
    let mut line = String::from("x{");
    for i in 0..200 {
        let _ = write!(line, "l{}=\"{i}\",", i % 150);
    }
    line.push_str("} 1\n");
    check(&line, &mut scratch);
}

/// The value (and timestamp) of a sample not asked for is only checked for being a number, by a
/// syntactic check rather than a float parse: a body is still rejected exactly when `parse`
/// rejects it, with the same error, for every short token of float syntax and its near misses.
#[test]
fn same_answer_on_value_tokens() {
    let alphabet = [
        "0", "1", ".", "e", "+", "-", "I", "n", "f", "a", "N", "_", "x", "é",
    ];
    let mut tokens = vec![String::new()];
    let mut all = Vec::new();
    for _ in 0..3 {
        let mut next = Vec::new();
        for prefix in &tokens {
            for symbol in alphabet {
                next.push(format!("{prefix}{symbol}"));
            }
        }
        all.extend(next.iter().cloned());
        tokens = next;
    }
    all.extend(
        [
            "NaN",
            "+Inf",
            "-Inf",
            "Infinity",
            "-infinity",
            "1e400",
            "0x10",
            "1_0",
            "5.e-3",
            ".5E+2",
        ]
        .map(str::to_owned),
    );
    let mut scratch = PrometheusScratch::new();
    for token in &all {
        // As a value, as a timestamp, and on a labelled line.
        check(&format!("x {token}\n"), &mut scratch);
        check(&format!("x 1 {token}\n"), &mut scratch);
        check(&format!("x{{a=\"b\"}} {token} 2\n"), &mut scratch);
    }
}

#[test]
fn series_cap_per_metric() {
    let limits = PrometheusLimits {
        max_series_per_metric: 100,
        ..PrometheusLimits::default()
    };
    let mut text = String::new();
    for i in 0..100 {
        let _ = writeln!(text, "m{{a=\"{i}\"}} 1");
    }
    // Repeating a known label set does not count.
    text.push_str("m{a=\"7\"} 2\n");
    let mut scratch = PrometheusScratch::new();
    let requested = [("m", Requirement::Strict)];
    assert!(query_text(&text, &requested, &limits, &mut scratch).is_ok());
    text.push_str("m{a=\"new\"} 1\n");
    let err = query_text(&text, &requested, &limits, &mut scratch).unwrap_err();
    assert_eq!(
        err,
        PrometheusTextError::Limit(PrometheusLimitError::Series {
            metric: "m".to_owned(),
            max: 100
        })
    );
    assert_eq!(
        err.to_string(),
        "metric `m` has more than 100 label sets (the cap per metric)"
    );
    // Series of metrics nobody asked for cost nothing and count nothing.
    let mut other = String::new();
    for i in 0..10_000 {
        let _ = writeln!(other, "other{{a=\"{i}\"}} 1");
    }
    other.push_str("m 1\n");
    let mut fresh = PrometheusScratch::new();
    let found = query_text(&other, &requested, &limits, &mut fresh).unwrap();
    assert!(found.to_metrics_data().get("m").is_some());
}

#[test]
fn label_bytes_cap() {
    let limits = PrometheusLimits {
        max_label_bytes: 1000,
        ..PrometheusLimits::default()
    };
    let requested = [("m", Requirement::Strict)];
    let long = "v".repeat(600);
    let text = format!("m{{a=\"{long}\"}} 1\n");
    let mut scratch = PrometheusScratch::new();
    // 600 bytes of value, 600 more in the key: over 1000.
    let err = query_text(&text, &requested, &limits, &mut scratch).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the label sets of the requested metrics exceed 1000 bytes (the cap per scrape)"
    );
    let text = format!("m{{a=\"{}\"}} 1\n", "v".repeat(400));
    assert!(query_text(&text, &requested, &limits, &mut scratch).is_ok());
}

/// A million series of a metric nobody asked for (the hostile body of issue #16): nothing kept,
/// so the buffers stay small; a million of a wanted one stop at the cap.
#[test]
fn a_million_series_keep_the_buffers_small() {
    let mut text = fixture("node_exporter/metrics.txt");
    for i in 0..1_000_000 {
        let _ = writeln!(text, "hostile_series{{id=\"{i}\"}} {i}");
    }
    let requested: Vec<(&str, Requirement)> = SYSTEM_METRICS
        .iter()
        .map(|m| (*m, Requirement::Strict))
        .collect();
    let mut scratch = PrometheusScratch::new();
    assert!(query_text(
        &text,
        &requested,
        &PrometheusLimits::default(),
        &mut scratch
    )
    .is_ok());
    assert!(
        scratch.capacity_bytes() < 256 * 1024,
        "{}",
        scratch.capacity_bytes()
    );

    let mut text = String::new();
    for i in 0..1_000_000 {
        let _ = writeln!(
            text,
            "node_cpu_seconds_total{{cpu=\"{i}\",mode=\"idle\"}} {i}"
        );
    }
    let err = query_text(
        &text,
        &requested,
        &PrometheusLimits::default(),
        &mut scratch,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            PrometheusTextError::Limit(PrometheusLimitError::Series { max: 10_000, .. })
        ),
        "{err}"
    );
    let _ = PrometheusQueryError::MixedLabels(String::new());
}
