//! Client-side caching (Redis's `tracking.c`): who tracks, which client may cache which
//! key, and the invalidations a core owes but has not sent yet. A leaf: storage (lazy
//! and active expiry), the call path and the CLIENT commands import it; it imports
//! nothing of ours. Sending is the runtime's (`runtime::tracking`).
//!
//! **One table, shared, touched only while someone tracks.** The table (key → ids of
//! the clients that read it) is server-wide, as Redis's is (its keys are not per
//! database), behind one mutex, with the trackers (id → mode, core, redirect) and the
//! BCAST prefixes (prefix → ids). The DESIGN's rule "no locks on the data path" holds
//! in the case that matters: [`active`] is one relaxed atomic load, and while no
//! client has tracking on no command takes the lock, so a GET or SET pays that load
//! and nothing else. While some client tracks, a read of a tracking client and every
//! write take the lock briefly. Why not a table per shard, on the shard's thread:
//! a read must be recorded *before* its reply leaves, in the same step as the read
//! (else a write slipping between the read and a later record is never invalidated),
//! and reads come through four paths (inline, a batch hop, a multi-shard transaction,
//! EXEC); one shared table lets the connection's core record the keys once, before the
//! command runs, whatever path it then takes (a write in between only costs a
//! spurious invalidation). EXEC's commands are recorded where each runs, right after
//! it (`transaction::run_keyed`), as Redis's are: recorded before, a read after a
//! write of the same key in the transaction drew an invalidation. A lock per shard
//! (the key's slot choosing it) is the next step if tracking-heavy workloads show
//! contention.
//!
//! **Where invalidations wait.** A write (the keys its table entry's `Touch` rule says
//! it modified, as for WATCH), an expired key, an eviction from a full table or a
//! flush appends notes to a thread-local log on the core where it happened, each
//! naming the tracker, its core and its redirect; the runtime takes them ([`take`])
//! right after the command, next to its keyspace events, and posts them, one job per
//! destination core, before the command's reply leaves.
//!
//! **Simplified from Redis.** BCAST invalidations are sent after each command, or
//! after a transaction's commands on a shard (one message per prefix with the keys
//! modified under it), not collected over a whole event loop iteration. `tracking-table-max-keys` is enforced when a read adds keys (Redis:
//! before each command), evicting keys in the table's iteration order (Redis: a random
//! walk), each evicted key invalidated for its readers as Redis does.

use bytes::Bytes;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// How a client tracks (Redis's `CLIENT_TRACKING_*` flags and its redirect).
#[derive(Clone, Debug, Default)]
pub struct Tracker {
    /// The core its connection lives on.
    pub core: usize,
    /// Client id invalidations go to (0: itself), and that client's core.
    pub redirect: u64,
    pub redirect_core: usize,
    pub bcast: bool,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
    /// Its redirect target was found gone (TRACKINGINFO `broken_redirect`).
    pub broken: bool,
    /// BCAST prefixes, sorted.
    pub prefixes: BTreeSet<Bytes>,
}

/// One invalidation owed: to tracker `client` (on `core`, redirecting to `redirect` on
/// `redirect_core`), of `keys`, or of every key (`None`, after a flush).
#[derive(Clone, Debug, PartialEq)]
pub struct Note {
    pub client: u64,
    pub core: usize,
    pub redirect: u64,
    pub redirect_core: usize,
    pub keys: Option<Vec<Bytes>>,
    /// The BCAST prefix the keys fell under, for a BCAST note: the notes of one
    /// batch for the same client and prefix go as one message ([`take`]).
    pub prefix: Option<Bytes>,
}

#[derive(Default)]
struct Table {
    keys: HashMap<Bytes, BTreeSet<u64>>,
    items: usize,
    trackers: HashMap<u64, Tracker>,
    prefixes: BTreeMap<Bytes, BTreeSet<u64>>,
}

static TABLE: Mutex<Option<Table>> = Mutex::new(None);
/// Clients with tracking on (INFO `tracking_clients`); 0 keeps every hook off.
static CLIENTS: AtomicUsize = AtomicUsize::new(0);
/// `tracking-table-max-keys` (0: no limit).
static MAX_KEYS: AtomicU64 = AtomicU64::new(1_000_000);

thread_local! {
    static PENDING: RefCell<Vec<Note>> = const { RefCell::new(Vec::new()) };
    /// The client whose command runs on this core's shard (0: none known), for NOLOOP.
    static WRITER: Cell<u64> = const { Cell::new(0) };
    /// Set while a transaction's commands run here: BCAST notes wait for its end.
    static HOLD_BROADCASTS: Cell<bool> = const { Cell::new(false) };
}

/// The client whose command runs now on this core's shard (the call path sets it).
#[inline]
pub fn set_writer(id: u64) {
    WRITER.set(id);
}

/// The client whose command runs now, 0 if unknown.
pub fn writer() -> u64 {
    WRITER.get()
}

