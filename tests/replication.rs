//! Replication against redis-server 7.0 both ways: partial resyncs after a cut link, a
//! backlog too small, chains, a promotion that siblings follow partially (PSYNC2),
//! WAIT, the replica's refusals and introspection, redis-cli --rdb / --replica.
//!
//! The random-load comparison (every type, transactions across shards) is in the
//! differential test (`replicas_follow_random_writes`); these are the situations a user
//! meets by hand. Every server runs with `enable-debug-command` so DEBUG DIGEST can
//! compare data sets.

mod common;

use common::{assert_in_sync, follow, info_field, show, wait_until, Frame, RawConn, Server};
use std::time::Duration;

fn shardis(threads: usize, extra: &[&str]) -> Server {
    let mut args = vec!["--enable-debug-command", "yes"];
    args.extend_from_slice(extra);
    Server::shardis_with(threads, &args)
}

/// A master and its future replica, one Shardis (3 shards) and one redis-server:
/// Shardis is the master when `shardis_master`.
fn master_and_replica(shardis_master: bool) -> (Server, Server) {
    if shardis_master {
        (shardis(3, &[]), redis(&[]))
    } else {
        (redis(&[]), shardis(3, &[]))
    }
}

fn redis(extra: &[&str]) -> Server {
    let mut args = vec!["--enable-debug-command", "yes"];
    args.extend_from_slice(extra);
    Server::redis_with(&args)
}

fn num(c: &mut RawConn, field: &str) -> i64 {
    info_field(c, field).parse().unwrap_or(-1)
}

/// Writes of every kind over many keys (so every shard has a part), `n` rounds from
/// `from`, pipelined.
fn write_load(server: &Server, from: usize, n: usize) {
    let mut c = server.raw();
    for i in from..from + n {
        let k = format!("k{}", i % 97);
        let cmds: Vec<Vec<String>> = vec![
            vec!["SET".into(), k.clone(), i.to_string()],
            vec!["INCR".into(), format!("n{}", i % 13)],
            vec!["LPUSH".into(), format!("l{}", i % 7), i.to_string()],
            vec![
                "HSET".into(),
                format!("h{}", i % 5),
                k.clone(),
                i.to_string(),
            ],
            vec!["ZADD".into(), "z".into(), i.to_string(), k.clone()],
            vec![
                "MSET".into(),
                format!("a{}", i % 11),
                "1".into(),
                format!("b{}", i % 17),
                "2".into(),
            ],
            vec!["SADD".into(), format!("s{}", i % 3), k],
        ];
        for argv in &cmds {
            let args: Vec<&[u8]> = argv.iter().map(|a| a.as_bytes()).collect();
            c.send_cmd(&args);
        }
        for _ in &cmds {
            c.read_frame();
        }
    }
}

/// `repl-diskless-sync-delay` holds a diskless sync, the replica meanwhile in ROLE's
/// `handshake` state (Redis's master answers PSYNC only when the sync starts), with
/// a Shardis master as with a redis-server one.
#[test]
fn a_diskless_sync_waits_its_delay_in_the_handshake_state() {
    let delay = [
        "--repl-diskless-sync",
        "yes",
        "--repl-diskless-sync-delay",
        "3",
    ];
    for master in [shardis(2, &delay), redis(&delay)] {
        let replica = shardis(2, &[]);
        let mut c = replica.raw();
        let port = master.port.to_string();
        c.cmd(&["REPLICAOF", "127.0.0.1", &port]);
        let state = |c: &mut RawConn| match c.cmd(&["ROLE"]) {
            Frame::Array(items) => match &items[3] {
                Frame::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
                other => show(other),
            },
            other => show(&other),
        };
        let handshake = wait_until(Duration::from_secs(2), || state(&mut c) == "handshake");
        assert!(handshake, "ROLE: {}", state(&mut c));
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(state(&mut c), "handshake", "still waiting out the delay");
        let up = wait_until(Duration::from_secs(10), || {
            info_field(&mut c, "master_link_status") == "up"
        });
        assert!(up, "the sync after the delay: {}", state(&mut c));
        assert_eq!(state(&mut c), "connected");
    }
}

/// A client blocked on a key when its server becomes a replica gets Redis's UNBLOCKED
/// error and is disconnected (Redis's `disconnectAllBlockedClients`). It used to stay
/// blocked and take the first item of the master's next push: the replica diverged
/// (Redis's integration/replication, 'BLPOP followed by role change').
#[test]
fn a_client_blocked_on_a_new_replica_is_unblocked_as_in_redis() {
    let master = redis(&["--repl-diskless-sync-delay", "0"]);
    let mut seen = Vec::new();
    for server in [shardis(2, &[]), redis(&[])] {
        let mut blocked = server.raw();
        blocked.send_cmd(&[b"BLPOP", b"foo{a}", b"0"]);
        blocked.send_cmd(&[b"BLPOP", b"bar{b}", b"0"]);
        common::await_blocked(&mut server.raw(), 1);
        follow(&server, &master);
        seen.push(String::from_utf8_lossy(&blocked.read_to_close()).into_owned());
        master.raw().cmd(&["RPUSH", "foo{a}", "a", "b", "c"]);
        assert_in_sync(&master, &server);
        assert_eq!(
            show(&server.raw().cmd(&["LRANGE", "foo{a}", "0", "-1"])),
            show(&master.raw().cmd(&["LRANGE", "foo{a}", "0", "-1"]))
        );
        master.raw().cmd(&["FLUSHALL"]);
    }
    assert_eq!(seen[0], seen[1], "Shardis, then Redis");
    assert!(
        seen[0].starts_with("-UNBLOCKED force unblock"),
        "{}",
        seen[0]
    );
}

/// A diskless sync under a steady write load, to redis-server and Shardis replicas: the
/// master sends nothing after the RDB's EOF mark until the replica's first ACK, as
/// Redis's does. A replica finds the mark by comparing the last bytes of a read, so
/// stream bytes right behind it hid it: a Redis replica waited for ever (and a Shardis
/// one until its timeout). `rdb-key-save-delay` makes the transfer last long enough
/// for writes to wait behind it.
#[test]
fn a_diskless_sync_under_writes_completes() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let master = shardis(
        2,
        &[
            "--repl-diskless-sync",
            "yes",
            "--repl-diskless-sync-delay",
            "0",
            "--rdb-key-save-delay",
            "200",
        ],
    );
    master.raw().cmd(&["DEBUG", "POPULATE", "2000"]);
    for replica in [redis(&[]), shardis(2, &[])] {
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    write_load(&master, i, 20);
                    i += 20;
                }
            });
            // (The writer stops whatever happens: a panic here would wait for it.)
            let synced = std::panic::catch_unwind(|| follow(&replica, &master));
            stop.store(true, Ordering::Relaxed);
            if let Err(e) = synced {
                std::panic::resume_unwind(e);
            }
        });
        assert_in_sync(&master, &replica);
    }
}

/// Cut the link from either side during writes: both ends resync partially, never fully.
#[test]
fn cut_links_resync_partially_both_ways() {
    cut_links(shardis(3, &[]), redis(&[]));
    cut_links(redis(&[]), shardis(3, &[]));
}

fn cut_links(master: Server, replica: Server) {
    write_load(&master, 0, 50);
    follow(&replica, &master);
    let (mut m, mut r) = (master.raw(), replica.raw());
    // (A redis-server turned replica offers its own history first: a refused PSYNC.)
    let refused = num(&mut m, "sync_partial_err");
    write_load(&master, 50, 50);
    r.cmd(&["CLIENT", "KILL", "TYPE", "master"]);
    write_load(&master, 100, 50);
    let partial = |m: &mut RawConn, n| {
        common::wait_until(Duration::from_secs(10), || num(m, "sync_partial_ok") == n)
    };
    assert!(partial(&mut m, 1), "{}", counts(&mut m));
    // The master counts a partial sync when it sends +CONTINUE; a link cut before the
    // replica has read it leaves the replica nothing to continue from (a full sync).
    let up = common::wait_until(Duration::from_secs(10), || {
        info_field(&mut r, "master_link_status") == "up"
    });
    assert!(up, "{}", replica.log_text());
    m.cmd(&["CLIENT", "KILL", "TYPE", "replica"]);
    write_load(&master, 150, 50);
    assert!(partial(&mut m, 2), "{}", counts(&mut m));
    assert_in_sync(&master, &replica);
    assert_eq!(num(&mut m, "sync_full"), 1);
    assert_eq!(num(&mut m, "sync_partial_err"), refused);
}

/// A master's sync counters, for a failure's message.
fn counts(m: &mut RawConn) -> String {
    ["sync_full", "sync_partial_ok", "sync_partial_err"]
        .map(|f| format!("{f}:{}", info_field(m, f)))
        .join(" ")
}

/// More writes than the backlog holds while the link is down: the replica's PSYNC is
/// refused (`sync_partial_err`) and a full sync still ends equal.
#[test]
fn a_backlog_too_small_forces_a_full_sync() {
    let master = shardis(2, &["--repl-backlog-size", "16kb"]);
    let replica = redis(&[]);
    follow(&replica, &master);
    let (mut m, mut r) = (master.raw(), replica.raw());
    // Stop the replica from reconnecting while the backlog overflows.
    r.cmd(&["CONFIG", "SET", "masterauth", "wrong-on-purpose"]);
    m.cmd(&["CONFIG", "SET", "requirepass", "secret"]);
    m.cmd(&["AUTH", "secret"]);
    m.cmd(&["CLIENT", "KILL", "TYPE", "replica"]);
    let mut w = master.raw();
    w.cmd(&["AUTH", "secret"]);
    let big = "x".repeat(1000);
    for i in 0..100 {
        w.cmd(&["SET", &format!("big{i}"), &big]);
    }
    r.cmd(&["CONFIG", "SET", "masterauth", "secret"]);
    let resynced = common::wait_until(Duration::from_secs(15), || num(&mut m, "sync_full") >= 2);
    assert!(
        resynced,
        "master:\n{}\nreplica:\n{}",
        master.log_text(),
        replica.log_text()
    );
    assert!(num(&mut m, "sync_partial_err") >= 1);
    m.cmd(&["CONFIG", "SET", "requirepass", ""]);
    assert_in_sync(&master, &replica);
}

