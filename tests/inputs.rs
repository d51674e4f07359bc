//! Real inputs, as users have them: 6- and 8-decimal prices, the original design's Python
//! producer, Kafka's console producer, and a database made by the previous schema upgraded in
//! place. Real Kafka (KRaft) and MariaDB.

mod common;

use std::process::{Command, Stdio};

use common::*;
use rust_decimal::Decimal;
use sqlx::Row;

/// Tests on the shared appliance clear its tables: they take turns.
static SHARED_TABLES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A Yahoo Finance daily download (`Date,Open,High,Low,Close,Adj Close,Volume`, 6 decimals,
/// a row of nulls for a day without data), as published.
const YAHOO: &str = "Date,Open,High,Low,Close,Adj Close,Volume
2024-01-02,39.455002,40.099998,39.369999,40.029999,38.642914,50418800
2024-01-03,40.029999,40.279999,39.799999,39.959999,38.575348,38617500
2024-01-04,null,null,null,null,null,null
2024-01-05,39.910000,40.369999,39.810001,40.299999,38.903572,33251600
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_and_eight_decimal_prices_are_stored_exactly_and_more_follow_the_policy() {
    let _turn = SHARED_TABLES.lock().await;
    let appliance = Appliance::shared();
    let root = fresh_pipeline(appliance, "places").await;
    let env = topics_env("places");
    let dir = tempfile::tempdir().unwrap();
    write_file(&dir.path().join("INTC.csv"), YAHOO);
    // A crypto feed: 8 places; and a line with 9 (refused, then rounded half to even).
    write_file(
        &dir.path().join("crypto/BTCUSDT.csv"),
        "timestamp,open,high,low,close,volume
2024-01-02T00:00:00Z,0.00001234,0.00001240,0.00001230,0.00001238,120000000
2024-01-02T00:01:00Z,42000.12345678,42000.12345679,42000.12345677,42000.123456785,3
",
    );
    let pattern = format!("{}/**/*.csv", dir.path().display());
    let refuse = [
        &as_refs(&env)[..],
        &[("TICKPIPE_INGEST__EXCESS_DECIMALS", "refuse")],
    ]
    .concat();
    let out = appliance.run(&["produce", "--json", "--data", &pattern], &refuse);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (summary["records"].as_u64(), summary["rejected"].as_u64()),
        (Some(4), Some(2))
    );
    appliance.run(&["process", "--drain"], &refuse);

    let closes: Vec<(String, Decimal)> =
        sqlx::query("SELECT Bank_Name, Close FROM stock_data ORDER BY Bank_Name, `Timestamp`")
            .fetch_all(&root)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
    let text: Vec<(String, String)> = closes
        .iter()
        .map(|(s, c)| (s.clone(), c.normalize().to_string()))
        .collect();
    assert_eq!(
        text,
        [
            ("BTCUSDT".to_string(), "0.00001238".to_string()),
            ("INTC".into(), "40.029999".into()),
            ("INTC".into(), "39.959999".into()),
            ("INTC".into(), "40.299999".into()),
        ]
    );
    let reasons = rejected(&root).await;
    let reason_of = |suffix: &str| {
        reasons
            .iter()
            .find(|(source, _, _)| source.ends_with(suffix))
            .map(|(_, _, reason)| reason.clone())
            .unwrap_or_else(|| panic!("no refusal from {suffix}: {reasons:?}"))
    };
    assert!(
        reason_of("BTCUSDT.csv:3").contains("close 42000.123456785 has more than 8 decimal places")
    );
    assert!(reason_of("INTC.csv:4").contains("open is null"));
    assert_eq!(reasons.len(), 2);

    // The same files with rounding: the 9-place close rounds half to even.
    let round = [
        &as_refs(&env)[..],
        &[("TICKPIPE_INGEST__EXCESS_DECIMALS", "round")],
    ]
    .concat();
    let out = appliance.run(&["produce", "--json", "--data", &pattern], &round);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["rounded"], 1, "{summary}");
    appliance.run(&["process", "--drain"], &round);
    let close: Decimal = sqlx::query_scalar(
        "SELECT Close FROM stock_data WHERE Bank_Name = 'BTCUSDT' AND `Timestamp` = '2024-01-02 00:01:00'",
    )
    .fetch_one(&root)
    .await
    .unwrap();
    assert_eq!(close.normalize().to_string(), "42000.12345678");
    // Sums of 6-place prices stay exact in the bars.
    let turnover: Decimal = sqlx::query_scalar(
        "SELECT Turnover FROM ohlcv_1m WHERE Bank_Name = 'INTC' AND `Timestamp` = '2024-01-02 00:00:00'",
    )
    .fetch_one(&root)
    .await
    .unwrap();
    assert_eq!(
        turnover,
        Decimal::new(40_029_999, 6) * Decimal::from(50_418_800)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_python_producer_and_the_console_producer_are_stored() {
    let _turn = SHARED_TABLES.lock().await;
    let appliance = Appliance::shared();
    let root = fresh_pipeline(appliance, "seedpy").await;
    let mut env = topics_env("seedpy");
    // The seed's times carry no offset: they are read in the source zone.
    env.push((
        "TICKPIPE_INGEST__SOURCE_TIMEZONE".into(),
        "Asia/Kolkata".into(),
    ));
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 3, 2, 81);
    let files = csv_files(dir.path());
    let expected = input_totals(&files);
    for file in &files {
        let output = Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/python/original_producer.py"
            ))
            .args([&appliance.bootstrap(), "seedpy_ticks"])
            .arg(file)
            .args(<[String; 2]>::from(appliance.kafka_login("app")))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // Kafka's console producer, with the seed's field names and a number as a string.
    let line = r#"{"Timestamp":"2024-02-01 09:15:00","Bank_Name":"CONSOLEBANK","Open":"10.5","High":"11","Low":"10","Close":"10.75","Volume":"300"}"#;
    let console = appliance.kafka_tool(
        "app",
        "org.apache.kafka.tools.ConsoleProducer",
        &[
            "--bootstrap-server",
            &appliance.bootstrap(),
            "--topic",
            "seedpy_ticks",
        ],
        Some(&format!("{line}\n")),
    );
    assert!(
        console.status.success(),
        "{}",
        String::from_utf8_lossy(&console.stderr)
    );

    appliance.run(&["process", "--drain"], &as_refs(&env));
    let mut expected = expected;
    expected.insert(
        "CONSOLEBANK".into(),
        (1, Decimal::from(300), Decimal::new(1075, 2)),
    );
    assert_eq!(stored_totals(&root).await, expected);
    assert!(rejected(&root).await.is_empty());
    // 09:15 in Kolkata is 03:45 UTC.
    let first: String = sqlx::query_scalar(
        "SELECT DATE_FORMAT(MIN(`Timestamp`), '%H:%i') FROM stock_data WHERE Bank_Name = 'CONSOLEBANK'",
    )
    .fetch_one(&root)
    .await
    .unwrap();
    assert_eq!(first, "03:45");
    assert_eq!(appliance.status(&as_refs(&env))["lag"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_of_the_previous_schema_is_upgraded_in_place() {
    let appliance = Appliance::shared();
    let root = appliance.root_pool().await;
    sqlx::query("DROP DATABASE IF EXISTS upgrade_test")
        .execute(&root)
        .await
        .unwrap();
    sqlx::query("CREATE DATABASE upgrade_test")
        .execute(&root)
        .await
        .unwrap();
    let [root_password, _, _] = appliance.passwords();
    let options = sqlx::mysql::MySqlConnectOptions::new()
        .socket(appliance.dir().join("mysql/mysql.sock"))
        .username("root")
        .password(&root_password)
        .database("upgrade_test");
    let db = sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap();
    // The schema as an earlier release left it: every migration before 0004 (prices to 8
    // places; 0005 then widens volumes).
    let all = tickpipe::store::migrator();
    let previous = sqlx::migrate::Migrator {
        migrations: all
            .migrations
            .iter()
            .filter(|m| m.version < 4)
            .cloned()
            .collect::<Vec<_>>()
            .into(),
        ..tickpipe::store::migrator()
    };
    previous.run(&db).await.unwrap();
    for (at, close, volume) in [
        ("2024-01-02 09:15:00", "1520.1234", 10),
        ("2024-01-02 09:16:00", "1521.5", 20),
    ] {
        sqlx::query(
            "INSERT INTO stock_data (`Timestamp`, Bank_Name, Open, High, Low, Close, Volume) \
             VALUES (?, 'OLDBANK', ?, ?, ?, ?, ?)",
        )
        .bind(at)
        .bind(close)
        .bind(close)
        .bind(close)
        .bind(close)
        .bind(volume)
        .execute(&db)
        .await
        .unwrap();
    }
    let before: Vec<(String, Decimal, i64)> = sqlx::query(
        "SELECT CAST(`Timestamp` AS CHAR), Close, CAST(Volume AS SIGNED) FROM stock_data \
         ORDER BY `Timestamp`",
    )
    .fetch_all(&db)
    .await
    .unwrap()
    .into_iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect();

    all.run(&db).await.unwrap();
    let after: Vec<(String, Decimal, i64)> = sqlx::query(
        "SELECT CAST(`Timestamp` AS CHAR), Close, CAST(Volume AS SIGNED) FROM stock_data \
         ORDER BY `Timestamp`",
    )
    .fetch_all(&db)
    .await
    .unwrap()
    .into_iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect();
    assert_eq!(after, before, "rows kept, values equal");
    let close_type: String = sqlx::query_scalar(
        "SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'upgrade_test' \
         AND TABLE_NAME = 'stock_data' AND COLUMN_NAME = 'Close'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(close_type, "decimal(22,8)");
    let volume_type: String = sqlx::query_scalar(
        "SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'upgrade_test' \
         AND TABLE_NAME = 'stock_data' AND COLUMN_NAME = 'Volume'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(volume_type, "decimal(28,8)");
    sqlx::query("UPDATE stock_data SET Close = '1521.12345678' WHERE Volume = 20")
        .execute(&db)
        .await
        .unwrap();
    let close: Decimal = sqlx::query_scalar("SELECT Close FROM stock_data WHERE Volume = 20")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(close.normalize().to_string(), "1521.12345678");
    db.close().await;
    sqlx::query("DROP DATABASE upgrade_test")
        .execute(&root)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layouts_people_download_are_read_exactly() {
    let _turn = SHARED_TABLES.lock().await;
    let appliance = Appliance::shared();
    let root = fresh_pipeline(appliance, "layouts").await;
    let env = topics_env("layouts");
    let env = as_refs(&env);
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/layouts");
    let mut args = vec!["produce".to_string()];
    for pattern in [
        "yahoo/*.csv",
        "stooq/*.txt",
        "alphavantage/*.csv",
        "nse/*.csv",
        "split/*.csv",
        "daily/*.csv",
        "semicolon/*.csv",
        "binance/*.csv",
        "nasdaq/*.csv",
        "investing/*.csv",
    ] {
        args.extend(["--data".to_string(), format!("{fixtures}/{pattern}")]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    appliance.run(&args, &env);
    // A header the reader does not know, mapped in [ingest.columns].
    let mapped = [
        &env[..],
        &[
            ("TICKPIPE_INGEST__COLUMNS__DATE", "Datum"),
            ("TICKPIPE_INGEST__COLUMNS__OPEN", "Erster"),
            ("TICKPIPE_INGEST__COLUMNS__HIGH", "Hoch"),
            ("TICKPIPE_INGEST__COLUMNS__LOW", "Tief"),
            ("TICKPIPE_INGEST__COLUMNS__CLOSE", "Schluss"),
            ("TICKPIPE_INGEST__COLUMNS__VOLUME", "Stücke"),
        ],
    ]
    .concat();
    appliance.run(
        &["produce", "--data", &format!("{fixtures}/mapped/*.csv")],
        &mapped,
    );
    appliance.run(&["process", "--drain"], &env);

    // Per symbol: rows, sum of volumes, sum of closes, from the fixtures as written.
    let d = |text: &str| text.parse::<Decimal>().unwrap();
    let expected: Totals = [
        ("YAHOO", 2, 140_903_200, d("369.889999")),
        ("STOOQ.US", 2, 2_198_346, d("373.7501")),
        ("ALPHA", 3, 788_151, d("480.58")),
        ("NSE", 2, 66_927, d("1769.8")),
        ("SPLIT", 2, 2_500, d("201.75")),
        ("DAILY", 2, 2_200_000, d("102.25")),
        ("SEMI", 2, 89_036_300, d("79.989998")),
        ("MAPPED", 2, 218_000, d("33.80")),
        // Nasdaq: `$` prices, month-first dates; Investing.com: `1,181.91`, `62.38M`.
        ("NASDAQ", 2, 134_363_230, d("363.09")),
        ("INVEST", 2, 62_451_980, d("1363.09")),
    ]
    .into_iter()
    .map(|(s, n, v, c)| (s, n, Decimal::from(v), c))
    .chain([
        // Binance klines: base volumes of up to 8 places, stored exactly.
        ("BTCUSDT", 3, d("56.99820345"), d("126944.11")),
        ("ETHUSDT", 2, d("387.0367"), d("6678.43")),
        ("BNBUSDT-1h", 1, d("1234.567"), d("313.8")),
    ])
    .map(|(s, n, v, c)| (s.to_string(), (n, v, c)))
    .collect();
    assert_eq!(stored_totals(&root).await, expected);
    let first = |symbol: &'static str| {
        let root = root.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT DATE_FORMAT(MIN(`Timestamp`), '%Y-%m-%d %H:%i') FROM stock_data \
                 WHERE Bank_Name = ?",
            )
            .bind(symbol)
            .fetch_one(&root)
            .await
            .unwrap()
        }
    };
    assert_eq!(
        first("NSE").await,
        "2015-02-02 03:45",
        "+05:30 taken as written"
    );
    assert_eq!(
        first("STOOQ.US").await,
        "2024-01-02 15:35",
        "split date and time"
    );
    assert_eq!(first("SPLIT").await, "2024-01-02 09:15");
    assert_eq!(
        first("DAILY").await,
        "2024-01-02 00:00",
        "a date alone is the day's start"
    );
    assert_eq!(
        first("ALPHA").await,
        "2024-01-05 15:50",
        "newest first is fine"
    );
    assert_eq!(
        first("BTCUSDT").await,
        "2024-01-01 00:00",
        "epoch milliseconds, headerless, pair from the file name"
    );
    assert_eq!(
        first("ETHUSDT").await,
        "2025-01-01 00:00",
        "epoch microseconds"
    );
    // The bars and the day's volume add the fractions up exactly.
    let bar_volumes: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(Volume AS CHAR) FROM ohlcv_1m WHERE Bank_Name = 'BTCUSDT' ORDER BY `Timestamp`",
    )
    .fetch_all(&root)
    .await
    .unwrap();
    assert_eq!(bar_volumes, ["35.92724000", "21.07084000", "0.00012345"]);
    let day_volume: String = sqlx::query_scalar(
        "SELECT CAST(Day_Volume AS CHAR) FROM latest_quotes WHERE Bank_Name = 'BTCUSDT'",
    )
    .fetch_one(&root)
    .await
    .unwrap();
    assert_eq!(day_volume, "56.99820345");
    assert_eq!(
        first("NASDAQ").await,
        "2024-01-04 00:00",
        "01/04/2024 is 4 January in a Nasdaq export"
    );
    let refused = rejected(&root).await;
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(
        refused[0].0.ends_with("INVEST.csv:4") && refused[0].2.contains("volume: missing"),
        "{refused:?}"
    );
    assert!(
        refused[1].0.ends_with("YAHOO.csv:4") && refused[1].2.contains("open is null"),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_lines_are_counted_and_a_conflict_names_both_sources() {
    let _turn = SHARED_TABLES.lock().await;
    let appliance = Appliance::shared();
    let root = fresh_pipeline(appliance, "dups").await;
    let env = topics_env("dups");
    let env = as_refs(&env);
    let dir = tempfile::tempdir().unwrap();
    let header = "Timestamp,Bank_Name,Open,High,Low,Close,Volume\n";
    write_file(
        &dir.path().join("a/DUP.csv"),
        &format!(
            "{header}2024-01-02 09:15:00,DUPBANK,10,10,10,10,100\n\
             2024-01-02 09:15:00,DUPBANK,10,10,10,10,100\n\
             2024-01-02 09:16:00,DUPBANK,11,11,11,11,200\n"
        ),
    );
    write_file(
        &dir.path().join("b/DUP.csv"),
        &format!("{header}2024-01-02 09:16:00,DUPBANK,12,12,12,12,300\n"),
    );
    let output = appliance.run(
        &[
            "produce",
            "--json",
            "--data",
            &format!("{}/*/DUP.csv", dir.path().display()),
        ],
        &env,
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["records"], 4, "{summary}");
    assert_eq!(summary["duplicates"]["identical"], 1, "{summary}");
    assert_eq!(summary["duplicates"]["conflicting"], 1, "{summary}");
    let log = String::from_utf8_lossy(&output.stderr);
    let conflict = log
        .lines()
        .find(|l| l.contains("the later line wins"))
        .unwrap_or_else(|| panic!("no conflict logged:\n{log}"));
    assert!(
        conflict.contains("b/DUP.csv:2") && conflict.contains("a/DUP.csv:4"),
        "{conflict}"
    );
    appliance.run(&["process", "--drain"], &env);
    let volumes: Vec<i64> =
        sqlx::query_scalar("SELECT CAST(Volume AS SIGNED) FROM stock_data ORDER BY `Timestamp`")
            .fetch_all(&root)
            .await
            .unwrap();
    assert_eq!(
        volumes,
        [100, 300],
        "one row per key, the later line's figures"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_local_hour_is_never_two_rows_written_onto_one() {
    let _turn = SHARED_TABLES.lock().await;
    let appliance = Appliance::shared();
    let root = fresh_pipeline(appliance, "dst").await;
    let mut env = topics_env("dst");
    env.push((
        "TICKPIPE_INGEST__SOURCE_TIMEZONE".into(),
        "America/New_York".into(),
    ));
    let dir = tempfile::tempdir().unwrap();
    // Clocks go back at 02:00 EDT on 2024-11-03: 01:30 happens twice. An export without
    // offsets writes both as 01:30.
    write_file(
        &dir.path().join("DST.csv"),
        "Timestamp,Bank_Name,Open,High,Low,Close,Volume
2024-11-03 00:30:00,DSTBANK,10,10,10,10,1
2024-11-03 01:30:00,DSTBANK,11,11,11,11,2
2024-11-03 01:30:00,DSTBANK,12,12,12,12,3
2024-11-03 02:30:00,DSTBANK,13,13,13,13,4
",
    );
    let pattern = format!("{}/*.csv", dir.path().display());
    appliance.run(&["produce", "--data", &pattern], &as_refs(&env));
    appliance.run(&["process", "--drain"], &as_refs(&env));
    let volumes: Vec<i64> =
        sqlx::query_scalar("SELECT CAST(Volume AS SIGNED) FROM stock_data ORDER BY `Timestamp`")
            .fetch_all(&root)
            .await
            .unwrap();
    assert_eq!(
        volumes,
        [1, 4],
        "the two 01:30 lines are refused, not merged"
    );
    let refused = rejected(&root).await;
    assert_eq!(refused.len(), 2, "{refused:?}");
    for (_, _, reason) in &refused {
        assert!(
            reason.contains("happens twice") && reason.contains("05:30 UTC or 06:30 UTC"),
            "{reason}"
        );
    }
}
