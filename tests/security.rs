//! Secure by default on a shared machine: who may consume, write, read and connect — against
//! the real services, as another local account would try it.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;
use sqlx::Row;

/// A long-running `tickpipe process` on the appliance's private topics.
fn start_processor(appliance: &Appliance, env: &[(&str, &str)], log: &str) -> Child {
    let out = std::fs::File::create(appliance.dir().join(log)).unwrap();
    appliance
        .tickpipe(&["process"])
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap()
}

/// Every unit of `pipeline`'s work (6 + 2 partitions and the rollup stage) held by `pid`.
async fn wait_all_held_by(root: &sqlx::MySqlPool, pipeline: &str, pid: u32) {
    wait_holdings(root, pipeline, &format!("all held by {pid}"), |held| {
        held.len() == 1 && held.get(&pid).is_some_and(|units| units.len() == 9)
    })
    .await;
}

/// A draining `tickpipe process` (which needs every partition) beside a running one: it must
/// refuse, naming the holder.
fn assert_refused(appliance: &Appliance, env: &[(&str, &str)], holder: u32) {
    let output = appliance
        .tickpipe(&["process", "--drain"])
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a second processor ran: {said}");
    assert!(
        said.contains(&format!("another processor (pid {holder} on ")),
        "{said}"
    );
}

/// The BI user can neither read nor lock, let alone change, the processors' leases.
async fn assert_bi_cannot_touch_the_leases(appliance: &Appliance) {
    let [_, _, bi_password] = appliance.passwords();
    let bi = appliance.pool("tickpipe_bi", &bi_password).await;
    for attempt in [
        "SELECT Owner FROM processor_leases FOR UPDATE",
        "UPDATE processor_leases SET Owner = 'bi'",
        "DELETE FROM processor_leases",
        "SELECT Owner FROM processors FOR UPDATE",
        "UPDATE processors SET Expires_At = '2099-01-01'",
        "DELETE FROM processors",
    ] {
        let denied = sqlx::query(attempt).execute(&bi).await.unwrap_err();
        let number = denied
            .as_database_error()
            .and_then(|e| e.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>())
            .map(|e| e.number());
        assert_eq!(
            number,
            Some(1142),
            "{attempt}: command denied, got {denied}"
        );
    }
    bi.close().await;
}

