//! The managed broker: Apache Kafka 4.x, one node in KRaft mode (broker and controller in one
//! JVM, no ZooKeeper), run from Kafka's own jars with its config, data and logs under the
//! state directory.
//!
//! The jars come from `broker.kafka_libs`, `$KAFKA_HOME/libs`, or the cache
//! `scripts/fetch-kafka.sh` fills (`~/.cache/tickpipe/kafka-<version>/lib`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine;

use super::child::{ChildSpec, Supervised, stop_orphan};
use crate::config::BrokerConfig;
use crate::state::{Ports, StateDir};

/// Kafka version `scripts/fetch-kafka.sh` caches (keep in step with scripts/kafka/pom.xml).
const KAFKA_VERSION: &str = "4.3.1";

pub struct ManagedKafka {
    pub child: Supervised,
    pub bootstrap: String,
}

pub async fn start(config: &BrokerConfig, state: &StateDir, ports: &Ports) -> Result<ManagedKafka> {
    let libs = kafka_libs(config)?;
    let java = find_java()?;
    let dir = state.kafka_dir();
    let data = dir.join("data");
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    let host = &config.bind;
    let properties = dir.join("server.properties");
    std::fs::write(&properties, server_properties(host, ports, &data))?;
    let log4j = dir.join("log4j2.properties");
    std::fs::write(&log4j, log4j_properties(&logs))?;

    let pid_file = dir.join("supervised.pid");
    stop_orphan(
        &pid_file,
        &dir.display().to_string(),
        Duration::from_secs(60),
    )
    .await;

    let classpath = format!("{}/*", libs.display());
    if !data.join("meta.properties").exists() {
        format_storage(&java, &classpath, &properties, &log4j).await?;
    }
    let args = vec![
        "-Xms128m".to_string(),
        format!("-Xmx{}", config.heap),
        "-XX:+UseG1GC".into(),
        "-XX:MaxGCPauseMillis=20".into(),
        "-Djava.awt.headless=true".into(),
        format!("-Dlog4j2.configurationFile={}", log4j.display()),
        format!("-Dkafka.logs.dir={}", logs.display()),
        "-cp".into(),
        classpath,
        "kafka.Kafka".into(),
        properties.display().to_string(),
    ];
    let child = Supervised::start(ChildSpec {
        name: "kafka",
        program: java,
        args,
        log_file: logs.join("stdout.log"),
        pid_file,
        stop_timeout: Duration::from_secs(30),
    })?;
    Ok(ManagedKafka {
        child,
        bootstrap: format!("{host}:{}", ports.kafka),
    })
}

fn server_properties(host: &str, ports: &Ports, data: &Path) -> String {
    format!(
        "# Written by tickpipe at every start; edit appliance.toml instead.\n\
         process.roles=broker,controller\n\
         node.id=1\n\
         controller.quorum.voters=1@{host}:{controller}\n\
         listeners=PLAINTEXT://{host}:{client},CONTROLLER://{host}:{controller}\n\
         advertised.listeners=PLAINTEXT://{host}:{client}\n\
         controller.listener.names=CONTROLLER\n\
         inter.broker.listener.name=PLAINTEXT\n\
         listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
         log.dirs={data}\n\
         num.partitions=1\n\
         auto.create.topics.enable=false\n\
         offsets.topic.replication.factor=1\n\
         transaction.state.log.replication.factor=1\n\
         transaction.state.log.min.isr=1\n\
         share.coordinator.state.topic.replication.factor=1\n\
         share.coordinator.state.topic.min.isr=1\n\
         group.initial.rebalance.delay.ms=0\n\
         log.retention.hours=168\n\
         message.max.bytes=10485760\n",
        client = ports.kafka,
        controller = ports.kafka_controller,
        data = data.display(),
    )
}

fn log4j_properties(logs: &Path) -> String {
    format!(
        "appender.file.type=File\n\
         appender.file.name=file\n\
         appender.file.fileName={}/server.log\n\
         appender.file.layout.type=PatternLayout\n\
         appender.file.layout.pattern=[%d] %p %m (%c)%n\n\
         rootLogger.level=INFO\n\
         rootLogger.appenderRef.file.ref=file\n",
        logs.display()
    )
}

/// Formats the KRaft metadata directory with a new cluster id (first start only).
async fn format_storage(
    java: &Path,
    classpath: &str,
    properties: &Path,
    log4j: &Path,
) -> Result<()> {
    let cluster_id =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
    let output = tokio::process::Command::new(java)
        .arg(format!("-Dlog4j2.configurationFile={}", log4j.display()))
        .args([
            "-cp",
            classpath,
            "kafka.tools.StorageTool",
            "format",
            // One argument with `=`: a random id may start with '-', which the tool's parser
            // would take for an option (1 start in 64 failed that way).
            &format!("--cluster-id={cluster_id}"),
            "-c",
        ])
        .arg(properties)
        .output()
        .await
        .context("running Kafka's storage format tool")?;
    if !output.status.success() {
        bail!(
            "formatting Kafka's storage failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// The directory of Kafka's jars.
pub fn kafka_libs(config: &BrokerConfig) -> Result<PathBuf> {
    let mut candidates = Vec::new();
    if !config.kafka_libs.is_empty() {
        candidates.push(PathBuf::from(&config.kafka_libs));
    }
    if let Some(home) = std::env::var_os("KAFKA_HOME") {
        candidates.push(PathBuf::from(home).join("libs"));
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    if let Some(cache) = cache {
        candidates.push(cache.join(format!("tickpipe/kafka-{KAFKA_VERSION}/lib")));
    }
    candidates
        .into_iter()
        .find(|dir| {
            std::fs::read_dir(dir).is_ok_and(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .any(|e| e.file_name().to_string_lossy().starts_with("kafka_2.13-"))
            })
        })
        .context(
            "Kafka's jars were not found: run scripts/fetch-kafka.sh, set KAFKA_HOME to a Kafka \
             installation, or set broker.mode = \"external\"",
        )
}

pub fn find_java() -> Result<PathBuf> {
    if let Some(home) = std::env::var_os("JAVA_HOME") {
        let java = PathBuf::from(home).join("bin/java");
        if java.is_file() {
            return Ok(java);
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("java"))
        .find(|p| p.is_file())
        .context("no java found (Kafka 4 needs Java 17 or newer): install a JDK or set JAVA_HOME")
}
