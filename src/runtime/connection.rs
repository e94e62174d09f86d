//! One client connection: read, parse every complete request, dispatch, write replies.
//!
//! The loop reads as much as the socket has, parses all complete requests (pipelining),
//! runs them as one batch (see `dispatch`), encodes the replies in order into one output
//! buffer and writes it with one call. What the socket does not take waits, and the
//! connection goes on reading and running requests meanwhile (see `next_event`): a
//! client that sends a whole pipeline before reading must not find the server waiting
//! for it to read. Limits as Redis: `client-query-buffer-limit`
//! closes the connection silently; a protocol error is answered, then the connection is
//! closed once the replies before it are written.
//!
//! A request that CLIENT PAUSE postpones stops the batch: the replies before it are
//! written, the connection waits for the pause to end (see `pause`), then goes on
//! from that request, in order.
//!
//! The replies of a read are written once the core's other ready connections have
//! run their reads (the task yields once before writing), as Redis writes all its
//! clients' replies just before it sleeps: a client with many connections, such as
//! redis-benchmark, then wakes once for several replies, not once per reply. With
//! 50 connections at P16 on one shard this cut the client's wake-ups from one per
//! reply to about one per seven and the server's CPU per request from 1.13-1.18 µs
//! to 0.73-0.84 (Redis 0.67-0.85, same runs). The epoll backend skips the yield
//! when no other task is ready, so a lone connection pays nothing for it.
//!
//! A connection that has subscribed (Pub/Sub) or monitors also waits for messages
//! queued for it (`Client::pushes`, filled by `runtime::pubsub` and `runtime::monitor`
//! on this core) and writes them as they come, straight from the queue's blocks; those
//! queued while its own requests run go out between the replies, where `dispatch`
//! placed them.
//!
//! Every write keeps the client's count of unwritten bytes current and gives up once
//! the client is over its `client-output-buffer-limit`; a read's replies are checked
//! against the limit before they are written (see `output`).
//!
//! A plain connection whose requests all go to one other core's shard moves there
//! (connection affinity, [`moving`]): a request served where its keys live costs no
//! hop. At P16 on one connection (benches/hop.py, 2 shards) a remote key cost 4.1-5.4
//! µs of server CPU per request on epoll and 6.1-6.4 on io_uring against 1.8-2.9 for a
//! local one; moved, it costs what a local one does (1.65 and 2.6).

use crate::client::{Client, ClientRef, Moving, OverLimit, Peer, Pushes};
use crate::commands::errors;
use crate::protocol::{Limits, ParseOutcome, Reply, RequestParser};
use crate::runtime::backend::{self, TcpStream};
use crate::runtime::blocking;
use crate::runtime::dispatch::run_batch;
use crate::runtime::durability::{concluding, Lanes};
use crate::runtime::pause;
use crate::runtime::Shards;
use bytes::{Bytes, BytesMut};
use std::cell::RefCell;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;

/// Keeps the process-wide connection count right however the connection ends.
struct ConnectedGuard<'a>(&'a AtomicUsize);
impl Drop for ConnectedGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The most one read takes from a socket.
const READ_CHUNK: usize = 64 * 1024;
/// An output buffer larger than this is given back while the connection waits.
const KEEP_OUT: usize = 1024;
/// A query buffer takes at least this much when it must grow (Redis: PROTO_IOBUF_LEN).
const QUERY_BUF: usize = 16 * 1024;
/// An empty buffer larger than this is given back as soon as a read's replies are
/// written (smaller ones wait until the connection waits).
const BIG_BUF: usize = 4 * QUERY_BUF;

thread_local! {
    /// The core's read buffer, shared by its connections: a read copies what it got
    /// into the connection's query buffer at once, so an idle connection holds no
    /// buffer (Redis frees an idle client's query buffer likewise).
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_CHUNK].into_boxed_slice());
    /// Empty query buffers that connections gave back when their socket ran dry, for
    /// the core's next reads. An unpipelined client empties its buffer on every
    /// request; allocating and freeing 16 KiB each time was 465 of a GET's 8,104
    /// instructions (benches/README.md, "Query buffers kept by the core").
    static SPARE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// Query buffers a core keeps for its connections' next reads. Connections of one core
/// read one after another, so only those parked mid-request (awaiting another core)
/// hold one besides the connection being served.
const SPARE_MAX: usize = 8;

/// A buffer for a connection whose query buffer is empty: a spare one when the core
/// has one.
fn query_buffer() -> BytesMut {
    SPARE
        .with_borrow_mut(|spare| spare.pop())
        .unwrap_or_default()
}

/// Give an empty query buffer back to the core. Kept only when nothing else still
/// points into it (a request's arguments held by a blocked command, a queued MULTI)
/// and it is of the usual size; otherwise it is freed.
fn give_back(mut buf: BytesMut) {
    debug_assert!(buf.is_empty());
    if buf.try_reclaim(QUERY_BUF) && buf.capacity() <= BIG_BUF {
        SPARE.with_borrow_mut(|spare| {
            if spare.len() < SPARE_MAX {
                spare.push(buf);
            }
        });
    }
}

