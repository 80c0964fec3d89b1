//! PANIC's config folder: `general/systems_config.ini`, `chains/<base>/<sub>/nodes_config.ini`, …
//!
//! The routing key of a file is its path relative to the root, without the extension, with `/`
//! replaced by `.` (PANIC's `utils/routing_key.py`); its body is `{section: {key: value}}` as Python's
//! `configparser` reads it: keys lower-cased, `DEFAULT` values inherited by every section, values
//! kept as strings. A deleted file is published as `{}` (remove all under that key).
//!
//! [`watch`] turns file-system events into the messages to publish; a file that no longer parses is
//! logged (file and line) and skipped, so the last good config keeps running.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use monitor_core::ConfigKey;
use notify::{RecursiveMode, Watcher};
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What can be wrong with a config folder or file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigDirError {
    /// The folder cannot be read.
    #[error("cannot read config folder {path}: {source}")]
    Folder {
        /// The folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file cannot be read.
    #[error("cannot read config file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not valid ini.
    #[error("malformed config file {path}, line {line}, column {col}: {msg}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// What the parser said.
        msg: String,
    },
    /// The file's path does not give a config routing key PANIC's managers know.
    #[error("config file {path} is not where PANIC expects configs ({reason})")]
    Placement {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Watching the folder failed.
    #[error("cannot watch config folder {path}: {source}")]
    Watch {
        /// The folder.
        path: PathBuf,
        /// The cause.
        source: notify::Error,
    },
}

/// One config message to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigFileMessage {
    /// The routing key (`general.systems_config`, …).
    pub routing_key: String,
    /// The body: `{section: {key: value}}`, or `{}` for a deleted file.
    pub body: Value,
}

/// The routing key of `file` under `root`: relative path, extension dropped, `/` → `.`.
/// `None` for files that are not `.ini`.
pub fn routing_key_for(root: &Path, file: &Path) -> Option<String> {
    if file.extension().and_then(|e| e.to_str()) != Some("ini") {
        return None;
    }
    let rel = file.strip_prefix(root).ok()?.with_extension("");
    let parts: Option<Vec<&str>> = rel
        .components()
        .map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect();
    Some(parts?.join("."))
}

/// Parse ini text as Python's `configparser` would for PANIC.
pub fn parse_ini(path: &Path, text: &str) -> Result<Value, ConfigDirError> {
    let opt = ini::ParseOption {
        enabled_quote: false,
        enabled_escape: false,
        ..ini::ParseOption::default()
    };
    let parsed = ini::Ini::load_from_str_opt(text, opt).map_err(|e| ConfigDirError::Syntax {
        path: path.to_owned(),
        // An error at the end of the text (an unclosed `[section`) is on its last line, not on
        // the line after the final newline.
        line: e.line.min(text.lines().count().max(1)),
        col: e.col,
        msg: e.msg.to_string(),
    })?;
    let mut defaults = BTreeMap::new();
    for (section, props) in &parsed {
        if section.is_none() || section == Some("DEFAULT") {
            for (k, v) in props.iter() {
                defaults.insert(k.to_lowercase(), v.to_owned());
            }
        }
    }
    let mut out = Map::new();
    for (section, props) in &parsed {
        let Some(name) = section else { continue };
        if name == "DEFAULT" {
            continue;
        }
        let mut fields: Map<String, Value> = defaults
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        for (k, v) in props.iter() {
            fields.insert(k.to_lowercase(), Value::from(v));
        }
        out.insert(name.to_owned(), Value::Object(fields));
    }
    Ok(Value::Object(out))
}

/// Read one config file into its message.
pub fn read_file(root: &Path, file: &Path) -> Result<ConfigFileMessage, ConfigDirError> {
    let routing_key = routing_key_for(root, file).ok_or_else(|| ConfigDirError::Placement {
        path: file.to_owned(),
        reason: "not an .ini file".to_owned(),
    })?;
    ConfigKey::parse(&routing_key).map_err(|e| ConfigDirError::Placement {
        path: file.to_owned(),
        reason: e.to_string(),
    })?;
    let text = std::fs::read_to_string(file).map_err(|source| ConfigDirError::File {
        path: file.to_owned(),
        source,
    })?;
    Ok(ConfigFileMessage {
        routing_key,
        body: parse_ini(file, &text)?,
    })
}

