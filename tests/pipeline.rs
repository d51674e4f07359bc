//! The appliance end to end against real Apache Kafka (KRaft) and MariaDB: every CSV row in
//! MySQL exactly once, bad lines quarantined, replays and processor crashes harmless, and
//! Kafka's own Java clients reading and writing our topic.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rust_decimal::Decimal;
use sqlx::Row;

/// Tests on the shared appliance clear its tables: they take turns.
static SHARED_TABLES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const GOOD_MIXED: [&str; 2] = [
    "2024-02-01 09:15:00,MIXBANK,100,101,99,100.5,1000",
    "2024-02-01 09:20:00,MIXBANK,100,101,99,100.25,2000",
];
/// Bad lines, each with the line number it gets in the mixed file and a piece of its reason.
const BAD_MIXED: [(&str, u32, &str); 4] = [
    (
        "2024-02-01 09:16:00,MIXBANK,100,101,99",
        3,
        "expected 7 fields, found 5",
    ),
    (
        "2024-02-01 09:17:00,MIXBANK,abc,101,99,100,1000",
        4,
        "open: \"abc\" is not a decimal number",
    ),
    (
        "2024-02-01 09:18:00,MIXBANK,100,99,101,100,1000",
        5,
        "low 101 is above high 99",
    ),
    (
        "2024-02-01 09:19:00,,100,101,99,100,1000",
        6,
        "symbol is empty",
    ),
];

/// Generated CSV files (plus MIXED.csv with bad lines, if asked) and what MySQL must hold.
struct Input {
    _dir: tempfile::TempDir,
    /// Glob naming the files.
    pattern: String,
    /// Per-symbol figures of every good line.
    expected: Totals,
    /// Rows in the generated files (MIXED.csv not counted).
    generated: i64,
}

fn input(symbols: usize, days: u32, seed: u64, bad_lines: bool) -> Input {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), symbols, days, seed);
    let mut expected = input_totals(&csv_files(dir.path()));
    let generated = expected.values().map(|t| t.0).sum();
    if bad_lines {
        expected.extend(add_mixed_file(dir.path()));
    }
    Input {
        pattern: format!("{}/*.csv", dir.path().display()),
        _dir: dir,
        expected,
        generated,
    }
}

/// Writes MIXED.csv (bad lines between good ones) into `dir`; returns the good lines' totals.
fn add_mixed_file(dir: &std::path::Path) -> Totals {
    let header = "Timestamp,Bank_Name,Open,High,Low,Close,Volume";
    let mut mixed = vec![header, GOOD_MIXED[0]];
    mixed.extend(BAD_MIXED.iter().map(|b| b.0));
    mixed.push(GOOD_MIXED[1]);
    std::fs::write(dir.join("MIXED.csv"), mixed.join("\n") + "\n").unwrap();
    let good_only = tempfile::tempdir().unwrap();
    std::fs::write(
        good_only.path().join("good.csv"),
        [header, GOOD_MIXED[0], GOOD_MIXED[1]].join("\n"),
    )
    .unwrap();
    input_totals(&csv_files(good_only.path()))
}

