//! Dispatch: from a parsed request to a reply, wherever the keys live.
//!
//! For each request of one socket read, in order:
//! - resolve it in the command table (unknown command, subcommand, arity, auth errors);
//! - `Conn` commands run at once on the client's state;
//! - `Shard` commands whose keys all live on one shard run inline if it is this core's
//!   shard, else are appended to that shard's batch (one hop per shard per read);
//! - commands that reach several shards (`Server` commands, and `Shard` commands whose
//!   keys span shards) first flush the pending batches, so they observe every earlier
//!   command of the same pipeline, then run: split per shard and merged (`Merge`), or
//!   run once over a gathered copy of their keys whose changes are written back.
//!
//! Replies are slotted by request index, so they leave in request order.
//!
//! Gathered execution gives the right result but is not isolated from concurrent
//! writers on other cores; the transaction scheduler (issue 3) replaces that step.

use crate::client::{ClientRef, ReplyMode};
use crate::commands::{self, errors, Command, Ctx, Exec, Merge};
use crate::persistence::aof;
use crate::protocol::Reply;
use crate::runtime::transaction::{self, FirstStep, Tx};
use crate::runtime::Shards;
use crate::shard::slowlog;
pub use crate::shard::slowlog::Caller;
use crate::shard::Shard;
use crate::storage::db::Entry;
use bytes::Bytes;
use std::sync::atomic::Ordering;
use std::time::Instant;

const LOADING: &str = "LOADING Redis is loading the dataset in memory";

/// Find the table entry for `argv`, or the error Redis gives.
pub fn resolve(argv: &[Bytes]) -> Result<&'static Command, (Reply, Option<&'static str>)> {
    let Some(cmd) = commands::lookup(&argv[0]) else {
        return Err((errors::unknown_command(argv), None));
    };
    if !cmd.arity_ok(argv.len()) {
        return Err((errors::wrong_arity(cmd.name), Some(cmd.name)));
    }
    if !cmd.subcommands.is_empty() && argv.len() >= 2 {
        let Some(sub) = commands::lookup_sub(cmd, &argv[1]) else {
            return Err((
                errors::unknown_subcommand(cmd.name, &argv[1]),
                Some(cmd.name),
            ));
        };
        if !sub.arity_ok(argv.len()) {
            return Err((errors::wrong_arity(sub.name), Some(sub.name)));
        }
        return Ok(sub);
    }
    Ok(cmd)
}

/// Run a `Shard` command on `shard`, recording stats and the slow log (a blocking
/// command that found nothing is logged when its wait ends, see [`record`]).
pub fn execute(
    shard: &mut Shard,
    cmd: &'static Command,
    db: usize,
    argv: &[Bytes],
    no_touch: bool,
    caller: &Caller,
    now_ms: u64,
) -> Reply {
    let start = Instant::now();
    let reply = run_handler(shard, cmd, db, argv, no_touch, now_ms);
    record(shard, cmd, argv, start, &reply, caller);
    crate::runtime::blocking::after_command(shard);
    reply
}

/// [`execute`] for a command EXEC runs: its stats are recorded, and its duration is
/// returned for EXEC to log it in the slow log in queue order (a blocking command
/// there never blocks, so it is logged whatever it found).
pub fn execute_queued(
    shard: &mut Shard,
    cmd: &'static Command,
    db: usize,
    argv: &[Bytes],
    no_touch: bool,
    now_ms: u64,
) -> (Reply, u64) {
    let start = Instant::now();
    let reply = run_handler(shard, cmd, db, argv, no_touch, now_ms);
    let us = record_stats(shard, cmd, start, &reply);
    crate::runtime::blocking::after_command(shard);
    (reply, us)
}

