//! The scheduler: running one operation over several shards atomically, and EXEC.
//!
//! # The plan
//! Every operation that touches more than one shard (a multi-key command whose keys
//! live on different cores, FLUSHALL / FLUSHDB / SWAPDB, an EXEC whose commands or
//! watched keys span shards) runs as a [`Tx`]:
//!
//! 1. **Claim.** It takes an id from one global counter and sends every shard it
//!    touches a request claiming what it will touch there (its keys, or the whole
//!    shard: see `shard::intents`), all at once: it pushes one request into each
//!    shard's inbox while holding a global mutex (held only for those pushes, never
//!    across an await), then waits for all the grants. Every multi-shard operation of
//!    every core passes through that section, so it holds nothing but the pushes: the
//!    requests are built before it, and (epoll) the cores it finds parked are woken
//!    after it, since a wake-up is a system call each. On 16 cores that took MSET of
//!    ten keys from ~95k/s, flat from 4 shards on, to 160-170k/s at 12 shards. A
//!    shard grants a request when no earlier request still there conflicts with it (a
//!    common key, or a whole-shard claim), running the transaction's first step there
//!    at that moment.
//! 2. **Execute.** It runs its further hops through a handle made by `Shards::for_tx`,
//!    whose jobs pass its own claims. Anything else that reaches a key it has claimed
//!    (a hop from another connection, a command that would run inline on this core)
//!    is parked on the shard and runs when the claim is released; work on other keys
//!    runs meanwhile, and so do transactions on other keys.
//! 3. **Conclude.** With effects to log (the AOF, replicas), every shard it holds
//!    appends its part of the log and then releases, in one job (`Tx::finish`);
//!    otherwise dropping the `Tx` releases every claim (synchronously: a control job
//!    per remote shard, inline for the local one). A `Tx` dropped early concludes the
//!    same way, so an early return, an error or a panic cannot leave a key claimed. A
//!    client that disconnects does not cancel its connection task, which finishes the
//!    operation and releases.
//!
//! Operations that touch one shard take the fast path: no id, no claim, one job that
//! runs everything on that shard in one go (which is atomic because a shard runs one
//! job at a time). So single-key commands, multi-key commands whose keys share a shard
//! (hash tags), and an EXEC confined to one shard pay nothing for the scheduler.
//!
//! # Why it cannot deadlock
//! The mutex puts all transactions in one order (the order they pushed their
//! requests), and because each shard's inbox is FIFO and requests are pushed under the
//! mutex, every shard queues its requests in that same order (this core's shard too:
//! its request goes through the inbox, or, when that inbox is empty, is made at once
//! inside the section, which is where the inbox would have put it). A transaction
//! therefore only ever waits for transactions earlier in the order (and for ordinary
//! work parked before its request, which holds nothing), so the waits cannot form a
//! cycle. While holding its claims it never waits for anything else: its own hops pass
//! its claims, and parked work holds none. Ordinary work never holds a claim, so it
//! only waits for a transaction that is itself making progress.
//!
//! One kind of transaction may block its thread while it waits for its own hops: a
//! script's (`scripting::run`), whose `redis.call` of a command over several shards
//! drives that command to its end in place (a call for one other shard suspends the
//! script instead, and the core runs on: `scripting::slices`). Those hops pass its
//! claims, but the core that runs one may be blocked in the same way by a script of
//! its own waiting for this core. A blocked thread therefore goes on running its
//! shard's jobs (`hop::block_serving`), so every such wait ends. A script waiting
//! for this core's interpreter holds its claims meanwhile, but the script it waits for
//! took the interpreter with every claim it waits for already granted, and never
//! waits for a claim after ([`Tx::claim_more`] does not wait). A script holding
//! its keys that reaches another key claims it after the fact ([`Tx::claim_more`])
//! only where nothing claims or awaits that key: it never waits there, so it adds no
//! edge to a cycle.
//!
//! # Why it is isolated
//! While a transaction is granted on all its shards, no other work touches what it
//! claimed. Its effects therefore appear at once to everyone else, and it sees no one
//! else's partial effects: every transaction behaves as if it ran alone at the moment
//! it was granted its last claim. Two transactions that run at the same time on one
//! shard touch different keys, so their order does not matter. Work that does not wait
//! for a request that is not granted yet sees nothing of that transaction: what it ran
//! on other shards stays hidden behind its claims there until it has run here too.
//! Single-shard work is serialised by the shard itself.
//!
//! # Costs
//! Acquisition is one round trip whatever the number of shards. A key conflicts only
//! with the same key (by name, in any database), so concurrent transactions on
//! different keys of the same shards do not wait for each other: with
//! `benches/load.sh`'s MSET10 and MULTI5 (random keys) they overlap.
//!
//! With the AOF on, replay meets the shards' streams at each transaction and needs
//! every shard to have recorded them in one order. Transactions on different keys
//! still run side by side; only the appending of their parts is ordered: a
//! conclusion is opened and its parts queued on their shards' inboxes in one critical
//! section (`queue_parts`), so they reach every shard in the order conclusions
//! opened. That order is a serial one: of two transactions that share a key, the one
//! granted it first releases it, so opens its conclusion, before the other is granted
//! it. Until 2026-12-05 transactions sharing a shard ran one after the other there
//! (a `serial` claim) instead: MSET over two shards with `appendfsync everysec` ran at
//! 34-40k/s against 45-52k/s now (epoll; benches/README.md, "Multi-shard transactions
//! with the AOF"). And a reply waits for every transaction that was appending its
//! parts when the reply was made (`durability::concluding`) before it waits for the
//! log: work that passed a transaction on one shard between its part there and its
//! parts on the others would otherwise be acknowledged and then cut on load along with
//! that transaction, were the others lost in a crash.

