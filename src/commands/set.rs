//! Set commands (Redis's `t_set.c`): SADD and friends, random picks and pops, the
//! algebra (SINTER / SUNION / SDIFF and their STORE and CARD forms), SSCAN.
//!
//! The one idea to hold: a result set is built the way Redis 7.0 builds it, because its
//! encoding is observable. SINTERSTORE / SUNIONSTORE / SDIFFSTORE start from an empty
//! intset and add members one by one (so an all-integer result of at most
//! `set-max-intset-entries` members is an intset); SDIFF picks between Redis's two
//! algorithms with Redis's cost estimate (the second adds then removes, so it can leave
//! a small all-integer hashtable); SPOP with a count close to the size keeps the
//! survivors in a new set started by `setTypeCreate` of the first survivor. Replies
//! that are sets in RESP3 (SMEMBERS, SINTER, SUNION, SDIFF, SPOP with a count) are
//! [`Reply::Set`]; SRANDMEMBER with a count is an array, as in Redis.
//!
//! Huge counts: `SRANDMEMBER key -N` answers N members, as Redis does, encoded as they
//! are drawn into one buffer (a few bytes per member, like Redis's output buffer; never
//! allocated from N up front); past [`random_reply::MAX_BYTES`] of reply it answers an
//! error instead of exhausting memory (Redis would grow its output buffer until the
//! client-output-buffer-limit or the OOM killer stops it).

use super::{args, errors, propagate, random_reply, Command, Ctx, Exec, Touch};
use crate::notify;
use crate::protocol::parse::parse_i64;
use crate::protocol::reply::RawArray;
use crate::protocol::Reply;
use crate::storage::db::Entry;
use crate::storage::glob::glob_match;
use crate::storage::set::{Member, Set};
use crate::storage::Value;
use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::Rng;

pub static COMMANDS: &[Command] = &[
    Command::new(
        "sadd",
        -3,
        "write denyoom fast",
        "write set fast",
        Exec::Shard(sadd),
    )
    .keys(1, 1, 1)
    .verbatim(),
    Command::new(
        "srem",
        -3,
        "write fast",
        "write set fast",
        Exec::Shard(srem),
    )
    .keys(1, 1, 1)
    .verbatim(),
    Command::new(
        "smembers",
        2,
        "readonly",
        "read set slow",
        Exec::Shard(smembers),
    )
    .keys(1, 1, 1),
    Command::new(
        "sismember",
        3,
        "readonly fast",
        "read set fast",
        Exec::Shard(sismember),
    )
    .keys(1, 1, 1),
    Command::new(
        "smismember",
        -3,
        "readonly fast",
        "read set fast",
        Exec::Shard(smismember),
    )
    .keys(1, 1, 1),
    Command::new(
        "scard",
        2,
        "readonly fast",
        "read set fast",
        Exec::Shard(scard),
    )
    .keys(1, 1, 1),
    Command::new(
        "spop",
        -2,
        "write fast",
        "write set fast",
        Exec::Shard(spop),
    )
    .keys(1, 1, 1)
    .propagate(propagate::spop),
    Command::new(
        "srandmember",
        -2,
        "readonly",
        "read set slow",
        Exec::Shard(srandmember),
    )
    .keys(1, 1, 1),
    // Redis gives SMOVE two key specs (source RW access delete, destination RW
    // insert); the table has one, so it carries the source's flags.
    Command::new(
        "smove",
        4,
        "write fast",
        "write set fast",
        Exec::Shard(smove),
    )
    .keys(1, 2, 1)
    .verbatim()
    .touch(Touch::UnlessMember { key: 2, member: 3 }),
    Command::new(
        "sinter",
        -2,
        "readonly",
        "read set slow",
        Exec::Shard(sinter),
    )
    .keys(1, -1, 1),
    Command::new(
        "sintercard",
        -3,
        "readonly movablekeys",
        "read set slow",
        Exec::Shard(sintercard),
    )
    .keys(0, 0, 0)
    .find_keys(sintercard_keys),
    // The STORE forms: Redis's two key specs (destination, sources) become one with
    // the destination's flags.
    Command::new(
        "sinterstore",
        -3,
        "write denyoom",
        "write set slow",
        Exec::Shard(sinterstore),
    )
    .keys(1, -1, 1)
    .verbatim()
    .touch(Touch::Only(1)),
    Command::new(
        "sunion",
        -2,
        "readonly",
        "read set slow",
        Exec::Shard(sunion),
    )
    .keys(1, -1, 1),
    Command::new(
        "sunionstore",
        -3,
        "write denyoom",
        "write set slow",
        Exec::Shard(sunionstore),
    )
    .keys(1, -1, 1)
    .verbatim()
    .touch(Touch::Only(1)),
    Command::new("sdiff", -2, "readonly", "read set slow", Exec::Shard(sdiff)).keys(1, -1, 1),
    Command::new(
        "sdiffstore",
        -3,
        "write denyoom",
        "write set slow",
        Exec::Shard(sdiffstore),
    )
    .keys(1, -1, 1)
    .verbatim()
    .touch(Touch::Only(1)),
    Command::new("sscan", -3, "readonly", "read set slow", Exec::Shard(sscan)).keys(1, 1, 1),
];

/// SPOP keeps the survivors in a new set when fewer than count/5 survive.
const SPOP_MOVE_STRATEGY_MUL: usize = 5;
/// SRANDMEMBER copies the set and drops members when count is more than a third of it.
const SRANDMEMBER_SUB_STRATEGY_MUL: usize = 3;

/// A handler's body: the error side is the reply too.
fn reply(r: Result<Reply, Reply>) -> Reply {
    r.unwrap_or_else(|e| e)
}

fn as_set(e: &mut Entry) -> Result<&mut Set, Reply> {
    match &mut e.value {
        Value::Set(s) => Ok(s),
        _ => Err(errors::wrongtype()),
    }
}

/// The set at `key` for reading (keyspace hit/miss, LRU), `None` if missing.
fn read<'c>(ctx: &'c mut Ctx, key: &[u8]) -> Result<Option<&'c mut Set>, Reply> {
    ctx.lookup_read(key).map(as_set).transpose()
}

