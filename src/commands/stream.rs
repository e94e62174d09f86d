//! Stream commands (Redis's `t_stream.c`): XADD, XRANGE, XREVRANGE, XLEN, XDEL,
//! XTRIM, XSETID, XREAD.
//!
//! The data structure is [`crate::storage::stream`]; this file parses arguments, gives
//! Redis 7.0's replies and errors, and says how each write is propagated. The one
//! idea to hold: what a replica or the AOF replays must give the same stream, so XADD
//! propagates the ID it generated and an approximate trim (`~`) as the exact length
//! or first ID it left ([`propagate_xadd`], [`propagate_xtrim`]).
//!
//! XREAD BLOCK blocks through `runtime::blocking` like BLPOP: when it is registered,
//! its `$` IDs become the streams' last IDs on their shard ([`for_blocking`]), so a
//! later XADD there serves it, and every blocked reader whose ID is below the new
//! entry is served (readers do not consume).
//!
//! Consumer groups (XGROUP, XREADGROUP, XACK, XPENDING, XCLAIM, XAUTOCLAIM) and XINFO
//! are in `stream_groups.rs`.

use super::{args, errors, Blocking, Command, Ctx, Exec};
use crate::notify;
use crate::protocol::parse::parse_i64;
use crate::protocol::Reply;
use crate::storage::listpack::LpEntry;
use crate::storage::stream::{
    parse_add_id, parse_id, Entry, IdForm, NodeLimits, Stream, StreamId, Trim, TrimTo,
    LISTPACK_MAX_SIZE,
};
use crate::storage::{Db, Value};
use bytes::{BufMut, Bytes, BytesMut};

pub static COMMANDS: &[Command] = &[
    Command::new(
        "xadd",
        -5,
        "write denyoom fast",
        "write stream fast",
        Exec::Shard(xadd),
    )
    .keys(1, 1, 1)
    .propagate(propagate_xadd),
    Command::new(
        "xrange",
        -4,
        "readonly",
        "read stream slow",
        Exec::Shard(xrange),
    )
    .keys(1, 1, 1),
    Command::new(
        "xrevrange",
        -4,
        "readonly",
        "read stream slow",
        Exec::Shard(xrevrange),
    )
    .keys(1, 1, 1),
    Command::new(
        "xlen",
        2,
        "readonly fast",
        "read stream fast",
        Exec::Shard(xlen),
    )
    .keys(1, 1, 1),
    Command::new(
        "xdel",
        -3,
        "write fast",
        "write stream fast",
        Exec::Shard(xdel),
    )
    .keys(1, 1, 1)
    .verbatim(),
    Command::new(
        "xtrim",
        -4,
        "write",
        "write stream slow",
        Exec::Shard(xtrim),
    )
    .keys(1, 1, 1)
    .propagate(propagate_xtrim),
    Command::new(
        "xsetid",
        -3,
        "write denyoom fast",
        "write stream fast",
        Exec::Shard(xsetid),
    )
    .keys(1, 1, 1)
    .verbatim(),
    Command::new(
        "xread",
        -4,
        "readonly blocking movablekeys",
        "read stream slow blocking",
        Exec::Shard(xread),
    )
    .find_keys(xread_keys)
    .blocking(Blocking::STREAM),
];

/// `XREAD_BLOCKED_DEFAULT_COUNT`: a blocked reader served without COUNT gets this many.
const BLOCKED_DEFAULT_COUNT: &str = "1000";

const INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";

fn invalid_id() -> Reply {
    Reply::err(INVALID_ID)
}

pub(super) fn id_arg(b: &[u8], form: IdForm) -> Result<StreamId, Reply> {
    parse_id(b, form).ok_or_else(invalid_id)
}

pub(super) fn id_reply(id: StreamId) -> Reply {
    Reply::Bulk(Bytes::from(id.to_text()))
}