/// Run a `Shard` command's handler without recording it (a part of a split command:
/// the whole command is recorded once by its caller).
pub(crate) fn run_handler(
    shard: &mut Shard,
    cmd: &'static Command,
    db: usize,
    argv: &[Bytes],
    no_touch: bool,
    now_ms: u64,
) -> Reply {
    let Exec::Shard(f) = cmd.exec else {
        unreachable!("only Shard commands are executed on a shard")
    };
    // AOF: a write is refused while the file cannot be written; one that changed data
    // is logged after it ran.
    let aof_dirty = if shard.aof.enabled() {
        if let Some(refused) = aof::refuse_write(shard, cmd) {
            return refused;
        }
        Some(shard.dirty())
    } else {
        None
    };
    // WATCH: a write that changed something touches the watched keys it wrote.
    // (Checked in this order so the common case, nobody watching, costs one test.)
    // (PFCOUNT is read-only but rewrites its cached count, which Redis signals.)
    let watched = if !shard.watches.is_empty() && (cmd.is_write() || cmd.name == "pfcount") {
        watched_args(shard, cmd, db, argv, now_ms)
    } else {
        Vec::new()
    };
    let dirty_before = if watched.is_empty() { 0 } else { shard.dirty() };
    let mut ctx = Ctx::at(shard, db, now_ms);
    ctx.no_touch = no_touch;
    let reply = guarded(cmd, || f(&mut ctx, argv));
    if !watched.is_empty() && shard.dirty() != dirty_before && !reply.is_error() {
        touch_watched(shard, cmd, db, argv, &watched, &reply);
    }
    if let Some(before) = aof_dirty {
        aof::after_command(shard, db, argv, &reply, before);
    }
    reply
}

/// MOVE and COPY ... DB also write their key in another database.
fn writes_other_db(cmd: &Command) -> bool {
    matches!(cmd.name, "move" | "copy")
}

/// The watched keys among `cmd`'s arguments: (argv index, existed before the command;
/// for SMOVE's destination: already held the member, so SMOVE will not change it).
fn watched_args(
    shard: &mut Shard,
    cmd: &Command,
    db: usize,
    argv: &[Bytes],
    now_ms: u64,
) -> Vec<(usize, bool)> {
    let scope = if writes_other_db(cmd) { None } else { Some(db) };
    let watched: Vec<usize> = cmd
        .key_indexes(argv)
        .into_iter()
        .filter(|&k| shard.watches.is_watched(scope, &argv[k]))
        .collect();
    watched
        .into_iter()
        .map(|k| {
            if cmd.name == "smove" && k == 2 {
                let has = match shard.dbs[db].lookup(&argv[2], now_ms) {
                    Some(e) => matches!(&e.value, crate::storage::Value::Set(set) if set.contains(&argv[3])),
                    None => false,
                };
                return (k, has);
            }
            (k, shard.dbs[db].contains(&argv[k], now_ms))
        })
        .collect()
}

/// Bump the versions of the watched keys a write command modified, with Redis's
/// per-command precision: DEL / UNLINK touch only keys that existed; COPY and BITOP
/// only their destination (COPY's in its DB option's database); MOVE its key in both
/// databases; the STORE forms of set / sorted-set / geo / SORT commands only their
/// destination; the pops over several keys only the key they popped from (the first
/// element of their reply); every other write all the keys it names.
fn touch_watched(
    shard: &mut Shard,
    cmd: &Command,
    db: usize,
    argv: &[Bytes],
    watched: &[(usize, bool)],
    reply: &Reply,
) {
    let popped = match reply {
        Reply::Array(items) => match items.first() {
            Some(Reply::Bulk(k)) => Some(k.clone()),
            _ => None,
        },
        _ => None,
    };
    let db_arg = |b: &[u8]| {
        crate::protocol::parse::parse_i64(b)
            .filter(|&n| n >= 0)
            .map(|n| n as usize)
    };
    for &(k, existed) in watched {
        let key = &argv[k];
        match cmd.name {
            "del" | "unlink" if !existed => {}
            // SMOVE touches its destination only if the member was added there.
            "smove" if k == 2 && existed => {}
            "bitop" | "copy" if k != 2 => {}
            "sinterstore" | "sunionstore" | "sdiffstore" | "zunionstore" | "zinterstore"
            | "zdiffstore" | "zrangestore" | "geosearchstore"
                if k != 1 => {}
            "sort" | "georadius" | "georadiusbymember" if k == 1 => {}
            "lmpop" | "blmpop" | "blpop" | "brpop" | "zmpop" | "bzmpop" | "bzpopmin"
            | "bzpopmax"
                if popped.as_deref() != Some(&key[..]) => {}
            "copy" => {
                let dst_db = argv
                    .iter()
                    .position(|a| a.eq_ignore_ascii_case(b"db"))
                    .and_then(|i| argv.get(i + 1))
                    .and_then(|a| db_arg(a))
                    .unwrap_or(db);
                shard.watches.touch(dst_db, key);
            }
            "move" => {
                shard.watches.touch(db, key);
                if let Some(to) = db_arg(&argv[2]) {
                    shard.watches.touch(to, key);
                }
            }
            _ => shard.watches.touch(db, key),
        }
    }
}

