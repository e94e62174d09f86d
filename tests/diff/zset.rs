//! Sorted set commands for the differential test: every zset command with well-formed
//! and malformed arguments. Members come mostly from a small pool (integers included,
//! which listpacks store as integers) so writes collide and reads hit; scores are
//! small halves, integers and `float_arg`'s edge cases (`inf`, `0x1p3`, `1e308`, bad
//! ones). Now and then a member longer than `zset-max-listpack-value` or a run of 130
//! members turns a set into a skiplist, so both encodings and the conversions (and
//! OBJECT ENCODING after ZRANGESTORE / Z*STORE) are compared.
//!
//! Lex ranges over members of different scores are undefined, and Redis's skiplist
//! answers them by its random levels, so the lex commands (ZRANGEBYLEX, ZLEXCOUNT,
//! ZREMRANGEBYLEX, ZRANGE BYLEX...) run on two keys of their own, `lex:1` and
//! `{t}lex:2`, whose members all have score 0; their argument errors are also sent to
//! the shared keys. Random picks (ZRANDMEMBER) are compared by length, never with a
//! large valid negative count. ZSCAN is compared exactly with COUNT 1000 and a MATCH
//! that selects at most one member (a full scan in one call, one reply order), and by
//! length otherwise. Blocking pops get a malformed timeout or a short one (10 ms), so
//! a call that would block ends with the timeout reply on both servers.

use super::{Argv, Cmp, Gen};
use rand::Rng;

fn a(parts: &[&[u8]]) -> Argv {
    parts.iter().map(|p| p.to_vec()).collect()
}

const LEX_KEYS: &[&str] = &["lex:1", "{t}lex:2"];

const POOL: &[&str] = &[
    "a", "b", "c", "d", "x", "yy", "1", "2", "-3", "10", "007", "m",
];

/// A member: mostly from a pool, sometimes any value (long ones included).
fn member(g: &mut Gen) -> Vec<u8> {
    if g.chance(0.85) {
        g.pick(POOL).as_bytes().to_vec()
    } else {
        g.value()
    }
}

fn members(g: &mut Gen, max: usize) -> Vec<Vec<u8>> {
    let n = g.rng.gen_range(1..=max);
    (0..n).map(|_| member(g)).collect()
}

/// A score: halves and small integers mostly, else `float_arg`'s edge cases.
fn score(g: &mut Gen) -> String {
    match g.rng.gen_range(0..20) {
        0..=11 => format!("{}", g.rng.gen_range(-8..8) as f64 / 2.0),
        12..=17 => g.rng.gen_range(-3..4).to_string(),
        _ => g.float_arg(),
    }
}

/// A score range bound: a score, exclusive or not, infinities, or a bad one.
fn bound(g: &mut Gen) -> String {
    match g.rng.gen_range(0..12) {
        0 => "-inf".into(),
        1 => "+inf".into(),
        2 => format!("({}", g.rng.gen_range(-4..5)),
        3 => g
            .pick(&["(", "", "x", "(x", "nan", "1 ", " 1", "(1e999", "0x1p1"])
            .to_string(),
        _ => format!("{}", g.rng.gen_range(-8..8) as f64 / 2.0),
    }
}

/// A lex range bound: `-`, `+`, `[m`, `(m`, or a bad one.
fn lex_bound(g: &mut Gen) -> Vec<u8> {
    match g.rng.gen_range(0..10) {
        0 => b"-".to_vec(),
        1 => b"+".to_vec(),
        2 => g.pick(&["a", "", "-a", "++", "x"]).as_bytes().to_vec(),
        n => {
            let mut v = vec![if n % 2 == 0 { b'[' } else { b'(' }];
            v.extend(
                g.pick(&["a", "b", "c", "d", "x", "1", "10", "", "bb"])
                    .as_bytes(),
            );
            v
        }
    }
}

/// Both bounds of a lex range; sometimes a bad one.
fn lex_pair(g: &mut Gen) -> (Vec<u8>, Vec<u8>) {
    (lex_bound(g), lex_bound(g))
}

/// A ZRANGE-style index.
fn index(g: &mut Gen) -> String {
    match g.rng.gen_range(0..10) {
        0 => g.range_idx(),
        _ => g.rng.gen_range(-6..8).to_string(),
    }
}

/// numkeys for the multi-key commands: right, too many, zero, negative or malformed.
fn numkeys(g: &mut Gen, n: usize) -> String {
    match g.rng.gen_range(0..20) {
        0 => (n + 1).to_string(),
        1 => "0".into(),
        2 => "-1".into(),
        3 => "x".into(),
        _ => n.to_string(),
    }
}

