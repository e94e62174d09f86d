//! String commands (Redis's `t_string.c`): GET, SET and friends, counters, ranges, LCS.
//!
//! The one idea to hold: the encoding a command leaves behind is part of its contract
//! (OBJECT ENCODING shows it). Whole-value writes (SET, GETSET, MSET, APPEND to a new
//! key) go through [`StrValue::from_set`] (int / embstr / raw, as Redis's
//! `tryObjectEncoding`); in-place edits (APPEND, SETRANGE) make the value raw; the INCR
//! family stores an int; INCRBYFLOAT stores its printed result as a plain string. Values
//! changed in place keep their TTL; values replaced by a SET-like command lose it unless
//! KEEPTTL. Reads use [`Ctx::lookup_read`] (keyspace hits / misses), writes
//! [`Ctx::lookup_write`], exactly where Redis uses `lookupKeyRead` / `lookupKeyWrite`.

use super::{args, errors, propagate, Command, Ctx, Exec, Merge};
use crate::notify;
use crate::protocol::parse::parse_i64;
use crate::protocol::Reply;
use crate::storage::db::Entry;
use crate::storage::long_double::LongDouble;
use crate::storage::{StrValue, Value};
use bytes::Bytes;

pub static COMMANDS: &[Command] = &[
    Command::new(
        "get",
        2,
        "readonly fast",
        "read string fast",
        Exec::Shard(get),
    )
    .keys(1, 1, 1),
    Command::new(
        "set",
        -3,
        "write denyoom",
        "write string slow",
        Exec::Shard(set),
    )
    .keys(1, 1, 1)
    .propagate(propagate::set),
    Command::new(
        "setnx",
        3,
        "write denyoom fast",
        "write string fast",
        Exec::Shard(setnx),
    )
    .keys(1, 1, 1)
    .verbatim(),
    Command::new(
        "setex",
        4,
        "write denyoom",
        "write string slow",
        Exec::Shard(setex),
    )
    .keys(1, 1, 1)
    .propagate(propagate::setex),
    Command::new(
        "psetex",
        4,
        "write denyoom",
        "write string slow",
        Exec::Shard(psetex),
    )
    .keys(1, 1, 1)
    .propagate(propagate::setex),
    Command::new(
        "getset",
        3,
        "write denyoom fast",
        "write string fast",
        Exec::Shard(getset),
    )
    .keys(1, 1, 1)
    .propagate(propagate::getset),
    Command::new(
        "getdel",
        2,
        "write fast",
        "write string fast",
        Exec::Shard(getdel),
    )
    .keys(1, 1, 1)
    .propagate(propagate::getdel),
    Command::new(
        "getex",
        -2,
        "write fast",
        "write string fast",
        Exec::Shard(getex),
    )
    .keys(1, 1, 1)
    .propagate(propagate::deadline),
    Command::new(
        "mget",
        -2,
        "readonly fast",
        "read string fast",
        Exec::Shard(mget),
    )
    .keys(1, -1, 1)
    .split(Merge::Ordered),
    Command::new(
        "mset",
        -3,
        "write denyoom",
        "write string slow",
        Exec::Shard(mset),
    )
    .keys(1, -1, 2)
    .split(Merge::AllOk)
    .verbatim(),
    Command::new(
        "msetnx",
        -3,
        "write denyoom",
        "write string slow",
        Exec::Shard(msetnx),
    )
    .keys(1, -1, 2)
    .verbatim(),
    Command::new(
        "append",
        3,
        "write denyoom fast",
        "write string fast",
        Exec::Shard(append),
    )
    .keys(1, 1, 1)
    .verbatim(),
    Command::new(
        "strlen",
        2,
        "readonly fast",
        "read string fast",
        Exec::Shard(strlen),
    )
    .keys(1, 1, 1),
    Command::new(
        "incr",
        2,
        "write denyoom fast",
        "write string fast",
        Exec::Shard(incr),
    )
    .keys(1, 1, 1)
    .verbatim(),
    Command::new(
        "decr",
        2,
        "write denyoom fast",
        "write string fast",
        Exec::Shard(decr),
    )
    .keys(1, 1, 1)
    .verbatim(),
    Command::new(
        "incrby",
        3,
        "write denyoom fast",
        "write string fast",
        Exec::Shard(incrby),
    )
    .keys(1, 1, 1)
    .verbatim(),
    Command::new(
        "decrby",
        3,
        "write denyoom fast",
        "write string fast",
        Exec::Shard(decrby),
    )
    .keys(1, 1, 1)
    .verbatim(),
    Command::new(
        "incrbyfloat",
        3,
        "write denyoom fast",
        "write string fast",
        Exec::Shard(incrbyfloat),
    )
    .keys(1, 1, 1)
    .propagate(propagate::incrbyfloat),
    Command::new(
        "getrange",
        4,
        "readonly",
        "read string slow",
        Exec::Shard(getrange),
    )
    .keys(1, 1, 1),
    Command::new(
        "setrange",
        4,
        "write denyoom",
        "write string slow",
        Exec::Shard(setrange),
    )
    .keys(1, 1, 1)
    .verbatim(),
    Command::new(
        "substr",
        4,
        "readonly",
        "read string slow",
        Exec::Shard(getrange),
    )
    .keys(1, 1, 1),
    Command::new("lcs", -3, "readonly", "read string slow", Exec::Shard(lcs)).keys(1, 2, 1),
];

/// The string in `e`, or WRONGTYPE.
#[allow(unreachable_patterns)]
pub fn as_str(e: &Entry) -> Result<&StrValue, Reply> {
    match &e.value {
        Value::Str(s) => Ok(s),
        _ => Err(errors::wrongtype()),
    }
}

