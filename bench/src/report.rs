//! `results.json`, the Markdown table (`results.md`) and the plot (`plot.svg`: RSS and p99
//! lateness against monitorables, one line per approach).

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use super::run::RunResult;
use super::suite::SuiteResults;
use super::BenchError;

const MIB: f64 = 1024.0 * 1024.0;

/// Write `results.json`.
pub(crate) fn write_json(results: &SuiteResults, out_dir: &Path) -> Result<(), BenchError> {
    let json = serde_json::to_string_pretty(results)
        .map_err(|e| BenchError::Setup(format!("encoding results: {e}")))?;
    let path = out_dir.join("results.json");
    std::fs::write(&path, json)
        .map_err(|e| BenchError::io(format!("writing {}", path.display()), e))
}

/// Write `results.json`, `results.md` and `plot.svg`.
pub(crate) fn write_all(results: &SuiteResults, out_dir: &Path) -> Result<(), BenchError> {
    write_json(results, out_dir)?;
    let md_path = out_dir.join("results.md");
    std::fs::write(&md_path, markdown(results))
        .map_err(|e| BenchError::io(format!("writing {}", md_path.display()), e))?;
    plot(results, &out_dir.join("plot.svg"))
}

/// Re-render from a `results.json`.
pub(crate) fn rerender(results: &Path, out_dir: &Path) -> Result<(), BenchError> {
    let text = std::fs::read_to_string(results)
        .map_err(|e| BenchError::io(format!("reading {}", results.display()), e))?;
    let parsed: SuiteResults = serde_json::from_str(&text).map_err(|e| {
        BenchError::Usage(format!("{}: not a results file: {e}", results.display()))
    })?;
    std::fs::create_dir_all(out_dir)
        .map_err(|e| BenchError::io(format!("creating {}", out_dir.display()), e))?;
    std::fs::write(out_dir.join("results.md"), markdown(&parsed))
        .map_err(|e| BenchError::io("writing results.md", e))?;
    plot(&parsed, &out_dir.join("plot.svg"))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB
}

/// The table and the target checks.
pub(crate) fn markdown(r: &SuiteResults) -> String {
    let mut s = String::new();
    let m = &r.machine;
    let _ = writeln!(
        s,
        "Machine: {} × {}, {:.1} GiB RAM, Linux {}, {}. Period {} s, warm-up {} s, measured {} s \
         per run; exporter stand-in: {} bytes per response, {:.0} req/s in the load check \
         ({:.1} µs of server CPU per request). Suite duration {:.0} s.\n",
        m.nproc,
        m.cpu_model,
        m.mem_total_bytes as f64 / (1024.0 * MIB),
        m.kernel,
        m.rustc,
        r.period_s,
        r.warmup_s,
        r.measure_s,
        r.fixture_bytes,
        r.server_check.requests_per_s,
        r.server_check.server_cpu_us_per_request,
        r.duration_s
    );
    s.push_str(
        "| approach | bus | N | running | rounds/s (expected) | publishes/s | CPU s / 1k rounds | \
         cores | RSS steady MiB | RSS peak MiB | KiB / monitorable | lateness p50 / p99 / max ms | \
         errors | procs / threads | server cores |\n",
    );
    s.push_str("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    for run in &r.runs {
        if let Some(reason) = &run.skipped {
            let _ = writeln!(
                s,
                "| {} | {} | {} | – | skipped: {} | | | | | | | | | | |",
                run.approach,
                run.bus,
                run.size,
                reason.replace('|', "/")
            );
            continue;
        }
        let expected_per_s = run.expected_rounds / run.measure_s.max(1e-9);
        let errors = run.error_envelopes + run.round_errors + run.publish_failures;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.1} ({:.1}) | {:.1} | {:.3} | {:.2} | {:.1} | {:.1} | {:.1} | \
             {:.2} / {:.2} / {:.1} | {} | {} / {} | {} |",
            run.approach,
            run.bus,
            run.size,
            run.running,
            run.rounds_per_s,
            expected_per_s,
            run.publishes_per_s,
            run.cpu_s_per_1000_rounds,
            run.cpu_cores,
            mib(run.rss_steady_bytes),
            mib(run.rss_peak_bytes),
            run.rss_per_monitorable_bytes / 1024.0,
            run.lateness.p50_ms,
            run.lateness.p99_ms,
            run.lateness.max_ms,
            errors,
            run.os_processes,
            run.os_threads,
            run.server_cpu_cores
                .map_or("–".to_owned(), |c| format!("{c:.2}")),
        );
    }
    s.push('\n');
    s.push_str(&targets(r));
    let notes: Vec<String> = r
        .runs
        .iter()
        .flat_map(|run| {
            run.notes
                .iter()
                .map(move |n| format!("- {} / {} / {}: {}", run.approach, run.bus, run.size, n))
        })
        .collect();
    if !notes.is_empty() {
        s.push_str("\nNotes from the runs:\n\n");
        for n in notes {
            s.push_str(&n);
            s.push('\n');
        }
    }
    s
}

fn find<'a>(r: &'a SuiteResults, approach: &str, bus: &str, size: usize) -> Option<&'a RunResult> {
    r.runs
        .iter()
        .find(|x| x.approach == approach && x.bus == bus && x.size == size && x.skipped.is_none())
}

