//! The RDB format against a real redis-server 7.0: DUMP payloads moved both ways
//! (Redis → Shardis → Redis) and an RDB file saved by Redis read with our decoder,
//! compared by DEBUG DIGEST / DIGEST-VALUE, which hash contents and TTLs the same way
//! on both servers.
//!
//! The one idea to hold: the data set covers every type and every encoding Redis 7.0
//! chooses (int / embstr / raw strings, LZF-compressible strings, small and large
//! lists, intset and hashtable sets, listpack and hashtable hashes, listpack and
//! skiplist sorted sets), with and without TTLs and in two databases, so a mismatch in
//! any writer or reader path shows up as a digest difference naming the key.

mod common;

use common::{show, Frame, RawConn, Server};
use rand::{rngs::SmallRng, Rng, SeedableRng};
use shardis::config::EncodingLimits;
use shardis::persistence::digest;
use shardis::persistence::rdb::decode::{Item, Reader};

fn c(conn: &mut RawConn, argv: &[&[u8]]) -> Frame {
    conn.send_cmd(argv);
    conn.read_frame()
}

fn ok(conn: &mut RawConn, argv: &[&[u8]]) {
    let f = c(conn, argv);
    assert!(
        !matches!(f, Frame::Error(_)),
        "{:?}: {}",
        String::from_utf8_lossy(argv[0]),
        show(&f)
    );
}

fn redis_dbg() -> Server {
    Server::redis_with(&["--enable-debug-command", "yes"])
}
fn shardis_dbg(threads: usize) -> Server {
    Server::shardis_with(threads, &["--enable-debug-command", "yes"])
}