use crate::client::{ClientRef, WatchedKey};
use crate::commands::{errors, Command, Exec};
use crate::protocol::Reply;
use crate::runtime::admission;
use crate::runtime::call;
use crate::runtime::dispatch::{self, Caller};
use crate::runtime::durability::concluding;
use crate::runtime::hop;
use crate::runtime::Shards;
use crate::shard::intents::{Footprint, OnGrant};
use crate::shard::propagation::TxLog;
use crate::shard::Shard;
use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

static NEXT_TX: AtomicU64 = AtomicU64::new(1);

/// A fresh transaction id, for a claim taken outside a `Tx` (a suspended script's on
/// its shard: see `scripting::run`).
pub fn next_id() -> u64 {
    NEXT_TX.fetch_add(1, Ordering::Relaxed)
}

/// A multi-shard operation holding its shards; dropping it releases them.
pub struct Tx {
    pub id: u64,
    /// Its propagated effects, in the order they ran (see `shard::propagation`).
    pub log: Arc<TxLog>,
    /// Handle whose work runs as this transaction.
    pub shards: Shards,
    held: Vec<usize>,
}

/// Serialises the *queueing* of lock requests (never held across an await): every
/// transaction pushes all its requests while holding it, so every shard's queue orders
/// transactions the same way.
static ORDER: Mutex<()> = Mutex::new(());

/// A transaction's first step on one shard, run as soon as the shard is granted.
pub type FirstStep<R> = Box<dyn FnOnce(&mut Shard) -> R + Send>;

/// Whole-shard claims for every shard in `set` (any order, duplicates allowed), in
/// shard order.
fn whole_shards(set: &[usize]) -> Vec<(usize, Footprint)> {
    let mut order: Vec<usize> = set.to_vec();
    order.sort_unstable();
    order.dedup();
    order.into_iter().map(|s| (s, Footprint::Shard)).collect()
}

/// `claims` with nothing to run on grant.
fn no_steps(claims: Vec<(usize, Footprint)>) -> Vec<(usize, Footprint, FirstStep<()>)> {
    claims
        .into_iter()
        .map(|(sid, claim)| {
            let step: FirstStep<()> = Box::new(|_: &mut Shard| ());
            (sid, claim, step)
        })
        .collect()
}

impl Tx {
    /// Acquire every shard in `set` whole (any order, duplicates allowed) in one round.
    pub async fn begin(shards: &Shards, set: &[usize]) -> Tx {
        Tx::begin_claiming(shards, no_steps(whole_shards(set)))
            .await
            .0
    }

