//! The active expire cycle, run by each shard `hz` times a second.
//!
//! Redis's algorithm (`activeExpireCycle`, slow cycle): for each database, sample 20
//! keys that have a TTL, delete the expired ones, and repeat while more than 10% of a
//! sample was expired, stopping when the time budget (25% of a cron period) is spent.
//! `active-expire-effort` (1-10) scales these as Redis does ([`Effort`]): more keys per
//! sample, a lower acceptable stale share, a larger budget. When the budget runs out
//! with keys still expiring, the shard's cron goes on with Redis's fast cycle (short
//! cycles at half duty until the next tick; `runtime::cron`). Sampling keeps the cost proportional
//! to the garbage found, never to the keyspace, so a million short-TTL keys are
//! reclaimed over a few cron ticks without a pause of more than the budget.
//! `stale_perc` is the running estimate of expired-but-not-yet-reclaimed keys that
//! INFO reports as `expired_stale_perc`.
//!
//! While expiry is held ([`Shard::hold_expiry`], CLIENT PAUSE) the cycle does not run
//! and the databases' lazy expiry keeps the keys it finds expired: the data set stays
//! constant until the hold's end, as Redis's while clients are paused.
//!
//! A replica holds expiry for good: its master sends a DEL for each key that expires
//! there, and its writes find every key alive. A writable replica's (`replica-read-only
//! no`) own clients are another matter, as in Redis: their writes delete the expired
//! keys they meet (`runtime::call`), and the keys they give a TTL, which the master
//! knows nothing of, are remembered ([`CycleState::written_with_ttl`]) and expired by
//! this cycle in place of its sampling (Redis's `expireSlaveKeys`).

use super::Shard;
use std::time::{Duration, Instant};

/// Empty buckets a sample may probe before the cycle stops early; a table this sparse
/// is being shrunk by the cron, and walking it would stall the shard.
const SPARSE_TRIES: usize = 64;

/// The cycle's parameters for an `active-expire-effort` (Redis's `activeExpireCycle`
/// rescales 1-10 to 0-9 and adds it to its defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Effort {
    /// Keys sampled per database per round (Redis: 20 + 5 per step).
    pub keys_per_loop: usize,
    /// Another round follows while more than this share (%) of a sample was expired
    /// (Redis: 10 - 1 per step).
    pub acceptable_stale: usize,
    /// The share (%) of a cron period the cycle may take (Redis: 25 + 2 per step).
    pub time_perc: u32,
    /// The fast cycle's time limit, and half its least period (Redis: 1000 us + 250
    /// per step).
    pub fast_duration: Duration,
}

impl Effort {
    pub fn of(config_effort: i64) -> Effort {
        let effort = config_effort.clamp(1, 10) as usize - 1;
        Effort {
            keys_per_loop: 20 + 20 / 4 * effort,
            acceptable_stale: 10 - effort,
            time_perc: 25 + 2 * effort as u32,
            fast_duration: Duration::from_micros(1000 + 250 * effort as u64),
        }
    }

    /// Another round after a sample of `sampled` keys of which `expired` were: while
    /// more than the acceptable share was expired.
    pub fn goes_on(&self, sampled: usize, expired: usize) -> bool {
        sampled > 0 && expired * 100 / sampled > self.acceptable_stale
    }
}

#[derive(Default, Debug)]
pub struct CycleState {
    /// Moving average of the expired fraction seen in samples (0.0 - 1.0).
    pub stale_perc: f64,
    /// Database to resume from next time, so a budget cut-off does not starve later dbs.
    pub next_db: usize,
    /// Cycles that stopped because the time budget ran out.
    pub time_cap_reached: u64,
    /// DEBUG SET-ACTIVE-EXPIRE 0: only lazy expiry runs.
    pub disabled: bool,
    /// Expiry is held while the clock is at or before this (unix ms; 0: not held).
    pub held_until: u64,
    /// This server is a replica: expiry is held for good (its master sends the DELs;
    /// reads find expired keys missing), and writes, its master's, see every key
    /// alive (Redis's `expireIfNeeded` on a replica).
    pub replica: bool,
    /// On a writable replica, the keys its own clients gave a TTL (in any database):
    /// the cycle deletes them when due and forgets those without a TTL left.
    pub written_with_ttl: std::collections::HashSet<bytes::Bytes>,
}

