//! Client eviction (`maxmemory-clients`): when the normal and Pub/Sub clients together
//! use as much memory as the limit, the biggest are closed until they use less, as
//! Redis 7.0's `evictClients`.
//!
//! # The plan
//! - **The limit** ([`limit_of`]): bytes, or a percentage of `maxmemory` (nothing
//!   without one); never under 128 KiB, so that a bad setting cannot lock every
//!   client out; 0 turns eviction off. Every core writes it to one atomic when it
//!   takes a configuration ([`set_limit`]).
//! - **What a client counts** is its CLIENT LIST `tot-mem` (`Client::total_mem`), if
//!   it is a normal or Pub/Sub client (MONITOR included, as Redis classes it) without
//!   CLIENT NO-EVICT. Each client remembers what it last counted
//!   (`Client::evict_mem`); the difference goes to its core's sum. A client's figure
//!   is refreshed where it grows ([`update`]): after each read (the query buffer) and
//!   before each write of replies (the output). Growth under [`STEP`] is left to the
//!   cron, which refreshes every client each period ([`cron`]): so requests that
//!   change nothing much touch no shared memory, and messages queued by publishers
//!   are counted too.
//! - **Who evicts.** Only the core that owns a connection may close it. Each core
//!   publishes its sum and the bucket of its largest client (Redis's buckets: log2 of
//!   the memory, from 32 KiB to 4 GiB). A core that finds the process-wide sum at or
//!   over the limit closes its own clients of the largest bucket any core has,
//!   biggest first, until the sum is below. A core with no client in that bucket
//!   leaves the eviction to the core that has one, which does it at its next read,
//!   write or cron tick. So the server as a whole evicts from the biggest bucket down,
//!   as one Redis does; a bucket published by a core whose big client has meanwhile
//!   gone holds the others back until that core's next cron tick.
//! - **Closing** takes the output buffer limit's path (`runtime::output`) and CLIENT
//!   KILL's: the client is marked and its socket shut down, so its task ends
//!   wherever it waits, without writing more.
//!   Logged as Redis does ("Evicting client: <CLIENT LIST line>"); INFO
//!   `evicted_clients` counts them.

use crate::client::{Client, ClientClass, ClientRef, OverLimit};
use crate::runtime::Shards;
use crate::shard::Shard;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// The most cores whose clients are counted (as `shard::evict`'s table).
const MAX_CORES: usize = 1024;

/// A client's growth (or shrinking) smaller than this waits for the cron.
pub const STEP: u64 = 16 * 1024;

/// The smallest limit Redis accepts in effect (`getClientEvictionLimit`).
const MIN_LIMIT: u64 = 128 * 1024;

/// Buckets: log2 of a client's memory, clamped to 15..=33 (Redis's
/// `CLIENT_MEM_USAGE_BUCKET_MIN_LOG` / `MAX_LOG`).
const MIN_LOG: u32 = 15;
const MAX_LOG: u32 = 33;

static LIMIT: AtomicU64 = AtomicU64::new(0);
static CORES: AtomicUsize = AtomicUsize::new(0);
/// Per core: the memory its counted clients use.
static SUMS: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];
/// Per core: 1 + the bucket of its largest counted client (0: none).
static LARGEST: [AtomicU32; MAX_CORES] = [const { AtomicU32::new(0) }; MAX_CORES];

/// The limit in bytes for `maxmemory-clients` (`setting`: bytes or `N%`) under
/// `maxmemory`; 0: no client eviction.
pub fn limit_of(setting: &str, maxmemory: u64) -> u64 {
    let bytes = match setting.strip_suffix('%') {
        Some(p) if maxmemory > 0 => {
            let p = p.parse::<f64>().unwrap_or(0.0);
            (maxmemory as f64 * p / 100.0) as u64
        }
        Some(_) => 0,
        None => setting.parse().unwrap_or(0),
    };
    if bytes == 0 {
        0
    } else {
        bytes.max(MIN_LIMIT)
    }
}

/// Take the configured limit (every core calls this as it takes a configuration).
pub fn set_limit(core: usize, setting: &str, maxmemory: u64) {
    CORES.fetch_max(core + 1, Ordering::Relaxed);
    LIMIT.store(limit_of(setting, maxmemory), Ordering::Relaxed);
}

fn bucket(mem: u64) -> u32 {
    let log = 64 - mem.leading_zeros();
    log.clamp(MIN_LOG, MAX_LOG) - MIN_LOG + 1
}

/// What `c` counts now. A client with CLIENT NO-EVICT counts, as in Redis (its
/// cron adds every client's memory to the sum), but is never evicted.
fn counted(c: &Client) -> u64 {
    let class = c.class();
    if LIMIT.load(Ordering::Relaxed) == 0
        || c.pushes.over_limit().is_some()
        || !matches!(class, ClientClass::Normal | ClientClass::Pubsub)
    {
        return 0;
    }
    c.total_mem() as u64
}

/// Bring `c`'s share of its core's sum up to date with `now`, what it counts now.
fn account(core: usize, c: &mut Client, now: u64) -> u64 {
    let was = std::mem::replace(&mut c.evict_mem, now);
    if now != was {
        // Only this core writes its sum; wrapping addition subtracts.
        SUMS[core].fetch_add(now.wrapping_sub(was), Ordering::Relaxed);
    }
    if now > 0 && !c.no_evict {
        LARGEST[core].fetch_max(bucket(now), Ordering::Relaxed);
    }
    now
}

