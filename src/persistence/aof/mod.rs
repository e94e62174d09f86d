//! The append-only file: every shard logs the writes it applies, in RESP, to its own
//! stream of files in `dir/appenddirname/`, listed by one manifest.
//!
//! # The plan, and why
//! - **Files** (`manifest`): per shard a base and increments, as Redis 7's multi-part
//!   AOF, plus a generation number: a restart with another `threads` value starts a
//!   new generation (the old one is replayed first), a rewrite replaces every
//!   generation by one. The manifest is replaced atomically; a manifest naming a
//!   missing file, or one that does not parse, refuses the start naming the file.
//! - **Records**: the AOF is a consumer ([`AofFeed`]) of the shard's propagation hook
//!   (`shard::propagation`), which the call path (`runtime::call`) feeds after a
//!   command whose run changed data, in the forms Redis 7.0 propagates
//!   (`commands::propagate`); it encodes them in RESP (`record`), with `SELECT` when
//!   the db changes. Keys deleted by expiry are propagated as `DEL`s before the next
//!   record, as Redis does.
//! - **Durability** (`writer`): the shard appends to a buffer that goes to its file
//!   once per loop turn (written by the shard's thread under `everysec` and `no`, by
//!   the lane's writer thread under `always`, which fsyncs too), so the event loop
//!   never waits for an fsync. A connection writes a batch's replies only once the
//!   streams of the shards whose data they may show (`runtime::durability::Lanes`:
//!   one shard's for a read of single-shard commands, every shard's otherwise) are
//!   durable up to where they were when the batch's commands were done (so reads wait
//!   too, and no client ever sees a write that a crash could undo); one fsync covers
//!   everyone who appended meanwhile (group commit). One stream is enough only while
//!   every multi-shard transaction is known durable on every stream (see [`durable`]).
//!   When nothing is pending the check costs two atomic loads per stream waited for.
//! - **Transactions**: an EXEC confined to one shard is logged as `MULTI` ... `EXEC`
//!   (a torn tail drops the whole block). A multi-shard transaction logs its records,
//!   whichever shard runs them, into one log it carries (`TxLog`), in the order they
//!   ran. When it ends (`Tx::finish`), every shard of its set (the shards it wrote,
//!   and every shard whose keys a gathered or server-wide command read) appends
//!   `MULTI`, the records (on the highest shard of the set only), `SHARDIS.TXEND <tag>
//!   <set>`, `EXEC`, and only then releases the transaction's claim there.
//!   Transactions on different keys run side by side, but their parts reach every
//!   shard in one order, the order their conclusions opened in (`Tx::finish`), so
//!   every stream meets them in that order. Work that reaches one of its keys on a
//!   shard comes after its part there, and its reply waits (see above, `concluding`)
//!   for every part to be appended and durable: a transaction that could be lost has
//!   no acknowledged successor on any shard. On load, a transaction whose part is
//!   missing on some shard of its set is cut from every shard at its start (with
//!   everything after it, which was not acknowledged), repeated until none is left
//!   (`load::complete_prefixes`). So a crash never replays half of one. Replay meets
//!   the streams of its set at the transaction and runs its records in their
//!   original order, so commands run over a gathered copy of keys (RENAME, SMOVE,
//!   SUNIONSTORE... across shards, logged as received) and server-wide writes
//!   (FLUSHALL, SWAPDB, logged once) see the same data again.
//! - **Loading** (`load`): each generation's shard streams are parsed, torn tails cut
//!   (`aof-load-truncated`), incomplete transactions cut, then merged in transaction
//!   order and replayed through `dispatch::run_batch` as one client, so every key goes
//!   to the shard owning it now. RDB-preamble bases go through
//!   `persistence::load::rdb_into_shards`.
//!
//! - **Rewrite** (`rewrite`): BGREWRITEAOF, the automatic rewrite by growth and
//!   `CONFIG SET appendonly`: new bases from per-shard snapshots, new increments
//!   switched to at one instant, the manifest replaced atomically.
//!
//! SORT ... STORE across shards (`runtime::sort`) logs its effect (`DEL` + `RPUSH`).

