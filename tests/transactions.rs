//! Transactions and cross-shard atomicity against the real binary (`--threads 4`).
//!
//! The one idea to hold: every key in these tests is chosen with [`shard_of`] so that a
//! multi-key command or a MULTI block really spans shards (four shards even on a small
//! machine), and isolation is checked by an invariant that any torn or interleaved
//! execution would break: MSET writes one value to five keys, so MGET must see five
//! equal values; RENAME moves one key between two shards, so exactly one of them exists;
//! a MULTI block increments three counters, so they are always equal. Concurrency tests
//! run a bounded number of operations (no timing assumptions) and print the offending
//! observation. Reply texts (errors, WATCH invalidation) are not transcribed: the same
//! script goes to a real redis-server and the replies must be identical.

mod common;

use common::{
    info_field, keys_on_distinct_shards, on, shard_of, show, wait_until, Duo, Frame, RawConn,
    Server, Step,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const SHARDS: usize = 4;

fn bulk(s: &str) -> Frame {
    Frame::Bulk(s.as_bytes().to_vec())
}

fn ok() -> Frame {
    Frame::Simple("OK".into())
}

fn queued() -> Frame {
    Frame::Simple("QUEUED".into())
}

fn strs(xs: &[String]) -> Vec<&str> {
    xs.iter().map(String::as_str).collect()
}

/// Send several commands in one write and read all their replies.
fn pipeline(c: &mut RawConn, cmds: &[Vec<String>]) -> Vec<Frame> {
    let mut buf = Vec::new();
    for argv in cmds {
        let refs: Vec<&[u8]> = argv.iter().map(|a| a.as_bytes()).collect();
        buf.extend_from_slice(&common::encode_request(&refs));
    }
    c.send(&buf);
    cmds.iter().map(|_| c.read_frame()).collect()
}

fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// Run `f` on a thread per element of `jobs`, joining all; a panic in any is re-raised
/// with its message after the others finish.
fn run_threads<T: Send + 'static>(jobs: Vec<Box<dyn FnOnce() -> T + Send>>) -> Vec<T> {
    let handles: Vec<_> = jobs.into_iter().map(thread::spawn).collect();
    let mut out = Vec::new();
    let mut first_panic = None;
    for h in handles {
        match h.join() {
            Ok(v) => out.push(v),
            Err(e) => {
                if first_panic.is_none() {
                    first_panic = Some(e);
                }
            }
        }
    }
    if let Some(e) = first_panic {
        std::panic::resume_unwind(e);
    }
    out
}

/// Wait for the writers, tell the readers to stop (`done`), wait for them; then
/// re-raise the first panic of any of them.
fn join_writers_then_readers(
    writers: Vec<thread::JoinHandle<()>>,
    done: &AtomicBool,
    readers: Vec<thread::JoinHandle<()>>,
) {
    let ws: Vec<_> = writers.into_iter().map(|h| h.join()).collect();
    done.store(true, Ordering::Relaxed);
    let rs: Vec<_> = readers.into_iter().map(|h| h.join()).collect();
    for r in ws.into_iter().chain(rs) {
        if let Err(e) = r {
            std::panic::resume_unwind(e);
        }
    }
}

#[test]
fn chosen_keys_really_span_shards() {
    let ks = keys_on_distinct_shards("mset:", 5, SHARDS);
    let shards: Vec<usize> = ks.iter().map(|k| shard_of(k.as_bytes(), SHARDS)).collect();
    assert_eq!(shards, vec![0, 1, 2, 3, 0], "keys {ks:?}");
    // The slot function agrees with CLUSTER KEYSLOT values from redis-server.
    assert_eq!(common::key_slot(b"foo"), 12182);
    assert_eq!(common::key_slot(b"bar"), 5061);
    assert_eq!(
        common::key_slot(b"{user1000}.following"),
        common::key_slot(b"user1000")
    );
}

// ---------------------------------------------------------------------------------
// Isolation under concurrency
// ---------------------------------------------------------------------------------

#[test]
fn mset_across_shards_is_never_torn() {
    let server = Server::shardis(SHARDS);
    let keys = keys_on_distinct_shards("mset:", 5, SHARDS);
    const WRITERS: usize = 3;
    const READERS: usize = 3;
    const OPS: usize = 2000;
    let done = Arc::new(AtomicBool::new(false));
    let mut jobs: Vec<Box<dyn FnOnce() -> usize + Send>> = Vec::new();
    for w in 0..WRITERS {
        let mut c = server.raw();
        let keys = keys.clone();
        jobs.push(Box::new(move || {
            for n in 0..OPS {
                let v = format!("w{w}-{n}");
                let mut a = vec!["MSET".to_string()];
                for k in &keys {
                    a.push(k.clone());
                    a.push(v.clone());
                }
                let r = c.cmd(&strs(&a));
                assert_eq!(r, ok(), "writer {w}: MSET #{n} answered {}", show(&r));
            }
            OPS
        }));
    }
    for rd in 0..READERS {
        let mut c = server.raw();
        let keys = keys.clone();
        let done = done.clone();
        jobs.push(Box::new(move || {
            let mut a = vec!["MGET".to_string()];
            a.extend(keys.iter().cloned());
            let mut n = 0;
            // At least OPS reads, and on until the writers finish (bounded by 10*OPS).
            while n < OPS || (!done.load(Ordering::Relaxed) && n < 10 * OPS) {
                let r = c.cmd(&strs(&a));
                match &r {
                    Frame::Array(vs) if vs.len() == keys.len() => {
                        assert!(
                            vs.iter().all(|v| *v == vs[0]),
                            "reader {rd}: torn MSET seen by read #{n}: MGET {} -> {}",
                            keys.join(" "),
                            show(&r)
                        );
                    }
                    _ => panic!("reader {rd}: MGET answered {}", show(&r)),
                }
                n += 1;
            }
            n
        }));
    }
    // Writers are the first WRITERS jobs; flag completion from a watcher so readers
    // keep reading while any writer runs.
    let handles: Vec<_> = jobs.into_iter().map(thread::spawn).collect();
    let mut results = Vec::new();
    for (i, h) in handles.into_iter().enumerate() {
        results.push(h.join());
        if i + 1 == WRITERS {
            done.store(true, Ordering::Relaxed);
        }
    }
    for r in results {
        if let Err(e) = r {
            std::panic::resume_unwind(e);
        }
    }
    // The last MSET left one value everywhere.
    let mut c = server.raw();
    let mut a = vec!["MGET".to_string()];
    a.extend(keys.iter().cloned());
    let r = c.cmd(&strs(&a));
    match &r {
        Frame::Array(vs) => assert!(
            vs.iter().all(|v| *v == vs[0] && *v != Frame::NullBulk),
            "final MGET {}",
            show(&r)
        ),
        _ => panic!("final MGET {}", show(&r)),
    }
}

