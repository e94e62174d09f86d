//! `maxmemory` and its eviction policies, against redis-server 7.0 in the same test:
//! each server is given a limit 8 MiB above what it uses at start and is written
//! twice that; both must stay under their limit (with a little slack), evict only
//! what the policy allows, and, where the policy ranks keys, evict the ones it ranks
//! first. Evictions reach a replica as DELs and raise `evicted` events.

mod common;

use common::{follow, info_field, show, wait_until, Frame, RawConn, Server};
use std::time::Duration;

const BUDGET: u64 = 8 << 20;
const VALUE: usize = 1000;
/// Enough values to fill twice the budget.
const FILL: usize = (2 * BUDGET as usize) / VALUE;
/// What may be over the limit when a write ends: one value, the connection's
/// buffers, and (Shardis) each thread's uncounted drift of at most 64 KiB.
const SLACK: u64 = 1 << 20;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Shardis,
    Redis,
}

fn start(kind: Kind, policy: &str) -> Server {
    let args = [
        "--maxmemory-policy",
        policy,
        "--enable-debug-command",
        "yes",
    ];
    match kind {
        Kind::Shardis => Server::shardis_with(2, &args),
        Kind::Redis => Server::redis_with(&args),
    }
}

fn num(c: &mut RawConn, field: &str) -> u64 {
    info_field(c, field).parse().unwrap_or(0)
}

/// Set the limit `BUDGET` above what the server uses now; returns the limit.
fn limit(c: &mut RawConn) -> u64 {
    let max = num(c, "used_memory") + BUDGET;
    let r = c.cmd(&["CONFIG", "SET", "maxmemory", &max.to_string()]);
    assert_eq!(r, Frame::Simple("OK".into()), "{}", show(&r));
    max
}

/// Send every command in `cmds`, pipelined by 200; the replies in order.
fn pipeline(c: &mut RawConn, cmds: &[Vec<String>]) -> Vec<Frame> {
    let mut replies = Vec::with_capacity(cmds.len());
    for chunk in cmds.chunks(200) {
        for cmd in chunk {
            let argv: Vec<&[u8]> = cmd.iter().map(|a| a.as_bytes()).collect();
            c.send_cmd(&argv);
        }
        replies.extend(chunk.iter().map(|_| c.read_frame()));
    }
    replies
}

fn set(key: String, ttl: Option<u64>) -> Vec<String> {
    let mut cmd = vec!["SET".to_string(), key, "v".repeat(VALUE)];
    if let Some(t) = ttl {
        cmd.extend(["EX".to_string(), t.to_string()]);
    }
    cmd
}

fn exists(c: &mut RawConn, keys: &[String]) -> usize {
    let cmds: Vec<Vec<String>> = keys
        .iter()
        .map(|k| vec!["EXISTS".to_string(), k.clone()])
        .collect();
    pipeline(c, &cmds)
        .into_iter()
        .filter(|f| *f == Frame::Int(1))
        .count()
}

fn keys(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}:{i}")).collect()
}

/// Fill `FILL` keys, three in four with a TTL (the persistent ones fit in the
/// budget, so the volatile policies always find a key to evict); the replies and the
/// two key sets.
fn fill_mostly_volatile(c: &mut RawConn) -> (Vec<Frame>, Vec<String>, Vec<String>) {
    let (persistent, volatile) = (keys("p", FILL / 4), keys("v", FILL * 3 / 4));
    let cmds: Vec<Vec<String>> = persistent
        .iter()
        .zip(volatile.chunks(3))
        .flat_map(|(p, v)| {
            std::iter::once(set(p.clone(), None))
                .chain(v.iter().map(|v| set(v.clone(), Some(100_000))))
        })
        .collect();
    (pipeline(c, &cmds), persistent, volatile)
}

/// Keys per shard, from INFO's shards section (`shardN:keys=...`).
fn shard_keys(c: &mut RawConn) -> Vec<u64> {
    let Frame::Bulk(info) = c.cmd(&["INFO", "shards"]) else {
        panic!("INFO shards")
    };
    String::from_utf8_lossy(&info)
        .lines()
        .filter(|l| l.starts_with("shard") && l.contains(":keys="))
        .map(|l| {
            let v = l.split(":keys=").nth(1).unwrap_or("0");
            v.split(',').next().unwrap_or("0").parse().unwrap_or(0)
        })
        .collect()
}