/// The string in `e` for editing, or WRONGTYPE.
#[allow(unreachable_patterns)]
pub fn as_str_mut(e: &mut Entry) -> Result<&mut StrValue, Reply> {
    match &mut e.value {
        Value::Str(s) => Ok(s),
        _ => Err(errors::wrongtype()),
    }
}

/// A string value as a bulk reply.
pub fn bulk_of(s: &StrValue) -> Reply {
    Reply::Bulk(match s {
        StrValue::Int(_) => Bytes::from(s.as_bytes().into_owned()),
        _ => Bytes::copy_from_slice(&s.as_bytes()),
    })
}

fn empty_bulk() -> Reply {
    Reply::Bulk(Bytes::new())
}

/// Read `key` as a string: `Ok(None)` if missing, WRONGTYPE if another type.
fn read_str<'c>(ctx: &'c mut Ctx, key: &[u8]) -> Result<Option<&'c StrValue>, Reply> {
    match ctx.lookup_read(key) {
        None => Ok(None),
        Some(e) => as_str(e).map(Some),
    }
}

/// Redis's `checkStringLength`: may a string grow to `size + add` bytes?
pub fn check_string_length(ctx: &Ctx, size: u64, add: u64) -> Result<(), Reply> {
    match size.checked_add(add) {
        Some(total) if total <= ctx.shard.config.proto_max_bulk_len as u64 => Ok(()),
        _ => Err(Reply::err(errors::STRING_TOO_LONG)),
    }
}

// ---------------------------------------------------------------------------------
// SET and its relatives.

/// Option flags of SET / GETEX, as Redis's `OBJ_*` flags.
mod flag {
    pub const NX: u32 = 1 << 0;
    pub const XX: u32 = 1 << 1;
    pub const GET: u32 = 1 << 2;
    pub const KEEPTTL: u32 = 1 << 3;
    pub const PERSIST: u32 = 1 << 4;
    pub const EX: u32 = 1 << 5;
    pub const PX: u32 = 1 << 6;
    pub const EXAT: u32 = 1 << 7;
    pub const PXAT: u32 = 1 << 8;
    pub const ANY_EXPIRE: u32 = EX | PX | EXAT | PXAT;
}

/// Redis's `parseExtendedStringArgumentsOrReply`: the options after SET's value
/// (`for_set`) or after GETEX's key. Every incompatible pair is a syntax error.
fn parse_set_options(opts: &[Bytes], for_set: bool) -> Result<(u32, Option<&Bytes>), Reply> {
    use flag::*;
    let mut flags = 0u32;
    let mut expire = None;
    let mut j = 0;
    while j < opts.len() {
        let opt = &opts[j][..];
        let next = opts.get(j + 1);
        let is = |lit: &str| args::eq(opt, lit);
        if is("nx") && flags & XX == 0 && for_set {
            flags |= NX;
        } else if is("xx") && flags & NX == 0 && for_set {
            flags |= XX;
        } else if is("get") && for_set {
            flags |= GET;
        } else if is("keepttl") && flags & (PERSIST | ANY_EXPIRE) == 0 && for_set {
            flags |= KEEPTTL;
        } else if is("persist") && !for_set && flags & (ANY_EXPIRE | KEEPTTL) == 0 {
            flags |= PERSIST;
        } else if let (Some(this), Some(n)) = (expire_flag(opt), next) {
            // The same unit may repeat (the last value wins); another unit may not.
            if flags & (KEEPTTL | PERSIST | (ANY_EXPIRE & !this)) != 0 {
                return Err(errors::syntax());
            }
            flags |= this;
            expire = Some(n);
            j += 1;
        } else {
            return Err(errors::syntax());
        }
        j += 1;
    }
    Ok((flags, expire))
}

fn expire_flag(opt: &[u8]) -> Option<u32> {
    [
        ("ex", flag::EX),
        ("px", flag::PX),
        ("exat", flag::EXAT),
        ("pxat", flag::PXAT),
    ]
    .into_iter()
    .find(|(lit, _)| args::eq(opt, lit))
    .map(|(_, f)| f)
}

fn invalid_expire(cmd: &str) -> Reply {
    errors::invalid_expire_time(cmd)
}

/// Redis's `getExpireMillisecondsOrReply`: the absolute deadline in unix ms.
fn expire_at_ms(now_ms: u64, flags: u32, arg: &[u8], cmd: &str) -> Result<u64, Reply> {
    let mut ms = args::int(arg)?;
    let seconds = flags & (flag::EX | flag::EXAT) != 0;
    if ms <= 0 || (seconds && ms > i64::MAX / 1000) {
        return Err(invalid_expire(cmd));
    }
    if seconds {
        ms *= 1000;
    }
    if flags & (flag::EX | flag::PX) != 0 {
        ms = ms.wrapping_add(now_ms as i64);
    }
    if ms <= 0 {
        return Err(invalid_expire(cmd));
    }
    Ok(ms as u64)
}