/// `rejected_ticks` holds exactly the bad lines of MIXED.csv, once each.
async fn assert_bad_lines_quarantined_once(pool: &sqlx::MySqlPool) {
    let mut sources: Vec<String> = sqlx::query("SELECT source FROM rejected_ticks")
        .fetch_all(pool)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.get::<String, _>(0))
        // Sources name the file by its path: compare file names.
        .map(|s| s.rsplit('/').next().unwrap().to_string())
        .collect();
    sources.sort();
    let expected: Vec<String> = BAD_MIXED
        .iter()
        .map(|b| format!("MIXED.csv:{}", b.1))
        .collect();
    assert_eq!(
        sources, expected,
        "rejected_ticks should hold each bad line once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_stores_every_row_once_quarantines_bad_lines_and_stops_cleanly() {
    let data = input(4, 3, 11, true);
    let (expected, pattern) = (data.expected.clone(), data.pattern.clone());
    let expected_rows: i64 = expected.values().map(|t| t.0).sum();
    assert_eq!(expected_rows, 4 * 3 * 375 + 2);

    let started = Instant::now();
    let mut up = Appliance::start(&["--data", &pattern], &[]);
    let done = |s: &serde_json::Value| {
        s["rows"] == expected_rows && s["rejected"] == BAD_MIXED.len() && s["lag"] == 0
    };
    up.wait_status(&[], Duration::from_secs(60), done);
    eprintln!(
        "all rows stored {:.1?} after `up` started",
        started.elapsed()
    );

    let pool = up.root_pool().await;
    assert_eq!(
        stored_totals(&pool).await,
        expected,
        "stored figures differ from the input"
    );
    let rejected: Vec<(String, String, String)> =
        sqlx::query("SELECT source, reason, raw FROM rejected_ticks ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
    assert_eq!(rejected.len(), BAD_MIXED.len());
    for (line, number, reason) in BAD_MIXED {
        let found = rejected
            .iter()
            .find(|r| r.0.ends_with(&format!("/MIXED.csv:{number}")));
        let (_, stored_reason, raw) =
            found.unwrap_or_else(|| panic!("line {number} not quarantined: {rejected:?}"));
        assert!(
            stored_reason.contains(reason),
            "line {number}: {stored_reason:?} should say {reason:?}"
        );
        assert_eq!(raw, line);
    }

    // A broker that dies is restarted by the supervisor, and the pipeline rides it out.
    let kafka_pid: i32 = std::fs::read_to_string(up.dir().join("kafka/supervised.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _ = send(kafka_pid, Signal::SIGKILL);
    std::thread::sleep(Duration::from_secs(1));
    up.wait_status(&[], Duration::from_secs(90), |s| {
        s["broker"]["healthy"] == true
    });
    let restarted: i32 = std::fs::read_to_string(up.dir().join("kafka/supervised.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_ne!(restarted, kafka_pid, "the broker was not restarted");

    // Replaying the same files changes no stored figure.
    let replay = up.run(&["produce", "--data", &pattern], &[]);
    assert!(
        String::from_utf8_lossy(&replay.stdout)
            .contains(&format!("produced {} records", expected_rows))
    );
    up.wait_status(&[], Duration::from_secs(60), |s| s["lag"] == 0);
    assert_eq!(
        stored_totals(&pool).await,
        expected,
        "a replay changed stored figures"
    );
    let status = up.status(&[]);
    assert_eq!(status["rows"], expected_rows);
    assert_eq!(status["rejected"], BAD_MIXED.len());
    pool.close().await;

    // Ctrl-C: exit code 0, nothing left running.
    let marker = up.dir().display().to_string();
    assert!(up.interrupt(), "`up` exited with an error after SIGINT");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        processes_mentioning(&marker),
        Vec::<String>::new(),
        "processes left behind"
    );
    assert!(!up.dir().join("appliance.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_and_processor_killed_mid_stream_lose_and_duplicate_nothing() {
    let _turn = SHARED_TABLES.lock().await;
    let appliance = Appliance::shared();
    let pool = fresh_pipeline(appliance, "kill").await;
    let mut env = topics_env("kill");
    env.push(("TICKPIPE_PROCESS__BATCH_ROWS".into(), "500".into()));
    let env = as_refs(&env);

    let data = input(10, 16, 5, true);
    let (expected, pattern, total) = (data.expected.clone(), data.pattern.clone(), data.generated);
    // The producer is killed mid-file and run again over the same files.
    let mut producer = appliance
        .tickpipe(&["produce", "--data", &pattern])
        .envs(env.iter().copied())
        .spawn()
        .unwrap();
    let sent = appliance.wait_status(&env, Duration::from_secs(30), |s| {
        records_in(s, "kill_ticks") > 0
    });
    producer.kill().unwrap();
    producer.wait().unwrap();
    assert!(
        records_in(&sent, "kill_ticks") < total,
        "the producer finished before it was killed"
    );
    eprintln!(
        "killed the producer after {} of {total} records",
        records_in(&sent, "kill_ticks")
    );
    appliance.run(&["produce", "--data", &pattern], &env);

    // Kill the processor twice while it is mid-stream.
    let mut kills = 0;
    for _ in 0..2 {
        let mut process = appliance
            .tickpipe(&["process"])
            .envs(env.iter().copied())
            .spawn()
            .unwrap();
        let before = stored_rows(&pool).await;
        let start = Instant::now();
        while stored_rows(&pool).await <= before && start.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        process.kill().unwrap(); // SIGKILL
        process.wait().unwrap();
        let after = stored_rows(&pool).await;
        if after > before && after < total {
            kills += 1;
        }
        eprintln!("killed the processor at {after} of {total} rows");
    }
    assert!(kills >= 1, "the processor was never killed mid-stream");

    appliance.run(&["process", "--drain"], &env);
    assert_eq!(
        stored_totals(&pool).await,
        expected,
        "figures differ after crashes"
    );
    let offsets: i64 = sqlx::query(
        "SELECT CAST(SUM(next_offset) AS SIGNED) FROM pipeline_offsets WHERE topic = 'kill_ticks'",
    )
    .fetch_one(&pool)
    .await
    .unwrap()
    .get(0);
    assert_bad_lines_quarantined_once(&pool).await;
    let in_topic = records_in(&appliance.status(&env), "kill_ticks");
    assert!(in_topic > total, "the first producer run sent nothing");
    assert_eq!(
        offsets, in_topic,
        "committed offsets should cover every record once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_console_clients_and_tickpipe_read_each_other() {
    let _turn = SHARED_TABLES.lock().await;
    let appliance = Appliance::shared();
    let pool = fresh_pipeline(appliance, "interop").await;
    let env = topics_env("interop");
    let env = as_refs(&env);
    let bootstrap = appliance.bootstrap();

    // Kafka's console producer: one tick with numeric prices, one record that is not JSON.
    let java_tick = r#"{"timestamp":"2024-03-01T10:00:00+05:30","symbol":"JAVABANK","open":10,"high":11.5,"low":9.75,"close":10.5,"volume":42}"#;
    let produced = appliance.kafka_tool(
        "app",
        "org.apache.kafka.tools.ConsoleProducer",
        &[
            "--bootstrap-server",
            &bootstrap,
            "--topic",
            "interop_ticks",
            "--reader-property",
            "parse.key=true",
            "--reader-property",
            "key.separator=|",
        ],
        Some(&format!("JAVABANK|{java_tick}\nJUNK|this is not json\n")),
    );
    assert!(
        produced.status.success(),
        "{}",
        String::from_utf8_lossy(&produced.stderr)
    );

    // tickpipe's producer: one CSV row.
    let data = tempfile::tempdir().unwrap();
    let csv = data.path().join("RUSTBANK.csv");
    std::fs::write(
        &csv,
        "timestamp,open,high,low,close,volume\n2024-03-01 04:31:00,20.1,20.2,20.0,20.15,7\n",
    )
    .unwrap();
    appliance.run(&["produce", "--data", &csv.display().to_string()], &env);
    appliance.run(&["process", "--drain"], &env);

    let row = sqlx::query("SELECT `Timestamp`, Open, High, Low, Close, CAST(Volume AS SIGNED) FROM stock_data WHERE Bank_Name = 'JAVABANK'")
        .fetch_one(&pool)
        .await
        .expect("the console producer's tick is stored");
    assert_eq!(
        row.get::<chrono::NaiveDateTime, _>(0).to_string(),
        "2024-03-01 04:30:00"
    );
    assert_eq!(row.get::<Decimal, _>(2), Decimal::new(115, 1));
    assert_eq!(row.get::<Decimal, _>(4), Decimal::new(105, 1));
    assert_eq!(row.get::<i64, _>(5), 42);
    let reason: String =
        sqlx::query("SELECT reason FROM rejected_ticks WHERE raw = 'this is not json'")
            .fetch_one(&pool)
            .await
            .expect("the malformed message is quarantined")
            .get(0);
    assert!(reason.starts_with("not a tick message"), "{reason}");
    assert_eq!(stored_rows(&pool).await, 2);

    // Kafka's console consumer reads what tickpipe produced.
    let consumed = appliance.kafka_tool(
        "reader",
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        &[
            "--bootstrap-server",
            &bootstrap,
            "--topic",
            "interop_ticks",
            "--from-beginning",
            "--max-messages",
            "3",
            "--timeout-ms",
            "30000",
            "--formatter-property",
            "print.key=true",
            "--formatter-property",
            "key.separator=|",
        ],
        None,
    );
    let out = String::from_utf8_lossy(&consumed.stdout);
    let line = out
        .lines()
        .find(|l| l.starts_with("RUSTBANK|"))
        .unwrap_or_else(|| panic!("no RUSTBANK record in {out}"));
    let message: serde_json::Value =
        serde_json::from_str(line.trim_start_matches("RUSTBANK|")).unwrap();
    assert_eq!(message["symbol"], "RUSTBANK");
    assert_eq!(message["close"], "20.15");
    assert_eq!(message["volume"], "7");
    assert_eq!(message["timestamp"], "2024-03-01T04:31:00Z");
    assert!(
        message["source"]
            .as_str()
            .unwrap()
            .ends_with("/RUSTBANK.csv:2"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_with_external_services_uses_them_and_leaves_them_running() {
    let _turn = SHARED_TABLES.lock().await;
    let services = Appliance::shared();
    let pool = fresh_pipeline(services, "external").await;
    let credentials: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(services.dir().join("credentials.json")).unwrap(),
    )
    .unwrap();
    let url = format!(
        "mysql://root:{}@localhost/stock_market?socket={}",
        credentials["root_password"].as_str().unwrap(),
        services.dir().join("mysql/mysql.sock").display()
    );
    let bootstrap = services.bootstrap();
    let (user, password) = services.kafka_login("admin");
    let mut env = topics_env("external");
    env.extend([
        ("TICKPIPE_BROKER__MODE".to_string(), "external".to_string()),
        ("TICKPIPE_BROKER__BOOTSTRAP".to_string(), bootstrap),
        (
            "TICKPIPE_BROKER__SASL_MECHANISM".to_string(),
            "scram-sha-512".to_string(),
        ),
        ("TICKPIPE_BROKER__USERNAME".to_string(), user),
        ("TICKPIPE_BROKER__PASSWORD".to_string(), password),
        ("TICKPIPE_MYSQL__MODE".to_string(), "external".to_string()),
        ("TICKPIPE_MYSQL__URL".to_string(), url),
    ]);
    let env = as_refs(&env);

    let data = input(2, 1, 9, false);
    let (expected, pattern) = (data.expected.clone(), data.pattern.clone());
    let mut up = Appliance::start(&["--data", &pattern], &env);
    up.wait_status(&env, Duration::from_secs(60), |s| {
        s["rows"] == 750 && s["lag"] == 0
    });
    assert_eq!(stored_totals(&pool).await, expected);
    assert!(up.interrupt());
    // The external services are not ours to stop.
    assert_eq!(services.status(&[])["broker"]["healthy"], true);
    assert_eq!(services.status(&[])["mysql"]["healthy"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_killed_with_sigkill_recovers_on_the_next_up() {
    let data = input(3, 2, 21, true);
    let (expected, pattern) = (data.expected.clone(), data.pattern.clone());
    let total: i64 = expected.values().map(|t| t.0).sum();

    let first = Appliance::start(&["--data", &pattern], &[]);
    let state_dir = first.kill();
    // The children were told to stop when `up` died; the next `up` copes with whatever is left
    // (lock file, endpoints file, pid files, a server still shutting down).
    let mut second = Appliance::start_in(state_dir, &["--data", &pattern], &[]);
    second.wait_status(&[], Duration::from_secs(90), |s| {
        s["rows"] == total && s["lag"] == 0
    });
    let pool = second.root_pool().await;
    assert_eq!(stored_totals(&pool).await, expected);
    assert_bad_lines_quarantined_once(&pool).await;
    pool.close().await;
    let marker = second.dir().display().to_string();
    assert!(second.interrupt());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(processes_mentioning(&marker), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_users_have_least_privilege_and_services_listen_on_loopback() {
    let _turn = SHARED_TABLES.lock().await;
    let services = Appliance::shared();
    let [root, app_password, bi_password] = services.passwords();

    let app = services.pool("tickpipe_app", &app_password).await;
    let mut tx = app.begin().await.unwrap();
    sqlx::query("INSERT INTO stock_data VALUES (?, ?, 1, 1, 1, 1, 1)")
        .bind(
            chrono::NaiveDate::from_ymd_opt(2020, 1, 1)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap(),
        )
        .bind("PRIVTEST")
        .execute(&mut *tx)
        .await
        .expect("the app user writes rows");
    tx.rollback().await.unwrap();
    for statement in [
        "DROP TABLE stock_data",
        "CREATE TABLE sneaky (i INT)",
        "CREATE USER 'sneaky'@'%' IDENTIFIED BY 'x'",
        "GRANT ALL ON *.* TO 'tickpipe_app'@'%'",
        "SELECT COUNT(*) FROM mysql.user",
    ] {
        let error = sqlx::raw_sql(statement)
            .execute(&app)
            .await
            .expect_err(statement)
            .to_string();
        assert!(error.contains("denied"), "app user: {statement}: {error}");
    }

    let bi = services.pool("tickpipe_bi", &bi_password).await;
    sqlx::query("SELECT COUNT(*) FROM stock_data")
        .fetch_one(&bi)
        .await
        .expect("the BI user reads");
    let error = sqlx::query("INSERT INTO stock_data VALUES ('2020-01-01', 'X', 1, 1, 1, 1, 1)")
        .execute(&bi)
        .await
        .expect_err("the BI user must not write")
        .to_string();
    assert!(error.contains("INSERT command denied"), "{error}");

    // Every port of the appliance listens on 127.0.0.1 only.
    let ports: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(services.dir().join("ports.json")).unwrap())
            .unwrap();
    let listening = std::fs::read_to_string("/proc/net/tcp").unwrap()
        + &std::fs::read_to_string("/proc/net/tcp6").unwrap();
    for name in ["kafka", "kafka_controller", "mysql"] {
        let port = format!(":{:04X} ", ports[name].as_u64().unwrap());
        let local: Vec<&str> = listening
            .lines()
            .filter(|l| l.split_whitespace().nth(3) == Some("0A")) // LISTEN
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|addr| format!("{addr} ").contains(&port))
            .collect();
        assert!(!local.is_empty(), "nothing listens on {name}'s port");
        for addr in local {
            assert!(
                addr.starts_with("0100007F:")
                    || addr.starts_with("0000000000000000FFFF00000100007F:"),
                "{name} listens on {addr}, not loopback"
            );
        }
    }

    // No password appears in any log.
    for log in walk_logs(services.dir()) {
        let text = String::from_utf8_lossy(&std::fs::read(&log).unwrap()).into_owned();
        for password in [&root, &app_password, &bi_password] {
            assert!(
                !text.contains(password.as_str()),
                "a password is written in {}",
                log.display()
            );
        }
    }
}

fn walk_logs(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut logs = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            logs.extend(walk_logs(&path));
        } else if path.extension().is_some_and(|e| e == "log" || e == "err") {
            logs.push(path);
        }
    }
    logs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_and_mysql_killed_mid_stream_lose_and_duplicate_nothing() {
    let _turn = SHARED_TABLES.lock().await;
    let appliance = Appliance::shared();
    let pool = fresh_pipeline(appliance, "faults").await;
    let mut env = topics_env("faults");
    env.push(("TICKPIPE_PROCESS__BATCH_ROWS".into(), "500".into()));
    env.push(("TICKPIPE_INGEST__BATCH_RECORDS".into(), "200".into()));
    let env = as_refs(&env);
    let data = input(10, 16, 77, true);
    let (expected, pattern) = (data.expected.clone(), data.pattern.clone());
    let total: i64 = expected.values().map(|t| t.0).sum();

    // The broker dies while the producer sends; the producer rides out the restart.
    let producer = appliance
        .tickpipe(&["produce", "--data", &pattern])
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    appliance.wait_status(&env, Duration::from_secs(30), |s| {
        records_in(s, "faults_ticks") > 0
    });
    let kafka = supervised_pid(appliance, "kafka");
    let _ = send(kafka, Signal::SIGKILL);
    let produced = producer.wait_with_output().unwrap();
    assert!(
        produced.status.success(),
        "the producer failed across a broker restart"
    );
    eprintln!("{}", String::from_utf8_lossy(&produced.stdout));
    wait_restarted(appliance, "kafka", kafka);

    // MySQL dies while the processor commits; the processor waits and goes on.
    let mut processor = appliance
        .tickpipe(&["process"])
        .envs(env.iter().copied())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while stored_rows(&pool).await == 0 && start.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let at_kill = stored_rows(&pool).await;
    assert!(
        at_kill < total,
        "the processor finished before MySQL was killed"
    );
    pool.close().await;
    let mysql = supervised_pid(appliance, "mysql");
    let _ = send(mysql, Signal::SIGKILL);
    wait_restarted(appliance, "mysql", mysql);
    appliance.wait_status(&env, Duration::from_secs(120), |s| s["lag"] == 0);
    assert!(
        processor.try_wait().unwrap().is_none(),
        "the processor gave up"
    );
    let _ = send(processor.id(), Signal::SIGTERM);
    assert!(processor.wait().unwrap().success());

    let pool = appliance.root_pool().await;
    assert_eq!(
        stored_totals(&pool).await,
        expected,
        "figures differ after broker and MySQL restarts"
    );
    assert_bad_lines_quarantined_once(&pool).await;
    assert_eq!(stored_rows(&pool).await, total);
}

/// Records in a topic (sum of high watermarks), from `status --json`.
fn records_in(status: &serde_json::Value, topic: &str) -> i64 {
    let partitions = status["partitions"].as_array().cloned().unwrap_or_default();
    partitions
        .iter()
        .filter(|p| p["topic"] == topic)
        .map(|p| p["high_watermark"].as_i64().unwrap())
        .sum()
}

/// The long variant (`scripts/test.sh --soak`): 1,005,000 rows stream in while the processor
/// is SIGKILLed five times at random points.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak: minutes long; run with scripts/test.sh --soak"]
async fn soak_processor_killed_five_times_while_a_million_rows_stream() {
    let _turn = SHARED_TABLES.lock().await;
    let appliance = Appliance::shared();
    let pool = fresh_pipeline(appliance, "soak").await;
    let env = topics_env("soak");
    let env = as_refs(&env);
    let data = input(20, 134, 3, true);
    let (expected, pattern, total) = (data.expected.clone(), data.pattern.clone(), data.generated);
    assert!(total >= 1_000_000);

    let producer = appliance
        .tickpipe(&["produce", "--data", &pattern])
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for kill in 1..=5 {
        let mut processor = appliance
            .tickpipe(&["process"])
            .envs(env.iter().copied())
            .spawn()
            .unwrap();
        let wait = Duration::from_millis(1000 + rand::random::<u64>() % 4000);
        tokio::time::sleep(wait).await;
        processor.kill().unwrap();
        processor.wait().unwrap();
        eprintln!(
            "kill {kill}: processor SIGKILLed after {wait:?} at {} of {total} rows",
            stored_rows(&pool).await
        );
    }
    let produced = producer.wait_with_output().unwrap();
    assert!(produced.status.success());
    eprint!("{}", String::from_utf8_lossy(&produced.stdout));
    let drained = appliance.run(&["process", "--drain"], &env);
    eprint!("{}", String::from_utf8_lossy(&drained.stdout));
    let stored = stored_totals(&pool).await;
    let rows: i64 = stored.values().map(|t| t.0).sum();
    eprintln!(
        "stored {rows} rows for {} symbols; input {total}",
        stored.len()
    );
    assert_eq!(stored, expected, "figures differ after five crashes");
    assert_bad_lines_quarantined_once(&pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_mysql_stops_consumption_instead_of_growing_a_queue() {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use tickpipe::process::{self, ProcessStats, RunOptions};

    let _turn = SHARED_TABLES.lock().await;
    let appliance = Appliance::shared();
    let root = fresh_pipeline(appliance, "slow").await;
    let env = topics_env("slow");
    let env = as_refs(&env);
    let data = input(8, 30, 13, false);
    let (pattern, total) = (data.pattern.clone(), data.generated);

    let mut config = tickpipe::config::Config::default();
    config.topics.ticks = "slow_ticks".into();
    config.topics.dlq = "slow_ticks.dlq".into();
    config.process.batch_rows = 1000;
    let writers = config.process.writers as u64;
    let [_, app_password, _] = appliance.passwords();
    let target = appliance.mysql_target("tickpipe_app", &app_password);
    let broker =
        tickpipe::broker::Broker::connect(&appliance.broker_admin(), Duration::from_secs(30))
            .await
            .unwrap();
    let store = tickpipe::store::Store::connect(&target, Duration::from_secs(30))
        .await
        .unwrap();
    let stats = Arc::new(ProcessStats::default());
    let cancel = tokio_util::sync::CancellationToken::new();
    let processor = {
        let (stats, cancel) = (stats.clone(), cancel.clone());
        tokio::spawn(async move {
            process::run(
                &config,
                &broker,
                &store,
                RunOptions::default(),
                stats,
                cancel,
            )
            .await
        })
    };
    // Once the processor holds its work (6 + 2 partitions, the rollup stage), MySQL accepts no
    // write (a global read lock) and the records arrive.
    wait_holdings(&root, "slow_ticks", "all held", |held| {
        held.values().map(Vec::len).sum::<usize>() == 9
    })
    .await;
    let mut lock = root.acquire().await.unwrap();
    sqlx::query("FLUSH TABLES WITH READ LOCK")
        .execute(&mut *lock)
        .await
        .unwrap();
    appliance.run(&["produce", "--data", &pattern], &env);

    tokio::time::sleep(Duration::from_secs(5)).await;
    let held = stats.fetched.load(Ordering::Relaxed);
    assert_eq!(
        stats.rows.load(Ordering::Relaxed),
        0,
        "nothing commits while MySQL is locked"
    );
    // The channels hold one chunk per partition (6 + 6 dead-letter); each writer one batch
    // (and one chunk being added to it).
    let bound = (12 + 2 * writers) * 1000;
    eprintln!("MySQL blocked: {held} of {total} records fetched and held (bound {bound})");
    assert!(
        held > 0 && held <= bound,
        "{held} records held in memory while MySQL was blocked"
    );

    sqlx::query("UNLOCK TABLES")
        .execute(&mut *lock)
        .await
        .unwrap();
    drop(lock);
    let start = Instant::now();
    while stats.rows.load(Ordering::Relaxed) < total as u64 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the processor did not resume"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cancel.cancel();
    processor.await.unwrap().unwrap();
    assert_eq!(stored_rows(&root).await, total);
}

/// Logs written to a pipe carry no colour escapes; `--log-format json` writes one JSON object
/// per line, with the message and its fields, for log collectors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_to_a_pipe_are_plain_text_or_json_lines() {
    let _turn = SHARED_TABLES.lock().await;
    let appliance = Appliance::shared();
    fresh_pipeline(appliance, "logs").await;
    let env = topics_env("logs");
    let env = as_refs(&env);
    let dir = tempfile::tempdir().unwrap();
    write_file(
        &dir.path().join("LOGBANK.csv"),
        "Timestamp,Bank_Name,Open,High,Low,Close,Volume\n\
         2024-01-02 09:15:00,LOGBANK,10,11,9,10,100\n\
         2024-01-02 09:16:00,LOGBANK,ten,11,9,10,100\n",
    );
    let data = format!("{}/*.csv", dir.path().display());

    let text = appliance.run(&["produce", "--data", &data], &env);
    let text = String::from_utf8_lossy(&text.stderr);
    assert!(text.contains("line quarantined"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "colour escapes in a pipe: {text:?}"
    );

    let json = appliance.run(&["--log-format", "json", "produce", "--data", &data], &env);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&json.stderr)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let quarantined = lines
        .iter()
        .find(|line| line["fields"]["message"] == "line quarantined")
        .unwrap_or_else(|| panic!("no quarantine logged: {lines:?}"));
    assert_eq!(quarantined["level"], "WARN");
    assert!(
        quarantined["fields"]["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("\"ten\" is not a decimal number")),
        "{quarantined}"
    );
}

/// `status` stays quick on a large table: past 200,000 rows its count is the table statistics'
/// estimate, marked as such; `status --exact` counts every row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_estimates_a_large_tables_rows_and_counts_them_on_request() {
    let _turn = SHARED_TABLES.lock().await;
    let appliance = Appliance::shared();
    let root = fresh_pipeline(appliance, "counts").await;
    let env = topics_env("counts");
    let env = as_refs(&env);
    // 300,000 rows, one a minute, written by SQL (MariaDB's sequence engine), then the table
    // statistics brought up to date as InnoDB does in the background.
    sqlx::query(
        "INSERT INTO stock_data (`Timestamp`, Bank_Name, Open, High, Low, Close, Volume) \
         SELECT '2020-01-01' + INTERVAL seq MINUTE, 'COUNTED', 1, 1, 1, 1, 1 \
         FROM seq_1_to_300000",
    )
    .execute(&root)
    .await
    .unwrap();
    sqlx::query("ANALYZE TABLE stock_data")
        .execute(&root)
        .await
        .unwrap();

    let estimated = appliance.status(&env);
    assert_eq!(estimated["rows"], serde_json::Value::Null, "{estimated:#}");
    let rows = estimated["rows_estimated"].as_i64().unwrap();
    assert!(
        (150_000..=600_000).contains(&rows),
        "an estimate near 300,000: {rows}"
    );
    let text = appliance.run(&["status"], &env);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!("rows ≈ {rows} ")) && text.contains("`status --exact` counts"),
        "{text}"
    );

    let output = appliance
        .tickpipe(&["status", "--json", "--exact"])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let exact: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(exact["rows"], 300_000, "{exact:#}");
    assert!(exact.get("rows_estimated").is_none(), "{exact:#}");

    // Emptied again for the tests that follow (they count exactly: small tables).
    sqlx::query("DELETE FROM stock_data")
        .execute(&root)
        .await
        .unwrap();
    sqlx::query("DELETE FROM rollup_pending")
        .execute(&root)
        .await
        .unwrap();
    sqlx::query("ANALYZE TABLE stock_data")
        .execute(&root)
        .await
        .unwrap();
}