fn lp_bulk(e: &LpEntry<'_>) -> Reply {
    match e {
        LpEntry::Str(s) => Reply::Bulk(Bytes::copy_from_slice(s)),
        LpEntry::Int(_) => Reply::Bulk(Bytes::from(e.to_vec())),
    }
}

/// One entry as replies show it: `[id, [field, value, ...]]`.
pub(super) fn entry_reply(e: &Entry<'_>) -> Reply {
    let mut fv = Vec::with_capacity(2 * e.fields.len());
    for (f, v) in &e.fields {
        fv.push(lp_bulk(f));
        fv.push(lp_bulk(v));
    }
    Reply::Array(vec![id_reply(e.id), Reply::Array(fv)])
}

/// Entries from `start` to `end` (reverse: from `end` down to `start`), at most
/// `count` (0: all), encoded straight into RESP: arrays of bulk strings are the same
/// bytes in RESP2 and RESP3, and a reply of many small entries then costs no
/// allocation per element (as Redis writes into its output buffer).
fn range_reply(s: &Stream, start: StreamId, end: StreamId, rev: bool, count: usize) -> Reply {
    let mut body = BytesMut::new();
    let mut n = 0;
    let mut num = itoa::Buffer::new();
    s.range(start, end, rev, |e| {
        let id = e.id.to_text();
        body.put_slice(b"*2\r\n$");
        body.put_slice(num.format(id.len()).as_bytes());
        body.put_slice(b"\r\n");
        body.put_slice(&id);
        body.put_slice(b"\r\n*");
        body.put_slice(num.format(2 * e.fields.len()).as_bytes());
        body.put_slice(b"\r\n");
        for (f, v) in &e.fields {
            raw_bulk(&mut body, f);
            raw_bulk(&mut body, v);
        }
        n += 1;
        count == 0 || n < count
    });
    let mut out = BytesMut::with_capacity(body.len() + 16);
    out.put_u8(b'*');
    out.put_slice(num.format(n).as_bytes());
    out.put_slice(b"\r\n");
    out.put_slice(&body);
    Reply::Raw(out.freeze())
}

/// `$<len>\r\n<bytes>\r\n` for a listpack element.
fn raw_bulk(out: &mut BytesMut, e: &LpEntry<'_>) {
    let mut num = itoa::Buffer::new();
    let mut int = itoa::Buffer::new();
    let s: &[u8] = match e {
        LpEntry::Str(s) => s,
        LpEntry::Int(i) => int.format(*i).as_bytes(),
    };
    out.put_u8(b'$');
    out.put_slice(num.format(s.len()).as_bytes());
    out.put_slice(b"\r\n");
    out.put_slice(s);
    out.put_slice(b"\r\n");
}

/// The stream at `key` for reading: `None` if there is none, WRONGTYPE if not a stream.
pub(super) fn read_stream<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Result<Option<&'a Stream>, Reply> {
    match ctx.lookup_read(key) {
        None => Ok(None),
        Some(e) => match &e.value {
            Value::Stream(s) => Ok(Some(s)),
            _ => Err(errors::wrongtype()),
        },
    }
}

pub(super) fn write_stream<'a>(
    ctx: &'a mut Ctx,
    key: &[u8],
) -> Result<Option<&'a mut Stream>, Reply> {
    match ctx.lookup_write(key) {
        None => Ok(None),
        Some(e) => match &mut e.value {
            Value::Stream(s) => Ok(Some(s)),
            _ => Err(errors::wrongtype()),
        },
    }
}

fn node_limits(ctx: &Ctx) -> NodeLimits {
    let e = &ctx.shard.config.encoding;
    NodeLimits {
        max_bytes: e.stream_node_max_bytes,
        max_entries: e.stream_node_max_entries,
    }
}

/// Let blocked readers of `key` look at it again (Redis's `signalKeyAsReady`).
pub(super) fn signal_ready(db: &mut Db, key: &[u8]) {
    if db.signal_ready {
        db.ready.push(Bytes::copy_from_slice(key));
    }
}

