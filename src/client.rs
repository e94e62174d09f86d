//! A client: the state Redis keeps per connection (db, protocol, name, auth, reply mode).
//!
//! Shared as `Rc<RefCell<Client>>` between the connection task that owns it and the
//! accepting shard's registry (which CLIENT LIST / KILL walk). Plain data: no socket.
//! The one thing that is not: [`Pushes`], the queue of messages nobody asked for
//! (Pub/Sub messages and MONITOR lines now; later keyspace events, invalidations) that
//! the core's registries fill and the connection task writes between replies.

use bytes::{Bytes, BytesMut};
use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::{Poll, Waker};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyMode {
    On,
    Off,
    /// Skip the reply of the next command only.
    Skip,
    /// Internal: the command that set SKIP is itself answered; the next one is skipped.
    SkipNext,
}

#[derive(Debug)]
pub struct Client {
    pub id: u64,
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    pub fd: i32,
    /// Shard whose core accepted the connection.
    pub shard: usize,
    pub db: usize,
    /// Number of databases SELECT accepts (`databases` at connect time).
    pub databases: usize,
    /// RESP version, 2 or 3.
    pub resp: u8,
    pub name: Option<String>,
    pub lib_name: Option<String>,
    pub lib_ver: Option<String>,
    pub authenticated: bool,
    pub user: String,
    pub reply_mode: ReplyMode,
    pub no_evict: bool,
    pub no_touch: bool,
    /// Unix ms of connection and of the last command.
    pub created_ms: u64,
    pub last_interaction_ms: u64,
    /// Lower-case name of the last command (`client|list`).
    pub last_cmd: String,
    /// Set by QUIT or a protocol error: close after the pending replies are written.
    pub close_after_reply: bool,
    /// Set by CLIENT KILL from any core.
    pub killed: bool,
    /// CLIENT LIST `qbuf`: the bytes of the query buffer, as Redis counts them. While
    /// a read's requests run, all of that read (served ones included: Redis trims its
    /// buffer only after the read's requests are processed); while blocked, what
    /// follows the blocking command; between reads, an incomplete request's bytes.
    pub qbuf: usize,
    /// CLIENT LIST `qbuf-free`: room left in the query buffer's allocation.
    pub qbuf_free: usize,
    /// CLIENT LIST `argv-mem`: the summed argument lengths of the command running (or
    /// blocked), 0 between commands (Redis's `argv_len_sum`).
    pub argv_mem: usize,
    /// Bytes allocated for the connection's read, query and reply buffers (part of
    /// CLIENT LIST `tot-mem`).
    pub buffers_mem: usize,
    pub obuf: usize,
    /// Total commands this client ran.
    pub commands: u64,
    /// Commands queued since MULTI (`None` outside a transaction).
    pub multi: Option<Vec<Vec<bytes::Bytes>>>,
    /// A command was rejected while queuing: EXEC answers EXECABORT.
    pub multi_aborted: bool,
    /// Keys under WATCH.
    pub watched: Vec<WatchedKey>,
    /// While blocked (BLPOP...): the claim CLIENT UNBLOCK takes, and the reply it
    /// gives with TIMEOUT.
    pub blocked: Option<(crate::shard::blocking::Ticket, crate::protocol::Reply)>,
    /// Its command is postponed by CLIENT PAUSE (Redis's BLOCKED_POSTPONE).
    pub paused: bool,
    /// Config values that the client check needs at each command.
    pub requirepass_set: bool,
    /// What it is subscribed to (Pub/Sub).
    pub pubsub: PubSub,
    /// The queue Pub/Sub messages and MONITOR lines arrive on: created at the first
    /// subscription or MONITOR and kept until the connection ends.
    pub pushes: Option<Rc<Pushes>>,
    /// In MONITOR mode (Redis's CLIENT_MONITOR): every command's line is queued for it.
    pub monitor: bool,
    /// Running EXEC's commands (Redis's CLIENT_DENY_BLOCKING): MONITOR is refused.
    pub deny_blocking: bool,
}

