//! The report as the table `tickpipe bench` prints.

use super::{Report, Throughput};

/// The report as a table.
pub fn render(r: &Report) -> String {
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    let mb = |t: &Throughput| {
        t.mb_per_second
            .map(|m| format!(", {m:.1} MB/s"))
            .unwrap_or_default()
    };
    let mut lines = vec![
        format!(
            "tickpipe bench: {} rows ({:.0}-byte JSON records), median of {} runs",
            r.rows, r.record_bytes, r.runs
        ),
        String::new(),
        format!(
            "{:<34} {:>26}   {:<44} {:>7}",
            "stage", "tickpipe", "anchor (same run)", "ratio"
        ),
        format!(
            "{:<34} {:>26}   {:<44} {:>6.2}×",
            "producer CSV → Kafka (acks=all)",
            format!("{:.0} rec/s{}", r.producer.per_second, mb(&r.producer)),
            format!(
                "kafka-producer-perf-test {:.0} rec/s{}",
                r.perf_test.per_second,
                mb(&r.perf_test)
            ),
            ratio(r.producer.per_second, r.perf_test.per_second)
        ),
        format!(
            "{:<34} {:>26}   {:<44} {:>6.2}×",
            "processor Kafka → MySQL (1×)",
            format!("{:.0} rows/s", r.processor.per_second),
            format!(
                "LOAD DATA LOCAL INFILE {:.0} rows/s",
                r.load_data.per_second
            ),
            ratio(r.processor.per_second, r.load_data.per_second)
        ),
        format!(
            "{:<34} {:>26}   {:<44} {:>6.1}×",
            "",
            "",
            format!("row-by-row INSERT {:.0} rows/s", r.row_by_row.per_second),
            ratio(r.processor.per_second, r.row_by_row.per_second)
        ),
        format!(
            "{:<34} {:>26}   rollups of the drained rows done at {:.2}× the rows' own time",
            "rollup stage (after the rows)", "", r.rollups_time_factor
        ),
        format!(
            "CPU of the drain (median run, {:.1} s wall × {} cores = {:.1} core-s): tickpipe \
             {:.1} s, MariaDB {:.1} s, Kafka {:.1} s",
            r.processor_cpu.wall_seconds,
            r.processor_cpu.cores,
            r.processor_cpu.cores as f64 * r.processor_cpu.wall_seconds,
            r.processor_cpu.tickpipe,
            r.processor_cpu.mariadb,
            r.processor_cpu.kafka
        ),
        String::new(),
        "latency produce → committed row, → in its bars and latest quote, → on the dashboard \
         (a quote as new received over its event stream; HDR histograms)"
            .into(),
    ];
    for l in &r.latency {
        let [p50, p95, p99, max] = l.in_quotes_ms;
        let [d50, d95, d99, dmax] = l.on_dashboard_ms;
        lines.push(format!(
            "  {:>6} rows/s ({} rows): p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n\
             {:>28}in quotes: p50 {p50:.1} ms, p95 {p95:.1} ms, p99 {p99:.1} ms, max {max:.1} ms\n\
             {:>24}on the page: p50 {d50:.1} ms, p95 {d95:.1} ms, p99 {d99:.1} ms, max {dmax:.1} ms",
            l.rate, l.rows, l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms, "", ""
        ));
    }
    if let Some(spark) = &r.spark {
        let [p50, p95, p99, max] = spark.latency_ms;
        lines.push(String::new());
        lines.push(format!(
            "Spark job (scripts/spark.sh, local[2]) on the processor's topic: {:.0} rows/s over \
             the rows' own time ({:.2}× tickpipe's), {:.1} s from start to drained\n  \
             {:>6} rows/s: p50 {p50:.1} ms, p95 {p95:.1} ms, p99 {p99:.1} ms, max {max:.1} ms",
            spark.rows_per_second,
            ratio(spark.rows_per_second, r.processor.per_second),
            spark.end_to_end_seconds,
            spark.rate
        ));
    }
    lines.push(String::new());
    let status = &r.status;
    lines.push(format!(
        "status with {} rows stored: {:.0} ms ({}{} rows{}), --exact {:.0} ms ({} rows)",
        status.rows_stored,
        status.default_ms,
        if status.default_exact { "" } else { "≈ " },
        status.default_rows,
        if status.default_exact {
            ", counted"
        } else {
            ", table statistics"
        },
        status.exact_ms,
        status.exact_rows
    ));
    lines.push(format!("up → ready: {:.1} s", r.up_ready_seconds));
    lines.push(format!(
        "peak RSS: producer {:.0} MB, processor {:.0} MB, supervisor (up) {:.0} MB",
        r.peak_rss_mb.producer, r.peak_rss_mb.processor, r.peak_rss_mb.up
    ));
    lines.join("\n")
}
