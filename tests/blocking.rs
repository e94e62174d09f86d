//! Blocking commands against the real binary (`--threads 4`): the waiting client and the
//! writing client on different cores, keys on different shards.
//!
//! The one idea to hold: a blocked client is observed from outside (CLIENT LIST shows
//! flag `b`, INFO `blocked_clients`), so every test first waits until the server says
//! the client is blocked, then acts; no test depends on how long anything takes. Each
//! test states which core the blocked connection sits on (`CLIENT INFO`'s `shard=`) and
//! which shard owns the key, and the pushes come from connections on other cores.

mod common;

use common::{
    await_blocked, blocked_clients, keys_on_distinct_shards, shard_of, Frame, RawConn, Server,
};

const SHARDS: usize = 4;

fn bulk(s: &str) -> Frame {
    Frame::Bulk(s.as_bytes().to_vec())
}

fn arr(xs: &[&str]) -> Frame {
    Frame::Array(xs.iter().map(|x| bulk(x)).collect())
}

/// A connection whose client sits on core `core` (connections land on cores by the
/// kernel's SO_REUSEPORT hash, so open until one does).
fn conn_on(s: &Server, core: usize) -> RawConn {
    for _ in 0..400 {
        let mut c = s.raw();
        if let Frame::Bulk(b) = c.cmd(&["CLIENT", "INFO"]) {
            let line = String::from_utf8_lossy(&b).to_string();
            if line.contains(&format!(" shard={core}")) {
                return c;
            }
        }
    }
    panic!("no connection landed on core {core}");
}

fn client_id(c: &mut RawConn) -> String {
    match c.cmd(&["CLIENT", "ID"]) {
        Frame::Int(i) => i.to_string(),
        other => panic!("CLIENT ID: {other:?}"),
    }
}

#[test]
fn blpop_is_woken_by_a_push_from_every_other_core() {
    let s = Server::shardis(SHARDS);
    let mut ctl = s.raw();
    let keys = keys_on_distinct_shards("q", SHARDS, SHARDS);
    for waiter_core in 0..SHARDS {
        for key in &keys {
            let mut w = conn_on(&s, waiter_core);
            w.send_cmd(&[b"BLPOP", key.as_bytes(), b"0"]);
            await_blocked(&mut ctl, 1);
            let pusher_core = (waiter_core + 1) % SHARDS;
            let mut p = conn_on(&s, pusher_core);
            assert_eq!(p.cmd(&["RPUSH", key, "v1", "v2"]), Frame::Int(2));
            assert_eq!(
                w.read_frame(),
                arr(&[key, "v1"]),
                "key on shard {}",
                shard_of(key.as_bytes(), SHARDS)
            );
            assert_eq!(p.cmd(&["LRANGE", key, "0", "-1"]), arr(&["v2"]));
            p.cmd(&["DEL", key]);
            await_blocked(&mut ctl, 0);
        }
    }
}

#[test]
fn waiters_are_served_first_come_first_served() {
    let s = Server::shardis(SHARDS);
    let mut ctl = s.raw();
    let mut waiters = Vec::new();
    for i in 0..3 {
        let mut w = conn_on(&s, i % SHARDS);
        w.send_cmd(&[b"BRPOP", b"fifo", b"0"]);
        await_blocked(&mut ctl, i + 1);
        waiters.push(w);
    }
    // One push of three: each waiter gets one, in the order they blocked.
    assert_eq!(ctl.cmd(&["LPUSH", "fifo", "a", "b", "c"]), Frame::Int(3));
    let got: Vec<Frame> = waiters.iter_mut().map(|w| w.read_frame()).collect();
    assert_eq!(
        got,
        vec![
            arr(&["fifo", "a"]),
            arr(&["fifo", "b"]),
            arr(&["fifo", "c"])
        ]
    );
    assert_eq!(ctl.cmd(&["EXISTS", "fifo"]), Frame::Int(0));
}

#[test]
fn timeouts_fractions_and_bad_timeouts() {
    let s = Server::shardis(SHARDS);
    let mut c = s.raw();
    assert_eq!(c.cmd(&["BLPOP", "none", "0.05"]), Frame::NullArray);
    // Redis 7.0 times BLMOVE out with a null array too (a null bulk inside MULTI).
    assert_eq!(
        c.cmd(&["BLMOVE", "none", "x", "LEFT", "RIGHT", "0.01"]),
        Frame::NullArray
    );
    assert_eq!(c.cmd(&["BZPOPMIN", "none", "0.01"]), Frame::NullArray);
    assert_eq!(
        c.cmd(&["BLPOP", "none", "abc"]),
        Frame::Error("ERR timeout is not a float or out of range".into())
    );
    assert_eq!(
        c.cmd(&["BLPOP", "none", "-1"]),
        Frame::Error("ERR timeout is negative".into())
    );
    // The connection stays usable, and nobody is left blocked.
    assert_eq!(c.cmd(&["PING"]), Frame::Simple("PONG".into()));
    assert_eq!(blocked_clients(&mut c), 0);
}

