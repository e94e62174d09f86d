//! Hash commands (Redis's `t_hash.c`): HSET and friends, counters, HRANDFIELD, HSCAN.
//!
//! The one idea to hold: commands parse arguments, check them in Redis's order (an
//! argument error before WRONGTYPE where Redis parses first: HINCRBY's increment,
//! HRANDFIELD's count, HSCAN's cursor), and leave the encoding decisions to
//! [`Hash`]. A write to a missing key works on a fresh hash that is stored only if the
//! command left it non-empty (Redis creates it up front, but no error can follow that
//! for a new key, so the result is the same); the command that removes the last field
//! deletes the key. `ctx.db().dirty` moves by what Redis adds to `server.dirty`, and
//! not at all when nothing changed (HSETNX of a present field).

use super::{args, errors, propagate, random_reply, Command, Ctx, Exec};
use crate::config::EncodingLimits;
use crate::notify;
use crate::protocol::parse::parse_i64;
use crate::protocol::reply::RawArray;
use crate::protocol::Reply;
use crate::storage::db::Entry;
use crate::storage::glob::glob_match;
use crate::storage::hash::{Hash, Item, SetOutcome};
use crate::storage::listpack::LpEntry;
use crate::storage::long_double::LongDouble;
use crate::storage::Value;
use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::SeedableRng;

pub static COMMANDS: &[Command] = &[
    Command::new(
        "hset",
        -4,
        "write denyoom fast",
        "write hash fast",
        Exec::Shard(hset),
    )
    .keys(1, 1, 1)
    .verbatim(),
    Command::new(
        "hsetnx",
        4,
        "write denyoom fast",
        "write hash fast",
        Exec::Shard(hsetnx),
    )
    .keys(1, 1, 1)
    .verbatim(),
    Command::new(
        "hget",
        3,
        "readonly fast",
        "read hash fast",
        Exec::Shard(hget),
    )
    .keys(1, 1, 1),
    Command::new(
        "hmget",
        -3,
        "readonly fast",
        "read hash fast",
        Exec::Shard(hmget),
    )
    .keys(1, 1, 1),
    Command::new(
        "hmset",
        -4,
        "write denyoom fast",
        "write hash fast",
        Exec::Shard(hmset),
    )
    .keys(1, 1, 1)
    .verbatim(),
    Command::new(
        "hdel",
        -3,
        "write fast",
        "write hash fast",
        Exec::Shard(hdel),
    )
    .keys(1, 1, 1)
    .verbatim(),
    Command::new(
        "hlen",
        2,
        "readonly fast",
        "read hash fast",
        Exec::Shard(hlen),
    )
    .keys(1, 1, 1),
    Command::new(
        "hstrlen",
        3,
        "readonly fast",
        "read hash fast",
        Exec::Shard(hstrlen),
    )
    .keys(1, 1, 1),
    Command::new(
        "hexists",
        3,
        "readonly fast",
        "read hash fast",
        Exec::Shard(hexists),
    )
    .keys(1, 1, 1),
    Command::new("hkeys", 2, "readonly", "read hash slow", Exec::Shard(hkeys)).keys(1, 1, 1),
    Command::new("hvals", 2, "readonly", "read hash slow", Exec::Shard(hvals)).keys(1, 1, 1),
    Command::new(
        "hgetall",
        2,
        "readonly",
        "read hash slow",
        Exec::Shard(hgetall),
    )
    .keys(1, 1, 1),
    Command::new(
        "hincrby",
        4,
        "write denyoom fast",
        "write hash fast",
        Exec::Shard(hincrby),
    )
    .keys(1, 1, 1)
    .verbatim(),
    Command::new(
        "hincrbyfloat",
        4,
        "write denyoom fast",
        "write hash fast",
        Exec::Shard(hincrbyfloat),
    )
    .keys(1, 1, 1)
    .propagate(propagate::hincrbyfloat),
    Command::new(
        "hrandfield",
        -2,
        "readonly",
        "read hash slow",
        Exec::Shard(hrandfield),
    )
    .keys(1, 1, 1),
    Command::new(
        "hscan",
        -3,
        "readonly",
        "read hash slow",
        Exec::Shard(hscan),
    )
    .keys(1, 1, 1),
];

/// The hash in `e`, or WRONGTYPE.
fn as_hash(e: &mut Entry) -> Result<&mut Hash, Reply> {
    match &mut e.value {
        Value::Hash(h) => Ok(h),
        _ => Err(errors::wrongtype()),
    }
}

/// Read `key` as a hash: `Ok(None)` if missing, WRONGTYPE if another type. Mutable
/// because sampling a dict advances its incremental rehash.
fn read<'c>(ctx: &'c mut Ctx, key: &[u8]) -> Result<Option<&'c mut Hash>, Reply> {
    ctx.lookup_read(key).map(as_hash).transpose()
}

