//! Replication, Redis's PSYNC protocol both ways: a redis-server replica can follow a
//! Shardis master, and Shardis can follow a redis-server (or Shardis) master.
//!
//! # The plan
//! - **One stream from many shards** (`stream`). Every shard's propagation hook
//!   (`shard::propagation`) has a [`stream::Feed`] attached once a replica first
//!   connects. It encodes each unit (a command's records, a single-shard EXEC block, a
//!   multi-shard transaction) as Redis's replication stream does (SELECT when the db
//!   changes, MULTI / EXEC around more than one record) and appends it, under one lock,
//!   to the process-wide [`stream::Stream`]: the backlog and the replicas' unsent bytes
//!   in one buffer, each replica reading from its own offset. The append is the
//!   offset's assignment: bytes get offsets in the order they enter the buffer.
//!
//!   Why any such interleaving gives the replica the master's data set: shards own
//!   disjoint keys, so units of different shards commute, and each shard appends its
//!   own units in the order they ran (the append happens on the shard's thread, as the
//!   command runs). A multi-shard transaction is appended once, as one MULTI / EXEC, by
//!   the first shard of its set that concludes it: every shard of the set is held by the
//!   transaction from before its first record until after that shard's own conclusion,
//!   so everything those shards ran before is already in the stream and nothing they
//!   run after can be yet. Server-wide writes (FLUSHALL, SWAPDB, FLUSHDB) are such
//!   transactions over every shard, so they are ordered against everything. The SELECT
//!   state belongs to the stream, not to a shard, so it is right whatever the
//!   interleaving.
//! - **Full sync** (`master`): one multi-shard step over every shard attaches the feeds
//!   (first time), starts the fork-free snapshot on each shard and notes the stream's
//!   offset, all while every shard is held: the snapshot is the data set at exactly that
//!   offset, and the replica reads the stream from there once the RDB is sent. The RDB
//!   goes to the replica as it is made (`$EOF:<mark>` transfer) when the replica says
//!   `capa eof` and `repl-diskless-sync` is on, else through a file in `dir` sent with
//!   its length.
//! - **Partial resync**: PSYNC with our replid (or replid2 up to `second_repl_offset`)
//!   and an offset still in the backlog gets `+CONTINUE` and the bytes from there.
//! - **Replica side** (`replica`): REPLICAOF starts a link task on the core that ran
//!   it. It connects, authenticates, handshakes, loads a full sync's RDB into the shards
//!   (routed by slot, as any load) and runs the master's stream through the ordinary
//!   dispatch path as a client flagged master (so multi-shard MULTI / EXEC blocks stay
//!   atomic, and writes pass `replica-read-only`), answering GETACK and sending REPLCONF
//!   ACK every second. The bytes it applies are appended to its own stream unchanged
//!   (the feeds ignore its shards' units while it is a replica), so its offsets are its
//!   master's and a sub-replica or a promoted sibling can resync partially.
//!
//! # What is not here yet
//! Listed in the README: each full sync makes its own snapshot (`repl-diskless-sync-delay`
//! and `-max-replicas` only time it, see `master`), `repl-diskless-load`.

pub mod failover;
pub mod master;
pub mod replica;
pub mod stream;

use crate::log;
use crate::runtime::hop::ServerInfo;
use crate::shard::propagation::Effect;
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// A random replication id: 40 hex digits.
pub fn new_replid() -> String {
    (0..40)
        .map(|_| format!("{:x}", rand::random::<u8>() & 15))
        .collect()
}

/// What this server is in replication.
#[derive(Clone, Debug, PartialEq)]
pub enum Role {
    Master,
    /// A replica of `host:port`.
    Replica {
        host: String,
        port: u16,
    },
}

/// The master link's state as INFO shows it (`master_link_status`, sync progress).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LinkState {
    /// Not connected: connecting, or waiting to try again (ROLE's `connect`).
    Connecting,
    /// Connected, before the master's answer to PSYNC (ROLE's `handshake`).
    Handshake,
    /// Receiving the master's RDB (ROLE's `sync`).
    Syncing,
    Up,
    Down,
}

