//! TTL commands (Redis's `expire.c`): EXPIRE family with NX/XX/GT/LT, TTL, PTTL,
//! EXPIRETIME, PEXPIRETIME, PERSIST.
//!
//! The one idea to hold: a TTL is stored as an absolute deadline in unix milliseconds
//! (`Db::set_expire`), so every form (seconds or ms, relative or absolute) is first
//! turned into that deadline with Redis's overflow checks; a deadline that is already
//! due deletes the key at once and still answers 1, exactly as Redis does. Reads
//! (TTL, PTTL, EXPIRETIME, PEXPIRETIME) count as keyspace hits / misses but do not
//! touch the key's LRU stamp.

use super::{args, errors, propagate, Command, Ctx, Exec};
use crate::notify;
use crate::protocol::Reply;
use bytes::Bytes;

pub static COMMANDS: &[Command] = &[
    Command::new(
        "expire",
        -3,
        "write fast",
        "keyspace write fast",
        Exec::Shard(expire),
    )
    .keys(1, 1, 1)
    .propagate(propagate::deadline),
    Command::new(
        "pexpire",
        -3,
        "write fast",
        "keyspace write fast",
        Exec::Shard(pexpire),
    )
    .keys(1, 1, 1)
    .propagate(propagate::deadline),
    Command::new(
        "expireat",
        -3,
        "write fast",
        "keyspace write fast",
        Exec::Shard(expireat),
    )
    .keys(1, 1, 1)
    .propagate(propagate::deadline),
    Command::new(
        "pexpireat",
        -3,
        "write fast",
        "keyspace write fast",
        Exec::Shard(pexpireat),
    )
    .keys(1, 1, 1)
    .propagate(propagate::deadline),
    Command::new(
        "ttl",
        2,
        "readonly fast",
        "keyspace read fast",
        Exec::Shard(ttl),
    )
    .keys(1, 1, 1),
    Command::new(
        "pttl",
        2,
        "readonly fast",
        "keyspace read fast",
        Exec::Shard(pttl),
    )
    .keys(1, 1, 1),
    Command::new(
        "expiretime",
        2,
        "readonly fast",
        "keyspace read fast",
        Exec::Shard(expiretime),
    )
    .keys(1, 1, 1),
    Command::new(
        "pexpiretime",
        2,
        "readonly fast",
        "keyspace read fast",
        Exec::Shard(pexpiretime),
    )
    .keys(1, 1, 1),
    Command::new(
        "persist",
        2,
        "write fast",
        "keyspace write fast",
        Exec::Shard(persist),
    )
    .keys(1, 1, 1)
    .verbatim(),
];

/// The time argument's unit.
#[derive(Clone, Copy, PartialEq)]
enum Unit {
    Seconds,
    Millis,
}

/// The NX / XX / GT / LT conditions of the EXPIRE family.
#[derive(Clone, Copy, Default, Debug, PartialEq)]
struct Conditions {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

impl Conditions {
    /// Parse the options after the time argument, as `parseExtendedExpireArgumentsOrReply`.
    fn parse(opts: &[Bytes]) -> Result<Conditions, Reply> {
        let mut c = Conditions::default();
        for o in opts {
            if args::eq(o, "nx") {
                c.nx = true;
            } else if args::eq(o, "xx") {
                c.xx = true;
            } else if args::eq(o, "gt") {
                c.gt = true;
            } else if args::eq(o, "lt") {
                c.lt = true;
            } else {
                let shown: String = String::from_utf8_lossy(o)
                    .chars()
                    .map(|ch| if ch == '\r' || ch == '\n' { ' ' } else { ch })
                    .collect();
                return Err(errors::unsupported_option(&shown));
            }
        }
        if c.nx && (c.xx || c.gt || c.lt) {
            return Err(Reply::err(errors::EXPIRE_NX_WITH_OTHERS));
        }
        if c.gt && c.lt {
            return Err(Reply::err(errors::EXPIRE_GT_AND_LT));
        }
        Ok(c)
    }

