//! Collection commands whose keys live on different shards (`--threads 4`), compared
//! with a real redis-server given the same commands.
//!
//! The one idea to hold: the keys are chosen with `keys_on_distinct_shards` so that
//! every multi-key command here really spans shards (SORT's BY / GET patterns name keys
//! on every shard; the STORE variants write to a shard other than their sources), and
//! the replies must be exactly Redis's.

mod common;

use common::{keys_on_distinct_shards, show, RawConn, Server};

const SHARDS: usize = 4;

/// Send every command to both servers and compare the replies.
fn same(s: &mut RawConn, r: &mut RawConn, script: &[Vec<String>]) {
    for argv in script {
        let a: Vec<&str> = argv.iter().map(String::as_str).collect();
        let (x, y) = (s.cmd(&a), r.cmd(&a));
        assert_eq!(x, y, "{a:?}: shardis {} redis {}", show(&x), show(&y));
    }
}

fn cmd(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| p.to_string()).collect()
}

#[test]
fn sort_patterns_reach_keys_on_every_shard() {
    let shardis = Server::shardis(SHARDS);
    let redis = Server::redis();
    let (mut s, mut r) = (shardis.raw(), redis.raw());
    // Elements whose weight_* and obj_* keys fall on different shards.
    let mut script = vec![];
    for (i, e) in ["a", "b", "c", "d", "e", "f", "g", "h"].iter().enumerate() {
        script.push(cmd(&["RPUSH", "items", e]));
        script.push(cmd(&[
            "SET",
            &format!("weight_{e}"),
            &((i * 7) % 5).to_string(),
        ]));
        script.push(cmd(&[
            "HSET",
            &format!("obj_{e}"),
            "name",
            &format!("N{e}"),
            "w",
            &((i * 3) % 8).to_string(),
        ]));
        script.push(cmd(&["SET", &format!("data_{e}"), &format!("D{e}")]));
    }
    for q in [
        &["SORT", "items", "BY", "weight_*"][..],
        &[
            "SORT", "items", "BY", "weight_*", "DESC", "GET", "#", "GET", "data_*",
        ],
        &[
            "SORT",
            "items",
            "BY",
            "obj_*->w",
            "GET",
            "obj_*->name",
            "LIMIT",
            "1",
            "4",
        ],
        &[
            "SORT",
            "items",
            "BY",
            "nosort",
            "GET",
            "data_*",
            "GET",
            "missing_*",
        ],
        &["SORT", "items", "ALPHA", "BY", "data_*", "DESC"],
        &["SORT_RO", "items", "BY", "weight_*", "GET", "obj_*->name"],
        &[
            "SORT", "items", "BY", "weight_*", "GET", "data_*", "STORE", "sorted",
        ],
        &["LRANGE", "sorted", "0", "-1"],
        &["SORT", "items", "BY", "obj_*->name", "STORE", "sorted"],
        &["LRANGE", "sorted", "0", "-1"],
        &["SORT", "nothing", "BY", "weight_*", "STORE", "sorted"],
        &["EXISTS", "sorted"],
    ] {
        script.push(cmd(q));
    }
    same(&mut s, &mut r, &script);
}

