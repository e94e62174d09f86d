//! One logical database (SELECT 0..15) on one shard: the key dict plus the expires dict.
//!
//! As in Redis, a key with a TTL appears in both dicts; the expires dict holds the
//! absolute deadline in unix milliseconds and is what the active expire cycle samples.
//! Every lookup goes through [`Db::lookup`], which deletes an expired key on the spot
//! (lazy expiry), so no command can ever see a dead key. While expiry is held
//! (`expiry_held_until`, CLIENT PAUSE) the key is reported missing but left in place.

use super::{CompactBytes, Dict, Value};
use std::sync::atomic::{AtomicU32, Ordering};

#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub value: Value,
    /// The access stamp: the last access in seconds of the LRU clock (OBJECT
    /// IDLETIME), or under an LFU policy the frequency counter (see `access`).
    pub lru: u32,
    /// The epoch of the snapshot that has already written this entry, or that must
    /// skip it because it was created after the start (see `persistence::snapshot`).
    /// Fits in what was padding.
    pub snap: u32,
}

impl Entry {
    pub fn new(value: Value) -> Entry {
        Entry {
            value,
            lru: super::access::initial(),
            snap: 0,
        }
    }
}

#[derive(Default)]
pub struct Db {
    /// Its index (SELECT n), for the keyspace events it raises (`notify`).
    pub id: usize,
    pub keys: Dict<CompactBytes, Entry>,
    pub expires: Dict<CompactBytes, u64>,
    /// Keys deleted because their TTL passed (lazily or by the active cycle).
    pub expired: u64,
    /// Modifications made by commands (Redis's `server.dirty`): every mutating method
    /// counts one, and so does `Ctx::modify` for in-place changes. WATCH uses it to
    /// tell a write that changed something from one that did not (SET NX on a key
    /// that exists).
    pub dirty: u64,
    /// Set while some client of this shard is blocked on a key (BLPOP...): lists and
    /// sorted sets stored under a key are then noted in `ready`, as Redis's
    /// `signalKeyAsReady` in `dbAdd`, for the blocked clients to be served.
    pub signal_ready: bool,
    pub ready: Vec<bytes::Bytes>,
    /// Set while the shard propagates its effects (AOF...): keys deleted because their
    /// TTL passed or because they were evicted are noted here, to be propagated as
    /// DELs before the next record (as Redis propagates expirations and evictions).
    pub expired_log: Option<Vec<(bytes::Bytes, bool)>>,
    /// While the clock is at or before this (unix ms), lazy expiry reports an expired
    /// key missing without deleting it: CLIENT PAUSE keeps the data set constant, as
    /// Redis's `expireIfNeeded` does while clients are paused. 0: never. Set by the
    /// shard for all its databases (`Shard::hold_expiry`).
    pub expiry_held_until: u64,
    /// This database's share of a running snapshot: every change below first lets it
    /// write the entry it is about to change (`persistence::snapshot`).
    pub snapshot: Option<Box<dyn BeforeWrite>>,
    /// Cluster mode, db 0: the keys of each hash slot, kept by every method below that
    /// adds or removes a key.
    pub slot_keys: Option<SlotKeys>,
}

/// The keys of each hash slot (Redis's `slots_to_keys`), so that COUNTKEYSINSLOT and
/// GETKEYSINSLOT cost what they return and not a scan of the shard: a slot migration
/// asks for every slot it moves. Only slots with keys have a set; a key costs one more
/// copy of its name (none allocated up to 22 bytes) and a set entry.
#[derive(Default)]
pub struct SlotKeys(std::collections::HashMap<u16, std::collections::HashSet<CompactBytes>>);

impl SlotKeys {
    fn add(&mut self, key: &[u8]) {
        let slot = crate::runtime::slots::key_slot(key);
        self.0
            .entry(slot)
            .or_default()
            .insert(CompactBytes::new(key));
    }

    fn remove(&mut self, key: &[u8]) {
        let slot = crate::runtime::slots::key_slot(key);
        if let Some(set) = self.0.get_mut(&slot) {
            set.remove(key);
            if set.is_empty() {
                self.0.remove(&slot);
            }
        }
    }

    pub fn count(&self, slot: u16) -> usize {
        self.0.get(&slot).map_or(0, |s| s.len())
    }