/// Redis → Shardis → Redis and Shardis → Shardis → Shardis: the end of each chain has
/// the head's data at the head's offset.
#[test]
fn chains_carry_the_stream() {
    let head = redis(&[]);
    let middle = shardis(3, &[]);
    let tail = redis(&[]);
    write_load(&head, 0, 30);
    follow(&middle, &head);
    follow(&tail, &middle);
    write_load(&head, 30, 60);
    assert_in_sync(&head, &middle);
    assert_in_sync(&head, &tail);

    let head = shardis(3, &[]);
    let middle = shardis(2, &[]);
    let tail = shardis(4, &[]);
    write_load(&head, 0, 30);
    follow(&middle, &head);
    follow(&tail, &middle);
    write_load(&head, 30, 60);
    assert_in_sync(&head, &middle);
    assert_in_sync(&head, &tail);

    // The middle moves to another master: its replica is let go (and comes back), with
    // Redis's 'Connection with replica ... lost.', not a report of an output limit.
    let other = shardis(2, &[]);
    follow(&middle, &other);
    write_load(&other, 0, 10);
    assert_in_sync(&other, &tail);
    let log = middle.log_text();
    assert!(log.contains("Connection with replica"), "{log}");
    assert!(!log.contains("output buffer limits"), "{log}");
}

/// A replica promoted with REPLICAOF NO ONE keeps its master's history as replid2, so
/// a sibling re-pointed to it continues partially: a Shardis promoted with a
/// redis-server sibling, and a redis-server promoted with a Shardis sibling.
#[test]
fn siblings_follow_a_promoted_replica_partially() {
    for promoted_is_shardis in [true, false] {
        let master = if promoted_is_shardis {
            redis(&[])
        } else {
            shardis(3, &[])
        };
        let (a, b) = if promoted_is_shardis {
            (shardis(3, &[]), redis(&[]))
        } else {
            (redis(&[]), shardis(2, &[]))
        };
        write_load(&master, 0, 40);
        follow(&a, &master);
        follow(&b, &master);
        write_load(&master, 40, 40);
        assert_in_sync(&master, &a);
        assert_in_sync(&master, &b);
        let mut ac = a.raw();
        let old_id = info_field(&mut ac, "master_replid");
        assert_eq!(show(&ac.cmd(&["REPLICAOF", "NO", "ONE"])), "+OK");
        assert_eq!(info_field(&mut ac, "master_replid2"), old_id);
        assert_eq!(info_field(&mut ac, "role"), "master");
        follow(&b, &a);
        write_load(&a, 80, 20);
        assert_in_sync(&a, &b);
        assert_eq!(
            num(&mut ac, "sync_partial_ok"),
            1,
            "promoted: {promoted_is_shardis}"
        );
        assert_eq!(num(&mut ac, "sync_full"), 0);
    }
}

/// WAIT counts the replicas that acknowledged; a write acknowledged by WAIT survives
/// the master's SIGKILL on the promoted replica.
#[test]
fn wait_counts_acknowledgements_and_acknowledged_writes_survive() {
    let master = shardis(3, &[]);
    let r1 = redis(&[]);
    let r2 = shardis(2, &[]);
    follow(&r1, &master);
    follow(&r2, &master);
    let mut m = master.raw();
    assert_eq!(show(&m.cmd(&["SET", "precious", "1"])), "+OK");
    assert_eq!(show(&m.cmd(&["WAIT", "2", "5000"])), ":2");
    // Three cannot answer: the timeout ends the wait with the two that did.
    assert_eq!(show(&m.cmd(&["WAIT", "3", "200"])), ":2");
    assert_eq!(show(&m.cmd(&["WAIT", "0", "0"])), ":2");
    assert_eq!(
        show(&m.cmd(&["WAIT", "1", "-1"])),
        "-ERR timeout is negative"
    );
    let mut master = master;
    unsafe_kill(&mut master);
    let mut c = r2.raw();
    assert_eq!(show(&c.cmd(&["REPLICAOF", "NO", "ONE"])), "+OK");
    assert_eq!(show(&c.cmd(&["GET", "precious"])), "$\"1\"");
    assert_eq!(show(&c.cmd(&["SET", "after", "1"])), "+OK");
}

/// SIGKILL, as a crash: nothing is flushed or said to the replicas.
fn unsafe_kill(s: &mut Server) {
    let pid = s.pid() as i32;
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill runs");
    s.wait_exit(Duration::from_secs(5));
}

/// What a replica says and refuses, beside a redis-server replica in the same state.
#[test]
fn replicas_refuse_writes_and_report_their_role_as_redis() {
    let master = shardis(2, &[]);
    let shardis_replica = shardis(2, &[]);
    let redis_replica = redis(&[]);
    follow(&shardis_replica, &master);
    follow(&redis_replica, &master);
    let (mut s, mut r) = (shardis_replica.raw(), redis_replica.raw());
    for argv in [
        vec!["SET", "k", "v"],
        vec!["ROLE"],
        vec!["REPLCONF", "nonsense", "1"],
        vec!["REPLCONF", "listening-port"],
        vec!["WAIT", "1", "10"],
        vec!["REPLICAOF", "127.0.0.1", "x"],
        vec!["REPLICAOF", "127.0.0.1", "70000"],
    ] {
        let (a, b) = (s.cmd(&argv), r.cmd(&argv));
        let (a, b) = (show(&a), show(&b));
        if argv[0] == "ROLE" {
            // Host and port are the same master; the offset may differ by a PING.
            assert!(a.starts_with("*[$\"slave\", $\"127.0.0.1\""), "{a}");
            assert!(b.starts_with("*[$\"slave\", $\"127.0.0.1\""), "{b}");
            continue;
        }
        assert_eq!(a, b, "{argv:?}");
    }
    for field in [
        "role",
        "master_host",
        "master_port",
        "master_link_status",
        "slave_read_only",
    ] {
        assert_eq!(
            info_field(&mut s, field),
            info_field(&mut r, field),
            "{field}"
        );
    }
    let mut m = master.raw();
    assert_eq!(num(&mut m, "connected_slaves"), 2);
    let slave0 = info_field(&mut m, "slave0");
    assert!(slave0.contains("state=online"), "{slave0}");
    let role = m.cmd(&["ROLE"]);
    let Frame::Array(parts) = role else {
        panic!("ROLE: {}", show(&role))
    };
    assert_eq!(show(&parts[0]), "$\"master\"");
    let Frame::Array(replicas) = &parts[2] else {
        panic!("ROLE replicas")
    };
    assert_eq!(replicas.len(), 2);
    // The master's own connection to each replica shows as a replica in CLIENT LIST.
    let list = show(&m.cmd(&["CLIENT", "LIST", "TYPE", "replica"]));
    assert_eq!(list.matches("flags=S").count(), 2, "{list}");
}

/// A master that is not there, then a wrong password: the link stays down, the replica
/// keeps its data and answers, and the log says why.
#[test]
fn a_missing_master_or_a_wrong_password_leaves_the_replica_serving() {
    let replica = shardis(2, &[]);
    let mut c = replica.raw();
    c.cmd(&["SET", "kept", "1"]);
    let nobody = common::free_port().to_string();
    assert_eq!(show(&c.cmd(&["REPLICAOF", "127.0.0.1", &nobody])), "+OK");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(info_field(&mut c, "master_link_status"), "down");
    assert_eq!(show(&c.cmd(&["GET", "kept"])), "$\"1\"");
    let master = shardis(2, &["--requirepass", "right"]);
    c.cmd(&["CONFIG", "SET", "masterauth", "wrong"]);
    let port = master.port.to_string();
    assert_eq!(show(&c.cmd(&["REPLICAOF", "127.0.0.1", &port])), "+OK");
    assert!(common::wait_until(Duration::from_secs(5), || {
        replica.log_text().contains("Unable to AUTH to MASTER")
    }));
    assert_eq!(info_field(&mut c, "master_link_status"), "down");
    assert_eq!(show(&c.cmd(&["GET", "kept"])), "$\"1\"");
    c.cmd(&["CONFIG", "SET", "masterauth", "right"]);
    assert!(common::wait_until(Duration::from_secs(10), || {
        info_field(&mut c, "master_link_status") == "up"
    }));
    // The master's data set replaced ours.
    assert_eq!(show(&c.cmd(&["GET", "kept"])), "$-1 (nil)");
    // Unknown history: a PSYNC with a made-up replid gets a full sync.
    let mut m = master.raw();
    m.cmd(&["AUTH", "right"]);
    let reply = m.cmd(&["PSYNC", &"f".repeat(40), "100"]);
    assert!(show(&reply).starts_with("+FULLRESYNC"), "{}", show(&reply));
    let mut i = master.raw();
    i.cmd(&["AUTH", "right"]);
    assert_eq!(num(&mut i, "sync_partial_err"), 1);
}