#[test]
fn blocking_inside_multi_does_not_block_and_exec_wakes_waiters() {
    let s = Server::shardis(SHARDS);
    let mut ctl = s.raw();
    let mut c = s.raw();
    assert_eq!(c.cmd(&["MULTI"]), Frame::Simple("OK".into()));
    assert_eq!(c.cmd(&["BLPOP", "m", "0"]), Frame::Simple("QUEUED".into()));
    assert_eq!(c.cmd(&["EXEC"]), Frame::Array(vec![Frame::NullArray]));

    let mut w = s.raw();
    w.send_cmd(&[b"BLPOP", b"m", b"0"]);
    await_blocked(&mut ctl, 1);
    // Pushed and popped inside one transaction: the waiter sees nothing...
    c.cmd(&["MULTI"]);
    c.cmd(&["RPUSH", "m", "x"]);
    c.cmd(&["LPOP", "m"]);
    assert_eq!(
        c.cmd(&["EXEC"]),
        Frame::Array(vec![Frame::Int(1), bulk("x")])
    );
    assert_eq!(blocked_clients(&mut ctl), 1);
    // ...and is served once a transaction leaves something.
    c.cmd(&["MULTI"]);
    c.cmd(&["RPUSH", "m", "y", "z"]);
    c.cmd(&["EXEC"]);
    assert_eq!(w.read_frame(), arr(&["m", "y"]));
    assert_eq!(ctl.cmd(&["LRANGE", "m", "0", "-1"]), arr(&["z"]));
}

#[test]
fn keys_on_several_shards_serve_exactly_once() {
    let s = Server::shardis(SHARDS);
    let mut ctl = s.raw();
    let keys = keys_on_distinct_shards("multi", 3, SHARDS);
    let mut w = s.raw();
    w.send_cmd(&[
        b"BLPOP",
        keys[0].as_bytes(),
        keys[1].as_bytes(),
        keys[2].as_bytes(),
        b"0",
    ]);
    await_blocked(&mut ctl, 1);
    // Two shards become ready in one transaction-free burst: one element is taken.
    let mut p = s.raw();
    p.send_cmd(&[b"RPUSH", keys[2].as_bytes(), b"c"]);
    p.send_cmd(&[b"RPUSH", keys[1].as_bytes(), b"b"]);
    assert_eq!(p.read_frame(), Frame::Int(1));
    assert_eq!(p.read_frame(), Frame::Int(1));
    let got = w.read_frame();
    let left: i64 = keys[1..]
        .iter()
        .map(|k| match ctl.cmd(&["LLEN", k]) {
            Frame::Int(n) => n,
            other => panic!("{other:?}"),
        })
        .sum();
    assert_eq!(left, 1, "exactly one element taken, got {got:?}");
    assert!(
        got == arr(&[&keys[2], "c"]) || got == arr(&[&keys[1], "b"]),
        "{got:?}"
    );
    await_blocked(&mut ctl, 0);
    // And the waiter is gone from every shard: a later push stays put.
    ctl.cmd(&["RPUSH", &keys[0], "a"]);
    assert_eq!(ctl.cmd(&["LLEN", &keys[0]]), Frame::Int(1));
}

#[test]
fn blmove_between_shards() {
    let s = Server::shardis(SHARDS);
    let mut ctl = s.raw();
    let keys = keys_on_distinct_shards("mv", 2, SHARDS);
    let (src, dst) = (&keys[0], &keys[1]);
    let mut w = s.raw();
    w.send_cmd(&[
        b"BLMOVE",
        src.as_bytes(),
        dst.as_bytes(),
        b"LEFT",
        b"RIGHT",
        b"0",
    ]);
    await_blocked(&mut ctl, 1);
    ctl.cmd(&["RPUSH", src, "e1", "e2"]);
    assert_eq!(w.read_frame(), bulk("e1"));
    assert_eq!(ctl.cmd(&["LRANGE", dst, "0", "-1"]), arr(&["e1"]));
    assert_eq!(ctl.cmd(&["LRANGE", src, "0", "-1"]), arr(&["e2"]));
    // BRPOPLPUSH on one shard (hash tag): source and destination move atomically.
    let mut w = s.raw();
    w.send_cmd(&[b"BRPOPLPUSH", b"{h}a", b"{h}b", b"0"]);
    await_blocked(&mut ctl, 1);
    ctl.cmd(&["RPUSH", "{h}a", "x"]);
    assert_eq!(w.read_frame(), bulk("x"));
    assert_eq!(ctl.cmd(&["LRANGE", "{h}b", "0", "-1"]), arr(&["x"]));
}

