//! Keyspace commands (Redis's `db.c` and the OBJECT command of `object.c`): DEL, UNLINK,
//! EXISTS, TOUCH, TYPE, RENAME, RENAMENX, COPY, MOVE, SWAPDB, DBSIZE, KEYS, SCAN,
//! RANDOMKEY, FLUSHDB, FLUSHALL, OBJECT.
//!
//! The one idea to hold: per-key commands are written as if every key were on this
//! shard (the runtime splits DEL/EXISTS/TOUCH/UNLINK per shard and sums, and runs
//! RENAME/COPY over a gathered copy when their keys live apart), while whole-keyspace
//! commands are `Server` functions that visit every shard. SCAN's cursor is
//! `dict_cursor * nshards + shard`: shards are walked in order, and inside a shard
//! `Dict::scan`'s reverse-binary cursor guarantees that a full iteration returns every
//! key present from start to end, even while the dict grows or shrinks between calls.

use super::{args, errors, Command, Ctx, Exec, LocalBoxFuture, Merge, Touch};
use crate::client::ClientRef;
use crate::notify;
use crate::protocol::Reply;
use crate::runtime::Shards;
use crate::shard::Shard;
use crate::storage::access;
use crate::storage::db::Entry;
use crate::storage::glob::glob_match;
use crate::storage::{Db, StrValue, Value};
use bytes::Bytes;
use rand::Rng;
use std::borrow::Cow;

pub static COMMANDS: &[Command] = &[
    Command::new("del", -2, "write", "keyspace write slow", Exec::Shard(del))
        .keys(1, -1, 1)
        .split(Merge::SumInt)
        .verbatim()
        .touch(Touch::Existing),
    Command::new(
        "unlink",
        -2,
        "write fast",
        "keyspace write fast",
        Exec::Shard(unlink),
    )
    .keys(1, -1, 1)
    .split(Merge::SumInt)
    .verbatim()
    .touch(Touch::Existing),
    Command::new(
        "exists",
        -2,
        "readonly fast",
        "keyspace read fast",
        Exec::Shard(exists),
    )
    .keys(1, -1, 1)
    .split(Merge::SumInt),
    Command::new(
        "touch",
        -2,
        "readonly fast",
        "keyspace read fast",
        Exec::Shard(touch),
    )
    .keys(1, -1, 1)
    .split(Merge::SumInt),
    Command::new(
        "type",
        2,
        "readonly fast",
        "keyspace read fast",
        Exec::Shard(type_cmd),
    )
    .keys(1, 1, 1),
    Command::new(
        "rename",
        3,
        "write",
        "keyspace write slow",
        Exec::Shard(rename),
    )
    .keys(1, 2, 1)
    .verbatim(),
    Command::new(
        "renamenx",
        3,
        "write fast",
        "keyspace write fast",
        Exec::Shard(renamenx),
    )
    .keys(1, 2, 1)
    .verbatim(),
    Command::new(
        "copy",
        -3,
        "write denyoom",
        "keyspace write slow",
        Exec::Shard(copy),
    )
    .keys(1, 2, 1)
    .verbatim()
    .touch(Touch::OnlyInDbOption(2)),
    Command::new(
        "move",
        3,
        "write fast",
        "keyspace write fast",
        Exec::Shard(move_cmd),
    )
    .keys(1, 1, 1)
    .verbatim()
    .touch(Touch::AlsoInDbArg(2)),
    Command::new(
        "swapdb",
        3,
        "write fast",
        "keyspace write fast dangerous",
        Exec::Server(swapdb),
    )
    .verbatim(),
    Command::new(
        "dbsize",
        1,
        "readonly fast",
        "keyspace read fast",
        Exec::Server(dbsize),
    ),
    Command::new(
        "keys",
        2,
        "readonly",
        "keyspace read slow dangerous",
        Exec::Server(keys),
    ),
    Command::new(
        "scan",
        -2,
        "readonly",
        "keyspace read slow",
        Exec::Server(scan),
    ),
    Command::new(
        "randomkey",
        1,
        "readonly",
        "keyspace read slow",
        Exec::Server(randomkey),
    ),
    Command::new(
        "flushdb",
        -1,
        "write",
        "keyspace write slow dangerous",
        Exec::Server(flushdb),
    )
    .verbatim(),
    Command::new(
        "flushall",
        -1,
        "write",
        "keyspace write slow dangerous",
        Exec::Server(flushall),
    )
    .verbatim(),
    Command::new("object", -2, "", "slow", Exec::Container).subcommands(OBJECT_SUBCOMMANDS),
];

static OBJECT_SUBCOMMANDS: &[Command] = &[
    Command::new(
        "object|help",
        2,
        "loading stale",
        "keyspace slow",
        Exec::Shard(object_help),
    ),
    Command::new(
        "object|freq",
        3,
        "readonly",
        "keyspace read slow",
        Exec::Shard(object_freq),
    )
    .keys(2, 2, 1),
    Command::new(
        "object|encoding",
        3,
        "readonly",
        "keyspace read slow",
        Exec::Shard(object_encoding),
    )
    .keys(2, 2, 1),
    Command::new(
        "object|idletime",
        3,
        "readonly",
        "keyspace read slow",
        Exec::Shard(object_idletime),
    )
    .keys(2, 2, 1),
    Command::new(
        "object|refcount",
        3,
        "readonly",
        "keyspace read slow",
        Exec::Shard(object_refcount),
    )
    .keys(2, 2, 1),
];

/// Redis's `OBJ_SHARED_REFCOUNT`: what OBJECT REFCOUNT answers for a shared integer.
const SHARED_REFCOUNT: i64 = i32::MAX as i64;
/// Redis shares the integers 0..OBJ_SHARED_INTEGERS.
const SHARED_INTEGERS: i64 = 10_000;

