//! Pub/Sub against the real binary: the subscribe family's replies and messages frame
//! by frame beside a real redis-server (RESP2 and RESP3), subscribers and publishers
//! on chosen cores, publish order, and cleanup on RESET and disconnection.
//!
//! The one idea to hold: a subscribe-family command answers several frames, and a
//! subscribed connection receives frames nobody asked for, so these tests send the
//! same bytes to both servers and compare the next N frames, not one reply per
//! command. Which core a connection landed on is read from CLIENT INFO's `shard=`.

mod common;

use common::{client_field as field, core_of, show, wait_until, Frame, RawConn, Server};
use std::time::Duration;

/// Shardis and redis-server connections side by side.
struct Pair {
    s: Vec<RawConn>,
    r: Vec<RawConn>,
    transcript: Vec<String>,
}

impl Pair {
    fn new(shardis: &Server, redis: &Server, conns: usize) -> Pair {
        Pair {
            s: (0..conns).map(|_| shardis.raw()).collect(),
            r: (0..conns).map(|_| redis.raw()).collect(),
            transcript: Vec::new(),
        }
    }

    /// Send `line` on connection `c` of both and compare the next `frames` frames.
    fn step(&mut self, c: usize, line: &str, frames: usize) -> Vec<Frame> {
        let argv: Vec<&[u8]> = line.split_whitespace().map(str::as_bytes).collect();
        self.s[c].send_cmd(&argv);
        self.r[c].send_cmd(&argv);
        self.expect(c, line, frames)
    }

    /// Compare the next `frames` frames of connection `c` (messages, say).
    fn expect(&mut self, c: usize, what: &str, frames: usize) -> Vec<Frame> {
        let mut got = Vec::new();
        for _ in 0..frames {
            let r = self.r[c].read_frame();
            let s = self.s[c].read_frame();
            let line = format!("[{c}] {what} -> {}", show(&r));
            assert_eq!(
                show(&s),
                show(&r),
                "frames differ at {line}\n--- transcript ---\n{}",
                self.transcript.join("\n")
            );
            self.transcript.push(line);
            got.push(r);
        }
        got
    }

    /// Send `line` on both, read one reply each, compare them with their elements
    /// sorted (PUBSUB CHANNELS: hash order in Redis).
    fn step_unordered(&mut self, c: usize, line: &str) {
        let argv: Vec<&str> = line.split_whitespace().collect();
        let sorted = |f: Frame| match f {
            Frame::Array(mut xs) => {
                xs.sort_by_key(show);
                Frame::Array(xs)
            }
            other => other,
        };
        let r = sorted(self.r[c].cmd(&argv));
        let s = sorted(self.s[c].cmd(&argv));
        assert_eq!(show(&s), show(&r), "replies differ at [{c}] {line}");
        self.transcript
            .push(format!("[{c}] {line} -> {}", show(&r)));
    }

    /// HELLO 3 on connection `c` of both (replies differ: ids).
    fn hello3(&mut self, c: usize) {
        self.s[c].cmd(&["HELLO", "3"]);
        self.r[c].cmd(&["HELLO", "3"]);
    }
}

fn text(f: Frame) -> String {
    match f {
        Frame::Bulk(b) | Frame::Verbatim(b) => String::from_utf8_lossy(&b).into_owned(),
        other => panic!("expected text, got {other:?}"),
    }
}

fn info_field(c: &mut RawConn, name: &str) -> String {
    text(c.cmd(&["INFO", "stats"]))
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in INFO stats"))
        .trim()
        .to_string()
}

