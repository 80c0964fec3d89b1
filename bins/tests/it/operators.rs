//! Issue #15, for operators: a first round soon after start at PANIC's default 60 s period, the
//! start-up line, the readable output (`--format pretty`), and `monitors-manager check` on good
//! and broken config folders; a low open-file limit is fitted under, not failed on.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{node_exporter_fixture, sigterm, write_systems, TempDir, PATIENCE};
use monitor_strategies::testing::{Reply, TestServer};
use tokio::io::AsyncBufReadExt;

/// Generous: the schedule gives a lone monitor its first round within about a second; this only
/// checks that it does not wait for its 60 s period (not a performance assertion).
const FIRST_ROUND_BOUND: Duration = Duration::from_secs(10);

const BIN: &str = env!("CARGO_BIN_EXE_monitors-manager");

/// A port nothing listens on (bound, then released).
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}/metrics")
}

/// A running manager and the task draining its log (a full stderr pipe would block its logging).
struct Manager {
    child: tokio::process::Child,
    log: tokio::task::JoinHandle<String>,
}

/// The manager on `dir` at PANIC's default system period (no period variable), raw data to
/// `output`, its log read from a pipe while it runs.
fn spawn_manager(dir: &Path, output: &Path, extra: &[&str]) -> Manager {
    spawn_command(tokio::process::Command::new(BIN), dir, output, extra)
}

/// [`spawn_manager`] started by `command` (the binary, or a shell that execs it).
fn spawn_command(
    mut command: tokio::process::Command,
    dir: &Path,
    output: &Path,
    extra: &[&str],
) -> Manager {
    let mut child = command
        .arg("--config-dir")
        .arg(dir)
        .arg("--output")
        .arg(output)
        .args(extra)
        .env_remove("SYSTEM_MONITOR_PERIOD_SECONDS")
        .env_remove("AMQP_URL")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("monitors-manager binary");
    let stderr = child.stderr.take().unwrap();
    let log = tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        let mut log = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            log.push_str(&line);
            log.push('\n');
        }
        log
    });
    Manager { child, log }
}

