//! `monitors-manager check`: read a PANIC config folder (or one file) and say what would run and
//! what is wrong, polling nothing.
//!
//! Every `.ini` file is read as the embedded mode reads it ([`config_dir::parse_ini`]), turned
//! into its config message, and handed to the same planners the manager runs
//! ([`monitor_strategies::registry`]), so `check` and a run agree on what starts and on every
//! section a planner rejects. Around that, `check` reports what a run would only log or silently
//! get wrong, each problem with its file, line (the section header, or the field's own line, from
//! the ini text) and field:
//!
//! * a file whose path is no routing key PANIC's monitors read (`general/<type>.ini`,
//!   `chains/<base>/<sub>/<type>.ini`), or a key no monitor type reads; PANIC's channels and alerts
//!   configs (`channels/*.ini`, `*/alerts_config.ini`) are listed as ignored, not errors;
//! * ini syntax errors, and a section or a field given twice in one file (Python's `configparser`,
//!   which PANIC uses, refuses such files; the reader here merges them, later values winning);
//! * a field a planner needs that is missing or unusable (the planners' own errors);
//! * a non-blank `*_url` / `*_urls` field that is not an absolute `http`, `https`, `ws` or `wss`
//!   URL (PANIC would start the monitor and report error 5009 every round);
//! * an `id` used by two sections (anywhere in the folder), and two monitors of one planner with
//!   one id (the manager would keep the first).
//!
//! Non-`.ini` files are listed as ignored.

use std::collections::BTreeMap;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use monitor_core::{ConfigError, ConfigKey, ConfigMessage, ConfigType, PeriodGroup, Planner};

use crate::config_dir::{self, ConfigDirError};

/// One problem of a config folder.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// The file, relative to the checked folder.
    pub file: PathBuf,
    /// 1-based line: the field's own line, else its section's header; `None` for the whole file.
    pub line: Option<usize>,
    /// The section, if the problem is in one.
    pub section: Option<String>,
    /// The field, if the problem is about one.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ":")?;
        if let Some(section) = &self.section {
            write!(f, " section `{section}`:")?;
        }
        if let Some(field) = &self.field {
            write!(f, " field `{field}`:")?;
        }
        write!(f, " {}", self.message)
    }
}

/// One monitor a run would start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// The planner (monitor type) that plans it.
    pub planner: &'static str,
    /// PANIC's component name.
    pub component_name: String,
    /// Its period group.
    pub group: PeriodGroup,
    /// What it polls (URLs, a repository, a chain).
    pub target: String,
    /// The file, relative to the checked folder.
    pub file: PathBuf,
    /// Its section's header line, when it has a section of its own.
    pub line: Option<usize>,
}

/// A file a run does not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    /// The file, relative to the checked folder.
    pub file: PathBuf,
    /// Why it is not read.
    pub reason: String,
}

/// What `check` found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The folder checked (or the folder the checked file's routing key is relative to).
    pub root: PathBuf,
    /// Config files read.
    pub files: usize,
    /// Monitors a run would start, in file and plan order.
    pub monitors: Vec<Planned>,
    /// Every problem, in file order.
    pub problems: Vec<Problem>,
    /// Files a run does not read.
    pub ignored: Vec<Ignored>,
}