/// Fill db 0 and db 2 with keys of every type and encoding; returns (db, key) pairs.
fn populate(conn: &mut RawConn, seed: u64) -> Vec<(usize, Vec<u8>)> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut keys: Vec<(usize, Vec<u8>)> = Vec::new();
    let rand_bytes =
        |rng: &mut SmallRng, n: usize| -> Vec<u8> { (0..n).map(|_| rng.gen()).collect() };
    for db in [0usize, 2] {
        ok(conn, &[b"SELECT", db.to_string().as_bytes()]);
        let mut add = |k: String| keys.push((db, k.into_bytes()));
        // Strings.
        for (name, v) in [
            ("int", b"12345".to_vec()),
            ("neg", b"-7".to_vec()),
            ("i16", b"-30000".to_vec()),
            ("i32", b"2000000000".to_vec()),
            ("i64", b"9223372036854775807".to_vec()),
            ("lead0", b"0123".to_vec()),
            ("emb", b"hello world".to_vec()),
            ("lzf", b"abc".repeat(100)),
            ("bin", rand_bytes(&mut rng, 300)),
            ("empty", vec![]),
        ] {
            let k = format!("s:{name}");
            ok(conn, &[b"SET", k.as_bytes(), &v]);
            add(k);
        }
        // Lists: small, integer elements, many nodes, a big element.
        for (name, n, big) in [
            ("small", 5usize, 0usize),
            ("ints", 40, 0),
            ("large", 3000, 0),
            ("bigel", 3, 10000),
        ] {
            let k = format!("l:{name}");
            for i in 0..n {
                let v: Vec<u8> = match name {
                    "ints" => (rng.gen::<i64>() >> (i % 60)).to_string().into_bytes(),
                    _ if big > 0 && i == 1 => vec![b'z'; big],
                    _ => format!("e{i}-{}", "p".repeat(rng.gen_range(0..30))).into_bytes(),
                };
                ok(conn, &[b"RPUSH", k.as_bytes(), &v]);
            }
            add(k);
        }
        // Sets: intset (16/32/64-bit), intset past the limit, strings.
        for (name, n) in [
            ("is16", 20usize),
            ("is64", 30),
            ("isbig", 600),
            ("str", 50),
            ("binstr", 10),
        ] {
            let k = format!("t:{name}");
            for i in 0..n {
                let m: Vec<u8> = match name {
                    "is16" => (i as i64 * 7 - 50).to_string().into_bytes(),
                    "is64" => (rng.gen::<i64>() >> (i % 64)).to_string().into_bytes(),
                    "isbig" => (i as i64 * 13).to_string().into_bytes(),
                    "str" => format!("member-{i}").into_bytes(),
                    _ => rand_bytes(&mut rng, 12),
                };
                ok(conn, &[b"SADD", k.as_bytes(), &m]);
            }
            add(k);
        }
        // Hashes: listpack, table by count, table by value length.
        for (name, n, vlen) in [
            ("lp", 10usize, 5usize),
            ("big", 700, 5),
            ("longval", 3, 100),
        ] {
            let k = format!("h:{name}");
            for i in 0..n {
                let v = if i % 3 == 0 {
                    i.to_string().into_bytes()
                } else {
                    vec![b'v'; vlen]
                };
                ok(
                    conn,
                    &[b"HSET", k.as_bytes(), format!("f{i}").as_bytes(), &v],
                );
            }
            add(k);
        }
        // Sorted sets: listpack with awkward scores, skiplist by count, by length.
        let k = "z:lp".to_string();
        for (m, s) in [
            ("a", "0.1"),
            ("b", "-inf"),
            ("c", "inf"),
            ("d", "1e-300"),
            ("e", "3"),
            ("f", "-2.5"),
            ("g", "123456789012345678"),
        ] {
            ok(conn, &[b"ZADD", k.as_bytes(), s.as_bytes(), m.as_bytes()]);
        }
        add(k);
        let k = "z:skip".to_string();
        for i in 0..300 {
            let s = format!("{}", rng.gen_range(-1000.0..1000.0f64));
            ok(
                conn,
                &[
                    b"ZADD",
                    k.as_bytes(),
                    s.as_bytes(),
                    format!("m{i}").as_bytes(),
                ],
            );
        }
        add(k);
        let k = "z:longmember".to_string();
        ok(conn, &[b"ZADD", k.as_bytes(), b"1", &[b'm'; 100]]);
        ok(conn, &[b"ZADD", k.as_bytes(), b"2", b"x"]);
        add(k);
        // Streams: one node, many nodes with entries of differing fields and
        // tombstones, trimmed, emptied (a stream may be empty), IDs set by XSETID.
        let k = "x:small".to_string();
        ok(
            conn,
            &[b"XADD", k.as_bytes(), b"1-1", b"a", b"1", b"b", b"two"],
        );
        ok(
            conn,
            &[b"XADD", k.as_bytes(), b"1-2", b"a", b"3", b"b", b"four"],
        );
        add(k);
        let k = "x:large".to_string();
        for i in 1..=450u64 {
            let v = format!("{}", rng.gen::<i64>() >> (i % 60));
            let f = if i % 7 == 0 { "other" } else { "field" };
            let id = format!("{}-{}", 1000 + i / 3, i % 3);
            ok(
                conn,
                &[
                    b"XADD",
                    k.as_bytes(),
                    id.as_bytes(),
                    f.as_bytes(),
                    v.as_bytes(),
                    b"n",
                    &rand_bytes(&mut rng, 8),
                ],
            );
        }
        for id in ["1005-0", "1100-1", "1149-2"] {
            ok(conn, &[b"XDEL", k.as_bytes(), id.as_bytes()]);
        }
        ok(conn, &[b"XTRIM", k.as_bytes(), b"MAXLEN", b"400"]);
        ok(
            conn,
            &[
                b"XSETID",
                k.as_bytes(),
                b"99999-0",
                b"ENTRIESADDED",
                b"1000",
                b"MAXDELETEDID",
                b"1149-2",
            ],
        );
        add(k);
        let k = "x:empty".to_string();
        ok(conn, &[b"XADD", k.as_bytes(), b"5-5", b"f", b"v"]);
        ok(conn, &[b"XDEL", k.as_bytes(), b"5-5"]);
        add(k);
        // TTLs on some keys.
        for key in ["s:int", "l:small", "t:str", "h:lp", "z:skip", "x:small"] {
            ok(conn, &[b"PEXPIRE", key.as_bytes(), b"500000"]);
        }
    }
    ok(conn, &[b"SELECT", b"0"]);
    keys
}

