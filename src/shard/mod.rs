//! A shard: everything one core owns. Its databases, its statistics and slow log, its
//! active-expiry state, WATCH versions, blocked clients, the propagation hook.
//!
//! The one idea to hold: a `Shard` is only ever touched by its own thread. Other cores
//! reach it by sending it work (see `runtime::hop`), never by sharing a reference. So
//! nothing here needs a lock, and a command that runs with `&mut Shard` sees the shard
//! alone for its whole duration — the basis of per-command atomicity.

pub mod blocking;
pub mod evict;
pub mod expire;
pub mod intents;
pub mod latency;
pub mod propagation;
pub mod slowlog;
pub mod stats;
pub mod watch;

use crate::config::{Config, ConfigHandle};
use crate::storage::Db;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use std::sync::Arc;

pub use stats::ShardStats;

pub struct Shard {
    pub id: usize,
    pub nshards: usize,
    pub dbs: Vec<Db>,
    pub stats: ShardStats,
    pub rng: SmallRng,
    /// This shard's cached copy of the configuration (refreshed when it changes).
    pub config: Arc<Config>,
    pub config_handle: ConfigHandle,
    pub expire: expire::CycleState,
    /// Eviction's candidate pool and state (`maxmemory`).
    pub evict: evict::State,
    pub slowlog: slowlog::Slowlog,
    /// Latency monitor events measured on this shard (LATENCY LATEST & co).
    pub latency: latency::LatencyMonitor,
    /// What multi-shard transactions claim here, and the work waiting for them (see
    /// `runtime::transaction`).
    pub intents: intents::Intents,
    /// Keys WATCHed by clients, with their versions.
    pub watches: watch::WatchRegistry,
    /// Clients blocked on this shard's keys.
    pub blocking: blocking::BlockingRegistry,
    /// The propagation hook: where the effects of its commands leave (the AOF...).
    pub propagation: propagation::Propagation,
    /// The dirty counter as the cron last published it (for the save points).
    pub published_dirty: u64,
    /// The snapshot running on this shard (BGSAVE, SAVE, an AOF rewrite's base).
    /// Opaque here, as the databases' `BeforeWrite` hooks: persistence owns the type
    /// and reaches it through `persistence::snapshot::running`; the shard and the
    /// runtime only ask whether there is one.
    pub snapshot: Option<Box<dyn std::any::Any>>,
    /// Epoch of the latest snapshot started here (entries stamped with it are done).
    pub snapshot_epoch: u32,
    /// The save driver waiting for a snapshot to start (woken when one does, so an idle
    /// shard has no timer for it).
    pub snapshot_waiter: Option<std::task::Waker>,
}

impl Shard {
    pub fn new(id: usize, nshards: usize, config_handle: ConfigHandle) -> Shard {
        let config = config_handle.current();
        latency::THRESHOLD_MS.store(
            config.latency_monitor_threshold,
            std::sync::atomic::Ordering::Relaxed,
        );
        crate::notify::set_flags(config.notify_keyspace_events);
        crate::tracking::set_max_keys(config.tracking_table_max_keys);
        crate::lazyfree::set_switches(config.lazyfree);
        configure_access(&config);
        evict::register(nshards);
        let dbs = (0..config.databases.max(1))
            .map(|id| Db {
                id,
                slot_keys: (id == 0 && crate::cluster::enabled()).then(Default::default),
                ..Db::default()
            })
            .collect();
        Shard {
            id,
            nshards,
            dbs,
            stats: ShardStats::new(),
            rng: SmallRng::from_entropy(),
            config,
            config_handle,
            expire: expire::CycleState::default(),
            evict: evict::State::default(),
            slowlog: slowlog::Slowlog::default(),
            latency: latency::LatencyMonitor::new(),
            intents: Default::default(),
            watches: watch::WatchRegistry::default(),
            blocking: Default::default(),
            propagation: Default::default(),
            published_dirty: 0,
            snapshot: None,
            snapshot_epoch: 0,
            snapshot_waiter: None,
        }
    }

    /// Attach a consumer of this shard's effects; keys deleted by expiry are noted
    /// from now on, to be propagated as DELs.
    pub fn attach(&mut self, c: Box<dyn propagation::Consumer>) {
        self.propagation.attach(c);
        for d in self.dbs.iter_mut() {
            d.expired_log.get_or_insert_with(Vec::new);
        }
    }
    /// Detach the consumers of type `T`.
    pub fn detach<T: propagation::Consumer>(&mut self) {
        self.propagation.detach::<T>();
        if !self.propagation.active() {
            for d in self.dbs.iter_mut() {
                d.expired_log = None;
            }
        }
    }
    /// Propagate the keys expired or evicted since the last record as `DEL`s, or
    /// `UNLINK`s for those freed lazily (nothing to do when no consumer listens: no
    /// database notes them then).
    pub fn propagate_expired(&mut self) {
        if !self.propagation.active() {
            return;
        }
        for dbi in 0..self.dbs.len() {
            let keys = match &mut self.dbs[dbi].expired_log {
                Some(v) if !v.is_empty() => std::mem::take(v),
                _ => continue,
            };
            let effects = keys
                .into_iter()
                .map(|(k, lazy)| {
                    let del = bytes::Bytes::from_static(if lazy { b"UNLINK" } else { b"DEL" });
                    propagation::Effect::new(dbi, vec![del, k])
                })
                .collect();
            self.propagation.emit(self.id, effects);
        }
    }

    /// Refresh the cached configuration if CONFIG SET changed it.
    pub fn refresh_config(&mut self) {
        if self.config_handle.generation() != self.config.generation {
            self.config = self.config_handle.current();
            crate::notify::set_flags(self.config.notify_keyspace_events);
            crate::tracking::set_max_keys(self.config.tracking_table_max_keys);
            crate::lazyfree::set_switches(self.config.lazyfree);
            crate::log::set_level(&self.config.loglevel);
            configure_access(&self.config);
            latency::THRESHOLD_MS.store(
                self.config.latency_monitor_threshold,
                std::sync::atomic::Ordering::Relaxed,
            );
        }
    }

    pub fn db(&mut self, idx: usize) -> &mut Db {
        &mut self.dbs[idx]
    }

    pub fn total_keys(&self) -> usize {
        self.dbs.iter().map(|d| d.len()).sum()
    }
    /// Modifications made so far over all databases (see `Db::dirty`).
    pub fn dirty(&self) -> u64 {
        self.dbs.iter().map(|d| d.dirty).sum()
    }
    pub fn expired_keys(&self) -> u64 {
        self.dbs.iter().map(|d| d.expired).sum()
    }
}

/// How entries' access stamps are kept (LRU or LFU), from the eviction settings.
fn configure_access(cfg: &Config) {
    let e = &cfg.eviction;
    crate::storage::access::configure(e.policy.lfu(), e.lfu_log_factor, e.lfu_decay_time);
}