/// The targets for the manager at the largest size, per bus.
fn targets(r: &SuiteResults) -> String {
    let mut s = String::new();
    let Some(size) = r
        .runs
        .iter()
        .filter(|x| x.approach == "manager" && x.skipped.is_none())
        .map(|x| x.size)
        .max()
    else {
        return s;
    };
    let _ = writeln!(
        s,
        "Targets for the manager at {size} system monitors, {} s period, {} cores:\n",
        r.period_s, r.machine.nproc
    );
    s.push_str("| bus | RSS ≤ 128 MiB (steady / peak) | lateness p99 ≤ 100 ms | CPU per round ≤ 1.5× bare loop |\n|---|---|---|---|\n");
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    for bus in ["memory", "rabbitmq"] {
        let Some(m) = find(r, "manager", bus, size) else {
            continue;
        };
        let rss_ok = m.rss_peak_bytes as f64 <= 128.0 * MIB;
        let p99_ok = m.lateness.p99_ms <= 100.0;
        let cpu = match find(r, "bare", bus, size) {
            Some(b) if b.cpu_s_per_1000_rounds > 0.0 => {
                let ratio = m.cpu_s_per_1000_rounds / b.cpu_s_per_1000_rounds;
                format!(
                    "{}: {:.2}× ({:.3} vs {:.3} CPU s / 1k rounds)",
                    verdict(ratio <= 1.5),
                    ratio,
                    m.cpu_s_per_1000_rounds,
                    b.cpu_s_per_1000_rounds
                )
            }
            _ => "no bare-loop run on this bus".to_owned(),
        };
        let _ = writeln!(
            s,
            "| {bus} | {}: {:.1} / {:.1} MiB | {}: {:.2} ms | {cpu} |",
            verdict(rss_ok),
            mib(m.rss_steady_bytes),
            mib(m.rss_peak_bytes),
            verdict(p99_ok),
            m.lateness.p99_ms,
        );
    }
    s
}

/// One line of the plot: a (approach, bus) pair.
fn series(r: &SuiteResults) -> Vec<(String, Vec<&RunResult>)> {
    let mut out: Vec<(String, Vec<&RunResult>)> = Vec::new();
    for run in r
        .runs
        .iter()
        .filter(|x| x.skipped.is_none() && x.running > 0)
    {
        let name = if run.bus == "memory" {
            run.approach.clone()
        } else {
            format!("{} ({})", run.approach, run.bus)
        };
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => v.push(run),
            None => out.push((name, vec![run])),
        }
    }
    for (_, v) in &mut out {
        v.sort_by_key(|x| x.size);
    }
    out
}

fn plot_err(e: impl std::fmt::Display) -> BenchError {
    BenchError::Setup(format!("drawing the plot: {e}"))
}

/// `plot.svg`: steady RSS (MiB) and p99 lateness (ms) against monitorables, log-log.
pub(crate) fn plot(r: &SuiteResults, path: &Path) -> Result<(), BenchError> {
    let all = series(r);
    let root = SVGBackend::new(path, (1200, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let (left, right) = root.split_horizontally(600);
    let max_n = r.runs.iter().map(|x| x.size).max().unwrap_or(10).max(10) as f64;
    let min_n = r.runs.iter().map(|x| x.size).min().unwrap_or(1).max(1) as f64;
    let x_range = (min_n / 2.0)..(max_n * 2.0);
    let palette = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    type Getter = fn(&RunResult) -> f64;
    let panels: [(&str, &str, Getter, _); 2] = [
        (
            "Steady RSS (all processes)",
            "MiB",
            (|x: &RunResult| x.rss_steady_bytes as f64 / MIB) as Getter,
            left,
        ),
        (
            "Schedule lateness p99",
            "ms",
            (|x: &RunResult| x.lateness.p99_ms) as Getter,
            right,
        ),
    ];
    for (title, unit, get, area) in panels {
        let values: Vec<f64> = all
            .iter()
            .flat_map(|(_, v)| v.iter().map(|x| get(x)))
            .filter(|v| v.is_finite() && *v > 0.0)
            .collect();
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(0.0, f64::max);
        let (lo, hi) = if lo.is_finite() && hi > 0.0 {
            (lo / 2.0, hi * 2.0)
        } else {
            (0.01, 1.0)
        };
        let floor = lo;
        let mut chart = ChartBuilder::on(&area)
            .caption(title, ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x_range.clone().log_scale(), (lo..hi).log_scale())
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("monitorables")
            .y_desc(unit)
            .draw()
            .map_err(plot_err)?;
        for (i, (name, runs)) in all.iter().enumerate() {
            let color = palette[i % palette.len()];
            let points: Vec<(f64, f64)> = runs
                .iter()
                .map(|x| (x.size as f64, get(x).max(floor)))
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(plot_err)?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart
                .draw_series(
                    points
                        .into_iter()
                        .map(|p| Circle::new(p, 3, color.filled())),
                )
                .map_err(plot_err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(plot_err)?;
    }
    root.present().map_err(plot_err)
}
