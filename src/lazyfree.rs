//! Lazy free: big values and flushed databases are dropped on a background thread, so
//! UNLINK of a set of millions of members, or FLUSHALL ASYNC, answers at once and the
//! shard goes on serving (Redis's `lazyfree.c` and its bio thread).
//!
//! # The plan, and why
//! - **One thread per process.** Freeing is bound by memory traffic, not CPU, and is
//!   rare; Redis has one such thread too. A thread per core would sit idle N times
//!   over. The thread is started on first use, so a server that never frees lazily
//!   has none.
//! - **What goes there**: a value whose freeing effort (Redis's
//!   `lazyfreeGetFreeEffort`: a list's nodes, a hashtable's entries, a skiplist's
//!   members; 1 for everything else) is over [`THRESHOLD`], or a database's whole
//!   tables. Anything smaller is dropped on the spot: sending it costs more than
//!   freeing it.
//! - **Who sends**: UNLINK, DEL under `lazyfree-lazy-user-del`, FLUSHALL / FLUSHDB
//!   ASYNC (or with no mode under `lazyfree-lazy-user-flush`), and a replica's flush
//!   before loading its master's data under `replica-lazy-flush`. The values are
//!   out of the keyspace before the command answers, so nothing can see them again:
//!   only their memory is given back later.
//! - **The server's own deletions**: a key deleted by expiry (active, lazy, or an
//!   EXPIRE / GETEX deadline in the past) under `lazyfree-lazy-expire`, by eviction
//!   under `lazyfree-lazy-eviction`, and a value a command deletes or overwrites
//!   (SET over a big set, a *STORE's destination, RENAME's target) under
//!   `lazyfree-lazy-server-del` go the same way. These deletions happen deep in
//!   storage (`Db`), which holds no configuration, so the three switches are
//!   process-wide atomics ([`Switches`]), written by every shard when it takes a
//!   new configuration (they are the same on every shard). Expiries and evictions
//!   freed this way are propagated as UNLINK, as Redis does.
//! - **Counting**: INFO `lazyfree_pending_objects` (sent, not yet freed; a database
//!   counts its keys) and `lazyfreed_objects` (freed so far; CONFIG RESETSTAT zeroes
//!   it). `used_memory` drops as the thread frees (the allocator counts frees on
//!   whichever thread makes them).

use crate::storage::db::Entry;
use crate::storage::{CompactBytes, Dict, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::OnceLock;

/// Above this effort a value is freed on the background thread (Redis's
/// `LAZYFREE_THRESHOLD`).
pub const THRESHOLD: usize = 64;

static PENDING: AtomicU64 = AtomicU64::new(0);
static FREED: AtomicU64 = AtomicU64::new(0);

/// What the thread drops: only its drop matters.
type Job = Box<dyn Send>;

/// A job and the objects it counts for.
type Work = (Job, u64);

/// The thread's queue, the thread started on first use (`None` if it cannot be).
fn sender() -> Option<&'static Sender<Work>> {
    static TX: OnceLock<Option<Sender<Work>>> = OnceLock::new();
    TX.get_or_init(|| {
        let (tx, rx) = channel::<Work>();
        std::thread::Builder::new()
            .name("lazyfree".into())
            .spawn(move || {
                for (job, objects) in rx {
                    drop(job);
                    crate::memory::flush_thread();
                    PENDING.fetch_sub(objects, Ordering::Relaxed);
                    FREED.fetch_add(objects, Ordering::Relaxed);
                }
            })
            .ok()
            .map(|_| tx)
    })
    .as_ref()
}

fn send(job: Job, objects: u64) {
    PENDING.fetch_add(objects, Ordering::Relaxed);
    match sender() {
        Some(tx) => {
            if let Err(back) = tx.send((job, objects)) {
                // The thread is gone (it cannot be, short of a panic in a drop): free
                // here rather than leak.
                drop(back);
                PENDING.fetch_sub(objects, Ordering::Relaxed);
            }
        }
        // No thread could be started: free here.
        None => {
            drop(job);
            PENDING.fetch_sub(objects, Ordering::Relaxed);
        }
    }
}

