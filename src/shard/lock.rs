//! The shard lock that multi-shard operations hold (see `runtime::transaction`).
//!
//! While a transaction holds a shard, work from anyone else that reaches the shard is
//! parked in `deferred` and runs, in arrival order, when the holder releases it; other
//! transactions wait in `waiting`, FIFO, and the next one is granted the shard right
//! after the deferred work has run. Plain data: the runtime drives it.

use super::Shard;
use std::collections::VecDeque;

pub type Deferred = Box<dyn FnOnce(&mut Shard) + Send>;

#[derive(Default)]
pub struct ShardLock {
    /// Transaction id holding this shard.
    pub holder: Option<u64>,
    /// Transactions waiting for the shard, with the channel that grants it to them.
    pub waiting: VecDeque<(u64, flume::Sender<()>)>,
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
    /// Grant the shard to `tx` now, or queue the grant (sent on `grant` later).
    pub fn lock_for(&mut self, tx: u64, grant: flume::Sender<()>) {
        if self.lock.holder.is_none() {
            self.lock.holder = Some(tx);
            let _ = grant.send(());
        } else {
            self.lock.waiting.push_back((tx, grant));
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
        if let Some((next, grant)) = self.lock.waiting.pop_front() {
            self.lock.holder = Some(next);
            let _ = grant.send(());
        }
    }
}
