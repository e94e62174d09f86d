//! One shard's AOF stream (a [`Lane`]) and its writer thread.
//!
//! The one idea to hold: the shard appends records to the lane's buffer and bumps
//! `appended` (a byte count); at the end of its loop turn (`backend::at_turn_end`,
//! after every connection whose request came in with the first one) the buffer goes
//! to the file in one write, as Redis's `beforeSleep` writes its AOF buffer, and
//! `durable` is published, waking the connections waiting for it.
//! - `everysec` and `no`: the shard's thread writes the buffer itself (one `write` to
//!   the page cache per turn, no other thread involved); the writer thread only
//!   fsyncs once a second (`everysec`), through its own handle on the file. While
//!   that fsync runs the writer thread writes instead, since a `write` to a file
//!   being fsynced may wait for the disk (Redis postpones its write then too).
//! - `always`: the turn's end kicks the writer thread, which writes, fsyncs, then
//!   publishes. Every client whose turn ended while the previous fsync ran is covered
//!   by the next one: group commit. The event loop never waits for an fsync.
//! - Whenever the shard cannot write at once (the writer thread is writing or
//!   fsyncing, a rewrite switched files, the last write failed), the turn's end kicks
//!   the writer thread instead, which writes in order.
//! - A write error is kept (INFO, `-MISCONF` for writes and PING) and retried every
//!   second by the writer thread, as Redis's. Under `everysec` and `no`, replies are
//!   released meanwhile ([`Lane::release_while_failed`]), as Redis sends them with
//!   the data still in its AOF buffer: otherwise every client reading that shard, and
//!   every INFO, would wait for the disk to have room again. Under `always` (or an
//!   fsync error under it) the server exits, as Redis's: replies there promise the
//!   data is on disk, and holding them would hang every client of the shard.
//!
//! Measured (benches/README.md, "The AOF written at the end of a turn"): with
//! `everysec`, a cross-thread round trip per batch of replies (the writer's futex
//! wake, its `write`, the eventfd wake back) was what made a SET cost ~1.6x as much
//! with the AOF as without.

use crate::shard::latency;
use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::Waker;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Fsync {
    Always = 0,
    Everysec = 1,
    No = 2,
}

impl Fsync {
    pub fn parse(s: &str) -> Fsync {
        match s {
            "always" => Fsync::Always,
            "no" => Fsync::No,
            _ => Fsync::Everysec,
        }
    }
}

enum Item {
    Data(Vec<u8>),
    /// Continue in this file (a rewrite opened a new increment); the sender says when
    /// the writer has switched (and reset `written`, which `aof_current_size` reads).
    Switch(File, flume::Sender<()>),
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Item>,
    /// Bytes appended so far (the end of the last item).
    total: u64,
    /// The writer sleeps: the next kick must wake it.
    idle: bool,
    /// A kick is due at the end of the appending core's loop turn.
    kick_due: bool,
    /// Kicked since the writer last took the queue: it may take it (it also takes it
    /// to stop, and for the `everysec` fsync).
    go: bool,
    /// The shard's thread wrote since the writer's last fsync (`everysec`).
    dirty: bool,
    stop: bool,
}

/// One shard's stream of records, shared by the shard and its writer thread.
pub struct Lane {
    queue: Mutex<Queue>,
    /// The file records are written to; whoever writes holds this lock (taken with
    /// `queue` held, so writes happen in the order the data was taken).
    file: Mutex<File>,
    wake: Condvar,
    /// Bytes appended so far.
    pub appended: AtomicU64,
    /// Bytes known durable (fsynced under `always`, written otherwise).
    pub durable: AtomicU64,
    /// Bytes written to the file so far (INFO aof_current_size works from it).
    pub written: AtomicU64,
    waiters: Mutex<Vec<(u64, Waker)>>,
    policy: AtomicU8,
    /// Set while the last write failed; the text is Redis's strerror part.
    pub failed: AtomicBool,
    pub error: Mutex<String>,
    /// Last fsync took longer than two seconds (INFO aof_delayed_fsync counts them).
    pub delayed_fsync: AtomicU64,
    /// The writer thread is fsyncing for `everysec`: the shard's thread does not write.
    syncing: AtomicBool,
}

