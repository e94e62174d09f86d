//! How writes are propagated: the forms Redis 7.0 writes to its AOF and sends to its
//! replicas instead of the command as received, so that replaying a record later, or
//! on another server, gives the state the command left.
//!
//! The one idea to hold: a record must mean the same thing whenever it is replayed.
//! Relative expiries become absolute (`PEXPIREAT`, `SET ... PXAT`, `RESTORE ...
//! ABSTTL`), read from the deadline the command actually stored (never recomputed); an
//! expiry already in the past becomes `DEL`; random or blocking commands become their
//! deterministic, non-blocking forms. A command names its rule in its table entry
//! (`.propagate(propagate::deadline)`, or `.verbatim()`); the call path applies it
//! after the command ran and changed data ([`records`]).

use super::{Command, Propagation};
use crate::protocol::parse::{parse_request, Limits, ParseOutcome};
use crate::protocol::Reply;
use crate::storage::Db;
use bytes::{Bytes, BytesMut};

/// A rewrite rule: the records to propagate for `argv`, which just ran in `db` and
/// changed data, answering `reply`.
pub type RewriteFn = fn(&mut Db, &[Bytes], &Reply) -> Vec<Vec<Bytes>>;

/// The records `cmd` propagates after running as `argv` in `db` with `reply`.
pub fn records(cmd: &Command, db: &mut Db, argv: &[Bytes], reply: &Reply) -> Vec<Vec<Bytes>> {
    match cmd.propagation {
        Propagation::Rewrite(f) => f(db, argv, reply),
        Propagation::Verbatim | Propagation::Unset => vec![argv.to_vec()],
        Propagation::Own => Vec::new(),
    }
}

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

fn num(n: u64) -> Bytes {
    Bytes::from(n.to_string())
}

/// EXPIRE & co, GETEX: the key's deadline as stored now (`PEXPIREAT`), `PERSIST` if it
/// has none, `DEL` if the command removed it (a deadline in the past; `UNLINK` under
/// `lazyfree-lazy-expire`).
pub fn deadline(d: &mut Db, argv: &[Bytes], _reply: &Reply) -> Vec<Vec<Bytes>> {
    let key = &argv[1];
    if !d.keys.contains_key(&key[..]) {
        let del = if crate::lazyfree::lazy_expire() {
            "UNLINK"
        } else {
            "DEL"
        };
        return vec![vec![b(del), key.clone()]];
    }
    match d.expire_of(key) {
        Some(at) => vec![vec![b("PEXPIREAT"), key.clone(), num(at)]],
        None => vec![vec![b("PERSIST"), key.clone()]],
    }
}

/// SET with EX / PX / EXAT / PXAT: `SET key value PXAT <deadline>` (Redis 7.0 drops
/// the other options: the command already succeeded); other SETs as received, less
/// any `GET`.
pub fn set(d: &mut Db, argv: &[Bytes], _reply: &Reply) -> Vec<Vec<Bytes>> {
    let expires = argv[3..].iter().any(|a| {
        a.eq_ignore_ascii_case(b"ex")
            || a.eq_ignore_ascii_case(b"px")
            || a.eq_ignore_ascii_case(b"exat")
            || a.eq_ignore_ascii_case(b"pxat")
    });
    if expires {
        return set_pxat(d, &argv[1], &argv[2]);
    }
    let mut out = argv[..3].to_vec();
    out.extend(
        argv[3..]
            .iter()
            .filter(|a| !a.eq_ignore_ascii_case(b"get"))
            .cloned(),
    );
    vec![out]
}

/// GETSET key value: `SET key value`.
pub fn getset(_d: &mut Db, argv: &[Bytes], _reply: &Reply) -> Vec<Vec<Bytes>> {
    vec![vec![b("SET"), argv[1].clone(), argv[2].clone()]]
}

/// GETDEL key: `DEL key` (`UNLINK` under `lazyfree-lazy-user-del`).
pub fn getdel(_d: &mut Db, argv: &[Bytes], _reply: &Reply) -> Vec<Vec<Bytes>> {
    let del = if crate::lazyfree::lazy_user_del() {
        "UNLINK"
    } else {
        "DEL"
    };
    vec![vec![b(del), argv[1].clone()]]
}

