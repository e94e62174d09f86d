//! The replication stream: one buffer holding the backlog and every replica's unsent
//! bytes (Redis 7.0's shared replication buffer), and the per-shard [`Feed`] that
//! appends the shards' units to it (the module doc of `replication` argues the order).
//!
//! Offsets are Redis's: `end` (`master_repl_offset`) counts every byte ever appended;
//! the buffer holds the last bytes, offsets `first_byte() ..= end`. A replica's
//! reader is at the offset of the last byte sent to it. The buffer keeps what the
//! slowest reader has not been sent and at least `repl-backlog-size` bytes; a reader
//! further behind than its `client-output-buffer-limit replica` is cut off.

use super::{LinkState, Role};
/// One command as a RESP array of bulk strings: the AOF's encoding, the stream's too.
pub use crate::persistence::aof::record::encode;
use crate::persistence::aof::record::{encode_owned, select};
use crate::shard::propagation::{meant_for, Consumer, Effect, Unit, TO_REPLICAS};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// The buffer's allocated bytes, `repl-backlog-size`, and whether any replica reads,
/// published at every change so that INFO and the eviction check (before every
/// command under `maxmemory`) read them without the replication lock.
static BUFFER_MEM: AtomicU64 = AtomicU64::new(0);
static BUFFER_LEN: AtomicU64 = AtomicU64::new(0);
static BACKLOG_SIZE: AtomicU64 = AtomicU64::new(1 << 20);
static HAS_READERS: AtomicBool = AtomicBool::new(false);

/// The replication buffer's memory as Redis 7.0 splits it (`getMemoryOverheadData`):
/// up to `repl-backlog-size` is the backlog's; past it, while replicas read, the
/// rest is theirs.
#[derive(Clone, Copy, Debug, Default)]
pub struct BufferMemory {
    /// `mem_total_replication_buffers`.
    pub total: u64,
    /// `mem_replication_backlog`.
    pub backlog: u64,
    /// The replicas' share (in `mem_clients_slaves`).
    pub replicas: u64,
}

pub fn buffer_memory() -> BufferMemory {
    let total = BUFFER_MEM.load(Ordering::Relaxed);
    let replicas = if HAS_READERS.load(Ordering::Relaxed) {
        not_counted_for_evict().min(total)
    } else {
        0
    };
    BufferMemory {
        total,
        backlog: total - replicas,
        replicas,
    }
}

/// What `maxmemory` does not count of the buffer (Redis's
/// `freeMemoryGetNotCountedMemory`): the bytes it holds past `repl-backlog-size`,
/// unsent to a slow replica, so that a slow replica gets no keys evicted.
pub fn not_counted_for_evict() -> u64 {
    BUFFER_LEN
        .load(Ordering::Relaxed)
        .saturating_sub(BACKLOG_SIZE.load(Ordering::Relaxed))
}

/// A replica's progress in the handshake and sync, as INFO's `state=` names it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ReaderState {
    WaitBgsave,
    SendBulk,
    Online,
}

impl ReaderState {
    pub fn name(self) -> &'static str {
        match self {
            ReaderState::WaitBgsave => "wait_bgsave",
            ReaderState::SendBulk => "send_bulk",
            ReaderState::Online => "online",
        }
    }
}

/// One replica we feed.
pub struct Reader {
    /// Its client id.
    pub id: u64,
    pub ip: String,
    pub port: u16,
    pub state: ReaderState,
    /// Offset of the last byte handed to it.
    pub pos: u64,
    /// Its last REPLCONF ACK offset, and when it came.
    pub ack: u64,
    pub ack_ms: u64,
    /// `REPLCONF rdb-only 1`: it takes the RDB and goes (not listed as a replica).
    pub rdb_only: bool,
    /// Woken when bytes are appended (or it is cut off).
    wake: flume::Sender<()>,
    /// Cut off: too far behind (its output buffer limit), or told to go.
    pub cut: bool,
    /// Cut off because it was told to go (`cut_all`), not for its limit.
    told_to_go: bool,
    /// When it was first found past the soft limit (0: it is not).
    soft_since: std::cell::Cell<u64>,
}

/// `repl-backlog-size`, at least 16 KB as Redis allows.
pub fn backlog_size(cfg: &crate::config::Config) -> usize {
    cfg.get_int("repl-backlog-size").max(16 * 1024) as usize
}

