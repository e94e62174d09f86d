//! CLIENT PAUSE: holding clients' commands while the server is paused, on every core.
//!
//! # What Redis 7.0 does
//! (`pauseClients` in networking.c, `processCommand` in server.c, `expireIfNeeded`.)
//! - `CLIENT PAUSE <ms> [WRITE|ALL]` pauses until now + ms. Under ALL every command of
//!   every client is postponed; under WRITE the writes and the commands that may
//!   replicate (PUBLISH, SPUBLISH, PFCOUNT; EVAL / FCALL): an EXEC by the flags of the
//!   commands it queued, and inside MULTI a write is postponed instead of QUEUED. The
//!   check comes after every refusal and before MULTI queueing.
//! - A postponed command has not run: its client is blocked (`BLOCKED_POSTPONE`: INFO
//!   `blocked_clients` counts it, CLIENT LIST shows flag `b` and its command) and
//!   what it pipelined behind waits too. When the pause ends (timeout or UNPAUSE) the
//!   postponed clients are processed again from scratch, in the order they were
//!   postponed; a client that disconnected meanwhile never runs its command.
//! - Replicas are never paused, and a monitoring client is one to Redis. The pausing
//!   client is not exempt: under ALL its own next command waits, CLIENT UNPAUSE
//!   included, so an ALL pause ends by its timeout unless a monitor unpauses.
//! - Another CLIENT PAUSE while one is in force keeps the later end and the stronger
//!   kind (WRITE < ALL): it extends, never shortens, and WRITE never weakens ALL.
//! - While paused the data set stays constant: the active expire cycle (and eviction)
//!   does not run, and lazy expiry reports an expired key missing without deleting it.
//!
//! # The plan here
//! 1. **One state for all cores**: [`Pause`] in `ServerInfo`, one `AtomicU64` (0: no
//!    pause; else the end in unix ms and a bit for ALL), so a pause is merged with
//!    the one in force in one atomic step, whichever cores pause at once.
//! 2. **Admission** ([`postpones`]) reads it with one relaxed load: with no pause, a
//!    command pays that and a branch. When set, the command's class (write or may
//!    replicate, EXEC by its queue) and the client (a monitor is exempt) decide.
//! 3. **Waiting on the connection.** Dispatch stops a read's requests at the
//!    postponed one; the connection writes the replies before it (as Redis does),
//!    then [`wait`]s on its own task: nothing has run and nothing is held on any
//!    shard. Each core keeps a FIFO of its waiting tasks' wakers; they are woken in
//!    that order by one per-core timer at the pause's end, or by UNPAUSE. Woken, the
//!    connection runs the postponed request and those behind it, in order, each
//!    admitted again (it may be postponed again). Every 100 ms a waiter checks that
//!    its peer is still there and it was not killed; if not, it ends without running.
//! 4. **Every core.** CLIENT PAUSE and UNPAUSE change the state, then send one control
//!    job to every other core (it runs even on a shard a transaction holds), do the
//!    same on their own core once all have run, and reply: it sets the shard's expiry
//!    hold to the state's end (read when it runs, so racing pauses and unpauses leave
//!    every core at the last state), and UNPAUSE's also wakes the core's waiters (its
//!    own core's last, so they run after its reply, as in Redis).
//! 5. **Expiry** (`Shard::hold_expiry`): the shard skips its active cycle and its
//!    databases keep expired keys until the end (eviction, when it comes, must ask
//!    `Shard::expiry_held` too). The hold is a deadline, so it ends by itself;
//!    UNPAUSE clears it. A write that runs during the pause (one already on its way
//!    to a shard when the pause began, or one queued in the EXEC that paused) deletes
//!    the expired keys it meets, as any write must (Redis 7.0.15 fails an assertion).
//!
//! Not like Redis 7.0: a write already on its way to another core's shard when the
//! pause begins may run after CLIENT PAUSE has replied; the order of waking is each
//! core's, not a global one; a held connection reads nothing more until it is woken;
//! the pause ends at its timeout, not at the next cron tick. Where 7.0.15 crashes or
//! hangs we do what later Redis does: CLIENT UNBLOCK leaves a held client held
//! (answers 0), and RANDOMKEY gives up on a database of expired keys (answers nil).

use crate::client::ClientRef;
use crate::commands::{traits, Command};
use crate::runtime::{backend, ServerInfo, Shards};
use crate::shard::Shard;
use bytes::Bytes;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// Which commands a pause postpones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Writes and the commands that may replicate.
    Write,
    /// Every command.
    All,
}