/// SETEX / PSETEX key ttl value: `SET key value PXAT <deadline>`.
pub fn setex(d: &mut Db, argv: &[Bytes], _reply: &Reply) -> Vec<Vec<Bytes>> {
    set_pxat(d, &argv[1], &argv[3])
}

fn set_pxat(d: &mut Db, key: &Bytes, value: &Bytes) -> Vec<Vec<Bytes>> {
    if !d.keys.contains_key(&key[..]) {
        return vec![vec![b("DEL"), key.clone()]];
    }
    match d.expire_of(key) {
        Some(at) => vec![vec![
            b("SET"),
            key.clone(),
            value.clone(),
            b("PXAT"),
            num(at),
        ]],
        None => vec![vec![b("SET"), key.clone(), value.clone()]],
    }
}

/// RESTORE key ttl payload [...]: the ttl made absolute (ABSTTL), or 0 for none.
pub fn restore(d: &mut Db, argv: &[Bytes], _reply: &Reply) -> Vec<Vec<Bytes>> {
    let key = &argv[1];
    if !d.keys.contains_key(&key[..]) {
        return vec![vec![b("DEL"), key.clone()]];
    }
    let mut out = argv.to_vec();
    out[2] = num(d.expire_of(key).unwrap_or(0));
    if !argv[4..].iter().any(|a| a.eq_ignore_ascii_case(b"absttl")) {
        out.push(b("ABSTTL"));
    }
    vec![out]
}

/// INCRBYFLOAT: `SET key <result> KEEPTTL` (float printing must not differ on replay).
pub fn incrbyfloat(_d: &mut Db, argv: &[Bytes], reply: &Reply) -> Vec<Vec<Bytes>> {
    match reply {
        Reply::Bulk(v) => vec![vec![b("SET"), argv[1].clone(), v.clone(), b("KEEPTTL")]],
        _ => vec![argv.to_vec()],
    }
}

/// HINCRBYFLOAT: `HSET key field <result>`.
pub fn hincrbyfloat(_d: &mut Db, argv: &[Bytes], reply: &Reply) -> Vec<Vec<Bytes>> {
    match reply {
        Reply::Bulk(v) => vec![vec![b("HSET"), argv[1].clone(), argv[2].clone(), v.clone()]],
        _ => vec![argv.to_vec()],
    }
}

/// SPOP: `SREM key member...` for what it popped; `DEL key` if a count took the
/// whole set (SPOP without a count is SREM even of the last member, as in Redis).
pub fn spop(d: &mut Db, argv: &[Bytes], reply: &Reply) -> Vec<Vec<Bytes>> {
    let key = &argv[1];
    if argv.len() > 2 && !d.keys.contains_key(&key[..]) {
        return vec![vec![b("DEL"), key.clone()]];
    }
    let members = match reply {
        Reply::Bulk(m) => vec![m.clone()],
        other => bulk_items(other).unwrap_or_default(),
    };
    if members.is_empty() {
        return Vec::new();
    }
    let mut rec = vec![b("SREM"), key.clone()];
    rec.extend(members);
    vec![rec]
}

/// BLPOP / BRPOP / BZPOPMIN / BZPOPMAX served: `LPOP key` etc. (the command's name
/// without its B) for the key in the reply.
pub fn blocking_pop(_d: &mut Db, argv: &[Bytes], reply: &Reply) -> Vec<Vec<Bytes>> {
    popped_key(&argv[0][1..], reply, None)
}

fn popped_key(pop: &[u8], reply: &Reply, count: Option<usize>) -> Vec<Vec<Bytes>> {
    let Reply::Array(items) = reply else {
        return Vec::new();
    };
    let Some(Reply::Bulk(key)) = items.first() else {
        return Vec::new();
    };
    let mut rec = vec![Bytes::from(pop.to_ascii_uppercase()), key.clone()];
    if let Some(n) = count {
        rec.push(num(n as u64));
    }
    vec![rec]
}

