//! Kafka's `StickyTaskAssignor` ("sticky", the one server-side task assignor of Kafka 4.4):
//! active tasks stay with the member that ran them while it is under its quota, then go to
//! a previous standby, then to the least loaded process (load: tasks per member of the
//! process); standby replicas of stateful tasks go first to the previous active or standby
//! owner, never to a process that already holds the task, then to the least loaded process.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::TaskSet;

pub const STICKY: &str = "sticky";

type TaskId = (String, i32);

/// One member as the assignor sees it.
pub struct AssignorMember<'a> {
    pub member_id: &'a str,
    pub process_id: &'a str,
    pub active: &'a TaskSet,
    pub standby: &'a TaskSet,
}

/// A subtopology: its number of tasks and whether it keeps state.
pub struct AssignorSubtopology {
    pub tasks: i32,
    pub stateful: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberTasks {
    pub active: TaskSet,
    pub standby: TaskSet,
}

#[derive(Default)]
struct Process {
    /// Members and their task counts, in order of arrival.
    members: BTreeMap<String, usize>,
    tasks: BTreeSet<TaskId>,
    task_count: usize,
    active: HashMap<String, Vec<TaskId>>,
    standby: HashMap<String, Vec<TaskId>>,
}

impl Process {
    fn load(&self) -> f64 {
        if self.members.is_empty() {
            -1.0
        } else {
            self.task_count as f64 / self.members.len() as f64
        }
    }

    fn add(&mut self, member: &str, task: TaskId, active: bool) -> usize {
        self.task_count += 1;
        self.tasks.insert(task.clone());
        let by = if active {
            &mut self.active
        } else {
            &mut self.standby
        };
        by.entry(member.to_owned()).or_default().push(task);
        let count = self.members.entry(member.to_owned()).or_default();
        *count += 1;
        *count
    }

    fn add_to_least_loaded(&mut self, task: TaskId, active: bool) -> Option<usize> {
        let member = self
            .members
            .iter()
            .min_by_key(|(_, c)| **c)
            .map(|(m, _)| m.clone())?;
        Some(self.add(&member, task, active))
    }
}

struct State {
    processes: BTreeMap<String, Process>,
    prev_active: HashMap<TaskId, (String, String)>,
    prev_standby: HashMap<TaskId, Vec<(String, String)>>,
    standby_replicas: usize,
    total_active: usize,
    total_tasks: usize,
    members_with_active_capacity: usize,
    members_with_capacity: usize,
    active_per_member: usize,
    tasks_per_member: usize,
}

fn per_member(tasks: usize, members: usize) -> usize {
    if members == 0 {
        0
    } else {
        tasks.div_ceil(members)
    }
}

impl State {
    fn count(&self, (process, member): &(String, String)) -> usize {
        self.processes[process].members[member]
    }

    fn took(&mut self, count: usize, active: bool) {
        if active && count == self.active_per_member {
            self.members_with_active_capacity = self.members_with_active_capacity.saturating_sub(1);
            self.total_active = self.total_active.saturating_sub(count);
            self.active_per_member =
                per_member(self.total_active, self.members_with_active_capacity);
        }
        if count == self.tasks_per_member {
            self.members_with_capacity = self.members_with_capacity.saturating_sub(1);
            self.total_tasks = self.total_tasks.saturating_sub(count);
            self.tasks_per_member = per_member(self.total_tasks, self.members_with_capacity);
        }
    }

    fn least_loaded_process(&self, skip: &BTreeSet<String>) -> Option<String> {
        self.processes
            .iter()
            .filter(|(id, _)| !skip.contains(*id))
            .min_by(|a, b| a.1.load().total_cmp(&b.1.load()))
            .map(|(id, _)| id.clone())
    }

