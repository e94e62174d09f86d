//! The readiness-based backend: one single-threaded executor per core on epoll.
//!
//! Why our own and not another runtime: what Shardis needs from an executor is small
//! (spawn, timers, TCP accept/read/write, wake-ups from other cores) and the part that
//! decides its speed, how a core waits for work from another core, is exactly what
//! general runtimes hide. So this is ~400 lines over two maintained crates: `mio` (the
//! epoll registry, its eventfd waker, non-blocking sockets) and `async-task` (task
//! allocation, wakers, join handles), with no `unsafe` of ours.
//!
//! Shape:
//! - **Tasks** live on the thread that spawned them. A waker fired on that thread
//!   pushes the task on the local run queue; a waker fired on another thread (a hop's
//!   answer, a blocked client's wake-up) pushes it on the executor's [`Remote`] queue
//!   and, only if the executor is parked in `epoll_wait`, writes its eventfd. The
//!   parked flag and the pending flag are both `SeqCst`, so either the sleeper sees the
//!   work before it sleeps or the waker sees it asleep (no lost wake-up).
//! - **I/O** is edge-triggered: a socket is registered once for read and write; a read
//!   or write is tried first and only a `WouldBlock` stores the task's waker, which the
//!   next edge wakes. Events are handled between tasks, on the same thread, so a waker
//!   is always stored before the event that must wake it is looked at. A read that
//!   fills only part of its buffer counts as a `WouldBlock` too (the queue was empty
//!   and later data brings a new edge; tokio's `PollEvented` does the same), unless
//!   an edge said the peer closed: an unpipelined request then costs one `recvfrom`,
//!   not two.
//! - **Timers**: an ordered map of deadlines; the earliest bounds the epoll timeout.
//! - **The loop**: run up to [`BATCH`] ready tasks, take the remote queue, fire due
//!   timers, then look at I/O: without waiting when tasks are still ready, else wait.
//!   Tasks woken by other cores while the batch runs go to the front of the queue
//!   after the current task (behind those put there before them; half a batch of them
//!   at most per turn): they are what another core's work waits for (a hop to
//!   answer, an answer to go on with, a grant), and behind this core's 50 other ready
//!   connections they waited a whole batch. Measured in `benches/README.md`
//!   ("Remote wake-ups first"): 2 shards, 50 clients, P1 GET/SET 8% faster with 12%
//!   less CPU, a script over two shards 15-50% faster.
//!   Before waiting it watches its remote queue for up to [`SPIN`] while a
//!   multi-shard transaction that sends more work holds a claim on its shard (the
//!   hint set by [`set_spin_hint`]; a split command's parts do not count, as only
//!   their release follows): the transaction's next step or its release usually comes
//!   within a few microseconds, and catching it without sleeping saves the eventfd
//!   write on the other core and the wake-up on this one (glommio's loop does the same
//!   through our patch: vendor/glommio/PATCHED.md). It does not watch for the answers
//!   to its own connections' hops: see [`SPIN`]. Measured alternatives (looking at
//!   the sockets between short spins; deferring wake-ups to the end of a loop turn)
//!   were slower for multi-shard work, see `benches/README.md`.

use async_task::{Runnable, Task};
use mio::{Events, Interest, Poll, Token};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll as TaskPoll, Waker};
use std::time::{Duration, Instant};

/// Most tasks run between two looks at I/O.
const BATCH: usize = 128;
/// Longest poll (remote queue and sockets) before parking while a transaction holds a
/// claim on this core's shard.
///
/// Its next step comes within a few microseconds; a longer watch only burns CPU when
/// the other cores are slow to send it. Measured (benches/README.md, "Spinning before
/// parking"): 50 µs cost 20-25% more CPU per request than no spin at 12 shards on 16
/// cores for no throughput; on 2 cores 10 µs kept the throughput with 9% less CPU
/// than 50 µs.
///
/// Until 2026-12-07 the loop also watched while its connections awaited answers from
/// other cores. Where the shards and the clients share the CPUs, that watch took the
/// CPU the other shard needed to send the answer: 2 shards, 50 unpipelined clients,
/// random keys, 77-95k GET/s with it against 94-116k without (io_uring 57-63k against
/// 90-93k), and a lone connection was no faster with it (benches/README.md, "No watch
/// for a hop's answer").
pub(super) const SPIN: Duration = Duration::from_micros(10);
/// The token of the eventfd that wakes a parked executor.
const WAKE: Token = Token(usize::MAX);