/// The stream and the rest of the replication state behind the same lock.
pub struct Stream {
    pub role: Role,
    pub replid: String,
    pub replid2: String,
    /// Offset up to which `replid2` is valid (-1: none).
    pub second_offset: i64,
    buf: VecDeque<u8>,
    /// `master_repl_offset`.
    pub end: u64,
    /// `end` after the last data appended (not a PING or GETACK of ours): what WAIT
    /// waits for.
    pub data_end: u64,
    pub backlog_active: bool,
    pub backlog_size: usize,
    /// The db the stream's last SELECT named.
    selected: Option<usize>,
    /// Replica side: the db our master's stream last selected. Redis keeps it in its
    /// cached master: a link that continues partially starts there, since the master
    /// does not name it again.
    pub master_db: usize,
    pub readers: Vec<Reader>,
    /// Multi-shard transactions appended, and how many of their shards have yet to
    /// conclude them.
    txs: HashMap<u64, usize>,
    /// Replica side: the link's state, the bytes read from the master (INFO
    /// `slave_read_repl_offset`), the last I/O with it, when it went down.
    pub link: LinkState,
    pub read_offset: u64,
    pub last_io_ms: u64,
    pub down_since_ms: u64,
    /// Waiters of WAIT, woken when an ACK comes.
    pub ack_waiters: Vec<flume::Sender<()>>,
    /// Since when a master with a backlog has had no replica (`repl-backlog-ttl`).
    pub no_replicas_since_ms: u64,
    /// FAILOVER in progress, if any.
    pub failover: Option<super::failover::Failover>,
    /// `client-output-buffer-limit replica`, as last read from the configuration.
    pub replica_limit: crate::config::OutputLimit,
}

impl Stream {
    pub fn new(replid: String) -> Stream {
        Stream {
            role: Role::Master,
            replid,
            replid2: "0".repeat(40),
            second_offset: -1,
            buf: VecDeque::new(),
            end: 0,
            data_end: 0,
            backlog_active: false,
            backlog_size: 1 << 20,
            selected: None,
            master_db: 0,
            readers: Vec::new(),
            txs: HashMap::new(),
            link: LinkState::Down,
            read_offset: 0,
            last_io_ms: 0,
            down_since_ms: 0,
            ack_waiters: Vec::new(),
            no_replicas_since_ms: crate::clock::now_ms(),
            failover: None,
            replica_limit: crate::config::OutputLimit::default(),
        }
    }

    /// Redis's `repl_backlog_first_byte_offset`: the offset of the oldest byte held
    /// (0 with no backlog).
    pub fn first_byte(&self) -> u64 {
        if !self.backlog_active {
            return 0;
        }
        self.end - self.buf.len() as u64 + 1
    }

    /// Bytes of history held (`repl_backlog_histlen`).
    pub fn histlen(&self) -> usize {
        self.buf.len().min(self.backlog_size)
    }

    /// Take `repl-backlog-size` and `client-output-buffer-limit replica` from `cfg`.
    pub fn configure(&mut self, cfg: &crate::config::Config) {
        self.backlog_size = backlog_size(cfg);
        self.replica_limit =
            cfg.client_output_buffer_limit[crate::client::ClientClass::Replica as usize];
        self.publish_memory();
    }

    /// Start keeping a backlog (the first replica).
    pub fn activate(&mut self) {
        if !self.backlog_active {
            self.backlog_active = true;
            self.buf.clear();
            // Redis starts a new backlog's stream with a SELECT.
            self.selected = None;
        }
        self.publish_memory();
    }

    /// The db a snapshot taken now says the stream goes on in (`repl-stream-db`): 0 on
    /// a master, whose next command names its db (see `force_select`); on a replica,
    /// which passes its master's stream on as it came, the db that stream selected.
    pub fn stream_db(&self) -> usize {
        match self.role {
            Role::Master => 0,
            _ => self.master_db,
        }
    }

    /// Make the next command name its db. A replica synced from a snapshot starts in db
    /// 0 (its RDB says `repl-stream-db` 0), wherever the stream's last SELECT left off,
    /// as Redis's `slaveseldb = -1` at each full sync.
    pub fn force_select(&mut self) {
        self.selected = None;
    }

    /// Drop the backlog (`repl-backlog-ttl` after the last replica, or a role change
    /// that starts a new history).
    pub fn deactivate(&mut self) {
        self.backlog_active = false;
        self.buf = VecDeque::new();
        self.publish_memory();
    }

