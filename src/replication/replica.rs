//! The replica side: REPLICAOF / SLAVEOF, and the link task that follows a master.
//!
//! The link runs on the core that ran REPLICAOF (or core 0, from `replicaof` in the
//! configuration). Each attempt: connect, PING, AUTH (`masterauth`, `masteruser`),
//! REPLCONF listening-port and capa, then PSYNC with the history we hold (our replid and
//! offset: after a full sync they are the master's, so a reconnect continues). On
//! `+FULLRESYNC` the RDB goes to a file in `dir` (either transfer form), the data set is
//! emptied and the file loaded (clients get `-LOADING` meanwhile); on `+CONTINUE` the
//! data stays. Then the stream: each read's complete requests run through the ordinary
//! dispatch path as the master client (MULTI / EXEC blocks stay atomic across shards),
//! and their bytes are appended to our own stream, so our offset is the master's. A
//! REPLCONF GETACK is answered in order; REPLCONF ACK goes every second. A failed
//! attempt is logged and retried a second later, for as long as REPLICAOF stands.

use super::{LinkState, Role};
use crate::client::{Client, ClientRef};
use crate::log::log;
use crate::protocol::{Limits, ParseOutcome, Reply, RequestParser};
use crate::runtime::backend::{self, TcpStream};
use crate::runtime::dispatch::{report_unexpected_errors, run_batch_unmonitored, Obeyed};
use crate::runtime::Shards;
use crate::shard::Shard;
use bytes::{Bytes, BytesMut};
use std::cell::RefCell;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// REPLICAOF host port | NO ONE.
pub async fn replicaof(c: &ClientRef, shards: &Shards, argv: &[Bytes]) -> Reply {
    let st = super::of(&shards.server);
    if st.lock().failover.is_some() {
        return Reply::err("ERR REPLICAOF not allowed while failing over.");
    }
    if argv[1].eq_ignore_ascii_case(b"no") && argv[2].eq_ignore_ascii_case(b"one") {
        if promote(shards).await {
            log("MASTER MODE enabled (user request from client)");
        }
        return Reply::ok();
    }
    let port = match crate::commands::args::int(&argv[2]) {
        Ok(p) if (0..=65535).contains(&p) => p as u16,
        _ => return Reply::err("ERR Invalid master port"),
    };
    let host = String::from_utf8_lossy(&argv[1]).into_owned();
    if c.borrow().repl.is_master {
        return Reply::err("ERR Command is not valid when client is a replica.");
    }
    {
        let s = st.lock();
        if s.role
            == (Role::Replica {
                host: host.clone(),
                port,
            })
        {
            return Reply::Status("OK Already connected to specified master".into());
        }
    }
    start(shards, host.clone(), port).await;
    let addr = c.borrow().addr.clone();
    log(&format!(
        "REPLICAOF {host}:{port} enabled (user request from 'id={} addr={addr}')",
        c.borrow().id
    ));
    Reply::ok()
}

/// Become a master (REPLICAOF NO ONE, a failover): the link stops, a new history
/// starts with the old one kept as replid2 (PSYNC2), writes reach the stream. False
/// if this server was a master already.
pub async fn promote(shards: &Shards) -> bool {
    let st = super::of(&shards.server);
    let was_replica = {
        let mut s = st.lock();
        let was = s.role != Role::Master;
        if was {
            st.link_generation.fetch_add(1, Ordering::SeqCst);
            s.role = Role::Master;
            s.link = LinkState::Down;
            s.down_since_ms = 0;
            s.shift_replid(super::new_replid());
            // Our replicas go on in the db our master's stream left them in: the first
            // command we send names its own (Redis's `slaveseldb = -1`).
            s.force_select();
        }
        was
    };
    if !was_replica {
        return false;
    }
    remember_master(shards, "");
    kill_master_clients(shards).await;
    // The link applies nothing more once it sees the new generation; wait for a batch
    // it is applying, so that no write of it is left out of our stream.
    while st.applying.load(Ordering::SeqCst) {
        backend::sleep(Duration::from_millis(1)).await;
    }
    st.is_replica.store(false, Ordering::SeqCst);
    set_replica_shards(shards, false).await;
    true
}