// ---------------------------------------------------------------------------------
// Per-key commands

/// A read lookup that counts hits / misses but leaves the LRU stamp alone
/// (Redis's `LOOKUP_NOTOUCH`, used by EXISTS, TYPE and OBJECT); a miss raises
/// `keymiss` unless `quiet` (OBJECT's `LOOKUP_NONOTIFY`).
fn lookup_no_touch<'c>(ctx: &'c mut Ctx, key: &[u8], quiet: bool) -> Option<&'c mut Entry> {
    let now = ctx.now_ms;
    let db = ctx.db;
    let shard = &mut *ctx.shard;
    let found = shard.dbs[db].lookup(key, now);
    if found.is_some() {
        shard.stats.keyspace_hits += 1;
    } else {
        shard.stats.keyspace_misses += 1;
        if !quiet {
            notify::raise(notify::KEY_MISS, "keymiss", db, key);
        }
    }
    found
}

/// `DEL key [key ...]`: values freed at once, or lazily under `lazyfree-lazy-user-del`.
fn del(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let lazy = ctx.shard.config.lazyfree.user_del;
    delete(ctx, argv, lazy)
}

/// `UNLINK key [key ...]`: DEL, big values freed on the lazy-free thread.
fn unlink(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    delete(ctx, argv, true)
}

fn delete(ctx: &mut Ctx, argv: &[Bytes], lazy: bool) -> Reply {
    let mut n = 0;
    for key in &argv[1..] {
        if !ctx.exists(key) {
            continue;
        }
        if ctx.db().delete_freeing(key, lazy) {
            ctx.notify(notify::GENERIC, "del", key);
            n += 1;
        }
    }
    Reply::Int(n)
}

/// `EXISTS key [key ...]`: a key named twice counts twice.
fn exists(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let n = argv[1..]
        .iter()
        .filter(|k| lookup_no_touch(ctx, k, false).is_some())
        .count();
    Reply::Int(n as i64)
}

/// `TOUCH key [key ...]`: a read that updates the LRU stamp.
fn touch(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let n = argv[1..]
        .iter()
        .filter(|k| ctx.lookup_read(k).is_some())
        .count();
    Reply::Int(n as i64)
}

/// `TYPE key`: a status reply, `none` for a missing key.
fn type_cmd(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    match lookup_no_touch(ctx, &argv[1], false) {
        Some(e) => Reply::status(e.value.type_name()),
        None => Reply::status("none"),
    }
}

fn rename(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    rename_generic(ctx, &argv[1], &argv[2], false)
}
fn renamenx(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    rename_generic(ctx, &argv[1], &argv[2], true)
}

/// RENAME / RENAMENX, as Redis's `renameGenericCommand`: the value keeps its TTL and
/// its LRU stamp; renaming a key onto itself is a no-op that still needs the key.
fn rename_generic(ctx: &mut Ctx, src: &[u8], dst: &[u8], nx: bool) -> Reply {
    let Some(lru) = ctx.lookup_write(src).map(|e| e.lru) else {
        return Reply::err(errors::NO_SUCH_KEY);
    };
    if src == dst {
        return if nx { Reply::Int(0) } else { Reply::ok() };
    }
    let expire = ctx.db().expire_of(src);
    // One change, as Redis counts a rename: the store, not the overwritten
    // destination's deletion nor the removal.
    if ctx.lookup_write(dst).is_some() {
        if nx {
            return Reply::Int(0);
        }
        ctx.db().uncounted(|d| d.delete(dst));
    }
    let db = ctx.db();
    let Some(entry) = db.uncounted(|d| d.remove(src)) else {
        return Reply::err(errors::NO_SUCH_KEY);
    };
    place(db, dst, entry.value, lru, expire);
    ctx.notify(notify::GENERIC, "rename_from", src);
    ctx.notify(notify::GENERIC, "rename_to", dst);
    if nx {
        Reply::Int(1)
    } else {
        Reply::ok()
    }
}

/// Store `value` under `key` with the given LRU stamp and deadline.
fn place(db: &mut Db, key: &[u8], value: Value, lru: u32, expire: Option<u64>) {
    db.set(key, value, false);
    if let Some(e) = db.keys.get_mut(key) {
        e.lru = lru;
    }
    if let Some(at) = expire {
        db.set_expire(key, at);
    }
}

/// A DB index argument: an `int` in Redis's sense, then checked against `databases`.
fn db_index(b: &[u8], databases: usize) -> Result<usize, Reply> {
    let i = args::int(b)?;
    if i32::try_from(i).is_err() {
        return Err(errors::not_integer());
    }
    usize::try_from(i)
        .ok()
        .filter(|&i| i < databases)
        .ok_or_else(|| Reply::err(errors::DB_INDEX))
}

/// `COPY source destination [DB destination-db] [REPLACE]`.
fn copy(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let databases = ctx.shard.dbs.len();
    let mut dst_db = ctx.db;
    let mut replace = false;
    let mut i = 3;
    while i < argv.len() {
        if args::eq(&argv[i], "replace") {
            replace = true;
        } else if args::eq(&argv[i], "db") && i + 1 < argv.len() {
            dst_db = match db_index(&argv[i + 1], databases) {
                Ok(d) => d,
                Err(e) => return e,
            };
            i += 1;
        } else {
            return errors::syntax();
        }
        i += 1;
    }
    if crate::cluster::enabled() && (ctx.db != 0 || dst_db != 0) {
        return Reply::err("ERR Copying to another database is not allowed in cluster mode");
    }
    let (src, dst) = (&argv[1], &argv[2]);
    if dst_db == ctx.db && src == dst {
        return Reply::err(errors::SAME_OBJECT);
    }
    let Some(value) = ctx.lookup_read(src).map(|e| e.value.clone()) else {
        return Reply::Int(0);
    };
    let expire = ctx.db().expire_of(src);
    let now = ctx.now_ms;
    let target = &mut ctx.shard.dbs[dst_db];
    if target.lookup(dst, now).is_some() {
        if !replace {
            return Reply::Int(0);
        }
        target.delete(dst);
    }
    target.set(dst, value, false);
    if let Some(at) = expire {
        target.set_expire(dst, at);
    }
    notify::raise(notify::GENERIC, "copy_to", dst_db, dst);
    Reply::Int(1)
}

