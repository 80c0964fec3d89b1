//! `bench prometheus-compare`: the release `monitors-manager --config-dir` and Debian's
//! Prometheus polling the same N node_exporter targets at the same period, measured over the same
//! window (issue #14).
//!
//! 1. The body: node_exporter's own `/metrics`, captured at run time from Debian's
//!    `prometheus-node-exporter` (started on a free port, read once, stopped), or `--body FILE`.
//! 2. The stand-in (`bench serve --addr 0.0.0.0:0`) serves it at `http://127.a.b.c:PORT/metrics`
//!    for N distinct loopback addresses: N distinct targets, one connection each for both
//!    pollers, as N real exporters would get.
//! 3. The manager: a generated config folder (`general/systems_config.ini`, N systems), the
//!    release `monitors-manager --config-dir DIR --output FILE` with
//!    `SYSTEM_MONITOR_PERIOD_SECONDS`, its default logging. Rounds are the JSON lines it writes in
//!    the window; each line is checked to be a `result`, not an `error`.
//! 4. Prometheus: a generated `prometheus.yml` (the same N targets, `scrape_interval` = the period,
//!    `metric_relabel_configs` keeping only the families the system monitor reads,
//!    [`SYSTEM_METRICS`]), its own TSDB in the work folder. Scrapes in the window are
//!    `sum(count_over_time(up[window]))` at the window's end (one `up` sample per scrape).
//! 5. CPU: the scheduler's run time of every thread (`/proc/PID/task/*/schedstat`) between the
//!    window's start and end; RSS sampled every `--sample-every`.
//!
//! By default both run at once over one window (`--sequential`: one after the other, each with its
//! own warm-up and window). Together they share the machine's conditions of that minute (other
//! builds on this shared machine move a lone measurement by more than the difference measured),
//! and at 2,000 targets every 10 s both need far less than the two cores between them, so they
//! rarely wait for each other.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use monitor_strategies::SYSTEM_METRICS;

use super::children::{
    free_port, http_get, loopback_addr, url_encode, wait_for_200, Owned, StandIn,
};
use super::proc;
use super::record::Clock;
use super::BenchError;

/// What `bench prometheus-compare` is asked to do.
#[derive(Debug, Clone)]
pub(crate) struct CompareArgs {
    pub(crate) targets: usize,
    pub(crate) period: Duration,
    pub(crate) warmup: Duration,
    pub(crate) measure: Duration,
    pub(crate) sample_every: Duration,
    /// A body file; `None`: capture node_exporter's at run time.
    pub(crate) body: Option<PathBuf>,
    pub(crate) exporter_bin: PathBuf,
    pub(crate) manager_bin: PathBuf,
    pub(crate) prometheus_bin: PathBuf,
    pub(crate) out_dir: PathBuf,
    pub(crate) sequential: bool,
    pub(crate) keep_work: bool,
    /// Also run the three fetch-only pollers (`bench fetch-floor`: raw TCP, hyper in the task,
    /// reqwest) in the same window (not with `sequential`).
    pub(crate) floors: bool,
}

/// The body both pollers read.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct BodyInfo {
    /// Where it came from.
    pub(crate) source: String,
    /// Bytes.
    pub(crate) bytes: usize,
    /// `node_exporter_build_info`'s `version` label, if any.
    pub(crate) exporter_version: Option<String>,
    /// Sample lines (not comments).
    pub(crate) samples: usize,
}

/// One poller over its window.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Side {
    /// `monitors-manager` or `prometheus`.
    pub(crate) what: String,
    /// The version it reports.
    pub(crate) version: String,
    /// CPU seconds in the window (every thread).
    pub(crate) cpu_s: f64,
    /// Rounds (manager) or scrapes (Prometheus) in the window.
    pub(crate) polls: u64,
    /// Polls the schedule asks for in the window (`targets × measure / period`).
    pub(crate) expected_polls: f64,
    /// CPU milliseconds per round or scrape.
    pub(crate) cpu_ms_per_poll: f64,
    /// Cores busy on average.
    pub(crate) cores: f64,
    /// Mean `VmRSS` in the window, bytes.
    pub(crate) rss_steady_bytes: u64,
    /// Largest `VmHWM`, bytes.
    pub(crate) rss_peak_bytes: u64,
    /// Threads (max over samples).
    pub(crate) threads: u64,
    /// Failed polls in the window (manager: `error` envelopes; Prometheus: `up == 0` samples).
    pub(crate) failures: u64,
    /// Remarks.
    pub(crate) notes: Vec<String>,
}