/// Read what the socket has onto the end of `rbuf`; 0 at end of stream. While it
/// waits, the connection holds no empty query buffer and no large output buffer.
fn poll_read_into(
    stream: &mut TcpStream,
    cx: &mut std::task::Context<'_>,
    rbuf: &mut BytesMut,
    out: &mut BytesMut,
) -> Poll<std::io::Result<usize>> {
    SCRATCH.with_borrow_mut(|chunk| {
        let r = stream.poll_read(cx, chunk);
        match r {
            Poll::Ready(Ok(n)) => {
                if rbuf.capacity() == 0 {
                    *rbuf = query_buffer();
                }
                // Room for the next reads too, as Redis's query buffer has.
                rbuf.reserve(n.max(QUERY_BUF));
                rbuf.extend_from_slice(&chunk[..n]);
            }
            Poll::Pending => {
                if rbuf.is_empty() && rbuf.capacity() > 0 {
                    give_back(std::mem::take(rbuf));
                }
                if out.capacity() > KEEP_OUT {
                    *out = BytesMut::new();
                }
            }
            Poll::Ready(Err(_)) => {}
        }
        r
    })
}

/// `wait`, or, with `timeout` (seconds, 0 = none), `TimedOut` once a silent peer let
/// that long pass.
async fn timed<T>(
    wait: impl std::future::Future<Output = T>,
    timeout: u64,
    expired: impl FnOnce(std::io::Error) -> T,
) -> T {
    if timeout == 0 {
        return wait.await;
    }
    let expired = async {
        backend::sleep(std::time::Duration::from_secs(timeout)).await;
        expired(std::io::ErrorKind::TimedOut.into())
    };
    futures_lite::future::or(wait, expired).await
}

/// [`poll_read_into`] as a future, ending with `TimedOut` after `timeout` seconds of
/// silence (0 = never).
async fn read_into(
    stream: &mut TcpStream,
    rbuf: &mut BytesMut,
    out: &mut BytesMut,
    timeout: u64,
) -> std::io::Result<usize> {
    let read = std::future::poll_fn(|cx| poll_read_into(stream, cx, rbuf, out));
    timed(read, timeout, Err).await
}

const DENIED: &str = "DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Set up an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.";

/// The entry of `argv`'s command if it is a blocking one (BLPOP...).
fn blocking_command(argv: &[bytes::Bytes]) -> Option<&'static crate::commands::Command> {
    // Every blocking command's name starts with B, or X (XREAD): skip the table for
    // the others.
    let name = argv.first()?;
    if !name
        .first()
        .is_some_and(|c| matches!(c.to_ascii_lowercase(), b'b' | b'x'))
    {
        return None;
    }
    crate::commands::lookup_named(name)
        .filter(|c| blocking::may_block(c, argv) && c.arity_ok(argv.len()))
}

/// Encode replies in order, counting the errors among them; the messages queued
/// while request `i` ran go just before reply `i` (those of a reply held back, such as
/// a blocking command's, after the rest). Each reply is in the protocol of its time
/// (`resp_before`, see [`crate::runtime::dispatch::Batch`]), the last ones in the client's.
fn encode_replies(
    shards: &Shards,
    client: &ClientRef,
    replies: Vec<Option<Reply>>,
    pushed: Vec<(usize, BytesMut)>,
    resp_before: &[(usize, u8)],
    out: &mut BytesMut,
    mut big: Option<&mut Big>,
) {
    let now = client.borrow().resp;
    let mut s = shards.local.borrow_mut();
    let mut pushed = pushed.into_iter().peekable();
    for (i, r) in replies.into_iter().enumerate() {
        let proto = resp_before
            .iter()
            .find(|(at, _)| *at > i)
            .map_or(now, |(_, p)| *p);
        while let Some((_, p)) = pushed.next_if(|(at, _)| *at == i) {
            out.extend_from_slice(&p);
        }
        let Some(r) = r else { continue };
        r.each_uncounted_error(&mut |e| s.stats.record_error(e));
        match r {
            Reply::Bulk(b) if b.len() >= BIG_REPLY && big.is_some() => {
                if let Some(big) = big.as_deref_mut() {
                    big.defer(out, b);
                }
            }
            r => r.encode(proto, out),
        }
    }
    for (_, p) in pushed {
        out.extend_from_slice(&p);
    }
}

/// A bulk reply this large is written from its own buffer, not copied into the
/// output buffer first (GET of a 100 KB value spent 42% of its time in that copy).
const BIG_REPLY: usize = 64 * 1024;

/// Bulk replies of at least [`BIG_REPLY`] bytes, each to be written at its place in
/// the output buffer (`out`): after `out[..at]`, the value's bytes.
#[derive(Default)]
struct Big {
    parts: Vec<(usize, Bytes)>,
}

impl Big {
    /// Put `b`'s bulk reply in `out`, its value as a part written from `b` itself.
    #[cold]
    fn defer(&mut self, out: &mut BytesMut, b: Bytes) {
        crate::protocol::reply::bulk_header(out, b.len());
        self.parts.push((out.len(), b));
        out.extend_from_slice(b"\r\n");
    }

    /// Bytes of the replies in `out` and here.
    fn len_with(&self, out: &BytesMut) -> usize {
        out.len() + self.parts.iter().map(|(_, b)| b.len()).sum::<usize>()
    }

    /// The segments to write, in order.
    fn segments<'a>(&'a self, out: &'a BytesMut) -> impl Iterator<Item = &'a [u8]> + 'a {
        let mut from = 0;
        self.parts
            .iter()
            .flat_map(move |(at, b)| {
                let head = &out[from..*at];
                from = *at;
                [head, &b[..]]
            })
            .chain(std::iter::once(
                &out[self.parts.last().map_or(0, |(at, _)| *at)..],
            ))
    }
}

