//! Fork safety of the library's own locks.
//!
//! `fork()` copies a process with only the thread that called it. A lock another thread held
//! at that moment (a persist on a worker thread, an auto-refresh updating its cache) would stay
//! held for ever in the child, whose first call would then wait for ever. So the locks a call
//! takes (the session's state, its author, its persist lock, the blocking facade's runtime, the
//! cache of compiled schemas, the memory engine) are a [`Mutex`] of this module: holding one
//! also holds a pass through one process-wide gate, and [`prepare`], run just before a fork,
//! closes the gate: it waits until no thread holds any of these locks (each is held only for a
//! moment, never across I/O) and keeps every other thread out until [`after`] opens it again,
//! in the parent and in the child. The child then finds every lock free and the data behind
//! each one whole.
//!
//! The handlers are registered with `pthread_atfork(prepare, after, after)`. Registering is an
//! `unsafe` call, which this crate does not make: the Python module registers them when it is
//! imported; a Rust program that forks while other threads call confo registers them itself
//! (with the `libc` crate, once, before its threads start).
//!
//! A thread takes its pass once, for its outermost lock: a lock taken while it holds another
//! (the runtime's, then the state's, in a forked child's first call) does not wait at a gate
//! that its own outer lock keeps from closing. A fork made by a thread that holds one of these
//! locks itself (from a callback run under one) leaves the gate open: that thread's own lock
//! is the one the child gets, and it lets it go as it returns.

use std::cell::{Cell, RefCell};
use std::ops::{Deref, DerefMut};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Open while no fork is being made: every holder of a [`Mutex`] holds a read guard of it (one
/// per thread), the forking thread its write guard.
static GATE: RwLock<()> = RwLock::new(());

thread_local! {
    /// How many of this module's locks this thread holds.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// The forking thread's hold of the gate, from [`prepare`] to [`after`].
    static FORKING: RefCell<Option<RwLockWriteGuard<'static, ()>>> = const { RefCell::new(None) };
}

/// A mutual-exclusion lock that a `fork()` waits for (see the module's documentation). As
/// `std::sync::Mutex`, without poisoning: every mutation made under these locks is computed
/// before it is applied, so a panic elsewhere cannot leave the data half-changed.
#[derive(Debug, Default)]
pub struct Mutex<T> {
    inner: std::sync::Mutex<T>,
}

impl<T> Mutex<T> {
    /// A new unlocked lock holding `value`.
    pub const fn new(value: T) -> Self {
        Mutex { inner: std::sync::Mutex::new(value) }
    }

    /// Waits for the lock (and, for a thread that holds none of these locks, for the gate to
    /// be open) and holds it until the guard is dropped.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        let pass = Pass::take();
        let guard = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        MutexGuard { guard, _pass: pass }
    }
}

/// A held [`Mutex`]: derefs to its data; dropping it lets the lock go.
#[derive(Debug)]
pub struct MutexGuard<'a, T> {
    // Dropped first: the lock is let go before the pass.
    guard: std::sync::MutexGuard<'a, T>,
    _pass: Pass,
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

/// A thread's pass through the gate: the outermost lock's holds a read guard of it.
#[derive(Debug)]
struct Pass {
    gate: Option<RwLockReadGuard<'static, ()>>,
}

impl Pass {
    fn take() -> Pass {
        let depth = DEPTH.with(|depth| depth.replace(depth.get() + 1));
        let gate = (depth == 0).then(|| GATE.read().unwrap_or_else(|poisoned| poisoned.into_inner()));
        Pass { gate }
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        DEPTH.with(|depth| depth.set(depth.get() - 1));
        self.gate.take();
    }
}

/// The `pthread_atfork` prepare handler: waits until no thread holds one of this module's
/// locks and keeps them all free until [`after`]. Does nothing on a thread that holds one
/// itself.
pub extern "C" fn prepare() {
    if DEPTH.with(Cell::get) > 0 {
        return;
    }
    let closed = GATE.write().unwrap_or_else(|poisoned| poisoned.into_inner());
    FORKING.with(|forking| *forking.borrow_mut() = Some(closed));
}