/// The cores counted so far: how much of [`SUMS`] and [`LARGEST`] is in use.
fn cores() -> usize {
    CORES.load(Ordering::Relaxed).min(MAX_CORES)
}

/// The largest bucket of any core's evictable clients (0: none).
fn top_bucket() -> u32 {
    LARGEST[..cores()]
        .iter()
        .map(|b| b.load(Ordering::Relaxed))
        .max()
        .unwrap_or(0)
}

/// The memory of every core's counted clients.
fn total() -> u64 {
    SUMS[..cores()]
        .iter()
        .fold(0u64, |t, s| t.wrapping_add(s.load(Ordering::Relaxed)))
}

/// Refresh what `client` counts, if it moved by [`STEP`] or more, and evict on this
/// core if the clients are over the limit. True if `client` itself was evicted.
pub fn update(shards: &Shards, client: &ClientRef) -> bool {
    if LIMIT.load(Ordering::Relaxed) == 0 {
        return false;
    }
    let core = shards.local_id.min(MAX_CORES - 1);
    {
        let mut c = client.borrow_mut();
        let now = counted(&c);
        if now.abs_diff(c.evict_mem) < STEP {
            return false;
        }
        account(core, &mut c, now);
    }
    evict(&shards.local, core);
    client.borrow().pushes.over_limit() == Some(OverLimit::Evicted)
}

/// A connection ends: its memory no longer counts.
pub fn forget(shards: &Shards, client: &ClientRef) {
    let core = shards.local_id.min(MAX_CORES - 1);
    let mut c = client.borrow_mut();
    let was = std::mem::take(&mut c.evict_mem);
    if was != 0 {
        SUMS[core].fetch_sub(was, Ordering::Relaxed);
    }
}

/// Each cron period: refresh every client of this core, publish the largest, and
/// evict if over the limit.
pub fn cron(shard: &RefCell<Shard>) {
    let core = shard.borrow().id.min(MAX_CORES - 1);
    let mut largest = 0;
    crate::runtime::clients::each(|all| {
        for client in all {
            // A client borrowed by its running command is looked at next time.
            if let Ok(mut c) = client.try_borrow_mut() {
                let now = counted(&c);
                let mem = account(core, &mut c, now);
                if mem > 0 && !c.no_evict {
                    largest = largest.max(bucket(mem));
                }
            }
        }
    });
    LARGEST[core].store(largest, Ordering::Relaxed);
    if LIMIT.load(Ordering::Relaxed) != 0 {
        evict(shard, core);
    }
}

/// While the clients are over the limit, close this core's biggest client if it is
/// in the largest bucket of any core.
fn evict(shard: &RefCell<Shard>, core: usize) {
    loop {
        let limit = LIMIT.load(Ordering::Relaxed);
        if limit == 0 || total() < limit {
            return;
        }
        let top = top_bucket();
        let biggest = crate::runtime::clients::each(|all| {
            all.filter_map(|c| {
                let b = c.try_borrow().ok()?;
                (b.evict_mem > 0 && !b.no_evict).then_some((b.evict_mem, c))
            })
            .max_by_key(|(mem, _)| *mem)
            .map(|(mem, c)| (mem, c.clone()))
        });
        let Some((mem, victim)) = biggest else {
            LARGEST[core].store(0, Ordering::Relaxed);
            if top_bucket() == 0 {
                warn_nothing_left();
            }
            return;
        };
        if bucket(mem) < top {
            // Another core holds bigger clients: they go first.
            LARGEST[core].store(bucket(mem), Ordering::Relaxed);
            return;
        }
        let mut c = victim.borrow_mut();
        crate::log::log(&format!(
            "Evicting client: {}",
            c.info_line(crate::clock::now_ms())
        ));
        // Marked for the paths that look at the mark (pending writes, messages),
        // killed and shut down for a task waiting to read, as CLIENT KILL does.
        c.pushes.close(OverLimit::Evicted);
        c.killed = true;
        crate::commands::connection::shutdown_socket(c.fd);
        // Marked: it counts 0 from now on.
        account(core, &mut c, 0);
        shard.borrow_mut().stats.evicted_clients += 1;
    }
}

/// Redis's warning when the clients are over the limit with none left to evict, here
/// at most every 10 s (Redis logs it at every event loop turn).
fn warn_nothing_left() {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = crate::clock::now_ms();
    let last = LAST.load(Ordering::Relaxed);
    if now.saturating_sub(last) >= 10_000
        && LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        crate::log::warning("Over client maxmemory after evicting all evictable clients");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_as_redis_computes_them() {
        assert_eq!(limit_of("0", 1 << 30), 0);
        assert_eq!(limit_of("1000", 0), MIN_LIMIT);
        assert_eq!(limit_of("1048576", 0), 1 << 20);
        assert_eq!(limit_of("10%", 0), 0);
        assert_eq!(limit_of("10%", 100 << 20), 10 << 20);
        assert_eq!(limit_of("0%", 100 << 20), 0);
        assert_eq!(limit_of("1%", 1 << 20), MIN_LIMIT);
    }

    #[test]
    fn buckets_are_log2_from_32k() {
        assert_eq!(bucket(1), 1);
        assert_eq!(bucket(32 * 1024 - 1), 1);
        assert_eq!(bucket(32 * 1024), 2);
        assert_eq!(bucket(64 * 1024), 3);
        assert_eq!(bucket(u64::MAX), MAX_LOG - MIN_LOG + 1);
    }
}