/// `MOVE key db`: 1 if moved, 0 if missing here or already present there.
fn move_cmd(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    if crate::cluster::enabled() {
        return Reply::err("ERR MOVE is not allowed in cluster mode");
    }
    let databases = ctx.shard.dbs.len();
    let dst_db = match db_index(&argv[2], databases) {
        Ok(d) => d,
        Err(e) => return e,
    };
    if dst_db == ctx.db {
        return Reply::err(errors::SAME_OBJECT);
    }
    let key = &argv[1];
    let Some(lru) = ctx.lookup_write(key).map(|e| e.lru) else {
        return Reply::Int(0);
    };
    let expire = ctx.db().expire_of(key);
    let now = ctx.now_ms;
    if ctx.shard.dbs[dst_db].lookup(key, now).is_some() {
        return Reply::Int(0);
    }
    // One change, as Redis counts a move: the store, not the removal.
    let Some(entry) = ctx.db().uncounted(|d| d.remove(key)) else {
        return Reply::Int(0);
    };
    place(&mut ctx.shard.dbs[dst_db], key, entry.value, lru, expire);
    ctx.notify(notify::GENERIC, "move_from", key);
    notify::raise(notify::GENERIC, "move_to", dst_db, key);
    Reply::Int(1)
}

// ---------------------------------------------------------------------------------
// OBJECT

const OBJECT_HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
];

fn object_help(_ctx: &mut Ctx, _argv: &[Bytes]) -> Reply {
    Reply::Array(
        OBJECT_HELP
            .iter()
            .map(|l| Reply::Status(Cow::Borrowed(*l)))
            .collect(),
    )
}

fn object_encoding(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    match lookup_no_touch(ctx, &argv[2], true) {
        Some(e) => Reply::bulk_str(e.value.encoding()),
        None => Reply::Null,
    }
}

fn object_idletime(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let Some(stamp) = lookup_no_touch(ctx, &argv[2], true).map(|e| e.lru) else {
        return Reply::Null;
    };
    if access::lfu() {
        return Reply::err(errors::IDLETIME_UNDER_LFU);
    }
    Reply::Int(access::idle_seconds(stamp) as i64)
}

fn object_freq(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let Some(stamp) = lookup_no_touch(ctx, &argv[2], true).map(|e| e.lru) else {
        return Reply::Null;
    };
    if !access::lfu() {
        return Reply::err(errors::FREQ_WITHOUT_LFU);
    }
    Reply::Int(access::decayed(stamp) as i64)
}

fn object_refcount(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let cfg = ctx.shard.config.clone();
    match lookup_no_touch(ctx, &argv[2], true) {
        Some(e) => Reply::Int(refcount(&e.value, &cfg)),
        None => Reply::Null,
    }
}

/// The reference count Redis shows for `value` (OBJECT REFCOUNT, DEBUG OBJECT): its
/// shared count for a small integer, which Redis shares unless an LRU or LFU
/// `maxmemory-policy` is in force; 1 otherwise.
pub fn refcount(value: &Value, cfg: &crate::config::Config) -> i64 {
    let sharing = cfg.maxmemory == 0
        || !(cfg.maxmemory_policy.contains("lru") || cfg.maxmemory_policy.contains("lfu"));
    match value {
        Value::Str(StrValue::Int(i)) if sharing && (0..SHARED_INTEGERS).contains(i) => {
            SHARED_REFCOUNT
        }
        _ => 1,
    }
}

// ---------------------------------------------------------------------------------
// Whole-keyspace commands

fn client_db(c: &ClientRef) -> usize {
    c.borrow().db
}

/// `DBSIZE`: keys in the client's db on every shard (expired-not-yet-reclaimed included).
fn dbsize<'a>(c: &'a ClientRef, s: &'a Shards, _argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let db = client_db(c);
        let counts = s.all(move |sh: &mut Shard| sh.dbs[db].len()).await;
        Reply::Int(counts.into_iter().sum::<usize>() as i64)
    })
}

/// `FLUSHDB [ASYNC|SYNC]` / `FLUSHALL [ASYNC|SYNC]`: whether to free on the lazy-free
/// thread (no mode: `lazyfree-lazy-user-flush`); `None` for a syntax error.
fn flush_async(s: &Shards, argv: &[Bytes]) -> Option<bool> {
    match argv.len() {
        1 => Some(s.local.borrow().config.lazyfree_user_flush),
        2 if args::eq(&argv[1], "sync") => Some(false),
        2 if args::eq(&argv[1], "async") => Some(true),
        _ => None,
    }
}

/// Empty `db`, freeing its tables on the lazy-free thread when `lazy`.
pub fn flush_db(db: &mut Db, lazy: bool) {
    match db.take() {
        Some((keys, expires)) if lazy => crate::lazyfree::free_tables(keys, expires),
        tables => drop(tables),
    }
}

