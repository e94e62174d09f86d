//! Durability: what the runtime asks of persistence while it serves requests.
//!
//! Persistence sits above the runtime: it drives snapshots and the AOF through
//! [`Shards`](super::Shards) and transactions, and `crate::server` starts its tasks. A
//! request's way through a core still meets it at four points (refusing writes after a
//! failed save, holding replies until the AOF has what they show, knowing whether
//! effects are logged, the shard's cron), so the runtime names those points here as a
//! trait, and persistence installs its implementation in [`ServerInfo`](super::ServerInfo) at start. The
//! runtime never names a persistence type.
//!
//! The one idea to hold: [`Durability::durable`] runs before every write of replies,
//! so it must decide with a load or two whether there is anything to wait for, and
//! only then build a future (with `appendfsync always`, or while a stream lags).

use crate::config::Config;
use crate::protocol::Reply;
use crate::shard::Shard;
use std::future::Future;
use std::pin::Pin;

/// A wait for the log to catch up, built only when there is something to wait for.
pub type Wait = Pin<Box<dyn Future<Output = ()>>>;

/// The request-time hooks of persistence (see the module comment).
pub trait Durability: std::any::Any + Send + Sync {
    /// The reply a write (or a command refused on a disk error) gets now instead of
    /// running: `-MISCONF` after a failed background save, or while the AOF cannot be
    /// written. `config` is the shard's.
    fn writes_refused(&self, config: &Config) -> Option<Reply>;
    /// What to await before replies leave so that what they show is logged (fsynced
    /// with `appendfsync always`); `None` when they may leave now. `lanes`: the
    /// shards whose data the replies may show; `conclusions`: [`concluding::opened`]
    /// read before the replies' [`concluding::settled`].
    fn durable(&self, lanes: Lanes, conclusions: u64) -> Option<Wait>;
    /// True while effects are logged (coordinators of multi-shard work check it before
    /// building records on their side).
    fn propagating(&self) -> bool;
    /// A shard's cron tick: follow the configuration, publish its change counter.
    fn cron(&self, shard: &mut Shard);
    /// The implementation, for persistence to reach its own state (see
    /// `persistence::of`).
    fn as_any(&self) -> &dyn std::any::Any;
}

/// Which shards' logs a read's replies depend on.
///
/// A reply may leave once the log of every shard whose data it shows is durable. A
/// read whose requests all ran on one shard's data, one keyed command at a time (or
/// were refused, or queued in MULTI), shows that shard's data only; anything else
/// (a command over several shards or the server, a script, EXEC, a blocked command
/// served later, pushed messages) may show any shard's, so it waits for all of them.
/// Waiting for one log is only enough while no multi-shard transaction may be
/// incomplete on disk: loading cuts every shard's log at such a transaction, with
/// what follows it (see `persistence::aof`), so the persistence side checks that too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lanes {
    /// Nothing of any shard (errors, `QUEUED`).
    None,
    One(usize),
    All,
}

impl Lanes {
    /// These and shard `s`'s.
    pub fn and_shard(self, s: usize) -> Lanes {
        match self {
            Lanes::None => Lanes::One(s),
            Lanes::One(t) if t == s => self,
            _ => Lanes::All,
        }
    }

    /// These and `other`.
    pub fn and(self, other: Lanes) -> Lanes {
        match other {
            Lanes::None => self,
            Lanes::One(s) => self.and_shard(s),
            Lanes::All => Lanes::All,
        }
    }
}

/// Multi-shard transactions whose parts are being appended to the shards' logs.
///
/// A transaction appends its part on every shard of its set before it releases its
/// claims, but work on other keys may pass it on a shard meanwhile. Such work's reply
/// must not leave before the transaction's parts are appended everywhere: loading
/// cuts a shard's stream at a transaction that is incomplete on another shard, with
/// everything after it. So a transaction opens a [`Conclusion`] before its first part
/// is appended and closes it (drops its last handle) after the last one, and replies
/// wait ([`settled`]) for every conclusion opened before them, then for the log.
/// With no conclusion open, the check is one atomic load.
pub mod concluding {
    use std::collections::BTreeSet;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::task::{Poll, Waker};

    #[derive(Default)]
    struct State {
        next: u64,
        open: BTreeSet<u64>,
        /// (wait until every conclusion below this one is closed, waker)
        waiters: Vec<(u64, Waker)>,
    }

    static OPEN: AtomicUsize = AtomicUsize::new(0);
    /// Conclusions ever opened (each counted once it is registered as open).
    static OPENED: AtomicU64 = AtomicU64::new(0);
    /// Conclusions whose parts are all known durable (on every shard's log).
    static DURABLE: AtomicU64 = AtomicU64::new(0);
    static STATE: Mutex<State> = Mutex::new(State {
        next: 0,
        open: BTreeSet::new(),
        waiters: Vec::new(),
    });

    fn state() -> std::sync::MutexGuard<'static, State> {
        STATE.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An open conclusion; dropping it closes it.
    pub struct Conclusion(u64);

    pub fn open() -> Conclusion {
        let mut s = state();
        let id = s.next;
        s.next += 1;
        s.open.insert(id);
        OPEN.fetch_add(1, Ordering::SeqCst);
        OPENED.fetch_add(1, Ordering::SeqCst);
        Conclusion(id)
    }

    /// True when no conclusion is open (nothing for [`settled`] to wait for).
    pub fn none_open() -> bool {
        OPEN.load(Ordering::SeqCst) == 0
    }

    /// How many conclusions were opened so far. Read before [`settled`], every one
    /// counted is closed (all its parts appended) once `settled` is done.
    pub fn opened() -> u64 {
        OPENED.load(Ordering::SeqCst)
    }

    /// The first `n` conclusions' parts are durable on every shard's log (a wait for
    /// every log, after a `settled` that followed `opened() == n`, is over).
    pub fn durable_up_to(n: u64) {
        DURABLE.fetch_max(n, Ordering::AcqRel);
    }

    /// True when the first `n` conclusions' parts are known durable everywhere.
    pub fn all_durable(n: u64) -> bool {
        DURABLE.load(Ordering::Acquire) >= n
    }

    impl Drop for Conclusion {
        fn drop(&mut self) {
            let ready: Vec<Waker> = {
                let mut s = state();
                s.open.remove(&self.0);
                OPEN.fetch_sub(1, Ordering::SeqCst);
                let oldest = s.open.first().copied().unwrap_or(u64::MAX);
                let (ready, keep) = std::mem::take(&mut s.waiters)
                    .into_iter()
                    .partition(|(below, _)| oldest >= *below);
                s.waiters = keep;
                ready.into_iter().map(|(_, w)| w).collect()
            };
            ready.into_iter().for_each(Waker::wake);
        }
    }

    /// Wait until every conclusion opened before this call is closed.
    pub async fn settled() {
        if none_open() {
            return;
        }
        let below = state().next;
        std::future::poll_fn(|cx| {
            let mut s = state();
            if s.open.first().is_none_or(|&oldest| oldest >= below) {
                return Poll::Ready(());
            }
            s.waiters.push((below, cx.waker().clone()));
            Poll::Pending
        })
        .await
    }
}