// ---- XADD / XTRIM arguments ----------------------------------------------------------

/// XADD's and XTRIM's options (`streamParseAddOrTrimArgsOrReply`).
#[derive(Default)]
struct AddTrim {
    /// XADD: the ID argument's index.
    id_at: usize,
    /// XADD: an explicit ID, and whether its sequence was given (not `ms-*`).
    id: Option<(StreamId, bool)>,
    nomkstream: bool,
    trim: Option<Trim>,
    /// Index of MAXLEN's / MINID's threshold, and whether `~` or `=` preceded it.
    trim_at: usize,
    operator: bool,
    /// Index of LIMIT's argument, if given.
    limit_at: Option<usize>,
}

/// `max_entries` is `stream-node-max-entries`, which bounds a `~` trim's work.
fn parse_add_trim(argv: &[Bytes], xadd: bool, max_entries: i64) -> Result<AddTrim, Reply> {
    let mut a = AddTrim::default();
    let mut to: Option<TrimTo> = None;
    let mut approx = false;
    let mut limit: i64 = 0;
    let mut i = 2;
    while i < argv.len() {
        let more = argv.len() - 1 - i;
        let opt = &argv[i][..];
        if xadd && opt == b"*" {
            break;
        } else if (args::eq(opt, "maxlen") || args::eq(opt, "minid")) && more > 0 {
            if to.is_some() {
                return Err(Reply::err(
                    "ERR syntax error, MAXLEN and MINID options at the same time are not compatible",
                ));
            }
            approx = false;
            a.operator = false;
            let next = &argv[i + 1][..];
            if more >= 2 && (next == b"~" || next == b"=") {
                approx = next == b"~";
                a.operator = true;
                i += 1;
            }
            let v = &argv[i + 1];
            if args::eq(opt, "maxlen") {
                let n = args::int(v)?;
                if n < 0 {
                    return Err(Reply::err("ERR The MAXLEN argument must be >= 0."));
                }
                to = Some(TrimTo::MaxLen(n as u64));
            } else {
                to = Some(TrimTo::MinId(id_arg(v, IdForm::STRICT)?));
            }
            i += 1;
            a.trim_at = i;
        } else if args::eq(opt, "limit") && more > 0 {
            limit = args::int(&argv[i + 1])?;
            if limit < 0 {
                return Err(Reply::err("ERR The LIMIT argument must be >= 0."));
            }
            a.limit_at = Some(i + 1);
            i += 1;
        } else if xadd && args::eq(opt, "nomkstream") {
            a.nomkstream = true;
        } else if xadd {
            a.id = Some(parse_add_id(opt).ok_or_else(invalid_id)?);
            break;
        } else {
            return Err(errors::syntax());
        }
        i += 1;
    }
    a.id_at = i;
    if limit != 0 && to.is_none() {
        return Err(Reply::err(
            "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy",
        ));
    }
    if !xadd && to.is_none() {
        return Err(Reply::err(
            "ERR syntax error, XTRIM must be called with a trimming strategy",
        ));
    }
    if a.limit_at.is_some() && !approx {
        return Err(Reply::err(
            "ERR syntax error, LIMIT cannot be used without the special ~ option",
        ));
    }
    let limit = if a.limit_at.is_some() {
        limit as u64
    } else if approx {
        // At most 100 nodes' worth of work per call, as Redis.
        match max_entries.saturating_mul(100) {
            n if n <= 0 => 10_000,
            n => n.min(1_000_000) as u64,
        }
    } else {
        0
    };
    a.trim = to.map(|to| Trim { to, approx, limit });
    Ok(a)
}

/// XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]] *|id field value
/// [field value ...]
fn xadd(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let a = match parse_add_trim(argv, true, node_limits(ctx).max_entries) {
        Ok(a) => a,
        Err(e) => return e,
    };
    let pairs = &argv[(a.id_at + 1).min(argv.len())..];
    if pairs.len() < 2 || !pairs.len().is_multiple_of(2) {
        return errors::wrong_arity("xadd");
    }
    if let Some((id, true)) = a.id {
        if id.is_zero() {
            return Reply::err("ERR The ID specified in XADD must be greater than 0-0");
        }
    }
    let key = &argv[1];
    let limits = node_limits(ctx);
    let now = ctx.now_ms;
    let created = match write_stream(ctx, key) {
        Err(e) => return e,
        Ok(Some(_)) => false,
        Ok(None) if a.nomkstream => return Reply::Null,
        Ok(None) => true,
    };
    let mut fresh = Stream::new();
    let s: &mut Stream = if created {
        &mut fresh
    } else {
        match write_stream(ctx, key) {
            Ok(Some(s)) => s,
            _ => unreachable!("checked above"),
        }
    };
    if s.last_id == StreamId::MAX {
        return Reply::err(
            "ERR The stream has exhausted the last possible ID, unable to add more items",
        );
    }
    let id = match a.id {
        None => s.next_id(now),
        Some((id, true)) => Some(id),
        Some((id, false)) if id.ms == s.last_id.ms => {
            if s.last_id.seq == u64::MAX {
                None
            } else {
                Some(StreamId::new(id.ms, s.last_id.seq + 1))
            }
        }
        Some((id, false)) => Some(id),
    };
    let Some(id) = id.filter(|id| *id > s.last_id) else {
        return Reply::err(
            "ERR The ID specified in XADD is equal or smaller than the target stream top item",
        );
    };
    if pairs.iter().map(|p| p.len()).sum::<usize>() > LISTPACK_MAX_SIZE {
        return Reply::err("ERR Elements are too large to be stored");
    }
    s.append(id, pairs, limits);
    let trimmed = a.trim.map_or(0, |t| s.trim(t));
    let before = ctx.db().dirty;
    if created {
        ctx.db().set(key, Value::Stream(Box::new(fresh)), false);
    }
    ctx.db().dirty = before + 1;
    ctx.notify(notify::STREAM, "xadd", key);
    if trimmed > 0 {
        ctx.notify(notify::STREAM, "xtrim", key);
    }
    signal_ready(ctx.db(), key);
    id_reply(id)
}

/// The stream at `key` as it is now (for propagation rules).
pub(super) fn stream_in<'a>(d: &'a mut Db, key: &[u8]) -> Option<&'a Stream> {
    match d.keys.get(key).map(|e| &e.value) {
        Some(Value::Stream(s)) => Some(s),
        _ => None,
    }
}

/// The threshold an approximate trim propagates as: the length it left (MAXLEN) or
/// the first ID, tombstones included (MINID).
fn exact_threshold(s: &Stream, maxlen: bool) -> Bytes {
    if maxlen {
        Bytes::from(s.len().to_string())
    } else {
        let first = s.edge_id(true, false).unwrap_or(StreamId::MAX);
        Bytes::from(first.to_text())
    }
}

/// `argv` with an approximate trim made exact, as `streamRewriteApproxSpecifier` and
/// `streamRewriteTrimArgument`; LIMIT is dropped (an exact trim takes none).
fn exact_trim_argv(s: &Stream, argv: &[Bytes], a: &AddTrim, id: Option<Bytes>) -> Vec<Bytes> {
    let mut out = argv.to_vec();
    if let (Some(t), true) = (a.trim, a.operator) {
        if t.approx {
            out[a.trim_at - 1] = Bytes::from_static(b"=");
            out[a.trim_at] = exact_threshold(s, matches!(t.to, TrimTo::MaxLen(_)));
        }
    }
    if let Some(id) = id {
        out[a.id_at] = id;
    }
    if let Some(at) = a.limit_at {
        out.drain(at - 1..=at);
    }
    out
}