    /// Up to `n` keys of `slot`, in no particular order.
    pub fn keys(&self, slot: u16, n: usize) -> impl Iterator<Item = &[u8]> {
        self.0
            .get(&slot)
            .into_iter()
            .flat_map(|s| s.iter())
            .take(n)
            .map(|k| k.as_slice())
    }
}

/// What must see an entry before it changes: a running snapshot writes it first
/// (entry-level copy-on-write, `persistence::snapshot`). Defined here so the keyspace
/// knows nothing of persistence.
pub trait BeforeWrite: std::any::Any {
    /// Called before `key` is changed, replaced or deleted. Returns the stamp an
    /// entry created under `key` now must carry (0: none needed).
    fn before_write(
        &mut self,
        keys: &mut Dict<CompactBytes, Entry>,
        expires: &Dict<CompactBytes, u64>,
        key: &[u8],
    ) -> u32;
    /// True while it still needs the contents a FLUSHDB is about to drop.
    fn wants_contents(&self) -> bool;
    /// FLUSHDB: keep the old contents to finish from.
    fn detach(&mut self, keys: Dict<CompactBytes, Entry>, expires: Dict<CompactBytes, u64>);
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any;
}

/// The LRU clock in seconds, cached like Redis's `server.lruclock`: the shards' cron
/// refreshes it, so stamping an access costs a relaxed load instead of a clock read.
static LRU_CLOCK: AtomicU32 = AtomicU32::new(0);

/// Seconds clock used for LRU stamps (wraps after 136 years).
pub fn lru_clock() -> u32 {
    match LRU_CLOCK.load(Ordering::Relaxed) {
        0 => refresh_lru_clock(),
        c => c,
    }
}

/// Re-read the wall clock into the cached LRU clock (called from each shard's cron).
pub fn refresh_lru_clock() -> u32 {
    let c = (crate::clock::now_ms() / 1000) as u32;
    LRU_CLOCK.store(c, Ordering::Relaxed);
    c
}

