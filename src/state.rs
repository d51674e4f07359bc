//! The state directory: what `up` leaves for everyone else to find the running appliance
//! (`appliance.json`), the generated database passwords (`credentials.json`, mode 0600), the
//! ports managed services took, and the endpoints a stage connects to.
//!
//! ```text
//! <state_dir>/appliance.json    endpoints of the running appliance (removed when `up` exits)
//! <state_dir>/credentials.json  MySQL's root, app and BI passwords, Kafka's logins (0600)
//! <state_dir>/client.properties Kafka client settings of the read-only login (console
//!                               consumer, Spark); client-app.properties and
//!                               client-admin.properties for writing and administration (0600)
//! <state_dir>/ports.json        ports of the managed services, reused across runs
//! <state_dir>/stages.json       health of `up`'s stages (removed when `up` exits)
//! <state_dir>/up.lock           held while `up` runs
//! <state_dir>/kafka/            broker config, data (kraft), logs
//! <state_dir>/mysql/            server data directory, socket, error log
//! ```

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::broker::{Endpoint, Login, SaslMechanism};
use crate::config::{Config, Mode};
use crate::store::MysqlTarget;

pub const APP_USER: &str = "tickpipe_app";
pub const BI_USER: &str = "tickpipe_bi";
/// The managed broker's principals: one that creates topics and grants (a super user), one
/// that produces and consumes (the stages), one that only reads (console tools, Spark, BI).
pub const KAFKA_ADMIN: &str = "tickpipe_admin";
pub const KAFKA_APP: &str = "tickpipe_app";
pub const KAFKA_READER: &str = "tickpipe_reader";

/// Generated passwords of the managed services' accounts.
#[derive(Clone, Serialize, Deserialize)]
pub struct Credentials {
    pub root_password: String,
    pub app_password: String,
    pub bi_password: String,
    /// Added after the MySQL ones: a state directory of an earlier release gets them generated.
    #[serde(default)]
    pub kafka_admin_password: String,
    #[serde(default)]
    pub kafka_app_password: String,
    #[serde(default)]
    pub kafka_reader_password: String,
    /// The broker's own login to its controller listener; never handed out.
    #[serde(default)]
    pub kafka_controller_password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials { .. }")
    }
}

impl Credentials {
    fn scram(username: &str, password: &str) -> Login {
        Login {
            mechanism: SaslMechanism::ScramSha512,
            username: username.into(),
            password: password.into(),
        }
    }
    pub fn kafka_admin(&self) -> Login {
        Self::scram(KAFKA_ADMIN, &self.kafka_admin_password)
    }
    pub fn kafka_app(&self) -> Login {
        Self::scram(KAFKA_APP, &self.kafka_app_password)
    }
    pub fn kafka_reader(&self) -> Login {
        Self::scram(KAFKA_READER, &self.kafka_reader_password)
    }

    /// Fills in the passwords a state directory of an earlier release lacks; whether any was.
    fn complete(&mut self) -> bool {
        let mut added = false;
        for password in [
            &mut self.kafka_admin_password,
            &mut self.kafka_app_password,
            &mut self.kafka_reader_password,
            &mut self.kafka_controller_password,
        ] {
            if password.is_empty() {
                *password = generate_password();
                added = true;
            }
        }
        added
    }
}

/// Where the running appliance's services are.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApplianceInfo {
    /// Process id of `tickpipe up`.
    pub pid: u32,
    pub bootstrap: String,
    pub mysql: MysqlTarget,
    pub started_at: chrono::DateTime<chrono::Utc>,
}

/// Ports the managed services listen on.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Ports {
    pub kafka: u16,
    pub kafka_controller: u16,
    pub mysql: u16,
    /// The dashboard's, when `serve.port` is not set (added later: absent in older files).
    #[serde(default)]
    pub dashboard: u16,
}

/// Paths inside one state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    pub root: PathBuf,
}

