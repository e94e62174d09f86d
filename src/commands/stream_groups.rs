//! Stream consumer groups and introspection (Redis's `t_stream.c`): XGROUP (CREATE,
//! SETID, DESTROY, CREATECONSUMER, DELCONSUMER, HELP), XREADGROUP, XACK, XPENDING,
//! XCLAIM, XAUTOCLAIM, XINFO (STREAM, GROUPS, CONSUMERS, HELP).
//!
//! A group (`storage::stream::Group`) holds its last delivered ID, its entries-read
//! counter and its pending-entries list (PEL) of delivered, unacknowledged IDs, each
//! owned by one consumer. The one idea to hold is propagation, as Redis 7.0 does it:
//! XREADGROUP, XCLAIM and XAUTOCLAIM are never replayed as sent (their result depends
//! on time and on the PEL); each delivered or claimed entry leaves as an idempotent
//! `XCLAIM key group consumer 0 id TIME <ms> RETRYCOUNT <n> FORCE JUSTID LASTID <id>`
//! read from the PEL the command left, and a NOACK read as `XGROUP SETID ...
//! ENTRIESREAD n` ([`propagate_readgroup`], [`propagate_claims`]).

use super::stream::{
    bound, entry_reply, id_arg, id_reply, parse_read, read_stream, stream_in, write_stream,
    xread_keys,
};
use super::{args, errors, Blocking, Command, Ctx, Exec};
use crate::notify;
use crate::protocol::reply::OK;
use crate::protocol::Reply;
use crate::storage::stream::{Group, IdForm, Stream, StreamId, INVALID_ENTRIES_READ};
use crate::storage::{Db, Value};
use bytes::Bytes;

pub static COMMANDS: &[Command] = &[
    Command::new("xgroup", -2, "", "slow", Exec::Container).subcommands(XGROUP),
    Command::new(
        "xreadgroup",
        -7,
        "write blocking movablekeys",
        "write stream slow blocking",
        Exec::Shard(xreadgroup),
    )
    .find_keys(xread_keys)
    .blocking(Blocking::STREAM)
    .propagate(propagate_readgroup),
    Command::new(
        "xack",
        -4,
        "write fast",
        "write stream fast",
        Exec::Shard(xack),
    )
    .keys(1, 1, 1)
    .verbatim(),
    Command::new(
        "xpending",
        -3,
        "readonly",
        "read stream slow",
        Exec::Shard(xpending),
    )
    .keys(1, 1, 1),
    Command::new(
        "xclaim",
        -6,
        "write fast",
        "write stream fast",
        Exec::Shard(xclaim),
    )
    .keys(1, 1, 1)
    .propagate(propagate_claims),
    Command::new(
        "xautoclaim",
        -6,
        "write fast",
        "write stream fast",
        Exec::Shard(xautoclaim),
    )
    .keys(1, 1, 1)
    .propagate(propagate_claims),
    Command::new("xinfo", -2, "", "slow", Exec::Container).subcommands(XINFO),
];

static XGROUP: &[Command] = &[
    Command::new(
        "xgroup|create",
        -5,
        "write denyoom",
        "write stream slow",
        Exec::Shard(xgroup_create),
    )
    .keys(2, 2, 1)
    .verbatim(),
    Command::new(
        "xgroup|setid",
        -5,
        "write",
        "write stream slow",
        Exec::Shard(xgroup_setid),
    )
    .keys(2, 2, 1)
    .verbatim(),
    Command::new(
        "xgroup|destroy",
        4,
        "write",
        "write stream slow",
        Exec::Shard(xgroup_destroy),
    )
    .keys(2, 2, 1)
    .verbatim(),
    Command::new(
        "xgroup|createconsumer",
        5,
        "write denyoom",
        "write stream slow",
        Exec::Shard(xgroup_createconsumer),
    )
    .keys(2, 2, 1)
    .verbatim(),
    Command::new(
        "xgroup|delconsumer",
        5,
        "write",
        "write stream slow",
        Exec::Shard(xgroup_delconsumer),
    )
    .keys(2, 2, 1)
    .verbatim(),
    Command::new(
        "xgroup|help",
        2,
        "loading stale",
        "stream slow",
        Exec::Conn(xgroup_help),
    ),
];

static XINFO: &[Command] = &[
    Command::new(
        "xinfo|stream",
        -3,
        "readonly",
        "read stream slow",
        Exec::Shard(xinfo_stream),
    )
    .keys(2, 2, 1),
    Command::new(
        "xinfo|groups",
        3,
        "readonly",
        "read stream slow",
        Exec::Shard(xinfo_groups),
    )
    .keys(2, 2, 1),
    Command::new(
        "xinfo|consumers",
        4,
        "readonly",
        "read stream slow",
        Exec::Shard(xinfo_consumers),
    )
    .keys(2, 2, 1),
    Command::new(
        "xinfo|help",
        2,
        "loading stale",
        "stream slow",
        Exec::Conn(xinfo_help),
    ),
];

fn now_ms() -> u64 {
    crate::clock::now_ms()
}

fn bulk(b: &[u8]) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(b))
}