/// What `results.json` of the comparison holds.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct CompareResult {
    pub(crate) command: String,
    pub(crate) started_unix_s: u64,
    pub(crate) targets: usize,
    pub(crate) period_s: f64,
    pub(crate) warmup_s: f64,
    pub(crate) measure_s: f64,
    /// `together` (one window) or `sequential`.
    pub(crate) mode: String,
    pub(crate) body: BodyInfo,
    pub(crate) manager: Side,
    pub(crate) prometheus: Side,
    /// Manager CPU per round / Prometheus CPU per scrape.
    pub(crate) ratio: f64,
    /// The stand-in's CPU over the run, seconds.
    pub(crate) stand_in_cpu_s: f64,
    /// Samples Prometheus kept per scrape after `metric_relabel_configs`.
    pub(crate) prometheus_samples_kept_per_scrape: Option<f64>,
    /// The fetch-only pollers of `--floors` (`fetch-floor raw`, `fetch-floor http`), same window.
    #[serde(default)]
    pub(crate) floors: Vec<Side>,
}

/// Run the comparison; writes `results.json`, `results.md`, the body, the generated configs and
/// the logs to `--out-dir`.
pub(crate) fn compare(args: &CompareArgs) -> Result<CompareResult, BenchError> {
    if args.targets == 0 {
        return Err(BenchError::Usage("--targets must be at least 1".into()));
    }
    let started_unix_s = Clock::now().to_unix_ms(Instant::now()) as u64 / 1000;
    std::fs::create_dir_all(&args.out_dir)
        .map_err(|e| BenchError::io(format!("creating {}", args.out_dir.display()), e))?;
    let work = args.out_dir.join("work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)
        .map_err(|e| BenchError::io(format!("creating {}", work.display()), e))?;

    let (body, body_info) = body(args)?;
    let body_path = args.out_dir.join("body.txt");
    write(&body_path, &body)?;

    let stand_in = StandIn::start(&[
        "--fixture".into(),
        body_path.clone().into_os_string(),
        "--addr".into(),
        "0.0.0.0:0".into(),
    ])?;
    let port = stand_in.addr.port();
    let targets: Vec<SocketAddr> = (0..args.targets)
        .map(|i| SocketAddr::from((loopback_addr(i), port)))
        .collect();
    // Every target answers before anything is measured.
    for t in [targets[0], targets[targets.len() - 1]] {
        let (status, got) = http_get(t, "/metrics", Duration::from_secs(5))?;
        if status != 200 || got != body {
            return Err(BenchError::Setup(format!(
                "the stand-in at {t} answered {status} with {} bytes",
                got.len()
            )));
        }
    }
    let server_cpu0 = proc::cpu_seconds(stand_in.pid()).unwrap_or(0.0);

    let mut floors = Vec::new();
    let (manager, prometheus) = if args.sequential {
        let m = {
            let mut m = Manager::start(args, &work, &targets)?;
            let window = window_after(args.warmup, args.measure);
            let output = m.output.clone();
            let (s, marks) = measure(&mut [&mut m.child], window, args.sample_every, &|| {
                vec![file_len(&output)]
            })?;
            m.finish(args, marks[0], s.into_iter().next().unwrap_or_default())?
        };
        let p = {
            let mut p = Prometheus::start(args, &work, &targets)?;
            let window = window_after(args.warmup, args.measure);
            let addr = p.addr;
            let (s, marks) = measure(&mut [&mut p.child], window, args.sample_every, &|| {
                vec![scrape_count(addr)]
            })?;
            p.finish(args, marks[0], s.into_iter().next().unwrap_or_default())?
        };
        (m, p)
    } else {
        let mut m = Manager::start(args, &work, &targets)?;
        let mut p = Prometheus::start(args, &work, &targets)?;
        let mut f = if args.floors {
            Floor::start_both(args, &work, &targets)?
        } else {
            Vec::new()
        };
        let window = window_after(args.warmup, args.measure);
        let output = m.output.clone();
        let addr = p.addr;
        let count_files: Vec<PathBuf> = f.iter().map(|f| f.count_file.clone()).collect();
        let mut children: Vec<&mut Owned> = vec![&mut m.child, &mut p.child];
        children.extend(f.iter_mut().map(|f| &mut f.child));
        let (s, marks) = measure(&mut children, window, args.sample_every, &|| {
            let mut marks = vec![file_len(&output), scrape_count(addr)];
            marks.extend(count_files.iter().map(|c| Floor::mark(c)));
            marks
        })?;
        let mut s = s.into_iter();
        let ms = s.next().unwrap_or_default();
        let ps = s.next().unwrap_or_default();
        for ((floor, sampled), mark) in f.into_iter().zip(s).zip(marks.iter().skip(2)) {
            floors.push(floor.finish(args, *mark, &sampled));
        }
        let pr = p.finish(args, marks[1], ps)?;
        (m.finish(args, marks[0], ms)?, pr)
    };
    let stand_in_cpu_s = proc::cpu_seconds(stand_in.pid()).unwrap_or(server_cpu0) - server_cpu0;
    drop(stand_in);

    let (prometheus, samples_kept) = prometheus;
    let ratio = if prometheus.cpu_ms_per_poll > 0.0 {
        manager.cpu_ms_per_poll / prometheus.cpu_ms_per_poll
    } else {
        0.0
    };
    let result = CompareResult {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        started_unix_s,
        targets: args.targets,
        period_s: args.period.as_secs_f64(),
        warmup_s: args.warmup.as_secs_f64(),
        measure_s: args.measure.as_secs_f64(),
        mode: if args.sequential {
            "sequential"
        } else {
            "together"
        }
        .to_owned(),
        body: body_info,
        manager,
        prometheus,
        ratio,
        stand_in_cpu_s,
        prometheus_samples_kept_per_scrape: samples_kept,
        floors,
    };
    let json = serde_json::to_string_pretty(&result)
        .map_err(|e| BenchError::Setup(format!("encoding the results: {e}")))?;
    write(&args.out_dir.join("results.json"), json.as_bytes())?;
    write(
        &args.out_dir.join("results.md"),
        markdown(&result).as_bytes(),
    )?;
    if !args.keep_work {
        // The TSDB and the raw output; the configs and logs are copied out first.
        for f in [
            "prometheus.yml",
            "prometheus.log",
            "manager.log",
            "systems_config.ini",
        ] {
            let from = if f == "systems_config.ini" {
                work.join("config/general").join(f)
            } else {
                work.join(f)
            };
            let _ = std::fs::copy(&from, args.out_dir.join(f));
        }
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(result)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), BenchError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| BenchError::io(format!("creating {}", dir.display()), e))?;
    }
    std::fs::write(path, bytes)
        .map_err(|e| BenchError::io(format!("writing {}", path.display()), e))
}

