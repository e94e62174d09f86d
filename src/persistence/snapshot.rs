//! Snapshots without fork: each shard writes its keys as RDB records between requests,
//! and an entry is written before anything changes it.
//!
//! # The plan
//! A snapshot of a shard has an *epoch* (a per-shard counter) and, per database, a
//! SCAN cursor over the key dict ([`DbSnapshot`], kept in `Db::snapshot`):
//! - **Cursor.** [`step`] advances the cursors a slice at a time, writing each entry
//!   it meets unless the entry carries the snapshot's epoch. The dict may grow while
//!   the cursor moves (SCAN's guarantee covers that); it must not shrink, so the cron
//!   leaves a database alone while a snapshot runs on it.
//! - **Copy on write.** Before any change to a key, `Db` calls
//!   [`DbSnapshot::before_write`]. If the key is still ahead of the cursor
//!   (`Dict::scan_position` says which side it is on) and unstamped, its current value
//!   is written now and the entry stamped; a key created ahead of the cursor is stamped
//!   at birth. So every key is written exactly once, with its value at the start.
//!   Expiry deletions skip this: a key deleted by its TTL during the snapshot is
//!   already expired when the file can be loaded.
//! - **FLUSHDB / FLUSHALL** hand the whole old dicts to the snapshot (`detach`), which
//!   finishes from them; the live database starts empty and untracked.
//! - **SWAPDB** swaps `Db` values, snapshot state included, and each state remembers
//!   the database index it writes under.
//! - **Memory.** The only extra memory is the records waiting to be written (the
//!   slice being built, and the chunks queued to the writer): [`Progress::peak_bytes`]
//!   is reported as INFO's `rdb_last_cow_size`.
//!
//! The records leave in chunks (`Chunk`): a database index and bytes holding whole
//! records. The file side (header, SELECTDB, EOF, CRC64, fsync, rename) is `save`'s.

use crate::persistence::rdb::encode::{self, Options};
use crate::shard::Shard;
use crate::storage::db::{BeforeWrite, Entry};
use crate::storage::{CompactBytes, Dict};
use std::time::{Duration, Instant};

/// Bytes of records gathered before a chunk is handed to the writer.
pub const CHUNK_BYTES: usize = 32 * 1024;

/// A database's key and expire dicts, handed over by FLUSHDB.
type Detached = (Dict<CompactBytes, Entry>, Dict<CompactBytes, u64>);

/// One database's share of a running snapshot.
pub struct DbSnapshot {
    pub epoch: u32,
    /// The database index the records are written under (stays put across SWAPDB).
    pub db_index: usize,
    cursor: u64,
    done: bool,
    /// The dicts as they were when FLUSHDB emptied the live database.
    detached: Option<Box<Detached>>,
    /// Records written and not yet handed over.
    pub out: Vec<u8>,
    opts: Options,
    pub keys_written: u64,
}

impl DbSnapshot {
    pub fn new(epoch: u32, db_index: usize, opts: Options) -> DbSnapshot {
        DbSnapshot {
            epoch,
            db_index,
            cursor: 0,
            done: false,
            detached: None,
            out: Vec::new(),
            opts,
            keys_written: 0,
        }
    }

    pub fn is_done(&self) -> bool {
        self.done
    }
}

impl BeforeWrite for DbSnapshot {
    /// Copy-on-write, called before `key` is changed, replaced or deleted. Returns the
    /// stamp an entry created under `key` now must carry (0: none needed).
    fn before_write(
        &mut self,
        keys: &mut Dict<CompactBytes, Entry>,
        expires: &Dict<CompactBytes, u64>,
        key: &[u8],
    ) -> u32 {
        if self.done || self.detached.is_some() {
            return 0;
        }
        if keys.scan_position(key) < self.cursor.reverse_bits() {
            return 0; // the cursor has passed it
        }
        if let Some(e) = keys.get_mut(key) {
            if e.snap != self.epoch {
                e.snap = self.epoch;
                let at = expires.get(key).copied();
                encode::entry(&mut self.out, key, &e.value, at, self.opts);
                self.keys_written += 1;
            }
        }
        self.epoch
    }

    fn wants_contents(&self) -> bool {
        !self.done
    }