/// redis-cli --rdb takes a snapshot over the replication protocol; redis-cli --replica
/// prints the stream.
#[test]
fn redis_cli_rdb_and_replica_modes_work() {
    let master = shardis(3, &[]);
    write_load(&master, 0, 20);
    // The file loads into redis-server with the same data.
    let (copy, dir) = cli_rdb_into_redis(&master, "--rdb");
    assert_in_sync_data(&master, &copy);
    let _ = std::fs::remove_dir_all(&dir);

    let mut child = std::process::Command::new("redis-cli")
        .args(["-p", &master.port.to_string(), "--replica"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("redis-cli runs");
    // redis-cli takes an empty RDB (`REPLCONF rdb-filter-only ""`), waits a second
    // and then prints what the stream brings.
    let stdout = child.stdout.take().expect("piped");
    let (lines, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines.send(line);
        }
    });
    let mut m = master.raw();
    let mut text = String::new();
    let printed = wait_until(Duration::from_secs(20), || {
        m.cmd(&["SET", "seen-by-cli", "1"]);
        text.extend(seen.try_iter().map(|l| l + "\n"));
        text.contains("\"SET\",\"seen-by-cli\",\"1\"")
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(printed, "{text}");
}

/// Same DEBUG DIGEST (no replication link between them).
fn assert_in_sync_data(a: &Server, b: &Server) {
    let (x, y) = (
        show(&a.raw().cmd(&["DEBUG", "DIGEST"])),
        show(&b.raw().cmd(&["DEBUG", "DIGEST"])),
    );
    assert_eq!(x, y);
}

/// PUBLISH on a master reaches the subscribers of its replicas, both ways; a replica
/// answers HELLO with `role replica`.
#[test]
fn publish_reaches_subscribers_on_replicas() {
    for shardis_master in [true, false] {
        let (master, replica) = master_and_replica(shardis_master);
        follow(&replica, &master);
        let mut sub = replica.raw();
        sub.cmd(&["SUBSCRIBE", "news"]);
        master.raw().cmd(&["PUBLISH", "news", "hello"]);
        let got = show(&sub.read_frame());
        assert_eq!(
            got, "*[$\"message\", $\"news\", $\"hello\"]",
            "master is Shardis: {shardis_master}"
        );
    }
    let master = redis(&[]);
    let replica = shardis(2, &[]);
    follow(&replica, &master);
    let hello = show(&replica.raw().cmd(&["HELLO", "3"]));
    assert!(hello.contains("$\"role\" => $\"replica\""), "{hello}");
}

/// `min-replicas-to-write`: writes get -NOREPLICAS until enough replicas acknowledge
/// within `min-replicas-max-lag`, as from Redis.
#[test]
fn min_replicas_to_write_refuses_writes_as_redis() {
    let (s, r) = (shardis(2, &[]), redis(&[]));
    for server in [&s, &r] {
        let mut c = server.raw();
        c.cmd(&["CONFIG", "SET", "min-replicas-to-write", "1"]);
    }
    let (mut a, mut b) = (s.raw(), r.raw());
    for argv in [vec!["SET", "k", "v"], vec!["GET", "k"]] {
        assert_eq!(show(&a.cmd(&argv)), show(&b.cmd(&argv)), "{argv:?}");
    }
    let replica = redis(&[]);
    follow(&replica, &s);
    assert!(common::wait_until(Duration::from_secs(5), || {
        show(&a.cmd(&["SET", "k", "v"])) == "+OK"
    }));
}

/// The replication id and offset saved in the RDB file let a restarted server continue
/// partially: a restarted Shardis master with its redis-server replica, and a restarted
/// Shardis replica with its redis-server master (Redis's restart behaviour).
#[test]
fn a_restart_from_the_rdb_file_continues_partially() {
    // The master restarts.
    let port = common::free_port();
    let debug = ["--enable-debug-command", "yes"];
    let master = Server::shardis_on_port_with(port, 3, &debug);
    let replica = redis(&[]);
    write_load(&master, 0, 30);
    follow(&replica, &master);
    write_load(&master, 30, 30);
    assert_in_sync(&master, &replica);
    assert_eq!(show(&master.raw().cmd(&["SAVE"])), "+OK");
    let (old_id, offset) = {
        let mut m = master.raw();
        (
            info_field(&mut m, "master_replid"),
            num(&mut m, "master_repl_offset"),
        )
    };
    master.crash();
    let master = Server::shardis_on_port_with(port, 3, &debug);
    let mut m = master.raw();
    // As Redis's master: a new history from the file's offset, the file's kept as the
    // previous one, through which the replica continues.
    assert_ne!(info_field(&mut m, "master_replid"), old_id);
    assert_eq!(info_field(&mut m, "master_replid2"), old_id);
    assert_eq!(num(&mut m, "second_repl_offset"), offset + 1);
    assert_eq!(num(&mut m, "master_repl_offset"), offset);
    assert!(common::wait_until(Duration::from_secs(15), || {
        num(&mut m, "connected_slaves") == 1 && info_field(&mut m, "slave0").contains("online")
    }));
    assert_eq!(num(&mut m, "sync_partial_ok"), 1);
    assert_eq!(num(&mut m, "sync_full"), 0);
    write_load(&master, 60, 30);
    assert_in_sync(&master, &replica);

    // The replica restarts.
    let master = redis(&[]);
    let port = common::free_port();
    let replica = Server::shardis_on_port_with(port, 2, &debug);
    write_load(&master, 0, 30);
    follow(&replica, &master);
    write_load(&master, 30, 30);
    assert_in_sync(&master, &replica);
    assert_eq!(show(&replica.raw().cmd(&["SAVE"])), "+OK");
    replica.crash();
    write_load(&master, 60, 30);
    let mport = master.port.to_string();
    let replica = Server::shardis_on_port_with(
        port,
        2,
        &[
            "--enable-debug-command",
            "yes",
            "--replicaof",
            "127.0.0.1",
            &mport,
        ],
    );
    assert_in_sync(&master, &replica);
    let mut m = master.raw();
    assert_eq!(num(&mut m, "sync_partial_ok"), 1);
    assert_eq!(num(&mut m, "sync_full"), 1);
}

/// A replica with `appendonly yes` rewrites its AOF after a full sync, as Redis does:
/// killed, then restarted on its own, it has the master's data, not its old data set
/// with the stream applied since on top of it.
#[test]
fn a_replica_with_the_aof_restarts_with_the_synced_data() {
    let master = redis(&[]);
    write_load(&master, 0, 30);
    let port = common::free_port();
    let args = ["--enable-debug-command", "yes", "--appendonly", "yes"];
    let replica = Server::shardis_on_port_with(port, 2, &args);
    assert_eq!(show(&replica.raw().cmd(&["SET", "stale", "1"])), "+OK");
    follow(&replica, &master);
    write_load(&master, 30, 30);
    assert_in_sync(&master, &replica);
    let mut r = replica.raw();
    assert!(
        common::wait_until(Duration::from_secs(20), || {
            num(&mut r, "aof_rewrites") >= 1
                && num(&mut r, "aof_rewrite_in_progress") == 0
                && num(&mut r, "aof_rewrite_scheduled") == 0
        }),
        "no rewrite after the sync"
    );
    write_load(&master, 60, 30);
    assert_in_sync(&master, &replica);
    replica.crash();
    let replica = Server::shardis_on_port_with(port, 2, &args);
    assert_in_sync_data(&master, &replica);
}

/// `repl-backlog-ttl`: the backlog goes (with a new replication id) that long after the
/// last replica left, on Shardis as on Redis; INFO counts the replication bytes.
#[test]
fn the_backlog_is_freed_after_its_ttl_as_redis() {
    for shardis_master in [true, false] {
        let ttl = ["--repl-backlog-ttl", "1"];
        let master = if shardis_master {
            shardis(2, &ttl)
        } else {
            redis(&ttl)
        };
        let replica = if shardis_master {
            redis(&[])
        } else {
            shardis(2, &[])
        };
        write_load(&master, 0, 10);
        follow(&replica, &master);
        write_load(&master, 10, 10);
        assert_in_sync(&master, &replica);
        let (mut m, mut r) = (master.raw(), replica.raw());
        assert!(num(&mut m, "total_net_repl_output_bytes") > 0);
        assert!(num(&mut r, "total_net_repl_input_bytes") > 0);
        let id = info_field(&mut m, "master_replid");
        assert_eq!(info_field(&mut m, "repl_backlog_active"), "1");
        drop(r);
        drop(replica);
        assert!(
            common::wait_until(Duration::from_secs(10), || {
                info_field(&mut m, "repl_backlog_active") == "0"
            }),
            "master is Shardis: {shardis_master}"
        );
        assert_ne!(info_field(&mut m, "master_replid"), id);
    }
}

/// A fake master for bad input: answers the handshake, then sends `payload` after
/// `+FULLRESYNC` (the RDB part and whatever stream follows), for every connection.
fn fake_master(payload: Vec<u8>) -> (u16, std::thread::JoinHandle<usize>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(false).unwrap();
    let handle = std::thread::spawn(move || {
        let mut served = 0;
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let deadline = std::time::Instant::now() + Duration::from_secs(6);
        while std::time::Instant::now() < deadline {
            let Ok((sock, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            sock.set_nonblocking(false).unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut reader = BufReader::new(sock.try_clone().unwrap());
            let mut w = sock;
            // Each request: *N then N times $len + value; answer by its first word.
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let n: usize = line.trim_start_matches('*').trim().parse().unwrap_or(0);
                let mut words = Vec::new();
                for _ in 0..n {
                    let mut len = String::new();
                    reader.read_line(&mut len).unwrap();
                    let mut v = String::new();
                    reader.read_line(&mut v).unwrap();
                    words.push(v.trim().to_ascii_uppercase());
                }
                match words.first().map(String::as_str) {
                    Some("PING") => w.write_all(b"+PONG\r\n").unwrap(),
                    Some("PSYNC") => {
                        w.write_all(format!("+FULLRESYNC {} 0\r\n", "a".repeat(40)).as_bytes())
                            .unwrap();
                        w.write_all(&payload).unwrap();
                        served += 1;
                        std::thread::sleep(Duration::from_millis(300));
                        break;
                    }
                    _ => w.write_all(b"+OK\r\n").unwrap(),
                }
            }
        }
        served
    });
    (port, handle)
}

/// An RDB whose checksum fails and a stream that is not RESP: the replica logs why,
/// keeps its data (or the master's last good data) and tries again; it never crashes.
#[test]
fn a_bad_rdb_or_a_malformed_stream_is_survived() {
    let replica = shardis(2, &[]);
    let mut c = replica.raw();
    c.cmd(&["SET", "kept", "1"]);
    // An empty RDB with a wrong checksum.
    let mut rdb = b"REDIS0010\xff".to_vec();
    rdb.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    let mut payload = format!("${}\r\n", rdb.len()).into_bytes();
    payload.extend_from_slice(&rdb);
    let (port, fake) = fake_master(payload);
    c.cmd(&["REPLICAOF", "127.0.0.1", &port.to_string()]);
    let tries = fake.join().unwrap();
    assert!(tries >= 2, "the replica tried {tries} times");
    assert!(
        replica.log_text().contains("wrong RDB checksum"),
        "{}",
        replica.log_text()
    );
    assert_eq!(show(&c.cmd(&["GET", "kept"])), "$\"1\"");

    // A good empty RDB (zero checksum: not checked), then bytes that are not RESP.
    let mut rdb = b"REDIS0010\xff".to_vec();
    rdb.extend_from_slice(&[0; 8]);
    let mut payload = format!("${}\r\n", rdb.len()).into_bytes();
    payload.extend_from_slice(&rdb);
    payload.extend_from_slice(b"*1\r\n$4\r\nPING\r\n*2\r\n$x\r\n");
    let (port, fake) = fake_master(payload);
    c.cmd(&["REPLICAOF", "127.0.0.1", &port.to_string()]);
    let tries = fake.join().unwrap();
    assert!(tries >= 2, "the replica tried {tries} times");
    assert!(
        replica
            .log_text()
            .contains("Protocol error from the master"),
        "{}",
        replica.log_text()
    );
    assert_eq!(show(&c.cmd(&["PING"])), "+PONG");
    assert_eq!(show(&c.cmd(&["DBSIZE"])), ":0");
}

/// FAILOVER hands the master's role to a replica without losing writes, both ways with
/// redis-server: a Shardis master to a redis-server replica (our FAILOVER, our PSYNC
/// FAILOVER), and a redis-server master to a Shardis replica (its PSYNC FAILOVER to us).
#[test]
fn failover_swaps_roles_with_redis() {
    for shardis_master in [true, false] {
        let (master, replica) = master_and_replica(shardis_master);
        write_load(&master, 0, 30);
        follow(&replica, &master);
        write_load(&master, 30, 30);
        let (mut m, mut r) = (master.raw(), replica.raw());
        let port = replica.port.to_string();
        let ok = m.cmd(&["FAILOVER", "TO", "127.0.0.1", &port, "TIMEOUT", "10000"]);
        assert_eq!(show(&ok), "+OK", "master is Shardis: {shardis_master}");
        assert!(
            common::wait_until(Duration::from_secs(15), || {
                info_field(&mut r, "role") == "master"
                    && info_field(&mut m, "role") == "slave"
                    && info_field(&mut m, "master_link_status") == "up"
                    && info_field(&mut m, "master_failover_state") == "no-failover"
            }),
            "master is Shardis: {shardis_master}: old master {} / {}, new master {}",
            info_field(&mut m, "role"),
            info_field(&mut m, "master_failover_state"),
            info_field(&mut r, "role")
        );
        // The old master continued from the new one's history; writes resumed there.
        assert_eq!(num(&mut r, "sync_partial_ok"), 1);
        write_load(&replica, 60, 20);
        assert_in_sync(&replica, &master);
    }
}

/// FAILOVER's refusals, beside redis-server in the same states.
#[test]
fn failover_refuses_as_redis() {
    let (s, r) = (shardis(2, &[]), redis(&[]));
    let (mut a, mut b) = (s.raw(), r.raw());
    for argv in [
        vec!["FAILOVER", "ABORT"],
        vec!["FAILOVER"],
        vec!["FAILOVER", "TIMEOUT", "0"],
        vec!["FAILOVER", "TIMEOUT", "x"],
        vec!["FAILOVER", "FORCE"],
        vec!["FAILOVER", "bogus"],
    ] {
        assert_eq!(show(&a.cmd(&argv)), show(&b.cmd(&argv)), "{argv:?}");
    }
    // With a replica each: an unknown target, FORCE without a timeout.
    let (rs, rr) = (redis(&[]), redis(&[]));
    follow(&rs, &s);
    follow(&rr, &r);
    for argv in [
        vec!["FAILOVER", "TO", "127.0.0.1", "1"],
        vec!["FAILOVER", "TO", "127.0.0.1", "1", "FORCE"],
    ] {
        assert_eq!(show(&a.cmd(&argv)), show(&b.cmd(&argv)), "{argv:?}");
    }
    // A replica refuses FAILOVER, and a master refuses PSYNC FAILOVER.
    let argv = ["FAILOVER"];
    assert_eq!(show(&rs.raw().cmd(&argv)), show(&rr.raw().cmd(&argv)));
}

/// Send `sig` (`-STOP`, `-CONT`) to `server`'s process.
fn signal(server: &Server, sig: &str) {
    std::process::Command::new("kill")
        .args([sig, &server.pid().to_string()])
        .status()
        .expect("kill runs");
}

/// A replica that stops reading is cut off at `client-output-buffer-limit replica`
/// (the master's memory stays bounded), then syncs again once it reads.
#[test]
fn a_replica_over_its_output_limit_is_cut_off_and_resyncs() {
    let master = shardis(2, &["--client-output-buffer-limit", "replica 256kb 0 0"]);
    let replica = redis(&[]);
    follow(&replica, &master);
    let signal = |sig: &str| signal(&replica, sig);
    signal("-STOP");
    let big = "x".repeat(10_000);
    let mut w = master.raw();
    // Well past what the sockets' buffers absorb (megabytes on loopback).
    for i in 0..3000 {
        w.cmd(&["SET", &format!("big{}", i % 50), &big]);
        if i % 100 == 0 && master.log_text().contains("overcoming") {
            break;
        }
    }
    assert!(common::wait_until(Duration::from_secs(10), || {
        master
            .log_text()
            .contains("overcoming of output buffer limits")
    }));
    signal("-CONT");
    let mut m = master.raw();
    // Back through a full sync or, if the backlog still holds its offset, a partial one.
    let back = common::wait_until(Duration::from_secs(15), || {
        num(&mut m, "sync_full") + num(&mut m, "sync_partial_ok") == 2
    });
    assert!(
        back,
        "master:\n{}\nreplica:\n{}",
        master.log_text(),
        replica.log_text()
    );
    assert_in_sync(&master, &replica);
}

/// REPLICAOF its own address, and two servers each the replica of the other: every
/// attempt is refused with -NOMASTERLINK (a replica whose link is down does not feed),
/// logged and retried; both keep answering and their data.
#[test]
fn a_replication_loop_only_retries() {
    let a = shardis(2, &[]);
    let mut c = a.raw();
    c.cmd(&["SET", "mine", "1"]);
    let own = a.port.to_string();
    assert_eq!(show(&c.cmd(&["REPLICAOF", "127.0.0.1", &own])), "+OK");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(info_field(&mut c, "master_link_status"), "down");
    assert_eq!(show(&c.cmd(&["GET", "mine"])), "$\"1\"");
    assert!(a.log_text().contains("NOMASTERLINK"), "{}", a.log_text());

    let b = shardis(2, &[]);
    let mut d = b.raw();
    d.cmd(&["SET", "theirs", "1"]);
    let bp = b.port.to_string();
    c.cmd(&["REPLICAOF", "127.0.0.1", &bp]);
    d.cmd(&["REPLICAOF", "127.0.0.1", &own]);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(show(&c.cmd(&["PING"])), "+PONG");
    assert_eq!(show(&d.cmd(&["GET", "theirs"])), "$\"1\"");
}

#[test]
fn keys_expired_on_the_master_leave_the_replica() {
    // With no AOF, the replication feed alone must carry expirations as DELs: the
    // replica holds expiry for good, so without them it keeps the keys forever.
    for (master, replica) in [
        (shardis(2, &[]), shardis(2, &[])),
        (shardis(2, &[]), redis(&[])),
    ] {
        follow(&replica, &master);
        let mut m = master.raw();
        for i in 0..50 {
            m.cmd(&["SET", &format!("t{i}"), "v", "PX", "100"]);
        }
        m.cmd(&["SET", "kept", "v"]);
        let mut r = replica.raw();
        let gone = common::wait_until(Duration::from_secs(20), || {
            r.cmd(&["DBSIZE"]) == Frame::Int(1)
        });
        assert!(gone, "replica DBSIZE {}", show(&r.cmd(&["DBSIZE"])));
        assert_in_sync(&master, &replica);
    }
}

/// A writable replica (`replica-read-only no`) as Redis's: its reads delete nothing;
/// its own clients' writes delete the expired keys they meet (INCR starts again from
/// 0, without the old TTL); and the keys those clients give a TTL, which the master
/// knows nothing of, expire there by themselves. The keys are spread over shards.
#[test]
fn a_writable_replica_expires_what_its_own_clients_write() {
    let master = redis(&[]);
    let mut m = master.raw();
    let writable = ["--replica-read-only", "no"];
    for replica in [shardis(2, &writable), redis(&writable)] {
        assert_eq!(show(&m.cmd(&["FLUSHALL"])), "+OK");
        follow(&replica, &master);
        m.cmd(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
        let keys: Vec<String> = (0..8).map(|i| format!("key{i}")).collect();
        for k in &keys {
            m.cmd(&["SET", k, "5", "PX", "10"]);
        }
        let mut r = replica.raw();
        let arrived = wait_until(Duration::from_secs(10), || {
            r.cmd(&["DBSIZE"]) == Frame::Int(8)
        });
        assert!(arrived, "replica DBSIZE {}", show(&r.cmd(&["DBSIZE"])));
        std::thread::sleep(Duration::from_millis(30));
        let expired_before = num(&mut r, "expired_keys");
        for k in &keys[..4] {
            assert_eq!(show(&r.cmd(&["INCR", k])), ":1", "{k}");
            assert_eq!(show(&r.cmd(&["TTL", k])), ":-1", "{k}");
        }
        for k in &keys[4..] {
            assert_eq!(show(&r.cmd(&["GET", k])), "$-1 (nil)", "{k}");
        }
        assert_eq!(show(&r.cmd(&["DBSIZE"])), ":8");
        assert_eq!(num(&mut r, "expired_keys"), expired_before + 4);
        for i in 0..6 {
            let own = format!("own{i}");
            assert_eq!(show(&r.cmd(&["SET", &own, "v", "PX", "200"])), "+OK");
        }
        assert_eq!(show(&r.cmd(&["SET", "kept", "v", "EX", "100"])), "+OK");
        assert_eq!(show(&r.cmd(&["DBSIZE"])), ":15");
        let own_gone = wait_until(Duration::from_secs(10), || {
            r.cmd(&["DBSIZE"]) == Frame::Int(9)
        });
        assert!(own_gone, "replica DBSIZE {}", show(&r.cmd(&["DBSIZE"])));
        assert_eq!(num(&mut r, "expired_keys"), expired_before + 10);
        assert_eq!(show(&r.cmd(&["EXISTS", "kept"])), ":1");
        m.cmd(&["DEBUG", "SET-ACTIVE-EXPIRE", "1"]);
    }
}

/// Keys that expire while their master is down: the restarted master drops them as it
/// loads its RDB and puts their DELs into its backlog after the file's offset, so its
/// replica, which continues partially and never expires keys itself, loses them too
/// (Redis's `rdbLoad` with `RDBFLAGS_FEED_REPL`). With more DELs than the backlog
/// holds, the replica syncs fully instead, as the overflowing backlog makes Redis's.
#[test]
fn keys_expired_while_the_master_was_down_leave_its_replica() {
    for (expiring, partial) in [(60, true), (1500, false)] {
        let port = common::free_port();
        let flags = [
            "--enable-debug-command",
            "yes",
            "--repl-backlog-size",
            "16384",
        ];
        let master = Server::shardis_on_port_with(port, 2, &flags);
        let replica = redis(&[]);
        follow(&replica, &master);
        let mut m = master.raw();
        m.cmd(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
        for i in 0..expiring {
            m.cmd(&["SELECT", &(i % 3).to_string()]);
            m.cmd(&["SET", &format!("gone:{i}"), "v", "PX", "300"]);
        }
        m.cmd(&["SELECT", "0"]);
        m.cmd(&["SET", "kept", "v"]);
        assert_in_sync(&master, &replica);
        assert_eq!(show(&m.cmd(&["SAVE"])), "+OK");
        let offset = num(&mut m, "master_repl_offset");
        master.crash();
        std::thread::sleep(Duration::from_millis(400));
        let master = Server::shardis_on_port_with(port, 2, &flags);
        let mut m = master.raw();
        assert!(
            common::wait_until(Duration::from_secs(15), || info_field(&mut m, "slave0")
                .contains("online")),
            "{expiring}: the replica never came back"
        );
        let (ok, full) = (num(&mut m, "sync_partial_ok"), num(&mut m, "sync_full"));
        assert_eq!((ok, full), (partial as i64, !partial as i64), "{expiring}");
        if partial {
            assert!(num(&mut m, "master_repl_offset") > offset, "{expiring}");
        }
        let mut r = replica.raw();
        for db in ["0", "1", "2"] {
            r.cmd(&["SELECT", db]);
            let want = Frame::Int((db == "0") as i64);
            let gone = common::wait_until(Duration::from_secs(20), || r.cmd(&["DBSIZE"]) == want);
            assert!(
                gone,
                "{expiring}: replica db {db} DBSIZE {}",
                show(&r.cmd(&["DBSIZE"]))
            );
        }
        assert_in_sync(&master, &replica);
    }
}

/// What a slow replica has yet to be sent, past `repl-backlog-size`, shows in INFO
/// (`mem_clients_slaves`, `mem_not_counted_for_evict`) and makes no key evicted: a
/// `maxmemory` between `used_memory` less that and `used_memory` evicts nothing, on
/// either kind of master.
#[test]
fn a_slow_replica_s_buffer_is_not_counted_for_eviction() {
    let flags = [
        "--client-output-buffer-limit",
        "replica 0 0 0",
        "--repl-backlog-size",
        "1mb",
    ];
    for master in [shardis(2, &flags), redis(&flags)] {
        let replica = redis(&[]);
        follow(&replica, &master);
        let signal = |sig: &str| signal(&replica, sig);
        signal("-STOP");
        let big = "x".repeat(10_000);
        let mut w = master.raw();
        // Well past what the sockets' buffers absorb (megabytes on loopback).
        for i in 0..2000 {
            w.cmd(&["SET", &format!("big{}", i % 50), &big]);
        }
        let not_counted = num(&mut w, "mem_not_counted_for_evict");
        let replicas = num(&mut w, "mem_clients_slaves");
        let total = num(&mut w, "mem_total_replication_buffers");
        assert!(not_counted > 2 << 20, "{not_counted}");
        assert!(replicas >= not_counted, "{replicas} {not_counted}");
        assert!(total > (1 << 20) + not_counted, "{total} {not_counted}");
        let limit = num(&mut w, "used_memory") - not_counted / 2;
        w.cmd(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]);
        w.cmd(&["CONFIG", "SET", "maxmemory", &limit.to_string()]);
        assert_eq!(show(&w.cmd(&["SET", "small", "v"])), "+OK");
        assert_eq!(num(&mut w, "evicted_keys"), 0);
        w.cmd(&["CONFIG", "SET", "maxmemory", "0"]);
        signal("-CONT");
        assert_in_sync(&master, &replica);
    }
}

/// SHUTDOWN on a master with a replica behind waits for it (Redis 7.0's
/// `shutdown-timeout`), pausing writes meanwhile; SHUTDOWN ABORT cancels the wait (the
/// waiting SHUTDOWN gets an error, the paused write runs); once the replica
/// acknowledges everything the master exits with the replica holding every write;
/// past the timeout it exits anyway and logs the lagging replica. A redis-server
/// master goes through the same steps.
#[test]
fn shutdown_waits_for_lagging_replicas_and_can_be_aborted() {
    for shardis_master in [true, false] {
        for replica_resumes in [true, false] {
            let (mut master, replica) = master_and_replica(shardis_master);
            let name = if shardis_master { "shardis" } else { "redis" };
            follow(&replica, &master);
            let mut c = master.raw();
            assert_eq!(show(&c.cmd(&["SET", "a", "1"])), "+OK");
            assert_in_sync(&master, &replica);
            c.cmd(&["CONFIG", "SET", "shutdown-timeout", "60"]);
            signal(&replica, "-STOP");
            assert_eq!(show(&c.cmd(&["SET", "b", "2"])), "+OK");

            // A SHUTDOWN waits for the stopped replica; writes wait too.
            let mut shutting = master.raw();
            shutting.send_cmd(&[b"SHUTDOWN"]);
            assert!(
                wait_until(Duration::from_secs(10), || !info_field(
                    &mut c,
                    "shutdown_in_milliseconds"
                )
                .is_empty()),
                "{name}: no shutdown_in_milliseconds in INFO"
            );
            let mut writer = master.raw();
            let writer_id = show(&writer.cmd(&["CLIENT", "ID"]));
            writer.send_cmd(&[b"SET", b"c", b"3"]);
            let id = writer_id.trim_start_matches(':').to_string();
            assert!(
                wait_until(Duration::from_secs(10), || {
                    let line = show(&c.cmd(&["CLIENT", "LIST", "ID", &id]));
                    common::client_field(&line, "flags") == "b"
                }),
                "{name}: the write was not held"
            );
            // Both count as blocked clients, as Redis counts them.
            assert_eq!(info_field(&mut c, "blocked_clients"), "2", "{name}");
            assert_eq!(show(&c.cmd(&["SHUTDOWN", "ABORT"])), "+OK", "{name}");
            assert_eq!(
                show(&shutting.read_frame()),
                "-ERR Errors trying to SHUTDOWN. Check logs.",
                "{name}"
            );
            assert_eq!(show(&writer.read_frame()), "+OK", "{name}");
            assert_eq!(
                show(&c.cmd(&["SHUTDOWN", "ABORT"])),
                "-ERR No shutdown in progress.",
                "{name}"
            );
            assert_eq!(info_field(&mut c, "shutdown_in_milliseconds"), "", "{name}");

            // Shut down for good: the replica comes back, or the timeout passes.
            if !replica_resumes {
                c.cmd(&["CONFIG", "SET", "shutdown-timeout", "1"]);
            }
            // A new connection: redis-server 7.0.15 fails an assertion (networking.c
            // 'c->argc == 0') on the next command of a client whose SHUTDOWN was
            // aborted.
            let mut shutting = master.raw();
            shutting.send_cmd(&[b"SHUTDOWN", b"NOSAVE"]);
            assert!(
                wait_until(Duration::from_secs(10), || !info_field(
                    &mut c,
                    "shutdown_in_milliseconds"
                )
                .is_empty()),
                "{name}: the second SHUTDOWN does not wait"
            );
            if replica_resumes {
                signal(&replica, "-CONT");
            }
            assert!(
                master.wait_exit(Duration::from_secs(70)).is_some(),
                "{name}: the master did not exit"
            );
            let log = master.log_text();
            let line = |prefix: &str| {
                log.lines()
                    .find_map(|l| l.split_once(prefix).map(|(_, rest)| rest.to_string()))
            };
            if replica_resumes {
                assert_eq!(
                    line("1 of 1 replicas").as_deref(),
                    Some(" are in sync when shutting down."),
                    "{name}: {log}"
                );
                let mut r = replica.raw();
                for (k, v) in [("a", "1"), ("b", "2"), ("c", "3")] {
                    assert_eq!(show(&r.cmd(&["GET", k])), format!("${v:?}"), "{name} {k}");
                }
            } else {
                let lagging = line("Lagging replica 127.0.0.1:").unwrap_or_default();
                assert!(
                    lagging.contains(" behind master, lag=")
                        && lagging.ends_with(", state=online."),
                    "{name}: {log}"
                );
                assert!(
                    log.contains("0 of 1 replicas are in sync when shutting down."),
                    "{name}"
                );
                signal(&replica, "-CONT");
            }
        }
    }
}

/// INFO replication's `min_slaves_good_slaves` appears once `min-replicas-to-write` is
/// set, on a master and on a replica, as redis-server shows it.
#[test]
fn good_replicas_show_as_in_redis() {
    let dead = common::free_port().to_string();
    for server in [shardis(2, &[]), redis(&[])] {
        let mut c = server.raw();
        assert_eq!(info_field(&mut c, "min_slaves_good_slaves"), "");
        c.cmd(&["CONFIG", "SET", "min-replicas-to-write", "1"]);
        assert_eq!(info_field(&mut c, "min_slaves_good_slaves"), "0");
        c.cmd(&["REPLICAOF", "127.0.0.1", &dead]);
        assert_eq!(info_field(&mut c, "min_slaves_good_slaves"), "0");
    }
}

/// A master's `connected_clients` leaves its replicas out (they are
/// `connected_slaves`), as Redis counts them: Redis's SHUTDOWN tests count clients so.
#[test]
fn connected_clients_leaves_replicas_out_as_in_redis() {
    for master in [shardis(2, &[]), redis(&["--repl-diskless-sync-delay", "0"])] {
        let replica = redis(&[]);
        follow(&replica, &master);
        let mut c = master.raw();
        let _other = master.raw();
        assert_eq!(info_field(&mut c, "connected_slaves"), "1");
        assert_eq!(info_field(&mut c, "connected_clients"), "2");
    }
}

/// `master_link_down_since_seconds` is -1 until a link that was up is lost (Redis's
/// `repl_down_since`, which also ages a replica's data for a cluster failover: one
/// that never synced must not look fresh), then counts from the loss; a switch to
/// another unreachable master keeps counting from it.
#[test]
fn link_down_since_counts_from_a_lost_link_as_in_redis() {
    let nobody = common::free_port().to_string();
    for server in [shardis(2, &[]), redis(&[])] {
        let mut c = server.raw();
        c.cmd(&["REPLICAOF", "127.0.0.1", &nobody]);
        std::thread::sleep(Duration::from_millis(1200));
        assert_eq!(info_field(&mut c, "master_link_down_since_seconds"), "-1");
        let master = redis(&[]);
        c.cmd(&["REPLICAOF", "127.0.0.1", &master.port.to_string()]);
        assert!(wait_until(Duration::from_secs(10), || {
            info_field(&mut c, "master_link_status") == "up"
        }));
        assert_eq!(info_field(&mut c, "master_link_down_since_seconds"), "");
        drop(master);
        assert!(wait_until(Duration::from_secs(10), || {
            info_field(&mut c, "master_link_status") == "down"
        }));
        std::thread::sleep(Duration::from_millis(1100));
        c.cmd(&["REPLICAOF", "127.0.0.1", &nobody]);
        let since = num(&mut c, "master_link_down_since_seconds");
        assert!((1..30).contains(&since), "{since}");
        c.cmd(&["REPLICAOF", "NO", "ONE"]);
        c.cmd(&["REPLICAOF", "127.0.0.1", &nobody]);
        assert_eq!(info_field(&mut c, "master_link_down_since_seconds"), "-1");
    }
}

/// A read-only script past `busy-reply-threshold` on a replica: the master's writes
/// wait for it and apply once SCRIPT KILL ends it, on Shardis as on Redis (which stops
/// reading its master meanwhile). Shardis used to answer them `-BUSY` and lose them.
/// A full sync whose data arrives during such a script waits for it to flush, and
/// SCRIPT KILL still ends the script although the replica is loading.
#[test]
fn a_busy_script_on_a_replica_delays_the_master_s_writes_and_loses_none() {
    let master = redis(&["--repl-diskless-sync-delay", "1"]);
    write_load(&master, 0, 10);
    let busy = ["--busy-reply-threshold", "100"];
    let (shardis_replica, redis_replica) = (shardis(2, &busy), redis(&busy));
    let spin: [&[u8]; 3] = [b"EVAL_RO", b"local i = 0 while true do i = i + 1 end", b"0"];
    let start_spinning = |replica: &Server| {
        let mut script = replica.raw();
        script.send_cmd(&spin);
        script
    };
    let kill = |replica: &Server, mut script: RawConn| {
        assert_eq!(show(&replica.raw().cmd(&["SCRIPT", "KILL"])), "+OK");
        let end = show(&script.read_frame());
        assert!(end.contains("Script killed by user"), "{end}");
    };

    // The full sync: the master sends its data a second after the REPLICAOF.
    let mut r = shardis_replica.raw();
    let port = master.port.to_string();
    assert_eq!(show(&r.cmd(&["REPLICAOF", "127.0.0.1", &port])), "+OK");
    let script = start_spinning(&shardis_replica);
    let waiting = wait_until(Duration::from_secs(20), || {
        shardis_replica.log_text().contains("Flushing old data")
    });
    assert!(waiting, "the full sync never began");
    kill(&shardis_replica, script);
    assert_in_sync(&master, &shardis_replica);

    follow(&redis_replica, &master);
    for replica in [&shardis_replica, &redis_replica] {
        let script = start_spinning(replica);
        let mut probe = replica.raw();
        let busy = wait_until(Duration::from_secs(10), || {
            show(&probe.cmd(&["PING"])).starts_with("-BUSY")
        });
        assert!(busy, "the script never became busy");
        write_load(&master, 10, 10);
        std::thread::sleep(Duration::from_millis(200));
        kill(replica, script);
        assert_in_sync(&master, replica);
    }
}

/// A command from the master that fails on the replica (here, the replica's own data
/// differs: it accepts writes) is logged and counted as Redis does, alone and inside
/// a transaction; with `propagation-error-behavior panic` a read-only replica stops.
#[test]
fn errors_the_master_s_commands_get_are_logged_and_counted_as_in_redis() {
    let master = redis(&[]);
    let writable = ["--replica-read-only", "no"];
    let mut replicas = [shardis(2, &writable), redis(&writable)];
    for replica in &replicas {
        follow(replica, &master);
        assert_eq!(show(&replica.raw().cmd(&["SET", "x", "local"])), "+OK");
    }
    let mut m = master.raw();
    m.cmd(&["LPUSH", "x", "a"]);
    m.cmd(&["MULTI"]);
    m.cmd(&["SET", "y", "1"]);
    m.cmd(&["LPUSH", "x", "b"]);
    m.cmd(&["EXEC"]);
    let line = |cmd: &str| {
        format!(
            "== CRITICAL == This replica is sending an error to its master: \
             '-WRONGTYPE Operation against a key holding the wrong kind of value' \
             after processing the command '{cmd}'"
        )
    };
    for replica in &replicas {
        let mut r = replica.raw();
        let counted = wait_until(Duration::from_secs(10), || {
            num(&mut r, "unexpected_error_replies") == 2
        });
        assert!(
            counted,
            "{}",
            info_field(&mut r, "unexpected_error_replies")
        );
        let log = replica.log_text();
        for cmd in ["lpush", "exec"] {
            assert_eq!(log.matches(&line(cmd)).count(), 1, "{log}");
        }
        assert_eq!(show(&r.cmd(&["GET", "y"])), "$\"1\"");
        let panic = [
            "propagation-error-behavior",
            "panic",
            "replica-read-only",
            "yes",
        ];
        assert_eq!(
            show(&r.cmd(&[&["CONFIG", "SET"][..], &panic].concat())),
            "+OK"
        );
    }
    m.cmd(&["LPUSH", "x", "c"]);
    for replica in &mut replicas {
        let stopped = replica.wait_exit(Duration::from_secs(10));
        assert!(stopped.is_some(), "the replica goes on after the error");
        assert!(replica
            .log_text()
            .contains("panicked sending an error to its master"));
    }
}

/// Run `redis-cli <mode> FILE` (`--rdb`, `--functions-rdb`) against `server` and start
/// a redis-server on the file; the copy and the directory to remove.
fn cli_rdb_into_redis(server: &Server, mode: &str) -> (Server, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "shardis-cli-rdb-{}-{}",
        std::process::id(),
        server.port
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &server.port.to_string(), mode])
        .arg(dir.join("dump.rdb"))
        .output()
        .expect("redis-cli runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{mode}: {err}");
    let copy = redis(&["--dir", dir.to_str().unwrap(), "--dbfilename", "dump.rdb"]);
    (copy, dir)
}

/// `redis-cli --functions-rdb` (`REPLCONF rdb-filter-only functions`): an RDB with the
/// function libraries and no keys, which redis-server loads; the option's errors as
/// Redis's.
#[test]
fn redis_cli_functions_rdb_works_as_with_redis() {
    let library = "#!lua name=cli\nredis.register_function('one', function() return 1 end)";
    for server in [shardis(2, &[]), redis(&[])] {
        let mut c = server.raw();
        write_load(&server, 0, 5);
        assert_eq!(show(&c.cmd(&["FUNCTION", "LOAD", library])), "$\"cli\"");
        for (value, reply) in [
            ("bogus", "-ERR Unsupported rdb-filter-only option: bogus"),
            ("\"\"", "-ERR Unsupported rdb-filter-only option: "),
            ("functions \"x", "-ERR Missing rdb-filter-only values"),
            ("", "+OK"),
            ("FUNCTIONS", "+OK"),
        ] {
            let got = show(&c.cmd(&["REPLCONF", "rdb-filter-only", value]));
            assert_eq!(got, reply, "{value}");
        }
        let filtered_without_eof = c.cmd(&["SYNC"]);
        assert_eq!(
            show(&filtered_without_eof),
            "-ERR Filtered replica requires EOF capability"
        );
        let (copy, dir) = cli_rdb_into_redis(&server, "--functions-rdb");
        let mut r = copy.raw();
        assert_eq!(show(&r.cmd(&["DBSIZE"])), ":0");
        assert_eq!(show(&r.cmd(&["FCALL", "one", "0"])), ":1");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A replica that syncs while the master's stream last selected another db than 0
/// gets the next command in that db: its RDB says `repl-stream-db` 0, so the stream
/// names the db again (Redis's `slaveseldb = -1`). Shardis used to go on without a
/// SELECT, and the new replica wrote into db 0.
#[test]
fn a_replica_synced_while_the_stream_is_in_another_db_follows_it() {
    let master = shardis(2, &[]);
    let (first, second) = (redis(&[]), redis(&[]));
    follow(&first, &master);
    let mut m = master.raw();
    m.cmd(&["SELECT", "3"]);
    assert_eq!(show(&m.cmd(&["SET", "before", "1"])), "+OK");
    follow(&second, &master);
    assert_eq!(show(&m.cmd(&["SET", "after", "1"])), "+OK");
    assert_in_sync(&master, &first);
    assert_in_sync(&master, &second);
}

/// The master's stream names a db once: a replica whose link is cut and continues
/// partially, or that restarts from its RDB and continues, must go on in that db, as
/// Redis's cached master does (Shardis's went back to db 0 and wrote there); and a
/// sibling that continues from the promoted replica follows its writes in db 0.
#[test]
fn a_continued_link_goes_on_in_the_db_the_stream_selected() {
    let master = redis(&[]);
    let port = common::free_port();
    let dir = std::env::temp_dir().join(format!("shardis-repl-db-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let args = [
        "--enable-debug-command",
        "yes",
        "--dir",
        dir.to_str().unwrap(),
    ];
    let replica = Server::shardis_on_port_with(port, 2, &args);
    follow(&replica, &master);
    let mut m = master.raw();
    m.cmd(&["SELECT", "3"]);
    assert_eq!(show(&m.cmd(&["SET", "before", "1"])), "+OK");
    assert_in_sync(&master, &replica);
    let syncs = num(&mut master.raw(), "sync_partial_ok");
    replica.raw().cmd(&["CLIENT", "KILL", "TYPE", "master"]);
    assert!(wait_until(Duration::from_secs(10), || {
        num(&mut master.raw(), "sync_partial_ok") == syncs + 1
    }));
    assert_eq!(show(&m.cmd(&["SET", "after-cut", "1"])), "+OK");
    assert_in_sync(&master, &replica);

    // A restart from the RDB, configured as the master's replica, continues
    // partially, in db 3 still. (Started as a master instead, it takes a new history
    // and a later REPLICAOF syncs fully, as a redis-server replica does.)
    assert_eq!(show(&replica.raw().cmd(&["SAVE"])), "+OK");
    drop(replica);
    assert_eq!(show(&m.cmd(&["SET", "while-down", "1"])), "+OK");
    let mport = master.port.to_string();
    let mut restarted = args.to_vec();
    restarted.extend(["--replicaof", "127.0.0.1", &mport]);
    let replica = Server::shardis_on_port_with(port, 2, &restarted);
    assert!(wait_until(Duration::from_secs(30), || {
        info_field(&mut replica.raw(), "master_link_status") == "up"
    }));
    assert_eq!(num(&mut master.raw(), "sync_partial_ok"), syncs + 2);
    assert_eq!(show(&m.cmd(&["SET", "after-restart", "1"])), "+OK");
    assert_in_sync(&master, &replica);

    // Promoted, with a sibling that continues from it: its first write names db 0.
    let sibling = redis(&[]);
    follow(&sibling, &master);
    assert_in_sync(&master, &sibling);
    replica.raw().cmd(&["REPLICAOF", "NO", "ONE"]);
    follow(&sibling, &replica);
    let mut r = replica.raw();
    assert_eq!(show(&r.cmd(&["SET", "after-promotion", "1"])), "+OK");
    assert_in_sync(&replica, &sibling);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A chained replica syncing from a Shardis replica while the stream is in db 3: the
/// replica passes its master's stream on unchanged, with no new SELECT, so its RDB
/// must say `repl-stream-db` 3 (Redis's replicas write their master's db there), and
/// both a redis-server and a Shardis sub-replica go on in db 3.
#[test]
fn a_chained_replica_synced_mid_stream_goes_on_in_the_right_db() {
    let master = redis(&[]);
    let middle = shardis(2, &[]);
    follow(&middle, &master);
    let mut m = master.raw();
    m.cmd(&["SELECT", "3"]);
    assert_eq!(show(&m.cmd(&["SET", "before", "1"])), "+OK");
    assert_in_sync(&master, &middle);
    let (redis_end, shardis_end) = (redis(&[]), shardis(2, &[]));
    for end in [&redis_end, &shardis_end] {
        follow(end, &middle);
        assert!(show(&m.cmd(&["INCR", "counter"])).starts_with(':'));
    }
    for end in [&redis_end, &shardis_end] {
        assert_in_sync(&master, end);
    }
}

/// A replica whose last background save failed (`stop-writes-on-bgsave-error`) stops
/// at its master's next write, as Redis's panics, rather than take what it cannot
/// save; with `replica-ignore-disk-write-errors yes` it applies it and logs that it
/// did. Before, the write was applied without a word.
#[test]
fn a_replica_that_cannot_save_stops_at_its_master_s_write_as_redis() {
    let master = redis(&[]);
    for ignore in ["no", "yes"] {
        let extra = [
            "--save",
            "3600 1",
            "--replica-ignore-disk-write-errors",
            ignore,
            "--enable-protected-configs",
            "yes",
        ];
        let mut replicas = [shardis(2, &extra), redis(&extra)];
        for replica in &replicas {
            follow(replica, &master);
            let mut r = replica.raw();
            // A directory for its saves, gone before the save.
            let gone = replica.dir().join("gone");
            std::fs::create_dir_all(&gone).unwrap();
            let set_dir = r.cmd(&["CONFIG", "SET", "dir", gone.to_str().unwrap()]);
            assert_eq!(show(&set_dir), "+OK", "{:?}", replica.kind);
            std::fs::remove_dir_all(&gone).unwrap();
            r.cmd(&["BGSAVE"]);
            let failed = wait_until(Duration::from_secs(10), || {
                info_field(&mut r, "rdb_last_bgsave_status") == "err"
            });
            assert!(failed, "{}", info_field(&mut r, "rdb_last_bgsave_status"));
        }
        let mut m = master.raw();
        m.cmd(&["PING"]);
        m.cmd(&["SET", "x", ignore]);
        stopped_or_applied(&mut replicas, ignore);
    }
}

/// The same for a replica whose AOF cannot be written (a full disk, here a file size
/// limit): Redis's replica stops at its master's next write; with
/// `replica-ignore-disk-write-errors yes` it applies it and logs that it did. Before,
/// each of those writes was refused with `-MISCONF` and lost: the replica went on
/// with data its master no longer had.
#[test]
fn a_replica_that_cannot_write_its_aof_stops_at_its_master_s_write_as_redis() {
    let master = redis(&[]);
    let big = "x".repeat(1 << 20);
    for ignore in ["no", "yes"] {
        let extra = [
            "--appendonly",
            "yes",
            "--replica-ignore-disk-write-errors",
            ignore,
        ];
        let mut replicas =
            Server::with_file_size_limit(256 << 10, || [shardis(2, &extra), redis(&extra)]);
        for replica in &replicas {
            follow(replica, &master);
        }
        // A 1 MiB value: its AOF record cannot be written past the limit.
        let mut m = master.raw();
        m.cmd(&["SET", "big", &big]);
        for replica in &replicas {
            let mut r = replica.raw();
            let failed = wait_until(Duration::from_secs(10), || {
                info_field(&mut r, "aof_last_write_status") == "err"
            });
            assert!(failed, "{:?}: {}", replica.kind, replica.log_text());
        }
        m.cmd(&["SET", "x", ignore]);
        stopped_or_applied(&mut replicas, ignore);
    }
}

/// After its master's `SET x <ignore>`, a replica that cannot write to disk has
/// stopped (`replica-ignore-disk-write-errors no`) or applied it and said so in its
/// log (`yes`), as Redis's.
fn stopped_or_applied(replicas: &mut [Server], ignore: &str) {
    for replica in replicas.iter_mut() {
        let kind = format!("{:?} replica, ignore {ignore}", replica.kind);
        if ignore == "no" {
            let stopped = replica.wait_exit(Duration::from_secs(10));
            assert!(stopped.is_some(), "{kind}: goes on after the write");
            let log = replica.log_text();
            assert!(
                log.contains("Replica was unable to write command to disk."),
                "{kind}: {log}"
            );
        } else {
            let mut r = replica.raw();
            let applied = wait_until(Duration::from_secs(10), || {
                show(&r.cmd(&["GET", "x"])) == "$\"yes\""
            });
            assert!(applied, "{kind}");
            let log = replica.log_text();
            let line = "Replica is applying a command even though it is unable to write to disk.";
            assert!(log.contains(line), "{kind}: {log}");
        }
    }
}

/// INFO's instantaneous rates are the cron's samples, as Redis's: nonzero while
/// commands flow even with no INFO shortly before (a dashboard scrapes every 15 s),
/// the replication rates on the master (stream out) and its replica (stream in), and
/// back near zero soon after the load stops. Shardis master and replica, then Redis's.
#[test]
fn instantaneous_rates_follow_the_load_as_redis() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    for shardis_pair in [true, false] {
        let (master, replica) = if shardis_pair {
            (shardis(2, &[]), shardis(2, &[]))
        } else {
            (redis(&[]), redis(&[]))
        };
        follow(&replica, &master);
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let stop = stop.clone();
            let mut c = master.raw();
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let k = format!("k{}", i % 100);
                    c.cmd(&["SET", &k, "a value of some length"]);
                    i += 1;
                }
            })
        };
        std::thread::sleep(Duration::from_millis(1500));
        let rate = |c: &mut RawConn, field: &str| -> f64 {
            info_field(c, field)
                .parse()
                .unwrap_or_else(|_| panic!("{field} is not a number"))
        };
        let (mut m, mut r) = (master.raw(), replica.raw());
        let who = if shardis_pair { "shardis" } else { "redis" };
        for field in [
            "instantaneous_ops_per_sec",
            "instantaneous_input_kbps",
            "instantaneous_output_kbps",
            "instantaneous_output_repl_kbps",
        ] {
            assert!(rate(&mut m, field) > 0.0, "{who} master {field} under load");
        }
        assert!(
            rate(&mut r, "instantaneous_input_repl_kbps") > 0.0,
            "{who} replica's input_repl_kbps under load"
        );
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        // Left: these INFOs (two a second) and the replica's acknowledgement every
        // second.
        let fell = (0..20).any(|_| {
            std::thread::sleep(Duration::from_millis(500));
            rate(&mut m, "instantaneous_ops_per_sec") < 10.0
                && rate(&mut m, "instantaneous_output_repl_kbps") < 0.1
                && rate(&mut r, "instantaneous_input_repl_kbps") < 0.1
        });
        assert!(fell, "{who}: the rates fall back when the load stops");
        // CONFIG RESETSTAT zeroes the replication totals and sync counters too.
        assert_eq!(num(&mut m, "sync_full"), 1, "{who}");
        m.cmd(&["CONFIG", "RESETSTAT"]);
        assert_eq!(num(&mut m, "total_net_repl_output_bytes"), 0, "{who}");
        assert_eq!(num(&mut m, "sync_full"), 0, "{who}");
    }
}

/// A replica's view of a server's replication stream (what the Redis test suite's
/// `attach_to_replication_stream` reads): SYNC, the RDB skipped, then the commands.
struct ReplStream {
    stream: std::net::TcpStream,
    buf: Vec<u8>,
}

impl ReplStream {
    fn attach(server: &Server) -> ReplStream {
        use std::io::Write;
        let mut c = server.raw();
        // A disk-based sync answers at once (diskless waits `repl-diskless-sync-delay`).
        c.cmd(&["CONFIG", "SET", "repl-diskless-sync", "no"]);
        c.close();
        let mut stream = std::net::TcpStream::connect(server.addr()).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        stream.write_all(b"SYNC\r\n").expect("SYNC");
        let mut s = ReplStream {
            stream,
            buf: Vec::new(),
        };
        // Newlines keep the link alive while the file is made; then `$<len>\r\n<rdb>`.
        loop {
            while s.buf.first() == Some(&b'\n') {
                s.buf.remove(0);
            }
            if let Some(end) = s.buf.windows(2).position(|w| w == b"\r\n") {
                let len: usize = String::from_utf8_lossy(&s.buf[1..end])
                    .parse()
                    .expect("$len");
                while s.buf.len() < end + 2 + len {
                    s.fill();
                }
                s.buf.drain(..end + 2 + len);
                return s;
            }
            s.fill();
        }
    }

    fn fill(&mut self) {
        use std::io::Read;
        let mut tmp = [0u8; 16384];
        let n = self
            .stream
            .read(&mut tmp)
            .expect("read the replication stream");
        assert!(n > 0, "the server closed the replication link");
        self.buf.extend_from_slice(&tmp[..n]);
    }

    /// The next command of the stream other than PING, as one line.
    fn next(&mut self) -> String {
        loop {
            if let Some((f, used)) = common::parse_frame(&self.buf) {
                self.buf.drain(..used);
                let line = show(&f);
                if !line.eq_ignore_ascii_case("[\"PING\"]") {
                    return line;
                }
                continue;
            }
            self.fill();
        }
    }
}

/// What a write propagates, read from the replication stream of both servers: GETDEL
/// as DEL, GETSET as SET, SET ... GET without its GET, any SET with an expiry as SET
/// ... PXAT, a transaction's SELECT before its MULTI (Redis's
/// `propagatePendingCommands`), PUBLISH in its client's db, each compared with
/// redis-server.
#[test]
fn writes_reach_the_replication_stream_as_redis_sends_them() {
    let shardis = Server::shardis(2);
    let redis = Server::redis();
    let writes: &[&[&str]] = &[
        &["SELECT", "3"],
        &["SET", "foo", "bar"],
        &["GETDEL", "foo"],
        &["GETDEL", "foo"],
        &["GETSET", "g", "1"],
        &["SET", "s", "v", "GET"],
        &["SET", "s", "w", "NX", "GET"],
        &["MULTI"],
        &["SET", "a{t}", "1"],
        &["SELECT", "4"],
        &["SET", "b{t}", "2"],
        &["EXEC"],
        &["SELECT", "5"],
        &["PUBLISH", "ch", "msg"],
        // A PUBLISH in a transaction goes with it, in its place.
        &["MULTI"],
        &["SET", "p{t}", "1"],
        &["PUBLISH", "ch", "in-multi"],
        &["SET", "q{t}", "2"],
        &["EXEC"],
        &["MULTI"],
        &["PUBLISH", "ch", "alone"],
        &["EXEC"],
        &[
            "EVAL",
            "redis.call('set', KEYS[1], 3) redis.call('publish', 'ch', 'lua') return 1",
            "1",
            "r{t}",
        ],
        &["SET", "k", "v", "PXAT", "99999999999999"],
        &["SET", "k", "v", "XX", "EXAT", "99999999999"],
        &["CONFIG", "SET", "lazyfree-lazy-user-del", "yes"],
        &["SET", "foo", "bar"],
        &["GETDEL", "foo"],
        &["SET", "end", "1"],
    ];
    let mut seen = Vec::new();
    for server in [&shardis, &redis] {
        let mut stream = ReplStream::attach(server);
        let mut c = server.raw();
        for argv in writes {
            c.cmd(argv);
        }
        let mut lines = Vec::new();
        loop {
            let line = stream.next();
            let last = line.contains("\"end\"");
            lines.push(line);
            if last {
                break;
            }
        }
        seen.push(lines.join("\n"));
    }
    assert_eq!(seen[0], seen[1], "shardis's stream, then redis's");
}

/// A client blocked on a key that a MULTI pushes to and lets expire (Redis's
/// tests/unit/type/list.tcl): the key's DEL reaches the stream after the
/// transaction's block, never before it, or a replica would keep the key. Shardis's
/// transaction runs from a core other than the key's, so the key's shard serves other
/// work while the transaction still holds the key.
#[test]
fn a_key_expired_under_a_transaction_is_deleted_after_its_block() {
    let debug = ["--enable-debug-command", "yes"];
    let shardis = Server::shardis_with(2, &debug);
    let redis = Server::redis_with(&debug);
    let other_core = 1 - common::shard_of(b"k", 2);
    let mut seen = Vec::new();
    for (server, writer) in [
        (&shardis, common::conn_on(&shardis, other_core)),
        (&redis, redis.raw()),
    ] {
        let mut w = writer;
        w.cmd(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
        let mut stream = ReplStream::attach(server);
        let mut blocked = server.raw();
        blocked.send_cmd(&[b"BRPOP", b"k", b"0"]);
        common::await_blocked(&mut w, 1);
        for argv in [
            &["MULTI"][..],
            &["RPUSH", "k", "hello"],
            &["PEXPIRE", "k", "100"],
            &["DEBUG", "SLEEP", "0.2"],
            &["EXEC"],
        ] {
            w.cmd(argv);
        }
        // The blocked client stays blocked: the key expired before it could pop.
        assert_eq!(w.cmd(&["EXISTS", "k"]), Frame::Int(0));
        let mut names = Vec::new();
        loop {
            let line = stream.next();
            // The command and its key (PEXPIREAT's deadline differs).
            let short: Vec<&str> = line.split(", ").take(2).collect();
            names.push(short.join(" "));
            if line.contains("DEL") || line.contains("RPOP") {
                break;
            }
        }
        seen.push(names.join("\n"));
        w.cmd(&["DEBUG", "SET-ACTIVE-EXPIRE", "1"]);
    }
    assert_eq!(seen[0], seen[1], "shardis's stream, then redis's");
}
