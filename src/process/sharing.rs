//! How processors share a pipeline's work: each shared member holds an even share of the
//! partitions (of the ticks and dead-letter topics together), and one of them the rollup stage.
//! Every [`RENEW_EVERY`] a member renews itself and looks at who is alive: a member that joined
//! makes the others give partitions up, a member that died leaves its partitions free for the
//! others to take. A change of what a member holds restarts its fetch loops and writers (after
//! their last batch committed), the way Kafka's eager rebalancing does.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Result, bail};
use chrono::NaiveDateTime;

use crate::broker::Broker;
use crate::store::{LEASE_TTL, Member, RENEW_EVERY, Role, Seen, Sharing, Store, StoreError, Unit};

/// What a member should change in what it holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Units to take (free now), with the dead member whose lease they carry, if any.
    pub take: Vec<(Unit, Option<String>)>,
    /// Units to give up (another member's share now).
    pub give_up: Vec<Unit>,
}

/// The share of `member` among `sharing`'s live sharers, given what it holds now: the
/// partitions are shared out evenly in the sharers' order (the first `n % members` get one
/// more), and the rollup stage goes to whoever takes it first. A member of [`Role::All`] is
/// refused when any unit is another's.
pub fn plan(
    member: &Member,
    holds: &BTreeSet<Unit>,
    partitions: &[Unit],
    sharing: &Sharing,
) -> Result<Plan> {
    let free = |unit: &Unit| !sharing.held.contains_key(unit) && !holds.contains(unit);
    let wanted: Vec<Unit> = match member.role {
        Role::Rollups | Role::All => {
            let wanted: Vec<Unit> = match member.role {
                Role::Rollups => vec![Unit::Rollups],
                _ => partitions.iter().cloned().chain([Unit::Rollups]).collect(),
            };
            for unit in &wanted {
                if let Some(holder) = sharing.held.get(unit)
                    && holder.owner != member.owner
                {
                    bail!(
                        "another processor ({holder}) is consuming {} into this database \
                         (it holds {unit}); stop it first{}",
                        member.pipeline,
                        if member.role == Role::All {
                            ", or run this one without --drain to share the partitions with it"
                        } else {
                            ""
                        }
                    );
                }
            }
            wanted
        }
        Role::Shared => {
            let Some(rank) = sharing.sharers.iter().position(|o| *o == member.owner) else {
                // Not among the live members (taken for dead): the renewal says so.
                return Ok(Plan::default());
            };
            let members = sharing.sharers.len();
            let quota = partitions.len() / members + usize::from(rank < partitions.len() % members);
            let mut mine: Vec<Unit> = partitions
                .iter()
                .filter(|unit| holds.contains(*unit))
                .cloned()
                .collect();
            if mine.len() > quota {
                return Ok(Plan {
                    take: Vec::new(),
                    give_up: mine.split_off(quota),
                });
            }
            // Members look for free partitions from different places: two starting together
            // seldom reach for the same one.
            let from = (rank * quota) % partitions.len().max(1);
            let more = partitions[from..]
                .iter()
                .chain(&partitions[..from])
                .filter(|unit| free(unit))
                .take(quota - mine.len())
                .cloned();
            mine.into_iter()
                .chain(more)
                .chain([Unit::Rollups])
                .collect()
        }
    };
    let take = wanted
        .into_iter()
        .filter(|unit| free(unit))
        .map(|unit| {
            // A lease whose owner is not live: the row the take replaces.
            let dead = sharing.dead.get(&unit).cloned();
            (unit, dead)
        })
        .collect();
    Ok(Plan {
        take,
        give_up: Vec::new(),
    })
}

/// Since when this member's own renewals succeed, every round: only a member in touch with
/// MySQL judges others by their expiry (a renewal that fails, or hangs behind a lock, ends it).
#[derive(Debug, Default)]
pub struct Health(Mutex<Renewals>);

#[derive(Debug, Default)]
struct Renewals {
    since: Option<Instant>,
    last: Option<Instant>,
}

/// A member whose last good renewal is older than this is not in touch.
const OUT_OF_TOUCH: std::time::Duration = std::time::Duration::from_secs(3);

impl Health {
    fn since(&self) -> Option<Instant> {
        let renewals = self.0.lock().unwrap_or_else(|e| e.into_inner());
        renewals
            .last
            .filter(|last| last.elapsed() <= OUT_OF_TOUCH)
            .and(renewals.since)
    }

