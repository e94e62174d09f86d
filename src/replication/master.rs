//! The master side: REPLCONF, PSYNC / SYNC, and feeding a replica its full sync and the
//! stream (see the module doc of `replication` for the plan).
//!
//! PSYNC decides between `+CONTINUE` and `+FULLRESYNC` and registers the replica as a
//! reader of the stream at once (so the backlog keeps its bytes), then hands the
//! connection over: after the read's replies, the connection task runs [`serve`]
//! instead of reading commands. `serve` sends the RDB (a full sync), then the stream,
//! and reads the replica's REPLCONF ACKs, until either side closes.

use super::stream::{ReaderState, Stream};
use crate::client::ClientRef;
use crate::commands::errors;
use crate::log::log;
use crate::persistence::rdb::crc64::Crc64;
use crate::persistence::rdb::encode;
use crate::persistence::save::{Activity, ToWriter};
use crate::persistence::snapshot;
use crate::protocol::{Limits, ParseOutcome, Reply, RequestParser};
use crate::runtime::backend::{self, TcpStream};
use crate::runtime::transaction::{FirstStep, Tx};
use crate::runtime::{ServerInfo, Shards};
use crate::shard::Shard;
use bytes::{Bytes, BytesMut};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What a replica said about itself (REPLCONF), and what the connection is.
#[derive(Debug, Default)]
pub struct Peer {
    pub listening_port: u16,
    pub ip: Option<String>,
    pub capa_eof: bool,
    pub rdb_only: bool,
    /// What `REPLCONF rdb-filter-only` leaves out of its RDB.
    pub rdb_excludes: Excludes,
    /// A replica we feed.
    pub is_replica: bool,
    /// Our master's link.
    pub is_master: bool,
}

/// The parts of a replica's RDB that `REPLCONF rdb-filter-only` leaves out (redis-cli
/// --functions-rdb asks for the functions alone). Filtered RDBs go with an EOF mark,
/// as Redis sends them only to a socket.
#[derive(Debug, Default, Clone, Copy)]
pub struct Excludes {
    pub data: bool,
    pub functions: bool,
}

impl Excludes {
    fn any(self) -> bool {
        self.data || self.functions
    }
}

/// How a connection becomes a replica's feed.
#[derive(Debug)]
pub enum Handoff {
    /// `+FULLRESYNC` (PSYNC) or nothing (SYNC), then an RDB, then the stream.
    Full { psync: bool },
    /// `+CONTINUE`, then the stream after the offset the reader was registered at.
    Continue,
}

/// REPLCONF option value ...: the handshake's options, ACK and GETACK.
pub fn replconf(c: &ClientRef, shards: &Shards, argv: &[Bytes]) -> Reply {
    if argv.len().is_multiple_of(2) {
        return errors::syntax();
    }
    let mut cl = c.borrow_mut();
    for pair in argv[1..].chunks(2) {
        let (opt, val) = (&pair[0], &pair[1]);
        let opt_s = String::from_utf8_lossy(opt).to_ascii_lowercase();
        match opt_s.as_str() {
            "listening-port" => match crate::commands::args::int(val) {
                Ok(p) if (0..=65535).contains(&p) => cl.repl.listening_port = p as u16,
                _ => return Reply::err(errors::NOT_INTEGER),
            },
            "ip-address" => cl.repl.ip = Some(String::from_utf8_lossy(val).into_owned()),
            "capa" => {
                if val.eq_ignore_ascii_case(b"eof") {
                    cl.repl.capa_eof = true;
                }
            }
            "rdb-only" => cl.repl.rdb_only = val.as_ref() == b"1",
            "rdb-filter-only" => {
                // Include filters, every part left out by default; "" keeps nothing.
                let mut excludes = Excludes {
                    data: true,
                    functions: true,
                };
                let Some(filters) = crate::protocol::parse::split_args(val) else {
                    return Reply::err("ERR Missing rdb-filter-only values");
                };
                for filter in filters {
                    if !filter.eq_ignore_ascii_case(b"functions") {
                        return Reply::error(format!(
                            "ERR Unsupported rdb-filter-only option: {}",
                            String::from_utf8_lossy(&filter)
                        ));
                    }
                    excludes.functions = false;
                }
                cl.repl.rdb_excludes = excludes;
            }
            "ack" | "fack" => {
                // From a replica we feed: no reply (handled in `serve` normally).
                if let Ok(off) = crate::commands::args::int(val) {
                    if cl.repl.is_replica {
                        super::of(&shards.server)
                            .lock()
                            .ack(cl.id, off.max(0) as u64);
                    }
                }
                return Reply::NoReply;
            }
            "getack" => {
                // Only a master asks; a replica answers it on the link (`replica`).
                return Reply::NoReply;
            }
            _ => {
                return Reply::error(format!(
                    "ERR Unrecognized REPLCONF option: {}",
                    String::from_utf8_lossy(opt)
                ))
            }
        }
    }
    Reply::ok()
}

