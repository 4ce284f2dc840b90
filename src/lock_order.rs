//! The lock hierarchy, declared once, and the locks that carry their place in it.
//!
//! A thread may take a lock only while every lock it already holds ranks above it: taking a
//! lock of level `L` while holding one of level `M` requires `M < L` in [`Level`]'s order. Two
//! threads then can never wait for each other in a cycle. Same level counts as out of order:
//! no code path holds two groups, or two partitions' locks of one kind, at once, and a second
//! read lock of an `RwLock` on one thread deadlocks behind a waiting writer anyway.
//!
//! A lock's type names its level (`OrderedMutex<level::Txns, Txns>`). In debug builds, which
//! every test runs, each acquisition checks a per-thread stack of the levels held and panics,
//! naming both locks and where each was taken, before it could block out of order. In release
//! builds the wrappers are the parking_lot locks they hold and nothing more.
//!
//! The same record makes the storage rule checkable: no lock is held across an fsync.
//! [`check_fsyncs`] installs a check the storage crate runs before every fsync (outside the
//! few structural changes it names), which panics in debug builds when the thread holds any
//! lock declared here.
//!
//! The check sees only the locks declared here; the broker's other locks (ACLs, credentials,
//! connection limits, task handles, and small ones such as the groups' open transactions)
//! stay plain. It relies on a guard staying on the thread that took it, which parking_lot's
//! guards promise (they are not `Send`, so none is held across an `.await` in a task either).

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use parking_lot::{ArcMutexGuard, Mutex, MutexGuard, RawMutex, RwLock};
use parking_lot::{RwLockReadGuard, RwLockWriteGuard};

use held::Held;

