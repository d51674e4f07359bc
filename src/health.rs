//! Health of the stages `tickpipe up` runs (processor, producer, dashboard): the supervisor
//! writes it, `/healthz` serves it, and `tickpipe status` reads it from the state directory
//! (`stages.json`, rewritten on every change).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a stage is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageState {
    Running,
    /// Failed (an error or a panic) and waiting to be started again: the stage is down.
    Restarting,
    /// Done with its work (the producer after its replay).
    Finished,
    /// Stopped because the appliance is stopping.
    Stopped,
}

/// One stage's health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageHealth {
    pub state: StageState,
    /// Times it failed and was started again.
    pub restarts: u32,
    /// The last failure, kept after it recovers.
    pub last_error: Option<String>,
    /// When the state last changed.
    pub since: DateTime<Utc>,
    /// What the stage's last run counted (the producer: records, quarantined, rounded,
    /// duplicates).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counts: BTreeMap<String, u64>,
}

impl StageHealth {
    /// Whether the stage is down.
    pub fn is_down(&self) -> bool {
        self.state == StageState::Restarting
    }
}

/// The stages' health, shared by the supervisor, the HTTP server and the state file.
#[derive(Debug, Clone, Default)]
pub struct StageBoard {
    stages: Arc<Mutex<BTreeMap<String, StageHealth>>>,
    /// Rewritten on every change, for `tickpipe status` in another process.
    file: Option<PathBuf>,
}

impl StageBoard {
    /// A board that also keeps `file` up to date.
    pub fn persisted(file: PathBuf) -> Self {
        StageBoard {
            stages: Default::default(),
            file: Some(file),
        }
    }

    /// Records what `stage` counted in its last run.
    pub fn count(&self, stage: &str, counts: &[(&str, u64)]) {
        self.update(|stages| {
            if let Some(entry) = stages.get_mut(stage) {
                entry.counts = counts.iter().map(|(k, v)| (k.to_string(), *v)).collect();
            }
        });
    }

    /// Records a new state for `stage`; `error` (a failure) counts a restart.
    pub fn set(&self, stage: &str, state: StageState, error: Option<String>) {
        self.update(|stages| {
            let entry = stages.entry(stage.to_string()).or_insert(StageHealth {
                state,
                restarts: 0,
                last_error: None,
                since: Utc::now(),
                counts: BTreeMap::new(),
            });
            if entry.state != state {
                entry.since = Utc::now();
            }
            entry.state = state;
            if let Some(error) = error {
                entry.restarts += 1;
                entry.last_error = Some(error);
            }
        });
    }

    /// Changes the board and rewrites its file, under the board's lock: two stages changing at
    /// once wrote the same partial file, one rename then failed, and the older board could be
    /// the one left in the file.
    fn update(&self, change: impl FnOnce(&mut BTreeMap<String, StageHealth>)) {
        let mut stages = self.stages.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut stages);
        if let Some(file) = &self.file
            && let Err(e) = write_atomically(file, &stages)
        {
            tracing::warn!("could not write {}: {e}", file.display());
        }
    }

    pub fn snapshot(&self) -> BTreeMap<String, StageHealth> {
        self.stages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether any stage is down.
    pub fn degraded(&self) -> bool {
        self.snapshot().values().any(StageHealth::is_down)
    }

    /// The stages as `up` last wrote them to `file`, if it did.
    pub fn read(file: &std::path::Path) -> Option<BTreeMap<String, StageHealth>> {
        let text = std::fs::read_to_string(file).ok()?;
        serde_json::from_str(&text).ok()
    }
}

fn write_atomically(
    file: &std::path::Path,
    stages: &BTreeMap<String, StageHealth>,
) -> std::io::Result<()> {
    let partial = file.with_extension("json.partial");
    std::fs::write(&partial, serde_json::to_vec_pretty(stages)?)?;
    std::fs::rename(partial, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_count_restarts_and_are_kept_after_recovery() {
        let dir = tempfile::tempdir().unwrap();
        let board = StageBoard::persisted(dir.path().join("stages.json"));
        board.set("processor", StageState::Running, None);
        assert!(!board.degraded());
        board.set("processor", StageState::Restarting, Some("boom".into()));
        assert!(board.degraded());
        board.set("processor", StageState::Running, None);
        let read = StageBoard::read(&dir.path().join("stages.json")).unwrap();
        assert_eq!(read["processor"].restarts, 1);
        assert_eq!(read["processor"].last_error.as_deref(), Some("boom"));
        assert_eq!(read["processor"].state, StageState::Running);
        assert!(!board.degraded());
    }

    #[test]
    fn stages_changing_at_once_each_find_their_change_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("stages.json");
        let board = Arc::new(StageBoard::persisted(file.clone()));
        let writers: Vec<_> = ["processor", "producer", "dashboard", "rollups"]
            .into_iter()
            .map(|stage| {
                let board = Arc::clone(&board);
                let file = file.clone();
                std::thread::spawn(move || {
                    board.set(stage, StageState::Running, None);
                    for i in 0..300 {
                        board.count(stage, &[("rows", i)]);
                        // What `tickpipe status` reads now has this change (or a later one).
                        let read = StageBoard::read(&file).unwrap();
                        assert_eq!(read[stage].counts["rows"], i, "{stage}");
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        assert!(!dir.path().join("stages.json.partial").exists());
        let read = StageBoard::read(&file).unwrap();
        assert_eq!(read.len(), 4);
        for (stage, health) in board.snapshot() {
            assert_eq!(read[&stage].counts, health.counts, "{stage}");
        }
    }
}
