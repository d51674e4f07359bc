//! The stages as child processes: how they are started, waited for and measured (output,
//! peak RSS, CPU).

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use anyhow::{Result, bail};

pub(super) fn tickpipe(state: &Path) -> Command {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("tickpipe"));
    let mut command = Command::new(exe);
    command.arg("--state-dir").arg(state);
    // Every stage dies with the bench, however it ends.
    // SAFETY: only an async-signal-safe prctl between fork and exec.
    unsafe {
        command.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                .map_err(std::io::Error::from)
        });
    }
    command
}

pub(super) fn log_file(work: &Path, stage: &str) -> Result<std::fs::File> {
    Ok(std::fs::File::create(work.join(format!("{stage}.log")))?)
}

/// The last lines a stage logged, for an error message.
pub(super) fn tail(work: &Path, stage: &str) -> String {
    let text = std::fs::read_to_string(work.join(format!("{stage}.log"))).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Asks a stage to stop as Ctrl-C would (a processor then commits what it holds and prints
/// its summary).
pub(super) fn interrupt(child: &Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
}

/// What a finished child printed and used.
pub(super) struct Finished {
    pub(super) stdout: String,
    pub(super) ok: bool,
    pub(super) peak_rss_mb: f64,
    pub(super) cpu_seconds: f64,
}

/// Waits for `child`, reading its stdout.
pub(super) fn finish(mut child: Child) -> Result<Finished> {
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout.read_to_string(&mut out)?;
    }
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // wait4, not Child::wait: it also reports the child's peak RSS (nix has no wait4).
    if unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) } < 0 {
        bail!("waiting for a child: {}", std::io::Error::last_os_error());
    }
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(Finished {
        stdout: out,
        ok,
        peak_rss_mb: usage.ru_maxrss as f64 / 1024.0,
        cpu_seconds: seconds(usage.ru_utime) + seconds(usage.ru_stime),
    })
}