fn bulk(f: Frame) -> Vec<u8> {
    match f {
        Frame::Bulk(b) => b,
        other => panic!("expected a bulk string, got {}", show(&other)),
    }
}
fn int(f: Frame) -> i64 {
    match f {
        Frame::Int(i) => i,
        other => panic!("expected an integer, got {}", show(&other)),
    }
}

/// Copy every key from `from` to `to` with DUMP / RESTORE (TTLs kept).
fn copy_all(from: &mut RawConn, to: &mut RawConn, keys: &[(usize, Vec<u8>)]) {
    for (db, k) in keys {
        let dbs = db.to_string();
        ok(from, &[b"SELECT", dbs.as_bytes()]);
        ok(to, &[b"SELECT", dbs.as_bytes()]);
        let payload = bulk(c(from, &[b"DUMP", k]));
        let ttl = int(c(from, &[b"PTTL", k])).max(0).to_string();
        let r = c(to, &[b"RESTORE", k, ttl.as_bytes(), &payload]);
        assert_eq!(
            r,
            Frame::Simple("OK".into()),
            "RESTORE {}: {}",
            String::from_utf8_lossy(k),
            show(&r)
        );
    }
    ok(from, &[b"SELECT", b"0"]);
    ok(to, &[b"SELECT", b"0"]);
}

fn digest_of(conn: &mut RawConn) -> Frame {
    c(conn, &[b"DEBUG", b"DIGEST"])
}

/// Per key of db 0: DIGEST-VALUE and OBJECT ENCODING equal on both servers.
fn same_values(a: &mut RawConn, b: &mut RawConn, keys: &[(usize, Vec<u8>)], what: &str) {
    for (db, k) in keys.iter().filter(|(db, _)| *db == 0) {
        let da = c(a, &[b"DEBUG", b"DIGEST-VALUE", k]);
        let db_ = c(b, &[b"DEBUG", b"DIGEST-VALUE", k]);
        assert_eq!(
            da,
            db_,
            "{what}: digest of db {db} key {}",
            String::from_utf8_lossy(k)
        );
        let ea = c(a, &[b"OBJECT", b"ENCODING", k]);
        let eb = c(b, &[b"OBJECT", b"ENCODING", k]);
        assert_eq!(ea, eb, "{what}: encoding of {}", String::from_utf8_lossy(k));
    }
}

#[test]
fn dump_restore_both_ways_with_redis() {
    let redis = redis_dbg();
    let shardis = shardis_dbg(4);
    let back = redis_dbg();
    let (mut r, mut s, mut r2) = (redis.raw(), shardis.raw(), back.raw());
    let keys = populate(&mut r, 7);
    // Redis → Shardis.
    copy_all(&mut r, &mut s, &keys);
    same_values(&mut r, &mut s, &keys, "redis -> shardis");
    let want = digest_of(&mut r);
    assert_ne!(want, Frame::Simple("0".repeat(40)));
    assert_eq!(
        digest_of(&mut s),
        want,
        "DEBUG DIGEST after redis -> shardis"
    );
    // Shardis → Redis.
    copy_all(&mut s, &mut r2, &keys);
    same_values(&mut r, &mut r2, &keys, "shardis -> redis");
    assert_eq!(
        digest_of(&mut r2),
        want,
        "DEBUG DIGEST after shardis -> redis"
    );
}

