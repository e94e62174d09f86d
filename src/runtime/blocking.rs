//! Blocking commands (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN, BZPOPMAX,
//! BZMPOP): waiting on keys that may live on any core.
//!
//! Plan. A blocking command's handler is its non-blocking attempt: it pops if it can
//! and otherwise returns the null reply Redis gives on timeout. When the connection
//! sees that null (outside MULTI), it blocks:
//!
//! 1. **Register** on each shard owning one of the keys it waits on, in key order. The
//!    registration job notes the keys as ready and serves at once, so a push that
//!    landed between the first attempt and the registration is not missed.
//! 2. **Serve.** After every command (and when a transaction releases the shard), the
//!    shard looks at the keys that became lists / sorted sets (`Db::set` notes them, as
//!    Redis's `signalKeyAsReady`) and, for each, runs its waiters' handlers in arrival
//!    order until one finds nothing. Running the handler on the shard makes the pop and
//!    the reply one atomic step, with Redis's FIFO among waiters. A waiter registered on
//!    several shards carries one shared claim ([`Ticket`]): a shard takes it before
//!    running the handler (and gives it back if the handler found nothing), so two
//!    shards never both serve one client. BLMOVE whose source and destination live on
//!    different shards cannot run on one shard: it is woken to retry through the
//!    dispatcher (which runs it atomically over both shards) and blocks again if it
//!    lost the race.
//! 3. **Finish.** The connection waits for the wake-up, its deadline, CLIENT UNBLOCK,
//!    or its peer going away (checked every 100 ms without reading the socket). Timeout
//!    and disconnect take the claim too, so a reply is never produced for a client that
//!    already gave up; then its registrations are withdrawn.
//!
//! Not like Redis 7.0: with keys on several shards, each shard checks its own keys, so
//! when keys of different shards become ready at the same moment the one served may not
//! be the first in argument order.

use crate::client::ClientRef;
use crate::commands::{errors, Blocking, Command, TimeoutArg};
use crate::protocol::Reply;
use crate::runtime::Shards;
use crate::runtime::{call, dispatch};
use crate::shard::blocking::{Ticket, Waiter, Wake, DONE, FREE, TRYING};
use crate::shard::Shard;
use bytes::Bytes;
use futures_lite::FutureExt;
use std::sync::atomic::{AtomicU64, AtomicU8};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a blocked connection checks that its peer is still there.
const PEER_CHECK: Duration = Duration::from_millis(100);

static NEXT_WAITER: AtomicU64 = AtomicU64::new(1);

/// True for the commands that block when they find nothing.
pub fn is_blocking(cmd: &Command) -> bool {
    cmd.blocking.is_some()
}

/// True if `cmd` called as `argv` blocks when it finds nothing: XREAD only with
/// BLOCK, the others always.
pub fn may_block(cmd: &Command, argv: &[Bytes]) -> bool {
    match cmd.blocking {
        None => false,
        Some(b) if b.timeout == TimeoutArg::BlockOption => crate::commands::stream::blocks(argv),
        Some(_) => true,
    }
}

/// How `cmd` blocks (its table entry's rule).
fn rule(cmd: &Command) -> Blocking {
    cmd.blocking
        .expect("blocking commands declare how they block")
}

/// The reply a blocking command's handler gives when nothing could be served (what it
/// answers inside MULTI).
fn nothing_reply(cmd: &Command) -> Reply {
    if rule(cmd).null_bulk {
        Reply::Null
    } else {
        Reply::NullArray
    }
}

/// The reply to a blocked client that timed out or got CLIENT UNBLOCK ... TIMEOUT:
/// Redis 7.0 answers a null array to every blocking command, BLMOVE / BRPOPLPUSH
/// included (its replyToBlockedClientTimedOut), unlike their null inside MULTI.
pub fn timeout_reply(_cmd: &Command) -> Reply {
    Reply::NullArray
}

/// True if `reply` is `cmd`'s "nothing to serve" answer.
pub fn found_nothing(cmd: &Command, reply: &Reply) -> bool {
    matches!(
        (nothing_reply(cmd), reply),
        (Reply::Null, Reply::Null) | (Reply::NullArray, Reply::NullArray)
    )
}