/// What eviction holds under `max`: `used_memory` less what it does not count (a
/// replica's stream past the backlog: `mem_not_counted_for_evict`, as Redis's
/// `freeMemoryGetNotCountedMemory`), which grows while a busy machine keeps the
/// replica from reading.
fn assert_under(c: &mut RawConn, max: u64, what: &str) {
    let used = num(c, "used_memory");
    let not_counted = num(c, "mem_not_counted_for_evict");
    assert!(
        used.saturating_sub(not_counted) <= max + SLACK,
        "{what}: used_memory {used} (not counted {not_counted}) over maxmemory {max} (+{SLACK})"
    );
}

#[test]
fn every_policy_keeps_memory_under_the_limit_and_evicts_only_what_it_may() {
    for policy in [
        "allkeys-lru",
        "allkeys-lfu",
        "allkeys-random",
        "volatile-lru",
        "volatile-lfu",
        "volatile-random",
        "volatile-ttl",
    ] {
        for kind in [Kind::Redis, Kind::Shardis] {
            let name = match kind {
                Kind::Shardis => "shardis",
                Kind::Redis => "redis",
            };
            let what = format!("{name} {policy}");
            let server = start(kind, policy);
            let mut c = server.raw();
            let max = limit(&mut c);
            let (replies, persistent, volatile) = fill_mostly_volatile(&mut c);
            assert!(
                replies.iter().all(|r| *r == Frame::Simple("OK".into())),
                "{what}: a write was refused: {:?}",
                replies.iter().find(|r| **r != Frame::Simple("OK".into()))
            );
            assert_under(&mut c, max, &what);
            assert!(num(&mut c, "evicted_keys") > 0, "{what}: nothing evicted");
            let kept_p = exists(&mut c, &persistent);
            let kept_v = exists(&mut c, &volatile);
            if policy.starts_with("volatile") {
                assert_eq!(kept_p, persistent.len(), "{what}: a persistent key went");
                assert!(kept_v < volatile.len(), "{what}");
            } else {
                assert!(
                    kept_p < persistent.len() && kept_v < volatile.len(),
                    "{what}"
                );
            }
            // What is left fits.
            let left = (kept_p + kept_v) as u64 * VALUE as u64;
            assert!(left <= max, "{what}: {left} bytes of values kept");
        }
    }
}

#[test]
fn noeviction_refuses_writes_with_redis_s_error_and_keeps_everything() {
    let mut texts = Vec::new();
    for kind in [Kind::Redis, Kind::Shardis] {
        let server = start(kind, "noeviction");
        let mut c = server.raw();
        let max = limit(&mut c);
        let (replies, persistent, volatile) = fill_mostly_volatile(&mut c);
        let ok = replies
            .iter()
            .filter(|r| **r == Frame::Simple("OK".into()))
            .count() as u64;
        let refused: Vec<&Frame> = replies
            .iter()
            .filter(|r| **r != Frame::Simple("OK".into()))
            .collect();
        assert!(!refused.is_empty());
        assert_under(&mut c, max, "noeviction");
        // Every acknowledged write is kept.
        let kept = (exists(&mut c, &persistent) + exists(&mut c, &volatile)) as u64;
        assert_eq!(kept, ok);
        assert_eq!(num(&mut c, "evicted_keys"), 0);
        // Reads and deletes still run, but not inside MULTI (queuing takes memory):
        // a command queued there is refused and dooms the EXEC.
        assert_eq!(c.cmd(&["GET", "nokey"]), Frame::NullBulk);
        let r = c.cmd(&["MULTI"]);
        assert_eq!(r, Frame::Simple("OK".into()));
        let read = show(&c.cmd(&["GET", "x"]));
        let queued = format!("{read} {}", show(&c.cmd(&["SET", "x", "y"])));
        let exec = c.cmd(&["EXEC"]);
        // A multi-shard write is refused at admission too.
        let mset = c.cmd(&["MSET", "a", "1", "b", "2", "c", "3", "d", "4"]);
        // Scripts: one without flags may not start with a denyoom write, but may go
        // on after a write; one with flags is refused as a whole unless it says
        // no-writes or allow-oom.
        let scripts: Vec<String> = [
            "return redis.call('set', 'x', 'y')",
            "return redis.pcall('set', 'x', 'y')",
            "redis.call('del', KEYS[1]); return redis.call('set', 'x', 'y')",
            "return redis.call('get', 'x')",
            "#!lua\nreturn redis.call('set', 'x', 'y')",
            "#!lua flags=allow-oom\nreturn redis.call('set', 'x', 'z')",
            "#!lua flags=no-writes\nreturn redis.call('get', 'x')",
        ]
        .iter()
        .map(|body| show(&c.cmd(&["EVAL", body, "1", &persistent[1]])))
        .collect();
        let del = c.cmd(&["DEL", &persistent[0]]);
        texts.push((
            show(refused[0]),
            queued,
            show(&exec),
            show(&mset),
            show(&del),
            scripts,
        ));
    }
    assert_eq!(texts[0], texts[1]);
    let scripts = &texts[1].5;
    assert!(scripts[0].starts_with("-OOM") && scripts[4].starts_with("-OOM"));
    assert_eq!((scripts[2].as_str(), scripts[5].as_str()), ("+OK", "+OK"));
    assert_eq!(
        texts[0].0,
        "-OOM command not allowed when used memory > 'maxmemory'."
    );
}

