//! AOF rewrite (BGREWRITEAOF, automatic rewrite by growth) and turning the AOF on and
//! off at runtime (`CONFIG SET appendonly`).
//!
//! # How a rewrite runs
//! 1. **Plan.** Name a new increment and a new base per shard. Create the empty
//!    increments and write manifest M1: the current chains with each shard's new
//!    increment appended as a continuation. From here a crash at any moment leaves a
//!    loadable chain: old base, old increments, then the new increment.
//! 2. **Switch.** One transaction holds every shard (so no multi-shard transaction
//!    runs between the first shard's switch and the last: each transaction's parts are
//!    all before the switch, in the bases, or all after it, in the new increments).
//!    On each shard, in one job, a snapshot starts (`save::shard_to_file`) and the
//!    shard's lane continues in the new increment (the writer fsyncs the old file
//!    first). The transaction is released as soon as every shard has switched.
//! 3. **Bases.** Each shard's snapshot is written as an RDB file (`aof-base:1`) in the
//!    background, shards concurrently.
//! 4. **Commit.** Manifest M2 names only the new bases and the new increments; it
//!    replaces M1 atomically, then the old files are deleted. On failure the new
//!    bases are deleted and M1 stays (the new increments carry on the old chains).
//!
//! Turning the AOF on is the same rewrite with the lanes attached (not switched) in
//! step 2 and no M1: until M2 is written the data set is not in the AOF, as in Redis.
//! `aof-use-rdb-preamble no` is not followed: bases are always RDB files.

use super::manifest::{self, Entry, FileType, Manifest};
use super::writer::{Fsync, Lane};
use super::{lock, AofFeed, Files, Global};
use crate::clock::now_ms;
use crate::commands::errors;
use crate::log::log;
use crate::persistence::save::{self, Activity};
use crate::runtime::transaction::Tx;
use crate::runtime::Shards;
use crate::shard::Shard;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// A failed automatic rewrite is retried after this long (Redis waits too).
const RETRY_DELAY_MS: u64 = 5000;

/// Whether the watcher task (`auto_rewrite`) runs already on this process.
static WATCHER: AtomicBool = AtomicBool::new(false);

/// What a rewrite does to the shards' lanes at the switch.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The AOF is on: continue each lane in a new increment.
    Switch,
    /// The AOF is being turned on: attach new lanes.
    Start,
    /// The AOF is off (BGREWRITEAOF anyway): write bases only, as Redis does.
    BasesOnly,
}

/// BGREWRITEAOF's reply; starts the rewrite in the background.
pub fn bgrewriteaof(shards: &Shards) -> crate::protocol::Reply {
    use crate::protocol::Reply;
    let st = &crate::persistence::of(&shards.server).save;
    let g = &crate::persistence::of(&shards.server).aof;
    match st.try_begin(Activity::AofRewrite) {
        Ok(()) => {}
        Err(Activity::AofRewrite) => return Reply::err(errors::AOF_REWRITE_IN_PROGRESS),
        Err(Activity::Bgsave) => {
            g.rewrite_scheduled.store(true, Ordering::Relaxed);
            return Reply::Status("Background append only file rewriting scheduled".into());
        }
    }
    let handle = shards.detached();
    crate::runtime::backend::spawn(async move {
        run_and_record(&handle).await;
        crate::persistence::of(&handle.server).save.end();
    })
    .detach();
    Reply::Status("Background append only file rewriting started".into())
}

/// A replica's full sync replaced the data set without logging it: the AOF's files
/// still describe the old one, and a restart would load that plus the stream applied
/// since. Rewrite them from the new data as soon as nothing else runs (Redis restarts
/// its AOF after a sync the same way; until the rewrite is done, a crash loads the old
/// files there too).
pub fn after_full_sync(shards: &Shards) {
    let g = &crate::persistence::of(&shards.server).aof;
    if super::enabled(g) {
        g.rewrite_scheduled.store(true, Ordering::Relaxed);
    }
}

