//! The appliance for other projects' integration tests: `tickpipe up --services-only
//! --ephemeral --json` starts Kafka and MySQL (topics, schema, users) on a temporary state
//! directory and free ports, and prints one [`Ready`] line with every endpoint and credential;
//! [`Appliance::start`] runs it and hands that over, and dropping the [`Appliance`] stops it,
//! its state removed. The ready line holds passwords: it goes to the caller, not to a log.
//!
//! The appliance also stops when the thread that started it ends (Linux's parent-death signal
//! follows the spawning thread): one shared by several tests of a binary is started from a
//! thread that lives as long as the process.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// Everything a client needs, printed by `up --json` once the appliance is ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    /// Process id of `tickpipe up`.
    pub pid: u32,
    pub state_dir: PathBuf,
    pub kafka: KafkaReady,
    pub mysql: MysqlReady,
    /// The dashboard's address; none with `--services-only`.
    pub dashboard: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaReady {
    pub bootstrap: String,
    /// SASL mechanism as Kafka's clients name it (`SCRAM-SHA-512`); empty: no login.
    pub sasl_mechanism: String,
    /// Produces and consumes the topics.
    pub app: Account,
    /// Reads the topics only.
    pub reader: Option<Account>,
    /// Creates topics (a managed broker only).
    pub admin: Option<Account>,
    pub ticks_topic: String,
    pub dlq_topic: String,
    /// Kafka client settings of the reader login, for Kafka's tools and Spark.
    pub client_properties: Option<PathBuf>,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MysqlReady {
    pub host: String,
    pub port: u16,
    pub socket: Option<PathBuf>,
    pub database: String,
    /// Reads and writes the pipeline's tables.
    pub app: Account,
    /// Reads the BI tables and views.
    pub bi: Option<Account>,
    /// The server's root (a managed server only).
    pub root: Option<Account>,
    /// `mysql://` URL of the app user over TCP.
    pub url: String,
}

/// Never prints the URL's password.
impl std::fmt::Debug for MysqlReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MysqlReady")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("socket", &self.socket)
            .field("database", &self.database)
            .field("app", &self.app)
            .field("bi", &self.bi)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub user: String,
    pub password: String,
}

/// Never prints the password.
impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Account({})", self.user)
    }
}

/// A running ephemeral appliance; dropped, it stops and its state directory goes.
#[derive(Debug)]
pub struct Appliance {
    child: Child,
    ready: Ready,
}

/// How long Kafka and MySQL may take to come up (a first start creates the database).
const START_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a stop may take before the appliance is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

impl Appliance {
    /// Starts the `tickpipe` binary named by `TICKPIPE_BIN`, else the one on `PATH`.
    pub fn start() -> Result<Appliance> {
        let binary = std::env::var_os("TICKPIPE_BIN").unwrap_or_else(|| "tickpipe".into());
        Appliance::start_with(Path::new(&binary), &[])
    }

    /// Starts `binary` with extra environment (`TICKPIPE_*` settings).
    pub fn start_with(binary: &Path, env: &[(&str, &str)]) -> Result<Appliance> {
        let mut command = Command::new(binary);
        command
            .args(["up", "--services-only", "--ephemeral", "--json"])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: only an async-signal-safe prctl between fork and exec.
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(|| {
                // The appliance stops with the test process, however that ends.
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                    .map_err(std::io::Error::from)
            });
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {} (TICKPIPE_BIN names it)", binary.display()))?;
        let log = keep_tail(child.stderr.take().expect("piped"));
        let (line_tx, line_rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped");
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = line_tx.send(line);
        });
        let started = Instant::now();
        let line = loop {
            if let Ok(line) = line_rx.recv_timeout(Duration::from_millis(200)) {
                break line;
            }
            if let Some(exit) = child.try_wait()? {
                bail!(
                    "tickpipe up exited ({exit}) before it was ready:\n{}",
                    log.text()
                );
            }
            if started.elapsed() > START_TIMEOUT {
                let _ = child.kill();
                bail!(
                    "tickpipe up was not ready within {START_TIMEOUT:?}:\n{}",
                    log.text()
                );
            }
        };
        let ready = serde_json::from_str(&line)
            .with_context(|| format!("tickpipe up printed no endpoints: {line:?}\n{}", log.text()));
        match ready {
            Ok(ready) => Ok(Appliance { child, ready }),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(e)
            }
        }
    }

    pub fn ready(&self) -> &Ready {
        &self.ready
    }

    /// Stops the appliance (Kafka, then MySQL) and removes its state.
    pub fn stop(mut self) -> Result<()> {
        self.stop_child()
    }

    fn stop_child(&mut self) -> Result<()> {
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
        let started = Instant::now();
        while self.child.try_wait()?.is_none() {
            if started.elapsed() > STOP_TIMEOUT {
                self.child.kill()?;
                self.child.wait()?;
                bail!("tickpipe up did not stop within {STOP_TIMEOUT:?}: killed");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        if let Err(e) = self.stop_child() {
            eprintln!("tickpipe appliance: {e:#}");
        }
    }
}

/// The last lines `up` logged (for an error that says why it did not start).
struct Tail(std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<String>>>);

impl Tail {
    fn text(&self) -> String {
        let lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
        lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

fn keep_tail(stderr: impl Read + Send + 'static) -> Tail {
    let lines = std::sync::Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
    let kept = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
            if kept.len() == 40 {
                kept.pop_front();
            }
            kept.push_back(line);
        }
    });
    Tail(lines)
}
