//! Memory accounting: the bytes the process has allocated (INFO `used_memory`, Redis's
//! `zmalloc_used_memory`), and what the allocator holds for them.
//!
//! The one idea to hold: [`CountingAlloc`] is the binary's global allocator, mimalloc
//! with a counter. Each thread adds the sizes it allocates and subtracts the sizes it
//! frees in a thread-local counter, and moves that counter into one process-wide atomic
//! only when it has drifted by [`FLUSH_BYTES`]; so the hot path costs a thread-local
//! add and compare, and the shared cache line is touched once per 64 KiB of churn
//! instead of on every allocation. The figure read is exact to within
//! `FLUSH_BYTES` per thread (under 1 MiB with a dozen threads), and memory a thread
//! frees that another allocated is counted right: only sizes are counted, never owners.
//!
//! Why not mimalloc's own statistics: a release build of mimalloc keeps per-allocation
//! statistics only when compiled with `MI_STAT` (off by default, and costly: it counts
//! per size bin), and the `libmimalloc-sys` functions that read them (`mi_stats_*`)
//! need its `extended` feature; what an ordinary build tracks is the committed memory
//! of its segments, which [`allocator`] reads with `mi_process_info` for
//! `allocator_active` / `allocator_resident`.
//!
//! Cost, measured with `cargo test --lib alloc_cost -- --ignored --nocapture` (10M
//! malloc/free pairs of 64 bytes on one thread, the dev profile at opt-level 1, on a
//! loaded 2-core machine): 21.9 ns per pair with mimalloc alone, 32.5 ns with the
//! counter, so about 5 ns per allocation or free. A GET allocates a handful of times
//! and costs microseconds, so this is about 1% of it; and it buys the figure that
//! `maxmemory`, dashboards and the exporter's alerts are built on.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// A thread's counter is moved to [`USED`] when it drifts this far from zero.
pub const FLUSH_BYTES: i64 = 64 * 1024;

/// Bytes allocated and not freed, over all threads (less what threads still hold).
static USED: AtomicI64 = AtomicI64::new(0);

/// Bytes counted in [`USED`] that Redis leaves out of `used_memory`: the Lua
/// interpreters' heaps (Redis's Lua allocates with libc's malloc, not zmalloc; INFO
/// shows them as `used_memory_lua` and `used_memory_vm_functions`), so that scripts'
/// garbage neither counts towards `maxmemory` nor makes it evict keys.
static OUTSIDE: AtomicI64 = AtomicI64::new(0);

/// `used_memory` once the server had started (INFO `used_memory_startup`).
static STARTUP: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's allocations not yet moved to `USED`. A `const` Cell needs no lazy
    /// initialisation and no destructor, so the allocator may use it.
    static LOCAL: Cell<i64> = const { Cell::new(0) };
}

#[inline]
fn count(delta: i64) {
    // try_with: during thread teardown the slot may be gone; count straight away then.
    let flushed = LOCAL.try_with(|c| {
        let v = c.get() + delta;
        if v.abs() >= FLUSH_BYTES {
            c.set(0);
            USED.fetch_add(v, Ordering::Relaxed);
        } else {
            c.set(v);
        }
    });
    if flushed.is_err() {
        USED.fetch_add(delta, Ordering::Relaxed);
    }
}

/// mimalloc, counting the bytes it hands out.
///
/// Allocations that need at most 16-byte alignment (all but a few: bytes, vectors of
/// pointers, boxed structs, and Lua's, which mlua asks for at 16) go to `mi_malloc` /
/// `mi_zalloc` / `mi_realloc`, not to the `mimalloc` crate's `MiMalloc`, which passes
/// every allocation to `mi_malloc_aligned`. In mimalloc 3 that function's fast path
/// serves a size only while its page's free list has a block; when the list runs dry
/// (after the first few hundred allocations of a size), a size whose block is not a
/// power of two (24, 40, 48 bytes, ...) falls to the over-allocating path, which takes
/// `size + align - 1` bytes from the next size's page. The first size's page is then
/// never collected, so every later allocation of that size takes the slow path: 70%
/// of the allocations of a pipelined SET did, at ~200 instructions each
/// (benches/README.md, "mimalloc's aligned path").
pub struct CountingAlloc;

/// The widest alignment a plain mimalloc block of a size that is a multiple of it
/// has: every size class is a whole number of words, those above 64 bytes a multiple
/// of 16 bytes (`init.c`'s queue sizes), and a page's first block is 16-aligned
/// (`MI_PAGE_MIN_START_BLOCK_ALIGN`). So `mi_malloc` of `size` rounded up to a multiple
/// of `align` (at most this) returns a block aligned to `align`.
const PLAIN_ALIGN: usize = 16;