/// The body and where it came from.
fn body(args: &CompareArgs) -> Result<(Vec<u8>, BodyInfo), BenchError> {
    let (body, source) = match &args.body {
        Some(path) => (
            std::fs::read(path)
                .map_err(|e| BenchError::io(format!("reading {}", path.display()), e))?,
            path.display().to_string(),
        ),
        None => {
            let port = free_port()?;
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            let mut exporter = Owned::spawn(
                "node_exporter",
                &args.exporter_bin,
                &[format!("--web.listen-address={addr}").into()],
                &[],
                None,
            )?;
            let body = wait_for_200(addr, "/metrics", Duration::from_secs(15), &mut exporter)?;
            (
                body,
                format!(
                    "captured at run time from {} (GET /metrics, once)",
                    args.exporter_bin.display()
                ),
            )
        }
    };
    let text = String::from_utf8_lossy(&body);
    let exporter_version = text
        .lines()
        .find(|l| l.starts_with("node_exporter_build_info{"))
        .and_then(|l| {
            l.split(",version=\"")
                .nth(1)
                .or_else(|| l.split("{version=\"").nth(1))
        })
        .and_then(|v| v.split('"').next())
        .map(str::to_owned);
    let samples = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    let info = BodyInfo {
        source,
        bytes: body.len(),
        exporter_version,
        samples,
    };
    Ok((body, info))
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Scrapes Prometheus has made so far: `prometheus_target_interval_length_seconds_count` of its
/// own `/metrics` (one per scrape after each target's first), summed over intervals.
/// `u64::MAX` when it could not be read (three tries).
fn scrape_count(addr: SocketAddr) -> u64 {
    for _ in 0..3 {
        if let Ok((200, body)) = http_get(addr, "/metrics", Duration::from_secs(15)) {
            let n = String::from_utf8_lossy(&body)
                .lines()
                .filter(|l| l.starts_with("prometheus_target_interval_length_seconds_count"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>();
            return n as u64;
        }
    }
    u64::MAX
}

/// A measurement window starting `warmup` from now.
#[derive(Debug, Clone, Copy)]
struct Win {
    start: Instant,
    end: Instant,
}

fn window_after(warmup: Duration, measure: Duration) -> Win {
    let start = Instant::now() + warmup;
    Win {
        start,
        end: start + measure,
    }
}

/// CPU and memory of one process over a window.
#[derive(Debug, Clone, Default)]
struct Sampled {
    cpu_s: f64,
    rss_steady: u64,
    rss_peak: u64,
    threads: u64,
    threads_gone: usize,
}

/// Per process what was sampled, and each mark's `(start, end)` reading.
type Measured = (Vec<Sampled>, Vec<(u64, u64)>);

/// Wait for the window, then sample every process in `children` through it; `marks` (the
/// pollers' own counts: the manager's output length, Prometheus's scrape counter) is read at the
/// window's start and at its end.
fn measure(
    children: &mut [&mut Owned],
    window: Win,
    every: Duration,
    marks: &dyn Fn() -> Vec<u64>,
) -> Result<Measured, BenchError> {
    while Instant::now() < window.start {
        for c in children.iter_mut() {
            c.check_alive()?;
        }
        std::thread::sleep(
            window
                .start
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(500)),
        );
    }
    let pids: Vec<u32> = children.iter().map(|c| c.pid()).collect();
    let cpu0: Vec<_> = pids.iter().map(|&p| proc::thread_cpu_seconds(p)).collect();
    let marks0 = marks();
    let mut out = vec![Sampled::default(); pids.len()];
    let mut sums = vec![0u128; pids.len()];
    let mut n: u128 = 0;
    loop {
        for (i, &pid) in pids.iter().enumerate() {
            let m = proc::mem_status(pid).unwrap_or_default();
            sums[i] += u128::from(m.rss);
            out[i].rss_peak = out[i].rss_peak.max(m.hwm).max(m.rss);
            out[i].threads = out[i].threads.max(m.threads);
        }
        n += 1;
        let now = Instant::now();
        if now >= window.end {
            break;
        }
        std::thread::sleep(every.min(window.end - now));
    }
    let marks = marks0.into_iter().zip(marks()).collect();
    for (i, &pid) in pids.iter().enumerate() {
        let after = proc::thread_cpu_seconds(pid);
        let before: std::collections::HashMap<u32, f64> = cpu0[i].iter().copied().collect();
        out[i].cpu_s = after
            .iter()
            .map(|(tid, c)| c - before.get(tid).copied().unwrap_or(0.0))
            .sum();
        let alive: std::collections::HashSet<u32> = after.iter().map(|(t, _)| *t).collect();
        out[i].threads_gone = before.keys().filter(|t| !alive.contains(t)).count();
        out[i].rss_steady = u64::try_from(sums[i] / n.max(1)).unwrap_or(u64::MAX);
    }
    for c in children.iter_mut() {
        c.check_alive()?;
    }
    Ok((out, marks))
}

fn side(what: &str, version: String, s: &Sampled, polls: u64, args: &CompareArgs) -> Side {
    let measure = args.measure.as_secs_f64();
    let mut notes = Vec::new();
    if s.threads_gone > 0 {
        notes.push(format!(
            "{} threads ended during the window: their CPU since the window's start is not counted",
            s.threads_gone
        ));
    }
    Side {
        what: what.to_owned(),
        version,
        cpu_s: s.cpu_s,
        polls,
        expected_polls: args.targets as f64 * measure / args.period.as_secs_f64(),
        cpu_ms_per_poll: if polls > 0 {
            s.cpu_s * 1000.0 / polls as f64
        } else {
            0.0
        },
        cores: s.cpu_s / measure,
        rss_steady_bytes: s.rss_steady,
        rss_peak_bytes: s.rss_peak,
        threads: s.threads,
        failures: 0,
        notes,
    }
}

fn version_of(bin: &Path, flag: &str) -> String {
    std::process::Command::new(bin)
        .arg(flag)
        .output()
        .ok()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        })
        .unwrap_or_default()
}