/// Wait (at most `bound`) until `path` has `n` lines; return them.
async fn wait_lines(path: &Path, n: usize, bound: Duration) -> Vec<String> {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            start.elapsed() < bound,
            "fewer than {n} output lines after {bound:?}: {lines:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stop the manager (SIGTERM, clean exit) and return its log.
async fn stop(manager: Manager) -> String {
    let Manager { mut child, log } = manager;
    sigterm(child.id().unwrap());
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .unwrap()
        .unwrap();
    let log = tokio::time::timeout(PATIENCE, log).await.unwrap().unwrap();
    assert!(status.success(), "{status:?}\n{log}");
    log
}

#[tokio::test]
async fn a_fresh_manager_gives_its_first_round_within_seconds_and_says_what_runs() {
    let server = TestServer::start().await.unwrap();
    server.route("/metrics", Reply::ok(node_exporter_fixture()));
    let dir = TempDir::new("panic-first-round");
    let cfg = dir.0.join("config");
    write_systems(
        &cfg.join("general/systems_config.ini"),
        &[("system_a", "alpha", &server.url("/metrics"))],
    );
    let out = dir.0.join("raw.jsonl");
    let child = spawn_manager(&cfg, &out, &[]);

    // The period is 60 s; the first round comes long before.
    let lines = wait_lines(&out, 1, FIRST_ROUND_BOUND).await;
    let first: serde_json::Value = serde_json::from_str(&lines[0]).expect("JSON lines by default");
    assert_eq!(first["routing_key"], "system");
    assert_eq!(first["body"]["result"]["meta_data"]["system_name"], "alpha");

    let log = stop(child).await;
    let started = log
        .lines()
        .find(|l| l.contains("running 1 monitors"))
        .unwrap_or_else(|| panic!("no start-up line in\n{log}"));
    assert!(started.contains("systems 1 every 60 s"), "{started}");
    assert!(
        started.contains(&format!("raw data: {} (JSON lines)", out.display())),
        "{started}"
    );
}

#[tokio::test]
async fn a_low_open_file_limit_lowers_the_socket_bounds_with_a_warning_and_the_manager_runs() {
    let server = TestServer::start().await.unwrap();
    server.route("/metrics", Reply::ok(node_exporter_fixture()));
    let dir = TempDir::new("panic-nofile");
    let cfg = dir.0.join("config");
    write_systems(
        &cfg.join("general/systems_config.ini"),
        &[("system_a", "alpha", &server.url("/metrics"))],
    );
    let out = dir.0.join("raw.jsonl");
    // `ulimit -n` in sh sets the soft and the hard limit: the manager cannot raise it.
    let mut shell = tokio::process::Command::new("sh");
    shell
        .arg("-c")
        .arg("ulimit -n 512 && exec \"$0\" \"$@\"")
        .arg(BIN);
    let child = spawn_command(shell, &cfg, &out, &[]);

    let lines = wait_lines(&out, 1, FIRST_ROUND_BOUND).await;
    let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(first["body"]["result"]["meta_data"]["system_name"], "alpha");
    let log = stop(child).await;
    let warning = log
        .lines()
        .find(|l| l.contains("WARN") && l.contains("open-file limit is 512"))
        .unwrap_or_else(|| panic!("no open-file warning in\n{log}"));
    // 75 % of 512 less the reserve of 256: 128 sockets; a quarter each for the kept hosts (2 idle
    // each) and the slow lane, the rest for the main pool.
    assert!(
        warning.contains(
            "polls in flight at most 64 (was 4096), hosts kept alive 16 (was 4096), \
             slow lane 32 (was 64)"
        ),
        "{warning}"
    );
}

#[tokio::test]
async fn pretty_output_is_one_readable_line_per_round() {
    let server = TestServer::start().await.unwrap();
    server.route("/metrics", Reply::ok(node_exporter_fixture()));
    let dir = TempDir::new("panic-pretty");
    let cfg = dir.0.join("config");
    write_systems(
        &cfg.join("general/systems_config.ini"),
        &[
            ("system_a", "alpha", &server.url("/metrics")),
            ("system_b", "beta", &closed_port_url()),
        ],
    );
    let out = dir.0.join("raw.txt");
    let child = spawn_manager(&cfg, &out, &["--format", "pretty"]);
    let lines = wait_lines(&out, 2, FIRST_ROUND_BOUND).await;
    let log = stop(child).await;
    assert!(log.contains("(readable lines)"), "{log}");

    // `HH:MM:SS  <routing key padded>  <monitor>  <figures>`; the fixture's figures (as in monitor-strategies' system_http test).
    let alpha = lines
        .iter()
        .find(|l| l.contains("System monitor (alpha)"))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    let (clock, rest) = alpha.split_at(8);
    assert!(
        clock.chars().enumerate().all(|(i, c)| if i == 2 || i == 5 {
            c == ':'
        } else {
            c.is_ascii_digit()
        }),
        "{alpha}"
    );
    assert_eq!(
        rest,
        "  system             System monitor (alpha)  cpu 8.36 %  ram 37.92 %  disk 22.86 %"
    );
    let beta = lines
        .iter()
        .find(|l| l.contains("System monitor (beta)"))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert!(
        beta.ends_with("System monitor (beta)  error 5004: System beta is unreachable"),
        "{beta}"
    );
    assert!(
        lines.iter().all(|l| !l.starts_with('{')),
        "no JSON: {lines:#?}"
    );
}

#[tokio::test]
async fn a_pipe_gets_json_lines() {
    let dir = TempDir::new("panic-pipe");
    let cfg = dir.0.join("config");
    write_systems(
        &cfg.join("general/systems_config.ini"),
        &[("system_a", "alpha", &closed_port_url())],
    );
    // No --output, no --format: stdout is a pipe, so JSON lines (what scripts and tests read).
    let mut child = tokio::process::Command::new(BIN)
        .arg("--config-dir")
        .arg(&cfg)
        .env_remove("SYSTEM_MONITOR_PERIOD_SECONDS")
        .env_remove("AMQP_URL")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(FIRST_ROUND_BOUND, stdout.next_line())
        .await
        .expect("a first line within the bound")
        .unwrap()
        .expect("a line, not the end of the output");
    let v: serde_json::Value = serde_json::from_str(&first).expect("a JSON line");
    assert_eq!(v["body"]["error"]["code"], 5004, "{v}");
    sigterm(child.id().unwrap());
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}

fn check(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(BIN)
        .arg("check")
        .args(args)
        .env_remove("SYSTEM_MONITOR_PERIOD_SECONDS")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().unwrap_or(-1), stdout)
}

