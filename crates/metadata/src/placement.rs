//! Replica placement for new partitions, computed by the proposer (the active controller) and
//! carried in the command so that applying it stays deterministic.
//!
//! Leaders go round-robin over the unfenced brokers from a rotating `start`, so successive topics
//! do not all put partition 0 on the same broker. Brokers are ordered rack by rack alternately,
//! and followers are picked walking forward from the leader, preferring racks the partition does
//! not use yet: with racks set, a partition's replicas cover as many racks as it can.

use std::collections::{BTreeMap, BTreeSet};

use crate::state::{BrokerId, ClusterMetadata};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error(
        "replication factor {replication_factor} is larger than the {available} unfenced brokers"
    )]
    NotEnoughBrokers {
        available: usize,
        replication_factor: usize,
    },
    #[error("partition count and replication factor must be positive")]
    InvalidCount,
}

/// Replicas, preferred leader first, for `partitions` new partitions of `replication_factor`.
pub fn place(
    metadata: &ClusterMetadata,
    partitions: u32,
    replication_factor: usize,
    start: usize,
) -> Result<Vec<Vec<BrokerId>>, PlacementError> {
    if partitions == 0 || replication_factor == 0 {
        return Err(PlacementError::InvalidCount);
    }
    let order = rack_alternated(metadata);
    let n = order.len();
    if replication_factor > n {
        return Err(PlacementError::NotEnoughBrokers {
            available: n,
            replication_factor,
        });
    }
    let rack_count = order
        .iter()
        .map(|(_, rack)| rack)
        .collect::<BTreeSet<_>>()
        .len();
    let assignment = (0..partitions as usize)
        .map(|p| {
            let first = (start + p) % n;
            // Varying where followers start each round over the brokers spreads the follower
            // sets too, not only the leaders.
            let shift = if n > 1 { (start + p / n) % (n - 1) } else { 0 };
            let mut chosen = vec![first];
            let mut racks_used: BTreeSet<&Option<String>> = BTreeSet::from([&order[first].1]);
            while chosen.len() < replication_factor {
                if racks_used.len() == rack_count {
                    racks_used.clear();
                }
                let candidates = (0..n)
                    .map(|j| (first + 1 + shift + j) % n)
                    .filter(|i| !chosen.contains(i));
                let fresh_rack = candidates
                    .clone()
                    .find(|&i| !racks_used.contains(&order[i].1));
                let next = fresh_rack
                    .or_else(|| candidates.clone().next())
                    .expect("fewer chosen than brokers");
                racks_used.insert(&order[next].1);
                chosen.push(next);
            }
            chosen.into_iter().map(|i| order[i].0).collect()
        })
        .collect();
    Ok(assignment)
}