#[test]
fn rename_between_shards_keeps_exactly_one_key() {
    let server = Server::shardis(SHARDS);
    let ks = keys_on_distinct_shards("ren:", 2, SHARDS);
    let (src, dst) = (ks[0].clone(), ks[1].clone());
    assert_ne!(
        shard_of(src.as_bytes(), SHARDS),
        shard_of(dst.as_bytes(), SHARDS)
    );
    let mut setup = server.raw();
    assert_eq!(setup.cmd(&["SET", &src, "payload"]), ok());
    const ROUNDS: usize = 1500;
    let done = Arc::new(AtomicBool::new(false));

    let mut renamer = server.raw();
    let (s1, d1, done1) = (src.clone(), dst.clone(), done.clone());
    let renamer = thread::spawn(move || {
        for n in 0..ROUNDS {
            let r = renamer.cmd(&["RENAME", &s1, &d1]);
            assert_eq!(r, ok(), "RENAME {s1} {d1} #{n}: {}", show(&r));
            let r = renamer.cmd(&["RENAME", &d1, &s1]);
            assert_eq!(r, ok(), "RENAME {d1} {s1} #{n}: {}", show(&r));
        }
        done1.store(true, Ordering::Relaxed);
    });
    let mut readers = Vec::new();
    for rd in 0..2 {
        let mut c = server.raw();
        let (s, d, done) = (src.clone(), dst.clone(), done.clone());
        readers.push(thread::spawn(move || {
            let mut n = 0;
            while !done.load(Ordering::Relaxed) && n < 20 * ROUNDS {
                if rd == 0 {
                    let r = c.cmd(&["MGET", &s, &d]);
                    let good = matches!(&r, Frame::Array(v) if v.len() == 2
                        && v.iter().filter(|x| **x == bulk("payload")).count() == 1
                        && v.iter().filter(|x| **x == Frame::NullBulk).count() == 1);
                    assert!(
                        good,
                        "read #{n}: MGET {s} {d} -> {} (want exactly one)",
                        show(&r)
                    );
                } else {
                    let r = c.cmd(&["EXISTS", &s, &d]);
                    assert_eq!(
                        r,
                        Frame::Int(1),
                        "read #{n}: EXISTS {s} {d} -> {} (want exactly one)",
                        show(&r)
                    );
                }
                n += 1;
            }
        }));
    }
    let r1 = renamer.join();
    let rs: Vec<_> = readers.into_iter().map(|h| h.join()).collect();
    if let Err(e) = r1 {
        std::panic::resume_unwind(e);
    }
    for r in rs {
        if let Err(e) = r {
            std::panic::resume_unwind(e);
        }
    }
    assert_eq!(setup.cmd(&["GET", &src]), bulk("payload"));
    assert_eq!(setup.cmd(&["EXISTS", &dst]), Frame::Int(0));
}

#[test]
fn multi_incr_on_three_shards_keeps_counters_equal() {
    let server = Server::shardis(SHARDS);
    let cs = keys_on_distinct_shards("ctr:", 3, SHARDS);
    const WRITERS: usize = 3;
    const EXECS: usize = 700;
    let done = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let mut c = server.raw();
        let cs = cs.clone();
        writers.push(thread::spawn(move || {
            let block = vec![
                argv(&["MULTI"]),
                argv(&["INCR", &cs[0]]),
                argv(&["INCR", &cs[1]]),
                argv(&["INCR", &cs[2]]),
                argv(&["EXEC"]),
            ];
            for n in 0..EXECS {
                let r = pipeline(&mut c, &block);
                let shape_ok = r[0] == ok()
                    && r[1..4].iter().all(|f| *f == queued())
                    && matches!(&r[4], Frame::Array(v) if v.len() == 3
                        && matches!(v[0], Frame::Int(_))
                        && v.iter().all(|x| *x == v[0]));
                assert!(
                    shape_ok,
                    "writer {w} block #{n}: MULTI; INCR {0}; INCR {1}; INCR {2}; EXEC -> {3}",
                    cs[0],
                    cs[1],
                    cs[2],
                    r.iter().map(show).collect::<Vec<_>>().join(" | ")
                );
            }
        }));
    }
    let mut readers = Vec::new();
    for rd in 0..3 {
        let mut c = server.raw();
        let (cs, done) = (cs.clone(), done.clone());
        readers.push(thread::spawn(move || {
            let mut n = 0;
            while !done.load(Ordering::Relaxed) && n < 50_000 {
                let r = c.cmd(&["MGET", &cs[0], &cs[1], &cs[2]]);
                let good =
                    matches!(&r, Frame::Array(v) if v.len() == 3 && v.iter().all(|x| *x == v[0]));
                assert!(
                    good,
                    "reader {rd} read #{n}: MGET {} -> {} (counters must be equal)",
                    cs.join(" "),
                    show(&r)
                );
                n += 1;
            }
        }));
    }
    join_writers_then_readers(writers, &done, readers);
    let total = (WRITERS * EXECS).to_string();
    let mut c = server.raw();
    let r = c.cmd(&["MGET", &cs[0], &cs[1], &cs[2]]);
    assert_eq!(
        r,
        Frame::Array(vec![bulk(&total), bulk(&total), bulk(&total)]),
        "after {total} EXECs"
    );
}