/// Redis's `setGenericCommand`.
#[allow(clippy::too_many_arguments)]
fn set_generic(
    ctx: &mut Ctx,
    flags: u32,
    key: &[u8],
    val: &[u8],
    expire: Option<&[u8]>,
    cmd: &str,
    ok: Reply,
    abort: Reply,
) -> Reply {
    let deadline = match expire {
        Some(arg) => match expire_at_ms(ctx.now_ms, flags, arg, cmd) {
            Ok(at) => Some(at),
            Err(e) => return e,
        },
        None => None,
    };
    let mut old = Reply::Null;
    if flags & flag::GET != 0 {
        match read_str(ctx, key) {
            Ok(Some(s)) => old = bulk_of(s),
            Ok(None) => {}
            Err(e) => return e,
        }
    }
    let found = ctx.exists(key);
    if (flags & flag::NX != 0 && found) || (flags & flag::XX != 0 && !found) {
        return if flags & flag::GET != 0 { old } else { abort };
    }
    let db = ctx.db();
    db.set(
        key,
        Value::Str(StrValue::from_set(val)),
        flags & flag::KEEPTTL != 0,
    );
    ctx.notify(notify::STRING, "set", key);
    if let Some(at) = deadline {
        // A deadline already past leaves a logically expired key, as in Redis 7.0:
        // the next access (or the active cycle) deletes it.
        ctx.db().set_expire(key, at);
        ctx.notify(notify::GENERIC, "expire", key);
    }
    if flags & flag::GET != 0 {
        old
    } else {
        ok
    }
}

/// GET key
fn get(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    match read_str(ctx, &argv[1]) {
        Ok(Some(s)) => bulk_of(s),
        Ok(None) => Reply::Null,
        Err(e) => e,
    }
}

/// SET key value [NX | XX] [GET] [EX s | PX ms | EXAT s | PXAT ms | KEEPTTL]
fn set(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let (flags, expire) = match parse_set_options(&argv[3..], true) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let expire = expire.map(|b| &b[..]);
    set_generic(
        ctx,
        flags,
        &argv[1],
        &argv[2],
        expire,
        "set",
        Reply::ok(),
        Reply::Null,
    )
}

/// SETNX key value: 1 if set, 0 if the key existed.
fn setnx(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    set_generic(
        ctx,
        flag::NX,
        &argv[1],
        &argv[2],
        None,
        "setnx",
        Reply::Int(1),
        Reply::Int(0),
    )
}

/// SETEX key seconds value
fn setex(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    set_generic(
        ctx,
        flag::EX,
        &argv[1],
        &argv[3],
        Some(&argv[2]),
        "setex",
        Reply::ok(),
        Reply::Null,
    )
}

/// PSETEX key milliseconds value
fn psetex(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    set_generic(
        ctx,
        flag::PX,
        &argv[1],
        &argv[3],
        Some(&argv[2]),
        "psetex",
        Reply::ok(),
        Reply::Null,
    )
}

/// GETSET key value: the old value; the new one replaces it and drops its TTL.
fn getset(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let old = match read_str(ctx, &argv[1]) {
        Ok(Some(s)) => bulk_of(s),
        Ok(None) => Reply::Null,
        Err(e) => return e,
    };
    ctx.db()
        .set(&argv[1], Value::Str(StrValue::from_set(&argv[2])), false);
    ctx.notify(notify::STRING, "set", &argv[1]);
    old
}

/// GETDEL key
fn getdel(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let old = match read_str(ctx, &argv[1]) {
        Ok(Some(s)) => bulk_of(s),
        Ok(None) => return Reply::Null,
        Err(e) => return e,
    };
    let lazy = ctx.shard.config.lazyfree.user_del;
    ctx.db().delete_freeing(&argv[1], lazy);
    ctx.notify(notify::GENERIC, "del", &argv[1]);
    old
}

/// GETEX key [EX s | PX ms | EXAT s | PXAT ms | PERSIST]
fn getex(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let (flags, expire) = match parse_set_options(&argv[2..], false) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let key = &argv[1][..];
    let reply = match read_str(ctx, key) {
        Ok(Some(s)) => bulk_of(s),
        Ok(None) => return Reply::Null,
        Err(e) => return e,
    };
    let now = ctx.now_ms;
    if let Some(arg) = expire {
        let at = match expire_at_ms(now, flags, arg, "getex") {
            Ok(at) => at,
            Err(e) => return e,
        };
        if flags & (flag::EXAT | flag::PXAT) != 0 && at <= now {
            ctx.db().delete_freeing(key, crate::lazyfree::lazy_expire());
            ctx.notify(notify::GENERIC, "del", key);
        } else {
            ctx.db().set_expire(key, at);
            ctx.db().dirty += 1;
            ctx.notify(notify::GENERIC, "expire", key);
        }
    } else if flags & flag::PERSIST != 0 && ctx.db().persist(key) {
        ctx.notify(notify::GENERIC, "persist", key);
    }
    reply
}

/// MGET key [key ...]: nil for missing keys and for keys of other types.
fn mget(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    Reply::Array(
        argv[1..]
            .iter()
            .map(|k| match read_str(ctx, k) {
                Ok(Some(s)) => bulk_of(s),
                _ => Reply::Null,
            })
            .collect(),
    )
}

/// MSET key value [key value ...]
fn mset(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    if argv.len().is_multiple_of(2) {
        return errors::wrong_arity("mset");
    }
    for pair in argv[1..].chunks_exact(2) {
        ctx.db()
            .set(&pair[0], Value::Str(StrValue::from_set(&pair[1])), false);
        ctx.notify(notify::STRING, "set", &pair[0]);
    }
    Reply::ok()
}

/// MSETNX key value [key value ...]: all or nothing, 1 if set.
fn msetnx(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    if argv.len().is_multiple_of(2) {
        return errors::wrong_arity("msetnx");
    }
    if argv[1..].iter().step_by(2).any(|k| ctx.exists(k)) {
        return Reply::Int(0);
    }
    for pair in argv[1..].chunks_exact(2) {
        ctx.db()
            .set(&pair[0], Value::Str(StrValue::from_set(&pair[1])), false);
        ctx.notify(notify::STRING, "set", &pair[0]);
    }
    Reply::Int(1)
}

