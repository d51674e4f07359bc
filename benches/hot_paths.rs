//! Micro-benchmarks of the per-record hot paths: CSV row → Tick, Tick → JSON, JSON → Tick, a
//! batch → the file its LOAD DATA reads, and the rollup stage's work per bar (a stored row →
//! its bar and indicators, the default alert rules judging it, bars → their LOAD DATA file).
//! `cargo bench`.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

use tickpipe::alerts::{BarPoint, Paged, default_rules};
use tickpipe::ingest::csv_file::{CsvFile, Line};
use tickpipe::rollup::{Bar, IndicatorState, Indicators};
use tickpipe::store::{bar_file, load_file};
use tickpipe::tick::Tick;

const ROWS: usize = 10_000;

fn csv_text() -> String {
    let mut text = String::from("Timestamp,Bank_Name,Open,High,Low,Close,Volume\n");
    for i in 0..ROWS {
        let (minute, cents) = (i % 375, 150_000 + (i % 997) as i64);
        text.push_str(&format!(
            "2024-01-{:02} {:02}:{:02}:00,HDFCBANK,{}.{:02},{}.{:02},{}.{:02},{}.{:02},{}\n",
            1 + i / 375 % 28,
            9 + (15 + minute) / 60,
            (15 + minute) % 60,
            cents / 100,
            cents % 100,
            (cents + 40) / 100,
            (cents + 40) % 100,
            (cents - 30) / 100,
            (cents - 30) % 100,
            (cents + 10) / 100,
            (cents + 10) % 100,
            1000 + i
        ));
    }
    text
}

fn ticks(text: &str) -> Vec<Tick> {
    let mut file = CsvFile::from_reader(
        "bench.csv",
        "",
        Box::new(std::io::Cursor::new(text.as_bytes().to_vec())),
        chrono_tz::UTC,
    )
    .unwrap();
    let mut out = Vec::new();
    while let Some(line) = file.next_line() {
        match line {
            Line::Tick(tick) => out.push(tick),
            Line::Reject(r) => panic!("bench input refused: {}", r.reason),
        }
    }
    out
}

fn hot_paths(c: &mut Criterion) {
    let text = csv_text();
    let ticks = ticks(&text);
    assert_eq!(ticks.len(), ROWS);
    let messages: Vec<Vec<u8>> = ticks.iter().map(Tick::to_json).collect();

    let mut group = c.benchmark_group("per record");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.bench_function("CSV row → Tick", |b| {
        b.iter(|| ticks_of(black_box(&text)))
    });
    group.bench_function("Tick → JSON", |b| {
        b.iter(|| ticks.iter().map(|t| t.to_json().len()).sum::<usize>())
    });
    group.bench_function("JSON → Tick", |b| {
        b.iter(|| {
            messages
                .iter()
                .map(|m| {
                    Tick::from_json(black_box(m), chrono_tz::UTC)
                        .unwrap()
                        .volume
                })
                .sum::<rust_decimal::Decimal>()
        })
    });
    group.finish();

    let batch: Vec<&Tick> = ticks.iter().take(5000).collect();
    let mut group = c.benchmark_group("per batch");
    group.throughput(Throughput::Elements(batch.len() as u64));
    group.bench_function("batch → LOAD DATA file", |b| {
        b.iter_batched(
            || batch.clone(),
            |batch| black_box(load_file(&batch).len()),
            BatchSize::SmallInput,
        )
    });
    group.finish();

    // Each row its own minute, as in the bench's data: a bar per row.
    let rows: Vec<Bar> = ticks
        .iter()
        .map(|t| Bar::from_row(t.timestamp, [t.open, t.high, t.low, t.close], t.volume).unwrap())
        .collect();
    let indicated: Vec<(Bar, Indicators)> = {
        let mut state = IndicatorState::default();
        rows.iter()
            .map(|bar| (bar.clone(), state.next(bar).unwrap()))
            .collect()
    };
    let mut group = c.benchmark_group("per bar");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.bench_function("row → bar and indicators", |b| {
        b.iter(|| {
            let mut state = IndicatorState::default();
            ticks
                .iter()
                .map(|t| {
                    let bar =
                        Bar::from_row(t.timestamp, [t.open, t.high, t.low, t.close], t.volume)
                            .unwrap();
                    state.next(black_box(&bar)).unwrap().ema_20
                })
                .sum::<f64>()
        })
    });
    group.bench_function("bar → judged by the default alert rules", |b| {
        b.iter(|| {
            let start = rows[0].start;
            let mut judge = Paged::new(default_rules(), "HDFCBANK", start, LOOKBACK);
            judge.page(
                rows.iter()
                    .map(|bar| BarPoint {
                        minute: bar.start,
                        close: bar.close,
                        volume: bar.volume.to_f64(),
                    })
                    .collect(),
            );
            black_box(judge.fired.len())
        })
    });
    group.bench_function("bars → LOAD DATA file", |b| {
        b.iter(|| black_box(bar_file("HDFCBANK", &indicated).len()))
    });
    group.finish();
}

/// The default rules' longest lookback (30 minutes), as the rollup stage gives it.
const LOOKBACK: std::time::Duration = std::time::Duration::from_secs(30 * 60);

fn ticks_of(text: &str) -> usize {
    ticks(text).len()
}

criterion_group!(benches, hot_paths);
criterion_main!(benches);