    /// FLUSHDB during the snapshot: keep the old contents to finish from.
    fn detach(&mut self, keys: Dict<CompactBytes, Entry>, expires: Dict<CompactBytes, u64>) {
        if !self.done && self.detached.is_none() {
            self.detached = Some(Box::new((keys, expires)));
        }
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

impl DbSnapshot {
    /// Advance the cursor until `out` holds a chunk or `deadline` passes.
    fn advance(
        &mut self,
        keys: &Dict<CompactBytes, Entry>,
        expires: &Dict<CompactBytes, u64>,
        deadline: Instant,
    ) {
        let (keys, expires) = match &self.detached {
            Some(d) => (&d.0, &d.1),
            None => (keys, expires),
        };
        let (epoch, opts) = (self.epoch, self.opts);
        let mut steps = 0u32;
        while !self.done && self.out.len() < CHUNK_BYTES {
            let out = &mut self.out;
            let written = &mut self.keys_written;
            self.cursor = keys.scan(self.cursor, |k, e| {
                if e.snap != epoch {
                    let at = expires.get(k.as_slice()).copied();
                    encode::entry(out, k.as_slice(), &e.value, at, opts);
                    *written += 1;
                }
            });
            if self.cursor == 0 {
                self.done = true;
            }
            steps += 1;
            if steps.is_multiple_of(64) && Instant::now() >= deadline {
                break;
            }
        }
    }
}

/// A chunk of whole records of one database.
pub struct Chunk {
    pub db: usize,
    pub bytes: Vec<u8>,
}

/// What a shard's snapshot has done so far.
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    pub keys: u64,
    pub bytes: u64,
    /// Most record bytes held at once by this shard (built, not yet handed over).
    pub peak_bytes: u64,
}

/// The snapshot running on a shard (in `Shard::snapshot`, which holds it opaquely:
/// reach it with [`running`], [`running_mut`], [`take`]).
pub struct ShardSnapshot {
    pub epoch: u32,
    pub sink: flume::Sender<super::save::ToWriter>,
    pub progress: Progress,
    pub purpose: Purpose,
}

impl ShardSnapshot {
    /// Write as fast as possible (SAVE, SHUTDOWN) instead of leaving room to clients.
    pub fn foreground(&self) -> bool {
        self.purpose == Purpose::Save { foreground: true }
    }
}

/// Who takes a snapshot: the save machinery, in the foreground (SAVE, SHUTDOWN) or
/// not (BGSAVE, a save point: FLUSHALL stops those, [`stop_background_save`]), or a
/// copy for someone else (a replica's sync, an AOF rewrite's base).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Purpose {
    Save { foreground: bool },
    Copy,
}

/// The snapshot running on `shard`, if any.
pub fn running(shard: &Shard) -> Option<&ShardSnapshot> {
    shard.snapshot.as_ref()?.downcast_ref()
}

/// The snapshot running on `shard`, if any, to update.
pub fn running_mut(shard: &mut Shard) -> Option<&mut ShardSnapshot> {
    shard.snapshot.as_mut()?.downcast_mut()
}

/// Remove the (finished) snapshot from `shard`.
pub fn take(shard: &mut Shard) -> Option<ShardSnapshot> {
    shard
        .snapshot
        .take()
        .and_then(|s| s.downcast().ok())
        .map(|s| *s)
}

/// Start a snapshot of `shard` now: every database gets a cursor at its start.
/// Fails if one is already running on this shard.
pub fn begin(
    shard: &mut Shard,
    sink: flume::Sender<super::save::ToWriter>,
    purpose: Purpose,
) -> Result<(), String> {
    if shard.snapshot.is_some() {
        return Err("a snapshot is already running".into());
    }
    shard.snapshot_epoch = shard.snapshot_epoch.wrapping_add(1).max(1);
    let epoch = shard.snapshot_epoch;
    let opts = Options {
        compress: shard.config.get_bool("rdbcompression"),
    };
    for (i, db) in shard.dbs.iter_mut().enumerate() {
        db.snapshot = Some(Box::new(DbSnapshot::new(epoch, i, opts)));
    }
    shard.snapshot = Some(Box::new(ShardSnapshot {
        epoch,
        sink,
        progress: Progress::default(),
        purpose,
    }));
    // The shard's save driver sleeps until a snapshot exists: wake it.
    if let Some(w) = shard.snapshot_waiter.take() {
        w.wake();
    }
    Ok(())
}

/// Run the snapshot on `shard` for up to `budget`: the chunks ready to hand over,
/// whether the snapshot is complete (its state is then removed from the shard), and
/// how many keys this step wrote.
pub fn step(shard: &mut Shard, budget: Duration) -> (Vec<Chunk>, bool, u64) {
    let deadline = Instant::now() + budget;
    let mut chunks = Vec::new();
    let mut all_done = true;
    let mut held = 0u64;
    let mut stepped = 0u64;
    for db in shard.dbs.iter_mut() {
        let Some(snap) = db
            .snapshot
            .as_mut()
            .and_then(|s| s.as_any_mut().downcast_mut::<DbSnapshot>())
        else {
            continue;
        };
        // Every slice moves every unfinished cursor at least one step.
        if !snap.done {
            let before = snap.keys_written;
            snap.advance(&db.keys, &db.expires, deadline);
            stepped += snap.keys_written - before;
            if snap.done {
                snap.detached = None; // the old contents of a FLUSHDB are written
            }
        }
        held += snap.out.len() as u64;
        if snap.out.len() >= CHUNK_BYTES || (snap.done && !snap.out.is_empty()) {
            chunks.push(Chunk {
                db: snap.db_index,
                bytes: std::mem::take(&mut snap.out),
            });
        }
        all_done &= snap.done && snap.out.is_empty();
    }
    if let Some(s) = running_mut(shard) {
        s.progress.peak_bytes = s.progress.peak_bytes.max(held);
        s.progress.bytes += chunks.iter().map(|c| c.bytes.len() as u64).sum::<u64>();
    }
    if all_done {
        let mut keys = 0;
        for db in shard.dbs.iter_mut() {
            if let Some(mut s) = db.snapshot.take() {
                if let Some(s) = s.as_any_mut().downcast_mut::<DbSnapshot>() {
                    keys += s.keys_written;
                }
            }
        }
        if let Some(s) = running_mut(shard) {
            s.progress.keys = keys;
        }
    }
    (chunks, all_done, stepped)
}