/// APPEND key value: the new length.
fn append(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let (key, add) = (&argv[1][..], &argv[2][..]);
    let old_len = match ctx.modify(key) {
        None => {
            let v = StrValue::from_set(add);
            let len = v.len();
            ctx.db().set(key, Value::Str(v), false);
            ctx.notify(notify::STRING, "append", key);
            return Reply::Int(len as i64);
        }
        Some(e) => match as_str(e) {
            Ok(s) => s.len(),
            Err(e) => return e,
        },
    };
    if let Err(e) = check_string_length(ctx, old_len as u64, add.len() as u64) {
        return e;
    }
    let Some(Ok(s)) = ctx.modify(key).map(as_str_mut) else {
        return errors::wrongtype();
    };
    let raw = s.make_raw();
    raw.extend_from_slice(add);
    let len = raw.len();
    ctx.notify(notify::STRING, "append", key);
    Reply::Int(len as i64)
}

/// STRLEN key
fn strlen(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    match read_str(ctx, &argv[1]) {
        Ok(Some(s)) => Reply::Int(s.len() as i64),
        Ok(None) => Reply::Int(0),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------------------------
// Counters.

/// Redis's `incrDecrCommand`: add `by` to the integer at `key` (0 if missing).
fn incr_decr(ctx: &mut Ctx, key: &[u8], by: i64) -> Reply {
    // Read first, modify (one change) only once the result is known.
    let current = match ctx.lookup_write(key) {
        None => None,
        Some(e) => match as_str(e) {
            Ok(StrValue::Int(i)) => Some(*i),
            Ok(s) => match parse_i64(&s.as_bytes()) {
                Some(i) => Some(i),
                None => return errors::not_integer(),
            },
            Err(e) => return e,
        },
    };
    let old = current.unwrap_or(0);
    let Some(new) = old.checked_add(by) else {
        return Reply::err(errors::OVERFLOW);
    };
    match current {
        // In place: the key keeps its TTL.
        Some(_) => {
            if let Some(e) = ctx.modify(key) {
                e.value = Value::Str(StrValue::Int(new));
            }
        }
        None => ctx.db().set(key, Value::Str(StrValue::Int(new)), false),
    }
    ctx.notify(notify::STRING, "incrby", key);
    Reply::Int(new)
}

/// INCR key
fn incr(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    incr_decr(ctx, &argv[1], 1)
}

/// DECR key
fn decr(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    incr_decr(ctx, &argv[1], -1)
}

/// INCRBY key increment
fn incrby(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    match args::int(&argv[2]) {
        Ok(by) => incr_decr(ctx, &argv[1], by),
        Err(e) => e,
    }
}

/// DECRBY key decrement
fn decrby(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    match args::int(&argv[2]) {
        Ok(i64::MIN) => Reply::err(errors::DECREMENT_OVERFLOW),
        Ok(by) => incr_decr(ctx, &argv[1], -by),
        Err(e) => e,
    }
}

/// INCRBYFLOAT key increment: computed in (emulated) x87 long double as Redis does,
/// stored and returned as `%.17Lf` without trailing zeros.
fn incrbyfloat(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let key = &argv[1][..];
    let (exists, current) = match ctx.lookup_write(key) {
        None => (false, Some(LongDouble::ZERO)),
        Some(e) => match as_str(e) {
            Ok(StrValue::Int(i)) => (true, Some(LongDouble::from_i64(*i))),
            Ok(s) => (true, LongDouble::parse(&s.as_bytes())),
            Err(e) => return e,
        },
    };
    let (Some(current), Some(by)) = (current, LongDouble::parse(&argv[2])) else {
        return errors::not_float();
    };
    let sum = current + by;
    if !sum.is_finite() {
        return Reply::err(errors::INCREMENT_NAN);
    }
    let text = sum.to_human_string();
    let value = Value::Str(StrValue::from_bytes(text.as_bytes()));
    match ctx.modify(key) {
        Some(e) if exists => e.value = value,
        _ => ctx.db().set(key, value, false),
    }
    ctx.notify(notify::STRING, "incrbyfloat", key);
    Reply::Bulk(Bytes::from(text.into_bytes()))
}

// ---------------------------------------------------------------------------------
// Ranges.

/// GETRANGE key start end (and SUBSTR): inclusive, negative from the end, clamped.
fn getrange(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let (start, end) = match (args::int(&argv[2]), args::int(&argv[3])) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let s = match read_str(ctx, &argv[1]) {
        Ok(Some(s)) => s,
        Ok(None) => return empty_bulk(),
        Err(e) => return e,
    };
    let bytes = s.as_bytes();
    match substring(bytes.len(), start, end) {
        Some((from, to)) => Reply::bulk(&bytes[from..=to]),
        None => empty_bulk(),
    }
}

/// The inclusive byte range GETRANGE returns for a string of `len` bytes, if any.
fn substring(len: usize, mut start: i64, mut end: i64) -> Option<(usize, usize)> {
    let len = len as i64;
    if start < 0 && end < 0 && start > end {
        return None;
    }
    if start < 0 {
        start = start.wrapping_add(len);
    }
    if end < 0 {
        end = end.wrapping_add(len);
    }
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        return None;
    }
    Some((start as usize, end as usize))
}

/// SETRANGE key offset value: the new length.
fn setrange(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let (key, value) = (&argv[1][..], &argv[3][..]);
    let offset = match args::int(&argv[2]) {
        Ok(o) if o < 0 => return Reply::err(errors::OFFSET_OUT_OF_RANGE),
        Ok(o) => o as u64,
        Err(e) => return e,
    };
    // Only a non-empty value modifies the key (an empty one just reports the length).
    let old_len = match ctx.lookup_write(key) {
        None => None,
        Some(e) => match as_str(e) {
            Ok(s) => Some(s.len()),
            Err(e) => return e,
        },
    };
    if value.is_empty() {
        return Reply::Int(old_len.unwrap_or(0) as i64);
    }
    if let Err(e) = check_string_length(ctx, offset, value.len() as u64) {
        return e;
    }
    let need = offset as usize + value.len();
    if old_len.is_none() {
        // Creating the key is not a change of its own: the write below counts one,
        // as Redis's single `server.dirty++` (SETRANGE on a new key counted 2).
        let db = ctx.db();
        let dirty = db.dirty;
        db.set(key, Value::Str(StrValue::raw(Vec::new())), false);
        db.dirty = dirty;
    }
    let Some(Ok(s)) = ctx.modify(key).map(as_str_mut) else {
        return errors::wrongtype();
    };
    let raw = s.make_raw();
    if raw.len() < need {
        raw.resize(need, 0);
    }
    raw[offset as usize..need].copy_from_slice(value);
    let len = raw.len();
    ctx.notify(notify::STRING, "setrange", key);
    Reply::Int(len as i64)
}

// ---------------------------------------------------------------------------------
// LCS.

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]
fn lcs(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    // Both keys are looked up before either is type-checked, as in Redis.
    let looked: Vec<Result<Vec<u8>, Reply>> = argv[1..3]
        .iter()
        .map(|key| {
            read_str(ctx, key).map(|s| s.map_or_else(Vec::new, |s| s.as_bytes().into_owned()))
        })
        .collect();
    let mut strings = [Vec::new(), Vec::new()];
    for (slot, got) in strings.iter_mut().zip(looked) {
        match got {
            Ok(s) => *slot = s,
            Err(_) => return Reply::err(errors::LCS_NOT_STRINGS),
        }
    }
    let (mut want_len, mut want_idx, mut with_match_len) = (false, false, false);
    let mut min_match_len = 0i64;
    let mut j = 3;
    while j < argv.len() {
        let opt = &argv[j][..];
        if args::eq(opt, "idx") {
            want_idx = true;
        } else if args::eq(opt, "len") {
            want_len = true;
        } else if args::eq(opt, "withmatchlen") {
            with_match_len = true;
        } else if args::eq(opt, "minmatchlen") && j + 1 < argv.len() {
            match args::int(&argv[j + 1]) {
                Ok(v) => min_match_len = v.max(0),
                Err(e) => return e,
            }
            j += 1;
        } else {
            return errors::syntax();
        }
        j += 1;
    }
    if want_idx && want_len {
        return Reply::err(errors::LCS_LEN_AND_IDX);
    }
    let [a, b] = &strings;
    if a.len() as u64 >= u32::MAX as u64 - 1 || b.len() as u64 >= u32::MAX as u64 - 1 {
        return Reply::err(errors::LCS_STRING_TOO_LONG);
    }
    let cells = (a.len() as u64 + 1) * (b.len() as u64 + 1);
    if cells * 4 > ctx.shard.config.proto_max_bulk_len as u64 {
        return Reply::err(errors::LCS_OVER_MAX_BULK);
    }
    let Some(table) = LcsTable::build(a, b) else {
        return Reply::err(errors::LCS_NO_MEMORY);
    };
    if want_len {
        return Reply::Int(table.len() as i64);
    }
    let (text, matches) = table.walk(min_match_len as u64, with_match_len);
    if want_idx {
        Reply::Map(vec![
            (Reply::bulk_str("matches"), Reply::Array(matches)),
            (Reply::bulk_str("len"), Reply::Int(table.len() as i64)),
        ])
    } else {
        Reply::Bulk(Bytes::from(text))
    }
}