#[test]
fn set_and_sorted_set_algebra_across_shards() {
    let shardis = Server::shardis(SHARDS);
    let redis = Server::redis();
    let (mut s, mut r) = (shardis.raw(), redis.raw());
    let k = keys_on_distinct_shards("alg", 4, SHARDS);
    let mut script = vec![
        cmd(&["SADD", &k[0], "1", "2", "3", "x"]),
        cmd(&["SADD", &k[1], "2", "3", "4"]),
        cmd(&["SINTERSTORE", &k[2], &k[0], &k[1]]),
        cmd(&["SMEMBERS", &k[2]]),
        cmd(&["OBJECT", "ENCODING", &k[2]]),
        cmd(&["SDIFFSTORE", &k[3], &k[0], &k[1]]),
        cmd(&["SCARD", &k[3]]),
        cmd(&["SINTERCARD", "2", &k[0], &k[1]]),
        cmd(&["SMOVE", &k[0], &k[1], "x"]),
        cmd(&["SISMEMBER", &k[1], "x"]),
        cmd(&["DEL", &k[0], &k[1], &k[2], &k[3]]),
        cmd(&["ZADD", &k[0], "1", "a", "2", "b", "3", "c"]),
        cmd(&["ZADD", &k[1], "10", "b", "20", "c", "30", "d"]),
        cmd(&["ZUNIONSTORE", &k[2], "2", &k[0], &k[1], "WEIGHTS", "2", "1"]),
        cmd(&["ZRANGE", &k[2], "0", "-1", "WITHSCORES"]),
        cmd(&["ZINTERSTORE", &k[3], "2", &k[0], &k[1], "AGGREGATE", "MAX"]),
        cmd(&["ZRANGE", &k[3], "0", "-1", "WITHSCORES"]),
        cmd(&["ZDIFF", "2", &k[1], &k[0], "WITHSCORES"]),
        cmd(&["ZRANGESTORE", &k[3], &k[1], "0", "1"]),
        cmd(&["ZRANGE", &k[3], "0", "-1", "WITHSCORES"]),
        cmd(&["LMOVE", "nolist", &k[0], "LEFT", "RIGHT"]),
        cmd(&["RPUSH", "src", "p", "q"]),
        cmd(&["LMOVE", "src", &k[0], "LEFT", "RIGHT"]),
    ];
    script.push(cmd(&["LMPOP", "2", "nolist", "src", "LEFT"]));
    same(&mut s, &mut r, &script);
    // The element LMOVE could not push (WRONGTYPE destination) is still in the source.
    assert_eq!(
        s.cmd(&["LRANGE", "src", "0", "-1"]),
        r.cmd(&["LRANGE", "src", "0", "-1"])
    );
}

/// Setup commands, the key watched, and what the other client runs.
type WatchCase<'a> = (&'a [&'a [&'a str]], &'a str, &'a [&'a str]);

#[test]
fn watch_is_invalidated_only_by_what_redis_modifies() {
    let shardis = Server::shardis(SHARDS);
    let redis = Server::redis();
    let (mut s, mut r) = (shardis.raw(), redis.raw());
    let (mut s2, mut r2) = (shardis.raw(), redis.raw());
    // Each case: setup, the key watched, what the other client runs, then EXEC.
    let cases: &[WatchCase] = &[
        // SMOVE of a member the destination already has: only the source changes.
        (
            &[&["SADD", "{s}src", "x"], &["SADD", "{s}dst", "x"]],
            "{s}dst",
            &["SMOVE", "{s}src", "{s}dst", "x"],
        ),
        (
            &[&["SADD", "{s}src", "y"]],
            "{s}dst",
            &["SMOVE", "{s}src", "{s}dst", "y"],
        ),
        // STORE forms touch their destination, not their sources.
        (
            &[&["SADD", "{s}a", "1"]],
            "{s}a",
            &["SUNIONSTORE", "{s}out", "{s}a"],
        ),
        (
            &[&["ZADD", "{z}a", "1", "m"]],
            "{z}a",
            &["ZUNIONSTORE", "{z}out", "1", "{z}a"],
        ),
        (&[], "{z}out", &["ZUNIONSTORE", "{z}out", "1", "{z}a"]),
        // A pop over several keys touches the key it popped from only.
        (
            &[&["RPUSH", "{l}b", "v"]],
            "{l}a",
            &["LMPOP", "2", "{l}a", "{l}b", "LEFT"],
        ),
        (
            &[&["RPUSH", "{l}b", "v"]],
            "{l}b",
            &["LMPOP", "2", "{l}a", "{l}b", "LEFT"],
        ),
    ];
    for (setup, watched, other) in cases {
        for c in [&mut s, &mut r] {
            c.cmd(&["FLUSHALL"]);
            for cmd in setup.iter() {
                c.cmd(cmd);
            }
            c.cmd(&["WATCH", watched]);
        }
        let (x, y) = (s2.cmd(other), r2.cmd(other));
        assert_eq!(x, y, "{other:?}");
        for c in [&mut s, &mut r] {
            c.cmd(&["MULTI"]);
            c.cmd(&["PING"]);
        }
        let (x, y) = (s.cmd(&["EXEC"]), r.cmd(&["EXEC"]));
        assert_eq!(
            x,
            y,
            "EXEC after WATCH {watched} and {other:?}: shardis {} redis {}",
            show(&x),
            show(&y)
        );
    }
}
