//! COMMAND DOCS / INFO / GETKEYS / GETKEYSANDFLAGS against a real redis-server, and the
//! generator of `src/commands/meta/redis70.txt` (the per-command metadata Shardis
//! serves: see `src/commands/meta.rs`).
//!
//! The one idea to hold: Redis's command metadata is interface data, so it is read from
//! redis-server itself (`cargo test --test command_meta -- --ignored generate` rewrites
//! the file) and every test here compares Shardis's reply with redis-server's reply to
//! the same request, in RESP2 and RESP3. The one thing compared as unordered is what
//! Redis itself orders at random: a container's subcommands (a dict, seeded per process)
//! and the commands of a COMMAND DOCS without names.

mod common;

use common::{show, Frame, RawConn, Server};
use std::collections::BTreeMap;

/// A connection speaking `proto` (2 or 3).
fn conn(s: &Server, proto: u8) -> RawConn {
    let mut c = s.raw();
    if proto == 3 {
        let hello = c.cmd(&["HELLO", "3"]);
        assert!(matches!(hello, Frame::Map(_)), "HELLO 3: {}", show(&hello));
    }
    c
}

fn text(f: &Frame) -> String {
    match f {
        Frame::Bulk(b) => String::from_utf8(b.clone()).expect("utf-8 name"),
        Frame::Simple(s) => s.clone(),
        other => panic!("expected a string, got {}", show(other)),
    }
}

/// Map entries of a RESP3 map or a RESP2 flat array.
fn pairs(f: &Frame) -> Vec<(Frame, Frame)> {
    match f {
        Frame::Map(kv) => kv.clone(),
        Frame::Array(xs) => xs.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect(),
        other => panic!("expected a map, got {}", show(other)),
    }
}

// ---------------------------------------------------------------------------------
// The generator.

/// Whether `s` can be written bare: not empty, not an integer literal, and free of
/// the characters the format gives a meaning to.
fn bare(s: &str) -> bool {
    !s.is_empty()
        && s.parse::<i64>().is_err()
        && !s.starts_with(['+', '-'])
        && s.chars().all(|c| {
            c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '[' | ']' | '{' | '}' | '<' | '>')
        })
}

fn quote(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => panic!("control character in {s:?}"),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// One RESP3 value in the data file's notation (see `src/commands/meta.rs`).
fn write_value(f: &Frame, out: &mut String) {
    let list = |open: char, close: char, xs: &[Frame], out: &mut String| {
        out.push(open);
        for (i, x) in xs.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            write_value(x, out);
        }
        out.push(close);
    };
    match f {
        Frame::Bulk(b) => {
            let s = std::str::from_utf8(b).expect("metadata is UTF-8");
            if bare(s) {
                out.push_str(s)
            } else {
                quote(s, out)
            }
        }
        Frame::Simple(s) => {
            assert!(bare(s), "status {s:?} cannot be written bare");
            out.push('+');
            out.push_str(s);
        }
        Frame::Int(i) => out.push_str(&i.to_string()),
        Frame::Array(xs) => list('[', ']', xs, out),
        Frame::Set(xs) => list('<', '>', xs, out),
        Frame::Map(kv) => {
            let flat: Vec<Frame> = kv
                .iter()
                .flat_map(|(k, v)| [k.clone(), v.clone()])
                .collect();
            list('{', '}', &flat, out)
        }
        other => panic!("unexpected value in command metadata: {}", show(other)),
    }
}

/// Flatten COMMAND INFO's entries (subcommands nested in field 10) by name, each
/// without its subcommands.
fn flatten_info(entries: &[Frame], out: &mut BTreeMap<String, Frame>) {
    for e in entries {
        let Frame::Array(fields) = e else {
            panic!("COMMAND INFO entry: {}", show(e))
        };
        assert_eq!(fields.len(), 10, "COMMAND INFO entry: {}", show(e));
        let subs = match &fields[9] {
            Frame::Set(s) | Frame::Array(s) => s.clone(),
            other => panic!("subcommands: {}", show(other)),
        };
        flatten_info(&subs, out);
        out.insert(text(&fields[0]), Frame::Array(fields[..9].to_vec()));
    }
}