/// Become a replica of `host:port`: the old link (if any) stops, a new one starts here.
pub async fn start(shards: &Shards, host: String, port: u16) {
    let st = super::of(&shards.server);
    let gen = st.link_generation.fetch_add(1, Ordering::SeqCst) + 1;
    {
        let mut s = st.lock();
        s.role = Role::Replica {
            host: host.clone(),
            port,
        };
        // Down since the link to the old master was lost, if one was up (Redis's
        // freeClient of its master); a master, or a replica that never connected,
        // keeps "never" (0): its data's age is unknown, so a cluster failover
        // does not elect it before it has synced.
        if s.link == LinkState::Up {
            s.down_since_ms = crate::clock::now_ms();
        }
        s.link = LinkState::Connecting;
        let cfg = shards.local.borrow().config.clone();
        // Our replicas follow a new history now: they must ask again (Redis's
        // disconnectSlaves), most likely continuing partially.
        s.cut_all();
        s.configure(&cfg);
    }
    remember_master(shards, &format!("{host} {port}"));
    st.is_replica.store(true, Ordering::SeqCst);
    set_replica_shards(shards, true).await;
    kill_master_clients(shards).await;
    shards
        .all(|_: &mut Shard| crate::runtime::blocking::unblock_all_for_replication())
        .await;
    let shards = shards.detached();
    backend::spawn(async move { link(shards, gen, host, port).await }).detach();
}

/// Keep the `replicaof` option equal to the role, so that CONFIG REWRITE (which
/// Sentinel sends with every REPLICAOF of a failover) writes the master this server
/// follows now, or none, and a restart from the file comes back in the same role.
fn remember_master(shards: &Shards, addr: &str) {
    let res = shards
        .server
        .config
        .update(|c| c.set_option("replicaof", addr));
    debug_assert!(res.is_ok(), "replicaof {addr:?}: {res:?}");
}

/// Every shard's side of a role change: a replica holds expiry (its master expires
/// keys), and keeps a feed attached so that, once promoted, its writes reach the
/// stream (the feed ignores units while this server is a replica).
async fn set_replica_shards(shards: &Shards, replica: bool) {
    let server = shards.server.clone();
    shards
        .all(move |s: &mut Shard| {
            s.set_replica_expiry(replica);
            super::stream::Feed::attach(s, &server);
        })
        .await;
    super::of(&shards.server)
        .feeding
        .store(true, Ordering::Relaxed);
}

/// Close the current master link's client, wherever it is.
async fn kill_master_clients(shards: &Shards) {
    shards
        .all(|_: &mut Shard| {
            crate::runtime::clients::each(|all| {
                for client in all {
                    if let Ok(mut c) = client.try_borrow_mut() {
                        if c.repl.is_master {
                            c.killed = true;
                            crate::commands::connection::shutdown_socket(c.fd);
                        }
                    }
                }
            })
        })
        .await;
}

/// The link task for generation `gen`: attempts until REPLICAOF changes.
async fn link(shards: Rc<Shards>, gen: u64, host: String, port: u16) {
    let st = super::of(&shards.server);
    loop {
        if st.link_generation.load(Ordering::SeqCst) != gen {
            return;
        }
        log(&format!("Connecting to MASTER {host}:{port}"));
        if let Err(e) = attempt(&shards, gen, &host, port).await {
            log(&format!("Replication with MASTER {host}:{port}: {e}"));
            let failing_over = st.lock().failover.is_some();
            if failing_over {
                // The target could not be reached or refused: we stay its master.
                super::failover::abort(&shards, "Write error to failover target").await;
                return;
            }
        }
        if st.link_generation.load(Ordering::SeqCst) != gen {
            return;
        }
        {
            let mut s = st.lock();
            if s.link == LinkState::Up {
                s.down_since_ms = crate::clock::now_ms();
            }
            s.link = LinkState::Connecting;
        }
        shards.server.loading.store(false, Ordering::SeqCst);
        backend::sleep(Duration::from_secs(1)).await;
    }
}

/// The bytes read from the master not yet used.
struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    /// Bytes read so far, for INFO's `total_net_repl_input_bytes`.
    read_total: u64,
}

