//! Running a script in slices, so that a core whose script passes
//! `busy-reply-threshold` goes on serving its other clients (`-BUSY`, SCRIPT KILL,
//! FUNCTION KILL, SHUTDOWN NOSAVE), as Redis does between a script's instructions.
//!
//! # The plan
//! A script's Lua runs on a stack of its own (a `corosensei` coroutine, one stack per
//! core thread, reused), not on the core's. The interpreter's instruction hook
//! (every 100,000 instructions, see `engine`) calls [`maybe_suspend`]: once the script
//! has run past the threshold, and at most every [`SLICE`], it switches back to the
//! core's stack. The code that resumed it (an async task, or a shard job that returns
//! and is sent again: see `run`) then lets the core's loop run one turn ([`pause`])
//! and resumes it. Why a stack of its own rather than Lua's coroutines: Lua 5.1 (and mlua's hook)
//! cannot yield from a hook, nor across `pcall`, metamethods or C callbacks; a stack
//! switch suspends wherever the hook fires.
//!
//! What keeps the script atomic while it is suspended is not the suspension itself but
//! what the script holds: every shard (a held-all script's transaction) or its own
//! shard whole (a one-shard script claims it the first time it is suspended, see
//! `run`). Work that reaches a held shard parks as it does behind any transaction;
//! the other clients' commands are answered `-BUSY` by admission.
//!
//! What must not happen while a script is suspended is another use of the same
//! interpreter on this thread: the suspended stack is in the middle of a call into
//! it. Every entry that would use an interpreter (EVAL, FCALL, SCRIPT LOAD, FUNCTION
//! LOAD/RESTORE) answers `-BUSY` while a script is suspended here
//! (`run::busy_here`), as Redis answers any of them during a busy script, or waits
//! ([`wait_for_core`]) when it comes from the master or the AOF; the hook
//! only suspends the run it belongs to (the yielder is cleared while it is
//! suspended).
//!
//! A slice that was started is always finished: nothing here drops a suspended
//! coroutine (that would unwind through the interpreter's C frames); [`Slices`]'
//! `Drop` (a task dropped with its script suspended, a thread's end) resumes it once
//! with [`finishing`] set, which makes the hook stop the script at once.

use corosensei::stack::DefaultStack;
use corosensei::{Coroutine, CoroutineResult, Yielder};
use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

/// How long a script past the threshold runs between two moments it lets the core's
/// loop run (Redis serves its clients at every hook call once past the threshold,
/// roughly each millisecond).
pub const SLICE: Duration = Duration::from_millis(5);

/// Let the core's loop run one turn between two slices: it looks at its sockets and
/// runs the tasks that woke (clients to answer `-BUSY`, a SCRIPT KILL), then the
/// script goes on. A fixed 1 ms sleep instead cost a script past the threshold 55%
/// of its speed (timers round up to whole milliseconds); this costs little when
/// nobody is waiting (`benches/README.md`, "Busy scripts").
pub async fn pause() {
    crate::runtime::backend::after_io().await;
}

/// A script's stack: the core threads' own size (Rust's default, 2 MiB) and as much
/// again for the interpreter's frames. Memory is only committed where it is touched.
const STACK_SIZE: usize = 4 << 20;

type Inner<T> = Coroutine<(), (), T, DefaultStack>;

thread_local! {
    /// The suspendable run now on this thread's stack (null when none, or while it is
    /// suspended).
    static YIELDER: Cell<*const Yielder<(), ()>> = const { Cell::new(std::ptr::null()) };
    /// When the running slice started (at its first hook past the threshold): the
    /// hook suspends it [`SLICE`] later.
    static SLICE_START: Cell<Option<Instant>> = const { Cell::new(None) };
    /// A script is suspended on this thread (its interpreter is in use).
    static SUSPENDED: Cell<bool> = const { Cell::new(false) };
    /// Suspensions are refused while a dropped run is finished (see `Drop`).
    static FINISHING: Cell<bool> = const { Cell::new(false) };
    /// A spare stack, so that a script does not map one per run.
    static SPARE: RefCell<Option<DefaultStack>> = const { RefCell::new(None) };
}

/// A run of `T`-returning script code that may be suspended.
pub struct Slices<T: 'static> {
    inner: Option<Inner<T>>,
}

