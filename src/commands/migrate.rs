//! MIGRATE host port key|"" destination-db timeout [COPY] [REPLACE] [AUTH password]
//! [AUTH2 username password] [KEYS key...]: move keys to another server, as DUMP here,
//! RESTORE there and DEL here (Redis's `migrateCommand`, which `redis-cli --cluster
//! reshard` drives slot by slot).
//!
//! # The plan
//!
//! Redis blocks its one thread for the whole exchange, so nothing can change a key
//! between its DUMP and its DEL. Here the keys are **claimed** instead, as a
//! multi-shard transaction claims them (`runtime::transaction`): the claim's first
//! step on each shard dumps that shard's keys, the claim is held while the target
//! answers, and the acknowledged keys are deleted through it before it is released.
//! Commands on other keys go on meanwhile, on every core.
//!
//! The exchange is Redis's: one write of `[AUTH] [SELECT db] RESTORE(-ASKING) key ttl
//! payload [REPLACE]...` (RESTORE-ASKING in cluster mode, so that the target serves it
//! on a slot it is importing), then one reply line each. A key is deleted here only
//! if the target acknowledged it, and the deletion is propagated as DEL (AOF,
//! replicas), never the MIGRATE. The first error from the target is the reply
//! (`Target instance replied with error: ...`); a socket error on the first reply of
//! a cached connection is retried once on a new one, as Redis does.
//!
//! **Cached connections** (`migrate_cached_sockets` in INFO): one per target and core,
//! kept while in use within 10 s of the last use (Redis's `MIGRATE_SOCKET_CACHE_TTL`),
//! at most 64 per core, each remembering the db it last SELECTed.

use super::{errors, Command, Exec, LocalBoxFuture};
use crate::client::ClientRef;
use crate::persistence::rdb::dump;
use crate::persistence::rdb::encode::Options;
use crate::protocol::Reply;
use crate::runtime::backend::{self, TcpStream};
use crate::runtime::transaction::FirstStep;
use crate::runtime::{call, multishard, Shards};
use crate::shard::intents::Footprint;
use crate::shard::Shard;
use bytes::{Bytes, BytesMut};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub static COMMANDS: &[Command] = &[Command::new(
    "migrate",
    -6,
    "write movablekeys",
    "keyspace write slow dangerous",
    Exec::Server(migrate),
)
.keys(3, 3, 1)
.find_keys(migrate_keys)
.redacts(redacted)
.propagates_itself()];

const WRITE_FAILED: &str = "IOERR error or timeout writing to target instance";

/// Seconds a cached connection lives unused (Redis's `MIGRATE_SOCKET_CACHE_TTL`).
const CACHE_TTL: Duration = Duration::from_secs(10);
/// Cached connections per core at most (Redis's `MIGRATE_SOCKET_CACHE_ITEMS`).
const CACHE_ITEMS: usize = 64;

/// The keys: after KEYS, else the key argument; none when both are given, so that
/// the handler reports that (Redis's `migrateGetKeys`).
fn migrate_keys(argv: &[Bytes]) -> Vec<usize> {
    let mut j = 6;
    while j < argv.len() {
        let a = &argv[j];
        if a.eq_ignore_ascii_case(b"auth") {
            j += 1;
        } else if a.eq_ignore_ascii_case(b"auth2") {
            j += 2;
        } else if a.eq_ignore_ascii_case(b"keys") {
            if !argv[3].is_empty() {
                return Vec::new();
            }
            return (j + 1..argv.len()).collect();
        }
        j += 1;
    }
    vec![3]
}

/// AUTH's password and AUTH2's user name and password (MONITOR, SLOWLOG).
fn redacted(argv: &[Bytes]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut j = 6;
    while j < argv.len() {
        if argv[j].eq_ignore_ascii_case(b"auth") {
            out.push(j + 1);
            j += 1;
        } else if argv[j].eq_ignore_ascii_case(b"auth2") {
            out.extend([j + 1, j + 2]);
            j += 2;
        } else if argv[j].eq_ignore_ascii_case(b"keys") {
            break;
        }
        j += 1;
    }
    out.retain(|&i| i < argv.len());
    out
}

struct Request {
    addr: String,
    keys: Vec<Bytes>,
    db: i64,
    timeout: Duration,
    copy: bool,
    replace: bool,
    auth: Option<(Option<Bytes>, Bytes)>,
}

