//! Hops: running work on the shard that owns it.
//!
//! Each shard has one inbox (a `flume` MPSC channel) of boxed closures that run with
//! `&mut Shard` on the shard's own thread; the answer comes back on a one-shot channel.
//! Both backends wake a task from a foreign thread (see `backend`), so a connection
//! task awaiting a remote answer costs nothing while it waits (it does not spin for
//! it either: see `backend::set_spin_hint`). [`Shards`] is the handle every
//! connection task holds: `on` runs a closure on one shard (inline when it is the local
//! one), `all` on every shard concurrently.
//!
//! Every job says on whose behalf it runs ([`JobKind`]) and what it touches (its
//! [`Footprint`]: its keys, or the whole shard when it does not say). While a
//! multi-shard transaction's granted claim covers that (see `transaction` and
//! `shard::intents`), a job of anyone else is parked on the shard and runs when the
//! claim is released; the transaction's own jobs, and the claim requests themselves,
//! run at once. A handle made by `Shards::for_tx` sends its jobs as the transaction's,
//! and its work logs its effects to the transaction's log. The same rule applies to
//! the local shard: work that would run inline where a claim covers it goes through
//! the inbox instead.
//!
//! A script's `redis.call` on another core's shard suspends the script until the
//! answer comes, its core running on (`scripting::slices`). A command over several
//! shards inside a script, and a call that cannot suspend, block the thread instead
//! ([`Answer::wait`], [`block_serving`]); meanwhile that thread runs the jobs that
//! reach its own inbox, so that a script on the other core, waiting for this one, is
//! answered too.

use crate::config::ConfigHandle;
use crate::runtime::durability::Durability;
use crate::runtime::slots::SlotTable;
use crate::shard::intents::Footprint;
use crate::shard::propagation::TxLog;
use crate::shard::Shard;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// On whose behalf a job runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobKind {
    /// Ordinary work: waits while another transaction holds the shard.
    Normal,
    /// Work of the transaction with this id.
    Tx(u64),
    /// Lock management: always runs at once.
    Control,
}

pub struct Job {
    pub kind: JobKind,
    pub footprint: Footprint,
    pub run: Box<dyn FnOnce(&mut Shard) + Send>,
}

/// Process-wide facts shared by all shards.
pub struct ServerInfo {
    pub run_id: String,
    pub started_ms: u64,
    pub config: ConfigHandle,
    pub next_client_id: AtomicU64,
    pub next_slowlog_id: AtomicU64,
    pub shutting_down: AtomicBool,
    pub connected_clients: std::sync::atomic::AtomicUsize,
    pub executable: String,
    pub tcp_port: u16,
    /// Persistence's hooks and state (snapshots, the AOF), installed at start; the
    /// runtime sees only the hooks (see `durability`).
    pub durability: Box<dyn Durability>,
    /// True while the data set is loaded at start (commands get `-LOADING`).
    pub loading: AtomicBool,
    /// Which cores may have Pub/Sub subscribers (see `pubsub`).
    pub pubsub: crate::runtime::pubsub::Presence,
    /// How many connections MONITOR, in all and per core (see `monitor`).
    pub monitors: crate::runtime::monitor::Monitors,
    /// The CLIENT PAUSE in force, if any (see `pause`).
    pub pause: crate::runtime::pause::Pause,
    /// Cores whose listeners are bound (none accepts before all are).
    pub listening: AtomicUsize,
    /// Replication: the stream, the replicas, the master link (see `replication`).
    pub replication: crate::replication::State,
}