/// A count for ZPOPMIN / ZMPOP: small, 0, negative, huge or malformed.
fn count(g: &mut Gen) -> String {
    match g.rng.gen_range(0..10) {
        0..=5 => g.rng.gen_range(1..5).to_string(),
        6 => "0".into(),
        7 => "-1".into(),
        8 => "9223372036854775807".into(),
        _ => g.pick(&["x", "1.5", ""]).to_string(),
    }
}

/// A timeout that either is malformed or ends a would-be block quickly.
fn timeout(g: &mut Gen) -> String {
    g.pick(&["-1", "abc", "", "0.01", "0.01", "0.01"])
        .to_string()
}

/// ZADD on `key`: options (sometimes conflicting), then pairs, sometimes 130 of them
/// or a long member to make a skiplist.
fn zadd(g: &mut Gen, key: Vec<u8>, lex: bool) -> Argv {
    let mut v = a(&[b"ZADD", &key]);
    if !lex {
        for o in ["NX", "XX", "GT", "LT", "CH", "INCR"] {
            if g.chance(0.08) {
                v.push(o.as_bytes().to_vec());
            }
        }
    }
    if g.chance(0.03) {
        for i in 0..130 {
            v.push(
                if lex {
                    "0".into()
                } else {
                    format!("{}", i % 7)
                }
                .into_bytes(),
            );
            v.push(format!("m{i}").into_bytes());
        }
        return v;
    }
    let n = g.rng.gen_range(1..4);
    for _ in 0..n {
        v.push(if lex {
            b"0".to_vec()
        } else {
            score(g).into_bytes()
        });
        v.push(member(g));
    }
    if g.chance(0.04) {
        v.pop(); // odd argument count: syntax error
    }
    v
}

/// ZRANGE key min max [BYSCORE|BYLEX] [REV] [WITHSCORES] [LIMIT o c] and its older
/// forms, with options in random order and now and then a wrong one.
fn zrange(g: &mut Gen) -> Argv {
    let lex = g.chance(0.25);
    let key = if lex {
        g.pick(LEX_KEYS).as_bytes().to_vec()
    } else {
        g.key()
    };
    let mut opts: Vec<Vec<u8>> = Vec::new();
    let (min, max, mut cmd) = if lex {
        let (mn, mx) = lex_pair(g);
        match g.rng.gen_range(0..3) {
            0 => (mn, mx, "ZRANGEBYLEX"),
            1 => (mn, mx, "ZREVRANGEBYLEX"),
            _ => {
                opts.push(b"BYLEX".to_vec());
                (mn, mx, "ZRANGE")
            }
        }
    } else {
        match g.rng.gen_range(0..6) {
            0 => (index(g).into_bytes(), index(g).into_bytes(), "ZRANGE"),
            1 => (index(g).into_bytes(), index(g).into_bytes(), "ZREVRANGE"),
            2 => (
                bound(g).into_bytes(),
                bound(g).into_bytes(),
                "ZRANGEBYSCORE",
            ),
            3 => (
                bound(g).into_bytes(),
                bound(g).into_bytes(),
                "ZREVRANGEBYSCORE",
            ),
            _ => {
                opts.push(b"BYSCORE".to_vec());
                (bound(g).into_bytes(), bound(g).into_bytes(), "ZRANGE")
            }
        }
    };
    if cmd == "ZRANGE" && g.chance(0.3) {
        opts.push(b"REV".to_vec());
    }
    if g.chance(0.3) {
        opts.push(b"WITHSCORES".to_vec());
    }
    if g.chance(0.3) {
        opts.push(b"LIMIT".to_vec());
        opts.push(g.pick(&["0", "0", "1", "2", "-1", "x"]).as_bytes().to_vec());
        opts.push(g.pick(&["1", "2", "-1", "0", "100"]).as_bytes().to_vec());
    }
    if g.chance(0.05) {
        opts.push(
            g.pick(&["REV", "BYSCORE", "BYLEX", "BOGUS", "LIMIT"])
                .as_bytes()
                .to_vec(),
        );
    }
    if opts.len() > 1 && g.chance(0.3) {
        opts.swap(0, 1);
    }
    if g.chance(0.1) && cmd == "ZRANGE" {
        // The same range, stored.
        cmd = "ZRANGESTORE";
        opts.retain(|o| o != b"WITHSCORES");
        let dst = g.key();
        let mut v = a(&[cmd.as_bytes(), &dst, &key, &min, &max]);
        v.extend(opts);
        return v;
    }
    let mut v = a(&[cmd.as_bytes(), &key, &min, &max]);
    v.extend(opts);
    v
}