/// What woke an idle connection.
enum Woken {
    Read(std::io::Result<usize>),
    /// Messages were queued for it (Pub/Sub).
    Pushes,
    /// The socket took some of the replies that waited (or the write failed).
    Wrote(std::io::Result<()>),
}

/// `timeout`, or none for a subscribed or monitoring client (Redis does not time them
/// out).
fn idle_timeout(client: &ClientRef, timeout: u64) -> u64 {
    let c = client.borrow();
    if c.pubsub.active() || c.monitor {
        0
    } else {
        timeout
    }
}

/// Wait for input, or, for a connection that has subscribed or monitors, or speaks
/// RESP3 (client-side caching's invalidations reach it as pushes, for itself or as
/// another client's redirect, while it sends nothing), for queued messages (or its
/// being over its output buffer limit).
///
/// While replies wait in `unsent` (the client does not read them as fast as it sends
/// requests), wait for the socket to take more of them or for input: a client may
/// send a whole pipeline before it reads a reply (redis-py's pipelines do), and if
/// the server stopped reading until its replies were written, both would wait for
/// ever once the kernel's buffers are full. Redis keeps reading such a client and
/// holds its replies in the output buffer, which only `client-output-buffer-limit`
/// (none for the normal class by default) and `maxmemory-clients` bound; so does
/// this. Messages queued for the client wait behind the replies.
async fn next_event(
    stream: &mut TcpStream,
    client: &ClientRef,
    pushes: &Pushes,
    rbuf: &mut BytesMut,
    out: &mut BytesMut,
    unsent: &mut BytesMut,
    timeout: u64,
) -> Woken {
    if !unsent.is_empty() {
        let either = std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = poll_write_unsent(stream, cx, pushes, unsent) {
                return Poll::Ready(Woken::Wrote(r));
            }
            poll_read_into(stream, cx, rbuf, out).map(Woken::Read)
        });
        let timeout = idle_timeout(client, timeout);
        return timed(either, timeout, |e| Woken::Read(Err(e))).await;
    }
    if !pushes.listening() && pushes.resp.get() < 3 {
        return Woken::Read(read_into(stream, rbuf, out, timeout).await);
    }
    let timeout = idle_timeout(client, timeout);
    let read = async { Woken::Read(read_into(stream, rbuf, out, timeout).await) };
    let queued = async {
        pushes.ready().await;
        Woken::Pushes
    };
    futures_lite::future::or(read, queued).await
}

/// Serve one accepted connection until it closes.
pub async fn serve(mut stream: TcpStream, shards: Rc<Shards>) {
    let _ = stream.set_nodelay(true);
    let config = shards.local.borrow().config.clone();
    let (addr, laddr) = if stream.is_unix() {
        // A client of the Unix socket: both ends are its path, as Redis shows them.
        let path = Peer::Unix(config.get("unixsocket").unwrap_or_default().into());
        (path.clone(), path)
    } else {
        let (Ok(addr), Ok(laddr)) = (stream.peer_addr(), stream.local_addr()) else {
            return;
        };
        (Peer::Ip(addr), Peer::Ip(laddr))
    };
    let _ = stream.set_keepalive(config.get_int("tcp-keepalive"));
    // (Redis 7.0: refused while the default user has no password; never on the Unix
    // socket, whose file mode says who may connect.)
    let open = || crate::acl::registry().default_user().nopass;
    let remote = matches!(addr, Peer::Ip(a) if !a.ip().is_loopback());
    if config.protected_mode && remote && open() {
        let mut out = BytesMut::new();
        Reply::err(DENIED).encode(2, &mut out);
        let _ = stream.write_all(&out).await;
        shards.local.borrow_mut().stats.rejected_connections += 1;
        return;
    }
    let connected = shards
        .server
        .connected_clients
        .fetch_add(1, Ordering::Relaxed);
    let server = shards.server.clone();
    let _guard = ConnectedGuard(&server.connected_clients);
    if connected >= config.maxclients {
        let mut out = BytesMut::new();
        Reply::err(errors::MAX_CLIENTS).encode(2, &mut out);
        let _ = stream.write_all(&out).await;
        shards.local.borrow_mut().stats.rejected_connections += 1;
        return;
    }
    let id = shards.server.new_client_id();
    let client: ClientRef = Rc::new(RefCell::new(Client::new(
        id,
        addr,
        laddr,
        stream.as_raw_fd(),
        shards.local_id,
    )));
    client.borrow_mut().databases = config.databases;
    shards.local.borrow_mut().stats.connections_received += 1;
    crate::runtime::clients::register(id, client.clone());
    attend(stream, shards, client).await;
}

/// Serve a registered client until its connection closes, or moves to another core.
async fn attend(mut stream: TcpStream, shards: Rc<Shards>, client: ClientRef) {
    let moving = session(&mut stream, &shards, &client)
        .await
        .unwrap_or_default();
    // Logged before the cleanup, so the line shows the subscriptions it had.
    crate::runtime::output::log_if_over_limit(&client);
    crate::runtime::client_eviction::forget(&shards, &client);
    crate::runtime::transaction::unwatch_all(&client, &shards);
    crate::runtime::pubsub::unsubscribe_all(&client, &shards);
    crate::runtime::monitor::stop(&client, &shards);
    crate::runtime::tracking::stop(&mut client.borrow_mut());
    let id = client.borrow().id;
    crate::runtime::clients::unregister(id);
    // Out of this core's loop before the other core takes the socket.
    drop(stream);
    if let Some(Move {
        shard,
        socket,
        state,
    }) = moving
    {
        let _ = shards.send_control(shard, move |s: &mut crate::shard::Shard| {
            s.stats.connections_moved_in += 1;
            arrive(socket, state)
        });
    }
}