/// What other threads reach of an executor: its remote run queue and its waker.
struct Remote {
    queue: Mutex<Vec<Runnable>>,
    /// Something is in `queue`.
    pending: AtomicBool,
    /// The executor is (about to be) in `epoll_wait`.
    parked: AtomicBool,
    waker: mio::Waker,
}

impl Remote {
    /// Queue `r` for this executor, and wake it if it is parked.
    ///
    /// (Tried and measured: deferring the eventfd write to the end of the waking
    /// thread's loop turn, to wake a destination once per turn instead of once per hop.
    /// MSET10 and MULTI5 over two shards lost 20-40% of their throughput, because a
    /// transaction's steps are a chain of round trips and each waited out a turn.)
    ///
    /// Inside [`deferring_wakes`] the eventfd write waits until that ends; `parked` is
    /// cleared at once, so the executor stays parked until then and no other pusher
    /// writes meanwhile.
    fn push(self: &Arc<Self>, r: Runnable) {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).push(r);
        self.pending.store(true, Ordering::SeqCst);
        if self.parked.swap(false, Ordering::SeqCst) {
            let deferred = DEFERRED
                .try_with(|d| match d.borrow_mut().as_mut() {
                    Some(later) => {
                        later.push(self.clone());
                        true
                    }
                    None => false,
                })
                .unwrap_or(false);
            if !deferred {
                let _ = self.waker.wake();
            }
        }
    }
}

thread_local! {
    /// Parked executors this thread has queued work for inside [`deferring_wakes`].
    static DEFERRED: RefCell<Option<Vec<Arc<Remote>>>> = const { RefCell::new(None) };
}

/// Run `f`, making the eventfd writes that its wake-ups of parked executors need
/// after it returns (or unwinds) instead of during it. For a critical section that
/// queues work on many cores: the transaction scheduler's ordered queueing, where every
/// core that queues a transaction waits for the one inside. There a wake-up costs a
/// system call (and an IPI) per parked shard, ~1 µs each, and on 16 cores it made the
/// section the bottleneck of every multi-shard operation (benches/README.md, 16-core
/// scaling).
pub fn deferring_wakes<R>(f: impl FnOnce() -> R) -> R {
    /// Makes the collected wake-ups when dropped, so a panic in `f` loses none.
    struct Flush;
    impl Drop for Flush {
        fn drop(&mut self) {
            let parked = DEFERRED.with(|d| d.borrow_mut().take());
            for remote in parked.into_iter().flatten() {
                let _ = remote.waker.wake();
            }
        }
    }
    if DEFERRED.with(|d| d.borrow().is_some()) {
        return f(); // nested: the outer call makes them
    }
    DEFERRED.with(|d| *d.borrow_mut() = Some(Vec::new()));
    let _flush = Flush;
    f()
}

/// The waiters of one registered socket.
#[derive(Default)]
struct IoWaiters {
    reader: Option<Waker>,
    writer: Option<Waker>,
    /// A read (write) met `WouldBlock` and no edge has come since: trying again would
    /// only cost a system call that blocks again (a subscriber's connection polls its
    /// socket each time it is woken to write messages).
    read_blocked: bool,
    write_blocked: bool,
    /// An edge said the peer closed its side (or the socket failed): from then on
    /// every read is tried, since no edge will come again.
    read_closed: bool,
}

/// One core's executor state, reached through the thread-local [`EXECUTOR`].
struct Executor {
    remote: Arc<Remote>,
    queue: RefCell<VecDeque<Runnable>>,
    poll: RefCell<Poll>,
    io: RefCell<Vec<IoWaiters>>,
    free_io: RefCell<Vec<usize>>,
    timers: RefCell<BTreeMap<(Instant, u64), Waker>>,
    next_timer: Cell<u64>,
    spin_hint: RefCell<Option<Arc<AtomicUsize>>>,
    /// Tasks waiting in [`after_io`]: woken after the loop's next look at the sockets.
    after_io: RefCell<Vec<Waker>>,
}