/// Empty database `db` of `sh` (every one for `None`), freeing on the lazy-free thread
/// when `lazy`. The clients blocked on its keys look at them again: a reader of a
/// stream's group learns that the stream is gone.
fn flush_shard(sh: &mut Shard, db: Option<usize>, lazy: bool) {
    let flushed = |i: usize| db.is_none_or(|d| d == i);
    for (i, d) in sh.dbs.iter_mut().enumerate() {
        if flushed(i) {
            flush_db(d, lazy);
        }
    }
    crate::runtime::blocking::look_again(sh, flushed);
}

fn flushdb<'a>(c: &'a ClientRef, s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let Some(lazy) = flush_async(s, argv) else {
            return errors::syntax();
        };
        let db = client_db(c);
        s.all(move |sh: &mut Shard| flush_shard(sh, Some(db), lazy))
            .await;
        crate::runtime::tracking::flushed();
        Reply::ok()
    })
}

fn flushall<'a>(c: &'a ClientRef, s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let Some(lazy) = flush_async(s, argv) else {
            return errors::syntax();
        };
        s.all(move |sh: &mut Shard| {
            crate::persistence::save::stop_for_flushall(sh);
            flush_shard(sh, None, lazy)
        })
        .await;
        crate::runtime::tracking::flushed();
        crate::persistence::save::after_flushall(c, s);
        Reply::ok()
    })
}

/// `SWAPDB index1 index2`: every shard swaps its two databases.
fn swapdb<'a>(_c: &'a ClientRef, s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        // Not in cluster mode: there is only db 0.
        if crate::cluster::enabled() {
            return Reply::err("ERR SWAPDB is not allowed in cluster mode");
        }
        let parse = |b: &[u8], msg: &'static str| {
            args::int(b)
                .ok()
                .and_then(|i| i32::try_from(i).ok())
                .ok_or_else(|| Reply::err(msg))
        };
        let a = match parse(&argv[1], errors::INVALID_FIRST_DB) {
            Ok(a) => a,
            Err(e) => return e,
        };
        let b = match parse(&argv[2], errors::INVALID_SECOND_DB) {
            Ok(b) => b,
            Err(e) => return e,
        };
        let databases = s.local.borrow().dbs.len();
        let (Ok(a), Ok(b)) = (usize::try_from(a), usize::try_from(b)) else {
            return Reply::err(errors::DB_INDEX);
        };
        if a >= databases || b >= databases {
            return Reply::err(errors::DB_INDEX);
        }
        if a == b {
            // Redis answers at once and touches nothing (no WATCH is invalidated).
            return Reply::ok();
        }
        s.all(move |sh: &mut Shard| {
            sh.dbs.swap(a, b);
            (sh.dbs[a].id, sh.dbs[b].id) = (a, b);
            // Clients blocked on keys of either database may now find them.
            crate::runtime::blocking::look_again(sh, |db| db == a || db == b);
            // WATCH: a watched key is touched if it is live in either database. One
            // that is missing or expired (not yet deleted) on both sides did not change
            // for its watchers, as Redis's touchAllWatchedKeysInDb judges.
            let Shard { dbs, watches, .. } = sh;
            let dbs = &*dbs;
            let now = crate::clock::now_ms();
            let present = |k: &[u8]| dbs[a].alive(k, now) || dbs[b].alive(k, now);
            watches.touch_db_where(a, present);
            watches.touch_db_where(b, present);
        })
        .await;
        Reply::ok()
    })
}

/// `KEYS pattern`: every live key of the client's db that matches, from all shards.
/// Expired keys are skipped but not deleted, as in Redis.
fn keys<'a>(c: &'a ClientRef, s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let db = client_db(c);
        let pattern = argv[1].clone();
        let now = crate::clock::now_ms();
        let parts = s
            .all(move |sh: &mut Shard| {
                let all = pattern[..] == b"*"[..];
                let d = &sh.dbs[db];
                d.keys
                    .iter()
                    .filter(|(k, _)| all || glob_match(&pattern, k, false))
                    .filter(|(k, _)| d.expire_of(k).is_none_or(|at| at > now))
                    .map(|(k, _)| Reply::Bulk(Bytes::copy_from_slice(k)))
                    .collect::<Vec<Reply>>()
            })
            .await;
        Reply::Array(parts.into_iter().flatten().collect())
    })
}