/// A connection leaving for another core: the shard it goes to, its socket and its
/// client's state.
struct Move {
    shard: usize,
    socket: backend::StdStream,
    state: Moving,
}

/// Reads in a row whose requests all went to one other core's shard, after which the
/// connection moves to that core.
const MOVE_AFTER: u32 = 8;

thread_local! {
    /// This core's handle on the shards, for connections that arrive from other cores.
    static CORE: RefCell<Option<Rc<Shards>>> = const { RefCell::new(None) };
}

/// This core serves connections: those moved here from other cores too.
pub fn install(shards: &Rc<Shards>) {
    CORE.with(|c| *c.borrow_mut() = Some(shards.clone()));
}

/// This core's handle on the shards (set by `install`).
pub fn core_shards() -> Option<Rc<Shards>> {
    CORE.with(|c| c.borrow().clone())
}

/// A connection moved here (a job on this core): serve it from now on.
fn arrive(socket: backend::StdStream, state: Moving) {
    let Some(shards) = core_shards() else {
        return;
    };
    backend::spawn(async move {
        // Spawned by a job holding this core's shard, which the session takes.
        backend::yield_once().await;
        let Ok(stream) = TcpStream::adopt(socket) else {
            return;
        };
        let server = shards.server.clone();
        server.connected_clients.fetch_add(1, Ordering::Relaxed);
        let _guard = ConnectedGuard(&server.connected_clients);
        let client = Client::arrived(state, stream.as_raw_fd(), shards.local_id);
        let id = client.id;
        let client: ClientRef = Rc::new(RefCell::new(client));
        crate::runtime::clients::register(id, client.clone());
        attend(stream, shards, client).await;
    })
    .detach();
}