fn name(s: &'static str) -> Reply {
    Reply::bulk_str(s)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn no_group_for_key(group: &[u8], key: &[u8]) -> Reply {
    Reply::error(format!(
        "NOGROUP No such consumer group '{}' for key name '{}'",
        text(group),
        text(key)
    ))
}

fn no_key_or_group(key: &[u8], group: &[u8]) -> Reply {
    Reply::error(format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        text(key),
        text(group)
    ))
}

/// The stream at `key` and its group `group` for a command that needs both.
fn group_of<'a>(
    ctx: &'a mut Ctx,
    key: &[u8],
    group: &[u8],
) -> Result<(&'a mut Stream, Box<[u8]>, Group), Reply> {
    match write_stream(ctx, key)? {
        Some(s) => match s.take_group(group) {
            Some((n, g)) => Ok((s, n, g)),
            None => Err(no_key_or_group(key, group)),
        },
        None => Err(no_key_or_group(key, group)),
    }
}

// ---- XGROUP --------------------------------------------------------------------------

/// CREATE / SETID options after the ID: MKSTREAM (CREATE only), ENTRIESREAD n.
fn group_options(argv: &[Bytes], create: bool) -> Result<(bool, i64), Reply> {
    let mut mkstream = false;
    let mut entries_read = INVALID_ENTRIES_READ;
    let mut i = 5;
    while i < argv.len() {
        if create && args::eq(&argv[i], "mkstream") {
            mkstream = true;
            i += 1;
        } else if args::eq(&argv[i], "entriesread") && i + 1 < argv.len() {
            entries_read = args::int(&argv[i + 1])?;
            if entries_read < 0 && entries_read != INVALID_ENTRIES_READ {
                return Err(Reply::err(
                    "ERR value for ENTRIESREAD must be positive or -1",
                ));
            }
            i += 2;
        } else {
            return Err(errors::unknown_subcommand_or_arity("XGROUP", &argv[1]));
        }
    }
    Ok((mkstream, entries_read))
}

const NEEDS_KEY: &str = "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.";

/// XGROUP CREATE key group id|$ [MKSTREAM] [ENTRIESREAD n]
fn xgroup_create(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let (mkstream, entries_read) = match group_options(argv, true) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let (key, group) = (&argv[2], &argv[3]);
    let exists = match write_stream(ctx, key) {
        Err(e) => return e,
        Ok(s) => s.is_some(),
    };
    if !exists && !mkstream {
        return Reply::err(NEEDS_KEY);
    }
    if argv.len() > 8 {
        return errors::unknown_subcommand_or_arity("XGROUP", &argv[1]);
    }
    let id = if &argv[4][..] == b"$" {
        match write_stream(ctx, key) {
            Ok(Some(s)) => s.last_id,
            _ => StreamId::MIN,
        }
    } else {
        match id_arg(&argv[4], IdForm::STRICT) {
            Ok(id) => id,
            Err(e) => return e,
        }
    };
    if !exists {
        ctx.db()
            .set(key, Value::Stream(Box::new(Stream::new())), false);
    }
    let Ok(Some(s)) = write_stream(ctx, key) else {
        unreachable!("created above")
    };
    if !s.create_group(group, id, entries_read) {
        return Reply::err("BUSYGROUP Consumer Group name already exists");
    }
    ctx.db().dirty += 1;
    ctx.notify(notify::STREAM, "xgroup-create", key);
    OK
}

/// XGROUP SETID key group id|$ [ENTRIESREAD n]
fn xgroup_setid(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let (_, entries_read) = match group_options(argv, false) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let (key, group) = (&argv[2], &argv[3]);
    let s = match write_stream(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::err(NEEDS_KEY),
        Ok(Some(s)) => s,
    };
    if s.group(group).is_none() {
        return no_group_for_key(group, key);
    }
    if argv.len() != 5 && argv.len() != 7 {
        return errors::unknown_subcommand_or_arity("XGROUP", &argv[1]);
    }
    let id = if &argv[4][..] == b"$" {
        s.last_id
    } else {
        match id_arg(&argv[4], IdForm::loose(0)) {
            Ok(id) => id,
            Err(e) => return e,
        }
    };
    let g = s.group_mut(group).expect("checked");
    g.last_id = id;
    g.entries_read = entries_read;
    ctx.db().dirty += 1;
    ctx.notify(notify::STREAM, "xgroup-setid", key);
    OK
}

/// The stream for XGROUP DESTROY / CREATECONSUMER / DELCONSUMER, whose group must
/// exist.
fn xgroup_target<'a>(ctx: &'a mut Ctx, argv: &[Bytes]) -> Result<&'a mut Stream, Reply> {
    let (key, group) = (&argv[2], &argv[3]);
    let s = write_stream(ctx, key)?.ok_or_else(|| Reply::err(NEEDS_KEY))?;
    // CREATECONSUMER / DELCONSUMER (5 arguments) need the group; DESTROY answers 0.
    if s.group(group).is_none() && argv.len() == 5 {
        return Err(no_group_for_key(group, key));
    }
    Ok(s)
}

