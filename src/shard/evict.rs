//! Eviction: keeping the data set under `maxmemory` with the `maxmemory-policy`
//! (Redis's `evict.c`), each shard evicting its own keys.
//!
//! # The plan, and why
//! - **One figure, the process's.** `used_memory` is every thread's allocations
//!   (`crate::memory`), what Redis compares with `maxmemory`. A shard's own share
//!   cannot be measured (a value built by one core's connection is freed by another
//!   core), so there are no per-shard budgets: every shard compares the one figure
//!   with the one limit, and the shard that is about to run a command evicts from its
//!   own keys until the process is under the limit again.
//! - **When.** Before a client's command runs on its shard (`runtime::call::call`,
//!   Redis's `performEvictions` in `processCommand`), and in every shard's cron, so a
//!   shard that receives no writes gives up its keys too while the process is over.
//!   One attempt stops after the time `maxmemory-eviction-tenacity` allows (500 µs at
//!   the default 10, as Redis); the next command or cron tick goes on.
//! - **Victims**, as Redis chooses them: the random policies take a random key of the
//!   next non-empty db (all keys, or those with a TTL); LRU, LFU and TTL sample
//!   `maxmemory-samples` keys of each db into a pool of the 16 best candidates kept
//!   between attempts, and evict the best one still present. Scores: seconds idle
//!   (LRU), 255 minus the decayed LFU counter (LFU), the nearest deadline (TTL).
//! - **Across shards.** Keys are spread over shards by hash slot, so each shard's
//!   sample is drawn from the same population as a sample of all keys would be, and
//!   one Redis would leave each shard its even share of the keys whatever its policy
//!   ranks first. So each shard publishes how many evictable keys it holds, and a
//!   shard clearly under the mean leaves the evicting to the heavier ones (they do it
//!   at their next command, or their cron tick), unless the excess passes 1% of the
//!   limit. Without that, the shard of the connection's core, which runs its local
//!   commands first and so first meets the excess the connection's transient
//!   buffers add, evicted for everyone and drained its own keys: under a Zipf cache
//!   workload its hit ratio fell to 0.48-0.61 where Redis's is 0.63-0.65
//!   (`benches/eviction_quality.py`). A shard whose keys are all colder than
//!   another's is not preferred beyond that; each picks its own best.
//! - **Refusing.** A command flagged `denyoom` is refused with `-OOM` only when no
//!   shard can free anything: under `noeviction`, or when every shard's last attempt
//!   found nothing the policy may evict (a process-wide count, read at admission for
//!   transactions and multi-shard commands). Otherwise it runs while eviction goes on,
//!   as Redis runs commands while its eviction timer is not done. Scripts as in 7.0:
//!   one with a shebang that may write and lacks `allow-oom` is refused before it
//!   runs; one without a shebang has its first `denyoom` command refused unless it
//!   has already written (`scripting::run`).
//! - **Effects.** An evicted key is deleted as a user's DEL would be for WATCH and
//!   client tracking, raises `evicted`, counts in INFO `evicted_keys`, and is
//!   propagated as `DEL` before the next record (the AOF and replicas), by the same
//!   queue as expired keys. A replica does not evict (`replica-ignore-maxmemory`), nor
//!   does loading.

use super::Shard;
use crate::config::{Config, Policy};
use crate::storage::access;
use bytes::Bytes;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Candidates kept between attempts (Redis's `EVPOOL_SIZE`).
const POOL_SIZE: usize = 16;

/// Shards whose last attempt found nothing to evict, and how many shards there are.
static EXHAUSTED: AtomicUsize = AtomicUsize::new(0);
static SHARDS: AtomicUsize = AtomicUsize::new(1);

/// Since when (unix ms) the process is over its limit (0: it is not), and how long
/// it was over before (INFO `current_` / `total_eviction_exceeded_time`).
static OVER_SINCE: AtomicU64 = AtomicU64::new(0);
static OVER_TOTAL: AtomicU64 = AtomicU64::new(0);

/// Each shard's count of keys the policy may evict, as it last published it.
const MAX_SHARDS: usize = 1024;
static POPULATION: [AtomicUsize; MAX_SHARDS] = [const { AtomicUsize::new(0) }; MAX_SHARDS];

/// A shard's eviction state.
#[derive(Default)]
pub struct State {
    /// The best candidates found so far, worst first.
    pool: Vec<Candidate>,
    /// The db the random policies look at next.
    next_db: usize,
    /// The last attempt found nothing to evict (counted in `EXHAUSTED`).
    exhausted: bool,
}

struct Candidate {
    score: u64,
    db: usize,
    key: Bytes,
}

/// What an attempt achieved.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The process is under the limit (or eviction does not apply here).
    Under,
    /// Its time ran out first; the next attempt goes on.
    Running,
    /// Nothing on this shard may be evicted.
    Failed,
}

