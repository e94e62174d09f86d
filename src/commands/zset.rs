//! Sorted set commands (Redis's `t_zset.c`): ZADD and friends, ranges by rank, score
//! and lex, pops (blocking ones as their non-blocking attempt), random members, and the
//! set operations ZUNION / ZINTER / ZDIFF with their STORE forms and ZINTERCARD.
//!
//! The one idea to hold: each command parses and validates everything in Redis's order
//! (so the same bad input gets the same error), then calls [`ZSet`]'s API, then shapes
//! the reply. Scores go out as [`Reply::Double`] (`%.17g`, `inf`, `-inf`); member/score
//! pairs through [`pairs`], one place for the RESP2 / RESP3 shape. Results written to a
//! key (ZRANGESTORE, ZUNIONSTORE...) take the encoding 7.0 gives them, and a command
//! that empties a set deletes its key. Scores are parsed with C's `strtod` rules
//! ([`parse_score`]): hex floats are accepted, overflow is refused, as Redis does.

use super::{args, errors, propagate, random_reply, Blocking, Command, Ctx, Exec, Touch};
use crate::notify;
use crate::protocol::reply::{format_double_resp, RawArray};
use crate::protocol::Reply;
use crate::storage::glob::glob_match;
use crate::storage::listpack::LpEntry;
use crate::storage::set::Set;
use crate::storage::zset::{strtod, AddFlags, Added, LexRange, Limits, ScoreRange, ZSet};
use crate::storage::Value;
use bytes::Bytes;
use rand::Rng;
use std::collections::HashMap;

pub static COMMANDS: &[Command] = &[
    Command::new(
        "zadd",
        -4,
        "write denyoom fast",
        "write sortedset fast",
        Exec::Shard(zadd),
    )
    .keys(1, 1, 1)
    .verbatim(),
    Command::new(
        "zincrby",
        4,
        "write denyoom fast",
        "write sortedset fast",
        Exec::Shard(zincrby),
    )
    .keys(1, 1, 1)
    .verbatim(),
    Command::new(
        "zrem",
        -3,
        "write fast",
        "write sortedset fast",
        Exec::Shard(zrem),
    )
    .keys(1, 1, 1)
    .verbatim(),
    Command::new(
        "zcard",
        2,
        "readonly fast",
        "read sortedset fast",
        Exec::Shard(zcard),
    )
    .keys(1, 1, 1),
    Command::new(
        "zcount",
        4,
        "readonly fast",
        "read sortedset fast",
        Exec::Shard(zcount),
    )
    .keys(1, 1, 1),
    Command::new(
        "zlexcount",
        4,
        "readonly fast",
        "read sortedset fast",
        Exec::Shard(zlexcount),
    )
    .keys(1, 1, 1),
    Command::new(
        "zscore",
        3,
        "readonly fast",
        "read sortedset fast",
        Exec::Shard(zscore),
    )
    .keys(1, 1, 1),
    Command::new(
        "zmscore",
        -3,
        "readonly fast",
        "read sortedset fast",
        Exec::Shard(zmscore),
    )
    .keys(1, 1, 1),
    Command::new(
        "zrank",
        3,
        "readonly fast",
        "read sortedset fast",
        Exec::Shard(zrank),
    )
    .keys(1, 1, 1),
    Command::new(
        "zrevrank",
        3,
        "readonly fast",
        "read sortedset fast",
        Exec::Shard(zrevrank),
    )
    .keys(1, 1, 1),
    Command::new(
        "zrange",
        -4,
        "readonly",
        "read sortedset slow",
        Exec::Shard(zrange),
    )
    .keys(1, 1, 1),
    Command::new(
        "zrangebyscore",
        -4,
        "readonly",
        "read sortedset slow",
        Exec::Shard(zrangebyscore),
    )
    .keys(1, 1, 1),
    Command::new(
        "zrevrangebyscore",
        -4,
        "readonly",
        "read sortedset slow",
        Exec::Shard(zrevrangebyscore),
    )
    .keys(1, 1, 1),
    Command::new(
        "zrangebylex",
        -4,
        "readonly",
        "read sortedset slow",
        Exec::Shard(zrangebylex),
    )
    .keys(1, 1, 1),
    Command::new(
        "zrevrangebylex",
        -4,
        "readonly",
        "read sortedset slow",
        Exec::Shard(zrevrangebylex),
    )
    .keys(1, 1, 1),
    Command::new(
        "zrevrange",
        -4,
        "readonly",
        "read sortedset slow",
        Exec::Shard(zrevrange),
    )
    .keys(1, 1, 1),
    Command::new(
        "zrangestore",
        -5,
        "write denyoom",
        "write sortedset slow",
        Exec::Shard(zrangestore),
    )
    .keys(1, 2, 1)
    .verbatim()
    .touch(Touch::Only(1)),
    Command::new(
        "zremrangebyrank",
        4,
        "write",
        "write sortedset slow",
        Exec::Shard(zremrangebyrank),
    )
    .keys(1, 1, 1)
    .verbatim(),
    Command::new(
        "zremrangebyscore",
        4,
        "write",
        "write sortedset slow",
        Exec::Shard(zremrangebyscore),
    )
    .keys(1, 1, 1)
    .verbatim(),
    Command::new(
        "zremrangebylex",
        4,
        "write",
        "write sortedset slow",
        Exec::Shard(zremrangebylex),
    )
    .keys(1, 1, 1)
    .verbatim(),
    Command::new(
        "zpopmin",
        -2,
        "write fast",
        "write sortedset fast",
        Exec::Shard(zpopmin),
    )
    .keys(1, 1, 1)
    .verbatim(),
    Command::new(
        "zpopmax",
        -2,
        "write fast",
        "write sortedset fast",
        Exec::Shard(zpopmax),
    )
    .keys(1, 1, 1)
    .verbatim(),
    Command::new(
        "zmpop",
        -4,
        "write movablekeys",
        "write sortedset slow",
        Exec::Shard(zmpop),
    )
    .find_keys(numkeys_at_1)
    .propagate(propagate::zmpop)
    .touch(Touch::Popped),
    Command::new(
        "zrandmember",
        -2,
        "readonly",
        "read sortedset slow",
        Exec::Shard(zrandmember),
    )
    .keys(1, 1, 1),
    Command::new(
        "zunion",
        -3,
        "readonly movablekeys",
        "read sortedset slow",
        Exec::Shard(zunion),
    )
    .find_keys(numkeys_at_1),
    Command::new(
        "zinter",
        -3,
        "readonly movablekeys",
        "read sortedset slow",
        Exec::Shard(zinter),
    )
    .find_keys(numkeys_at_1),
    Command::new(
        "zdiff",
        -3,
        "readonly movablekeys",
        "read sortedset slow",
        Exec::Shard(zdiff),
    )
    .find_keys(numkeys_at_1),
    Command::new(
        "zunionstore",
        -4,
        "write denyoom movablekeys",
        "write sortedset slow",
        Exec::Shard(zunionstore),
    )
    .keys(1, 1, 1)
    .find_keys(store_numkeys_at_2)
    .verbatim()
    .touch(Touch::Only(1)),
    Command::new(
        "zinterstore",
        -4,
        "write denyoom movablekeys",
        "write sortedset slow",
        Exec::Shard(zinterstore),
    )
    .keys(1, 1, 1)
    .find_keys(store_numkeys_at_2)
    .verbatim()
    .touch(Touch::Only(1)),
    Command::new(
        "zdiffstore",
        -4,
        "write denyoom movablekeys",
        "write sortedset slow",
        Exec::Shard(zdiffstore),
    )
    .keys(1, 1, 1)
    .find_keys(store_numkeys_at_2)
    .verbatim()
    .touch(Touch::Only(1)),
    Command::new(
        "zintercard",
        -3,
        "readonly movablekeys",
        "read sortedset slow",
        Exec::Shard(zintercard),
    )
    .find_keys(numkeys_at_1),
    Command::new(
        "zscan",
        -3,
        "readonly",
        "read sortedset slow",
        Exec::Shard(zscan),
    )
    .keys(1, 1, 1),
    Command::new(
        "bzpopmin",
        -3,
        "write noscript blocking fast",
        "write sortedset fast blocking",
        Exec::Shard(bzpopmin),
    )
    .keys(1, -2, 1)
    .propagate(propagate::blocking_pop)
    .touch(Touch::Popped)
    .blocking(Blocking::ZPOP),
    Command::new(
        "bzpopmax",
        -3,
        "write noscript blocking fast",
        "write sortedset fast blocking",
        Exec::Shard(bzpopmax),
    )
    .keys(1, -2, 1)
    .propagate(propagate::blocking_pop)
    .touch(Touch::Popped)
    .blocking(Blocking::ZPOP),
    Command::new(
        "bzmpop",
        -5,
        "write blocking movablekeys",
        "write sortedset slow blocking",
        Exec::Shard(bzmpop),
    )
    .find_keys(numkeys_at_2)
    .propagate(propagate::zmpop)
    .touch(Touch::Popped)
    .blocking(Blocking::ZMPOP),
];

// ---------------------------------------------------------------------------------
// Key finders for the commands whose keys follow a numkeys argument.