impl StateDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StateDir { root: root.into() }
    }
    pub fn appliance_file(&self) -> PathBuf {
        self.root.join("appliance.json")
    }
    pub fn credentials_file(&self) -> PathBuf {
        self.root.join("credentials.json")
    }
    pub fn ports_file(&self) -> PathBuf {
        self.root.join("ports.json")
    }
    /// Health of `up`'s stages (rewritten on every change; removed on exit).
    pub fn stages_file(&self) -> PathBuf {
        self.root.join("stages.json")
    }
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("up.lock")
    }
    /// A service's own directory (`kafka`, `mysql`), created or reset to 0700: it holds the
    /// ticks, the raw rejected lines and the database files, for its owner's eyes only.
    pub fn private_dir(&self, name: &str) -> std::io::Result<PathBuf> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let dir = self.root.join(name);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        Ok(dir)
    }
    pub fn kafka_dir(&self) -> PathBuf {
        self.root.join("kafka")
    }
    pub fn mysql_dir(&self) -> PathBuf {
        self.root.join("mysql")
    }
    pub fn mysql_socket(&self) -> PathBuf {
        self.mysql_dir().join("mysql.sock")
    }

    /// The credentials, generated on first use and kept readable by the owner only.
    pub fn credentials(&self) -> Result<Credentials> {
        let path = self.credentials_file();
        let mut credentials = if path.exists() {
            read_json(&path)?
        } else {
            Credentials {
                root_password: generate_password(),
                app_password: generate_password(),
                bi_password: generate_password(),
                kafka_admin_password: String::new(),
                kafka_app_password: String::new(),
                kafka_reader_password: String::new(),
                kafka_controller_password: String::new(),
            }
        };
        if credentials.complete() || !path.exists() {
            write_private_json(&path, &credentials)?;
        }
        Ok(credentials)
    }

    /// Writes the Kafka client settings of each login for Kafka's tools and Spark.
    pub fn write_client_properties(
        &self,
        bootstrap: &str,
        credentials: &Credentials,
    ) -> Result<()> {
        for (file, login) in [
            ("client.properties", credentials.kafka_reader()),
            ("client-app.properties", credentials.kafka_app()),
            ("client-admin.properties", credentials.kafka_admin()),
        ] {
            let text = format!(
                "# {} on this appliance's broker (generated by tickpipe up)\n\
                 bootstrap.servers={bootstrap}\n{}",
                login.username,
                login.client_properties()
            );
            write_private(&self.root.join(file), text.as_bytes())?;
        }
        Ok(())
    }

    pub fn read_appliance(&self) -> Result<Option<ApplianceInfo>> {
        let path = self.appliance_file();
        if !path.exists() {
            return Ok(None);
        }
        read_json(&path).map(Some)
    }

    pub fn write_appliance(&self, info: &ApplianceInfo) -> Result<()> {
        write_private_json(&self.appliance_file(), info)
    }

    pub fn read_ports(&self) -> Ports {
        read_json(&self.ports_file()).unwrap_or_default()
    }

    pub fn write_ports(&self, ports: &Ports) -> Result<()> {
        write_private_json(&self.ports_file(), ports)
    }
}

/// Where a stage run on its own (`produce`, `process`, `status`) finds the broker and the
/// database: the configured external services, or those of the appliance running on the
/// state directory.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// The broker as the stages' login (produce and consume).
    pub broker: Endpoint,
    /// The broker as its administrator (creates topics): the bench's login.
    pub broker_admin: Endpoint,
    /// The database as the app user.
    pub mysql: MysqlTarget,
    /// The database as the read-only BI user (the dashboard needs no more); in external mode,
    /// the URL's user.
    pub reader: MysqlTarget,
}

impl Endpoints {
    pub fn resolve(config: &Config) -> Result<Self> {
        let state = StateDir::new(&config.state_dir);
        let running = state.read_appliance()?;
        let missing = || {
            anyhow::anyhow!(
                "no appliance is running on state directory {} (start `tickpipe up`, pass \
                 --state-dir, or configure external services)",
                config.state_dir.display()
            )
        };
        let (broker, broker_admin) = match config.broker.mode {
            Mode::External => {
                let endpoint = config.broker.external_endpoint();
                (endpoint.clone(), endpoint)
            }
            Mode::Managed | Mode::Container => {
                let bootstrap = &running.as_ref().ok_or_else(missing)?.bootstrap;
                let credentials = state.credentials()?;
                let at = |login: Login| Endpoint {
                    bootstrap: bootstrap.clone(),
                    login: Some(login),
                };
                (at(credentials.kafka_app()), at(credentials.kafka_admin()))
            }
        };
        let (mysql, reader) = match config.mysql.mode {
            Mode::External => {
                let target = MysqlTarget::from_url(&config.mysql.url)?;
                (target.clone(), target)
            }
            Mode::Managed | Mode::Container => {
                let target = running.as_ref().ok_or_else(missing)?.mysql.clone();
                let credentials = state.credentials()?;
                (
                    target.as_user(APP_USER, &credentials.app_password),
                    target.as_user(BI_USER, &credentials.bi_password),
                )
            }
        };
        Ok(Endpoints {
            broker,
            broker_admin,
            mysql,
            reader,
        })
    }
}

fn generate_password() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid", path.display()))
}

/// Writes a JSON file only its owner can read, replacing any previous one atomically.
fn write_private_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    write_private(path, serde_json::to_string_pretty(value)?.as_bytes())
}

/// Writes a file only its owner can read, replacing any previous one atomically.
pub fn write_private(path: &Path, content: &[u8]) -> Result<()> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let _ = std::fs::remove_file(&partial);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    file.write_all(content)?;
    file.sync_all()?;
    std::fs::rename(&partial, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Checks that a Unix socket path fits the kernel's limit (108 bytes with the terminator).
pub fn check_socket_path(path: &Path) -> Result<()> {
    if path.as_os_str().len() > 107 {
        bail!(
            "the MySQL socket path {} is longer than 107 bytes; use a shorter state_dir",
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn credentials_are_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let first = state.credentials().unwrap();
        let second = state.credentials().unwrap();
        assert_eq!(first.app_password, second.app_password);
        assert_eq!(first.app_password.len(), 24);
        assert_ne!(first.app_password, first.bi_password);
        let mode = std::fs::metadata(state.credentials_file())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