fn table() -> MutexGuard<'static, Option<Table>> {
    TABLE.lock().unwrap_or_else(|e| e.into_inner())
}

fn with<R>(f: impl FnOnce(&mut Table) -> R) -> R {
    f(table().get_or_insert_with(Table::default))
}

/// True while some client has tracking on: the hooks' one relaxed load.
#[inline]
pub fn active() -> bool {
    CLIENTS.load(Ordering::Relaxed) != 0
}

/// Set `tracking-table-max-keys` (a shard's configuration refresh).
pub fn set_max_keys(n: u64) {
    MAX_KEYS.store(n, Ordering::Relaxed);
}

/// Turn tracking on for client `id` (or change its mode: the caller checked that
/// BCAST stays as it was). BCAST prefixes are added to those it has (none given:
/// the empty prefix), as Redis does.
pub fn enable(id: u64, mut t: Tracker, prefixes: &[Bytes]) {
    with(|tb| {
        let old = tb.trackers.remove(&id);
        if old.is_none() {
            CLIENTS.fetch_add(1, Ordering::Relaxed);
        }
        t.prefixes = old.map(|o| o.prefixes).unwrap_or_default();
        if t.bcast {
            let empty = [Bytes::new()];
            let given = if prefixes.is_empty() {
                &empty[..]
            } else {
                prefixes
            };
            for p in given {
                tb.prefixes.entry(p.clone()).or_default().insert(id);
                t.prefixes.insert(p.clone());
            }
        }
        tb.trackers.insert(id, t);
    });
}

/// Turn tracking off for client `id` (CLIENT TRACKING OFF, RESET, disconnection). Its
/// ids stay in the table's entries until those keys are invalidated, as in Redis.
pub fn disable(id: u64) {
    if !active() {
        return;
    }
    with(|tb| {
        if let Some(t) = tb.trackers.remove(&id) {
            CLIENTS.fetch_sub(1, Ordering::Relaxed);
            for p in &t.prefixes {
                if let Some(ids) = tb.prefixes.get_mut(p) {
                    ids.remove(&id);
                    if ids.is_empty() {
                        tb.prefixes.remove(p);
                    }
                }
            }
        }
    });
}

/// Client `id`'s tracking mode, if it tracks.
pub fn tracker(id: u64) -> Option<Tracker> {
    if !active() {
        return None;
    }
    with(|tb| tb.trackers.get(&id).cloned())
}

/// Mark client `id`'s redirect as gone.
pub fn mark_broken(id: u64) {
    with(|tb| {
        if let Some(t) = tb.trackers.get_mut(&id) {
            t.broken = true;
        }
    });
}

/// Remember that client `id` may cache `keys` (a read it sent), then keep the table
/// within `tracking-table-max-keys`.
pub fn remember<'a>(id: u64, keys: impl Iterator<Item = &'a Bytes>) {
    with(|tb| {
        for k in keys {
            if tb.keys.entry(k.clone()).or_default().insert(id) {
                tb.items += 1;
            }
        }
        let max = MAX_KEYS.load(Ordering::Relaxed) as usize;
        if max == 0 {
            return;
        }
        while tb.keys.len() > max {
            let Some(k) = tb.keys.keys().next().cloned() else {
                break;
            };
            invalidate_in(tb, &[k], 0, false);
        }
    });
}

/// Keys modified (by client `writer`, 0 for none: expiry): note an invalidation for
/// every client that may cache them, and for the BCAST clients whose prefixes match.
pub fn invalidate(keys: &[Bytes], writer: u64) {
    if keys.is_empty() || !active() {
        return;
    }
    with(|tb| invalidate_in(tb, keys, writer, true));
}

fn note(t: &Tracker, client: u64, keys: Option<Vec<Bytes>>) -> Note {
    Note {
        client,
        core: t.core,
        redirect: t.redirect,
        redirect_core: t.redirect_core,
        keys,
        prefix: None,
    }
}

fn invalidate_in(tb: &mut Table, keys: &[Bytes], writer: u64, bcast: bool) {
    let mut notes = Vec::new();
    if bcast && !tb.prefixes.is_empty() {
        for (prefix, ids) in &tb.prefixes {
            let under: Vec<&Bytes> = keys.iter().filter(|k| k.starts_with(prefix)).collect();
            if under.is_empty() {
                continue;
            }
            for id in ids {
                let Some(t) = tb.trackers.get(id) else {
                    continue;
                };
                if t.noloop && *id == writer {
                    continue;
                }
                let mut ks: Vec<Bytes> = under.iter().map(|k| (*k).clone()).collect();
                ks.sort();
                ks.dedup();
                let mut n = note(t, *id, Some(ks));
                n.prefix = Some(prefix.clone());
                notes.push(n);
            }
        }
    }
    for k in keys {
        let Some(ids) = tb.keys.remove(k) else {
            continue;
        };
        tb.items -= ids.len();
        for id in ids {
            let Some(t) = tb.trackers.get(&id) else {
                continue;
            };
            if t.bcast || (t.noloop && id == writer) {
                continue;
            }
            notes.push(note(t, id, Some(vec![k.clone()])));
        }
    }
    if !notes.is_empty() {
        PENDING.with_borrow_mut(|p| p.extend(notes));
    }
}