thread_local! {
    static EXECUTOR: RefCell<Option<Rc<Executor>>> = const { RefCell::new(None) };
}

fn with<R>(f: impl FnOnce(&Rc<Executor>) -> R) -> R {
    EXECUTOR.with(|e| {
        let e = e.borrow();
        f(e.as_ref().expect("called outside an epoll executor"))
    })
}

/// Run `f` on this thread's executor if one still runs (a drop may come after it ended
/// or while the thread exits): cleanup that has nothing to undo otherwise.
fn with_running(f: impl FnOnce(&Executor)) {
    let _ = EXECUTOR.try_with(|e| {
        if let Some(ex) = e.borrow().as_ref() {
            f(ex);
        }
    });
}

/// True while this thread's executor runs.
pub fn running() -> bool {
    EXECUTOR
        .try_with(|e| e.try_borrow().is_ok_and(|e| e.is_some()))
        .unwrap_or(false)
}

/// Run `main` on this thread's new executor until it completes.
pub fn block_on<T: 'static>(main: impl Future<Output = T> + 'static) -> io::Result<T> {
    let poll = Poll::new()?;
    let waker = mio::Waker::new(poll.registry(), WAKE)?;
    let ex = Rc::new(Executor {
        remote: Arc::new(Remote {
            queue: Mutex::new(Vec::new()),
            pending: AtomicBool::new(false),
            parked: AtomicBool::new(false),
            waker,
        }),
        queue: RefCell::new(VecDeque::new()),
        poll: RefCell::new(poll),
        io: RefCell::new(Vec::new()),
        free_io: RefCell::new(Vec::new()),
        timers: RefCell::new(BTreeMap::new()),
        next_timer: Cell::new(0),
        spin_hint: RefCell::new(None),
        after_io: RefCell::new(Vec::new()),
    });
    EXECUTOR.with(|e| *e.borrow_mut() = Some(ex.clone()));
    let main = spawn(main);
    let mut events = Events::with_capacity(256);
    // The loop has spun since it last ran a task (one spin per idle stretch).
    let mut spun = false;
    loop {
        let mut ran = 0;
        // Tasks other cores woke, at the head of the queue, and how many were put
        // there in this batch (at most `BATCH / 2`, so that a stream of them cannot
        // hold this core's other tasks back for ever).
        let (mut ahead, mut promoted) = (0, 0);
        while ran < BATCH {
            let Some(r) = ex.queue.borrow_mut().pop_front() else {
                break;
            };
            ahead = usize::saturating_sub(ahead, 1);
            r.run();
            ran += 1;
            if promoted < BATCH / 2 && ex.remote.pending.load(Ordering::Relaxed) {
                let n = take_remote_first(&ex, ahead);
                ahead += n;
                promoted += n;
            }
        }
        if main.is_finished() {
            break;
        }
        take_remote(&ex);
        let next = fire_timers(&ex);
        if ran > 0 {
            spun = false;
        }
        let busy = !ex.queue.borrow().is_empty() || !ex.after_io.borrow().is_empty();
        // Idle while answers are awaited: watch the remote queue for up to SPIN, then
        // look at the sockets once without sleeping, before parking.
        let polling = !busy && !spun && awaiting(&ex);
        let timeout = if busy || polling {
            if polling {
                spin(&ex);
                spun = true;
            }
            Some(Duration::ZERO)
        } else {
            next.map(|d| d.saturating_duration_since(Instant::now()))
        };
        wait_io(&ex, &mut events, timeout)?;
        // Behind the tasks that look just woke.
        for w in ex.after_io.take() {
            w.wake();
        }
    }
    EXECUTOR.with(|e| *e.borrow_mut() = None);
    Ok(futures_lite::future::block_on(main))
}

/// Move the tasks woken by other threads into the local run queue behind its first
/// `ahead` tasks (those woken the same way earlier), in the order they were woken;
/// how many.
fn take_remote_first(ex: &Executor, ahead: usize) -> usize {
    let woken = take_woken(ex);
    let mut q = ex.queue.borrow_mut();
    let n = woken.len();
    for (i, t) in woken.into_iter().enumerate() {
        let at = (ahead + i).min(q.len());
        q.insert(at, t);
    }
    n
}