/// The manager child and its output file.
struct Manager {
    child: Owned,
    output: PathBuf,
    version: String,
}

impl Manager {
    fn start(args: &CompareArgs, work: &Path, targets: &[SocketAddr]) -> Result<Self, BenchError> {
        let dir = work.join("config");
        let mut ini = String::with_capacity(targets.len() * 160);
        for (i, t) in targets.iter().enumerate() {
            let _ = write!(
                ini,
                "[bench_system_{i}]\nid = bench_system_{i}\nparent_id = GENERAL\n\
                 name = bench_{i}\nexporter_url = http://{t}/metrics\nmonitor_system = true\n\n"
            );
        }
        write(&dir.join("general/systems_config.ini"), ini.as_bytes())?;
        let output = work.join("manager.jsonl");
        let period = format!("{}", args.period.as_secs_f64());
        let child = Owned::spawn(
            "monitors-manager",
            &args.manager_bin,
            &[
                "--config-dir".into(),
                dir.into_os_string(),
                "--output".into(),
                output.clone().into_os_string(),
            ],
            &[("SYSTEM_MONITOR_PERIOD_SECONDS", period)],
            Some(&work.join("manager.log")),
        )?;
        Ok(Manager {
            child,
            output,
            version: version_of(&args.manager_bin, "--version"),
        })
    }