/// Every key is gone (FLUSHALL, FLUSHDB): every tracker is told so with a null, and
/// the table is emptied (Redis's `trackingInvalidateKeysOnFlush`), even when no client
/// tracks any more: turning tracking off leaves the client's keys in the table, as in
/// Redis, until they are invalidated or flushed.
pub fn invalidate_all() {
    with(|tb| {
        tb.keys.clear();
        tb.items = 0;
        if tb.trackers.is_empty() {
            return;
        }
        let mut ids: Vec<&u64> = tb.trackers.keys().collect();
        ids.sort();
        let notes: Vec<Note> = ids
            .into_iter()
            .map(|id| note(&tb.trackers[id], *id, None))
            .collect();
        PENDING.with_borrow_mut(|p| p.extend(notes));
    });
}

/// The invalidations noted on this core since the last call, in order; the BCAST
/// notes for one client and prefix merged into the first (Redis sends one message
/// per prefix with the keys a whole event loop iteration changed under it).
#[inline]
pub fn take() -> Vec<Note> {
    PENDING.with_borrow_mut(|p| {
        if p.is_empty() {
            Vec::new()
        } else if HOLD_BROADCASTS.get() {
            let (held, now) = std::mem::take(p)
                .into_iter()
                .partition(|n| n.prefix.is_some());
            *p = held;
            now
        } else {
            merge_broadcasts(std::mem::take(p))
        }
    })
}

/// Keep BCAST notes pending while `on` (a transaction's commands run on this core's
/// shard), so that its writes under one prefix go as one message after it, as
/// Redis's go at the end of its event loop turn. Other notes leave as they come.
pub fn hold_broadcasts(on: bool) {
    HOLD_BROADCASTS.set(on);
}

fn merge_broadcasts(notes: Vec<Note>) -> Vec<Note> {
    if notes.iter().filter(|n| n.prefix.is_some()).count() < 2 {
        return notes;
    }
    let mut out: Vec<Note> = Vec::with_capacity(notes.len());
    let mut first: HashMap<(u64, Bytes), usize> = HashMap::new();
    for n in notes {
        let Some(prefix) = n.prefix.clone() else {
            out.push(n);
            continue;
        };
        match first.get(&(n.client, prefix.clone())) {
            Some(&at) => {
                if let (Some(into), Some(keys)) = (out[at].keys.as_mut(), n.keys) {
                    into.extend(keys);
                    into.sort();
                    into.dedup();
                }
            }
            None => {
                first.insert((n.client, prefix), out.len());
                out.push(n);
            }
        }
    }
    out
}

/// INFO: (tracking_clients, tracking_total_keys, tracking_total_items,
/// tracking_total_prefixes).
pub fn stats() -> (usize, usize, usize, usize) {
    let clients = CLIENTS.load(Ordering::Relaxed);
    let tb = table();
    match tb.as_ref() {
        Some(t) => (clients, t.keys.len(), t.items, t.prefixes.len()),
        None => (clients, 0, 0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    // One test: the table is process-wide.
    #[test]
    fn reads_are_remembered_and_writes_invalidate_once() {
        let t = Tracker {
            core: 1,
            ..Tracker::default()
        };
        enable(7, t.clone(), &[]);
        enable(
            8,
            Tracker {
                bcast: true,
                noloop: true,
                ..t
            },
            &[b("a:")],
        );
        remember(7, [b("a:1"), b("x")].iter());
        assert_eq!(stats(), (2, 2, 2, 1));
        invalidate(&[b("a:1")], 8);
        let notes = take();
        // Client 8 wrote it (NOLOOP); client 7 read it.
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].client, 7);
        assert_eq!(notes[0].keys, Some(vec![b("a:1")]));
        invalidate(&[b("a:1"), b("a:2")], 9);
        let notes = take();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!(notes[0].keys, Some(vec![b("a:1"), b("a:2")]));
        // Several writes before a take: one message per prefix.
        invalidate(&[b("a:3")], 9);
        invalidate(&[b("b:1")], 9);
        invalidate(&[b("a:1")], 9);
        let notes = take();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!(notes[0].keys, Some(vec![b("a:1"), b("a:3")]));
        invalidate_all();
        assert_eq!(take().len(), 2);
        assert_eq!(stats(), (2, 0, 0, 1));
        disable(7);
        disable(8);
        assert_eq!(stats(), (0, 0, 0, 0));
        assert!(!active());
    }
}