    /// Append raw stream bytes (a replica's copy of its master's stream, or PINGs).
    pub fn append(&mut self, bytes: &[u8]) {
        if !self.backlog_active || bytes.is_empty() {
            self.end += bytes.len() as u64;
            return;
        }
        self.buf.extend(bytes);
        self.end += bytes.len() as u64;
        self.enforce_limit();
        self.trim();
        for r in &self.readers {
            let _ = r.wake.try_send(());
        }
    }

    /// Append `effects` as one unit (MULTI / EXEC around more than one record).
    pub fn append_effects(&mut self, effects: &[Effect]) {
        let mut out = Vec::new();
        let wrap = effects.len() > 1;
        if wrap {
            // The first record's SELECT goes before MULTI, as Redis 7.0 writes it.
            select(&mut self.selected, &mut out, effects[0].db);
            encode(&mut out, &[b"MULTI"]);
        }
        for e in effects {
            select(&mut self.selected, &mut out, e.db);
            encode_owned(&mut out, &e.argv);
        }
        if wrap {
            encode(&mut out, &[b"EXEC"]);
        }
        self.append_data(&out);
    }

    /// Append data (a write's records, or the master's stream a replica copies).
    pub fn append_data(&mut self, bytes: &[u8]) {
        self.append(bytes);
        self.data_end = self.end;
    }

    /// Forget bytes nobody needs: those every reader has been sent and older than the
    /// backlog's size.
    fn trim(&mut self) {
        let keep_from_backlog = self.end.saturating_sub(self.backlog_size as u64);
        let slowest = self
            .readers
            .iter()
            .filter(|r| !r.cut)
            .map(|r| r.pos)
            .min()
            .unwrap_or(u64::MAX);
        let keep_after = keep_from_backlog.min(slowest);
        let first = self.end - self.buf.len() as u64; // offset before the first byte
        if keep_after > first {
            let n = ((keep_after - first) as usize).min(self.buf.len());
            self.buf.drain(..n);
        }
        self.publish_memory();
    }

    /// Give back room a slow replica left behind once nobody needs it, and publish
    /// the buffer's memory (see [`buffer_memory`]).
    fn publish_memory(&mut self) {
        let wanted = self.buf.len().max(self.backlog_size);
        if self.buf.capacity() > 2 * wanted {
            self.buf.shrink_to(wanted);
        }
        BUFFER_MEM.store(self.buf.capacity() as u64, Ordering::Relaxed);
        BUFFER_LEN.store(self.buf.len() as u64, Ordering::Relaxed);
        BACKLOG_SIZE.store(self.backlog_size as u64, Ordering::Relaxed);
        HAS_READERS.store(
            self.readers.iter().any(|r| !r.cut && !r.rdb_only),
            Ordering::Relaxed,
        );
    }

    /// True if `offset` (the next byte a replica wants) can be served from the backlog.
    pub fn can_continue(&self, offset: u64) -> bool {
        self.backlog_active && offset >= self.first_byte() && offset <= self.end + 1
    }

    /// Add a reader whose next byte is `pos + 1`; its wake-up receiver.
    pub fn add_reader(
        &mut self,
        id: u64,
        ip: String,
        port: u16,
        pos: u64,
        rdb_only: bool,
    ) -> flume::Receiver<()> {
        let (tx, rx) = flume::bounded(1);
        self.readers.retain(|r| r.id != id);
        self.readers.push(Reader {
            id,
            ip,
            port,
            state: ReaderState::WaitBgsave,
            pos,
            ack: 0,
            ack_ms: crate::clock::now_ms(),
            rdb_only,
            wake: tx,
            cut: false,
            told_to_go: false,
            soft_since: std::cell::Cell::new(0),
        });
        self.publish_memory();
        rx
    }

    /// A new wake-up channel for reader `id` (the task that feeds it took over).
    pub fn wake_channel(&mut self, id: u64) -> Option<flume::Receiver<()>> {
        let (tx, rx) = flume::bounded(1);
        self.reader(id)?.wake = tx;
        Some(rx)
    }

    pub fn reader(&mut self, id: u64) -> Option<&mut Reader> {
        self.readers.iter_mut().find(|r| r.id == id)
    }

    pub fn remove_reader(&mut self, id: u64) {
        self.readers.retain(|r| r.id != id);
        self.trim();
    }

