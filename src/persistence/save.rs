//! RDB files: SAVE, BGSAVE, save points, SHUTDOWN's save, DEBUG RELOAD, and the writer
//! that turns the shards' snapshot chunks into one file.
//!
//! # How a save runs
//! 1. [`Status::try_begin`] makes sure no other snapshot (BGSAVE or an AOF rewrite) is
//!    running; one at a time, as Redis allows one child.
//! 2. A writer thread opens `dir/temp-<pid>-<n>.rdb` and writes the header.
//! 3. One multi-shard transaction takes every shard's lock and starts the snapshot on
//!    each (`snapshot::begin`) as it is granted, then releases: no command runs on any
//!    shard between the first start and the last, so the file is one instant's image.
//! 4. Each shard's [`driver`] task writes its records in slices between requests and
//!    sends the chunks to the writer (a bounded channel: a slow disk slows the
//!    snapshot, not the shard's clients).
//! 5. When every shard is done the writer appends EOF and the CRC64, fsyncs, renames
//!    the file over `dir/dbfilename`, fsyncs the directory, and records the outcome in
//!    [`Status`] (INFO persistence, LASTSAVE). A failure leaves the old file in place,
//!    logs the reason, and with `stop-writes-on-bgsave-error yes` makes writes fail
//!    with `-MISCONF` until a save succeeds.

use crate::client::ClientRef;
use crate::clock::now_ms;
use crate::commands::errors;
use crate::log::log;
use crate::persistence::rdb::crc64::Crc64;
use crate::persistence::rdb::encode;
use crate::persistence::snapshot::{self, Chunk, Progress, Purpose};
use crate::protocol::Reply;
use crate::runtime::hop::ServerInfo;
use crate::runtime::transaction::{FirstStep, Tx};
use crate::runtime::Shards;
use crate::shard::Shard;
use bytes::Bytes;
use std::cell::RefCell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a shard's snapshot sends to the writer.
pub enum ToWriter {
    Chunk(Chunk),
    Done { progress: Progress },
}

/// What the file's header holds beyond the fixed aux fields, known once every shard is
/// held, sent to the writer before it starts: more aux fields (the replication id and
/// offset of that instant), and the function libraries of that instant.
#[derive(Default)]
pub struct Header {
    pub aux: Vec<(String, String)>,
    pub libraries: Vec<Bytes>,
}

impl Header {
    /// The header of every shard held now: the replication position and the libraries.
    fn now(server: &ServerInfo) -> Header {
        Header {
            aux: crate::replication::save_info(server),
            libraries: crate::scripting::functions::codes(),
        }
    }
}

/// Chunks in flight per save before the shards wait for the disk (8 x 32 KiB: the
/// snapshot's memory stays a fraction of a megabyte whatever the data set).
const QUEUE: usize = 8;
/// Longest stretch a background snapshot works before letting clients run.
const SLICE: Duration = Duration::from_millis(1);
/// The pause between slices of a background snapshot.
const PAUSE: Duration = Duration::from_micros(200);
/// Redis's CONFIG_BGSAVE_RETRY_DELAY: a failed automatic save is retried after 5 s.
const RETRY_DELAY_MS: u64 = 5000;

/// The snapshot activity running now (one at a time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activity {
    Bgsave,
    AofRewrite,
}

/// Process-wide snapshot state (INFO persistence, LASTSAVE), in `ServerInfo`.
#[derive(Default)]
pub struct Status {
    activity: Mutex<Option<Activity>>,
    /// BGSAVE SCHEDULE asked for a save when the running activity ends.
    pub scheduled: AtomicBool,
    pub bgsave_started_ms: AtomicU64,
    /// Unix seconds of the last successful save (LASTSAVE); the start time at first.
    pub last_save_s: AtomicU64,
    pub last_bgsave_failed: AtomicBool,
    pub last_bgsave_time_s: AtomicI64,
    pub last_attempt_ms: AtomicU64,
    pub saves: AtomicU64,
    pub last_cow_size: AtomicU64,
    /// Sum of the shards' change counters when the last successful save started.
    pub dirty_at_last_save: AtomicU64,
    /// Each shard's change counter, published by its cron (save points, INFO).
    pub shard_dirty: Mutex<Vec<u64>>,
    pub last_load_keys_loaded: AtomicU64,
    pub last_load_keys_expired: AtomicU64,
    pub last_error: Mutex<String>,
}