/// The size to ask `mi_malloc` for so that its block has `layout`'s alignment, or
/// `None` when only `mi_malloc_aligned` can give it.
#[inline]
fn plain_size(size: usize, align: usize) -> Option<usize> {
    if align > PLAIN_ALIGN {
        return None;
    }
    size.checked_add(align - 1).map(|s| s & !(align - 1))
}

// SAFETY: `alloc`, `alloc_zeroed` and `realloc` return mimalloc blocks of at least the
// size asked for (zeroed for `alloc_zeroed`, the old contents kept by `realloc`):
// from `mi_malloc` / `mi_zalloc` / `mi_realloc` of the size rounded up to a multiple
// of `layout.align()` when that is at most `PLAIN_ALIGN`, which gives a block of that
// alignment (see `PLAIN_ALIGN`; `mi_realloc` either keeps the block or moves the data
// to such a block), else from MiMalloc's `mi_malloc_aligned` / `mi_realloc_aligned`.
// `dealloc` is `mi_free`, which takes a block from any of these. The counting touches
// only a thread-local Cell and an atomic, and never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = match plain_size(layout.size(), layout.align()) {
            Some(size) => mi_malloc(size) as *mut u8,
            None => mimalloc::MiMalloc.alloc(layout),
        };
        if !p.is_null() {
            count(layout.size() as i64);
        }
        p
    }
    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = match plain_size(layout.size(), layout.align()) {
            Some(size) => mi_zalloc(size) as *mut u8,
            None => mimalloc::MiMalloc.alloc_zeroed(layout),
        };
        if !p.is_null() {
            count(layout.size() as i64);
        }
        p
    }
    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        mimalloc::MiMalloc.dealloc(ptr, layout);
        count(-(layout.size() as i64));
    }
    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = match plain_size(new_size, layout.align()) {
            Some(size) => mi_realloc(ptr as *mut std::ffi::c_void, size) as *mut u8,
            None => mimalloc::MiMalloc.realloc(ptr, layout, new_size),
        };
        if !p.is_null() {
            count(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

/// Bytes allocated through [`CountingAlloc`] and not freed (0 when another allocator is
/// the global one, as in unit tests).
pub fn used_memory() -> u64 {
    (USED.load(Ordering::Relaxed) - OUTSIDE.load(Ordering::Relaxed)).max(0) as u64
}

/// `delta` more bytes of ours are outside `used_memory` (see [`OUTSIDE`]).
pub fn add_outside(delta: i64) {
    OUTSIDE.fetch_add(delta, Ordering::Relaxed);
}

/// Move this thread's drift into the process-wide figure now (eviction reads the
/// figure after each key it frees).
pub fn flush_thread() {
    let _ = LOCAL.try_with(|c| {
        let v = c.replace(0);
        if v != 0 {
            USED.fetch_add(v, Ordering::Relaxed);
        }
    });
}

/// Remember the current figure as the start-up footprint.
pub fn mark_startup() {
    STARTUP.store(used_memory(), Ordering::Relaxed);
}

pub fn startup_memory() -> u64 {
    STARTUP.load(Ordering::Relaxed)
}

/// Give this thread's free memory back to the system (MEMORY PURGE).
pub fn purge_thread() {
    // SAFETY: mi_collect takes a plain bool and only walks the calling thread's own
    // heap (and abandoned segments), which mimalloc synchronises itself.
    unsafe { mi_collect(true) }
}

/// Give back what this thread's heap freed and mimalloc holds for later reuse, as a
/// quiet shard does from its cron (Redis's jemalloc purges on its background
/// thread after a decay time; mimalloc purges only on the owning thread, when that
/// thread allocates or frees again, so a shard that went quiet after a load or a
/// flush would keep the pages).
pub fn tidy_thread() {
    // The normal collection (`false`) leaves the pages committed: measured, RSS did
    // not move.
    purge_thread()
}

extern "C" {
    // mimalloc's basic API: allocate (zeroed), reallocate (see `PLAIN_ALIGN`).
    fn mi_malloc(size: usize) -> *mut std::ffi::c_void;
    fn mi_zalloc(size: usize) -> *mut std::ffi::c_void;
    fn mi_realloc(p: *mut std::ffi::c_void, size: usize) -> *mut std::ffi::c_void;
    // mimalloc's basic API: free what this thread's heap holds unused.
    fn mi_collect(force: bool);
    // mimalloc's C API, linked by libmimalloc-sys (declared there only under its
    // `extended` feature).
    fn mi_process_info(
        elapsed_msecs: *mut usize,
        user_msecs: *mut usize,
        system_msecs: *mut usize,
        current_rss: *mut usize,
        peak_rss: *mut usize,
        current_commit: *mut usize,
        peak_commit: *mut usize,
        page_faults: *mut usize,
    );
}

/// What mimalloc holds: (committed bytes now, peak committed bytes). On Linux mimalloc
/// counts as committed the read/write memory of its segments, which is what it has
/// made resident or may make resident without a system call.
pub fn allocator() -> (u64, u64) {
    let (mut commit, mut peak) = (0usize, 0usize);
    let null = std::ptr::null_mut();
    // SAFETY: mi_process_info writes one usize to each non-null out-parameter and
    // ignores the null ones; both pointers point to live locals.
    unsafe { mi_process_info(null, null, null, null, null, &mut commit, &mut peak, null) };
    (commit as u64, peak as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tests that allocate through `CountingAlloc` move their thread's count into
    /// the process-wide one, which `counting_follows_alloc_realloc_free` reads: one
    /// at a time.
    static COUNTING: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn counting_follows_alloc_realloc_free() {
        let _one = COUNTING.lock().unwrap_or_else(|e| e.into_inner());
        let a = CountingAlloc;
        let before_local = LOCAL.with(|c| c.get()) + USED.load(Ordering::Relaxed);
        let total = || LOCAL.with(|c| c.get()) + USED.load(Ordering::Relaxed);
        unsafe {
            let l = Layout::from_size_align(100, 8).unwrap();
            let p = a.alloc(l);
            assert_eq!(total() - before_local, 100);
            let p = a.realloc(p, l, 300_000);
            assert_eq!(total() - before_local, 300_000);
            a.dealloc(p, Layout::from_size_align(300_000, 8).unwrap());
            assert_eq!(total() - before_local, 0);
        }
    }

    #[test]
    fn blocks_have_the_alignment_asked_for() {
        // Layouts up to 16-byte alignment take `mi_malloc` / `mi_realloc`, wider ones
        // `mi_malloc_aligned`; sizes need not be multiples of the alignment (mlua asks
        // for any size at 16). Enough of each that its page's first free list runs dry
        // and later blocks come from freed ones.
        let _one = COUNTING.lock().unwrap_or_else(|e| e.into_inner());
        let a = CountingAlloc;
        for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
            for size in [1, 7, 8, 24, 40, 48, 72, 100, 1000, 1500, 5000, 70_000] {
                let Ok(l) = Layout::from_size_align(size, align) else {
                    continue;
                };
                let mut held: Vec<(*mut u8, Layout)> = Vec::new();
                for round in 0..600usize {
                    // SAFETY: every layout has a non-zero size; each block is written
                    // within its size, resized and freed with its current layout, once.
                    unsafe {
                        let zeroed = round % 2 == 0;
                        let p = if zeroed {
                            a.alloc_zeroed(l)
                        } else {
                            a.alloc(l)
                        };
                        assert!(!p.is_null());
                        assert_eq!(p as usize % align, 0, "size {size} align {align}");
                        if zeroed {
                            assert!(std::slice::from_raw_parts(p, size).iter().all(|&b| b == 0));
                        }
                        p.write_bytes(round as u8, size);
                        held.push((p, l));
                        if round % 5 == 0 {
                            let (p, old) = held.swap_remove(0);
                            let new_size = [size / 2 + 1, size * 3 + 5][round % 2];
                            let first = *p;
                            let q = a.realloc(p, old, new_size);
                            assert!(!q.is_null());
                            assert_eq!(q as usize % align, 0, "realloc {size} align {align}");
                            assert_eq!(*q, first);
                            held.push((q, Layout::from_size_align(new_size, align).unwrap()));
                        }
                        if round % 3 == 0 {
                            let (p, l) = held.swap_remove(0);
                            a.dealloc(p, l);
                        }
                    }
                }
                for (p, l) in held {
                    // SAFETY: allocated above with `l`, not freed yet.
                    unsafe { a.dealloc(p, l) };
                }
            }
        }
    }

    #[test]
    fn allocator_reports_committed_memory() {
        let (commit, peak) = allocator();
        assert!(peak >= commit);
    }

    /// Cost of the counter: 10M malloc/free pairs with and without it. Prints the
    /// figures; run with `--ignored --nocapture` (in release for meaningful numbers).
    #[test]
    #[ignore]
    fn alloc_cost() {
        let l = Layout::from_size_align(64, 8).unwrap();
        let n = 10_000_000u32;
        let time = |f: &dyn Fn()| {
            let t = std::time::Instant::now();
            f();
            t.elapsed().as_nanos() as f64 / n as f64
        };
        let plain = time(&|| {
            for _ in 0..n {
                unsafe {
                    let p = mimalloc::MiMalloc.alloc(std::hint::black_box(l));
                    mimalloc::MiMalloc.dealloc(std::hint::black_box(p), l);
                }
            }
        });
        let counted = time(&|| {
            for _ in 0..n {
                unsafe {
                    let p = CountingAlloc.alloc(std::hint::black_box(l));
                    CountingAlloc.dealloc(std::hint::black_box(p), l);
                }
            }
        });
        println!("mimalloc {plain:.2} ns/pair, counted {counted:.2} ns/pair");
    }
}