/// Process-wide replication state, in `ServerInfo`.
pub struct State {
    inner: Mutex<stream::Stream>,
    /// Some feed is attached (the first replica came): appends are made.
    pub feeding: AtomicBool,
    /// True while this server is a replica: the feeds ignore the shards' units.
    pub is_replica: AtomicBool,
    pub sync_full: AtomicU64,
    pub sync_partial_ok: AtomicU64,
    pub sync_partial_err: AtomicU64,
    /// Bumped by each REPLICAOF: a link task whose generation is old stops.
    pub link_generation: AtomicU64,
    /// The link is applying a batch of its master's stream.
    pub applying: AtomicBool,
    /// INFO's `total_net_repl_input_bytes` (read from our master) and
    /// `total_net_repl_output_bytes` (written to our replicas).
    pub repl_input_bytes: AtomicU64,
    pub repl_output_bytes: AtomicU64,
}

impl Default for State {
    fn default() -> State {
        State {
            inner: Mutex::new(stream::Stream::new(new_replid())),
            feeding: AtomicBool::new(false),
            is_replica: AtomicBool::new(false),
            sync_full: AtomicU64::new(0),
            sync_partial_ok: AtomicU64::new(0),
            sync_partial_err: AtomicU64::new(0),
            link_generation: AtomicU64::new(0),
            applying: AtomicBool::new(false),
            repl_input_bytes: AtomicU64::new(0),
            repl_output_bytes: AtomicU64::new(0),
        }
    }
}