impl Shard {
    /// Hold expiry until `until_ms` (inclusive; 0 releases it): no active cycle, and
    /// lazy expiry reports expired keys missing without deleting them.
    pub fn hold_expiry(&mut self, until_ms: u64) {
        self.expire.held_until = until_ms;
        self.set_dbs_hold(until_ms);
    }

    /// Hold expiry for good while this server is a replica (`on`), or give it back.
    pub fn set_replica_expiry(&mut self, on: bool) {
        self.expire.replica = on;
        self.expire.written_with_ttl.clear();
        self.set_dbs_hold(self.expire.held_until);
    }

    fn set_dbs_hold(&mut self, until_ms: u64) {
        let until = if self.expire.replica {
            u64::MAX
        } else {
            until_ms
        };
        for db in self.dbs.iter_mut() {
            db.expiry_held_until = until;
        }
    }

    /// While expiry is held, let the databases' lazy expiry delete (`false`: for a
    /// write about to run) or keep expired keys again (`true`).
    pub fn hold_expiry_for_reads_only(&mut self, held: bool) {
        if held {
            self.set_dbs_hold(self.expire.held_until);
        } else {
            for db in self.dbs.iter_mut() {
                db.expiry_held_until = 0;
            }
        }
    }

    /// After a write by a client of this writable replica: remember the keys at `keys`
    /// in `argv` that have a TTL now, for the cycle to expire (their master will not).
    pub fn remember_written_with_ttl(&mut self, argv: &[bytes::Bytes], keys: &[usize]) {
        for &k in keys {
            let key = &argv[k];
            if self.dbs.iter().any(|db| db.expire_of(key).is_some()) {
                self.expire.written_with_ttl.insert(key.clone());
            }
        }
    }

    /// True while expiry is held at `now_ms`.
    pub fn expiry_held(&self, now_ms: u64) -> bool {
        self.expire.replica || now_ms <= self.expire.held_until
    }
}

/// Run one active expire cycle on `shard` with `effort`'s parameters and the given
/// time budget. Returns the number of keys deleted.
pub fn active_expire_cycle(
    shard: &mut Shard,
    now_ms: u64,
    effort: Effort,
    budget: Duration,
) -> u64 {
    if shard.expire.disabled || now_ms <= shard.expire.held_until {
        return 0;
    }
    if shard.expire.replica {
        return expire_written_with_ttl(shard, now_ms);
    }
    let start = Instant::now();
    let ndb = shard.dbs.len();
    let mut deleted = 0u64;
    let (mut total_sampled, mut total_expired) = (0usize, 0usize);
    for k in 0..ndb {
        let dbi = (shard.expire.next_db + k) % ndb;
        loop {
            let db = &mut shard.dbs[dbi];
            if db.expires.is_empty() {
                break;
            }
            let mut sampled = 0;
            let mut expired = 0;
            let n = effort.keys_per_loop.min(db.expires.len());
            for _ in 0..n {
                let Some((key, &at)) = db.expires.random_entry_within(&mut shard.rng, SPARSE_TRIES)
                else {
                    break;
                };
                sampled += 1;
                // A key a transaction has claimed changes only by its hand until it
                // releases it.
                if at <= now_ms && !shard.intents.holds_key(key) {
                    let key = key.clone();
                    db.delete_expired(key.as_slice());
                    expired += 1;
                }
            }
            deleted += expired as u64;
            total_sampled += sampled;
            total_expired += expired;
            if start.elapsed() >= budget {
                shard.expire.time_cap_reached += 1;
                shard.expire.next_db = dbi;
                update_stale(shard, total_sampled, total_expired);
                return deleted;
            }
            if !effort.goes_on(sampled, expired) {
                break;
            }
        }
    }
    shard.expire.next_db = 0;
    update_stale(shard, total_sampled, total_expired);
    deleted
}

