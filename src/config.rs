//! The appliance's configuration: `appliance.toml`, overridden by `TICKPIPE_*` environment
//! variables, overridden by command-line flags; validated once at start.
//!
//! Environment variables name a key by its path, sections split by a double underscore:
//! `TICKPIPE_TOPICS__PARTITIONS=12`, `TICKPIPE_MYSQL__MODE=external`, `TICKPIPE_STATE_DIR=/tmp/tp`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize};

/// The whole configuration, one section per part of the appliance.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where managed services keep their data, logs, ports and credentials.
    pub state_dir: PathBuf,
    pub broker: BrokerConfig,
    pub topics: TopicsConfig,
    pub mysql: MysqlConfig,
    pub ingest: IngestConfig,
    pub process: ProcessConfig,
    pub serve: ServeConfig,
    pub live: LiveConfig,
    /// Price alert rules (`[[alerts]]`), evaluated on the one-minute bars; `alerts = []`
    /// for none.
    pub alerts: Vec<crate::alerts::AlertRule>,
}

/// Who runs a service: the appliance itself (as a child process, or in a Docker container),
/// or someone else at a known address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Managed,
    /// Redpanda / MariaDB in a Docker container (testcontainers), removed when `up` stops.
    Container,
    External,
}

impl Mode {
    /// The appliance made the service's users and logins (they are in the state directory).
    pub fn is_ours(self) -> bool {
        matches!(self, Mode::Managed | Mode::Container)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    pub mode: Mode,
    /// External mode: comma-separated bootstrap servers.
    #[serde(deserialize_with = "lenient_string")]
    pub bootstrap: String,
    /// External mode: how to log in (`none`, `plain`, `scram-sha-256`, `scram-sha-512`). The
    /// managed broker always requires SCRAM-SHA-512 with generated credentials.
    pub sasl_mechanism: crate::broker::SaslMechanism,
    /// External mode: the login's user and password.
    #[serde(deserialize_with = "lenient_string")]
    pub username: String,
    #[serde(deserialize_with = "lenient_string")]
    pub password: String,
    /// Managed mode: address the broker listens on.
    #[serde(deserialize_with = "lenient_string")]
    pub bind: String,
    /// Managed mode: client port; 0 picks a free port and records it in the state directory.
    pub port: u16,
    /// Managed mode: directory of Kafka's jars; empty = `$KAFKA_HOME/libs` or the cache that
    /// `scripts/fetch-kafka.sh` fills.
    #[serde(deserialize_with = "lenient_string")]
    pub kafka_libs: String,
    /// Managed mode: JVM heap for the broker.
    #[serde(deserialize_with = "lenient_string")]
    pub heap: String,
    #[serde(with = "humantime_serde")]
    pub startup_timeout: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicsConfig {
    #[serde(deserialize_with = "lenient_string")]
    pub ticks: String,
    #[serde(deserialize_with = "lenient_string")]
    pub dlq: String,
    pub partitions: i32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MysqlConfig {
    pub mode: Mode,
    /// External mode: `mysql://user:password@host:port/database`.
    #[serde(deserialize_with = "lenient_string")]
    pub url: String,
    #[serde(deserialize_with = "lenient_string")]
    pub bind: String,
    pub port: u16,
    #[serde(deserialize_with = "lenient_string")]
    pub database: String,
    /// Managed mode: InnoDB buffer pool size.
    #[serde(deserialize_with = "lenient_string")]
    pub buffer_pool: String,
    #[serde(with = "humantime_serde")]
    pub startup_timeout: Duration,
    /// Longest one statement of a batch may take (a stalled server is given up on, and the
    /// batch retried).
    #[serde(with = "humantime_serde")]
    pub statement_timeout: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Glob patterns of the CSV files `up` and `produce` replay.
    pub data: Vec<String>,
    /// 0 replays as fast as possible; N replays at N times the data's own clock.
    pub speed: f64,
    /// IANA zone of CSV timestamps that carry no offset.
    #[serde(deserialize_with = "lenient_string")]
    pub source_timezone: String,
    /// A local time that happens twice in `source_timezone` (clocks going back):
    /// refuse | earlier | later.
    pub ambiguous_times: crate::tick::AmbiguousTimes,
    /// Prices with more decimal places than are stored (8): refuse | round (half to even).
    pub excess_decimals: crate::tick::ExcessDecimals,
    /// Column names of CSV files whose header the reader does not recognise.
    pub columns: crate::ingest::layout::ColumnNames,
    /// Records per Kafka produce request (per partition).
    pub batch_records: usize,
    /// Longest a record waits for its batch to fill.
    #[serde(with = "humantime_serde")]
    pub linger: Duration,
    /// none | lz4 | zstd | snappy
    #[serde(deserialize_with = "lenient_string")]
    pub compression: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessConfig {
    /// Rows per MySQL transaction (the batch commits earlier when the topic is drained).
    pub batch_rows: usize,
    /// Longest a fetched record waits before its batch commits.
    #[serde(with = "humantime_serde")]
    pub batch_linger: Duration,
    /// Bytes asked per fetch request, per partition.
    pub fetch_bytes: i32,
    /// Writers (MySQL connections committing in parallel), each owning some partitions.
    pub writers: usize,
}

/// The dashboard's port when `serve.port` is not set and it is free.
pub const DEFAULT_DASHBOARD_PORT: u16 = 8080;

/// The dashboard and API server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// Address the HTTP server listens on.
    pub bind: String,
    /// Port; 0 takes a free one (printed at start). Unset: the port this state directory used
    /// last, else [`DEFAULT_DASHBOARD_PORT`], else a free one (recorded for next time).
    pub port: Option<u16>,
    /// Open connections at most (each holds a file descriptor): past it a connection gets a
    /// 503 and is closed, so the server cannot take the descriptors the pipeline needs.
    pub max_connections: usize,
    /// Live event streams (`/api/events`, one per open dashboard) at most; past it, 503.
    pub max_streams: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1".into(),
            port: None,
            max_connections: 256,
            max_streams: 64,
        }
    }
}

/// The demo's live market: after the replay, `up` keeps producing ticks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LiveConfig {
    /// Each replayed symbol's random walk goes on from its last close, stamped with the wall
    /// clock (`up --no-live` turns it off for one run). Unset: on with the appliance's own
    /// MySQL, off with an external one (synthetic ticks do not go into someone's database
    /// unasked).
    pub enabled: Option<bool>,
    /// One tick per symbol this often.
    #[serde(with = "humantime_serde")]
    pub every: Duration,
}