/// PSYNC replid offset / SYNC: decide full or partial, register the reader, hand the
/// connection over after this reply.
pub async fn psync(c: &ClientRef, shards: &Shards, argv: &[Bytes], is_psync: bool) -> Reply {
    let st = super::of(&shards.server);
    if c.borrow().repl.is_replica {
        return Reply::NoReply;
    }
    // PSYNC replid offset FAILOVER: our master hands us its role (its FAILOVER).
    if is_psync && argv.len() > 3 && argv[3].eq_ignore_ascii_case(b"failover") {
        log(&format!(
            "Failover request received for replid {}.",
            String::from_utf8_lossy(&argv[1])
        ));
        let (replica, ours) = {
            let s = st.lock();
            (
                s.role != super::Role::Master,
                argv[1].as_ref() == s.replid.as_bytes(),
            )
        };
        if !replica {
            return Reply::err("ERR PSYNC FAILOVER can't be sent to a master.");
        }
        if !ours {
            return Reply::err("ERR PSYNC FAILOVER replid must match my replid.");
        }
        super::replica::promote(shards).await;
        let line = c.borrow().info_line(crate::clock::now_ms());
        log(&format!(
            "MASTER MODE enabled (failover request from '{line}')"
        ));
    }
    if st.lock().failover.is_some() {
        return Reply::err("NOMASTERLINK Can't SYNC while failing over");
    }
    let mut cl = c.borrow_mut();
    if cl.multi.is_some() {
        return Reply::err("ERR Replica can't be inside MULTI");
    }
    if cl.repl.rdb_excludes.any() && !cl.repl.capa_eof {
        return Reply::err("ERR Filtered replica requires EOF capability");
    }
    let mut s = st.lock();
    if let super::Role::Replica { .. } = s.role {
        if s.link != super::LinkState::Up {
            return Reply::err("NOMASTERLINK Can't SYNC while not connected with my master");
        }
    }
    let ip = cl
        .repl
        .ip
        .clone()
        .unwrap_or_else(|| cl.addr.ip().to_string());
    let port = cl.repl.listening_port;
    let rdb_only = cl.repl.rdb_only;
    if is_psync {
        let (id, offset) = (&argv[1], crate::commands::args::int(&argv[2]).unwrap_or(-1));
        let ours = id.as_ref() == s.replid.as_bytes();
        let second = id.as_ref() == s.replid2.as_bytes() && offset <= s.second_offset;
        if (ours || second) && offset > 0 && s.can_continue(offset as u64) {
            s.configure(&shards.local.borrow().config);
            s.activate();
            let _ = s.add_reader(cl.id, ip, port, offset as u64 - 1, rdb_only);
            if let Some(r) = s.reader(cl.id) {
                r.state = ReaderState::Online;
                r.ack = offset as u64 - 1;
            }
            st.sync_partial_ok.fetch_add(1, Ordering::Relaxed);
            log(&format!(
                "Partial resynchronization request from {}:{} accepted. Sending {} bytes of backlog starting from offset {}.",
                cl.addr.ip(),
                port,
                s.end + 1 - offset as u64,
                offset
            ));
            drop(s);
            cl.repl.is_replica = true;
            cl.handoff = Some(Handoff::Continue);
            cl.update_class();
            return Reply::NoReply;
        }
        if id.as_ref() != b"?" {
            st.sync_partial_err.fetch_add(1, Ordering::Relaxed);
        }
    }
    st.sync_full.fetch_add(1, Ordering::Relaxed);
    drop(s);
    log(&format!(
        "Replica {}:{} asks for synchronization",
        cl.addr.ip(),
        port
    ));
    cl.repl.is_replica = true;
    cl.handoff = Some(Handoff::Full { psync: is_psync });
    cl.update_class();
    Reply::NoReply
}