/// Parse a SCAN cursor as Redis's `parseScanCursorOrReply` (C `strtoul`: optional sign,
/// a negative number wraps; no leading space, no trailing junk, no overflow).
fn parse_cursor(b: &[u8]) -> Option<u64> {
    if b.first().is_some_and(|c| c.is_ascii_whitespace()) {
        return None;
    }
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() {
        // strtoul("") parses nothing and leaves the end at the (empty) end: cursor 0.
        // A lone sign leaves the end pointer on the sign: invalid.
        return if b.is_empty() { Some(0) } else { None };
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

/// SCAN's options.
struct ScanOpts {
    count: usize,
    pattern: Option<Bytes>,
    type_name: Option<Bytes>,
}

fn parse_scan_opts(argv: &[Bytes]) -> Result<ScanOpts, Reply> {
    let mut o = ScanOpts {
        count: 10,
        pattern: None,
        type_name: None,
    };
    let mut i = 2;
    while i < argv.len() {
        let more = i + 1 < argv.len();
        if args::eq(&argv[i], "count") && more {
            let n = args::int(&argv[i + 1])?;
            if n < 1 {
                return Err(errors::syntax());
            }
            o.count = usize::try_from(n).unwrap_or(usize::MAX);
        } else if args::eq(&argv[i], "match") && more {
            let p = argv[i + 1].clone();
            o.pattern = if p[..] == b"*"[..] { None } else { Some(p) };
        } else if args::eq(&argv[i], "type") && more {
            o.type_name = Some(argv[i + 1].clone());
        } else {
            return Err(errors::syntax());
        }
        i += 2;
    }
    Ok(o)
}

/// One SCAN step on one shard's db, as Redis's `scanGenericCommand`: visit buckets
/// until `count` keys were gathered (or 10×count buckets were visited, or the dict is
/// done), then drop keys that do not match, are of another type, or have expired
/// (expired ones are deleted on the way). Returns the next dict cursor and the keys.
fn scan_shard(
    sh: &mut Shard,
    db: usize,
    mut cursor: u64,
    opts: &ScanOpts,
    now_ms: u64,
) -> (u64, Vec<Bytes>) {
    let d = &mut sh.dbs[db];
    let mut found: Vec<Bytes> = Vec::new();
    let mut budget = opts.count.saturating_mul(10);
    loop {
        cursor = d
            .keys
            .scan(cursor, |k, _| found.push(Bytes::copy_from_slice(k)));
        if cursor == 0 || budget == 0 || found.len() >= opts.count {
            break;
        }
        budget -= 1;
    }
    found.retain(|k| {
        if let Some(p) = &opts.pattern {
            if !glob_match(p, k, false) {
                return false;
            }
        }
        if let Some(t) = &opts.type_name {
            match d.keys.get(&k[..]) {
                Some(e) if e.value.type_name().as_bytes().eq_ignore_ascii_case(t) => {}
                _ => return false,
            }
        }
        !d.expire_if_needed(k, now_ms)
    });
    (cursor, found)
}

/// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]` over all shards: the cursor
/// is `dict_cursor * nshards + shard`. A call that finishes a shard moves on to the
/// next one while it still has room for more keys.
fn scan<'a>(c: &'a ClientRef, s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let Some(cursor) = parse_cursor(&argv[1]) else {
            return Reply::err(errors::INVALID_CURSOR);
        };
        let opts = match parse_scan_opts(argv) {
            Ok(o) => std::sync::Arc::new(o),
            Err(e) => return e,
        };
        let db = client_db(c);
        let n = s.count() as u64;
        let mut shard = (cursor % n) as usize;
        let mut dict_cursor = cursor / n;
        let mut keys: Vec<Reply> = Vec::new();
        let next = loop {
            let o = opts.clone();
            let now = crate::clock::now_ms();
            let (next, got) = s
                .on(shard, move |sh: &mut Shard| {
                    scan_shard(sh, db, dict_cursor, &o, now)
                })
                .await;
            keys.extend(got.into_iter().map(Reply::Bulk));
            if next != 0 {
                break next.saturating_mul(n).saturating_add(shard as u64);
            }
            shard += 1;
            dict_cursor = 0;
            if shard as u64 >= n {
                break 0;
            }
            if keys.len() >= opts.count {
                break shard as u64;
            }
        };
        Reply::Array(vec![
            Reply::Bulk(Bytes::copy_from_slice(
                itoa::Buffer::new().format(next).as_bytes(),
            )),
            Reply::Array(keys),
        ])
    })
}

/// A random live key of `db` on this shard, deleting expired ones met on the way
/// (as Redis's `dbRandomKey`); `None` when the db is (or becomes) empty or only
/// expired keys were met within the attempt budget.
fn random_key(sh: &mut Shard, db: usize, now_ms: u64) -> Option<Bytes> {
    let Shard { dbs, rng, .. } = sh;
    let d = &mut dbs[db];
    for _ in 0..1000 {
        let key = d
            .keys
            .random_entry(rng)
            .map(|(k, _)| Bytes::copy_from_slice(k))?;
        if !d.expire_if_needed(&key, now_ms) {
            return Some(key);
        }
    }
    None
}

