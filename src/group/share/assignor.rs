//! Kafka's `SimpleAssignor` for share groups (the only share-group assignor of Kafka 4.4):
//! a partition may go to several members at once, since its records are shared out one
//! acquisition at a time. With members all subscribed to the same topics (homogeneous), the
//! partitions are spread evenly: each partition goes to ceil(members / partitions) members,
//! and each member's count differs from another's by at most one; what a member already has
//! stays with it where balance allows (`SimpleHomogeneousAssignmentBuilder`). Members with
//! different subscriptions are balanced topic by topic among the members subscribed to it.
//!
//! Kafka walks its hash maps in their own order, so when several balanced answers exist it
//! may pick another one than samsa (which walks in id order); the properties hold for both.

use std::collections::{BTreeMap, BTreeSet};

use super::{Assignment, TopicId};

/// A member as the assignor sees it.
pub struct AssignorMember<'a> {
    pub member_id: &'a str,
    /// Ids of the subscribed topics that exist.
    pub subscribed: BTreeSet<TopicId>,
    /// Its target assignment before this one.
    pub current: &'a Assignment,
}

pub const SIMPLE: &str = "simple";

/// The target assignment of every member; `assignable` gives each topic's partitions that
/// may be assigned (those whose share state is initialized).
pub fn assign(
    members: &[AssignorMember],
    assignable: &BTreeMap<TopicId, BTreeSet<i32>>,
) -> BTreeMap<String, Assignment> {
    let mut result: BTreeMap<String, Assignment> = members
        .iter()
        .map(|m| (m.member_id.to_owned(), Assignment::new()))
        .collect();
    if members.is_empty() {
        return result;
    }
    let homogeneous = members
        .iter()
        .all(|m| m.subscribed == members[0].subscribed);
    // Groups of (members, topics) balanced as one.
    let mut groups: Vec<(Vec<&AssignorMember>, BTreeSet<TopicId>)> = Vec::new();
    if homogeneous {
        groups.push((members.iter().collect(), members[0].subscribed.clone()));
    } else {
        let topics: BTreeSet<TopicId> = members.iter().flat_map(|m| m.subscribed.clone()).collect();
        for topic in topics {
            let subscribers = members
                .iter()
                .filter(|m| m.subscribed.contains(&topic))
                .collect();
            groups.push((subscribers, BTreeSet::from([topic])));
        }
    }
    for (group, topics) in groups {
        let partitions: Vec<(TopicId, i32)> = topics
            .iter()
            .flat_map(|t| {
                assignable
                    .get(t)
                    .into_iter()
                    .flatten()
                    .map(move |p| (*t, *p))
            })
            .collect();
        for (member, assigned) in balance(&group, &partitions) {
            let entry = result.entry(member).or_default();
            for (topic, partition) in assigned {
                entry.entry(topic).or_default().insert(partition);
            }
        }
    }
    result
}