/// Attach the feeds to every shard, start a snapshot on each (none `without_data`, for
/// an RDB that leaves the keys out) and register the reader at the stream's offset,
/// all while every shard is held; the chunks' receiver.
async fn start_snapshot(shards: &Shards, req: &SyncRequest) -> Result<Started, String> {
    let without_data = req.excludes.data;
    let (tx, rx) = flume::bounded(8);
    let server = shards.server.clone();
    let steps: Vec<(usize, FirstStep<Result<(), String>>)> = (0..shards.count())
        .map(|sid| {
            let tx = tx.clone();
            let server = server.clone();
            let step: FirstStep<Result<(), String>> = Box::new(move |s: &mut Shard| {
                super::stream::Feed::attach(s, &server);
                if without_data {
                    return Ok(());
                }
                snapshot::begin(s, tx, snapshot::Purpose::Copy)
            });
            (sid, step)
        })
        .collect();
    drop(tx);
    let (t, started) = Tx::begin_with(shards, steps).await;
    // Every shard is held: no unit is being appended.
    let st = super::of(&shards.server);
    let (offset, replid, stream_db, wake) = {
        let mut s = st.lock();
        s.configure(&shards.local.borrow().config);
        s.activate();
        let end = s.end;
        let wake = s.add_reader(req.id, req.ip.clone(), req.port, end, req.rdb_only);
        let db = s.stream_db();
        s.force_select();
        (s.end, s.replid.clone(), db, wake)
    };
    let libraries = crate::scripting::functions::codes();
    st.feeding.store(true, Ordering::Relaxed);
    drop(t);
    if let Some(Err(e)) = started.into_iter().find(|r| r.is_err()) {
        shards.all(|s: &mut Shard| snapshot::abort(s)).await;
        st.lock().remove_reader(req.id);
        return Err(e);
    }
    Ok(Started {
        head: RdbHead {
            replid,
            offset,
            stream_db,
            libraries,
        },
        chunks: rx,
        wake,
    })
}

/// A replica asking for a full sync: who it is, and what it takes.
struct SyncRequest {
    id: u64,
    ip: String,
    port: u16,
    /// Wants the RDB alone (redis-cli --rdb): no stream after it.
    rdb_only: bool,
    /// What `REPLCONF rdb-filter-only` leaves out of its RDB.
    excludes: Excludes,
    /// Takes an EOF-marked RDB (`REPLCONF capa eof`).
    eof: bool,
    /// Sent PSYNC (answered `+FULLRESYNC`), not SYNC.
    psync: bool,
}

/// A replica's snapshot, started: its RDB's head, the shards' chunks, and the
/// wake-up of the reader.
struct Started {
    head: RdbHead,
    chunks: flume::Receiver<ToWriter>,
    wake: flume::Receiver<()>,
}

/// What an RDB for a replica says before its keys: where the stream continues after
/// it (and in which db), and the function libraries of the snapshot's instant.
struct RdbHead {
    replid: String,
    offset: u64,
    stream_db: usize,
    libraries: Vec<Bytes>,
}

