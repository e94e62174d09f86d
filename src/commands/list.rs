//! List commands (Redis's `t_list.c`): pushes and pops at both ends, indexes and
//! ranges, LREM / LINSERT / LPOS, moves between lists, and the blocking variants.
//!
//! The one idea to hold: a list is never stored empty, and every command that can
//! empty one deletes its key in the same step; a new list is always stored through
//! `Db::set`, which is what wakes clients blocked on that key. Blocking commands are
//! written as their non-blocking attempt: when nothing can be served they return the
//! reply Redis gives on timeout, and the runtime turns that into waiting (re-running
//! the same handler when a key becomes ready). Dirty counts follow Redis's
//! `server.dirty` (one per element pushed or popped), except that LTRIM of a list
//! counts at least one, because Redis invalidates WATCH on it even when nothing is
//! trimmed.

use super::{args, errors, propagate, Blocking, Command, Ctx, Exec, Touch};
use crate::notify;
use crate::protocol::parse::parse_i64;
use crate::protocol::reply::RawArray;
use crate::protocol::Reply;
use crate::storage::list::{End, List};
use crate::storage::listpack::{LpEntry, Where};
use crate::storage::Value;
use bytes::Bytes;

const W_FAST: &str = "write list fast";
const W_SLOW: &str = "write list slow";
const R_FAST: &str = "read list fast";
const R_SLOW: &str = "read list slow";
const W_BLOCK: &str = "write list slow blocking";

pub static COMMANDS: &[Command] = &[
    Command::new(
        "lpush",
        -3,
        "write denyoom fast",
        W_FAST,
        Exec::Shard(lpush),
    )
    .keys(1, 1, 1)
    .verbatim(),
    Command::new(
        "rpush",
        -3,
        "write denyoom fast",
        W_FAST,
        Exec::Shard(rpush),
    )
    .keys(1, 1, 1)
    .verbatim(),
    Command::new(
        "lpushx",
        -3,
        "write denyoom fast",
        W_FAST,
        Exec::Shard(lpushx),
    )
    .keys(1, 1, 1)
    .verbatim(),
    Command::new(
        "rpushx",
        -3,
        "write denyoom fast",
        W_FAST,
        Exec::Shard(rpushx),
    )
    .keys(1, 1, 1)
    .verbatim(),
    Command::new("lpop", -2, "write fast", W_FAST, Exec::Shard(lpop))
        .keys(1, 1, 1)
        .verbatim(),
    Command::new("rpop", -2, "write fast", W_FAST, Exec::Shard(rpop))
        .keys(1, 1, 1)
        .verbatim(),
    Command::new("llen", 2, "readonly fast", R_FAST, Exec::Shard(llen)).keys(1, 1, 1),
    Command::new("lindex", 3, "readonly", R_SLOW, Exec::Shard(lindex)).keys(1, 1, 1),
    Command::new("lset", 4, "write denyoom", W_SLOW, Exec::Shard(lset))
        .keys(1, 1, 1)
        .verbatim(),
    Command::new("lrange", 4, "readonly", R_SLOW, Exec::Shard(lrange)).keys(1, 1, 1),
    Command::new("ltrim", 4, "write", W_SLOW, Exec::Shard(ltrim))
        .keys(1, 1, 1)
        .verbatim(),
    Command::new("lrem", 4, "write", W_SLOW, Exec::Shard(lrem))
        .keys(1, 1, 1)
        .verbatim(),
    Command::new("linsert", 5, "write denyoom", W_SLOW, Exec::Shard(linsert))
        .keys(1, 1, 1)
        .verbatim(),
    Command::new("lpos", -3, "readonly", R_SLOW, Exec::Shard(lpos)).keys(1, 1, 1),
    Command::new("lmove", 5, "write denyoom", W_SLOW, Exec::Shard(lmove))
        .keys(1, 2, 1)
        .verbatim(),
    Command::new(
        "rpoplpush",
        3,
        "write denyoom",
        W_SLOW,
        Exec::Shard(rpoplpush),
    )
    .keys(1, 2, 1)
    .verbatim(),
    Command::new("lmpop", -4, "write movablekeys", W_SLOW, Exec::Shard(lmpop))
        .find_keys(lmpop_keys)
        .propagate(propagate::lmpop)
        .touch(Touch::Popped),
    Command::new(
        "blpop",
        -3,
        "write noscript blocking",
        W_BLOCK,
        Exec::Shard(blpop),
    )
    .keys(1, -2, 1)
    .propagate(propagate::blocking_pop)
    .touch(Touch::Popped)
    .blocking(Blocking::POP),
    Command::new(
        "brpop",
        -3,
        "write noscript blocking",
        W_BLOCK,
        Exec::Shard(brpop),
    )
    .keys(1, -2, 1)
    .propagate(propagate::blocking_pop)
    .touch(Touch::Popped)
    .blocking(Blocking::POP),
    Command::new(
        "blmove",
        6,
        "write denyoom noscript blocking",
        W_BLOCK,
        Exec::Shard(blmove),
    )
    .keys(1, 2, 1)
    .propagate(propagate::blmove)
    .blocking(Blocking::MOVE),
    Command::new(
        "brpoplpush",
        4,
        "write denyoom noscript blocking",
        W_BLOCK,
        Exec::Shard(brpoplpush),
    )
    .keys(1, 2, 1)
    .propagate(propagate::brpoplpush)
    .blocking(Blocking::MOVE),
    Command::new(
        "blmpop",
        -5,
        "write blocking movablekeys",
        W_BLOCK,
        Exec::Shard(blmpop),
    )
    .find_keys(blmpop_keys)
    .propagate(propagate::lmpop)
    .touch(Touch::Popped)
    .blocking(Blocking::MPOP),
];