/// Move the tasks woken by other threads to the local run queue.
fn take_remote(ex: &Executor) {
    let woken = take_woken(ex);
    ex.queue.borrow_mut().extend(woken);
}

/// The tasks other threads have woken since the last look (none without a lock when
/// `pending` says so).
fn take_woken(ex: &Executor) -> Vec<Runnable> {
    if !ex.remote.pending.swap(false, Ordering::SeqCst) {
        return Vec::new();
    }
    std::mem::take(&mut *ex.remote.queue.lock().unwrap_or_else(|p| p.into_inner()))
}

/// Wake the sleepers whose deadline has passed; the earliest deadline left.
fn fire_timers(ex: &Executor) -> Option<Instant> {
    let mut timers = ex.timers.borrow_mut();
    let first = *timers.keys().next()?;
    let now = Instant::now();
    if first.0 > now {
        return Some(first.0);
    }
    let later = timers.split_off(&(now, u64::MAX));
    let due = std::mem::replace(&mut *timers, later);
    let next = timers.keys().next().map(|k| k.0);
    drop(timers);
    for (_, w) in due {
        w.wake();
    }
    next
}

/// True while this core awaits answers from other cores (the hint is above zero).
fn awaiting(ex: &Executor) -> bool {
    ex.spin_hint
        .borrow()
        .as_ref()
        .is_some_and(|h| h.load(Ordering::Relaxed) > 0)
}

/// Watch the remote queue until work arrives, for at most [`SPIN`].
fn spin(ex: &Executor) {
    super::watch(SPIN, || {
        ex.remote.pending.load(Ordering::SeqCst).then_some(())
    });
}

/// Wait for I/O (at most `timeout`; None: until something happens) and wake the
/// tasks whose sockets became ready.
fn wait_io(ex: &Executor, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
    let parks = timeout != Some(Duration::ZERO);
    if parks {
        ex.remote.parked.store(true, Ordering::SeqCst);
    }
    // Checked after `parked` is set: a push before this load is seen here, a push
    // after it sees `parked` and writes the eventfd.
    let timeout = if parks && ex.remote.pending.load(Ordering::SeqCst) {
        Some(Duration::ZERO)
    } else {
        timeout
    };
    let res = ex.poll.borrow_mut().poll(events, timeout);
    if parks {
        ex.remote.parked.store(false, Ordering::SeqCst);
    }
    match res {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
        Err(e) => return Err(e),
    }
    let mut woken = Vec::new();
    {
        let mut io = ex.io.borrow_mut();
        for ev in events.iter() {
            let Some(w) = io.get_mut(ev.token().0) else {
                continue;
            };
            let failed = ev.is_error();
            if ev.is_readable() || ev.is_read_closed() || failed {
                w.read_blocked = false;
                w.read_closed |= ev.is_read_closed() || failed;
                woken.extend(w.reader.take());
            }
            if ev.is_writable() || ev.is_write_closed() || failed {
                w.write_blocked = false;
                woken.extend(w.writer.take());
            }
        }
    }
    for w in woken {
        w.wake();
    }
    Ok(())
}

/// Spawn a task on this thread's executor.
pub fn spawn<T: 'static>(f: impl Future<Output = T> + 'static) -> Task<T> {
    let remote = with(|ex| ex.remote.clone());
    let schedule = move |r: Runnable| {
        let local = EXECUTOR.with(|e| {
            e.try_borrow().ok().and_then(|e| {
                e.as_ref()
                    .filter(|ex| Arc::ptr_eq(&ex.remote, &remote))
                    .cloned()
            })
        });
        match local {
            Some(ex) => ex.queue.borrow_mut().push_back(r),
            None => remote.push(r),
        }
    };
    let (runnable, task) = async_task::spawn_local(f, schedule);
    runnable.schedule();
    task
}

/// While `hint` is above zero, an idle executor polls before parking (see [`SPIN`]).
pub fn set_spin_hint(hint: Arc<AtomicUsize>) {
    with(|ex| *ex.spin_hint.borrow_mut() = Some(hint));
}

/// A future that completes at `deadline`.
pub struct Sleep {
    deadline: Instant,
    id: Option<u64>,
}