    /// Rounds are the lines the manager wrote in the window (`range`: the output's length at
    /// the window's start and end); each is checked to carry a `result`.
    fn finish(self, args: &CompareArgs, range: (u64, u64), s: Sampled) -> Result<Side, BenchError> {
        drop(self.child);
        let bytes = std::fs::read(&self.output)
            .map_err(|e| BenchError::io(format!("reading {}", self.output.display()), e))?;
        let end = usize::try_from(range.1).unwrap_or(0).min(bytes.len());
        let start = usize::try_from(range.0).unwrap_or(0).min(end);
        let (rounds, errors, other) = count_lines(&bytes, start, end);
        let mut side = side("monitors-manager", self.version, &s, rounds, args);
        side.failures = errors;
        if other > 0 {
            side.notes.push(format!(
                "{other} lines in the window were neither a system `result` nor an `error`"
            ));
        }
        Ok(side)
    }
}

/// Lines ending in `bytes[start..end]` (a line cut by `start` counts if it ends inside): (system
/// results, error envelopes, anything else).
fn count_lines(bytes: &[u8], start: usize, end: usize) -> (u64, u64, u64) {
    let mut from = start;
    // Back up to the beginning of a line cut by the window's start.
    while from > 0 && bytes.get(from - 1) != Some(&b'\n') {
        from -= 1;
    }
    let (mut ok, mut errors, mut other) = (0, 0, 0);
    for line in bytes[from..end].split(|b| *b == b'\n') {
        if line.is_empty() {
            continue;
        }
        // A line not ended by the window's end is not counted.
        let line_end = line.as_ptr() as usize - bytes.as_ptr() as usize + line.len();
        if line_end >= end && bytes.get(line_end) != Some(&b'\n') {
            continue;
        }
        match serde_json::from_slice::<serde_json::Value>(line) {
            Ok(v) if v["routing_key"] == "system" && v["body"].get("result").is_some() => ok += 1,
            Ok(v) if v["body"].get("error").is_some() => errors += 1,
            _ => other += 1,
        }
    }
    (ok, errors, other)
}

/// One fetch-only poller (`bench fetch-floor`) and its count file.
struct Floor {
    client: super::fetch::Client,
    child: Owned,
    count_file: PathBuf,
}