/// Keys `numkeys` of them right after the numkeys argument at `at`.
fn keys_after_numkeys(argv: &[Bytes], at: usize) -> Vec<usize> {
    let n = argv
        .get(at)
        .and_then(|b| crate::protocol::parse::parse_i64(b))
        .filter(|&n| n > 0)
        .unwrap_or(0) as usize;
    let first = at + 1;
    (first..argv.len()).take(n).collect()
}

/// ZUNION / ZINTER / ZDIFF / ZINTERCARD / ZMPOP: `numkeys key...` at argv[1].
fn numkeys_at_1(argv: &[Bytes]) -> Vec<usize> {
    keys_after_numkeys(argv, 1)
}

/// BZMPOP: `timeout numkeys key...`.
fn numkeys_at_2(argv: &[Bytes]) -> Vec<usize> {
    keys_after_numkeys(argv, 2)
}

/// Z*STORE: the destination, then `numkeys key...`.
fn store_numkeys_at_2(argv: &[Bytes]) -> Vec<usize> {
    let mut keys = vec![1];
    keys.extend(keys_after_numkeys(argv, 2));
    keys
}

// ---------------------------------------------------------------------------------
// Shared helpers.

/// Parse a score, increment or weight as Redis's `string2d`: C `strtod` over the
/// whole argument, no leading space, NaN refused, overflow and underflow to zero
/// refused (`1e400`, `1e-400`), hex floats (`0x1p3`) accepted.
pub fn parse_score(b: &[u8]) -> Option<f64> {
    if b.is_empty() || matches!(b[0], b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        return None;
    }
    let (v, used, erange) = strtod(b);
    if used != b.len() || v.is_nan() || (erange && (v.is_infinite() || v == 0.0)) {
        return None;
    }
    Some(v)
}

fn limits(ctx: &Ctx) -> Limits {
    Limits::of(&ctx.shard.config.encoding)
}

/// The sorted set under `key` for reading (`None` if missing), or WRONGTYPE.
fn read<'c>(ctx: &'c mut Ctx, key: &[u8]) -> Result<Option<&'c ZSet>, Reply> {
    match ctx.lookup_read(key) {
        None => Ok(None),
        Some(e) => match &e.value {
            Value::ZSet(z) => Ok(Some(z)),
            _ => Err(errors::wrongtype()),
        },
    }
}

/// The sorted set under `key` for writing (`None` if missing), or WRONGTYPE.
fn write<'c>(ctx: &'c mut Ctx, key: &[u8]) -> Result<Option<&'c mut ZSet>, Reply> {
    match ctx.lookup_write(key) {
        None => Ok(None),
        Some(e) => match &mut e.value {
            Value::ZSet(z) => Ok(Some(z)),
            _ => Err(errors::wrongtype()),
        },
    }
}

/// The sorted set under `key` once [`read`] has looked it up (and counted the hit):
/// a second look that counts nothing, for a command that drew random numbers in
/// between.
fn peek<'c>(ctx: &'c Ctx, key: &[u8]) -> Option<&'c ZSet> {
    match ctx.shard.dbs[ctx.db].keys.get(key).map(|e| &e.value) {
        Some(Value::ZSet(z)) => Some(z),
        _ => None,
    }
}

/// Count `n` in-place modifications (Redis's `server.dirty += n`).
fn dirty(ctx: &mut Ctx, n: usize) {
    ctx.db().dirty += n as u64;
}

/// Delete a key whose set became empty (raising `del`, after the command's own
/// event). Redis counts the removed members, not the deletion, so the deletion's own
/// dirty count is taken back.
fn drop_emptied(ctx: &mut Ctx, key: &[u8]) {
    if ctx.db().uncounted(|d| d.delete(key)) {
        ctx.notify(notify::GENERIC, "del", key);
    }
}

/// Store `z` under `key` as a new value (TTL dropped) and raise `event`, or delete
/// `key` when `z` is empty (raising `del` if it existed), as Redis's STORE commands
/// do; returns the reply (the stored length).
fn store(ctx: &mut Ctx, key: &[u8], z: ZSet, event: &'static str) -> Reply {
    let n = z.len();
    if n == 0 {
        if ctx.db().delete(key) {
            ctx.notify(notify::GENERIC, "del", key);
        }
    } else {
        ctx.db().set(key, Value::ZSet(Box::new(z)), false);
        ctx.notify(notify::ZSET, event, key);
    }
    Reply::Int(n as i64)
}

fn member(e: LpEntry<'_>) -> Reply {
    match e {
        LpEntry::Str(s) => Reply::Bulk(Bytes::copy_from_slice(s)),
        LpEntry::Int(i) => Reply::Bulk(Bytes::copy_from_slice(
            itoa::Buffer::new().format(i).as_bytes(),
        )),
    }
}

/// Member/score pairs as WITHSCORES replies them: a flat array in RESP2, an array of
/// two-element arrays in RESP3 (Redis's "nested arrays, not a map, so the order is
/// kept").
fn pairs(items: Vec<(Reply, Reply)>) -> Reply {
    // Flat in RESP2, [member, score] arrays in RESP3.
    Reply::Pairs(items)
}

/// Members, with their scores when asked. Members alone are written straight into a
/// [`Reply::Raw`] array of bulk strings (the same bytes in RESP2 and RESP3), one buffer
/// instead of a `Reply` and an allocation per member; `count`, when the caller knows
/// it, lets the header go first so the body is not copied.
fn members_reply<'a>(
    items: impl Iterator<Item = (LpEntry<'a>, f64)>,
    withscores: bool,
    count: Option<usize>,
) -> Reply {
    if withscores {
        return pairs(items.map(|(m, s)| (member(m), Reply::Double(s))).collect());
    }
    let mut out = count.map_or_else(RawArray::new, RawArray::with_len);
    for (m, _) in items {
        super::push_entry(&mut out, m);
    }
    out.finish()
}

/// Pairs that are always nested (ZMPOP / BZMPOP in both protocols).
fn nested_pairs(items: Vec<(Vec<u8>, f64)>) -> Reply {
    Reply::Array(
        items
            .into_iter()
            .map(|(m, s)| Reply::Array(vec![Reply::Bulk(m.into()), Reply::Double(s)]))
            .collect(),
    )
}