    /// Acquire the shards of `steps` whole (one entry per shard); see `begin_claiming`.
    pub async fn begin_with<R: Send + 'static>(
        shards: &Shards,
        steps: Vec<(usize, FirstStep<R>)>,
    ) -> (Tx, Vec<R>) {
        let steps = steps
            .into_iter()
            .map(|(sid, step)| (sid, Footprint::Shard, step))
            .collect();
        Tx::begin_claiming(shards, steps).await
    }

    /// Claim, on each shard of `steps` (one entry per shard), what the transaction
    /// will touch there, in one round, running each shard's step the moment that
    /// shard grants the claim. Returns the steps' results in the order given.
    ///
    /// Running a step before the other shards are granted is safe: nobody else can see
    /// its effects until the `Tx` is dropped, which releases every claim only after all
    /// steps ran; and a transaction ahead of this one on a later shard is ahead of it
    /// on every shard where they conflict, so it has already finished on the earlier
    /// ones.
    pub async fn begin_claiming<R: Send + 'static>(
        shards: &Shards,
        steps: Vec<(usize, Footprint, FirstStep<R>)>,
    ) -> (Tx, Vec<R>) {
        Tx::claiming(shards, steps, false).await
    }

    /// [`Tx::begin_claiming`], its claims `brief` or not. `brief`: the caller will do
    /// nothing with the transaction but finish it (a split command's parts, see
    /// `multishard`), so once a shard has run its step nothing but the conclusion
    /// follows there, and its core does not watch for more before it parks
    /// (`Shard::request_as`). Watching cost MSET, MGET and DEL over 2 shards,
    /// unpipelined, about 10% more CPU per command on 2 cores shared with the clients
    /// (benches/README.md, "No watch for a split command's release").
    pub(crate) async fn claiming<R: Send + 'static>(
        shards: &Shards,
        steps: Vec<(usize, Footprint, FirstStep<R>)>,
        brief: bool,
    ) -> (Tx, Vec<R>) {
        let (tx, results) = Tx::queue(shards, steps, None, false, brief);
        let mut out = Vec::with_capacity(results.len());
        for r in results {
            out.push(
                r.recv_async()
                    .await
                    .expect("a shard never drops a granted step"),
            );
        }
        (tx, out)
    }

    /// Hold the shards of `set` whole, as [`Tx::begin`], unless a shard refuses: one
    /// where `refuse` (run on that shard's thread when the request reaches it) says so
    /// does not queue the request, and then every other claim is released or withdrawn
    /// and the answer is `None`. A script that would hold every shard is refused by a
    /// shard whose core has a busy script suspended (it holds its shard, and would
    /// hold the script up until it ends): Redis answers `-BUSY` there.
    pub async fn begin_unless(shards: &Shards, set: &[usize], refuse: fn() -> bool) -> Option<Tx> {
        Tx::claiming_unless(shards, whole_shards(set), refuse).await
    }

    /// Claim what `claims` says on each of its shards (one entry per shard), unless a
    /// shard refuses, as [`Tx::begin_unless`] does.
    pub async fn claiming_unless(
        shards: &Shards,
        claims: Vec<(usize, Footprint)>,
        refuse: fn() -> bool,
    ) -> Option<Tx> {
        let (tx, results) = Tx::queue(shards, no_steps(claims), Some(refuse), true, false);
        let mut refused = false;
        for (&sid, r) in tx.held.iter().zip(results) {
            // After a refusal only this core's shard is awaited: the Tx's drop releases
            // that shard in place, which must come after its request has reached it.
            if refused && sid != tx.shards.local_id {
                continue;
            }
            refused |= r.recv_async().await.is_err();
        }
        (!refused).then_some(tx)
    }

    /// Queue the requests of `steps` (see `begin_claiming`): the transaction, held or
    /// queued for from here on, and the receivers of the steps' results, in `steps`'
    /// order. With `refuse`, a shard where it says so drops the step unrun (its
    /// receiver disconnects) instead of queueing the request. With `inline`, the
    /// request for this core's shard is made there at once when its inbox would
    /// run it next (`Shards::run_here_if_next`), which saves the trip through the
    /// inbox and a wake-up of this core's inbox task; only for steps that do nothing,
    /// since it runs inside the ordering section.
    ///
    /// `brief`: the transaction sends its shards nothing after these steps but its
    /// conclusion (see [`Tx::claiming`]).
    fn queue<R: Send + 'static>(
        shards: &Shards,
        steps: Vec<(usize, Footprint, FirstStep<R>)>,
        refuse: Option<fn() -> bool>,
        inline: bool,
        brief: bool,
    ) -> (Tx, Vec<flume::Receiver<R>>) {
        let id = next_id();
        let log = Arc::new(TxLog::default());
        let mut held = Vec::with_capacity(steps.len());
        let mut results = Vec::with_capacity(steps.len());
        let mut requests = Vec::with_capacity(steps.len());
        for (sid, claim, step) in steps {
            let (done, result) = flume::bounded(1);
            let granted_log = log.clone();
            let on_grant: OnGrant = Box::new(move |s: &mut Shard| {
                let _ = done.send(hop::as_tx(s, Some(&granted_log), step));
            });
            requests.push(shards.control_job(move |s: &mut Shard| {
                if !refuse.is_some_and(|refuse| refuse()) {
                    s.request_as(id, claim, on_grant, brief)
                }
            }));
            held.push(sid);
            results.push(result);
        }
        // Only the pushes happen in the section (every other core's transactions wait
        // for it): the jobs are built above, and cores parked for want of work are
        // woken after it. Nothing in it may panic: a transaction whose requests reached
        // some shards and not the others keeps its claims queued there for good, and
        // every later transaction on those keys waits behind it.
        crate::runtime::backend::deferring_wakes(|| {
            let _queueing = ORDER.lock().unwrap_or_else(|e| e.into_inner());
            // Through the inbox even for this core's shard, so that the request
            // queues behind requests other cores pushed earlier, unless there are
            // none (the section keeps others from pushing theirs meanwhile).
            for (&sid, request) in held.iter().zip(requests) {
                let request = match (inline, sid == shards.local_id) {
                    (true, true) => match shards.run_here_if_next(request) {
                        Ok(()) => continue,
                        Err(request) => request,
                    },
                    _ => request,
                };
                shards.push(sid, request);
            }
        });
        // Held (or queued for) from here on: dropping the Tx releases or withdraws.
        let tx = Tx {
            id,
            shards: shards.for_tx(id, log.clone()),
            log,
            held,
        };
        (tx, results)
    }
}

impl Tx {
    /// Claim `keys` too, on shard `sid`, if that needs no wait there
    /// (`Intents::try_claim`): true if they are held now, released with the rest.
    pub fn claim_more(&mut self, sid: usize, keys: Vec<Bytes>) -> bool {
        let id = self.id;
        let claim = move |s: &mut Shard| s.intents.try_claim(id, &keys);
        let held = if sid == self.shards.local_id {
            claim(&mut self.shards.local.borrow_mut())
        } else {
            hop::Answer::Remote(self.shards.send_control(sid, claim)).wait()
        };
        if !self.held.contains(&sid) {
            // Released (or found unclaimed) on every shard it may have reached.
            self.held.push(sid);
        }
        held
    }

    /// Conclude: append the transaction's parts of its log on every shard it holds,
    /// each shard releasing right after its part (see `conclude`), and return once
    /// every part is appended; without a log, release.
    pub async fn finish(mut self) {
        for appended in self.conclude() {
            let _ = appended.recv_async().await;
        }
        drop(self)
    }