#[test]
fn check_lists_what_a_good_folder_runs() {
    let dir = TempDir::new("panic-check-good");
    write_systems(
        &dir.0.join("general/systems_config.ini"),
        &[
            ("system_a", "alpha", "http://10.0.0.1:9100/metrics"),
            ("system_b", "beta", "https://host.example:9100/metrics"),
        ],
    );
    std::fs::create_dir_all(dir.0.join("channels")).unwrap();
    std::fs::write(dir.0.join("channels/slack_config.ini"), "[s]\nx = 1\n").unwrap();
    let root = dir.0.to_str().unwrap();
    let (code, out) = check(&["--config-dir", root]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 config file, 2 monitors"), "{out}");
    assert!(out.contains("systems: 2 monitors, every 60 s"), "{out}");
    assert!(
        out.contains(
            "System monitor (alpha)  http://10.0.0.1:9100/metrics  \
             (general/systems_config.ini:1)"
        ),
        "{out}"
    );
    assert!(
        out.contains("(general/systems_config.ini:8)"),
        "beta's section starts at line 8: {out}"
    );
    assert!(out.contains("ignored: channels/slack_config.ini"), "{out}");
    assert!(out.trim_end().ends_with("no problems"), "{out}");

    // The repository's example folder checks clean too (the README's command).
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/config");
    let (code, out) = check(&["--config-dir", examples]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("System monitor (local_host)"), "{out}");
}

#[test]
fn check_reports_every_problem_of_a_broken_folder_with_file_line_and_field() {
    let dir = TempDir::new("panic-check-broken");
    let general = dir.0.join("general");
    std::fs::create_dir_all(&general).unwrap();
    std::fs::write(
        general.join("systems_config.ini"),
        "\
[system_a]
id = system_a
parent_id = GENERAL
name = a
exporter_url = http://127.0.0.1:9100/metrics
monitor_system = true

[system_b]
id = system_b
parent_id = GENERAL
exporter_url = 127.0.0.1:9100/metrics
monitor_system = true

[system_c]
id = system_a
parent_id = GENERAL
name = c
exporter_url = http://127.0.0.1:9101/metrics
monitor_system = true
",
    )
    .unwrap();
    std::fs::write(general.join("bogus_config.ini"), "[x]\nid = x\n").unwrap();
    let chain = dir.0.join("chains/cosmos/hub");
    std::fs::create_dir_all(&chain).unwrap();
    std::fs::write(
        chain.join("nodes_config.ini"),
        "[node_a]\nid = n\n[unclosed\n",
    )
    .unwrap();

    let (code, out) = check(&["--config-dir", dir.0.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    for expected in [
        "general/systems_config.ini:8: section `system_b`: field `name`: missing",
        "general/systems_config.ini:11: section `system_b`: field `exporter_url`: \
         `127.0.0.1:9100/metrics` is not a URL",
        "general/systems_config.ini:15: section `system_c`: field `id`: duplicate id `system_a` \
         (also section `system_a` at general/systems_config.ini:2)",
        "general/bogus_config.ini: unknown config file: `general.bogus_config`",
        "chains/cosmos/hub/nodes_config.ini:3: not valid ini",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in\n{out}");
    }
    assert!(out.contains("5 problems:"), "{out}");
    // The good sections would still run.
    assert!(out.contains("System monitor (a)"), "{out}");

    // One file alone: its routing key from its path.
    let file = general.join("systems_config.ini");
    let (code, out) = check(&["--config-file", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("general/systems_config.ini:8: section `system_b`: field `name`: missing"),
        "{out}"
    );
    assert!(!out.contains("bogus"), "{out}");

    // Nothing to read: status 2, and clap's own usage errors stay errors.
    let (code, _) = check(&["--config-dir", "/nonexistent/panic-config"]);
    assert_eq!(code, 2);
    let (code, _) = check(&[]);
    assert_ne!(code, 0);
}
