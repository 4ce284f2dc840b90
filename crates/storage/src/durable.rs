//! Every fsync the store makes goes through here, so one place can check the rule that no
//! lock is held across an fsync, and tests can make an fsync slow on purpose.
//!
//! The broker installs its check with [`check_before_fsync`] (its lock hierarchy panics in
//! debug builds when a thread holding a partition's lock reaches an fsync). A few changes
//! must keep a log locked while they make it durable, because nothing may read or append
//! to a log half rewritten: opening (recovery), follower truncation, the compaction swap, and
//! the leader-epoch checkpoint written once per new epoch. They say so with
//! [`StructuralChange`], and the check lets them pass; every other fsync must come with no
//! lock held.

use std::cell::Cell;
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::OnceLock;

static BEFORE_FSYNC: OnceLock<fn()> = OnceLock::new();

thread_local! {
    static STRUCTURAL: Cell<usize> = const { Cell::new(0) };
}

/// Installs `check`, run before every fsync outside a [`StructuralChange`]; the first call wins.
pub fn check_before_fsync(check: fn()) {
    let _ = BEFORE_FSYNC.set(check);
}

/// Marks the current thread as making one of the structural changes named in the module
/// header, for as long as it lives.
pub(crate) struct StructuralChange(());

impl StructuralChange {
    pub(crate) fn begin() -> StructuralChange {
        STRUCTURAL.with(|depth| depth.set(depth.get() + 1));
        StructuralChange(())
    }
}

impl Drop for StructuralChange {
    fn drop(&mut self) {
        STRUCTURAL.with(|depth| depth.set(depth.get() - 1));
    }
}

fn before(path: &Path) {
    if STRUCTURAL.with(Cell::get) == 0 {
        if let Some(check) = BEFORE_FSYNC.get() {
            check();
        }
    }
    test_hooks::before(path);
}

/// Fsyncs a file's data; `path` names it (or its directory) for the checks.
pub(crate) fn sync_data(file: &File, path: &Path) -> io::Result<()> {
    before(path);
    file.sync_data()
}

/// Fsyncs a file's data and metadata.
pub(crate) fn sync_all(file: &File, path: &Path) -> io::Result<()> {
    before(path);
    file.sync_all()
}

/// Fsync point "directory": makes file creations, renames and removals durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    before(dir);
    File::open(dir)?.sync_all()
}

/// Test hooks: fsyncs under a directory held until released, so a test can make a disk slow
/// deterministically and check what goes on meanwhile. Cheap when unused (one atomic load).
#[doc(hidden)]
pub mod test_hooks {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Weak};
    use std::time::Duration;

    use parking_lot::{Condvar, Mutex};

    static ANY: AtomicBool = AtomicBool::new(false);
    static HOLDS: Mutex<Vec<Weak<Hold>>> = Mutex::new(Vec::new());

    /// A held fsync gives up after this long, so that code which waits for it where it
    /// should not fails its test instead of hanging it.
    const GIVE_UP: Duration = Duration::from_secs(10);

    struct Hold {
        under: PathBuf,
        held: Mutex<bool>,
        changed: Condvar,
        entered: AtomicUsize,
    }

    /// Holds every fsync of a file under `under` (or of the directory itself) until dropped
    /// or [`FsyncHold::release`]d.
    pub struct FsyncHold(Arc<Hold>);

    pub fn hold_fsyncs(under: &Path) -> FsyncHold {
        let hold = Arc::new(Hold {
            under: under.to_path_buf(),
            held: Mutex::new(true),
            changed: Condvar::new(),
            entered: AtomicUsize::new(0),
        });
        let mut holds = HOLDS.lock();
        holds.retain(|h| h.strong_count() > 0);
        holds.push(Arc::downgrade(&hold));
        ANY.store(true, Ordering::SeqCst);
        FsyncHold(hold)
    }

    impl FsyncHold {
        /// Blocks until an fsync has reached the hold (at most ten seconds); whether one did.
        pub fn wait_entered(&self) -> bool {
            let mut held = self.0.held.lock();
            let deadline = std::time::Instant::now() + GIVE_UP;
            while self.0.entered.load(Ordering::SeqCst) == 0 {
                if self.0.changed.wait_until(&mut held, deadline).timed_out() {
                    return false;
                }
            }
            true
        }

        /// How many fsyncs have reached the hold so far.
        pub fn entered(&self) -> usize {
            self.0.entered.load(Ordering::SeqCst)
        }

        /// Whether the fsyncs are still held: false once released, or once one gave up.
        pub fn is_held(&self) -> bool {
            *self.0.held.lock()
        }

        pub fn release(&self) {
            *self.0.held.lock() = false;
            self.0.changed.notify_all();
        }
    }

    impl Drop for FsyncHold {
        fn drop(&mut self) {
            self.release();
        }
    }

    pub(super) fn before(path: &Path) {
        if !ANY.load(Ordering::Relaxed) {
            return;
        }
        let hold = HOLDS
            .lock()
            .iter()
            .filter_map(Weak::upgrade)
            .find(|h| path.starts_with(&h.under));
        let Some(hold) = hold else { return };
        let mut held = hold.held.lock();
        hold.entered.fetch_add(1, Ordering::SeqCst);
        hold.changed.notify_all();
        let deadline = std::time::Instant::now() + GIVE_UP;
        while *held {
            if hold.changed.wait_until(&mut held, deadline).timed_out() {
                // Gives up: marks the hold released, which the test sees.
                *held = false;
                hold.changed.notify_all();
            }
        }
    }
}
