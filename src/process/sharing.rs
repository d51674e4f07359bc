//! How processors share a pipeline's work: each shared member holds an even share of the
//! partitions (of the ticks and dead-letter topics together), and one of them the rollup stage.
//! Every [`RENEW_EVERY`] a member renews itself and looks at who is alive: a member that joined
//! makes the others give partitions up, a member that died leaves its partitions free for the
//! others to take. A change of what a member holds restarts its fetch loops and writers (after
//! their last batch committed), the way Kafka's eager rebalancing does.

use std::collections::BTreeSet;

use anyhow::{Result, bail};

use crate::store::{Member, RENEW_EVERY, Role, Sharing, Store, StoreError, Unit};

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
            let more = partitions
                .iter()
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

/// Renews `member` until another member takes it for dead (it was paused past its lease).
/// An unreachable MySQL only delays renewal (no batch can commit then either).
pub async fn keep_membership(store: &Store, member: &Member) -> StoreError {
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        match store.renew(member).await {
            Ok(true) => {}
            Ok(false) => {
                return StoreError::LeaseLost {
                    what: format!("this processor's work on {}", member.pipeline),
                };
            }
            Err(e) => tracing::warn!("renewing the processor's membership: {e}; trying again"),
        }
    }
}

/// Waits until what `member` holds should change: units to give up (returned for the caller
/// to give up once its batches stopped), or units it could take (taken here, returned empty).
/// A member of [`Role::All`] or [`Role::Rollups`] holds what it took at start: never returns.
pub async fn until_change(
    store: &Store,
    member: &Member,
    holds: &mut BTreeSet<Unit>,
    partitions: &[Unit],
) -> Vec<Unit> {
    if member.role != Role::Shared {
        return std::future::pending().await;
    }
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        let sharing = match store.sharing(member).await {
            Ok(sharing) => sharing,
            Err(e) => {
                tracing::debug!("reading how the work is shared: {e}; trying again");
                continue;
            }
        };
        let Ok(plan) = plan(member, holds, partitions, &sharing) else {
            continue;
        };
        if !plan.give_up.is_empty() {
            return plan.give_up;
        }
        if take(store, member, holds, plan.take).await {
            return Vec::new();
        }
    }
}

/// Takes what `plan` says is free; whether anything was taken.
pub async fn take(
    store: &Store,
    member: &Member,
    holds: &mut BTreeSet<Unit>,
    units: Vec<(Unit, Option<String>)>,
) -> bool {
    let mut took = false;
    for (unit, dead_owner) in units {
        match store.take(member, &unit, dead_owner.as_deref()).await {
            Ok(true) => {
                tracing::info!(%unit, "took over");
                holds.insert(unit);
                took = true;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(%unit, "taking a unit of work: {e}"),
        }
    }
    took
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