/// Transactions claim keys, not shards: blocks on overlapping pairs of four counters
/// (spread over four shards) queue behind each other where they share a key and run
/// side by side where they do not. Every block adds 2 to the sum, so a consistent
/// snapshot (MGET, itself a transaction) always sees an even sum, and at the end each
/// counter holds exactly the number of blocks that named it (no lost update).
#[test]
fn overlapping_transactions_on_shared_shards_stay_isolated() {
    let server = Server::shardis(SHARDS);
    let cs = keys_on_distinct_shards("pair:", 4, SHARDS);
    let pairs = [(0, 1), (1, 2), (2, 3), (3, 0), (0, 2)];
    const EXECS: usize = 400;
    let done = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for (w, &(a, b)) in pairs.iter().enumerate() {
        let mut c = server.raw();
        let (ka, kb) = (cs[a].clone(), cs[b].clone());
        writers.push(thread::spawn(move || {
            let block = vec![
                argv(&["MULTI"]),
                argv(&["INCR", &ka]),
                argv(&["INCR", &kb]),
                argv(&["EXEC"]),
            ];
            for n in 0..EXECS {
                let r = pipeline(&mut c, &block);
                let good = matches!(&r[3], Frame::Array(v) if v.len() == 2);
                assert!(
                    good,
                    "writer {w} block #{n}: INCR {ka}; INCR {kb} -> {}",
                    show(&r[3])
                );
            }
        }));
    }
    let mut readers = Vec::new();
    for rd in 0..2 {
        let mut c = server.raw();
        let (cs, done) = (cs.clone(), done.clone());
        readers.push(thread::spawn(move || {
            let mut n = 0;
            while !done.load(Ordering::Relaxed) && n < 50_000 {
                let r = c.cmd(&["MGET", &cs[0], &cs[1], &cs[2], &cs[3]]);
                let Frame::Array(vs) = &r else {
                    panic!("reader {rd}: MGET answered {}", show(&r))
                };
                let sum: i64 = vs
                    .iter()
                    .map(|v| match v {
                        Frame::Bulk(b) => String::from_utf8_lossy(b).parse::<i64>().unwrap(),
                        _ => 0,
                    })
                    .sum();
                assert!(
                    sum % 2 == 0,
                    "reader {rd} read #{n}: odd sum in {}",
                    show(&r)
                );
                n += 1;
            }
        }));
    }
    join_writers_then_readers(writers, &done, readers);
    let mut c = server.raw();
    for (i, k) in cs.iter().enumerate() {
        let named = pairs.iter().filter(|&&(a, b)| a == i || b == i).count() * EXECS;
        assert_eq!(c.cmd(&["GET", k]), bulk(&named.to_string()), "counter {k}");
    }
}

/// Work outside a transaction may pass it by key, but never sees it half done: a
/// reader that has seen MSET #n on one shard then finds at least #n on the other.
/// Clients reading a long list on each shard keep the shards busy, so that an MSET's
/// part often waits on one shard while its other part has run.
#[test]
fn single_key_reads_never_see_a_multi_shard_write_half_done() {
    let server = Server::shardis(SHARDS);
    let ks = keys_on_distinct_shards("causal:", 4, SHARDS);
    const WRITES: usize = 3000;
    let done = Arc::new(AtomicBool::new(false));
    let mut busy = Vec::new();
    for list in [&ks[2], &ks[3]] {
        let mut c = server.raw();
        let items: Vec<String> = (0..20_000).map(|i| i.to_string()).collect();
        let mut push = vec!["RPUSH".to_string(), list.clone()];
        push.extend(items);
        assert_eq!(c.cmd(&strs(&push)), Frame::Int(20_000));
        let (list, done) = (list.clone(), done.clone());
        busy.push(thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                c.cmd(&["LRANGE", &list, "0", "-1"]);
            }
        }));
    }
    let mut c = server.raw();
    let (k0, k1) = (ks[0].clone(), ks[1].clone());
    let writer = thread::spawn(move || {
        for n in 1..=WRITES {
            let v = n.to_string();
            assert_eq!(c.cmd(&["MSET", &k0, &v, &k1, &v]), ok(), "MSET #{n}");
        }
    });
    let mut readers = Vec::new();
    for (rd, (first, second)) in [(0, 1), (1, 0)].into_iter().enumerate() {
        let mut c = server.raw();
        let (a, b, done) = (ks[first].clone(), ks[second].clone(), done.clone());
        readers.push(thread::spawn(move || {
            let value = |f: Frame| match f {
                Frame::Bulk(b) => String::from_utf8_lossy(&b).parse::<usize>().unwrap(),
                _ => 0,
            };
            let mut n = 0;
            while !done.load(Ordering::Relaxed) && n < 100_000 {
                let seen = value(c.cmd(&["GET", &a]));
                let then = value(c.cmd(&["GET", &b]));
                assert!(
                    then >= seen,
                    "reader {rd}: GET {a} gave MSET #{seen}, then GET {b} gave #{then}"
                );
                n += 1;
            }
        }));
    }
    readers.extend(busy);
    join_writers_then_readers(vec![writer], &done, readers);
}

