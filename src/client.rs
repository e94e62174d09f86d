//! A client: the state Redis keeps per connection (db, protocol, name, auth, reply mode).
//!
//! Shared as `Rc<RefCell<Client>>` between the connection task that owns it and the
//! accepting shard's registry (which CLIENT LIST / KILL walk). Plain data: no socket.
//! The one thing that is not: [`Pushes`], the queue of messages nobody asked for
//! (Pub/Sub messages and MONITOR lines now; later keyspace events, invalidations) that
//! the core's registries fill and the connection task writes between replies. It also
//! counts everything the connection has yet to write and applies the
//! `client-output-buffer-limit` of the client's class where output is added (the plan
//! is in `runtime::output`).

use crate::config::{OutputLimit, DEFAULT_OUTPUT_LIMITS};
use bytes::{Bytes, BytesMut};
use std::cell::{Cell, Ref, RefCell};
use std::collections::VecDeque;
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

/// Where a client connected from, or to: a TCP address, or the Unix domain socket
/// (`unixsocket`) it came through.
#[derive(Clone, Debug, PartialEq)]
pub enum Peer {
    Ip(SocketAddr),
    Unix(std::sync::Arc<str>),
}

impl Peer {
    /// The IP address (unspecified for a Unix socket's client).
    pub fn ip(&self) -> std::net::IpAddr {
        match self {
            Peer::Ip(a) => a.ip(),
            Peer::Unix(_) => std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        }
    }

    /// The address as MONITOR shows its sender: `ip:port`, or `unix:<path>`.
    pub fn monitor_form(&self) -> String {
        match self {
            Peer::Ip(a) => a.to_string(),
            Peer::Unix(path) => format!("unix:{path}"),
        }
    }
}

impl From<SocketAddr> for Peer {
    fn from(a: SocketAddr) -> Peer {
        Peer::Ip(a)
    }
}

/// As CLIENT LIST and the slow log show it: `ip:port`, or `<path>:0`, as Redis's.
impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Ip(a) => a.fmt(f),
            Peer::Unix(path) => write!(f, "{path}:0"),
        }
    }
}

#[derive(Debug)]
pub struct Client {
    pub id: u64,
    pub addr: Peer,
    pub laddr: Peer,
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
    /// AUTH / HELLO AUTH succeeded (or no password was needed when it connected).
    pub authenticated: bool,
    /// Its ACL user, as of `acl_generation` (see `crate::acl`: read again when the
    /// registry's generation moved on).
    pub user: std::sync::Arc<crate::acl::User>,
    pub acl_generation: u64,
    pub reply_mode: ReplyMode,
    pub no_evict: bool,
    /// What this client last counted towards `maxmemory-clients` (see
    /// `runtime::client_eviction`).
    pub evict_mem: u64,
    pub no_touch: bool,
    /// Cluster mode: READONLY (reads served by a replica of the slot's master).
    pub cluster_readonly: bool,
    /// Cluster mode: ASKING was sent (the next command may use an importing slot).
    pub asking: bool,
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
    /// What it is subscribed to (Pub/Sub).
    pub pubsub: PubSub,
    /// What the connection has to write: the queue Pub/Sub messages and MONITOR lines
    /// arrive on, its unwritten replies, and its output buffer limit's state.
    pub pushes: Rc<Pushes>,
    /// In MONITOR mode (Redis's CLIENT_MONITOR): every command's line is queued for it.
    pub monitor: bool,
    /// While a monitor is to see this client's script command (EVAL, FCALL, or an
    /// EXEC with some): the lines of the commands each of its scripts ran, one block
    /// per script in the order they ran, for `monitor::Shown::feed`.
    pub script_lines: Option<std::collections::VecDeque<Vec<u8>>>,
    /// Running EXEC's commands (Redis's CLIENT_DENY_BLOCKING): MONITOR is refused.
    pub deny_blocking: bool,
    /// Client-side caching: its mode while tracking is on (a copy of what the shared
    /// table holds, see `crate::tracking`).
    pub tracking: Option<crate::tracking::Tracker>,
    /// CLIENT CACHING YES / NO given for the next command.
    pub tracking_caching: bool,
    /// For the EXEC about to run: which queued commands' reads are remembered for
    /// tracking, by queue index (`runtime::tracking::before_command`; empty: none).
    pub exec_tracked: Vec<bool>,
    /// Replication: what a replica told us in REPLCONF, and whether this connection is
    /// a replica we feed or our master's link.
    pub repl: crate::replication::master::Peer,
    /// Set by PSYNC / SYNC: after this read's replies the connection becomes a
    /// replica's feed (see `replication::master::serve`).
    pub handoff: Option<crate::replication::master::Handoff>,
    /// Set by FLUSHALL with save points: resolves when the emptied data set is on disk;
    /// the reply waits for it (`persistence::save::flushall_saved`).
    pub flushall_save: Option<flume::Receiver<()>>,
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
    /// Names subscribed to, indexed by [`Subscription`], in the order subscribed.
    pub subscribed: [indexmap::IndexSet<Bytes>; 3],
}