    /// Whether a new deadline `when` may replace `current` (None: no TTL, i.e. infinite).
    fn allow(&self, when: i64, current: Option<i64>) -> bool {
        if self.nx && current.is_some() {
            return false;
        }
        if self.xx && current.is_none() {
            return false;
        }
        if self.gt && current.is_none_or(|cur| when <= cur) {
            return false;
        }
        if self.lt && current.is_some_and(|cur| when >= cur) {
            return false;
        }
        true
    }
}

fn expire(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let base = ctx.now_ms as i64;
    expire_generic(ctx, argv, "expire", base, Unit::Seconds)
}
fn pexpire(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let base = ctx.now_ms as i64;
    expire_generic(ctx, argv, "pexpire", base, Unit::Millis)
}
fn expireat(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    expire_generic(ctx, argv, "expireat", 0, Unit::Seconds)
}
fn pexpireat(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    expire_generic(ctx, argv, "pexpireat", 0, Unit::Millis)
}

/// `EXPIRE key time [NX|XX|GT|LT]` and its three siblings: `base` is the time the
/// argument is relative to (now, or 0 for the *AT forms).
fn expire_generic(ctx: &mut Ctx, argv: &[Bytes], name: &str, base: i64, unit: Unit) -> Reply {
    let key = &argv[1];
    let cond = match Conditions::parse(&argv[3..]) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let mut when = match args::int(&argv[2]) {
        Ok(w) => w,
        Err(e) => return e,
    };
    let invalid = || errors::invalid_expire_time(name);
    if unit == Unit::Seconds {
        if !(i64::MIN / 1000..=i64::MAX / 1000).contains(&when) {
            return invalid();
        }
        when *= 1000;
    }
    if when > i64::MAX - base {
        return invalid();
    }
    when += base;

    if ctx.lookup_write(key).is_none() {
        return Reply::Int(0);
    }
    let current = ctx.db().expire_of(key).map(deadline_i64);
    if !cond.allow(when, current) {
        return Reply::Int(0);
    }
    if when <= ctx.now_ms as i64 {
        // Already due: delete now, as Redis does (and still answer 1).
        ctx.db().delete_freeing(key, crate::lazyfree::lazy_expire());
        ctx.notify(notify::GENERIC, "del", key);
    } else {
        ctx.db().set_expire(key, when as u64);
        ctx.db().dirty += 1;
        ctx.notify(notify::GENERIC, "expire", key);
    }
    Reply::Int(1)
}

fn deadline_i64(at: u64) -> i64 {
    i64::try_from(at).unwrap_or(i64::MAX)
}

/// What the four TTL readers report.
#[derive(Clone, Copy)]
enum TtlForm {
    /// Remaining time (TTL / PTTL).
    Remaining,
    /// Absolute deadline (EXPIRETIME / PEXPIRETIME).
    Absolute,
}

/// TTL / PTTL / EXPIRETIME / PEXPIRETIME, as Redis's `ttlGenericCommand`: -2 for a
/// missing key, -1 for a key without TTL, else the time (seconds are rounded).
fn ttl_generic(ctx: &mut Ctx, key: &[u8], form: TtlForm, unit: Unit) -> Reply {
    let saved = ctx.no_touch;
    ctx.no_touch = true;
    let found = ctx.lookup_read(key).is_some();
    ctx.no_touch = saved;
    if !found {
        return Reply::Int(-2);
    }
    let now = ctx.now_ms as i64;
    let Some(at) = ctx.db().expire_of(key).map(deadline_i64) else {
        return Reply::Int(-1);
    };
    let t = match form {
        TtlForm::Remaining => at.saturating_sub(now),
        TtlForm::Absolute => at,
    }
    .max(0);
    Reply::Int(match unit {
        Unit::Millis => t,
        // i128: a deadline near i64::MAX must round, not overflow.
        Unit::Seconds => ((t as i128 + 500) / 1000) as i64,
    })
}

fn ttl(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    ttl_generic(ctx, &argv[1], TtlForm::Remaining, Unit::Seconds)
}
fn pttl(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    ttl_generic(ctx, &argv[1], TtlForm::Remaining, Unit::Millis)
}
fn expiretime(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    ttl_generic(ctx, &argv[1], TtlForm::Absolute, Unit::Seconds)
}
fn pexpiretime(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    ttl_generic(ctx, &argv[1], TtlForm::Absolute, Unit::Millis)
}

/// `PERSIST key`: 1 if a TTL was removed, 0 if the key is missing or has none.
fn persist(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let key = &argv[1];
    if ctx.lookup_write(key).is_none() {
        return Reply::Int(0);
    }
    let removed = ctx.db().persist(key);
    if removed {
        ctx.notify(notify::GENERIC, "persist", key);
    }
    Reply::Int(removed as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::errors;
    use crate::shard::Shard;
    use crate::storage::{StrValue, Value};

    use crate::commands::testing::shard;
    fn argv(s: &str) -> Vec<Bytes> {
        s.split(' ')
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }
    fn run(sh: &mut Shard, f: fn(&mut Ctx, &[Bytes]) -> Reply, cmd: &str, now: u64) -> Reply {
        let mut ctx = Ctx::new(sh, 0);
        ctx.now_ms = now;
        f(&mut ctx, &argv(cmd))
    }
    fn put(sh: &mut Shard, key: &str) {
        sh.dbs[0].set(key.as_bytes(), Value::Str(StrValue::from_set(b"v")), false);
    }
    const NOW: u64 = 1_700_000_000_000;

    #[test]
    fn option_matrix() {
        let mut sh = shard();
        put(&mut sh, "k");
        // No TTL yet: XX and GT refuse, NX and LT accept.
        assert_eq!(run(&mut sh, expire, "expire k 100 xx", NOW), Reply::Int(0));
        assert_eq!(run(&mut sh, expire, "expire k 100 gt", NOW), Reply::Int(0));
        assert_eq!(run(&mut sh, expire, "expire k 100 lt", NOW), Reply::Int(1));
        assert_eq!(sh.dbs[0].expire_of(b"k"), Some(NOW + 100_000));
        // Has a TTL: NX refuses.
        assert_eq!(run(&mut sh, expire, "expire k 50 nx", NOW), Reply::Int(0));
        // GT: only a later deadline; equal is refused.
        assert_eq!(run(&mut sh, expire, "expire k 100 gt", NOW), Reply::Int(0));
        assert_eq!(run(&mut sh, expire, "expire k 200 GT", NOW), Reply::Int(1));
        assert_eq!(sh.dbs[0].expire_of(b"k"), Some(NOW + 200_000));
        // LT: only an earlier deadline.
        assert_eq!(run(&mut sh, expire, "expire k 300 lt", NOW), Reply::Int(0));
        assert_eq!(run(&mut sh, expire, "expire k 150 lt", NOW), Reply::Int(1));
        // XX + GT is allowed together.
        assert_eq!(
            run(&mut sh, expire, "expire k 400 xx gt", NOW),
            Reply::Int(1)
        );
        assert_eq!(sh.dbs[0].expire_of(b"k"), Some(NOW + 400_000));
        // Repeated options are fine.
        assert_eq!(
            run(&mut sh, expire, "expire k 10 xx xx", NOW),
            Reply::Int(1)
        );
        // Fresh key: NX sets.
        put(&mut sh, "n");
        assert_eq!(
            run(&mut sh, pexpire, "pexpire n 500 nx", NOW),
            Reply::Int(1)
        );
        assert_eq!(sh.dbs[0].expire_of(b"n"), Some(NOW + 500));
        // Missing key.
        assert_eq!(run(&mut sh, expire, "expire nokey 10", NOW), Reply::Int(0));
    }

    #[test]
    fn option_errors() {
        let mut sh = shard();
        put(&mut sh, "k");
        let nx = Reply::err(errors::EXPIRE_NX_WITH_OTHERS);
        for c in ["expire k 1 nx xx", "expire k 1 nx gt", "expire k 1 lt nx"] {
            assert_eq!(run(&mut sh, expire, c, NOW), nx);
        }
        assert_eq!(
            run(&mut sh, expire, "expire k 1 gt lt", NOW),
            Reply::err(errors::EXPIRE_GT_AND_LT)
        );
        assert_eq!(
            run(&mut sh, expire, "expire k 1 foo", NOW),
            errors::unsupported_option("foo")
        );
        // Options are checked before the number.
        assert_eq!(
            run(&mut sh, expire, "expire k a foo", NOW),
            errors::unsupported_option("foo")
        );
        assert_eq!(
            run(&mut sh, expire, "expire k a", NOW),
            errors::not_integer()
        );
        assert_eq!(
            run(&mut sh, expire, "expire k 9223372036854775807", NOW),
            errors::invalid_expire_time("expire")
        );
        assert_eq!(
            run(&mut sh, pexpire, "pexpire k 9223372036854775807", NOW),
            errors::invalid_expire_time("pexpire")
        );
        assert_eq!(
            run(&mut sh, expire, "expire k -9223372036854775808", NOW),
            errors::invalid_expire_time("expire")
        );
        // Absolute forms have no base to overflow with.
        assert_eq!(
            run(&mut sh, pexpireat, "pexpireat k 9223372036854775807", NOW),
            Reply::Int(1)
        );
        assert_eq!(
            run(&mut sh, pttl, "pttl k", NOW),
            Reply::Int(i64::MAX - NOW as i64)
        );
    }

    #[test]
    fn past_deadline_deletes() {
        let mut sh = shard();
        put(&mut sh, "k");
        assert_eq!(run(&mut sh, expire, "expire k -1", NOW), Reply::Int(1));
        assert!(sh.dbs[0].keys.is_empty());
        put(&mut sh, "k");
        assert_eq!(run(&mut sh, expire, "expire k 0", NOW), Reply::Int(1));
        assert!(sh.dbs[0].keys.is_empty());
        put(&mut sh, "k");
        assert_eq!(run(&mut sh, expireat, "expireat k 1", NOW), Reply::Int(1));
        assert!(sh.dbs[0].keys.is_empty());
        assert_eq!(run(&mut sh, ttl, "ttl k", NOW), Reply::Int(-2));
    }

    #[test]
    fn ttl_readers_and_persist() {
        let mut sh = shard();
        put(&mut sh, "k");
        assert_eq!(run(&mut sh, ttl, "ttl k", NOW), Reply::Int(-1));
        assert_eq!(run(&mut sh, pttl, "pttl k", NOW), Reply::Int(-1));
        assert_eq!(
            run(&mut sh, expiretime, "expiretime k", NOW),
            Reply::Int(-1)
        );
        assert_eq!(run(&mut sh, ttl, "ttl nokey", NOW), Reply::Int(-2));
        assert_eq!(
            run(&mut sh, pexpiretime, "pexpiretime nokey", NOW),
            Reply::Int(-2)
        );
        assert_eq!(run(&mut sh, pexpire, "pexpire k 10499", NOW), Reply::Int(1));
        assert_eq!(run(&mut sh, pttl, "pttl k", NOW), Reply::Int(10499));
        // Seconds are rounded to nearest.
        assert_eq!(run(&mut sh, ttl, "ttl k", NOW), Reply::Int(10));
        assert_eq!(run(&mut sh, ttl, "ttl k", NOW - 1), Reply::Int(11));
        assert_eq!(
            run(&mut sh, pexpiretime, "pexpiretime k", NOW),
            Reply::Int((NOW + 10499) as i64)
        );
        assert_eq!(
            run(&mut sh, expiretime, "expiretime k", NOW),
            Reply::Int(((NOW + 10499 + 500) / 1000) as i64)
        );
        // After the deadline the key is gone.
        assert_eq!(run(&mut sh, pttl, "pttl k", NOW + 10499), Reply::Int(-2));
        put(&mut sh, "k");
        assert_eq!(run(&mut sh, persist, "persist k", NOW), Reply::Int(0));
        assert_eq!(run(&mut sh, expire, "expire k 100", NOW), Reply::Int(1));
        assert_eq!(run(&mut sh, persist, "persist k", NOW), Reply::Int(1));
        assert_eq!(run(&mut sh, ttl, "ttl k", NOW), Reply::Int(-1));
        assert_eq!(run(&mut sh, persist, "persist nokey", NOW), Reply::Int(0));
    }
}