#[test]
fn watch_optimistic_counter_over_two_shards() {
    let server = Server::shardis(SHARDS);
    let ks = keys_on_distinct_shards("opt:", 2, SHARDS);
    let (c_key, mirror) = (ks[0].clone(), ks[1].clone());
    const CLIENTS: usize = 8;
    const K: usize = 100;
    let attempts = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut jobs: Vec<Box<dyn FnOnce() + Send>> = Vec::new();
    for w in 0..CLIENTS {
        let mut c = server.raw();
        let (ck, mk, attempts) = (c_key.clone(), mirror.clone(), attempts.clone());
        jobs.push(Box::new(move || {
            let mut done = 0;
            while done < K {
                assert!(
                    Instant::now() < deadline,
                    "client {w}: only {done} of {K} increments in 60 s"
                );
                attempts.fetch_add(1, Ordering::Relaxed);
                assert_eq!(c.cmd(&["WATCH", &ck]), ok());
                let cur = match c.cmd(&["GET", &ck]) {
                    Frame::NullBulk => 0i64,
                    Frame::Bulk(b) => String::from_utf8_lossy(&b)
                        .parse()
                        .unwrap_or_else(|_| panic!("client {w}: GET {ck} gave non-number {b:?}")),
                    other => panic!("client {w}: GET {ck} -> {}", show(&other)),
                };
                let next = (cur + 1).to_string();
                let r = pipeline(
                    &mut c,
                    &[
                        argv(&["MULTI"]),
                        argv(&["SET", &ck, &next]),
                        argv(&["SET", &mk, &next]),
                        argv(&["EXEC"]),
                    ],
                );
                assert_eq!(&r[..3], &[ok(), queued(), queued()], "client {w}");
                match &r[3] {
                    Frame::NullArray => {}
                    Frame::Array(v) if v == &vec![ok(), ok()] => done += 1,
                    other => panic!(
                        "client {w}: WATCH {ck}; GET -> {cur}; MULTI; SET {ck} {next}; SET {mk} \
                         {next}; EXEC -> {}",
                        show(other)
                    ),
                }
            }
        }));
    }
    run_threads(jobs);
    let mut c = server.raw();
    let want = (CLIENTS * K).to_string();
    let got = c.cmd(&["MGET", &c_key, &mirror]);
    assert_eq!(
        got,
        Frame::Array(vec![bulk(&want), bulk(&want)]),
        "after {} attempts by {CLIENTS} clients",
        attempts.load(Ordering::Relaxed)
    );
}

// ---------------------------------------------------------------------------------
// WATCH invalidation, compared with redis-server
// ---------------------------------------------------------------------------------