impl PubSub {
    pub fn of(&self, kind: Subscription) -> &indexmap::IndexSet<Bytes> {
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

/// Redis's `PROTO_REPLY_CHUNK_BYTES`: queued messages are kept in blocks that grow
/// with the queue up to this size (a block holds at least one whole message), so a
/// long queue costs what it holds plus at most one block, never the doubling of one
/// growing buffer, and a short one (one small message for each of many subscribers)
/// costs about its size.
const BLOCK: usize = 16 * 1024;

/// The size of Redis's fixed reply buffer (CLIENT LIST `rbs`): the first this many
/// bytes a client has to write are its `obl`, the rest its `omem`, which alone counts
/// against the output buffer limit (see `runtime::output`).
pub const REPLY_BUFFER: usize = 16 * 1024;

/// Why a connection is being closed for its output buffer limit; the log line differs
/// as Redis's does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverLimit {
    /// Found when output was added (a message queued, replies encoded): Redis's
    /// `freeClientAsync` case, "scheduled to be closed ASAP".
    Scheduled,
    /// Found by the cron (the soft limit's time ran out while nothing was added):
    /// Redis's `freeClient` case, "closed".
    Cron,
    /// Closed by client eviction (`maxmemory-clients`, see
    /// `runtime::client_eviction`), which logs it itself.
    Evicted,
}

/// What a connection has to write, and the `client-output-buffer-limit` kept on it
/// (see `runtime::output` for the whole plan). Filled by the core that owns the
/// connection (never another thread), drained by its connection task:
/// - the queue of messages nobody asked for (Pub/Sub messages, MONITOR lines), in
///   blocks of up to [`BLOCK`] bytes, as Redis's reply list;
/// - the count of reply bytes the connection task has encoded and not yet written;
/// - of all that, the part beyond the first [`REPLY_BUFFER`] bytes is `omem`;
/// - the limit's state: the client's class, since when the soft limit is reached, and
///   whether the client is over the limit, after which nothing more is queued and the
///   connection task closes the connection.
pub struct Pushes {
    /// The connection's protocol (2 or 3), to encode for.
    pub resp: Cell<u8>,
    queued: RefCell<VecDeque<BytesMut>>,
    /// Bytes in `queued`.
    queued_bytes: Cell<usize>,
    /// Reply bytes the connection task holds unwritten.
    unwritten: Cell<usize>,
    /// The client's class, whose limit applies.
    class: Cell<ClientClass>,
    /// Unix seconds at which the soft limit was found reached (0: it is not).
    soft_since: Cell<u64>,
    over_limit: Cell<Option<OverLimit>>,
    /// Set at the first subscription or MONITOR: from then on the connection task waits
    /// for queued messages as well as for input.
    listening: Cell<bool>,
    /// While the client's requests run (`dispatch`): the invalidations that must follow
    /// the running request's reply, as Redis sends the current client's own
    /// invalidations after its reply (see [`push_after_reply`](Self::push_after_reply)).
    holding: Cell<bool>,
    held: RefCell<Vec<u8>>,
    waker: Cell<Option<Waker>>,
}

impl std::fmt::Debug for Pushes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pushes")
            .field("resp", &self.resp.get())
            .field("queued", &self.queued_bytes.get())
            .field("unwritten", &self.unwritten.get())
            .field("over_limit", &self.over_limit.get())
            .finish()
    }
}

/// A client's class, as Redis's `getClientType` gives it for output buffer limits and
/// CLIENT LIST / KILL `TYPE`: the index of its `client-output-buffer-limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientClass {
    Normal = 0,
    /// A replica we feed (from its PSYNC / SYNC on).
    Replica = 1,
    Pubsub = 2,
    /// Our master's link (no output buffer limit: Redis checks it as normal).
    Master = 3,
}