/// Serve the connection's requests; `Some` when it is to move to another core.
async fn session(
    stream: &mut TcpStream,
    shards: &Shards,
    client: &ClientRef,
) -> std::io::Result<Option<Move>> {
    let mut rbuf = BytesMut::new();
    let mut out = BytesMut::new();
    // Replies the socket has not taken yet (see `next_event`).
    let mut unsent = BytesMut::new();
    // Large bulk replies written from their own buffers (see `Big`).
    let mut big = Big::default();
    let pushes = client.borrow().pushes.clone();
    let mut parser = RequestParser::default();
    // Where each request of the current read ends, in bytes from the read's start
    // (CLIENT LIST qbuf while blocked); reused across reads.
    let mut ends: Vec<usize> = Vec::new();
    // Bytes at the front of `rbuf` (an incomplete request's) that Redis would have
    // taken off its query buffer already: not counted in CLIENT LIST qbuf.
    let mut consumed = 0;
    // The other core's shard this connection's requests all went to, for how many
    // batches in a row (see `MOVE_AFTER`).
    let mut affinity: (Option<usize>, u32) = (None, 0);
    // Bytes read while a blocking command waited (see `while_blocked`), not parsed yet.
    let mut read_while_blocked = 0;
    loop {
        // `timeout`: close a client idle for that many seconds (0 = never), as Redis.
        let timeout = shards.local.borrow().config.timeout;
        let n = if read_while_blocked > 0 {
            std::mem::take(&mut read_while_blocked)
        } else {
            let woken = next_event(
                stream,
                client,
                &pushes,
                &mut rbuf,
                &mut out,
                &mut unsent,
                timeout,
            );
            match woken.await {
                Woken::Read(n) => n?,
                Woken::Wrote(r) => {
                    r?;
                    continue;
                }
                Woken::Pushes => {
                    write_pushes(stream, shards, &pushes).await?;
                    continue;
                }
            }
        };
        if n == 0 || client.borrow().killed {
            return Ok(None);
        }
        let read_len = rbuf.len();
        ends.clear();
        let (limits, qlimit) = {
            let s = shards.local.borrow();
            let c = client.borrow();
            let l = Limits {
                max_bulk_len: s.config.proto_max_bulk_len,
                unauthenticated: !c.authenticated && crate::acl::registry().default_needs_auth(),
            };
            (l, s.config.client_query_buffer_limit)
        };
        {
            let mut s = shards.local.borrow_mut();
            s.stats.net_input_bytes += n as u64;
            s.stats.reads_processed += 1;
        }
        let mut requests = Vec::new();
        let mut protocol_error = None;
        loop {
            match parser.parse(&mut rbuf, limits) {
                ParseOutcome::Request(argv) if argv.is_empty() => continue,
                ParseOutcome::Request(argv) => {
                    requests.push(argv);
                    ends.push(read_len - rbuf.len());
                }
                ParseOutcome::Incomplete => break,
                ParseOutcome::Error(e) => {
                    protocol_error = Some(e);
                    break;
                }
            }
        }
        // What Redis's query buffer holds: not the arguments of an incomplete request
        // already parsed (they are its argv then), so a request of many small arguments
        // is never cut; a big argument's bytes start it.
        let held = if rbuf.len() > qlimit {
            &rbuf[parser.consumed_of_incomplete(&rbuf)..]
        } else {
            &[]
        };
        if held.len() > qlimit {
            // Redis logs and closes without a reply.
            client.borrow_mut().qbuf = held.len();
            let mut initial = Vec::new();
            crate::runtime::monitor::repr(&mut initial, &held[..held.len().min(64)]);
            crate::log::warning(&format!(
                "Closing client that reached max query buffer length: {} (qbuf initial bytes: {})",
                client.borrow().info_line(crate::clock::now_ms()),
                String::from_utf8_lossy(&initial)
            ));
            return Ok(None);
        }
        {
            let mut c = client.borrow_mut();
            c.qbuf = read_len - consumed;
            c.qbuf_free = rbuf.capacity() - rbuf.len();
            c.buffers_mem = rbuf.capacity() + out.capacity() + unsent.capacity();
        }
        // `maxmemory-clients`: the query buffer may have grown.
        if crate::runtime::client_eviction::update(shards, client) {
            return Ok(None);
        }
        // Requests of this read already answered before a blocking command.
        let mut done = 0;
        // The shards whose data this read's replies may show (see `Lanes`).
        let mut lanes = Lanes::None;
        let mut close = false;
        // A blocking command ends a batch: what follows it waits until it is served.
        while !requests.is_empty() && !close {
            let cut = requests
                .iter()
                .position(|a| blocking_command(a).is_some())
                .map_or(requests.len(), |i| i + 1);
            let rest = requests.split_off(cut);
            let blocking = requests
                .last()
                .and_then(|a| blocking_command(a).map(|c| (c, a.clone())));
            let mut batch = run_batch(client, shards, requests).await;
            lanes = lanes.and(batch.lanes);
            affinity = match (affinity, batch.remote_only) {
                ((Some(a), n), Some(s)) if a == s => (Some(s), n + 1),
                (_, Some(s)) => (Some(s), 1),
                (kept, None) if batch.went_nowhere => kept,
                _ => (None, 0),
            };
            requests = rest;
            close = batch.close;
            if let Some(postponed) = batch.postponed.take() {
                // CLIENT PAUSE: the replies before the postponed request leave now, as
                // in Redis; it and the requests behind it run when the pause ends.
                done += batch.replies.len();
                encode_replies(
                    shards,
                    client,
                    batch.replies,
                    batch.pushed,
                    &batch.resp_before,
                    &mut out,
                    Some(&mut big),
                );
                send_replies(
                    stream,
                    shards,
                    &pushes,
                    &mut out,
                    &mut unsent,
                    &mut big,
                    lanes,
                )
                .await?;
                // Redis trims its query buffer up to the postponed command.
                client.borrow_mut().qbuf = read_len - ends[done];
                let fd = stream.as_raw_fd();
                let first = &postponed.requests[0];
                // Held, the connection goes on writing and reading as a blocked one.
                // (The rare paths' futures are boxed: this session's future, which
                // every idle connection keeps, would otherwise reserve their size:
                // 8.6 KB a connection instead of 4.3. The batch's future stays inline;
                // boxing it cost 11% more instructions per unpipelined request.)
                let wait = Box::pin(async {
                    let ended = pause::wait(client, shards, postponed.class, first, fd).await;
                    ended.then_some(())
                });
                let io = Io {
                    stream: &mut *stream,
                    shards,
                    pushes: &pushes,
                    rbuf: &mut rbuf,
                    out: &mut out,
                    unsent: &mut unsent,
                    read: &mut read_while_blocked,
                };
                if Box::pin(while_blocked(io, qlimit, wait)).await?.is_none() {
                    return Ok(None);
                }
                requests = postponed.requests.into_iter().chain(requests).collect();
                continue;
            }
            done += cut;
            let mut blocked = None;
            if let Some((cmd, argv)) = blocking {
                let nothing = matches!(batch.replies.last(), Some(Some(r)) if blocking::found_nothing(cmd, r));
                if nothing && client.borrow().multi.is_none() {
                    batch.replies.pop();
                    blocked = Some((cmd, argv));
                }
            }
            encode_replies(
                shards,
                client,
                batch.replies,
                batch.pushed,
                &batch.resp_before,
                &mut out,
                Some(&mut big),
            );
            if let Some((cmd, argv)) = blocked {
                // Replies before the blocking command leave now, as in Redis.
                send_replies(
                    stream,
                    shards,
                    &pushes,
                    &mut out,
                    &mut unsent,
                    &mut big,
                    lanes,
                )
                .await?;
                // Served later, maybe with what another shard's command moved.
                lanes = Lanes::All;
                // Redis trims the served requests off its query buffer when it blocks.
                client.borrow_mut().qbuf = read_len - ends[done - 1];
                let fd = stream.as_raw_fd();
                let wait = Box::pin(blocking::block(client, shards, cmd, argv, fd));
                let io = Io {
                    stream: &mut *stream,
                    shards,
                    pushes: &pushes,
                    rbuf: &mut rbuf,
                    out: &mut out,
                    unsent: &mut unsent,
                    read: &mut read_while_blocked,
                };
                match Box::pin(while_blocked(io, qlimit, wait)).await? {
                    Some(r) => {
                        encode_replies(
                            shards,
                            client,
                            vec![Some(r)],
                            Vec::new(),
                            &[],
                            &mut out,
                            None,
                        );
                        // (Unblocked because the server became a replica.)
                        close |= client.borrow().close_after_reply;
                    }
                    None => return Ok(None),
                }
            }
        }
        if let Some(e) = protocol_error {
            let reply = errors::protocol_error(&e.to_string());
            let text = reply.error_text().unwrap_or_default().into_owned();
            shards.local.borrow_mut().stats.record_error(&text);
            reply.encode(client.borrow().resp, &mut out);
            close = true;
        }
        {
            let mut c = client.borrow_mut();
            c.last_interaction_ms = crate::clock::now_ms();
            // Between reads only an incomplete request is left in the query buffer.
            consumed = parser.consumed_of_incomplete(&rbuf);
            c.qbuf = rbuf.len() - consumed;
            c.qbuf_free = rbuf.capacity() - rbuf.len();
        }
        // After QUIT's reply nothing more is written (Redis refuses to add to the
        // output of a client that closes after its reply).
        if let Some(p) = crate::runtime::dispatch::queued_pushes(client).filter(|_| !close) {
            out.extend_from_slice(&p);
            lanes = Lanes::All;
        }
        // `maxmemory-clients`: the replies count before they are written.
        pushes.set_unwritten(unsent.len() + big.len_with(&out));
        if crate::runtime::client_eviction::update(shards, client) {
            return Ok(None);
        }
        // Let the core's other ready connections run their reads first, then write
        // (Redis writes every client's replies before it sleeps, after all reads).
        if backend::others_ready() {
            backend::yield_once().await;
        }
        if close {
            write_replies(
                stream,
                shards,
                &pushes,
                &mut out,
                &mut unsent,
                &mut big,
                lanes,
            )
            .await?;
            return Ok(None);
        }
        send_replies(
            stream,
            shards,
            &pushes,
            &mut out,
            &mut unsent,
            &mut big,
            lanes,
        )
        .await?;
        if client.borrow().killed {
            return Ok(None);
        }
        // Buffers a big request or reply grew go now, not at the next wait, so that
        // what the client holds (CLIENT LIST tot-mem, `maxmemory-clients`) falls back
        // at once, as Redis's query buffer does after a big argument.
        if rbuf.is_empty() && rbuf.capacity() > BIG_BUF {
            rbuf = BytesMut::new();
        }
        if out.capacity() > BIG_BUF {
            out = BytesMut::new();
        }
        client.borrow_mut().buffers_mem = rbuf.capacity() + out.capacity() + unsent.capacity();
        // PSYNC / SYNC: from here on the connection feeds a replica.
        let handoff = client.borrow_mut().handoff.take();
        if let Some(how) = handoff {
            write_replies(
                stream,
                shards,
                &pushes,
                &mut out,
                &mut unsent,
                &mut big,
                lanes,
            )
            .await?;
            Box::pin(crate::replication::master::serve(
                stream, shards, client, how,
            ))
            .await;
            return Ok(None);
        }
        if let (Some(shard), n) = affinity {
            if n >= MOVE_AFTER {
                affinity = (None, 0);
                if let Some(m) = moving(stream, shards, client, &rbuf, &unsent, shard) {
                    return Ok(Some(m));
                }
            }
        }
    }
}