    /// If the transaction logged effects, queue on every shard it holds, in conclusion
    /// order, its part (see `persistence::aof`) followed there by its release, and
    /// return the receivers that say when each part is appended. A shard is released
    /// right after its part, never before it: work that reaches a key of the
    /// transaction there comes after the part in that shard's stream. (Without a log
    /// nothing is queued, and dropping the `Tx` releases.)
    fn conclude(&mut self) -> Vec<flume::Receiver<()>> {
        let Some(log) = self.log.take().map(Arc::new) else {
            return Vec::new();
        };
        let id = self.id;
        let mut appended = Vec::with_capacity(self.held.len());
        let parts = std::mem::take(&mut self.held).into_iter().map(|sid| {
            let (done, answer) = flume::bounded(1);
            appended.push(answer);
            let log = log.clone();
            let part = move |s: &mut Shard| {
                s.propagation.conclude(s.id, id, &log.0, &log.1);
                let _ = done.send(());
                release_on(s, id)
            };
            (sid, part)
        });
        queue_parts(&self.shards, parts.collect());
        appended
    }
}

/// Serialises the opening of conclusions and the queueing of their parts (never held
/// across an await).
static CONCLUDE: Mutex<()> = Mutex::new(());

/// Open a conclusion and queue its parts, `(shard, part)`, each through its shard's
/// inbox (this core's too), in one critical section: so the parts of any two
/// transactions reach every shard they share in the order their conclusions opened,
/// and every shard's AOF stream meets multi-shard transactions in one order, which
/// loading needs (`persistence::aof::load::merge`). Without it, two transactions on
/// disjoint keys could append in opposite orders on two shards; a crash that lost one
/// part of the later one would then cut the earlier one from a stream, and with it
/// work acknowledged after the earlier one (`load::complete_prefixes`). The conclusion
/// closes when the last part has run.
fn queue_parts<F>(shards: &Shards, parts: Vec<(usize, F)>)
where
    F: FnOnce(&mut Shard) + Send + 'static,
{
    // Opened inside the section, after the jobs that hold it are built.
    let open: Arc<Mutex<Option<concluding::Conclusion>>> = Arc::default();
    let jobs: Vec<(usize, hop::Job)> = parts
        .into_iter()
        .map(|(sid, part)| {
            let open = open.clone();
            let job = move |s: &mut Shard| {
                part(s);
                drop(open);
            };
            (sid, shards.control_job(job))
        })
        .collect();
    crate::runtime::backend::deferring_wakes(|| {
        let _order = CONCLUDE.lock().unwrap_or_else(|e| e.into_inner());
        *open.lock().unwrap_or_else(|e| e.into_inner()) = Some(concluding::open());
        for (sid, job) in jobs {
            shards.push(sid, job);
        }
    });
}

/// Release transaction `id`'s claim on `s`, then serve the clients blocked on keys
/// the transaction made ready.
fn release_on(s: &mut Shard, id: u64) {
    s.release(id);
    crate::runtime::blocking::after_command(s);
}

impl Drop for Tx {
    fn drop(&mut self) {
        let id = self.id;
        // Not concluded by `finish` (an early return): conclude, which releases too.
        self.conclude();
        for &sid in &self.held {
            let release = move |s: &mut Shard| release_on(s, id);
            if sid == self.shards.local_id {
                release(&mut self.shards.local.borrow_mut());
            } else {
                let _ = self.shards.send_control(sid, release);
            }
        }
    }
}

/// The shards a command touches: `None` for a connection-only command, all shards for
/// a server-wide one.
pub fn shards_of(shards: &Shards, cmd: &Command, argv: &[Bytes]) -> Option<Vec<usize>> {
    match cmd.exec {
        Exec::Conn(_) | Exec::Container => None,
        Exec::Server(_) => Some((0..shards.count()).collect()),
        Exec::Shard(_) => {
            let keys = cmd.key_indexes(argv);
            if keys.is_empty() {
                return Some(vec![shards.local_id]);
            }
            let mut v: Vec<usize> = keys.iter().map(|&k| shards.shard_of(&argv[k])).collect();
            v.sort_unstable();
            v.dedup();
            Some(v)
        }
    }
}

/// WATCH: register each key on its shard and remember its version and existence.
pub async fn watch(client: &ClientRef, shards: &Shards, keys: &[Bytes]) {
    let db = client.borrow().db;
    for key in keys {
        let already = client
            .borrow()
            .watched
            .iter()
            .any(|w| w.db == db && w.key == *key);
        if already {
            continue;
        }
        let shard = shards.shard_of(key);
        let k = key.clone();
        let (version, existed) = shards
            .on(shard, move |s: &mut Shard| {
                let now = crate::clock::now_ms();
                let existed = s.dbs[db].contains(&k, now);
                (s.watches.watch(db, &k), existed)
            })
            .await;
        client.borrow_mut().watched.push(WatchedKey {
            shard,
            db,
            key: key.clone(),
            version,
            existed,
        });
    }
}

/// Forget every key the client watches (UNWATCH, EXEC, DISCARD, RESET, disconnect).
/// Fire and forget: nothing waits for the shards to process it.
pub fn unwatch_all(client: &ClientRef, shards: &Shards) {
    let watched = std::mem::take(&mut client.borrow_mut().watched);
    for w in watched {
        let WatchedKey { shard, db, key, .. } = w;
        if shard == shards.local_id && shards.local_is_free() {
            shards.local.borrow_mut().watches.unwatch(db, &key);
        } else {
            let _ = shards.send(shard, move |s: &mut Shard| s.watches.unwatch(db, &key));
        }
    }
}