impl ClientClass {
    /// The class whose `client-output-buffer-limit` applies: a master's link is held
    /// to the normal one (Redis: `getClientType`'s master is checked as normal).
    pub fn limit_class(self) -> ClientClass {
        match self {
            ClientClass::Master => ClientClass::Normal,
            other => other,
        }
    }

    /// The name CLIENT LIST / KILL `TYPE` takes.
    pub fn name(self) -> &'static str {
        match self {
            ClientClass::Normal => "normal",
            ClientClass::Replica => "replica",
            ClientClass::Pubsub => "pubsub",
            ClientClass::Master => "master",
        }
    }
}

thread_local! {
    /// The `client-output-buffer-limit` in force on this core, by class: set by the
    /// runtime from the configuration (`runtime::refresh_config`).
    static OUTPUT_LIMITS: Cell<[OutputLimit; 3]> = const { Cell::new(DEFAULT_OUTPUT_LIMITS) };
}

/// Put `limits` in force for this core's connections.
pub fn set_output_limits(limits: [OutputLimit; 3]) {
    OUTPUT_LIMITS.set(limits);
}

/// Redis's `checkClientOutputBufferLimits`: true if `used` bytes reach the hard limit,
/// or have stayed at or above the soft limit for more than its seconds. `soft_since`
/// is when the soft limit was first found reached (0: not), kept up to date here;
/// `now` gives unix seconds (read only when the soft limit is reached).
pub fn limit_reached(
    limit: OutputLimit,
    used: u64,
    soft_since: &Cell<u64>,
    now: impl FnOnce() -> u64,
) -> bool {
    let hard = limit.hard > 0 && used >= limit.hard;
    let mut soft = limit.soft > 0 && used >= limit.soft;
    if soft {
        let now = now();
        if soft_since.get() == 0 {
            // The first time it is seen reached.
            soft_since.set(now);
            soft = false;
        } else if now.saturating_sub(soft_since.get()) <= limit.soft_seconds {
            soft = false;
        }
    } else {
        soft_since.set(0);
    }
    hard || soft
}

impl Pushes {
    pub fn new(resp: u8) -> Pushes {
        Pushes {
            resp: Cell::new(resp),
            queued: RefCell::new(VecDeque::new()),
            queued_bytes: Cell::new(0),
            unwritten: Cell::new(0),
            class: Cell::new(ClientClass::Normal),
            soft_since: Cell::new(0),
            over_limit: Cell::new(None),
            listening: Cell::new(false),
            holding: Cell::new(false),
            held: RefCell::new(Vec::new()),
            waker: Cell::new(None),
        }
    }

    /// Queue already encoded bytes and wake the connection task; dropped if the client
    /// is over its output buffer limit (it is being closed).
    pub fn push(&self, encoded: &[u8]) {
        if self.over_limit.get().is_some() {
            return;
        }
        {
            let mut q = self.queued.borrow_mut();
            let mut rest = encoded;
            if let Some(tail) = q.back_mut() {
                let n = rest.len().min(tail.capacity() - tail.len());
                tail.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
            }
            if !rest.is_empty() {
                let grown = self.queued_bytes.get().clamp(64, BLOCK);
                let mut block = BytesMut::with_capacity(rest.len().max(grown));
                block.extend_from_slice(rest);
                q.push_back(block);
            }
        }
        self.queued_bytes
            .set(self.queued_bytes.get() + encoded.len());
        self.enforce_limit(OverLimit::Scheduled);
        self.wake();
    }

    /// [`push`](Self::push), unless a request of this client is running: then kept
    /// until its reply is placed ([`release`](Self::release)). For invalidations, which
    /// Redis sends its current client after the reply of the command that caused them.
    pub fn push_after_reply(&self, encoded: &[u8]) {
        if self.holding.get() {
            self.held.borrow_mut().extend_from_slice(encoded);
        } else {
            self.push(encoded);
        }
    }

    /// From now on until [`release`](Self::release) with `holding` false, keep what
    /// [`push_after_reply`](Self::push_after_reply) is given.
    pub fn hold(&self) {
        self.holding.set(true);
    }