/// XADD propagates the ID it added (not `*` or `ms-*`) and an exact trim.
fn propagate_xadd(d: &mut Db, argv: &[Bytes], reply: &Reply) -> Vec<Vec<Bytes>> {
    let Reply::Bulk(id) = reply else {
        return vec![argv.to_vec()];
    };
    let a = match parse_add_trim_for_rewrite(argv, true) {
        Some(a) => a,
        None => return vec![argv.to_vec()],
    };
    let Some(s) = stream_in(d, &argv[1]) else {
        return vec![argv.to_vec()];
    };
    vec![exact_trim_argv(s, argv, &a, Some(id.clone()))]
}

/// XTRIM with `~` propagates the exact trim it did.
fn propagate_xtrim(d: &mut Db, argv: &[Bytes], _reply: &Reply) -> Vec<Vec<Bytes>> {
    let (Some(a), Some(s)) = (
        parse_add_trim_for_rewrite(argv, false),
        stream_in(d, &argv[1]),
    ) else {
        return vec![argv.to_vec()];
    };
    vec![exact_trim_argv(s, argv, &a, None)]
}

/// The option positions of a command that already ran (so parsed fine); the node
/// limits play no part in them.
fn parse_add_trim_for_rewrite(argv: &[Bytes], xadd: bool) -> Option<AddTrim> {
    parse_add_trim(argv, xadd, 100).ok()
}

/// XTRIM key MAXLEN|MINID [=|~] threshold [LIMIT count]
fn xtrim(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let a = match parse_add_trim(argv, false, node_limits(ctx).max_entries) {
        Ok(a) => a,
        Err(e) => return e,
    };
    let key = &argv[1];
    let deleted = match write_stream(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::Int(0),
        Ok(Some(s)) => s.trim(a.trim.expect("XTRIM has a strategy")),
    };
    if deleted > 0 {
        ctx.notify(notify::STREAM, "xtrim", key);
        ctx.db().dirty += deleted;
    }
    Reply::Int(deleted as i64)
}

// ---- reads ---------------------------------------------------------------------------

fn xrange(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    range_command(ctx, argv, false)
}

fn xrevrange(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    range_command(ctx, argv, true)
}

/// An interval bound and whether `(` excludes it (`streamParseIntervalIDOrReply`).
pub(super) fn bound(b: &[u8], missing_seq: u64) -> Result<(StreamId, bool), Reply> {
    if b.len() > 1 && b[0] == b'(' {
        let form = IdForm {
            strict: true,
            missing_seq,
        };
        Ok((id_arg(&b[1..], form)?, true))
    } else {
        Ok((id_arg(b, IdForm::loose(missing_seq))?, false))
    }
}

/// XRANGE key start end [COUNT n] / XREVRANGE key end start [COUNT n]
fn range_command(ctx: &mut Ctx, argv: &[Bytes], rev: bool) -> Reply {
    let (start_arg, end_arg) = if rev {
        (&argv[3], &argv[2])
    } else {
        (&argv[2], &argv[3])
    };
    let start = match bound(start_arg, 0) {
        Err(e) => return e,
        Ok((id, false)) => id,
        Ok((id, true)) => match id.incr() {
            Some(id) => id,
            None => return Reply::err("ERR invalid start ID for the interval"),
        },
    };
    let end = match bound(end_arg, u64::MAX) {
        Err(e) => return e,
        Ok((id, false)) => id,
        Ok((id, true)) => match id.decr() {
            Some(id) => id,
            None => return Reply::err("ERR invalid end ID for the interval"),
        },
    };
    let mut count: i64 = -1;
    let mut j = 4;
    while j < argv.len() {
        if args::eq(&argv[j], "count") && j + 1 < argv.len() {
            count = match args::int(&argv[j + 1]) {
                Ok(n) => n.max(0),
                Err(e) => return e,
            };
            j += 2;
        } else {
            return errors::syntax();
        }
    }
    let s = match read_stream(ctx, &argv[1]) {
        Err(e) => return e,
        Ok(None) => return Reply::Array(Vec::new()),
        Ok(Some(s)) => s,
    };
    if count == 0 {
        return Reply::NullArray;
    }
    range_reply(s, start, end, rev, count.max(0) as usize)
}