impl Lane {
    /// A lane appending to `file`, whose current size is `size`, with its writer thread.
    pub fn start(shard: usize, file: File, size: u64, policy: Fsync) -> std::io::Result<Arc<Lane>> {
        let sync = file.try_clone()?;
        let lane = Arc::new(Lane {
            queue: Mutex::new(Queue::default()),
            file: Mutex::new(file),
            wake: Condvar::new(),
            appended: AtomicU64::new(0),
            durable: AtomicU64::new(0),
            written: AtomicU64::new(size),
            waiters: Mutex::new(Vec::new()),
            policy: AtomicU8::new(policy as u8),
            failed: AtomicBool::new(false),
            error: Mutex::new(String::new()),
            delayed_fsync: AtomicU64::new(0),
            syncing: AtomicBool::new(false),
        });
        let l = lane.clone();
        std::thread::Builder::new()
            .name(format!("aof-{shard}"))
            .spawn(move || run(l, sync))?;
        Ok(lane)
    }

    pub fn policy(&self) -> Fsync {
        match self.policy.load(Ordering::Relaxed) {
            0 => Fsync::Always,
            2 => Fsync::No,
            _ => Fsync::Everysec,
        }
    }

    pub fn set_policy(&self, p: Fsync) {
        self.policy.store(p as u8, Ordering::Relaxed);
    }

    /// Append `bytes`; returns the stream position after them. They are written at
    /// the end of the appending core's loop turn (see the module comment; off a core's
    /// thread, before this returns).
    pub fn append(self: &Arc<Self>, bytes: Vec<u8>) -> u64 {
        if bytes.is_empty() {
            return self.appended.load(Ordering::Acquire);
        }
        let mut q = lock(&self.queue);
        q.total += bytes.len() as u64;
        match q.items.back_mut() {
            Some(Item::Data(d)) if d.len() < 1 << 20 => d.extend_from_slice(&bytes),
            _ => q.items.push_back(Item::Data(bytes)),
        }
        let total = q.total;
        self.appended.store(total, Ordering::Release);
        let kick = !q.kick_due;
        q.kick_due = true;
        drop(q);
        if kick {
            let lane = self.clone();
            crate::runtime::backend::at_turn_end(move || lane.kick());
        }
        total
    }

    /// At the end of the appending core's turn: write everything appended so far
    /// from here if the policy lets this thread write, else let the writer take it.
    fn kick(&self) {
        let mut q = lock(&self.queue);
        q.kick_due = false;
        if self.policy() != Fsync::Always && self.write_here(&mut q) {
            return;
        }
        q.go = true;
        self.rouse(&mut q);
        drop(q);
        self.release_while_failed();
    }

    /// While the last write failed under `everysec` or `no`: let the replies waiting
    /// for what is appended go (Redis sends them; the data waits in its buffer).
    fn release_while_failed(&self) {
        if self.failed.load(Ordering::Acquire) && self.policy() != Fsync::Always {
            self.publish(self.appended.load(Ordering::Acquire));
        }
    }

    /// Wake the writer thread if it sleeps (`q` is the queue, held).
    fn rouse(&self, q: &mut Queue) {
        if q.idle {
            q.idle = false;
            self.wake.notify_one();
        }
    }

    /// Write the queue from this thread and publish it: true when done, false when
    /// the writer thread must (it is writing or fsyncing, a switch is queued, a
    /// write failed).
    fn write_here(&self, q: &mut Queue) -> bool {
        if self.failed.load(Ordering::Relaxed)
            || self.syncing.load(Ordering::Acquire)
            || q.items.iter().any(|i| matches!(i, Item::Switch(..)))
        {
            return false;
        }
        let Ok(mut file) = self.file.try_lock() else {
            return false;
        };
        let upto = q.total;
        let t = Instant::now();
        let wrote = !q.items.is_empty();
        while let Some(Item::Data(d)) = q.items.front() {
            match write_all(self, &mut file, d) {
                Ok(()) => {
                    q.items.pop_front();
                }
                Err((done, why)) => {
                    // Leave the rest to the writer thread, which retries.
                    if let Some(Item::Data(d)) = q.items.front_mut() {
                        d.drain(..done);
                    }
                    mark_failed(self, &why);
                    return false;
                }
            }
        }
        if q.stop && wrote {
            // The writer thread is gone or going: nothing fsyncs this later.
            sync_retrying(self, &file);
        }
        drop(file);
        latency::add_background("aof-write", t.elapsed().as_millis() as u64);
        if wrote && !q.dirty && self.policy() == Fsync::Everysec {
            // The writer's fsync is due in a second.
            q.dirty = true;
            self.rouse(q);
        }
        self.publish(upto);
        true
    }