impl ServerInfo {
    pub fn new(config: ConfigHandle, durability: Box<dyn Durability>) -> ServerInfo {
        let run_id: String = (0..40)
            .map(|_| format!("{:x}", rand::random::<u8>() & 15))
            .collect();
        let port = config.current().port;
        ServerInfo {
            run_id,
            started_ms: crate::clock::now_ms(),
            config,
            next_client_id: AtomicU64::new(1),
            next_slowlog_id: AtomicU64::new(0),
            shutting_down: AtomicBool::new(false),
            connected_clients: Default::default(),
            executable: std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            tcp_port: port,
            durability,
            loading: AtomicBool::new(false),
            pubsub: Default::default(),
            monitors: Default::default(),
            pause: Default::default(),
            listening: AtomicUsize::new(0),
            replication: Default::default(),
        }
    }
    pub fn new_client_id(&self) -> u64 {
        self.next_client_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// Per shard, whether its claims were quiet (none granted, no work parked) when it
/// last changed them: written by the shard (`Intents::publish_to`), read by senders,
/// which then need not work out what a batch touches (`Shards::footprint_for`). Only
/// a hint: a stale value costs a footprint worked out, or a batch that waits for a
/// claim it does not meet, never a wrong result.
pub type QuietFlags = Arc<Vec<AtomicBool>>;

/// One core's view of all shards.
pub struct Shards {
    /// The transaction this handle acts for (see `for_tx`), if any.
    pub tx: Option<u64>,
    /// That transaction's log of propagated effects.
    pub tx_log: Option<Arc<TxLog>>,
    pub local_id: usize,
    pub local: Rc<RefCell<Shard>>,
    inboxes: Arc<Vec<flume::Sender<Job>>>,
    pub slots: Arc<SlotTable>,
    pub server: Arc<ServerInfo>,
    quiet: QuietFlags,
}

impl Shards {
    pub fn new(
        local_id: usize,
        local: Rc<RefCell<Shard>>,
        inboxes: Arc<Vec<flume::Sender<Job>>>,
        slots: Arc<SlotTable>,
        server: Arc<ServerInfo>,
        quiet: QuietFlags,
    ) -> Shards {
        Shards {
            tx: None,
            tx_log: None,
            local_id,
            local,
            inboxes,
            slots,
            server,
            quiet,
        }
    }

    pub fn count(&self) -> usize {
        self.inboxes.len()
    }

    pub fn shard_of(&self, key: &[u8]) -> usize {
        self.slots.shard_of(key)
    }

    /// `items` grouped by the shard of each one's key, in their order, for the
    /// shards that get any.
    pub fn group_by_shard<T>(
        &self,
        items: impl IntoIterator<Item = T>,
        key: impl Fn(&T) -> &[u8],
    ) -> Vec<(usize, Vec<T>)> {
        let mut by_shard: Vec<Vec<T>> = (0..self.count()).map(|_| Vec::new()).collect();
        for item in items {
            by_shard[self.shard_of(key(&item))].push(item);
        }
        by_shard
            .into_iter()
            .enumerate()
            .filter(|(_, items)| !items.is_empty())
            .collect()
    }

    /// A handle of this core's whose work passes claim `tx` (if any) and whose
    /// coordinator-side records go to `log` (if any).
    fn handle(&self, tx: Option<u64>, log: Option<Arc<TxLog>>) -> Shards {
        Shards {
            tx,
            tx_log: log,
            local_id: self.local_id,
            local: self.local.clone(),
            inboxes: self.inboxes.clone(),
            slots: self.slots.clone(),
            server: self.server.clone(),
            quiet: self.quiet.clone(),
        }
    }

    /// A handle whose work runs as transaction `tx`'s (it passes `tx`'s locks), and
    /// whose coordinator-side records go to its `log`.
    pub fn for_tx(&self, tx: u64, log: Arc<TxLog>) -> Shards {
        self.handle(Some(tx), Some(log))
    }

    /// A handle whose work passes claim `tx` and logs nowhere but where plain work
    /// does (a suspended script's next slice on its shard: see `scripting::run`).
    pub fn passing(&self, tx: u64) -> Shards {
        self.handle(Some(tx), None)
    }

    /// A plain handle of this core's (not a transaction's), owned, for a task that
    /// outlives the command that started it (BGSAVE).
    pub fn detached(&self) -> Rc<Shards> {
        Rc::new(self.handle(None, None))
    }

    /// Run `f` inline on the local shard (as this handle's transaction, if any); the
    /// keyspace events it raised outside a command (a lookup's `keymiss` or `expired`)
    /// leave with it, as a job's do.
    fn run_local<R>(&self, f: impl FnOnce(&mut Shard) -> R) -> R {
        let r = as_tx(&mut self.local.borrow_mut(), self.tx_log.as_ref(), f);
        crate::runtime::pubsub::publish_events(crate::notify::take());
        r
    }

    /// True if work of this handle touching anything on the local shard may run
    /// inline right now.
    pub fn local_is_free(&self) -> bool {
        !self
            .local
            .borrow()
            .intents
            .blocks(self.tx, &Footprint::Shard)
    }

    /// True if this handle may run `cmd` inline right now.
    pub fn local_admits(&self, cmd: &crate::commands::Command, argv: &[bytes::Bytes]) -> bool {
        let footprint = || crate::runtime::call::footprint(cmd, argv);
        !self.local.borrow().intents.blocks_with(self.tx, footprint)
    }

    fn kind(&self) -> JobKind {
        self.tx.map_or(JobKind::Normal, JobKind::Tx)
    }

    /// Run `f` on shard `id` and return its result.
    pub async fn on<R: Send + 'static>(
        &self,
        id: usize,
        f: impl FnOnce(&mut Shard) -> R + Send + 'static,
    ) -> R {
        if id == self.local_id && self.local_is_free() {
            return self.run_local(f);
        }
        let rx = self.send(id, f);
        rx.recv_async()
            .await
            .expect("a shard never drops a job it accepted")
    }

    /// Queue `f` on shard `id` (possibly this core's own, when it is held by another
    /// transaction); the answer arrives on the returned channel.
    pub fn send<R: Send + 'static>(
        &self,
        id: usize,
        f: impl FnOnce(&mut Shard) -> R + Send + 'static,
    ) -> flume::Receiver<R> {
        self.send_as(self.kind(), Footprint::Shard, id, f)
    }