    fn renewed(&self, ok: bool) {
        let mut renewals = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if !ok {
            renewals.since = None;
            return;
        }
        if renewals.last.is_none_or(|last| now - last > OUT_OF_TOUCH) {
            renewals.since = Some(now);
        }
        renewals.since.get_or_insert(now);
        renewals.last = Some(now);
    }
}

/// Renews `member` until another member takes it for dead (it stopped renewing for longer
/// than its lease, as others saw it). An unreachable MySQL only delays renewal (no batch can
/// commit then either, and no member that cannot renew judges others).
pub async fn keep_membership(store: &Store, member: &Member, health: &Health) -> StoreError {
    health.renewed(true);
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        match store.renew(member).await {
            Ok(true) => health.renewed(true),
            Ok(false) => {
                return StoreError::LeaseLost {
                    what: format!("this processor's work on {}", member.pipeline),
                };
            }
            Err(e) => {
                health.renewed(false);
                tracing::warn!("renewing the processor's membership: {e}; trying again");
            }
        }
    }
}

/// Whether `seen` is dead to a member that renews fine since `healthy_since`: its process of
/// this host is gone, or its row stayed expired, unrenewed, through a whole [`LEASE_TTL`] of
/// this member's own good renewals — so after an outage of MySQL, when every row has expired,
/// nobody is evicted: each renews within a second of MySQL's return. `expired` remembers since
/// when each expired row was seen so.
fn is_dead(
    seen: &Seen,
    healthy_since: Option<Instant>,
    expired: &mut HashMap<String, (NaiveDateTime, Instant)>,
    now: Instant,
) -> bool {
    if seen.gone {
        return true;
    }
    if !seen.expired {
        expired.remove(&seen.owner);
        return false;
    }
    let first = expired
        .entry(seen.owner.clone())
        .or_insert((seen.expires_at, now));
    if first.0 != seen.expires_at {
        // Renewed and expired again: watched anew.
        *first = (seen.expires_at, now);
    }
    healthy_since.is_some_and(|healthy| now.duration_since(first.1.max(healthy)) >= LEASE_TTL)
}

/// What changed in a round.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    /// Units to give up (another member's share now), once this member's batches stopped.
    GiveUp(Vec<Unit>),
    /// Units taken (or found this member's): its fetch loops and writers start over on them.
    Took,
}

/// One member's side of the sharing, kept from round to round.
pub struct Sharer<'a> {
    store: &'a Store,
    broker: &'a Broker,
    member: &'a Member,
    topics: [String; 2],
    /// Every partition of the topics, as units.
    pub partitions: Vec<Unit>,
    health: &'a Health,
    expired: HashMap<String, (NaiveDateTime, Instant)>,
}

