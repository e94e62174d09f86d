//! DUMP and RESTORE: a key's value as a portable payload (Redis's `cluster.c` commands
//! of the same names, which MIGRATE and `redis-cli --pipe` copies build on).
//!
//! Commands stay thin: the payload format and its checks live in
//! [`crate::persistence::rdb::dump`]. The one idea to hold: a payload is untrusted
//! input from another server, so RESTORE checks the trailer (version, CRC64) before it
//! reads a byte of the body, and builds the value with this server's encoding limits.

use super::{args, errors, propagate, Command, Ctx, Exec};
use crate::notify;
use crate::persistence::rdb::dump;
use crate::persistence::rdb::encode::Options;
use crate::protocol::Reply;
use crate::storage::access;
use bytes::Bytes;

pub static COMMANDS: &[Command] = &[
    Command::new(
        "dump",
        2,
        "readonly",
        "keyspace read slow",
        Exec::Shard(dump_cmd),
    )
    .keys(1, 1, 1),
    Command::new(
        "restore",
        -4,
        "write denyoom",
        "keyspace write slow dangerous",
        Exec::Shard(restore),
    )
    .keys(1, 1, 1)
    .propagate(propagate::restore),
    Command::new(
        "restore-asking",
        -4,
        "write denyoom asking",
        "keyspace write slow dangerous",
        Exec::Shard(restore),
    )
    .keys(1, 1, 1)
    .propagate(propagate::restore),
];

/// DUMP key: the payload, or nil for a missing key.
fn dump_cmd(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let compress = ctx.shard.config.get("rdbcompression") != Some("no");
    match ctx.lookup_read(&argv[1]) {
        Some(e) => Reply::Bulk(dump::payload(&e.value, Options { compress }).into()),
        None => Reply::Null,
    }
}

/// RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency]
fn restore(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let key = &argv[1];
    let (mut replace, mut absttl) = (false, false);
    let (mut idle, mut freq): (Option<i64>, Option<i64>) = (None, None);
    let mut j = 4;
    while j < argv.len() {
        let more = argv.len() - j - 1;
        let a = &argv[j];
        if args::eq(a, "replace") {
            replace = true;
        } else if args::eq(a, "absttl") {
            absttl = true;
        } else if args::eq(a, "idletime") && more >= 1 && freq.is_none() {
            let v = match args::int(&argv[j + 1]) {
                Ok(v) => v,
                Err(e) => return e,
            };
            if v < 0 {
                return Reply::err(errors::RESTORE_IDLETIME_NEGATIVE);
            }
            idle = Some(v);
            j += 1;
        } else if args::eq(a, "freq") && more >= 1 && idle.is_none() {
            let v = match args::int(&argv[j + 1]) {
                Ok(v) => v,
                Err(e) => return e,
            };
            if !(0..=255).contains(&v) {
                return Reply::err(errors::RESTORE_FREQ_RANGE);
            }
            freq = Some(v);
            j += 1;
        } else {
            return errors::syntax();
        }
        j += 1;
    }
    if !replace && ctx.lookup_write(key).is_some() {
        return Reply::err(errors::BUSYKEY);
    }
    let ttl = match args::int(&argv[2]) {
        Ok(v) if v < 0 => return Reply::err(errors::RESTORE_TTL_NEGATIVE),
        Ok(v) => v,
        Err(e) => return e,
    };
    let limits = ctx.shard.config.encoding;
    let value = match dump::restore(&argv[3], &limits) {
        Ok(v) => v,
        Err(e) => return Reply::err(e),
    };
    let deleted = replace && ctx.db().delete(key);
    let deadline = match (ttl, absttl) {
        (0, _) => None,
        (t, true) => Some(t as u64),
        (t, false) => Some((ctx.now_ms as i64).saturating_add(t) as u64),
    };
    if let Some(at) = deadline {
        if at <= ctx.now_ms {
            // Already expired: nothing is created (a replaced key stays deleted).
            if deleted {
                ctx.notify(notify::GENERIC, "del", key);
            }
            return Reply::ok();
        }
    }
    ctx.db().set(key, value, false);
    if let Some(at) = deadline {
        ctx.db().set_expire(key, at);
    }
    // IDLETIME counts under LRU, FREQ under LFU; the other is ignored (Redis's
    // `objectSetLRUOrLFU`).
    let stamp = match (access::lfu(), idle, freq) {
        (false, Some(secs), _) => Some(access::idle_for(secs.max(0) as u64)),
        (true, _, Some(f)) => Some(access::with_freq(f.clamp(0, 255) as u8)),
        _ => None,
    };
    if let (Some(stamp), Some(e)) = (stamp, ctx.db().keys.get_mut(&key[..])) {
        e.lru = stamp;
    }
    ctx.notify(notify::GENERIC, "restore", key);
    Reply::ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::testing::shard;
    use crate::storage::db::lru_clock;
    use crate::storage::{StrValue, Value};

    fn call(s: &mut crate::shard::Shard, f: fn(&mut Ctx, &[Bytes]) -> Reply, a: &[&[u8]]) -> Reply {
        let argv: Vec<Bytes> = a.iter().map(|x| Bytes::copy_from_slice(x)).collect();
        f(&mut Ctx::new(s, 0), &argv)
    }

    #[test]
    fn dump_restore_round_trip() {
        let mut s = shard();
        let v = Value::Str(StrValue::from_set(b"hello"));
        Ctx::new(&mut s, 0).db().set(b"k", v.clone(), false);
        let Reply::Bulk(p) = call(&mut s, dump_cmd, &[b"dump", b"k"]) else {
            panic!("DUMP gives a bulk")
        };
        assert_eq!(call(&mut s, dump_cmd, &[b"dump", b"nokey"]), Reply::Null);
        assert_eq!(
            call(&mut s, restore, &[b"restore", b"k", b"0", &p]),
            Reply::err(errors::BUSYKEY)
        );
        assert_eq!(
            call(&mut s, restore, &[b"restore", b"k2", b"0", &p]),
            Reply::ok()
        );
        assert_eq!(
            Ctx::new(&mut s, 0)
                .lookup_read(b"k2")
                .map(|e| e.value.clone()),
            Some(v)
        );
        assert_eq!(
            call(
                &mut s,
                restore,
                &[b"restore", b"k2", b"0", &p, b"REPLACE", b"IDLETIME", b"100"]
            ),
            Reply::ok()
        );
        assert!(lru_clock() - s.dbs[0].keys.get(&b"k2"[..]).map_or(0, |e| e.lru) >= 99);
        assert_eq!(
            call(&mut s, restore, &[b"restore", b"k3", b"-1", &p]),
            Reply::err(errors::RESTORE_TTL_NEGATIVE)
        );
        assert_eq!(
            call(&mut s, restore, &[b"restore", b"k3", b"x", &p]),
            errors::not_integer()
        );
        assert_eq!(
            call(
                &mut s,
                restore,
                &[
                    b"restore",
                    b"k3",
                    b"0",
                    &p,
                    b"IDLETIME",
                    b"1",
                    b"FREQ",
                    b"1"
                ]
            ),
            errors::syntax()
        );
        assert_eq!(
            call(
                &mut s,
                restore,
                &[b"restore", b"k3", b"0", &p, b"FREQ", b"256"]
            ),
            Reply::err(errors::RESTORE_FREQ_RANGE)
        );
        assert_eq!(
            call(
                &mut s,
                restore,
                &[b"restore", b"k3", b"0", &p, b"IDLETIME", b"-1"]
            ),
            Reply::err(errors::RESTORE_IDLETIME_NEGATIVE)
        );
        assert_eq!(
            call(
                &mut s,
                restore,
                &[b"restore", b"k3", b"0", b"garbage-payload"]
            ),
            Reply::err(errors::DUMP_PAYLOAD)
        );
        // A TTL in the past with ABSTTL: REPLACE deletes, nothing is created.
        assert_eq!(
            call(
                &mut s,
                restore,
                &[b"restore", b"k2", b"1", &p, b"REPLACE", b"ABSTTL"]
            ),
            Reply::ok()
        );
        assert!(!Ctx::new(&mut s, 0).exists(b"k2"));
        assert_eq!(
            call(&mut s, restore, &[b"restore", b"k4", b"100000", &p]),
            Reply::ok()
        );
        assert!(Ctx::new(&mut s, 0).db().expire_of(b"k4").is_some());
    }

    #[test]
    fn bad_body_with_good_trailer() {
        let mut body = vec![0u8, 0xc3, 5, 200]; // a string claiming bogus LZF lengths
        body.extend_from_slice(&10u16.to_le_bytes());
        let crc = crate::persistence::rdb::crc64::crc64(0, &body);
        body.extend_from_slice(&crc.to_le_bytes());
        let mut s = shard();
        assert_eq!(
            call(&mut s, restore, &[b"restore", b"k", b"0", &body]),
            Reply::err(errors::BAD_DATA_FORMAT)
        );
    }
}