    /// Continue the stream in `file` after what is queued so far; the receiver hears
    /// once the writer has switched (it disconnects if the writer stops first).
    pub fn switch(&self, file: File) -> flume::Receiver<()> {
        let (switched, heard) = flume::bounded(1);
        let mut q = lock(&self.queue);
        q.items.push_back(Item::Switch(file, switched));
        q.go = true;
        q.idle = false;
        self.wake.notify_one();
        heard
    }

    /// Write and fsync what is queued, then end the thread (what is appended later
    /// is written and fsynced by the appending thread).
    pub fn stop(&self) {
        let mut q = lock(&self.queue);
        q.stop = true;
        self.wake.notify_one();
    }

    /// Register `waker` to be woken once `durable >= pos`; false if it already is.
    pub fn wait_for(&self, pos: u64, waker: &Waker) -> bool {
        let mut w = lock(&self.waiters);
        if self.durable.load(Ordering::Acquire) >= pos {
            return false;
        }
        w.push((pos, waker.clone()));
        true
    }

    fn publish(&self, pos: u64) {
        // The writer thread and the shard's may publish in either order.
        self.durable.fetch_max(pos, Ordering::AcqRel);
        let ready: Vec<Waker> = {
            let mut w = lock(&self.waiters);
            let (ready, keep): (Vec<_>, Vec<_>) = w.drain(..).partition(|(p, _)| *p <= pos);
            *w = keep;
            ready.into_iter().map(|(_, w)| w).collect()
        };
        for w in ready {
            w.wake();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The writer thread's loop. `sync` is its own handle on the current file, for the
/// `everysec` fsync of what the shard's thread wrote.
fn run(lane: Arc<Lane>, mut sync: File) {
    let mut last_fsync = Instant::now();
    let mut unsynced = false;
    loop {
        let (items, upto, stop, mut file) = {
            let mut q = lock(&lane.queue);
            loop {
                unsynced |= q.dirty;
                if q.stop || (q.go && !q.items.is_empty()) {
                    break;
                }
                // Under `always` every write was fsynced; under `no` none will be.
                let due = unsynced && lane.policy() == Fsync::Everysec;
                if due && last_fsync.elapsed() >= Duration::from_secs(1) {
                    break;
                }
                q.idle = true;
                // With nothing left to fsync, sleep until the next kick: an idle
                // server's writer costs nothing. Otherwise wake for the everysec fsync.
                q = if due {
                    lane.wake
                        .wait_timeout(q, Duration::from_millis(250))
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                } else {
                    lane.wake.wait(q).unwrap_or_else(|e| e.into_inner())
                };
            }
            q.idle = false;
            q.go = false;
            // What the shard's thread wrote so far is covered by the fsync below.
            q.dirty = false;
            // Taken with the queue held: no write can come between the take and this.
            let file = lock(&lane.file);
            (std::mem::take(&mut q.items), q.total, q.stop, file)
        };
        for item in items {
            match item {
                Item::Data(d) => {
                    let t = Instant::now();
                    write_retrying(&lane, &mut file, &d);
                    latency::add_background("aof-write", t.elapsed().as_millis() as u64);
                    unsynced = true;
                }
                Item::Switch(f, switched) => {
                    sync_retrying(&lane, &file);
                    sync = loop {
                        match f.try_clone() {
                            Ok(s) => break s,
                            Err(e) => failed(&lane, &crate::log::strerror(&e)),
                        }
                    };
                    *file = f;
                    lane.written.store(0, Ordering::Relaxed);
                    let _ = switched.send(());
                }
            }
        }
        drop(file);
        let policy = lane.policy();
        if unsynced
            && (policy == Fsync::Always
                || stop
                || (policy == Fsync::Everysec && last_fsync.elapsed() >= Duration::from_secs(1)))
        {
            let t = Instant::now();
            lane.syncing.store(true, Ordering::Release);
            sync_retrying(&lane, &sync);
            lane.syncing.store(false, Ordering::Release);
            if policy == Fsync::Always {
                latency::add_background("aof-fsync-always", t.elapsed().as_millis() as u64);
            }
            if t.elapsed() > Duration::from_secs(2) {
                lane.delayed_fsync.fetch_add(1, Ordering::Relaxed);
            }
            last_fsync = Instant::now();
            unsynced = false;
        }
        lane.publish(upto);
        if stop {
            return;
        }
    }
}

/// Write all of `d`, retrying every second while the disk refuses (full disk...).
fn write_retrying(lane: &Lane, file: &mut File, d: &[u8]) {
    let mut done = 0;
    while let Err((n, why)) = write_all(lane, file, &d[done..]) {
        done += n;
        failed(lane, &why);
    }
    recovered(lane);
}

/// Write all of `d` or stop at the first error: how much was written then, and the
/// error's text.
fn write_all(lane: &Lane, file: &mut File, d: &[u8]) -> Result<(), (usize, String)> {
    let mut done = 0;
    while done < d.len() {
        match file.write(&d[done..]) {
            Ok(0) => return Err((done, "short write".to_string())),
            Ok(n) => {
                done += n;
                lane.written.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err((done, crate::log::strerror(&e))),
        }
    }
    Ok(())
}

fn sync_retrying(lane: &Lane, file: &File) {
    while let Err(e) = file.sync_data() {
        let why = crate::log::strerror(&e);
        if lane.policy() == Fsync::Always {
            crate::log::warning(&format!(
                "Can't persist AOF for fsync error when the AOF fsync policy is 'always': {why}. Exiting..."
            ));
            std::process::exit(1);
        }
        failed(lane, &why);
    }
}

/// Lanes whose last write failed, in the process (one server per process): what
/// admission reads on every write to refuse it with `-MISCONF` before it runs, as
/// Redis's `writeCommandsDeniedByDiskError`, without taking any lock.
static FAILING: AtomicUsize = AtomicUsize::new(0);

/// True while some lane's last write failed.
pub fn any_failing() -> bool {
    FAILING.load(Ordering::Relaxed) != 0
}

impl Drop for Lane {
    fn drop(&mut self) {
        if *self.failed.get_mut() {
            FAILING.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Keep the error (INFO, `-MISCONF`), logged once until the file is written again.
fn mark_failed(lane: &Lane, why: &str) {
    *lock(&lane.error) = why.to_string();
    if !lane.failed.swap(true, Ordering::AcqRel) {
        FAILING.fetch_add(1, Ordering::Relaxed);
        crate::log::warning(&format!("Error writing to the AOF file: {why}"));
    }
    if lane.policy() == Fsync::Always {
        crate::log::warning(
            "Can't recover from AOF write error when the AOF fsync policy is 'always'. Exiting...",
        );
        std::process::exit(1);
    }
    lane.release_while_failed();
}

/// [`mark_failed`], then wait a second before the writer thread retries.
fn failed(lane: &Lane, why: &str) {
    mark_failed(lane, why);
    std::thread::sleep(Duration::from_secs(1));
}

fn recovered(lane: &Lane) {
    if lane.failed.swap(false, Ordering::AcqRel) {
        FAILING.fetch_sub(1, Ordering::Relaxed);
        crate::log::warning("AOF write error looks solved, Redis can write again.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_everything_and_publishes_durable() {
        let dir = std::env::temp_dir().join(format!("shardis-aof-writer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.aof");
        let f = File::create(&path).unwrap();
        let lane = Lane::start(0, f, 0, Fsync::Always).unwrap();
        let mut end = 0;
        for i in 0..100 {
            end = lane.append(format!("{i},").into_bytes());
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while lane.durable.load(Ordering::Acquire) < end && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(lane.durable.load(Ordering::Acquire), end);
        let want: String = (0..100).map(|i| format!("{i},")).collect();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), want);
        lane.stop();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `everysec`: the appending thread writes the file itself at its turn's end (off
    /// a core's thread, at once), so what it appended is written when `append` returns.
    #[test]
    fn everysec_appends_are_written_by_the_appending_thread() {
        let dir = std::env::temp_dir().join(format!("shardis-aof-here-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.aof");
        let lane = Lane::start(0, File::create(&path).unwrap(), 0, Fsync::Everysec).unwrap();
        let mut want = String::new();
        for i in 0..100 {
            let end = lane.append(format!("{i},").into_bytes());
            want.push_str(&format!("{i},"));
            assert_eq!(lane.durable.load(Ordering::Acquire), end);
            assert_eq!(std::fs::read_to_string(&path).unwrap(), want);
        }
        // Under `always` the writer thread writes and fsyncs, after what is written.
        lane.set_policy(Fsync::Always);
        let end = lane.append(b"last".to_vec());
        let deadline = Instant::now() + Duration::from_secs(5);
        while lane.durable.load(Ordering::Acquire) < end && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), want + "last");
        lane.stop();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