    /// A request's reply is placed: queue what was kept meanwhile, behind it; and go on
    /// keeping (`holding`) or not.
    pub fn release(&self, holding: bool) {
        self.holding.set(holding);
        if self.held.borrow().is_empty() {
            return;
        }
        let held = std::mem::take(&mut *self.held.borrow_mut());
        self.push(&held);
    }

    /// What is queued, if anything, as one buffer, leaving the queue empty.
    pub fn take(&self) -> Option<BytesMut> {
        let mut q = self.queued.borrow_mut();
        let mut all = q.pop_front()?;
        for block in q.drain(..) {
            all.extend_from_slice(&block);
        }
        self.queued_bytes.set(0);
        Some(all)
    }

    /// The queue's first block, to write from (then [`consume`](Self::consume) what was
    /// written). The small blocks behind it are merged into it first, up to [`BLOCK`]
    /// bytes, so that a burst of small messages (each subscriber's share of a pipeline
    /// of PUBLISHes) leaves in one write, as from Redis's output buffer, rather than one
    /// write per block of the queue's growth.
    pub fn front(&self) -> Option<Ref<'_, [u8]>> {
        {
            let mut q = self.queued.borrow_mut();
            while q.len() > 1 && q[0].len() + q[1].len() <= BLOCK {
                let next = q.remove(1).expect("two blocks at least");
                q[0].extend_from_slice(&next);
            }
        }
        Ref::filter_map(self.queued.borrow(), |q| q.front().map(|b| &b[..])).ok()
    }

    /// `n` bytes of the queue's front were written.
    pub fn consume(&self, n: usize) {
        let mut q = self.queued.borrow_mut();
        if let Some(front) = q.front_mut() {
            let n = n.min(front.len());
            bytes::Buf::advance(front, n);
            self.queued_bytes.set(self.queued_bytes.get() - n);
            if front.is_empty() {
                q.pop_front();
            }
        }
    }

    /// Ready once something is queued or the client is over its limit (cancel-safe: it
    /// only registers a waker).
    pub async fn ready(&self) {
        std::future::poll_fn(|cx| {
            if self.queued_bytes.get() == 0 && self.over_limit.get().is_none() {
                self.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await
    }

    /// Wake the connection task when something is queued or the client goes over its
    /// limit (its writes register here while the socket is full).
    pub fn register(&self, waker: &Waker) {
        self.waker.set(Some(waker.clone()));
    }

    fn wake(&self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// The connection task holds `n` reply bytes unwritten.
    pub fn set_unwritten(&self, n: usize) {
        self.unwritten.set(n);
    }

    /// Everything the connection has to write: queued messages and unwritten replies.
    pub fn pending(&self) -> usize {
        self.queued_bytes.get() + self.unwritten.get()
    }

    /// The part of [`pending`](Self::pending) Redis would hold in its fixed reply
    /// buffer (CLIENT LIST `obl`).
    pub fn obl(&self) -> usize {
        self.pending().min(REPLY_BUFFER)
    }

    /// The part beyond it, Redis's reply list (CLIENT LIST `omem`): what the output
    /// buffer limit is checked against.
    pub fn omem(&self) -> usize {
        self.pending().saturating_sub(REPLY_BUFFER)
    }

    /// Blocks in the message queue (CLIENT LIST `oll`).
    pub fn blocks(&self) -> usize {
        self.queued.borrow().len()
    }

    /// Set when the client subscribes or monitors.
    pub fn set_listening(&self) {
        self.listening.set(true);
    }

    /// True once the client has subscribed or monitored.
    pub fn listening(&self) -> bool {
        self.listening.get()
    }

    pub fn set_class(&self, class: ClientClass) {
        self.class.set(class);
    }

    /// Set if the client went over its output buffer limit.
    pub fn over_limit(&self) -> Option<OverLimit> {
        self.over_limit.get()
    }

    /// Close the client (mark it, wake its task), found `how`.
    pub fn close(&self, how: OverLimit) {
        if self.over_limit.get().is_none() {
            self.over_limit.set(Some(how));
            self.wake();
        }
    }

    /// Check the output against the limit of the client's class; once over it, mark the
    /// client (`how` it was found), free nothing yet (the log line shows what it held)
    /// and wake the connection task to close. True if the client is over its limit.
    pub fn enforce_limit(&self, how: OverLimit) -> bool {
        if self.over_limit.get().is_some() {
            return true;
        }
        let limit = OUTPUT_LIMITS.get()[self.class.get().limit_class() as usize];
        let now = || crate::clock::now_ms() / 1000;
        if !limit_reached(limit, self.omem() as u64, &self.soft_since, now) {
            return false;
        }
        self.close(how);
        true
    }
}

pub type ClientRef = Rc<RefCell<Client>>;

/// The id of the client that replays the AOF at start: admitted while the server is
/// loading, when every other client gets `-LOADING`.
pub const REPLAY_CLIENT: u64 = u64::MAX;

impl Client {
    /// True when its commands come from the master's link or the AOF's replay: they
    /// were checked where they first ran, and must not be refused or lost here.
    pub fn replicated(&self) -> bool {
        self.repl.is_master || self.id == REPLAY_CLIENT
    }
}

/// A key this client WATCHes: where it lives, and its version and existence then.
#[derive(Clone, Debug)]
pub struct WatchedKey {
    pub shard: usize,
    pub db: usize,
    pub key: bytes::Bytes,
    pub version: u64,
    pub existed: bool,
}

/// A plain client's state on its way to another core (see [`Client::moving`]).
pub struct Moving {
    id: u64,
    addr: Peer,
    laddr: Peer,
    db: usize,
    databases: usize,
    resp: u8,
    name: Option<String>,
    lib_name: Option<String>,
    lib_ver: Option<String>,
    authenticated: bool,
    user: std::sync::Arc<crate::acl::User>,
    reply_mode: ReplyMode,
    no_evict: bool,
    no_touch: bool,
    cluster_readonly: bool,
    created_ms: u64,
    last_interaction_ms: u64,
    last_cmd: String,
    commands: u64,
}

impl Client {
    pub fn new(
        id: u64,
        addr: impl Into<Peer>,
        laddr: impl Into<Peer>,
        fd: i32,
        shard: usize,
    ) -> Client {
        let (addr, laddr) = (addr.into(), laddr.into());
        let now = crate::clock::now_ms();
        let acl = crate::acl::registry();
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
            // Redis's createClient: authenticated when the default user needs no
            // password (the generation first, so a change meanwhile is seen).
            acl_generation: acl.generation(),
            authenticated: !acl.default_needs_auth(),
            user: acl.default_user(),
            reply_mode: ReplyMode::On,
            no_evict: false,
            evict_mem: 0,
            no_touch: false,
            cluster_readonly: false,
            asking: false,
            created_ms: now,
            last_interaction_ms: now,
            last_cmd: "NULL".into(),
            close_after_reply: false,
            killed: false,
            qbuf: 0,
            qbuf_free: 0,
            argv_mem: 0,
            buffers_mem: 0,
            commands: 0,
            multi: None,
            multi_aborted: false,
            watched: Vec::new(),
            blocked: None,
            paused: false,
            pubsub: PubSub::default(),
            pushes: Rc::new(Pushes::new(2)),
            monitor: false,
            script_lines: None,
            deny_blocking: false,
            tracking: None,
            tracking_caching: false,
            exec_tracked: Vec::new(),
            repl: Default::default(),
            handoff: None,
            flushall_save: None,
        }
    }

    /// Its state for moving its connection to another core, if nothing of it is tied
    /// to this one: no transaction or WATCH, not blocked or postponed, no Pub/Sub,
    /// MONITOR or tracking, not a replication link, nothing queued to write.
    pub fn moving(&self) -> Option<Moving> {
        let plain = self.multi.is_none()
            && self.watched.is_empty()
            && self.blocked.is_none()
            && !self.paused
            && !self.pubsub.active()
            && !self.pushes.listening()
            && self.pushes.pending() == 0
            && !self.monitor
            && self.tracking.is_none()
            && !self.tracking_caching
            && !self.repl.is_replica
            && !self.repl.is_master
            && self.handoff.is_none()
            && !self.close_after_reply
            && !self.killed
            && !self.asking
            && !self.deny_blocking;
        plain.then(|| Moving {
            id: self.id,
            addr: self.addr.clone(),
            laddr: self.laddr.clone(),
            db: self.db,
            databases: self.databases,
            resp: self.resp,
            name: self.name.clone(),
            lib_name: self.lib_name.clone(),
            lib_ver: self.lib_ver.clone(),
            authenticated: self.authenticated,
            user: self.user.clone(),
            reply_mode: self.reply_mode,
            no_evict: self.no_evict,
            no_touch: self.no_touch,
            cluster_readonly: self.cluster_readonly,
            created_ms: self.created_ms,
            last_interaction_ms: self.last_interaction_ms,
            last_cmd: self.last_cmd.clone(),
            commands: self.commands,
        })
    }

    /// The client `m` describes, now served by shard `shard`'s core on socket `fd`.
    pub fn arrived(m: Moving, fd: i32, shard: usize) -> Client {
        let mut c = Client::new(m.id, m.addr, m.laddr, fd, shard);
        c.db = m.db;
        c.databases = m.databases;
        c.resp = m.resp;
        c.pushes = Rc::new(Pushes::new(m.resp));
        c.name = m.name;
        c.lib_name = m.lib_name;
        c.lib_ver = m.lib_ver;
        c.authenticated = m.authenticated;
        c.user = m.user;
        c.reply_mode = m.reply_mode;
        c.no_evict = m.no_evict;
        c.no_touch = m.no_touch;
        c.cluster_readonly = m.cluster_readonly;
        c.created_ms = m.created_ms;
        c.last_interaction_ms = m.last_interaction_ms;
        c.last_cmd = m.last_cmd;
        c.commands = m.commands;
        c
    }

    /// A client for tests and internal use, on loopback.
    pub fn detached(id: u64) -> Client {
        let a: SocketAddr = "127.0.0.1:0".parse().expect("static address parses");
        Client::new(id, a, a, -1, 0)
    }

    /// Redis's `argv_len_sum` of a request: its arguments' lengths added up.
    pub fn argv_len_sum(argv: &[bytes::Bytes]) -> usize {
        argv.iter().map(|a| a.len()).sum()
    }

    /// The queue for messages nobody asked for: from now on the connection task waits
    /// for them as well as for input.
    pub fn push_queue(&mut self) -> Rc<Pushes> {
        self.pushes.set_listening();
        self.pushes.clone()
    }

    /// Switch protocol (HELLO, RESET); queued messages follow from the next one on.
    pub fn set_resp(&mut self, resp: u8) {
        self.resp = resp;
        self.pushes.resp.set(resp);
    }

    /// Redis's `getClientType`: our master's link, a replica we feed, a client with
    /// any subscription (Pub/Sub), or a normal one (MONITOR does not change the class:
    /// Redis 7.0 flags a monitor as a replica but classes it as normal).
    pub fn class(&self) -> ClientClass {
        if self.repl.is_master {
            ClientClass::Master
        } else if self.repl.is_replica {
            ClientClass::Replica
        } else if self.pubsub.active() {
            ClientClass::Pubsub
        } else {
            ClientClass::Normal
        }
    }

    /// Give the output buffer limit the client's class (after its subscriptions change).
    pub fn update_class(&self) {
        self.pushes.set_class(self.class());
    }

    /// CLIENT LIST `tot-mem`: this struct, its connection's buffers, what it has to
    /// write and the current command's arguments (Redis adds its own client struct and
    /// buffers alike, so the figures are comparable, not equal).
    pub fn total_mem(&self) -> usize {
        std::mem::size_of::<Client>()
            + std::mem::size_of::<Pushes>()
            + self.buffers_mem
            + self.pushes.pending()
            + self.argv_mem
    }

    /// One line of CLIENT LIST / CLIENT INFO, with Redis 7.0's fields.
    pub fn info_line(&self, now_ms: u64) -> String {
        // In Redis's order (`catClientInfoString`).
        let mut flags = String::new();
        for (on, f) in [
            (self.repl.is_replica, 'S'),
            (self.repl.is_master, 'M'),
            (self.monitor, 'O'),
            (self.pubsub.active(), 'P'),
            (self.multi.is_some(), 'x'),
            (self.blocked.is_some() || self.paused, 'b'),
            (self.tracking.is_some(), 't'),
            // (The shared copy knows whether the redirect was found broken since.)
            (
                self.tracking.as_ref().is_some_and(|t| {
                    t.broken || crate::tracking::tracker(self.id).is_some_and(|t| t.broken)
                }),
                'R',
            ),
            (self.tracking.as_ref().is_some_and(|t| t.bcast), 'B'),
            (matches!(self.addr, Peer::Unix(_)), 'U'),
            (self.cluster_readonly, 'r'),
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
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={} qbuf={} qbuf-free={} argv-mem={} multi-mem=0 rbs=16384 rbp=0 obl={} oll={} omem={} tot-mem={} events={} cmd={} user={} redir={} resp={} lib-name={} lib-ver={} shard={}",
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
            self.pushes.obl(),
            self.pushes.blocks(),
            self.pushes.omem(),
            self.total_mem(),
            // Redis waits for the socket to take more ('w') while output is pending.
            if self.pushes.pending() > 0 { "rw" } else { "r" },
            self.last_cmd,
            self.user.name,
            self.tracking.as_ref().map_or(-1, |t| t.redirect as i64),
            self.resp,
            self.lib_name.as_deref().unwrap_or(""),
            self.lib_ver.as_deref().unwrap_or(""),
            self.shard,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: OutputLimit = OutputLimit {
        hard: 1000,
        soft: 100,
        soft_seconds: 2,
    };

    #[test]
    fn the_hard_limit_is_reached_at_once_the_soft_one_after_its_seconds() {
        let since = Cell::new(0);
        assert!(!limit_reached(LIMIT, 99, &since, || 10));
        assert!(limit_reached(LIMIT, 1000, &since, || 10));
        let since = Cell::new(0);
        // Reached at 10: not over before more than 2 seconds have passed.
        assert!(!limit_reached(LIMIT, 100, &since, || 10));
        assert_eq!(since.get(), 10);
        assert!(!limit_reached(LIMIT, 500, &since, || 12));
        assert!(limit_reached(LIMIT, 500, &since, || 13));
        // Falling under it starts the count again.
        assert!(!limit_reached(LIMIT, 99, &since, || 14));
        assert_eq!(since.get(), 0);
        assert!(!limit_reached(LIMIT, 100, &since, || 20));
        // 0 turns a limit off.
        let off = OutputLimit::default();
        assert!(!limit_reached(off, u64::MAX, &Cell::new(1), || 1000));
    }

    #[test]
    fn the_queue_counts_blocks_and_bytes_and_drops_what_follows_the_limit() {
        let p = Pushes::new(2);
        // Blocks grow with the queue: 100 bytes, then 100 more, then 200...
        p.push(&[b'a'; 100]);
        p.push(&[b'b'; 150]);
        assert_eq!((p.pending(), p.blocks()), (250, 2));
        // A write takes the small blocks as one (merged up to a block's size).
        let all = [vec![b'a'; 100], vec![b'b'; 150]].concat();
        assert_eq!(&p.front().unwrap()[..], &all[..]);
        assert_eq!((p.pending(), p.blocks()), (250, 1));
        p.consume(100);
        assert_eq!((p.pending(), p.blocks()), (150, 1));
        p.push(&[b'c'; 50]);
        assert_eq!(p.pending(), 200);
        assert_eq!(
            p.take().unwrap()[..],
            [vec![b'b'; 150], vec![b'c'; 50]].concat()[..]
        );
        // ... up to 16 KiB blocks, each message split over the tail block's room.
        for _ in 0..100 {
            p.push(&[b'd'; 1000]);
        }
        assert_eq!(p.pending(), 100_000);
        assert!(p.blocks() < 12, "{} blocks", p.blocks());
        assert_eq!((p.obl(), p.omem()), (REPLY_BUFFER, 100_000 - REPLY_BUFFER));
        p.set_unwritten(10);
        assert_eq!(p.pending(), 100_010);
        assert_eq!(p.take().unwrap().len(), 100_000);
        p.set_unwritten(0);
        // Normal class, hard limit 64 KiB of omem: over it, later pushes are dropped.
        set_output_limits([
            OutputLimit {
                hard: 64 * 1024,
                ..OutputLimit::default()
            },
            OutputLimit::default(),
            OutputLimit::default(),
        ]);
        while p.over_limit().is_none() {
            p.push(&[b'c'; 1000]);
        }
        assert_eq!(p.over_limit(), Some(OverLimit::Scheduled));
        assert!((64 * 1024..65 * 1024).contains(&p.omem()));
        let held = p.pending();
        p.push(b"more");
        assert_eq!(p.pending(), held);
        set_output_limits(DEFAULT_OUTPUT_LIMITS);
    }
}
