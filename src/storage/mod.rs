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
pub mod value;
pub mod zset;

pub use compact::CompactBytes;
pub use db::Db;
pub use dict::Dict;
pub use value::{StrValue, Value};