fn xlen(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    match read_stream(ctx, &argv[1]) {
        Err(e) => e,
        Ok(None) => Reply::Int(0),
        Ok(Some(s)) => Reply::Int(s.len() as i64),
    }
}

/// XDEL key id [id ...]
fn xdel(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let key = &argv[1];
    // The key first: a missing one answers 0 whatever the IDs (as Redis).
    match write_stream(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::Int(0),
        Ok(Some(_)) => {}
    }
    let ids: Vec<StreamId> = match argv[2..]
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
    let mut deleted = 0u64;
    let mut first = false;
    for id in ids {
        if s.delete(id) {
            first |= id == s.first_id;
            if id > s.max_deleted_id {
                s.max_deleted_id = id;
            }
            deleted += 1;
        }
    }
    if deleted > 0 {
        if s.is_empty() {
            s.first_id = StreamId::MIN;
        } else if first {
            s.first_id = s.edge_id(true, true).unwrap_or(StreamId::MAX);
        }
        ctx.notify(notify::STREAM, "xdel", key);
        ctx.db().dirty += deleted;
    }
    Reply::Int(deleted as i64)
}

/// XSETID key last-id [ENTRIESADDED entries-added] [MAXDELETEDID max-deleted-id]
fn xsetid(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let id = match id_arg(&argv[2], IdForm::STRICT) {
        Ok(id) => id,
        Err(e) => return e,
    };
    let mut entries_added: i64 = -1;
    let mut max_deleted = StreamId::MIN;
    let mut i = 3;
    while i < argv.len() {
        let more = argv.len() - 1 - i;
        if args::eq(&argv[i], "entriesadded") && more > 0 {
            entries_added = match args::int(&argv[i + 1]) {
                Ok(n) if n < 0 => return Reply::err("ERR entries_added must be positive"),
                Ok(n) => n,
                Err(e) => return e,
            };
        } else if args::eq(&argv[i], "maxdeletedid") && more > 0 {
            max_deleted = match id_arg(&argv[i + 1], IdForm::STRICT) {
                Ok(m) if id < m => {
                    return Reply::err(
                        "ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id",
                    )
                }
                Ok(m) => m,
                Err(e) => return e,
            };
        } else {
            return errors::syntax();
        }
        i += 2;
    }
    let key = &argv[1];
    let s = match write_stream(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::err(errors::NO_SUCH_KEY),
        Ok(Some(s)) => s,
    };
    if !s.is_empty() {
        if id < s.last_valid_id() {
            return Reply::err(
                "ERR The ID specified in XSETID is smaller than the target stream top item",
            );
        }
        if entries_added != -1 && s.len() > entries_added as u64 {
            return Reply::err(
                "ERR The entries_added specified in XSETID is smaller than the target stream length",
            );
        }
    }
    s.last_id = id;
    if entries_added != -1 {
        s.entries_added = entries_added as u64;
    }
    if !max_deleted.is_zero() {
        s.max_deleted_id = max_deleted;
    }
    ctx.db().dirty += 1;
    ctx.notify(notify::STREAM, "xsetid", key);
    crate::protocol::reply::OK
}

// ---- XREAD ---------------------------------------------------------------------------

/// XREAD's and XREADGROUP's options, read the way `xreadCommand` reads them.
pub(super) struct ReadArgs {
    pub count: usize,
    pub block: Option<u64>,
    /// Index of the first key.
    pub streams: usize,
    /// Number of keys (as many IDs follow).
    pub n: usize,
    /// XREADGROUP's GROUP group consumer.
    pub group: Option<(Bytes, Bytes)>,
    pub noack: bool,
}

