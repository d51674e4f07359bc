//! The managed broker: Apache Kafka 4.x, one node in KRaft mode (broker and controller in one
//! JVM, no ZooKeeper), run from Kafka's own jars with its config, data and logs under the
//! state directory (0700).
//!
//! Every client logs in (SASL/SCRAM-SHA-512) and is authorized by KRaft's `StandardAuthorizer`:
//! the logins are made when the storage is formatted (salted, so no password is ever on a
//! command line), before the broker first listens; the ACLs are granted once the broker
//! answers. `tickpipe_admin` is the super user (topics), `tickpipe_app` reads and writes
//! topics (the stages), `tickpipe_reader` only reads (console tools, Spark). The controller
//! listener takes a PLAIN login known only to the broker itself: a controller listener without
//! one would make any local process a super user.
//!
//! The jars come from `broker.kafka_libs`, `$KAFKA_HOME/libs`, or the cache
//! `scripts/fetch-kafka.sh` fills (`~/.cache/tickpipe/kafka-<version>/lib`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine;

use super::child::{ChildSpec, Supervised, stop_orphan};
use crate::config::BrokerConfig;
use crate::state::{
    Credentials, KAFKA_ADMIN, KAFKA_APP, KAFKA_READER, Ports, StateDir, write_private,
};

/// Kafka version `scripts/fetch-kafka.sh` caches (keep in step with scripts/kafka/pom.xml).
const KAFKA_VERSION: &str = "4.3.1";

pub struct ManagedKafka {
    pub child: Supervised,
    pub bootstrap: String,
}

pub async fn start(
    config: &BrokerConfig,
    state: &StateDir,
    ports: &Ports,
    credentials: &Credentials,
) -> Result<ManagedKafka> {
    let libs = kafka_libs(config)?;
    let java = find_java()?;
    let dir = state.private_dir("kafka")?;
    let data = dir.join("data");
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    let host = &config.bind;
    if data.join("meta.properties").exists() && !dir.join("logins").exists() {
        bail!(
            "{} holds a broker of an earlier tickpipe that asked no client to log in; its \
             records cannot be carried over. Stop here if the processor has not stored them \
             yet (run an earlier tickpipe's `process --drain`), then delete that directory \
             and start again",
            data.display()
        );
    }
    let properties = dir.join("server.properties");
    // It holds the broker's own passwords: its owner's eyes only.
    write_private(
        &properties,
        server_properties(host, ports, &data, credentials).as_bytes(),
    )?;
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
        format_storage(&java, &classpath, &properties, &log4j, credentials).await?;
        std::fs::write(dir.join("logins"), b"")?;
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

fn server_properties(host: &str, ports: &Ports, data: &Path, credentials: &Credentials) -> String {
    format!(
        "# Written by tickpipe at every start; edit appliance.toml instead.\n\
         process.roles=broker,controller\n\
         node.id=1\n\
         controller.quorum.voters=1@{host}:{controller}\n\
         listeners=SASL_PLAINTEXT://{host}:{client},CONTROLLER://{host}:{controller}\n\
         advertised.listeners=SASL_PLAINTEXT://{host}:{client}\n\
         controller.listener.names=CONTROLLER\n\
         inter.broker.listener.name=SASL_PLAINTEXT\n\
         listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT\n\
         sasl.enabled.mechanisms=SCRAM-SHA-512\n\
         sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512\n\
         listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=\
         org.apache.kafka.common.security.scram.ScramLoginModule required \
         username=\"{KAFKA_ADMIN}\" password=\"{admin}\";\n\
         sasl.mechanism.controller.protocol=PLAIN\n\
         listener.name.controller.sasl.enabled.mechanisms=PLAIN\n\
         listener.name.controller.plain.sasl.jaas.config=\
         org.apache.kafka.common.security.plain.PlainLoginModule required \
         username=\"{KAFKA_ADMIN}\" password=\"{controller_password}\" \
         user_{KAFKA_ADMIN}=\"{controller_password}\";\n\
         authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer\n\
         super.users=User:{KAFKA_ADMIN}\n\
         allow.everyone.if.no.acl.found=false\n\
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
        admin = credentials.kafka_admin_password,
        controller_password = credentials.kafka_controller_password,
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

/// Formats the KRaft metadata directory with a new cluster id and the SCRAM logins (first
/// start only).
async fn format_storage(
    java: &Path,
    classpath: &str,
    properties: &Path,
    log4j: &Path,
    credentials: &Credentials,
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
        .args(
            [
                (KAFKA_ADMIN, &credentials.kafka_admin_password),
                (KAFKA_APP, &credentials.kafka_app_password),
                (KAFKA_READER, &credentials.kafka_reader_password),
            ]
            .into_iter()
            .flat_map(|(user, password)| ["--add-scram".to_string(), salted_login(user, password)]),
        )
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

/// Iterations of SCRAM's key derivation (Kafka's minimum is 4096).
const SCRAM_ITERATIONS: u32 = 8192;

/// A SCRAM-SHA-512 login as `StorageTool format --add-scram` takes it: salted, so the password
/// itself never appears on a command line (which other local users can read).
fn salted_login(user: &str, password: &str) -> String {
    let salt: [u8; 32] = rand::random();
    let mut salted = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password.as_bytes(), &salt, SCRAM_ITERATIONS, &mut salted);
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    format!(
        "SCRAM-SHA-512=[name={user},iterations={SCRAM_ITERATIONS},salt=\"{}\",saltedpassword=\"{}\"]",
        b64(&salt),
        b64(&salted)
    )
}

/// Grants the stages' and the reader's logins what they need, once per broker: the app login
/// reads, writes and describes any topic; the reader reads and describes topics and may use
/// any consumer group. Neither may create, alter or delete topics, or grant anything.
pub async fn grant_acls(config: &BrokerConfig, state: &StateDir, bootstrap: &str) -> Result<()> {
    let done = state.kafka_dir().join("acls");
    if done.exists() {
        return Ok(());
    }
    let libs = kafka_libs(config)?;
    let java = find_java()?;
    let admin_properties = state.root.join("client-admin.properties");
    let app = format!("User:{KAFKA_APP}");
    let reader = format!("User:{KAFKA_READER}");
    let grants: [&[&str]; 2] = [
        &[
            "--allow-principal",
            &app,
            "--operation",
            "Read",
            "--operation",
            "Write",
            "--operation",
            "Describe",
            "--topic",
            "*",
        ],
        &[
            "--allow-principal",
            &reader,
            "--consumer",
            "--topic",
            "*",
            "--group",
            "*",
        ],
    ];
    for grant in grants {
        let output = tokio::process::Command::new(&java)
            .args([
                "-Xmx128m",
                "-XX:TieredStopAtLevel=1",
                "-XX:+UseSerialGC",
                "-cp",
            ])
            .arg(format!("{}/*", libs.display()))
            .args([
                "org.apache.kafka.tools.AclCommand",
                "--bootstrap-server",
                bootstrap,
            ])
            .arg("--command-config")
            .arg(&admin_properties)
            .arg("--add")
            .args(grant)
            .output()
            .await
            .context("running Kafka's ACL tool")?;
        if !output.status.success() {
            bail!(
                "granting Kafka ACLs failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
    std::fs::write(&done, b"")?;
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