#[test]
fn subscribe_mode_in_resp2_matches_redis_frame_by_frame() {
    let shardis = Server::shardis(2);
    let redis = Server::redis();
    let mut p = Pair::new(&shardis, &redis, 2);
    // Bad input first.
    p.step(0, "SUBSCRIBE", 1);
    p.step(0, "PSUBSCRIBE", 1);
    p.step(0, "SSUBSCRIBE", 1);
    p.step(0, "PUBLISH a", 1);
    p.step(0, "PUBSUB", 1);
    p.step(0, "PUBSUB FOO", 1);
    p.step(0, "PUBSUB NUMPAT x", 1);
    p.step(0, "PUBSUB CHANNELS a b", 1);
    p.step(0, "PUBSUB SHARDCHANNELS a b", 1);
    p.step(0, "PUBSUB HELP", 1);
    // Nothing subscribed: one nil reply each.
    p.step(0, "UNSUBSCRIBE", 1);
    p.step(0, "PUNSUBSCRIBE", 1);
    p.step(0, "SUNSUBSCRIBE", 1);
    p.step(0, "PUBLISH a nobody", 1);
    // Subscriptions: the count is channels + patterns, shard channels apart.
    p.step(0, "SSUBSCRIBE s1 s2", 2);
    p.step(0, "SUBSCRIBE a b a", 3);
    p.step(0, "PSUBSCRIBE p* a?", 2);
    // Subscribe mode: only the subscribe family, PING, QUIT, RESET.
    p.step(0, "GET k", 1);
    p.step(0, "CLIENT LIST", 1);
    p.step(0, "MULTI", 1);
    p.step(0, "GET", 1);
    p.step(0, "NOSUCH x", 1);
    p.step(0, "PING", 1);
    p.step(0, "PING hello", 1);
    // Messages.
    p.step(1, "PUBLISH a m1", 1);
    p.expect(0, "(message a)", 1);
    p.step(1, "PUBLISH ab m1", 1);
    p.expect(0, "(pmessage a?)", 1);
    p.step(1, "PUBLISH pq m2", 1);
    p.expect(0, "(pmessage p*)", 1);
    p.step(1, "SPUBLISH s1 m3", 1);
    p.expect(0, "(smessage)", 1);
    p.step(1, "SPUBLISH a m4", 1);
    p.step(1, "PUBLISH s1 m5", 1);
    p.step(1, "PUBSUB NUMSUB a b s1 zz", 1);
    p.step(1, "PUBSUB SHARDNUMSUB s1 s2 a", 1);
    p.step(1, "PUBSUB NUMSUB", 1);
    p.step(1, "PUBSUB NUMPAT", 1);
    p.step_unordered(1, "PUBSUB CHANNELS");
    p.step_unordered(1, "PUBSUB CHANNELS a*");
    p.step_unordered(1, "PUBSUB SHARDCHANNELS");
    p.step_unordered(1, "PUBSUB SHARDCHANNELS s1");
    for f in ["pubsub_channels", "pubsub_patterns", "pubsubshard_channels"] {
        assert_eq!(
            info_field(&mut p.s[1], f),
            info_field(&mut p.r[1], f),
            "INFO {f}"
        );
    }
    // CLIENT LIST: the subscription counts and the P flag.
    let list = |c: &mut RawConn| -> Vec<(String, String, String, String)> {
        let t = text(c.cmd(&["CLIENT", "LIST", "TYPE", "pubsub"]));
        t.lines()
            .map(|l| {
                (
                    field(l, "flags"),
                    field(l, "sub"),
                    field(l, "psub"),
                    field(l, "ssub"),
                )
            })
            .collect()
    };
    assert_eq!(list(&mut p.s[1]), list(&mut p.r[1]));
    // Leaving: still in subscribe mode while shard channels remain.
    p.step(0, "UNSUBSCRIBE a", 1);
    p.step(0, "UNSUBSCRIBE a", 1);
    p.step(0, "UNSUBSCRIBE", 1);
    p.step(0, "PUNSUBSCRIBE nosuch a?", 2);
    // Without arguments: the patterns in the order subscribed (a list in Redis 7.0).
    p.step(0, "PSUBSCRIBE z* y* x* w*", 4);
    p.step(0, "PUNSUBSCRIBE y*", 1);
    p.step(0, "PUNSUBSCRIBE", 4);
    p.step(0, "GET k", 1);
    p.step(0, "SUNSUBSCRIBE s1", 1);
    p.step(0, "SUNSUBSCRIBE", 1);
    p.step(0, "GET k", 1);
    p.step(0, "PING", 1);
    p.step(1, "PUBSUB NUMSUB a b", 1);
    p.step(1, "PUBSUB NUMPAT", 1);
    // RESET leaves subscribe mode silently; QUIT is allowed.
    p.step(0, "SUBSCRIBE a", 1);
    p.step(0, "RESET", 1);
    p.step(0, "GET k", 1);
    p.step(1, "PUBSUB NUMSUB a", 1);
    p.step(0, "SUBSCRIBE a", 1);
    p.step(0, "QUIT", 1);
    // Inside EXEC, SSUBSCRIBE is refused (SUBSCRIBE is not).
    p.step(1, "MULTI", 1);
    p.step(1, "SSUBSCRIBE x", 1);
    p.step(1, "EXEC", 1);
    p.step(1, "GET k", 1);
}