pub fn sleep(d: Duration) -> Sleep {
    Sleep {
        deadline: Instant::now() + d,
        id: None,
    }
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> TaskPoll<()> {
        if Instant::now() >= self.deadline {
            if let Some(id) = self.id.take() {
                with(|ex| ex.timers.borrow_mut().remove(&(self.deadline, id)));
            }
            return TaskPoll::Ready(());
        }
        let deadline = self.deadline;
        let id = *self.id.get_or_insert_with(|| {
            with(|ex| {
                let id = ex.next_timer.get();
                ex.next_timer.set(id + 1);
                id
            })
        });
        with(|ex| {
            let mut timers = ex.timers.borrow_mut();
            match timers.get_mut(&(deadline, id)) {
                Some(w) if w.will_wake(cx.waker()) => {}
                Some(w) => *w = cx.waker().clone(),
                None => {
                    timers.insert((deadline, id), cx.waker().clone());
                }
            }
        });
        TaskPoll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            let key = (self.deadline, id);
            with_running(|ex| {
                ex.timers.borrow_mut().remove(&key);
            });
        }
    }
}

/// Wait until the loop has looked at its sockets once (without sleeping) and run the
/// tasks that woke: a long computation's way of letting the core serve its clients.
pub async fn after_io() {
    super::pend_once(|w| with(|ex| ex.after_io.borrow_mut().push(w.clone()))).await
}

/// True when tasks other than the running one are ready to run on this core.
pub fn others_ready() -> bool {
    with(|ex| !ex.queue.borrow().is_empty())
}

/// A socket registered with this thread's executor; deregistered on drop.
struct Registration {
    token: usize,
}

impl Registration {
    fn new(source: &mut impl mio::event::Source) -> io::Result<Registration> {
        with(|ex| {
            let token = match ex.free_io.borrow_mut().pop() {
                Some(t) => t,
                None => {
                    let mut io = ex.io.borrow_mut();
                    io.push(IoWaiters::default());
                    io.len() - 1
                }
            };
            let res = ex.poll.borrow().registry().register(
                source,
                Token(token),
                Interest::READABLE | Interest::WRITABLE,
            );
            if let Err(e) = res {
                ex.free_io.borrow_mut().push(token);
                return Err(e);
            }
            Ok(Registration { token })
        })
    }

    /// True if the last try in that direction blocked and no edge has come since.
    fn blocked(&self, write: bool) -> bool {
        with(|ex| {
            let io = ex.io.borrow();
            let w = &io[self.token];
            if write {
                w.write_blocked
            } else {
                w.read_blocked
            }
        })
    }

    /// A read filled only part of its buffer: the socket's queue was empty right
    /// after it, and data that comes later brings a new edge, so the next read can
    /// wait for that edge instead of paying a system call that returns `WouldBlock`
    /// (one `recvfrom` of the two an unpipelined request cost). Not once the peer
    /// closed: its edge may have come before this read, and none follows.
    fn drained(&self) {
        with(|ex| {
            let mut io = ex.io.borrow_mut();
            let w = &mut io[self.token];
            w.read_blocked = !w.read_closed;
        })
    }

    /// Store the waker of the task that must be woken when the socket is ready (its
    /// last try in that direction blocked).
    fn wait(&self, cx: &Context<'_>, write: bool) {
        with(|ex| {
            let mut io = ex.io.borrow_mut();
            let w = &mut io[self.token];
            if write {
                w.write_blocked = true;
            } else {
                w.read_blocked = !w.read_closed;
            }
            let slot = if write { &mut w.writer } else { &mut w.reader };
            match slot {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *slot = Some(cx.waker().clone()),
            }
        })
    }

    /// Forget the socket (it is closed right after, which also removes it from epoll).
    fn release(&self, source: &mut impl mio::event::Source) {
        with_running(|ex| {
            let _ = ex.poll.borrow().registry().deregister(source);
            ex.io.borrow_mut()[self.token] = IoWaiters::default();
            ex.free_io.borrow_mut().push(self.token);
        });
    }
}

