//! Files for BI tools that carry the running appliance's address, written by `up` into
//! `<state_dir>/bi/` (the committed `powerbi/` and `grafana/` templates stay as documentation):
//! a Power BI data source file, a Grafana data source, and an ODBC DSN for the MariaDB driver.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::state::{StateDir, write_private};
use crate::store::MysqlTarget;

/// The DSN name in `odbc.ini`.
pub const ODBC_DSN: &str = "tickpipe";
/// The MariaDB ODBC driver as Debian's `odbc-mariadb` registers it (`/etc/odbcinst.ini`).
const ODBC_DRIVER: &str = "MariaDB Unicode";

/// The files written, for the banner.
pub struct BiFiles {
    pub pbids: PathBuf,
    pub grafana: PathBuf,
    pub odbc: PathBuf,
}

/// Writes the three files for `reader` (the read-only BI user) at its TCP address; each is
/// readable by its owner only (the Grafana file holds the password).
pub fn write(state: &StateDir, reader: &MysqlTarget) -> Result<BiFiles> {
    let dir = state.root.join("bi");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let host = if reader.host == "localhost" {
        "127.0.0.1"
    } else {
        reader.host.as_str()
    };
    let server = format!("{host}:{}", reader.port);
    let files = BiFiles {
        pbids: dir.join("tickpipe.pbids"),
        grafana: dir.join("grafana-datasource.yaml"),
        odbc: dir.join("odbc.ini"),
    };
    // Power BI's MySQL connector (the one data source files support; Import). For DirectQuery,
    // the MariaDB connector takes the same server and database.
    let pbids = serde_json::json!({
        "version": "0.1",
        "connections": [{
            "details": {
                "protocol": "mysql",
                "address": { "server": server, "database": reader.database }
            },
            "options": {},
            "mode": "Import"
        }]
    });
    write_private(
        &files.pbids,
        serde_json::to_string_pretty(&pbids)?.as_bytes(),
    )?;
    // YAML by hand: every value is quoted JSON-style, which YAML reads as the same string.
    let quoted = |value: &str| serde_json::to_string(value).expect("a string serializes");
    let grafana = format!(
        "# Grafana data source for this appliance (written by tickpipe up): put it in Grafana's\n\
         # provisioning/datasources/ with grafana/provisioning/dashboards from the repository.\n\
         apiVersion: 1\n\
         datasources:\n  \
           - name: tickpipe\n    \
             uid: tickpipe\n    \
             type: mysql\n    \
             access: proxy\n    \
             url: {url}\n    \
             user: {user}\n    \
             isDefault: true\n    \
             editable: false\n    \
             jsonData:\n      \
               database: {database}\n      \
               timezone: \"+00:00\"\n      \
               maxOpenConns: 10\n    \
             secureJsonData:\n      \
               password: {password}\n",
        url = quoted(&server),
        user = quoted(&reader.user),
        database = quoted(&reader.database),
        password = quoted(&reader.password),
    );
    write_private(&files.grafana, grafana.as_bytes())?;
    let odbc = format!(
        "; ODBC DSN for this appliance (written by tickpipe up); isql asks no password: give it\n\
         ; from a file, not on a shared machine's command line.\n\
         ;   ODBCINI={} isql {ODBC_DSN} {}\n\
         [{ODBC_DSN}]\n\
         Driver = {ODBC_DRIVER}\n\
         Server = {host}\n\
         Port = {}\n\
         Database = {}\n\
         CHARSET = utf8mb4\n",
        files.odbc.display(),
        reader.user,
        reader.port,
        reader.database,
    );
    write_private(&files.odbc, odbc.as_bytes())?;
    Ok(files)
}