    /// Queue `f` on shard `id` as lock management: it runs even on a held shard.
    pub fn send_control<R: Send + 'static>(
        &self,
        id: usize,
        f: impl FnOnce(&mut Shard) -> R + Send + 'static,
    ) -> flume::Receiver<R> {
        self.send_as(JobKind::Control, Footprint::Shard, id, f)
    }

    /// What a batch of ordinary work for shard `id` is to say it touches: `keys()`
    /// while that shard has a claim granted or work parked, else the whole shard. A
    /// quiet shard runs any job at once, so the footprint matters only if a claim is
    /// granted there before the job arrives; the whole shard is then an over-estimate
    /// that makes the job wait for that claim's release, which is safe. Working out
    /// the keys (a vector, a clone of each key, a sort) was 7% of the instructions of
    /// a pipelined GET over 2 shards.
    pub fn footprint_for(&self, id: usize, keys: impl FnOnce() -> Footprint) -> Footprint {
        if self.tx.is_none() && self.quiet[id].load(Ordering::Relaxed) {
            Footprint::Shard
        } else {
            keys()
        }
    }

    /// Queue `f`, which touches only `fp`, on shard `id`.
    pub fn send_touching<R: Send + 'static>(
        &self,
        id: usize,
        fp: Footprint,
        f: impl FnOnce(&mut Shard) -> R + Send + 'static,
    ) -> flume::Receiver<R> {
        self.send_as(self.kind(), fp, id, f)
    }

    fn send_as<R: Send + 'static>(
        &self,
        kind: JobKind,
        footprint: Footprint,
        id: usize,
        f: impl FnOnce(&mut Shard) -> R + Send + 'static,
    ) -> flume::Receiver<R> {
        let (tx, rx) = flume::bounded(1);
        let job = self.job(kind, footprint, move |s: &mut Shard| {
            let answer = f(s);
            // The events it raised (a lookup's `keymiss`) are queued to their
            // subscribers' cores before the answer leaves: the caller's reply, and so
            // the client's next command and its events, come after them.
            crate::runtime::pubsub::publish_events(crate::notify::take());
            let _ = tx.send(answer);
        });
        self.push(id, job);
        rx
    }

    /// A lock-management job (it runs even on a held shard) whose answer, if any, `f`
    /// sends itself; queue it with `push`. Built apart from queueing so that a caller
    /// queueing inside a critical section allocates outside it (`Tx::begin_claiming`).
    pub fn control_job(&self, f: impl FnOnce(&mut Shard) + Send + 'static) -> Job {
        self.job(JobKind::Control, Footprint::Shard, f)
    }

    fn job(
        &self,
        kind: JobKind,
        footprint: Footprint,
        f: impl FnOnce(&mut Shard) + Send + 'static,
    ) -> Job {
        // Only the transaction's own work logs to its log (not a release it sends).
        let log = match kind {
            JobKind::Tx(_) => self.tx_log.clone(),
            JobKind::Normal | JobKind::Control => None,
        };
        let run = Box::new(move |s: &mut Shard| {
            s.stats.hops_served += 1;
            as_tx(s, log.as_ref(), f);
        });
        Job {
            kind,
            footprint,
            run,
        }
    }

    /// Queue `job` on shard `id`.
    pub fn push(&self, id: usize, job: Job) {
        self.local.borrow_mut().stats.hops_sent += 1;
        if self.inboxes[id].send(job).is_err() {
            panic!("shard {id} inbox closed while the server runs");
        }
        WAITING[id % WAITING.len()].wake();
    }

    /// Run `job` on this core's shard now if that is where its inbox would run it next:
    /// the inbox is empty and the shard is not in use on this thread, so nothing
    /// queued or running there could come before it (a job pushed meanwhile by
    /// another core comes after it either way). `Err(job)` otherwise, to be pushed.
    pub fn run_here_if_next(&self, job: Job) -> Result<(), Job> {
        if !self.inboxes[self.local_id].is_empty() {
            return Err(job);
        }
        let Ok(mut s) = self.local.try_borrow_mut() else {
            return Err(job);
        };
        run_job(&mut s, job);
        Ok(())
    }

    /// Run `f` on every shard (remote ones concurrently); results in shard order.
    pub async fn all<R: Send + 'static>(
        &self,
        f: impl Fn(&mut Shard) -> R + Send + Sync + 'static,
    ) -> Vec<R> {
        let f = Arc::new(f);
        let pending: Vec<_> = (0..self.count())
            .map(|id| {
                if id == self.local_id && self.local_is_free() {
                    None
                } else {
                    let f = f.clone();
                    Some(self.send(id, move |s| f(s)))
                }
            })
            .collect();
        // The local part runs after every remote job is queued, so they overlap.
        let mut out = Vec::with_capacity(pending.len());
        for rx in pending {
            out.push(match rx {
                None => self.run_local(|s| f(s)),
                Some(rx) => rx
                    .recv_async()
                    .await
                    .expect("a shard never drops a job it accepted"),
            });
        }
        out
    }
}