pub mod load;
pub mod manifest;
pub mod record;
pub mod rewrite;
pub mod writer;

pub use rewrite::{after_full_sync, appendonly_changed, auto_rewrite, bgrewriteaof};

use crate::client::REPLAY_CLIENT;
use crate::runtime::dispatch;
use crate::runtime::durability::{concluding, Lanes, Wait};
use crate::runtime::hop::ServerInfo;
use crate::runtime::Shards;
use crate::shard::propagation::{meant_for, Consumer, Effect, Unit, TO_AOF};
use crate::shard::Shard;
use bytes::Bytes;
use manifest::{Entry, FileType, Manifest};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use writer::{Fsync, Lane};

/// A shard's AOF: the consumer of its propagated effects that appends them to its
/// lane.
pub struct AofFeed {
    lane: Arc<Lane>,
    /// The db the stream's last SELECT named.
    selected: Option<usize>,
}

impl AofFeed {
    pub fn new(lane: Arc<Lane>) -> AofFeed {
        AofFeed {
            lane,
            selected: None,
        }
    }
    /// Continue the stream in `file` (a rewrite's switch); it starts with its own
    /// SELECT.
    /// The receiver hears once the writer has switched.
    pub fn switch(&mut self, file: std::fs::File) -> flume::Receiver<()> {
        self.selected = None;
        self.lane.switch(file)
    }
    /// Encode `effects` after `out`, with a SELECT whenever the db changes.
    fn encode(&mut self, out: &mut Vec<u8>, effects: &[Effect]) {
        for e in effects {
            record::select(&mut self.selected, out, e.db);
            record::encode_owned(out, &e.argv);
        }
    }
}

impl Consumer for AofFeed {
    fn apply(&mut self, unit: Unit<'_>) {
        let mut out = Vec::new();
        match unit {
            Unit::Command(effects) | Unit::Block(effects) => {
                let block = matches!(unit, Unit::Block(_));
                match &meant_for(effects, TO_AOF)[..] {
                    [] => {}
                    [one] if !block => self.encode(&mut out, std::slice::from_ref(one)),
                    // A torn tail drops the whole block; several records of one
                    // command are one block too (Redis 7.0 wraps them in MULTI / EXEC
                    // as well).
                    effects => {
                        // The first record's SELECT before MULTI, as Redis 7.0.
                        record::select(&mut self.selected, &mut out, effects[0].db);
                        record::encode(&mut out, &[b"MULTI"]);
                        self.encode(&mut out, effects);
                        record::encode(&mut out, &[b"EXEC"]);
                    }
                }
            }
            // Every shard of the set appends `MULTI`, the records if it is the
            // highest shard (so they replay in the order they ran), `SHARDIS.TXEND
            // <tag> <set>`, `EXEC`.
            Unit::Transaction {
                shard,
                id,
                set,
                effects,
            } => {
                if !set.contains(&shard) {
                    return;
                }
                record::encode(&mut out, &[b"MULTI"]);
                if set.last() == Some(&shard) {
                    self.selected = None;
                    self.encode(&mut out, &meant_for(effects, TO_AOF));
                    self.selected = None;
                }
                let set_text: Vec<String> = set.iter().map(|s| s.to_string()).collect();
                record::encode(
                    &mut out,
                    &[
                        load::TXEND,
                        tx_tag(id).as_bytes(),
                        set_text.join(",").as_bytes(),
                    ],
                );
                record::encode(&mut out, &[b"EXEC"]);
            }
        }
        if !out.is_empty() {
            self.lane.append(out);
        }
    }

