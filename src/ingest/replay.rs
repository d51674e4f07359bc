//! The reader thread: opens the files, merges their lines by timestamp and paces them. Up to
//! [`MAX_OPEN_FILES`] files are open at once; more are read a group at a time.
//!
//! Parsing is synchronous and CPU-bound, so it runs on its own thread and hands lines to the
//! async sender through a bounded channel (memory stays bounded; a slow broker slows reading).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::csv_file::{CsvFile, Line};

const CHANNEL_LINES: usize = 16 * 1024;
/// Files open at once: more are read in groups of this many, each group merged by time.
const MAX_OPEN_FILES: usize = 256;

pub struct Replay {
    pub lines: mpsc::Receiver<Line>,
    thread: JoinHandle<Vec<(PathBuf, String)>>,
}

impl Replay {
    /// Waits for the reader thread; returns the files it could not read, with why.
    pub fn finish(self) -> anyhow::Result<Vec<(PathBuf, String)>> {
        drop(self.lines);
        self.thread.join().map_err(|_| {
            anyhow::anyhow!("the CSV reader thread panicked; the replay is incomplete")
        })
    }
}

/// Starts reading `files`. `speed` 0 reads as fast as the channel takes lines; N > 0 releases
/// each tick when N times the data's clock since the first tick has passed.
pub fn start(
    files: Vec<PathBuf>,
    zone: Tz,
    speed: f64,
    bytes_read: Arc<AtomicU64>,
    cancel: CancellationToken,
) -> Replay {
    let (tx, rx) = mpsc::channel(CHANNEL_LINES);
    let thread = std::thread::Builder::new()
        .name("csv-reader".into())
        .spawn(move || read_merged(files, zone, speed, bytes_read, cancel, tx))
        .expect("spawning the CSV reader thread");
    Replay { lines: rx, thread }
}

/// The open files and the next tick of each: the merge's state.
struct Files {
    readers: Vec<CsvFile>,
    consumed: Vec<u64>,
    heads: Vec<Option<Line>>,
    bytes_read: Arc<AtomicU64>,
}

impl Files {
    /// Reads file `i` up to its next tick, passing refused lines to `send` as they come.
    /// `Err` when the receiver is gone; `Ok(None)` at the end of the file.
    fn advance(
        &mut self,
        i: usize,
        send: &impl Fn(Line) -> bool,
    ) -> Result<Option<DateTime<Utc>>, ()> {
        loop {
            let line = self.readers[i].next_line();
            let position = self.readers[i].position();
            self.bytes_read
                .fetch_add(position.saturating_sub(self.consumed[i]), Ordering::Relaxed);
            self.consumed[i] = position;
            match line {
                None => return Ok(None),
                Some(Line::Tick(t)) => {
                    let at = t.timestamp;
                    self.heads[i] = Some(Line::Tick(t));
                    return Ok(Some(at));
                }
                Some(reject) => {
                    if !send(reject) {
                        return Err(());
                    }
                }
            }
        }
    }
}

fn read_merged(
    paths: Vec<PathBuf>,
    zone: Tz,
    speed: f64,
    bytes_read: Arc<AtomicU64>,
    cancel: CancellationToken,
    tx: mpsc::Sender<Line>,
) -> Vec<(PathBuf, String)> {
    let send = |line: Line| -> bool { !cancel.is_cancelled() && tx.blocking_send(line).is_ok() };
    let mut failed = Vec::new();
    // Open files take memory and file descriptors: many files are merged a group at a time.
    for group in paths.chunks(MAX_OPEN_FILES) {
        let mut readers = Vec::new();
        for path in group {
            match CsvFile::open(path, zone) {
                Ok(reader) => readers.push(reader),
                Err(e) => failed.push((path.clone(), format!("{e:#}"))),
            }
        }
        if merge(readers, speed, &bytes_read, &cancel, &send).is_err() {
            break;
        }
    }
    failed
}

/// Sends the lines of `readers` merged by timestamp, paced by `speed`. `Err` when the
/// receiver is gone or the replay was cancelled.
fn merge(
    readers: Vec<CsvFile>,
    speed: f64,
    bytes_read: &Arc<AtomicU64>,
    cancel: &CancellationToken,
    send: &impl Fn(Line) -> bool,
) -> Result<(), ()> {
    let count = readers.len();
    let mut files = Files {
        readers,
        consumed: vec![0; count],
        heads: (0..count).map(|_| None).collect(),
        bytes_read: bytes_read.clone(),
    };
    // Ordered by (timestamp, file index): the earliest head goes next.
    let mut order = BinaryHeap::new();
    for i in 0..count {
        if let Some(at) = files.advance(i, send)? {
            order.push(Reverse((at, i)));
        }
    }
    let mut clock: Option<(DateTime<Utc>, Instant)> = None;
    while let Some(Reverse((at, i))) = order.pop() {
        if speed > 0.0 {
            let (first, wall) = *clock.get_or_insert((at, Instant::now()));
            let data_elapsed = (at - first).to_std().unwrap_or_default();
            let due = wall + data_elapsed.div_f64(speed);
            while Instant::now() < due {
                if cancel.is_cancelled() {
                    return Err(());
                }
                std::thread::sleep((due - Instant::now()).min(Duration::from_millis(50)));
            }
        }
        let line = files.heads[i].take().expect("a queued file has a head");
        if !send(line) {
            return Err(());
        }
        if let Some(at) = files.advance(i, send)? {
            order.push(Reverse((at, i)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_merged_by_time_and_paced_by_the_data_clock() {
        let dir = tempfile::tempdir().unwrap();
        let header = "Timestamp,Bank_Name,Open,High,Low,Close,Volume\n";
        std::fs::write(
            dir.path().join("a.csv"),
            format!("{header}2024-01-02 09:15:00,A,1,1,1,1,1\n2024-01-02 09:16:00,A,1,1,1,1,2\n"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b.csv"),
            format!("{header}2024-01-02 09:15:30,B,1,1,1,1,3\nnot,a,tick\n"),
        )
        .unwrap();
        let files = vec![dir.path().join("a.csv"), dir.path().join("b.csv")];
        // 60 s of data at 120x: the last tick is due 0.5 s after the first.
        let mut replay = start(
            files,
            chrono_tz::UTC,
            120.0,
            Arc::new(AtomicU64::new(0)),
            CancellationToken::new(),
        );
        let started = Instant::now();
        let mut order = Vec::new();
        while let Some(line) = replay.lines.blocking_recv() {
            order.push(match line {
                Line::Tick(t) => format!("{}{}", t.symbol, t.volume),
                Line::Reject(r) => r.source.rsplit('/').next().unwrap().to_string(),
            });
        }
        let elapsed = started.elapsed();
        assert!(replay.finish().unwrap().is_empty());
        assert_eq!(order, ["A1", "B3", "b.csv:3", "A2"]);
        assert!(elapsed >= Duration::from_millis(450), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    }
}
