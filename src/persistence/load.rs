//! Loading at start, and DEBUG RELOAD's load: the RDB file, decoded on its own thread,
//! each key sent to the shard that owns its slot *now* (so a dump made with another
//! `threads` value, or by Redis, loads whole).
//!
//! Keys whose TTL has passed are dropped, as a master does; at start a master also
//! names them to the replication stream as DELs (see [`ExpiredAtLoad`]). Entries
//! travel in batches per shard through a bounded channel and a bounded number of hops
//! in flight, so the decoder cannot run ahead of the shards by more than a few batches.

use crate::clock::now_ms;
use crate::log::log;
use crate::persistence::rdb::decode::{Item, Reader};
use crate::runtime::Shards;
use crate::shard::Shard;
use crate::storage::db::lru_clock;
use crate::storage::Value;
use bytes::Bytes;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Entries per batch sent to a shard.
const BATCH: usize = 512;
/// Batches waiting between the decoder and the shards.
const IN_FLIGHT: usize = 32;

/// What the decoder thread reports: keys loaded, keys expired, the replication
/// history, the function libraries' code, the expired keys kept.
type Decoded = (
    u64,
    u64,
    Option<(String, u64, usize)>,
    Vec<Bytes>,
    ExpiredAtLoad,
);

/// The keys a master's start-up load dropped as expired, for their DELs to follow the
/// file's offset in the replication stream (Redis's `rdbLoad` with
/// `RDBFLAGS_FEED_REPL`): a replica that continues partially after the restart learns
/// that they are gone, as it never expires keys itself.
///
/// Kept up to about `room` bytes of DELs, the backlog's size: past it the DELs would
/// push the file's offset out of the backlog anyway, so none is kept and `overflowed`
/// says that a replica must sync fully.
#[derive(Clone, Debug, Default)]
pub struct ExpiredAtLoad {
    pub keys: Vec<(usize, Bytes)>,
    pub overflowed: bool,
    /// Bytes of DELs still to keep; None: keep nothing.
    room: Option<usize>,
}

impl ExpiredAtLoad {
    /// Keep expired keys for up to `room` bytes of DELs.
    pub fn keeping(room: usize) -> ExpiredAtLoad {
        ExpiredAtLoad {
            room: Some(room),
            ..Default::default()
        }
    }

    fn add(&mut self, db: usize, key: Bytes) {
        let Some(room) = &mut self.room else {
            return;
        };
        // `*2 $3 DEL $n key`, give or take a SELECT.
        let cost = 24 + key.len();
        if self.overflowed || cost > *room {
            self.overflowed = true;
            self.keys = Vec::new();
            return;
        }
        *room -= cost;
        self.keys.push((db, key));
    }
}

/// One key as loaded: (db, key, value, deadline, idle seconds).
type Loaded = (usize, Bytes, Value, Option<u64>, Option<u64>);

#[derive(Clone, Debug, Default)]
pub struct LoadStats {
    pub keys: u64,
    pub expired: u64,
    pub secs: f64,
    /// The replication history the file was saved at (`repl-id`, `repl-offset` aux
    /// fields) and the db its stream had last selected (`repl-stream-db`), if it names
    /// one.
    pub repl: Option<(String, u64, usize)>,
    /// The expired keys dropped, when the caller asked to keep them.
    pub expired_keys: ExpiredAtLoad,
}