/// What a command is to a pause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Postponed by ALL only.
    Other,
    /// A write or a command that may replicate (an EXEC that queued one): postponed by
    /// WRITE too.
    Write,
}

impl Kind {
    fn holds(self, class: Class) -> bool {
        self == Kind::All || class == Class::Write
    }
}

/// The pause in force, shared by every core (in `ServerInfo`).
#[derive(Default)]
pub struct Pause {
    /// 0: none. Else the end in unix ms (the pause holds while the clock is at or
    /// before it) in bits 0-62, and [`ALL`] for an ALL pause.
    state: AtomicU64,
}

const ALL: u64 = 1 << 63;

fn encode(kind: Kind, end: u64) -> u64 {
    end | if kind == Kind::All { ALL } else { 0 }
}

fn decode(v: u64) -> (Kind, u64) {
    let kind = if v & ALL != 0 { Kind::All } else { Kind::Write };
    (kind, v & !ALL)
}

impl Pause {
    /// True if a pause may be in force (one relaxed load: the hot path's test).
    #[inline]
    pub fn is_set(&self) -> bool {
        self.state.load(Ordering::Relaxed) != 0
    }

    /// The pause in force at `now_ms`: its kind and end.
    pub fn current(&self, now_ms: u64) -> Option<(Kind, u64)> {
        let v = self.state.load(Ordering::Acquire);
        if v == 0 {
            return None;
        }
        let (kind, end) = decode(v);
        if end < now_ms {
            // Over: clear it, so the hot path's test is false again.
            let _ = self
                .state
                .compare_exchange(v, 0, Ordering::AcqRel, Ordering::Relaxed);
            return None;
        }
        Some((kind, end))
    }

    /// Pause `kind` until `end` (unix ms; negative or past: already over), merged as
    /// Redis's `pauseClients` merges a pause into the one in force: the stronger kind
    /// and the later end. A pause already over is not in force.
    pub fn pause(&self, kind: Kind, end: i64, now_ms: u64) {
        let end = u64::try_from(end).unwrap_or(0);
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                let live = (v != 0).then(|| decode(v)).filter(|&(_, e)| e >= now_ms);
                Some(match live {
                    Some((k, e)) => encode(k.max(kind), e.max(end)),
                    None if end >= now_ms => encode(kind, end),
                    None => 0,
                })
            });
    }

    /// End the pause in force, if any.
    pub fn unpause(&self) {
        self.state.store(0, Ordering::Release);
    }
}

/// Whether `cmd` from `client` must wait for the pause to end: `Some(its class)`.
#[inline]
pub fn postpones(
    client: &ClientRef,
    server: &ServerInfo,
    cmd: &Command,
    argv: &[Bytes],
) -> Option<Class> {
    if !server.pause.is_set() {
        return None;
    }
    postpones_now(client, server, cmd, argv)
}

#[cold]
fn postpones_now(
    client: &ClientRef,
    server: &ServerInfo,
    cmd: &Command,
    argv: &[Bytes],
) -> Option<Class> {
    let (kind, _) = server.pause.current(crate::clock::now_ms())?;
    // Replicas are never paused, and a monitor is one to Redis.
    if client.borrow().monitor {
        return None;
    }
    let class = class_of(client, cmd, argv);
    kind.holds(class).then_some(class)
}

/// A write or a command that may replicate (a script by its flags); EXEC by the
/// commands it queued.
fn class_of(client: &ClientRef, cmd: &Command, argv: &[Bytes]) -> Class {
    let writes = |c: &Command, argv: &[Bytes]| {
        c.is_write()
            || c.has_trait(traits::MAY_REPLICATE)
            || crate::commands::scripting::may_write(c.name, argv)
    };
    let queued_writes = || crate::runtime::admission::queued_any(client, writes);
    if writes(cmd, argv) || (cmd.has_trait(traits::ENDS_MULTI) && queued_writes()) {
        Class::Write
    } else {
        Class::Other
    }
}

// ---- Waiting --------------------------------------------------------------------

/// This core's postponed connections, in the order they were postponed.
#[derive(Default)]
struct Waiting {
    /// By arrival number: a waiter keeps its place when polled again.
    wakers: BTreeMap<u64, Waker>,
    next: u64,
    /// The end the core's timer task sleeps to, if one runs.
    timer: Option<u64>,
}

thread_local! {
    static WAITING: RefCell<Waiting> = RefCell::default();
}

