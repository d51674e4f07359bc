//! `broker.mode = "container"` and `mysql.mode = "container"`: Redpanda (Kafka's protocol) and
//! MariaDB in Docker containers through testcontainers, with the same topics, schema, users,
//! logins and health checks as the managed services. Each container publishes its port on
//! loopback only, at the port `up` chose (so the broker can advertise it), and is removed when
//! `up` stops: what it stored goes with it (a container appliance is for tests and demos).
//!
//! `up` asks Docker first ([`docker_answers`]: `/_ping` on `DOCKER_HOST`, else
//! `/var/run/docker.sock`): without a daemon it says so and what to do instead, before
//! anything starts.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use testcontainers::bollard::models::{HostConfig, PortBinding};
use testcontainers::core::{ExecCommand, IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, ContainerRequest, GenericImage, ImageExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::TopicsConfig;
use crate::state::{Credentials, KAFKA_ADMIN, KAFKA_APP, KAFKA_READER};

/// Redpanda's image: Kafka's protocol with SASL/SCRAM and ACLs, one process, starts in seconds.
pub const REDPANDA: (&str, &str) = ("docker.redpanda.com/redpandadata/redpanda", "v24.3.6");
/// MariaDB's official image, the server version the managed mode runs.
pub const MARIADB: (&str, &str) = ("mariadb", "10.11");

/// Ports inside the containers.
const KAFKA_PORT: u16 = 9092;
const MYSQL_PORT: u16 = 3306;

/// A running container; removed when stopped or dropped.
pub struct Container(Box<ContainerAsync<GenericImage>>);

impl Container {
    pub async fn stop(self) {
        if let Err(e) = self.0.rm().await {
            tracing::warn!("removing a container: {e}");
        }
    }
}

/// Where the Docker daemon is expected.
pub fn docker_host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

/// Fails, saying what to do, unless a Docker daemon answers its `/_ping` at `host` in time.
pub async fn docker_answers(host: &str, key: &str) -> Result<()> {
    let unanswered = |why: String| {
        anyhow::anyhow!(
            "{key} = \"container\" needs a Docker daemon, and none answers at {host} ({why}): \
             start Docker (or set DOCKER_HOST), or use {key} = \"managed\""
        )
    };
    let ping = async {
        let request = b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n";
        let mut answer = Vec::new();
        if let Some(path) = host.strip_prefix("unix://") {
            let mut socket = tokio::net::UnixStream::connect(path).await?;
            socket.write_all(request).await?;
            socket.read_to_end(&mut answer).await?;
        } else if let Some(address) = host
            .strip_prefix("tcp://")
            .or_else(|| host.strip_prefix("http://"))
        {
            let mut socket = tokio::net::TcpStream::connect(address).await?;
            socket.write_all(request).await?;
            socket.read_to_end(&mut answer).await?;
        } else {
            return Err(std::io::Error::other("not a unix:// or tcp:// address"));
        }
        Ok(String::from_utf8_lossy(&answer).into_owned())
    };
    match tokio::time::timeout(Duration::from_secs(5), ping).await {
        Err(_) => Err(unanswered("no answer within 5 s".into())),
        Ok(Err(e)) => Err(unanswered(e.to_string())),
        Ok(Ok(answer)) if answer.starts_with("HTTP/1.") && answer.ends_with("OK") => Ok(()),
        Ok(Ok(answer)) => Err(unanswered(format!(
            "it answered {:?}, not Docker's OK",
            answer.lines().next().unwrap_or("")
        ))),
    }
}

/// Publishes `container_port` at `host_port` on loopback only (Docker's default is every
/// address).
fn on_loopback(
    request: ContainerRequest<GenericImage>,
    host_port: u16,
    container_port: u16,
) -> ContainerRequest<GenericImage> {
    request
        .with_mapped_port(host_port, container_port.tcp())
        .with_host_config_modifier(move |config: &mut HostConfig| {
            let binding = PortBinding {
                host_ip: Some("127.0.0.1".into()),
                host_port: Some(host_port.to_string()),
            };
            config.port_bindings = Some(
                [(format!("{container_port}/tcp"), Some(vec![binding]))]
                    .into_iter()
                    .collect(),
            );
        })
}

/// Redpanda advertising `127.0.0.1:port`, ready when it says it started.
pub fn redpanda(port: u16, startup: Duration) -> ContainerRequest<GenericImage> {
    let image = GenericImage::new(REDPANDA.0, REDPANDA.1).with_wait_for(
        WaitFor::message_on_either_std("Successfully started Redpanda!"),
    );
    let request = image
        .with_cmd([
            "redpanda".to_string(),
            "start".into(),
            "--mode".into(),
            "dev-container".into(),
            "--smp".into(),
            "1".into(),
            "--kafka-addr".into(),
            format!("0.0.0.0:{KAFKA_PORT}"),
            "--advertise-kafka-addr".into(),
            format!("127.0.0.1:{port}"),
        ])
        .with_startup_timeout(startup);
    on_loopback(request, port, KAFKA_PORT)
}

/// The commands (run inside the Redpanda container, passwords in the environment, never on a
/// command line) that make the appliance's three SCRAM logins, their ACLs — the app login
/// reads and writes the two topics, the reader reads them, both in any group; the admin is a
/// superuser — and then require SASL.
pub fn redpanda_logins(
    credentials: &Credentials,
    topics: &TopicsConfig,
) -> Vec<(String, Vec<(&'static str, String)>)> {
    let user = |name: &str, variable: &str| {
        format!("rpk security user create {name} --mechanism SCRAM-SHA-512 -p \"${variable}\"")
    };
    let acl = |name: &str, operations: &str| {
        format!(
            "rpk security acl create --allow-principal User:{name} --operation {operations} \
             --topic {} --topic {} --group '*'",
            topics.ticks, topics.dlq
        )
    };
    vec![
        (
            user(KAFKA_ADMIN, "PASSWORD"),
            vec![("PASSWORD", credentials.kafka_admin_password.clone())],
        ),
        (
            user(KAFKA_APP, "PASSWORD"),
            vec![("PASSWORD", credentials.kafka_app_password.clone())],
        ),
        (
            user(KAFKA_READER, "PASSWORD"),
            vec![("PASSWORD", credentials.kafka_reader_password.clone())],
        ),
        (
            format!("rpk cluster config set superusers '[\"{KAFKA_ADMIN}\"]'"),
            vec![],
        ),
        (acl(KAFKA_APP, "read,write,describe"), vec![]),
        (acl(KAFKA_READER, "read,describe"), vec![]),
        ("rpk cluster config set enable_sasl true".into(), vec![]),
    ]
}

/// MariaDB with `root_password`, ready once the real server (not the image's set-up one, which
/// runs without networking) listens.
pub fn mariadb(
    port: u16,
    root_password: &str,
    startup: Duration,
) -> ContainerRequest<GenericImage> {
    let image = GenericImage::new(MARIADB.0, MARIADB.1)
        .with_wait_for(WaitFor::message_on_stderr(format!("port: {MYSQL_PORT}")));
    let request = image
        .with_env_var("MARIADB_ROOT_PASSWORD", root_password)
        // The appliance's server settings that matter to the pipeline.
        .with_cmd([
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_unicode_ci",
            // The processor's batches: LOAD DATA LOCAL INFILE from its memory.
            "--local-infile=1",
        ])
        .with_startup_timeout(startup);
    on_loopback(request, port, MYSQL_PORT)
}

/// Starts Redpanda and makes its logins.
pub async fn start_redpanda(
    port: u16,
    credentials: &Credentials,
    topics: &TopicsConfig,
    startup: Duration,
) -> Result<Container> {
    let container = redpanda(port, startup)
        .start()
        .await
        .context("starting Redpanda's container")?;
    for (command, env) in redpanda_logins(credentials, topics) {
        let mut done = container
            .exec(ExecCommand::new(["sh", "-c", &command]).with_env_vars(env))
            .await
            .context("setting Redpanda's logins up")?;
        let said = String::from_utf8_lossy(&done.stderr_to_vec().await?).into_owned();
        if done.exit_code().await? != Some(0) {
            let _ = container.rm().await;
            bail!("setting Redpanda's logins up failed: {said}");
        }
    }
    Ok(Container(Box::new(container)))
}

/// Starts MariaDB.
pub async fn start_mariadb(port: u16, root_password: &str, startup: Duration) -> Result<Container> {
    let container = mariadb(port, root_password, startup)
        .start()
        .await
        .context("starting MariaDB's container")?;
    Ok(Container(Box::new(container)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use testcontainers::Image;

    fn credentials() -> Credentials {
        Credentials {
            root_password: "root-secret".into(),
            app_password: "app-secret".into(),
            bi_password: "bi-secret".into(),
            kafka_admin_password: "admin-secret".into(),
            kafka_app_password: "kafka-app-secret".into(),
            kafka_reader_password: "reader-secret".into(),
            kafka_controller_password: String::new(),
        }
    }

    /// The port binding the host config modifier sets.
    fn binding(request: &ContainerRequest<GenericImage>) -> (String, String) {
        let mut config = HostConfig::default();
        (request.host_config_modifier().expect("a modifier"))(&mut config);
        let bindings = config.port_bindings.unwrap();
        let (port, binding) = bindings.into_iter().next().unwrap();
        let binding = binding.unwrap().remove(0);
        (
            port,
            format!(
                "{}:{}",
                binding.host_ip.unwrap(),
                binding.host_port.unwrap()
            ),
        )
    }

    #[test]
    fn redpanda_advertises_the_chosen_port_on_loopback_only() {
        let request = redpanda(39092, Duration::from_secs(90));
        assert_eq!(request.image().name(), REDPANDA.0);
        let cmd: Vec<String> = request.cmd().map(|c| c.into_owned()).collect();
        assert!(
            cmd.windows(2)
                .any(|w| w == ["--advertise-kafka-addr", "127.0.0.1:39092"])
        );
        assert!(
            cmd.windows(2)
                .any(|w| w == ["--kafka-addr", "0.0.0.0:9092"])
        );
        assert_eq!(
            binding(&request),
            ("9092/tcp".into(), "127.0.0.1:39092".into())
        );
        assert_eq!(request.startup_timeout(), Some(Duration::from_secs(90)));
    }

    #[test]
    fn redpanda_logins_keep_passwords_off_command_lines_and_sasl_comes_last() {
        let topics = TopicsConfig::default();
        let commands = redpanda_logins(&credentials(), &topics);
        for (command, _) in &commands {
            assert!(
                !command.contains("secret"),
                "a password on a command line: {command}"
            );
        }
        let passwords: Vec<&str> = commands
            .iter()
            .flat_map(|(_, env)| env.iter().map(|(_, v)| v.as_str()))
            .collect();
        assert_eq!(
            passwords,
            ["admin-secret", "kafka-app-secret", "reader-secret"]
        );
        let reader = commands
            .iter()
            .find(|(c, _)| c.contains("User:tickpipe_reader"))
            .unwrap();
        assert!(
            reader.0.contains("--operation read,describe "),
            "{}",
            reader.0
        );
        assert!(
            reader
                .0
                .contains(&format!("--topic {} --topic {}", topics.ticks, topics.dlq))
        );
        assert_eq!(
            commands.last().unwrap().0,
            "rpk cluster config set enable_sasl true",
            "SASL once the logins exist"
        );
    }

    #[test]
    fn mariadb_gets_its_root_password_from_the_environment_and_waits_for_its_port() {
        let request = mariadb(33306, "root-secret", Duration::from_secs(60));
        assert_eq!(request.image().name(), MARIADB.0);
        assert_eq!(request.image().tag(), MARIADB.1);
        let env: Vec<(String, String)> = request
            .env_vars()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        assert_eq!(
            env,
            [("MARIADB_ROOT_PASSWORD".into(), "root-secret".into())]
        );
        assert!(request.cmd().all(|c| !c.contains("secret")));
        assert_eq!(
            binding(&request),
            ("3306/tcp".into(), "127.0.0.1:33306".into())
        );
    }

    #[tokio::test]
    async fn no_docker_daemon_is_a_clear_error_naming_the_key_and_the_way_out() {
        let missing = tempfile::tempdir().unwrap().path().join("docker.sock");
        let host = format!("unix://{}", missing.display());
        let refused = docker_answers(&host, "broker.mode")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("broker.mode = \"container\" needs a Docker daemon"),
            "{refused}"
        );
        assert!(refused.contains(&host), "{refused}");
        assert!(
            refused.contains("use broker.mode = \"managed\""),
            "{refused}"
        );

        // Something listens, but it is not Docker.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 256];
            let _ = socket.read(&mut request).await;
            let _ = socket.write_all(b"HTTP/1.0 404 Not Found\r\n\r\nno").await;
            let _ = socket.shutdown().await;
        });
        let host = format!("tcp://{address}");
        let refused = docker_answers(&host, "mysql.mode")
            .await
            .unwrap_err()
            .to_string();
        assert!(refused.contains("not Docker's OK"), "{refused}");
    }
}