/// Run `f` on the hash at `key` (Redis's `hashTypeLookupWriteOrCreate`): on a fresh
/// one if the key is missing, stored only if `f` left it non-empty. `f` returns its
/// result and how many changes it made (added to the db's dirty count).
fn write<T>(
    ctx: &mut Ctx,
    key: &[u8],
    f: impl FnOnce(&mut Hash, &EncodingLimits) -> Result<(T, u64), Reply>,
) -> Result<T, Reply> {
    let limits = ctx.shard.config.encoding;
    let (result, changes) = match ctx.lookup_write(key) {
        Some(e) => f(as_hash(e)?, &limits)?,
        None => {
            let mut h = Hash::new();
            let (result, changes) = f(&mut h, &limits)?;
            if h.is_empty() {
                return Ok(result);
            }
            // Db::set counts one change itself.
            ctx.db().set(key, Value::Hash(h), false);
            (result, changes.saturating_sub(1))
        }
    };
    ctx.db().dirty += changes;
    Ok(result)
}

fn bulk(e: Item<'_>) -> Reply {
    Reply::Bulk(Bytes::from(e.to_vec()))
}

fn reply_of<T>(r: Result<T, Reply>, ok: impl FnOnce(T) -> Reply) -> Reply {
    r.map_or_else(|e| e, ok)
}

// ---------------------------------------------------------------------------------
// Writes.

/// `HSET key field value [field value ...]`: the number of fields created.
fn hset(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    reply_of(set_pairs(ctx, argv, "hset"), Reply::Int)
}

/// `HMSET key field value [field value ...]` (deprecated): HSET answering OK.
fn hmset(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    reply_of(set_pairs(ctx, argv, "hmset"), |_| Reply::ok())
}

fn set_pairs(ctx: &mut Ctx, argv: &[Bytes], name: &str) -> Result<i64, Reply> {
    if argv.len() % 2 == 1 {
        return Err(errors::wrong_arity(name));
    }
    let created = write(ctx, &argv[1], |h, limits| {
        h.prepare_write(argv[2..].iter().map(|a| &a[..]), limits);
        let created = argv[2..]
            .chunks_exact(2)
            .filter(|p| h.set(&p[0], &p[1], limits) == SetOutcome::Inserted)
            .count();
        Ok((created as i64, (argv.len() as u64 - 2) / 2))
    })?;
    ctx.notify(notify::HASH, "hset", &argv[1]);
    Ok(created)
}

/// `HSETNX key field value`: 1 if the field was created, 0 if it existed.
fn hsetnx(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let (field, value) = (&argv[2][..], &argv[3][..]);
    let r = write(ctx, &argv[1], |h, limits| {
        if h.contains(field) {
            return Ok((0, 0));
        }
        h.prepare_write([field, value], limits);
        h.set(field, value, limits);
        Ok((1, 1))
    });
    if r == Ok(1) {
        ctx.notify(notify::HASH, "hset", &argv[1]);
    }
    reply_of(r, Reply::Int)
}

/// `HDEL key field [field ...]`: the number of fields removed; deletes an emptied key.
fn hdel(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let key = &argv[1][..];
    let h = match ctx.lookup_write(key).map(as_hash) {
        None => return Reply::Int(0),
        Some(Err(e)) => return e,
        Some(Ok(h)) => h,
    };
    let mut deleted = 0u64;
    let mut emptied = false;
    for f in &argv[2..] {
        if h.delete(f) {
            deleted += 1;
            if h.is_empty() {
                emptied = true;
                break;
            }
        }
    }
    if deleted > 0 {
        ctx.notify(notify::HASH, "hdel", key);
    }
    if emptied {
        // Redis counts the removed fields, not the deletion.
        ctx.db().uncounted(|d| d.delete(key));
        ctx.notify(notify::GENERIC, "del", key);
    }
    ctx.db().dirty += deleted;
    Reply::Int(deleted as i64)
}

/// `HINCRBY key field increment`: the new value.
fn hincrby(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let incr = match args::int(&argv[3]) {
        Ok(i) => i,
        Err(e) => return e,
    };
    let field = &argv[2][..];
    let r = write(ctx, &argv[1], |h, limits| {
        let old = match h.get(field) {
            None => 0,
            Some(LpEntry::Int(i)) => i,
            Some(LpEntry::Str(s)) => parse_i64(s).ok_or(Reply::err(errors::HASH_NOT_INTEGER))?,
        };
        let new = old.checked_add(incr).ok_or(Reply::err(errors::OVERFLOW))?;
        h.set(field, itoa::Buffer::new().format(new).as_bytes(), limits);
        Ok((new, 1))
    });
    if r.is_ok() {
        ctx.notify(notify::HASH, "hincrby", &argv[1]);
    }
    reply_of(r, Reply::Int)
}

