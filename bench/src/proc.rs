//! Reading `/proc`: resident memory (`VmRSS`, `VmHWM`, `RssAnon`, `Threads` of
//! `/proc/<pid>/status`) and CPU time (`utime + stime` of `/proc/<pid>/stat`), and the machine's
//! limits (`ulimit -u`, `pid_max`, `threads-max`, `MemAvailable`).

use std::fs;

/// Linux reports `/proc/<pid>/stat` times in `USER_HZ` clock ticks, 100 per second on every
/// mainstream architecture (the kernel's ABI; `sysconf(_SC_CLK_TCK)` would need `unsafe`).
const USER_HZ: f64 = 100.0;

/// Memory figures of one process, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct MemStatus {
    /// `VmRSS`: resident now.
    pub(crate) rss: u64,
    /// `VmHWM`: peak resident.
    pub(crate) hwm: u64,
    /// `RssAnon`: resident anonymous memory (heap and stacks; not the shared binary pages).
    pub(crate) rss_anon: u64,
    /// `Threads`.
    pub(crate) threads: u64,
}

impl MemStatus {
    /// Field-wise sum (totals across processes).
    pub(crate) fn add(&mut self, other: MemStatus) {
        self.rss += other.rss;
        self.hwm += other.hwm;
        self.rss_anon += other.rss_anon;
        self.threads += other.threads;
    }
}

/// `/proc/<pid>/status` memory figures; `None` if the process is gone or the file is unreadable.
pub(crate) fn mem_status(pid: u32) -> Option<MemStatus> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(parse_status(&text))
}

fn parse_status(text: &str) -> MemStatus {
    let mut out = MemStatus::default();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let number = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        match name {
            "VmRSS" => out.rss = number * 1024,
            "VmHWM" => out.hwm = number * 1024,
            "RssAnon" => out.rss_anon = number * 1024,
            "Threads" => out.threads = number,
            _ => {}
        }
    }
    out
}

/// CPU seconds a process's live threads used so far; `None` if it is gone.
///
/// Read from `/proc/<pid>/task/*/schedstat` (the scheduler's nanosecond run time of each thread),
/// not from `utime + stime` of `/proc/<pid>/stat`: those are sampled at the timer tick, and a
/// process that wakes on a timer, works for a millisecond and sleeps again before the next tick
/// is systematically not charged (a `bench worker` read 0 ticks after 4.6 ms on the CPU). Threads
/// that exited are not counted; the harness's threads live for the whole window. Falls back to
/// `/proc/<pid>/stat` where schedstat is not available.
pub(crate) fn cpu_seconds(pid: u32) -> Option<f64> {
    match schedstat_seconds(pid) {
        Some(s) => Some(s),
        None => {
            let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            parse_stat_cpu(&text)
        }
    }
}

/// CPU seconds of each live thread of `pid` (from schedstat), keyed by thread id.
pub(crate) fn thread_cpu_seconds(pid: u32) -> Vec<(u32, f64)> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.filter_map(|entry| {
        let entry = entry.ok()?;
        let tid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let text = fs::read_to_string(entry.path().join("schedstat")).ok()?;
        let ns: u128 = text.split_whitespace().next()?.parse().ok()?;
        Some((tid, ns as f64 / 1e9))
    })
    .collect()
}

fn schedstat_seconds(pid: u32) -> Option<f64> {
    let mut total_ns: u128 = 0;
    for entry in fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(entry) = entry else { continue };
        let Ok(text) = fs::read_to_string(entry.path().join("schedstat")) else {
            continue;
        };
        let ns: u128 = text.split_whitespace().next()?.parse().ok()?;
        total_ns += ns;
    }
    Some(total_ns as f64 / 1e9)
}

/// `utime + stime` from a `/proc/<pid>/stat` line. The command name (field 2) may contain spaces
/// and parentheses, so fields are counted after the last `)`.
fn parse_stat_cpu(text: &str) -> Option<f64> {
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the command: state is field 3, utime field 14, stime field 15 (1-based, man 5 proc).
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// This process's id.
pub(crate) fn self_pid() -> u32 {
    std::process::id()
}

/// What bounds processes and threads on this machine.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Limits {
    /// `ulimit -u` (max user processes, threads included), soft limit; `None` = unlimited.
    pub(crate) max_user_processes: Option<u64>,
    /// `ulimit -n` soft limit.
    pub(crate) max_open_files: Option<u64>,
    /// `/proc/sys/kernel/pid_max` (every thread takes a pid).
    pub(crate) pid_max: Option<u64>,
    /// `/proc/sys/kernel/threads-max`.
    pub(crate) threads_max: Option<u64>,
    /// `MemTotal` in bytes.
    pub(crate) mem_total: Option<u64>,
    /// `MemAvailable` in bytes.
    pub(crate) mem_available: Option<u64>,
    /// Online CPUs.
    pub(crate) cpus: usize,
}

/// Read the limits.
pub(crate) fn limits() -> Limits {
    let limits = fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let soft = |name: &str| -> Option<u64> {
        limits
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l[name.len()..].split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    let number = |path: &str| -> Option<u64> {
        fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
    };
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem = |name: &str| -> Option<u64> {
        meminfo
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l[name.len()..].split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    Limits {
        max_user_processes: soft("Max processes"),
        max_open_files: soft("Max open files"),
        pid_max: number("/proc/sys/kernel/pid_max"),
        threads_max: number("/proc/sys/kernel/threads-max"),
        mem_total: mem("MemTotal:"),
        mem_available: mem("MemAvailable:"),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_stat() {
        let status =
            "Name:\tbench\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\nRssAnon:\t 512 kB\nThreads:\t3\n";
        let s = parse_status(status);
        assert_eq!(s.rss, 1024 * 1024);
        assert_eq!(s.hwm, 2048 * 1024);
        assert_eq!(s.rss_anon, 512 * 1024);
        assert_eq!(s.threads, 3);
        let stat = "42 (a (weird) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(parse_stat_cpu(stat), Some(3.0));
        assert_eq!(parse_stat_cpu("garbage"), None);
        assert!(cpu_seconds(self_pid()).is_some());
        assert!(mem_status(self_pid()).is_some_and(|m| m.rss > 0));
    }
}
