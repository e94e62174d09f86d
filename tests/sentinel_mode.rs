//! Shardis's own sentinel mode (`shardis sentinel.conf --sentinel`) beside real
//! redis-sentinel 7.0 (redis-server `--sentinel`, the program the Debian package
//! installs).
//!
//! The one idea to hold: a Shardis Sentinel is checked as a user and as the other
//! Sentinels see it. Its replies are compared with redis-sentinel's for the same
//! commands on the same deployment; its config file is read back by redis-sentinel;
//! in a quorum with two redis-sentinels it agrees on ODOWN, wins one election and
//! loses the other, and every Sentinel ends on the same master and epoch. Waits are
//! generous polls; nothing is timed.

mod common;

use common::{shown, wait_until, Server};
use std::path::{Path, PathBuf};
use std::time::Duration;

const NAME: &str = "mymaster";

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("shardis-test-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(path: &Path, text: &str) -> String {
    std::fs::write(path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// A query on a fresh connection, or None while the node is down or refuses.
fn query<T: redis::FromRedisValue>(port: u16, args: &[&str]) -> Option<T> {
    common::query_port(port, None, args)
}

/// The master's port as sentinel `port` tells it.
fn master_of(port: u16) -> Option<u16> {
    let addr: Vec<String> = query(port, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", NAME])?;
    addr.get(1)?.parse().ok()
}

/// One field of `SENTINEL MASTER mymaster`.
fn master_field(port: u16, field: &str) -> Option<String> {
    let m: std::collections::HashMap<String, String> = query(port, &["SENTINEL", "MASTER", NAME])?;
    m.get(field).cloned()
}

/// The field names of each entry of a SENTINEL list or map reply, in order.
fn field_names(port: u16, args: &[&str]) -> Vec<Vec<String>> {
    let v: redis::Value = query(port, args).unwrap();
    let entries = match v {
        redis::Value::Array(items) if args[1].eq_ignore_ascii_case("master") => {
            vec![redis::Value::Array(items)]
        }
        redis::Value::Array(items) => items,
        other => vec![other],
    };
    entries
        .into_iter()
        .map(|e| match e {
            redis::Value::Array(kv) => kv
                .iter()
                .step_by(2)
                .map(|k| redis::from_redis_value::<String>(k).unwrap())
                .collect(),
            other => panic!("not a map: {other:?}"),
        })
        .collect()
}

fn count(port: u16, what: &str) -> usize {
    query::<Vec<redis::Value>>(port, &["SENTINEL", what, NAME]).map_or(0, |v| v.len())
}

fn sentinel_conf(dir: &Path, tag: &str, master_port: u16, quorum: u32, down_after: u64) -> String {
    write(
        &dir.join(format!("{tag}.conf")),
        &format!(
            "sentinel monitor {NAME} 127.0.0.1 {master_port} {quorum}\n\
             sentinel down-after-milliseconds {NAME} {down_after}\n\
             sentinel failover-timeout {NAME} 10000\n"
        ),
    )
}

fn shardis_sentinel(conf: &str) -> Server {
    Server::shardis_config(conf, &["--sentinel"])
}

fn redis_sentinel(conf: &str) -> Server {
    Server::redis_config(conf, &["--sentinel"])
}

#[test]
fn answers_as_redis_sentinel_does_and_its_file_reads_back() {
    let dir = scratch("sentinel-mode-diff");
    let master = Server::redis();
    let replica = Server::redis_with(&["--replicaof", "127.0.0.1", &master.port.to_string()]);
    let ours = shardis_sentinel(&sentinel_conf(&dir, "ours", master.port, 2, 5000));
    let theirs = redis_sentinel(&sentinel_conf(&dir, "theirs", master.port, 2, 5000));
    assert!(
        wait_until(Duration::from_secs(30), || [ours.port, theirs.port]
            .iter()
            .all(|p| count(*p, "REPLICAS") == 1 && count(*p, "SENTINELS") == 1)),
        "the sentinels did not find the replica and each other:\n{}",
        ours.log_text()
    );
    let cases: &[&[&str]] = &[
        &["SENTINEL"],
        &["SENTINEL", "foo"],
        &["SENTINEL", "help"],
        &["SENTINEL", "master"],
        &["SENTINEL", "master", "nosuch"],
        &["SENTINEL", "masters", "x"],
        &["SENTINEL", "replicas", "nosuch"],
        &[
            "SENTINEL",
            "is-master-down-by-addr",
            "1.2.3.4",
            "x",
            "0",
            "*",
        ],
        &[
            "SENTINEL",
            "is-master-down-by-addr",
            "1.2.3.4",
            "1",
            "0",
            "*",
        ],
        &["SENTINEL", "get-master-addr-by-name", NAME],
        &["SENTINEL", "get-master-addr-by-name", "nosuch"],
        &["SENTINEL", "failover", "nosuch"],
        &["SENTINEL", "monitor", "m2", "127.0.0.1", "x", "1"],
        &["SENTINEL", "monitor", "m2", "127.0.0.1", "1", "x"],
        &["SENTINEL", "monitor", "m2", "127.0.0.1", "1", "0"],
        &["SENTINEL", "monitor", "m2", "not-an-ip", "1", "1"],
        &["SENTINEL", "monitor", NAME, "127.0.0.1", "1", "1"],
        &["SENTINEL", "set", NAME, "quorum"],
        &["SENTINEL", "set", NAME, "foo", "1"],
        &["SENTINEL", "set", NAME, "quorum", "-1"],
        &["SENTINEL", "set", NAME, "notification-script", "/bin/true"],
        &["SENTINEL", "set", "nosuch", "quorum", "1"],
        &[
            "SENTINEL",
            "set",
            NAME,
            "quorum",
            "2",
            "parallel-syncs",
            "1",
        ],
        &["SENTINEL", "config", "get", "*"],
        &["SENTINEL", "config", "get", "announce*"],
        &["SENTINEL", "config", "set", "foo", "bar"],
        &["SENTINEL", "config", "set", "announce-port", "70000"],
        &["SENTINEL", "config", "set", "resolve-hostnames", "maybe"],
        &["SENTINEL", "config", "foo", "x"],
        &["SENTINEL", "debug", "foo"],
        &["SENTINEL", "debug", "ping-period"],
        &["SENTINEL", "debug", "ping-period", "0"],
        &["SENTINEL", "debug"],
        &["SENTINEL", "simulate-failure", "foo"],
        &["SENTINEL", "simulate-failure", "help"],
        &["SENTINEL", "reset", "nomatch"],
        &["SENTINEL", "pending-scripts"],
        &["SENTINEL", "info-cache", "nosuch"],
        &["SENTINEL", "ckquorum", NAME],
        &["SENTINEL", "ckquorum", "nosuch"],
        &["SENTINEL", "remove", "nosuch"],
        &["PUBLISH", "foo", "bar"],
        &["PUBLISH", "__sentinel__:hello", "not,a,hello"],
        &["ROLE"],
        &["PING"],
        &["GET", "x"],
        &["SET", "x", "y"],
        &["CONFIG", "GET", "port"],
        // (SENTINEL's subcommands come in redis-server's random dict order.)
        &["COMMAND", "INFO", "role", "publish", "ping", "hello"],
        // ACL rules name a Sentinel's own commands.
        &["ACL", "SETUSER", "u", "+get"],
        &[
            "ACL",
            "SETUSER",
            "u",
            "on",
            ">p",
            "+@all",
            "-@dangerous",
            "+role",
        ],
        &["ACL", "LIST"],
        &["ACL", "CAT", "read"],
        &["ACL", "DRYRUN", "u", "sentinel", "masters"],
        &["ACL", "DRYRUN", "u", "sentinel", "reset", "x"],
        &["ACL", "DELUSER", "u"],
    ];
    for args in cases {
        assert_eq!(
            shown(ours.port, args),
            shown(theirs.port, args),
            "{args:?} differs (left: Shardis, right: redis-sentinel)"
        );
    }
    // State replies: the same fields in the same order (values are clocks and ids).
    for args in [
        &["SENTINEL", "MASTERS"][..],
        &["SENTINEL", "MASTER", NAME],
        &["SENTINEL", "REPLICAS", NAME],
        &["SENTINEL", "SENTINELS", NAME],
    ] {
        assert_eq!(
            field_names(ours.port, args),
            field_names(theirs.port, args),
            "{args:?}"
        );
    }
    let info: String = query(ours.port, &["INFO"]).unwrap();
    let sections: Vec<&str> = info.lines().filter(|l| l.starts_with('#')).collect();
    assert_eq!(
        sections,
        ["# Server", "# Clients", "# CPU", "# Stats", "# Sentinel"]
    );
    assert!(info.contains("redis_mode:sentinel"), "{info}");
    let line = format!(
        "master0:name={NAME},status=ok,address=127.0.0.1:{},slaves=1,sentinels=2",
        master.port
    );
    assert!(info.contains(&line), "{info}");

    // The state is in the file, in lines redis-sentinel reads: a redis-sentinel
    // started on a copy of it knows our id's peers, the replica and the epoch.
    let myid: String = query(ours.port, &["SENTINEL", "MYID"]).unwrap();
    let file = std::fs::read_to_string(dir.join("ours.conf")).unwrap();
    assert!(file.contains(&format!("sentinel myid {myid}")), "{file}");
    assert!(
        file.contains(&format!(
            "sentinel known-replica {NAME} 127.0.0.1 {}",
            replica.port
        )),
        "{file}"
    );
    let copy = write(
        &dir.join("copy.conf"),
        &file.replace(&myid, &"f".repeat(40)),
    );
    let reader = redis_sentinel(&copy);
    assert_eq!(master_of(reader.port), Some(master.port));
    assert_eq!(count(reader.port, "REPLICAS"), 1);
    assert!(count(reader.port, "SENTINELS") >= 1);

    // A restart from its own file keeps its id and what it learnt.
    drop(ours);
    let ours = shardis_sentinel(dir.join("ours.conf").to_str().unwrap());
    let again: String = query(ours.port, &["SENTINEL", "MYID"]).unwrap();
    assert_eq!(again, myid);
    assert_eq!(count(ours.port, "REPLICAS"), 1);

    // Stopped longer than the TILT trigger (2 s), it distrusts its timers: TILT.
    let signal = |sig: &str| {
        let pid = ours.pid().to_string();
        assert!(std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success());
    };
    signal("-STOP");
    std::thread::sleep(Duration::from_millis(2500));
    signal("-CONT");
    assert!(
        wait_until(Duration::from_secs(5), || query::<String>(
            ours.port,
            &["INFO", "sentinel"]
        )
        .is_some_and(|i| i.contains("sentinel_tilt:1"))),
        "{}",
        ours.log_text()
    );
    assert!(ours.log_text().contains("+tilt #tilt mode entered"));
    drop((ours, theirs, reader, replica, master));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits for every sentinel to name `port` as the master, with the same config epoch.
fn converged(sentinels: &[u16], port: u16) -> bool {
    let epochs: Vec<Option<String>> = sentinels
        .iter()
        .map(|s| master_field(*s, "config-epoch"))
        .collect();
    sentinels.iter().all(|s| master_of(*s) == Some(port)) && epochs.iter().all(|e| *e == epochs[0])
}

fn role_of(port: u16) -> Option<(String, u16)> {
    let v: Vec<redis::Value> = query(port, &["ROLE"])?;
    let kind: String = redis::from_redis_value(v.first()?).ok()?;
    let master = match (kind.as_str(), v.get(2)) {
        ("slave", Some(p)) => redis::from_redis_value::<i64>(p).ok()? as u16,
        _ => 0,
    };
    Some((kind, master))
}

#[test]
fn mixed_quorum_fails_over_with_either_leader_and_converges() {
    let dir = scratch("sentinel-mode-mixed");
    // Data nodes: a Shardis master, a Shardis replica and a redis-server replica that
    // the first failover prefers (priority 10).
    // Each Shardis node has its own file: the failover transaction's CONFIG REWRITE
    // writes to it (without one, the repository's config.toml would be read and
    // rewritten).
    let node_conf = |tag: &str| write(&dir.join(format!("{tag}.conf")), "threads 2\n");
    let m = Server::shardis_config(&node_conf("master"), &[]);
    let pm = m.port.to_string();
    let s_replica =
        Server::shardis_config(&node_conf("replica"), &["--replicaof", "127.0.0.1", &pm]);
    let r_replica =
        Server::redis_with(&["--replicaof", "127.0.0.1", &pm, "--replica-priority", "10"]);
    let _: String = query(m.port, &["SET", "k", "v"]).unwrap();
    // Round 1: ours sees the master down first and needs only itself for ODOWN
    // (quorum 1), so it asks for votes first and leads; theirs need 2 and wait longer.
    let ours_conf = sentinel_conf(&dir, "ours", m.port, 1, 1500);
    // Both scripts log their arguments, one line per run.
    let trace = dir.join("scripts.log");
    let script = write(
        &dir.join("log-args.sh"),
        &format!("#!/bin/sh\necho \"$@\" >> {}\n", trace.display()),
    );
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut text = std::fs::read_to_string(&ours_conf).unwrap();
    text += &format!("sentinel notification-script {NAME} {script}\nsentinel client-reconfig-script {NAME} {script}\n");
    write(Path::new(&ours_conf), &text);
    let ours = shardis_sentinel(&ours_conf);
    let theirs: Vec<Server> = (0..2)
        .map(|i| redis_sentinel(&sentinel_conf(&dir, &format!("theirs{i}"), m.port, 2, 6000)))
        .collect();
    let all = [ours.port, theirs[0].port, theirs[1].port];
    assert!(
        wait_until(Duration::from_secs(40), || all
            .iter()
            .all(|p| count(*p, "REPLICAS") == 2 && count(*p, "SENTINELS") == 2)),
        "the sentinels did not find the replicas and each other:\n{}",
        ours.log_text()
    );
    let mut events = redis::Client::open(format!("redis://127.0.0.1:{}/", ours.port))
        .unwrap()
        .get_connection()
        .unwrap();
    let mut sub = events.as_pubsub();
    sub.subscribe("+switch-master").unwrap();
    sub.set_read_timeout(Some(Duration::from_secs(60))).unwrap();

    drop(m); // SIGKILL
    let msg: String = sub.get_message().unwrap().get_payload().unwrap();
    assert_eq!(
        msg,
        format!("{NAME} 127.0.0.1 {pm} 127.0.0.1 {}", r_replica.port),
        "{}",
        ours.log_text()
    );
    assert!(
        wait_until(Duration::from_secs(40), || converged(&all, r_replica.port)),
        "the sentinels did not converge on the redis-server replica:\n{}\n--- theirs\n{}",
        ours.log_text(),
        theirs[0].log_text()
    );
    assert!(
        ours.log_text().contains("+elected-leader"),
        "{}",
        ours.log_text()
    );
    assert!(
        wait_until(Duration::from_secs(30), || role_of(s_replica.port)
            == Some(("slave".into(), r_replica.port))),
        "the Shardis replica was not re-pointed: {:?}",
        role_of(s_replica.port)
    );
    let v: Option<String> = query(r_replica.port, &["GET", "k"]).unwrap();
    assert_eq!(v.as_deref(), Some("v"));
    // redis-py's Sentinel client finds the new master and a replica through ours.
    let seen = common::python_client("sentinel_discovery.py", &[ours.port.to_string()]);
    assert_eq!(
        seen.trim(),
        format!("master={} replicas_listed=True read=yes", r_replica.port)
    );
    let epoch1 = master_field(ours.port, "config-epoch").unwrap();
    let r_port = r_replica.port;

    // Round 2: ours now waits long, theirs see the failure first and lead (ours
    // votes, so one of them wins even if both try at once).
    let _: String = query(
        ours.port,
        &[
            "SENTINEL",
            "SET",
            NAME,
            "down-after-milliseconds",
            "60000",
            "quorum",
            "2",
        ],
    )
    .unwrap();
    for s in &theirs {
        let _: String = query(
            s.port,
            &["SENTINEL", "SET", NAME, "down-after-milliseconds", "1500"],
        )
        .unwrap();
    }
    drop(r_replica);
    let msg: String = sub.get_message().unwrap().get_payload().unwrap();
    assert!(
        msg.ends_with(&format!("127.0.0.1 {}", s_replica.port)),
        "{msg}"
    );
    assert!(
        wait_until(Duration::from_secs(40), || converged(&all, s_replica.port)),
        "the sentinels did not converge on the Shardis replica:\n{}",
        ours.log_text()
    );
    let epoch2 = master_field(ours.port, "config-epoch").unwrap();
    assert!(epoch2.parse::<u64>().unwrap() > epoch1.parse::<u64>().unwrap());
    let log = ours.log_text();
    assert_eq!(log.matches("+elected-leader").count(), 1, "{log}");
    assert_eq!(log.matches("+switch-master").count(), 2, "{log}");
    assert!(log.contains("+config-update-from"), "{log}");
    assert_eq!(role_of(s_replica.port), Some(("master".into(), 0)));
    let file = std::fs::read_to_string(&ours_conf).unwrap();
    assert!(
        file.contains(&format!(
            "sentinel monitor {NAME} 127.0.0.1 {} 2",
            s_replica.port
        )),
        "{file}"
    );
    // The scripts ran: the notification one on warnings, the reconfiguration one as
    // the leader (round 1) and as an observer (round 2).
    let (r1, s1) = (r_port.to_string(), s_replica.port.to_string());
    let leader = format!("{NAME} leader start 127.0.0.1 {pm} 127.0.0.1 {r1}");
    let observer = format!("{NAME} observer start 127.0.0.1 {r1} 127.0.0.1 {s1}");
    let switch = format!("+switch-master {NAME} 127.0.0.1 {pm} 127.0.0.1 {r1}");
    assert!(
        wait_until(Duration::from_secs(10), || {
            let t = std::fs::read_to_string(&trace).unwrap_or_default();
            t.contains(&leader) && t.contains(&observer) && t.contains(&switch)
        }),
        "scripts: {}",
        std::fs::read_to_string(&trace).unwrap_or_default()
    );
    drop((sub, ours, theirs, s_replica));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn authenticates_to_instances_and_to_other_sentinels() {
    const PASS: &str = "s3cret";
    let dir = scratch("sentinel-mode-auth");
    let node_conf = |tag: &str, extra: &str| {
        write(
            &dir.join(format!("{tag}.conf")),
            &format!("threads 2\nrequirepass {PASS}\nmasterauth {PASS}\n{extra}"),
        )
    };
    let m = Server::shardis_config(&node_conf("master", ""), &[]);
    let replica_of = format!("replicaof 127.0.0.1 {}\n", m.port);
    let _r = Server::shardis_config(&node_conf("replica", &replica_of), &[]);
    // Ours needs a password from its clients and from other Sentinels (requirepass);
    // redis-sentinel has its own and gives ours with `sentinel-pass`; both give the
    // data nodes' with `auth-pass`.
    let with_auth = |tag: &str, own: &str, peer: &str| {
        let conf = sentinel_conf(&dir, tag, m.port, 2, 5000);
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text += &format!(
            "sentinel auth-pass {NAME} {PASS}\nrequirepass {own}\nsentinel sentinel-pass {peer}\n"
        );
        write(Path::new(&conf), &text)
    };
    let ours = shardis_sentinel(&with_auth("ours", "ours-pw", "theirs-pw"));
    let theirs = redis_sentinel(&with_auth("theirs", "theirs-pw", "ours-pw"));
    let asked = |port: u16, pw: &str, what: &str| {
        common::query_port::<Vec<redis::Value>>(port, Some(pw), &["SENTINEL", what, NAME])
            .map_or(0, |v| v.len())
    };
    assert!(
        wait_until(Duration::from_secs(30), || {
            asked(ours.port, "ours-pw", "REPLICAS") == 1
                && asked(ours.port, "ours-pw", "SENTINELS") == 1
                && asked(theirs.port, "theirs-pw", "SENTINELS") == 1
        }),
        "AUTH failed on some link:\n{}",
        ours.log_text()
    );
    // Each PINGs the other on its own link, authenticated: answered within a second.
    let peer_ok = |port: u16, pw: &str| {
        let v: Option<Vec<std::collections::HashMap<String, String>>> =
            common::query_port(port, Some(pw), &["SENTINEL", "SENTINELS", NAME]);
        v.is_some_and(|v| {
            v.len() == 1
                && v[0]["flags"] == "sentinel"
                && v[0]["last-ok-ping-reply"].parse::<u64>().unwrap() < 1500
                && v[0]["last-ping-sent"] == "0"
        })
    };
    assert!(
        wait_until(Duration::from_secs(20), || peer_ok(ours.port, "ours-pw")
            && peer_ok(theirs.port, "theirs-pw")),
        "a Sentinel link did not authenticate:\n{}",
        ours.log_text()
    );
    let noauth = shown(ours.port, &["SENTINEL", "MASTERS"]);
    assert!(noauth.contains("NOAUTH"), "{noauth}");
    let m: std::collections::HashMap<String, String> =
        common::query_port(ours.port, Some("ours-pw"), &["SENTINEL", "MASTER", NAME]).unwrap();
    assert_eq!(m["flags"], "master");
    assert_eq!(m["runid"].len(), 40);
    drop((ours, theirs));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Redis's documented ACL recipe: the data nodes have a `sentinel` user with only the
/// commands a Sentinel sends, and a `repl` user for the replication link; the Sentinel
/// logs in with `auth-user` / `auth-pass`, finds the replica, and a forced failover
/// goes through with those rights alone.
#[test]
fn works_with_the_acl_users_redis_documents_for_sentinel() {
    let dir = scratch("sentinel-mode-acl");
    let users = "user sentinel on >spw allchannels +multi +slaveof +ping +exec +subscribe \
                 +config|rewrite +role +publish +info +client|setname +client|kill \
                 +script|kill\nuser repl on >rpw +psync +replconf +ping\n\
                 masteruser repl\nmasterauth rpw\n";
    let node_conf = |tag: &str, extra: &str| {
        write(
            &dir.join(format!("{tag}.conf")),
            &format!("threads 2\n{users}{extra}"),
        )
    };
    let m = Server::shardis_config(&node_conf("master", ""), &[]);
    let replica_of = format!("replicaof 127.0.0.1 {}\n", m.port);
    let r = Server::shardis_config(&node_conf("replica", &replica_of), &[]);
    let conf = sentinel_conf(&dir, "ours", m.port, 1, 5000);
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text += &format!("sentinel auth-user {NAME} sentinel\nsentinel auth-pass {NAME} spw\n");
    let s = shardis_sentinel(&write(Path::new(&conf), &text));
    // Found through the master, then asked itself (INFO, as the `sentinel` user).
    let replica_ready = || {
        let v: Option<Vec<std::collections::HashMap<String, String>>> =
            query(s.port, &["SENTINEL", "REPLICAS", NAME]);
        v.is_some_and(|v| {
            v.len() == 1 && v[0]["flags"] == "slave" && v[0]["master-link-status"] == "ok"
        })
    };
    assert!(
        wait_until(Duration::from_secs(30), || replica_ready()
            && master_field(s.port, "flags").as_deref() == Some("master")),
        "the Sentinel did not log in or find the replica:\n{}",
        s.log_text()
    );
    let failover = shown(s.port, &["SENTINEL", "FAILOVER", NAME]);
    assert_eq!(failover, "ok");
    assert!(
        wait_until(Duration::from_secs(30), || master_of(s.port)
            == Some(r.port)
            && role_of(r.port).is_some_and(|(role, _)| role == "master")
            && role_of(m.port)
                .is_some_and(|(role, port)| role == "slave" && port == r.port)),
        "the failover did not complete:\n{}",
        s.log_text()
    );
    // Nothing it sent was refused on the way.
    for node in [&m, &r] {
        assert_eq!(
            shown(node.port, &["ACL", "LOG"]),
            "array([])",
            "{}",
            s.log_text()
        );
    }
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}