/// Connection affinity: a connection whose requests all go to one other core's shard
/// pays a hop for each read (a wake-up of that core and one of this one, twice the CPU
/// of a local request at P16); served on that core it pays none. So after
/// [`MOVE_AFTER`] such reads in a row (a script that ran as one job there counts as
/// such a request; a read that reached no shard, connection commands and QUEUED
/// answers, neither counts nor breaks the row), a plain client (see
/// [`Client::moving`]) with no partial request buffered moves: this core drops the
/// socket from its loop and sends a duplicate of it, with the client's state, to the
/// other core, which serves it from then on (same client id, name, database,
/// protocol). Requests the client sent meanwhile wait in the socket. A client whose
/// keys are spread over shards never moves; one that turns to another shard's keys
/// moves again after as many reads. A client of the Unix socket moves the same way.
fn moving(
    stream: &TcpStream,
    shards: &Shards,
    client: &ClientRef,
    rbuf: &BytesMut,
    unsent: &BytesMut,
    to: usize,
) -> Option<Move> {
    if !rbuf.is_empty() || !unsent.is_empty() || shards.server.shutting_down.load(Ordering::Relaxed)
    {
        return None;
    }
    let state = client.borrow().moving()?;
    let socket = stream.duplicate().ok()?;
    Some(Move {
        shard: to,
        socket,
        state,
    })
}

/// The error a write ends with when the client went over its output buffer limit.
fn over_limit() -> std::io::Error {
    std::io::Error::other("client is over its output buffer limit")
}

/// A connection's socket and buffers, lent to [`while_blocked`]; `read` counts the
/// bytes it reads into `rbuf`.
struct Io<'a> {
    stream: &'a mut TcpStream,
    shards: &'a Shards,
    pushes: &'a Pushes,
    rbuf: &'a mut BytesMut,
    out: &'a mut BytesMut,
    unsent: &'a mut BytesMut,
    read: &'a mut usize,
}