impl<'a> Sharer<'a> {
    pub async fn new(
        store: &'a Store,
        broker: &'a Broker,
        member: &'a Member,
        topics: [String; 2],
        health: &'a Health,
    ) -> Result<Sharer<'a>> {
        let mut sharer = Sharer {
            store,
            broker,
            member,
            topics,
            partitions: Vec::new(),
            health,
            expired: HashMap::new(),
        };
        sharer.partitions = sharer.read_partitions().await?;
        Ok(sharer)
    }

    /// Every partition of the topics, interleaved (ticks:0, dlq:0, ticks:1, …): shares cut
    /// from this list hold some of each topic, not all the busy one.
    async fn read_partitions(&self) -> Result<Vec<Unit>> {
        let mut counts = Vec::new();
        for topic in &self.topics {
            counts.push((topic, self.broker.partition_count(topic).await?));
        }
        let most = counts.iter().map(|(_, n)| *n).max().unwrap_or(0);
        let mut partitions = Vec::new();
        for partition in 0..most {
            for (topic, count) in &counts {
                if partition < *count {
                    partitions.push(Unit::Partition {
                        topic: (*topic).clone(),
                        partition,
                    });
                }
            }
        }
        Ok(partitions)
    }

    /// Who is alive and holds what now (members found dead removed).
    pub async fn look(&mut self) -> Result<Sharing, StoreError> {
        let (healthy_since, now) = (self.health.since(), Instant::now());
        let expired = &mut self.expired;
        let mut seen_now = Vec::new();
        let sharing = self
            .store
            .sharing(self.member, |seen| {
                seen_now.push(seen.owner.clone());
                is_dead(seen, healthy_since, expired, now)
            })
            .await?;
        expired.retain(|owner, _| seen_now.contains(owner));
        Ok(sharing)
    }

    /// Takes what a plan says is free; whether anything was taken.
    pub async fn take(
        &self,
        holds: &mut BTreeSet<Unit>,
        units: Vec<(Unit, Option<String>)>,
    ) -> bool {
        let mut took = false;
        for (unit, dead_owner) in units {
            match self
                .store
                .take(self.member, &unit, dead_owner.as_deref())
                .await
            {
                Ok(true) => {
                    tracing::debug!(%unit, "took");
                    holds.insert(unit);
                    took = true;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(%unit, "taking a unit of work: {e}"),
            }
        }
        took
    }

    /// Waits until what the member holds should change, taking what it can take meanwhile.
    /// Fails when a unit it holds is another's now. A member of [`Role::All`] or
    /// [`Role::Rollups`] holds what it took at start: never returns.
    pub async fn until_change(&mut self, holds: &mut BTreeSet<Unit>) -> Result<Change, StoreError> {
        if self.member.role != Role::Shared {
            return std::future::pending().await;
        }
        loop {
            tokio::time::sleep(RENEW_EVERY).await;
            match self.read_partitions().await {
                Ok(partitions) => self.partitions = partitions,
                Err(e) => tracing::debug!("reading the topics' partitions: {e:#}; trying again"),
            }
            let sharing = match self.look().await {
                Ok(sharing) => sharing,
                Err(e) => {
                    tracing::debug!("reading how the work is shared: {e}; trying again");
                    continue;
                }
            };
            // What the table says this member holds is what it holds: a take that committed
            // though its answer was lost is this member's; a unit another holds is lost.
            let mine: BTreeSet<Unit> = sharing
                .held
                .iter()
                .filter(|(_, holder)| holder.owner == self.member.owner)
                .map(|(unit, _)| unit.clone())
                .collect();
            if let Some(lost) = holds.difference(&mine).next() {
                return Err(StoreError::LeaseLost {
                    what: lost.to_string(),
                });
            }
            if mine.len() > holds.len() {
                *holds = mine;
                return Ok(Change::Took);
            }
            let Ok(plan) = plan(self.member, holds, &self.partitions, &sharing) else {
                continue;
            };
            if !plan.give_up.is_empty() {
                return Ok(Change::GiveUp(plan.give_up));
            }
            if self.take(holds, plan.take).await {
                return Ok(Change::Took);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Holder;

    fn partitions(n: i32) -> Vec<Unit> {
        (0..n)
            .map(|partition| Unit::Partition {
                topic: "ticks".into(),
                partition,
            })
            .collect()
    }

    fn member(owner: &str, role: Role) -> Member {
        Member {
            pipeline: "ticks".into(),
            owner: owner.into(),
            role,
        }
    }

    fn holder(owner: &str) -> Holder {
        Holder {
            owner: owner.into(),
            pid: 1,
            host: "here".into(),
        }
    }

    /// Plays rounds of every member's plan (takes succeed, give-ups apply) until nothing
    /// changes; what each member holds then.
    fn settle(members: &[&str], units: &[Unit], mut sharing: Sharing) -> Vec<BTreeSet<Unit>> {
        sharing.sharers = members.iter().map(|m| m.to_string()).collect();
        for _round in 0..10 {
            let mut changed = false;
            for owner in members {
                let me = member(owner, Role::Shared);
                let holds: BTreeSet<Unit> = sharing
                    .held
                    .iter()
                    .filter(|(_, h)| h.owner == *owner)
                    .map(|(u, _)| u.clone())
                    .collect();
                let plan = plan(&me, &holds, units, &sharing).unwrap();
                for unit in plan.give_up {
                    sharing.held.remove(&unit);
                    changed = true;
                }
                for (unit, _) in plan.take {
                    sharing.held.insert(unit, holder(owner));
                    changed = true;
                }
            }
            if !changed {
                return members
                    .iter()
                    .map(|owner| {
                        sharing
                            .held
                            .iter()
                            .filter(|(_, h)| h.owner == *owner)
                            .map(|(u, _)| u.clone())
                            .collect()
                    })
                    .collect();
            }
        }
        panic!("the shares never settled");
    }

    #[test]
    fn partitions_are_shared_evenly_and_every_unit_has_one_holder() {
        let units = partitions(8);
        let shares = settle(&["a", "b", "c"], &units, Sharing::default());
        let counts: Vec<usize> = shares
            .iter()
            .map(|s| s.iter().filter(|u| **u != Unit::Rollups).count())
            .collect();
        assert_eq!(counts, [3, 3, 2]);
        let mut every: Vec<&Unit> = shares.iter().flatten().collect();
        every.sort();
        let mut expected: Vec<&Unit> = units.iter().chain([&Unit::Rollups]).collect();
        expected.sort();
        assert_eq!(every, expected, "each unit held once");
    }

    #[test]
    fn a_member_that_joins_gets_its_share_from_one_that_held_everything() {
        let units = partitions(6);
        let alone = settle(&["a"], &units, Sharing::default());
        assert_eq!(alone[0].len(), 7, "all six partitions and the rollups");
        let mut sharing = Sharing::default();
        for unit in &alone[0] {
            sharing.held.insert(unit.clone(), holder("a"));
        }
        let shares = settle(&["a", "b"], &units, sharing);
        assert!(shares[0].contains(&Unit::Rollups), "the rollups stay put");
        assert_eq!(shares[0].len() - 1, 3);
        assert_eq!(shares[1].len(), 3);
    }

    #[test]
    fn the_partitions_of_a_member_gone_are_taken_by_the_others() {
        let units = partitions(6);
        let three = settle(&["a", "b", "c"], &units, Sharing::default());
        // "a" died: its leases are no longer in `held` (their owner is not live).
        let mut sharing = Sharing::default();
        for (owner, share) in ["b", "c"].iter().zip(&three[1..]) {
            for unit in share {
                sharing.held.insert(unit.clone(), holder(owner));
            }
        }
        let two = settle(&["b", "c"], &units, sharing);
        assert_eq!(two[0].len() + two[1].len(), 7);
        assert!(two.iter().any(|s| s.contains(&Unit::Rollups)));
    }

    #[test]
    fn a_member_is_dead_once_its_row_stayed_expired_a_whole_lease_of_healthy_rounds() {
        let seen = |expires_at: &str, expired: bool, gone: bool| Seen {
            owner: "b".into(),
            expires_at: expires_at.parse().unwrap(),
            expired,
            gone,
        };
        let start = Instant::now();
        let at = |secs: u64| start + std::time::Duration::from_secs(secs);
        let mut expired = HashMap::new();
        // A process of this host that is gone: at once.
        assert!(is_dead(
            &seen("2026-01-01T10:00:00", false, true),
            None,
            &mut expired,
            at(0)
        ));
        // Expired: dead after a lease of watching, not before.
        let stale = seen("2026-01-01T10:00:00", true, false);
        assert!(!is_dead(&stale, Some(start), &mut expired, at(0)));
        assert!(!is_dead(&stale, Some(start), &mut expired, at(14)));
        assert!(is_dead(&stale, Some(start), &mut expired, at(15)));
        // Watched while this member could not renew (MySQL away): the watch starts when it can.
        let mut expired = HashMap::new();
        assert!(!is_dead(&stale, None, &mut expired, at(0)));
        assert!(!is_dead(&stale, None, &mut expired, at(20)));
        assert!(!is_dead(&stale, Some(at(20)), &mut expired, at(21)));
        assert!(is_dead(&stale, Some(at(20)), &mut expired, at(35)));
        // Renewed meanwhile (the row changed): alive, and watched anew when it expires again.
        let mut expired = HashMap::new();
        assert!(!is_dead(&stale, Some(start), &mut expired, at(0)));
        assert!(!is_dead(
            &seen("2026-01-01T10:00:20", false, false),
            Some(start),
            &mut expired,
            at(10)
        ));
        let again = seen("2026-01-01T10:00:20", true, false);
        assert!(!is_dead(&again, Some(start), &mut expired, at(16)));
        assert!(is_dead(&again, Some(start), &mut expired, at(31)));
    }

    #[test]
    fn a_member_that_needs_everything_is_refused_naming_the_holder() {
        let units = partitions(2);
        let mut sharing = Sharing {
            sharers: vec!["a".into()],
            ..Sharing::default()
        };
        sharing.held.insert(units[1].clone(), holder("a"));
        let refused = plan(&member("z", Role::All), &BTreeSet::new(), &units, &sharing)
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("another processor (pid 1 on here)"),
            "{refused}"
        );
        let alone = plan(
            &member("z", Role::All),
            &BTreeSet::new(),
            &units,
            &Sharing::default(),
        )
        .unwrap();
        assert_eq!(alone.take.len(), 3);
        let rollups = plan(
            &member("z", Role::Rollups),
            &BTreeSet::new(),
            &units,
            &sharing,
        )
        .unwrap();
        assert_eq!(rollups.take, [(Unit::Rollups, None)]);
    }
}
