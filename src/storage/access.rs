//! What an entry's access stamp (`Entry::lru`) holds, and how an access updates it:
//! the last access for LRU, or a logarithmic frequency counter for LFU.
//!
//! As in Redis (`object.c`, `evict.c`), one 32-bit field serves both and the
//! `maxmemory-policy` decides how it is read: under an LFU policy the low 8 bits are a
//! counter that grows with probability `1 / ((counter - 5) * lfu-log-factor + 1)` on
//! each access and the next 16 bits are the minute of its last decrement; the counter
//! loses one per `lfu-decay-time` minutes without access, applied when read. Under
//! any other policy the field is the LRU clock (seconds) of the last access. Switching
//! policy at run time reinterprets the field, as Redis does (its OBJECT errors say the
//! data takes some time to adjust).
//!
//! The policy and its two LFU parameters are process-wide (CONFIG SET changes them for
//! every shard), so they are atomics read with relaxed loads on each access.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Redis's `LFU_INIT_VAL`: the counter a new key starts with, so that it is not the
/// first one evicted before it had a chance to be used.
pub const LFU_INIT_VAL: u32 = 5;

static LFU: AtomicBool = AtomicBool::new(false);
static LOG_FACTOR: AtomicU32 = AtomicU32::new(10);
static DECAY_TIME: AtomicU32 = AtomicU32::new(1);

/// Follow the configuration: `lfu` when the policy is one of the LFU pair.
pub fn configure(lfu: bool, log_factor: u32, decay_time: u32) {
    LFU.store(lfu, Ordering::Relaxed);
    LOG_FACTOR.store(log_factor, Ordering::Relaxed);
    DECAY_TIME.store(decay_time, Ordering::Relaxed);
}

/// True while an LFU policy is selected.
pub fn lfu() -> bool {
    LFU.load(Ordering::Relaxed)
}

/// The stamp of an entry created now.
#[inline]
pub fn initial() -> u32 {
    if lfu() {
        (minutes() << 8) | LFU_INIT_VAL
    } else {
        super::db::lru_clock()
    }
}

/// Record an access in `stamp`.
#[inline]
pub fn touch(stamp: &mut u32) {
    if lfu() {
        let counter = log_incr(decayed(*stamp));
        *stamp = (minutes() << 8) | counter;
    } else {
        *stamp = super::db::lru_clock();
    }
}

/// The LFU counter of `stamp` with the decay due since its last access (Redis's
/// `LFUDecrAndReturn`; OBJECT FREQ).
pub fn decayed(stamp: u32) -> u32 {
    let ldt = stamp >> 8;
    let counter = stamp & 255;
    let decay = DECAY_TIME.load(Ordering::Relaxed);
    // lfu-decay-time 0: the counter never decays.
    let periods = elapsed_minutes(ldt).checked_div(decay).unwrap_or(0);
    counter.saturating_sub(periods)
}

/// Seconds since the access `stamp` records under LRU (OBJECT IDLETIME).
pub fn idle_seconds(stamp: u32) -> u32 {
    super::db::lru_clock().saturating_sub(stamp)
}

/// The stamp of an entry last accessed `secs` ago (RESTORE IDLETIME, RDB's LRU
/// idle opcode), under LRU.
pub fn idle_for(secs: u64) -> u32 {
    super::db::lru_clock().saturating_sub(secs.min(u32::MAX as u64) as u32)
}

/// The stamp of an entry with LFU counter `freq` (RESTORE FREQ, RDB's LFU opcode).
pub fn with_freq(freq: u8) -> u32 {
    (minutes() << 8) | freq as u32
}

/// Minutes of the unix clock, modulo 2^16 (Redis's `LFUGetTimeInMinutes`).
fn minutes() -> u32 {
    (super::db::lru_clock() / 60) & 0xFFFF
}

/// Minutes since `ldt`, once around the 16-bit clock at most (`LFUTimeElapsed`).
fn elapsed_minutes(ldt: u32) -> u32 {
    let now = minutes();
    if now >= ldt {
        now - ldt
    } else {
        65535 - ldt + now
    }
}

/// One logarithmic increment (`LFULogIncr`): the more accesses a key already has, the
/// less likely the next one counts.
fn log_incr(counter: u32) -> u32 {
    if counter >= 255 {
        return 255;
    }
    let base = counter.saturating_sub(LFU_INIT_VAL) as f64;
    let p = 1.0 / (base * LOG_FACTOR.load(Ordering::Relaxed) as f64 + 1.0);
    if random_unit() < p {
        counter + 1
    } else {
        counter
    }
}

thread_local! {
    static SEED: Cell<u64> = const { Cell::new(0x9E37_79B9_7F4A_7C15) };
}

/// A uniform number in [0, 1) from a per-thread xorshift: an access must not pay for
/// a cryptographic generator, and the counter only needs a fair coin.
fn random_unit() -> f64 {
    SEED.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (x >> 11) as f64 / (1u64 << 53) as f64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counter_grows_logarithmically_and_saturates() {
        // The default log factor: Redis's table says about 100 accesses reach 10 and
        // 1000 reach 18 (redis.conf, "LFU counter" section); allow the randomness.
        LOG_FACTOR.store(10, Ordering::Relaxed);
        let mut c = LFU_INIT_VAL;
        for _ in 0..100 {
            c = log_incr(c);
        }
        assert!((7..=14).contains(&c), "{c}");
        for _ in 0..900 {
            c = log_incr(c);
        }
        assert!((13..=24).contains(&c), "{c}");
        assert_eq!(log_incr(255), 255);
    }

    #[test]
    fn the_counter_decays_per_period_when_read() {
        DECAY_TIME.store(1, Ordering::Relaxed);
        let now = minutes();
        assert_eq!(decayed((now << 8) | 9), 9);
        let ten_ago = (now + 65536 - 10) & 0xFFFF;
        assert_eq!(decayed((ten_ago << 8) | 9), 0);
        // (Redis's elapsed-time rule counts one less across the 16-bit wrap.)
        assert!((20..=21).contains(&decayed((ten_ago << 8) | 30)));
    }
}
