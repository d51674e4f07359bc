//! The appliance as another project's test suite uses it: `tickpipe up --services-only
//! --ephemeral --json` (temporary state, free ports, one JSON line with every endpoint and
//! credential, everything removed at exit) and the Rust API over it (`tickpipe::appliance`).
//! Real Kafka (KRaft) and MariaDB.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use tickpipe::appliance::{Appliance, Ready};
use tickpipe::broker::{Broker, Endpoint, Login, SaslMechanism};
use tickpipe::store::MysqlTarget;

const BIN: &str = env!("CARGO_BIN_EXE_tickpipe");

/// Uses the endpoints as a client would, from the JSON alone: the app user writes and reads a
/// row over TCP, the BI user cannot write, the app login sends a record to the ticks topic and
/// reads it back.
async fn use_the_endpoints(ready: &Ready) {
    let target = MysqlTarget::from_url(&ready.mysql.url).unwrap();
    assert_eq!(target.socket, None, "the URL is TCP");
    let app = tickpipe::store::connect_pool(&target, true, Duration::from_secs(30))
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO stock_data (`Timestamp`, Bank_Name, Open, High, Low, Close, Volume) \
         VALUES ('2024-01-02 09:15:00', 'EPHEMERAL', 1, 1, 1, 1, 1)",
    )
    .execute(&app)
    .await
    .unwrap();
    let bi = ready.mysql.bi.as_ref().expect("a BI account");
    let bi = tickpipe::store::connect_pool(
        &target.as_user(&bi.user, &bi.password),
        true,
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM stock_data")
        .fetch_one(&bi)
        .await
        .unwrap();
    assert_eq!(rows, 1);
    assert!(
        sqlx::query("DELETE FROM stock_data")
            .execute(&bi)
            .await
            .is_err(),
        "the BI user only reads"
    );

    let login = |account: &tickpipe::appliance::Account| Login {
        mechanism: match ready.kafka.sasl_mechanism.as_str() {
            "SCRAM-SHA-512" => SaslMechanism::ScramSha512,
            other => panic!("mechanism {other}"),
        },
        username: account.user.clone(),
        password: account.password.clone(),
    };
    let broker = Broker::connect(
        &Endpoint {
            bootstrap: ready.kafka.bootstrap.clone(),
            login: Some(login(&ready.kafka.app)),
        },
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let partition = broker.partition(&ready.kafka.ticks_topic, 0).await.unwrap();
    let record = rskafka::record::Record {
        key: Some(b"EPHEMERAL".to_vec()),
        value: Some(b"{}".to_vec()),
        headers: Default::default(),
        timestamp: chrono::Utc::now(),
    };
    let offsets = partition
        .produce(
            vec![record],
            rskafka::client::partition::Compression::NoCompression,
        )
        .await
        .unwrap();
    let (records, _) = partition
        .fetch_records(offsets[0], 1..1_000_000, 5_000)
        .await
        .unwrap();
    assert_eq!(records[0].record.value.as_deref(), Some(&b"{}"[..]));
    assert!(
        ready
            .kafka
            .client_properties
            .as_ref()
            .is_some_and(|p| p.exists()),
        "client.properties for Kafka's tools"
    );
}

/// Nothing answers on `host:port` any more.
fn closed(host: &str, port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &format!("{host}:{port}").parse().unwrap(),
        Duration::from_secs(1),
    )
    .is_err()
}

fn assert_gone(ready: &Ready) {
    assert!(!ready.state_dir.exists(), "state directory left behind");
    assert!(
        closed(&ready.mysql.host, ready.mysql.port),
        "MySQL still listens"
    );
    let (host, port) = ready.kafka.bootstrap.rsplit_once(':').unwrap();
    assert!(closed(host, port.parse().unwrap()), "Kafka still listens");
    assert!(
        !Path::new(&format!("/proc/{}", ready.pid)).exists(),
        "up still runs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_ephemeral_json_prints_working_endpoints_and_leaves_nothing_behind() {
    let mut up = Command::new(BIN)
        .args(["up", "--services-only", "--ephemeral", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(up.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready: Ready =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: not the ready line: {line}"));
    assert_eq!(ready.pid, up.id());
    assert!(ready.state_dir.starts_with(std::env::temp_dir()));
    assert!(ready.mysql.port != 3306 && ready.mysql.port != 0);
    assert_eq!(ready.dashboard, None, "--services-only");
    use_the_endpoints(&ready).await;

    let up_pid = nix::unistd::Pid::from_raw(up.id() as i32);
    nix::sys::signal::kill(up_pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(up.wait().unwrap().success());
    assert_gone(&ready);
}

/// What a downstream test suite writes: start, use, drop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_api_starts_an_appliance_and_dropping_it_stops_everything() {
    let appliance =
        tokio::task::spawn_blocking(|| Appliance::start_with(Path::new(BIN), &[]).unwrap())
            .await
            .unwrap();
    let ready = appliance.ready().clone();
    use_the_endpoints(&ready).await;
    tokio::task::spawn_blocking(move || drop(appliance))
        .await
        .unwrap();
    assert_gone(&ready);

    // A binary that is not there: a clear error naming it.
    let missing = Appliance::start_with(Path::new("/nonexistent/tickpipe"), &[]).unwrap_err();
    assert!(
        format!("{missing:#}").contains("/nonexistent/tickpipe"),
        "{missing:#}"
    );
}

/// `mysql.mode = "container"` where no Docker daemon answers: `up` stops at once, saying what
/// is missing and what to do, before it starts anything (no service directory is made).
#[test]
fn container_mode_without_a_docker_daemon_is_a_clear_error() {
    let state = tempfile::tempdir().unwrap();
    let output = Command::new("timeout")
        .args(["--signal=KILL", "120", BIN, "--state-dir"])
        .arg(state.path())
        .args(["up", "--services-only"])
        .env("TICKPIPE_MYSQL__MODE", "container")
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert!(
        said.contains(
            "mysql.mode = \"container\" needs a Docker daemon, and none answers at \
             unix:///nonexistent/docker.sock"
        ) && said.contains("use mysql.mode = \"managed\""),
        "{said}"
    );
    for service in ["kafka", "mysql"] {
        assert!(
            !state.path().join(service).exists(),
            "{service} was started before the error"
        );
    }
}

/// The same appliance on Redpanda and MariaDB containers (testcontainers): the JSON line's
/// endpoints work as with the managed services. Needs a Docker daemon: where none answers (as
/// on the machine this was written on), the test says so and checks nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_serve_the_same_endpoints_where_docker_answers() {
    let host = tickpipe::supervisor::docker_host();
    if let Err(e) = tickpipe::supervisor::docker_answers(&host, "broker.mode").await {
        eprintln!("SKIPPED (no Docker daemon): {e}");
        return;
    }
    let env = [
        ("TICKPIPE_BROKER__MODE", "container"),
        ("TICKPIPE_MYSQL__MODE", "container"),
    ];
    let appliance =
        tokio::task::spawn_blocking(move || Appliance::start_with(Path::new(BIN), &env).unwrap())
            .await
            .unwrap();
    let ready = appliance.ready().clone();
    use_the_endpoints(&ready).await;
    tokio::task::spawn_blocking(move || drop(appliance))
        .await
        .unwrap();
    assert!(closed(&ready.mysql.host, ready.mysql.port));
}
