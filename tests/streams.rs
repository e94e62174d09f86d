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
            "XADD t * a b",
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
    let dbg = ["--enable-debug-command", "yes"];
    let master = Server::shardis_with(SHARDS, &dbg);
    let replica = Server::shardis_with(SHARDS, &dbg);
    let redis_replica = Server::redis_with(&dbg);
    follow(&replica, &master);
    follow(&redis_replica, &master);
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
