//! Shardis data nodes under real Sentinel (redis-server 7.0 in `--sentinel` mode, the
//! program redis-sentinel is): three sentinels find a Shardis master, its replicas
//! (INFO) and each other (the `__sentinel__:hello` channel on Shardis), see the master
//! die, elect a leader and promote a replica with the failover transaction (`MULTI`,
//! `REPLICAOF`, `CONFIG REWRITE`, `CLIENT KILL`, `EXEC`), then turn the old master into
//! a replica when it comes back.
//!
//! The one idea to hold: every check is one a Sentinel user relies on, read from the
//! sentinels' own answers or from the data nodes' files after `CONFIG REWRITE`, never
//! from Shardis's internals: which node the sentinels agree is the master, that a
//! replica whose `replica-priority` was set to 0 at run time is never chosen (it is set
//! to the preferred priority in its file first, so a stale INFO would pick it), that
//! AUTH works on both links (`requirepass`, `masterauth`, `sentinel auth-pass`), and
//! that each node's config file (redis.conf and TOML forms) brings it back in its new
//! role after a restart. Waits are generous polls; nothing is timed.

mod common;

use common::{free_port, wait_until, Server};
use std::path::{Path, PathBuf};
use std::time::Duration;

const PASS: &str = "s3cret";
const NAME: &str = "mymaster";