/// `getRangeLongFromObjectOrReply` with a message for both failures.
fn long_in(b: &[u8], min: i64, max: i64, msg: &'static str) -> Result<i64, Reply> {
    match crate::protocol::parse::parse_i64(b) {
        Some(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(Reply::err(msg)),
    }
}

// ---------------------------------------------------------------------------------
// ZADD, ZINCRBY, ZREM.

/// ZADD (public so that GEOADD can run as the ZADD it rewrites itself into, as
/// Redis's `geoaddCommand` does).
pub fn zadd(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    zadd_generic(ctx, argv, false)
}

fn zincrby(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    zadd_generic(ctx, argv, true)
}

/// ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...], and ZINCRBY
/// key increment member (ZADD with INCR whose options are parsed the same way).
fn zadd_generic(ctx: &mut Ctx, argv: &[Bytes], incr: bool) -> Reply {
    let key = &argv[1];
    let mut f = AddFlags {
        incr,
        ..AddFlags::default()
    };
    let mut ch = false;
    let mut i = 2;
    while i < argv.len() {
        let o = &argv[i];
        if args::eq(o, "nx") {
            f.nx = true;
        } else if args::eq(o, "xx") {
            f.xx = true;
        } else if args::eq(o, "ch") {
            ch = true;
        } else if args::eq(o, "incr") {
            f.incr = true;
        } else if args::eq(o, "gt") {
            f.gt = true;
        } else if args::eq(o, "lt") {
            f.lt = true;
        } else {
            break;
        }
        i += 1;
    }
    let elements = argv.len() - i;
    if elements % 2 == 1 || elements == 0 {
        return errors::syntax();
    }
    let pairs_n = elements / 2;
    if f.nx && f.xx {
        return Reply::err(errors::ZADD_XX_AND_NX);
    }
    if (f.nx && (f.gt || f.lt)) || (f.gt && f.lt) {
        return Reply::err(errors::ZADD_GT_LT_NX);
    }
    if f.incr && pairs_n > 1 {
        return Reply::err(errors::ZADD_INCR_PAIRS);
    }
    let mut scores = Vec::with_capacity(pairs_n);
    for j in 0..pairs_n {
        match parse_score(&argv[i + 2 * j]) {
            Some(s) => scores.push(s),
            None => return errors::not_float(),
        }
    }
    let lim = limits(ctx);
    let nothing = |f: AddFlags| {
        if f.incr {
            Reply::Null
        } else {
            Reply::Int(0)
        }
    };
    let (mut added, mut updated, mut processed) = (0, 0, 0);
    let mut last = 0.0;
    let mut run = |z: &mut ZSet| -> Result<(), Reply> {
        for (j, &score) in scores.iter().enumerate() {
            match z.add(score, &argv[i + 1 + 2 * j], f, lim) {
                Added::NaN => return Err(Reply::err(errors::SCORE_NAN)),
                Added::Skipped => {}
                Added::Added(s) => {
                    added += 1;
                    processed += 1;
                    last = s;
                }
                Added::Updated(s) => {
                    updated += 1;
                    processed += 1;
                    last = s;
                }
                Added::Same(s) => {
                    processed += 1;
                    last = s;
                }
            }
        }
        Ok(())
    };
    match write(ctx, key) {
        Err(e) => return e,
        Ok(Some(z)) => {
            if let Err(e) = run(z) {
                return e;
            }
            dirty(ctx, added + updated);
        }
        Ok(None) => {
            if f.xx {
                return nothing(f);
            }
            let mut z = ZSet::new_for(lim, argv[i + 1].len());
            if let Err(e) = run(&mut z) {
                return e;
            }
            // Db::set counts one change; Redis counts each added member.
            ctx.db().set(key, Value::ZSet(Box::new(z)), false);
            dirty(ctx, (added + updated).saturating_sub(1));
        }
    }
    if added + updated > 0 {
        ctx.notify(notify::ZSET, if f.incr { "zincr" } else { "zadd" }, key);
    }
    if f.incr {
        if processed > 0 {
            Reply::Double(last)
        } else {
            Reply::Null
        }
    } else {
        Reply::Int(if ch { added + updated } else { added } as i64)
    }
}

fn zrem(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let key = &argv[1];
    let z = match write(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::Int(0),
        Ok(Some(z)) => z,
    };
    let mut deleted = 0;
    let mut emptied = false;
    for m in &argv[2..] {
        deleted += z.remove(m) as usize;
        if z.is_empty() {
            emptied = true;
            break;
        }
    }
    if deleted > 0 {
        ctx.notify(notify::ZSET, "zrem", key);
    }
    if emptied {
        drop_emptied(ctx, key);
    }
    dirty(ctx, deleted);
    Reply::Int(deleted as i64)
}

// ---------------------------------------------------------------------------------
// Reads of one set: ZCARD, ZSCORE, ZMSCORE, ZRANK, ZCOUNT, ZLEXCOUNT.

fn zcard(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    match read(ctx, &argv[1]) {
        Err(e) => e,
        Ok(z) => Reply::Int(z.map_or(0, |z| z.len()) as i64),
    }
}

fn zscore(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    match read(ctx, &argv[1]) {
        Err(e) => e,
        Ok(z) => z
            .and_then(|z| z.score(&argv[2]))
            .map_or(Reply::Null, Reply::Double),
    }
}

fn zmscore(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    match read(ctx, &argv[1]) {
        Err(e) => e,
        Ok(z) => Reply::Array(
            argv[2..]
                .iter()
                .map(|m| {
                    z.and_then(|z| z.score(m))
                        .map_or(Reply::Null, Reply::Double)
                })
                .collect(),
        ),
    }
}

fn zrank(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    rank_generic(ctx, argv, false)
}

fn zrevrank(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    rank_generic(ctx, argv, true)
}

fn rank_generic(ctx: &mut Ctx, argv: &[Bytes], reverse: bool) -> Reply {
    match read(ctx, &argv[1]) {
        Err(e) => e,
        Ok(z) => z
            .and_then(|z| z.rank(&argv[2], reverse))
            .map_or(Reply::Null, |r| Reply::Int(r as i64)),
    }
}

fn zcount(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let Some(r) = ScoreRange::parse(&argv[2], &argv[3]) else {
        return Reply::err(errors::MIN_MAX_NOT_FLOAT);
    };
    match read(ctx, &argv[1]) {
        Err(e) => e,
        Ok(z) => Reply::Int(z.map_or(0, |z| z.count_in_range(&r)) as i64),
    }
}

fn zlexcount(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let Some(r) = LexRange::parse(&argv[2], &argv[3]) else {
        return Reply::err(errors::MIN_MAX_NOT_LEX);
    };
    match read(ctx, &argv[1]) {
        Err(e) => e,
        Ok(z) => Reply::Int(z.map_or(0, |z| z.count_in_lex(&r)) as i64),
    }
}

// ---------------------------------------------------------------------------------
// ZRANGE and its older forms, ZRANGESTORE.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum By {
    Auto,
    Rank,
    Score,
    Lex,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dir {
    Auto,
    Forward,
    Reverse,
}

fn zrange(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    zrange_generic(ctx, argv, 1, None, By::Auto, Dir::Auto)
}
fn zrevrange(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    zrange_generic(ctx, argv, 1, None, By::Rank, Dir::Reverse)
}
fn zrangebyscore(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    zrange_generic(ctx, argv, 1, None, By::Score, Dir::Forward)
}
fn zrevrangebyscore(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    zrange_generic(ctx, argv, 1, None, By::Score, Dir::Reverse)
}
fn zrangebylex(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    zrange_generic(ctx, argv, 1, None, By::Lex, Dir::Forward)
}
fn zrevrangebylex(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    zrange_generic(ctx, argv, 1, None, By::Lex, Dir::Reverse)
}
fn zrangestore(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    zrange_generic(ctx, argv, 2, Some(&argv[1]), By::Auto, Dir::Auto)
}

/// A parsed range of any kind.
enum Range {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange),
}

