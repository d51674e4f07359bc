//! Processors sharing a pipeline's work (`processors`, `processor_leases`): each partition of
//! its topics, and its rollup stage, is a [`Unit`] that one live processor holds at a time.
//!
//! A processor joins as a [`Member`] (a row it renews every [`RENEW_EVERY`]) and takes units
//! whose holder is not a live member; how many it should hold is `process::sharing`'s
//! business. Rows, not named locks: they survive a MariaDB restart, and only the app user may
//! write them (the BI user cannot even read them), so no other account can take or block work.
//! Every batch checks, inside its own transaction, that its units are still this member's and
//! holds their rows shared until commit, so a processor that lost a unit commits nothing more
//! to it; a taker locks the row without waiting (a batch in flight means its holder lives).
//! Which members are dead is the caller's judgement ([`Store::sharing`] reports each member's
//! expiry and whether it was a process of this host that is gone); a member taken for dead has
//! its row removed (only as read: one that renewed meanwhile stays), and only the units of a
//! member whose row is gone can be taken, so a member either renews or learns it was taken for
//! dead, never both. A member paused inside a batch loses its connection, and with it the lock,
//! after [`IDLE_TRANSACTION`] (MariaDB ends transactions left idle that long).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use chrono::NaiveDateTime;
use rand::Rng;
use sqlx::Row;

use super::Store;
use super::error::{StoreError, timed};
use crate::proc_stat;

/// How long a member's row lasts unless renewed.
pub const LEASE_TTL: Duration = Duration::from_secs(15);
/// How often a member renews itself (and looks at how the work is shared).
pub const RENEW_EVERY: Duration = Duration::from_secs(1);
/// tickpipe's sessions are ended by the server when a transaction of theirs sits idle this
/// long (`idle_transaction_timeout`): a paused processor holds no lock beyond it.
pub const IDLE_TRANSACTION: Duration = LEASE_TTL;

/// A unit of a pipeline's work, held by one live processor at a time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Unit {
    /// A partition of the ticks or the dead-letter topic: its fetch loop and its batches.
    Partition { topic: String, partition: i32 },
    /// The rollup stage: recomputing stale rollups.
    Rollups,
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Kafka topic names have no ':'.
            Unit::Partition { topic, partition } => write!(f, "{topic}:{partition}"),
            Unit::Rollups => f.write_str("rollups"),
        }
    }
}

impl FromStr for Unit {
    type Err = String;
    fn from_str(key: &str) -> Result<Unit, String> {
        if key == "rollups" {
            return Ok(Unit::Rollups);
        }
        let (topic, partition) = key
            .rsplit_once(':')
            .ok_or_else(|| format!("not a unit of work: {key:?}"))?;
        let partition = partition
            .parse()
            .map_err(|_| format!("not a unit of work: {key:?}"))?;
        Ok(Unit::Partition {
            topic: topic.to_string(),
            partition,
        })
    }
}

/// What a member takes of the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Its share of the partitions, and the rollup stage when free.
    Shared,
    /// Every unit, or none (a drain, the Spark job's records on stdin).
    All,
    /// The rollup stage only, for rows other writers store.
    Rollups,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Shared => "shared",
            Role::All => "all",
            Role::Rollups => "rollups",
        }
    }
}

/// A processor run taking part in a pipeline's work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The pipeline: its ticks topic.
    pub pipeline: String,
    /// Random per run: a restarted processor (even in the same process) is a new member.
    pub owner: String,
    pub role: Role,
}

/// A live member holding units, as messages name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub owner: String,
    pub pid: u32,
    pub host: String,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} on {}", self.pid, self.host)
    }
}

/// How a pipeline's work is shared right now, as one member reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sharing {
    /// The live members taking shares of the partitions ([`Role::Shared`]), by owner.
    pub sharers: Vec<String>,
    /// Units held by live members, and by whom; a unit not here is free.
    pub held: BTreeMap<Unit, Holder>,
    /// Free units whose lease still names a member that is not live (the row a take replaces).
    pub dead: BTreeMap<Unit, String>,
}