/// A core's shard, the inbox of its jobs, and where a push to that inbox wakes the
/// core's thread waiting in [`block_serving`].
type Served = (Rc<RefCell<Shard>>, flume::Receiver<Job>, &'static Waiting);

thread_local! {
    /// This core's shard and inbox, for a script's thread that waits for another
    /// core's answer while it holds claims (see [`block_serving`]).
    static SERVED: RefCell<Option<Served>> = const { RefCell::new(None) };
}

/// The loop that serves a shard's inbox on its own executor.
pub async fn serve_inbox(shard: Rc<RefCell<Shard>>, inbox: flume::Receiver<Job>) {
    let waiting = &WAITING[shard.borrow().id % WAITING.len()];
    *waiting.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::thread::current());
    SERVED.with(|s| *s.borrow_mut() = Some((shard.clone(), inbox.clone(), waiting)));
    while let Ok(job) = inbox.recv_async().await {
        let mut s = shard.borrow_mut();
        run_job(&mut s, job);
        // Drain what else is queued without another wake-up.
        while let Ok(job) = inbox.try_recv() {
            run_job(&mut s, job);
        }
    }
}

/// Run `f` with its effects logged to transaction log `log`, if any (see
/// `shard::propagation`): only the transaction's own work logs there, while other work
/// may run on the shard between its steps.
///
/// Keys found expired before (by a WATCH's look, or a slice of the active expiry cycle
/// that has not flushed yet) are logged first, as plain records: the transaction's log
/// replays where it concludes, possibly after later writes to those keys by others,
/// which it never claimed.
pub fn as_tx<R>(s: &mut Shard, log: Option<&Arc<TxLog>>, f: impl FnOnce(&mut Shard) -> R) -> R {
    let Some(log) = log else { return f(s) };
    if !s.propagation.in_transaction() {
        s.propagate_expired();
    }
    let outer = s.propagation.enter_tx(log.clone());
    let r = f(s);
    s.propagation.leave_tx(outer);
    r
}