impl Config {
    /// Whether `up` produces live ticks after the replay.
    pub fn live_ticks(&self) -> bool {
        self.live.enabled.unwrap_or(self.mysql.mode.is_ours())
    }
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            enabled: None,
            every: Duration::from_secs(1),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            state_dir: PathBuf::from(".tickpipe"),
            broker: BrokerConfig::default(),
            topics: TopicsConfig::default(),
            mysql: MysqlConfig::default(),
            ingest: IngestConfig::default(),
            process: ProcessConfig::default(),
            serve: ServeConfig::default(),
            live: LiveConfig::default(),
            alerts: crate::alerts::default_rules(),
        }
    }
}

impl BrokerConfig {
    /// The external broker and the configured login.
    pub fn external_endpoint(&self) -> crate::broker::Endpoint {
        crate::broker::Endpoint {
            bootstrap: self.bootstrap.clone(),
            login: (self.sasl_mechanism != crate::broker::SaslMechanism::None).then(|| {
                crate::broker::Login {
                    mechanism: self.sasl_mechanism,
                    username: self.username.clone(),
                    password: self.password.clone(),
                }
            }),
        }
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Managed,
            bootstrap: String::new(),
            sasl_mechanism: crate::broker::SaslMechanism::None,
            username: String::new(),
            password: String::new(),
            bind: "127.0.0.1".into(),
            port: 0,
            kafka_libs: String::new(),
            heap: "512m".into(),
            startup_timeout: Duration::from_secs(90),
        }
    }
}

