//! The shard lock that multi-shard operations hold (see `runtime::transaction`).
//!
//! While a transaction holds a shard, work from anyone else that reaches the shard is
//! parked in `deferred` and runs, in arrival order, when the holder releases it; other
//! transactions wait in `waiting`, FIFO, and the next one is granted the shard right
//! after the deferred work has run. Plain data: the runtime drives it.

use super::Shard;
use std::collections::VecDeque;

pub type Deferred = Box<dyn FnOnce(&mut Shard) + Send>;
/// What a transaction runs on a shard the moment the shard is granted to it: at
/// least the grant notice, often the transaction's first step on that shard too.
pub type OnGrant = Box<dyn FnOnce(&mut Shard) + Send>;

#[derive(Default)]
pub struct ShardLock {
    /// Transaction id holding this shard.
    pub holder: Option<u64>,
    /// Transactions waiting for the shard, with what to run when it is theirs.
    pub waiting: VecDeque<(u64, OnGrant)>,
    /// Work from others that arrived while the shard was held.
    pub deferred: VecDeque<Deferred>,
}

impl ShardLock {
    /// True if work not belonging to transaction `tx` must wait.
    pub fn blocks(&self, tx: Option<u64>) -> bool {
        self.holder.is_some() && self.holder != tx
    }
}

impl Shard {
    /// Grant the shard to `tx` and run `on_grant` now if the shard is free, or queue
    /// both for when it is released.
    pub fn lock_for(&mut self, tx: u64, on_grant: OnGrant) {
        if self.lock.holder.is_none() {
            self.lock.holder = Some(tx);
            on_grant(self);
        } else {
            self.lock.waiting.push_back((tx, on_grant));
        }
    }

    /// Release the shard held by `tx`: run what was deferred, then grant the next waiter.
    pub fn unlock_for(&mut self, tx: u64) {
        if self.lock.holder != Some(tx) {
            // Not granted yet: withdraw the request so it is never granted to no one.
            self.lock.waiting.retain(|(id, _)| *id != tx);
            return;
        }
        self.lock.holder = None;
        while let Some(job) = self.lock.deferred.pop_front() {
            job(self);
            if self.lock.holder.is_some() {
                // A deferred job cannot take the lock, but stay safe if one ever does.
                return;
            }
        }
        if let Some((next, on_grant)) = self.lock.waiting.pop_front() {
            self.lock.holder = Some(next);
            on_grant(self);
        }
    }
}