/// Strings are LZF-compressed as Redis compresses them: the DUMP payloads (and so RDB
/// files) hold the same bytes, for repeats, text, random bytes with repeats and
/// incompressible ones, around the sizes where compression starts and where liblzf's
/// output buffer runs out. Every key is set before any is dumped: Redis's compressor
/// starts from a table left by the last call, which could only matter for an address
/// reused since.
#[test]
fn strings_are_compressed_byte_for_byte_as_redis() {
    let (redis, shardis) = (redis_dbg(), shardis_dbg(2));
    let (mut r, mut s) = (redis.raw(), shardis.raw());
    let mut rng = SmallRng::seed_from_u64(11);
    let mut values: Vec<Vec<u8>> = Vec::new();
    for n in [
        21, 22, 23, 24, 25, 30, 50, 100, 264, 300, 1000, 8200, 70_000,
    ] {
        values.push(vec![b'a'; n]);
        values.push(b"abcdefg".iter().copied().cycle().take(n).collect());
        let text: String = (0..)
            .map(|i| format!("user:{i} name=u{} ", i * 7919 % 1000))
            .take(n / 8 + 1)
            .collect();
        values.push(text.as_bytes()[..n].to_vec());
        for alphabet in [2u8, 4, 16, 255] {
            values.push((0..n).map(|_| rng.gen_range(0..alphabet)).collect());
        }
    }
    for (i, v) in values.iter().enumerate() {
        let key = format!("k{i}");
        for conn in [&mut r, &mut s] {
            ok(conn, &[b"SET", key.as_bytes(), v]);
        }
    }
    for (i, v) in values.iter().enumerate() {
        let key = format!("k{i}");
        let want = bulk(c(&mut r, &[b"DUMP", key.as_bytes()]));
        let got = bulk(c(&mut s, &[b"DUMP", key.as_bytes()]));
        assert!(
            got == want,
            "{} bytes from {:?}: {:?} vs Redis's {:?}",
            v.len(),
            String::from_utf8_lossy(&v[..v.len().min(24)]),
            &got[..got.len().min(40)],
            &want[..want.len().min(40)]
        );
    }
}

#[test]
fn empty_dataset_digest_is_zeros() {
    let shardis = shardis_dbg(2);
    let mut s = shardis.raw();
    assert_eq!(digest_of(&mut s), Frame::Simple("0".repeat(40)));
    assert_eq!(
        c(&mut s, &[b"DEBUG", b"DIGEST-VALUE", b"nokey"]),
        Frame::Array(vec![Frame::Simple("0".repeat(40))])
    );
}

#[test]
fn bad_payloads_get_redis_errors() {
    let redis = redis_dbg();
    let shardis = shardis_dbg(2);
    let (mut r, mut s) = (redis.raw(), shardis.raw());
    ok(&mut r, &[b"RPUSH", b"l", b"a", b"b", b"c"]);
    let good = bulk(c(&mut r, &[b"DUMP", b"l"]));
    let mut cases: Vec<Vec<Vec<u8>>> = Vec::new();
    // Flipped bytes, truncation, a too-new version.
    for i in [0, 3, good.len() - 9, good.len() - 1] {
        let mut p = good.clone();
        p[i] ^= 0x20;
        cases.push(vec![b"RESTORE".to_vec(), b"k".to_vec(), b"0".to_vec(), p]);
    }
    cases.push(vec![
        b"RESTORE".to_vec(),
        b"k".to_vec(),
        b"0".to_vec(),
        good[..5].to_vec(),
    ]);
    // A checksum that is right over a body that is wrong: "Bad data format".
    let mut body = vec![18u8, 1, 2, 5, b'x', b'x', b'x', b'x', b'x'];
    body.extend_from_slice(&10u16.to_le_bytes());
    let crc = shardis::persistence::rdb::crc64::crc64(0, &body);
    body.extend_from_slice(&crc.to_le_bytes());
    cases.push(vec![
        b"RESTORE".to_vec(),
        b"k".to_vec(),
        b"0".to_vec(),
        body,
    ]);
    // Argument errors.
    for extra in [
        &["REPLACE", "IDLETIME", "-1"][..],
        &["FREQ", "300"],
        &["IDLETIME", "1", "FREQ", "1"],
        &["BOGUS"],
    ] {
        let mut a = vec![
            b"RESTORE".to_vec(),
            b"k".to_vec(),
            b"0".to_vec(),
            good.clone(),
        ];
        a.extend(extra.iter().map(|x| x.as_bytes().to_vec()));
        cases.push(a);
    }
    cases.push(vec![
        b"RESTORE".to_vec(),
        b"k".to_vec(),
        b"-5".to_vec(),
        good.clone(),
    ]);
    cases.push(vec![
        b"RESTORE".to_vec(),
        b"l".to_vec(),
        b"0".to_vec(),
        good.clone(),
    ]);
    ok(&mut s, &[b"RPUSH", b"l", b"x"]);
    for argv in &cases {
        let a: Vec<&[u8]> = argv.iter().map(|v| &v[..]).collect();
        let (x, y) = (c(&mut s, &a), c(&mut r, &a));
        assert_eq!(
            x,
            y,
            "case {:?}",
            String::from_utf8_lossy(&argv[3][..argv[3].len().min(12)])
        );
    }
    // ABSTTL in the past: OK, and the key is not created.
    let (x, y) = (
        c(&mut s, &[b"RESTORE", b"gone", b"1", &good, b"ABSTTL"]),
        c(&mut r, &[b"RESTORE", b"gone", b"1", &good, b"ABSTTL"]),
    );
    assert_eq!(x, y);
    assert_eq!(c(&mut s, &[b"EXISTS", b"gone"]), Frame::Int(0));
}

