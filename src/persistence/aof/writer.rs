//! One shard's AOF stream (a [`Lane`]) and the writer thread that owns its file.
//!
//! The one idea to hold: the shard never touches the disk. It appends records to the
//! lane's buffer and bumps `appended` (a byte count); the writer thread takes
//! everything pending in one go, writes it, and (with `appendfsync always`) fsyncs,
//! then publishes `durable` and wakes the connections waiting for it. Every client
//! that appended while the previous fsync ran is covered by the next one: group
//! commit. `everysec` writes at once and fsyncs once a second; `no` never fsyncs. A
//! write error is kept (INFO, `-MISCONF`) and retried every second; `durable` does not
//! move past data that is not written, so no reply is released on top of it.

use crate::shard::latency;
use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
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
    /// Continue in this file (a rewrite opened a new increment).
    Switch(File),
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Item>,
    /// Bytes appended so far (the end of the last item).
    total: u64,
    /// The writer sleeps: the next append must wake it.
    idle: bool,
    stop: bool,
}

/// One shard's stream of records, shared by the shard and its writer thread.
pub struct Lane {
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Bytes handed to the writer so far.
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
}

impl Lane {
    /// A lane appending to `file`, whose current size is `size`, with its writer thread.
    pub fn start(shard: usize, file: File, size: u64, policy: Fsync) -> std::io::Result<Arc<Lane>> {
        let lane = Arc::new(Lane {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            appended: AtomicU64::new(0),
            durable: AtomicU64::new(0),
            written: AtomicU64::new(size),
            waiters: Mutex::new(Vec::new()),
            policy: AtomicU8::new(policy as u8),
            failed: AtomicBool::new(false),
            error: Mutex::new(String::new()),
            delayed_fsync: AtomicU64::new(0),
        });
        let l = lane.clone();
        std::thread::Builder::new()
            .name(format!("aof-{shard}"))
            .spawn(move || run(l, file))?;
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

    /// Hand `bytes` to the writer; returns the stream position after them.
    pub fn append(&self, bytes: Vec<u8>) -> u64 {
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
        if q.idle {
            q.idle = false;
            self.wake.notify_one();
        }
        total
    }

    /// Continue the stream in `file` after what is queued so far.
    pub fn switch(&self, file: File) {
        let mut q = lock(&self.queue);
        q.items.push_back(Item::Switch(file));
        q.idle = false;
        self.wake.notify_one();
    }

    /// Write and fsync what is queued, then end the thread.
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
        self.durable.store(pos, Ordering::Release);
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

/// The writer thread's loop.
fn run(lane: Arc<Lane>, mut file: File) {
    let mut last_fsync = Instant::now();
    let mut unsynced = false;
    loop {
        let (items, upto, stop) = {
            let mut q = lock(&lane.queue);
            while q.items.is_empty() && !q.stop {
                q.idle = true;
                // With nothing left to fsync, sleep until the next append: an idle
                // server's writer costs nothing. Otherwise wake for the everysec fsync.
                q = if unsynced {
                    lane.wake
                        .wait_timeout(q, Duration::from_millis(250))
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                } else {
                    lane.wake.wait(q).unwrap_or_else(|e| e.into_inner())
                };
                if q.items.is_empty() && unsynced && last_fsync.elapsed() >= Duration::from_secs(1)
                {
                    break;
                }
            }
            q.idle = false;
            (std::mem::take(&mut q.items), q.total, q.stop)
        };
        let mut pos = lane.durable.load(Ordering::Acquire);
        for item in items {
            match item {
                Item::Data(d) => {
                    let t = Instant::now();
                    write_retrying(&lane, &mut file, &d);
                    latency::add_background("aof-write", t.elapsed().as_millis() as u64);
                    pos += d.len() as u64;
                    unsynced = true;
                }
                Item::Switch(f) => {
                    sync_retrying(&lane, &file);
                    file = f;
                    lane.written.store(0, Ordering::Relaxed);
                }
            }
        }
        debug_assert!(pos == upto);
        let policy = lane.policy();
        if unsynced
            && (policy == Fsync::Always
                || stop
                || (policy == Fsync::Everysec && last_fsync.elapsed() >= Duration::from_secs(1)))
        {
            let t = Instant::now();
            sync_retrying(&lane, &file);
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
    while done < d.len() {
        match file.write(&d[done..]) {
            Ok(0) => failed(lane, "short write"),
            Ok(n) => {
                done += n;
                lane.written.fetch_add(n as u64, Ordering::Relaxed);
                recovered(lane);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => failed(lane, &os_error(&e)),
        }
    }
}

fn sync_retrying(lane: &Lane, file: &File) {
    while let Err(e) = file.sync_data() {
        failed(lane, &os_error(&e));
    }
}

/// The error's text without Rust's " (os error N)" suffix, as Redis's strerror.
fn os_error(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn failed(lane: &Lane, why: &str) {
    if !lane.failed.swap(true, Ordering::AcqRel) {
        crate::log::log(&format!("Error writing to the AOF file: {why}"));
    }
    *lock(&lane.error) = why.to_string();
    std::thread::sleep(Duration::from_secs(1));
}

fn recovered(lane: &Lane) {
    if lane.failed.swap(false, Ordering::AcqRel) {
        crate::log::log("AOF write error looks solved, Redis can write again.");
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
}