/// Count this shard among those `register` knows of (at its creation).
pub fn register(nshards: usize) {
    SHARDS.store(nshards.max(1), Ordering::Relaxed);
}

/// Bytes over `maxmemory` now (0: under it, or no limit).
pub fn excess(cfg: &Config) -> u64 {
    if cfg.maxmemory == 0 {
        return 0;
    }
    // The replication buffer past the backlog is not counted, as in Redis.
    let not_counted = crate::replication::stream::not_counted_for_evict();
    crate::memory::used_memory()
        .saturating_sub(not_counted)
        .saturating_sub(cfg.maxmemory)
}

/// True when the process is over the limit and no shard can free anything: a
/// `denyoom` command is refused then.
pub fn out_of_memory(cfg: &Config) -> bool {
    excess(cfg) > 0
        && (cfg.eviction.policy == Policy::NoEviction
            || EXHAUSTED.load(Ordering::Relaxed) >= SHARDS.load(Ordering::Relaxed))
}

/// Before a client's command on `shard`: evict if over the limit; the `-OOM` reply if
/// `cmd` must be refused.
pub fn before_command(shard: &mut Shard, denyoom: impl FnOnce() -> bool) -> Option<&'static str> {
    match perform(shard) {
        Outcome::Failed if !shard.expire.replica && denyoom() && out_of_memory(&shard.config) => {
            Some(crate::commands::errors::OOM)
        }
        _ => None,
    }
}

/// Evict from this shard's keys until the process is under `maxmemory`, the time
/// slice is spent, or nothing may be evicted.
pub fn perform(shard: &mut Shard) -> Outcome {
    // The common case, under the limit, runs before every command: no clone of the
    // configuration, no write to a shared line.
    let cfg = &shard.config;
    if excess(cfg) == 0 || (shard.expire.replica && cfg.eviction.replica_ignores) {
        note_under();
        return Outcome::Under;
    }
    let cfg = cfg.clone();
    note_over();
    if cfg.eviction.policy == Policy::NoEviction {
        return Outcome::Failed;
    }
    let limit = time_limit(cfg.eviction.tenacity);
    let start = Instant::now();
    let mut evicted = 0u32;
    let mut held_skipped = 0u32;
    let volatile = cfg.eviction.policy.volatile();
    let mut mine = population(shard, volatile);
    let outcome = loop {
        crate::memory::flush_thread();
        let over = excess(&cfg);
        if over == 0 {
            note_under();
            break Outcome::Under;
        }
        publish(shard.id, mine);
        if lighter_than_its_share(shard.id, mine) && over < defer_limit(&cfg) {
            // Another shard holds more than its share: it gives up keys instead, at
            // its next command or cron tick.
            break Outcome::Running;
        }
        let Some((db, key)) = victim(shard, &cfg) else {
            break Outcome::Failed;
        };
        if shard.intents.holds_key(&key) {
            // A transaction or a script holding its keys may have read it already
            // (this runs before any client's command on the shard, while others'
            // claims are granted): not this one.
            held_skipped += 1;
            if held_skipped >= 16 {
                break Outcome::Running;
            }
            continue;
        }
        evict(shard, db, &key);
        mine = mine.saturating_sub(1);
        evicted += 1;
        // Redis reads the clock every 16 keys.
        if evicted.is_multiple_of(16) && limit.is_some_and(|l| start.elapsed() >= l) {
            break Outcome::Running;
        }
    };
    let exhausted = outcome == Outcome::Failed;
    if exhausted != shard.evict.exhausted {
        shard.evict.exhausted = exhausted;
        if exhausted {
            EXHAUSTED.fetch_add(1, Ordering::Relaxed);
        } else {
            EXHAUSTED.fetch_sub(1, Ordering::Relaxed);
        }
    }
    outcome
}