impl Conn {
    async fn read_more(&mut self, timeout: Duration) -> Result<(), String> {
        let mut chunk = vec![0u8; 64 << 10];
        let read = async {
            std::future::poll_fn(|cx| self.stream.poll_read(cx, &mut chunk))
                .await
                .map_err(|e| e.to_string())
        };
        let late = async {
            backend::sleep(timeout).await;
            Err("Timeout connecting to the MASTER...".to_string())
        };
        let n = futures_lite::future::or(read, late).await?;
        if n == 0 {
            return Err("the master closed the connection".into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        self.read_total += n as u64;
        Ok(())
    }

    /// One reply line (without CRLF), skipping the empty keep-alive lines a master
    /// sends while it prepares a sync.
    async fn line(&mut self, timeout: Duration) -> Result<String, String> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line = self.buf.split_to(i + 1);
                let text = String::from_utf8_lossy(&line).trim_end().to_string();
                if text.is_empty() {
                    continue;
                }
                return Ok(text);
            }
            self.read_more(timeout).await?;
        }
    }

    async fn command(&mut self, args: &[&[u8]], timeout: Duration) -> Result<String, String> {
        let mut out = Vec::new();
        super::stream::encode(&mut out, args);
        self.stream
            .write_all(&out)
            .await
            .map_err(|e| e.to_string())?;
        self.line(timeout).await
    }
}