impl State {
    /// The stream and everything else behind the one lock.
    pub fn lock(&self) -> MutexGuard<'_, stream::Stream> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `server`'s replication state.
pub fn of(server: &ServerInfo) -> &State {
    &server.replication
}

/// The id of the client that applies our master's stream (0: none).
static MASTER_CLIENT: AtomicU64 = AtomicU64::new(0);

/// Name `id` the client applying our master's stream (the link task, as it starts).
pub fn set_master_client(id: u64) {
    MASTER_CLIENT.store(id, Ordering::Relaxed);
}

/// The link task of client `id` ended: no master client until the next one starts.
pub fn clear_master_client(id: u64) {
    let _ = MASTER_CLIENT.compare_exchange(id, 0, Ordering::Relaxed, Ordering::Relaxed);
}

/// True if client `id` applies our master's stream, or replays the AOF at start: its
/// writes are the master's, for which no key has expired (the master sends the DELs).
pub fn obeyed(id: u64) -> bool {
    id == crate::client::REPLAY_CLIENT || (id != 0 && MASTER_CLIENT.load(Ordering::Relaxed) == id)
}

/// True if this server is a replica now.
pub fn is_replica(server: &ServerInfo) -> bool {
    server.replication.is_replica.load(Ordering::Relaxed)
}

/// Propagate a PUBLISH / SPUBLISH to the replicas (Redis does, so that their
/// subscribers hear it too); nothing while nobody is fed or this server is a replica.
pub fn propagate_publish(server: &ServerInfo, db: usize, argv: &[Bytes]) {
    let st = of(server);
    if !st.feeding.load(Ordering::Relaxed) || st.is_replica.load(Ordering::Relaxed) {
        return;
    }
    // In the publisher's db, as Redis propagates it (a SELECT first if the stream is
    // elsewhere), though the message belongs to no db.
    let effect = crate::shard::propagation::Effect::new(db, argv.to_vec());
    st.lock().append_effects(&[effect]);
}

/// `-NOREPLICAS` applies: `min-replicas-to-write` is set and fewer replicas than that
/// acknowledged within `min-replicas-max-lag` seconds (Redis's `checkGoodReplicasStatus`).
pub fn too_few_good_replicas(server: &ServerInfo, cfg: &crate::config::Config) -> bool {
    let wanted = cfg.min_replicas_to_write;
    if wanted <= 0 || is_replica(server) {
        return false;
    }
    good_replicas(&of(server).lock(), cfg).is_some_and(|good| (good as i64) < wanted)
}

/// With `min-replicas-to-write` and `min-replicas-max-lag` both set, the replicas
/// online that acknowledged within the lag (INFO's `min_slaves_good_slaves`).
fn good_replicas(s: &stream::Stream, cfg: &crate::config::Config) -> Option<usize> {
    let max_lag = cfg.get_int("min-replicas-max-lag");
    if cfg.min_replicas_to_write <= 0 || max_lag <= 0 {
        return None;
    }
    let now = crate::clock::now_ms();
    let good = s
        .readers
        .iter()
        .filter(|r| {
            r.state == stream::ReaderState::Online
                && !r.rdb_only
                && now.saturating_sub(r.ack_ms) / 1000 <= max_lag as u64
        })
        .count();
    Some(good)
}

/// At start, the replication id and offset an RDB file was saved at (Redis's `rsi`
/// restore), so that a replica that followed us, or the master we followed, can
/// continue partially; and the db the master's stream had selected, where a continued
/// link starts. A replica (`replicaof` set) goes on in that history; a master starts a
/// new one at its offset and keeps the file's as its previous one (`master_replid2`,
/// `second_repl_offset`), as Redis's master does, so its replicas continue through it.
pub fn restore_history(server: &ServerInfo, replid: String, offset: u64, db: usize, master: bool) {
    let mut s = of(server).lock();
    s.master_db = db;
    if master {
        s.replid2 = replid;
        s.second_offset = offset as i64 + 1;
    } else {
        s.replid = replid;
    }
    s.end = offset;
    s.data_end = offset;
    log::log(&format!(
        "Restored the replication history from the RDB file: {}:{offset}",
        s.replid
    ));
}

/// At start, after [`restore_history`] on a master: a DEL (UNLINK under
/// `lazyfree-lazy-expire`, as for any expired key) for each key the load dropped as
/// expired, after the file's offset, each in its db, as
/// Redis's master feeds its backlog while it loads. When they were more than the
/// backlog holds, the file's history is forgotten instead, so a replica that asks to
/// continue it syncs fully, as Redis's overflowing backlog makes it.
pub fn expired_at_load(server: &ServerInfo, expired: &crate::persistence::load::ExpiredAtLoad) {
    if expired.keys.is_empty() && !expired.overflowed {
        return;
    }
    let del: &'static [u8] = if crate::lazyfree::lazy_expire() {
        b"UNLINK"
    } else {
        b"DEL"
    };
    let mut s = of(server).lock();
    s.force_select();
    for (db, key) in &expired.keys {
        let effect = Effect::new(*db, vec![Bytes::from_static(del), key.clone()]);
        s.append_effects(std::slice::from_ref(&effect));
    }
    if expired.overflowed {
        s.replid2 = "0".repeat(40);
        s.second_offset = -1;
    }
    log::log(&format!(
        "{} DEL(s) of keys expired at load fed to the replication backlog{}",
        expired.keys.len(),
        if expired.overflowed {
            "; more expired than the backlog holds: replicas will sync fully"
        } else {
            ""
        }
    ));
}

/// The aux fields a snapshot taken now carries (`repl-stream-db`, `repl-id`,
/// `repl-offset`), Redis's `rdbPopulateSaveInfo`: only once there is a history to
/// continue (a replica, or a master that fed replicas). Call with every shard held, so
/// the offset is the snapshot's.
pub fn save_info(server: &ServerInfo) -> Vec<(String, String)> {
    let s = of(server).lock();
    if s.role == Role::Master && !s.backlog_active {
        return Vec::new();
    }
    vec![
        ("repl-stream-db".into(), s.stream_db().to_string()),
        ("repl-id".into(), s.replid.clone()),
        ("repl-offset".into(), s.end.to_string()),
    ]
}