#[test]
fn redis_rdb_file_decodes_to_the_same_values() {
    let redis = redis_dbg();
    let mut r = redis.raw();
    let keys = populate(&mut r, 11);
    ok(&mut r, &[b"SAVE"]);
    let dir = match c(&mut r, &[b"CONFIG", b"GET", b"dir"]) {
        Frame::Array(v) => bulk(v[1].clone()),
        other => panic!("CONFIG GET dir: {}", show(&other)),
    };
    let path = std::path::Path::new(&String::from_utf8(dir).unwrap()).join("dump.rdb");
    let file = std::fs::File::open(&path).expect("redis wrote dump.rdb");
    let mut reader = Reader::new(file, EncodingLimits::default()).expect("header");
    let mut seen = 0;
    let mut aux = Vec::new();
    while let Some(item) = reader.next().expect("redis's file decodes") {
        match item {
            Item::Entry {
                db,
                key,
                value,
                expire_ms,
                ..
            } => {
                ok(&mut r, &[b"SELECT", db.to_string().as_bytes()]);
                let want = c(&mut r, &[b"DEBUG", b"DIGEST-VALUE", &key]);
                let got = digest::hex(&digest::value_digest(&value, expire_ms.is_some()));
                assert_eq!(
                    want,
                    Frame::Array(vec![Frame::Simple(got)]),
                    "key {}",
                    String::from_utf8_lossy(&key)
                );
                let enc = c(&mut r, &[b"OBJECT", b"ENCODING", &key]);
                assert_eq!(
                    enc,
                    Frame::Bulk(value.encoding().as_bytes().to_vec()),
                    "encoding of {}",
                    String::from_utf8_lossy(&key)
                );
                seen += 1;
            }
            Item::Aux { key, .. } => aux.push(String::from_utf8_lossy(&key).into_owned()),
            _ => {}
        }
    }
    assert_eq!(seen, keys.len());
    assert!(aux.iter().any(|k| k == "redis-ver"), "{aux:?}");

    // The same file, corrupted: refused with an offset, never a panic.
    let bytes = std::fs::read(&path).unwrap();
    let mut rng = SmallRng::seed_from_u64(3);
    for _ in 0..200 {
        let mut b = bytes.clone();
        let i = rng.gen_range(9..b.len());
        b[i] ^= 1 << rng.gen_range(0..8);
        let cut = if rng.gen_bool(0.3) {
            rng.gen_range(9..b.len())
        } else {
            b.len()
        };
        b.truncate(cut);
        let mut rd = match Reader::new(&b[..], EncodingLimits::default()) {
            Ok(rd) => rd,
            Err(_) => continue,
        };
        let result = loop {
            match rd.next() {
                Ok(Some(_)) => continue,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        let e = result.expect_err("a corrupted file is refused");
        assert!(e.to_string().contains("at offset"), "{e}");
    }
}