fn signal(child: &Child, signal: Signal) {
    send(child.id(), signal).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processors_leases_hold_across_a_mariadb_restart_and_a_paused_holder_is_taken_over() {
    // Its own appliance: MariaDB is restarted under it.
    let appliance = Appliance::start(&["--services-only"], &[]);
    let root = fresh_pipeline(&appliance, "claim").await;
    let env = topics_env("claim");
    let env = as_refs(&env);

    // The BI user (whose password BI tools hold) takes the named lock earlier releases used:
    // it blocks nothing now.
    let [_, _, bi_password] = appliance.passwords();
    let bi = appliance.pool("tickpipe_bi", &bi_password).await;
    let mut bi_session = bi.acquire().await.unwrap();
    let took: Option<i64> =
        sqlx::query_scalar("SELECT GET_LOCK('tickpipe.process.stock_market.claim_ticks', 0)")
            .fetch_one(&mut *bi_session)
            .await
            .unwrap();
    assert_eq!(took, Some(1));

    let mut first = start_processor(&appliance, &env, "first.log");
    wait_all_held_by(&root, "claim_ticks", first.id()).await;
    assert_refused(&appliance, &env, first.id());
    assert_bi_cannot_touch_the_leases(&appliance).await;
    drop(bi_session);
    bi.close().await;

    // MariaDB killed and restarted: the leases are rows, still there; the holder renews itself.
    let mysql = supervised_pid(&appliance, "mysql");
    let _ = send(mysql, Signal::SIGKILL);
    wait_restarted(&appliance, "mysql", mysql);
    let root = appliance.root_pool().await;
    assert_refused(&appliance, &env, first.id());
    assert_bi_cannot_touch_the_leases(&appliance).await;

    // A second processor shares the work; MySQL then refuses every write for longer than a
    // lease (a global read lock), so every member's row expires: once it is back, nobody is
    // taken for dead (each renews within a second), and both go on sharing.
    let mut helper = start_processor(&appliance, &env, "helper.log");
    let pids = [first.id(), helper.id()];
    let both = |held: &std::collections::BTreeMap<u32, Vec<String>>| {
        held.len() == 2
            && pids
                .iter()
                .all(|pid| held.get(pid).is_some_and(|units| units.len() >= 4))
            && held.values().map(Vec::len).sum::<usize>() == 9
    };
    let logs = ["first.log", "helper.log"].map(|log| appliance.dir().join(log));
    wait_holdings_showing(&root, "claim_ticks", "shared by two", both, &logs).await;
    let mut lock = root.acquire().await.unwrap();
    sqlx::query("FLUSH TABLES WITH READ LOCK")
        .execute(&mut *lock)
        .await
        .unwrap();
    tokio::time::sleep(tickpipe::store::LEASE_TTL + Duration::from_secs(3)).await;
    sqlx::query("UNLOCK TABLES")
        .execute(&mut *lock)
        .await
        .unwrap();
    drop(lock);
    tokio::time::sleep(tickpipe::store::LEASE_TTL).await;
    for (who, child) in [("first", &mut first), ("helper", &mut helper)] {
        let exited = child.try_wait().unwrap();
        let said = std::fs::read_to_string(appliance.dir().join(format!("{who}.log")));
        assert!(exited.is_none(), "{who} stopped after the lock: {said:?}");
    }
    wait_holdings_showing(&root, "claim_ticks", "still shared by two", both, &logs).await;
    // The helper stops cleanly: its share goes back to the first at once.
    signal(&helper, Signal::SIGINT);
    assert!(helper.wait().unwrap().success());
    wait_all_held_by(&root, "claim_ticks", first.id()).await;

    // The holder paused past its lease's expiry: a new processor takes its work over and
    // stores what arrives; the old one, resumed, stops without committing anything.
    signal(&first, Signal::SIGSTOP);
    tokio::time::sleep(tickpipe::store::LEASE_TTL + Duration::from_secs(2)).await;
    let mut second = start_processor(&appliance, &env, "second.log");
    wait_all_held_by(&root, "claim_ticks", second.id()).await;
    let data = tempfile::tempdir().unwrap();
    generate(data.path(), 3, 1, 11);
    let expected = input_totals(&csv_files(data.path()));
    appliance.run(
        &[
            "produce",
            "--data",
            &format!("{}/*.csv", data.path().display()),
        ],
        &env,
    );
    signal(&first, Signal::SIGCONT);
    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = first.try_wait().unwrap() {
            break exit;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the paused processor did not stop"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let said = std::fs::read_to_string(appliance.dir().join("first.log")).unwrap();
    assert!(!exit.success(), "{said}");
    assert!(said.contains("another processor took over"), "{said}");

    let started = Instant::now();
    while stored_totals(&root).await != expected {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "stored {:?}, expected {expected:?}",
            stored_totals(&root).await
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Stopped cleanly, the holder gives its work up: the next processor need not wait.
    signal(&second, Signal::SIGINT);
    assert!(second.wait().unwrap().success());
    let left: i64 = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM processor_leases) + (SELECT COUNT(*) FROM processors)",
    )
    .fetch_one(&root)
    .await
    .unwrap()
    .get(0);
    assert_eq!(left, 0, "given up at a clean stop");
}

/// A raw connection to `url`'s host and port.
/// A connection to `url`'s port.
fn connect(url: &str) -> TcpStream {
    try_connect(url).unwrap_or_else(|| panic!("no connection to {url}"))
}

/// The first bytes the server sends on `stream` (after `request`, if any).
fn first_answer(stream: &mut TcpStream, request: &str) -> String {
    if !request.is_empty() {
        stream.write_all(request.as_bytes()).unwrap();
    }
    let mut buffer = [0u8; 4096];
    let n = stream.read(&mut buffer).unwrap_or(0);
    String::from_utf8_lossy(&buffer[..n]).into_owned()
}

const EVENTS: &str = "GET /api/events HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n";

fn metric(url: &str, name: &str) -> f64 {
    let (_, body) = http_get(&format!("{url}/metrics"));
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{body}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_server_bounds_connections_streams_and_slow_clients() {
    let appliance = Appliance::shared();
    let (mut server, url) = serve(
        appliance,
        &[
            ("TICKPIPE_SERVE__MAX_CONNECTIONS", "6"),
            ("TICKPIPE_SERVE__MAX_STREAMS", "2"),
        ],
    );

    // No dashboard listens: the event poller does no work.
    let polls = metric(&url, "tickpipe_event_polls_total");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(metric(&url, "tickpipe_event_polls_total"), polls);

    // Two live dashboards are served; a third is told why it is not.
    let mut streams: Vec<TcpStream> = (0..2).map(|_| connect(&url)).collect();
    for stream in &mut streams {
        let answer = first_answer(stream, EVENTS);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    let mut third = connect(&url);
    let answer = first_answer(&mut third, EVENTS);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("serve.max_streams"), "{answer}");
    drop(third);
    assert_eq!(metric(&url, "tickpipe_event_streams"), 2.0);
    let polls = metric(&url, "tickpipe_event_polls_total");
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        metric(&url, "tickpipe_event_polls_total") > polls,
        "polls while listened to"
    );

    // Idle connections fill the limit (2 streams + 4); the next one gets a 503 at once.
    std::thread::sleep(Duration::from_millis(300));
    let mut idle: Vec<TcpStream> = (0..4).map(|_| connect(&url)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut past_limit = connect(&url);
    let answer = first_answer(&mut past_limit, "");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("too many open connections"), "{answer}");

    // A client that never finishes its headers (or keeps a connection idle) is cut off.
    idle[0]
        .write_all(b"GET /api/symbols HTTP/1.1\r\nHost: t\r\n")
        .unwrap();
    let started = Instant::now();
    for stream in &mut idle {
        let answer = first_answer(stream, "");
        assert!(!answer.contains("200 OK"), "{answer}");
    }
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(15),
        "idle connections closed after {waited:?}"
    );
    // Their places are free again; the streams still run.
    let (status, _) = http_get(&format!("{url}/api/symbols"));
    assert_eq!(status, 200);
    drop(streams);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(metric(&url, "tickpipe_event_streams"), 0.0);
    server.kill().unwrap();
    server.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_database_has_no_port_until_root_is_secured_and_strange_accounts_are_reported() {
    // While `up` initialises a new database, a local user polls its port and tries the
    // password-less root that `mariadb-install-db` leaves.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let polling = tokio_util::sync::CancellationToken::new();
    let poller = {
        let stop = polling.clone();
        tokio::spawn(async move {
            let (mut attempts, mut logins) = (0u32, Vec::new());
            while !stop.is_cancelled() {
                attempts += 1;
                for user in ["root", ""] {
                    let options = sqlx::mysql::MySqlConnectOptions::new()
                        .host("127.0.0.1")
                        .port(port)
                        .username(user);
                    if let Ok(connection) = sqlx::ConnectOptions::connect(&options).await {
                        logins.push(user);
                        drop(connection);
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (attempts, logins)
        })
    };
    let port_env = port.to_string();
    let mut appliance = tokio::task::spawn_blocking(move || {
        Appliance::start(&["--services-only"], &[("TICKPIPE_MYSQL__PORT", &port_env)])
    })
    .await
    .unwrap();
    polling.cancel();
    let (attempts, logins) = poller.await.unwrap();
    assert!(attempts > 20, "polled {attempts} times");
    assert!(
        logins.is_empty(),
        "logged in without a password as {logins:?}"
    );
    // The server's log says which port each run listened on: none (0) while root had no
    // password, then the appliance's.
    let log = std::fs::read_to_string(appliance.dir().join("mysql/error.log")).unwrap();
    let ports: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("Version:"))
        .filter_map(|l| l.split("port: ").nth(1))
        .map(|rest| rest.split_whitespace().next().unwrap())
        .collect();
    let port = appliance.status(&[])["mysql"]["port"].to_string();
    assert_eq!(ports, ["0", port.as_str()], "{log}");
    for service in ["kafka", "mysql"] {
        let mode = std::fs::metadata(appliance.dir().join(service))
            .unwrap()
            .permissions();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.mode() & 0o777, 0o700, "{service}/ is its owner's only");
    }

    // An account someone else made is reported at the next start (never dropped silently).
    let root = appliance.root_pool().await;
    sqlx::query("CREATE USER 'intruder'@'%' IDENTIFIED BY 'x'")
        .execute(&root)
        .await
        .unwrap();
    root.close().await;
    assert!(appliance.interrupt(), "up stopped cleanly");
    let state = std::mem::replace(&mut appliance.state_dir, tempfile::tempdir().unwrap());
    let again = Appliance::start_in(state, &["--services-only"], &[]);
    let said = std::fs::read_to_string(again.dir().join("up.log")).unwrap()
        + &std::fs::read_to_string(again.dir().join("up.err")).unwrap();
    assert!(
        said.contains("accounts tickpipe did not create: 'intruder'@'%'"),
        "{said}"
    );
    let log = std::fs::read_to_string(again.dir().join("mysql/error.log")).unwrap();
    let runs: Vec<&str> = log.lines().filter(|l| l.starts_with("Version:")).collect();
    assert_eq!(
        runs.len(),
        3,
        "a secured database starts with its port at once: {runs:?}"
    );
    assert!(runs[2].contains(&format!("port: {port} ")), "{runs:?}");
}

fn record(value: &str) -> rskafka::record::Record {
    rskafka::record::Record {
        key: Some(b"SECBANK".to_vec()),
        value: Some(value.as_bytes().to_vec()),
        headers: Default::default(),
        timestamp: chrono::Utc::now(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_admits_only_its_logins_and_a_reader_can_neither_write_nor_alter() {
    use tickpipe::broker::{Broker, Endpoint};
    let appliance = Appliance::shared();
    let deadline = Duration::from_secs(30);
    let admin = Broker::connect(&appliance.broker_admin(), deadline)
        .await
        .unwrap();
    admin.ensure_topic("sec_ticks", 1).await.unwrap();

    // No login, or a wrong password: no answer at all.
    let short = Duration::from_secs(3);
    let bootstrap = appliance.bootstrap();
    let anonymous = Broker::connect(&Endpoint::open(&bootstrap), short).await;
    assert!(anonymous.is_err(), "a client without a login was let in");
    let mut guess = appliance.broker_as("app");
    guess.login.as_mut().unwrap().password = "guess".into();
    let wrong = Broker::connect(&guess, short).await;
    assert!(wrong.is_err(), "a wrong password was let in");

    // The stages' login writes; the reader's cannot.
    let app = Broker::connect(&appliance.broker_as("app"), deadline)
        .await
        .unwrap();
    let written = app.partition("sec_ticks", 0).await.unwrap();
    written
        .produce(
            vec![record("from the app")],
            rskafka::client::partition::Compression::NoCompression,
        )
        .await
        .unwrap();
    let reader = Broker::connect(&appliance.broker_as("reader"), deadline)
        .await
        .unwrap();
    let refused = reader
        .partition("sec_ticks", 0)
        .await
        .unwrap()
        .produce(
            vec![record("from the reader")],
            rskafka::client::partition::Compression::NoCompression,
        )
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("TopicAuthorizationFailed"),
        "{refused}"
    );

    // With the client.properties `up` wrote, Kafka's console consumer reads as the reader...
    let consumed = appliance.kafka_tool(
        "reader",
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        &[
            "--bootstrap-server",
            &bootstrap,
            "--topic",
            "sec_ticks",
            "--from-beginning",
            "--max-messages",
            "1",
            "--timeout-ms",
            "30000",
        ],
        None,
    );
    let out = String::from_utf8_lossy(&consumed.stdout);
    assert_eq!(
        out.trim(),
        "from the app",
        "{}",
        String::from_utf8_lossy(&consumed.stderr)
    );
    // ...and cannot shorten the retention (records would vanish) or delete the topic.
    let altered = appliance.kafka_tool(
        "reader",
        "kafka.admin.ConfigCommand",
        &[
            "--bootstrap-server",
            &bootstrap,
            "--alter",
            "--entity-type",
            "topics",
            "--entity-name",
            "sec_ticks",
            "--add-config",
            "retention.ms=1",
        ],
        None,
    );
    let said = String::from_utf8_lossy(&altered.stderr);
    assert!(
        !altered.status.success(),
        "the reader altered a topic: {said}"
    );
    assert!(said.contains("AuthorizationException"), "{said}");
    let deleted = appliance.kafka_tool(
        "reader",
        "org.apache.kafka.tools.TopicCommand",
        &[
            "--bootstrap-server",
            &bootstrap,
            "--delete",
            "--topic",
            "sec_ticks",
        ],
        None,
    );
    assert!(!deleted.status.success(), "the reader deleted a topic");
    assert!(admin.topics().await.unwrap().contains_key("sec_ticks"));
    let (earliest, latest) = {
        let marks = admin.watermarks("sec_ticks").await.unwrap();
        (marks[0].1, marks[0].2)
    };
    assert_eq!(
        (earliest, latest),
        (0, 1),
        "one record, the app's, and all of it kept"
    );

    // What holds a secret is its owner's only.
    use std::os::unix::fs::PermissionsExt;
    for file in [
        "credentials.json",
        "client.properties",
        "client-app.properties",
        "client-admin.properties",
        "kafka/server.properties",
    ] {
        let mode = std::fs::metadata(appliance.dir().join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
}

/// Rows per second the appliance's processor stores from `tickpipe produce` of `symbols` ×
/// `days` generated sessions starting `start`.
async fn storing_rate(appliance: &Appliance, root: &sqlx::MySqlPool, start: &str) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let generated = std::process::Command::new(BIN)
        .args([
            "generate",
            "--symbols",
            "6",
            "--days",
            "9",
            "--start",
            start,
            "--out",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(generated.status.success());
    let rows: i64 = input_totals(&csv_files(dir.path()))
        .values()
        .map(|t| t.0)
        .sum();
    let before = stored_rows(root).await;
    let started = Instant::now();
    appliance.run(
        &[
            "produce",
            "--data",
            &format!("{}/*.csv", dir.path().display()),
        ],
        &[],
    );
    while stored_rows(root).await < before + rows {
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "rows not stored in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rows as f64 / started.elapsed().as_secs_f64()
}

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_keeps_its_pace_under_2000_idle_connections_and_500_dashboards() {
    // This test's own sockets: 2,500 of them (the soft limit raised towards the hard one).
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard.min(8192), hard).unwrap();
    let first = tempfile::tempdir().unwrap();
    generate(first.path(), 1, 1, 3);
    let appliance = Appliance::start(
        &["--data", &format!("{}/*.csv", first.path().display())],
        &[],
    );
    let root = appliance.root_pool().await;
    let url = appliance.dashboard_url();
    let up = appliance.child.as_ref().unwrap().id();
    let quiet = storing_rate(&appliance, &root, "2024-03-04").await;
    let quiet_files = open_files(up);

    // 2,000 connections that never send a byte, then 500 dashboards asking for events.
    let address = url.clone();
    let (idle, dashboards, answers) = tokio::task::spawn_blocking(move || {
        let idle: Vec<TcpStream> = (0..2000).filter_map(|_| try_connect(&address)).collect();
        let mut dashboards: Vec<TcpStream> =
            (0..500).filter_map(|_| try_connect(&address)).collect();
        // Each gets an answer, or is closed (past the refusals in progress): none hangs.
        let started = Instant::now();
        let answers: Vec<String> = dashboards
            .iter_mut()
            .map(|s| {
                first_answer(s, EVENTS)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .collect();
        let waited = started.elapsed();
        assert!(
            waited < Duration::from_secs(10),
            "dashboards waited {waited:?}"
        );
        (idle, dashboards, answers)
    })
    .await
    .unwrap();
    // A few may find the kernel's accept queue full for a moment (and are not made).
    assert!(
        idle.len() >= 1900,
        "{} of 2000 connections made",
        idle.len()
    );
    assert!(
        dashboards.len() >= 475,
        "{} of 500 dashboards connected",
        dashboards.len()
    );
    let streamed = answers
        .iter()
        .filter(|a| a.starts_with("HTTP/1.1 200"))
        .count();
    let refused = answers
        .iter()
        .filter(|a| a.starts_with("HTTP/1.1 503"))
        .count();
    let closed = answers.iter().filter(|a| a.is_empty()).count();
    assert_eq!(streamed + refused + closed, dashboards.len(), "{answers:?}");
    assert!(streamed <= 64, "{streamed} streams past serve.max_streams");

    let loaded_files = open_files(up);
    let loaded = storing_rate(&appliance, &root, "2025-03-03").await;
    eprintln!(
        "storing {quiet:.0} rows/s quiet, {loaded:.0} rows/s under load; up's open files \
         {quiet_files} quiet, {loaded_files} under load; dashboards: {streamed} streamed, \
         {refused} refused, {closed} closed unanswered"
    );
    // The server's share of descriptors is bounded: serve.max_connections (256) and 32
    // refusals in progress.
    assert!(
        loaded_files <= quiet_files + 256 + 32 + 16,
        "{loaded_files} open files under load ({quiet_files} quiet)"
    );
    assert!(
        loaded >= quiet / 3.0,
        "storing slowed from {quiet:.0} to {loaded:.0} rows/s under connection load"
    );
    drop(idle);
    drop(dashboards);
}

/// A connection to `url`'s port, or `None` if it is not accepted within a second.
fn try_connect(url: &str) -> Option<TcpStream> {
    let address = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .replace("localhost", "127.0.0.1");
    let stream =
        TcpStream::connect_timeout(&address.parse().unwrap(), Duration::from_secs(1)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    Some(stream)
}