/// Declares [`Level`], whose order is the order of declaration, and one type per level in
/// [`level`] for the locks' types to name.
macro_rules! hierarchy {
    ($($(#[doc = $doc:literal])* $name:ident,)*) => {
        /// The locks, in the order they may be taken: top first.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
        pub enum Level {
            $($(#[doc = $doc])* $name,)*
        }

        /// One type per [`Level`], naming it in a lock's type.
        pub mod level {
            $(
                $(#[doc = $doc])*
                pub enum $name {}

                impl super::Ranked for $name {
                    const LEVEL: super::Level = super::Level::$name;
                }
            )*
        }
    };
}

hierarchy! {
    /// The transaction coordinator's `ends` (`txn/mod.rs`): shared by the transactional
    /// appends while they check and write, exclusive for a change that can end a transaction.
    TxnEnds,
    /// The transaction coordinator's `txns` (`txn/mod.rs`).
    Txns,
    /// One consumer group (`group/load.rs`). Above the map: a group is dropped from the map
    /// under its own lock, so whoever locks it after a lookup sees it Dead.
    Group,
    /// The map of consumer groups, `groups` (`group/mod.rs`). A lookup releases it before
    /// locking the group it found.
    Groups,
    /// The offsets store's `txn_append`, which serialises transactional appends
    /// (`group/store.rs`).
    TxnAppend,
    /// The topic registry's `changes`, held for a whole topic change: it reads and
    /// publishes `topics` and opens, reconfigures or deletes partitions (`topics/mod.rs`).
    TopicChanges,
    /// The topic registry's `topics`, held only to read or swap the map (`topics/mod.rs`).
    Topics,
    /// A partition's `log` (`topics/partition.rs`).
    PartitionLog,
    /// A partition's `role`: leadership and the followers' progress (`topics/partition/`).
    PartitionRole,
}

/// Makes the storage crate check, before each fsync, that this thread holds none of the
/// locks declared here. Debug builds only; idempotent.
pub fn check_fsyncs() {
    #[cfg(debug_assertions)]
    samsa_storage::durable::check_before_fsync(held::assert_none_for_fsync);
}

/// A type that names a [`Level`]; the types of [`level`] are the only ones.
pub trait Ranked {
    const LEVEL: Level;
}

/// A parking_lot `Mutex` at level `L`.
pub struct OrderedMutex<L, T> {
    inner: Mutex<T>,
    level: PhantomData<fn() -> L>,
}

impl<L: Ranked, T> OrderedMutex<L, T> {
    pub const fn new(value: T) -> Self {
        OrderedMutex {
            inner: Mutex::new(value),
            level: PhantomData,
        }
    }

    #[inline]
    #[cfg_attr(debug_assertions, track_caller)]
    pub fn lock(&self) -> OrderedMutexGuard<'_, L, T> {
        OrderedGuard::take(|| self.inner.lock())
    }
}

/// A parking_lot `RwLock` at level `L`; readers and writers rank alike.
pub struct OrderedRwLock<L, T> {
    inner: RwLock<T>,
    level: PhantomData<fn() -> L>,
}

impl<L: Ranked, T> OrderedRwLock<L, T> {
    pub const fn new(value: T) -> Self {
        OrderedRwLock {
            inner: RwLock::new(value),
            level: PhantomData,
        }
    }

    #[inline]
    #[cfg_attr(debug_assertions, track_caller)]
    pub fn read(&self) -> OrderedReadGuard<'_, L, T> {
        OrderedGuard::take(|| self.inner.read())
    }

    #[inline]
    #[cfg_attr(debug_assertions, track_caller)]
    pub fn write(&self) -> OrderedWriteGuard<'_, L, T> {
        OrderedGuard::take(|| self.inner.write())
    }
}

/// A mutex at level `L` shared through an `Arc`, whose guard can own its handle (parking_lot's
/// `lock_arc`), so a lock looked up in a map outlives the map's own lock.
pub struct OrderedArcMutex<L, T> {
    inner: Arc<Mutex<T>>,
    level: PhantomData<fn() -> L>,
}

impl<L, T> Clone for OrderedArcMutex<L, T> {
    fn clone(&self) -> Self {
        OrderedArcMutex {
            inner: self.inner.clone(),
            level: PhantomData,
        }
    }
}

impl<L: Ranked, T> OrderedArcMutex<L, T> {
    pub fn new(value: T) -> Self {
        OrderedArcMutex {
            inner: Arc::new(Mutex::new(value)),
            level: PhantomData,
        }
    }

    #[inline]
    #[cfg_attr(debug_assertions, track_caller)]
    pub fn lock(&self) -> OrderedMutexGuard<'_, L, T> {
        OrderedGuard::take(|| self.inner.lock())
    }

    /// Locks, with a guard that keeps the mutex alive by itself.
    #[inline]
    #[cfg_attr(debug_assertions, track_caller)]
    pub fn lock_arc(&self) -> OrderedArcMutexGuard<L, T> {
        OrderedGuard::take(|| self.inner.lock_arc())
    }

    /// Whether both are handles to one mutex.
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        Arc::ptr_eq(&a.inner, &b.inner)
    }

    /// How many handles there are, guards included.
    pub fn strong_count(this: &Self) -> usize {
        Arc::strong_count(&this.inner)
    }
}

/// A guard of a lock at level `L`: dropping it releases the lock, then the level (fields drop
/// in order).
pub struct OrderedGuard<L, G> {
    guard: G,
    _held: Held,
    level: PhantomData<fn() -> L>,
}

pub type OrderedMutexGuard<'a, L, T> = OrderedGuard<L, MutexGuard<'a, T>>;
pub type OrderedReadGuard<'a, L, T> = OrderedGuard<L, RwLockReadGuard<'a, T>>;
pub type OrderedWriteGuard<'a, L, T> = OrderedGuard<L, RwLockWriteGuard<'a, T>>;
pub type OrderedArcMutexGuard<L, T> = OrderedGuard<L, ArcMutexGuard<RawMutex, T>>;

impl<L: Ranked, G> OrderedGuard<L, G> {
    /// Checks and records level `L`, then runs `lock`: a lock out of order panics before it
    /// can block.
    #[inline]
    #[cfg_attr(debug_assertions, track_caller)]
    fn take(lock: impl FnOnce() -> G) -> Self {
        let held = Held::take(L::LEVEL);
        OrderedGuard {
            guard: lock(),
            _held: held,
            level: PhantomData,
        }
    }
}