/// The dynamic-programming table of LCS lengths of every pair of prefixes.
struct LcsTable<'s> {
    a: &'s [u8],
    b: &'s [u8],
    cells: Vec<u32>,
}

impl<'s> LcsTable<'s> {
    fn build(a: &'s [u8], b: &'s [u8]) -> Option<LcsTable<'s>> {
        let w = b.len() + 1;
        let n = (a.len() + 1).checked_mul(w)?;
        let mut cells: Vec<u32> = Vec::new();
        cells.try_reserve_exact(n).ok()?;
        cells.resize(n, 0);
        for i in 1..=a.len() {
            for j in 1..=b.len() {
                cells[i * w + j] = if a[i - 1] == b[j - 1] {
                    cells[(i - 1) * w + j - 1] + 1
                } else {
                    cells[(i - 1) * w + j].max(cells[i * w + j - 1])
                };
            }
        }
        Some(LcsTable { a, b, cells })
    }
    fn at(&self, i: usize, j: usize) -> u32 {
        self.cells[i * (self.b.len() + 1) + j]
    }
    fn len(&self) -> u32 {
        self.at(self.a.len(), self.b.len())
    }

    /// Walk back from the end, as Redis does: the LCS string and the matched ranges
    /// (last first), each `[[a_start, a_end], [b_start, b_end]]` (+ length).
    fn walk(&self, min_len: u64, with_len: bool) -> (Vec<u8>, Vec<Reply>) {
        let (a, b) = (self.a, self.b);
        let mut idx = self.len() as usize;
        let mut text = vec![0u8; idx];
        let mut matches = Vec::new();
        let alen = a.len();
        let (mut a_start, mut a_end, mut b_start, mut b_end) = (alen, 0usize, 0usize, 0usize);
        let (mut i, mut j) = (a.len(), b.len());
        while i > 0 && j > 0 {
            let mut emit = false;
            if a[i - 1] == b[j - 1] {
                text[idx - 1] = a[i - 1];
                if a_start == alen {
                    (a_start, a_end, b_start, b_end) = (i - 1, i - 1, j - 1, j - 1);
                } else if a_start == i && b_start == j {
                    a_start -= 1;
                    b_start -= 1;
                } else {
                    emit = true;
                }
                if a_start == 0 || b_start == 0 {
                    emit = true;
                }
                idx -= 1;
                i -= 1;
                j -= 1;
            } else {
                if self.at(i - 1, j) > self.at(i, j - 1) {
                    i -= 1;
                } else {
                    j -= 1;
                }
                if a_start != alen {
                    emit = true;
                }
            }
            if emit {
                let match_len = (a_end - a_start + 1) as u64;
                if min_len == 0 || match_len >= min_len {
                    let mut m = vec![
                        Reply::Array(vec![Reply::Int(a_start as i64), Reply::Int(a_end as i64)]),
                        Reply::Array(vec![Reply::Int(b_start as i64), Reply::Int(b_end as i64)]),
                    ];
                    if with_len {
                        m.push(Reply::Int(match_len as i64));
                    }
                    matches.push(Reply::Array(m));
                }
                a_start = alen;
            }
        }
        (text, matches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::testing::{run, shard};
    use crate::shard::Shard;
    fn bulk(s: &str) -> Reply {
        Reply::bulk_str(s)
    }
    fn err(s: &str) -> Reply {
        Reply::error(s.to_string())
    }
    fn encoding(s: &mut Shard, key: &str) -> &'static str {
        s.dbs[0]
            .keys
            .get(key.as_bytes())
            .map(|e| e.value.encoding())
            .unwrap_or("none")
    }
    fn ttl(s: &mut Shard, key: &str) -> Option<u64> {
        s.dbs[0].expire_of(key.as_bytes())
    }

    #[test]
    fn set_option_matrix() {
        let mut s = shard();
        let syntax = err("ERR syntax error");
        for bad in [
            &["set", "k", "v", "nx", "xx"][..],
            &["set", "k", "v", "xx", "nx"],
            &["set", "k", "v", "ex", "10", "px", "100"],
            &["set", "k", "v", "ex", "10", "keepttl"],
            &["set", "k", "v", "keepttl", "pxat", "10"],
            &["set", "k", "v", "ex"],
            &["set", "k", "v", "persist"],
            &["set", "k", "v", "exat", "1", "ex", "1"],
            &["set", "k", "v", "foo"],
        ] {
            assert_eq!(run(&mut s, set, bad), syntax, "{bad:?}");
        }
        assert_eq!(
            run(&mut s, set, &["set", "k", "v", "ex", "10", "ex", "20"]),
            Reply::ok()
        );
        assert_eq!(
            run(&mut s, set, &["set", "k", "v", "nx", "nx"]),
            Reply::Null
        );
        let bad_expire = err("ERR invalid expire time in 'set' command");
        for bad in ["0", "-1", "9223372036854776"] {
            assert_eq!(run(&mut s, set, &["set", "k", "v", "ex", bad]), bad_expire);
        }
        assert_eq!(
            run(&mut s, set, &["set", "k", "v", "px", "9223372036854775807"]),
            bad_expire
        );
        assert_eq!(
            run(&mut s, set, &["set", "k", "v", "ex", "x"]),
            err("ERR value is not an integer or out of range")
        );
        // NX / XX / GET
        assert_eq!(run(&mut s, set, &["set", "n", "1", "xx"]), Reply::Null);
        assert_eq!(
            run(&mut s, set, &["set", "n", "1", "nx", "get"]),
            Reply::Null
        );
        assert_eq!(run(&mut s, set, &["set", "n", "2", "nx", "get"]), bulk("1"));
        assert_eq!(run(&mut s, get, &["get", "n"]), bulk("1"));
        assert_eq!(run(&mut s, set, &["set", "n", "3", "xx", "get"]), bulk("1"));
        assert_eq!(run(&mut s, get, &["get", "n"]), bulk("3"));
        // TTLs: EX sets, plain SET clears, KEEPTTL keeps.
        assert_eq!(
            run(&mut s, set, &["set", "t", "v", "ex", "100"]),
            Reply::ok()
        );
        let t = ttl(&mut s, "t").unwrap();
        assert!(t > crate::clock::now_ms() + 99_000);
        assert_eq!(run(&mut s, set, &["set", "t", "w", "keepttl"]), Reply::ok());
        assert_eq!(ttl(&mut s, "t"), Some(t));
        assert_eq!(run(&mut s, set, &["set", "t", "w"]), Reply::ok());
        assert_eq!(ttl(&mut s, "t"), None);
        assert_eq!(
            run(&mut s, set, &["set", "t", "w", "pxat", "1"]),
            Reply::ok()
        );
        assert_eq!(run(&mut s, get, &["get", "t"]), Reply::Null);
        // Encodings.
        run(&mut s, set, &["set", "e", "12345"]);
        assert_eq!(encoding(&mut s, "e"), "int");
        run(&mut s, set, &["set", "e", "hello"]);
        assert_eq!(encoding(&mut s, "e"), "embstr");
    }

    #[test]
    fn setex_getex_getset_getdel() {
        let mut s = shard();
        assert_eq!(
            run(&mut s, setex, &["setex", "k", "0", "v"]),
            err("ERR invalid expire time in 'setex' command")
        );
        assert_eq!(
            run(&mut s, psetex, &["psetex", "k", "-5", "v"]),
            err("ERR invalid expire time in 'psetex' command")
        );
        assert_eq!(run(&mut s, setex, &["setex", "k", "10", "v"]), Reply::ok());
        assert!(ttl(&mut s, "k").is_some());
        assert_eq!(run(&mut s, getex, &["getex", "k", "persist"]), bulk("v"));
        assert_eq!(ttl(&mut s, "k"), None);
        assert_eq!(
            run(&mut s, getex, &["getex", "k", "nx"]),
            err("ERR syntax error")
        );
        assert_eq!(
            run(&mut s, getex, &["getex", "k", "ex", "10", "persist"]),
            err("ERR syntax error")
        );
        assert_eq!(
            run(&mut s, getex, &["getex", "k", "ex", "0"]),
            err("ERR invalid expire time in 'getex' command")
        );
        assert_eq!(
            run(&mut s, getex, &["getex", "missing", "ex", "0"]),
            Reply::Null
        );
        assert_eq!(run(&mut s, getex, &["getex", "k", "px", "5000"]), bulk("v"));
        assert!(ttl(&mut s, "k").is_some());
        assert_eq!(run(&mut s, getex, &["getex", "k", "exat", "1"]), bulk("v"));
        assert!(!s.dbs[0].keys.contains_key(&b"k"[..]));
        assert_eq!(run(&mut s, getset, &["getset", "g", "1"]), Reply::Null);
        assert_eq!(run(&mut s, getset, &["getset", "g", "2"]), bulk("1"));
        assert_eq!(run(&mut s, getdel, &["getdel", "g"]), bulk("2"));
        assert_eq!(run(&mut s, getdel, &["getdel", "g"]), Reply::Null);
        assert_eq!(run(&mut s, setnx, &["setnx", "g", "1"]), Reply::Int(1));
        assert_eq!(run(&mut s, setnx, &["setnx", "g", "2"]), Reply::Int(0));
    }

    #[test]
    fn multi_key() {
        let mut s = shard();
        assert_eq!(
            run(&mut s, mset, &["mset", "a", "1", "b", "2"]),
            Reply::ok()
        );
        assert_eq!(
            run(&mut s, mset, &["mset", "a", "1", "b"]),
            err("ERR wrong number of arguments for 'mset' command")
        );
        assert_eq!(
            run(&mut s, mget, &["mget", "a", "x", "b"]),
            Reply::Array(vec![bulk("1"), Reply::Null, bulk("2")])
        );
        assert_eq!(
            run(&mut s, msetnx, &["msetnx", "c", "1", "a", "2"]),
            Reply::Int(0)
        );
        assert_eq!(run(&mut s, get, &["get", "c"]), Reply::Null);
        assert_eq!(
            run(&mut s, msetnx, &["msetnx", "c", "1", "d", "2"]),
            Reply::Int(1)
        );
        assert_eq!(s.stats.keyspace_misses, 2);
    }

    #[test]
    fn append_strlen_setrange_getrange() {
        let mut s = shard();
        assert_eq!(run(&mut s, append, &["append", "k", "12"]), Reply::Int(2));
        assert_eq!(encoding(&mut s, "k"), "int");
        assert_eq!(run(&mut s, append, &["append", "k", "34"]), Reply::Int(4));
        assert_eq!(encoding(&mut s, "k"), "raw");
        assert_eq!(run(&mut s, strlen, &["strlen", "k"]), Reply::Int(4));
        assert_eq!(run(&mut s, strlen, &["strlen", "nope"]), Reply::Int(0));
        assert_eq!(
            run(&mut s, setrange, &["setrange", "r", "5", ""]),
            Reply::Int(0)
        );
        assert!(!s.dbs[0].keys.contains_key(&b"r"[..]));
        assert_eq!(
            run(&mut s, setrange, &["setrange", "r", "2", "ab"]),
            Reply::Int(4)
        );
        assert_eq!(run(&mut s, get, &["get", "r"]), Reply::bulk(b"\0\0ab"));
        assert_eq!(encoding(&mut s, "r"), "raw");
        assert_eq!(
            run(&mut s, setrange, &["setrange", "r", "-1", "x"]),
            err("ERR offset is out of range")
        );
        assert_eq!(
            run(&mut s, setrange, &["setrange", "r", "536870911", "xx"]),
            err(errors::STRING_TOO_LONG)
        );
        assert_eq!(
            run(
                &mut s,
                setrange,
                &["setrange", "r", "9223372036854775807", "x"]
            ),
            err(errors::STRING_TOO_LONG)
        );
        run(&mut s, set, &["set", "h", "Hello World"]);
        let gr = |s: &mut Shard, a: &str, b: &str| run(s, getrange, &["getrange", "h", a, b]);
        assert_eq!(gr(&mut s, "0", "4"), bulk("Hello"));
        assert_eq!(gr(&mut s, "-5", "-1"), bulk("World"));
        assert_eq!(gr(&mut s, "-1", "-5"), bulk(""));
        assert_eq!(gr(&mut s, "5", "3"), bulk(""));
        assert_eq!(gr(&mut s, "0", "100"), bulk("Hello World"));
        assert_eq!(gr(&mut s, "-100", "2"), bulk("Hel"));
        assert_eq!(
            gr(&mut s, "-9223372036854775808", "9223372036854775807"),
            bulk("Hello World")
        );
        assert_eq!(gr(&mut s, "20", "30"), bulk(""));
        assert_eq!(
            gr(&mut s, "a", "30"),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            run(&mut s, getrange, &["getrange", "none", "0", "1"]),
            bulk("")
        );
        run(&mut s, set, &["set", "i", "12345"]);
        assert_eq!(
            run(&mut s, getrange, &["getrange", "i", "1", "2"]),
            bulk("23")
        );
        run(&mut s, set, &["set", "empty", ""]);
        assert_eq!(
            run(&mut s, getrange, &["getrange", "empty", "0", "-1"]),
            bulk("")
        );
    }

    #[test]
    fn counters() {
        let mut s = shard();
        assert_eq!(run(&mut s, incr, &["incr", "c"]), Reply::Int(1));
        assert_eq!(run(&mut s, incrby, &["incrby", "c", "10"]), Reply::Int(11));
        assert_eq!(run(&mut s, decrby, &["decrby", "c", "20"]), Reply::Int(-9));
        assert_eq!(run(&mut s, decr, &["decr", "c"]), Reply::Int(-10));
        assert_eq!(encoding(&mut s, "c"), "int");
        assert_eq!(
            run(&mut s, decrby, &["decrby", "c", "-9223372036854775808"]),
            err("ERR decrement would overflow")
        );
        run(&mut s, set, &["set", "c", "9223372036854775807"]);
        assert_eq!(
            run(&mut s, incr, &["incr", "c"]),
            err("ERR increment or decrement would overflow")
        );
        run(&mut s, set, &["set", "c", "1.5"]);
        assert_eq!(
            run(&mut s, incr, &["incr", "c"]),
            err("ERR value is not an integer or out of range")
        );
        run(&mut s, set, &["set", "t", "5", "ex", "100"]);
        run(&mut s, incr, &["incr", "t"]);
        assert!(ttl(&mut s, "t").is_some(), "INCR keeps the TTL");
        run(&mut s, append, &["append", "t", "0"]);
        assert_eq!(run(&mut s, incr, &["incr", "t"]), Reply::Int(61));
        assert_eq!(encoding(&mut s, "t"), "int");
    }

    #[test]
    fn incrbyfloat_formatting() {
        let mut s = shard();
        run(&mut s, set, &["set", "f", "10.50"]);
        assert_eq!(
            run(&mut s, incrbyfloat, &["incrbyfloat", "f", "0.1"]),
            bulk("10.6")
        );
        assert_eq!(encoding(&mut s, "f"), "embstr");
        assert_eq!(
            run(&mut s, incrbyfloat, &["incrbyfloat", "g", "5.0e3"]),
            bulk("5000")
        );
        assert_eq!(encoding(&mut s, "g"), "embstr");
        assert_eq!(
            run(
                &mut s,
                incrbyfloat,
                &["incrbyfloat", "g", "3.0000000000000000001e+20"]
            ),
            bulk("300000000000000004992")
        );
        assert_eq!(
            run(&mut s, incrbyfloat, &["incrbyfloat", "g", "abc"]),
            err("ERR value is not a valid float")
        );
        assert_eq!(
            run(&mut s, incrbyfloat, &["incrbyfloat", "g", "inf"]),
            err("ERR increment would produce NaN or Infinity")
        );
        run(&mut s, set, &["set", "x", "notnum"]);
        assert_eq!(
            run(&mut s, incrbyfloat, &["incrbyfloat", "x", "1"]),
            err("ERR value is not a valid float")
        );
        run(&mut s, set, &["set", "i", "3", "ex", "100"]);
        assert_eq!(
            run(&mut s, incrbyfloat, &["incrbyfloat", "i", "-1.5"]),
            bulk("1.5")
        );
        assert!(ttl(&mut s, "i").is_some());
        let long = run(&mut s, incrbyfloat, &["incrbyfloat", "big", "1e50"]);
        assert_eq!(
            long,
            bulk("100000000000000000003583830118858923890798487404544")
        );
        assert_eq!(encoding(&mut s, "big"), "raw");
    }

    #[test]
    fn lcs_outputs() {
        let mut s = shard();
        run(&mut s, mset, &["mset", "a", "ohmytext", "b", "mynewtext"]);
        assert_eq!(run(&mut s, lcs, &["lcs", "a", "b"]), bulk("mytext"));
        assert_eq!(run(&mut s, lcs, &["lcs", "a", "b", "len"]), Reply::Int(6));
        let range = |a: i64, b: i64| Reply::Array(vec![Reply::Int(a), Reply::Int(b)]);
        assert_eq!(
            run(&mut s, lcs, &["lcs", "a", "b", "idx"]),
            Reply::Map(vec![
                (
                    bulk("matches"),
                    Reply::Array(vec![
                        Reply::Array(vec![range(4, 7), range(5, 8)]),
                        Reply::Array(vec![range(2, 3), range(0, 1)]),
                    ])
                ),
                (bulk("len"), Reply::Int(6)),
            ])
        );
        assert_eq!(
            run(
                &mut s,
                lcs,
                &["lcs", "a", "b", "idx", "minmatchlen", "4", "withmatchlen"]
            ),
            Reply::Map(vec![
                (
                    bulk("matches"),
                    Reply::Array(vec![Reply::Array(vec![
                        range(4, 7),
                        range(5, 8),
                        Reply::Int(4)
                    ])])
                ),
                (bulk("len"), Reply::Int(6)),
            ])
        );
        assert_eq!(
            run(&mut s, lcs, &["lcs", "a", "b", "idx", "len"]),
            err("ERR If you want both the length and indexes, please just use IDX.")
        );
        assert_eq!(
            run(&mut s, lcs, &["lcs", "a", "b", "foo"]),
            err("ERR syntax error")
        );
        assert_eq!(
            run(&mut s, lcs, &["lcs", "a", "b", "minmatchlen"]),
            err("ERR syntax error")
        );
        assert_eq!(run(&mut s, lcs, &["lcs", "a", "zz"]), bulk(""));
    }
}
