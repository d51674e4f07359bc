//! Test harness: runs the real `tickpipe` binary against real services (Apache Kafka in KRaft
//! mode from Kafka's jars, MariaDB from Debian) in a private state directory, and compares
//! what MySQL holds with what the input files say, computed independently of tickpipe's parser.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::BufRead;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use serde_json::Value;
use sqlx::Row;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};

pub const BIN: &str = env!("CARGO_BIN_EXE_tickpipe");

pub use nix::sys::signal::Signal;

/// Sends `signal` to the process `pid` (a test's child, or a service by its pid file's pid).
pub fn send(pid: impl TryInto<i32>, signal: Signal) -> nix::Result<()> {
    let pid = pid.try_into().map_err(|_| nix::Error::ESRCH)?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal)
}

/// Per symbol: rows, sum of Volume, sum of Close.
pub type Totals = BTreeMap<String, (i64, Decimal, Decimal)>;

/// Where the shared appliances' state directories start: a static is never dropped, so each
/// test binary's stays behind (~270 MB of database and log), until a run 10 minutes later.
const SHARED_PREFIX: &str = "tp-shared-";

/// Removes the state directories of shared appliances from earlier runs: those unchanged for
/// 10 minutes that no `up` holds (its lock on `up.lock` lasts as long as the process; its
/// services stop with it). Only those old enough are tried: a try of the lock could make an
/// `up` starting in a new one fail to take it.
fn remove_stale_shared_dirs() {
    let Ok(entries) = std::fs::read_dir("/tmp") else {
        return;
    };
    for dir in entries.flatten() {
        if !dir.file_name().to_string_lossy().starts_with(SHARED_PREFIX) {
            continue;
        }
        let untouched = dir
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|at| at.elapsed().unwrap_or_default() > Duration::from_secs(600));
        if !untouched {
            continue;
        }
        let held = std::fs::File::open(dir.path().join("up.lock"))
            .is_ok_and(|lock| lock.try_lock().is_err());
        if !held {
            let _ = std::fs::remove_dir_all(dir.path());
        }
    }
}

/// A running `tickpipe up` on its own state directory.
pub struct Appliance {
    pub state_dir: tempfile::TempDir,
    pub child: Option<Child>,
    log: PathBuf,
}

