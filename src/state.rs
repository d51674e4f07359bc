//! The state directory: what `up` leaves for everyone else to find the running appliance
//! (`appliance.json`), the generated database passwords (`credentials.json`, mode 0600), the
//! ports managed services took, and the endpoints a stage connects to.
//!
//! ```text
//! <state_dir>/appliance.json    endpoints of the running appliance (removed when `up` exits)
//! <state_dir>/credentials.json  root, app and BI passwords (0600)
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

use crate::config::{Config, Mode};
use crate::store::MysqlTarget;

pub const APP_USER: &str = "tickpipe_app";
pub const BI_USER: &str = "tickpipe_bi";

/// Generated passwords of the managed database's accounts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credentials {
    pub root_password: String,
    pub app_password: String,
    pub bi_password: String,
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
        if path.exists() {
            return read_json(&path);
        }
        let credentials = Credentials {
            root_password: generate_password(),
            app_password: generate_password(),
            bi_password: generate_password(),
        };
        write_private_json(&path, &credentials)?;
        Ok(credentials)
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
    pub bootstrap: String,
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
        let bootstrap = match config.broker.mode {
            Mode::External => config.broker.bootstrap.clone(),
            Mode::Managed => running.as_ref().ok_or_else(missing)?.bootstrap.clone(),
        };
        let (mysql, reader) = match config.mysql.mode {
            Mode::External => {
                let target = MysqlTarget::from_url(&config.mysql.url)?;
                (target.clone(), target)
            }
            Mode::Managed => {
                let target = running.as_ref().ok_or_else(missing)?.mysql.clone();
                let credentials = state.credentials()?;
                (
                    target.as_user(APP_USER, &credentials.app_password),
                    target.as_user(BI_USER, &credentials.bi_password),
                )
            }
        };
        Ok(Endpoints {
            bootstrap,
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

/// Writes a file only its owner can read, replacing any previous one atomically.
fn write_private_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let partial = path.with_extension("json.partial");
    let _ = std::fs::remove_file(&partial);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    file.write_all(serde_json::to_string_pretty(value)?.as_bytes())?;
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