/// LMPOP / BLMPOP: `LPOP key n` or `RPOP key n` for the key it popped.
pub fn lmpop(_d: &mut Db, argv: &[Bytes], reply: &Reply) -> Vec<Vec<Bytes>> {
    let right = mpop_end(argv).eq_ignore_ascii_case(b"right");
    popped_key(
        if right { b"rpop" } else { b"lpop" },
        reply,
        Some(popped_count(reply)),
    )
}

/// ZMPOP / BZMPOP: `ZPOPMIN key n` or `ZPOPMAX key n` for the key it popped.
pub fn zmpop(_d: &mut Db, argv: &[Bytes], reply: &Reply) -> Vec<Vec<Bytes>> {
    let max = mpop_end(argv).eq_ignore_ascii_case(b"max");
    popped_key(
        if max { b"zpopmax" } else { b"zpopmin" },
        reply,
        Some(popped_count(reply)),
    )
}

/// The LEFT / RIGHT / MIN / MAX argument of an MPOP that ran (so its arguments
/// parsed): right after its `numkeys` keys. `numkeys` is argv[1], or argv[2] after the
/// blocking forms' timeout. Searching for the word instead would take a key named
/// `right` or `max` for it.
fn mpop_end(argv: &[Bytes]) -> &[u8] {
    let at = if argv[0][0].eq_ignore_ascii_case(&b'b') {
        2
    } else {
        1
    };
    let numkeys = crate::protocol::parse::parse_i64(&argv[at])
        .unwrap_or(0)
        .max(0) as usize;
    argv.get(at + 1 + numkeys).map_or(&[], |a| &a[..])
}

/// How many elements an MPOP reply (`[key, [elements]]`) holds.
fn popped_count(reply: &Reply) -> usize {
    let n = match reply {
        Reply::Array(items) => items.get(1).map(|r| match r {
            Reply::Array(v) => v.len(),
            other => bulk_items(other).map_or(0, |v| v.len()),
        }),
        _ => None,
    };
    n.unwrap_or(1)
}

/// BLMOVE src dst from to timeout: `LMOVE src dst from to`.
pub fn blmove(_d: &mut Db, argv: &[Bytes], _reply: &Reply) -> Vec<Vec<Bytes>> {
    vec![std::iter::once(b("LMOVE"))
        .chain(argv[1..5].iter().cloned())
        .collect()]
}

/// BRPOPLPUSH src dst timeout: `RPOPLPUSH src dst`.
pub fn brpoplpush(_d: &mut Db, argv: &[Bytes], _reply: &Reply) -> Vec<Vec<Bytes>> {
    vec![vec![b("RPOPLPUSH"), argv[1].clone(), argv[2].clone()]]
}

