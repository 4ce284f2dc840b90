//! The server-side assignors of consumer groups (`group.consumer.assignors`), as Kafka's
//! `UniformAssignor` and `RangeAssignor`: from each member's subscribed topics and its
//! current target assignment to the next target assignment.

use std::collections::{BTreeMap, BTreeSet};

use super::{Assignment, TopicId};

pub const UNIFORM: &str = "uniform";
pub const RANGE: &str = "range";

/// One member as an assignor sees it.
#[derive(Debug, Clone)]
pub struct AssignorMember<'a> {
    pub member_id: &'a str,
    pub instance_id: Option<&'a str>,
    pub subscribed: BTreeSet<TopicId>,
    /// The member's current target assignment (stickiness).
    pub current: &'a Assignment,
}

/// Computes the target assignment with the assignor `name` (one of [`KNOWN`]).
pub fn assign(
    name: &str,
    members: &[AssignorMember],
    partitions: &BTreeMap<TopicId, i32>,
) -> BTreeMap<String, Assignment> {
    if members.is_empty() {
        return BTreeMap::new();
    }
    match name {
        RANGE => range(members, partitions),
        _ => {
            let homogeneous = members
                .iter()
                .all(|m| m.subscribed == members[0].subscribed);
            if homogeneous {
                uniform_homogeneous(members, partitions)
            } else {
                uniform_heterogeneous(members, partitions)
            }
        }
    }
}

/// Kafka's `RangeAssignor`: members in order (static ones first, by instance id, then by
/// member id) each take a contiguous range of every topic they subscribe to, the first
/// `partitions % subscribers` of them one partition more. It ignores the current assignment.
fn range(
    members: &[AssignorMember],
    partitions: &BTreeMap<TopicId, i32>,
) -> BTreeMap<String, Assignment> {
    let mut sorted: Vec<&AssignorMember> = members.iter().collect();
    sorted.sort_by(|a, b| match (a.instance_id, b.instance_id) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.member_id.cmp(b.member_id),
    });
    // Per topic: (subscribers, partitions handed out so far, members still owed an extra).
    let mut topics: BTreeMap<TopicId, (i32, i32, i32)> = BTreeMap::new();
    for member in &sorted {
        for topic in &member.subscribed {
            if partitions.contains_key(topic) {
                topics.entry(*topic).or_default().0 += 1;
            }
        }
    }
    for (topic, (subscribers, _, extra)) in topics.iter_mut() {
        *extra = partitions[topic] % *subscribers;
    }
    let mut result = BTreeMap::new();
    for member in sorted {
        let mut assignment = Assignment::new();
        for topic in &member.subscribed {
            let Some(&count) = partitions.get(topic) else {
                continue;
            };
            let (subscribers, next, extra) = topics.get_mut(topic).expect("counted above");
            let mut quota = count / *subscribers;
            if *extra > 0 {
                quota += 1;
                *extra -= 1;
            }
            let start = *next;
            let end = (start + quota).min(count);
            *next = end;
            if start < end {
                assignment.insert(*topic, (start..end).collect());
            }
        }
        result.insert(member.member_id.to_owned(), assignment);
    }
    result
}

/// Kafka's `UniformHomogeneousAssignmentBuilder`: every member subscribes to the same topics.
/// Each member keeps what it has up to its quota (the first `total % members` members in
/// order may keep one more), and the partitions left over fill the members under quota.
fn uniform_homogeneous(
    members: &[AssignorMember],
    partitions: &BTreeMap<TopicId, i32>,
) -> BTreeMap<String, Assignment> {
    let subscribed: Vec<TopicId> = members[0]
        .subscribed
        .iter()
        .filter(|t| partitions.contains_key(t))
        .copied()
        .collect();
    let held: BTreeSet<(TopicId, i32)> = members
        .iter()
        .flat_map(|m| {
            m.current
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
        })
        .collect();
    let mut unassigned: Vec<(TopicId, i32)> = Vec::new();
    let mut total = 0;
    for topic in &subscribed {
        let count = partitions[topic];
        total += count;
        unassigned.extend(
            (0..count)
                .map(|p| (*topic, p))
                .filter(|tp| !held.contains(tp)),
        );
    }
    let n = members.len() as i32;
    let minimum = total / n;
    let mut extra = total % n;
    let mut result = BTreeMap::new();
    let mut unfilled: Vec<(&str, i32)> = Vec::new();
    for member in members {
        let mut quota = minimum;
        if extra > 0 {
            quota += 1;
            extra -= 1;
        }
        let mut kept = Assignment::new();
        for (topic, owned) in member.current {
            if !subscribed.contains(topic) {
                continue;
            }
            for p in owned {
                if *p >= partitions[topic] {
                    continue;
                }
                if quota > 0 {
                    quota -= 1;
                    kept.entry(*topic).or_default().insert(*p);
                } else {
                    unassigned.push((*topic, *p));
                }
            }
        }
        if quota > 0 {
            unfilled.push((member.member_id, quota));
        }
        result.insert(member.member_id.to_owned(), kept);
    }
    let mut next = unassigned.into_iter();
    for (member, quota) in unfilled {
        let assignment = result.get_mut(member).expect("inserted above");
        for (topic, p) in next.by_ref().take(quota as usize) {
            assignment.entry(topic).or_default().insert(p);
        }
    }
    result
}

