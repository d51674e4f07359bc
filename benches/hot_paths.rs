//! Micro-benchmarks of the per-record hot paths: CSV row → Tick, Tick → JSON, JSON → Tick, and
//! a batch → the file its LOAD DATA reads. `cargo bench`.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

use tickpipe::ingest::csv_file::{CsvFile, Line};
use tickpipe::store::load_file;
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
}

fn ticks_of(text: &str) -> usize {
    ticks(text).len()
}

criterion_group!(benches, hot_paths);
criterion_main!(benches);
