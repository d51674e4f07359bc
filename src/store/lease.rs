//! The processor's claim on a topic (`processor_leases`): one live processor consumes a topic
//! into a database.
//!
//! A claim is a row, so it survives a MariaDB restart, and only the app user may write the
//! table (the BI user cannot even read it), so no other account can take or block it. The
//! holder renews it every [`RENEW_EVERY`]; every batch checks it inside its own transaction and
//! holds the row shared until commit, so a processor that lost its claim (paused past expiry
//! and taken over) commits nothing more. A new processor takes a claim over when it has
//! expired, or at once when its holder was a process of this host (same boot, same pid
//! namespace) that is gone; never while a batch of the holder is in flight (the row is locked
//! then: the holder lives). A holder paused inside a batch loses its connection, and with it
//! the lock, after [`IDLE_TRANSACTION`] (the server ends transactions left idle that long).

use std::time::Duration;

use anyhow::{Context, bail};
use rand::Rng;
use sqlx::{MySqlConnection, Row};

use super::Store;
use super::error::{StoreError, server_error_number, timed};
use crate::proc_stat;

/// How long a claim lasts unless renewed.
pub const CLAIM_TTL: Duration = Duration::from_secs(15);
/// How often the holder renews it.
pub const RENEW_EVERY: Duration = Duration::from_secs(5);
/// tickpipe's sessions are ended by the server when a transaction of theirs sits idle this
/// long (`idle_transaction_timeout`): a paused processor holds no lock beyond it.
pub const IDLE_TRANSACTION: Duration = CLAIM_TTL;

/// A processor's claim on a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub topic: String,
    /// Random per claim: a restarted processor (even in the same process) is a new holder.
    pub owner: String,
}

/// This process, as a claim records it: a host, its boot, a pid namespace, a pid and the
/// pid's start time (which tells a reused pid from the holder).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Holder {
    host: String,
    boot_id: String,
    pid_ns: String,
    pid: u32,
    started: u64,
}

impl Holder {
    fn this_process() -> Holder {
        let pid = std::process::id();
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .map(|text| text.trim().to_string())
                .unwrap_or_default()
        };
        Holder {
            host: read("/proc/sys/kernel/hostname"),
            boot_id: read("/proc/sys/kernel/random/boot_id"),
            pid_ns: std::fs::read_link("/proc/self/ns/pid")
                .map(|ns| ns.display().to_string())
                .unwrap_or_default(),
            pid,
            started: proc_stat::start_ticks(pid).unwrap_or(0),
        }
    }

    /// Whether the process a claim names is known to be gone: it ran on this host, and either
    /// the host has booted since, or (in this pid namespace) no process with its pid and start
    /// time runs now. A holder elsewhere, or one this process cannot see, is never known to be
    /// gone: its claim expires instead.
    fn is_gone(&self) -> bool {
        let here = Holder::this_process();
        if self.host.is_empty() || self.host != here.host || here.boot_id.is_empty() {
            return false;
        }
        if self.boot_id != here.boot_id {
            return true;
        }
        if self.pid_ns.is_empty() || self.pid_ns != here.pid_ns || here.started == 0 {
            return false;
        }
        // A claim of this very process is a processor run that ended without releasing it
        // (a panic): the stage supervisor runs one processor at a time.
        if self.pid == here.pid {
            return self.started == here.started
                || proc_stat::start_ticks(self.pid) != Some(self.started);
        }
        match std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(_) => false,
            Ok(_) => {
                proc_stat::start_ticks(self.pid).is_some_and(|started| started != self.started)
            }
        }
    }
}

impl Store {
    /// Claims `topic` for this processor, or says who holds it.
    pub async fn claim(&self, topic: &str) -> anyhow::Result<Claim> {
        let owner = format!("{:032x}", rand::rng().random::<u128>());
        let me = Holder::this_process();
        let mut tx = self.pool.begin().await.context("connecting to MySQL")?;
        // NOWAIT: a claim row locked by a batch in flight means its holder lives.
        let held = sqlx::query(
            "SELECT Owner, Host, Boot_Id, Pid_Ns, Pid, Pid_Started, \
                    Expires_At > UTC_TIMESTAMP(6), CAST(Expires_At AS CHAR) \
             FROM processor_leases WHERE Topic = ? FOR UPDATE NOWAIT",
        )
        .bind(topic)
        .fetch_optional(&mut *tx)
        .await;
        let held = match held {
            Err(e) if server_error_number(&e) == Some(LOCK_WAIT_TIMEOUT) => {
                bail!(
                    "another processor is consuming {topic} into this database (it is \
                     committing a batch right now)"
                );
            }
            other => other.context("reading the processor claim")?,
        };
        if let Some(row) = held {
            let holder = Holder {
                host: row.try_get(1)?,
                boot_id: row.try_get(2)?,
                pid_ns: row.try_get(3)?,
                pid: row.try_get(4)?,
                started: row.try_get(5)?,
            };
            let live: bool = row.try_get(6)?;
            if live && !holder.is_gone() {
                let until: String = row.try_get(7)?;
                bail!(
                    "another processor (pid {} on {}) is consuming {topic} into this database; \
                     its claim runs until {until} UTC unless it renews it",
                    holder.pid,
                    holder.host,
                );
            }
        }
        sqlx::query(
            "INSERT INTO processor_leases \
             (Topic, Owner, Host, Boot_Id, Pid_Ns, Pid, Pid_Started, Expires_At) \
             VALUES (?, ?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND) \
             ON DUPLICATE KEY UPDATE Owner = VALUES(Owner), Host = VALUES(Host), \
             Boot_Id = VALUES(Boot_Id), Pid_Ns = VALUES(Pid_Ns), Pid = VALUES(Pid), \
             Pid_Started = VALUES(Pid_Started), Expires_At = VALUES(Expires_At)",
        )
        .bind(topic)
        .bind(&owner)
        .bind(&me.host)
        .bind(&me.boot_id)
        .bind(&me.pid_ns)
        .bind(me.pid)
        .bind(me.started)
        .bind(CLAIM_TTL.as_micros() as i64)
        .execute(&mut *tx)
        .await
        .context("claiming the topic")?;
        tx.commit().await.context("claiming the topic")?;
        Ok(Claim {
            topic: topic.to_string(),
            owner,
        })
    }