/// True if a watched key changed since WATCH (checked on its shard, inside the
/// operation that runs EXEC): a write signalled it, or it existed then and has
/// expired since (Redis's `isWatchedKeyExpired`). A key that merely appeared without
/// a signal does not count: BITFIELD ... OVERFLOW FAIL creates its key and changes
/// nothing, and Redis's EXEC then goes ahead.
fn watch_broken(s: &mut Shard, w: &WatchedKey) -> bool {
    let now = crate::clock::now_ms();
    let exists = s.dbs[w.db].contains(&w.key, now);
    s.watches.version(w.db, &w.key) != w.version || (w.existed && !exists)
}

/// Consecutive single-shard commands of an EXEC for one shard, and that shard.
type Run = (usize, Keyed);

/// A queued command, resolved again at EXEC time.
struct Queued {
    cmd: &'static Command,
    argv: Vec<Bytes>,
    /// [`shards_of`] the command, found once: each path reads it again (its keys'
    /// slots hashed and two vectors allocated per call).
    shards: Option<Vec<usize>>,
    /// Its reads are remembered for the client's tracking once it has run (see
    /// `runtime::tracking::before_command`).
    track: bool,
}

/// EXEC: run the queued commands as one operation; a null array when a watched key
/// changed.
pub async fn exec(client: &ClientRef, shards: &Shards, queued: Vec<Vec<Bytes>>) -> Reply {
    let caller = dispatch::caller_of(client);
    let (watched, tracked) = {
        let mut c = client.borrow_mut();
        let tracked = std::mem::take(&mut c.exec_tracked);
        // (What an EXEC that never got here left, EXECABORT's, is stale if the
        // client has stopped tracking since: `before_command` sets it anew for every
        // EXEC of a tracking client.)
        let tracked = if c.tracking.is_some() {
            tracked
        } else {
            Vec::new()
        };
        (c.watched.clone(), tracked)
    };
    let queued: Vec<Queued> = queued
        .into_iter()
        .enumerate()
        .filter_map(|(i, argv)| {
            dispatch::resolve(&argv).ok().map(|cmd| Queued {
                shards: shards_of(shards, cmd, &argv),
                track: tracked.get(i).copied().unwrap_or(false),
                cmd,
                argv,
            })
        })
        .collect();
    let (queued, refused) = recheck_acl(client, queued);
    let mut set: Vec<usize> = watched.iter().map(|w| w.shard).collect();
    let mut server_wide = false;
    // A command that spans shards, or the whole server, must run in queue order.
    let mut ordered = false;
    for q in &queued {
        if let Some(v) = &q.shards {
            // (A SORT whose patterns name keys holds every shard: see `exec_locked`.)
            let spreads = q.cmd.spread_over(shards, &q.argv).is_some();
            let server = matches!(q.cmd.exec, Exec::Server(_));
            server_wide |= server || spreads;
            ordered |= server || spreads || v.len() > 1;
            set.extend(v);
            if spreads {
                set.extend(0..shards.count());
            }
        }
    }
    set.sort_unstable();
    set.dedup();
    let reply = if set.len() <= 1 && !server_wide {
        exec_on_one_shard(
            client,
            shards,
            queued,
            watched,
            set.first().copied(),
            caller,
        )
        .await
    } else if !ordered {
        exec_parallel(client, shards, queued, watched, &set, caller).await
    } else {
        exec_locked(client, shards, queued, watched, &set, caller).await
    };
    unwatch_all(client, shards);
    match reply {
        Reply::Array(mut replies) if !refused.is_empty() => {
            for (i, r) in refused {
                replies.insert(i.min(replies.len()), r);
            }
            Reply::Array(replies)
        }
        reply => reply,
    }
}

/// EXEC checks the queued commands against the ACL again, as Redis does, in case the
/// user's rules changed since they were queued: the refused ones are left out, and
/// their errors (with their queue index) go in the reply in their place. A SORT whose
/// BY or GET the user may not use gets SORT's own error there (Redis's SORT refuses
/// them when it runs).
fn recheck_acl(client: &ClientRef, queued: Vec<Queued>) -> (Vec<Queued>, Vec<(usize, Reply)>) {
    if client.borrow().user.unrestricted() || client.borrow().replicated() {
        return (queued, Vec::new());
    }
    let mut kept = Vec::with_capacity(queued.len());
    let mut refused = Vec::new();
    for (i, q) in queued.into_iter().enumerate() {
        let c = client.borrow();
        match crate::acl::check(&c.user, q.cmd, &q.argv) {
            Ok(()) => match crate::acl::sort_refusal(&c.user, q.cmd, &q.argv) {
                Some(e) => refused.push((i, Reply::err(e))),
                None => kept.push(q),
            },
            Err(denied) => {
                let context = crate::acl::Context::Multi;
                admission::log_refusal(&c, denied, context, q.cmd, &q.argv);
                refused.push((
                    i,
                    Reply::error(format!(
                        "NOPERM ACLs rules changed between the moment the transaction was \
                         accumulated and the EXEC call. This command is no longer allowed for \
                         the following reason: {}",
                        denied.exec_reason()
                    )),
                ));
            }
        }
    }
    (kept, refused)
}