/// `HINCRBYFLOAT key field increment`: the new value, computed in x87 long double and
/// printed as Redis prints it (`%.17Lf`, trailing zeros removed).
fn hincrbyfloat(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let Some(incr) = LongDouble::parse(&argv[3]) else {
        return errors::not_float();
    };
    if !incr.is_finite() {
        return Reply::err(errors::VALUE_NAN);
    }
    let field = &argv[2][..];
    let r = write(ctx, &argv[1], |h, limits| {
        let old = match h.get(field) {
            None => LongDouble::ZERO,
            Some(LpEntry::Int(i)) => LongDouble::from_i64(i),
            Some(LpEntry::Str(s)) => {
                LongDouble::parse(s).ok_or(Reply::err(errors::HASH_NOT_FLOAT))?
            }
        };
        let sum = old + incr;
        if !sum.is_finite() {
            return Err(Reply::err(errors::INCREMENT_NAN));
        }
        let text = sum.to_human_string();
        h.set(field, text.as_bytes(), limits);
        Ok((text, 1))
    });
    if r.is_ok() {
        ctx.notify(notify::HASH, "hincrbyfloat", &argv[1]);
    }
    reply_of(r, |text| Reply::Bulk(Bytes::from(text.into_bytes())))
}

// ---------------------------------------------------------------------------------
// Reads.

/// `HGET key field`
fn hget(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    reply_of(read(ctx, &argv[1]), |h| {
        h.and_then(|h| h.get(&argv[2]).map(bulk))
            .unwrap_or(Reply::Null)
    })
}

/// `HMGET key field [field ...]`: a null for each missing field (all, for a missing key).
fn hmget(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    reply_of(read(ctx, &argv[1]), |h| {
        let get = |f: &Bytes| h.as_ref().and_then(|h| h.get(f)).map_or(Reply::Null, bulk);
        Reply::Array(argv[2..].iter().map(get).collect())
    })
}

/// `HLEN key`
fn hlen(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    reply_of(read(ctx, &argv[1]), |h| {
        Reply::Int(h.map_or(0, |h| h.len() as i64))
    })
}

/// `HSTRLEN key field`: the value's length, 0 if there is none.
fn hstrlen(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    reply_of(read(ctx, &argv[1]), |h| {
        let len = h.and_then(|h| h.get(&argv[2])).map_or(0, |v| v.str_len());
        Reply::Int(len as i64)
    })
}

/// `HEXISTS key field`
fn hexists(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    reply_of(read(ctx, &argv[1]), |h| {
        Reply::Int(h.is_some_and(|h| h.contains(&argv[2])) as i64)
    })
}

/// `HKEYS key`
fn hkeys(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    reply_of(read(ctx, &argv[1]), |h| {
        Reply::Array(h.map_or_else(Vec::new, |h| h.iter().map(|(f, _)| bulk(f)).collect()))
    })
}

/// `HVALS key`
fn hvals(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    reply_of(read(ctx, &argv[1]), |h| {
        Reply::Array(h.map_or_else(Vec::new, |h| h.iter().map(|(_, v)| bulk(v)).collect()))
    })
}

/// `HGETALL key`: a map in RESP3, a flat field/value array in RESP2.
fn hgetall(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    reply_of(read(ctx, &argv[1]), |h| {
        Reply::Map(h.map_or_else(Vec::new, |h| {
            h.iter().map(|(f, v)| (bulk(f), bulk(v))).collect()
        }))
    })
}

// ---------------------------------------------------------------------------------
// HRANDFIELD.