/// The timeout argument: BLMPOP / BZMPOP have it first, the others last.
fn timeout_ms(cmd: &Command, argv: &[Bytes]) -> u64 {
    let arg = match rule(cmd).timeout {
        TimeoutArg::At(i) => argv.get(i),
        TimeoutArg::Last => argv.last(),
        TimeoutArg::BlockOption => return crate::commands::stream::block_timeout(argv),
    };
    arg.and_then(|a| crate::commands::args::timeout_ms(a).ok())
        .unwrap_or(0)
}

/// The keys a blocked command waits on, grouped by shard in the order each shard's
/// first key appears (BLMOVE / BRPOPLPUSH wait on their source only).
fn wait_keys(
    shards: &Shards,
    cmd: &Command,
    argv: &[Bytes],
    idx: &[usize],
) -> Vec<(usize, Vec<Bytes>)> {
    let waited = if moves(cmd) {
        &idx[..idx.len().min(1)]
    } else {
        idx
    };
    let mut by_shard: Vec<(usize, Vec<Bytes>)> = Vec::new();
    for &i in waited {
        let sid = shards.shard_of(&argv[i]);
        match by_shard.iter_mut().find(|(s, _)| *s == sid) {
            Some((_, keys)) => keys.push(argv[i].clone()),
            None => by_shard.push((sid, vec![argv[i].clone()])),
        }
    }
    by_shard
}

/// BLMOVE and BRPOPLPUSH: pop from one list, push to another.
fn moves(cmd: &Command) -> bool {
    rule(cmd).moves
}

/// Block the client until `cmd` can be served, times out, is unblocked, or the peer
/// goes away (`None`: the connection is gone and nothing must be written).
pub async fn block(
    client: &ClientRef,
    shards: &Shards,
    cmd: &'static Command,
    argv: Vec<Bytes>,
    fd: i32,
) -> Option<Reply> {
    let timeout = timeout_ms(cmd, &argv);
    let deadline = (timeout > 0).then(|| Instant::now() + Duration::from_millis(timeout));
    let idx = cmd.key_indexes(&argv);
    let keys = wait_keys(shards, cmd, &argv, &idx);
    // A move between shards cannot run on one shard: it is woken to retry.
    let retry_only = moves(cmd)
        && idx.len() == 2
        && shards.shard_of(&argv[idx[0]]) != shards.shard_of(&argv[idx[1]]);
    let (db, no_touch) = {
        let c = client.borrow();
        (c.db, c.no_touch)
    };
    let caller = dispatch::caller_of(client);
    let _unblocked = Blocked::count(shards);
    loop {
        let (wake_tx, wake_rx) = flume::bounded(1);
        let ticket = Ticket {
            claim: Arc::new(AtomicU8::new(FREE)),
            wake: wake_tx,
        };
        let id = NEXT_WAITER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        {
            // A blocked client keeps its command's arguments (CLIENT LIST argv-mem).
            let mut c = client.borrow_mut();
            c.blocked = Some((ticket.clone(), timeout_reply(cmd)));
            c.argv_mem = crate::client::Client::argv_len_sum(&argv);
        }
        for (sid, shard_keys) in &keys {
            let w = Waiter {
                db,
                keys: shard_keys.clone(),
                cmd,
                argv: argv.clone(),
                no_touch,
                ticket: ticket.clone(),
                retry_only,
                caller: caller.clone(),
            };
            shards
                .on(*sid, move |s: &mut Shard| register(s, id, w))
                .await;
        }
        let first_key = idx.first().map(|&i| argv[i].clone());
        let outcome = wait(client, &ticket, &wake_rx, deadline, fd, cmd, first_key).await;
        {
            let mut c = client.borrow_mut();
            c.blocked = None;
            c.argv_mem = 0;
        }
        for &(sid, _) in &keys {
            drop(shards.send(sid, move |s: &mut Shard| withdraw(s, id)));
        }
        // An error ending the wait (a group destroyed, CLIENT UNBLOCK ... ERROR) makes
        // the call a failed one, as Redis's `updateStatsOnUnblock` counts it.
        if let Outcome::Served(r) | Outcome::Ended(r) = &outcome {
            if r.is_error() {
                shards.local.borrow_mut().stats.record_failed(cmd.name);
            }
        }
        match outcome {
            Outcome::Served(r) => return Some(r),
            Outcome::Ended(r) => {
                // Timed out or CLIENT UNBLOCK: Redis logs the command now (a command
                // served is logged by the shard that served it).
                crate::runtime::call::slowlog_push(
                    &mut shards.local.borrow_mut(),
                    cmd,
                    &argv,
                    0,
                    &caller,
                );
                return Some(r);
            }
            Outcome::Gone => return None,
            Outcome::Retry => {
                let mut batch =
                    dispatch::run_batch_unmonitored(client, shards, vec![argv.clone()]).await;
                if let Some(Some(r)) = batch.replies.pop() {
                    if !found_nothing(cmd, &r) {
                        return Some(r);
                    }
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Some(timeout_reply(cmd));
                }
            }
        }
    }
}

