use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use monitor_strategies::SYSTEM_METRICS;
use monitor_strategies::{
    parse_prometheus as parse, query_prometheus as query, MetricValue, Requirement,
};

use crate::node_exporter_fixture;

/// Parses and queries whatever comes; the only requirement is to return.
fn exercise(text: &str) {
    if let Ok(samples) = parse(text) {
        let requested: Vec<(&str, Requirement)> = SYSTEM_METRICS
            .iter()
            .map(|m| (*m, Requirement::Optional))
            .collect();
        let _ = query(&samples, &requested);
        for s in &samples {
            let _ = s.labels_json();
            let _ = s.python_name();
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0001);
    // Bytes biased towards the exposition's alphabet, so that parsing gets deep.
    let alphabet: &[u8] = b"abc_{}=\",# \n\t\\0123456789.e+-NaInf\xc3\xa9\xff";
    for _ in 0..20_000 {
        let len = rng.random_range(0..80);
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                if rng.random_bool(0.8) {
                    alphabet[rng.random_range(0..alphabet.len())]
                } else {
                    rng.random()
                }
            })
            .collect();
        exercise(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn truncated_and_mutated_fixture_never_panics() {
    let fixture = node_exporter_fixture();
    // Every line truncated at every char boundary.
    for line in fixture.lines().take(400) {
        for (i, _) in line.char_indices() {
            exercise(&line[..i]);
        }
    }
    // The whole scrape cut at random points, and with random bytes flipped.
    let mut rng = StdRng::seed_from_u64(0x5eed_0002);
    let bytes = fixture.as_bytes();
    for _ in 0..300 {
        let cut = rng.random_range(0..bytes.len());
        exercise(&String::from_utf8_lossy(&bytes[..cut]));
        let mut mutated = bytes.to_vec();
        for _ in 0..rng.random_range(1..20) {
            let at = rng.random_range(0..mutated.len());
            mutated[at] = rng.random();
        }
        exercise(&String::from_utf8_lossy(&mutated));
    }
}

#[test]
fn the_fixture_parses_completely() {
    let samples = parse(&node_exporter_fixture()).unwrap();
    // SOURCES.md: 853 samples.
    assert_eq!(samples.len(), 853);
}

/// The other shared scrapes parse, and PANIC's `_total` counter renaming finds the Chainlink
/// counters under the names PANIC asks for.
#[test]
fn chainlink_counters_get_total_suffix() {
    let text = crate::common::fixture("chainlink/metrics.txt");
    let samples = parse(&text).unwrap();
    let data = query(
        &samples,
        &[
            ("head_tracker_heads_received_total", Requirement::Strict),
            ("tx_manager_num_gas_bumps_total", Requirement::Optional),
            ("run_status_update_total", Requirement::Optional),
            ("head_tracker_heads_received", Requirement::Optional),
        ],
    )
    .unwrap();
    let first = |metric: &str| match data.get(metric) {
        Some(MetricValue::Labelled(entries)) => entries[0].value,
        other => panic!("{metric}: {other:?}"),
    };
    assert_eq!(first("head_tracker_heads_received_total"), 84213.0);
    assert_eq!(first("tx_manager_num_gas_bumps_total"), 57.0);
    // The written name is gone, as in Python.
    assert_eq!(data.get("head_tracker_heads_received"), None);
    // `run_status_update_total` keeps its name; 3 errored label sets (PANIC counts sets).
    let Some(MetricValue::Labelled(runs)) = data.get("run_status_update_total") else {
        panic!("run_status_update_total");
    };
    assert_eq!(
        runs.iter()
            .filter(|e| e.label("status") == Some("errored"))
            .count(),
        3
    );
    assert_eq!(
        runs[0].key,
        r#"{"from_status": "", "job_spec_id": "0b7dd91f5e8a40d8b0493fc0799fe5d3", "status": "in_progress"}"#
    );

    for other in [
        "tendermint/metrics.txt",
        "tendermint/metrics_evmos_devnet.txt",
    ] {
        let text = crate::common::fixture(other);
        assert!(!parse(&text).unwrap().is_empty(), "{other}");
    }
}
