//! Nothing stops the pipeline: poison rows, a failing stage, data MySQL refuses, transactions
//! of other producers, a recreated topic, a stalled MariaDB, another partitioner, inputs that
//! would take unbounded memory, and keys that look alike. Real Kafka (KRaft) and MariaDB.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rust_decimal::Decimal;
use sqlx::Row;

/// Tests on the shared appliance clear its tables: they take turns.
static SHARED_TABLES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const SEED_HEADER: &str = "Timestamp,Bank_Name,Open,High,Low,Close,Volume\n";

/// `produce` then `process --drain` on private topics of the shared appliance.
fn produce_and_drain(appliance: &Appliance, env: &[(&str, &str)], pattern: &str) {
    appliance.run(&["produce", "--data", pattern], env);
    appliance.run(&["process", "--drain"], env);
}

/// Runs `checks`, then `undo` whether they passed or panicked (a test that changes the shared
/// server puts it back), then passes a panic on.
async fn undone_after(
    checks: impl std::future::Future<Output = ()>,
    undo: impl std::future::Future<Output = ()>,
) {
    let result = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(checks)).await;
    undo.await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

async fn scalar_text(pool: &sqlx::MySqlPool, sql: &'static str) -> String {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Sends raw message values to a topic with rskafka (as a foreign producer would).
/// Kafka client settings for a login, as the Java producer takes them (`key=value` arguments).
fn java_login(broker: &tickpipe::broker::Endpoint) -> Vec<String> {
    let login = broker.login.as_ref().expect("a login");
    login
        .client_properties()
        .lines()
        .map(String::from)
        .collect()
}

async fn send_raw(
    broker: &tickpipe::broker::Endpoint,
    topic: &str,
    partition: i32,
    messages: &[(&str, String)],
) {
    let broker = tickpipe::broker::Broker::connect(broker, Duration::from_secs(30))
        .await
        .unwrap();
    let client = broker.partition(topic, partition).await.unwrap();
    let records = messages
        .iter()
        .map(|(key, value)| rskafka::record::Record {
            key: Some(key.as_bytes().to_vec()),
            value: Some(value.as_bytes().to_vec()),
            headers: Default::default(),
            timestamp: chrono::Utc::now(),
        })
        .collect();
    client
        .produce(
            records,
            rskafka::client::partition::Compression::NoCompression,
        )
        .await
        .unwrap();
}

fn tick_json(symbol: &str, at: &str, close: &str, volume: &str) -> String {
    format!(
        r#"{{"timestamp":"{at}","symbol":"{symbol}","open":"{close}","high":"{close}","low":"{close}","close":"{close}","volume":{volume}}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_rows_are_refused_or_summed_exactly_and_the_rows_around_them_stored() {
    let _turn = SHARED_TABLES.lock().await;
    let appliance = Appliance::shared();
    let root = fresh_pipeline(appliance, "poison").await;
    let env = topics_env("poison");
    let env = as_refs(&env);
    let dir = tempfile::tempdir().unwrap();
    write_file(
        &dir.path().join("POISON.csv"),
        &format!(
            "{SEED_HEADER}\
             2024-01-02 09:15:00,POISON,10,10,10,10,100\n\
             2024-01-02 09:16:00,POISON,10000000000,10000000000,10000000000,10000000000,9000000000000000000\n\
             2024-01-02 09:17:00,POISON,1,1,1,1,9000000000000000000\n\
             2024-01-02 09:17:30,POISON,1,1,1,1,9000000000000000000\n\
             2024-01-02 09:18:00,POISON,10,10,10,10,100\n"
        ),
    );
    // The same poison from a producer that skips tickpipe's checks.
    send_raw(
        &appliance.broker_admin(),
        "poison_ticks",
        0,
        &[(
            "POISON",
            tick_json(
                "POISON",
                "2024-01-02T09:19:00Z",
                "10000000000",
                "9000000000000000000",
            ),
        )],
    )
    .await;
    produce_and_drain(appliance, &env, &format!("{}/*.csv", dir.path().display()));

    let rows: Vec<(String, i64)> = sqlx::query(
        "SELECT DATE_FORMAT(`Timestamp`, '%H:%i:%s'), CAST(Volume AS SIGNED) FROM stock_data \
         ORDER BY `Timestamp`",
    )
    .fetch_all(&root)
    .await
    .unwrap()
    .into_iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    assert_eq!(
        rows,
        [
            ("09:15:00".into(), 100),
            ("09:17:00".into(), 9_000_000_000_000_000_000),
            ("09:17:30".into(), 9_000_000_000_000_000_000),
            ("09:18:00".into(), 100),
        ]
    );
    // Two rows of one minute sum beyond i64: the bar holds the exact sum.
    assert_eq!(
        scalar_text(
            &root,
            "SELECT CAST(Volume AS CHAR) FROM ohlcv_1m WHERE `Timestamp` = '2024-01-02 09:17:00'"
        )
        .await,
        "18000000000000000000.00000000"
    );
    assert_eq!(
        scalar_text(&root, "SELECT CAST(Day_Volume AS CHAR) FROM latest_quotes").await,
        "18000000000000000200.00000000"
    );
    let refused = rejected(&root).await;
    assert_eq!(refused.len(), 2, "{refused:?}");
    for (source, stage, reason) in &refused {
        assert!(
            reason.contains("beyond the largest turnover a row may have"),
            "{source} {stage}: {reason}"
        );
    }
    assert!(
        refused
            .iter()
            .any(|r| r.1 == "ingest" && r.0.ends_with("/POISON.csv:3"))
    );
    assert!(
        refused
            .iter()
            .any(|r| r.1 == "process" && r.0.starts_with("poison_ticks/0/"))
    );
    let status = appliance.status(&env);
    assert_eq!(status["lag"], 0, "{status:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_stage_is_restarted_and_reported_by_status_and_healthz() {
    let dir = tempfile::tempdir().unwrap();
    generate(&dir.path().join("first"), 2, 2, 21);
    generate(&dir.path().join("more"), 2, 1, 22);
    // Later days than the first files: rows of their own.
    let mut expected = input_totals(&csv_files(&dir.path().join("first")));
    let first_rows: i64 = expected.values().map(|t| t.0).sum();
    // One line again in a file of its own: counted as an identical duplicate.
    let again = std::fs::read_to_string(&csv_files(&dir.path().join("first"))[0]).unwrap();
    let line = again.lines().nth(1).unwrap();
    write_file(
        &dir.path().join("first/zz_again.csv"),
        &format!("{SEED_HEADER}{line}\n"),
    );
    let pattern = format!("{}/first/*.csv", dir.path().display());
    let mut appliance = Appliance::start(&["--data", &pattern], &[]);
    let replayed = appliance.wait_status(&[], Duration::from_secs(60), |s| {
        s["rows"] == first_rows && s["stages"]["producer"]["state"] == "finished"
    });
    let producer = &replayed["stages"]["producer"]["counts"];
    assert_eq!(producer["records"], first_rows + 1, "{replayed:#}");
    assert_eq!(producer["duplicates_identical"], 1, "{replayed:#}");
    assert_eq!(producer["duplicates_conflicting"], 0, "{replayed:#}");
    let root = appliance.root_pool().await;

    // The processor cannot commit without its offsets table: a permanent error, not retried.
    sqlx::query("RENAME TABLE pipeline_offsets TO pipeline_offsets_parked")
        .execute(&root)
        .await
        .unwrap();
    let more = tempfile::tempdir().unwrap();
    for (i, file) in csv_files(&dir.path().join("more")).iter().enumerate() {
        // Same symbols, other days: shift the dates a week on.
        let text = std::fs::read_to_string(file)
            .unwrap()
            .replace("2024-01-0", "2024-01-1");
        write_file(&more.path().join(format!("m{i}.csv")), &text);
    }
    let more_pattern = format!("{}/*.csv", more.path().display());
    appliance.run(&["produce", "--data", &more_pattern], &[]);
    let degraded = appliance.wait_status(&[], Duration::from_secs(60), |s| {
        s["stages"]["processor"]["state"] == "restarting"
    });
    let processor = &degraded["stages"]["processor"];
    assert!(processor["restarts"].as_u64().unwrap() >= 1, "{degraded:#}");
    assert!(
        processor["last_error"]
            .as_str()
            .unwrap()
            .contains("pipeline_offsets"),
        "{degraded:#}"
    );
    // The stage keeps failing, but each restart runs a moment: status and /healthz are read
    // until they catch it down (within a few restarts).
    let started = Instant::now();
    let shown = loop {
        let text = appliance.tickpipe(&["status"]).output().unwrap();
        let shown = String::from_utf8_lossy(&text.stdout).into_owned();
        if !text.status.success() {
            break shown;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "status never exits non-zero while a stage is down: {shown}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        shown.contains("DEGRADED") && shown.contains("processor"),
        "{shown}"
    );
    let started = Instant::now();
    let health = loop {
        let (code, body) = http_get(&format!("{}healthz", appliance.dashboard_url()));
        if code == 503 {
            break serde_json::from_str::<serde_json::Value>(&body).unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "/healthz never 503 while a stage is down: {code} {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(health["status"], "degraded", "{health:#}");
    assert_eq!(health["stages"]["processor"]["state"], "restarting");

    // Repaired: the next restart goes on, and nothing is lost.
    sqlx::query("RENAME TABLE pipeline_offsets_parked TO pipeline_offsets")
        .execute(&root)
        .await
        .unwrap();
    for file in csv_files(more.path()) {
        for (symbol, t) in input_totals(&[file]) {
            let e = expected
                .entry(symbol)
                .or_insert((0, Decimal::ZERO, Decimal::ZERO));
            (e.0, e.1, e.2) = (e.0 + t.0, e.1 + t.1, e.2 + t.2);
        }
    }
    let total: i64 = expected.values().map(|t| t.0).sum();
    let healthy = appliance.wait_status(&[], Duration::from_secs(90), |s| {
        s["rows"] == total && s["stages"]["processor"]["state"] == "running"
    });
    assert_eq!(healthy["lag"], 0, "{healthy:#}");
    assert_eq!(stored_totals(&root).await, expected);
    let (code, body) = http_get(&format!("{}healthz", appliance.dashboard_url()));
    assert_eq!(code, 200, "{body}");
    assert!(
        appliance.interrupt(),
        "`up` exits with 0 after a stage recovered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_mysql_refuses_are_found_in_their_batch_quarantined_and_the_rest_commits() {
    let _turn = SHARED_TABLES.lock().await;
    let appliance = Appliance::shared();
    let root = fresh_pipeline(appliance, "refuse").await;
    let env = topics_env("refuse");
    let env = as_refs(&env);
    // The table's owner allows no volume of a billion or more: MySQL refuses such rows.
    sqlx::query(
        "ALTER TABLE stock_data ADD CONSTRAINT test_volume_cap CHECK (Volume < 1000000000)",
    )
    .execute(&root)
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 2, 2, 5);
    let mut expected = input_totals(&csv_files(dir.path()));
    write_file(
        &dir.path().join("CAP.csv"),
        &format!(
            "{SEED_HEADER}\
             2024-03-01 09:15:00,CAPBANK,10,10,10,10,5\n\
             2024-03-01 09:16:00,CAPBANK,10,10,10,10,5000000000\n\
             2024-03-01 09:17:00,CAPBANK,10,10,10,10,7\n\
             2024-03-01 09:18:00,CAPBANK,10,10,10,10,6000000000\n"
        ),
    );
    expected.insert("CAPBANK".into(), (2, Decimal::from(12), Decimal::from(20)));
    undone_after(
        async {
            produce_and_drain(appliance, &env, &format!("{}/*.csv", dir.path().display()));
            assert_eq!(stored_totals(&root).await, expected);
            let refused = rejected(&root).await;
            let sources: Vec<&str> = refused
                .iter()
                .map(|r| r.0.rsplit('/').next().unwrap())
                .collect();
            assert_eq!(sources, ["CAP.csv:3", "CAP.csv:5"], "{refused:?}");
            for (_, stage, reason) in &refused {
                assert_eq!(stage, "store");
                assert!(
                    reason.contains("refused by MySQL") && reason.contains("test_volume_cap"),
                    "{reason}"
                );
            }
            // The quarantined rows' bars are not there; the others' are.
            let bars: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM ohlcv_1m WHERE Bank_Name = 'CAPBANK'")
                    .fetch_one(&root)
                    .await
                    .unwrap();
            assert_eq!(bars, 2);
            assert_eq!(appliance.status(&env)["lag"], 0);
        },
        async {
            sqlx::query("ALTER TABLE stock_data DROP CONSTRAINT test_volume_cap")
                .execute(&root)
                .await
                .unwrap();
        },
    )
    .await;
}

/// A batch goes in as one LOAD DATA LOCAL INFILE, which, outside a strict session, stores a
/// value out of a column's range clipped with a warning where an INSERT refuses it: the value
/// must be quarantined, never stored clipped — also on a server whose default mode is neither
/// strict nor backslash-escaping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_a_bulk_load_would_clip_is_quarantined_whatever_the_servers_mode() {
    let _turn = SHARED_TABLES.lock().await;
    let appliance = Appliance::shared();
    let root = fresh_pipeline(appliance, "clip").await;
    let env = topics_env("clip");
    let env = as_refs(&env);
    // The table's owner narrowed the volumes: at most 9,999,999,999.99.
    sqlx::query("ALTER TABLE stock_data MODIFY Volume DECIMAL(12, 2) NOT NULL")
        .execute(&root)
        .await
        .unwrap();
    let mode: String = sqlx::query_scalar("SELECT @@GLOBAL.sql_mode")
        .fetch_one(&root)
        .await
        .unwrap();
    sqlx::query("SET GLOBAL sql_mode = 'NO_BACKSLASH_ESCAPES'")
        .execute(&root)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_file(
        &dir.path().join("CLIP.csv"),
        &format!(
            "{SEED_HEADER}\
             2024-03-01 09:15:00,CLIPBANK,10,10,10,10,5\n\
             2024-03-01 09:16:00,CLIPBANK,10,10,10,10,50000000000\n\
             2024-03-01 09:17:00,CLIPBANK,10,10,10,10,7\n\
             2024-03-01 09:15:00,CLIP\\BANK,11,11,11,11,3\n"
        ),
    );
    undone_after(
        async {
            produce_and_drain(appliance, &env, &format!("{}/*.csv", dir.path().display()));
            let volumes: Vec<(String, Decimal)> = sqlx::query_as(
                "SELECT DATE_FORMAT(`Timestamp`, '%H:%i'), Volume FROM stock_data \
                 WHERE Bank_Name = 'CLIPBANK' ORDER BY `Timestamp`",
            )
            .fetch_all(&root)
            .await
            .unwrap();
            assert_eq!(
                volumes,
                [
                    ("09:15".to_string(), Decimal::from(5)),
                    ("09:17".to_string(), Decimal::from(7))
                ]
            );
            // A backslash in a symbol is data, not an escape.
            let odd: Vec<(String, Decimal)> = sqlx::query_as(
                "SELECT Bank_Name, Close FROM stock_data \
                 WHERE Bank_Name LIKE 'CLIP%' AND Bank_Name <> 'CLIPBANK'",
            )
            .fetch_all(&root)
            .await
            .unwrap();
            assert_eq!(odd, [("CLIP\\BANK".to_string(), Decimal::from(11))]);
            let refused = rejected(&root).await;
            assert_eq!(refused.len(), 1, "{refused:?}");
            let (source, stage, reason) = &refused[0];
            assert!(source.ends_with("CLIP.csv:3"), "{source}");
            assert_eq!(stage, "store");
            assert!(reason.contains("error 1264"), "{reason}");
        },
        async {
            sqlx::query("SET GLOBAL sql_mode = ?")
                .bind(mode)
                .execute(&root)
                .await
                .unwrap();
            sqlx::query("ALTER TABLE stock_data MODIFY Volume DECIMAL(28, 8) NOT NULL")
                .execute(&root)
                .await
                .unwrap();
        },
    )
    .await;
}

/// A server that refuses LOAD DATA LOCAL INFILE (`local_infile` off, as on many managed
/// MySQL services) gets the batches as INSERTs, every row once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_local_infile_gets_every_row_as_inserts() {
    let _turn = SHARED_TABLES.lock().await;
    let appliance = Appliance::shared();
    let root = fresh_pipeline(appliance, "noinfile").await;
    let env = topics_env("noinfile");
    let env = as_refs(&env);
    sqlx::query("SET GLOBAL local_infile = 0")
        .execute(&root)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 3, 2, 40);
    let expected = input_totals(&csv_files(dir.path()));
    undone_after(
        async {
            let pattern = format!("{}/*.csv", dir.path().display());
            appliance.run(&["produce", "--data", &pattern], &env);
            let drained = appliance.run(&["process", "--drain"], &env);
            let log = String::from_utf8_lossy(&drained.stderr);
            assert!(log.contains("local_infile is off"), "{log}");
            assert_eq!(stored_totals(&root).await, expected);
            assert_rollups_match_the_rows(&root).await;
            let inserted = every_bar(&root).await;

            // The same bars recomputed and loaded by LOAD DATA are the same, to the digit.
            sqlx::query("SET GLOBAL local_infile = 1")
                .execute(&root)
                .await
                .unwrap();
            for sql in [
                "DELETE FROM bars_1m",
                "INSERT INTO rollup_pending (Bank_Name, From_Minute) \
                 SELECT Bank_Name, MIN(`Timestamp`) FROM stock_data GROUP BY Bank_Name",
            ] {
                sqlx::query(sql).execute(&root).await.unwrap();
            }
            let drained = appliance.run(&["process", "--drain"], &env);
            let log = String::from_utf8_lossy(&drained.stderr);
            assert!(!log.contains("local_infile is off"), "{log}");
            assert_eq!(every_bar(&root).await, inserted);
            assert_eq!(inserted.len(), 3 * 2 * 375, "a bar per generated minute");
        },
        async {
            sqlx::query("SET GLOBAL local_infile = 1")
                .execute(&root)
                .await
                .unwrap();
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_of_a_java_producer_are_read_committed_and_drain_ends() {
    let _turn = SHARED_TABLES.lock().await;
    let appliance = Appliance::shared();
    let root = fresh_pipeline(appliance, "txn").await;
    let env = topics_env("txn");
    let env = as_refs(&env);
    let line = |verb: &str, minute: u32, volume: u32| {
        format!(
            "{verb} TXN {}\n",
            tick_json(
                "TXN",
                &format!("2024-04-01T09:{minute:02}:00Z"),
                "10",
                &volume.to_string()
            )
        )
    };
    // plain, committed, aborted, committed, aborted, plain: on one partition.
    let mut input = String::new();
    input += &line("plain", 0, 1);
    input += &line("commit", 1, 2);
    input += &line("commit", 2, 3);
    input += &line("abort", 3, 1000);
    input += &line("abort", 4, 1000);
    input += &line("commit", 5, 4);
    input += &line("abort", 6, 1000);
    input += &line("plain", 7, 5);
    let mut producer = kafka_java();
    producer
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/java/TransactionalProducer.java"
        ))
        .args([&appliance.bootstrap(), "txn_ticks", "2"])
        .args(java_login(&appliance.broker_admin()));
    let output = feed(producer, &input);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let started = Instant::now();
    appliance.run(&["process", "--drain"], &env);
    assert!(started.elapsed() < Duration::from_secs(60), "--drain ended");
    let volumes: Vec<i64> =
        sqlx::query_scalar("SELECT CAST(Volume AS SIGNED) FROM stock_data ORDER BY `Timestamp`")
            .fetch_all(&root)
            .await
            .unwrap();
    assert_eq!(volumes, [1, 2, 3, 4, 5], "only committed and plain records");
    assert!(rejected(&root).await.is_empty());
    let status = appliance.status(&env);
    assert_eq!(status["lag"], 0, "{status:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_and_recreated_topic_is_read_from_its_start() {
    let _turn = SHARED_TABLES.lock().await;
    let appliance = Appliance::shared();
    let root = fresh_pipeline(appliance, "recreate").await;
    let env = topics_env("recreate");
    let env = as_refs(&env);
    let first = tempfile::tempdir().unwrap();
    generate(first.path(), 2, 1, 31);
    produce_and_drain(
        appliance,
        &env,
        &format!("{}/*.csv", first.path().display()),
    );
    let mut expected = input_totals(&csv_files(first.path()));

    let broker =
        tickpipe::broker::Broker::connect(&appliance.broker_admin(), Duration::from_secs(30))
            .await
            .unwrap();
    let old_id = broker.topic_id("recreate_ticks").await.unwrap();
    assert!(old_id.is_some(), "Kafka 4 reports topic ids");
    appliance.kafka_tool(
        "admin",
        "org.apache.kafka.tools.TopicCommand",
        &[
            "--bootstrap-server",
            &appliance.bootstrap(),
            "--delete",
            "--topic",
            "recreate_ticks",
        ],
        None,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while broker
        .topics()
        .await
        .unwrap()
        .contains_key("recreate_ticks")
    {
        assert!(Instant::now() < deadline, "the topic was not deleted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    broker.ensure_topic("recreate_ticks", 6).await.unwrap();
    assert_ne!(broker.topic_id("recreate_ticks").await.unwrap(), old_id);

    // Twice the records on the same symbols (so the same partitions): the new topic's
    // partitions reach past the stored offsets, where reading on would skip its first half.
    let second = tempfile::tempdir().unwrap();
    generate(second.path(), 2, 2, 32);
    for file in csv_files(second.path()) {
        let text = std::fs::read_to_string(&file)
            .unwrap()
            .replace("2024-01-", "2024-02-");
        std::fs::write(&file, text).unwrap();
    }
    for (symbol, t) in input_totals(&csv_files(second.path())) {
        let e = expected
            .entry(symbol)
            .or_insert((0, Decimal::ZERO, Decimal::ZERO));
        (e.0, e.1, e.2) = (e.0 + t.0, e.1 + t.1, e.2 + t.2);
    }
    produce_and_drain(
        appliance,
        &env,
        &format!("{}/*.csv", second.path().display()),
    );
    assert_eq!(stored_totals(&root).await, expected);
    let status = appliance.status(&env);
    let incidents = status["incidents"].as_array().unwrap();
    assert!(
        incidents
            .iter()
            .any(|i| i["kind"] == "topic_recreated" && i["topic"] == "recreate_ticks"),
        "{status:#}"
    );
    assert_eq!(status["lag"], 0, "{status:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_run_again_resumes_after_what_was_acknowledged() {
    use tickpipe::ingest::{self, Progress};
    let _turn = SHARED_TABLES.lock().await;
    let appliance = Appliance::shared();
    let root = fresh_pipeline(appliance, "resume").await;
    let env = topics_env("resume");
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 2, 1, 71);
    write_file(
        &dir.path().join("BAD.csv"),
        &format!("{SEED_HEADER}2024-01-01 09:15:00,BADBANK,1,1,1\n"),
    );
    let expected = input_totals(&csv_files(dir.path()));
    let lines: u64 = 750 + 1;
    let mut config = tickpipe::config::Config::default();
    config.topics.ticks = env[0].1.clone();
    config.topics.dlq = env[1].1.clone();
    let broker =
        tickpipe::broker::Broker::connect(&appliance.broker_admin(), Duration::from_secs(30))
            .await
            .unwrap();
    let files = csv_files(dir.path());
    let produce = |progress| {
        let (config, broker, files) = (config.clone(), broker.clone(), files.clone());
        async move {
            ingest::produce(
                &config,
                &broker,
                files,
                tokio_util::sync::CancellationToken::new(),
                false,
                progress,
            )
            .await
            .unwrap()
        }
    };
    // A run that failed after 300 acknowledged lines: the next one sends the rest.
    let progress = Progress::after(300);
    let summary = produce(&progress).await;
    assert_eq!(summary.records + summary.rejected, lines - 300);
    assert_eq!(progress.acknowledged(), lines);
    // Everything acknowledged: a run again sends nothing.
    let summary = produce(&progress).await;
    assert_eq!(summary.records + summary.rejected, 0);
    // The first 300 lines, as the failed run had sent them.
    let summary = produce(&Progress::default()).await;
    assert_eq!(summary.records + summary.rejected, lines);
    appliance.run(&["process", "--drain"], &as_refs(&env));
    assert_eq!(stored_totals(&root).await, expected);
    assert_eq!(rejected(&root).await.len(), 1);
}

/// Sends SIGCONT to a stopped process when dropped, however the test ends.
struct Stopped(i32);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = send(self.0, Signal::SIGCONT);
    }
}

fn wait_for_text(file: &Path, text: &str, timeout: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let log = std::fs::read_to_string(file).unwrap_or_default();
        if log.contains(text) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < timeout,
            "{text:?} not logged within {timeout:?}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_mariadb_is_reported_within_the_deadline_and_nothing_is_lost() {
    let _turn = SHARED_TABLES.lock().await;
    let appliance = Appliance::shared();
    let root = fresh_pipeline(appliance, "stall").await;
    let mut env = topics_env("stall");
    env.push(("TICKPIPE_MYSQL__STATEMENT_TIMEOUT".into(), "2s".into()));
    let env = as_refs(&env);
    let first = tempfile::tempdir().unwrap();
    generate(first.path(), 2, 1, 41);
    let mut expected = input_totals(&csv_files(first.path()));
    let first_rows: i64 = expected.values().map(|t| t.0).sum();
    appliance.run(
        &[
            "produce",
            "--data",
            &format!("{}/*.csv", first.path().display()),
        ],
        &env,
    );
    let log = first.path().join("process.err");
    let mut processor = appliance
        .tickpipe(&["process"])
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while stored_rows(&root).await < first_rows {
        assert!(Instant::now() < deadline, "the first rows were not stored");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(root);

    let mysqld: i32 = std::fs::read_to_string(appliance.dir().join("mysql/supervised.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let stalled = Stopped(mysqld);
    let _ = send(mysqld, Signal::SIGSTOP);
    let second = tempfile::tempdir().unwrap();
    generate(second.path(), 2, 1, 42);
    for file in csv_files(second.path()) {
        let text = std::fs::read_to_string(&file)
            .unwrap()
            .replace("2024-01-", "2024-03-");
        std::fs::write(&file, text).unwrap();
    }
    appliance.run(
        &[
            "produce",
            "--data",
            &format!("{}/*.csv", second.path().display()),
        ],
        &env,
    );
    let reported = wait_for_text(
        &log,
        "MySQL did not answer within 2s",
        Duration::from_secs(15),
    );
    eprintln!("stall reported after {reported:?}");

    // Ctrl-C while MySQL is stalled: out within the deadline, nothing half-done.
    let asked = Instant::now();
    let _ = send(processor.id(), Signal::SIGINT);
    loop {
        if processor.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(10),
            "`process` did not exit within 10 s of Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("process exited {:?} after Ctrl-C", asked.elapsed());

    drop(stalled);
    appliance.run(&["process", "--drain"], &env);
    for (symbol, t) in input_totals(&csv_files(second.path())) {
        let e = expected
            .entry(symbol)
            .or_insert((0, Decimal::ZERO, Decimal::ZERO));
        (e.0, e.1, e.2) = (e.0 + t.0, e.1 + t.1, e.2 + t.2);
    }
    let root = appliance.root_pool().await;
    assert_eq!(stored_totals(&root).await, expected);
    assert_eq!(appliance.status(&env)["lag"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_symbol_on_several_partitions_stays_exact_with_two_writers() {
    let _turn = SHARED_TABLES.lock().await;
    let appliance = Appliance::shared();
    let root = fresh_pipeline(appliance, "crc").await;
    let env = topics_env("crc");
    let env = as_refs(&env);
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 6, 4, 51);
    let files = csv_files(dir.path());
    let expected = input_totals(&files);
    // Each symbol's odd days through tickpipe (murmur2), even days through librdkafka (CRC32).
    let ours = dir.path().join("ours");
    std::fs::create_dir(&ours).unwrap();
    let mut foreign = String::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let mut mine = String::from(SEED_HEADER);
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            let day: u32 = f[0][8..10].parse().unwrap();
            if day % 2 == 1 {
                mine += line;
                mine.push('\n');
            } else {
                let at = format!("{}T{}Z", &f[0][..10], &f[0][11..]);
                let value = format!(
                    r#"{{"timestamp":"{at}","symbol":"{}","open":"{}","high":"{}","low":"{}","close":"{}","volume":{}}}"#,
                    f[1], f[2], f[3], f[4], f[5], f[6]
                );
                foreign += &format!("{}\t{value}\n", f[1]);
            }
        }
        std::fs::write(ours.join(file.file_name().unwrap()), mine).unwrap();
    }
    let mut python = Command::new("python3");
    python
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/librdkafka_producer.py"
        ))
        .args([&appliance.bootstrap(), "crc_ticks"]);
    let (user, password) = appliance.kafka_login("app");
    python.args([user, password]);
    let output = feed(python, &foreign);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let crc32: BTreeMap<String, i32> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| {
            let (symbol, p) = l.split_once(' ').unwrap();
            (symbol.to_string(), p.parse().unwrap())
        })
        .collect();
    // With two writers, partition p belongs to writer p % 2.
    let split: Vec<&String> = crc32
        .iter()
        .filter(|(s, p)| **p % 2 != tickpipe::broker::partition_for_key(s.as_bytes(), 6) % 2)
        .map(|(s, _)| s)
        .collect();
    assert!(
        !split.is_empty(),
        "some symbol is written by both writers: {crc32:?}"
    );
    eprintln!("symbols on both writers: {split:?}");

    appliance.run(
        &["produce", "--data", &format!("{}/*.csv", ours.display())],
        &env,
    );
    appliance.run(
        &["process", "--drain"],
        &[&env[..], &[("TICKPIPE_PROCESS__WRITERS", "2")]].concat(),
    );
    assert_eq!(stored_totals(&root).await, expected);
    assert_rollups_match_the_rows(&root).await;
}

/// Bars and latest quotes equal what SQL computes from `stock_data` directly.
/// One row written as another writer would (plain SQL), open = high = low = close = `price`.
async fn insert_flat_row(
    pool: &sqlx::MySqlPool,
    symbol: &str,
    at: chrono::NaiveDateTime,
    price: &str,
    volume: &str,
) {
    sqlx::query(
        "INSERT INTO stock_data (`Timestamp`, Bank_Name, Open, High, Low, Close, Volume) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(at)
    .bind(symbol)
    .bind(price)
    .bind(price)
    .bind(price)
    .bind(price)
    .bind(volume)
    .execute(pool)
    .await
    .unwrap();
}

/// Every column of every bar, as MySQL prints it.
async fn every_bar(root: &sqlx::MySqlPool) -> Vec<Vec<Option<String>>> {
    let rows = sqlx::query(
        "SELECT Bank_Name, CAST(`Timestamp` AS CHAR), CAST(Open AS CHAR), CAST(High AS CHAR), \
                CAST(Low AS CHAR), CAST(Close AS CHAR), CAST(Volume AS CHAR), \
                CAST(Turnover AS CHAR), CAST(Ticks AS CHAR), CAST(SMA_20 AS CHAR), \
                CAST(SMA_50 AS CHAR), CAST(EMA_20 AS CHAR), CAST(VWAP AS CHAR), \
                CAST(Volatility_20 AS CHAR), CAST(Session_Volume AS CHAR), \
                CAST(Session_Turnover AS CHAR) \
         FROM bars_1m ORDER BY Bank_Name, `Timestamp`",
    )
    .fetch_all(root)
    .await
    .unwrap();
    rows.iter()
        .map(|r| (0..16).map(|i| r.get::<Option<String>, _>(i)).collect())
        .collect()
}

async fn assert_rollups_match_the_rows(root: &sqlx::MySqlPool) {
    let differing: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM ( \
           SELECT Bank_Name, DATE_FORMAT(`Timestamp`, '%Y-%m-%d %H:%i:00') AS m, \
                  MAX(High) AS h, MIN(Low) AS l, SUM(Volume) AS v, COUNT(*) AS n, \
                  SUM(ROUND(Close * Volume, 8)) AS t \
           FROM stock_data GROUP BY Bank_Name, m) AS s \
         LEFT JOIN ohlcv_1m o ON o.Bank_Name = s.Bank_Name AND o.`Timestamp` = s.m \
         WHERE o.Bank_Name IS NULL OR o.High <> s.h OR o.Low <> s.l OR o.Volume <> s.v \
            OR o.Ticks <> s.n OR o.Turnover <> s.t",
    )
    .fetch_one(root)
    .await
    .unwrap();
    assert_eq!(differing, 0, "bars that differ from the rows");
    // Every minute with rows has its bar (above), and there are as many bars as such minutes.
    let (bars, minutes): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM ohlcv_1m), (SELECT COUNT(*) FROM (SELECT DISTINCT \
         Bank_Name, DATE_FORMAT(`Timestamp`, '%Y-%m-%d %H:%i') FROM stock_data) AS m)",
    )
    .fetch_one(root)
    .await
    .unwrap();
    assert_eq!(bars, minutes, "bars without rows");
    let stale: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM latest_quotes q \
         WHERE q.`Timestamp` <> (SELECT MAX(d.`Timestamp`) FROM stock_data d \
                                 WHERE d.Bank_Name = q.Bank_Name) \
            OR q.Price <> (SELECT d.Close FROM stock_data d WHERE d.Bank_Name = q.Bank_Name \
                           ORDER BY d.`Timestamp` DESC LIMIT 1)",
    )
    .fetch_one(root)
    .await
    .unwrap();
    assert_eq!(stale, 0, "latest quotes that are not the newest rows");
    let (quotes, symbols): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM latest_quotes), \
                (SELECT COUNT(DISTINCT Bank_Name) FROM stock_data)",
    )
    .fetch_one(root)
    .await
    .unwrap();
    assert_eq!(quotes, symbols);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_backfill_many_files_and_a_huge_line_stay_within_the_memory_bound() {
    const MB: u64 = 1 << 20;
    let _turn = SHARED_TABLES.lock().await;
    let appliance = Appliance::shared();
    let root = fresh_pipeline(appliance, "memory").await;
    let env = topics_env("memory");
    let env = as_refs(&env);
    let tickpipe = |args: &[&str]| {
        let mut command = appliance.tickpipe(args);
        command.envs(env.iter().copied());
        command
    };

    // 10,000 files, with the file descriptors of a common default (1024).
    let many = tempfile::tempdir().unwrap();
    for i in 0..10_000u32 {
        let (day, minute) = (1 + i / 1000, i % 1000);
        let text = format!(
            "{SEED_HEADER}2024-05-{day:02} {:02}:{:02}:00,FILES{},10,11,9,10,{i}\n",
            minute / 60,
            minute % 60,
            i % 10
        );
        std::fs::write(many.path().join(format!("f{i:05}.csv")), text).unwrap();
    }
    let (output, rss) = run_measured(
        tickpipe(&[
            "produce",
            "--json",
            "--data",
            &format!("{}/*.csv", many.path().display()),
        ]),
        Some(1024),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["records"], 10_000, "{summary}");
    eprintln!("produce of 10,000 files: peak RSS {} MB", rss / MB);
    assert!(rss < 200 * MB, "{} MB", rss / MB);

    // A 1 GB line between two good ones.
    let huge = tempfile::tempdir().unwrap();
    {
        let mut file = std::fs::File::create(huge.path().join("HUGE.csv")).unwrap();
        file.write_all(
            format!("{SEED_HEADER}2024-05-20 09:15:00,HUGE,1,1,1,1,1\n2024-05-20 09:16:00,HUGE,")
                .as_bytes(),
        )
        .unwrap();
        let block = vec![b'9'; 8 << 20];
        for _ in 0..128 {
            file.write_all(&block).unwrap();
        }
        file.write_all(b"\n2024-05-20 09:17:00,HUGE,1,1,1,1,3\n")
            .unwrap();
    }
    let (output, rss) = run_measured(
        tickpipe(&[
            "produce",
            "--json",
            "--data",
            &format!("{}/*.csv", huge.path().display()),
        ]),
        None,
    );
    drop(huge);
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        (summary["records"].clone(), summary["rejected"].clone()),
        (2.into(), 1.into())
    );
    eprintln!("produce of a 1 GB line: peak RSS {} MB", rss / MB);
    assert!(rss < 200 * MB, "{} MB", rss / MB);

    // A long history, then one row before it: the recomputation pages through the history.
    let history = tempfile::tempdir().unwrap();
    generate(history.path(), 1, 540, 61);
    let history_rows: i64 = input_totals(&csv_files(history.path()))
        .values()
        .map(|t| t.0)
        .sum();
    let started = Instant::now();
    produce_and_drain(
        appliance,
        &env,
        &format!("{}/*.csv", history.path().display()),
    );
    eprintln!(
        "{history_rows} rows of history stored in {:?}",
        started.elapsed()
    );
    let symbol: String = sqlx::query_scalar(
        "SELECT Bank_Name FROM stock_data GROUP BY Bank_Name ORDER BY COUNT(*) DESC LIMIT 1",
    )
    .fetch_one(&root)
    .await
    .unwrap();
    let late = tempfile::tempdir().unwrap();
    write_file(
        &late.path().join("LATE.csv"),
        &format!("{SEED_HEADER}2023-06-01 09:15:00,{symbol},10,10,10,10,1\n"),
    );
    appliance.run(
        &[
            "produce",
            "--data",
            &format!("{}/*.csv", late.path().display()),
        ],
        &env,
    );
    let started = Instant::now();
    let (output, rss) = run_measured(tickpipe(&["process", "--drain"]), None);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!(
        "backfill before {history_rows} rows: recomputed in {:?}, peak RSS {} MB",
        started.elapsed(),
        rss / MB
    );
    // The history alone is ~100 MB as rows in memory.
    assert!(rss < 100 * MB, "{} MB", rss / MB);
    assert_rollups_match_the_rows(&root).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn look_alike_symbols_and_same_named_files_do_not_merge() {
    let _turn = SHARED_TABLES.lock().await;
    let appliance = Appliance::shared();
    let root = fresh_pipeline(appliance, "alike").await;
    let env = topics_env("alike");
    let env = as_refs(&env);
    send_raw(
        &appliance.broker_admin(),
        "alike_ticks",
        1,
        &[
            ("LOOK", tick_json("LOOK", "2024-06-03T09:15:00Z", "10", "1")),
            (
                "LOOK ",
                tick_json("LOOK ", "2024-06-03T09:16:00Z", "11", "2"),
            ),
            (
                " LOOK",
                tick_json(" LOOK", "2024-06-03T09:17:00Z", "12", "3"),
            ),
            (
                "LO\u{200b}OK",
                tick_json("LO\u{200b}OK", "2024-06-03T09:18:00Z", "13", "4"),
            ),
            (
                "\u{202e}LOOK",
                tick_json("\u{202e}LOOK", "2024-06-03T09:19:00Z", "14", "5"),
            ),
            (
                "LOOK\u{a0}X",
                tick_json("LOOK\u{a0}X", "2024-06-03T09:20:00Z", "15", "6"),
            ),
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    for folder in ["a", "b"] {
        write_file(
            &dir.path().join(folder).join("DUP.csv"),
            &format!(
                "{SEED_HEADER}2024-06-03 09:2{}:00,\"LOOK  \",10,10,10,10,7\nbroken line\n",
                if folder == "a" { 1 } else { 2 }
            ),
        );
    }
    produce_and_drain(
        appliance,
        &env,
        &format!("{}/*/DUP.csv", dir.path().display()),
    );

    let symbols: Vec<(String, i64)> =
        sqlx::query("SELECT HEX(Bank_Name), COUNT(*) FROM stock_data GROUP BY HEX(Bank_Name)")
            .fetch_all(&root)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
    assert_eq!(
        symbols,
        [(hex("LOOK"), 5)],
        "spaces around a symbol are trimmed"
    );
    let bars: Vec<(String, i64)> =
        sqlx::query("SELECT HEX(Bank_Name), COUNT(*) FROM ohlcv_1m GROUP BY HEX(Bank_Name)")
            .fetch_all(&root)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
    assert_eq!(bars, [(hex("LOOK"), 5)]);
    let refused = rejected(&root).await;
    let invisible: Vec<&str> = refused
        .iter()
        .filter(|r| r.2.contains("invisible character"))
        .map(|r| r.2.as_str())
        .collect();
    assert_eq!(invisible.len(), 3, "{refused:?}");
    let broken: Vec<&str> = refused
        .iter()
        .filter(|r| r.0.ends_with("DUP.csv:3"))
        .map(|r| r.0.as_str())
        .collect();
    assert_eq!(broken.len(), 2, "each file keeps its bad line: {refused:?}");
    assert!(broken[0].ends_with("a/DUP.csv:3") && broken[1].ends_with("b/DUP.csv:3"));
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02X}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_follow_rows_from_any_writer_even_after_a_crash() {
    let _turn = SHARED_TABLES.lock().await;
    let appliance = Appliance::shared();
    let root = fresh_pipeline(appliance, "anywriter").await;
    let env = topics_env("anywriter");
    let env = as_refs(&env);

    // tickpipe's processor.
    let ours = tempfile::tempdir().unwrap();
    generate(ours.path(), 2, 1, 61);
    produce_and_drain(appliance, &env, &format!("{}/*.csv", ours.path().display()));

    // A plain SQL writer as the app user (standing in for Spark or a JDBC sink): new rows of
    // a symbol of its own, a changed row and a deleted row of tickpipe's.
    let [_, app_password, _] = appliance.passwords();
    let app = appliance.pool("tickpipe_app", &app_password).await;
    let start = chrono::NaiveDate::from_ymd_opt(2024, 1, 2)
        .unwrap()
        .and_hms_opt(9, 15, 0)
        .unwrap();
    for minute in 0..90 {
        let at = start + chrono::TimeDelta::minutes(minute);
        let price = format!("{}.25", 100 + minute % 7);
        insert_flat_row(&app, "JDBCBANK", at, &price, "10.5").await;
    }
    let bank = tickpipe::generate::symbol_name(0);
    let changed: chrono::NaiveDateTime = sqlx::query_scalar(
        "SELECT `Timestamp` FROM stock_data WHERE Bank_Name = ? ORDER BY `Timestamp` \
         LIMIT 1 OFFSET 100",
    )
    .bind(&bank)
    .fetch_one(&app)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE stock_data SET Close = Low, Volume = Volume + 1 \
         WHERE Bank_Name = ? AND `Timestamp` = ?",
    )
    .bind(&bank)
    .bind(changed)
    .execute(&app)
    .await
    .unwrap();
    sqlx::query("DELETE FROM stock_data WHERE Bank_Name = ? ORDER BY `Timestamp` DESC LIMIT 1")
        .bind(&bank)
        .execute(&app)
        .await
        .unwrap();
    app.close().await;

    // A bulk LOAD DATA of another symbol's history (MariaDB's own client, as root).
    let bulk = tempfile::tempdir().unwrap();
    generate(bulk.path(), 3, 2, 62);
    // The third symbol: one tickpipe's processor has not written.
    let third = tickpipe::generate::symbol_name(2);
    let file = csv_files(bulk.path())
        .into_iter()
        .find(|f| std::fs::read_to_string(f).unwrap().contains(&third))
        .unwrap();
    let [root_password, _, _] = appliance.passwords();
    let loaded = std::process::Command::new("mariadb")
        .arg("--local-infile=1")
        .arg(format!(
            "--socket={}",
            appliance.dir().join("mysql/mysql.sock").display()
        ))
        .args(["--user=root", "--database=stock_market", "-e"])
        .arg(format!(
            "LOAD DATA LOCAL INFILE '{}' INTO TABLE stock_data FIELDS TERMINATED BY ',' \
             IGNORE 1 LINES",
            file.display()
        ))
        .env("MYSQL_PWD", &root_password)
        .output()
        .unwrap();
    assert!(
        loaded.status.success(),
        "{}",
        String::from_utf8_lossy(&loaded.stderr)
    );

    // A processor SIGKILLed while it recomputes, then one that drains.
    let mut crashed = appliance
        .tickpipe(&["process"])
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    crashed.kill().unwrap();
    crashed.wait().unwrap();
    appliance.run(&["process", "--drain"], &env);

    assert_rollups_match_the_rows(&root).await;
    let stale: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rollup_pending")
        .fetch_one(&root)
        .await
        .unwrap();
    assert_eq!(stale, 0, "nothing left stale after a drain");
    let symbols: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM latest_quotes")
        .fetch_one(&root)
        .await
        .unwrap();
    assert_eq!(
        symbols, 4,
        "tickpipe's two, the JDBC writer's and the bulk load's"
    );
}

/// The capture of other writers' rows, both ways. On the appliance it is MariaDB's binary log:
/// no trigger on `stock_data`, and the processor's own rows stay out of the log (they are
/// marked in their batch). A log purged past the rollup stage's position is a full recompute.
/// Switched to the triggers (a server without a binary log) and back, nothing is missed.
#[tokio::test(flavor = "multi_thread")]
async fn other_writers_rows_are_captured_from_the_binary_log_or_by_triggers() {
    let _turn = SHARED_TABLES.lock().await;
    let appliance = Appliance::shared();
    let root = fresh_pipeline(appliance, "capture").await;
    let env = topics_env("capture");
    let env = as_refs(&env);
    let [root_password, app_password, _] = appliance.passwords();
    let target = appliance.mysql_target("root", &root_password);
    let schema = tickpipe::store::Store::connect(&target, Duration::from_secs(30))
        .await
        .unwrap();
    let triggers = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS \
             WHERE EVENT_OBJECT_SCHEMA = 'stock_market' AND EVENT_OBJECT_TABLE = 'stock_data'",
        )
        .fetch_all(&root)
        .await
        .unwrap()
    };
    let log_end = || async {
        let row = sqlx::raw_sql("SHOW MASTER STATUS")
            .fetch_one(&root)
            .await
            .unwrap();
        (row.get::<String, _>(0), row.get::<u64, _>(1))
    };
    assert!(
        matches!(
            schema.capture().await.unwrap(),
            tickpipe::store::Capture::Binlog(_)
        ),
        "the appliance captures from its binary log"
    );
    assert!(triggers().await.is_empty(), "and stock_data has no trigger");

    // The processor's rows stay out of the log.
    let ours = tempfile::tempdir().unwrap();
    generate(ours.path(), 2, 1, 64);
    let before = log_end().await;
    produce_and_drain(appliance, &env, &format!("{}/*.csv", ours.path().display()));
    let stored = stored_rows(&root).await;
    let after = log_end().await;
    assert!(stored > 500, "{stored} rows");
    assert_eq!(before.0, after.0, "no new log file for {stored} rows");
    assert!(
        after.1 - before.1 < stored as u64 * 8,
        "the processor's {stored} rows took {} bytes of the binary log",
        after.1 - before.1
    );
    assert_rollups_match_the_rows(&root).await;

    // Another writer's rows, then the log purged past the stage's position: every symbol is
    // recomputed, the other writer's included.
    let app = appliance.pool("tickpipe_app", &app_password).await;
    let start = chrono::NaiveDate::from_ymd_opt(2024, 5, 6)
        .unwrap()
        .and_hms_opt(10, 0, 0)
        .unwrap();
    // One row a minute from `start`, its price cycling over `cycle` values from `base`.
    let write_minutes = |symbol: &'static str, minutes: i64, base: i64, cycle: i64| {
        let app = &app;
        async move {
            for minute in 0..minutes {
                let at = start + chrono::TimeDelta::minutes(minute);
                let price = format!("{}.5", base + minute % cycle);
                insert_flat_row(app, symbol, at, &price, "2").await;
            }
        }
    };
    write_minutes("PURGEDBANK", 30, 50, 3).await;
    sqlx::raw_sql("FLUSH BINARY LOGS")
        .execute(&root)
        .await
        .unwrap();
    let (newest, _) = log_end().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "PURGE BINARY LOGS TO '{newest}'"
    )))
    .execute(&root)
    .await
    .unwrap();
    appliance.run(&["process", "--rollups-only", "--drain"], &env);
    assert_rollups_match_the_rows(&root).await;
    let quotes: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM latest_quotes")
        .fetch_one(&root)
        .await
        .unwrap();
    assert_eq!(quotes, 3, "tickpipe's two symbols and the other writer's");

    // An XA transaction's rows are logged at its PREPARE and visible at its COMMIT, after the
    // sweeps in between have read them.
    let mut xa = app.acquire().await.unwrap();
    sqlx::raw_sql("XA START 'tickpipe-test'")
        .execute(&mut *xa)
        .await
        .unwrap();
    for minute in 0..5 {
        sqlx::query(
            "INSERT INTO stock_data (`Timestamp`, Bank_Name, Open, High, Low, Close, Volume) \
             VALUES (?, 'XABANK', 9.5, 9.5, 9.5, 9.5, 1)",
        )
        .bind(start + chrono::TimeDelta::minutes(minute))
        .execute(&mut *xa)
        .await
        .unwrap();
    }
    for statement in ["XA END 'tickpipe-test'", "XA PREPARE 'tickpipe-test'"] {
        sqlx::raw_sql(statement).execute(&mut *xa).await.unwrap();
    }
    appliance.run(&["process", "--rollups-only", "--drain"], &env);
    sqlx::raw_sql("XA COMMIT 'tickpipe-test'")
        .execute(&mut *xa)
        .await
        .unwrap();
    drop(xa);
    appliance.run(&["process", "--rollups-only", "--drain"], &env);
    assert_rollups_match_the_rows(&root).await;
    let xa_bars: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM bars_1m WHERE Bank_Name = 'XABANK'")
            .fetch_one(&root)
            .await
            .unwrap();
    assert_eq!(xa_bars, 5, "the XA transaction's rows, once committed");

    // By triggers, as on a server without a binary log: created, and the rows of a writer
    // followed; back to the log, they are dropped again.
    schema.capture_by_triggers().await.unwrap();
    assert_eq!(triggers().await.len(), 3);
    write_minutes("TRIGGERBANK", 20, 70, 5).await;
    sqlx::query(
        "DELETE FROM stock_data WHERE Bank_Name = 'PURGEDBANK' ORDER BY `Timestamp` DESC LIMIT 3",
    )
    .execute(&app)
    .await
    .unwrap();
    let marked: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM rollup_pending WHERE Bank_Name IN ('TRIGGERBANK', 'PURGEDBANK')",
    )
    .fetch_one(&root)
    .await
    .unwrap();
    assert_eq!(marked, 2, "the triggers mark the rows as they commit");
    appliance.run(&["process", "--rollups-only", "--drain"], &env);
    assert_rollups_match_the_rows(&root).await;
    schema.choose_capture(true).await.unwrap();
    assert!(triggers().await.is_empty());
    // Read across a new log file.
    sqlx::raw_sql("FLUSH BINARY LOGS")
        .execute(&root)
        .await
        .unwrap();
    insert_flat_row(
        &app,
        "TRIGGERBANK",
        start - chrono::TimeDelta::minutes(1),
        "1.5",
        "1",
    )
    .await;
    app.close().await;
    appliance.run(&["process", "--rollups-only", "--drain"], &env);
    assert_rollups_match_the_rows(&root).await;
    let first: chrono::NaiveDateTime =
        sqlx::query_scalar("SELECT MIN(`Timestamp`) FROM bars_1m WHERE Bank_Name = 'TRIGGERBANK'")
            .fetch_one(&root)
            .await
            .unwrap();
    assert_eq!(
        first,
        start - chrono::TimeDelta::minutes(1),
        "read from the log again"
    );
}