/// `HRANDFIELD key [count [WITHVALUES]]`: without a count one field (or null); with
/// one, up to `count` distinct fields, or exactly `-count` fields with repetitions.
/// The count is checked before the key, as Redis does. A huge negative count builds a
/// reply that large, as Redis does; nothing is allocated up front from the count.
fn hrandfield(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    if argv.len() < 3 {
        return with_rng(ctx, |ctx, rng| match read(ctx, &argv[1]) {
            Err(e) => e,
            Ok(None) => Reply::Null,
            Ok(Some(h)) => h.random_pair(rng).map_or(Reply::Null, |(f, _)| bulk(f)),
        });
    }
    let count = match args::int(&argv[2]) {
        Ok(c) if c == i64::MIN => return Reply::err(errors::COUNT_LLONG_MIN),
        Ok(c) => c,
        Err(e) => return e,
    };
    let with_values = match argv.len() {
        3 => false,
        4 if args::eq(&argv[3], "withvalues") => true,
        _ => return errors::syntax(),
    };
    if with_values && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
        return Reply::err(errors::OUT_OF_RANGE);
    }
    // Drawn with repetition: each field takes at least 6 bytes of reply, so a count
    // beyond the reply cap is refused before drawing. With values each pair is a
    // `Reply` (about 100 bytes in memory), so those are capped at 2^24 pairs (well
    // within the byte cap), as ZRANDMEMBER WITHSCORES is.
    let refused = match (count < 0, with_values) {
        (false, _) => Ok(()),
        (true, true) if count.unsigned_abs() > 1 << 24 => Err(random_reply::too_large()),
        (true, true) => Ok(()),
        (true, false) => random_reply::check(count.unsigned_abs(), 6),
    };
    with_rng(ctx, |ctx, rng| {
        let h = match read(ctx, &argv[1]) {
            Err(e) => return e,
            Ok(None) => return Reply::Array(Vec::new()),
            Ok(Some(h)) => h,
        };
        if let Err(e) = refused {
            return e;
        }
        if with_values {
            // Flat in RESP2, [field, value] arrays in RESP3.
            let mut pairs = Vec::new();
            h.random_pairs(rng, count.unsigned_abs(), count >= 0, |f, v| {
                pairs.push((bulk(f), bulk(v)));
            });
            return Reply::Pairs(pairs);
        }
        // Fields only: encoded as they are drawn, so a huge count costs what Redis's
        // output buffer costs (a few bytes per field), not a `Reply` per field.
        let mut out = RawArray::new();
        let mut too_large = false;
        h.random_pairs(rng, count.unsigned_abs(), count >= 0, |f, _| {
            if out.byte_len() > random_reply::MAX_BYTES {
                too_large = true;
                return;
            }
            super::push_entry(&mut out, f);
        });
        if too_large {
            return random_reply::too_large();
        }
        out.finish()
    })
}

/// Run `f` with the shard's random generator lent out, so that it can draw while
/// holding a value borrowed from the shard's db.
fn with_rng<T>(ctx: &mut Ctx, f: impl FnOnce(&mut Ctx, &mut SmallRng) -> T) -> T {
    let mut rng = std::mem::replace(&mut ctx.shard.rng, SmallRng::seed_from_u64(0));
    let r = f(ctx, &mut rng);
    ctx.shard.rng = rng;
    r
}

// ---------------------------------------------------------------------------------
// HSCAN.

/// `HSCAN key cursor [MATCH pattern] [COUNT count]`: the cursor is checked before the
/// key, the options after it (a missing key answers an empty scan whatever follows).
fn hscan(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let cursor = match args::scan_cursor(&argv[2]) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let h = match read(ctx, &argv[1]) {
        Err(e) => return e,
        Ok(None) => return scan_reply(0, Vec::new()),
        Ok(Some(h)) => h,
    };
    let (count, pattern) = match args::collection_scan_options(argv) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let mut items = Vec::new();
    let next = h.scan(cursor, count, |f, v| {
        let f = f.to_vec();
        if pattern.as_ref().is_none_or(|p| glob_match(p, &f, false)) {
            items.push(Reply::Bulk(Bytes::from(f)));
            items.push(bulk(v));
        }
    });
    scan_reply(next, items)
}