fn parse(argv: &[Bytes]) -> Result<Request, Reply> {
    let (mut copy, mut replace, mut auth) = (false, false, None);
    let mut keys = vec![argv[3].clone()];
    let mut j = 6;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        let a = &argv[j];
        if a.eq_ignore_ascii_case(b"copy") {
            copy = true;
        } else if a.eq_ignore_ascii_case(b"replace") {
            replace = true;
        } else if a.eq_ignore_ascii_case(b"auth") {
            if more < 1 {
                return Err(errors::syntax());
            }
            auth = Some((None, argv[j + 1].clone()));
            j += 1;
        } else if a.eq_ignore_ascii_case(b"auth2") {
            if more < 2 {
                return Err(errors::syntax());
            }
            auth = Some((Some(argv[j + 1].clone()), argv[j + 2].clone()));
            j += 2;
        } else if a.eq_ignore_ascii_case(b"keys") {
            if !argv[3].is_empty() {
                return Err(Reply::err("ERR When using MIGRATE KEYS option, the key argument must be set to the empty string"));
            }
            keys = argv[j + 1..].to_vec();
            break;
        } else {
            return Err(errors::syntax());
        }
        j += 1;
    }
    let int = |b: &Bytes| {
        std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| Reply::err(errors::NOT_INTEGER))
    };
    let timeout = int(&argv[5])?;
    let db = int(&argv[4])?;
    Ok(Request {
        addr: format!(
            "{}:{}",
            String::from_utf8_lossy(&argv[1]),
            String::from_utf8_lossy(&argv[2])
        ),
        keys,
        db,
        timeout: Duration::from_millis(if timeout <= 0 { 1000 } else { timeout as u64 }),
        copy,
        replace,
        auth,
    })
}

/// A key as dumped on its shard: its position in the request, name, remaining TTL
/// in ms (0: none) and payload.
type Dumped = (usize, Bytes, i64, Vec<u8>);

fn migrate<'a>(c: &'a ClientRef, s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let req = match parse(argv) {
            Ok(r) => r,
            Err(e) => return e,
        };
        let db = c.borrow().db;
        // Claim the keys on their shards; each shard's first step dumps its own.
        let numbered = req.keys.iter().cloned().enumerate();
        let steps: Vec<(usize, Footprint, FirstStep<Vec<Dumped>>)> = s
            .group_by_shard(numbered, |(_, k)| k)
            .into_iter()
            .map(|(sid, ks)| {
                let claim = Footprint::keys(ks.iter().map(|(_, k)| k.clone()).collect());
                let step: FirstStep<Vec<Dumped>> =
                    Box::new(move |sh: &mut Shard| dump_keys(sh, db, ks));
                (sid, claim, step)
            })
            .collect();
        let (tx, dumped) = multishard::steps_in_tx(s, steps, false).await;
        let handle = tx.as_ref().map_or(s, |t| &t.shards);
        let mut dumped: Vec<Dumped> = dumped.into_iter().flatten().collect();
        dumped.sort_by_key(|d| d.0);
        let reply = if dumped.is_empty() {
            Reply::status("NOKEY")
        } else {
            let (reply, acked) = transfer(&req, &dumped).await;
            if !req.copy && !acked.is_empty() {
                delete(handle, db, acked).await;
            }
            reply
        };
        if let Some(tx) = tx {
            tx.finish().await;
        }
        reply
    })
}

/// On the keys' shard: each live key's TTL and payload, in the request's order.
fn dump_keys(s: &mut Shard, db: usize, keys: Vec<(usize, Bytes)>) -> Vec<Dumped> {
    let now = crate::clock::now_ms();
    let compress = s.config.get("rdbcompression") != Some("no");
    let d = &mut s.dbs[db];
    let out = keys
        .into_iter()
        .filter_map(|(pos, k)| {
            let payload = dump::payload(&d.lookup(&k, now)?.value, Options { compress });
            let ttl = match d.expire_of(&k) {
                Some(at) => (at as i64 - now as i64).max(1),
                None => 0,
            };
            Some((pos, k, ttl, payload))
        })
        .collect();
    s.propagate_expired();
    out
}

/// Delete the keys the target acknowledged, on their shards, as DEL (propagated,
/// with its keyspace events and invalidations).
async fn delete(s: &Shards, db: usize, keys: Vec<Bytes>) {
    let del = crate::commands::lookup(b"del").expect("DEL exists");
    let waiting: Vec<_> = s
        .group_by_shard(keys, |k| k)
        .into_iter()
        .map(|(sid, ks)| {
            s.send_or_local(sid, move |sh: &mut Shard| {
                let mut argv = vec![Bytes::from_static(b"DEL")];
                argv.extend(ks);
                call::run(sh, del, db, &argv, false, crate::clock::now_ms());
            })
        })
        .collect();
    for w in waiting {
        w.get().await;
    }
}