/// The RDB's bytes from the shards' chunks, with Redis's replication aux fields, in
/// pieces of about 64 KiB; Err if a shard stopped.
fn rdb_pieces(
    parts: usize,
    rx: flume::Receiver<ToWriter>,
    head: RdbHead,
    out: flume::Sender<Vec<u8>>,
) -> Result<u64, String> {
    let mut crc = Crc64::default();
    let mut piece = Vec::with_capacity(64 << 10);
    let mut total = 0u64;
    let mut put = |bytes: &[u8], piece: &mut Vec<u8>, last: bool| -> Result<(), String> {
        crc.update(bytes);
        piece.extend_from_slice(bytes);
        total += bytes.len() as u64;
        if piece.len() >= 64 << 10 || last {
            out.send(std::mem::take(piece))
                .map_err(|_| "the replica went away".to_string())?;
        }
        Ok(())
    };
    let mut bytes = Vec::new();
    let (offset_s, db_s) = (head.offset.to_string(), head.stream_db.to_string());
    encode::header(
        &mut bytes,
        false,
        crate::commands::info::rss_bytes(),
        &[
            ("repl-stream-db", &db_s),
            ("repl-id", &head.replid),
            ("repl-offset", &offset_s),
        ],
        &head.libraries,
    );
    put(&bytes, &mut piece, false)?;
    let mut current_db = usize::MAX;
    let mut done = 0;
    while done < parts {
        match rx.recv() {
            Ok(ToWriter::Chunk(c)) => {
                if c.db != current_db {
                    let mut sel = Vec::new();
                    encode::select_db(&mut sel, c.db);
                    put(&sel, &mut piece, false)?;
                    current_db = c.db;
                }
                put(&c.bytes, &mut piece, false)?;
            }
            Ok(ToWriter::Done { .. }) => done += 1,
            Err(_) => return Err("a shard stopped before finishing its snapshot".into()),
        }
    }
    let mut tail = Vec::new();
    encode::eof(&mut tail);
    put(&tail, &mut piece, false)?;
    let sum = crc.value().to_le_bytes();
    piece.extend_from_slice(&sum);
    total += 8;
    out.send(piece)
        .map_err(|_| "the replica went away".to_string())?;
    Ok(total)
}

/// Keep a backlog from now on, every shard feeding it (a master restarted with a
/// replication history in its RDB file: its replicas may continue partially).
pub async fn keep_backlog(shards: &Shards) {
    let server = shards.server.clone();
    shards
        .all(move |s: &mut Shard| super::stream::Feed::attach(s, &server))
        .await;
    let st = super::of(&shards.server);
    st.feeding.store(true, Ordering::Relaxed);
    let mut s = st.lock();
    s.configure(&shards.local.borrow().config);
    s.activate();
}

/// Feed the replica on `stream` (the connection of `client`, after its PSYNC / SYNC).
pub async fn serve(stream: &mut TcpStream, shards: &Shards, client: &ClientRef, how: Handoff) {
    let req = {
        let c = client.borrow();
        SyncRequest {
            id: c.id,
            ip: c.repl.ip.clone().unwrap_or_else(|| c.addr.ip().to_string()),
            port: c.repl.listening_port,
            rdb_only: c.repl.rdb_only,
            excludes: c.repl.rdb_excludes,
            eof: c.repl.capa_eof,
            psync: matches!(how, Handoff::Full { psync: true }),
        }
    };
    let id = req.id;
    let st = super::of(&shards.server);
    // (After an EOF-marked RDB: whether the stream waits for the replica's first ACK.)
    let (wake, await_ack) = match how {
        Handoff::Continue => {
            let (replid, wake) = {
                let mut s = st.lock();
                let Some(w) = s.wake_channel(id) else {
                    return;
                };
                (s.replid.clone(), w)
            };
            if stream
                .write_all(format!("+CONTINUE {replid}\r\n").as_bytes())
                .await
                .is_err()
            {
                st.lock().remove_reader(id);
                return;
            }
            (wake, false)
        }
        Handoff::Full { .. } => match full_sync(stream, shards, &req).await {
            Some(sent) => sent,
            None => {
                st.lock().remove_reader(id);
                return;
            }
        },
    };
    if req.rdb_only {
        st.lock().remove_reader(id);
        return;
    }
    feed(stream, shards, client, id, wake, await_ack).await;
    st.lock().remove_reader(id);
    log(&format!(
        "Connection with replica {}:{} lost.",
        req.ip, req.port
    ));
}