/// Try `op` until it does not block; on `WouldBlock`, wait for the socket's next edge.
/// While the last try blocked and no edge has come since, wait without trying.
fn poll_io<T>(
    reg: &Registration,
    cx: &Context<'_>,
    write: bool,
    mut op: impl FnMut() -> io::Result<T>,
) -> TaskPoll<io::Result<T>> {
    if reg.blocked(write) {
        reg.wait(cx, write);
        return TaskPoll::Pending;
    }
    loop {
        match op() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                reg.wait(cx, write);
                return TaskPoll::Pending;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            res => return TaskPoll::Ready(res),
        }
    }
}

pub struct TcpListener {
    inner: mio::net::TcpListener,
    reg: Registration,
}

impl TcpListener {
    /// Take a bound, listening socket.
    pub fn from_std(l: std::net::TcpListener) -> io::Result<TcpListener> {
        l.set_nonblocking(true)?;
        let mut inner = mio::net::TcpListener::from_std(l);
        let reg = Registration::new(&mut inner)?;
        Ok(TcpListener { inner, reg })
    }

    pub async fn accept(&self) -> io::Result<TcpStream> {
        let (stream, _) =
            std::future::poll_fn(|cx| poll_io(&self.reg, cx, false, || self.inner.accept()))
                .await?;
        Stream::new(stream)
    }
}

impl std::os::fd::AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.inner.as_raw_fd()
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        self.reg.release(&mut self.inner);
    }
}

/// A listening Unix domain socket (`unixsocket`).
pub struct UnixListener {
    inner: mio::net::UnixListener,
    reg: Registration,
}

impl UnixListener {
    /// Take a bound, listening socket.
    pub fn from_std(l: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        l.set_nonblocking(true)?;
        let mut inner = mio::net::UnixListener::from_std(l);
        let reg = Registration::new(&mut inner)?;
        Ok(UnixListener { inner, reg })
    }

    pub async fn accept(&self) -> io::Result<UnixStream> {
        let (stream, _) =
            std::future::poll_fn(|cx| poll_io(&self.reg, cx, false, || self.inner.accept()))
                .await?;
        Stream::new(stream)
    }
}

impl Drop for UnixListener {
    fn drop(&mut self) {
        self.reg.release(&mut self.inner);
    }
}

/// A connected socket of this core's loop: TCP or Unix domain.
pub struct Stream<S: mio::event::Source> {
    inner: S,
    reg: Registration,
}

pub type TcpStream = Stream<mio::net::TcpStream>;
pub type UnixStream = Stream<mio::net::UnixStream>;

impl TcpStream {
    /// Take a connected socket (an outgoing connection).
    pub fn from_std(s: std::net::TcpStream) -> io::Result<TcpStream> {
        s.set_nonblocking(true)?;
        Stream::new(mio::net::TcpStream::from_std(s))
    }
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.inner.set_nodelay(on)
    }
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

impl UnixStream {
    /// Take a connected socket (a client moving in from another core).
    pub fn from_std(s: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        s.set_nonblocking(true)?;
        Stream::new(mio::net::UnixStream::from_std(s))
    }
}

impl<S> Stream<S>
where
    S: mio::event::Source,
    for<'a> &'a S: Read + Write,
{
    fn new(mut inner: S) -> io::Result<Stream<S>> {
        let reg = Registration::new(&mut inner)?;
        Ok(Stream { inner, reg })
    }
    pub fn poll_read(&mut self, cx: &Context<'_>, buf: &mut [u8]) -> TaskPoll<io::Result<usize>> {
        let (inner, len) = (&self.inner, buf.len());
        let res = poll_io(&self.reg, cx, false, || {
            let mut s = inner;
            s.read(buf)
        });
        if let TaskPoll::Ready(Ok(n)) = res {
            if n > 0 && n < len {
                self.reg.drained();
            }
        }
        res
    }
    pub fn poll_write(&mut self, cx: &Context<'_>, buf: &[u8]) -> TaskPoll<io::Result<usize>> {
        let inner = &self.inner;
        poll_io(&self.reg, cx, true, || {
            let mut s = inner;
            s.write(buf)
        })
    }
}

impl<S: mio::event::Source + std::os::fd::AsRawFd> std::os::fd::AsRawFd for Stream<S> {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.inner.as_raw_fd()
    }
}

