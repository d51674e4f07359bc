//! The services' own ceilings the stages are measured against, on the same appliance: Kafka's
//! `kafka-producer-perf-test`, `LOAD DATA LOCAL INFILE` and row-by-row inserts.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::Bench;
use crate::{store, supervisor};

impl Bench<'_> {
    /// Kafka's own producer benchmark on the same broker: records/s and MB/s.
    pub(super) async fn perf_test(
        &self,
        run: usize,
        rows: u64,
        record_bytes: usize,
    ) -> Result<(f64, f64)> {
        let topic = format!("perf_test_{run}");
        self.topics(&topic).await?;
        let libs = supervisor::kafka_libs(&self.config.broker)?;
        let mut perf_test = Command::new(supervisor::find_java()?);
        perf_test
            .arg("-cp")
            .arg(format!("{}/*", libs.display()))
            .arg("org.apache.kafka.tools.ProducerPerformance");
        // The managed broker's login, as `up` wrote it for Kafka's tools.
        let login = self.state.join("client-admin.properties");
        if login.exists() {
            perf_test.arg("--producer.config").arg(login);
        }
        let output = perf_test
            .args(["--topic", &topic, "--num-records", &rows.to_string()])
            .args([
                "--record-size",
                &record_bytes.to_string(),
                "--throughput",
                "-1",
            ])
            .arg("--producer-props")
            .arg(format!("bootstrap.servers={}", self.broker.bootstrap))
            // The producer's own settings: acks=all, lz4, 20 ms linger, ~1 MB batches.
            .args([
                "acks=all",
                &format!("compression.type={}", self.config.ingest.compression),
                &format!("linger.ms={}", self.config.ingest.linger.as_millis()),
                "batch.size=921600",
            ])
            .output()
            .context("running kafka-producer-perf-test")?;
        let text = String::from_utf8_lossy(&output.stdout);
        // "1000000 records sent, 312500.0 records/sec (44.70 MB/sec), …"
        let last = text
            .lines()
            .rfind(|l| l.contains("records sent"))
            .with_context(|| {
                format!(
                    "kafka-producer-perf-test printed no summary:\n{text}{}",
                    String::from_utf8_lossy(&output.stderr)
                )
            })?;
        let field = |before: &str| -> Result<f64> {
            let end = last.find(before).context("unexpected perf-test summary")?;
            let start = last[..end]
                .trim_end()
                .rfind([' ', '('])
                .map_or(0, |i| i + 1);
            Ok(last[start..end].trim().parse()?)
        };
        Ok((field("records/sec")?, field("MB/sec")?))
    }

    /// `LOAD DATA LOCAL INFILE` of the same rows into a copy of `stock_data`: rows/s.
    pub(super) async fn load_data(&self, files: &[PathBuf], rows: u64) -> Result<f64> {
        store::execute_admin(
            &self.root,
            "CREATE TABLE IF NOT EXISTS stock_data_load LIKE stock_data".into(),
        )
        .await?;
        store::execute_admin(&self.root, "TRUNCATE TABLE stock_data_load".into()).await?;
        let mut sql = String::new();
        if self.managed {
            sql.push_str("SET sql_log_bin = 0;");
        }
        for file in files {
            // The generated files' columns are the table's, in its order.
            sql.push_str(&format!(
                "LOAD DATA LOCAL INFILE '{}' INTO TABLE stock_data_load \
                 FIELDS TERMINATED BY ',' IGNORE 1 LINES;",
                file.display()
            ));
        }
        let mut client = Command::new("mariadb");
        client
            .arg("--local-infile=1")
            .arg(format!("--user={}", self.mysql.user))
            .arg(format!("--database={}", self.mysql.database))
            .env("MYSQL_PWD", &self.mysql.password)
            .args(["-e", &sql]);
        match &self.mysql.socket {
            Some(socket) => client.arg(format!("--socket={}", socket.display())),
            None => client.args([
                format!("--host={}", self.mysql.host),
                format!("--port={}", self.mysql.port),
            ]),
        };
        let started = Instant::now();
        let output = client.output().context("running the mariadb client")?;
        let elapsed = started.elapsed();
        if !output.status.success() {
            bail!(
                "LOAD DATA LOCAL INFILE failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let loaded: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM stock_data_load")
            .fetch_one(&self.root)
            .await?;
        if loaded as u64 != rows {
            bail!("LOAD DATA loaded {loaded} of {rows} rows");
        }
        Ok(rows as f64 / elapsed.as_secs_f64())
    }

    /// One autocommitted INSERT per row (what the original design did): rows/s.
    pub(super) async fn row_by_row(&self, file: &Path) -> Result<f64> {
        store::execute_admin(&self.root, "TRUNCATE TABLE stock_data_load".into()).await?;
        let text = std::fs::read_to_string(file)?;
        let deadline = Duration::from_secs(self.spec.row_by_row_seconds.into());
        let started = Instant::now();
        let mut inserted = 0u64;
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            sqlx::query(
                "INSERT INTO stock_data_load \
                 (`Timestamp`, Bank_Name, Open, High, Low, Close, Volume) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(f[0])
            .bind(f[1])
            .bind(f[2])
            .bind(f[3])
            .bind(f[4])
            .bind(f[5])
            .bind(f[6])
            .execute(&self.root)
            .await?;
            inserted += 1;
            if started.elapsed() >= deadline {
                break;
            }
        }
        Ok(inserted as f64 / started.elapsed().as_secs_f64())
    }
}