/// A client counted in INFO's `blocked_clients` while this lives, however its wait
/// ends: a blocking command's, and (as Redis counts them) WAIT's and a SHUTDOWN's that
/// waits for replicas.
pub struct Blocked<'a>(&'a Shards);

impl<'a> Blocked<'a> {
    pub fn count(shards: &'a Shards) -> Blocked<'a> {
        shards.local.borrow_mut().stats.blocked_clients += 1;
        Blocked(shards)
    }
}

impl Drop for Blocked<'_> {
    fn drop(&mut self) {
        self.0.local.borrow_mut().stats.blocked_clients -= 1;
    }
}

enum Outcome {
    /// Served by a shard.
    Served(Reply),
    /// Timed out or unblocked.
    Ended(Reply),
    Retry,
    Gone,
}

/// Wait for a wake-up, the deadline, or the peer closing.
async fn wait(
    client: &ClientRef,
    ticket: &Ticket,
    wake: &flume::Receiver<Wake>,
    deadline: Option<Instant>,
    fd: i32,
    cmd: &Command,
    first_key: Option<Bytes>,
) -> Outcome {
    enum Event {
        Wake(Wake),
        Deadline,
        Tick,
    }
    loop {
        // Past the deadline but a shard held the claim: look again in a millisecond
        // (its attempt is synchronous, so it has either replied or given the claim
        // back by then).
        let tick = PEER_CHECK
            .min(deadline.map_or(PEER_CHECK, |d| d.saturating_duration_since(Instant::now())))
            .max(Duration::from_millis(1));
        let woken = async {
            match wake.recv_async().await {
                Ok(w) => Event::Wake(w),
                // Every sender is a registration that was withdrawn: cannot happen
                // while we hold `ticket`, but treat it as a tick.
                Err(_) => Event::Tick,
            }
        };
        let timer = async {
            crate::runtime::backend::sleep(tick).await;
            match deadline {
                Some(d) if Instant::now() >= d => Event::Deadline,
                _ => Event::Tick,
            }
        };
        match woken.or(timer).await {
            Event::Wake(Wake::Served(r)) => return Outcome::Served(r),
            Event::Wake(Wake::Unblocked(r)) => return Outcome::Ended(r),
            Event::Wake(Wake::Retry) => return Outcome::Retry,
            Event::Deadline => {
                if ticket.take(DONE).is_ok() {
                    return Outcome::Ended(timeout_reply(cmd));
                }
                // A shard is trying to serve us right now: either its reply arrives
                // or, if it found nothing after all, the claim is free again at the
                // next tick and the timeout takes it then.
            }
            Event::Tick => {
                let gone = {
                    let c = client.borrow();
                    c.killed || c.pushes.over_limit().is_some()
                };
                if (gone || peer_closed(fd)) && ticket.take(DONE).is_ok() {
                    return Outcome::Gone;
                }
                // Cluster mode: the slot moved away (or the cluster went down) while
                // we waited; Redis redirects such a client at once rather than let it
                // wait for a write that can no longer come here.
                if let Some(redirect) = cluster_redirect(client, cmd, first_key.as_deref()) {
                    if ticket.take(DONE).is_ok() {
                        return Outcome::Ended(redirect);
                    }
                }
            }
        }
    }
}

/// The redirect for a client blocked on `key` whose slot this node stopped serving
/// (see [`crate::cluster::blocked_redirect`]); `None` outside cluster mode.
fn cluster_redirect(client: &ClientRef, cmd: &Command, key: Option<&[u8]>) -> Option<Reply> {
    let key = key?;
    let readonly_read = client.borrow().cluster_readonly && !cmd.is_write();
    crate::cluster::blocked_redirect(crate::runtime::slots::key_slot(key), readonly_read)
}