impl Report {
    /// Whether nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The report as printed: monitors per type (with their period), each with its target and
    /// place, the ignored files, then every problem.
    pub fn render(&self, period: impl Fn(PeriodGroup) -> Duration) -> String {
        let mut out = format!(
            "{}: {} config file{}, {} monitor{}\n",
            self.root.display(),
            self.files,
            plural(self.files),
            self.monitors.len(),
            plural(self.monitors.len())
        );
        let mut by_planner: BTreeMap<&str, Vec<&Planned>> = BTreeMap::new();
        for m in &self.monitors {
            by_planner.entry(m.planner).or_default().push(m);
        }
        for (planner, monitors) in &by_planner {
            let periods: Vec<String> = {
                let mut p: Vec<Duration> = monitors.iter().map(|m| period(m.group)).collect();
                p.sort();
                p.dedup();
                p.iter().map(|d| format!("{} s", d.as_secs_f64())).collect()
            };
            out.push_str(&format!(
                "\n{planner}: {} monitor{}, every {}\n",
                monitors.len(),
                plural(monitors.len()),
                periods.join(" / ")
            ));
            for m in monitors {
                let place = match m.line {
                    Some(line) => format!("{}:{line}", m.file.display()),
                    None => m.file.display().to_string(),
                };
                out.push_str(&format!(
                    "  {}  {}  ({place})\n",
                    m.component_name, m.target
                ));
            }
        }
        if !self.ignored.is_empty() {
            out.push('\n');
            for i in &self.ignored {
                out.push_str(&format!("ignored: {}: {}\n", i.file.display(), i.reason));
            }
        }
        if self.problems.is_empty() {
            out.push_str("\nno problems\n");
        } else {
            out.push_str(&format!(
                "\n{} problem{}:\n",
                self.problems.len(),
                plural(self.problems.len())
            ));
            for p in &self.problems {
                out.push_str(&format!("  {p}\n"));
            }
        }
        out
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Where each section and field of an ini text is (1-based lines), as `configparser` reads it.
#[derive(Debug, Default)]
struct IniLines {
    /// Per section: its header line and its fields' lines (lower-cased names).
    sections: BTreeMap<String, (usize, BTreeMap<String, usize>)>,
    /// `DEFAULT`'s fields (inherited by every section).
    defaults: BTreeMap<String, usize>,
    /// Sections and fields given twice: (section, field, first line, second line).
    duplicates: Vec<(String, Option<String>, usize, usize)>,
}

impl IniLines {
    fn scan(text: &str) -> Self {
        let mut lines = IniLines::default();
        let mut current: Option<String> = None;
        // The fields of the current header's block (a repeated section starts a new block).
        let mut block: BTreeMap<String, usize> = BTreeMap::new();
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let t = raw.trim();
            if t.is_empty() || t.starts_with(';') || t.starts_with('#') {
                continue;
            }
            if t.starts_with('[') && t.ends_with(']') && t.len() >= 2 {
                let name = t[1..t.len() - 1].trim().to_owned();
                if name != monitor_core::config::DEFAULT_SECTION {
                    match lines.sections.get_mut(&name) {
                        // The reader merges the two, later values winning: point at the later.
                        Some((header, _)) => {
                            lines.duplicates.push((name.clone(), None, *header, n));
                            *header = n;
                        }
                        None => {
                            lines.sections.insert(name.clone(), (n, BTreeMap::new()));
                        }
                    }
                }
                block.clear();
                current = Some(name);
                continue;
            }
            // An indented line continues the previous value.
            if raw.starts_with([' ', '\t']) {
                continue;
            }
            let Some(at) = t.find(['=', ':']) else {
                continue;
            };
            let key = t[..at].trim().to_lowercase();
            let Some(section) = &current else { continue };
            if let Some(first) = block.insert(key.clone(), n) {
                lines
                    .duplicates
                    .push((section.clone(), Some(key.clone()), first, n));
            }
            let fields = if section == monitor_core::config::DEFAULT_SECTION {
                &mut lines.defaults
            } else if let Some((_, fields)) = lines.sections.get_mut(section) {
                fields
            } else {
                continue;
            };
            fields.insert(key, n);
        }
        lines
    }

    fn header(&self, section: &str) -> Option<usize> {
        self.sections.get(section.trim()).map(|(line, _)| *line)
    }

    /// The field's line in `section` (or in `DEFAULT`), else the section's header.
    fn field(&self, section: &str, field: &str) -> Option<usize> {
        self.sections
            .get(section.trim())
            .and_then(|(_, fields)| fields.get(field))
            .or_else(|| self.defaults.get(field))
            .copied()
            .or_else(|| self.header(section))
    }
}

/// Check every file below `root`. `Err` only when the folder itself cannot be read.
pub fn check_dir(root: &Path, planners: &[Arc<dyn Planner>]) -> Result<Report, ConfigDirError> {
    let mut report = Report {
        root: root.to_owned(),
        ..Report::default()
    };
    let mut checker = Checker::default();
    for file in config_dir::files_below(root, true)? {
        checker.file(root, &file, planners, &mut report);
    }
    checker.finish(&mut report);
    Ok(report)
}

/// Check one file. Its routing key is its path from the nearest folder above it that makes it a
/// config key (`…/general/systems_config.ini` → `general.systems_config`).
pub fn check_file(file: &Path, planners: &[Arc<dyn Planner>]) -> Report {
    let root = file
        .ancestors()
        .skip(1)
        .find(|dir| {
            config_dir::routing_key_for(dir, file)
                .is_some_and(|key| ConfigKey::parse(&key).is_ok() || key.starts_with("channels."))
        })
        .or_else(|| file.parent())
        .unwrap_or_else(|| Path::new(""))
        .to_owned();
    let mut report = Report {
        root: root.clone(),
        ..Report::default()
    };
    let mut checker = Checker::default();
    checker.file(&root, file, planners, &mut report);
    checker.finish(&mut report);
    report
}

/// State kept across the files of one check.
#[derive(Debug, Default)]
struct Checker {
    /// Every section's `id`: where it was first seen (file, line, section).
    ids: BTreeMap<String, (PathBuf, Option<usize>, String)>,
}

impl Checker {
    fn file(
        &mut self,
        root: &Path,
        file: &Path,
        planners: &[Arc<dyn Planner>],
        report: &mut Report,
    ) {
        let shown = file.strip_prefix(root).unwrap_or(file).to_owned();
        let problem = |line: Option<usize>,
                       section: Option<&str>,
                       field: Option<&str>,
                       message: String| Problem {
            file: shown.clone(),
            line,
            section: section.map(str::to_owned),
            field: field.map(str::to_owned),
            message,
        };
        let Some(routing_key) = config_dir::routing_key_for(root, file) else {
            report.ignored.push(Ignored {
                file: shown.clone(),
                reason: "not an .ini file".to_owned(),
            });
            return;
        };
        let key = match ConfigKey::parse(&routing_key) {
            Ok(key) => key,
            Err(_) if routing_key.starts_with("channels.") => {
                report.ignored.push(Ignored {
                    file: shown.clone(),
                    reason: "PANIC's channels config (read by the alerters, not the monitors)"
                        .to_owned(),
                });
                return;
            }
            Err(_) => {
                report.problems.push(problem(
                    None,
                    None,
                    None,
                    format!(
                        "unknown config file: `{routing_key}` is not a routing key PANIC's \
                         monitors read (general/<type>.ini or chains/<base>/<sub>/<type>.ini, \
                         <type> one of systems_config, nodes_config, evm_nodes_config, \
                         github_repos_config, dockerhub_repos_config)"
                    ),
                ));
                return;
            }
        };
        if key.config_type == ConfigType::AlertsConfig {
            report.ignored.push(Ignored {
                file: shown.clone(),
                reason: "PANIC's alerts config (read by the alerters, not the monitors)".to_owned(),
            });
            return;
        }
        let accepting: Vec<&Arc<dyn Planner>> =
            planners.iter().filter(|p| p.accepts(&key)).collect();
        if accepting.is_empty() {
            report.problems.push(problem(
                None,
                None,
                None,
                format!("unknown routing key `{routing_key}`: no monitor type reads it"),
            ));
            return;
        }
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) => {
                report
                    .problems
                    .push(problem(None, None, None, format!("cannot read: {e}")));
                return;
            }
        };
        report.files += 1;
        let body = match config_dir::parse_ini(file, &text) {
            Ok(body) => body,
            Err(ConfigDirError::Syntax { line, msg, .. }) => {
                report.problems.push(problem(
                    Some(line),
                    None,
                    None,
                    format!("not valid ini: {msg}"),
                ));
                return;
            }
            Err(e) => {
                report
                    .problems
                    .push(problem(None, None, None, e.to_string()));
                return;
            }
        };
        let lines = IniLines::scan(&text);
        for (section, field, first, again) in &lines.duplicates {
            let what = if field.is_some() {
                "field given twice (first at line {first}): the later value is used"
            } else {
                "section given twice (first at line {first}): merged, later values winning"
            };
            report.problems.push(problem(
                Some(*again),
                Some(section),
                field.as_deref(),
                format!(
                    "{}; PANIC's configparser refuses such a file",
                    what.replace("{first}", &first.to_string())
                ),
            ));
        }
        let message = match ConfigMessage::parse(&routing_key, body.to_string().as_bytes()) {
            Ok(m) => m,
            Err(e) => {
                report
                    .problems
                    .push(problem(None, None, None, e.to_string()));
                return;
            }
        };
        for rejected in &message.rejected {
            report
                .problems
                .push(config_problem(&shown, &lines, rejected));
        }
        for section in &message.sections {
            // URLs.
            for (field, value) in &section.fields {
                if !(field.ends_with("_url") || field.ends_with("_urls")) {
                    continue;
                }
                let items: Vec<&str> = if field.ends_with("_urls") {
                    value.split(',').map(str::trim).collect()
                } else {
                    vec![value.trim()]
                };
                for item in items.into_iter().filter(|i| !i.is_empty()) {
                    if let Err(why) = check_url(item) {
                        report.problems.push(problem(
                            lines.field(&section.id, field),
                            Some(&section.id),
                            Some(field),
                            format!("`{item}` is not a URL: {why}"),
                        ));
                    }
                }
            }
            // Ids across the folder.
            if let Some(id) = section
                .opt_str("id")
                .map(str::trim)
                .filter(|i| !i.is_empty())
            {
                let line = lines.field(&section.id, "id");
                match self.ids.get(id) {
                    Some((file0, line0, section0)) => {
                        let at = match line0 {
                            Some(l) => format!("{}:{l}", file0.display()),
                            None => file0.display().to_string(),
                        };
                        report.problems.push(problem(
                            line,
                            Some(&section.id),
                            Some("id"),
                            format!("duplicate id `{id}` (also section `{section0}` at {at})"),
                        ));
                    }
                    None => {
                        self.ids
                            .insert(id.to_owned(), (shown.clone(), line, section.id.clone()));
                    }
                }
            }
        }
        for planner in accepting {
            let plan = match std::panic::catch_unwind(AssertUnwindSafe(|| planner.plan(&message))) {
                Ok(plan) => plan,
                Err(_) => {
                    report.problems.push(problem(
                        None,
                        None,
                        None,
                        format!("the {} planner failed on this file (a bug)", planner.name()),
                    ));
                    continue;
                }
            };
            for error in &plan.errors {
                report.problems.push(config_problem(&shown, &lines, error));
            }
            let mut seen = std::collections::BTreeSet::new();
            for spec in plan.specs {
                let section = message.sections.iter().find(|s| s.id == spec.id);
                let line = section.and_then(|s| lines.header(&s.id));
                if !seen.insert(spec.id.clone()) {
                    report.problems.push(problem(
                        line,
                        section.map(|s| s.id.as_str()),
                        None,
                        format!(
                            "two {} monitors with id `{}`: a run keeps the first",
                            planner.name(),
                            spec.id
                        ),
                    ));
                    continue;
                }
                report.monitors.push(Planned {
                    planner: planner.name(),
                    target: target(planner.name(), section, &key),
                    component_name: spec.component_name,
                    group: spec.group,
                    file: shown.clone(),
                    line,
                });
            }
        }
    }

    fn finish(&mut self, report: &mut Report) {
        report
            .problems
            .sort_by(|a, b| (&a.file, a.line.unwrap_or(0)).cmp(&(&b.file, b.line.unwrap_or(0))));
    }
}

