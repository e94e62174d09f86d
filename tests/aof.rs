//! The append-only file against crashes: SIGKILL at random moments with
//! `appendfsync always` loses no acknowledged write and never half a transaction;
//! `everysec` loses at most about a second; a restart with another `threads` value
//! loses nothing; torn tails, garbage and missing files are handled as Redis does.
//!
//! The servers here are started by hand (not through `common::Server`) because a
//! restart must reuse the same directory.

mod common;

use common::{free_port, shard_of};
use redis::Commands;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Proc {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "shardis-aof-{}-{tag}-{}",
        std::process::id(),
        free_port()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Start Shardis on `dir` with the AOF on; Err(log) if it exits before answering.
fn start(dir: &Path, threads: usize, extra: &[&str]) -> Result<Proc, String> {
    for _ in 0..5 {
        let port = free_port();
        let log = dir.join(format!("server-{port}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_shardis"))
            .args([
                "--port",
                &port.to_string(),
                "--threads",
                &threads.to_string(),
            ])
            .args(["--save", "", "--appendonly", "yes", "--dir"])
            .arg(dir)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        let mut p = Proc { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(_)) = p.child.try_wait() {
                let text = std::fs::read_to_string(&p.log).unwrap_or_default();
                if text.contains("ddress already in use") {
                    break;
                }
                return Err(text);
            }
            if let Ok(mut c) = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
                .unwrap()
                .get_connection_with_timeout(Duration::from_millis(200))
            {
                if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    return Ok(p);
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no answer: {}",
                    std::fs::read_to_string(&p.log).unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Err("no free port".into())
}

impl Proc {
    fn conn(&self) -> redis::Connection {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(10))
            .unwrap()
    }
    fn kill9(mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Two keys on different shards of a `threads`-shard server.
fn pair(prefix: &str, nshards: usize) -> (String, String) {
    let a = format!("{prefix}:a");
    let b = (0..1000)
        .map(|i| format!("{prefix}:b{i}"))
        .find(|k| shard_of(k.as_bytes(), nshards) != shard_of(a.as_bytes(), nshards))
        .unwrap();
    (a, b)
}

/// What writers saw acknowledged.
#[derive(Default)]
struct Acked {
    counters: Vec<(String, i64)>,
    lists: Vec<(String, i64)>,
    sets: Vec<(String, String)>,
    /// (key a, key b, value) of transactions that set both keys to one value.
    txs: Vec<(String, String, i64)>,
}

/// One crash round: writers hammer the server; SIGKILL after `kill_after`; restart;
/// check every acknowledged write.
fn crash_round(dir: &Path, round: usize, kill_after: Duration) {
    let p = start(dir, 2, &["--appendfsync", "always"]).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (stop, acked) = (stop.clone(), acked.clone());
        let mut c = p.conn();
        writers.push(std::thread::spawn(move || {
            let ctr = format!("r{round}:w{w}:ctr");
            let list = format!("r{round}:w{w}:list");
            let (ta, tb) = pair(&format!("r{round}:w{w}:tx"), 2);
            let mut i = 0i64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let ok = match i % 4 {
                    0 => c
                        .incr::<_, _, i64>(&ctr, 1)
                        .map(|v| acked.lock().unwrap().counters.push((ctr.clone(), v))),
                    1 => c
                        .rpush::<_, _, i64>(&list, i)
                        .map(|n| acked.lock().unwrap().lists.push((list.clone(), n))),
                    2 => {
                        let k = format!("r{round}:w{w}:s{i}");
                        c.set::<_, _, ()>(&k, i)
                            .map(|_| acked.lock().unwrap().sets.push((k, i.to_string())))
                    }
                    _ => redis::pipe()
                        .atomic()
                        .set(&ta, i)
                        .set(&tb, i)
                        .query::<()>(&mut c)
                        .map(|_| acked.lock().unwrap().txs.push((ta.clone(), tb.clone(), i))),
                };
                if ok.is_err() {
                    return;
                }
            }
        }));
    }
    std::thread::sleep(kill_after);
    p.kill9();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        let _ = w.join();
    }
    let p = start(dir, 2, &["--appendfsync", "always"])
        .unwrap_or_else(|log| panic!("restart failed:\n{log}"));
    let mut c = p.conn();
    let a = acked.lock().unwrap();
    for (k, v) in &a.counters {
        let got: Option<i64> = c.get(k).unwrap();
        assert!(
            got.unwrap_or(0) >= *v,
            "round {round}: {k} = {got:?}, acknowledged {v}"
        );
    }
    for (k, n) in &a.lists {
        let got: i64 = c.llen(k).unwrap();
        assert!(got >= *n, "round {round}: {k} has {got}, acknowledged {n}");
    }
    for (k, v) in &a.sets {
        let got: Option<String> = c.get(k).unwrap();
        assert_eq!(got.as_ref(), Some(v), "round {round}: {k}");
    }
    // A transaction is never half applied, and the last acknowledged one is there.
    let mut last: std::collections::HashMap<(String, String), i64> = Default::default();
    for (ta, tb, v) in &a.txs {
        last.insert((ta.clone(), tb.clone()), *v);
    }
    for ((ta, tb), v) in last {
        let x: Option<i64> = c.get(&ta).unwrap();
        let y: Option<i64> = c.get(&tb).unwrap();
        assert_eq!(x, y, "round {round}: transaction half applied ({ta}, {tb})");
        assert!(
            x.unwrap_or(0) >= v,
            "round {round}: {ta} = {x:?}, acknowledged {v}"
        );
    }
    drop(p);
}

#[test]
fn sigkill_with_fsync_always_loses_no_acknowledged_write() {
    let dir = scratch("crash");
    let mut seed = std::process::id() as u64 * 2654435761 + 17;
    for round in 0..20 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let ms = 50 + seed % 400;
        crash_round(&dir, round, Duration::from_millis(ms));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `everysec` fsyncs once a second, but a reply still waits for its record to be
/// written to the file (as Redis writes before it replies): a killed process loses no
/// acknowledged write. (Only a machine crash can lose the last second, which a test
/// here cannot cause.)
#[test]
fn sigkill_with_everysec_loses_no_acknowledged_write() {
    let dir = scratch("everysec");
    let p = start(&dir, 2, &["--appendfsync", "everysec"]).unwrap();
    let mut c = p.conn();
    let started = Instant::now();
    let mut acked = 0i64;
    while started.elapsed() < Duration::from_millis(1500) {
        acked = c.incr("ctr", 1).unwrap();
    }
    p.kill9();
    let p = start(&dir, 2, &["--appendfsync", "everysec"]).unwrap();
    let got: i64 = p.conn().get("ctr").unwrap();
    assert_eq!(
        got, acked,
        "acknowledged {acked}, found {got} after SIGKILL"
    );
    drop(p);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn restart_with_more_threads_loses_nothing() {
    let dir = scratch("threads");
    let p = start(&dir, 1, &["--appendfsync", "always"]).unwrap();
    let mut c = p.conn();
    for i in 0..300 {
        let _: () = c.set(format!("k{i}"), i).unwrap();
    }
    let _: () = c.rpush("list", &[1, 2, 3]).unwrap();
    let _: i64 = c.del("k7").unwrap();
    drop(c);
    p.kill9();
    let p = start(&dir, 3, &["--appendfsync", "always"]).unwrap();
    let mut c = p.conn();
    let n: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, 300);
    let v: i64 = c.get("k299").unwrap();
    assert_eq!(v, 299);
    // Writes after the change land in the new generation and survive too.
    let _: () = c.set("after", 1).unwrap();
    let (a, b) = pair("t", 3);
    let _: () = redis::pipe()
        .atomic()
        .set(&a, 5)
        .set(&b, 5)
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("RENAME")
        .arg(&a)
        .arg(format!("{b}:x"))
        .query(&mut c)
        .unwrap();
    drop(c);
    p.kill9();
    let p = start(&dir, 2, &["--appendfsync", "always"]).unwrap();
    let mut c = p.conn();
    let n: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, 303, "{}", p.log_text());
    let lr: Vec<i64> = c.lrange("list", 0, -1).unwrap();
    assert_eq!(lr, vec![1, 2, 3]);
    let moved: Option<i64> = c.get(format!("{b}:x")).unwrap();
    assert_eq!(moved, Some(5));
    drop(p);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The increment files of `dir` by name.
fn incr_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("appendonlydir"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".incr.aof"))
        .collect();
    v.sort();
    v
}

