//! Clients blocked on keys of this shard (BLPOP, BLMOVE, BZPOPMIN ...): who waits on
//! which key, in arrival order. Plain data; `runtime::blocking` drives it.
//!
//! The one idea to hold: a blocked command is served by running its own handler again,
//! on this shard, right after a command made one of its keys ready, so the pop and its
//! reply happen atomically here, exactly as the handler would have done when the client
//! first asked. A client may wait on keys of several shards at once; a shared claim
//! ([`Ticket`]) makes sure at most one of them, or the timeout, or CLIENT UNBLOCK, ever
//! completes it.

use crate::protocol::Reply;
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

/// Claim states of a [`Ticket`].
pub const FREE: u8 = 0;
/// A shard is running the command for this client right now.
pub const TRYING: u8 = 1;
/// Completed: served, timed out, unblocked or disconnected.
pub const DONE: u8 = 2;

/// What the blocked connection is woken with.
#[derive(Debug)]
pub enum Wake {
    /// The command ran on a shard and this is its reply.
    Served(Reply),
    /// One of the keys is ready but the command spans shards (BLMOVE between shards):
    /// run it again through the dispatcher.
    Retry,
    /// CLIENT UNBLOCK: answer this.
    Unblocked(Reply),
}

/// The blocked client's claim and wake-up channel, shared by every shard it waits on.
#[derive(Clone, Debug)]
pub struct Ticket {
    pub claim: Arc<AtomicU8>,
    pub wake: flume::Sender<Wake>,
}

impl Ticket {
    /// Try to take the claim from FREE to `to`.
    pub fn take(&self, to: u8) -> Result<(), u8> {
        self.claim
            .compare_exchange(FREE, to, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
    }
    pub fn set(&self, v: u8) {
        self.claim.store(v, Ordering::Release);
    }
}

/// One blocked command, as registered on one shard.
pub struct Waiter {
    pub db: usize,
    /// The keys it waits on that live on this shard.
    pub keys: Vec<Bytes>,
    /// The command to run again when a key is ready: the runtime's table entry, opaque
    /// here (the shard stores waiters, `runtime::blocking` runs them).
    pub cmd: &'static (dyn std::any::Any + Send + Sync),
    pub argv: Vec<Bytes>,
    pub no_touch: bool,
    pub ticket: Ticket,
    /// Wake the client to retry instead of running the command here.
    pub retry_only: bool,
    /// Who asked, for the slow log entry written when it is served here.
    pub caller: crate::shard::slowlog::Caller,
}

#[derive(Default)]
pub struct BlockingRegistry {
    /// By waiter id (unique per blocking attempt).
    pub waiters: HashMap<u64, Waiter>,
    /// (db, key) -> waiter ids in arrival order.
    pub by_key: HashMap<(usize, Bytes), VecDeque<u64>>,
    /// Keys to look at again later: their first waiter was being tried by another
    /// shard, or it just registered. The flag says whether something changed the key
    /// (false for a registration's own look: see `runtime::blocking::serve_key`).
    pub retry: Vec<(usize, Bytes, bool)>,
    /// Set while serving, or while a transaction runs its commands: ready keys wait.
    pub busy: bool,
}

impl BlockingRegistry {
    pub fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }
    pub fn register(&mut self, id: u64, w: Waiter) {
        for k in &w.keys {
            self.by_key
                .entry((w.db, k.clone()))
                .or_default()
                .push_back(id);
        }
        self.waiters.insert(id, w);
    }
    /// Forget waiter `id` (served, timed out, gone); true if it was here.
    pub fn remove(&mut self, id: u64) -> bool {
        let Some(w) = self.waiters.remove(&id) else {
            return false;
        };
        for k in w.keys {
            let slot = (w.db, k);
            if let Some(q) = self.by_key.get_mut(&slot) {
                q.retain(|&x| x != id);
                if q.is_empty() {
                    self.by_key.remove(&slot);
                }
            }
        }
        true
    }
    /// The first waiter on (db, key).
    pub fn first_on(&self, db: usize, key: &Bytes) -> Option<u64> {
        self.by_key
            .get(&(db, key.clone()))
            .and_then(|q| q.front().copied())
    }
    /// Number of distinct keys waited on (INFO's `total_blocking_keys`).
    pub fn keys(&self) -> usize {
        self.by_key.len()
    }
    /// Every key waited on in the databases `dbs` says (SWAPDB or a flush changed them).
    pub fn keys_in(&self, dbs: impl Fn(usize) -> bool) -> Vec<(usize, Bytes)> {
        self.by_key
            .keys()
            .filter(|(db, _)| dbs(*db))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_claims_once() {
        let (tx, _rx) = flume::bounded(1);
        let t = Ticket {
            claim: Arc::new(AtomicU8::new(FREE)),
            wake: tx,
        };
        let other = t.clone();
        assert!(t.take(TRYING).is_ok());
        assert_eq!(other.take(DONE), Err(TRYING));
        t.set(FREE);
        assert!(other.take(DONE).is_ok());
        assert_eq!(t.take(TRYING), Err(DONE));
    }
}