/// Load the RDB file at `path` into the shards. With `merge`, a key already present is
/// replaced (DEBUG RELOAD MERGE), and so is a function library of the same name;
/// otherwise the shards are expected to be empty, and a library of a name already
/// loaded fails the load. A caller that starts afresh (a full sync, DEBUG RELOAD)
/// empties the keys and the functions first, as Redis's `emptyData`. `expired_keys`
/// keeps the keys dropped as expired (start-up as a master); pass
/// `ExpiredAtLoad::default()` to keep none.
pub async fn rdb_into_shards(
    shards: &Shards,
    path: &Path,
    merge: bool,
    mut expired_keys: ExpiredAtLoad,
) -> Result<LoadStats, String> {
    let started = Instant::now();
    let file = std::fs::File::open(path)
        .map_err(|e| format!("Cannot open the RDB file {}: {e}", path.display()))?;
    let limits = shards.local.borrow().config.encoding;
    let databases = shards.local.borrow().dbs.len();
    let nshards = shards.count();
    let slots = shards.slots.clone();
    let (tx, rx) = flume::bounded::<(usize, Vec<Loaded>)>(IN_FLIGHT);
    let name = path.display().to_string();
    let decoder = std::thread::Builder::new()
        .name("rdb-loader".into())
        .spawn(move || -> Result<Decoded, String> {
            let mut reader = Reader::new(std::io::BufReader::with_capacity(1 << 20, file), limits)
                .map_err(|e| format!("{name}: {e}"))?;
            let now = now_ms();
            let mut batches: Vec<Vec<Loaded>> = (0..nshards).map(|_| Vec::new()).collect();
            let (mut keys, mut expired) = (0u64, 0u64);
            let (mut repl_id, mut repl_offset, mut repl_db) = (None, None, 0);
            let mut libraries = Vec::new();
            while let Some(item) = reader.next().map_err(|e| format!("{name}: {e}"))? {
                match item {
                    Item::Entry { db, key, value, expire_ms, idle, .. } => {
                        if db >= databases {
                            return Err(format!("{name}: the file has keys in database {db}, but `databases` is {databases}"));
                        }
                        if matches!(expire_ms, Some(at) if at <= now) {
                            expired += 1;
                            expired_keys.add(db, key);
                            continue;
                        }
                        keys += 1;
                        let sid = slots.shard_of(&key);
                        batches[sid].push((db, key, value, expire_ms, idle));
                        if batches[sid].len() >= BATCH {
                            let b = std::mem::take(&mut batches[sid]);
                            if tx.send((sid, b)).is_err() {
                                return Err("loading was abandoned".into());
                            }
                        }
                    }
                    Item::Aux { key, value } if &key[..] == b"redis-ver" => {
                        log(&format!("Loading RDB produced by version {}", String::from_utf8_lossy(&value)));
                    }
                    Item::Aux { key, value } if &key[..] == b"repl-id" && value.len() == 40 => {
                        repl_id = Some(String::from_utf8_lossy(&value).into_owned());
                    }
                    Item::Aux { key, value } if &key[..] == b"repl-stream-db" => {
                        repl_db = std::str::from_utf8(&value).ok().and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
                    }
                    Item::Aux { key, value } if &key[..] == b"repl-offset" => {
                        repl_offset = std::str::from_utf8(&value).ok().and_then(|v| v.parse::<u64>().ok());
                    }
                    Item::Function(code) => libraries.push(code),
                    _ => {}
                }
            }
            for (sid, b) in batches.into_iter().enumerate() {
                if !b.is_empty() && tx.send((sid, b)).is_err() {
                    return Err("loading was abandoned".into());
                }
            }
            let repl = repl_id.zip(repl_offset).map(|(id, offset)| (id, offset, repl_db));
            Ok((keys, expired, repl, libraries, expired_keys))
        })
        .map_err(|e| format!("cannot start the RDB loader: {}", crate::log::strerror(&e)))?;
    let mut pending = std::collections::VecDeque::new();
    while let Ok((sid, batch)) = rx.recv_async().await {
        pending.push_back(shards.send_or_local(sid, move |s: &mut Shard| insert(s, batch)));
        if pending.len() >= IN_FLIGHT {
            if let Some(a) = pending.pop_front() {
                a.get().await;
            }
        }
    }
    for a in pending {
        a.get().await;
    }
    let (keys, expired, repl, libraries, expired_keys) = decoder
        .join()
        .map_err(|_| "the RDB loader failed".to_string())??;
    crate::scripting::functions::install(libraries, merge)?;
    let secs = started.elapsed().as_secs_f64();
    let st = &crate::persistence::of(&shards.server).save;
    st.last_load_keys_loaded.store(keys, Ordering::Relaxed);
    st.last_load_keys_expired.store(expired, Ordering::Relaxed);
    Ok(LoadStats {
        keys,
        expired,
        secs,
        repl,
        expired_keys,
    })
}