/// Run a handler so that a bug in one command cannot take the shard (and every key on
/// it) down with it: a panic becomes an error reply, the event loop keeps running, and
/// the panic message stays in the log.
fn guarded(cmd: &Command, f: impl FnOnce() -> Reply) -> Reply {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| panicked(cmd))
}

fn panicked(cmd: &Command) -> Reply {
    crate::runtime::log(&format!(
        "BUG: command '{}' panicked; see the message above",
        cmd.name
    ));
    Reply::error(format!("ERR internal error while running '{}'", cmd.name))
}

/// True when the key arguments fill whole steps (MSET's key/value pairs).
fn keys_complete(cmd: &Command, argc: usize) -> bool {
    let step = cmd.key_step.max(1) as usize;
    cmd.last_key != -1
        || argc
            .saturating_sub(cmd.first_key as usize)
            .is_multiple_of(step)
}

/// Stats and slow log for one executed command. A blocking command that found nothing
/// (outside EXEC: its connection now blocks) is left out of the slow log here: Redis
/// logs it once, when it is served, times out or is unblocked
/// (`blocking::log_unblocked`).
pub fn record(
    shard: &mut Shard,
    cmd: &Command,
    argv: &[Bytes],
    start: Instant,
    reply: &Reply,
    caller: &Caller,
) {
    let us = record_stats(shard, cmd, start, reply);
    let blocks = crate::runtime::blocking::is_blocking(cmd)
        && crate::runtime::blocking::found_nothing(cmd, reply);
    if !blocks {
        slowlog_push(shard, cmd, argv, us, caller);
    }
}

/// Command stats for one executed command; returns its duration in microseconds.
pub fn record_stats(shard: &mut Shard, cmd: &Command, start: Instant, reply: &Reply) -> u64 {
    let us = start.elapsed().as_micros() as u64;
    shard.stats.record_call(cmd.name, us, reply.is_error());
    us
}

/// Add `argv` to the slow log if it took long enough. Commands flagged `skip_slowlog`
/// (EXEC: Redis 7.0 logs the commands it runs instead) never are.
pub fn slowlog_push(shard: &mut Shard, cmd: &Command, argv: &[Bytes], us: u64, caller: &Caller) {
    let threshold = shard.config.slowlog_log_slower_than;
    if threshold >= 0 && us >= threshold as u64 && !cmd.has_flag("skip_slowlog") {
        let max = shard.config.slowlog_max_len;
        shard
            .slowlog
            .push(slowlog::next_id(), argv, us, caller, max);
    }
}

struct Pending {
    index: usize,
    db: usize,
    no_touch: bool,
    cmd: &'static Command,
    argv: Vec<Bytes>,
}

/// Replies for one read's requests, in order; `None` replies are not written.
pub struct Batch {
    pub replies: Vec<Option<Reply>>,
    /// Stop reading: QUIT, or a command that closes the connection.
    pub close: bool,
}