/// Another member's row as read, for the caller to judge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub owner: String,
    /// When its row expires (server time): unchanged between reads, it was not renewed.
    pub expires_at: NaiveDateTime,
    /// Its row has expired (by the server's clock).
    pub expired: bool,
    /// It was a process of this host, this boot and this pid namespace that is gone.
    pub gone: bool,
}

/// This process, as a member row records it: a host, its boot, a pid namespace, a pid and the
/// pid's start time (which tells a reused pid from the member).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Process {
    host: String,
    boot_id: String,
    pid_ns: String,
    pid: u32,
    started: u64,
}

impl Process {
    fn this_process() -> Process {
        let pid = std::process::id();
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .map(|text| text.trim().to_string())
                .unwrap_or_default()
        };
        Process {
            host: read("/proc/sys/kernel/hostname"),
            boot_id: read("/proc/sys/kernel/random/boot_id"),
            pid_ns: std::fs::read_link("/proc/self/ns/pid")
                .map(|ns| ns.display().to_string())
                .unwrap_or_default(),
            pid,
            started: proc_stat::start_ticks(pid).unwrap_or(0),
        }
    }

    /// Whether the process a member row names is known to be gone: it ran on this host, in this
    /// boot and this pid namespace, and no process with its pid and start time runs now. A
    /// process elsewhere (another boot id may be another machine of the same name), or one
    /// this process cannot see, is never known to be gone: its row expires instead.
    fn is_gone(&self, here: &Process, this_run_owner: bool) -> bool {
        if self.host.is_empty()
            || self.host != here.host
            || here.boot_id.is_empty()
            || self.boot_id != here.boot_id
            || self.pid_ns.is_empty()
            || self.pid_ns != here.pid_ns
            || here.started == 0
        {
            return false;
        }
        // Another member of this very process is a processor run that ended without leaving
        // (a panic): a process runs one processor at a time.
        if self.pid == here.pid {
            return !this_run_owner
                && (self.started == here.started
                    || proc_stat::start_ticks(self.pid) != Some(self.started));
        }
        // Signal 0 asks whether the pid exists, even one /proc hides (`hidepid`); a pid that
        // does may be another process that reused it, told by its start time.
        let pid = nix::unistd::Pid::from_raw(self.pid as i32);
        match nix::sys::signal::kill(pid, None) {
            Err(nix::errno::Errno::ESRCH) => true,
            _ => proc_stat::start_ticks(self.pid).is_some_and(|started| started != self.started),
        }
    }
}

impl Store {
    /// Joins `pipeline`'s processors; the member holds nothing yet.
    pub async fn join(&self, pipeline: &str, role: Role) -> anyhow::Result<Member> {
        let owner = format!("{:032x}", rand::rng().random::<u128>());
        let me = Process::this_process();
        sqlx::query(
            "INSERT INTO processors \
             (Owner, Pipeline, Role, Host, Boot_Id, Pid_Ns, Pid, Pid_Started, Expires_At) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND)",
        )
        .bind(&owner)
        .bind(pipeline)
        .bind(role.as_str())
        .bind(&me.host)
        .bind(&me.boot_id)
        .bind(&me.pid_ns)
        .bind(me.pid)
        .bind(me.started)
        .bind(LEASE_TTL.as_micros() as i64)
        .execute(&self.pool)
        .await
        .context("joining the pipeline's processors")?;
        Ok(Member {
            pipeline: pipeline.to_string(),
            owner,
            role,
        })
    }

    /// Keeps the member alive; `Ok(false)` when another member took it for dead (its row is
    /// gone, and its units may be another's now).
    pub async fn renew(&self, member: &Member) -> Result<bool, StoreError> {
        let renewed = timed(
            "renewing the processor's membership",
            self.statement_timeout,
            sqlx::query(
                "UPDATE processors SET Expires_At = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND \
                 WHERE Owner = ?",
            )
            .bind(LEASE_TTL.as_micros() as i64)
            .bind(&member.owner)
            .execute(&self.pool),
        )
        .await?;
        Ok(renewed.rows_affected() == 1)
    }