/// XGROUP DESTROY key group: 1 if it existed.
fn xgroup_destroy(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let (key, group) = (&argv[2], &argv[3]);
    let s = match xgroup_target(ctx, argv) {
        Ok(s) => s,
        Err(e) => return e,
    };
    if !s.destroy_group(group) {
        return Reply::Int(0);
    }
    ctx.db().dirty += 1;
    ctx.notify(notify::STREAM, "xgroup-destroy", key);
    // Readers blocked on that group learn it is gone.
    super::stream::signal_ready(ctx.db(), key);
    Reply::Int(1)
}

/// XGROUP CREATECONSUMER key group consumer: 1 if it was created.
fn xgroup_createconsumer(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let (key, group) = (&argv[2], &argv[3]);
    let s = match xgroup_target(ctx, argv) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let g = s.group_mut(group).expect("checked");
    if g.consumers.contains_key(&argv[4][..]) {
        return Reply::Int(0);
    }
    g.consumer(&argv[4], now_ms(), false);
    ctx.db().dirty += 1;
    ctx.notify(notify::STREAM, "xgroup-createconsumer", key);
    Reply::Int(1)
}

/// XGROUP DELCONSUMER key group consumer: the entries it had pending.
fn xgroup_delconsumer(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let (key, group) = (&argv[2], &argv[3]);
    let s = match xgroup_target(ctx, argv) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let g = s.group_mut(group).expect("checked");
    let Some(pending) = g.delete_consumer(&argv[4]) else {
        return Reply::Int(0);
    };
    ctx.db().dirty += 1;
    ctx.notify(notify::STREAM, "xgroup-delconsumer", key);
    Reply::Int(pending as i64)
}

fn xgroup_help(_c: &mut crate::client::Client, _argv: &[Bytes]) -> Reply {
    super::config::help_reply(
        "XGROUP",
        &[
            "CREATE <key> <groupname> <id|$> [option]",
            "    Create a new consumer group. Options are:",
            "    * MKSTREAM",
            "      Create the empty stream if it does not exist.",
            "    * ENTRIESREAD entries_read",
            "      Set the group's entries_read counter (internal use).",
            "CREATECONSUMER <key> <groupname> <consumer>",
            "    Create a new consumer in the specified group.",
            "DELCONSUMER <key> <groupname> <consumer>",
            "    Remove the specified consumer.",
            "DESTROY <key> <groupname>",
            "    Remove the specified group.",
            "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
            "    Set the current group ID and entries_read counter.",
        ],
    )
}

// ---- XREADGROUP ----------------------------------------------------------------------

/// XREADGROUP GROUP group consumer [COUNT n] [BLOCK ms] [NOACK] STREAMS key [key ...]
/// id [id ...]: `>` delivers entries no consumer of the group saw (and makes them
/// pending for this one unless NOACK); another ID reads this consumer's own pending
/// entries after it (an entry deleted since shows as a null).
fn xreadgroup(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let r = match parse_read(argv) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let (group, consumer) = r.group.clone().expect("XREADGROUP has GROUP");
    // Check every stream and ID first, as Redis does, before changing anything.
    let mut ids = Vec::with_capacity(r.n);
    for i in 0..r.n {
        let key = &argv[r.streams + i];
        let present = match read_stream(ctx, key) {
            Err(e) => return e,
            Ok(s) => s.is_some_and(|s| s.group(&group).is_some()),
        };
        if !present {
            return Reply::error(format!(
                "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
                text(key),
                text(&group)
            ));
        }
        let id = &argv[r.streams + r.n + i];
        if &id[..] == b"$" {
            return Reply::err(
                "ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.",
            );
        }
        if &id[..] == b">" {
            ids.push(None);
        } else {
            match id_arg(id, IdForm::STRICT) {
                // Redis reads `>` as the largest ID, so that ID asks for new entries too.
                Ok(StreamId::MAX) => ids.push(None),
                Ok(id) => ids.push(Some(id)),
                Err(e) => return e,
            }
        }
    }
    let now = now_ms();
    let mut out = Vec::new();
    for (i, after) in ids.into_iter().enumerate() {
        let key = &argv[r.streams + i];
        let Ok(Some(s)) = write_stream(ctx, key) else {
            continue;
        };
        let (gname, mut g) = s.take_group(&group).expect("checked");
        let served = match after {
            Some(after) => Some(history(s, &mut g, &consumer, after, r.count, now)),
            None => {
                let fresh = !s.is_empty() && s.last_valid_id() > g.last_id;
                fresh.then(|| deliver(s, &mut g, &consumer, r.count, r.noack, now))
            }
        };
        s.put_group(gname, g);
        if let Some((entries, created)) = served {
            if created {
                ctx.notify(notify::STREAM, "xgroup-createconsumer", key);
            }
            ctx.db().dirty += 1;
            out.push((Reply::Bulk(key.clone()), entries));
        }
    }
    if out.is_empty() {
        return Reply::NullArray;
    }
    Reply::Keyed(out)
}