/// The three kinds of Pub/Sub subscription, as Redis keeps them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subscription {
    Channel = 0,
    Pattern = 1,
    /// A shard channel (SSUBSCRIBE): its own namespace, counted apart.
    ShardChannel = 2,
}

impl Subscription {
    pub const ALL: [Subscription; 3] = [
        Subscription::Channel,
        Subscription::Pattern,
        Subscription::ShardChannel,
    ];
}

/// A client's Pub/Sub state (Redis's `pubsub_channels`, `pubsub_patterns`,
/// `pubsubshard_channels` of the client struct).
#[derive(Debug, Default)]
pub struct PubSub {
    /// Names subscribed to, indexed by [`Subscription`].
    pub subscribed: [HashSet<Bytes>; 3],
}

impl PubSub {
    pub fn of(&self, kind: Subscription) -> &HashSet<Bytes> {
        &self.subscribed[kind as usize]
    }
    /// The count SUBSCRIBE and friends reply with: channels and patterns together,
    /// shard channels on their own (Redis 7.0).
    pub fn count(&self, kind: Subscription) -> usize {
        match kind {
            Subscription::ShardChannel => self.of(kind).len(),
            _ => self.of(Subscription::Channel).len() + self.of(Subscription::Pattern).len(),
        }
    }
    /// True while subscribed to anything (Redis's CLIENT_PUBSUB flag).
    pub fn active(&self) -> bool {
        self.subscribed.iter().any(|s| !s.is_empty())
    }
}

/// Messages encoded for one connection, waiting to be written: filled by the core
/// that owns the connection (never another thread), drained by its connection task.
pub struct Pushes {
    /// The connection's protocol (2 or 3), to encode for.
    pub resp: Cell<u8>,
    queued: RefCell<BytesMut>,
    waker: Cell<Option<Waker>>,
}

impl std::fmt::Debug for Pushes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pushes")
            .field("resp", &self.resp.get())
            .field("queued", &self.queued.borrow().len())
            .finish()
    }
}