/// True for XREADGROUP's argv (Redis tells the two apart by the name's length).
pub fn is_readgroup(argv: &[Bytes]) -> bool {
    argv[0].len() == 10
}

pub(super) fn parse_read(argv: &[Bytes]) -> Result<ReadArgs, Reply> {
    let readgroup = is_readgroup(argv);
    let mut r = ReadArgs {
        count: 0,
        block: None,
        streams: 0,
        n: 0,
        group: None,
        noack: false,
    };
    let mut i = 1;
    while i < argv.len() {
        let more = argv.len() - i - 1;
        let o = &argv[i];
        if args::eq(o, "block") && more > 0 {
            i += 1;
            r.block = Some(block_ms(&argv[i])?);
        } else if args::eq(o, "count") && more > 0 {
            i += 1;
            r.count = args::int(&argv[i])?.max(0) as usize;
        } else if args::eq(o, "streams") && more > 0 {
            r.streams = i + 1;
            let rest = argv.len() - r.streams;
            if !rest.is_multiple_of(2) {
                return Err(Reply::err(
                    "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.",
                ));
            }
            r.n = rest / 2;
            break;
        } else if args::eq(o, "group") && more >= 2 {
            if !readgroup {
                return Err(Reply::err(
                    "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            r.group = Some((argv[i + 1].clone(), argv[i + 2].clone()));
            i += 2;
        } else if args::eq(o, "noack") {
            if !readgroup {
                return Err(Reply::err(
                    "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            r.noack = true;
        } else {
            return Err(errors::syntax());
        }
        i += 1;
    }
    if r.streams == 0 {
        return Err(errors::syntax());
    }
    if readgroup && r.group.is_none() {
        return Err(Reply::err("ERR Missing GROUP option for XREADGROUP"));
    }
    Ok(r)
}

/// BLOCK's milliseconds (`getTimeoutFromObjectOrReply` in milliseconds).
fn block_ms(b: &[u8]) -> Result<u64, Reply> {
    let ms =
        parse_i64(b).ok_or_else(|| Reply::err("ERR timeout is not an integer or out of range"))?;
    if ms < 0 {
        return Err(Reply::err("ERR timeout is negative"));
    }
    Ok(super::args::forever_if_past_the_end(ms))
}

/// XREAD's keys: those between STREAMS and the IDs (`xreadGetKeys`).
pub(super) fn xread_keys(argv: &[Bytes]) -> Vec<usize> {
    let mut i = 1;
    let mut streams = None;
    while i < argv.len() {
        let a = &argv[i];
        if args::eq(a, "block") || args::eq(a, "count") {
            i += 1;
        } else if args::eq(a, "group") {
            i += 2;
        } else if args::eq(a, "noack") {
        } else if args::eq(a, "streams") {
            streams = Some(i);
            break;
        } else {
            break;
        }
        i += 1;
    }
    let Some(at) = streams else {
        return Vec::new();
    };
    let rest = argv.len() - at - 1;
    if rest == 0 || !rest.is_multiple_of(2) {
        return Vec::new();
    }
    (at + 1..at + 1 + rest / 2).collect()
}

/// XREAD [COUNT count] [BLOCK ms] STREAMS key [key ...] id [id ...]: entries above
/// each ID; a null array when there are none (the blocking attempt's "nothing").
fn xread(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let r = match parse_read(argv) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let mut ids = Vec::with_capacity(r.n);
    for i in 0..r.n {
        let key = &argv[r.streams + i];
        let id_arg_b = &argv[r.streams + r.n + i];
        let last = match read_stream(ctx, key) {
            Err(e) => return e,
            Ok(s) => s.map(|s| s.last_id),
        };
        if &id_arg_b[..] == b"$" {
            ids.push(last.unwrap_or(StreamId::MIN));
        } else if &id_arg_b[..] == b">" {
            return Reply::err(
                "ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.",
            );
        } else {
            match id_arg(id_arg_b, IdForm::STRICT) {
                Ok(id) => ids.push(id),
                Err(e) => return e,
            }
        }
    }
    let mut out = Vec::new();
    for (i, gt) in ids.into_iter().enumerate() {
        let key = &argv[r.streams + i];
        let Ok(Some(s)) = read_stream(ctx, key) else {
            continue;
        };
        if s.is_empty() || s.last_valid_id() <= gt {
            continue;
        }
        let Some(start) = gt.incr() else { continue };
        let entries = range_reply(s, start, StreamId::MAX, false, r.count);
        out.push((Reply::Bulk(key.clone()), entries));
    }
    if out.is_empty() {
        return Reply::NullArray;
    }
    Reply::Keyed(out)
}

/// True if this XREAD may block (it has BLOCK).
pub fn blocks(argv: &[Bytes]) -> bool {
    parse_read(argv).is_ok_and(|r| r.block.is_some())
}

/// BLOCK's timeout in ms (0: forever).
pub fn block_timeout(argv: &[Bytes]) -> u64 {
    parse_read(argv).ok().and_then(|r| r.block).unwrap_or(0)
}

/// The argv a blocked XREAD is served with on this shard, fixed when it registers:
/// `$` becomes the last ID of its stream here (0-0 if there is none), and without
/// a COUNT it reads at most 1000 entries, as Redis serves a blocked reader.
pub fn for_blocking(db: &mut Db, argv: &[Bytes]) -> Vec<Bytes> {
    let Ok(r) = parse_read(argv) else {
        return argv.to_vec();
    };
    let mut out = argv.to_vec();
    for i in 0..r.n {
        if &out[r.streams + r.n + i][..] == b"$" {
            let last = stream_in(db, &argv[r.streams + i]).map_or(StreamId::MIN, |s| s.last_id);
            out[r.streams + r.n + i] = Bytes::from(last.to_text());
        }
    }
    if r.count == 0 {
        // COUNT goes before STREAMS, where XREAD's options are.
        let at = r.streams - 1;
        out.splice(
            at..at,
            [
                Bytes::from_static(b"COUNT"),
                Bytes::from_static(BLOCKED_DEFAULT_COUNT.as_bytes()),
            ],
        );
    }
    out
}

/// A blocked XREAD served because its stream's last ID moved past the one it waits
/// after, although no entry is left there to read (an XADD that trimmed its own entry
/// away, MAXLEN 0): Redis serves it anyway, with no entries (its blocked path compares
/// the stream's last ID, where a plain XREAD compares the last entry's). `argv` is
/// the reader's, kept to the ready stream.
pub fn served_empty(db: &mut Db, argv: &[Bytes]) -> Option<Reply> {
    if is_readgroup(argv) {
        return None;
    }
    let r = parse_read(argv).ok()?;
    let key = &argv[r.streams];
    let gt = id_arg(&argv[r.streams + r.n], IdForm::STRICT).ok()?;
    let s = stream_in(db, key)?;
    (s.last_id > gt).then(|| Reply::Keyed(vec![(Reply::Bulk(key.clone()), Reply::Array(vec![]))]))
}

/// `argv` with only the streams for which `keep(key index)` holds (and their IDs).
pub fn keep_streams(argv: &[Bytes], mut keep: impl FnMut(usize) -> bool) -> Option<Vec<Bytes>> {
    let r = parse_read(argv).ok()?;
    let kept: Vec<usize> = (0..r.n).filter(|&i| keep(r.streams + i)).collect();
    if kept.is_empty() {
        return None;
    }
    let mut out = argv[..r.streams].to_vec();
    out.extend(kept.iter().map(|&i| argv[r.streams + i].clone()));
    out.extend(kept.iter().map(|&i| argv[r.streams + r.n + i].clone()));
    Some(out)
}