impl Status {
    /// Claim the snapshot machinery for `what`; the running activity if busy.
    pub fn try_begin(&self, what: Activity) -> Result<(), Activity> {
        let mut a = self.activity.lock().unwrap_or_else(|e| e.into_inner());
        match *a {
            Some(other) => Err(other),
            None => {
                *a = Some(what);
                Ok(())
            }
        }
    }
    /// Claim the snapshot machinery for `what`, waiting out a running save or rewrite.
    pub async fn begin(&self, what: Activity) {
        while self.try_begin(what).is_err() {
            crate::runtime::backend::sleep(Duration::from_millis(10)).await;
        }
    }
    pub fn end(&self) {
        *self.activity.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
    pub fn activity(&self) -> Option<Activity> {
        *self.activity.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub fn dirty_now(&self) -> u64 {
        self.shard_dirty
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .sum()
    }
    pub fn publish_dirty(&self, shard: usize, nshards: usize, dirty: u64) {
        let mut v = self.shard_dirty.lock().unwrap_or_else(|e| e.into_inner());
        if v.len() < nshards {
            v.resize(nshards, 0);
        }
        v[shard] = dirty;
    }
    /// `-MISCONF` applies: the last background save failed and writes must stop.
    pub fn writes_refused(&self, config: &crate::config::Config) -> bool {
        self.last_bgsave_failed.load(Ordering::Relaxed)
            && config.get_bool("stop-writes-on-bgsave-error")
            && !config.save_params().is_empty()
    }
}

/// The `-MISCONF` reply.
pub fn misconf() -> Reply {
    Reply::err(errors::MISCONF_BGSAVE)
}

/// The RDB file's path: `dir/dbfilename`.
pub fn rdb_path(config: &crate::config::Config) -> PathBuf {
    Path::new(&config.dir).join(&config.dbfilename)
}

/// Resolves once the shard has a snapshot to run (`snapshot::begin` wakes it): an idle
/// shard spends nothing on its driver.
async fn snapshot_started(shard: &Rc<RefCell<Shard>>) {
    std::future::poll_fn(|cx| {
        let mut s = shard.borrow_mut();
        if s.snapshot.is_some() {
            std::task::Poll::Ready(())
        } else {
            s.snapshot_waiter = Some(cx.waker().clone());
            std::task::Poll::Pending
        }
    })
    .await
}

/// Per-shard task, started with the shard: runs the shard's snapshot when there is one.
pub async fn driver(shard: Rc<RefCell<Shard>>) {
    loop {
        let running = snapshot::running(&shard.borrow()).map(|s| (s.sink.clone(), s.foreground()));
        let Some((sink, foreground)) = running else {
            snapshot_started(&shard).await;
            continue;
        };
        let (chunks, done, keys) = snapshot::step(&mut shard.borrow_mut(), SLICE);
        let delay = shard.borrow().config.get_int("rdb-key-save-delay");
        let mut failed = false;
        for c in chunks {
            if sink.send_async(ToWriter::Chunk(c)).await.is_err() {
                failed = true;
                break;
            }
        }
        if failed {
            // The writer gave up (disk error): it reports the failure.
            snapshot::abort(&mut shard.borrow_mut());
            continue;
        }
        if let Some(pause) = key_save_delay(delay, keys) {
            // In steps, so that a snapshot stopped meanwhile (FLUSHALL) lets its writer
            // go at once.
            let end = Instant::now() + pause;
            while snapshot::running(&shard.borrow()).is_some() {
                let left = end.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                crate::runtime::backend::sleep(left.min(Duration::from_millis(10))).await;
            }
        }
        if done {
            // A snapshot stopped during the pause above (FLUSHALL) is gone: its writer
            // must not hear that it finished, or it would put the file in place.
            let taken = snapshot::take(&mut shard.borrow_mut()).map(|s| s.progress);
            if let Some(progress) = taken {
                let _ = sink.send_async(ToWriter::Done { progress }).await;
            }
            continue;
        }
        if !foreground {
            crate::runtime::backend::sleep(PAUSE).await;
        } else {
            crate::runtime::backend::yield_now().await;
        }
    }
}

/// `rdb-key-save-delay` (a testing option: Redis's tests slow a save down with it):
/// `delay` microseconds per key written, or for a negative value one microsecond per
/// `-delay` keys (Redis's `debugDelay` sleeps 1 µs with probability 1/-delay). The
/// shard's snapshot task sleeps it after each slice, its thread serving clients
/// meanwhile, as Redis's fork child sleeps apart from the server.
fn key_save_delay(delay: i64, keys: u64) -> Option<Duration> {
    let us = match delay {
        0 => return None,
        d if d > 0 => keys.saturating_mul(d as u64),
        d => keys / d.unsigned_abs(),
    };
    (us > 0).then(|| Duration::from_micros(us))
}

/// What the writer reports.
#[derive(Clone, Copy, Debug, Default)]
pub struct Written {
    pub keys: u64,
    pub bytes: u64,
    pub peak_bytes: u64,
}

/// The writer: chunks from `parts` shards into `path` (via a temp file), as one RDB.
fn write_file(
    path: &Path,
    parts: usize,
    rx: flume::Receiver<ToWriter>,
    aux: flume::Receiver<Header>,
    aof_base: bool,
    checksum: bool,
) -> Result<Written, String> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(
        "temp-{}-{}.rdb",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let aux = aux.recv().unwrap_or_default();
    let result = write_parts(&tmp, parts, &rx, &aux, aof_base, checksum).and_then(|w| {
        std::fs::rename(&tmp, path)
            .map_err(|e| format!("Error moving temp DB file {} on the final destination {} (in server root dir {}): {e}", tmp.display(), path.display(), cwd()))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(w)
    });
    if result.is_err() {
        drop(rx); // the shards' sends fail and they abandon their snapshots
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn cwd() -> String {
    std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

fn write_parts(
    tmp: &Path,
    parts: usize,
    rx: &flume::Receiver<ToWriter>,
    header: &Header,
    aof_base: bool,
    checksum: bool,
) -> Result<Written, String> {
    let file = std::fs::File::create(tmp).map_err(|e| {
        format!(
            "Failed opening the temp RDB file {} (in server root dir {}) for saving: {}",
            tmp.display(),
            cwd(),
            crate::log::strerror(&e)
        )
    })?;
    let mut out = std::io::BufWriter::with_capacity(256 << 10, file);
    let mut crc = Crc64::default();
    let mut put = |bytes: &[u8], out: &mut std::io::BufWriter<std::fs::File>| {
        if checksum {
            crc.update(bytes);
        }
        out.write_all(bytes).map_err(|e| {
            format!(
                "Write error saving DB on disk: {}",
                crate::log::strerror(&e)
            )
        })
    };
    let mut head = Vec::new();
    let aux: Vec<(&str, &str)> = header
        .aux
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    encode::header(
        &mut head,
        aof_base,
        crate::commands::info::rss_bytes(),
        &aux,
        &header.libraries,
    );
    put(&head, &mut out)?;
    let mut written = Written::default();
    let mut current_db = usize::MAX;
    let mut done = 0;
    while done < parts {
        match rx.recv() {
            Ok(ToWriter::Chunk(c)) => {
                if c.db != current_db {
                    let mut sel = Vec::new();
                    encode::select_db(&mut sel, c.db);
                    put(&sel, &mut out)?;
                    current_db = c.db;
                }
                put(&c.bytes, &mut out)?;
            }
            Ok(ToWriter::Done { progress }) => {
                done += 1;
                written.keys += progress.keys;
                written.peak_bytes += progress.peak_bytes;
            }
            Err(_) => return Err("a shard stopped before finishing its snapshot".into()),
        }
    }
    let mut tail = Vec::new();
    encode::eof(&mut tail);
    put(&tail, &mut out)?;
    let sum = if checksum { crc.value() } else { 0 };
    out.write_all(&sum.to_le_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| {
            format!(
                "Write error saving DB on disk: {}",
                crate::log::strerror(&e)
            )
        })?;
    let file = out.into_inner().map_err(|e| e.to_string())?;
    file.sync_all().map_err(|e| {
        format!(
            "Write error saving DB on disk (fsync): {}",
            crate::log::strerror(&e)
        )
    })?;
    written.bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    Ok(written)
}

/// Where the writer reports how the file went.
type WriterDone = flume::Receiver<Result<Written, String>>;

/// Start the writer thread for `parts` snapshots' chunks into the RDB file at `path`:
/// the sender the snapshots write to, and where the outcome arrives.
/// The writer waits for the header's extra aux fields on the returned sender before it
/// writes anything (dropping it means none).
fn spawn_writer(
    shards: &Shards,
    path: PathBuf,
    parts: usize,
    aof_base: bool,
) -> Result<(flume::Sender<ToWriter>, flume::Sender<Header>, WriterDone), String> {
    let (tx, rx) = flume::bounded(QUEUE);
    let (aux_tx, aux_rx) = flume::bounded(1);
    let checksum = shards.local.borrow().config.get_bool("rdbchecksum");
    let (done_tx, done_rx) = flume::bounded(1);
    std::thread::Builder::new()
        .name("rdb-writer".into())
        .spawn(move || {
            let _ = done_tx.send(write_file(&path, parts, rx, aux_rx, aof_base, checksum));
        })
        .map_err(|e| format!("cannot start the RDB writer: {}", crate::log::strerror(&e)))?;
    Ok((tx, aux_tx, done_rx))
}

/// The writer's outcome, once the file is in place (or not).
async fn written(done: WriterDone) -> Result<Written, String> {
    done.recv_async()
        .await
        .unwrap_or_else(|_| Err("the RDB writer stopped".into()))
}

/// A shard's answer to the start: whether its snapshot began, and its change counter.
type Started = (Result<(), String>, u64);

/// Start a snapshot of every shard into `path`; resolves when the file is in place.
/// The caller must hold the snapshot machinery (`Status::try_begin`).
async fn save_all(shards: &Shards, path: PathBuf, foreground: bool) -> Result<Written, String> {
    let parts = shards.count();
    let (tx, aux, done) = spawn_writer(shards, path, parts, false)?;
    let steps: Vec<(usize, FirstStep<Started>)> = (0..parts)
        .map(|sid| {
            let tx = tx.clone();
            let step: FirstStep<Started> = Box::new(move |s: &mut Shard| {
                (
                    snapshot::begin(s, tx, Purpose::Save { foreground }),
                    s.dirty(),
                )
            });
            (sid, step)
        })
        .collect();
    drop(tx);
    let (t, started) = Tx::begin_with(shards, steps).await;
    // Every shard is held: the replication offset now is the snapshot's.
    let _ = aux.send(Header::now(&shards.server));
    drop(t);
    let dirty: u64 = started.iter().map(|(_, d)| d).sum();
    if let Some((Err(e), _)) = started.iter().find(|(r, _)| r.is_err()) {
        let e = e.clone();
        shards.all(|s: &mut Shard| snapshot::abort(s)).await;
        return Err(e);
    }
    let server = &crate::persistence::of(&shards.server).save;
    server.bgsave_started_ms.store(now_ms(), Ordering::Relaxed);
    let result = written(done).await;
    if result.is_ok() {
        server.dirty_at_last_save.store(dirty, Ordering::Relaxed);
    }
    result
}

/// Run a whole save (SAVE, BGSAVE, save points, SHUTDOWN) and record its outcome. The
/// caller has claimed the machinery (`Status::try_begin`); it is released here.
async fn save_and_record(shards: &Shards, foreground: bool) -> Result<Written, String> {
    let st = &crate::persistence::of(&shards.server).save;
    let started = Instant::now();
    st.last_attempt_ms.store(now_ms(), Ordering::Relaxed);
    let path = rdb_path(&shards.local.borrow().config);
    let result = save_all(shards, path, foreground).await;
    // Taken whatever the outcome: a save that ended as it was stopped leaves no mark
    // for the next one.
    let killed = KILLED.swap(false, Ordering::SeqCst);
    let secs = started.elapsed().as_secs_f64();
    st.last_bgsave_time_s
        .store(secs.round() as i64, Ordering::Relaxed);
    match &result {
        Ok(w) => {
            st.last_bgsave_failed.store(false, Ordering::Relaxed);
            st.last_save_s.store(now_ms() / 1000, Ordering::Relaxed);
            st.saves.fetch_add(1, Ordering::Relaxed);
            st.last_cow_size.store(w.peak_bytes, Ordering::Relaxed);
            log(&format!(
                "DB saved on disk: {} keys, {} bytes in {:.3} seconds ({:.0} keys/s); snapshot memory peak {} bytes",
                w.keys,
                w.bytes,
                secs,
                w.keys as f64 / secs.max(1e-9),
                w.peak_bytes
            ));
        }
        Err(_) if killed => {
            // (Redis's child killed with SIGUSR1: not a failed save.)
            crate::log::warning("Background saving terminated by signal 10");
        }
        Err(e) => {
            st.last_bgsave_failed.store(true, Ordering::Relaxed);
            *st.last_error.lock().unwrap_or_else(|e| e.into_inner()) = e.clone();
            log(&format!("Background saving error: {e}"));
        }
    }
    st.bgsave_started_ms.store(0, Ordering::Relaxed);
    st.end();
    result
}

/// A running save was stopped on purpose ([`stop_for_flushall`]): its end is no
/// failure.
static KILLED: AtomicBool = AtomicBool::new(false);

/// FLUSHALL, on each shard as it empties it, as Redis's `flushAllDataAndResetRDB`
/// kills its RDB child: a running BGSAVE's (or save point's) snapshot stops, its file
/// never written. Done in the same step as the flush, so a save that began its
/// snapshots just before cannot slip between the stop and the flush. (A replica's full
/// sync or a SAVE goes on: its image precedes the FLUSHALL, which follows it.)
pub fn stop_for_flushall(shard: &mut Shard) {
    if snapshot::stop_background_save(shard) {
        KILLED.store(true, Ordering::SeqCst);
    }
}

/// FLUSHALL, after emptying the shards: with save points set, the empty data set is
/// saved at once, as Redis does. Otherwise the file kept the flushed keys (or a BGSAVE
/// begun before the FLUSHALL put them back) for the next start to load.
///
/// FLUSHALL runs holding every shard (alone, or in EXEC or a script), and the save
/// needs them: it starts in a task of its own as soon as they are released and the
/// machinery is free (the stopped save has ended, or an AOF rewrite), and runs in the
/// foreground's haste. The client's reply waits for it ([`flushall_saved`]), as Redis's
/// `rdbSave` is done when FLUSHALL answers.
pub fn after_flushall(client: &ClientRef, shards: &Shards) {
    // (Off an executor: a unit test's shards, with no file to write.)
    if shards.local.borrow().config.save_params().is_empty()
        || !crate::runtime::backend::on_executor()
    {
        return;
    }
    let (done, saved) = flume::bounded(1);
    client.borrow_mut().flushall_save = Some(saved);
    let shards = shards.detached();
    crate::runtime::backend::spawn(async move {
        crate::persistence::of(&shards.server)
            .save
            .begin(Activity::Bgsave)
            .await;
        let _ = save_and_record(&shards, true).await;
        let _ = done.send(());
    })
    .detach();
}

/// After a command that holds every shard (FLUSHALL, or EXEC or a script running it)
/// has released them: wait for its save of the emptied data set, if it made one.
pub async fn flushall_saved(client: &ClientRef) {
    let saved = client.borrow_mut().flushall_save.take();
    if let Some(saved) = saved {
        let _ = saved.recv_async().await;
    }
}

/// Claim the machinery and save in the foreground; None if a save or rewrite runs.
async fn save_now(shards: &Shards) -> Option<Result<Written, String>> {
    crate::persistence::of(&shards.server)
        .save
        .try_begin(Activity::Bgsave)
        .ok()?;
    Some(save_and_record(shards, true).await)
}

/// SAVE: write the file now and reply when it is on disk.
pub async fn save(shards: &Shards) -> Reply {
    match save_now(shards).await {
        None => Reply::err(errors::BGSAVE_IN_PROGRESS),
        Some(Ok(_)) => Reply::ok(),
        Some(Err(_)) => Reply::err(errors::SAVE_FAILED),
    }
}

/// BGSAVE [SCHEDULE]: start a save and reply at once.
pub async fn bgsave(shards: &Shards, schedule: bool) -> Reply {
    let st = &crate::persistence::of(&shards.server).save;
    match st.try_begin(Activity::Bgsave) {
        Ok(()) => {}
        Err(Activity::Bgsave) => return Reply::err(errors::BGSAVE_IN_PROGRESS),
        Err(Activity::AofRewrite) if schedule => {
            st.scheduled.store(true, Ordering::Relaxed);
            return Reply::Status("Background saving scheduled".into());
        }
        Err(Activity::AofRewrite) => return Reply::err(errors::BGSAVE_AOF_ACTIVE),
    }
    log("Background saving started");
    spawn_save(shards.detached());
    Reply::Status("Background saving started".into())
}

/// Run a background save that already holds the machinery, releasing it at the end.
fn spawn_save(shards: Rc<Shards>) {
    crate::runtime::backend::spawn(async move {
        let _ = save_and_record(&shards, false).await;
    })
    .detach();
}

/// Shard 0's task: save points (`save 3600 1 300 100 ...`) and scheduled BGSAVEs.
pub async fn save_points(shards: Rc<Shards>) {
    loop {
        let period = crate::runtime::cron_period(&shards.local.borrow().config);
        crate::runtime::backend::sleep(period).await;
        let st = &crate::persistence::of(&shards.server).save;
        if shards.server.loading.load(Ordering::Relaxed) || st.activity().is_some() {
            continue;
        }
        if st.scheduled.swap(false, Ordering::Relaxed) {
            if st.try_begin(Activity::Bgsave).is_ok() {
                log("Background saving started (scheduled)");
                spawn_save(shards.clone());
            }
            continue;
        }
        let params = shards.local.borrow().config.save_params();
        let changes = st
            .dirty_now()
            .saturating_sub(st.dirty_at_last_save.load(Ordering::Relaxed));
        let now = now_ms();
        let since_save = (now / 1000).saturating_sub(st.last_save_s.load(Ordering::Relaxed));
        let retry_ok = !st.last_bgsave_failed.load(Ordering::Relaxed)
            || now.saturating_sub(st.last_attempt_ms.load(Ordering::Relaxed)) >= RETRY_DELAY_MS;
        let due = params
            .iter()
            .find(|&&(secs, n)| changes >= n && since_save >= secs);
        if let (Some(&(secs, _)), true) = (due, retry_ok) {
            if st.try_begin(Activity::Bgsave).is_ok() {
                log(&format!("{changes} changes in {secs} seconds. Saving..."));
                log("Background saving started");
                spawn_save(shards.clone());
            }
        }
    }
}

/// SHUTDOWN and SIGTERM: save if asked to, or if save points are set (`save` true /
/// false / None = by the configuration). Err: the save failed and shutdown must stop.
pub async fn save_for_shutdown(shards: &Shards, save: Option<bool>) -> Result<(), String> {
    let wanted = save.unwrap_or_else(|| !shards.local.borrow().config.save_params().is_empty());
    if !wanted {
        return Ok(());
    }
    log("Saving the final RDB snapshot before exiting.");
    crate::supervise::notify("STATUS=Saving the final RDB snapshot\n");
    // Wait for a running background save or rewrite rather than fail.
    let st = &crate::persistence::of(&shards.server).save;
    while st.try_begin(Activity::Bgsave).is_err() {
        crate::runtime::backend::sleep(Duration::from_millis(5)).await;
    }
    save_and_record(shards, true)
        .await
        .map(|_| log("DB saved on disk"))
}

/// DEBUG RELOAD [MERGE] [NOFLUSH] [NOSAVE]: save, empty, load the file again.
pub async fn debug_reload(s: &Shards, opts: &[Bytes]) -> Reply {
    let (mut merge, mut noflush, mut nosave) = (false, false, false);
    for o in opts {
        match o.to_ascii_lowercase().as_slice() {
            b"merge" => merge = true,
            b"noflush" => noflush = true,
            b"nosave" => nosave = true,
            _ => return Reply::err(errors::DEBUG_RELOAD_OPTIONS),
        }
    }
    if !nosave {
        match save_now(s).await {
            None => return Reply::err(errors::BGSAVE_IN_PROGRESS),
            Some(Err(_)) => return Reply::err(errors::DEBUG_RELOAD_SAVE_FAILED),
            Some(Ok(_)) => {}
        }
    }
    // As Redis: the data set and the functions are emptied unless NOFLUSH; MERGE
    // lets the file replace keys and libraries already there.
    if !noflush {
        crate::scripting::functions::flush();
        s.all(|sh: &mut Shard| {
            let now = now_ms();
            let Shard { dbs, watches, .. } = sh;
            for (i, db) in dbs.iter_mut().enumerate() {
                // As Redis's flush: WATCHed keys that existed are touched.
                watches.touch_db_where(i, |k| db.contains(k, now));
                db.clear();
            }
        })
        .await;
    }
    let path = rdb_path(&s.local.borrow().config);
    match super::load::rdb_into_shards(s, &path, merge, Default::default()).await {
        Ok(_) => {
            crate::log::warning("DB reloaded by DEBUG RELOAD");
            Reply::ok()
        }
        Err(e) => {
            log(&format!("DEBUG RELOAD: {e}"));
            Reply::err(errors::RDB_LOAD_FAILED)
        }
    }
}

/// Write shard `sid`'s keys as an RDB file at `path` (an AOF rewrite's base, with
/// `aof-base:1` when `aof_base`, and the function `libraries` if any), from a snapshot
/// started on that shard in the same job as `at_start`. Resolves when the file is
/// written, fsynced and renamed in place.
/// The caller holds the machinery (`Status::try_begin(Activity::AofRewrite)`).
pub async fn shard_to_file(
    shards: &Shards,
    sid: usize,
    path: PathBuf,
    aof_base: bool,
    libraries: Vec<Bytes>,
    at_start: Box<dyn FnOnce(&mut Shard) + Send>,
) -> Result<u64, String> {
    let (tx, aux, done) = spawn_writer(shards, path, 1, aof_base)?;
    let _ = aux.send(Header {
        aux: Vec::new(),
        libraries,
    });
    let started = shards
        .on(sid, move |s: &mut Shard| {
            let r = snapshot::begin(s, tx, Purpose::Copy);
            if r.is_ok() {
                at_start(s);
            }
            r
        })
        .await;
    started?;
    Ok(written(done).await?.bytes)
}

/// INFO persistence's RDB fields, Redis's names and order.
pub fn info_fields(server: &ServerInfo) -> Vec<(&'static str, String)> {
    let st = &crate::persistence::of(server).save;
    let started = st.bgsave_started_ms.load(Ordering::Relaxed);
    let in_progress = st.activity() == Some(Activity::Bgsave);
    let changes = st
        .dirty_now()
        .saturating_sub(st.dirty_at_last_save.load(Ordering::Relaxed));
    let last_status = if st.last_bgsave_failed.load(Ordering::Relaxed) {
        "err"
    } else {
        "ok"
    };
    let last_time = if st.last_attempt_ms.load(Ordering::Relaxed) == 0 {
        -1
    } else {
        st.last_bgsave_time_s.load(Ordering::Relaxed)
    };
    let current = if in_progress && started != 0 {
        (now_ms().saturating_sub(started) / 1000) as i64
    } else {
        -1
    };
    vec![
        (
            "loading",
            (server.loading.load(Ordering::Relaxed) as u8).to_string(),
        ),
        ("async_loading", "0".into()),
        ("current_cow_peak", "0".into()),
        ("current_cow_size", "0".into()),
        ("current_cow_size_age", "0".into()),
        ("current_fork_perc", "0.00".into()),
        ("current_save_keys_processed", "0".into()),
        ("current_save_keys_total", "0".into()),
        ("rdb_changes_since_last_save", changes.to_string()),
        ("rdb_bgsave_in_progress", (in_progress as u8).to_string()),
        (
            "rdb_last_save_time",
            st.last_save_s.load(Ordering::Relaxed).to_string(),
        ),
        ("rdb_last_bgsave_status", last_status.into()),
        ("rdb_last_bgsave_time_sec", last_time.to_string()),
        ("rdb_current_bgsave_time_sec", current.to_string()),
        ("rdb_saves", st.saves.load(Ordering::Relaxed).to_string()),
        (
            "rdb_last_cow_size",
            st.last_cow_size.load(Ordering::Relaxed).to_string(),
        ),
        (
            "rdb_last_load_keys_expired",
            st.last_load_keys_expired
                .load(Ordering::Relaxed)
                .to_string(),
        ),
        (
            "rdb_last_load_keys_loaded",
            st.last_load_keys_loaded.load(Ordering::Relaxed).to_string(),
        ),
    ]
}

/// Set LASTSAVE's starting point (Redis: the start time).
pub fn init(server: &Arc<ServerInfo>) {
    crate::persistence::of(server)
        .save
        .last_save_s
        .store(now_ms() / 1000, Ordering::Relaxed);
}