/// True if the peer closed the connection (EOF or error pending), without consuming
/// any bytes it sent meanwhile: they are read after the command is served. A close
/// behind such bytes counts too (a client that sent QUIT and closed while blocked:
/// Redis reads its bytes meanwhile, meets the end of the stream and frees it), so
/// this asks `poll` for `POLLRDHUP` rather than peeking at the first byte.
pub fn peer_closed(fd: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: `p` is one valid pollfd for the duration of the call, and a timeout of 0
    // makes poll return at once; `fd` is this connection's socket, open while the
    // connection task runs. Nothing is read from the socket.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n > 0 && p.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
}

/// Register waiter `id` on this shard and serve at once if its keys are ready. A
/// stream reader's `$` IDs are fixed here, on the shard that owns the streams.
fn register(s: &mut Shard, id: u64, mut w: Waiter) {
    if rule(command_of(&w)).stream {
        w.argv = crate::commands::stream::for_blocking(&mut s.dbs[w.db], &w.argv);
    }
    let ready: Vec<_> = w.keys.iter().map(|k| (w.db, k.clone(), false)).collect();
    s.blocking.register(id, w);
    set_signal(s);
    s.blocking.retry.extend(ready);
    serve_ready(s);
}

/// Withdraw waiter `id` (it was served elsewhere, timed out or left).
fn withdraw(s: &mut Shard, id: u64) {
    if s.blocking.remove(id) {
        set_signal(s);
    }
}

/// Keep the dbs' ready-key notes on exactly while someone waits here.
fn set_signal(s: &mut Shard) {
    let on = !s.blocking.is_empty();
    for db in s.dbs.iter_mut() {
        db.signal_ready = on;
        if !on {
            db.ready.clear();
        }
    }
}

/// Let the clients blocked on keys of the databases `dbs` says look at their keys
/// again, whatever changed them wholesale (SWAPDB's swap, a flush): Redis's
/// `scanDatabaseForReadyKeys` / `scanDatabaseForDeletedKeys`.
pub fn look_again(s: &mut Shard, dbs: impl Fn(usize) -> bool) {
    let waited = s.blocking.keys_in(dbs);
    if !waited.is_empty() {
        s.blocking
            .retry
            .extend(waited.into_iter().map(|(db, k)| (db, k, true)));
        after_command(s);
    }
}

/// Called after every command on a shard: serve blocked clients whose keys became
/// ready, except where a transaction's claim covers them (then its release serves
/// them).
pub fn after_command(s: &mut Shard) {
    if !s.blocking.is_empty() {
        serve_ready(s);
    }
}

/// Serve the waiters of every ready key, in arrival order per key, until no key is
/// ready (serving one client can make another key ready: BLMOVE's destination).
pub fn serve_ready(s: &mut Shard) {
    // Not inside a transaction's work: its release serves them, outside its log.
    if s.blocking.busy || s.propagation.in_tx_work() {
        return;
    }
    s.blocking.busy = true;
    let mut later = Vec::new();
    loop {
        let mut ready = std::mem::take(&mut s.blocking.retry);
        for (i, db) in s.dbs.iter_mut().enumerate() {
            ready.extend(db.ready.drain(..).map(|k| (i, k, true)));
        }
        if ready.is_empty() {
            break;
        }
        for (db, key, changed) in ready {
            serve_key(s, db, &key, changed, &mut later);
        }
    }
    s.blocking.retry = later;
    s.blocking.busy = false;
    set_signal(s);
}