    /// Leaves the pipeline, giving every unit up, so others need not wait for the member to
    /// expire (a MySQL that does not answer within the statement deadline is left to let it).
    pub async fn leave(&self, member: &Member) {
        let left = async {
            let mut tx = timed(
                "leaving the processors",
                self.statement_timeout,
                self.pool.begin(),
            )
            .await?;
            for statement in [
                "DELETE FROM processor_leases WHERE Pipeline = ? AND Owner = ?",
                "DELETE FROM processors WHERE Pipeline = ? AND Owner = ?",
            ] {
                timed(
                    "leaving the processors",
                    self.statement_timeout,
                    sqlx::query(statement)
                        .bind(&member.pipeline)
                        .bind(&member.owner)
                        .execute(&mut *tx),
                )
                .await?;
            }
            timed(
                "leaving the processors",
                self.statement_timeout,
                tx.commit(),
            )
            .await
        }
        .await;
        if let Err(e) = left {
            tracing::warn!(
                pipeline = member.pipeline,
                "could not give the processor's work up ({e}); it expires in {LEASE_TTL:?}"
            );
        }
    }

    /// Who is alive and holds what, with `dead` judging the other members: those it takes for
    /// dead are removed (only as read: a member that renewed meanwhile stays alive), and their
    /// units are free.
    pub async fn sharing(
        &self,
        member: &Member,
        mut dead: impl FnMut(&Seen) -> bool,
    ) -> Result<Sharing, StoreError> {
        let deadline = self.statement_timeout;
        let rows = timed(
            "reading the pipeline's processors",
            deadline,
            sqlx::query(
                "SELECT Owner, Role, Host, Boot_Id, Pid_Ns, Pid, Pid_Started, \
                        Expires_At <= UTC_TIMESTAMP(6), Expires_At \
                 FROM processors WHERE Pipeline = ? ORDER BY Owner",
            )
            .bind(&member.pipeline)
            .fetch_all(&self.pool),
        )
        .await?;
        let here = Process::this_process();
        let mut live = BTreeMap::new();
        let mut sharers = Vec::new();
        for row in rows {
            let owner: String = row.try_get(0)?;
            let role: String = row.try_get(1)?;
            let process = Process {
                host: row.try_get(2)?,
                boot_id: row.try_get(3)?,
                pid_ns: row.try_get(4)?,
                pid: row.try_get(5)?,
                started: row.try_get(6)?,
            };
            let seen = Seen {
                gone: process.is_gone(&here, owner == member.owner),
                owner,
                expired: row.try_get(7)?,
                expires_at: row.try_get(8)?,
            };
            if seen.owner != member.owner && dead(&seen) {
                let removed = timed(
                    "removing a dead processor",
                    deadline,
                    sqlx::query("DELETE FROM processors WHERE Owner = ? AND Expires_At = ?")
                        .bind(&seen.owner)
                        .bind(seen.expires_at)
                        .execute(&self.pool),
                )
                .await?;
                if removed.rows_affected() == 1 {
                    tracing::warn!(
                        "processor pid {} on {} taken for dead ({}): its work is free",
                        process.pid,
                        process.host,
                        if seen.gone {
                            "its process is gone"
                        } else {
                            "it stopped renewing"
                        }
                    );
                    continue;
                }
            }
            if role == Role::Shared.as_str() {
                sharers.push(seen.owner.clone());
            }
            let holder = Holder {
                owner: seen.owner.clone(),
                pid: process.pid,
                host: process.host,
            };
            live.insert(seen.owner, holder);
        }
        let leases = timed(
            "reading the pipeline's leases",
            deadline,
            sqlx::query("SELECT Unit, Owner FROM processor_leases WHERE Pipeline = ?")
                .bind(&member.pipeline)
                .fetch_all(&self.pool),
        )
        .await?;
        let (mut held, mut dead) = (BTreeMap::new(), BTreeMap::new());
        for row in leases {
            let (unit, owner): (String, String) = (row.try_get(0)?, row.try_get(1)?);
            let Ok(unit) = unit.parse::<Unit>() else {
                continue;
            };
            match live.get(&owner) {
                Some(holder) => {
                    held.insert(unit, holder.clone());
                }
                None => {
                    dead.insert(unit, owner);
                }
            }
        }
        Ok(Sharing {
            sharers,
            held,
            dead,
        })
    }