#[test]
fn resp3_pushes_and_ordinary_commands_match_redis() {
    let shardis = Server::shardis(2);
    let redis = Server::redis();
    let mut p = Pair::new(&shardis, &redis, 2);
    p.hello3(0);
    p.step(0, "UNSUBSCRIBE", 1);
    p.step(0, "SUBSCRIBE a b", 2);
    p.step(0, "SSUBSCRIBE s", 1);
    // Ordinary commands are allowed; PING is a plain PONG.
    p.step(0, "SET k v", 1);
    p.step(0, "GET k", 1);
    p.step(0, "PING", 1);
    // Publishing to itself: the message comes before PUBLISH's count, as in Redis.
    p.step(0, "PUBLISH a self", 2);
    p.step(1, "PUBLISH b other", 1);
    p.expect(0, "(message b)", 1);
    p.step(0, "PSUBSCRIBE *", 1);
    p.step(1, "PUBLISH b twice", 1);
    p.expect(0, "(message, pmessage)", 2);
    p.step(1, "SPUBLISH s sharded", 1);
    p.expect(0, "(smessage)", 1);
    // A RESP2 subscriber beside a RESP3 one.
    p.step(1, "SUBSCRIBE b", 1);
    p.step(0, "PUBLISH b mixed", 3);
    p.expect(1, "(message b, RESP2)", 1);
    p.step(0, "UNSUBSCRIBE a b", 2);
    p.step(0, "PUNSUBSCRIBE", 1);
    p.step(0, "SUNSUBSCRIBE", 1);
    p.step(0, "UNSUBSCRIBE", 1);
    // Inside MULTI, as Redis: the pushes within EXEC's array.
    p.step(0, "MULTI", 1);
    p.step(0, "SUBSCRIBE x", 1);
    p.step(0, "EXEC", 1);
    p.step(0, "RESET", 1);
}

/// `n` connections, at least one on each of the two cores.
fn spread_conns(server: &Server, n: usize) -> Vec<(RawConn, usize)> {
    let mut conns: Vec<(RawConn, usize)> = Vec::new();
    for _ in 0..200 {
        let mut c = server.raw();
        let shard = core_of(&mut c);
        conns.push((c, shard));
        let on = |s| conns.iter().filter(|(_, x)| *x == s).count();
        if conns.len() >= n && on(0) > 0 && on(1) > 0 {
            break;
        }
    }
    let on = |s| conns.iter().filter(|(_, x)| *x == s).count();
    assert!(
        on(0) > 0 && on(1) > 0,
        "connections landed on one core only"
    );
    conns
}

fn bulk(s: &str) -> Frame {
    Frame::Bulk(s.as_bytes().to_vec())
}

/// `n` PUBLISHes to `channel` in one buffer, the messages `<prefix><i>`.
fn publishes(channel: &str, prefix: &str, n: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    for i in 0..n {
        let msg = format!("{prefix}{i}");
        buf.extend(common::encode_request(&[
            b"PUBLISH",
            channel.as_bytes(),
            msg.as_bytes(),
        ]));
    }
    buf
}

