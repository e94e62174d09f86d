//! Cluster mode as users meet it: `redis-cli --cluster create` over Shardis nodes (and
//! over a mix of Shardis and redis-server 7.0 nodes, which only works if the bus
//! speaks Redis's binary format), clients following MOVED (redis-cli `-c`, redis-py's
//! RedisCluster), failure detection across both kinds of node, nodes.conf across a
//! restart, Redis's replies and errors for the CLUSTER commands, a bus port that
//! refuses what is not cluster traffic, and `redis-cli --cluster reshard` moving
//! slots and their keys between both kinds of node while a client writes.
//!
//! The one idea to hold: every check reads what a user or a tool reads (CLUSTER
//! NODES / INFO / SLOTS, redis-cli's own verdicts, client results), never Shardis's
//! internals; every node gets its own bus port from the harness (`--cluster-port`),
//! so port + 10000 never collides with another test. Waits are polls.

mod common;

use common::{free_port, query_port, shown, wait_until, Server};
use std::process::Command;
use std::time::Duration;

/// Cluster mode on a bus port of its own (given, so restarts can reuse it).
fn cluster_flags(bus: &str) -> [&str; 6] {
    [
        "--cluster-enabled",
        "yes",
        "--cluster-port",
        bus,
        "--cluster-node-timeout",
        "2000",
    ]
}

fn shardis_node() -> Server {
    on_a_free_bus_port(|bus| Server::shardis_with(2, &cluster_flags(bus)))
}

fn redis_node() -> Server {
    on_a_free_bus_port(|bus| Server::redis_with(&cluster_flags(bus)))
}

/// Start a node on a bus port found free; another one if that port was taken before
/// the node bound it (another test's connection got it: the harness's own retries
/// change only the client port, so they would all fail alike).
fn on_a_free_bus_port(start: impl Fn(&str) -> Server) -> Server {
    for _ in 0..4 {
        let bus = free_port().to_string();
        let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| start(&bus)));
        if let Ok(server) = started {
            return server;
        }
    }
    start(&free_port().to_string())
}

/// The bus port a node's nodes.conf gives itself (to restart it on the same one: no
/// other test's node is given it from now on).
fn own_bus_port(dir: &std::path::Path) -> String {
    let conf = std::fs::read_to_string(dir.join("nodes.conf")).unwrap();
    let port = conf
        .lines()
        .find(|l| l.contains("myself"))
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|a| a.split('@').nth(1))
        .unwrap()
        .to_string();
    common::reserve_port(port.parse().expect("a port"));
    port
}

/// `redis-cli --cluster create` over `nodes` (masters only); its output.
fn create(nodes: &[&Server]) -> String {
    create_with(nodes, 0)
}