/// New entries for the group: the group moves past them and, without NOACK, each
/// becomes pending for `consumer`. Returns the entries and whether it was created.
fn deliver(
    s: &Stream,
    g: &mut Group,
    consumer: &[u8],
    count: usize,
    noack: bool,
    now: u64,
) -> (Reply, bool) {
    let (_, created) = g.consumer(consumer, now, true);
    let mut entries = Vec::new();
    let mut ids = Vec::new();
    let start = g.last_id.incr().unwrap_or(StreamId::MAX);
    s.range(start, StreamId::MAX, false, |e| {
        ids.push(e.id);
        entries.push(entry_reply(&e));
        count == 0 || entries.len() < count
    });
    for id in ids {
        g.advance(s, id);
        if !noack {
            let nack = g.assign(id, consumer, now);
            nack.delivery_time = now;
            nack.delivery_count = 1;
        }
    }
    (Reply::Array(entries), created)
}

/// This consumer's pending entries after `after` (`streamReplyWithRangeFromConsumerPEL`):
/// each delivered again (time now, one more delivery); a deleted one as `[id, nil]`.
fn history(
    s: &Stream,
    g: &mut Group,
    consumer: &[u8],
    after: StreamId,
    count: usize,
    now: u64,
) -> (Reply, bool) {
    let (c, created) = g.consumer(consumer, now, true);
    let Some(start) = after.incr() else {
        return (Reply::Array(Vec::new()), created);
    };
    let ids: Vec<StreamId> = c
        .pel
        .range(start..)
        .take(if count == 0 { usize::MAX } else { count })
        .copied()
        .collect();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let mut found = None;
        s.range(id, id, false, |e| {
            found = Some(entry_reply(&e));
            false
        });
        match found {
            Some(e) => {
                out.push(e);
                if let Some(n) = g.pel.get_mut(&id) {
                    n.delivery_time = now;
                    n.delivery_count += 1;
                }
            }
            None => out.push(Reply::Array(vec![id_reply(id), Reply::NullArray])),
        }
    }
    (Reply::Array(out), created)
}

/// The idempotent XCLAIM Redis propagates for pending entry `id` of `group` as it
/// stands (`streamPropagateXCLAIM`); for an entry no longer pending, one that removes
/// it wherever it still is.
fn xclaim_record(key: &Bytes, gname: &[u8], g: &Group, id: StreamId) -> Vec<Bytes> {
    let (consumer, time, count) = match g.pel.get(&id) {
        Some(n) => (
            Bytes::copy_from_slice(&n.consumer),
            n.delivery_time,
            n.delivery_count,
        ),
        None => (Bytes::new(), 0, 0),
    };
    [
        Bytes::from_static(b"XCLAIM"),
        key.clone(),
        Bytes::copy_from_slice(gname),
        consumer,
        Bytes::from_static(b"0"),
        Bytes::from(id.to_text()),
        Bytes::from_static(b"TIME"),
        Bytes::from(time.to_string()),
        Bytes::from_static(b"RETRYCOUNT"),
        Bytes::from(count.to_string()),
        Bytes::from_static(b"FORCE"),
        Bytes::from_static(b"JUSTID"),
        Bytes::from_static(b"LASTID"),
        Bytes::from(g.last_id.to_text()),
    ]
    .to_vec()
}

/// `XGROUP SETID key group last-id ENTRIESREAD n` (`streamPropagateGroupID`).
fn setid_record(key: &Bytes, gname: &[u8], g: &Group) -> Vec<Bytes> {
    [
        Bytes::from_static(b"XGROUP"),
        Bytes::from_static(b"SETID"),
        key.clone(),
        Bytes::copy_from_slice(gname),
        Bytes::from(g.last_id.to_text()),
        Bytes::from_static(b"ENTRIESREAD"),
        Bytes::from(g.entries_read.to_string()),
    ]
    .to_vec()
}

/// The IDs of the entries in an entries reply (`[id, fields]` items, or bare IDs).
fn reply_ids(entries: &Reply) -> Vec<StreamId> {
    let Reply::Array(items) = entries else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|it| match it {
            Reply::Array(pair) => match pair.first() {
                Some(Reply::Bulk(b)) => crate::storage::stream::parse_id(b, IdForm::STRICT),
                _ => None,
            },
            Reply::Bulk(b) => crate::storage::stream::parse_id(b, IdForm::STRICT),
            _ => None,
        })
        .collect()
}

/// XREADGROUP: an XCLAIM per entry it made pending; with NOACK, the consumer and the
/// group's new last ID. A history read propagates nothing (as Redis).
fn propagate_readgroup(d: &mut Db, argv: &[Bytes], reply: &Reply) -> Vec<Vec<Bytes>> {
    let (Ok(r), Reply::Keyed(served)) = (parse_read(argv), reply) else {
        return Vec::new();
    };
    let (group, consumer) = r.group.expect("XREADGROUP has GROUP");
    let mut out = Vec::new();
    for (key, entries) in served {
        let Reply::Bulk(key) = key else { continue };
        let Some(s) = stream_in(d, key) else { continue };
        let Some(g) = s.group(&group) else { continue };
        let i = (0..r.n).find(|&i| argv[r.streams + i] == *key);
        let history = i.is_some_and(|i| {
            let id = &argv[r.streams + r.n + i];
            &id[..] != b">"
                && crate::storage::stream::parse_id(id, IdForm::STRICT) != Some(StreamId::MAX)
        });
        if history {
            continue;
        }
        let ids = reply_ids(entries);
        if r.noack {
            if !ids.is_empty() {
                out.push(
                    [
                        Bytes::from_static(b"XGROUP"),
                        Bytes::from_static(b"CREATECONSUMER"),
                        key.clone(),
                        group.clone(),
                        consumer.clone(),
                    ]
                    .to_vec(),
                );
                out.push(setid_record(key, &group, g));
            }
        } else {
            out.extend(ids.into_iter().map(|id| xclaim_record(key, &group, g, id)));
        }
    }
    out
}