/// A replica's cycle: delete the keys its own clients gave a TTL that is now past
/// (Redis's `expireSlaveKeys`); their master sends no DEL for them.
fn expire_written_with_ttl(shard: &mut Shard, now_ms: u64) -> u64 {
    if shard.expire.written_with_ttl.is_empty() {
        return 0;
    }
    let mut deleted = 0;
    let keys = std::mem::take(&mut shard.expire.written_with_ttl);
    let mut pending = std::collections::HashSet::new();
    for key in keys {
        if shard.intents.holds_key(&key) {
            pending.insert(key);
            continue;
        }
        let mut later = false;
        for db in shard.dbs.iter_mut() {
            match db.expire_of(&key) {
                Some(at) if at <= now_ms => {
                    db.delete_expired(&key);
                    deleted += 1;
                }
                Some(_) => later = true,
                None => {}
            }
        }
        if later {
            pending.insert(key);
        }
    }
    shard.expire.written_with_ttl = pending;
    deleted
}

fn update_stale(shard: &mut Shard, sampled: usize, expired: usize) {
    let current = if sampled > 0 {
        expired as f64 / sampled as f64
    } else {
        0.0
    };
    shard.expire.stale_perc = current * 0.05 + shard.expire.stale_perc * 0.95;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::value::StrValue;
    use crate::storage::Value;

    const NOW: u64 = 1_700_000_000_000;

    fn shard_with_expired_key() -> Shard {
        let mut s = crate::commands::testing::shard();
        let d = &mut s.dbs[0];
        d.set(b"k", Value::Str(StrValue::from_set(b"v")), false);
        d.set_expire(b"k", NOW - 1);
        s
    }

    #[test]
    fn held_expiry_keeps_expired_keys_but_reports_them_missing() {
        let mut s = shard_with_expired_key();
        s.hold_expiry(NOW + 100);
        assert_eq!(
            active_expire_cycle(&mut s, NOW, Effort::of(1), Duration::from_secs(1)),
            0
        );
        assert!(s.dbs[0].lookup(b"k", NOW).is_none());
        assert!(!s.dbs[0].contains(b"k", NOW));
        assert_eq!(s.dbs[0].len(), 1, "still there while held");
        // The hold ends by itself after its end.
        assert!(!s.dbs[0].contains(b"k", NOW + 101));
        assert_eq!(s.dbs[0].len(), 0);
    }

    #[test]
    fn effort_scales_the_cycle_as_redis() {
        let defaults = Effort {
            keys_per_loop: 20,
            acceptable_stale: 10,
            time_perc: 25,
            fast_duration: Duration::from_micros(1000),
        };
        assert_eq!(Effort::of(1), defaults);
        let most = Effort {
            keys_per_loop: 65,
            acceptable_stale: 1,
            time_perc: 43,
            fast_duration: Duration::from_micros(3250),
        };
        assert_eq!(Effort::of(10), most);
    }

    /// Redis 7's rule: another round while more than 10% of a sample was expired
    /// (3 of 20 goes on, 2 of 20 stops; the 25% rule of older Redis stopped at 5).
    #[test]
    fn a_cycle_goes_on_while_samples_are_over_ten_percent_expired() {
        let e = Effort::of(1);
        assert!(e.goes_on(20, 3));
        assert!(!e.goes_on(20, 2));
        assert!(!e.goes_on(0, 0));
        // Most effort: on while more than 1% of 65 (integer percent, as Redis: 2 keys).
        let e = Effort::of(10);
        assert!(e.goes_on(65, 2));
        assert!(!e.goes_on(65, 1));
    }

    #[test]
    fn released_expiry_runs_again() {
        let mut s = shard_with_expired_key();
        s.hold_expiry(NOW + 100);
        assert_eq!(
            active_expire_cycle(&mut s, NOW, Effort::of(1), Duration::from_secs(1)),
            0
        );
        s.hold_expiry(0);
        assert_eq!(
            active_expire_cycle(&mut s, NOW, Effort::of(1), Duration::from_secs(1)),
            1
        );
        assert_eq!(s.dbs[0].len(), 0);
    }
}