/// The `pthread_atfork` parent and child handler: opens what [`prepare`] closed.
pub extern "C" fn after() {
    let closed = FORKING.with(|forking| forking.borrow_mut().take());
    drop(closed);
}

/// A value that only the process that made it drops: in a child made by `fork()` it is leaked.
///
/// A runtime, or a session whose tasks and connections live on one, waits for its threads when
/// dropped, and a child has none of its parent's threads: a session made before a fork and
/// let go of in the child (say, collected by the child's garbage collector) would wait there
/// for ever. Leaked, it costs the child nothing it had not already copied.
#[derive(Debug)]
pub(crate) struct Local<T> {
    value: Option<T>,
    pid: u32,
}

impl<T> Local<T> {
    /// `value`, owned by this process.
    pub(crate) fn new(value: T) -> Self {
        Local { value: Some(value), pid: std::process::id() }
    }
}

impl<T> Deref for Local<T> {
    type Target = T;
    fn deref(&self) -> &T {
        match &self.value {
            Some(value) => value,
            None => unreachable!("taken only when dropped"),
        }
    }
}

impl<T> DerefMut for Local<T> {
    fn deref_mut(&mut self) -> &mut T {
        match &mut self.value {
            Some(value) => value,
            None => unreachable!("taken only when dropped"),
        }
    }
}

impl<T> Drop for Local<T> {
    fn drop(&mut self) {
        if self.pid != std::process::id() {
            std::mem::forget(self.value.take());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn prepare_waits_for_every_holder_and_keeps_the_locks_free_until_after() {
        static LOCK: Mutex<u32> = Mutex::new(0);
        let (held_tx, held_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let mut guard = LOCK.lock();
            *guard += 1;
            held_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            *guard += 1;
        });
        held_rx.recv().unwrap();
        // The holder lets go only when told: prepare, on another thread, must wait for it.
        let (prepared_tx, prepared_rx) = mpsc::channel();
        static OPENED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        let forker = std::thread::spawn(move || {
            prepare();
            prepared_tx.send(()).unwrap();
            // While the gate is closed the lock is free, and no other thread can take it.
            assert_eq!(*LOCK.inner.lock().unwrap(), 2, "the holder's whole change is there");
            std::thread::sleep(Duration::from_millis(100));
            OPENED.store(true, std::sync::atomic::Ordering::SeqCst);
            after();
        });
        assert!(prepared_rx.recv_timeout(Duration::from_millis(200)).is_err(), "prepare did not wait for the holder");
        go_tx.send(()).unwrap();
        prepared_rx.recv_timeout(Duration::from_secs(5)).expect("prepare went on once the holder let go");
        *LOCK.lock() += 1;
        assert!(OPENED.load(std::sync::atomic::Ordering::SeqCst), "a lock was taken while the gate was closed");
        holder.join().unwrap();
        forker.join().unwrap();
        assert_eq!(*LOCK.lock(), 3);
    }

    #[test]
    fn nested_locks_and_a_fork_from_inside_one_do_not_wait_for_themselves() {
        static OUTER: Mutex<()> = Mutex::new(());
        static INNER: Mutex<()> = Mutex::new(());
        let outer = OUTER.lock();
        // Another thread closing the gate now must not keep this thread from its inner lock.
        let closer = std::thread::spawn(|| {
            prepare();
            after();
        });
        std::thread::sleep(Duration::from_millis(50));
        let inner = INNER.lock();
        // A fork from here (a callback under a lock) leaves the gate open instead of waiting.
        prepare();
        after();
        drop(inner);
        drop(outer);
        closer.join().unwrap();
        assert_eq!(DEPTH.with(Cell::get), 0);
    }
}