/// `process --rollups-only`: the rollup stage alone, for rows another processor writes (a Spark
/// job, a JDBC sink): their bars and quotes follow, and the topic is not consumed.
#[tokio::test(flavor = "multi_thread")]
async fn rollups_only_follows_another_writers_rows_and_consumes_nothing() {
    let _turn = SHARED_TABLES.lock().await;
    let appliance = Appliance::shared();
    let root = fresh_pipeline(appliance, "rollupsonly").await;
    let env = topics_env("rollupsonly");
    let env = as_refs(&env);

    // Records wait in the topic: a rollups-only run must leave them to the real processor.
    let input = tempfile::tempdir().unwrap();
    generate(input.path(), 2, 1, 63);
    appliance.run(
        &[
            "produce",
            "--data",
            &format!("{}/*.csv", input.path().display()),
        ],
        &env,
    );
    // Another processor's rows: two minutes of three rows each, then 45 single-row minutes.
    let [_, app_password, _] = appliance.passwords();
    let app = appliance.pool("tickpipe_app", &app_password).await;
    let start = chrono::NaiveDate::from_ymd_opt(2024, 3, 4)
        .unwrap()
        .and_hms_opt(14, 30, 0)
        .unwrap();
    for second in (0..120).step_by(20).chain((300..3000).step_by(60)) {
        let at = start + chrono::TimeDelta::seconds(second);
        let price = format!("{}.125", 200 + second % 11);
        insert_flat_row(&app, "SPARKBANK", at, &price, "3").await;
    }
    app.close().await;

    appliance.run(&["process", "--rollups-only", "--drain"], &env);

    assert_rollups_match_the_rows(&root).await;
    let (rows, symbols): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), COUNT(DISTINCT Bank_Name) FROM stock_data")
            .fetch_one(&root)
            .await
            .unwrap();
    assert_eq!((rows, symbols), (51, 1), "only the other writer's rows");
    let offsets: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pipeline_offsets")
        .fetch_one(&root)
        .await
        .unwrap();
    assert_eq!(offsets, 0, "the topic was not read");
    let quote: (chrono::NaiveDateTime, rust_decimal::Decimal) = sqlx::query_as(
        "SELECT `Timestamp`, Price FROM latest_quotes WHERE Bank_Name = 'SPARKBANK'",
    )
    .fetch_one(&root)
    .await
    .unwrap();
    assert_eq!(quote.0.to_string(), "2024-03-04 15:19:00");
    assert_eq!(
        quote.1,
        "203.125".parse().unwrap(),
        "the last row: second 2940"
    );
    let stale: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rollup_pending")
        .fetch_one(&root)
        .await
        .unwrap();
    assert_eq!(stale, 0);
}