fn scan_reply(cursor: u64, items: Vec<Reply>) -> Reply {
    Reply::Array(vec![
        Reply::bulk(itoa::Buffer::new().format(cursor).as_bytes()),
        Reply::Array(items),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::testing::{run, shard};
    use crate::config::{Config, ConfigHandle};
    use crate::shard::Shard;
    use std::collections::{BTreeMap, HashSet};

    fn bulk(s: &str) -> Reply {
        Reply::bulk_str(s)
    }
    fn err(s: &str) -> Reply {
        Reply::error(s.to_string())
    }
    fn bulks(v: &[&str]) -> Reply {
        Reply::Array(v.iter().map(|s| bulk(s)).collect())
    }
    fn encoding(s: &Shard, key: &str) -> &'static str {
        s.dbs[0]
            .keys
            .get(key.as_bytes())
            .map(|e| e.value.encoding())
            .unwrap_or("none")
    }
    fn small_shard(entries: usize, value: usize) -> Shard {
        let mut c = Config::default();
        c.encoding.hash_max_listpack_entries = entries;
        c.encoding.hash_max_listpack_value = value;
        Shard::new(0, 1, ConfigHandle::new(c))
    }
    fn strings(r: &Reply) -> Vec<String> {
        match &r.clone().resp2_view() {
            Reply::Array(v) => v
                .iter()
                .map(|x| match x {
                    Reply::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
                    other => panic!("not a bulk: {other:?}"),
                })
                .collect(),
            other => panic!("not an array: {other:?}"),
        }
    }

    #[test]
    fn set_get_and_friends() {
        let mut s = shard();
        assert_eq!(
            run(&mut s, hset, &["hset", "h", "a", "1", "b", "x"]),
            Reply::Int(2)
        );
        assert_eq!(
            run(&mut s, hset, &["hset", "h", "a", "2", "c", "y"]),
            Reply::Int(1)
        );
        assert_eq!(
            run(&mut s, hset, &["hset", "h", "a", "1", "b"]),
            err("ERR wrong number of arguments for 'hset' command")
        );
        assert_eq!(
            run(&mut s, hmset, &["hmset", "h", "a", "1", "b"]),
            err("ERR wrong number of arguments for 'hmset' command")
        );
        assert_eq!(run(&mut s, hmset, &["hmset", "h", "d", "4"]), Reply::ok());
        assert_eq!(run(&mut s, hget, &["hget", "h", "a"]), bulk("2"));
        assert_eq!(run(&mut s, hget, &["hget", "h", "zz"]), Reply::Null);
        assert_eq!(run(&mut s, hget, &["hget", "nokey", "a"]), Reply::Null);
        assert_eq!(
            run(&mut s, hmget, &["hmget", "h", "a", "zz", "c"]),
            Reply::Array(vec![bulk("2"), Reply::Null, bulk("y")])
        );
        assert_eq!(
            run(&mut s, hmget, &["hmget", "nokey", "a", "b"]),
            Reply::Array(vec![Reply::Null, Reply::Null])
        );
        assert_eq!(run(&mut s, hlen, &["hlen", "h"]), Reply::Int(4));
        assert_eq!(run(&mut s, hlen, &["hlen", "nokey"]), Reply::Int(0));
        assert_eq!(run(&mut s, hstrlen, &["hstrlen", "h", "c"]), Reply::Int(1));
        assert_eq!(run(&mut s, hstrlen, &["hstrlen", "h", "zz"]), Reply::Int(0));
        assert_eq!(run(&mut s, hexists, &["hexists", "h", "a"]), Reply::Int(1));
        assert_eq!(run(&mut s, hexists, &["hexists", "h", "zz"]), Reply::Int(0));
        // A listpack answers in insertion order.
        assert_eq!(
            run(&mut s, hkeys, &["hkeys", "h"]),
            bulks(&["a", "b", "c", "d"])
        );
        assert_eq!(
            run(&mut s, hvals, &["hvals", "h"]),
            bulks(&["2", "x", "y", "4"])
        );
        assert_eq!(
            run(&mut s, hgetall, &["hgetall", "h"]),
            Reply::Map(vec![
                (bulk("a"), bulk("2")),
                (bulk("b"), bulk("x")),
                (bulk("c"), bulk("y")),
                (bulk("d"), bulk("4")),
            ])
        );
        assert_eq!(
            run(&mut s, hgetall, &["hgetall", "nokey"]),
            Reply::Map(vec![])
        );
        assert_eq!(
            run(&mut s, hkeys, &["hkeys", "nokey"]),
            Reply::Array(vec![])
        );
        assert_eq!(encoding(&s, "h"), "listpack");
    }

    #[test]
    fn wrong_type_everywhere() {
        let mut s = shard();
        let v = Value::Str(crate::storage::StrValue::from_set(b"v"));
        s.dbs[0].set(b"str", v, false);
        let wt = errors::wrongtype();
        let cases: &[(crate::commands::ShardFn, &[&str])] = &[
            (hset, &["hset", "str", "a", "1"]),
            (hsetnx, &["hsetnx", "str", "a", "1"]),
            (hget, &["hget", "str", "a"]),
            (hmget, &["hmget", "str", "a"]),
            (hdel, &["hdel", "str", "a"]),
            (hlen, &["hlen", "str"]),
            (hstrlen, &["hstrlen", "str", "a"]),
            (hexists, &["hexists", "str", "a"]),
            (hkeys, &["hkeys", "str"]),
            (hvals, &["hvals", "str"]),
            (hgetall, &["hgetall", "str"]),
            (hincrby, &["hincrby", "str", "a", "1"]),
            (hincrbyfloat, &["hincrbyfloat", "str", "a", "1"]),
            (hrandfield, &["hrandfield", "str"]),
            (hrandfield, &["hrandfield", "str", "3"]),
            (hscan, &["hscan", "str", "0"]),
        ];
        for (f, a) in cases {
            assert_eq!(run(&mut s, *f, a), wt, "{a:?}");
        }
        // Argument errors come first where Redis parses first.
        assert_eq!(
            run(&mut s, hincrby, &["hincrby", "str", "a", "x"]),
            errors::not_integer()
        );
        assert_eq!(
            run(&mut s, hincrbyfloat, &["hincrbyfloat", "str", "a", "x"]),
            errors::not_float()
        );
        assert_eq!(
            run(&mut s, hrandfield, &["hrandfield", "str", "x"]),
            errors::not_integer()
        );
        assert_eq!(
            run(&mut s, hscan, &["hscan", "str", "x"]),
            err("ERR invalid cursor")
        );
    }

    #[test]
    fn hsetnx_and_dirty() {
        let mut s = shard();
        assert_eq!(
            run(&mut s, hsetnx, &["hsetnx", "h", "a", "1"]),
            Reply::Int(1)
        );
        let dirty = s.dbs[0].dirty;
        assert_eq!(
            run(&mut s, hsetnx, &["hsetnx", "h", "a", "2"]),
            Reply::Int(0)
        );
        assert_eq!(s.dbs[0].dirty, dirty, "no change, no dirty");
        assert_eq!(run(&mut s, hget, &["hget", "h", "a"]), bulk("1"));
        assert_eq!(run(&mut s, hdel, &["hdel", "h", "zz"]), Reply::Int(0));
        assert_eq!(s.dbs[0].dirty, dirty);
        assert_eq!(
            run(&mut s, hsetnx, &["hsetnx", "h", "b", "2"]),
            Reply::Int(1)
        );
        assert!(s.dbs[0].dirty > dirty);
    }

    #[test]
    fn hdel_deletes_emptied_key() {
        let mut s = shard();
        run(&mut s, hset, &["hset", "h", "a", "1", "b", "2"]);
        assert_eq!(run(&mut s, hdel, &["hdel", "nokey", "a"]), Reply::Int(0));
        assert_eq!(
            run(&mut s, hdel, &["hdel", "h", "a", "a", "zz"]),
            Reply::Int(1)
        );
        assert_eq!(encoding(&s, "h"), "listpack");
        assert_eq!(run(&mut s, hdel, &["hdel", "h", "b", "c"]), Reply::Int(1));
        assert_eq!(encoding(&s, "h"), "none");
    }

    #[test]
    fn hincrby_rules() {
        let mut s = shard();
        assert_eq!(
            run(&mut s, hincrby, &["hincrby", "h", "n", "5"]),
            Reply::Int(5)
        );
        assert_eq!(
            run(&mut s, hincrby, &["hincrby", "h", "n", "-7"]),
            Reply::Int(-2)
        );
        for bad in ["+3", "-0", "1.5", " 1", "", "9223372036854775808"] {
            assert_eq!(
                run(&mut s, hincrby, &["hincrby", "h", "n", bad]),
                errors::not_integer(),
                "{bad:?}"
            );
        }
        run(
            &mut s,
            hset,
            &[
                "hset",
                "h",
                "s",
                "abc",
                "big",
                "9223372036854775807",
                "sp",
                " 1",
            ],
        );
        for f in ["s", "sp"] {
            assert_eq!(
                run(&mut s, hincrby, &["hincrby", "h", f, "1"]),
                err(errors::HASH_NOT_INTEGER)
            );
        }
        assert_eq!(
            run(&mut s, hincrby, &["hincrby", "h", "big", "1"]),
            err("ERR increment or decrement would overflow")
        );
        assert_eq!(
            run(
                &mut s,
                hincrby,
                &["hincrby", "h", "big", "-9223372036854775808"]
            ),
            Reply::Int(-1)
        );
        // A long field converts, like any write.
        let long = "f".repeat(65);
        run(&mut s, hincrby, &["hincrby", "h", &long, "1"]);
        assert_eq!(encoding(&s, "h"), "hashtable");
        assert_eq!(
            run(&mut s, hincrby, &["hincrby", "h", &long, "1"]),
            Reply::Int(2)
        );
    }

    #[test]
    fn hincrbyfloat_rules() {
        let mut s = shard();
        assert_eq!(
            run(&mut s, hincrbyfloat, &["hincrbyfloat", "h", "f", "0.1"]),
            bulk("0.1")
        );
        assert_eq!(
            run(&mut s, hincrbyfloat, &["hincrbyfloat", "h", "f", "0.2"]),
            bulk("0.3")
        );
        assert_eq!(
            run(&mut s, hincrbyfloat, &["hincrbyfloat", "h", "g", "0x10"]),
            bulk("16")
        );
        for bad in ["inf", "-inf", "+inf"] {
            assert_eq!(
                run(&mut s, hincrbyfloat, &["hincrbyfloat", "nokey", "f", bad]),
                err("ERR value is NaN or Infinity")
            );
        }
        for bad in ["nan", "abc", " 1", "1 ", ""] {
            assert_eq!(
                run(&mut s, hincrbyfloat, &["hincrbyfloat", "nokey", "f", bad]),
                errors::not_float()
            );
        }
        assert_eq!(encoding(&s, "nokey"), "none");
        run(
            &mut s,
            hset,
            &[
                "hset",
                "h",
                "s",
                "abc",
                "inf",
                "inf",
                "i",
                "9223372036854775807",
            ],
        );
        assert_eq!(
            run(&mut s, hincrbyfloat, &["hincrbyfloat", "h", "s", "1"]),
            err(errors::HASH_NOT_FLOAT)
        );
        assert_eq!(
            run(&mut s, hincrbyfloat, &["hincrbyfloat", "h", "inf", "1"]),
            err("ERR increment would produce NaN or Infinity")
        );
        assert_eq!(
            run(&mut s, hincrbyfloat, &["hincrbyfloat", "h", "i", "1"]),
            bulk("9223372036854775808")
        );
        assert_eq!(encoding(&s, "h"), "listpack");
        // A result longer than hash-max-listpack-value converts.
        run(&mut s, hincrbyfloat, &["hincrbyfloat", "h", "f", "1e70"]);
        assert_eq!(encoding(&s, "h"), "hashtable");
    }

    #[test]
    fn conversions_at_redis_thresholds() {
        let mut s = small_shard(3, 5);
        run(
            &mut s,
            hset,
            &["hset", "h", "a", "1", "b", "2", "c", "12345"],
        );
        assert_eq!(encoding(&s, "h"), "listpack");
        // HSETNX of an existing field with a long value changes nothing.
        assert_eq!(
            run(&mut s, hsetnx, &["hsetnx", "h", "a", "123456"]),
            Reply::Int(0)
        );
        assert_eq!(encoding(&s, "h"), "listpack");
        // HSET looks at every argument before writing, updates included.
        run(&mut s, hset, &["hset", "h", "a", "123456", "a", "1"]);
        assert_eq!(encoding(&s, "h"), "hashtable");
        assert_eq!(run(&mut s, hget, &["hget", "h", "a"]), bulk("1"));

        run(&mut s, hset, &["hset", "g", "a", "1", "b", "2", "c", "3"]);
        assert_eq!(encoding(&s, "g"), "listpack");
        run(&mut s, hset, &["hset", "g", "d", "4"]);
        assert_eq!(encoding(&s, "g"), "hashtable");
        run(&mut s, hdel, &["hdel", "g", "a", "b", "c"]);
        assert_eq!(encoding(&s, "g"), "hashtable");

        run(&mut s, hsetnx, &["hsetnx", "n", "abcdef", "1"]);
        assert_eq!(encoding(&s, "n"), "hashtable");
    }

    #[test]
    fn hrandfield_arguments() {
        let mut s = shard();
        assert_eq!(
            run(&mut s, hrandfield, &["hrandfield", "nokey"]),
            Reply::Null
        );
        assert_eq!(
            run(&mut s, hrandfield, &["hrandfield", "nokey", "5"]),
            Reply::Array(vec![])
        );
        run(&mut s, hset, &["hset", "h", "a", "1", "b", "2"]);
        let cases = [
            (
                &["hrandfield", "h", "-9223372036854775808"][..],
                "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
            ),
            (&["hrandfield", "h", "9223372036854775807", "withvalues"], "ERR value is out of range"),
            (&["hrandfield", "h", "-4611686018427387904", "withvalues"], "ERR value is out of range"),
            (&["hrandfield", "nokey", "4611686018427387904", "withvalues"], "ERR value is out of range"),
            (&["hrandfield", "h", "1", "withvalue"], "ERR syntax error"),
            (&["hrandfield", "h", "1", "withvalues", "x"], "ERR syntax error"),
            (&["hrandfield", "h", "abc"], "ERR value is not an integer or out of range"),
        ];
        for (a, e) in cases {
            assert_eq!(run(&mut s, hrandfield, a), err(e), "{a:?}");
        }
        assert_eq!(
            run(&mut s, hrandfield, &["hrandfield", "h", "0", "withvalues"]).resp2_view(),
            Reply::Array(vec![])
        );
        assert_eq!(
            strings(&run(
                &mut s,
                hrandfield,
                &["hrandfield", "h", "4611686018427387903", "withvalues"]
            )),
            ["a", "1", "b", "2"]
        );
    }

    #[test]
    fn hrandfield_counts_in_both_encodings() {
        for (mut s, n) in [
            (shard(), 20usize),
            (small_shard(4, 64), 20),
            (small_shard(4, 64), 200),
        ] {
            let mut argv = vec!["hset".to_string(), "h".into()];
            for i in 0..n {
                argv.push(format!("f{i}"));
                argv.push(format!("v{i}"));
            }
            let a: Vec<&str> = argv.iter().map(|x| x.as_str()).collect();
            run(&mut s, hset, &a);
            for count in [1i64, 3, 19, 20, 21, 100, -1, -5, -300] {
                let c = count.to_string();
                let r = strings(&run(
                    &mut s,
                    hrandfield,
                    &["hrandfield", "h", &c, "withvalues"],
                ));
                let want = if count > 0 {
                    (count as usize).min(n)
                } else {
                    count.unsigned_abs() as usize
                };
                assert_eq!(r.len(), 2 * want, "count {count} of {n}");
                for p in r.chunks(2) {
                    assert_eq!(p[0][1..], p[1][1..], "value goes with its field");
                }
                if count > 0 {
                    let distinct: HashSet<_> = r.chunks(2).map(|p| p[0].clone()).collect();
                    assert_eq!(distinct.len(), want);
                }
                let fields = strings(&run(&mut s, hrandfield, &["hrandfield", "h", &c]));
                assert_eq!(fields.len(), want);
            }
            match run(&mut s, hrandfield, &["hrandfield", "h"]) {
                Reply::Bulk(b) => assert!(b.starts_with(b"f")),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn hrandfield_draws_differ_between_calls() {
        let mut s = shard();
        let mut argv = vec!["hset".to_string(), "h".into()];
        for i in 0..50 {
            argv.push(format!("f{i}"));
            argv.push("v".into());
        }
        let a: Vec<&str> = argv.iter().map(|x| x.as_str()).collect();
        run(&mut s, hset, &a);
        let draws: HashSet<_> = (0..20)
            .map(|_| strings(&run(&mut s, hrandfield, &["hrandfield", "h", "-5"])))
            .collect();
        assert!(draws.len() > 1, "the shard's generator advances");
    }

    #[test]
    fn hscan_options_and_iteration() {
        let mut s = small_shard(8, 64);
        // A missing key answers an empty scan whatever the options.
        assert_eq!(
            run(&mut s, hscan, &["hscan", "nokey", "0", "count", "0"]),
            Reply::Array(vec![bulk("0"), Reply::Array(vec![])])
        );
        assert_eq!(
            run(&mut s, hscan, &["hscan", "nokey", "-"]),
            err("ERR invalid cursor")
        );
        run(
            &mut s,
            hset,
            &["hset", "h", "a1", "1", "b1", "2", "a2", "3"],
        );
        assert_eq!(
            run(
                &mut s,
                hscan,
                &["hscan", "h", "0", "match", "a*", "count", "1"]
            ),
            Reply::Array(vec![bulk("0"), bulks(&["a1", "1", "a2", "3"])])
        );
        for (a, e) in [
            (&["hscan", "h", "0", "count", "0"][..], "ERR syntax error"),
            (
                &["hscan", "h", "0", "count", "x"],
                "ERR value is not an integer or out of range",
            ),
            (&["hscan", "h", "0", "count"], "ERR syntax error"),
            (&["hscan", "h", "0", "type", "hash"], "ERR syntax error"),
            (&["hscan", "h", "0", "novalues"], "ERR syntax error"),
            (&["hscan", "h", " 0"], "ERR invalid cursor"),
            (
                &["hscan", "h", "18446744073709551616"],
                "ERR invalid cursor",
            ),
        ] {
            assert_eq!(run(&mut s, hscan, a), err(e), "{a:?}");
        }
        // A hashtable is walked with the dict's cursor, every field exactly once.
        let mut argv = vec!["hset".to_string(), "t".into()];
        for i in 0..500 {
            argv.push(format!("f{i}"));
            argv.push(format!("{i}"));
        }
        let a: Vec<&str> = argv.iter().map(|x| x.as_str()).collect();
        run(&mut s, hset, &a);
        assert_eq!(encoding(&s, "t"), "hashtable");
        let mut seen = BTreeMap::new();
        let mut cursor = "0".to_string();
        let mut calls = 0;
        loop {
            let r = run(&mut s, hscan, &["hscan", "t", &cursor, "count", "7"]);
            let Reply::Array(parts) = r else { panic!() };
            let Reply::Bulk(c) = &parts[0] else { panic!() };
            cursor = String::from_utf8_lossy(c).into_owned();
            let items = strings(&parts[1]);
            for p in items.chunks(2) {
                assert!(seen.insert(p[0].clone(), p[1].clone()).is_none());
            }
            calls += 1;
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(seen.len(), 500);
        assert!(calls > 10, "COUNT bounds each call ({calls} calls)");
        assert!(seen.iter().all(|(f, v)| f[1..] == v[..]));
    }

    #[test]
    fn replies_from_ints_and_long_strings() {
        let mut s = shard();
        let long = "z".repeat(100);
        run(&mut s, hset, &["hset", "h", "1", "-12", "x", &long]);
        assert_eq!(run(&mut s, hstrlen, &["hstrlen", "h", "1"]), Reply::Int(3));
        assert_eq!(run(&mut s, hget, &["hget", "h", "1"]), bulk("-12"));
        assert_eq!(
            run(&mut s, hstrlen, &["hstrlen", "h", "x"]),
            Reply::Int(100)
        );
        assert_eq!(encoding(&s, "h"), "hashtable");
    }
}