/// ZUNION / ZINTER / ZDIFF, their STORE forms and ZINTERCARD with options.
fn setop(g: &mut Gen) -> Argv {
    let keys = g.keys(3);
    let cmd = g
        .pick(&[
            "ZUNION",
            "ZINTER",
            "ZDIFF",
            "ZUNIONSTORE",
            "ZINTERSTORE",
            "ZDIFFSTORE",
            "ZINTERCARD",
        ])
        .to_string();
    let mut v = a(&[cmd.as_bytes()]);
    if cmd.ends_with("STORE") {
        v.push(g.key());
    }
    v.push(numkeys(g, keys.len()).into_bytes());
    v.extend(keys.iter().cloned());
    if cmd != "ZDIFF" && cmd != "ZDIFFSTORE" && cmd != "ZINTERCARD" && g.chance(0.4) {
        v.push(b"WEIGHTS".to_vec());
        for _ in 0..keys.len() {
            v.push(
                g.pick(&[
                    "1", "2", "-1", "0.5", "0", "inf", "1", "2", "3", "-inf", "x",
                ])
                .as_bytes()
                .to_vec(),
            );
        }
        if g.chance(0.1) {
            v.pop();
        }
    }
    if cmd != "ZINTERCARD" && g.chance(0.4) {
        v.push(b"AGGREGATE".to_vec());
        v.push(
            g.pick(&["SUM", "min", "MAX", "sum", "Min", "max", "mul"])
                .as_bytes()
                .to_vec(),
        );
    }
    if cmd == "ZINTERCARD" && g.chance(0.5) {
        v.push(b"LIMIT".to_vec());
        v.push(g.pick(&["0", "1", "2", "-1", "x"]).as_bytes().to_vec());
    }
    if g.chance(0.1) {
        // Redis 7.0 accepts a repeated option; the last one counts.
        if cmd == "ZINTERCARD" {
            v.extend(a(&[b"LIMIT", b"1"]));
        } else {
            v.extend(a(&[b"AGGREGATE", b"MAX"]));
        }
    }
    let plain = matches!(cmd.as_str(), "ZUNION" | "ZINTER" | "ZDIFF");
    if g.chance(if plain { 0.5 } else { 0.05 }) {
        v.push(b"WITHSCORES".to_vec());
    }
    v
}