    /// `-MISCONF` for a write while the file cannot be written, as Redis.
    fn refuses_writes(&self) -> Option<String> {
        if !self.lane.failed.load(Ordering::Relaxed) {
            return None;
        }
        Some(write_error_text(&self.lane))
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

/// Process-wide AOF state, in `ServerInfo`.
#[derive(Default)]
pub struct Global {
    lanes: RwLock<Vec<Arc<Lane>>>,
    enabled: AtomicBool,
    files: Mutex<Option<Files>>,
    last_write_error: AtomicBool,
    rewrites: AtomicU64,
    /// BGREWRITEAOF arrived while a BGSAVE ran: rewrite when it ends.
    rewrite_scheduled: AtomicBool,
    /// Start of the running rewrite (0: none).
    rewrite_started_ms: AtomicU64,
    /// The running rewrite is the one that turns the AOF on (Redis's
    /// AOF_WAIT_REWRITE with its child running): the files do not hold the data yet.
    initial_rewrite: AtomicBool,
    /// Some rewrite ran (else INFO says -1 for its time).
    rewrite_ran: AtomicBool,
    last_rewrite_secs: AtomicI64,
    last_rewrite_failed: AtomicBool,
    rewrite_failures: AtomicU64,
    /// When the last rewrite failed (automatic ones wait before retrying).
    failed_at_ms: AtomicU64,
    /// Bytes in the manifest's files other than the live increments.
    closed_size: AtomicU64,
    /// `aof_current_size` after the last rewrite or at start: growth counts from it.
    base_size: AtomicU64,
}

impl Global {
    /// Bytes in the AOF now: closed files plus what the lanes wrote to the live ones.
    fn current_size(&self) -> u64 {
        let lanes: Vec<Arc<Lane>> = self.lanes.read().map(|l| l.clone()).unwrap_or_default();
        let live: u64 = lanes
            .iter()
            .map(|l| l.written.load(Ordering::Relaxed))
            .sum();
        self.closed_size.load(Ordering::Relaxed) + live
    }
}

/// Where the AOF lives and what the manifest says now.
struct Files {
    dir: PathBuf,
    #[allow(dead_code)] // kept with the directory it names files in
    prefix: String,
    manifest: Manifest,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// This process's transaction tags are `<start ms>-<tx id>`: unique across restarts.
fn tx_tag(id: u64) -> String {
    static EPOCH: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    format!("{}-{id}", EPOCH.get_or_init(crate::clock::now_ms))
}

/// True while the AOF is on (multi-shard coordinators check it before logging).
pub fn enabled(global: &Global) -> bool {
    global.enabled.load(Ordering::Acquire)
}

/// True while the rewrite that turns the AOF on runs: SHUTDOWN refuses to stop then.
pub fn writing_initial(global: &Global) -> bool {
    global.initial_rewrite.load(Ordering::Acquire)
}

/// While the AOF is on and a shard's file cannot be written: the `-MISCONF` text
/// (after `MISCONF `) that refuses writes, as Redis's `writeCommandsDeniedByDiskError`.
/// One atomic load while every file is written.
pub fn write_error(global: &Global) -> Option<String> {
    if !writer::any_failing() || !enabled(global) {
        return None;
    }
    let lanes = global.lanes.read().ok()?;
    let failed = lanes.iter().find(|l| l.failed.load(Ordering::Relaxed))?;
    Some(write_error_text(failed))
}

fn write_error_text(lane: &Lane) -> String {
    format!("Errors writing to the AOF file: {}", lock(&lane.error))
}

/// Per-shard cron: follow `appendfsync`.
pub fn cron(shard: &mut Shard) {
    let policy = Fsync::parse(shard.config.get("appendfsync").unwrap_or("everysec"));
    let Some(feed) = shard.propagation.consumer_mut::<AofFeed>() else {
        return;
    };
    feed.lane.set_policy(policy);
}

// ---- Durability, on the connection -------------------------------------------------

/// What to await until the streams of `lanes` are durable up to where they are now
/// (fsynced with `appendfsync always`, written to the file otherwise); `None` when
/// they are there already. Asked after a batch ran, before its replies are written.
/// One shard's stream is enough only while every multi-shard transaction (of the
/// first `conclusions`) is known durable on every stream: loading cuts every stream
/// at one that is not (see the module comment), so until then all are waited for.
pub fn durable(global: &Global, lanes: Lanes, conclusions: u64) -> Option<Wait> {
    if !global.enabled.load(Ordering::Acquire) || lanes == Lanes::None {
        return None;
    }
    let only = match lanes {
        Lanes::One(s) if concluding::all_durable(conclusions) => Some(s),
        _ => None,
    };
    // `durable` is "fsynced" under `always` and "written" otherwise: like Redis, which
    // writes before it replies, a killed process loses no acknowledged write with
    // `everysec` or `no` either (only a machine crash can lose up to a second).
    // Every stream's position is taken now, in one pass under the lock; only the
    // streams still behind are kept (usually none: no allocation per batch).
    let behind = |lane: &Arc<Lane>| {
        let target = lane.appended.load(Ordering::Acquire);
        (lane.durable.load(Ordering::Acquire) < target).then(|| (lane.clone(), target))
    };
    let pending: Vec<(Arc<Lane>, u64)> = {
        let all = global.lanes.read().unwrap_or_else(|e| e.into_inner());
        match only {
            Some(s) => all.get(s).and_then(behind).into_iter().collect(),
            None => all.iter().filter_map(behind).collect(),
        }
    };
    if pending.is_empty() {
        if only.is_none() {
            concluding::durable_up_to(conclusions);
        }
        return None;
    }
    Some(Box::pin(async move {
        for (lane, target) in pending {
            std::future::poll_fn(|cx| {
                if lane.wait_for(target, cx.waker()) {
                    std::task::Poll::Pending
                } else {
                    std::task::Poll::Ready(())
                }
            })
            .await;
        }
        if only.is_none() {
            concluding::durable_up_to(conclusions);
        }
    }))
}

// ---- Start-up ----------------------------------------------------------------------

/// Where the AOF lives: its directory, the file name prefix (`appendfilename`) and the
/// manifest's name.
pub fn paths(cfg: &crate::config::Config) -> (PathBuf, String, String) {
    let prefix = cfg
        .get("appendfilename")
        .unwrap_or("appendonly.aof")
        .to_string();
    let dir = Path::new(&cfg.dir).join(cfg.get("appenddirname").unwrap_or("appendonlydir"));
    let mname = format!("{prefix}{}", manifest::NAME_SUFFIX);
    (dir, prefix, mname)
}

/// Load the AOF at start and open the shards' streams (see `load`'s comment). Runs on
/// shard 0 before clients are served. No manifest: an old single `appendonly.aof` is
/// moved into the directory as a base, else the data set starts empty.
pub async fn load(shards: &Shards) -> Result<(), String> {
    let cfg = shards.local.borrow().config.clone();
    let (dir, prefix, mname) = paths(&cfg);
    let mpath = dir.join(&mname);
    let started = std::time::Instant::now();
    let mut m = if mpath.exists() {
        let text = std::fs::read_to_string(&mpath)
            .map_err(|e| format!("Can't read the AOF manifest {}: {e}", mpath.display()))?;
        Manifest::parse(&text).map_err(|e| format!("{e} in {}", mpath.display()))?
    } else {
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("Can't create the AOF directory {}: {e}", dir.display()))?;
        adopt_old_file(&cfg.dir, &dir, &prefix)?
    };
    load::check_files(&dir, &m)?;
    let truncated_ok = cfg.get_bool("aof-load-truncated");
    let mut records = 0u64;
    for (gen, count) in m.generations() {
        let mut chains = Vec::with_capacity(count);
        for k in 0..count {
            let entries = m.chain(gen, k);
            let mut chain = load::read_chain(&dir, &entries)?;
            for base in &chain.bases_rdb {
                crate::persistence::load::rdb_into_shards(shards, base, true, Default::default())
                    .await?;
            }
            if let Some(t) = chain.torn.take() {
                let name = &entries[t.file].name;
                if !truncated_ok {
                    return Err(format!(
                        "Unexpected end of file reading the append only file {name}. You can: 1) Make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>. 2) Alternatively you can set the 'aof-load-truncated' configuration option to yes and restart the server."
                    ));
                }
                crate::log::log(&format!(
                    "!!! Warning: short read while loading the AOF file {name}!!!"
                ));
                crate::log::log(&format!(
                    "!!! Truncating the AOF incr file {name} at offset {} !!!",
                    t.offset
                ));
                load::truncate_at(&chain.files, (t.file, t.offset))
                    .map_err(|e| format!("Error truncating the AOF file {name}: {e}"))?;
                crate::log::log("AOF loaded anyway because aof-load-truncated is enabled");
            }
            chains.push(chain);
        }
        let txs: Vec<Vec<_>> = chains
            .iter()
            .map(|c| c.units.iter().map(|u| u.tx.clone()).collect())
            .collect();
        let keep = load::complete_prefixes(&txs);
        for (k, c) in chains.iter_mut().enumerate() {
            if keep[k] < c.units.len() {
                let at = c.units[keep[k]].at;
                crate::log::log(&format!(
                    "AOF of shard {k}: a multi-shard transaction was not complete on every shard; cutting {} at offset {} ({} record group(s) dropped)",
                    c.files[at.0].display(),
                    at.1,
                    c.units.len() - keep[k]
                ));
                load::truncate_at(&c.files, at)
                    .map_err(|e| format!("Error truncating {}: {e}", c.files[at.0].display()))?;
                c.units.truncate(keep[k]);
            }
        }
        let cmds = load::merge(chains.into_iter().map(|c| c.units).collect())?;
        records += cmds.len() as u64;
        replay(shards, cmds).await;
    }
    let secs = started.elapsed().as_secs_f64();
    if records > 0 {
        crate::log::log(&format!(
            "AOF loaded: {records} records in {secs:.3} seconds ({:.0} records/s)",
            records as f64 / secs.max(1e-9)
        ));
    }
    open_streams(shards, &dir, &prefix, &mname, &mut m).await?;
    rewrite::refresh_sizes(&crate::persistence::of(&shards.server).aof, true);
    crate::runtime::backend::spawn(auto_rewrite(shards.detached())).detach();
    Ok(())
}

/// No manifest: move an old single-file AOF (`dir/appendonly.aof`) in as a base.
fn adopt_old_file(data_dir: &str, dir: &Path, prefix: &str) -> Result<Manifest, String> {
    let old = Path::new(data_dir).join(prefix);
    if !old.is_file() {
        return Ok(Manifest::default());
    }
    let rdb = std::fs::read(&old)
        .map(|b| b.starts_with(b"REDIS"))
        .unwrap_or(false);
    let name = manifest::file_name(prefix, 0, 1, FileType::Base, rdb);
    std::fs::rename(&old, dir.join(&name))
        .map_err(|e| format!("Can't move {} into {}: {e}", old.display(), dir.display()))?;
    crate::log::log(&format!(
        "Successfully migrated an old-style AOF into the AOF directory as {name}"
    ));
    Ok(Manifest {
        files: vec![Entry {
            name,
            seq: 1,
            kind: FileType::Base,
            shard: 0,
            shards: 1,
            gen: 1,
        }],
    })
}

/// Replay loaded records as one client would send them.
async fn replay(shards: &Shards, cmds: Vec<(usize, Vec<Bytes>)>) {
    let client = replay_client(shards);
    let mut db = usize::MAX;
    let mut batch: Vec<Vec<Bytes>> = Vec::with_capacity(1024);
    let mut it = cmds.into_iter().peekable();
    while it.peek().is_some() {
        for (d, argv) in it.by_ref() {
            if d != db {
                batch.push(vec![
                    Bytes::from_static(b"SELECT"),
                    Bytes::from(d.to_string()),
                ]);
                db = d;
            }
            batch.push(argv);
            if batch.len() >= 1024 {
                break;
            }
        }
        let requests = std::mem::take(&mut batch);
        let names: Vec<Bytes> = requests.iter().map(|a| a[0].clone()).collect();
        let out = dispatch::run_batch_unmonitored(&client, shards, requests).await;
        dispatch::report_unexpected_errors(shards, dispatch::Obeyed::Aof, &names, &out.replies);
    }
}

fn replay_client(shards: &Shards) -> crate::client::ClientRef {
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], 0).into();
    let mut c = crate::client::Client::new(REPLAY_CLIENT, addr, addr, -1, shards.local_id);
    c.databases = shards.local.borrow().config.databases;
    c.authenticated = true;
    std::rc::Rc::new(std::cell::RefCell::new(c))
}