/// Wait for a blocked command, or a request CLIENT PAUSE holds (`wait`, run to its
/// end: a blocked command withdraws its registrations as it ends, and a served element
/// must reach its reply) while going on writing the replies before it that the socket
/// had not taken, then a RESP3 client's pushes (invalidations, keyspace events: see
/// [`poll_write_pushes_now`]), and reading what the client sends after it (up to
/// `limit`, the query buffer's), as Redis goes on reading a blocked client into its
/// query buffer and writing its output buffer.
/// Otherwise a client that sends a pipeline with a blocking command in its middle
/// before it reads any reply would wait for ever with the server once both
/// directions' buffers are full (see `next_event`). `wait`'s outcome (`None`: the
/// client left), or the socket's error if one ended the I/O meanwhile.
async fn while_blocked<T>(
    io: Io<'_>,
    limit: usize,
    wait: impl std::future::Future<Output = Option<T>>,
) -> std::io::Result<Option<T>> {
    let Io {
        stream,
        shards,
        pushes,
        rbuf,
        out,
        unsent,
        read,
    } = io;
    let mut wait = std::pin::pin!(wait);
    let (mut eof, mut failed) = (false, None);
    let outcome = std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = wait.as_mut().poll(cx) {
            return Poll::Ready(r);
        }
        if failed.is_some() {
            return Poll::Pending;
        }
        if !unsent.is_empty() {
            if let Poll::Ready(Err(e)) = poll_write_unsent(stream, cx, pushes, unsent) {
                failed = Some(e);
                return Poll::Pending;
            }
        }
        if unsent.is_empty() && pushes.resp.get() >= 3 {
            if let Poll::Ready(Err(e)) = poll_write_pushes_now(stream, cx, shards, pushes) {
                failed = Some(e);
                return Poll::Pending;
            }
        }
        // (At end of input the wait notices the hang-up itself and ends.)
        while !eof && rbuf.len() < limit {
            match poll_read_into(stream, cx, rbuf, out) {
                Poll::Ready(Ok(0)) => eof = true,
                Poll::Ready(Ok(n)) => *read += n,
                Poll::Ready(Err(e)) => {
                    failed = Some(e);
                    break;
                }
                Poll::Pending => break,
            }
        }
        Poll::Pending
    })
    .await;
    match failed {
        Some(e) => Err(e),
        None => Ok(outcome),
    }
}

/// Clear a read's replies (and the messages placed among them) to go and write what
/// the socket takes of them now: first check them against the output buffer limit, as
/// Redis does when it adds replies to its buffer; then, once the AOF has what they
/// show (`lanes`: the shards whose data they may show), write them behind the replies
/// still waiting. What the socket does not take waits in `unsent` (see `next_event`).
async fn send_replies(
    stream: &mut TcpStream,
    shards: &Shards,
    pushes: &Pushes,
    out: &mut BytesMut,
    unsent: &mut BytesMut,
    big: &mut Big,
    lanes: Lanes,
) -> std::io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    let total = big.len_with(out);
    pushes.set_unwritten(unsent.len() + total);
    if pushes.enforce_limit(OverLimit::Scheduled) {
        *big = Big::default();
        return Err(over_limit());
    }
    logged(shards, lanes).await;
    shards.local.borrow_mut().stats.wrote(total);
    if big.parts.is_empty() {
        let taken = if unsent.is_empty() {
            write_now(stream, out).await?
        } else {
            0
        };
        unsent.extend_from_slice(&out[taken..]);
        out.clear();
        pushes.set_unwritten(unsent.len());
        return Ok(());
    }
    // Out of line and boxed: the common path's future stays as small as it was.
    Box::pin(send_big(stream, pushes, out, unsent, big)).await
}

/// Write `out` with `big`'s parts in their places, what the socket does not take
/// going to `unsent` in order.
async fn send_big(
    stream: &mut TcpStream,
    pushes: &Pushes,
    out: &mut BytesMut,
    unsent: &mut BytesMut,
    big: &mut Big,
) -> std::io::Result<()> {
    let mut writing = unsent.is_empty();
    let mut failed = None;
    for segment in big.segments(out) {
        let taken = if writing {
            match write_now(stream, segment).await {
                Ok(n) => n,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        } else {
            0
        };
        if taken < segment.len() {
            // The socket is full: the rest waits in `unsent`, in order.
            writing = false;
            unsent.extend_from_slice(&segment[taken..]);
        }
    }
    *big = Big::default();
    out.clear();
    if let Some(e) = failed {
        return Err(e);
    }
    pushes.set_unwritten(unsent.len());
    Ok(())
}

/// [`send_replies`], then wait until the socket took every reply: before the
/// connection blocks, pauses, closes or changes hands, what it answered must be out.
async fn write_replies(
    stream: &mut TcpStream,
    shards: &Shards,
    pushes: &Pushes,
    out: &mut BytesMut,
    unsent: &mut BytesMut,
    big: &mut Big,
    lanes: Lanes,
) -> std::io::Result<()> {
    send_replies(stream, shards, pushes, out, unsent, big, lanes).await?;
    let written = std::future::poll_fn(|cx| loop {
        match poll_write_unsent(stream, cx, pushes, unsent) {
            Poll::Ready(Ok(())) if !unsent.is_empty() => continue,
            other => return other,
        }
    })
    .await;
    pushes.set_unwritten(0);
    *unsent = BytesMut::new();
    written
}

/// Write what the socket takes of `buf` without waiting; how much it took.
async fn write_now(stream: &mut TcpStream, buf: &[u8]) -> std::io::Result<usize> {
    let mut at = 0;
    std::future::poll_fn(|cx| loop {
        if at == buf.len() {
            return Poll::Ready(Ok(at));
        }
        match stream.poll_write(cx, &buf[at..]) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(n)) => at += n,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Ready(Ok(at)),
        }
    })
    .await
}