/// Send a full sync: `+FULLRESYNC` (PSYNC), the RDB, and mark the reader online; the
/// reader's wake-ups, and whether the RDB went with an EOF mark.
async fn full_sync(
    stream: &mut TcpStream,
    shards: &Shards,
    req: &SyncRequest,
) -> Option<(flume::Receiver<()>, bool)> {
    let SyncRequest {
        id,
        ref ip,
        port,
        excludes,
        eof,
        psync,
        ..
    } = *req;
    let diskless = eof
        && (excludes.any() || psync && shards.local.borrow().config.get_bool("repl-diskless-sync"));
    if diskless && !wait_for_more_replicas(stream, shards).await {
        return None;
    }
    let saving = &crate::persistence::of(&shards.server).save;
    saving.begin(Activity::Bgsave).await;
    let Started {
        mut head,
        chunks,
        wake,
    } = match start_snapshot(shards, req).await {
        Ok(x) => x,
        Err(e) => {
            saving.end();
            log(&format!("Can't start the replica's snapshot: {e}"));
            return None;
        }
    };
    if excludes.functions {
        head.libraries.clear();
    }
    log(&format!(
        "Starting BGSAVE for SYNC with target: {}",
        if diskless { "replicas sockets" } else { "disk" }
    ));
    if psync
        && stream
            .write_all(format!("+FULLRESYNC {} {}\r\n", head.replid, head.offset).as_bytes())
            .await
            .is_err()
    {
        drop(chunks);
        saving.end();
        return None;
    }
    if let Some(r) = super::of(&shards.server).lock().reader(id) {
        r.state = ReaderState::SendBulk;
    }
    let (pieces_tx, pieces) = flume::bounded::<Vec<u8>>(4);
    let parts = if excludes.data { 0 } else { shards.count() };
    let maker = std::thread::Builder::new()
        .name("repl-rdb".into())
        .spawn(move || rdb_pieces(parts, chunks, head, pieces_tx))
        .ok()?;
    let sent = if diskless {
        send_eof(stream, shards, id, &pieces).await
    } else {
        send_with_length(stream, shards, &pieces).await
    };
    if let Ok(n) = &sent {
        super::of(&shards.server)
            .repl_output_bytes
            .fetch_add(*n, Ordering::Relaxed);
    }
    drop(pieces);
    let made = maker.join().unwrap_or(Err("the RDB maker panicked".into()));
    saving.end();
    if let Err(e) = made.and(sent.map(|_| ())) {
        log(&format!("Full sync to {ip}:{port} failed: {e}"));
        return None;
    }
    log(&format!(
        "Synchronization with replica {ip}:{port} succeeded"
    ));
    if let Some(r) = super::of(&shards.server).lock().reader(id) {
        r.state = ReaderState::Online;
        r.ack_ms = crate::clock::now_ms();
    }
    Some((wake, diskless))
}

/// Diskless syncs waiting out `repl-diskless-sync-delay` now, and how many times
/// `repl-diskless-sync-max-replicas` of them ended everyone's wait early.
static WAITING: AtomicU64 = AtomicU64::new(0);
static RELEASED: AtomicU64 = AtomicU64::new(0);

/// `repl-diskless-sync-delay`: a diskless sync starts that many seconds after the
/// replica asked, or as soon as `repl-diskless-sync-max-replicas` syncs wait, with a
/// newline to the replica every second meanwhile (a replica's keep-alive), as Redis's
/// master. Redis waits so that one snapshot serves every replica that comes in that
/// time; here each sync still makes its own snapshot, so the wait only keeps Redis's
/// timing (a replica stays in its handshake meanwhile). False if the replica left.
async fn wait_for_more_replicas(stream: &mut TcpStream, shards: &Shards) -> bool {
    let (delay, max) = {
        let local = shards.local.borrow();
        let cfg = &local.config;
        (
            cfg.get_int("repl-diskless-sync-delay"),
            cfg.get_int("repl-diskless-sync-max-replicas"),
        )
    };
    if delay <= 0 {
        return true;
    }
    let released = RELEASED.load(Ordering::SeqCst);
    let waiting = WAITING.fetch_add(1, Ordering::SeqCst) + 1;
    if max > 0 && waiting >= max as u64 {
        RELEASED.fetch_add(1, Ordering::SeqCst);
    }
    let start = std::time::Instant::now();
    let end = start + Duration::from_secs(delay as u64);
    let mut next_newline = start + Duration::from_secs(1);
    let stayed = loop {
        let now = std::time::Instant::now();
        if now >= end || RELEASED.load(Ordering::SeqCst) != released {
            break true;
        }
        if now >= next_newline {
            if stream.write_all(b"\n").await.is_err() {
                break false;
            }
            next_newline += Duration::from_secs(1);
        }
        backend::sleep(Duration::from_millis(100)).await;
    };
    WAITING.fetch_sub(1, Ordering::SeqCst);
    stayed
}