impl Pushes {
    pub fn new(resp: u8) -> Pushes {
        Pushes {
            resp: Cell::new(resp),
            queued: RefCell::new(BytesMut::new()),
            waker: Cell::new(None),
        }
    }
    /// Queue already encoded bytes and wake the connection task.
    pub fn push(&self, encoded: &[u8]) {
        self.queued.borrow_mut().extend_from_slice(encoded);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
    /// What is queued, if anything, leaving the queue empty.
    pub fn take(&self) -> Option<BytesMut> {
        let mut q = self.queued.borrow_mut();
        (!q.is_empty()).then(|| q.split())
    }
    /// Ready once something is queued (cancel-safe: it only registers a waker).
    pub async fn ready(&self) {
        std::future::poll_fn(|cx| {
            if self.queued.borrow().is_empty() {
                self.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await
    }
}

pub type ClientRef = Rc<RefCell<Client>>;

/// The id of the client that replays the AOF at start: admitted while the server is
/// loading, when every other client gets `-LOADING`.
pub const REPLAY_CLIENT: u64 = u64::MAX;

/// A key this client WATCHes: where it lives, and its version and existence then.
#[derive(Clone, Debug)]
pub struct WatchedKey {
    pub shard: usize,
    pub db: usize,
    pub key: bytes::Bytes,
    pub version: u64,
    pub existed: bool,
}

impl Client {
    pub fn new(
        id: u64,
        addr: SocketAddr,
        laddr: SocketAddr,
        fd: i32,
        shard: usize,
        requirepass_set: bool,
    ) -> Client {
        let now = crate::clock::now_ms();
        Client {
            id,
            addr,
            laddr,
            fd,
            shard,
            db: 0,
            databases: 16,
            resp: 2,
            name: None,
            lib_name: None,
            lib_ver: None,
            authenticated: !requirepass_set,
            user: "default".into(),
            reply_mode: ReplyMode::On,
            no_evict: false,
            no_touch: false,
            created_ms: now,
            last_interaction_ms: now,
            last_cmd: "NULL".into(),
            close_after_reply: false,
            killed: false,
            qbuf: 0,
            qbuf_free: 0,
            argv_mem: 0,
            buffers_mem: 0,
            obuf: 0,
            commands: 0,
            multi: None,
            multi_aborted: false,
            watched: Vec::new(),
            blocked: None,
            paused: false,
            requirepass_set,
            pubsub: PubSub::default(),
            pushes: None,
            monitor: false,
            deny_blocking: false,
        }
    }

    /// A client for tests and internal use, on loopback.
    pub fn detached(id: u64) -> Client {
        let a: SocketAddr = "127.0.0.1:0".parse().expect("static address parses");
        Client::new(id, a, a, -1, 0, false)
    }

    /// Redis's `argv_len_sum` of a request: its arguments' lengths added up.
    pub fn argv_len_sum(argv: &[bytes::Bytes]) -> usize {
        argv.iter().map(|a| a.len()).sum()
    }

    /// The queue for messages nobody asked for, created on first need.
    pub fn push_queue(&mut self) -> Rc<Pushes> {
        let resp = self.resp;
        self.pushes
            .get_or_insert_with(|| Rc::new(Pushes::new(resp)))
            .clone()
    }

    /// Switch protocol (HELLO, RESET); queued messages follow from the next one on.
    pub fn set_resp(&mut self, resp: u8) {
        self.resp = resp;
        if let Some(p) = &self.pushes {
            p.resp.set(resp);
        }
    }

    /// CLIENT LIST `tot-mem`: this struct, its connection's buffers and the current
    /// command's arguments (Redis adds its own client struct and buffers alike, so the
    /// figures are comparable, not equal).
    pub fn total_mem(&self) -> usize {
        std::mem::size_of::<Client>() + self.buffers_mem + self.argv_mem
    }

    /// One line of CLIENT LIST / CLIENT INFO, with Redis 7.0's fields.
    pub fn info_line(&self, now_ms: u64) -> String {
        // In Redis's order (`catClientInfoString`).
        let mut flags = String::new();
        for (on, f) in [
            (self.monitor, 'O'),
            (self.pubsub.active(), 'P'),
            (self.multi.is_some(), 'x'),
            (self.blocked.is_some() || self.paused, 'b'),
            (self.no_evict, 'e'),
            (self.no_touch, 'T'),
        ] {
            if on {
                flags.push(f);
            }
        }
        if flags.is_empty() {
            flags.push('N');
        }
        let multi = self.multi.as_ref().map_or(-1, |q| q.len() as i64);
        format!(
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={} qbuf={} qbuf-free={} argv-mem={} multi-mem=0 rbs=16384 rbp=0 obl=0 oll=0 omem={} tot-mem={} events=r cmd={} user={} redir=-1 resp={} lib-name={} lib-ver={} shard={}",
            self.id,
            self.addr,
            self.laddr,
            self.fd,
            self.name.as_deref().unwrap_or(""),
            now_ms.saturating_sub(self.created_ms) / 1000,
            now_ms.saturating_sub(self.last_interaction_ms) / 1000,
            flags,
            self.db,
            self.pubsub.of(Subscription::Channel).len(),
            self.pubsub.of(Subscription::Pattern).len(),
            self.pubsub.of(Subscription::ShardChannel).len(),
            multi,
            self.qbuf,
            self.qbuf_free,
            self.argv_mem,
            self.obuf,
            self.total_mem(),
            self.last_cmd,
            self.user,
            self.resp,
            self.lib_name.as_deref().unwrap_or(""),
            self.lib_ver.as_deref().unwrap_or(""),
            self.shard,
        )
    }
}