#[test]
fn watch_invalidation_matches_redis() {
    let ks = keys_on_distinct_shards("w:", 4, SHARDS);
    let (k, other, far, far2) = (&ks[0], &ks[1], &ks[2], &ks[3]);
    let mut duo = Duo::new(Server::shardis(SHARDS), 2);
    let l = |c: usize, s: String| on(c, &s);

    let cases: Vec<(&str, Vec<Step>)> = vec![
        (
            "a key created without a change (BITFIELD ... OVERFLOW FAIL) does not abort",
            vec![
                l(0, format!("WATCH {k} {far}")),
                l(
                    1,
                    format!("BITFIELD {k} OVERFLOW FAIL SET u1 22 9223372036854775807"),
                ),
                l(0, format!("EXISTS {k}")),
                l(0, "MULTI".into()),
                l(0, format!("STRLEN {k}")),
                l(0, "EXEC".into()),
                l(0, format!("DEL {k}")),
            ],
        ),
        (
            "write from another connection",
            vec![
                l(0, format!("SET {k} 1")),
                l(0, format!("WATCH {k}")),
                l(1, format!("SET {k} 2")),
                l(0, "MULTI".into()),
                l(0, format!("INCR {k}")),
                l(0, format!("SET {far} x")),
                l(0, "EXEC".into()),
                l(0, format!("MGET {k} {far}")),
            ],
        ),
        (
            "write to an unwatched key on another shard does not abort",
            vec![
                l(0, format!("SET {k} 1")),
                l(0, format!("WATCH {k} {other}")),
                l(1, format!("SET {far} 2")),
                l(0, "MULTI".into()),
                l(0, format!("INCR {k}")),
                l(0, format!("INCR {far}")),
                l(0, "EXEC".into()),
                l(0, format!("MGET {k} {far}")),
            ],
        ),
        (
            "one of several watched keys on different shards modified",
            vec![
                l(0, format!("WATCH {k} {other} {far}")),
                l(1, format!("DEL {far}")),
                l(1, format!("SET {far2} y")),
                l(0, "MULTI".into()),
                l(0, format!("SET {k} a")),
                l(0, "EXEC".into()),
                l(0, format!("WATCH {k} {other} {far}")),
                l(1, format!("SET {far} z")),
                l(0, "MULTI".into()),
                l(0, format!("SET {k} a")),
                l(0, "EXEC".into()),
                l(0, format!("EXISTS {k}")),
            ],
        ),
        (
            "own write between WATCH and MULTI",
            vec![
                l(0, format!("WATCH {k}")),
                l(0, format!("SET {k} mine")),
                l(0, "MULTI".into()),
                l(0, format!("GET {k}")),
                l(0, "EXEC".into()),
            ],
        ),
        (
            "failed write does not touch, RENAME touches both",
            vec![
                l(0, format!("SET {k} notanumber")),
                l(0, format!("WATCH {k}")),
                l(1, format!("INCR {k}")),
                l(0, "MULTI".into()),
                l(0, format!("GET {k}")),
                l(0, "EXEC".into()),
                l(0, format!("WATCH {other}")),
                l(1, format!("RENAME {k} {other}")),
                l(0, "MULTI".into()),
                l(0, format!("GET {other}")),
                l(0, "EXEC".into()),
            ],
        ),
        (
            "expiry of a watched key",
            vec![
                l(0, format!("SET {k} v PX 50")),
                l(0, format!("WATCH {k}")),
                Step::Sleep(200),
                l(0, "MULTI".into()),
                l(0, format!("GET {k}")),
                l(0, "EXEC".into()),
            ],
        ),
        (
            "key already expired when watched",
            vec![
                l(0, format!("SET {k} v PX 20")),
                Step::Sleep(100),
                l(0, format!("WATCH {k}")),
                l(0, "MULTI".into()),
                l(0, format!("GET {k}")),
                l(0, "EXEC".into()),
            ],
        ),
        (
            "FLUSHDB from another connection",
            vec![
                l(0, format!("SET {k} v")),
                l(0, format!("WATCH {k}")),
                l(1, "FLUSHDB".into()),
                l(0, "MULTI".into()),
                l(0, format!("SET {far} x")),
                l(0, "EXEC".into()),
                l(0, format!("EXISTS {far}")),
            ],
        ),
        (
            "FLUSHDB with the watched key missing",
            vec![
                l(0, format!("SET {other} v")),
                l(0, format!("WATCH {k}")),
                l(1, "FLUSHDB".into()),
                l(0, "MULTI".into()),
                l(0, format!("SET {far} x")),
                l(0, "EXEC".into()),
            ],
        ),
        (
            "FLUSHALL from another connection, key in another db",
            vec![
                l(0, "SELECT 1".into()),
                l(0, format!("SET {k} v")),
                l(0, format!("WATCH {k}")),
                l(1, "FLUSHALL".into()),
                l(0, "MULTI".into()),
                l(0, format!("SET {far} x")),
                l(0, "EXEC".into()),
                l(0, "SELECT 0".into()),
            ],
        ),
        (
            "SWAPDB from another connection",
            vec![
                l(0, format!("SET {k} v0")),
                l(0, format!("WATCH {k}")),
                l(1, "SWAPDB 0 1".into()),
                l(0, "MULTI".into()),
                l(0, format!("GET {k}")),
                l(0, "EXEC".into()),
                l(0, format!("GET {k}")),
                l(1, "SWAPDB 0 1".into()),
            ],
        ),
        (
            "SWAPDB with the watched key in the other db only",
            vec![
                l(1, "SELECT 1".into()),
                l(1, format!("SET {other} v1")),
                l(1, "SELECT 0".into()),
                l(0, format!("WATCH {other}")),
                l(1, "SWAPDB 1 0".into()),
                l(0, "MULTI".into()),
                l(0, format!("GET {other}")),
                l(0, "EXEC".into()),
            ],
        ),
        (
            "SWAPDB of a db with itself touches nothing",
            vec![
                l(0, format!("SET {k} v")),
                l(0, format!("WATCH {k}")),
                l(1, "SWAPDB 0 0".into()),
                l(0, "MULTI".into()),
                l(0, format!("GET {k}")),
                l(0, "EXEC".into()),
            ],
        ),
        (
            "SWAPDB with the watched key in neither db",
            vec![
                l(0, format!("SET {other} v")),
                l(0, format!("WATCH {k}")),
                l(1, "SWAPDB 0 1".into()),
                l(0, "MULTI".into()),
                l(0, format!("GET {k}")),
                l(0, "EXEC".into()),
            ],
        ),
        (
            "write to the same key name in another db does not abort",
            vec![
                l(0, format!("SET {k} v")),
                l(0, format!("WATCH {k}")),
                l(1, "SELECT 1".into()),
                l(1, format!("SET {k} other-db")),
                l(1, "SELECT 0".into()),
                l(0, "MULTI".into()),
                l(0, format!("GET {k}")),
                l(0, "EXEC".into()),
            ],
        ),
        (
            "UNWATCH clears",
            vec![
                l(0, format!("WATCH {k} {far}")),
                l(0, "UNWATCH".into()),
                l(1, format!("SET {k} changed")),
                l(0, "MULTI".into()),
                l(0, format!("GET {k}")),
                l(0, "EXEC".into()),
            ],
        ),
        (
            "DISCARD clears",
            vec![
                l(0, format!("WATCH {k}")),
                l(0, "MULTI".into()),
                l(0, format!("SET {k} inside")),
                l(0, "DISCARD".into()),
                l(1, format!("SET {k} changed")),
                l(0, "MULTI".into()),
                l(0, format!("GET {k}")),
                l(0, "EXEC".into()),
            ],
        ),
        (
            "EXEC clears, even when aborted",
            vec![
                l(0, format!("WATCH {k}")),
                l(1, format!("SET {k} a")),
                l(0, "MULTI".into()),
                l(0, format!("GET {k}")),
                l(0, "EXEC".into()),
                l(1, format!("SET {k} b")),
                l(0, "MULTI".into()),
                l(0, format!("GET {k}")),
                l(0, "EXEC".into()),
            ],
        ),
        (
            "WATCH a missing key, another client creates it",
            vec![
                l(0, format!("WATCH {far2}")),
                l(1, format!("SET {far2} born")),
                l(0, "MULTI".into()),
                l(0, format!("SET {far2} mine")),
                l(0, "EXEC".into()),
                l(0, format!("GET {far2}")),
            ],
        ),
        (
            "WATCH a missing key that stays missing",
            vec![
                l(0, format!("WATCH {far2}")),
                l(1, format!("DEL {far2}")),
                l(0, "MULTI".into()),
                l(0, format!("SET {far2} mine")),
                l(0, "EXEC".into()),
            ],
        ),
        (
            "EXPIRE from another connection touches",
            vec![
                l(0, format!("SET {k} v")),
                l(0, format!("WATCH {k}")),
                l(1, format!("EXPIRE {k} 1000")),
                l(0, "MULTI".into()),
                l(0, format!("TTL {k}")),
                l(0, "EXEC".into()),
            ],
        ),
        (
            "WATCH, error-aborted EXEC, then watched key untouched",
            vec![
                l(0, format!("WATCH {k}")),
                l(0, "MULTI".into()),
                l(0, "NOSUCHCOMMAND".into()),
                l(0, "EXEC".into()),
                l(1, format!("SET {k} later")),
                l(0, "MULTI".into()),
                l(0, format!("GET {k}")),
                l(0, "EXEC".into()),
            ],
        ),
    ];
    for (name, steps) in cases {
        duo.run(name, &steps);
        duo.reset();
    }
    // RESP3: an aborted EXEC is a RESP3 null.
    duo.run(
        "RESP3 null EXEC",
        &[
            Step::Any(0, argv(&["HELLO", "3"])),
            l(0, format!("WATCH {k}")),
            l(1, format!("SET {k} 1")),
            l(0, "MULTI".into()),
            l(0, format!("GET {k}")),
            l(0, "EXEC".into()),
            l(0, "MULTI".into()),
            l(0, format!("GET {k}")),
            l(0, format!("MGET {k} {far}")),
            l(0, "EXEC".into()),
        ],
    );
    println!("{}", duo.transcript());
}