/// Every `.ini` file below `root`, sorted, so that `general` comes before `chains` the same way
/// every time (order within a key does not matter to the manager).
fn ini_files(root: &Path) -> Result<Vec<PathBuf>, ConfigDirError> {
    let mut files = files_below(root, false)?;
    files.retain(|path| path.extension().and_then(|e| e.to_str()) == Some("ini"));
    Ok(files)
}

/// Every file below `root`, sorted; with `skip_hidden`, entries whose name starts with `.` (and
/// everything below such a folder) are left out.
pub(crate) fn files_below(root: &Path, skip_hidden: bool) -> Result<Vec<PathBuf>, ConfigDirError> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|source| ConfigDirError::Folder {
            path: dir.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| ConfigDirError::Folder {
                path: dir.clone(),
                source,
            })?;
            if skip_hidden && entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Read the whole folder. Files whose path is not a config key PANIC's managers consume
/// (`channels/…`, `general/alerts_config.ini`, stray files) are skipped with a debug log; any read
/// or syntax error fails the whole read (at start-up a bad folder is an error).
pub fn read_dir(root: &Path) -> Result<Vec<ConfigFileMessage>, ConfigDirError> {
    let mut out = Vec::new();
    for file in ini_files(root)? {
        match read_file(root, &file) {
            Ok(m) => out.push(m),
            Err(ConfigDirError::Placement { path, reason }) => {
                tracing::debug!(file = %path.display(), %reason, "skipping file that is not a monitors config");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// The message for a changed path, or `None` when it should be skipped (not a config file, or it
/// failed to parse: then the error is logged and the last good config stays in force).
fn message_for_change(root: &Path, path: &Path) -> Option<ConfigFileMessage> {
    let routing_key = routing_key_for(root, path)?;
    if ConfigKey::parse(&routing_key).is_err() {
        return None;
    }
    if !path.exists() {
        return Some(ConfigFileMessage {
            routing_key,
            body: Value::Object(Map::new()),
        });
    }
    match read_file(root, path) {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::error!(error = %e, "config change ignored; the last good config keeps running");
            None
        }
    }
}

/// Whether an event of this kind can change what a file holds. notify's inotify watcher also
/// reports opening, reading and closing a file unwritten, and the watcher's own reading of a
/// changed file is such an event: taken as a change, it made the watcher read the file again
/// after every debounce, for ever (with a large config, a few per cent of a core spent parsing
/// ini files; found profiling issue #14's end-to-end round).
fn changes_content(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode};
    match kind {
        notify::EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        notify::EventKind::Access(_) => false,
        _ => true,
    }
}

/// How many debounce periods one batch of changes may wait for the folder to be quiet.
const MAX_DEBOUNCE_FACTOR: u32 = 10;

/// Watch `root` and send a message for every created, changed or deleted config file until
/// `shutdown`. Events are debounced (the batch closes after `debounce` without events, at most
/// 10 × `debounce` after its first) so an editor's write-rename dance gives one message per file. Identical consecutive bodies for a key are sent once.
pub async fn watch(
    root: PathBuf,
    debounce: Duration,
    tx: mpsc::Sender<ConfigFileMessage>,
    shutdown: CancellationToken,
) -> Result<(), ConfigDirError> {
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel::<PathBuf>();
    let mut watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(event) if changes_content(&event.kind) => {
                for p in event.paths {
                    let _ = ev_tx.send(p);
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "config folder watch error"),
        })
        .map_err(|source| ConfigDirError::Watch {
            path: root.clone(),
            source,
        })?;
    watcher
        .watch(&root, RecursiveMode::Recursive)
        .map_err(|source| ConfigDirError::Watch {
            path: root.clone(),
            source,
        })?;
    // The last body sent per key, seeded from the folder as it is now.
    let mut last: BTreeMap<String, Value> = read_dir(&root)
        .unwrap_or_default()
        .into_iter()
        .map(|m| (m.routing_key, m.body))
        .collect();
    let root_canon = root.canonicalize().unwrap_or_else(|_| root.clone());
    loop {
        let Some(Some(first)) = shutdown.run_until_cancelled(ev_rx.recv()).await else {
            return Ok(());
        };
        let mut changed = std::collections::BTreeSet::from([first]);
        // Trailing-edge debounce: the batch closes once the folder has been quiet for `debounce`
        // (a truncate followed by a slow write is one change, not an empty file and then the
        // content), but no later than `MAX_DEBOUNCE_FACTOR × debounce` after its first event, so
        // a file rewritten without pause is still picked up.
        let hard_deadline = tokio::time::Instant::now() + debounce * MAX_DEBOUNCE_FACTOR;
        let quiet = tokio::time::sleep(debounce);
        tokio::pin!(quiet);
        loop {
            tokio::select! {
                () = &mut quiet => break,
                p = ev_rx.recv() => match p {
                    Some(p) => {
                        changed.insert(p);
                        let next = (tokio::time::Instant::now() + debounce).min(hard_deadline);
                        quiet.as_mut().reset(next);
                    }
                    None => break,
                },
            }
        }
        // A removed folder removes every key below it.
        let mut paths: Vec<PathBuf> = Vec::new();
        for p in changed {
            if !p.exists() && p.extension().is_none() {
                let prefix = p
                    .strip_prefix(&root_canon)
                    .or_else(|_| p.strip_prefix(&root))
                    .ok();
                if let Some(prefix) = prefix.and_then(|x| x.to_str()) {
                    let prefix = prefix.replace('/', ".");
                    for key in last.keys().filter(|k| k.starts_with(&format!("{prefix}."))) {
                        paths.push(root.join(format!("{}.ini", key.replace('.', "/"))));
                    }
                }
            } else {
                paths.push(p);
            }
        }
        for p in paths {
            // A file that reads empty while its last body was not is most likely being rewritten
            // in place (truncated, not yet written): look again after one more debounce before
            // taking it as PANIC's "remove all".
            if std::fs::metadata(&p).is_ok_and(|m| m.len() == 0)
                && routing_key_for(&root, &p)
                    .or_else(|| routing_key_for(&root_canon, &p))
                    .and_then(|key| last.get(&key))
                    .is_some_and(|body| body.as_object().is_some_and(|o| !o.is_empty()))
            {
                tokio::time::sleep(debounce).await;
            }
            let base = if p.starts_with(&root_canon) {
                &root_canon
            } else {
                &root
            };
            let Some(msg) = message_for_change(base, &p) else {
                continue;
            };
            if last.get(&msg.routing_key) == Some(&msg.body) {
                continue;
            }
            last.insert(msg.routing_key.clone(), msg.body.clone());
            if tx.send(msg).await.is_err() {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opening, reading or closing a file unwritten is not a change (the watcher's own reads are
    /// such events); a write, a close after writing, creation, removal and renames are.
    #[test]
    fn only_events_that_can_change_a_file_count() {
        use notify::event::{
            AccessKind, AccessMode, CreateKind, DataChange, ModifyKind, RemoveKind, RenameMode,
        };
        use notify::EventKind;
        for kind in [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Open(AccessMode::Read)),
            EventKind::Access(AccessKind::Read),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Access(AccessKind::Any),
        ] {
            assert!(!changes_content(&kind), "{kind:?}");
        }
        for kind in [
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Remove(RemoveKind::File),
            EventKind::Any,
        ] {
            assert!(changes_content(&kind), "{kind:?}");
        }
    }

    #[test]
    fn routing_keys_follow_panic() {
        let root = Path::new("/cfg");
        assert_eq!(
            routing_key_for(root, Path::new("/cfg/general/systems_config.ini")).as_deref(),
            Some("general.systems_config")
        );
        assert_eq!(
            routing_key_for(
                root,
                Path::new("/cfg/chains/cosmos/cosmoshub/nodes_config.ini")
            )
            .as_deref(),
            Some("chains.cosmos.cosmoshub.nodes_config")
        );
        assert_eq!(
            routing_key_for(root, Path::new("/cfg/general/readme.txt")),
            None
        );
    }

    #[test]
    fn ini_like_configparser() {
        let text = "[DEFAULT]\nmonitor_system = true\n\n[system_1]\nID = system_1\nname = host ; not a comment in configparser\nexporter_url = http://127.0.0.1:9100/metrics\n\n[system_2]\nid = system_2\nmonitor_system = false\n";
        let v = parse_ini(Path::new("x.ini"), text).unwrap();
        assert_eq!(v["system_1"]["id"], "system_1");
        assert_eq!(v["system_1"]["monitor_system"], "true");
        assert_eq!(v["system_2"]["monitor_system"], "false");
        assert!(v.get("DEFAULT").is_none());
    }

    #[test]
    fn malformed_ini_names_file_and_line() {
        let err = parse_ini(Path::new("bad.ini"), "[a]\nx = 1\n[unclosed").unwrap_err();
        let s = err.to_string();
        assert!(s.contains("bad.ini") && s.contains("line 3"), "{s}");
    }
}