/// Spreads `partitions` over `members`, keeping what each had where balance allows.
fn balance(
    members: &[&AssignorMember],
    partitions: &[(TopicId, i32)],
) -> BTreeMap<String, BTreeSet<(TopicId, i32)>> {
    let mut out: BTreeMap<String, BTreeSet<(TopicId, i32)>> = BTreeMap::new();
    if members.is_empty() || partitions.is_empty() {
        return out;
    }
    let (n, p) = (members.len(), partitions.len());
    // Each partition to this many members, and each member this many partitions (Kafka's
    // desiredSharing and desiredAssignmentCount).
    let sharing = n.div_ceil(p);
    let precise = (sharing * p) as f64 / n as f64;
    let desired: Vec<usize> = (0..n)
        .map(|i| (precise * (i + 1) as f64).ceil() as usize - (precise * i as f64).ceil() as usize)
        .collect();
    let wanted: BTreeSet<(TopicId, i32)> = partitions.iter().copied().collect();
    let mut holders: BTreeMap<(TopicId, i32), usize> = wanted.iter().map(|tp| (*tp, 0)).collect();
    // Keep what each member had, up to its share and the partition's sharing.
    let mut kept: Vec<BTreeSet<(TopicId, i32)>> = vec![BTreeSet::new(); n];
    for (i, m) in members.iter().enumerate() {
        for (topic, ps) in m.current {
            for p in ps {
                let tp = (*topic, *p);
                let Some(count) = holders.get_mut(&tp) else {
                    continue;
                };
                if kept[i].len() < desired[i] && *count < sharing {
                    *count += 1;
                    kept[i].insert(tp);
                }
            }
        }
    }
    // Hand out the rest: each partition short of holders to members short of partitions.
    let mut cursor = 0;
    for (tp, count) in holders.iter_mut() {
        let mut tried = 0;
        while *count < sharing && tried < n {
            let i = cursor % n;
            cursor += 1;
            tried += 1;
            if kept[i].len() < desired[i] && !kept[i].contains(tp) {
                kept[i].insert(*tp);
                *count += 1;
                tried = 0;
            }
        }
    }
    for (i, m) in members.iter().enumerate() {
        out.insert(m.member_id.to_owned(), std::mem::take(&mut kept[i]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn topic(n: u8) -> TopicId {
        Uuid::from_bytes([n; 16])
    }

    fn partitions(t: TopicId, count: i32) -> BTreeMap<TopicId, BTreeSet<i32>> {
        BTreeMap::from([(t, (0..count).collect())])
    }

    fn count(a: &Assignment) -> usize {
        a.values().map(|p| p.len()).sum()
    }

    #[test]
    fn more_partitions_than_members_are_spread_evenly_once_each() {
        let t = topic(1);
        let empty = Assignment::new();
        let members: Vec<AssignorMember> = ["a", "b", "c"]
            .iter()
            .map(|id| AssignorMember {
                member_id: id,
                subscribed: BTreeSet::from([t]),
                current: &empty,
            })
            .collect();
        let out = assign(&members, &partitions(t, 7));
        let counts: Vec<usize> = out.values().map(count).collect();
        assert_eq!(counts.iter().sum::<usize>(), 7);
        assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1);
        let all: BTreeSet<i32> = out.values().flat_map(|a| a[&t].clone()).collect();
        assert_eq!(all, (0..7).collect());
    }

    #[test]
    fn more_members_than_partitions_share_partitions() {
        let t = topic(1);
        let empty = Assignment::new();
        let ids = ["a", "b", "c", "d", "e"];
        let members: Vec<AssignorMember> = ids
            .iter()
            .map(|id| AssignorMember {
                member_id: id,
                subscribed: BTreeSet::from([t]),
                current: &empty,
            })
            .collect();
        let out = assign(&members, &partitions(t, 2));
        // Each partition goes to ceil(5 / 2) = 3 members; every member has one or two.
        assert!(out.values().all(|a| (1..=2).contains(&count(a))));
        for p in 0..2 {
            let holders = out.values().filter(|a| a[&t].contains(&p)).count();
            assert_eq!(holders, 3);
        }
    }

    #[test]
    fn a_new_member_takes_partitions_and_the_others_keep_theirs() {
        let t = topic(1);
        let a_had: Assignment = BTreeMap::from([(t, BTreeSet::from([0, 1, 2]))]);
        let b_had: Assignment = BTreeMap::from([(t, BTreeSet::from([3, 4, 5]))]);
        let empty = Assignment::new();
        let member = |id, current| AssignorMember {
            member_id: id,
            subscribed: BTreeSet::from([t]),
            current,
        };
        let members = vec![
            member("a", &a_had),
            member("b", &b_had),
            member("c", &empty),
        ];
        let out = assign(&members, &partitions(t, 6));
        assert!(out.values().all(|a| count(a) == 2));
        assert!(out["a"][&t].is_subset(&a_had[&t]));
        assert!(out["b"][&t].is_subset(&b_had[&t]));
    }

    #[test]
    fn only_assignable_partitions_and_subscribed_topics_are_given() {
        let (t1, t2) = (topic(1), topic(2));
        let empty = Assignment::new();
        let members = vec![
            AssignorMember {
                member_id: "a",
                subscribed: BTreeSet::from([t1]),
                current: &empty,
            },
            AssignorMember {
                member_id: "b",
                subscribed: BTreeSet::from([t1, t2]),
                current: &empty,
            },
        ];
        let assignable = BTreeMap::from([(t1, BTreeSet::from([0, 1])), (t2, BTreeSet::from([1]))]);
        let out = assign(&members, &assignable);
        assert!(!out["a"].contains_key(&t2));
        assert_eq!(out["b"][&t2], BTreeSet::from([1]));
        let t1_all: BTreeSet<i32> = out
            .values()
            .filter_map(|a| a.get(&t1))
            .flatten()
            .copied()
            .collect();
        assert_eq!(t1_all, BTreeSet::from([0, 1]));
    }
}