// ---------------------------------------------------------------------------------
// Error paths, compared with redis-server
// ---------------------------------------------------------------------------------

#[test]
fn transaction_errors_match_redis() {
    let ks = keys_on_distinct_shards("e:", 4, SHARDS);
    let (a, b, c, d) = (&ks[0], &ks[1], &ks[2], &ks[3]);
    let mut duo = Duo::new(Server::shardis(SHARDS), 1);
    let l = |s: String| on(0, &s);
    let cases: Vec<(&str, Vec<Step>)> = vec![
        (
            "SORT's BY / GET patterns reach every shard inside EXEC, its writes included",
            vec![
                l(format!("RPUSH {a} 3 1 2")),
                l("MSET o_1 one o_2 two o_3 three w_1 3 w_2 2 w_3 1".into()),
                l("MULTI".into()),
                l(format!("SORT {a} GET o_*")),
                l(format!("SORT {a} BY w_* GET # GET w_*")),
                l("MSET w_1 1 w_2 2 w_3 3".into()),
                l(format!("SORT {a} BY w_* STORE {b}")),
                l(format!("SORT_RO {a} BY w_* GET o_*")),
                l(format!("LRANGE {b} 0 -1")),
                l("EXEC".into()),
            ],
        ),
        (
            "unknown command while queuing",
            vec![
                l("MULTI".into()),
                l(format!("SET {a} 1")),
                l("NOSUCHCMD x y".into()),
                l(format!("SET {b} 1")),
                l("EXEC".into()),
                l(format!("MGET {a} {b}")),
                l("EXEC".into()),
            ],
        ),
        (
            "wrong arity while queuing",
            vec![
                l("MULTI".into()),
                l(format!("SET {a} 1")),
                l("GET".into()),
                l(format!("GET {a} {b}")),
                l("EXEC".into()),
                l(format!("EXISTS {a}")),
            ],
        ),
        (
            "DISCARD after a queuing error",
            vec![
                l("MULTI".into()),
                l("SET onlykey".into()),
                l("DISCARD".into()),
                l("PING".into()),
            ],
        ),
        (
            "runtime errors are returned in place",
            vec![
                l(format!("SET {a} notanumber")),
                l("MULTI".into()),
                l(format!("SET {b} 1")),
                l(format!("INCR {a}")),
                l(format!("INCR {b}")),
                l(format!("SET {c} v EX bogus")),
                l(format!("INCRBYFLOAT {d} abc")),
                l(format!("RENAME {d} {c}")),
                l(format!("MSET {c} 1 {d} 2")),
                l("EXEC".into()),
                l(format!("MGET {a} {b} {c} {d}")),
            ],
        ),
        (
            "nested MULTI",
            vec![
                l("MULTI".into()),
                l(format!("SET {a} 1")),
                l("MULTI".into()),
                l(format!("SET {b} 2")),
                l("EXEC".into()),
                l(format!("MGET {a} {b}")),
            ],
        ),
        (
            "EXEC and DISCARD without MULTI",
            vec![l("EXEC".into()), l("DISCARD".into()), l("UNWATCH".into())],
        ),
        (
            "WATCH inside MULTI",
            vec![
                l("MULTI".into()),
                l(format!("SET {a} 1")),
                l(format!("WATCH {a}")),
                l("EXEC".into()),
                l(format!("GET {a}")),
            ],
        ),
        (
            "SELECT inside MULTI changes db for later commands",
            vec![
                l(format!("SET {a} db0")),
                l("MULTI".into()),
                l("SELECT 1".into()),
                l(format!("SET {a} db1")),
                l(format!("GET {a}")),
                l("SELECT 0".into()),
                l(format!("GET {a}")),
                l("SELECT 1".into()),
                l("EXEC".into()),
                l(format!("GET {a}")),
                l("SELECT 0".into()),
                l(format!("GET {a}")),
            ],
        ),
        (
            "SELECT with a bad index inside MULTI",
            vec![
                l("MULTI".into()),
                l("SELECT 99".into()),
                l(format!("SET {a} here")),
                l("EXEC".into()),
                l(format!("GET {a}")),
            ],
        ),
        (
            "empty MULTI, DISCARD, arities of the control commands",
            vec![
                l("MULTI".into()),
                l("EXEC".into()),
                l("MULTI".into()),
                l("DISCARD".into()),
                l("MULTI extra".into()),
                l("WATCH".into()),
                l("EXEC extra".into()),
                l("UNWATCH extra".into()),
                l("MULTI".into()),
                l("DISCARD extra".into()),
                l("EXEC extra".into()),
                l("EXEC".into()),
            ],
        ),
        (
            "a cross-shard block of reads and writes",
            vec![
                l("MULTI".into()),
                l(format!("MSET {a} 1 {b} 2 {c} 3")),
                l(format!("INCR {a}")),
                l(format!("DEL {b} {d}")),
                l(format!("RENAME {c} {d}")),
                l(format!("COPY {a} {b}")),
                l(format!("MGET {a} {b} {c} {d}")),
                l(format!("EXISTS {a} {b} {c} {d}")),
                l("DBSIZE".into()),
                l("EXEC".into()),
                l(format!("MGET {a} {b} {c} {d}")),
            ],
        ),
        (
            "FLUSHDB and SWAPDB inside MULTI",
            vec![
                l(format!("SET {a} x")),
                l("MULTI".into()),
                l("SWAPDB 0 1".into()),
                l(format!("GET {a}")),
                l(format!("SET {b} y")),
                l("FLUSHDB".into()),
                l("DBSIZE".into()),
                l("SWAPDB 0 1".into()),
                l(format!("GET {a}")),
                l("EXEC".into()),
                l("DBSIZE".into()),
            ],
        ),
        (
            "lower-case and mixed-case control commands",
            vec![
                l("multi".into()),
                l(format!("set {a} 1")),
                l("Exec".into()),
                l(format!("watch {a}")),
                l("unwatch".into()),
                l("mUlTi".into()),
                l("discard".into()),
            ],
        ),
    ];
    for (name, steps) in cases {
        duo.run(name, &steps);
        duo.reset();
    }
    println!("{}", duo.transcript());
}