impl<L, T> OrderedArcMutexGuard<L, T> {
    /// A handle to the mutex this guard holds.
    pub fn mutex(guard: &Self) -> OrderedArcMutex<L, T> {
        OrderedArcMutex {
            inner: ArcMutexGuard::mutex(&guard.guard).clone(),
            level: PhantomData,
        }
    }
}

impl<L, G: Deref> Deref for OrderedGuard<L, G> {
    type Target = G::Target;
    #[inline]
    fn deref(&self) -> &G::Target {
        &self.guard
    }
}

impl<L, G: DerefMut> DerefMut for OrderedGuard<L, G> {
    #[inline]
    fn deref_mut(&mut self) -> &mut G::Target {
        &mut self.guard
    }
}

/// Debug builds: the levels each thread holds, checked at every acquisition.
#[cfg(debug_assertions)]
mod held {
    use std::cell::RefCell;
    use std::panic::Location;

    use super::Level;

    struct Entry {
        level: Level,
        taken_at: &'static Location<'static>,
        id: u64,
    }

    #[derive(Default)]
    struct Stack {
        entries: Vec<Entry>,
        next_id: u64,
    }

    thread_local! {
        static HELD: RefCell<Stack> = RefCell::default();
    }

    /// This thread's place in the order while it holds one lock; dropping it gives the place
    /// up, whichever order guards are dropped in.
    pub struct Held {
        id: u64,
    }

    impl Held {
        /// Checks that `level` may be taken now, before blocking on it, and records it.
        #[track_caller]
        pub fn take(level: Level) -> Held {
            let at = Location::caller();
            let taken = HELD.with_borrow_mut(|stack| {
                if let Some(held) = stack.entries.iter().max_by_key(|e| e.level) {
                    if held.level >= level {
                        return Err(format!(
                            "lock order violated: taking {level:?} at {at} while holding \
                             {:?} taken at {}; the order is declared in src/lock_order.rs",
                            held.level, held.taken_at
                        ));
                    }
                }
                let id = stack.next_id;
                stack.next_id += 1;
                stack.entries.push(Entry {
                    level,
                    taken_at: at,
                    id,
                });
                Ok(Held { id })
            });
            taken.unwrap_or_else(|message| panic!("{message}"))
        }
    }

    impl Drop for Held {
        fn drop(&mut self) {
            // `try_with`: a guard may outlive the thread-local while the thread exits.
            let _ = HELD.try_with(|held| {
                let mut stack = held.borrow_mut();
                if let Some(i) = stack.entries.iter().rposition(|e| e.id == self.id) {
                    stack.entries.remove(i);
                }
            });
        }
    }

    /// Panics, naming the lock, when this thread holds any: an fsync is about to run.
    pub fn assert_none_for_fsync() {
        let held = HELD.with_borrow(|stack| {
            stack
                .entries
                .iter()
                .map(|e| format!("{:?} taken at {}", e.level, e.taken_at))
                .collect::<Vec<_>>()
        });
        if !held.is_empty() {
            panic!(
                "fsync while holding {}: no lock may be held across an fsync (src/lock_order.rs)",
                held.join(", ")
            );
        }
    }

    /// The levels this thread holds, oldest first.
    #[cfg(test)]
    pub fn levels() -> Vec<Level> {
        HELD.with_borrow(|stack| stack.entries.iter().map(|e| e.level).collect())
    }
}

/// Release builds: nothing to record.
#[cfg(not(debug_assertions))]
mod held {
    use super::Level;

    pub struct Held;