#[test]
fn messages_cross_cores_in_publish_order() {
    let server = Server::shardis(2);
    let mut subs = spread_conns(&server, 6);
    for (c, _) in subs.iter_mut() {
        c.send_cmd(&[b"SUBSCRIBE", b"news"]);
        assert_eq!(
            c.read_frame(),
            Frame::Array(vec![bulk("subscribe"), bulk("news"), Frame::Int(1)])
        );
    }
    // One pattern subscriber too: it counts as a receiver.
    let mut pat = server.raw();
    pat.cmd(&["PSUBSCRIBE", "n*"]);
    let receivers = subs.len() as i64 + 1;
    // Publishers on both cores, each sending a pipeline of messages.
    let mut pubs = spread_conns(&server, 2);
    const N: usize = 300;
    for (k, (p, _)) in pubs.iter_mut().enumerate() {
        p.send(&publishes("news", &format!("p{k}-"), N));
        for i in 0..N {
            assert_eq!(p.read_frame(), Frame::Int(receivers), "publish {i} of {k}");
        }
    }
    // Every subscriber got every message, each publisher's in order.
    let check = |c: &mut RawConn, pattern: bool| {
        let mut next = vec![0usize; pubs.len()];
        for _ in 0..N * pubs.len() {
            let items = match c.read_frame() {
                Frame::Array(items) => items,
                other => panic!("expected a message, got {other:?}"),
            };
            let Some(Frame::Bulk(m)) = items.last() else {
                panic!("bad message {items:?}")
            };
            let m = String::from_utf8_lossy(m).into_owned();
            let (k, i) = m[1..].split_once('-').expect("p<k>-<i>");
            let (k, i): (usize, usize) = (k.parse().unwrap(), i.parse().unwrap());
            assert_eq!(i, next[k], "out of order from publisher {k}");
            next[k] += 1;
            assert_eq!(items.len(), if pattern { 4 } else { 3 });
        }
    };
    for (c, _) in subs.iter_mut() {
        check(c, false);
    }
    check(&mut pat, true);
}

fn numsub(c: &mut RawConn, channel: &str) -> i64 {
    match c.cmd(&["PUBSUB", "NUMSUB", channel]) {
        Frame::Array(items) => match items.get(1) {
            Some(Frame::Int(n)) => *n,
            other => panic!("NUMSUB: {other:?}"),
        },
        other => panic!("NUMSUB: {other:?}"),
    }
}

#[test]
fn disconnect_and_reset_leave_no_registration_on_any_core() {
    let server = Server::shardis(2);
    let mut subs = spread_conns(&server, 4);
    let mut probe = server.raw();
    for (c, _) in subs.iter_mut() {
        c.send_cmd(&[b"SUBSCRIBE", b"gone", b"also"]);
        c.read_frame();
        c.read_frame();
        c.cmd(&["PSUBSCRIBE", "g*"]);
        c.cmd(&["SSUBSCRIBE", "sg"]);
    }
    let n = subs.len() as i64;
    assert_eq!(numsub(&mut probe, "gone"), n);
    assert_eq!(probe.cmd(&["PUBLISH", "gone", "x"]), Frame::Int(2 * n));
    // RESET one subscriber on each core; drop the rest.
    let mut kept = Vec::new();
    for (mut c, shard) in subs {
        if !kept.iter().any(|(_, s)| *s == shard) {
            // Read the messages above, then RESET.
            c.read_frame();
            c.read_frame();
            assert_eq!(c.cmd(&["RESET"]), Frame::Simple("RESET".into()));
            assert_eq!(c.cmd(&["GET", "k"]), Frame::NullBulk);
            kept.push((c, shard));
        } else {
            c.close();
        }
    }
    assert!(
        wait_until(Duration::from_secs(10), || numsub(&mut probe, "gone") == 0),
        "registrations left behind: NUMSUB gone = {}",
        numsub(&mut probe, "gone")
    );
    assert_eq!(probe.cmd(&["PUBSUB", "NUMPAT"]), Frame::Int(0));
    assert_eq!(probe.cmd(&["PUBSUB", "CHANNELS"]), Frame::Array(vec![]));
    assert_eq!(
        probe.cmd(&["PUBSUB", "SHARDCHANNELS"]),
        Frame::Array(vec![])
    );
    assert_eq!(probe.cmd(&["PUBLISH", "gone", "x"]), Frame::Int(0));
    assert_eq!(probe.cmd(&["SPUBLISH", "sg", "x"]), Frame::Int(0));
    for f in ["pubsub_channels", "pubsub_patterns", "pubsubshard_channels"] {
        assert_eq!(info_field(&mut probe, f), "0", "INFO {f}");
    }
}

