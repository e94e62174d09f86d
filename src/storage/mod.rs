//! Shard-local data: the dict, compact byte strings, values and the per-db keyspace.
//!
//! Owns: plain data structures with no knowledge of commands, clients or cores. The one
//! idea to hold: everything here is touched by exactly one thread (its shard), so there
//! are no locks, and no operation may take time proportional to the keyspace (the dict
//! grows and shrinks incrementally; expiry samples instead of scanning).

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
pub mod value;
pub mod zset;

pub use compact::CompactBytes;
pub use db::Db;
pub use dict::Dict;
pub use value::{StrValue, Value};