/// How often a waiting connection checks that its peer is still there.
const PEER_CHECK: Duration = Duration::from_millis(100);
/// The longest sleep of the timer (a pause may end in millions of years).
const MAX_SLEEP_MS: u64 = 60_000;

/// Wait until the pause no longer holds a command of `class` (`true`), or the client
/// was killed or its peer went away (`false`: nothing must run). `argv` is the
/// postponed command's, shown meanwhile by CLIENT LIST (`argv-mem`).
pub async fn wait(
    client: &ClientRef,
    shards: &Shards,
    class: Class,
    argv: &[Bytes],
    fd: i32,
) -> bool {
    {
        let mut c = client.borrow_mut();
        c.paused = true;
        c.argv_mem = crate::client::Client::argv_len_sum(argv);
    }
    shards.local.borrow_mut().stats.paused_clients += 1;
    let _waiting = WaitingGuard { client, shards };
    let ended = async {
        Postponed {
            server: &shards.server,
            class,
            seq: None,
        }
        .await;
        true
    };
    let gone = async {
        loop {
            backend::sleep(PEER_CHECK).await;
            if client.borrow().killed || crate::runtime::blocking::peer_closed(fd) {
                return false;
            }
        }
    };
    futures_lite::future::or(ended, gone).await
}

/// Keeps the client's flag and INFO's count right however the wait ends.
struct WaitingGuard<'a> {
    client: &'a ClientRef,
    shards: &'a Shards,
}

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        let mut c = self.client.borrow_mut();
        c.paused = false;
        c.argv_mem = 0;
        self.shards.local.borrow_mut().stats.paused_clients -= 1;
    }
}

/// Ready once the pause no longer holds `class`; meanwhile in this core's FIFO.
struct Postponed<'a> {
    server: &'a Arc<ServerInfo>,
    class: Class,
    seq: Option<u64>,
}

impl Future for Postponed<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // Until the core wakes it (its entry gone), a waiter stays in line even if the
        // pause is over: the waiters leave in the order they came.
        let seq = self.seq;
        let queued = WAITING.with_borrow_mut(|w| match seq.and_then(|s| w.wakers.get_mut(&s)) {
            Some(waker) => {
                waker.clone_from(cx.waker());
                true
            }
            None => false,
        });
        if queued {
            return Poll::Pending;
        }
        let Some((kind, end)) = self.server.pause.current(crate::clock::now_ms()) else {
            return Poll::Ready(());
        };
        if !kind.holds(self.class) {
            return Poll::Ready(());
        }
        let (seq, start_timer) = WAITING.with_borrow_mut(|w| {
            let seq = seq.unwrap_or_else(|| {
                w.next += 1;
                w.next
            });
            w.wakers.insert(seq, cx.waker().clone());
            let start_timer = w.timer.is_none_or(|t| t > end);
            if start_timer {
                w.timer = Some(end);
            }
            (seq, start_timer)
        });
        self.seq = Some(seq);
        if start_timer {
            backend::spawn(timer(self.server.clone(), end)).detach();
        }
        Poll::Pending
    }
}

impl Drop for Postponed<'_> {
    fn drop(&mut self) {
        if let Some(seq) = self.seq {
            let _ = WAITING.try_with(|w| w.borrow_mut().wakers.remove(&seq));
        }
    }
}

/// This core's timer: at the pause's end, wake the waiters (in order); if the pause
/// was extended meanwhile, sleep on to the new end. Ends when superseded (a timer
/// for an earlier end took its place), or once it has woken them.
async fn timer(server: Arc<ServerInfo>, mut end: u64) {
    loop {
        let now = crate::clock::now_ms();
        if now <= end {
            // The pause holds while the clock is at or before its end.
            let ms = (end - now + 1).min(MAX_SLEEP_MS);
            backend::sleep(Duration::from_millis(ms)).await;
        }
        if WAITING.with_borrow(|w| w.timer != Some(end)) {
            return;
        }
        let current = server.pause.current(crate::clock::now_ms());
        let waiters = WAITING.with_borrow(|w| !w.wakers.is_empty());
        match current {
            Some((_, later)) if waiters => {
                end = later;
                WAITING.with_borrow_mut(|w| w.timer = Some(later));
            }
            _ => {
                WAITING.with_borrow_mut(|w| w.timer = None);
                wake_all();
                return;
            }
        }
    }
}

/// Wake this core's waiters, in the order they were postponed (each looks at the
/// pause again when it runs).
fn wake_all() {
    let wakers = WAITING.with_borrow_mut(|w| std::mem::take(&mut w.wakers));
    for (_, waker) in wakers {
        waker.wake();
    }
}