    /// Copy up to `max` bytes after reader `id`'s position into `out` and advance it;
    /// false if it was cut off (or is gone).
    pub fn read(&mut self, id: u64, out: &mut Vec<u8>, max: usize) -> bool {
        let first = self.end - self.buf.len() as u64;
        let Some(r) = self.readers.iter_mut().find(|r| r.id == id) else {
            return false;
        };
        if r.cut || r.pos < first {
            r.cut = true;
            return false;
        }
        let from = (r.pos - first) as usize;
        let n = (self.buf.len() - from).min(max);
        let (a, b) = self.buf.as_slices();
        let (until_a, rest) = (a.len().min(from + n), (from + n).saturating_sub(a.len()));
        if from < a.len() {
            out.extend_from_slice(&a[from..until_a]);
        }
        out.extend_from_slice(&b[from.saturating_sub(a.len())..rest]);
        r.pos += n as u64;
        self.trim();
        true
    }

    /// Reader `id` was cut off for falling too far behind (not told to go).
    pub fn over_limit(&self, id: u64) -> bool {
        self.readers
            .iter()
            .find(|r| r.id == id)
            .is_some_and(|r| r.cut && !r.told_to_go)
    }

    /// True if reader `id` was cut off (or is gone).
    pub fn is_cut(&self, id: u64) -> bool {
        self.readers
            .iter()
            .find(|r| r.id == id)
            .is_none_or(|r| r.cut)
    }

    /// Cut off the readers further behind than `client-output-buffer-limit replica`
    /// allows (checked as bytes are appended, so a replica still receiving its RDB is
    /// held to it too, as Redis holds a replica's buffered writes).
    fn enforce_limit(&mut self) {
        let limit = self.replica_limit;
        if limit.hard == 0 && limit.soft == 0 {
            return;
        }
        let end = self.end;
        for r in &mut self.readers {
            if !r.cut
                && crate::client::limit_reached(limit, end - r.pos, &r.soft_since, || {
                    crate::clock::now_ms() / 1000
                })
            {
                r.cut = true;
                let _ = r.wake.try_send(());
            }
        }
    }

    /// A replica acknowledged `offset`: wake WAIT's waiters.
    pub fn ack(&mut self, id: u64, offset: u64) {
        if let Some(r) = self.reader(id) {
            r.ack = r.ack.max(offset);
            r.ack_ms = crate::clock::now_ms();
        }
        for w in self.ack_waiters.drain(..) {
            let _ = w.try_send(());
        }
    }

    /// Replicas (not rdb-only) that acknowledged at least `offset`.
    pub fn acked(&self, offset: u64) -> usize {
        self.readers
            .iter()
            .filter(|r| !r.rdb_only && r.state == ReaderState::Online && r.ack >= offset)
            .count()
    }

    /// A new history starts here (we become a master after being a replica, or take a
    /// new master's id): the old id stays valid up to the current offset (PSYNC2).
    pub fn shift_replid(&mut self, new: String) {
        self.replid2 = std::mem::replace(&mut self.replid, new);
        self.second_offset = self.end as i64 + 1;
    }

    /// Cut every reader off (REPLICAOF changes the data set's history).
    pub fn cut_all(&mut self) {
        for r in &mut self.readers {
            r.cut = true;
            r.told_to_go = true;
            let _ = r.wake.try_send(());
        }
    }

    /// A multi-shard transaction `id` over `set` concludes on one of its shards: true
    /// the first time (that shard appends it), false for the others.
    fn first_conclusion(&mut self, id: u64, set: usize) -> bool {
        match self.txs.get_mut(&id) {
            Some(left) => {
                *left -= 1;
                if *left == 0 {
                    self.txs.remove(&id);
                }
                false
            }
            None => {
                if set > 1 {
                    self.txs.insert(id, set - 1);
                }
                true
            }
        }
    }
}

/// A shard's consumer: appends its units to the stream.
pub struct Feed {
    pub server: Arc<crate::runtime::hop::ServerInfo>,
}

impl Feed {
    /// Attach a feed to `shard` unless one is there (through `Shard::attach`, so keys
    /// that expire or are evicted from now on reach the replicas as DELs).
    pub fn attach(shard: &mut crate::shard::Shard, server: &Arc<crate::runtime::hop::ServerInfo>) {
        if shard.propagation.consumer_mut::<Feed>().is_none() {
            shard.attach(Box::new(Feed {
                server: server.clone(),
            }));
        }
    }
}