impl<S: mio::event::Source> Drop for Stream<S> {
    fn drop(&mut self) {
        self.reg.release(&mut self.inner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn runs_tasks_and_timers_in_order() {
        let out = block_on(async {
            let log = Rc::new(RefCell::new(Vec::new()));
            let (a, b) = (log.clone(), log.clone());
            let t1 = spawn(async move {
                sleep(Duration::from_millis(20)).await;
                a.borrow_mut().push(2);
            });
            let t2 = spawn(async move {
                sleep(Duration::from_millis(5)).await;
                b.borrow_mut().push(1);
            });
            t1.await;
            t2.await;
            let v = log.borrow().clone();
            v
        })
        .unwrap();
        assert_eq!(out, vec![1, 2]);
    }

    #[test]
    fn wakes_from_another_thread() {
        let hits = Arc::new(AtomicU32::new(0));
        let h = hits.clone();
        let got = block_on(async move {
            let (tx, rx) = flume::bounded::<u32>(1);
            let th = std::thread::spawn(move || {
                for i in 0..1000 {
                    tx.send(i).unwrap();
                }
            });
            let mut sum = 0u64;
            while let Ok(v) = rx.recv_async().await {
                sum += v as u64;
                h.fetch_add(1, Ordering::Relaxed);
            }
            th.join().unwrap();
            sum
        })
        .unwrap();
        assert_eq!(got, (0..1000u64).sum::<u64>());
        assert_eq!(hits.load(Ordering::Relaxed), 1000);
    }

    #[test]
    fn deferred_wakes_come_after_the_section_even_when_it_panics() {
        let received = Arc::new(AtomicU32::new(0));
        let seen = received.clone();
        let (tx, rx) = flume::unbounded::<u32>();
        let waker = std::thread::spawn(move || {
            // Long enough for the executor to park in epoll_wait (it awaits nothing
            // else, so it does not spin).
            std::thread::sleep(Duration::from_millis(200));
            deferring_wakes(|| {
                tx.send(1).unwrap();
                std::thread::sleep(Duration::from_millis(100));
                // Still parked: its wake-up waits for the section's end.
                assert_eq!(seen.load(Ordering::SeqCst), 0);
            });
            let deadline = Instant::now() + Duration::from_secs(10);
            while seen.load(Ordering::SeqCst) != 1 {
                assert!(Instant::now() < deadline, "not woken after the section");
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(Duration::from_millis(200));
            let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                deferring_wakes(|| {
                    tx.send(2).unwrap();
                    panic!("inside the section");
                })
            }));
            assert!(unwound.is_err());
        });
        block_on(async move {
            while let Ok(v) = rx.recv_async().await {
                received.fetch_add(1, Ordering::SeqCst);
                if v == 2 {
                    break;
                }
            }
        })
        .unwrap();
        waker.join().unwrap();
    }

    #[test]
    fn echoes_over_tcp() {
        let got = block_on(async {
            let std_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = std_l.local_addr().unwrap();
            let l = TcpListener::from_std(std_l).unwrap();
            let client = std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                let big = vec![7u8; 1 << 20];
                s.write_all(&big).unwrap();
                s.shutdown(std::net::Shutdown::Write).unwrap();
                let mut back = Vec::new();
                s.read_to_end(&mut back).unwrap();
                back.len()
            });
            let mut s = l.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            loop {
                let n = std::future::poll_fn(|cx| s.poll_read(cx, &mut buf))
                    .await
                    .unwrap();
                if n == 0 {
                    break;
                }
                let mut off = 0;
                while off < n {
                    off += std::future::poll_fn(|cx| s.poll_write(cx, &buf[off..n]))
                        .await
                        .unwrap();
                }
            }
            drop(s);
            client.join().unwrap()
        })
        .unwrap();
        assert_eq!(got, 1 << 20);
    }

    #[test]
    fn dropped_sleep_leaves_no_timer() {
        block_on(async {
            let s = sleep(Duration::from_secs(60));
            let r = futures_lite::future::or(
                async {
                    s.await;
                    1
                },
                async {
                    sleep(Duration::from_millis(1)).await;
                    2
                },
            )
            .await;
            assert_eq!(r, 2);
            with(|ex| assert!(ex.timers.borrow().is_empty()));
        })
        .unwrap();
    }
}