    /// Among previous owners, the one on the least loaded process (and least loaded
    /// itself); with `standby_of`, only processes that do not hold that task yet.
    fn prev_least_loaded(
        &self,
        candidates: Option<&Vec<(String, String)>>,
        standby_of: Option<&TaskId>,
    ) -> Option<(String, String)> {
        let mut best: Option<((String, String), f64, usize)> = None;
        for c in candidates? {
            let process = &self.processes[&c.0];
            if standby_of.is_some_and(|t| process.tasks.contains(t)) {
                continue;
            }
            let (pl, ml) = (process.load(), self.count(c));
            match &best {
                Some((_, bl, bm)) if !(pl < *bl && ml < *bm) => {}
                _ => best = Some((c.clone(), pl, ml)),
            }
        }
        best.map(|(c, _, _)| c)
    }
}

/// Assigns every task of `subtopologies` to `members`.
pub fn assign(
    members: &[AssignorMember],
    subtopologies: &BTreeMap<String, AssignorSubtopology>,
    standby_replicas: usize,
) -> BTreeMap<String, MemberTasks> {
    let mut state = State {
        processes: BTreeMap::new(),
        prev_active: HashMap::new(),
        prev_standby: HashMap::new(),
        standby_replicas,
        total_active: 0,
        total_tasks: 0,
        members_with_active_capacity: members.len(),
        members_with_capacity: members.len(),
        active_per_member: 0,
        tasks_per_member: 0,
    };
    for s in subtopologies.values() {
        let n = s.tasks.max(0) as usize;
        state.total_active += n;
        state.total_tasks += n + if s.stateful { n * standby_replicas } else { 0 };
    }
    state.active_per_member = per_member(state.total_active, members.len());
    state.tasks_per_member = per_member(state.total_tasks, members.len());
    for m in members {
        let owner = (m.process_id.to_owned(), m.member_id.to_owned());
        let process = state.processes.entry(m.process_id.to_owned()).or_default();
        process.members.insert(m.member_id.to_owned(), 0);
        for (sub, partitions) in m.active {
            for p in partitions {
                state.prev_active.insert((sub.clone(), *p), owner.clone());
            }
        }
        for (sub, partitions) in m.standby {
            for p in partitions {
                state
                    .prev_standby
                    .entry((sub.clone(), *p))
                    .or_default()
                    .push(owner.clone());
            }
        }
    }
    let tasks = |stateful_only: bool| -> Vec<TaskId> {
        subtopologies
            .iter()
            .filter(|(_, s)| !stateful_only || s.stateful)
            .flat_map(|(id, s)| (0..s.tasks).map(move |p| (id.clone(), p)))
            .collect()
    };
    assign_active(&mut state, tasks(false));
    if standby_replicas > 0 {
        assign_standby(&mut state, tasks(true));
    }
    let mut out: BTreeMap<String, MemberTasks> = members
        .iter()
        .map(|m| (m.member_id.to_owned(), MemberTasks::default()))
        .collect();
    for process in state.processes.values() {
        for (by, active) in [(&process.active, true), (&process.standby, false)] {
            for (member, tasks) in by {
                let entry = out.entry(member.clone()).or_default();
                let set = if active {
                    &mut entry.active
                } else {
                    &mut entry.standby
                };
                for (sub, p) in tasks {
                    set.entry(sub.clone()).or_default().insert(*p);
                }
            }
        }
    }
    out
}

fn assign_active(state: &mut State, mut tasks: Vec<TaskId>) {
    tasks.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    // Sticky: the previous owner keeps its tasks while under its quota.
    let mut left = Vec::new();
    for task in tasks {
        match state.prev_active.get(&task).cloned() {
            Some(owner) if state.count(&owner) < state.active_per_member => {
                let count = state
                    .processes
                    .get_mut(&owner.0)
                    .unwrap()
                    .add(&owner.1, task, true);
                state.took(count, true);
            }
            _ => left.push(task),
        }
    }
    // Then a previous standby, which has the state already.
    let mut rest = Vec::new();
    for task in left {
        let prev = state.prev_least_loaded(state.prev_standby.get(&task), None);
        match prev {
            Some(owner) if state.count(&owner) < state.active_per_member => {
                let count = state
                    .processes
                    .get_mut(&owner.0)
                    .unwrap()
                    .add(&owner.1, task, true);
                state.took(count, true);
            }
            _ => rest.push(task),
        }
    }
    rest.sort();
    for task in rest {
        let Some(process) = state.least_loaded_process(&BTreeSet::new()) else {
            return;
        };
        if let Some(count) = state
            .processes
            .get_mut(&process)
            .unwrap()
            .add_to_least_loaded(task, true)
        {
            state.took(count, true);
        }
    }
}

fn assign_standby(state: &mut State, mut tasks: Vec<TaskId>) {
    tasks.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
    let mut to_least_loaded = Vec::new();
    for task in tasks {
        let mut placed = 0;
        while placed < state.standby_replicas {
            if let Some(owner) = state.prev_active.get(&task).cloned() {
                let process = &state.processes[&owner.0];
                if !process.tasks.contains(&task) && state.count(&owner) < state.tasks_per_member {
                    let count = state.processes.get_mut(&owner.0).unwrap().add(
                        &owner.1,
                        task.clone(),
                        false,
                    );
                    state.took(count, false);
                    placed += 1;
                    continue;
                }
            }
            let prev = state.prev_least_loaded(state.prev_standby.get(&task), Some(&task));
            match prev {
                Some(owner) if state.count(&owner) < state.tasks_per_member => {
                    let count = state.processes.get_mut(&owner.0).unwrap().add(
                        &owner.1,
                        task.clone(),
                        false,
                    );
                    state.took(count, false);
                    placed += 1;
                }
                _ => break,
            }
        }
        to_least_loaded.push((task, state.standby_replicas - placed));
    }
    to_least_loaded.sort_by(|a, b| b.0 .0.cmp(&a.0 .0).then_with(|| b.0 .1.cmp(&a.0 .1)));
    for (task, remaining) in to_least_loaded {
        for _ in 0..remaining {
            // The least loaded process that does not hold the task yet.
            let mut skip = BTreeSet::new();
            loop {
                let Some(process) = state.least_loaded_process(&skip) else {
                    tracing::warn!(?task, "not enough capacity to place every standby replica");
                    break;
                };
                if state.processes[&process].tasks.contains(&task) {
                    skip.insert(process);
                    continue;
                }
                let added = state
                    .processes
                    .get_mut(&process)
                    .unwrap()
                    .add_to_least_loaded(task.clone(), false);
                if let Some(count) = added {
                    state.took(count, false);
                }
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(sub: &str, ps: &[i32]) -> TaskSet {
        TaskSet::from([(sub.to_owned(), ps.iter().copied().collect())])
    }

    #[test]
    fn spreads_tasks_and_keeps_them_where_they_ran() {
        let subs = BTreeMap::from([
            (
                "0".to_owned(),
                AssignorSubtopology {
                    tasks: 4,
                    stateful: false,
                },
            ),
            (
                "1".to_owned(),
                AssignorSubtopology {
                    tasks: 4,
                    stateful: true,
                },
            ),
        ]);
        let empty = TaskSet::new();
        let first = assign(
            &[
                AssignorMember {
                    member_id: "a",
                    process_id: "p1",
                    active: &empty,
                    standby: &empty,
                },
                AssignorMember {
                    member_id: "b",
                    process_id: "p2",
                    active: &empty,
                    standby: &empty,
                },
            ],
            &subs,
            1,
        );
        let count = |t: &TaskSet| t.values().map(|s| s.len()).sum::<usize>();
        assert_eq!(count(&first["a"].active), 4);
        assert_eq!(count(&first["b"].active), 4);
        // One standby per stateful task, never beside its active.
        assert_eq!(count(&first["a"].standby) + count(&first["b"].standby), 4);
        for (m, other) in [("a", "b"), ("b", "a")] {
            for (sub, ps) in &first[m].standby {
                for p in ps {
                    assert!(first[other].active[sub].contains(p));
                }
            }
        }
        // A third member takes some, the others keep the rest of theirs.
        let a = first["a"].active.clone();
        let third = assign(
            &[
                AssignorMember {
                    member_id: "a",
                    process_id: "p1",
                    active: &a,
                    standby: &empty,
                },
                AssignorMember {
                    member_id: "c",
                    process_id: "p3",
                    active: &empty,
                    standby: &empty,
                },
            ],
            &subs,
            0,
        );
        assert_eq!(count(&third["a"].active), 4);
        assert!(third["a"].active.iter().all(|(s, ps)| ps.is_subset(&a[s])));
        assert_eq!(
            third["c"].active.values().map(|s| s.len()).sum::<usize>(),
            4
        );
        let _ = set("0", &[0]);
    }
}
