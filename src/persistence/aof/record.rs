//! AOF records: RESP encoding, and the rewrites Redis 7.0 applies before propagating a
//! command, so that replaying the file later gives the state the command left.
//!
//! The one idea to hold: a record must mean the same thing whenever it is replayed.
//! Relative expiries become absolute (`PEXPIREAT`, `SET ... PXAT`, `RESTORE ... ABSTTL`),
//! read from the deadline the command actually stored (never recomputed); an expiry
//! already in the past becomes `DEL`; random or blocking commands become their
//! deterministic, non-blocking forms. One function per rewritten command, in
//! [`propagate`]'s table; every other write is logged as received.

use crate::protocol::Reply;
use crate::shard::Shard;
use bytes::Bytes;

/// Append `argv` as a RESP array of bulk strings.
pub fn encode(out: &mut Vec<u8>, argv: &[&[u8]]) {
    out.push(b'*');
    out.extend_from_slice(argv.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in argv {
        out.push(b'$');
        out.extend_from_slice(a.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// [`encode`] for owned arguments.
pub fn encode_owned(out: &mut Vec<u8>, argv: &[Bytes]) {
    let refs: Vec<&[u8]> = argv.iter().map(|a| &a[..]).collect();
    encode(out, &refs);
}

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

fn num(n: u64) -> Bytes {
    Bytes::from(n.to_string())
}

/// The records to log for `argv`, which just ran on `shard` in `db` and changed data.
pub fn propagate(shard: &mut Shard, db: usize, argv: &[Bytes], reply: &Reply) -> Vec<Vec<Bytes>> {
    let name = argv[0].to_ascii_lowercase();
    let d = &mut shard.dbs[db];
    match name.as_slice() {
        b"expire" | b"pexpire" | b"expireat" | b"pexpireat" | b"getex" => deadline_of(d, &argv[1]),
        b"set" if has_relative_expiry(argv) => set_pxat(d, argv),
        b"setex" | b"psetex" => set_pxat(d, &[b("set"), argv[1].clone(), argv[3].clone()]),
        b"restore" => restore_absttl(d, argv),
        b"incrbyfloat" => match reply {
            Reply::Bulk(v) => vec![vec![b("SET"), argv[1].clone(), v.clone(), b("KEEPTTL")]],
            _ => vec![argv.to_vec()],
        },
        b"hincrbyfloat" => match reply {
            Reply::Bulk(v) => vec![vec![b("HSET"), argv[1].clone(), argv[2].clone(), v.clone()]],
            _ => vec![argv.to_vec()],
        },
        b"spop" => spop(d, argv, reply),
        b"blpop" | b"brpop" | b"bzpopmin" | b"bzpopmax" => popped_key(&name[1..], reply, None),
        b"lmpop" | b"blmpop" | b"zmpop" | b"bzmpop" => mpop(&name, argv, reply),
        b"blmove" => vec![std::iter::once(b("LMOVE"))
            .chain(argv[1..5].iter().cloned())
            .collect()],
        b"brpoplpush" => vec![vec![b("RPOPLPUSH"), argv[1].clone(), argv[2].clone()]],
        _ => vec![argv.to_vec()],
    }
}

/// True if SET names EX, PX or EXAT (PXAT is already absolute).
fn has_relative_expiry(argv: &[Bytes]) -> bool {
    argv[3..].iter().any(|a| {
        a.eq_ignore_ascii_case(b"ex")
            || a.eq_ignore_ascii_case(b"px")
            || a.eq_ignore_ascii_case(b"exat")
    })
}

/// EXPIRE & co, GETEX: the key's deadline as stored now (`PEXPIREAT`), `PERSIST` if it
/// has none, `DEL` if the command removed it (a deadline in the past).
fn deadline_of(d: &mut crate::storage::Db, key: &Bytes) -> Vec<Vec<Bytes>> {
    if !d.keys.contains_key(&key[..]) {
        return vec![vec![b("DEL"), key.clone()]];
    }
    match d.expire_of(key) {
        Some(at) => vec![vec![b("PEXPIREAT"), key.clone(), num(at)]],
        None => vec![vec![b("PERSIST"), key.clone()]],
    }
}

/// SET with EX / PX / EXAT, SETEX, PSETEX: `SET key value PXAT <deadline>` (Redis 7.0
/// drops the other options: the command already succeeded).
fn set_pxat(d: &mut crate::storage::Db, argv: &[Bytes]) -> Vec<Vec<Bytes>> {
    let key = &argv[1];
    match d.expire_of(key) {
        Some(at) if d.keys.contains_key(&key[..]) => vec![vec![
            b("SET"),
            key.clone(),
            argv[2].clone(),
            b("PXAT"),
            num(at),
        ]],
        _ if d.keys.contains_key(&key[..]) => vec![vec![b("SET"), key.clone(), argv[2].clone()]],
        _ => vec![vec![b("DEL"), key.clone()]],
    }
}

/// RESTORE key ttl payload [...]: the ttl made absolute (ABSTTL), or 0 for none.
fn restore_absttl(d: &mut crate::storage::Db, argv: &[Bytes]) -> Vec<Vec<Bytes>> {
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

/// SPOP: `SREM key member...` for what it popped, `DEL key` if the set is gone.
fn spop(d: &mut crate::storage::Db, argv: &[Bytes], reply: &Reply) -> Vec<Vec<Bytes>> {
    let key = &argv[1];
    if !d.keys.contains_key(&key[..]) {
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

/// BLPOP / BRPOP / BZPOPMIN / BZPOPMAX served: `LPOP key` etc. for the key in the reply
/// (`pop` is the command name without its B).
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

/// LMPOP / BLMPOP / ZMPOP / BZMPOP: `LPOP key n`, `ZPOPMIN key n`... for the key it popped.
fn mpop(name: &[u8], argv: &[Bytes], reply: &Reply) -> Vec<Vec<Bytes>> {
    let zset = name.ends_with(b"zmpop");
    let end = argv.iter().skip(2).find(|a| {
        a.eq_ignore_ascii_case(b"left")
            || a.eq_ignore_ascii_case(b"right")
            || a.eq_ignore_ascii_case(b"min")
            || a.eq_ignore_ascii_case(b"max")
    });
    let pop: &[u8] = match (zset, end.map(|e| e.to_ascii_lowercase())) {
        (false, Some(e)) if e == b"right" => b"rpop",
        (false, _) => b"lpop",
        (true, Some(e)) if e == b"max" => b"zpopmax",
        (true, _) => b"zpopmin",
    };
    let n = match reply {
        Reply::Array(items) => items.get(1).map(|r| match r {
            Reply::Array(v) => v.len(),
            other => bulk_items(other).map_or(0, |v| v.len()),
        }),
        _ => None,
    };
    popped_key(pop, reply, Some(n.unwrap_or(1)))
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
        Reply::Raw(raw) => match super::load::parse_record(raw, 0) {
            super::load::Parsed::Record(argv, _) => Some(argv),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ConfigHandle};

    fn argv(s: &str) -> Vec<Bytes> {
        s.split(' ').map(|a| Bytes::from(a.to_string())).collect()
    }

    fn text(recs: &[Vec<Bytes>]) -> Vec<String> {
        recs.iter()
            .map(|r| {
                r.iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    #[test]
    fn encodes_resp_arrays() {
        let mut out = Vec::new();
        encode(&mut out, &[b"SET", b"k", b""]);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
    }

    #[test]
    fn relative_expiries_become_absolute() {
        let mut s = Shard::new(0, 1, ConfigHandle::new(Config::default()));
        let d = &mut s.dbs[0];
        d.set(
            b"k",
            crate::storage::Value::Str(crate::storage::value::StrValue::from_bytes(b"v")),
            false,
        );
        d.set_expire(b"k", 5_000_000_000_000);
        let r = propagate(&mut s, 0, &argv("SET k v EX 100 GET"), &Reply::Null);
        assert_eq!(text(&r), ["SET k v PXAT 5000000000000"]);
        let r = propagate(&mut s, 0, &argv("expire k 10"), &Reply::Int(1));
        assert_eq!(text(&r), ["PEXPIREAT k 5000000000000"]);
        s.dbs[0].persist(b"k");
        let r = propagate(&mut s, 0, &argv("getex k persist"), &Reply::Null);
        assert_eq!(text(&r), ["PERSIST k"]);
        s.dbs[0].remove(b"k");
        let r = propagate(&mut s, 0, &argv("expire k -1"), &Reply::Int(1));
        assert_eq!(text(&r), ["DEL k"]);
    }

    #[test]
    fn blocking_and_random_commands_become_deterministic() {
        let mut s = Shard::new(0, 1, ConfigHandle::new(Config::default()));
        let popped = Reply::Array(vec![Reply::bulk(b"l"), Reply::bulk(b"a")]);
        assert_eq!(
            text(&propagate(&mut s, 0, &argv("BLPOP l 0"), &popped)),
            ["LPOP l"]
        );
        let mpop = Reply::Array(vec![
            Reply::bulk(b"l"),
            Reply::Array(vec![Reply::bulk(b"a"), Reply::bulk(b"b")]),
        ]);
        assert_eq!(
            text(&propagate(
                &mut s,
                0,
                &argv("blmpop 0 1 l right count 2"),
                &mpop
            )),
            ["RPOP l 2"]
        );
        assert_eq!(
            text(&propagate(
                &mut s,
                0,
                &argv("blmove a b left right 0"),
                &Reply::Null
            )),
            ["LMOVE a b left right"]
        );
        assert_eq!(
            text(&propagate(
                &mut s,
                0,
                &argv("incrbyfloat e 1"),
                &Reply::bulk(b"2.5")
            )),
            ["SET e 2.5 KEEPTTL"]
        );
        // SPOP on a set that is now gone: DEL.
        assert_eq!(
            text(&propagate(
                &mut s,
                0,
                &argv("spop s 5"),
                &Reply::Array(vec![])
            )),
            ["DEL s"]
        );
    }
}