// ---- shared pieces -------------------------------------------------------------------

/// The list at `key` for writing: `None` if there is no key, WRONGTYPE if not a list.
fn write_list<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Result<Option<&'a mut List>, Reply> {
    match ctx.lookup_write(key) {
        None => Ok(None),
        Some(e) => match &mut e.value {
            Value::List(l) => Ok(Some(l)),
            _ => Err(errors::wrongtype()),
        },
    }
}

/// The list at `key` for reading (counts a keyspace hit or miss).
fn read_list<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Result<Option<&'a List>, Reply> {
    match ctx.lookup_read(key) {
        None => Ok(None),
        Some(e) => match &e.value {
            Value::List(l) => Ok(Some(l)),
            _ => Err(errors::wrongtype()),
        },
    }
}

/// Store a new list under `key` (through `Db::set`, which wakes blocked clients).
fn store_new(ctx: &mut Ctx, key: &[u8], l: List) {
    ctx.db().set(key, Value::List(Box::new(l)), false);
}

/// After a command changed lists (and raised its event): delete `key` if its list is
/// now empty (raising `del`), and make the db's dirty counter `before + changes`,
/// Redis's count for the command (the `Db::set` / `Db::remove` calls made on the way
/// count one each on their own).
fn settle(ctx: &mut Ctx, key: &[u8], now_empty: bool, before: u64, changes: usize) {
    if now_empty {
        ctx.db().delete(key);
        ctx.notify(notify::GENERIC, "del", key);
    }
    ctx.db().dirty = before + changes as u64;
}

/// Raise the event of a push at `end` of the list at `key`.
fn pushed(ctx: &Ctx, key: &[u8], end: End) {
    let name = if end == End::Head { "lpush" } else { "rpush" };
    ctx.notify(notify::LIST, name, key);
}

/// Raise the event of a pop from `end` of the list at `key`.
fn popped(ctx: &Ctx, key: &[u8], end: End) {
    let name = if end == End::Head { "lpop" } else { "rpop" };
    ctx.notify(notify::LIST, name, key);
}

fn bulk(e: LpEntry<'_>) -> Reply {
    Reply::Bulk(Bytes::from(e.to_vec()))
}

fn bulks(values: Vec<Vec<u8>>) -> Reply {
    Reply::Array(
        values
            .into_iter()
            .map(|v| Reply::Bulk(Bytes::from(v)))
            .collect(),
    )
}

/// LEFT / RIGHT (`getListPositionFromObjectOrReply`).
fn end_arg(b: &[u8]) -> Result<End, Reply> {
    if args::eq(b, "left") {
        Ok(End::Head)
    } else if args::eq(b, "right") {
        Ok(End::Tail)
    } else {
        Err(errors::syntax())
    }
}

/// An integer within `min..` (`getRangeLongFromObjectOrReply` with a message): any
/// failure, not an integer included, answers `msg`.
fn int_at_least(b: &[u8], min: i64, msg: &'static str) -> Result<i64, Reply> {
    match parse_i64(b) {
        Some(n) if n >= min => Ok(n),
        _ => Err(Reply::err(msg)),
    }
}

