//! Helpers shared by the binaries' end-to-end tests.

use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// Run `rabbitmqctl` with `args`; the test fails unless it succeeds. Its stdout.
pub(crate) fn rabbitmqctl_ok(args: &[&str]) -> String {
    let out = rabbitmqctl(args);
    assert!(out.status.success(), "rabbitmqctl {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn rabbitmqctl(args: &[&str]) -> std::process::Output {
    let bin = std::env::var("RABBITMQCTL").unwrap_or_else(|_| "/usr/sbin/rabbitmqctl".to_owned());
    std::process::Command::new(bin)
        .args(args)
        .output()
        .expect("rabbitmqctl must be installed (scripts/ensure-services.sh)")
}

/// A RabbitMQ vhost for one test, deleted when dropped (also when the test fails).
pub(crate) struct Vhost(pub(crate) String);

impl Vhost {
    /// Create it and give guest every permission.
    pub(crate) fn create() -> Self {
        let name = format!("panic-bins-{}", unique());
        let out = rabbitmqctl(&["add_vhost", &name]);
        assert!(out.status.success(), "add_vhost: {out:?}");
        let out = rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
        assert!(out.status.success(), "set_permissions: {out:?}");
        Vhost(name)
    }

    /// The AMQP URL of this vhost on the local broker.
    pub(crate) fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:5672/{}", self.0)
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        let _ = rabbitmqctl(&["delete_vhost", &self.0]);
    }
}