/// The set at `key` for writing, `None` if missing.
fn write<'c>(ctx: &'c mut Ctx, key: &[u8]) -> Result<Option<&'c mut Set>, Reply> {
    ctx.lookup_write(key).map(as_set).transpose()
}

fn max_intset(ctx: &Ctx) -> usize {
    ctx.shard.config.encoding.set_max_intset_entries
}

/// Run `f` with the shard's random generator while `ctx` stays usable.
fn with_rng<T>(ctx: &mut Ctx, f: impl FnOnce(&mut Ctx, &mut SmallRng) -> T) -> T {
    let mut rng = ctx.shard.rng.clone();
    let out = f(ctx, &mut rng);
    ctx.shard.rng = rng;
    out
}

fn bytes_of(m: Member<'_>) -> Bytes {
    match m {
        Member::Int(i) => Bytes::copy_from_slice(itoa::Buffer::new().format(i).as_bytes()),
        Member::Str(s) => Bytes::copy_from_slice(s),
    }
}

fn bulk(m: Member<'_>) -> Reply {
    Reply::Bulk(bytes_of(m))
}

/// SADD key member [member ...]
fn sadd(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    reply((|| {
        let max = max_intset(ctx);
        let (key, members) = (&argv[1], &argv[2..]);
        let added = match write(ctx, key)? {
            Some(s) => members.iter().filter(|m| s.add(m, max)).count(),
            None => {
                let mut s = Set::for_member(&members[0]);
                let added = members.iter().filter(|m| s.add(m, max)).count();
                ctx.db().set(key, Value::Set(s), false);
                // Db::set counted one change; Redis counts one per member added.
                ctx.db().dirty -= 1;
                added
            }
        };
        ctx.db().dirty += added as u64;
        if added > 0 {
            ctx.notify(notify::SET, "sadd", key);
        }
        Ok(Reply::Int(added as i64))
    })())
}

/// SREM key member [member ...]
fn srem(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    reply((|| {
        let key = &argv[1];
        let Some(s) = write(ctx, key)? else {
            return Ok(Reply::Int(0));
        };
        let mut removed = 0u64;
        for m in &argv[2..] {
            if s.remove(m) {
                removed += 1;
                if s.is_empty() {
                    break;
                }
            }
        }
        let emptied = s.is_empty();
        if removed > 0 {
            ctx.notify(notify::SET, "srem", key);
        }
        if emptied {
            ctx.db().delete(key);
            ctx.notify(notify::GENERIC, "del", key);
        }
        ctx.db().dirty += removed - u64::from(emptied);
        Ok(Reply::Int(removed as i64))
    })())
}

/// SMEMBERS key: Redis 7.0 runs it as a one-key SINTER.
fn smembers(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    sinter(ctx, argv)
}

/// SISMEMBER key member
fn sismember(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    reply(read(ctx, &argv[1]).map(|s| Reply::Int(s.is_some_and(|s| s.contains(&argv[2])) as i64)))
}

/// SMISMEMBER key member [member ...]: a missing key is an empty set.
fn smismember(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    reply(read(ctx, &argv[1]).map(|s| {
        let s = s.as_deref();
        Reply::Array(
            argv[2..]
                .iter()
                .map(|m| Reply::Int(s.is_some_and(|s| s.contains(m)) as i64))
                .collect(),
        )
    }))
}

/// SCARD key
fn scard(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    reply(read(ctx, &argv[1]).map(|s| Reply::Int(s.map_or(0, |s| s.len()) as i64)))
}

/// SPOP key [count]
fn spop(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    match argv.len() {
        2 => reply(spop_one(ctx, &argv[1])),
        3 => reply(spop_count(ctx, argv)),
        _ => errors::syntax(),
    }
}

fn spop_one(ctx: &mut Ctx, key: &[u8]) -> Result<Reply, Reply> {
    let popped = with_rng(ctx, |ctx, rng| -> Result<_, Reply> {
        Ok(write(ctx, key)?.map(|s| (s.pop(rng), s.is_empty())))
    })?;
    let Some((m, emptied)) = popped else {
        return Ok(Reply::Null);
    };
    ctx.notify(notify::SET, "spop", key);
    if emptied {
        ctx.db().delete(key);
        ctx.notify(notify::GENERIC, "del", key);
    } else {
        ctx.db().dirty += 1;
    }
    Ok(m.map_or(Reply::Null, |m| Reply::Bulk(Bytes::from(m))))
}

fn spop_count(ctx: &mut Ctx, argv: &[Bytes]) -> Result<Reply, Reply> {
    let key = &argv[1];
    let count = parse_i64(&argv[2])
        .filter(|&n| n >= 0)
        .ok_or(Reply::err(errors::NOT_POSITIVE))?;
    let max = max_intset(ctx);
    let db = ctx.db;
    let Some(s) = write(ctx, key)? else {
        return Ok(Reply::Set(vec![]));
    };
    if count == 0 {
        return Ok(Reply::Set(vec![]));
    }
    let size = s.len();
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    notify::raise(notify::SET, "spop", db, key);
    // CASE 1: everything goes; the reply is the set as SUNION of it would give it.
    if count >= size {
        let all = union(&[Some(&*s)], max);
        let out = members_reply(&all);
        ctx.db().delete(key);
        ctx.notify(notify::GENERIC, "del", key);
        ctx.db().dirty += size as u64 - 1;
        return Ok(out);
    }
    let remaining = size - count;
    let out = with_rng(ctx, |ctx, rng| -> Result<Reply, Reply> {
        let Some(s) = write(ctx, key)? else {
            return Ok(Reply::Set(vec![]));
        };
        if remaining * SPOP_MOVE_STRATEGY_MUL > count {
            // CASE 2: few to pop: pop them one by one.
            let mut out = Vec::new();
            for _ in 0..count {
                if let Some(m) = s.pop(rng) {
                    out.push(Reply::Bulk(Bytes::from(m)));
                }
            }
            return Ok(Reply::Set(out));
        }
        // CASE 3: few survive: move the survivors to a new set, answer the rest.
        let mut survivors: Option<Set> = None;
        for _ in 0..remaining {
            let Some(m) = s.pop(rng) else { break };
            survivors
                .get_or_insert_with(|| Set::for_member(&m))
                .add(&m, max);
        }
        let out = members_reply(s);
        if let Some(new) = survivors {
            *s = new;
        }
        Ok(out)
    })?;
    ctx.db().dirty += count as u64;
    Ok(out)
}