// ---- XACK, XPENDING ------------------------------------------------------------------

/// XACK key group id [id ...]: how many were pending.
fn xack(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let (key, group) = (&argv[1], &argv[2]);
    let exists = match read_stream(ctx, key) {
        Err(e) => return e,
        Ok(s) => s.is_some_and(|s| s.group(group).is_some()),
    };
    if !exists {
        return Reply::Int(0);
    }
    let ids: Vec<StreamId> = match argv[3..]
        .iter()
        .map(|b| id_arg(b, IdForm::STRICT))
        .collect()
    {
        Ok(ids) => ids,
        Err(e) => return e,
    };
    let Ok(Some(s)) = write_stream(ctx, key) else {
        unreachable!("checked above")
    };
    let g = s.group_mut(group).expect("checked");
    let acked = ids.into_iter().filter(|id| g.ack(*id)).count();
    ctx.db().dirty += acked as u64;
    Reply::Int(acked as i64)
}

/// XPENDING key group [[IDLE min-idle] start end count [consumer]]
fn xpending(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let (key, group) = (&argv[1], &argv[2]);
    let summary = argv.len() == 3;
    if argv.len() != 3 && !(6..=9).contains(&argv.len()) {
        return errors::syntax();
    }
    let mut range = None;
    if !summary {
        let mut at = 3;
        let mut min_idle = 0;
        if args::eq(&argv[3], "idle") {
            min_idle = match args::int(&argv[4]) {
                Ok(n) => n,
                Err(e) => return e,
            };
            if argv.len() < 8 {
                return errors::syntax();
            }
            at += 2;
        }
        let count = match args::int(&argv[at + 2]) {
            Ok(n) => n.max(0) as usize,
            Err(e) => return e,
        };
        let start = match bound(&argv[at], 0) {
            Err(e) => return e,
            Ok((id, false)) => id,
            Ok((id, true)) => match id.incr() {
                Some(id) => id,
                None => return Reply::err("ERR invalid start ID for the interval"),
            },
        };
        let end = match bound(&argv[at + 1], u64::MAX) {
            Err(e) => return e,
            Ok((id, false)) => id,
            Ok((id, true)) => match id.decr() {
                Some(id) => id,
                None => return Reply::err("ERR invalid end ID for the interval"),
            },
        };
        let consumer = argv.get(at + 3).cloned();
        range = Some((min_idle, start, end, count, consumer));
    }
    let s = match read_stream(ctx, key) {
        Err(e) => return e,
        Ok(Some(s)) => s,
        Ok(None) => return no_key_or_group(key, group),
    };
    let Some(g) = s.group(group) else {
        return no_key_or_group(key, group);
    };
    let Some((min_idle, start, end, count, consumer)) = range else {
        if g.pel.is_empty() {
            return Reply::Array(vec![
                Reply::Int(0),
                Reply::Null,
                Reply::Null,
                Reply::NullArray,
            ]);
        }
        let first = *g.pel.keys().next().expect("not empty");
        let last = *g.pel.keys().next_back().expect("not empty");
        let owners = g
            .consumers
            .iter()
            .filter(|(_, c)| !c.pel.is_empty())
            .map(|(n, c)| {
                Reply::Array(vec![
                    bulk(n),
                    Reply::Bulk(Bytes::from(c.pel.len().to_string())),
                ])
            })
            .collect();
        return Reply::Array(vec![
            Reply::Int(g.pel.len() as i64),
            id_reply(first),
            id_reply(last),
            Reply::Array(owners),
        ]);
    };
    let ids: Vec<StreamId> = match &consumer {
        Some(c) => match g.consumers.get(&c[..]) {
            Some(c) => c.pel.range(start..).copied().collect(),
            None => return Reply::Array(Vec::new()),
        },
        None => g.pel.range(start..).map(|(id, _)| *id).collect(),
    };
    let now = now_ms() as i64;
    let mut out = Vec::new();
    for id in ids {
        if out.len() >= count || id > end {
            break;
        }
        let n = &g.pel[&id];
        let idle = (now - n.delivery_time as i64).max(0);
        if min_idle != 0 && now - (n.delivery_time as i64) < min_idle {
            continue;
        }
        out.push(Reply::Array(vec![
            id_reply(id),
            bulk(&n.consumer),
            Reply::Int(idle),
            Reply::Int(n.delivery_count as i64),
        ]));
    }
    Reply::Array(out)
}

// ---- XCLAIM, XAUTOCLAIM --------------------------------------------------------------

