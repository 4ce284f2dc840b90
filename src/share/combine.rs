//! Folding state batches together (Kafka 4.4's `PersisterStateBatchCombiner`): the batches
//! known so far and those a write brings become one sorted list of disjoint runs. Where
//! batches overlap, the one with the higher delivery count wins, then the higher delivery
//! state (archived over acknowledged over available): an offset never goes back to fewer
//! deliveries, which is what keeps the delivery-count limit across a coordinator move.
//! Offsets before the start offset are dropped; adjacent runs in one state are joined.

use std::collections::BTreeMap;

use super::state::StateBatch;

/// `so_far` and `new` as disjoint runs from `start_offset` on (-1: keep every offset).
pub fn combine(so_far: &[StateBatch], new: &[StateBatch], start_offset: i64) -> Vec<StateBatch> {
    let pruned: Vec<StateBatch> = so_far
        .iter()
        .chain(new)
        .filter(|b| start_offset == -1 || b.last_offset >= start_offset)
        .map(|b| StateBatch {
            first_offset: if start_offset == -1 {
                b.first_offset
            } else {
                b.first_offset.max(start_offset)
            },
            ..*b
        })
        .collect();
    if pruned.len() < 2 {
        return pruned;
    }
    sweep(&pruned)
}

/// (delivery count, delivery state): the larger wins an offset.
type Priority = (i16, i8);

/// A line sweep over the runs' starts and ends: at each boundary the highest priority still
/// open covers the offsets up to the next boundary.
fn sweep(batches: &[StateBatch]) -> Vec<StateBatch> {
    // (offset, begins, priority); at one offset, ends sort before begins as in Kafka.
    let mut events: Vec<(i64, bool, Priority)> = Vec::with_capacity(batches.len() * 2);
    for b in batches {
        let priority = (b.delivery_count, b.delivery_state);
        events.push((b.first_offset, true, priority));
        events.push((b.last_offset.saturating_add(1), false, priority));
    }
    events.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut open: BTreeMap<Priority, usize> = BTreeMap::new();
    let mut out: Vec<StateBatch> = Vec::new();
    let mut current: Option<Priority> = None;
    let mut from = -1i64;
    let mut i = 0;
    while i < events.len() {
        let offset = events[i].0;
        if let Some(priority) = current {
            if offset > from {
                append_coalesced(&mut out, from, offset - 1, priority);
            }
        }
        while i < events.len() && events[i].0 == offset {
            let (_, begins, priority) = events[i];
            if begins {
                *open.entry(priority).or_default() += 1;
            } else if let Some(n) = open.get_mut(&priority) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&priority);
                }
            }
            i += 1;
        }
        current = open.keys().next_back().copied();
        from = offset;
    }
    out
}

fn append_coalesced(out: &mut Vec<StateBatch>, first: i64, last: i64, (count, state): Priority) {
    if let Some(prev) = out.last_mut() {
        if prev.last_offset + 1 == first
            && prev.delivery_state == state
            && prev.delivery_count == count
        {
            prev.last_offset = last;
            return;
        }
    }
    out.push(StateBatch {
        first_offset: first,
        last_offset: last,
        delivery_state: state,
        delivery_count: count,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(first: i64, last: i64, state: i8, count: i16) -> StateBatch {
        StateBatch {
            first_offset: first,
            last_offset: last,
            delivery_state: state,
            delivery_count: count,
        }
    }

    #[test]
    fn nothing_or_one_batch_is_only_pruned() {
        assert!(combine(&[], &[], -1).is_empty());
        assert_eq!(combine(&[b(0, 9, 0, 1)], &[], 5), vec![b(5, 9, 0, 1)]);
        assert!(combine(&[b(0, 4, 0, 1)], &[], 5).is_empty());
        assert_eq!(combine(&[], &[b(0, 9, 0, 1)], -1), vec![b(0, 9, 0, 1)]);
    }

    #[test]
    fn a_higher_delivery_count_wins_whichever_came_first() {
        // Acknowledged after one delivery, then written back as available at count 1: the
        // acknowledged state wins the overlap (same count, higher state).
        assert_eq!(
            combine(&[b(0, 9, 2, 1)], &[b(5, 14, 0, 1)], -1),
            vec![b(0, 9, 2, 1), b(10, 14, 0, 1)]
        );
        // A redelivery (count 2) overrides the middle of an older run.
        assert_eq!(
            combine(&[b(0, 9, 0, 1)], &[b(3, 5, 0, 2)], -1),
            vec![b(0, 2, 0, 1), b(3, 5, 0, 2), b(6, 9, 0, 1)]
        );
        // An older, lower count cannot take offsets back.
        assert_eq!(
            combine(&[b(0, 9, 4, 5)], &[b(0, 9, 0, 1)], -1),
            vec![b(0, 9, 4, 5)]
        );
    }

    #[test]
    fn adjacent_runs_in_one_state_join_and_the_start_offset_cuts() {
        assert_eq!(
            combine(&[b(0, 4, 2, 1)], &[b(5, 9, 2, 1), b(12, 12, 4, 5)], 2),
            vec![b(2, 9, 2, 1), b(12, 12, 4, 5)]
        );
    }
}
