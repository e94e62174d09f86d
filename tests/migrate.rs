//! MIGRATE as users meet it outside a cluster: the same steps from a Shardis source
//! (two shards, so a KEYS list spans them) and from a redis-server source, each to a
//! redis-server target of its own, with every reply and the resulting data on both
//! sides compared: single key and KEYS forms, NOKEY, BUSYKEY and REPLACE, COPY, a
//! target db, TTLs, AUTH and AUTH2 against a password-protected target, a closed
//! port, and the cached connections INFO counts. Then the source's AOF: keys that
//! moved stay gone after a restart (MIGRATE is propagated as DEL).

mod common;

use common::{free_port, query_port, shown, Server};

/// Run `args` on both sources, with `{T}` / `{P}` replaced by each one's open and
/// password-protected target ports; the two replies must be the same.
fn both(pairs: &[(u16, u16, u16); 2], args: &[&str]) -> String {
    let mut seen = Vec::new();
    for &(src, t, p) in pairs {
        let a: Vec<String> = args
            .iter()
            .map(|a| {
                a.replace("{T}", &t.to_string())
                    .replace("{P}", &p.to_string())
            })
            .collect();
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        seen.push(shown(src, &a));
    }
    assert_eq!(seen[0], seen[1], "{args:?} (left: Shardis source)");
    seen.remove(0)
}

/// What `args` reads on each target: the same on both.
fn on_targets(pairs: &[(u16, u16, u16); 2], args: &[&str]) -> String {
    let a = shown(pairs[0].1, args);
    assert_eq!(a, shown(pairs[1].1, args), "{args:?} on the targets");
    a
}

#[test]
fn migrate_answers_and_moves_as_redis() {
    let src = Server::shardis_with(2, &["--appendonly", "yes"]);
    let redis_src = Server::redis();
    let (t1, t2) = (Server::redis(), Server::redis());
    let (p1, p2) = (
        Server::redis_with(&["--requirepass", "secret"]),
        Server::redis_with(&["--requirepass", "secret"]),
    );
    let pairs = [
        (src.port, t1.port, p1.port),
        (redis_src.port, t2.port, p2.port),
    ];
    let closed = free_port().to_string();
    for setup in [
        &["SET", "a", "1"][..],
        &["RPUSH", "l", "x", "y"],
        &["SET", "t", "v", "PX", "100000"],
        &["HSET", "h", "f", "v"],
        &["SET", "gone", "g"],
    ] {
        both(&pairs, setup);
    }
    // One step per line; `""` is the empty key argument.
    let steps = [
        "MIGRATE 127.0.0.1 {T} a 0 1000",
        "EXISTS a",
        "MIGRATE 127.0.0.1 {T} missing 0 1000",
        "SET a 2",
        "MIGRATE 127.0.0.1 {T} a 0 1000",
        "GET a",
        "MIGRATE 127.0.0.1 {T} a 0 1000 REPLACE",
        "MIGRATE 127.0.0.1 {T} \"\" 3 1000 COPY KEYS l t h nokey",
        "EXISTS l t h",
        "MIGRATE 127.0.0.1 {T} \"\" 3 1000 KEYS l t h",
        "EXISTS l t h",
        "MIGRATE 127.0.0.1 {T} \"\" 3 1000 REPLACE KEYS l t h",
        "EXISTS l t h",
        "MIGRATE 127.0.0.1 {T} \"\" 3 1000 KEYS nothing here",
        "MIGRATE 127.0.0.1 {T} k 3 1000 KEYS a",
        "MIGRATE 127.0.0.1 {T} k x 1000",
        "MIGRATE 127.0.0.1 {T} k 0 y",
        "MIGRATE 127.0.0.1 {T} k 0 10 AUTH2 u",
        "MIGRATE 127.0.0.1 {T} k 0 10 BOGUS",
        "SET p 1",
        "MIGRATE 127.0.0.1 {P} p 0 1000",
        "MIGRATE 127.0.0.1 {P} p 0 1000 AUTH wrong",
        "MIGRATE 127.0.0.1 {P} p 0 1000 AUTH secret",
        "SET p 2",
        "MIGRATE 127.0.0.1 {P} p 5 1000 AUTH2 default secret",
        "EXISTS p",
        "MIGRATE 127.0.0.1 {CLOSED} gone 0 200",
        "EXISTS gone",
    ];
    for line in steps {
        let line = line.replace("{CLOSED}", &closed);
        let args: Vec<&str> = line
            .split(' ')
            .map(|w| if w == "\"\"" { "" } else { w })
            .collect();
        both(&pairs, &args);
    }
    // What arrived, in which db, with its TTL.
    on_targets(&pairs, &["GET", "a"]);
    on_targets(&pairs, &["EXISTS", "l", "t", "h"]);
    let a: String = query_port(t1.port, None, &["GET", "a"]).unwrap();
    assert_eq!(a, "2");
    let mut c = redis::Client::open(format!("redis://127.0.0.1:{}/3", t1.port))
        .unwrap()
        .get_connection()
        .unwrap();
    let (list, hash, pttl): (Vec<String>, String, i64) = redis::pipe()
        .lrange("l", 0, -1)
        .hget("h", "f")
        .pttl("t")
        .query(&mut c)
        .unwrap();
    assert_eq!(
        (list, hash.as_str()),
        (vec!["x".to_string(), "y".into()], "v")
    );
    assert!(pttl > 90_000 && pttl <= 100_000, "{pttl}");
    let mut c = redis::Client::open(format!("redis://:secret@127.0.0.1:{}/5", p1.port))
        .unwrap()
        .get_connection()
        .unwrap();
    let p: String = redis::cmd("GET").arg("p").query(&mut c).unwrap();
    assert_eq!(p, "2");

    // Connections to both targets are cached (the closed port's is not): by each
    // core that ran a MIGRATE, on Shardis (its connections land on either core).
    let cached = |port: u16| {
        let info: String = query_port(port, None, &["INFO", "stats"]).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("migrate_cached_sockets:"))
            .unwrap()
            .to_string()
    };
    assert_eq!(cached(redis_src.port), "2");
    assert!(["2", "3", "4"].contains(&cached(src.port).as_str()));

    // The AOF has the moves as DELs: a restart from it brings none of them back.
    let keys_before: Vec<String> = query_port(src.port, None, &["KEYS", "*"]).unwrap();
    let port = src.port;
    src.crash();
    let again = Server::shardis_on_port_with(port, 2, &["--appendonly", "yes"]);
    let mut keys: Vec<String> = query_port(again.port, None, &["KEYS", "*"]).unwrap();
    keys.sort();
    let mut expected = keys_before;
    expected.sort();
    assert_eq!(keys, expected);
    assert_eq!(keys, vec!["gone".to_string()]);
}