/// The members of `s` as a RESP3 set reply.
fn members_reply(s: &Set) -> Reply {
    let mut out = Vec::new();
    out.extend(s.iter().map(bulk));
    Reply::Set(out)
}

/// SRANDMEMBER key [count]
fn srandmember(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    match argv.len() {
        2 => reply(with_rng(ctx, |ctx, rng| {
            let m = read(ctx, &argv[1])?.and_then(|s| s.random(rng).map(bulk));
            Ok(m.unwrap_or(Reply::Null))
        })),
        3 => reply(srandmember_count(ctx, argv)),
        _ => errors::syntax(),
    }
}

fn srandmember_count(ctx: &mut Ctx, argv: &[Bytes]) -> Result<Reply, Reply> {
    let n = args::int(&argv[2])?;
    if n == i64::MIN {
        return Err(Reply::err(errors::COUNT_LLONG_MIN));
    }
    let (count, unique) = (n.unsigned_abs(), n >= 0);
    with_rng(ctx, |ctx, rng| {
        let Some(s) = read(ctx, &argv[1])? else {
            return Ok(Reply::Array(vec![]));
        };
        if count == 0 {
            return Ok(Reply::Array(vec![]));
        }
        let size = s.len();
        // CASE 1: repetitions allowed (or a single pick).
        if !unique || count == 1 {
            return random_picks(s, count, rng);
        }
        let count = count as usize; // < 2^63, and below `size` from here on unless CASE 2
                                    // CASE 2: the whole set.
        if count >= size {
            return Ok(Reply::Array(s.iter().map(bulk).collect()));
        }
        let picked: Vec<Bytes> = if count * SRANDMEMBER_SUB_STRATEGY_MUL > size {
            // CASE 3: copy the set, drop random members until `count` are left.
            let mut all: Vec<Bytes> = s.iter().map(bytes_of).collect();
            while all.len() > count {
                let i = rng.gen_range(0..all.len());
                all.swap_remove(i);
            }
            all
        } else {
            // CASE 4: draw until `count` distinct members were seen.
            let mut seen = std::collections::HashSet::new();
            let mut out = Vec::new();
            while out.len() < count {
                let Some(m) = s.random(rng).map(bytes_of) else {
                    break;
                };
                if seen.insert(m.clone()) {
                    out.push(m);
                }
            }
            out
        };
        Ok(Reply::Array(picked.into_iter().map(Reply::Bulk).collect()))
    })
}

/// `count` members drawn with repetition, encoded as they are drawn; when the draws
/// outnumber the members, each member's bytes are made once.
fn random_picks(s: &mut Set, count: u64, rng: &mut SmallRng) -> Result<Reply, Reply> {
    random_reply::check(count, 6)?;
    let mut out = RawArray::with_len(count as usize);
    if count >= s.len() as u64 {
        let members: Vec<Bytes> = s.iter().map(bytes_of).collect();
        for _ in 0..count {
            out.push(&members[rng.gen_range(0..members.len())]);
            if out.byte_len() > random_reply::MAX_BYTES {
                return Err(random_reply::too_large());
            }
        }
    } else {
        for _ in 0..count {
            if let Some(m) = s.random(rng) {
                out.push(&bytes_of(m));
            }
        }
    }
    Ok(out.finish())
}

/// SMOVE source destination member
fn smove(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    reply((|| {
        let (src, dst, m) = (&argv[1], &argv[2], &argv[3]);
        let max = max_intset(ctx);
        // Both keys are looked up (and expired) before anything else, as in Redis.
        let src_exists = write(ctx, src).map(|s| s.is_some());
        let dst_exists = write(ctx, dst).map(|s| s.is_some());
        if let Ok(false) = src_exists {
            return Ok(Reply::Int(0));
        }
        src_exists?;
        let dst_exists = dst_exists?;
        let Some(s) = write(ctx, src)? else {
            return Ok(Reply::Int(0));
        };
        if src == dst {
            return Ok(Reply::Int(s.contains(m) as i64));
        }
        if !s.remove(m) {
            return Ok(Reply::Int(0));
        }
        let emptied = s.is_empty();
        ctx.notify(notify::SET, "srem", src);
        if emptied {
            ctx.db().delete(src);
            ctx.notify(notify::GENERIC, "del", src);
        } else {
            ctx.db().dirty += 1;
        }
        let added = if dst_exists {
            let d = write(ctx, dst)?;
            let added = d.is_some_and(|d| d.add(m, max));
            if added {
                ctx.db().dirty += 1;
            }
            added
        } else {
            let mut d = Set::for_member(m);
            d.add(m, max);
            ctx.db().set(dst, Value::Set(d), false);
            true
        };
        if added {
            ctx.notify(notify::SET, "sadd", dst);
        }
        Ok(Reply::Int(1))
    })())
}

/// Look up every key in order (expiring, counting hits and misses) and check types:
/// WRONGTYPE at the first key holding something else, even after a missing key.
/// Returns which keys exist.
fn check_sets(ctx: &mut Ctx, keys: &[Bytes]) -> Result<Vec<bool>, Reply> {
    keys.iter()
        .map(|k| read(ctx, k).map(|s| s.is_some()))
        .collect()
}

/// The sets at `keys` (after [`check_sets`]), `None` for missing ones.
fn sets_of<'a>(ctx: &'a Ctx, keys: &[Bytes]) -> Vec<Option<&'a Set>> {
    let db = &ctx.shard.dbs[ctx.db];
    keys.iter()
        .map(|k| match db.keys.get(&k[..]) {
            Some(Entry {
                value: Value::Set(s),
                ..
            }) => Some(s),
            _ => None,
        })
        .collect()
}