/// How old a replica's data may be, in ms, as Redis's cluster failover judges it:
/// since the last byte from the master while the link is up, else since the link
/// went down (whole seconds, as Redis counts them); 0 on a master.
pub fn data_age_ms(server: &ServerInfo) -> u64 {
    let s = of(server).lock();
    if !matches!(s.role, Role::Replica { .. }) {
        return 0;
    }
    let now = crate::clock::now_ms() / 1000;
    let since = if s.link == LinkState::Up {
        s.last_io_ms
    } else {
        s.down_since_ms
    } / 1000;
    now.saturating_sub(since) * 1000
}

/// True if this server is a replica whose link to its master is up.
pub fn link_up(server: &ServerInfo) -> bool {
    server.replication.lock().link == LinkState::Up
}

/// Replicas connected now, whatever their state (INFO's `connected_slaves`).
pub fn replica_count(server: &ServerInfo) -> usize {
    of(server)
        .lock()
        .readers
        .iter()
        .filter(|r| !r.rdb_only)
        .count()
}

/// INFO replication, Redis 7.0's fields in its order.
pub fn info_fields(server: &ServerInfo) -> Vec<(String, String)> {
    let st = of(server);
    let s = st.lock();
    let now = crate::clock::now_ms();
    let mut f: Vec<(String, String)> = Vec::new();
    let mut put = |k: &str, v: String| f.push((k.to_string(), v));
    match &s.role {
        Role::Master => put("role", "master".into()),
        Role::Replica { host, port } => {
            put("role", "slave".into());
            put("master_host", host.clone());
            put("master_port", port.to_string());
            let up = s.link == LinkState::Up;
            put("master_link_status", if up { "up" } else { "down" }.into());
            let io = if s.last_io_ms == 0 {
                -1
            } else {
                (now.saturating_sub(s.last_io_ms) / 1000) as i64
            };
            put("master_last_io_seconds_ago", io.to_string());
            let syncing = s.link == LinkState::Syncing;
            put("master_sync_in_progress", (syncing as u8).to_string());
            put("slave_read_repl_offset", s.read_offset.to_string());
            put("slave_repl_offset", s.end.to_string());
            if !up {
                let since = if s.down_since_ms == 0 {
                    -1
                } else {
                    (now.saturating_sub(s.down_since_ms) / 1000) as i64
                };
                put("master_link_down_since_seconds", since.to_string());
            }
            // Read live, as Redis does: Sentinel picks whom to promote by these, and
            // `CONFIG SET replica-priority 0` must keep this replica out at once.
            let cfg = server.config.current();
            put(
                "slave_priority",
                cfg.get_int("replica-priority").to_string(),
            );
            let read_only = cfg.get_bool("replica-read-only");
            put("slave_read_only", (read_only as u8).to_string());
            let announced = cfg.get_bool("replica-announced");
            put("replica_announced", (announced as u8).to_string());
        }
    }
    let online: Vec<_> = s.readers.iter().filter(|r| !r.rdb_only).collect();
    put("connected_slaves", online.len().to_string());
    if let Some(good) = good_replicas(&s, &server.config.current()) {
        put("min_slaves_good_slaves", good.to_string());
    }
    for (i, r) in online.iter().enumerate() {
        let lag = (now.saturating_sub(r.ack_ms) / 1000).to_string();
        put(
            &format!("slave{i}"),
            format!(
                "ip={},port={},state={},offset={},lag={}",
                r.ip,
                r.port,
                r.state.name(),
                r.ack,
                lag
            ),
        );
    }
    put(
        "master_failover_state",
        failover::state_name(&s.failover).into(),
    );
    put("master_replid", s.replid.clone());
    put("master_replid2", s.replid2.clone());
    put("master_repl_offset", s.end.to_string());
    put("second_repl_offset", s.second_offset.to_string());
    put("repl_backlog_active", (s.backlog_active as u8).to_string());
    put("repl_backlog_size", s.backlog_size.to_string());
    put("repl_backlog_first_byte_offset", s.first_byte().to_string());
    put("repl_backlog_histlen", s.histlen().to_string());
    f
}