impl Default for TopicsConfig {
    fn default() -> Self {
        Self {
            ticks: "stock_ticks".into(),
            dlq: "stock_ticks.dlq".into(),
            partitions: 6,
        }
    }
}

impl Default for MysqlConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Managed,
            url: String::new(),
            bind: "127.0.0.1".into(),
            port: 0,
            database: "stock_market".into(),
            buffer_pool: "256M".into(),
            startup_timeout: Duration::from_secs(90),
            statement_timeout: Duration::from_secs(30),
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            data: vec!["data/*.csv".into()],
            speed: 0.0,
            source_timezone: "UTC".into(),
            ambiguous_times: crate::tick::AmbiguousTimes::Refuse,
            excess_decimals: crate::tick::ExcessDecimals::Refuse,
            columns: Default::default(),
            batch_records: 5000,
            linger: Duration::from_millis(20),
            compression: "lz4".into(),
        }
    }
}

impl Default for ProcessConfig {
    fn default() -> Self {
        Self {
            batch_rows: 5000,
            batch_linger: Duration::from_millis(100),
            fetch_bytes: 1024 * 1024,
            writers: 3,
        }
    }
}

/// Where the configuration comes from: the file (explicit or `./appliance.toml` if present)
/// and the flags that override it.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    pub file: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub data: Vec<String>,
}

impl Config {
    /// Loads and validates the configuration: defaults < file < environment < flags.
    pub fn load(sources: &Sources) -> Result<Self> {
        Self::load_with_env(sources, Env::prefixed("TICKPIPE_").split("__"))
    }

