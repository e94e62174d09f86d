//! Watched keys (WATCH), kept on the shard that owns them.
//!
//! A watched key has a version that every modification bumps; a client remembers the
//! version (and whether the key existed) when it WATCHed, and EXEC, running with every
//! involved shard held, aborts if any version moved or any key appeared or vanished
//! (the latter catches expiry, which deletes without a command). Only watched keys are
//! tracked, and the registry is empty unless someone watches, so writes pay one
//! `is_empty` check.

use crate::storage::CompactBytes;
use std::collections::HashMap;

#[derive(Debug, Default)]
struct Watched {
    version: u64,
    watchers: u32,
}

#[derive(Debug, Default)]
pub struct WatchRegistry {
    keys: HashMap<(usize, CompactBytes), Watched>,
}

impl WatchRegistry {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Register one more watcher of `key` in `db`; returns the key's current version.
    pub fn watch(&mut self, db: usize, key: &[u8]) -> u64 {
        let w = self.keys.entry((db, CompactBytes::new(key))).or_default();
        w.watchers += 1;
        w.version
    }

    /// Drop one watcher of `key` in `db`.
    pub fn unwatch(&mut self, db: usize, key: &[u8]) {
        let k = (db, CompactBytes::new(key));
        if let Some(w) = self.keys.get_mut(&k) {
            w.watchers = w.watchers.saturating_sub(1);
            if w.watchers == 0 {
                self.keys.remove(&k);
            }
        }
    }

    /// True if `key` is watched in `db` (or in any db when `db` is `None`).
    pub fn is_watched(&self, db: Option<usize>, key: &[u8]) -> bool {
        match db {
            Some(db) => self.keys.contains_key(&(db, CompactBytes::new(key))),
            None => self.keys.keys().any(|(_, k)| k.as_slice() == key),
        }
    }

    pub fn version(&self, db: usize, key: &[u8]) -> u64 {
        self.keys
            .get(&(db, CompactBytes::new(key)))
            .map_or(0, |w| w.version)
    }

    /// A modification of `key` in `db` (Redis's `touchWatchedKey`).
    pub fn touch(&mut self, db: usize, key: &[u8]) {
        if let Some(w) = self.keys.get_mut(&(db, CompactBytes::new(key))) {
            w.version += 1;
        }
    }

    /// Every watched key of `db` for which `pred(key)` holds (SWAPDB, FLUSHDB).
    pub fn touch_db_where(&mut self, db: usize, mut pred: impl FnMut(&[u8]) -> bool) {
        for ((d, k), w) in self.keys.iter_mut() {
            if *d == db && pred(k) {
                w.version += 1;
            }
        }
    }
}
