//! A managed child process: started in its own process group (a terminal's Ctrl-C reaches only
//! the supervisor, which stops children in order), told to die with its parent, restarted with
//! backoff when it exits on its own, and stopped with SIGTERM then SIGKILL.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use nix::sys::prctl;
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How to run one service.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    pub name: &'static str,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Where the child's stdout and stderr go.
    pub log_file: PathBuf,
    /// Where its process id is recorded, so a later `up` can find an orphan.
    pub pid_file: PathBuf,
    /// How long it may take to stop after SIGTERM before it is killed.
    pub stop_timeout: Duration,
}

/// A running, supervised child.
pub struct Supervised {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Supervised {
    /// Starts the child now and keeps it running until [`Supervised::stop`].
    pub fn start(spec: ChildSpec) -> Result<Self> {
        let first = spawn(&spec)?;
        let stop = CancellationToken::new();
        let task = tokio::spawn(supervise(spec, first, stop.clone()));
        Ok(Supervised { stop, task })
    }

    /// Stops the child (SIGTERM, then SIGKILL after its timeout) and waits for it.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

async fn supervise(spec: ChildSpec, mut child: Child, stop: CancellationToken) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let started = Instant::now();
        tokio::select! {
            status = child.wait() => {
                let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                if started.elapsed() > Duration::from_secs(60) {
                    backoff = Duration::from_secs(1);
                }
                tracing::error!(
                    service = spec.name,
                    "exited unexpectedly ({status}); restarting in {backoff:?} (log: {})",
                    spec.log_file.display()
                );
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                match spawn(&spec) {
                    Ok(next) => child = next,
                    Err(e) => {
                        tracing::error!(service = spec.name, "restart failed: {e:#}");
                        // Keep trying: wait on a child that is already gone.
                        continue;
                    }
                }
            }
            _ = stop.cancelled() => {
                terminate(&mut child, spec.name, spec.stop_timeout).await;
                let _ = std::fs::remove_file(&spec.pid_file);
                return;
            }
        }
    }
}

fn spawn(spec: &ChildSpec) -> Result<Child> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log_file)
        .with_context(|| format!("opening {}", spec.log_file.display()))?;
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        // Own process group: a terminal's Ctrl-C goes to the supervisor alone.
        .process_group(0);
    // SAFETY: only an async-signal-safe prctl between fork and exec.
    unsafe {
        command.pre_exec(|| {
            // If the supervisor dies (even by SIGKILL), the child is told to stop.
            prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)
        });
    }
    let child = command
        .spawn()
        .with_context(|| format!("starting {} ({})", spec.name, spec.program.display()))?;
    if let Some(pid) = child.id() {
        std::fs::write(&spec.pid_file, pid.to_string())
            .with_context(|| format!("writing {}", spec.pid_file.display()))?;
    }
    tracing::info!(service = spec.name, pid = child.id(), "started");
    Ok(child)
}

async fn terminate(child: &mut Child, name: &str, timeout: Duration) {
    let Some(pid) = child.id() else { return };
    let _ = signal::kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(_) => tracing::info!(service = name, "stopped"),
        Err(_) => {
            tracing::warn!(
                service = name,
                "did not stop within {timeout:?}; killing it"
            );
            let _ = child.kill().await;
        }
    }
}

/// Stops a process left behind by an earlier supervisor that was killed: the pid in
/// `pid_file`, if it still runs and its command line mentions `marker` (our state directory).
pub async fn stop_orphan(pid_file: &Path, marker: &str, timeout: Duration) {
    let Ok(text) = std::fs::read_to_string(pid_file) else {
        return;
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        return;
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    if !String::from_utf8_lossy(&cmdline).contains(marker) {
        let _ = std::fs::remove_file(pid_file);
        return;
    }
    tracing::warn!(
        pid,
        "stopping a service left running by an earlier `tickpipe up`"
    );
    // A pid whose command line names our state directory.
    let _ = signal::kill(Pid::from_raw(pid), Signal::SIGTERM);
    let deadline = Instant::now() + timeout;
    while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if Path::new(&format!("/proc/{pid}")).exists() {
        let _ = signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = std::fs::remove_file(pid_file);
}