/// Replies of keyed commands by queue index, with their durations (us) for the slow
/// log.
type Replies = Vec<(usize, Reply, u64)>;

/// Keyed commands of an EXEC: (queue index, db, entry, argv, whether its reads are
/// remembered for tracking), in order.
type Keyed = Vec<(usize, usize, &'static Command, Vec<Bytes>, bool)>;

/// The keyed commands with the db each runs in: SELECTs are connection commands that
/// run after the keyed ones, so their effect on later commands is worked out here.
fn plan_keyed(client: &ClientRef, queued: &[Queued]) -> Keyed {
    let (mut db, databases) = {
        let c = client.borrow();
        (c.db, c.databases)
    };
    let mut keyed = Vec::new();
    for (i, q) in queued.iter().enumerate() {
        match q.cmd.exec {
            Exec::Shard(_) => keyed.push((i, db, q.cmd, q.argv.clone(), q.track)),
            _ if q.cmd.has_trait(crate::commands::traits::SELECTS_DB) => {
                if let Ok(n) = crate::commands::args::int(&q.argv[1]) {
                    if n >= 0 && (n as usize) < databases {
                        db = n as usize;
                    }
                }
            }
            _ => {}
        }
    }
    keyed
}

/// What the queued commands need of their client on the shards: CLIENT NO-TOUCH, its
/// id (the writer client-side caching's NOLOOP skips), and a script's clock (`None`:
/// the shard reads the clock when it runs them).
#[derive(Clone, Copy)]
struct Of {
    no_touch: bool,
    id: u64,
    now_ms: Option<u64>,
}

fn of(client: &ClientRef) -> Of {
    let c = client.borrow();
    Of {
        no_touch: c.no_touch,
        id: c.id,
        now_ms: None,
    }
}

/// Run keyed commands on their shard, in order.
fn run_keyed(s: &mut Shard, keyed: Keyed, of: Of) -> Replies {
    let no_touch = of.no_touch;
    crate::tracking::set_writer(of.id);
    let now = of.now_ms.unwrap_or_else(crate::clock::now_ms);
    // Blocked clients are served after the whole transaction, as Redis does after EXEC.
    let was_busy = std::mem::replace(&mut s.blocking.busy, true);
    s.propagate_expired();
    s.propagation.begin_block();
    crate::tracking::hold_broadcasts(true);
    let replies = keyed
        .into_iter()
        .map(|(i, db, cmd, argv, track)| {
            let (reply, us) = call::call_queued(s, cmd, db, &argv, no_touch, now);
            // Right after it ran, in the same step (see `runtime::tracking`): a write
            // earlier in the transaction does not invalidate what this read returns.
            if track {
                crate::runtime::tracking::remember(of.id, cmd, &argv);
            }
            (i, reply, us)
        })
        .collect();
    crate::tracking::hold_broadcasts(false);
    crate::runtime::tracking::send_pending();
    s.propagation.end_block();
    crate::tracking::set_writer(0);
    s.blocking.busy = was_busy;
    crate::runtime::blocking::after_command(s);
    replies
}

/// One keyed command of a script holding its shard, run as EXEC runs its commands,
/// with the script's clock (`now_ms`: when it started).
pub fn run_in_tx(
    s: &mut Shard,
    db: usize,
    cmd: &'static Command,
    argv: Vec<Bytes>,
    no_touch: bool,
    id: u64,
    now_ms: u64,
) -> Reply {
    let of = Of {
        no_touch,
        id,
        now_ms: Some(now_ms),
    };
    // (A script remembers its reads itself: `scripting::run`.)
    let mut replies = run_keyed(s, vec![(0, db, cmd, argv, false)], of);
    replies.pop().map_or(Reply::Null, |(_, r, _)| r)
}

/// EXEC's reply: the keyed commands' replies by index, then the connection commands
/// run on the client in order. Every command is then logged in the slow log in queue
/// order, as Redis's EXEC runs (and logs) them one after the other.
fn assemble(
    client: &ClientRef,
    shards: &Shards,
    caller: &Caller,
    queued: &[Queued],
    results: Replies,
) -> Reply {
    let mut replies: Vec<Option<Reply>> = (0..queued.len()).map(|_| None).collect();
    let mut took: Vec<Option<u64>> = vec![None; queued.len()];
    for (i, r, us) in results {
        replies[i] = Some(r);
        took[i] = Some(us);
    }
    for (i, q) in queued.iter().enumerate() {
        if let Exec::Conn(f) = q.cmd.exec {
            let start = std::time::Instant::now();
            let reply = f(&mut client.borrow_mut(), &q.argv);
            let us = call::record_stats(&mut shards.local.borrow_mut(), q.cmd, start, &reply);
            replies[i] = Some(reply);
            took[i] = Some(us);
        }
    }
    log_in_order(
        shards,
        caller,
        queued.iter().map(|q| (q.cmd, &q.argv[..])),
        took,
    );
    Reply::Array(
        replies
            .into_iter()
            .map(|r| r.unwrap_or(Reply::Null))
            .collect(),
    )
}

/// The slow log entries of an EXEC's commands, in queue order (`None`: did not run).
fn log_in_order<'a>(
    shards: &Shards,
    caller: &Caller,
    commands: impl Iterator<Item = (&'a Command, &'a [Bytes])>,
    took: Vec<Option<u64>>,
) {
    let mut local = shards.local.borrow_mut();
    for ((cmd, argv), us) in commands.zip(took) {
        if let Some(us) = us {
            call::slowlog_push(&mut local, cmd, argv, us, caller);
        }
    }
}