/// Decode the whole RDB file at `path` without keeping anything, on a helper thread:
/// Ok if it is well formed and its checksum holds (a replica checks its master's file
/// so before it drops its own data set for it).
pub async fn verify(shards: &Shards, path: &Path) -> Result<(), String> {
    let limits = shards.local.borrow().config.encoding;
    let path = path.to_path_buf();
    let (tx, rx) = flume::bounded(1);
    std::thread::Builder::new()
        .name("rdb-verify".into())
        .spawn(move || {
            let check = || -> Result<(), String> {
                let file = std::fs::File::open(&path).map_err(|e| e.to_string())?;
                let reader = std::io::BufReader::with_capacity(1 << 20, file);
                let mut r = Reader::new(reader, limits).map_err(|e| e.to_string())?;
                while r.next().map_err(|e| e.to_string())?.is_some() {}
                Ok(())
            };
            let _ = tx.send(check());
        })
        .map_err(|e| format!("cannot start the RDB check: {}", crate::log::strerror(&e)))?;
    rx.recv_async()
        .await
        .unwrap_or_else(|_| Err("the RDB check stopped".into()))
}

/// Store a batch on its shard. Loading is not a change: the shard's change counter is
/// left as it was (so `rdb_changes_since_last_save` reads 0 after a load), and no
/// keyspace event is raised (Redis's `dbAddRDBLoad`).
fn insert(s: &mut Shard, batch: Vec<Loaded>) {
    crate::notify::muted(|| insert_keys(s, batch));
}

fn insert_keys(s: &mut Shard, batch: Vec<Loaded>) {
    let clock = lru_clock();
    for (db, key, value, expire, idle) in batch {
        let db = &mut s.dbs[db];
        let dirty = db.dirty;
        db.set(&key, value, false);
        if let Some(at) = expire {
            db.set_expire(&key, at);
        }
        if let (Some(idle), Some(e)) = (idle, db.keys.get_mut(&key[..])) {
            e.lru = clock.wrapping_sub(idle.min(u32::MAX as u64) as u32);
        }
        db.dirty = dirty;
    }
}

/// At start: the AOF when `appendonly yes`, else the RDB file if there is one. Runs on
/// shard 0 while every core already answers `-LOADING`. A file that cannot be loaded
/// stops the server, as Redis does, rather than start with part of the data.
pub async fn at_start(shards: &Shards) {
    let cfg = shards.local.borrow().config.clone();
    let started = Instant::now();
    let master = cfg.get("replicaof").is_none_or(str::is_empty);
    let result = if cfg.get_bool("appendonly") {
        crate::persistence::aof::load(shards).await.map(|_| None)
    } else {
        let path = super::save::rdb_path(&cfg);
        let keep = if master {
            ExpiredAtLoad::keeping(crate::replication::stream::backlog_size(&cfg))
        } else {
            ExpiredAtLoad::default()
        };
        if path.exists() {
            rdb_into_shards(shards, &path, false, keep).await.map(Some)
        } else {
            Ok(None)
        }
    };
    if let Ok(Some(LoadStats {
        repl: Some((id, offset, db)),
        expired_keys,
        ..
    })) = &result
    {
        // Continue the saved history: a replica's PSYNC (or a replica of ours) can
        // resume from here, as Redis's restart does.
        crate::replication::restore_history(&shards.server, id.clone(), *offset, *db, master);
        crate::replication::master::keep_backlog(shards).await;
        if master {
            crate::replication::expired_at_load(&shards.server, expired_keys);
        }
    }
    match result {
        Ok(Some(st)) => log(&format!(
            "Done loading RDB, keys loaded: {}, keys expired: {}.\n DB loaded from disk: {:.3} seconds ({:.0} keys/s)",
            st.keys,
            st.expired,
            st.secs,
            st.keys as f64 / st.secs.max(1e-9)
        )),
        Ok(None) => {
            if cfg.get_bool("appendonly") {
                log(&format!(
                    "DB loaded from append only file: {:.3} seconds",
                    started.elapsed().as_secs_f64()
                ));
            }
        }
        Err(e) => {
            log(&format!("Fatal error loading the DB: {e}. Exiting."));
            crate::runtime::backend::exit(1);
        }
    }
    shards.server.loading.store(false, Ordering::SeqCst);
}
