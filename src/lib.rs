//! Shardis: a Redis-compatible server with one shard per core. See DESIGN.md in the
//! team's shared folder for the architecture; each module's doc comment says what it owns.

pub mod acl;
pub mod atomic_file;
pub mod client;
pub mod clock;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod lazyfree;
pub mod log;
pub mod memory;
pub mod notify;
pub mod persistence;
pub mod protocol;
pub mod replication;
pub mod runtime;
pub mod scripting;
pub mod sentinel;
pub mod server;
pub mod shard;
pub mod storage;
pub mod supervise;
pub mod tracking;
