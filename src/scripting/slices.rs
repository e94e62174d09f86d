//! Running a script in slices, so that a core whose script passes
//! `busy-reply-threshold` goes on serving its other clients (`-BUSY`, SCRIPT KILL,
//! FUNCTION KILL, SHUTDOWN NOSAVE), as Redis does between a script's instructions,
//! and so that a script waiting for another core's answer does not stop its own.
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
//! ([`interpreter_free`]) when it comes from the master or the AOF; the hook
//! only suspends the run it belongs to (the yielder is cleared while it is
//! suspended).
//!
//! # Waiting for another core inside a script
//! A script holding its keys or every shard runs on the core that received it, from
//! that client's task (`run::run_holding`), and a `redis.call` for another core's
//! shard waits for that core's answer. Blocking the thread for it (watching, then
//! sleeping) left the core idle for a round trip per such call: `two` in
//! `benches/scripting.sh` spent 17% of its CPU watching. Such a run is made with
//! [`Slices::awaitable`]: its `redis.call` hands the answer's future to
//! [`suspend_until`], which switches back to the task's stack; the task awaits the
//! future ([`Slices::finish`]), its core serving its other clients and its inbox
//! meanwhile, and resumes the script with the answer.
//!
//! The interpreter stays in the middle of that script while it waits, so nothing else
//! may use it: unlike a busy script's, this wait is short and not Redis's `-BUSY`,
//! so the entries that would use it wait until it is free ([`interpreter_free`], a
//! queue woken one at a time as scripts end) instead of answering `-BUSY`, and a
//! script sent to this core's shard as a job is sent back to try again (it finds the
//! running script's state in place: `run::run_on_shard`). A script waiting so holds
//! what it claimed, so it stays atomic; its claims were granted before it took the
//! interpreter, and it never waits for a claim while holding it (`Tx::claim_more`
//! never waits), so a script queued for the interpreter, holding claims of its own,
//! cannot hold it up. What the waiting script had set for the commands it runs
//! (`propagation::with_targets`) is put back to the default for the others meanwhile
//! (`run::answer_of`).
//!
//! A slice that was started is always finished: nothing here drops a suspended
//! coroutine (that would unwind through the interpreter's C frames); [`Slices`]'
//! `Drop` (a task dropped with its script suspended, a thread's end) resumes it once
//! with [`finishing`] set, which makes the hook stop the script at once.

use corosensei::stack::DefaultStack;
use corosensei::{Coroutine, CoroutineResult, Yielder};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
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
    /// The running slice's run may wait for a future ([`Slices::awaitable`]).
    static CAN_AWAIT: Cell<bool> = const { Cell::new(false) };
    /// What the script suspended to wait for ([`suspend_until`]), for the task that
    /// resumes it to await.
    static AWAITED: RefCell<Option<Pin<Box<dyn Future<Output = ()>>>>> =
        const { RefCell::new(None) };
    /// A script is suspended on this thread waiting for a future (its interpreter is
    /// in use, but it is not busy).
    static AWAITING: Cell<bool> = const { Cell::new(false) };
    /// The tasks waiting for this thread's interpreter ([`interpreter_free`]).
    static QUEUE: RefCell<std::collections::VecDeque<(u64, Waker)>> =
        const { RefCell::new(std::collections::VecDeque::new()) };
    /// The id the next task queued in `QUEUE` gets.
    static NEXT_WAITER: Cell<u64> = const { Cell::new(0) };
}

/// A run of `T`-returning script code that may be suspended.
pub struct Slices<T: 'static> {
    inner: Option<Inner<T>>,
    /// Its script may wait for a future ([`Slices::awaitable`]).
    awaitable: bool,
}