/// Execute every request of one read and return the replies in order.
pub async fn run_batch(client: &ClientRef, shards: &Shards, requests: Vec<Vec<Bytes>>) -> Batch {
    let n = requests.len();
    let mut replies: Vec<Option<Reply>> = (0..n).map(|_| None).collect();
    let mut suppressed = vec![false; n];
    let mut pending: Vec<Vec<Pending>> = (0..shards.count()).map(|_| Vec::new()).collect();
    let caller = caller_of(client);
    let mut close = false;
    let now = crate::shard::now_ms();
    for (i, argv) in requests.into_iter().enumerate() {
        let (db, no_touch, authed, mode) = {
            let c = client.borrow();
            (c.db, c.no_touch, c.authenticated, c.reply_mode)
        };
        suppressed[i] = matches!(mode, ReplyMode::Off | ReplyMode::Skip);
        let resolved = resolve(&argv);
        let rejected = match &resolved {
            Err((reply, name)) => Some((reply.clone(), *name)),
            Ok(cmd) if !authed && !cmd.has_flag("no_auth") => {
                Some((Reply::err(errors::NOAUTH), Some(cmd.name)))
            }
            Ok(cmd)
                if shards.server.loading.load(Ordering::Relaxed)
                    && !cmd.has_flag("loading")
                    && client.borrow().id != aof::REPLAY_CLIENT =>
            {
                Some((Reply::err(LOADING), Some(cmd.name)))
            }
            // After a failed background save, with stop-writes-on-bgsave-error: writes
            // (and PING, as Redis) get -MISCONF.
            Ok(cmd)
                if (cmd.is_write() || cmd.name == "ping")
                    && shards
                        .server
                        .persistence
                        .last_bgsave_failed
                        .load(Ordering::Relaxed)
                    && shards
                        .server
                        .persistence
                        .writes_refused(&shards.local.borrow().config) =>
            {
                Some((crate::persistence::save::misconf(), Some(cmd.name)))
            }
            Ok(cmd) if queues_in_multi(client, cmd) && cmd.has_flag("no_multi") => Some((
                Reply::err("ERR Command not allowed inside a transaction"),
                Some(cmd.name),
            )),
            Ok(_) => None,
        };
        if let Some((mut reply, name)) = rejected {
            if name == Some("exec") {
                // A refused EXEC discards the transaction, as Redis's execCommandAbort.
                reply = exec_abort(reply);
                let mut c = client.borrow_mut();
                c.multi = None;
                c.multi_aborted = false;
                drop(c);
                transaction::unwatch_all(client, shards);
            }
            // A command refused while queuing dooms the transaction (EXECABORT).
            let mut c = client.borrow_mut();
            if c.multi.is_some() {
                c.multi_aborted = true;
            }
            drop(c);
            shards.local.borrow_mut().stats.record_rejected(name);
            replies[i] = Some(reply);
            advance_reply_mode(client);
            continue;
        }
        let Ok(cmd) = resolved else {
            unreachable!("rejections handled above")
        };
        if queues_in_multi(client, cmd) {
            if let Some(q) = client.borrow_mut().multi.as_mut() {
                q.push(argv);
            }
            replies[i] = Some(Reply::status("QUEUED"));
            advance_reply_mode(client);
            continue;
        }
        {
            let mut c = client.borrow_mut();
            c.last_cmd.clear();
            c.last_cmd.push_str(cmd.name);
            c.commands += 1;
        }
        match cmd.exec {
            Exec::Conn(f) => {
                let start = Instant::now();
                let reply = guarded(cmd, || f(&mut client.borrow_mut(), &argv));
                record(
                    &mut shards.local.borrow_mut(),
                    cmd,
                    &argv,
                    start,
                    &reply,
                    &caller,
                );
                replies[i] = Some(reply);
            }
            Exec::Server(f) => {
                flush(shards, &mut pending, &mut replies, &caller).await;
                let start = Instant::now();
                // A server-wide write (FLUSHALL, FLUSHDB, SWAPDB) holds every shard.
                let tx = if cmd.is_write() {
                    let all: Vec<usize> = (0..shards.count()).collect();
                    Some(Tx::begin(shards, &all).await)
                } else {
                    None
                };
                let handle = tx.as_ref().map_or(shards, |t| &t.shards);
                let reply = futures_lite::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(f(
                    client, handle, &argv,
                )))
                .await
                .unwrap_or_else(|_| panicked(cmd));
                if let Some(tx) = tx {
                    // Logged once, meeting every shard's stream on replay.
                    if !reply.is_error() && aof::enabled(&shards.server) {
                        let all: Vec<usize> = (0..shards.count()).collect();
                        aof::tx_log(tx.id, &all, db, std::slice::from_ref(&argv));
                    }
                    tx.finish().await;
                }
                record(
                    &mut shards.local.borrow_mut(),
                    cmd,
                    &argv,
                    start,
                    &reply,
                    &caller,
                );
                replies[i] = Some(reply);
            }
            Exec::Shard(_) => match target_shard(cmd, &argv, shards) {
                Target::One(s) if s == shards.local_id && shards.local_is_free() => {
                    let reply = execute(
                        &mut shards.local.borrow_mut(),
                        cmd,
                        db,
                        &argv,
                        no_touch,
                        &caller,
                        now,
                    );
                    replies[i] = Some(reply);
                }
                Target::One(s) => pending[s].push(Pending {
                    index: i,
                    db,
                    no_touch,
                    cmd,
                    argv,
                }),
                Target::Many => {
                    flush(shards, &mut pending, &mut replies, &caller).await;
                    let start = Instant::now();
                    let reply = if matches!(cmd.name, "sort" | "sort_ro") {
                        crate::runtime::sort::sort_across_shards(shards, cmd, db, &argv).await
                    } else {
                        run_multi_shard_tx(shards, cmd, db, &argv, no_touch).await
                    };
                    record(
                        &mut shards.local.borrow_mut(),
                        cmd,
                        &argv,
                        start,
                        &reply,
                        &caller,
                    );
                    replies[i] = Some(reply);
                }
            },
            Exec::Container => unreachable!("resolve returns subcommands"),
        }
        if cmd.name == "reset" {
            transaction::unwatch_all(client, shards);
        }
        advance_reply_mode(client);
        if client.borrow().close_after_reply {
            close = true;
            replies.truncate(i + 1);
            suppressed.truncate(i + 1);
            break;
        }
    }
    flush(shards, &mut pending, &mut replies, &caller).await;
    for (r, s) in replies.iter_mut().zip(suppressed) {
        if s && !matches!(r, Some(Reply::NoReply)) {
            // Errors are still counted in stats by the caller; the bytes are not sent.
            if let Some(e) = r.as_ref().and_then(Reply::error_text) {
                shards.local.borrow_mut().stats.record_error(&e);
            }
            *r = None;
        }
    }
    Batch { replies, close }
}