// ---- CLIENT PAUSE / UNPAUSE -----------------------------------------------------

/// CLIENT PAUSE: pause `kind` until `end` (unix ms, see [`Pause::pause`]) and hold
/// expiry on every core before replying.
pub async fn pause(shards: &Shards, kind: Kind, end: i64) {
    shards.server.pause.pause(kind, end, crate::clock::now_ms());
    on_every_core(shards, false).await;
}

/// CLIENT UNPAUSE: end the pause, release expiry and wake the waiters on every core.
pub async fn unpause(shards: &Shards) {
    shards.server.pause.unpause();
    on_every_core(shards, true).await;
}

/// Bring every core to the pause state as it is when the core's job runs: the other
/// cores first, then this one, so that the clients this core wakes run after the
/// reply (as in Redis, where the unpaused clients run after the command that
/// unpaused them).
async fn on_every_core(shards: &Shards, wake: bool) {
    let pending: Vec<_> = (0..shards.count())
        .filter(|&core| core != shards.local_id)
        .map(|core| {
            let server = shards.server.clone();
            shards.send_control(core, move |s: &mut Shard| follow(s, &server, wake))
        })
        .collect();
    for rx in pending {
        rx.recv_async()
            .await
            .expect("a shard never drops a job it accepted");
    }
    follow(&mut shards.local.borrow_mut(), &shards.server, wake);
}

/// On this core: hold expiry until the end of the pause in force (releasing it if
/// none), and wake the waiters if asked to.
fn follow(s: &mut Shard, server: &ServerInfo, wake: bool) {
    let end = server.pause.current(crate::clock::now_ms());
    s.hold_expiry(end.map_or(0, |(_, e)| e));
    if wake {
        WAITING.with_borrow_mut(|w| w.timer = None);
        wake_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    #[test]
    fn no_pause_until_paused() {
        let p = Pause::default();
        assert!(!p.is_set());
        assert_eq!(p.current(NOW), None);
        p.pause(Kind::Write, (NOW + 100) as i64, NOW);
        assert!(p.is_set());
        assert_eq!(p.current(NOW), Some((Kind::Write, NOW + 100)));
        // Holds through its end, over just after.
        assert_eq!(p.current(NOW + 100), Some((Kind::Write, NOW + 100)));
        assert_eq!(p.current(NOW + 101), None);
        assert!(!p.is_set(), "an ended pause is cleared when seen");
    }

    #[test]
    fn a_new_pause_extends_and_strengthens_never_weakens() {
        let p = Pause::default();
        p.pause(Kind::All, (NOW + 100) as i64, NOW);
        // Shorter and weaker: keeps ALL and the later end.
        p.pause(Kind::Write, (NOW + 50) as i64, NOW);
        assert_eq!(p.current(NOW), Some((Kind::All, NOW + 100)));
        // Longer: extends, still ALL.
        p.pause(Kind::Write, (NOW + 300) as i64, NOW);
        assert_eq!(p.current(NOW), Some((Kind::All, NOW + 300)));
        // CLIENT PAUSE 0 ALL during a WRITE pause: ALL until the WRITE pause's end.
        let p = Pause::default();
        p.pause(Kind::Write, (NOW + 100) as i64, NOW);
        p.pause(Kind::All, 0, NOW);
        assert_eq!(p.current(NOW), Some((Kind::All, NOW + 100)));
    }

    #[test]
    fn a_pause_already_over_is_none() {
        let p = Pause::default();
        p.pause(Kind::All, 0, NOW);
        assert_eq!(p.current(NOW), None);
        // A timeout whose end overflowed (Redis adds it to the clock as a long long).
        p.pause(Kind::All, i64::MAX.wrapping_add(NOW as i64), NOW);
        assert_eq!(p.current(NOW), None);
        // An ended pause does not lend its kind to the next one.
        p.pause(Kind::All, (NOW + 10) as i64, NOW);
        p.pause(Kind::Write, (NOW + 100) as i64, NOW + 20);
        assert_eq!(p.current(NOW + 20), Some((Kind::Write, NOW + 100)));
        p.unpause();
        assert_eq!(p.current(NOW + 20), None);
    }

    #[test]
    fn write_pauses_hold_writes_all_pauses_hold_everything() {
        assert!(Kind::Write.holds(Class::Write));
        assert!(!Kind::Write.holds(Class::Other));
        assert!(Kind::All.holds(Class::Other));
        assert!(Kind::All.holds(Class::Write));
    }
}