impl<T: 'static> Slices<T> {
    /// `body` on a stack of its own, not started yet, whose script may suspend to
    /// wait for a future ([`suspend_until`]): run it with [`Slices::finish`].
    pub fn awaitable(body: impl FnOnce() -> T + 'static) -> Slices<T> {
        let mut run = Slices::new(body);
        run.awaitable = true;
        run
    }

    /// Run it to its end from a task: between slices the core's loop runs a turn
    /// ([`pause`]); while its script waits for a future, the task awaits that future.
    pub async fn finish(mut self) -> T {
        loop {
            if let Some(done) = self.resume() {
                return done;
            }
            match AWAITED.with(|a| a.borrow_mut().take()) {
                Some(awaited) => awaited.await,
                None => pause().await,
            }
        }
    }

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
        Slices {
            inner: Some(inner),
            awaitable: false,
        }
    }

    /// Run until the script ends (`Some`) or suspends itself (`None`).
    pub fn resume(&mut self) -> Option<T> {
        let co = self.inner.as_mut()?;
        SUSPENDED.set(false);
        AWAITING.set(false);
        // The slice's clock starts at the first hook past the threshold (no clock
        // read on the path of a script that ends before it).
        SLICE_START.set(None);
        let could = CAN_AWAIT.replace(self.awaitable && !FINISHING.get());
        let result = co.resume(());
        CAN_AWAIT.set(could);
        match result {
            CoroutineResult::Yield(()) => {
                if AWAITED.with(|a| a.borrow().is_some()) {
                    AWAITING.set(true);
                } else {
                    SUSPENDED.set(true);
                }
                None
            }
            CoroutineResult::Return(out) => {
                if let Some(co) = self.inner.take() {
                    let stack = co.into_stack();
                    SPARE.with(|s| *s.borrow_mut() = Some(stack));
                }
                wake_next();
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
            // (A future it was waiting for is dropped: it resumes without it, and
            // waits for its answer in place; see `suspend_until`.)
            AWAITED.with(|a| a.borrow_mut().take());
            FINISHING.set(true);
            let _ = self.resume();
            FINISHING.set(false);
            SUSPENDED.set(false);
            AWAITING.set(false);
            wake_next();
        }
    }
}

/// From the script's own code: suspend it until `make`'s future completes, and give
/// its output. `None`, without calling `make`, where the run cannot wait so (a run
/// not made [`Slices::awaitable`], one being finished by `Drop`); and `None` if the
/// run was dropped while it waited: the caller then waits its own way.
pub fn suspend_until<R: 'static, F: Future<Output = R> + 'static>(
    make: impl FnOnce() -> F,
) -> Option<R> {
    let y = YIELDER.get();
    if y.is_null() || !CAN_AWAIT.get() || FINISHING.get() {
        return None;
    }
    let out: std::rc::Rc<Cell<Option<R>>> = std::rc::Rc::new(Cell::new(None));
    let filled = out.clone();
    let fut = make();
    AWAITED.with(|a| *a.borrow_mut() = Some(Box::pin(async move { filled.set(Some(fut.await)) })));
    YIELDER.set(std::ptr::null());
    // SAFETY: as in `maybe_suspend`: `y` is the yielder of the coroutine running now
    // on this thread, and this runs on its stack (called from the script's
    // `redis.call`, inside the interpreter call the coroutine's body made).
    unsafe { (*y).suspend(()) };
    YIELDER.set(y);
    out.take()
}

/// True while this thread's interpreter is in the middle of a suspended script, busy
/// or waiting for a future.
fn in_use_here() -> bool {
    SUSPENDED.get() || AWAITING.get()
}

/// Wait until no script is suspended on this thread, in its turn: what would use the
/// interpreter (a script's run, compiling a script or a library) waits here while a
/// script waits for a future. Waiters are woken one at a time, as scripts end; each
/// one let through wakes the next, which goes on too if the interpreter is still free
/// when it runs, or takes its place at the head of the queue again.
pub async fn interpreter_free() {
    if !in_use_here() {
        return;
    }
    /// Its place in `QUEUE` (an id), once it has one.
    struct Queued {
        id: Option<u64>,
        done: bool,
    }
    impl Future for Queued {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            let id = self.id;
            if !in_use_here() {
                if let Some(id) = id {
                    QUEUE.with(|q| q.borrow_mut().retain(|(i, _)| *i != id));
                }
                self.done = true;
                wake_next();
                return Poll::Ready(());
            }
            QUEUE.with(|q| {
                let mut q = q.borrow_mut();
                match id {
                    None => {
                        let id = NEXT_WAITER.get();
                        NEXT_WAITER.set(id.wrapping_add(1));
                        q.push_back((id, cx.waker().clone()));
                        self.id = Some(id);
                    }
                    Some(id) => match q.iter_mut().find(|(i, _)| *i == id) {
                        Some(entry) => entry.1 = cx.waker().clone(),
                        // Woken, but the interpreter was taken again: first in line.
                        None => q.push_front((id, cx.waker().clone())),
                    },
                }
            });
            Poll::Pending
        }
    }
    impl Drop for Queued {
        fn drop(&mut self) {
            let (Some(id), false) = (self.id, self.done) else {
                return;
            };
            let was_queued = QUEUE.with(|q| {
                let mut q = q.borrow_mut();
                let before = q.len();
                q.retain(|(i, _)| *i != id);
                q.len() != before
            });
            // Woken and dropped before it ran: the next in line goes instead.
            if !was_queued {
                wake_next();
            }
        }
    }
    Queued {
        id: None,
        done: false,
    }
    .await
}

/// Wake the first task waiting for this thread's interpreter, if it is free.
fn wake_next() {
    if in_use_here() {
        return;
    }
    if let Some((_, w)) = QUEUE.with(|q| q.borrow_mut().pop_front()) {
        w.wake();
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