thread_local! {
    /// Set while a replica applies its master's write: no key has expired.
    static TTL_IGNORED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run `f` with every key alive whatever its TTL (a replica applying its master's
/// write: the master sends a DEL when a key expires there).
pub fn ignoring_ttl<R>(f: impl FnOnce() -> R) -> R {
    TTL_IGNORED.set(true);
    let r = f();
    TTL_IGNORED.set(false);
    r
}

impl Db {
    pub fn len(&self) -> usize {
        self.keys.len()
    }
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Deadline of `key` in unix ms, if it has one (does not check liveness).
    pub fn expire_of(&self, key: &[u8]) -> Option<u64> {
        if self.expires.is_empty() {
            return None;
        }
        self.expires.get(key).copied()
    }

    /// Delete `key` if its deadline has passed (unless expiry is held); true if it
    /// has passed, the key being dead to the caller either way.
    pub fn expire_if_needed(&mut self, key: &[u8], now_ms: u64) -> bool {
        match self.expire_of(key) {
            Some(at) if at <= now_ms && !TTL_IGNORED.get() => {
                if now_ms > self.expiry_held_until {
                    self.delete_expired(key);
                }
                true
            }
            _ => false,
        }
    }

    /// `key`, which held `value`, has left the keyspace: a reader blocked on a stream's
    /// group must learn that the stream is gone.
    fn signal_gone(&mut self, key: &[u8], value: &Value) {
        if self.signal_ready && matches!(value, Value::Stream(_)) {
            self.ready.push(bytes::Bytes::copy_from_slice(key));
        }
    }

    /// Delete `key`, whose deadline has passed (lazy or active expiry).
    pub fn delete_expired(&mut self, key: &[u8]) {
        let lazy = crate::lazyfree::lazy_expire();
        if let Some((_, e)) = self.keys.remove(key) {
            if let Some(index) = &mut self.slot_keys {
                index.remove(key);
            }
            self.signal_gone(key, &e.value);
            crate::lazyfree::free_if(lazy, e.value);
        }
        self.expires.remove(key);
        self.expired += 1;
        crate::notify::raise(crate::notify::EXPIRED, "expired", self.id, key);
        if crate::tracking::active() {
            crate::tracking::invalidate(&[bytes::Bytes::copy_from_slice(key)], 0);
        }
        if let Some(log) = &mut self.expired_log {
            log.push((bytes::Bytes::copy_from_slice(key), lazy));
        }
    }

    /// The live entry under `key`, expiring it first if due.
    pub fn lookup(&mut self, key: &[u8], now_ms: u64) -> Option<&mut Entry> {
        if self.expire_if_needed(key, now_ms) {
            return None;
        }
        self.before_write(key);
        self.keys.get_mut(key)
    }

    /// Let a running snapshot write `key`'s entry before it may change (every path to
    /// a mutable entry goes through here). Returns the stamp a new entry must carry.
    #[inline]
    fn before_write(&mut self, key: &[u8]) -> u32 {
        match &mut self.snapshot {
            None => 0,
            Some(s) => s.before_write(&mut self.keys, &self.expires, key),
        }
    }

    /// [`Db::lookup`] for an entry about to be changed in place: counts a modification.
    pub fn lookup_modify(&mut self, key: &[u8], now_ms: u64) -> Option<&mut Entry> {
        if self.expire_if_needed(key, now_ms) {
            return None;
        }
        self.before_write(key);
        let dirty = &mut self.dirty;
        self.keys.get_mut(key).inspect(|_| *dirty += 1)
    }

    /// True if `key` exists and its deadline has not passed; nothing changes (Redis's
    /// lookup with LOOKUP_NOTOUCH | LOOKUP_NOEXPIRE).
    pub fn alive(&self, key: &[u8], now_ms: u64) -> bool {
        self.keys.contains_key(key)
            && !self
                .expire_of(key)
                .is_some_and(|at| at <= now_ms && !TTL_IGNORED.get())
    }

    /// Up to `n` keys of hash slot `slot` (live or not yet expired lazily): from the
    /// slot index in cluster mode, else by a scan.
    pub fn keys_in_slot(&self, slot: u16, n: usize) -> Vec<bytes::Bytes> {
        match &self.slot_keys {
            Some(index) => index
                .keys(slot, n)
                .map(bytes::Bytes::copy_from_slice)
                .collect(),
            None => self
                .keys
                .iter()
                .filter(|(k, _)| crate::runtime::slots::key_slot(k) == slot)
                .take(n)
                .map(|(k, _)| bytes::Bytes::copy_from_slice(k))
                .collect(),
        }
    }

    /// How many keys hash slot `slot` holds (see [`Db::keys_in_slot`]).
    pub fn count_in_slot(&self, slot: u16) -> usize {
        match &self.slot_keys {
            Some(index) => index.count(slot),
            None => self.keys_in_slot(slot, usize::MAX).len(),
        }
    }

    /// True if `key` exists and is live (does not touch LRU).
    pub fn contains(&mut self, key: &[u8], now_ms: u64) -> bool {
        !self.expire_if_needed(key, now_ms) && self.keys.contains_key(key)
    }

    /// Store `value` under `key`. The old TTL is dropped unless `keep_ttl`.
    pub fn set(&mut self, key: &[u8], value: Value, keep_ttl: bool) {
        self.dirty += 1;
        if self.signal_ready
            && (matches!(value, Value::List(_) | Value::ZSet(_))
                || matches!(self.keys.get(key), Some(e) if matches!(e.value, Value::Stream(_))))
        {
            // A new list or sorted set may serve poppers; a stream overwritten by
            // another value ends its group readers' wait.
            self.ready.push(bytes::Bytes::copy_from_slice(key));
        }
        let entry = Entry {
            value,
            lru: super::access::initial(),
            snap: self.before_write(key),
        };
        match self.keys.get_mut(key) {
            Some(e) => {
                let old = std::mem::replace(e, entry).value;
                crate::lazyfree::free_if(crate::lazyfree::lazy_server_del(), old);
            }
            None => {
                self.keys.insert(CompactBytes::new(key), entry);
                if let Some(index) = &mut self.slot_keys {
                    index.add(key);
                }
                crate::notify::raise(crate::notify::NEW, "new", self.id, key);
            }
        }
        if !keep_ttl && !self.expires.is_empty() {
            self.expires.remove(key);
        }
    }

    /// Remove `key` and its TTL; returns the entry if it was present.
    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        self.before_write(key);
        let e = self.keys.remove(key).map(|(_, e)| e);
        if let Some(entry) = &e {
            self.dirty += 1;
            self.signal_gone(key, &entry.value);
            if let Some(index) = &mut self.slot_keys {
                index.remove(key);
            }
            if !self.expires.is_empty() {
                self.expires.remove(key);
            }
        }
        e
    }

    /// Remove `key` as a side effect of a command (an emptied collection, a *STORE's
    /// old destination): the value freed under `lazyfree-lazy-server-del` (Redis's
    /// `dbDelete`); true if it was there.
    pub fn delete(&mut self, key: &[u8]) -> bool {
        self.delete_freeing(key, crate::lazyfree::lazy_server_del())
    }

    /// [`Db::remove`], its value freed on the lazy-free thread if `lazy` (and it is
    /// big), else at once; true if it was there.
    pub fn delete_freeing(&mut self, key: &[u8], lazy: bool) -> bool {
        match self.remove(key) {
            Some(e) => {
                crate::lazyfree::free_if(lazy, e.value);
                true
            }
            None => false,
        }
    }

    /// Run `f` without counting its changes: a step a command does not count on its own
    /// (Redis's `dbDelete` / `dbAdd` inside a command that counts what it did as a
    /// whole, such as RENAME's removal, or an emptied collection's deletion).
    pub fn uncounted<R>(&mut self, f: impl FnOnce(&mut Db) -> R) -> R {
        let dirty = self.dirty;
        let r = f(self);
        self.dirty = dirty;
        r
    }

    /// Set an absolute deadline; the key must exist. Not counted as a change by
    /// itself: a command that only sets a deadline (EXPIRE, GETEX) counts one, one
    /// that stores a value with its deadline (SET EX, RESTORE, COPY) counts the store,
    /// as Redis's `server.dirty`.
    pub fn set_expire(&mut self, key: &[u8], at_ms: u64) {
        self.before_write(key);
        match self.expires.get_mut(key) {
            Some(d) => *d = at_ms,
            None => {
                self.expires.insert(CompactBytes::new(key), at_ms);
                crate::runtime::nudge_idle_cron();
            }
        }
    }

    /// Remove the TTL; true if there was one.
    pub fn persist(&mut self, key: &[u8]) -> bool {
        self.before_write(key);
        let had = self.expires.remove(key).is_some();
        self.dirty += had as u64;
        had
    }

    pub fn clear(&mut self) {
        drop(self.take());
    }

    /// Empty the database, handing its old tables to the caller (to free them
    /// elsewhere: FLUSHDB ASYNC), unless a running snapshot still needs them.
    pub fn take(&mut self) -> Option<(Dict<CompactBytes, Entry>, Dict<CompactBytes, u64>)> {
        self.dirty += !self.keys.is_empty() as u64;
        if let Some(index) = &mut self.slot_keys {
            *index = SlotKeys::default();
        }
        let tables = (
            std::mem::take(&mut self.keys),
            std::mem::take(&mut self.expires),
        );
        match &mut self.snapshot {
            Some(s) if s.wants_contents() => {
                s.detach(tables.0, tables.1);
                None
            }
            _ => Some(tables),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slot index follows every way a key comes and goes.
    #[test]
    fn slot_index_follows_adds_and_removes() {
        let mut d = Db {
            slot_keys: Some(SlotKeys::default()),
            ..Db::default()
        };
        let slot = crate::runtime::slots::key_slot(b"{t}a");
        let v = || Value::Str(crate::storage::StrValue::from_bytes(b"v"));
        for k in [
            "{t}a",
            "{t}b",
            "{t}c",
            "a-very-long-key-name-over-22-bytes{t}",
        ] {
            d.set(k.as_bytes(), v(), false);
        }
        d.set(b"{t}a", v(), false);
        assert_eq!(d.count_in_slot(slot), 4);
        d.remove(b"{t}b");
        d.set_expire(b"{t}c", 1);
        assert!(!d.contains(b"{t}c", 10));
        assert_eq!(d.count_in_slot(slot), 2);
        let mut keys = d.keys_in_slot(slot, 10);
        keys.sort();
        assert_eq!(keys[0].as_ref(), b"a-very-long-key-name-over-22-bytes{t}");
        assert_eq!(keys[1].as_ref(), b"{t}a");
        assert_eq!(d.keys_in_slot(slot, 1).len(), 1);
        d.clear();
        assert_eq!(d.count_in_slot(slot), 0);
        // Without an index, a scan answers the same.
        let mut plain = Db::default();
        plain.set(b"{t}a", v(), false);
        assert_eq!(plain.count_in_slot(slot), 1);
    }
}