#[test]
fn sorted_set_pops_block_too() {
    let s = Server::shardis(SHARDS);
    let mut ctl = s.raw();
    let mut w = s.raw();
    w.send_cmd(&[b"BZPOPMIN", b"z1", b"z2", b"0"]);
    await_blocked(&mut ctl, 1);
    ctl.cmd(&["ZADD", "z2", "2", "b", "1", "a"]);
    assert_eq!(w.read_frame(), arr(&["z2", "a", "1"]));
    let mut w = s.raw();
    w.send_cmd(&[b"BZMPOP", b"0", b"1", b"z3", b"MAX", b"COUNT", b"2"]);
    await_blocked(&mut ctl, 1);
    ctl.cmd(&["ZADD", "z3", "1", "a", "2", "b", "3", "c"]);
    assert_eq!(
        w.read_frame(),
        Frame::Array(vec![
            bulk("z3"),
            Frame::Array(vec![arr(&["c", "3"]), arr(&["b", "2"])])
        ])
    );
}

#[test]
fn client_unblock_and_disconnects() {
    let s = Server::shardis(SHARDS);
    let mut ctl = s.raw();
    for (how, want) in [
        ("TIMEOUT", Frame::NullArray),
        (
            "ERROR",
            Frame::Error("UNBLOCKED client unblocked via CLIENT UNBLOCK".into()),
        ),
    ] {
        let mut w = s.raw();
        let id = client_id(&mut w);
        w.send_cmd(&[b"BLPOP", b"u", b"0"]);
        await_blocked(&mut ctl, 1);
        assert_eq!(ctl.cmd(&["CLIENT", "UNBLOCK", &id, how]), Frame::Int(1));
        assert_eq!(w.read_frame(), want);
        assert_eq!(ctl.cmd(&["CLIENT", "UNBLOCK", &id]), Frame::Int(0));
        // Still usable.
        assert_eq!(w.cmd(&["PING"]), Frame::Simple("PONG".into()));
    }
    // A blocked client that goes away is forgotten: the next push stays in the list.
    let mut w = s.raw();
    w.send_cmd(&[b"BLPOP", b"gone", b"0"]);
    await_blocked(&mut ctl, 1);
    w.close();
    await_blocked(&mut ctl, 0);
    ctl.cmd(&["RPUSH", "gone", "kept"]);
    assert_eq!(ctl.cmd(&["LRANGE", "gone", "0", "-1"]), arr(&["kept"]));
    // Also one that sent more (QUIT, as client libraries do on close) and closed:
    // its close is behind those bytes.
    for (cmd, key) in [(&b"BLPOP"[..], "quit"), (&b"BZPOPMIN"[..], "zquit")] {
        let mut w = s.raw();
        w.send_cmd(&[cmd, key.as_bytes(), b"0"]);
        await_blocked(&mut ctl, 1);
        w.send_cmd(&[b"QUIT"]);
        w.close();
        await_blocked(&mut ctl, 0);
    }
    ctl.cmd(&["RPUSH", "quit", "kept"]);
    assert_eq!(ctl.cmd(&["LRANGE", "quit", "0", "-1"]), arr(&["kept"]));
    ctl.cmd(&["ZADD", "zquit", "1", "kept"]);
    assert_eq!(ctl.cmd(&["ZCARD", "zquit"]), Frame::Int(1));
}

#[test]
fn pipelined_commands_wait_behind_a_blocked_one() {
    let s = Server::shardis(SHARDS);
    let mut ctl = s.raw();
    let mut w = s.raw();
    let mut req = Vec::new();
    for argv in [
        vec![&b"SET"[..], b"before", b"1"],
        vec![&b"BLPOP"[..], b"pipe", b"0"],
        vec![&b"GET"[..], b"after"],
    ] {
        req.extend(common::encode_request(&argv));
    }
    w.send(&req);
    // The reply before the blocking command arrives while it is blocked.
    assert_eq!(w.read_frame(), Frame::Simple("OK".into()));
    await_blocked(&mut ctl, 1);
    ctl.cmd(&["SET", "after", "2"]);
    ctl.cmd(&["RPUSH", "pipe", "p"]);
    assert_eq!(w.read_frame(), arr(&["pipe", "p"]));
    assert_eq!(w.read_frame(), bulk("2"));
}
