//! The Spark Structured Streaming processor (`spark/tickpipe_job.py`, started by
//! `scripts/spark.sh`: pyspark 4.2 on local[2], Spark's own Kafka source) against the real
//! appliance: on the same topics, with bad lines and malformed messages, it stores exactly
//! what tickpipe's own processor stores — rows, refused records, bars, indicators, quotes and
//! offsets — also when its driver is SIGKILLed mid-stream and started again.

mod common;

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Appliance, BIN, as_refs, fresh_pipeline, generate, topics_env};
use sqlx::{MySqlPool, Row};

/// Everything a processor leaves in MySQL, as text, in key order (commit times left out).
async fn snapshot(pool: &MySqlPool) -> Vec<Vec<String>> {
    let queries = [
        "SELECT CONCAT_WS('|', Bank_Name, `Timestamp`, Open, High, Low, Close, Volume) \
         FROM stock_data ORDER BY Bank_Name, `Timestamp`",
        "SELECT CONCAT_WS('|', source, stage, reason, raw) FROM rejected_ticks ORDER BY source",
        "SELECT CONCAT_WS('|', Bank_Name, `Timestamp`, Open, High, Low, Close, Volume, Turnover, \
         Ticks, IFNULL(SMA_20, '-'), IFNULL(SMA_50, '-'), EMA_20, IFNULL(VWAP, '-'), \
         IFNULL(Volatility_20, '-'), Session_Volume, Session_Turnover) \
         FROM bars_1m ORDER BY Bank_Name, `Timestamp`",
        "SELECT CONCAT_WS('|', Bank_Name, `Timestamp`, Price, IFNULL(Prev_Close, '-'), \
         Day_Open, Day_High, Day_Low, Day_Volume) FROM latest_quotes ORDER BY Bank_Name",
        "SELECT CONCAT_WS('|', topic, `partition`, next_offset) FROM pipeline_offsets \
         ORDER BY topic, `partition`",
    ];
    let mut tables = Vec::new();
    for query in queries {
        let rows = sqlx::query(query).fetch_all(pool).await.unwrap();
        tables.push(rows.iter().map(|r| r.get::<String, _>(0)).collect());
    }
    tables
}

/// `scripts/spark.sh` for the appliance and topics, leading a process group of its own, and
/// killed if it runs past 10 minutes (a drain that cannot end fails the test, not CI).
fn spark(appliance: &Appliance, env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut command = Command::new("timeout");
    command
        .args(["--signal=KILL", "600"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/spark.sh"))
        .args(["--tickpipe", BIN, "--state-dir"])
        .arg(appliance.dir())
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .process_group(0);
    command
}

/// SIGKILLs a process group when dropped: the test's kill, and no job left running when an
/// assertion fails first.
struct KillGroup(i32);

impl Drop for KillGroup {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.0),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn spark_stores_what_tickpipe_stores_even_after_its_driver_is_killed() {
    let appliance = Appliance::shared();
    let root = fresh_pipeline(appliance, "sparkparity").await;
    let env = topics_env("sparkparity");
    let env = as_refs(&env);

    // Three symbols' days, a line the producer refuses, and messages only a processor can
    // refuse (not JSON, a negative price), sent as a foreign producer would.
    let input = tempfile::tempdir().unwrap();
    generate(input.path(), 3, 2, 71);
    std::fs::write(
        input.path().join("broken.csv"),
        "timestamp,symbol,open,high,low,close,volume\n\
         2024-01-02 09:15:00,BROKEN,abc,1,1,1,1\n\
         2024-01-02 09:16:00,BROKEN,10,11,9,10.5,100\n",
    )
    .unwrap();
    appliance.run(
        &[
            "produce",
            "--data",
            &format!("{}/*.csv", input.path().display()),
        ],
        &env,
    );
    let console = appliance.kafka_tool(
        "app",
        "org.apache.kafka.tools.ConsoleProducer",
        &[
            "--bootstrap-server",
            &appliance.bootstrap(),
            "--topic",
            "sparkparity_ticks",
        ],
        Some(
            "not json at all\n\
             {\"timestamp\":\"2024-01-02T09:17:00Z\",\"symbol\":\"BROKEN\",\"open\":\"-1\",\
             \"high\":\"1\",\"low\":\"1\",\"close\":\"1\",\"volume\":\"1\"}\n",
        ),
    );
    assert!(
        console.status.success(),
        "{}",
        String::from_utf8_lossy(&console.stderr)
    );

    // tickpipe's own processor.
    appliance.run(&["process", "--drain"], &env);
    let expected = snapshot(&root).await;
    assert_eq!(expected[0].len(), 2 * 375 * 3 + 1, "the good rows");
    assert_eq!(
        expected[1].len(),
        3,
        "one refused line, two refused messages"
    );
    assert!(expected[2].len() > 2000 && !expected[3].is_empty());

    // The Spark job on the same topics from nothing: killed (driver, its Python and the
    // processor it feeds, at once) once it has committed something, then started again.
    fresh_pipeline(appliance, "sparkparity").await;
    let mut first = spark(appliance, &env, &["--max-offsets-per-trigger", "300"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let group = KillGroup(first.id() as i32);
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let committed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM stock_data")
            .fetch_one(&root)
            .await
            .unwrap();
        if committed > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the Spark job committed nothing");
        assert!(first.try_wait().unwrap().is_none(), "the Spark job stopped");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(group);
    first.wait().unwrap();
    let partial: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM stock_data")
        .fetch_one(&root)
        .await
        .unwrap();
    assert!(
        (partial as usize) < expected[0].len(),
        "killed mid-stream ({partial} rows)"
    );

    let second = spark(appliance, &env, &["--drain"]).output().unwrap();
    assert!(
        second.status.success(),
        "the Spark job failed:\n{}",
        String::from_utf8_lossy(&second.stderr)
    );
    // Spark's launcher puts the job's stderr (the processor's log) on its stdout too: the
    // summary is the last line.
    let said = String::from_utf8_lossy(&second.stdout);
    let last = said.lines().last().unwrap_or_default();
    let summary: serde_json::Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("{e}: no JSON summary last in:\n{said}"));
    assert!(summary["rows"].as_u64().unwrap() > 0, "{summary}");

    let stored = snapshot(&root).await;
    for (table, (spark, ours)) in ["stock_data", "rejected_ticks", "bars_1m", "latest_quotes"]
        .iter()
        .zip(stored.iter().zip(&expected))
    {
        assert_eq!(spark, ours, "{table}: Spark's differs from tickpipe's");
    }
    // Offsets reached on the ticks topic are the same; the dead-letter topic holds each run's
    // published refusals, so its end moved on.
    let ticks_offsets = |tables: &Vec<Vec<String>>| -> Vec<String> {
        tables[4]
            .iter()
            .filter(|o| o.starts_with("sparkparity_ticks|"))
            .cloned()
            .collect()
    };
    assert_eq!(ticks_offsets(&stored), ticks_offsets(&expected));
}