pub fn command(g: &mut Gen) -> Option<(Argv, Cmp)> {
    use Cmp::*;
    let key = g.key();
    Some(match g.rng.gen_range(0..40) {
        0..=4 => (zadd(g, key, false), Exact),
        5 => {
            let k = g.pick(LEX_KEYS).as_bytes().to_vec();
            (zadd(g, k, true), Exact)
        }
        6 => {
            let incr = if g.chance(0.9) { score(g) } else { "xx".into() };
            (a(&[b"ZINCRBY", &key, incr.as_bytes(), &member(g)]), Exact)
        }
        7 | 8 => {
            let k = if g.chance(0.2) {
                g.pick(LEX_KEYS).as_bytes().to_vec()
            } else {
                key
            };
            let mut v = a(&[b"ZREM", &k]);
            v.extend(members(g, 3));
            (v, Exact)
        }
        9 => (a(&[b"ZCARD", &key]), Exact),
        10 => (
            a(&[b"ZCOUNT", &key, bound(g).as_bytes(), bound(g).as_bytes()]),
            Exact,
        ),
        11 => {
            let k = if g.chance(0.8) {
                g.pick(LEX_KEYS).as_bytes().to_vec()
            } else {
                key
            };
            let (mn, mx) = lex_pair(g);
            let lex_ok =
                |b: &[u8]| matches!(b, [b'-'] | [b'+']) || matches!(b.first(), Some(b'[' | b'('));
            if !LEX_KEYS.iter().any(|l| l.as_bytes() == &k[..]) && lex_ok(&mn) && lex_ok(&mx) {
                // Only errors on the shared keys.
                return Some((a(&[b"ZLEXCOUNT", &k, b"a", &mx]), Exact));
            }
            (a(&[b"ZLEXCOUNT", &k, &mn, &mx]), Exact)
        }
        12 | 13 => (a(&[b"ZSCORE", &key, &member(g)]), Exact),
        14 => {
            let mut v = a(&[b"ZMSCORE", &key]);
            v.extend(members(g, 4));
            (v, Exact)
        }
        15 => (a(&[b"ZRANK", &key, &member(g)]), Exact),
        16 => (a(&[b"ZREVRANK", &key, &member(g)]), Exact),
        17..=21 => (zrange(g), Exact),
        22 => (
            a(&[
                b"ZREMRANGEBYRANK",
                &key,
                index(g).as_bytes(),
                index(g).as_bytes(),
            ]),
            Exact,
        ),
        23 => (
            a(&[
                b"ZREMRANGEBYSCORE",
                &key,
                bound(g).as_bytes(),
                bound(g).as_bytes(),
            ]),
            Exact,
        ),
        24 => {
            let k = g.pick(LEX_KEYS).as_bytes().to_vec();
            let (mn, mx) = lex_pair(g);
            (a(&[b"ZREMRANGEBYLEX", &k, &mn, &mx]), Exact)
        }
        25 | 26 => {
            let cmd = g.pick(&["ZPOPMIN", "ZPOPMAX"]).to_string();
            let k = if g.chance(0.1) {
                g.pick(LEX_KEYS).as_bytes().to_vec()
            } else {
                key
            };
            let mut v = a(&[cmd.as_bytes(), &k]);
            if g.chance(0.6) {
                v.push(count(g).into_bytes());
            }
            if g.chance(0.03) {
                v.push(b"1".to_vec());
            }
            (v, Exact)
        }
        27 => {
            let keys = g.keys(3);
            let mut v = a(&[b"ZMPOP", numkeys(g, keys.len()).as_bytes()]);
            v.extend(keys);
            v.push(g.pick(&["MIN", "max", "MAX", "x"]).as_bytes().to_vec());
            if g.chance(0.5) {
                v.push(b"COUNT".to_vec());
                v.push(count(g).into_bytes());
            }
            (v, Exact)
        }
        28 => {
            let cmd = g.pick(&["BZPOPMIN", "BZPOPMAX"]).to_string();
            let mut v = a(&[cmd.as_bytes()]);
            v.extend(g.keys(3));
            v.push(timeout(g).into_bytes());
            (v, Exact)
        }
        29 => {
            let keys = g.keys(3);
            let mut v = a(&[
                b"BZMPOP",
                timeout(g).as_bytes(),
                numkeys(g, keys.len()).as_bytes(),
            ]);
            v.extend(keys);
            v.push(g.pick(&["MIN", "max", "x"]).as_bytes().to_vec());
            if g.chance(0.5) {
                v.push(b"COUNT".to_vec());
                v.push(count(g).into_bytes());
            }
            (v, Exact)
        }
        30 | 31 => {
            let mut v = a(&[b"ZRANDMEMBER", &key]);
            match g.rng.gen_range(0..10) {
                0 => {}
                1 => v.extend(a(&[b"1", b"BOGUS"])),
                2 => v.push(
                    g.pick(&["x", "-9223372036854775808", "9223372036854775807"])
                        .as_bytes()
                        .to_vec(),
                ),
                3 => v.extend(a(&[b"-9223372036854775807", b"WITHSCORES"])),
                _ => {
                    v.push(g.rng.gen_range(-12..15).to_string().into_bytes());
                    if g.chance(0.5) {
                        v.push(b"WITHSCORES".to_vec());
                    }
                }
            }
            // Without a count the reply is one member (any bulk matches), nil or an
            // error: `SameLen` compares those.
            (v, SameLen)
        }
        32..=35 => (setop(g), Exact),
        36 => {
            let cursor = g.pick(&["0", "0", "0", "x", "-1", ""]).to_string();
            let mut v = a(&[b"ZSCAN", &key, cursor.as_bytes()]);
            let one = g.chance(0.6);
            v.extend(a(&[
                b"COUNT",
                if one {
                    b"1000"
                } else {
                    g.pick(&["0", "x", "5"]).as_bytes()
                },
            ]));
            if one {
                let m = g.pick(POOL).as_bytes().to_vec();
                v.extend(a(&[b"MATCH", &m]));
                return Some((v, Exact));
            }
            if g.chance(0.1) {
                v.extend(a(&[b"TYPE", b"zset"]));
            }
            (v, SameLen)
        }
        37 => (a(&[b"OBJECT", b"ENCODING", &key]), Exact),
        38 => {
            let k = g.pick(LEX_KEYS).as_bytes().to_vec();
            (a(&[b"ZRANGE", &k, b"0", b"-1", b"WITHSCORES"]), Exact)
        }
        _ => {
            let k = g.pick(LEX_KEYS).as_bytes().to_vec();
            (a(&[b"OBJECT", b"ENCODING", &k]), Exact)
        }
    })
}