impl Floor {
    /// The floors (raw, hyper in the task, then reqwest) on `targets`.
    fn start_both(
        args: &CompareArgs,
        work: &Path,
        targets: &[SocketAddr],
    ) -> Result<Vec<Self>, BenchError> {
        let list: String = targets.iter().map(|t| format!("{t}\n")).collect();
        let targets_file = work.join("floor-targets.txt");
        write(&targets_file, list.as_bytes())?;
        let exe = std::env::current_exe()
            .map_err(|e| BenchError::io("locating the bench executable", e))?;
        [
            super::fetch::Client::Raw,
            super::fetch::Client::Hyper,
            super::fetch::Client::Http,
        ]
        .into_iter()
        .map(|client| {
            let count_file = work.join(format!("floor-{}.count", client.name()));
            let child = Owned::spawn(
                &format!("fetch-floor {}", client.name()),
                &exe,
                &[
                    "fetch-floor".into(),
                    "--client".into(),
                    client.name().into(),
                    "--targets-file".into(),
                    targets_file.clone().into_os_string(),
                    "--period".into(),
                    format!("{}", args.period.as_secs_f64()).into(),
                    "--count-file".into(),
                    count_file.clone().into_os_string(),
                ],
                &[],
                Some(&work.join(format!("floor-{}.log", client.name()))),
            )?;
            Ok(Floor {
                client,
                child,
                count_file,
            })
        })
        .collect()
    }

    /// The completed fetches so far (0 when the count file cannot be read yet).
    fn mark(count_file: &Path) -> u64 {
        super::fetch::read_counts(count_file).map_or(0, |(ok, _)| ok)
    }

    /// The side of this floor over the window `range` (its completed fetches at both edges).
    fn finish(self, args: &CompareArgs, range: (u64, u64), s: &Sampled) -> Side {
        let failed = super::fetch::read_counts(&self.count_file).map_or(0, |(_, f)| f);
        let mut side = side(
            &format!("fetch-floor {}", self.client.name()),
            match self.client {
                super::fetch::Client::Raw => "kept TCP connection, fixed request".to_owned(),
                super::fetch::Client::Http => "the manager's HTTP layer".to_owned(),
                super::fetch::Client::Hyper => {
                    "the manager's kept connection: hyper conn http1 in the task".to_owned()
                }
            },
            s,
            range.1.saturating_sub(range.0),
            args,
        );
        // Over the whole run, warm-up included (the count file keeps no history): 0 is 0 in the
        // window too.
        side.failures = failed;
        drop(self.child);
        side
    }
}

/// The Prometheus child.
struct Prometheus {
    child: Owned,
    addr: SocketAddr,
    version: String,
}

impl Prometheus {
    fn start(args: &CompareArgs, work: &Path, targets: &[SocketAddr]) -> Result<Self, BenchError> {
        let period_ms = args.period.as_millis().max(1);
        let keep = SYSTEM_METRICS.join("|");
        let mut yml = format!(
            "# Generated by `bench prometheus-compare`: the same targets as the manager's systems.\n\
             global:\n  scrape_interval: {period_ms}ms\n  scrape_timeout: {timeout}ms\n\
             scrape_configs:\n  - job_name: node\n    metrics_path: /metrics\n\
             \x20   metric_relabel_configs:\n      - source_labels: [__name__]\n\
             \x20       regex: '{keep}'\n        action: keep\n    static_configs:\n\
             \x20     - targets:\n",
            timeout = (period_ms * 8 / 10).max(1),
        );
        for t in targets {
            let _ = writeln!(yml, "          - '{t}'");
        }
        let config = work.join("prometheus.yml");
        write(&config, yml.as_bytes())?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
        let mut child = Owned::spawn(
            "prometheus",
            &args.prometheus_bin,
            &[
                OsString::from(format!("--config.file={}", config.display())),
                format!("--storage.tsdb.path={}", work.join("tsdb").display()).into(),
                format!("--web.listen-address={addr}").into(),
                "--log.level=warn".into(),
            ],
            &[],
            Some(&work.join("prometheus.log")),
        )?;
        wait_for_200(addr, "/-/ready", Duration::from_secs(30), &mut child)?;
        Ok(Prometheus {
            child,
            addr,
            version: version_of(&args.prometheus_bin, "--version"),
        })
    }