/// True if `m`, a member of another set, is in `s`.
fn has(s: &Set, m: Member<'_>) -> bool {
    match (s, m) {
        (Set::Intset(i), Member::Int(v)) => i.contains(v),
        (_, Member::Str(b)) => s.contains(b),
        (_, m) => s.contains(&m.to_vec()),
    }
}

/// Walk the intersection of `sets` (all present): smallest set first, each member
/// tested against the others; `f` returns false to stop early.
fn intersect(sets: &mut [&Set], mut f: impl FnMut(Member<'_>) -> bool) {
    sets.sort_by_key(|s| s.len());
    let Some((first, rest)) = sets.split_first() else {
        return;
    };
    for m in first.iter() {
        if rest.iter().all(|o| std::ptr::eq(*o, *first) || has(o, m)) && !f(m) {
            return;
        }
    }
}

/// SINTER key [key ...]
fn sinter(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    reply((|| {
        let keys = &argv[1..];
        if check_sets(ctx, keys)?.contains(&false) {
            return Ok(Reply::Set(vec![]));
        }
        let mut sets: Vec<&Set> = sets_of(ctx, keys).into_iter().flatten().collect();
        let mut out = Vec::new();
        intersect(&mut sets, |m| {
            out.push(bulk(m));
            true
        });
        Ok(Reply::Set(out))
    })())
}

/// Keys of SINTERCARD: `numkeys` of them after it (none when numkeys is invalid; the
/// command then fails before touching a key).
fn sintercard_keys(argv: &[Bytes]) -> Vec<usize> {
    match argv.get(1).and_then(|b| parse_i64(b)) {
        Some(n) if n >= 1 && (n as u64) <= argv.len().saturating_sub(2) as u64 => {
            (2..2 + n as usize).collect()
        }
        _ => Vec::new(),
    }
}

/// SINTERCARD numkeys key [key ...] [LIMIT limit]
fn sintercard(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    reply((|| {
        let numkeys = parse_i64(&argv[1])
            .filter(|&n| n >= 1)
            .ok_or(Reply::err(errors::NUMKEYS_NOT_POSITIVE))?;
        if numkeys as u64 > (argv.len() - 2) as u64 {
            return Err(Reply::err(errors::NUMKEYS_TOO_MANY));
        }
        let end = 2 + numkeys as usize;
        let mut limit = 0u64;
        let mut i = end;
        while i < argv.len() {
            if args::eq(&argv[i], "limit") && i + 1 < argv.len() {
                limit = parse_i64(&argv[i + 1])
                    .filter(|&n| n >= 0)
                    .ok_or(Reply::err(errors::LIMIT_NEGATIVE))? as u64;
                i += 2;
            } else {
                return Err(errors::syntax());
            }
        }
        let keys = &argv[2..end];
        if check_sets(ctx, keys)?.contains(&false) {
            return Ok(Reply::Int(0));
        }
        let mut sets: Vec<&Set> = sets_of(ctx, keys).into_iter().flatten().collect();
        let mut n = 0u64;
        intersect(&mut sets, |_| {
            n += 1;
            limit == 0 || n < limit
        });
        Ok(Reply::Int(n as i64))
    })())
}

/// Store `result` at `dst` (dropping any TTL) and raise `event`, or delete `dst` when
/// it is empty (raising `del` if there was one).
fn store(ctx: &mut Ctx, dst: &[u8], result: Set, event: &'static str) -> Reply {
    let n = result.len();
    if n > 0 {
        ctx.db().set(dst, Value::Set(result), false);
        ctx.notify(notify::SET, event, dst);
    } else if ctx.db().delete(dst) {
        ctx.notify(notify::GENERIC, "del", dst);
    }
    Reply::Int(n as i64)
}

/// SINTERSTORE destination key [key ...]
fn sinterstore(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    reply((|| {
        let (dst, keys) = (&argv[1], &argv[2..]);
        let max = max_intset(ctx);
        if check_sets(ctx, keys)?.contains(&false) {
            return Ok(store(ctx, dst, Set::default(), "sinterstore"));
        }
        let mut sets: Vec<&Set> = sets_of(ctx, keys).into_iter().flatten().collect();
        let mut result = Set::default();
        let mut buf = Vec::new();
        intersect(&mut sets, |m| {
            buf.clear();
            m.write_to(&mut buf);
            result.add(&buf, max);
            true
        });
        Ok(store(ctx, dst, result, "sinterstore"))
    })())
}

/// The union of `sets`, built from an empty intset as Redis does.
fn union(sets: &[Option<&Set>], max: usize) -> Set {
    let mut out = Set::default();
    let mut buf = Vec::new();
    for s in sets.iter().flatten() {
        for m in s.iter() {
            buf.clear();
            m.write_to(&mut buf);
            out.add(&buf, max);
        }
    }
    out
}

/// The difference `sets[0] - sets[1..]`, with Redis's choice of algorithm (which
/// decides whether a small all-integer result can end up a hashtable).
fn difference(keys: &[Bytes], sets: &[Option<&Set>], max: usize) -> Set {
    let mut out = Set::default();
    let Some(first) = sets[0] else {
        return out;
    };
    // A later key naming the first set makes the result empty.
    if keys[1..]
        .iter()
        .zip(&sets[1..])
        .any(|(k, s)| s.is_some() && *k == keys[0])
    {
        return out;
    }
    let present = sets.iter().flatten();
    let algo_one_work = present.clone().count() * first.len() / 2;
    let algo_two_work: usize = present.map(|s| s.len()).sum();
    let mut buf = Vec::new();
    if algo_one_work <= algo_two_work {
        // Algorithm 1: each member of the first set not in any other.
        for m in first.iter() {
            if !sets[1..].iter().flatten().any(|o| has(o, m)) {
                buf.clear();
                m.write_to(&mut buf);
                out.add(&buf, max);
            }
        }
    } else {
        // Algorithm 2: add the first set, remove the others' members.
        for (j, s) in sets.iter().enumerate() {
            let Some(s) = s else { continue };
            for m in s.iter() {
                buf.clear();
                m.write_to(&mut buf);
                if j == 0 {
                    out.add(&buf, max);
                } else {
                    out.remove(&buf);
                }
            }
            if out.is_empty() {
                break;
            }
        }
    }
    out
}

/// SUNION / SDIFF and their STORE forms (Redis's `sunionDiffGenericCommand`).
fn union_or_diff(ctx: &mut Ctx, keys: &[Bytes], dst: Option<&[u8]>, diff: bool) -> Reply {
    reply((|| {
        let max = max_intset(ctx);
        check_sets(ctx, keys)?;
        let sets = sets_of(ctx, keys);
        let result = if diff {
            difference(keys, &sets, max)
        } else {
            union(&sets, max)
        };
        Ok(match dst {
            Some(dst) => {
                let event = if diff { "sdiffstore" } else { "sunionstore" };
                store(ctx, dst, result, event)
            }
            None => members_reply(&result),
        })
    })())
}

/// SUNION key [key ...]
fn sunion(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    union_or_diff(ctx, &argv[1..], None, false)
}

/// SUNIONSTORE destination key [key ...]
fn sunionstore(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    union_or_diff(ctx, &argv[2..], Some(&argv[1]), false)
}

/// SDIFF key [key ...]
fn sdiff(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    union_or_diff(ctx, &argv[1..], None, true)
}

/// SDIFFSTORE destination key [key ...]
fn sdiffstore(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    union_or_diff(ctx, &argv[2..], Some(&argv[1]), true)
}

/// SSCAN key cursor [MATCH pattern] [COUNT count]: an intset whole with cursor 0; a
/// table bucket by bucket until `count` members were gathered or 10 x count buckets
/// were visited, as Redis's `scanGenericCommand`; MATCH filters afterwards.
fn sscan(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    reply((|| {
        let mut cursor = args::scan_cursor(&argv[2])?;
        let Some(s) = read(ctx, &argv[1])? else {
            return Ok(scan_reply(0, vec![]));
        };
        let (count, pattern) = args::collection_scan_options(argv)?;
        let mut found: Vec<Bytes> = Vec::new();
        let mut max_iterations = count.saturating_mul(10);
        loop {
            cursor = s.scan(cursor, |m| found.push(bytes_of(m)));
            if cursor == 0 || max_iterations == 0 || found.len() >= count {
                break;
            }
            max_iterations -= 1;
        }
        if let Some(p) = pattern {
            found.retain(|m| glob_match(&p, m, false));
        }
        Ok(scan_reply(cursor, found))
    })())
}

fn scan_reply(cursor: u64, members: Vec<Bytes>) -> Reply {
    Reply::Array(vec![
        Reply::Bulk(Bytes::copy_from_slice(
            itoa::Buffer::new().format(cursor).as_bytes(),
        )),
        Reply::Array(members.into_iter().map(Reply::Bulk).collect()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::testing::{argv, run, shard};
    use crate::commands::ShardFn;
    use crate::shard::Shard;

    fn int(r: Reply) -> i64 {
        match r {
            Reply::Int(i) => i,
            other => panic!("not an integer: {other:?}"),
        }
    }

    /// The members of an array or set reply, sorted.
    fn sorted(r: Reply) -> Vec<String> {
        let (Reply::Array(v) | Reply::Set(v)) = r.resp2_view() else {
            panic!("not a collection")
        };
        let mut out: Vec<String> = v
            .into_iter()
            .map(|m| match m {
                Reply::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
                other => panic!("not a bulk: {other:?}"),
            })
            .collect();
        out.sort();
        out
    }

    fn encoding(s: &mut Shard, key: &str) -> &'static str {
        match s.dbs[0].keys.get(key.as_bytes()) {
            Some(e) => e.value.encoding(),
            None => "none",
        }
    }

    fn exists(s: &Shard, key: &str) -> bool {
        s.dbs[0].keys.contains_key(key.as_bytes())
    }

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn add_remove_and_membership() {
        let mut s = shard();
        assert_eq!(
            int(run(&mut s, sadd, &["sadd", "k", "1", "2", "2", "3"])),
            3
        );
        assert_eq!(encoding(&mut s, "k"), "intset");
        assert_eq!(int(run(&mut s, scard, &["scard", "k"])), 3);
        assert_eq!(int(run(&mut s, sismember, &["sismember", "k", "2"])), 1);
        assert_eq!(int(run(&mut s, sismember, &["sismember", "k", "02"])), 0);
        assert_eq!(
            run(&mut s, smismember, &["smismember", "k", "1", "x", "3"]),
            Reply::Array(vec![Reply::Int(1), Reply::Int(0), Reply::Int(1)])
        );
        assert_eq!(
            run(&mut s, smismember, &["smismember", "nokey", "1"]),
            Reply::Array(vec![Reply::Int(0)])
        );
        let dirty = s.dbs[0].dirty;
        assert_eq!(int(run(&mut s, sadd, &["sadd", "k", "1"])), 0);
        assert_eq!(
            s.dbs[0].dirty, dirty,
            "SADD of a present member changes nothing"
        );
        assert_eq!(int(run(&mut s, sadd, &["sadd", "k", "a"])), 1);
        assert_eq!(encoding(&mut s, "k"), "hashtable");
        assert_eq!(
            sorted(run(&mut s, smembers, &["smembers", "k"])),
            strs(&["1", "2", "3", "a"])
        );
        assert_eq!(int(run(&mut s, srem, &["srem", "k", "1", "9", "2"])), 2);
        assert_eq!(int(run(&mut s, srem, &["srem", "k", "3", "a", "3"])), 2);
        assert!(!exists(&s, "k"), "the last SREM deletes the key");
        assert_eq!(int(run(&mut s, srem, &["srem", "k", "3"])), 0);
        assert_eq!(
            run(&mut s, smembers, &["smembers", "k"]),
            Reply::Set(vec![])
        );
        // Small sets of strings are hash tables in 7.0.
        run(&mut s, sadd, &["sadd", "s", "a"]);
        assert_eq!(encoding(&mut s, "s"), "hashtable");
    }

    #[test]
    fn wrong_types() {
        let mut s = shard();
        s.dbs[0].set(
            b"str",
            Value::Str(crate::storage::StrValue::from_set(b"v")),
            false,
        );
        run(&mut s, sadd, &["sadd", "k", "1"]);
        let wt = errors::wrongtype();
        for (f, a) in [
            (sadd as ShardFn, vec!["sadd", "str", "a"]),
            (srem, vec!["srem", "str", "a"]),
            (smembers, vec!["smembers", "str"]),
            (scard, vec!["scard", "str"]),
            (spop, vec!["spop", "str"]),
            (spop, vec!["spop", "str", "1"]),
            (srandmember, vec!["srandmember", "str", "1"]),
            (smismember, vec!["smismember", "str", "a"]),
            // Every key is type-checked, even after a missing one.
            (sinter, vec!["sinter", "nokey", "str"]),
            (sinterstore, vec!["sinterstore", "d", "nokey", "str"]),
            (sunion, vec!["sunion", "nokey", "str"]),
            (sdiff, vec!["sdiff", "nokey", "str"]),
            (sintercard, vec!["sintercard", "2", "nokey", "str"]),
            (smove, vec!["smove", "str", "k", "1"]),
            (smove, vec!["smove", "k", "str", "1"]),
            (sscan, vec!["sscan", "str", "0"]),
        ] {
            assert_eq!(run(&mut s, f, &a), wt, "{a:?}");
        }
        // A missing source answers 0 before the destination's type is looked at.
        assert_eq!(
            run(&mut s, smove, &["smove", "nokey", "str", "1"]),
            Reply::Int(0)
        );
        // Argument errors come before the key.
        assert_eq!(
            run(&mut s, spop, &["spop", "str", "-1"]),
            Reply::err(errors::NOT_POSITIVE)
        );
        assert_eq!(
            run(&mut s, srandmember, &["srandmember", "str", "x"]),
            errors::not_integer()
        );
        assert_eq!(
            run(&mut s, sscan, &["sscan", "str", "x"]),
            Reply::err(errors::INVALID_CURSOR)
        );
    }

    #[test]
    fn argument_errors() {
        let mut s = shard();
        run(&mut s, sadd, &["sadd", "k", "1", "2"]);
        let e = |t: &'static str| Reply::err(t);
        let cases: Vec<(ShardFn, Vec<&str>, Reply)> = vec![
            (spop, vec!["spop", "k", "1", "2"], errors::syntax()),
            (spop, vec!["spop", "k", "abc"], e(errors::NOT_POSITIVE)),
            (spop, vec!["spop", "nokey", "-1"], e(errors::NOT_POSITIVE)),
            (srandmember, vec!["srandmember", "k", "1", "2"], errors::syntax()),
            (
                srandmember,
                vec!["srandmember", "k", "-9223372036854775808"],
                e("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"),
            ),
            (sintercard, vec!["sintercard", "0", "k"], e("ERR numkeys should be greater than 0")),
            (sintercard, vec!["sintercard", "abc", "k"], e("ERR numkeys should be greater than 0")),
            (
                sintercard,
                vec!["sintercard", "3", "k", "k"],
                e("ERR Number of keys can't be greater than number of args"),
            ),
            (sintercard, vec!["sintercard", "1", "k", "limit", "-1"], e("ERR LIMIT can't be negative")),
            (sintercard, vec!["sintercard", "1", "k", "limit", "x"], e("ERR LIMIT can't be negative")),
            (sintercard, vec!["sintercard", "1", "k", "limit"], errors::syntax()),
            (sintercard, vec!["sintercard", "1", "k", "foo", "1"], errors::syntax()),
            (sscan, vec!["sscan", "k", "0", "count", "0"], errors::syntax()),
            (sscan, vec!["sscan", "k", "0", "count", "x"], errors::not_integer()),
            (sscan, vec!["sscan", "k", "0", "match"], errors::syntax()),
            (sscan, vec!["sscan", "k", "0", "type", "set"], errors::syntax()),
            (sscan, vec!["sscan", "k", " 1"], e("ERR invalid cursor")),
            (sscan, vec!["sscan", "k", "18446744073709551616"], e("ERR invalid cursor")),
        ];
        for (f, a, want) in cases {
            assert_eq!(run(&mut s, f, &a), want, "{a:?}");
        }
        // A missing key answers the empty scan before the options are parsed.
        assert_eq!(
            run(&mut s, sscan, &["sscan", "nokey", "0", "type", "x"]),
            scan_reply(0, vec![])
        );
    }

    #[test]
    fn sintercard_counts_and_limits() {
        let mut s = shard();
        run(&mut s, sadd, &["sadd", "a", "1", "2", "3", "4", "x"]);
        run(&mut s, sadd, &["sadd", "b", "2", "3", "4", "x", "y"]);
        assert_eq!(
            int(run(&mut s, sintercard, &["sintercard", "2", "a", "b"])),
            4
        );
        assert_eq!(
            int(run(
                &mut s,
                sintercard,
                &["sintercard", "2", "a", "b", "limit", "2"]
            )),
            2
        );
        assert_eq!(
            int(run(
                &mut s,
                sintercard,
                &["sintercard", "2", "a", "b", "LIMIT", "0"]
            )),
            4
        );
        assert_eq!(
            int(run(&mut s, sintercard, &["sintercard", "2", "a", "nokey"])),
            0
        );
        assert_eq!(
            int(run(
                &mut s,
                sintercard,
                &["sintercard", "1", "a", "limit", "9", "limit", "1"]
            )),
            1
        );
        assert_eq!(
            sintercard_keys(&argv(&["sintercard", "2", "a", "b", "limit", "1"])),
            vec![2, 3]
        );
        assert!(sintercard_keys(&argv(&["sintercard", "3", "a", "b"])).is_empty());
        assert!(sintercard_keys(&argv(&["sintercard", "x", "a"])).is_empty());
    }

    #[test]
    fn algebra_and_store_encodings() {
        let mut s = shard();
        run(&mut s, sadd, &["sadd", "i1", "1", "2", "3", "4"]);
        run(&mut s, sadd, &["sadd", "i2", "3", "4", "5"]);
        run(&mut s, sadd, &["sadd", "h1", "a", "3", "4", "b"]);
        assert_eq!(
            sorted(run(&mut s, sinter, &["sinter", "i1", "i2", "h1"])),
            strs(&["3", "4"])
        );
        assert_eq!(
            sorted(run(&mut s, sinter, &["sinter", "i1", "nokey"])),
            strs(&[])
        );
        assert_eq!(
            sorted(run(&mut s, sunion, &["sunion", "i1", "nokey", "i2"])),
            strs(&["1", "2", "3", "4", "5"])
        );
        assert_eq!(
            sorted(run(&mut s, sdiff, &["sdiff", "i1", "i2"])),
            strs(&["1", "2"])
        );
        assert_eq!(
            sorted(run(&mut s, sdiff, &["sdiff", "i1", "i1"])),
            strs(&[])
        );
        assert_eq!(
            sorted(run(&mut s, sdiff, &["sdiff", "nokey", "i1"])),
            strs(&[])
        );
        // An all-integer result of a hashtable source is an intset.
        assert_eq!(
            int(run(&mut s, sinterstore, &["sinterstore", "d", "h1", "i1"])),
            2
        );
        assert_eq!(encoding(&mut s, "d"), "intset");
        assert_eq!(
            int(run(&mut s, sunionstore, &["sunionstore", "d", "h1", "i1"])),
            6
        );
        assert_eq!(encoding(&mut s, "d"), "hashtable");
        assert_eq!(
            int(run(&mut s, sdiffstore, &["sdiffstore", "d", "h1", "i1"])),
            2
        );
        assert_eq!(
            sorted(run(&mut s, smembers, &["smembers", "d"])),
            strs(&["a", "b"])
        );
        // Empty results delete the destination.
        assert_eq!(
            int(run(
                &mut s,
                sinterstore,
                &["sinterstore", "d", "i1", "nokey"]
            )),
            0
        );
        assert!(!exists(&s, "d"));
        run(&mut s, sadd, &["sadd", "d", "z"]);
        assert_eq!(
            int(run(&mut s, sdiffstore, &["sdiffstore", "d", "i1", "i1"])),
            0
        );
        assert!(!exists(&s, "d"));
        // The destination may be a source.
        assert_eq!(
            int(run(&mut s, sunionstore, &["sunionstore", "i1", "i1", "i2"])),
            5
        );
        assert_eq!(encoding(&mut s, "i1"), "intset");
    }

    #[test]
    fn sdiff_algorithm_two_can_leave_a_small_hashtable() {
        // 600 integers minus a big set: algorithm 2 adds all 600 (converting past
        // 512) and then removes, leaving a hashtable of few integers, as in Redis.
        let mut s = shard();
        let big: Vec<String> = (0..600).map(|i| i.to_string()).collect();
        let mut a = vec!["sadd", "big"];
        a.extend(big.iter().map(|s| s.as_str()));
        run(&mut s, sadd, &a);
        let mut b = vec!["sadd", "most"];
        b.extend(big[..590].iter().map(|s| s.as_str()));
        run(&mut s, sadd, &b);
        run(&mut s, sadd, &["sadd", "small", "1"]);
        // Work: algorithm 1 = 2 * 600 / 2 = 600 <= 1190: algorithm 1, an intset.
        assert_eq!(
            int(run(&mut s, sdiffstore, &["sdiffstore", "d", "big", "most"])),
            10
        );
        assert_eq!(encoding(&mut s, "d"), "intset");
        // Five sets: algorithm 1 = 5 * 600 / 2 = 1500 > 600 + 4 * 1: algorithm 2.
        let r = run(
            &mut s,
            sdiffstore,
            &["sdiffstore", "d", "big", "small", "small", "small", "small"],
        );
        assert_eq!(int(r), 599);
        assert_eq!(encoding(&mut s, "d"), "hashtable");
    }

    #[test]
    fn smove_cases() {
        let mut s = shard();
        run(&mut s, sadd, &["sadd", "src", "1", "2"]);
        assert_eq!(int(run(&mut s, smove, &["smove", "src", "src", "1"])), 1);
        assert_eq!(int(run(&mut s, smove, &["smove", "src", "src", "9"])), 0);
        assert_eq!(int(run(&mut s, smove, &["smove", "src", "dst", "9"])), 0);
        assert_eq!(int(run(&mut s, smove, &["smove", "src", "dst", "1"])), 1);
        assert_eq!(encoding(&mut s, "dst"), "intset");
        run(&mut s, sadd, &["sadd", "dst", "2"]);
        assert_eq!(int(run(&mut s, smove, &["smove", "src", "dst", "2"])), 1);
        assert!(!exists(&s, "src"), "an emptied source is deleted");
        assert_eq!(
            sorted(run(&mut s, smembers, &["smembers", "dst"])),
            strs(&["1", "2"])
        );
        run(&mut s, sadd, &["sadd", "h", "x"]);
        assert_eq!(int(run(&mut s, smove, &["smove", "h", "dst", "x"])), 1);
        assert_eq!(encoding(&mut s, "dst"), "hashtable");
        assert_eq!(int(run(&mut s, smove, &["smove", "dst", "new", "x"])), 1);
        assert_eq!(encoding(&mut s, "new"), "hashtable");
    }

    #[test]
    fn spop_shapes() {
        let mut s = shard();
        assert_eq!(run(&mut s, spop, &["spop", "nokey"]), Reply::Null);
        assert_eq!(
            run(&mut s, spop, &["spop", "nokey", "3"]),
            Reply::Set(vec![])
        );
        run(&mut s, sadd, &["sadd", "k", "1", "2", "3"]);
        assert_eq!(run(&mut s, spop, &["spop", "k", "0"]), Reply::Set(vec![]));
        // count >= size: everything, and the key goes.
        assert_eq!(
            sorted(run(&mut s, spop, &["spop", "k", "3"])),
            strs(&["1", "2", "3"])
        );
        assert!(!exists(&s, "k"));
        // Single pops until empty.
        run(&mut s, sadd, &["sadd", "k", "a", "b"]);
        let mut got = Vec::new();
        for _ in 0..2 {
            let Reply::Bulk(b) = run(&mut s, spop, &["spop", "k"]) else {
                panic!()
            };
            got.push(String::from_utf8_lossy(&b).into_owned());
        }
        got.sort();
        assert_eq!(got, strs(&["a", "b"]));
        assert!(!exists(&s, "k"));
        // CASE 2 (few popped) and CASE 3 (few survive) keep the others.
        for (n, pop) in [(100, 10), (100, 90)] {
            let members: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
            let mut a = vec!["sadd", "k"];
            a.extend(members.iter().map(|s| s.as_str()));
            run(&mut s, sadd, &a);
            let popped = sorted(run(&mut s, spop, &["spop", "k", &pop.to_string()]));
            assert_eq!(popped.len(), pop);
            let mut left = sorted(run(&mut s, smembers, &["smembers", "k"]));
            assert_eq!(left.len(), n - pop);
            left.extend(popped);
            left.sort();
            let mut all = members.clone();
            all.sort();
            assert_eq!(left, all);
            run(&mut s, spop, &["spop", "k", "1000"]);
        }
        // CASE 3 builds the survivors' set from scratch: integers left from a
        // hashtable of 600 integers make an intset again, as in Redis.
        let big: Vec<String> = (0..600).map(|i| i.to_string()).collect();
        let mut a = vec!["sadd", "k"];
        a.extend(big.iter().map(|s| s.as_str()));
        run(&mut s, sadd, &a);
        assert_eq!(encoding(&mut s, "k"), "hashtable");
        assert_eq!(sorted(run(&mut s, spop, &["spop", "k", "550"])).len(), 550);
        assert_eq!(encoding(&mut s, "k"), "intset");
        assert_eq!(int(run(&mut s, scard, &["scard", "k"])), 50);
    }

    #[test]
    fn srandmember_shapes() {
        let mut s = shard();
        assert_eq!(
            run(&mut s, srandmember, &["srandmember", "nokey"]),
            Reply::Null
        );
        assert_eq!(
            run(&mut s, srandmember, &["srandmember", "nokey", "3"]),
            Reply::Array(vec![])
        );
        for first in ["1", "a"] {
            let members: Vec<String> = (0..30).map(|i| format!("{first}{i}")).collect();
            let mut a = vec!["sadd", "k"];
            a.extend(members.iter().map(|s| s.as_str()));
            run(&mut s, sadd, &a);
            assert_eq!(
                run(&mut s, srandmember, &["srandmember", "k", "0"]),
                Reply::Array(vec![])
            );
            let mut all = members.clone();
            all.sort();
            assert_eq!(
                sorted(run(&mut s, srandmember, &["srandmember", "k", "30"])),
                all
            );
            assert_eq!(
                sorted(run(&mut s, srandmember, &["srandmember", "k", "100"])),
                all
            );
            for n in [1usize, 5, 20, 29] {
                let got = sorted(run(
                    &mut s,
                    srandmember,
                    &["srandmember", "k", &n.to_string()],
                ));
                assert_eq!(got.len(), n);
                let mut dedup = got.clone();
                dedup.dedup();
                assert_eq!(dedup, got, "distinct members");
                assert!(got.iter().all(|m| all.contains(m)));
            }
            for n in [-1i64, -5, -200] {
                let got = sorted(run(
                    &mut s,
                    srandmember,
                    &["srandmember", "k", &n.to_string()],
                ));
                assert_eq!(got.len() as i64, -n);
                assert!(got.iter().all(|m| all.contains(m)));
            }
            let Reply::Bulk(_) = run(&mut s, srandmember, &["srandmember", "k"]) else {
                panic!()
            };
            assert_eq!(
                int(run(&mut s, scard, &["scard", "k"])),
                30,
                "nothing removed"
            );
            s.dbs[0].remove(b"k");
        }
        run(&mut s, sadd, &["sadd", "k", "x"]);
        let r = run(
            &mut s,
            srandmember,
            &["srandmember", "k", "-9223372036854775807"],
        );
        assert!(r.is_error(), "past the bound: an error, not an allocation");
    }

    #[test]
    fn sscan_walks_everything() {
        let mut s = shard();
        run(&mut s, sadd, &["sadd", "i", "3", "1", "2"]);
        assert_eq!(
            run(&mut s, sscan, &["sscan", "i", "12345", "count", "1"]),
            scan_reply(0, ["1", "2", "3"].iter().map(|m| Bytes::from(*m)).collect())
        );
        assert_eq!(
            run(&mut s, sscan, &["sscan", "i", "0", "match", "[12]"]),
            scan_reply(0, ["1", "2"].iter().map(|m| Bytes::from(*m)).collect())
        );
        let members: Vec<String> = (0..200).map(|i| format!("m{i}")).collect();
        let mut a = vec!["sadd", "h"];
        a.extend(members.iter().map(|s| s.as_str()));
        run(&mut s, sadd, &a);
        let mut seen = std::collections::BTreeSet::new();
        let mut cursor = "0".to_string();
        loop {
            let Reply::Array(parts) = run(&mut s, sscan, &["sscan", "h", &cursor, "count", "7"])
            else {
                panic!()
            };
            let [Reply::Bulk(c), Reply::Array(ms)] = &parts[..] else {
                panic!()
            };
            for m in ms {
                let Reply::Bulk(m) = m else { panic!() };
                seen.insert(String::from_utf8_lossy(m).into_owned());
            }
            cursor = String::from_utf8_lossy(c).into_owned();
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(seen.len(), 200);
    }

    #[test]
    fn intset_limit_follows_config() {
        let mut s = shard();
        let mut cfg = (*s.config).clone();
        cfg.encoding.set_max_intset_entries = 3;
        s.config = std::sync::Arc::new(cfg);
        run(&mut s, sadd, &["sadd", "k", "1", "2", "3"]);
        assert_eq!(encoding(&mut s, "k"), "intset");
        run(&mut s, sadd, &["sadd", "k", "4"]);
        assert_eq!(encoding(&mut s, "k"), "hashtable");
    }
}