/// For each shard of `set`, a first step that tells whether one of the watched keys
/// living there changed.
fn watch_steps(
    set: &[usize],
    claims: Vec<Footprint>,
    watched: &[WatchedKey],
) -> Vec<(usize, Footprint, FirstStep<bool>)> {
    set.iter()
        .zip(claims)
        .map(|(&sid, claim)| {
            let ws: Vec<WatchedKey> = watched.iter().filter(|w| w.shard == sid).cloned().collect();
            let step: FirstStep<bool> =
                Box::new(move |s: &mut Shard| ws.iter().any(|w| watch_broken(s, w)));
            (sid, claim, step)
        })
        .collect()
}

/// What an EXEC's commands and watched keys touch on each shard of `set` (in the same
/// order): their keys; the whole shard for a server-wide command (on every shard), a
/// keyed command that names no key (on this core's shard, where it runs) or one that
/// may reach keys its key spec does not name (on every shard).
fn claims(
    shards: &Shards,
    queued: &[Queued],
    watched: &[WatchedKey],
    set: &[usize],
) -> Vec<Footprint> {
    // None: the whole shard.
    let mut keys: Vec<Option<Vec<Bytes>>> = set.iter().map(|_| Some(Vec::new())).collect();
    let mut add = |sid: usize, key: Option<&Bytes>| {
        if let Some(i) = set.iter().position(|&s| s == sid) {
            match (&mut keys[i], key) {
                (Some(v), Some(k)) => v.push(k.clone()),
                (slot, None) => *slot = None,
                (None, Some(_)) => {}
            }
        }
    };
    for w in watched {
        add(w.shard, Some(&w.key));
    }
    for q in queued {
        match q.cmd.exec {
            Exec::Shard(_) => match call::footprint(q.cmd, &q.argv) {
                Footprint::Keys(ks) => {
                    for k in &ks {
                        add(shards.shard_of(k), Some(k));
                    }
                }
                Footprint::Shard if q.cmd.spread.is_none() => add(shards.local_id, None),
                Footprint::Shard => set.iter().for_each(|&sid| add(sid, None)),
            },
            Exec::Server(_) => set.iter().for_each(|&sid| add(sid, None)),
            Exec::Conn(_) | Exec::Container => {}
        }
    }
    keys.into_iter()
        .map(|k| k.map_or(Footprint::Shard, Footprint::keys))
        .collect()
}

/// Fast path: every command and watched key is on one shard (or there are none). One
/// job checks the watches and runs every keyed command.
async fn exec_on_one_shard(
    client: &ClientRef,
    shards: &Shards,
    queued: Vec<Queued>,
    watched: Vec<WatchedKey>,
    shard: Option<usize>,
    caller: Caller,
) -> Reply {
    let keyed = plan_keyed(client, &queued);
    let no_touch = of(client);
    let shard = shard.unwrap_or(shards.local_id);
    let results = shards
        .on(shard, move |s: &mut Shard| {
            if watched.iter().any(|w| watch_broken(s, w)) {
                return None;
            }
            Some(run_keyed(s, keyed, no_touch))
        })
        .await;
    // (Not counted for connection affinity, unlike a script: moving every client
    // of one hash tag's transactions to its core cost a third of their throughput
    // on 2 cores, benches/README.md "Scripts follow their keys".)
    match results {
        Some(results) => assemble(client, shards, &caller, &queued, results),
        None => Reply::NullArray,
    }
}

/// Commands on several shards, none of which spans shards or the whole server: the
/// commands of different shards commute, so each shard runs its own commands, in
/// order, as its first step of the transaction (one round trip); with watched keys, a
/// first round checks them on every shard and a second runs the commands.
async fn exec_parallel(
    client: &ClientRef,
    shards: &Shards,
    queued: Vec<Queued>,
    watched: Vec<WatchedKey>,
    set: &[usize],
    caller: Caller,
) -> Reply {
    let no_touch = of(client);
    let mut by_shard: Vec<(usize, Keyed)> = set.iter().map(|&sid| (sid, Vec::new())).collect();
    for item in plan_keyed(client, &queued) {
        let sid = queued[item.0]
            .shards
            .as_ref()
            .and_then(|v| v.first().copied())
            .unwrap_or(shards.local_id);
        if let Some((_, v)) = by_shard.iter_mut().find(|(s, _)| *s == sid) {
            v.push(item);
        }
    }
    let claims = claims(shards, &queued, &watched, set);
    let results: Replies = if watched.is_empty() {
        let steps: Vec<(usize, Footprint, FirstStep<Replies>)> = by_shard
            .into_iter()
            .zip(claims)
            .map(|((sid, keyed), claim)| {
                let step: FirstStep<Replies> =
                    Box::new(move |s: &mut Shard| run_keyed(s, keyed, no_touch));
                (sid, claim, step)
            })
            .collect();
        let (tx, results) = Tx::begin_claiming(shards, steps).await;
        tx.finish().await;
        results.into_iter().flatten().collect()
    } else {
        let steps = watch_steps(set, claims, &watched);
        let (tx, broken) = Tx::begin_claiming(shards, steps).await;
        if broken.into_iter().any(|b| b) {
            return Reply::NullArray;
        }
        let waiting: Vec<_> = by_shard
            .into_iter()
            .map(|(sid, keyed)| {
                tx.shards
                    .send_or_local(sid, move |s: &mut Shard| run_keyed(s, keyed, no_touch))
            })
            .collect();
        let mut results = Vec::new();
        for rx in waiting {
            results.extend(rx.get().await);
        }
        tx.finish().await;
        results
    };
    assemble(client, shards, &caller, &queued, results)
}