/// An integer option of XCLAIM / XAUTOCLAIM with its own error text.
fn int_or(b: &[u8], msg: &'static str) -> Result<i64, Reply> {
    crate::protocol::parse::parse_i64(b).ok_or_else(|| Reply::err(msg))
}

/// XCLAIM key group consumer min-idle-time id [id ...] [IDLE ms] [TIME ms]
/// [RETRYCOUNT n] [FORCE] [JUSTID] [LASTID id]
fn xclaim(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let (key, group, consumer) = (&argv[1], &argv[2], &argv[3]);
    match read_stream(ctx, key) {
        Err(e) => return e,
        Ok(s) if s.is_some_and(|s| s.group(group).is_some()) => {}
        Ok(_) => return no_key_or_group(key, group),
    }
    let min_idle = match int_or(&argv[4], "ERR Invalid min-idle-time argument for XCLAIM") {
        Ok(n) => n.max(0),
        Err(e) => return e,
    };
    let mut ids = Vec::new();
    let mut j = 5;
    while j < argv.len() {
        match crate::storage::stream::parse_id(&argv[j], IdForm::STRICT) {
            Some(id) => ids.push(id),
            None => break,
        }
        j += 1;
    }
    let now = now_ms() as i64;
    let (mut force, mut justid) = (false, false);
    let mut delivery: Option<i64> = None;
    let mut retry: Option<i64> = None;
    let mut last_id = StreamId::MIN;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        let opt = &argv[j];
        if args::eq(opt, "force") {
            force = true;
        } else if args::eq(opt, "justid") {
            justid = true;
        } else if args::eq(opt, "idle") && more > 0 {
            j += 1;
            match int_or(&argv[j], "ERR Invalid IDLE option argument for XCLAIM") {
                Ok(n) => delivery = Some(now - n),
                Err(e) => return e,
            }
        } else if args::eq(opt, "time") && more > 0 {
            j += 1;
            match int_or(&argv[j], "ERR Invalid TIME option argument for XCLAIM") {
                Ok(n) => delivery = Some(n),
                Err(e) => return e,
            }
        } else if args::eq(opt, "retrycount") && more > 0 {
            j += 1;
            match int_or(
                &argv[j],
                "ERR Invalid RETRYCOUNT option argument for XCLAIM",
            ) {
                Ok(n) => retry = Some(n),
                Err(e) => return e,
            }
        } else if args::eq(opt, "lastid") && more > 0 {
            j += 1;
            match id_arg(&argv[j], IdForm::STRICT) {
                Ok(id) => last_id = id,
                Err(e) => return e,
            }
        } else {
            return Reply::error(format!("ERR Unrecognized XCLAIM option '{}'", text(opt)));
        }
        j += 1;
    }
    let delivery = match delivery {
        Some(t) if (0..=now).contains(&t) => t as u64,
        _ => now as u64,
    };
    let Ok(Some(s)) = write_stream(ctx, key) else {
        unreachable!("checked above")
    };
    let (gname, mut g) = s.take_group(group).expect("checked");
    let mut changes = 0u64;
    if last_id > g.last_id {
        g.last_id = last_id;
        changes += 1;
    }
    let mut out = Vec::new();
    let mut created = false;
    for id in ids {
        let pending = g.pel.contains_key(&id);
        if !s.contains(id) {
            // Deleted from the stream: it leaves the PEL.
            if pending {
                g.ack(id);
                changes += 1;
            }
            continue;
        }
        if !pending && !force {
            continue;
        }
        if let Some(n) = g.pel.get(&id) {
            if min_idle > 0 && now - (n.delivery_time as i64) < min_idle {
                continue;
            }
        }
        created |= g.consumer(consumer, now as u64, true).1;
        let nack = g.assign(id, consumer, delivery);
        nack.delivery_time = delivery;
        if !pending {
            // FORCE made it: a new entry starts delivered once (`streamCreateNACK`),
            // and is then counted as any claimed one.
            nack.delivery_count = 1;
        }
        match retry {
            Some(n) if n >= 0 => nack.delivery_count = n as u64,
            _ if !justid => nack.delivery_count += 1,
            _ => {}
        }
        if justid {
            out.push(id_reply(id));
        } else {
            s.range(id, id, false, |e| {
                out.push(entry_reply(&e));
                false
            });
        }
        changes += 1;
    }
    s.put_group(gname, g);
    if created {
        ctx.notify(notify::STREAM, "xgroup-createconsumer", key);
    }
    ctx.db().dirty += changes;
    Reply::Array(out)
}