/// Serve the waiters on one key, in arrival order, until one of them finds nothing.
/// As Redis's handleClientsBlockedOnKeys, readiness is judged now (after the command
/// or the whole transaction): a key that is gone serves nobody, and a key of one type
/// serves only the clients blocked for that type (a list serves BLPOP / BLMOVE /
/// BLMPOP, a sorted set BZPOPMIN / BZMPOP); the others stay blocked.
///
/// `changed` is false for a waiter's own first look at its keys when it registers:
/// then a stream reader is served only with entries. Redis's blocked path (where a
/// stream whose last ID passed the reader's serves it even with no entry left) runs
/// only when a write signals the key.
fn serve_key(
    s: &mut Shard,
    db: usize,
    key: &Bytes,
    changed: bool,
    later: &mut Vec<(usize, Bytes, bool)>,
) {
    let Some(queue) = s.blocking.by_key.get(&(db, key.clone())) else {
        return;
    };
    // A transaction's claim covers the key: look at it once the claim is released
    // (which serves it). Looking now could expire it, and that DEL would reach the
    // replicas and the AOF before the transaction's own writes to the key.
    let fp = || crate::shard::intents::Footprint::keys(vec![key.clone()]);
    if s.intents.blocks_with(None, fp) {
        later.push((db, key.clone(), changed));
        return;
    }
    let ids: Vec<u64> = queue.iter().copied().collect();
    for id in ids {
        let kind = kind_of(s, db, key);
        if kind != Some(Kind::Stream) {
            // XREADGROUP waits on a group of this stream, which is gone with it.
            end_group_reader(s, id);
        }
        let Some(kind) = kind else {
            continue;
        };
        let Some(w) = s.blocking.waiters.get(&id) else {
            continue;
        };
        let cmd = command_of(w);
        if waits_for(cmd) != kind {
            continue;
        }
        let (ticket, retry_only, no_touch) = (w.ticket.clone(), w.retry_only, w.no_touch);
        let caller = w.caller.clone();
        let argv = w.argv.clone();
        match ticket.take(TRYING) {
            Ok(()) => {}
            Err(TRYING) => {
                // Another shard is running this client's command: look again later.
                later.push((db, key.clone(), changed));
                return;
            }
            Err(_) => {
                // Completed elsewhere; its withdrawal is on the way.
                s.blocking.remove(id);
                continue;
            }
        }
        if retry_only {
            ticket.set(DONE);
            let _ = ticket.wake.send(Wake::Retry);
            s.blocking.remove(id);
            continue;
        }
        let start = std::time::Instant::now();
        let Some(run) = ready_argv(s, db, cmd, argv.clone(), key) else {
            ticket.set(FREE);
            if kind == Kind::Stream {
                continue;
            }
            return;
        };
        // A transaction's claim covers a key the command touches: serve it after the
        // claim is released (which calls `after_command`).
        if s.intents.blocks_with(None, || call::footprint(cmd, &run)) {
            ticket.set(FREE);
            later.push((db, key.clone(), changed));
            return;
        }
        // Not recorded as another call: Redis counts a blocked command once, when it
        // first runs (its stats on unblock add time, not calls).
        let mut reply =
            crate::runtime::call::run(s, cmd, db, &run, no_touch, crate::clock::now_ms());
        if kind == Kind::Stream && reply.error_text().is_some_and(|e| e.starts_with("NOGROUP")) {
            // The group was destroyed while the reader waited (Redis's wording).
            reply = Reply::err(
                "NOGROUP the consumer group this client was blocked on no longer exists",
            );
        }
        if changed && kind == Kind::Stream && found_nothing(cmd, &reply) {
            if let Some(r) = crate::commands::stream::served_empty(&mut s.dbs[db], &run) {
                reply = r;
            }
        }
        if found_nothing(cmd, &reply) {
            ticket.set(FREE);
            if kind == Kind::Stream {
                // Readers wait for different IDs: the next may be served.
                continue;
            }
            return;
        }
        ticket.set(DONE);
        // Logged now, with the arguments the client sent, as Redis on unblocking.
        let us = start.elapsed().as_micros() as u64;
        crate::runtime::call::slowlog_push(s, cmd, &argv, us, &caller);
        let _ = ticket.wake.send(Wake::Served(reply));
        s.blocking.remove(id);
    }
}

/// Complete waiter `id` with Redis's error if it is an XREADGROUP: the stream it
/// waits on was deleted or replaced by another type.
fn end_group_reader(s: &mut Shard, id: u64) {
    let Some(w) = s.blocking.waiters.get(&id) else {
        return;
    };
    if !rule(command_of(w)).stream || !crate::commands::stream::is_readgroup(&w.argv) {
        return;
    }
    if w.ticket.take(DONE).is_ok() {
        let reply = Reply::err("UNBLOCKED the stream key no longer exists");
        let _ = w.ticket.wake.send(Wake::Served(reply));
    }
    s.blocking.remove(id);
}

/// The command `w` runs when served (registered by [`block`], always a table entry).
fn command_of(w: &Waiter) -> &'static Command {
    w.cmd
        .downcast_ref()
        .expect("a waiter's command is a command table entry")
}