/// Diskless: `$EOF:<mark>`, the RDB as it is made, the mark.
async fn send_eof(
    stream: &mut TcpStream,
    shards: &Shards,
    id: u64,
    pieces: &flume::Receiver<Vec<u8>>,
) -> Result<u64, String> {
    let mark = super::new_replid();
    let io = |e: std::io::Error| e.to_string();
    stream
        .write_all(format!("$EOF:{mark}\r\n").as_bytes())
        .await
        .map_err(io)?;
    let mut n = 0;
    while let Ok(p) = pieces.recv_async().await {
        stream.write_all(&p).await.map_err(io)?;
        n += p.len() as u64;
        if super::of(&shards.server).lock().is_cut(id) {
            return Err("the replica went over its output buffer limit during the sync".into());
        }
    }
    stream.write_all(mark.as_bytes()).await.map_err(io)?;
    Ok(n)
}

/// Disk-based: the RDB into a file in `dir`, then `$<length>` and the file.
async fn send_with_length(
    stream: &mut TcpStream,
    shards: &Shards,
    pieces: &flume::Receiver<Vec<u8>>,
) -> Result<u64, String> {
    let dir = shards.local.borrow().config.dir.clone();
    let path = std::path::Path::new(&dir).join(format!(
        "temp-repl-{}-{}.rdb",
        std::process::id(),
        crate::clock::now_ms()
    ));
    let result = async {
        let mut file = std::fs::File::create(&path).map_err(|e| e.to_string())?;
        while let Ok(p) = pieces.recv_async().await {
            file.write_all(&p).map_err(|e| e.to_string())?;
        }
        drop(file);
        let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
        stream
            .write_all(format!("${}\r\n", bytes.len()).as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        stream.write_all(&bytes).await.map_err(|e| e.to_string())?;
        Ok(bytes.len() as u64)
    }
    .await;
    let _ = std::fs::remove_file(&path);
    result
}

/// Send the stream from the reader's position as it grows; take the replica's ACKs.
///
/// With `await_ack` (the RDB went with an EOF mark) nothing is sent before the
/// replica's first ACK, as Redis's master waits (`repl_start_cmd_stream_on_ack`): a
/// replica finds the mark by comparing the last bytes it read, so stream bytes in the
/// same read would hide it, and a Redis replica would wait for ever.
async fn feed(
    stream: &mut TcpStream,
    shards: &Shards,
    client: &ClientRef,
    id: u64,
    wake: flume::Receiver<()>,
    await_ack: bool,
) {
    let st = super::of(&shards.server);
    let mut rbuf = BytesMut::new();
    let mut parser = RequestParser::default();
    let mut out = Vec::with_capacity(64 << 10);
    let mut scratch = vec![0u8; 16 << 10];
    let mut acked = !await_ack;
    loop {
        if client.borrow().killed {
            return;
        }
        out.clear();
        if acked && !st.lock().read(id, &mut out, 256 << 10) {
            if st.lock().over_limit(id) {
                over_limit(client);
            }
            return;
        }
        if !out.is_empty() {
            // A replica that does not read is cut off while the write waits (the
            // append that finds it over its limit wakes us).
            let write = async { stream.write_all(&out).await.is_ok() };
            let cut = async {
                while wake.recv_async().await.is_ok() {
                    if st.lock().is_cut(id) {
                        break;
                    }
                }
                false
            };
            if !futures_lite::future::or(write, cut).await {
                if st.lock().over_limit(id) {
                    over_limit(client);
                }
                return;
            }
            st.repl_output_bytes
                .fetch_add(out.len() as u64, Ordering::Relaxed);
            continue;
        }
        // Nothing to send: wait for bytes, or read what the replica says.
        let read = async { std::future::poll_fn(|cx| stream.poll_read(cx, &mut scratch)).await };
        let woken = async {
            let _ = wake.recv_async().await;
            Ok(usize::MAX)
        };
        let n = match futures_lite::future::or(read, woken).await {
            Ok(usize::MAX) => continue,
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        rbuf.extend_from_slice(&scratch[..n]);
        let limits = Limits {
            max_bulk_len: 512 << 20,
            unauthenticated: false,
        };
        loop {
            match parser.parse(&mut rbuf, limits) {
                ParseOutcome::Request(argv) => {
                    let ack = argv.len() >= 3
                        && argv[0].eq_ignore_ascii_case(b"replconf")
                        && argv[1].eq_ignore_ascii_case(b"ack");
                    if ack {
                        acked = true;
                        if let Ok(off) = crate::commands::args::int(&argv[2]) {
                            st.lock().ack(id, off.max(0) as u64);
                        }
                    }
                    client.borrow_mut().last_interaction_ms = crate::clock::now_ms();
                }
                ParseOutcome::Incomplete => break,
                ParseOutcome::Error(_) => return,
            }
        }
    }
}

/// Redis's log line for a replica cut off at its output buffer limit.
fn over_limit(client: &ClientRef) {
    log(&format!(
        "Client {} scheduled to be closed ASAP for overcoming of output buffer limits.",
        client.borrow().info_line(crate::clock::now_ms())
    ));
}

/// WAIT numreplicas timeout: block until that many replicas acknowledged every write
/// made so far, or the timeout (ms, 0 = forever); the number that did.
pub async fn wait(
    shards: &Shards,
    client: &crate::client::ClientRef,
    numreplicas: i64,
    timeout_ms: i64,
) -> Reply {
    let st = super::of(&shards.server);
    let target = {
        let s = st.lock();
        if matches!(s.role, super::Role::Replica { .. }) {
            return Reply::err("ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.");
        }
        // Every write so far, this client's among them (Redis waits for the client's
        // own last write: the same or earlier).
        s.data_end
    };
    let deadline = (timeout_ms > 0)
        .then(|| std::time::Instant::now() + Duration::from_millis(timeout_ms as u64));
    let mut asked = false;
    let mut blocked = None;
    loop {
        let (n, rx) = {
            let mut s = st.lock();
            let n = s.acked(target);
            if n as i64 >= numreplicas {
                return Reply::Int(n as i64);
            }
            if !asked {
                // Ask the replicas for their offsets now (Redis: REPLCONF GETACK *).
                ask_for_acks(&mut s);
                asked = true;
            }
            (n, ack_receiver(&mut s))
        };
        let left = match deadline {
            Some(d) => {
                let now = std::time::Instant::now();
                if now >= d {
                    return Reply::Int(n as i64);
                }
                d - now
            }
            None => Duration::from_secs(3600),
        };
        // Waiting: a blocked client, as Redis counts WAIT's.
        blocked.get_or_insert_with(|| crate::runtime::blocking::Blocked::count(shards));
        let got = async {
            let _ = rx.recv_async().await;
            true
        };
        let timer = async {
            backend::sleep(left.min(Duration::from_millis(100))).await;
            false
        };
        if !futures_lite::future::or(got, timer).await {
            // A client that went away (or was killed) stops waiting: its connection
            // then sees it is gone.
            let c = client.borrow();
            if c.killed || crate::runtime::blocking::peer_closed(c.fd) {
                return Reply::NoReply;
            }
        }
    }
}

/// True if every replica (not an rdb-only reader) has acknowledged every write made
/// so far: a shutdown need not wait for them.
pub fn all_acked(server: &ServerInfo) -> bool {
    let s = super::of(server).lock();
    !s.readers.iter().any(|r| behind(&s, r))
}

/// A replica (not an rdb-only reader) that has not acknowledged every write made so
/// far.
fn behind(s: &Stream, r: &super::stream::Reader) -> bool {
    !r.rdb_only && (r.state != ReaderState::Online || r.ack < s.data_end)
}

/// Ask the replicas for their offsets now (`REPLCONF GETACK *` down the stream).
pub fn request_acks(server: &ServerInfo) {
    ask_for_acks(&mut super::of(server).lock());
}

fn ask_for_acks(s: &mut Stream) {
    if s.readers.iter().any(|r| r.state == ReaderState::Online) {
        let mut getack = Vec::new();
        super::stream::encode(&mut getack, &[b"REPLCONF", b"GETACK", b"*"]);
        s.append(&getack);
    }
}

/// Ready when the next REPLCONF ACK comes from any replica.
pub fn next_ack(server: &ServerInfo) -> flume::Receiver<()> {
    ack_receiver(&mut super::of(server).lock())
}

fn ack_receiver(s: &mut Stream) -> flume::Receiver<()> {
    let (tx, rx) = flume::bounded(1);
    s.ack_waiters.push(tx);
    rx
}

/// How many replicas there are, and Redis's log line for each that has not
/// acknowledged every write made so far (what a shutdown reports before it exits).
pub fn lagging_replicas(server: &ServerInfo) -> (usize, Vec<String>) {
    let s = super::of(server).lock();
    let now = crate::clock::now_ms();
    let replicas = s.readers.iter().filter(|r| !r.rdb_only).count();
    let lagging = s
        .readers
        .iter()
        .filter(|r| behind(&s, r))
        .map(|r| {
            let lag = if r.state == ReaderState::Online {
                now.saturating_sub(r.ack_ms) / 1000
            } else {
                0
            };
            format!(
                "Lagging replica {}:{} reported offset {} behind master, lag={lag}, state={}.",
                r.ip,
                r.port,
                s.end.saturating_sub(r.ack),
                r.state.name()
            )
        })
        .collect();
    (replicas, lagging)
}

/// The replication cron of a master, once a second: a PING down the stream every
/// `repl-ping-replica-period` seconds while there are replicas (they time out a silent
/// master), and the backlog freed after `repl-backlog-ttl` seconds without replicas
/// (with a new replication id, as Redis: nobody can continue the old history from us).
pub async fn ping_task(shards: std::rc::Rc<Shards>) {
    let mut since_ping = 0u64;
    loop {
        backend::sleep(Duration::from_secs(1)).await;
        since_ping += 1;
        let (period, ttl) = {
            let cfg = &shards.local.borrow().config;
            (
                cfg.get_int("repl-ping-replica-period").max(1) as u64,
                cfg.get_int("repl-backlog-ttl").max(0) as u64,
            )
        };
        let st = super::of(&shards.server);
        let free = {
            let mut s = st.lock();
            let master = matches!(s.role, super::Role::Master);
            if master && since_ping >= period && s.failover.is_none() {
                since_ping = 0;
                if s.readers.iter().any(|r| r.state == ReaderState::Online) {
                    let mut ping = Vec::new();
                    super::stream::encode(&mut ping, &[b"PING"]);
                    s.append(&ping);
                }
            }
            let now = crate::clock::now_ms();
            if !s.readers.is_empty() || !master || !s.backlog_active {
                s.no_replicas_since_ms = now;
                false
            } else {
                ttl > 0 && now.saturating_sub(s.no_replicas_since_ms) / 1000 >= ttl
            }
        };
        if free {
            shards
                .all(|s: &mut Shard| s.propagation.detach::<super::stream::Feed>())
                .await;
            st.feeding.store(false, Ordering::Relaxed);
            let mut s = st.lock();
            s.deactivate();
            s.replid = super::new_replid();
            s.replid2 = "0".repeat(40);
            s.second_offset = -1;
            log(&format!(
                "Replication backlog freed after {ttl} seconds without connected replicas."
            ));
        }
    }
}
