//! Keyspace notifications against the real binary, beside a real redis-server: the
//! option's parsing and printing, the events of a scripted session heard by
//! subscribers on every core (RESP2 and RESP3, channel and pattern subscriptions),
//! the `expired` events of the active cycle, and silence when the option is empty.
//! The random sequences' events are compared in `differential.rs`
//! (`same_keyspace_events_as_redis`).
//!
//! The one idea to hold: a command's events are heard after the command was answered
//! and before any event of a command sent after that answer, so each subscriber's
//! stream is compared frame by frame with Redis's, in order, up to a marker event.

mod common;

use common::{conn_on, core_of, show, wait_until, Frame, RawConn, Server};
use std::time::Duration;

fn text(f: Frame) -> String {
    match f {
        Frame::Bulk(b) | Frame::Verbatim(b) => String::from_utf8_lossy(&b).into_owned(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// Subscribers of one server, one per kind of subscription, spread over its cores.
struct Listeners {
    conns: Vec<RawConn>,
    /// The core of each.
    cores: Vec<usize>,
}

/// What each listener subscribes to, and in which protocol.
const LISTENERS: &[(&str, &str, bool)] = &[
    ("PSUBSCRIBE", "__key*__:*", false),
    ("SUBSCRIBE", "__keyevent@0__:del", false),
    ("PSUBSCRIBE", "__keyspace@0__:k*", true),
    ("SUBSCRIBE", "__keyevent@0__:expired", true),
];

impl Listeners {
    /// On Shardis (`spread`) the listeners alternate between cores 0 and 1; on Redis
    /// any connection will do (its cores read 0).
    fn new(server: &Server, spread: bool) -> Listeners {
        let mut cores = Vec::new();
        let conns = LISTENERS
            .iter()
            .enumerate()
            .map(|(i, &(cmd, arg, resp3))| {
                let mut c = if spread {
                    conn_on(server, i % 2)
                } else {
                    server.raw()
                };
                cores.push(if spread { core_of(&mut c) } else { 0 });
                if resp3 {
                    c.cmd(&["HELLO", "3"]);
                }
                c.send_cmd(&[cmd.as_bytes(), arg.as_bytes()]);
                c.read_frame();
                // The marker events' channel, to know where a step's events end.
                c.send_cmd(&[b"SUBSCRIBE", b"__keyevent@15__:set"]);
                c.read_frame();
                c
            })
            .collect();
        Listeners { conns, cores }
    }

    /// Everything each listener heard up to the marker event `n` (a SET of key
    /// `marker-<n>` in db 15; the marker's other events are skipped).
    fn heard(&mut self, n: usize) -> Vec<Vec<String>> {
        let marker = format!("marker-{n}");
        self.conns
            .iter_mut()
            .map(|c| {
                let mut got = Vec::new();
                loop {
                    let f = c.read_frame();
                    let s = show(&f);
                    if s.contains(&marker) {
                        if s.contains("$\"message\"") {
                            return got;
                        }
                        continue;
                    }
                    got.push(s);
                }
            })
            .collect()
    }
}

/// The session: every event family, some failing commands that raise nothing, keys on
/// every shard.
const SESSION: &[&str] = &[
    "SET k1 v",
    "SET k2 v EX 100",
    "SET k1 v NX",
    "GET nokey",
    "APPEND k3 abc",
    "INCRBY k4 5",
    "INCRBYFLOAT k4 1.5",
    "SETRANGE k3 1 zz",
    "GETDEL k3",
    "GETEX k2 PERSIST",
    "GETEX k2 EX 50",
    // (Keys of a split command share a hash tag: parts on different shards raise
    // their events in no set order, a known difference.)
    "MSET k5{t} 1 k6{t} 2",
    "SETBIT k7 3 1",
    "RPUSH k8 a b c",
    "LPUSH k8 z",
    "LPOP k8",
    "RPOP k8 2",
    "LINSERT k8 BEFORE a x",
    "LSET k8 0 y",
    "LREM k8 0 y",
    "LMOVE k8 k9 LEFT RIGHT",
    "LTRIM k9 5 10",
    "HSET k10 f v g w",
    "HINCRBY k10 n 2",
    "HINCRBYFLOAT k10 n 0.5",
    "HDEL k10 f g n",
    "SADD k11 a b c",
    "SREM k11 a",
    "SMOVE k11 k12 b",
    "SPOP k11",
    "SINTERSTORE k13 k12 k12",
    "SUNIONSTORE k13 nokey",
    "ZADD k14 1 a 2 b",
    "ZINCRBY k14 5 a",
    "ZREM k14 b",
    "ZPOPMIN k14",
    "ZADD k15 1 a 2 b 3 c",
    "ZREMRANGEBYSCORE k15 2 2",
    "ZRANGESTORE k16 k15 0 -1",
    "PFADD k17 x y",
    "EXPIRE k16 100",
    "PERSIST k16",
    "EXPIRE k16 -1",
    "RENAME k15 k18",
    "COPY k18 k19",
    "MOVE k19 1",
    "RENAME k1 k1{t}",
    "DEL k18 k1{t} k5{t} nokey{t}",
    "RPUSH k20 1",
    "SORT k20 STORE k21",
    "LPUSH k1 wrongtype",
    "SET k1 x",
    "LPUSH k1 wrongtype",
];

#[test]
fn a_session_is_heard_as_redis_tells_it_on_every_core() {
    let shardis = Server::shardis_with(2, &["--notify-keyspace-events", "KEA"]);
    let redis = Server::redis_with(&["--notify-keyspace-events", "KEA"]);
    let mut s_listen = Listeners::new(&shardis, true);
    let mut r_listen = Listeners::new(&redis, false);
    let cores: std::collections::HashSet<usize> = s_listen.cores.iter().copied().collect();
    // The commands come from connections on both cores, in turn.
    let (mut s, mut r) = (conn_on(&shardis, 0), redis.raw());
    let mut s_other = conn_on(&shardis, 1);
    let mut r_other = redis.raw();
    // On Redis the two connections only stand for Shardis's two.
    for (i, line) in SESSION.iter().enumerate() {
        let argv: Vec<&str> = line.split_whitespace().collect();
        let (sc, rc) = if i % 2 == 0 {
            (&mut s, &mut r)
        } else {
            (&mut s_other, &mut r_other)
        };
        assert_eq!(
            show(&sc.cmd(&argv)),
            show(&rc.cmd(&argv)),
            "reply to {line}"
        );
        // The marker is itself an event from the same connection (a PUBLISH would
        // do as well: see the next test).
        for c in [&mut *sc, &mut *rc] {
            c.cmd(&["SELECT", "15"]);
            c.cmd(&["SET", &format!("marker-{i}"), "x"]);
            c.cmd(&["SELECT", "0"]);
        }
        let heard = s_listen.heard(i);
        let expected = r_listen.heard(i);
        assert_eq!(
            heard, expected,
            "events of `{line}` (listeners: {LISTENERS:?})"
        );
    }
    assert_eq!(cores.len(), 2, "listeners on every core");
}

#[test]
fn a_publish_never_overtakes_the_events_of_the_command_before_it() {
    let shardis = Server::shardis_with(2, &["--notify-keyspace-events", "KA"]);
    for core in 0..2 {
        let mut sub = conn_on(&shardis, core);
        sub.send_cmd(&[b"PSUBSCRIBE", b"__keyspace@0__:*"]);
        sub.read_frame();
        sub.send_cmd(&[b"SUBSCRIBE", b"done"]);
        sub.read_frame();
        // From the subscriber's core (PUBLISH delivered at once) and from the other
        // one; keys on both shards.
        for from in 0..2 {
            let mut c = conn_on(&shardis, from);
            for i in 0..100 {
                let key = format!("key:{core}:{from}:{i}");
                // Pipelined, so the PUBLISH runs right behind the SET.
                c.send_cmd(&[b"SET", key.as_bytes(), b"v"]);
                c.send_cmd(&[b"PUBLISH", b"done", key.as_bytes()]);
                c.read_frame();
                c.read_frame();
                let event = show(&sub.read_frame());
                let done = show(&sub.read_frame());
                assert!(
                    event.contains(&format!("__keyspace@0__:{key}")),
                    "{key}: first {event}, then {done}"
                );
                assert!(done.contains("\"done\"") && done.contains(&key), "{done}");
            }
        }
    }
}

/// With the AOF on, an idle subscriber's events wait for the log to have the writes
/// they tell of (as Redis writes its clients after its AOF): they still come, in
/// order, whichever core wrote.
#[test]
fn events_come_after_the_log_has_the_write() {
    let shardis = Server::shardis_with(
        2,
        &[
            "--notify-keyspace-events",
            "KA",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ],
    );
    let mut sub = conn_on(&shardis, 0);
    sub.send_cmd(&[b"PSUBSCRIBE", b"__keyspace@0__:*"]);
    sub.read_frame();
    for from in 0..2 {
        let mut c = conn_on(&shardis, from);
        for i in 0..50 {
            let key = format!("logged:{from}:{i}");
            c.send_cmd(&[b"SET", key.as_bytes(), b"v"]);
            c.read_frame();
            let event = show(&sub.read_frame());
            assert!(
                event.contains(&format!("__keyspace@0__:{key}")),
                "{key}: {event}"
            );
        }
    }
}

#[test]
fn the_active_cycle_and_new_keys_raise_their_events() {
    let args = ["--notify-keyspace-events", "Exn"];
    let shardis = Server::shardis_with(2, &args);
    let redis = Server::redis_with(&args);
    for server in [&shardis, &redis] {
        let mut sub = server.raw();
        sub.send_cmd(&[b"PSUBSCRIBE", b"__keyevent@*__:*"]);
        sub.read_frame();
        let mut c = server.raw();
        for i in 0..6 {
            c.cmd(&["SET", &format!("t{i}"), "v", "PX", "30"]);
        }
        // `new` for each key (SET's class `$` is off), then `expired` once the active
        // cycle finds them, nobody having read them.
        let mut news = Vec::new();
        let mut expired = Vec::new();
        while expired.len() < 6 {
            let Frame::Array(parts) = sub.read_frame() else {
                panic!("not a message")
            };
            let channel = show(&parts[2]);
            let key = text(parts[3].clone());
            if channel.contains("__keyevent@0__:new") {
                news.push(key);
            } else if channel.contains("__keyevent@0__:expired") {
                expired.push(key);
            } else {
                panic!("unexpected event {channel}");
            }
        }
        expired.sort();
        assert_eq!(news, (0..6).map(|i| format!("t{i}")).collect::<Vec<_>>());
        assert_eq!(expired, news);
    }
}

#[test]
fn the_option_is_parsed_and_printed_as_redis_does() {
    let shardis = Server::shardis(1);
    let redis = Server::redis();
    let (mut s, mut r) = (shardis.raw(), redis.raw());
    for value in [
        "KEA",
        "AKE",
        "Kx",
        "Elg$",
        "AnKm",
        "nm",
        "g$lshzxetdKE",
        "",
        "Q",
        "KEA ",
    ] {
        let set = ["CONFIG", "SET", "notify-keyspace-events", value];
        assert_eq!(
            show(&s.cmd(&set)),
            show(&r.cmd(&set)),
            "CONFIG SET {value:?}"
        );
        let get = ["CONFIG", "GET", "notify-keyspace-events"];
        assert_eq!(show(&s.cmd(&get)), show(&r.cmd(&get)), "after {value:?}");
    }
}

#[test]
fn nothing_is_heard_when_the_option_is_off_or_the_class_is() {
    let shardis = Server::shardis(2);
    let mut sub = shardis.raw();
    sub.send_cmd(&[b"PSUBSCRIBE", b"*"]);
    sub.read_frame();
    let mut c = shardis.raw();
    let quiet = |c: &mut RawConn, sub: &mut RawConn, marker: &str| {
        for k in ["a", "b", "c", "d"] {
            c.cmd(&["SET", k, "v"]);
            c.cmd(&["DEL", k]);
        }
        c.cmd(&["PUBLISH", "m", marker]);
        let f = sub.read_frame();
        assert!(
            show(&f).contains(marker),
            "heard {} before the marker",
            show(&f)
        );
    };
    quiet(&mut c, &mut sub, "off");
    // Classes without K or E publish nothing; K with only `$` leaves DEL unheard.
    c.cmd(&["CONFIG", "SET", "notify-keyspace-events", "A"]);
    quiet(&mut c, &mut sub, "no-k-or-e");
    c.cmd(&["CONFIG", "SET", "notify-keyspace-events", "K$"]);
    c.cmd(&["DEL", "x"]);
    c.cmd(&["SET", "x", "1"]);
    let f = sub.read_frame();
    assert!(show(&f).contains("__keyspace@0__:x") && show(&f).contains("\"set\""));
    // And a disconnected subscriber leaves nothing behind.
    let mut p = shardis.raw();
    drop(sub);
    assert!(wait_until(Duration::from_secs(5), || {
        matches!(p.cmd(&["PUBSUB", "NUMPAT"]), Frame::Int(0))
    }));
}