/// The type of value a key holds, as far as blocked clients care.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    List,
    ZSet,
    Stream,
    Other,
}

/// What `key` holds on this shard now (`None`: nothing).
fn kind_of(s: &mut Shard, db: usize, key: &[u8]) -> Option<Kind> {
    let d = &mut s.dbs[db];
    if d.expire_if_needed(key, crate::clock::now_ms()) {
        return None;
    }
    d.keys.get(key).map(|e| match e.value {
        crate::storage::Value::List(_) => Kind::List,
        crate::storage::Value::ZSet(_) => Kind::ZSet,
        crate::storage::Value::Stream(_) => Kind::Stream,
        _ => Kind::Other,
    })
}

/// The type of key a blocked command is served from.
fn waits_for(cmd: &Command) -> Kind {
    if rule(cmd).stream {
        Kind::Stream
    } else if rule(cmd).sorted_set {
        Kind::ZSet
    } else {
        Kind::List
    }
}

/// `argv` for serving a waiter here because `ready` is ready: that key alone, if it
/// holds the waiter's type (Redis serves the ready key, it does not run the command
/// again: a client blocked on `a b` whose transaction-mate wrote `b` then `a` gets
/// `b`'s item, and a key of another type answers no WRONGTYPE). `None` if it does
/// not.
fn ready_argv(
    s: &mut Shard,
    db: usize,
    cmd: &Command,
    argv: Vec<Bytes>,
    ready: &Bytes,
) -> Option<Vec<Bytes>> {
    if moves(cmd) {
        return Some(argv);
    }
    let want = waits_for(cmd);
    let mut serves = |key: &Bytes| key == ready && kind_of(s, db, key) == Some(want);
    if want == Kind::Stream {
        return crate::commands::stream::keep_streams(&argv, |i| serves(&argv[i]));
    }
    let idx = cmd.key_indexes(&argv);
    let (first, last) = (*idx.first()?, *idx.last()?);
    let keep: Vec<usize> = idx.iter().copied().filter(|&i| serves(&argv[i])).collect();
    if keep.is_empty() {
        return None;
    }
    if keep.len() == idx.len() {
        return Some(argv);
    }
    let mut out = Vec::with_capacity(argv.len());
    out.extend_from_slice(&argv[..first]);
    if rule(cmd).counted_keys {
        // BLMPOP timeout numkeys key... : numkeys just before the first key.
        out.pop();
        out.push(Bytes::from(keep.len().to_string()));
    }
    out.extend(keep.iter().map(|&i| argv[i].clone()));
    out.extend_from_slice(&argv[last + 1..]);
    Some(out)
}

/// CLIENT UNBLOCK on this core's clients: complete client `id`'s wait with its timeout
/// reply or an UNBLOCKED error. True if it was blocked.
pub fn unblock(id: u64, error: bool) -> bool {
    let Some(c) = crate::runtime::clients::get(id) else {
        return false;
    };
    let Some((ticket, timeout)) = c.borrow().blocked.clone() else {
        return false;
    };
    if ticket.take(DONE).is_err() {
        return false;
    }
    let reply = if error {
        Reply::err(errors::UNBLOCKED)
    } else {
        timeout
    };
    let _ = ticket.wake.send(Wake::Unblocked(reply));
    true
}

/// The server becomes a replica (REPLICAOF, a failover): every client of this core
/// blocked on keys gets Redis's UNBLOCKED error and is closed after it, as Redis's
/// `disconnectAllBlockedClients` does. Left blocked, it would be served by the writes
/// the new master sends, taking an item the master keeps: the data sets would differ.
pub fn unblock_all_for_replication() {
    let blocked: Vec<ClientRef> = crate::runtime::clients::each(|all| {
        all.filter(|c| c.try_borrow().is_ok_and(|c| c.blocked.is_some()))
            .cloned()
            .collect()
    });
    for c in blocked {
        let Some((ticket, _)) = c.borrow().blocked.clone() else {
            continue;
        };
        if ticket.take(DONE).is_ok() {
            c.borrow_mut().close_after_reply = true;
            let _ = ticket
                .wake
                .send(Wake::Unblocked(Reply::err(errors::UNBLOCKED_ROLE_CHANGE)));
        }
    }
}
