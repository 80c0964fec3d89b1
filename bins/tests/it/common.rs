//! Helpers shared by the binaries' end-to-end tests.

use std::path::{Path, PathBuf};
use std::time::Duration;

pub(crate) use monitor_bus::testing::{rabbitmqctl as rabbitmqctl_ok, Vhost};
use rand::Rng;

/// How long a test waits for something that must happen before failing (never a hang).
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// The machine's Redis (each test uses a key namespace of its own).
pub(crate) const REDIS_URL: &str = "redis://127.0.0.1:6379/";

/// A unique suffix for names.
pub(crate) fn unique() -> String {
    format!("{}-{:08x}", std::process::id(), rand::rng().random::<u32>())
}

/// The node_exporter fixture.
pub(crate) fn node_exporter_fixture() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/fixtures/node_exporter/metrics.txt"),
    )
    .expect("fixture ../shared/fixtures/node_exporter/metrics.txt")
}

/// A temporary folder, removed when dropped.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    /// A new empty folder under the system temp dir.
    pub(crate) fn new(prefix: &str) -> Self {
        let p = std::env::temp_dir().join(format!("{prefix}-{}", unique()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Write a systems_config.ini with one section per (id, name, url).
pub(crate) fn write_systems(path: &Path, systems: &[(&str, &str, &str)]) {
    let mut text = String::new();
    for (id, name, url) in systems {
        text.push_str(&format!(
            "[{id}]\nid = {id}\nparent_id = GENERAL\nname = {name}\nexporter_url = {url}\nmonitor_system = true\n\n"
        ));
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    // Write then rename, as editors do, so the watcher never sees a half-written file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Send SIGTERM to process `pid` (the test fails if `kill` does).
pub(crate) fn sigterm(pid: u32) {
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success(), "kill -TERM {pid}: {ok:?}");
}

/// Start a service binary for an end-to-end test: system monitors every `system_period_secs`,
/// warnings to the test's stderr, killed when dropped.
pub(crate) fn spawn_service(
    bin: &str,
    args: &[&str],
    system_period_secs: &str,
) -> tokio::process::Child {
    tokio::process::Command::new(bin)
        .args(args)
        .env("SYSTEM_MONITOR_PERIOD_SECONDS", system_period_secs)
        // PANIC_TEST_LOG: the services' log filter when debugging a test (default: warnings).
        .env(
            "RUST_LOG",
            std::env::var("PANIC_TEST_LOG").unwrap_or_else(|_| "warn".to_owned()),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{bin}: {e}"))
}