/// Keys left of `old` and of `new` after filling: the policy's ranking must show.
fn kept_old_and_new(
    kind: Kind,
    policy: &str,
    prepare: impl Fn(&mut RawConn, &[String]),
    new_ttl: Option<u64>,
) -> (f64, f64) {
    let server = start(kind, policy);
    let mut c = server.raw();
    let max = limit(&mut c);
    let old = keys("old", FILL / 4);
    prepare(&mut c, &old);
    let new = keys("new", FILL * 3 / 4);
    let cmds: Vec<Vec<String>> = new.iter().map(|k| set(k.clone(), new_ttl)).collect();
    pipeline(&mut c, &cmds);
    assert_under(&mut c, max, policy);
    let kept_old = exists(&mut c, &old) as f64 / old.len() as f64;
    let kept_new = exists(&mut c, &new) as f64 / new.len() as f64;
    (kept_old, kept_new)
}

#[test]
fn ranking_policies_evict_the_keys_they_rank_first() {
    // LRU: keys idle for 2 s go before the ones just written.
    let idle_old = |c: &mut RawConn, old: &[String]| {
        let cmds: Vec<Vec<String>> = old.iter().map(|k| set(k.clone(), None)).collect();
        pipeline(c, &cmds);
        std::thread::sleep(Duration::from_millis(2100));
    };
    // LFU: keys read 20 times each stay over the ones written once.
    let hot_old = |c: &mut RawConn, old: &[String]| {
        let cmds: Vec<Vec<String>> = old.iter().map(|k| set(k.clone(), None)).collect();
        pipeline(c, &cmds);
        let reads: Vec<Vec<String>> = (0..20)
            .flat_map(|_| old.iter().map(|k| vec!["GET".to_string(), k.clone()]))
            .collect();
        pipeline(c, &reads);
    };
    // TTL: keys expiring in 1000 s go before those expiring in 100000 s.
    let soon_old = |c: &mut RawConn, old: &[String]| {
        let cmds: Vec<Vec<String>> = old.iter().map(|k| set(k.clone(), Some(1000))).collect();
        pipeline(c, &cmds);
    };
    for kind in [Kind::Redis, Kind::Shardis] {
        let (o, n) = kept_old_and_new(kind, "allkeys-lru", idle_old, None);
        assert!(
            o < n,
            "allkeys-lru kept {o} of the idle keys, {n} of the new"
        );
        let (o, n) = kept_old_and_new(kind, "allkeys-lfu", hot_old, None);
        assert!(
            o > n,
            "allkeys-lfu kept {o} of the hot keys, {n} of the new"
        );
        let (o, n) = kept_old_and_new(kind, "volatile-ttl", soon_old, Some(100_000));
        assert!(
            o < n,
            "volatile-ttl kept {o} of the near TTLs, {n} of the far"
        );
    }
}