#[test]
fn torn_tail_garbage_and_missing_files() {
    let dir = scratch("torn");
    let p = start(&dir, 1, &[]).unwrap();
    let mut c = p.conn();
    for i in 0..10 {
        let _: () = c.set(format!("k{i}"), "value").unwrap();
    }
    drop(c);
    p.kill9();
    let f = incr_files(&dir).pop().unwrap();
    let len = std::fs::metadata(&f).unwrap().len();
    // Cut the last record in its middle.
    let file = std::fs::OpenOptions::new().write(true).open(&f).unwrap();
    file.set_len(len - 5).unwrap();
    drop(file);
    let p = start(&dir, 1, &[]).unwrap();
    let n: i64 = redis::cmd("DBSIZE").query(&mut p.conn()).unwrap();
    assert_eq!(n, 9);
    let log = p.log_text();
    assert!(
        log.contains("short read while loading the AOF file"),
        "{log}"
    );
    assert!(log.contains("Truncating the AOF incr file"), "{log}");
    p.kill9();
    // With aof-load-truncated no, a torn tail refuses the start.
    let mut bytes = std::fs::read(&f).unwrap();
    bytes.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$1");
    std::fs::write(&f, &bytes).unwrap();
    let err = start(&dir, 1, &["--aof-load-truncated", "no"])
        .err()
        .expect("must refuse");
    assert!(err.contains("Unexpected end of file"), "{err}");
    // Garbage in the middle: refused, naming file and offset.
    let good = bytes.len() - 15;
    let mut bad = bytes[..good].to_vec();
    bad.extend_from_slice(b"this is not RESP\r\n");
    bad.extend_from_slice(&bytes[..40.min(good)]);
    std::fs::write(&f, &bad).unwrap();
    let err = start(&dir, 1, &[]).err().expect("must refuse garbage");
    let name = f.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        err.contains(&name) && err.contains(&format!("offset {good}")),
        "{err}"
    );
    // A manifest naming a missing file: refused, naming it.
    std::fs::remove_file(&f).unwrap();
    let err = start(&dir, 1, &[])
        .err()
        .expect("must refuse a missing file");
    assert!(
        err.contains(&name) && err.contains("doesn't exist"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rewritten_records_replay_to_the_same_state() {
    let dir = scratch("records");
    let p = start(&dir, 2, &[]).unwrap();
    let mut c = p.conn();
    let q = |c: &mut redis::Connection, args: &[&str]| -> redis::Value {
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query(c).unwrap()
    };
    q(&mut c, &["SET", "short", "v", "PX", "300"]);
    q(&mut c, &["SET", "long", "v", "EX", "1000"]);
    q(&mut c, &["SET", "gone", "v"]);
    q(&mut c, &["EXPIRE", "gone", "1"]);
    q(&mut c, &["SET", "f", "1.5"]);
    q(&mut c, &["INCRBYFLOAT", "f", "1"]);
    q(&mut c, &["HINCRBYFLOAT", "h", "x", "0.5"]);
    q(&mut c, &["SADD", "s", "a", "b", "c", "d"]);
    q(&mut c, &["SPOP", "s", "2"]);
    q(&mut c, &["RPUSH", "l", "a", "b", "c"]);
    q(&mut c, &["BLPOP", "l", "0"]);
    q(&mut c, &["SET", "p", "v", "EX", "100"]);
    q(&mut c, &["PERSIST", "p"]);
    let members: Vec<String> = c.smembers("s").unwrap();
    let ttl_long: i64 = c.pttl("long").unwrap();
    q(&mut c, &["SELECT", "3"]);
    q(&mut c, &["SET", "in3", "x"]);
    drop(c);
    std::thread::sleep(Duration::from_millis(1100));
    p.kill9();
    let p = start(&dir, 2, &[]).unwrap();
    let mut c = p.conn();
    let exists: i64 = c.exists(&["short", "gone"]).unwrap();
    assert_eq!(exists, 0);
    let ttl: i64 = c.pttl("long").unwrap();
    assert!(
        ttl <= ttl_long && ttl > ttl_long - 5000,
        "{ttl} vs {ttl_long}"
    );
    assert_eq!(c.get::<_, String>("f").unwrap(), "2.5");
    assert_eq!(c.hget::<_, _, String>("h", "x").unwrap(), "0.5");
    let mut now: Vec<String> = c.smembers("s").unwrap();
    let mut was = members;
    now.sort();
    was.sort();
    assert_eq!(now, was);
    assert_eq!(c.lrange::<_, Vec<String>>("l", 0, -1).unwrap(), ["b", "c"]);
    assert_eq!(c.ttl::<_, i64>("p").unwrap(), -1);
    q(&mut c, &["SELECT", "3"]);
    assert_eq!(c.get::<_, String>("in3").unwrap(), "x");
    drop(p);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- Rewrite (BGREWRITEAOF, automatic, CONFIG SET appendonly) -----------------------

fn config_set(c: &mut redis::Connection, name: &str, value: &str) {
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg(name)
        .arg(value)
        .query(c)
        .unwrap();
}

fn info_field(c: &mut redis::Connection, name: &str) -> String {
    let text: String = redis::cmd("INFO").arg("persistence").query(c).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or("")
        .trim()
        .to_string()
}

/// Wait until `aof_rewrites` reaches `n` and no rewrite runs.
fn wait_rewrites(c: &mut redis::Connection, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let done: u64 = info_field(c, "aof_rewrites").parse().unwrap_or(0);
        if done >= n && info_field(c, "aof_rewrite_in_progress") == "0" {
            return;
        }
        assert!(Instant::now() < deadline, "rewrite {n} did not finish");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The manifest's file names, and every file in the AOF directory.
fn aof_dir(dir: &Path) -> (Vec<String>, Vec<String>) {
    let d = dir.join("appendonlydir");
    let text = std::fs::read_to_string(d.join("appendonly.aof.manifest")).unwrap();
    let mut named: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .collect();
    named.sort();
    let mut present: Vec<String> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "appendonly.aof.manifest")
        .collect();
    present.sort();
    (named, present)
}

/// Writers on several shards (INCRs and cross-shard MULTIs) until `stop`; what was
/// acknowledged goes to `acked`.
fn rewrite_writers(
    p: &Proc,
    tag: &str,
    stop: &Arc<AtomicBool>,
    acked: &Arc<Mutex<Acked>>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..3)
        .map(|w| {
            let (stop, acked) = (stop.clone(), acked.clone());
            let mut c = p.conn();
            let tag = tag.to_string();
            std::thread::spawn(move || {
                let (ta, tb) = pair(&format!("{tag}:w{w}:tx"), 3);
                let mut i = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let ok = if i % 3 == 0 {
                        redis::pipe()
                            .atomic()
                            .set(&ta, i)
                            .incr(&tb, 1)
                            .set(&tb, i)
                            .query::<()>(&mut c)
                            .map(|_| acked.lock().unwrap().txs.push((ta.clone(), tb.clone(), i)))
                    } else {
                        let ctr = format!("{tag}:w{w}:ctr{}", i % 7);
                        c.incr::<_, _, i64>(&ctr, 1)
                            .map(|v| acked.lock().unwrap().counters.push((ctr, v)))
                    };
                    if ok.is_err() {
                        return;
                    }
                }
            })
        })
        .collect()
}

fn check_acked(c: &mut redis::Connection, a: &Acked, what: &str) {
    let mut top: std::collections::HashMap<String, i64> = Default::default();
    for (k, v) in &a.counters {
        let e = top.entry(k.clone()).or_insert(0);
        *e = (*e).max(*v);
    }
    for (k, v) in top {
        let got: Option<i64> = c.get(&k).unwrap();
        assert!(
            got.unwrap_or(0) >= v,
            "{what}: {k} = {got:?}, acknowledged {v}"
        );
    }
    let mut last: std::collections::HashMap<(String, String), i64> = Default::default();
    for (ta, tb, v) in &a.txs {
        last.insert((ta.clone(), tb.clone()), *v);
    }
    for ((ta, tb), v) in last {
        let x: Option<i64> = c.get(&ta).unwrap();
        let y: Option<i64> = c.get(&tb).unwrap();
        assert_eq!(x, y, "{what}: transaction half applied ({ta}, {tb})");
        assert!(
            x.unwrap_or(0) >= v,
            "{what}: {ta} = {x:?}, acknowledged {v}"
        );
    }
}

#[test]
fn bgrewriteaof_under_writes_then_sigkill_loses_nothing() {
    let dir = scratch("rewrite");
    let args = [
        "--appendfsync",
        "always",
        "--auto-aof-rewrite-percentage",
        "0",
    ];
    for round in 0..6 {
        let p = start(&dir, 3, &args).unwrap_or_else(|log| panic!("start failed:\n{log}"));
        let mut c = p.conn();
        let before: u64 = info_field(&mut c, "aof_rewrites").parse().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Acked::default()));
        let writers = rewrite_writers(&p, &format!("r{round}"), &stop, &acked);
        std::thread::sleep(Duration::from_millis(150));
        let r: String = redis::cmd("BGREWRITEAOF").query(&mut c).unwrap();
        assert_eq!(r, "Background append only file rewriting started");
        // Even rounds: the rewrite completes, more writes follow, then the crash.
        // Odd rounds: the crash comes at some moment during the rewrite.
        if round % 2 == 0 {
            wait_rewrites(&mut c, before + 1);
            std::thread::sleep(Duration::from_millis(100));
        } else {
            std::thread::sleep(Duration::from_millis(round as u64 * 7));
        }
        p.kill9();
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            let _ = w.join();
        }
        let p = start(&dir, 3, &args).unwrap_or_else(|log| panic!("restart failed:\n{log}"));
        let mut c = p.conn();
        check_acked(&mut c, &acked.lock().unwrap(), &format!("round {round}"));
        if round % 2 == 0 {
            let (named, present) = aof_dir(&dir);
            let bases = named.iter().filter(|n| n.ends_with(".base.rdb")).count();
            assert_eq!(bases, 3, "round {round}: one base per shard: {named:?}");
            assert_eq!(named, present, "round {round}: old files are gone");
        }
        drop(p);
    }
    // A last rewrite after the crashes leaves exactly the manifest's files.
    let p = start(&dir, 3, &args).unwrap();
    let mut c = p.conn();
    let before: u64 = info_field(&mut c, "aof_rewrites").parse().unwrap();
    let _: String = redis::cmd("BGREWRITEAOF").query(&mut c).unwrap();
    wait_rewrites(&mut c, before + 1);
    let (named, present) = aof_dir(&dir);
    assert_eq!(named.iter().filter(|n| n.ends_with(".base.rdb")).count(), 3);
    assert_eq!(named.iter().filter(|n| n.ends_with(".incr.aof")).count(), 3);
    assert_eq!(named, present);
    assert_eq!(info_field(&mut c, "aof_last_bgrewrite_status"), "ok");
    drop(p);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bgrewriteaof_replies_as_redis() {
    let dir = scratch("rewrite-replies");
    let p = start(&dir, 2, &["--auto-aof-rewrite-percentage", "0"]).unwrap();
    let mut c = p.conn();
    let mut pipe = redis::pipe();
    for i in 0..20000 {
        pipe.set(format!("k{i}"), "x".repeat(100)).ignore();
    }
    pipe.query::<()>(&mut c).unwrap();
    // Raw replies, checked byte for byte; two in one batch: the second finds the
    // first running.
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    s.write_all(b"BGREWRITEAOF\r\nBGREWRITEAOF\r\n").unwrap();
    let want = b"+Background append only file rewriting started\r\n-ERR Background append only file rewriting already in progress\r\n";
    let mut got = vec![0u8; want.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
    wait_rewrites(&mut c, 1);
    s.write_all(b"BGSAVE\r\nBGREWRITEAOF\r\n").unwrap();
    let want =
        b"+Background saving started\r\n+Background append only file rewriting scheduled\r\n";
    let mut got = vec![0u8; want.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
    // The scheduled rewrite runs once the save ends.
    wait_rewrites(&mut c, 2);
    assert_eq!(info_field(&mut c, "aof_rewrite_scheduled"), "0");
    assert_eq!(info_field(&mut c, "aof_last_bgrewrite_status"), "ok");
    drop(p);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn automatic_rewrite_on_growth() {
    let dir = scratch("rewrite-auto");
    let p = start(
        &dir,
        2,
        &[
            "--auto-aof-rewrite-percentage",
            "100",
            "--auto-aof-rewrite-min-size",
            "200000",
        ],
    )
    .unwrap();
    let mut c = p.conn();
    // One transaction, so the automatic rewrite (which needs the growth first) cannot
    // start in the middle of the writes and leave some of them in the new increment.
    let mut pipe = redis::pipe();
    pipe.atomic();
    for i in 0..3000 {
        pipe.set(format!("k{}", i % 100), "y".repeat(100)).ignore();
    }
    pipe.query::<()>(&mut c).unwrap();
    wait_rewrites(&mut c, 1);
    assert!(p
        .log_text()
        .contains("Starting automatic rewriting of AOF on"));
    // The rewritten AOF is small again: 100 keys.
    let size: u64 = info_field(&mut c, "aof_current_size").parse().unwrap();
    assert!(size < 100_000, "aof_current_size {size}");
    assert_eq!(info_field(&mut c, "aof_base_size"), size.to_string());
    p.kill9();
    let p = start(&dir, 2, &[]).unwrap();
    let mut c = p.conn();
    let n: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, 100);
    drop(p);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn config_set_appendonly_off_and_on_at_runtime() {
    let dir = scratch("rewrite-config");
    let p = start(&dir, 2, &["--appendfsync", "always"]).unwrap();
    let mut c = p.conn();
    let _: () = c.set("before", 1).unwrap();
    // Off before CONFIG SET returns, as in Redis.
    config_set(&mut c, "appendonly", "no");
    assert_eq!(info_field(&mut c, "aof_enabled"), "0");
    for i in 0..100 {
        let _: () = c.set(format!("off{i}"), i).unwrap();
    }
    config_set(&mut c, "appendonly", "yes");
    wait_rewrites(&mut c, 1);
    assert_eq!(info_field(&mut c, "aof_enabled"), "1");
    let _: () = c.set("after", 2).unwrap();
    p.kill9();
    let p = start(&dir, 2, &[]).unwrap();
    let mut c = p.conn();
    let n: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, 102);
    let after: Option<i64> = c.get("after").unwrap();
    assert_eq!(after, Some(2));
    drop(p);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Needs `aof::auto_rewrite` spawned on shard 0 at start whatever `appendonly` says
/// (runtime/mod.rs); with the AOF on at start, `aof::load` spawns it.
#[test]
fn config_set_appendonly_yes_from_a_server_started_without_it() {
    let dir = scratch("rewrite-config-no");
    let p = start(&dir, 2, &["--appendonly", "no"]).unwrap();
    let mut c = p.conn();
    for i in 0..100 {
        let _: () = c.set(format!("k{i}"), i).unwrap();
    }
    // As an operator's script waits: CONFIG SET returns with the rewrite that starts
    // the AOF under way (Redis's `startAppendOnly`), so waiting for
    // `aof_rewrite_in_progress:0` waits for it.
    config_set(&mut c, "appendonly", "yes");
    assert_eq!(info_field(&mut c, "aof_enabled"), "1");
    let deadline = Instant::now() + Duration::from_secs(10);
    while info_field(&mut c, "aof_rewrite_in_progress") != "0" {
        assert!(Instant::now() < deadline, "the rewrite did not end");
        std::thread::sleep(Duration::from_millis(5));
    }
    let _: () = c.set("after", 2).unwrap();
    std::thread::sleep(Duration::from_millis(1200)); // everysec
    p.kill9();
    let p = start(&dir, 2, &[]).unwrap();
    let mut c = p.conn();
    let n: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, 101);
    drop(p);
    let _ = std::fs::remove_dir_all(&dir);
}

/// SORT ... BY a pattern whose keys live on other shards, with STORE: the destination's
/// shard cannot replay the command alone, so its effect is logged; it survives a kill.
#[test]
fn sort_store_across_shards_survives_a_kill() {
    let dir = scratch("sort-store");
    let p = start(&dir, 3, &["--appendfsync", "always"]).unwrap();
    let mut c = p.conn();
    for i in 0..20 {
        let _: () = c.rpush("src", i).unwrap();
        let _: () = c.set(format!("w_{i}"), 100 - i).unwrap();
    }
    let n: i64 = redis::cmd("SORT")
        .arg("src")
        .arg("BY")
        .arg("w_*")
        .arg("STORE")
        .arg("dest")
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 20);
    let want: Vec<String> = c.lrange("dest", 0, -1).unwrap();
    assert_eq!(want.first().map(String::as_str), Some("19"));
    p.kill9();
    let p = start(&dir, 3, &["--appendfsync", "always"]).unwrap();
    let got: Vec<String> = p.conn().lrange("dest", 0, -1).unwrap();
    assert_eq!(got, want);
    drop(p);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn server_wide_writes_inside_exec_and_scripts_survive_a_kill() {
    let dir = scratch("exec-flush");
    let p = start(&dir, 2, &["--appendfsync", "always"]).unwrap();
    let mut c = p.conn();
    let (a, b) = pair("x", 2);
    let _: () = c.set(&a, "gone").unwrap();
    let _: () = c.set(&b, "gone").unwrap();
    // FLUSHALL queued in MULTI between two writes: only the later write may remain.
    let (_, _, _): (String, String, String) = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("early")
        .arg("1")
        .cmd("FLUSHALL")
        .cmd("SET")
        .arg(&a)
        .arg("kept")
        .query(&mut c)
        .unwrap();
    p.kill9();
    let p = start(&dir, 2, &["--appendfsync", "always"]).unwrap();
    let mut c = p.conn();
    let keys: Vec<String> = c.keys("*").unwrap();
    assert_eq!(keys, vec![a.clone()], "{}", p.log_text());
    // A script that writes on both shards and flushes a database in between.
    let script = "redis.call('set', KEYS[1], 'x') redis.call('flushdb') \
                  return redis.call('set', KEYS[2], 'kept')";
    let _: String = redis::cmd("EVAL")
        .arg(script)
        .arg(2)
        .arg("{s}1")
        .arg(&b)
        .query(&mut c)
        .unwrap();
    p.kill9();
    let p = start(&dir, 2, &["--appendfsync", "always"]).unwrap();
    let mut c = p.conn();
    let mut keys: Vec<String> = c.keys("*").unwrap();
    keys.sort();
    let mut want = vec![b.clone()];
    want.sort();
    assert_eq!(keys, want, "{}", p.log_text());
    drop(p);
    let _ = std::fs::remove_dir_all(&dir);
}

/// FUNCTION LOAD / DELETE are server-wide writes logged once; a rewrite puts the
/// libraries in a base. Every path back (replay, rewritten base, another `threads`)
/// ends with the same libraries and the writes functions made.
#[test]
fn function_libraries_survive_kills_rewrites_and_new_thread_counts() {
    let dir = scratch("functions");
    let lib = |name: &str, value: &str| {
        format!(
            "#!lua name={name}\nredis.register_function('{name}_set', function(k, a) \
             redis.call('set', k[1], a[1]) return '{value}' end)"
        )
    };
    let load = |c: &mut redis::Connection, code: &str, replace: bool| -> String {
        let mut cmd = redis::cmd("FUNCTION");
        cmd.arg("LOAD");
        if replace {
            cmd.arg("REPLACE");
        }
        cmd.arg(code).query(c).unwrap()
    };
    let fcall = |c: &mut redis::Connection, f: &str, k: &str| -> redis::RedisResult<String> {
        redis::cmd("FCALL").arg(f).arg(1).arg(k).arg("x").query(c)
    };
    let p = start(&dir, 2, &["--appendfsync", "always"]).unwrap();
    let mut c = p.conn();
    assert_eq!(load(&mut c, &lib("a", "v1"), false), "a");
    assert_eq!(load(&mut c, &lib("b", "v1"), false), "b");
    assert_eq!(load(&mut c, &lib("a", "v2"), true), "a");
    let _: () = redis::cmd("FUNCTION")
        .arg("DELETE")
        .arg("b")
        .query(&mut c)
        .unwrap();
    assert_eq!(fcall(&mut c, "a_set", "k1").unwrap(), "v2");
    p.kill9();
    // Replayed from the increments.
    let p = start(&dir, 2, &["--appendfsync", "always"]).unwrap();
    let mut c = p.conn();
    assert_eq!(
        fcall(&mut c, "a_set", "k2").unwrap(),
        "v2",
        "{}",
        p.log_text()
    );
    assert!(fcall(&mut c, "b_set", "k").is_err());
    let _: String = redis::cmd("BGREWRITEAOF").query(&mut c).unwrap();
    wait_rewrites(&mut c, 1);
    assert_eq!(load(&mut c, &lib("c", "v1"), false), "c");
    p.kill9();
    // From the rewritten base plus the new increment, with another thread count.
    let p = start(&dir, 3, &["--appendfsync", "always"]).unwrap();
    let mut c = p.conn();
    assert_eq!(
        fcall(&mut c, "a_set", "k3").unwrap(),
        "v2",
        "{}",
        p.log_text()
    );
    assert_eq!(fcall(&mut c, "c_set", "k4").unwrap(), "v1");
    let mut keys: Vec<String> = c.keys("k*").unwrap();
    keys.sort();
    assert_eq!(keys, ["k1", "k2", "k3", "k4"]);
    drop(p);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The tags of the multi-shard transaction parts in an AOF file, in file order.
fn tx_tags(file: &Path) -> Vec<String> {
    let text = std::fs::read(file).unwrap();
    let text = String::from_utf8_lossy(&text);
    text.split("SHARDIS.TXEND\r\n")
        .skip(1)
        .filter_map(|rest| rest.split("\r\n").nth(1).map(str::to_string))
        .collect()
}

/// A pair of transactions whose parts are in opposite orders in the two files.
fn opposite_orders(a: &[String], b: &[String]) -> Option<(String, String)> {
    let at: std::collections::HashMap<&String, usize> =
        b.iter().enumerate().map(|(i, t)| (t, i)).collect();
    let mut last: Option<(usize, &String)> = None;
    for t in a {
        let Some(&i) = at.get(t) else { continue };
        if let Some((l, prev)) = last {
            if i < l {
                return Some((prev.clone(), t.clone()));
            }
        }
        last = Some((i, t));
    }
    None
}

/// Transactions on different keys run side by side, yet every shard's stream meets
/// them in one order (loading needs it: a crash that lost a part of a later one must
/// not cut an earlier one, and what was acknowledged after it). Writers APPEND (order
/// matters) through MULTIs over each pair of three shards and alone; the files must
/// show every two transactions in the same order, and a restart after SIGKILL must
/// give back every value.
#[test]
fn transactions_on_different_keys_log_in_one_order() {
    let dir = scratch("order");
    let args = ["--appendfsync", "everysec", "--enable-debug-command", "yes"];
    let p = start(&dir, 3, &args).unwrap();
    let on = |s: usize| -> Vec<String> {
        (0..)
            .map(|i| format!("k{i}"))
            .filter(|k| shard_of(k.as_bytes(), 3) == s)
            .take(8)
            .collect()
    };
    let keys = Arc::new([on(0), on(1), on(2)]);
    let writers: Vec<_> = (0..6u64)
        .map(|w| {
            let (keys, mut c) = (keys.clone(), p.conn());
            std::thread::spawn(move || {
                let mut seed = (w + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let mut next = || {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as usize
                };
                for i in 0..600 {
                    let (x, y) = [(0, 1), (1, 2), (0, 2)][next() % 3];
                    let (a, b) = (&keys[x][next() % 8], &keys[y][next() % 8]);
                    let tok = format!("{w}.{i},");
                    if i % 3 == 0 {
                        let _: () = c.append(a, &tok).unwrap();
                    } else {
                        let _: () = redis::pipe()
                            .atomic()
                            .append(a, &tok)
                            .append(b, &tok)
                            .ignore()
                            .ignore()
                            .query(&mut c)
                            .unwrap();
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let files = incr_files(&dir);
    assert_eq!(files.len(), 3, "{files:?}");
    let tags: Vec<Vec<String>> = files.iter().map(|f| tx_tags(f)).collect();
    for (i, j) in [(0, 1), (1, 2), (0, 2)] {
        assert!(
            tags[i].len() > 100,
            "{:?} has {} parts",
            files[i],
            tags[i].len()
        );
        if let Some((t, u)) = opposite_orders(&tags[i], &tags[j]) {
            panic!(
                "{t} and {u} are in opposite orders in {:?} and {:?}",
                files[i], files[j]
            );
        }
    }
    let digest = |c: &mut redis::Connection| -> String {
        redis::cmd("DEBUG").arg("DIGEST").query(c).unwrap()
    };
    let mut c = p.conn();
    let before = digest(&mut c);
    let values: Vec<Option<String>> = keys.iter().flatten().map(|k| c.get(k).unwrap()).collect();
    drop(c);
    p.kill9();
    let p = start(&dir, 3, &args).unwrap_or_else(|log| panic!("restart failed:\n{log}"));
    let mut c = p.conn();
    let after: Vec<Option<String>> = keys.iter().flatten().map(|k| c.get(k).unwrap()).collect();
    let differ: Vec<&String> = keys
        .iter()
        .flatten()
        .zip(after.iter().zip(&values))
        .filter(|(_, (a, b))| a != b)
        .map(|(k, _)| k)
        .collect();
    assert!(
        differ.is_empty(),
        "these keys differ after the restart: {differ:?}"
    );
    assert_eq!(digest(&mut c), before);
    drop(p);
    let _ = std::fs::remove_dir_all(&dir);
}

/// What the AOF holds was acknowledged: a restart replays all of it whatever the
/// server would now refuse a client (no good replicas for `min-replicas-to-write`, a
/// read-only replica, memory over `maxmemory`), as Redis's loader, which passes no
/// such check. The first of these used to drop every write with `-NOREPLICAS`.
#[test]
fn a_restart_replays_what_the_new_settings_would_refuse() {
    let dir = scratch("refusing-settings");
    let p = start(&dir, 2, &[]).unwrap();
    let mut c = p.conn();
    for i in 0..100 {
        let _: () = c.set(format!("k{i}"), i).unwrap();
    }
    let (a, b) = pair("tx", 2);
    let _: () = redis::pipe()
        .atomic()
        .incr(&a, 1)
        .incr(&b, 1)
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("EVAL")
        .arg("redis.call('set', KEYS[1], 'lua')")
        .arg(1)
        .arg("script")
        .query(&mut c)
        .unwrap();
    p.kill9();
    let closed = free_port().to_string();
    let settings: [&[&str]; 3] = [
        &[
            "--min-replicas-to-write",
            "1",
            "--min-replicas-max-lag",
            "10",
        ],
        &["--replicaof", "127.0.0.1", &closed],
        &["--maxmemory", "1", "--maxmemory-policy", "noeviction"],
    ];
    for extra in settings {
        let p = start(&dir, 2, extra).unwrap();
        let mut c = p.conn();
        let n: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
        assert_eq!(n, 103, "{extra:?}: {}", p.log_text());
        let counts: (i64, i64) = (c.get(&a).unwrap(), c.get(&b).unwrap());
        assert_eq!(counts, (1, 1), "{extra:?}");
        assert!(!p.log_text().contains("AOF replay:"), "{}", p.log_text());
        p.kill9();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A record that fails when replayed (written here by hand: LPUSH on a string) is
/// logged and counted as Redis does, and the rest of the file still loads; with
/// `propagation-error-behavior panic` the server stops instead of starting.
#[test]
fn a_record_that_fails_on_replay_is_logged_and_counted() {
    let dir = scratch("failing-record");
    let p = start(&dir, 1, &[]).unwrap();
    let mut c = p.conn();
    let _: () = c.set("x", "string").unwrap();
    p.kill9();
    let file = incr_files(&dir).pop().unwrap();
    let mut records = std::fs::read(&file).unwrap();
    records.extend_from_slice(b"*3\r\n$5\r\nLPUSH\r\n$1\r\nx\r\n$1\r\na\r\n");
    records.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$1\r\ny\r\n$1\r\n1\r\n");
    std::fs::write(&file, records).unwrap();
    let p = start(&dir, 1, &[]).unwrap();
    let mut c = p.conn();
    let stats: String = redis::cmd("INFO").arg("stats").query(&mut c).unwrap();
    assert!(stats.contains("unexpected_error_replies:1\r\n"), "{stats}");
    let y: Option<i64> = c.get("y").unwrap();
    assert_eq!(y, Some(1));
    assert!(p.log_text().contains(
        "== CRITICAL == This server is sending an error to its AOF-loading-client: \
         '-WRONGTYPE Operation against a key holding the wrong kind of value' after \
         processing the command 'lpush'"
    ));
    p.kill9();
    let refused = start(&dir, 1, &["--propagation-error-behavior", "panic"]);
    let log = refused.err().expect("started after a failing record");
    assert!(
        log.contains("panicked sending an error to its AOF-loading-client"),
        "{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