/// Flatten COMMAND DOCS's map by name, each without its `subcommands` field.
fn flatten_docs(docs: &[(Frame, Frame)], out: &mut BTreeMap<String, Frame>) {
    for (name, doc) in docs {
        let mut kept = Vec::new();
        for (k, v) in pairs(doc) {
            if text(&k) == "subcommands" {
                flatten_docs(&pairs(&v), out);
            } else {
                kept.push((k, v));
            }
        }
        out.insert(text(name), Frame::Map(kept));
    }
}

/// Rewrites `src/commands/meta/redis70.txt` from the redis-server on PATH.
#[test]
#[ignore = "generator: run by hand with a redis-server 7.0 on PATH"]
fn generate() {
    let redis = Server::redis();
    let mut c = conn(&redis, 3);
    let version = match c.cmd(&["INFO", "server"]) {
        Frame::Verbatim(v) | Frame::Bulk(v) => String::from_utf8_lossy(&v)
            .lines()
            .find_map(|l| {
                l.strip_prefix("redis_version:")
                    .map(|v| v.trim().to_string())
            })
            .expect("redis_version"),
        other => panic!("INFO: {}", show(&other)),
    };
    assert!(
        version.starts_with("7.0."),
        "want redis-server 7.0, found {version}"
    );
    let Frame::Array(entries) = c.cmd(&["COMMAND", "INFO"]) else {
        panic!("COMMAND INFO is not an array")
    };
    let mut info = BTreeMap::new();
    flatten_info(&entries, &mut info);
    let mut docs = BTreeMap::new();
    flatten_docs(&pairs(&c.cmd(&["COMMAND", "DOCS"])), &mut docs);
    assert_eq!(
        info.keys().collect::<Vec<_>>(),
        docs.keys().collect::<Vec<_>>(),
        "COMMAND INFO and COMMAND DOCS name the same commands"
    );

    let mut out = format!(
        "# COMMAND INFO and COMMAND DOCS of redis-server {version}, one command a line:\n\
         # <name> <INFO entry without subcommands> <DOCS map without subcommands>.\n\
         # Generated by `cargo test --test command_meta -- --ignored generate`; do not edit.\n"
    );
    for (name, i) in &info {
        out.push_str(name);
        out.push(' ');
        write_value(i, &mut out);
        out.push(' ');
        write_value(&docs[name], &mut out);
        out.push('\n');
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/commands/meta/redis70.txt");
    std::fs::write(path, out).expect("write the data file");
    eprintln!("wrote {} commands to {path}", info.len());
}

// ---------------------------------------------------------------------------------
// Shardis against redis-server.

/// Commands we implement that Redis 7.0 lacks (Redis 7.2's; `src/commands/meta/
/// extra.txt`): redis-server 7.0 has nothing to compare them with.
const NOT_IN_REDIS_70: &[&str] = &["client|setinfo", "client|no-touch"];

fn is_subcommands_key(f: &Frame) -> bool {
    matches!(f, Frame::Bulk(b) if b == b"subcommands")
}

/// A map (RESP3) or flat key/value array (RESP2) rebuilt from `pairs`, as it came.
fn same_shape(like: &Frame, pairs: Vec<(Frame, Frame)>) -> Frame {
    match like {
        Frame::Map(_) => Frame::Map(pairs),
        _ => Frame::Array(pairs.into_iter().flat_map(|(k, v)| [k, v]).collect()),
    }
}

/// Whether a command is compared: one of `ours` that Redis 7.0 has (Redis's containers
/// have subcommands we do not implement).
fn keep(name: &str, ours: &[String]) -> bool {
    ours.iter().any(|n| n == name) && !NOT_IN_REDIS_70.contains(&name)
}

/// A COMMAND DOCS map (name -> doc) sorted by name, its docs' `subcommands` maps
/// likewise, and only the commands [`keep`] keeps: Redis orders subcommands (and
/// COMMAND DOCS without names) at random.
fn normalize_docs(docs: &Frame, ours: &[String]) -> Frame {
    let mut out: Vec<(Frame, Frame)> = pairs(docs)
        .into_iter()
        .filter(|(n, _)| keep(&text(n), ours))
        .map(|(name, doc)| {
            let fields = pairs(&doc)
                .into_iter()
                .map(|(k, v)| match is_subcommands_key(&k) {
                    true => (k, normalize_docs(&v, ours)),
                    false => (k, v),
                })
                .collect();
            (name, same_shape(&doc, fields))
        })
        .collect();
    out.sort_by_key(|(n, _)| text(n));
    same_shape(docs, out)
}

/// A COMMAND INFO reply with every container's subcommands sorted by name and only
/// the commands [`keep`] keeps.
fn normalize_info(entries: &Frame, ours: &[String]) -> Frame {
    let Frame::Array(entries) = entries else {
        return entries.clone();
    };
    let mut out = Vec::new();
    for e in entries {
        match e {
            Frame::Array(fields) if fields.len() == 10 => {
                if !keep(&text(&fields[0]), ours) {
                    continue;
                }
                let mut fields = fields.clone();
                if let Frame::Array(_) = fields[9] {
                    let Frame::Array(mut subs) = normalize_info(&fields[9], ours) else {
                        unreachable!()
                    };
                    subs.sort_by_key(|s| match s {
                        Frame::Array(f) => text(&f[0]),
                        _ => String::new(),
                    });
                    fields[9] = Frame::Array(subs);
                }
                out.push(Frame::Array(fields));
            }
            other => out.push(other.clone()),
        }
    }
    Frame::Array(out)
}

fn command_list(c: &mut RawConn) -> Vec<String> {
    match c.cmd(&["COMMAND", "LIST"]) {
        Frame::Array(xs) | Frame::Set(xs) => xs.iter().map(text).collect(),
        other => panic!("COMMAND LIST: {}", show(&other)),
    }
}

#[test]
fn docs_and_info_of_every_command_match_redis() {
    let shardis = Server::shardis(1);
    let redis = Server::redis();
    for proto in [2, 3] {
        let (mut s, mut r) = (conn(&shardis, proto), conn(&redis, proto));
        let names = command_list(&mut s);
        assert!(names.len() > 150, "COMMAND LIST: {names:?}");
        let mut differ = Vec::new();
        for name in &names {
            if NOT_IN_REDIS_70.contains(&name.as_str()) {
                // Redis 7.0 answers nothing; we answer with Redis 7.2's entry.
                assert_eq!(
                    r.cmd(&["COMMAND", "INFO", name]),
                    Frame::Array(vec![nil(proto)])
                );
                assert!(
                    matches!(s.cmd(&["COMMAND", "INFO", name]), Frame::Array(e) if e.len() == 1)
                );
                continue;
            }
            for sub in ["DOCS", "INFO"] {
                let argv = ["COMMAND", sub, name];
                let (ours, theirs) = (s.cmd(&argv), r.cmd(&argv));
                let (ours_n, theirs_n) = if sub == "DOCS" {
                    (
                        normalize_docs(&ours, &names),
                        normalize_docs(&theirs, &names),
                    )
                } else {
                    (
                        normalize_info(&ours, &names),
                        normalize_info(&theirs, &names),
                    )
                };
                // Normalizing changes nothing but a container's subcommands (Redis's
                // order is random), so everything else is compared exactly.
                if ours_n != theirs_n {
                    differ.push(format!(
                        "RESP{proto} COMMAND {sub} {name}\n  shardis: {}\n  redis:   {}",
                        show(&ours_n),
                        show(&theirs_n)
                    ));
                }
            }
        }
        assert!(
            differ.is_empty(),
            "{} replies differ:\n{}",
            differ.len(),
            differ.join("\n")
        );
    }
}

fn nil(proto: u8) -> Frame {
    if proto == 3 {
        Frame::Null
    } else {
        Frame::NullBulk
    }
}

#[test]
fn docs_without_names_is_redis_restricted_to_our_commands() {
    let shardis = Server::shardis(1);
    let redis = Server::redis();
    for proto in [2, 3] {
        let (mut s, mut r) = (conn(&shardis, proto), conn(&redis, proto));
        let names = command_list(&mut s);
        let by_name = |f: Frame| -> BTreeMap<String, Frame> {
            pairs(&normalize_docs(&f, &names))
                .into_iter()
                .map(|(k, v)| (text(&k), v))
                .collect()
        };
        let ours = by_name(s.cmd(&["COMMAND", "DOCS"]));
        let mut theirs = by_name(r.cmd(&["COMMAND", "DOCS"]));
        let top: Vec<String> = names.iter().filter(|n| !n.contains('|')).cloned().collect();
        assert_eq!(ours.keys().cloned().collect::<Vec<_>>(), {
            let mut t = top.clone();
            t.sort();
            t
        });
        theirs.retain(|k, _| ours.contains_key(k));
        assert_eq!(ours.len(), theirs.len(), "every command of ours is Redis's");
        for (name, doc) in &ours {
            assert_eq!(doc, &theirs[name], "RESP{proto} COMMAND DOCS: {name}");
        }
    }
}

/// Commands whose keys GETKEYS / GETKEYSANDFLAGS must find as Redis does: fixed
/// positions, key specs with a keyword or a key count (the movable-keys commands),
/// variable flags (SET ... GET, BITFIELD), Redis's own key finders (SORT ... STORE),
/// and the errors.
const GETKEYS_SAMPLES: &[&str] = &[
    "get a",
    "set a b",
    "set a b get",
    "set a b ex 10 GET",
    "getex a persist",
    "mset a 1 b 2 c 3",
    "mget a b c",
    "del a b c",
    "rename a b",
    "copy a b",
    "smove a b m",
    "lmove a b left right",
    "blmove a b left right 0",
    "rpoplpush a b",
    "linsert a before p v",
    "sunionstore d a b",
    "zunionstore d 2 a b",
    "zunionstore d 2 a b weights 1 2 aggregate max",
    "zinterstore d 1 a",
    "zinterstore d 0 a",
    "zinterstore d x a",
    "zunionstore d 5 a b",
    "zdiff 2 a b withscores",
    "zdiffstore d 2 a b",
    "zrangestore d s 0 -1",
    "zintercard 2 a b limit 1",
    "sintercard 2 a b",
    "lmpop 2 a b left count 2",
    "blmpop 0 2 a b right",
    "zmpop 1 a min",
    "bzmpop 0 2 a b max",
    "blpop a b 0",
    "bzpopmin a b 0",
    "sort s",
    "sort s store d",
    "sort s by w_* get g_* limit 0 10 store d",
    "sort s store d1 store d2",
    "sort s alpha desc",
    "sort_ro s by w get g",
    "bitfield k get u8 0",
    "bitfield k get u8 0 overflow sat",
    "bitfield k set u8 0 1",
    "bitfield k incrby u8 0 1 get u8 0",
    "bitfield_ro k get u8 0",
    "bitop and d a b",
    "bitcount k",
    "pfmerge d a b",
    "pfcount a b",
    "georadius k 0 0 1 km",
    "georadius k 0 0 1 km store d",
    "georadius k 0 0 1 km storedist d",
    "georadiusbymember k m 1 km store d",
    "geosearchstore d s frommember m byradius 1 km",
    "geosearch s frommember m byradius 1 km",
    "hset h f v",
    "expire k 10",
    "object encoding k",
    "dump k",
    "restore k 0 payload",
    "touch a b",
    "exists a b",
    "unlink a b",
    "eval return 2 a b c",
    "eval return 0",
    "evalsha abc 1 a",
    "fcall f 1 a b",
    "ping",
    "config get maxmemory",
    "client list",
    "get",
    "get a b",
    "mset a",
    "nosuchcommand a",
];

#[test]
fn getkeys_and_getkeysandflags_match_redis() {
    let shardis = Server::shardis(1);
    let redis = Server::redis();
    for proto in [2, 3] {
        let (mut s, mut r) = (conn(&shardis, proto), conn(&redis, proto));
        let ours: Vec<String> = command_list(&mut s);
        let mut differ = Vec::new();
        let mut compared = 0;
        for line in GETKEYS_SAMPLES {
            let words: Vec<&str> = line.split(' ').collect();
            let name = words[0];
            // Commands we do not implement answer "Invalid command specified" here and
            // something else in Redis: compared only where both have the command.
            if name != "nosuchcommand" && !ours.iter().any(|n| n == name) {
                continue;
            }
            compared += 1;
            for sub in ["GETKEYS", "GETKEYSANDFLAGS"] {
                let argv: Vec<&str> = ["COMMAND", sub]
                    .into_iter()
                    .chain(words.iter().copied())
                    .collect();
                let (a, b) = (s.cmd(&argv), r.cmd(&argv));
                if a != b {
                    differ.push(format!(
                        "RESP{proto} COMMAND {sub} {line}\n  shardis: {}\n  redis:   {}",
                        show(&a),
                        show(&b)
                    ));
                }
            }
        }
        assert!(
            compared > 50,
            "only {compared} samples are commands of ours"
        );
        assert!(
            differ.is_empty(),
            "{} differ:\n{}",
            differ.len(),
            differ.join("\n")
        );
        // MIGRATE's keys, with the empty key argument the samples cannot spell.
        for argv in [
            &["COMMAND", "GETKEYS", "migrate", "h", "1", "k", "0", "10"][..],
            &[
                "COMMAND", "GETKEYS", "migrate", "h", "1", "", "0", "10", "AUTH", "keys", "KEYS",
                "a", "b",
            ],
            &[
                "COMMAND",
                "GETKEYSANDFLAGS",
                "migrate",
                "h",
                "1",
                "",
                "0",
                "10",
                "COPY",
                "KEYS",
                "a",
            ],
            &[
                "COMMAND", "GETKEYS", "migrate", "h", "1", "k", "0", "10", "KEYS", "a",
            ],
            &[
                "COMMAND", "GETKEYS", "migrate", "h", "1", "k", "0", "10", "AUTH2", "u", "p",
            ],
        ] {
            assert_eq!(s.cmd(argv), r.cmd(argv), "{argv:?}");
        }
    }
}

/// COMMAND (what cluster clients ask at start) and COMMAND INFO without names: Redis's
/// entries restricted to our commands, compared by name.
#[test]
fn command_without_names_is_redis_restricted_to_our_commands() {
    let shardis = Server::shardis(1);
    let redis = Server::redis();
    for proto in [2, 3] {
        let (mut s, mut r) = (conn(&shardis, proto), conn(&redis, proto));
        let names = command_list(&mut s);
        for argv in [&["COMMAND"][..], &["COMMAND", "INFO"][..]] {
            let by_name = |f: Frame| -> BTreeMap<String, Frame> {
                match normalize_info(&f, &names) {
                    Frame::Array(es) => es
                        .into_iter()
                        .map(|e| match &e {
                            Frame::Array(fields) => (text(&fields[0]), e.clone()),
                            other => panic!("entry: {}", show(other)),
                        })
                        .collect(),
                    other => panic!("{argv:?}: {}", show(&other)),
                }
            };
            let ours = by_name(s.cmd(argv));
            let theirs = by_name(r.cmd(argv));
            let top = names.iter().filter(|n| !n.contains('|'));
            let want = top.filter(|n| keep(n, &names)).count();
            assert_eq!(ours.len(), want, "{argv:?}: one entry per command of ours");
            assert_eq!(
                ours.keys().collect::<Vec<_>>(),
                theirs.keys().collect::<Vec<_>>()
            );
            for (name, e) in &ours {
                assert_eq!(e, &theirs[name], "RESP{proto} {argv:?}: {name}");
            }
        }
    }
}