impl<T: 'static> Slices<T> {
    /// `body` on a stack of its own, not started yet.
    pub fn new(body: impl FnOnce() -> T + 'static) -> Slices<T> {
        let stack = SPARE
            .with(|s| s.borrow_mut().take())
            .unwrap_or_else(|| DefaultStack::new(STACK_SIZE).expect("a script stack maps"));
        let inner = Coroutine::with_stack(stack, move |y: &Yielder<(), ()>, ()| {
            YIELDER.set(y as *const _);
            let out = body();
            YIELDER.set(std::ptr::null());
            out
        });
        Slices { inner: Some(inner) }
    }

    /// Run until the script ends (`Some`) or suspends itself (`None`).
    pub fn resume(&mut self) -> Option<T> {
        let co = self.inner.as_mut()?;
        SUSPENDED.set(false);
        // The slice's clock starts at the first hook past the threshold (no clock
        // read on the path of a script that ends before it).
        SLICE_START.set(None);
        let result = co.resume(());
        match result {
            CoroutineResult::Yield(()) => {
                SUSPENDED.set(true);
                None
            }
            CoroutineResult::Return(out) => {
                if let Some(co) = self.inner.take() {
                    let stack = co.into_stack();
                    SPARE.with(|s| *s.borrow_mut() = Some(stack));
                }
                Some(out)
            }
        }
    }
}

impl<T: 'static> Drop for Slices<T> {
    fn drop(&mut self) {
        if self
            .inner
            .as_ref()
            .is_some_and(|c| c.started() && !c.done())
        {
            // Finish it here, on this thread, without suspending again.
            FINISHING.set(true);
            let _ = self.resume();
            FINISHING.set(false);
            SUSPENDED.set(false);
        }
    }
}

/// The interpreter's hook: suspend the running script if `due` says it has passed
/// the busy threshold and its slice is over (a slice starts at the first hook that
/// finds it due).
pub fn maybe_suspend(due: impl FnOnce() -> bool) {
    let y = YIELDER.get();
    if y.is_null() || FINISHING.get() {
        return;
    }
    if !due() {
        return;
    }
    match SLICE_START.get() {
        None => return SLICE_START.set(Some(Instant::now())),
        Some(t) if t.elapsed() < SLICE => return,
        Some(_) => {}
    }
    YIELDER.set(std::ptr::null());
    // SAFETY: `y` was set by this thread's running coroutine body from the `&Yielder`
    // corosensei passed it, which lives at the base of the coroutine's stack until the
    // body returns; the body clears YIELDER before it returns, and YIELDER is null
    // while the coroutine is suspended (just above), so a non-null value is always the
    // yielder of the coroutine executing right now on this thread, and this call runs
    // on that coroutine's stack (the hook is only reached from its interpreter call).
    unsafe { (*y).suspend(()) };
    YIELDER.set(y);
}

/// True while a dropped run is finished: the hook stops the script.
pub fn finishing() -> bool {
    FINISHING.get()
}

/// Wait while a script is suspended on this thread: its interpreter is in use (the
/// master's link and the AOF's replay, see `run::busy_here`).
pub async fn wait_for_core() {
    while SUSPENDED.get() {
        crate::runtime::backend::sleep(Duration::from_millis(1)).await;
    }
}

/// True while a script is suspended on this thread.
pub fn suspended_here() -> bool {
    SUSPENDED.get()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_suspends_when_due_and_resumes_where_it_was() {
        let mut run = Slices::new(|| {
            let mut steps = 0;
            for _ in 0..3 {
                maybe_suspend(|| true);
                std::thread::sleep(SLICE);
                maybe_suspend(|| true);
                steps += 1;
            }
            steps
        });
        assert_eq!(run.resume(), None);
        assert!(suspended_here());
        assert_eq!(run.resume(), None);
        assert_eq!(run.resume(), None);
        assert_eq!(run.resume(), Some(3));
        assert!(!suspended_here());
        // The stack is kept for the next run.
        assert!(SPARE.with(|s| s.borrow().is_some()));
        let mut quick = Slices::new(|| {
            maybe_suspend(|| false);
            7
        });
        assert_eq!(quick.resume(), Some(7));
    }

    #[test]
    fn a_dropped_run_is_finished_without_suspending() {
        let done = std::rc::Rc::new(Cell::new(false));
        let flag = done.clone();
        // Endless unless told it is being finished (as the interpreter's hook is).
        let mut run = Slices::new(move || loop {
            maybe_suspend(|| true);
            std::thread::sleep(SLICE);
            maybe_suspend(|| true);
            if finishing() {
                flag.set(true);
                return;
            }
        });
        assert_eq!(run.resume(), None);
        drop(run);
        assert!(done.get());
        assert!(!suspended_here());
    }
}