/// Send the keys and read the target's answers: the reply, and the keys acknowledged.
async fn transfer(req: &Request, dumped: &[Dumped]) -> (Reply, Vec<Bytes>) {
    let mut may_retry = true;
    loop {
        // A refused connection fails as a write (Redis connects without blocking,
        // and learns of the refusal when it writes); only a timeout (or a name that
        // does not resolve) fails as connecting.
        let mut conn = match Cached::take(&req.addr, req.timeout).await {
            Ok(c) => c,
            Err(Failure::Closed) if may_retry => {
                may_retry = false;
                continue;
            }
            Err(Failure::Closed) => return (Reply::err(WRITE_FAILED), Vec::new()),
            Err(Failure::TimedOut) => {
                return (
                    Reply::err("IOERR error or timeout connecting to the client"),
                    Vec::new(),
                )
            }
        };
        let select = conn.last_db != Some(req.db);
        let out = encode(req, dumped, select);
        if let Err(e) = conn.write(&out, req.timeout).await {
            if may_retry && e == Failure::Closed {
                may_retry = false;
                continue;
            }
            return (Reply::err(WRITE_FAILED), Vec::new());
        }
        let mut preamble = Vec::new();
        let mut socket_error = None;
        for _ in 0..(req.auth.is_some() as usize + select as usize) {
            match conn.line(req.timeout).await {
                Ok(l) => preamble.push(l),
                Err(e) => {
                    socket_error = Some(e);
                    break;
                }
            }
        }
        let mut first_error: Option<String> = preamble
            .iter()
            .find_map(|l| l.strip_prefix('-'))
            .map(str::to_string);
        let preamble_failed = first_error.is_some();
        let mut acked = Vec::new();
        let mut answered = 0;
        if socket_error.is_none() {
            for (_, key, _, _) in dumped {
                match conn.line(req.timeout).await {
                    Ok(l) => {
                        answered += 1;
                        if let Some(e) = l.strip_prefix('-') {
                            first_error.get_or_insert_with(|| e.to_string());
                        } else if !preamble_failed {
                            acked.push(key.clone());
                        }
                    }
                    Err(e) => {
                        socket_error = Some(e);
                        break;
                    }
                }
            }
        }
        // A cached connection the target closed fails on its first reply: once more on
        // a new one, unless it timed out.
        if first_error.is_none()
            && answered == 0
            && socket_error == Some(Failure::Closed)
            && may_retry
        {
            may_retry = false;
            continue;
        }
        if let Some(e) = first_error {
            conn.last_db = None;
            if socket_error.is_none() {
                conn.put_back(&req.addr);
            }
            return (
                Reply::error(format!("ERR Target instance replied with error: {e}")),
                acked,
            );
        }
        if socket_error.is_some() {
            return (
                Reply::err("IOERR error or timeout reading to target instance"),
                acked,
            );
        }
        conn.last_db = Some(req.db);
        conn.put_back(&req.addr);
        return (Reply::ok(), acked);
    }
}

/// `[AUTH] [SELECT db] RESTORE(-ASKING) key ttl payload [REPLACE]...` as RESP.
fn encode(req: &Request, dumped: &[Dumped], select: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut cmd = |args: &[&[u8]]| crate::replication::stream::encode(&mut out, args);
    if let Some((user, pass)) = &req.auth {
        match user {
            Some(u) => cmd(&[b"AUTH", u, pass]),
            None => cmd(&[b"AUTH", pass]),
        }
    }
    if select {
        cmd(&[b"SELECT", req.db.to_string().as_bytes()]);
    }
    let name: &[u8] = if crate::cluster::enabled() {
        b"RESTORE-ASKING"
    } else {
        b"RESTORE"
    };
    for (_, key, ttl, payload) in dumped {
        let ttl = ttl.to_string();
        if req.replace {
            cmd(&[name, key, ttl.as_bytes(), payload, b"REPLACE"]);
        } else {
            cmd(&[name, key, ttl.as_bytes(), payload]);
        }
    }
    out
}

#[derive(Debug, PartialEq)]
enum Failure {
    Closed,
    TimedOut,
}

/// A connection to a target, cached on this core between MIGRATEs.
struct Cached {
    stream: TcpStream,
    buf: BytesMut,
    /// The db it last SELECTed, when known.
    last_db: Option<i64>,
    last_use: Instant,
}