fn count_usize(n: i64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

// ---- pushes --------------------------------------------------------------------------

fn lpush(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    push(ctx, argv, End::Head, false)
}
fn rpush(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    push(ctx, argv, End::Tail, false)
}
fn lpushx(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    push(ctx, argv, End::Head, true)
}
fn rpushx(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    push(ctx, argv, End::Tail, true)
}

/// `pushGenericCommand`: push every element in order; the reply is the new length.
fn push(ctx: &mut Ctx, argv: &[Bytes], end: End, only_existing: bool) -> Reply {
    let key = &argv[1];
    let values = &argv[2..];
    let before = ctx.db().dirty;
    let fill = ctx.shard.config.encoding.list_max_listpack_size;
    let len = match write_list(ctx, key) {
        Err(e) => return e,
        Ok(Some(l)) => {
            values.iter().for_each(|v| l.push(v, end));
            l.len()
        }
        Ok(None) if only_existing => return Reply::Int(0),
        Ok(None) => {
            let mut l = List::new(fill);
            values.iter().for_each(|v| l.push(v, end));
            let len = l.len();
            store_new(ctx, key, l);
            len
        }
    };
    pushed(ctx, key, end);
    settle(ctx, key, false, before, values.len());
    Reply::Int(len as i64)
}

// ---- pops ----------------------------------------------------------------------------

fn lpop(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    pop(ctx, argv, End::Head)
}
fn rpop(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    pop(ctx, argv, End::Tail)
}

/// `popGenericCommand`: one element as a bulk string, or with a count an array (null
/// array for a missing key, empty array for a count of 0).
fn pop(ctx: &mut Ctx, argv: &[Bytes], end: End) -> Reply {
    if argv.len() > 3 {
        return errors::wrong_arity(if end == End::Head { "lpop" } else { "rpop" });
    }
    let count = match argv.get(2) {
        Some(b) => match int_at_least(b, 0, errors::NOT_POSITIVE) {
            Ok(n) => Some(count_usize(n)),
            Err(e) => return e,
        },
        None => None,
    };
    let key = &argv[1];
    let before = ctx.db().dirty;
    let (reply, popped, empty) = match write_list(ctx, key) {
        Err(e) => return e,
        Ok(None) if count.is_some() => return Reply::NullArray,
        Ok(None) => return Reply::Null,
        Ok(Some(_)) if count == Some(0) => return Reply::Array(Vec::new()),
        Ok(Some(l)) => match count {
            None => match l.pop(end) {
                Some(v) => (Reply::Bulk(Bytes::from(v)), 1, l.is_empty()),
                None => return Reply::Null,
            },
            Some(n) => {
                let values = l.pop_many(end, n);
                let popped = values.len();
                (bulks(values), popped, l.is_empty())
            }
        },
    };
    self::popped(ctx, key, end);
    settle(ctx, key, empty, before, popped);
    reply
}

/// Pop up to `count` from the first non-empty list among `keys` and answer
/// `[key, [elements]]` (LMPOP / BLMPOP); a null array if every list is missing.
fn mpop(ctx: &mut Ctx, keys: &[Bytes], end: End, count: usize) -> Reply {
    for key in keys {
        let before = ctx.db().dirty;
        let (values, empty) = match write_list(ctx, key) {
            Err(e) => return e,
            Ok(None) => continue,
            Ok(Some(l)) if l.is_empty() => continue,
            Ok(Some(l)) => {
                let values = l.pop_many(end, count);
                (values, l.is_empty())
            }
        };
        popped(ctx, key, end);
        settle(ctx, key, empty, before, values.len());
        return Reply::Array(vec![Reply::Bulk(key.clone()), bulks(values)]);
    }
    Reply::NullArray
}

/// LMPOP / BLMPOP's arguments after the timeout: `numkeys key... LEFT|RIGHT [COUNT n]`
/// starting at `at`; the keys, the end and the count.
fn mpop_args(argv: &[Bytes], at: usize) -> Result<(&[Bytes], End, usize), Reply> {
    let numkeys = int_at_least(&argv[at], 1, errors::NUMKEYS_NOT_POSITIVE)?;
    let first = at + 1;
    let where_idx = match count_usize(numkeys).checked_add(first) {
        Some(i) if i < argv.len() => i,
        _ => return Err(errors::syntax()),
    };
    let end = end_arg(&argv[where_idx])?;
    let mut count = None;
    let mut j = where_idx + 1;
    while j < argv.len() {
        if count.is_none() && args::eq(&argv[j], "count") && j + 1 < argv.len() {
            let n = int_at_least(&argv[j + 1], 1, errors::COUNT_NOT_POSITIVE)?;
            count = Some(count_usize(n));
            j += 2;
        } else {
            return Err(errors::syntax());
        }
    }
    Ok((&argv[first..where_idx], end, count.unwrap_or(1)))
}

fn lmpop(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    match mpop_args(argv, 1) {
        Ok((keys, end, count)) => mpop(ctx, keys, end, count),
        Err(e) => e,
    }
}

/// Keys of `numkeys key...` with numkeys at `at` (the key finder of LMPOP / BLMPOP).
fn numkeys_keys(argv: &[Bytes], at: usize) -> Vec<usize> {
    let n = match argv.get(at).and_then(|b| parse_i64(b)) {
        Some(n) if n > 0 => count_usize(n),
        _ => return Vec::new(),
    };
    let first = at + 1;
    let n = n.min(argv.len().saturating_sub(first));
    (first..first + n).collect()
}
fn lmpop_keys(argv: &[Bytes]) -> Vec<usize> {
    numkeys_keys(argv, 1)
}
fn blmpop_keys(argv: &[Bytes]) -> Vec<usize> {
    numkeys_keys(argv, 2)
}

// ---- reads ---------------------------------------------------------------------------

fn llen(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    match read_list(ctx, &argv[1]) {
        Err(e) => e,
        Ok(l) => Reply::Int(l.map_or(0, |l| l.len()) as i64),
    }
}

fn lindex(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let l = match read_list(ctx, &argv[1]) {
        Err(e) => return e,
        Ok(None) => return Reply::Null,
        Ok(Some(l)) => l,
    };
    match args::int(&argv[2]) {
        Ok(i) => l.get(i).map_or(Reply::Null, bulk),
        Err(e) => e,
    }
}

fn lrange(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let (start, stop) = match (args::int(&argv[2]), args::int(&argv[3])) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    match read_list(ctx, &argv[1]) {
        Err(e) => e,
        Ok(None) => Reply::Array(Vec::new()),
        Ok(Some(l)) => {
            // Written straight into one buffer, as Redis's output buffer holds it: no
            // `Reply` and no allocation per element.
            let (_, count) = l.range_bounds(start, stop);
            let mut out = RawArray::with_len(count);
            for e in l.range(start, stop) {
                super::push_entry(&mut out, e);
            }
            out.finish()
        }
    }
}

/// LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]
fn lpos(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let mut rank = 1i64;
    let mut count: Option<usize> = None;
    let mut maxlen = 0usize;
    let mut j = 3;
    while j < argv.len() {
        let has_value = j + 1 < argv.len();
        let opt = &argv[j];
        if args::eq(opt, "rank") && has_value {
            rank = match args::int(&argv[j + 1]) {
                Ok(0) => return Reply::err(errors::RANK_ZERO),
                Ok(r) => r,
                Err(e) => return e,
            };
        } else if args::eq(opt, "count") && has_value {
            match int_at_least(&argv[j + 1], 0, errors::COUNT_NEGATIVE) {
                Ok(n) => count = Some(count_usize(n)),
                Err(e) => return e,
            }
        } else if args::eq(opt, "maxlen") && has_value {
            match int_at_least(&argv[j + 1], 0, errors::MAXLEN_NEGATIVE) {
                Ok(n) => maxlen = count_usize(n),
                Err(e) => return e,
            }
        } else {
            return errors::syntax();
        }
        j += 2;
    }
    let l = match read_list(ctx, &argv[1]) {
        Err(e) => return e,
        Ok(None) if count.is_some() => return Reply::Array(Vec::new()),
        Ok(None) => return Reply::Null,
        Ok(Some(l)) => l,
    };
    let found = l.positions(&argv[2], rank, count.unwrap_or(1), maxlen);
    match count {
        Some(_) => Reply::Array(found.into_iter().map(|i| Reply::Int(i as i64)).collect()),
        None => found.first().map_or(Reply::Null, |&i| Reply::Int(i as i64)),
    }
}

// ---- in-place edits ------------------------------------------------------------------

fn lset(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let before = ctx.db().dirty;
    let l = match write_list(ctx, &argv[1]) {
        Err(e) => return e,
        Ok(None) => return Reply::err(errors::NO_SUCH_KEY),
        Ok(Some(l)) => l,
    };
    let index = match args::int(&argv[2]) {
        Ok(i) => i,
        Err(e) => return e,
    };
    if !l.set(index, &argv[3]) {
        return Reply::err(errors::INDEX_OUT_OF_RANGE);
    }
    ctx.notify(notify::LIST, "lset", &argv[1]);
    settle(ctx, &argv[1], false, before, 1);
    Reply::ok()
}

fn ltrim(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let (start, stop) = match (args::int(&argv[2]), args::int(&argv[3])) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let before = ctx.db().dirty;
    let (removed, empty) = match write_list(ctx, &argv[1]) {
        Err(e) => return e,
        Ok(None) => return Reply::ok(),
        Ok(Some(l)) => (l.trim(start, stop), l.is_empty()),
    };
    // Redis signals the key as modified even when nothing was trimmed (WATCH sees it).
    ctx.notify(notify::LIST, "ltrim", &argv[1]);
    settle(ctx, &argv[1], empty, before, removed.max(1));
    Reply::ok()
}

fn lrem(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let count = match args::int(&argv[2]) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let before = ctx.db().dirty;
    let (removed, empty) = match write_list(ctx, &argv[1]) {
        Err(e) => return e,
        Ok(None) => return Reply::Int(0),
        Ok(Some(l)) => (l.remove(&argv[3], count), l.is_empty()),
    };
    if removed > 0 {
        ctx.notify(notify::LIST, "lrem", &argv[1]);
    }
    settle(ctx, &argv[1], empty, before, removed);
    Reply::Int(removed as i64)
}

/// LINSERT key BEFORE|AFTER pivot element
fn linsert(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let place = if args::eq(&argv[2], "after") {
        Where::After
    } else if args::eq(&argv[2], "before") {
        Where::Before
    } else {
        return errors::syntax();
    };
    let before = ctx.db().dirty;
    let len = match write_list(ctx, &argv[1]) {
        Err(e) => return e,
        Ok(None) => return Reply::Int(0),
        Ok(Some(l)) => {
            if !l.insert(&argv[3], &argv[4], place) {
                return Reply::Int(-1);
            }
            l.len()
        }
    };
    ctx.notify(notify::LIST, "linsert", &argv[1]);
    settle(ctx, &argv[1], false, before, 1);
    Reply::Int(len as i64)
}

// ---- moves ---------------------------------------------------------------------------

fn lmove(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    match (end_arg(&argv[3]), end_arg(&argv[4])) {
        (Ok(from), Ok(to)) => move_element(ctx, &argv[1], &argv[2], from, to),
        (Err(e), _) | (_, Err(e)) => e,
    }
}

fn rpoplpush(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    move_element(ctx, &argv[1], &argv[2], End::Tail, End::Head)
}

/// `lmoveGenericCommand`: pop from `src`'s `from` end, push onto `dst`'s `to` end
/// (creating it), reply with the element; null if `src` has none. The destination's
/// type is checked only when there is something to move.
fn move_element(ctx: &mut Ctx, src: &Bytes, dst: &Bytes, from: End, to: End) -> Reply {
    let before = ctx.db().dirty;
    let fill = ctx.shard.config.encoding.list_max_listpack_size;
    match write_list(ctx, src) {
        Err(e) => return e,
        Ok(None) => return Reply::Null,
        Ok(Some(l)) if l.is_empty() => return Reply::Null,
        Ok(Some(l)) if src == dst => {
            let Some(v) = l.pop(from) else {
                return Reply::Null;
            };
            l.push(&v, to);
            // As Redis: the push's event, then the pop's.
            pushed(ctx, dst, to);
            popped(ctx, src, from);
            settle(ctx, src, false, before, 1);
            return Reply::Bulk(Bytes::from(v));
        }
        Ok(Some(_)) => {}
    }
    if let Err(e) = write_list(ctx, dst) {
        return e;
    }
    let (v, src_empty) = match write_list(ctx, src) {
        Ok(Some(l)) => match l.pop(from) {
            Some(v) => (v, l.is_empty()),
            None => return Reply::Null,
        },
        _ => return Reply::Null,
    };
    match write_list(ctx, dst) {
        Ok(Some(l)) => l.push(&v, to),
        _ => {
            let mut l = List::new(fill);
            l.push(&v, to);
            store_new(ctx, dst, l);
        }
    }
    pushed(ctx, dst, to);
    popped(ctx, src, from);
    settle(ctx, src, src_empty, before, 1);
    Reply::Bulk(Bytes::from(v))
}

// ---- blocking variants (the non-blocking attempt; the runtime does the waiting) ------

fn blpop(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    blocking_pop(ctx, argv, End::Head)
}
fn brpop(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    blocking_pop(ctx, argv, End::Tail)
}

/// BLPOP / BRPOP key... timeout: `[key, element]` from the first non-empty list, or a
/// null array (the timeout reply) when every list is missing.
fn blocking_pop(ctx: &mut Ctx, argv: &[Bytes], end: End) -> Reply {
    if let Err(e) = args::timeout_ms(&argv[argv.len() - 1]) {
        return e;
    }
    for key in &argv[1..argv.len() - 1] {
        let before = ctx.db().dirty;
        let (v, empty) = match write_list(ctx, key) {
            Err(e) => return e,
            Ok(None) => continue,
            Ok(Some(l)) => match l.pop(end) {
                Some(v) => (v, l.is_empty()),
                None => continue,
            },
        };
        popped(ctx, key, end);
        settle(ctx, key, empty, before, 1);
        return Reply::Array(vec![Reply::Bulk(key.clone()), Reply::Bulk(Bytes::from(v))]);
    }
    Reply::NullArray
}

/// BLMPOP timeout numkeys key... LEFT|RIGHT [COUNT count]
fn blmpop(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let (keys, end, count) = match mpop_args(argv, 2) {
        Ok(a) => a,
        Err(e) => return e,
    };
    if let Err(e) = args::timeout_ms(&argv[1]) {
        return e;
    }
    mpop(ctx, keys, end, count)
}

/// BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout
fn blmove(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let (from, to) = match (end_arg(&argv[3]), end_arg(&argv[4])) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    if let Err(e) = args::timeout_ms(&argv[5]) {
        return e;
    }
    move_element(ctx, &argv[1], &argv[2], from, to)
}

/// BRPOPLPUSH source destination timeout
fn brpoplpush(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    if let Err(e) = args::timeout_ms(&argv[3]) {
        return e;
    }
    move_element(ctx, &argv[1], &argv[2], End::Tail, End::Head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::testing::{run, run_resp2, shard};
    use crate::shard::Shard;

    fn bulk_s(s: &str) -> Reply {
        Reply::bulk_str(s)
    }
    fn arr(items: &[&str]) -> Reply {
        Reply::Array(items.iter().map(|s| bulk_s(s)).collect())
    }
    fn contents(s: &mut Shard, key: &str) -> Reply {
        run_resp2(s, lrange, &["lrange", key, "0", "-1"])
    }
    fn dirty(s: &mut Shard) -> u64 {
        s.dbs[0].dirty
    }

    #[test]
    fn push_pop_and_key_lifecycle() {
        let mut s = shard();
        assert_eq!(
            run(&mut s, rpush, &["rpush", "l", "a", "b", "c"]),
            Reply::Int(3)
        );
        assert_eq!(dirty(&mut s), 3);
        assert_eq!(run(&mut s, lpush, &["lpush", "l", "x", "y"]), Reply::Int(5));
        assert_eq!(contents(&mut s, "l"), arr(&["y", "x", "a", "b", "c"]));
        assert_eq!(run(&mut s, lpop, &["lpop", "l"]), bulk_s("y"));
        assert_eq!(run(&mut s, rpop, &["rpop", "l", "2"]), arr(&["c", "b"]));
        assert_eq!(run(&mut s, lpop, &["lpop", "l", "0"]), arr(&[]));
        assert_eq!(run(&mut s, lpop, &["lpop", "l", "10"]), arr(&["x", "a"]));
        assert!(s.dbs[0].keys.is_empty());
        assert_eq!(dirty(&mut s), 10);
        assert_eq!(run(&mut s, lpop, &["lpop", "l"]), Reply::Null);
        assert_eq!(run(&mut s, lpop, &["lpop", "l", "0"]), Reply::NullArray);
        assert_eq!(run(&mut s, lpushx, &["lpushx", "l", "a"]), Reply::Int(0));
        assert!(s.dbs[0].keys.is_empty());
    }

    #[test]
    fn pop_argument_errors() {
        let mut s = shard();
        let out_of_range = Reply::err(errors::NOT_POSITIVE);
        assert_eq!(run(&mut s, lpop, &["lpop", "l", "-1"]), out_of_range);
        assert_eq!(run(&mut s, lpop, &["lpop", "l", "x"]), out_of_range);
        assert_eq!(
            run(&mut s, lpop, &["lpop", "l", "1", "2"]),
            errors::wrong_arity("lpop")
        );
    }

    #[test]
    fn wrong_type_everywhere() {
        let mut s = shard();
        s.dbs[0].set(
            b"s",
            Value::Str(crate::storage::StrValue::from_set(b"v")),
            false,
        );
        let wt = errors::wrongtype();
        for (f, a) in [
            (
                lpush as fn(&mut Ctx, &[Bytes]) -> Reply,
                vec!["lpush", "s", "a"],
            ),
            (rpushx, vec!["rpushx", "s", "a"]),
            (lpop, vec!["lpop", "s"]),
            (llen, vec!["llen", "s"]),
            (lindex, vec!["lindex", "s", "0"]),
            (lset, vec!["lset", "s", "0", "a"]),
            (lrange, vec!["lrange", "s", "0", "1"]),
            (ltrim, vec!["ltrim", "s", "0", "1"]),
            (lrem, vec!["lrem", "s", "0", "a"]),
            (linsert, vec!["linsert", "s", "before", "a", "b"]),
            (lpos, vec!["lpos", "s", "a"]),
            (lmove, vec!["lmove", "s", "d", "left", "right"]),
            (lmpop, vec!["lmpop", "1", "s", "left"]),
            (blpop, vec!["blpop", "s", "0"]),
        ] {
            assert_eq!(run(&mut s, f, &a), wt, "{a:?}");
        }
    }

    #[test]
    fn index_set_range_trim() {
        let mut s = shard();
        run(&mut s, rpush, &["rpush", "l", "a", "b", "c", "d"]);
        assert_eq!(run(&mut s, lindex, &["lindex", "l", "-1"]), bulk_s("d"));
        assert_eq!(run(&mut s, lindex, &["lindex", "l", "4"]), Reply::Null);
        assert_eq!(run(&mut s, lindex, &["lindex", "nokey", "x"]), Reply::Null);
        assert_eq!(
            run(&mut s, lindex, &["lindex", "l", "x"]),
            errors::not_integer()
        );
        assert_eq!(run(&mut s, lset, &["lset", "l", "1", "B"]), Reply::ok());
        assert_eq!(
            run(&mut s, lset, &["lset", "l", "9", "B"]),
            Reply::err(errors::INDEX_OUT_OF_RANGE)
        );
        assert_eq!(
            run(&mut s, lset, &["lset", "nokey", "0", "B"]),
            Reply::err(errors::NO_SUCH_KEY)
        );
        assert_eq!(
            run_resp2(&mut s, lrange, &["lrange", "l", "1", "-2"]),
            arr(&["B", "c"])
        );
        assert_eq!(
            run(&mut s, lrange, &["lrange", "nokey", "x", "1"]),
            errors::not_integer()
        );
        assert_eq!(run(&mut s, ltrim, &["ltrim", "l", "1", "-1"]), Reply::ok());
        assert_eq!(contents(&mut s, "l"), arr(&["B", "c", "d"]));
        let d = dirty(&mut s);
        assert_eq!(run(&mut s, ltrim, &["ltrim", "l", "0", "-1"]), Reply::ok());
        assert_eq!(dirty(&mut s), d + 1, "a no-op LTRIM still touches the key");
        assert_eq!(run(&mut s, ltrim, &["ltrim", "l", "5", "1"]), Reply::ok());
        assert!(s.dbs[0].keys.is_empty());
    }

    #[test]
    fn lrem_linsert() {
        let mut s = shard();
        run(&mut s, rpush, &["rpush", "l", "a", "b", "a", "c", "a"]);
        assert_eq!(run(&mut s, lrem, &["lrem", "l", "-2", "a"]), Reply::Int(2));
        assert_eq!(contents(&mut s, "l"), arr(&["a", "b", "c"]));
        assert_eq!(
            run(&mut s, linsert, &["linsert", "l", "AFTER", "b", "x"]),
            Reply::Int(4)
        );
        assert_eq!(
            run(&mut s, linsert, &["linsert", "l", "before", "zz", "x"]),
            Reply::Int(-1)
        );
        assert_eq!(
            run(&mut s, linsert, &["linsert", "nokey", "before", "zz", "x"]),
            Reply::Int(0)
        );
        assert_eq!(
            run(&mut s, linsert, &["linsert", "l", "middle", "b", "x"]),
            errors::syntax()
        );
        assert_eq!(contents(&mut s, "l"), arr(&["a", "b", "x", "c"]));
        assert_eq!(run(&mut s, lrem, &["lrem", "l", "0", "x"]), Reply::Int(1));
        assert_eq!(
            run(&mut s, lrem, &["lrem", "nokey", "0", "x"]),
            Reply::Int(0)
        );
    }

    #[test]
    fn lpos_options_and_errors() {
        let mut s = shard();
        run(
            &mut s,
            rpush,
            &["rpush", "l", "a", "b", "c", "1", "2", "3", "c", "c"],
        );
        assert_eq!(run(&mut s, lpos, &["lpos", "l", "c"]), Reply::Int(2));
        assert_eq!(
            run(&mut s, lpos, &["lpos", "l", "c", "RANK", "-1"]),
            Reply::Int(7)
        );
        let ints = |v: &[i64]| Reply::Array(v.iter().map(|&i| Reply::Int(i)).collect());
        assert_eq!(
            run(&mut s, lpos, &["lpos", "l", "c", "COUNT", "0"]),
            ints(&[2, 6, 7])
        );
        assert_eq!(
            run(&mut s, lpos, &["lpos", "l", "c", "rank", "2", "count", "1"]),
            ints(&[6])
        );
        assert_eq!(
            run(&mut s, lpos, &["lpos", "l", "c", "maxlen", "2"]),
            Reply::Null
        );
        assert_eq!(
            run(
                &mut s,
                lpos,
                &[
                    "lpos",
                    "l",
                    "c",
                    "rank",
                    "-9223372036854775808",
                    "count",
                    "1"
                ]
            ),
            ints(&[7, 6, 2])
        );
        assert_eq!(
            run(&mut s, lpos, &["lpos", "nokey", "c", "rank", "0"]),
            Reply::err(errors::RANK_ZERO)
        );
        assert_eq!(
            run(&mut s, lpos, &["lpos", "l", "c", "count", "x"]),
            Reply::err(errors::COUNT_NEGATIVE)
        );
        assert_eq!(
            run(&mut s, lpos, &["lpos", "l", "c", "maxlen", "-1"]),
            Reply::err(errors::MAXLEN_NEGATIVE)
        );
        assert_eq!(
            run(&mut s, lpos, &["lpos", "l", "c", "count"]),
            errors::syntax()
        );
        assert_eq!(
            run(&mut s, lpos, &["lpos", "nokey", "c", "count", "1"]),
            ints(&[])
        );
        assert_eq!(run(&mut s, lpos, &["lpos", "nokey", "c"]), Reply::Null);
    }

    #[test]
    fn moves() {
        let mut s = shard();
        run(&mut s, rpush, &["rpush", "src", "a", "b"]);
        assert_eq!(
            run(&mut s, lmove, &["lmove", "src", "dst", "left", "RIGHT"]),
            bulk_s("a")
        );
        assert_eq!(
            run(&mut s, rpoplpush, &["rpoplpush", "src", "dst"]),
            bulk_s("b")
        );
        assert!(!s.dbs[0].keys.contains_key(&b"src"[..]));
        assert_eq!(contents(&mut s, "dst"), arr(&["b", "a"]));
        // Rotation of a single list, including one element.
        assert_eq!(
            run(&mut s, lmove, &["lmove", "dst", "dst", "left", "right"]),
            bulk_s("b")
        );
        assert_eq!(contents(&mut s, "dst"), arr(&["a", "b"]));
        assert_eq!(
            run(&mut s, rpoplpush, &["rpoplpush", "nokey", "dst"]),
            Reply::Null
        );
        assert_eq!(
            run(&mut s, lmove, &["lmove", "dst", "d", "up", "left"]),
            errors::syntax()
        );
        // The destination's type matters only when something moves.
        s.dbs[0].set(
            b"str",
            Value::Str(crate::storage::StrValue::from_set(b"v")),
            false,
        );
        assert_eq!(
            run(&mut s, rpoplpush, &["rpoplpush", "nokey", "str"]),
            Reply::Null
        );
        assert_eq!(
            run(&mut s, rpoplpush, &["rpoplpush", "dst", "str"]),
            errors::wrongtype()
        );
        assert_eq!(contents(&mut s, "dst"), arr(&["a", "b"]));
        let d = dirty(&mut s);
        run(&mut s, lmove, &["lmove", "dst", "new", "left", "left"]);
        assert_eq!(dirty(&mut s), d + 1);
    }

    #[test]
    fn lmpop_and_blocking_attempts() {
        let mut s = shard();
        run(&mut s, rpush, &["rpush", "b", "1", "2", "3"]);
        let popped = |k: &str, v: &[&str]| Reply::Array(vec![bulk_s(k), arr(v)]);
        assert_eq!(
            run(
                &mut s,
                lmpop,
                &["lmpop", "2", "a", "b", "right", "count", "2"]
            ),
            popped("b", &["3", "2"])
        );
        assert_eq!(
            run(&mut s, lmpop, &["lmpop", "1", "a", "left"]),
            Reply::NullArray
        );
        assert_eq!(
            run(&mut s, lmpop, &["lmpop", "0", "a", "left"]),
            Reply::err(errors::NUMKEYS_NOT_POSITIVE)
        );
        assert_eq!(
            run(&mut s, lmpop, &["lmpop", "2", "a", "left"]),
            errors::syntax()
        );
        assert_eq!(
            run(
                &mut s,
                lmpop,
                &["lmpop", "9223372036854775807", "a", "left"]
            ),
            errors::syntax()
        );
        assert_eq!(
            run(&mut s, lmpop, &["lmpop", "1", "a", "left", "count", "0"]),
            Reply::err(errors::COUNT_NOT_POSITIVE)
        );
        assert_eq!(
            run(
                &mut s,
                lmpop,
                &["lmpop", "1", "a", "left", "count", "1", "count", "1"]
            ),
            errors::syntax()
        );
        assert_eq!(
            run(
                &mut s,
                blmpop,
                &["blmpop", "0", "1", "b", "left", "count", "5"]
            ),
            popped("b", &["1"])
        );
        assert!(s.dbs[0].keys.is_empty());
        assert_eq!(
            run(&mut s, blmpop, &["blmpop", "0", "1", "b", "left"]),
            Reply::NullArray
        );
        assert_eq!(
            run(&mut s, blmpop, &["blmpop", "x", "0", "b", "left"]),
            Reply::err(errors::NUMKEYS_NOT_POSITIVE)
        );
        assert_eq!(
            run(&mut s, blpop, &["blpop", "a", "b", "0"]),
            Reply::NullArray
        );
        assert_eq!(
            run(&mut s, blpop, &["blpop", "a", "-1"]),
            Reply::err(errors::TIMEOUT_NEGATIVE)
        );
        run(&mut s, rpush, &["rpush", "b", "x", "y"]);
        assert_eq!(
            run(&mut s, brpop, &["brpop", "a", "b", "1.5"]),
            arr(&["b", "y"])
        );
        assert_eq!(
            run(&mut s, blmove, &["blmove", "a", "b", "left", "left", "0"]),
            Reply::Null
        );
        assert_eq!(
            run(&mut s, blmove, &["blmove", "b", "a", "left", "left", "0"]),
            bulk_s("x")
        );
        assert_eq!(
            run(&mut s, brpoplpush, &["brpoplpush", "b", "a", "0"]),
            Reply::Null
        );
        assert_eq!(
            run(&mut s, brpoplpush, &["brpoplpush", "a", "b", "0"]),
            bulk_s("x")
        );
        assert_eq!(
            lmpop_keys(&crate::commands::testing::argv(&[
                "lmpop", "2", "a", "b", "left"
            ])),
            [2, 3]
        );
        assert_eq!(
            blmpop_keys(&crate::commands::testing::argv(&[
                "blmpop", "0", "5", "a", "left"
            ])),
            [3, 4]
        );
        assert!(lmpop_keys(&crate::commands::testing::argv(&[
            "lmpop", "x", "a", "left"
        ]))
        .is_empty());
    }

    #[test]
    fn new_lists_follow_the_fill_at_creation() {
        let mut s = shard();
        run(&mut s, rpush, &["rpush", "l", "a"]);
        let e = s.dbs[0].keys.get(&b"l"[..]).unwrap();
        assert_eq!(e.value.encoding(), "quicklist");
        match &e.value {
            Value::List(l) => assert_eq!(l.quicklist().fill(), -2),
            _ => unreachable!(),
        }
    }
}
