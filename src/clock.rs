//! The wall clock, in the units Redis uses (unix milliseconds and microseconds). A leaf:
//! everyone may import it, it imports nothing of ours.

use std::cell::Cell;

thread_local! {
    /// While non-zero, what [`now_ms`] reads on this thread (see [`frozen_at`]).
    static FROZEN: Cell<u64> = const { Cell::new(0) };
}

/// Unix time in milliseconds (on a thread running [`frozen_at`], its time).
pub fn now_ms() -> u64 {
    let frozen = FROZEN.get();
    if frozen != 0 {
        return frozen;
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Unix time in microseconds.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Run `f` with [`now_ms`] reading `ms` on this thread: a script's server-wide
/// commands (KEYS, SCAN, RANDOMKEY), which read the clock where they start and hand
/// it to every shard, see the script's time as its keyed commands do.
pub fn frozen_at<R>(ms: u64, f: impl FnOnce() -> R) -> R {
    struct Restore(u64);
    impl Drop for Restore {
        fn drop(&mut self) {
            FROZEN.set(self.0);
        }
    }
    let _restore = Restore(FROZEN.replace(ms));
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frozen_clock_reads_its_time_until_it_is_thawed() {
        let r = frozen_at(1234, || (now_ms(), frozen_at(99, now_ms), now_ms()));
        assert_eq!(r, (1234, 99, 1234));
        assert!(now_ms() > 1_700_000_000_000);
        let caught = std::panic::catch_unwind(|| frozen_at(5, || panic!("in f")));
        assert!(caught.is_err());
        assert!(now_ms() > 1_700_000_000_000);
    }
}
