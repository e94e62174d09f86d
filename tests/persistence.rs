//! RDB snapshots end to end: files move between Shardis and redis-server 7.0 both
//! ways, BGSAVE under writes is one instant's image, a restart with another `threads`
//! value loses nothing, bad files are refused, a failed save stops writes (MISCONF).
//!
//! Contents are compared with DEBUG DIGEST, which Shardis computes as Redis does, and
//! with per-key DEBUG DIGEST-VALUE where a difference must be located.

mod common;

use common::{info_field, show, wait_until, Server};
use redis::{Commands, Connection, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "shardis-persist-{}-{}-{}",
        std::process::id(),
        tag,
        common::free_port()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Shardis on `dir`, once it has loaded what is there (PING answers -LOADING until then).
fn shardis_in(dir: &Path, threads: usize, extra: &[&str]) -> Server {
    let d = dir.to_str().unwrap();
    let mut args = vec!["--dir", d, "--enable-debug-command", "yes"];
    args.extend_from_slice(extra);
    let s = Server::shardis_with(threads, &args);
    let mut c = s.conn();
    let deadline = Instant::now() + Duration::from_secs(60);
    while redis::cmd("PING").query::<String>(&mut c).is_err() {
        assert!(Instant::now() < deadline, "still loading after 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    s
}

fn redis_in(dir: &Path) -> Server {
    let d = dir.to_str().unwrap();
    Server::redis_with(&["--dir", d, "--enable-debug-command", "yes"])
}

fn digest(c: &mut Connection) -> String {
    redis::cmd("DEBUG").arg("DIGEST").query(c).unwrap()
}

/// Every type and encoding, TTLs, three databases; deterministic for a seed.
fn fill(c: &mut Connection, seed: u64) {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let mut rnd = move |n: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % n
    };
    for db in 0..3 {
        redis::cmd("SELECT").arg(db).query::<()>(c).unwrap();
        for i in 0..300 {
            let k = format!("k{db}:{i}");
            match i % 9 {
                0 => c
                    .set::<_, _, ()>(&k, rnd(1_000_000) as i64 - 500_000)
                    .unwrap(),
                1 => c
                    .set::<_, _, ()>(&k, "x".repeat(rnd(200) as usize + 1))
                    .unwrap(),
                2 => {
                    let n = if rnd(4) == 0 { 700 } else { 5 };
                    let items: Vec<String> =
                        (0..n).map(|j| format!("e{j}-{}", rnd(1000))).collect();
                    c.rpush::<_, _, ()>(&k, items).unwrap();
                }
                3 => {
                    let n = if rnd(4) == 0 { 600 } else { 8 };
                    let items: Vec<i64> = (0..n).map(|_| rnd(100_000) as i64 - 50).collect();
                    c.sadd::<_, _, ()>(&k, items).unwrap();
                }
                4 => {
                    let items: Vec<String> = (0..rnd(30) + 1).map(|j| format!("m{j}")).collect();
                    c.sadd::<_, _, ()>(&k, items).unwrap();
                }
                5 => {
                    let n = if rnd(4) == 0 { 600 } else { 6 };
                    let pairs: Vec<(String, String)> = (0..n)
                        .map(|j| (format!("f{j}"), format!("v{}", rnd(1000))))
                        .collect();
                    c.hset_multiple::<_, _, _, ()>(&k, &pairs).unwrap();
                }
                6 => {
                    let n = if rnd(4) == 0 { 300 } else { 7 };
                    for j in 0..n {
                        let score = (rnd(10_000) as f64) / 7.0 - 300.0;
                        c.zadd::<_, _, _, ()>(&k, format!("z{j}"), score).unwrap();
                    }
                }
                7 => {
                    c.pfadd::<_, _, ()>(
                        &k,
                        (0..rnd(50) + 1).map(|j| j.to_string()).collect::<Vec<_>>(),
                    )
                    .unwrap();
                }
                _ => c.set::<_, _, ()>(&k, "with-ttl").unwrap(),
            }
            if rnd(3) == 0 {
                c.pexpire::<_, ()>(&k, 600_000 + rnd(100_000) as i64)
                    .unwrap();
            }
        }
    }
    redis::cmd("SELECT").arg(0).query::<()>(c).unwrap();
}

fn wait_bgsave(c: &mut Connection) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let info: String = redis::cmd("INFO").arg("persistence").query(c).unwrap();
        if info.contains("rdb_bgsave_in_progress:0") {
            return;
        }
        assert!(Instant::now() < deadline, "BGSAVE did not finish: {info}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn shardis_dump_loads_in_redis_and_redis_dump_loads_in_shardis() {
    let dir = scratch("both-ways");
    let want = {
        let s = shardis_in(&dir, 3, &[]);
        let mut c = s.conn();
        fill(&mut c, 7);
        let r: String = redis::cmd("SAVE")
            .query(&mut c)
            .unwrap_or_else(|e| panic!("{e} {}", s.log_text()));
        assert_eq!(r, "OK");
        redis::cmd("DEBUG")
            .arg("DIGEST")
            .query::<String>(&mut c)
            .unwrap_or_else(|e| panic!("{e} {}", s.log_text()))
    };
    assert_ne!(want, "0".repeat(40));
    // Redis reads our file ...
    let r = redis_in(&dir);
    let mut rc = r.conn();
    assert_eq!(
        digest(&mut rc),
        want,
        "redis-server loaded a different data set"
    );
    // ... and writes its own, which we read (into another number of shards).
    let r2: String = redis::cmd("SAVE").query(&mut rc).unwrap();
    assert_eq!(r2, "OK");
    drop(r);
    let s = shardis_in(&dir, 2, &[]);
    let mut c = s.conn();
    assert_eq!(
        digest(&mut c),
        want,
        "Shardis loaded Redis's file differently"
    );
    let info: String = redis::cmd("INFO").arg("persistence").query(&mut c).unwrap();
    assert!(info.contains("rdb_changes_since_last_save:0"), "{info}");
    assert!(info.contains("rdb_last_load_keys_loaded:900"), "{info}");
}

#[test]
fn restart_with_another_thread_count_loses_nothing_and_sigterm_saves() {
    let dir = scratch("threads");
    let want = {
        let mut s = shardis_in(&dir, 1, &["--save", "3600 1"]);
        let mut c = s.conn();
        fill(&mut c, 11);
        let d = digest(&mut c);
        // SIGTERM with save points set: saves, then exits.
        unsafe_free_kill(s.pid(), "-TERM");
        assert!(
            s.wait_exit(Duration::from_secs(30)).is_some(),
            "no exit on SIGTERM"
        );
        assert!(
            s.log_text().contains("DB saved on disk"),
            "{}",
            s.log_text()
        );
        d
    };
    for threads in [3, 2] {
        let s = shardis_in(&dir, threads, &[]);
        let mut c = s.conn();
        assert_eq!(
            digest(&mut c),
            want,
            "after restarting with {threads} threads"
        );
        let n: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
        assert_eq!(n, 300);
    }
}

fn unsafe_free_kill(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .arg(sig)
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

/// A checker increments ten counters on different shards in one MULTI, over and
/// over, while BGSAVE runs: every image must hold ten equal counters (no transaction
/// half in), and the image must lie between what was acknowledged before BGSAVE and
/// what was acknowledged after it finished.
#[test]
fn bgsave_under_writes_is_a_point_in_time_image() {
    let dir = scratch("pit");
    let s = shardis_in(&dir, 3, &[]);
    let mut c = s.conn();
    // A bulk of keys so the snapshot takes a while, with values rewritten meanwhile.
    let mut p = redis::pipe();
    for i in 0..60_000 {
        p.set(format!("bulk:{i}"), i).ignore();
    }
    p.query::<()>(&mut c).unwrap();
    let counters: Vec<String> = (0..10).map(|i| format!("ctr:{i}")).collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
    let writer = {
        let (stop, acked, counters) = (stop.clone(), acked.clone(), counters.clone());
        let mut w = s.conn();
        std::thread::spawn(move || {
            let mut n = 0i64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut p = redis::pipe();
                p.atomic();
                for k in &counters {
                    p.incr(k, 1);
                }
                // And churn: overwrite bulk keys ahead of and behind the cursor.
                p.set(format!("bulk:{}", (n * 7919) % 60_000), -n).ignore();
                let got: Vec<i64> = p.query(&mut w).unwrap();
                n += 1;
                assert!(got.iter().all(|&v| v == n), "{got:?}");
                acked.store(n, std::sync::atomic::Ordering::Relaxed);
            }
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let mut saved = Vec::new();
    for round in 0..3 {
        let before = acked.load(std::sync::atomic::Ordering::Relaxed);
        let r: String = redis::cmd("BGSAVE").query(&mut c).unwrap();
        assert_eq!(r, "Background saving started");
        wait_bgsave(&mut c);
        let after = acked.load(std::sync::atomic::Ordering::Relaxed);
        let copy = dir.join(format!("image{round}.rdb"));
        std::fs::copy(dir.join("dump.rdb"), &copy).unwrap();
        saved.push((copy, before, after));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    for (file, before, after) in saved {
        let d = scratch("pit-load");
        std::fs::copy(&file, d.join("dump.rdb")).unwrap();
        let s = shardis_in(&d, 2, &[]);
        let mut c = s.conn();
        let vals: Vec<Option<i64>> = redis::cmd("MGET").arg(&counters).query(&mut c).unwrap();
        let v0 = vals[0].unwrap_or(0);
        assert!(
            vals.iter().all(|v| v.unwrap_or(0) == v0),
            "torn image: {vals:?}"
        );
        assert!(
            v0 >= before && v0 <= after + 1,
            "image {v0} outside [{before}, {after}]"
        );
        let n: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
        assert_eq!(n, 60_010);
    }
}

#[test]
fn corrupt_or_foreign_files_are_refused_with_the_reason() {
    let dir = scratch("corrupt");
    {
        let s = shardis_in(&dir, 2, &[]);
        let mut c = s.conn();
        fill(&mut c, 3);
        let _: String = redis::cmd("SAVE").query(&mut c).unwrap();
    }
    let good = std::fs::read(dir.join("dump.rdb")).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("flipped byte", {
            let mut b = good.clone();
            let i = b.len() / 2;
            b[i] ^= 0x5a;
            b
        }),
        ("truncated", good[..good.len() * 2 / 3].to_vec()),
        ("not rdb", b"hello world, not an rdb file at all".to_vec()),
        ("newer version", {
            let mut b = good.clone();
            b[5..9].copy_from_slice(b"0099");
            b
        }),
    ];
    for (what, bytes) in cases {
        let d = scratch("corrupt-case");
        std::fs::write(d.join("dump.rdb"), &bytes).unwrap();
        let port = common::free_port();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_shardis"))
            .args([
                "--port",
                &port.to_string(),
                "--dir",
                d.to_str().unwrap(),
                "--threads",
                "2",
            ])
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{what}: started anyway\n{log}");
        assert!(log.contains("Fatal error loading the DB"), "{what}: {log}");
    }
}

/// SHUTDOWN while the AOF just turned on is still being written (its first rewrite)
/// fails, as Redis's does: the file does not hold the data set yet and the next start
/// would load it. SHUTDOWN ... FORCE exits anyway.
#[test]
fn shutdown_refuses_while_the_first_aof_is_written_as_redis() {
    for kind in ["shardis", "redis"] {
        let mut s = match kind {
            "shardis" => Server::shardis(2),
            _ => Server::redis(),
        };
        let mut c = s.raw();
        for i in 0..200 {
            c.cmd(&["SET", &format!("k{i}"), "v"]);
        }
        // 0.1 s per key written: the rewrite outlasts the test.
        c.cmd(&["CONFIG", "SET", "rdb-key-save-delay", "100000"]);
        c.cmd(&["CONFIG", "SET", "appendonly", "yes"]);
        assert_eq!(
            c.cmd(&["SHUTDOWN"]),
            common::Frame::Error("ERR Errors trying to SHUTDOWN. Check logs.".into()),
            "{kind}"
        );
        assert_eq!(
            c.cmd(&["PING"]),
            common::Frame::Simple("PONG".into()),
            "{kind}"
        );
        c.send_cmd(&[b"SHUTDOWN", b"NOSAVE", b"FORCE"]);
        assert!(
            s.wait_exit(Duration::from_secs(30)).is_some(),
            "{kind}: FORCE exits"
        );
        assert!(s.log_text().contains("Writing initial AOF"), "{kind}");
    }
}

/// FLUSHALL stops a running BGSAVE (Redis kills its RDB child: not a failed save, the
/// server stays writable) and, with save points set, saves the empty data set, so a
/// restart loads nothing, as with redis-server. The BGSAVE used to finish after the
/// FLUSHALL and put the flushed keys back in the file for the next start.
#[test]
fn flushall_stops_a_bgsave_and_saves_the_empty_data_set_as_redis() {
    for kind in ["shardis", "redis"] {
        let dir = scratch(&format!("flushall-{kind}"));
        let start = || match kind {
            "shardis" => shardis_in(&dir, 2, &["--save", "3600 1"]),
            _ => Server::redis_with(&["--dir", dir.to_str().unwrap(), "--save", "3600 1"]),
        };
        let mut s = start();
        let mut c = s.conn();
        let mut fill = redis::pipe();
        for i in 0..2000 {
            fill.set(format!("k{i}"), i).ignore();
        }
        fill.query::<()>(&mut c).unwrap();
        let _: String = redis::cmd("SAVE").query(&mut c).unwrap();
        let _: String = redis::cmd("CONFIG")
            .arg(&["SET", "rdb-key-save-delay", "1000"])
            .query(&mut c)
            .unwrap();
        let _: String = redis::cmd("BGSAVE").query(&mut c).unwrap();
        let info: String = redis::cmd("INFO").arg("persistence").query(&mut c).unwrap();
        assert!(info.contains("rdb_bgsave_in_progress:1"), "{kind}: {info}");
        let _: String = redis::cmd("FLUSHALL").query(&mut c).unwrap();
        wait_bgsave(&mut c);
        let info: String = redis::cmd("INFO").arg("persistence").query(&mut c).unwrap();
        assert!(info.contains("rdb_last_bgsave_status:ok"), "{kind}: {info}");
        // The empty data set is on disk when FLUSHALL answers: a SHUTDOWN NOSAVE (or a
        // crash) right after it cannot bring the flushed keys back.
        c.set::<_, _, ()>("after", 1).unwrap();
        let _ = redis::cmd("SHUTDOWN").arg("NOSAVE").query::<()>(&mut c);
        assert!(
            s.wait_exit(Duration::from_secs(30)).is_some(),
            "{kind}: no exit"
        );
        let log1 = if kind == "shardis" {
            s.log_text()
        } else {
            String::new()
        };
        let again = start();
        let n: i64 = redis::cmd("DBSIZE").query(&mut again.conn()).unwrap();
        assert_eq!(n, 0, "{kind}: the file after FLUSHALL {log1}");
        drop(again);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn failed_bgsave_stops_writes_with_misconf_until_a_save_succeeds() {
    let dir = scratch("misconf");
    let s = shardis_in(&dir, 2, &["--save", "3600 1"]);
    let mut c = s.conn();
    c.set::<_, _, ()>("a", 1).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let _: String = redis::cmd("BGSAVE").query(&mut c).unwrap();
    wait_bgsave(&mut c);
    let info: String = redis::cmd("INFO").arg("persistence").query(&mut c).unwrap();
    assert!(info.contains("rdb_last_bgsave_status:err"), "{info}");
    let err = c.set::<_, _, ()>("b", 1).unwrap_err();
    assert!(err.to_string().contains("MISCONF"), "{err}");
    // Reads still work.
    let v: i64 = c.get("a").unwrap();
    assert_eq!(v, 1);
    std::fs::create_dir_all(&dir).unwrap();
    let r: String = redis::cmd("SAVE").query(&mut c).unwrap();
    assert_eq!(r, "OK");
    c.set::<_, _, ()>("b", 1).unwrap();
}

/// While the AOF cannot be written (a full disk, here a file size limit), writes and
/// PING are refused with `-MISCONF` before they run (inside MULTI, when queued) and
/// reads are served; once the disk has room again the file catches up and writes
/// run. The same steps against redis-server. (The reason after the prefix is the
/// failing call's: Redis reports any short write as "No space left on device".)
#[test]
fn an_aof_that_cannot_be_written_refuses_writes_as_redis() {
    let big = "x".repeat(1 << 20);
    let misconf = "-MISCONF Errors writing to the AOF file: ";
    for kind in ["shardis", "redis"] {
        let server = Server::with_file_size_limit(256 << 10, || match kind {
            "shardis" => Server::shardis_with(2, &["--appendonly", "yes"]),
            _ => Server::redis_with(&["--appendonly", "yes"]),
        });
        let mut c = server.raw();
        assert_eq!(show(&c.cmd(&["SET", "a", "1"])), "+OK", "{kind}");
        assert_eq!(show(&c.cmd(&["SET", "big", &big])), "+OK", "{kind}");
        let failed = wait_until(Duration::from_secs(10), || {
            info_field(&mut c, "aof_last_write_status") == "err"
        });
        assert!(failed, "{kind}: {}", server.log_text());
        for (argv, refused) in [
            (&["SET", "b", "1"][..], true),
            (&["PING"], true),
            (&["GET", "a"], false),
            (&["MULTI"], false),
            (&["INCR", "a"], true),
            (&["GET", "a"], false),
        ] {
            let reply = show(&c.cmd(argv));
            assert_eq!(
                reply.starts_with(misconf),
                refused,
                "{kind} {argv:?}: {reply}"
            );
        }
        let exec = show(&c.cmd(&["EXEC"]));
        assert!(exec.starts_with("-EXECABORT"), "{kind}: {exec}");
        server.lift_file_size_limit();
        let solved = wait_until(Duration::from_secs(10), || {
            info_field(&mut c, "aof_last_write_status") == "ok"
        });
        assert!(solved, "{kind}: {}", server.log_text());
        assert_eq!(show(&c.cmd(&["SET", "b", "1"])), "+OK", "{kind}");
        assert_eq!(show(&c.cmd(&["STRLEN", "big"])), ":1048576", "{kind}");
        let log = server.log_text();
        assert!(
            log.contains("AOF write error looks solved"),
            "{kind}: {log}"
        );
    }
}

/// Under `appendfsync always` a reply promises the write is on disk: when the AOF
/// cannot be written the server exits, as Redis's, rather than hold every reply of
/// the shard (reads and INFO too) until the disk has room.
#[test]
fn an_aof_that_cannot_be_written_under_always_stops_the_server_as_redis() {
    let big = "x".repeat(1 << 20);
    let args = ["--appendonly", "yes", "--appendfsync", "always"];
    for kind in ["shardis", "redis"] {
        let mut server = Server::with_file_size_limit(256 << 10, || match kind {
            "shardis" => Server::shardis_with(2, &args),
            _ => Server::redis_with(&args),
        });
        let mut c = server.raw();
        assert_eq!(show(&c.cmd(&["SET", "a", "1"])), "+OK", "{kind}");
        c.send_cmd(&[b"SET", b"big", big.as_bytes()]);
        assert!(
            c.is_closed(Duration::from_secs(10)),
            "{kind}: still answers"
        );
        let status = server.wait_exit(Duration::from_secs(10));
        assert_eq!(status.and_then(|s| s.code()), Some(1), "{kind}");
        let log = server.log_text();
        let line =
            "Can't recover from AOF write error when the AOF fsync policy is 'always'. Exiting...";
        assert!(log.contains(line), "{kind}: {log}");
    }
}

#[test]
fn save_commands_reply_as_redis() {
    let dir = scratch("cmds");
    let s = shardis_in(&dir, 2, &[]);
    let mut c = s.conn();
    let before: i64 = redis::cmd("LASTSAVE").query(&mut c).unwrap();
    c.set::<_, _, ()>("k", "v").unwrap();
    let info: String = redis::cmd("INFO").arg("persistence").query(&mut c).unwrap();
    assert!(info.contains("rdb_changes_since_last_save:1"), "{info}");
    std::thread::sleep(Duration::from_millis(1100));
    let r: String = redis::cmd("BGSAVE").query(&mut c).unwrap();
    assert_eq!(r, "Background saving started");
    wait_bgsave(&mut c);
    let after: i64 = redis::cmd("LASTSAVE").query(&mut c).unwrap();
    assert!(after > before);
    let info: String = redis::cmd("INFO").arg("persistence").query(&mut c).unwrap();
    assert!(info.contains("rdb_changes_since_last_save:0"), "{info}");
    assert!(info.contains("rdb_saves:1"), "{info}");
    let e = redis::cmd("BGSAVE")
        .arg("now")
        .query::<Value>(&mut c)
        .unwrap_err();
    assert!(e.to_string().contains("syntax error"), "{e}");
    // DEBUG RELOAD: save, empty, load: same contents.
    fill(&mut c, 5);
    let d = digest(&mut c);
    let r: String = redis::cmd("DEBUG").arg("RELOAD").query(&mut c).unwrap();
    assert_eq!(r, "OK");
    assert_eq!(digest(&mut c), d);
}