/// Run a job now, or park it while a claim of another transaction covers it.
fn run_job(s: &mut Shard, job: Job) {
    let tx = match job.kind {
        JobKind::Tx(id) => Some(id),
        JobKind::Normal | JobKind::Control => None,
    };
    if job.kind != JobKind::Control && s.intents.blocks(tx, &job.footprint) {
        s.intents.park(tx, job.footprint, job.run);
        return;
    }
    (job.run)(s);
    // Keyspace events a job raised outside a command (a lazy expiry in KEYS...).
    crate::runtime::pubsub::publish_events(crate::notify::take());
}

/// How long [`Answer::wait`] watches for the answer before it sleeps (20 µs doubled
/// what a script over two shards does per second against none; 50 did no better:
/// benches/README.md, "A script's remote calls watch before they sleep").
const WAIT_SPIN: std::time::Duration = std::time::Duration::from_micros(20);

/// Drive `fut` to completion on this thread, which blocks, running meanwhile the jobs
/// that reach this core's inbox. For a script's `redis.call` of a command over
/// several shards (see `scripting`): a script holding some keys waits for another core
/// whose own script may at that moment wait for this one (each holds keys the other's
/// calls pass), so a waiting thread must go on serving its shard, or the two would
/// wait for each other for ever. What runs here is any job: one that would run a
/// script on this thread's interpreter, which the waiting script is in the middle of,
/// sees that and sends its caller back to try again (`scripting::run::run_on_shard`);
/// no job blocks. Between two looks at the inbox the thread sleeps for at most
/// `NESTED_SLEEP_MAX`, since a job's arrival wakes the core's executor, not this
/// wait.
pub fn block_serving<F: std::future::Future>(fut: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Signal {
        thread: std::thread::Thread,
        woken: AtomicBool,
    }
    impl Wake for Signal {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.woken.store(true, Ordering::Release);
            self.thread.unpark();
        }
    }
    let signal = Arc::new(Signal {
        thread: std::thread::current(),
        woken: AtomicBool::new(false),
    });
    let waker = Waker::from(signal.clone());
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    let waiting = SERVED.with(|s| s.borrow().as_ref().map(|(_, _, w)| *w));
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        while !signal.woken.swap(false, Ordering::Acquire) {
            // What waits for the end of the core's turn (the AOF's write, of what
            // this thread or the jobs it served appended) does not wait for this
            // thread's wait.
            crate::runtime::backend::run_turn_end();
            if serve_nested() {
                continue;
            }
            if let Some(w) = waiting {
                w.asleep.store(true, Ordering::SeqCst);
                if inbox_is_empty() && !signal.woken.load(Ordering::Acquire) {
                    std::thread::park_timeout(NESTED_SLEEP_MAX);
                }
                w.asleep.store(false, Ordering::SeqCst);
            } else {
                std::thread::park_timeout(NESTED_SLEEP_MAX);
            }
        }
    }
}

/// The longest a waiting script's thread sleeps between two looks at its inbox (a
/// job's arrival wakes it: [`Waiting`]; this is a backstop).
const NESTED_SLEEP_MAX: std::time::Duration = std::time::Duration::from_millis(1);