/// Write what the socket takes of the replies waiting in `unsent`: ready once it took
/// some (all, or as much as it would) or the client is over its output buffer limit
/// (the mark wakes this wait while the socket is full).
fn poll_write_unsent(
    stream: &mut TcpStream,
    cx: &mut std::task::Context<'_>,
    pushes: &Pushes,
    unsent: &mut BytesMut,
) -> Poll<std::io::Result<()>> {
    let mut took = false;
    loop {
        if pushes.over_limit().is_some() {
            return Poll::Ready(Err(over_limit()));
        }
        if unsent.is_empty() {
            // Its capacity goes with it: a client that fell behind once keeps nothing.
            *unsent = BytesMut::new();
            return Poll::Ready(Ok(()));
        }
        match stream.poll_write(cx, unsent) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(n)) => {
                bytes::Buf::advance(unsent, n);
                pushes.set_unwritten(unsent.len());
                took = true;
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {
                pushes.register(cx.waker());
                return if took {
                    Poll::Ready(Ok(()))
                } else {
                    Poll::Pending
                };
            }
        }
    }
}

/// Wait until what the shards of `lanes` did so far is in the log (on disk with
/// `appendfsync always`), with every multi-shard transaction it may have passed: what
/// a client is sent next may show it.
async fn logged(shards: &Shards, lanes: Lanes) {
    let conclusions = concluding::opened();
    concluding::settled().await;
    if let Some(wait) = shards.server.durability.durable(lanes, conclusions) {
        wait.await;
    }
}

/// Write what is queued for a blocked RESP3 client (pushes are told from replies, so
/// they need not wait for the blocked command's reply, and Redis writes them at once),
/// registering for the next message once the queue is empty. Only while the log
/// already has what they may show (no multi-shard conclusion open, nothing to await
/// for the AOF): otherwise they wait for the block's end, as before an idle
/// connection's write (see [`write_pushes`]).
fn poll_write_pushes_now(
    stream: &mut TcpStream,
    cx: &mut std::task::Context<'_>,
    shards: &Shards,
    pushes: &Pushes,
) -> Poll<std::io::Result<()>> {
    let logged = || {
        concluding::none_open()
            && shards
                .server
                .durability
                .durable(Lanes::All, concluding::opened())
                .is_none()
    };
    let mut written = 0;
    let polled = if pushes.front().is_some() && logged() {
        poll_write_queue(stream, cx, pushes, usize::MAX, &mut written)
    } else {
        Poll::Ready(Ok(()))
    };
    if polled.is_ready() {
        // Woken by the next message.
        pushes.register(cx.waker());
    }
    if written > 0 {
        shards.local.borrow_mut().stats.wrote(written);
    }
    polled
}

/// Write the queue's blocks until it is empty or `budget` bytes are written (ready),
/// the socket takes no more (pending, woken when it does), or the client is over its
/// output buffer limit (the error); `written` counts the bytes.
fn poll_write_queue(
    stream: &mut TcpStream,
    cx: &mut std::task::Context<'_>,
    pushes: &Pushes,
    budget: usize,
    written: &mut usize,
) -> Poll<std::io::Result<()>> {
    loop {
        if pushes.over_limit().is_some() {
            return Poll::Ready(Err(over_limit()));
        }
        if *written >= budget {
            return Poll::Ready(Ok(()));
        }
        let polled = match pushes.front() {
            Some(block) => stream.poll_write(cx, &block),
            None => return Poll::Ready(Ok(())),
        };
        match polled {
            Poll::Ready(Ok(0)) => return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(n)) => {
                pushes.consume(n);
                *written += n;
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {
                pushes.register(cx.waker());
                return Poll::Pending;
            }
        }
    }
}

/// Write the messages queued for an idle connection, straight from the queue's
/// blocks: as much as was queued when it started (so that input is read again between
/// bursts), or until the client is over its output buffer limit.
async fn write_pushes(
    stream: &mut TcpStream,
    shards: &Shards,
    pushes: &Pushes,
) -> std::io::Result<()> {
    let budget = pushes.pending();
    // Keyspace events and invalidations show writes, which the log has first (as
    // Redis writes its clients' buffers after its AOF's).
    logged(shards, Lanes::All).await;
    let mut written = 0;
    let result =
        std::future::poll_fn(|cx| poll_write_queue(stream, cx, pushes, budget, &mut written)).await;
    if written > 0 {
        shards.local.borrow_mut().stats.wrote(written);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spares() -> usize {
        SPARE.with_borrow(|s| s.len())
    }

    #[test]
    fn a_query_buffer_is_kept_only_when_nothing_points_into_it() {
        let start = spares();
        let mut buf = query_buffer();
        buf.reserve(QUERY_BUF);
        buf.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
        let request = buf.split_to(buf.len()).freeze();
        // A request's argument still held (a blocked command's): the buffer is freed,
        // not handed to another connection.
        give_back(std::mem::take(&mut buf));
        assert_eq!(spares(), start);
        assert_eq!(&request[..], b"*1\r\n$4\r\nPING\r\n");
        drop(request);

        let mut buf = query_buffer();
        buf.reserve(QUERY_BUF);
        buf.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
        drop(buf.split_to(buf.len()));
        give_back(buf);
        assert_eq!(spares(), start + 1);
        // The next read of the core gets it back whole.
        let again = query_buffer();
        assert!(again.is_empty() && again.capacity() >= QUERY_BUF);
        assert_eq!(spares(), start);

        // A buffer a big request grew is freed.
        let mut big = BytesMut::with_capacity(4 * BIG_BUF);
        big.extend_from_slice(&[b'x'; 100]);
        drop(big.split_to(100));
        give_back(big);
        assert_eq!(spares(), start);

        // At most SPARE_MAX are kept.
        for _ in 0..SPARE_MAX + 3 {
            give_back(BytesMut::with_capacity(QUERY_BUF));
        }
        assert_eq!(spares(), SPARE_MAX);
    }
}