/// `lazyfree-lazy-expire`, `lazyfree-lazy-eviction`, `lazyfree-lazy-server-del`,
/// `lazyfree-lazy-user-del`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Switches {
    pub expire: bool,
    pub eviction: bool,
    pub server_del: bool,
    pub user_del: bool,
}

static LAZY_EXPIRE: AtomicBool = AtomicBool::new(false);
static LAZY_EVICTION: AtomicBool = AtomicBool::new(false);
static LAZY_SERVER_DEL: AtomicBool = AtomicBool::new(false);
static LAZY_USER_DEL: AtomicBool = AtomicBool::new(false);

/// Take the configuration's switches.
pub fn set_switches(s: Switches) {
    LAZY_EXPIRE.store(s.expire, Ordering::Relaxed);
    LAZY_EVICTION.store(s.eviction, Ordering::Relaxed);
    LAZY_SERVER_DEL.store(s.server_del, Ordering::Relaxed);
    LAZY_USER_DEL.store(s.user_del, Ordering::Relaxed);
}

/// `lazyfree-lazy-expire`.
pub fn lazy_expire() -> bool {
    LAZY_EXPIRE.load(Ordering::Relaxed)
}

/// `lazyfree-lazy-eviction`.
pub fn lazy_eviction() -> bool {
    LAZY_EVICTION.load(Ordering::Relaxed)
}

/// `lazyfree-lazy-server-del`: values a command deletes or replaces as a side effect.
pub fn lazy_server_del() -> bool {
    LAZY_SERVER_DEL.load(Ordering::Relaxed)
}

/// `lazyfree-lazy-user-del`: values DEL and GETDEL delete (GETDEL then propagates
/// as UNLINK, as Redis's does).
pub fn lazy_user_del() -> bool {
    LAZY_USER_DEL.load(Ordering::Relaxed)
}

/// Free `v` lazily if `lazy`, else now.
pub fn free_if(lazy: bool, v: Value) {
    if lazy {
        free(v);
    }
}

/// How many allocations freeing `v` takes, as Redis counts them.
pub fn effort(v: &Value) -> usize {
    match v {
        Value::Str(_) => 1,
        Value::List(l) => l.nodes(),
        Value::Hash(h) if h.encoding() == "hashtable" => h.len(),
        Value::Set(s) if s.encoding() == "hashtable" => s.len(),
        Value::ZSet(z) if z.encoding() == "skiplist" => z.len(),
        // Redis: one allocation per node, and per group with the entries of a PEL
        // (the first group's standing for all).
        Value::Stream(s) => {
            let groups = s.groups.as_deref().map_or(0, |g| {
                let pel = g.values().next().map_or(0, |first| first.pel.len());
                g.len() * (1 + pel)
            });
            s.node_count() + groups
        }
        _ => 1,
    }
}

/// Free `v`: on the background thread if that is worth it, else now.
pub fn free(v: Value) {
    if effort(&v) > THRESHOLD {
        send(Box::new(v), 1);
    }
}

/// Free a database's tables (FLUSHDB ASYNC) on the background thread.
pub fn free_tables(keys: Dict<CompactBytes, Entry>, expires: Dict<CompactBytes, u64>) {
    let objects = keys.len() as u64;
    if objects == 0 {
        return;
    }
    send(Box::new((keys, expires)), objects);
}

/// INFO `lazyfree_pending_objects`.
pub fn pending() -> u64 {
    PENDING.load(Ordering::Relaxed)
}

/// INFO `lazyfreed_objects`.
pub fn freed() -> u64 {
    FREED.load(Ordering::Relaxed)
}

/// CONFIG RESETSTAT.
pub fn reset_stats() {
    FREED.store(0, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::set::Set;

    #[test]
    fn big_values_go_to_the_thread_and_are_counted_once_freed() {
        let mut s = Set::for_member(b"m0");
        for i in 0..1000u32 {
            s.add(format!("m{i}").as_bytes(), 512);
        }
        let v = Value::Set(s);
        assert!(effort(&v) > THRESHOLD);
        let before = freed();
        free(v);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while freed() == before && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(freed() > before);
        // A small value is freed in place: nothing is sent.
        assert_eq!(
            effort(&Value::Str(crate::storage::StrValue::from_set(b"x"))),
            1
        );
    }
}
