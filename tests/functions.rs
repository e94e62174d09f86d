//! Redis Functions against the real binary: FUNCTION and FCALL replies compared with a
//! real redis-server, then what a multi-core server can get wrong (a library loaded
//! through one core runs on every core), and where libraries must survive: restart
//! from the RDB file, the RDB file read by redis-server, a replica's full sync and
//! the replication stream. (The AOF's part is in `tests/aof.rs`.)
//!
//! The one idea to hold: reply texts are not transcribed; the same commands go to
//! both servers. FUNCTION LIST is compared only for a library of one function, since
//! Redis lists a library's functions in its hash table's order.

mod common;

use common::{
    conn_on, keys_on_distinct_shards, show, wait_until, Duo, Frame, RawConn, Server, Step,
};
use std::thread;
use std::time::Duration;

fn step(conn: usize, argv: &[&str]) -> Step {
    Step::Cmd(conn, argv.iter().map(|s| s.to_string()).collect())
}

/// A library with one function of each kind the tests call.
const LIB: &str = "#!lua name=lib
redis.register_function{function_name='get', callback=function(k) return redis.call('get', k[1]) end, flags={'no-writes'}, description='reads a key'}
redis.register_function('set', function(k, a) return redis.call('set', k[1], a[1]) end)
redis.register_function('echo', function(k, a) return {k[1], a[1], #k, #a} end)
redis.register_function('boom', function() return error('boom') end)
redis.register_function('arith', function() local x = nil + 1 end)
redis.register_function('keys', function() return KEYS end)
redis.register_function('register', function() return redis.register_function('z', function() end) end)
redis.register_function('nosuch', function() return redis.call('nosuch') end)
redis.register_function('pincr', function(k) return redis.pcall('incr', k[1]) end)
redis.register_function('resp3', function(k) redis.setresp(3) return redis.call('hgetall', k[1]) end)
redis.register_function('incr_all', function(k) for _, key in ipairs(k) do redis.call('incr', key) end return #k end)";

const ONE: &str = "#!lua name=one\nredis.register_function{function_name='one', callback=function() return 1 end, description='d', flags={'allow-stale', 'NO-WRITES'}}";

#[test]
fn functions_answer_as_redis() {
    let mut duo = Duo::new(Server::shardis(2), 2);
    let keys = keys_on_distinct_shards("fk", 2, 2);
    let (k0, k1) = (keys[0].as_str(), keys[1].as_str());
    let bad_loads = [
        "return 1",
        "#!lua\nreturn 1",
        "#!lua name=x",
        "#!lua name=x\nreturn 1",
        "#!lua name=x foo=bar\nreturn 1",
        "#!lua name=x name=y\nreturn 1",
        "#!lua name=x-y\nredis.register_function('f', function() return 1 end)",
        "#!js name=x\nreturn 1",
        "#!lua name=x\nlocal s = string.format('a')",
        "#!lua name=x\nerror('boom')",
        "#!lua name=x\nredis.call('ping')",
        "#!lua name=x\nredis.register_function('f')",
        "#!lua name=x\nredis.register_function(1, 2, 3)",
        "#!lua name=x\nredis.register_function('f', 2)",
        "#!lua name=x\nredis.register_function{function_name='f', callback=function() return 1 end, flags={'bogus'}}",
        "#!lua name=x\nredis.register_function{function_name='f', callback=function() return 1 end, bogus=1}",
        "#!lua name=x\nredis.register_function{callback=function() return 1 end}",
        "#!lua name=x\nredis.register_function{function_name='f'}",
        "#!lua name=x\nredis.register_function('f-1', function() return 1 end)",
        "#!lua name=x\nredis.register_function('f', function() end) redis.register_function('f', function() end)",
        "#!lua name=x\nfoo = 1",
        "#!lua name=x\nsyntax error here",
        "#!lua name=x\nlocal a = nil + 1",
        "#!lua name=x\nredis.register_function('f', function() return 1 end) redis.setresp(3)",
        "#!lua name=x\nwhile true do end",
    ];
    let mut steps: Vec<Step> = bad_loads
        .iter()
        .map(|code| step(0, &["FUNCTION", "LOAD", code]))
        .collect();
    steps.extend([
        step(0, &["FUNCTION", "LOAD", LIB]),
        step(0, &["FUNCTION", "LOAD", LIB]),
        step(1, &["FUNCTION", "LOAD", "REPLACE", LIB]),
        step(0, &["FUNCTION", "LOAD", "BOGUS", LIB]),
        step(0, &["FUNCTION", "LOAD", "REPLACE"]),
        step(0, &["SET", k0, "v0"]),
        step(1, &["FCALL", "get", "1", k0]),
        step(1, &["FCALL_RO", "GET", "1", k0]),
        step(0, &["FCALL", "set", "1", k1, "v1"]),
        step(0, &["FCALL_RO", "set", "1", k1, "v1"]),
        step(1, &["GET", k1]),
        step(0, &["FCALL", "echo", "2", k0, k1, "a", "b"]),
        step(0, &["FCALL", "echo", "0"]),
        step(0, &["FCALL", "boom", "0"]),
        step(0, &["FCALL", "arith", "0"]),
        step(0, &["FCALL", "keys", "0"]),
        step(0, &["FCALL", "register", "0"]),
        step(0, &["FCALL", "nosuch", "0"]),
        step(1, &["FCALL", "pincr", "1", k0]),
        step(1, &["HSET", "h", "a", "1"]),
        step(1, &["FCALL", "resp3", "1", "h"]),
        step(0, &["FCALL", "incr_all", "2", "c1", k1]),
        step(0, &["FCALL", "incr_all", "2", k0, "c2"]),
        step(0, &["FCALL", "missing", "0"]),
        step(0, &["FCALL", "echo", "x"]),
        step(0, &["FCALL", "echo", "3", "a"]),
        step(0, &["FCALL", "echo", "-1"]),
        step(0, &["FCALL"]),
        // Inside MULTI, and names in any case.
        step(1, &["MULTI"]),
        step(1, &["FCALL", "SET", "1", k0, "m"]),
        step(1, &["FCALL", "Echo", "1", k1, "x"]),
        step(1, &["EXEC"]),
        step(1, &["GET", k0]),
        // Collisions, REPLACE, DELETE.
        step(
            0,
            &[
                "FUNCTION",
                "LOAD",
                "#!lua name=other\nredis.register_function('ECHO', function() return 2 end)",
            ],
        ),
        step(
            0,
            &[
                "FUNCTION",
                "LOAD",
                "REPLACE",
                "#!lua name=lib\nredis.register_function('echo', function() return 2 end)",
            ],
        ),
        step(1, &["FCALL", "echo", "0"]),
        step(1, &["FCALL", "get", "1", k0]),
        step(0, &["FUNCTION", "DELETE", "nosuch"]),
        step(0, &["FUNCTION", "DELETE", "lib"]),
        step(1, &["FCALL", "echo", "0"]),
        step(0, &["FUNCTION", "LOAD", ONE]),
        step(0, &["FUNCTION", "LIST"]),
        step(0, &["FUNCTION", "LIST", "WITHCODE", "LIBRARYNAME", "o*"]),
        step(0, &["FUNCTION", "LIST", "LIBRARYNAME", "x*"]),
        step(0, &["FUNCTION", "LIST", "LIBRARYNAME"]),
        step(0, &["FUNCTION", "LIST", "bogus"]),
        step(0, &["FUNCTION", "STATS"]),
        step(0, &["FUNCTION", "KILL"]),
        step(0, &["FUNCTION", "FLUSH", "bogus"]),
        step(0, &["FUNCTION", "FLUSH", "SYNC", "SYNC"]),
        step(0, &["FUNCTION", "RESTORE", "bogus"]),
        step(0, &["FUNCTION", "RESTORE", "bogus", "bogus"]),
        step(0, &["FUNCTION", "RESTORE", "a", "b", "c"]),
        step(0, &["FUNCTION", "HELP"]),
        step(0, &["FUNCTION", "FLUSH", "ASYNC"]),
        step(0, &["FUNCTION", "LIST"]),
        step(1, &["FCALL", "one", "0"]),
        // Scripts with a shebang line follow their flags as functions do.
        step(0, &["EVAL", "#!lua\nreturn redis.call('set','a','b')", "0"]),
        step(0, &["EVAL_RO", "#!lua\nreturn 1", "0"]),
        step(
            0,
            &[
                "EVAL_RO",
                "#!lua flags=no-writes\nreturn redis.call('set','a','b')",
                "0",
            ],
        ),
        step(0, &["EVAL", "#!lua flags=NO-WRITES\nreturn 1", "0"]),
    ]);
    duo.run("functions", &steps);
    // RESP3 replies (maps, sets of flags, the null description).
    duo.run(
        "resp3",
        &[
            // (Client ids differ.)
            Step::Any(0, vec!["HELLO".into(), "3".into()]),
            step(0, &["FUNCTION", "LOAD", ONE]),
            step(0, &["FUNCTION", "LIST", "WITHCODE"]),
            step(0, &["FUNCTION", "LOAD", "#!lua name=two\nredis.register_function('two', function() return {double=1.5} end)"]),
            step(0, &["FUNCTION", "LIST", "LIBRARYNAME", "two"]),
            step(0, &["FUNCTION", "STATS"]),
            step(0, &["FCALL", "two", "0"]),
        ],
    );
    // DUMP from one, RESTORE into the other, both ways: the payloads are the same format.
    for (from, to) in [(0, 1), (1, 0)] {
        let servers = [&duo.shardis, &duo.redis];
        let mut a = servers[from].raw();
        let mut b = servers[to].raw();
        let Frame::Bulk(payload) = a.cmd(&["FUNCTION", "DUMP"]) else {
            panic!("FUNCTION DUMP")
        };
        assert_eq!(b.cmd(&["FUNCTION", "FLUSH"]), Frame::Simple("OK".into()));
        assert_eq!(
            cmd_bytes(&mut b, &[b"FUNCTION", b"RESTORE", &payload]),
            Frame::Simple("OK".into())
        );
        assert_eq!(b.cmd(&["FCALL", "two", "0"]), Frame::Bulk(b"1.5".to_vec()));
        // Again: APPEND refuses, REPLACE takes it, a damaged payload is refused.
        for policy in ["APPEND", "REPLACE"] {
            let r = cmd_bytes(
                &mut b,
                &[b"FUNCTION", b"RESTORE", &payload, policy.as_bytes()],
            );
            if policy == "APPEND" {
                // (Which library is named first is the order of a hash table.)
                assert!(
                    matches!(&r, Frame::Error(e) if e.starts_with("ERR Library ") && e.ends_with(" already exists")),
                    "{}",
                    show(&r)
                );
            } else {
                assert_eq!(r, Frame::Simple("OK".into()), "{policy}");
            }
        }
        let mut bad = payload.clone();
        bad[3] ^= 1;
        assert_eq!(
            cmd_bytes(&mut b, &[b"FUNCTION", b"RESTORE", &bad]),
            Frame::Error("ERR DUMP payload version or checksum are wrong".into())
        );
    }
}

fn cmd_bytes(c: &mut RawConn, argv: &[&[u8]]) -> Frame {
    c.send_cmd(argv);
    c.read_frame()
}

#[test]
fn a_library_loaded_through_one_core_runs_on_every_core() {
    let server = Server::shardis(2);
    let (mut a, mut b) = (conn_on(&server, 0), conn_on(&server, 1));
    let keys = keys_on_distinct_shards("mk", 2, 2);
    assert_eq!(
        a.cmd(&["FUNCTION", "LOAD", LIB]),
        Frame::Bulk(b"lib".to_vec())
    );
    // Each core runs it, on keys of both shards, declared or one at a time.
    for c in [&mut a, &mut b] {
        for k in &keys {
            assert_eq!(c.cmd(&["FCALL", "incr_all", "1", k]), Frame::Int(1));
        }
        assert_eq!(
            c.cmd(&["FCALL", "incr_all", "2", &keys[0], &keys[1]]),
            Frame::Int(2)
        );
    }
    for k in &keys {
        assert_eq!(b.cmd(&["GET", k]), Frame::Bulk(b"4".to_vec()));
    }
    // A replaced library is what every core runs next.
    let v2 = "#!lua name=lib\nredis.register_function('incr_all', function() return 'v2' end)";
    assert_eq!(
        b.cmd(&["FUNCTION", "LOAD", "REPLACE", v2]),
        Frame::Bulk(b"lib".to_vec())
    );
    for c in [&mut a, &mut b] {
        assert_eq!(
            c.cmd(&["FCALL", "incr_all", "1", &keys[0]]),
            Frame::Bulk(b"v2".to_vec())
        );
        assert!(
            matches!(c.cmd(&["FCALL", "echo", "0"]), Frame::Error(e) if e == "ERR Function not found")
        );
    }
    let info = |c: &mut RawConn, f: &str| -> u64 { common::info_field(c, f).parse().unwrap() };
    assert_eq!(info(&mut a, "number_of_libraries"), 1);
    assert_eq!(info(&mut a, "number_of_functions"), 1);
    assert!(info(&mut b, "used_memory_vm_functions") > 0);
    assert!(info(&mut b, "used_memory_functions") > 0);
    assert_eq!(a.cmd(&["FUNCTION", "FLUSH"]), Frame::Simple("OK".into()));
    assert!(
        matches!(b.cmd(&["FCALL", "incr_all", "0"]), Frame::Error(e) if e == "ERR Function not found")
    );
}

#[test]
fn a_busy_function_shows_in_stats_and_stops_on_function_kill() {
    let server = Server::shardis_with(2, &["--busy-reply-threshold", "100"]);
    let mut other = conn_on(&server, 1);
    let mut runner = conn_on(&server, 0);
    let lib = "#!lua name=loop\nredis.register_function('spin', function() local i = 0 while true do i = i + 1 end end)";
    assert_eq!(
        runner.cmd(&["FUNCTION", "LOAD", lib]),
        Frame::Bulk(b"loop".to_vec())
    );
    runner.send_cmd(&[b"FCALL", b"spin", b"0"]);
    // (A command sent before the threshold waits for the function: see the README.)
    thread::sleep(Duration::from_millis(300));
    assert!(
        wait_until(Duration::from_secs(10), || {
            matches!(other.cmd(&["GET", "x"]), Frame::Error(e) if e == "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.")
        }),
        "no -BUSY while a function loops"
    );
    let stats = show(&other.cmd(&["FUNCTION", "STATS"]));
    assert!(
        stats.contains("\"name\" => $\"spin\"") || stats.contains("$\"name\", $\"spin\""),
        "{stats}"
    );
    assert!(stats.contains("$\"FCALL\", $\"spin\", $\"0\""), "{stats}");
    // SCRIPT KILL does not stop a function; FUNCTION KILL does.
    assert_eq!(
        other.cmd(&["SCRIPT", "KILL"]),
        Frame::Error(
            "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE."
                .into()
        )
    );
    assert_eq!(other.cmd(&["FUNCTION", "KILL"]), Frame::Simple("OK".into()));
    match runner.read_frame() {
        Frame::Error(e) => assert_eq!(
            e,
            "ERR Script killed by user with SCRIPT KILL... script: spin, on @user_function:2."
        ),
        other => panic!("the killed function answered {}", show(&other)),
    }
    assert_eq!(other.cmd(&["GET", "x"]), Frame::NullBulk);
    assert!(
        matches!(other.cmd(&["FUNCTION", "STATS"]), Frame::Array(v) if v[1] == Frame::NullBulk)
    );
}

/// INFO replication's `master_link_status:up`, within 20 s.
fn wait_link_up(r: &mut RawConn) {
    assert!(
        wait_until(Duration::from_secs(20), || {
            matches!(r.cmd(&["INFO", "replication"]), Frame::Bulk(b) | Frame::Verbatim(b)
                if String::from_utf8_lossy(&b).contains("master_link_status:up"))
        }),
        "the replica did not connect"
    );
}

#[test]
fn libraries_survive_a_restart_and_move_to_redis_in_the_rdb_file() {
    let port = common::free_port();
    let server = Server::shardis_on_port(port, 2);
    let mut c = server.raw();
    assert_eq!(
        c.cmd(&["FUNCTION", "LOAD", LIB]),
        Frame::Bulk(b"lib".to_vec())
    );
    assert_eq!(
        c.cmd(&["FUNCTION", "LOAD", ONE]),
        Frame::Bulk(b"one".to_vec())
    );
    assert_eq!(c.cmd(&["SAVE"]), Frame::Simple("OK".into()));
    let dir = server.dir().to_string_lossy().into_owned();
    drop(c);
    server.crash(); // (keeps the directory)
                    // Shardis again, from its file.
    let server = Server::shardis_on_port(port, 3);
    let mut c = server.raw();
    assert_eq!(c.cmd(&["FCALL", "echo", "1", "a", "b"]), echo_reply());
    assert_eq!(c.cmd(&["FCALL", "one", "0"]), Frame::Int(1));
    // redis-server reads the same file and has the same libraries.
    let redis = Server::redis_with(&["--dir", &dir]);
    let mut r = redis.raw();
    assert_eq!(r.cmd(&["FCALL", "echo", "1", "a", "b"]), echo_reply());
    assert_eq!(
        r.cmd(&["FUNCTION", "LIST", "LIBRARYNAME", "one"]),
        c.cmd(&["FUNCTION", "LIST", "LIBRARYNAME", "one"])
    );
    // And back: a library redis-server saved loads into Shardis.
    let lib3 = "#!lua name=lib3\nredis.register_function('three', function() return 3 end)";
    assert_eq!(
        r.cmd(&["FUNCTION", "LOAD", lib3]),
        Frame::Bulk(b"lib3".to_vec())
    );
    assert_eq!(r.cmd(&["SAVE"]), Frame::Simple("OK".into()));
    drop(c);
    server.crash();
    let server = Server::shardis_on_port_with(port, 2, &["--enable-debug-command", "yes"]);
    let mut c = server.raw();
    assert_eq!(c.cmd(&["FCALL", "three", "0"]), Frame::Int(3));
    assert_eq!(c.cmd(&["FCALL", "one", "0"]), Frame::Int(1));
    // DEBUG RELOAD saves and loads them again; a library loaded since then is gone
    // after DEBUG RELOAD NOSAVE (the file's libraries replace ours, as in Redis).
    assert_eq!(c.cmd(&["DEBUG", "RELOAD"]), Frame::Simple("OK".into()));
    assert_eq!(c.cmd(&["FCALL", "three", "0"]), Frame::Int(3));
    let lib4 = "#!lua name=lib4\nredis.register_function('four', function() return 4 end)";
    assert_eq!(
        c.cmd(&["FUNCTION", "LOAD", lib4]),
        Frame::Bulk(b"lib4".to_vec())
    );
    assert_eq!(
        c.cmd(&["DEBUG", "RELOAD", "NOSAVE"]),
        Frame::Simple("OK".into())
    );
    assert_eq!(c.cmd(&["FCALL", "three", "0"]), Frame::Int(3));
    assert_eq!(
        c.cmd(&["FCALL", "four", "0"]),
        Frame::Error("ERR Function not found".into())
    );
    // NOFLUSH keeps ours, and the file's libraries of the same names then fail the
    // load (Redis's words); with MERGE they replace ours.
    assert_eq!(c.cmd(&["FLUSHALL"]), Frame::Simple("OK".into()));
    assert_eq!(
        c.cmd(&["DEBUG", "RELOAD", "NOFLUSH"]),
        Frame::Error("ERR Error trying to load the RDB dump".into())
    );
    assert_eq!(c.cmd(&["FCALL", "three", "0"]), Frame::Int(3));
    assert_eq!(
        c.cmd(&["DEBUG", "RELOAD", "NOFLUSH", "MERGE"]),
        Frame::Simple("OK".into())
    );
    assert_eq!(c.cmd(&["FCALL", "three", "0"]), Frame::Int(3));
}

fn echo_reply() -> Frame {
    Frame::Array(vec![
        Frame::Bulk(b"a".to_vec()),
        Frame::Bulk(b"b".to_vec()),
        Frame::Int(1),
        Frame::Int(1),
    ])
}

#[test]
fn replicas_get_the_libraries_in_the_full_sync_and_the_stream() {
    let master = Server::shardis(2);
    let mut m = master.raw();
    assert_eq!(
        m.cmd(&["FUNCTION", "LOAD", LIB]),
        Frame::Bulk(b"lib".to_vec())
    );
    let mport = master.port.to_string();
    let redis = Server::redis_with(&["--replicaof", "127.0.0.1", &mport]);
    let shardis = Server::shardis_with(2, &["--replicaof", "127.0.0.1", &mport]);
    let mut replicas = [redis.raw(), shardis.raw()];
    for r in replicas.iter_mut() {
        wait_link_up(r);
        assert_eq!(r.cmd(&["FCALL_RO", "get", "1", "k"]), Frame::NullBulk);
    }
    // Changes reach them through the stream; a write function's effects too.
    assert_eq!(
        m.cmd(&["FUNCTION", "LOAD", ONE]),
        Frame::Bulk(b"one".to_vec())
    );
    assert_eq!(
        m.cmd(&["FUNCTION", "DELETE", "lib"]),
        Frame::Simple("OK".into())
    );
    assert_eq!(
        m.cmd(&["FUNCTION", "LOAD", LIB]),
        Frame::Bulk(b"lib".to_vec())
    );
    assert_eq!(
        m.cmd(&["FCALL", "set", "1", "k", "v"]),
        Frame::Simple("OK".into())
    );
    assert_eq!(m.cmd(&["WAIT", "2", "5000"]), Frame::Int(2));
    for r in replicas.iter_mut() {
        assert_eq!(r.cmd(&["FCALL", "one", "0"]), Frame::Int(1));
        assert_eq!(r.cmd(&["GET", "k"]), Frame::Bulk(b"v".to_vec()));
        // A read-only replica runs a no-writes function and refuses the others.
        assert_eq!(
            r.cmd(&["FCALL", "get", "1", "k"]),
            Frame::Bulk(b"v".to_vec())
        );
        assert_eq!(
            r.cmd(&["FCALL", "set", "1", "k", "w"]),
            Frame::Error("READONLY You can't write against a read only replica.".into())
        );
        assert_eq!(
            r.cmd(&["FUNCTION", "LOAD", ONE]),
            Frame::Error("READONLY You can't write against a read only replica.".into())
        );
    }
    // A Shardis replica of redis-server gets redis-server's libraries.
    let mut r0 = redis.raw();
    assert_eq!(
        r0.cmd(&["REPLICAOF", "NO", "ONE"]),
        Frame::Simple("OK".into())
    );
    let lib3 = "#!lua name=lib3\nredis.register_function{function_name='three', callback=function() return 3 end, flags={'no-writes'}}";
    assert_eq!(
        r0.cmd(&["FUNCTION", "LOAD", lib3]),
        Frame::Bulk(b"lib3".to_vec())
    );
    let mut s = shardis.raw();
    assert_eq!(
        s.cmd(&["REPLICAOF", "127.0.0.1", &redis.port.to_string()]),
        Frame::Simple("OK".into())
    );
    assert!(
        wait_until(Duration::from_secs(20), || s.cmd(&["FCALL", "three", "0"])
            == Frame::Int(3)),
        "the Shardis replica did not get redis-server's library"
    );
}