/// Open every shard's increment (the last one of the last generation when it was
/// written by as many shards as now, else a new generation), write the manifest,
/// start the writer threads and attach the lanes to the shards.
async fn open_streams(
    shards: &Shards,
    dir: &Path,
    prefix: &str,
    mname: &str,
    m: &mut Manifest,
) -> Result<(), String> {
    let n = shards.count();
    let cfg = shards.local.borrow().config.clone();
    let policy = Fsync::parse(cfg.get("appendfsync").unwrap_or("everysec"));
    let last = m.last_gen();
    let reuse = matches!(last, Some((_, c)) if c == n);
    let gen = match last {
        Some((g, _)) if reuse => g,
        Some((g, _)) => g + 1,
        None => 1,
    };
    let mut next_seq = m.max_seq() + 1;
    let mut lanes = Vec::with_capacity(n);
    for k in 0..n {
        let existing = if reuse {
            m.chain(gen, k)
                .into_iter()
                .rfind(|e| e.kind == FileType::Incr)
                .cloned()
        } else {
            None
        };
        let entry = match existing {
            Some(e) => e,
            None => {
                let e = Entry {
                    name: manifest::file_name(prefix, k, next_seq, FileType::Incr, false),
                    seq: next_seq,
                    kind: FileType::Incr,
                    shard: k,
                    shards: n,
                    gen,
                };
                next_seq += 1;
                crate::log::log(&format!(
                    "Creating AOF incr file {} on server start",
                    e.name
                ));
                m.files.push(e.clone());
                e
            }
        };
        let path = dir.join(&entry.name);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("Can't open the append-only file {}: {e}", path.display()))?;
        let size = file.metadata().map(|md| md.len()).unwrap_or(0);
        let lane = Lane::start(k, file, size, policy).map_err(|e| {
            format!(
                "Can't start the AOF writer thread: {}",
                crate::log::strerror(&e)
            )
        })?;
        lanes.push(lane);
    }
    m.write_atomic(dir, mname)
        .map_err(|e| format!("Can't write the AOF manifest in {}: {e}", dir.display()))?;
    let g = &crate::persistence::of(&shards.server).aof;
    *g.lanes.write().unwrap_or_else(|e| e.into_inner()) = lanes.clone();
    g.enabled.store(true, Ordering::Release);
    *lock(&g.files) = Some(Files {
        dir: dir.to_path_buf(),
        prefix: prefix.to_string(),
        manifest: m.clone(),
    });
    let lanes = Arc::new(lanes);
    shards
        .all(move |s: &mut Shard| {
            s.attach(Box::new(AofFeed::new(lanes[s.id].clone())));
        })
        .await;
    Ok(())
}