/// `EXECABORT Transaction discarded because of: <why>`, `why` without its ERR code.
fn exec_abort(reply: Reply) -> Reply {
    let Reply::Error(e) = reply else { return reply };
    let why = e.strip_prefix("ERR ").unwrap_or(&e);
    Reply::error(format!("EXECABORT Transaction discarded because of: {why}"))
}

/// The caller's address and name, for the slow log.
pub fn caller_of(client: &ClientRef) -> Caller {
    let c = client.borrow();
    Caller {
        addr: c.addr,
        name: c.name.as_deref().map(Into::into),
    }
}

/// True if `cmd` is queued rather than run: inside MULTI, everything but the commands
/// that control the transaction or the connection (as Redis's `processCommand`).
fn queues_in_multi(client: &ClientRef, cmd: &Command) -> bool {
    client.borrow().multi.is_some()
        && !matches!(
            cmd.name,
            "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
        )
}

/// A keyed command whose keys span shards, run by a handle that holds those shards:
/// split per shard and merged, or run once over a gathered copy of its keys.
pub async fn run_multi_shard(
    t: &Shards,
    cmd: &'static Command,
    db: usize,
    argv: &[Bytes],
    no_touch: bool,
) -> Reply {
    match cmd.split {
        // An odd MSET must fail whole, before any part is applied.
        Some(_) if !keys_complete(cmd, argv.len()) => errors::wrong_arity(cmd.name),
        Some(m) => run_split(t, cmd, db, argv, m, no_touch).await,
        None => run_gathered(t, cmd, db, argv).await,
    }
}

