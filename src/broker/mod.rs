//! The Kafka side shared by the stages: connecting with a deadline (and a SASL login, which the
//! managed broker requires), creating the topics, per-partition clients, the key partitioner,
//! and watermarks.
//!
//! rskafka retries forever by default; every client made here has a bounded backoff and every
//! call that could wait on the network runs under a timeout.

mod writer;

pub use writer::{TopicWriter, byte_bounded, send_with_retry};

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use rskafka::BackoffConfig;
use rskafka::client::error::{Error as KafkaError, ProtocolError};
use rskafka::client::partition::{Compression, OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder, Credentials, SaslConfig};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::retry::{Backoff, Verdict, retry};

/// How long one broker call may retry before it fails with an error.
pub const CALL_DEADLINE: Duration = Duration::from_secs(30);

/// SASL mechanisms a broker may require.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SaslMechanism {
    /// No authentication (an external broker that asks for none).
    #[default]
    None,
    Plain,
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// The name Kafka's client properties use.
    pub fn kafka_name(self) -> &'static str {
        match self {
            SaslMechanism::None => "",
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// Who logs in to a broker.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Login {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: String,
}

/// Never prints the password.
impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Login {
    fn sasl(&self) -> Option<SaslConfig> {
        let credentials = Credentials::new(self.username.clone(), self.password.clone());
        match self.mechanism {
            SaslMechanism::None => None,
            SaslMechanism::Plain => Some(SaslConfig::Plain(credentials)),
            SaslMechanism::ScramSha256 => Some(SaslConfig::ScramSha256(credentials)),
            SaslMechanism::ScramSha512 => Some(SaslConfig::ScramSha512(credentials)),
        }
    }

    /// Kafka client properties for this login (console tools, Spark with a `kafka.` prefix).
    pub fn client_properties(&self) -> String {
        match self.mechanism {
            SaslMechanism::None => "security.protocol=PLAINTEXT\n".into(),
            mechanism => {
                let module = match mechanism {
                    SaslMechanism::Plain => {
                        "org.apache.kafka.common.security.plain.PlainLoginModule"
                    }
                    _ => "org.apache.kafka.common.security.scram.ScramLoginModule",
                };
                format!(
                    "security.protocol=SASL_PLAINTEXT\nsasl.mechanism={}\n\
                     sasl.jaas.config={module} required username=\"{}\" password=\"{}\";\n",
                    mechanism.kafka_name(),
                    self.username,
                    self.password
                )
            }
        }
    }
}

/// Where a broker is and who logs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub bootstrap: String,
    pub login: Option<Login>,
}

impl Endpoint {
    /// A broker that asks for no login.
    pub fn open(bootstrap: &str) -> Endpoint {
        Endpoint {
            bootstrap: bootstrap.to_string(),
            login: None,
        }
    }
}

/// A connected Kafka client.
#[derive(Clone)]
pub struct Broker {
    client: Arc<Client>,
    pub bootstrap: String,
    /// Each partition's client for short calls (offsets, produce), opened once and shared by
    /// whoever asks (rskafka's partition clients reconnect by themselves). Each holds a
    /// connection of its own with a SCRAM login: opened per call, a processor's start made 37
    /// connections one after another, ~350 ms of its drain.
    partitions: Arc<Mutex<HashMap<(String, i32), PartitionSlot>>>,
}

/// A partition's client, once opened.
type PartitionSlot = Arc<tokio::sync::OnceCell<Arc<PartitionClient>>>;