impl Consumer for Feed {
    fn apply(&mut self, unit: Unit<'_>) {
        let st = super::of(&self.server);
        // A replica's stream is its master's, copied by the link as it applies it.
        if st.is_replica.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let mut s = st.lock();
        match unit {
            Unit::Command(effects) | Unit::Block(effects) => {
                let effects = meant_for(effects, TO_REPLICAS);
                if !effects.is_empty() {
                    s.append_effects(&effects);
                }
            }
            Unit::Transaction {
                shard,
                id,
                set,
                effects,
            } => {
                if set.contains(&shard) && s.first_conclusion(id, set.len()) {
                    let effects = meant_for(effects, TO_REPLICAS);
                    if !effects.is_empty() {
                        s.append_effects(&effects);
                    }
                }
            }
        }
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn set(db: usize, k: &str) -> Effect {
        Effect::new(
            db,
            vec![
                Bytes::from_static(b"SET"),
                Bytes::copy_from_slice(k.as_bytes()),
                Bytes::from_static(b"v"),
            ],
        )
    }

    #[test]
    fn selects_and_wraps_like_redis() {
        let mut s = Stream::new("a".repeat(40));
        s.activate();
        s.append_effects(&[set(0, "k")]);
        s.append_effects(&[set(0, "j"), set(1, "i")]);
        let text: Vec<u8> = s.buf.iter().copied().collect();
        let text = String::from_utf8(text).unwrap();
        assert_eq!(
            text,
            "*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n\
             *1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$1\r\nj\r\n$1\r\nv\r\n\
             *2\r\n$6\r\nSELECT\r\n$1\r\n1\r\n*3\r\n$3\r\nSET\r\n$1\r\ni\r\n$1\r\nv\r\n\
             *1\r\n$4\r\nEXEC\r\n"
        );
        assert_eq!(s.end as usize, text.len());
        assert_eq!(s.first_byte(), 1);
    }

    #[test]
    fn backlog_keeps_its_size_and_serves_continue() {
        let mut s = Stream::new("a".repeat(40));
        s.backlog_size = 100;
        s.activate();
        for i in 0..50 {
            s.append_effects(&[set(0, &format!("k{i}"))]);
        }
        assert_eq!(s.histlen(), 100);
        assert!(s.can_continue(s.end + 1));
        assert!(s.can_continue(s.end - 99));
        assert!(!s.can_continue(s.end - 100));
    }

    #[test]
    fn a_reader_holds_what_it_was_not_sent() {
        let mut s = Stream::new("a".repeat(40));
        s.backlog_size = 10;
        s.activate();
        let _rx = s.add_reader(7, "127.0.0.1".into(), 1, 0, false);
        s.append(b"0123456789abcdefghij");
        let mut out = Vec::new();
        assert!(s.read(7, &mut out, 5));
        assert_eq!(out, b"01234");
        assert!(s.read(7, &mut out, 100));
        assert_eq!(out, b"0123456789abcdefghij");
        assert_eq!(s.histlen(), 10);
        // Over its hard limit as bytes come: cut off, and told so.
        s.replica_limit = crate::config::OutputLimit {
            hard: 4,
            soft: 0,
            soft_seconds: 0,
        };
        s.append(b"klmnop");
        assert!(s.is_cut(7));
        assert!(!s.read(7, &mut out, 100));
    }

    #[test]
    fn reads_cross_the_ring_s_seam() {
        let mut s = Stream::new("a".repeat(40));
        s.backlog_size = 4;
        s.activate();
        let _rx = s.add_reader(1, "127.0.0.1".into(), 1, 0, false);
        let mut out = Vec::new();
        for chunk in [&b"abc"[..], b"defg", b"hi", b"jklmnop"] {
            s.append(chunk);
            assert!(s.read(1, &mut out, 3));
            assert!(s.read(1, &mut out, 100));
        }
        assert_eq!(out, b"abcdefghijklmnop");
    }

    #[test]
    fn a_transaction_is_appended_once() {
        let mut s = Stream::new("a".repeat(40));
        assert!(s.first_conclusion(9, 3));
        assert!(!s.first_conclusion(9, 3));
        assert!(!s.first_conclusion(9, 3));
        assert!(s.txs.is_empty());
    }
}