/// `CONFIG SET appendonly`: start or stop the AOF before the command returns, as
/// Redis's `startAppendOnly` / `stopAppendOnly` do, not at the watcher's next tick, so
/// that INFO shows at once the rewrite that starts it in progress (or scheduled behind
/// a BGSAVE), and a script waiting for `aof_rewrite_in_progress:0` waits for it. With
/// a rewrite already running, the watcher does it when that one ends.
pub async fn appendonly_changed(shards: &Shards) {
    let st = &crate::persistence::of(&shards.server).save;
    let g = &crate::persistence::of(&shards.server).aof;
    let wanted = shards.server.config.current().get_bool("appendonly");
    let on = g.enabled.load(Ordering::Acquire);
    if !wanted && on {
        if st.activity().is_none() {
            stop_at_runtime(shards).await;
        }
    } else if wanted && !on {
        match st.try_begin(Activity::AofRewrite) {
            Ok(()) => {
                let handle = shards.detached();
                crate::runtime::backend::spawn(async move {
                    run_and_record(&handle).await;
                    crate::persistence::of(&handle.server).save.end();
                })
                .detach();
            }
            Err(Activity::Bgsave) => g.rewrite_scheduled.store(true, Ordering::Relaxed),
            Err(Activity::AofRewrite) => {}
        }
    }
}

/// Shard 0's task: scheduled and automatic rewrites, and `CONFIG SET appendonly`.
/// Safe to spawn more than once: later copies end at once.
pub async fn auto_rewrite(shards: Rc<Shards>) {
    if WATCHER.swap(true, Ordering::AcqRel) {
        return;
    }
    loop {
        let period = crate::runtime::cron_period(&shards.local.borrow().config);
        crate::runtime::backend::sleep(period).await;
        if shards.server.loading.load(Ordering::Relaxed)
            || shards.server.shutting_down.load(Ordering::Relaxed)
        {
            continue;
        }
        let st = &crate::persistence::of(&shards.server).save;
        let g = &crate::persistence::of(&shards.server).aof;
        let cfg = shards.server.config.current();
        let wanted = cfg.get_bool("appendonly");
        let on = g.enabled.load(Ordering::Acquire);
        if st.activity().is_some() {
            continue;
        }
        if !wanted && on {
            stop_at_runtime(&shards).await;
            continue;
        }
        let retry_ok = g.failed_at_ms.load(Ordering::Relaxed) + RETRY_DELAY_MS <= now_ms();
        let why = if (wanted && !on && retry_ok) || g.rewrite_scheduled.load(Ordering::Relaxed) {
            Some(None)
        } else if on && retry_ok {
            growth_due(g, &cfg).map(Some)
        } else {
            None
        };
        let Some(growth) = why else { continue };
        if st.try_begin(Activity::AofRewrite).is_err() {
            continue;
        }
        g.rewrite_scheduled.store(false, Ordering::Relaxed);
        if let Some(pct) = growth {
            log(&format!(
                "Starting automatic rewriting of AOF on {pct}% growth"
            ));
        }
        run_and_record(&shards).await;
        st.end();
    }
}

/// The growth (percent) when an automatic rewrite is due.
fn growth_due(g: &Global, cfg: &crate::config::Config) -> Option<u64> {
    let pct = cfg.get_int("auto-aof-rewrite-percentage");
    if pct <= 0 {
        return None;
    }
    let current = g.current_size();
    if current <= cfg.get_int("auto-aof-rewrite-min-size").max(0) as u64 {
        return None;
    }
    let base = g.base_size.load(Ordering::Relaxed).max(1);
    let growth = (current * 100 / base).saturating_sub(100);
    (growth >= pct as u64).then_some(growth)
}

