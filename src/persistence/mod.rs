//! Persistence: RDB snapshots in Redis's file format, per-shard AOF, DUMP / RESTORE.
//!
//! # The plan
//! - **Format** (`rdb`): Redis's RDB byte format, one encoder and one decoder shared by
//!   snapshots, AOF bases and DUMP / RESTORE payloads. Write version 10 (Redis 7.0),
//!   read every version up to 12. Our listpacks and intsets are Redis's bytes, so most
//!   values are written and read as one blob.
//! - **Snapshots without fork** (`snapshot`): a snapshot starts on every shard in the
//!   same instant (one multi-shard transaction takes all shard locks, starts a cursor on
//!   each shard, and releases), so the file is a point-in-time image across cores. Each
//!   shard then serializes its own keys between requests with a SCAN-style cursor over
//!   its dicts. An entry about to be read for writing, overwritten or deleted that the
//!   cursor has not reached yet is serialized first and stamped with the snapshot's
//!   epoch (entry-level copy-on-write); the cursor skips stamped entries, and entries
//!   created after the start are stamped too. So the extra memory is the bytes waiting
//!   to be written, never a copy of the data set.
//! - **Files** (`save`): the shards' chunks flow to one writer thread, which writes the
//!   header, each chunk behind a SELECTDB opcode, EOF and the CRC64, to a temp file that
//!   is fsynced and renamed. SAVE, BGSAVE, save points, SHUTDOWN and DEBUG RELOAD all go
//!   through it.
//! - **Loading** (`load`): at start, AOF when `appendonly yes`, else the RDB file; a
//!   decoder thread sends each key to the shard that owns its slot now, so a different
//!   `threads` loses nothing. Clients get `-LOADING` meanwhile.
//! - **AOF** (`aof`): see its module comment.
//!
//! # Where it sits
//! Above the runtime: persistence drives the shards through `runtime::Shards` and its
//! transactions, and `crate::server` starts its tasks (the save drivers, loading, the
//! save points and automatic rewrites). The runtime meets it only through the hooks of
//! `runtime::durability`, which [`Persistence`] implements; that object is also where
//! the process-wide state lives, reached with [`of`].

pub mod aof;
pub mod digest;
pub mod load;
pub mod rdb;
pub mod save;
pub mod shutdown;
pub mod snapshot;

pub use shutdown::shutdown;

use crate::config::Config;
use crate::protocol::Reply;
use crate::runtime::durability::{Durability, Lanes, Wait};
use crate::runtime::hop::ServerInfo;
use crate::shard::Shard;

/// Process-wide persistence state, installed in `ServerInfo` at start as its
/// [`Durability`].
#[derive(Default)]
pub struct Persistence {
    /// Snapshots: saves in progress, last save, INFO persistence's RDB fields.
    pub save: save::Status,
    /// The AOF: the manifest, the shards' streams, rewrites.
    pub aof: aof::Global,
    /// A shutdown waiting for replicas.
    pub shutdown: shutdown::State,
}

/// `server`'s persistence state.
pub fn of(server: &ServerInfo) -> &Persistence {
    server
        .durability
        .as_any()
        .downcast_ref()
        .expect("the server's durability is persistence's (installed at start)")
}

impl Durability for Persistence {
    fn writes_refused(&self, config: &Config) -> Option<Reply> {
        if self.save.writes_refused(config) {
            return Some(save::misconf());
        }
        aof::write_error(&self.aof).map(|why| crate::commands::errors::misconf(&why))
    }
    fn durable(&self, lanes: Lanes, conclusions: u64) -> Option<Wait> {
        aof::durable(&self.aof, lanes, conclusions)
    }
    fn propagating(&self) -> bool {
        aof::enabled(&self.aof)
    }
    fn cron(&self, shard: &mut Shard) {
        aof::cron(shard);
        self.save
            .publish_dirty(shard.id, shard.nshards, shard.dirty());
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