// ---------------------------------------------------------------------------------
// Clients that disconnect mid-transaction
// ---------------------------------------------------------------------------------

/// Read `keys` from a fresh connection; panics if no reply comes within `limit`.
fn mget_within(server: &Server, keys: &[String], limit: Duration) -> Vec<Frame> {
    let mut c = server.raw();
    c.stream.set_read_timeout(Some(limit)).expect("timeout");
    let mut a = vec!["MGET".to_string()];
    a.extend(keys.iter().cloned());
    let start = Instant::now();
    match c.cmd(&strs(&a)) {
        Frame::Array(v) => {
            assert!(start.elapsed() < limit, "MGET took {:?}", start.elapsed());
            v
        }
        other => panic!("MGET {} -> {}", keys.join(" "), show(&other)),
    }
}

#[test]
fn disconnect_inside_multi_leaves_nothing_behind() {
    let server = Server::shardis(SHARDS);
    let keys = keys_on_distinct_shards("dc:", 4, SHARDS);
    {
        let mut c = server.raw();
        assert_eq!(c.cmd(&["WATCH", &keys[0]]), ok());
        assert_eq!(c.cmd(&["MULTI"]), ok());
        for k in &keys {
            assert_eq!(c.cmd(&["SET", k, "never"]), queued());
        }
        c.close();
    }
    let got = mget_within(&server, &keys, Duration::from_secs(5));
    assert!(
        got.iter().all(|f| *f == Frame::NullBulk),
        "MULTI without EXEC left writes behind: {got:?}"
    );
    // The keys (one of them watched by the dead client) are still writable and readable.
    let mut c = server.raw();
    c.stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut a = vec!["MSET".to_string()];
    for k in &keys {
        a.push(k.clone());
        a.push("after".into());
    }
    assert_eq!(c.cmd(&strs(&a)), ok());
    assert_eq!(c.cmd(&["MULTI"]), ok());
    assert_eq!(c.cmd(&["INCR", "x"]), queued());
    assert_eq!(c.cmd(&["EXEC"]), Frame::Array(vec![Frame::Int(1)]));
    let got = mget_within(&server, &keys, Duration::from_secs(5));
    assert!(got.iter().all(|f| *f == bulk("after")), "{got:?}");
}