/// CLIENT REPLY SKIP applies to the command after the one that set it.
fn advance_reply_mode(client: &ClientRef) {
    let mut c = client.borrow_mut();
    c.reply_mode = match c.reply_mode {
        ReplyMode::Skip => ReplyMode::On,
        ReplyMode::SkipNext => ReplyMode::Skip,
        m => m,
    };
}

enum Target {
    One(usize),
    Many,
}

fn target_shard(cmd: &Command, argv: &[Bytes], shards: &Shards) -> Target {
    if shards.count() == 1 {
        return Target::One(shards.local_id);
    }
    // SORT's BY / GET patterns may name keys on any shard.
    if matches!(cmd.name, "sort" | "sort_ro")
        && crate::runtime::sort::reaches_other_keys(shards, argv)
    {
        return Target::Many;
    }
    let idx = cmd.key_indexes(argv);
    let Some(&first) = idx.first() else {
        return Target::One(shards.local_id);
    };
    let s = shards.shard_of(&argv[first]);
    if idx[1..].iter().all(|&k| shards.shard_of(&argv[k]) == s) {
        Target::One(s)
    } else {
        Target::Many
    }
}

/// Send every pending per-shard batch (one hop each) and slot the replies.
async fn flush(
    shards: &Shards,
    pending: &mut [Vec<Pending>],
    replies: &mut [Option<Reply>],
    caller: &Caller,
) {
    let mut waiting = Vec::new();
    for (sid, items) in pending.iter_mut().enumerate() {
        if items.is_empty() {
            continue;
        }
        let items = std::mem::take(items);
        let indexes: Vec<usize> = items.iter().map(|p| p.index).collect();
        let caller = caller.clone();
        let rx = shards.send(sid, move |s: &mut Shard| {
            let now = crate::shard::now_ms();
            items
                .into_iter()
                .map(|p| execute(s, p.cmd, p.db, &p.argv, p.no_touch, &caller, now))
                .collect::<Vec<Reply>>()
        });
        waiting.push((indexes, rx));
    }
    for (indexes, rx) in waiting {
        let got = rx
            .recv_async()
            .await
            .expect("a shard never drops a job it accepted");
        for (i, r) in indexes.into_iter().zip(got) {
            replies[i] = Some(r);
        }
    }
}

/// The parts of a split command: for each shard with keys, its argv and the
/// positions (in key order) of the keys it answers for.
fn split_parts(
    shards: &Shards,
    cmd: &Command,
    argv: &[Bytes],
) -> Vec<(usize, Vec<Bytes>, Vec<usize>)> {
    let idx = cmd.key_indexes(argv);
    let step = cmd.key_step.max(1) as usize;
    let mut parts: Vec<(Vec<Bytes>, Vec<usize>)> = (0..shards.count())
        .map(|_| (vec![argv[0].clone()], Vec::new()))
        .collect();
    for (pos, &k) in idx.iter().enumerate() {
        let s = shards.shard_of(&argv[k]);
        parts[s]
            .0
            .extend_from_slice(&argv[k..(k + step).min(argv.len())]);
        parts[s].1.push(pos);
    }
    parts
        .into_iter()
        .enumerate()
        .filter(|(_, (_, positions))| !positions.is_empty())
        .map(|(sid, (part, positions))| (sid, part, positions))
        .collect()
}

/// Merge the parts' replies (each with the key positions it answers for).
fn merge_parts(merge: Merge, nkeys: usize, results: Vec<(Vec<usize>, Reply)>) -> Reply {
    let mut sum = 0i64;
    let mut ordered: Vec<Reply> = vec![Reply::Null; nkeys];
    for (positions, reply) in results {
        match (merge, reply) {
            (_, e) if e.is_error() => return e,
            (Merge::SumInt, Reply::Int(n)) => sum += n,
            (Merge::Ordered, Reply::Array(items)) => {
                for (p, r) in positions.into_iter().zip(items) {
                    ordered[p] = r;
                }
            }
            _ => {}
        }
    }
    match merge {
        Merge::SumInt => Reply::Int(sum),
        Merge::Ordered => Reply::Array(ordered),
        Merge::AllOk => Reply::ok(),
    }
}