#[test]
fn evictions_reach_a_replica_as_dels_and_raise_events() {
    let master = start(Kind::Shardis, "allkeys-random");
    let replica = Server::shardis_with(2, &["--enable-debug-command", "yes"]);
    follow(&replica, &master);
    let mut m = master.raw();
    assert_eq!(
        m.cmd(&["CONFIG", "SET", "notify-keyspace-events", "Ee"]),
        Frame::Simple("OK".into())
    );
    let mut sub = master.raw();
    sub.cmd(&["SUBSCRIBE", "__keyevent@0__:evicted"]);
    let max = limit(&mut m);
    let (_, persistent, volatile) = fill_mostly_volatile(&mut m);
    assert_under(&mut m, max, "master");
    assert!(
        num(&mut m, "total_eviction_exceeded_time")
            >= num(&mut m, "current_eviction_exceeded_time")
    );
    // Lift the limit so the master stops evicting (reading back costs memory too);
    // the current stretch over the limit ends by the next cron tick.
    m.cmd(&["CONFIG", "SET", "maxmemory", "0"]);
    assert!(wait_until(Duration::from_secs(5), || num(
        &mut m,
        "current_eviction_exceeded_time"
    ) == 0));
    let evicted = num(&mut m, "evicted_keys");
    assert!(evicted > 0);
    // The replica holds exactly what the master kept: the evictions came as DELs
    // (and the replica, which ignores maxmemory, evicted nothing itself).
    let mut r = replica.raw();
    let synced = wait_until(Duration::from_secs(30), || {
        num(&mut r, "master_repl_offset") == num(&mut m, "master_repl_offset")
    });
    assert!(synced);
    let all: Vec<String> = persistent.into_iter().chain(volatile).collect();
    assert_eq!(r.cmd(&["DBSIZE"]), m.cmd(&["DBSIZE"]));
    assert_eq!(exists(&mut r, &all), exists(&mut m, &all));
    assert_eq!(num(&mut r, "evicted_keys"), 0);
    // One event per evicted key, naming it.
    let first = sub.read_frame();
    let Frame::Array(parts) = first else {
        panic!("{}", show(&first))
    };
    assert_eq!(parts[1], Frame::Bulk(b"__keyevent@0__:evicted".to_vec()));
    let mut events = 1;
    sub.stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    while events < evicted {
        let _ = sub.read_frame();
        events += 1;
    }
    assert_eq!(events, evicted);
}

#[test]
fn object_freq_and_idletime_follow_the_policy_as_redis() {
    let mut seen = Vec::new();
    for kind in [Kind::Redis, Kind::Shardis] {
        let server = start(kind, "allkeys-lfu");
        let mut c = server.raw();
        let mut out = Vec::new();
        c.cmd(&["SET", "n", "1"]);
        out.push(show(&c.cmd(&["OBJECT", "FREQ", "n"])));
        c.cmd(&["GET", "n"]);
        out.push(show(&c.cmd(&["OBJECT", "FREQ", "n"])));
        out.push(show(&c.cmd(&["OBJECT", "IDLETIME", "n"])));
        // RESTORE FREQ sets the counter under LFU.
        let Frame::Bulk(payload) = c.cmd(&["DUMP", "n"]) else {
            panic!("DUMP")
        };
        let argv: Vec<&[u8]> = vec![b"RESTORE", b"m", b"0", &payload, b"FREQ", b"100"];
        c.send_cmd(&argv);
        out.push(show(&c.read_frame()));
        out.push(show(&c.cmd(&["OBJECT", "FREQ", "m"])));
        // Back to LRU: FREQ is refused, IDLETIME counts.
        c.cmd(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]);
        out.push(show(&c.cmd(&["OBJECT", "FREQ", "n"])));
        // (Not an integer: Redis would share the object, whose stamp is its own.)
        c.cmd(&["SET", "o", "abc"]);
        out.push(show(&c.cmd(&["OBJECT", "IDLETIME", "o"])));
        seen.push(out);
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[1][0], ":5");
    assert_eq!(seen[1][1], ":6");
}

#[test]
fn each_shard_keeps_its_share_of_the_keys() {
    // Reads whose replies fill the connection's buffers, between writes: the shard of
    // the connection's core meets the excess first. It must not evict for everyone
    // (it used to drain itself to a few keys while the other shard kept the rest).
    let server = start(Kind::Shardis, "allkeys-random");
    let mut c = server.raw();
    limit(&mut c);
    let mut written: Vec<String> = Vec::new();
    for round in 0..(2 * FILL / 50) {
        let mut cmds: Vec<Vec<String>> = (0..50)
            .map(|i| written.get((round * 7919 + i * 104_729) % written.len().max(1)))
            .filter_map(|k| k.map(|k| vec!["GET".to_string(), k.clone()]))
            .collect();
        for i in 0..50 {
            let k = format!("k:{round}:{i}");
            cmds.push(set(k.clone(), None));
            written.push(k);
        }
        pipeline(&mut c, &cmds);
    }
    let shards = shard_keys(&mut c);
    let mean = shards.iter().sum::<u64>() / shards.len() as u64;
    assert!(
        shards.iter().all(|&k| k * 4 >= mean * 3),
        "keys per shard {shards:?}"
    );
}