/// XAUTOCLAIM key group consumer min-idle-time start [COUNT count] [JUSTID]: claim
/// idle pending entries from `start`; replies with the next start, the claimed
/// entries, and the IDs it dropped from the PEL because their entries are gone.
fn xautoclaim(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let (key, group, consumer) = (&argv[1], &argv[2], &argv[3]);
    let min_idle = match int_or(
        &argv[4],
        "ERR Invalid min-idle-time argument for XAUTOCLAIM",
    ) {
        Ok(n) => n.max(0),
        Err(e) => return e,
    };
    let start = match bound(&argv[5], 0) {
        Err(e) => return e,
        Ok((id, false)) => id,
        Ok((id, true)) => match id.incr() {
            Some(id) => id,
            None => return Reply::err("ERR invalid start ID for the interval"),
        },
    };
    let mut count: i64 = 100;
    let mut justid = false;
    let mut j = 6;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        if args::eq(&argv[j], "count") && more > 0 {
            let max = i64::MAX / 16;
            count = match crate::protocol::parse::parse_i64(&argv[j + 1]) {
                Some(n) if (1..=max).contains(&n) => n,
                _ => return Reply::err("ERR COUNT must be > 0"),
            };
            j += 1;
        } else if args::eq(&argv[j], "justid") {
            justid = true;
        } else {
            return errors::syntax();
        }
        j += 1;
    }
    // Looked up for reading first, as Redis (a miss raises `keymiss`).
    if let Err(e) = read_stream(ctx, key) {
        return e;
    }
    let (s, gname, mut g) = match group_of(ctx, key, group) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let now = now_ms();
    let mut attempts = count.saturating_mul(10);
    let candidates: Vec<StreamId> = g.pel.range(start..).map(|(id, _)| *id).collect();
    let mut next = StreamId::MIN;
    let mut claimed = Vec::new();
    let mut deleted = Vec::new();
    let mut created = false;
    let mut at = 0;
    while attempts > 0 && count > 0 && at < candidates.len() {
        attempts -= 1;
        let id = candidates[at];
        at += 1;
        if !s.contains(id) {
            g.ack(id);
            deleted.push(id_reply(id));
            count -= 1;
            continue;
        }
        let n = &g.pel[&id];
        if min_idle > 0 && (now as i64) - (n.delivery_time as i64) < min_idle {
            continue;
        }
        created |= g.consumer(consumer, now, true).1;
        let nack = g.assign(id, consumer, now);
        nack.delivery_time = now;
        if !justid {
            nack.delivery_count += 1;
        }
        if justid {
            claimed.push(id_reply(id));
        } else {
            s.range(id, id, false, |e| {
                claimed.push(entry_reply(&e));
                false
            });
        }
        count -= 1;
    }
    if let Some(id) = candidates.get(at) {
        next = *id;
    }
    let changes = (claimed.len() + deleted.len()) as u64;
    s.put_group(gname, g);
    if created {
        ctx.notify(notify::STREAM, "xgroup-createconsumer", key);
    }
    ctx.db().dirty += changes;
    Reply::Array(vec![
        id_reply(next),
        Reply::Array(claimed),
        Reply::Array(deleted),
    ])
}

/// XCLAIM and XAUTOCLAIM: an XCLAIM per entry claimed or dropped, read from the
/// group as the command left it; an XGROUP SETID when only LASTID moved the group.
fn propagate_claims(d: &mut Db, argv: &[Bytes], reply: &Reply) -> Vec<Vec<Bytes>> {
    let (key, group) = (&argv[1], &argv[2]);
    let Some(s) = stream_in(d, key) else {
        return Vec::new();
    };
    let Some(g) = s.group(group) else {
        return Vec::new();
    };
    let autoclaim = argv[0].len() == 10;
    let mut ids = Vec::new();
    match reply {
        Reply::Array(parts) if autoclaim && parts.len() == 3 => {
            ids.extend(reply_ids(&parts[1]));
            ids.extend(reply_ids(&parts[2]));
        }
        Reply::Array(_) if !autoclaim => {
            ids.extend(reply_ids(reply));
            // The IDs asked for that left the PEL because their entries are gone.
            for b in &argv[5..] {
                match crate::storage::stream::parse_id(b, IdForm::STRICT) {
                    Some(id) if !g.pel.contains_key(&id) && !s.contains(id) => ids.push(id),
                    Some(_) => {}
                    None => break,
                }
            }
        }
        _ => return Vec::new(),
    }
    if ids.is_empty() {
        return vec![setid_record(key, group, g)];
    }
    ids.into_iter()
        .map(|id| xclaim_record(key, group, g, id))
        .collect()
}

// ---- XINFO ---------------------------------------------------------------------------

fn info_stream<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Result<&'a Stream, Reply> {
    read_stream(ctx, key)?.ok_or_else(|| Reply::err(errors::NO_SUCH_KEY))
}

fn entries_read(g: &Group) -> Reply {
    if g.entries_read == INVALID_ENTRIES_READ {
        Reply::Null
    } else {
        Reply::Int(g.entries_read)
    }
}

fn lag(s: &Stream, g: &Group) -> Reply {
    s.lag(g).map_or(Reply::Null, Reply::Int)
}

fn edge_entry(s: &Stream, rev: bool) -> Reply {
    let mut out = Reply::Null;
    s.range(StreamId::MIN, StreamId::MAX, rev, |e| {
        out = entry_reply(&e);
        false
    });
    out
}