/// Split a multi-key command into one part per shard, run the parts, merge replies
/// (inside a transaction that already holds the shards: EXEC).
async fn run_split(
    shards: &Shards,
    cmd: &'static Command,
    db: usize,
    argv: &[Bytes],
    merge: Merge,
    no_touch: bool,
) -> Reply {
    let nkeys = cmd.key_indexes(argv).len();
    let waiting: Vec<_> = split_parts(shards, cmd, argv)
        .into_iter()
        .map(|(sid, part, positions)| {
            let rx = shards.send_or_local(sid, move |s: &mut Shard| {
                run_handler(s, cmd, db, &part, no_touch, crate::shard::now_ms())
            });
            (positions, rx)
        })
        .collect();
    let mut results = Vec::with_capacity(waiting.len());
    for (positions, rx) in waiting {
        results.push((positions, rx.get().await));
    }
    merge_parts(merge, nkeys, results)
}

/// A key's state as copied from its shard for gathered execution: (db, key, entry and TTL).
type KeyState = (usize, Bytes, Option<(Entry, Option<u64>)>);
type Gathered = Vec<KeyState>;

/// The command's keys grouped by owning shard.
fn keys_by_shard(shards: &Shards, cmd: &Command, argv: &[Bytes]) -> Vec<(usize, Vec<Bytes>)> {
    let mut by_shard: Vec<Vec<Bytes>> = (0..shards.count()).map(|_| Vec::new()).collect();
    for k in cmd.key_indexes(argv) {
        by_shard[shards.shard_of(&argv[k])].push(argv[k].clone());
    }
    by_shard
        .into_iter()
        .enumerate()
        .filter(|(_, ks)| !ks.is_empty())
        .collect()
}

/// Copy the state of `keys` in every database (COPY ... DB reaches another one).
fn gather(s: &mut Shard, keys: &[Bytes]) -> Gathered {
    let now = crate::shard::now_ms();
    let mut out: Gathered = Vec::new();
    for (dbi, d) in s.dbs.iter_mut().enumerate() {
        for k in keys {
            let e = d.lookup(k, now).cloned();
            let ttl = d.expire_of(k);
            out.push((dbi, k.clone(), e.map(|e| (e, ttl))));
        }
    }
    // Keys found expired are logged before the command that follows.
    aof::flush_expired(s);
    out
}

/// Run `cmd` once over copies of all its keys, then write back what changed to the
/// owning shards (inside a transaction that already holds the shards: EXEC).
async fn run_gathered(shards: &Shards, cmd: &'static Command, db: usize, argv: &[Bytes]) -> Reply {
    let waiting: Vec<_> = keys_by_shard(shards, cmd, argv)
        .into_iter()
        .map(|(sid, ks)| shards.send_or_local(sid, move |s: &mut Shard| gather(s, &ks)))
        .collect();
    let mut before: Gathered = Vec::new();
    for rx in waiting {
        before.extend(rx.get().await);
    }
    finish_gathered(shards, cmd, db, argv, before).await
}

