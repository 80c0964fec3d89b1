//! Smoke test of the `bench` harness: a tiny suite (5 monitorables, 1 s period, 2 s measured) of
//! every approach, plus the manager on the real RabbitMQ (a private vhost, deleted after), must
//! produce well-formed results. Numbers are never asserted: only that each run did the work it
//! claims (rounds happened, results reached the bus) and that the files are complete.
//!
//! Issue #14's subcommands run tiny too: `prometheus-compare` (5 targets, the real Prometheus and
//! node_exporter of the machine, a debug `monitors-manager`), `evm-scale` (100 EVM monitors),
//! `react` (100 sections: the unchanged monitors must not restart).

// Tests own what they spawn: each helper task or thread ends with its test.
#![allow(clippy::disallowed_methods)]
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bench"))
}

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/node_exporter/metrics.txt")
}

#[test]
fn quick_suite_produces_well_formed_results() {
    let out_dir = std::env::temp_dir().join(format!("bench-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out_dir);
    let output = bench()
        .args(["suite", "--quick", "--out-dir"])
        .arg(&out_dir)
        .arg("--fixture")
        .arg(fixture())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench suite failed:\n{stderr}");

    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("results.json")).unwrap())
            .unwrap();
    assert!(json["machine"]["nproc"].as_u64().unwrap() >= 1);
    assert!(json["server_check"]["requests"].as_u64().unwrap() > 0);
    let runs = json["runs"].as_array().unwrap();
    let mut seen: Vec<(String, String)> = Vec::new();
    for run in runs {
        let approach = run["approach"].as_str().unwrap().to_owned();
        let bus = run["bus"].as_str().unwrap().to_owned();
        let what = format!("{approach} on {bus}: {run}");
        assert!(run["skipped"].is_null(), "{what}");
        assert_eq!(run["size"], 5, "{what}");
        assert_eq!(run["running"], 5, "{what}");
        let rounds = run["rounds"].as_u64().unwrap();
        assert!(rounds > 0, "{what}");
        // Every counted round has a lateness sample and returned a result envelope.
        assert_eq!(run["lateness"]["count"].as_u64().unwrap(), rounds, "{what}");
        assert_eq!(run["results"].as_u64().unwrap(), rounds, "{what}");
        assert_eq!(run["error_envelopes"], 0, "{what}");
        assert_eq!(run["round_errors"], 0, "{what}");
        assert_eq!(run["publish_failures"], 0, "{what}");
        assert!(run["received"].as_u64().unwrap() > 0, "{what}");
        for field in [
            "cpu_s",
            "cpu_s_per_1000_rounds",
            "rounds_per_s",
            "publishes_per_s",
        ] {
            let v = run[field].as_f64().unwrap();
            assert!(v.is_finite() && v >= 0.0, "{field} of {what}");
        }
        assert!(run["rss_steady_bytes"].as_u64().unwrap() > 0, "{what}");
        assert!(run["rss_peak_bytes"].as_u64().unwrap() > 0, "{what}");
        let l = &run["lateness"];
        assert!(
            l["p50_ms"].as_f64().unwrap() <= l["p99_ms"].as_f64().unwrap(),
            "{what}"
        );
        assert!(
            l["p99_ms"].as_f64().unwrap() <= l["max_ms"].as_f64().unwrap(),
            "{what}"
        );
        if approach == "processes" {
            // The supervisor and one process per monitorable.
            assert_eq!(run["os_processes"], 6, "{what}");
        }
        if approach == "manager" {
            assert!(
                run["manager"]["rounds_ok"].as_u64().unwrap() >= rounds,
                "{what}"
            );
        }
        seen.push((approach, bus));
    }
    for approach in ["processes", "threads", "manager", "queue", "bare"] {
        assert!(
            seen.contains(&(approach.to_owned(), "memory".to_owned())),
            "{approach} missing: {seen:?}"
        );
    }
    assert!(
        seen.contains(&("manager".to_owned(), "rabbitmq".to_owned())),
        "{seen:?}"
    );

    let md = std::fs::read_to_string(out_dir.join("results.md")).unwrap();
    assert!(md.contains("| approach | bus | N |"), "{md}");
    for (approach, bus) in &seen {
        let row = format!("\n| {approach} | {bus} | 5 | 5 |");
        assert_eq!(md.matches(&row).count(), 1, "{row} in {md}");
    }
    assert!(
        md.contains("Targets for the manager at 5 system monitors"),
        "{md}"
    );
    let svg = std::fs::read_to_string(out_dir.join("plot.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("manager (rabbitmq)"));

    // `report` re-renders the same table from results.json.
    let again = out_dir.join("again");
    let status = bench()
        .args(["report", "--results"])
        .arg(out_dir.join("results.json"))
        .arg("--out-dir")
        .arg(&again)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        std::fs::read_to_string(again.join("results.md")).unwrap(),
        md
    );
    std::fs::remove_dir_all(&out_dir).unwrap();
}

#[test]
fn bad_inputs_are_clear_errors() {
    let out = bench()
        .args([
            "run",
            "--approach",
            "fibers",
            "--size",
            "1",
            "--url",
            "http://127.0.0.1:1/metrics",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown approach `fibers`"));

    let out = bench()
        .args([
            "suite",
            "--quick",
            "--no-amqp",
            "--fixture",
            "/nonexistent/metrics.txt",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/metrics.txt"));

    let out = bench()
        .args(["report", "--results", "/nonexistent/results.json"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("reading /nonexistent/results.json"));

    let out = bench()
        .args([
            "run",
            "--approach",
            "threads",
            "--size",
            "1",
            "--url",
            "http://127.0.0.1:1/metrics",
            "--amqp-url",
            "amqp://127.0.0.1:1/x",
            "--measure",
            "1",
            "--warmup",
            "0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("in-memory bus only"));
}

/// The release-style `monitors-manager` binary beside `bench` (a workspace test run builds it;
/// built here when this crate's tests run alone).
fn manager_bin() -> PathBuf {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_bench"));
    let manager = bench.with_file_name("monitors-manager");
    if !manager.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "bins", "--bin", "monitors-manager"])
            .status();
        assert!(
            status.as_ref().is_ok_and(|s| s.success()),
            "building monitors-manager: {status:?}"
        );
    }
    manager
}

/// The last line of stdout that is a JSON object.
fn last_json(stdout: &[u8]) -> Value {
    String::from_utf8_lossy(stdout)
        .lines()
        .rev()
        .find_map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .filter(Value::is_object)
        })
        .unwrap_or_else(|| panic!("no JSON line in {}", String::from_utf8_lossy(stdout)))
}

/// `prometheus-compare --floors`, tiny: 5 targets every second, 3 s measured after Prometheus's
/// first scrapes (its scrape manager starts targets about 5 s after it is ready).
#[test]
fn prometheus_compare_tiny() {
    let out_dir = std::env::temp_dir().join(format!("bench-compare-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out_dir);
    let output = bench()
        .args([
            "prometheus-compare",
            "--targets",
            "5",
            "--period",
            "1",
            "--warmup",
            "7",
            "--measure",
            "3",
            "--sample-every",
            "0.5",
            "--floors",
            "--manager-bin",
        ])
        .arg(manager_bin())
        .arg("--out-dir")
        .arg(&out_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "prometheus-compare failed:\n{stderr}"
    );
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("results.json")).unwrap())
            .unwrap();
    assert_eq!(r["targets"], 5);
    assert!(r["body"]["bytes"].as_u64().unwrap() > 1000, "{r}");
    assert!(r["body"]["exporter_version"].is_string(), "{r}");
    for side in ["manager", "prometheus"] {
        let s = &r[side];
        assert!(s["polls"].as_u64().unwrap() > 0, "{side}: {s}");
        assert_eq!(s["failures"], 0, "{side}: {s}");
        assert!(s["cpu_s"].as_f64().unwrap() > 0.0, "{side}: {s}");
        assert!(s["rss_steady_bytes"].as_u64().unwrap() > 0, "{side}: {s}");
    }
    assert!(r["ratio"].as_f64().unwrap() > 0.0, "{r}");
    // The three fetch-only pollers of `--floors`, in the same window.
    let floors = r["floors"].as_array().unwrap();
    assert_eq!(floors.len(), 3, "{r}");
    for (f, what) in floors
        .iter()
        .zip(["fetch-floor raw", "fetch-floor hyper", "fetch-floor http"])
    {
        assert_eq!(f["what"], what, "{f}");
        assert!(f["polls"].as_u64().unwrap() > 0, "{f}");
        assert_eq!(f["failures"], 0, "{f}");
        assert!(f["cpu_s"].as_f64().unwrap() > 0.0, "{f}");
    }
    let md = std::fs::read_to_string(out_dir.join("results.md")).unwrap();
    assert!(
        md.contains("| fetch-floor raw")
            && md.contains("| fetch-floor hyper")
            && md.contains("| fetch-floor http"),
        "{md}"
    );
    assert!(md.contains("| monitors-manager"), "{md}");
    assert!(md.contains("| prometheus"), "{md}");
    let yml = std::fs::read_to_string(out_dir.join("prometheus.yml")).unwrap();
    assert!(yml.contains("action: keep") && yml.contains("node_cpu_seconds_total"));
    std::fs::remove_dir_all(&out_dir).unwrap();
}

/// `evm-scale` with 100 monitors on 10 targets at 1 s, 2 s of warm-up and 2 of window, 4 kept
/// hosts, and `extra`; its result (the run must succeed).
fn tiny_evm_scale(extra: &[&str]) -> Value {
    let output = bench()
        .args([
            "evm-scale",
            "--monitors",
            "100",
            "--targets",
            "10",
            "--period",
            "1",
            "--warmup",
            "2",
            "--measure",
            "2",
            "--sample-every",
            "0.25",
            "--max-kept-hosts",
            "4",
        ])
        .args(extra)
        .output()
        .unwrap_or_else(|e| panic!("running bench: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "evm-scale {extra:?} failed:\n{stderr}"
    );
    last_json(&output.stdout)
}

/// `evm-scale`, tiny: 100 EVM node monitors on 10 targets, a 1 s period, keep-alive for 4 hosts.
#[test]
fn evm_scale_tiny() {
    let r = tiny_evm_scale(&["--per-message", "40"]);
    assert_eq!(r["running"], 100, "{r}");
    assert_eq!(r["config_messages"], 3, "{r}");
    let rounds = r["rounds"].as_u64().unwrap();
    assert!(rounds > 0, "{r}");
    assert_eq!(r["results"].as_u64().unwrap(), rounds, "{r}");
    assert_eq!(r["error_envelopes"], 0, "{r}");
    assert_eq!(r["round_errors"], 0, "{r}");
    assert_eq!(r["lateness"]["count"].as_u64().unwrap(), rounds, "{r}");
    let fds = r["fds_peak"].as_u64().unwrap();
    assert!(
        fds > 0 && fds < r["ulimit_n"].as_u64().unwrap_or(u64::MAX),
        "{r}"
    );
    assert_eq!(r["approach"], "manager", "{r}");
    // 100 monitors at 1 s ask for 100 permits of 1 s: the floor of 256 holds.
    assert_eq!(r["permits_end"], 256, "{r}");
    let started: u64 = r["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["started"].as_u64().unwrap())
        .sum();
    assert!(started > 0 && started <= rounds, "{r}");
}

/// `evm-scale --bare`, tiny: the same monitors as bare tasks.
#[test]
fn evm_scale_bare_tiny() {
    let r = tiny_evm_scale(&["--bare"]);
    assert_eq!(r["approach"], "bare", "{r}");
    assert_eq!(r["running"], 100, "{r}");
    let rounds = r["rounds"].as_u64().unwrap();
    assert!(rounds > 0, "{r}");
    assert_eq!(r["lateness"]["count"].as_u64().unwrap(), rounds, "{r}");
    assert_eq!(r["results"].as_u64().unwrap(), rounds, "{r}");
    assert_eq!(r["error_envelopes"], 0, "{r}");
}

/// `react`, tiny: 100 sections, 3 changes of one section; the other monitors are not restarted.
#[test]
fn react_tiny() {
    let output = bench()
        .args(["react", "--sections", "100", "--changes", "3", "--fixture"])
        .arg(fixture())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "react failed:\n{stderr}");
    let r = last_json(&output.stdout);
    assert_eq!(r["sections"], 100, "{r}");
    assert_eq!(r["change_ms"].as_array().unwrap().len(), 3, "{r}");
    assert_eq!(r["changed_restarted"], 3, "{r}");
    assert_eq!(r["others_restarted"], 0, "{r}");
    assert!(r["start_all_ms"].as_f64().unwrap() > 0.0, "{r}");
}
