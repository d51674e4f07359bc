//! The reader thread: opens the files, merges their lines by timestamp and paces them. Up to
//! [`MAX_OPEN_FILES`] files are open at once; more are read a group at a time.
//!
//! Parsing is synchronous and CPU-bound, so it runs on its own thread and hands lines to the
//! async sender through a bounded channel (memory stays bounded; a slow broker slows reading).

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::csv_file::{CsvFile, Line};
use super::layout::ColumnNames;
use crate::tick::Reading;

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
pub fn start(spec: Spec, counters: Arc<Counters>, cancel: CancellationToken) -> Replay {
    let (tx, rx) = mpsc::channel(CHANNEL_LINES);
    let thread = std::thread::Builder::new()
        .name("csv-reader".into())
        .spawn(move || {
            let sender = Sender {
                tx,
                cancel,
                skip: spec.skip,
                lines: Cell::new(0),
            };
            read_merged(spec, &counters, &sender)
        })
        .expect("spawning the CSV reader thread");
    Replay { lines: rx, thread }
}

/// What to replay, and how.
#[derive(Debug, Clone)]
pub struct Spec {
    pub files: Vec<PathBuf>,
    pub reading: Reading,
    /// `[ingest.columns]`.
    pub columns: ColumnNames,
    /// 0: as fast as the channel takes lines; N: N times the data's own clock.
    pub speed: f64,
    /// Lines (in the merged order) to read without sending or pacing: a resumed replay.
    pub skip: u64,
}

/// What the reader thread has done so far.
#[derive(Debug, Default)]
pub struct Counters {
    pub bytes: AtomicU64,
    /// Lines whose prices were rounded (`ingest.excess_decimals = "round"`).
    pub rounded: AtomicU64,
}

/// Hands lines to the async side, dropping the first `skip`.
struct Sender {
    tx: mpsc::Sender<Line>,
    cancel: CancellationToken,
    skip: u64,
    lines: Cell<u64>,
}

impl Sender {
    /// Whether the next line is one of those to skip.
    fn skips_next(&self) -> bool {
        self.lines.get() < self.skip
    }

    /// `false` when the receiver is gone or the replay is cancelled.
    fn send(&self, line: Line) -> bool {
        let skipped = self.skips_next();
        self.lines.set(self.lines.get() + 1);
        if self.cancel.is_cancelled() {
            return false;
        }
        skipped || self.tx.blocking_send(line).is_ok()
    }
}

/// The open files and the next tick of each: the merge's state.
struct Files<'c> {
    readers: Vec<CsvFile>,
    consumed: Vec<u64>,
    heads: Vec<Option<Line>>,
    counters: &'c Counters,
}

impl Files<'_> {
    /// Reads file `i` up to its next tick, passing refused lines to `send` as they come.
    /// `Err` when the receiver is gone; `Ok(None)` at the end of the file.
    fn advance(&mut self, i: usize, send: &Sender) -> Result<Option<DateTime<Utc>>, ()> {
        loop {
            let line = self.readers[i].next_line();
            let position = self.readers[i].position();
            self.counters
                .bytes
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
                    if !send.send(reject) {
                        return Err(());
                    }
                }
            }
        }
    }
}

fn read_merged(spec: Spec, counters: &Counters, send: &Sender) -> Vec<(PathBuf, String)> {
    let mut failed = Vec::new();
    // Open files take memory and file descriptors: many files are merged a group at a time.
    for group in spec.files.chunks(MAX_OPEN_FILES) {
        let mut readers = Vec::new();
        for path in group {
            match CsvFile::open_with(path, spec.reading, &spec.columns) {
                Ok(reader) => readers.push(reader),
                Err(e) => failed.push((path.clone(), format!("{e:#}"))),
            }
        }
        if merge(readers, spec.speed, counters, send).is_err() {
            break;
        }
    }
    failed
}

/// Sends the lines of `readers` merged by timestamp, paced by `speed`. `Err` when the
/// receiver is gone or the replay was cancelled.
fn merge(readers: Vec<CsvFile>, speed: f64, counters: &Counters, send: &Sender) -> Result<(), ()> {
    let count = readers.len();
    let mut files = Files {
        readers,
        consumed: vec![0; count],
        heads: (0..count).map(|_| None).collect(),
        counters,
    };
    let result = merge_files(&mut files, speed, send);
    let rounded: u64 = files.readers.iter().map(CsvFile::rounded).sum();
    counters.rounded.fetch_add(rounded, Ordering::Relaxed);
    result
}

fn merge_files(files: &mut Files, speed: f64, send: &Sender) -> Result<(), ()> {
    // Ordered by (timestamp, file index): the earliest head goes next.
    let mut order = BinaryHeap::new();
    for i in 0..files.readers.len() {
        if let Some(at) = files.advance(i, send)? {
            order.push(Reverse((at, i)));
        }
    }
    let mut clock: Option<(DateTime<Utc>, Instant)> = None;
    while let Some(Reverse((at, i))) = order.pop() {
        // Skipped lines (a resumed replay) are not paced.
        if speed > 0.0 && !send.skips_next() {
            let (first, wall) = *clock.get_or_insert((at, Instant::now()));
            let data_elapsed = (at - first).to_std().unwrap_or_default();
            let due = wall + data_elapsed.div_f64(speed);
            while Instant::now() < due {
                if send.cancel.is_cancelled() {
                    return Err(());
                }
                std::thread::sleep((due - Instant::now()).min(Duration::from_millis(50)));
            }
        }
        let line = files.heads[i].take().expect("a queued file has a head");
        if !send.send(line) {
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
        let spec = Spec {
            files,
            reading: chrono_tz::UTC.into(),
            columns: ColumnNames::default(),
            speed: 120.0,
            skip: 0,
        };
        let mut replay = start(
            spec.clone(),
            Arc::new(Counters::default()),
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

        // Resumed after two lines: the rest only.
        let replay = start(
            Spec { skip: 2, ..spec },
            Arc::new(Counters::default()),
            CancellationToken::new(),
        );
        let mut lines = replay.lines;
        let mut rest = Vec::new();
        while let Some(line) = lines.blocking_recv() {
            rest.push(match line {
                Line::Tick(t) => format!("{}{}", t.symbol, t.volume),
                Line::Reject(r) => r.source.rsplit('/').next().unwrap().to_string(),
            });
        }
        assert_eq!(rest, ["b.csv:3", "A2"]);
    }
}