/// Bytes appended to the shards' AOF streams that their writers have not made durable
/// yet: INFO's `aof_buffer_length`, and its `mem_aof_buffer` (0 with the AOF off, as
/// Redis; Redis reports its buffer's allocation, which keeps up to 4 KiB once used).
pub fn buffer_memory(server: &ServerInfo) -> u64 {
    let g = &crate::persistence::of(server).aof;
    if !g.enabled.load(Ordering::Relaxed) {
        return 0;
    }
    let lanes = g.lanes.read().unwrap_or_else(|e| e.into_inner());
    lanes
        .iter()
        .map(|l| {
            let appended = l.appended.load(Ordering::Relaxed);
            appended - l.durable.load(Ordering::Relaxed).min(appended)
        })
        .sum()
}

/// INFO persistence's AOF fields, with Redis's names.
pub fn info_fields(server: &ServerInfo) -> Vec<(&'static str, String)> {
    let g = &crate::persistence::of(server).aof;
    // As Redis's `aof_state != AOF_OFF`: on from CONFIG SET appendonly yes, while the
    // rewrite that starts it runs (or waits), off from CONFIG SET appendonly no.
    let enabled = server.config.current().get_bool("appendonly");
    let lanes: Vec<Arc<Lane>> = g.lanes.read().map(|l| l.clone()).unwrap_or_default();
    let failed = lanes.iter().any(|l| l.failed.load(Ordering::Relaxed));
    if failed {
        g.last_write_error.store(true, Ordering::Relaxed);
    }
    let started = g.rewrite_started_ms.load(Ordering::Relaxed);
    let last_time = if g.rewrite_ran.load(Ordering::Relaxed) {
        g.last_rewrite_secs.load(Ordering::Relaxed)
    } else {
        -1
    };
    let current_time = if started == 0 {
        -1
    } else {
        (crate::clock::now_ms().saturating_sub(started) / 1000) as i64
    };
    let mut v = vec![
        ("aof_enabled", (enabled as u8).to_string()),
        (
            "aof_rewrite_in_progress",
            ((started != 0) as u8).to_string(),
        ),
        (
            "aof_rewrite_scheduled",
            (g.rewrite_scheduled.load(Ordering::Relaxed) as u8).to_string(),
        ),
        ("aof_last_rewrite_time_sec", last_time.to_string()),
        ("aof_current_rewrite_time_sec", current_time.to_string()),
        (
            "aof_last_bgrewrite_status",
            if g.last_rewrite_failed.load(Ordering::Relaxed) {
                "err"
            } else {
                "ok"
            }
            .to_string(),
        ),
        (
            "aof_rewrites",
            g.rewrites.load(Ordering::Relaxed).to_string(),
        ),
        (
            "aof_rewrites_consecutive_failures",
            g.rewrite_failures.load(Ordering::Relaxed).to_string(),
        ),
        (
            "aof_last_write_status",
            if failed { "err" } else { "ok" }.to_string(),
        ),
        ("aof_last_cow_size", "0".to_string()),
    ];
    if enabled {
        let pending = buffer_memory(server);
        let delayed: u64 = lanes
            .iter()
            .map(|l| l.delayed_fsync.load(Ordering::Relaxed))
            .sum();
        v.extend([
            ("aof_current_size", g.current_size().to_string()),
            (
                "aof_base_size",
                g.base_size.load(Ordering::Relaxed).to_string(),
            ),
            ("aof_pending_rewrite", "0".to_string()),
            ("aof_buffer_length", pending.to_string()),
            ("aof_pending_bio_fsync", "0".to_string()),
            ("aof_delayed_fsync", delayed.to_string()),
        ]);
    }
    v
}