    /// Extends the claim; `Ok(false)` when another processor holds it now.
    pub async fn renew(&self, claim: &Claim) -> Result<bool, StoreError> {
        let renewed = timed(
            "renewing the processor claim",
            self.statement_timeout,
            sqlx::query(
                "UPDATE processor_leases \
                 SET Expires_At = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND \
                 WHERE Topic = ? AND Owner = ?",
            )
            .bind(CLAIM_TTL.as_micros() as i64)
            .bind(&claim.topic)
            .bind(&claim.owner)
            .execute(&self.pool),
        )
        .await?;
        Ok(renewed.rows_affected() == 1)
    }

    /// Gives the claim up, so the next processor need not wait for it to expire (a MySQL that
    /// does not answer within the statement deadline is left to let it expire).
    pub async fn release(&self, claim: &Claim) {
        let released = timed(
            "releasing the processor claim",
            self.statement_timeout,
            sqlx::query("DELETE FROM processor_leases WHERE Topic = ? AND Owner = ?")
                .bind(&claim.topic)
                .bind(&claim.owner)
                .execute(&self.pool),
        )
        .await;
        if let Err(e) = released {
            tracing::warn!(
                topic = claim.topic,
                "could not release the processor claim ({e}); it expires in {CLAIM_TTL:?}"
            );
        }
    }
}

/// ER_LOCK_WAIT_TIMEOUT, which `NOWAIT` also answers with.
const LOCK_WAIT_TIMEOUT: u16 = 1205;

/// Inside a batch's transaction: the claim is still this processor's, and stays so until the
/// transaction ends (the row is held shared; a takeover waits for the commit).
pub(super) async fn check(
    tx: &mut MySqlConnection,
    claim: &Claim,
    deadline: Duration,
) -> Result<(), StoreError> {
    let owner: Option<String> = timed(
        "checking the processor claim",
        deadline,
        sqlx::query_scalar("SELECT Owner FROM processor_leases WHERE Topic = ? LOCK IN SHARE MODE")
            .bind(&claim.topic)
            .fetch_optional(&mut *tx),
    )
    .await?;
    if owner.as_deref() == Some(claim.owner.as_str()) {
        Ok(())
    } else {
        Err(StoreError::ClaimLost {
            topic: claim.topic.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_on_this_host_is_gone_when_its_process_is() {
        let me = Holder::this_process();
        assert!(me.started > 0, "start time read from /proc");
        // A live process of this host (pid 1) is not gone; one with another start time is.
        let init = Holder {
            pid: 1,
            started: proc_stat::start_ticks(1).unwrap(),
            ..me.clone()
        };
        assert!(!init.is_gone());
        assert!(
            Holder {
                started: init.started + 1,
                ..init.clone()
            }
            .is_gone()
        );
        // This very process: a run that ended without releasing.
        assert!(me.is_gone());
        // A pid that does not exist here is gone; one of an earlier boot too.
        assert!(
            Holder {
                pid: u32::MAX >> 1,
                ..init.clone()
            }
            .is_gone()
        );
        assert!(
            Holder {
                boot_id: "an-earlier-boot".into(),
                ..init.clone()
            }
            .is_gone()
        );
        // A holder in another pid namespace cannot be checked from here: not gone.
        assert!(
            !Holder {
                pid: u32::MAX >> 1,
                pid_ns: "pid:[1]".into(),
                ..init.clone()
            }
            .is_gone()
        );
        // Another host: never known to be gone.
        assert!(
            !Holder {
                host: "elsewhere".into(),
                pid: 999_999,
                ..me
            }
            .is_gone()
        );
    }
}