fn note_over() {
    if OVER_SINCE.load(Ordering::Relaxed) != 0 {
        return;
    }
    let _ = OVER_SINCE.compare_exchange(
        0,
        crate::clock::now_ms().max(1),
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
}

/// The process is under its limit (or has none) from now on.
pub fn note_under() {
    // Read first: every core calls this before every command while a limit is set.
    if OVER_SINCE.load(Ordering::Relaxed) == 0 {
        return;
    }
    let since = OVER_SINCE.swap(0, Ordering::Relaxed);
    if since != 0 {
        OVER_TOTAL.fetch_add(
            crate::clock::now_ms().saturating_sub(since),
            Ordering::Relaxed,
        );
    }
}

/// INFO's (`total_eviction_exceeded_time`, `current_eviction_exceeded_time`), ms.
pub fn exceeded_time() -> (u64, u64) {
    let since = OVER_SINCE.load(Ordering::Relaxed);
    let current = if since == 0 {
        0
    } else {
        crate::clock::now_ms().saturating_sub(since)
    };
    (OVER_TOTAL.load(Ordering::Relaxed) + current, current)
}

/// CONFIG RESETSTAT.
pub fn reset_stats() {
    OVER_TOTAL.store(0, Ordering::Relaxed);
}

/// The keys of this shard the policy may evict (with a TTL, for the volatile ones).
fn population(shard: &Shard, volatile: bool) -> usize {
    shard
        .dbs
        .iter()
        .map(|d| {
            if volatile {
                d.expires.len()
            } else {
                d.keys.len()
            }
        })
        .sum()
}

fn publish(shard: usize, keys: usize) {
    if let Some(p) = POPULATION.get(shard) {
        p.store(keys, Ordering::Relaxed);
    }
}

/// True if this shard holds clearly fewer evictable keys than the shards' mean (by
/// more than 2% and 64 keys): it leaves evicting to the heavier ones. Keys hash
/// evenly over shards, so each should hold its share whatever the policy ranks
/// first; without this, the shard that runs the connection's commands first (and
/// so first meets the excess its transient buffers add) would drain itself.
fn lighter_than_its_share(shard: usize, mine: usize) -> bool {
    let n = SHARDS.load(Ordering::Relaxed).min(MAX_SHARDS);
    if n < 2 || shard >= n {
        return false;
    }
    let total: usize = POPULATION[..n]
        .iter()
        .map(|p| p.load(Ordering::Relaxed))
        .sum();
    let mean = total / n;
    mine + 64 < mean && mine < mean - mean / 50
}

/// Past this excess a shard evicts whatever its share: waiting for a heavier shard's
/// next command or cron tick must not let memory run away (1% of the limit, at
/// least 256 KiB).
fn defer_limit(cfg: &Config) -> u64 {
    (cfg.maxmemory / 100).max(256 << 10)
}

/// Redis's `evictionTimeLimitUs`: 50 µs per point of tenacity up to 10, then 15%
/// more per point; 100 means no limit.
fn time_limit(tenacity: u32) -> Option<Duration> {
    match tenacity {
        0..=10 => Some(Duration::from_micros(50 * tenacity as u64)),
        11..=99 => Some(Duration::from_micros(
            (500.0 * 1.15f64.powi(tenacity as i32 - 10)) as u64,
        )),
        _ => None,
    }
}

/// The next key to evict under `cfg`'s policy, with its db.
fn victim(shard: &mut Shard, cfg: &Config) -> Option<(usize, Bytes)> {
    let policy = cfg.eviction.policy;
    if matches!(policy, Policy::AllKeysRandom | Policy::VolatileRandom) {
        return random_victim(shard, policy.volatile());
    }
    // Fresh samples join the pool before every pick, as in Redis: the pool keeps the
    // best of all samples so far, so each victim is the best of many.
    populate(shard, cfg);
    loop {
        let c = shard.evict.pool.pop()?;
        // The candidate may be gone, or have lost its TTL, since it was sampled.
        let db = &shard.dbs[c.db];
        let present = if policy.volatile() {
            db.expires.contains_key(&c.key[..])
        } else {
            db.keys.contains_key(&c.key[..])
        };
        if present {
            return Some((c.db, c.key));
        }
    }
}

/// A random key of the next db that has one (Redis's round robin over dbs).
fn random_victim(shard: &mut Shard, volatile: bool) -> Option<(usize, Bytes)> {
    let n = shard.dbs.len();
    for i in 0..n {
        let dbi = (shard.evict.next_db + i) % n;
        let Shard { dbs, rng, .. } = &mut *shard;
        let db = &mut dbs[dbi];
        let key = if volatile {
            db.expires
                .random_entry(rng)
                .map(|(k, _)| k.as_slice().to_vec())
        } else {
            db.keys
                .random_entry(rng)
                .map(|(k, _)| k.as_slice().to_vec())
        };
        if let Some(k) = key {
            shard.evict.next_db = dbi + 1;
            return Some((dbi, Bytes::from(k)));
        }
    }
    None
}

/// Sample `maxmemory-samples` keys of every db into the pool (Redis's
/// `evictionPoolPopulate`, with its cheap `dictGetSomeKeys` sampling).
fn populate(shard: &mut Shard, cfg: &Config) {
    let policy = cfg.eviction.policy;
    let n = cfg.eviction.samples;
    let Shard {
        dbs, rng, evict, ..
    } = &mut *shard;
    let pool = &mut evict.pool;
    for (dbi, db) in dbs.iter_mut().enumerate() {
        if policy.volatile() {
            let keys = &db.keys;
            db.expires.sample(rng, n, |k, &at| {
                let stamp = keys.get(k.as_slice()).map_or(0, |e| e.lru);
                offer(pool, dbi, k.as_slice(), score(policy, stamp, at));
            });
        } else {
            db.keys.sample(rng, n, |k, e| {
                offer(pool, dbi, k.as_slice(), score(policy, e.lru, 0));
            });
        }
    }
}

/// How good a victim an entry is (higher: evicted first).
fn score(policy: Policy, stamp: u32, deadline: u64) -> u64 {
    match policy {
        Policy::VolatileTtl => u64::MAX - deadline,
        Policy::AllKeysLfu | Policy::VolatileLfu => 255 - access::decayed(stamp) as u64,
        _ => access::idle_seconds(stamp) as u64,
    }
}

/// Put a candidate in the pool (kept sorted, worst first), unless it is worse than
/// all of a full pool or already there; its name is copied only then.
fn offer(pool: &mut Vec<Candidate>, db: usize, key: &[u8], score: u64) {
    let at = pool.partition_point(|c| c.score < score);
    let full = pool.len() == POOL_SIZE;
    if (full && at == 0) || pool.iter().any(|c| c.db == db && c.key[..] == *key) {
        return;
    }
    let c = Candidate {
        score,
        db,
        key: Bytes::copy_from_slice(key),
    };
    if full {
        pool.remove(0);
        pool.insert(at - 1, c);
    } else {
        pool.insert(at, c);
    }
}

/// Delete `key` as an eviction: WATCH and tracking see a change, `evicted` is raised,
/// and it is propagated as a DEL.
fn evict(shard: &mut Shard, db: usize, key: &Bytes) {
    let d = &mut shard.dbs[db];
    // Not a change the save points count (Redis does not count evictions as dirty).
    let dirty = d.dirty;
    let lazy = crate::lazyfree::lazy_eviction();
    if !d.delete_freeing(key, lazy) {
        return;
    }
    d.dirty = dirty;
    if let Some(log) = &mut d.expired_log {
        log.push((key.clone(), lazy));
    }
    shard.stats.evicted_keys += 1;
    shard.watches.touch(db, key);
    crate::notify::raise(crate::notify::EVICTED, "evicted", db, key);
    if crate::tracking::active() {
        crate::tracking::invalidate(std::slice::from_ref(key), 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_keeps_the_best_candidates_once() {
        let mut pool = Vec::new();
        for i in 0..40u64 {
            offer(&mut pool, 0, format!("k{i}").as_bytes(), (i * 7) % 40);
        }
        offer(&mut pool, 0, b"k39", 100);
        assert_eq!(pool.len(), POOL_SIZE);
        let scores: Vec<u64> = pool.iter().map(|c| c.score).collect();
        let mut sorted = scores.clone();
        sorted.sort();
        assert_eq!(scores, sorted);
        assert_eq!(scores[0], 24);
        assert_eq!(*scores.last().unwrap(), 39);
    }

    #[test]
    fn tenacity_sets_the_time_slice_as_redis() {
        assert_eq!(time_limit(10), Some(Duration::from_micros(500)));
        assert_eq!(time_limit(0), Some(Duration::ZERO));
        assert_eq!(time_limit(11), Some(Duration::from_micros(575)));
        assert_eq!(time_limit(100), None);
    }
}