/// `RANDOMKEY`: a shard chosen with probability proportional to its key count, then a
/// random key there.
fn randomkey<'a>(c: &'a ClientRef, s: &'a Shards, _argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let db = client_db(c);
        for _ in 0..16 {
            let counts = s.all(move |sh: &mut Shard| sh.dbs[db].len()).await;
            let total: usize = counts.iter().sum();
            if total == 0 {
                return Reply::Null;
            }
            let mut pick = rand::thread_rng().gen_range(0..total);
            let mut shard = 0;
            for (i, &n) in counts.iter().enumerate() {
                if pick < n {
                    shard = i;
                    break;
                }
                pick -= n;
            }
            let now = crate::clock::now_ms();
            if let Some(k) = s
                .on(shard, move |sh: &mut Shard| random_key(sh, db, now))
                .await
            {
                return Reply::Bulk(k);
            }
        }
        Reply::Null
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ConfigHandle};
    use std::collections::HashSet;

    use crate::commands::testing::shard;
    fn argv(s: &str) -> Vec<Bytes> {
        s.split(' ')
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }
    fn run(sh: &mut Shard, f: fn(&mut Ctx, &[Bytes]) -> Reply, cmd: &str) -> Reply {
        let mut ctx = Ctx::new(sh, 0);
        f(&mut ctx, &argv(cmd))
    }
    fn put(sh: &mut Shard, db: usize, key: &str, val: &str) {
        sh.dbs[db].set(
            key.as_bytes(),
            Value::Str(StrValue::from_set(val.as_bytes())),
            false,
        );
    }
    fn get(sh: &mut Shard, db: usize, key: &str) -> Option<Vec<u8>> {
        sh.dbs[db]
            .lookup(key.as_bytes(), crate::clock::now_ms())
            .map(|e| match &e.value {
                Value::Str(s) => s.as_bytes().into_owned(),
                other => panic!("not a string: {other:?}"),
            })
    }
    fn later() -> u64 {
        crate::clock::now_ms() + 100_000
    }

    #[test]
    fn del_exists_touch_type() {
        let mut sh = shard();
        put(&mut sh, 0, "a", "1");
        put(&mut sh, 0, "b", "x");
        assert_eq!(run(&mut sh, exists, "exists a b c a"), Reply::Int(3));
        assert_eq!(run(&mut sh, touch, "touch a c"), Reply::Int(1));
        assert_eq!(run(&mut sh, type_cmd, "type a"), Reply::status("string"));
        assert_eq!(run(&mut sh, type_cmd, "type c"), Reply::status("none"));
        assert_eq!(run(&mut sh, del, "del a a c"), Reply::Int(1));
        assert_eq!(run(&mut sh, del, "unlink b"), Reply::Int(1));
        assert!(sh.dbs[0].is_empty());
        // An expired key is neither counted nor deleted twice.
        put(&mut sh, 0, "e", "1");
        sh.dbs[0].set_expire(b"e", 1);
        assert_eq!(run(&mut sh, exists, "exists e"), Reply::Int(0));
        put(&mut sh, 0, "e", "1");
        sh.dbs[0].set_expire(b"e", 1);
        assert_eq!(run(&mut sh, del, "del e"), Reply::Int(0));
        assert!(sh.dbs[0].is_empty());
    }

    #[test]
    fn rename_carries_ttl() {
        let mut sh = shard();
        put(&mut sh, 0, "a", "va");
        let at = later();
        sh.dbs[0].set_expire(b"a", at);
        put(&mut sh, 0, "b", "vb");
        assert_eq!(run(&mut sh, rename, "rename a b"), Reply::ok());
        assert_eq!(get(&mut sh, 0, "b").as_deref(), Some(&b"va"[..]));
        assert_eq!(get(&mut sh, 0, "a"), None);
        assert_eq!(sh.dbs[0].expire_of(b"b"), Some(at));
        assert_eq!(sh.dbs[0].expire_of(b"a"), None);
        // Renaming a key without TTL onto one with a TTL drops the old TTL.
        put(&mut sh, 0, "c", "vc");
        assert_eq!(run(&mut sh, rename, "rename c b"), Reply::ok());
        assert_eq!(sh.dbs[0].expire_of(b"b"), None);
        // Missing source; same key.
        assert_eq!(
            run(&mut sh, rename, "rename nokey x"),
            Reply::err(errors::NO_SUCH_KEY)
        );
        assert_eq!(
            run(&mut sh, rename, "rename nokey nokey"),
            Reply::err(errors::NO_SUCH_KEY)
        );
        assert_eq!(run(&mut sh, rename, "rename b b"), Reply::ok());
        assert_eq!(run(&mut sh, renamenx, "renamenx b b"), Reply::Int(0));
        // RENAMENX.
        put(&mut sh, 0, "d", "vd");
        assert_eq!(run(&mut sh, renamenx, "renamenx d b"), Reply::Int(0));
        assert_eq!(run(&mut sh, renamenx, "renamenx d e"), Reply::Int(1));
        assert_eq!(get(&mut sh, 0, "e").as_deref(), Some(&b"vd"[..]));
    }

    #[test]
    fn copy_semantics() {
        let mut sh = shard();
        put(&mut sh, 0, "a", "12");
        let at = later();
        sh.dbs[0].set_expire(b"a", at);
        assert_eq!(run(&mut sh, copy, "copy a b"), Reply::Int(1));
        assert_eq!(get(&mut sh, 0, "b").as_deref(), Some(&b"12"[..]));
        assert_eq!(sh.dbs[0].expire_of(b"b"), Some(at));
        assert_eq!(sh.dbs[0].expire_of(b"a"), Some(at));
        // Existing destination without / with REPLACE.
        put(&mut sh, 0, "c", "old");
        assert_eq!(run(&mut sh, copy, "copy a c"), Reply::Int(0));
        assert_eq!(run(&mut sh, copy, "copy a c REPLACE"), Reply::Int(1));
        assert_eq!(get(&mut sh, 0, "c").as_deref(), Some(&b"12"[..]));
        // Another db.
        assert_eq!(run(&mut sh, copy, "copy a a db 3"), Reply::Int(1));
        assert_eq!(get(&mut sh, 3, "a").as_deref(), Some(&b"12"[..]));
        assert_eq!(sh.dbs[3].expire_of(b"a"), Some(at));
        // Errors, in Redis's order.
        assert_eq!(
            run(&mut sh, copy, "copy a a"),
            Reply::err(errors::SAME_OBJECT)
        );
        assert_eq!(
            run(&mut sh, copy, "copy a a db 0"),
            Reply::err(errors::SAME_OBJECT)
        );
        assert_eq!(run(&mut sh, copy, "copy a b foo"), errors::syntax());
        assert_eq!(run(&mut sh, copy, "copy a b db"), errors::syntax());
        assert_eq!(run(&mut sh, copy, "copy a b db x"), errors::not_integer());
        assert_eq!(
            run(&mut sh, copy, "copy a b db 16"),
            Reply::err(errors::DB_INDEX)
        );
        assert_eq!(run(&mut sh, copy, "copy nokey b"), Reply::Int(0));
        // The copy keeps the encoding.
        assert_eq!(
            sh.dbs[0].keys.get(&b"b"[..]).map(|e| e.value.encoding()),
            Some("int")
        );
    }

    #[test]
    fn move_semantics() {
        let mut sh = shard();
        put(&mut sh, 0, "a", "va");
        let at = later();
        sh.dbs[0].set_expire(b"a", at);
        assert_eq!(run(&mut sh, move_cmd, "move a 1"), Reply::Int(1));
        assert_eq!(get(&mut sh, 0, "a"), None);
        assert_eq!(get(&mut sh, 1, "a").as_deref(), Some(&b"va"[..]));
        assert_eq!(sh.dbs[1].expire_of(b"a"), Some(at));
        assert_eq!(sh.dbs[0].expire_of(b"a"), None);
        // Present in the target: not moved.
        put(&mut sh, 0, "a", "other");
        assert_eq!(run(&mut sh, move_cmd, "move a 1"), Reply::Int(0));
        assert_eq!(get(&mut sh, 0, "a").as_deref(), Some(&b"other"[..]));
        assert_eq!(run(&mut sh, move_cmd, "move nokey 1"), Reply::Int(0));
        assert_eq!(
            run(&mut sh, move_cmd, "move a 0"),
            Reply::err(errors::SAME_OBJECT)
        );
        assert_eq!(
            run(&mut sh, move_cmd, "move a 16"),
            Reply::err(errors::DB_INDEX)
        );
        assert_eq!(
            run(&mut sh, move_cmd, "move a -1"),
            Reply::err(errors::DB_INDEX)
        );
        assert_eq!(run(&mut sh, move_cmd, "move a x"), errors::not_integer());
        assert_eq!(
            run(&mut sh, move_cmd, "move a 99999999999"),
            errors::not_integer()
        );
    }

    #[test]
    fn object_subcommands() {
        let mut sh = shard();
        let enc =
            |sh: &mut Shard, k: &str| run(sh, object_encoding, &format!("object encoding {k}"));
        put(&mut sh, 0, "i", "123");
        put(&mut sh, 0, "e", "hello");
        put(&mut sh, 0, "r", &"x".repeat(45));
        put(&mut sh, 0, "big", "12345");
        assert_eq!(enc(&mut sh, "i"), Reply::bulk_str("int"));
        assert_eq!(enc(&mut sh, "e"), Reply::bulk_str("embstr"));
        assert_eq!(enc(&mut sh, "r"), Reply::bulk_str("raw"));
        assert_eq!(enc(&mut sh, "nokey"), Reply::Null);
        // An in-place modification makes it raw; RENAME / COPY keep the encoding.
        if let Some(e) = sh.dbs[0].keys.get_mut(&b"e"[..]) {
            if let Value::Str(s) = &mut e.value {
                s.make_raw().push(b'!');
            }
        }
        assert_eq!(enc(&mut sh, "e"), Reply::bulk_str("raw"));
        run(&mut sh, rename, "rename i i2");
        assert_eq!(enc(&mut sh, "i2"), Reply::bulk_str("int"));
        run(&mut sh, copy, "copy e e2");
        assert_eq!(enc(&mut sh, "e2"), Reply::bulk_str("raw"));
        // REFCOUNT: shared small integers.
        assert_eq!(
            run(&mut sh, object_refcount, "object refcount i2"),
            Reply::Int(2147483647)
        );
        assert_eq!(
            run(&mut sh, object_refcount, "object refcount big"),
            Reply::Int(1)
        );
        assert_eq!(
            run(&mut sh, object_refcount, "object refcount e"),
            Reply::Int(1)
        );
        assert_eq!(
            run(&mut sh, object_refcount, "object refcount no"),
            Reply::Null
        );
        // FREQ needs an LFU policy; IDLETIME works without one.
        assert!(run(&mut sh, object_freq, "object freq e").is_error());
        assert_eq!(run(&mut sh, object_freq, "object freq no"), Reply::Null);
        assert_eq!(
            run(&mut sh, object_idletime, "object idletime e"),
            Reply::Int(0)
        );
        match run(&mut sh, object_help, "object help") {
            Reply::Array(lines) => assert_eq!(lines.len(), 15),
            r => panic!("unexpected {r:?}"),
        }
    }

    #[test]
    fn object_under_eviction_policies() {
        let lfu = Config {
            maxmemory: 1 << 20,
            maxmemory_policy: "allkeys-lfu".into(),
            ..Config::default()
        };
        let mut sh = Shard::new(0, 1, ConfigHandle::new(lfu));
        put(&mut sh, 0, "n", "5");
        // (OBJECT FREQ and IDLETIME follow the process-wide policy, which tests
        // running alongside set too: tests/eviction.rs checks them against Redis.)
        // LRU/LFU policies with a memory limit turn integer sharing off.
        assert_eq!(
            run(&mut sh, object_refcount, "object refcount n"),
            Reply::Int(1)
        );
    }

    #[test]
    fn cursor_parsing() {
        assert_eq!(parse_cursor(b"0"), Some(0));
        assert_eq!(parse_cursor(b"00"), Some(0));
        assert_eq!(parse_cursor(b"+7"), Some(7));
        assert_eq!(parse_cursor(b"-1"), Some(u64::MAX));
        assert_eq!(parse_cursor(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_cursor(b"18446744073709551616"), None);
        assert_eq!(parse_cursor(b"a"), None);
        assert_eq!(parse_cursor(b" 1"), None);
        assert_eq!(parse_cursor(b"1x"), None);
        assert_eq!(parse_cursor(b"-"), None);
        assert_eq!(parse_cursor(b""), Some(0));
    }

    /// A one-shard `Shards` handle, a client, and a way to run Server commands.
    struct Harness {
        shards: Shards,
        client: ClientRef,
    }
    impl Harness {
        fn new() -> Harness {
            Harness {
                shards: crate::commands::testing::one_shard(),
                client: crate::commands::testing::client(1),
            }
        }
        fn server(&self, f: crate::commands::ServerFn, cmd: &str) -> Reply {
            let a = argv(cmd);
            futures_lite::future::block_on(f(&self.client, &self.shards, &a))
        }
        fn put(&self, key: &str) {
            put(&mut self.shards.local.borrow_mut(), 0, key, "v");
        }
    }

    fn scan_reply(r: Reply) -> (u64, Vec<Vec<u8>>) {
        let Reply::Array(mut parts) = r else {
            panic!("not an array: {r:?}")
        };
        let Reply::Array(keys) = parts.pop().expect("keys") else {
            panic!("no keys")
        };
        let Reply::Bulk(c) = parts.pop().expect("cursor") else {
            panic!("no cursor")
        };
        let c = std::str::from_utf8(&c).expect("utf8").parse().expect("num");
        let keys = keys
            .into_iter()
            .map(|k| match k {
                Reply::Bulk(b) => b.to_vec(),
                r => panic!("not bulk: {r:?}"),
            })
            .collect();
        (c, keys)
    }

    #[test]
    fn scan_while_growing_returns_every_key() {
        let h = Harness::new();
        for i in 0..100 {
            h.put(&format!("orig:{i}"));
        }
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        let mut cursor = 0u64;
        let mut added = 0;
        let mut calls = 0;
        let mut rehashing_seen = false;
        loop {
            let (next, keys) = scan_reply(h.server(scan, &format!("scan {cursor} count 5")));
            seen.extend(keys);
            // Grow the dict between calls, forcing several rehashes.
            for _ in 0..40 {
                h.put(&format!("new:{added}"));
                added += 1;
            }
            rehashing_seen |= h.shards.local.borrow().dbs[0].keys.is_rehashing();
            calls += 1;
            cursor = next;
            if cursor == 0 {
                break;
            }
            assert!(calls < 10_000, "scan does not terminate");
        }
        for i in 0..100 {
            assert!(
                seen.contains(format!("orig:{i}").as_bytes()),
                "missed orig:{i}"
            );
        }
        assert!(rehashing_seen, "the dict never rehashed during the scan");
    }

    #[test]
    fn scan_options_and_expiry() {
        let h = Harness::new();
        for i in 0..50 {
            h.put(&format!("a:{i}"));
            h.put(&format!("b:{i}"));
        }
        h.shards.local.borrow_mut().dbs[0].set_expire(b"a:0", 1);
        let mut all = HashSet::new();
        let mut cursor = 0;
        loop {
            let (next, keys) =
                scan_reply(h.server(scan, &format!("scan {cursor} match a:* type STRING")));
            all.extend(keys);
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(all.len(), 49);
        assert!(!all.contains(&b"a:0"[..]));
        let (_, none) = scan_reply(h.server(scan, "scan 0 count 1000 type list"));
        assert!(none.is_empty());
        assert_eq!(h.server(scan, "scan x"), Reply::err(errors::INVALID_CURSOR));
        assert_eq!(h.server(scan, "scan 0 count 0"), errors::syntax());
        assert_eq!(h.server(scan, "scan 0 count a"), errors::not_integer());
        assert_eq!(h.server(scan, "scan 0 match"), errors::syntax());
        assert_eq!(h.server(scan, "scan 0 foo bar"), errors::syntax());
    }

    #[test]
    fn keyspace_wide_commands() {
        let h = Harness::new();
        for k in ["hello", "hallo", "hxllo", "other"] {
            h.put(k);
        }
        h.put("gone");
        h.shards.local.borrow_mut().dbs[0].set_expire(b"gone", 1);
        // DBSIZE counts the expired-not-yet-reclaimed key, as Redis does.
        assert_eq!(h.server(dbsize, "dbsize"), Reply::Int(5));
        let Reply::Array(ks) = h.server(keys, "keys h?llo") else {
            panic!()
        };
        assert_eq!(ks.len(), 3);
        let Reply::Array(ks) = h.server(keys, "keys *") else {
            panic!()
        };
        assert_eq!(ks.len(), 4);
        assert!(matches!(h.server(randomkey, "randomkey"), Reply::Bulk(_)));
        // SWAPDB.
        assert_eq!(h.server(swapdb, "swapdb 0 1"), Reply::ok());
        assert_eq!(h.server(dbsize, "dbsize"), Reply::Int(0));
        assert_eq!(h.server(randomkey, "randomkey"), Reply::Null);
        assert_eq!(h.server(swapdb, "swapdb 1 0"), Reply::ok());
        assert_eq!(
            h.server(swapdb, "swapdb a 0"),
            Reply::err(errors::INVALID_FIRST_DB)
        );
        assert_eq!(
            h.server(swapdb, "swapdb 0 a"),
            Reply::err(errors::INVALID_SECOND_DB)
        );
        assert_eq!(
            h.server(swapdb, "swapdb 0 16"),
            Reply::err(errors::DB_INDEX)
        );
        assert_eq!(
            h.server(swapdb, "swapdb -1 0"),
            Reply::err(errors::DB_INDEX)
        );
        // FLUSHDB / FLUSHALL, and their option syntax.
        assert_eq!(h.server(flushdb, "flushdb foo"), errors::syntax());
        assert_eq!(h.server(flushall, "flushall async sync"), errors::syntax());
        put(&mut h.shards.local.borrow_mut(), 2, "x", "1");
        assert_eq!(h.server(flushdb, "flushdb ASYNC"), Reply::ok());
        assert_eq!(h.server(dbsize, "dbsize"), Reply::Int(0));
        assert!(h.shards.local.borrow().dbs[0].expires.is_empty());
        assert_eq!(h.shards.local.borrow().dbs[2].len(), 1);
        assert_eq!(h.server(flushall, "flushall sync"), Reply::ok());
        assert_eq!(h.shards.local.borrow().total_keys(), 0);
    }
}
