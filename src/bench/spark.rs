//! `bench --spark`: the Spark job (`scripts/spark.sh`) on the same topic and input as
//! tickpipe's processor — rows/s over the rows' own time and from start to exit (Spark's
//! start-up included), and produce → committed-row latency at a steady rate.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::Value;

use super::child::{finish, log_file, tail};
use super::{Bench, number};

/// The Spark job's figures.
#[derive(Debug, Clone, Serialize)]
pub struct SparkReport {
    /// Rows committed per second over the rows' own time (the job's summary).
    pub rows_per_second: f64,
    /// From starting the job to its exit, drained (JVM and Spark start-up included).
    pub end_to_end_seconds: f64,
    /// The steady rate of the latency figure, and produce → committed p50, p95, p99, max (ms).
    pub rate: u32,
    pub latency_ms: [f64; 4],
}

impl Bench<'_> {
    pub(super) async fn spark(
        &self,
        script: &Path,
        topic: &str,
        rows: u64,
        rate: u32,
    ) -> Result<SparkReport> {
        self.empty_tables().await?;
        let started = Instant::now();
        let job = self.spark_job(script, topic, &["--drain"])?;
        let _group = KillGroup(job.id() as i32);
        let out = tokio::task::block_in_place(|| finish(job))?;
        let end_to_end = started.elapsed().as_secs_f64();
        if !out.ok {
            bail!("the Spark job failed:\n{}", tail(self.work, "spark"));
        }
        let drained = job_summary(&out.stdout)?;
        if drained["rows"].as_u64() != Some(rows) {
            bail!("the Spark job committed {} of {rows} rows", drained["rows"]);
        }
        let rows_per_second = number(&drained, "rows_per_second")?;

        // Steady input while the job runs.
        let steady = self.steady_input("spark_latency", rate).await?;
        let topic = steady.topic.clone();
        let started_file = self.work.join("spark.started");
        let _ = std::fs::remove_file(&started_file);
        let job = self.spark_job(
            script,
            &topic,
            &["--started-file", &started_file.display().to_string()],
        )?;
        let _group = KillGroup(job.id() as i32);
        let waiting = Instant::now();
        while !started_file.exists() {
            if waiting.elapsed() > Duration::from_secs(180) {
                bail!("the Spark job did not start:\n{}", tail(self.work, "spark"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.replay_and_wait(&steady, "the Spark job", Duration::from_secs(120))
            .await?;
        // Ctrl-C for the processor the job feeds: it commits, prints its summary and exits,
        // and the job follows.
        let feeding = feeding_processor(job.id() as i32)
            .context("finding the processor the Spark job feeds")?;
        nix::sys::signal::kill(feeding, nix::sys::signal::Signal::SIGINT)?;
        let out = tokio::task::block_in_place(|| finish(job))?;
        let streamed = job_summary(&out.stdout)?;
        let ms = |q: &str| number(&streamed["latency_ms"], q);
        Ok(SparkReport {
            rows_per_second,
            end_to_end_seconds: end_to_end,
            rate,
            latency_ms: [ms("p50")?, ms("p95")?, ms("p99")?, ms("max")?],
        })
    }

    /// `scripts/spark.sh` on `topic`, leading a process group of its own.
    fn spark_job(&self, script: &Path, topic: &str, args: &[&str]) -> Result<std::process::Child> {
        let exe = std::env::current_exe()?;
        // A job that never ends (a drain that cannot) is killed rather than waited for.
        Command::new("timeout")
            .args(["--signal=KILL", "1800"])
            .arg(script)
            .arg("--state-dir")
            .arg(&self.state)
            .arg("--tickpipe")
            .arg(exe)
            .args(args)
            .env("TICKPIPE_TOPICS__TICKS", topic)
            .env("TICKPIPE_TOPICS__DLQ", format!("{topic}.dlq"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file(self.work, "spark")?)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", script.display()))
    }
}

/// Kills a job's whole process group (spark-submit's JVM, the job's Python, the processor it
/// feeds) when dropped: a bench that fails half-way leaves nothing running.
struct KillGroup(i32);

impl Drop for KillGroup {
    fn drop(&mut self) {
        // Already gone after a clean exit (ESRCH).
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.0),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// The job's last line: the summary of the processor it fed.
fn job_summary(stdout: &str) -> Result<Value> {
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .with_context(|| format!("the Spark job printed no summary: {stdout}"))
}

/// The `tickpipe process --from-stdin` in process group `group` (the job's).
fn feeding_processor(group: i32) -> Option<nix::unistd::Pid> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let feeds = cmdline.split(|b| *b == 0).any(|arg| arg == b"--from-stdin");
            let pid = nix::unistd::Pid::from_raw(pid);
            (feeds && nix::unistd::getpgid(Some(pid)).ok()? == nix::unistd::Pid::from_raw(group))
                .then_some(pid)
        })
}