/// Run one rewrite (the caller holds the machinery) and record its outcome for INFO.
async fn run_and_record(shards: &Shards) {
    let g = &crate::persistence::of(&shards.server).aof;
    let mode = if g.enabled.load(Ordering::Acquire) {
        Mode::Switch
    } else if shards.server.config.current().get_bool("appendonly") {
        Mode::Start
    } else {
        Mode::BasesOnly
    };
    log("Background append only file rewriting started");
    let started = Instant::now();
    g.rewrite_started_ms.store(now_ms(), Ordering::Relaxed);
    g.initial_rewrite
        .store(matches!(mode, Mode::Start), Ordering::Release);
    let result = rewrite(shards, mode).await;
    g.initial_rewrite.store(false, Ordering::Release);
    g.rewrite_started_ms.store(0, Ordering::Relaxed);
    g.last_rewrite_secs
        .store(started.elapsed().as_secs() as i64, Ordering::Relaxed);
    g.rewrite_ran.store(true, Ordering::Relaxed);
    match result {
        Ok(()) => {
            g.rewrites.fetch_add(1, Ordering::Relaxed);
            g.last_rewrite_failed.store(false, Ordering::Relaxed);
            g.rewrite_failures.store(0, Ordering::Relaxed);
            g.failed_at_ms.store(0, Ordering::Relaxed);
            log("Background AOF rewrite finished successfully");
        }
        Err(e) => {
            g.last_rewrite_failed.store(true, Ordering::Relaxed);
            g.rewrite_failures.fetch_add(1, Ordering::Relaxed);
            g.failed_at_ms.store(now_ms(), Ordering::Relaxed);
            log(&format!("Background AOF rewrite failed: {e}"));
        }
    }
}

/// The manifest in force: the running AOF's, else the one on disk (if it parses).
fn manifest_now(g: &Global, dir: &Path, mname: &str) -> Manifest {
    if let Some(f) = lock(&g.files).as_ref() {
        return f.manifest.clone();
    }
    std::fs::read_to_string(dir.join(mname))
        .ok()
        .and_then(|t| Manifest::parse(&t).ok())
        .unwrap_or_default()
}

fn open_append(path: &Path) -> Result<std::fs::File, String> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("Can't open the append-only file {}: {e}", path.display()))
}

