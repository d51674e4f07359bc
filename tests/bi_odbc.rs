//! A BI tool's view of the appliance: unixODBC's `isql` with the MariaDB ODBC driver (what the
//! Power BI MariaDB connector uses), logged in over TCP as the read-only BI user, reads the views
//! the pipeline fills, agrees with what root reads over sqlx, and cannot write.
//! Needs `scripts/install-odbc.sh`.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use chrono::NaiveDate;
use common::*;
use rust_decimal::Decimal;
use sqlx::Row;

const DSN: &str = "tickpipe";

/// The files `up` writes for BI tools carry the running appliance's MySQL address: the Power
/// BI data source file, the Grafana data source (with the BI user's password) and the ODBC DSN
/// the test then connects through. Returns the DSN file.
fn check_bi_files(appliance: &Appliance, port: u64, bi_password: &str) -> std::path::PathBuf {
    let dir = appliance.dir().join("bi");
    let pbids: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tickpipe.pbids")).unwrap())
            .unwrap();
    let address = &pbids["connections"][0]["details"]["address"];
    assert_eq!(address["server"], format!("127.0.0.1:{port}"), "{pbids}");
    assert_eq!(address["database"], "stock_market");
    assert_eq!(pbids["connections"][0]["details"]["protocol"], "mysql");
    let grafana = std::fs::read_to_string(dir.join("grafana-datasource.yaml")).unwrap();
    for line in [
        format!("url: \"127.0.0.1:{port}\""),
        "user: \"tickpipe_bi\"".into(),
        "database: \"stock_market\"".into(),
        format!("password: \"{bi_password}\""),
    ] {
        assert!(grafana.contains(&line), "{line} not in:\n{grafana}");
    }
    let odbc = dir.join("odbc.ini");
    let dsn = std::fs::read_to_string(&odbc).unwrap();
    for line in [
        "[tickpipe]".to_string(),
        "Server = 127.0.0.1".into(),
        format!("Port = {port}"),
        "Database = stock_market".into(),
    ] {
        assert!(dsn.lines().any(|l| l == line), "{line} not in:\n{dsn}");
    }
    for file in ["tickpipe.pbids", "grafana-datasource.yaml", "odbc.ini"] {
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.join(file)).unwrap().permissions(),
        );
        assert_eq!(mode & 0o077, 0, "{file} is readable by others");
    }
    odbc
}

/// Runs one SQL statement through `isql` as the BI user, with the DSN file `odbc` (the driver
/// as the system registered it).
fn isql(odbc: &Path, password: &str, sql: &str) -> Output {
    let mut child = Command::new("isql")
        .args(["-b", "-v", "-d|", DSN, "tickpipe_bi", password])
        .env("ODBCINI", odbc)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running isql (scripts/install-odbc.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{sql}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// The rows of a query's `isql` output, fields split on `|`; panics on any ODBC error.
fn isql_rows(output: &Output) -> Vec<Vec<String>> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success()
            && output.stderr.is_empty()
            && !stdout.lines().any(|line| line.starts_with('[')),
        "isql failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .map(|line| line.split('|').map(str::to_string).collect())
        .collect()
}

/// The last Close of each seed-layout file (its newest row), read with a plain split.
fn last_closes(files: &[std::path::PathBuf]) -> Vec<(String, Decimal)> {
    let mut closes: Vec<(String, Decimal)> = files
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(file).unwrap();
            let fields: Vec<&str> = text.lines().last().unwrap().split(',').collect();
            (fields[1].to_string(), fields[5].parse().unwrap())
        })
        .collect();
    closes.sort();
    closes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bi_user_reads_the_views_over_odbc_as_stored_and_cannot_write() {
    let appliance = Appliance::shared();
    let root = fresh_pipeline(appliance, "odbc").await;
    let env = topics_env("odbc");
    let env = as_refs(&env);

    // Two symbols, one session, through the real pipeline.
    let data = tempfile::tempdir().unwrap();
    generate(data.path(), 2, 1, 21);
    let files = csv_files(data.path());
    let expected = input_totals(&files);
    let pattern = format!("{}/*.csv", data.path().display());
    appliance.run(&["produce", "--data", &pattern], &env);
    appliance.run(&["process", "--drain"], &env);

    let port = appliance.status(&env)["mysql"]["port"].as_u64().unwrap();
    let [_, _, bi_password] = appliance.passwords();
    let odbc = check_bi_files(appliance, port, &bi_password);

    // v_latest_price: one row per symbol, the newest Close, as root reads it.
    let latest_sql = "SELECT Bank_Name, Price FROM v_latest_price ORDER BY Bank_Name";
    let over_odbc: Vec<(String, Decimal)> = isql_rows(&isql(&odbc, &bi_password, latest_sql))
        .into_iter()
        .map(|r| (r[0].clone(), r[1].parse().unwrap()))
        .collect();
    let over_sqlx: Vec<(String, Decimal)> = sqlx::query(latest_sql)
        .fetch_all(&root)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        over_odbc, over_sqlx,
        "isql and sqlx read v_latest_price differently"
    );
    assert_eq!(
        over_odbc,
        last_closes(&files),
        "v_latest_price is not the newest rows"
    );

    // v_daily_summary: one row per symbol (one session), as root reads it.
    let daily_sql = "SELECT Bank_Name, Trade_Date, Open, Close, CAST(Volume AS SIGNED), Bars \
                     FROM v_daily_summary ORDER BY Bank_Name, Trade_Date";
    type Daily = (String, NaiveDate, Decimal, Decimal, i64, i64);
    let over_odbc: Vec<Daily> = isql_rows(&isql(&odbc, &bi_password, daily_sql))
        .into_iter()
        .map(|r| {
            (
                r[0].clone(),
                r[1].parse().unwrap(),
                r[2].parse().unwrap(),
                r[3].parse().unwrap(),
                r[4].parse().unwrap(),
                r[5].parse().unwrap(),
            )
        })
        .collect();
    let over_sqlx: Vec<Daily> = sqlx::query(daily_sql)
        .fetch_all(&root)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect();
    assert_eq!(
        over_odbc, over_sqlx,
        "isql and sqlx read v_daily_summary differently"
    );
    let sessions: Vec<(String, i64, i64)> =
        over_odbc.iter().map(|d| (d.0.clone(), d.5, d.4)).collect();
    let input: Vec<(String, i64, i64)> = expected
        .iter()
        .map(|(symbol, t)| (symbol.clone(), t.0, t.1.try_into().unwrap()))
        .collect();
    assert_eq!(
        sessions, input,
        "v_daily_summary: bars and volume per symbol"
    );

    // The BI user cannot write.
    let before = stored_rows(&root).await;
    let insert = isql(
        &odbc,
        &bi_password,
        "INSERT INTO stock_data VALUES ('2020-01-01', 'ODBCTEST', 1, 1, 1, 1, 1)",
    );
    let said = String::from_utf8_lossy(&insert.stdout) + String::from_utf8_lossy(&insert.stderr);
    assert!(said.contains("INSERT command denied"), "{said}");
    // SQLSTATE 42000 (isql reports it in its ODBC 2 form, 37000).
    assert!(
        said.contains("[42000]") || said.contains("[37000]"),
        "{said}"
    );
    assert_eq!(
        stored_rows(&root).await,
        before,
        "the BI user's INSERT changed stock_data"
    );
}
