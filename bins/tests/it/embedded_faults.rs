//! The embedded binary under local faults: an output that cannot be written (`/dev/full`), a config
//! folder deleted while running, symbolic link loops in it.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{sigterm, write_systems, TempDir};

fn spawn(dir: &Path, output: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_monitors-manager"))
        .arg("--config-dir")
        .arg(dir)
        .arg("--output")
        .arg(output)
        .env("SYSTEM_MONITOR_PERIOD_SECONDS", "1")
        .env("RUST_LOG", "info")
        .env_remove("AMQP_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Wait for the child to exit (killed past a generous deadline: it hung).
fn wait(mut child: Child, what: &str) -> Output {
    let give_up = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > give_up {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("{what}: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// A system on a closed port: an error envelope every second.
fn dead_system(dir: &Path) {
    write_systems(
        &dir.join("general/systems_config.ini"),
        &[("s1", "dead", "http://127.0.0.1:1/metrics")],
    );
}

#[test]
fn unwritable_output_stops_with_a_clear_error() {
    let dir = TempDir::new("panic-devfull");
    dead_system(&dir.0);
    let out = wait(
        spawn(&dir.0, Path::new("/dev/full")),
        "the manager kept running with an unwritable output",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("raw data output failed"), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn deleted_folder_and_symlink_loops_are_survived() {
    let dir = TempDir::new("panic-faults");
    let cfg = dir.0.join("cfg");
    dead_system(&cfg);
    let chains = cfg.join("chains");
    std::fs::create_dir_all(chains.join("cosmos")).unwrap();
    std::os::unix::fs::symlink(&cfg, chains.join("cosmos/hub")).unwrap();
    std::os::unix::fs::symlink("x", chains.join("y")).unwrap();
    std::os::unix::fs::symlink("y", chains.join("x")).unwrap();
    let output = dir.0.join("out.jsonl");
    let child = spawn(&cfg, &output);

    let lines = |path: &Path| {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let give_up = Instant::now() + Duration::from_secs(60);
    while lines(&output) == 0 {
        assert!(Instant::now() < give_up, "no raw data written");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A loop added while running, then the whole folder deleted.
    std::os::unix::fs::symlink(cfg.join("general"), cfg.join("general/loop")).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    std::fs::remove_dir_all(&cfg).unwrap();
    let mut child = child;
    let give_up = Instant::now() + Duration::from_secs(60);
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    // The deleted folder's monitor is stopped (the folder is the config): the output stops
    // growing, and the process stays up.
    let mut last = lines(&output);
    let mut stable = 0;
    while stable < 30 {
        assert!(
            Instant::now() < give_up,
            "raw data still flows after the folder was deleted"
        );
        assert!(child.try_wait().unwrap().is_none(), "the manager exited");
        std::thread::sleep(Duration::from_millis(100));
        let now = lines(&output);
        stable = if now == last { stable + 1 } else { 0 };
        last = now;
    }
    sigterm(child.id());
    let status = {
        let give_up = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < give_up, "SIGTERM ignored");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let log = reader.join().unwrap();
    assert!(status.success(), "{status:?} {log:#?}");
    assert!(!log.iter().any(|l| l.contains("panicked")), "{log:#?}");
    assert!(
        log.iter().any(|l| l.contains("monitor removed: stopping")),
        "{log:#?}"
    );
}