#[test]
fn disconnect_right_after_exec_is_all_or_nothing() {
    let server = Server::shardis(SHARDS);
    let keys = keys_on_distinct_shards("dx:", 6, SHARDS);
    // A client that closes without reading its replies has no order with other
    // connections: the server may accept and run it after a later client's
    // commands (any core accepts). So each round waits until that client is
    // gone, its transaction run or dropped, before setting the next round's
    // values; the only client left then is this observer.
    let mut obs = server.raw();
    let received = |o: &mut RawConn| -> u64 {
        info_field(o, "total_connections_received")
            .parse()
            .expect("total_connections_received")
    };
    for round in 0..40 {
        let v = format!("r{round}");
        let before = received(&mut obs);
        let mut c = server.raw();
        let mut cmds = vec![argv(&["MULTI"])];
        for k in &keys {
            cmds.push(argv(&["SET", k, &v]));
        }
        cmds.push(argv(&["EXEC"]));
        let mut buf = Vec::new();
        for a in &cmds {
            let refs: Vec<&[u8]> = a.iter().map(|x| x.as_bytes()).collect();
            buf.extend_from_slice(&common::encode_request(&refs));
        }
        c.send(&buf);
        // Vary the moment of the close: at once, or after reading part of the replies.
        if round % 3 == 1 {
            let _ = c.read_frame();
        }
        c.close();
        let got = mget_within(&server, &keys, Duration::from_secs(5));
        let prev = if round == 0 {
            Frame::NullBulk
        } else {
            bulk(&format!("r{}", round - 1))
        };
        // Either the whole block ran or none of it (the previous round's value
        // everywhere); a later read must then see it complete.
        let all_new = got.iter().all(|f| *f == bulk(&v));
        let all_old = got.iter().all(|f| *f == prev);
        assert!(
            all_new || all_old,
            "round {round}: half-applied MULTI/EXEC visible after disconnect: MGET {} -> {:?}",
            keys.join(" "),
            got.iter().map(show).collect::<Vec<_>>()
        );
        // Make the outcome deterministic for the next round: the round's client
        // and the MGET's have both come and gone.
        assert!(
            wait_until(Duration::from_secs(10), || {
                received(&mut obs) >= before + 2 && info_field(&mut obs, "connected_clients") == "1"
            }),
            "round {round}: the closed client is still connected"
        );
        let mut a = vec!["MSET".to_string()];
        for k in &keys {
            a.push(k.clone());
            a.push(v.clone());
        }
        assert_eq!(
            obs.cmd(&strs(&a)),
            ok(),
            "round {round}: MSET after disconnect"
        );
    }
    // A client blocked mid-pipeline in a huge MULTI that disconnects.
    let mut c = server.raw();
    let mut buf = Vec::new();
    buf.extend_from_slice(&common::encode_request(&[b"MULTI"]));
    for i in 0..5000 {
        let k = &keys[i % keys.len()];
        buf.extend_from_slice(&common::encode_request(&[b"INCR", k.as_bytes()]));
    }
    c.send(&buf);
    c.close();
    let mut w = server.raw();
    w.stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    assert_eq!(w.cmd(&["SET", &keys[0], "free"]), ok());
    assert_eq!(w.cmd(&["GET", &keys[0]]), bulk("free"));
}

/// What Redis's own test suite (tests/unit/multi.tcl) checks by hand, beside
/// redis-server: SWAPDB leaves a watch alone when the watched key is missing or
/// expired on both sides, DISCARD works while over `maxmemory`, and EXEC is refused
/// for what it queued when `min-replicas-to-write` cannot be met any more or the
/// server became a stale or read-only replica.
#[test]
fn swapdb_stale_keys_discard_on_oom_and_exec_after_min_replicas_as_redis() {
    let debug = ["--enable-debug-command", "yes"];
    let mut duo = Duo::pair(
        Server::shardis_with(SHARDS, &debug),
        Server::redis_with(&debug),
        2,
    );
    // A watched key in db 1 swapped with db 0, where `setup` left it: a missing key
    // replaced by an expired one and an expired one by another are no change; an
    // expired one replaced by a live one is.
    let cases: [&[&str]; 3] = [
        &["SELECT 0", "SET x foo PX 1"],
        &["SELECT 1", "SET x foo PX 1", "SELECT 0", "SET x bar PX 1"],
        &["SELECT 1", "SET x foo PX 1", "SELECT 0", "SET x bar"],
    ];
    let mut steps = vec![on(0, "DEBUG SET-ACTIVE-EXPIRE 0")];
    for setup in cases {
        steps.push(on(0, "FLUSHALL"));
        steps.extend(setup.iter().map(|l| on(0, l)));
        steps.push(Step::Sleep(5));
        for l in ["SELECT 1", "WATCH x", "SWAPDB 0 1", "MULTI", "PING", "EXEC"] {
            steps.push(on(0, l));
        }
    }
    steps.extend([
        on(0, "DEBUG SET-ACTIVE-EXPIRE 1"),
        on(0, "SELECT 0"),
        // DISCARD while over maxmemory.
        on(1, "CONFIG SET maxmemory 1"),
        on(0, "MULTI"),
        on(0, "SET x 1"),
        on(0, "PING"),
        on(0, "DISCARD"),
        on(1, "CONFIG SET maxmemory 0"),
        on(0, "PING"),
        // EXEC of a write after min-replicas-to-write became unmet.
        on(0, "SET xx 1"),
        on(0, "MULTI"),
        on(0, "INCR xx"),
        on(1, "CONFIG SET min-replicas-to-write 2"),
        on(0, "EXEC"),
        on(0, "GET xx"),
        on(0, "MULTI"),
        on(0, "GET xx"),
        on(0, "EXEC"),
        on(1, "CONFIG SET min-replicas-to-write 0"),
        // EXEC on a server that became a stale replica after queueing: refused for
        // what it queued (a read: MASTERDOWN; a write: READONLY).
        on(0, "CONFIG SET replica-serve-stale-data no"),
        on(0, "MULTI"),
        on(0, "GET xx"),
        on(1, "REPLICAOF localhsot 0"),
        on(0, "EXEC"),
        on(0, "MULTI"),
        on(0, "PING"),
        on(0, "EXEC"),
        on(1, "CONFIG SET replica-serve-stale-data yes"),
        on(0, "MULTI"),
        on(0, "INCR xx"),
        on(0, "EXEC"),
        on(1, "REPLICAOF NO ONE"),
        on(0, "GET xx"),
    ]);
    duo.run("multi.tcl's cases", &steps);
}
