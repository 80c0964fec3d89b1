//! Configs are kept across restarts (in `--amqp-url` mode, in the config stream): a manager
//! SIGKILLed and restarted finds its monitors without anyone republishing, and shards started after
//! the configs were published find theirs. Each manager says at start how many configs and
//! monitors it restored; the test reads that line (and waits for it with a deadline).

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::{sigterm, write_systems, TempDir, Vhost};

/// How many systems the config folder has.
const SYSTEMS: usize = 6;

/// A running manager and the lines of its stderr.
struct Manager {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Manager {
    fn start(amqp: &str, extra: &[&str]) -> Manager {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_monitors-manager"))
            .args(["--amqp-url", amqp])
            .args(extra)
            .env_remove("AMQP_URL")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        // Ends when the process's stderr closes.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Manager {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first line containing `needle` (the test fails after 60 s without one).
    fn wait_line(&mut self, needle: &str) -> String {
        let give_up = Instant::now() + Duration::from_secs(60);
        loop {
            let left = give_up.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with `{needle}`; the manager said:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// The (configs, monitors) of the restore line.
    fn restored(&mut self) -> (usize, usize) {
        let line = self.wait_line("config state restored:");
        let tail = line
            .split("config state restored:")
            .nth(1)
            .unwrap()
            .to_owned();
        let numbers: Vec<usize> = tail
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .take(2)
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(numbers.len(), 2, "{line}");
        (numbers[0], numbers[1])
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn stop(mut self) {
        sigterm(self.child.id());
        let give_up = Instant::now() + Duration::from_secs(60);
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < give_up,
                "the manager did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn restarted_and_late_managers_find_their_monitors() {
    let vhost = Vhost::create("panic-bins");
    let amqp = vhost.url();
    let cfg = TempDir::new("panic-config-restore");
    let names: Vec<(String, String)> = (0..SYSTEMS)
        .map(|i| (format!("s{i}"), format!("system {i}")))
        .collect();
    let systems: Vec<(&str, &str, &str)> = names
        .iter()
        .map(|(id, name)| (id.as_str(), name.as_str(), "http://127.0.0.1:1/metrics"))
        .collect();
    write_systems(&cfg.0.join("general/systems_config.ini"), &systems);

    // A first manager, then the configs.
    let mut first = Manager::start(&amqp, &[]);
    assert_eq!(
        first.restored(),
        (0, 0),
        "a fresh broker has nothing to restore"
    );
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_panic-config"))
        .args(["--amqp-url", &amqp, "--config-dir", cfg.0.to_str().unwrap()])
        .env_remove("AMQP_URL")
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    for _ in 0..SYSTEMS {
        first.wait_line("starting monitor");
    }

    // SIGKILL and restart: the monitors come back without republishing.
    first.kill();
    let mut second = Manager::start(&amqp, &[]);
    assert_eq!(second.restored(), (1, SYSTEMS));
    assert_eq!(
        second
            .seen
            .iter()
            .filter(|l| l.contains("starting monitor"))
            .count(),
        SYSTEMS,
        "every monitor started again"
    );

    // Shards started after the configs were published find their monitors, together all of them.
    let mut shard0 = Manager::start(&amqp, &["--shard", "0/2"]);
    let mut shard1 = Manager::start(&amqp, &["--shard", "1/2"]);
    let (c0, m0) = shard0.restored();
    let (c1, m1) = shard1.restored();
    assert_eq!((c0, c1), (1, 1));
    assert_eq!(m0 + m1, SYSTEMS, "the shards split the monitors");

    second.stop();
    shard0.stop();
    shard1.stop();
}