/// Members subscribe to different topics. Kafka's `UniformHeterogeneousAssignmentBuilder`
/// keeps current assignments, gives each unassigned partition to its least loaded
/// subscriber, then moves partitions from the most to the least loaded subscribers until no
/// two subscribers of a topic differ by more than one partition. This follows the same
/// three steps with a simpler, deterministic choice of which partition moves.
fn uniform_heterogeneous<'a>(
    members: &[AssignorMember<'a>],
    partitions: &BTreeMap<TopicId, i32>,
) -> BTreeMap<String, Assignment> {
    let mut result: BTreeMap<String, Assignment> = BTreeMap::new();
    let mut owner: BTreeMap<(TopicId, i32), &str> = BTreeMap::new();
    for member in members {
        let mut kept = Assignment::new();
        for (topic, owned) in member.current {
            let Some(&count) = partitions.get(topic) else {
                continue;
            };
            if !member.subscribed.contains(topic) {
                continue;
            }
            for p in owned.iter().filter(|p| **p < count) {
                if owner.insert((*topic, *p), member.member_id).is_none() {
                    kept.entry(*topic).or_default().insert(*p);
                }
            }
        }
        result.insert(member.member_id.to_owned(), kept);
    }
    let load = |result: &BTreeMap<String, Assignment>, id: &str| -> usize {
        result[id].values().map(|s| s.len()).sum()
    };
    // Each topic with its subscribers; topics with fewer subscribers first, as they have
    // the fewest places to go.
    let mut topics: Vec<(TopicId, Vec<&str>)> = partitions
        .keys()
        .map(|t| {
            let subscribers = members
                .iter()
                .filter(|m| m.subscribed.contains(t))
                .map(|m| m.member_id)
                .collect();
            (*t, subscribers)
        })
        .filter(|(_, subscribers): &(TopicId, Vec<&str>)| !subscribers.is_empty())
        .collect();
    topics.sort_by_key(|(t, subscribers)| (subscribers.len(), *t));
    let least_loaded = |result: &BTreeMap<String, Assignment>, subscribers: &[&'a str]| {
        subscribers
            .iter()
            .min_by_key(|id| (load(result, id), **id))
            .copied()
    };
    for (topic, subscribers) in &topics {
        for p in 0..partitions[topic] {
            if owner.contains_key(&(*topic, p)) {
                continue;
            }
            let least = least_loaded(&result, subscribers).expect("a subscriber");
            add(&mut result, least, *topic, p);
            owner.insert((*topic, p), least);
        }
    }
    // Balance: move one partition at a time from a subscriber with two or more than
    // another subscriber of the same topic.
    loop {
        let mut moved = false;
        for (topic, subscribers) in &topics {
            let most = subscribers
                .iter()
                .filter(|id| result[**id].get(topic).is_some_and(|s| !s.is_empty()))
                .max_by_key(|id| (load(&result, id), std::cmp::Reverse(**id)))
                .copied();
            let least = least_loaded(&result, subscribers);
            let (Some(most), Some(least)) = (most, least) else {
                continue;
            };
            if load(&result, most) > load(&result, least) + 1 {
                let from = result.get_mut(most).unwrap();
                let set = from.get_mut(topic).unwrap();
                let p = *set.iter().next_back().unwrap();
                set.remove(&p);
                if set.is_empty() {
                    from.remove(topic);
                }
                add(&mut result, least, *topic, p);
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    result
}

fn add(result: &mut BTreeMap<String, Assignment>, member: &str, topic: TopicId, p: i32) {
    let assignment = result.get_mut(member).expect("every member has an entry");
    assignment.entry(topic).or_default().insert(p);
}