    /// Takes `unit` unless a live member holds it: `Ok(false)` when its lease is not held by
    /// `dead_owner` (`None`: no lease) any more, when that member's row is there (it joined
    /// after the look, or was not removed), or when a batch of its holder is in flight.
    pub async fn take(
        &self,
        member: &Member,
        unit: &Unit,
        dead_owner: Option<&str>,
    ) -> Result<bool, StoreError> {
        let deadline = self.statement_timeout;
        let key = unit.to_string();
        let mut tx = timed("taking a unit of work", deadline, self.pool.begin()).await?;
        // NOWAIT: a lease row locked by a batch in flight means its holder lives.
        let owner: Result<Option<String>, StoreError> = timed(
            "taking a unit of work",
            deadline,
            sqlx::query_scalar(
                "SELECT Owner FROM processor_leases \
                 WHERE Pipeline = ? AND Unit = ? FOR UPDATE NOWAIT",
            )
            .bind(&member.pipeline)
            .bind(&key)
            .fetch_optional(&mut *tx),
        )
        .await;
        let owner = match owner {
            Err(error @ StoreError::Transient { .. })
                if error.number().is_some_and(|n| LOCK_NOT_TAKEN.contains(&n)) =>
            {
                return Ok(false);
            }
            other => other?,
        };
        if owner.as_deref() != dead_owner {
            return Ok(false);
        }
        if let Some(dead_owner) = dead_owner {
            let alive = timed(
                "taking a unit of work",
                deadline,
                sqlx::query("SELECT 1 FROM processors WHERE Owner = ? FOR UPDATE")
                    .bind(dead_owner)
                    .fetch_optional(&mut *tx),
            )
            .await?;
            if alive.is_some() {
                return Ok(false);
            }
        }
        timed(
            "taking a unit of work",
            deadline,
            sqlx::query(
                "INSERT INTO processor_leases (Pipeline, Unit, Owner) VALUES (?, ?, ?) \
                 ON DUPLICATE KEY UPDATE Owner = VALUES(Owner)",
            )
            .bind(&member.pipeline)
            .bind(&key)
            .bind(&member.owner)
            .execute(&mut *tx),
        )
        .await?;
        timed("taking a unit of work", deadline, tx.commit()).await?;
        Ok(true)
    }

    /// Gives `units` up (after their last batch committed): free for others at once.
    pub async fn give_up(&self, member: &Member, units: &[Unit]) -> Result<(), StoreError> {
        for unit in units {
            timed(
                "giving a unit of work up",
                self.statement_timeout,
                sqlx::query(
                    "DELETE FROM processor_leases WHERE Pipeline = ? AND Unit = ? AND Owner = ?",
                )
                .bind(&member.pipeline)
                .bind(unit.to_string())
                .bind(&member.owner)
                .execute(&self.pool),
            )
            .await?;
        }
        Ok(())
    }
}

/// A processor of a pipeline and what it holds, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Processor {
    pub pid: u32,
    pub host: String,
    /// `shared`, `all` (a drain, the Spark job's records) or `rollups`.
    pub role: String,
    /// Its row has not expired (it renews itself every second).
    pub live: bool,
    /// Its units of work: `<topic>:<partition>` and `rollups`.
    pub holds: Vec<String>,
}

impl Store {
    /// The processors of `pipeline` and what each holds.
    pub async fn processors(&self, pipeline: &str) -> Result<Vec<Processor>, StoreError> {
        let rows = timed(
            "reading the pipeline's processors",
            self.statement_timeout,
            sqlx::query(
                "SELECT p.Pid, p.Host, CAST(p.Role AS CHAR), p.Expires_At > UTC_TIMESTAMP(6), \
                        GROUP_CONCAT(l.Unit ORDER BY l.Unit SEPARATOR ' ') \
                 FROM processors p LEFT JOIN processor_leases l \
                   ON l.Pipeline = p.Pipeline AND l.Owner = p.Owner \
                 WHERE p.Pipeline = ? GROUP BY p.Owner ORDER BY p.Pid",
            )
            .bind(pipeline)
            .fetch_all(&self.pool),
        )
        .await?;
        rows.iter()
            .map(|row| {
                let holds: Option<String> = row.try_get(4)?;
                Ok(Processor {
                    pid: row.try_get(0)?,
                    host: row.try_get(1)?,
                    role: row.try_get(2)?,
                    live: row.try_get(3)?,
                    holds: holds
                        .map(|h| h.split(' ').map(str::to_string).collect())
                        .unwrap_or_default(),
                })
            })
            .collect()
    }
}