thread_local! {
    static CACHE: RefCell<HashMap<String, Cached>> = RefCell::new(HashMap::new());
    static SWEEPING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Cached connections on every core (INFO's `migrate_cached_sockets`).
static CACHED: AtomicUsize = AtomicUsize::new(0);

pub fn cached_sockets() -> usize {
    CACHED.load(Ordering::Relaxed)
}

impl Cached {
    /// The cached connection to `addr` (taken out of the cache while in use), or a new one.
    async fn take(addr: &str, timeout: Duration) -> Result<Cached, Failure> {
        sweep();
        let cached = CACHE.with(|c| c.borrow_mut().remove(addr));
        if let Some(c) = cached {
            CACHED.fetch_sub(1, Ordering::Relaxed);
            return Ok(c);
        }
        let stream = backend::connect(addr.to_string(), timeout)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset => {
                    Failure::Closed
                }
                _ => Failure::TimedOut,
            })?;
        let _ = stream.set_nodelay(true);
        Ok(Cached {
            stream,
            buf: BytesMut::new(),
            last_db: None,
            last_use: Instant::now(),
        })
    }

    /// Keep it for the next MIGRATE to `addr`; a sweep closes it once unused for 10 s.
    fn put_back(mut self, addr: &str) {
        self.last_use = Instant::now();
        CACHE.with(|c| {
            let mut c = c.borrow_mut();
            if c.len() >= CACHE_ITEMS && !c.contains_key(addr) {
                if let Some(k) = c.keys().next().cloned() {
                    c.remove(&k);
                    CACHED.fetch_sub(1, Ordering::Relaxed);
                }
            }
            if c.insert(addr.to_string(), self).is_none() {
                CACHED.fetch_add(1, Ordering::Relaxed);
            }
        });
        // One sweeper per core, once a second while the cache holds any (as Redis's
        // cron closes them).
        if !SWEEPING.replace(true) {
            backend::spawn(async {
                loop {
                    backend::sleep(Duration::from_secs(1)).await;
                    sweep();
                    if CACHE.with(|c| c.borrow().is_empty()) {
                        break;
                    }
                }
                SWEEPING.set(false);
            })
            .detach();
        }
    }

    async fn write(&mut self, out: &[u8], timeout: Duration) -> Result<(), Failure> {
        let write = async {
            self.stream
                .write_all(out)
                .await
                .map_err(|_| Failure::Closed)
        };
        let late = async {
            backend::sleep(timeout).await;
            Err(Failure::TimedOut)
        };
        futures_lite::future::or(write, late).await
    }

    /// One reply line, without its CRLF.
    async fn line(&mut self, timeout: Duration) -> Result<String, Failure> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line = self.buf.split_to(i + 1);
                return Ok(String::from_utf8_lossy(&line).trim_end().to_string());
            }
            let mut chunk = [0u8; 4096];
            let read = async {
                std::future::poll_fn(|cx| self.stream.poll_read(cx, &mut chunk))
                    .await
                    .map_err(|_| Failure::Closed)
            };
            let late = async {
                backend::sleep(timeout).await;
                Err(Failure::TimedOut)
            };
            match futures_lite::future::or(read, late).await? {
                0 => return Err(Failure::Closed),
                n => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// Close this core's connections unused for longer than the TTL.
fn sweep() {
    CACHE.with(|c| {
        c.borrow_mut().retain(|_, s| {
            let keep = s.last_use.elapsed() <= CACHE_TTL;
            if !keep {
                CACHED.fetch_sub(1, Ordering::Relaxed);
            }
            keep
        })
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<Bytes> {
        a.iter().map(|s| Bytes::from(s.to_string())).collect()
    }

    #[test]
    fn keys_and_redactions_follow_the_options() {
        let a = argv(&["migrate", "h", "1", "k", "0", "5", "COPY"]);
        assert_eq!(migrate_keys(&a), vec![3]);
        let a = argv(&["migrate", "h", "1", "k", "0", "5", "KEYS", "a"]);
        assert!(migrate_keys(&a).is_empty());
        let a = argv(&[
            "migrate", "h", "1", "", "0", "5", "AUTH", "keys", "KEYS", "a", "b",
        ]);
        assert_eq!(migrate_keys(&a), vec![9, 10]);
        assert_eq!(redacted(&a), vec![7]);
        let a = argv(&[
            "migrate", "h", "1", "", "0", "5", "AUTH2", "u", "p", "KEYS", "a",
        ]);
        assert_eq!(migrate_keys(&a), vec![10]);
        assert_eq!(redacted(&a), vec![7, 8]);
    }

    #[test]
    fn parse_errors_are_redis_texts() {
        let e = |a: &[&str]| {
            parse(&argv(a))
                .err()
                .and_then(|r| r.error_text().map(|t| t.to_string()))
        };
        assert_eq!(
            e(&["migrate", "h", "1", "k", "0", "5", "KEYS", "a"]).as_deref(),
            Some("ERR When using MIGRATE KEYS option, the key argument must be set to the empty string")
        );
        assert_eq!(
            e(&["migrate", "h", "1", "k", "0", "5", "AUTH"]).as_deref(),
            Some("ERR syntax error")
        );
        assert_eq!(
            e(&["migrate", "h", "1", "k", "x", "5"]).as_deref(),
            Some("ERR value is not an integer or out of range")
        );
    }
}