    /// A PromQL instant query at unix time `at`: the first result's value.
    fn query(&self, q: &str, at: f64) -> Result<Option<f64>, BenchError> {
        let path = format!("/api/v1/query?query={}&time={at:.3}", url_encode(q));
        let (status, body) = http_get(self.addr, &path, Duration::from_secs(10))?;
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| BenchError::Setup(format!("prometheus answered {status} to {q}: {e}")))?;
        Ok(v["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|s| s.parse().ok()))
    }

    /// Scrapes are the scrape counter's increase over the window (`range`); failures the `up`
    /// samples at 0 in it.
    fn finish(
        self,
        args: &CompareArgs,
        range: (u64, u64),
        s: Sampled,
    ) -> Result<(Side, Option<f64>), BenchError> {
        let clock = Clock::now();
        let end = clock.to_unix_ms(Instant::now()) as f64 / 1000.0;
        let window = format!("{}ms", args.measure.as_millis());
        let down = self
            .query(
                &format!("sum(count_over_time(up[{window}])) - sum(sum_over_time(up[{window}]))"),
                end,
            )
            .ok()
            .flatten()
            .unwrap_or(0.0);
        let kept = self.query("avg(scrape_samples_post_metric_relabeling)", end)?;
        let mut note = None;
        let scrapes = if range.0 == u64::MAX || range.1 == u64::MAX {
            // The counter could not be read at one end: count `up` samples instead (one per
            // scrape; a scrape at each edge of the window may fall either side).
            note = Some(
                "Prometheus's scrape counter could not be read: scrapes counted as `up` samples                  in the window"
                    .to_owned(),
            );
            self.query(&format!("sum(count_over_time(up[{window}]))"), end)?
                .unwrap_or(0.0) as u64
        } else {
            range.1.saturating_sub(range.0)
        };
        let mut side = side("prometheus", self.version.clone(), &s, scrapes, args);
        side.notes.extend(note);
        side.failures = down.max(0.0) as u64;
        drop(self);
        Ok((side, kept))
    }
}

/// The comparison as Markdown.
pub(crate) fn markdown(r: &CompareResult) -> String {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} targets every {} s, {} s warm-up, {} s measured ({}); body: {} bytes, {} samples, \
         node_exporter {} ({}).\n",
        r.targets,
        r.period_s,
        r.warmup_s,
        r.measure_s,
        if r.mode == "together" {
            "both at once, one window"
        } else {
            "one after the other"
        },
        r.body.bytes,
        r.body.samples,
        r.body.exporter_version.as_deref().unwrap_or("?"),
        r.body.source
    );
    let _ = writeln!(
        out,
        "| | polls in window (expected) | CPU s | cores | CPU per round / scrape | RSS steady / peak MiB | threads | failed polls |"
    );
    let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|--:|--:|");
    for s in [&r.manager, &r.prometheus].into_iter().chain(&r.floors) {
        let _ = writeln!(
            out,
            "| {} ({}) | {} ({:.0}) | {:.3} | {:.3} | {:.3} ms | {:.1} / {:.1} | {} | {} |",
            s.what,
            s.version,
            s.polls,
            s.expected_polls,
            s.cpu_s,
            s.cores,
            s.cpu_ms_per_poll,
            mib(s.rss_steady_bytes),
            mib(s.rss_peak_bytes),
            s.threads,
            s.failures
        );
    }
    let _ = writeln!(
        out,
        "\nManager CPU per round / Prometheus CPU per scrape: **{:.3}×** (target ≤ 0.25×: {}). \
         Stand-in CPU over the run: {:.2} s.",
        r.ratio,
        if r.ratio > 0.0 && r.ratio <= 0.25 {
            "met"
        } else {
            "not met"
        },
        r.stand_in_cpu_s
    );
    if let Some(k) = r.prometheus_samples_kept_per_scrape {
        let _ = writeln!(
            out,
            "Prometheus kept {k:.0} samples per scrape after `metric_relabel_configs`."
        );
    }
    for f in &r.floors {
        if r.prometheus.cpu_ms_per_poll > 0.0 {
            let _ = writeln!(
                out,
                "{} (fetch only, body dropped) / Prometheus: {:.3}×; manager / it: {:.2}×.",
                f.what,
                f.cpu_ms_per_poll / r.prometheus.cpu_ms_per_poll,
                if f.cpu_ms_per_poll > 0.0 {
                    r.manager.cpu_ms_per_poll / f.cpu_ms_per_poll
                } else {
                    0.0
                }
            );
        }
    }
    for s in [&r.manager, &r.prometheus].into_iter().chain(&r.floors) {
        for n in &s.notes {
            let _ = writeln!(out, "- {}: {n}", s.what);
        }
    }
    out
}