#[test]
fn client_list_and_kill_see_pubsub_clients_on_every_core() {
    let server = Server::shardis(2);
    let mut subs = spread_conns(&server, 2);
    let mut probe = server.raw();
    for (c, _) in subs.iter_mut() {
        c.cmd(&["SUBSCRIBE", "a"]);
    }
    let listed = text(probe.cmd(&["CLIENT", "LIST", "TYPE", "pubsub"]));
    assert_eq!(listed.lines().count(), subs.len(), "{listed}");
    for l in listed.lines() {
        assert_eq!(field(l, "flags"), "P");
        assert_eq!(field(l, "sub"), "1");
    }
    assert_eq!(
        probe.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]),
        Frame::Int(subs.len() as i64)
    );
    assert!(wait_until(Duration::from_secs(10), || numsub(
        &mut probe, "a"
    ) == 0));
}

/// Hops sent by every shard so far (INFO shards).
fn hops_sent(c: &mut RawConn) -> u64 {
    text(c.cmd(&["INFO", "shards"]))
        .split([',', '\n'])
        .filter_map(|f| f.trim().strip_prefix("hops_sent="))
        .map(|v| v.parse::<u64>().expect("hops_sent is a number"))
        .sum()
}

#[test]
fn a_pipeline_of_publishes_costs_one_hop_per_listening_core() {
    let server = Server::shardis(2);
    let mut conns = spread_conns(&server, 2);
    let (mut sub, sub_shard) = conns.remove(0);
    let i = conns
        .iter()
        .position(|(_, s)| *s != sub_shard)
        .expect("a connection on the other core");
    let (mut publisher, _) = conns.remove(i);
    sub.cmd(&["SUBSCRIBE", "feed"]);
    let mut probe = server.raw();
    let before = hops_sent(&mut probe);
    const N: usize = 200;
    publisher.send(&publishes("feed", "m", N));
    for _ in 0..N {
        assert_eq!(publisher.read_frame(), Frame::Int(1));
    }
    // The INFO calls hop too (one each); a few reads may split the pipeline.
    let spent = hops_sent(&mut probe) - before;
    assert!(spent < 20, "{N} pipelined PUBLISHes cost {spent} hops");
    for i in 0..N {
        assert_eq!(
            sub.read_frame(),
            Frame::Array(vec![bulk("message"), bulk("feed"), bulk(&format!("m{i}"))])
        );
    }
}

/// Under CLIENT REPLY OFF / SKIP, Redis still sends what it pushes: the subscribe
/// family's confirmations and the messages, in RESP2 (arrays) and in RESP3 (pushes);
/// other replies stay silenced.
#[test]
fn confirmations_and_messages_pass_client_reply_off() {
    let shardis = Server::shardis(2);
    let redis = Server::redis();
    for resp in ["2", "3"] {
        let mut p = Pair::new(&shardis, &redis, 2);
        // (HELLO's replies differ: ids, versions.)
        p.s[0].cmd(&["HELLO", resp]);
        p.r[0].cmd(&["HELLO", resp]);
        // (CLIENT REPLY OFF itself answers nothing: the next frame is the confirmation.)
        p.s[0].send_cmd(&[b"CLIENT", b"REPLY", b"OFF"]);
        p.r[0].send_cmd(&[b"CLIENT", b"REPLY", b"OFF"]);
        p.step(0, "SUBSCRIBE channel other", 2);
        p.step(0, "PSUBSCRIBE ch*", 1);
        p.step(1, "PUBLISH channel hello", 1);
        p.expect(0, "the messages", 2);
        p.step(0, "UNSUBSCRIBE channel", 1);
        p.step(0, "PUNSUBSCRIBE", 1);
        p.step(0, "UNSUBSCRIBE", 1);
        // Not subscribed any more: PING is silenced, CLIENT REPLY ON answers.
        p.s[0].send_cmd(&[b"PING"]);
        p.r[0].send_cmd(&[b"PING"]);
        p.step(0, "CLIENT REPLY ON", 1);
        p.step(0, "PING", 1);
    }
}