/// What `NOWAIT` answers on a locked row: ER_LOCK_WAIT_TIMEOUT (MariaDB) and
/// ER_LOCK_NOWAIT (MySQL 8).
const LOCK_NOT_TAKEN: [u16; 2] = [1205, 3572];

/// Inside a transaction: `units` are still `member`'s, and stay so until the transaction ends
/// (their rows are held shared; a taker fails to lock them until the commit).
pub(super) async fn check(
    conn: &mut mysql_async::Conn,
    member: &Member,
    units: impl IntoIterator<Item = Unit>,
    deadline: Duration,
) -> Result<(), StoreError> {
    let units = unit_names(units);
    if units.is_empty() {
        return Ok(());
    }
    let params = [&member.pipeline, &member.owner]
        .into_iter()
        .chain(&units)
        .map(|text| mysql_async::Value::from(text.as_str()))
        .collect();
    let held: Vec<String> = super::bulk::select(
        conn,
        "checking the processor's leases",
        deadline,
        &check_statement(units.len()),
        params,
    )
    .await?;
    all_held(units, &held)
}

fn unit_names(units: impl IntoIterator<Item = Unit>) -> Vec<String> {
    units.into_iter().map(|unit| unit.to_string()).collect()
}

/// The lease check's statement for `units` units: pipeline, owner, then each unit bound.
fn check_statement(units: usize) -> String {
    format!(
        "SELECT Unit FROM processor_leases WHERE Pipeline = ? AND Owner = ? \
         AND Unit IN ({}) LOCK IN SHARE MODE",
        vec!["?"; units].join(", ")
    )
}

fn all_held(units: Vec<String>, held: &[String]) -> Result<(), StoreError> {
    match units.into_iter().find(|unit| !held.contains(unit)) {
        None => Ok(()),
        Some(lost) => Err(StoreError::LeaseLost { what: lost }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_named_in_their_rows_and_read_back() {
        for unit in [
            Unit::Rollups,
            Unit::Partition {
                topic: "stock_ticks.dlq".into(),
                partition: 11,
            },
        ] {
            assert_eq!(unit.to_string().parse::<Unit>(), Ok(unit));
        }
        assert_eq!("ticks:3".parse::<Unit>().unwrap().to_string(), "ticks:3");
        assert!("ticks".parse::<Unit>().is_err());
        assert!("ticks:x".parse::<Unit>().is_err());
    }

    #[test]
    fn a_holder_on_this_host_is_gone_when_its_process_is() {
        let me = Process::this_process();
        let here = me.clone();
        assert!(me.started > 0, "start time read from /proc");
        // A live process of this host (pid 1) is not gone; one with another start time is.
        let init = Process {
            pid: 1,
            started: proc_stat::start_ticks(1).unwrap(),
            ..me.clone()
        };
        assert!(!init.is_gone(&here, false));
        assert!(
            Process {
                started: init.started + 1,
                ..init.clone()
            }
            .is_gone(&here, false)
        );
        // Another run of this very process: one that ended without leaving; not this run.
        assert!(me.is_gone(&here, false));
        assert!(!me.is_gone(&here, true));
        // A pid that does not exist here is gone; one of another boot id is not known to be
        // (it may be another machine of the same name).
        assert!(
            Process {
                pid: u32::MAX >> 1,
                ..init.clone()
            }
            .is_gone(&here, false)
        );
        assert!(
            !Process {
                boot_id: "an-earlier-boot".into(),
                ..init.clone()
            }
            .is_gone(&here, false)
        );
        // A holder in another pid namespace cannot be checked from here: not gone.
        assert!(
            !Process {
                pid: u32::MAX >> 1,
                pid_ns: "pid:[1]".into(),
                ..init.clone()
            }
            .is_gone(&here, false)
        );
        // Another host: never known to be gone.
        assert!(
            !Process {
                host: "elsewhere".into(),
                pid: 999_999,
                ..me
            }
            .is_gone(&here, false)
        );
    }
}