/// XINFO STREAM key [FULL [COUNT n]]
fn xinfo_stream(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let s = match info_stream(ctx, &argv[2]) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let opts = &argv[3..];
    let mut full = false;
    let mut count: i64 = 10;
    if !opts.is_empty() {
        if (opts.len() != 1 && opts.len() != 3) || !args::eq(&opts[0], "full") {
            return errors::unknown_subcommand_or_arity("XINFO", &argv[1]);
        }
        full = true;
        if opts.len() == 3 {
            if !args::eq(&opts[1], "count") {
                return errors::unknown_subcommand_or_arity("XINFO", &argv[1]);
            }
            count = match args::int(&opts[2]) {
                Ok(n) if n < 0 => 10,
                Ok(n) => n,
                Err(e) => return e,
            };
        }
    }
    let mut m = vec![
        (name("length"), Reply::Int(s.len() as i64)),
        (name("radix-tree-keys"), Reply::Int(s.node_count() as i64)),
        (name("radix-tree-nodes"), Reply::Int(s.rax_nodes() as i64)),
        (name("last-generated-id"), id_reply(s.last_id)),
        (name("max-deleted-entry-id"), id_reply(s.max_deleted_id)),
        (name("entries-added"), Reply::Int(s.entries_added as i64)),
        (name("recorded-first-entry-id"), id_reply(s.first_id)),
    ];
    if !full {
        m.push((name("groups"), Reply::Int(s.groups().count() as i64)));
        m.push((name("first-entry"), edge_entry(s, false)));
        m.push((name("last-entry"), edge_entry(s, true)));
        return Reply::Map(m);
    }
    let limit = if count == 0 {
        usize::MAX
    } else {
        count as usize
    };
    let mut entries = Vec::new();
    s.range(StreamId::MIN, StreamId::MAX, false, |e| {
        entries.push(entry_reply(&e));
        entries.len() < limit
    });
    m.push((name("entries"), Reply::Array(entries)));
    let groups = s
        .groups()
        .map(|(gname, g)| {
            let pel = g
                .pel
                .iter()
                .take(limit)
                .map(|(id, n)| {
                    Reply::Array(vec![
                        id_reply(*id),
                        bulk(&n.consumer),
                        Reply::Int(n.delivery_time as i64),
                        Reply::Int(n.delivery_count as i64),
                    ])
                })
                .collect();
            let consumers = g
                .consumers
                .iter()
                .map(|(cname, c)| {
                    let pending = c
                        .pel
                        .iter()
                        .take(limit)
                        .map(|id| {
                            let n = &g.pel[id];
                            Reply::Array(vec![
                                id_reply(*id),
                                Reply::Int(n.delivery_time as i64),
                                Reply::Int(n.delivery_count as i64),
                            ])
                        })
                        .collect();
                    Reply::Map(vec![
                        (name("name"), bulk(cname)),
                        (name("seen-time"), Reply::Int(c.seen_time as i64)),
                        (name("pel-count"), Reply::Int(c.pel.len() as i64)),
                        (name("pending"), Reply::Array(pending)),
                    ])
                })
                .collect();
            Reply::Map(vec![
                (name("name"), bulk(gname)),
                (name("last-delivered-id"), id_reply(g.last_id)),
                (name("entries-read"), entries_read(g)),
                (name("lag"), lag(s, g)),
                (name("pel-count"), Reply::Int(g.pel.len() as i64)),
                (name("pending"), Reply::Array(pel)),
                (name("consumers"), Reply::Array(consumers)),
            ])
        })
        .collect();
    m.push((name("groups"), Reply::Array(groups)));
    Reply::Map(m)
}

/// XINFO GROUPS key
fn xinfo_groups(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let s = match info_stream(ctx, &argv[2]) {
        Ok(s) => s,
        Err(e) => return e,
    };
    Reply::Array(
        s.groups()
            .map(|(gname, g)| {
                Reply::Map(vec![
                    (name("name"), bulk(gname)),
                    (name("consumers"), Reply::Int(g.consumers.len() as i64)),
                    (name("pending"), Reply::Int(g.pel.len() as i64)),
                    (name("last-delivered-id"), id_reply(g.last_id)),
                    (name("entries-read"), entries_read(g)),
                    (name("lag"), lag(s, g)),
                ])
            })
            .collect(),
    )
}

/// XINFO CONSUMERS key group
fn xinfo_consumers(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let (key, group) = (&argv[2], &argv[3]);
    let s = match info_stream(ctx, key) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let Some(g) = s.group(group) else {
        return no_group_for_key(group, key);
    };
    let now = now_ms() as i64;
    Reply::Array(
        g.consumers
            .iter()
            .map(|(cname, c)| {
                Reply::Map(vec![
                    (name("name"), bulk(cname)),
                    (name("pending"), Reply::Int(c.pel.len() as i64)),
                    (name("idle"), Reply::Int((now - c.seen_time as i64).max(0))),
                ])
            })
            .collect(),
    )
}

fn xinfo_help(_c: &mut crate::client::Client, _argv: &[Bytes]) -> Reply {
    super::config::help_reply(
        "XINFO",
        &[
            "CONSUMERS <key> <groupname>",
            "    Show consumers of <groupname>.",
            "GROUPS <key>",
            "    Show the stream consumer groups.",
            "STREAM <key> [FULL [COUNT <count>]",
            "    Show information about the stream.",
        ],
    )
}