fn scratch() -> PathBuf {
    let d = std::env::temp_dir().join(format!("shardis-test-{}-sentinel", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(path: &Path, text: &str) -> String {
    std::fs::write(path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// A query on a fresh authenticated connection (a failover kills normal clients), or
/// None while the node is down or refuses.
fn query<T: redis::FromRedisValue>(port: u16, auth: bool, args: &[&str]) -> Option<T> {
    common::query_port(port, auth.then_some(PASS), args)
}

/// `ROLE` reduced to (role, master port): ("master", 0) or ("slave", port).
fn role(port: u16) -> Option<(String, u16)> {
    let v: redis::Value = query(port, true, &["ROLE"])?;
    let redis::Value::Array(items) = v else {
        return None;
    };
    let text = |v: &redis::Value| match v {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        redis::Value::SimpleString(s) => s.clone(),
        _ => String::new(),
    };
    let kind = text(items.first()?);
    let master_port = match (kind.as_str(), items.get(2)) {
        ("slave", Some(redis::Value::Int(p))) => *p as u16,
        _ => 0,
    };
    Some((kind, master_port))
}

/// The master's port as sentinel `s` tells it.
fn master_by_sentinel(s: &Server) -> Option<u16> {
    let addr: Vec<String> = query(
        s.port,
        false,
        &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", NAME],
    )?;
    addr.get(1)?.parse().ok()
}

/// How many entries a `SENTINEL REPLICAS|SENTINELS` list has.
fn count(s: &Server, what: &str) -> usize {
    query::<Vec<redis::Value>>(s.port, false, &["SENTINEL", what, NAME]).map_or(0, |v| v.len())
}

/// `down-after-milliseconds` must exceed Sentinel's 1 s ping and reconnect period:
/// after `+switch-master` a sentinel reuses the old master's link, which may wait up to
/// that second before reconnecting to the new master while its PING clock already
/// runs; with less, the new master can be judged down at once and failed over again.
fn sentinel(dir: &Path, i: usize, master_port: u16) -> Server {
    let conf = write(
        &dir.join(format!("sentinel-{i}.conf")),
        &format!(
            "sentinel monitor {NAME} 127.0.0.1 {master_port} 2\n\
             sentinel down-after-milliseconds {NAME} 2000\n\
             sentinel failover-timeout {NAME} 6000\n\
             sentinel auth-pass {NAME} {PASS}\n"
        ),
    );
    Server::redis_config(&conf, &["--sentinel"])
}

fn file_text(path: &str) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn real_sentinels_fail_over_shardis_nodes_and_their_files_follow() {
    let dir = scratch();
    let (pm, p1, p2) = (free_port(), free_port(), free_port());
    // The master and one replica in redis.conf form, the other replica in TOML.
    let m_conf = write(
        &dir.join("master.conf"),
        &format!("threads 2\nrequirepass {PASS}\nmasterauth {PASS}\n"),
    );
    let r1_conf = write(
        &dir.join("replica1.toml"),
        &format!(
            "threads = 2\nrequirepass = \"{PASS}\"\nmasterauth = \"{PASS}\"\n\
             replicaof = \"127.0.0.1 {pm}\"\nreplica-priority = 10\n"
        ),
    );
    let r2_conf = write(
        &dir.join("replica2.conf"),
        &format!(
            "threads 2\nrequirepass {PASS}\nmasterauth {PASS}\nreplicaof 127.0.0.1 {pm}\n\
             replica-priority 50\n"
        ),
    );
    let master = Server::shardis_config_on_port(pm, &m_conf, &[]);
    let r1 = Server::shardis_config_on_port(p1, &r1_conf, &[]);
    let r2 = Server::shardis_config_on_port(p2, &r2_conf, &[]);
    // Replica 1 is preferred by its file (10 < 50); at run time it is taken out.
    let ok: String = query(p1, true, &["CONFIG", "SET", "replica-priority", "0"]).unwrap();
    assert_eq!(ok, "OK");
    assert!(
        wait_until(Duration::from_secs(20), || {
            query::<String>(pm, true, &["INFO", "replication"])
                .is_some_and(|i| i.matches("state=online").count() == 2)
        }),
        "replicas did not come online:\n{}\n{}",
        r1.log_text(),
        r2.log_text()
    );
    for i in 0..100 {
        let _: String = query(pm, true, &["SET", &format!("key:{i}"), &i.to_string()]).unwrap();
    }
    let acked: i64 = query(pm, true, &["WAIT", "2", "5000"]).unwrap();
    assert_eq!(acked, 2);

    let sentinels: Vec<Server> = (0..3).map(|i| sentinel(&dir, i, pm)).collect();
    assert!(
        wait_until(Duration::from_secs(30), || sentinels
            .iter()
            .all(|s| count(s, "REPLICAS") == 2 && count(s, "SENTINELS") == 2)),
        "sentinels did not find both replicas and each other:\n{}",
        sentinels[0].log_text()
    );

    drop(master); // SIGKILL
    assert!(
        wait_until(Duration::from_secs(40), || sentinels
            .iter()
            .all(|s| master_by_sentinel(s) == Some(p2))),
        "the sentinels did not agree on replica 2 as the new master:\n{}\n{}\n{}",
        sentinels[0].log_text(),
        sentinels[1].log_text(),
        sentinels[2].log_text()
    );
    assert_eq!(role(p2), Some(("master".to_string(), 0)));
    let dbsize: i64 = query(p2, true, &["DBSIZE"]).unwrap();
    assert_eq!(dbsize, 100, "the promoted replica lost data");
    assert!(
        wait_until(Duration::from_secs(30), || role(p1)
            == Some(("slave".to_string(), p2))),
        "replica 1 was not re-pointed to the new master: {:?}",
        role(p1)
    );
    let _: String = query(p2, true, &["SET", "after", "failover"]).unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        query::<Option<String>>(p1, true, &["GET", "after"]) == Some(Some("failover".into()))
    }));

    // CONFIG REWRITE in the failover transactions: each file names the new roles.
    assert!(
        !file_text(&r2_conf).contains("replicaof"),
        "the promoted node's file still names a master:\n{}",
        file_text(&r2_conf)
    );
    assert!(
        wait_until(Duration::from_secs(10), || file_text(&r1_conf)
            .contains(&format!("127.0.0.1 {p2}"))),
        "replica 1's file does not name the new master:\n{}",
        file_text(&r1_conf)
    );

    // The old master comes back from its file as a master; the sentinels turn it
    // into a replica of the new one, and its file follows.
    let old = Server::shardis_config_on_port(pm, &m_conf, &[]);
    assert!(
        wait_until(Duration::from_secs(40), || role(pm)
            == Some(("slave".to_string(), p2))),
        "the old master was not turned into a replica: {:?}\n{}\n--- r2\n{}\n--- r1\n{}\n--- old\n{}",
        role(pm),
        sentinels[0].log_text(), r2.log_text(), r1.log_text(), old.log_text()
    );
    assert!(
        wait_until(Duration::from_secs(10), || file_text(&m_conf)
            .contains(&format!("replicaof 127.0.0.1 {p2}"))),
        "the old master's file:\n{}",
        file_text(&m_conf)
    );
    assert!(wait_until(Duration::from_secs(10), || {
        query::<Option<String>>(pm, true, &["GET", "after"]) == Some(Some("failover".into()))
    }));

    // A restart from the rewritten TOML file comes back as a replica of the new master.
    drop(r1);
    let r1 = Server::shardis_config_on_port(p1, &r1_conf, &[]);
    assert!(
        wait_until(Duration::from_secs(20), || role(p1)
            == Some(("slave".to_string(), p2))),
        "replica 1 after a restart from its file: {:?}\n{}",
        role(p1),
        file_text(&r1_conf)
    );
    drop((old, r1, r2, sentinels));
    let _ = std::fs::remove_dir_all(&dir);
}