/// The rewrite itself (see the module comment).
async fn rewrite(shards: &Shards, mode: Mode) -> Result<(), String> {
    let n = shards.count();
    let g = &crate::persistence::of(&shards.server).aof;
    let (dir, prefix, mname) = super::paths(&shards.server.config.current());
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("Can't create the AOF directory {}: {e}", dir.display()))?;
    let old = manifest_now(g, &dir, &mname);
    let gen = match mode {
        Mode::Switch => old.last_gen().map_or(1, |(g, _)| g),
        _ => old.last_gen().map_or(1, |(g, _)| g + 1),
    };
    let mut seq = old.max_seq() + 1;
    let mut entry = |k: usize, kind: FileType| {
        let e = Entry {
            name: manifest::file_name(&prefix, k, seq, kind, kind == FileType::Base),
            seq,
            kind,
            shard: k,
            shards: n,
            gen,
        };
        seq += 1;
        e
    };
    let bases: Vec<Entry> = (0..n).map(|k| entry(k, FileType::Base)).collect();
    let incrs: Vec<Entry> = if mode == Mode::BasesOnly {
        Vec::new()
    } else {
        (0..n).map(|k| entry(k, FileType::Incr)).collect()
    };

    // 1. The new increments exist (and, when switching, continue the chains in M1).
    let mut files = Vec::with_capacity(incrs.len());
    for e in &incrs {
        files.push(open_append(&dir.join(&e.name))?);
    }
    let remove_incrs = || {
        for e in &incrs {
            let _ = std::fs::remove_file(dir.join(&e.name));
        }
    };
    let sync = manifest::sync_dir(&dir).map_err(|e| format!("fsync {}: {e}", dir.display()));
    if let Err(e) = sync {
        remove_incrs();
        return Err(e);
    }
    let mut lanes: Vec<Arc<Lane>> = Vec::new();
    match mode {
        Mode::Switch => {
            let mut m1 = old.clone();
            m1.files.extend(incrs.iter().cloned());
            if let Err(e) = m1.write_atomic(&dir, &mname) {
                remove_incrs();
                return Err(format!(
                    "Can't write the AOF manifest: {}",
                    crate::log::strerror(&e)
                ));
            }
            if let Some(f) = lock(&g.files).as_mut() {
                f.manifest = m1;
            }
        }
        Mode::Start => {
            let policy = Fsync::parse(
                shards
                    .server
                    .config
                    .current()
                    .get("appendfsync")
                    .unwrap_or("everysec"),
            );
            for (k, f) in files.drain(..).enumerate() {
                match Lane::start(k, f, 0, policy) {
                    Ok(l) => lanes.push(l),
                    Err(e) => {
                        lanes.iter().for_each(|l| l.stop());
                        remove_incrs();
                        return Err(format!(
                            "Can't start the AOF writer thread: {}",
                            crate::log::strerror(&e)
                        ));
                    }
                }
            }
            *g.lanes.write().unwrap_or_else(|e| e.into_inner()) = lanes.clone();
            g.enabled.store(true, Ordering::Release);
        }
        Mode::BasesOnly => {}
    }

    // 2. Switch every shard at one instant for multi-shard transactions.
    let all: Vec<usize> = (0..n).collect();
    let tx = Tx::begin(shards, &all).await;
    // The libraries of this instant go into the first shard's base.
    let mut libraries = Some(crate::scripting::functions::codes());
    let handle = Rc::new(tx.shards.for_tx(tx.id, tx.log.clone()));
    // Each shard's index once it has switched, with what says when its writer has.
    type Switched = (usize, Option<flume::Receiver<()>>);
    let (switched_tx, switched_rx) = flume::unbounded::<Switched>();
    let mut files = files.into_iter();
    let mut tasks = Vec::with_capacity(n);
    for (k, base) in bases.iter().enumerate() {
        let path = dir.join(&base.name);
        let file = if mode == Mode::Switch {
            files.next()
        } else {
            None
        };
        let lane = lanes.get(k).cloned();
        let done = switched_tx.clone();
        let at_start = Box::new(move |s: &mut Shard| {
            let written = file.and_then(|f| switch_increment(s, f));
            if let Some(l) = lane {
                attach(s, l);
            }
            let _ = done.send((k, written));
        });
        let (h, done) = (handle.clone(), switched_tx.clone());
        let libraries = libraries.take().unwrap_or_default();
        tasks.push(crate::runtime::backend::spawn(async move {
            let r = save::shard_to_file(&h, k, path, true, libraries, at_start).await;
            if r.is_err() {
                let _ = done.send((k, None)); // it may not have switched: do not wait for it
            }
            r
        }));
    }
    drop(switched_tx);
    let mut seen = vec![false; n];
    let mut count = 0;
    let mut writers_switched = Vec::with_capacity(n);
    while count < n {
        match switched_rx.recv_async().await {
            Ok((k, written)) if k < n && !seen[k] => {
                seen[k] = true;
                count += 1;
                writers_switched.extend(written);
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    drop(tx);

    // 3. The bases, written concurrently.
    let mut result = Ok(0u64);
    for t in tasks {
        let r = t.await;
        match (&mut result, r) {
            (Ok(total), Ok(bytes)) => *total += bytes,
            (Ok(_), Err(e)) => result = Err(e),
            (Err(_), _) => {}
        }
    }
    let remove_bases = || {
        for e in &bases {
            let _ = std::fs::remove_file(dir.join(&e.name));
        }
    };
    let base_bytes = match result {
        Ok(b) => b,
        Err(e) => {
            remove_bases();
            if mode == Mode::Start {
                detach_all(shards).await;
                remove_incrs();
            }
            refresh_sizes(g, false);
            return Err(e);
        }
    };

    // 4. Commit: the new manifest, then the old files go.
    let m2 = Manifest {
        files: bases.iter().chain(incrs.iter()).cloned().collect(),
    };
    if let Err(e) = m2.write_atomic(&dir, &mname) {
        remove_bases();
        if mode == Mode::Start {
            detach_all(shards).await;
            remove_incrs();
        }
        refresh_sizes(g, false);
        return Err(format!(
            "Can't write the AOF manifest: {}",
            crate::log::strerror(&e)
        ));
    }
    let keep: Vec<&str> = m2.files.iter().map(|e| e.name.as_str()).collect();
    let old_files: Vec<String> = match lock(&g.files).as_ref() {
        Some(f) => f.manifest.files.iter().map(|e| e.name.clone()).collect(),
        None => old.files.iter().map(|e| e.name.clone()).collect(),
    };
    for name in old_files.iter().filter(|n| !keep.contains(&n.as_str())) {
        let _ = std::fs::remove_file(dir.join(name));
    }
    sweep(&dir, &prefix, &keep);
    {
        let mut files = lock(&g.files);
        match files.as_mut() {
            Some(f) => f.manifest = m2,
            None if mode == Mode::Start => {
                *files = Some(Files {
                    dir: dir.clone(),
                    prefix: prefix.clone(),
                    manifest: m2,
                })
            }
            None => {}
        }
    }
    log(&format!(
        "Successfully wrote the AOF bases ({base_bytes} bytes, {n} shard(s)), manifest {mname} replaced"
    ));
    // The sizes count the new increments only once every writer has left the old
    // one: a writer still writing the old increment's backlog would otherwise have it
    // counted in `aof_current_size` after the rewrite, and in the base that growth
    // counts from.
    for w in writers_switched {
        let _ = w.recv_async().await;
    }
    refresh_sizes(g, true);
    Ok(())
}

/// Delete what earlier interrupted rewrites left in the AOF directory: files of ours
/// (`<prefix>.<shard>.<seq>.base.rdb`, `.incr.aof`, temp files) that the manifest does
/// not name. Only one snapshot runs at a time, so no temp file here is in use.
fn sweep(dir: &Path, prefix: &str, keep: &[&str]) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let ours = (name.starts_with(&format!("{prefix}."))
            && (name.ends_with(".base.rdb")
                || name.ends_with(".base.aof")
                || name.ends_with(".incr.aof")))
            || (name.starts_with("temp-") && name.ends_with(".rdb"));
        if ours && !keep.contains(&name.as_str()) {
            log(&format!("Removing the stale AOF file {name}"));
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// At the switch: continue this shard's stream in `file`; what says when its writer
/// has.
fn switch_increment(s: &mut Shard, file: std::fs::File) -> Option<flume::Receiver<()>> {
    s.propagation
        .consumer_mut::<AofFeed>()
        .map(|feed| feed.switch(file))
}

/// Turning the AOF on: this shard starts logging to `lane`.
fn attach(s: &mut Shard, lane: Arc<Lane>) {
    s.detach::<AofFeed>();
    s.attach(Box::new(AofFeed::new(lane)));
}

fn detach(s: &mut Shard) {
    s.detach::<AofFeed>();
}

/// Stop logging on every shard, flush and close the files, stop the writers.
async fn detach_all(shards: &Shards) {
    let g = &crate::persistence::of(&shards.server).aof;
    g.enabled.store(false, Ordering::Release);
    shards.all(detach).await;
    super::stop(&shards.server);
    g.lanes.write().unwrap_or_else(|e| e.into_inner()).clear();
    *lock(&g.files) = None;
}

/// `CONFIG SET appendonly no`: stop appending, flush and close, as Redis. (Once: the
/// watcher and CONFIG SET may both see it due.)
async fn stop_at_runtime(shards: &Shards) {
    let g = &crate::persistence::of(&shards.server).aof;
    if !g.enabled.swap(false, Ordering::AcqRel) {
        return;
    }
    detach_all(shards).await;
    log("Background append only file rewriting is off: AOF disabled (appendonly no)");
}

/// Recompute the size of the files other than the live increments (for
/// `aof_current_size`), and after a rewrite or at start, the size growth counts from.
pub(super) fn refresh_sizes(g: &Global, rebase: bool) {
    let closed = match lock(&g.files).as_ref() {
        Some(f) => {
            let live: Vec<&Entry> = f
                .manifest
                .generations()
                .last()
                .map(|&(gen, count)| {
                    (0..count)
                        .filter_map(|k| {
                            f.manifest
                                .chain(gen, k)
                                .into_iter()
                                .rfind(|e| e.kind == FileType::Incr)
                        })
                        .collect()
                })
                .unwrap_or_default();
            f.manifest
                .files
                .iter()
                .filter(|e| !live.contains(e))
                .filter_map(|e| std::fs::metadata(f.dir.join(&e.name)).ok())
                .map(|md| md.len())
                .sum()
        }
        None => 0,
    };
    g.closed_size.store(closed, Ordering::Relaxed);
    if rebase {
        g.base_size.store(g.current_size(), Ordering::Relaxed);
    }
}
