//! `up --json`: the ready line, every endpoint and credential of the running appliance as one
//! JSON object on stdout (what [`crate::appliance::Appliance`] reads).

use std::io::Write;

use anyhow::{Context, Result};

use crate::appliance::{Account, KafkaReady, MysqlReady, Ready};
use crate::broker::Broker;
use crate::config::Config;
use crate::state::{BI_USER, StateDir};
use crate::store::MysqlTarget;

pub fn ready(
    config: &Config,
    state: &StateDir,
    broker: &Broker,
    mysql: &MysqlTarget,
    dashboard: Option<String>,
) -> Result<Ready> {
    let account = |user: &str, password: &str| Account {
        user: user.to_string(),
        password: password.to_string(),
    };
    let login = |login: crate::broker::Login| account(&login.username, &login.password);
    let managed_broker = config.broker.mode.is_ours();
    let managed_mysql = config.mysql.mode.is_ours();
    let credentials = state.credentials()?;
    let kafka = if managed_broker {
        KafkaReady {
            bootstrap: broker.bootstrap.clone(),
            sasl_mechanism: credentials.kafka_app().mechanism.kafka_name().to_string(),
            app: login(credentials.kafka_app()),
            reader: Some(login(credentials.kafka_reader())),
            admin: Some(login(credentials.kafka_admin())),
            ticks_topic: config.topics.ticks.clone(),
            dlq_topic: config.topics.dlq.clone(),
            client_properties: Some(state.root.join("client.properties")),
        }
    } else {
        KafkaReady {
            bootstrap: broker.bootstrap.clone(),
            sasl_mechanism: config.broker.sasl_mechanism.kafka_name().to_string(),
            app: account(&config.broker.username, &config.broker.password),
            reader: None,
            admin: None,
            ticks_topic: config.topics.ticks.clone(),
            dlq_topic: config.topics.dlq.clone(),
            client_properties: None,
        }
    };
    let host = if mysql.host == "localhost" {
        "127.0.0.1".to_string()
    } else {
        mysql.host.clone()
    };
    let encode = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let url = format!(
        "mysql://{}:{}@{host}:{}/{}",
        encode(&mysql.user),
        encode(&mysql.password),
        mysql.port,
        encode(&mysql.database)
    );
    let mysql = MysqlReady {
        host,
        port: mysql.port,
        socket: mysql.socket.clone(),
        database: mysql.database.clone(),
        app: account(&mysql.user, &mysql.password),
        bi: managed_mysql.then(|| account(BI_USER, &credentials.bi_password)),
        root: managed_mysql.then(|| account("root", &credentials.root_password)),
        url,
    };
    Ok(Ready {
        pid: std::process::id(),
        state_dir: state.root.clone(),
        kafka,
        mysql,
        dashboard,
    })
}

/// One line, flushed: a reader waiting on it goes on at once.
pub fn print(ready: &Ready) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, ready).context("printing the ready line")?;
    writeln!(out)
        .and_then(|()| out.flush())
        .context("printing the ready line")
}
