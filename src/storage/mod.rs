//! Shard-local data: the dict, compact byte strings, values, the per-db keyspace, and
//! the collection encodings (listpack, quicklist, intset, skiplist, HyperLogLog,
//! geohash) with the types built on them.
//!
//! Owns: plain data structures with no knowledge of commands, clients, cores or
//! persistence (a running snapshot reaches the keyspace through the [`db::BeforeWrite`]
//! hook defined here); it imports only the protocol's number parsing, the encoding
//! limits of the config and the clock. The one
//! idea to hold: everything here is touched by exactly one thread (its shard), so there
//! are no locks, and no operation may take time proportional to the keyspace (the dict
//! grows and shrinks incrementally; expiry samples instead of scanning).

pub mod access;
pub mod bits;
pub mod compact;
pub mod db;
pub mod dict;
pub mod geohash;
pub mod glob;
pub mod hash;
pub mod hll;
pub mod intset;
pub mod list;
pub mod listpack;
pub mod long_double;
pub mod quicklist;
pub mod set;
pub mod skiplist;
pub mod stream;
pub mod value;
pub mod zset;

pub use compact::CompactBytes;

/// The bytes mimalloc hands out for a request of `n` (its size classes: multiples of
/// 8 up to 64, then four classes per power of two), for memory estimates.
pub fn alloc_size(n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    if n <= 64 {
        return n.div_ceil(8) * 8;
    }
    let step = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros()).saturating_sub(2);
    n.div_ceil(step) * step
}

/// The mean of `f` over the first `samples` items of `items` (0: all of them).
pub fn sampled_mean<I: Iterator>(items: I, samples: usize, f: impl Fn(I::Item) -> usize) -> usize {
    let take = if samples == 0 { usize::MAX } else { samples };
    let (n, sum) = items.take(take).fold((0, 0), |(n, s), x| (n + 1, s + f(x)));
    sum.checked_div(n).unwrap_or(0)
}
pub use db::Db;
pub use dict::Dict;
pub use value::{StrValue, Value};