/// Run `cmd` on a private shard holding the gathered keys, and write back every key
/// whose value or TTL changed, to all owning shards at once.
async fn finish_gathered(
    shards: &Shards,
    cmd: &'static Command,
    db: usize,
    argv: &[Bytes],
    before: Gathered,
) -> Reply {
    let mut scratch = Shard::new(
        shards.local_id,
        shards.count(),
        shards.local.borrow().config_handle.clone(),
    );
    for (dbi, k, e) in &before {
        if let Some((entry, ttl)) = e {
            let d = &mut scratch.dbs[*dbi];
            d.set(k, entry.value.clone(), false);
            if let Some(at) = ttl {
                d.set_expire(k, *at);
            }
        }
    }
    let reply = {
        let Exec::Shard(f) = cmd.exec else {
            unreachable!("gathered commands are Shard commands")
        };
        let mut ctx = Ctx::new(&mut scratch, db);
        f(&mut ctx, argv)
    };
    let met: Vec<usize> = before.iter().map(|(_, k, _)| shards.shard_of(k)).collect();
    let mut writes: Vec<Gathered> = (0..shards.count()).map(|_| Vec::new()).collect();
    for (dbi, k, old) in before {
        let d = &mut scratch.dbs[dbi];
        let new = d.keys.get(&k[..]).cloned().map(|e| (e, d.expire_of(&k)));
        let changed = match (&old, &new) {
            (None, None) => false,
            (Some((a, ta)), Some((b, tb))) => a.value != b.value || ta != tb,
            _ => true,
        };
        if changed {
            writes[shards.shard_of(&k)].push((dbi, k, new));
        }
    }
    let wrote = writes.iter().any(|w| !w.is_empty());
    if let (true, Some(id)) = (wrote && aof::enabled(&shards.server), shards.tx) {
        // Logged as run, in the transaction that holds every shard of its keys.
        let records = aof::record::propagate(&mut scratch, db, argv, &reply);
        aof::tx_log(id, &met, db, &records);
    }
    let waiting: Vec<_> = writes
        .into_iter()
        .enumerate()
        .filter(|(_, w)| !w.is_empty())
        .map(|(sid, w)| shards.send_or_local(sid, move |s: &mut Shard| write_back(s, w)))
        .collect();
    for rx in waiting {
        rx.get().await;
    }
    reply
}

fn write_back(s: &mut Shard, writes: Gathered) {
    for (dbi, k, new) in writes {
        s.watches.touch(dbi, &k);
        let d = &mut s.dbs[dbi];
        match new {
            None => {
                d.remove(&k);
            }
            Some((e, ttl)) => {
                d.set(&k, e.value, false);
                if let Some(at) = ttl {
                    d.set_expire(&k, at);
                }
            }
        }
    }
}

/// A multi-key command whose keys span shards, as its own transaction: each shard's
/// part (or, for a gathered command, the copy of its keys) runs in the same message
/// that grants the shard, so a split command costs one round trip.
async fn run_multi_shard_tx(
    shards: &Shards,
    cmd: &'static Command,
    db: usize,
    argv: &[Bytes],
    no_touch: bool,
) -> Reply {
    match cmd.split {
        // An odd MSET must fail whole, before any part is applied.
        Some(_) if !keys_complete(cmd, argv.len()) => errors::wrong_arity(cmd.name),
        Some(m) => {
            let nkeys = cmd.key_indexes(argv).len();
            let mut positions = Vec::new();
            let steps: Vec<(usize, FirstStep<Reply>)> = split_parts(shards, cmd, argv)
                .into_iter()
                .map(|(sid, part, pos)| {
                    positions.push(pos);
                    let step: FirstStep<Reply> = Box::new(move |s: &mut Shard| {
                        run_handler(s, cmd, db, &part, no_touch, crate::shard::now_ms())
                    });
                    (sid, step)
                })
                .collect();
            let (tx, replies) = Tx::begin_with(shards, steps).await;
            tx.finish().await;
            merge_parts(m, nkeys, positions.into_iter().zip(replies).collect())
        }
        None => {
            let steps: Vec<(usize, FirstStep<Gathered>)> = keys_by_shard(shards, cmd, argv)
                .into_iter()
                .map(|(sid, ks)| {
                    let step: FirstStep<Gathered> = Box::new(move |s: &mut Shard| gather(s, &ks));
                    (sid, step)
                })
                .collect();
            let (tx, gathered) = Tx::begin_with(shards, steps).await;
            let reply = finish_gathered(
                &tx.shards,
                cmd,
                db,
                argv,
                gathered.into_iter().flatten().collect(),
            )
            .await;
            tx.finish().await;
            reply
        }
    }
}