/// Flush every shard's stream and stop the writer threads (SHUTDOWN).
pub fn stop(server: &ServerInfo) {
    let lanes: Vec<Arc<Lane>> = crate::persistence::of(server)
        .aof
        .lanes
        .read()
        .map(|l| l.clone())
        .unwrap_or_default();
    for l in &lanes {
        l.stop();
    }
    for l in &lanes {
        let target = l.appended.load(Ordering::Acquire);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while l.durable.load(Ordering::Acquire) < target && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply that shows one shard's data waits for that shard's log alone, unless
    /// a multi-shard transaction may be incomplete on some log: then for every log.
    #[test]
    fn one_log_is_waited_for_only_while_every_transaction_is_durable() {
        let dir = std::env::temp_dir().join(format!("shardis-aof-lanes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let lane = |k: usize| {
            let f = std::fs::File::create(dir.join(format!("{k}.aof"))).unwrap();
            Lane::start(k, f, 0, Fsync::Always).unwrap()
        };
        let (up_to_date, behind) = (lane(0), lane(1));
        // Shard 1's log lags: something was appended that its writer never saw.
        behind.appended.store(100, Ordering::Release);
        let g = Global::default();
        *g.lanes.write().unwrap() = vec![up_to_date.clone(), behind.clone()];
        g.enabled.store(true, Ordering::Release);

        let before = concluding::opened();
        concluding::durable_up_to(before);
        assert!(durable(&g, Lanes::One(0), before).is_none());
        assert!(durable(&g, Lanes::One(1), before).is_some());
        assert!(durable(&g, Lanes::All, before).is_some());
        assert!(durable(&g, Lanes::None, before).is_none());
        // A transaction concluded since: its part on shard 1 may not be durable.
        drop(concluding::open());
        assert!(durable(&g, Lanes::One(0), concluding::opened()).is_some());
        // Once every log caught up, one log is enough again.
        behind.durable.store(100, Ordering::Release);
        assert!(durable(&g, Lanes::All, concluding::opened()).is_none());
        assert!(durable(&g, Lanes::One(0), concluding::opened()).is_none());
        up_to_date.stop();
        behind.stop();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