/// Three `tickpipe process` share one topic's partitions (a lease table in MySQL); one of them,
/// the one running the rollup stage, is SIGKILLed while records stream in: the other two take
/// its partitions and its rollup stage over, and what is stored is exactly the input — every
/// row once, every bad line refused once, every partition's offset at its end, the rollups a
/// recomputation of the rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processors_share_the_partitions_and_one_killed_mid_stream_loses_nothing() {
    let _turn = SHARED_TABLES.lock().await;
    let appliance = Appliance::shared();
    let root = fresh_pipeline(appliance, "trio").await;
    let env = topics_env("trio");
    let env = as_refs(&env);
    let pipeline = "trio_ticks";
    // 6 partitions of the ticks topic and 2 of the dead-letter topic, and the rollup stage.
    const UNITS: usize = 9;

    let input = tempfile::tempdir().unwrap();
    generate(input.path(), 12, 1, 71);
    let mut expected = input_totals(&csv_files(input.path()));
    // Two good lines around three bad ones (not a number, a missing field, high under low).
    expected.insert("BADBANK".into(), (2, Decimal::from(200), Decimal::from(20)));
    write_file(
        &input.path().join("BADBANK.csv"),
        &format!(
            "{SEED_HEADER}\
             2024-01-02 09:15:00,BADBANK,10,11,9,10,100\n\
             2024-01-02 09:16:00,BADBANK,ten,11,9,10,100\n\
             2024-01-02 09:17:00,BADBANK,10,11,9,10\n\
             2024-01-02 09:18:00,BADBANK,10,9,11,10,100\n\
             2024-01-02 09:19:00,BADBANK,10,11,9,10,100\n"
        ),
    );

    let start = |name: &str| {
        let log = std::fs::File::create(appliance.dir().join(name)).unwrap();
        appliance
            .tickpipe(&["process"])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap()
    };
    let mut processors = [
        start("trio-0.log"),
        start("trio-1.log"),
        start("trio-2.log"),
    ];
    let pids: Vec<u32> = processors.iter().map(|p| p.id()).collect();
    let shared = wait_holdings(&root, pipeline, "shared by all three", |held| {
        pids.iter()
            .all(|pid| held.get(pid).is_some_and(|units| units.len() >= 2))
            && held.values().map(Vec::len).sum::<usize>() == UNITS
    })
    .await;

    // `status` shows who holds what.
    let status = appliance.status(&env);
    let shown = status["processors"].as_array().unwrap();
    assert_eq!(shown.len(), 3, "{status:#}");
    let units: usize = shown
        .iter()
        .map(|p| p["holds"].as_array().unwrap().len())
        .sum();
    assert_eq!(units, UNITS, "{status:#}");

    // ~7 s of records at 3,000× the data's clock; the rollup stage's holder is killed 2 s in.
    let mut producer = appliance
        .tickpipe(&[
            "produce",
            "--speed",
            "3000",
            "--data",
            &format!("{}/*.csv", input.path().display()),
        ])
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let victim = pids
        .iter()
        .position(|pid| shared[pid].iter().any(|unit| unit == "rollups"))
        .unwrap();
    let started = Instant::now();
    while stored_rows(&root).await == 0 {
        assert!(started.elapsed() < Duration::from_secs(30), "no row stored");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    std::thread::sleep(Duration::from_secs(2));
    let stored_before_kill = stored_rows(&root).await;
    processors[victim].kill().unwrap();
    processors[victim].wait().unwrap();
    let survivors: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|pid| *pid != pids[victim])
        .collect();
    let taken_over = wait_holdings(&root, pipeline, "taken over by the two", |held| {
        held.len() == 2
            && survivors.iter().all(|pid| held.contains_key(pid))
            && held.values().map(Vec::len).sum::<usize>() == UNITS
    })
    .await;
    assert!(producer.wait().unwrap().success());
    let expected_rows: i64 = expected.values().map(|totals| totals.0).sum();
    assert!(
        stored_before_kill < expected_rows,
        "the kill was not mid-stream: {stored_before_kill} of {expected_rows} stored before it"
    );

    let started = Instant::now();
    while stored_totals(&root).await != expected || rejected(&root).await.len() != 3 {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "stored {} rows and {} refused lines of {expected_rows} and 3",
            stored_rows(&root).await,
            rejected(&root).await.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Every partition's stored offset is its end: nothing skipped, nothing beyond.
    let broker =
        tickpipe::broker::Broker::connect(&appliance.broker_admin(), Duration::from_secs(30))
            .await
            .unwrap();
    for topic in ["trio_ticks", "trio_ticks.dlq"] {
        for (partition, _, end) in broker.watermarks(topic).await.unwrap() {
            let stored: Option<i64> = sqlx::query_scalar(
                "SELECT next_offset FROM pipeline_offsets WHERE topic = ? AND `partition` = ?",
            )
            .bind(topic)
            .bind(partition)
            .fetch_optional(&root)
            .await
            .unwrap();
            assert_eq!(stored.unwrap_or(0), end, "{topic}:{partition}");
        }
    }
    // The rollup stage moved with its holder's death: the bars follow the rows.
    let started = Instant::now();
    loop {
        let stale: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rollup_pending")
            .fetch_one(&root)
            .await
            .unwrap();
        if stale == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "rollups left stale"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_rollups_match_the_rows(&root).await;

    // Stopped cleanly, the survivors give their work up.
    for (i, processor) in processors.iter_mut().enumerate() {
        if i != victim {
            send(processor.id(), Signal::SIGINT).unwrap();
            let said = std::fs::read_to_string(appliance.dir().join(format!("trio-{i}.log")));
            assert!(processor.wait().unwrap().success(), "{said:?}");
        }
    }
    assert!(holdings(&root, pipeline).await.is_empty());
    eprintln!("shared: {shared:?}; after the kill: {taken_over:?}");
}

/// The crossings of `price` in a series of closes, by a plain walk over them: the indexes of
/// the closes that crossed.
fn crossings(closes: &[Decimal], price: Decimal) -> Vec<usize> {
    (1..closes.len())
        .filter(|&i| {
            let (before, now) = (closes[i - 1], closes[i]);
            (before < price && now >= price) || (before > price && now <= price)
        })
        .collect()
}

/// Alerts on committed data, exactly once: a crossing rule over a symbol whose closes cross its
/// price several times fires once per crossing — with a processor SIGKILLed after the rows
/// arrive, a drain, a replay of the same file and a drain again — and a row another writer
/// stores (plain SQL) that crosses again raises one more, through the rollup stage alone; so
/// does a crossing in the newest bar once a later bar's rows are recomputed on their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_fire_once_per_crossing_across_a_crash_a_replay_and_another_writer() {
    let _turn = SHARED_TABLES.lock().await;
    let appliance = Appliance::shared();
    let root = fresh_pipeline(appliance, "alerting").await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alerts.toml");
    write_file(
        &config,
        "[[alerts]]\nname = \"cross-100\"\nkind = \"crosses\"\nsymbol = \"ALERTBANK\"\nprice = 100\n",
    );
    let mut env = topics_env("alerting");
    env.push(("TICKPIPE_LIVE__ENABLED".into(), "false".into()));
    let env = as_refs(&env);
    let closes: Vec<&str> = vec![
        "99", "101", "102", "98", "97", "100.5", "100.6", "100", "100",
    ];
    let mut csv = String::from(SEED_HEADER);
    for (minute, close) in closes.iter().enumerate() {
        csv.push_str(&format!(
            "2024-01-02 09:{:02}:00,ALERTBANK,{close},{close},{close},{close},10\n",
            15 + minute
        ));
    }
    write_file(&dir.path().join("ALERTBANK.csv"), &csv);
    let data = format!("{}/*.csv", dir.path().display());
    let with_config = |args: &[&str]| -> Vec<String> {
        ["--config", config.to_str().unwrap()]
            .iter()
            .chain(args)
            .map(|s| s.to_string())
            .collect()
    };
    let run = |args: &[&str]| {
        let args = with_config(args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        appliance.run(&args, &env);
    };

    run(&["produce", "--data", &data]);
    let mut crashed = appliance
        .tickpipe(&["--config", config.to_str().unwrap(), "process"])
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    crashed.kill().unwrap();
    crashed.wait().unwrap();
    run(&["process", "--drain"]);
    run(&["produce", "--data", &data]);
    run(&["process", "--drain"]);

    let decimals: Vec<Decimal> = closes.iter().map(|c| c.parse().unwrap()).collect();
    // Every bar but the newest is closed (the newest may still grow).
    let closed = &decimals[..decimals.len() - 1];
    let expected: Vec<String> = crossings(closed, Decimal::from(100))
        .iter()
        .map(|i| format!("2024-01-02 09:{:02}:00", 15 + i))
        .collect();
    assert_eq!(expected.len(), 4, "the series crosses 100 four times");
    let stored = |root: sqlx::MySqlPool| async move {
        sqlx::query(
            "SELECT DATE_FORMAT(`Timestamp`, '%Y-%m-%d %H:%i:%s'), Detail FROM alerts \
             WHERE Rule = 'cross-100' ORDER BY `Timestamp`",
        )
        .fetch_all(&root)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
        .collect::<Vec<_>>()
    };
    let alerts = stored(root.clone()).await;
    let minutes: Vec<String> = alerts.iter().map(|a| a.0.clone()).collect();
    assert_eq!(minutes, expected, "{alerts:?}");
    assert_eq!(alerts[0].1, "crossed above 100 (99 → 101)", "{alerts:?}");
    assert_eq!(alerts[1].1, "crossed below 100 (102 → 98)", "{alerts:?}");

    // Another writer's rows go on from 100 (no crossing: it touched 100 from above) to 99 (none)
    // and 101 (a crossing), closed by one more at 101: the rollup stage alone raises that one.
    let [_, app_password, _] = appliance.passwords();
    let app = appliance.pool("tickpipe_app", &app_password).await;
    let at = |minute| {
        chrono::NaiveDate::from_ymd_opt(2024, 1, 2)
            .unwrap()
            .and_hms_opt(9, minute, 0)
            .unwrap()
    };
    insert_flat_row(&app, "ALERTBANK", at(30), "99", "10").await;
    insert_flat_row(&app, "ALERTBANK", at(31), "101", "10").await;
    insert_flat_row(&app, "ALERTBANK", at(32), "101", "10").await;
    app.close().await;
    run(&["process", "--rollups-only", "--drain"]);
    let alerts = stored(root.clone()).await;
    assert_eq!(alerts.len(), 5, "{alerts:?}");
    assert_eq!(alerts[4].0, "2024-01-02 09:31:00");
    assert_eq!(alerts[4].1, "crossed above 100 (99 → 101)", "{alerts:?}");

    // A late change to a closed bar (09:16 now closes at 99.5): its alert is taken back and the
    // crossing is now one bar later (99.5 → 102 at 09:17).
    let app = appliance.pool("tickpipe_app", &app_password).await;
    sqlx::query(
        "UPDATE stock_data SET Open = 99.5, High = 99.5, Low = 99.5, Close = 99.5 \
         WHERE Bank_Name = 'ALERTBANK' AND `Timestamp` = '2024-01-02 09:16:00'",
    )
    .execute(&app)
    .await
    .unwrap();
    app.close().await;
    run(&["process", "--rollups-only", "--drain"]);
    let alerts = stored(root.clone()).await;
    assert_eq!(alerts.len(), 5, "{alerts:?}");
    assert_eq!(alerts[0].0, "2024-01-02 09:17:00", "{alerts:?}");
    assert_eq!(alerts[0].1, "crossed above 100 (99.5 → 102)", "{alerts:?}");

    // A crossing in the newest bar waits for a later bar (the newest may still grow); that
    // later bar's rows, in a minute of their own, are recomputed alone, from their minute on,
    // and the bar before them is judged then.
    let app = appliance.pool("tickpipe_app", &app_password).await;
    insert_flat_row(&app, "ALERTBANK", at(33), "99", "10").await;
    run(&["process", "--rollups-only", "--drain"]);
    assert_eq!(
        stored(root.clone()).await.len(),
        5,
        "the newest bar is not judged yet"
    );
    insert_flat_row(&app, "ALERTBANK", at(34), "99", "10").await;
    app.close().await;
    run(&["process", "--rollups-only", "--drain"]);
    let alerts = stored(root.clone()).await;
    assert_eq!(alerts.len(), 6, "{alerts:?}");
    assert_eq!(alerts[5].0, "2024-01-02 09:33:00", "{alerts:?}");
    assert_eq!(alerts[5].1, "crossed below 100 (101 → 99)", "{alerts:?}");

    // The later bar's row deleted: 09:33 is the newest bar again, its alert kept (a bar
    // judged already is not taken back for want of a later one), and not raised twice when a
    // later bar comes back.
    let ids = |root: sqlx::MySqlPool| async move {
        sqlx::query_scalar::<_, u64>("SELECT Id FROM alerts WHERE Rule = 'cross-100' ORDER BY Id")
            .fetch_all(&root)
            .await
            .unwrap()
    };
    let before = ids(root.clone()).await;
    let app = appliance.pool("tickpipe_app", &app_password).await;
    sqlx::query("DELETE FROM stock_data WHERE Bank_Name = 'ALERTBANK' AND `Timestamp` = ?")
        .bind(at(34))
        .execute(&app)
        .await
        .unwrap();
    run(&["process", "--rollups-only", "--drain"]);
    assert_eq!(ids(root.clone()).await, before, "the alert at 09:33 stays");
    insert_flat_row(&app, "ALERTBANK", at(34), "99", "10").await;
    app.close().await;
    run(&["process", "--rollups-only", "--drain"]);
    assert_eq!(ids(root.clone()).await, before, "and is not raised again");
}