    fn load_with_env(sources: &Sources, env: Env) -> Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match &sources.file {
            Some(file) if !file.exists() => {
                bail!("config file {} does not exist", file.display())
            }
            Some(file) => figment = figment.merge(Toml::file_exact(file)),
            None if Path::new("appliance.toml").exists() => {
                figment = figment.merge(Toml::file_exact("appliance.toml"))
            }
            None => {}
        }
        figment = figment.merge(env);
        if let Some(dir) = &sources.state_dir {
            figment = figment.merge(Serialized::default("state_dir", dir));
        }
        if !sources.data.is_empty() {
            figment = figment.merge(Serialized::default("ingest.data", &sources.data));
        }
        let config: Config = figment.extract().map_err(|errors| {
            let lines: Vec<String> = errors.into_iter().map(describe_figment_error).collect();
            anyhow::anyhow!("invalid configuration:\n  {}", lines.join("\n  "))
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every value once, naming the key and the fix.
    pub fn validate(&self) -> Result<()> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, key: &str, fix: &str| {
            if !ok {
                problems.push(format!("{key}: {fix}"));
            }
        };
        check(
            !self.state_dir.as_os_str().is_empty(),
            "state_dir",
            "must name a directory",
        );
        check(
            self.broker.sasl_mechanism == crate::broker::SaslMechanism::None
                || !self.broker.username.is_empty(),
            "broker.username",
            "set it (with broker.password) when broker.sasl_mechanism is not \"none\"",
        );
        check(
            self.broker.mode.is_ours() || !self.broker.bootstrap.trim().is_empty(),
            "broker.bootstrap",
            "external broker mode needs bootstrap servers, e.g. \"kafka1:9092,kafka2:9092\"",
        );
        check(
            !self.broker.bind.is_empty(),
            "broker.bind",
            "must be an address such as 127.0.0.1",
        );
        check(
            valid_topic(&self.topics.ticks),
            "topics.ticks",
            "a topic name is 1-249 characters of [a-zA-Z0-9._-]",
        );
        check(
            valid_topic(&self.topics.dlq) && self.topics.dlq != self.topics.ticks,
            "topics.dlq",
            "a topic name is 1-249 characters of [a-zA-Z0-9._-], different from topics.ticks",
        );
        check(
            (1..=1000).contains(&self.topics.partitions),
            "topics.partitions",
            "must be between 1 and 1000",
        );
        check(
            self.mysql.mode.is_ours() || self.mysql.url.starts_with("mysql://"),
            "mysql.url",
            "external MySQL mode needs a URL like mysql://user:password@host:3306/stock_market",
        );
        check(
            !self.mysql.database.is_empty()
                && self.mysql.database.len() <= 64
                && self
                    .mysql
                    .database
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "mysql.database",
            "1-64 characters of [a-zA-Z0-9_]",
        );
        check(
            self.mysql.statement_timeout >= Duration::from_secs(1),
            "mysql.statement_timeout",
            "at least 1s (a batch's statements on a busy server take a while)",
        );
        check(
            (1..=16).contains(&self.process.writers),
            "process.writers",
            "must be between 1 and 16",
        );
        check(
            self.serve.bind.parse::<std::net::IpAddr>().is_ok(),
            "serve.bind",
            "an IP address such as 127.0.0.1 (or 0.0.0.0 to serve other machines)",
        );
        check(
            (1..=10_000).contains(&self.serve.max_connections),
            "serve.max_connections",
            "between 1 and 10000",
        );
        check(
            (1..self.serve.max_connections).contains(&self.serve.max_streams),
            "serve.max_streams",
            "at least 1 and below serve.max_connections (dashboards must leave room for the API)",
        );
        check(
            (Duration::from_millis(100)..=Duration::from_secs(3600)).contains(&self.live.every),
            "live.every",
            "between 100ms and 1h, such as \"1s\"",
        );
        check(
            self.ingest.speed == 0.0 || (0.001..=1e9).contains(&self.ingest.speed),
            "ingest.speed",
            "0 (as fast as possible) or a factor of the data's own clock from 0.001 to 1e9",
        );
        check(
            self.ingest.source_timezone.parse::<chrono_tz::Tz>().is_ok(),
            "ingest.source_timezone",
            "an IANA zone name such as UTC, Asia/Kolkata or America/New_York",
        );
        check(
            (1..=100_000).contains(&self.ingest.batch_records),
            "ingest.batch_records",
            "between 1 and 100000",
        );
        check(
            crate::broker::compression(&self.ingest.compression).is_some(),
            "ingest.compression",
            "one of none, lz4, zstd, snappy",
        );
        check(
            (1..=100_000).contains(&self.process.batch_rows),
            "process.batch_rows",
            "between 1 and 100000",
        );
        check(
            (1024..=256 * 1024 * 1024).contains(&self.process.fetch_bytes),
            "process.fetch_bytes",
            "between 1024 and 268435456",
        );
        for (i, rule) in self.alerts.iter().enumerate() {
            if let Some((key, fix)) = rule.problem() {
                problems.push(format!("alerts[{i}].{key}: {fix}"));
            }
            if self.alerts[..i].iter().any(|r| r.name == rule.name) {
                problems.push(format!(
                    "alerts[{i}].name: {:?} is the name of an earlier rule; names are unique",
                    rule.name
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            bail!(
                "invalid configuration (edit appliance.toml, or set TICKPIPE_<SECTION>__<KEY>):\n  {}",
                problems.join("\n  ")
            )
        }
    }

    /// The zone naive CSV timestamps are read in (validated at load).
    /// How input text becomes ticks: the source zone and the excess-decimals policy.
    pub fn reading(&self) -> crate::tick::Reading {
        crate::tick::Reading {
            zone: self.source_timezone(),
            ambiguous_times: self.ingest.ambiguous_times,
            excess_decimals: self.ingest.excess_decimals,
        }
    }

    pub fn source_timezone(&self) -> chrono_tz::Tz {
        self.ingest
            .source_timezone
            .parse()
            .unwrap_or(chrono_tz::UTC)
    }

    /// Creates the state directory if needed and returns its absolute path.
    /// Creates the state directory, readable by its owner only (it holds credentials, the
    /// ticks in Kafka's log and MySQL's files): 0700 whatever the umask. An existing one is
    /// left as it is (it may be a directory of the user's), with a warning if others can read
    /// it; the services' own directories in it are 0700 in any case.
    pub fn ensure_state_dir(&self) -> Result<PathBuf> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        match std::fs::metadata(&self.state_dir) {
            Ok(meta) if meta.permissions().mode() & 0o077 != 0 => tracing::warn!(
                "the state directory {} is open to other users (mode {:o}): chmod 700 it",
                self.state_dir.display(),
                meta.permissions().mode() & 0o777
            ),
            Ok(_) => {}
            Err(_) => std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.state_dir)
                .with_context(|| {
                    format!("creating state directory {}", self.state_dir.display())
                })?,
        }
        std::fs::canonicalize(&self.state_dir)
            .with_context(|| format!("resolving state directory {}", self.state_dir.display()))
    }
}

fn valid_topic(name: &str) -> bool {
    (1..=249).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn describe_figment_error(error: figment::Error) -> String {
    let key = error.path.join(".");
    let from = error
        .metadata
        .as_ref()
        .map(|m| match &m.source {
            Some(source) => format!(" (from {} {source})", m.name),
            None => format!(" (from {})", m.name),
        })
        .unwrap_or_default();
    if key.is_empty() {
        format!("{}{from}", error.kind)
    } else {
        format!("{key}: {}{from}", error.kind)
    }
}

/// Accepts a string, or a number or boolean written where a string belongs: figment reads
/// `TICKPIPE_TOPICS__TICKS=123` as a number.
fn lenient_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Lenient {
        Text(String),
        Int(i64),
        Float(f64),
        Bool(bool),
    }
    Ok(match Lenient::deserialize(deserializer)? {
        Lenient::Text(s) => s,
        Lenient::Int(n) => n.to_string(),
        Lenient::Float(n) => n.to_string(),
        Lenient::Bool(b) => b.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str, env: &[(&str, &str)]) -> Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("appliance.toml");
        std::fs::write(&file, toml).unwrap();
        let sources = Sources {
            file: Some(file),
            ..Sources::default()
        };
        // A private prefix keeps the test independent of the caller's environment.
        let prefix = format!("TPTEST{}_", rand::random::<u32>());
        for (k, v) in env {
            // SAFETY: the variables are unique to this test (random prefix).
            unsafe { std::env::set_var(format!("{prefix}{k}"), v) };
        }
        Config::load_with_env(&sources, Env::prefixed(&prefix).split("__"))
    }

    #[test]
    fn defaults_are_valid() {
        let config = load("", &[]).unwrap();
        assert_eq!(config.topics.partitions, 6);
        assert_eq!(config.broker.mode, Mode::Managed);
        assert_eq!(config.mysql.bind, "127.0.0.1");
    }

    #[test]
    fn environment_overrides_file_and_numbers_become_strings() {
        let config = load(
            "[topics]\npartitions = 3\nticks = \"a\"\n",
            &[("TOPICS__PARTITIONS", "12"), ("TOPICS__TICKS", "123")],
        )
        .unwrap();
        assert_eq!(config.topics.partitions, 12);
        assert_eq!(config.topics.ticks, "123");
    }

    #[test]
    fn errors_name_the_key_and_the_fix() {
        let error = load(
            "[topics]\npartitions = 0\n[ingest]\ncompression = \"brotli\"\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("topics.partitions: must be between 1 and 1000"),
            "{error}"
        );
        assert!(error.contains("ingest.compression"), "{error}");

        let error = load("[mysql]\nmode = \"external\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(error.contains("mysql.url"), "{error}");

        let error = load("[brokr]\nmode = \"managed\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(error.contains("brokr"), "{error}");
    }

    #[test]
    fn the_committed_appliance_toml_documents_the_defaults() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/appliance.toml"))
            .unwrap();
        let config = load(&text, &[]).unwrap();
        assert_eq!(
            serde_json::to_value(&config).unwrap(),
            serde_json::to_value(Config::default()).unwrap()
        );
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let sources = Sources {
            file: Some("/nonexistent/appliance.toml".into()),
            ..Sources::default()
        };
        let error = Config::load(&sources).unwrap_err().to_string();
        assert!(error.contains("does not exist"), "{error}");
    }
}