/// `zrangeGenericCommand`: `<src> <min> <max> [BYSCORE|BYLEX] [REV] [WITHSCORES]
/// [LIMIT offset count]` from argv[`src`], replying or storing into `dst`.
fn zrange_generic(
    ctx: &mut Ctx,
    argv: &[Bytes],
    src: usize,
    dst: Option<&Bytes>,
    mut by: By,
    mut dir: Dir,
) -> Reply {
    let (mut minidx, mut maxidx) = (src + 1, src + 2);
    let mut withscores = false;
    let (mut offset, mut limit) = (0i64, -1i64);
    let mut j = src + 3;
    while j < argv.len() {
        let left = argv.len() - j - 1;
        let a = &argv[j];
        if dst.is_none() && args::eq(a, "withscores") {
            withscores = true;
        } else if args::eq(a, "limit") && left >= 2 {
            match (args::int(&argv[j + 1]), args::int(&argv[j + 2])) {
                (Ok(o), Ok(l)) => (offset, limit) = (o, l),
                (Err(e), _) | (_, Err(e)) => return e,
            }
            j += 2;
        } else if dir == Dir::Auto && args::eq(a, "rev") {
            dir = Dir::Reverse;
        } else if by == By::Auto && args::eq(a, "bylex") {
            by = By::Lex;
        } else if by == By::Auto && args::eq(a, "byscore") {
            by = By::Score;
        } else {
            return errors::syntax();
        }
        j += 1;
    }
    let reverse = dir == Dir::Reverse;
    if by == By::Auto {
        by = By::Rank;
    }
    if limit != -1 && by == By::Rank {
        return Reply::err(errors::LIMIT_WITHOUT_BY);
    }
    if withscores && by == By::Lex {
        return Reply::err(errors::WITHSCORES_BYLEX);
    }
    if reverse && by != By::Rank {
        std::mem::swap(&mut minidx, &mut maxidx);
    }
    let range = match by {
        By::Score => match ScoreRange::parse(&argv[minidx], &argv[maxidx]) {
            Some(r) => Range::Score(r),
            None => return Reply::err(errors::MIN_MAX_NOT_FLOAT),
        },
        By::Lex => match LexRange::parse(&argv[minidx], &argv[maxidx]) {
            Some(r) => Range::Lex(r),
            None => return Reply::err(errors::MIN_MAX_NOT_LEX),
        },
        _ => match (args::int(&argv[minidx]), args::int(&argv[maxidx])) {
            (Ok(a), Ok(b)) => Range::Rank(a, b),
            (Err(e), _) | (_, Err(e)) => return e,
        },
    };
    let z = match read(ctx, &argv[src]) {
        Err(e) => return e,
        Ok(None) => {
            return match dst {
                Some(d) => store(ctx, d, ZSet::new_listpack(), "zrangestore"),
                None => Reply::Array(vec![]),
            }
        }
        Ok(Some(z)) => z,
    };
    // The elements in range, and (for a store) the length ZRANGESTORE sizes by.
    let (items, hint): (Box<dyn Iterator<Item = (LpEntry<'_>, f64)>>, Option<usize>) = match &range
    {
        Range::Rank(start, end) => match rank_window(z.len(), *start, *end) {
            Some((start, n)) => (Box::new(z.iter_from_rank(start, reverse).take(n)), Some(n)),
            None => (Box::new(std::iter::empty()), Some(0)),
        },
        Range::Score(r) => {
            if offset < 0 || (offset > 0 && offset as u64 >= z.len() as u64) {
                (Box::new(std::iter::empty()), None)
            } else {
                (window(z.range_by_score(r, reverse), offset, limit), None)
            }
        }
        Range::Lex(r) => {
            if offset < 0 {
                (Box::new(std::iter::empty()), None)
            } else {
                (window(z.range_by_lex(r, reverse), offset, limit), None)
            }
        }
    };
    let Some(dst) = dst else {
        return members_reply(items, withscores, hint);
    };
    let found: Vec<(Vec<u8>, f64)> = items.map(|(m, s)| (m.to_vec(), s)).collect();
    let lim = limits(ctx);
    // zrangeResultBeginStore: a skiplist when the rank range is known to be too long,
    // else a listpack that ZADD's rules convert as it grows.
    let mut out = match hint {
        Some(n) if n > lim.entries => ZSet::new_skiplist(),
        _ => ZSet::new_listpack(),
    };
    for (m, s) in &found {
        out.insert(*s, m, lim);
    }
    store(ctx, dst, out, "zrangestore")
}

/// Clamp ZRANGE-style indexes (negative from the end) to a set of `len`: the first
/// rank and how many, or `None` for an empty range.
fn rank_window(len: usize, start: i64, end: i64) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 { start + len } else { start }.max(0);
    let end = if end < 0 { end + len } else { end };
    if start > end || start >= len {
        return None;
    }
    let end = end.min(len - 1);
    Some((start as usize, (end - start + 1) as usize))
}

/// Skip `offset` (not negative) then take `limit` (negative: all) elements.
fn window<'a, I: Iterator<Item = (LpEntry<'a>, f64)> + 'a>(
    it: I,
    offset: i64,
    limit: i64,
) -> Box<dyn Iterator<Item = (LpEntry<'a>, f64)> + 'a> {
    let it = it.skip(usize::try_from(offset).unwrap_or(usize::MAX));
    match usize::try_from(limit) {
        Ok(l) => Box::new(it.take(l)),
        Err(_) => Box::new(it),
    }
}

// ---------------------------------------------------------------------------------
// ZREMRANGEBYRANK / BYSCORE / BYLEX.

fn zremrangebyrank(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let range = match (args::int(&argv[2]), args::int(&argv[3])) {
        (Ok(a), Ok(b)) => Range::Rank(a, b),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    zremrange_generic(ctx, argv, range)
}

fn zremrangebyscore(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    match ScoreRange::parse(&argv[2], &argv[3]) {
        Some(r) => zremrange_generic(ctx, argv, Range::Score(r)),
        None => Reply::err(errors::MIN_MAX_NOT_FLOAT),
    }
}

fn zremrangebylex(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    match LexRange::parse(&argv[2], &argv[3]) {
        Some(r) => zremrange_generic(ctx, argv, Range::Lex(r)),
        None => Reply::err(errors::MIN_MAX_NOT_LEX),
    }
}

fn zremrange_generic(ctx: &mut Ctx, argv: &[Bytes], range: Range) -> Reply {
    let key = &argv[1];
    let z = match write(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::Int(0),
        Ok(Some(z)) => z,
    };
    let deleted = match &range {
        Range::Rank(start, end) => match rank_window(z.len(), *start, *end) {
            Some((start, n)) => z.remove_range_by_rank(start, start + n - 1),
            None => return Reply::Int(0),
        },
        Range::Score(r) => z.remove_range_by_score(r),
        Range::Lex(r) => z.remove_range_by_lex(r),
    };
    let emptied = z.is_empty();
    if deleted > 0 {
        let event = match range {
            Range::Rank(..) => "zremrangebyrank",
            Range::Score(_) => "zremrangebyscore",
            Range::Lex(_) => "zremrangebylex",
        };
        ctx.notify(notify::ZSET, event, key);
    }
    if emptied {
        drop_emptied(ctx, key);
    }
    dirty(ctx, deleted);
    Reply::Int(deleted as i64)
}

// ---------------------------------------------------------------------------------
// Pops: ZPOPMIN, ZPOPMAX, ZMPOP and the blocking forms.

/// How a pop replies.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PopShape {
    /// ZPOPMIN key: `[member, score]`.
    Flat,
    /// ZPOPMIN key count: member/score pairs (RESP2 flat, RESP3 nested).
    Pairs,
    /// BZPOPMIN: `[key, member, score]`.
    WithKey,
    /// ZMPOP / BZMPOP: `[key, [[member, score], ...]]`, null when nothing.
    Nested,
}

/// `genericZpopCommand`: pop up to `count` from the first existing key of `keys`.
fn zpop_generic(ctx: &mut Ctx, keys: &[Bytes], max: bool, count: usize, shape: PopShape) -> Reply {
    let mut found = None;
    for key in keys {
        match write(ctx, key) {
            Err(e) => return e,
            Ok(None) => continue,
            Ok(Some(_)) => {
                found = Some(key);
                break;
            }
        }
    }
    let Some(key) = found else {
        return if shape == PopShape::Nested {
            Reply::NullArray
        } else {
            Reply::Array(vec![])
        };
    };
    if count == 0 {
        return Reply::Array(vec![]);
    }
    let Ok(Some(z)) = write(ctx, key) else {
        return Reply::Array(vec![]);
    };
    let mut popped = Vec::new();
    while popped.len() < count {
        match z.pop(max) {
            Some(p) => popped.push(p),
            None => break,
        }
    }
    let emptied = z.is_empty();
    if !popped.is_empty() {
        ctx.notify(notify::ZSET, if max { "zpopmax" } else { "zpopmin" }, key);
    }
    if emptied {
        drop_emptied(ctx, key);
    }
    dirty(ctx, popped.len());
    let flat = |popped: Vec<(Vec<u8>, f64)>| {
        popped
            .into_iter()
            .flat_map(|(m, s)| [Reply::Bulk(m.into()), Reply::Double(s)])
    };
    match shape {
        PopShape::Flat => Reply::Array(flat(popped).collect()),
        PopShape::Pairs => pairs(
            popped
                .into_iter()
                .map(|(m, s)| (Reply::Bulk(m.into()), Reply::Double(s)))
                .collect(),
        ),
        PopShape::WithKey => Reply::Array(
            std::iter::once(Reply::Bulk(key.clone()))
                .chain(flat(popped))
                .collect(),
        ),
        PopShape::Nested => Reply::Array(vec![Reply::Bulk(key.clone()), nested_pairs(popped)]),
    }
}

fn zpopmin(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    zpop_minmax(ctx, argv, false)
}

fn zpopmax(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    zpop_minmax(ctx, argv, true)
}

/// ZPOPMIN / ZPOPMAX key [count].
fn zpop_minmax(ctx: &mut Ctx, argv: &[Bytes], max: bool) -> Reply {
    if argv.len() > 3 {
        return errors::syntax();
    }
    let (count, shape) = match argv.get(2) {
        None => (1, PopShape::Flat),
        Some(c) => match long_in(c, 0, i64::MAX, errors::NOT_POSITIVE) {
            Ok(n) => (usize::try_from(n).unwrap_or(usize::MAX), PopShape::Pairs),
            Err(e) => return e,
        },
    };
    zpop_generic(ctx, &argv[1..2], max, count, shape)
}

/// ZMPOP / BZMPOP's `numkeys key... MIN|MAX [COUNT count]` from argv[`at`]: the keys'
/// range in argv, MAX?, and the count.
fn parse_mpop(argv: &[Bytes], at: usize) -> Result<(std::ops::Range<usize>, bool, usize), Reply> {
    let numkeys = long_in(&argv[at], 1, i64::MAX, errors::NUMKEYS_NOT_POSITIVE)? as u64;
    let where_idx = (at as u64 + 1).saturating_add(numkeys);
    if where_idx >= argv.len() as u64 {
        return Err(errors::syntax());
    }
    let where_idx = where_idx as usize;
    let max = if args::eq(&argv[where_idx], "min") {
        false
    } else if args::eq(&argv[where_idx], "max") {
        true
    } else {
        return Err(errors::syntax());
    };
    let mut count = None;
    let mut j = where_idx + 1;
    while j < argv.len() {
        if count.is_none() && args::eq(&argv[j], "count") && j + 1 < argv.len() {
            count = Some(long_in(
                &argv[j + 1],
                1,
                i64::MAX,
                errors::COUNT_NOT_POSITIVE,
            )?);
            j += 2;
        } else {
            return Err(errors::syntax());
        }
    }
    let count = usize::try_from(count.unwrap_or(1)).unwrap_or(usize::MAX);
    Ok((at + 1..where_idx, max, count))
}

fn zmpop(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    match parse_mpop(argv, 1) {
        Ok((keys, max, count)) => zpop_generic(ctx, &argv[keys], max, count, PopShape::Nested),
        Err(e) => e,
    }
}

fn bzpopmin(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    bzpop_generic(ctx, argv, false)
}

fn bzpopmax(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    bzpop_generic(ctx, argv, true)
}

/// BZPOPMIN / BZPOPMAX key [key ...] timeout, as its non-blocking attempt: the first
/// non-empty set is popped; nothing to pop answers the timeout reply (a null array),
/// which the runtime turns into blocking.
fn bzpop_generic(ctx: &mut Ctx, argv: &[Bytes], max: bool) -> Reply {
    if let Err(e) = args::timeout_ms(&argv[argv.len() - 1]) {
        return e;
    }
    blocking_pop(ctx, &argv[1..argv.len() - 1], max, 1, PopShape::WithKey)
}

/// `blockingGenericZpopCommand` without the blocking: WRONGTYPE for the first
/// wrong-typed key met, the first non-empty set popped, else a null array.
fn blocking_pop(ctx: &mut Ctx, keys: &[Bytes], max: bool, count: usize, shape: PopShape) -> Reply {
    for key in keys {
        match write(ctx, key) {
            Err(e) => return e,
            Ok(Some(z)) if !z.is_empty() => {
                return zpop_generic(ctx, std::slice::from_ref(key), max, count, shape);
            }
            Ok(_) => {}
        }
    }
    Reply::NullArray
}

/// BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count].
fn bzmpop(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let (keys, max, count) = match parse_mpop(argv, 2) {
        Ok(p) => p,
        Err(e) => return e,
    };
    if let Err(e) = args::timeout_ms(&argv[1]) {
        return e;
    }
    blocking_pop(ctx, &argv[keys], max, count, PopShape::Nested)
}

// ---------------------------------------------------------------------------------
// ZRANDMEMBER.

/// ZRANDMEMBER replies above this many elements are refused: Redis would stream them
/// (and a huge negative count never ends); a reply is built in memory here.
const RANDMEMBER_MAX: u64 = 1 << 24;

fn zrandmember(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    if argv.len() >= 3 {
        let l = match crate::protocol::parse::parse_i64(&argv[2]) {
            None => return errors::not_integer(),
            Some(i64::MIN) => return Reply::err(errors::COUNT_LLONG_MIN),
            Some(l) => l,
        };
        if argv.len() > 4 || (argv.len() == 4 && !args::eq(&argv[3], "withscores")) {
            return errors::syntax();
        }
        let withscores = argv.len() == 4;
        if withscores && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&l) {
            return Reply::err(errors::OUT_OF_RANGE);
        }
        return zrandmember_count(ctx, &argv[1], l, withscores);
    }
    let pick = match read(ctx, &argv[1]) {
        Err(e) => return e,
        Ok(None) => return Reply::Null,
        Ok(Some(z)) => z.len(),
    };
    let i = ctx.shard.rng.gen_range(0..pick);
    match peek(ctx, &argv[1]) {
        Some(z) => z.get_by_rank(i).map_or(Reply::Null, |(m, _)| member(m)),
        None => Reply::Null,
    }
}