impl Broker {
    /// Connects to the bootstrap servers (logging in as `endpoint` says), giving up after
    /// `deadline`.
    pub async fn connect(endpoint: &Endpoint, deadline: Duration) -> Result<Self> {
        let bootstrap = endpoint.bootstrap.as_str();
        let servers: Vec<String> = bootstrap
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let backoff = BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
            deadline: Some(deadline.min(CALL_DEADLINE)),
        };
        let mut build = ClientBuilder::new(servers)
            .client_id("tickpipe")
            .max_message_size(64 * 1024 * 1024)
            .backoff_config(backoff);
        if let Some(sasl) = endpoint.login.as_ref().and_then(Login::sasl) {
            build = build.sasl_config(sasl);
        }
        let build = build.build();
        let client = tokio::time::timeout(deadline, build)
            .await
            .map_err(|_| anyhow!("Kafka at {bootstrap} did not answer within {deadline:?}"))?
            .with_context(|| format!("connecting to Kafka at {bootstrap}"))?;
        Ok(Broker {
            client: Arc::new(client),
            bootstrap: bootstrap.to_string(),
            partitions: Arc::default(),
        })
    }

    /// Waits until the broker answers a metadata request, or `deadline` passes.
    pub async fn wait_healthy(endpoint: &Endpoint, deadline: Duration) -> Result<Self> {
        let bootstrap = &endpoint.bootstrap;
        let attempt = || async {
            let broker = Broker::connect(endpoint, deadline.min(Duration::from_secs(5))).await?;
            broker.topics().await?;
            anyhow::Ok(broker)
        };
        retry(
            "waiting for Kafka",
            Backoff::startup(deadline),
            &CancellationToken::new(),
            attempt,
            |_| Verdict::Retry,
        )
        .await
        .map_err(|failure| {
            failure.into_inner().context(format!(
                "Kafka at {bootstrap} did not answer a metadata request within {deadline:?}"
            ))
        })
    }

    /// Topic name → partition count.
    pub async fn topics(&self) -> Result<BTreeMap<String, i32>> {
        let topics = timed("listing topics", self.client.list_topics()).await?;
        Ok(topics
            .into_iter()
            .map(|t| (t.name, t.partitions.len() as i32))
            .collect())
    }

    /// The topic's identity (Kafka's topic id, which changes when a topic is deleted and
    /// created again under the same name); `None` when the broker does not report ids.
    pub async fn topic_id(&self, topic: &str) -> Result<Option<String>> {
        let topics = timed("listing topics", self.client.list_topics()).await?;
        let found = topics
            .into_iter()
            .find(|t| t.name == topic)
            .ok_or_else(|| {
                anyhow!(
                    "topic {topic} does not exist on {} (`tickpipe up` creates it)",
                    self.bootstrap
                )
            })?;
        Ok(found.topic_id.map(|id| id.to_string()))
    }

    /// Partition count of a topic, or an error naming the topic when it does not exist.
    pub async fn partition_count(&self, topic: &str) -> Result<i32> {
        self.topics().await?.get(topic).copied().ok_or_else(|| {
            anyhow!(
                "topic {topic} does not exist on {} (`tickpipe up` creates it)",
                self.bootstrap
            )
        })
    }

    /// Creates the topic unless it exists; an existing topic keeps its partition count.
    pub async fn ensure_topic(&self, topic: &str, partitions: i32) -> Result<i32> {
        if let Some(&existing) = self.topics().await?.get(topic) {
            if existing != partitions {
                tracing::warn!(
                    topic,
                    existing,
                    configured = partitions,
                    "topic exists with a different partition count; keeping it"
                );
            }
            return Ok(existing);
        }
        let controller = self.client.controller_client()?;
        let create = controller.create_topic(topic, partitions, 1, 10_000);
        match tokio::time::timeout(CALL_DEADLINE, create).await {
            Ok(Ok(())) => {}
            Ok(Err(KafkaError::ServerError {
                protocol_error: ProtocolError::TopicAlreadyExists,
                ..
            })) => {}
            Ok(Err(e)) => bail!("creating topic {topic}: {e}"),
            Err(_) => bail!("creating topic {topic}: no answer within {CALL_DEADLINE:?}"),
        }
        // Metadata takes a moment to show a new topic everywhere.
        for _ in 0..100 {
            if self.topics().await?.get(topic) == Some(&partitions) {
                return Ok(partitions);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("topic {topic} was created but does not show in the metadata")
    }

    /// The shared client bound to one partition's leader (opened on first use), for calls that
    /// answer at once.
    pub async fn partition(&self, topic: &str, partition: i32) -> Result<Arc<PartitionClient>> {
        let slot = self
            .partitions
            .lock()
            .expect("no panic holds it")
            .entry((topic.to_string(), partition))
            .or_default()
            .clone();
        let client = slot
            .get_or_try_init(|| self.open_partition(topic, partition))
            .await?;
        Ok(client.clone())
    }

    /// A new client bound to one partition's leader, on a connection of its own: what a fetch
    /// loop needs, since a fetch waiting for new records holds its connection (the broker
    /// answers a connection's requests in order) and nothing else may wait behind it.
    pub async fn open_partition(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Arc<PartitionClient>> {
        let client = timed(
            "finding a partition leader",
            self.client
                .partition_client(topic, partition, UnknownTopicHandling::Retry),
        )
        .await
        .with_context(|| format!("opening {topic}/{partition}"))?;
        Ok(Arc::new(client))
    }

    /// Earliest and next (high watermark) offsets of every partition of a topic (asked of all
    /// partitions at once).
    pub async fn watermarks(&self, topic: &str) -> Result<Vec<(i32, i64, i64)>> {
        let count = self.partition_count(topic).await?;
        let marks = (0..count).map(|p| async move {
            let client = self.partition(topic, p).await?;
            let earliest =
                timed("reading an offset", client.get_offset(OffsetAt::Earliest)).await?;
            let latest = timed("reading an offset", client.get_offset(OffsetAt::Latest)).await?;
            anyhow::Ok((p, earliest, latest))
        });
        futures::future::try_join_all(marks).await
    }
}

/// A failed broker call: Kafka's own error (branch on its code with [`CallError::code`]), or
/// no answer within the deadline.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("Kafka error while {what}: {source}")]
    Kafka {
        what: &'static str,
        source: KafkaError,
    },
    #[error("Kafka did not answer while {what} within {CALL_DEADLINE:?}")]
    NoAnswer { what: &'static str },
}

impl CallError {
    /// The protocol error code the broker answered with, if it answered with one.
    pub fn code(&self) -> Option<ProtocolError> {
        match self {
            CallError::Kafka {
                source: KafkaError::ServerError { protocol_error, .. },
                ..
            } => Some(*protocol_error),
            _ => None,
        }
    }
}

/// Runs a broker call under [`CALL_DEADLINE`] plus a margin, so nothing hangs on a dead broker.
pub async fn call<T>(
    what: &'static str,
    call: impl Future<Output = Result<T, KafkaError>>,
) -> Result<T, CallError> {
    match tokio::time::timeout(CALL_DEADLINE + Duration::from_secs(5), call).await {
        Ok(result) => result.map_err(|source| CallError::Kafka { what, source }),
        Err(_) => Err(CallError::NoAnswer { what }),
    }
}

/// [`call`] for callers that only report the error.
pub async fn timed<T>(
    what: &'static str,
    future: impl Future<Output = Result<T, KafkaError>>,
) -> Result<T> {
    Ok(call(what, future).await?)
}

/// The compression codec named in the configuration.
pub fn compression(name: &str) -> Option<Compression> {
    match name {
        "none" => Some(Compression::NoCompression),
        "lz4" => Some(Compression::Lz4),
        "zstd" => Some(Compression::Zstd),
        "snappy" => Some(Compression::Snappy),
        _ => None,
    }
}

/// The partition Kafka's own default partitioner picks for a key (murmur2, positive, modulo),
/// so a symbol lands where a Java, Python or Spark producer would put it.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    ((murmur2(key) & 0x7fff_ffff) % partitions as u32) as i32
}

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`).
fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= (rest[2] as u32) << 16;
    }
    if rest.len() >= 2 {
        h ^= (rest[1] as u32) << 8;
    }
    if !rest.is_empty() {
        h ^= rest[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mechanisms_are_named_as_kafka_names_them_and_passwords_never_print() {
        for (name, mechanism) in [
            ("none", SaslMechanism::None),
            ("plain", SaslMechanism::Plain),
            ("scram-sha-256", SaslMechanism::ScramSha256),
            ("scram-sha-512", SaslMechanism::ScramSha512),
        ] {
            let parsed: SaslMechanism = serde_json::from_str(&format!("\"{name}\"")).unwrap();
            assert_eq!(parsed, mechanism);
        }
        let login = Login {
            mechanism: SaslMechanism::ScramSha512,
            username: "tickpipe_reader".into(),
            password: "s3cret".into(),
        };
        assert!(!format!("{login:?}").contains("s3cret"));
        assert!(
            login
                .client_properties()
                .contains("sasl.mechanism=SCRAM-SHA-512\nsasl.jaas.config=")
        );
    }

    #[test]
    fn murmur2_matches_kafka() {
        // Values printed by org.apache.kafka.common.utils.Utils.murmur2 from Kafka 4.3.1's jars.
        for (key, expected) in [
            ("21", -973932308i32),
            ("foobar", -790332482),
            ("a-little-bit-long-string", -985981536),
            ("a-little-bit-longer-string", -1486304829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            ("abc", 479470107),
        ] {
            assert_eq!(murmur2(key.as_bytes()) as i32, expected, "{key}");
        }
    }

    #[test]
    fn partitions_are_stable_and_in_range() {
        for key in ["HDFC", "ICICI", "SBIN", ""] {
            let p = partition_for_key(key.as_bytes(), 6);
            assert!((0..6).contains(&p));
            assert_eq!(p, partition_for_key(key.as_bytes(), 6));
        }
    }
}