/// Abandon the snapshot on `shard` (the file could not be written).
pub fn abort(shard: &mut Shard) {
    for db in shard.dbs.iter_mut() {
        db.snapshot = None;
    }
    shard.snapshot = None;
}

/// FLUSHALL, on each shard as it empties it: stop the snapshot of a background save
/// (as Redis kills its RDB child), not a replica's or a foreground one; whether one
/// was stopped.
pub fn stop_background_save(shard: &mut Shard) -> bool {
    let stop = running(shard).is_some_and(|s| s.purpose == Purpose::Save { foreground: false });
    if stop {
        abort(shard);
    }
    stop
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ConfigHandle};
    use crate::persistence::rdb::decode::{Item, Reader};
    use crate::storage::Value;
    use std::collections::BTreeMap;

    fn shard() -> Shard {
        Shard::new(0, 1, ConfigHandle::new(Config::default()))
    }

    fn string(v: &str) -> Value {
        Value::Str(crate::storage::value::StrValue::from_bytes(v.as_bytes()))
    }

    /// Runs a snapshot to completion while `write` changes the shard between slices,
    /// and returns what the records say: key -> value bytes (strings only).
    fn snapshot_with(
        sh: &mut Shard,
        mut write: impl FnMut(&mut Shard, usize),
    ) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let (tx, _rx) = flume::unbounded();
        begin(sh, tx, Purpose::Copy).unwrap();
        let mut bytes = Vec::new();
        encode::header(&mut bytes, false, 0, &[], &[]);
        let mut round = 0;
        loop {
            let (chunks, done, _) = step(sh, Duration::from_micros(1));
            for c in chunks {
                encode::select_db(&mut bytes, c.db);
                bytes.extend_from_slice(&c.bytes);
            }
            if done {
                break;
            }
            write(sh, round);
            round += 1;
        }
        sh.snapshot = None;
        encode::eof(&mut bytes);
        bytes.extend_from_slice(&[0; 8]);
        let mut r = Reader::new(&bytes[..], Default::default()).unwrap();
        let mut got = BTreeMap::new();
        while let Some(item) = r.next().unwrap() {
            if let Item::Entry {
                key,
                value: Value::Str(s),
                ..
            } = item
            {
                assert!(
                    got.insert(key.to_vec(), s.as_bytes().to_vec()).is_none(),
                    "written twice"
                );
            }
        }
        got
    }

    #[test]
    fn writes_the_state_at_the_start_despite_writes_during() {
        let mut sh = shard();
        let now = crate::clock::now_ms();
        for i in 0..5000 {
            sh.dbs[0].set(format!("k{i}").as_bytes(), string(&format!("v{i}")), false);
        }
        let got = snapshot_with(&mut sh, |s, round| {
            // Overwrite, delete, create and grow the table between slices.
            for j in 0..50 {
                let i = (round * 97 + j * 31) % 5000;
                let key = format!("k{i}");
                match j % 3 {
                    0 => s.dbs[0].set(key.as_bytes(), string("changed"), false),
                    1 => {
                        s.dbs[0].remove(key.as_bytes());
                    }
                    _ => {
                        if let Some(e) = s.dbs[0].lookup(key.as_bytes(), now) {
                            e.value = string("in place");
                        }
                    }
                }
                s.dbs[0].set(format!("new{round}-{j}").as_bytes(), string("new"), false);
            }
        });
        assert_eq!(got.len(), 5000);
        for i in 0..5000 {
            assert_eq!(got[format!("k{i}").as_bytes()], format!("v{i}").as_bytes());
        }
    }

    #[test]
    fn flushdb_during_the_snapshot_keeps_the_old_contents() {
        let mut sh = shard();
        for i in 0..3000 {
            sh.dbs[0].set(format!("k{i}").as_bytes(), string("v"), false);
        }
        let got = snapshot_with(&mut sh, |s, round| {
            if round == 1 {
                s.dbs[0].clear();
            }
            s.dbs[0].set(format!("after{round}").as_bytes(), string("x"), false);
        });
        assert_eq!(got.len(), 3000);
        assert!(got.keys().all(|k| k.starts_with(b"k")));
    }
}