/// ZRANDMEMBER key -count: members drawn with repetition, encoded as they are drawn
/// (see `commands::random_reply`).
fn random_members_raw(ctx: &mut Ctx, key: &[u8], count: u64) -> Reply {
    let members: Vec<Vec<u8>> = match peek(ctx, key) {
        Some(z) => z.iter(false).map(|(m, _)| m.to_vec()).collect(),
        None => return Reply::Array(vec![]),
    };
    if let Err(e) = random_reply::check(count, 6) {
        return e;
    }
    let mut out = RawArray::with_len(count as usize);
    for _ in 0..count {
        out.push(&members[ctx.shard.rng.gen_range(0..members.len())]);
        if out.byte_len() > random_reply::MAX_BYTES {
            return random_reply::too_large();
        }
    }
    out.finish()
}

/// `zrandmemberWithCountCommand`: a negative count may repeat members (and answers in
/// random order); a positive one gives distinct members: the whole set (from the
/// highest score down, as Redis walks it) when it asks for as many, else a random
/// subset.
fn zrandmember_count(ctx: &mut Ctx, key: &[u8], l: i64, withscores: bool) -> Reply {
    let size = match read(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::Array(vec![]),
        Ok(Some(z)) => z.len(),
    };
    let count = l.unsigned_abs();
    let unique = l >= 0;
    if count == 0 {
        return Reply::Array(vec![]);
    }
    if !unique && !withscores {
        return random_members_raw(ctx, key, count);
    }
    let wanted = if unique {
        count.min(size as u64)
    } else {
        count
    };
    if wanted.saturating_mul(1 + withscores as u64) > RANDMEMBER_MAX {
        return Reply::err(errors::OUT_OF_RANGE);
    }
    let wanted = wanted as usize;
    let ranks: Vec<usize> = if !unique || count == 1 {
        (0..wanted)
            .map(|_| ctx.shard.rng.gen_range(0..size))
            .collect()
    } else if wanted >= size {
        (0..size).rev().collect()
    } else {
        // Distinct ranks, in random order.
        rand::seq::index::sample(&mut ctx.shard.rng, size, wanted).into_vec()
    };
    let Some(z) = peek(ctx, key) else {
        return Reply::Array(vec![]);
    };
    let items: Vec<(Reply, f64)> = if ranks.len() * 8 > size {
        // Many picks: one pass over the set beats a walk per pick in a listpack.
        let all: Vec<(LpEntry<'_>, f64)> = z.iter(false).collect();
        ranks
            .iter()
            .map(|&r| (member(all[r].0), all[r].1))
            .collect()
    } else {
        ranks
            .iter()
            .filter_map(|&r| z.get_by_rank(r))
            .map(|(m, s)| (member(m), s))
            .collect()
    };
    if withscores {
        pairs(
            items
                .into_iter()
                .map(|(m, s)| (m, Reply::Double(s)))
                .collect(),
        )
    } else {
        Reply::Array(items.into_iter().map(|(m, _)| m).collect())
    }
}

// ---------------------------------------------------------------------------------
// ZUNION, ZINTER, ZDIFF, their STORE forms, ZINTERCARD.

#[derive(Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

/// `zunionInterAggregate`: SUM keeps `inf + -inf` at 0 instead of NaN.
fn aggregate(target: &mut f64, v: f64, how: Aggregate) {
    match how {
        Aggregate::Sum => {
            *target += v;
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggregate::Min => {
            if v < *target {
                *target = v;
            }
        }
        Aggregate::Max => {
            if v > *target {
                *target = v;
            }
        }
    }
}

/// One input of a set operation: a sorted set, a set (scores 1) or a missing key.
#[derive(Clone, Copy)]
enum Source<'a> {
    Missing,
    ZSet(&'a ZSet),
    Set(&'a Set),
}

impl Source<'_> {
    fn len(&self) -> usize {
        match self {
            Source::Missing => 0,
            Source::ZSet(z) => z.len(),
            Source::Set(s) => s.len(),
        }
    }
    /// Members with scores, in Redis's order: sorted sets from the highest score down
    /// (`zuiInitIterator`), sets in their own order.
    fn each(&self, mut f: impl FnMut(&[u8], f64) -> bool) {
        match self {
            Source::Missing => {}
            Source::ZSet(z) => {
                let mut buf = Vec::new();
                for (m, s) in z.iter(true) {
                    buf.clear();
                    m.write_to(&mut buf);
                    if !f(&buf, s) {
                        return;
                    }
                }
            }
            Source::Set(set) => {
                let mut buf = Vec::new();
                for m in set.iter() {
                    buf.clear();
                    m.write_to(&mut buf);
                    if !f(&buf, 1.0) {
                        return;
                    }
                }
            }
        }
    }
    fn find(&self, m: &[u8]) -> Option<f64> {
        match self {
            Source::Missing => None,
            Source::ZSet(z) => z.score(m),
            Source::Set(s) => s.contains(m).then_some(1.0),
        }
    }
}

struct Input<'a> {
    /// Index of the key in argv (the same key twice is the same object in Redis).
    key: usize,
    src: Source<'a>,
    weight: f64,
}

fn zunion(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    setop_generic(ctx, argv, None, 1, SetOp::Union, false)
}
fn zinter(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    setop_generic(ctx, argv, None, 1, SetOp::Inter, false)
}
fn zdiff(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    setop_generic(ctx, argv, None, 1, SetOp::Diff, false)
}
fn zunionstore(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    setop_generic(ctx, argv, Some(&argv[1]), 2, SetOp::Union, false)
}
fn zinterstore(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    setop_generic(ctx, argv, Some(&argv[1]), 2, SetOp::Inter, false)
}
fn zdiffstore(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    setop_generic(ctx, argv, Some(&argv[1]), 2, SetOp::Diff, false)
}
fn zintercard(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    setop_generic(ctx, argv, None, 1, SetOp::Inter, true)
}

/// `zunionInterDiffGenericCommand`: numkeys, the keys (looked up and type-checked
/// before the options are read, as Redis does), WEIGHTS, AGGREGATE, WITHSCORES,
/// LIMIT; then the operation, replied or stored.
fn setop_generic(
    ctx: &mut Ctx,
    argv: &[Bytes],
    dst: Option<&Bytes>,
    numkeys_at: usize,
    op: SetOp,
    card_only: bool,
) -> Reply {
    let setnum = match args::int(&argv[numkeys_at]) {
        Ok(n) => n,
        Err(e) => return e,
    };
    if setnum < 1 {
        return errors::no_input_key(&String::from_utf8_lossy(&argv[0]).to_ascii_lowercase());
    }
    if setnum as u64 > (argv.len() - (numkeys_at + 1)) as u64 {
        return errors::syntax();
    }
    let setnum = setnum as usize;
    let first = numkeys_at + 1;
    // Look every key up (hits, misses, expiry) and check its type.
    for k in &argv[first..first + setnum] {
        if let Some(e) = ctx.lookup_read(k) {
            if !matches!(e.value, Value::ZSet(_) | Value::Set(_)) {
                return errors::wrongtype();
            }
        }
    }
    let mut weights = vec![1.0f64; setnum];
    // Redis 7.0 lets each option repeat; the last one counts.
    let mut how = Aggregate::Sum;
    let mut withscores = false;
    let mut limit: u64 = 0;
    let mut j = first + setnum;
    while j < argv.len() {
        let remaining = argv.len() - j;
        let a = &argv[j];
        if op != SetOp::Diff && !card_only && remaining > setnum && args::eq(a, "weights") {
            for (i, w) in weights.iter_mut().enumerate() {
                match parse_score(&argv[j + 1 + i]) {
                    Some(v) => *w = v,
                    None => return Reply::err(errors::WEIGHT_NOT_FLOAT),
                }
            }
            j += 1 + setnum;
        } else if op != SetOp::Diff && !card_only && remaining >= 2 && args::eq(a, "aggregate") {
            let v = &argv[j + 1];
            how = if args::eq(v, "sum") {
                Aggregate::Sum
            } else if args::eq(v, "min") {
                Aggregate::Min
            } else if args::eq(v, "max") {
                Aggregate::Max
            } else {
                return errors::syntax();
            };
            j += 2;
        } else if dst.is_none() && !card_only && args::eq(a, "withscores") {
            withscores = true;
            j += 1;
        } else if card_only && remaining >= 2 && args::eq(a, "limit") {
            match long_in(&argv[j + 1], 0, i64::MAX, errors::LIMIT_NEGATIVE) {
                Ok(l) => limit = l as u64,
                Err(e) => return e,
            }
            j += 2;
        } else {
            return errors::syntax();
        }
    }

    let db = &ctx.shard.dbs[ctx.db];
    let mut inputs: Vec<Input<'_>> = (0..setnum)
        .map(|i| Input {
            key: first + i,
            src: match db.keys.get(&argv[first + i][..]).map(|e| &e.value) {
                Some(Value::ZSet(z)) => Source::ZSet(z),
                Some(Value::Set(s)) => Source::Set(s),
                _ => Source::Missing,
            },
            weight: weights[i],
        })
        .collect();
    if op != SetOp::Diff {
        // Smallest first (a stable sort, as glibc's merge-sort qsort is).
        inputs.sort_by_key(|x| x.src.len());
    }
    let same = |a: &Input, b: &Input| argv[a.key] == argv[b.key];

    let mut result: Vec<(Vec<u8>, f64)> = Vec::new();
    let mut card: u64 = 0;
    match op {
        SetOp::Inter => {
            let (head, rest) = inputs.split_first().expect("at least one input");
            head.src.each(|m, s| {
                let mut score = head.weight * s;
                if score.is_nan() {
                    score = 0.0;
                }
                for other in rest {
                    let v = if same(head, other) {
                        s * other.weight
                    } else {
                        match other.src.find(m) {
                            Some(v) => v * other.weight,
                            None => return true,
                        }
                    };
                    aggregate(&mut score, v, how);
                }
                if card_only {
                    card += 1;
                    return limit == 0 || card < limit;
                }
                result.push((m.to_vec(), score));
                true
            });
        }
        SetOp::Union => {
            let mut acc: HashMap<Vec<u8>, usize> = HashMap::new();
            for input in &inputs {
                input.src.each(|m, s| {
                    let mut score = input.weight * s;
                    if score.is_nan() {
                        score = 0.0;
                    }
                    match acc.get(m) {
                        Some(&i) => aggregate(&mut result[i].1, score, how),
                        None => {
                            acc.insert(m.to_vec(), result.len());
                            result.push((m.to_vec(), score));
                        }
                    }
                    true
                });
            }
        }
        SetOp::Diff => {
            let (head, rest) = inputs.split_first().expect("at least one input");
            if !rest.iter().any(|o| same(head, o)) {
                head.src.each(|m, s| {
                    if !rest.iter().any(|o| o.src.find(m).is_some()) {
                        result.push((m.to_vec(), s));
                    }
                    true
                });
            }
        }
    }
    if card_only {
        return Reply::Int(card as i64);
    }
    result.sort_by(|a, b| crate::storage::skiplist::cmp_entries(a.1, &a.0, b.1, &b.0));
    match dst {
        Some(d) => {
            let lim = limits(ctx);
            let z = ZSet::from_pairs(result.iter().map(|(m, s)| (&m[..], *s)), lim);
            let event = match op {
                SetOp::Union => "zunionstore",
                SetOp::Inter => "zinterstore",
                SetOp::Diff => "zdiffstore",
            };
            store(ctx, d, z, event)
        }
        None if withscores => pairs(
            result
                .into_iter()
                .map(|(m, s)| (Reply::Bulk(m.into()), Reply::Double(s)))
                .collect(),
        ),
        None => Reply::Array(
            result
                .into_iter()
                .map(|(m, _)| Reply::Bulk(m.into()))
                .collect(),
        ),
    }
}

// ---------------------------------------------------------------------------------
// ZSCAN.

/// ZSCAN key cursor [MATCH pattern] [COUNT count]: a listpack is returned whole (its
/// scores as stored), a skiplist's dict is walked with Redis's cursor.
fn zscan(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let cursor = match args::scan_cursor(&argv[2]) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let z = match read(ctx, &argv[1]) {
        Err(e) => return e,
        Ok(None) => return Reply::Array(vec![Reply::bulk(b"0"), Reply::Array(vec![])]),
        Ok(Some(z)) => z,
    };
    let (count, pattern) = match args::collection_scan_options(argv) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let mut found: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let next = match z {
        ZSet::Listpack(lp) => {
            let mut it = lp.iter();
            while let (Some(m), Some(s)) = (it.next(), it.next()) {
                found.push((m.to_vec(), s.to_vec()));
            }
            0
        }
        ZSet::SkipList(s) => {
            let mut cursor = cursor;
            let mut budget = count.saturating_mul(10);
            loop {
                cursor = s.scan(cursor, |m, score| {
                    found.push((m.to_vec(), format_double_resp(score).into_bytes()));
                });
                if cursor == 0 || budget == 0 || found.len() >= count {
                    break;
                }
                budget -= 1;
            }
            cursor
        }
    };
    let items = found
        .into_iter()
        .filter(|(m, _)| pattern.as_ref().is_none_or(|p| glob_match(p, m, false)))
        .flat_map(|(m, s)| [Reply::Bulk(m.into()), Reply::Bulk(s.into())])
        .collect();
    Reply::Array(vec![
        Reply::Bulk(Bytes::copy_from_slice(
            itoa::Buffer::new().format(next).as_bytes(),
        )),
        Reply::Array(items),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::testing::{run_resp2 as run, shard};
    use crate::shard::Shard;

    fn bulk(s: &str) -> Reply {
        Reply::bulk_str(s)
    }
    fn arr(v: &[&str]) -> Reply {
        Reply::Array(v.iter().map(|s| bulk(s)).collect())
    }
    fn enc(s: &mut Shard, key: &str) -> &'static str {
        match &s.dbs[0].keys.get(key.as_bytes()).unwrap().value {
            Value::ZSet(z) => z.encoding(),
            _ => "other",
        }
    }
    fn flat(v: &[(&str, f64)]) -> Reply {
        Reply::Array(
            v.iter()
                .flat_map(|(m, s)| [bulk(m), Reply::Double(*s)])
                .collect(),
        )
    }

    #[test]
    fn zadd_options_and_errors() {
        let mut s = shard();
        assert_eq!(
            run(&mut s, zadd, &["zadd", "z", "1", "a", "2", "b"]),
            Reply::Int(2)
        );
        assert_eq!(
            run(&mut s, zadd, &["zadd", "z", "ch", "5", "a", "3", "c"]),
            Reply::Int(2)
        );
        assert_eq!(
            run(
                &mut s,
                zadd,
                &["zadd", "z", "xx", "ch", "gt", "1", "a", "9", "b"]
            ),
            Reply::Int(1)
        );
        assert_eq!(
            run(&mut s, zadd, &["zadd", "z", "incr", "0x1p1", "a"]),
            Reply::Double(7.0)
        );
        assert_eq!(
            run(&mut s, zadd, &["zadd", "z", "nx", "incr", "1", "a"]),
            Reply::Null
        );
        assert_eq!(
            run(&mut s, zincrby, &["zincrby", "z", "-1", "q"]),
            Reply::Double(-1.0)
        );
        assert_eq!(
            run(&mut s, zadd, &["zadd", "z", "nx", "xx", "1", "a"]),
            Reply::err(errors::ZADD_XX_AND_NX)
        );
        assert_eq!(
            run(&mut s, zadd, &["zadd", "z", "gt", "lt", "1", "a"]),
            Reply::err(errors::ZADD_GT_LT_NX)
        );
        assert_eq!(
            run(&mut s, zadd, &["zadd", "z", "incr", "1", "a", "2", "b"]),
            Reply::err(errors::ZADD_INCR_PAIRS)
        );
        assert_eq!(
            run(&mut s, zadd, &["zadd", "z", "1", "a", "2"]),
            errors::syntax()
        );
        assert_eq!(
            run(&mut s, zadd, &["zadd", "z", "1e400", "a"]),
            errors::not_float()
        );
        assert_eq!(
            run(&mut s, zadd, &["zadd", "z", " 1", "a"]),
            errors::not_float()
        );
        assert_eq!(
            run(&mut s, zincrby, &["zincrby", "z", "xx", "a"]),
            errors::syntax()
        );
        run(&mut s, zadd, &["zadd", "i", "inf", "a"]);
        assert_eq!(
            run(&mut s, zincrby, &["zincrby", "i", "-inf", "a"]),
            Reply::err(errors::SCORE_NAN)
        );
        assert_eq!(
            run(&mut s, zadd, &["zadd", "x", "xx", "1", "a"]),
            Reply::Int(0)
        );
        assert!(!s.dbs[0].keys.contains_key(&b"x"[..]));
        assert_eq!(
            run(&mut s, zrange, &["zrange", "z", "0", "-1", "withscores"]),
            flat(&[("q", -1.0), ("c", 3.0), ("a", 7.0), ("b", 9.0)])
        );
        assert_eq!(
            run(&mut s, zadd, &["zadd", "z", "-0", "zero"]),
            Reply::Int(1)
        );
        assert_eq!(
            run(&mut s, zscore, &["zscore", "z", "zero"]),
            Reply::Double(0.0)
        );
    }

    #[test]
    fn encodings_convert_like_redis() {
        let mut s = shard();
        let long = "x".repeat(65);
        run(&mut s, zadd, &["zadd", "l", "1", &long]);
        assert_eq!(enc(&mut s, "l"), "skiplist");
        let mut argv = vec!["zadd".to_string(), "big".to_string()];
        for i in 0..129 {
            argv.push(i.to_string());
            argv.push(format!("m{i}"));
        }
        let argv: Vec<&str> = argv.iter().map(|x| x.as_str()).collect();
        assert_eq!(run(&mut s, zadd, &argv), Reply::Int(129));
        assert_eq!(enc(&mut s, "big"), "skiplist");
        // ZRANGESTORE / ZUNIONSTORE results go back to a listpack when small.
        assert_eq!(
            run(&mut s, zrangestore, &["zrangestore", "d", "big", "0", "9"]),
            Reply::Int(10)
        );
        assert_eq!(enc(&mut s, "d"), "listpack");
        assert_eq!(
            run(&mut s, zrangestore, &["zrangestore", "d", "big", "0", "-1"]),
            Reply::Int(129)
        );
        assert_eq!(enc(&mut s, "d"), "skiplist");
        assert_eq!(
            run(&mut s, zunionstore, &["zunionstore", "u", "1", "big"]),
            Reply::Int(129)
        );
        assert_eq!(enc(&mut s, "u"), "skiplist");
        run(
            &mut s,
            zremrangebyrank,
            &["zremrangebyrank", "big", "0", "100"],
        );
        assert_eq!(enc(&mut s, "big"), "skiplist");
        assert_eq!(
            run(&mut s, zunionstore, &["zunionstore", "u", "1", "big"]),
            Reply::Int(28)
        );
        assert_eq!(enc(&mut s, "u"), "listpack");
        assert_eq!(
            run(
                &mut s,
                zinterstore,
                &["zinterstore", "u", "2", "big", "nokey"]
            ),
            Reply::Int(0)
        );
        assert!(!s.dbs[0].keys.contains_key(&b"u"[..]));
    }

    #[test]
    fn ranges() {
        let mut s = shard();
        run(
            &mut s,
            zadd,
            &["zadd", "z", "1", "a", "2", "b", "3", "c", "4", "d"],
        );
        assert_eq!(
            run(&mut s, zrange, &["zrange", "z", "1", "-2"]),
            arr(&["b", "c"])
        );
        assert_eq!(
            run(&mut s, zrange, &["zrange", "z", "0", "-1", "rev"]),
            arr(&["d", "c", "b", "a"])
        );
        assert_eq!(
            run(
                &mut s,
                zrevrange,
                &["zrevrange", "z", "0", "0", "withscores"]
            ),
            flat(&[("d", 4.0)])
        );
        assert_eq!(
            run(
                &mut s,
                zrange,
                &["zrange", "z", "(1", "+inf", "byscore", "limit", "1", "1"]
            ),
            arr(&["c"])
        );
        assert_eq!(
            run(
                &mut s,
                zrange,
                &["zrange", "z", "3", "(1", "byscore", "rev"]
            ),
            arr(&["c", "b"])
        );
        assert_eq!(
            run(
                &mut s,
                zrangebyscore,
                &["zrangebyscore", "z", "-inf", "inf", "limit", "-1", "2"]
            ),
            arr(&[])
        );
        assert_eq!(
            run(
                &mut s,
                zrangebyscore,
                &["zrangebyscore", "z", "-inf", "inf", "limit", "2", "-5"]
            ),
            arr(&["c", "d"])
        );
        assert_eq!(
            run(
                &mut s,
                zrevrangebyscore,
                &["zrevrangebyscore", "z", "3", "2"]
            ),
            arr(&["c", "b"])
        );
        assert_eq!(
            run(&mut s, zrangebylex, &["zrangebylex", "z", "[b", "(d"]),
            arr(&["b", "c"])
        );
        assert_eq!(
            run(&mut s, zrevrangebylex, &["zrevrangebylex", "z", "+", "(b"]),
            arr(&["d", "c"])
        );
        assert_eq!(
            run(
                &mut s,
                zrange,
                &["zrange", "z", "0", "-1", "limit", "0", "-1"]
            ),
            arr(&["a", "b", "c", "d"])
        );
        assert_eq!(
            run(
                &mut s,
                zrange,
                &["zrange", "z", "0", "-1", "limit", "0", "1"]
            ),
            Reply::err(errors::LIMIT_WITHOUT_BY)
        );
        assert_eq!(
            run(
                &mut s,
                zrange,
                &["zrange", "z", "-", "+", "bylex", "withscores"]
            ),
            Reply::err(errors::WITHSCORES_BYLEX)
        );
        assert_eq!(
            run(
                &mut s,
                zrangebyscore,
                &["zrangebyscore", "z", "1", "2", "rev"]
            ),
            errors::syntax()
        );
        assert_eq!(
            run(&mut s, zrangebyscore, &["zrangebyscore", "z", "x", "2"]),
            Reply::err(errors::MIN_MAX_NOT_FLOAT)
        );
        assert_eq!(
            run(&mut s, zrangebylex, &["zrangebylex", "z", "a", "+"]),
            Reply::err(errors::MIN_MAX_NOT_LEX)
        );
        assert_eq!(
            run(&mut s, zcount, &["zcount", "z", "(1", "3"]),
            Reply::Int(2)
        );
        assert_eq!(
            run(&mut s, zlexcount, &["zlexcount", "z", "-", "(c"]),
            Reply::Int(2)
        );
        assert_eq!(run(&mut s, zrank, &["zrank", "z", "c"]), Reply::Int(2));
        assert_eq!(
            run(&mut s, zrevrank, &["zrevrank", "z", "c"]),
            Reply::Int(1)
        );
        assert_eq!(run(&mut s, zrank, &["zrank", "z", "x"]), Reply::Null);
        assert_eq!(
            run(&mut s, zmscore, &["zmscore", "z", "a", "x"]),
            Reply::Array(vec![Reply::Double(1.0), Reply::Null])
        );
        assert_eq!(
            run(
                &mut s,
                zremrangebyscore,
                &["zremrangebyscore", "z", "(1", "2"]
            ),
            Reply::Int(1)
        );
        assert_eq!(
            run(&mut s, zremrangebylex, &["zremrangebylex", "z", "[d", "+"]),
            Reply::Int(1)
        );
        assert_eq!(
            run(
                &mut s,
                zremrangebyrank,
                &["zremrangebyrank", "z", "0", "-1"]
            ),
            Reply::Int(2)
        );
        assert!(s.dbs[0].keys.is_empty());
    }

    #[test]
    fn pops() {
        let mut s = shard();
        run(&mut s, zadd, &["zadd", "z", "1", "a", "2", "b", "3", "c"]);
        assert_eq!(run(&mut s, zpopmin, &["zpopmin", "z"]), flat(&[("a", 1.0)]));
        assert_eq!(run(&mut s, zpopmax, &["zpopmax", "z", "0"]), arr(&[]));
        assert_eq!(
            run(&mut s, zpopmax, &["zpopmax", "z", "-1"]),
            Reply::err(errors::NOT_POSITIVE)
        );
        assert_eq!(run(&mut s, zpopmin, &["zpopmin", "nokey"]), arr(&[]));
        assert_eq!(
            run(
                &mut s,
                zmpop,
                &["zmpop", "2", "nokey", "z", "max", "count", "10"]
            ),
            Reply::Array(vec![
                bulk("z"),
                Reply::Array(vec![
                    Reply::Array(vec![bulk("c"), Reply::Double(3.0)]),
                    Reply::Array(vec![bulk("b"), Reply::Double(2.0)]),
                ])
            ])
        );
        assert!(s.dbs[0].keys.is_empty());
        assert_eq!(
            run(&mut s, zmpop, &["zmpop", "1", "z", "min"]),
            Reply::NullArray
        );
        assert_eq!(
            run(&mut s, bzpopmin, &["bzpopmin", "z", "0"]),
            Reply::NullArray
        );
        assert_eq!(
            run(&mut s, bzmpop, &["bzmpop", "0", "1", "z", "min"]),
            Reply::NullArray
        );
        assert_eq!(
            run(&mut s, bzmpop, &["bzmpop", "-1", "1", "z", "min"]),
            Reply::err(errors::TIMEOUT_NEGATIVE)
        );
        assert_eq!(
            run(&mut s, zmpop, &["zmpop", "0", "z", "min"]),
            Reply::err(errors::NUMKEYS_NOT_POSITIVE)
        );
        assert_eq!(
            run(&mut s, zmpop, &["zmpop", "5", "z", "min"]),
            errors::syntax()
        );
        run(&mut s, zadd, &["zadd", "z", "1", "a"]);
        assert_eq!(
            run(&mut s, bzpopmax, &["bzpopmax", "nokey", "z", "1.5"]),
            arr(&["z", "a", "1"]).clone_with_double()
        );
    }

    trait WithDouble {
        fn clone_with_double(self) -> Reply;
    }
    impl WithDouble for Reply {
        /// `[key, member, "score"]` with the last bulk made a double.
        fn clone_with_double(self) -> Reply {
            let Reply::Array(mut v) = self else {
                return self;
            };
            if let Some(Reply::Bulk(b)) = v.pop() {
                v.push(Reply::Double(
                    std::str::from_utf8(&b).unwrap().parse().unwrap(),
                ));
            }
            Reply::Array(v)
        }
    }

    #[test]
    fn set_operations() {
        let mut s = shard();
        run(&mut s, zadd, &["zadd", "a", "1", "x", "2", "y", "3", "z"]);
        run(&mut s, zadd, &["zadd", "b", "10", "y", "inf", "z"]);
        run(&mut s, zadd, &["zadd", "c", "-inf", "z"]);
        assert_eq!(
            run(&mut s, zunion, &["zunion", "2", "a", "b", "withscores"]),
            flat(&[("x", 1.0), ("y", 12.0), ("z", f64::INFINITY)])
        );
        assert_eq!(
            run(
                &mut s,
                zinter,
                &["zinter", "3", "a", "b", "c", "withscores"]
            ),
            flat(&[("z", 3.0)])
        );
        assert_eq!(
            run(
                &mut s,
                zinter,
                &[
                    "zinter",
                    "2",
                    "a",
                    "b",
                    "weights",
                    "2",
                    "0.5",
                    "aggregate",
                    "max",
                    "withscores"
                ]
            ),
            flat(&[("y", 5.0), ("z", f64::INFINITY)])
        );
        assert_eq!(run(&mut s, zdiff, &["zdiff", "2", "a", "b"]), arr(&["x"]));
        assert_eq!(run(&mut s, zdiff, &["zdiff", "2", "a", "a"]), arr(&[]));
        assert_eq!(
            run(
                &mut s,
                zintercard,
                &["zintercard", "2", "a", "b", "limit", "1"]
            ),
            Reply::Int(1)
        );
        assert_eq!(
            run(&mut s, zintercard, &["zintercard", "2", "a", "b"]),
            Reply::Int(2)
        );
        assert_eq!(
            run(&mut s, zintercard, &["zintercard", "1", "a", "limit", "x"]),
            Reply::err(errors::LIMIT_NEGATIVE)
        );
        assert_eq!(
            run(&mut s, zunionstore, &["zunionstore", "d", "0", "a"]),
            errors::no_input_key("zunionstore")
        );
        assert_eq!(
            run(&mut s, zunion, &["zunion", "1", "a", "weights", "x"]),
            Reply::err(errors::WEIGHT_NOT_FLOAT)
        );
        assert_eq!(
            run(&mut s, zunion, &["zunion", "1", "a", "aggregate", "mul"]),
            errors::syntax()
        );
        assert_eq!(
            run(
                &mut s,
                zunionstore,
                &["zunionstore", "d", "1", "a", "withscores"]
            ),
            errors::syntax()
        );
        assert_eq!(
            run(&mut s, zdiffstore, &["zdiffstore", "d", "2", "a", "b"]),
            Reply::Int(1)
        );
        assert_eq!(
            run(&mut s, zrange, &["zrange", "d", "0", "-1", "withscores"]),
            flat(&[("x", 1.0)])
        );
        s.dbs[0].set(
            b"str",
            Value::Str(crate::storage::StrValue::from_set(b"v")),
            false,
        );
        assert_eq!(
            run(&mut s, zunion, &["zunion", "2", "a", "str", "bad"]),
            errors::wrongtype()
        );
    }

    #[test]
    fn randmember_and_scan() {
        let mut s = shard();
        run(&mut s, zadd, &["zadd", "z", "1", "a", "2", "b", "3", "c"]);
        assert_eq!(
            run(&mut s, zrandmember, &["zrandmember", "z", "5"]),
            arr(&["c", "b", "a"])
        );
        let Reply::Array(v) = run(
            &mut s,
            zrandmember,
            &["zrandmember", "z", "-10", "withscores"],
        ) else {
            panic!()
        };
        assert_eq!(v.len(), 20);
        let Reply::Array(v) = run(&mut s, zrandmember, &["zrandmember", "z", "2"]) else {
            panic!()
        };
        assert_eq!(v.len(), 2);
        assert_ne!(v[0], v[1]);
        assert_eq!(
            run(
                &mut s,
                zrandmember,
                &["zrandmember", "z", "-9223372036854775808"]
            ),
            Reply::err(errors::COUNT_LLONG_MIN)
        );
        assert_eq!(
            run(
                &mut s,
                zrandmember,
                &["zrandmember", "z", "-9223372036854775807", "withscores"]
            ),
            Reply::err(errors::OUT_OF_RANGE)
        );
        // Repetition without scores: any count, built as bytes.
        match run(&mut s, zrandmember, &["zrandmember", "z", "-5000"]) {
            Reply::Array(v) => assert_eq!(v.len(), 5000),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            run(&mut s, zrandmember, &["zrandmember", "nokey"]),
            Reply::Null
        );
        assert!(matches!(
            run(&mut s, zrandmember, &["zrandmember", "z"]),
            Reply::Bulk(_)
        ));
        assert_eq!(
            run(&mut s, zscan, &["zscan", "z", "0", "match", "[ab]"]),
            Reply::Array(vec![bulk("0"), arr(&["a", "1", "b", "2"])])
        );
        assert_eq!(
            run(&mut s, zscan, &["zscan", "z", "x"]),
            Reply::err(errors::INVALID_CURSOR)
        );
        assert_eq!(
            run(&mut s, zscan, &["zscan", "z", "0", "count", "0"]),
            errors::syntax()
        );
        // A skiplist: a full iteration returns every member once.
        let mut argv = vec!["zadd".to_string(), "big".to_string()];
        for i in 0..300 {
            argv.push(format!("{}.5", i));
            argv.push(format!("m{i}"));
        }
        let argv: Vec<&str> = argv.iter().map(|x| x.as_str()).collect();
        run(&mut s, zadd, &argv);
        let mut cursor = "0".to_string();
        let mut seen = std::collections::HashSet::new();
        loop {
            let Reply::Array(v) = run(&mut s, zscan, &["zscan", "big", &cursor, "count", "20"])
            else {
                panic!()
            };
            let (Reply::Bulk(c), Reply::Array(items)) = (&v[0], &v[1]) else {
                panic!()
            };
            for p in items.chunks(2) {
                let (Reply::Bulk(m), Reply::Bulk(sc)) = (&p[0], &p[1]) else {
                    panic!()
                };
                assert!(sc.ends_with(b".5"));
                seen.insert(m.clone());
            }
            cursor = String::from_utf8(c.to_vec()).unwrap();
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(seen.len(), 300);
    }

    #[test]
    fn dirty_and_stats_count_like_redis() {
        let mut s = shard();
        let dirty = |s: &Shard| s.dbs[0].dirty;
        run(&mut s, zadd, &["zadd", "z", "1", "a", "2", "b"]);
        assert_eq!(dirty(&s), 2);
        run(&mut s, zadd, &["zadd", "z", "1", "a"]);
        assert_eq!(dirty(&s), 2, "same score: no change");
        run(&mut s, zadd, &["zadd", "z", "ch", "3", "a"]);
        assert_eq!(dirty(&s), 3);
        run(&mut s, zrem, &["zrem", "z", "nosuch"]);
        run(&mut s, zpopmin, &["zpopmin", "nokey"]);
        run(
            &mut s,
            zremrangebyscore,
            &["zremrangebyscore", "z", "10", "20"],
        );
        assert_eq!(dirty(&s), 3);
        run(&mut s, zrem, &["zrem", "z", "a", "b"]);
        assert_eq!(
            dirty(&s),
            5,
            "two members removed; the key's deletion is not counted"
        );
        assert!(s.dbs[0].keys.is_empty());
        run(&mut s, zadd, &["zadd", "z", "1", "a", "2", "b", "3", "c"]);
        run(&mut s, zpopmax, &["zpopmax", "z", "10"]);
        assert_eq!(dirty(&s), 11);
        run(&mut s, zadd, &["zadd", "z", "1", "a", "2", "b", "3", "c"]);
        let hits = s.stats.keyspace_hits;
        run(&mut s, zrandmember, &["zrandmember", "z", "2"]);
        run(&mut s, zrandmember, &["zrandmember", "z"]);
        assert_eq!(s.stats.keyspace_hits, hits + 2);
    }

    #[test]
    fn wrong_types_and_key_finders() {
        let mut s = shard();
        s.dbs[0].set(
            b"str",
            Value::Str(crate::storage::StrValue::from_set(b"v")),
            false,
        );
        for f in [zcard as fn(&mut Ctx, &[Bytes]) -> Reply, zscore, zrank] {
            assert_eq!(run(&mut s, f, &["x", "str", "a"]), errors::wrongtype());
        }
        assert_eq!(
            run(&mut s, zadd, &["zadd", "str", "1", "a"]),
            errors::wrongtype()
        );
        assert_eq!(
            run(&mut s, bzpopmin, &["bzpopmin", "nokey", "str", "0"]),
            errors::wrongtype()
        );
        let argv = crate::commands::testing::argv(&[
            "zunionstore",
            "d",
            "2",
            "a",
            "b",
            "weights",
            "1",
            "2",
        ]);
        assert_eq!(store_numkeys_at_2(&argv), vec![1, 3, 4]);
        let argv = crate::commands::testing::argv(&["bzmpop", "0", "9", "a", "min"]);
        assert_eq!(numkeys_at_2(&argv), vec![3, 4]);
        let argv = crate::commands::testing::argv(&["zmpop", "x", "a", "min"]);
        assert_eq!(numkeys_at_1(&argv), Vec::<usize>::new());
    }
}