    impl Held {
        #[inline(always)]
        pub fn take(_: Level) -> Held {
            Held
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The levels this thread holds, oldest first; none in release builds.
    fn held() -> Vec<Level> {
        #[cfg(debug_assertions)]
        return held::levels();
        #[cfg(not(debug_assertions))]
        Vec::new()
    }

    fn expect_held(levels: &[Level]) {
        if cfg!(debug_assertions) {
            assert_eq!(held(), levels);
        }
    }

    #[test]
    fn locks_taken_down_the_order_are_allowed() {
        let txns = OrderedMutex::<level::Txns, _>::new(1);
        let topics = OrderedRwLock::<level::Topics, _>::new(2);
        let log = OrderedRwLock::<level::PartitionLog, _>::new(3);
        let role = OrderedMutex::<level::PartitionRole, _>::new(4);
        let (a, b, c, d) = (txns.lock(), topics.read(), log.write(), role.lock());
        expect_held(&[
            Level::Txns,
            Level::Topics,
            Level::PartitionLog,
            Level::PartitionRole,
        ]);
        assert_eq!(*a + *b + *c + *d, 10);
    }

    #[test]
    fn a_dropped_guard_gives_its_level_back() {
        let txns = OrderedMutex::<level::Txns, _>::new(());
        let log = OrderedRwLock::<level::PartitionLog, _>::new(());
        drop(log.write());
        expect_held(&[]);
        let _txns = txns.lock();
        let _log = log.read();
        expect_held(&[Level::Txns, Level::PartitionLog]);
    }

    #[test]
    fn guards_may_drop_in_any_order() {
        let txns = OrderedMutex::<level::Txns, _>::new(());
        let group = OrderedArcMutex::<level::Group, _>::new(());
        let append = OrderedMutex::<level::TxnAppend, _>::new(());
        let first = txns.lock();
        let second = group.lock_arc();
        drop(first);
        expect_held(&[Level::Group]);
        let third = append.lock();
        drop(second);
        expect_held(&[Level::TxnAppend]);
        drop(third);
        expect_held(&[]);
    }

    #[test]
    fn an_arc_guard_hands_back_its_mutex() {
        let group = OrderedArcMutex::<level::Group, _>::new(7);
        let mut locked = group.lock_arc();
        *locked += 1;
        let handle = OrderedArcMutexGuard::mutex(&locked);
        assert!(OrderedArcMutex::ptr_eq(&group, &handle));
        assert_eq!(OrderedArcMutex::strong_count(&group), 3);
        drop(locked);
        assert_eq!(*handle.lock(), 8);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "lock order violated: taking Txns")]
    fn a_lock_above_one_held_panics() {
        let txns = OrderedMutex::<level::Txns, _>::new(());
        let topics = OrderedRwLock::<level::Topics, _>::new(());
        let _topics = topics.read();
        let _txns = txns.lock();
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "lock order violated: taking PartitionLog")]
    fn two_locks_of_one_level_panic() {
        let one = OrderedRwLock::<level::PartitionLog, _>::new(());
        let other = OrderedRwLock::<level::PartitionLog, _>::new(());
        let _one = one.read();
        let _other = other.read();
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "fsync while holding PartitionLog")]
    fn an_fsync_under_a_lock_panics() {
        let log = OrderedRwLock::<level::PartitionLog, _>::new(());
        let _log = log.write();
        held::assert_none_for_fsync();
    }

    #[test]
    #[cfg(debug_assertions)]
    fn the_panic_names_both_locks_and_leaves_the_stack_as_it_was() {
        let group = OrderedArcMutex::<level::Group, _>::new(());
        let role = OrderedMutex::<level::PartitionRole, _>::new(());
        let _role = role.lock();
        let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _group = group.lock();
        }))
        .unwrap_err();
        let message = panic.downcast_ref::<String>().unwrap();
        assert!(
            message.contains("taking Group at src/lock_order.rs"),
            "{message}"
        );
        assert!(
            message.contains("holding PartitionRole taken at src/lock_order.rs"),
            "{message}"
        );
        expect_held(&[Level::PartitionRole]);
        // The refused lock was never taken.
        assert!(group.inner.try_lock().is_some());
    }
}