/// One attempt: connect, handshake, sync, then follow the stream until the link ends.
async fn attempt(shards: &Rc<Shards>, gen: u64, host: &str, port: u16) -> Result<(), String> {
    let st = super::of(&shards.server);
    let cfg = shards.local.borrow().config.clone();
    let timeout = Duration::from_secs(cfg.get_int("repl-timeout").max(1) as u64);
    let stream = backend::connect(format!("{host}:{port}"), timeout)
        .await
        .map_err(|e| {
            format!(
                "Error condition on socket for SYNC: {}",
                crate::log::strerror(&e)
            )
        })?;
    let _ = stream.set_nodelay(true);
    // (Redis's master client gets `tcp-keepalive` as every client does.)
    let _ = stream.set_keepalive(cfg.get_int("tcp-keepalive"));
    let mut conn = Conn {
        stream,
        buf: BytesMut::new(),
        read_total: 0,
    };
    log("MASTER <-> REPLICA sync started");
    st.lock().link = LinkState::Handshake;
    let pong = conn.command(&[b"PING"], timeout).await?;
    if pong.starts_with('-') && !pong.starts_with("-NOAUTH") && !pong.starts_with("-NOPERM") {
        return Err(format!("Error reply to PING from master: '{pong}'"));
    }
    let pass = cfg.get("masterauth").unwrap_or("").to_string();
    if !pass.is_empty() {
        let user = cfg.get("masteruser").unwrap_or("").to_string();
        let reply = if user.is_empty() {
            conn.command(&[b"AUTH", pass.as_bytes()], timeout).await?
        } else {
            conn.command(&[b"AUTH", user.as_bytes(), pass.as_bytes()], timeout)
                .await?
        };
        if reply.starts_with('-') {
            return Err(format!("Unable to AUTH to MASTER: {reply}"));
        }
    }
    let announce = cfg.get_int("replica-announce-port");
    let my_port = if announce > 0 {
        announce as u16
    } else {
        shards.server.tcp_port
    };
    conn.command(
        &[
            b"REPLCONF",
            b"listening-port",
            my_port.to_string().as_bytes(),
        ],
        timeout,
    )
    .await?;
    let ip = cfg.get("replica-announce-ip").unwrap_or("").to_string();
    if !ip.is_empty() {
        conn.command(&[b"REPLCONF", b"ip-address", ip.as_bytes()], timeout)
            .await?;
    }
    conn.command(&[b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"], timeout)
        .await?;
    let (replid, next) = {
        let s = st.lock();
        if s.end > 0 || s.backlog_active {
            (s.replid.clone(), (s.end + 1).to_string())
        } else {
            ("?".to_string(), "-1".to_string())
        }
    };
    log(&format!(
        "Trying a partial resynchronization (request {replid}:{next})."
    ));
    // Our own FAILOVER: the target promotes itself when it reads this PSYNC.
    let failing_over = st
        .lock()
        .failover
        .as_ref()
        .is_some_and(|f| f.state == super::failover::Phase::InProgress);
    let mut psync: Vec<&[u8]> = vec![b"PSYNC", replid.as_bytes(), next.as_bytes()];
    if failing_over {
        psync.push(b"FAILOVER");
    }
    let reply = conn.command(&psync, timeout).await?;
    if st.link_generation.load(Ordering::SeqCst) != gen {
        return Ok(());
    }
    if failing_over {
        if reply.starts_with("+FULLRESYNC") || reply.starts_with("+CONTINUE") {
            super::failover::done(shards).await;
        } else {
            super::failover::abort(shards, "Failover target rejected psync request").await;
            return Err(format!("the failover target refused: {reply}"));
        }
    }
    if let Some(rest) = reply.strip_prefix("+FULLRESYNC ") {
        let mut it = rest.split_whitespace();
        let id = it.next().unwrap_or("").to_string();
        let offset: u64 = it.next().and_then(|o| o.parse().ok()).unwrap_or(0);
        log(&format!("Full resync from master: {id}:{offset}"));
        full_sync(shards, &mut conn, timeout, id, offset).await?;
    } else if let Some(rest) = reply.strip_prefix("+CONTINUE") {
        let new_id = rest.trim();
        let mut s = st.lock();
        if !new_id.is_empty() && new_id != s.replid {
            s.shift_replid(new_id.to_string());
            // Our replicas must learn the new id: they ask again (and continue
            // partially through our replid2), as Redis's disconnectSlaves.
            s.cut_all();
        }
        log("Successful partial resynchronization with master.");
        log("MASTER <-> REPLICA sync: Master accepted a Partial Resynchronization.");
    } else {
        return Err(format!("Unexpected reply to PSYNC from master: {reply}"));
    }
    st.repl_input_bytes
        .fetch_add(conn.read_total, Ordering::Relaxed);
    conn.read_total = 0;
    follow(shards, conn, gen, timeout).await
}

/// Receive the RDB into a file, empty the data set and load it.
async fn full_sync(
    shards: &Rc<Shards>,
    conn: &mut Conn,
    timeout: Duration,
    replid: String,
    offset: u64,
) -> Result<(), String> {
    let st = super::of(&shards.server);
    st.lock().link = LinkState::Syncing;
    let head = conn.line(timeout).await?;
    let Some(spec) = head.strip_prefix('$') else {
        return Err(format!(
            "Bad protocol from MASTER, the first byte is not '$' (we received '{head}')"
        ));
    };
    let dir = shards.local.borrow().config.dir.clone();
    let path = std::path::Path::new(&dir).join(format!(
        "temp-{}.{}.rdb",
        crate::clock::now_ms(),
        std::process::id()
    ));
    // (Redis's text for a failed write of the file.)
    let disk = |e: std::io::Error| {
        format!(
            "Write error or short write writing to the DB dump file needed for MASTER <-> REPLICA synchronization: {}",
            crate::log::strerror(&e)
        )
    };
    let received = async {
        let mut file = std::fs::File::create(&path).map_err(|e| {
            format!(
                "Opening the temp file needed for MASTER <-> REPLICA synchronization: {}",
                crate::log::strerror(&e)
            )
        })?;
        if let Some(mark) = spec.strip_prefix("EOF:") {
            let mark = mark.as_bytes().to_vec();
            log("MASTER <-> REPLICA sync: receiving streamed RDB from master with EOF to disk");
            // Hold back the last mark-length bytes until more come: they may be the mark.
            loop {
                if conn.buf.len() >= mark.len() && conn.buf.ends_with(&mark) {
                    let body = conn.buf.len() - mark.len();
                    file.write_all(&conn.buf[..body]).map_err(disk)?;
                    conn.buf.clear();
                    break;
                }
                if conn.buf.len() > mark.len() {
                    let n = conn.buf.len() - mark.len();
                    let part = conn.buf.split_to(n);
                    file.write_all(&part).map_err(disk)?;
                }
                conn.read_more(timeout).await?;
            }
        } else {
            let mut left: usize = spec
                .parse()
                .map_err(|_| format!("Bad RDB length from MASTER: {spec}"))?;
            log(&format!(
                "MASTER <-> REPLICA sync: receiving {left} bytes from master to disk"
            ));
            loop {
                let n = left.min(conn.buf.len());
                let part = conn.buf.split_to(n);
                file.write_all(&part).map_err(disk)?;
                left -= n;
                if left == 0 {
                    break;
                }
                conn.read_more(timeout).await?;
            }
        }
        file.sync_all().map_err(disk)
    }
    .await;
    if let Err(e) = received {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    // A file that does not decode whole (a bad checksum, a truncated transfer) costs
    // nothing: our data set stays, and the link tries again.
    if let Err(e) = crate::persistence::load::verify(shards, &path).await {
        let _ = std::fs::remove_file(&path);
        return Err(format!(
            "Failed trying to load the MASTER synchronization DB from disk: {e}"
        ));
    }
    log("MASTER <-> REPLICA sync: Flushing old data");
    shards.server.loading.store(true, Ordering::SeqCst);
    shards
        .all(|s: &mut Shard| {
            let lazy = s.config.replica_lazy_flush;
            for db in s.dbs.iter_mut() {
                crate::commands::keys::flush_db(db, lazy);
            }
        })
        .await;
    crate::scripting::functions::flush();
    log("MASTER <-> REPLICA sync: Loading DB in memory");
    let loaded =
        crate::persistence::load::rdb_into_shards(shards, &path, false, Default::default()).await;
    let _ = std::fs::remove_file(&path);
    shards.server.loading.store(false, Ordering::SeqCst);
    let stats = loaded.map_err(|e| {
        format!("Failed trying to load the MASTER synchronization DB from disk: {e}")
    })?;
    {
        let mut s = st.lock();
        // Our replicas were following the old data set: they must sync again.
        s.cut_all();
        s.replid = replid;
        s.replid2 = "0".repeat(40);
        s.second_offset = -1;
        s.end = offset;
        s.data_end = offset;
        // Where the master's stream goes on (it names its db again anyway).
        s.master_db = stats.repl.as_ref().map_or(0, |r| r.2);
        s.deactivate();
        s.activate();
    }
    log(&format!(
        "MASTER <-> REPLICA sync: Finished with success ({} keys)",
        stats.keys
    ));
    crate::persistence::aof::after_full_sync(shards);
    Ok(())
}

/// Apply the master's stream until the link ends.
async fn follow(
    shards: &Rc<Shards>,
    mut conn: Conn,
    gen: u64,
    timeout: Duration,
) -> Result<(), String> {
    let st = super::of(&shards.server);
    let (Ok(addr), Ok(laddr)) = (conn.stream.peer_addr(), conn.stream.local_addr()) else {
        return Err("the master's socket has no address".into());
    };
    let id = shards.server.new_client_id();
    let mut client = Client::new(id, addr, laddr, conn.stream.as_raw_fd(), shards.local_id);
    client.repl.is_master = true;
    super::set_master_client(id);
    client.authenticated = true;
    client.db = st.lock().master_db;
    client.update_class();
    let client: ClientRef = Rc::new(RefCell::new(client));
    crate::runtime::clients::register(id, client.clone());
    {
        let mut s = st.lock();
        s.link = LinkState::Up;
        s.down_since_ms = 0;
        s.last_io_ms = crate::clock::now_ms();
        // Keep a backlog, as Redis's replicas do: a sibling re-pointed here after a
        // promotion continues from it.
        s.activate();
    }
    let result = apply_stream(shards, &mut conn, &client, gen, timeout).await;
    super::clear_master_client(id);
    crate::runtime::clients::unregister(id);
    crate::runtime::transaction::unwatch_all(&client, shards);
    result
}

async fn apply_stream(
    shards: &Rc<Shards>,
    conn: &mut Conn,
    client: &ClientRef,
    gen: u64,
    timeout: Duration,
) -> Result<(), String> {
    let st = super::of(&shards.server);
    let mut parser = RequestParser::default();
    let limits = Limits {
        max_bulk_len: 512 << 20,
        unauthenticated: false,
    };
    // The first ACK at once, as Redis's replica after its sync: a master that sent an
    // EOF-marked RDB counts us online only from it (FAILOVER refuses a target that is
    // not), and a stream that keeps coming would put off the ACK of an idle moment.
    let end = st.lock().end;
    send_ack(conn, end).await?;
    let mut next_ack = std::time::Instant::now() + Duration::from_secs(1);
    loop {
        if st.link_generation.load(Ordering::SeqCst) != gen || client.borrow().killed {
            return Err("the link was closed".into());
        }
        // Complete requests at the front of the buffer, cut at each GETACK.
        let mut requests: Vec<Vec<Bytes>> = Vec::new();
        let mut used = 0;
        let mut getack = false;
        let mut raw = conn.buf.clone();
        loop {
            let before = raw.len();
            match parser.parse(&mut raw, limits) {
                ParseOutcome::Request(argv) => {
                    let n = before - raw.len();
                    if is_getack(&argv) {
                        if requests.is_empty() {
                            used = n;
                            getack = true;
                        }
                        break;
                    }
                    used += n;
                    if !argv.is_empty() {
                        requests.push(argv);
                    }
                }
                ParseOutcome::Incomplete => break,
                ParseOutcome::Error(e) => {
                    return Err(format!("Protocol error from the master: {e}"));
                }
            }
        }
        if used > 0 {
            // The parser keeps no state across a complete request.
            parser = RequestParser::default();
            let bytes = conn.buf.split_to(used);
            st.applying.store(true, Ordering::SeqCst);
            if st.link_generation.load(Ordering::SeqCst) != gen {
                st.applying.store(false, Ordering::SeqCst);
                return Err("the link was closed".into());
            }
            if !requests.is_empty() {
                let names: Vec<Bytes> = requests.iter().map(|a| a[0].clone()).collect();
                let out = run_batch_unmonitored(client, shards, requests).await;
                report_unexpected_errors(shards, Obeyed::Master, &names, &out.replies);
            }
            let offset = {
                let mut s = st.lock();
                st.applying.store(false, Ordering::SeqCst);
                s.master_db = client.borrow().db;
                if getack {
                    // The ACK names the offset before the GETACK, as Redis's.
                    let o = s.end;
                    s.append_data(&bytes);
                    o
                } else {
                    s.append_data(&bytes);
                    s.end
                }
            };
            if getack {
                send_ack(conn, offset).await?;
            }
            continue;
        }
        parser = RequestParser::default();
        let now = std::time::Instant::now();
        if now >= next_ack {
            let end = st.lock().end;
            send_ack(conn, end).await?;
            next_ack = now + Duration::from_secs(1);
        }
        let wait = next_ack.saturating_duration_since(std::time::Instant::now());
        match conn.read_more(wait.max(Duration::from_millis(1))).await {
            Ok(()) => {
                st.repl_input_bytes
                    .fetch_add(conn.read_total, Ordering::Relaxed);
                conn.read_total = 0;
                let mut s = st.lock();
                s.last_io_ms = crate::clock::now_ms();
                s.read_offset = s.end + conn.buf.len() as u64;
            }
            Err(e) if e.starts_with("Timeout") => {
                let silent = crate::clock::now_ms().saturating_sub(st.lock().last_io_ms);
                if silent > timeout.as_millis() as u64 {
                    return Err("MASTER timeout: no data nor PING received...".into());
                }
            }
            Err(e) => return Err(e),
        }
    }
}

fn is_getack(argv: &[Bytes]) -> bool {
    argv.len() >= 2
        && argv[0].eq_ignore_ascii_case(b"replconf")
        && argv[1].eq_ignore_ascii_case(b"getack")
}

async fn send_ack(conn: &mut Conn, offset: u64) -> Result<(), String> {
    let mut out = Vec::new();
    super::stream::encode(
        &mut out,
        &[b"REPLCONF", b"ACK", offset.to_string().as_bytes()],
    );
    conn.stream.write_all(&out).await.map_err(|e| e.to_string())
}

/// ROLE: Redis's reply for a master or a replica.
pub fn role(shards: &Shards) -> Reply {
    let st = super::of(&shards.server);
    let s = st.lock();
    match &s.role {
        Role::Master => {
            let replicas = s
                .readers
                .iter()
                .filter(|r| !r.rdb_only && r.state == super::stream::ReaderState::Online)
                .map(|r| {
                    Reply::Array(vec![
                        Reply::Bulk(Bytes::from(r.ip.clone())),
                        Reply::Bulk(Bytes::from(r.port.to_string())),
                        Reply::Bulk(Bytes::from(r.ack.to_string())),
                    ])
                })
                .collect();
            Reply::Array(vec![
                Reply::bulk_str("master"),
                Reply::Int(s.end as i64),
                Reply::Array(replicas),
            ])
        }
        Role::Replica { host, port } => {
            let state = match s.link {
                LinkState::Connecting | LinkState::Down => "connect",
                LinkState::Handshake => "handshake",
                LinkState::Syncing => "sync",
                LinkState::Up => "connected",
            };
            Reply::Array(vec![
                Reply::bulk_str("slave"),
                Reply::Bulk(Bytes::from(host.clone())),
                Reply::Int(*port as i64),
                Reply::bulk_str(state),
                Reply::Int(if s.link == LinkState::Up {
                    s.end as i64
                } else {
                    -1
                }),
            ])
        }
    }
}
