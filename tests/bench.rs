//! `tickpipe bench` end to end on a tiny input: every figure is measured (none missing or
//! zero, each in the order a user would expect), against a private appliance it starts and
//! stops itself.

mod common;

use std::process::Command;

use common::BIN;

/// A JSON array of figures (p50, p95, p99, max).
fn figures(array: &serde_json::Value) -> Vec<f64> {
    array
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

#[test]
fn bench_measures_every_stage_beside_its_anchor() {
    let state = tempfile::tempdir().unwrap();
    let output = Command::new(BIN)
        .arg("--state-dir")
        .arg(state.path())
        .args(["bench", "--symbols", "2", "--days", "1", "--runs", "1"])
        .args([
            "--rates",
            "200",
            "--latency-seconds",
            "2",
            "--row-by-row-seconds",
            "1",
        ])
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "bench failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["rows"], 750, "2 symbols x 375 one-minute rows");
    for figure in [
        "producer",
        "perf_test",
        "processor",
        "load_data",
        "row_by_row",
    ] {
        let per_second = report[figure]["per_second"].as_f64().unwrap();
        assert!(per_second > 0.0, "{figure}: {report}");
    }
    // `status` with the drained rows stored: a small table is counted, both ways.
    let status = &report["status"];
    assert_eq!(status["rows_stored"], 750, "{report}");
    assert_eq!(status["exact_rows"], 750, "{report}");
    assert_eq!(status["default_rows"], 750, "{report}");
    assert_eq!(status["default_exact"], true, "{report}");
    assert!(status["default_ms"].as_f64().unwrap() > 0.0, "{report}");
    // The rollups finish after the rows, never before.
    let factor = report["rollups_time_factor"].as_f64().unwrap();
    assert!(factor >= 1.0, "{report}");
    let latency = &report["latency"][0];
    assert_eq!(latency["rows"], 400, "2 s at 200 rows/s: {report}");
    let (p50, p99) = (
        latency["p50_ms"].as_f64().unwrap(),
        latency["p99_ms"].as_f64().unwrap(),
    );
    assert!(0.0 < p50 && p50 <= p99, "{report}");
    // Rows reach their bars and quote after they commit.
    let in_quotes = figures(&latency["in_quotes_ms"]);
    assert!(
        p50 <= in_quotes[0] && in_quotes[0] <= in_quotes[2],
        "{report}"
    );
    // A quote reaches the page after it is in latest_quotes (serve polls it).
    let on_page = figures(&latency["on_dashboard_ms"]);
    assert!(
        in_quotes[0] <= on_page[0] && on_page[0] <= on_page[2] && on_page[2] <= on_page[3],
        "{report}"
    );
    // The drain's CPU is measured in each process, and none used more than the machine had.
    let cpu = &report["processor_cpu"];
    let available = cpu["wall_seconds"].as_f64().unwrap() * cpu["cores"].as_f64().unwrap();
    for process in ["tickpipe", "mariadb", "kafka"] {
        let used = cpu[process].as_f64().unwrap();
        assert!(0.0 < used && used <= available, "{process}: {report}");
    }
    assert!(report["up_ready_seconds"].as_f64().unwrap() > 0.0);
    for stage in ["up", "producer", "processor"] {
        assert!(
            report["peak_rss_mb"][stage].as_f64().unwrap() > 1.0,
            "{stage}: {report}"
        );
    }
    // Nothing of the bench appliance is left behind.
    assert!(common::processes_mentioning("tickpipe-bench-").is_empty());
}

/// A rate given twice is refused before anything starts: its step would measure its topic's
/// re-creation, not the pipeline.
#[test]
fn bench_refuses_a_rate_given_twice() {
    let state = tempfile::tempdir().unwrap();
    let output = Command::new(BIN)
        .arg("--state-dir")
        .arg(state.path())
        .args(["bench", "--rates", "5000,1000,5000"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--rates: 5000 is given twice"), "{stderr}");
    assert!(
        std::fs::read_dir(state.path()).unwrap().next().is_none(),
        "nothing started: {stderr}"
    );
}