/// The bulk strings of an array reply (plain, or pre-encoded RESP).
fn bulk_items(reply: &Reply) -> Option<Vec<Bytes>> {
    match reply {
        Reply::Array(items) | Reply::Set(items) => items
            .iter()
            .map(|r| match r {
                Reply::Bulk(b) => Some(b.clone()),
                _ => None,
            })
            .collect(),
        Reply::Raw(raw) => {
            let mut buf = BytesMut::from(&raw[..]);
            match parse_request(&mut buf, Limits::default()) {
                ParseOutcome::Request(argv) => Some(argv),
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::lookup;
    use crate::storage::value::StrValue;
    use crate::storage::Value;

    fn argv(s: &str) -> Vec<Bytes> {
        s.split(' ').map(|a| Bytes::from(a.to_string())).collect()
    }

    /// The records the table entry of `line`'s command propagates.
    fn text(d: &mut Db, line: &str, reply: &Reply) -> Vec<String> {
        let argv = argv(line);
        let cmd = lookup(&argv[0]).unwrap();
        records(cmd, d, &argv, reply)
            .iter()
            .map(|r| {
                r.iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    #[test]
    fn relative_expiries_become_absolute() {
        let mut d = Db::default();
        d.set(b"k", Value::Str(StrValue::from_bytes(b"v")), false);
        d.set_expire(b"k", 5_000_000_000_000);
        assert_eq!(
            text(&mut d, "SET k v EX 100 GET", &Reply::Null),
            ["SET k v PXAT 5000000000000"]
        );
        assert_eq!(
            text(&mut d, "SET k v KEEPTTL", &Reply::Null),
            ["SET k v KEEPTTL"]
        );
        assert_eq!(
            text(&mut d, "setex k 100 v", &Reply::ok()),
            ["SET k v PXAT 5000000000000"]
        );
        assert_eq!(
            text(&mut d, "expire k 10", &Reply::Int(1)),
            ["PEXPIREAT k 5000000000000"]
        );
        d.persist(b"k");
        assert_eq!(text(&mut d, "getex k persist", &Reply::Null), ["PERSIST k"]);
        d.remove(b"k");
        assert_eq!(text(&mut d, "expire k -1", &Reply::Int(1)), ["DEL k"]);
    }

    #[test]
    fn get_forms_propagate_as_their_write() {
        let mut d = Db::default();
        let old = Reply::bulk(b"old");
        assert_eq!(text(&mut d, "set k v get nx", &old), ["set k v nx"]);
        d.set(b"k", Value::Str(StrValue::from_bytes(b"v")), false);
        d.set_expire(b"k", 5_000_000_000_000);
        assert_eq!(
            text(&mut d, "set k v xx pxat 5000000000000", &old),
            ["SET k v PXAT 5000000000000"]
        );
        assert_eq!(text(&mut d, "getset k v", &old), ["SET k v"]);
        assert_eq!(text(&mut d, "getdel k", &old), ["DEL k"]);
    }

    #[test]
    fn blocking_and_random_commands_become_deterministic() {
        let mut d = Db::default();
        let popped = Reply::Array(vec![Reply::bulk(b"l"), Reply::bulk(b"a")]);
        assert_eq!(text(&mut d, "BLPOP l 0", &popped), ["LPOP l"]);
        assert_eq!(text(&mut d, "bzpopmax z 0", &popped), ["ZPOPMAX l"]);
        let mpop = Reply::Array(vec![
            Reply::bulk(b"l"),
            Reply::Array(vec![Reply::bulk(b"a"), Reply::bulk(b"b")]),
        ]);
        assert_eq!(
            text(&mut d, "blmpop 0 1 l right count 2", &mpop),
            ["RPOP l 2"]
        );
        assert_eq!(text(&mut d, "zmpop 1 l max", &mpop), ["ZPOPMAX l 2"]);
        // Keys named like a direction are keys, not the direction.
        assert_eq!(text(&mut d, "lmpop 2 right l LEFT", &mpop), ["LPOP l 2"]);
        assert_eq!(
            text(&mut d, "blmpop 0 2 left l right count 2", &mpop),
            ["RPOP l 2"]
        );
        assert_eq!(text(&mut d, "bzmpop 0 2 max l MIN", &mpop), ["ZPOPMIN l 2"]);
        assert_eq!(
            text(&mut d, "blmove a b left right 0", &Reply::Null),
            ["LMOVE a b left right"]
        );
        assert_eq!(
            text(&mut d, "brpoplpush a b 0", &Reply::Null),
            ["RPOPLPUSH a b"]
        );
        assert_eq!(
            text(&mut d, "incrbyfloat e 1", &Reply::bulk(b"2.5")),
            ["SET e 2.5 KEEPTTL"]
        );
        assert_eq!(
            text(&mut d, "hincrbyfloat h f 1", &Reply::bulk(b"2.5")),
            ["HSET h f 2.5"]
        );
        // SPOP on a set that is now gone: DEL.
        assert_eq!(text(&mut d, "spop s 5", &Reply::Array(vec![])), ["DEL s"]);
        assert_eq!(text(&mut d, "spop s", &Reply::bulk(b"m")), ["SREM s m"]);
        assert_eq!(text(&mut d, "lpush l a", &Reply::Int(1)), ["lpush l a"]);
    }
}