/// `redis-cli --cluster create` with `replicas` replicas per master.
fn create_with(nodes: &[&Server], replicas: usize) -> String {
    let mut cmd = Command::new("redis-cli");
    cmd.args(["--cluster", "create"]);
    for n in nodes {
        cmd.arg(format!("127.0.0.1:{}", n.port));
    }
    cmd.args(["--cluster-replicas", &replicas.to_string()]);
    cmd.arg("--cluster-yes");
    let out = cmd.output().expect("redis-cli runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    text
}

fn cluster_info(port: u16) -> String {
    query_port::<String>(port, None, &["CLUSTER", "INFO"]).unwrap_or_default()
}

fn state_ok(port: u16) -> bool {
    cluster_info(port).contains("cluster_state:ok")
}

/// Waits until every node lists `masters` masters and as many replicas and says the
/// cluster is ok; otherwise fails showing each node's view.
fn await_formed(ports: &[u16], masters: usize) {
    let nodes = |p: u16| query_port::<String>(p, None, &["CLUSTER", "NODES"]).unwrap_or_default();
    let formed = |p: u16| {
        let n = nodes(p);
        n.matches("master").count() == masters
            && n.matches("slave").count() == masters
            && state_ok(p)
    };
    // 60 s, not 30: CI once saw a 6-node formation not done at 30 s (no view was
    // printed then; this message now shows each node's).
    if wait_until(Duration::from_secs(60), || ports.iter().all(|p| formed(*p))) {
        return;
    }
    let views: Vec<String> = ports
        .iter()
        .map(|p| format!("node {p}:\n{}{}", nodes(*p), cluster_info(*p)))
        .collect();
    panic!("the cluster did not form:\n{}", views.join("\n"));
}

fn cli(args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(args)
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The flags of the node at `port` as node `viewer` lists them.
fn flags_seen(viewer: u16, port: u16) -> String {
    let nodes: String = query_port(viewer, None, &["CLUSTER", "NODES"]).unwrap_or_default();
    nodes
        .lines()
        .find(|l| {
            l.split(' ')
                .nth(1)
                .is_some_and(|a| a.starts_with(&format!("127.0.0.1:{port}@")))
        })
        .and_then(|l| l.split(' ').nth(2).map(str::to_string))
        .unwrap_or_default()
}

#[test]
fn redis_cli_creates_a_shardis_cluster_and_clients_follow_moved() {
    let nodes: Vec<Server> = (0..3).map(|_| shardis_node()).collect();
    let out = create(&nodes.iter().collect::<Vec<_>>());
    assert!(
        out.contains("[OK] All nodes agree about slots configuration."),
        "{out}"
    );
    assert!(out.contains("[OK] All 16384 slots covered."), "{out}");
    assert!(
        wait_until(Duration::from_secs(20), || nodes
            .iter()
            .all(|n| state_ok(n.port))),
        "{}",
        cluster_info(nodes[0].port)
    );
    let check = cli(&[
        "--cluster",
        "check",
        &format!("127.0.0.1:{}", nodes[1].port),
    ]);
    assert!(
        check.contains("[OK] All nodes agree about slots configuration."),
        "{check}"
    );

    // A key on another node: MOVED to it; redis-cli -c follows.
    let p = nodes[0].port.to_string();
    let owner = nodes
        .iter()
        .find(|n| {
            let slots: String = query_port(n.port, None, &["CLUSTER", "NODES"]).unwrap();
            slots
                .lines()
                .any(|l| l.contains("myself") && l.ends_with("10923-16383"))
        })
        .expect("a node owns the last third");
    assert_eq!(
        cli(&["-p", &p, "SET", "foo", "bar"]),
        format!("MOVED 12182 127.0.0.1:{}", owner.port)
    );
    assert_eq!(cli(&["-c", "-p", &p, "SET", "foo", "bar"]), "OK");
    assert_eq!(cli(&["-c", "-p", &p, "GET", "foo"]), "bar");
    assert_eq!(
        cli(&["-p", &p, "MSET", "{a}1", "x", "{b}1", "y"]),
        "CROSSSLOT Keys in request don't hash to the same slot"
    );
    assert_eq!(
        cli(&["-p", &p, "SELECT", "1"]),
        "ERR SELECT is not allowed in cluster mode"
    );

    // redis-py's RedisCluster: 1000 keys over all three nodes, and a pipeline.
    let seen = common::python_client("cluster_client.py", std::slice::from_ref(&p));
    assert_eq!(seen.trim(), "read=1000 nodes=3 counted=100");
    let total: i64 = nodes
        .iter()
        .map(|n| query_port::<i64>(n.port, None, &["DBSIZE"]).unwrap())
        .sum();
    assert_eq!(total, 1000 + 100 + 1);

    // A restart from nodes.conf: same id, same slots, the cluster ok again.
    let id: String = query_port(nodes[2].port, None, &["CLUSTER", "MYID"]).unwrap();
    let port = nodes[2].port;
    let mut nodes = nodes;
    let old = nodes.pop().unwrap();
    let cport = own_bus_port(old.dir());
    old.crash(); // SIGKILL, the files stay
    let again = Server::shardis_on_port_with(port, 2, &cluster_flags(&cport));
    let id2: String = query_port(again.port, None, &["CLUSTER", "MYID"]).unwrap();
    assert_eq!(id, id2);
    assert!(
        wait_until(Duration::from_secs(20), || state_ok(again.port)
            && state_ok(nodes[0].port)),
        "{}",
        cluster_info(again.port)
    );
}

#[test]
fn mixed_with_redis_server_nodes_and_failure_detection() {
    // redis-server first: it sends the MEETs, Shardis answers them.
    let r = redis_node();
    let s1 = shardis_node();
    let s2 = shardis_node();
    let out = create(&[&r, &s1, &s2]);
    assert!(
        out.contains("[OK] All nodes agree about slots configuration."),
        "{out}"
    );
    assert!(
        wait_until(Duration::from_secs(20), || [r.port, s1.port, s2.port]
            .iter()
            .all(|p| state_ok(*p))),
        "redis: {}\nshardis: {}",
        cluster_info(r.port),
        cluster_info(s1.port)
    );
    // Every node sees the three masters with the same slots.
    let views: Vec<Vec<String>> = [r.port, s1.port, s2.port]
        .iter()
        .map(|p| {
            let nodes: String = query_port(*p, None, &["CLUSTER", "NODES"]).unwrap();
            let mut v: Vec<String> = nodes
                .lines()
                .map(|l| {
                    let f: Vec<&str> = l.split(' ').collect();
                    format!("{} {} {}", f[0], f[1], f[8..].join(" "))
                })
                .collect();
            v.sort();
            v
        })
        .collect();
    assert_eq!(views[0], views[1]);
    assert_eq!(views[0], views[2]);
    // Clients follow MOVED between both kinds of node.
    for (i, p) in [r.port, s1.port, s2.port].iter().enumerate() {
        let p = p.to_string();
        for k in 0..20 {
            let key = format!("k{i}-{k}");
            assert_eq!(cli(&["-c", "-p", &p, "SET", &key, "v"]), "OK");
        }
    }
    for p in [r.port, s1.port, s2.port] {
        let p = p.to_string();
        assert_eq!(cli(&["-c", "-p", &p, "GET", "k0-7"]), "v");
    }

    // PUBLISH reaches subscribers on every node, over the bus, both ways.
    for (sub_port, pub_port) in [(r.port, s1.port), (s2.port, r.port), (s1.port, s2.port)] {
        let mut c = redis::Client::open(format!("redis://127.0.0.1:{sub_port}/"))
            .unwrap()
            .get_connection()
            .unwrap();
        let mut sub = c.as_pubsub();
        sub.subscribe("news").unwrap();
        sub.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let text = format!("from {pub_port}");
        // Only this node's subscribers count in the reply, as in Redis.
        assert_eq!(
            cli(&["-p", &pub_port.to_string(), "PUBLISH", "news", &text]),
            "0"
        );
        let got: String = sub.get_message().unwrap().get_payload().unwrap();
        assert_eq!(got, text);
    }

    // A key s1 serves, for reads while the cluster is down (below).
    let mine = (0..3)
        .flat_map(|i| (0..20).map(move |k| format!("k{i}-{k}")))
        .find(|k| owner_of(s1.port, k) == s1.port)
        .unwrap();

    // The redis-server node dies: both Shardis nodes mark it failing (PFAIL, then
    // FAIL once both masters report it), and its slots leave the cluster down.
    let rp = r.port;
    drop(r);
    assert!(
        wait_until(Duration::from_secs(20), || flags_seen(s1.port, rp)
            .contains("fail")
            && !flags_seen(s1.port, rp).contains("fail?")
            && flags_seen(s2.port, rp).contains("fail")),
        "{} / {}",
        flags_seen(s1.port, rp),
        flags_seen(s2.port, rp)
    );
    assert!(wait_until(Duration::from_secs(10), || cluster_info(
        s1.port
    )
    .contains("cluster_state:fail")));
    let p1 = s1.port.to_string();
    assert_eq!(
        cli(&["-p", &p1, "GET", "k0-7"]),
        "CLUSTERDOWN The cluster is down"
    );
    // cluster-allow-reads-when-down: reads of its own slots go on, writes do not.
    assert_eq!(
        cli(&[
            "-p",
            &p1,
            "CONFIG",
            "SET",
            "cluster-allow-reads-when-down",
            "yes"
        ]),
        "OK"
    );
    assert!(wait_until(Duration::from_secs(5), || cli(&[
        "-p", &p1, "GET", &mine
    ]) == "v"));
    assert_eq!(
        cli(&["-p", &p1, "SET", &mine, "w"]),
        "CLUSTERDOWN The cluster is down and only accepts read commands"
    );
}

/// Redis's replies for the commands a single fresh node answers.
#[test]
fn cluster_commands_answer_as_redis() {
    let s = shardis_node();
    let r = redis_node();
    let cases: &[&[&str]] = &[
        &["CLUSTER", "MYID", "x"],
        &["CLUSTER", "FOO"],
        &["CLUSTER", "ADDSLOTS", "1", "2", "3"],
        &["CLUSTER", "ADDSLOTS", "1"],
        &["CLUSTER", "ADDSLOTS", "99999"],
        &["CLUSTER", "ADDSLOTS", "x"],
        &["CLUSTER", "ADDSLOTSRANGE", "10", "20"],
        &["CLUSTER", "ADDSLOTSRANGE", "20", "10"],
        &["CLUSTER", "ADDSLOTSRANGE", "1", "2", "3"],
        &["CLUSTER", "DELSLOTS", "3"],
        &["CLUSTER", "DELSLOTS", "3"],
        &["CLUSTER", "DELSLOTSRANGE", "10", "11"],
        &["CLUSTER", "KEYSLOT", "foo"],
        &["CLUSTER", "KEYSLOT", "{user1000}.following"],
        &["CLUSTER", "COUNTKEYSINSLOT", "5"],
        &["CLUSTER", "COUNTKEYSINSLOT", "x"],
        &["CLUSTER", "COUNTKEYSINSLOT", "99999"],
        &["CLUSTER", "GETKEYSINSLOT", "5", "10"],
        &["CLUSTER", "GETKEYSINSLOT", "5", "-1"],
        &["CLUSTER", "SET-CONFIG-EPOCH", "-1"],
        &["CLUSTER", "SET-CONFIG-EPOCH", "5"],
        &["CLUSTER", "SET-CONFIG-EPOCH", "6"],
        &["CLUSTER", "BUMPEPOCH"],
        &["CLUSTER", "MEET", "127.0.0.1", "x"],
        &["CLUSTER", "MEET", "1.2.3", "5"],
        &["CLUSTER", "MEET", "127.0.0.1", "1", "x"],
        &["CLUSTER", "FORGET", "abc"],
        &["CLUSTER", "COUNT-FAILURE-REPORTS", "abc"],
        &["CLUSTER", "REPLICAS", "abc"],
        &["CLUSTER", "REPLICATE", "abc"],
        &["CLUSTER", "SETSLOT", "1", "NODE", "abc"],
        &["CLUSTER", "SETSLOT", "1", "foo"],
        &["CLUSTER", "SETSLOT", "x", "stable"],
        &["CLUSTER", "SETSLOT", "1", "MIGRATING", "abc"],
        &["CLUSTER", "SETSLOT", "5000", "MIGRATING", "abc"],
        &["CLUSTER", "SETSLOT", "1", "IMPORTING", "abc"],
        &["CLUSTER", "SETSLOT", "5000", "IMPORTING", "abc"],
        &["CLUSTER", "SETSLOT", "1", "MIGRATING"],
        &["CLUSTER", "SETSLOT", "1", "STABLE"],
        &["CLUSTER", "SETSLOT", "1", "STABLE", "x"],
        &["MIGRATE", "127.0.0.1", "1", "k", "0", "100", "KEYS", "a"],
        &["MIGRATE", "127.0.0.1", "1", "k", "x", "100"],
        &["MIGRATE", "127.0.0.1", "1", "k", "0", "100", "AUTH"],
        &["MIGRATE", "127.0.0.1", "1", "k", "0", "100", "FOO"],
        &[
            "MIGRATE",
            "127.0.0.1",
            "1",
            "",
            "0",
            "100",
            "COPY",
            "REPLACE",
            "KEYS",
            "a",
        ],
        &["CLUSTER", "RESET", "foo"],
        &["CLUSTER", "FAILOVER"],
        &["CLUSTER", "HELP"],
        &["CLUSTER", "SAVECONFIG"],
        &["CLUSTER", "LINKS"],
        &["GET", "foo"],
        &["SET", "{x}1", "1"],
        &["MGET", "a", "b"],
        &["SELECT", "1"],
        &["SELECT", "0"],
        &["MOVE", "{x}1", "1"],
        &["SWAPDB", "0", "1"],
        &["COPY", "{x}1", "{x}2", "DB", "1"],
        &["COPY", "{x}1", "{x}2", "DB", "x"],
        &["READONLY"],
        &["READWRITE"],
        &["ASKING"],
        &["PING"],
    ];
    for args in cases {
        let (a, b) = (shown(s.port, args), shown(r.port, args));
        assert_eq!(a, b, "{args:?} (left: Shardis, right: redis-server)");
    }
    // Slot ranges in CLUSTER SLOTS and NODES: 1-2 and 12-20 on both.
    let tail = |p: u16| {
        let n: String = query_port(p, None, &["CLUSTER", "NODES"]).unwrap();
        n.trim().split(' ').skip(8).collect::<Vec<_>>().join(" ")
    };
    assert_eq!(tail(s.port), tail(r.port));
    assert_eq!(tail(s.port), "1-2 12-20");
    let slots = |p: u16| {
        let v: Vec<(i64, i64, redis::Value)> = query_port(p, None, &["CLUSTER", "SLOTS"]).unwrap();
        v.into_iter().map(|(a, b, _)| (a, b)).collect::<Vec<_>>()
    };
    assert_eq!(slots(s.port), slots(r.port));
    // On one connection, with keys in served slots ({t3034}: slot 1, {t5131}: 13):
    // SORT's patterns are refused in cluster mode (7.0), CLUSTER FLUSHSLOTS refuses a
    // node holding keys, and a cross-slot transaction's EXEC answers CROSSSLOT itself
    // (no EXECABORT) and ends the transaction.
    let session: &[&[&str]] = &[
        &["RPUSH", "{t3034}l", "3", "1", "2"],
        &["SORT", "{t3034}l", "BY", "x_*"],
        &["SORT", "{t3034}l", "BY", "nosort"],
        &["SORT", "{t3034}l", "GET", "#"],
        &["SORT_RO", "{t3034}l", "GET", "x_*"],
        &["CLUSTER", "FLUSHSLOTS"],
        &["MULTI"],
        &["SET", "{t3034}a", "1"],
        &["SET", "{t5131}b", "1"],
        &["EXEC"],
        &["EXEC"],
    ];
    let (mut sc, mut rc) = (s.raw(), r.raw());
    for c in [&mut sc, &mut rc] {
        c.cmd(&["CONFIG", "SET", "cluster-require-full-coverage", "no"]);
    }
    for p in [s.port, r.port] {
        assert!(
            wait_until(Duration::from_secs(10), || state_ok(p)),
            "{p}: cluster_state"
        );
    }
    for argv in session {
        assert_eq!(
            common::show(&sc.cmd(argv)),
            common::show(&rc.cmd(argv)),
            "{argv:?}"
        );
    }
}

#[test]
fn the_bus_port_drops_what_is_not_cluster_traffic() {
    use std::io::{Read, Write};
    let s = shardis_node();
    let nodes: String = query_port(s.port, None, &["CLUSTER", "NODES"]).unwrap();
    let cport: u16 = nodes
        .split(' ')
        .nth(1)
        .and_then(|a| a.split('@').nth(1))
        .unwrap()
        .parse()
        .unwrap();
    let cases: [&[u8]; 3] = [
        b"*1\r\n$4\r\nPING\r\n",
        b"RCmb\x00\x00\x00\x08",
        // A header-sized packet with the signature and a bad version.
        &{
            let mut m = vec![0u8; 2256];
            m[..4].copy_from_slice(b"RCmb");
            m[4..8].copy_from_slice(&2256u32.to_be_bytes());
            m[9] = 9;
            m
        },
    ];
    for bytes in cases {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", cport)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(bytes).unwrap();
        let mut buf = [0u8; 16];
        // Closed without an answer.
        assert_eq!(c.read(&mut buf).unwrap_or(0), 0);
    }
    let pong: String = query_port(s.port, None, &["PING"]).unwrap();
    assert_eq!(pong, "PONG");
    assert!(cluster_info(s.port).contains("cluster_known_nodes:1"));
}

/// The port of the node that serves `key`, as node `viewer` says (MOVED or itself).
fn owner_of(viewer: u16, key: &str) -> u16 {
    let r = cli(&["-p", &viewer.to_string(), "GET", key]);
    match r.strip_prefix("MOVED ") {
        Some(rest) => rest.rsplit(':').next().unwrap().parse().unwrap(),
        None => viewer,
    }
}

/// The first of `prefix`0, `prefix`1 ... that the node at `port` serves.
fn key_served_by(port: u16, prefix: &str) -> String {
    (0..10_000)
        .map(|i| format!("{prefix}{i}"))
        .find(|k| owner_of(port, k) == port)
        .expect("a key on every node")
}

#[test]
fn replicas_serve_readonly_reads_and_take_over_a_dead_master() {
    let nodes: Vec<Server> = (0..6)
        .map(|_| Server::shardis_with(1, &cluster_flags(&free_port().to_string())))
        .collect();
    let out = create_with(&nodes.iter().collect::<Vec<_>>(), 1);
    let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
    // redis-cli checks right after the CLUSTER REPLICATEs, while the replicas' new
    // role may still be spreading: agreement is awaited, not taken from that check.
    let agreed = || {
        cli(&["--cluster", "check", &format!("127.0.0.1:{}", ports[0])])
            .contains("[OK] All nodes agree about slots configuration.")
    };
    assert!(wait_until(Duration::from_secs(30), agreed), "{out}");
    // Every node lists 3 masters and 3 replicas, and the cluster is ok.
    await_formed(&ports, 3);
    let master = owner_of(ports[0], "foo");
    let m = master.to_string();
    assert_eq!(cli(&["-p", &m, "SET", "foo", "bar"]), "OK");
    assert_eq!(cli(&["-p", &m, "WAIT", "1", "5000"]), "1");
    // Its replica: MOVED for a plain client, the value for a READONLY one.
    let replica_id = {
        let id: String = query_port(master, None, &["CLUSTER", "MYID"]).unwrap();
        let nodes: String = query_port(master, None, &["CLUSTER", "NODES"]).unwrap();
        let line = nodes
            .lines()
            .find(|l| l.contains(&format!("slave {id}")))
            .unwrap()
            .to_string();
        line.split(' ')
            .nth(1)
            .unwrap()
            .split('@')
            .next()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse::<u16>()
            .unwrap()
    };
    let r = replica_id.to_string();
    // CLUSTER SHARDS gives the master's own replication offset as its INFO does (it
    // used to give 0 for itself).
    let own_offset = || {
        let info = cli(&["-p", &m, "INFO", "replication"]);
        let offset = info
            .lines()
            .find_map(|l| l.strip_prefix("master_repl_offset:"))
            .unwrap_or("?")
            .trim()
            .to_string();
        let shards = cli(&["-p", &m, "CLUSTER", "SHARDS"]);
        let port_line = format!("{master}");
        let lines: Vec<&str> = shards.lines().collect();
        let at = lines.iter().position(|l| *l == port_line);
        let shown = at.and_then(|i| {
            lines[i..]
                .iter()
                .position(|l| *l == "replication-offset")
                .map(|j| lines[i + j + 1].to_string())
        });
        offset != "0" && shown.as_deref() == Some(offset.as_str())
    };
    assert!(wait_until(Duration::from_secs(10), own_offset));
    assert!(cli(&["-p", &r, "GET", "foo"]).starts_with(&format!("MOVED 12182 127.0.0.1:{master}")));
    let mut c = redis::Client::open(format!("redis://127.0.0.1:{r}/"))
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("READONLY").query(&mut c).unwrap();
    let v: String = redis::cmd("GET").arg("foo").query(&mut c).unwrap();
    assert_eq!(v, "bar");

    // SIGKILL the master: its replica wins the election and serves the slots.
    let idx = ports.iter().position(|p| *p == master).unwrap();
    let mut nodes = nodes;
    drop(nodes.remove(idx));
    let alive: Vec<u16> = ports.iter().copied().filter(|p| *p != master).collect();
    assert!(
        wait_until(Duration::from_secs(30), || alive
            .iter()
            .all(|p| state_ok(*p) && owner_of(*p, "foo") == replica_id)),
        "{}\n{}",
        query_port::<String>(alive[0], None, &["CLUSTER", "NODES"]).unwrap_or_default(),
        nodes
            .iter()
            .find(|n| n.port == replica_id)
            .unwrap()
            .log_text()
    );
    assert_eq!(
        cli(&["-c", "-p", &alive[0].to_string(), "GET", "foo"]),
        "bar"
    );
    assert_eq!(
        cli(&["-c", "-p", &alive[0].to_string(), "SET", "foo", "baz"]),
        "OK"
    );
    let role: String = cli(&["-p", &r, "ROLE"]);
    assert!(role.starts_with("master"), "{role}");
}

/// The node serving slot 0 as `viewer` says, by port.
fn slot0_owner(viewer: u16) -> Option<u16> {
    // Entries are [start, end, master, replica...]: read them loosely.
    let slots: Vec<Vec<redis::Value>> = query_port(viewer, None, &["CLUSTER", "SLOTS"])?;
    let entry = slots
        .iter()
        .find(|e| redis::from_redis_value::<i64>(&e[0]).ok() == Some(0))?;
    let master: Vec<redis::Value> = redis::from_redis_value(&entry[2]).ok()?;
    redis::from_redis_value::<i64>(&master[1])
        .ok()
        .map(|p| p as u16)
}

#[test]
fn elections_work_across_redis_server_and_shardis_nodes() {
    // Shardis masters, redis-server replicas (redis-cli gives each master one).
    let masters: Vec<Server> = (0..3)
        .map(|_| Server::shardis_with(1, &cluster_flags(&free_port().to_string())))
        .collect();
    let replicas: Vec<Server> = (0..3).map(|_| redis_node()).collect();
    let all: Vec<&Server> = masters.iter().chain(replicas.iter()).collect();
    create_with(&all, 1);
    let ports: Vec<u16> = all.iter().map(|n| n.port).collect();
    await_formed(&ports, 3);
    let first = slot0_owner(ports[1]).unwrap();
    let mut masters = masters;
    let idx = masters.iter().position(|m| m.port == first).unwrap();
    let old = masters.remove(idx);
    let (old_port, old_dir) = (old.port, old.dir().to_path_buf());
    let cport = own_bus_port(&old_dir);

    // A Shardis master dies: its redis-server replica is elected by the masters left
    // (Shardis nodes), and everyone sees it serve slot 0.
    old.crash();
    let viewer = masters[0].port;
    assert!(
        wait_until(Duration::from_secs(30), || slot0_owner(viewer)
            .is_some_and(|p| replicas.iter().any(|r| r.port == p))
            && state_ok(viewer)),
        "{}",
        query_port::<String>(viewer, None, &["CLUSTER", "NODES"]).unwrap_or_default()
    );
    let promoted = slot0_owner(viewer).unwrap();

    // It comes back from nodes.conf, learns it lost its slots, and replicates from
    // the redis-server node that took them. Only once synced may it be elected: until
    // then its data's age is unknown, and Redis's rule refuses such a replica.
    let back = Server::shardis_on_port_with(old_port, 1, &cluster_flags(&cport));
    assert!(
        wait_until(Duration::from_secs(30), || {
            let role: Vec<redis::Value> =
                query_port(back.port, None, &["ROLE"]).unwrap_or_default();
            role.len() >= 4
                && redis::from_redis_value::<i64>(&role[2]).ok() == Some(promoted as i64)
                && redis::from_redis_value::<String>(&role[3]).ok().as_deref() == Some("connected")
        }),
        "{}",
        back.log_text()
    );

    // The redis-server master dies in turn: the Shardis replica wins, with the vote
    // of a redis-server master among others.
    let r_idx = replicas.iter().position(|r| r.port == promoted).unwrap();
    let mut replicas = replicas;
    drop(replicas.remove(r_idx));
    assert!(
        wait_until(Duration::from_secs(30), || slot0_owner(viewer)
            == Some(back.port)
            && state_ok(viewer)),
        "{}\n{}",
        query_port::<String>(viewer, None, &["CLUSTER", "NODES"]).unwrap_or_default(),
        back.log_text()
    );
    assert!(back.log_text().contains("Failover election won"));
}

/// The replica of the master at `master`, by port, as `master` lists it (waiting
/// for it to be known: after a failover the old master says so in its next PING).
fn replica_of(master: u16) -> u16 {
    let id: String = query_port(master, None, &["CLUSTER", "MYID"]).unwrap();
    let find = || {
        let nodes: String = query_port(master, None, &["CLUSTER", "NODES"])?;
        let line = nodes.lines().find(|l| l.contains(&format!("slave {id}")))?;
        let addr = line.split(' ').nth(1)?.split('@').next()?;
        addr.rsplit(':').next()?.parse().ok()
    };
    let mut found = None;
    wait_until(Duration::from_secs(20), || {
        found = find();
        found.is_some()
    });
    found.expect("the master lists a replica")
}

fn role_word(port: u16) -> String {
    cli(&["-p", &port.to_string(), "ROLE"])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn manual_failover_in_each_mode_swaps_master_and_replica() {
    let nodes: Vec<Server> = (0..6)
        .map(|_| Server::shardis_with(1, &cluster_flags(&free_port().to_string())))
        .collect();
    create_with(&nodes.iter().collect::<Vec<_>>(), 1);
    let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
    await_formed(&ports, 3);
    // Each mode on another master: masters vote about one master's replicas at most
    // once per twice the node timeout (Redis's rule).
    let masters: Vec<u16> = {
        let mut m: Vec<u16> = ports
            .iter()
            .copied()
            .filter(|p| role_word(*p) == "master")
            .collect();
        m.sort();
        m
    };
    assert_eq!(
        cli(&["-p", &masters[0].to_string(), "CLUSTER", "FAILOVER"]),
        "ERR You should send CLUSTER FAILOVER to a replica"
    );
    for (i, mode) in [None, Some("TAKEOVER"), Some("FORCE")]
        .into_iter()
        .enumerate()
    {
        let master = masters[i];
        let key = (0..)
            .map(|k| format!("k{k}"))
            .find(|k| owner_of(master, k) == master)
            .unwrap();
        let m = master.to_string();
        assert_eq!(cli(&["-p", &m, "SET", &key, "before"]), "OK");
        assert_eq!(cli(&["-p", &m, "WAIT", "1", "5000"]), "1");
        let replica = replica_of(master);
        let r = replica.to_string();
        let mut args = vec!["-p", &r, "CLUSTER", "FAILOVER"];
        args.extend(mode);
        assert_eq!(cli(&args), "OK", "{mode:?}");
        assert!(
            wait_until(Duration::from_secs(20), || role_word(replica) == "master"
                && role_word(master) == "slave"
                && ports.iter().all(|p| owner_of(*p, &key) == replica)),
            "{mode:?}: {}",
            query_port::<String>(replica, None, &["CLUSTER", "NODES"]).unwrap_or_default()
        );
        // Nothing acknowledged before the switch is lost; the new master takes writes.
        assert_eq!(cli(&["-p", &r, "GET", &key]), "before");
        assert_eq!(cli(&["-p", &r, "SET", &key, "after"]), "OK");
    }
}

fn myid(port: u16) -> String {
    query_port(port, None, &["CLUSTER", "MYID"]).unwrap()
}

/// `redis-cli --cluster reshard`: `slots` slots from one node to another, through
/// `via`; its output, asserting it succeeded.
fn reshard(via: u16, from: u16, to: u16, slots: usize) -> String {
    let out = Command::new("redis-cli")
        .args(["--cluster", "reshard", &format!("127.0.0.1:{via}")])
        .args(["--cluster-from", &myid(from), "--cluster-to", &myid(to)])
        .args(["--cluster-slots", &slots.to_string(), "--cluster-yes"])
        .args(["--cluster-pipeline", "20"])
        .output()
        .expect("redis-cli runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("[ERR]"), "{text}");
    text
}

/// Keys of db 0 on a node, by DBSIZE.
fn dbsize(port: u16) -> i64 {
    query_port(port, None, &["DBSIZE"]).unwrap()
}

/// Slot migration as `redis-cli --cluster reshard` does it (SETSLOT IMPORTING /
/// MIGRATING, GETKEYSINSLOT, MIGRATE with RESTORE-ASKING, SETSLOT NODE), between
/// every pair of kinds: redis-server to Shardis, Shardis to redis-server, Shardis to
/// Shardis; while redis-py's RedisCluster keeps writing (following ASK and TRYAGAIN),
/// and with nothing lost or changed: values, types, TTLs and every acknowledged INCR.
#[test]
fn reshard_moves_slots_and_keys_between_redis_server_and_shardis() {
    let r = redis_node();
    let s1 = shardis_node();
    let s2 = shardis_node();
    create(&[&r, &s1, &s2]);
    let ports = [r.port, s1.port, s2.port];
    assert!(wait_until(Duration::from_secs(20), || ports
        .iter()
        .all(|p| state_ok(*p))));

    let stop = s1.dir().join("stop-traffic");
    let traffic = common::python_command(
        "reshard_traffic.py",
        &[r.port.to_string(), stop.display().to_string()],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    // Wait until the keys are loaded (1800 keys plus the counters).
    assert!(wait_until(Duration::from_secs(60), || ports
        .iter()
        .map(|p| dbsize(*p))
        .sum::<i64>()
        >= 1800));
    let before: i64 = ports.iter().map(|p| dbsize(*p)).sum();

    // redis-server -> Shardis, Shardis -> redis-server, Shardis -> Shardis.
    let out = reshard(s1.port, r.port, s1.port, 1500);
    assert!(out.contains("Moving slot"), "{out}");
    reshard(r.port, s2.port, r.port, 1200);
    reshard(s2.port, s1.port, s2.port, 1000);

    std::fs::write(&stop, "").unwrap();
    let done = traffic.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&done.stdout).into_owned();
    let errs = String::from_utf8_lossy(&done.stderr).into_owned();
    assert!(done.status.success(), "{said}\n{errs}");
    assert!(said.contains("errors=0 mismatches=0"), "{said}\n{errs}");
    assert!(!said.contains("incrs=0 "), "{said}");

    // Every node agrees, no slot is left open, and the keys all moved with them.
    let check = Command::new("redis-cli")
        .args(["--cluster", "check", &format!("127.0.0.1:{}", s1.port)])
        .output()
        .unwrap();
    let check = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(
        check.contains("[OK] All nodes agree about slots configuration."),
        "{check}"
    );
    assert!(check.contains("[OK] All 16384 slots covered."), "{check}");
    assert!(!check.contains("WARNING"), "{check}");
    let after: i64 = ports.iter().map(|p| dbsize(*p)).sum();
    assert!(after >= before, "{before} keys before, {after} after");
    // Each node holds only keys of its own slots.
    let nodes: String = query_port(s1.port, None, &["CLUSTER", "NODES"]).unwrap();
    let mut owner = vec![0u16; 16384];
    for l in nodes.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        let port: u16 = f[1].split(['@', ':']).nth(1).unwrap().parse().unwrap();
        for r in f[8..].iter().filter(|r| !r.starts_with('[')) {
            let (a, b) = r.split_once('-').unwrap_or((r, r));
            let (a, b) = (a.parse::<usize>().unwrap(), b.parse::<usize>().unwrap());
            owner[a..=b].fill(port);
        }
    }
    for p in ports {
        let keys: Vec<String> = query_port(p, None, &["KEYS", "*"]).unwrap();
        assert!(!keys.is_empty());
        for k in keys {
            let slot = common::key_slot(k.as_bytes());
            assert_eq!(owner[slot as usize], p, "{k} (slot {slot}) on {p}");
        }
    }
}

/// `redis-cli --cluster <args...>`: its output, asserting it succeeded without errors.
fn cluster_tool(args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("--cluster")
        .args(args)
        .output()
        .expect("redis-cli runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !text.contains("[ERR]"),
        "{args:?}: {text}"
    );
    text
}

/// The slots a node serves, by its own CLUSTER NODES line.
fn own_slot_count(port: u16) -> usize {
    let nodes: String = query_port(port, None, &["CLUSTER", "NODES"]).unwrap();
    let me = nodes
        .lines()
        .find(|l| l.contains("myself"))
        .unwrap()
        .to_string();
    me.split(' ')
        .skip(8)
        .filter(|r| !r.starts_with('['))
        .map(|r| match r.split_once('-') {
            Some((a, b)) => b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1,
            None => 1,
        })
        .sum()
}

/// A Redis 7.0 cluster takes a Shardis node and gives it back: `add-node`,
/// `rebalance --cluster-use-empty-masters` (slots and keys move to it), clients
/// reading everything through either kind of node, `rebalance` with weight 0 (all
/// move back), `del-node` (FORGET on the others, RESET on it), and `check` clean
/// at every stage.
#[test]
fn a_redis_cluster_adds_rebalances_onto_and_deletes_a_shardis_node() {
    let (r1, r2, r3) = (redis_node(), redis_node(), redis_node());
    create(&[&r1, &r2, &r3]);
    let entry = format!("127.0.0.1:{}", r1.port);
    assert!(wait_until(Duration::from_secs(20), || state_ok(r1.port)));
    let seen = common::python_client("cluster_client.py", &[r1.port.to_string()]);
    assert!(seen.contains("read=1000"), "{seen}");

    let s = shardis_node();
    cluster_tool(&["add-node", &format!("127.0.0.1:{}", s.port), &entry]);
    let all_agree = || {
        let out = Command::new("redis-cli")
            .args(["--cluster", "check", &entry])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("[OK] All nodes agree")
    };
    // Every node must know the new one before slots can move to it (redis-cli's
    // check compares only nodes that hold slots).
    let sid = myid(s.port);
    let known_by = |p: u16| {
        let nodes: String = query_port(p, None, &["CLUSTER", "NODES"]).unwrap_or_default();
        nodes.lines().count() == 4 && nodes.contains(&sid)
    };
    assert!(wait_until(Duration::from_secs(30), || all_agree()
        && state_ok(s.port)
        && [r1.port, r2.port, r3.port, s.port]
            .iter()
            .all(|p| known_by(*p))));
    cluster_tool(&[
        "rebalance",
        &entry,
        "--cluster-use-empty-masters",
        "--cluster-pipeline",
        "50",
    ]);
    assert!(own_slot_count(s.port) > 3000, "{}", own_slot_count(s.port));
    assert!(dbsize(s.port) > 0);
    assert!(wait_until(Duration::from_secs(20), all_agree));
    let check = cluster_tool(&["check", &format!("127.0.0.1:{}", s.port)]);
    assert!(!check.contains("WARNING"), "{check}");
    // Every key is still there, through either kind of node.
    for via in [r2.port, s.port] {
        let seen = common::python_client("cluster_client.py", &[via.to_string()]);
        assert!(seen.contains("read=1000 nodes=4"), "{seen}");
    }

    cluster_tool(&["rebalance", &entry, "--cluster-weight", &format!("{sid}=0")]);
    assert_eq!(own_slot_count(s.port), 0);
    assert_eq!(dbsize(s.port), 0);
    cluster_tool(&["del-node", &entry, &sid]);
    assert!(wait_until(Duration::from_secs(20), all_agree));
    let nodes: String = query_port(r1.port, None, &["CLUSTER", "NODES"]).unwrap();
    assert_eq!(nodes.lines().count(), 3, "{nodes}");
    let own: String = query_port(s.port, None, &["CLUSTER", "NODES"]).unwrap();
    assert_eq!(
        own.lines().count(),
        1,
        "the deleted node forgot the others: {own}"
    );
    let seen = common::python_client("cluster_client.py", &[r3.port.to_string()]);
    assert!(seen.contains("read=1000 nodes=3"), "{seen}");
}

/// A client blocked on a key whose slot then moves to another node is answered at
/// once with `-MOVED` to the new owner, as Redis's clusterRedirectBlockedClientIfNeeded
/// does (and as the redis-server node beside them does), for list and stream waits.
#[test]
fn clients_blocked_on_a_slot_that_moves_away_are_redirected() {
    let (a, b, r) = (shardis_node(), shardis_node(), redis_node());
    create(&[&a, &b, &r]);
    await_formed_masters(&[a.port, b.port, r.port]);
    // A key served by each node, and where its slot goes.
    let key_on = |port: u16| key_served_by(port, "blk:");
    let cases = [
        (a.port, b.port, "BLPOP"),
        (b.port, a.port, "XREAD"),
        (r.port, a.port, "BLPOP"),
    ];
    for (from, to, kind) in cases {
        let key = key_on(from);
        let slot: u16 = query_port(from, None, &["CLUSTER", "KEYSLOT", &key]).unwrap();
        let mut c = common::RawConn::connect(from);
        if kind == "BLPOP" {
            c.send_cmd(&[b"BLPOP", key.as_bytes(), b"0"]);
        } else {
            c.send_cmd(&[b"XREAD", b"BLOCK", b"0", b"STREAMS", key.as_bytes(), b"$"]);
        }
        let mut admin = common::RawConn::connect(from);
        common::await_blocked(&mut admin, 1);
        // The slot has no keys: SETSLOT NODE on both ends moves it.
        let target = myid(to);
        let slot_s = slot.to_string();
        for port in [to, from] {
            let ok: String = query_port(
                port,
                None,
                &["CLUSTER", "SETSLOT", &slot_s, "NODE", &target],
            )
            .unwrap();
            assert_eq!(ok, "OK");
        }
        c.stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(
            c.read_frame(),
            common::Frame::Error(format!("MOVED {slot} 127.0.0.1:{to}")),
            "{kind} blocked on node {from}"
        );
        common::await_blocked(&mut admin, 0);
    }
}

/// Waits until every node sees the cluster ok with all masters known.
fn await_formed_masters(ports: &[u16]) {
    let formed = |p: u16| {
        let n: String = query_port(p, None, &["CLUSTER", "NODES"]).unwrap_or_default();
        n.matches("master").count() == ports.len() && state_ok(p)
    };
    assert!(
        wait_until(Duration::from_secs(60), || ports.iter().all(|p| formed(*p))),
        "the cluster did not form"
    );
}

/// Scripts in cluster mode, on a Shardis node and on a redis-server node of the same
/// cluster, with keys chosen the same way for each: a script may touch only keys this
/// node serves; one with a shebang line must stay in one slot (the declared keys' or
/// the first touched) unless it has `allow-cross-slot-keys`; `no-cluster` scripts are
/// refused. Same replies.
#[test]
fn scripts_touch_only_local_keys_in_one_slot() {
    let (a, b, r) = (shardis_node(), shardis_node(), redis_node());
    create(&[&a, &b, &r]);
    await_formed_masters(&[a.port, b.port, r.port]);
    let keys_on = |port: u16, other: bool| -> Vec<String> {
        (0..10_000)
            .map(|i| format!("sk:{i}"))
            .filter(|k| (owner_of(port, k) == port) != other)
            .take(2)
            .collect()
    };
    let get = "return redis.call('GET', KEYS[1])";
    let undeclared = "return redis.call('GET', ARGV[1])";
    let two = "redis.call('GET', KEYS[1]) return redis.call('SET', ARGV[1], 'x')";
    let two_undeclared = "redis.call('GET', ARGV[1]) return redis.call('GET', ARGV[2])";
    let cross = "#!lua flags=allow-cross-slot-keys\nredis.call('GET', ARGV[1]) return redis.call('GET', ARGV[2])";
    let strict = "#!lua\nredis.call('GET', ARGV[1]) return redis.call('GET', ARGV[2])";
    let strict_declared = "#!lua\nredis.call('GET', KEYS[1]) return redis.call('GET', ARGV[1])";
    let no_cluster = "#!lua flags=no-cluster\nreturn 1";
    let run = |port: u16| -> Vec<String> {
        let local = keys_on(port, false);
        let remote = keys_on(port, true);
        let (l1, l2, far) = (&local[0], &local[1], &remote[0]);
        let cases: Vec<Vec<&str>> = vec![
            vec!["EVAL", get, "1", l1],
            vec!["EVAL", undeclared, "0", l1],
            vec!["EVAL", undeclared, "0", far],
            vec!["EVAL", two, "1", l1, l2],
            vec!["EVAL", two, "1", l1, l1],
            vec!["EVAL", two_undeclared, "0", l1, l2],
            vec!["EVAL", cross, "0", l1, l2],
            vec!["EVAL", cross, "0", l1, far],
            vec!["EVAL", no_cluster, "0"],
            vec!["EVAL", strict, "0", l1, l2],
            vec!["EVAL", strict, "0", l1, l1],
            vec!["EVAL", strict_declared, "1", l1, l2],
            vec!["EVAL", strict_declared, "1", l2, l2],
        ];
        cases
            .iter()
            .map(|argv| {
                let mut c = common::RawConn::connect(port);
                common::show(&c.cmd(argv))
            })
            .collect()
    };
    let want = run(r.port);
    assert_eq!(
        run(a.port),
        want,
        "Shardis node against the redis-server node"
    );
}

/// `cluster-preferred-endpoint-type` ip / hostname / unknown-endpoint: the MOVED a
/// Shardis node gives and its CLUSTER SLOTS (endpoint first, the other addresses in
/// the map) are the redis-server node's, with some nodes announcing a hostname.
#[test]
fn preferred_endpoint_types_answer_as_redis() {
    let (a, b, r) = (shardis_node(), shardis_node(), redis_node());
    create(&[&a, &b, &r]);
    await_formed_masters(&[a.port, b.port, r.port]);
    // b announces a hostname, a and r do not.
    let ok: String = query_port(
        b.port,
        None,
        &["CONFIG", "SET", "cluster-announce-hostname", "node-b.test"],
    )
    .unwrap();
    assert_eq!(ok, "OK");
    let slots = |port: u16| shown(port, &["CLUSTER", "SLOTS"]);
    // Both have learned b's hostname (gossip).
    assert!(
        wait_until(Duration::from_secs(20), || {
            slots(a.port).contains("node-b.test") && slots(r.port).contains("node-b.test")
        }),
        "b's hostname never spread: {}",
        slots(a.port)
    );
    let key_on_b = key_served_by(b.port, "ep:");
    for kind in ["hostname", "unknown-endpoint", "ip"] {
        for port in [a.port, r.port] {
            let ok: String = query_port(
                port,
                None,
                &["CONFIG", "SET", "cluster-preferred-endpoint-type", kind],
            )
            .unwrap();
            assert_eq!(ok, "OK");
        }
        // The cron picks the option up within 100 ms.
        std::thread::sleep(Duration::from_millis(300));
        let moved = |port: u16| cli(&["-p", &port.to_string(), "GET", &key_on_b]);
        assert_eq!(moved(a.port), moved(r.port), "MOVED with {kind}");
        assert_eq!(slots(a.port), slots(r.port), "CLUSTER SLOTS with {kind}");
    }
}

/// `cluster-replica-validity-factor`: a replica whose link to its failed master has
/// been down longer than `repl-ping-replica-period` + node timeout × factor (beyond
/// the node timeout) does not take over, and logs why, as Redis; with the factor at
/// 0 it does.
#[test]
fn a_replica_with_stale_data_does_not_take_over() {
    let masters: Vec<Server> = (0..3).map(|_| shardis_node()).collect();
    create(&masters.iter().collect::<Vec<_>>());
    let ports: Vec<u16> = masters.iter().map(|n| n.port).collect();
    await_formed_masters(&ports);
    // A replica for the first master, which may not fail over for now.
    let replica = shardis_node();
    let rp = replica.port.to_string();
    let first = ports[0].to_string();
    let bus = own_bus_port(masters[0].dir());
    assert_eq!(
        cli(&["-p", &rp, "CLUSTER", "MEET", "127.0.0.1", &first, &bus]),
        "OK"
    );
    assert!(wait_until(Duration::from_secs(20), || {
        cli(&["-p", &rp, "CLUSTER", "NODES"]).lines().count() == 4
    }));
    assert_eq!(
        cli(&["-p", &rp, "CLUSTER", "REPLICATE", &myid(ports[0])]),
        "OK"
    );
    for (k, v) in [
        ("cluster-replica-no-failover", "yes"),
        ("cluster-replica-validity-factor", "1"),
        ("repl-ping-replica-period", "1"),
    ] {
        assert_eq!(cli(&["-p", &rp, "CONFIG", "SET", k, v]), "OK");
    }
    assert!(
        wait_until(Duration::from_secs(30), || {
            common::info_field(&mut replica.raw(), "master_link_status") == "up"
        }),
        "the replica never synced"
    );
    // Every master knows the replica, and the replica knows its master's config
    // epoch (its election requests carry it; voters refuse an older one).
    let master_id = myid(ports[0]);
    assert!(wait_until(Duration::from_secs(20), || {
        let known = ports.iter().all(|p| {
            cli(&["-p", &p.to_string(), "CLUSTER", "NODES"]).contains(&format!("slave {master_id}"))
        });
        let epoch = cli(&["-p", &rp, "CLUSTER", "NODES"])
            .lines()
            .find(|l| l.starts_with(&master_id))
            .and_then(|l| l.split(' ').nth(6).map(str::to_string))
            .unwrap_or_default();
        known && epoch != "0" && !epoch.is_empty()
    }));
    let mut masters = masters.into_iter();
    masters.next().unwrap().crash();
    // Link down for 8 s: 8 - 2 (node timeout) > 1 + 2 × 1.
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(
        cli(&[
            "-p",
            &rp,
            "CONFIG",
            "SET",
            "cluster-replica-no-failover",
            "no"
        ]),
        "OK"
    );
    assert!(
        wait_until(Duration::from_secs(10), || replica.log_text().contains(
            "Currently unable to failover: Disconnected from master for longer than allowed"
        )),
        "no log line:\n{}",
        replica.log_text()
    );
    assert_eq!(role_word(replica.port), "slave");
    // Without the limit it takes over.
    assert_eq!(
        cli(&[
            "-p",
            &rp,
            "CONFIG",
            "SET",
            "cluster-replica-validity-factor",
            "0"
        ]),
        "OK"
    );
    assert!(
        wait_until(Duration::from_secs(20), || role_word(replica.port)
            == "master"),
        "{}\n{}\n{}",
        cli(&["-p", &rp, "CLUSTER", "NODES"]),
        replica.log_text(),
        masters.map(|m| m.log_text()).collect::<Vec<_>>().join("\n")
    );
}

/// `(id, port, flags, master id)` of every node in `viewer`'s CLUSTER NODES.
fn nodes_seen(viewer: u16) -> Vec<(String, u16, String, String)> {
    let nodes: String = query_port(viewer, None, &["CLUSTER", "NODES"]).unwrap_or_default();
    nodes
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let port = f
                .get(1)?
                .split('@')
                .next()?
                .rsplit(':')
                .next()?
                .parse()
                .ok()?;
            Some((
                f[0].into(),
                port,
                f.get(2)?.to_string(),
                f.get(3)?.to_string(),
            ))
        })
        .collect()
}

/// The ports of the working replicas `viewer` lists for the master `id`.
fn working_replicas(viewer: u16, id: &str) -> Vec<u16> {
    nodes_seen(viewer)
        .into_iter()
        .filter(|(_, _, flags, master)| master == id && !flags.contains("fail"))
        .map(|(_, port, _, _)| port)
        .collect()
}

#[test]
fn a_replica_migrates_to_an_orphaned_master_past_the_barrier() {
    // Three masters with one replica each, then a second replica for one master.
    // (All Shardis: with a redis-server among the candidates, which one moves depends
    // on random names, and the test could pass without Shardis moving.)
    let mut nodes: Vec<Server> = (0..6)
        .map(|_| Server::shardis_with(1, &cluster_flags(&free_port().to_string())))
        .collect();
    create_with(&nodes.iter().collect::<Vec<_>>(), 1);
    let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
    await_formed(&ports, 3);
    let masters: Vec<u16> = ports
        .iter()
        .copied()
        .filter(|p| role_word(*p) == "master")
        .collect();
    let (rich, poor) = (masters[0], masters[1]);
    let (rich_id, poor_id) = (myid(rich), myid(poor));
    let extra = Server::shardis_with(1, &cluster_flags(&free_port().to_string()));
    let bus = own_bus_port(nodes[0].dir());
    let ep = extra.port.to_string();
    assert_eq!(
        cli(&[
            "-p",
            &ep,
            "CLUSTER",
            "MEET",
            "127.0.0.1",
            &ports[0].to_string(),
            &bus
        ]),
        "OK"
    );
    assert!(wait_until(Duration::from_secs(20), || {
        nodes_seen(extra.port).len() == 7
    }));
    assert_eq!(cli(&["-p", &ep, "CLUSTER", "REPLICATE", &rich_id]), "OK");
    let mut all = ports.clone();
    all.push(extra.port);
    assert!(
        wait_until(Duration::from_secs(30), || all
            .iter()
            .all(|p| working_replicas(*p, &rich_id).len() == 2)),
        "{}",
        cli(&["-p", &rich.to_string(), "CLUSTER", "NODES"])
    );
    // With the barrier at 2, a master with two replicas gives none away.
    for p in &all {
        let p = p.to_string();
        assert_eq!(
            cli(&["-p", &p, "CONFIG", "SET", "cluster-migration-barrier", "2"]),
            "OK"
        );
    }
    let poor_replica = replica_of(poor);
    let i = ports.iter().position(|p| *p == poor_replica).unwrap();
    nodes.remove(i).crash();
    let alive: Vec<u16> = all.iter().copied().filter(|p| *p != poor_replica).collect();
    assert!(wait_until(Duration::from_secs(20), || alive
        .iter()
        .all(|p| flags_seen(*p, poor_replica).contains("fail")
            && !flags_seen(*p, poor_replica).contains("fail?"))));
    // Orphaned for 5 s is when a replica may move: give it 7.
    std::thread::sleep(Duration::from_secs(7));
    assert!(working_replicas(rich, &poor_id).is_empty());
    assert_eq!(working_replicas(rich, &rich_id).len(), 2);
    // At 1, the rich master's replica with the smallest name moves to the orphan.
    for p in &alive {
        let p = p.to_string();
        assert_eq!(
            cli(&["-p", &p, "CONFIG", "SET", "cluster-migration-barrier", "1"]),
            "OK"
        );
    }
    let candidates = working_replicas(rich, &rich_id);
    let smallest = nodes_seen(rich)
        .into_iter()
        .filter(|(_, port, _, _)| candidates.contains(port))
        .min()
        .map(|(_, port, _, _)| port)
        .unwrap();
    let moved = || {
        alive.iter().all(|p| {
            working_replicas(*p, &poor_id) == vec![smallest]
                && working_replicas(*p, &rich_id).len() == 1
        })
    };
    let log_of = |port: u16| {
        nodes
            .iter()
            .chain(std::iter::once(&extra))
            .find(|n| n.port == port)
            .unwrap()
            .log_text()
    };
    assert!(
        wait_until(Duration::from_secs(30), moved),
        "{}\n{}",
        cli(&["-p", &rich.to_string(), "CLUSTER", "NODES"]),
        log_of(smallest)
    );
    assert!(log_of(smallest).contains(&format!("Migrating to orphaned master {poor_id}")));
    // It serves the orphan's data as its replica.
    let key = key_served_by(poor, "m");
    let p = poor.to_string();
    assert_eq!(cli(&["-p", &p, "SET", &key, "v"]), "OK");
    assert_eq!(cli(&["-p", &p, "WAIT", "1", "5000"]), "1");
    assert_eq!(role_word(smallest), "slave");
}