/// Unfenced brokers, one from each rack in turn (racks and brokers in id order); brokers
/// without a rack count as one more rack.
fn rack_alternated(metadata: &ClusterMetadata) -> Vec<(BrokerId, Option<String>)> {
    let mut by_rack: BTreeMap<&Option<String>, Vec<BrokerId>> = BTreeMap::new();
    for b in metadata.brokers.values().filter(|b| !b.fenced) {
        by_rack.entry(&b.rack).or_default().push(b.id);
    }
    let longest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    (0..longest)
        .flat_map(|round| {
            by_rack
                .iter()
                .filter_map(move |(rack, ids)| ids.get(round).map(|&id| (id, (*rack).clone())))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Broker;

    fn cluster(brokers: &[(BrokerId, Option<&str>, bool)]) -> ClusterMetadata {
        let mut m = ClusterMetadata::default();
        for &(id, rack, fenced) in brokers {
            let rack = rack.map(str::to_string);
            let b = Broker {
                id,
                host: "h".into(),
                port: 9092,
                rack,
                incarnation: 1,
                epoch: 0,
                fenced,
                registry_url: None,
            };
            m.brokers.insert(id, b);
        }
        m
    }

    fn count_leaders(assignment: &[Vec<BrokerId>]) -> BTreeMap<BrokerId, usize> {
        let mut leaders = BTreeMap::new();
        for replicas in assignment {
            *leaders.entry(replicas[0]).or_insert(0) += 1;
        }
        leaders
    }

    fn assert_distinct(assignment: &[Vec<BrokerId>], rf: usize) {
        for replicas in assignment {
            assert_eq!(replicas.len(), rf);
            assert_eq!(
                replicas.iter().collect::<BTreeSet<_>>().len(),
                rf,
                "{replicas:?}"
            );
        }
    }

    #[test]
    fn leaders_round_robin_over_brokers() {
        let m = cluster(&[(1, None, false), (2, None, false), (3, None, false)]);
        let a = place(&m, 6, 3, 0).unwrap();
        assert_distinct(&a, 3);
        assert_eq!(count_leaders(&a), BTreeMap::from([(1, 2), (2, 2), (3, 2)]));
        assert_eq!(a[0][0], 1);
        assert_eq!(a[1][0], 2);
    }

    #[test]
    fn start_rotates_the_first_leader() {
        let m = cluster(&[(1, None, false), (2, None, false), (3, None, false)]);
        assert_eq!(place(&m, 1, 1, 0).unwrap(), vec![vec![1]]);
        assert_eq!(place(&m, 1, 1, 1).unwrap(), vec![vec![2]]);
        assert_eq!(place(&m, 1, 1, 5).unwrap(), vec![vec![3]]);
    }

    #[test]
    fn followers_vary_between_rounds() {
        let m = cluster(&[
            (1, None, false),
            (2, None, false),
            (3, None, false),
            (4, None, false),
        ]);
        let a = place(&m, 8, 2, 0).unwrap();
        assert_distinct(&a, 2);
        // Partitions 0 and 4 share a leader; their followers differ thanks to the shift.
        assert_eq!(a[0][0], a[4][0]);
        assert_ne!(a[0][1], a[4][1]);
    }

    #[test]
    fn fenced_brokers_get_no_replicas() {
        let m = cluster(&[(1, None, false), (2, None, true), (3, None, false)]);
        let a = place(&m, 4, 2, 0).unwrap();
        assert!(a.iter().flatten().all(|&r| r != 2), "{a:?}");
    }

    #[test]
    fn too_few_brokers_is_an_error() {
        let m = cluster(&[(1, None, false), (2, None, true)]);
        assert_eq!(
            place(&m, 1, 2, 0),
            Err(PlacementError::NotEnoughBrokers {
                available: 1,
                replication_factor: 2
            })
        );
        assert_eq!(place(&m, 0, 1, 0), Err(PlacementError::InvalidCount));
        assert_eq!(place(&m, 1, 0, 0), Err(PlacementError::InvalidCount));
    }

    #[test]
    fn replicas_spread_over_racks() {
        let m = cluster(&[
            (1, Some("a"), false),
            (2, Some("a"), false),
            (3, Some("b"), false),
            (4, Some("b"), false),
            (5, Some("c"), false),
            (6, Some("c"), false),
        ]);
        for start in 0..6 {
            let a = place(&m, 12, 3, start).unwrap();
            assert_distinct(&a, 3);
            for replicas in &a {
                let racks: BTreeSet<_> =
                    replicas.iter().map(|r| m.brokers[r].rack.clone()).collect();
                assert_eq!(racks.len(), 3, "{replicas:?} with start {start}");
            }
            assert!(count_leaders(&a).values().all(|&c| c == 2));
        }
    }

    #[test]
    fn uneven_racks_still_use_every_rack_first() {
        let m = cluster(&[
            (1, Some("a"), false),
            (2, Some("a"), false),
            (3, Some("a"), false),
            (4, Some("b"), false),
        ]);
        let a = place(&m, 8, 3, 0).unwrap();
        assert_distinct(&a, 3);
        for replicas in &a {
            assert!(replicas.contains(&4), "rack b unused in {replicas:?}");
        }
    }

    #[test]
    fn placement_is_deterministic() {
        let m = cluster(&[
            (1, Some("a"), false),
            (2, Some("b"), false),
            (3, None, false),
        ]);
        assert_eq!(place(&m, 7, 2, 3).unwrap(), place(&m, 7, 2, 3).unwrap());
    }
}