/// A config error of a planner (or of the message) as a problem with its line.
fn config_problem(file: &Path, lines: &IniLines, error: &ConfigError) -> Problem {
    let (line, section, field, message) = match error {
        ConfigError::MissingField { section, field, .. } => (
            lines.header(section),
            Some(section.clone()),
            Some(field.clone()),
            "missing".to_owned(),
        ),
        ConfigError::BadField {
            section,
            field,
            problem,
            ..
        } => (
            lines.field(section, field),
            Some(section.clone()),
            Some(field.clone()),
            problem.clone(),
        ),
        ConfigError::BadSection {
            section, problem, ..
        } => (
            lines.header(section),
            Some(section.clone()),
            None,
            problem.clone(),
        ),
        other => (None, None, None, other.to_string()),
    };
    Problem {
        file: file.to_owned(),
        line,
        section,
        field,
        message,
    }
}

/// `Ok` for an absolute `http`, `https`, `ws` or `wss` URL with a host.
fn check_url(s: &str) -> Result<(), String> {
    let url = url::Url::parse(s).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "http" | "https" | "ws" | "wss") {
        return Err(format!(
            "scheme `{}` (expected http, https, ws or wss)",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("no host".to_owned());
    }
    Ok(())
}

/// What a planned monitor polls, from its section (the planners' names are data here: this is
/// the binary, which knows the monitor types).
fn target(planner: &str, section: Option<&monitor_core::Section>, key: &ConfigKey) -> String {
    let Some(section) = section else {
        return format!("chain {}", key.sub_chain);
    };
    let get = |f: &str| {
        section
            .opt_str(f)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let fields: &[&str] = match planner {
        "systems" => &["exporter_url"],
        "github" => &["repo_name"],
        "evm_nodes" => &["node_http_url"],
        "chainlink_nodes" => &["node_prometheus_urls"],
        "cosmos_nodes" => &["tendermint_rpc_url", "cosmos_rest_url", "prometheus_url"],
        "substrate_nodes" => &["node_ws_url"],
        "dockerhub" => {
            return match (get("repo_namespace"), get("repo_name")) {
                (Some(ns), Some(name)) => format!("{ns}/{name}"),
                _ => "?".to_owned(),
            }
        }
        _ => &[],
    };
    let found: Vec<String> = fields.iter().filter_map(|f| get(f)).collect();
    if found.is_empty() {
        // Anything else: its URLs, in field order.
        let urls: Vec<String> = section
            .fields
            .iter()
            .filter(|(k, v)| k.ends_with("_url") && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_owned())
            .collect();
        if urls.is_empty() {
            "?".to_owned()
        } else {
            urls.join(" ")
        }
    } else {
        found.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_sections_fields_and_duplicates() {
        let text = "; c\n[DEFAULT]\nmonitor_system = true\n\n[a]\nID = a\nurl = x\n  continued\n[b]\nid = b\nid = c\n[a]\nurl = y\n";
        let l = IniLines::scan(text);
        // `a` again at line 12: merged, the later lines win (as the reader keeps later values).
        assert_eq!(l.header("a"), Some(12));
        assert_eq!(l.field("a", "id"), Some(6));
        assert_eq!(l.field("a", "url"), Some(13));
        assert_eq!(l.field("a", "monitor_system"), Some(3));
        assert_eq!(l.field("a", "missing"), Some(12));
        assert_eq!(l.field("b", "id"), Some(11));
        // A field repeated in a repeated section's block is not a second duplicate.
        assert_eq!(
            l.duplicates,
            vec![
                ("b".to_owned(), Some("id".to_owned()), 10, 11),
                ("a".to_owned(), None, 5, 12)
            ]
        );
    }

    #[test]
    fn urls() {
        assert!(check_url("http://127.0.0.1:9100/metrics").is_ok());
        assert!(check_url("wss://rpc.polkadot.io").is_ok());
        assert!(check_url("127.0.0.1:9100/metrics").is_err());
        assert!(check_url("htp//x").is_err());
        assert!(check_url("ftp://x/y").is_err());
    }
}