/// General path: hold every involved shard, check the watches, run the commands in
/// order (consecutive commands for the same shard in one hop), release.
async fn exec_locked(
    client: &ClientRef,
    shards: &Shards,
    queued: Vec<Queued>,
    watched: Vec<WatchedKey>,
    set: &[usize],
    caller: Caller,
) -> Reply {
    // Claim what it touches on every shard, checking the watched keys on each as it
    // is granted.
    let steps = watch_steps(set, claims(shards, &queued, &watched, set), &watched);
    let (tx, broken) = Tx::begin_claiming(shards, steps).await;
    if broken.into_iter().any(|b| b) {
        return Reply::NullArray;
    }
    let t = &tx.shards;
    let mut replies: Vec<Reply> = Vec::with_capacity(queued.len());
    // Durations, for the slow log (written in queue order at the end).
    let mut took: Vec<Option<u64>> = Vec::with_capacity(queued.len());
    let logged: Vec<(&'static Command, Vec<Bytes>)> =
        queued.iter().map(|q| (q.cmd, q.argv.clone())).collect();
    // Consecutive single-shard commands for one shard: (shard, [(db, cmd, argv)]).
    let mut run: Option<Run> = None;
    let no_touch = of(client);
    for (i, mut q) in queued.into_iter().enumerate() {
        // A command reaching beyond its key's shard (a SORT whose BY / GET patterns name
        // keys) takes its own path, as the transaction's work over every shard it holds.
        if let Some(spread) = q.cmd.spread_over(t, &q.argv) {
            flush_run(t, run.take(), &mut replies, &mut took, no_touch).await;
            let start = std::time::Instant::now();
            let db = client.borrow().db;
            let reply = (spread.run)(t, q.cmd, db, &q.argv).await;
            // (The transaction still holds what it read: no write comes between.)
            if q.track {
                crate::runtime::tracking::remember(no_touch.id, q.cmd, &q.argv);
            }
            took.push(Some(call::record_stats(
                &mut t.local.borrow_mut(),
                q.cmd,
                start,
                &reply,
            )));
            replies.push(reply);
            continue;
        }
        let target = q.shards.take();
        if let (Exec::Shard(_), Some(v)) = (q.cmd.exec, &target) {
            if v.len() == 1 {
                let db = client.borrow().db;
                let item = (i, db, q.cmd, q.argv, q.track);
                match &mut run {
                    Some((sid, items)) if *sid == v[0] => items.push(item),
                    _ => {
                        flush_run(t, run.take(), &mut replies, &mut took, no_touch).await;
                        run = Some((v[0], vec![item]));
                    }
                }
                continue;
            }
        }
        flush_run(t, run.take(), &mut replies, &mut took, no_touch).await;
        let start = std::time::Instant::now();
        let reply = match q.cmd.exec {
            Exec::Conn(f) => f(&mut client.borrow_mut(), &q.argv),
            Exec::Server(f) => {
                let reply = f(client, t, &q.argv).await;
                // A server-wide write (FLUSHALL, FLUSHDB, SWAPDB) is propagated once,
                // meeting every shard's stream, as `dispatch::run_server` does.
                if q.cmd.is_write()
                    && !q.cmd.owns_its_effects()
                    && !reply.is_error()
                    && call::propagating(&shards.server)
                {
                    let all: Vec<usize> = (0..shards.count()).collect();
                    let db = client.borrow().db;
                    let effect = crate::shard::propagation::Effect::new(db, q.argv.clone());
                    tx.log.push(&all, [effect]);
                }
                reply
            }
            Exec::Shard(_) => {
                let db = client.borrow().db;
                crate::runtime::multishard::run(
                    t,
                    q.cmd,
                    db,
                    &q.argv,
                    no_touch.no_touch,
                    no_touch.id,
                    None,
                )
                .await
            }
            Exec::Container => errors::syntax(),
        };
        if q.track {
            crate::runtime::tracking::remember(no_touch.id, q.cmd, &q.argv);
        }
        let us = call::record_stats(&mut t.local.borrow_mut(), q.cmd, start, &reply);
        took.push(Some(us));
        replies.push(reply);
    }
    flush_run(t, run.take(), &mut replies, &mut took, no_touch).await;
    tx.finish().await;
    log_in_order(
        shards,
        &caller,
        logged.iter().map(|(c, a)| (*c, &a[..])),
        took,
    );
    Reply::Array(replies)
}

async fn flush_run(
    t: &Shards,
    run: Option<Run>,
    replies: &mut Vec<Reply>,
    took: &mut Vec<Option<u64>>,
    no_touch: Of,
) {
    let Some((sid, keyed)) = run else { return };
    let got = t
        .on(sid, move |s: &mut Shard| run_keyed(s, keyed, no_touch))
        .await;
    // Runs are flushed in queue order, so their replies append in order.
    for (_, r, us) in got {
        replies.push(r);
        took.push(Some(us));
    }
}
