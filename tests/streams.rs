//! Streams (issue 18) against redis-server 7.0 run beside Shardis: every command and
//! error step by step, blocking XREAD with the writer on another core, and what a
//! replica receives (XADD's generated IDs and approximate trims made exact).

mod common;

use common::{
    assert_in_sync, await_blocked, follow, keys_on_distinct_shards, on, shard_of, Duo, Frame,
    Server, Step,
};

const SHARDS: usize = 2;

fn steps(lines: &[&str]) -> Vec<Step> {
    lines.iter().map(|l| on(0, l)).collect()
}

#[test]
fn commands_and_errors_match_redis() {
    let mut duo = Duo::new(Server::shardis(SHARDS), 2);
    duo.run(
        "xadd",
        &steps(&[
            "XADD s 1-1 a 1 b 2",
            "XADD s 1-* a 3 b 4",
            "XADD s 2 c 5",
            "XADD s 2-0 c 5",
            "XADD s 1-5 x y",
            "XADD s 0-0 x y",
            "XADD z 0-* x y",
            "XADD z2 0-0 x y",
            "XADD s 3-0 a",
            "XADD s 3-0",
            "XADD s",
            "XADD s MAXLEN",
            "XADD s MAXLEN -1 * a b",
            "XADD s MAXLEN x * a b",
            "XADD s MAXLEN 1 MINID 0 * a b",
            "XADD s LIMIT 10 3-0 a b",
            "XADD s MAXLEN 5 LIMIT 10 3-0 a b",
            "XADD s MAXLEN ~ 5 LIMIT -1 3-0 a b",
            "XADD s MINID abc 3-0 a b",
            "XADD s abc a b",
            "XADD s - a b",
            "XADD s + a b",
            "XADD s 3-x a b",
            "XADD nokey NOMKSTREAM 1-1 a b",
            "EXISTS nokey",
            "XADD s NOMKSTREAM MAXLEN = 100 3-0 f v",
            "XADD s 18446744073709551615-18446744073709551615 a b",
            "XADD s * a b",
            "XADD s 18446744073709551615-* a b",
            "SET str x",
            "XADD str 1-1 a b",
            "XLEN str",
            "XRANGE str - +",
            "XLEN s",
            "XLEN nokey",
            "TYPE s",
            "OBJECT ENCODING s",
        ]),
    );
    duo.reset();
    let mut fill = vec![];
    for i in 1..=30 {
        fill.push(format!("XADD r {i}-{} f{} v{i} g {}", i % 2, i % 3, i * 7));
    }
    let fill: Vec<&str> = fill.iter().map(String::as_str).collect();
    duo.run("fill", &steps(&fill));
    duo.run(
        "ranges",
        &steps(&[
            "XRANGE r - +",
            "XRANGE r - + COUNT 3",
            "XRANGE r - + COUNT 0",
            "XRANGE r - + COUNT -5",
            "XRANGE r 5 10",
            "XRANGE r (5-1 (10-0",
            "XRANGE r (5 +",
            "XRANGE r - (7",
            "XRANGE r 10 5",
            "XRANGE r ( +",
            "XRANGE r (- +",
            "XRANGE r - (+",
            "XRANGE r (18446744073709551615-18446744073709551615 +",
            "XRANGE r - (0-0",
            "XRANGE r x +",
            "XRANGE r - + COUNT",
            "XRANGE r - + LIMIT 1",
            "XRANGE r - + COUNT x",
            "XREVRANGE r + -",
            "XREVRANGE r + - COUNT 4",
            "XREVRANGE r (20 (3",
            "XREVRANGE r 3 20",
            "XRANGE nokey - +",
            "XREVRANGE nokey + -",
        ]),
    );
    duo.run(
        "xdel and xtrim",
        &steps(&[
            "XDEL r 3-1 4-0 4-0 999-0",
            "XDEL r abc",
            "XDEL r 5-1 -",
            "XDEL nokey 1-1",
            "XLEN r",
            "XRANGE r - + COUNT 5",
            "XTRIM r",
            "XTRIM r MAXLEN",
            "XTRIM r FOO 1",
            "XTRIM r MAXLEN 20 LIMIT 5",
            "XTRIM r MAXLEN ~ 20",
            "XTRIM r MAXLEN 20",
            "XTRIM r MAXLEN = 18",
            "XRANGE r - + COUNT 2",
            "XTRIM r MINID 15",
            "XTRIM r MINID ~ 20",
            "XTRIM r MINID = 16-0",
            "XRANGE r - + COUNT 2",
            "XTRIM r MAXLEN 0",
            "XLEN r",
            "EXISTS r",
            "XRANGE r - +",
            "XTRIM nokey MAXLEN 0",
            "XTRIM str MAXLEN 0",
            "XDEL str 1-1",
        ]),
    );
    duo.run(
        "xsetid",
        &steps(&[
            "XADD t 5-0 a b",
            "XSETID t 4-0",
            "XSETID t 5-0",
            "XSETID t 10-0",
            "XADD t 9-0 a b",
            "XADD t 12-* a b",
            "XSETID t 1-0 ENTRIESADDED 1",
            "XSETID t 99999999999999-0 ENTRIESADDED 0",
            "XSETID t 99999999999999-0 ENTRIESADDED -1",
            "XSETID t 99999999999999-0 MAXDELETEDID 99999999999999-1",
            "XSETID t 99999999999999-0 MAXDELETEDID 7 ENTRIESADDED 9",
            "XSETID t 99999999999999-0 FOO",
            "XSETID t abc",
            "XSETID nokey 1-0",
            "XSETID str 1-0",
            "XADD t 99999999999999-0 a b",
        ]),
    );
    duo.run(
        "xread",
        &steps(&[
            "XADD u 1-0 a 1",
            "XADD u 2-0 a 2",
            "XADD u 3-0 a 3",
            "XREAD STREAMS u 0",
            "XREAD COUNT 2 STREAMS u 0",
            "XREAD COUNT 2 STREAMS u 1-0",
            "XREAD STREAMS u $",
            "XREAD STREAMS u 3",
            "XREAD STREAMS u nokey 0 0",
            "XREAD STREAMS nokey u 0 0",
            "XREAD STREAMS nokey 0",
            "XREAD STREAMS u",
            "XREAD STREAMS u u 0",
            "XREAD COUNT x STREAMS u 0",
            "XREAD COUNT -1 STREAMS u 0",
            "XREAD BLOCK -1 STREAMS u 0",
            "XREAD BLOCK x STREAMS u 0",
            "XREAD BLOCK 10 STREAMS u 0",
            "XREAD FOO STREAMS u 0",
            "XREAD STREAMS u >",
            "XREAD STREAMS u -",
            "XREAD STREAMS u +",
            "XREAD GROUP g c STREAMS u 0",
            "XREAD NOACK STREAMS u 0",
            "XREAD STREAMS str 0",
            "XREAD COUNT 1",
            "MULTI",
            "XREAD BLOCK 0 STREAMS u $",
            "XADD u 4-0 a 4",
            "XREAD BLOCK 0 STREAMS u 3",
            "EXEC",
        ]),
    );
    let script = |body: &str| {
        Step::Cmd(
            0,
            ["EVAL", body, "1", "u"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        )
    };
    duo.run(
        "scripts",
        &[
            script("return redis.call('XREAD', 'BLOCK', 0, 'STREAMS', KEYS[1], '$')"),
            script("return redis.call('xread', 'block', 0, 'STREAMS', KEYS[1], '$')"),
            script("return redis.call('XREAD', 'STREAMS', KEYS[1], '0')"),
            script("return redis.call('XADD', KEYS[1], '90-*', 'k', 'v')"),
            script("return redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 2)"),
        ],
    );
    duo.run("hello", &[Step::Any(0, vec!["HELLO".into(), "3".into()])]);
    duo.run(
        "resp3",
        &steps(&[
            "XREAD STREAMS u 3",
            "XREAD STREAMS u u 0 3",
            "XREAD STREAMS u 99",
            "XRANGE u - + COUNT 1",
        ]),
    );
}

#[test]
fn consumer_groups_match_redis() {
    let mut duo = Duo::new(Server::shardis(SHARDS), 2);
    let mut fill = vec![];
    for i in 1..=12 {
        fill.push(format!("XADD g {i}-0 f v{i}"));
    }
    let fill: Vec<&str> = fill.iter().map(String::as_str).collect();
    duo.run("fill", &steps(&fill));
    duo.run(
        "xgroup",
        &steps(&[
            "XGROUP CREATE g grp 0",
            "XGROUP CREATE g grp 0",
            "XGROUP CREATE g late $",
            "XGROUP CREATE g mid 5-0 ENTRIESREAD 5",
            "XGROUP CREATE g bad 5-0 ENTRIESREAD -2",
            "XGROUP CREATE g bad 5-0 FOO",
            "XGROUP CREATE g bad x",
            "XGROUP CREATE nokey grp 0",
            "XGROUP CREATE nokey grp $ MKSTREAM",
            "XGROUP CREATE nokey2 grp 5 MKSTREAM",
            "TYPE nokey",
            "XLEN nokey",
            "XGROUP CREATECONSUMER g grp alice",
            "XGROUP CREATECONSUMER g grp alice",
            "XGROUP CREATECONSUMER g nogroup alice",
            "XGROUP CREATECONSUMER nokey3 grp alice",
            "XGROUP DELCONSUMER g grp nobody",
            "XGROUP SETID g nogroup 0",
            "XGROUP SETID g late 3-0",
            "XGROUP SETID g late - ENTRIESREAD 0",
            "XGROUP SETID g late $",
            "XGROUP DESTROY g nogroup",
            "XGROUP DESTROY g late",
            "XGROUP FOO g grp",
            "XGROUP CREATE g",
            "XGROUP HELP",
            "XINFO GROUPS g",
            "XINFO STREAM g",
            "XINFO STREAM g FOO",
            "XINFO STREAM nokey4",
            "XINFO GROUPS nokey4",
            "XINFO CONSUMERS g nogroup",
            "XINFO HELP",
        ]),
    );
    duo.run(
        "xreadgroup",
        &steps(&[
            "XREADGROUP GROUP grp alice COUNT 3 STREAMS g >",
            "XREADGROUP GROUP grp bob COUNT 2 STREAMS g >",
            "XREADGROUP GROUP grp alice STREAMS g 0",
            "XREADGROUP GROUP grp alice COUNT 1 STREAMS g 1",
            "XREADGROUP GROUP grp carol STREAMS g 0",
            "XREADGROUP GROUP grp alice STREAMS g $",
            "XREADGROUP GROUP nogroup alice STREAMS g >",
            "XREADGROUP GROUP grp alice STREAMS nokey5 >",
            "XREADGROUP STREAMS g >",
            "XREADGROUP GROUP grp alice STREAMS g",
            "XREADGROUP GROUP grp alice NOACK COUNT 2 STREAMS g >",
            "XPENDING g grp",
            "XPENDING g grp - + 0",
            "XPENDING g grp - + 10 nobody",
            "XPENDING g grp IDLE",
            "XPENDING g grp - +",
            "XPENDING g nogroup",
            "XPENDING nokey grp",
            "XACK g grp 1-0 2-0 99-0",
            "XACK g grp x",
            "XACK g nogroup 1-0",
            "XACK nokey6 grp 1-0",
            "XPENDING g grp",
            "XDEL g 3-0",
            "XREADGROUP GROUP grp alice STREAMS g 0",
            "XINFO GROUPS g",
            "XGROUP DELCONSUMER g grp bob",
            "XPENDING g grp",
            "XREADGROUP GROUP mid dave STREAMS g >",
            "XINFO GROUPS g",
        ]),
    );
    duo.run(
        "claims",
        &steps(&[
            "XREADGROUP GROUP grp erin STREAMS g >",
            "XCLAIM g grp frank 0 9-0 10-0 JUSTID",
            "XCLAIM g grp frank 0 9-0 RETRYCOUNT 7 JUSTID",
            "XCLAIM g grp frank 3600000 11-0 JUSTID",
            "XCLAIM g grp frank 0 3-0 JUSTID",
            "XCLAIM g grp frank 0 4-0 FORCE JUSTID",
            "XCLAIM g grp frank 0 1-0 FORCE JUSTID",
            "XCLAIM g grp frank 0 12-0",
            "XCLAIM g grp frank 0 12-0 LASTID 100-0 JUSTID",
            "XCLAIM g grp frank x 12-0",
            "XCLAIM g grp frank 0 12-0 IDLE x",
            "XCLAIM g grp frank 0 12-0 TIME x",
            "XCLAIM g grp frank 0 12-0 RETRYCOUNT x",
            "XCLAIM g grp frank 0 12-0 LASTID x",
            "XCLAIM g grp frank 0 12-0 BOGUS",
            "XCLAIM g nogroup frank 0 12-0",
            "XCLAIM nokey grp frank 0 12-0",
            "XPENDING g grp",
            "XDEL g 10-0",
            "XAUTOCLAIM g grp gina 0 0 COUNT 2 JUSTID",
            "XAUTOCLAIM g grp gina 0 0 JUSTID",
            "XAUTOCLAIM g grp gina 0 (9-0 COUNT 1",
            "XAUTOCLAIM g grp gina 3600000 0 JUSTID",
            "XAUTOCLAIM g grp gina 0 0 COUNT 0",
            "XAUTOCLAIM g grp gina x 0",
            "XAUTOCLAIM g grp gina 0 x",
            "XAUTOCLAIM g grp gina 0 0 FOO",
            "XAUTOCLAIM g nogroup gina 0 0",
            "XPENDING g grp",
            "XINFO GROUPS g",
            "XINFO STREAM g",
            "XGROUP DESTROY g grp",
            "XINFO GROUPS g",
        ]),
    );
}

#[test]
fn blocked_readers_are_served_from_other_cores() {
    let server = Server::shardis(SHARDS);
    let keys = keys_on_distinct_shards("bx:", 2, SHARDS);
    let (a, b) = (&keys[0], &keys[1]);
    assert_ne!(
        shard_of(a.as_bytes(), SHARDS),
        shard_of(b.as_bytes(), SHARDS)
    );
    let mut w = server.raw();
    assert!(matches!(
        w.cmd(&["XADD", a, "1-0", "old", "1"]),
        Frame::Bulk(_)
    ));
    // Three readers: `$` on both streams, an explicit ID on one, and one that times out.
    let mut r1 = server.raw();
    r1.send_cmd(&[
        b"XREAD",
        b"BLOCK",
        b"0",
        b"STREAMS",
        a.as_bytes(),
        b.as_bytes(),
        b"$",
        b"$",
    ]);
    let mut r2 = server.raw();
    r2.send_cmd(&[b"XREAD", b"BLOCK", b"0", b"STREAMS", b.as_bytes(), b"0-0"]);
    let mut r3 = server.raw();
    r3.send_cmd(&[b"XREAD", b"BLOCK", b"100", b"STREAMS", a.as_bytes(), b"$"]);
    await_blocked(&mut w, 3);
    assert_eq!(r3.read_frame(), Frame::NullArray, "timeout");
    await_blocked(&mut w, 2);
    assert!(matches!(
        w.cmd(&["XADD", b, "5-0", "new", "2"]),
        Frame::Bulk(_)
    ));
    let want = Frame::Array(vec![Frame::Array(vec![
        Frame::Bulk(b.as_bytes().to_vec()),
        Frame::Array(vec![Frame::Array(vec![
            Frame::Bulk(b"5-0".to_vec()),
            Frame::Array(vec![
                Frame::Bulk(b"new".to_vec()),
                Frame::Bulk(b"2".to_vec()),
            ]),
        ])]),
    ])]);
    // Both readers are served by one XADD: readers do not consume.
    assert_eq!(r1.read_frame(), want);
    assert_eq!(r2.read_frame(), want);
    await_blocked(&mut w, 0);
    // `$` means the last ID when the reader blocked: an XADD of an ID below the one
    // it waits for (after XSETID moved the top) does not serve it.
    let mut r4 = server.raw();
    r4.send_cmd(&[b"XREAD", b"BLOCK", b"0", b"STREAMS", a.as_bytes(), b"1-0"]);
    await_blocked(&mut w, 1);
    assert!(matches!(w.cmd(&["XDEL", a, "1-0"]), Frame::Int(1)));
    assert!(matches!(
        w.cmd(&["XADD", a, "2-0", "x", "y"]),
        Frame::Bulk(_)
    ));
    assert!(matches!(r4.read_frame(), Frame::Array(_)));
    // CLIENT UNBLOCK ends a blocked XREAD with a null array, as a timeout does.
    let mut r5 = server.raw();
    let id = match r5.cmd(&["CLIENT", "ID"]) {
        Frame::Int(i) => i.to_string(),
        other => panic!("CLIENT ID: {other:?}"),
    };
    r5.send_cmd(&[b"XREAD", b"BLOCK", b"0", b"STREAMS", b.as_bytes(), b"$"]);
    await_blocked(&mut w, 1);
    assert_eq!(w.cmd(&["CLIENT", "UNBLOCK", &id]), Frame::Int(1));
    assert_eq!(r5.read_frame(), Frame::NullArray);
}

#[test]
fn replicas_and_the_aof_get_the_ids_and_trims_the_master_chose() {
    let (master, replica, redis_replica) = master_and_replicas();
    let mut m = master.raw();
    for i in 0..500 {
        let v = i.to_string();
        // `*` IDs and approximate trims: a replica replaying the command as received
        // would generate other IDs and trim other nodes.
        let r = m.cmd(&["XADD", "log", "MAXLEN", "~", "150", "*", "n", &v]);
        assert!(matches!(r, Frame::Bulk(_)), "{r:?}");
        if i % 50 == 0 {
            m.cmd(&["XTRIM", "log", "MINID", "~", "0"]);
            m.cmd(&["XADD", "log2", "*", "n", &v]);
            m.cmd(&["XTRIM", "log2", "MAXLEN", "~", "5", "LIMIT", "100"]);
        }
    }
    m.cmd(&["XDEL", "log", "0-1"]);
    m.cmd(&["XSETID", "log2", "99999999999999-0"]);
    assert_in_sync(&master, &replica);
    assert_in_sync(&master, &redis_replica);
    let mut r = replica.raw();
    assert_eq!(
        m.cmd(&["XRANGE", "log", "-", "+", "COUNT", "3"]),
        r.cmd(&["XRANGE", "log", "-", "+", "COUNT", "3"])
    );
}

/// A stream with groups, consumers and pending entries in `c`'s database.
fn with_groups(c: &mut common::RawConn, key: &str) {
    for i in 1..=20 {
        let id = format!("{i}-0");
        c.cmd(&["XADD", key, &id, "f", &i.to_string(), "g", "x"]);
    }
    c.cmd(&["XGROUP", "CREATE", key, "g1", "0"]);
    c.cmd(&["XGROUP", "CREATE", key, "g2", "10-0"]);
    c.cmd(&[
        "XREADGROUP",
        "GROUP",
        "g1",
        "a",
        "COUNT",
        "5",
        "STREAMS",
        key,
        ">",
    ]);
    c.cmd(&[
        "XREADGROUP",
        "GROUP",
        "g1",
        "b",
        "COUNT",
        "3",
        "STREAMS",
        key,
        ">",
    ]);
    c.cmd(&[
        "XREADGROUP",
        "GROUP",
        "g2",
        "c",
        "NOACK",
        "COUNT",
        "2",
        "STREAMS",
        key,
        ">",
    ]);
    c.cmd(&["XACK", key, "g1", "2-0"]);
    c.cmd(&["XCLAIM", key, "g1", "b", "0", "3-0", "RETRYCOUNT", "4"]);
    c.cmd(&["XDEL", key, "4-0"]);
    c.cmd(&["XGROUP", "CREATECONSUMER", key, "g2", "idle"]);
}

fn full_info(c: &mut common::RawConn, key: &str) -> Frame {
    c.cmd(&["XINFO", "STREAM", key, "FULL"])
}

#[test]
fn groups_move_both_ways_with_dump_and_restore() {
    let redis = Server::redis();
    let shardis = Server::shardis(SHARDS);
    let (mut r, mut s) = (redis.raw(), shardis.raw());
    with_groups(&mut r, "src");
    let want = full_info(&mut r, "src");
    let dump = match r.cmd(&["DUMP", "src"]) {
        Frame::Bulk(b) => b,
        other => panic!("DUMP: {other:?}"),
    };
    s.send_cmd(&[b"RESTORE", b"copy", b"0", &dump]);
    assert_eq!(s.read_frame(), Frame::Simple("OK".into()));
    assert_eq!(full_info(&mut s, "copy"), want, "redis -> shardis");
    let back = match s.cmd(&["DUMP", "copy"]) {
        Frame::Bulk(b) => b,
        other => panic!("DUMP: {other:?}"),
    };
    r.send_cmd(&[b"RESTORE", b"again", b"0", &back]);
    assert_eq!(r.read_frame(), Frame::Simple("OK".into()));
    assert_eq!(full_info(&mut r, "again"), want, "shardis -> redis");
    // A corrupt payload is refused, never trusted.
    let mut bad = back.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x55;
    s.send_cmd(&[b"RESTORE", b"bad", b"0", &bad]);
    assert!(matches!(s.read_frame(), Frame::Error(_)));
}

#[test]
fn replicas_get_the_groups_the_master_has() {
    let (master, replica, redis_replica) = master_and_replicas();
    let mut m = master.raw();
    with_groups(&mut m, "q");
    m.cmd(&["XAUTOCLAIM", "q", "g1", "z", "0", "0", "COUNT", "3"]);
    m.cmd(&["XCLAIM", "q", "g2", "w", "0", "12-0", "LASTID", "15-0"]);
    assert_in_sync(&master, &replica);
    assert_in_sync(&master, &redis_replica);
    let probes: [&[&str]; 3] = [
        &["XPENDING", "q", "g1"],
        &["XPENDING", "q", "g2"],
        &["XRANGE", "q", "-", "+"],
    ];
    for p in probes {
        let want = m.cmd(p);
        assert_eq!(replica.raw().cmd(p), want, "{p:?} on the Shardis replica");
        assert_eq!(
            redis_replica.raw().cmd(p),
            want,
            "{p:?} on the redis replica"
        );
    }
    // What the records rebuild (last IDs; entries-read, which Redis 7.0's XCLAIM
    // does not carry) is the same on both replicas.
    let groups = ["XINFO", "GROUPS", "q"];
    assert_eq!(replica.raw().cmd(&groups), redis_replica.raw().cmd(&groups));
    // Delivery times and counts travel with the XCLAIMs: the PELs, times included,
    // are the master's.
    let pels = |c: &mut common::RawConn| -> Vec<Frame> {
        ["g1", "g2"]
            .iter()
            .map(|g| c.cmd(&["XPENDING", "q", g, "-", "+", "100"]))
            .map(|f| match f {
                // Idle times drift with the clock; owners and counts must not.
                Frame::Array(items) => Frame::Array(
                    items
                        .into_iter()
                        .map(|e| match e {
                            Frame::Array(mut v) => {
                                v[2] = Frame::Int(0);
                                Frame::Array(v)
                            }
                            other => other,
                        })
                        .collect(),
                ),
                other => other,
            })
            .collect()
    };
    let want = pels(&mut m);
    assert_eq!(pels(&mut replica.raw()), want);
    assert_eq!(pels(&mut redis_replica.raw()), want);
}

#[test]
fn blocked_group_readers() {
    let server = Server::shardis(SHARDS);
    let keys = keys_on_distinct_shards("gx:", 2, SHARDS);
    let (a, b) = (&keys[0], &keys[1]);
    let mut w = server.raw();
    w.cmd(&["XGROUP", "CREATE", a, "grp", "$", "MKSTREAM"]);
    w.cmd(&["XGROUP", "CREATE", b, "grp", "$", "MKSTREAM"]);
    // Two consumers of one group wait; one entry goes to exactly one of them.
    let mut c1 = server.raw();
    c1.send_cmd(&[
        b"XREADGROUP",
        b"GROUP",
        b"grp",
        b"c1",
        b"BLOCK",
        b"0",
        b"STREAMS",
        a.as_bytes(),
        b.as_bytes(),
        b">",
        b">",
    ]);
    await_blocked(&mut w, 1);
    let mut c2 = server.raw();
    c2.send_cmd(&[
        b"XREADGROUP",
        b"GROUP",
        b"grp",
        b"c2",
        b"BLOCK",
        b"0",
        b"STREAMS",
        b.as_bytes(),
        b">",
    ]);
    await_blocked(&mut w, 2);
    w.cmd(&["XADD", b, "1-0", "job", "1"]);
    let got = c1.read_frame();
    assert!(common::show(&got).contains("job"), "{}", common::show(&got));
    await_blocked(&mut w, 1);
    // The entry is pending for c1, the consumer that got it, and for no one else.
    let bulk = |s: &str| Frame::Bulk(s.as_bytes().to_vec());
    assert_eq!(
        w.cmd(&["XPENDING", b, "grp"]),
        Frame::Array(vec![
            Frame::Int(1),
            bulk("1-0"),
            bulk("1-0"),
            Frame::Array(vec![Frame::Array(vec![bulk("c1"), bulk("1")])]),
        ])
    );
    // The group goes: the reader gets Redis's error, and the call counts as failed.
    w.cmd(&["CONFIG", "RESETSTAT"]);
    w.cmd(&["XGROUP", "DESTROY", b, "grp"]);
    assert_eq!(
        c2.read_frame(),
        Frame::Error(
            "NOGROUP the consumer group this client was blocked on no longer exists".into()
        )
    );
    let stats = match w.cmd(&["INFO", "commandstats"]) {
        Frame::Bulk(b) | Frame::Verbatim(b) => String::from_utf8_lossy(&b).into_owned(),
        other => panic!("INFO: {}", common::show(&other)),
    };
    let line = stats
        .lines()
        .find(|l| l.starts_with("cmdstat_xreadgroup:"))
        .unwrap_or_default();
    assert!(
        line.starts_with("cmdstat_xreadgroup:calls=0,") && line.ends_with("failed_calls=1"),
        "{stats}"
    );
    // The key goes: a group reader is told so.
    let mut c3 = server.raw();
    c3.send_cmd(&[
        b"XREADGROUP",
        b"GROUP",
        b"grp",
        b"c3",
        b"BLOCK",
        b"0",
        b"STREAMS",
        a.as_bytes(),
        b">",
    ]);
    await_blocked(&mut w, 1);
    w.cmd(&["DEL", a]);
    assert_eq!(
        c3.read_frame(),
        Frame::Error("UNBLOCKED the stream key no longer exists".into())
    );
    await_blocked(&mut w, 0);
}

/// A Shardis master followed by a Shardis and a redis-server replica, all with DEBUG
/// (for DEBUG DIGEST).
fn master_and_replicas() -> (Server, Server, Server) {
    let dbg = ["--enable-debug-command", "yes"];
    let master = Server::shardis_with(SHARDS, &dbg);
    let replica = Server::shardis_with(SHARDS, &dbg);
    let redis_replica = Server::redis_with(&dbg);
    follow(&replica, &master);
    follow(&redis_replica, &master);
    (master, replica, redis_replica)
}

/// XCLAIM ... FORCE of an entry nobody had pending makes it delivered once, then
/// counts the claim as any other (JUSTID does not), as Redis's `streamCreateNACK`:
/// the delivery counts XPENDING shows are Redis's.
#[test]
fn forced_claims_count_deliveries_as_redis() {
    let counts = |server: &Server| {
        let mut c = server.raw();
        for line in [
            "XADD s 1-0 f v",
            "XADD s 2-0 f v",
            "XADD s 3-0 f v",
            "XGROUP CREATE s g $",
            "XCLAIM s g c 0 1-0 FORCE JUSTID",
            "XCLAIM s g c 0 2-0 FORCE",
            "XCLAIM s g c 0 3-0 FORCE RETRYCOUNT 5 JUSTID",
        ] {
            c.cmd(&line.split(' ').collect::<Vec<_>>());
        }
        let Frame::Array(entries) = c.cmd(&["XPENDING", "s", "g", "-", "+", "10"]) else {
            panic!("XPENDING")
        };
        // [id, consumer, idle, count]: the idle time differs between servers.
        entries
            .iter()
            .map(|e| match e {
                Frame::Array(f) => format!("{} {}", common::show(&f[0]), common::show(&f[3])),
                other => common::show(other),
            })
            .collect::<Vec<_>>()
    };
    let redis = counts(&Server::redis());
    assert_eq!(redis.len(), 3, "{redis:?}");
    assert_eq!(counts(&Server::shardis(SHARDS)), redis);
}

/// An XADD whose MAXLEN trims its own entry away still moves the stream's last ID, and
/// Redis serves a blocked reader then, with no entries; a plain XREAD after it finds
/// nothing. The same on both servers, RESP2 and RESP3.
#[test]
fn a_blocked_reader_is_served_by_an_add_that_trims_itself_away() {
    let shardis = Server::shardis(SHARDS);
    let redis = Server::redis();
    for proto in ["2", "3"] {
        let mut replies = Vec::new();
        for server in [&shardis, &redis] {
            let mut w = server.raw();
            w.cmd(&["DEL", "tr"]);
            w.cmd(&["XADD", "tr", "1-1", "f", "v"]);
            let mut r = server.raw();
            r.cmd(&["HELLO", proto]);
            r.send_cmd(&[b"XREAD", b"BLOCK", b"0", b"STREAMS", b"tr", b"$"]);
            await_blocked(&mut w, 1);
            assert!(matches!(
                w.cmd(&["XADD", "tr", "MAXLEN", "0", "2-1", "f", "v"]),
                Frame::Bulk(_)
            ));
            let served = r.read_frame();
            let again = r.cmd(&["XREAD", "STREAMS", "tr", "1-1"]);
            replies.push((served, again));
        }
        assert_eq!(replies[0], replies[1], "RESP{proto}");
    }
}

/// A blocked XREAD waits for entries: a stream whose last ID is past the reader's but
/// whose entries after it were deleted does not serve it (Redis's issue #5299), and a
/// later entry does.
#[test]
fn a_blocked_reader_waits_for_an_entry_past_a_deleted_one() {
    let mut duo = Duo::new(Server::shardis(SHARDS), 2);
    let steps = steps(&[
        "XADD s1 666 f v",
        "XADD s1 667 f2 v2",
        "XDEL s1 667",
        "XREAD BLOCK 10 STREAMS s1 666",
        "XREAD BLOCK 10 STREAMS s1 665",
        "XADD s2 666 key value",
        "XDEL s2 666",
        "XREAD BLOCK 10 STREAMS s2 665",
        "XADD s2 665 key value",
        "XREAD COUNT 5 STREAMS s1 s2 0 0",
    ]);
    duo.run("dry streams", &steps);
}