impl Appliance {
    /// Starts `tickpipe up` with extra arguments and environment, and waits for its banner.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Appliance {
        let state_dir = tempfile::Builder::new()
            .prefix("tp")
            .tempdir_in("/tmp")
            .unwrap();
        Appliance::start_in(state_dir, args, env)
    }

    /// Starts `tickpipe up` on an existing state directory.
    pub fn start_in(
        state_dir: tempfile::TempDir,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Appliance {
        // Parallel tests must not fight over the dashboard's default port.
        Appliance::launch(
            state_dir,
            args,
            &[&[("TICKPIPE_SERVE__PORT", "0")], env].concat(),
        )
    }

    /// Starts `tickpipe up` with the dashboard's port left to the appliance (8080 if free).
    pub fn start_on_default_port(state_dir: tempfile::TempDir, args: &[&str]) -> Appliance {
        Appliance::launch(state_dir, args, &[])
    }

    fn launch(state_dir: tempfile::TempDir, args: &[&str], env: &[(&str, &str)]) -> Appliance {
        let log = state_dir.path().join("up.log");
        let mut command = Command::new(BIN);
        command
            .arg("--state-dir")
            .arg(state_dir.path())
            .arg("up")
            .args(args)
            // Tests compare what is stored with their input: no live ticks unless asked for.
            .env("TICKPIPE_LIVE__ENABLED", "false")
            .envs(env.iter().copied())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(log.with_extension("err")).unwrap());
        // The appliance dies with the test process, however that ends.
        // SAFETY: only an async-signal-safe prctl between fork and exec.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                    .map_err(std::io::Error::from)
            });
        }
        let child = command.spawn().expect("starting tickpipe up");
        let mut appliance = Appliance {
            state_dir,
            child: Some(child),
            log,
        };
        appliance.wait_for("tickpipe is up", Duration::from_secs(120));
        appliance
    }

    /// Starts the shared services-only appliance of a test binary from a thread that lives as
    /// long as the process (the parent-death signal follows the spawning thread).
    pub fn shared() -> &'static Appliance {
        static SHARED: std::sync::OnceLock<Appliance> = std::sync::OnceLock::new();
        SHARED.get_or_init(|| {
            remove_stale_shared_dirs();
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let state_dir = tempfile::Builder::new()
                    .prefix(SHARED_PREFIX)
                    .tempdir_in("/tmp")
                    .unwrap();
                tx.send(Appliance::start_in(state_dir, &["--services-only"], &[]))
                    .unwrap();
                loop {
                    std::thread::park();
                }
            });
            rx.recv().expect("the shared appliance started")
        })
    }

    /// The dashboard's address, from `up`'s banner.
    pub fn dashboard_url(&self) -> String {
        let out = std::fs::read_to_string(&self.log).unwrap();
        let line = out
            .lines()
            .find_map(|l| l.trim().strip_prefix("Dashboard"))
            .expect("the banner names the dashboard");
        line.split_whitespace().next().unwrap().to_string()
    }

    pub fn dir(&self) -> &Path {
        self.state_dir.path()
    }

    fn wait_for(&mut self, text: &str, timeout: Duration) {
        let start = Instant::now();
        loop {
            let out = std::fs::read_to_string(&self.log).unwrap_or_default();
            if out.contains(text) {
                return;
            }
            // An `up` that already exited will never print it: say why now.
            let exited = self.child.as_mut().and_then(|c| c.try_wait().unwrap());
            if start.elapsed() > timeout || exited.is_some() {
                panic!(
                    "`tickpipe up` did not print {text:?} within {timeout:?} (exit: {exited:?}):\n{out}\n{}",
                    std::fs::read_to_string(self.log.with_extension("err")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A `tickpipe` command aimed at this appliance.
    pub fn tickpipe(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command.arg("--state-dir").arg(self.dir()).args(args);
        command
    }

    /// Runs a `tickpipe` command to completion and returns its output; panics on failure.
    pub fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let output = self
            .tickpipe(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "tickpipe {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// `status --json` (which exits with 1 while a service is down, still printing JSON).
    pub fn status(&self, env: &[(&str, &str)]) -> Value {
        let output = self
            .tickpipe(&["status", "--json"])
            .envs(env.iter().copied())
            .output()
            .unwrap();
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "status --json printed no JSON ({e}): {}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
    }

    /// Polls `status` until `done` holds or `timeout` passes; returns the last status.
    pub fn wait_status(
        &self,
        env: &[(&str, &str)],
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let start = Instant::now();
        loop {
            let status = self.status(env);
            if done(&status) {
                return status;
            }
            assert!(
                start.elapsed() < timeout,
                "status never reached the goal: {status:#}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The managed database as root, through the appliance's socket.
    pub async fn root_pool(&self) -> MySqlPool {
        let credentials: Value = serde_json::from_str(
            &std::fs::read_to_string(self.dir().join("credentials.json")).unwrap(),
        )
        .unwrap();
        self.pool("root", credentials["root_password"].as_str().unwrap())
            .await
    }

    pub async fn pool(&self, user: &str, password: &str) -> MySqlPool {
        let options = MySqlConnectOptions::new()
            .socket(self.dir().join("mysql/mysql.sock"))
            .username(user)
            .password(password)
            .database("stock_market");
        MySqlPoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .unwrap()
    }

    /// A login of the managed broker (`"admin"`, `"app"` or `"reader"`): user and password.
    pub fn kafka_login(&self, who: &str) -> (String, String) {
        let credentials: Value = serde_json::from_str(
            &std::fs::read_to_string(self.dir().join("credentials.json")).unwrap(),
        )
        .unwrap();
        let password = credentials[format!("kafka_{who}_password")]
            .as_str()
            .unwrap()
            .to_string();
        (format!("tickpipe_{who}"), password)
    }

    /// The broker as one of its logins (`"admin"`, `"app"`, `"reader"`).
    pub fn broker_as(&self, who: &str) -> tickpipe::broker::Endpoint {
        let (username, password) = self.kafka_login(who);
        tickpipe::broker::Endpoint {
            bootstrap: self.bootstrap(),
            login: Some(tickpipe::broker::Login {
                mechanism: tickpipe::broker::SaslMechanism::ScramSha512,
                username,
                password,
            }),
        }
    }

    /// The broker as its administrator (creates and deletes topics).
    pub fn broker_admin(&self) -> tickpipe::broker::Endpoint {
        self.broker_as("admin")
    }

    /// The Kafka client settings `up` wrote for a login (`"admin"`, `"app"`, `"reader"`).
    pub fn client_properties(&self, who: &str) -> PathBuf {
        self.dir().join(match who {
            "reader" => "client.properties".to_string(),
            other => format!("client-{other}.properties"),
        })
    }

    /// Runs one of Kafka's own command-line tools as `who`.
    pub fn kafka_tool(&self, who: &str, class: &str, args: &[&str], stdin: Option<&str>) -> Output {
        let config = self.client_properties(who);
        let mut with_login = args.to_vec();
        with_login.extend(["--command-config", config.to_str().unwrap()]);
        kafka_tool(class, &with_login, stdin)
    }

    pub fn bootstrap(&self) -> String {
        let info: Value = serde_json::from_str(
            &std::fs::read_to_string(self.dir().join("appliance.json")).unwrap(),
        )
        .unwrap();
        info["bootstrap"].as_str().unwrap().to_string()
    }

    /// SIGKILLs `up` itself and returns its state directory.
    pub fn kill(mut self) -> tempfile::TempDir {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        let placeholder = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.state_dir, placeholder)
    }

    /// The appliance's MySQL over its socket, as `user`.
    pub fn mysql_target(&self, user: &str, password: &str) -> tickpipe::store::MysqlTarget {
        tickpipe::store::MysqlTarget {
            host: "localhost".into(),
            port: 0,
            socket: Some(self.dir().join("mysql/mysql.sock")),
            database: "stock_market".into(),
            user: user.into(),
            password: password.into(),
        }
    }

    /// The generated passwords: root, app, BI.
    pub fn passwords(&self) -> [String; 3] {
        let credentials: Value = serde_json::from_str(
            &std::fs::read_to_string(self.dir().join("credentials.json")).unwrap(),
        )
        .unwrap();
        ["root_password", "app_password", "bi_password"]
            .map(|k| credentials[k].as_str().unwrap().to_string())
    }

    /// Sends SIGINT and waits for `up` to exit; returns whether it exited with 0.
    pub fn interrupt(&mut self) -> bool {
        let mut child = self.child.take().unwrap();
        let _ = send(child.id(), Signal::SIGINT);
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.success();
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "`up` did not stop after SIGINT"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.interrupt();
        }
    }
}

/// Processes whose command line mentions `marker` (other than this test process).
pub fn processes_mentioning(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.chars().all(|c| c.is_ascii_digit()) || name == std::process::id().to_string() {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(marker) {
            found.push(format!("{name}: {cmdline}"));
        }
    }
    found
}

/// Writes synthetic CSVs with `tickpipe generate`.
pub fn generate(dir: &Path, symbols: usize, days: u32, seed: u64) {
    let output = Command::new(BIN)
        .args(["generate", "--out"])
        .arg(dir)
        .args([
            "--symbols",
            &symbols.to_string(),
            "--days",
            &days.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Totals of seed-layout CSV files, read with a plain split (not tickpipe's parser). Lines
/// that do not have 7 fields with a numeric volume are skipped, as they must be refused.
pub fn input_totals(files: &[PathBuf]) -> Totals {
    let mut totals = Totals::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split(',').collect();
            let (Some(close), Ok(volume)) =
                (fields.get(5), fields.get(6).unwrap_or(&"x").parse::<i64>())
            else {
                continue;
            };
            let entry =
                totals
                    .entry(fields[1].to_string())
                    .or_insert((0, Decimal::ZERO, Decimal::ZERO));
            entry.0 += 1;
            entry.1 += Decimal::from(volume);
            entry.2 += close.parse::<Decimal>().unwrap();
        }
    }
    totals
}

/// The same totals, from `stock_data`.
pub async fn stored_totals(pool: &MySqlPool) -> Totals {
    sqlx::query(
        "SELECT Bank_Name, COUNT(*), SUM(Volume), SUM(Close) FROM stock_data GROUP BY Bank_Name",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .map(|r| {
        (
            r.get::<String, _>(0),
            (
                r.get::<i64, _>(1),
                r.get::<Decimal, _>(2).normalize(),
                r.get::<Decimal, _>(3),
            ),
        )
    })
    .collect()
}

pub fn csv_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    files.sort();
    files
}

/// Environment that points the stages at private topics of the shared appliance.
pub fn topics_env(prefix: &str) -> Vec<(String, String)> {
    vec![
        ("TICKPIPE_TOPICS__TICKS".into(), format!("{prefix}_ticks")),
        ("TICKPIPE_TOPICS__DLQ".into(), format!("{prefix}_ticks.dlq")),
    ]
}

pub fn as_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Creates the private topics and empties the tables of the shared appliance.
pub async fn fresh_pipeline(appliance: &Appliance, prefix: &str) -> sqlx::MySqlPool {
    let broker =
        tickpipe::broker::Broker::connect(&appliance.broker_admin(), Duration::from_secs(30))
            .await
            .unwrap();
    broker
        .ensure_topic(&format!("{prefix}_ticks"), 6)
        .await
        .unwrap();
    broker
        .ensure_topic(&format!("{prefix}_ticks.dlq"), 2)
        .await
        .unwrap();
    let pool = appliance.root_pool().await;
    for table in tickpipe::store::PIPELINE_TABLES {
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
            .execute(&pool)
            .await
            .unwrap();
    }
    pool
}

pub async fn stored_rows(pool: &sqlx::MySqlPool) -> i64 {
    sqlx::query("SELECT COUNT(*) FROM stock_data")
        .fetch_one(pool)
        .await
        .unwrap()
        .get(0)
}

/// A `java` command with Kafka's jars on the class path (the same jars as the broker).
pub fn kafka_java() -> Command {
    let config = tickpipe::config::Config::default();
    let libs = tickpipe::supervisor::kafka_libs(&config.broker).unwrap();
    let mut command = Command::new(tickpipe::supervisor::find_java().unwrap());
    command.arg("-cp").arg(format!("{}/*", libs.display()));
    command
}

/// Runs one of Kafka's own command-line tools.
pub fn kafka_tool(class: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = kafka_java();
    command.arg(class).args(args);
    feed(command, stdin.unwrap_or(""))
}

/// Runs `command` with `input` on its standard input; returns its output.
pub fn feed(mut command: Command, input: &str) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

/// Writes a file, making its folders.
pub fn write_file(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// `rejected_ticks` as (source, stage, reason), by source.
pub async fn rejected(pool: &MySqlPool) -> Vec<(String, String, String)> {
    sqlx::query("SELECT source, stage, reason FROM rejected_ticks ORDER BY source")
        .fetch_all(pool)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// Status and body of a GET.
pub fn http_get(url: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent.get(url).call().unwrap();
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().unwrap())
}

/// Runs a command to completion with its output captured, and returns the output with the
/// peak resident memory of the process in bytes (its own `ru_maxrss`, from `wait4`).
/// `max_open_files` lowers the child's file descriptor limit first (as on many systems).
pub fn run_measured(mut command: Command, max_open_files: Option<u64>) -> (Output, u64) {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    command
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap());
    if let Some(limit) = max_open_files {
        unsafe {
            command.pre_exec(move || {
                nix::sys::resource::setrlimit(
                    nix::sys::resource::Resource::RLIMIT_NOFILE,
                    limit,
                    limit,
                )
                .map_err(std::io::Error::from)
            });
        }
    }
    // Reaped by wait4 below, which also gives its resource usage.
    #[allow(clippy::zombie_processes)]
    let child = command.spawn().unwrap();
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "wait4 failed");
    let output = Output {
        status: std::os::unix::process::ExitStatusExt::from_raw(status),
        stdout: std::fs::read(&out).unwrap(),
        stderr: std::fs::read(&err).unwrap(),
    };
    (output, usage.ru_maxrss as u64 * 1024)
}

/// The pid of a service the supervisor runs (`kafka`, `mysql`).
pub fn supervised_pid(appliance: &Appliance, service: &str) -> i32 {
    std::fs::read_to_string(appliance.dir().join(service).join("supervised.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Waits until `pid` is gone and the supervisor has started the service again.
pub fn wait_restarted(appliance: &Appliance, service: &str, old_pid: i32) {
    let start = Instant::now();
    while supervised_pid(appliance, service) == old_pid {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{service} was not restarted"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let healthy =
        |s: &serde_json::Value| s["broker"]["healthy"] == true && s["mysql"]["healthy"] == true;
    appliance.wait_status(&[], Duration::from_secs(90), healthy);
}

/// `tickpipe serve` on a free port of an appliance, and its address.
pub fn serve(appliance: &Appliance, env: &[(&str, &str)]) -> (Child, String) {
    let mut child = appliance
        .tickpipe(&["serve"])
        .envs(env.iter().copied())
        .env("TICKPIPE_SERVE__PORT", "0")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .last()
        .unwrap_or_else(|| panic!("serve printed no address: {line:?}"))
        .trim_end_matches('/')
        .to_string();
    (child, url)
}

/// What each live processor of `pipeline` (its ticks topic) holds: pid → units
/// (`<topic>:<partition>`, `rollups`).
pub async fn holdings(pool: &MySqlPool, pipeline: &str) -> BTreeMap<u32, Vec<String>> {
    let mut held: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    let rows = sqlx::query(
        "SELECT p.Pid, l.Unit FROM processor_leases l \
         JOIN processors p ON p.Owner = l.Owner AND p.Pipeline = l.Pipeline \
         WHERE l.Pipeline = ? AND p.Expires_At > UTC_TIMESTAMP(6) ORDER BY l.Unit",
    )
    .bind(pipeline)
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    for row in rows {
        held.entry(row.get(0)).or_default().push(row.get(1));
    }
    held
}

/// Waits until `held` says yes of what the processors of `pipeline` hold.
pub async fn wait_holdings(
    pool: &MySqlPool,
    pipeline: &str,
    what: &str,
    held: impl Fn(&BTreeMap<u32, Vec<String>>) -> bool,
) -> BTreeMap<u32, Vec<String>> {
    wait_holdings_showing(pool, pipeline, what, held, &[]).await
}

/// [`wait_holdings`], showing the end of each of `logs` (the processors' own) if it times out.
pub async fn wait_holdings_showing(
    pool: &MySqlPool,
    pipeline: &str,
    what: &str,
    held: impl Fn(&BTreeMap<u32, Vec<String>>) -> bool,
    logs: &[std::path::PathBuf],
) -> BTreeMap<u32, Vec<String>> {
    let start = Instant::now();
    loop {
        let now = holdings(pool, pipeline).await;
        if held(&now) {
            return now;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let shown: Vec<String> = logs
                .iter()
                .map(|log| {
                    let text = std::fs::read_to_string(log).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(40).collect();
                    let tail: Vec<&str> = tail.into_iter().rev().collect();
                    format!("--- {}:\n{}", log.display(), tail.join("\n"))
                })
                .collect();
            panic!(
                "{pipeline}: never {what}; held {now:?}\n{}",
                shown.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