/// A core thread asleep in [`block_serving`], which a job pushed to its inbox wakes
/// (the job's own wake-up goes to the core's executor, which that thread is not
/// running then).
struct Waiting {
    asleep: AtomicBool,
    thread: std::sync::Mutex<Option<std::thread::Thread>>,
}

impl Waiting {
    const fn new() -> Waiting {
        Waiting {
            asleep: AtomicBool::new(false),
            thread: std::sync::Mutex::new(None),
        }
    }

    /// After a push: wake the thread if it sleeps in `block_serving`. One load
    /// otherwise. (SeqCst, paired with the sleeper's store before it looks at its
    /// inbox: either it sees the job, or this sees it asleep.)
    fn wake(&self) {
        if self.asleep.load(Ordering::SeqCst) {
            if let Some(t) = self
                .thread
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
            {
                t.unpark();
            }
        }
    }
}

/// By shard id (one core thread per shard).
static WAITING: [Waiting; 1024] = [const { Waiting::new() }; 1024];

/// True if this core's inbox has no job waiting (or the thread has none).
fn inbox_is_empty() -> bool {
    SERVED.with(|s| {
        s.borrow()
            .as_ref()
            .is_none_or(|(_, inbox, _)| inbox.is_empty())
    })
}

/// Run the jobs waiting in this core's inbox, from inside a script's wait; true if
/// there were any. Nothing when the thread has no inbox or its shard is in use.
fn serve_nested() -> bool {
    SERVED.with(|served| {
        let served = served.borrow();
        let Some((shard, inbox, _)) = served.as_ref() else {
            return false;
        };
        let Ok(mut s) = shard.try_borrow_mut() else {
            return false;
        };
        let mut any = false;
        while let Ok(job) = inbox.try_recv() {
            // As on the executor: not with the waiting script's `redis.set_repl`
            // targets, nor its frozen clock.
            use crate::shard::propagation::{with_targets, TO_ALL};
            with_targets(TO_ALL, || {
                crate::clock::frozen_at(0, || run_job(&mut s, job))
            });
            any = true;
        }
        any
    })
}

/// An answer that is either already computed (local shard) or on its way (remote).
pub enum Answer<R> {
    Ready(R),
    Remote(flume::Receiver<R>),
}

impl<R> Answer<R> {
    /// The answer, blocking this thread until it comes, while serving this core's
    /// inbox (see [`block_serving`]). Only for a script, whose claims the other cores'
    /// work passes.
    pub fn wait(self) -> R {
        match self {
            Answer::Ready(r) => r,
            Answer::Remote(rx) => {
                // The other core usually answers within microseconds: watch for it
                // before sleeping, which costs a futex wait here and a futex wake
                // there (see `WAIT_SPIN`).
                let mut polls = 0u32;
                let watched = crate::runtime::backend::watch(WAIT_SPIN, || {
                    polls = polls.wrapping_add(1);
                    if polls.is_multiple_of(64) && serve_nested() {
                        // What a served job appended goes to the log now (see
                        // `block_serving`).
                        crate::runtime::backend::run_turn_end();
                    }
                    rx.try_recv().ok()
                });
                watched.unwrap_or_else(|| {
                    block_serving(rx.recv_async()).expect("a shard never drops a job it accepted")
                })
            }
        }
    }

    pub async fn get(self) -> R {
        match self {
            Answer::Ready(r) => r,
            Answer::Remote(rx) => rx
                .recv_async()
                .await
                .expect("a shard never drops a job it accepted"),
        }
    }
}

impl Shards {
    /// Run `f` at once if `id` is local, else queue it; await the answer with `get`.
    /// Lets a caller queue remote work on every shard before doing its local part.
    pub fn send_or_local<R: Send + 'static>(
        &self,
        id: usize,
        f: impl FnOnce(&mut Shard) -> R + Send + 'static,
    ) -> Answer<R> {
        if id == self.local_id && self.local_is_free() {
            Answer::Ready(self.run_local(f))
        } else {
            Answer::Remote(self.send(id, f))
        }
    }
}
